/* http.c - intake's HTTP front: libmicrohttpd setup, routing, authentication and
 * the JSON reply helpers.
 *
 * The key is checked in the first callback, when the headers are in and the body is
 * not: a request with no or an unknown key, or a key outside the route's scopes
 * (access.c), is answered there and its body is never buffered. The one exception
 * is a key that can only be in the body - the hidden leadflow_key field of a plain
 * HTML form, or a Twilio-signed call - whose body is read first, within the
 * single-lead limit (LEADFLOW_MAX_BODY).
 *
 * libmicrohttpd runs a small pool of epoll threads, each serving many connections,
 * so nothing that waits on PostgreSQL runs there. A new lead goes to the group
 * committer (api_leads.c); every other route that talks to the database is marked
 * `db` in its table and runs on a database worker (workers.h): the connection is
 * suspended, the worker runs the handler on its own connection, its reply is kept
 * (s_answer) and the HTTP thread sends it when the connection resumes. One lock wait
 * then stalls one worker, not every connection of an HTTP thread. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "access.h"
#include "intake.h"
#include "lf/event.h"
#include "metrics_lag.h"
#include "notify_api.h"
#include "parse.h"
#include "lf/log.h"
#include "lf/util.h"

static enum MHD_Result s_healthz(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth);
static enum MHD_Result s_metrics(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth);

const lf_route_t lf_routes_core[] = {
    {"GET", "/healthz", s_healthz, 0, 0, 0},
    {"GET", "/metrics", s_metrics, 0, 0, 1},
    {NULL, NULL, NULL, 0, 0, 0},
};

static const lf_route_t *const s_tables[] = {lf_routes_core,
                                             lf_routes_leads,
                                             lf_routes_import,
                                             lf_routes_channels,
                                             lf_routes_reps,
                                             lf_routes_pipeline,
                                             lf_routes_keys,
                                             lf_routes_lists,
                                             lf_routes_pool,
                                             lf_routes_notifications,
                                             NULL};

/* Matches url against pattern, capturing "{}" segments. Returns 1 on a match. */
static int s_match(const char *pattern, const char *url, char params[2][96]) {
    int np = 0;
    const char *p = pattern, *u = url;
    while (*p && *u) {
        if (p[0] == '{' && p[1] == '}') {
            const char *end = strchr(u, '/');
            size_t n = end ? (size_t)(end - u) : strlen(u);
            if (n == 0 || n >= 96 || np >= 2)
                return 0;
            memcpy(params[np], u, n);
            params[np++][n] = '\0';
            u += n;
            p += 2;
            continue;
        }
        if (*p != *u)
            return 0;
        p++;
        u++;
    }
    /* A trailing slash is tolerated: "/v1/leads/" is "/v1/leads". */
    if (*u == '/' && u[1] == '\0')
        u++;
    return *p == '\0' && *u == '\0';
}

/* CORS: a response to a browser carries Access-Control-Allow-Origin when its Origin
 * is listed by some active key (the key itself was checked against its own list in
 * s_dispatch). */
static void s_cors(lf_intake_t *in, struct MHD_Connection *conn, struct MHD_Response *r) {
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    MHD_add_response_header(r, "Vary", "Origin");
    if (origin && in->keys && lf_keys_origin_allowed(in->keys, origin))
        MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
}

/* The request a database worker is running on this thread (see s_run), NULL on the
 * HTTP threads: its replies are kept, not queued (only an HTTP thread may queue). */
static __thread lf_req_t *s_deferring;

/* Queues response r (destroyed here) with the headers every answer carries, and counts
 * it. */
static enum MHD_Result s_queue(lf_intake_t *in, struct MHD_Connection *conn,
                               unsigned status, struct MHD_Response *r, const char *type,
                               int retry_after) {
    MHD_add_response_header(r, "Content-Type", type);
    if (status == 503 || status == 429) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", retry_after > 0 ? retry_after : 1);
        MHD_add_response_header(r, "Retry-After", ra);
    }
    s_cors(in, conn, r);
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    if (status < 300)
        atomic_fetch_add(&in->responses_2xx, 1);
    else if (status < 500)
        atomic_fetch_add(&in->responses_4xx, 1);
    else
        atomic_fetch_add(&in->responses_5xx, 1);
    return rc;
}

/* Queues a response of text (owned, freed here). */
static enum MHD_Result s_send(lf_intake_t *in, struct MHD_Connection *conn,
                              unsigned status, char *text, const char *type,
                              int retry_after) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    return s_queue(in, conn, status, r, type, retry_after);
}

/* Sends the response now, or keeps it for the resume when a worker made it. */
static enum MHD_Result s_answer(lf_intake_t *in, struct MHD_Connection *conn,
                                unsigned status, char *text, const char *type,
                                int retry_after) {
    lf_req_t *req = s_deferring;
    if (req && req->conn == conn) {
        free(req->reply_text); /* a handler answers once; keep the last word */
        req->reply_status = status;
        req->reply_text = text;
        req->reply_type = type;
        req->reply_retry_after = retry_after;
        req->reply_ready = 1;
        return MHD_YES;
    }
    return s_send(in, conn, status, text, type, retry_after);
}

static enum MHD_Result s_reply(lf_intake_t *in, struct MHD_Connection *conn,
                               unsigned status, json_t *body, int retry_after) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        /* A reply that could not be built (json_pack refuses a string that is not
         * UTF-8, for one) is a bug here, not the client's: say 500, never crash. */
        lf_error("reply body could not be built status=%u", status);
        status = 500;
        text = lf_strdup("{\"error\":\"internal\",\"message\":\"the reply could not be "
                         "built; nothing about the request is known to have failed\"}");
    }
    return s_answer(in, conn, status, text, "application/json; charset=utf-8",
                    retry_after);
}

enum MHD_Result lf_reply_json(lf_intake_t *in, struct MHD_Connection *conn,
                              unsigned status, json_t *body) {
    return s_reply(in, conn, status, body, 1);
}

enum MHD_Result lf_reply_stream_json(lf_intake_t *in, struct MHD_Connection *conn,
                                     unsigned status, MHD_ContentReaderCallback read,
                                     void *cls) {
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, read, cls, NULL);
    if (!r)
        return MHD_NO;
    return s_queue(in, conn, status, r, "application/json; charset=utf-8", 1);
}

enum MHD_Result lf_reply_error_retry(lf_intake_t *in, struct MHD_Connection *conn,
                                     unsigned status, const char *code,
                                     const char *message, int retry_after) {
    return s_reply(in, conn, status,
                   json_pack("{s:s, s:s}", "error", code, "message", message),
                   retry_after);
}

enum MHD_Result lf_reply_error(lf_intake_t *in, struct MHD_Connection *conn,
                               unsigned status, const char *code, const char *message,
                               json_t *fields) {
    json_t *body = json_pack("{s:s, s:s}", "error", code, "message", message);
    if (fields)
        json_object_set_new(body, "fields", fields);
    return lf_reply_json(in, conn, status, body);
}

static enum MHD_Result s_reply_text(lf_intake_t *in, struct MHD_Connection *conn,
                                    unsigned status, const char *type, char *text) {
    return s_answer(in, conn, status, text, type, 0);
}

lf_db_t *lf_intake_db(lf_intake_t *in) {
    static __thread lf_db_t *tls;
    if (tls)
        return tls;
    tls = lf_db_connect(in->db_url, "leadflow-intake");
    pthread_mutex_lock(&in->dbs_lock);
    if (in->ndbs < (int)(sizeof in->dbs / sizeof in->dbs[0]))
        in->dbs[in->ndbs++] = tls;
    pthread_mutex_unlock(&in->dbs_lock);
    return tls;
}

void lf_intake_publish(void *arg, const char *type, const char *env, size_t len) {
    lf_intake_t *in = arg;
    pthread_mutex_lock(&in->pub_lock);
    int rc = lf_event_send_raw(in->pub, type, env, len);
    pthread_mutex_unlock(&in->pub_lock);
    atomic_fetch_add(rc == 0 ? &in->published : &in->publish_dropped, 1);
}

int lf_intake_healthy(lf_intake_t *in) {
    /* A good answer is trusted for a second, a bad one for 200 ms, so recovery
     * shows quickly without every probe hitting the database. */
    int64_t now = lf_mono_ms();
    int last = atomic_load(&in->health_ok);
    if (now - atomic_load(&in->health_checked_ms) < (last ? 1000 : 200))
        return last;
    lf_db_t *db = lf_intake_db(in);
    PGresult *res = lf_db_exec(db, "SELECT 1 FROM leads LIMIT 0", 0, NULL);
    int ok = res != NULL;
    PQclear(res);
    atomic_store(&in->health_ok, ok);
    atomic_store(&in->health_checked_ms, now);
    return ok;
}

static enum MHD_Result s_healthz(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth) {
    if (lf_intake_healthy(in))
        return lf_reply_json(in, req->conn, 200, json_pack("{s:s}", "status", "ok"));
    return lf_reply_error(in, req->conn, 503, "unavailable",
                          "the database cannot be reached; leads cannot be committed",
                          NULL);
}

static enum MHD_Result s_metrics(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth) {
    long queued, batches, committed, failed, queued_bytes, refused;
    lf_committer_stats(in->committer, &queued, &batches, &committed, &failed);
    lf_committer_pressure(in->committer, &queued_bytes, &refused);
    char *text = NULL;
    int n = asprintf(
        &text,
        "# HELP leadflow_intake_requests_total HTTP requests received.\n"
        "# TYPE leadflow_intake_requests_total counter\n"
        "leadflow_intake_requests_total %ld\n"
        "# HELP leadflow_intake_responses_total HTTP responses by status class.\n"
        "# TYPE leadflow_intake_responses_total counter\n"
        "leadflow_intake_responses_total{class=\"2xx\"} %ld\n"
        "leadflow_intake_responses_total{class=\"4xx\"} %ld\n"
        "leadflow_intake_responses_total{class=\"5xx\"} %ld\n"
        "# HELP leadflow_intake_leads_committed_total New leads committed.\n"
        "# TYPE leadflow_intake_leads_committed_total counter\n"
        "leadflow_intake_leads_committed_total %ld\n"
        "# HELP leadflow_intake_commit_batches_total Group-commit transactions.\n"
        "# TYPE leadflow_intake_commit_batches_total counter\n"
        "leadflow_intake_commit_batches_total %ld\n"
        "# HELP leadflow_intake_commit_failed_total Leads answered 503 because the "
        "commit "
        "failed.\n"
        "# TYPE leadflow_intake_commit_failed_total counter\n"
        "leadflow_intake_commit_failed_total %ld\n"
        "# HELP leadflow_intake_commit_queue Leads waiting for the group commit.\n"
        "# TYPE leadflow_intake_commit_queue gauge\n"
        "leadflow_intake_commit_queue %ld\n"
        "# HELP leadflow_intake_commit_queue_bytes Bytes of leads waiting for the group "
        "commit.\n"
        "# TYPE leadflow_intake_commit_queue_bytes gauge\n"
        "leadflow_intake_commit_queue_bytes %ld\n"
        "# HELP leadflow_intake_commit_refused_total Leads answered 503 with Retry-After "
        "because the commit queue was full.\n"
        "# TYPE leadflow_intake_commit_refused_total counter\n"
        "leadflow_intake_commit_refused_total %ld\n"
        "# HELP leadflow_intake_events_published_total Events sent on ZeroMQ.\n"
        "# TYPE leadflow_intake_events_published_total counter\n"
        "leadflow_intake_events_published_total %ld\n"
        "leadflow_intake_events_dropped_total %ld\n",
        atomic_load(&in->requests), atomic_load(&in->responses_2xx),
        atomic_load(&in->responses_4xx), atomic_load(&in->responses_5xx), committed,
        batches, failed, queued, queued_bytes, refused, atomic_load(&in->published),
        atomic_load(&in->publish_dropped));
    if (n < 0)
        return MHD_NO;
    /* The consumers' lag, when the database answers (the counters above do not need
     * it). */
    char *lag = lf_metrics_lag(lf_intake_db(in));
    if (lag) {
        char *both = NULL;
        if (asprintf(&both, "%s%s", text, lag) > 0) {
            free(text);
            text = both;
        }
        free(lag);
    }
    text = lf_notify_metrics(in, text);
    return s_reply_text(in, req->conn, 200, "text/plain; version=0.0.4", text);
}

/* The key of a plain HTML form (no JavaScript, so no Authorization header): the
 * hidden field leadflow_key of an application/x-www-form-urlencoded body. */
static char *s_form_key(lf_req_t *req) {
    const char *ct = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
    char media[64], charset[32];
    if (lf_parse_content_type(ct, media, sizeof media, charset, sizeof charset) < 0 ||
        strcmp(media, "application/x-www-form-urlencoded") != 0 || !req->body)
        return NULL;
    const char *why = NULL;
    json_t *form = lf_parse_form(req->body, req->len, &why);
    const char *k = json_string_value(json_object_get(form, "leadflow_key"));
    char *copy = k ? lf_strdup(k) : NULL;
    json_decref(form);
    return copy;
}

/* 1 when the request's key can only be in its body: no Authorization header, a form
 * body, and a route that takes a key there (a plain HTML form's leadflow_key, a
 * Twilio-signed call). */
static int s_key_in_body(lf_intake_t *in, lf_req_t *req) {
    if (MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Authorization"))
        return 0;
    const char *ct = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
    char media[64], charset[32];
    if (lf_parse_content_type(ct, media, sizeof media, charset, sizeof charset) < 0 ||
        strcmp(media, "application/x-www-form-urlencoded") != 0)
        return 0;
    if (!strcmp(req->route->pattern, "/v1/leads"))
        return 1;
    return in->twilio_token && !strcmp(req->route->pattern, "/v1/calls");
}

/* Checks the bearer key: the admin key in constant time, others by their SHA-256
 * in the api_keys cache. Returns 0, or -1 when the keys cannot be read (503). */
static int s_authenticate(lf_intake_t *in, lf_req_t *req, lf_auth_t *auth) {
    memset(auth, 0, sizeof *auth);
    const char *h =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Authorization");
    char *form_key = NULL;
    const char *key = NULL;
    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        key = h + 7;
        while (*key == ' ')
            key++;
    } else if (h && strncasecmp(h, "Basic ", 6) == 0 && strlen(h) < 400) {
        /* Phone systems that can only put credentials in the URL
         * (https://x:<key>@host/v1/calls): the password is the key. */
        unsigned char dec[320];
        int n = EVP_DecodeBlock(dec, (const unsigned char *)h + 6, (int)strlen(h + 6));
        if (n > 0) {
            dec[n] = '\0';
            const char *colon = strchr((const char *)dec, ':');
            if (colon)
                key = form_key = lf_strdup(colon + 1);
        }
    } else if (!h && req->body && req->route &&
               !strcmp(req->route->pattern, "/v1/leads")) {
        key = form_key = s_form_key(req);
        auth->via_form_field = key != NULL;
    }
    if (!key || !*key || strlen(key) > 256) {
        free(form_key);
        return 0;
    }
    size_t klen = strlen(key);
    int rc = 0;
    if (in->admin_key && klen == strlen(in->admin_key) &&
        CRYPTO_memcmp(key, in->admin_key, klen) == 0) {
        auth->ok = 1;
        auth->scope = LF_SCOPE_ADMIN;
        auth->is_admin = 1;
        lf_strlcpy(auth->key_id, "admin", sizeof auth->key_id);
    } else if (in->keys) {
        lf_key_info_t info;
        int found = lf_keys_lookup(in->keys, lf_intake_db(in), key, &info);
        if (found < 0) {
            rc = -1;
        } else if (found == 1) {
            auth->ok = 1;
            auth->scope = info.scope;
            auth->is_admin = info.scope == LF_SCOPE_ADMIN;
            lf_strlcpy(auth->key_id, info.id, sizeof auth->key_id);
            lf_strlcpy(auth->channel, info.channel, sizeof auth->channel);
            lf_strlcpy(auth->rep_id, info.rep_id, sizeof auth->rep_id);
            auth->rate_per_minute = info.rate_per_minute;
        }
    }
    /* Only a public web-form key may travel in a form field. */
    if (auth->via_form_field && lf_auth_bit(auth) != LF_SCOPE_WEB_FORM)
        memset(auth, 0, sizeof *auth);
    free(form_key);
    return rc;
}

/* OPTIONS (CORS preflight) carries no key: an origin listed by any active key may
 * send the headers a form needs. */
static enum MHD_Result s_preflight(lf_intake_t *in, lf_req_t *req) {
    const char *origin =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Origin");
    if (in->keys) { /* refreshes the cache when it is old */
        lf_key_info_t info;
        lf_keys_lookup(in->keys, lf_intake_db(in), "", &info);
    }
    if (!origin || !in->keys || !lf_keys_origin_allowed(in->keys, origin))
        return lf_reply_error(in, req->conn, 403, "origin_not_allowed",
                              "this origin is not allowed by any key: add it with "
                              "leadflow-keys create --origin",
                              NULL);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
    MHD_add_response_header(r, "Access-Control-Allow-Methods", "POST, GET, OPTIONS");
    MHD_add_response_header(r, "Access-Control-Allow-Headers",
                            "Authorization, Content-Type, Idempotency-Key, "
                            "X-Leadflow-Partner");
    MHD_add_response_header(r, "Access-Control-Max-Age", "600");
    MHD_add_response_header(r, "Vary", "Origin");
    enum MHD_Result rc = MHD_queue_response(req->conn, 204, r);
    MHD_destroy_response(r);
    atomic_fetch_add(&in->responses_2xx, 1);
    return rc;
}

/* Answers what must not reach a handler: an unknown path (404/405), a missing or
 * unknown key (401), a key outside the route's scopes or a web-form key from a
 * foreign origin (403), a key over its rate (429), a body over the limit (413).
 * Runs in the first callback, before the body; when the key can only be in the body
 * it returns 0 unsettled and runs again once the body is in (body_read). Returns 1
 * after queuing the answer in *rc, 0 to go on. */
static int s_gate(lf_intake_t *in, lf_req_t *req, int body_read, enum MHD_Result *rc) {
    if (!strcmp(req->method, "OPTIONS")) {
        *rc = s_preflight(in, req);
        return 1;
    }
    if (!req->route) {
        /* Known path with another method gets 405, anything else 404. */
        char params[2][96];
        for (const lf_route_t *const *t = s_tables; *t; t++)
            for (const lf_route_t *r = *t; r->method; r++)
                if (s_match(r->pattern, req->url, params)) {
                    *rc = lf_reply_error(in, req->conn, 405, "method_not_allowed",
                                         "this path does not take that method", NULL);
                    return 1;
                }
        *rc = lf_reply_error(in, req->conn, 404, "not_found", "no such endpoint", NULL);
        return 1;
    }
    int scopes = lf_access_scopes(req->method, req->route->pattern);
    if (!body_read && in->limits) {
        /* Per client address, before the key: a flood of guesses is cut here too. */
        int wait = lf_limits_rate(in->limits, req->client, lf_mono_ms());
        if (wait > 0) {
            *rc = lf_reply_error_retry(in, req->conn, 429, "rate_limited",
                                       "too many requests from this address; see "
                                       "Retry-After",
                                       wait);
            return 1;
        }
    }
    /* The key is checked once per request, before the body when it can be. */
    if (!(scopes & LF_ACCESS_PUBLIC) && !req->authed) {
        if (!body_read && s_key_in_body(in, req))
            return 0; /* read the form first (LEADFLOW_MAX_BODY at most) */
        if (s_authenticate(in, req, &req->auth) < 0) {
            *rc = lf_reply_error(in, req->conn, 503, "unavailable",
                                 "API keys cannot be read right now; retry later", NULL);
            return 1;
        }
        req->authed = 1;
        const lf_auth_t *auth = &req->auth;
        if (!auth->ok) {
            /* A Twilio form post proves itself with its signature (api_channels.c). */
            int signed_call = body_read && in->twilio_token &&
                              !strcmp(req->route->pattern, "/v1/calls");
            if (!signed_call) {
                *rc = lf_reply_error(
                    in, req->conn, 401, "unauthorized",
                    "missing or wrong key: send Authorization: Bearer <key>", NULL);
                return 1;
            }
        } else if (!(scopes & lf_auth_bit(auth))) {
            char msg[160];
            snprintf(msg, sizeof msg, "a key of scope %s%s may not call %s %s",
                     lf_scope_name(auth->scope),
                     lf_auth_bit(auth) == LF_SCOPE_WEB_FORM ? " (web_form)" : "",
                     req->method, req->route->pattern);
            *rc = lf_reply_error(in, req->conn, 403, "forbidden", msg, NULL);
            return 1;
        }
        if (lf_auth_bit(auth) == LF_SCOPE_WEB_FORM) {
            /* A public form key works only from its own origins. */
            const char *origin =
                MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Origin");
            if (origin && !lf_keys_origin_allowed_for(in->keys, auth->key_id, origin)) {
                *rc = lf_reply_error(in, req->conn, 403, "forbidden",
                                     "this key is not allowed from this origin", NULL);
                return 1;
            }
        }
        if (auth->ok && !auth->is_admin && auth->rate_per_minute > 0) {
            int wait =
                lf_keys_rate(in->keys, auth->key_id, auth->rate_per_minute, lf_mono_ms());
            if (wait > 0) {
                *rc = lf_reply_error_retry(
                    in, req->conn, 429, "rate_limited",
                    "too many requests for this key; see Retry-After", wait);
                return 1;
            }
        }
    }
    if (req->too_large) {
        char msg[96];
        snprintf(msg, sizeof msg, "the body is larger than %zu bytes", req->limit);
        *rc = lf_reply_error(in, req->conn, 413, "payload_too_large", msg, NULL);
        return 1;
    }
    /* A lead id is a UUID (leads.id is a uuid column): anything else names no lead. */
    if (!strncmp(req->route->pattern, "/v1/leads/{}", 12) &&
        !lf_uuid_valid(req->params[0])) {
        *rc = lf_reply_error(in, req->conn, 404, "not_found", "no such lead", NULL);
        return 1;
    }
    return 0;
}

/* MHD calls this once per request, before the headers, with the request target as
 * the client sent it (still percent-encoded, query string included). Twilio signs
 * exactly that, so it is kept; everything else routes on the decoded path. */
static void *s_on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
    lf_req_t *req = lf_calloc(1, sizeof *req);
    req->target = lf_strdup(uri ? uri : "");
    return req;
}

/* A database worker runs a db route's handler; what it answers is kept with the
 * request (s_answer) and sent by the HTTP thread when the connection resumes. */
static void s_work(void *arg) {
    lf_req_t *req = arg;
    s_deferring = req;
    enum MHD_Result rc = req->route->fn(req->in, req, &req->auth);
    s_deferring = NULL;
    if (!req->reply_ready && rc == MHD_YES) {
        lf_error("handler gave no answer route=%s", req->route->pattern);
        req->reply_status = 500;
        req->reply_text = lf_strdup("{\"error\":\"internal\",\"message\":\"no answer\"}");
        req->reply_type = "application/json; charset=utf-8";
        req->reply_ready = 1;
    }
    MHD_resume_connection(req->conn);
}

int lf_req_hand_off(lf_req_t *req, int (*queue)(void *arg), void *arg) {
    MHD_suspend_connection(req->conn);
    if (queue(arg) == 0)
        return 0;
    MHD_resume_connection(req->conn);
    return -1;
}

static int s_queue_work(void *arg) {
    lf_req_t *req = arg;
    return lf_workers_submit(req->in->workers, s_work, req);
}

/* Runs the route's handler: here, or - for a db route - on a database worker, with the
 * connection suspended meanwhile. */
static enum MHD_Result s_run(lf_intake_t *in, lf_req_t *req) {
    if (!req->route->db || !in->workers)
        return req->route->fn(in, req, &req->auth);
    req->in = in;
    req->on_worker = 1;
    if (lf_req_hand_off(req, s_queue_work, req) < 0) {
        req->on_worker = 0;
        return lf_reply_error_retry(in, req->conn, 503, "unavailable",
                                    "too much database work waiting; retry later", 1);
    }
    return MHD_YES;
}

/* Answers 408 to a request whose body is still arriving past its deadline
 * (LEADFLOW_HTTP_REQUEST_TIMEOUT). libmicrohttpd 0.9.75 queues a response only before
 * the body or after all of it (MHD_queue_response refuses in between), so the answer
 * is written to the socket here, on the connection's own thread, while MHD is reading
 * the body and writes nothing: a few hundred bytes into an empty send buffer of a
 * non-blocking socket. The write side is then shut (the client reads the answer, then
 * the end), what already arrived is drained so that the close is not a reset that
 * could discard the answer at the client, and the caller returns MHD_NO so MHD closes
 * the connection. No TLS here: intake speaks plain HTTP behind its proxy. */
static void s_timeout_answer(lf_intake_t *in, struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    atomic_fetch_add(&in->responses_4xx, 1);
    if (!ci || ci->connect_fd == MHD_INVALID_SOCKET)
        return;
    int fd = ci->connect_fd;
    static const char body[] =
        "{\"error\":\"request_timeout\",\"message\":\"the request body took longer "
        "than LEADFLOW_HTTP_REQUEST_TIMEOUT to arrive; nothing was stored\"}";
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    char cors[400] = "";
    if (origin && strlen(origin) < 300 && in->keys &&
        lf_keys_origin_allowed(in->keys, origin))
        snprintf(cors, sizeof cors, "Access-Control-Allow-Origin: %s\r\n", origin);
    char text[1024];
    int n = snprintf(text, sizeof text,
                     "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                     "Content-Type: application/json; charset=utf-8\r\n"
                     "Vary: Origin\r\n%sContent-Length: %zu\r\n\r\n%s",
                     cors, sizeof body - 1, body);
    if (n <= 0 || (size_t)n >= sizeof text)
        return;
    if (send(fd, text, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n)
        return; /* the client is gone or not reading: the close says the rest */
    shutdown(fd, SHUT_WR);
    char sink[4096];
    for (int i = 0; i < 64; i++) /* at most 256 KiB of what is already here */
        if (recv(fd, sink, sizeof sink, MSG_DONTWAIT) <= 0)
            break;
}

static enum MHD_Result s_on_request(void *cls, struct MHD_Connection *conn,
                                    const char *url, const char *method,
                                    const char *version, const char *upload,
                                    size_t *upload_size, void **con_cls) {
    lf_intake_t *in = cls;
    lf_req_t *req = *con_cls;
    if (!req || !req->conn) {
        atomic_fetch_add(&in->requests, 1);
        if (!req)
            req = lf_calloc(1, sizeof *req);
        req->conn = conn;
        lf_strlcpy(req->method, method, sizeof req->method);
        req->url = lf_strdup(url);
        for (const lf_route_t *const *t = s_tables; *t && !req->route; t++)
            for (const lf_route_t *r = *t; r->method; r++)
                if (strcmp(r->method, method) == 0 &&
                    s_match(r->pattern, url, req->params)) {
                    req->route = r;
                    break;
                }
        req->limit = (req->route && req->route->import) ? in->max_import : in->max_body;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > req->limit)
            req->too_large = 1;
        *con_cls = req;
        req->started_ms = lf_mono_ms();
        if (in->limits) {
            const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
            lf_limits_client(
                in->limits, ci ? ci->client_addr : NULL,
                MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Forwarded-For"),
                req->client, sizeof req->client);
        }
        enum MHD_Result rc;
        if (s_gate(in, req, 0, &rc)) {
            req->answered = 1;
            return rc;
        }
        if (!req->authed) /* the key is in a form body: a single lead's size at most */
            req->limit = in->max_body;
        return MHD_YES;
    }
    if (req->answered) { /* answered before the body: drop whatever still arrives */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        if (in->request_timeout_ms > 0 &&
            lf_mono_ms() - req->started_ms > in->request_timeout_ms) {
            /* A body still trickling in past its deadline: 408, then the connection
             * is closed. */
            lf_info("request body too slow, answered 408 client=%s", req->client);
            s_timeout_answer(in, conn);
            return MHD_NO;
        }
        if (!req->too_large && req->received + *upload_size > req->limit)
            req->too_large = 1;
        req->received += *upload_size;
        /* The time intake itself spends parsing an import as it arrives is not the
         * client's: it moves the body's deadline on. */
        int64_t t0 = lf_mono_ms();
        if (!req->too_large && req->streaming > 0) {
            lf_import_body(in, req, upload, *upload_size);
            req->started_ms += lf_mono_ms() - t0;
        } else if (!req->too_large) {
            if (req->len + *upload_size + 1 > req->cap) {
                req->cap = (req->len + *upload_size + 1) * 2;
                if (req->cap > req->limit + 1)
                    req->cap = req->limit + 1;
                req->body = lf_realloc(req->body, req->cap);
            }
            memcpy(req->body + req->len, upload, *upload_size);
            req->len += *upload_size;
            req->body[req->len] = '\0';
            /* A route that parses its body as it arrives gets it from the first 8 bytes
             * on (a file's signature decides), and nothing is buffered after. */
            if (req->route->import && !req->streaming && req->authed && req->len >= 8) {
                int took = lf_import_body(in, req, req->body, req->len);
                req->started_ms += lf_mono_ms() - t0;
                if (took) {
                    req->streaming = 1;
                    free(req->body);
                    req->body = NULL;
                    req->len = req->cap = 0;
                } else {
                    req->streaming = -1;
                }
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (req->on_worker) { /* resumed after a database worker ran the handler */
        if (!req->reply_ready)
            return MHD_NO; /* the handler gave up on the connection */
        char *text = req->reply_text;
        req->reply_text = NULL;
        req->on_worker = 0;
        return s_send(in, conn, req->reply_status, text, req->reply_type,
                      req->reply_retry_after);
    }
    if (req->job_active || req->ext) /* resumed after the commit */
        return req->route->fn(in, req, &req->auth);
    if (!req->body)
        req->body = lf_calloc(1, 1);
    enum MHD_Result rc;
    if (s_gate(in, req, 1, &rc))
        return rc;
    return s_run(in, req);
}

static void s_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe) {
    lf_req_t *req = *con_cls;
    if (!req)
        return;
    if (req->job_active)
        json_decref(req->job.row);
    if (req->ext && req->ext_free)
        req->ext_free(req->ext);
    free(req->reply_text);
    free(req->url);
    free(req->target);
    free(req->body);
    free(req);
    *con_cls = NULL;
}

/* Accept policy: the per-address connection cap. */
static enum MHD_Result s_on_accept(void *cls, const struct sockaddr *addr,
                                   socklen_t len) {
    lf_intake_t *in = cls;
    if (atomic_load(&in->closing))
        return MHD_NO;
    return !in->limits || lf_limits_accept(in->limits, addr) ? MHD_YES : MHD_NO;
}

void lf_http_close(lf_intake_t *in) {
    atomic_store(&in->closing, 1);
}

static void s_on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                            enum MHD_ConnectionNotificationCode code) {
    lf_intake_t *in = cls;
    if (!in->limits)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    lf_limits_count(in->limits, ci ? ci->client_addr : NULL,
                    code == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
}

struct MHD_Daemon *lf_http_start(lf_intake_t *in, const char *addr, int port,
                                 int idle_s) {
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    a4.sin_family = AF_INET; /* every IPv4 interface unless addr says otherwise */
    a4.sin_port = htons((uint16_t)port);
    a4.sin_addr.s_addr = htonl(INADDR_ANY);
    const struct sockaddr *sa = (const struct sockaddr *)&a4;
    if (addr && *addr) {
        if (inet_pton(AF_INET, addr, &a4.sin_addr) == 1) {
            a4.sin_family = AF_INET;
            a4.sin_port = htons((uint16_t)port);
            sa = (const struct sockaddr *)&a4;
        } else if (inet_pton(AF_INET6, addr, &a6.sin6_addr) == 1) {
            a6.sin6_family = AF_INET6;
            a6.sin6_port = htons((uint16_t)port);
            sa = (const struct sockaddr *)&a6;
            flags |= MHD_USE_IPv6;
        } else {
            lf_error("LEADFLOW_INTAKE_ADDR is not an IP address: %s", addr);
            return NULL;
        }
    }
    return MHD_start_daemon(
        flags, (uint16_t)port, s_on_accept, in, s_on_request, in,
        MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)lf_config_int(in->cfg, "LEADFLOW_HTTP_THREADS"),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)idle_s, MHD_OPTION_CONNECTION_LIMIT,
        4096u, MHD_OPTION_NOTIFY_COMPLETED, s_on_completed, in,
        MHD_OPTION_NOTIFY_CONNECTION, s_on_connection, in, MHD_OPTION_URI_LOG_CALLBACK,
        s_on_uri, in, MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_END);
}
