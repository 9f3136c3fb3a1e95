-- Parked events: events a consumer gave up on (common/consumer.c). A handler that
-- fails on an event for a reason of its own, or loses a race (deadlock, lock or
-- statement timeout) on every one of its bounded tries, leaves the event here, beside
-- its failed ack (consumer_acks.error), in the same transaction: the event is not lost
-- and no sweep applies it again. An operator reads this table and asks for a replay by
-- setting replay_requested_at (docs/operations.md, "Parked events"); the consumer then
-- applies the event and deletes the row in one transaction.
CREATE TABLE consumer_parked (
    consumer  text COLLATE "C" NOT NULL,
    event_id  bigint NOT NULL,          -- outbox.id (the envelope's seq)
    type      text NOT NULL,            -- the event's type, for the operator
    attempts  integer NOT NULL,         -- failed tries, replays included
    sqlstate  text,                     -- of the last failure (NULL: the handler refused)
    error     text,                     -- its message (may quote the event's data)
    parked_at timestamptz NOT NULL DEFAULT now(),
    replay_requested_at timestamptz,    -- set by an operator: apply it again
    PRIMARY KEY (consumer, event_id)
);

-- The events set aside before this table existed (a failed ack and nothing else) are
-- parked too, so they can be seen and replayed the same way.
INSERT INTO consumer_parked (consumer, event_id, type, attempts, error, parked_at)
SELECT a.consumer, a.event_id, o.type, 1, a.error, a.at
  FROM consumer_acks a JOIN outbox o ON o.id = a.event_id
 WHERE a.error IS NOT NULL;
