/* test_scorecard.c - every scorecard rule, the grade thresholds at their edges, clamping,
 * the breakdown invariant (its points sum to the score) and the loader's errors. The
 * rules come from a test scorecard below rather than config/scorecard.json, so that
 * tuning the shipped file does not break these tests; the shipped file is only checked to
 * load. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../services/router/scorecard.h"

static const char *s_cfg =
    "{\"base\": 5, \"thresholds\": {\"A\": 70, \"B\": 45, \"C\": 25},"
    " \"channel\": {\"referral\": 15, \"api\": -5}, \"source\": {\"wechat\": 3},"
    " \"urgency\": {\"high\": 20, \"medium\": 10, \"low\": 2, \"unknown\": -3},"
    " \"decision_maker\": {\"yes\": 15, \"no\": -2}, \"industry\": {\"medical\": 10},"
    " \"region\": {\"east\": 4},"
    " \"budget\": {\"on\": \"max\", \"currency\": \"CNY\", \"rates\": {\"USD\": 7.2},"
    "   \"bands\": [{\"min\": 100000, \"points\": 12}, {\"min\": 1000000, \"points\": "
    "25},"
    "              {\"min\": 0, \"points\": 1, \"label\": \"budget given\"}], "
    "\"missing\": -4},"
    " \"completeness\": {\"name\": 2, \"company\": 3, \"need\": 3, \"phone\": 2, "
    "\"email\": 2}}";

static lf_scorecard_t *s_load(const char *text) {
    char err[256] = "";
    json_t *cfg = json_loads(text, 0, NULL);
    cr_assert(cfg, "test config must parse");
    lf_scorecard_t *sc = lf_scorecard_from_json(cfg, err, sizeof err);
    json_decref(cfg);
    cr_assert(sc, "scorecard should load: %s", err);
    return sc;
}

/* Grades `lead_text`, checks the breakdown adds up to the score, returns the breakdown.
 */
static json_t *s_grade(const lf_scorecard_t *sc, const char *lead_text, int *score,
                       char *grade) {
    json_t *lead = json_loads(lead_text, 0, NULL), *bd = NULL;
    cr_assert(lead, "lead must parse: %s", lead_text);
    cr_assert_eq(lf_scorecard_grade(sc, lead, score, grade, &bd), 0);
    int score2 = -1;
    char grade2 = 0;
    /* The entries variant (the router's batch path, which stores codes) says the same,
     * entry for entry. */
    lf_score_part_t parts[LF_SCORECARD_MAX_PARTS];
    size_t n_parts = 0;
    cr_assert_eq(lf_scorecard_grade_parts(sc, lead, &score2, &grade2, parts, &n_parts),
                 0);
    cr_assert_eq(score2, *score);
    cr_assert_eq(grade2, *grade);
    cr_assert_eq(n_parts, json_array_size(bd));
    for (size_t k = 0; k < n_parts; k++) {
        json_t *entry = json_array_get(bd, k);
        cr_assert_str_eq(parts[k].rule,
                         json_string_value(json_object_get(entry, "rule")));
        cr_assert_eq(parts[k].points,
                     json_integer_value(json_object_get(entry, "points")));
    }
    json_decref(lead);
    cr_assert(json_is_array(bd));
    int sum = 0;
    size_t i;
    json_t *e;
    json_array_foreach(bd, i, e) {
        cr_assert(json_is_string(json_object_get(e, "rule")));
        cr_assert(json_is_integer(json_object_get(e, "points")));
        cr_assert_neq(json_integer_value(json_object_get(e, "points")), 0,
                      "zero entries hidden");
        sum += (int)json_integer_value(json_object_get(e, "points"));
    }
    cr_assert_eq(sum, *score, "breakdown sums to %d, score is %d", sum, *score);
    cr_assert(*score >= 0 && *score <= 100);
    return bd;
}

/* Points of `rule` in the breakdown, or 0 when absent (absent rules never show as 0). */
static int s_points_of(const json_t *bd, const char *rule) {
    size_t i;
    json_t *e;
    json_array_foreach(bd, i, e) {
        if (strcmp(json_string_value(json_object_get(e, "rule")), rule) == 0)
            return (int)json_integer_value(json_object_get(e, "points"));
    }
    return 0;
}

typedef struct {
    const char *lead;
    const char *rule;
    int points; /* 0 = the rule must not appear */
} rule_case_t;

static const rule_case_t s_rule_cases[] = {
    {"{\"channel\": \"referral\"}", "channel=referral", 15},
    {"{\"channel\": \"REFERRAL\"}", "channel=referral", 15},
    {"{\"channel\": \"api\"}", "channel=api", -5},
    {"{\"channel\": \"web_form\"}", "channel=web_form", 0},
    {"{\"source\": \"wechat\"}", "source=wechat", 3},
    {"{\"source\": \"baidu\"}", "source=baidu", 0},
    {"{\"urgency\": \"high\"}", "urgency=high", 20},
    {"{\"urgency\": \"medium\"}", "urgency=medium", 10},
    {"{\"urgency\": \"low\"}", "urgency=low", 2},
    {"{\"urgency\": null}", "urgency=unknown", -3},
    {"{}", "urgency=unknown", -3},
    {"{\"decision_maker\": true}", "decision_maker=yes", 15},
    {"{\"decision_maker\": false}", "decision_maker=no", -2},
    {"{\"decision_maker\": null}", "decision_maker=yes", 0},
    {"{\"industry\": \"medical\"}", "industry=medical", 10},
    {"{\"industry\": \"retail\"}", "industry=retail", 0},
    {"{\"region\": \"east\"}", "region=east", 4},
    {"{}", "base", 5},
    /* budget bands: highest band whose min is reached, on max, falling back to min */
    {"{\"budget\": {\"min\": null, \"max\": 1000000, \"currency\": \"CNY\"}}",
     "budget>=1000000 CNY", 25},
    {"{\"budget\": {\"min\": null, \"max\": 999999.99, \"currency\": \"CNY\"}}",
     "budget>=100000 CNY", 12},
    {"{\"budget\": {\"min\": null, \"max\": 100000, \"currency\": \"CNY\"}}",
     "budget>=100000 CNY", 12},
    {"{\"budget\": {\"min\": null, \"max\": 99999, \"currency\": \"CNY\"}}",
     "budget given", 1},
    {"{\"budget\": {\"min\": 200000, \"max\": null, \"currency\": \"CNY\"}}",
     "budget>=100000 CNY", 12},
    {"{\"budget\": {\"min\": 500000, \"max\": 2000000}}", "budget>=1000000 CNY", 25},
    /* 150000 USD * 7.2 = 1.08M CNY; the min (20000 USD) is not what we grade on */
    {"{\"budget\": {\"min\": 20000, \"max\": 150000, \"currency\": \"USD\"}}",
     "budget>=1000000 CNY", 25},
    {"{\"budget\": {\"min\": 1, \"max\": 13888, \"currency\": \"usd\"}}", "budget given",
     1},
    {"{\"budget\": {\"min\": 1, \"max\": 13889, \"currency\": \"USD\"}}",
     "budget>=100000 CNY", 12},
    {"{\"budget\": {\"max\": 5000000, \"currency\": \"XYZ\"}}", "budget=unknown", -4},
    {"{\"budget\": null}", "budget=unknown", -4},
    {"{\"budget\": {\"min\": null, \"max\": null, \"raw\": \"待定\"}}", "budget=unknown",
     -4},
    {"{\"name\": \"王芳\"}", "has_name", 2},
    {"{\"name\": \"\"}", "has_name", 0},
    {"{\"company\": \"ACME\"}", "has_company", 3},
    {"{\"need\": \"CT scanner\"}", "has_need", 3},
    {"{\"phone\": \"+8613800138000\"}", "has_phone", 2},
    {"{\"email\": \"a@b.cn\"}", "has_email", 2},
    {"{\"email\": null}", "has_email", 0},
};

Test(scorecard, each_rule_gives_its_points) {
    lf_scorecard_t *sc = s_load(s_cfg);
    for (size_t i = 0; i < sizeof s_rule_cases / sizeof *s_rule_cases; i++) {
        const rule_case_t *c = &s_rule_cases[i];
        int score;
        char grade;
        json_t *bd = s_grade(sc, c->lead, &score, &grade);
        cr_expect_eq(s_points_of(bd, c->rule), c->points,
                     "case %zu %s: %s gave %d, want %d", i, c->lead, c->rule,
                     s_points_of(bd, c->rule), c->points);
        json_decref(bd);
    }
    lf_scorecard_destroy(&sc);
    cr_assert_null(sc);
}

Test(scorecard, budget_on_min) {
    lf_scorecard_t *sc = s_load("{\"thresholds\": {\"A\": 70, \"B\": 45, \"C\": 25}, "
                                "\"budget\": {\"on\": \"min\","
                                " \"bands\": [{\"min\": 100000, \"points\": 12}, "
                                "{\"min\": 1000000, \"points\": 25}]}}");
    int score;
    char grade;
    json_t *bd =
        s_grade(sc, "{\"budget\": {\"min\": 200000, \"max\": 2000000}}", &score, &grade);
    cr_assert_eq(s_points_of(bd, "budget>=100000 CNY"), 12);
    cr_assert_eq(score, 12);
    json_decref(bd);
    bd = s_grade(sc, "{\"budget\": {\"min\": null, \"max\": 2000000}}", &score, &grade);
    cr_assert_eq(s_points_of(bd, "budget>=1000000 CNY"), 25);
    json_decref(bd);
    lf_scorecard_destroy(&sc);
}

Test(scorecard, full_lead_total_and_grade) {
    lf_scorecard_t *sc = s_load(s_cfg);
    int score;
    char grade;
    /* 5 base + 15 referral + 3 wechat + 20 high + 15 dm + 10 medical + 4 east + 12 budget
     * + 2+3+3+2+2 completeness = 96 */
    json_t *bd =
        s_grade(sc,
                "{\"channel\": \"referral\", \"source\": \"wechat\", \"name\": \"王芳\","
                " \"company\": \"ACME\", \"email\": \"a@b.cn\", \"phone\": \"+86138\","
                " \"budget\": {\"min\": 100000, \"max\": 500000, \"currency\": \"CNY\"},"
                " \"urgency\": \"high\", \"decision_maker\": true, \"region\": \"east\","
                " \"industry\": \"medical\", \"need\": \"CT\", \"extra\": {}}",
                &score, &grade);
    cr_assert_eq(score, 96);
    cr_assert_eq(grade, 'A');
    cr_assert_eq(json_array_size(bd), 13);
    json_decref(bd);
    lf_scorecard_destroy(&sc);
}

/* A scorecard whose only rule is `base`, to put the score exactly where we want it. */
static lf_scorecard_t *s_base_only(int base, int urgency_high) {
    char text[256];
    snprintf(text, sizeof text,
             "{\"base\": %d, \"thresholds\": {\"A\": 70, \"B\": 45, \"C\": 25},"
             " \"urgency\": {\"high\": %d}}",
             base, urgency_high);
    return s_load(text);
}

Test(scorecard, thresholds_at_the_boundary) {
    static const struct {
        int base;
        char grade;
    } cases[] = {{100, 'A'}, {70, 'A'}, {69, 'B'}, {45, 'B'}, {44, 'C'},
                 {25, 'C'},  {24, 'D'}, {1, 'D'},  {0, 'D'}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lf_scorecard_t *sc = s_base_only(cases[i].base, 0);
        int score;
        char grade;
        json_t *bd = s_grade(sc, "{}", &score, &grade);
        cr_expect_eq(score, cases[i].base);
        cr_expect_eq(grade, cases[i].grade, "score %d: grade %c, want %c", score, grade,
                     cases[i].grade);
        json_decref(bd);
        lf_scorecard_destroy(&sc);
    }
}

Test(scorecard, clamped_with_a_traceable_entry) {
    lf_scorecard_t *sc = s_base_only(100, 20);
    int score;
    char grade;
    json_t *bd = s_grade(sc, "{\"urgency\": \"high\"}", &score, &grade);
    cr_assert_eq(score, 100);
    cr_assert_eq(s_points_of(bd, "clamp_to_100"), -20);
    json_decref(bd);
    lf_scorecard_destroy(&sc);

    sc = s_base_only(100, 1); /* one point over is clamped too */
    bd = s_grade(sc, "{\"urgency\": \"high\"}", &score, &grade);
    cr_assert_eq(score, 100);
    cr_assert_eq(s_points_of(bd, "clamp_to_100"), -1);
    json_decref(bd);
    lf_scorecard_destroy(&sc);

    sc = s_base_only(-50, -30);
    bd = s_grade(sc, "{\"urgency\": \"high\"}", &score, &grade);
    cr_assert_eq(score, 0);
    cr_assert_eq(grade, 'D');
    cr_assert_eq(s_points_of(bd, "clamp_to_0"), 80);
    json_decref(bd);
    lf_scorecard_destroy(&sc);
}

Test(scorecard, grade_rejects_bad_arguments) {
    lf_scorecard_t *sc = s_load(s_cfg);
    int score = -7;
    char grade = 'x';
    json_t *bd = NULL, *arr = json_array();
    cr_assert_eq(lf_scorecard_grade(sc, arr, &score, &grade, &bd), -1);
    cr_assert_eq(lf_scorecard_grade(NULL, arr, &score, &grade, &bd), -1);
    cr_assert_eq(lf_scorecard_grade(sc, NULL, &score, &grade, &bd), -1);
    cr_assert_null(bd);
    cr_assert_eq(score, -7);
    json_decref(arr);
    lf_scorecard_destroy(&sc);
    lf_scorecard_destroy(&sc); /* NULL is fine */
    lf_scorecard_destroy(NULL);
}

typedef struct {
    const char *cfg;
    const char *err; /* substring the error message must contain */
} bad_case_t;

#define T "\"thresholds\": {\"A\": 70, \"B\": 45, \"C\": 25}"
static const bad_case_t s_bad[] = {
    {"[]", "must be a JSON object"},
    {"{" T ", \"bogus\": 1}", "bogus: unknown key"},
    {"{\"channel\": {\"referral\": 5}}", "thresholds"},
    {"{\"thresholds\": {\"A\": 40, \"B\": 45, \"C\": 25}}", "thresholds.B"},
    {"{\"thresholds\": {\"A\": 70, \"B\": 45, \"C\": 45}}", "thresholds.C"},
    {"{\"thresholds\": {\"A\": 70, \"B\": 45, \"C\": 25, \"D\": 0}}", "thresholds.D"},
    {"{\"thresholds\": {\"A\": 170, \"B\": 45, \"C\": 25}}", "thresholds.A"},
    {"{" T ", \"channel\": {\"webform\": 5}}", "channel.webform"},
    {"{" T ", \"channel\": []}", "channel"},
    {"{" T ", \"urgency\": {\"urgent\": 5}}", "urgency.urgent"},
    {"{" T ", \"decision_maker\": {\"true\": 5}}", "decision_maker.true"},
    {"{" T ", \"channel\": {\"referral\": \"5\"}}",
     "channel.referral: points must be an integer"},
    {"{" T ", \"industry\": {\"medical\": 500}}",
     "industry.medical: points must be within"},
    {"{" T ", \"industry\": {\"medical\": 2.5}}", "industry.medical"},
    {"{" T ", \"base\": true}", "base"},
    {"{" T ", \"budget\": {\"rates\": {\"USD\": -1}}}", "budget.rates.USD"},
    {"{" T ", \"budget\": {\"rates\": {\"USD\": \"7.2\"}}}", "budget.rates.USD"},
    {"{" T ", \"budget\": {\"bands\": [{\"min\": 1, \"points\": 1}, {\"points\": 2}]}}",
     "budget.bands[1].min"},
    {"{" T ", \"budget\": {\"bands\": [{\"min\": 1, \"points\": 1}, {\"min\": 1, "
     "\"points\": 2}]}}",
     "duplicate"},
    {"{" T ", \"budget\": {\"bands\": [{\"min\": 1}]}}", "budget.bands[0].points"},
    {"{" T ", \"budget\": {\"on\": \"avg\"}}", "budget.on"},
    {"{" T ", \"budget\": {\"foo\": 1}}", "budget.foo"},
    {"{" T ", \"budget\": {\"currency\": 7}}", "budget.currency"},
    {"{" T ", \"budget\": {\"missing\": \"x\"}}", "budget.missing"},
    {"{" T ", \"completeness\": {\"fax\": 1}}", "completeness.fax"},
};

Test(scorecard, bad_configs_name_the_key) {
    for (size_t i = 0; i < sizeof s_bad / sizeof *s_bad; i++) {
        char err[256] = "";
        json_t *cfg = json_loads(s_bad[i].cfg, 0, NULL);
        cr_assert(cfg, "case %zu must be valid JSON", i);
        lf_scorecard_t *sc = lf_scorecard_from_json(cfg, err, sizeof err);
        cr_expect_null(sc, "case %zu should fail: %s", i, s_bad[i].cfg);
        cr_expect(strstr(err, s_bad[i].err) != NULL,
                  "case %zu: error \"%s\" lacks \"%s\"", i, err, s_bad[i].err);
        lf_scorecard_destroy(&sc);
        json_decref(cfg);
    }
}

Test(scorecard, load_from_files) {
    char err[256] = "";
    lf_scorecard_t *sc =
        lf_scorecard_load("/nonexistent/scorecard.json", err, sizeof err);
    cr_assert_null(sc);
    cr_assert(strstr(err, "/nonexistent/scorecard.json") != NULL, "%s", err);

    char path[] = "/tmp/lf_scorecard_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert(write(fd, "{\"base\": 1,\n \"thresholds\": }", 28) == 28);
    close(fd);
    sc = lf_scorecard_load(path, err, sizeof err);
    cr_assert_null(sc);
    cr_assert(strstr(err, ":2:") != NULL, "bad JSON names the line: %s", err);
    unlink(path);

    /* The shipped file must be valid (tests run from the repository root). */
    sc = lf_scorecard_load("config/scorecard.json", err, sizeof err);
    cr_assert(sc, "config/scorecard.json: %s", err);
    int score;
    char grade;
    json_t *bd =
        s_grade(sc, "{\"channel\": \"referral\", \"urgency\": \"high\"}", &score, &grade);
    cr_assert_gt(score, 0);
    json_decref(bd);
    lf_scorecard_destroy(&sc);
}

/* Rule names with quotes, backslashes and control characters in a configured value come
 * out as configured, in the array and in the entries (s_grade compares them). */
Test(scorecard, text_breakdown_escapes_rule_names) {
    lf_scorecard_t *sc =
        s_load("{\"base\": 1, \"thresholds\": {\"A\": 70, \"B\": 45, \"C\": 25},"
               " \"source\": {\"we\\\"chat\\\\x\\t\": 3}}");
    int score;
    char grade;
    json_t *bd = s_grade(sc, "{\"source\": \"we\\\"chat\\\\x\\t\"}", &score, &grade);
    cr_assert_eq(score, 4);
    cr_assert_eq(json_array_size(bd), 2u);
    json_decref(bd);
    lf_scorecard_destroy(&sc);
}
