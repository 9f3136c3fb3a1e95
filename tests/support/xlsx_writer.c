/* xlsx_writer.c - see xlsx_writer.h. */
#include "xlsx_writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

static void s_die(const char *what) {
    fprintf(stderr, "xlsx_writer: %s\n", what);
    abort();
}

char *lf_test_xlsx(const lf_test_part_t *parts, size_t *len) {
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, &ze);
    if (!src)
        s_die("buffer");
    zip_source_keep(src);
    zip_t *z = zip_open_from_source(src, ZIP_TRUNCATE, &ze);
    if (!z)
        s_die("open");
    for (const lf_test_part_t *p = parts; p->name; p++) {
        zip_source_t *ps = zip_source_buffer(z, p->text, strlen(p->text), 0);
        if (!ps || zip_file_add(z, p->name, ps, ZIP_FL_ENC_UTF_8) < 0)
            s_die("add");
    }
    if (zip_close(z) != 0)
        s_die("close");
    if (zip_source_open(src) != 0)
        s_die("reopen");
    zip_source_seek(src, 0, SEEK_END);
    zip_int64_t n = zip_source_tell(src);
    zip_source_seek(src, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || zip_source_read(src, buf, (zip_uint64_t)n) != n)
        s_die("read");
    zip_source_close(src);
    zip_source_free(src);
    zip_error_fini(&ze);
    *len = (size_t)n;
    return buf;
}

static const char *s_content_types =
    "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n"
    "<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">"
    "<Default Extension=\"rels\" "
    "ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>"
    "<Default Extension=\"xml\" ContentType=\"application/xml\"/>"
    "<Override PartName=\"/xl/workbook.xml\" "
    "ContentType=\"application/"
    "vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>"
    "</Types>";

static const char *s_root_rels =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<Relationships "
    "xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
    "<Relationship Id=\"rId1\" "
    "Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
    "officeDocument\" Target=\"xl/workbook.xml\"/></Relationships>";

/* Excel numbers its relationships its own way; the sheet is deliberately not rId1. */
static const char *s_wb_rels =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<Relationships "
    "xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
    "<Relationship Id=\"rId1\" "
    "Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles\" "
    "Target=\"styles.xml\"/>"
    "<Relationship Id=\"rId2\" "
    "Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
    "sharedStrings\" Target=\"sharedStrings.xml\"/>"
    "<Relationship Id=\"rId3\" "
    "Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
    "worksheet\" "
    "Target=\"worksheets/sheet1.xml\"/></Relationships>";

static const char *s_default_styles =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<styleSheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">"
    "<numFmts count=\"1\"><numFmt numFmtId=\"164\" "
    "formatCode=\"yyyy&quot;年&quot;m&quot;月&quot;d&quot;日&quot;\"/></numFmts>"
    "<cellXfs count=\"4\"><xf numFmtId=\"0\"/><xf numFmtId=\"14\"/><xf numFmtId=\"164\"/>"
    "<xf numFmtId=\"49\"/></cellXfs></styleSheet>";

void lf_test_xlsx_book(lf_test_part_t *parts, const char *sheet_xml,
                       const char *shared_strings, const char *styles, int date1904) {
    static char wb[1024];
    snprintf(
        wb, sizeof wb,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<workbook xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" "
        "xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\">"
        "<workbookPr%s/><sheets><sheet name=\"客户名单\" sheetId=\"1\" r:id=\"rId3\"/>"
        "</sheets></workbook>",
        date1904 ? " date1904=\"1\"" : "");
    size_t i = 0;
    parts[i++] = (lf_test_part_t){"[Content_Types].xml", s_content_types};
    parts[i++] = (lf_test_part_t){"_rels/.rels", s_root_rels};
    parts[i++] = (lf_test_part_t){"xl/workbook.xml", wb};
    parts[i++] = (lf_test_part_t){"xl/_rels/workbook.xml.rels", s_wb_rels};
    parts[i++] = (lf_test_part_t){"xl/styles.xml", styles ? styles : s_default_styles};
    if (shared_strings)
        parts[i++] = (lf_test_part_t){"xl/sharedStrings.xml", shared_strings};
    parts[i++] = (lf_test_part_t){"xl/worksheets/sheet1.xml", sheet_xml};
    parts[i] = (lf_test_part_t){NULL, NULL};
}
