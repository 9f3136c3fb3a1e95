/* Unit tests of keepalive_config.c: durations, schedules (data-driven tables: adding a
 * case is adding a row), the shipped config/keepalive.json against the shipped
 * pipeline, and broken files that must each name their key. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lf/keepalive.h"
#include "lf/pipeline.h"

TestSuite(keepalive_config);

/* ---- durations ---- */

static const struct {
    const char *text;
    long long secs;
    int days, business;
} s_durations[] = {
    {"90s", 90, 0, 0},
    {"90 s", 90, 0, 0},
    {"1 second", 1, 0, 0},
    {"2 seconds", 2, 0, 0},
    {"5m", 300, 0, 0},
    {"5 min", 300, 0, 0},
    {"1 minute", 60, 0, 0},
    {"4h", 14400, 0, 0},
    {"4 hours", 14400, 0, 0},
    {"3d", 259200, 0, 0},
    {"3 days", 259200, 0, 0},
    {"1 day", 86400, 0, 0},
    {"2w", 1209600, 0, 0},
    {"1 week", 604800, 0, 0},
    {"30天", 2592000, 0, 0},
    {"2小时", 7200, 0, 0},
    {"10 business days", 864000, 10, 1},
    {"1 business day", 86400, 1, 1},
    {"4 business hours", 14400, 0, 1},
    {"90 business seconds", 90, 0, 1},
    {"3 business s", 3, 0, 1},
    {"  7d  ", 604800, 0, 0},
    {"3650d", 315360000, 0, 0},
};

static const struct {
    const char *text;
    const char *why; /* a word the message must contain */
} s_bad_durations[] = {
    {"", "whole number"},
    {"d", "whole number"},
    {"-3d", "whole number"},
    {"3", "unit"},
    {"3 fortnights", "unit"},
    {"3dd", "unit"},
    {"0s", "zero"},
    {"1.5d", "unit"},
    {"2 business weeks", "weeks"},
    {"business 3 days", "whole number"},
    {"3 busines days", "unit"},
    {"3653d", "ten years"},
    {"99999999999999999999s", "ten years"},
};

Test(keepalive_config, durations_parse_to_seconds_and_business_days) {
    for (size_t i = 0; i < sizeof s_durations / sizeof s_durations[0]; i++) {
        lf_duration_t d;
        char err[200] = "";
        cr_assert_eq(lf_duration_parse(s_durations[i].text, &d, err, sizeof err), 0,
                     "%s: %s", s_durations[i].text, err);
        cr_expect_eq(d.secs, s_durations[i].secs, "%s", s_durations[i].text);
        cr_expect_eq(d.days, s_durations[i].days, "%s", s_durations[i].text);
        cr_expect_eq(d.business, s_durations[i].business, "%s", s_durations[i].text);
    }
}

Test(keepalive_config, bad_durations_say_why) {
    for (size_t i = 0; i < sizeof s_bad_durations / sizeof s_bad_durations[0]; i++) {
        lf_duration_t d = {.secs = 77};
        char err[200] = "";
        cr_expect_eq(lf_duration_parse(s_bad_durations[i].text, &d, err, sizeof err), -1,
                     "\"%s\" accepted", s_bad_durations[i].text);
        cr_expect(strstr(err, s_bad_durations[i].why), "\"%s\": \"%s\" lacks \"%s\"",
                  s_bad_durations[i].text, err, s_bad_durations[i].why);
        cr_expect_eq(d.secs, 77, "output written on failure");
    }
    char err[64];
    cr_expect_eq(lf_duration_parse(NULL, &(lf_duration_t){0}, err, sizeof err), -1);
}

/* ---- schedules ---- */

/* Local times as "YYYY-MM-DD HH:MM" (days since the epoch computed by the test's own
 * formula, not the module's). */
static long long s_days_from_civil(int y, int m, int d) {
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static long long s_local(const char *s) {
    int y, mo, d, h, mi;
    cr_assert_eq(sscanf(s, "%d-%d-%d %d:%d", &y, &mo, &d, &h, &mi), 5, "%s", s);
    return s_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60;
}

static const struct {
    const char *cron, *after, *next;
} s_schedules[] = {
    /* 2026-12-01 is a Tuesday. */
    {"0 9 * * mon", "2026-12-01 10:00", "2026-12-07 09:00"},
    {"0 9 * * 1", "2026-12-07 08:59", "2026-12-07 09:00"},
    {"0 9 * * 1", "2026-12-07 09:00", "2026-12-14 09:00"}, /* strictly after */
    {"0 9 * * MON", "2026-12-07 09:00", "2026-12-14 09:00"},
    {"30 8 * * 1-5", "2026-12-04 09:00", "2026-12-07 08:30"}, /* Friday -> Monday */
    {"30 8 * * mon-fri", "2026-12-01 08:00", "2026-12-01 08:30"},
    {"0 18 * * fri", "2026-12-01 00:00", "2026-12-04 18:00"},
    {"0 0 * * 0", "2026-12-01 00:00", "2026-12-06 00:00"},
    {"0 0 * * 7", "2026-12-01 00:00", "2026-12-06 00:00"}, /* 7 is Sunday too */
    {"*/15 * * * *", "2026-12-01 10:07", "2026-12-01 10:15"},
    {"* * * * *", "2026-12-01 10:07", "2026-12-01 10:08"},
    {"0 9,17 * * *", "2026-12-01 09:00", "2026-12-01 17:00"},
    {"0 9 1 * *", "2026-12-01 09:00", "2027-01-01 09:00"},   /* over a year end */
    {"0 9 29 2 *", "2026-03-01 00:00", "2028-02-29 09:00"},  /* leap day */
    {"0 9 1 * mon", "2026-12-01 10:00", "2026-12-07 09:00"}, /* either day field */
    {"0 9 15 jun *", "2026-12-01 00:00", "2027-06-15 09:00"},
    {"0 0-6/2 * * *", "2026-12-01 03:00", "2026-12-01 04:00"},
};

static const char *const s_bad_schedules[] = {
    "",
    "0 9 * *",
    "0 9 * * mon tue",
    "60 9 * * *",
    "0 24 * * *",
    "0 9 0 * *",
    "0 9 32 * *",
    "0 9 * 13 *",
    "0 9 * * 8",
    "0 9 * * funday",
    "0 9-8 * * *",
    "*/0 * * * *",
    "0 9 * * mon,",
    "x 9 * * *",
    "0 9 * * -1",
};

Test(keepalive_config, schedules_next_local_time) {
    for (size_t i = 0; i < sizeof s_schedules / sizeof s_schedules[0]; i++) {
        lf_cron_t c;
        char err[200] = "";
        cr_assert_eq(lf_cron_parse(s_schedules[i].cron, &c, err, sizeof err), 0, "%s: %s",
                     s_schedules[i].cron, err);
        long long got = lf_cron_next(&c, s_local(s_schedules[i].after));
        cr_expect_eq(got, s_local(s_schedules[i].next),
                     "%s after %s: got day %lld +%llds", s_schedules[i].cron,
                     s_schedules[i].after, got / 86400, got % 86400);
    }
}

Test(keepalive_config, bad_schedules_are_refused) {
    for (size_t i = 0; i < sizeof s_bad_schedules / sizeof s_bad_schedules[0]; i++) {
        lf_cron_t c;
        char err[200] = "";
        cr_expect_eq(lf_cron_parse(s_bad_schedules[i], &c, err, sizeof err), -1,
                     "\"%s\" accepted", s_bad_schedules[i]);
        cr_expect_neq(err[0], '\0');
    }
    lf_cron_t c;
    cr_assert_eq(lf_cron_parse("0 0 31 2 *", &c, NULL, 0), 0);
    cr_expect_eq(lf_cron_next(&c, 0), -1, "February 31st never comes");
}

/* ---- the file ---- */

static lf_pipeline_t *s_pipeline(void) {
    char err[256];
    lf_pipeline_t *p = lf_pipeline_load("config/pipeline.json", err, sizeof err);
    cr_assert(p, "%s", err);
    return p;
}

Test(keepalive_config, shipped_file_loads_against_the_shipped_pipeline) {
    lf_pipeline_t *p = s_pipeline();
    char err[256] = "";
    lf_keepalive_t *ka = lf_keepalive_load("config/keepalive.json", p, err, sizeof err);
    cr_assert(ka, "%s", err);
    cr_expect_eq(lf_keepalive_clock(ka), LF_CLOCK_BUSINESS);
    cr_expect_eq(lf_keepalive_stale(ka, "contacted", "A")->days, 3);
    cr_expect_eq(lf_keepalive_stale(ka, "proposal", NULL)->days, 10);
    cr_expect_eq(lf_keepalive_stale(ka, "quote", "A")->days, 5);
    cr_expect_eq(lf_keepalive_stale(ka, "quote", "B")->days, 10);
    cr_expect_null(lf_keepalive_stale(ka, "new", "A"), "new deals have the SLA instead");
    cr_expect_null(lf_keepalive_stale(ka, "won", NULL));
    cr_expect(lf_keepalive_restarts(ka, "call"));
    cr_expect(lf_keepalive_restarts(ka, "visit"));
    cr_expect_not(lf_keepalive_restarts(ka, "note"));
    cr_expect_eq(lf_keepalive_follow_up_escalation(ka, "B")->days, 1);
    cr_expect_eq(lf_keepalive_follow_up_escalation(ka, "A")->secs, 4 * 3600);
    cr_expect(lf_keepalive_follow_up_escalation(ka, "A")->business);
    cr_expect_eq(lf_keepalive_reactivation(ka, "price")->secs, 90 * 86400);
    cr_expect_eq(lf_keepalive_reactivation(ka, "competitor")->secs, 365 * 86400);
    cr_expect_null(lf_keepalive_reactivation(ka, "need_cancelled"));
    cr_expect_null(lf_keepalive_reactivation(ka, "nonexistent"));
    cr_expect_eq(lf_keepalive_cooldown(ka)->secs, 30 * 86400);
    cr_expect(lf_keepalive_digest_enabled(ka));
    const char *to = "x";
    const lf_cron_t *c = lf_keepalive_digest(ka, "east", &to);
    cr_expect_null(to);
    cr_expect_eq(lf_cron_next(c, s_local("2026-12-01 10:00")),
                 s_local("2026-12-07 09:00"));
    lf_keepalive_destroy(&ka);
    cr_expect_null(ka);
    lf_keepalive_destroy(&ka);
    lf_pipeline_destroy(&p);
}

Test(keepalive_config, missing_file_gives_the_defaults) {
    char err[256] = "";
    lf_keepalive_t *ka =
        lf_keepalive_load("/nonexistent/keepalive.json", NULL, err, sizeof err);
    cr_assert(ka, "%s", err);
    cr_expect_null(lf_keepalive_stale(ka, "proposal", NULL));
    cr_expect_null(lf_keepalive_reactivation(ka, "price"));
    cr_expect_eq(lf_keepalive_warn_manager_after(ka)->days, 2);
    cr_expect_eq(lf_keepalive_recycle_after(ka)->days, 3);
    cr_expect(lf_keepalive_restarts(ka, "meeting"));
    cr_expect_not(lf_keepalive_restarts(ka, "note"));
    const lf_duration_t *fu = lf_keepalive_follow_up_escalation(ka, "A");
    cr_expect(fu && fu->business && fu->days == 1, "follow-ups: 1 business day");
    const char *const *rt = lf_keepalive_restart_types(ka);
    cr_expect_str_eq(rt[0], "call");
    cr_expect_str_eq(rt[3], "meeting");
    cr_expect_null(rt[4]);
    cr_expect_eq(
        lf_cron_next(lf_keepalive_digest(ka, "any", NULL), s_local("2026-12-05 00:00")),
        s_local("2026-12-07 09:00"), "default Monday 09:00");
    lf_keepalive_destroy(&ka);
}

Test(keepalive_config, second_scale_settings_per_grade_and_team) {
    const char *text =
        "{\"clock\": \"wall\", \"stale\": {\"thresholds\": {\"proposal\": {\"default\": "
        "\"3s\", \"A\": \"1s\"}}, \"warn_manager_after\": \"2s\", \"recycle_after\": "
        "\"2s\", \"cooldown\": \"1h\", \"restart_on\": [\"visit\", \"note\"]},"
        " \"reactivation\": {\"after\": {\"price\": \"2s\", \"other\": null}},"
        " \"follow_up\": {\"escalate_after\": {\"default\": \"4 business hours\","
        " \"A\": \"5s\"}},"
        " \"digest\": {\"schedule\": \"* * * * *\", \"to\": \"boss\", \"teams\": "
        "{\"south\":"
        " {\"schedule\": \"0 8 * * *\", \"to\": \"chen\"}, \"east\": {}}}}";
    json_t *j = json_loads(text, 0, NULL);
    cr_assert(j);
    lf_pipeline_t *p = s_pipeline();
    char err[256] = "";
    lf_keepalive_t *ka = lf_keepalive_from_json(j, p, err, sizeof err);
    cr_assert(ka, "%s", err);
    cr_expect_eq(lf_keepalive_clock(ka), LF_CLOCK_WALL);
    cr_expect_eq(lf_keepalive_stale(ka, "proposal", "A")->secs, 1);
    cr_expect_eq(lf_keepalive_stale(ka, "proposal", "C")->secs, 3);
    cr_expect_eq(lf_keepalive_stale(ka, "proposal", NULL)->secs, 3);
    cr_expect_not(lf_keepalive_restarts(ka, "call"), "restart_on replaces the default");
    cr_expect(lf_keepalive_restarts(ka, "note"));
    const char *const *rt = lf_keepalive_restart_types(ka);
    cr_expect_str_eq(rt[0], "visit", "the list replaced, NULL-terminated");
    cr_expect_str_eq(rt[1], "note");
    cr_expect_null(rt[2]);
    cr_expect_eq(lf_keepalive_follow_up_escalation(ka, "A")->secs, 5);
    cr_expect_eq(lf_keepalive_follow_up_escalation(ka, "A")->business, 0);
    cr_expect_eq(lf_keepalive_follow_up_escalation(ka, "C")->secs, 4 * 3600);
    cr_expect(lf_keepalive_follow_up_escalation(ka, NULL)->business);
    cr_expect_eq(lf_keepalive_reactivation(ka, "price")->secs, 2);
    cr_expect_null(lf_keepalive_reactivation(ka, "other"));
    const char *to = NULL;
    lf_keepalive_digest(ka, "south", &to);
    cr_expect_str_eq(to, "chen");
    lf_keepalive_digest(ka, "east", &to);
    cr_expect_str_eq(to, "boss");
    lf_keepalive_digest(ka, "north", &to);
    cr_expect_str_eq(to, "boss");
    const char *const *teams = lf_keepalive_digest_teams(ka);
    cr_expect_str_eq(teams[0], "south");
    cr_expect_str_eq(teams[1], "east");
    cr_expect_null(teams[2]);
    lf_keepalive_destroy(&ka);
    lf_pipeline_destroy(&p);
    json_decref(j);
}

Test(keepalive_config, follow_ups_may_never_escalate) {
    json_t *j = json_loads("{\"follow_up\": {\"escalate_after\": \"never\"}}", 0, NULL);
    char err[256] = "";
    lf_keepalive_t *ka = lf_keepalive_from_json(j, NULL, err, sizeof err);
    cr_assert(ka, "%s", err);
    cr_expect_null(lf_keepalive_follow_up_escalation(ka, "A"));
    cr_expect_null(lf_keepalive_follow_up_escalation(ka, NULL));
    lf_keepalive_destroy(&ka);
    json_decref(j);
}

/* Broken files: each must fail and name the key at fault. */
static const struct {
    const char *json, *key;
} s_broken[] = {
    {"[]", "JSON object"},
    {"{\"versoin\": 1}", "versoin"},
    {"{\"version\": 2}", "version"},
    {"{\"clock\": \"lunar\"}", "clock"},
    {"{\"stale\": []}", "stale"},
    {"{\"stale\": {\"threshold\": {}}}", "stale.threshold"},
    {"{\"stale\": {\"thresholds\": {\"proposl\": \"3d\"}}}", "stale.thresholds.proposl"},
    {"{\"stale\": {\"thresholds\": {\"won\": \"3d\"}}}", "stale.thresholds.won"},
    {"{\"stale\": {\"thresholds\": {\"proposal\": \"3 dayz\"}}}",
     "stale.thresholds.proposal"},
    {"{\"stale\": {\"thresholds\": {\"proposal\": 3}}}", "stale.thresholds.proposal"},
    {"{\"stale\": {\"thresholds\": {\"proposal\": {\"A\": \"3d\"}}}}",
     "stale.thresholds.proposal"},
    {"{\"stale\": {\"thresholds\": {\"proposal\": {\"default\": \"3d\", \"E\": "
     "\"1d\"}}}}",
     "stale.thresholds.proposal.E"},
    {"{\"stale\": {\"warn_manager_after\": \"soon\"}}", "stale.warn_manager_after"},
    {"{\"stale\": {\"recycle_after\": \"0d\"}}", "stale.recycle_after"},
    {"{\"stale\": {\"cooldown\": 30}}", "stale.cooldown"},
    {"{\"stale\": {\"restart_on\": [\"call\", \"fax\"]}}", "stale.restart_on[1]"},
    {"{\"stale\": {\"restart_on\": \"call\"}}", "stale.restart_on"},
    {"{\"reactivation\": {\"after\": {\"weather\": \"3d\"}}}",
     "reactivation.after.weather"},
    {"{\"reactivation\": {\"after\": {\"price\": \"later\"}}}",
     "reactivation.after.price"},
    {"{\"reactivation\": {\"delay\": {}}}", "reactivation.delay"},
    {"{\"digest\": {\"schedule\": \"9am mondays\"}}", "digest.schedule"},
    {"{\"digest\": {\"enabled\": \"yes\"}}", "digest.enabled"},
    {"{\"digest\": {\"teams\": {\"east\": {\"schedule\": \"0 25 * * *\"}}}}",
     "digest.teams.east.schedule"},
    {"{\"digest\": {\"teams\": {\"east\": {\"when\": \"0 9 * * *\"}}}}",
     "digest.teams.east.when"},
    {"{\"digest\": {\"to\": 7}}", "digest.to"},
    {"{\"follow_up\": []}", "follow_up"},
    {"{\"follow_up\": {\"escalate\": \"1d\"}}", "follow_up.escalate"},
    {"{\"follow_up\": {\"escalate_after\": \"tomorrow\"}}", "follow_up.escalate_after"},
    {"{\"follow_up\": {\"escalate_after\": {\"A\": \"1h\"}}}",
     "follow_up.escalate_after"},
    {"{\"follow_up\": {\"escalate_after\": {\"default\": \"1d\", \"Z\": \"1h\"}}}",
     "follow_up.escalate_after.Z"},
};

Test(keepalive_config, broken_files_name_their_key) {
    lf_pipeline_t *p = s_pipeline();
    for (size_t i = 0; i < sizeof s_broken / sizeof s_broken[0]; i++) {
        json_t *j = json_loads(s_broken[i].json, 0, NULL);
        cr_assert(j, "test case %zu is not JSON", i);
        char err[256] = "";
        lf_keepalive_t *ka = lf_keepalive_from_json(j, p, err, sizeof err);
        cr_expect_null(ka, "%s accepted", s_broken[i].json);
        cr_expect(strstr(err, s_broken[i].key), "%s: \"%s\" does not name %s",
                  s_broken[i].json, err, s_broken[i].key);
        lf_keepalive_destroy(&ka);
        json_decref(j);
    }
    lf_pipeline_destroy(&p);
}

Test(keepalive_config, file_errors_name_the_file) {
    char path[] = "/tmp/lf-keepalive-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    const char *dup = "{\"clock\": \"wall\", \"clock\": \"business\"}";
    cr_assert_eq(write(fd, dup, strlen(dup)), (ssize_t)strlen(dup));
    close(fd);
    char err[256] = "";
    cr_expect_null(lf_keepalive_load(path, NULL, err, sizeof err));
    cr_expect(strstr(err, path) && strstr(err, "clock"), "%s", err);
    unlink(path);
}
