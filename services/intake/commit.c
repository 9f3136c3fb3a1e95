/* commit.c - the group committer.
 *
 * Why one big statement: a lead needs three inserts (the lead, its "created"
 * timeline entry, its outbox event). Doing them per lead would cost a round trip
 * each and an fsync per lead (~1,900 leads/s on this class of machine). A batch goes
 * to PostgreSQL as one call of lf_intake_commit() (db/functions/21_lf_intake_commit.sql)
 * with one typed array per column (batch_arrays.c): one round trip, one fsync per
 * batch, and PostgreSQL merges the WAL flushes of the several committer threads on
 * top of that. For a batch of new people the function runs one set-based statement.
 *
 * Duplicates and repeat inquiries are decided by that statement with indexed lookups
 * and unique indexes, not locks per value: a retry (Idempotency-Key, (channel,
 * external_id), CallSid) answers 200 "duplicate" with the existing lead; a repeat
 * inquiry from the same phone or e-mail as an open lead answers 200 "merged" with that
 * lead, also when the two requests raced on two connections and landed in batches of
 * two committer threads (the loser of the unique index waits for the winner's commit
 * and is merged in the function's next pass).
 *
 * Batches linger: a thread that finds fewer than max_batch leads waiting waits up to
 * linger_us for more (one thread at a time collects; the others sleep), so that under
 * load a statement carries a few hundred leads, not six. The queue is bounded in leads
 * and bytes (commit.h). */
#include "commit.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch_arrays.h"
#include "threads.h"
#include "lf/db.h"
#include "lf/event.h"
#include "lf/log.h"
#include "lf/util.h"

struct lf_committer {
    pthread_mutex_t lock;  /* guards the queue, `collecting`, `executing`, `stopping` */
    pthread_cond_t wake;   /* a job arrived while nobody collects, or stop */
    pthread_cond_t full;   /* the collecting thread's batch is full, or stop */
    lf_job_t *head, *tail; /* FIFO of waiting jobs */
    long queued;           /* jobs in the queue */
    long queued_bytes;     /* their lf_job_t.bytes */
    lf_committer_cfg_t cfg;
    int collecting; /* a thread is lingering for its batch to fill */
    int executing;  /* threads whose batch statement is running */
    int stopping;   /* set by stop: drain, then exit */
    int nthreads;
    pthread_t *threads;
    char *db_url;
    lf_publish_fn publish;
    void *publish_arg;
    atomic_long batches, committed, merged, failed, refused;
};

static const char *s_commit_sql =
    "SELECT out_pos, out_lead, out_status, out_type, out_seq, out_event, out_at "
    "FROM lf_intake_commit("
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, "
    "$19, $20, $21, $22, $23, $24, $25, $26, $27)";

static long s_job_bytes(const lf_job_t *job) {
    return job->bytes ? (long)job->bytes : 1024;
}

static void s_finish(lf_job_t *job, int status, const char *id, const char *result) {
    job->status = status;
    if (id)
        lf_strlcpy(job->result_id, id, sizeof job->result_id);
    job->result = result;
    atomic_store(&job->done, 1);
    job->done_fn(job);
}

/* A committer thread's text buffer for the envelopes it publishes, reused batch after
 * batch (json_dumps allocated and grew a new text for every event). */
typedef struct {
    char *buf;
    size_t len, cap;
} s_text_t;

static int s_text_put(const char *s, size_t n, void *arg) {
    s_text_t *t = arg;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 512;
        while (cap < t->len + n + 1)
            cap *= 2;
        t->buf = lf_realloc(t->buf, cap);
        t->cap = cap;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
    return 0;
}

typedef struct {
    const char *id; /* a job's lead id (borrowed) */
    int idx;        /* the job's position in the batch */
} s_idx_t;

static int s_cmp_idx(const void *a, const void *b) {
    return strcmp(((const s_idx_t *)a)->id, ((const s_idx_t *)b)->id);
}

/* Appends a string literal. */
#define S_LIT(t, lit) s_text_put((lit), sizeof(lit) - 1, (t))

/* A JSON string of text PostgreSQL returned (ids, the event type, the time): quoted,
 * with what JSON must escape escaped (none of these values has any). */
static void s_text_str(s_text_t *t, const char *s) {
    static const char hex[] = "0123456789abcdef";
    s_text_put("\"", 1, t);
    for (const char *p = s;; p++) {
        const char *run = p;
        while (*p && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
            p++;
        s_text_put(run, (size_t)(p - run), t);
        if (!*p)
            break;
        if (*p == '"' || *p == '\\') {
            char two[2] = {'\\', *p};
            s_text_put(two, sizeof two, t);
        } else {
            char esc[6] = {'\\',        'u', '0', '0', hex[(unsigned char)*p >> 4],
                           hex[*p & 15]};
            s_text_put(esc, sizeof esc, t);
        }
    }
    s_text_put("\"", 1, t);
}

/* Publishes the event of result row i: the envelope lf_envelope() makes of its outbox
 * row (common/event.h), built here from the outbox id, event id and time PostgreSQL
 * returned and the payload the function wrote, which it derives from the job's row:
 * lead.created {channel}; lead.merged {kind, channel, source} without nulls. Written
 * as text, keys in json_pack's order of before; the row's strings (channel, source)
 * are dumped by jansson, so they are escaped as every other JSON of intake (building a
 * jansson object per event and dumping it was 5% of intake's CPU: docs/benchmarks.md). */
static void s_publish(lf_committer_t *self, s_text_t *text, PGresult *res, int i,
                      const json_t *row) {
    const char *type = PQgetvalue(res, i, 3);
    char head[96];
    snprintf(head, sizeof head, "{\"v\":%d,\"seq\":%lld,\"event_id\":", LF_EVENT_VERSION,
             strtoll(PQgetvalue(res, i, 4), NULL, 10));
    text->len = 0;
    s_text_put(head, strlen(head), text);
    s_text_str(text, PQgetvalue(res, i, 5));
    S_LIT(text, ",\"type\":");
    s_text_str(text, type);
    S_LIT(text, ",\"lead_id\":");
    s_text_str(text, PQgetvalue(res, i, 1));
    S_LIT(text, ",\"at\":");
    s_text_str(text, PQgetvalue(res, i, 6));
    S_LIT(text, ",\"payload\":{");
    const char *sep = "";
    int ok = 1;
    if (!strcmp(type, "lead.merged")) {
        const char *kind = json_string_value(json_object_get(row, "kind"));
        if (kind && !strcmp(kind, "call"))
            S_LIT(text, "\"kind\":\"call\"");
        else
            S_LIT(text, "\"kind\":\"inquiry\"");
        sep = ",";
        json_t *source = json_object_get(row, "source");
        if (json_is_string(source)) {
            S_LIT(text, ",\"source\":");
            ok = ok && json_dump_callback(source, s_text_put, text, JSON_ENCODE_ANY) == 0;
        }
    }
    json_t *channel = json_object_get(row, "channel");
    if (json_is_string(channel)) {
        s_text_put(sep, strlen(sep), text);
        S_LIT(text, "\"channel\":");
        ok = ok && json_dump_callback(channel, s_text_put, text, JSON_ENCODE_ANY) == 0;
    }
    S_LIT(text, "}}");
    if (ok)
        self->publish(self->publish_arg, type, text->buf, text->len);
}

/* Stores one batch. Every job gets its result, whatever happens. */
static void s_commit_batch(lf_committer_t *self, lf_db_t *db, lf_batch_arrays_t *arr,
                           s_text_t *text, lf_job_t **jobs, int n) {
    lf_batch_arrays_reset(arr);
    for (int i = 0; i < n; i++)
        lf_batch_arrays_add(arr, jobs[i]->row);
    /* The call is one statement in its own transaction: when PostgreSQL broke a
     * deadlock by failing it (docs/reliability.md, lock order: two batches racing for
     * the same people crosswise), nothing of it stayed and it is simply sent again. */
    PGresult *res = NULL;
    for (int attempt = 0; attempt < 3 && !res; attempt++) {
        res = lf_db_exec_prepared(db, "lf_intake_commit", s_commit_sql, LF_BATCH_COLUMNS,
                                  lf_batch_arrays_params(arr));
        if (!res && strcmp(lf_db_sqlstate(db), "40P01") != 0)
            break;
    }
    if (!res) {
        lf_error("lead batch not committed leads=%d reason=%s", n, db->errstr);
        atomic_fetch_add(&self->failed, n);
        for (int i = 0; i < n; i++)
            s_finish(jobs[i], 503, NULL, NULL);
        return;
    }
    atomic_fetch_add(&self->batches, 1);
    int nres = PQntuples(res);
    /* Each result row's job: by position, or for a new lead by its id (the one the job
     * gave it), found by binary search over the jobs' ids, sorted. */
    s_idx_t *byid = lf_malloc((size_t)n * sizeof *byid);
    for (int j = 0; j < n; j++)
        byid[j] = (s_idx_t){jobs[j]->lead_id, j};
    qsort(byid, (size_t)n, sizeof *byid, s_cmp_idx);
    int *rowjob = lf_malloc((size_t)(nres ? nres : 1) * sizeof *rowjob);
    for (int i = 0; i < nres; i++) {
        const char *lead = PQgetisnull(res, i, 1) ? NULL : PQgetvalue(res, i, 1);
        long pos = PQgetisnull(res, i, 0) ? 0 : strtol(PQgetvalue(res, i, 0), NULL, 10);
        if (pos == 0 && lead) {
            s_idx_t key = {lead, 0};
            s_idx_t *hit = bsearch(&key, byid, (size_t)n, sizeof *byid, s_cmp_idx);
            pos = hit ? hit->idx + 1 : 0;
        }
        rowjob[i] = pos >= 1 && pos <= n ? (int)pos - 1 : -1;
    }
    free(byid);
    /* Publish first, then answer: a consumer may see the event before the client
     * sees its answer, never the other way round. Both are after the commit. */
    for (int i = 0; i < nres; i++)
        if (!PQgetisnull(res, i, 3) && rowjob[i] >= 0)
            s_publish(self, text, res, i, jobs[rowjob[i]]->row);
    for (int i = 0; i < nres; i++) {
        if (rowjob[i] < 0 || !jobs[rowjob[i]])
            continue;
        lf_job_t *job = jobs[rowjob[i]];
        jobs[rowjob[i]] = NULL;
        const char *lead = PQgetisnull(res, i, 1) ? NULL : PQgetvalue(res, i, 1);
        const char *st = PQgetvalue(res, i, 2);
        if (!strcmp(st, "created") && lead) {
            atomic_fetch_add(&self->committed, 1);
            s_finish(job, 201, lead, "created");
        } else if (!strcmp(st, "duplicate") && lead) {
            s_finish(job, 200, lead, "duplicate");
        } else if (!strcmp(st, "merged") && lead) {
            atomic_fetch_add(&self->merged, 1);
            s_finish(job, 200, lead, "merged");
        } else {
            s_finish(job, 503, NULL, NULL);
        }
    }
    free(rowjob);
    PQclear(res);
    /* A job without a result row cannot happen; answer it anyway. */
    for (int i = 0; i < n; i++)
        if (jobs[i])
            s_finish(jobs[i], 503, NULL, NULL);
}

/* With the lock held: 1 when a thread may take a batch now. At most max_running
 * batches run at once unless a full one is waiting: what arrives while they run becomes
 * the next batch, so under load the batches grow with the load instead of every thread
 * taking a few leads (a statement costs PostgreSQL about as much as tens of leads,
 * whatever its size: docs/benchmarks.md). A full batch starts at once on another thread,
 * and so does everything when stopping (drain). */
static int s_may_start(const lf_committer_t *self) {
    if (self->stopping)
        return 1;
    if (!self->head || self->collecting)
        return 0;
    return self->executing < self->cfg.max_running || self->queued >= self->cfg.max_batch;
}

/* With the lock held: waits up to linger_us for the queue to hold a full batch. */
static void s_linger(lf_committer_t *self) {
    if (self->cfg.linger_us <= 0 || self->queued >= self->cfg.max_batch)
        return;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    long ns = until.tv_nsec + self->cfg.linger_us * 1000L;
    until.tv_sec += ns / 1000000000L;
    until.tv_nsec = ns % 1000000000L;
    self->collecting = 1;
    while (self->queued < self->cfg.max_batch && !self->stopping)
        if (pthread_cond_timedwait(&self->full, &self->lock, &until) == ETIMEDOUT)
            break;
    self->collecting = 0;
}

static void *s_thread(void *arg) {
    lf_committer_t *self = arg;
    lf_db_t *db = lf_db_connect(self->db_url, "leadflow-intake-commit");
    if (db->err)
        lf_warn("committer cannot reach PostgreSQL yet: %s", db->errstr);
    lf_job_t **batch = lf_calloc((size_t)self->cfg.max_batch, sizeof *batch);
    lf_batch_arrays_t *arr = lf_batch_arrays_new();
    s_text_t text = {0};
    for (;;) {
        pthread_mutex_lock(&self->lock);
        while (!s_may_start(self))
            pthread_cond_wait(&self->wake, &self->lock);
        if (!self->head && self->stopping) {
            pthread_mutex_unlock(&self->lock);
            break;
        }
        s_linger(self);
        int n = 0;
        while (self->head && n < self->cfg.max_batch) {
            batch[n++] = self->head;
            self->queued_bytes -= s_job_bytes(self->head);
            self->head = self->head->next;
            self->queued--;
        }
        if (!self->head)
            self->tail = NULL;
        else if (s_may_start(self))
            pthread_cond_signal(&self->wake); /* the rest is another thread's batch */
        self->executing += n > 0;
        pthread_mutex_unlock(&self->lock);
        if (!n)
            continue;
        s_commit_batch(self, db, arr, &text, batch, n);
        pthread_mutex_lock(&self->lock);
        self->executing--;
        if (s_may_start(self))
            pthread_cond_signal(&self->wake); /* what came meanwhile is the next batch */
        pthread_mutex_unlock(&self->lock);
    }
    lf_batch_arrays_destroy(&arr);
    free(text.buf);
    free(batch);
    lf_db_destroy(&db);
    return NULL;
}

lf_committer_t *lf_committer_new(const char *db_url, const lf_committer_cfg_t *cfg,
                                 lf_publish_fn publish, void *publish_arg) {
    lf_committer_t *self = lf_calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&self->full, &ca);
    pthread_condattr_destroy(&ca);
    self->cfg = *cfg;
    if (self->cfg.max_batch < 1)
        self->cfg.max_batch = 1;
    if (self->cfg.max_running < 1)
        self->cfg.max_running = 1;
    if (self->cfg.retry_after_s < 1)
        self->cfg.retry_after_s = 1;
    self->db_url = lf_strdup(db_url);
    self->publish = publish;
    self->publish_arg = publish_arg;
    self->threads = lf_calloc((size_t)cfg->threads, sizeof(pthread_t));
    self->nthreads =
        lf_threads_start(self->threads, cfg->threads, s_thread, self, "committer");
    if (self->nthreads < cfg->threads)
        lf_committer_destroy(&self); /* stops and joins those that started */
    return self;
}

int lf_committer_submit(lf_committer_t *self, lf_job_t *job) {
    long bytes = s_job_bytes(job);
    pthread_mutex_lock(&self->lock);
    if (self->stopping) {
        pthread_mutex_unlock(&self->lock);
        job->result = NULL;
        return -1;
    }
    /* An empty queue takes any one job, however big, so that no lead is refused for
     * ever by the byte bound alone. */
    if (self->queued >= self->cfg.max_queue ||
        (self->queued > 0 && self->queued_bytes + bytes > self->cfg.max_bytes)) {
        pthread_mutex_unlock(&self->lock);
        atomic_fetch_add(&self->refused, 1);
        job->result = "busy";
        return -1;
    }
    job->next = NULL;
    atomic_store(&job->done, 0);
    if (self->tail)
        self->tail->next = job;
    else
        self->head = job;
    self->tail = job;
    self->queued++;
    self->queued_bytes += bytes;
    /* Wake a thread only when it has something to do: it may start a batch (nobody
     * collects, and nothing runs or a full batch waits), or the collecting thread's
     * batch is now full. */
    if (self->collecting) {
        if (self->queued >= self->cfg.max_batch)
            pthread_cond_signal(&self->full);
    } else if (s_may_start(self)) {
        pthread_cond_signal(&self->wake);
    }
    pthread_mutex_unlock(&self->lock);
    return 0;
}

void lf_committer_stop(lf_committer_t *self) {
    if (!self)
        return;
    pthread_mutex_lock(&self->lock);
    self->stopping = 1;
    pthread_cond_broadcast(&self->wake);
    pthread_cond_broadcast(&self->full);
    pthread_mutex_unlock(&self->lock);
    lf_threads_join(self->threads, &self->nthreads);
}

void lf_committer_destroy(lf_committer_t **self_p) {
    if (!self_p || !*self_p)
        return;
    lf_committer_t *self = *self_p;
    lf_committer_stop(self);
    free(self->threads);
    free(self->db_url);
    pthread_cond_destroy(&self->wake);
    pthread_cond_destroy(&self->full);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

void lf_committer_stats(lf_committer_t *self, long *queued, long *batches,
                        long *committed, long *failed) {
    pthread_mutex_lock(&self->lock);
    *queued = self->queued;
    pthread_mutex_unlock(&self->lock);
    *batches = atomic_load(&self->batches);
    *committed = atomic_load(&self->committed);
    *failed = atomic_load(&self->failed);
}

void lf_committer_pressure(lf_committer_t *self, long *queued_bytes, long *refused) {
    pthread_mutex_lock(&self->lock);
    *queued_bytes = self->queued_bytes;
    pthread_mutex_unlock(&self->lock);
    *refused = atomic_load(&self->refused);
}

int lf_committer_retry_after(const lf_committer_t *self) {
    return (int)self->cfg.retry_after_s;
}
