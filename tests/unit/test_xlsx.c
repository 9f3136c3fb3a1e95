/* test_xlsx.c - .xlsx imports (services/intake/xlsx.c) from files this test writes with
 * libzip (tests/support/xlsx_writer.c), in the layouts real writers use: Excel (shared
 * strings, numeric phone cells, date styles, relationships not in sheet order),
 * LibreOffice and libraries (inline strings, no cell references, namespace prefixes),
 * title rows in merged cells, empty rows, the 1904 date system, several sheets; and
 * hostile files (zip bomb, DOCTYPE, damaged references, old .xls). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/xlsx_writer.h"
#include "../../services/intake/csv_import.h"
#include "../../services/intake/xlsx.h"

#define NS "xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\""
#define HDR "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n"
#define MIB (1024 * 1024)

/* Reads the import back as one JSON text: [[line, {row}|"error"], ...]. */
static char *s_dump(lf_import_t *imp) {
    json_t *all = json_array();
    for (size_t i = 0; i < lf_import_rows(imp); i++) {
        const json_t *obj;
        const char *err;
        size_t line;
        lf_import_row(imp, i, &obj, &err, &line);
        json_array_append_new(all, json_pack("[I, O]", (json_int_t)line,
                                             obj ? (json_t *)obj : json_string(err)));
    }
    char *s = json_dumps(all, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    json_decref(all);
    return s;
}

/* Imports a book and compares with the expected dump (keys sorted, JSON_ENSURE_ASCII
   off: expected text is compared after a round trip through jansson). */
static void s_expect(const lf_test_part_t *parts, const char *sheet, const char *want) {
    size_t len;
    char *x = lf_test_xlsx(parts, &len);
    char why[256] = "";
    lf_import_t *imp = lf_import_xlsx(x, len, sheet, 64 * MIB, why, sizeof why);
    cr_assert(imp, "import failed: %s", why);
    char *got = s_dump(imp);
    json_t *w = json_loads(want, 0, NULL);
    cr_assert(w, "bad expectation %s", want);
    char *wants = json_dumps(w, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    cr_expect_str_eq(got, wants);
    free(wants);
    json_decref(w);
    free(got);
    lf_import_destroy(&imp);
    free(x);
}

static void s_expect_error(const lf_test_part_t *parts, const char *sheet, size_t cap,
                           const char *want) {
    size_t len;
    char *x = lf_test_xlsx(parts, &len);
    char why[256] = "";
    lf_import_t *imp = lf_import_xlsx(x, len, sheet, cap, why, sizeof why);
    cr_expect_null(imp, "expected an error containing \"%s\"", want);
    cr_expect(strstr(why, want), "reason \"%s\" does not contain \"%s\"", why, want);
    lf_import_destroy(&imp);
    free(x);
}

Test(xlsx, excel_style_shared_strings_numbers_dates_units) {
    const char *sst =
        HDR "<sst " NS " count=\"9\" uniqueCount=\"8\">"
            "<si><t>姓名</t></si><si><t>公司</t></si><si><t>手机</t></si>"
            "<si><t>预算（万元）</t></si><si><t>来访日期</t></si>"
            "<si><t>王芳</t></si>"
            "<si><r><t>华东</t></r><r><rPr><b/></rPr><t>医疗器械有限公司</t></r>"
            "<rPh sb=\"0\" eb=\"2\"><t>ホァドン</t></rPh></si>"
            "<si><t xml:space=\"preserve\"> 李明 </t></si></sst>";
    const char *sheet = HDR
        "<worksheet " NS "><dimension ref=\"A1:E4\"/><sheetData>"
        "<row r=\"1\"><c r=\"A1\" t=\"s\"><v>0</v></c><c r=\"B1\" t=\"s\"><v>1</v></c>"
        "<c r=\"C1\" t=\"s\"><v>2</v></c><c r=\"D1\" t=\"s\"><v>3</v></c>"
        "<c r=\"E1\" t=\"s\"><v>4</v></c></row>"
        "<row r=\"2\"><c r=\"A2\" t=\"s\"><v>5</v></c><c r=\"B2\" t=\"s\"><v>6</v></c>"
        "<c r=\"C2\"><v>13800138000</v></c><c r=\"D2\"><v>80</v></c>"
        "<c r=\"E2\" s=\"1\"><v>45000</v></c></row>"
        "<row r=\"3\"><c r=\"A3\" t=\"s\"><v>7</v></c>"
        "<c r=\"C3\"><v>73184567890</v></c><c r=\"D3\"><v>12.5</v></c>"
        "<c r=\"E3\" s=\"2\"><v>45000.5</v></c></row>"
        "<row r=\"4\"><c r=\"A4\" t=\"str\"><f>A2</f><v>王芳</v></c>"
        "<c r=\"C4\" t=\"e\"><v>#N/A</v></c><c r=\"D4\" t=\"s\"><v>5</v></c>"
        "<c r=\"E4\" t=\"b\"><v>1</v></c></row>"
        "</sheetData></worksheet>";
    lf_test_part_t parts[10];
    lf_test_xlsx_book(parts, sheet, sst, NULL, 0);
    s_expect(
        parts, NULL,
        "[[2, {\"name\": \"王芳\", \"company\": \"华东医疗器械有限公司\","
        "      \"phone\": \"13800138000\", \"budget\": \"80万元\","
        "      \"来访日期\": \"2023-03-15\"}],"
        " [3, {\"name\": \"李明\", \"phone\": \"73184567890\", \"budget\": \"12.5万元\","
        "      \"来访日期\": \"2023-03-15T12:00:00\"}],"
        " [4, {\"name\": \"王芳\", \"budget\": \"王芳\", \"来访日期\": \"true\"}]]");
}

Test(xlsx, libreoffice_style_inline_strings_empty_rows_no_references) {
    const char *sheet = HDR
        "<x:worksheet "
        "xmlns:x=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">"
        "<x:sheetData>"
        "<x:row><x:c t=\"inlineStr\"><x:is><x:t>Name</x:t></x:is></x:c>"
        "<x:c t=\"inlineStr\"><x:is><x:t>Mobile</x:t></x:is></x:c>"
        "<x:c t=\"inlineStr\"><x:is><x:t>Budget (k USD)</x:t></x:is></x:c></x:row>"
        "<x:row><x:c t=\"inlineStr\"><x:is><x:t>Ann Lee</x:t></x:is></x:c>"
        "<x:c><x:v>1.3800138E10</x:v></x:c><x:c><x:v>50</x:v></x:c></x:row>"
        "<x:row r=\"3\"/>"
        "<x:row r=\"4\"><x:c r=\"A4\" "
        "t=\"inlineStr\"><x:is><x:t></x:t></x:is></x:c></x:row>"
        "<x:row r=\"6\"><x:c r=\"B6\" t=\"inlineStr\"><x:is><x:t>1.38001E+10</x:t></x:is>"
        "</x:c><x:c r=\"C6\" t=\"inlineStr\"><x:is><x:t>50万</x:t></x:is></x:c></x:row>"
        "</x:sheetData></x:worksheet>";
    lf_test_part_t parts[10];
    lf_test_xlsx_book(parts, sheet, NULL, NULL, 0);
    /* A number cell keeps every digit even when the writer used an exponent; a text cell
       with Excel's rounded form passes through as text for the phone rule to refuse; a
       cell with its own unit keeps it. */
    s_expect(parts, NULL,
             "[[2, {\"name\": \"Ann Lee\", \"phone\": \"13800138000\","
             "      \"budget\": \"50k USD\"}],"
             " [6, {\"phone\": \"1.38001E+10\", \"budget\": \"50万\"}]]");
}

Test(xlsx, merged_title_row_and_merged_header_cells) {
    const char *sst = HDR "<sst " NS "><si><t>2026 上海医疗展 客户名单</t></si>"
                          "<si><t>姓名</t></si><si><t>电话</t></si><si><t>公司</t></si>"
                          "<si><t>张伟</t></si><si><t>迈瑞医疗</t></si></sst>";
    const char *sheet = HDR
        "<worksheet " NS "><sheetData>"
        "<row r=\"1\"><c r=\"A1\" t=\"s\"><v>0</v></c><c r=\"B1\"/><c r=\"C1\"/>"
        "<c r=\"D1\"/></row>"
        "<row r=\"2\"><c r=\"A2\" t=\"s\"><v>1</v></c><c r=\"B2\" t=\"s\"><v>2</v></c>"
        "<c r=\"C2\"/><c r=\"D2\" t=\"s\"><v>3</v></c></row>"
        "<row r=\"3\"><c r=\"A3\" t=\"s\"><v>4</v></c><c r=\"C3\"><v>13900139000</v></c>"
        "<c r=\"D3\" t=\"s\"><v>5</v></c></row>"
        "<row r=\"4\"><c r=\"A4\" t=\"s\"><v>4</v></c><c r=\"B4\"><v>13800138000</v></c>"
        "<c r=\"D4\"/></row>"
        "</sheetData><mergeCells count=\"3\"><mergeCell ref=\"A1:D1\"/>"
        "<mergeCell ref=\"B2:C2\"/><mergeCell ref=\"D3:D4\"/></mergeCells></worksheet>";
    lf_test_part_t parts[10];
    lf_test_xlsx_book(parts, sheet, sst, NULL, 0);
    /* The title row is skipped, both halves of the merged 电话 header are phone columns
       (the first filled wins), and the company merged over two rows fills both. */
    s_expect(parts, NULL,
             "[[3, {\"name\": \"张伟\", \"phone\": \"13900139000\", \"company\": "
             "\"迈瑞医疗\"}],"
             " [4, {\"name\": \"张伟\", \"phone\": \"13800138000\", \"company\": "
             "\"迈瑞医疗\"}]]");
}

/* A row number written twice (a broken writer) with a range merged down from it: the
   second row's value fills the rows below, and nothing leaks (the fuzzer found a leak of
   the first value here). */
Test(xlsx, a_row_number_written_twice_in_a_merged_range) {
    const char *sheet =
        HDR "<worksheet " NS "><sheetData>"
            "<row r=\"1\"><c r=\"A1\" t=\"inlineStr\"><is><t>姓名</t></is></c>"
            "<c r=\"B1\" t=\"inlineStr\"><is><t>公司</t></is></c></row>"
            "<row r=\"2\"><c r=\"A2\" t=\"inlineStr\"><is><t>张伟</t></is></c>"
            "<c r=\"B2\" t=\"inlineStr\"><is><t>甲</t></is></c></row>"
            "<row r=\"2\"><c r=\"A2\" t=\"inlineStr\"><is><t>李明</t></is></c>"
            "<c r=\"B2\" t=\"inlineStr\"><is><t>乙</t></is></c></row>"
            "<row r=\"3\"><c r=\"A3\" t=\"inlineStr\"><is><t>王芳</t></is></c></row>"
            "</sheetData><mergeCells count=\"1\"><mergeCell ref=\"B2:B3\"/></mergeCells>"
            "</worksheet>";
    lf_test_part_t parts[10];
    lf_test_xlsx_book(parts, sheet, NULL, NULL, 0);
    s_expect(parts, NULL,
             "[[2, {\"name\": \"张伟\", \"company\": \"甲\"}],"
             " [2, {\"name\": \"李明\", \"company\": \"乙\"}],"
             " [3, {\"name\": \"王芳\", \"company\": \"乙\"}]]");
}

Test(xlsx, date1904_system) {
    const char *sheet =
        HDR "<worksheet " NS "><sheetData>"
            "<row r=\"1\"><c t=\"inlineStr\"><is><t>邮箱</t></is></c>"
            "<c t=\"inlineStr\"><is><t>日期</t></is></c></row>"
            "<row r=\"2\"><c t=\"inlineStr\"><is><t>a@example.com</t></is></c>"
            "<c s=\"1\"><v>0</v></c></row>"
            "<row r=\"3\"><c t=\"inlineStr\"><is><t>b@example.com</t></is></c>"
            "<c s=\"1\"><v>43538</v></c></row>"
            "</sheetData></worksheet>";
    lf_test_part_t parts[10];
    lf_test_xlsx_book(parts, sheet, NULL, NULL, 1);
    s_expect(parts, NULL,
             "[[2, {\"email\": \"a@example.com\", \"日期\": \"1904-01-01\"}],"
             " [3, {\"email\": \"b@example.com\", \"日期\": \"2023-03-15\"}]]");
    lf_test_xlsx_book(parts, sheet, NULL, NULL, 0);
    s_expect(parts, NULL,
             "[[2, {\"email\": \"a@example.com\", \"日期\": \"00:00:00\"}],"
             " [3, {\"email\": \"b@example.com\", \"日期\": \"2019-03-14\"}]]");
}

static const char *s_two_sheets_wb = HDR
    "<workbook " NS " xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/"
    "relationships\"><sheets><sheet name=\"说明\" sheetId=\"2\" r:id=\"rId9\"/>"
    "<sheet name=\"名单\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>";
static const char *s_two_sheets_rels = HDR
    "<Relationships "
    "xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
    "<Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/"
    "2006/relationships/worksheet\" Target=\"/xl/worksheets/sheet1.xml\"/>"
    "<Relationship Id=\"rId9\" Type=\"http://schemas.openxmlformats.org/officeDocument/"
    "2006/relationships/worksheet\" Target=\"worksheets/notes.xml\"/></Relationships>";

Test(xlsx, first_sheet_in_workbook_order_or_by_name) {
    lf_test_part_t parts[] = {
        {"xl/workbook.xml", s_two_sheets_wb},
        {"xl/_rels/workbook.xml.rels", s_two_sheets_rels},
        {"xl/worksheets/notes.xml", HDR
         "<worksheet " NS "><sheetData><row r=\"1\"><c t=\"inlineStr\"><is><t>Email</t>"
         "</is></c><c t=\"inlineStr\"><is><t>Note</t></is></c></row><row r=\"2\">"
         "<c t=\"inlineStr\"><is><t>notes@example.com</t></is></c></row></sheetData>"
         "</worksheet>"},
        {"xl/worksheets/sheet1.xml", HDR
         "<worksheet " NS "><sheetData><row r=\"1\"><c t=\"inlineStr\"><is><t>Email</t>"
         "</is></c><c t=\"inlineStr\"><is><t>Name</t></is></c></row><row r=\"2\">"
         "<c t=\"inlineStr\"><is><t>list@example.com</t></is></c></row></sheetData>"
         "</worksheet>"},
        {NULL, NULL}};
    s_expect(parts, NULL, "[[2, {\"email\": \"notes@example.com\"}]]");
    s_expect(parts, "名单", "[[2, {\"email\": \"list@example.com\"}]]");
    s_expect_error(parts, "Sheet1", 64 * MIB,
                   "no sheet named \"Sheet1\" (it has \"说明\", \"名单\")");
}

Test(xlsx, zip_bomb_stops_at_the_cap) {
    /* 3 MiB of one repeated row deflates to a few KiB. */
    size_t n = 3 * MIB;
    char *big = malloc(n + 512);
    cr_assert(big);
    strcpy(big, HDR "<worksheet " NS "><sheetData>");
    size_t o = strlen(big);
    const char *row = "<row><c t=\"inlineStr\"><is><t>x</t></is></c></row>";
    while (o + 64 < n) {
        memcpy(big + o, row, strlen(row));
        o += strlen(row);
    }
    strcpy(big + o, "</sheetData></worksheet>");
    lf_test_part_t parts[10];
    lf_test_xlsx_book(parts, big, NULL, NULL, 0);
    s_expect_error(parts, NULL, 1 * MIB, "unpacks to more than 1 MiB");
    free(big);
}

Test(xlsx, too_many_values_stop_early, .timeout = 60) {
    /* Two million and one empty shared strings: 10 MiB of XML, a few KiB packed. */
    size_t n = 2000001, o = 0;
    char *sst = malloc(n * 5 + 256);
    cr_assert(sst);
    o += (size_t)sprintf(sst, "<sst " NS ">");
    for (size_t i = 0; i < n; i++, o += 5)
        memcpy(sst + o, "<si/>", 5);
    strcpy(sst + o, "</sst>");
    lf_test_part_t parts[10];
    lf_test_xlsx_book(parts, HDR "<worksheet " NS "><sheetData/></worksheet>", sst, NULL,
                      0);
    s_expect_error(parts, NULL, 64 * MIB, "more than 2,000,000 shared strings");
    free(sst);
}

Test(xlsx, hostile_and_damaged_files) {
    lf_test_part_t parts[10];
    lf_test_xlsx_book(
        parts,
        HDR "<!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]>"
            "<worksheet " NS "><sheetData><row r=\"1\"><c t=\"inlineStr\"><is>"
            "<t>&b;</t></is></c></row></sheetData></worksheet>",
        NULL, NULL, 0);
    s_expect_error(parts, NULL, 64 * MIB, "document type declaration");
    lf_test_xlsx_book(parts,
                      HDR "<worksheet " NS
                          "><sheetData><row r=\"1\"><c t=\"s\"><v>7</v></c>"
                          "</row></sheetData></worksheet>",
                      HDR "<sst " NS "><si><t>a</t></si></sst>", NULL, 0);
    s_expect_error(parts, NULL, 64 * MIB, "shared string 7, which does not exist");
    lf_test_xlsx_book(parts,
                      HDR "<worksheet " NS
                          "><sheetData><row r=\"1\"><c r=\"ZZZ1\"><v>1</v>"
                          "</c></row></sheetData></worksheet>",
                      NULL, NULL, 0);
    s_expect_error(parts, NULL, 64 * MIB, "at most 1024 columns");
    lf_test_xlsx_book(parts, HDR "<worksheet " NS "><sheetData><row r=\"1\">", NULL, NULL,
                      0);
    s_expect_error(parts, NULL, 64 * MIB, "damaged");
    lf_test_xlsx_book(parts, HDR "<worksheet " NS "><sheetData/></worksheet>", NULL, NULL,
                      0);
    s_expect_error(parts, NULL, 64 * MIB, "the sheet is empty");
    lf_test_part_t docx[] = {{"word/document.xml", "<w/>"}, {NULL, NULL}};
    s_expect_error(docx, NULL, 64 * MIB, "xl/workbook.xml is missing");

    char why[256];
    cr_expect_null(lf_import_xlsx("name,phone\n", 11, NULL, MIB, why, sizeof why));
    cr_expect(strstr(why, "zip archive"), "%s", why);
    cr_expect_null(lf_import_xlsx("PK\x03\x04garbage", 11, NULL, MIB, why, sizeof why));
    cr_expect(strstr(why, "cannot be read"), "%s", why);
    cr_expect(lf_xls_sniff("\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1....", 12));
    cr_expect_not(lf_xls_sniff("PK\x03\x04", 4));
}
