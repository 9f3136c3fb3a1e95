-- Bounded retries that survive a restart (common/consumer.c, docs/reliability.md
-- section 2). Written only off the hot path: when an event or a batch failed, before
-- the next try of an event that failed before, and after an unclean exit for the
-- events that may have been in flight. A batch that applies its events writes nothing
-- here (it deletes the rows of the events it applied that had one).

-- The tries of an event that failed (or was in a batch that failed, or in flight when
-- its consumer died), counted before each further try, so a poison event that kills
-- its consumer (kill -9, abort) is parked after LEADFLOW_CONSUMER_ATTEMPTS tries
-- instead of being tried at every restart for ever.
CREATE TABLE consumer_attempts (
    consumer text COLLATE "C" NOT NULL,
    event_id bigint NOT NULL,           -- outbox.id (the envelope's seq)
    attempts integer NOT NULL,          -- tries counted so far
    sqlstate text,                      -- of the last failed try (NULL: none known)
    tried_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- The running instances of each consumer, by the PostgreSQL backend of their
-- connection: a row whose backend is gone belongs to an instance that died without
-- its clean exit (which deletes the row), so the instance starting next counts a try
-- for the events that may have been in flight.
CREATE TABLE consumer_instances (
    consumer      text COLLATE "C" NOT NULL,
    backend_pid   integer NOT NULL,
    backend_start timestamptz NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, backend_pid, backend_start)
);

-- The error a parked event kept could quote the event's data (a name, and a phone
-- number or e-mail address half masked): the values it quotes are masked, as the
-- consumer now stores them (lf_log_mask_values).
UPDATE consumer_parked SET error = regexp_replace(error, ': "[^"]*"', ': "***"', 'g')
 WHERE error LIKE '%"%';
UPDATE consumer_acks SET error = regexp_replace(error, ': "[^"]*"', ': "***"', 'g')
 WHERE error LIKE '%"%';
