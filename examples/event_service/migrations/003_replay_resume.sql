-- Replay jobs resume where they stopped: the last re-published sequence number, and a
-- heartbeat so that a job whose instance died is taken over by another.
ALTER TABLE replay_jobs ADD COLUMN IF NOT EXISTS position bigint NOT NULL DEFAULT 0;
ALTER TABLE replay_jobs ADD COLUMN IF NOT EXISTS heartbeat_at timestamptz NOT NULL DEFAULT now();
