/* sqlsplit.c - top-level statement splitting for SQL scripts.
 *
 * A small scanner rather than a parser: all it must know is where a semicolon ends
 * a statement, which means knowing where strings, quoted identifiers, dollar-quoted
 * bodies and comments begin and end. PostgreSQL's lexer is the reference for each
 * rule (standard_conforming_strings on, so a backslash escapes only in E'' strings). */
#include "lf/sqlsplit.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "lf/util.h"

/* Length of the dollar-quote tag starting at p ("$$" or "$name$"), or 0. */
static size_t s_dollar_tag(const char *p, const char *end) {
    const char *q = p + 1;
    if (q < end && (isalpha((unsigned char)*q) || *q == '_')) {
        while (q < end && (isalnum((unsigned char)*q) || *q == '_'))
            q++;
    }
    return (q < end && *q == '$') ? (size_t)(q - p + 1) : 0;
}

/* Is s[0..n) only whitespace and comments? */
static int s_blank(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (isspace((unsigned char)s[i])) {
            i++;
        } else if (i + 1 < n && s[i] == '-' && s[i + 1] == '-') {
            while (i < n && s[i] != '\n')
                i++;
        } else if (i + 1 < n && s[i] == '/' && s[i + 1] == '*') {
            const char *e = strstr(s + i + 2, "*/");
            if (!e || (size_t)(e - s) >= n)
                return 1;
            i = (size_t)(e - s) + 2;
        } else {
            return 0;
        }
    }
    return 1;
}

static void s_push(char ***out, int *n, const char *s, size_t len) {
    if (s_blank(s, (len > 0 && s[len - 1] == ';') ? len - 1 : len))
        return;
    *out = lf_realloc(*out, (size_t)(*n + 1) * sizeof **out);
    char *copy = lf_malloc(len + 1);
    memcpy(copy, s, len);
    copy[len] = '\0';
    (*out)[(*n)++] = copy;
}

int lf_sql_split(const char *sql, size_t len, char ***out) {
    const char *p = sql, *end = sql + len, *start = sql;
    char **stmts = NULL;
    int n = 0;
    while (p < end) {
        if (*p == '-' && p + 1 < end && p[1] == '-') {
            while (p < end && *p != '\n')
                p++;
        } else if (*p == '/' && p + 1 < end && p[1] == '*') {
            int depth = 1;
            p += 2;
            while (p < end && depth > 0) {
                if (*p == '/' && p + 1 < end && p[1] == '*')
                    depth++, p += 2;
                else if (*p == '*' && p + 1 < end && p[1] == '/')
                    depth--, p += 2;
                else
                    p++;
            }
            if (depth > 0)
                goto broken;
        } else if (*p == '\'') {
            int escapes = p > start && (p[-1] == 'E' || p[-1] == 'e');
            p++;
            for (;;) {
                if (p >= end)
                    goto broken;
                if (escapes && *p == '\\' && p + 1 < end) {
                    p += 2;
                } else if (*p == '\'') {
                    if (p + 1 < end && p[1] == '\'') {
                        p += 2;
                    } else {
                        p++;
                        break;
                    }
                } else {
                    p++;
                }
            }
        } else if (*p == '"') {
            p = memchr(p + 1, '"', (size_t)(end - p - 1));
            if (!p)
                goto broken;
            p++;
        } else if (*p == '$' && s_dollar_tag(p, end) &&
                   !(p > start && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))) {
            size_t tl = s_dollar_tag(p, end);
            const char *q = p + tl;
            for (;;) {
                q = memchr(q, '$', (size_t)(end - q));
                if (!q || (size_t)(end - q) < tl)
                    goto broken;
                if (memcmp(q, p, tl) == 0)
                    break;
                q++;
            }
            p = q + tl;
        } else if (*p == ';') {
            s_push(&stmts, &n, start, (size_t)(p - start + 1));
            start = ++p;
        } else {
            p++;
        }
    }
    s_push(&stmts, &n, start, (size_t)(end - start));
    *out = stmts;
    return n;
broken:
    lf_sql_split_free(stmts, n);
    *out = NULL;
    return -1;
}

void lf_sql_split_free(char **stmts, int n) {
    for (int i = 0; i < n; i++)
        free(stmts[i]);
    free(stmts);
}
