/* loadgen.c - open-loop, constant-rate HTTP/1.1 load generator for POST /v1/leads.
 *
 * Request i is *scheduled* at t0 + i / rate, whatever happened to earlier ones. It
 * is sent on the first idle keep-alive connection at or after that instant, and its
 * latency is measured from the scheduled instant to the end of the response: a
 * stalled server makes the requests queue here and their waiting is counted (no
 * coordinated omission, as in wrk2). Every lead carries a unique phone number (one of
 * 997 companies, each with its own e-mail domain, so repeat customers exist) and
 * "extra": {"sent_us": <scheduled send time, CLOCK_REALTIME microseconds>} so that
 * end-to-end latency can be computed later in SQL from what PostgreSQL stored.
 *
 * One thread, epoll, a timerfd ticking at the request interval (at least 100 µs),
 * one request in flight per connection. No dependencies beyond libc.
 *
 *   loadgen [--url http://127.0.0.1:8080 | --port 8080] [--rate 5000] [--duration 20]
 *           [--connections 32] [--key bench-key] [--phone-base N] [--drain 10]
 *
 * Prints one line per figure (achieved rate, status counts, latency percentiles). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define RBUF 16384
#define WBUF 2048

typedef struct {
    int fd;
    int busy;         /* a request is in flight */
    int connecting;   /* non-blocking connect not finished yet */
    int64_t sched_ns; /* scheduled instant of the request in flight */
    char wbuf[WBUF];
    size_t wlen, woff; /* request bytes and how many were written */
    char rbuf[RBUF];
    size_t rlen; /* bytes of response read so far */
} conn_t;

static struct {
    struct sockaddr_in addr;
    char host[128];
    const char *key;
    double rate;
    double duration;
    double drain;
    int nconn;
    uint64_t phone_base;
    int verbose;
} g = {.key = "bench-key", .rate = 5000, .duration = 20, .drain = 10, .nconn = 32};

static int64_t s_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t s_real_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void s_usage(void) {
    fprintf(stderr, "usage: loadgen [--url http://HOST:PORT | --port PORT] [--rate R] "
                    "[--duration S] [--connections N] [--key KEY] [--phone-base N] "
                    "[--drain S] [-v]\n");
    exit(2);
}

static void s_parse_url(const char *url) {
    const char *p = url;
    if (strncmp(p, "http://", 7) == 0)
        p += 7;
    char host[64] = "127.0.0.1";
    int port = 80;
    const char *colon = strchr(p, ':');
    const char *slash = strchr(p, '/');
    size_t hl = colon ? (size_t)(colon - p) : slash ? (size_t)(slash - p) : strlen(p);
    if (hl == 0 || hl >= sizeof host)
        s_usage();
    memcpy(host, p, hl);
    host[hl] = 0;
    if (colon)
        port = atoi(colon + 1);
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    g.addr.sin_family = AF_INET;
    g.addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &g.addr.sin_addr) != 1) {
        fprintf(stderr, "loadgen: host must be an IPv4 address: %s\n", host);
        exit(2);
    }
    snprintf(g.host, sizeof g.host, "%s:%d", host, port);
}

static int s_connect(conn_t *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->busy = 0;
    c->rlen = 0;
    c->connecting = 1;
    if (connect(c->fd, (struct sockaddr *)&g.addr, sizeof g.addr) < 0 &&
        errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

/* Builds request `seq` scheduled at real time `sent_us` into c->wbuf. */
static void s_build(conn_t *c, uint64_t seq, int64_t sent_us) {
    char body[1024];
    unsigned long long phone = 13900000000ULL + (g.phone_base + seq) % 100000000ULL;
    unsigned co = (unsigned)(seq % 997); /* 997 companies: some repeat customers;
                                          * every e-mail unique (a repeat would merge) */
    int bl = snprintf(body, sizeof body,
                      "{\"name\":\"王芳\",\"company\":\"上海华东医疗器械%03u有限公司\","
                      "\"phone\":\"%llu\",\"email\":\"wang.fang.%llu@hd%03u.example.cn\","
                      "\"budget\":\"50万\",\"urgency\":\"高\",\"industry\":\"medical\","
                      "\"region\":\"east\",\"decision_maker\":\"是\","
                      "\"need\":\"采购一批医用监护设备，希望下周安排演示\","
                      "\"source\":\"官网表单\",\"extra\":{\"sent_us\":%" PRId64 "}}",
                      co, phone, phone, co, sent_us);
    int n = snprintf(c->wbuf, sizeof c->wbuf,
                     "POST /v1/leads HTTP/1.1\r\nHost: %s\r\n"
                     "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     g.host, g.key, bl, body);
    c->wlen = (size_t)n;
    c->woff = 0;
}

/* Returns the length of a complete response at the start of buf (with its status
 * in *status), 0 when more bytes are needed, -1 when it cannot be parsed. */
static long s_response(const char *buf, size_t len, int *status) {
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return len >= RBUF ? -1 : 0;
    size_t hlen = (size_t)(end - buf) + 4;
    if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0)
        return -1;
    *status = atoi(buf + 9);
    long clen = -1;
    int chunked = 0;
    for (const char *p = buf; p < end;) {
        const char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
        if (!eol)
            break;
        if (strncasecmp(p, "Content-Length:", 15) == 0)
            clen = atol(p + 15);
        else if (strncasecmp(p, "Transfer-Encoding:", 18) == 0 &&
                 memmem(p, (size_t)(eol - p), "chunked", 7))
            chunked = 1;
        p = eol + 2;
    }
    if (chunked) {
        const char *t = memmem(buf + hlen, len - hlen, "0\r\n\r\n", 5);
        return t ? (long)(t + 5 - buf) : (len >= RBUF ? -1 : 0);
    }
    if (clen < 0)
        clen = 0;
    if (hlen + (size_t)clen > RBUF)
        return -1;
    return len >= hlen + (size_t)clen ? (long)(hlen + (size_t)clen) : 0;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *url = "http://127.0.0.1:8080";
    char urlbuf[64];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-v") == 0) {
            g.verbose = 1;
            continue;
        }
        if (!v)
            s_usage();
        if (strcmp(a, "--url") == 0)
            url = v;
        else if (strcmp(a, "--port") == 0) {
            snprintf(urlbuf, sizeof urlbuf, "http://127.0.0.1:%d", atoi(v));
            url = urlbuf;
        } else if (strcmp(a, "--rate") == 0)
            g.rate = atof(v);
        else if (strcmp(a, "--duration") == 0)
            g.duration = atof(v);
        else if (strcmp(a, "--connections") == 0)
            g.nconn = atoi(v);
        else if (strcmp(a, "--key") == 0)
            g.key = v;
        else if (strcmp(a, "--phone-base") == 0)
            g.phone_base = strtoull(v, NULL, 10);
        else if (strcmp(a, "--drain") == 0)
            g.drain = atof(v);
        else
            s_usage();
        i++;
    }
    if (g.rate <= 0 || g.duration <= 0 || g.nconn <= 0 || g.nconn > 4096)
        s_usage();
    s_parse_url(url);
    if (!g.phone_base)
        g.phone_base = (uint64_t)s_real_us() % 100000000ULL;

    uint64_t total = (uint64_t)(g.rate * g.duration);
    uint32_t *lat = calloc(total ? total : 1, sizeof *lat); /* microseconds */
    conn_t *conns = calloc((size_t)g.nconn, sizeof *conns);
    int *idle = calloc((size_t)g.nconn, sizeof *idle); /* stack of idle connections */
    if (!lat || !conns || !idle) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 1;
    }
    int nidle = 0;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < g.nconn; i++) {
        if (s_connect(&conns[i]) < 0) {
            fprintf(stderr, "loadgen: cannot connect to %s: %s\n", g.host,
                    strerror(errno));
            return 1;
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET,
                                 .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
    }
    /* wait (at most 5 s) until every connection is established */
    int64_t deadline = s_mono_ns() + 5000000000LL;
    int open = 0;
    while (open < g.nconn && s_mono_ns() < deadline) {
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 100);
        for (int k = 0; k < n; k++) {
            conn_t *c = &conns[evs[k].data.u32];
            if (!c->connecting)
                continue;
            int err = 0;
            socklen_t el = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
            if (err || (evs[k].events & (EPOLLERR | EPOLLHUP))) {
                fprintf(stderr, "loadgen: cannot connect to %s: %s\n", g.host,
                        strerror(err ? err : ECONNREFUSED));
                return 1;
            }
            c->connecting = 0;
            idle[nidle++] = (int)evs[k].data.u32;
            open++;
        }
    }
    if (open < g.nconn) {
        fprintf(stderr, "loadgen: only %d of %d connections opened\n", open, g.nconn);
        return 1;
    }

    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    int64_t interval = (int64_t)(1e9 / g.rate);
    if (interval < 100000)
        interval = 100000;
    struct itimerspec its = {
        .it_interval = {interval / 1000000000, interval % 1000000000},
        .it_value = {0, 1}};
    timerfd_settime(tfd, 0, &its, NULL);
    struct epoll_event tev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);

    const int64_t t0 = s_mono_ns();
    const int64_t t0_real_us = s_real_us();
    const double ns_per_req = 1e9 / g.rate;
    const int64_t end_sched = t0 + (int64_t)(g.duration * 1e9);
    const int64_t end_all = end_sched + (int64_t)(g.drain * 1e9);
    uint64_t next = 0, done = 0, inflight = 0, errors = 0, reconnects = 0;
    uint64_t status[6] = {0}; /* 1xx..5xx by first digit, [0] other */
    int64_t last_done = t0;

    for (;;) {
        int64_t now = s_mono_ns();
        /* send every request that is due, on idle connections */
        while (next < total && nidle > 0) {
            int64_t sched = t0 + (int64_t)((double)next * ns_per_req);
            if (sched > now)
                break;
            conn_t *c = &conns[idle[--nidle]];
            c->busy = 1;
            c->sched_ns = sched;
            c->rlen = 0;
            s_build(c, next, t0_real_us + (sched - t0) / 1000);
            next++;
            inflight++;
            ssize_t w = write(c->fd, c->wbuf, c->wlen);
            if (w > 0)
                c->woff = (size_t)w;
            else if (w < 0 && errno != EAGAIN)
                c->woff = c->wlen; /* EPOLLERR/EPOLLHUP follows and counts the error */
        }
        if (done + errors >= total || now >= end_all)
            break;
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 100);
        for (int k = 0; k < n; k++) {
            if (evs[k].data.u32 == UINT32_MAX) {
                uint64_t ticks;
                if (read(tfd, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
                    perror("loadgen: timerfd");
                continue;
            }
            int ci = (int)evs[k].data.u32;
            conn_t *c = &conns[ci];
            if (c->connecting) { /* a reconnect finishing */
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err || (evs[k].events & (EPOLLERR | EPOLLHUP))) {
                    fprintf(stderr, "loadgen: reconnect failed: %s\n", strerror(err));
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    c->fd = -1;
                } else if (evs[k].events & EPOLLOUT) {
                    c->connecting = 0;
                    idle[nidle++] = ci;
                }
                continue;
            }
            if (c->busy && c->woff < c->wlen && (evs[k].events & EPOLLOUT)) {
                ssize_t w = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
                if (w > 0)
                    c->woff += (size_t)w;
            }
            int closed = (evs[k].events & (EPOLLERR | EPOLLHUP)) != 0;
            for (;;) {
                ssize_t r = read(c->fd, c->rbuf + c->rlen, RBUF - c->rlen);
                if (r > 0) {
                    c->rlen += (size_t)r;
                    if (c->rlen < RBUF)
                        continue;
                } else if (r == 0 || (errno != EAGAIN && errno != EINTR))
                    closed = 1;
                break;
            }
            int st = 0;
            long used = c->busy ? s_response(c->rbuf, c->rlen, &st) : 0;
            if (used > 0) {
                int64_t t = s_mono_ns();
                uint64_t us = (uint64_t)((t - c->sched_ns) / 1000);
                lat[done++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
                status[st >= 100 && st < 600 ? st / 100 : 0]++;
                inflight--;
                last_done = t;
                c->busy = 0;
                c->rlen = 0;
                if (!closed)
                    idle[nidle++] = ci;
            } else if (used < 0) {
                closed = 1;
            }
            if (closed) {
                if (c->busy) {
                    errors++;
                    inflight--;
                    c->busy = 0;
                }
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                reconnects++;
                /* the connection becomes idle again when the connect completes */
                if (s_connect(c) == 0) {
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET,
                                             .data.u32 = (uint32_t)ci};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
                } else {
                    fprintf(stderr, "loadgen: reconnect failed: %s\n", strerror(errno));
                }
            }
        }
    }
    double elapsed = (double)(last_done - t0) / 1e9;
    double offered = (double)(end_sched - t0) / 1e9;
    uint64_t unsent = total - next;

    qsort(lat, done, sizeof *lat, cmp_u32);
    double pct[] = {50, 90, 99, 99.9};
    const char *names[] = {"p50", "p90", "p99", "p99_9"};
    printf("loadgen.offered_rate %.0f (duration %.1f s, %d connections, %" PRIu64
           " scheduled)\n",
           g.rate, offered, g.nconn, total);
    printf("loadgen.achieved_rate %.0f (%" PRIu64 " responses in %.2f s)\n",
           elapsed > 0 ? (double)done / elapsed : 0.0, done, elapsed);
    printf("loadgen.status 2xx=%" PRIu64 " 3xx=%" PRIu64 " 4xx=%" PRIu64 " 5xx=%" PRIu64
           " other=%" PRIu64 " errors=%" PRIu64 " unsent=%" PRIu64 " unanswered=%" PRIu64
           " reconnects=%" PRIu64 "\n",
           status[2], status[3], status[4], status[5], status[0] + status[1], errors,
           unsent, inflight, reconnects);
    for (int i = 0; i < 4; i++) {
        double ms = 0;
        if (done) {
            size_t idx = (size_t)(pct[i] / 100.0 * (double)done);
            if (idx >= done)
                idx = done - 1;
            ms = lat[idx] / 1000.0;
        }
        printf("loadgen.ack_%s_ms %.3f\n", names[i], ms);
    }
    printf("loadgen.ack_max_ms %.3f\n", done ? lat[done - 1] / 1000.0 : 0.0);
    for (int i = 0; i < g.nconn; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    close(tfd);
    close(ep);
    free(lat);
    free(conns);
    free(idle);
    return unsent || inflight || errors ? 3 : 0;
}
