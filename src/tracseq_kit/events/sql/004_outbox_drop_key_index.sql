-- The relay reads pending rows in id order (per-key order comes from the writers' key
-- locks), so the (key, id) index of pending rows only slowed down writes and marking.
DROP INDEX IF EXISTS tracseq_outbox_pending_key;
