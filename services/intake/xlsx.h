/* xlsx.h: Excel workbooks (.xlsx, Office Open XML) as bulk-import bodies of
 * POST /v1/leads/import.
 *
 * The sheet's rows are read one at a time and handed to the same header and row rules as
 * CSV (lf_sheet_rows_add, csv_import.c), so an .xlsx file gets the same header mapping,
 * units, per-row results and idempotent re-import as a CSV file. */
#ifndef LF_INTAKE_XLSX_H
#define LF_INTAKE_XLSX_H

#include <stddef.h>

#include "csv_import.h"

/* The media type of .xlsx files. */
#define LF_XLSX_MEDIA_TYPE                                                               \
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

/* 1 when the body starts like an .xlsx file (a zip archive), 0 otherwise. */
int lf_xlsx_sniff(const char *body, size_t len);

/* 1 when the body starts like an old binary Excel file (.xls, OLE2 compound document),
 * which leadflow does not read, 0 otherwise. */
int lf_xls_sniff(const char *body, size_t len);

/* Reads the sheet named `sheet` (NULL or "": the first sheet in the workbook's order, as
 * workbook.xml lists it and its relationships locate it) of the .xlsx file in `body`.
 * Cell values: shared and inline strings as text (rich-text runs joined, phonetic guides
 * left out), numbers as written in the file (the exact value, 13800138000, never
 * 1.38001E+10), numbers styled as dates or times as ISO 8601 text (the 1900 and 1904 date
 * systems), booleans as true/false, error values (#N/A) as empty. A merged range takes
 * the value of its top-left cell in every cell. No more than `max_unpacked` bytes are
 * inflated in all (zip bombs), and XML with a document type declaration is refused
 * (entity expansion). Returns NULL with a one-line English reason in `why` when the body
 * is not a readable .xlsx file, the sheet does not exist (the reason lists the names),
 * or a limit is hit. Caller owns the result (lf_import_destroy). */
lf_import_t *lf_import_xlsx(const char *body, size_t len, const char *sheet,
                            size_t max_unpacked, char *why, size_t whysz);

/* The same, each data row handed to fn as soon as it is read (in sheet order, as
 * lf_import_parser hands CSV rows), so memory does not grow with the rows: the
 * workbook's shared strings, styles and merged ranges and one row are kept. Returns 0,
 * or -1 with `why` for a file-level problem, which may be found after rows were handed
 * out: the caller then drops them. */
int lf_xlsx_rows(const char *body, size_t len, const char *sheet, size_t max_unpacked,
                 lf_import_row_fn fn, void *arg, char *why, size_t whysz);

#endif
