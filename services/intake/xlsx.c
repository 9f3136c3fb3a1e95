/* xlsx.c: an Excel workbook (.xlsx) as rows of text, for POST /v1/leads/import.
 *
 * Trade-show lists arrive as .xlsx more often than as CSV, and an .xlsx file keeps what a
 * CSV export loses: a number cell holds the exact value (13800138000, where the CSV says
 * 1.38001E+10), and a date is a date. The file is a zip archive of XML parts; libzip
 * opens the archive from memory and expat parses each part as it is inflated, so no part
 * is ever held whole and the inflated bytes can be counted and capped (a zip bomb stops
 * at the cap, not when memory runs out). A part with a document type declaration is
 * refused, which rules out entity expansion whatever expat's own limits are.
 *
 * The parts are read in the order the format defines them: xl/workbook.xml names the
 * sheets in display order and carries the 1904 date flag, its relationships
 * (xl/_rels/workbook.xml.rels) say which part holds each sheet and where the shared
 * strings and styles are; styles.xml says which cell styles are dates. Writers differ
 * (Excel uses shared strings, LibreOffice and many libraries write inline strings; some
 * omit cell references), and every one of those variants is read the same way.
 *
 * What comes out is rows of cell texts, each handed on as soon as it is read
 * (lf_sheet_rows_add, csv_import.c), so headers, units and per-row validation are
 * exactly those of CSV and memory does not grow with the sheet's rows: what is kept is
 * the shared strings (cells refer to them by number), the styles, the merged ranges
 * and one row. The merged ranges are listed after the cells, so the sheet is read twice:
 * once for them, once for the rows. */
#include "xlsx.h"

#include <expat.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#define s_oom()                                                                          \
    do {                                                                                 \
        fprintf(stderr, "FATAL out of memory at %s:%d\n", __FILE__, __LINE__);           \
        abort();                                                                         \
    } while (0)

/* Most sheets listed in a workbook and merged ranges in a sheet that we keep track of;
   real files have a handful. */
#define S_MAX_SHEETS 1024
#define S_MAX_MERGES 65536
/* Most shared strings kept from one workbook: memory grows with them (about 50 bytes
   each besides the text), and the unpack cap alone would allow tens of millions of tiny
   ones. The cells themselves are not kept (one row at a time). */
#define S_MAX_VALUES 2000000
/* Most cells all merged ranges together may fill (a whole-column merge is a mistake, not
   data). */
#define S_MAX_MERGE_CELLS 200000

typedef struct {
    char *p;    /* text, NUL-terminated when p != NULL */
    size_t n;   /* bytes used */
    size_t cap; /* bytes allocated */
} s_buf_t;

static void s_buf_add(s_buf_t *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            s_oom();
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void s_buf_clear(s_buf_t *b) {
    b->n = 0;
    if (b->p)
        b->p[0] = '\0';
}

static char *s_strdup(const char *s) {
    char *d = strdup(s ? s : "");
    if (!d)
        s_oom();
    return d;
}

typedef struct {
    char *name; /* as the tab shows it */
    char *rid;  /* relationship id of its part */
} s_sheet_t;

typedef struct {
    size_t line;  /* spreadsheet row number */
    size_t n;     /* cells used (highest column + 1) */
    size_t cap;   /* cells allocated */
    char **cells; /* owned texts, NULL for empty */
} s_row_t;

/* Everything read from the archive so far. */
typedef struct {
    zip_t *zip;
    size_t left;  /* bytes that may still be inflated */
    size_t limit; /* the cap, for the message */
    char *why;    /* caller's reason buffer */
    size_t whysz; /* its size */
    int failed;   /* a reason has been written */
    int date1904; /* workbook uses the 1904 date system */
    s_sheet_t *sheets;
    size_t nsheets;
    char *sheet_part, *strings_part, *styles_part; /* resolved part names */
    const char *want_rid;                          /* relationship of the chosen sheet */
    char **strings;                                /* shared strings */
    size_t nstrings, capstrings;
    unsigned char *xf_date; /* per cell style: 1 when it formats a date */
    size_t nxf, capxf;
    int *fmt_ids; /* custom number formats that are dates */
    size_t nfmt, capfmt;
    s_row_t row;          /* the row being read (its cells are reused) */
    lf_sheet_rows_t *out; /* where each completed row goes */
    size_t nvalues;       /* shared strings kept so far */
    size_t (*merges)[4];  /* r1, c1, r2, c2 (0-based), in the sheet's order */
    char **merge_value;   /* per merge: the top-left cell's text once its row is read */
    unsigned char *merge_off; /* per merge: not filled (a title in a one-row merge) */
    size_t nmerges;
    size_t merge_budget; /* cells merged ranges may still fill */
    size_t *merge_order; /* the merges by first row (then sheet order) */
    size_t merge_next;   /* the next of merge_order to start */
    size_t *merge_act;   /* the merges over the rows being read, in starting order */
    size_t nact;
} s_book_t;

/* The state every expat callback gets first. */
typedef struct {
    XML_Parser p;
    s_book_t *book;
    int doctype; /* a DOCTYPE was seen: the part is refused */
} s_xml_t;

static void s_fail(s_book_t *b, const char *fmt, const char *arg) {
    if (b->failed)
        return;
    b->failed = 1;
    if (b->why && b->whysz)
        snprintf(b->why, b->whysz, fmt, arg ? arg : "");
}

static void s_stop(s_xml_t *x, const char *fmt, const char *arg) {
    s_fail(x->book, fmt, arg);
    XML_StopParser(x->p, XML_FALSE);
}

/* Element and attribute names without their namespace prefix ("x:row" is "row"). */
static const char *s_local(const char *name) {
    const char *c = strrchr(name, ':');
    return c ? c + 1 : name;
}

static const char *s_attr(const char **atts, const char *local) {
    for (size_t i = 0; atts[i]; i += 2)
        if (!strcmp(s_local(atts[i]), local))
            return atts[i + 1];
    return NULL;
}

/* The relationship id attribute (r:id), whatever its prefix. */
static const char *s_rid_attr(const char **atts) {
    for (size_t i = 0; atts[i]; i += 2)
        if (strchr(atts[i], ':') && !strcmp(s_local(atts[i]), "id"))
            return atts[i + 1];
    return NULL;
}

static void XMLCALL s_on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                                 const XML_Char *pubid, int has_internal) {
    s_xml_t *x = ud;
    x->doctype = 1;
    s_stop(x,
           "the workbook contains an XML document type declaration, which is not "
           "allowed in .xlsx files",
           NULL);
}

/* Inflates the part `name` and feeds it to expat with the given handlers; `ud` must start
   with an s_xml_t. Returns 0, 1 when the part is missing and `optional`, -1 on failure
   (reason in the book). */
static int s_read_part(s_book_t *b, const char *name, int optional, s_xml_t *ud,
                       XML_StartElementHandler se, XML_EndElementHandler ee,
                       XML_CharacterDataHandler cd) {
    zip_int64_t idx = zip_name_locate(b->zip, name, 0);
    if (idx < 0) {
        if (optional)
            return 1;
        s_fail(b, "not an .xlsx file: the part %s is missing", name);
        return -1;
    }
    zip_file_t *f = zip_fopen_index(b->zip, (zip_uint64_t)idx, 0);
    if (!f) {
        s_fail(b, "the .xlsx file is damaged or encrypted: %s cannot be read", name);
        return -1;
    }
    XML_Parser p = XML_ParserCreate("UTF-8");
    if (!p)
        s_oom();
    ud->p = p;
    ud->book = b;
    XML_SetUserData(p, ud);
    XML_SetElementHandler(p, se, ee);
    if (cd)
        XML_SetCharacterDataHandler(p, cd);
    XML_SetStartDoctypeDeclHandler(p, s_on_doctype);
    char *buf = malloc(65536);
    if (!buf)
        s_oom();
    int rc = 0;
    for (;;) {
        zip_int64_t n = zip_fread(f, buf, 65536);
        if (n < 0) {
            s_fail(b, "the .xlsx file is damaged: %s cannot be inflated", name);
            rc = -1;
            break;
        }
        if ((size_t)n > b->left) {
            char lim[32];
            snprintf(lim, sizeof lim, "%zu", b->limit / (1024 * 1024));
            s_fail(b,
                   "the .xlsx file unpacks to more than %s MiB "
                   "(LEADFLOW_XLSX_MAX_UNPACKED); "
                   "split it or save it as CSV",
                   lim);
            rc = -1;
            break;
        }
        b->left -= (size_t)n;
        if (XML_Parse(p, buf, (int)n, n == 0) == XML_STATUS_ERROR) {
            if (!b->failed) {
                char msg[160];
                snprintf(msg, sizeof msg, "%s: %s at line %lu", name,
                         XML_ErrorString(XML_GetErrorCode(p)),
                         (unsigned long)XML_GetCurrentLineNumber(p));
                s_fail(b, "the .xlsx file is damaged: %s", msg);
            }
            rc = -1;
            break;
        }
        if (n == 0)
            break;
    }
    free(buf);
    XML_ParserFree(p);
    zip_fclose(f);
    return b->failed ? -1 : rc;
}

/* ---------------------------------------------------------------- workbook */

static void XMLCALL s_wb_start(void *ud, const XML_Char *name, const XML_Char **atts) {
    s_xml_t *x = ud;
    s_book_t *b = x->book;
    const char *n = s_local(name);
    if (!strcmp(n, "workbookPr")) {
        const char *v = s_attr(atts, "date1904");
        b->date1904 = v && (!strcmp(v, "1") || !strcmp(v, "true"));
    } else if (!strcmp(n, "sheet")) {
        const char *sn = s_attr(atts, "name"), *rid = s_rid_attr(atts);
        if (!sn || !rid || b->nsheets >= S_MAX_SHEETS)
            return;
        if (!b->sheets) {
            b->sheets = calloc(S_MAX_SHEETS, sizeof *b->sheets);
            if (!b->sheets)
                s_oom();
        }
        b->sheets[b->nsheets].name = s_strdup(sn);
        b->sheets[b->nsheets].rid = s_strdup(rid);
        b->nsheets++;
    }
}

static void XMLCALL s_ignore_end(void *ud, const XML_Char *name) {}

/* A relationship target as a part name: relative to xl/, or absolute from the root. */
static char *s_part_name(const char *target) {
    char buf[512];
    if (target[0] == '/')
        snprintf(buf, sizeof buf, "%s", target + 1);
    else if (!strncmp(target, "../", 3))
        snprintf(buf, sizeof buf, "%s", target + 3);
    else
        snprintf(buf, sizeof buf, "xl/%s", target);
    return s_strdup(buf);
}

static int s_ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

static void XMLCALL s_rels_start(void *ud, const XML_Char *name, const XML_Char **atts) {
    s_xml_t *x = ud;
    s_book_t *b = x->book;
    if (strcmp(s_local(name), "Relationship") != 0)
        return;
    const char *id = s_attr(atts, "Id"), *target = s_attr(atts, "Target");
    const char *type = s_attr(atts, "Type");
    if (!id || !target || !type)
        return;
    if (b->want_rid && !strcmp(id, b->want_rid) && !b->sheet_part)
        b->sheet_part = s_part_name(target);
    else if (s_ends_with(type, "/sharedStrings") && !b->strings_part)
        b->strings_part = s_part_name(target);
    else if (s_ends_with(type, "/styles") && !b->styles_part)
        b->styles_part = s_part_name(target);
}

/* ---------------------------------------------------------------- shared strings */

typedef struct {
    s_xml_t x;
    int in_si, in_t, in_ph; /* inside <si>, <t>, <rPh> (phonetic guide, skipped) */
    s_buf_t text;           /* the string being read */
} s_sst_t;

static void XMLCALL s_sst_start(void *ud, const XML_Char *name, const XML_Char **atts) {
    s_sst_t *s = ud;
    const char *n = s_local(name);
    if (!strcmp(n, "si")) {
        s->in_si = 1;
        s_buf_clear(&s->text);
        s_buf_add(&s->text, "", 0);
    } else if (!strcmp(n, "rPh")) {
        s->in_ph++;
    } else if (!strcmp(n, "t") && s->in_si && !s->in_ph) {
        s->in_t = 1;
    }
}

static void XMLCALL s_sst_end(void *ud, const XML_Char *name) {
    s_sst_t *s = ud;
    s_book_t *b = s->x.book;
    const char *n = s_local(name);
    if (!strcmp(n, "t")) {
        s->in_t = 0;
    } else if (!strcmp(n, "rPh")) {
        s->in_ph--;
    } else if (!strcmp(n, "si") && s->in_si) {
        s->in_si = 0;
        if (++b->nvalues > S_MAX_VALUES) {
            s_stop(&s->x,
                   "the workbook has more than 2,000,000 shared strings%s; split it",
                   NULL);
            return;
        }
        if (b->nstrings == b->capstrings) {
            b->capstrings = b->capstrings ? b->capstrings * 2 : 256;
            b->strings = realloc(b->strings, b->capstrings * sizeof *b->strings);
            if (!b->strings)
                s_oom();
        }
        b->strings[b->nstrings++] = s_strdup(s->text.p);
    }
}

static void XMLCALL s_sst_text(void *ud, const XML_Char *s, int len) {
    s_sst_t *st = ud;
    if (st->in_t)
        s_buf_add(&st->text, s, (size_t)len);
}

/* ---------------------------------------------------------------- styles */

typedef struct {
    s_xml_t x;
    int in_xfs; /* inside <cellXfs> */
} s_styles_t;

/* 1 when an Excel number format code shows a date or a time: it has y, m, d, h or s
   outside quoted text, [colour]/[$-locale] sections and escaped characters. */
static int s_format_is_date(const char *code) {
    int quoted = 0, bracket = 0;
    for (const char *p = code; *p; p++) {
        char c = *p;
        if (c == '"')
            quoted = !quoted;
        else if (quoted)
            continue;
        else if (c == '[')
            bracket = 1;
        else if (c == ']')
            bracket = 0;
        else if (bracket)
            continue;
        else if (c == '\\' && p[1])
            p++;
        else if (strchr("ymdhsYMDHS", c))
            return 1;
    }
    return 0;
}

/* Built-in number formats that are dates or times: 14-22 and 45-47 everywhere, 27-36 and
   50-58 in the Chinese, Japanese and Korean editions (年月日 formats). */
static int s_builtin_is_date(int id) {
    return (id >= 14 && id <= 22) || (id >= 27 && id <= 36) || (id >= 45 && id <= 47) ||
           (id >= 50 && id <= 58);
}

static void XMLCALL s_styles_start(void *ud, const XML_Char *name,
                                   const XML_Char **atts) {
    s_styles_t *s = ud;
    s_book_t *b = s->x.book;
    const char *n = s_local(name);
    if (!strcmp(n, "numFmt")) {
        const char *id = s_attr(atts, "numFmtId"), *code = s_attr(atts, "formatCode");
        if (id && code && s_format_is_date(code)) {
            if (b->nfmt == b->capfmt) {
                b->capfmt = b->capfmt ? b->capfmt * 2 : 16;
                b->fmt_ids = realloc(b->fmt_ids, b->capfmt * sizeof *b->fmt_ids);
                if (!b->fmt_ids)
                    s_oom();
            }
            b->fmt_ids[b->nfmt++] = atoi(id);
        }
    } else if (!strcmp(n, "cellXfs")) {
        s->in_xfs = 1;
    } else if (!strcmp(n, "xf") && s->in_xfs) {
        const char *id = s_attr(atts, "numFmtId");
        int fid = id ? atoi(id) : 0, date = s_builtin_is_date(fid);
        for (size_t i = 0; i < b->nfmt && !date; i++)
            date = b->fmt_ids[i] == fid;
        if (b->nxf == b->capxf) {
            b->capxf = b->capxf ? b->capxf * 2 : 64;
            b->xf_date = realloc(b->xf_date, b->capxf);
            if (!b->xf_date)
                s_oom();
        }
        b->xf_date[b->nxf++] = (unsigned char)date;
    }
}

static void XMLCALL s_styles_end(void *ud, const XML_Char *name) {
    s_styles_t *s = ud;
    if (!strcmp(s_local(name), "cellXfs"))
        s->in_xfs = 0;
}

/* ---------------------------------------------------------------- the sheet */

typedef struct {
    s_xml_t x;
    int in_data;      /* inside <sheetData> */
    int in_v, in_t;   /* collecting <v>, or <t> of an inline string */
    int in_is, in_ph; /* inside <is>, inside <rPh> */
    int in_cell;      /* inside <c> */
    size_t row_line;  /* current row number */
    size_t col;       /* current cell's column (0-based) */
    char type[16];    /* current cell's t attribute */
    size_t style;     /* current cell's s attribute */
    s_row_t *row;     /* the row being read (the book's), NULL outside a row */
    s_buf_t text;     /* the cell's <v> or inline text */
} s_sheet_rd_t;

/* "BC12" -> column 54 (0-based) and row 12. Returns 0, or -1 when malformed. */
static int s_cell_ref(const char *ref, size_t *col, size_t *row) {
    size_t c = 0, r = 0, i = 0;
    for (; ref[i] >= 'A' && ref[i] <= 'Z'; i++) {
        c = c * 26 + (size_t)(ref[i] - 'A' + 1);
        if (c > 100000)
            return -1;
    }
    if (i == 0)
        return -1;
    size_t digits = 0;
    for (; ref[i] >= '0' && ref[i] <= '9'; i++, digits++) {
        r = r * 10 + (size_t)(ref[i] - '0');
        if (r > 100000000)
            return -1;
    }
    if (ref[i] || (row && digits == 0))
        return -1;
    *col = c - 1;
    if (row)
        *row = r;
    return 0;
}

/* Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm). */
static void s_civil(long z, int *y, unsigned *m, unsigned *d) {
    z += 719468;
    long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long yy = (long)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (*m <= 2));
}

/* An Excel serial date as ISO 8601 text: a date, a time, or both. Returns 0, or -1 when
   the serial is outside years 1900..9999. */
static int s_serial_date(double v, int date1904, char *out, size_t outsz) {
    if (!(v >= 0 && v < 2958466))
        return -1;
    double days = floor(v);
    long secs = lround((v - days) * 86400.0);
    if (secs == 86400) {
        days += 1;
        secs = 0;
    }
    /* 1900 system: serial 1 is 1900-01-01, and Lotus' 29 February 1900 (serial 60) is
       counted, so serials from 61 on are days since 1899-12-30. */
    long unix_days = date1904 ? (long)days - 24107
                              : (days >= 61 ? (long)days - 25569 : (long)days - 25568);
    int y;
    unsigned m, d;
    s_civil(unix_days, &y, &m, &d);
    if (days == 0 && !date1904)
        snprintf(out, outsz, "%02ld:%02ld:%02ld", secs / 3600, secs / 60 % 60, secs % 60);
    else if (secs == 0)
        snprintf(out, outsz, "%04d-%02u-%02u", y, m, d);
    else
        snprintf(out, outsz, "%04d-%02u-%02uT%02ld:%02ld:%02ld", y, m, d, secs / 3600,
                 secs / 60 % 60, secs % 60);
    return 0;
}

/* Starts row `line` in the book's row, emptied. */
static s_row_t *s_begin_row(s_book_t *b, size_t line) {
    s_row_t *r = &b->row;
    for (size_t c = 0; c < r->n; c++) {
        free(r->cells[c]);
        r->cells[c] = NULL;
    }
    r->n = 0;
    r->line = line;
    return r;
}

static void s_set_cell(s_row_t *r, size_t col, char *text) {
    if (col >= r->cap) {
        size_t cap = r->cap ? r->cap : 8;
        while (cap <= col)
            cap *= 2;
        r->cells = realloc(r->cells, cap * sizeof *r->cells);
        if (!r->cells)
            s_oom();
        memset(r->cells + r->cap, 0, (cap - r->cap) * sizeof *r->cells);
        r->cap = cap;
    }
    free(r->cells[col]);
    r->cells[col] = text;
    if (col + 1 > r->n)
        r->n = col + 1;
}

/* The text of the cell that just ended, or NULL for an empty one. */
static char *s_cell_text(s_sheet_rd_t *s) {
    s_book_t *b = s->x.book;
    const char *v = s->text.p ? s->text.p : "";
    const char *t = s->type;
    if (!strcmp(t, "s")) {
        char *end;
        unsigned long i = strtoul(v, &end, 10);
        if (end == v || *end || i >= b->nstrings) {
            s_stop(&s->x,
                   "the .xlsx file is damaged: a cell refers to shared string %s, "
                   "which does not exist",
                   v);
            return NULL;
        }
        return s_strdup(b->strings[i]);
    }
    if (!strcmp(t, "inlineStr") || !strcmp(t, "str") || !strcmp(t, "d"))
        return s_strdup(v);
    if (!strcmp(t, "b"))
        return s_strdup(!strcmp(v, "1") ? "true" : "false");
    if (!strcmp(t, "e") || !*v)
        return NULL;
    /* A number, exactly as written: Excel writes the shortest text that reads back as
       the same double, so 13800138000 stays 13800138000. An integral value is written
       without an exponent or ".0" whoever wrote the file. */
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !isfinite(d))
        return s_strdup(v);
    char buf[64];
    if (s->style < b->nxf && b->xf_date[s->style] &&
        s_serial_date(d, b->date1904, buf, sizeof buf) == 0)
        return s_strdup(buf);
    if (d == floor(d) && fabs(d) < 1e15) {
        snprintf(buf, sizeof buf, "%.0f", d);
        return s_strdup(buf);
    }
    return s_strdup(v);
}

static void XMLCALL s_sheet_start(void *ud, const XML_Char *name, const XML_Char **atts) {
    s_sheet_rd_t *s = ud;
    s_book_t *b = s->x.book;
    const char *n = s_local(name);
    if (!strcmp(n, "sheetData")) {
        s->in_data = 1;
    } else if (!strcmp(n, "row") && s->in_data) {
        const char *r = s_attr(atts, "r");
        size_t line = s->row_line + 1;
        if (r) {
            char *end;
            unsigned long v = strtoul(r, &end, 10);
            if (end == r || *end || v == 0 || v > 100000000) {
                s_stop(&s->x, "the .xlsx file is damaged: bad row number \"%s\"", r);
                return;
            }
            line = v;
        }
        s->row_line = line;
        s->row = s_begin_row(b, line);
        s->col = (size_t)-1;
    } else if (!strcmp(n, "c") && s->row) {
        const char *r = s_attr(atts, "r"), *t = s_attr(atts, "t"),
                   *st = s_attr(atts, "s");
        size_t col = s->col + 1, rr = 0;
        if (r && s_cell_ref(r, &col, &rr) != 0) {
            s_stop(&s->x, "the .xlsx file is damaged: bad cell reference \"%s\"", r);
            return;
        }
        if (col >= LF_IMPORT_MAX_COLUMNS) {
            s_stop(&s->x,
                   "the sheet has a cell beyond column %s; at most 1024 columns "
                   "are read",
                   r ? r : "1024");
            return;
        }
        s->col = col;
        snprintf(s->type, sizeof s->type, "%s", t ? t : "n");
        s->style = st ? strtoul(st, NULL, 10) : 0;
        s->in_cell = 1;
        s_buf_clear(&s->text);
    } else if (s->in_cell && !strcmp(n, "v")) {
        s->in_v = 1;
    } else if (s->in_cell && !strcmp(n, "is")) {
        s->in_is = 1;
    } else if (s->in_is && !strcmp(n, "rPh")) {
        s->in_ph++;
    } else if (s->in_is && !s->in_ph && !strcmp(n, "t")) {
        s->in_t = 1;
    }
}

static void s_row_done(s_sheet_rd_t *s);

static void XMLCALL s_sheet_end(void *ud, const XML_Char *name) {
    s_sheet_rd_t *s = ud;
    const char *n = s_local(name);
    if (!strcmp(n, "sheetData")) {
        s->in_data = 0;
        s->row = NULL;
    } else if (!strcmp(n, "row")) {
        if (s->row)
            s_row_done(s);
        s->row = NULL;
    } else if (!strcmp(n, "c") && s->in_cell) {
        s->in_cell = 0;
        char *text = s_cell_text(s);
        if (text && s->row)
            s_set_cell(s->row, s->col, text);
        else
            free(text);
    } else if (!strcmp(n, "v")) {
        s->in_v = 0;
    } else if (!strcmp(n, "is")) {
        s->in_is = 0;
    } else if (!strcmp(n, "rPh")) {
        if (s->in_ph)
            s->in_ph--;
    } else if (!strcmp(n, "t")) {
        s->in_t = 0;
    }
}

static void XMLCALL s_sheet_text(void *ud, const XML_Char *t, int len) {
    s_sheet_rd_t *s = ud;
    if (s->in_v || s->in_t)
        s_buf_add(&s->text, t, (size_t)len);
}

/* The merged ranges of the sheet, read in a pass of their own before the rows: they are
   listed after the cells (<mergeCells> follows <sheetData>), and a row goes out as soon
   as it is read. */
static void XMLCALL s_merge_start(void *ud, const XML_Char *name, const XML_Char **atts) {
    s_sheet_rd_t *s = ud;
    s_book_t *b = s->x.book;
    if (strcmp(s_local(name), "mergeCell"))
        return;
    const char *ref = s_attr(atts, "ref");
    char a[32], c[32];
    size_t r1, c1, r2, c2;
    if (!ref || b->nmerges >= S_MAX_MERGES ||
        sscanf(ref, "%31[A-Z0-9]:%31[A-Z0-9]", a, c) != 2 ||
        s_cell_ref(a, &c1, &r1) != 0 || s_cell_ref(c, &c2, &r2) != 0 || r1 == 0 ||
        r2 < r1 || c2 < c1)
        return;
    if (!b->merges) {
        b->merges = calloc(S_MAX_MERGES, sizeof *b->merges);
        if (!b->merges)
            s_oom();
    }
    size_t *m = b->merges[b->nmerges++];
    m[0] = r1, m[1] = c1, m[2] = r2, m[3] = c2;
}

/* Merges by first row, then by their place in the sheet (qsort_r's order). */
static int s_merge_cmp(const void *x, const void *y, void *arg) {
    const s_book_t *b = arg;
    size_t i = *(const size_t *)x, j = *(const size_t *)y;
    size_t ri = b->merges[i][0], rj = b->merges[j][0];
    return ri != rj ? (ri < rj ? -1 : 1) : (i > j) - (i < j);
}

/* Gives the cells of the row just read that lie in a merged range the value of the
   range's top-left cell (read when its row was). Rows come in ascending order, so only
   the ranges over the current row are looked at: those whose first row is reached are
   started in order of first row (a range whose first row is not in the sheet never
   gets a value, and is dropped), and a range is dropped after its last row. The cells
   filled (or passed over) in all are capped, so a file full of merged ranges costs
   bounded time. A title typed into a row-wide merged cell stays one cell, so that it is
   not taken for a header row. */
static void s_fill_merges(s_book_t *b) {
    s_row_t *r = &b->row;
    while (b->merge_next < b->nmerges &&
           b->merges[b->merge_order[b->merge_next]][0] <= r->line) {
        size_t k = b->merge_order[b->merge_next++];
        if (b->merges[k][0] == r->line)
            b->merge_act[b->nact++] = k;
    }
    size_t keep = 0;
    for (size_t a = 0; a < b->nact; a++) {
        size_t k = b->merge_act[a];
        size_t r1 = b->merges[k][0], c1 = b->merges[k][1];
        size_t r2 = b->merges[k][2], c2 = b->merges[k][3];
        if (b->merge_off[k] || r->line > r2 || c2 >= LF_IMPORT_MAX_COLUMNS ||
            b->merge_budget == 0)
            continue; /* dropped */
        if (r->line == r1) {
            size_t filled = 0;
            for (size_t c = 0; c < r->n; c++)
                filled += r->cells[c] != NULL;
            if (c1 >= r->n || !r->cells[c1] || (r1 == r2 && filled == 1) ||
                (r2 - r1 + 1) * (c2 - c1 + 1) > b->merge_budget) {
                b->merge_off[k] = 1;
                continue;
            }
            free(b->merge_value[k]); /* a row number written twice: the last wins */
            b->merge_value[k] = s_strdup(r->cells[c1]);
        }
        if (r->line >= r1 && b->merge_value[k])
            for (size_t c = c1; c <= c2 && b->merge_budget > 0; c++, b->merge_budget--)
                if (!(r->line == r1 && c == c1) && (c >= r->n || !r->cells[c]))
                    s_set_cell(r, c, s_strdup(b->merge_value[k]));
        if (r->line <= r2)
            b->merge_act[keep++] = k;
    }
    b->nact = keep;
}

/* A row has been read: merged cells filled, then handed on (lf_sheet_rows_add). */
static void s_row_done(s_sheet_rd_t *s) {
    s_book_t *b = s->x.book;
    if (b->nmerges)
        s_fill_merges(b);
    lf_sheet_row_t row = {b->row.line, b->row.n, (const char **)b->row.cells};
    if (lf_sheet_rows_add(b->out, &row, b->why, b->whysz) < 0) {
        b->failed = 1;
        XML_StopParser(s->x.p, XML_FALSE);
    }
}

/* ---------------------------------------------------------------- entry points */

int lf_xlsx_sniff(const char *body, size_t len) {
    return body && len >= 4 && !memcmp(body, "PK\x03\x04", 4);
}

int lf_xls_sniff(const char *body, size_t len) {
    return body && len >= 8 && !memcmp(body, "\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", 8);
}

static void s_book_free(s_book_t *b) {
    for (size_t i = 0; i < b->nsheets; i++) {
        free(b->sheets[i].name);
        free(b->sheets[i].rid);
    }
    free(b->sheets);
    free(b->sheet_part);
    free(b->strings_part);
    free(b->styles_part);
    for (size_t i = 0; i < b->nstrings; i++)
        free(b->strings[i]);
    free(b->strings);
    free(b->xf_date);
    free(b->fmt_ids);
    for (size_t c = 0; c < b->row.n; c++)
        free(b->row.cells[c]);
    free(b->row.cells);
    for (size_t k = 0; b->merge_value && k < b->nmerges; k++)
        free(b->merge_value[k]);
    free(b->merge_value);
    free(b->merge_off);
    free(b->merge_order);
    free(b->merge_act);
    free(b->merges);
    lf_sheet_rows_destroy(&b->out);
    if (b->zip)
        zip_discard(b->zip);
}

int lf_xlsx_rows(const char *body, size_t len, const char *sheet, size_t max_unpacked,
                 lf_import_row_fn fn, void *arg, char *why, size_t whysz) {
    s_book_t b = {
        .left = max_unpacked, .limit = max_unpacked, .why = why, .whysz = whysz};
    int result = -1;
    if (!lf_xlsx_sniff(body, len)) {
        s_fail(&b, "not an .xlsx file (an .xlsx file is a zip archive)%s", NULL);
        return -1;
    }
    zip_error_t zerr;
    zip_error_init(&zerr);
    zip_source_t *src = zip_source_buffer_create(body, len, 0, &zerr);
    if (!src)
        s_oom();
    b.zip = zip_open_from_source(src, ZIP_RDONLY, &zerr);
    if (!b.zip) {
        zip_source_free(src);
        zip_error_fini(&zerr);
        s_fail(&b, "not an .xlsx file: the zip archive cannot be read%s", NULL);
        return -1;
    }
    zip_error_fini(&zerr);

    s_xml_t x = {0};
    if (s_read_part(&b, "xl/workbook.xml", 0, &x, s_wb_start, s_ignore_end, NULL) != 0)
        goto out;
    if (b.nsheets == 0) {
        s_fail(&b, "the workbook has no sheets%s", NULL);
        goto out;
    }
    const s_sheet_t *chosen = &b.sheets[0];
    if (sheet && *sheet) {
        chosen = NULL;
        for (size_t i = 0; i < b.nsheets && !chosen; i++)
            if (!strcmp(b.sheets[i].name, sheet))
                chosen = &b.sheets[i];
        if (!chosen) {
            char names[200] = "";
            for (size_t i = 0; i < b.nsheets && strlen(names) < 150; i++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s\"%s\"",
                         i ? ", " : "", b.sheets[i].name);
            char msg[400];
            snprintf(msg, sizeof msg,
                     "the workbook has no sheet named \"%.60s\" (it has %s)", sheet,
                     names);
            s_fail(&b, "%s", msg);
            goto out;
        }
    }
    b.want_rid = chosen->rid;
    if (s_read_part(&b, "xl/_rels/workbook.xml.rels", 0, &x, s_rels_start, s_ignore_end,
                    NULL) != 0)
        goto out;
    if (!b.sheet_part) {
        s_fail(&b, "the .xlsx file is damaged: sheet \"%s\" has no part", chosen->name);
        goto out;
    }
    if (b.strings_part) {
        s_sst_t sst = {0};
        int rc = s_read_part(&b, b.strings_part, 1, &sst.x, s_sst_start, s_sst_end,
                             s_sst_text);
        free(sst.text.p);
        if (rc < 0)
            goto out;
    }
    if (b.styles_part) {
        s_styles_t sty = {0};
        if (s_read_part(&b, b.styles_part, 1, &sty.x, s_styles_start, s_styles_end,
                        NULL) < 0)
            goto out;
    }
    /* First the merged ranges (listed after the cells), then the cells, row by row:
       the sheet is inflated twice, and counted once against the cap (the first pass
       showed that it fits). */
    s_sheet_rd_t mp = {0};
    size_t before = b.left;
    if (s_read_part(&b, b.sheet_part, 0, &mp.x, s_merge_start, s_ignore_end, NULL) != 0)
        goto out;
    b.left = before;
    if (b.nmerges) {
        b.merge_value = calloc(b.nmerges, sizeof *b.merge_value);
        b.merge_off = calloc(b.nmerges, 1);
        b.merge_order = calloc(b.nmerges, sizeof *b.merge_order);
        b.merge_act = calloc(b.nmerges, sizeof *b.merge_act);
        if (!b.merge_value || !b.merge_off || !b.merge_order || !b.merge_act)
            s_oom();
        for (size_t k = 0; k < b.nmerges; k++)
            b.merge_order[k] = k;
        qsort_r(b.merge_order, b.nmerges, sizeof *b.merge_order, s_merge_cmp, &b);
        b.merge_budget = S_MAX_MERGE_CELLS;
    }
    b.out = lf_sheet_rows_new(fn, arg);
    s_sheet_rd_t rd = {0};
    int rc =
        s_read_part(&b, b.sheet_part, 0, &rd.x, s_sheet_start, s_sheet_end, s_sheet_text);
    free(rd.text.p);
    if (rc != 0 || lf_sheet_rows_finish(b.out, why, whysz) < 0)
        goto out;
    result = 0;
out:
    s_book_free(&b);
    return result;
}

lf_import_t *lf_import_xlsx(const char *body, size_t len, const char *sheet,
                            size_t max_unpacked, char *why, size_t whysz) {
    lf_import_row_fn fn;
    lf_import_t *imp = lf_import_collector(&fn);
    if (lf_xlsx_rows(body, len, sheet, max_unpacked, fn, imp, why, whysz) < 0)
        lf_import_destroy(&imp);
    return imp;
}
