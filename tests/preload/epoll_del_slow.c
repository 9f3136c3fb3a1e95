/* epoll_del_slow.c - an LD_PRELOAD shim for one test (test_intake,
 * stops_cleanly_while_connections_keep_coming): every EPOLL_CTL_DEL the process's main
 * thread makes waits 50 ms before it is done. That widens the window in which another
 * thread may take the same descriptor out of the same set first, so a race on that
 * removal shows in every run instead of once in hundreds. Built without sanitizers
 * (Makefile); the service it is loaded into runs with verify_asan_link_order=0. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef int (*s_epoll_ctl_fn)(int, int, int, struct epoll_event *);

static s_epoll_ctl_fn s_real;

__attribute__((constructor)) static void s_init(void) {
    s_real = (s_epoll_ctl_fn)dlsym(RTLD_NEXT, "epoll_ctl");
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event) {
    if (op == EPOLL_CTL_DEL && syscall(SYS_gettid) == getpid()) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return s_real(epfd, op, fd, event);
}
