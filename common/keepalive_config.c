/* keepalive_config.c - config/keepalive.json: how long a deal may sit without a
 * follow-up, what happens then, when lost deals come back, and when managers get
 * their digests (docs/pipeline.md, "Keeping deals alive").
 *
 * Sales managers write these settings, so lengths of time are written the way they
 * say them ("3 business days", "90s", "2w") and schedules the way operators already
 * know them (cron's five fields). Everything is checked at load, strictly, like
 * pipeline.json: an unknown key, a stage the pipeline does not have as an open stage,
 * a loss reason it does not list or a malformed duration stops the service with one
 * line naming the key. The parsed form is small flat tables; lookups allocate nothing.
 * The module is pure (no database, no clock) so every rule is unit-testable. */
#include "lf/keepalive.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lf/util.h"

#define S_MAX 64 /* stages, grades, reasons, teams: a table, not a database */
#define S_TEN_YEARS 315576000 /* the longest duration we accept, in seconds */

typedef struct {
    char *stage;       /* owned */
    char *grade;       /* owned; NULL for the stage's own threshold */
    lf_duration_t dur; /* the threshold */
} s_stale_t;

typedef struct {
    char *reason;      /* owned: loss reason id */
    int never;         /* 1: this reason never comes back */
    lf_duration_t dur; /* otherwise: after how long */
} s_react_t;

typedef struct {
    char *team;     /* owned */
    lf_cron_t cron; /* its schedule */
    char *to;       /* owned, or NULL: the team's manager */
} s_digest_t;

struct lf_keepalive {
    lf_clock_t clock;                    /* business (default) or wall */
    s_stale_t stale[S_MAX * 5];          /* per stage, and per stage and grade */
    size_t nstale;                       /* entries in stale */
    lf_duration_t warn_manager_after;    /* owner warned -> manager warned */
    lf_duration_t recycle_after;         /* manager warned -> recycled */
    lf_duration_t cooldown;              /* previous owner excluded this long */
    char *restart_on[16];                /* owned: activity types restarting the clock */
    size_t nrestart;                     /* entries in restart_on */
    s_react_t react[S_MAX];              /* per loss reason */
    size_t nreact;                       /* entries in react */
    int digest_enabled;                  /* 0: no digests */
    lf_cron_t digest_default;            /* the schedule of every team not listed */
    char *digest_default_to;             /* owned, or NULL: the team's manager */
    s_digest_t digest[S_MAX];            /* per team */
    size_t ndigest;                      /* entries in digest */
    const char *digest_names[S_MAX + 1]; /* borrowed from digest[]: NULL-terminated */
    lf_duration_t fu_escalate[5];        /* follow-up escalation: [0] default, A-D */
    int fu_set[5];                       /* 1: fu_escalate[i] is set */
    int fu_never;                        /* 1: overdue follow-ups are never escalated */
};

static void s_err(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_err(char *err, size_t errsz, const char *fmt, ...) {
    if (!err || !errsz)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

/* ---- durations ---------------------------------------------------------------- */

typedef struct {
    const char *name;
    int64_t secs;
} s_unit_t;

static const s_unit_t s_units[] = {
    {"s", 1},        {"sec", 1},      {"secs", 1},    {"second", 1},    {"seconds", 1},
    {"秒", 1},       {"m", 60},       {"min", 60},    {"mins", 60},     {"minute", 60},
    {"minutes", 60}, {"分钟", 60},    {"h", 3600},    {"hr", 3600},     {"hrs", 3600},
    {"hour", 3600},  {"hours", 3600}, {"小时", 3600}, {"d", 86400},     {"day", 86400},
    {"days", 86400}, {"天", 86400},   {"w", 604800},  {"week", 604800}, {"weeks", 604800},
    {"周", 604800},  {NULL, 0}};

int lf_duration_parse(const char *text, lf_duration_t *out, char *err, size_t errsz) {
    if (!text) {
        s_err(err, errsz, "must be a duration such as \"3d\" or \"10 business days\"");
        return -1;
    }
    const char *p = text;
    while (*p == ' ')
        p++;
    if (!isdigit((unsigned char)*p)) {
        s_err(err, errsz, "\"%s\" must start with a whole number (e.g. \"3d\")", text);
        return -1;
    }
    int64_t n = 0;
    while (isdigit((unsigned char)*p)) {
        n = n * 10 + (*p++ - '0');
        if (n > S_TEN_YEARS) {
            s_err(err, errsz, "\"%s\" is longer than ten years", text);
            return -1;
        }
    }
    while (*p == ' ')
        p++;
    int business = 0;
    if (!strncmp(p, "business", 8) && (p[8] == ' ' || p[8] == '\0')) {
        business = 1;
        p += 8;
        while (*p == ' ')
            p++;
    }
    size_t len = strlen(p);
    while (len && p[len - 1] == ' ')
        len--;
    const s_unit_t *u = NULL;
    for (const s_unit_t *k = s_units; k->name; k++)
        if (strlen(k->name) == len && !strncmp(k->name, p, len)) {
            u = k;
            break;
        }
    if (!u) {
        s_err(err, errsz,
              "\"%s\": unknown unit (use s, m, h, d or w, optionally after \"business\")",
              text);
        return -1;
    }
    if (n == 0) {
        s_err(err, errsz, "\"%s\" must be longer than zero", text);
        return -1;
    }
    if (business && u->secs == 604800) {
        s_err(err, errsz,
              "\"%s\": business time is counted in days, hours, minutes or "
              "seconds, not weeks",
              text);
        return -1;
    }
    if (n * u->secs > S_TEN_YEARS) {
        s_err(err, errsz, "\"%s\" is longer than ten years", text);
        return -1;
    }
    *out = (lf_duration_t){.secs = n * u->secs,
                           .days = business && u->secs == 86400 ? (int)n : 0,
                           .business = business};
    return 0;
}

/* ---- cron ----------------------------------------------------------------------- */

static const char *const s_wday_names[] = {"sun", "mon", "tue", "wed",
                                           "thu", "fri", "sat"};
static const char *const s_month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                            "jul", "aug", "sep", "oct", "nov", "dec"};

/* A number or (for names != NULL) a three-letter name at *pp; advances *pp. */
static int s_cron_value(const char **pp, const char *const *names, int nnames, int base,
                        int *v) {
    const char *p = *pp;
    if (isdigit((unsigned char)*p)) {
        int n = 0;
        while (isdigit((unsigned char)*p) && n < 1000)
            n = n * 10 + (*p++ - '0');
        *v = n;
        *pp = p;
        return 0;
    }
    for (int i = 0; names && i < nnames; i++)
        if (!strncasecmp(p, names[i], 3) && !isalpha((unsigned char)p[3])) {
            *v = i + base;
            *pp = p + 3;
            return 0;
        }
    return -1;
}

/* One field into a bit set over [lo, hi]. */
static int s_cron_field(const char *f, int lo, int hi, const char *const *names,
                        int nnames, int nbase, uint64_t *bits, int *any) {
    *bits = 0;
    *any = !strcmp(f, "*");
    const char *p = f;
    for (;;) {
        int a, b, step = 1;
        if (*p == '*') {
            a = lo;
            b = hi;
            p++;
        } else {
            if (s_cron_value(&p, names, nnames, nbase, &a) < 0)
                return -1;
            b = a;
            if (*p == '-') {
                p++;
                if (s_cron_value(&p, names, nnames, nbase, &b) < 0)
                    return -1;
            }
        }
        if (*p == '/') {
            p++;
            if (!isdigit((unsigned char)*p))
                return -1;
            step = 0;
            while (isdigit((unsigned char)*p) && step < 1000)
                step = step * 10 + (*p++ - '0');
            if (step <= 0)
                return -1;
        }
        if (a < lo || b > hi || a > b)
            return -1;
        for (int i = a; i <= b; i += step)
            *bits |= 1ull << i;
        if (*p == ',') {
            p++;
            continue;
        }
        return *p ? -1 : 0;
    }
}

int lf_cron_parse(const char *text, lf_cron_t *out, char *err, size_t errsz) {
    static const char *const what[] = {"minute (0-59)", "hour (0-23)",
                                       "day of month (1-31)", "month (1-12 or jan-dec)",
                                       "day of week (0-7 or mon-sun)"};
    char buf[256], *fields[6], *save = NULL;
    int nf = 0;
    if (!text || strlen(text) >= sizeof buf) {
        s_err(err, errsz, "must be a schedule such as \"0 9 * * mon\"");
        return -1;
    }
    lf_strlcpy(buf, text, sizeof buf);
    for (char *t = strtok_r(buf, " \t", &save); t && nf < 6;
         t = strtok_r(NULL, " \t", &save))
        fields[nf++] = t;
    if (nf != 5) {
        s_err(err, errsz,
              "\"%s\" must have five fields: minute hour day-of-month month day-of-week",
              text);
        return -1;
    }
    static const int lo[] = {0, 0, 1, 1, 0}, hi[] = {59, 23, 31, 12, 7};
    uint64_t bits[5];
    int any[5];
    for (int i = 0; i < 5; i++) {
        const char *const *names = i == 3 ? s_month_names : i == 4 ? s_wday_names : NULL;
        int nn = i == 3 ? 12 : i == 4 ? 7 : 0, nbase = i == 3 ? 1 : 0;
        if (s_cron_field(fields[i], lo[i], hi[i], names, nn, nbase, &bits[i], &any[i]) <
            0) {
            s_err(err, errsz, "\"%s\": bad %s field \"%s\"", text, what[i], fields[i]);
            return -1;
        }
    }
    if (bits[4] & (1ull << 7))
        bits[4] = (bits[4] | 1ull) & 0x7f; /* 7 is Sunday too */
    *out = (lf_cron_t){.minutes = bits[0],
                       .hours = (uint32_t)bits[1],
                       .mdays = (uint32_t)bits[2],
                       .months = (uint16_t)bits[3],
                       .wdays = (uint8_t)bits[4],
                       .mday_any = (uint8_t)any[2],
                       .wday_any = (uint8_t)any[4]};
    return 0;
}

/* Civil date of a day number (days since 1970-01-01), H. Hinnant's algorithm. */
static void s_civil(int64_t z, int *y, int *m, int *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int64_t s_floordiv(int64_t a, int64_t b) {
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

int64_t lf_cron_next(const lf_cron_t *c, int64_t local) {
    int64_t t = s_floordiv(local, 60) * 60 + 60; /* the next whole minute */
    int64_t day = s_floordiv(t, 86400);
    int start_min = (int)((t - day * 86400) / 60);
    for (int64_t k = 0; k < 366 * 8; k++, start_min = 0) {
        int64_t dn = day + k;
        int y, m, d;
        s_civil(dn, &y, &m, &d);
        int wd = (int)(((dn % 7) + 7 + 4) % 7); /* 1970-01-01 was a Thursday */
        if (!(c->months & (1u << m)))
            continue;
        int mday_ok = (c->mdays >> d) & 1, wday_ok = (c->wdays >> wd) & 1;
        int day_ok = c->mday_any && c->wday_any ? 1
                     : c->mday_any              ? wday_ok
                     : c->wday_any              ? mday_ok
                                                : (mday_ok || wday_ok);
        if (!day_ok)
            continue;
        for (int mm = start_min; mm < 1440; mm++)
            if (((c->hours >> (mm / 60)) & 1) && ((c->minutes >> (mm % 60)) & 1))
                return dn * 86400 + (int64_t)mm * 60;
    }
    return -1;
}

/* ---- the file ------------------------------------------------------------------- */

/* Checks that obj has only the keys in `known` (and comment keys starting with '_'). */
static int s_keys(const json_t *obj, const char *where, const char *const *known,
                  char *err, size_t errsz) {
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        (void)v;
        if (k[0] == '_')
            continue;
        int ok = 0;
        for (const char *const *n = known; *n && !ok; n++)
            ok = !strcmp(*n, k);
        if (!ok) {
            s_err(err, errsz, "%s%s%s: unknown key", where, *where ? "." : "", k);
            return -1;
        }
    }
    return 0;
}

static int s_dur(const json_t *v, const char *key, lf_duration_t *out, char *err,
                 size_t errsz) {
    char why[200];
    if (!json_is_string(v) ||
        lf_duration_parse(json_string_value(v), out, why, sizeof why) < 0) {
        s_err(err, errsz, "%s: %s", key,
              json_is_string(v) ? why : "must be a duration such as \"3d\"");
        return -1;
    }
    return 0;
}

static int s_is_grade(const char *g) {
    return strlen(g) == 1 && g[0] >= 'A' && g[0] <= 'D';
}

/* A duration by grade: v is a duration (the default alone) or {"default": duration,
 * "A": duration, ...} with the default required. Fills out[0] (default) and out[1..4]
 * (grades A-D) and sets set[i] for each one given. alt names what else the caller
 * accepts, for the message ("" or "\"never\", "). Returns 0, or -1 with err. */
static int s_grade_durs(const json_t *v, const char *key, const char *alt,
                        lf_duration_t out[5], int set[5], char *err, size_t errsz) {
    if (json_is_string(v)) {
        set[0] = 1;
        return s_dur(v, key, &out[0], err, errsz);
    }
    if (!json_is_object(v) || !json_object_get(v, "default")) {
        s_err(err, errsz,
              "%s: must be a duration, %sor {\"default\": duration, \"A\": duration...}",
              key, alt);
        return -1;
    }
    const char *g;
    const json_t *gv;
    json_object_foreach((json_t *)v, g, gv) {
        if (g[0] == '_')
            continue;
        char gkey[200];
        snprintf(gkey, sizeof gkey, "%s.%s", key, g);
        int i = strcmp(g, "default") ? (s_is_grade(g) ? g[0] - 'A' + 1 : -1) : 0;
        if (i < 0) {
            s_err(err, errsz, "%s: unknown key (default, A, B, C or D)", gkey);
            return -1;
        }
        if (s_dur(gv, gkey, &out[i], err, errsz) < 0)
            return -1;
        set[i] = 1;
    }
    return 0;
}

static int s_has_reason(const json_t *pdesc, const char *id) {
    size_t i;
    const json_t *r;
    json_array_foreach(json_object_get(pdesc, "loss_reasons"), i, r) {
        if (!strcmp(json_string_value(json_object_get(r, "id")), id))
            return 1;
    }
    return 0;
}

static int s_load_stale(lf_keepalive_t *ka, const json_t *st, const lf_pipeline_t *p,
                        char *err, size_t errsz) {
    static const char *const keys[] = {"thresholds",    "warn_manager_after",
                                       "recycle_after", "cooldown",
                                       "restart_on",    NULL};
    char key[160];
    if (!json_is_object(st)) {
        s_err(err, errsz, "stale: must be an object");
        return -1;
    }
    if (s_keys(st, "stale", keys, err, errsz) < 0)
        return -1;
    const json_t *th = json_object_get(st, "thresholds");
    if (th && !json_is_object(th)) {
        s_err(err, errsz, "stale.thresholds: must be an object of stage: duration");
        return -1;
    }
    const char *stage;
    const json_t *v;
    json_object_foreach((json_t *)th, stage, v) {
        if (stage[0] == '_')
            continue;
        snprintf(key, sizeof key, "stale.thresholds.%s", stage);
        if (p && lf_pipeline_is_open(p, stage) != 1) {
            s_err(err, errsz, "%s: %s", key,
                  lf_pipeline_is_open(p, stage) < 0 ? "no such stage in the pipeline"
                                                    : "only open stages go stale");
            return -1;
        }
        if (ka->nstale + 5 > sizeof ka->stale / sizeof ka->stale[0]) {
            s_err(err, errsz, "%s: too many stages", key);
            return -1;
        }
        static const char *const grades[] = {NULL, "A", "B", "C", "D"};
        lf_duration_t dur[5];
        memset(dur, 0, sizeof dur);
        int set[5] = {0};
        if (s_grade_durs(v, key, "", dur, set, err, errsz) < 0)
            return -1;
        for (int i = 0; i < 5; i++) {
            if (!set[i])
                continue;
            s_stale_t *s = &ka->stale[ka->nstale++];
            s->dur = dur[i];
            s->stage = lf_strdup(stage);
            s->grade = i ? lf_strdup(grades[i]) : NULL;
        }
    }
    const struct {
        const char *k;
        lf_duration_t *d;
    } ladder[] = {{"warn_manager_after", &ka->warn_manager_after},
                  {"recycle_after", &ka->recycle_after},
                  {"cooldown", &ka->cooldown}};
    for (size_t i = 0; i < 3; i++) {
        const json_t *d = json_object_get(st, ladder[i].k);
        snprintf(key, sizeof key, "stale.%s", ladder[i].k);
        if (d && s_dur(d, key, ladder[i].d, err, errsz) < 0)
            return -1;
    }
    const json_t *ro = json_object_get(st, "restart_on");
    if (ro) {
        static const char *const types[] = {"call",    "visit", "email",
                                            "meeting", "note",  NULL};
        if (!json_is_array(ro) || json_array_size(ro) > 5) {
            s_err(err, errsz, "stale.restart_on: must be a list of activity types");
            return -1;
        }
        for (size_t i = 0; i < ka->nrestart; i++) {
            free(ka->restart_on[i]);
            ka->restart_on[i] = NULL; /* the list stays NULL-terminated */
        }
        ka->nrestart = 0;
        size_t i;
        json_array_foreach(ro, i, v) {
            const char *t = json_string_value(v);
            int ok = 0;
            for (const char *const *k = types; t && *k && !ok; k++)
                ok = !strcmp(*k, t);
            if (!ok) {
                s_err(
                    err, errsz,
                    "stale.restart_on[%zu]: must be call, visit, email, meeting or note",
                    i);
                return -1;
            }
            ka->restart_on[ka->nrestart++] = lf_strdup(t);
        }
    }
    return 0;
}

static int s_load_react(lf_keepalive_t *ka, const json_t *re, const lf_pipeline_t *p,
                        char *err, size_t errsz) {
    static const char *const keys[] = {"after", NULL};
    if (!json_is_object(re) || s_keys(re, "reactivation", keys, err, errsz) < 0) {
        if (!json_is_object(re))
            s_err(err, errsz, "reactivation: must be an object");
        return -1;
    }
    const json_t *after = json_object_get(re, "after");
    if (after && !json_is_object(after)) {
        s_err(err, errsz,
              "reactivation.after: must be an object of loss reason: duration");
        return -1;
    }
    json_t *pdesc = p ? lf_pipeline_to_json(p) : NULL;
    int rc = -1;
    const char *reason;
    const json_t *v;
    json_object_foreach((json_t *)after, reason, v) {
        if (reason[0] == '_')
            continue;
        char key[160];
        snprintf(key, sizeof key, "reactivation.after.%s", reason);
        if (pdesc && !s_has_reason(pdesc, reason)) {
            s_err(err, errsz, "%s: no such loss reason in the pipeline", key);
            goto out;
        }
        if (ka->nreact == S_MAX) {
            s_err(err, errsz, "%s: too many reasons", key);
            goto out;
        }
        s_react_t *r = &ka->react[ka->nreact];
        if (json_is_null(v) ||
            (json_is_string(v) && !strcmp(json_string_value(v), "never")))
            r->never = 1;
        else if (s_dur(v, key, &r->dur, err, errsz) < 0)
            goto out;
        r->reason = lf_strdup(reason);
        ka->nreact++;
    }
    rc = 0;
out:
    json_decref(pdesc);
    return rc;
}

/* "follow_up": {"escalate_after": duration | {"default": d, "A": d...} | "never"}. */
static int s_load_follow_up(lf_keepalive_t *ka, const json_t *fu, char *err,
                            size_t errsz) {
    static const char *const keys[] = {"escalate_after", NULL};
    if (!json_is_object(fu)) {
        s_err(err, errsz, "follow_up: must be an object");
        return -1;
    }
    if (s_keys(fu, "follow_up", keys, err, errsz) < 0)
        return -1;
    const json_t *v = json_object_get(fu, "escalate_after");
    const char *key = "follow_up.escalate_after";
    if (!v)
        return 0;
    if (json_is_string(v) && !strcmp(json_string_value(v), "never")) {
        ka->fu_never = 1;
        return 0;
    }
    return s_grade_durs(v, key, "\"never\", ", ka->fu_escalate, ka->fu_set, err, errsz);
}

static int s_cron(const json_t *v, const char *key, lf_cron_t *out, char *err,
                  size_t errsz) {
    char why[200];
    if (!json_is_string(v) ||
        lf_cron_parse(json_string_value(v), out, why, sizeof why) < 0) {
        s_err(err, errsz, "%s: %s", key,
              json_is_string(v) ? why : "must be a schedule such as \"0 9 * * mon\"");
        return -1;
    }
    return 0;
}

static int s_load_digest(lf_keepalive_t *ka, const json_t *dg, char *err, size_t errsz) {
    static const char *const keys[] = {"enabled", "schedule", "to", "teams", NULL};
    static const char *const tkeys[] = {"schedule", "to", NULL};
    if (!json_is_object(dg)) {
        s_err(err, errsz, "digest: must be an object");
        return -1;
    }
    if (s_keys(dg, "digest", keys, err, errsz) < 0)
        return -1;
    const json_t *en = json_object_get(dg, "enabled");
    if (en && !json_is_boolean(en)) {
        s_err(err, errsz, "digest.enabled: must be true or false");
        return -1;
    }
    ka->digest_enabled = !en || json_is_true(en);
    const json_t *sc = json_object_get(dg, "schedule");
    if (sc && s_cron(sc, "digest.schedule", &ka->digest_default, err, errsz) < 0)
        return -1;
    const json_t *to = json_object_get(dg, "to");
    if (to && !json_is_string(to)) {
        s_err(err, errsz, "digest.to: must be a rep id");
        return -1;
    }
    if (to)
        ka->digest_default_to = lf_strdup(json_string_value(to));
    const json_t *teams = json_object_get(dg, "teams");
    if (teams && !json_is_object(teams)) {
        s_err(err, errsz, "digest.teams: must be an object of team: settings");
        return -1;
    }
    const char *team;
    const json_t *v;
    json_object_foreach((json_t *)teams, team, v) {
        if (team[0] == '_')
            continue;
        char key[160];
        snprintf(key, sizeof key, "digest.teams.%s", team);
        if (!json_is_object(v) || ka->ndigest == S_MAX) {
            s_err(err, errsz, "%s: must be an object", key);
            return -1;
        }
        if (s_keys(v, key, tkeys, err, errsz) < 0)
            return -1;
        s_digest_t *d = &ka->digest[ka->ndigest];
        d->cron = ka->digest_default;
        char k2[200];
        snprintf(k2, sizeof k2, "%s.schedule", key);
        if (json_object_get(v, "schedule") &&
            s_cron(json_object_get(v, "schedule"), k2, &d->cron, err, errsz) < 0)
            return -1;
        const json_t *t2 = json_object_get(v, "to");
        if (t2 && !json_is_string(t2)) {
            s_err(err, errsz, "%s.to: must be a rep id", key);
            return -1;
        }
        d->team = lf_strdup(team);
        d->to = t2 ? lf_strdup(json_string_value(t2)) : NULL;
        ka->digest_names[ka->ndigest++] = d->team;
    }
    return 0;
}

lf_keepalive_t *lf_keepalive_from_json(const json_t *cfg, const lf_pipeline_t *p,
                                       char *err, size_t errsz) {
    static const char *const keys[] = {"version", "clock",     "stale", "reactivation",
                                       "digest",  "follow_up", NULL};
    lf_keepalive_t *ka = lf_calloc(1, sizeof *ka);
    ka->clock = LF_CLOCK_BUSINESS;
    ka->digest_enabled = 1;
    /* Defaults: the manager hears two business days after the owner, the deal is
     * recycled three business days after that, and its previous owner cannot have it
     * back for 30 days; calls, visits, e-mails and meetings restart the clock. */
    lf_duration_parse("2 business days", &ka->warn_manager_after, NULL, 0);
    lf_duration_parse("3 business days", &ka->recycle_after, NULL, 0);
    lf_duration_parse("30d", &ka->cooldown, NULL, 0);
    /* A follow-up still not done one business day after its time goes to the
     * owner's manager. */
    lf_duration_parse("1 business day", &ka->fu_escalate[0], NULL, 0);
    ka->fu_set[0] = 1;
    static const char *const restart[] = {"call", "visit", "email", "meeting"};
    for (size_t i = 0; i < 4; i++)
        ka->restart_on[ka->nrestart++] = lf_strdup(restart[i]);
    lf_cron_parse("0 9 * * mon", &ka->digest_default, NULL, 0);
    if (!json_is_object(cfg)) {
        s_err(err, errsz, "must be a JSON object");
        goto fail;
    }
    if (s_keys(cfg, "", keys, err, errsz) < 0)
        goto fail;
    const json_t *ver = json_object_get(cfg, "version");
    if (ver && (!json_is_integer(ver) || json_integer_value(ver) != 1)) {
        s_err(err, errsz, "version: must be 1");
        goto fail;
    }
    const json_t *clock = json_object_get(cfg, "clock");
    if (clock) {
        const char *c = json_string_value(clock);
        if (!c || (strcmp(c, "business") && strcmp(c, "wall"))) {
            s_err(err, errsz, "clock: must be \"business\" or \"wall\"");
            goto fail;
        }
        ka->clock = strcmp(c, "wall") ? LF_CLOCK_BUSINESS : LF_CLOCK_WALL;
    }
    const json_t *st = json_object_get(cfg, "stale");
    if (st && s_load_stale(ka, st, p, err, errsz) < 0)
        goto fail;
    const json_t *re = json_object_get(cfg, "reactivation");
    if (re && s_load_react(ka, re, p, err, errsz) < 0)
        goto fail;
    const json_t *dg = json_object_get(cfg, "digest");
    if (dg && s_load_digest(ka, dg, err, errsz) < 0)
        goto fail;
    const json_t *fu = json_object_get(cfg, "follow_up");
    if (fu && s_load_follow_up(ka, fu, err, errsz) < 0)
        goto fail;
    return ka;
fail:
    lf_keepalive_destroy(&ka);
    return NULL;
}

lf_keepalive_t *lf_keepalive_load(const char *path, const lf_pipeline_t *p, char *err,
                                  size_t errsz) {
    FILE *f = fopen(path, "r");
    if (!f) {
        json_t *empty = json_object();
        lf_keepalive_t *ka = lf_keepalive_from_json(empty, p, err, errsz);
        json_decref(empty);
        return ka;
    }
    fclose(f);
    json_error_t jerr;
    json_t *cfg = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!cfg) {
        s_err(err, errsz, "%s: line %d: %s", path, jerr.line, jerr.text);
        return NULL;
    }
    char why[256];
    lf_keepalive_t *ka = lf_keepalive_from_json(cfg, p, why, sizeof why);
    if (!ka)
        s_err(err, errsz, "%s: %s", path, why);
    json_decref(cfg);
    return ka;
}

void lf_keepalive_destroy(lf_keepalive_t **self_p) {
    if (!self_p || !*self_p)
        return;
    lf_keepalive_t *ka = *self_p;
    for (size_t i = 0; i < ka->nstale; i++) {
        free(ka->stale[i].stage);
        free(ka->stale[i].grade);
    }
    for (size_t i = 0; i < ka->nrestart; i++)
        free(ka->restart_on[i]);
    for (size_t i = 0; i < ka->nreact; i++)
        free(ka->react[i].reason);
    for (size_t i = 0; i < ka->ndigest; i++) {
        free(ka->digest[i].team);
        free(ka->digest[i].to);
    }
    free(ka->digest_default_to);
    free(ka);
    *self_p = NULL;
}

lf_clock_t lf_keepalive_clock(const lf_keepalive_t *ka) {
    return ka->clock;
}

const lf_duration_t *lf_keepalive_stale(const lf_keepalive_t *ka, const char *stage,
                                        const char *grade) {
    const lf_duration_t *def = NULL;
    for (size_t i = 0; stage && i < ka->nstale; i++) {
        const s_stale_t *s = &ka->stale[i];
        if (strcmp(s->stage, stage))
            continue;
        if (!s->grade)
            def = &s->dur;
        else if (grade && !strcmp(s->grade, grade))
            return &s->dur;
    }
    return def;
}

const lf_duration_t *lf_keepalive_warn_manager_after(const lf_keepalive_t *ka) {
    return &ka->warn_manager_after;
}

const lf_duration_t *lf_keepalive_recycle_after(const lf_keepalive_t *ka) {
    return &ka->recycle_after;
}

const lf_duration_t *lf_keepalive_cooldown(const lf_keepalive_t *ka) {
    return &ka->cooldown;
}

const lf_duration_t *lf_keepalive_follow_up_escalation(const lf_keepalive_t *ka,
                                                       const char *grade) {
    if (ka->fu_never)
        return NULL;
    if (grade && s_is_grade(grade) && ka->fu_set[grade[0] - 'A' + 1])
        return &ka->fu_escalate[grade[0] - 'A' + 1];
    return &ka->fu_escalate[0];
}

const char *const *lf_keepalive_restart_types(const lf_keepalive_t *ka) {
    return (const char *const *)ka->restart_on;
}

int lf_keepalive_restarts(const lf_keepalive_t *ka, const char *type) {
    for (size_t i = 0; type && i < ka->nrestart; i++)
        if (!strcmp(ka->restart_on[i], type))
            return 1;
    return 0;
}

const lf_duration_t *lf_keepalive_reactivation(const lf_keepalive_t *ka,
                                               const char *reason) {
    for (size_t i = 0; reason && i < ka->nreact; i++)
        if (!strcmp(ka->react[i].reason, reason))
            return ka->react[i].never ? NULL : &ka->react[i].dur;
    return NULL;
}

const lf_cron_t *lf_keepalive_digest(const lf_keepalive_t *ka, const char *team,
                                     const char **to) {
    for (size_t i = 0; team && i < ka->ndigest; i++)
        if (!strcmp(ka->digest[i].team, team)) {
            if (to)
                *to = ka->digest[i].to ? ka->digest[i].to : ka->digest_default_to;
            return &ka->digest[i].cron;
        }
    if (to)
        *to = ka->digest_default_to;
    return &ka->digest_default;
}

const char *const *lf_keepalive_digest_teams(const lf_keepalive_t *ka) {
    return ka->digest_names;
}

int lf_keepalive_digest_enabled(const lf_keepalive_t *ka) {
    return ka->digest_enabled;
}
