-- Every event the service has seen, stored once (the CloudEvent id is the key).
CREATE TABLE IF NOT EXISTS stored_events (
    seq       bigserial   UNIQUE,
    id        text        PRIMARY KEY,
    type      text        NOT NULL,
    source    text        NOT NULL,
    subject   text,
    time      timestamptz,
    trace_id  text,
    data      jsonb,
    topic     text        NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS stored_events_type ON stored_events (type, seq);
CREATE INDEX IF NOT EXISTS stored_events_source ON stored_events (source, seq);
CREATE INDEX IF NOT EXISTS stored_events_subject ON stored_events (subject, seq);
CREATE INDEX IF NOT EXISTS stored_events_time ON stored_events (time);
