/* api_channels.c - the channels that are not "one lead as JSON": bulk imports of
 * trade-show lists (POST /v1/leads/import, CSV, NDJSON or .xlsx) and phone-system
 * webhooks (POST /v1/calls, JSON or the Twilio voice-webhook form). Web forms use POST
 * /v1/leads (api_leads.c) with a public web_form key.
 *
 * Imports: every row is validated on its own, and the good rows go through the same
 * group committer as single leads, so deduplication and repeat-inquiry merging apply
 * to them too. Each row carries an idempotency key derived from the SHA-256 of the
 * file and its row number: importing the same file again returns the same leads as
 * "duplicate". The HTTP thread never waits for the database: the connection is
 * suspended and a window of rows is kept in the committer queue, refilled from the
 * committer's completion callback, until the last row is answered.
 *
 * Calls: an unknown caller becomes a phone lead (the dialled number gives its source
 * and campaign, config/channels.json "calls.numbers"); a caller with an open lead
 * becomes a 'call' activity on it (lf_intake_commit merges it); the same CallSid twice
 * is one event. When LEADFLOW_TWILIO_AUTH_TOKEN is set, a form post must carry a valid
 * X-Twilio-Signature (HMAC-SHA1 over LEADFLOW_PUBLIC_URL + path + the sorted POST
 * parameters). */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "csv_import.h"
#include "intake.h"
#include "lf/lead.h"
#include "lf/log.h"
#include "lf/normalize.h"
#include "lf/util.h"
#include "parse.h"
#include "xlsx.h"

/* ---------------------------------------------------------------- imports */

typedef struct {
    lf_intake_t *in;             /* borrowed */
    struct MHD_Connection *conn; /* borrowed; suspended while rows are in flight */
    pthread_mutex_t lock;        /* guards next, inflight, done, resumed */
    lf_job_t *jobs;              /* one per accepted row (owned, rows owned) */
    size_t *slot;                /* jobs[i] answers rows[slot[i]] */
    ssize_t *after; /* jobs[i] waits for jobs[after[i]] (same person), or -1 */
    size_t njobs, next, inflight, done;
    int resumed;
    json_t *rows; /* per-row results in file order (owned) */
    size_t rejected;
} s_import_t;

static void s_import_free(void *arg) {
    s_import_t *st = arg;
    for (size_t i = 0; i < st->njobs; i++)
        json_decref(st->jobs[i].row);
    free(st->jobs);
    free(st->slot);
    free(st->after);
    json_decref(st->rows);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

static void s_import_done(lf_job_t *job);

/* Keeps up to import_window rows in the committer. Called with st->lock held.
 * Returns 1 when every row has its answer and the connection must be resumed. */
static int s_import_pump(s_import_t *st) {
    while (st->next < st->njobs && st->inflight < (size_t)st->in->import_window) {
        /* A later row from the same person waits for the earlier one, so the file's
         * order decides which row creates the lead and which is merged into it. */
        ssize_t dep = st->after[st->next];
        if (dep >= 0 && !atomic_load(&st->jobs[dep].done))
            break;
        lf_job_t *job = &st->jobs[st->next++];
        job->done_fn = s_import_done;
        job->done_arg = st;
        st->inflight++;
        if (lf_committer_submit(st->in->committer, job) < 0) {
            job->status = 503;
            atomic_store(&job->done, 1);
            st->inflight--;
            st->done++;
        }
    }
    if (st->done == st->njobs && !st->resumed) {
        st->resumed = 1;
        return 1;
    }
    return 0;
}

/* Committer thread: one row is answered. */
static void s_import_done(lf_job_t *job) {
    s_import_t *st = job->done_arg;
    pthread_mutex_lock(&st->lock);
    st->inflight--;
    st->done++;
    int resume = s_import_pump(st);
    struct MHD_Connection *conn = st->conn;
    pthread_mutex_unlock(&st->lock);
    if (resume)
        MHD_resume_connection(conn);
}

static enum MHD_Result s_import_answer(lf_intake_t *in, lf_req_t *req) {
    s_import_t *st = req->ext;
    size_t accepted = 0, unavailable = 0;
    for (size_t i = 0; i < st->njobs; i++) {
        lf_job_t *job = &st->jobs[i];
        json_t *r = json_array_get(st->rows, st->slot[i]);
        if (job->status == 503) {
            json_object_set_new(r, "status", json_string("unavailable"));
            unavailable++;
        } else {
            json_object_set_new(r, "id", json_string(job->result_id));
            json_object_set_new(r, "status", json_string(job->result));
            accepted++;
        }
    }
    json_t *body = json_pack("{s:I, s:I, s:O}", "accepted", (json_int_t)accepted,
                             "rejected", (json_int_t)st->rejected, "rows", st->rows);
    if (unavailable) {
        /* Some rows are not stored: never a 2xx. Re-sending the whole file is safe. */
        json_object_set_new(body, "error", json_string("unavailable"));
        json_object_set_new(body, "message",
                            json_string("some rows could not be stored right now; import "
                                        "the same file again later (stored rows are not "
                                        "duplicated)"));
        json_object_set_new(body, "unavailable", json_integer((json_int_t)unavailable));
        return lf_reply_json(in, req->conn, 503, body);
    }
    return lf_reply_json(in, req->conn, 200, body);
}

static json_t *s_row_error(size_t line, const char *field, const char *code,
                           const char *message) {
    json_t *errors = json_array();
    lf_field_error(errors, field, code, message);
    return json_pack("{s:I, s:o}", "row", (json_int_t)line, "errors", errors);
}

static enum MHD_Result s_import(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth) {
    if (req->ext)
        return s_import_answer(in, req);
    const char *ct = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
    char media[96], charset[32], why[256] = "";
    lf_import_t *imp = NULL;
    if (lf_parse_content_type(ct, media, sizeof media, charset, sizeof charset) < 0)
        return lf_reply_error(in, req->conn, 415, "unsupported_media_type",
                              "send text/csv or application/x-ndjson", NULL);
    /* Excel workbooks: .xlsx by its media type or, sent as bytes (or by a client that
       calls every spreadsheet text/csv), by its zip signature;
       the old binary .xls is refused with what to do instead. */
    int xlsx = !strcmp(media, LF_XLSX_MEDIA_TYPE) ||
               ((!strcmp(media, "application/octet-stream") ||
                 !strcmp(media, "application/zip") || !strcmp(media, "text/csv")) &&
                lf_xlsx_sniff(req->body, req->len));
    if (!strcmp(media, "application/vnd.ms-excel") || lf_xls_sniff(req->body, req->len))
        return lf_reply_error(
            in, req->conn, 415, "unsupported_media_type",
            "old Excel .xls files (and password-protected workbooks) are "
            "not read: open the file in Excel, WPS or LibreOffice and "
            "save it as .xlsx (Excel Workbook) or CSV UTF-8",
            NULL);
    if (xlsx) {
        const char *sheet =
            MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "sheet");
        imp = lf_import_xlsx(req->body, req->len, sheet, in->xlsx_max_unpacked, why,
                             sizeof why);
    } else if (!strcmp(media, "text/csv")) {
        imp = lf_import_csv(req->body, req->len, charset, why, sizeof why);
    } else if (!strcmp(media, "application/x-ndjson") ||
               !strcmp(media, "application/ndjson")) {
        if (charset[0] && strcmp(charset, "utf-8") && strcmp(charset, "utf8"))
            return lf_reply_error(in, req->conn, 415, "unsupported_media_type",
                                  "NDJSON must be UTF-8", NULL);
        imp = lf_import_ndjson(req->body, req->len, why, sizeof why);
    } else {
        return lf_reply_error(
            in, req->conn, 415, "unsupported_media_type",
            "send text/csv (charset utf-8, gb18030 or gbk), "
            "application/x-ndjson or an .xlsx workbook (" LF_XLSX_MEDIA_TYPE ")",
            NULL);
    }
    if (!imp) {
        /* An unknown charset is a media type we do not take; the rest is a body we
         * cannot read. */
        int cs = strncmp(why, "unsupported charset", 19) == 0;
        return lf_reply_error(in, req->conn, cs ? 415 : 400,
                              cs ? "unsupported_media_type" : "bad_request",
                              why[0] ? why : "the file cannot be read", NULL);
    }
    if (in->import_max_rows > 0 && lf_import_rows(imp) > (size_t)in->import_max_rows) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "the import has %zu rows; at most %d are taken at once "
                 "(LEADFLOW_IMPORT_MAX_ROWS): split the file",
                 lf_import_rows(imp), in->import_max_rows);
        lf_import_destroy(&imp);
        return lf_reply_error(in, req->conn, 413, "payload_too_large", msg, NULL);
    }

    char idem_base[320];
    enum MHD_Result answered = MHD_NO;
    int has_idem = lf_idempotency(in, req, auth, idem_base, sizeof idem_base, &answered);
    if (has_idem < 0) {
        lf_import_destroy(&imp);
        return answered;
    }
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)req->body, req->len, md);
    char file_hash[2 * SHA256_DIGEST_LENGTH + 1];
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(file_hash + 2 * i, 3, "%02x", md[i]);
    const char *dflt = auth->channel[0] ? auth->channel : "trade_show";
    const char *forced = (auth->channel[0] && !auth->is_admin) ? auth->channel : NULL;

    size_t n = lf_import_rows(imp);
    s_import_t *st = lf_calloc(1, sizeof *st);
    pthread_mutex_init(&st->lock, NULL);
    st->in = in;
    st->conn = req->conn;
    st->rows = json_array();
    st->jobs = lf_calloc(n + 1, sizeof *st->jobs);
    st->slot = lf_calloc(n + 1, sizeof *st->slot);
    st->after = lf_calloc(n + 1, sizeof *st->after);
    json_t *seen = json_object(); /* "p:<phone>" / "e:<email>" -> last job index */
    for (size_t i = 0; i < n; i++) {
        const json_t *obj = NULL;
        const char *err = NULL;
        size_t line = 0;
        if (lf_import_row(imp, i, &obj, &err, &line) < 0) {
            json_array_append_new(
                st->rows,
                s_row_error(line, "row", "invalid", err ? err : "row cannot be read"));
            st->rejected++;
            continue;
        }
        json_t *errors = json_array();
        json_t *lead = lf_lead_canonical(obj, dflt, forced, errors);
        if (!lead) {
            json_array_append_new(
                st->rows,
                json_pack("{s:I, s:o}", "row", (json_int_t)line, "errors", errors));
            st->rejected++;
            continue;
        }
        json_decref(errors);
        char idem[400];
        if (has_idem)
            snprintf(idem, sizeof idem, "%s:row:%zu", idem_base, line);
        else
            snprintf(idem, sizeof idem, "import:%.40s:%zu", file_hash, line);
        st->after[st->njobs] = -1;
        const char *keys[] = {"phone", "email"};
        for (int k = 0; k < 2; k++) {
            const char *v = json_string_value(json_object_get(lead, keys[k]));
            if (!v)
                continue;
            char ck[300];
            snprintf(ck, sizeof ck, "%c:%s", keys[k][0], v);
            const json_t *prev = json_object_get(seen, ck);
            if (prev && (ssize_t)json_integer_value(prev) > st->after[st->njobs])
                st->after[st->njobs] = (ssize_t)json_integer_value(prev);
            json_object_set_new(seen, ck, json_integer((json_int_t)st->njobs));
        }
        lf_job_t *job = &st->jobs[st->njobs];
        lf_uuid7(job->lead_id);
        job->row = lf_lead_row(lead, job->lead_id, obj, idem);
        json_decref(lead);
        st->slot[st->njobs++] = json_array_size(st->rows);
        json_array_append_new(st->rows, json_pack("{s:I}", "row", (json_int_t)line));
    }
    json_decref(seen);
    lf_import_destroy(&imp);
    req->ext = st;
    req->ext_free = s_import_free;
    if (st->njobs == 0)
        return s_import_answer(in, req);
    MHD_suspend_connection(req->conn);
    pthread_mutex_lock(&st->lock);
    int resume = s_import_pump(st);
    pthread_mutex_unlock(&st->lock);
    if (resume)
        MHD_resume_connection(req->conn);
    return MHD_YES;
}

/* ---------------------------------------------------------------- calls */

static int s_keycmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Twilio's scheme: base64(HMAC-SHA1(token, url + key1 + value1 + key2 + ...)) with the
 * POST parameters sorted by name. Returns 1 when sig matches. */
static int s_twilio_valid(const char *token, const char *url, const json_t *form,
                          const char *sig) {
    size_t n = json_object_size(form), i = 0, len = strlen(url);
    const char **keys = lf_calloc(n + 1, sizeof *keys);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)form, k, v) {
        keys[i++] = k;
        len += strlen(k) + strlen(json_string_value(v) ? json_string_value(v) : "");
    }
    qsort(keys, n, sizeof *keys, s_keycmp);
    char *data = lf_malloc(len + 1), *p = data;
    p += lf_strlcpy(p, url, len + 1);
    for (i = 0; i < n; i++) {
        const char *val = json_string_value(json_object_get(form, keys[i]));
        p += lf_strlcpy(p, keys[i], len + 1 - (size_t)(p - data));
        p += lf_strlcpy(p, val ? val : "", len + 1 - (size_t)(p - data));
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    HMAC(EVP_sha1(), token, (int)strlen(token), (const unsigned char *)data,
         (size_t)(p - data), md, &mdlen);
    unsigned char b64[64];
    int blen = EVP_EncodeBlock(b64, md, (int)mdlen);
    free(keys);
    free(data);
    return blen > 0 && strlen(sig) == (size_t)blen &&
           CRYPTO_memcmp(b64, sig, (size_t)blen) == 0;
}

/* The first of several names a field may have (Twilio's, then ours). Borrowed. */
static const char *s_field(json_t *body, const char *const *names, int *bad) {
    for (const char *const *n = names; *n; n++) {
        json_t *v = json_object_get(body, *n);
        if (!v || json_is_null(v))
            continue;
        if (!json_is_string(v)) {
            *bad = 1;
            return NULL;
        }
        return json_string_value(v);
    }
    return NULL;
}

/* A call's length in seconds (Twilio sends CallDuration as text, JSON callers a
 * number), or -1 when absent or not a plain count of seconds below a day. */
static json_int_t s_duration(json_t *body, const char *const *names) {
    for (const char *const *n = names; *n; n++) {
        json_t *v = json_object_get(body, *n);
        if (json_is_integer(v))
            return json_integer_value(v) >= 0 && json_integer_value(v) < 86400
                       ? json_integer_value(v)
                       : -1;
        if (json_is_string(v)) {
            const char *t = json_string_value(v);
            size_t len = strlen(t);
            if (len == 0 || len > 5 || strspn(t, "0123456789") != len)
                return -1;
            long secs = strtol(t, NULL, 10);
            return secs < 86400 ? secs : -1;
        }
    }
    return -1;
}

static int s_sid_valid(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z') || c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

static enum MHD_Result s_call(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth) {
    if (req->job_active)
        return lf_job_answer(in, req);
    enum MHD_Result answered = MHD_NO;
    int form = 0;
    json_t *body = lf_body_parse(in, req, 1, &form, &answered);
    if (!body)
        return answered;
    const char *sig =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Twilio-Signature");
    int signed_ok = 0;
    if (in->twilio_token && form) {
        char url[2048];
        snprintf(url, sizeof url, "%s%s", in->public_url ? in->public_url : "",
                 req->target ? req->target : req->url);
        signed_ok = sig && s_twilio_valid(in->twilio_token, url, body, sig);
        if (!signed_ok) {
            json_decref(body);
            return lf_reply_error(in, req->conn, 401, "unauthorized",
                                  "missing or wrong X-Twilio-Signature", NULL);
        }
    }
    if (!signed_ok && !auth->ok) {
        json_decref(body);
        return lf_reply_error(in, req->conn, 401, "unauthorized",
                              "missing or wrong key: send Authorization: Bearer <key>",
                              NULL);
    }
    if (!signed_ok && !auth->is_admin && auth->channel[0] &&
        strcmp(auth->channel, "phone")) {
        json_decref(body);
        return lf_reply_error(in, req->conn, 401, "unauthorized",
                              "only a phone key (or one of any channel) may report calls",
                              NULL);
    }
    static const char *const n_from[] = {"From", "from", "caller", NULL};
    static const char *const n_to[] = {"To", "to", "called", NULL};
    static const char *const n_sid[] = {"CallSid", "call_sid", "callSid", NULL};
    static const char *const n_status[] = {"CallStatus", "status", "call_status", NULL};
    static const char *const n_dir[] = {"Direction", "direction", NULL};
    static const char *const n_name[] = {"CallerName", "caller_name", "name", NULL};
    static const char *const n_dur[] = {"CallDuration", "duration", NULL};
    int bf = 0, bt = 0, bs = 0, bst = 0, bd = 0, bn = 0;
    const char *from = s_field(body, n_from, &bf), *to = s_field(body, n_to, &bt);
    const char *sid = s_field(body, n_sid, &bs), *status = s_field(body, n_status, &bst);
    const char *dir = s_field(body, n_dir, &bd), *cname = s_field(body, n_name, &bn);
    json_t *errors = json_array();
    if (bs)
        lf_field_error(errors, "CallSid", "type", "must be a string");
    else if (!sid)
        lf_field_error(errors, "CallSid", "required", "a call needs its CallSid");
    else if (!s_sid_valid(sid))
        lf_field_error(errors, "CallSid", "invalid",
                       "must be 1-64 letters, digits, '-', '_' or '.'");
    if (bf || bt || bst || bd || bn)
        lf_field_error(errors,
                       bf    ? "From"
                       : bt  ? "To"
                       : bst ? "CallStatus"
                       : bd  ? "Direction"
                             : "CallerName",
                       "type", "must be a string");
    /* On an outbound call the customer is the one dialled. */
    int outbound = dir && !strncasecmp(dir, "outbound", 8);
    const char *customer = outbound ? to : from, *ours = outbound ? from : to;
    char ours164[64] = "";
    const char *why = NULL;
    if (ours && lf_norm_phone(ours, ours164, sizeof ours164, &why) != 0)
        ours164[0] = '\0';
    const json_t *num = ours164[0] ? lf_mapping_call_number(in->mapping, ours164) : NULL;
    const char *source = json_string_value(json_object_get(num, "source"));
    const char *campaign = json_string_value(json_object_get(num, "campaign"));

    json_t *call = json_object();
    if (sid && s_sid_valid(sid))
        json_object_set_new(call, "call_sid", json_string(sid));
    if (ours164[0])
        json_object_set_new(call, "number", json_string(ours164));
    if (status)
        json_object_set_new(call, "status", json_string(status));
    if (dir)
        json_object_set_new(call, "direction", json_string(dir));
    if (campaign)
        json_object_set_new(call, "campaign", json_string(campaign));
    json_int_t secs = s_duration(body, n_dur);
    if (secs >= 0)
        json_object_set_new(call, "duration", json_integer(secs));
    json_t *extra = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        int known = 0;
        const char *const *lists[] = {n_from, n_to,   n_sid, n_status,
                                      n_dir,  n_name, n_dur, NULL};
        for (int l = 0; lists[l] && !known; l++)
            for (const char *const *nm = lists[l]; *nm && !known; nm++)
                known = !strcmp(*nm, k);
        if (!known)
            json_object_set(extra, k, v);
    }
    if (campaign)
        json_object_set_new(extra, "campaign", json_string(campaign));
    json_t *input = json_pack("{s:s, s:o, s:o}", "channel", "phone", "extra", extra,
                              "phone", customer ? json_string(customer) : json_null());
    if (source)
        json_object_set_new(input, "source", json_string(source));
    if (cname)
        json_object_set_new(input, "name", json_string(cname));
    if (sid && s_sid_valid(sid))
        json_object_set_new(input, "external_id", json_string(sid));
    size_t before = json_array_size(errors);
    json_t *lead = lf_lead_canonical(input, "phone", NULL, errors);
    /* The caller's number is "phone" in a lead and From (To when outbound) here. */
    for (size_t i = before; i < json_array_size(errors); i++) {
        json_t *e = json_array_get(errors, i);
        if (!strcmp(json_string_value(json_object_get(e, "field")), "phone"))
            json_object_set_new(e, "field", json_string(outbound ? "To" : "From"));
    }
    json_decref(input);
    if (!lead || json_array_size(errors) > 0) {
        json_decref(lead);
        json_decref(call);
        json_decref(body);
        return lf_reply_error(in, req->conn, 422, "validation_failed",
                              "the call breaks one or more rules; nothing was stored",
                              errors);
    }
    json_decref(errors);
    char idem[320];
    lf_auth_t twilio = {0};
    if (signed_ok) {
        twilio.ok = 1;
        lf_strlcpy(twilio.key_id, "twilio", sizeof twilio.key_id);
        auth = &twilio;
    }
    int has_idem = lf_idempotency(in, req, auth, idem, sizeof idem, &answered);
    if (has_idem < 0) {
        json_decref(lead);
        json_decref(call);
        json_decref(body);
        return answered;
    }
    lf_job_t *job = &req->job;
    lf_uuid7(job->lead_id);
    job->row = lf_lead_row(lead, job->lead_id, body, has_idem ? idem : NULL);
    json_object_set_new(job->row, "kind", json_string("call"));
    json_object_set_new(job->row, "call", call);
    json_decref(lead);
    json_decref(body);
    return lf_job_submit(in, req);
}

const lf_route_t lf_routes_channels[] = {
    {"POST", "/v1/leads/import", s_import, 1, 1, 0},
    {"POST", "/v1/calls", s_call, 0, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0},
};
