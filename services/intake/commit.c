/* commit.c - the group committer.
 *
 * Why one big statement: a lead needs three inserts (the lead, its "created"
 * timeline entry, its outbox event). Doing them per lead would cost a round trip
 * each and an fsync per lead (~1,900 leads/s on this class of machine). Sending the
 * whole batch as one jsonb array into one call of lf_intake_commit() (a PL/pgSQL
 * function, db/functions/21_lf_intake_commit.sql) costs one round trip and one fsync per
 * batch, and PostgreSQL merges the WAL flushes of the several committer threads on
 * top of that.
 *
 * Duplicates and repeat inquiries are decided inside that function, under advisory
 * locks on every phone, e-mail and key of the batch: a retry (Idempotency-Key,
 * (channel, external_id), CallSid) answers 200 "duplicate" with the existing lead; a
 * repeat inquiry from the same phone or e-mail as an open lead answers 200 "merged"
 * with that lead, also when the two requests raced on two connections and landed in
 * batches of two committer threads. */
#include "commit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/db.h"
#include "lf/log.h"
#include "lf/util.h"

struct lf_committer {
    pthread_mutex_t lock;  /* guards the queue and `stopping` */
    pthread_cond_t wake;   /* signalled when a job arrives or on stop */
    lf_job_t *head, *tail; /* FIFO of waiting jobs */
    long queued;           /* jobs in the queue */
    long max_queue;        /* beyond this, submit refuses (503) */
    int max_batch;         /* jobs per statement */
    int stopping;          /* set by destroy: drain, then exit */
    int nthreads;
    pthread_t *threads;
    char *db_url;
    lf_publish_fn publish;
    void *publish_arg;
    atomic_long batches, committed, merged, failed;
};

static const char *s_commit_sql = "SELECT out_job, out_lead, out_status, out_type, "
                                  "out_env FROM lf_intake_commit($1::jsonb)";

static void s_finish(lf_job_t *job, int status, const char *id, const char *result) {
    job->status = status;
    if (id)
        lf_strlcpy(job->result_id, id, sizeof job->result_id);
    job->result = result;
    atomic_store(&job->done, 1);
    job->done_fn(job);
}

static lf_job_t *s_find(lf_job_t **jobs, int n, const char *id) {
    for (int i = 0; i < n; i++)
        if (jobs[i] && strcmp(jobs[i]->lead_id, id) == 0)
            return jobs[i];
    return NULL;
}

/* Stores one batch. Every job gets its result, whatever happens. */
static void s_commit_batch(lf_committer_t *self, lf_db_t *db, lf_job_t **jobs, int n) {
    json_t *rows = json_array();
    for (int i = 0; i < n; i++)
        json_array_append(rows, jobs[i]->row);
    char *text = json_dumps(rows, JSON_COMPACT);
    json_decref(rows);
    const char *p[] = {text};
    PGresult *res = lf_db_exec_prepared(db, "lf_intake_commit", s_commit_sql, 1, p);
    free(text);
    if (!res) {
        lf_error("lead batch not committed leads=%d reason=%s", n, db->errstr);
        atomic_fetch_add(&self->failed, n);
        for (int i = 0; i < n; i++)
            s_finish(jobs[i], 503, NULL, NULL);
        return;
    }
    atomic_fetch_add(&self->batches, 1);
    int nres = PQntuples(res);
    /* Publish first, then answer: a consumer may see the event before the client
     * sees its answer, never the other way round. Both are after the commit. */
    for (int i = 0; i < nres; i++) {
        if (PQgetisnull(res, i, 3))
            continue;
        const char *env = PQgetvalue(res, i, 4);
        self->publish(self->publish_arg, PQgetvalue(res, i, 3), env, strlen(env));
    }
    for (int i = 0; i < nres; i++) {
        lf_job_t *job = s_find(jobs, n, PQgetvalue(res, i, 0));
        if (!job)
            continue;
        const char *st = PQgetvalue(res, i, 2);
        const char *lead = PQgetisnull(res, i, 1) ? NULL : PQgetvalue(res, i, 1);
        for (int j = 0; j < n; j++)
            if (jobs[j] == job)
                jobs[j] = NULL;
        if (!strcmp(st, "created")) {
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
    PQclear(res);
    /* A job without a result row cannot happen; answer it anyway. */
    for (int i = 0; i < n; i++)
        if (jobs[i])
            s_finish(jobs[i], 503, NULL, NULL);
}

static void *s_thread(void *arg) {
    lf_committer_t *self = arg;
    lf_db_t *db = lf_db_connect(self->db_url, "leadflow-intake-commit");
    if (db->err)
        lf_warn("committer cannot reach PostgreSQL yet: %s", db->errstr);
    lf_job_t **batch = lf_calloc((size_t)self->max_batch, sizeof *batch);
    for (;;) {
        pthread_mutex_lock(&self->lock);
        while (!self->head && !self->stopping)
            pthread_cond_wait(&self->wake, &self->lock);
        if (!self->head && self->stopping) {
            pthread_mutex_unlock(&self->lock);
            break;
        }
        int n = 0;
        while (self->head && n < self->max_batch) {
            batch[n++] = self->head;
            self->head = self->head->next;
            self->queued--;
        }
        if (!self->head)
            self->tail = NULL;
        pthread_mutex_unlock(&self->lock);
        s_commit_batch(self, db, batch, n);
    }
    free(batch);
    lf_db_destroy(&db);
    return NULL;
}

lf_committer_t *lf_committer_new(const char *db_url, int threads, int max_batch,
                                 int max_queue, lf_publish_fn publish,
                                 void *publish_arg) {
    lf_committer_t *self = lf_calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    self->max_batch = max_batch;
    self->max_queue = max_queue;
    self->db_url = lf_strdup(db_url);
    self->publish = publish;
    self->publish_arg = publish_arg;
    self->threads = lf_calloc((size_t)threads, sizeof(pthread_t));
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&self->threads[i], NULL, s_thread, self) != 0) {
            lf_error("cannot start committer thread");
            lf_committer_destroy(&self);
            return NULL;
        }
        self->nthreads++;
    }
    return self;
}

int lf_committer_submit(lf_committer_t *self, lf_job_t *job) {
    pthread_mutex_lock(&self->lock);
    if (self->stopping || self->queued >= self->max_queue) {
        pthread_mutex_unlock(&self->lock);
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
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    return 0;
}

void lf_committer_stop(lf_committer_t *self) {
    if (!self)
        return;
    pthread_mutex_lock(&self->lock);
    self->stopping = 1;
    pthread_cond_broadcast(&self->wake);
    pthread_mutex_unlock(&self->lock);
    for (int i = 0; i < self->nthreads; i++)
        pthread_join(self->threads[i], NULL);
    self->nthreads = 0;
}

void lf_committer_destroy(lf_committer_t **self_p) {
    if (!self_p || !*self_p)
        return;
    lf_committer_t *self = *self_p;
    lf_committer_stop(self);
    free(self->threads);
    free(self->db_url);
    pthread_cond_destroy(&self->wake);
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
