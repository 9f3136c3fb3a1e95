/* digest.c - the team digests (漏跟进预警): keeping one pending 'digest' timer per
 * team at the next time its schedule says.
 *
 * A schedule is cron-like (config/keepalive.json digest.schedule, per team under
 * digest.teams, default Monday 09:00) and read in the team's time zone, the zone of
 * its business calendar in config/routing.json. Every half minute the scheduler makes
 * sure each team (every team of an active rep, and every team the digest section
 * names) has its next digest timer; the unique index on (team, due_at) makes two
 * schedulers agree on one. The digest itself is computed and recorded when the timer
 * fires, in PostgreSQL (lf_keepalive_fire_digest, 44_lf_keepalive_digest.sql): the
 * period since the team's previous digest, per rep, to the team manager. The timer's
 * data carries the recipient and the activity types that count as doing a follow-up
 * (stale.restart_on), so the digest's overdue follow-ups are the ones the escalation
 * would call overdue (a note does not do a follow-up). */
#include "clocks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/log.h"
#include "lf/tz.h"
#include "lf/util.h"

#define S_MAX_TEAMS 256
#define S_EVERY_MS 30000

typedef struct {
    char *team;  /* owned */
    lf_tz_t *tz; /* owned: the team calendar's zone */
} s_zone_t;

struct lf_digests {
    json_t *routing;             /* owned: config/routing.json (calendars' zones) */
    s_zone_t zones[S_MAX_TEAMS]; /* zones loaded so far */
    size_t nzones;               /* entries in zones */
    int64_t next_ms;             /* monotonic ms of the next check */
};

lf_digests_t *lf_digests_new(const char *config_dir) {
    lf_digests_t *d = lf_calloc(1, sizeof *d);
    char path[1024];
    if (lf_path_join(path, sizeof path, config_dir, "routing.json") == 0)
        d->routing = json_load_file(path, 0, NULL);
    if (!d->routing)
        d->routing = json_object();
    return d;
}

void lf_digests_destroy(lf_digests_t **self_p) {
    if (!self_p || !*self_p)
        return;
    lf_digests_t *d = *self_p;
    for (size_t i = 0; i < d->nzones; i++) {
        free(d->zones[i].team);
        lf_tz_destroy(&d->zones[i].tz);
    }
    json_decref(d->routing);
    free(d);
    *self_p = NULL;
}

/* The zone of a team's calendar: teams.<id>.calendar, else default_calendar, a name
 * under "calendars" or an inline object; Asia/Shanghai when none says. */
static const lf_tz_t *s_zone(lf_digests_t *d, const char *team) {
    for (size_t i = 0; i < d->nzones; i++)
        if (!strcmp(d->zones[i].team, team))
            return d->zones[i].tz;
    const json_t *r = d->routing;
    const json_t *cal =
        json_object_get(json_object_get(json_object_get(r, "teams"), team), "calendar");
    if (!cal)
        cal = json_object_get(r, "default_calendar");
    if (json_is_string(cal))
        cal = json_object_get(json_object_get(r, "calendars"), json_string_value(cal));
    const char *name = json_string_value(json_object_get(cal, "timezone"));
    char err[200];
    lf_tz_t *tz = lf_tz_load(name ? name : "Asia/Shanghai", err, sizeof err);
    if (!tz) {
        lf_warn("digest: team %s: %s; using Asia/Shanghai", team, err);
        tz = lf_tz_load("Asia/Shanghai", err, sizeof err);
    }
    if (!tz || d->nzones == S_MAX_TEAMS) {
        lf_tz_destroy(&tz);
        return NULL;
    }
    d->zones[d->nzones++] = (s_zone_t){.team = lf_strdup(team), .tz = tz};
    return tz;
}

/* Sets the next digest timer of one team unless one is pending. */
static int s_ensure(lf_timers_t *t, lf_digests_t *d, const char *team,
                    const char *fallback_to) {
    const lf_tz_t *tz = s_zone(d, team);
    if (!tz)
        return 0;
    const char *to = NULL;
    const lf_cron_t *cron = lf_keepalive_digest(t->ka, team, &to);
    if (!to && t->teams)
        to = lf_teams_get(t->teams, team)->manager;
    if (!to)
        to = fallback_to;
    int64_t now = lf_now_ms() / 1000;
    int64_t next_local = lf_cron_next(cron, now + lf_tz_offset(tz, now));
    if (next_local < 0)
        return 0;
    char due[40];
    lf_rfc3339(lf_tz_from_local(tz, next_local) * 1000, due, sizeof due);
    /* The recipient, and the activity types that do a follow-up (stale.restart_on, as
     * the follow-up's escalation counts them), for the follow-ups that have no overdue
     * timer of their own to say. */
    json_t *dj = json_pack("{s:s?}", "to", to), *types = json_array();
    const char *const *rt = lf_keepalive_restart_types(t->ka);
    for (size_t i = 0; rt && rt[i]; i++)
        json_array_append_new(types, json_string(rt[i]));
    json_object_set_new(dj, "done_by", types);
    char *data = json_dumps(dj, JSON_COMPACT);
    json_decref(dj);
    const char *p[] = {team, due, data};
    PGresult *res = lf_db_exec(
        t->db,
        "INSERT INTO timers (lead_id, kind, step, due_at, team, data)"
        " SELECT NULL, 'digest', 0, $2::timestamptz, $1, $3::jsonb"
        " WHERE NOT EXISTS (SELECT 1 FROM timers WHERE kind = 'digest' AND team = $1"
        "  AND state = 'pending') ON CONFLICT DO NOTHING"
        " RETURNING (extract(epoch FROM due_at) * 1000)::bigint || ' ' || id",
        3, p);
    free(data);
    if (!res)
        return -1;
    if (PQntuples(res) == 1) {
        char *pairs = lf_strdup(PQgetvalue(res, 0, 0));
        lf_timers_index(t, pairs);
        free(pairs);
        lf_info("digest scheduled team=%s at=%s to=%s", team, due, to ? to : "-");
    }
    PQclear(res);
    return 0;
}

void lf_digests_tick(lf_timers_t *t, lf_digests_t *d) {
    int64_t now = lf_mono_ms();
    if (!d || !t->ka || !lf_keepalive_digest_enabled(t->ka) || now < d->next_ms)
        return;
    d->next_ms = now + S_EVERY_MS;
    /* Every team with an active rep (and the manager most of its reps have, for a team
     * the configuration gives none), plus every team the digest section names. */
    PGresult *res = lf_db_exec(t->db,
                               "SELECT team, mode() WITHIN GROUP (ORDER BY manager)"
                               " FROM reps WHERE active GROUP BY team ORDER BY team",
                               0, NULL);
    if (!res)
        return;
    for (int i = 0; i < PQntuples(res); i++)
        if (s_ensure(t, d, PQgetvalue(res, i, 0),
                     PQgetisnull(res, i, 1) ? NULL : PQgetvalue(res, i, 1)) < 0)
            break;
    PQclear(res);
    for (const char *const *n = lf_keepalive_digest_teams(t->ka); *n; n++)
        if (s_ensure(t, d, *n, NULL) < 0)
            break;
}
