/* scorecard.c - the explainable grading rules of leadflow-router.
 *
 * Sales managers must be able to read why a lead is an A and change the rules without a
 * release, so the rules live in a JSON file and every point a lead receives becomes one
 * breakdown entry whose rule id reads like the condition that fired ("urgency=high",
 * "budget>=500000 CNY", "has_phone"). Rule ids are built once at load time; grading only
 * compares a few short strings and allocates the breakdown, so it costs about a
 * microsecond and the scorecard is read-only afterwards (safe to share between threads).
 *
 * The loader is strict on purpose: an unknown key or a typo in a channel name is an error
 * naming that key, because a silently ignored rule would grade every lead wrong.
 */
#include "scorecard.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_POINTS_LIMIT 100 /* a single rule may move a score by at most this much */

/* One "value -> points" rule of a lookup table (channel, source, urgency...). */
typedef struct {
    char *key;  /* the lead value that matches, compared without ASCII case */
    char *rule; /* breakdown id, e.g. "channel=referral" */
    int points; /* may be negative */
} s_entry_t;

typedef struct {
    s_entry_t *v; /* entries in file order */
    size_t n;     /* number of entries */
} s_table_t;

/* A budget band: amounts (in the base currency) >= min earn `points`. */
typedef struct {
    double min;
    int points;
    char *rule; /* "budget>=500000 CNY" or the band's own "label" */
} s_band_t;

typedef struct {
    char code[8]; /* ISO 4217 code as written in the config, e.g. "USD" */
    double rate;  /* one unit of `code` in the base currency */
} s_rate_t;

/* What the completeness rules look at, in breakdown order. */
enum {
    S_C_NAME,
    S_C_COMPANY,
    S_C_NEED,
    S_C_PHONE,
    S_C_EMAIL,
    S_C_INDUSTRY,
    S_C_REGION,
    S_C_N
};
static const char *const s_comp_fields[S_C_N] = {"name",  "company",  "need",  "phone",
                                                 "email", "industry", "region"};
static const char *const s_comp_rules[S_C_N] = {
    "has_name",  "has_company",  "has_need",  "has_phone",
    "has_email", "has_industry", "has_region"};

static const char *const s_channels[] = {"web_form", "phone", "trade_show",
                                         "partner",  "api",   "referral"};

struct lf_scorecard {
    int base;                 /* points every lead starts with */
    int thr_a, thr_b, thr_c;  /* score >= thr_a is A, >= thr_b B, >= thr_c C, else D */
    s_table_t channel;        /* by lead.channel */
    s_table_t source;         /* by lead.source */
    s_table_t urgency;        /* keys high/medium/low/unknown */
    s_table_t decision_maker; /* keys yes/no/unknown */
    s_table_t industry;       /* by lead.industry */
    s_table_t region;         /* by lead.region */
    bool budget_use_max; /* grade on budget.max (fallback min) or on min (fallback max) */
    char currency[8];    /* base currency of the bands */
    s_rate_t *rates;     /* conversion table into the base currency */
    size_t n_rates;      /* entries in rates */
    s_band_t *bands;     /* sorted by min, highest first */
    size_t n_bands;      /* entries in bands */
    int budget_missing;  /* points when no usable budget (no amount, unknown currency) */
    char *budget_missing_rule; /* "budget=unknown" */
    int comp[S_C_N];           /* completeness points per field, 0 = rule off */
};

static char *s_strdup(const char *s) {
    char *copy = strdup(s);
    if (!copy) {
        fprintf(stderr, "FATAL out of memory at %s:%d\n", __FILE__, __LINE__);
        abort();
    }
    return copy;
}

static void *s_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "FATAL out of memory at %s:%d\n", __FILE__, __LINE__);
        abort();
    }
    return p;
}

static void s_table_free(s_table_t *t) {
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].key);
        free(t->v[i].rule);
    }
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

/* Reads an integer number of points; reports `path` in `err` when it is not one. */
static int s_points(const json_t *v, const char *path, int *out, char *err,
                    size_t errsz) {
    if (!json_is_integer(v)) {
        snprintf(err, errsz, "scorecard: %s: points must be an integer", path);
        return -1;
    }
    json_int_t p = json_integer_value(v);
    if (p < -S_POINTS_LIMIT || p > S_POINTS_LIMIT) {
        snprintf(err, errsz, "scorecard: %s: points must be within -%d..%d", path,
                 S_POINTS_LIMIT, S_POINTS_LIMIT);
        return -1;
    }
    *out = (int)p;
    return 0;
}

/* Loads {"value": points, ...} into `t`. `allowed`, when not NULL, is the closed list of
 * keys the table may use, so a typo such as "webform" is caught at load time. */
static int s_table_load(s_table_t *t, const json_t *obj, const char *name,
                        const char *const *allowed, size_t n_allowed, char *err,
                        size_t errsz) {
    char path[160];
    if (!obj)
        return 0;
    if (!json_is_object(obj)) {
        snprintf(err, errsz, "scorecard: %s: must be an object of value -> points", name);
        return -1;
    }
    t->v = s_calloc(json_object_size(obj), sizeof *t->v);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        snprintf(path, sizeof path, "%s.%s", name, key);
        if (allowed) {
            size_t i = 0;
            while (i < n_allowed && strcmp(allowed[i], key) != 0)
                i++;
            if (i == n_allowed) {
                snprintf(err, errsz, "scorecard: %s: unknown %s value", path, name);
                return -1;
            }
        }
        if (*key == '\0') {
            snprintf(err, errsz, "scorecard: %s: empty key", name);
            return -1;
        }
        s_entry_t *e = &t->v[t->n];
        if (s_points(val, path, &e->points, err, errsz) != 0)
            return -1;
        e->key = s_strdup(key);
        e->rule = s_strdup(path);
        e->rule[strlen(name)] =
            '='; /* "channel.referral" reads better as "channel=referral" */
        t->n++;
    }
    return 0;
}

static const s_entry_t *s_table_find(const s_table_t *t, const char *key) {
    for (size_t i = 0; i < t->n; i++)
        if (strcasecmp(t->v[i].key, key) == 0)
            return &t->v[i];
    return NULL;
}

static int s_band_cmp(const void *a, const void *b) {
    double x = ((const s_band_t *)a)->min, y = ((const s_band_t *)b)->min;
    return x < y ? 1 : x > y ? -1 : 0;
}

static int s_budget_load(lf_scorecard_t *sc, const json_t *b, char *err, size_t errsz) {
    static const char *const known[] = {"on", "currency", "rates", "bands", "missing"};
    const char *key;
    json_t *val;
    char path[160];

    sc->budget_use_max = true;
    snprintf(sc->currency, sizeof sc->currency, "CNY");
    if (!b)
        return 0;
    if (!json_is_object(b)) {
        snprintf(err, errsz, "scorecard: budget: must be an object");
        return -1;
    }
    json_object_foreach((json_t *)b, key, val) {
        size_t i = 0;
        while (i < sizeof known / sizeof *known && strcmp(known[i], key) != 0)
            i++;
        if (i == sizeof known / sizeof *known) {
            snprintf(err, errsz, "scorecard: budget.%s: unknown key", key);
            return -1;
        }
    }
    json_t *on = json_object_get(b, "on");
    if (on) {
        if (json_is_string(on) && strcmp(json_string_value(on), "max") == 0)
            sc->budget_use_max = true;
        else if (json_is_string(on) && strcmp(json_string_value(on), "min") == 0)
            sc->budget_use_max = false;
        else {
            snprintf(err, errsz, "scorecard: budget.on: must be \"max\" or \"min\"");
            return -1;
        }
    }
    json_t *cur = json_object_get(b, "currency");
    if (cur) {
        if (!json_is_string(cur) || json_string_length(cur) == 0 ||
            json_string_length(cur) >= sizeof sc->currency) {
            snprintf(err, errsz, "scorecard: budget.currency: must be a currency code");
            return -1;
        }
        snprintf(sc->currency, sizeof sc->currency, "%s", json_string_value(cur));
    }
    json_t *rates = json_object_get(b, "rates");
    if (rates && !json_is_object(rates)) {
        snprintf(err, errsz,
                 "scorecard: budget.rates: must be an object of code -> rate");
        return -1;
    }
    sc->rates = s_calloc(json_object_size(rates) + 1, sizeof *sc->rates);
    /* The base currency converts at 1 unless the file says otherwise. */
    snprintf(sc->rates[0].code, sizeof sc->rates[0].code, "%s", sc->currency);
    sc->rates[0].rate = 1.0;
    sc->n_rates = 1;
    json_object_foreach(rates, key, val) {
        if (!json_is_number(val) || !(json_number_value(val) > 0) ||
            !isfinite(json_number_value(val))) {
            snprintf(err, errsz, "scorecard: budget.rates.%s: must be a positive number",
                     key);
            return -1;
        }
        if (*key == '\0' || strlen(key) >= sizeof sc->rates[0].code) {
            snprintf(err, errsz, "scorecard: budget.rates.%s: not a currency code", key);
            return -1;
        }
        s_rate_t *r = strcasecmp(key, sc->currency) == 0 ? &sc->rates[0]
                                                         : &sc->rates[sc->n_rates++];
        snprintf(r->code, sizeof r->code, "%s", key);
        r->rate = json_number_value(val);
    }
    json_t *bands = json_object_get(b, "bands");
    if (bands && !json_is_array(bands)) {
        snprintf(err, errsz, "scorecard: budget.bands: must be an array");
        return -1;
    }
    sc->bands = s_calloc(json_array_size(bands), sizeof *sc->bands);
    size_t idx;
    json_array_foreach(bands, idx, val) {
        snprintf(path, sizeof path, "budget.bands[%zu]", idx);
        json_t *min = json_object_get(val, "min");
        json_t *label = json_object_get(val, "label");
        if (!json_is_object(val) || !json_is_number(min) || json_number_value(min) < 0) {
            snprintf(err, errsz, "scorecard: %s.min: must be a number >= 0", path);
            return -1;
        }
        if (label && (!json_is_string(label) || json_string_length(label) == 0)) {
            snprintf(err, errsz, "scorecard: %s.label: must be a non-empty string", path);
            return -1;
        }
        s_band_t *band = &sc->bands[sc->n_bands];
        snprintf(path + strlen(path), sizeof path - strlen(path), ".points");
        if (s_points(json_object_get(val, "points"), path, &band->points, err, errsz) !=
            0)
            return -1;
        band->min = json_number_value(min);
        for (size_t j = 0; j < sc->n_bands; j++)
            if (sc->bands[j].min == band->min) {
                snprintf(err, errsz, "scorecard: budget.bands[%zu].min: duplicate band",
                         idx);
                return -1;
            }
        if (label)
            band->rule = s_strdup(json_string_value(label));
        else {
            char rule[96];
            snprintf(rule, sizeof rule, "budget>=%.0f %s", band->min, sc->currency);
            band->rule = s_strdup(rule);
        }
        sc->n_bands++;
    }
    qsort(sc->bands, sc->n_bands, sizeof *sc->bands, s_band_cmp);
    json_t *missing = json_object_get(b, "missing");
    if (missing &&
        s_points(missing, "budget.missing", &sc->budget_missing, err, errsz) != 0)
        return -1;
    sc->budget_missing_rule = s_strdup("budget=unknown");
    return 0;
}

static int s_thresholds_load(lf_scorecard_t *sc, const json_t *t, char *err,
                             size_t errsz) {
    static const char *const names[] = {"A", "B", "C"};
    int *dst[] = {&sc->thr_a, &sc->thr_b, &sc->thr_c};
    if (!json_is_object(t)) {
        snprintf(err, errsz,
                 "scorecard: thresholds: required object {\"A\":..,\"B\":..,\"C\":..}");
        return -1;
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)t, key, val) {
        if (strcmp(key, "A") && strcmp(key, "B") && strcmp(key, "C")) {
            snprintf(err, errsz,
                     "scorecard: thresholds.%s: unknown grade (D is the rest)", key);
            return -1;
        }
    }
    for (int i = 0; i < 3; i++) {
        json_t *v = json_object_get(t, names[i]);
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > 100) {
            snprintf(err, errsz, "scorecard: thresholds.%s: required integer 1..100",
                     names[i]);
            return -1;
        }
        *dst[i] = (int)json_integer_value(v);
    }
    if (sc->thr_b >= sc->thr_a) {
        snprintf(err, errsz, "scorecard: thresholds.B: must be below thresholds.A");
        return -1;
    }
    if (sc->thr_c >= sc->thr_b) {
        snprintf(err, errsz, "scorecard: thresholds.C: must be below thresholds.B");
        return -1;
    }
    return 0;
}

static int s_completeness_load(lf_scorecard_t *sc, const json_t *c, char *err,
                               size_t errsz) {
    if (!c)
        return 0;
    if (!json_is_object(c)) {
        snprintf(err, errsz,
                 "scorecard: completeness: must be an object of field -> points");
        return -1;
    }
    const char *key;
    json_t *val;
    char path[160];
    json_object_foreach((json_t *)c, key, val) {
        int i = 0;
        while (i < S_C_N && strcmp(s_comp_fields[i], key) != 0)
            i++;
        snprintf(path, sizeof path, "completeness.%s", key);
        if (i == S_C_N) {
            snprintf(err, errsz, "scorecard: %s: unknown field", path);
            return -1;
        }
        if (s_points(val, path, &sc->comp[i], err, errsz) != 0)
            return -1;
    }
    return 0;
}

lf_scorecard_t *lf_scorecard_from_json(const json_t *cfg, char *err, size_t errsz) {
    static const char *const known[] = {
        "version", "description",    "base",     "thresholds", "channel", "source",
        "urgency", "decision_maker", "industry", "region",     "budget",  "completeness"};
    static const char *const urgencies[] = {"high", "medium", "low", "unknown"};
    static const char *const yes_no[] = {"yes", "no", "unknown"};
    const char *key;
    json_t *val;

    if (!json_is_object(cfg)) {
        snprintf(err, errsz, "scorecard: the configuration must be a JSON object");
        return NULL;
    }
    json_object_foreach((json_t *)cfg, key, val) {
        size_t i = 0;
        while (i < sizeof known / sizeof *known && strcmp(known[i], key) != 0)
            i++;
        if (i == sizeof known / sizeof *known) {
            snprintf(err, errsz, "scorecard: %s: unknown key", key);
            return NULL;
        }
    }
    lf_scorecard_t *sc = s_calloc(1, sizeof *sc);
    json_t *base = json_object_get(cfg, "base");
    if (base && s_points(base, "base", &sc->base, err, errsz) != 0)
        goto fail;
    if (s_thresholds_load(sc, json_object_get(cfg, "thresholds"), err, errsz) != 0 ||
        s_table_load(&sc->channel, json_object_get(cfg, "channel"), "channel", s_channels,
                     sizeof s_channels / sizeof *s_channels, err, errsz) != 0 ||
        s_table_load(&sc->source, json_object_get(cfg, "source"), "source", NULL, 0, err,
                     errsz) != 0 ||
        s_table_load(&sc->urgency, json_object_get(cfg, "urgency"), "urgency", urgencies,
                     4, err, errsz) != 0 ||
        s_table_load(&sc->decision_maker, json_object_get(cfg, "decision_maker"),
                     "decision_maker", yes_no, 3, err, errsz) != 0 ||
        s_table_load(&sc->industry, json_object_get(cfg, "industry"), "industry", NULL, 0,
                     err, errsz) != 0 ||
        s_table_load(&sc->region, json_object_get(cfg, "region"), "region", NULL, 0, err,
                     errsz) != 0 ||
        s_budget_load(sc, json_object_get(cfg, "budget"), err, errsz) != 0 ||
        s_completeness_load(sc, json_object_get(cfg, "completeness"), err, errsz) != 0)
        goto fail;
    return sc;
fail:
    lf_scorecard_destroy(&sc);
    return NULL;
}

lf_scorecard_t *lf_scorecard_load(const char *path, char *err, size_t errsz) {
    json_error_t jerr;
    if (!path) {
        snprintf(err, errsz, "scorecard: no file given");
        return NULL;
    }
    json_t *cfg = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!cfg) {
        snprintf(err, errsz, "scorecard: %s:%d: %s", path, jerr.line, jerr.text);
        return NULL;
    }
    lf_scorecard_t *sc = lf_scorecard_from_json(cfg, err, errsz);
    json_decref(cfg);
    return sc;
}

void lf_scorecard_destroy(lf_scorecard_t **self_p) {
    if (!self_p || !*self_p)
        return;
    lf_scorecard_t *sc = *self_p;
    s_table_free(&sc->channel);
    s_table_free(&sc->source);
    s_table_free(&sc->urgency);
    s_table_free(&sc->decision_maker);
    s_table_free(&sc->industry);
    s_table_free(&sc->region);
    for (size_t i = 0; i < sc->n_bands; i++)
        free(sc->bands[i].rule);
    free(sc->bands);
    free(sc->rates);
    free(sc->budget_missing_rule);
    free(sc);
    *self_p = NULL;
}

/* Where the breakdown goes: a JSON array (out), or entries (parts) that point at the
 * rule ids, for callers that store it in a form of their own (the router's batch path:
 * ~8 entries of three allocations each, then serialized, were a good part of grading a
 * lead). */
typedef struct {
    json_t *out;
    lf_score_part_t *parts; /* LF_SCORECARD_MAX_PARTS entries */
    size_t n;               /* entries written to parts */
} s_sink_t;

/* Appends one breakdown entry; zero-point rules are left out so the breakdown lists only
 * what moved the score. */
static void s_add(s_sink_t *k, int *sum, const char *rule, int points) {
    if (points == 0)
        return;
    *sum += points;
    if (k->out) {
        json_t *e = json_object();
        json_object_set_new_nocheck(e, "rule", json_string(rule));
        json_object_set_new_nocheck(e, "points", json_integer(points));
        json_array_append_new(k->out, e);
        return;
    }
    if (k->n < LF_SCORECARD_MAX_PARTS) /* always: one entry per rule group */
        k->parts[k->n++] = (lf_score_part_t){.rule = rule, .points = points};
}

static void s_add_lookup(s_sink_t *out, int *sum, const s_table_t *t, const char *value) {
    if (!value || t->n == 0)
        return;
    const s_entry_t *e = s_table_find(t, value);
    if (e)
        s_add(out, sum, e->rule, e->points);
}

static const char *s_str(const json_t *lead, const char *field) {
    const char *s = json_string_value(json_object_get(lead, field));
    return s && *s ? s : NULL;
}

/* The amount to grade on, converted into the base currency; false when there is none. */
static bool s_budget_amount(const lf_scorecard_t *sc, const json_t *lead,
                            double *amount) {
    const json_t *b = json_object_get(lead, "budget");
    if (!json_is_object(b))
        return false;
    const json_t *first = json_object_get(b, sc->budget_use_max ? "max" : "min");
    const json_t *second = json_object_get(b, sc->budget_use_max ? "min" : "max");
    const json_t *v = json_is_number(first) ? first : second;
    if (!json_is_number(v))
        return false;
    const char *cur = json_string_value(json_object_get(b, "currency"));
    if (!cur || !*cur)
        cur = sc->currency; /* the HTTP API: the currency defaults to CNY, our base by
                               default */
    for (size_t i = 0; i < sc->n_rates; i++)
        if (strcasecmp(sc->rates[i].code, cur) == 0) {
            *amount = json_number_value(v) * sc->rates[i].rate;
            return isfinite(*amount);
        }
    return false; /* an unknown currency cannot be compared with the bands */
}

/* Grades `lead` into score, grade and the sink. */
static void s_grade(const lf_scorecard_t *sc, const json_t *lead, int *score, char *grade,
                    s_sink_t *out) {
    int sum = 0;

    s_add(out, &sum, "base", sc->base);
    s_add_lookup(out, &sum, &sc->channel, s_str(lead, "channel"));
    s_add_lookup(out, &sum, &sc->source, s_str(lead, "source"));
    const char *urg = s_str(lead, "urgency");
    s_add_lookup(out, &sum, &sc->urgency, urg ? urg : "unknown");
    const json_t *dm = json_object_get(lead, "decision_maker");
    s_add_lookup(out, &sum, &sc->decision_maker,
                 json_is_true(dm)    ? "yes"
                 : json_is_false(dm) ? "no"
                                     : "unknown");
    s_add_lookup(out, &sum, &sc->industry, s_str(lead, "industry"));
    s_add_lookup(out, &sum, &sc->region, s_str(lead, "region"));

    double amount;
    if (s_budget_amount(sc, lead, &amount)) {
        for (size_t i = 0; i < sc->n_bands; i++)
            if (amount >= sc->bands[i].min) {
                s_add(out, &sum, sc->bands[i].rule, sc->bands[i].points);
                break;
            }
    } else {
        s_add(out, &sum, sc->budget_missing_rule, sc->budget_missing);
    }
    for (int i = 0; i < S_C_N; i++)
        if (sc->comp[i] && s_str(lead, s_comp_fields[i]))
            s_add(out, &sum, s_comp_rules[i], sc->comp[i]);

    /* The clamp is an entry of its own so that the breakdown still adds up to the score.
     */
    if (sum > 100)
        s_add(out, &sum, "clamp_to_100", 100 - sum);
    else if (sum < 0)
        s_add(out, &sum, "clamp_to_0", -sum);

    *score = sum;
    *grade = sum >= sc->thr_a   ? 'A'
             : sum >= sc->thr_b ? 'B'
             : sum >= sc->thr_c ? 'C'
                                : 'D';
}

int lf_scorecard_grade(const lf_scorecard_t *sc, const json_t *lead, int *score,
                       char *grade, json_t **breakdown) {
    if (!sc || !json_is_object(lead) || !score || !grade || !breakdown)
        return -1;
    s_sink_t k = {.out = json_array()};
    s_grade(sc, lead, score, grade, &k);
    *breakdown = k.out;
    return 0;
}

int lf_scorecard_grade_parts(const lf_scorecard_t *sc, const json_t *lead, int *score,
                             char *grade, lf_score_part_t parts[LF_SCORECARD_MAX_PARTS],
                             size_t *n) {
    if (!sc || !json_is_object(lead) || !score || !grade || !parts || !n)
        return -1;
    s_sink_t k = {.parts = parts};
    s_grade(sc, lead, score, grade, &k);
    *n = k.n;
    return 0;
}
