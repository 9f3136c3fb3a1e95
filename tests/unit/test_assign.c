/* test_assign.c - eligibility (every skip reason), the three policies and their
 * tie-breaks, fallbacks, sticky owners, exclusion, shifts across midnight in other time
 * zones, out-of-office edges, the ledger round trip and the loader's errors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../../services/router/assign.h"

static time_t s_utc(int y, int mon, int d, int h, int mi, int s) {
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mon - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return timegm(&tm);
}

/* Wednesday 2026-11-25 10:00 UTC, a plain working moment. */
#define NOW s_utc(2026, 11, 25, 10, 0, 0)

static lf_pool_t *s_pool(const char *reps, const char *routing) {
    char err[256] = "";
    json_t *r = json_loads(reps, 0, NULL),
           *cfg = routing ? json_loads(routing, 0, NULL) : NULL;
    cr_assert(r, "reps JSON: %s", reps);
    cr_assert(!routing || cfg, "routing JSON: %s", routing);
    lf_pool_t *pool = lf_pool_from_json(r, cfg, err, sizeof err);
    cr_assert(pool, "pool should load: %s", err);
    json_decref(r);
    json_decref(cfg);
    return pool;
}

/* Assigns and checks the candidate list is consistent with the result. */
static void s_assign(lf_pool_t *pool, const lf_assign_req_t *req,
                     lf_assign_result_t *res) {
    cr_assert_eq(lf_pool_assign(pool, req, res), 0);
    cr_assert(json_is_array(res->candidates));
    cr_assert(res->reason[0], "a reason is always given");
    cr_assert((res->rep_id[0] != 0) != (res->queue[0] != 0), "either a rep or a queue");
    size_t i, chosen = 0;
    json_t *c;
    json_array_foreach(res->candidates, i, c) {
        bool eligible = json_is_true(json_object_get(c, "eligible"));
        cr_assert_eq(eligible, json_is_null(json_object_get(c, "skip")));
        if (json_is_true(json_object_get(c, "chosen"))) {
            chosen++;
            cr_assert(eligible);
            cr_assert_str_eq(json_string_value(json_object_get(c, "rep")), res->rep_id);
        }
    }
    cr_assert_eq(chosen, res->rep_id[0] ? 1u : 0u);
    /* The C view (res->cand, what the router's batch path encodes) says the same,
     * entry for entry. */
    cr_assert_eq(res->n_cand, json_array_size(res->candidates));
    json_array_foreach(res->candidates, i, c) {
        const lf_assign_cand_t *e = &res->cand[i];
        cr_assert_str_eq(lf_pool_rep_id(pool, e->rep),
                         json_string_value(json_object_get(c, "rep")));
        const char *skip = json_string_value(json_object_get(c, "skip"));
        if (skip)
            cr_assert_str_eq(lf_pool_skip_name(e->skip), skip);
        else
            cr_assert_eq(e->skip, 0);
        cr_assert_eq(e->chosen, json_is_true(json_object_get(c, "chosen")));
        cr_assert_eq(e->sticky, json_is_true(json_object_get(c, "sticky")));
    }
    if (res->rep_id[0])
        cr_assert_str_eq(lf_pool_rep_id(pool, res->rep), res->rep_id);
    else
        cr_assert_eq(res->rep, -1);
}

/* The rep chosen for a default request in `team` (a static buffer). */
static const char *s_pick(lf_pool_t *pool, const char *team, time_t now) {
    static char id[64];
    lf_assign_req_t req = {.grade = 'B', .team = team, .now = now};
    lf_assign_result_t res;
    s_assign(pool, &req, &res);
    snprintf(id, sizeof id, "%s", res.rep_id[0] ? res.rep_id : res.queue);
    json_decref(res.candidates);
    return id;
}

static const char *s_skip_of(const json_t *cands, const char *rep) {
    size_t i;
    json_t *c;
    json_array_foreach(cands, i, c) {
        if (!strcmp(json_string_value(json_object_get(c, "rep")), rep))
            return json_is_null(json_object_get(c, "skip"))
                       ? "eligible"
                       : json_string_value(json_object_get(c, "skip"));
    }
    return "absent";
}

typedef struct {
    const char *rep;      /* extra fields of rep "r1" in team "t" */
    const char *industry; /* request */
    const char *region;
    char grade;
    const char *skip; /* expected skip, or "eligible" */
} skip_case_t;

static const skip_case_t s_skip_cases[] = {
    {"", NULL, NULL, 'B', "eligible"},
    {"\"active\": false", NULL, NULL, 'B', "inactive"},
    {"\"capacity\": 0", NULL, NULL, 'B', "paused"},
    {"\"capacity\": 0, \"open_count\": 0", NULL, NULL, 'B', "paused"},
    {"\"capacity\": 2, \"open_count\": 2", NULL, NULL, 'B', "at_capacity"},
    {"\"capacity\": 2, \"open_count\": 1", NULL, NULL, 'B', "eligible"},
    {"\"skills\": [\"finance\"]", "medical", NULL, 'B', "skill"},
    {"\"skills\": [\"finance\"]", "finance", NULL, 'B', "eligible"},
    {"\"skills\": [\"finance\"]", "never-seen", NULL, 'B', "skill"},
    {"\"skills\": []", "medical", NULL, 'B', "eligible"},
    {"\"skills\": [\"finance\"]", NULL, NULL, 'B', "eligible"},
    {"\"regions\": [\"north\"]", NULL, "east", 'B', "region"},
    {"\"regions\": [\"north\", \"east\"]", NULL, "east", 'B', "eligible"},
    {"\"grades\": [\"A\"]", NULL, NULL, 'B', "grade"},
    {"\"grades\": [\"A\", \"B\"]", NULL, NULL, 'B', "eligible"},
    {"\"grades\": []", NULL, NULL, 'D', "eligible"},
    {"\"work_hours\": {\"wed\": [\"13:00\", \"18:00\"]}", NULL, NULL, 'B', "off_shift"},
    {"\"work_hours\": {\"wed\": [\"13:00\", \"18:00\"]}, \"ignore_shift\": true", NULL,
     NULL, 'B', "eligible"},
    {"\"work_hours\": {\"wed\": [\"09:00\", \"18:00\"]}", NULL, NULL, 'B', "eligible"},
    {"\"work_hours\": {\"tue\": [\"09:00\", \"18:00\"]}", NULL, NULL, 'B', "off_shift"},
    {"\"work_hours\": {}", NULL, NULL, 'B', "off_shift"},
    {"\"work_hours\": null", NULL, NULL, 'B', "eligible"},
    {"\"out_of_office\": [[1000, 2000], [1795600000, 1795700000]]", NULL, NULL, 'B',
     "out_of_office"},
    /* the first failing rule is the one reported */
    {"\"active\": false, \"capacity\": 0", NULL, NULL, 'B', "inactive"},
    {"\"grades\": [\"A\"], \"capacity\": 1, \"open_count\": 1", NULL, NULL, 'B', "grade"},
};

Test(assign, each_skip_reason) {
    cr_assert(NOW > 1795600000 && NOW < 1795700000, "fixture: NOW inside the leave");
    for (size_t i = 0; i < sizeof s_skip_cases / sizeof *s_skip_cases; i++) {
        const skip_case_t *c = &s_skip_cases[i];
        char reps[512];
        snprintf(reps, sizeof reps, "[{\"id\": \"r1\", \"team\": \"t\"%s%s}]",
                 *c->rep ? ", " : "", c->rep);
        lf_pool_t *pool =
            s_pool(reps, "{\"teams\": {\"t\": {\"fallback\": {\"queue\": \"q\"}}}}");
        lf_assign_req_t req = {.grade = c->grade,
                               .team = "t",
                               .industry = c->industry,
                               .region = c->region,
                               .now = NOW};
        lf_assign_result_t res;
        s_assign(pool, &req, &res);
        cr_expect_str_eq(s_skip_of(res.candidates, "r1"), c->skip, "case %zu (%s)", i,
                         c->rep);
        cr_expect_str_eq(res.rep_id, strcmp(c->skip, "eligible") ? "" : "r1", "case %zu",
                         i);
        cr_expect_str_eq(res.queue, strcmp(c->skip, "eligible") ? "q" : "", "case %zu",
                         i);
        json_decref(res.candidates);
        lf_pool_destroy(&pool);
        cr_assert_null(pool);
    }
}

Test(assign, excluded_previous_owner) {
    lf_pool_t *pool = s_pool(
        "[{\"id\": \"a\", \"team\": \"t\"}, {\"id\": \"b\", \"team\": \"t\"}]", NULL);
    const char *const prev[] = {"a", "nobody", NULL};
    for (int i = 0; i < 3; i++) {
        lf_assign_req_t req = {.grade = 'B', .team = "t", .exclude = prev, .now = NOW};
        lf_assign_result_t res;
        s_assign(pool, &req, &res);
        cr_assert_str_eq(res.rep_id, "b");
        cr_assert_str_eq(s_skip_of(res.candidates, "a"), "excluded");
        json_decref(res.candidates);
    }
    /* the exclusion belongs to one request only */
    cr_assert_str_eq(s_pick(pool, "t", NOW), "a");
    lf_pool_destroy(&pool);
}

Test(assign, round_robin_order_in_id_order) {
    lf_pool_t *pool =
        s_pool("[{\"id\": \"c\", \"team\": \"t\"}, {\"id\": \"a\", \"team\": \"t\"},"
               " {\"id\": \"b\", \"team\": \"t\", \"capacity\": 1},"
               " {\"id\": \"x\", \"team\": \"other\"}]",
               NULL);
    const char *want[] = {"a", "b", "c", "a",
                          "c", "a", "c"}; /* b fills up after one lead */
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        cr_assert_str_eq(s_pick(pool, "t", NOW), want[i], "pick %zu", i);
    /* b's lead closes: b takes its turn again after c, where the rotation stands */
    cr_assert_eq(lf_pool_release(pool, "b"), 0);
    cr_assert_str_eq(s_pick(pool, "t", NOW), "a");
    cr_assert_str_eq(s_pick(pool, "t", NOW), "b");
    cr_assert_str_eq(s_pick(pool, "t", NOW), "c");
    lf_pool_destroy(&pool);
}

Test(assign, earlier_results_survive_later_decisions) {
    /* candidate entries are shared between results: an old result must not change */
    lf_pool_t *pool = s_pool(
        "[{\"id\": \"a\", \"team\": \"t\"}, {\"id\": \"b\", \"team\": \"t\"}]", NULL);
    lf_assign_req_t req = {.grade = 'B', .team = "t", .now = NOW};
    lf_assign_result_t first, second;
    s_assign(pool, &req, &first);
    char *before = json_dumps(first.candidates, JSON_SORT_KEYS);
    s_assign(pool, &req, &second);
    lf_pool_destroy(&pool); /* results outlive the pool */
    char *after = json_dumps(first.candidates, JSON_SORT_KEYS);
    cr_assert_str_eq(before, after);
    cr_assert_str_eq(first.rep_id, "a");
    cr_assert_str_eq(second.rep_id, "b");
    cr_assert(
        json_is_true(json_object_get(json_array_get(first.candidates, 0), "chosen")));
    cr_assert(
        json_is_false(json_object_get(json_array_get(second.candidates, 1), "chosen")));
    free(before);
    free(after);
    json_decref(first.candidates);
    json_decref(second.candidates);
}

Test(assign, no_team_means_whole_pool_or_default_team) {
    lf_pool_t *pool = s_pool(
        "[{\"id\": \"b\", \"team\": \"t\"}, {\"id\": \"a\", \"team\": \"u\"}]", NULL);
    cr_assert_str_eq(s_pick(pool, NULL, NOW), "a");
    cr_assert_str_eq(s_pick(pool, NULL, NOW), "b");
    lf_pool_destroy(&pool);
    pool = s_pool("[{\"id\": \"b\", \"team\": \"t\"}, {\"id\": \"a\", \"team\": \"u\"}]",
                  "{\"default_team\": \"t\"}");
    cr_assert_str_eq(s_pick(pool, NULL, NOW), "b");
    cr_assert_str_eq(s_pick(pool, NULL, NOW), "b");
    lf_pool_destroy(&pool);
}

static lf_pool_t *s_weighted(const char *reps) {
    return s_pool(reps, "{\"teams\": {\"t\": {\"policy\": \"weighted\"}}}");
}

Test(assign, weighted_smooth_sequence_like_nginx) {
    lf_pool_t *pool = s_weighted("[{\"id\": \"a\", \"team\": \"t\", \"weight\": 5},"
                                 " {\"id\": \"b\", \"team\": \"t\", \"weight\": 1},"
                                 " {\"id\": \"c\", \"team\": \"t\", \"weight\": 1}]");
    const char *want = "aabacaa"
                       "aabacaa";
    for (size_t i = 0; want[i]; i++)
        cr_assert_eq(s_pick(pool, "t", NOW)[0], want[i], "pick %zu", i);
    lf_pool_destroy(&pool);
}

Test(assign, weighted_exact_counts_over_1000) {
    lf_pool_t *pool = s_weighted(
        "[{\"id\": \"a\", \"team\": \"t\", \"weight\": 5, \"capacity\": 9999},"
        " {\"id\": \"b\", \"team\": \"t\", \"weight\": 3, \"capacity\": 9999},"
        " {\"id\": \"c\", \"team\": \"t\", \"weight\": 2, \"capacity\": 9999}]");
    int counts[3] = {0};
    for (int i = 0; i < 1000; i++)
        counts[s_pick(pool, "t", NOW)[0] - 'a']++;
    cr_assert_eq(counts[0], 500);
    cr_assert_eq(counts[1], 300);
    cr_assert_eq(counts[2], 200);
    cr_assert_eq(lf_pool_open_count(pool, "a"), 500);
    lf_pool_destroy(&pool);
}

Test(assign, weighted_rep_back_from_leave_is_not_flooded) {
    /* b is on leave for the first 100 picks; on return it gets its share, not a backlog.
     */
    lf_pool_t *pool = s_weighted("[{\"id\": \"a\", \"team\": \"t\", \"capacity\": 9999},"
                                 " {\"id\": \"b\", \"team\": \"t\", \"capacity\": 9999,"
                                 "  \"out_of_office\": [[0, 1000]]}]");
    for (int i = 0; i < 100; i++)
        cr_assert_str_eq(s_pick(pool, "t", 500), "a");
    int b = 0;
    for (int i = 0; i < 10; i++)
        b += !strcmp(s_pick(pool, "t", 1000), "b");
    cr_assert_eq(b, 5);
    lf_pool_destroy(&pool);
}

Test(assign, round_robin_rep_back_from_leave_is_not_flooded) {
    lf_pool_t *pool =
        s_pool("[{\"id\": \"a\", \"team\": \"t\"}, {\"id\": \"b\", \"team\": \"t\","
               "  \"out_of_office\": [[0, 1000]]}, {\"id\": \"c\", \"team\": \"t\"}]",
               NULL);
    for (int i = 0; i < 20; i++)
        s_pick(pool, "t", 500);
    const char *want[] = {"b", "c", "a",
                          "b", "c", "a"}; /* last was c: a, then b in turn */
    cr_assert_str_eq(s_pick(pool, "t", 1000), "a");
    for (size_t i = 0; i < 6; i++)
        cr_assert_str_eq(s_pick(pool, "t", 1000), want[i]);
    lf_pool_destroy(&pool);
}

Test(assign, least_loaded_and_ties) {
    const char *routing = "{\"teams\": {\"t\": {\"policy\": \"least_loaded\"}}}";
    lf_pool_t *pool =
        s_pool("[{\"id\": \"a\", \"team\": \"t\", \"capacity\": 10, \"open_count\": 5},"
               " {\"id\": \"b\", \"team\": \"t\", \"capacity\": 10, \"open_count\": 2},"
               " {\"id\": \"c\", \"team\": \"t\", \"capacity\": 2, \"open_count\": 1}]",
               routing);
    lf_assign_req_t req = {.grade = 'B', .team = "t", .now = NOW};
    lf_assign_result_t res;
    s_assign(pool, &req, &res);
    cr_assert_str_eq(res.rep_id, "b"); /* 2/10 beats 1/2 and 5/10 */
    cr_assert(strstr(res.reason, "least loaded") != NULL, "%s", res.reason);
    json_decref(res.candidates);
    lf_pool_destroy(&pool);

    /* equal ratios: whoever's turn it is in the rotation */
    pool =
        s_pool("[{\"id\": \"a\", \"team\": \"t\", \"capacity\": 10},"
               " {\"id\": \"b\", \"team\": \"t\", \"capacity\": 10},"
               " {\"id\": \"c\", \"team\": \"t\", \"capacity\": 1, \"open_count\": 0}]",
               routing);
    const char *want[] = {"a", "b", "c", "a", "b", "a", "b"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        cr_assert_str_eq(s_pick(pool, "t", NOW), want[i], "pick %zu", i);
    lf_pool_destroy(&pool);
}

Test(assign, all_full_goes_to_the_queue) {
    lf_pool_t *pool =
        s_pool("[{\"id\": \"a\", \"team\": \"east\", \"capacity\": 1, \"open_count\": 1},"
               " {\"id\": \"b\", \"team\": \"east\", \"capacity\": 3, \"open_count\": 3},"
               " {\"id\": \"c\", \"team\": \"east\", \"active\": false}]",
               "{\"teams\": {\"east\": {\"fallback\": {\"queue\": \"east-queue\"}}}}");
    lf_assign_req_t req = {.grade = 'A', .team = "east", .now = NOW};
    lf_assign_result_t res;
    s_assign(pool, &req, &res);
    cr_assert_str_eq(res.rep_id, "");
    cr_assert_str_eq(res.queue, "east-queue");
    cr_assert(strstr(res.reason, "1 inactive, 2 at_capacity") != NULL, "%s", res.reason);
    cr_assert_eq(json_array_size(res.candidates), 3);
    cr_assert_eq(lf_pool_open_count(pool, "a"), 1);
    json_decref(res.candidates);
    lf_pool_destroy(&pool);
}

Test(assign, manager_fallback) {
    const char *reps = "[{\"id\": \"a\", \"team\": \"south\", \"manager\": \"li.ming\", "
                       "\"capacity\": 0},"
                       " {\"id\": \"li.ming\", \"team\": \"mgmt\"}]";
    lf_pool_t *pool =
        s_pool(reps, "{\"teams\": {\"south\": {\"fallback\": {\"manager\": true}}}}");
    lf_assign_req_t req = {.grade = 'A', .team = "south", .now = NOW};
    lf_assign_result_t res;
    s_assign(pool, &req, &res);
    cr_assert_str_eq(res.queue, "li.ming");
    cr_assert(strstr(res.reason, "manager li.ming") != NULL, "%s", res.reason);
    json_decref(res.candidates);
    lf_pool_destroy(&pool);

    pool = s_pool(reps, "{\"teams\": {\"south\": {\"fallback\": {\"manager\": true},"
                        " \"manager\": \"zhao.lei\"}}}");
    cr_assert_str_eq(s_pick(pool, "south", NOW), "zhao.lei");
    lf_pool_destroy(&pool);

    /* nobody to escalate to: the pool's default queue */
    pool = s_pool("[{\"id\": \"a\", \"team\": \"south\", \"capacity\": 0}]",
                  "{\"default_fallback\": {\"queue\": \"triage\"},"
                  " \"teams\": {\"south\": {\"fallback\": {\"manager\": true}}}}");
    cr_assert_str_eq(s_pick(pool, "south", NOW), "triage");
    cr_assert_str_eq(s_pick(pool, "no-such-team", NOW), "triage");
    lf_pool_destroy(&pool);
}

Test(assign, sticky_owner) {
    const char *reps =
        "[{\"id\": \"a\", \"team\": \"t\"}, {\"id\": \"b\", \"team\": \"t\"},"
        " {\"id\": \"owner\", \"team\": \"far\", \"skills\": [\"finance\"],"
        "  \"capacity\": 1, \"open_count\": 1,"
        "  \"work_hours\": {\"sun\": [\"01:00\", \"02:00\"]}}]";
    lf_pool_t *pool = s_pool(reps, NULL);
    cr_assert_str_eq(s_pick(pool, "t", NOW), "a");
    lf_assign_req_t req = {.grade = 'B',
                           .team = "t",
                           .industry = "medical",
                           .preferred_owner = "owner",
                           .now = NOW};
    lf_assign_result_t res;
    /* other team, other skill, off shift and at capacity: still the owner's customer */
    s_assign(pool, &req, &res);
    cr_assert_str_eq(res.rep_id, "owner");
    cr_assert(strstr(res.reason, "already owns") != NULL);
    cr_assert(json_is_true(json_object_get(json_array_get(res.candidates, 0), "sticky")));
    json_decref(res.candidates);
    cr_assert_eq(lf_pool_open_count(pool, "owner"), 2);
    /* the sticky lead was nobody's turn: the rotation continues with b */
    cr_assert_str_eq(s_pick(pool, "t", NOW), "b");

    /* excluded (a reassignment away from the owner) falls through to the team */
    const char *const prev[] = {"owner", NULL};
    req.exclude = prev;
    s_assign(pool, &req, &res);
    cr_assert_str_eq(res.rep_id, "a");
    cr_assert(strstr(res.reason, "preferred owner owner was skipped (excluded)") != NULL,
              "%s", res.reason);
    json_decref(res.candidates);
    req.exclude = NULL;

    req.preferred_owner = "ghost";
    s_assign(pool, &req, &res);
    cr_assert_str_eq(res.rep_id, "b");
    cr_assert(strstr(res.reason, "not a known rep") != NULL);
    json_decref(res.candidates);
    lf_pool_destroy(&pool);

    /* with sticky_respects_capacity the full owner is skipped */
    pool = s_pool(reps, "{\"sticky_respects_capacity\": true}");
    req.preferred_owner = "owner";
    req.team = "t";
    s_assign(pool, &req, &res);
    cr_assert_str_eq(res.rep_id, "a");
    cr_assert_str_eq(s_skip_of(res.candidates, "owner"), "at_capacity");
    json_decref(res.candidates);
    lf_pool_destroy(&pool);

    /* out of office and paused owners are skipped */
    pool = s_pool("[{\"id\": \"a\", \"team\": \"t\"}, {\"id\": \"o\", \"out_of_office\": "
                  "[[0, 99]]},"
                  " {\"id\": \"p\", \"capacity\": 0}]",
                  NULL);
    req.preferred_owner = "o";
    req.now = 50;
    s_assign(pool, &req, &res);
    cr_assert_str_eq(s_skip_of(res.candidates, "o"), "out_of_office");
    cr_assert_str_eq(res.rep_id, "a");
    json_decref(res.candidates);
    req.preferred_owner = "p";
    s_assign(pool, &req, &res);
    cr_assert_str_eq(s_skip_of(res.candidates, "p"), "paused");
    json_decref(res.candidates);
    req.now = 99; /* back: the end of the leave is exclusive */
    req.preferred_owner = "o";
    s_assign(pool, &req, &res);
    cr_assert_str_eq(res.rep_id, "o");
    json_decref(res.candidates);
    lf_pool_destroy(&pool);
}

typedef struct {
    const char *tz;
    time_t now;
    bool on;
} shift_case_t;

Test(assign, shifts_across_midnight_in_time_zones) {
    /* A Friday night shift 22:00-06:00 local. 2026-11-27 is a Friday. */
    const shift_case_t cases[] = {
        {"Asia/Shanghai", s_utc(2026, 11, 27, 13, 59, 59), false}, /* Fri 21:59:59 */
        {"Asia/Shanghai", s_utc(2026, 11, 27, 14, 0, 0),
         true}, /* Fri 22:00 start incl. */
        {"Asia/Shanghai", s_utc(2026, 11, 27, 15, 0, 0), true},   /* Fri 23:00 */
        {"Asia/Shanghai", s_utc(2026, 11, 27, 16, 0, 0), true},   /* Sat 00:00 */
        {"Asia/Shanghai", s_utc(2026, 11, 27, 21, 59, 59), true}, /* Sat 05:59:59 */
        {"Asia/Shanghai", s_utc(2026, 11, 27, 22, 0, 0), false}, /* Sat 06:00 end excl. */
        {"Asia/Shanghai", s_utc(2026, 11, 26, 15, 0, 0), false}, /* Thu 23:00: no shift */
        {"Asia/Shanghai", s_utc(2026, 11, 28, 15, 0, 0), false}, /* Sat 23:00 */
        {"+08:00", s_utc(2026, 11, 27, 15, 0, 0), true},
        {"+0800", s_utc(2026, 11, 27, 21, 59, 0), true},
        {"+08:00", s_utc(2026, 11, 27, 22, 0, 0), false},
        {"UTC", s_utc(2026, 11, 27, 15, 0, 0),
         false}, /* same instant, Fri 15:00 in UTC */
        {"UTC", s_utc(2026, 11, 27, 23, 0, 0), true},
        {"UTC", s_utc(2026, 11, 28, 5, 59, 0), true},
        {"-05:30", s_utc(2026, 11, 28, 3, 30, 0), true}, /* Fri 22:00 */
        {"-05:30", s_utc(2026, 11, 28, 3, 29, 0), false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char reps[256];
        snprintf(reps, sizeof reps,
                 "[{\"id\": \"r\", \"timezone\": \"%s\","
                 "  \"work_hours\": {\"fri\": [\"22:00\", \"06:00\"]}}]",
                 cases[i].tz);
        lf_pool_t *pool = s_pool(reps, NULL);
        cr_expect_str_eq(s_pick(pool, NULL, cases[i].now),
                         cases[i].on ? "r" : "unassigned", "case %zu (%s)", i,
                         cases[i].tz);
        lf_pool_destroy(&pool);
    }
}

Test(assign, daylight_saving_from_tzif) {
    /* 09:00-10:00 on Wednesdays in New York: EDT (UTC-4) in July, EST (UTC-5) in January.
     */
    lf_pool_t *pool = s_pool("[{\"id\": \"r\", \"timezone\": \"America/New_York\","
                             "  \"work_hours\": {\"wed\": [\"09:00\", \"10:00\"]}}]",
                             NULL);
    cr_assert_str_eq(s_pick(pool, NULL, s_utc(2026, 7, 1, 13, 59, 0)), "r");
    cr_assert_str_eq(s_pick(pool, NULL, s_utc(2026, 7, 1, 14, 0, 0)), "unassigned");
    cr_assert_str_eq(s_pick(pool, NULL, s_utc(2026, 1, 7, 14, 59, 0)), "r");
    cr_assert_str_eq(s_pick(pool, NULL, s_utc(2026, 1, 7, 13, 59, 0)), "unassigned");
    lf_pool_destroy(&pool);
}

Test(assign, out_of_office_edges) {
    /* [from, to): from is inclusive, to exclusive */
    const struct {
        time_t now;
        bool on;
    } cases[] = {{999, true}, {1000, false}, {1500, false}, {1999, false}, {2000, true}};
    lf_pool_t *pool = s_pool("[{\"id\": \"r\", \"capacity\": 9999,"
                             "  \"out_of_office\": [[1000, 2000]]}]",
                             NULL);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        cr_expect_str_eq(s_pick(pool, NULL, cases[i].now),
                         cases[i].on ? "r" : "unassigned", "now %ld", (long)cases[i].now);
    lf_pool_destroy(&pool);
}

/* Runs `n` picks on two pools and checks they agree; with `release` each lead closes at
 * once, so least-loaded sees equal loads and only the rotation decides. */
static void s_same_picks(lf_pool_t *a, lf_pool_t *b, int n, bool release) {
    for (int i = 0; i < n; i++) {
        char x[64];
        snprintf(x, sizeof x, "%s", s_pick(a, "t", NOW));
        cr_assert_str_eq(s_pick(b, "t", NOW), x, "pick %d", i);
        if (release) {
            lf_pool_release(a, x);
            lf_pool_release(b, x);
        }
    }
}

Test(assign, ledger_round_trip_gives_the_same_next_pick) {
    const char *policies[] = {"round_robin", "weighted", "least_loaded"};
    const char *reps =
        "[{\"id\": \"a\", \"team\": \"t\", \"weight\": 3, \"capacity\": 999},"
        " {\"id\": \"b\", \"team\": \"t\", \"weight\": 2, \"capacity\": 999},"
        " {\"id\": \"c\", \"team\": \"t\", \"weight\": 1, \"capacity\": 999},"
        " {\"id\": \"d\", \"team\": \"t\", \"weight\": 1, \"capacity\": 999}]";
    for (size_t p = 0; p < 3; p++) {
        char routing[128];
        snprintf(routing, sizeof routing, "{\"teams\": {\"t\": {\"policy\": \"%s\"}}}",
                 policies[p]);
        lf_pool_t *a = s_pool(reps, routing);
        for (int i = 0; i < 5; i++) {
            const char *id = s_pick(a, "t", NOW);
            if (p == 2) /* least-loaded: keep loads equal so only the rotation decides */
                lf_pool_release(a, id);
        }
        json_t *ledger = lf_pool_ledger(a);
        char *text = json_dumps(ledger, JSON_SORT_KEYS);
        /* the text the router stores is the same ledger */
        char *direct = lf_pool_ledger_text(a);
        json_t *direct_json = json_loads(direct, JSON_REJECT_DUPLICATES, NULL);
        cr_assert(json_equal(direct_json, ledger), "ledger text %s", direct);
        json_decref(direct_json);
        free(direct);
        json_decref(ledger);
        lf_pool_t *b = s_pool(reps, routing);
        json_t *parsed = json_loads(text, 0, NULL);
        cr_assert_eq(lf_pool_restore_ledger(b, parsed), 0);
        json_t *again = lf_pool_ledger(b);
        char *text2 = json_dumps(again, JSON_SORT_KEYS);
        cr_assert_str_eq(text2, text, "ledger survives a round trip (%s)", policies[p]);
        s_same_picks(a, b, 12, p == 2);
        free(text);
        free(text2);
        json_decref(again);
        json_decref(parsed);
        lf_pool_destroy(&a);
        lf_pool_destroy(&b);
    }
}

Test(assign, ledger_restore_tolerates_membership_changes_and_rejects_junk) {
    lf_pool_t *pool =
        s_pool("[{\"id\": \"a\", \"team\": \"t\"}, {\"id\": \"b\", \"team\": \"t\"},"
               " {\"id\": \"d\", \"team\": \"t\"}]",
               NULL);
    json_t *l =
        json_loads("{\"teams\": {\"t\": {\"last\": \"c\"}, \"gone\": {\"last\": \"x\"}},"
                   " \"reps\": {\"a\": {\"assigned_total\": 7}, \"zz\": {}}}",
                   0, NULL);
    cr_assert_eq(lf_pool_restore_ledger(pool, l), 0);
    json_decref(l);
    cr_assert_str_eq(s_pick(pool, "t", NOW), "d"); /* c left: the next id after it */
    cr_assert_str_eq(s_pick(pool, "t", NOW), "a");
    json_t *saved = lf_pool_ledger(pool);
    cr_assert_eq(
        json_integer_value(json_object_get(
            json_object_get(json_object_get(saved, "reps"), "a"), "assigned_total")),
        8);
    json_decref(saved);
    const char *junk[] = {
        "[]", "{\"teams\": []}", "{\"teams\": {\"t\": {\"last\": 3}}}",
        "{\"reps\": {\"a\": {\"assigned_total\": \"x\"}}}",
        "{\"teams\": {\"t\": {\"last\": \"a\"}}, \"reps\": {\"a\": 5}}"};
    for (size_t i = 0; i < sizeof junk / sizeof *junk; i++) {
        l = json_loads(junk[i], 0, NULL);
        cr_assert_eq(lf_pool_restore_ledger(pool, l), -1, "junk %zu", i);
        json_decref(l);
    }
    cr_assert_str_eq(s_pick(pool, "t", NOW), "b", "a rejected ledger changes nothing");
    lf_pool_destroy(&pool);
}

Test(assign, release_and_bad_calls) {
    lf_pool_t *pool = s_pool("[{\"id\": \"a\", \"open_count\": 1}]", NULL);
    cr_assert_eq(lf_pool_release(pool, "a"), 0);
    cr_assert_eq(lf_pool_open_count(pool, "a"), 0);
    cr_assert_eq(lf_pool_release(pool, "a"), 0);
    cr_assert_eq(lf_pool_open_count(pool, "a"), 0, "never below zero");
    cr_assert_eq(lf_pool_release(pool, "nobody"), -1);
    cr_assert_eq(lf_pool_open_count(pool, "nobody"), -1);
    lf_assign_req_t req = {.grade = 'E', .now = NOW};
    lf_assign_result_t res;
    cr_assert_eq(lf_pool_assign(pool, &req, &res), -1);
    cr_assert_null(res.candidates);
    cr_assert_eq(lf_pool_assign(pool, NULL, &res), -1);
    cr_assert_eq(lf_pool_assign(NULL, &req, &res), -1);
    lf_pool_destroy(&pool);
    lf_pool_destroy(&pool);
    lf_pool_destroy(NULL);
}

typedef struct {
    const char *reps;
    const char *routing;
    const char *err;
} bad_pool_t;

static const bad_pool_t s_bad[] = {
    {"{}", NULL, "reps: must be an array"},
    {"[{\"name\": \"x\"}]", NULL, "reps[0].id"},
    {"[{\"id\": \"a\"}, {\"id\": \"a\"}]", NULL, "rep a: id: duplicate"},
    {"[{\"id\": \"a\", \"weight\": 0}]", NULL, "rep a: weight"},
    {"[{\"id\": \"a\", \"capacity\": -1}]", NULL, "rep a: capacity"},
    {"[{\"id\": \"a\", \"grades\": [\"E\"]}]", NULL, "rep a: grades[0]"},
    {"[{\"id\": \"a\", \"skills\": \"medical\"}]", NULL, "rep a: skills"},
    {"[{\"id\": \"a\", \"regions\": [1]}]", NULL, "rep a: regions"},
    {"[{\"id\": \"a\", \"active\": 1}]", NULL, "rep a: active"},
    {"[{\"id\": \"a\", \"open_count\": -2}]", NULL, "rep a: open_count"},
    {"[{\"id\": \"a\", \"work_hours\": {\"mon\": [\"9:00\", \"18:00\"]}}]", NULL,
     "rep a: work_hours.mon"},
    {"[{\"id\": \"a\", \"work_hours\": {\"mon\": [\"09:00\", \"09:00\"]}}]", NULL,
     "rep a: work_hours.mon"},
    {"[{\"id\": \"a\", \"work_hours\": {\"mon\": [\"24:00\", \"09:00\"]}}]", NULL,
     "rep a: work_hours.mon"},
    {"[{\"id\": \"a\", \"work_hours\": {\"funday\": [\"09:00\", \"18:00\"]}}]", NULL,
     "rep a: work_hours.funday"},
    {"[{\"id\": \"a\", \"out_of_office\": [[5, 5]]}]", NULL, "rep a: out_of_office[0]"},
    {"[{\"id\": \"a\", \"timezone\": \"Mars/Olympus\"}]", NULL,
     "rep a: timezone: unknown"},
    {"[{\"id\": \"a\", \"timezone\": \"../../etc/passwd\"}]", NULL, "rep a: timezone"},
    {"[{\"id\": \"a\", \"timezone\": \"+25:00\"}]", NULL, "rep a: timezone"},
    {"[{\"id\": \"a\", \"timezone\": \"Asia\"}]", NULL, "rep a: timezone"},
    {"[]", "{\"teams\": {\"east\": {\"policy\": \"fifo\"}}}", "teams.east.policy"},
    {"[]", "{\"teams\": {\"east\": {\"fallback\": {\"queue\": \"\"}}}}",
     "teams.east.fallback"},
    {"[]", "{\"teams\": {\"east\": {\"fallback\": {\"manager\": false}}}}",
     "teams.east.fallback"},
    {"[]", "{\"teams\": {\"east\": {\"color\": \"red\"}}}", "teams.east.color"},
    {"[]", "{\"policy\": \"weighted\"}", "routing: policy: unknown key"},
    {"[]", "{\"default_policy\": \"random\"}", "default_policy"},
    {"[]", "{\"default_capacity\": -1}", "default_capacity"},
    {"[]", "{\"sticky_respects_capacity\": 1}", "sticky_respects_capacity"},
    {"[]", "{\"default_team\": 5}", "default_team"},
    {"[]", "[]", "routing: the configuration must be a JSON object"},
};

Test(assign, bad_pools_name_the_rep_and_key) {
    for (size_t i = 0; i < sizeof s_bad / sizeof *s_bad; i++) {
        char err[256] = "";
        json_t *reps = json_loads(s_bad[i].reps, 0, NULL);
        json_t *cfg = s_bad[i].routing ? json_loads(s_bad[i].routing, 0, NULL) : NULL;
        cr_assert(reps && (!s_bad[i].routing || cfg), "case %zu JSON", i);
        lf_pool_t *pool = lf_pool_from_json(reps, cfg, err, sizeof err);
        cr_expect_null(pool, "case %zu should fail", i);
        cr_expect(strstr(err, s_bad[i].err) != NULL, "case %zu: \"%s\" lacks \"%s\"", i,
                  err, s_bad[i].err);
        lf_pool_destroy(&pool);
        json_decref(reps);
        json_decref(cfg);
    }
}

Test(assign, shipped_routing_config_loads) {
    char err[256] = "";
    json_t *cfg = lf_routing_load("config/routing.json", err, sizeof err);
    cr_assert(cfg, "%s", err);
    json_t *reps =
        json_loads("[{\"id\": \"a\", \"team\": \"east\", \"weight\": 2}]", 0, NULL);
    lf_pool_t *pool = lf_pool_from_json(reps, cfg, err, sizeof err);
    cr_assert(pool, "%s", err);
    cr_assert_str_eq(s_pick(pool, "east", NOW), "a");
    lf_pool_destroy(&pool);
    json_decref(reps);
    json_decref(cfg);
    cr_assert_null(lf_routing_load("/nonexistent.json", err, sizeof err));
    cr_assert(strstr(err, "/nonexistent.json") != NULL);
}

Test(assign, eligible_counts_without_moving_anything) {
    lf_pool_t *pool =
        s_pool("[{\"id\": \"a\", \"team\": \"east\", \"capacity\": 1, \"open_count\": 1},"
               " {\"id\": \"b\", \"team\": \"east\", \"capacity\": 3, \"open_count\": 1},"
               " {\"id\": \"c\", \"team\": \"east\", \"capacity\": 3}]",
               NULL);
    const char *const ex[] = {"c", NULL};
    lf_assign_req_t req = {.grade = 'B', .team = "east", .now = NOW};
    cr_expect_eq(lf_pool_eligible(pool, &req), 2, "a is at capacity");
    req.exclude = ex;
    cr_expect_eq(lf_pool_eligible(pool, &req), 1, "c excluded");
    req.team = "nobody-here";
    cr_expect_eq(lf_pool_eligible(pool, &req), 0);
    req.grade = 'E';
    cr_expect_eq(lf_pool_eligible(pool, &req), -1);
    /* Asking moved nothing: b is still the first in the rotation. */
    lf_assign_req_t go = {.grade = 'B', .team = "east", .now = NOW};
    lf_assign_result_t res;
    s_assign(pool, &go, &res);
    cr_expect_str_eq(res.rep_id, "b");
    cr_expect_eq(lf_pool_open_count(pool, "b"), 2);
    json_decref(res.candidates);
    lf_pool_destroy(&pool);
}

/* no_json: the same decision and the same candidates as C, without the JSON list. */
Test(assign, candidates_as_c_without_json) {
    const char *reps =
        "[{\"id\": \"a\", \"team\": \"t\", \"grades\": [\"A\"]},"
        " {\"id\": \"b\", \"team\": \"t\"}, {\"id\": \"c\", \"team\": \"t\"}]";
    lf_pool_t *one = s_pool(reps, NULL), *two = s_pool(reps, NULL);
    cr_assert_eq(lf_pool_size(one), 3u);
    cr_assert_null(lf_pool_rep_id(one, 3));
    cr_assert_null(lf_pool_skip_name(0));
    for (int k = 0; k < 4; k++) {
        lf_assign_req_t req = {.grade = 'B', .team = "t", .now = NOW};
        lf_assign_result_t with, without;
        s_assign(one, &req, &with);
        req.no_json = 1;
        cr_assert_eq(lf_pool_assign(two, &req, &without), 0);
        cr_assert_null(without.candidates);
        cr_assert_str_eq(with.rep_id, without.rep_id);
        cr_assert_str_eq(with.reason, without.reason);
        cr_assert_eq(with.n_cand, without.n_cand);
        for (size_t i = 0; i < with.n_cand; i++) {
            cr_assert_eq(with.cand[i].rep, without.cand[i].rep);
            cr_assert_eq(with.cand[i].skip, without.cand[i].skip);
            cr_assert_eq(with.cand[i].chosen, without.cand[i].chosen);
        }
        for (size_t i = 0; i < with.n_cand; i++)
            if (!strcmp(lf_pool_rep_id(one, with.cand[i].rep), "a"))
                cr_assert_str_eq(lf_pool_skip_name(with.cand[i].skip), "grade");
        json_decref(with.candidates);
    }
    lf_pool_destroy(&one);
    lf_pool_destroy(&two);
}
