-- Acknowledgements per batch instead of per event (common/consumer.c,
-- docs/reliability.md section 1). A consumer that applies a batch of events writes one
-- row holding the outbox seqs of the batch's new events as a multirange, instead of one
-- row per event; the cursor's cleanup deletes a row once every event in it lies below
-- the cursor (top_xid, the newest transaction among them). What the primary key
-- (consumer, event_id) guaranteed - an event acknowledged by two transactions at once
-- (two instances of a consumer, the live path and the sweep) makes the second one wait
-- for the first and then fail or skip - is now an exclusion constraint: no two rows of
-- one consumer share a seq. A failed ack (a parked event) stays a row of its own, one
-- seq, with its error.
--
-- Rewrites consumer_acks, which the cursors keep small (the acks of the last few
-- seconds, plus the failed ones): the acknowledged events of each consumer become one
-- row, each failed one a row of its own. Milliseconds on a running system.
CREATE EXTENSION IF NOT EXISTS btree_gist;

ALTER TABLE consumer_acks RENAME TO consumer_acks_0050;
ALTER TABLE consumer_acks_0050 RENAME CONSTRAINT consumer_acks_pkey
    TO consumer_acks_0050_pkey;

CREATE TABLE consumer_acks (
    consumer text COLLATE "C" NOT NULL,
    seqs     int8multirange NOT NULL,     -- outbox.id of the events acknowledged
    top_xid  xid8 NOT NULL,               -- the newest outbox.xid among them
    at       timestamptz NOT NULL DEFAULT now(),
    error    text,          -- a parked event (one seq): why it could not be applied
    CONSTRAINT consumer_acks_not_empty CHECK (NOT isempty(seqs)),
    CONSTRAINT consumer_acks_once EXCLUDE USING gist (consumer WITH =, seqs WITH &&)
);

-- An ack whose event is no longer in the outbox keeps the newest transaction id as its
-- top: it goes once the cursor passes the transactions running now.
INSERT INTO consumer_acks (consumer, seqs, top_xid, at)
SELECT a.consumer, range_agg(int8range(a.event_id, a.event_id, '[]')),
       max(coalesce(o.xid, pg_current_xact_id())), max(a.at)
  FROM consumer_acks_0050 a LEFT JOIN outbox o ON o.id = a.event_id
 WHERE a.error IS NULL
 GROUP BY a.consumer;
INSERT INTO consumer_acks (consumer, seqs, top_xid, at, error)
SELECT a.consumer, int8multirange(int8range(a.event_id, a.event_id, '[]')),
       coalesce(o.xid, pg_current_xact_id()), a.at, a.error
  FROM consumer_acks_0050 a LEFT JOIN outbox o ON o.id = a.event_id
 WHERE a.error IS NOT NULL;

DROP TABLE consumer_acks_0050;
