-- Replay requests are deduplicated by the kit's Idempotency-Key table now.
DROP INDEX IF EXISTS replay_jobs_idempotency_key;
ALTER TABLE replay_jobs DROP COLUMN IF EXISTS idempotency_key;
ALTER TABLE replay_jobs DROP COLUMN IF EXISTS request;
