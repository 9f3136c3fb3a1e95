/* consumer.c - idempotent outbox consumers.
 *
 * Every event a consumer applies is acknowledged in the same transaction as its effect,
 * so a redelivery - ZeroMQ, the sweep, a twin instance - finds the ack and does
 * nothing. An ack row (consumer_acks) holds the seqs of all the events one transaction
 * of the batch path applied, as a multirange (0051_consumer_ack_batches.sql): one row
 * per consumer and batch, not one per event; the per-event path and a parked event
 * write a row of one seq. Whether an event has an ack is read for a whole window or
 * batch at once: the rows that overlap its seq range, merged into one multirange
 * (S_ACKED), each event then tested in memory. That read sees only what its snapshot
 * sees; what it cannot see - an ack of the same event by a twin's transaction still
 * running, or committed just after - is caught by the table's exclusion constraint (no
 * two rows of a consumer share a seq), which makes the second insert wait for the
 * first transaction and then insert nothing (ON CONFLICT DO NOTHING): the batch is
 * rolled back and taken again with a snapshot that sees the twin's acks.
 *
 * Acks would grow for ever, so each consumer also has a cursor (consumer_cursors):
 * events below it are done and their acks are pruned. Outbox ids come from a sequence
 * and transactions commit out of order (id 41 can become visible after id 42), so the
 * cursor is not an id but a transaction id: every outbox row carries the xid8 of the
 * transaction that wrote it (0015_outbox_xid.sql), and the cursor (safe_xid) never
 * passes pg_snapshot_xmin(pg_current_snapshot()), the oldest transaction that may
 * still commit, nor an event of the consumer's types that has no ack. An event that
 * becomes visible later therefore always lies at or above the cursor. An ack row goes
 * once every event in it lies below the cursor: the row keeps the newest outbox xid of
 * its events (top_xid), so the cleanup is a delete by that column, with no join to the
 * outbox.
 *
 * An event below the cursor has lost its ack, so "no ack" no longer means "not done":
 * acks are only ever inserted for events at or above the cursor, read under a share
 * lock on the cursor row that the transaction keeps until it commits (the advance
 * takes the row FOR UPDATE, so the cursor cannot pass an event while a batch is
 * acknowledging it). A ZeroMQ envelope that waited in a socket queue while the cursor
 * passed its event is recognised as done and applied nothing. */
#include "lf/consumer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/event.h"
#include "lf/log.h"
#include "lf/pgarray.h"
#include "lf/util.h"

/* How many batches after a redelivery are checked against the acks first. While a
 * consumer is behind, the sweep and ZeroMQ hand it the same events in turn (the sweep's
 * window, then the socket's batch of the same events, then a batch beyond the window,
 * then the next window...), so the check stays on for a while, not one batch. */
enum { S_DUP_BATCHES = 32 };

/* The seqs a consumer ($1) has acknowledged among those of a seq range (an int8range
 * expression), as one multirange: one read of the ack rows that overlap the range (an
 * index probe of consumer_acks_once), planned once per statement, never per event;
 * each event is then tested in memory (seq <@ multirange). */
#define S_ACKED(range)                                                                   \
    "(SELECT coalesce(range_agg(a.seqs), '{}'::int8multirange) FROM consumer_acks a "    \
    "WHERE a.consumer = $1 AND a.seqs && " range ")"
/* The same over all of the consumer's acks (the cursors keep them few). */
#define S_ACKED_ALL                                                                      \
    "(SELECT coalesce(range_agg(a.seqs), '{}'::int8multirange) FROM consumer_acks a "    \
    "WHERE a.consumer = $1)"

struct lf_consumer {
    lf_db_t *db;         /* borrowed: this consumer's connection */
    char name[64];       /* consumer name in consumer_acks */
    char types[512];     /* the event types as a PostgreSQL text[] literal */
    lf_event_fn fn;      /* applies one event */
    void *arg;           /* passed to fn */
    json_t *pending_pub; /* envelopes queued by handlers in the open batch */
    json_t *committed;   /* envelopes of the last committed batches, not taken yet */
    void (*on_batch)(void *arg, int committed); /* optional, see lf_consumer_on_batch */
    int (*before_commit)(void *arg,
                         lf_db_t *db); /* optional, lf_consumer_before_commit */
    int (*on_begin)(void *arg, lf_db_t *db, json_t *const *envs,
                    size_t n); /* optional, see lf_consumer_on_begin */
    lf_batch_fn batch_fn;      /* optional, see lf_consumer_set_batch_fn */
    int batch_flags;           /* LF_BATCH_* */
    long long sweep_from;      /* batch path: the sweep pages on from here (0: cursor) */
    int dup_recent; /* batch path: batches left to check first (s_drop_acked) */
    /* The cursor as read (and share-locked) by the open batch transaction. */
    char cur_xid[24];  /* safe_xid as text */
    char cur_id[24];   /* safe_id (the pre-0015 floor) as text */
    char last_xid[24]; /* safe_xid after the last advance, for lf_consumer_cursor */
    /* Events whose handler lost a race (a transient failure) and are waiting for their
     * next try: see s_retry_*. */
    struct s_retry {
        long long seq;
        int attempts;     /* failed tries so far */
        char sqlstate[8]; /* of the last failed try */
        int64_t next_ms;  /* lf_mono_ms() before which the event is left out */
    } * retry;
    size_t nretry, retry_cap;
    int max_attempts; /* tries before an event is parked */
    int backoff_ms;   /* the wait after the first failed try; doubles after each */
    long parked;      /* events this process parked */
    /* The tries counted durably (consumer_attempts; see s_start and s_count). */
    int started;           /* s_start done: instance registered, tries loaded */
    long long suspect_max; /* after an unclean exit: events up to this seq may have
                              been in flight when the last instance died (0: none) */
    char inst_pid[16];     /* this instance's consumer_instances row ("": none) */
    char inst_start[64];
    long long *pre; /* the events of the open transaction whose try was counted
                       before it began: their rows go when it commits */
    size_t npre, pre_cap;
    long long fail_seq; /* the event whose handler lost a race in the open batch */
    char fail_state[8]; /* its SQLSTATE */
    int fail_counted;   /* that try was counted before it began */
};

lf_consumer_t *lf_consumer_new(lf_db_t *db, const char *name, const char *const *types,
                               lf_event_fn fn, void *arg) {
    lf_consumer_t *self = lf_calloc(1, sizeof *self);
    self->db = db;
    lf_strlcpy(self->name, name, sizeof self->name);
    size_t n = lf_strlcpy(self->types, "{", sizeof self->types);
    for (const char *const *t = types; *t; t++) {
        n += (size_t)snprintf(self->types + n, sizeof self->types - n, "%s%s",
                              t == types ? "" : ",", *t);
    }
    snprintf(self->types + n, sizeof self->types - n, "}");
    self->fn = fn;
    self->arg = arg;
    self->pending_pub = json_array();
    self->committed = json_array();
    self->max_attempts = LF_CONSUMER_ATTEMPTS;
    self->backoff_ms = LF_CONSUMER_BACKOFF_MS;
    return self;
}

void lf_consumer_set_retry(lf_consumer_t *self, int max_attempts, int backoff_ms) {
    self->max_attempts = max_attempts < 1 ? 1 : max_attempts;
    self->backoff_ms = backoff_ms < 0 ? 0 : backoff_ms;
}

long lf_consumer_parked(const lf_consumer_t *self) {
    return self->parked;
}

void lf_consumer_destroy(lf_consumer_t **self_p) {
    if (!self_p || !*self_p)
        return;
    lf_consumer_t *self = *self_p;
    /* A clean exit: no try of ours is left in flight (s_start). Never inside a
     * transaction, and never on a connection that broke (no reconnect here). */
    if (self->inst_pid[0] && self->db && self->db->conn && !self->db->in_tx &&
        PQstatus(self->db->conn) == CONNECTION_OK) {
        const char *p[] = {self->name, self->inst_pid, self->inst_start};
        lf_db_cmd(self->db,
                  "DELETE FROM consumer_instances WHERE consumer = $1 "
                  "AND backend_pid = $2::int AND backend_start = $3::timestamptz",
                  3, p);
    }
    json_decref(self->pending_pub);
    json_decref(self->committed);
    free(self->retry);
    free(self->pre);
    free(self);
    *self_p = NULL;
}

int lf_consumer_seq_only(const lf_consumer_t *self) {
    return self->batch_fn && (self->batch_flags & LF_BATCH_SEQ_ONLY);
}

const char *lf_consumer_name(const lf_consumer_t *self) {
    return self->name;
}

void lf_consumer_on_batch(lf_consumer_t *self, void (*fn)(void *arg, int committed)) {
    self->on_batch = fn;
}

void lf_consumer_before_commit(lf_consumer_t *self, int (*fn)(void *arg, lf_db_t *db)) {
    self->before_commit = fn;
}

void lf_consumer_on_begin(lf_consumer_t *self, int (*fn)(void *arg, lf_db_t *db,
                                                         json_t *const *envs, size_t n)) {
    self->on_begin = fn;
}

/* Runs the before-commit hook, deletes the counted tries of the events whose try was
 * counted before this transaction (applied, parked or found done: their count is
 * over), then commits. Returns 0, or -1 (still open: the caller rolls back). */
static int s_commit(lf_consumer_t *self) {
    if (self->before_commit &&
        (self->before_commit(self->arg, self->db) < 0 || self->db->err))
        return -1;
    if (self->npre > 0) {
        lf_pgarray_t a;
        lf_pgarray_init(&a);
        for (size_t i = 0; i < self->npre; i++)
            lf_pgarray_add_int(&a, self->pre[i]);
        const char *p[] = {self->name, lf_pgarray_end(&a)};
        int rc = lf_db_cmd(self->db,
                           "DELETE FROM consumer_attempts WHERE consumer = $1 "
                           "AND event_id = ANY ($2::bigint[])",
                           2, p);
        lf_pgarray_free(&a);
        if (rc < 0)
            return -1;
    }
    return lf_db_commit(self->db) < 0 ? -1 : 0;
}

void lf_consumer_set_batch_fn(lf_consumer_t *self, lf_batch_fn fn, int flags) {
    self->batch_fn = fn;
    self->batch_flags = flags;
}

void lf_consumer_publish_after_commit(lf_consumer_t *self, json_t *env) {
    if (env)
        json_array_append_new(self->pending_pub, env);
}

void lf_consumer_publish_text_after_commit(lf_consumer_t *self, const char *type,
                                           const char *text) {
    json_t *pair = json_array();
    json_array_append_new(pair, json_string(type));
    json_array_append_new(pair, json_stringn_nocheck(text, strlen(text)));
    json_array_append_new(self->pending_pub, pair);
}

json_t *lf_consumer_take_published(lf_consumer_t *self) {
    json_t *out = self->committed;
    self->committed = json_array();
    return out;
}

static int s_cmp_seq(const void *a, const void *b) {
    long long x = lf_event_seq(*(json_t *const *)a);
    long long y = lf_event_seq(*(json_t *const *)b);
    return (x > y) - (x < y);
}

/* Opens the batch transaction and reads the cursor under a share lock held until it
 * ends: the advance (FOR UPDATE) waits for this batch, so no event this batch
 * acknowledges can fall below the cursor before its ack is committed. A missing
 * cursor row (a consumer's first batch) is created. Returns 0, or -1 (rolled back). */
static int s_begin(lf_consumer_t *self) {
    if (lf_db_begin(self->db) < 0)
        return -1;
    const char *p[] = {self->name};
    for (int attempt = 0; attempt < 2; attempt++) {
        PGresult *res = lf_db_exec_prepared(
            self->db, "lf_consumer_cursor_share",
            "SELECT safe_xid::text, safe_id FROM consumer_cursors WHERE consumer = $1 "
            "FOR SHARE",
            1, p);
        if (!res)
            break;
        int found = PQntuples(res) == 1;
        if (found) {
            lf_strlcpy(self->cur_xid, PQgetvalue(res, 0, 0), sizeof self->cur_xid);
            lf_strlcpy(self->cur_id, PQgetvalue(res, 0, 1), sizeof self->cur_id);
        }
        PQclear(res);
        if (found)
            return 0;
        if (lf_db_cmd(self->db,
                      "INSERT INTO consumer_cursors (consumer) VALUES ($1) "
                      "ON CONFLICT DO NOTHING",
                      1, p) < 0)
            break;
    }
    if (!self->db->err)
        lf_strlcpy(self->db->errstr, "consumer cursor row cannot be created",
                   sizeof self->db->errstr);
    lf_db_rollback(self->db);
    return -1;
}

/* s_begin, then the consumer's on_begin hook with the batch. Returns 0, or -1 (rolled
 * back). */
static int s_begin_batch(lf_consumer_t *self, json_t *const *envs, size_t n) {
    if (s_begin(self) < 0)
        return -1;
    if (self->on_begin &&
        (self->on_begin(self->arg, self->db, envs, n) < 0 || self->db->err)) {
        lf_db_rollback(self->db);
        return -1;
    }
    return 0;
}

/* The ack of one event, inserted only when the event lies at or above the cursor
 * read by s_begin ($3, $4) and has no ack yet. */
static const char *const s_ack_one_sql =
    "INSERT INTO consumer_acks (consumer, seqs, top_xid) "
    "SELECT $1, int8multirange(int8range(o.id, o.id, '[]')), o.xid FROM outbox o "
    "WHERE o.id = $2::bigint AND o.xid >= $3::xid8 AND o.id > $4::bigint "
    "ON CONFLICT DO NOTHING";

/* Does a handler's failure say nothing about its event? The transaction lost a race
 * (deadlock, serialization failure, lock not available, statement timeout: class 40,
 * 55P03, class 57) or the server went away or ran short (classes 08 and 53). The same
 * event applies once the batch is tried again; parked at once, it would wait for a replay
 * (a scheduler deadlocked with the router left a lead without its first-contact timer,
 * docs/reliability.md section 2). */
static int s_transient(const char *sqlstate) {
    static const char *const classes[] = {"40", "57", "08", "53", NULL};
    for (const char *const *c = classes; *c; c++)
        if (!strncmp(sqlstate, *c, 2))
            return 1;
    return !strcmp(sqlstate, "55P03");
}

/* Bounded retries. An event whose handler lost a race is tried again at once (a race
 * lost once is usually won on the next try), then after a wait that doubles with each
 * failed try (backoff_ms, 2 x, 4 x, ... up to a minute), meanwhile left out of the
 * batches, so the events behind it go on. After max_attempts tries it is parked
 * (s_park).
 *
 * The tries are counted in consumer_attempts, so the count survives a restart, and
 * only off the hot path: a batch that applies its events writes nothing there. A try
 * is counted
 *   - when an event's handler lost a race in a batch (the event, after the rollback);
 *   - when a batch failed as a whole - a hook that runs once per batch, such as the
 *     lead locks taken before any event, or the commit - for reasons that are not the
 *     server's (each event of the batch, after the rollback);
 *   - before every further try of an event counted so: such an event is tried alone,
 *     in a transaction of its own (s_alone), so a batch that keeps failing falls back
 *     to one event at a time and the one that fails is parked on its own, and a try
 *     that kills the process (kill -9, an abort, an OOM kill) is counted all the same;
 *   - after an unclean exit (s_start), before the first try of each event that may
 *     have been in flight: those tries count the one that was cut short too.
 * Each is one statement outside the batch's transaction; the rows of the events a
 * transaction applies or parks are deleted in it (s_commit). This process keeps the
 * counts it knows in `retry`, loaded at start: a twin instance's counts are seen at its
 * next start. */
static struct s_retry *s_retry_find(lf_consumer_t *self, long long seq) {
    for (size_t i = 0; i < self->nretry; i++)
        if (self->retry[i].seq == seq)
            return &self->retry[i];
    return NULL;
}

static void s_retry_forget(lf_consumer_t *self, long long seq) {
    struct s_retry *r = s_retry_find(self, seq);
    if (r)
        *r = self->retry[--self->nretry];
}

/* Records that seq has been tried `attempts` times, the last failing with sqlstate
 * (NULL: keep the one known), and when it may be tried next. */
static void s_retry_set(lf_consumer_t *self, long long seq, int attempts,
                        const char *sqlstate) {
    struct s_retry *r = s_retry_find(self, seq);
    if (!r) {
        if (self->nretry == self->retry_cap) {
            self->retry_cap = self->retry_cap ? self->retry_cap * 2 : 8;
            self->retry = lf_realloc(self->retry, self->retry_cap * sizeof *self->retry);
        }
        r = &self->retry[self->nretry++];
        *r = (struct s_retry){.seq = seq};
    }
    r->attempts = attempts;
    if (sqlstate)
        lf_strlcpy(r->sqlstate, sqlstate, sizeof r->sqlstate);
    int64_t wait = attempts > 1 ? self->backoff_ms : 0;
    for (int i = 2; i < attempts && wait < 60000; i++)
        wait *= 2;
    r->next_ms = lf_mono_ms() + (wait < 60000 ? wait : 60000);
}

/* Is seq waiting for its next try? */
static int s_retry_waiting(lf_consumer_t *self, long long seq) {
    struct s_retry *r = s_retry_find(self, seq);
    return r && r->attempts < self->max_attempts && lf_mono_ms() < r->next_ms;
}

/* Counts a try of each of seqs[0..n) (sorted) in consumer_attempts, outside any
 * transaction, so the count outlives a batch that rolls back and a process that dies:
 * a new row starts at `first`, a row there goes up by one; sqlstate (NULL or "": none)
 * is the failure's. The counts come back into `retry`. Returns 0 or -1. */
static int s_count(lf_consumer_t *self, const long long *seqs, size_t n, int first,
                   const char *sqlstate) {
    if (n == 0)
        return 0;
    lf_pgarray_t a;
    lf_pgarray_init(&a);
    for (size_t i = 0; i < n; i++)
        if (i == 0 || seqs[i] != seqs[i - 1])
            lf_pgarray_add_int(&a, seqs[i]);
    char f[16];
    snprintf(f, sizeof f, "%d", first);
    const char *st = sqlstate && *sqlstate ? sqlstate : NULL;
    const char *p[] = {self->name, lf_pgarray_end(&a), f, st};
    PGresult *res = lf_db_exec_prepared(
        self->db, "lf_consumer_count",
        "INSERT INTO consumer_attempts AS t (consumer, event_id, attempts, sqlstate) "
        "SELECT $1, u.id, $3::int, $4 FROM unnest($2::bigint[]) u(id) ORDER BY u.id "
        "ON CONFLICT (consumer, event_id) DO UPDATE SET attempts = t.attempts + 1, "
        "sqlstate = coalesce(EXCLUDED.sqlstate, t.sqlstate), tried_at = now() "
        "RETURNING event_id, attempts",
        4, p);
    lf_pgarray_free(&a);
    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++)
        s_retry_set(self, atoll(PQgetvalue(res, i, 0)), atoi(PQgetvalue(res, i, 1)), st);
    PQclear(res);
    return 0;
}

/* The SQLSTATE of a failed try that was counted before it began, and its backoff. */
static void s_note(lf_consumer_t *self, long long seq, const char *sqlstate) {
    struct s_retry *r = s_retry_find(self, seq);
    if (!r)
        return;
    s_retry_set(self, seq, r->attempts, sqlstate && *sqlstate ? sqlstate : NULL);
    if (sqlstate && *sqlstate) {
        char id[24];
        snprintf(id, sizeof id, "%lld", seq);
        const char *p[] = {self->name, id, sqlstate};
        lf_db_cmd(self->db,
                  "UPDATE consumer_attempts SET sqlstate = $3 "
                  "WHERE consumer = $1 AND event_id = $2::bigint",
                  3, p);
    }
}

/* Once per process, before its first batch: registers this instance (its connection's
 * backend) in consumer_instances, and loads the counted tries. A row of an instance
 * whose backend is gone is one that died without its clean exit (lf_consumer_destroy
 * deletes the row): it may have died while handling an event - a poison event that
 * crashes the process - and that try was never counted. Then every event up to the
 * outbox's last id counts a try before its first one here (suspect_max): an event that
 * kills every instance reaches max_attempts and is parked at the next start, without
 * another try. Returns 0, or -1 (tried again with the next batch). */
static int s_start(lf_consumer_t *self) {
    if (lf_db_begin(self->db) < 0)
        return -1;
    const char *p[] = {self->name};
    PGresult *res = lf_db_exec(
        self->db,
        "WITH dead AS (DELETE FROM consumer_instances i WHERE i.consumer = $1 "
        " AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = i.backend_pid "
        " AND a.backend_start = i.backend_start) RETURNING 1), "
        "me AS (INSERT INTO consumer_instances (consumer, backend_pid, backend_start) "
        " SELECT $1, a.pid, a.backend_start FROM pg_stat_activity a "
        " WHERE a.pid = pg_backend_pid() ON CONFLICT DO NOTHING "
        " RETURNING backend_pid::text AS pid, backend_start::text AS since) "
        "SELECT (SELECT count(*) FROM dead), (SELECT coalesce(max(id), 0) FROM outbox), "
        "me.pid, me.since FROM (SELECT 1) x LEFT JOIN me ON true",
        1, p);
    if (!res)
        goto fail;
    long dead = atol(PQgetvalue(res, 0, 0));
    long long max_id = atoll(PQgetvalue(res, 0, 1));
    if (!PQgetisnull(res, 0, 2)) {
        lf_strlcpy(self->inst_pid, PQgetvalue(res, 0, 2), sizeof self->inst_pid);
        lf_strlcpy(self->inst_start, PQgetvalue(res, 0, 3), sizeof self->inst_start);
    }
    PQclear(res);
    res = lf_db_exec(self->db,
                     "SELECT event_id, attempts, coalesce(sqlstate, '') "
                     "FROM consumer_attempts WHERE consumer = $1",
                     1, p);
    if (!res)
        goto fail;
    for (int i = 0; i < PQntuples(res); i++) {
        long long seq = atoll(PQgetvalue(res, i, 0));
        s_retry_set(self, seq, atoi(PQgetvalue(res, i, 1)), PQgetvalue(res, i, 2));
        s_retry_find(self, seq)->next_ms = 0; /* a new process: try at once */
    }
    int counted = PQntuples(res);
    PQclear(res);
    if (lf_db_commit(self->db) < 0)
        goto fail;
    self->started = 1;
    if (dead > 0) {
        self->suspect_max = max_id;
        lf_warn("consumer started after an unclean exit consumer=%s instances=%ld: the "
                "events up to seq=%lld count the try that may have been cut short",
                self->name, dead, max_id);
    }
    if (counted > 0)
        lf_info("consumer has events with failed tries consumer=%s events=%d", self->name,
                counted);
    return 0;
fail:
    lf_db_rollback(self->db);
    return -1;
}

/* Remembers that seq's try in the transaction about to begin was counted before it. */
static void s_pre_add(lf_consumer_t *self, long long seq) {
    if (self->npre == self->pre_cap) {
        self->pre_cap = self->pre_cap ? self->pre_cap * 2 : 16;
        self->pre = lf_realloc(self->pre, self->pre_cap * sizeof *self->pre);
    }
    self->pre[self->npre++] = seq;
}

static int s_pre_has(const lf_consumer_t *self, long long seq) {
    for (size_t i = 0; i < self->npre; i++)
        if (self->pre[i] == seq)
            return 1;
    return 0;
}

/* Does a failure of a whole batch (not of one event's handler) count as a try of its
 * events? Not when the server went away, ran short or is shutting down (the
 * connection broke; classes 08, 53, 57P): the events are not at fault, and counting
 * would park them while PostgreSQL restarts. A lost race (a lock or statement
 * timeout behind a stuck session, a deadlock) and any other error do. */
static int s_batch_failure_counts(const lf_consumer_t *self) {
    if (!self->db->conn || PQstatus(self->db->conn) != CONNECTION_OK)
        return 0;
    const char *st = self->db->err ? lf_db_sqlstate(self->db) : "";
    if (!st)
        st = "";
    return strncmp(st, "08", 2) && strncmp(st, "53", 2) && strncmp(st, "57P", 3);
}

/* What is stored about the last failure (consumer_parked.error, the failed ack's
 * error), where an operator reads it and may paste it into a ticket: PostgreSQL's
 * message with the values it quotes masked whole (lf_log_mask_values; lf_db scrubbed
 * phone numbers and e-mail addresses already), never the event's data. */
static const char *s_error_text(const lf_consumer_t *self, char *buf, size_t sz) {
    lf_strlcpy(buf, self->db->err ? self->db->errstr : "handler failed", sz);
    return lf_log_mask_values(buf);
}

/* What a log line may say about the last failure: its SQLSTATE, never PostgreSQL's
 * message, which quotes the values it choked on (a phone number, a name). Without an
 * SQLSTATE (the connection failed) libpq's own message, masked as s_error_text
 * stores it. */
static const char *s_reason(const lf_consumer_t *self, char *buf, size_t sz) {
    const char *st = self->db->err ? lf_db_sqlstate(self->db) : "";
    if (st && *st) {
        snprintf(buf, sz, "sqlstate=%s", st);
        return buf;
    }
    return s_error_text(self, buf, sz);
}

/* Parks the event inside the open savepoint (the handler's changes already rolled
 * back): a failed ack, so no path applies it again and the cursor may pass it, and
 * its consumer_parked row, which an operator sees and replays (lf_consumer_replay).
 * Logs it once, without personal data. Returns 0, or -1 (the batch is rolled back and
 * the event comes back). */
static int s_park(lf_consumer_t *self, const json_t *env, const char *seq, int attempts,
                  const char *sqlstate, const char *error) {
    char n[16];
    snprintf(n, sizeof n, "%d", attempts);
    const char *type = lf_event_type(env);
    const char *q[] = {self->name, seq, error, n,
                       sqlstate && *sqlstate ? sqlstate : NULL};
    if (lf_db_cmd(self->db,
                  "INSERT INTO consumer_acks (consumer, seqs, top_xid, error) "
                  "SELECT $1, int8multirange(int8range(o.id, o.id, '[]')), o.xid, $3 "
                  "FROM outbox o WHERE o.id = $2::bigint",
                  3, q) < 0 ||
        lf_db_cmd(self->db,
                  "INSERT INTO consumer_parked (consumer, event_id, type, attempts, "
                  "sqlstate, error) SELECT $1, o.id, o.type, $4, $5, $3 FROM outbox o "
                  "WHERE o.id = $2::bigint",
                  5, q) < 0)
        return -1;
    self->parked++;
    lf_error("event parked consumer=%s seq=%s type=%s tries=%d %s%s "
             "(replay: docs/operations.md, \"Parked events\")",
             self->name, seq, type ? type : "?", attempts,
             sqlstate && *sqlstate ? "sqlstate=" : "handler failed",
             sqlstate && *sqlstate ? sqlstate : "");
    return 0;
}

/* How s_apply tries an event. */
enum {
    S_FIRST,   /* in a batch, its try not counted yet */
    S_COUNTED, /* its try was counted before the transaction began */
    S_GIVE_UP  /* tried max_attempts times: park it without another try */
};

/* Applies one event under a savepoint. Returns 1 applied, 0 already done or
 * recorded as failed, -1 connection-level or transient failure (abort the batch: it
 * is tried again from the outbox; fail_seq names the event when its handler lost the
 * race). Every path that returns 0 or 1 releases the savepoint: a batch never nests
 * subtransactions. */
static int s_apply(lf_consumer_t *self, const json_t *env, int mode) {
    char seq[24];
    snprintf(seq, sizeof seq, "%lld", lf_event_seq(env));
    const char *p[] = {self->name, seq, self->cur_xid, self->cur_id};
    if (lf_db_cmd(self->db, "SAVEPOINT ev", 0, NULL) < 0)
        return -1;
    PGresult *res = lf_db_exec_prepared(self->db, "lf_consumer_ack", s_ack_one_sql, 4, p);
    if (!res)
        return -1;
    long got = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    if (got == 0) {
        /* Done already: acknowledged (by us earlier, or by a twin instance), set
         * aside, or below the cursor. */
        return lf_db_cmd(self->db, "RELEASE SAVEPOINT ev", 0, NULL) < 0 ? -1 : 0;
    }
    struct s_retry *r = s_retry_find(self, lf_event_seq(env));
    if (mode == S_GIVE_UP && r) {
        /* Tried often enough (the last try lost the connection, or killed the
         * process, before it could park the event): parked without another try, in
         * place of the ack just made. */
        char st[8];
        int tries = r->attempts;
        lf_strlcpy(st, r->sqlstate, sizeof st);
        if (lf_db_cmd(self->db, "ROLLBACK TO SAVEPOINT ev", 0, NULL) < 0 ||
            s_park(self, env, seq, tries, st, "gave up after failed tries") < 0 ||
            lf_db_cmd(self->db, "RELEASE SAVEPOINT ev", 0, NULL) < 0)
            return -1;
        return 0;
    }
    size_t before = json_array_size(self->pending_pub);
    if (self->fn(self, self->db, env, self->arg) == 0 && !self->db->err) {
        return lf_db_cmd(self->db, "RELEASE SAVEPOINT ev", 0, NULL) < 0 ? -1 : 1;
    }
    /* The handler failed. A lost race is tried again later (the whole batch rolls
     * back, the try is counted, and the event waits out its backoff while the others
     * go on) until it has been tried max_attempts times; any other failure parks the
     * event at once. Drop what it queued for publishing. */
    int tries = mode == S_COUNTED && r ? r->attempts : 1;
    char sqlstate[8] = "";
    lf_strlcpy(sqlstate, self->db->err ? lf_db_sqlstate(self->db) : "", sizeof sqlstate);
    int broken = PQstatus(self->db->conn) != CONNECTION_OK;
    if (self->db->err && (s_transient(sqlstate) || broken)) {
        self->fail_seq = lf_event_seq(env);
        lf_strlcpy(self->fail_state, sqlstate, sizeof self->fail_state);
        self->fail_counted = mode == S_COUNTED;
        if (tries < self->max_attempts || broken)
            return -1;
    }
    self->fail_seq = 0;
    while (json_array_size(self->pending_pub) > before)
        json_array_remove(self->pending_pub, json_array_size(self->pending_pub) - 1);
    char why[512]; /* errstr is only this failure's when db->err is set */
    s_error_text(self, why, sizeof why);
    if (lf_db_cmd(self->db, "ROLLBACK TO SAVEPOINT ev", 0, NULL) < 0)
        return -1;
    if (s_park(self, env, seq, tries, sqlstate, why) < 0 ||
        lf_db_cmd(self->db, "RELEASE SAVEPOINT ev", 0, NULL) < 0)
        return -1;
    return 0;
}

/* The batch's acks (s_handle_batch): $2 the batch's seqs, $3 and $4 the cursor. The
 * batch's outbox rows are read by primary key first (`got`), and only then held against
 * the cursor: with the cursor's xid beside the ids in one scan, the planner could
 * choose outbox_xid and read every row written since the cursor's xid (thousands, 4-23
 * ms a batch in the whole-stack benchmark while intake was writing) to find a batch of
 * 25-130. */
/* clang-format off */
static const char *const s_ack_batch_sql =
    "WITH got AS MATERIALIZED (SELECT o.id, o.xid FROM outbox o "
    "WHERE o.id = ANY ($2::bigint[])), "
    "mine AS MATERIALIZED (SELECT g.id, g.xid FROM got g "
    "WHERE g.xid >= $3::xid8 AND g.id > $4::bigint), "
    "fresh AS MATERIALIZED (SELECT m.id, m.xid FROM mine m WHERE NOT m.id <@ "
    S_ACKED("(SELECT int8range(min(id), max(id), '[]') FROM mine)") "), "
    "ins AS (INSERT INTO consumer_acks (consumer, seqs, top_xid) "
    "SELECT $1, range_agg(int8range(f.id, f.id, '[]')), max(f.xid) FROM fresh f "
    "HAVING count(*) > 0 ON CONFLICT DO NOTHING RETURNING 1) "
    "SELECT f.id, (SELECT count(*) FROM ins) FROM fresh f ORDER BY f.id";
/* clang-format on */

static int s_cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* The batch path: one statement inserts one ack row for the batch's new events and
 * returns their seqs, the batch handler applies those events, all in one transaction.
 * Returns the number applied (committed), -1 when the connection failed, or -2 when
 * a statement failed and the batch must be handled event by event (rolled back). */
static int s_handle_batch(lf_consumer_t *self, json_t **sorted, size_t n) {
    size_t cap = n * 21 + 3, len = 0, distinct = 0;
    char *seqs = lf_malloc(cap);
    seqs[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && lf_event_seq(sorted[i]) == lf_event_seq(sorted[i - 1]))
            continue;
        distinct++;
        len += (size_t)snprintf(seqs + len, cap - len, "%s%lld", len > 1 ? "," : "",
                                lf_event_seq(sorted[i]));
    }
    seqs[len++] = '}';
    seqs[len] = '\0';
    json_t **fresh = NULL;
    long long *ids = NULL;
    int applied = -2;
    if (s_begin_batch(self, sorted, n) < 0) {
        free(seqs);
        return -1;
    }
    /* One statement reads which of the batch's events are new - at or above the cursor
     * (one below it is done: its ack was pruned, and it comes back only from a stale
     * queue) and not in an ack row of this consumer that its snapshot sees - and inserts
     * one ack row holding all of them, returning them. The exclusion constraint
     * (consumer_acks_once: no two rows of a consumer share a seq) catches what the
     * snapshot could not see: an ack of one of these events by a transaction still
     * running (a twin instance, or the other path) or committed after the snapshot.
     * ON CONFLICT DO NOTHING waits for such a transaction and then inserts nothing
     * when it committed (a speculative insert: two such inserts never deadlock); the
     * batch is then rolled back and taken again, in a new transaction whose snapshot
     * sees the twin's acks, so only what is still new is applied. */
    PGresult *res = NULL;
    for (int round = 0;; round++) {
        const char *p[] = {self->name, seqs, self->cur_xid, self->cur_id};
        res =
            lf_db_exec_prepared(self->db, "lf_consumer_ack_batch", s_ack_batch_sql, 4, p);
        if (!res || PQntuples(res) == 0 || atoi(PQgetvalue(res, 0, 1)) == 1)
            break;
        /* A twin acknowledged some of these events first. */
        PQclear(res);
        res = NULL;
        self->dup_recent = S_DUP_BATCHES; /* the next batches are checked first */
        lf_db_rollback(self->db);
        if (round >= 2) { /* three rounds lost: event by event settles it */
            free(seqs);
            lf_warn("acks of a batch kept meeting a twin instance's, handling it event "
                    "by event consumer=%s events=%zu",
                    self->name, n);
            applied = -3;
            goto fallback;
        }
        if (s_begin_batch(self, sorted, n) < 0) {
            free(seqs);
            return -1;
        }
    }
    free(seqs);
    if (!res)
        goto fallback;
    size_t got = (size_t)PQntuples(res), nf = 0;
    if (got < distinct) /* a redelivery: the next batches are checked first */
        self->dup_recent = S_DUP_BATCHES;
    ids = lf_calloc(got + 1, sizeof *ids);
    for (size_t i = 0; i < got; i++)
        ids[i] = atoll(PQgetvalue(res, (int)i, 0));
    PQclear(res);
    qsort(ids, got, sizeof *ids, s_cmp_ll);
    fresh = lf_calloc(got + 1, sizeof *fresh);
    for (size_t i = 0, j = 0; i < n && j < got; i++) {
        long long seq = lf_event_seq(sorted[i]);
        while (j < got && ids[j] < seq)
            j++;
        if (j < got && ids[j] == seq) {
            fresh[nf++] = sorted[i];
            j++;
        }
    }
    if (nf > 0 &&
        (self->batch_fn(self, self->db, fresh, nf, self->arg) < 0 || self->db->err))
        goto fallback;
    if (s_commit(self) < 0) {
        applied = -1;
        goto fallback;
    }
    free(ids);
    free(fresh);
    return (int)nf;
fallback:
    if (applied == -3)
        applied = -2; /* logged already */
    else if (applied == -2) {
        char why[512];
        lf_warn("event batch failed as a whole, handling it event by event consumer=%s "
                "events=%zu %s",
                self->name, n, s_reason(self, why, sizeof why));
    }
    lf_db_rollback(self->db);
    json_array_clear(self->pending_pub);
    free(ids);
    free(fresh);
    return applied;
}

/* The seqs of $2 (between $3 and $4) without an ack. */
/* clang-format off */
static const char *const s_unacked_sql =
    "SELECT u.id FROM unnest($2::bigint[]) u(id) WHERE NOT u.id <@ "
    S_ACKED("int8range($3::bigint, $4::bigint, '[]')") " ORDER BY u.id";
/* clang-format on */

/* The batch path's check before a batch, while redeliveries come (dup_recent): drops
 * from sorted[0..n) the events that have an ack already, in one read outside any
 * transaction. A consumer that falls behind its ZeroMQ stream meets its own events
 * twice: the sweep finds them in the outbox while their envelopes still wait in the
 * socket, and each such envelope batch opened the batch transaction (twice, when acks
 * were a row per event and a plain insert met them first) and took the consumer's
 * on_begin locks (the router's: the routing lock and every lead of the batch). An
 * event acknowledged after this read is still caught by the ack insert. A batch
 * without redeliveries counts dup_recent down. Returns the events left (compacted in
 * seq order), or -1 when the read failed. */
static long s_drop_acked(lf_consumer_t *self, json_t **sorted, size_t n) {
    lf_pgarray_t seqs;
    lf_pgarray_init(&seqs);
    for (size_t i = 0; i < n; i++)
        lf_pgarray_add_int(&seqs, lf_event_seq(sorted[i]));
    char lo[24], hi[24];
    snprintf(lo, sizeof lo, "%lld", lf_event_seq(sorted[0]));
    snprintf(hi, sizeof hi, "%lld", lf_event_seq(sorted[n - 1]));
    const char *p[] = {self->name, lf_pgarray_end(&seqs), lo, hi};
    PGresult *res =
        lf_db_exec_prepared(self->db, "lf_consumer_unacked", s_unacked_sql, 4, p);
    lf_pgarray_free(&seqs);
    if (!res)
        return -1;
    size_t got = (size_t)PQntuples(res), k = 0;
    for (size_t i = 0, j = 0; i < n; i++) {
        long long seq = lf_event_seq(sorted[i]);
        while (j < got && atoll(PQgetvalue(res, (int)j, 0)) < seq)
            j++;
        if (j < got && atoll(PQgetvalue(res, (int)j, 0)) == seq)
            sorted[k++] =
                sorted[i]; /* a duplicate inside the batch stays: skipped later */
        else if (self->nretry)
            s_retry_forget(self, seq); /* done: no backoff left to wait out */
    }
    PQclear(res);
    if (k < n)
        self->dup_recent = S_DUP_BATCHES;
    else if (self->dup_recent > 0)
        self->dup_recent--;
    return (long)k;
}

/* After a transaction of events failed (still open: rolled back here): logs it,
 * tells the hooks, and counts the tries that the failure spent (s_count): the event
 * whose handler lost a race, else - a failure of the batch as a whole - every event
 * of the batch whose try was not counted before (those were: they get their backoff).
 * Returns -1. */
static int s_failed(lf_consumer_t *self, json_t *const *sorted, size_t n) {
    char why[512], st[8];
    int counts = !self->fail_seq && s_batch_failure_counts(self);
    lf_strlcpy(st,
               self->db->err && lf_db_sqlstate(self->db) ? lf_db_sqlstate(self->db) : "",
               sizeof st);
    lf_warn("event batch rolled back consumer=%s events=%zu %s", self->name, n,
            s_reason(self, why, sizeof why));
    lf_db_rollback(self->db);
    json_array_clear(self->pending_pub);
    if (self->on_batch)
        self->on_batch(self->arg, 0);
    if (self->fail_seq) {
        if (self->fail_counted)
            s_note(self, self->fail_seq, self->fail_state);
        else
            s_count(self, &self->fail_seq, 1, 1, self->fail_state);
    } else {
        long long *seqs = lf_calloc(n + 1, sizeof *seqs);
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            long long seq = lf_event_seq(sorted[i]);
            if (s_pre_has(self, seq))
                s_note(self, seq, st);
            else if (counts && (k == 0 || seqs[k - 1] != seq))
                seqs[k++] = seq;
        }
        if (k > 0 && s_count(self, seqs, k, 1, st) == 0)
            lf_warn("a failed batch is tried again one event at a time consumer=%s "
                    "events=%zu",
                    self->name, k);
        free(seqs);
    }
    self->fail_seq = 0;
    self->npre = 0;
    return -1;
}

/* After a transaction of events committed: the events are done (applied, parked or
 * found done), what their handlers queued goes out. */
static void s_committed(lf_consumer_t *self, json_t *const *sorted, size_t n) {
    for (size_t i = 0; self->nretry && i < n; i++)
        s_retry_forget(self, lf_event_seq(sorted[i]));
    json_array_extend(self->committed, self->pending_pub);
    json_array_clear(self->pending_pub);
    self->npre = 0;
    if (self->on_batch)
        self->on_batch(self->arg, 1);
}

/* Events none of which has a counted try, in one transaction (sorted[0..n), seq
 * order). After an unclean exit, the events that may have been in flight then count a
 * try first (suspect_max). Returns the number applied, or -1. */
static int s_together(lf_consumer_t *self, json_t **sorted, size_t n) {
    self->npre = 0;
    self->fail_seq = 0;
    if (self->suspect_max > 0) {
        for (size_t i = 0; i < n; i++) {
            long long seq = lf_event_seq(sorted[i]);
            if (seq <= self->suspect_max &&
                (!self->npre || self->pre[self->npre - 1] != seq))
                s_pre_add(self, seq);
        }
        if (self->npre > 0 && s_count(self, self->pre, self->npre, 2, NULL) < 0) {
            self->npre = 0;
            return -1;
        }
    }
    int applied = 0;
    if (self->batch_fn) {
        applied = s_handle_batch(self, sorted, n);
        if (applied == -1)
            return s_failed(self, sorted, n);
        if (applied >= 0) {
            s_committed(self, sorted, n);
            return applied;
        }
        applied = 0; /* -2: a statement failed; event by event isolates the culprit */
    }
    if (s_begin_batch(self, sorted, n) < 0)
        return s_failed(self, sorted, n);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && lf_event_seq(sorted[i]) == lf_event_seq(sorted[i - 1]))
            continue;
        int rc = s_apply(self, sorted[i],
                         s_pre_has(self, lf_event_seq(sorted[i])) ? S_COUNTED : S_FIRST);
        if (rc < 0)
            return s_failed(self, sorted, n);
        applied += rc;
    }
    if (s_commit(self) < 0)
        return s_failed(self, sorted, n);
    s_committed(self, sorted, n);
    return applied;
}

/* One event with a counted try, in a transaction of its own: its try is counted
 * first, or - tried max_attempts times already - it is parked without another try
 * (and without the on_begin hook: no lock is needed to park it, and the lock may be
 * what it waited for). Returns 1 applied, 0 parked or done, -1 failed. */
static int s_alone(lf_consumer_t *self, json_t *env) {
    long long seq = lf_event_seq(env);
    struct s_retry *r = s_retry_find(self, seq);
    int give_up = r && r->attempts >= self->max_attempts;
    self->npre = 0;
    self->fail_seq = 0;
    if (!give_up && s_count(self, &seq, 1, 1, NULL) < 0)
        return -1;
    s_pre_add(self, seq);
    json_t *one[] = {env};
    if ((give_up ? s_begin(self) : s_begin_batch(self, one, 1)) < 0)
        return s_failed(self, one, 1);
    int rc = s_apply(self, env, give_up ? S_GIVE_UP : S_COUNTED);
    if (rc < 0 || s_commit(self) < 0)
        return s_failed(self, one, 1);
    s_committed(self, one, 1);
    return rc;
}

int lf_consumer_handle(lf_consumer_t *self, json_t *const *envs, size_t n) {
    if (n == 0)
        return 0;
    if (!self->started && s_start(self) < 0) {
        char why[512];
        lf_warn("consumer cannot start consumer=%s %s", self->name,
                s_reason(self, why, sizeof why));
        return -1;
    }
    /* Seq order keeps lock order the same in twin instances, so two routers
     * handling the same batch wait for each other instead of deadlocking. */
    json_t **sorted = lf_malloc(n * sizeof *sorted);
    size_t all = n;
    n = 0;
    for (size_t i = 0; i < all; i++) /* events waiting out a backoff stay out */
        if (!self->nretry || !s_retry_waiting(self, lf_event_seq(envs[i])))
            sorted[n++] = envs[i];
    if (n == 0) {
        free(sorted);
        return 0;
    }
    qsort(sorted, n, sizeof *sorted, s_cmp_seq);
    if (self->batch_fn && self->dup_recent) {
        long left = s_drop_acked(self, sorted, n);
        if (left < 0) {
            char why[512];
            lf_warn("event batch rolled back consumer=%s events=%zu %s", self->name, n,
                    s_reason(self, why, sizeof why));
            free(sorted);
            if (self->on_batch)
                self->on_batch(self->arg, 0);
            return -1;
        }
        n = (size_t)left;
        if (n == 0) { /* all done already: no transaction, nothing to publish */
            free(sorted);
            if (self->on_batch)
                self->on_batch(self->arg, 1);
            return 0;
        }
    }
    /* The events with a counted try go one by one, after the others. */
    json_t **alone = lf_malloc(n * sizeof *alone);
    size_t nalone = 0, nrest = 0;
    for (size_t i = 0; i < n; i++) {
        long long seq = lf_event_seq(sorted[i]);
        if (self->nretry && s_retry_find(self, seq)) {
            if (nalone == 0 || lf_event_seq(alone[nalone - 1]) != seq)
                alone[nalone++] = sorted[i];
        } else {
            sorted[nrest++] = sorted[i];
        }
    }
    int applied = 0, failed = 0;
    if (nrest > 0) {
        int rc = s_together(self, sorted, nrest);
        failed |= rc < 0;
        applied += rc > 0 ? rc : 0;
    }
    for (size_t i = 0; i < nalone; i++) {
        int rc = s_alone(self, alone[i]);
        failed |= rc < 0;
        applied += rc > 0 ? rc : 0;
    }
    free(alone);
    free(sorted);
    return failed && applied == 0 ? -1 : applied;
}

/* Batch path: a window of the next `limit` events of our types after the cursor (or
 * after sweep_from), then the ones without an ack. The ack test is a subquery per row
 * on purpose: as an anti-join the planner likes to hash every ack of the consumer,
 * which grows with the backlog. The first two columns tell how full the window was
 * and where it ended; there is always one row, with NULL event columns when every
 * event of the window had an ack.
 * From the cursor, the window is a statement with the cursor's values in it, so that
 * the planner can walk outbox_xid when few events lie above the safe xid. Paging on
 * through a backlog (sweep_from set: the events right after the last window), the
 * window is lf_outbox_window(), a walk of the primary key from there: planned with
 * the values, on an outbox whose statistics are missing or older than the backlog,
 * the statement read and sorted every event above the cursor at every window
 * (db/functions/11_lf_outbox_window.sql).
 * Either way the window holds seq, type and lead only. The full sweep (consumers that
 * read payloads) fetches the rest of an event by its primary key only for the events
 * without an ack: a window with the payloads in it sorted them all (wide rows, every
 * event above the cursor when the planner reads them through outbox_xid) and read
 * every payload of the window, acknowledged or not. */
#define S_SWEEP_CURSOR                                                                   \
    "WITH w AS MATERIALIZED (SELECT o.id, o.type, o.lead_id "                            \
    "FROM outbox o WHERE o.id > greatest($5::bigint, $4::bigint) "                       \
    "AND o.xid >= $6::xid8 AND o.type = ANY($2::text[]) ORDER BY o.id LIMIT $3::int) "
#define S_SWEEP_PAGING                                                                   \
    "WITH w AS MATERIALIZED (SELECT o.id, o.type, o.lead_id FROM lf_outbox_window("      \
    "greatest($5::bigint, $4::bigint), $6::xid8, $2::text[], $3::int) o) "
#define S_SWEEP_LIGHT "SELECT s.n, s.m, x.id, x.type, x.lead_id"
#define S_SWEEP_FULL                                                                     \
    "SELECT s.n, s.m, (SELECT lf_envelope(p.id, p.event_id, p.type, p.lead_id, p.at, "   \
    "p.version, p.payload)::text FROM outbox p WHERE p.id = x.id)"
#define S_SWEEP_REST                                                                     \
    " FROM (SELECT count(*) AS n, max(id) AS m FROM w) s LEFT JOIN (SELECT * FROM w "    \
    "WHERE NOT w.id <@ " S_ACKED(                                                        \
        "(SELECT int8range(min(id), max(id), '[]') FROM w)") ") x ON true ORDER BY x.id"
static const char *const s_sweep_light = S_SWEEP_CURSOR S_SWEEP_LIGHT S_SWEEP_REST;
static const char *const s_sweep_light_paging = S_SWEEP_PAGING S_SWEEP_LIGHT S_SWEEP_REST;
static const char *const s_sweep_full = S_SWEEP_CURSOR S_SWEEP_FULL S_SWEEP_REST;
static const char *const s_sweep_full_paging = S_SWEEP_PAGING S_SWEEP_FULL S_SWEEP_REST;
#undef S_SWEEP_CURSOR
#undef S_SWEEP_PAGING
#undef S_SWEEP_LIGHT
#undef S_SWEEP_FULL
#undef S_SWEEP_REST

/* The batch path's sweep. A backlog is read window after window from where the last
 * full window ended, not from the safe cursor again (which would re-read every event
 * already handled, quadratic in the backlog). Windows whose events all have acks are
 * skipped, up to 20 per call (the next call goes on from there), so an event lost on
 * the wire behind them is found as by the per-event sweep. When a window comes back
 * short, the backlog is done and the next sweep starts from the cursor again: that is
 * when an event that committed late below sweep_from is found. (An earlier version
 * also went back to the cursor after 50 windows; with a backlog longer than 50
 * windows of acknowledged events it then never got past them until the cursor moved,
 * a minute later: bench/router_drain.sh stalled for 51 s at 6,400 events.) Returns the
 * result holding the events to handle, or NULL. */
static PGresult *s_sweep_windows(lf_consumer_t *self, int limit, long *window,
                                 long long *window_end, const char *cur_xid,
                                 const char *cur_id) {
    int light = self->batch_flags & LF_BATCH_SEQ_ONLY;
    char lim[16], from[24];
    snprintf(lim, sizeof lim, "%d", limit);
    for (int skipped = 0;; skipped++) {
        snprintf(from, sizeof from, "%lld", self->sweep_from);
        const char *p[] = {self->name, self->types, lim, from, cur_id, cur_xid};
        const char *sql = self->sweep_from > 0
                              ? (light ? s_sweep_light_paging : s_sweep_full_paging)
                              : (light ? s_sweep_light : s_sweep_full);
        PGresult *res = lf_db_exec(self->db, sql, 6, p);
        if (!res) {
            self->sweep_from = 0;
            return NULL;
        }
        *window = atol(PQgetvalue(res, 0, 0));
        *window_end = PQgetisnull(res, 0, 1) ? 0 : atoll(PQgetvalue(res, 0, 1));
        int empty = PQntuples(res) == 1 && PQgetisnull(res, 0, 2);
        if (!empty || *window < limit || skipped >= 20)
            return res;
        PQclear(res);
        self->sweep_from = *window_end; /* all acknowledged: look further */
    }
}

/* Reads the cursor (without a lock: the sweep only chooses what to hand to
 * lf_consumer_handle, which checks again under the lock). Its values go into the
 * sweep's statements as parameters, never as subqueries: the planner then knows how
 * few rows lie above the cursor and walks the outbox_xid index, where a subquery made
 * it walk the primary key from the start of the outbox, filtering every event ever
 * written. Returns 0 or -1. */
static int s_read_cursor(lf_consumer_t *self, char xid[24], char id[24]) {
    const char *p[] = {self->name};
    PGresult *res = lf_db_exec_prepared(
        self->db, "lf_consumer_cursor_read",
        "SELECT safe_xid::text, safe_id FROM consumer_cursors WHERE consumer = $1", 1, p);
    if (!res)
        return -1;
    lf_strlcpy(xid, PQntuples(res) ? PQgetvalue(res, 0, 0) : "1", 24);
    lf_strlcpy(id, PQntuples(res) ? PQgetvalue(res, 0, 1) : "0", 24);
    PQclear(res);
    return 0;
}

int lf_consumer_sweep(lf_consumer_t *self, int limit) {
    int light = lf_consumer_seq_only(self);
    long window = 0;
    long long window_end = 0;
    PGresult *res;
    char cur_xid[24], cur_id[24];
    if (s_read_cursor(self, cur_xid, cur_id) < 0)
        return -1;
    if (!self->batch_fn) { /* the per-event consumers' statement */
        char lim[16];
        snprintf(lim, sizeof lim, "%d", limit);
        const char *p[] = {self->name, self->types, lim, cur_id, cur_xid};
        res = lf_db_exec(
            self->db,
            "SELECT lf_envelope(o.id, o.event_id, o.type, o.lead_id, o.at, o.version, "
            "o.payload)::text FROM outbox o "
            "WHERE o.id > $4::bigint AND o.xid >= $5::xid8 "
            "AND o.type = ANY($2::text[]) "
            "AND NOT o.id <@ " S_ACKED_ALL " ORDER BY o.id LIMIT $3::int",
            5, p);
    } else {
        res = s_sweep_windows(self, limit, &window, &window_end, cur_xid, cur_id);
    }
    if (!res)
        return -1;
    int rows = PQntuples(res);
    int col = self->batch_fn ? 2 : 0; /* the batch path's rows start with n, m */
    json_t **envs = lf_calloc((size_t)rows + 1, sizeof *envs);
    size_t n = 0;
    for (int i = 0; i < rows; i++) {
        if (PQgetisnull(res, i, col))
            continue; /* the batch path's row for a window without new events */
        json_t *env =
            light ? json_pack("{s:I, s:s, s:s?}", "seq",
                              (json_int_t)atoll(PQgetvalue(res, i, col)), "type",
                              PQgetvalue(res, i, col + 1), "lead_id",
                              PQgetisnull(res, i, col + 2) ? NULL
                                                           : PQgetvalue(res, i, col + 2))
                  : json_loads(PQgetvalue(res, i, col), 0, NULL);
        if (env)
            envs[n++] = env;
    }
    PQclear(res);
    int applied = lf_consumer_handle(self, envs, n);
    if (self->batch_fn) {
        if (applied >= 0 && window == limit)
            self->sweep_from = window_end;
        else
            self->sweep_from = 0;
    }
    for (size_t i = 0; i < n; i++)
        json_decref(envs[i]);
    free(envs);
    if (applied > 0)
        lf_info("sweep recovered events consumer=%s applied=%d", self->name, applied);
    return applied;
}

int lf_consumer_advance(lf_consumer_t *self) {
    const char *p[] = {self->name};
    char xmin[24], gap[24] = "", cur_xid[24], cur_id[24];
    int has_gap = 0;
    /* The cursor row is locked first (FOR UPDATE: it waits for the batches that hold
     * it FOR SHARE). Then one statement - one snapshot - reads the oldest running
     * transaction and the oldest unacknowledged event above the cursor: every row of a
     * transaction below that xmin is visible to that same snapshot, so none can be
     * missed. Failed acks count as acknowledged (a parked poison event does not
     * hold the cursor). The cursor's values are parameters, as in the sweep, so the
     * gap query walks the outbox_xid index in xid order, stopping at the first event
     * without an ack; the consumer's acks are read once, before the walk, as one
     * multirange (S_ACKED_ALL: the cursor keeps them to the rows of the last few
     * seconds' batches), and each event tested in memory. (As min() over NOT EXISTS
     * against acks of one row per event it was planned as a hash anti-join of every
     * event above the cursor with every ack, at each advance: 110-311 ms per call in
     * a profiled whole-stack run.) Then the acks whose events all lie below the new
     * cursor are deleted, by their rows' newest xid. */
    if (lf_db_begin(self->db) < 0)
        return -1;
    PGresult *res = lf_db_exec(self->db,
                               "SELECT safe_xid::text, safe_id FROM consumer_cursors "
                               "WHERE consumer = $1 FOR UPDATE",
                               1, p);
    if (!res)
        goto fail;
    if (PQntuples(res) == 0) { /* no batch yet: nothing to prune */
        PQclear(res);
        lf_db_rollback(self->db);
        return 0;
    }
    lf_strlcpy(cur_xid, PQgetvalue(res, 0, 0), sizeof cur_xid);
    lf_strlcpy(cur_id, PQgetvalue(res, 0, 1), sizeof cur_id);
    PQclear(res);
    const char *q[] = {self->name, self->types, cur_xid, cur_id};
    res = lf_db_exec(self->db,
                     "SELECT pg_snapshot_xmin(pg_current_snapshot())::text, "
                     "(SELECT o.xid FROM outbox o WHERE o.xid >= $3::xid8 "
                     " AND o.id > $4::bigint AND o.type = ANY($2::text[]) "
                     " AND NOT o.id <@ " S_ACKED_ALL " ORDER BY o.xid LIMIT 1)::text",
                     4, q);
    if (!res)
        goto fail;
    lf_strlcpy(xmin, PQgetvalue(res, 0, 0), sizeof xmin);
    if (!PQgetisnull(res, 0, 1)) {
        lf_strlcpy(gap, PQgetvalue(res, 0, 1), sizeof gap);
        has_gap = 1;
    }
    PQclear(res);
    const char *u[] = {self->name, xmin, has_gap ? gap : NULL};
    res =
        lf_db_exec(self->db,
                   "UPDATE consumer_cursors SET safe_xid = greatest(safe_xid, "
                   "least($2::xid8, coalesce($3::xid8, $2::xid8))), advanced_at = now() "
                   "WHERE consumer = $1 RETURNING safe_xid::text",
                   3, u);
    if (!res)
        goto fail;
    if (PQntuples(res) == 1)
        lf_strlcpy(self->last_xid, PQgetvalue(res, 0, 0), sizeof self->last_xid);
    PQclear(res);
    if (lf_db_commit(self->db) < 0)
        goto fail;
    /* The counted tries of events that are done (applied or parked, here or by a twin
     * instance) are over. The table is empty but for events that failed. */
    if (lf_db_cmd(self->db,
                  "DELETE FROM consumer_attempts t WHERE t.consumer = $1 AND EXISTS "
                  "(SELECT 1 FROM consumer_acks a WHERE a.consumer = $1 "
                  "AND a.seqs @> t.event_id)",
                  1, p) < 0)
        return -1;
    if (lf_db_cmd(self->db,
                  "DELETE FROM consumer_acks a USING consumer_cursors c "
                  "WHERE a.consumer = $1 AND c.consumer = $1 AND a.error IS NULL "
                  "AND (a.top_xid < c.safe_xid OR upper(a.seqs) <= c.safe_id + 1)",
                  1, p) < 0)
        return -1;
    return 0;
fail:
    lf_db_rollback(self->db);
    return -1;
}

/* Replays one parked event whose replay an operator asked for, in a transaction of
 * its own: the row is locked (a twin instance replaying it waits, then finds it gone),
 * the handler applies the event, its failed ack becomes a plain one and the parked row
 * goes, all in one commit - so a replayed event is applied once, and a replay that
 * dies half-way changed nothing and is tried again. When the handler fails again the
 * event stays parked: the request is cleared and the failure recorded. Returns 1
 * replayed, 0 not (gone, or failed again), -1 when the database failed. */
static int s_replay_one(lf_consumer_t *self, const char *seq) {
    if (s_begin(self) < 0)
        return -1;
    const char *p[] = {self->name, seq};
    PGresult *res = lf_db_exec_prepared(
        self->db, "lf_consumer_replay_lock",
        "SELECT lf_envelope(o.id, o.event_id, o.type, o.lead_id, o.at, o.version, "
        "o.payload)::text FROM consumer_parked k JOIN outbox o ON o.id = k.event_id "
        "WHERE k.consumer = $1 AND k.event_id = $2::bigint "
        "AND k.replay_requested_at IS NOT NULL FOR UPDATE OF k",
        2, p);
    if (!res) {
        lf_db_rollback(self->db);
        return -1;
    }
    json_t *env = PQntuples(res) == 1 ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
    PQclear(res);
    if (!env) { /* replayed by a twin, or the request withdrawn */
        lf_db_rollback(self->db);
        return 0;
    }
    json_t *one[] = {env};
    int ok = (!self->on_begin ||
              (self->on_begin(self->arg, self->db, one, 1) == 0 && !self->db->err)) &&
             self->fn(self, self->db, env, self->arg) == 0 && !self->db->err &&
             lf_db_cmd(self->db,
                       "UPDATE consumer_acks SET error = NULL, at = now() "
                       "WHERE consumer = $1 AND seqs @> $2::bigint "
                       "AND error IS NOT NULL",
                       2, p) >= 0 &&
             lf_db_cmd(self->db,
                       "DELETE FROM consumer_parked WHERE consumer = $1 "
                       "AND event_id = $2::bigint",
                       2, p) >= 0 &&
             s_commit(self) == 0;
    const char *type = lf_event_type(env);
    if (ok) {
        json_array_extend(self->committed, self->pending_pub);
        json_array_clear(self->pending_pub);
        if (self->on_batch)
            self->on_batch(self->arg, 1);
        lf_info("parked event replayed consumer=%s seq=%s type=%s", self->name, seq,
                type ? type : "?");
        json_decref(env);
        return 1;
    }
    char sqlstate[8], why[512];
    lf_strlcpy(sqlstate, self->db->err ? lf_db_sqlstate(self->db) : "", sizeof sqlstate);
    s_error_text(self, why, sizeof why);
    lf_db_rollback(self->db);
    json_array_clear(self->pending_pub);
    if (self->on_batch)
        self->on_batch(self->arg, 0);
    const char *q[] = {self->name, seq, sqlstate[0] ? sqlstate : NULL, why};
    int rc = lf_db_cmd(self->db,
                       "UPDATE consumer_parked SET attempts = attempts + 1, "
                       "replay_requested_at = NULL, sqlstate = $3, error = $4 "
                       "WHERE consumer = $1 AND event_id = $2::bigint",
                       4, q);
    lf_error(
        "replay of a parked event failed, it stays parked consumer=%s seq=%s type=%s "
        "%s%s",
        self->name, seq, type ? type : "?", sqlstate[0] ? "sqlstate=" : "handler failed",
        sqlstate);
    json_decref(env);
    return rc < 0 ? -1 : 0;
}

int lf_consumer_replay(lf_consumer_t *self) {
    const char *p[] = {self->name};
    PGresult *res = lf_db_exec_prepared(
        self->db, "lf_consumer_replay_requested",
        "SELECT event_id FROM consumer_parked WHERE consumer = $1 "
        "AND replay_requested_at IS NOT NULL ORDER BY event_id LIMIT 100",
        1, p);
    if (!res)
        return -1;
    int n = PQntuples(res), done = 0;
    char(*seqs)[24] = lf_calloc((size_t)n + 1, sizeof *seqs);
    for (int i = 0; i < n; i++)
        lf_strlcpy(seqs[i], PQgetvalue(res, i, 0), sizeof seqs[i]);
    PQclear(res);
    for (int i = 0; i < n && done >= 0; i++) {
        int rc = s_replay_one(self, seqs[i]);
        done = rc < 0 ? -1 : done + rc;
    }
    free(seqs);
    return done;
}

const char *lf_consumer_cursor(const lf_consumer_t *self) {
    return self->last_xid;
}

json_t *lf_outbox_add(lf_db_t *db, const char *type, const char *lead_id,
                      const json_t *payload) {
    char *pl = payload ? json_dumps(payload, JSON_COMPACT) : lf_strdup("{}");
    char eid[37];
    lf_uuid4(eid); /* not gen_random_uuid(): several microseconds of the backend's */
    const char *p[] = {type, lead_id, pl, eid};
    PGresult *res = lf_db_exec(
        db,
        "INSERT INTO outbox (event_id, type, lead_id, payload) "
        "VALUES ($4::uuid, $1, $2, $3::jsonb) "
        "RETURNING lf_envelope(id, event_id, type, lead_id, at, version, payload)::text",
        4, p);
    free(pl);
    if (!res)
        return NULL;
    json_t *env = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    return env;
}
