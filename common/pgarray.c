/* pgarray.c - see pgarray.h. The buffer doubles as it grows, so a batch of n elements
 * costs O(n) copies; out of memory aborts (lf_realloc). */
#include "lf/pgarray.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/util.h"

static void s_reserve(lf_pgarray_t *a, size_t more) {
    if (a->len + more + 1 <= a->cap)
        return;
    size_t cap = a->cap ? a->cap : 64;
    while (cap < a->len + more + 1)
        cap *= 2;
    a->buf = lf_realloc(a->buf, cap);
    a->cap = cap;
}

void lf_pgarray_init(lf_pgarray_t *a) {
    memset(a, 0, sizeof *a);
    s_reserve(a, 1);
    a->buf[a->len++] = '{';
    a->buf[a->len] = '\0';
}

void lf_pgarray_add(lf_pgarray_t *a, const char *s) {
    size_t n = s ? strlen(s) : 0;
    s_reserve(a, 2 * n + 4); /* a comma, two quotes, every byte escaped at worst */
    if (a->n++)
        a->buf[a->len++] = ',';
    if (!s) {
        memcpy(a->buf + a->len, "NULL", 4);
        a->len += 4;
    } else {
        a->buf[a->len++] = '"';
        /* Runs without a quote or backslash are copied in one go. */
        for (size_t i = 0; i < n;) {
            size_t run = strcspn(s + i, "\"\\");
            memcpy(a->buf + a->len, s + i, run);
            a->len += run;
            i += run;
            if (i < n) {
                a->buf[a->len++] = '\\';
                a->buf[a->len++] = s[i++];
            }
        }
        a->buf[a->len++] = '"';
    }
    a->buf[a->len] = '\0';
}

void lf_pgarray_add_int(lf_pgarray_t *a, long long v) {
    /* Digits need no quotes: written unquoted, without snprintf (a third of the cost
     * of an element when a batch has ~50 candidate codes per lead). */
    char num[24];
    size_t n = lf_itoa(v, num);
    s_reserve(a, n + 1);
    if (a->n++)
        a->buf[a->len++] = ',';
    memcpy(a->buf + a->len, num, n);
    a->len += n;
    a->buf[a->len] = '\0';
}

const char *lf_pgarray_end(lf_pgarray_t *a) {
    s_reserve(a, 1);
    a->buf[a->len++] = '}';
    a->buf[a->len] = '\0';
    return a->buf;
}

void lf_pgarray_free(lf_pgarray_t *a) {
    free(a->buf);
    memset(a, 0, sizeof *a);
}
