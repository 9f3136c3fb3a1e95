/* util.c - allocation, clocks, identifiers.
 *
 * UUIDv7 is written by hand (it is 20 lines) because libuuid in Debian 12 predates
 * version 7, and a time-ordered key matters for the insert rate of the leads table. */
#include "lf/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static void s_oom(size_t n, const char *file, int line) {
    fprintf(stderr, "FATAL out of memory allocating %zu bytes at %s:%d\n", n, file, line);
    abort();
}

void *lf_malloc_at(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p)
        s_oom(n, file, line);
    return p;
}

void *lf_calloc_at(size_t count, size_t n, const char *file, int line) {
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (!p)
        s_oom(count * n, file, line);
    return p;
}

void *lf_realloc_at(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q)
        s_oom(n, file, line);
    return q;
}

char *lf_strdup_at(const char *s, const char *file, int line) {
    size_t n = strlen(s) + 1;
    char *p = lf_malloc_at(n, file, line);
    memcpy(p, s, n);
    return p;
}

int64_t lf_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t lf_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_random(unsigned char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            /* getrandom cannot fail on Linux >= 3.17 once the pool is seeded; if it
             * does, ids would collide, so stop rather than go on. */
            perror("getrandom");
            abort();
        }
        got += (size_t)r;
    }
}

/* Random bytes for ids, from a per-thread pool that one getrandom() call refills
 * (256 bytes: 25 UUIDv7 or 16 UUIDv4), instead of a system call per id: the same
 * kernel generator, one call per batch of ids (a call per lead id was 1.5% of intake's
 * CPU; a lead now takes two ids, its own and its event's). No process of leadflow forks
 * after it starts, so no two processes share a pool. */
#define S_POOL 256
static _Thread_local unsigned char s_pool[S_POOL];
static _Thread_local size_t s_pool_used = S_POOL;

static void s_random_pooled(unsigned char *buf, size_t n) {
    if (n > S_POOL) {
        s_random(buf, n);
        return;
    }
    if (S_POOL - s_pool_used < n) {
        s_random(s_pool, S_POOL);
        s_pool_used = 0;
    }
    memcpy(buf, s_pool + s_pool_used, n);
    s_pool_used += n;
}

static void s_uuid_text(const unsigned char b[16], char out[37]) {
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    *o = '\0';
}

void lf_uuid7(char out[37]) {
    unsigned char b[16];
    uint64_t ms = (uint64_t)lf_now_ms();
    s_random_pooled(b + 6, 10);
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | (b[6] & 0x0f));
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
    s_uuid_text(b, out);
}

void lf_uuid4(char out[37]) {
    unsigned char b[16];
    s_random_pooled(b, 16);
    b[6] = (unsigned char)(0x40 | (b[6] & 0x0f));
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
    s_uuid_text(b, out);
}

char *lf_uuid4_array(size_t n) {
    char *a = lf_malloc(n * 37 + 3), *o = a;
    *o++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *o++ = ',';
        lf_uuid4(o);
        o += 36;
    }
    *o++ = '}';
    *o = '\0';
    return a;
}

int lf_uuid_valid(const char *s) {
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return s[36] == '\0';
}

size_t lf_itoa(long long v, char *out) {
    char tmp[24];
    size_t n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t k = 0;
    if (v < 0)
        out[k++] = '-';
    while (n)
        out[k++] = tmp[--n];
    out[k] = '\0';
    return k;
}

int lf_rfc3339_shape(const char *s) {
    static const char *pat = "dddd-dd-ddTdd:dd:dd";
    size_t i;
    for (i = 0; pat[i]; i++) {
        char c = s[i];
        if (pat[i] == 'd' ? (c < '0' || c > '9')
                          : (pat[i] == 'T' ? (c != 'T' && c != 't') : c != pat[i]))
            return 0;
    }
    s += i;
    if (*s == '.') {
        s++;
        if (*s < '0' || *s > '9')
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if ((*s == 'Z' || *s == 'z') && s[1] == '\0')
        return 1;
    return (*s == '+' || *s == '-') && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' &&
           s[2] <= '9' && s[3] == ':' && s[4] >= '0' && s[4] <= '9' && s[5] >= '0' &&
           s[5] <= '9' && s[6] == '\0';
}

void lf_rfc3339(int64_t ms, char *out, size_t outsz) {
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outsz, "%s.%03dZ", base, (int)(ms % 1000));
}

size_t lf_strlcpy(char *dst, const char *src, size_t dstsz) {
    size_t n = strlen(src);
    if (dstsz) {
        size_t c = n < dstsz - 1 ? n : dstsz - 1;
        memcpy(dst, src, c);
        dst[c] = '\0';
    }
    return n;
}

char *lf_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = lf_malloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = lf_realloc(buf, cap);
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

int lf_path_join(char *out, size_t outsz, const char *dir, const char *name) {
    int n = snprintf(out, outsz, "%s/%s", dir, name);
    return (n < 0 || (size_t)n >= outsz) ? -1 : 0;
}
