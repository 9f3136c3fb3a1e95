/* xlsx_gen.c - writes the large .xlsx workbook of bench/import_memory.sh
 * (LF_BENCH_FORMAT= xlsx): the same nine columns and rows as its CSV, in Excel's layout
 * (shared strings for the header and the companies, inline strings for the rest, numbers
 * for phones and budgets), with libzip. Usage: xlsx_gen ROWS OUT.xlsx */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

typedef struct {
    char *p;
    size_t n, cap;
} s_buf_t;

static void s_add(s_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#include <stdarg.h>
static void s_add(s_buf_t *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->n) {
            b->n += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + 4096 + (size_t)(n > 0 ? n : 0);
        b->p = realloc(b->p, b->cap);
        if (!b->p) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
    }
}

static int s_part(zip_t *z, const char *name, s_buf_t *b) {
    zip_source_t *src = zip_source_buffer(z, b->p, b->n, 0);
    return src && zip_file_add(z, name, src, ZIP_FL_OVERWRITE) >= 0 ? 0 : -1;
}

#define NS "xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\""
#define RNS                                                                              \
    "xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\""

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: xlsx_gen ROWS OUT.xlsx\n");
        return 2;
    }
    long rows = atol(argv[1]);
    static const char *const head[] = {"姓名",         "手机", "邮箱", "公司", "职位",
                                       "预算（万元）", "行业", "地区", "备注"};
    enum { NCO = 9973 };
    s_buf_t sst = {0}, sh = {0}, wb = {0}, rels = {0}, ct = {0}, root = {0};
    s_add(&sst, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><sst " NS ">");
    for (int i = 0; i < 9; i++)
        s_add(&sst, "<si><t>%s</t></si>", head[i]);
    for (int i = 0; i < NCO; i++)
        s_add(&sst, "<si><t>华东医疗器械有限公司%04d</t></si>", i);
    s_add(&sst, "</sst>");
    s_add(&sh, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><worksheet " NS "><sheetData>");
    s_add(&sh, "<row r=\"1\">");
    for (int i = 0; i < 9; i++)
        s_add(&sh, "<c r=\"%c1\" t=\"s\"><v>%d</v></c>", 'A' + i, i);
    s_add(&sh, "</row>");
    for (long i = 1; i <= rows; i++) {
        long r = i + 1;
        s_add(
            &sh,
            "<row r=\"%ld\"><c r=\"A%ld\" "
            "t=\"inlineStr\"><is><t>展会客户%06ld</t></is></c>"
            "<c r=\"B%ld\"><v>139%08ld</v></c>"
            "<c r=\"C%ld\" "
            "t=\"inlineStr\"><is><t>visitor%06ld@example-expo.com</t></is></c>"
            "<c r=\"D%ld\" t=\"s\"><v>%ld</v></c>"
            "<c r=\"E%ld\" t=\"inlineStr\"><is><t>采购经理</t></is></c>"
            "<c r=\"F%ld\"><v>%ld</v></c>"
            "<c r=\"G%ld\" t=\"inlineStr\"><is><t>medical</t></is></c>"
            "<c r=\"H%ld\" t=\"inlineStr\"><is><t>east</t></is></c>"
            "<c r=\"I%ld\" t=\"inlineStr\"><is><t>展位 A%03ld 来访, 要报价单</t></is></c>"
            "</row>",
            r, r, i, r, i, r, i, r, 9 + i % NCO, r, r, 10 + i % 90, r, r, r, i % 500);
    }
    s_add(&sh, "</sheetData></worksheet>");
    s_add(&wb, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><workbook " NS " " RNS
               "><sheets><sheet name=\"客户名单\" sheetId=\"1\" r:id=\"rId1\"/></sheets>"
               "</workbook>");
    s_add(
        &rels,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Relationships "
        "xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
        "<Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/"
        "officeDocument/2006/relationships/worksheet\" Target=\"worksheets/sheet1.xml\"/>"
        "<Relationship Id=\"rId2\" Type=\"http://schemas.openxmlformats.org/"
        "officeDocument/2006/relationships/sharedStrings\" Target=\"sharedStrings.xml\"/>"
        "</Relationships>");
    s_add(
        &root,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Relationships "
        "xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
        "<Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/"
        "officeDocument/2006/relationships/officeDocument\" Target=\"xl/workbook.xml\"/>"
        "</Relationships>");
    s_add(&ct,
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Types "
          "xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">"
          "<Default Extension=\"xml\" ContentType=\"application/xml\"/>"
          "<Default Extension=\"rels\" "
          "ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>"
          "</Types>");
    int err = 0;
    zip_t *z = zip_open(argv[2], ZIP_CREATE | ZIP_TRUNCATE, &err);
    if (!z || s_part(z, "[Content_Types].xml", &ct) || s_part(z, "_rels/.rels", &root) ||
        s_part(z, "xl/workbook.xml", &wb) ||
        s_part(z, "xl/_rels/workbook.xml.rels", &rels) ||
        s_part(z, "xl/sharedStrings.xml", &sst) ||
        s_part(z, "xl/worksheets/sheet1.xml", &sh) || zip_close(z) < 0) {
        fprintf(stderr, "xlsx_gen: cannot write %s\n", argv[2]);
        return 1;
    }
    fprintf(stderr, "xlsx_gen: %ld rows, sheet %zu bytes unpacked\n", rows, sh.n);
    free(sst.p);
    free(sh.p);
    free(wb.p);
    free(rels.p);
    free(ct.p);
    free(root.p);
    return 0;
}
