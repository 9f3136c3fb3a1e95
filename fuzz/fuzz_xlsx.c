/* fuzz_xlsx.c: libFuzzer target over the .xlsx reader (services/intake/xlsx.c).
 *
 * Random bytes are almost never a zip archive, so most inputs are wrapped: the first byte
 * picks which part of an otherwise valid workbook the rest of the input becomes (the
 * sheet, the shared strings, the styles, the workbook, its relationships), and the
 * archive is written with libzip around it; one choice in six hands the raw bytes to the
 * reader as the archive itself. The unpack cap is set low (256 KiB) so that the cap
 * path is exercised too. Every import that comes back is walked and freed, so ASan sees
 * leaks and bad reads on every path.
 * Build and run: scripts/fuzz.sh (see fuzz/README.md). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "csv_import.h"
#include "xlsx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *s_wb =
    "<workbook xmlns:r=\"r\"><workbookPr date1904=\"0\"/><sheets>"
    "<sheet name=\"S\" sheetId=\"1\" r:id=\"rId3\"/></sheets></workbook>";
static const char *s_rels =
    "<Relationships><Relationship Id=\"rId1\" Type=\"x/styles\" Target=\"styles.xml\"/>"
    "<Relationship Id=\"rId2\" Type=\"x/sharedStrings\" Target=\"sharedStrings.xml\"/>"
    "<Relationship Id=\"rId3\" Type=\"x/worksheet\" Target=\"worksheets/sheet1.xml\"/>"
    "</Relationships>";
static const char *s_styles =
    "<styleSheet><numFmts><numFmt numFmtId=\"164\" "
    "formatCode=\"yyyy-mm-dd\"/></numFmts><cellXfs><xf "
    "numFmtId=\"0\"/><xf numFmtId=\"14\"/><xf numFmtId=\"164\"/>"
    "</cellXfs></styleSheet>";
static const char *s_sst = "<sst><si><t>姓名</t></si><si><t>手机</t></si>"
                           "<si><t>预算（万元）</t></si></sst>";
static const char *s_sheet =
    "<worksheet><sheetData><row r=\"1\"><c r=\"A1\" t=\"s\"><v>0</v></c>"
    "<c r=\"B1\" t=\"s\"><v>1</v></c><c r=\"C1\" t=\"s\"><v>2</v></c></row>"
    "<row r=\"2\"><c r=\"A2\" t=\"inlineStr\"><is><t>王</t></is></c><c r=\"B2\">"
    "<v>13800138000</v></c><c r=\"C2\" s=\"1\"><v>45000</v></c></row></sheetData>"
    "<mergeCells><mergeCell ref=\"A2:A3\"/></mergeCells></worksheet>";

static char *s_zip(const char *const parts[][2], size_t n, size_t *len) {
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, &ze);
    zip_source_keep(src);
    zip_t *z = zip_open_from_source(src, ZIP_TRUNCATE, &ze);
    for (size_t i = 0; i < n; i++) {
        zip_source_t *ps = zip_source_buffer(z, parts[i][1], strlen(parts[i][1]), 0);
        zip_file_add(z, parts[i][0], ps, ZIP_FL_ENC_UTF_8);
    }
    zip_close(z);
    zip_source_open(src);
    zip_source_seek(src, 0, SEEK_END);
    zip_int64_t sz = zip_source_tell(src);
    zip_source_seek(src, 0, SEEK_SET);
    char *buf = malloc((size_t)sz + 1);
    zip_source_read(src, buf, (zip_uint64_t)sz);
    zip_source_close(src);
    zip_source_free(src);
    zip_error_fini(&ze);
    *len = (size_t)sz;
    return buf;
}

static void s_walk(lf_import_t *imp) {
    for (size_t i = 0; i < lf_import_rows(imp); i++) {
        const json_t *obj;
        const char *err;
        size_t line;
        if (lf_import_row(imp, i, &obj, &err, &line) == 0) {
            if (!obj || line == 0)
                abort();
            char *s = json_dumps(obj, 0);
            free(s);
        }
    }
    lf_import_destroy(&imp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    char why[256];
    int mode = data[0] % 6;
    if (mode == 5) {
        /* The raw bytes as the archive, in an exact-size buffer. */
        char *raw = malloc(size);
        memcpy(raw, data, size);
        s_walk(lf_import_xlsx(raw, size, NULL, 256 * 1024, why, sizeof why));
        free(raw);
        return 0;
    }
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    const char *parts[][2] = {{"xl/workbook.xml", mode == 3 ? text : s_wb},
                              {"xl/_rels/workbook.xml.rels", mode == 4 ? text : s_rels},
                              {"xl/styles.xml", mode == 2 ? text : s_styles},
                              {"xl/sharedStrings.xml", mode == 1 ? text : s_sst},
                              {"xl/worksheets/sheet1.xml", mode == 0 ? text : s_sheet}};
    size_t len;
    char *x = s_zip(parts, 5, &len);
    s_walk(lf_import_xlsx(x, len, (data[0] & 0x80) ? "S" : NULL, 256 * 1024, why,
                          sizeof why));
    free(x);
    free(text);
    return 0;
}
