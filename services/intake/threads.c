/* threads.c - see threads.h. */
#include "threads.h"

#include "lf/log.h"

int lf_threads_start(pthread_t *threads, int n, void *(*fn)(void *), void *arg,
                     const char *what) {
    for (int i = 0; i < n; i++)
        if (pthread_create(&threads[i], NULL, fn, arg) != 0) {
            lf_error("cannot start %s thread", what);
            return i;
        }
    return n;
}

void lf_threads_join(pthread_t *threads, int *n) {
    for (int i = 0; i < *n; i++)
        pthread_join(threads[i], NULL);
    *n = 0;
}
