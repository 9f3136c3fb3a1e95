/* test_bizcal.c - business-time arithmetic as a data-driven table
 * (tests/fixtures/bizcal/cases.json: adding a case is adding a row), and the failure
 * paths of building a calendar. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lf/bizcal.h"

/* "2026-01-09T20:00:00+08:00" or "...Z" -> epoch seconds; -1 when malformed. */
static int64_t s_parse(const char *s) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *rest = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!rest)
        return -1;
    int64_t t = (int64_t)timegm(&tm);
    if (!strcmp(rest, "Z"))
        return t;
    int hh, mm;
    if (sscanf(rest + 1, "%2d:%2d", &hh, &mm) != 2 || (rest[0] != '+' && rest[0] != '-'))
        return -1;
    int off = (hh * 3600 + mm * 60) * (rest[0] == '-' ? -1 : 1);
    return t - off;
}

static lf_bizcal_t *s_cal(const json_t *cals, const char *name) {
    json_t *cfg = json_deep_copy(json_object_get(cals, name));
    cr_assert(cfg, "no calendar %s in the table", name);
    const char *dir = json_string_value(json_object_get(cfg, "dir"));
    char dirbuf[256];
    snprintf(dirbuf, sizeof dirbuf, "%s", dir ? dir : "config/calendars");
    json_object_del(cfg, "dir");
    char err[256] = "";
    lf_bizcal_t *cal = lf_bizcal_new(cfg, dirbuf, err, sizeof err);
    json_decref(cfg);
    cr_assert(cal, "calendar %s: %s", name, err);
    return cal;
}

Test(bizcal, table_of_cases) {
    json_error_t jerr;
    json_t *doc = json_load_file("tests/fixtures/bizcal/cases.json", 0, &jerr);
    cr_assert(doc, "cases.json: %s", jerr.text);
    json_t *cals = json_object_get(doc, "calendars"),
           *cases = json_object_get(doc, "cases");
    size_t i;
    json_t *c;
    int failures = 0;
    json_array_foreach(cases, i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *op = json_string_value(json_object_get(c, "op"));
        lf_bizcal_t *cal = s_cal(cals, json_string_value(json_object_get(c, "cal")));
        int64_t t = s_parse(json_string_value(json_object_get(c, "t")));
        int n = (int)json_integer_value(json_object_get(c, "n"));
        int64_t got = -2, want;
        if (json_object_get(c, "expect"))
            want = s_parse(json_string_value(json_object_get(c, "expect")));
        else
            want = json_integer_value(json_object_get(c, "expect_n"));
        if (!strcmp(op, "next_open")) {
            got = lf_bizcal_next_open(cal, t);
        } else if (!strcmp(op, "add_hours")) {
            got = lf_bizcal_add_seconds(cal, t, (int64_t)n * 3600);
        } else if (!strcmp(op, "add_days")) {
            got = lf_bizcal_add_days(cal, t, n);
        } else if (!strcmp(op, "between_hours")) {
            int64_t t2 = s_parse(json_string_value(json_object_get(c, "t2")));
            got = lf_bizcal_seconds_between(cal, t, t2) / 3600;
        } else if (!strcmp(op, "open")) {
            got = lf_bizcal_is_open(cal, t);
        } else if (!strcmp(op, "working_day")) {
            int y, m, d;
            cr_assert_eq(sscanf(json_string_value(json_object_get(c, "date")), "%d-%d-%d",
                                &y, &m, &d),
                         3);
            got = lf_bizcal_is_working_day(cal, y, m, d);
        } else {
            cr_assert_fail("case %s: unknown op %s", name, op);
        }
        if (got != want) {
            char g[40] = "", w[40] = "";
            time_t gt = (time_t)got, wt = (time_t)want;
            strftime(g, sizeof g, "%Y-%m-%dT%H:%M:%SZ", gmtime(&gt));
            strftime(w, sizeof w, "%Y-%m-%dT%H:%M:%SZ", gmtime(&wt));
            cr_log_error("case \"%s\": got %lld (%s), want %lld (%s)", name,
                         (long long)got, g, (long long)want, w);
            failures++;
        }
        lf_bizcal_destroy(&cal);
    }
    cr_assert(json_array_size(cases) >= 30);
    cr_expect_eq(failures, 0, "%d of %zu cases failed", failures, json_array_size(cases));
    json_decref(doc);
}

Test(bizcal, defaults_are_weekdays_nine_to_six_shanghai) {
    char err[256];
    lf_bizcal_t *cal = lf_bizcal_new(NULL, NULL, err, sizeof err);
    cr_assert(cal, "%s", err);
    /* Thursday 2026-01-01 17:30 +08:00 (no holiday set: an ordinary Thursday). */
    cr_expect_eq(lf_bizcal_add_seconds(cal, s_parse("2026-01-01T17:30:00+08:00"), 3600),
                 s_parse("2026-01-02T09:30:00+08:00"));
    char warn[256] = "";
    cr_expect_eq(lf_bizcal_check(cal, s_parse("2026-12-01T00:00:00Z"), warn, sizeof warn),
                 0);
    lf_bizcal_destroy(&cal);
    lf_bizcal_destroy(&cal); /* NULL-safe */
    lf_bizcal_destroy(NULL);
}

Test(bizcal, missing_next_year_file_warns) {
    char err[256], warn[256] = "";
    json_t *cfg = json_pack("{s:s}", "holidays", "CN");
    lf_bizcal_t *cal = lf_bizcal_new(cfg, "config/calendars", err, sizeof err);
    json_decref(cfg);
    cr_assert(cal, "%s", err);
    cr_expect_eq(lf_bizcal_check(cal, s_parse("2026-12-01T00:00:00Z"), warn, sizeof warn),
                 1);
    cr_expect(strstr(warn, "CN-2027.json"), "%s", warn);
    /* In 2025 the 2025 file is the missing one. */
    cr_expect_eq(lf_bizcal_check(cal, s_parse("2025-06-01T00:00:00Z"), warn, sizeof warn),
                 1);
    cr_expect(strstr(warn, "2025"), "%s", warn);
    lf_bizcal_destroy(&cal);
}

static void s_bad(const char *json, const char *dir, const char *needle) {
    char err[256] = "";
    json_error_t jerr;
    json_t *cfg = json_loads(json, 0, &jerr);
    cr_assert(cfg, "%s: %s", json, jerr.text);
    lf_bizcal_t *cal = lf_bizcal_new(cfg, dir, err, sizeof err);
    json_decref(cfg);
    cr_expect_null(cal, "%s was accepted", json);
    cr_expect(strstr(err, needle), "%s: error \"%s\" lacks \"%s\"", json, err, needle);
    lf_bizcal_destroy(&cal);
}

Test(bizcal, bad_configuration_is_refused_with_the_key) {
    s_bad("{\"timezone\": \"Mars/Olympus\"}", NULL, "timezone");
    s_bad("{\"timezone\": \"../../etc/passwd\"}", NULL, "timezone");
    s_bad("{\"work_days\": []}", NULL, "work_days");
    s_bad("{\"work_days\": [\"monday\"]}", NULL, "work_days[0]");
    s_bad("{\"hours\": [\"18:00\", \"09:00\"]}", NULL, "hours[0]");
    s_bad("{\"hours\": [[\"09:00\", \"12:00\"], [\"11:00\", \"18:00\"]]}", NULL,
          "hours[1]");
    s_bad("{\"hours\": [\"09:00\", \"24:30\"]}", NULL, "hours[0]");
    s_bad("{\"holidays\": \"../x\"}", NULL, "holidays");
    s_bad("{\"workdays\": []}", NULL, "unknown key");
}

Test(bizcal, bad_year_file_is_refused_with_the_file) {
    char dir[] = "/tmp/lf-bizcal-XXXXXX", path[300];
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/BAD-2026.json", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs("{\"year\": 2026, \"holidays\": [{\"from\": \"2026-02-30\", \"to\": "
          "\"2026-03-01\"}]}",
          f);
    fclose(f);
    s_bad("{\"holidays\": \"BAD\"}", dir, "BAD-2026.json: holidays[0]");
    f = fopen(path, "w");
    fputs("{\"year\": 2025}", f);
    fclose(f);
    s_bad("{\"holidays\": \"BAD\"}", dir, "file name");
    f = fopen(path, "w");
    fputs("{\"year\": 2026, \"workdays\": [\"2027-01-02\"]}", f);
    fclose(f);
    s_bad("{\"holidays\": \"BAD\"}", dir, "workdays[0]");
    remove(path);
    remove(dir);
}
