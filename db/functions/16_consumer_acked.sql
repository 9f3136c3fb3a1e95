-- consumer_acked: repeatable. Edit here, not in a migration.
-- The acknowledgements one row per event, as consumer_acks held them before it kept one
-- row per batch (0051_consumer_ack_batches.sql): for an operator looking for an event's
-- ack, and for tests. Reads and unpacks every ack row; the consumers never use it (they
-- probe consumer_acks by seq range, common/consumer.c).
DROP VIEW IF EXISTS consumer_acked;
CREATE VIEW consumer_acked AS
SELECT a.consumer, s.event_id, a.at, a.error
  FROM consumer_acks a
 CROSS JOIN LATERAL unnest(a.seqs) r
 CROSS JOIN LATERAL generate_series(lower(r), upper(r) - 1) s(event_id);
