/* xlsx_writer.h - writes .xlsx files for tests with libzip: the parts are given as text,
 * so a test can imitate any writer (Excel's shared strings, LibreOffice's inline strings,
 * namespace prefixes, missing cell references, merged cells, hostile archives). */
#ifndef LF_TEST_XLSX_WRITER_H
#define LF_TEST_XLSX_WRITER_H

#include <stddef.h>

typedef struct {
    const char *name; /* part name inside the archive, e.g. "xl/workbook.xml" */
    const char *text; /* its content */
} lf_test_part_t;

/* Zips the parts (terminated by {NULL, NULL}) into a new buffer, deflated. Returns the
 * bytes (caller frees) and their length in *len; aborts the test program on failure. */
char *lf_test_xlsx(const lf_test_part_t *parts, size_t *len);

/* The parts of a one-sheet workbook in Excel's layout around `sheet_xml` (the worksheet
 * part) and `shared_strings` (NULL for none), `styles` (NULL for the default: style 1 is
 * a date, numFmt 14) and the 1904 flag. Fills `parts` (at least 8 entries). */
void lf_test_xlsx_book(lf_test_part_t *parts, const char *sheet_xml,
                       const char *shared_strings, const char *styles, int date1904);

#endif
