/* bench_router.c - grading and assignment throughput of leadflow-router on one core.
 *
 * Builds a pool of 200 reps over 5 teams with skills, regions, grade limits, shifts in
 * three time zones, out-of-office periods and capacities, then grades and assigns N leads
 * (default 1,000,000; argv[1] overrides) drawn from 1024 varied canonical leads. Leads
 * are closed again after a while (a ring of open assignments) so that capacity stays a
 * live constraint instead of filling every rep and sending the rest to the queue. The
 * JSON that the router must produce per lead (breakdown, candidates) is built and freed
 * in the loop, as in production. Prints one "name value" line per figure; the target is
 * >= 50,000 grade+assign per second (docs/benchmarks.md, router row).
 *
 * Usage: build/bench/bench_router [N] [scorecard.json]   (run from the repository root)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../services/router/assign.h"
#include "../services/router/scorecard.h"

#define N_REPS 200
#define N_LEADS 1024
/* Open leads kept before the oldest closes, so capacity stays a live rule. */
#define RING 1000

static const char *const s_teams[] = {"east", "south", "north", "west", "key_accounts"};
static const char *const s_industries[] = {"medical", "manufacturing", "education",
                                           "finance", "retail",        "energy"};
static const char *const s_regions[] = {"east", "south",   "north",
                                        "west", "central", "overseas"};
/* The team that owns a lead's region (indexed like s_regions). */
static const char *const s_region_team[] = {"east", "south",        "north",
                                            "west", "key_accounts", "key_accounts"};
static const char *const s_zones[] = {"Asia/Shanghai", "+08:00", "America/New_York",
                                      "Asia/Shanghai"};
static const char *const s_channels[] = {"web_form", "phone", "trade_show",
                                         "partner",  "api",   "referral"};
static const char *const s_urgency[] = {"high", "medium", "low"};

static double s_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static json_t *s_reps(void) {
    json_t *reps = json_array();
    for (int i = 0; i < N_REPS; i++) {
        char id[32], mgr[32];
        const char *team = s_teams[i % 5];
        snprintf(id, sizeof id, "rep.%03d", i);
        snprintf(mgr, sizeof mgr, "mgr.%s", team);
        json_t *skills = json_array(), *regions = json_array(), *grades = json_array();
        if (i % 7 != 0) { /* every 7th rep is a generalist */
            json_array_append_new(skills, json_string(s_industries[i % 6]));
            json_array_append_new(skills, json_string(s_industries[(i / 6 + 1) % 6]));
        }
        /* Territories: each team covers its own region (key accounts: central and
         * overseas); a few reps of the regional teams also cover central. */
        if (i % 5 < 4) {
            json_array_append_new(regions, json_string(s_regions[i % 5]));
            if (i % 3 == 0)
                json_array_append_new(regions, json_string("central"));
        } else {
            json_array_append_new(regions, json_string("central"));
            json_array_append_new(regions, json_string("overseas"));
        }
        if (i % 4 == 0) { /* senior reps take A/B only */
            json_array_append_new(grades, json_string("A"));
            json_array_append_new(grades, json_string("B"));
        }
        json_t *hours = json_object();
        static const char *const days[] = {"mon", "tue", "wed", "thu", "fri"};
        for (int d = 0; d < 5; d++)
            json_object_set_new(hours, days[d],
                                i % 10 == 9 ? json_pack("[ss]", "22:00", "06:00")
                                            : json_pack("[ss]", "08:00", "20:00"));
        json_t *rep = json_pack(
            "{s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:i,s:i,s:b,s:s,s:o,s:b,s:i}", "id", id, "name",
            id, "team", team, "manager", mgr, "skills", skills, "regions", regions,
            "grades", grades, "capacity", i % 25 == 0 ? 0 : 20 + (i % 5) * 10, "weight",
            1 + i % 3, "active", i % 33 != 0, "timezone", s_zones[i % 4], "work_hours",
            hours, "ignore_shift", i % 11 == 0, "open_count", i % 7);
        if (i % 13 == 0) /* on leave this week */
            json_object_set_new(
                rep, "out_of_office",
                json_pack("[[II]]", (json_int_t)1795000000, (json_int_t)1796000000));
        json_array_append_new(reps, rep);
    }
    return reps;
}

static json_t *s_routing(void) {
    return json_loads(
        "{\"default_fallback\": {\"queue\": \"unassigned\"}, \"teams\": {"
        " \"east\": {\"policy\": \"weighted\", \"fallback\": {\"queue\": "
        "\"east-queue\"}},"
        " \"south\": {\"policy\": \"least_loaded\", \"fallback\": {\"manager\": true}},"
        " \"north\": {\"policy\": \"round_robin\", \"fallback\": {\"queue\": "
        "\"north-queue\"}},"
        " \"west\": {\"policy\": \"round_robin\", \"fallback\": {\"manager\": true}},"
        " \"key_accounts\": {\"policy\": \"least_loaded\", \"fallback\": {\"manager\": "
        "true}}}}",
        0, NULL);
}

static json_t *s_lead(int i) {
    char name[32], email[48];
    snprintf(name, sizeof name, "客户%d", i);
    snprintf(email, sizeof email, "buyer%d@example.cn", i);
    json_t *budget = i % 6 == 0
                         ? json_null()
                         : json_pack("{s:f,s:f,s:s,s:s}", "min", 10000.0 * (i % 40),
                                     "max", 25000.0 * (i % 60), "currency",
                                     i % 9 == 0 ? "USD" : "CNY", "raw", "10-20万");
    return json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:s,s:o,s:s,s:s,s:s,s:n,s:{}}", "channel",
        s_channels[i % 6], "source", i % 4 ? "wechat" : "baidu_sem", "name", name,
        "company", "ACME 医疗", "email", email, "phone", "+8613800138000", "budget",
        budget, "urgency", s_urgency[i % 3], "decision_maker",
        i % 3 ? json_true() : json_false(), "region", s_regions[i % 6], "industry",
        s_industries[(i * 7) % 6], "need", "CT scanner", "external_id", "extra");
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    const char *sc_path = argc > 2 ? argv[2] : "config/scorecard.json";
    char err[256];
    if (n <= 0) {
        fprintf(stderr, "usage: %s [N] [scorecard.json]\n", argv[0]);
        return 2;
    }
    lf_scorecard_t *sc = lf_scorecard_load(sc_path, err, sizeof err);
    if (!sc) {
        fprintf(stderr, "error %s\n", err);
        return 1;
    }
    json_t *reps = s_reps(), *routing = s_routing();
    lf_pool_t *pool = lf_pool_from_json(reps, routing, err, sizeof err);
    json_decref(reps);
    json_decref(routing);
    if (!pool) {
        fprintf(stderr, "error %s\n", err);
        lf_scorecard_destroy(&sc);
        return 1;
    }
    json_t *leads[N_LEADS];
    for (int i = 0; i < N_LEADS; i++)
        leads[i] = s_lead(i);
    static char ring[RING][64];
    long ring_n = 0, queued = 0, assigned = 0;
    const time_t base = 1795400000; /* Mon 2026-11-23 02:13 UTC, 10:13 in Shanghai */
    double t_grade = 0, t_assign = 0, t0 = s_now();

    for (long i = 0; i < n; i++) {
        const json_t *lead = leads[i % N_LEADS];
        int score;
        char grade;
        json_t *bd;
        double a = s_now();
        if (lf_scorecard_grade(sc, lead, &score, &grade, &bd) != 0)
            return 1;
        double b = s_now();
        const char *region = json_string_value(json_object_get(lead, "region"));
        lf_assign_req_t req = {
            .industry = json_string_value(json_object_get(lead, "industry")),
            .region = region,
            .team = s_region_team[(i % N_LEADS) % 6],
            .grade = grade,
            .preferred_owner = i % 50 == 0 ? "rep.017" : NULL,
            .now = base + i / 100, /* leads arrive at ~100/s of simulated time */
        };
        lf_assign_result_t res;
        if (lf_pool_assign(pool, &req, &res) != 0)
            return 1;
        json_decref(res.candidates);
        json_decref(bd);
        double c = s_now();
        t_grade += b - a;
        t_assign += c - b;
        if (res.rep_id[0]) {
            assigned++;
            char *slot = ring[ring_n % RING];
            if (ring_n >= RING)
                lf_pool_release(pool, slot);
            memcpy(slot, res.rep_id, sizeof res.rep_id);
            ring_n++;
        } else {
            queued++;
        }
    }
    double total = s_now() - t0;
    printf("router.reps %d\n", N_REPS);
    printf("router.leads %ld\n", n);
    printf("router.grade_per_sec %.0f\n", n / t_grade);
    printf("router.assign_per_sec %.0f\n", n / t_assign);
    printf("router.grade_assign_per_sec %.0f\n", n / total);
    printf("router.assigned_fraction %.3f\n", (double)assigned / n);
    printf("router.queued_fraction %.3f\n", (double)queued / n);
    for (int i = 0; i < N_LEADS; i++)
        json_decref(leads[i]);
    lf_pool_destroy(&pool);
    lf_scorecard_destroy(&sc);
    return 0;
}
