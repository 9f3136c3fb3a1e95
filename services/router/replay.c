/* replay.c - `leadflow-router --replay`: what the last N days would have looked like
 * under a draft scorecard or draft routing rules.
 *
 * Everything happens inside one REPEATABLE READ, READ ONLY transaction, so the
 * replay sees one consistent snapshot and PostgreSQL itself refuses any write. The
 * leads are read through a cursor in creation order and fed to an in-memory pool
 * built from today's reps with their counts at zero; each decision uses the lead's
 * creation time, so shifts and out-of-office periods apply as they would have. */
#include "replay.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "assign.h"
#include "lf/db.h"
#include "lf/log.h"
#include "lf/util.h"
#include "route.h"
#include "scorecard.h"

/* "30d" -> "30 days" (for ::interval). Returns 0, or -1 for anything else. */
static int s_window(const char *since, char *out, size_t outsz) {
    char *end;
    long n = since ? strtol(since, &end, 10) : 0;
    if (!since || end == since || n <= 0 || n > 100000 || end[0] == '\0' ||
        end[1] != '\0')
        return -1;
    const char *unit = end[0] == 'd'   ? "days"
                       : end[0] == 'h' ? "hours"
                       : end[0] == 'm' ? "minutes"
                       : end[0] == 'w' ? "weeks"
                                       : NULL;
    if (!unit)
        return -1;
    snprintf(out, outsz, "%ld %s", n, unit);
    return 0;
}

/* Loads the draft and fills in whatever it does not replace from the config dir.
 * Returns 0 or -1 (reason printed). */
static int s_rules(const lf_replay_opts_t *o, lf_scorecard_t **sc, json_t **routing,
                   lf_teams_t **teams) {
    char path[1024], err[256];
    json_t *draft = NULL;
    const json_t *d_sc = NULL, *d_rt = NULL;
    if (o->draft) {
        json_error_t jerr;
        draft = json_load_file(o->draft, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(draft)) {
            fprintf(stderr, "ERROR draft %s: %s\n", o->draft,
                    draft ? "must be a JSON object" : jerr.text);
            json_decref(draft);
            return -1;
        }
        if (json_object_get(draft, "scorecard") || json_object_get(draft, "routing")) {
            d_sc = json_object_get(draft, "scorecard");
            d_rt = json_object_get(draft, "routing");
        } else if (json_object_get(draft, "thresholds")) {
            d_sc = draft;
        } else {
            d_rt = draft;
        }
    }
    int rc = -1;
    if (d_sc) {
        *sc = lf_scorecard_from_json(d_sc, err, sizeof err);
    } else {
        lf_path_join(path, sizeof path, o->config_dir, "scorecard.json");
        *sc = lf_scorecard_load(path, err, sizeof err);
    }
    if (!*sc) {
        fprintf(stderr, "ERROR %s scorecard: %s\n", d_sc ? "draft" : "current", err);
        goto out;
    }
    if (d_rt) {
        *routing = json_deep_copy(d_rt);
    } else {
        lf_path_join(path, sizeof path, o->config_dir, "routing.json");
        *routing = lf_routing_load(path, err, sizeof err);
        if (!*routing) {
            fprintf(stderr, "ERROR current routing: %s\n", err);
            goto out;
        }
    }
    /* The routing rules alone must make a pool. */
    json_t *none = json_array();
    lf_pool_t *p = lf_pool_from_json(none, *routing, err, sizeof err);
    json_decref(none);
    if (!p) {
        fprintf(stderr, "ERROR %s routing: %s\n", d_rt ? "draft" : "current", err);
        goto out;
    }
    lf_pool_destroy(&p);
    /* The team rules and vocabularies of the same file decide each lead's team. */
    char cal_dir[1024];
    lf_path_join(cal_dir, sizeof cal_dir, o->config_dir, "calendars");
    *teams = lf_teams_from_json(*routing, cal_dir, err, sizeof err);
    if (!*teams) {
        fprintf(stderr, "ERROR %s routing: %s\n", d_rt ? "draft" : "current", err);
        goto out;
    }
    rc = 0;
out:
    json_decref(draft);
    return rc;
}

static void s_inc(json_t *obj, const char *key, long by) {
    json_t *v = json_object_get(obj, key);
    json_object_set_new(obj, key, json_integer((v ? json_integer_value(v) : 0) + by));
}

static long s_get(const json_t *obj, const char *key) {
    return (long)json_integer_value(json_object_get(obj, key));
}

/* The key of a known customer: company, or a non-webmail e-mail domain. */
static void s_customer_keys(const json_t *lead, char *ck, size_t cksz, char *dk,
                            size_t dksz) {
    static const char *const webmail[] = {
        "qq.com",    "163.com",    "126.com",     "sina.com",
        "sohu.com",  "yeah.net",   "foxmail.com", "aliyun.com",
        "139.com",   "gmail.com",  "outlook.com", "hotmail.com",
        "yahoo.com", "icloud.com", "live.com",    NULL};
    /* The company key (lf_company_key, stored by intake): the same company written
       differently is one customer, as for the live sticky-owner rule. */
    const char *company = json_string_value(json_object_get(lead, "company_key"));
    const char *email = json_string_value(json_object_get(lead, "email"));
    ck[0] = dk[0] = '\0';
    if (company && *company) {
        snprintf(ck, cksz, "c:%s", company);
        for (char *p = ck; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    }
    const char *at = email ? strchr(email, '@') : NULL;
    if (at && at[1]) {
        for (const char *const *w = webmail; *w; w++)
            if (!strcasecmp(at + 1, *w))
                return;
        snprintf(dk, dksz, "d:%s", at + 1);
        for (char *p = dk; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    }
}

int lf_replay_run(const lf_replay_opts_t *o, FILE *out) {
    char window[64];
    if (s_window(o->since, window, sizeof window) < 0) {
        fprintf(stderr, "ERROR --since must be a number and a unit, e.g. 30d, 12h, 2w\n");
        return -1;
    }
    lf_scorecard_t *sc = NULL;
    json_t *routing = NULL, *reps = NULL, *sticky = json_object();
    json_t *draft_load = json_object(), *actual_load = json_object(),
           *queues = json_object(), *team_draft = json_object(),
           *team_now = json_object();
    lf_teams_t *teams = NULL;
    lf_pool_t *pool = NULL;
    long grades_now[5] = {0}, grades_draft[4] = {0}, leads = 0, changed = 0, queued = 0,
         queued_now = 0;
    int rc = -1;
    lf_db_t *db = lf_db_connect(o->db_url, "leadflow-router-replay");
    if (s_rules(o, &sc, &routing, &teams) < 0)
        goto out;
    if (db->err) {
        fprintf(stderr, "ERROR database: %s\n", db->errstr);
        goto out;
    }
    if (lf_db_cmd(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL) < 0)
        goto dberr;
    PGresult *res = lf_db_exec(
        db,
        "SELECT coalesce(jsonb_agg(lf_rep_json(r) || '{\"open_count\": 0,"
        " \"assigned_total\": 0}'::jsonb ORDER BY r.id), '[]')::text FROM reps r",
        0, NULL);
    if (!res)
        goto dberr;
    reps = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    char err[256];
    pool = reps ? lf_route_pool(reps, routing, err, sizeof err) : NULL;
    if (!pool) {
        fprintf(stderr, "ERROR cannot build the pool: %s\n", reps ? err : "bad reps");
        goto out;
    }
    const char *p[] = {window};
    if (lf_db_cmd(db,
                  "DECLARE replay NO SCROLL CURSOR FOR"
                  " SELECT lf_lead_canonical(l)::text,"
                  "  extract(epoch FROM l.created_at)::bigint, l.grade, l.owner, l.queue,"
                  "  l.stage IN ('won', 'lost'), coalesce(l.region_raw, l.region),"
                  "  coalesce(l.industry_raw, l.industry), coalesce(l.team, '(none)')"
                  " FROM leads l WHERE l.created_at >= now() - $1::interval"
                  " ORDER BY l.created_at, l.id",
                  1, p) < 0)
        goto dberr;
    for (;;) {
        res = lf_db_exec(db, "FETCH 2000 FROM replay", 0, NULL);
        if (!res)
            goto dberr;
        int rows = PQntuples(res);
        for (int i = 0; i < rows; i++) {
            json_t *lead = json_loads(PQgetvalue(res, i, 0), 0, NULL);
            if (!lead)
                continue;
            leads++;
            /* What was typed, mapped again by the draft's vocabularies. */
            json_object_set_new(lead, "region",
                                PQgetisnull(res, i, 6)
                                    ? json_null()
                                    : json_string(PQgetvalue(res, i, 6)));
            json_object_set_new(lead, "industry",
                                PQgetisnull(res, i, 7)
                                    ? json_null()
                                    : json_string(PQgetvalue(res, i, 7)));
            const char *team = lf_route_map_lead(teams, lead);
            s_inc(team_draft, team ? team : "(none)", 1);
            s_inc(team_now, PQgetvalue(res, i, 8), 1);
            const char *g = PQgetvalue(res, i, 2);
            grades_now[PQgetisnull(res, i, 2) ? 4 : (g[0] - 'A') & 3]++;
            if (!PQgetisnull(res, i, 3))
                s_inc(actual_load, PQgetvalue(res, i, 3), 1);
            else if (!PQgetisnull(res, i, 4))
                queued_now++;
            int score;
            char grade;
            json_t *bd = NULL;
            if (lf_scorecard_grade(sc, lead, &score, &grade, &bd) < 0) {
                json_decref(lead);
                continue;
            }
            json_decref(bd);
            grades_draft[grade - 'A']++;
            if (PQgetisnull(res, i, 2) || g[0] != grade)
                changed++;
            char ck[300], dk[300];
            s_customer_keys(lead, ck, sizeof ck, dk, sizeof dk);
            const char *pref = NULL;
            if (ck[0])
                pref = json_string_value(json_object_get(sticky, ck));
            if (!pref && dk[0])
                pref = json_string_value(json_object_get(sticky, dk));
            lf_assign_req_t req = {
                .industry = json_string_value(json_object_get(lead, "industry")),
                .region = json_string_value(json_object_get(lead, "region")),
                .team = team,
                .grade = grade,
                .preferred_owner = pref,
                .now = (time_t)atoll(PQgetvalue(res, i, 1)),
            };
            lf_assign_result_t ar;
            if (lf_pool_assign(pool, &req, &ar) == 0) {
                if (ar.rep_id[0]) {
                    s_inc(draft_load, ar.rep_id, 1);
                    if (ck[0])
                        json_object_set_new(sticky, ck, json_string(ar.rep_id));
                    if (dk[0])
                        json_object_set_new(sticky, dk, json_string(ar.rep_id));
                    if (PQgetvalue(res, i, 5)[0] == 't')
                        lf_pool_release(pool, ar.rep_id);
                } else {
                    queued++;
                    s_inc(queues, ar.queue[0] ? ar.queue : "(none)", 1);
                }
                json_decref(ar.candidates);
            }
            json_decref(lead);
        }
        PQclear(res);
        if (rows == 0)
            break;
    }
    lf_db_rollback(db);

    json_t *rep_rows = json_array();
    size_t i;
    json_t *rep;
    json_array_foreach(reps, i, rep) {
        const char *id = json_string_value(json_object_get(rep, "id"));
        json_array_append_new(rep_rows,
                              json_pack("{s:s, s:O?, s:i, s:i, s:i, s:O?}", "id", id,
                                        "team", json_object_get(rep, "team"), "draft",
                                        (int)s_get(draft_load, id), "current",
                                        (int)s_get(actual_load, id), "open_at_end",
                                        lf_pool_open_count(pool, id), "capacity",
                                        json_object_get(rep, "capacity")));
    }
    if (o->json) {
        json_t *report = json_pack(
            "{s:i, s:s, s:{s:{s:i,s:i,s:i,s:i,s:i}, s:{s:i,s:i,s:i,s:i}}, s:i, s:i, s:i,"
            " s:O, s:o, s:{s:O, s:O}}",
            "leads", (int)leads, "since", o->since, "grades", "current", "A",
            (int)grades_now[0], "B", (int)grades_now[1], "C", (int)grades_now[2], "D",
            (int)grades_now[3], "ungraded", (int)grades_now[4], "draft", "A",
            (int)grades_draft[0], "B", (int)grades_draft[1], "C", (int)grades_draft[2],
            "D", (int)grades_draft[3], "grade_changed", (int)changed, "no_eligible",
            (int)queued, "no_eligible_current", (int)queued_now, "queues", queues, "reps",
            rep_rows, "teams", "draft", team_draft, "current", team_now);
        char *text = json_dumps(report, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fprintf(out, "%s\n", text);
        free(text);
        json_decref(report);
    } else {
        fprintf(out,
                "replay of %ld leads created in the last %s (read-only: nothing was "
                "changed)\n\n",
                leads, window);
        fprintf(out, "grade mix      A      B      C      D  ungraded\n");
        fprintf(out, "  current %6ld %6ld %6ld %6ld %9ld\n", grades_now[0], grades_now[1],
                grades_now[2], grades_now[3], grades_now[4]);
        fprintf(out, "  draft   %6ld %6ld %6ld %6ld %9d\n", grades_draft[0],
                grades_draft[1], grades_draft[2], grades_draft[3], 0);
        fprintf(out, "  leads whose grade would change: %ld\n\n", changed);
        fprintf(out, "no eligible rep: draft %ld, current %ld\n", queued, queued_now);
        const char *q;
        json_t *qv;
        json_object_foreach(queues, q, qv)
            fprintf(out, "  -> %-20s %6lld\n", q, (long long)json_integer_value(qv));
        fprintf(out, "\nleads per team   draft  current\n");
        json_t *all_teams = json_deep_copy(team_draft);
        json_object_update_missing(all_teams, team_now);
        json_object_foreach(all_teams, q, qv) fprintf(
            out, "  %-14s %6ld %8ld\n", q, s_get(team_draft, q), s_get(team_now, q));
        json_decref(all_teams);
        fprintf(out, "\n%-24s %-14s %7s %8s %12s %9s\n", "rep", "team", "draft",
                "current", "open_at_end", "capacity");
        json_array_foreach(rep_rows, i, rep) {
            fprintf(out, "%-24s %-14s %7lld %8lld %12lld %9lld\n",
                    json_string_value(json_object_get(rep, "id")),
                    json_string_value(json_object_get(rep, "team"))
                        ? json_string_value(json_object_get(rep, "team"))
                        : "-",
                    (long long)json_integer_value(json_object_get(rep, "draft")),
                    (long long)json_integer_value(json_object_get(rep, "current")),
                    (long long)json_integer_value(json_object_get(rep, "open_at_end")),
                    (long long)json_integer_value(json_object_get(rep, "capacity")));
        }
        json_decref(rep_rows);
    }
    rc = 0;
    goto out;
dberr:
    fprintf(stderr, "ERROR database: %s\n", db->errstr);
out:
    lf_db_destroy(&db);
    lf_pool_destroy(&pool);
    lf_scorecard_destroy(&sc);
    json_decref(routing);
    json_decref(reps);
    json_decref(sticky);
    json_decref(draft_load);
    json_decref(actual_load);
    json_decref(queues);
    json_decref(team_draft);
    json_decref(team_now);
    lf_teams_destroy(&teams);
    return rc;
}
