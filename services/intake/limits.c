/* limits.c - per-address connection caps and request rates (see limits.h).
 *
 * One table of addresses, chained in 4096 buckets under one mutex: the work per
 * request is a hash and a short walk, far below the cost of the request. Entries that
 * hold no connection and whose bucket is full again are dropped by a sweep once the
 * table passes 50,000 addresses, so a scan from many addresses cannot grow it for
 * ever. */
#include "limits.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/util.h"

#define S_BUCKETS 4096
#define S_SWEEP_AT 50000

typedef struct s_addr {
    struct s_addr *next;
    char key[48];    /* the address as text */
    int conns;       /* connections open now */
    double tokens;   /* requests left in the bucket */
    int64_t last_ms; /* when tokens was last topped up, -1 never */
} s_addr_t;

typedef struct {
    int family;            /* AF_INET or AF_INET6 */
    unsigned char net[16]; /* network address */
    int bits;              /* prefix length */
} s_cidr_t;

struct lf_limits {
    pthread_mutex_t lock;         /* guards the table */
    s_addr_t *buckets[S_BUCKETS]; /* chained entries (owned) */
    int n;                        /* entries in the table */
    int max_conns, per_minute;    /* the limits, 0 none */
    s_cidr_t *trusted;            /* trusted proxies (owned) */
    int ntrusted;
};

static int s_parse_cidr(const char *text, s_cidr_t *c) {
    char buf[64];
    lf_strlcpy(buf, text, sizeof buf);
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    memset(c, 0, sizeof *c);
    if (inet_pton(AF_INET, buf, c->net) == 1) {
        c->family = AF_INET;
        c->bits = 32;
    } else if (inet_pton(AF_INET6, buf, c->net) == 1) {
        c->family = AF_INET6;
        c->bits = 128;
    } else {
        return -1;
    }
    if (slash) {
        char *end;
        long b = strtol(slash + 1, &end, 10);
        if (*end || end == slash + 1 || b < 0 || b > c->bits)
            return -1;
        c->bits = (int)b;
    }
    return 0;
}

/* The raw address bytes of a sockaddr (IPv4-mapped IPv6 taken as IPv4). */
static int s_bytes(const struct sockaddr *sa, unsigned char out[16], int *family) {
    if (!sa)
        return -1;
    if (sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        *family = AF_INET;
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const unsigned char *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0,    0,
                                                 0, 0, 0, 0, 0xff, 0xff};
        if (!memcmp(b, mapped, 12)) {
            memcpy(out, b + 12, 4);
            *family = AF_INET;
        } else {
            memcpy(out, b, 16);
            *family = AF_INET6;
        }
        return 0;
    }
    return -1;
}

static int s_in_cidr(const s_cidr_t *c, int family, const unsigned char *b) {
    if (c->family != family)
        return 0;
    int full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->net, b, (size_t)full))
        return 0;
    if (!rest)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (c->net[full] & mask) == (b[full] & mask);
}

static int s_trusted(const lf_limits_t *self, int family, const unsigned char *b) {
    for (int i = 0; i < self->ntrusted; i++)
        if (s_in_cidr(&self->trusted[i], family, b))
            return 1;
    return 0;
}

static int s_trusted_text(const lf_limits_t *self, const char *text) {
    s_cidr_t c;
    if (s_parse_cidr(text, &c) < 0 || strchr(text, '/'))
        return 0;
    return s_trusted(self, c.family, c.net);
}

static void s_text(int family, const unsigned char *b, char *out, size_t outsz) {
    char buf[INET6_ADDRSTRLEN];
    if (!inet_ntop(family, b, buf, sizeof buf))
        lf_strlcpy(buf, "?", sizeof buf);
    lf_strlcpy(out, buf, outsz);
}

lf_limits_t *lf_limits_new(int max_conns, int per_minute, const char *trusted, char *err,
                           size_t errsz) {
    lf_limits_t *self = lf_calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    self->max_conns = max_conns;
    self->per_minute = per_minute;
    if (trusted && *trusted) {
        char *copy = lf_strdup(trusted), *save = NULL;
        for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
            self->trusted = lf_realloc(self->trusted, (size_t)(self->ntrusted + 1) *
                                                          sizeof *self->trusted);
            if (s_parse_cidr(t, &self->trusted[self->ntrusted]) < 0) {
                snprintf(
                    err, errsz,
                    "LEADFLOW_TRUSTED_PROXIES: '%.64s' is not an address or CIDR block",
                    t);
                free(copy);
                lf_limits_destroy(&self);
                return NULL;
            }
            self->ntrusted++;
        }
        free(copy);
    }
    return self;
}

void lf_limits_destroy(lf_limits_t **self_p) {
    if (!self_p || !*self_p)
        return;
    lf_limits_t *self = *self_p;
    for (int i = 0; i < S_BUCKETS; i++)
        for (s_addr_t *a = self->buckets[i], *next; a; a = next) {
            next = a->next;
            free(a);
        }
    free(self->trusted);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

static unsigned s_hash(const char *s) {
    unsigned h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % S_BUCKETS;
}

/* Drops entries that hold nothing: no connection and a full bucket. Lock held. */
static void s_sweep(lf_limits_t *self, int64_t now_ms) {
    for (int i = 0; i < S_BUCKETS; i++) {
        s_addr_t **pp = &self->buckets[i];
        while (*pp) {
            s_addr_t *a = *pp;
            int full = self->per_minute <= 0 || a->last_ms < 0 ||
                       (now_ms - a->last_ms) * (self->per_minute / 60000.0) + a->tokens >=
                           self->per_minute;
            if (a->conns <= 0 && full) {
                *pp = a->next;
                free(a);
                self->n--;
            } else {
                pp = &a->next;
            }
        }
    }
}

/* The entry of key, created when missing. Lock held. */
static s_addr_t *s_get(lf_limits_t *self, const char *key) {
    unsigned h = s_hash(key);
    for (s_addr_t *a = self->buckets[h]; a; a = a->next)
        if (!strcmp(a->key, key))
            return a;
    if (self->n >= S_SWEEP_AT)
        s_sweep(self, lf_mono_ms());
    s_addr_t *a = lf_calloc(1, sizeof *a);
    lf_strlcpy(a->key, key, sizeof a->key);
    a->tokens = self->per_minute;
    a->last_ms = -1;
    a->next = self->buckets[h];
    self->buckets[h] = a;
    self->n++;
    return a;
}

int lf_limits_accept(lf_limits_t *self, const struct sockaddr *addr) {
    unsigned char b[16];
    int family;
    if (self->max_conns <= 0 || s_bytes(addr, b, &family) < 0 ||
        s_trusted(self, family, b))
        return 1;
    char key[48];
    s_text(family, b, key, sizeof key);
    pthread_mutex_lock(&self->lock);
    int ok = s_get(self, key)->conns < self->max_conns;
    pthread_mutex_unlock(&self->lock);
    return ok;
}

void lf_limits_count(lf_limits_t *self, const struct sockaddr *addr, int delta) {
    unsigned char b[16];
    int family;
    if (self->max_conns <= 0 || s_bytes(addr, b, &family) < 0 ||
        s_trusted(self, family, b))
        return;
    char key[48];
    s_text(family, b, key, sizeof key);
    pthread_mutex_lock(&self->lock);
    s_addr_t *a = s_get(self, key);
    a->conns += delta;
    if (a->conns < 0)
        a->conns = 0;
    pthread_mutex_unlock(&self->lock);
}

void lf_limits_client(const lf_limits_t *self, const struct sockaddr *peer,
                      const char *xff, char *out, size_t outsz) {
    unsigned char b[16];
    int family;
    if (s_bytes(peer, b, &family) < 0) {
        lf_strlcpy(out, "?", outsz);
        return;
    }
    s_text(family, b, out, outsz);
    if (!xff || !s_trusted(self, family, b))
        return;
    /* From the right: the first hop that is not one of our proxies. */
    char copy[1024];
    lf_strlcpy(copy, xff, sizeof copy);
    char *end = copy + strlen(copy);
    while (end > copy) {
        char *start = end;
        while (start > copy && start[-1] != ',')
            start--;
        char hop[64];
        size_t n = (size_t)(end - start) < sizeof hop - 1 ? (size_t)(end - start)
                                                          : sizeof hop - 1;
        memcpy(hop, start, n);
        hop[n] = '\0';
        char *h = hop;
        while (*h == ' ')
            h++;
        for (char *z = h + strlen(h); z > h && z[-1] == ' ';)
            *--z = '\0';
        s_cidr_t c;
        if (!*h || s_parse_cidr(h, &c) < 0 || strchr(h, '/'))
            return; /* garbage: keep the proxy's own address */
        if (!s_trusted_text(self, h)) {
            s_text(c.family, c.net, out, outsz);
            return;
        }
        end = start > copy ? start - 1 : copy;
    }
}

int lf_limits_rate(lf_limits_t *self, const char *client, int64_t now_ms) {
    if (self->per_minute <= 0)
        return 0;
    int wait = 0;
    pthread_mutex_lock(&self->lock);
    s_addr_t *a = s_get(self, client);
    double per_ms = self->per_minute / 60000.0;
    if (a->last_ms >= 0)
        a->tokens += (double)(now_ms - a->last_ms) * per_ms;
    if (a->tokens > self->per_minute)
        a->tokens = self->per_minute;
    a->last_ms = now_ms;
    if (a->tokens >= 1.0)
        a->tokens -= 1.0;
    else
        wait = (int)((1.0 - a->tokens) / per_ms / 1000.0) + 1;
    pthread_mutex_unlock(&self->lock);
    return wait;
}
