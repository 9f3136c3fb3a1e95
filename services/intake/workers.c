/* workers.c - see workers.h. A mutex-guarded FIFO and a condition variable: the jobs
 * are few and each does a database round trip or more, so nothing finer is needed. */
#include "workers.h"

#include <pthread.h>
#include <stdlib.h>

#include "lf/util.h"
#include "threads.h"

typedef struct s_job {
    void (*fn)(void *arg);
    void *arg;
    struct s_job *next;
} s_job_t;

struct lf_workers {
    pthread_mutex_t lock; /* guards the queue and `stopping` */
    pthread_cond_t wake;  /* a job arrived, or stop */
    s_job_t *head, *tail; /* FIFO of waiting jobs (owned) */
    long queued, max_queue;
    int stopping;       /* set by stop: drain, then exit */
    int nthreads;       /* threads running (joined by stop) */
    pthread_t *threads; /* owned */
};

static void *s_thread(void *arg) {
    lf_workers_t *self = arg;
    for (;;) {
        pthread_mutex_lock(&self->lock);
        while (!self->head && !self->stopping)
            pthread_cond_wait(&self->wake, &self->lock);
        s_job_t *job = self->head;
        if (!job) { /* stopping and drained */
            pthread_mutex_unlock(&self->lock);
            break;
        }
        self->head = job->next;
        if (!self->head)
            self->tail = NULL;
        self->queued--;
        pthread_mutex_unlock(&self->lock);
        job->fn(job->arg);
        free(job);
    }
    return NULL;
}

lf_workers_t *lf_workers_new(int threads, int max_queue) {
    lf_workers_t *self = lf_calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    self->max_queue = max_queue;
    self->threads = lf_calloc((size_t)threads, sizeof *self->threads);
    self->nthreads =
        lf_threads_start(self->threads, threads, s_thread, self, "database worker");
    if (self->nthreads < threads)
        lf_workers_destroy(&self); /* stops and joins those that started */
    return self;
}

int lf_workers_submit(lf_workers_t *self, void (*fn)(void *arg), void *arg) {
    pthread_mutex_lock(&self->lock);
    if (self->stopping || self->queued >= self->max_queue) {
        pthread_mutex_unlock(&self->lock);
        return -1;
    }
    s_job_t *job = lf_calloc(1, sizeof *job);
    job->fn = fn;
    job->arg = arg;
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

void lf_workers_stop(lf_workers_t *self) {
    if (!self)
        return;
    pthread_mutex_lock(&self->lock);
    self->stopping = 1;
    pthread_cond_broadcast(&self->wake);
    pthread_mutex_unlock(&self->lock);
    lf_threads_join(self->threads, &self->nthreads);
}

void lf_workers_destroy(lf_workers_t **self_p) {
    if (!self_p || !*self_p)
        return;
    lf_workers_t *self = *self_p;
    lf_workers_stop(self);
    free(self->threads);
    pthread_cond_destroy(&self->wake);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

long lf_workers_queued(lf_workers_t *self) {
    pthread_mutex_lock(&self->lock);
    long n = self->queued;
    pthread_mutex_unlock(&self->lock);
    return n;
}
