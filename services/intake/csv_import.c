/* csv_import.c: CSV and NDJSON bodies of POST /v1/leads/import into rows of raw fields.
 *
 * Trade-show lists come out of Excel: UTF-8 with or without a byte-order mark, or
 * GB18030/GBK from Chinese Windows, quoted cells with commas and line breaks, CRLF line
 * ends, stray blank lines, and column names in Chinese. The body is first turned into
 * clean UTF-8 (iconv for the GB family, a strict UTF-8 check otherwise) so that
 * everything after works on one encoding.
 *
 * libcsv parses the CSV in strict mode. We feed it one physical line at a time and track
 * the parity of double quotes ourselves, which tells us whether a line break ends a
 * spreadsheet row or sits inside a quoted cell; that is how each row gets the row number
 * the user sees in Excel, which is what an import report must point at. Rows are
 * validated one by one later, so a ragged row becomes a per-row error and its neighbours
 * still import. */
#include "csv_import.h"
#include "mapping.h"
#include "parse.h"

#include <csv.h>
#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistr.h>

#define s_oom()                                                                          \
    do {                                                                                 \
        fprintf(stderr, "FATAL out of memory at %s:%d\n", __FILE__, __LINE__);           \
        abort();                                                                         \
    } while (0)

typedef struct {
    size_t line; /* 1-based row number as the user sees it */
    json_t *obj; /* row object, or NULL for a bad row; owned */
    char *err;   /* reason for a bad row, or NULL; owned */
} s_row_t;

struct lf_import {
    s_row_t *rows; /* parsed rows in file order */
    size_t n;      /* rows used */
    size_t cap;    /* rows allocated */
};

/* State shared with the libcsv callbacks while parsing one CSV body. */
typedef struct {
    lf_import_t *imp; /* rows collected so far */
    char **fields;    /* cells of the record being parsed (NUL-terminated copies) */
    size_t nf;        /* cells in the current record */
    size_t overflow;  /* cells beyond LF_IMPORT_MAX_COLUMNS in the current record */
    char **cols;      /* column keys from the header; NULL until the header is read */
    char **units;     /* per column: the unit of its header ("万元") or NULL */
    size_t ncols;     /* number of entries in cols */
    size_t sheet_row; /* spreadsheet rows completed before the current one */
    int header_error; /* the header row had too many columns */
} s_csv_t;

static void s_set_why(char *why, size_t whysz, const char *msg) {
    if (why && whysz)
        snprintf(why, whysz, "%s", msg);
}

static char *s_strdup(const char *s) {
    char *d = strdup(s);
    if (!d)
        s_oom();
    return d;
}

static lf_import_t *s_import_new(void) {
    lf_import_t *imp = calloc(1, sizeof *imp);
    if (!imp)
        s_oom();
    return imp;
}

/* Appends a row; takes ownership of obj and err. */
static void s_push(lf_import_t *imp, size_t line, json_t *obj, char *err) {
    if (imp->n == imp->cap) {
        imp->cap = imp->cap ? imp->cap * 2 : 16;
        imp->rows = realloc(imp->rows, imp->cap * sizeof *imp->rows);
        if (!imp->rows)
            s_oom();
    }
    imp->rows[imp->n++] = (s_row_t){line, obj, err};
}

void lf_import_destroy(lf_import_t **self_p) {
    if (!self_p || !*self_p)
        return;
    lf_import_t *imp = *self_p;
    for (size_t i = 0; i < imp->n; i++) {
        json_decref(imp->rows[i].obj);
        free(imp->rows[i].err);
    }
    free(imp->rows);
    free(imp);
    *self_p = NULL;
}

size_t lf_import_rows(const lf_import_t *imp) {
    return imp ? imp->n : 0;
}

int lf_import_row(const lf_import_t *imp, size_t i, const json_t **obj, const char **err,
                  size_t *line) {
    const s_row_t *r = imp && i < imp->n ? &imp->rows[i] : NULL;
    if (obj)
        *obj = r ? r->obj : NULL;
    if (err)
        *err = r ? r->err : NULL;
    if (line)
        *line = r ? r->line : 0;
    return r && r->obj ? 0 : -1;
}

/* Trims ASCII white space in place and returns the start. */
static char *s_trim(char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    size_t n = strlen(s);
    while (n > 0 && strchr(" \t\r\n", s[n - 1]))
        s[--n] = '\0';
    return s;
}

static void s_clear_fields(s_csv_t *st) {
    for (size_t i = 0; i < st->nf; i++)
        free(st->fields[i]);
    st->nf = 0;
    st->overflow = 0;
}

static void s_on_field(void *s, size_t len, void *data) {
    s_csv_t *st = data;
    if (st->nf >= LF_IMPORT_MAX_COLUMNS) {
        st->overflow++;
        return;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        s_oom();
    if (len)
        memcpy(copy, s, len);
    copy[len] = '\0';
    st->fields[st->nf++] = copy;
}

static void s_take_header(s_csv_t *st) {
    if (st->overflow) {
        st->header_error = 1;
        return;
    }
    st->cols = calloc(st->nf + 1, sizeof *st->cols);
    st->units = calloc(st->nf + 1, sizeof *st->units);
    if (!st->cols || !st->units)
        s_oom();
    for (size_t i = 0; i < st->nf; i++) {
        char *name = s_trim(st->fields[i]);
        char unit[LF_UNIT_SIZE];
        const char *canon = lf_map_header_unit(name, unit, sizeof unit);
        if (unit[0])
            st->units[i] = s_strdup(unit);
        char fallback[32];
        if (!canon && !*name) {
            snprintf(fallback, sizeof fallback, "column_%zu", i + 1);
            canon = fallback;
        }
        st->cols[i] = s_strdup(canon ? canon : name);
    }
    st->ncols = st->nf;
}

static void s_take_row(s_csv_t *st, size_t line) {
    size_t extra_nonempty = st->overflow;
    for (size_t i = st->ncols; i < st->nf; i++)
        if (*s_trim(st->fields[i]))
            extra_nonempty++;
    if (st->nf < st->ncols || extra_nonempty) {
        char msg[96];
        snprintf(msg, sizeof msg, "wrong number of columns (expected %zu, found %zu)",
                 st->ncols, st->nf + st->overflow);
        s_push(st->imp, line, NULL, s_strdup(msg));
        return;
    }
    json_t *obj = json_object();
    if (!obj)
        s_oom();
    for (size_t i = 0; i < st->ncols; i++) {
        const char *v = s_trim(st->fields[i]);
        /* Two columns may map to one field (电话 and 手机): the first filled one wins. */
        if (!*v || json_object_get(obj, st->cols[i]))
            continue;
        char withunit[256];
        v = lf_apply_unit(v, st->units[i], withunit, sizeof withunit);
        if (json_object_set_new(obj, st->cols[i], json_string(v)) != 0)
            s_oom();
    }
    s_push(st->imp, line, obj, NULL);
}

static void s_on_row(int c, void *data) {
    s_csv_t *st = data;
    (void)c;
    int blank = st->overflow == 0;
    for (size_t i = 0; i < st->nf && blank; i++)
        if (*s_trim(st->fields[i]))
            blank = 0;
    /* The current spreadsheet row is the one after those already completed. */
    size_t line = st->sheet_row + 1;
    if (!blank && !st->header_error) {
        if (!st->cols)
            s_take_header(st);
        else
            s_take_row(st, line);
    }
    s_clear_fields(st);
}

/* Converts a GB18030 body to UTF-8. Caller owns the result; NULL with `why` on bad bytes.
 */
static char *s_from_gb18030(const char *body, size_t len, size_t *outlen, char *why,
                            size_t whysz) {
    iconv_t cd = iconv_open("UTF-8", "GB18030");
    if (cd == (iconv_t)-1) {
        s_set_why(why, whysz, "GB18030 conversion is not available on this system");
        return NULL;
    }
    /* GB18030 never grows by more than half in UTF-8 (2 bytes -> 3, 4 -> 4). */
    size_t cap = len + len / 2 + 16;
    char *out = malloc(cap);
    if (!out)
        s_oom();
    char *in = (char *)body, *o = out;
    size_t inleft = len, oleft = cap;
    while (inleft > 0) {
        if (iconv(cd, &in, &inleft, &o, &oleft) != (size_t)-1)
            continue;
        if (errno == E2BIG) {
            size_t used = (size_t)(o - out);
            cap *= 2;
            out = realloc(out, cap);
            if (!out)
                s_oom();
            o = out + used;
            oleft = cap - used;
            continue;
        }
        if (why && whysz)
            snprintf(why, whysz,
                     "file is not valid GB18030 text (bad bytes at offset %zu)",
                     len - inleft);
        free(out);
        iconv_close(cd);
        return NULL;
    }
    iconv_close(cd);
    *outlen = (size_t)(o - out);
    return out;
}

/* Turns the body into validated UTF-8 without BOM. *owned is set when the result was
 * allocated. Returns NULL with `why` on a file-level encoding problem. */
static const char *s_to_utf8(const char *body, size_t len, const char *charset,
                             size_t *outlen, char **owned, char *why, size_t whysz) {
    const char *cs = charset ? charset : "";
    const char *text = body;
    *owned = NULL;
    if (!strcmp(cs, "gb18030") || !strcmp(cs, "gbk") || !strcmp(cs, "gb2312")) {
        *owned = s_from_gb18030(body, len, &len, why, whysz);
        if (!*owned)
            return NULL;
        text = *owned;
    } else if (strcmp(cs, "") && strcmp(cs, "utf-8") && strcmp(cs, "utf8") &&
               strcmp(cs, "us-ascii")) {
        if (why && whysz)
            snprintf(why, whysz, "unsupported charset \"%.40s\" (use utf-8 or gb18030)",
                     cs);
        return NULL;
    }
    /* Excel writes a BOM for "CSV UTF-8"; GB18030 has its own, which iconv turns into
     * one. */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        text += 3, len -= 3;
    if (len > 0 && memchr(text, '\0', len)) {
        s_set_why(why, whysz,
                  "file contains NUL bytes (UTF-16 is not supported; save as CSV UTF-8)");
        goto fail;
    }
    const uint8_t *bad = u8_check((const uint8_t *)text, len);
    if (bad) {
        if (why && whysz)
            snprintf(why, whysz,
                     "file is not valid UTF-8 (bad bytes at offset %zu); a file saved by "
                     "Excel "
                     "on Chinese Windows needs charset=gb18030",
                     (size_t)(bad - (const uint8_t *)text));
        goto fail;
    }
    *outlen = len;
    return text;
fail:
    free(*owned);
    *owned = NULL;
    return NULL;
}

static int s_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\n", s[i]) || s[i] == '\0')
            return 0;
    return 1;
}

lf_import_t *lf_import_csv(const char *body, size_t len, const char *charset, char *why,
                           size_t whysz) {
    char *owned = NULL;
    const char *text =
        s_to_utf8(body ? body : "", body ? len : 0, charset, &len, &owned, why, whysz);
    if (!text)
        return NULL;
    if (s_blank(text, len)) {
        s_set_why(why, whysz, "file is empty");
        free(owned);
        return NULL;
    }
    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI) != 0)
        s_oom();
    s_csv_t st = {.imp = s_import_new()};
    st.fields = calloc(LF_IMPORT_MAX_COLUMNS, sizeof *st.fields);
    if (!st.fields)
        s_oom();
    int quoted = 0, failed = 0;
    size_t pos = 0;
    /* One physical line per call: after each, an even number of quotes so far means the
     * line break ended a spreadsheet row (CR alone counts as a line break, as for
     * libcsv). */
    while (pos < len && !failed) {
        size_t end = pos;
        while (end < len && text[end] != '\n' &&
               !(text[end] == '\r' && (end + 1 == len || text[end + 1] != '\n')))
            end++;
        if (end < len)
            end++;
        for (size_t i = pos; i < end; i++)
            quoted ^= text[i] == '"';
        size_t chunk = end - pos;
        if (csv_parse(&p, text + pos, chunk, s_on_field, s_on_row, &st) != chunk)
            failed = 1;
        else if (!quoted && (text[end - 1] == '\n' || text[end - 1] == '\r'))
            st.sheet_row++;
        pos = end;
    }
    if (!failed && csv_fini(&p, s_on_field, s_on_row, &st) != 0)
        failed = 1;
    if (failed) {
        if (why && whysz)
            snprintf(
                why, whysz,
                "CSV syntax error in row %zu: a double quote is unbalanced or inside an "
                "unquoted cell",
                st.sheet_row + 1);
    } else if (st.header_error) {
        if (why && whysz)
            snprintf(why, whysz, "the header row has more than %d columns",
                     LF_IMPORT_MAX_COLUMNS);
        failed = 1;
    } else if (!st.cols) {
        s_set_why(why, whysz, "file has no header row");
        failed = 1;
    }
    csv_free(&p);
    s_clear_fields(&st);
    free(st.fields);
    for (size_t i = 0; i < st.ncols; i++) {
        free(st.cols[i]);
        free(st.units[i]);
    }
    free(st.cols);
    free(st.units);
    free(owned);
    if (failed)
        lf_import_destroy(&st.imp);
    return st.imp;
}

static int s_cell_filled(const lf_sheet_row_t *r, size_t i) {
    return i < r->ncells && r->cells[i] && r->cells[i][strspn(r->cells[i], " \t\r\n")];
}

static size_t s_filled(const lf_sheet_row_t *r) {
    size_t n = 0;
    for (size_t i = 0; i < r->ncells; i++)
        n += s_cell_filled(r, i) != 0;
    return n;
}

lf_import_t *lf_import_sheet(const lf_sheet_row_t *rows, size_t nrows, char *why,
                             size_t whysz) {
    size_t h = nrows;
    for (size_t i = 0; i < nrows && h == nrows; i++)
        if (s_filled(&rows[i]) >= 2)
            h = i;
    for (size_t i = 0; i < nrows && h == nrows; i++)
        if (s_filled(&rows[i]) >= 1)
            h = i;
    if (h == nrows) {
        s_set_why(why, whysz, "the sheet is empty");
        return NULL;
    }
    size_t ncols = rows[h].ncells;
    if (ncols > LF_IMPORT_MAX_COLUMNS) {
        if (why && whysz)
            snprintf(why, whysz, "the header row has more than %d columns",
                     LF_IMPORT_MAX_COLUMNS);
        return NULL;
    }
    /* The same header rules as CSV, through the same state. */
    s_csv_t st = {.imp = s_import_new()};
    st.fields = calloc(LF_IMPORT_MAX_COLUMNS, sizeof *st.fields);
    if (!st.fields)
        s_oom();
    for (size_t i = 0; i < ncols; i++)
        st.fields[st.nf++] = s_strdup(rows[h].cells[i] ? rows[h].cells[i] : "");
    s_take_header(&st);
    s_clear_fields(&st);
    for (size_t r = h + 1; r < nrows; r++) {
        const lf_sheet_row_t *row = &rows[r];
        if (s_filled(row) == 0)
            continue;
        json_t *obj = json_object();
        if (!obj)
            s_oom();
        for (size_t i = 0; i < row->ncells; i++) {
            if (!s_cell_filled(row, i))
                continue;
            char *copy = s_strdup(row->cells[i]);
            const char *v = s_trim(copy);
            char fallback[32], withunit[256];
            const char *key = i < st.ncols ? st.cols[i] : NULL;
            if (!key) {
                snprintf(fallback, sizeof fallback, "column_%zu", i + 1);
                key = fallback;
            }
            if (i < st.ncols)
                v = lf_apply_unit(v, st.units[i], withunit, sizeof withunit);
            if (!json_object_get(obj, key) &&
                json_object_set_new(obj, key, json_string(v)) != 0)
                s_oom();
            free(copy);
        }
        s_push(st.imp, row->line, obj, NULL);
    }
    free(st.fields);
    for (size_t i = 0; i < st.ncols; i++) {
        free(st.cols[i]);
        free(st.units[i]);
    }
    free(st.cols);
    free(st.units);
    return st.imp;
}

/* Builds the row object of one NDJSON line with keys passed through lf_map_header. */
static json_t *s_ndjson_row(json_t *doc) {
    json_t *obj = json_object();
    if (!obj)
        s_oom();
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v) {
        char unit[LF_UNIT_SIZE];
        const char *canon = lf_map_header_unit(key, unit, sizeof unit);
        const char *k = canon ? canon : key;
        if (json_object_get(obj, k))
            continue;
        /* "预算（万元）": 80 is 80万元, as in a CSV column with that header. */
        char num[64], withunit[256];
        const char *text = json_is_string(v) ? json_string_value(v) : NULL;
        if (json_is_integer(v) || json_is_real(v)) {
            snprintf(num, sizeof num, "%.15g", json_number_value(v));
            text = num;
        }
        const char *u =
            unit[0] && text ? lf_apply_unit(text, unit, withunit, sizeof withunit) : NULL;
        if (u && u != text)
            json_object_set_new(obj, k, json_string(u));
        else
            json_object_set(obj, k, v);
    }
    return obj;
}

lf_import_t *lf_import_ndjson(const char *body, size_t len, char *why, size_t whysz) {
    const char *text = body ? body : "";
    if (!body)
        len = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        text += 3, len -= 3;
    lf_import_t *imp = s_import_new();
    size_t pos = 0, lineno = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len, n = end - pos;
        const char *line = text + pos;
        lineno++;
        pos = end + 1;
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (s_blank(line, n))
            continue;
        const char *cat;
        char detail[256];
        json_t *doc = lf_parse_json_object(line, n, &cat, detail, sizeof detail);
        if (doc) {
            s_push(imp, lineno, s_ndjson_row(doc), NULL);
            json_decref(doc);
            continue;
        }
        char msg[300];
        const char *prefix = "body is not valid JSON: ";
        if (strncmp(detail, prefix, strlen(prefix)) == 0)
            snprintf(msg, sizeof msg, "invalid JSON: %s", detail + strlen(prefix));
        else if (strcmp(cat, "body must be a JSON object") == 0)
            snprintf(msg, sizeof msg, "line is not a JSON object");
        else
            snprintf(msg, sizeof msg, "%s", cat);
        s_push(imp, lineno, NULL, s_strdup(msg));
    }
    if (imp->n == 0) {
        s_set_why(why, whysz, "file is empty");
        lf_import_destroy(&imp);
    }
    return imp;
}
