/* workers.h - a pool of threads for intake's database work.
 *
 * libmicrohttpd runs a few epoll threads, each serving many connections. A request
 * whose handler talks to PostgreSQL (stage moves, activities, reps, lists, reads) must
 * not run there: one lock wait would stall every connection of that thread. http.c
 * suspends such a connection, hands the request to this pool, and the worker runs the
 * handler on its own PostgreSQL connection; the reply is kept with the request and the
 * connection resumed, and the HTTP thread sends it - the group committer's pattern. */
#ifndef LF_INTAKE_WORKERS_H
#define LF_INTAKE_WORKERS_H

typedef struct lf_workers lf_workers_t;

/* Starts `threads` workers; at most max_queue jobs wait. Returns NULL when the threads
 * cannot start. Caller owns the result. */
lf_workers_t *lf_workers_new(int threads, int max_queue);
/* Queues fn(arg) for a worker. Returns 0, or -1 when the queue is full or the pool is
 * stopping (fn is not called; the caller answers 503). */
int lf_workers_submit(lf_workers_t *self, void (*fn)(void *arg), void *arg);
/* Runs what is queued, then stops the threads; later submits are refused. The pool
 * stays valid (see lf_committer_stop for the shutdown order). Safe to call twice. */
void lf_workers_stop(lf_workers_t *self);
/* Stops (if needed) and frees the pool; accepts NULL. */
void lf_workers_destroy(lf_workers_t **self_p);
/* Jobs waiting now. */
long lf_workers_queued(lf_workers_t *self);

#endif
