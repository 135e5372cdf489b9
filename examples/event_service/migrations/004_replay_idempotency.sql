-- A retried replay request (same Idempotency-Key) gets the job it already started.
ALTER TABLE replay_jobs ADD COLUMN IF NOT EXISTS idempotency_key text;
ALTER TABLE replay_jobs ADD COLUMN IF NOT EXISTS request text;
CREATE UNIQUE INDEX IF NOT EXISTS replay_jobs_idempotency_key ON replay_jobs (idempotency_key);
