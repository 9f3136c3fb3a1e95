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
 * most, unpacked within LEADFLOW_XLSX_MAX_UNPACKED), then its sheet is inflated and
 * parsed as a stream (xlsx.c) and each row takes the same path as a CSV row, as it is
 * read: the rows are not held in memory, only the packed file.
 *
 * Memory while a CSV or NDJSON import runs does not grow with its rows: each data row's
 * record (row number, status, lead id, the same person's earlier rows) is kept in a
 * second unlinked file (72 bytes a row, read and written in place), a bad row's errors
 * in a third; the same-person order below uses a fixed table of 2^20 slots (4 MiB);
 * then one row being parsed (LF_IMPORT_MAX_ROW_BYTES at most) and a 64 KiB piece, the
 * window's rows in the committer, and the answer, written piece by piece from the
 * records as the client reads it (lf_reply_stream_json), never held whole.
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

/* One data row of the file, as the answer will report it: a record of the row file,
 * at index * sizeof (s_row_t). */
typedef struct {
    uint64_t err_off; /* S_REJECTED: its errors (a JSON array) in the error file */
    uint32_t err_len;
    uint32_t line;    /* the row number a spreadsheet shows */
    int32_t after[2]; /* the earlier row with its phone, with its e-mail (index), or -1 */
    uint8_t status;   /* S_* */
    char id[40];      /* the lead id answered */
} s_row_t;

/* The same-person table: a slot per hash of a phone or e-mail, holding 1 + the last
 * row that had a value hashing there (0: none). Two values sharing a slot only make a
 * row wait for a row it did not need to, never the reverse: each row waits for the
 * slot's previous row, which waited for the one before it. */
enum { S_SEEN_BITS = 20 };

typedef struct {
    lf_intake_t *in;             /* borrowed */
    struct MHD_Connection *conn; /* borrowed; suspended while rows are committed */
    lf_import_parser_t *parser;  /* while a CSV/NDJSON body arrives (owned) */
    EVP_MD_CTX *sha;             /* SHA-256 of the body so far (owned) */
    char dflt[32], forced[32];   /* default and forced channel ("" none) */
    size_t max_rows;             /* 0: no cap */
    int rows_fd;                 /* the row file: a record per data row, or -1 */
    int errs_fd;                 /* the bad rows' errors, or -1 */
    uint64_t errs_len;           /* bytes in the error file */
    int rows_failed;             /* the row or error file could not be made or written */
    size_t nrows;                /* data rows up to the cap */
    size_t total;                /* data rows in the file, counted past the cap */
    size_t accepted, rejected;   /* good rows spooled, bad rows */
    size_t unavailable;          /* rows that could not be stored */
    int32_t *seen;               /* the same-person table (owned), 2^S_SEEN_BITS */
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
    /* The answer, as the client reads it (s_answer_read). */
    int ans_stage;   /* 0 head, 1 rows, 2 done */
    size_t ans_next; /* the next row to answer */
    char *ans_buf;   /* owned: text not read yet */
    size_t ans_len, ans_pos, ans_cap;
} s_import_t;

static void s_free(void *arg) {
    s_import_t *st = arg;
    lf_import_parser_destroy(&st->parser);
    EVP_MD_CTX_free(st->sha);
    if (st->rows_fd >= 0)
        close(st->rows_fd);
    if (st->errs_fd >= 0)
        close(st->errs_fd);
    free(st->seen);
    free(st->ans_buf);
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

/* An unlinked temporary file in $TMPDIR (else /tmp), gone with the request or the
 * process whatever happens. Returns its descriptor, or -1 with errno. */
static int s_tmpfile(void) {
    const char *dir = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/leadflow-import.XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd >= 0)
        unlink(path);
    return fd;
}

/* The spool: a temporary file written through zlib (level 1: the rows are repetitive
 * JSON and shrink several times, so that a small tmpfs holds a whole import). Returns
 * 0, or -1 with errno. */
static int s_spool_open(s_import_t *st) {
    int fd = s_tmpfile();
    if (fd < 0)
        return -1;
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

size_t lf_import_person_slot(char kind, const char *value) {
    return (size_t)((s_hash(kind, value) * 0x9E3779B97F4A7C15ull) >> (64 - S_SEEN_BITS));
}

/* Records that row idx has a value in slot; returns the last earlier row with a value
 * there, or -1. */
static int32_t s_seen_put(s_import_t *st, size_t slot, int32_t idx) {
    if (!st->seen) /* calloc'd: the pages no value reaches are never touched */
        st->seen = lf_calloc((size_t)1 << S_SEEN_BITS, sizeof *st->seen);
    int32_t prev = st->seen[slot] - 1;
    st->seen[slot] = idx + 1;
    return prev;
}

/* Writes n bytes at off in fd (made by s_tmpfile when *fd < 0). Returns 0, or -1 after
 * logging once (rows_failed: the import answers 503 and stores nothing). */
static int s_file_put(s_import_t *st, int *fd, const void *data, size_t n, uint64_t off) {
    if (*fd < 0 && !st->rows_failed)
        *fd = s_tmpfile();
    if (*fd >= 0 && pwrite(*fd, data, n, (off_t)off) == (ssize_t)n)
        return 0;
    if (!st->rows_failed)
        lf_error("import row file cannot be written in %s: %s",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", strerror(errno));
    st->rows_failed = 1;
    return -1;
}

static void s_row_put(s_import_t *st, size_t idx, const s_row_t *r) {
    s_file_put(st, &st->rows_fd, r, sizeof *r, (uint64_t)idx * sizeof *r);
}

/* Reads row idx's record; one that cannot be read reads as unavailable. */
static void s_row_get(s_import_t *st, size_t idx, s_row_t *r) {
    if (st->rows_fd >= 0 &&
        pread(st->rows_fd, r, sizeof *r, (off_t)(idx * sizeof *r)) == (ssize_t)sizeof *r)
        return;
    memset(r, 0, sizeof *r);
    r->after[0] = r->after[1] = -1;
    r->status = S_UNAVAILABLE;
}

/* Marks row idx answered as status (S_*), with its lead id (NULL: none). */
static void s_row_set(s_import_t *st, size_t idx, uint8_t status, const char *id) {
    s_row_t r;
    s_row_get(st, idx, &r);
    r.status = status;
    if (id)
        lf_strlcpy(r.id, id, sizeof r.id);
    st->unavailable += status == S_UNAVAILABLE;
    s_row_put(st, idx, &r);
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

/* Keeps a bad row's errors (consumed) in the error file and its record. */
static void s_reject(s_import_t *st, size_t idx, s_row_t *r, json_t *errors) {
    char *text = json_dumps(errors, JSON_COMPACT);
    json_decref(errors);
    r->err_len = text ? (uint32_t)strlen(text) : 0;
    r->err_off = st->errs_len;
    if (text && s_file_put(st, &st->errs_fd, text, r->err_len, st->errs_len) == 0)
        st->errs_len += r->err_len;
    else
        r->err_len = 0;
    free(text);
    s_row_put(st, idx, r);
    st->rejected++;
}

/* A parsed row (lf_import_row_fn): checked now, spooled when good. */
static void s_on_row(void *arg, size_t line, const json_t *obj, const char *err) {
    s_import_t *st = arg;
    st->total++;
    if (st->max_rows && st->total > st->max_rows)
        return; /* over the cap: only counted, for the message */
    uint32_t idx = (uint32_t)st->nrows++;
    s_row_t r = {.line = (uint32_t)line, .after = {-1, -1}, .status = S_REJECTED};
    json_t *errors = json_array();
    if (!obj) {
        lf_field_error(errors, "row", "invalid", err ? err : "row cannot be read");
        s_reject(st, idx, &r, errors);
        return;
    }
    json_t *lead =
        lf_lead_canonical(obj, st->dflt, st->forced[0] ? st->forced : NULL, errors);
    if (!lead) {
        s_reject(st, idx, &r, errors);
        return;
    }
    json_decref(errors);
    const char *keys[] = {"phone", "email"};
    size_t slot[2] = {0, 0};
    int has[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        const char *v = json_string_value(json_object_get(lead, keys[k]));
        if (!v)
            continue;
        slot[k] = lf_import_person_slot(keys[k][0], v);
        has[k] = 1;
        /* A row whose phone and e-mail share a slot would find itself there and wait
         * for its own answer, for ever: the phone's lookup stands for both. */
        if (k == 1 && has[0] && slot[1] == slot[0])
            continue;
        r.after[k] = s_seen_put(st, slot[k], (int32_t)idx);
    }
    char lead_id[40];
    lf_uuid7(lead_id);
    json_t *row = lf_lead_row(lead, lead_id, obj, NULL);
    char *text = json_dumps(row, JSON_COMPACT);
    json_decref(row);
    s_spool(st, idx, text ? text : "{}");
    free(text);
    r.status = S_PENDING;
    s_row_put(st, idx, &r);
    st->accepted++;
}

static s_import_t *s_new(lf_intake_t *in, lf_req_t *req) {
    s_import_t *st = lf_calloc(1, sizeof *st);
    pthread_mutex_init(&st->lock, NULL);
    st->spool_fd = st->rows_fd = st->errs_fd = -1;
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
            for (size_t i = 0; i < st->nrows; i++) {
                s_row_t r;
                s_row_get(st, i, &r);
                if (r.status == S_PENDING && !inflight[i])
                    s_row_set(st, i, S_UNAVAILABLE, NULL);
            }
            free(inflight);
            st->done += st->accepted - st->submitted;
            st->submitted = st->accepted;
            break;
        }
        s_row_t r, before;
        s_row_get(st, st->peek_row, &r);
        int wait = 0;
        for (int k = 0; k < 2 && !wait; k++) {
            if (r.after[k] < 0)
                continue;
            s_row_get(st, (size_t)r.after[k], &before);
            wait = before.status == S_PENDING;
        }
        if (wait)
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
        snprintf(idem, sizeof idem, "%s%u", st->idem, r.line);
        json_object_set_new(job->row, "idempotency_key", json_string(idem));
        job->done_fn = s_done;
        job->done_arg = st;
        if (id)
            lf_strlcpy(job->lead_id, id, sizeof job->lead_id);
        if (!id || lf_committer_submit(st->in->committer, job) < 0) {
            s_row_set(st, st->slot_row[slot], S_UNAVAILABLE, NULL);
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
    if (job->status == 503 || !job->result)
        s_row_set(st, st->slot_row[slot], S_UNAVAILABLE, NULL);
    else
        s_row_set(st, st->slot_row[slot],
                  !strcmp(job->result, "created")     ? S_CREATED
                  : !strcmp(job->result, "duplicate") ? S_DUPLICATE
                                                      : S_MERGED,
                  job->result_id);
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

/* The answer's next piece into ans_buf: the head, then one row, then the end. Returns
 * 0, or -1 when the answer is complete. */
static int s_answer_next(s_import_t *st) {
    static const char *const names[] = {"",          "",       "created",
                                        "duplicate", "merged", "unavailable"};
    char **b = &st->ans_buf;
    size_t *len = &st->ans_len, *cap = &st->ans_cap;
    if (st->ans_stage == 0) {
        s_cat(b, len, cap, "{\"accepted\":%zu,\"rejected\":%zu,\"rows\":[",
              st->accepted - st->unavailable, st->rejected);
        st->ans_stage = 1;
        return 0;
    }
    if (st->ans_stage == 2)
        return -1;
    if (st->ans_next == st->nrows) {
        s_cat(b, len, cap, "]");
        if (st->unavailable) /* some rows are not stored: never a 2xx; re-sending the
                                whole file is safe */
            s_cat(b, len, cap,
                  ",\"error\":\"unavailable\",\"message\":\"some rows could not be "
                  "stored right now; import the same file again later (stored rows are "
                  "not duplicated)\",\"unavailable\":%zu",
                  st->unavailable);
        s_cat(b, len, cap, "}");
        st->ans_stage = 2;
        return 0;
    }
    size_t i = st->ans_next++;
    s_row_t r;
    s_row_get(st, i, &r);
    const char *sep = i ? "," : "";
    if (r.status == S_REJECTED) {
        char *errors = lf_malloc((size_t)r.err_len + 3);
        if (r.err_len > 0 &&
            pread(st->errs_fd, errors, r.err_len, (off_t)r.err_off) == (ssize_t)r.err_len)
            errors[r.err_len] = '\0';
        else
            memcpy(errors, "[]", 3);
        s_cat(b, len, cap, "%s{\"row\":%u,\"errors\":%s}", sep, r.line, errors);
        free(errors);
    } else if (r.status == S_UNAVAILABLE || r.status == S_PENDING) {
        s_cat(b, len, cap, "%s{\"row\":%u,\"status\":\"unavailable\"}", sep, r.line);
    } else {
        s_cat(b, len, cap, "%s{\"row\":%u,\"id\":\"%s\",\"status\":\"%s\"}", sep, r.line,
              r.id, names[r.status]);
    }
    return 0;
}

/* MHD's content reader for the answer: fills buf with what comes next. */
static ssize_t s_answer_read(void *cls, uint64_t pos, char *buf, size_t max) {
    s_import_t *st = cls;
    size_t out = 0;
    while (out < max) {
        if (st->ans_pos == st->ans_len) {
            st->ans_pos = st->ans_len = 0;
            if (s_answer_next(st) < 0)
                break;
        }
        size_t n = st->ans_len - st->ans_pos;
        if (n > max - out)
            n = max - out;
        memcpy(buf + out, st->ans_buf + st->ans_pos, n);
        st->ans_pos += n;
        out += n;
    }
    return out ? (ssize_t)out : MHD_CONTENT_READER_END_OF_STREAM;
}

/* The answer: every data row in file order, accepted or rejected (docs/intake.md),
 * written as the client reads it, from the row file. */
static enum MHD_Result s_answer(lf_intake_t *in, lf_req_t *req) {
    s_import_t *st = req->ext;
    st->ans_cap = 4096;
    st->ans_buf = lf_malloc(st->ans_cap);
    return lf_reply_stream_json(in, req->conn, st->unavailable ? 503 : 200, s_answer_read,
                                st);
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
    /* Each row of the sheet is checked and spooled as it is read, as a CSV row is when
     * it arrives; a problem found later drops them all (nothing is committed before the
     * whole file is known to be good). */
    s_import_t *st = s_new(in, req);
    s_bytes(st, req->body, req->len);
    if (lf_xlsx_rows(req->body, req->len, sheet, in->xlsx_max_unpacked, s_on_row, st, why,
                     sizeof why) < 0) {
        *answered = lf_reply_error(in, req->conn, 400, "bad_request",
                                   why[0] ? why : "the file cannot be read", NULL);
        return NULL;
    }
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
    if (st->spool_failed || st->rows_failed || (st->spool && s_spool_rewind(st) < 0))
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
