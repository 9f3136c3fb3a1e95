/* api_notifications.c - where notifications go and what became of them.
 *
 * A rep's `notify` is a list of destinations {type, url, secret, to, format}. Robot
 * URLs carry the robot's key and secrets sign messages, so both are write-only: the
 * API shows them masked (lf_notify_public() in SQL: "...?key=****abcd", "****"), and a
 * masked value sent back unchanged in a PATCH means "keep what is stored" - the same
 * masking rule is applied here to recognise it. A rep may set its own chat
 * destinations; webhook and e-mail destinations send lead data out of the chat tools'
 * reach and are set by managers and admins. Secrets are stored encrypted with
 * LEADFLOW_SECRET_KEY (lf/secret.h); without a usable key a new secret is refused (503),
 * never stored in plain text. Hosts on private or loopback addresses are
 * refused unless LEADFLOW_NOTIFY_ALLOW_PRIVATE allows them (the scheduler checks the
 * address it connects to again at every send).
 *
 * GET /v1/notifications lists deliveries (one per notification and destination) with
 * their state; POST /v1/notifications/{id}/retry sends a dead one again. /metrics
 * gets the delivery counters the scheduler keeps in notify_stats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/lead.h"
#include "lf/netguard.h"
#include "lf/secret_stored.h"
#include "access.h"
#include "lf/util.h"
#include "notify_api.h"

#define S_MAX_DESTS 10

static const char *const s_types[] = {"wecom",   "dingtalk", "feishu", "slack",
                                      "webhook", "email",    NULL};

static int s_in(const char *const *list, const char *s) {
    for (; s && *list; list++)
        if (!strcmp(*list, s))
            return 1;
    return 0;
}

/* The masked form of a URL, as lf_notify_mask() in SQL: up to the last '/' or '=',
 * then "****" and the last four characters when at least five follow. */
static void s_mask(const char *url, char *out, size_t outsz) {
    const char *cut = NULL;
    for (const char *p = url; *p; p++)
        if (*p == '/' || *p == '=')
            cut = p;
    if (!cut) {
        lf_strlcpy(out, url, outsz);
        return;
    }
    size_t tail = strlen(cut + 1);
    snprintf(out, outsz, "%.*s****%s", (int)(cut + 1 - url), url,
             tail >= 5 ? cut + 1 + tail - 4 : "");
}

/* The stored destination of the same type whose URL masks to url, or NULL. */
static const json_t *s_stored_for(const json_t *stored, const char *type,
                                  const char *url) {
    size_t i;
    json_t *d;
    json_array_foreach(stored, i, d) {
        const char *su = json_string_value(json_object_get(d, "url"));
        const char *st = json_string_value(json_object_get(d, "type"));
        char m[2200];
        if (!su || !st || strcmp(st, type))
            continue;
        s_mask(su, m, sizeof m);
        if (!strcmp(m, url) || !strcmp(su, url))
            return d;
    }
    return NULL;
}

static int s_is_managed(const json_t *d) {
    const char *t = json_string_value(json_object_get(d, "type"));
    return t && (!strcmp(t, "webhook") || !strcmp(t, "email"));
}

/* The webhook and e-mail destinations of a list, for comparing before and after. */
static json_t *s_managed(const json_t *list) {
    json_t *out = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(list, i, d) if (s_is_managed(d)) json_array_append(out, d);
    return out;
}

static int s_seal(lf_intake_t *in, json_t *list);

static int s_policy(lf_intake_t *in) {
    int p = lf_net_policy_parse(lf_config_str(in->cfg, "LEADFLOW_NOTIFY_ALLOW_PRIVATE"));
    return p < 0 ? LF_NET_PUBLIC : p;
}

static int s_plain(const char *s, size_t max) {
    return s && *s && strlen(s) <= max && !strpbrk(s, "\r\n<>\"");
}

/* Checks one destination (completing masked values from stored). */
static void s_check(lf_intake_t *in, json_t *d, size_t i, const json_t *stored,
                    json_t *errors) {
    char field[64], why[400];
    snprintf(field, sizeof field, "notify[%zu]", i);
    if (!json_is_object(d)) {
        lf_field_error(errors, field, "type",
                       "must be {\"type\", \"url\", \"secret\", \"to\"}");
        return;
    }
    const char *k;
    json_t *v;
    json_object_foreach(d, k, v) {
        if (!s_in((const char *const[]){"type", "url", "secret", "to", "format", NULL},
                  k)) {
            snprintf(field, sizeof field, "notify[%zu].%.20s", i, k);
            lf_field_error(errors, field, "unknown",
                           "is not a destination field (type, url, secret, to, format)");
        }
    }
    const char *type = json_string_value(json_object_get(d, "type"));
    snprintf(field, sizeof field, "notify[%zu].type", i);
    if (!s_in(s_types, type)) {
        lf_field_error(errors, field, "invalid",
                       "must be wecom, dingtalk, feishu, slack, webhook or email");
        return;
    }
    int email = !strcmp(type, "email");
    const char *url = json_string_value(json_object_get(d, "url"));
    snprintf(field, sizeof field, "notify[%zu].url", i);
    if (email && json_object_get(d, "url")) {
        lf_field_error(errors, field, "invalid",
                       "e-mail goes through the SMTP server of the configuration: "
                       "give only \"to\"");
    } else if (!email) {
        if (!json_is_string(json_object_get(d, "url")) || !url || strlen(url) > 2048) {
            lf_field_error(errors, field, "required",
                           "the robot's or webhook's URL (http:// or https://)");
            return;
        }
        if (strstr(url, "****")) {
            const json_t *s = s_stored_for(stored, type, url);
            if (!s) {
                lf_field_error(errors, field, "invalid",
                               "a masked URL that matches no stored destination: send "
                               "the whole URL");
                return;
            }
            json_object_set(d, "url", json_object_get(s, "url"));
            url = json_string_value(json_object_get(d, "url"));
        }
    }
    snprintf(field, sizeof field, "notify[%zu].secret", i);
    v = json_object_get(d, "secret");
    if (v && json_is_null(v)) {
        json_object_del(d, "secret");
    } else if (v) {
        const char *sec = json_string_value(v);
        if (!sec || !*sec || strlen(sec) > 256) {
            lf_field_error(errors, field, "invalid", "must be a string of 1..256 bytes");
        } else if (lf_secret_is_sealed(sec)) {
            lf_field_error(errors, field, "invalid",
                           "must not begin with \"" LF_SECRET_PREFIX
                           "\" (how stored secrets are marked)");
        } else if (!strcmp(sec, "****")) {
            const json_t *s = url ? s_stored_for(stored, type, url) : NULL;
            json_t *ss = json_object_get(s, "secret");
            if (!ss)
                lf_field_error(errors, field, "invalid",
                               "\"****\" keeps the stored secret, but this destination "
                               "has none: send the secret");
            else
                json_object_set(d, "secret", ss);
        }
        if (email)
            lf_field_error(errors, field, "invalid", "e-mail has no secret");
    }
    snprintf(field, sizeof field, "notify[%zu].to", i);
    v = json_object_get(d, "to");
    const char *to = json_string_value(v);
    if (email && (!s_plain(to, 254) || !strchr(to, '@') || strchr(to, ' ')))
        lf_field_error(errors, field, email && !v ? "required" : "invalid",
                       "the e-mail address to send to");
    else if (v && !s_plain(to, 128))
        lf_field_error(errors, field, "invalid",
                       "whom to @-mention: a mobile number (WeCom, DingTalk), a user id "
                       "(Feishu ou_..., Slack U...)");
    snprintf(field, sizeof field, "notify[%zu].format", i);
    v = json_object_get(d, "format");
    if (v) {
        const char *f = json_string_value(v);
        int ok = 0;
        if (!strcmp(type, "wecom") || !strcmp(type, "dingtalk"))
            ok = s_in((const char *const[]){"text", "markdown", NULL}, f);
        else if (!strcmp(type, "feishu"))
            ok = s_in((const char *const[]){"text", "post", "interactive", NULL}, f);
        if (!ok)
            lf_field_error(errors, field, "invalid",
                           "wecom and dingtalk: text or markdown; feishu: text, post or "
                           "interactive; the others have one format");
    }
    /* The host is checked when the destination is new or changed: an unrelated edit
     * of the rep does not depend on DNS. */
    int unchanged = 0;
    size_t j;
    json_t *o;
    json_array_foreach(stored, j, o) unchanged |= json_equal(o, d);
    snprintf(field, sizeof field, "notify[%zu].url", i);
    if (!email && url && !unchanged &&
        lf_net_url_allowed(url, s_policy(in), why, sizeof why) < 0)
        lf_field_error(errors, field, "invalid", why);
}

int lf_notify_prepare(lf_intake_t *in, const lf_auth_t *auth, const char *rep_id,
                      json_t *rep, const json_t *stored, json_t *errors) {
    json_t *list = json_object_get(rep, "notify");
    if (!list || json_is_null(list)) {
        json_object_set_new(rep, "notify", json_array());
        list = json_object_get(rep, "notify");
    }
    if (!json_is_array(list) || json_array_size(list) > S_MAX_DESTS) {
        lf_field_error(errors, "notify", "type",
                       "must be a list of at most 10 destinations {\"type\", \"url\", "
                       "\"secret\", \"to\"}");
        return 0;
    }
    size_t i;
    json_t *d;
    json_array_foreach(list, i, d) s_check(in, d, i, stored, errors);
    /* Webhook and e-mail: managers and admins only (which reps a manager may edit at
     * all is decided by the access rules before). */
    (void)rep_id;
    if (!auth || (auth->scope != LF_SCOPE_ADMIN && auth->scope != LF_SCOPE_MANAGER)) {
        json_t *before = s_managed(stored), *after = s_managed(list);
        int same = json_equal(before, after);
        json_decref(before);
        json_decref(after);
        if (!same)
            return -1;
    }
    return json_array_size(errors) ? 0 : s_seal(in, list);
}

/* Seals the secrets of list that came in plain (those kept with "****" are stored
 * sealed already, or plain from before encryption until leadflow-migrate seals them).
 * Returns 0, or -2 when a new secret cannot be stored sealed: no key, or a key that
 * does not open the secrets stored before (the scheduler could not read what this
 * one seals). */
static int s_seal(lf_intake_t *in, json_t *list) {
    int fresh = 0;
    size_t i;
    json_t *d;
    json_array_foreach(list, i, d) {
        const char *s = json_string_value(json_object_get(d, "secret"));
        fresh |= s && !lf_secret_is_sealed(s);
    }
    if (!fresh)
        return 0;
    if (!in->secret_key || in->secret_problem[0])
        return -2;
    return lf_secret_seal_list(in->secret_key, list) < 0 ? -2 : 0;
}

enum MHD_Result lf_notify_refused(lf_intake_t *in, struct MHD_Connection *conn, int rc) {
    if (rc == -2) {
        char msg[400];
        snprintf(msg, sizeof msg,
                 "notification secrets cannot be stored: %s; nothing was stored",
                 in->secret_problem[0] ? in->secret_problem
                                       : "LEADFLOW_SECRET_KEY is not set on this server");
        return lf_reply_error(in, conn, 503, "secret_key_unavailable", msg, NULL);
    }
    return lf_reply_error(
        in, conn, 403, "forbidden",
        "webhook and e-mail destinations are set by managers and admins", NULL);
}

/* ---- GET /v1/notifications ---- */

static enum MHD_Result s_list(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth) {
    struct MHD_Connection *c = req->conn;
    const char *to = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "to");
    const char *state = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "state");
    const char *kind = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "kind");
    const char *limit = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
    const char *cursor = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "cursor");
    if (to && !strcmp(to, "me"))
        to = auth->rep_id[0] ? auth->rep_id : NULL;
    if (state &&
        !s_in((const char *const[]){"pending", "sending", "sent", "dead", NULL}, state))
        return lf_reply_error(in, c, 400, "bad_request",
                              "state must be pending, sent or dead", NULL);
    long lim = limit ? strtol(limit, NULL, 10) : 50;
    if (lim < 1 || lim > 500)
        return lf_reply_error(in, c, 400, "bad_request", "limit must be 1..500", NULL);
    char *end = NULL;
    long long cur = cursor ? strtoll(cursor, &end, 10) : 0;
    if (cursor && (end == cursor || *end || cur <= 0))
        return lf_reply_error(in, c, 400, "bad_request", "bad cursor", NULL);
    char lims[16], curs[24];
    snprintf(lims, sizeof lims, "%ld", lim);
    snprintf(curs, sizeof curs, "%lld", cur);
    const char *p[] = {to,
                       state,
                       kind,
                       lims,
                       cursor ? curs : NULL,
                       lf_access_scope_param(auth),
                       lf_access_rep_param(auth)};
    PGresult *res = lf_db_exec(
        lf_intake_db(in),
        "WITH page AS (SELECT x.*, n.kind, n.rep_id, n.lead_id, n.message,"
        "  n.created_at AS n_at, nd.type, nd.url, nd.to_addr, nd.paused_until"
        "  FROM notify_deliveries x JOIN notifications n ON n.id = x.notification_id"
        "  JOIN notify_dests nd ON nd.key = x.dest_key"
        "  WHERE ($1::text IS NULL OR n.rep_id = $1)"
        "   AND ($2::text IS NULL OR x.state = $2"
        "        OR ($2 = 'pending' AND x.state = 'sending'))"
        "   AND ($3::text IS NULL OR n.kind = $3)"
        "   AND ($5::bigint IS NULL OR x.id < $5::bigint)"
        "   AND lf_caller_reaches($6, $7, n.rep_id)"
        "  ORDER BY x.id DESC LIMIT $4::int)"
        " SELECT json_build_object('notifications', coalesce(json_agg(json_build_object("
        "  'id', p.id::text, 'notification_id', p.notification_id::text,"
        "  'kind', p.kind, 'to', p.rep_id, 'lead_id', p.lead_id, 'message', p.message,"
        "  'state', p.state, 'attempts', p.attempts, 'last_error', p.last_error,"
        "  'destination', json_build_object('type', p.type,"
        "    'url', lf_notify_mask(p.url), 'to', p.to_addr,"
        "    'paused_until', lf_rfc3339(p.paused_until)),"
        "  'delivery_id', p.batch, 'created_at', lf_rfc3339(p.n_at),"
        "  'next_at', CASE WHEN p.state IN ('pending', 'sending')"
        "    THEN lf_rfc3339(p.next_at) END,"
        "  'sent_at', lf_rfc3339(p.sent_at)) ORDER BY p.id DESC), '[]'),"
        "  'next_cursor', CASE WHEN count(*) = $4::int THEN min(p.id)::text END)::text"
        " FROM page p",
        7, p);
    if (!res)
        return lf_reply_error(in, c, 503, "unavailable", "the database cannot be reached",
                              NULL);
    json_t *body = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    return lf_reply_json(in, c, 200, body ? body : json_object());
}

/* ---- POST /v1/notifications/{id}/retry ---- */

static enum MHD_Result s_retry(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth) {
    char *end = NULL;
    long long id = strtoll(req->params[0], &end, 10);
    if (end == req->params[0] || *end || id <= 0)
        return lf_reply_error(in, req->conn, 404, "not_found", "no such notification",
                              NULL);
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", id);
    const char *p[] = {ids, lf_access_scope_param(auth), lf_access_rep_param(auth)};
    /* Dead -> pending, due now, a fresh maximum age and a new delivery id; the
     * destination's pause ends (someone fixed it, or wants to know now). Its
     * next_send_at is left alone: it may hold the destination for a message still in
     * flight (lf_notify_lease), or be its rate limit or a Retry-After, and none of them
     * may be cut short. */
    PGresult *res = lf_db_exec(
        lf_intake_db(in),
        "WITH x AS (SELECT d.id, d.state, d.dest_key FROM notify_deliveries d"
        "  JOIN notifications n ON n.id = d.notification_id WHERE d.id = $1::bigint"
        "  AND lf_caller_reaches($2, $3, n.rep_id) FOR UPDATE OF d),"
        " u AS (UPDATE notify_deliveries d SET state = 'pending', next_at = now(),"
        "  since = now(), batch = NULL FROM x WHERE d.id = x.id AND x.state = 'dead'"
        "  RETURNING d.id),"
        " p AS (UPDATE notify_dests nd SET paused_until = NULL, fails = 0 FROM x, u"
        "  WHERE nd.key = x.dest_key)"
        " SELECT x.state, (SELECT count(*) FROM u) FROM x",
        3, p);
    if (!res)
        return lf_reply_error(in, req->conn, 503, "unavailable",
                              "the database cannot be reached", NULL);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return lf_reply_error(in, req->conn, 404, "not_found", "no such notification",
                              NULL);
    }
    int retried = atoi(PQgetvalue(res, 0, 1));
    char state[16];
    lf_strlcpy(state, PQgetvalue(res, 0, 0), sizeof state);
    PQclear(res);
    if (!retried) {
        char msg[128];
        snprintf(msg, sizeof msg,
                 "only a dead notification can be retried; this one is %s", state);
        return lf_reply_error(in, req->conn, 409, "not_dead", msg, NULL);
    }
    return lf_reply_json(in, req->conn, 202,
                         json_pack("{s:s, s:s}", "id", ids, "state", "pending"));
}

/* ---- /metrics ---- */

/* One metric family: its HELP/TYPE lines and one sample per destination type
 * (column col of res). */
static void s_family(char **out, PGresult *res, const char *name, const char *type,
                     const char *help, int col) {
    char *s = NULL;
    if (asprintf(&s, "%s# HELP %s %s\n# TYPE %s %s\n", *out, name, help, name, type) < 0)
        abort();
    free(*out);
    *out = s;
    for (int r = 0; r < PQntuples(res); r++) {
        if (asprintf(&s, "%s%s{type=\"%s\"} %s\n", *out, name, PQgetvalue(res, r, 0),
                     PQgetvalue(res, r, col)) < 0)
            abort();
        free(*out);
        *out = s;
    }
}

char *lf_notify_metrics(lf_intake_t *in, char *text) {
    static const char *const le[] = {"1",   "5",    "15",    "60",  "300",
                                     "900", "3600", "21600", "+Inf"};
    PGresult *res =
        lf_db_exec(lf_intake_db(in),
                   "SELECT s.type, s.sent, s.failed, s.dead, s.messages, s.latency_sum,"
                   " array_to_string(s.latency_le, ' '),"
                   " (SELECT count(*) FROM notify_deliveries x JOIN notify_dests d"
                   "   ON d.key = x.dest_key WHERE d.type = s.type"
                   "   AND x.state IN ('pending', 'sending'))"
                   " FROM notify_stats s ORDER BY s.type",
                   0, NULL);
    if (!res)
        return text;
    s_family(&text, res, "leadflow_notify_sent_total", "counter",
             "Notifications delivered, per destination type.", 1);
    s_family(&text, res, "leadflow_notify_failed_total", "counter",
             "Failed delivery attempts.", 2);
    s_family(&text, res, "leadflow_notify_dead_total", "counter",
             "Notifications given up on (refused, or past the maximum age).", 3);
    s_family(&text, res, "leadflow_notify_messages_total", "counter",
             "Messages sent (notifications merged into one message count once).", 4);
    s_family(&text, res, "leadflow_notify_pending", "gauge",
             "Notifications waiting or being sent.", 7);
    char *s = NULL;
    if (asprintf(&s,
                 "%s# HELP leadflow_notify_latency_seconds From notification to "
                 "delivery.\n# TYPE leadflow_notify_latency_seconds histogram\n",
                 text) < 0)
        abort();
    free(text);
    text = s;
    for (int r = 0; r < PQntuples(res); r++) {
        const char *type = PQgetvalue(res, r, 0);
        char *save = NULL, *counts = lf_strdup(PQgetvalue(res, r, 6));
        int b = 0;
        for (char *c = strtok_r(counts, " ", &save); c && b < 9;
             c = strtok_r(NULL, " ", &save), b++) {
            if (asprintf(
                    &s,
                    "%sleadflow_notify_latency_seconds_bucket{type=\"%s\",le=\"%s\"} "
                    "%s\n",
                    text, type, le[b], c) < 0)
                abort();
            free(text);
            text = s;
        }
        free(counts);
        if (asprintf(&s,
                     "%sleadflow_notify_latency_seconds_sum{type=\"%s\"} %s\n"
                     "leadflow_notify_latency_seconds_count{type=\"%s\"} %s\n",
                     text, type, PQgetvalue(res, r, 5), type, PQgetvalue(res, r, 1)) < 0)
            abort();
        free(text);
        text = s;
    }
    PQclear(res);
    return text;
}

const lf_route_t lf_routes_notifications[] = {
    {"GET", "/v1/notifications", s_list, 1, 0, 1},
    {"POST", "/v1/notifications/{}/retry", s_retry, 1, 0, 1},
    {NULL, NULL, NULL, 0, 0, 0},
};
