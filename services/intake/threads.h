/* threads.h - the fixed thread sets of intake's queues (the group committer, the
 * database workers): start n threads on one function, and join them. */
#ifndef LF_INTAKE_THREADS_H
#define LF_INTAKE_THREADS_H

#include <pthread.h>

/* Starts n threads running fn(arg) into threads[0..n-1] (caller's array). Returns how
 * many started: fewer than n when pthread_create failed (logged with `what`); the
 * caller then stops and joins those. */
int lf_threads_start(pthread_t *threads, int n, void *(*fn)(void *), void *arg,
                     const char *what);
/* Joins the *n threads started, then sets *n to 0 (so that a second call does nothing).
 */
void lf_threads_join(pthread_t *threads, int *n);

#endif
