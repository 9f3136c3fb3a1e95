-- leadflow:no-transaction
-- 0059_notifications_timer_partial: the unique index of notifications.timer_id holds the
-- notifications of a timer only.
-- `notifications_timer_id_key` (the UNIQUE constraint on timer_id) is what makes a timer
-- fire one notification however often its firing is retried (ON CONFLICT (timer_id) DO
-- NOTHING in the scheduler's and keep-alive's functions). It also held an entry under
-- NULL for every notification that no timer made: the router's lead_assigned and
-- pool_waiting for every routed lead, the reassignment and claim notifications. No query
-- reads those entries (NULLs never conflict, and nothing looks a notification up by a
-- NULL timer id), yet each cost the insert a descent into the index and a WAL record.
-- The new index is partial, `WHERE timer_id IS NOT NULL`: the same guarantee for the
-- notifications of a timer, no entry for the others. The functions name the predicate in
-- their ON CONFLICT clause (`ON CONFLICT (timer_id) WHERE timer_id IS NOT NULL`), which
-- PostgreSQL needs to infer a partial index, and which the old constraint also
-- satisfies. The router's batch: one WAL record (3 -> 2) and about 65 bytes fewer per
-- notification (docs/benchmarks.md, "The router's backend, sixth pass").
--
-- BUILDS AN INDEX ON A BIG TABLE: CREATE UNIQUE INDEX CONCURRENTLY reads all of
-- `notifications` once while the services go on writing (its entries are those of the
-- timers' notifications only); then the constraint is dropped (an ACCESS EXCLUSIVE lock
-- on notifications for milliseconds). From that drop until the migrator re-applies the
-- function folder a moment later, a scheduler of the previous version firing a timer
-- fails that transaction (its ON CONFLICT names no predicate) and fires the timer again
-- on its next pass: nothing is lost or fired twice. If the build is interrupted,
-- PostgreSQL leaves an invalid index `notifications_timer_once` behind: DROP INDEX it and
-- run leadflow-migrate again.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS notifications_timer_once
    ON notifications (timer_id) WHERE timer_id IS NOT NULL;
ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_timer_id_key;
