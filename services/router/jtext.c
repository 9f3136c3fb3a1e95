/* jtext.c - see jtext.h. The buffer doubles as it grows; out of memory aborts. */
#include "jtext.h"

#include <stdlib.h>
#include <string.h>

#include "lf/util.h"

static void s_reserve(lf_jtext_t *t, size_t more) {
    if (t->len + more + 1 <= t->cap)
        return;
    size_t cap = t->cap ? t->cap : 1024;
    while (cap < t->len + more + 1)
        cap *= 2;
    char *b = realloc(t->buf, cap);
    if (!b)
        abort();
    t->buf = b;
    t->cap = cap;
}

static void s_put(lf_jtext_t *t, const char *s, size_t n) {
    s_reserve(t, n);
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

void lf_jtext_raw(lf_jtext_t *t, const char *s) {
    s_put(t, s, strlen(s));
}

void lf_jtext_str(lf_jtext_t *t, const char *s) {
    static const char hex[] = "0123456789abcdef";
    if (!s) {
        s_put(t, "null", 4);
        return;
    }
    s_put(t, "\"", 1);
    const char *run = s; /* the bytes since the last escape, copied in one go */
    for (const char *p = s;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        s_put(t, run, (size_t)(p - run));
        if (!c)
            break;
        char esc[6] = {'\\', (char)c};
        size_t n = 2;
        if (c < 0x20) {
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        s_put(t, esc, n);
        run = p + 1;
    }
    s_put(t, "\"", 1);
}

void lf_jtext_int(lf_jtext_t *t, long long v) {
    char num[24];
    s_put(t, num, lf_itoa(v, num));
}

const char *lf_jtext_get(lf_jtext_t *t) {
    return t->buf ? t->buf : "";
}

void lf_jtext_reset(lf_jtext_t *t) {
    t->len = 0;
    if (t->buf)
        t->buf[0] = '\0';
}

void lf_jtext_free(lf_jtext_t *t) {
    free(t->buf);
    memset(t, 0, sizeof *t);
}
