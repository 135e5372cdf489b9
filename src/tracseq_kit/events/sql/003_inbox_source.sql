-- The inbox keys on (source, id), the identity of a CloudEvent: two producers may use
-- the same ids. Rows recorded before this migration keep source '' (no event has an
-- empty source), which Inbox reads as "any source" until the retention purges them.
ALTER TABLE tracseq_inbox ADD COLUMN IF NOT EXISTS source text NOT NULL DEFAULT '';
ALTER TABLE tracseq_inbox ALTER COLUMN source DROP DEFAULT;
ALTER TABLE tracseq_inbox DROP CONSTRAINT IF EXISTS tracseq_inbox_pkey;
ALTER TABLE tracseq_inbox ADD PRIMARY KEY (consumer, source, event_id);
-- Purging by age, per consumer group.
CREATE INDEX IF NOT EXISTS tracseq_inbox_handled_at ON tracseq_inbox (consumer, handled_at);
