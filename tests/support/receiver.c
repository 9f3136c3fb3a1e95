/* receiver.c - see receiver.h. One thread, one connection at a time: a sender that
 * wants to overlap two requests would queue in the backlog, which is fine for what
 * the tests check (bodies, signatures, counts, timing of retries). */
#include "receiver.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S_MAX_REQ 4096
#define S_SCRIPT 64

typedef struct {
    char *target, *headers, *body;
    int64_t at;
    int answered;
} s_req_t;

struct lf_rcv {
    int smtp;
    int port;
    int lfd; /* listening socket, -1 while down */
    int stop;
    pthread_t thread;
    pthread_mutex_t lock;
    s_req_t reqs[S_MAX_REQ];
    int nreq;
    lf_rcv_answer_t script[S_SCRIPT];
    int nscript, next;
    lf_rcv_answer_t def;
};

static int64_t s_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_sleep(lf_rcv_t *r, int ms) {
    for (int i = 0; i < ms && !__atomic_load_n(&r->stop, __ATOMIC_SEQ_CST); i += 20)
        usleep(20000);
}

static int s_listen(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 128) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads until the buffer holds needle (or the peer closes); returns bytes held. */
static ssize_t s_read_until(lf_rcv_t *r, int fd, char **buf, size_t *cap, size_t have,
                            const char *needle) {
    for (;;) {
        if (have && memmem(*buf, have, needle, strlen(needle)))
            return (ssize_t)have;
        if (have + 4096 > *cap) {
            *cap = (*cap + 4096) * 2;
            *buf = realloc(*buf, *cap);
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, 200);
        if (__atomic_load_n(&r->stop, __ATOMIC_SEQ_CST))
            return -1;
        if (pr <= 0)
            continue;
        ssize_t n = recv(fd, *buf + have, *cap - have - 1, 0);
        if (n <= 0)
            return have ? (ssize_t)have : -1;
        have += (size_t)n;
        (*buf)[have] = '\0';
    }
}

/* The answer the next request gets: the script's next, then the default. take = 0
 * only looks at it (a connection that brings no request takes none). */
static lf_rcv_answer_t s_answer(lf_rcv_t *r, int take) {
    pthread_mutex_lock(&r->lock);
    lf_rcv_answer_t a = r->next < r->nscript ? r->script[r->next] : r->def;
    if (take && r->next < r->nscript)
        r->next++;
    pthread_mutex_unlock(&r->lock);
    return a;
}

static int s_record(lf_rcv_t *r, char *target, char *headers, char *body) {
    pthread_mutex_lock(&r->lock);
    int i = r->nreq < S_MAX_REQ ? r->nreq++ : -1;
    if (i >= 0)
        r->reqs[i] = (s_req_t){target, headers, body, s_mono(), 0};
    pthread_mutex_unlock(&r->lock);
    if (i < 0) {
        free(target);
        free(headers);
        free(body);
    }
    return i;
}

static void s_send(int fd, const char *s) {
    ssize_t w = send(fd, s, strlen(s), MSG_NOSIGNAL);
    (void)w;
}

static void s_http(lf_rcv_t *r, int fd) {
    size_t cap = 0;
    char *buf = NULL;
    int read_delay = s_answer(r, 0).read_delay_ms;
    if (read_delay)
        s_sleep(r, read_delay);
    ssize_t have = s_read_until(r, fd, &buf, &cap, 0, "\r\n\r\n");
    if (have < 0) {
        free(buf);
        return;
    }
    char *hend = memmem(buf, (size_t)have, "\r\n\r\n", 4);
    if (!hend) {
        free(buf);
        return;
    }
    size_t hlen = (size_t)(hend - buf) + 4;
    long clen = 0;
    for (char *p = buf; p < hend; p = strstr(p, "\r\n") + 2)
        if (!strncasecmp(p, "Content-Length:", 15))
            clen = atol(p + 15);
    while ((size_t)have < hlen + (size_t)clen) {
        if (have + 4096 > (ssize_t)cap) {
            cap = (cap + (size_t)clen + 4096) * 2;
            buf = realloc(buf, cap);
            hend = buf + hlen - 4;
        }
        ssize_t n = recv(fd, buf + have, cap - (size_t)have - 1, 0);
        if (n <= 0)
            break;
        have += n;
    }
    buf[have] = '\0';
    char *line_end = strstr(buf, "\r\n");
    char *sp1 = memchr(buf, ' ', (size_t)(line_end - buf));
    char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1)) : NULL;
    char *target = sp2 ? strndup(sp1 + 1, (size_t)(sp2 - sp1 - 1)) : strdup("");
    char *headers = strndup(line_end + 2, hlen - (size_t)(line_end + 2 - buf));
    char *body = strndup(buf + hlen, (size_t)clen);
    free(buf);
    int i = s_record(r, target, headers, body);
    lf_rcv_answer_t a = s_answer(r, 1);
    if (a.hang) {
        while (!__atomic_load_n(&r->stop, __ATOMIC_SEQ_CST)) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (poll(&p, 1, 100) > 0) {
                char tmp[64];
                if (recv(fd, tmp, sizeof tmp, 0) <= 0)
                    break; /* the client gave up */
            }
        }
        return;
    }
    if (a.delay_ms)
        s_sleep(r, a.delay_ms);
    char resp[8192], ra[64] = "";
    if (a.retry_after)
        snprintf(ra, sizeof ra, "Retry-After: %d\r\n", a.retry_after);
    const char *b = a.body ? a.body : "";
    snprintf(resp, sizeof resp,
             "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n%sContent-Length: "
             "%zu\r\nConnection: close\r\n\r\n%s",
             a.status ? a.status : 200, ra, strlen(b), b);
    s_send(fd, resp);
    if (i >= 0) {
        pthread_mutex_lock(&r->lock);
        r->reqs[i].answered = a.status ? a.status : 200;
        pthread_mutex_unlock(&r->lock);
    }
}

/* The server side of an SMTP session, enough for libcurl: EHLO, MAIL, RCPT, DATA,
 * QUIT. RCPT is answered with the scripted code (250 by default). */
static void s_smtp(lf_rcv_t *r, int fd) {
    size_t cap = 0;
    char *buf = NULL, from[1100] = "", rcpt[1100] = "";
    s_send(fd, "220 leadflow-test ESMTP\r\n");
    size_t have = 0;
    int code = 0;
    for (;;) {
        ssize_t n = s_read_until(r, fd, &buf, &cap, have, "\r\n");
        if (n < 0)
            break;
        have = (size_t)n;
        char *eol = memmem(buf, have, "\r\n", 2);
        size_t ll = (size_t)(eol - buf);
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)(ll < 1000 ? ll : 1000), buf);
        memmove(buf, eol + 2, have - ll - 2);
        have -= ll + 2;
        if (!strncasecmp(line, "EHLO", 4) || !strncasecmp(line, "HELO", 4)) {
            s_send(fd, "250-leadflow-test\r\n250 8BITMIME\r\n");
        } else if (!strncasecmp(line, "MAIL FROM:", 10)) {
            snprintf(from, sizeof from, "%s", line + 10);
            s_send(fd, "250 OK\r\n");
        } else if (!strncasecmp(line, "RCPT TO:", 8)) {
            snprintf(rcpt, sizeof rcpt, "%s", line + 8);
            lf_rcv_answer_t a = s_answer(r, 1);
            code = a.status ? a.status : 250;
            char resp[64];
            snprintf(resp, sizeof resp, "%d %s\r\n", code, code < 300 ? "OK" : "no");
            s_send(fd, resp);
        } else if (!strncasecmp(line, "DATA", 4)) {
            s_send(fd, "354 go ahead\r\n");
            ssize_t m = s_read_until(r, fd, &buf, &cap, have, "\r\n.\r\n");
            if (m < 0)
                break;
            char *end = memmem(buf, (size_t)m, "\r\n.\r\n", 5);
            char *target = NULL;
            if (asprintf(&target, "%s %s", from, rcpt) < 0)
                abort();
            int i = s_record(r, target, strdup(""), strndup(buf, (size_t)(end - buf)));
            size_t used = (size_t)(end - buf) + 5;
            memmove(buf, buf + used, (size_t)m - used);
            have = (size_t)m - used;
            s_send(fd, "250 queued\r\n");
            if (i >= 0) {
                pthread_mutex_lock(&r->lock);
                r->reqs[i].answered = 250;
                pthread_mutex_unlock(&r->lock);
            }
        } else if (!strncasecmp(line, "QUIT", 4)) {
            s_send(fd, "221 bye\r\n");
            break;
        } else if (!strncasecmp(line, "RSET", 4) || !strncasecmp(line, "NOOP", 4)) {
            s_send(fd, "250 OK\r\n");
        } else {
            s_send(fd, "502 not here\r\n");
        }
    }
    free(buf);
}

static void *s_main(void *arg) {
    lf_rcv_t *r = arg;
    while (!__atomic_load_n(&r->stop, __ATOMIC_SEQ_CST)) {
        int lfd = __atomic_load_n(&r->lfd, __ATOMIC_SEQ_CST);
        if (lfd < 0) {
            usleep(20000);
            continue;
        }
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            continue;
        if (r->smtp)
            s_smtp(r, fd);
        else
            s_http(r, fd);
        close(fd);
    }
    return NULL;
}

lf_rcv_t *lf_rcv_start(int smtp) {
    lf_rcv_t *r = calloc(1, sizeof *r);
    r->smtp = smtp;
    r->def = (lf_rcv_answer_t){.status = smtp ? 250 : 200};
    pthread_mutex_init(&r->lock, NULL);
    r->lfd = s_listen(0);
    cr_assert(r->lfd >= 0, "receiver cannot listen: %s", strerror(errno));
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    getsockname(r->lfd, (struct sockaddr *)&a, &len);
    r->port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&r->thread, NULL, s_main, r), 0);
    return r;
}

void lf_rcv_stop(lf_rcv_t **self_p) {
    lf_rcv_t *r = *self_p;
    if (!r)
        return;
    __atomic_store_n(&r->stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(r->thread, NULL);
    if (r->lfd >= 0)
        close(r->lfd);
    for (int i = 0; i < r->nreq; i++) {
        free(r->reqs[i].target);
        free(r->reqs[i].headers);
        free(r->reqs[i].body);
    }
    pthread_mutex_destroy(&r->lock);
    free(r);
    *self_p = NULL;
}

int lf_rcv_port(const lf_rcv_t *self) {
    return self->port;
}

void lf_rcv_script(lf_rcv_t *self, const lf_rcv_answer_t *answers, int n) {
    pthread_mutex_lock(&self->lock);
    for (int i = 0; i < n && i < S_SCRIPT; i++)
        self->script[i] = answers[i];
    self->nscript = n < S_SCRIPT ? n : S_SCRIPT;
    self->next = 0;
    pthread_mutex_unlock(&self->lock);
}

void lf_rcv_default(lf_rcv_t *self, lf_rcv_answer_t answer) {
    pthread_mutex_lock(&self->lock);
    self->def = answer;
    pthread_mutex_unlock(&self->lock);
}

void lf_rcv_down(lf_rcv_t *self, int down) {
    if (down) {
        int fd = __atomic_exchange_n(&self->lfd, -1, __ATOMIC_SEQ_CST);
        usleep(150000); /* the thread leaves its poll on the old socket */
        if (fd >= 0)
            close(fd);
    } else {
        int fd = -1;
        for (int i = 0; i < 50 && fd < 0; i++) {
            fd = s_listen(self->port);
            if (fd < 0)
                usleep(100000);
        }
        cr_assert(fd >= 0, "receiver cannot listen again on %d", self->port);
        __atomic_store_n(&self->lfd, fd, __ATOMIC_SEQ_CST);
    }
}

int lf_rcv_count(lf_rcv_t *self) {
    pthread_mutex_lock(&self->lock);
    int n = self->nreq;
    pthread_mutex_unlock(&self->lock);
    return n;
}

int lf_rcv_wait(lf_rcv_t *self, int n, int timeout_ms) {
    int64_t end = s_mono() + timeout_ms;
    int c;
    while ((c = lf_rcv_count(self)) < n && s_mono() < end)
        usleep(20000);
    return c;
}

static char *s_field(lf_rcv_t *self, int i, int which) {
    char *out = NULL;
    pthread_mutex_lock(&self->lock);
    if (i >= 0 && i < self->nreq) {
        const char *s = which == 0   ? self->reqs[i].body
                        : which == 1 ? self->reqs[i].target
                                     : self->reqs[i].headers;
        out = strdup(s ? s : "");
    }
    pthread_mutex_unlock(&self->lock);
    return out;
}

char *lf_rcv_body(lf_rcv_t *self, int i) {
    return s_field(self, i, 0);
}

char *lf_rcv_target(lf_rcv_t *self, int i) {
    return s_field(self, i, 1);
}

char *lf_rcv_header(lf_rcv_t *self, int i, const char *name) {
    char *h = s_field(self, i, 2), *out = NULL;
    size_t nl = strlen(name);
    for (char *p = h; p && *p; p = strstr(p, "\r\n") ? strstr(p, "\r\n") + 2 : NULL) {
        if (!strncasecmp(p, name, nl) && p[nl] == ':') {
            char *v = p + nl + 1;
            v += strspn(v, " ");
            out = strndup(v, strcspn(v, "\r\n"));
            break;
        }
    }
    free(h);
    return out;
}

int64_t lf_rcv_at(lf_rcv_t *self, int i) {
    pthread_mutex_lock(&self->lock);
    int64_t t = i >= 0 && i < self->nreq ? self->reqs[i].at : 0;
    pthread_mutex_unlock(&self->lock);
    return t;
}

int lf_rcv_answered(lf_rcv_t *self, int i) {
    pthread_mutex_lock(&self->lock);
    int a = i >= 0 && i < self->nreq ? self->reqs[i].answered : 0;
    pthread_mutex_unlock(&self->lock);
    return a;
}
