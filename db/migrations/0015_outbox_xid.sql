-- 0015_outbox_xid: consumers' cursors follow transaction ids, not a 60-second rule.
--
-- Outbox ids come from a sequence, and transactions commit out of order: id 41 can
-- become visible after id 42. Until now a consumer's cursor (safe_id) moved past events
-- that were all acknowledged and whose `at` was more than 60 seconds old; `at` is the
-- start of the producing transaction, so a transaction that committed more than 60
-- seconds after a later one had its event skipped for ever.
--
-- Now every outbox row carries the id of the transaction that wrote it (xid, filled by
-- the column default pg_current_xact_id(), the top-level transaction even inside a
-- savepoint). PostgreSQL tells which transactions may still commit:
-- pg_snapshot_xmin(pg_current_snapshot()) is the oldest one still running, so every
-- row of a transaction below it is either visible now or never will be. A consumer's
-- cursor (safe_xid) therefore never passes that xmin, nor an event of its types that
-- it has not acknowledged; an event below the cursor is done for that consumer, and
-- its acknowledgement can be pruned. safe_id stays as the floor the old rule reached:
-- events at or below it were passed before this migration and are done too.
--
-- Rows written before this migration get xid 1 (a constant default: no table rewrite),
-- which keeps them at or above every cursor until they are acknowledged.

ALTER TABLE outbox ADD COLUMN xid xid8 NOT NULL DEFAULT '1';
ALTER TABLE outbox ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
CREATE INDEX outbox_xid ON outbox (xid);

ALTER TABLE consumer_cursors
    ADD COLUMN safe_xid xid8 NOT NULL DEFAULT '1',
    ADD COLUMN advanced_at timestamptz;
COMMENT ON COLUMN consumer_cursors.safe_id IS
    'events with id <= safe_id were passed by the cursor rule before 0015: done';
COMMENT ON COLUMN consumer_cursors.safe_xid IS
    'events written by a transaction whose id is below safe_xid are done for this consumer';
