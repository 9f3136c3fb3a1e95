/* batch_arrays.c - see batch_arrays.h. One growable buffer per column; a literal is
 * closed (its `}` and NUL written) only when the parameters are asked for, so adding a
 * lead is appending to 27 buffers. Written by hand: libpq has no array encoder, and the
 * text format needs only quoting. */
#include "batch_arrays.h"

#include <stdlib.h>
#include <string.h>

#include "lf/util.h"

/* How a column's JSON value becomes an array element. */
enum {
    S_TEXT,
    S_NUM,
    S_BOOL,
    S_JSON,
    S_NEW_ID /* not from the row: a new random UUID per lead (lf_uuid4) */
};

static const struct {
    const char *key; /* key in the row object */
    int kind;
} s_cols[LF_BATCH_COLUMNS] = {
    {"id", S_TEXT},         {"kind", S_TEXT},        {"channel", S_TEXT},
    {"source", S_TEXT},     {"name", S_TEXT},        {"company", S_TEXT},
    {"email", S_TEXT},      {"phone", S_TEXT},       {"need", S_TEXT},
    {"budget_min", S_NUM},  {"budget_max", S_NUM},   {"currency", S_TEXT},
    {"budget_raw", S_TEXT}, {"urgency", S_TEXT},     {"decision_maker", S_BOOL},
    {"region", S_TEXT},     {"industry", S_TEXT},    {"external_id", S_TEXT},
    {"extra", S_JSON},      {"raw", S_JSON},         {"idempotency_key", S_TEXT},
    {"call", S_JSON},       {"phone_type", S_TEXT},  {"phone_country", S_TEXT},
    {"flags", S_JSON},      {"company_key", S_TEXT}, {"event_id", S_NEW_ID},
};

typedef struct {
    char *buf;       /* "{elem,elem" while open; "{...}" + NUL once closed */
    size_t len, cap; /* bytes used (open form) and allocated */
} s_buf_t;

struct lf_batch_arrays {
    s_buf_t col[LF_BATCH_COLUMNS]; /* one literal per column */
    const char *params[LF_BATCH_COLUMNS];
    size_t n;   /* leads added since the last reset */
    int closed; /* the literals end in "}" (params was called) */
};

static void s_reserve(s_buf_t *b, size_t more) {
    if (b->len + more + 2 <= b->cap) /* room for the closing "}" and NUL too */
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 2)
        cap *= 2;
    b->buf = lf_realloc(b->buf, cap);
    b->cap = cap;
}

static void s_put(s_buf_t *b, const char *s, size_t n) {
    s_reserve(b, n);
    memcpy(b->buf + b->len, s, n);
    b->len += n;
}

/* json_dump_callback's sink: the JSON text goes straight into the element, escaped as
 * it comes (no text of its own to allocate, grow and copy: json_dumps's reallocs were
 * 4% of intake's CPU in a perf profile). */
static int s_put_escaped(const char *s, size_t n, void *arg) {
    s_buf_t *b = arg;
    size_t extra = 0;
    for (size_t i = 0; i < n; i++)
        extra += s[i] == '"' || s[i] == '\\';
    s_reserve(b, n + extra);
    char *o = b->buf + b->len;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            *o++ = '\\';
        *o++ = s[i];
    }
    b->len = (size_t)(o - b->buf);
    return 0;
}

/* Appends s as a quoted element. */
static void s_put_quoted(s_buf_t *b, const char *s, size_t n) {
    s_put(b, "\"", 1);
    s_put_escaped(s, n, b);
    s_put(b, "\"", 1);
}

static void s_put_json(s_buf_t *b, const json_t *v) {
    size_t start = b->len;
    s_put(b, "\"", 1);
    if (json_dump_callback(v, s_put_escaped, b, JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
        b->len = start;
        s_put(b, "NULL", 4);
        return;
    }
    s_put(b, "\"", 1);
}

static void s_put_value(s_buf_t *b, int kind, const json_t *v) {
    if (kind == S_NEW_ID) {
        char id[37];
        lf_uuid4(id);
        s_put(b, id, 36); /* hex digits and dashes: no quotes needed */
    } else if (!v || json_is_null(v)) {
        s_put(b, "NULL", 4);
    } else if (kind == S_JSON) {
        s_put_json(b, v);
    } else if (json_is_string(v)) {
        s_put_quoted(b, json_string_value(v), json_string_length(v));
    } else if (json_is_boolean(v)) {
        s_put(b, json_is_true(v) ? "t" : "f", 1);
    } else if (kind == S_BOOL) { /* the canonical lead has booleans only */
        s_put(b, "NULL", 4);
    } else {
        /* A number, or a text column holding JSON: its JSON text, as jsonb's ->> would.
         */
        s_put_json(b, v);
    }
}

lf_batch_arrays_t *lf_batch_arrays_new(void) {
    lf_batch_arrays_t *self = lf_calloc(1, sizeof *self);
    lf_batch_arrays_reset(self);
    return self;
}

void lf_batch_arrays_destroy(lf_batch_arrays_t **self_p) {
    if (!self_p || !*self_p)
        return;
    lf_batch_arrays_t *self = *self_p;
    for (int c = 0; c < LF_BATCH_COLUMNS; c++)
        free(self->col[c].buf);
    free(self);
    *self_p = NULL;
}

void lf_batch_arrays_reset(lf_batch_arrays_t *self) {
    for (int c = 0; c < LF_BATCH_COLUMNS; c++) {
        self->col[c].len = 0;
        s_put(&self->col[c], "{", 1);
    }
    self->n = 0;
    self->closed = 0;
}

void lf_batch_arrays_add(lf_batch_arrays_t *self, const json_t *row) {
    for (int c = 0; c < LF_BATCH_COLUMNS; c++) {
        s_buf_t *b = &self->col[c];
        if (self->closed) /* reopen after a params call */
            b->len--;
        if (self->n)
            s_put(b, ",", 1);
        s_put_value(b, s_cols[c].kind, json_object_get(row, s_cols[c].key));
    }
    self->n++;
    self->closed = 0;
}

const char *const *lf_batch_arrays_params(lf_batch_arrays_t *self) {
    for (int c = 0; c < LF_BATCH_COLUMNS; c++) {
        s_buf_t *b = &self->col[c];
        if (!self->closed)
            b->buf[b->len++] = '}'; /* s_reserve kept room for it and the NUL */
        b->buf[b->len] = '\0';
        self->params[c] = b->buf;
    }
    self->closed = 1;
    return self->params;
}

size_t lf_batch_arrays_bytes(const lf_batch_arrays_t *self) {
    size_t n = 0;
    for (int c = 0; c < LF_BATCH_COLUMNS; c++)
        n += self->col[c].len;
    return n;
}
