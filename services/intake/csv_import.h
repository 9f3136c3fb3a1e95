/* csv_import.h: bulk-import bodies of POST /v1/leads/import (CSV and NDJSON) into rows.
 *
 * The parser takes the body in pieces as it arrives and hands each row to a callback as
 * soon as the row is complete, keeping nothing of the body but the row being read; the
 * caller validates, normalizes and stores each row on its own, so that one bad row does
 * not sink the file. File-level problems (nothing to import, undecodable bytes, broken
 * CSV quoting) are known only at the end (lf_import_parser_finish): the caller then drops
 * the rows it was given. lf_import_csv and lf_import_ndjson parse a whole body into an
 * lf_import_t the same way. */
#ifndef LF_INTAKE_CSV_IMPORT_H
#define LF_INTAKE_CSV_IMPORT_H

#include <jansson.h>
#include <stddef.h>

/* Most columns (CSV) a row may have; more is a per-row error, or a file error in the
 * header. */
#define LF_IMPORT_MAX_COLUMNS 1024

/* Most bytes one row may have: a CSV spreadsheet row (quoted line breaks included; more
 * is a file-level error) or an NDJSON line (more is a per-row error). */
#define LF_IMPORT_MAX_ROW_BYTES (1024 * 1024)

typedef struct lf_import lf_import_t;

/* Streaming parser of a CSV (with a header row) or NDJSON body. */
typedef struct lf_import_parser lf_import_parser_t;

/* Called once per data row, in file order, from lf_import_parser_feed or _finish: the
 * row object (canonical field names, see lf_import_csv; borrowed for the call) and a NULL
 * err, or a NULL obj and a short English reason for a bad row. line is as for
 * lf_import_row. */
typedef void (*lf_import_row_fn)(void *arg, size_t line, const json_t *obj,
                                 const char *err);

/* A parser for CSV (ndjson 0; charset as for lf_import_csv) or NDJSON (ndjson 1; charset
 * ignored). Returns NULL with `why` for an unknown charset. Its memory is bounded
 * whatever the body's size: one row (LF_IMPORT_MAX_ROW_BYTES at most) and a 64 KiB
 * piece. Caller owns the result (lf_import_parser_destroy). */
lf_import_parser_t *lf_import_parser_new(int ndjson, const char *charset,
                                         lf_import_row_fn fn, void *arg, char *why,
                                         size_t whysz);

/* The next bytes of the body, in any pieces (a character or a line may be split). */
void lf_import_parser_feed(lf_import_parser_t *p, const char *data, size_t len);

/* The end of the body: hands out the last row, then returns 0 when the file is good, or
 * -1 with the same one-line reason in `why` as lf_import_csv / lf_import_ndjson give for
 * a file-level problem (the rows handed out must then be dropped). Call once. */
int lf_import_parser_finish(lf_import_parser_t *p, char *why, size_t whysz);

/* Frees the parser; accepts NULL and a pointer to NULL. */
void lf_import_parser_destroy(lf_import_parser_t **self_p);

/* Parses a CSV body with a header row. `charset` is "" (means UTF-8), "utf-8", "utf8",
 * "us-ascii", "gb18030", "gbk" or "gb2312" (the last two decoded as GB18030, their
 * superset); NULL means "". A UTF-8 byte-order mark is dropped. Column headers go through
 * lf_map_header; unknown headers are kept under their trimmed name, an empty header
 * becomes "column_<n>". Cell values are trimmed strings; empty cells are left out of the
 * row object. A row with fewer columns than the header, or more columns that are not all
 * empty, is a per-row error. A file with a header and no data rows gives an import of 0
 * rows. Returns NULL with a one-line English reason in `why` when the body is empty, the
 * charset is unknown, the bytes do not decode in that charset, the body contains NUL
 * bytes (UTF-16), the CSV quoting is broken (libcsv strict mode), a row is longer than
 * LF_IMPORT_MAX_ROW_BYTES or the header has too many columns. Caller owns the result
 * (lf_import_destroy). */
lf_import_t *lf_import_csv(const char *body, size_t len, const char *charset, char *why,
                           size_t whysz);

/* Parses newline-delimited JSON: one object per line, blank lines skipped, a UTF-8 BOM at
 * the start dropped. Each line is checked like lf_parse_json_object; a bad line is a
 * per-row error
 * ("invalid JSON: ...", "line is not a JSON object", "nesting too deep", "line is longer
 * than 1048576 bytes"). Keys go through
 * lf_map_header (unknown keys kept as they are); values are kept as found.
 * Returns NULL with `why` when there is no non-blank line. Caller owns the result. */
lf_import_t *lf_import_ndjson(const char *body, size_t len, char *why, size_t whysz);

/* One row of a spreadsheet read by xlsx.c, for lf_import_sheet. */
typedef struct {
    size_t line;        /* 1-based row number as the spreadsheet shows it */
    size_t ncells;      /* entries in cells; trailing empty cells may be left out */
    const char **cells; /* cell texts, NULL or "" for an empty cell (borrowed) */
} lf_sheet_row_t;

/* Turns the rows of a spreadsheet (already decoded: numbers as exact digits, dates as
 * ISO 8601) into an import with the same header mapping, units and row rules as CSV. The
 * header is the first row with at least two filled cells (a title row above it, typed
 * into a merged cell, is skipped), or the only filled row; empty rows are skipped and
 * keep their numbers. A row may be shorter than the header; a filled cell right of the
 * last header goes under "column_<n>". Returns NULL with `why` when no row is filled or
 * the header has more than LF_IMPORT_MAX_COLUMNS columns. Caller owns the result. */
lf_import_t *lf_import_sheet(const lf_sheet_row_t *rows, size_t nrows, char *why,
                             size_t whysz);

/* The same, row by row, for a sheet read as a stream (xlsx.c): each data row goes to fn
 * as soon as the header is known, so memory does not grow with the rows. Rows before
 * the header with one filled cell are kept until a row with two filled cells (the
 * header) or the end of the sheet (then the first filled row is the header) says what
 * they are: a one-column sheet is kept whole. */
typedef struct lf_sheet_rows lf_sheet_rows_t;
lf_sheet_rows_t *lf_sheet_rows_new(lf_import_row_fn fn, void *arg);
/* The next row, in sheet order (row is borrowed for the call). Returns 0, or -1 with
 * why when the header has more than LF_IMPORT_MAX_COLUMNS columns (nothing more is
 * taken). */
int lf_sheet_rows_add(lf_sheet_rows_t *s, const lf_sheet_row_t *row, char *why,
                      size_t whysz);
/* The end of the sheet: the kept rows when no header was found. Returns 0, or -1 with
 * why ("the sheet is empty", a header with too many columns). */
int lf_sheet_rows_finish(lf_sheet_rows_t *s, char *why, size_t whysz);
void lf_sheet_rows_destroy(lf_sheet_rows_t **self_p);

/* A new, empty import and in *fn a row function that appends the rows it is given to
 * it (arg: the import), for collecting a streamed file whole. */
lf_import_t *lf_import_collector(lf_import_row_fn *fn);

/* Frees the import; accepts NULL and a pointer to NULL, and sets *self_p to NULL. */
void lf_import_destroy(lf_import_t **self_p);

/* Number of data rows (good and bad, blank lines not counted). 0 for NULL. */
size_t lf_import_rows(const lf_import_t *imp);

/* Row i (0-based data row). On success returns 0, sets *obj to the row object (canonical
 * field names, unknown ones under their own names for the caller to move into "extra")
 * and *err to NULL. For a bad row returns -1, sets *obj to NULL and *err to a short
 * English reason
 * ("wrong number of columns (expected 5, found 3)", "invalid JSON: ..."). In both cases
 * *line is the 1-based row number a spreadsheet user sees (header is row 1, blank lines
 * count, a quoted cell spanning lines is one row) or, for NDJSON, the line number.
 * Returns -1 with *obj and *err NULL and *line 0 when i is out of range. Any output
 * pointer may be NULL. Borrowed: *obj and *err are valid until lf_import_destroy. */
int lf_import_row(const lf_import_t *imp, size_t i, const json_t **obj, const char **err,
                  size_t *line);

#endif
