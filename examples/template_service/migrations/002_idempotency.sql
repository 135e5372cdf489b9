-- Responses of writes made with an Idempotency-Key, so a retried request has one effect.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key        text        PRIMARY KEY,
    request    text        NOT NULL,
    response   jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idempotency_keys_age ON idempotency_keys (created_at);
