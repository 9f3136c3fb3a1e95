/* timers.c - SLA reminders and escalations on Redis timers whose truth is in
 * PostgreSQL.
 *
 * The life of a timer: a row in `timers` (state pending) is written in the same
 * transaction as the event that caused it, and its id is added to a Redis sorted
 * set scored by due time. Every tick a Lua script atomically takes the due ids out
 * of the set, a batch at a time; one statement per batch, lf_fire_timers()
 * (41_lf_fire_timers.sql), flips them to fired (only rows still pending, so a timer
 * fires once however often it is claimed) and writes one 'timer.fired' outbox event
 * per SLA or follow-up timer. What firing means - the reminder or escalation, its
 * notification, timeline entry and event, the next step's timer - is derived from
 * those events off the firing path, exactly once, by effects.c's thread, to which
 * the committed events' seqs are handed. Firing runs in a thread of its own (with its
 * own Redis connection), apart from the main thread's event handling, which creates
 * the timers: a backlog of events to consume used to hold up the firing ticks for
 * hundreds of milliseconds per loop turn. Up to nlanes batches are in flight on their
 * own connections, so the next claim overlaps the previous batch's work and commit.
 * Notifications are delivered by deliver.c's threads.
 *
 * What Redis may lose, PostgreSQL recovers:
 * - an id added to Redis by a transaction that rolled back is an orphan; firing
 *   finds no pending row and ignores it;
 * - ids claimed by a scheduler that crashed before committing, or lost in a Redis
 *   restart, are found by the PostgreSQL sweep of pending timers past due;
 * - a flushed Redis loses the epoch key too, and the next tick rebuilds the whole
 *   index from PostgreSQL. */
#include "timers.h"

#include <errno.h>
#include <pthread.h>
#include <malloc.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lf/event.h"
#include "lf/log.h"
#include "lf/util.h"
#include "clocks.h"
#include "effects.h"

static const char *s_claim_lua =
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, "
    "ARGV[2]) "
    "if #ids > 0 then redis.call('ZREM', KEYS[1], unpack(ids)) end "
    "return ids";

int lf_timers_on_event(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg) {
    lf_timers_t *t = arg;
    const char *type = lf_event_type(env);
    /* The keep-alive clocks: clocks.h */
    if (lf_stale_on_event(t, db, env) < 0 || lf_reactivate_on_event(t, db, env) < 0)
        return -1;
    /* Follow-ups (pipeline): an activity's next_action_at (follow_up.c). */
    if (type && strcmp(type, "activity.logged") == 0)
        return lf_follow_up_on_event(t, db, env);
    const char *lead_id = lf_event_lead(env);
    const json_t *pl = lf_event_payload(env);
    const char *grade = json_string_value(json_object_get(pl, "grade"));
    if (!lead_id || !grade)
        return 0;
    if (type && strcmp(type, "lead.reassigned") == 0) {
        /* A new owner gets a first-contact clock of their own: the SLA timers of
         * round r use steps 10r, 10r+1, 10r+2, where r counts the reassignments. */
        if (!json_string_value(json_object_get(pl, "owner")))
            return 0; /* went to a queue: nobody to remind */
        const char *p[] = {lead_id};
        PGresult *r = lf_db_exec(db,
                                 "SELECT count(*) FROM assignments WHERE lead_id = $1"
                                 " AND kind = 'reassign'",
                                 1, p);
        if (!r)
            return -1;
        int round = atoi(PQgetvalue(r, 0, 0));
        PQclear(r);
        return lf_clock_sla_arm(t, db, env, grade, round * 10);
    }
    return lf_clock_sla_arm(t, db, env, grade, 0);
}

/* An event of a batch and its lead, for s_leads_once. */
typedef struct {
    const char *lead;
    size_t i;
} s_ev_lead_t;

static int s_cmp_ev_lead(const void *a, const void *b) {
    return strcasecmp(((const s_ev_lead_t *)a)->lead, ((const s_ev_lead_t *)b)->lead);
}

/* once[i] = 1 when envs[i] is the only event of the batch about its lead, besides its
 * lead.created (which changes nothing the stale clock reads). One sort of the batch by
 * lead: comparing each event with every other one cost O(n^2) json lookups and
 * compares per batch (strcasecmp alone was 2.6% of the scheduler's samples in a
 * whole-stack run; perf, docs/benchmarks.md). */
static void s_leads_once(json_t *const *envs, size_t n, unsigned char *once) {
    s_ev_lead_t *by = lf_calloc(n + 1, sizeof *by);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const char *lead = lf_event_lead(envs[i]);
        if (lead)
            by[m++] = (s_ev_lead_t){.lead = lead, .i = i};
    }
    qsort(by, m, sizeof *by, s_cmp_ev_lead);
    for (size_t a = 0, b; a < m; a = b) {
        size_t others = 0; /* events of this lead that are not its lead.created */
        for (b = a; b < m && !strcasecmp(by[b].lead, by[a].lead); b++) {
            const char *type = lf_event_type(envs[by[b].i]);
            if (!(type && !strcmp(type, "lead.created")))
                others++;
        }
        for (size_t k = a; k < b; k++)
            once[by[k].i] = others <= 1;
    }
    free(by);
}

/* lf_reactivate_on_event for every lead.assigned of a batch: each routed lead linked to
 * its customer's lost deal in one statement, lf_keepalive_link_lost_batch() (43_*.sql),
 * which looks for candidates set-based in the (small) indexes of lost deals and links
 * only those (not linked yet), in event order. Returns 0, or -1. */
static int s_link_assigned(lf_timers_t *t, lf_db_t *db, json_t *const *envs, size_t n) {
    if (!t->ka)
        return 0;
    size_t cap = 64, len = 0, k = 0;
    char *ids = lf_malloc(cap);
    for (size_t i = 0; i < n; i++) {
        const char *type = lf_event_type(envs[i]), *lead = lf_event_lead(envs[i]);
        if (!type || !lead || strcmp(type, "lead.assigned"))
            continue;
        size_t need = len + strlen(lead) + 3;
        if (need > cap) {
            cap = need * 2;
            ids = lf_realloc(ids, cap);
        }
        len += (size_t)snprintf(ids + len, cap - len, "%s%s", k++ ? "," : "{", lead);
    }
    if (k == 0) {
        free(ids);
        return 0;
    }
    snprintf(ids + len, cap - len, "}");
    const char *p[] = {ids};
    PGresult *res = lf_db_exec_prepared(
        db, "lf_timers_link_assigned",
        "SELECT lead::text, lost FROM lf_keepalive_link_lost_batch($1::uuid[])", 1, p);
    free(ids);
    if (!res)
        return -1;
    for (int r = 0; r < PQntuples(res); r++)
        lf_info("new inquiry linked to the customer's lost deal lead=%s lost=%s",
                PQgetvalue(res, r, 0), PQgetvalue(res, r, 1));
    PQclear(res);
    return 0;
}

/* Batch path (lf_consumer_set_batch_fn): the keep-alive clocks and follow-ups event by
 * event as above (they are rare, or cheap when they do nothing), and the first-contact
 * SLA of every lead.assigned / lead.reassigned of the batch set-based
 * (lf_clock_sla_arm_batch). A failure rolls the batch back and the consumer applies it
 * again event by event with lf_timers_on_event; the Redis pairs queued by this attempt
 * are dropped. */
int lf_timers_on_events(lf_consumer_t *c, lf_db_t *db, json_t *const *envs, size_t n,
                        void *arg) {
    lf_timers_t *t = arg;
    size_t queued = t->pending_len, na = 0;
    const json_t **arm = lf_calloc(n + 1, sizeof *arm);
    const char **grades = lf_calloc(n + 1, sizeof *grades);
    int *steps = lf_calloc(n + 1, sizeof *steps), rc = -1;
    long *arm_of = lf_calloc(n + 1, sizeof *arm_of); /* envs[i]'s entry in arm, or -1 */
    unsigned char *idle = lf_calloc(n + 1, 1), *once = lf_calloc(n + 1, 1);
    /* First the SLA of the assignments: it locks their leads, all at once in id
     * order, before the keep-alive clocks below write them one by one. */
    for (size_t i = 0; i < n; i++) {
        const json_t *env = envs[i];
        const char *type = lf_event_type(env), *lead_id = lf_event_lead(env);
        arm_of[i] = -1;
        const json_t *pl = lf_event_payload(env);
        const char *grade = json_string_value(json_object_get(pl, "grade"));
        if (!lead_id || !grade || !type)
            continue;
        int step = 0;
        if (strcmp(type, "lead.reassigned") == 0) {
            if (!json_string_value(json_object_get(pl, "owner")))
                continue; /* went to a queue: nobody to remind */
            const char *p[] = {lead_id};
            PGresult *r = lf_db_exec(db,
                                     "SELECT count(*) FROM assignments WHERE lead_id = $1"
                                     " AND kind = 'reassign'",
                                     1, p);
            if (!r)
                goto out;
            step = atoi(PQgetvalue(r, 0, 0)) * 10;
            PQclear(r);
        } else if (strcmp(type, "lead.assigned") != 0) {
            continue;
        }
        arm_of[i] = (long)na;
        arm[na] = env;
        grades[na] = grade;
        steps[na++] = step;
    }
    if (lf_clock_sla_arm_batch(t, db, arm, grades, steps, na, idle) < 0)
        goto out;
    /* The SLA timers and the keep-alive clocks are apart (other columns, other kinds
     * of timer), so doing these after the SLA of the whole batch changes nothing.
     * lead.assigned links returning customers in one statement for the batch
     * (s_link_assigned), under the lock taken above; the rarer kinds go event by
     * event. */
    if (s_link_assigned(t, db, envs, n) < 0)
        goto out;
    s_leads_once(envs, n, once);
    for (size_t i = 0; i < n; i++) {
        const char *type = lf_event_type(envs[i]);
        /* An assignment whose lead's stale clock neither runs nor starts (read under
         * the lock above) skips the stale clock's two statements - unless another
         * event of the batch may have changed the lead since. */
        int skip = arm_of[i] >= 0 && idle[arm_of[i]] && once[i];
        if ((!skip && lf_stale_on_event(t, db, envs[i]) < 0) ||
            (!(type && !strcmp(type, "lead.assigned")) &&
             lf_reactivate_on_event(t, db, envs[i]) < 0))
            goto out;
        if (type && strcmp(type, "activity.logged") == 0 &&
            lf_follow_up_on_event(t, db, envs[i]) < 0)
            goto out;
    }
    rc = 0;
out:
    if (rc < 0) { /* rolled back: forget this attempt's timers */
        t->pending_len = queued;
        if (t->pending)
            t->pending[queued] = '\0';
    }
    free(arm);
    free(grades);
    free(steps);
    free(arm_of);
    free(idle);
    free(once);
    return rc;
}

/* The leads of a batch locked in id order (ORDER BY comes before the lock), with what
 * lf_clock_sla_arm_batch reads of them: one statement, where the lock and the clock's
 * read of the same rows used to be two (each an index probe per lead). */
static const char *const s_lock_sql =
    "SELECT id::text, team, stage, grade::text, owner IS NOT NULL AND closed_at IS NULL,"
    " stale_since IS NULL FROM leads WHERE id = ANY($1::uuid[]) ORDER BY id"
    " FOR NO KEY UPDATE";

int lf_timers_on_begin(void *arg, lf_db_t *db, json_t *const *envs, size_t n) {
    lf_timers_t *t = arg;
    PQclear(t->locked);
    t->locked = NULL;
    size_t cap = n * 38 + 3, len = 0;
    char *ids = lf_malloc(cap);
    ids[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        const char *type = lf_event_type(envs[i]), *lead = lf_event_lead(envs[i]);
        if (!lead || !lf_uuid_valid(lead) || (type && !strcmp(type, "lead.created")))
            continue;
        len += (size_t)snprintf(ids + len, cap - len, "%s%s", len > 1 ? "," : "", lead);
    }
    ids[len++] = '}';
    ids[len] = '\0';
    int rc = 0;
    if (len > 2) {
        const char *p[] = {ids};
        t->locked = lf_db_exec_prepared(db, "lf_timers_lock_leads", s_lock_sql, 1, p);
        rc = t->locked ? 0 : -1;
    }
    free(ids);
    return rc;
}

void lf_timers_zadd(lf_redis_t *redis, const char *zkey, char *pairs) {
    size_t cap = 64, argc = 2;
    const char **argv = lf_malloc(cap * sizeof *argv);
    argv[0] = "ZADD";
    argv[1] = zkey;
    char *save = NULL;
    for (char *tok = strtok_r(pairs, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (argc == cap) {
            cap *= 2;
            argv = lf_realloc(argv, cap * sizeof *argv);
        }
        argv[argc++] = tok;
    }
    if (argc > 2 && argc % 2 == 0) {
        redisReply *r = lf_redis_cmdargv(redis, (int)argc, argv, NULL);
        if (r)
            freeReplyObject(r);
        else
            lf_warn("next timers not indexed in Redis n=%zu reason=%s", (argc - 2) / 2,
                    redis->errstr);
    }
    free(argv);
}

static void s_zadd_pairs(lf_timers_t *t, char *pairs) {
    lf_timers_zadd(t->redis, t->zkey, pairs);
}

void lf_timers_index(lf_timers_t *t, char *pairs) {
    s_zadd_pairs(t, pairs);
}

void lf_timers_index_after_commit(lf_timers_t *t, const char *pairs) {
    size_t n = strlen(pairs);
    if (n == 0)
        return;
    if (t->pending_len + n + 2 > t->pending_cap) {
        t->pending_cap = (t->pending_len + n + 2) * 2;
        t->pending = lf_realloc(t->pending, t->pending_cap);
    }
    if (t->pending_len)
        t->pending[t->pending_len++] = ' ';
    memcpy(t->pending + t->pending_len, pairs, n);
    t->pending_len += n;
    t->pending[t->pending_len] = '\0';
}

void lf_timers_on_batch(void *arg, int committed) {
    lf_timers_t *t = arg;
    t->batches++;
    PQclear(t->locked);
    t->locked = NULL;
    if (committed && t->pending_len)
        s_zadd_pairs(t, t->pending);
    t->pending_len = 0;
    if (t->pending)
        t->pending[0] = '\0';
}

/* Timers read per page of the rebuild: its memory is one page's result and commands
 * (about 1 MB), not every pending timer's at once (a scheduler started with 140,000
 * pending timers kept 22.6 MB of RSS afterwards; docs/benchmarks.md). */
#define S_REBUILD_PAGE 10000

/* Indexes one page of pending timers in Redis: one ZADD per 1000, pipelined, then
 * their replies. Returns 0 or -1 (Redis failed: t->redis->errstr). */
static int s_rebuild_page(lf_timers_t *t, PGresult *res) {
    const char *argv[2 + 2 * 1000];
    argv[0] = "ZADD";
    argv[1] = t->zkey;
    int n = PQntuples(res), sent = 0;
    for (int i = 0; i < n; i += 1000) {
        int end = i + 1000 < n ? i + 1000 : n, argc = 2;
        for (int j = i; j < end; j++) {
            argv[argc++] = PQgetvalue(res, j, 0);
            argv[argc++] = PQgetvalue(res, j, 1);
        }
        redisAppendCommandArgv(t->redis->ctx, argc, argv, NULL);
        sent++;
    }
    for (int k = 0; k < sent; k++) {
        void *reply = NULL;
        if (redisGetReply(t->redis->ctx, &reply) != REDIS_OK) {
            t->redis->err = 1;
            snprintf(t->redis->errstr, sizeof t->redis->errstr, "%s",
                     t->redis->ctx->errstr);
            return -1;
        }
        freeReplyObject(reply);
    }
    return 0;
}

long lf_timers_rebuild(lf_timers_t *t) {
    if (lf_redis_ensure(t->redis) < 0)
        goto fail;
    /* Page after page in id order. A timer armed meanwhile is indexed by whoever armed
     * it; one fired meanwhile may be indexed here all the same, and a claim of it
     * finds it no longer pending in PostgreSQL (lf_fire_timers), as after any race
     * between the index and the table. */
    long n = 0;
    char after[24] = "0", page[16];
    snprintf(page, sizeof page, "%d", S_REBUILD_PAGE);
    for (;;) {
        const char *p[] = {after, page};
        PGresult *res =
            lf_db_exec(t->db,
                       "SELECT (extract(epoch FROM due_at) * 1000)::bigint, id "
                       "FROM timers WHERE state = 'pending' AND id > $1::bigint "
                       "ORDER BY id LIMIT $2::int",
                       2, p);
        if (!res)
            return -1;
        int rows = PQntuples(res);
        if (rows > 0 && s_rebuild_page(t, res) < 0) {
            PQclear(res);
            goto fail;
        }
        if (rows > 0)
            snprintf(after, sizeof after, "%s", PQgetvalue(res, rows - 1, 1));
        PQclear(res);
        n += rows;
        if (rows < S_REBUILD_PAGE)
            break;
    }
    redisReply *r =
        lf_redis_cmd(t->redis, "SET %s %lld", t->epoch_key, (long long)lf_now_ms());
    if (!r)
        return -1;
    freeReplyObject(r);
    t->rebuilt++;
    malloc_trim(0); /* the pages' results and commands go back to the system */
    lf_info("timer index rebuilt from PostgreSQL pending=%ld", n);
    return n;
fail:
    lf_warn("timer index rebuild failed: %s", t->redis->errstr);
    if (t->redis->ctx) {
        redisFree(t->redis->ctx);
        t->redis->ctx = NULL;
    }
    return -1;
}

/* The firing of a batch: one statement, one transaction (41_lf_fire_timers.sql).
 * $3 holds the ids of the 'timer.fired' events, drawn here: one per timer id of $1. */
#define S_FIRE_SQL                                                                       \
    "SELECT fired, reminders, escalations, reassigns, next_timers, events"               \
    " FROM lf_fire_timers($1::bigint[], $2::jsonb, $3::uuid[])"

/* The event ids for a batch of timer ids (a bigint[] literal): one per id. To be
 * freed. */
static char *s_event_ids(const char *ids) {
    size_t n = 0;
    if (ids[0] == '{' && ids[1] != '}') {
        n = 1;
        for (const char *c = ids; *c; c++)
            n += *c == ',';
    }
    return lf_uuid4_array(n);
}

/* Takes a committed lf_fire_timers() result: counters, the keep-alive kinds' next
 * timers into Redis with one ZADD, and the 'timer.fired' events to the effects
 * thread. Returns the number fired. */
static int s_took(lf_timers_t *t, lf_redis_t *redis, PGresult *res) {
    if (PQntuples(res) != 1)
        return 0;
    int fired = atoi(PQgetvalue(res, 0, 0));
    atomic_fetch_add(&t->fired, fired);
    atomic_fetch_add(&t->reminders, atol(PQgetvalue(res, 0, 1)));
    atomic_fetch_add(&t->escalations, atol(PQgetvalue(res, 0, 2)));
    char *pairs = lf_strdup(PQgetvalue(res, 0, 4));
    lf_timers_zadd(redis, t->zkey, pairs);
    free(pairs);
    lf_effects_push(t->effects, PQgetvalue(res, 0, 5));
    return fired;
}

/* Fires the given timer ids (a PostgreSQL bigint[] literal) on db, waiting for the
 * commit; redis takes the next timers. Returns the number that fired, or -1. */
static int s_fire_sync(lf_timers_t *t, lf_db_t *db, lf_redis_t *redis, const char *ids) {
    char *eids = s_event_ids(ids);
    const char *p[] = {ids, t->sla_text, eids};
    PGresult *res = lf_db_exec_prepared(db, "lf_fire_timers", S_FIRE_SQL, 3, p);
    free(eids);
    if (!res) {
        lf_warn("timer batch not fired (will be swept): %s", db->errstr);
        return -1;
    }
    int fired = s_took(t, redis, res);
    PQclear(res);
    return fired;
}

/* Claims up to claim_batch due ids from Redis into *ids (a bigint[] literal, caller
 * frees). Returns how many, or -1 when Redis failed. */
static int s_claim(lf_timers_t *t, lf_redis_t *redis, char **ids) {
    char now[24], lim[16];
    snprintf(now, sizeof now, "%lld", (long long)lf_now_ms());
    snprintf(lim, sizeof lim, "%d", t->claim_batch);
    redisReply *r =
        lf_redis_cmd(redis, "EVAL %s 1 %s %s %s", s_claim_lua, t->zkey, now, lim);
    if (!r)
        return -1;
    int n = r->type == REDIS_REPLY_ARRAY ? (int)r->elements : 0;
    if (n > 0) {
        size_t cap = (size_t)n * 22 + 4, len = 1;
        char *s = lf_malloc(cap);
        s[0] = '{';
        for (int i = 0; i < n; i++)
            len += (size_t)snprintf(s + len, cap - len, "%s%s", i ? "," : "",
                                    r->element[i]->str);
        snprintf(s + len, cap - len, "}");
        *ids = s;
    }
    freeReplyObject(r);
    return n;
}

/* While batches are in flight and a lane is free, timers that come due are claimed
 * onto it at most this often: a batch whose statement is slow (a row lock, a loaded
 * machine) does not hold up what comes due after it, and a quick commit still gathers
 * what came due meanwhile into one batch. */
#define S_OVERLAP_MS 10

/* A fire connection with at most one batch in flight. */
typedef struct {
    lf_db_t *db;
    int busy;      /* a batch was sent and its transaction has not ended */
    int64_t sent;  /* lf_mono_ms() when it was sent */
    PGresult *got; /* its result, taken only once the transaction ended */
    int failed;
} s_lane_t;

static void s_lane_broken(s_lane_t *l, const char *what) {
    lf_warn("timer batch not fired (will be swept): %s: %s", what,
            l->db->conn ? PQerrorMessage(l->db->conn) : "not connected");
    PQfinish(l->db->conn);
    l->db->conn = NULL;
    PQclear(l->got);
    l->got = NULL;
    l->busy = 0;
}

static int s_lane_send(s_lane_t *l, const lf_timers_t *t, const char *ids) {
    char *eids = s_event_ids(ids);
    const char *p[] = {ids, t->sla_text, eids};
    int sent = PQsendQueryParams(l->db->conn, S_FIRE_SQL, 3, NULL, p, NULL, NULL, 0);
    free(eids);
    if (!sent) {
        s_lane_broken(l, "send");
        return -1;
    }
    l->busy = 1;
    l->sent = lf_mono_ms();
    l->failed = 0;
    return 0;
}

/* Reads what arrived on a busy lane. The result is used only after the statement's
 * implicit transaction ended (PQgetResult returned NULL), so next-step timers are
 * indexed only once they are committed. */
static void s_lane_read(s_lane_t *l, lf_timers_t *t, lf_redis_t *redis) {
    if (!PQconsumeInput(l->db->conn)) {
        s_lane_broken(l, "read");
        return;
    }
    while (!PQisBusy(l->db->conn)) {
        PGresult *r = PQgetResult(l->db->conn);
        if (!r) {
            if (l->got && !l->failed)
                s_took(t, redis, l->got);
            PQclear(l->got);
            l->got = NULL;
            l->busy = 0;
            return;
        }
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            PQclear(l->got);
            l->got = r;
        } else {
            lf_warn("timer batch not fired (will be swept): %s", PQresultErrorMessage(r));
            l->failed = 1;
            PQclear(r);
        }
    }
}

/* How a drain ended. */
enum { S_DRAIN_DONE, S_DRAIN_MORE, S_DRAIN_PG_DOWN };

/* Milliseconds until the first timer in the index is due, at most cap. */
static int s_next_due(lf_timers_t *t, lf_redis_t *redis, int cap) {
    redisReply *r = lf_redis_cmd(redis, "ZRANGE %s 0 0 WITHSCORES", t->zkey);
    int wait = cap;
    if (r && r->elements == 2) {
        long long due = atoll(r->element[1]->str) - lf_now_ms();
        wait = due < 0 ? 0 : (due > cap ? cap : (int)due);
    }
    if (r)
        freeReplyObject(r);
    return wait;
}

/* How long the drain waits for its busy lanes: until one answers, or, with a lane free
 * and nothing claimed in the last S_OVERLAP_MS, until the next timer is due (*claim set:
 * claim it onto the free lane). Past the round's deadline that goes on only while a
 * batch sent before the deadline is still in flight (stuck on a row lock, say): the
 * round cannot end before that batch does, and what comes due meanwhile must not wait
 * for it. */
static int s_lane_wait(lf_timers_t *t, lf_redis_t *redis, const s_lane_t *lanes, int nl,
                       int more, int64_t last_send, int64_t deadline, int *claim) {
    int64_t now = lf_mono_ms(), oldest = INT64_MAX;
    int busy = 0;
    for (int i = 0; i < nl; i++)
        if (lanes[i].busy) {
            busy++;
            oldest = lanes[i].sent < oldest ? lanes[i].sent : oldest;
        }
    *claim = 0;
    if (more || busy == 0 || busy >= nl)
        return 1000;
    int late = now >= deadline;
    if (late && oldest >= deadline)
        return 1000; /* the round is over: its batches end, then the next round */
    int64_t cap = late || deadline - now > 1000 ? 1000 : deadline - now;
    int64_t wait = s_next_due(t, redis, (int)cap), gap = last_send + S_OVERLAP_MS - now;
    if (wait < gap)
        wait = gap;
    if (wait >= cap)
        return (int)cap; /* nothing to claim before the round ends (or in a second) */
    *claim = 1;
    return (int)wait;
}

/* How many lanes fire concurrently (LEADFLOW_TIMER_LANES, at most LF_TIMERS_LANES_MAX).
 */
static int s_nlanes(const lf_timers_t *t) {
    return t->nlanes < LF_TIMERS_LANES_MAX ? t->nlanes : LF_TIMERS_LANES_MAX;
}

/* Lane i's connection: made at start (s_fire_main), made again here if that failed. */
static lf_db_t *s_lane_db(lf_timers_t *t, int i) {
    if (!t->lanes[i])
        t->lanes[i] = lf_db_connect(t->db_url, "leadflow-scheduler-fire");
    return t->lanes[i];
}

/* Claims due timers from Redis and fires them, keeping every lane busy: the next
 * batch is claimed and sent while the previous ones run and commit, and what comes
 * due while they do goes onto a free lane (s_lane_wait), not behind them. Claimed ids
 * are out of Redis; if their batch does not commit (crash, error), the PostgreSQL sweep
 * fires them. Nothing is claimed while PostgreSQL is unreachable. Stops at deadline
 * (monotonic ms). Returns S_DRAIN_MORE when it stopped at the deadline with more due,
 * S_DRAIN_PG_DOWN when PostgreSQL was unreachable, S_DRAIN_DONE otherwise (nothing
 * due left, or Redis failing: the sweep covers it). */
static int s_drain(lf_timers_t *t, lf_redis_t *redis, int64_t deadline) {
    s_lane_t lanes[LF_TIMERS_LANES_MAX];
    int nl = s_nlanes(t);
    int more = 1, end = S_DRAIN_DONE, down = 0;
    int late_ok = 0;       /* the claim s_lane_wait asked for may come after deadline */
    int64_t last_send = 0; /* when the last batch was sent */
    if (nl <= 0) {         /* one batch at a time on the scheduler's connection */
        while (more) {
            if (lf_mono_ms() >= deadline)
                return S_DRAIN_MORE;
            char *ids = NULL;
            int n = s_claim(t, redis, &ids);
            if (n > 0)
                s_fire_sync(t, t->db, redis, ids);
            free(ids);
            more = n >= t->claim_batch;
        }
        return S_DRAIN_DONE;
    }
    for (int i = 0; i < nl; i++)
        lanes[i] = (s_lane_t){.db = t->lanes[i]};
    for (;;) {
        for (int i = 0; i < nl && more; i++) {
            if (lanes[i].busy)
                continue;
            if (!lanes[i].db)
                lanes[i].db = s_lane_db(t, i);
            if (lf_mono_ms() >= deadline && !late_ok) {
                more = 0;
                end = S_DRAIN_MORE;
                break;
            }
            late_ok = 0;
            if (lf_db_ensure(lanes[i].db) < 0) {
                more = 0; /* leave the due timers in Redis until it is back */
                down = 1;
                end = S_DRAIN_PG_DOWN;
                break;
            }
            char *ids = NULL;
            int n = s_claim(t, redis, &ids);
            if (n < t->claim_batch)
                more = 0;
            else
                lf_effects_hold(t->effects, 1); /* a backlog: fire it first */
            if (n > 0 && s_lane_send(&lanes[i], t, ids) < 0) {
                more = 0;
                down = 1;
                end = S_DRAIN_PG_DOWN;
            }
            if (n > 0)
                last_send = lf_mono_ms();
            free(ids);
        }
        struct pollfd pf[LF_TIMERS_LANES_MAX];
        int idx[LF_TIMERS_LANES_MAX], nb = 0;
        for (int i = 0; i < nl; i++)
            if (lanes[i].busy) {
                pf[nb] =
                    (struct pollfd){.fd = PQsocket(lanes[i].db->conn), .events = POLLIN};
                idx[nb++] = i;
            }
        if (!nb)
            break;
        int claim = 0;
        int wait =
            down ? 1000
                 : s_lane_wait(t, redis, lanes, nl, more, last_send, deadline, &claim);
        int got = poll(pf, (nfds_t)nb, wait);
        if (got < 0 && errno != EINTR)
            lf_warn("poll: %s", strerror(errno));
        for (int k = 0; got > 0 && k < nb; k++)
            if (pf[k].revents)
                s_lane_read(&lanes[idx[k]], t, redis);
        if (claim && got == 0)
            more = late_ok = 1; /* the next timer is due: onto a free lane */
    }
    return end;
}

/* Fires pending timers that are past due by more than two seconds: Redis lost them
 * (restart without persistence, a crash between claim and commit). */
static void s_sweep_pg(lf_timers_t *t, lf_db_t *db, lf_redis_t *redis, int64_t deadline) {
    char lim[16];
    snprintf(lim, sizeof lim, "%d", t->claim_batch);
    const char *p[] = {lim};
    int n;
    do {
        PGresult *res = lf_db_exec(
            db,
            "SELECT coalesce('{' || string_agg(id::text, ',') || '}', '{}'), count(*)"
            " FROM (SELECT id FROM timers WHERE state = 'pending'"
            " AND due_at < now() - interval '2 seconds'"
            " ORDER BY due_at LIMIT $1::int) d",
            1, p);
        if (!res)
            return;
        n = atoi(PQgetvalue(res, 0, 1));
        if (n > 0) {
            int fired = s_fire_sync(t, db, redis, PQgetvalue(res, 0, 0));
            if (fired > 0)
                lf_info("fired overdue timers Redis did not have fired=%d", fired);
            if (fired < 0)
                n = 0;
        }
        PQclear(res);
    } while (n >= t->claim_batch && lf_mono_ms() < deadline);
}

/* Gives the memory a busy moment left in malloc's free lists back to the system
 * (idle RSS, docs/benchmarks.md), at most every two seconds and only when nothing
 * fired since the last look, after some work was done since the last time. */
static void s_trim_when_idle(lf_timers_t *t, long fired_before, int64_t now) {
    long fired = atomic_load(&t->fired);
    long mark = fired + lf_effects_applied(t->effects);
    if (fired != fired_before || mark == t->trim_mark || now < t->next_trim)
        return;
    malloc_trim(0);
    t->trim_mark = mark;
    t->next_trim = now + 2000;
}

/* One round of firing: due timers from Redis (at most a second of it), then, with
 * nothing left due, the timers Redis forgot. Returns the milliseconds until the next
 * due timer (at most cap), 0 when more is due now, -1 when PostgreSQL is down. */
static int s_fire_round(lf_timers_t *t, lf_db_t *db, lf_redis_t *redis, int cap) {
    int64_t now = lf_mono_ms();
    int end = s_drain(t, redis, now + 1000);
    if (end == S_DRAIN_MORE)
        return 0;
    lf_effects_hold(t->effects, 0); /* the backlog is fired: its effects may go */
    if (end == S_DRAIN_PG_DOWN)
        return -1;
    if (now >= t->next_pg_sweep && db && lf_db_ensure(db) == 0) {
        s_sweep_pg(t, db, redis, lf_mono_ms() + 1000);
        t->next_pg_sweep = now + 1000;
    }
    return s_next_due(t, redis, cap);
}

/* The firing thread: rounds of firing on the lanes, with a Redis connection of its
 * own, whatever the main thread is doing (a backlog of events to consume took it
 * hundreds of milliseconds per turn, and timers waited for it). */
static void *s_fire_main(void *arg) {
    lf_timers_t *t = arg;
    lf_redis_t *redis = lf_redis_connect(t->redis_host, t->redis_port);
    /* Every lane connected, with lf_fire_timers()'s plans made (its first call in a
     * session: 11-25 ms), before anything is due: a lane that connects when a slow batch
     * first needs it would pay both on the firing path. An id that no timer has fires
     * nothing. */
    for (int i = 0; i < s_nlanes(t); i++) {
        lf_db_t *db = s_lane_db(t, i);
        const char *p[] = {"{0}", t->sla_text, NULL};
        PQclear(lf_db_ensure(db) == 0 ? lf_db_exec(db, S_FIRE_SQL, 3, p) : NULL);
    }
    while (!atomic_load(&t->fire_stop)) {
        long fired_before = atomic_load(&t->fired);
        /* The sweep of overdue timers uses the first lane, idle between drains. */
        int wait = s_fire_round(t, s_lane_db(t, 0), redis, t->tick_ms);
        if (wait == 0)
            continue;
        if (wait < 0)
            wait = t->tick_ms; /* PostgreSQL down: try again a tick later */
        s_trim_when_idle(t, fired_before, lf_mono_ms());
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (wait % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&t->fire_mu);
        if (!atomic_load(&t->fire_stop))
            pthread_cond_timedwait(&t->fire_cv, &t->fire_mu, &ts);
        pthread_mutex_unlock(&t->fire_mu);
    }
    lf_redis_destroy(&redis);
    return NULL;
}

int lf_timers_fire_start(lf_timers_t *t, const char *redis_host, int redis_port,
                         int tick_ms) {
    if (t->nlanes <= 0)
        return 0; /* firing stays on the main connection, in the tick */
    t->redis_host = redis_host;
    t->redis_port = redis_port;
    t->tick_ms = tick_ms > 0 ? tick_ms : 100;
    atomic_store(&t->fire_stop, 0);
    pthread_mutex_init(&t->fire_mu, NULL);
    pthread_cond_init(&t->fire_cv, NULL);
    if (pthread_create(&t->fire_thread, NULL, s_fire_main, t) != 0) {
        lf_error("cannot start the timer firing thread");
        pthread_mutex_destroy(&t->fire_mu);
        pthread_cond_destroy(&t->fire_cv);
        return -1;
    }
    t->fire_started = 1;
    return 0;
}

void lf_timers_fire_stop(lf_timers_t *t) {
    if (!t->fire_started)
        return;
    pthread_mutex_lock(&t->fire_mu);
    atomic_store(&t->fire_stop, 1);
    pthread_cond_signal(&t->fire_cv);
    pthread_mutex_unlock(&t->fire_mu);
    pthread_join(t->fire_thread, NULL);
    pthread_mutex_destroy(&t->fire_mu);
    pthread_cond_destroy(&t->fire_cv);
    t->fire_started = 0;
}

int lf_timers_tick(void *arg) {
    lf_timers_t *t = arg;
    redisReply *r = lf_redis_cmd(t->redis, "EXISTS %s", t->epoch_key);
    if (r) {
        long exists = r->integer;
        freeReplyObject(r);
        if (!exists)
            lf_timers_rebuild(t);
    }
    /* What event batches left in malloc's free lists (envelopes, results) goes back
     * too, at most every two seconds while events come. */
    int64_t now_ms = lf_mono_ms();
    if (t->batches != t->trim_batches && now_ms >= t->next_main_trim) {
        malloc_trim(0);
        t->trim_batches = t->batches;
        t->next_main_trim = now_ms + 2000;
    }
    int wait;
    if (t->fire_started) {
        wait = 1000; /* the firing thread fires; the loop's tick interval caps this */
    } else {
        int64_t now = lf_mono_ms();
        long fired_before = atomic_load(&t->fired);
        wait = s_fire_round(t, t->db, t->redis, 100000);
        if (wait == 0)
            return 0; /* more is due: come back right after the events */
        if (wait < 0)
            return -1; /* try again a tick later */
        s_trim_when_idle(t, fired_before, now);
    }
    lf_digests_tick(t, t->digests); /* team digest timers: clocks.h */
    return wait;
}
