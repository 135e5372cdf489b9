-- The event store: one append-only stream per aggregate, numbered 1, 2, 3, ... without
-- gaps, and a global position across all streams. Appends go through
-- tracseq_es_append(), which holds the append lock (a transaction-level advisory lock)
-- from before it draws positions until commit: shared by appends that know their
-- streams' versions, exclusive for the others (and for stores with inline projections).
-- Readers of the global feed take the lock exclusively for an instant
-- (tracseq_es_safe_head()): once they get it, no transaction that drew a position is
-- still running, so the highest visible position P is safe - every position below it
-- is visible or was rolled back, and nothing below it can appear later. Rolled-back
-- appends leave unused positions: gaps in positions are normal, gaps in versions not.
-- Positions come from tracseq_es_position, drawn by tracseq_es_append() only: the
-- column has no default, so an INSERT that bypasses the function (and its lock) fails.
CREATE SEQUENCE IF NOT EXISTS tracseq_es_position;

CREATE TABLE IF NOT EXISTS tracseq_es_events (
    position    bigint      PRIMARY KEY,
    stream_id   text        NOT NULL,
    stream_type text        NOT NULL,
    version     integer     NOT NULL CHECK (version > 0),
    event_id    text        NOT NULL,
    type        text        NOT NULL,
    source      text        NOT NULL,
    subject     text,
    time        timestamptz,
    dataschema  text,
    extensions  jsonb,
    data        jsonb,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tracseq_es_events_stream_version UNIQUE (stream_id, version),
    CONSTRAINT tracseq_es_events_event_id UNIQUE (event_id)
);

-- The latest snapshot of a stream's aggregate state (a cache: deleting rows is safe).
CREATE TABLE IF NOT EXISTS tracseq_es_snapshots (
    stream_id      text        PRIMARY KEY,
    stream_type    text        NOT NULL,
    version        integer     NOT NULL,
    schema_version integer     NOT NULL,
    state          jsonb       NOT NULL,
    taken_at       timestamptz NOT NULL DEFAULT now()
);

-- How far each projection has applied the global feed (its read model's checkpoint).
CREATE TABLE IF NOT EXISTS tracseq_es_checkpoints (
    projection text        PRIMARY KEY,
    position   bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Append the events of one or more streams in one call, under the append lock.
--   p_streams / p_expected / p_counts: each stream once, with its expected version
--     (n >= 0: exactly n events so far, 0 = no stream; -1: any; -2: the stream exists)
--     and how many events it gets
--   p_ev_*: the events, in order; p_ev_base is the version of the event's stream
--     before the append when the caller knows it (exact expectation), else NULL, and
--     p_ev_k the event's rank in its stream's part (1, 2, ...)
--   p_exclusive: take the append lock exclusively; required when an expectation is
--     -1 or -2 (the next version is read, not known)
-- Raises SQLSTATE TQ409 (detail: JSON stream_id/expected/actual) for the first stream
-- whose version is not the expected one, or a unique violation on
-- tracseq_es_events_stream_version when a concurrent append of the same version
-- committed first; nothing is written then.
-- Returns the first position (the events take the next ones, in order), each stream's
-- version before the append (in p_streams order) and the recording time.
CREATE OR REPLACE FUNCTION tracseq_es_append(
    p_streams    text[],
    p_expected   integer[],
    p_counts     integer[],
    p_ev_stream  text[],
    p_ev_base    integer[],
    p_ev_k       integer[],
    p_ev_stype   text[],
    p_ev_id      text[],
    p_ev_type    text[],
    p_ev_source  text[],
    p_ev_subject text[],
    p_ev_time    timestamptz[],
    p_ev_schema  text[],
    p_ev_ext     text[],
    p_ev_data    text[],
    p_exclusive  boolean
) RETURNS TABLE (o_first bigint, o_bases integer[], o_recorded timestamptz)
-- Generic plans: planning each statement for every call cost more than running it.
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_n integer := coalesce(cardinality(p_ev_id), 0);
    v_first bigint;
    v_bad record;
BEGIN
    IF p_exclusive THEN
        PERFORM pg_advisory_xact_lock(1953722725, 'tracseq_es_events'::regclass::oid::integer);
    ELSE
        PERFORM pg_advisory_xact_lock_shared(1953722725,
                                             'tracseq_es_events'::regclass::oid::integer);
    END IF;

    -- An exact version n needs event n (for n > 0) and no event n + 1; "stream exists"
    -- needs event 1. A concurrent append of the same version that has not committed
    -- yet is caught by the unique index on insert instead (SQLSTATE 23505).
    -- (Scalar subqueries, not EXISTS: with a generic plan, EXISTS may become a hash join
    -- that reads the whole table; these stay index probes, one per stream.)
    SELECT s.id, s.expected INTO v_bad
    FROM unnest(p_streams, p_expected) AS s(id, expected)
    WHERE ((s.expected > 0 OR s.expected = -2) AND (
              SELECT e.version FROM tracseq_es_events e
              WHERE e.stream_id = s.id AND e.version = greatest(s.expected, 1)) IS NULL)
       OR (s.expected >= 0 AND (
              SELECT e.version FROM tracseq_es_events e
              WHERE e.stream_id = s.id AND e.version = s.expected + 1) IS NOT NULL)
    LIMIT 1;
    IF FOUND THEN
        PERFORM tracseq_es_conflict(v_bad.id, v_bad.expected);
    END IF;

    IF v_n > 0 THEN
        v_first := nextval('tracseq_es_position');
        IF v_n > 1 THEN
            PERFORM setval('tracseq_es_position', v_first + v_n - 1);
        END IF;
        INSERT INTO tracseq_es_events (position, stream_id, stream_type, version, event_id,
            type, source, subject, time, dataschema, extensions, data)
        SELECT v_first + x.n - 1, x.stream, x.stype,
               coalesce(x.base, (SELECT coalesce(max(e.version), 0)
                                 FROM tracseq_es_events e WHERE e.stream_id = x.stream))
               + x.k,
               x.id, x.etype, x.source, x.subject, x.time, x.schema, x.ext::jsonb,
               x.data::jsonb
        FROM unnest(p_ev_stream, p_ev_base, p_ev_k, p_ev_stype, p_ev_id, p_ev_type,
                    p_ev_source, p_ev_subject, p_ev_time, p_ev_schema, p_ev_ext, p_ev_data)
             WITH ORDINALITY AS x(stream, base, k, stype, id, etype, source, subject, time,
                                  schema, ext, data, n);
        PERFORM pg_notify('tracseq_eventsourcing', '');
    END IF;

    RETURN QUERY
    SELECT v_first,
           CASE WHEN EXISTS (SELECT 1 FROM unnest(p_expected) AS x(e) WHERE x.e < 0)
           THEN (SELECT array_agg(CASE WHEN s.expected >= 0 THEN s.expected
                                  ELSE (SELECT coalesce(max(e.version), 0)
                                        FROM tracseq_es_events e WHERE e.stream_id = s.id)
                                       - s.n END ORDER BY s.i)
                 FROM unnest(p_streams, p_expected, p_counts) WITH ORDINALITY
                      AS s(id, expected, n, i))
           END,
           now();
END;
$$;

-- Raise the conflict error for stream p_id, which did not meet p_expected.
CREATE OR REPLACE FUNCTION tracseq_es_conflict(p_id text, p_expected integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_actual integer;
BEGIN
    SELECT coalesce(max(version), 0) INTO v_actual
    FROM tracseq_es_events WHERE stream_id = p_id;
    RAISE EXCEPTION 'stream % is at version %, expected %', p_id, v_actual, p_expected
        USING ERRCODE = 'TQ409',
              DETAIL = json_build_object('stream_id', p_id, 'expected', p_expected,
                                         'actual', v_actual)::text;
END;
$$;

-- The highest position that is safe to read up to (see the top of this file), or NULL
-- if in-flight appends did not finish within p_timeout_ms. Call it in a transaction of
-- its own (or autocommit): the exclusive lock it takes lasts until that ends, and
-- appends wait for it meanwhile.
CREATE OR REPLACE FUNCTION tracseq_es_safe_head(p_timeout_ms integer)
RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('lock_timeout', p_timeout_ms::text, true);
    BEGIN
        PERFORM pg_advisory_xact_lock(1953722725, 'tracseq_es_events'::regclass::oid::integer);
    EXCEPTION WHEN lock_not_available THEN
        RETURN NULL;
    END;
    RETURN (SELECT coalesce(max(position), 0) FROM tracseq_es_events);
END;
$$;
