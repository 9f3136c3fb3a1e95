/* import.c - POST /v1/leads/import: trade-show lists as CSV, NDJSON or .xlsx.
 *
 * CSV and NDJSON are parsed as the body arrives: http.c hands each piece of the body to
 * lf_import_body from libmicrohttpd's upload callback, csv_import.c makes rows of it, and
 * each row is checked (lf_lead_canonical) as soon as it is complete. A good row is
 * written as compact JSON to an unlinked temporary file (the spool, in $TMPDIR or /tmp,
 * deflated);
 * a bad one keeps only its errors. Only when the whole body is in and the file is known
 * to be good (no file-level problem, at most LEADFLOW_IMPORT_MAX_ROWS rows) are the
 * spooled rows committed: read back in file order and handed to the group committer, at
 * most LEADFLOW_IMPORT_WINDOW at a time, the connection suspended meanwhile and the HTTP
 * thread free. A bad file, or one over the row cap, stores nothing.
 *
 * An .xlsx workbook is a zip whose table of contents (the central directory) is at its
 * end, so it cannot be read as it arrives: it is buffered whole (LEADFLOW_MAX_IMPORT at
 * most, unpacked within LEADFLOW_XLSX_MAX_UNPACKED) and its rows then take the same path.
 *
 * Memory while a CSV or NDJSON import runs, whatever the size of its body: a 64-byte
 * record per data row (row number, status, lead id) plus the text of a bad row's errors,
 * a 16-byte entry per phone and e-mail (kept at most half full) for the same-person order
 * below, one row being parsed (LF_IMPORT_MAX_ROW_BYTES at most) and a 64 KiB piece, the
 * window's rows in the committer, and at the end the answer's text (about 70 bytes per
 * row). At the default cap of 100,000 rows that is about 25 MiB at most.
 *
 * Each row carries an idempotency key derived from the SHA-256 of the file and its row
 * number (or from the request's Idempotency-Key): importing the same file again returns
 * the same leads as "duplicate". A later row of the same person (same phone or e-mail)
 * is not handed to the committer before the earlier one is answered, so the file's order
 * decides which row creates the lead and which is merged into it. */
#include <errno.h>
#include <stdarg.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "csv_import.h"
#include "intake.h"
#include "lf/lead.h"
#include "lf/log.h"
#include "lf/util.h"
#include "parse.h"
#include "xlsx.h"

enum { S_REJECTED, S_PENDING, S_CREATED, S_DUPLICATE, S_MERGED, S_UNAVAILABLE };

/* One data row of the file, as the answer will report it. */
typedef struct {
    uint32_t line;  /* the row number a spreadsheet shows */
    uint8_t status; /* S_* */
    int32_t after;  /* the same person's earlier row (index), or -1 */
    char *errors;   /* S_REJECTED: the errors array as JSON text (owned) */
    char id[40];    /* the lead id answered */
} s_row_t;

/* A phone or e-mail seen in a good row: the last row (index) that had it. Keys are
 * 64-bit hashes: two values sharing one only makes a row wait for a row it did not
 * need to, never the reverse. */
typedef struct {
    uint64_t key; /* 0: empty */
    int32_t row;
} s_seen_t;

typedef struct {
    lf_intake_t *in;             /* borrowed */
    struct MHD_Connection *conn; /* borrowed; suspended while rows are committed */
    lf_import_parser_t *parser;  /* while a CSV/NDJSON body arrives (owned) */
    EVP_MD_CTX *sha;             /* SHA-256 of the body so far (owned) */
    char dflt[32], forced[32];   /* default and forced channel ("" none) */
    size_t max_rows;             /* 0: no cap */
    s_row_t *rows;               /* every data row up to the cap (owned) */
    size_t nrows, rows_cap;      /* used, allocated */
    size_t total;                /* data rows in the file, counted past the cap */
    size_t accepted, rejected;   /* good rows spooled, bad rows */
    s_seen_t *seen;              /* open addressing, seen_cap a power of two */
    size_t seen_n, seen_cap;     /* used, allocated */
    gzFile spool;                /* good rows: u32 row index, u32 length, JSON text */
    int spool_fd;                /* the spool's file, until the reader owns it; or -1 */
    int spool_failed;            /* the spool could not be made or written */
    char idem[340];              /* idempotency key prefix of every row */
    pthread_mutex_t lock;        /* guards what follows, once committing */
    int committing;              /* the body is in; rows go to the committer */
    lf_job_t *slots;             /* the window: jobs in the committer (owned) */
    size_t nslots;               /* entries in slots */
    size_t *slot_row;            /* slots[i] answers rows[slot_row[i]] */
    size_t *free_slots, nfree;   /* slots not in use */
    size_t submitted, done;      /* spooled rows handed out, answered */
    int peeked;                  /* peek_row/peek_text: the next spooled row */
    uint32_t peek_row;
    char *peek_text; /* owned */
    int resumed;     /* the connection was resumed for the answer */
} s_import_t;

static void s_free(void *arg) {
    s_import_t *st = arg;
    lf_import_parser_destroy(&st->parser);
    EVP_MD_CTX_free(st->sha);
    for (size_t i = 0; i < st->nrows; i++)
        free(st->rows[i].errors);
    free(st->rows);
    free(st->seen);
    if (st->spool)
        gzclose(st->spool);
    if (st->spool_fd >= 0)
        close(st->spool_fd);
    for (size_t i = 0; i < st->nslots; i++)
        json_decref(st->slots[i].row);
    free(st->slots);
    free(st->slot_row);
    free(st->free_slots);
    free(st->peek_text);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

/* An unlinked temporary file, gone with the request or the process whatever happens,
 * written through zlib (level 1: the rows are repetitive JSON and shrink several times,
 * so that a small tmpfs holds a whole import). Returns 0, or -1 with errno. */
static int s_spool_open(s_import_t *st) {
    const char *dir = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/leadflow-import.XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    unlink(path);
    int w = dup(fd);
    st->spool = w >= 0 ? gzdopen(w, "wb1") : NULL;
    if (!st->spool) {
        if (w >= 0)
            close(w);
        close(fd);
        return -1;
    }
    st->spool_fd = fd;
    return 0;
}

/* The written spool, ready to be read from its start. Returns 0 or -1. */
static int s_spool_rewind(s_import_t *st) {
    int rc = gzclose(st->spool) == Z_OK ? 0 : -1;
    st->spool = NULL;
    if (rc == 0 && lseek(st->spool_fd, 0, SEEK_SET) == 0 &&
        (st->spool = gzdopen(st->spool_fd, "rb")))
        st->spool_fd = -1; /* the reader owns it */
    return st->spool ? rc : -1;
}

static uint64_t s_hash(char kind, const char *v) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    h = (h ^ (unsigned char)kind) * 1099511628211ull;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h ? h : 1;
}

/* The slot of key in the table (its own, or the empty one where it goes). */
static s_seen_t *s_seen_slot(s_seen_t *t, size_t cap, uint64_t key) {
    size_t i = (size_t)(key * 0x9E3779B97F4A7C15ull) & (cap - 1);
    while (t[i].key && t[i].key != key)
        i = (i + 1) & (cap - 1);
    return &t[i];
}

/* Records that row idx has this value; returns the last earlier row with it, or -1. */
static int32_t s_seen_put(s_import_t *st, char kind, const char *v, int32_t idx) {
    if (2 * (st->seen_n + 1) > st->seen_cap) {
        size_t cap = st->seen_cap ? st->seen_cap * 2 : 1024;
        s_seen_t *t = lf_calloc(cap, sizeof *t);
        for (size_t i = 0; i < st->seen_cap; i++)
            if (st->seen[i].key)
                *s_seen_slot(t, cap, st->seen[i].key) = st->seen[i];
        free(st->seen);
        st->seen = t;
        st->seen_cap = cap;
    }
    s_seen_t *s = s_seen_slot(st->seen, st->seen_cap, s_hash(kind, v));
    int32_t prev = s->key ? s->row : -1;
    if (!s->key)
        st->seen_n++;
    s->key = s_hash(kind, v);
    s->row = idx;
    return prev;
}

static void s_spool(s_import_t *st, uint32_t idx, const char *text) {
    if (!st->spool && !st->spool_failed && s_spool_open(st) < 0) {
        lf_error("import spool cannot be created in %s: %s",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", strerror(errno));
        st->spool_failed = 1;
    }
    if (st->spool_failed)
        return;
    uint32_t len = (uint32_t)strlen(text);
    if (gzwrite(st->spool, &idx, sizeof idx) != (int)sizeof idx ||
        gzwrite(st->spool, &len, sizeof len) != (int)sizeof len ||
        gzwrite(st->spool, text, len) != (int)len) {
        lf_error("import spool cannot be written: %s", strerror(errno));
        st->spool_failed = 1;
    }
}

/* A parsed row (lf_import_row_fn): checked now, spooled when good. */
static void s_on_row(void *arg, size_t line, const json_t *obj, const char *err) {
    s_import_t *st = arg;
    st->total++;
    if (st->max_rows && st->total > st->max_rows)
        return; /* over the cap: only counted, for the message */
    if (st->nrows == st->rows_cap) {
        st->rows_cap = st->rows_cap ? st->rows_cap * 2 : 256;
        st->rows = lf_realloc(st->rows, st->rows_cap * sizeof *st->rows);
    }
    uint32_t idx = (uint32_t)st->nrows++;
    s_row_t *r = &st->rows[idx];
    memset(r, 0, sizeof *r);
    r->line = (uint32_t)line;
    r->after = -1;
    r->status = S_REJECTED;
    json_t *errors = json_array();
    if (!obj) {
        lf_field_error(errors, "row", "invalid", err ? err : "row cannot be read");
        r->errors = json_dumps(errors, JSON_COMPACT);
        json_decref(errors);
        st->rejected++;
        return;
    }
    json_t *lead =
        lf_lead_canonical(obj, st->dflt, st->forced[0] ? st->forced : NULL, errors);
    if (!lead) {
        r->errors = json_dumps(errors, JSON_COMPACT);
        json_decref(errors);
        st->rejected++;
        return;
    }
    json_decref(errors);
    const char *keys[] = {"phone", "email"};
    for (int k = 0; k < 2; k++) {
        const char *v = json_string_value(json_object_get(lead, keys[k]));
        if (!v)
            continue;
        int32_t prev = s_seen_put(st, keys[k][0], v, (int32_t)idx);
        if (prev > r->after)
            r->after = prev;
    }
    char lead_id[40];
    lf_uuid7(lead_id);
    json_t *row = lf_lead_row(lead, lead_id, obj, NULL);
    json_decref(lead);
    char *text = json_dumps(row, JSON_COMPACT);
    json_decref(row);
    s_spool(st, idx, text ? text : "{}");
    free(text);
    r->status = S_PENDING;
    st->accepted++;
}

static s_import_t *s_new(lf_intake_t *in, lf_req_t *req) {
    s_import_t *st = lf_calloc(1, sizeof *st);
    pthread_mutex_init(&st->lock, NULL);
    st->spool_fd = -1;
    st->in = in;
    st->conn = req->conn;
    st->max_rows = in->import_max_rows > 0 ? (size_t)in->import_max_rows : 0;
    const lf_auth_t *auth = &req->auth;
    lf_strlcpy(st->dflt, auth->channel[0] ? auth->channel : "trade_show",
               sizeof st->dflt);
    if (auth->channel[0] && !auth->is_admin)
        lf_strlcpy(st->forced, auth->channel, sizeof st->forced);
    st->sha = EVP_MD_CTX_new();
    if (!st->sha || EVP_DigestInit_ex(st->sha, EVP_sha256(), NULL) != 1) {
        fprintf(stderr, "FATAL SHA-256 cannot start\n");
        abort();
    }
    req->ext = st;
    req->ext_free = s_free;
    return st;
}

static void s_bytes(s_import_t *st, const char *data, size_t len) {
    EVP_DigestUpdate(st->sha, data, len);
    if (st->parser)
        lf_import_parser_feed(st->parser, data, len);
}

/* CSV (0), NDJSON (1), or -1 for what is not parsed as it arrives (.xlsx, .xls, another
 * media type, an NDJSON charset other than UTF-8). */
static int s_kind(lf_req_t *req, const char *head, size_t len, char *charset,
                  size_t charsetsz) {
    const char *ct = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
    char media[96];
    if (lf_parse_content_type(ct, media, sizeof media, charset, charsetsz) < 0)
        return -1;
    if (lf_xlsx_sniff(head, len) || lf_xls_sniff(head, len))
        return -1;
    if (!strcmp(media, "text/csv"))
        return 0;
    if ((!strcmp(media, "application/x-ndjson") ||
         !strcmp(media, "application/ndjson")) &&
        (!charset[0] || !strcmp(charset, "utf-8") || !strcmp(charset, "utf8")))
        return 1;
    return -1;
}

/* Upload callback (http.c): the first piece (at least 8 bytes, so that a workbook's
 * signature can be seen) decides; then every piece. Returns 1 when the bytes were
 * taken, 0 when the body is to be buffered whole instead. */
int lf_import_body(lf_intake_t *in, lf_req_t *req, const char *data, size_t len) {
    s_import_t *st = req->ext;
    if (!st) {
        char charset[32];
        int kind = s_kind(req, data, len, charset, sizeof charset);
        if (kind < 0)
            return 0;
        char why[256];
        st = s_new(in, req);
        st->parser = lf_import_parser_new(kind, charset, s_on_row, st, why, sizeof why);
        if (!st->parser) { /* an unknown charset: answered once the body is in */
            s_free(st);
            req->ext = NULL;
            req->ext_free = NULL;
            return 0;
        }
    }
    s_bytes(st, data, len);
    return 1;
}

/* ------------------------------------------------------------ committing */

static void s_done(lf_job_t *job);

/* Reads the next spooled row into peek_*. Returns 0, -1 when it cannot be read. */
static int s_peek(s_import_t *st) {
    uint32_t idx, len;
    if (gzread(st->spool, &idx, sizeof idx) != (int)sizeof idx ||
        gzread(st->spool, &len, sizeof len) != (int)sizeof len || idx >= st->nrows)
        return -1;
    st->peek_text = lf_malloc((size_t)len + 1);
    if (gzread(st->spool, st->peek_text, len) != (int)len) {
        free(st->peek_text);
        st->peek_text = NULL;
        return -1;
    }
    st->peek_text[len] = '\0';
    st->peek_row = idx;
    st->peeked = 1;
    return 0;
}

/* Keeps the window full. Called with st->lock held. Returns 1 when every row has its
 * answer and the connection must be resumed. */
static int s_pump(s_import_t *st) {
    while (st->submitted < st->accepted && st->nfree > 0) {
        if (!st->peeked && s_peek(st) < 0) {
            /* The spool lost rows (our own unlinked file: it should not): those not
             * handed out yet are unavailable, and the answer says to send it again. */
            lf_error("import spool cannot be read back: %zu rows unavailable",
                     st->accepted - st->submitted);
            char *inflight = lf_calloc(st->nrows + 1, 1);
            for (size_t s = 0; s < st->nslots; s++)
                if (st->slots[s].row)
                    inflight[st->slot_row[s]] = 1;
            for (size_t i = 0; i < st->nrows; i++)
                if (st->rows[i].status == S_PENDING && !inflight[i])
                    st->rows[i].status = S_UNAVAILABLE;
            free(inflight);
            st->done += st->accepted - st->submitted;
            st->submitted = st->accepted;
            break;
        }
        s_row_t *r = &st->rows[st->peek_row];
        if (r->after >= 0 && st->rows[r->after].status == S_PENDING)
            break; /* the same person's earlier row first */
        size_t slot = st->free_slots[--st->nfree];
        lf_job_t *job = &st->slots[slot];
        memset(job, 0, sizeof *job);
        job->row = json_loads(st->peek_text, JSON_ALLOW_NUL, NULL);
        free(st->peek_text);
        st->peek_text = NULL;
        st->peeked = 0;
        st->submitted++;
        st->slot_row[slot] = st->peek_row;
        const char *id = json_string_value(json_object_get(job->row, "id"));
        char idem[400];
        snprintf(idem, sizeof idem, "%s%u", st->idem, r->line);
        json_object_set_new(job->row, "idempotency_key", json_string(idem));
        job->done_fn = s_done;
        job->done_arg = st;
        if (id)
            lf_strlcpy(job->lead_id, id, sizeof job->lead_id);
        if (!id || lf_committer_submit(st->in->committer, job) < 0) {
            r->status = S_UNAVAILABLE;
            json_decref(job->row);
            job->row = NULL;
            st->free_slots[st->nfree++] = slot;
            st->done++;
        }
    }
    if (st->done == st->accepted && !st->resumed) {
        st->resumed = 1;
        return 1;
    }
    return 0;
}

/* Committer thread: one row is answered. */
static void s_done(lf_job_t *job) {
    s_import_t *st = job->done_arg;
    pthread_mutex_lock(&st->lock);
    size_t slot = (size_t)(job - st->slots);
    s_row_t *r = &st->rows[st->slot_row[slot]];
    if (job->status == 503 || !job->result) {
        r->status = S_UNAVAILABLE;
    } else {
        r->status = !strcmp(job->result, "created")     ? S_CREATED
                    : !strcmp(job->result, "duplicate") ? S_DUPLICATE
                                                        : S_MERGED;
        lf_strlcpy(r->id, job->result_id, sizeof r->id);
    }
    json_decref(job->row);
    job->row = NULL;
    st->free_slots[st->nfree++] = slot;
    st->done++;
    int resume = s_pump(st);
    struct MHD_Connection *conn = st->conn;
    pthread_mutex_unlock(&st->lock);
    if (resume)
        MHD_resume_connection(conn);
}

/* Appends to a growing text. */
static void s_cat(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void s_cat(char **buf, size_t *len, size_t *cap, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < *cap - *len) {
            *len += (size_t)n;
            return;
        }
        *cap = *cap * 2 + (n > 0 ? (size_t)n : 0);
        *buf = lf_realloc(*buf, *cap);
    }
}

/* The answer: every data row in file order, accepted or rejected (docs/intake.md). */
static enum MHD_Result s_answer(lf_intake_t *in, lf_req_t *req) {
    s_import_t *st = req->ext;
    static const char *const names[] = {"",          "",       "created",
                                        "duplicate", "merged", "unavailable"};
    size_t unavailable = 0;
    for (size_t i = 0; i < st->nrows; i++)
        unavailable += st->rows[i].status == S_UNAVAILABLE;
    size_t cap = 256 + st->nrows * 96, len = 0;
    char *buf = lf_malloc(cap);
    s_cat(&buf, &len, &cap, "{\"accepted\":%zu,\"rejected\":%zu,\"rows\":[",
          st->accepted - unavailable, st->rejected);
    for (size_t i = 0; i < st->nrows; i++) {
        const s_row_t *r = &st->rows[i];
        const char *sep = i ? "," : "";
        if (r->status == S_REJECTED)
            s_cat(&buf, &len, &cap, "%s{\"row\":%u,\"errors\":%s}", sep, r->line,
                  r->errors ? r->errors : "[]");
        else if (r->status == S_UNAVAILABLE || r->status == S_PENDING)
            s_cat(&buf, &len, &cap, "%s{\"row\":%u,\"status\":\"unavailable\"}", sep,
                  r->line);
        else
            s_cat(&buf, &len, &cap, "%s{\"row\":%u,\"id\":\"%s\",\"status\":\"%s\"}", sep,
                  r->line, r->id, names[r->status]);
    }
    s_cat(&buf, &len, &cap, "]");
    if (unavailable) {
        /* Some rows are not stored: never a 2xx. Re-sending the whole file is safe. */
        s_cat(&buf, &len, &cap,
              ",\"error\":\"unavailable\",\"message\":\"some rows could not be stored "
              "right now; import the same file again later (stored rows are not "
              "duplicated)\",\"unavailable\":%zu",
              unavailable);
    }
    s_cat(&buf, &len, &cap, "}");
    return lf_reply_text_json(in, req->conn, unavailable ? 503 : 200, buf);
}

/* A buffered body (an .xlsx workbook, a media type not parsed as it arrives, or a body
 * of fewer than 8 bytes): its rows into st, or an answer. Returns NULL after answering
 * (*answered). */
static s_import_t *s_buffered(lf_intake_t *in, lf_req_t *req, enum MHD_Result *answered) {
    const char *ct = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
    char media[96], charset[32], why[256] = "";
    if (lf_parse_content_type(ct, media, sizeof media, charset, sizeof charset) < 0) {
        *answered = lf_reply_error(in, req->conn, 415, "unsupported_media_type",
                                   "send text/csv or application/x-ndjson", NULL);
        return NULL;
    }
    /* Excel workbooks: .xlsx by its media type or, sent as bytes (or by a client that
       calls every spreadsheet text/csv), by its zip signature;
       the old binary .xls is refused with what to do instead. */
    int xlsx = !strcmp(media, LF_XLSX_MEDIA_TYPE) ||
               ((!strcmp(media, "application/octet-stream") ||
                 !strcmp(media, "application/zip") || !strcmp(media, "text/csv")) &&
                lf_xlsx_sniff(req->body, req->len));
    if (!strcmp(media, "application/vnd.ms-excel") || lf_xls_sniff(req->body, req->len)) {
        *answered =
            lf_reply_error(in, req->conn, 415, "unsupported_media_type",
                           "old Excel .xls files (and password-protected workbooks) are "
                           "not read: open the file in Excel, WPS or LibreOffice and "
                           "save it as .xlsx (Excel Workbook) or CSV UTF-8",
                           NULL);
        return NULL;
    }
    int ndjson =
        !strcmp(media, "application/x-ndjson") || !strcmp(media, "application/ndjson");
    if (!xlsx && !ndjson && strcmp(media, "text/csv")) {
        *answered = lf_reply_error(
            in, req->conn, 415, "unsupported_media_type",
            "send text/csv (charset utf-8, gb18030 or gbk), "
            "application/x-ndjson or an .xlsx workbook (" LF_XLSX_MEDIA_TYPE ")",
            NULL);
        return NULL;
    }
    if (ndjson && charset[0] && strcmp(charset, "utf-8") && strcmp(charset, "utf8")) {
        *answered = lf_reply_error(in, req->conn, 415, "unsupported_media_type",
                                   "NDJSON must be UTF-8", NULL);
        return NULL;
    }
    if (!xlsx) {
        s_import_t *st = s_new(in, req);
        st->parser = lf_import_parser_new(ndjson, charset, s_on_row, st, why, sizeof why);
        if (!st->parser) {
            /* An unknown charset is a media type we do not take. */
            int cs = strncmp(why, "unsupported charset", 19) == 0;
            *answered =
                lf_reply_error(in, req->conn, cs ? 415 : 400,
                               cs ? "unsupported_media_type" : "bad_request", why, NULL);
            return NULL;
        }
        s_bytes(st, req->body, req->len);
        return st;
    }
    const char *sheet =
        MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "sheet");
    lf_import_t *imp = lf_import_xlsx(req->body, req->len, sheet, in->xlsx_max_unpacked,
                                      why, sizeof why);
    if (!imp) {
        *answered = lf_reply_error(in, req->conn, 400, "bad_request",
                                   why[0] ? why : "the file cannot be read", NULL);
        return NULL;
    }
    s_import_t *st = s_new(in, req);
    s_bytes(st, req->body, req->len);
    for (size_t i = 0; i < lf_import_rows(imp); i++) {
        const json_t *obj = NULL;
        const char *err = NULL;
        size_t line = 0;
        lf_import_row(imp, i, &obj, &err, &line);
        s_on_row(st, line, obj, err);
    }
    lf_import_destroy(&imp);
    return st;
}

static enum MHD_Result s_import(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth) {
    s_import_t *st = req->ext;
    if (st && st->committing)
        return s_answer(in, req); /* resumed: every row is answered */
    enum MHD_Result answered = MHD_NO;
    if (!st && !(st = s_buffered(in, req, &answered)))
        return answered;
    char why[256] = "";
    if (st->parser && lf_import_parser_finish(st->parser, why, sizeof why) < 0)
        return lf_reply_error(in, req->conn, 400, "bad_request",
                              why[0] ? why : "the file cannot be read", NULL);
    lf_import_parser_destroy(&st->parser);
    if (st->max_rows && st->total > st->max_rows) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "the import has %zu rows; at most %zu are taken at once "
                 "(LEADFLOW_IMPORT_MAX_ROWS): split the file",
                 st->total, st->max_rows);
        return lf_reply_error(in, req->conn, 413, "payload_too_large", msg, NULL);
    }
    if (st->spool_failed || (st->spool && s_spool_rewind(st) < 0))
        return lf_reply_error_retry(in, req->conn, 503, "unavailable",
                                    "the import cannot be staged right now (temporary "
                                    "files); nothing was stored, retry later",
                                    5);
    char idem_base[320];
    int has_idem = lf_idempotency(in, req, auth, idem_base, sizeof idem_base, &answered);
    if (has_idem < 0)
        return answered;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(st->sha, md, &mdlen);
    if (has_idem) {
        snprintf(st->idem, sizeof st->idem, "%s:row:", idem_base);
    } else {
        char hex[2 * EVP_MAX_MD_SIZE + 1];
        for (unsigned int i = 0; i < mdlen; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
        snprintf(st->idem, sizeof st->idem, "import:%.40s:", hex);
    }
    st->committing = 1;
    if (st->accepted == 0)
        return s_answer(in, req);
    size_t window = (size_t)in->import_window;
    if (window > st->accepted)
        window = st->accepted;
    st->slots = lf_calloc(window, sizeof *st->slots);
    st->nslots = window;
    st->slot_row = lf_calloc(window, sizeof *st->slot_row);
    st->free_slots = lf_calloc(window, sizeof *st->free_slots);
    for (size_t i = 0; i < window; i++)
        st->free_slots[st->nfree++] = window - 1 - i;
    MHD_suspend_connection(req->conn);
    pthread_mutex_lock(&st->lock);
    int resume = s_pump(st);
    pthread_mutex_unlock(&st->lock);
    if (resume)
        MHD_resume_connection(req->conn);
    return MHD_YES;
}

const lf_route_t lf_routes_import[] = {
    {"POST", "/v1/leads/import", s_import, 1, 1, 0},
    {NULL, NULL, NULL, 0, 0, 0},
};
