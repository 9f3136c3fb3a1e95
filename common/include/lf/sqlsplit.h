/* sqlsplit.h - splits a SQL script into its top-level statements.
 *
 * leadflow-migrate runs most migration files as one simple-query string, but a file
 * marked `-- leadflow:no-transaction` must send each statement on its own
 * (PostgreSQL runs a multi-statement string in one implicit transaction, where
 * CREATE INDEX CONCURRENTLY is refused). */
#ifndef LF_SQLSPLIT_H
#define LF_SQLSPLIT_H

#include <stddef.h>

/* Splits sql (len bytes) at the semicolons that end statements, skipping those
 * inside quoted strings ('...', E'...'), quoted identifiers, dollar-quoted bodies
 * ($$...$$, $tag$...$tag$) and comments (-- and nested slash-star). Statements that
 * hold only whitespace and comments are dropped; a last statement without its
 * semicolon is kept. Returns the number of statements and sets *out to a new array
 * of NUL-terminated strings (caller owns: lf_sql_split_free), or -1 when a quote,
 * comment or dollar body is left open (the file is broken; *out is NULL). */
int lf_sql_split(const char *sql, size_t len, char ***out);
void lf_sql_split_free(char **stmts, int n);

#endif
