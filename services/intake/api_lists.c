/* api_lists.c - the lists a sales team works from:
 *   GET /v1/leads      filtered, keyset-paginated leads (newest first on (created_at,
 *                      id), or order=updated: oldest first on (updated_at, id) for a CRM
 *                      syncing with updated_after)
 *   GET /v1/me/agenda  the caller's follow-ups, first-contact clocks and stale warnings,
 *                      soonest first
 *
 * Keyset, not OFFSET: a page is an index range scan from the cursor that stops after
 * `limit` rows (0027_list_indexes.sql; docs/router.md has the plans), so page 1,000 of
 * a million leads costs what page 1 does, and leads inserted while a client pages
 * through never make it see a lead twice or skip one. The cursor carries the last
 * row's key: its timestamp in microseconds (exact: timestamptz has microseconds) and
 * its id, because a group commit gives many leads the same created_at.
 *
 * Who sees what: the admin every lead; a manager the leads of the reps it reaches (and,
 * with pool=true, the pools of their teams); a rep its own leads only, whatever the
 * filter says (a filter naming someone else's leads simply finds none). The rule is the
 * same as access.c's lf_caller_sees, written as plain conditions so the planner can use
 * the owner index. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "intake.h"
#include "lead_view.h"
#include "lf/util.h"

#define S_MAX_PARAMS 16

static const char *s_arg(lf_req_t *req, const char *name) {
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

static int s_id_ok(const char *s, size_t max) {
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
            return 0;
    return 1;
}

/* 2026-01-09T20:00:00Z, with optional fraction and a Z or +hh:mm offset. */
static int s_time_ok(const char *s) {
    const char *shape = "dddd-dd-ddTdd:dd:dd";
    size_t i = 0;
    if (!s || strlen(s) < 20)
        return 0;
    for (; shape[i]; i++)
        if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i])
            return 0;
    if (s[i] == '.') {
        i++;
        size_t d = 0;
        while (isdigit((unsigned char)s[i]) && d < 9)
            i++, d++;
        if (d == 0)
            return 0;
    }
    if (s[i] == 'Z')
        return s[i + 1] == '\0';
    return (s[i] == '+' || s[i] == '-') && isdigit((unsigned char)s[i + 1]) &&
           isdigit((unsigned char)s[i + 2]) && s[i + 3] == ':' &&
           isdigit((unsigned char)s[i + 4]) && isdigit((unsigned char)s[i + 5]) &&
           s[i + 6] == '\0';
}

typedef struct {
    char sql[4096];
    size_t len;
    const char *p[S_MAX_PARAMS];
    int n;
} s_query_t;

static void s_add(s_query_t *q, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_add(s_query_t *q, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(q->sql + q->len, sizeof q->sql - q->len, fmt, ap);
    va_end(ap);
    if (w > 0)
        q->len += (size_t)w < sizeof q->sql - q->len ? (size_t)w : 0;
}

/* Adds a parameter and returns its number ($n). */
static int s_param(s_query_t *q, const char *v) {
    q->p[q->n++] = v;
    return q->n;
}

static void s_bad(json_t *errors, const char *field, const char *msg) {
    json_array_append_new(errors, json_pack("{s:s, s:s, s:s}", "field", field, "code",
                                            "invalid", "message", msg));
}

/* ---- GET /v1/leads ---- */

static enum MHD_Result s_list(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth) {
    const char *owner = s_arg(req, "owner"), *team = s_arg(req, "team"),
               *stage = s_arg(req, "stage"), *grade = s_arg(req, "grade"),
               *channel = s_arg(req, "channel"), *pool = s_arg(req, "pool"),
               *qtext = s_arg(req, "q"), *created_after = s_arg(req, "created_after"),
               *updated_after = s_arg(req, "updated_after"),
               *limit_s = s_arg(req, "limit"), *cursor = s_arg(req, "cursor"),
               *order = s_arg(req, "order");
    json_t *errors = json_array();
    int updated = 0;
    if (order && !strcmp(order, "updated"))
        updated = 1;
    else if (order && strcmp(order, "created"))
        s_bad(errors, "order", "created (newest first) or updated (oldest first)");
    if (owner && strcmp(owner, "me") && !s_id_ok(owner, 64))
        s_bad(errors, "owner", "a rep id or me");
    if (owner && !strcmp(owner, "me") && !auth->rep_id[0])
        s_bad(errors, "owner", "me needs a rep or manager key");
    if (team && !s_id_ok(team, 64))
        s_bad(errors, "team", "a team id");
    if (stage && lf_pipeline_is_open(in->pipeline, stage) < 0)
        s_bad(errors, "stage", "a stage of the pipeline");
    if (grade && !(strlen(grade) == 1 && grade[0] >= 'A' && grade[0] <= 'D'))
        s_bad(errors, "grade", "A, B, C or D");
    if (channel && !s_id_ok(channel, 32))
        s_bad(errors, "channel", "a channel name");
    if (pool && strcmp(pool, "true") && strcmp(pool, "false"))
        s_bad(errors, "pool", "true or false");
    if (qtext && (!*qtext || strlen(qtext) > 100))
        s_bad(errors, "q", "1 to 100 bytes");
    if (created_after && !s_time_ok(created_after))
        s_bad(errors, "created_after", "an RFC 3339 time");
    if (updated_after && !s_time_ok(updated_after))
        s_bad(errors, "updated_after", "an RFC 3339 time");
    char *end = NULL;
    long limit = limit_s ? strtol(limit_s, &end, 10) : 50;
    if (limit_s && (!*limit_s || *end || limit < 1 || limit > 500))
        s_bad(errors, "limit", "an integer from 1 to 500");
    /* The cursor: "<c|u><microseconds>_<id>". */
    char cur_us[24] = "", cur_id[72] = "";
    if (cursor) {
        const char *us = cursor + 1, *sep = strchr(cursor, '_');
        size_t n = sep ? (size_t)(sep - us) : 0;
        int ok = (cursor[0] == (updated ? 'u' : 'c')) && sep && n > 0 &&
                 n < sizeof cur_us && lf_uuid_valid(sep + 1);
        for (size_t i = 0; ok && i < n; i++)
            ok = isdigit((unsigned char)us[i]) || (i == 0 && us[i] == '-');
        if (ok) {
            memcpy(cur_us, us, n);
            cur_us[n] = '\0';
            lf_strlcpy(cur_id, sep + 1, sizeof cur_id);
        } else {
            s_bad(errors, "cursor", "a next_cursor of this same order, as it was given");
        }
    }
    if (json_array_size(errors))
        return lf_reply_error(in, req->conn, 422, "validation_failed",
                              "the list query breaks one or more rules", errors);
    json_decref(errors);

    s_query_t q = {.len = 0, .n = 0};
    char limit_buf[24], like[256];
    snprintf(limit_buf, sizeof limit_buf, "%ld", limit + 1);
    const char *key = updated ? "updated_at" : "created_at";
    s_add(&q,
          "SELECT json_build_object(" LF_LEAD_VIEW_FIELDS ")::text,"
          " (extract(epoch FROM l.%s) * 1000000)::bigint, l.id FROM leads l WHERE true",
          key);
    /* Who sees what (see the top of the file). */
    const char *scope = lf_access_scope_param(auth);
    if (!strcmp(scope, "rep")) {
        s_add(&q, " AND l.owner = $%d", s_param(&q, auth->rep_id));
    } else if (!strcmp(scope, "manager")) {
        int me = s_param(&q, auth->rep_id);
        if (pool && !strcmp(pool, "true"))
            s_add(&q,
                  " AND (l.owner = $%d OR l.owner IN (SELECT lf_reps_reachable($%d)) OR"
                  " (l.owner IS NULL AND lf_caller_sees_pool('manager', $%d, l.team)))",
                  me, me, me);
        else
            s_add(&q,
                  " AND (l.owner = $%d OR l.owner IN (SELECT lf_reps_reachable($%d)))",
                  me, me);
    } else if (strcmp(scope, "admin")) {
        s_add(&q, " AND false");
    }
    if (owner)
        s_add(&q, " AND l.owner = $%d",
              s_param(&q, !strcmp(owner, "me") ? auth->rep_id : owner));
    if (team)
        s_add(&q, " AND l.team = $%d", s_param(&q, team));
    if (stage)
        s_add(&q, " AND l.stage = $%d", s_param(&q, stage));
    if (grade)
        s_add(&q, " AND l.grade = $%d", s_param(&q, grade));
    if (channel)
        s_add(&q, " AND l.channel = $%d", s_param(&q, channel));
    if (pool)
        s_add(&q, !strcmp(pool, "true") ? " AND l.pool_reason IS NOT NULL"
                                        : " AND l.pool_reason IS NULL");
    if (qtext) {
        /* Substring, case-insensitive; % and _ typed by the user are literal. */
        size_t o = 0;
        like[o++] = '%';
        for (const char *c = qtext; *c && o < sizeof like - 3; c++) {
            if (*c == '%' || *c == '_' || *c == '\\')
                like[o++] = '\\';
            like[o++] = (char)tolower((unsigned char)*c);
        }
        like[o++] = '%';
        like[o] = '\0';
        /* lead_search.doc is lower(name company email phone) under "C", ASCII
         * letters lowered as here (db/functions/23_lf_lead_search.sql). */
        s_add(&q,
              " AND l.id IN (SELECT s.lead_id FROM lead_search s WHERE s.doc LIKE $%d)",
              s_param(&q, like));
    }
    if (created_after)
        s_add(&q, " AND l.created_at > $%d::timestamptz", s_param(&q, created_after));
    if (updated_after)
        s_add(&q, " AND l.updated_at > $%d::timestamptz", s_param(&q, updated_after));
    if (cursor) {
        int us = s_param(&q, cur_us), id = s_param(&q, cur_id);
        s_add(&q,
              " AND (l.%s, l.id) %s (timestamptz 'epoch' + $%d::bigint * interval '1"
              " microsecond', $%d::uuid)",
              key, updated ? ">" : "<", us, id);
    }
    s_add(&q, updated ? " ORDER BY l.updated_at, l.id"
                      : " ORDER BY l.created_at DESC, l.id DESC");
    s_add(&q, " LIMIT $%d::int", s_param(&q, limit_buf));

    PGresult *res = lf_db_exec(lf_intake_db(in), q.sql, q.n, q.p);
    if (!res)
        return lf_reply_error_retry(in, req->conn, 503, "unavailable",
                                    "the database cannot be reached", 1);
    int rows = PQntuples(res);
    json_t *leads = json_array();
    for (int i = 0; i < rows && i < limit; i++) {
        json_t *l = json_loads(PQgetvalue(res, i, 0), 0, NULL);
        if (l)
            json_array_append_new(leads, l);
    }
    json_t *next = json_null();
    if (rows > limit) {
        char c[128];
        snprintf(c, sizeof c, "%c%s_%s", updated ? 'u' : 'c',
                 PQgetvalue(res, (int)limit - 1, 1), PQgetvalue(res, (int)limit - 1, 2));
        next = json_string(c);
    }
    PQclear(res);
    return lf_reply_json(in, req->conn, 200,
                         json_pack("{s:o, s:o}", "leads", leads, "next_cursor", next));
}

/* ---- GET /v1/me/agenda ---- */

static enum MHD_Result s_agenda(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth) {
    if (!auth->rep_id[0])
        return lf_reply_error(in, req->conn, 422, "validation_failed",
                              "the agenda is a rep's: use a rep or manager key", NULL);
    const char *p[] = {auth->rep_id};
    PGresult *res = lf_db_exec(
        lf_intake_db(in),
        "SELECT json_build_object('items', coalesce(json_agg(json_build_object("
        "  'lead_id', x.lead_id, 'kind', x.kind, 'due_at', lf_rfc3339(x.due),"
        "  'overdue', x.due < now(), 'lead', json_build_object('name', x.name,"
        "  'company', x.company, 'stage', x.stage, 'grade', x.grade))"
        "  ORDER BY x.due, x.lead_id, x.kind), '[]'))::text FROM ("
        /* the follow-up of the last activity that set one, until a later activity */
        " SELECT l.id AS lead_id, 'follow_up' AS kind, f.due_at AS due, l.name, "
        "l.company,"
        "   l.stage, l.grade"
        "  FROM leads l CROSS JOIN LATERAL (SELECT t.step, t.due_at FROM timers t"
        "   WHERE t.lead_id = l.id AND t.kind = 'follow_up' AND t.state <> 'cancelled'"
        "   ORDER BY t.step DESC LIMIT 1) f"
        "  WHERE l.owner = $1 AND l.stage NOT IN ('won', 'lost')"
        "   AND NOT EXISTS (SELECT 1 FROM lead_events e WHERE e.lead_id = l.id"
        "    AND e.type = 'activity' AND (e.data ->> 'seq')::int > f.step)"
        " UNION ALL"
        /* stale warnings still to fire (the keep-alive clocks) */
        " SELECT l.id, 'stale', t.due_at, l.name, l.company, l.stage, l.grade"
        "  FROM leads l JOIN timers t ON t.lead_id = l.id"
        "  WHERE l.owner = $1 AND l.stage NOT IN ('won', 'lost') AND t.state = 'pending'"
        "   AND t.kind LIKE 'stale%'"
        " UNION ALL"
        /* running first-contact clocks: the deadline of the current owner's round */
        " SELECT l.id, 'first_contact', c.due_at, l.name, l.company, l.stage, l.grade"
        "  FROM leads l CROSS JOIN LATERAL (SELECT t.due_at FROM timers t"
        "   WHERE t.lead_id = l.id AND t.kind = 'sla_first_contact' AND t.step % 10 = 0"
        "   ORDER BY t.step DESC LIMIT 1) c"
        "  WHERE l.owner = $1 AND l.stage = 'new' AND l.first_contact_at IS NULL"
        " ORDER BY 3 LIMIT 500) x",
        1, p);
    if (!res)
        return lf_reply_error_retry(in, req->conn, 503, "unavailable",
                                    "the database cannot be reached", 1);
    json_t *out = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    return lf_reply_json(in, req->conn, 200, out);
}

const lf_route_t lf_routes_lists[] = {
    {"GET", "/v1/leads", s_list, 1, 0, 1},
    {"GET", "/v1/me/agenda", s_agenda, 1, 0, 1},
    {NULL, NULL, NULL, 0, 0, 0},
};
