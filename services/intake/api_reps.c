/* api_reps.c - the HTTP API for reps (POST/GET/PATCH /v1/reps) and for a rep
 * updating the facts of a lead (PATCH /v1/leads/{id}).
 *
 * A rep is validated here with the same rules the router's pool applies (assign.c),
 * because one row the pool refuses would be left out of routing: better to answer 422
 * than to store it. Every broken field is listed; nothing is stored. PATCH is a JSON
 * merge patch (RFC 7396): a member set to null goes back to its default. The router
 * notices changed reps by itself (reps.version, see 0003_router.sql); no restart.
 *
 * Out-of-office periods are taken and shown as [{"from": RFC 3339, "to": RFC 3339}]
 * and stored as the pool reads them: [[from_epoch, to_epoch], ...]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "access.h"
#include "intake.h"
#include "lf/lead.h"
#include "notify_api.h"
#include "lf/util.h"

#define S_ID_MAX 64
#define S_MAX_WEIGHT 1000
#define S_MAX_LIST 100

/* ---- shared helpers ---- */

static int s_valid_id(const char *id) {
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z') || c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

/* Parses a JSON object body; replies 415/400 itself. Returns the object or NULL. */
static json_t *s_body(lf_intake_t *in, lf_req_t *req, enum MHD_Result *reply) {
    const char *ct = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct || (strncasecmp(ct, "application/json", 16) != 0 &&
                strncasecmp(ct, "application/merge-patch+json", 28) != 0)) {
        *reply = lf_reply_error(in, req->conn, 415, "unsupported_media_type",
                                "send application/json", NULL);
        return NULL;
    }
    json_error_t jerr;
    json_t *body = json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(body)) {
        char msg[256];
        if (body)
            snprintf(msg, sizeof msg, "body must be a JSON object");
        else
            snprintf(msg, sizeof msg, "body is not valid JSON: %s (line %d, column %d)",
                     jerr.text, jerr.line, jerr.column);
        json_decref(body);
        *reply = lf_reply_error(in, req->conn, 400, "bad_request", msg, NULL);
        return NULL;
    }
    return body;
}

/* RFC 7396: applies patch (borrowed) to target (modified in place). */
static void s_merge_patch(json_t *target, const json_t *patch) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)patch, k, v) {
        if (json_is_null(v)) {
            json_object_del(target, k);
        } else if (json_is_object(v)) {
            json_t *t = json_object_get(target, k);
            if (!json_is_object(t)) {
                t = json_object();
                json_object_set_new(target, k, t);
            }
            s_merge_patch(t, v);
        } else {
            json_object_set(target, k, v);
        }
    }
}

/* "2026-05-01T09:00:00+08:00", fraction allowed. Returns 0 and the epoch, or -1. */
static int s_rfc3339(const char *s, long long *out) {
    int Y, M, D, h, m, sec, n = 0;
    if (!s ||
        sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) !=
            6 ||
        n != 19)
        return -1;
    const char *p = s + n;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    long off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om, k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5 || oh > 23 || om > 59)
            return -1;
        off = (*p == '-' ? -1 : 1) * (oh * 3600L + om * 60L);
        p += 6;
    } else {
        return -1;
    }
    if (*p || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return -1;
    struct tm tm = {.tm_year = Y - 1900,
                    .tm_mon = M - 1,
                    .tm_mday = D,
                    .tm_hour = h,
                    .tm_min = m,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    if (tm.tm_mday != D) /* 2026-02-30 */
        return -1;
    *out = (long long)t - off;
    return 0;
}

/* The time zones the router understands: fixed offsets and IANA names. */
static int s_tz_ok(const char *s) {
    if (!strcmp(s, "UTC") || !strcmp(s, "Z") || !strcmp(s, "GMT") ||
        !strcmp(s, "Etc/UTC"))
        return 1;
    const char *o = !strncmp(s, "UTC", 3) && (s[3] == '+' || s[3] == '-') ? s + 3 : s;
    if (*o == '+' || *o == '-') {
        const char *p = o + 1;
        int digits = 0, hh = 0;
        while (*p >= '0' && *p <= '9' && digits < 2)
            hh = hh * 10 + (*p++ - '0'), digits++;
        if (digits == 0 || hh > 14)
            return 0;
        if (*p == ':')
            p++;
        return *p == '\0' ||
               (p[0] >= '0' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' && p[2] == '\0');
    }
    if (!*s || *s == '/' || strstr(s, "..") || strlen(s) >= S_ID_MAX)
        return 0;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
              (*c >= '0' && *c <= '9') || *c == '/' || *c == '_' || *c == '-' ||
              *c == '+'))
            return 0;
    const char *dir = getenv("TZDIR");
    char path[512], magic[4];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", s);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    int ok = fread(magic, 1, 4, f) == 4 && !memcmp(magic, "TZif", 4);
    fclose(f);
    return ok;
}

static int s_hhmm(const json_t *v, int is_end) {
    const char *s = json_string_value(v);
    if (!s || strlen(s) != 5 || s[2] != ':')
        return -1;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (m > 59 || h > 24 || (h == 24 && (m != 0 || !is_end)))
        return -1;
    return h * 60 + m;
}

/* ---- reps ---- */

static const char *const s_rep_fields[] = {
    "id",       "name",       "team",          "manager",      "skills",
    "regions",  "grades",     "capacity",      "weight",       "active",
    "timezone", "work_hours", "out_of_office", "ignore_shift", "notify",
    NULL};
static const char *const s_rep_readonly[] = {"open_count", "assigned_total", "created_at",
                                             "updated_at", NULL};

static int s_in(const char *const *list, const char *s) {
    for (; *list; list++)
        if (!strcmp(*list, s))
            return 1;
    return 0;
}

static void s_err(json_t *errors, const char *field, const char *code, const char *msg) {
    lf_field_error(errors, field, code, msg);
}

static void s_strings(json_t *errors, const json_t *v, const char *field) {
    if (!json_is_array(v) || json_array_size(v) > S_MAX_LIST) {
        s_err(errors, field, "type", "must be an array of at most 100 non-empty strings");
        return;
    }
    size_t i;
    json_t *s;
    json_array_foreach(v, i, s) {
        if (!json_is_string(s) || json_string_length(s) == 0 ||
            json_string_length(s) >= S_ID_MAX) {
            s_err(errors, field, "invalid",
                  "every entry must be a string of 1..63 bytes");
            return;
        }
    }
}

/* Fills defaults into a full rep (in place), validates it and returns the row for
 * the reps table (caller owns), or NULL with errors appended. */
static json_t *s_rep_row(json_t *rep, json_t *errors) {
    const char *k;
    json_t *v;
    json_object_foreach(rep, k, v) {
        if (s_in(s_rep_readonly, k))
            s_err(errors, k, "read_only", "is kept by the router and cannot be set");
        else if (!s_in(s_rep_fields, k))
            s_err(errors, k, "unknown", "is not a rep field");
    }
    static const struct {
        const char *k;
        const char *json;
    } defs[] = {{"team", "\"default\""},
                {"skills", "[]"},
                {"regions", "[]"},
                {"grades", "[]"},
                {"capacity", "30"},
                {"weight", "1"},
                {"active", "true"},
                {"ignore_shift", "false"},
                {"timezone", "\"Asia/Shanghai\""},
                {"out_of_office", "[]"},
                {"notify", "[]"}};
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        if (!json_object_get(rep, defs[i].k))
            json_object_set_new(rep, defs[i].k,
                                json_loads(defs[i].json, JSON_DECODE_ANY, NULL));

    if (!s_valid_id(json_string_value(json_object_get(rep, "id"))))
        s_err(errors, "id", "invalid", "required: 1..64 characters of A-Z a-z 0-9 . _ -");
    v = json_object_get(rep, "name");
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 200)
        s_err(errors, "name", v ? "invalid" : "required",
              "required: a name of 1..200 bytes");
    v = json_object_get(rep, "team");
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) >= S_ID_MAX || !strcmp(json_string_value(v), "*"))
        s_err(errors, "team", "invalid", "must be a team name of 1..63 bytes");
    v = json_object_get(rep, "manager");
    if (v && !s_valid_id(json_string_value(v)))
        s_err(errors, "manager", "invalid", "must be a rep id");
    s_strings(errors, json_object_get(rep, "skills"), "skills");
    s_strings(errors, json_object_get(rep, "regions"), "regions");
    v = json_object_get(rep, "grades");
    size_t i;
    json_t *g;
    if (!json_is_array(v)) {
        s_err(errors, "grades", "type", "must be an array of \"A\"..\"D\"");
    } else {
        json_array_foreach(v, i, g) {
            const char *s = json_string_value(g);
            if (!s || s[0] < 'A' || s[0] > 'D' || s[1]) {
                s_err(errors, "grades", "invalid",
                      "entries must be \"A\", \"B\", \"C\" or \"D\"");
                break;
            }
        }
    }
    v = json_object_get(rep, "capacity");
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > 1000000)
        s_err(errors, "capacity", "invalid",
              "must be an integer 0..1000000 (the most open leads; 0 pauses the rep)");
    v = json_object_get(rep, "weight");
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > S_MAX_WEIGHT)
        s_err(errors, "weight", "invalid", "must be an integer 1..1000");
    if (!json_is_boolean(json_object_get(rep, "active")))
        s_err(errors, "active", "type", "must be true or false");
    if (!json_is_boolean(json_object_get(rep, "ignore_shift")))
        s_err(errors, "ignore_shift", "type", "must be true or false");
    v = json_object_get(rep, "timezone");
    if (!json_is_string(v) || !s_tz_ok(json_string_value(v)))
        s_err(errors, "timezone", "invalid",
              "must be an IANA time zone such as Asia/Shanghai or an offset like +08:00");
    v = json_object_get(rep, "work_hours");
    if (v) {
        static const char *const days[] = {"sun", "mon", "tue", "wed",
                                           "thu", "fri", "sat", NULL};
        const char *day;
        json_t *win;
        if (!json_is_object(v) || json_object_size(v) == 0)
            s_err(errors, "work_hours", "type",
                  "must be an object like {\"mon\": [\"09:00\", \"18:00\"]} (null: "
                  "always)");
        else
            json_object_foreach(v, day, win) {
                char field[64];
                snprintf(field, sizeof field, "work_hours.%.20s", day);
                int s = s_hhmm(json_array_get(win, 0), 0),
                    e = s_hhmm(json_array_get(win, 1), 1);
                if (!s_in(days, day))
                    s_err(errors, field, "invalid", "not a weekday (sun, mon, ... sat)");
                else if (!json_is_array(win) || json_array_size(win) != 2 || s < 0 ||
                         e < 0 || s == e)
                    s_err(
                        errors, field, "invalid",
                        "must be [\"HH:MM\", \"HH:MM\"], start != end (an end before the "
                        "start runs past midnight)");
            }
    }
    json_t *ooo = json_array();
    v = json_object_get(rep, "out_of_office");
    if (!json_is_array(v) || json_array_size(v) > S_MAX_LIST) {
        s_err(errors, "out_of_office", "type",
              "must be an array of {\"from\": RFC 3339, \"to\": RFC 3339}");
    } else {
        json_t *per;
        json_array_foreach(v, i, per) {
            long long from, to;
            char field[64];
            snprintf(field, sizeof field, "out_of_office[%zu]", i);
            if (!json_is_object(per) || json_object_size(per) != 2 ||
                s_rfc3339(json_string_value(json_object_get(per, "from")), &from) < 0 ||
                s_rfc3339(json_string_value(json_object_get(per, "to")), &to) < 0)
                s_err(errors, field, "invalid",
                      "must be {\"from\": \"2026-05-01T00:00:00+08:00\", \"to\": ...}");
            else if (from >= to)
                s_err(errors, field, "invalid", "from must be before to");
            else
                json_array_append_new(ooo, json_pack("[I, I]", from, to));
        }
    }
    if (json_array_size(errors)) {
        json_decref(ooo);
        return NULL;
    }
    json_t *row = json_deep_copy(rep);
    json_object_set_new(row, "out_of_office", ooo);
    return row;
}

/* A rep as the API shows it. */
#define S_REP_JSON                                                                       \
    "json_build_object('id', r.id, 'name', r.name, 'team', r.team, 'manager', "          \
    "r.manager,"                                                                         \
    " 'skills', r.skills, 'regions', r.regions, 'grades', r.grades,"                     \
    " 'capacity', r.capacity, 'weight', r.weight, 'active', r.active,"                   \
    " 'timezone', r.timezone, 'work_hours', r.work_hours,"                               \
    " 'out_of_office', (SELECT coalesce(json_agg(json_build_object("                     \
    "   'from', lf_rfc3339(to_timestamp((p ->> 0)::float8)),"                            \
    "   'to', lf_rfc3339(to_timestamp((p ->> 1)::float8))) ORDER BY o), '[]')"           \
    "   FROM jsonb_array_elements(r.out_of_office) WITH ORDINALITY AS x(p, o)),"         \
    " 'ignore_shift', r.ignore_shift, 'notify', lf_notify_public(r.notify),"             \
    " 'open_count', r.open_count,"                                                       \
    " 'assigned_total', r.assigned_total, 'created_at', lf_rfc3339(r.created_at),"       \
    " 'updated_at', lf_rfc3339(r.updated_at))"

#define S_REP_COLS                                                                       \
    "id text, name text, team text, manager text, skills text[], regions text[],"        \
    " grades text[], capacity int, weight int, active boolean, timezone text,"           \
    " work_hours jsonb, out_of_office jsonb, ignore_shift boolean, notify jsonb"

static json_t *s_one_json(PGresult *res) {
    json_t *out = NULL;
    if (res && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        out = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    return out;
}

static enum MHD_Result s_reply_rep(lf_intake_t *in, lf_req_t *req, unsigned status,
                                   PGresult *res) {
    json_t *rep = s_one_json(res);
    PQclear(res);
    if (!rep)
        return lf_reply_error(in, req->conn, 500, "internal", "the rep could not be read",
                              NULL);
    return lf_reply_json(in, req->conn, status, rep);
}

static enum MHD_Result s_unavailable(lf_intake_t *in, lf_req_t *req) {
    return lf_reply_error(in, req->conn, 503, "unavailable",
                          "the database cannot be reached", NULL);
}

static enum MHD_Result s_invalid(lf_intake_t *in, lf_req_t *req, json_t *errors) {
    return lf_reply_error(in, req->conn, 422, "validation_failed",
                          "the rep breaks one or more rules; nothing was stored", errors);
}

static enum MHD_Result s_post_rep(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth) {
    enum MHD_Result reply;
    json_t *body = s_body(in, req, &reply);
    if (!body)
        return reply;
    json_t *errors = json_array();
    int np = lf_notify_prepare(in, auth, json_string_value(json_object_get(body, "id")),
                               body, NULL, errors);
    if (np < 0) {
        json_decref(body);
        json_decref(errors);
        return lf_notify_refused(in, req->conn, np);
    }
    json_t *row = s_rep_row(body, errors);
    json_decref(body);
    if (!row)
        return s_invalid(in, req, errors);
    json_decref(errors);
    char *text = json_dumps(row, JSON_COMPACT);
    char id[S_ID_MAX + 1];
    lf_strlcpy(id, json_string_value(json_object_get(row, "id")), sizeof id);
    json_decref(row);
    const char *p[] = {text};
    lf_db_t *db = lf_intake_db(in);
    PGresult *res = lf_db_exec(
        db,
        "WITH ins AS (INSERT INTO reps (id, name, team, manager, skills, regions, grades,"
        "  capacity, weight, active, timezone, work_hours, out_of_office, ignore_shift,"
        "  notify)"
        "  SELECT * FROM jsonb_to_record($1::jsonb) AS x(" S_REP_COLS ")"
        "  ON CONFLICT (id) DO NOTHING RETURNING *)"
        " SELECT " S_REP_JSON "::text FROM ins r",
        1, p);
    free(text);
    if (!res)
        return s_unavailable(in, req);
    if (PQntuples(res) == 0) {
        PQclear(res);
        char msg[256];
        snprintf(msg, sizeof msg, "rep %s already exists; use PATCH /v1/reps/%s", id, id);
        return lf_reply_error(in, req->conn, 409, "rep_exists", msg, NULL);
    }
    return s_reply_rep(in, req, 201, res);
}

static enum MHD_Result s_list_reps(lf_intake_t *in, lf_req_t *req,
                                   const lf_auth_t *auth) {
    const char *team =
        MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "team");
    const char *active =
        MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "active");
    if (active && strcmp(active, "true") && strcmp(active, "false"))
        return lf_reply_error(in, req->conn, 400, "bad_request",
                              "active must be true or false", NULL);
    const char *p[] = {team, active, lf_access_scope_param(auth),
                       lf_access_rep_param(auth)};
    PGresult *res =
        lf_db_exec(lf_intake_db(in),
                   "SELECT json_build_object('reps', coalesce(json_agg(" S_REP_JSON
                   " ORDER BY r.id),"
                   " '[]'))::text FROM reps r WHERE ($1::text IS NULL OR r.team = $1)"
                   " AND ($2::boolean IS NULL OR r.active = $2::boolean)"
                   " AND lf_caller_reaches($3, $4, r.id)",
                   4, p);
    if (!res)
        return s_unavailable(in, req);
    return s_reply_rep(in, req, 200, res);
}

static enum MHD_Result s_get_rep(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth) {
    const char *id = req->params[0];
    if (!s_valid_id(id))
        return lf_reply_error(in, req->conn, 404, "not_found", "no such rep", NULL);
    const char *p[] = {id, lf_access_scope_param(auth), lf_access_rep_param(auth)};
    PGresult *res = lf_db_exec(lf_intake_db(in),
                               "SELECT " S_REP_JSON "::text FROM reps r WHERE r.id = $1"
                               " AND lf_caller_reaches($2, $3, r.id)",
                               3, p);
    if (!res)
        return s_unavailable(in, req);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return lf_reply_error(in, req->conn, 404, "not_found", "no such rep", NULL);
    }
    return s_reply_rep(in, req, 200, res);
}

static enum MHD_Result s_patch_rep(lf_intake_t *in, lf_req_t *req,
                                   const lf_auth_t *auth) {
    const char *id = req->params[0];
    if (!s_valid_id(id))
        return lf_reply_error(in, req->conn, 404, "not_found", "no such rep", NULL);
    enum MHD_Result reply;
    json_t *patch = s_body(in, req, &reply);
    if (!patch)
        return reply;
    json_t *errors = json_array();
    const json_t *pid = json_object_get(patch, "id");
    if (pid && !(json_is_string(pid) && !strcmp(json_string_value(pid), id)))
        s_err(errors, "id", "read_only", "a rep's id cannot change");
    lf_db_t *db = lf_intake_db(in);
    const char *p[] = {id, lf_access_scope_param(auth), lf_access_rep_param(auth)};
    json_t *rep = NULL, *row = NULL, *stored = NULL;
    char *text = NULL;
    PGresult *res = NULL;
    if (lf_db_begin(db) < 0)
        goto unavailable;
    /* The stored rep in API form, minus what the router keeps. */
    res = lf_db_exec(db,
                     "SELECT (" S_REP_JSON "::jsonb - '{open_count,assigned_total,"
                     "created_at,updated_at}'::text[])::text, r.notify::text FROM reps r"
                     " WHERE r.id = $1 AND lf_caller_reaches($2, $3, r.id) FOR UPDATE",
                     3, p);
    if (!res)
        goto unavailable;
    rep = s_one_json(res);
    stored = rep ? json_loads(PQgetvalue(res, 0, 1), 0, NULL) : NULL;
    PQclear(res);
    res = NULL;
    if (!rep) {
        lf_db_rollback(db);
        json_decref(patch);
        json_decref(errors);
        return lf_reply_error(in, req->conn, 404, "not_found", "no such rep", NULL);
    }
    if (json_is_null(json_object_get(rep, "work_hours")))
        json_object_del(rep, "work_hours");
    if (json_is_null(json_object_get(rep, "manager")))
        json_object_del(rep, "manager");
    const char *denied = lf_access_rep_patch_denied(auth, id, patch, rep);
    if (denied) {
        lf_db_rollback(db);
        char msg[256];
        snprintf(msg, sizeof msg, "this key may not change %.40s of rep %.64s", denied,
                 id);
        json_decref(patch);
        json_decref(errors);
        json_decref(rep);
        json_decref(stored);
        return lf_reply_error(in, req->conn, 403, "forbidden", msg, NULL);
    }
    s_merge_patch(rep, patch);
    json_object_set_new(rep, "id", json_string(id));
    int np = lf_notify_prepare(in, auth, id, rep, stored, errors);
    if (np < 0) {
        lf_db_rollback(db);
        json_decref(patch);
        json_decref(errors);
        json_decref(rep);
        json_decref(stored);
        return lf_notify_refused(in, req->conn, np);
    }
    json_decref(stored);
    stored = NULL;
    if (!json_array_size(errors))
        row = s_rep_row(rep, errors);
    if (!row) {
        lf_db_rollback(db);
        json_decref(patch);
        json_decref(rep);
        return s_invalid(in, req, errors);
    }
    text = json_dumps(row, JSON_COMPACT);
    const char *q[] = {id, text};
    res = lf_db_exec(
        db,
        "WITH x AS (SELECT * FROM jsonb_to_record($2::jsonb) AS x(" S_REP_COLS ")),"
        " upd AS (UPDATE reps r SET name = x.name, team = x.team, manager = x.manager,"
        "  skills = x.skills, regions = x.regions, grades = x.grades,"
        "  capacity = x.capacity, weight = x.weight, active = x.active,"
        "  timezone = x.timezone, work_hours = x.work_hours,"
        "  out_of_office = x.out_of_office, ignore_shift = x.ignore_shift,"
        "  notify = x.notify"
        "  FROM x WHERE r.id = $1 RETURNING r.*)"
        " SELECT " S_REP_JSON "::text FROM upd r",
        2, q);
    if (!res)
        goto unavailable;
    /* A manager chain that loops would make two reps each other's manager. */
    PGresult *loop =
        lf_db_exec(db,
                   "SELECT 1 FROM reps WHERE id = $1 AND (manager = $1 OR manager IN"
                   " (SELECT lf_reps_reachable($1)))",
                   1, p);
    if (!loop)
        goto unavailable;
    int loops = PQntuples(loop) > 0;
    PQclear(loop);
    if (loops) {
        PQclear(res);
        lf_db_rollback(db);
        lf_field_error(
            errors, "manager", "cycle",
            "this manager is one of the rep's own reports: the chain would loop");
        json_decref(patch);
        json_decref(rep);
        json_decref(row);
        free(text);
        return s_invalid(in, req, errors);
    }
    if (lf_db_commit(db) < 0)
        goto unavailable;
    /* A deactivated rep's keys stop working from the next request. */
    lf_keys_invalidate(in->keys);
    json_decref(patch);
    json_decref(errors);
    json_decref(rep);
    json_decref(row);
    free(text);
    return s_reply_rep(in, req, 200, res);
unavailable:
    PQclear(res);
    lf_db_rollback(db);
    json_decref(stored);
    json_decref(patch);
    json_decref(errors);
    json_decref(rep);
    json_decref(row);
    free(text);
    return s_unavailable(in, req);
}

/* ---- PATCH /v1/leads/{id}: a rep corrects the facts of a lead ---- */

static const char *const s_lead_fields[] = {
    "budget", "currency", "urgency", "decision_maker", "industry",
    "region", "need",     "company", "name",           NULL};

static enum MHD_Result s_patch_lead(lf_intake_t *in, lf_req_t *req,
                                    const lf_auth_t *auth) {
    const char *id = req->params[0];
    if (!s_valid_id(id))
        return lf_reply_error(in, req->conn, 404, "not_found", "no such lead", NULL);
    enum MHD_Result reply;
    json_t *body = s_body(in, req, &reply);
    if (!body)
        return reply;
    json_t *errors = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) if (!s_in(s_lead_fields, k)) s_err(
        errors, k, "not_updatable",
        "only budget, currency, urgency, decision_maker, industry, region, need, company "
        "and name can be changed here");
    if (json_object_size(body) == 0)
        s_err(errors, "body", "empty", "name at least one field to change");
    /* Normalize the allowed fields through the same rules as a new lead; the
     * placeholder e-mail only satisfies "phone or e-mail" and is never stored. */
    json_t *probe = json_object();
    json_object_foreach(body, k, v) if (s_in(s_lead_fields, k))
        json_object_set(probe, k, v);
    json_object_set_new(probe, "email", json_string("probe@example.com"));
    json_t *lead = lf_lead_canonical(probe, "api", NULL, errors);
    json_decref(probe);
    if (lead && json_array_size(errors)) {
        json_decref(lead);
        lead = NULL;
    }
    if (!lead) {
        json_decref(body);
        return lf_reply_error(in, req->conn, 422, "validation_failed",
                              "the change breaks one or more rules; nothing was stored",
                              errors);
    }
    json_decref(errors);
    /* The columns to set: only what the body names. */
    json_t *set = json_object();
    json_object_foreach(body, k, v) {
        if (!strcmp(k, "budget") || !strcmp(k, "currency")) {
            const json_t *b = json_object_get(lead, "budget");
            json_object_set(set, "budget_min",
                            json_is_object(b) ? json_object_get(b, "min") : json_null());
            json_object_set(set, "budget_max",
                            json_is_object(b) ? json_object_get(b, "max") : json_null());
            json_object_set(set, "currency", json_object_get(lead, "currency"));
            json_object_set(set, "budget_raw",
                            json_is_object(b) ? json_object_get(b, "raw")
                            : json_object_get(lead, "budget_raw")
                                ? json_object_get(lead, "budget_raw")
                                : json_null());
        } else {
            json_t *nv = json_object_get(lead, k);
            json_object_set(set, k, nv ? nv : json_null());
            /* A corrected company is matched to customers by its new key. */
            if (!strcmp(k, "company"))
                json_object_set(set, "company_key", json_object_get(lead, "company_key"));
        }
    }
    json_decref(lead);
    json_decref(body);
    char *text = json_dumps(set, JSON_COMPACT);
    json_decref(set);
    const char *actor =
        auth && auth->rep_id[0] ? auth->rep_id : (auth ? auth->key_id : "api");
    const char *p[] = {id, text, actor, lf_access_scope_param(auth),
                       lf_access_rep_param(auth)};
    lf_db_t *db = lf_intake_db(in);
    /* One statement: the row, the timeline entry and the outbox event commit
     * together, then the event is published. */
    PGresult *res = lf_db_exec(
        db,
        "WITH s AS (SELECT $2::jsonb AS j),"
        " old AS (SELECT l.* FROM leads l WHERE l.id = $1"
        "  AND lf_caller_sees($4, $5, l.owner)),"
        " upd AS (UPDATE leads l SET"
        "  name = CASE WHEN s.j ? 'name' THEN s.j ->> 'name' ELSE l.name END,"
        "  company = CASE WHEN s.j ? 'company' THEN s.j ->> 'company' ELSE l.company END,"
        "  company_key = CASE WHEN s.j ? 'company' THEN s.j ->> 'company_key'"
        "   ELSE l.company_key END,"
        "  need = CASE WHEN s.j ? 'need' THEN s.j ->> 'need' ELSE l.need END,"
        "  industry = CASE WHEN s.j ? 'industry' THEN s.j ->> 'industry' ELSE l.industry "
        "END,"
        "  region = CASE WHEN s.j ? 'region' THEN s.j ->> 'region' ELSE l.region END,"
        "  urgency = CASE WHEN s.j ? 'urgency' THEN s.j ->> 'urgency' ELSE l.urgency END,"
        "  decision_maker = CASE WHEN s.j ? 'decision_maker'"
        "   THEN (s.j ->> 'decision_maker')::boolean ELSE l.decision_maker END,"
        "  budget_min = CASE WHEN s.j ? 'budget_min' THEN (s.j ->> 'budget_min')::numeric"
        "   ELSE l.budget_min END,"
        "  budget_max = CASE WHEN s.j ? 'budget_max' THEN (s.j ->> 'budget_max')::numeric"
        "   ELSE l.budget_max END,"
        "  currency = CASE WHEN s.j ? 'currency' THEN s.j ->> 'currency' ELSE l.currency "
        "END,"
        "  budget_raw = CASE WHEN s.j ? 'budget_raw' THEN s.j ->> 'budget_raw'"
        "   ELSE l.budget_raw END,"
        "  updated_at = now()"
        "  FROM s, old WHERE l.id = old.id RETURNING l.id),"
        " ch AS (SELECT coalesce(jsonb_object_agg(k.key, jsonb_build_object("
        "   'from', to_jsonb(o) -> k.key, 'to', k.value)), '{}') AS c"
        "  FROM s, old o, jsonb_each(s.j) k WHERE (to_jsonb(o) -> k.key) IS DISTINCT FROM"
        "   k.value),"
        " tl AS (INSERT INTO lead_events (lead_id, type, actor, data)"
        "  SELECT upd.id, 'updated', $3, jsonb_build_object('changes', ch.c) FROM upd, "
        "ch),"
        " ob AS (INSERT INTO outbox (event_id, type, lead_id, payload)"
        "  SELECT gen_random_uuid(), 'lead.updated', upd.id,"
        "   jsonb_build_object('changes', ch.c, 'by', $3) FROM upd, ch"
        "  RETURNING lf_envelope(id, event_id, type, lead_id, at, version, payload))"
        " SELECT lf_envelope::text, (SELECT c::text FROM ch) FROM ob",
        5, p);
    free(text);
    if (!res)
        return s_unavailable(in, req);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return lf_reply_error(in, req->conn, 404, "not_found", "no such lead", NULL);
    }
    const char *env = PQgetvalue(res, 0, 0);
    lf_intake_publish(in, "lead.updated", env, strlen(env));
    json_t *changes = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
    PQclear(res);
    return lf_reply_json(in, req->conn, 200,
                         json_pack("{s:s, s:s, s:o}", "id", id, "status", "updated",
                                   "changes", changes ? changes : json_object()));
}

const lf_route_t lf_routes_reps[] = {
    {"POST", "/v1/reps", s_post_rep, 1, 0, 1},
    {"GET", "/v1/reps", s_list_reps, 1, 0, 1},
    {"GET", "/v1/reps/{}", s_get_rep, 1, 0, 1},
    {"PATCH", "/v1/reps/{}", s_patch_rep, 1, 0, 1},
    {"PATCH", "/v1/leads/{}", s_patch_lead, 1, 0, 1},
    {NULL, NULL, NULL, 0, 0, 0},
};
