/* teams.c - loading and validating the team settings, team rules and vocabularies of
 * config/routing.json (see teams.h).
 *
 * This file only reads configuration; the assignment algorithm (services/router/
 * assign.c) reads the same file for policies and fallbacks and leaves the keys below to
 * this module. Everything is validated at start: a bad key stops the service with one
 * line naming it, never a surprise on the first lead at 3 a.m.
 *
 * Vocabularies are small (hundreds of words), so a lookup is a linear scan over
 * normalised strings: fast enough for a lead per call and simpler than a hash. */
#include "lf/teams.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lf/log.h"
#include "lf/util.h"

#define S_NAME_MAX 64

typedef struct {
    char *word; /* normalised typed text */
    char *id;   /* the id it maps to */
} s_word_t;

typedef struct {
    s_word_t *w;
    size_t n;
} s_vocab_t;

enum { C_REGION, C_INDUSTRY, C_CHANNEL, C_SOURCE, C_N };
static const char *const s_cond_names[C_N] = {"region", "industry", "channel", "source"};

typedef struct {
    char **vals[C_N]; /* accepted values per condition, NULL = any */
    size_t n[C_N];
    char *team; /* the team of a lead that matches */
} s_rule_t;

typedef struct {
    char name[S_NAME_MAX];
    lf_bizcal_t *cal;
} s_cal_t;

typedef struct {
    lf_team_t pub;            /* what lf_teams_get returns */
    char name[S_NAME_MAX];    /* storage for pub.name */
    char manager[S_NAME_MAX]; /* storage for pub.manager */
} s_team_t;

struct lf_teams {
    s_vocab_t vocab[2]; /* region, industry */
    s_rule_t *rules;    /* team_rules, in order */
    size_t n_rules;
    char default_team[S_NAME_MAX]; /* "" = none */
    s_cal_t *cals;                 /* named and inline calendars, owned */
    size_t n_cals;
    s_team_t defaults; /* settings of teams not listed */
    s_team_t *teams;   /* listed teams */
    size_t n_teams;
};

static const char *const s_reason_names[LF_POOL_REASONS] = {
    "no_eligible_rep", "owner_left", "recycled", "reactivated", "released"};

int lf_pool_reason_parse(const char *name) {
    for (int i = 0; name && i < LF_POOL_REASONS; i++)
        if (!strcmp(name, s_reason_names[i]))
            return i;
    return -1;
}

const char *lf_pool_reason_name(lf_pool_reason_t reason) {
    return (int)reason >= 0 && reason < LF_POOL_REASONS ? s_reason_names[reason] : NULL;
}

/* Lower-cases ASCII, trims and collapses white space (ASCII and the ideographic space
 * U+3000). Caller owns the result. */
static char *s_norm(const char *s) {
    size_t len = strlen(s);
    char *out = lf_malloc(len + 1), *o = out;
    int space = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int ws = isspace(*p) || (p[0] == 0xE3 && p[1] == 0x80 && p[2] == 0x80);
        if (ws) {
            if (p[0] == 0xE3)
                p += 2;
            space = 1;
            continue;
        }
        if (space && o > out)
            *o++ = ' ';
        space = 0;
        *o++ = (char)tolower(*p);
    }
    *o = '\0';
    return out;
}

static const char *s_vocab_find(const s_vocab_t *v, const char *typed) {
    if (!typed || !*typed)
        return NULL;
    char *n = s_norm(typed);
    const char *hit = NULL;
    static const char *const suffixes[] = {"地区", "自治区", "省", "市", "区"};
    for (int pass = 0; pass < 6 && !hit; pass++) {
        if (pass > 0) {
            const char *suf = suffixes[pass - 1];
            size_t ln = strlen(n), ls = strlen(suf);
            if (ln <= ls || strcmp(n + ln - ls, suf))
                continue;
            n[ln - ls] = '\0';
        }
        for (size_t i = 0; i < v->n && !hit; i++)
            if (!strcmp(v->w[i].word, n))
                hit = v->w[i].id;
    }
    free(n);
    return hit;
}

const char *lf_teams_region(const lf_teams_t *teams, const char *typed) {
    return s_vocab_find(&teams->vocab[0], typed);
}

const char *lf_teams_industry(const lf_teams_t *teams, const char *typed) {
    return s_vocab_find(&teams->vocab[1], typed);
}

static int s_match(const s_rule_t *r, const char *const vals[C_N]) {
    for (int c = 0; c < C_N; c++) {
        if (!r->vals[c])
            continue;
        size_t k = 0;
        while (k < r->n[c] && !(vals[c] && !strcmp(r->vals[c][k], vals[c])))
            k++;
        if (k == r->n[c])
            return 0;
    }
    return 1;
}

const char *lf_teams_route(const lf_teams_t *teams, const char *region,
                           const char *industry, const char *channel,
                           const char *source) {
    const char *vals[C_N] = {region, industry, channel, source};
    for (size_t i = 0; i < teams->n_rules; i++)
        if (s_match(&teams->rules[i], vals))
            return teams->rules[i].team;
    return teams->default_team[0] ? teams->default_team : NULL;
}

const lf_team_t *lf_teams_get(const lf_teams_t *teams, const char *team) {
    for (size_t i = 0; team && i < teams->n_teams; i++)
        if (!strcmp(teams->teams[i].name, team))
            return &teams->teams[i].pub;
    return &teams->defaults.pub;
}

int lf_teams_any_auto_route(const lf_teams_t *teams, lf_pool_reason_t reason) {
    if ((int)reason < 0 || reason >= LF_POOL_REASONS)
        return 0;
    int any = teams->defaults.pub.auto_route[reason];
    for (size_t i = 0; i < teams->n_teams; i++)
        any |= teams->teams[i].pub.auto_route[reason];
    return any;
}

int64_t lf_teams_min_pool_sla(const lf_teams_t *teams) {
    int64_t m = teams->defaults.pub.pool_sla_secs;
    for (size_t i = 0; i < teams->n_teams; i++) {
        int64_t v = teams->teams[i].pub.pool_sla_secs;
        if (v > 0 && (m <= 0 || v < m))
            m = v;
    }
    return m;
}

int lf_teams_check(const lf_teams_t *teams, int64_t now) {
    int n = 0;
    char warn[512];
    for (size_t i = 0; i < teams->n_cals; i++)
        if (lf_bizcal_check(teams->cals[i].cal, now, warn, sizeof warn)) {
            lf_warn("%s", warn);
            n++;
        }
    return n;
}

/* ---- loading ---- */

#define S_FAIL(...)                                                                      \
    do {                                                                                 \
        snprintf(err, errsz, __VA_ARGS__);                                               \
        return -1;                                                                       \
    } while (0)

static int s_name_ok(const json_t *v) {
    return json_is_string(v) && json_string_length(v) > 0 &&
           json_string_length(v) < S_NAME_MAX;
}

static int s_vocab_parse(s_vocab_t *v, const json_t *o, const char *what, char *err,
                         size_t errsz) {
    const char *id;
    json_t *words;
    if (!o)
        return 0;
    if (!json_is_object(o))
        S_FAIL("routing: vocabularies.%s: must be an object of id -> [typed words]",
               what);
    json_object_foreach((json_t *)o, id, words) {
        size_t i;
        json_t *w;
        if (!json_is_array(words) || !*id || strlen(id) >= S_NAME_MAX)
            S_FAIL("routing: vocabularies.%s.%s: must be an array of strings", what, id);
        /* The id itself maps to itself, so "east" typed as "East" works too. */
        v->w = lf_realloc(v->w, (v->n + json_array_size(words) + 1) * sizeof *v->w);
        v->w[v->n].word = s_norm(id);
        v->w[v->n++].id = lf_strdup(id);
        json_array_foreach(words, i, w) {
            if (!json_is_string(w) || json_string_length(w) == 0)
                S_FAIL("routing: vocabularies.%s.%s[%zu]: must be a non-empty string",
                       what, id, i);
            char *n = s_norm(json_string_value(w));
            const char *prev = NULL;
            for (size_t k = 0; k < v->n && !prev; k++)
                if (!strcmp(v->w[k].word, n))
                    prev = v->w[k].id;
            if (prev && strcmp(prev, id)) {
                free(n);
                S_FAIL("routing: vocabularies.%s.%s[%zu]: \"%s\" already maps to %s",
                       what, id, i, json_string_value(w), prev);
            }
            v->w[v->n].word = n;
            v->w[v->n++].id = lf_strdup(id);
        }
    }
    return 0;
}

static int s_rules_parse(lf_teams_t *t, const json_t *arr, char *err, size_t errsz) {
    size_t i;
    json_t *r;
    if (!arr)
        return 0;
    if (!json_is_array(arr))
        S_FAIL(
            "routing: team_rules: must be an array of {\"when\": {...}, \"team\": id}");
    t->rules = lf_calloc(json_array_size(arr), sizeof *t->rules);
    json_array_foreach(arr, i, r) {
        s_rule_t *rule = &t->rules[t->n_rules++];
        json_t *when = json_object_get(r, "when"), *team = json_object_get(r, "team");
        if (!json_is_object(r) || !s_name_ok(team) ||
            json_object_size(r) !=
                (size_t)(when ? 2 : 1) + !!json_object_get(r, "description"))
            S_FAIL("routing: team_rules[%zu]: must be {\"when\": {...}, \"team\": id}",
                   i);
        rule->team = lf_strdup(json_string_value(team));
        if (when && !json_is_object(when))
            S_FAIL("routing: team_rules[%zu].when: must be an object", i);
        const char *k;
        json_t *v;
        json_object_foreach(when, k, v) {
            int c = 0;
            while (c < C_N && strcmp(k, s_cond_names[c]))
                c++;
            if (c == C_N)
                S_FAIL("routing: team_rules[%zu].when.%s: unknown condition (region, "
                       "industry, channel, source)",
                       i, k);
            json_t *list = json_is_string(v) ? json_pack("[O]", v) : json_incref(v);
            size_t j;
            json_t *x;
            if (!json_is_array(list) || json_array_size(list) == 0) {
                json_decref(list);
                S_FAIL(
                    "routing: team_rules[%zu].when.%s: must be a string or a non-empty "
                    "array of strings",
                    i, k);
            }
            rule->vals[c] = lf_calloc(json_array_size(list), sizeof(char *));
            json_array_foreach(list, j, x) {
                if (!json_is_string(x)) {
                    json_decref(list);
                    S_FAIL("routing: team_rules[%zu].when.%s[%zu]: must be a string", i,
                           k, j);
                }
                rule->vals[c][rule->n[c]++] = lf_strdup(json_string_value(x));
            }
            json_decref(list);
        }
    }
    return 0;
}

static lf_bizcal_t *s_cal_add(lf_teams_t *t, const char *name, const json_t *cfg,
                              const char *dir, char *err, size_t errsz) {
    char why[400];
    lf_bizcal_t *cal = lf_bizcal_new(cfg, dir, why, sizeof why);
    if (!cal) {
        snprintf(err, errsz, "routing: %s: %s", name, why);
        return NULL;
    }
    t->cals = lf_realloc(t->cals, (t->n_cals + 1) * sizeof *t->cals);
    lf_strlcpy(t->cals[t->n_cals].name, name, S_NAME_MAX);
    t->cals[t->n_cals++].cal = cal;
    return cal;
}

/* A team's "calendar": a name under "calendars" or an inline object. */
static int s_cal_ref(lf_teams_t *t, const json_t *v, const char *path, const char *dir,
                     const lf_bizcal_t **out, char *err, size_t errsz) {
    if (json_is_string(v)) {
        for (size_t i = 0; i < t->n_cals; i++)
            if (!strcmp(t->cals[i].name, json_string_value(v))) {
                *out = t->cals[i].cal;
                return 0;
            }
        S_FAIL("routing: %s: no calendar named \"%s\" under calendars", path,
               json_string_value(v));
    }
    if (!json_is_object(v))
        S_FAIL("routing: %s: must be the name of a calendar or a calendar object", path);
    *out = s_cal_add(t, path, v, dir, err, errsz);
    return *out ? 0 : -1;
}

static int s_hours(const json_t *v, int64_t *out, const char *path, char *err,
                   size_t errsz) {
    if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 10000)
        S_FAIL("routing: %s: must be a number of hours, 0..10000", path);
    *out = (int64_t)(json_number_value(v) * 3600.0 + 0.5);
    return 0;
}

static int s_pool_parse(s_team_t *team, const json_t *o, const char *path, char *err,
                        size_t errsz) {
    const char *k;
    json_t *v;
    char sub[400];
    if (!json_is_object(o))
        S_FAIL("routing: %s: must be an object", path);
    json_object_foreach((json_t *)o, k, v) {
        snprintf(sub, sizeof sub, "%.180s.%.180s", path, k);
        if (!strcmp(k, "auto_route")) {
            const char *r;
            json_t *b;
            if (!json_is_object(v))
                S_FAIL("routing: %s: must be an object of pool_reason -> true/false",
                       sub);
            json_object_foreach(v, r, b) {
                int reason = lf_pool_reason_parse(r);
                if (reason < 0 || !json_is_boolean(b))
                    S_FAIL(
                        "routing: %s.%s: must be a pool reason (no_eligible_rep, "
                        "owner_left, recycled, reactivated, released) with true or false",
                        sub, r);
                team->pub.auto_route[reason] = json_is_true(b);
            }
        } else if (!strcmp(k, "claim_daily_limit")) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) > 100000)
                S_FAIL("routing: %s: must be an integer >= 0 (0 = no limit)", sub);
            team->pub.claim_daily_limit = (int)json_integer_value(v);
        } else if (!strcmp(k, "claim_cooldown_hours")) {
            if (s_hours(v, &team->pub.claim_cooldown_secs, sub, err, errsz))
                return -1;
        } else if (!strcmp(k, "sla_business_hours")) {
            if (s_hours(v, &team->pub.pool_sla_secs, sub, err, errsz))
                return -1;
        } else {
            S_FAIL("routing: %s: unknown key (auto_route, claim_daily_limit, "
                   "claim_cooldown_hours, sla_business_hours)",
                   sub);
        }
    }
    return 0;
}

static int s_deact_parse(const json_t *v, lf_deactivate_t *out, const char *path,
                         char *err, size_t errsz) {
    const char *s = json_string_value(v);
    if (s && !strcmp(s, "keep"))
        *out = LF_DEACT_KEEP;
    else if (s && !strcmp(s, "pool"))
        *out = LF_DEACT_POOL;
    else if (s && !strcmp(s, "route"))
        *out = LF_DEACT_ROUTE;
    else
        S_FAIL("routing: %s: must be \"keep\", \"pool\" or \"route\"", path);
    return 0;
}

/* The keys of one team (or of the defaults, under their top-level names). */
static int s_team_parse(lf_teams_t *t, s_team_t *team, const json_t *o, const char *path,
                        const char *dir, char *err, size_t errsz) {
    const char *k;
    json_t *v;
    char sub[400];
    json_object_foreach((json_t *)o, k, v) {
        snprintf(sub, sizeof sub, "%.180s.%.180s", path, k);
        if (!strcmp(k, "manager")) {
            if (!s_name_ok(v))
                S_FAIL("routing: %s: must be a rep id", sub);
            lf_strlcpy(team->manager, json_string_value(v), S_NAME_MAX);
            team->pub.manager = team->manager;
        } else if (!strcmp(k, "fallback")) {
            team->pub.fallback_notice = json_is_true(json_object_get(v, "manager"));
        } else if (!strcmp(k, "calendar")) {
            if (s_cal_ref(t, v, sub, dir, &team->pub.calendar, err, errsz))
                return -1;
        } else if (!strcmp(k, "pool")) {
            if (s_pool_parse(team, v, sub, err, errsz))
                return -1;
        } else if (!strcmp(k, "on_deactivate")) {
            if (s_deact_parse(v, &team->pub.on_deactivate, sub, err, errsz))
                return -1;
        }
        /* policy and the shape of fallback are assign.c's to check */
    }
    return 0;
}

static int s_parse(lf_teams_t *t, const json_t *cfg, const char *dir, char *err,
                   size_t errsz) {
    s_team_t *d = &t->defaults;
    d->pub.name = "";
    d->pub.auto_route[LF_POOL_NO_ELIGIBLE_REP] = 1;
    d->pub.auto_route[LF_POOL_OWNER_LEFT] = 1;
    d->pub.on_deactivate = LF_DEACT_POOL;
    d->pub.claim_cooldown_secs = 72 * 3600;
    if (!cfg) {
        d->pub.calendar = s_cal_add(t, "default calendar", NULL, dir, err, errsz);
        return d->pub.calendar ? 0 : -1;
    }
    if (!json_is_object(cfg))
        S_FAIL("routing: the configuration must be a JSON object");
    json_t *vocab = json_object_get(cfg, "vocabularies");
    if (vocab) {
        const char *k;
        json_t *v;
        if (!json_is_object(vocab))
            S_FAIL("routing: vocabularies: must be {\"region\": {...}, \"industry\": "
                   "{...}}");
        json_object_foreach(vocab, k, v) {
            if (strcmp(k, "region") && strcmp(k, "industry"))
                S_FAIL("routing: vocabularies.%s: unknown (region, industry)", k);
        }
        if (s_vocab_parse(&t->vocab[0], json_object_get(vocab, "region"), "region", err,
                          errsz) ||
            s_vocab_parse(&t->vocab[1], json_object_get(vocab, "industry"), "industry",
                          err, errsz))
            return -1;
    }
    if (s_rules_parse(t, json_object_get(cfg, "team_rules"), err, errsz))
        return -1;
    json_t *dt = json_object_get(cfg, "default_team");
    if (dt && !json_is_null(dt)) {
        if (!s_name_ok(dt))
            S_FAIL("routing: default_team: must be a team name or null");
        lf_strlcpy(t->default_team, json_string_value(dt), S_NAME_MAX);
    }
    json_t *cals = json_object_get(cfg, "calendars");
    if (cals) {
        const char *k;
        json_t *v;
        char path[200];
        if (!json_is_object(cals))
            S_FAIL("routing: calendars: must be an object of name -> calendar");
        json_object_foreach(cals, k, v) {
            snprintf(path, sizeof path, "calendars.%s", k);
            if (!*k || strlen(k) >= S_NAME_MAX)
                S_FAIL("routing: %s: must be a calendar under a name", path);
            if (!s_cal_add(t, path, v, dir, err, errsz))
                return -1;
            lf_strlcpy(t->cals[t->n_cals - 1].name, k, S_NAME_MAX); /* found by name */
        }
    }
    /* The defaults, from the top-level default_* keys. */
    json_t *dflt = json_object();
    json_t *v;
    if ((v = json_object_get(cfg, "default_fallback")))
        json_object_set(dflt, "fallback", v);
    if ((v = json_object_get(cfg, "default_calendar")))
        json_object_set(dflt, "calendar", v);
    if ((v = json_object_get(cfg, "default_pool")))
        json_object_set(dflt, "pool", v);
    if ((v = json_object_get(cfg, "default_on_deactivate")))
        json_object_set(dflt, "on_deactivate", v);
    int rc = s_team_parse(t, d, dflt, "default", dir, err, errsz);
    json_decref(dflt);
    if (rc)
        return -1;
    if (!d->pub.calendar &&
        !(d->pub.calendar = s_cal_add(t, "default calendar", NULL, dir, err, errsz)))
        return -1;

    json_t *teams = json_object_get(cfg, "teams");
    if (teams && !json_is_object(teams))
        S_FAIL("routing: teams: must be an object of team name -> settings");
    t->teams = lf_calloc(json_object_size(teams), sizeof *t->teams);
    const char *k;
    json_object_foreach(teams, k, v) {
        char path[200];
        snprintf(path, sizeof path, "teams.%s", k);
        if (!json_is_object(v) || !*k || strlen(k) >= S_NAME_MAX)
            S_FAIL("routing: %s: must be an object under a team name", path);
        s_team_t *team = &t->teams[t->n_teams++];
        *team = *d; /* inherit, then override */
        team->pub.manager = NULL;
        team->manager[0] = '\0';
        lf_strlcpy(team->name, k, S_NAME_MAX);
        team->pub.name = team->name;
        if (s_team_parse(t, team, v, path, dir, err, errsz))
            return -1;
        if (team->pub.manager)
            team->pub.manager = team->manager; /* the copy's own storage */
    }
    /* Rules and the default team must name teams the router can use: a listed team,
     * or any name (it then has the defaults), so nothing more to check here. */
    return 0;
}

lf_teams_t *lf_teams_from_json(const json_t *routing, const char *calendar_dir, char *err,
                               size_t errsz) {
    lf_teams_t *t = lf_calloc(1, sizeof *t);
    if (s_parse(t, routing, calendar_dir, err, errsz) != 0)
        lf_teams_destroy(&t);
    return t;
}

lf_teams_t *lf_teams_load(const char *config_dir, char *err, size_t errsz) {
    char path[1024], cal_dir[1024];
    if (lf_path_join(path, sizeof path, config_dir, "routing.json") ||
        lf_path_join(cal_dir, sizeof cal_dir, config_dir, "calendars")) {
        snprintf(err, errsz, "routing: config folder path too long");
        return NULL;
    }
    json_error_t jerr;
    json_t *cfg = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!cfg) {
        snprintf(err, errsz, "routing: %s:%d: %s", path, jerr.line, jerr.text);
        return NULL;
    }
    lf_teams_t *t = lf_teams_from_json(cfg, cal_dir, err, errsz);
    json_decref(cfg);
    return t;
}

void lf_teams_destroy(lf_teams_t **self_p) {
    if (!self_p || !*self_p)
        return;
    lf_teams_t *t = *self_p;
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < t->vocab[k].n; i++) {
            free(t->vocab[k].w[i].word);
            free(t->vocab[k].w[i].id);
        }
        free(t->vocab[k].w);
    }
    for (size_t i = 0; i < t->n_rules; i++) {
        for (int c = 0; c < C_N; c++) {
            for (size_t j = 0; j < t->rules[i].n[c]; j++)
                free(t->rules[i].vals[c][j]);
            free(t->rules[i].vals[c]);
        }
        free(t->rules[i].team);
    }
    free(t->rules);
    for (size_t i = 0; i < t->n_cals; i++)
        lf_bizcal_destroy(&t->cals[i].cal);
    free(t->cals);
    free(t->teams);
    free(t);
    *self_p = NULL;
}
