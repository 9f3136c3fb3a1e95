/* effects.c - the effects of fired timers, off the firing path.
 *
 * Firing a batch of SLA and follow-up timers (timers.c, lf_fire_timers()) only flips
 * their state and writes one 'timer.fired' outbox event per timer, in one statement:
 * that is what has to happen on time, and it is two row writes per timer. Everything
 * that follows from it - whether the lead still needs a reminder, an escalation or a
 * reassign request, the notification, the timeline entry, the outbox event that
 * announces it and the next step's timer - is derived here from those events by an
 * outbox consumer ("scheduler-effects", consumer.h), a batch per transaction with one
 * statement (lf_timer_effects(), 45_lf_timer_effects.sql). The consumer's acks make
 * that exactly once per event, hence per fired timer, through crashes, redeliveries
 * and twin schedulers; a timer fires once because its flip is guarded by its state.
 *
 * The firing path hands the seqs of the events it committed to this thread (a queue
 * under a mutex: firing never waits for the effects), and the thread's outbox sweep
 * brings back what was never handed over (a crash between commit and hand-over, a
 * full queue, another scheduler's events). The thread has its own PostgreSQL and
 * Redis connections: the next step's timers are indexed in Redis with one ZADD once
 * their batch committed, and a Redis that is away only delays them to the PostgreSQL
 * sweep of overdue timers. */
#include "effects.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lf/consumer.h"
#include "lf/db.h"
#include "lf/event.h"
#include "lf/log.h"
#include "lf/loop.h"
#include "lf/pgarray.h"
#include "lf/redis.h"
#include "lf/util.h"
#include "timers.h"

/* Seqs waiting in the queue at most; beyond, the sweep finds them. */
#define S_QUEUE_MAX 200000
/* How long a backlog of due timers keeps the effects off the cores (lf_effects_hold),
 * counted from when the backlog began: 100,000 timers due at once fire in about a
 * second on a quiet machine, in a few under load; a longer backlog then shares the
 * cores with its effects, which are never put off for longer. */
#define S_HOLD_MAX_MS 5000

static const char *const s_types[] = {"timer.fired", NULL};

/* One effects thread: a twin of the "scheduler-effects" consumer with its own
 * connections and its own queue of handed-over seqs. */
typedef struct {
    lf_effects_cfg_t cfg; /* copied; the strings are borrowed */
    lf_effects_t *parent; /* the handle it belongs to (hold) */
    int index;            /* 0 also sweeps the outbox and moves the cursor */
    pthread_t thread;     /* the consumer thread */
    int started;          /* thread running (joined at stop) */
    pthread_mutex_t mu;   /* guards q, qn, qcap, overflow */
    pthread_cond_t cv;    /* signalled on push and stop */
    atomic_int stop;      /* the thread should end (set under mu too) */
    long long *q;         /* seqs handed over, not taken yet */
    size_t qn, qcap;
    int overflow;     /* seqs were dropped from a full queue: sweep now */
    atomic_long done; /* events applied (committed) */
    /* Owned by the thread: */
    lf_redis_t *redis; /* next steps' timers go to Redis */
    char *pending;     /* "due_ms id ..." of the open batch, indexed once committed */
    size_t pending_len, pending_cap;
    long open_applied; /* events applied by the open batch */
} s_worker_t;

struct lf_effects {
    s_worker_t workers[LF_EFFECTS_WORKERS_MAX];
    int n;            /* workers (each thread started when first needed) */
    atomic_uint next; /* the worker the next hand-over goes to */
    atomic_int hold;  /* firing has a backlog: start no new batch (lf_effects_hold) */
    _Atomic int64_t hold_since; /* lf_mono_ms() when the hold went on */
};

/* Is firing's backlog to be left the cores (held, for less than S_HOLD_MAX_MS)? */
static int s_held(lf_effects_t *self) {
    return atomic_load(&self->hold) &&
           lf_mono_ms() - atomic_load(&self->hold_since) < S_HOLD_MAX_MS;
}

/* Runs lf_timer_effects() for the events seqs (an array literal) inside the
 * consumer's transaction, and queues the new timers for Redis. Returns 0 or -1. */
static int s_apply(s_worker_t *e, lf_db_t *db, const char *seqs, long n) {
    /* The ids of the events it writes (at most one per timer), drawn here. */
    char *eids = lf_uuid4_array(n > 0 ? (size_t)n : 0);
    const char *p[] = {seqs, e->cfg.sla_text, eids};
    PGresult *res = lf_db_exec_prepared(
        db, "lf_timer_effects",
        "SELECT next_timers FROM lf_timer_effects($1::bigint[], $2::jsonb, $3::uuid[])",
        3, p);
    free(eids);
    if (!res)
        return -1;
    const char *pairs = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "";
    size_t len = strlen(pairs);
    if (len) {
        if (e->pending_len + len + 2 > e->pending_cap) {
            e->pending_cap = (e->pending_len + len + 2) * 2;
            e->pending = lf_realloc(e->pending, e->pending_cap);
        }
        if (e->pending_len)
            e->pending[e->pending_len++] = ' ';
        memcpy(e->pending + e->pending_len, pairs, len);
        e->pending_len += len;
        e->pending[e->pending_len] = '\0';
    }
    PQclear(res);
    e->open_applied += n;
    return 0;
}

/* The consumer's batch path: every new event of the batch in one statement. */
static int s_on_events(lf_consumer_t *c, lf_db_t *db, json_t *const *envs, size_t n,
                       void *arg) {
    lf_pgarray_t seqs;
    lf_pgarray_init(&seqs);
    for (size_t i = 0; i < n; i++)
        lf_pgarray_add_int(&seqs, lf_event_seq(envs[i]));
    int rc = s_apply(arg, db, lf_pgarray_end(&seqs), (long)n);
    lf_pgarray_free(&seqs);
    return rc;
}

/* The per-event path, used when a batch failed as a whole: the culprit is parked
 * alone. */
static int s_on_event(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg) {
    char seqs[32];
    snprintf(seqs, sizeof seqs, "{%lld}", lf_event_seq(env));
    return s_apply(arg, db, seqs, 1);
}

/* After each batch: index the committed batch's timers, or forget them. */
static void s_on_batch(void *arg, int committed) {
    s_worker_t *e = arg;
    if (committed) {
        if (e->pending_len)
            lf_timers_zadd(e->redis, e->cfg.zkey, e->pending);
        atomic_fetch_add(&e->done, e->open_applied);
    }
    e->pending_len = 0;
    if (e->pending)
        e->pending[0] = '\0';
    e->open_applied = 0;
}

/* Applies the handed-over seqs (sorted, possibly repeated), batch by batch. Returns
 * -1 when a batch failed (the sweep brings it back), 0 otherwise. */
static int s_handle(s_worker_t *e, lf_consumer_t *c, const long long *seqs, size_t n) {
    size_t b = (size_t)e->cfg.batch;
    json_t **envs = lf_calloc(b, sizeof *envs);
    int rc = 0;
    for (size_t i = 0; i < n && !atomic_load(&e->stop); i += b) {
        size_t k = n - i < b ? n - i : b;
        for (size_t j = 0; j < k; j++)
            envs[j] = json_pack("{s:I, s:s}", "seq", (json_int_t)seqs[i + j], "type",
                                "timer.fired");
        if (lf_consumer_handle(c, envs, k) < 0)
            rc = -1;
        for (size_t j = 0; j < k; j++)
            json_decref(envs[j]);
    }
    free(envs);
    return rc;
}

static void *s_main(void *arg) {
    s_worker_t *e = arg;
    lf_db_t *db = lf_db_connect(e->cfg.db_url, "leadflow-scheduler-effects");
    e->redis = lf_redis_connect(e->cfg.redis_host, e->cfg.redis_port);
    lf_consumer_t *c = lf_consumer_new(db, "scheduler-effects", s_types, s_on_event, e);
    lf_consumer_set_batch_fn(c, s_on_events, LF_BATCH_SEQ_ONLY);
    lf_consumer_on_batch(c, s_on_batch);
    if (e->cfg.max_attempts > 0)
        lf_consumer_set_retry(c, e->cfg.max_attempts, e->cfg.backoff_ms);
    long long *mine = NULL;
    size_t mine_cap = 0;
    int64_t next_sweep = 0; /* at start: whatever was left from before */
    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&e->mu);
        while (!atomic_load(&e->stop) && e->qn == 0 && !e->overflow &&
               lf_mono_ms() < next_sweep) {
            int64_t ms = next_sweep - lf_mono_ms();
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += ms / 1000;
            ts.tv_nsec += (ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            int w = pthread_cond_timedwait(&e->cv, &e->mu, &ts);
            if (w != 0 && w != ETIMEDOUT)
                break;
        }
        if (atomic_load(&e->stop)) {
            pthread_mutex_unlock(&e->mu);
            break;
        }
        if (e->overflow)
            next_sweep = 0;
        e->overflow = 0;
        /* Take the whole queue: swap buffers. */
        long long *t = e->q;
        size_t tcap = e->qcap;
        n = e->qn;
        e->q = mine;
        e->qcap = mine_cap;
        e->qn = 0;
        mine = t;
        mine_cap = tcap;
        pthread_mutex_unlock(&e->mu);
        /* A backlog of due timers is fired first; its effects wait, the sweep's too
         * (S_HOLD_MAX_MS at most, from the start of the backlog, so they never
         * starve). Effects taking a core in the middle of a burst slowed its firing
         * down, and a slower burst let more of them in: up to a third of the
         * scheduler's backend CPU went to effects before the last timer of a burst of
         * 100,000 fired (bench/scheduler.sh, when each thread waited at most a second
         * per hand-over and the sweep did not wait). */
        while (n > 0 && s_held(e->parent) && !atomic_load(&e->stop))
            nanosleep(&(struct timespec){.tv_nsec = 10 * 1000000L}, NULL);
        if (n > 0 && s_handle(e, c, mine, n) < 0)
            next_sweep = 0;
        if (e->index > 0) {
            next_sweep = lf_mono_ms() + e->cfg.sweep_ms; /* worker 0 sweeps */
        } else if (!atomic_load(&e->stop) && lf_mono_ms() >= next_sweep &&
                   !s_held(e->parent)) {
            /* The cursor first, so the sweep's window starts near the events not yet
             * acknowledged instead of re-reading the acknowledged ones. */
            lf_consumer_advance(c);
            lf_consumer_replay(c); /* parked events an operator asked to replay */
            int got = lf_consumer_sweep(c, e->cfg.batch);
            next_sweep = got >= e->cfg.batch / 2 ? 0 : lf_mono_ms() + e->cfg.sweep_ms;
        }
    }
    free(mine);
    lf_consumer_destroy(&c);
    lf_redis_destroy(&e->redis);
    lf_db_destroy(&db);
    return NULL;
}

static void s_worker_stop(s_worker_t *e) {
    if (e->started) {
        pthread_mutex_lock(&e->mu);
        atomic_store(&e->stop, 1);
        pthread_cond_signal(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
        e->started = 0;
    }
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e->q);
    free(e->pending);
}

/* Starts worker e's thread. Returns 0, or -1 when it could not start. */
static int s_worker_start(s_worker_t *e) {
    if (pthread_create(&e->thread, NULL, s_main, e) != 0) {
        lf_error("cannot start timer effects thread %d", e->index);
        return -1;
    }
    e->started = 1;
    return 0;
}

lf_effects_t *lf_effects_start(const lf_effects_cfg_t *cfg, int workers) {
    lf_effects_t *self = lf_calloc(1, sizeof *self);
    if (workers < 1)
        workers = 1;
    if (workers > LF_EFFECTS_WORKERS_MAX)
        workers = LF_EFFECTS_WORKERS_MAX;
    atomic_init(&self->next, 0);
    atomic_init(&self->hold, 0);
    atomic_init(&self->hold_since, 0);
    for (int i = 0; i < workers; i++) {
        s_worker_t *e = &self->workers[i];
        e->cfg = *cfg;
        e->parent = self;
        e->index = i;
        if (e->cfg.batch < 1)
            e->cfg.batch = 1;
        atomic_init(&e->done, 0);
        atomic_init(&e->stop, 0);
        pthread_mutex_init(&e->mu, NULL);
        pthread_cond_init(&e->cv, NULL);
        self->n = i + 1;
    }
    /* The first thread now (it sweeps what an earlier run left); the others, with
     * their connections, when the first hand-over comes their way (lf_effects_push):
     * an idle scheduler keeps one. */
    if (s_worker_start(&self->workers[0]) < 0) {
        lf_effects_stop(&self);
        return NULL;
    }
    return self;
}

static int s_cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

void lf_effects_push(lf_effects_t *effects, const char *seqs) {
    if (!effects || !seqs || !effects->n)
        return;
    s_worker_t *self =
        &effects->workers[atomic_fetch_add(&effects->next, 1) % (unsigned)effects->n];
    /* Only the firing thread hands over, so starting a thread here races nothing. */
    if (!self->started && s_worker_start(self) < 0)
        self = &effects->workers[0];
    /* Parse outside the lock: "{1,2,3}". */
    size_t cap = 64, n = 0;
    long long *v = lf_malloc(cap * sizeof *v);
    for (const char *s = seqs; *s;) {
        if (*s < '0' || *s > '9') {
            s++;
            continue;
        }
        char *end;
        long long x = strtoll(s, &end, 10);
        if (n == cap) {
            cap *= 2;
            v = lf_realloc(v, cap * sizeof *v);
        }
        v[n++] = x;
        s = end;
    }
    qsort(v, n, sizeof *v, s_cmp_ll);
    pthread_mutex_lock(&self->mu);
    if (self->qn + n > S_QUEUE_MAX) {
        self->overflow = 1; /* the sweep reads them from the outbox */
    } else if (n > 0) {
        if (self->qn + n > self->qcap) {
            self->qcap = (self->qn + n) * 2;
            self->q = lf_realloc(self->q, self->qcap * sizeof *self->q);
        }
        memcpy(self->q + self->qn, v, n * sizeof *v);
        self->qn += n;
    }
    pthread_cond_signal(&self->cv);
    pthread_mutex_unlock(&self->mu);
    free(v);
}

void lf_effects_hold(lf_effects_t *self, int on) {
    if (!self)
        return;
    if (on && !atomic_load(&self->hold))
        atomic_store(&self->hold_since, lf_mono_ms());
    atomic_store(&self->hold, on ? 1 : 0);
}

long lf_effects_applied(lf_effects_t *self) {
    long n = 0;
    for (int i = 0; self && i < self->n; i++)
        n += atomic_load(&self->workers[i].done);
    return n;
}

void lf_effects_stop(lf_effects_t **self_p) {
    lf_effects_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    for (int i = 0; i < self->n; i++)
        s_worker_stop(&self->workers[i]);
    free(self);
    *self_p = NULL;
}
