/* csv_import.c: CSV and NDJSON bodies of POST /v1/leads/import into rows of raw fields,
 * parsed as the bytes arrive.
 *
 * Trade-show lists come out of Excel: UTF-8 with or without a byte-order mark, or
 * GB18030/GBK from Chinese Windows, quoted cells with commas and line breaks, CRLF line
 * ends, stray blank lines, and column names in Chinese. Each piece of the body is first
 * turned into clean UTF-8 (iconv for the GB family, a strict UTF-8 check otherwise; a
 * character split between two pieces waits for the next one) so that everything after
 * works on one encoding.
 *
 * libcsv parses the CSV in strict mode. We feed it one physical line (or the part of it
 * that has arrived) at a time and track the parity of double quotes ourselves, which
 * tells us whether a line break ends a spreadsheet row or sits inside a quoted cell; that
 * is how each row gets the row number the user sees in Excel, which is what an import
 * report must point at. Each row is handed to the caller as soon as it is complete; rows
 * are validated one by one later, so a ragged row becomes a per-row error and its
 * neighbours still import. Nothing of the body is kept beyond the row being read: the
 * parser's memory is one row (at most LF_IMPORT_MAX_ROW_BYTES) and a 64 KiB piece.
 *
 * A file-level problem found late (bad bytes at the end, a broken quote) must still win
 * over the rows already handed out, and in the order a whole-file check would report it:
 * undecodable GB18030 first, then NUL bytes, then invalid UTF-8, then an empty file, then
 * broken CSV. So after a problem the parser stops making rows but still reads the rest
 * for the problems that rank higher, and lf_import_parser_finish names the one that
 * wins; the caller drops the rows it was given. */
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
    lf_import_t *imp;    /* rows collected so far (lf_import_sheet) */
    lf_import_row_fn fn; /* or: each row handed to fn (the CSV parser) */
    void *fn_arg;
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
        st->fn(st->fn_arg, line, NULL, msg);
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
    st->fn(st->fn_arg, line, obj, NULL);
    json_decref(obj);
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

static int s_cell_filled(const lf_sheet_row_t *r, size_t i) {
    return i < r->ncells && r->cells[i] && r->cells[i][strspn(r->cells[i], " \t\r\n")];
}

static size_t s_filled(const lf_sheet_row_t *r) {
    size_t n = 0;
    for (size_t i = 0; i < r->ncells; i++)
        n += s_cell_filled(r, i) != 0;
    return n;
}

/* A copy of a row (for the rows kept until the header is known). */
typedef struct {
    size_t line, ncells;
    char **cells; /* owned, NULL for an empty cell */
} s_kept_t;

struct lf_sheet_rows {
    lf_import_row_fn fn; /* each data row goes here */
    void *arg;
    s_csv_t st;      /* the header's columns and units, as for CSV */
    int have_header; /* the header row was taken */
    int failed;      /* the header had too many columns */
    s_kept_t *kept;  /* rows seen before a row with two filled cells */
    size_t nkept, capkept;
};

lf_sheet_rows_t *lf_sheet_rows_new(lf_import_row_fn fn, void *arg) {
    lf_sheet_rows_t *s = calloc(1, sizeof *s);
    if (!s)
        s_oom();
    s->fn = fn;
    s->arg = arg;
    return s;
}

static void s_kept_free(lf_sheet_rows_t *s) {
    for (size_t k = 0; k < s->nkept; k++) {
        for (size_t i = 0; i < s->kept[k].ncells; i++)
            free(s->kept[k].cells[i]);
        free(s->kept[k].cells);
    }
    free(s->kept);
    s->kept = NULL;
    s->nkept = s->capkept = 0;
}

void lf_sheet_rows_destroy(lf_sheet_rows_t **self_p) {
    if (!self_p || !*self_p)
        return;
    lf_sheet_rows_t *s = *self_p;
    s_kept_free(s);
    free(s->st.fields);
    for (size_t i = 0; i < s->st.ncols; i++) {
        free(s->st.cols[i]);
        free(s->st.units[i]);
    }
    free(s->st.cols);
    free(s->st.units);
    free(s);
    *self_p = NULL;
}

/* Takes row as the header (the same rules as CSV). Returns 0, or -1 with why. */
static int s_sheet_header(lf_sheet_rows_t *s, const lf_sheet_row_t *row, char *why,
                          size_t whysz) {
    if (row->ncells > LF_IMPORT_MAX_COLUMNS) {
        if (why && whysz)
            snprintf(why, whysz, "the header row has more than %d columns",
                     LF_IMPORT_MAX_COLUMNS);
        s->failed = 1;
        return -1;
    }
    s->st.fields = calloc(LF_IMPORT_MAX_COLUMNS, sizeof *s->st.fields);
    if (!s->st.fields)
        s_oom();
    for (size_t i = 0; i < row->ncells; i++)
        s->st.fields[s->st.nf++] = s_strdup(row->cells[i] ? row->cells[i] : "");
    s_take_header(&s->st);
    s_clear_fields(&s->st);
    s->have_header = 1;
    return 0;
}

/* One data row after the header: its object to fn (empty rows are skipped). */
static void s_sheet_data(lf_sheet_rows_t *s, const lf_sheet_row_t *row) {
    if (s_filled(row) == 0)
        return;
    json_t *obj = json_object();
    if (!obj)
        s_oom();
    for (size_t i = 0; i < row->ncells; i++) {
        if (!s_cell_filled(row, i))
            continue;
        char *copy = s_strdup(row->cells[i]);
        const char *v = s_trim(copy);
        char fallback[32], withunit[256];
        const char *key = i < s->st.ncols ? s->st.cols[i] : NULL;
        if (!key) {
            snprintf(fallback, sizeof fallback, "column_%zu", i + 1);
            key = fallback;
        }
        if (i < s->st.ncols)
            v = lf_apply_unit(v, s->st.units[i], withunit, sizeof withunit);
        if (!json_object_get(obj, key) &&
            json_object_set_new(obj, key, json_string(v)) != 0)
            s_oom();
        free(copy);
    }
    s->fn(s->arg, row->line, obj, NULL);
    json_decref(obj);
}

/* The kept rows from index `from` on, as data rows. */
static void s_sheet_flush(lf_sheet_rows_t *s, size_t from) {
    for (size_t k = from; k < s->nkept; k++) {
        lf_sheet_row_t r = {s->kept[k].line, s->kept[k].ncells,
                            (const char **)s->kept[k].cells};
        s_sheet_data(s, &r);
    }
    s_kept_free(s);
}

int lf_sheet_rows_add(lf_sheet_rows_t *s, const lf_sheet_row_t *row, char *why,
                      size_t whysz) {
    if (s->failed)
        return -1;
    if (s->have_header) {
        s_sheet_data(s, row);
        return 0;
    }
    size_t filled = s_filled(row);
    if (filled >= 2) { /* the header: the rows above it were titles */
        s_kept_free(s);
        return s_sheet_header(s, row, why, whysz);
    }
    if (filled == 0)
        return 0;
    /* One filled cell: a title, or - when no row has two - the header or a data row
     * of a one-column sheet. Kept until that is known. */
    if (s->nkept == s->capkept) {
        s->capkept = s->capkept ? s->capkept * 2 : 8;
        s->kept = realloc(s->kept, s->capkept * sizeof *s->kept);
        if (!s->kept)
            s_oom();
    }
    s_kept_t *k = &s->kept[s->nkept++];
    k->line = row->line;
    k->ncells = row->ncells;
    k->cells = calloc(row->ncells + 1, sizeof *k->cells);
    if (!k->cells)
        s_oom();
    for (size_t i = 0; i < row->ncells; i++)
        k->cells[i] = row->cells[i] ? s_strdup(row->cells[i]) : NULL;
    return 0;
}

int lf_sheet_rows_finish(lf_sheet_rows_t *s, char *why, size_t whysz) {
    if (s->failed)
        return -1;
    if (s->have_header)
        return 0;
    if (s->nkept == 0) {
        s_set_why(why, whysz, "the sheet is empty");
        return -1;
    }
    /* No row has two filled cells: the first filled row is the header. */
    lf_sheet_row_t h = {s->kept[0].line, s->kept[0].ncells,
                        (const char **)s->kept[0].cells};
    if (s_sheet_header(s, &h, why, whysz) < 0)
        return -1;
    s_sheet_flush(s, 1);
    return 0;
}

/* An lf_import_row_fn that appends each row to an lf_import_t (below). */
static void s_collect(void *arg, size_t line, const json_t *obj, const char *err);

lf_import_t *lf_import_collector(lf_import_row_fn *fn) {
    *fn = s_collect;
    return s_import_new();
}

lf_import_t *lf_import_sheet(const lf_sheet_row_t *rows, size_t nrows, char *why,
                             size_t whysz) {
    lf_import_row_fn fn;
    lf_import_t *imp = lf_import_collector(&fn);
    lf_sheet_rows_t *s = lf_sheet_rows_new(fn, imp);
    int rc = 0;
    for (size_t i = 0; i < nrows && rc == 0; i++)
        rc = lf_sheet_rows_add(s, &rows[i], why, whysz);
    if (rc == 0)
        rc = lf_sheet_rows_finish(s, why, whysz);
    lf_sheet_rows_destroy(&s);
    if (rc < 0)
        lf_import_destroy(&imp);
    return imp;
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

/* Decoded text is handed on in pieces of at most this many input bytes. */
#define S_PIECE 65536

struct lf_import_parser {
    int ndjson;
    lf_import_row_fn fn;
    void *arg;
    iconv_t cd;        /* GB18030 -> UTF-8, or (iconv_t)-1 */
    char in_carry[8];  /* raw bytes of a GB18030 character split between pieces */
    size_t n_in_carry; /* bytes in in_carry */
    size_t in_off;     /* body offset of in_carry[0] (of the next piece when empty) */
    char *stage;       /* in_carry + one piece, for iconv */
    char *out;         /* iconv's output */
    size_t out_cap;    /* bytes of out */
    unsigned char
        bom[3]; /* the first text bytes, until it is known whether they are a BOM */
    size_t nbom;
    int bom_done;
    char u8_carry[4]; /* a UTF-8 character split between pieces */
    size_t n_u8_carry;
    size_t text_off; /* text bytes (after the BOM) checked so far */
    /* File-level problems, highest rank first (see the top of this file). */
    int gb_bad;
    size_t gb_off;
    int nul;
    int u8_bad;
    size_t u8_off;
    int nonblank;      /* a byte other than white space was seen */
    int row_failed;    /* broken CSV, or a row over LF_IMPORT_MAX_ROW_BYTES */
    char row_why[160]; /* why, when row_failed */
    /* CSV */
    struct csv_parser csv;
    s_csv_t st;
    int quoted;       /* an odd number of double quotes so far */
    int pending_cr;   /* the text so far ends with CR: a line end unless LF follows */
    size_t row_bytes; /* bytes of the current spreadsheet row so far */
    /* NDJSON */
    char *line; /* the current line so far (at most LF_IMPORT_MAX_ROW_BYTES) */
    size_t nline, line_cap;
    int line_long; /* the current line went over the limit: skipped to its end */
    size_t lineno;
    size_t rows; /* rows handed out */
};

static int s_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\n", s[i]) || s[i] == '\0')
            return 0;
    return 1;
}

/* A spreadsheet row ended (its line break was outside quotes). */
static void s_row_end(lf_import_parser_t *p) {
    p->st.sheet_row++;
    p->row_bytes = 0;
}

/* Feeds libcsv; returns 0 after recording a problem. */
static int s_csv_parse(lf_import_parser_t *p, const char *t, size_t n) {
    p->row_bytes += n;
    if (p->row_bytes > LF_IMPORT_MAX_ROW_BYTES) {
        snprintf(p->row_why, sizeof p->row_why,
                 "row %zu is longer than %u bytes (LF_IMPORT_MAX_ROW_BYTES); is a double "
                 "quote unbalanced?",
                 p->st.sheet_row + 1, (unsigned)LF_IMPORT_MAX_ROW_BYTES);
        p->row_failed = 1;
        return 0;
    }
    if (csv_parse(&p->csv, t, n, s_on_field, s_on_row, &p->st) != n) {
        snprintf(p->row_why, sizeof p->row_why,
                 "CSV syntax error in row %zu: a double quote is unbalanced or inside an "
                 "unquoted cell",
                 p->st.sheet_row + 1);
        p->row_failed = 1;
        return 0;
    }
    return 1;
}

/* Checked UTF-8 text to libcsv, one physical line (or what has arrived of it) per call:
 * after each line break, an even number of quotes so far means the break ended a
 * spreadsheet row. CR alone counts as a line break, as for libcsv, so a CR at the end of
 * a piece waits for the next byte. */
static void s_csv_text(lf_import_parser_t *p, const char *t, size_t n) {
    size_t pos = 0;
    while (pos < n && !p->row_failed) {
        if (p->pending_cr) {
            p->pending_cr = 0;
            if (t[pos] == '\n') {
                if (!s_csv_parse(p, t + pos, 1))
                    return;
                pos++;
                if (!p->quoted)
                    s_row_end(p);
                continue;
            }
            if (!p->quoted)
                s_row_end(p);
        }
        size_t end = pos;
        while (end < n && t[end] != '\n' && t[end] != '\r')
            end++;
        char term = end < n ? t[end] : '\0';
        if (end < n)
            end++;
        for (size_t i = pos; i < end; i++)
            p->quoted ^= t[i] == '"';
        if (!s_csv_parse(p, t + pos, end - pos))
            return;
        if (term == '\n' && !p->quoted)
            s_row_end(p);
        else if (term == '\r')
            p->pending_cr = 1;
        pos = end;
    }
}

/* One complete NDJSON line (without its LF) in p->line. */
static void s_ndjson_line(lf_import_parser_t *p) {
    p->lineno++;
    size_t n = p->nline;
    p->nline = 0;
    if (p->line_long) {
        p->line_long = 0;
        char msg[96];
        snprintf(msg, sizeof msg, "line is longer than %u bytes",
                 (unsigned)LF_IMPORT_MAX_ROW_BYTES);
        p->rows++;
        p->fn(p->arg, p->lineno, NULL, msg);
        return;
    }
    const char *line = p->line ? p->line : "";
    if (n > 0 && line[n - 1] == '\r')
        n--;
    if (s_blank(line, n))
        return;
    p->rows++;
    const char *cat;
    char detail[256];
    json_t *doc = lf_parse_json_object(line, n, &cat, detail, sizeof detail);
    if (doc) {
        json_t *obj = s_ndjson_row(doc);
        json_decref(doc);
        p->fn(p->arg, p->lineno, obj, NULL);
        json_decref(obj);
        return;
    }
    char msg[300];
    const char *prefix = "body is not valid JSON: ";
    if (strncmp(detail, prefix, strlen(prefix)) == 0)
        snprintf(msg, sizeof msg, "invalid JSON: %s", detail + strlen(prefix));
    else if (strcmp(cat, "body must be a JSON object") == 0)
        snprintf(msg, sizeof msg, "line is not a JSON object");
    else
        snprintf(msg, sizeof msg, "%s", cat);
    p->fn(p->arg, p->lineno, NULL, msg);
}

/* NDJSON text (after the BOM) into lines. */
static void s_ndjson_text(lf_import_parser_t *p, const char *t, size_t n) {
    while (n > 0) {
        const char *nl = memchr(t, '\n', n);
        size_t take = nl ? (size_t)(nl - t) : n;
        if (!p->line_long && p->nline + take > LF_IMPORT_MAX_ROW_BYTES)
            p->line_long = 1;
        if (!p->line_long && take) {
            if (p->nline + take > p->line_cap) {
                p->line_cap = (p->nline + take) * 2;
                if (p->line_cap > LF_IMPORT_MAX_ROW_BYTES)
                    p->line_cap = LF_IMPORT_MAX_ROW_BYTES;
                p->line = realloc(p->line, p->line_cap);
                if (!p->line)
                    s_oom();
            }
            memcpy(p->line + p->nline, t, take);
            p->nline += take;
        }
        if (!nl)
            return;
        s_ndjson_line(p);
        t += take + 1;
        n -= take + 1;
    }
}

/* Text that passed the checks. */
static void s_checked(lf_import_parser_t *p, const char *t, size_t n) {
    for (size_t i = 0; i < n && !p->nonblank; i++)
        p->nonblank = !strchr(" \t\r\n", t[i]);
    if (!p->row_failed)
        s_csv_text(p, t, n);
}

/* Bytes of the UTF-8 character a lead byte starts (a bad lead byte: u8_check says so). */
static size_t s_u8_len(unsigned char b) {
    return b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
}

/* Bytes at the end of t that start a character not complete yet. */
static size_t s_u8_tail(const char *t, size_t n) {
    for (size_t i = 1; i <= 3 && i <= n; i++) {
        unsigned char b = (unsigned char)t[n - i];
        if ((b & 0xC0) == 0x80)
            continue;
        return b >= 0xC0 && s_u8_len(b) > i ? i : 0;
    }
    return 0;
}

/* CSV text after the BOM: NUL bytes (UTF-16) and UTF-8 are checked, a character split
 * between pieces waits for the rest. After a problem only NUL bytes are looked for. */
static void s_check(lf_import_parser_t *p, const char *t, size_t n) {
    if (p->ndjson) {
        s_ndjson_text(p, t, n);
        return;
    }
    if (n && memchr(t, '\0', n))
        p->nul = 1;
    if (p->nul || p->u8_bad)
        return;
    if (p->n_u8_carry) {
        size_t need = s_u8_len((unsigned char)p->u8_carry[0]);
        while (p->n_u8_carry < need && n > 0) {
            p->u8_carry[p->n_u8_carry++] = *t++;
            n--;
        }
        if (p->n_u8_carry < need)
            return;
        if (u8_check((const uint8_t *)p->u8_carry, p->n_u8_carry)) {
            p->u8_bad = 1;
            p->u8_off = p->text_off;
            return;
        }
        s_checked(p, p->u8_carry, p->n_u8_carry);
        p->text_off += p->n_u8_carry;
        p->n_u8_carry = 0;
    }
    size_t tail = s_u8_tail(t, n);
    const uint8_t *bad = u8_check((const uint8_t *)t, n - tail);
    if (bad) {
        p->u8_bad = 1;
        p->u8_off = p->text_off + (size_t)(bad - (const uint8_t *)t);
        return;
    }
    s_checked(p, t, n - tail);
    p->text_off += n - tail;
    memcpy(p->u8_carry, t + n - tail, tail);
    p->n_u8_carry = tail;
}

/* Text: a UTF-8 byte-order mark at the very start is dropped (Excel writes one for "CSV
 * UTF-8"; GB18030 has its own, which iconv turns into one). */
static void s_text(lf_import_parser_t *p, const char *t, size_t n) {
    if (!p->bom_done) {
        while (n > 0 && p->nbom < 3) {
            p->bom[p->nbom++] = (unsigned char)*t++;
            n--;
        }
        if (p->nbom < 3)
            return;
        p->bom_done = 1;
        if (memcmp(p->bom, "\xEF\xBB\xBF", 3) != 0)
            s_check(p, (const char *)p->bom, 3);
    }
    if (n)
        s_check(p, t, n);
}

/* One piece of the body (at most S_PIECE bytes). */
static void s_piece(lf_import_parser_t *p, const char *data, size_t n) {
    if (p->gb_bad) /* the highest-ranked problem: nothing more to learn */
        return;
    if (p->cd == (iconv_t)-1) {
        s_text(p, data, n);
        return;
    }
    memcpy(p->stage, p->in_carry, p->n_in_carry);
    memcpy(p->stage + p->n_in_carry, data, n);
    size_t base = p->in_off, total = p->n_in_carry + n;
    char *in = p->stage;
    size_t inleft = total;
    p->n_in_carry = 0;
    while (inleft > 0) {
        char *o = p->out;
        size_t oleft = p->out_cap;
        size_t rc = iconv(p->cd, &in, &inleft, &o, &oleft);
        int err = rc == (size_t)-1 ? errno : 0;
        if (o > p->out)
            s_text(p, p->out, (size_t)(o - p->out));
        if (!err || err == E2BIG)
            continue;
        if (err == EINVAL && inleft < sizeof p->in_carry) {
            /* A character cut at the end of the piece: the next piece completes it. */
            memcpy(p->in_carry, in, inleft);
            p->n_in_carry = inleft;
            p->in_off = base + (size_t)(in - p->stage);
            return;
        }
        p->gb_bad = 1;
        p->gb_off = base + (size_t)(in - p->stage);
        return;
    }
    p->in_off = base + total;
}

lf_import_parser_t *lf_import_parser_new(int ndjson, const char *charset,
                                         lf_import_row_fn fn, void *arg, char *why,
                                         size_t whysz) {
    const char *cs = charset ? charset : "";
    iconv_t cd = (iconv_t)-1;
    if (!ndjson) {
        if (!strcmp(cs, "gb18030") || !strcmp(cs, "gbk") || !strcmp(cs, "gb2312")) {
            cd = iconv_open("UTF-8", "GB18030");
            if (cd == (iconv_t)-1) {
                s_set_why(why, whysz,
                          "GB18030 conversion is not available on this system");
                return NULL;
            }
        } else if (strcmp(cs, "") && strcmp(cs, "utf-8") && strcmp(cs, "utf8") &&
                   strcmp(cs, "us-ascii")) {
            if (why && whysz)
                snprintf(why, whysz,
                         "unsupported charset \"%.40s\" (use utf-8 or gb18030)", cs);
            return NULL;
        }
    }
    lf_import_parser_t *p = calloc(1, sizeof *p);
    if (!p)
        s_oom();
    p->ndjson = ndjson;
    p->fn = fn;
    p->arg = arg;
    p->cd = cd;
    if (cd != (iconv_t)-1) {
        /* GB18030 never grows by more than half in UTF-8 (2 bytes -> 3, 4 -> 4). */
        p->out_cap = S_PIECE + S_PIECE / 2 + 64;
        p->stage = malloc(S_PIECE + sizeof p->in_carry);
        p->out = malloc(p->out_cap);
        if (!p->stage || !p->out)
            s_oom();
    }
    if (!ndjson) {
        if (csv_init(&p->csv, CSV_STRICT | CSV_STRICT_FINI) != 0)
            s_oom();
        csv_set_blk_size(&p->csv, 4096); /* a long cell grows in 4 KiB steps, not 128 B */
        p->st.fn = fn;
        p->st.fn_arg = arg;
        p->st.fields = calloc(LF_IMPORT_MAX_COLUMNS, sizeof *p->st.fields);
        if (!p->st.fields)
            s_oom();
    }
    return p;
}

void lf_import_parser_feed(lf_import_parser_t *p, const char *data, size_t len) {
    while (p && len > 0) {
        size_t n = len < S_PIECE ? len : S_PIECE;
        s_piece(p, data, n);
        data += n;
        len -= n;
    }
}

int lf_import_parser_finish(lf_import_parser_t *p, char *why, size_t whysz) {
    if (!p->bom_done) { /* fewer than 3 bytes: no BOM, just text */
        p->bom_done = 1;
        if (p->nbom && !p->gb_bad)
            s_check(p, (const char *)p->bom, p->nbom);
    }
    if (p->n_in_carry && !p->gb_bad) { /* a GB18030 character cut off by the end */
        p->gb_bad = 1;
        p->gb_off = p->in_off;
    }
    if (p->ndjson) {
        if (p->nline || p->line_long)
            s_ndjson_line(p);
        if (p->rows == 0) {
            s_set_why(why, whysz, "file is empty");
            return -1;
        }
        return 0;
    }
    if (p->n_u8_carry && !p->u8_bad && !p->nul) {
        p->u8_bad = 1;
        p->u8_off = p->text_off;
    }
    int clean = !p->gb_bad && !p->nul && !p->u8_bad && !p->row_failed;
    if (clean && p->pending_cr) {
        p->pending_cr = 0;
        if (!p->quoted)
            s_row_end(p);
    }
    if (clean && csv_fini(&p->csv, s_on_field, s_on_row, &p->st) != 0) {
        snprintf(p->row_why, sizeof p->row_why,
                 "CSV syntax error in row %zu: a double quote is unbalanced or inside an "
                 "unquoted cell",
                 p->st.sheet_row + 1);
        p->row_failed = 1;
    }
    if (p->gb_bad) {
        if (why && whysz)
            snprintf(why, whysz,
                     "file is not valid GB18030 text (bad bytes at offset %zu)",
                     p->gb_off);
    } else if (p->nul) {
        s_set_why(why, whysz,
                  "file contains NUL bytes (UTF-16 is not supported; save as CSV UTF-8)");
    } else if (p->u8_bad) {
        if (why && whysz)
            snprintf(why, whysz,
                     "file is not valid UTF-8 (bad bytes at offset %zu); a file saved by "
                     "Excel on Chinese Windows needs charset=gb18030",
                     p->u8_off);
    } else if (!p->nonblank) {
        s_set_why(why, whysz, "file is empty");
    } else if (p->row_failed) {
        s_set_why(why, whysz, p->row_why);
    } else if (p->st.header_error) {
        if (why && whysz)
            snprintf(why, whysz, "the header row has more than %d columns",
                     LF_IMPORT_MAX_COLUMNS);
    } else if (!p->st.cols) {
        s_set_why(why, whysz, "file has no header row");
    } else {
        return 0;
    }
    return -1;
}

void lf_import_parser_destroy(lf_import_parser_t **self_p) {
    if (!self_p || !*self_p)
        return;
    lf_import_parser_t *p = *self_p;
    if (!p->ndjson) {
        csv_free(&p->csv);
        s_clear_fields(&p->st);
        free(p->st.fields);
        for (size_t i = 0; i < p->st.ncols; i++) {
            free(p->st.cols[i]);
            free(p->st.units[i]);
        }
        free(p->st.cols);
        free(p->st.units);
    }
    if (p->cd != (iconv_t)-1)
        iconv_close(p->cd);
    free(p->stage);
    free(p->out);
    free(p->line);
    free(p);
    *self_p = NULL;
}

/* The whole-body parsers: rows collected into an lf_import_t. */
static void s_collect(void *arg, size_t line, const json_t *obj, const char *err) {
    s_push(arg, line, obj ? json_incref((json_t *)obj) : NULL,
           err ? s_strdup(err) : NULL);
}

static lf_import_t *s_whole(int ndjson, const char *body, size_t len, const char *charset,
                            char *why, size_t whysz) {
    lf_import_t *imp = s_import_new();
    lf_import_parser_t *p =
        lf_import_parser_new(ndjson, charset, s_collect, imp, why, whysz);
    if (!p) {
        lf_import_destroy(&imp);
        return NULL;
    }
    lf_import_parser_feed(p, body ? body : "", body ? len : 0);
    if (lf_import_parser_finish(p, why, whysz) < 0)
        lf_import_destroy(&imp);
    lf_import_parser_destroy(&p);
    return imp;
}

lf_import_t *lf_import_csv(const char *body, size_t len, const char *charset, char *why,
                           size_t whysz) {
    return s_whole(0, body, len, charset, why, whysz);
}

lf_import_t *lf_import_ndjson(const char *body, size_t len, char *why, size_t whysz) {
    return s_whole(1, body, len, NULL, why, whysz);
}
