/* commit.h - group commit of new leads.
 *
 * HTTP threads hand a prepared lead to the committer and wait (their connection is
 * suspended, the thread moves on). Committer threads take every lead waiting in the
 * queue, up to a batch limit, and store them with one statement: one transaction,
 * one WAL flush for the whole batch. A lead is acknowledged only after that commit
 * returned, so 2xx always means "durable".
 *
 * The queue is bounded in leads and in bytes: when PostgreSQL is slower than the
 * offered load, submit refuses and the client gets 503 with Retry-After at once,
 * instead of waiting in a queue that grows with the load (and intake's memory with
 * it). */
#ifndef LF_INTAKE_COMMIT_H
#define LF_INTAKE_COMMIT_H

#include <jansson.h>
#include <stdatomic.h>

typedef struct lf_job lf_job_t;
typedef void (*lf_job_done_fn)(lf_job_t *job);

struct lf_job {
    json_t *row;            /* owned: the leads row as a JSON object (see commit.c) */
    char lead_id[40];       /* the id this lead gets if it is new */
    size_t bytes;           /* memory the job holds, counted against the queue's byte
                               bound; set by the caller (0 counts as 1 KiB) */
    int status;             /* result: 201 created, 200 duplicate/merged, 503 */
    char result_id[40];     /* the lead id to return (new or existing) */
    const char *result;     /* "created", "duplicate" or "merged"; with 503: "busy"
                               (the queue was full) or NULL (static) */
    lf_job_done_fn done_fn; /* called from a committer thread when the result is set */
    void *done_arg;         /* for done_fn */
    atomic_int done;        /* 1 once the result is set */
    lf_job_t *next;         /* queue link, owned by the committer while queued */
};

typedef struct lf_committer lf_committer_t;

/* Publishes a committed event envelope (JSON text). Called from committer threads. */
typedef void (*lf_publish_fn)(void *arg, const char *type, const char *env, size_t len);

typedef struct {
    int threads;        /* committer threads, each with its own PostgreSQL connection */
    int max_batch;      /* most leads per statement */
    int max_running;    /* statements running at once unless a full batch waits */
    long max_queue;     /* most leads waiting; beyond, submit refuses */
    long max_bytes;     /* most bytes waiting (lf_job_t.bytes); beyond, submit refuses */
    long linger_us;     /* how long a thread waits for a batch to fill (0: never) */
    long retry_after_s; /* the Retry-After a refused client is given */
} lf_committer_cfg_t;

/* Starts the committer threads. Returns NULL when the threads cannot start. Caller
 * owns the result. */
lf_committer_t *lf_committer_new(const char *db_url, const lf_committer_cfg_t *cfg,
                                 lf_publish_fn publish, void *publish_arg);
/* Queues a job. Returns 0, or -1 when the queue is full (job->result "busy") or the
 * committer is stopping (the caller answers 503 with lf_committer_retry_after; nothing
 * was stored). The job must stay valid until done_fn was called. */
int lf_committer_submit(lf_committer_t *self, lf_job_t *job);
/* Commits and answers what is queued, stops the threads and closes their connections;
 * from then on lf_committer_submit refuses (-1). The committer stays valid: stop it
 * before stopping the HTTP daemon, destroy it after, so a request still arriving on an
 * open connection meets a refusing committer, not freed memory. Safe to call twice. */
void lf_committer_stop(lf_committer_t *self);
/* Stops (if not stopped) and frees the committer. */
void lf_committer_destroy(lf_committer_t **self_p);
/* Queue depth and counters for /metrics. */
void lf_committer_stats(lf_committer_t *self, long *queued, long *batches,
                        long *committed, long *failed);
/* Bytes queued and leads refused because the queue was full, for /metrics. */
void lf_committer_pressure(lf_committer_t *self, long *queued_bytes, long *refused);
/* Seconds a refused client is told to wait (Retry-After). */
int lf_committer_retry_after(const lf_committer_t *self);

#endif
