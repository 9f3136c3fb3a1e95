/* test_csv_import.c: data-driven tests of the CSV and NDJSON import parsers.
 *
 * Every folder under tests/fixtures/csv/ is one case: input.csv or input.ndjson, an
 * optional `charset` file, and expected.json holding either {"error": "<prefix of the
 * file-level reason>"} or {"rows": [{"line": n, "obj": {...}} | {"line": n, "error":
 * "<prefix>"}]}. Adding a case is adding a folder (make_fixtures.py writes the current
 * ones). Run from the repository root, or point LF_CSV_FIXTURES at the folder. */
#include "../../services/intake/csv_import.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *s_fixture_dir(void) {
    const char *d = getenv("LF_CSV_FIXTURES");
    return d ? d : "tests/fixtures/csv";
}

/* Reads a whole file; returns NULL if it does not exist. Caller frees. */
static char *s_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    *len = n;
    return buf;
}

static int s_starts(const char *s, const char *prefix) {
    return s && prefix && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Runs one case; returns the number of failed checks (reported with cr_log_error). */
static int s_run_case(const char *dir, const char *name) {
    char path[1024];
    size_t len = 0, clen = 0;
    int ndjson = 0, fails = 0;
    snprintf(path, sizeof path, "%s/%s/input.csv", dir, name);
    char *body = s_slurp(path, &len);
    if (!body) {
        snprintf(path, sizeof path, "%s/%s/input.ndjson", dir, name);
        body = s_slurp(path, &len);
        ndjson = 1;
    }
    snprintf(path, sizeof path, "%s/%s/charset", dir, name);
    char *charset = s_slurp(path, &clen);
    if (charset) {
        charset = realloc(charset, clen + 1);
        charset[clen] = '\0';
        charset[strcspn(charset, "\r\n")] = '\0';
    }
    snprintf(path, sizeof path, "%s/%s/expected.json", dir, name);
    json_error_t jerr;
    json_t *exp = json_load_file(path, 0, &jerr);
    if (!body || !exp) {
        cr_log_error("%s: missing input or expected.json (%s)", name, jerr.text);
        free(body);
        free(charset);
        json_decref(exp);
        return 1;
    }
    char why[256] = "";
    lf_import_t *imp =
        ndjson ? lf_import_ndjson(body, len, why, sizeof why)
               : lf_import_csv(body, len, charset ? charset : "", why, sizeof why);
    const char *want_err = json_string_value(json_object_get(exp, "error"));
    json_t *want_rows = json_object_get(exp, "rows");
    if (want_err) {
        if (imp || !s_starts(why, want_err)) {
            cr_log_error("%s: wanted file error \"%s\", got %s \"%s\"", name, want_err,
                         imp ? "an import" : "error", why);
            fails++;
        }
    } else if (!imp) {
        cr_log_error("%s: unexpected file error \"%s\"", name, why);
        fails++;
    } else if (lf_import_rows(imp) != json_array_size(want_rows)) {
        cr_log_error("%s: %zu rows, wanted %zu", name, lf_import_rows(imp),
                     json_array_size(want_rows));
        fails++;
    } else {
        for (size_t i = 0; i < json_array_size(want_rows); i++) {
            json_t *w = json_array_get(want_rows, i);
            const json_t *obj;
            const char *err;
            size_t line;
            int rc = lf_import_row(imp, i, &obj, &err, &line);
            size_t want_line = (size_t)json_integer_value(json_object_get(w, "line"));
            const char *werr = json_string_value(json_object_get(w, "error"));
            char *got = obj ? json_dumps(obj, JSON_SORT_KEYS | JSON_ENSURE_ASCII) : NULL;
            int ok =
                line == want_line &&
                (werr ? rc == -1 && !obj && s_starts(err, werr)
                      : rc == 0 && !err && json_equal(obj, json_object_get(w, "obj")));
            if (!ok) {
                cr_log_error("%s: row %zu: line %zu (want %zu) rc %d err \"%s\" obj %s",
                             name, i, line, want_line, rc, err ? err : "",
                             got ? got : "null");
                fails++;
            }
            free(got);
        }
        /* Out-of-range rows must fail cleanly. */
        const json_t *obj = (const json_t *)1;
        const char *err = "x";
        size_t line = 9;
        if (lf_import_row(imp, lf_import_rows(imp), &obj, &err, &line) != -1 || obj ||
            err || line) {
            cr_log_error("%s: out-of-range row did not fail cleanly", name);
            fails++;
        }
    }
    lf_import_destroy(&imp);
    json_decref(exp);
    free(body);
    free(charset);
    return fails;
}

Test(csv_import, fixtures) {
    const char *dir = s_fixture_dir();
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot open %s (run from the repository root)", dir);
    struct dirent *e;
    int cases = 0, failed = 0;
    while ((e = readdir(d))) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s/expected.json", dir, e->d_name);
        if (e->d_name[0] == '.' || access(path, R_OK) != 0)
            continue;
        cases++;
        failed += s_run_case(dir, e->d_name) ? 1 : 0;
    }
    closedir(d);
    cr_log_info("%d CSV/NDJSON fixture cases", cases);
    cr_expect_geq(cases, 40, "fixture cases went missing: only %d", cases);
    cr_expect_eq(failed, 0, "%d of %d fixture cases failed (details above)", failed,
                 cases);
}

Test(csv_import, destroy_accepts_null) {
    lf_import_t *imp = NULL;
    lf_import_destroy(&imp);
    lf_import_destroy(NULL);
    cr_expect_eq(lf_import_rows(NULL), 0);
    const json_t *obj;
    const char *err;
    size_t line;
    cr_expect_eq(lf_import_row(NULL, 0, &obj, &err, &line), -1);
}

Test(csv_import, null_body_is_empty) {
    char why[128] = "";
    cr_expect_null(lf_import_csv(NULL, 10, NULL, why, sizeof why));
    cr_expect_str_eq(why, "file is empty");
    cr_expect_null(lf_import_ndjson(NULL, 10, why, sizeof why));
    cr_expect_str_eq(why, "file is empty");
}

/* The row number a user sees must survive a large file: row 10001 is the 10000th data
 * row. */
Test(csv_import, many_rows_keep_numbers) {
    size_t n = 10000, cap = 32 + n * 16, len = 0;
    char *body = malloc(cap);
    len += (size_t)snprintf(body + len, cap - len, "name,phone\n");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(body + len, cap - len, "\"n%zu\",%zu\r\n", i, i);
    char why[128];
    lf_import_t *imp = lf_import_csv(body, len, "utf-8", why, sizeof why);
    cr_assert_not_null(imp, "%s", why);
    cr_expect_eq(lf_import_rows(imp), n);
    const json_t *obj;
    size_t line;
    cr_expect_eq(lf_import_row(imp, n - 1, &obj, NULL, &line), 0);
    cr_expect_eq(line, n + 1);
    cr_expect_str_eq(json_string_value(json_object_get(obj, "name")), "n9999");
    lf_import_destroy(&imp);
    cr_expect_null(imp);
    free(body);
}
