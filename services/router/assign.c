/* assign.c - the assignment policies of leadflow-router, with the reasons they give.
 *
 * Every lead goes through the same steps: the sticky owner of a known customer first,
 * then the eligible members of the lead's team under the team's policy, then the team's
 * fallback (a queue, or the team's manager) when nobody fits. Each rep looked at becomes
 * a candidate entry saying whether it was eligible and, if not, the first rule that ruled
 * it out, so a manager can answer "why did Wang get this one and not me?" from the stored
 * decision.
 *
 * Fairness. Round robin and least-loaded ties follow a rotation position per team (the
 * last rep served; the scan starts just after it), and the weighted policy keeps nginx's
 * smooth weighted round-robin state per rep. Neither looks at "who has the fewest leads
 * ever": a rep back from two weeks of leave would then receive every lead until they
 * caught up with the others, which is exactly the flood we must avoid. With a rotation
 * position the returning rep simply takes their next turn. Ineligible reps do not
 * accumulate weighted credit either (like a down peer in nginx), for the same reason.
 *
 * Sticky owner. The customer's owner gets the lead whatever the team, skills, region,
 * grade or shift say (the relationship matters more than an hour's wait), but not when
 * they are excluded, inactive, paused (capacity 0) or out of office, because the lead
 * would then sit untouched. Capacity does not apply by default: splitting one account
 * across two reps is worse than a rep one lead over their cap;
 * "sticky_respects_capacity": true changes that. Sticky assignments do not move the
 * rotation: they were nobody's turn.
 *
 * Time zones. Each zone named by a rep is resolved once, at pool construction, into a
 * table of UTC offsets (lf/tz.h), so a shift check is pure arithmetic on read-only
 * data: no tzset(), no TZ, no lock. Each pool owns its zones.
 *
 * Speed. Skills, regions, rep ids and team names are interned at load time into hash
 * maps, so a lead costs a few hash lookups plus integer compares per team member, not
 * string compares against every rep. Candidate entries are built once per (rep, outcome)
 * and shared by reference between results, so explaining a decision costs no allocation
 * beyond the array itself.
 */
#include "assign.h"
#include "jtext.h"

#include "lf/tz.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_ID_MAX 64
#define S_MAX_WEIGHT 1000

static void *s_alloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "FATAL out of memory at %s:%d\n", __FILE__, __LINE__);
        abort();
    }
    return p;
}

static void *s_grow(void *p, size_t n, size_t size) {
    void *q = realloc(p, (n ? n : 1) * size);
    if (!q) {
        fprintf(stderr, "FATAL out of memory at %s:%d\n", __FILE__, __LINE__);
        abort();
    }
    return q;
}

/* ---- a string -> int map (open addressing, FNV-1a) ---- */

typedef struct {
    char **keys; /* owned copies, NULL = empty slot */
    int *vals;   /* value per slot */
    size_t cap;  /* power of two */
    size_t n;    /* keys stored */
} s_map_t;

static uint64_t s_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int s_map_get(const s_map_t *m, const char *key) {
    if (!m->cap || !key)
        return -1;
    for (size_t i = s_hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->keys[i])
            return -1;
        if (strcmp(m->keys[i], key) == 0)
            return m->vals[i];
    }
}

static void s_map_put(s_map_t *m, const char *key, int val);

static void s_map_rehash(s_map_t *m) {
    s_map_t bigger = {0};
    bigger.cap = m->cap ? m->cap * 2 : 64;
    bigger.keys = s_alloc(bigger.cap, sizeof *bigger.keys);
    bigger.vals = s_alloc(bigger.cap, sizeof *bigger.vals);
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) {
            s_map_put(&bigger, m->keys[i], m->vals[i]);
            free(m->keys[i]);
        }
    free(m->keys);
    free(m->vals);
    *m = bigger;
}

static void s_map_put(s_map_t *m, const char *key, int val) {
    if ((m->n + 1) * 2 > m->cap)
        s_map_rehash(m);
    size_t i = s_hash(key) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key) != 0)
        i = (i + 1) & (m->cap - 1);
    if (!m->keys[i]) {
        m->keys[i] = strdup(key);
        if (!m->keys[i]) {
            fprintf(stderr, "FATAL out of memory at %s:%d\n", __FILE__, __LINE__);
            abort();
        }
        m->n++;
    }
    m->vals[i] = val;
}

static void s_map_free(s_map_t *m) {
    for (size_t i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- reps, teams, pool ---- */

enum s_policy { S_ROUND_ROBIN, S_WEIGHTED, S_LEAST_LOADED };
static const char *const s_policy_names[] = {"round_robin", "weighted", "least_loaded"};

/* Why a rep was skipped, in the order the checks run (the first failing one is reported).
 */
enum s_skip {
    S_OK,
    S_EXCLUDED,
    S_INACTIVE,
    S_PAUSED,
    S_OOO,
    S_OFF_SHIFT,
    S_GRADE,
    S_SKILL,
    S_REGION,
    S_AT_CAPACITY,
    S_SKIP_N
};
static const char *const s_skip_names[S_SKIP_N] = {
    NULL,        "excluded", "inactive", "paused", "out_of_office",
    "off_shift", "grade",    "skill",    "region", "at_capacity"};

typedef struct {
    char id[S_ID_MAX];      /* rep id, unique */
    char manager[S_ID_MAX]; /* manager's rep id, "" when none */
    int team;               /* index of the rep's own team, -1 when none */
    int *skills;            /* interned industries; none = any */
    size_t n_skills;
    int *regions; /* interned regions; none = any */
    size_t n_regions;
    unsigned grades;   /* bit 0 = A .. bit 3 = D */
    int capacity;      /* max open leads; 0 = paused */
    int weight;        /* smooth WRR weight, >= 1 */
    bool active;       /* false = left or disabled */
    bool ignore_shift; /* takes leads outside work_hours */
    int tz;            /* index into pool->tzs */
    bool has_hours;    /* false = always on shift */
    int16_t start[7];  /* shift start minute per weekday (0 = Sunday), -1 = day off */
    int16_t end[7];    /* shift end minute, exclusive; < start = past midnight */
    int64_t (*ooo)[2]; /* out-of-office periods [from, to) */
    size_t n_ooo;
    int open_count;          /* current open leads */
    long assigned_total;     /* leads ever assigned (ledger) */
    long current_weight;     /* smooth WRR state (ledger) */
    unsigned excl_stamp;     /* == pool->stamp when excluded from the current request */
    json_t *id_json;         /* the id as a shared JSON string, for candidate lists */
    json_t *entry[S_SKIP_N]; /* shared candidate entries per skip reason (S_OK: not
                                chosen), made on first use */
    json_t *entry_chosen;    /* shared candidate entry "eligible and chosen" */
} s_rep_t;

typedef struct {
    char name[S_ID_MAX];    /* team name; "*" is the whole pool */
    int policy;             /* enum s_policy */
    char queue[S_ID_MAX];   /* fallback queue, or the manager id for a manager fallback */
    bool to_manager;        /* fallback is the team's manager */
    char manager[S_ID_MAX]; /* the manager: from routing.json, else the first member's */
    int *members;           /* rep indices, sorted by rep id */
    size_t n;
    size_t next; /* rotation: the scan starts at members[next] */
    bool served; /* the rotation has moved at least once */
} s_team_t;

struct lf_pool {
    s_rep_t *reps; /* in input order */
    size_t n_reps;
    s_team_t *teams; /* teams[0] is "*" */
    size_t n_teams;
    lf_tz_t **tzs; /* distinct zones named by reps; tzs[0] is UTC */
    size_t n_tzs;
    int32_t *tz_off;  /* scratch: offset of each zone at the current request's time */
    s_map_t rep_ids;  /* rep id -> index */
    s_map_t tags;     /* skill/region -> interned id */
    s_map_t team_ids; /* team name -> index */
    int default_team; /* team used when the request names none */
    char default_queue[S_ID_MAX]; /* when even the fallback has no target */
    bool sticky_capacity;         /* sticky owners are held to their capacity */
    unsigned stamp;               /* request counter for exclusion marks */
    size_t *order;                /* scratch: member positions of the current scan */
    unsigned char *skips;         /* scratch: skip reason per scanned member */
    lf_assign_cand_t *cand;       /* scratch: the candidates of the last decision */
    json_t *skip_json[S_SKIP_N];  /* shared JSON strings of the skip reasons */
};

json_t *lf_routing_load(const char *path, char *err, size_t errsz) {
    json_error_t jerr;
    json_t *cfg = path ? json_load_file(path, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!cfg)
        snprintf(err, errsz, "routing: %s:%d: %s", path ? path : "(null)",
                 path ? jerr.line : 0, path ? jerr.text : "no file given");
    return cfg;
}

static int s_team_get(lf_pool_t *pool, const char *name) {
    int t = s_map_get(&pool->team_ids, name);
    if (t >= 0)
        return t;
    pool->teams = s_grow(pool->teams, pool->n_teams + 1, sizeof *pool->teams);
    s_team_t *team = &pool->teams[pool->n_teams];
    memset(team, 0, sizeof *team);
    snprintf(team->name, sizeof team->name, "%s", name);
    team->policy = -1; /* filled from the defaults after the config is read */
    s_map_put(&pool->team_ids, name, (int)pool->n_teams);
    return (int)pool->n_teams++;
}

static int s_tag(lf_pool_t *pool, const char *s) {
    int id = s_map_get(&pool->tags, s);
    if (id < 0) {
        id = (int)pool->tags.n;
        s_map_put(&pool->tags, s, id);
    }
    return id;
}

static int s_policy_parse(const json_t *v, int *out) {
    for (int i = 0; i < 3; i++)
        if (json_is_string(v) && strcmp(json_string_value(v), s_policy_names[i]) == 0) {
            *out = i;
            return 0;
        }
    return -1;
}

/* {"pool": true}, {"queue": "east-queue"} (the pool, under a name of its own) or
 * {"manager": true} (the pool, and the manager is told) */
static int s_fallback_parse(const json_t *v, s_team_t *team, const char *path, char *err,
                            size_t errsz) {
    json_t *q = json_object_get(v, "queue"), *m = json_object_get(v, "manager");
    if (json_is_object(v) && json_object_size(v) == 1 &&
        json_is_true(json_object_get(v, "pool"))) {
        snprintf(team->queue, sizeof team->queue, "%s", "pool");
        team->to_manager = false;
        return 0;
    }
    if (json_is_object(v) && json_object_size(v) == 1 && json_is_string(q) &&
        json_string_length(q) > 0 && json_string_length(q) < S_ID_MAX) {
        snprintf(team->queue, sizeof team->queue, "%s", json_string_value(q));
        team->to_manager = false;
        return 0;
    }
    if (json_is_object(v) && json_object_size(v) == 1 && json_is_true(m)) {
        team->to_manager = true;
        return 0;
    }
    snprintf(err, errsz,
             "routing: %s: must be {\"pool\": true}, {\"queue\": \"name\"} or "
             "{\"manager\": true}",
             path);
    return -1;
}

static int s_routing_parse(lf_pool_t *pool, const json_t *cfg, s_team_t *defaults,
                           int *default_capacity, char *err, size_t errsz) {
    static const char *const known[] = {
        "description", "default_team", "default_policy", "default_fallback",
        "default_capacity", "sticky_respects_capacity", "teams",
        /* read by lf_teams (common/teams.c) */
        "team_rules", "vocabularies", "calendars", "default_calendar", "default_pool",
        "default_on_deactivate"};
    const char *key;
    json_t *val;
    char path[160];

    defaults->policy = S_ROUND_ROBIN;
    snprintf(defaults->queue, sizeof defaults->queue, "unassigned");
    *default_capacity = 30;
    if (!cfg)
        return 0;
    if (!json_is_object(cfg)) {
        snprintf(err, errsz, "routing: the configuration must be a JSON object");
        return -1;
    }
    json_object_foreach((json_t *)cfg, key, val) {
        size_t i = 0;
        while (i < sizeof known / sizeof *known && strcmp(known[i], key))
            i++;
        if (i == sizeof known / sizeof *known) {
            snprintf(err, errsz, "routing: %s: unknown key", key);
            return -1;
        }
    }
    if ((val = json_object_get(cfg, "default_policy")) &&
        s_policy_parse(val, &defaults->policy)) {
        snprintf(
            err, errsz,
            "routing: default_policy: must be round_robin, weighted or least_loaded");
        return -1;
    }
    if ((val = json_object_get(cfg, "default_fallback")) &&
        s_fallback_parse(val, defaults, "default_fallback", err, errsz))
        return -1;
    if (defaults->to_manager) /* the pool-wide fallback needs a name to fall back on */
        snprintf(defaults->queue, sizeof defaults->queue, "unassigned");
    if ((val = json_object_get(cfg, "default_capacity"))) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 ||
            json_integer_value(val) > 1000000) {
            snprintf(err, errsz, "routing: default_capacity: must be an integer >= 0");
            return -1;
        }
        *default_capacity = (int)json_integer_value(val);
    }
    if ((val = json_object_get(cfg, "sticky_respects_capacity"))) {
        if (!json_is_boolean(val)) {
            snprintf(err, errsz,
                     "routing: sticky_respects_capacity: must be true or false");
            return -1;
        }
        pool->sticky_capacity = json_is_true(val);
    }
    json_t *teams = json_object_get(cfg, "teams");
    if (teams && !json_is_object(teams)) {
        snprintf(err, errsz, "routing: teams: must be an object of team name -> rules");
        return -1;
    }
    json_object_foreach(teams, key, val) {
        if (!json_is_object(val) || !*key || strlen(key) >= S_ID_MAX ||
            !strcmp(key, "*")) {
            snprintf(err, errsz, "routing: teams.%s: must be an object under a team name",
                     key);
            return -1;
        }
        int t = s_team_get(pool, key); /* may move pool->teams: index after the call */
        s_team_t *team = &pool->teams[t];
        const char *k2;
        json_t *v2;
        json_object_foreach(val, k2, v2) {
            snprintf(path, sizeof path, "teams.%s.%s", key, k2);
            if (!strcmp(k2, "policy")) {
                if (s_policy_parse(v2, &team->policy)) {
                    snprintf(err, errsz,
                             "routing: %s: unknown policy (round_robin, weighted, "
                             "least_loaded)",
                             path);
                    return -1;
                }
            } else if (!strcmp(k2, "fallback")) {
                if (s_fallback_parse(v2, team, path, err, errsz))
                    return -1;
            } else if (!strcmp(k2, "manager")) {
                if (!json_is_string(v2) || json_string_length(v2) == 0 ||
                    json_string_length(v2) >= S_ID_MAX) {
                    snprintf(err, errsz, "routing: %s: must be a rep id", path);
                    return -1;
                }
                snprintf(team->manager, sizeof team->manager, "%s",
                         json_string_value(v2));
            } else if (strcmp(k2, "calendar") && strcmp(k2, "pool") &&
                       strcmp(k2, "on_deactivate") && strcmp(k2, "description")) {
                /* calendar, pool and on_deactivate are lf_teams' (common/teams.c) */
                snprintf(err, errsz, "routing: %s: unknown key", path);
                return -1;
            }
        }
    }
    json_t *dt = json_object_get(cfg, "default_team");
    if (dt && !json_is_null(dt)) {
        if (!json_is_string(dt) || json_string_length(dt) == 0 ||
            json_string_length(dt) >= S_ID_MAX) {
            snprintf(err, errsz, "routing: default_team: must be a team name or null");
            return -1;
        }
        pool->default_team = s_team_get(pool, json_string_value(dt));
    }
    return 0;
}

/* "09:00" -> 540; "24:00" only as an end. Returns -1 when malformed. */
static int s_hhmm(const json_t *v, bool is_end) {
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

static int s_strings(lf_pool_t *pool, const json_t *arr, int **out, size_t *n) {
    if (!arr || json_is_null(arr))
        return 0;
    if (!json_is_array(arr))
        return -1;
    *out = s_alloc(json_array_size(arr), sizeof **out);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (!json_is_string(v) || json_string_length(v) == 0)
            return -1;
        (*out)[(*n)++] = s_tag(pool, json_string_value(v));
    }
    return 0;
}

static int s_tz_index(lf_pool_t *pool, const char *name, char *err, size_t errsz) {
    for (size_t i = 0; i < pool->n_tzs; i++)
        if (strcmp(lf_tz_name(pool->tzs[i]), name) == 0)
            return (int)i;
    lf_tz_t *tz = lf_tz_load(name, err, errsz);
    if (!tz)
        return -1;
    pool->tzs = s_grow(pool->tzs, pool->n_tzs + 1, sizeof *pool->tzs);
    pool->tzs[pool->n_tzs++] = tz;
    return (int)pool->n_tzs - 1;
}

#define S_FAIL(...)                                                                      \
    do {                                                                                 \
        snprintf(err, errsz, __VA_ARGS__);                                               \
        return -1;                                                                       \
    } while (0)

static int s_rep_parse(lf_pool_t *pool, s_rep_t *rep, const json_t *o, size_t idx,
                       int default_capacity, char *err, size_t errsz) {
    static const char *const days[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
    json_t *v;
    char tzerr[200];

    if (!json_is_object(o))
        S_FAIL("reps[%zu]: must be an object", idx);
    v = json_object_get(o, "id");
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) >= S_ID_MAX)
        S_FAIL("reps[%zu].id: required string of 1..%d bytes", idx, S_ID_MAX - 1);
    snprintf(rep->id, sizeof rep->id, "%s", json_string_value(v));
    const char *id = rep->id;
    if (s_map_get(&pool->rep_ids, id) >= 0)
        S_FAIL("rep %s: id: duplicate rep id", id);
    rep->team = -1;
    if ((v = json_object_get(o, "team")) && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) >= S_ID_MAX || !strcmp(json_string_value(v), "*"))
            S_FAIL("rep %s: team: must be a team name", id);
        rep->team = s_team_get(pool, json_string_value(v));
    }
    if ((v = json_object_get(o, "manager")) && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) >= S_ID_MAX)
            S_FAIL("rep %s: manager: must be a rep id", id);
        snprintf(rep->manager, sizeof rep->manager, "%s", json_string_value(v));
    }
    if (s_strings(pool, json_object_get(o, "skills"), &rep->skills, &rep->n_skills))
        S_FAIL("rep %s: skills: must be an array of non-empty strings", id);
    if (s_strings(pool, json_object_get(o, "regions"), &rep->regions, &rep->n_regions))
        S_FAIL("rep %s: regions: must be an array of non-empty strings", id);
    rep->grades = 0;
    if ((v = json_object_get(o, "grades")) && !json_is_null(v)) {
        size_t i;
        json_t *g;
        if (!json_is_array(v))
            S_FAIL("rep %s: grades: must be an array of \"A\"..\"D\"", id);
        json_array_foreach(v, i, g) {
            const char *s = json_string_value(g);
            if (!s || s[0] < 'A' || s[0] > 'D' || s[1])
                S_FAIL("rep %s: grades[%zu]: must be \"A\", \"B\", \"C\" or \"D\"", id,
                       i);
            rep->grades |= 1u << (s[0] - 'A');
        }
    }
    if (rep->grades == 0)
        rep->grades = 0xF;
    rep->capacity = default_capacity;
    if ((v = json_object_get(o, "capacity"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > 1000000)
            S_FAIL("rep %s: capacity: must be an integer >= 0 (0 pauses the rep)", id);
        rep->capacity = (int)json_integer_value(v);
    }
    rep->weight = 1;
    if ((v = json_object_get(o, "weight"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > S_MAX_WEIGHT)
            S_FAIL("rep %s: weight: must be an integer 1..%d", id, S_MAX_WEIGHT);
        rep->weight = (int)json_integer_value(v);
    }
    rep->active = true;
    if ((v = json_object_get(o, "active"))) {
        if (!json_is_boolean(v))
            S_FAIL("rep %s: active: must be true or false", id);
        rep->active = json_is_true(v);
    }
    if ((v = json_object_get(o, "ignore_shift"))) {
        if (!json_is_boolean(v))
            S_FAIL("rep %s: ignore_shift: must be true or false", id);
        rep->ignore_shift = json_is_true(v);
    }
    if ((v = json_object_get(o, "open_count"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > 1000000)
            S_FAIL("rep %s: open_count: must be an integer >= 0", id);
        rep->open_count = (int)json_integer_value(v);
    }
    if ((v = json_object_get(o, "assigned_total"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            S_FAIL("rep %s: assigned_total: must be an integer >= 0", id);
        rep->assigned_total = (long)json_integer_value(v);
    }
    rep->tz = 0;
    if ((v = json_object_get(o, "timezone")) && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) >= S_ID_MAX)
            S_FAIL("rep %s: timezone: must be an IANA name or an offset like \"+08:00\"",
                   id);
        rep->tz = s_tz_index(pool, json_string_value(v), tzerr, sizeof tzerr);
        if (rep->tz < 0)
            S_FAIL("rep %s: timezone: %.150s", id, tzerr);
    }
    for (int d = 0; d < 7; d++)
        rep->start[d] = rep->end[d] = -1;
    if ((v = json_object_get(o, "work_hours")) && !json_is_null(v)) {
        const char *day;
        json_t *win;
        if (!json_is_object(v))
            S_FAIL("rep %s: work_hours: must be an object like {\"mon\": [\"09:00\", "
                   "\"18:00\"]}",
                   id);
        rep->has_hours = true;
        json_object_foreach(v, day, win) {
            int d = 0;
            while (d < 7 && strcmp(days[d], day))
                d++;
            if (d == 7)
                S_FAIL("rep %s: work_hours.%s: not a weekday (sun, mon, ... sat)", id,
                       day);
            int s = s_hhmm(json_array_get(win, 0), false),
                e = s_hhmm(json_array_get(win, 1), true);
            if (!json_is_array(win) || json_array_size(win) != 2 || s < 0 || e < 0 ||
                s == e)
                S_FAIL("rep %s: work_hours.%s: must be [\"HH:MM\", \"HH:MM\"] with start "
                       "!= end",
                       id, day);
            rep->start[d] = (int16_t)s;
            rep->end[d] = (int16_t)e;
        }
    }
    if ((v = json_object_get(o, "out_of_office")) && !json_is_null(v)) {
        size_t i;
        json_t *per;
        if (!json_is_array(v))
            S_FAIL("rep %s: out_of_office: must be an array of [from_epoch, to_epoch]",
                   id);
        rep->ooo = s_alloc(json_array_size(v), sizeof *rep->ooo);
        json_array_foreach(v, i, per) {
            json_t *from = json_array_get(per, 0), *to = json_array_get(per, 1);
            if (json_array_size(per) != 2 || !json_is_integer(from) ||
                !json_is_integer(to) ||
                json_integer_value(from) >= json_integer_value(to))
                S_FAIL("rep %s: out_of_office[%zu]: must be [from, to] epochs with from "
                       "< to",
                       id, i);
            rep->ooo[rep->n_ooo][0] = json_integer_value(from);
            rep->ooo[rep->n_ooo][1] = json_integer_value(to);
            rep->n_ooo++;
        }
    }
    return 0;
}

/* glibc's qsort_r (we build with _GNU_SOURCE) passes the reps without a global, so two
 * threads may build pools at the same time. */
static int s_member_cmp(const void *a, const void *b, void *reps) {
    const s_rep_t *r = reps;
    return strcmp(r[*(const int *)a].id, r[*(const int *)b].id);
}

lf_pool_t *lf_pool_from_json(const json_t *reps, const json_t *routing_cfg, char *err,
                             size_t errsz) {
    s_team_t defaults = {0};
    int default_capacity;
    if (!json_is_array(reps)) {
        snprintf(err, errsz, "reps: must be an array of rep objects");
        return NULL;
    }
    lf_pool_t *pool = s_alloc(1, sizeof *pool);
    s_team_get(pool, "*");
    pool->tzs = s_alloc(1, sizeof *pool->tzs);
    pool->tzs[0] = lf_tz_load("UTC", err, errsz);
    pool->n_tzs = 1;
    if (s_routing_parse(pool, routing_cfg, &defaults, &default_capacity, err, errsz) != 0)
        goto fail;
    snprintf(pool->default_queue, sizeof pool->default_queue, "%s", defaults.queue);

    pool->reps = s_alloc(json_array_size(reps), sizeof *pool->reps);
    size_t i;
    json_t *o;
    json_array_foreach(reps, i, o) {
        s_rep_t *rep = &pool->reps[pool->n_reps++];
        if (s_rep_parse(pool, rep, o, i, default_capacity, err, errsz) != 0)
            goto fail;
        s_map_put(&pool->rep_ids, rep->id, (int)i);
        rep->id_json = json_string(rep->id);
    }
    for (int s = 1; s < S_SKIP_N; s++)
        pool->skip_json[s] = json_string(s_skip_names[s]);
    pool->tz_off = s_alloc(pool->n_tzs, sizeof *pool->tz_off);
    pool->order = s_alloc(pool->n_reps, sizeof *pool->order);
    pool->skips = s_alloc(pool->n_reps, sizeof *pool->skips);
    pool->cand = s_alloc(pool->n_reps + 1, sizeof *pool->cand);

    /* Members in id order: rotation order must not depend on the order the database
     * happened to return the reps in. */
    for (size_t t = 0; t < pool->n_teams; t++)
        pool->teams[t].members = s_alloc(pool->n_reps, sizeof(int));
    for (size_t r = 0; r < pool->n_reps; r++) {
        s_team_t *all = &pool->teams[0];
        all->members[all->n++] = (int)r;
        if (pool->reps[r].team > 0) {
            s_team_t *team = &pool->teams[pool->reps[r].team];
            team->members[team->n++] = (int)r;
        }
    }
    for (size_t t = 0; t < pool->n_teams; t++) {
        s_team_t *team = &pool->teams[t];
        qsort_r(team->members, team->n, sizeof(int), s_member_cmp, pool->reps);
        if (team->policy < 0)
            team->policy = defaults.policy;
        if (!team->to_manager && !team->queue[0]) {
            team->to_manager = defaults.to_manager;
            snprintf(team->queue, sizeof team->queue, "%s", defaults.queue);
        }
        for (size_t k = 0; k < team->n && !team->manager[0]; k++)
            snprintf(team->manager, sizeof team->manager, "%s",
                     pool->reps[team->members[k]].manager);
    }
    return pool;
fail:
    lf_pool_destroy(&pool);
    return NULL;
}

void lf_pool_destroy(lf_pool_t **self_p) {
    if (!self_p || !*self_p)
        return;
    lf_pool_t *pool = *self_p;
    for (size_t i = 0; i < pool->n_reps; i++) {
        free(pool->reps[i].skills);
        free(pool->reps[i].regions);
        free(pool->reps[i].ooo);
        json_decref(pool->reps[i].id_json);
        for (int s = 0; s < S_SKIP_N; s++)
            json_decref(pool->reps[i].entry[s]);
        json_decref(pool->reps[i].entry_chosen);
    }
    free(pool->reps);
    for (size_t i = 0; i < pool->n_teams; i++)
        free(pool->teams[i].members);
    free(pool->teams);
    for (size_t i = 0; i < pool->n_tzs; i++)
        lf_tz_destroy(&pool->tzs[i]);
    free(pool->tzs);
    free(pool->tz_off);
    free(pool->order);
    free(pool->skips);
    free(pool->cand);
    for (int s = 0; s < S_SKIP_N; s++)
        json_decref(pool->skip_json[s]);
    s_map_free(&pool->rep_ids);
    s_map_free(&pool->tags);
    s_map_free(&pool->team_ids);
    free(pool);
    *self_p = NULL;
}

/* ---- deciding ---- */

/* What a request boils down to once its strings are interned. */
typedef struct {
    int industry;   /* interned id, -1 = unknown to every rep, -2 = no constraint */
    int region;     /* same */
    unsigned grade; /* bit of the grade */
    int64_t now;
} s_ctx_t;

static bool s_has(const int *v, size_t n, int id) {
    for (size_t i = 0; i < n; i++)
        if (v[i] == id)
            return true;
    return false;
}

static bool s_on_shift(const lf_pool_t *pool, const s_rep_t *rep, int64_t now) {
    if (!rep->has_hours || rep->ignore_shift)
        return true;
    int64_t local = now + pool->tz_off[rep->tz];
    int64_t days = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
    int minute = (int)((local - days * 86400) / 60);
    int wday = (int)(((days + 4) % 7 + 7) % 7); /* 1970-01-01 was a Thursday */
    int yday = (wday + 6) % 7;
    int s = rep->start[wday], e = rep->end[wday];
    if (s >= 0 && (s < e ? (minute >= s && minute < e) : minute >= s))
        return true;
    /* Yesterday's overnight shift may still be running. */
    s = rep->start[yday];
    e = rep->end[yday];
    return s >= 0 && e < s && minute < e;
}

static bool s_out_of_office(const s_rep_t *rep, int64_t now) {
    for (size_t i = 0; i < rep->n_ooo; i++)
        if (now >= rep->ooo[i][0] && now < rep->ooo[i][1])
            return true;
    return false;
}

/* The first rule that rules `rep` out of an ordinary (non-sticky) assignment, or S_OK.
 * Capacity comes last so "at_capacity" means "would otherwise have fitted". */
static int s_skip(const lf_pool_t *pool, const s_rep_t *rep, const s_ctx_t *c) {
    if (rep->excl_stamp == pool->stamp)
        return S_EXCLUDED;
    if (!rep->active)
        return S_INACTIVE;
    if (rep->capacity == 0)
        return S_PAUSED;
    if (rep->n_ooo && s_out_of_office(rep, c->now))
        return S_OOO;
    if (!s_on_shift(pool, rep, c->now))
        return S_OFF_SHIFT;
    if (!(rep->grades & c->grade))
        return S_GRADE;
    if (c->industry != -2 && rep->n_skills &&
        !s_has(rep->skills, rep->n_skills, c->industry))
        return S_SKILL;
    if (c->region != -2 && rep->n_regions &&
        !s_has(rep->regions, rep->n_regions, c->region))
        return S_REGION;
    if (rep->open_count >= rep->capacity)
        return S_AT_CAPACITY;
    return S_OK;
}

static int s_sticky_skip(const lf_pool_t *pool, const s_rep_t *rep, const s_ctx_t *c) {
    if (rep->excl_stamp == pool->stamp)
        return S_EXCLUDED;
    if (!rep->active)
        return S_INACTIVE;
    if (rep->capacity == 0)
        return S_PAUSED;
    if (rep->n_ooo && s_out_of_office(rep, c->now))
        return S_OOO;
    if (pool->sticky_capacity && rep->open_count >= rep->capacity)
        return S_AT_CAPACITY;
    return S_OK;
}

/* A new candidate entry {"rep", "eligible", "skip", "chosen"[, "sticky"]}. */
static json_t *s_candidate(const lf_pool_t *pool, const s_rep_t *rep, int skip,
                           bool chosen, bool sticky) {
    json_t *e = json_object();
    json_object_set_nocheck(e, "rep", rep->id_json);
    json_object_set_new_nocheck(e, "eligible", json_boolean(skip == S_OK));
    json_object_set_nocheck(e, "skip",
                            skip == S_OK ? json_null() : pool->skip_json[skip]);
    json_object_set_new_nocheck(e, "chosen", json_boolean(chosen));
    if (sticky)
        json_object_set_new_nocheck(e, "sticky", json_true());
    return e;
}

/* Appends the entry of a team member. An entry depends only on (rep, skip, chosen), so
 * each one is built once and shared by reference: building ~40 fresh objects per lead
 * (six allocations each) was two thirds of an assignment's cost. The caller's array owns
 * a reference to each entry; the entries must be treated as read-only (see assign.h). */
static void s_member_entry(lf_pool_t *pool, lf_assign_result_t *res, s_rep_t *rep,
                           int skip, bool chosen) {
    pool->cand[res->n_cand++] = (lf_assign_cand_t){
        .rep = (int)(rep - pool->reps), .skip = (unsigned char)skip, .chosen = chosen};
    json_t *arr = res->candidates;
    if (!arr)
        return;
    json_t **slot = chosen ? &rep->entry_chosen : &rep->entry[skip];
    if (!*slot)
        *slot = s_candidate(pool, rep, skip, chosen, false);
    json_array_append(arr, *slot);
}

static void s_take(const lf_pool_t *pool, s_rep_t *rep, lf_assign_result_t *res) {
    res->rep = (int)(rep - pool->reps);
    rep->open_count++;
    rep->assigned_total++;
    snprintf(res->rep_id, sizeof res->rep_id, "%s", rep->id);
}

/* The one sentence of a decision. A reason longer than the field is cut, never
 * overflowed. */
static void s_reason(lf_assign_result_t *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_reason(lf_assign_result_t *res, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->reason, sizeof res->reason, fmt, ap);
    va_end(ap);
}

/* The request as the checks read it: interned facts, exclusion marks, each zone's
 * offset at the decision time. */
static void s_prepare(lf_pool_t *pool, const lf_assign_req_t *req, s_ctx_t *out) {
    s_ctx_t c = {.grade = 1u << (req->grade - 'A'), .now = (int64_t)req->now};
    c.industry = req->industry ? s_map_get(&pool->tags, req->industry) : -2;
    c.region = req->region ? s_map_get(&pool->tags, req->region) : -2;
    if (++pool->stamp == 0) { /* wrapped: clear old marks so none reads as current */
        for (size_t i = 0; i < pool->n_reps; i++)
            pool->reps[i].excl_stamp = 0;
        pool->stamp = 1;
    }
    for (const char *const *x = req->exclude; x && *x; x++) {
        int r = s_map_get(&pool->rep_ids, *x);
        if (r >= 0)
            pool->reps[r].excl_stamp = pool->stamp;
    }
    for (size_t i = 0; i < pool->n_tzs; i++)
        pool->tz_off[i] = lf_tz_offset(pool->tzs[i], c.now);
    *out = c;
}

int lf_pool_eligible(lf_pool_t *pool, const lf_assign_req_t *req) {
    if (!pool || !req || req->grade < 'A' || req->grade > 'D')
        return -1;
    s_ctx_t c;
    s_prepare(pool, req, &c);
    int t = req->team ? s_map_get(&pool->team_ids, req->team) : pool->default_team;
    if (t < 0 || (req->team && !strcmp(req->team, "*")))
        return 0;
    const s_team_t *team = &pool->teams[t];
    int n = 0;
    for (size_t k = 0; k < team->n; k++)
        n += s_skip(pool, &pool->reps[team->members[k]], &c) == S_OK;
    return n;
}

int lf_pool_assign(lf_pool_t *pool, const lf_assign_req_t *req, lf_assign_result_t *res) {
    if (res)
        memset(res, 0, sizeof *res);
    if (!pool || !req || !res || req->grade < 'A' || req->grade > 'D')
        return -1;
    s_ctx_t c;
    s_prepare(pool, req, &c);
    res->candidates = req->no_json ? NULL : json_array();
    res->cand = pool->cand;
    res->rep = -1;

    char note[128] = "";
    if (req->preferred_owner) {
        int r = s_map_get(&pool->rep_ids, req->preferred_owner);
        if (r < 0) {
            snprintf(note, sizeof note, "preferred owner %.60s is not a known rep; ",
                     req->preferred_owner);
        } else {
            s_rep_t *rep = &pool->reps[r];
            int skip = s_sticky_skip(pool, rep, &c);
            pool->cand[res->n_cand++] = (lf_assign_cand_t){.rep = r,
                                                           .skip = (unsigned char)skip,
                                                           .chosen = skip == S_OK,
                                                           .sticky = 1};
            if (res->candidates)
                json_array_append_new(res->candidates,
                                      s_candidate(pool, rep, skip, skip == S_OK, true));
            if (skip == S_OK) {
                s_take(pool, rep, res);
                s_reason(res,
                         "%s already owns this customer, so the lead stays with them.",
                         rep->id);
                return 0;
            }
            snprintf(note, sizeof note, "preferred owner %s was skipped (%s); ", rep->id,
                     s_skip_names[skip]);
        }
    }

    int t = req->team ? s_map_get(&pool->team_ids, req->team) : pool->default_team;
    if (t < 0 || (req->team && !strcmp(req->team, "*"))) {
        snprintf(res->queue, sizeof res->queue, "%s", pool->default_queue);
        s_reason(res, "%sno team named %.60s, so sent to queue %s.", note, req->team,
                 res->queue);
        return 0;
    }
    s_team_t *team = &pool->teams[t];

    /* Scan order: from the rotation position for round robin and least-loaded, so that
     * ties go to whoever's turn it is; fixed id order for smooth WRR, as in nginx. */
    size_t start = team->policy == S_WEIGHTED || team->n == 0 ? 0 : team->next % team->n;
    size_t n_ok = 0, best = SIZE_MAX, counts[S_SKIP_N] = {0};
    long total_weight = 0;
    for (size_t k = 0; k < team->n; k++) {
        size_t pos = (start + k) % team->n;
        s_rep_t *rep = &pool->reps[team->members[pos]];
        int skip = s_skip(pool, rep, &c);
        pool->order[k] = pos;
        pool->skips[k] = (unsigned char)skip;
        counts[skip]++;
        if (skip != S_OK)
            continue;
        n_ok++;
        if (team->policy == S_ROUND_ROBIN) {
            if (best == SIZE_MAX)
                best = k;
        } else if (team->policy == S_WEIGHTED) {
            rep->current_weight += rep->weight;
            total_weight += rep->weight;
            if (best == SIZE_MAX ||
                rep->current_weight >
                    pool->reps[team->members[pool->order[best]]].current_weight)
                best = k;
        } else { /* least loaded: open/capacity, compared without division */
            if (best == SIZE_MAX) {
                best = k;
            } else {
                const s_rep_t *b = &pool->reps[team->members[pool->order[best]]];
                if ((long long)rep->open_count * b->capacity <
                    (long long)b->open_count * rep->capacity)
                    best = k;
            }
        }
    }
    for (size_t k = 0; k < team->n; k++)
        s_member_entry(pool, res, &pool->reps[team->members[pool->order[k]]],
                       pool->skips[k], k == best);

    if (best == SIZE_MAX) {
        char why[128] = "";
        size_t len = 0;
        for (int s = 1; s < S_SKIP_N && len < sizeof why; s++)
            if (counts[s])
                len += (size_t)snprintf(why + len, sizeof why - len, "%s%zu %s",
                                        len ? ", " : "", counts[s], s_skip_names[s]);
        const char *target =
            team->to_manager && team->manager[0] ? team->manager : team->queue;
        if (team->to_manager && !team->manager[0])
            target = pool->default_queue;
        snprintf(res->queue, sizeof res->queue, "%s", target);
        if (team->to_manager && team->manager[0])
            snprintf(res->notify, sizeof res->notify, "%s", team->manager);
        s_reason(res, "%snobody eligible in team %s (%s), so %s %s.", note, team->name,
                 team->n ? why : "no members",
                 team->to_manager && team->manager[0] ? "handed to manager"
                                                      : "sent to queue",
                 res->queue);
        return 0;
    }
    size_t pos = pool->order[best];
    s_rep_t *rep = &pool->reps[team->members[pos]];
    if (team->policy == S_WEIGHTED)
        rep->current_weight -= total_weight;
    team->next = (pos + 1) % team->n;
    team->served = true;
    if (team->policy == S_ROUND_ROBIN)
        s_reason(
            res,
            "%s%s is next in the round-robin rotation of team %s (%zu of %zu eligible).",
            note, rep->id, team->name, n_ok, team->n);
    else if (team->policy == S_WEIGHTED)
        s_reason(
            res,
            "%s%s (weight %d) is due in the weighted rotation of team %s (%zu of %zu "
            "eligible).",
            note, rep->id, rep->weight, team->name, n_ok, team->n);
    else
        s_reason(
            res,
            "%s%s is the least loaded in team %s with %d of %d open leads (%zu of %zu "
            "eligible).",
            note, rep->id, team->name, rep->open_count, rep->capacity, n_ok, team->n);
    s_take(pool, rep, res);
    return 0;
}

size_t lf_pool_size(const lf_pool_t *pool) {
    return pool ? pool->n_reps : 0;
}

const char *lf_pool_rep_id(const lf_pool_t *pool, int index) {
    return pool && index >= 0 && (size_t)index < pool->n_reps ? pool->reps[index].id
                                                              : NULL;
}

const char *lf_pool_skip_name(int skip) {
    return skip > 0 && skip < S_SKIP_N ? s_skip_names[skip] : NULL;
}

/* ---- ledger ---- */

json_t *lf_pool_ledger(const lf_pool_t *pool) {
    if (!pool)
        return NULL;
    json_t *teams = json_object(), *reps = json_object();
    for (size_t t = 0; t < pool->n_teams; t++) {
        const s_team_t *team = &pool->teams[t];
        if (!team->served || team->n == 0)
            continue;
        const s_rep_t *last =
            &pool->reps[team->members[(team->next + team->n - 1) % team->n]];
        json_object_set_new(teams, team->name, json_pack("{s:s}", "last", last->id));
    }
    for (size_t r = 0; r < pool->n_reps; r++)
        json_object_set_new(reps, pool->reps[r].id,
                            json_pack("{s:I,s:I}", "assigned_total",
                                      (json_int_t)pool->reps[r].assigned_total,
                                      "current_weight",
                                      (json_int_t)pool->reps[r].current_weight));
    return json_pack("{s:o,s:o}", "teams", teams, "reps", reps);
}

char *lf_pool_ledger_text(const lf_pool_t *pool) {
    if (!pool)
        return NULL;
    lf_jtext_t t = {0};
    lf_jtext_raw(&t, "{\"teams\":{");
    int first = 1;
    for (size_t k = 0; k < pool->n_teams; k++) {
        const s_team_t *team = &pool->teams[k];
        if (!team->served || team->n == 0)
            continue;
        const s_rep_t *last =
            &pool->reps[team->members[(team->next + team->n - 1) % team->n]];
        lf_jtext_raw(&t, first ? "" : ",");
        first = 0;
        lf_jtext_str(&t, team->name);
        lf_jtext_raw(&t, ":{\"last\":");
        lf_jtext_str(&t, last->id);
        lf_jtext_raw(&t, "}");
    }
    lf_jtext_raw(&t, "},\"reps\":{");
    for (size_t r = 0; r < pool->n_reps; r++) {
        lf_jtext_raw(&t, r ? "," : "");
        lf_jtext_str(&t, pool->reps[r].id);
        lf_jtext_raw(&t, ":{\"assigned_total\":");
        lf_jtext_int(&t, pool->reps[r].assigned_total);
        lf_jtext_raw(&t, ",\"current_weight\":");
        lf_jtext_int(&t, pool->reps[r].current_weight);
        lf_jtext_raw(&t, "}");
    }
    lf_jtext_raw(&t, "}}");
    return t.buf;
}

int lf_pool_restore_ledger(lf_pool_t *pool, const json_t *ledger) {
    if (!pool || !json_is_object(ledger))
        return -1;
    json_t *teams = json_object_get(ledger, "teams"),
           *reps = json_object_get(ledger, "reps");
    const char *key;
    json_t *v;
    if ((teams && !json_is_object(teams)) || (reps && !json_is_object(reps)))
        return -1;
    /* Validate everything first so that a bad ledger leaves the pool untouched. */
    json_object_foreach(teams, key, v) {
        if (!json_is_string(json_object_get(v, "last")))
            return -1;
    }
    json_object_foreach(reps, key, v) {
        json_t *at = json_object_get(v, "assigned_total"),
               *cw = json_object_get(v, "current_weight");
        if (!json_is_object(v) || (at && !json_is_integer(at)) ||
            (cw && !json_is_integer(cw)))
            return -1;
    }
    json_object_foreach(teams, key, v) {
        int t = s_map_get(&pool->team_ids, key);
        if (t < 0 || pool->teams[t].n == 0)
            continue;
        s_team_t *team = &pool->teams[t];
        const char *last = json_string_value(json_object_get(v, "last"));
        /* Resume just after `last` in id order, whether or not `last` is still a member.
         */
        size_t k = 0;
        while (k < team->n && strcmp(pool->reps[team->members[k]].id, last) <= 0)
            k++;
        team->next = k % team->n;
        team->served = true;
    }
    json_object_foreach(reps, key, v) {
        int r = s_map_get(&pool->rep_ids, key);
        if (r < 0)
            continue;
        json_t *at = json_object_get(v, "assigned_total"),
               *cw = json_object_get(v, "current_weight");
        if (at)
            pool->reps[r].assigned_total = (long)json_integer_value(at);
        if (cw)
            pool->reps[r].current_weight = (long)json_integer_value(cw);
    }
    return 0;
}

int lf_pool_release(lf_pool_t *pool, const char *rep_id) {
    int r = pool ? s_map_get(&pool->rep_ids, rep_id) : -1;
    if (r < 0)
        return -1;
    if (pool->reps[r].open_count > 0)
        pool->reps[r].open_count--;
    return 0;
}

int lf_pool_open_count(const lf_pool_t *pool, const char *rep_id) {
    int r = pool ? s_map_get(&pool->rep_ids, rep_id) : -1;
    return r < 0 ? -1 : pool->reps[r].open_count;
}
