-- leadflow:no-transaction
-- 0061_notify_deliveries_order: the rows a destination has waiting, in the order its
-- messages take them.
-- lf_notify_lease (db/functions/92_lf_notify_lease.sql) picks a destination's next
-- message as its first waiting rows by `urgent DESC, id`: the batch to retry, or up to
-- p_merge rows merged into one message. The only index by destination was
-- `notify_deliveries_due` (dest_key, next_at), so each lease read every due row of the
-- destination and sorted them to keep a few: with a backlog (a receiver down for hours,
-- a destination paused, a burst) every message cost a read of the whole backlog. With
-- 200,000 rows waiting for one robot a lease read 400,065 rows and took 73-76 ms; with
-- this index it reads 86 and takes 2.1 ms (docs/benchmarks.md, "The notification
-- lease"). The due index stays: the lease's test of whether a destination has anything
-- due at all walks it.
--
-- BUILDS AN INDEX ON A BIG TABLE: CREATE INDEX CONCURRENTLY reads the waiting rows of
-- `notify_deliveries` (the index is partial: rows pending or being sent) while the
-- services go on writing. If the build is interrupted, PostgreSQL leaves an invalid
-- index `notify_deliveries_order` behind: DROP INDEX it and run leadflow-migrate again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS notify_deliveries_order
    ON notify_deliveries (dest_key, urgent DESC, id) WHERE state IN ('pending', 'sending');
