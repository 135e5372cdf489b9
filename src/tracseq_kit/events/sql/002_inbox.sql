-- The inbox: event ids a consumer group has handled, for at-most-once effects.
CREATE TABLE IF NOT EXISTS tracseq_inbox (
    consumer   text        NOT NULL,
    event_id   text        NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
