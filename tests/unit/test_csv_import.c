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

/* Rows handed out by the streaming parser, as [{"line": n, "obj": {...}} | {"line": n,
 * "error": "..."}]. */
static void s_gather(void *arg, size_t line, const json_t *obj, const char *err) {
    json_t *row = json_pack("{s:I}", "line", (json_int_t)line);
    if (obj)
        json_object_set(row, "obj", (json_t *)obj);
    else
        json_object_set_new(row, "error", json_string(err));
    json_array_append_new(arg, row);
}

/* The same rows as lf_import_* give for the whole body: line, object or error. */
static json_t *s_whole_rows(const lf_import_t *imp) {
    json_t *rows = json_array();
    for (size_t i = 0; i < lf_import_rows(imp); i++) {
        const json_t *obj;
        const char *err;
        size_t line;
        lf_import_row(imp, i, &obj, &err, &line);
        s_gather(rows, line, obj, err);
    }
    return rows;
}

/* Every fixture fed to the streaming parser in pieces of 1, 2, 3, 5, 7, 64 and 4096
 * bytes (a character, a CRLF, a BOM or a quoted line break split anywhere) gives the same
 * rows and the same file-level reason as the whole body at once. */
Test(csv_import, pieces_of_any_size_parse_like_the_whole) {
    const char *dir = s_fixture_dir();
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot open %s (run from the repository root)", dir);
    struct dirent *e;
    int cases = 0, failed = 0;
    static const size_t sizes[] = {1, 2, 3, 5, 7, 64, 4096};
    while ((e = readdir(d))) {
        char path[1024];
        size_t len = 0, clen = 0;
        int ndjson = 0;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s/input.csv", dir, e->d_name);
        char *body = s_slurp(path, &len);
        if (!body) {
            snprintf(path, sizeof path, "%s/%s/input.ndjson", dir, e->d_name);
            body = s_slurp(path, &len);
            ndjson = 1;
        }
        if (!body)
            continue;
        snprintf(path, sizeof path, "%s/%s/charset", dir, e->d_name);
        char *charset = s_slurp(path, &clen);
        if (charset) {
            charset = realloc(charset, clen + 1);
            charset[clen] = '\0';
            charset[strcspn(charset, "\r\n")] = '\0';
        }
        cases++;
        char why_whole[256] = "";
        lf_import_t *imp = ndjson
                               ? lf_import_ndjson(body, len, why_whole, sizeof why_whole)
                               : lf_import_csv(body, len, charset ? charset : "",
                                               why_whole, sizeof why_whole);
        json_t *want = s_whole_rows(imp);
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            json_t *got = json_array();
            char why[256] = "";
            lf_import_parser_t *p = lf_import_parser_new(ndjson, charset ? charset : "",
                                                         s_gather, got, why, sizeof why);
            int rc = -1;
            if (p) {
                for (size_t off = 0; off < len; off += sizes[k])
                    lf_import_parser_feed(p, body + off,
                                          len - off < sizes[k] ? len - off : sizes[k]);
                rc = lf_import_parser_finish(p, why, sizeof why);
                lf_import_parser_destroy(&p);
            }
            int ok = imp ? rc == 0 && json_equal(got, want)
                         : rc == -1 && strcmp(why, why_whole) == 0;
            if (!ok) {
                char *g = json_dumps(got, JSON_ENSURE_ASCII);
                cr_log_error("%s in pieces of %zu: rc %d \"%s\" (whole: \"%s\"), rows %s",
                             e->d_name, sizes[k], rc, why, why_whole, g);
                free(g);
                failed++;
            }
            json_decref(got);
        }
        json_decref(want);
        lf_import_destroy(&imp);
        free(body);
        free(charset);
    }
    closedir(d);
    cr_expect_geq(cases, 40, "fixture cases went missing: only %d", cases);
    cr_expect_eq(failed, 0, "%d fixture runs in pieces differ from the whole body",
                 failed);
}

/* A row longer than LF_IMPORT_MAX_ROW_BYTES: a CSV file error (an unclosed quote would
 * otherwise hold the rest of the file as one cell), an NDJSON per-row error. */
Test(csv_import, overlong_rows) {
    size_t n = LF_IMPORT_MAX_ROW_BYTES + 100;
    char *body = malloc(n + 64);
    int h = snprintf(body, 64, "name,phone\n\"");
    memset(body + h, 'x', n);
    char why[256] = "";
    cr_expect_null(lf_import_csv(body, (size_t)h + n, "", why, sizeof why));
    cr_expect(strstr(why, "row 2 is longer than 1048576 bytes"), "%s", why);
    int k = snprintf(body, 64, "{\"phone\":\"13800138000\"}\n{\"name\":\"");
    memset(body + k, 'y', n);
    memcpy(body + k + n, "\"}\n{\"email\":\"a@b.cn\"}\n", 22);
    lf_import_t *imp = lf_import_ndjson(body, (size_t)k + n + 22, why, sizeof why);
    cr_assert_not_null(imp, "%s", why);
    cr_expect_eq(lf_import_rows(imp), 3);
    const json_t *obj;
    const char *err;
    size_t line;
    cr_expect_eq(lf_import_row(imp, 1, &obj, &err, &line), -1);
    cr_expect_eq(line, 2);
    cr_expect(err && strstr(err, "longer than"), "%s", err ? err : "");
    cr_expect_eq(lf_import_row(imp, 2, &obj, &err, &line), 0);
    cr_expect_eq(line, 3);
    lf_import_destroy(&imp);
    free(body);
}
