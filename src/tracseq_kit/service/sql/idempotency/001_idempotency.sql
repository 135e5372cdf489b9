-- Responses of writes made with an Idempotency-Key (tracseq_kit.service.Idempotency):
-- a repeated request gets its first response again and has no second effect.
CREATE TABLE IF NOT EXISTS tracseq_idempotency (
    scope       text        NOT NULL,           -- the client's key space
    key         text        NOT NULL,
    fingerprint text        NOT NULL,           -- sha256 of method, path, query and body
    status      smallint    NOT NULL,
    headers     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    body        bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX IF NOT EXISTS tracseq_idempotency_expiry ON tracseq_idempotency (expires_at);
