-- Replay jobs: a filtered range of stored events re-published to a target topic.
CREATE TABLE IF NOT EXISTS replay_jobs (
    id           text        PRIMARY KEY,
    filters      jsonb       NOT NULL,
    target_topic text        NOT NULL,
    status       text        NOT NULL DEFAULT 'running',
    total        integer     NOT NULL DEFAULT 0,
    done         integer     NOT NULL DEFAULT 0,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
