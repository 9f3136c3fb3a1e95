/* teams.h - the sales teams of config/routing.json: who a lead's team is, and what each
 * team's settings are.
 *
 * Everything a team decides lives under teams.<id> (settings of a team that is not
 * listed come from the top-level default_* keys):
 *   "east": {"manager": "li.ming",                  who gets escalations and digests
 *            "policy": "weighted",                  round_robin | weighted | least_loaded
 *            "fallback": {"manager": true},         nobody eligible: pool (+ notice)
 *            "calendar": "cn",                      a name under "calendars", or inline
 *            "pool": {"auto_route": {"recycled": true}, "claim_daily_limit": 20,
 *                     "claim_cooldown_hours": 72, "sla_business_hours": 4},
 *            "on_deactivate": "pool"}               keep | pool | route
 * Which team: "team_rules": [{"when": {"region": ["east"]}, "team": "east"}, ...], the
 * first rule whose every condition holds wins (conditions: region, industry, channel,
 * source; a list means any of its values), else "default_team" (null: no team, the
 * whole pool). Rules compare mapped ids: "vocabularies" maps what people type to ids,
 * e.g. {"region": {"east": ["华东", "上海", "江苏"]}, "industry": {"medical": ["医疗"]}}.
 *
 * Built once at start, read-only afterwards: any number of threads may read it. */
#ifndef LF_TEAMS_H
#define LF_TEAMS_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "lf/bizcal.h"

typedef struct lf_teams lf_teams_t;

/* Why a lead without an owner is in its team's pool (the API's pool_reason). */
typedef enum {
    LF_POOL_NO_ELIGIBLE_REP,
    LF_POOL_OWNER_LEFT,
    LF_POOL_RECYCLED,
    LF_POOL_REACTIVATED,
    LF_POOL_RELEASED,
    LF_POOL_REASONS
} lf_pool_reason_t;

/* What deactivating a rep does to its open leads. */
typedef enum { LF_DEACT_KEEP, LF_DEACT_POOL, LF_DEACT_ROUTE } lf_deactivate_t;

typedef struct {
    const char *name;                /* the team id ("" for the whole pool) */
    const char *manager;             /* configured manager, or NULL */
    int fallback_notice;             /* fallback {"manager": true}: notify the manager */
    const lf_bizcal_t *calendar;     /* the team's business calendar */
    int auto_route[LF_POOL_REASONS]; /* 1: routed again when someone is eligible */
    int claim_daily_limit;           /* claims per rep per day (team zone), 0 = none */
    int64_t claim_cooldown_secs;     /* a rep who lost a lead may not claim it back */
    int64_t pool_sla_secs;           /* business seconds in the pool before escalation,
                                        0 = never */
    lf_deactivate_t on_deactivate;   /* what deactivating a member does */
} lf_team_t;

/* Builds the teams from a routing configuration (NULL = defaults only) and the folder
 * of calendar year files. Borrowed: routing. Returns NULL with the key and the rule it
 * breaks in `err`. Caller owns the result (lf_teams_destroy). */
lf_teams_t *lf_teams_from_json(const json_t *routing, const char *calendar_dir, char *err,
                               size_t errsz);

/* Reads <config_dir>/routing.json and the calendars in <config_dir>/calendars. */
lf_teams_t *lf_teams_load(const char *config_dir, char *err, size_t errsz);

/* Frees; accepts NULL and *self_p == NULL, sets *self_p to NULL. */
void lf_teams_destroy(lf_teams_t **self_p);

/* Logs a warning for every calendar that lacks this or next year's holiday file.
 * Returns the number of warnings. */
int lf_teams_check(const lf_teams_t *teams, int64_t now);

/* The id a typed region / industry maps to (case and surrounding space ignored; a
 * trailing 省/市/区/地区 is tried off too), or NULL when the vocabulary does not know
 * it. Borrowed: valid while `teams` lives. */
const char *lf_teams_region(const lf_teams_t *teams, const char *typed);
const char *lf_teams_industry(const lf_teams_t *teams, const char *typed);

/* The team of a lead from its mapped region and industry, channel and source (each may
 * be NULL): the first matching rule's team, else the default team, else NULL (no team:
 * the whole pool). Borrowed. */
const char *lf_teams_route(const lf_teams_t *teams, const char *region,
                           const char *industry, const char *channel, const char *source);

/* The settings of a team: its own, or the defaults for a team not listed (and for
 * NULL). Never NULL. Borrowed. */
const lf_team_t *lf_teams_get(const lf_teams_t *teams, const char *team);

/* 1 when the defaults or any listed team route pool leads of `reason` by themselves. */
int lf_teams_any_auto_route(const lf_teams_t *teams, lf_pool_reason_t reason);

/* The shortest pool SLA of the defaults and the listed teams, in business seconds
 * (0 = no team escalates). */
int64_t lf_teams_min_pool_sla(const lf_teams_t *teams);

/* "no_eligible_rep" ... "released" <-> the enum; -1 for an unknown name. */
int lf_pool_reason_parse(const char *name);
const char *lf_pool_reason_name(lf_pool_reason_t reason);

#endif
