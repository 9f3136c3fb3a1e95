#include <criterion/criterion.h>
#include <string.h>

#include "lf/sqlsplit.h"

static int s_split(const char *sql, char ***out) {
    return lf_sql_split(sql, strlen(sql), out);
}

Test(sqlsplit, splits_plain_statements_and_drops_blank_ones) {
    char **s;
    int n = s_split("SELECT 1;\n-- only a comment\n;  SELECT 2 ;\n\n", &s);
    cr_assert_eq(n, 2);
    cr_expect_str_eq(s[0], "SELECT 1;");
    cr_expect_str_eq(s[1], "  SELECT 2 ;");
    lf_sql_split_free(s, n);
}

Test(sqlsplit, keeps_semicolons_inside_quotes_comments_and_dollar_bodies) {
    const char *sql =
        "INSERT INTO t VALUES ('a;b', 'it''s;', E'x\\';y');\n"
        "SELECT \"odd;name\" FROM t; /* a; /* nested; */ still; */ SELECT 3;\n"
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END "
        "$body$;\n"
        "DO $$ BEGIN PERFORM 1; END $$;\n"
        "SELECT 'last without semicolon'";
    char **s;
    int n = s_split(sql, &s);
    cr_assert_eq(n, 6, "got %d", n);
    cr_expect(strstr(s[0], "E'x\\';y'") != NULL);
    cr_expect(strstr(s[1], "\"odd;name\"") != NULL);
    cr_expect(strstr(s[2], "still; */ SELECT 3;") != NULL);
    cr_expect(strstr(s[3], "RETURN 1; END $body$;") != NULL);
    cr_expect(strstr(s[4], "PERFORM 1; END $$;") != NULL);
    cr_expect_str_eq(s[5], "\nSELECT 'last without semicolon'");
    lf_sql_split_free(s, n);
}

Test(sqlsplit, positional_parameters_are_not_dollar_quotes) {
    char **s;
    int n = s_split("SELECT $1; SELECT a$b$c FROM t;", &s);
    cr_assert_eq(n, 2);
    lf_sql_split_free(s, n);
}

Test(sqlsplit, refuses_an_open_quote_comment_or_body) {
    const char *broken[] = {"SELECT 'open;", "SELECT 1; /* open", "DO $$ BEGIN;",
                            "SELECT \"open"};
    for (size_t i = 0; i < sizeof broken / sizeof *broken; i++) {
        char **s = (char **)1;
        cr_expect_eq(s_split(broken[i], &s), -1, "%s", broken[i]);
        cr_expect_null(s);
    }
}
