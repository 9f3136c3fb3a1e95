/* api_channels.c - phone-system webhooks (POST /v1/calls, JSON or the Twilio
 * voice-webhook form). Bulk imports of trade-show lists are import.c; web forms use POST
 * /v1/leads (api_leads.c) with a public web_form key.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "intake.h"
#include "lf/lead.h"
#include "lf/log.h"
#include "lf/normalize.h"
#include "lf/util.h"
#include "parse.h"

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
    json_decref(body);
    return lf_job_submit(in, req);
}

const lf_route_t lf_routes_channels[] = {
    {"POST", "/v1/calls", s_call, 0, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0},
};
