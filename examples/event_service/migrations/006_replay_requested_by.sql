-- Who asked for each replay: the verified subject of the request that started it.
ALTER TABLE replay_jobs ADD COLUMN IF NOT EXISTS requested_by text;
