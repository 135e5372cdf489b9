-- The transactional outbox: events written in the caller's transaction, published by
-- OutboxRelay. Order per key = id order; rows stay until published (then purged).
CREATE TABLE IF NOT EXISTS tracseq_outbox (
    id            bigserial PRIMARY KEY,
    topic         text        NOT NULL,
    key           text,
    value         bytea,
    headers       jsonb       NOT NULL DEFAULT '[]'::jsonb,
    trace_context jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    attempts      integer     NOT NULL DEFAULT 0,
    last_error    text
);
CREATE INDEX IF NOT EXISTS tracseq_outbox_pending ON tracseq_outbox (id)
    WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS tracseq_outbox_pending_key ON tracseq_outbox (key, id)
    WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS tracseq_outbox_published ON tracseq_outbox (published_at)
    WHERE published_at IS NOT NULL;
