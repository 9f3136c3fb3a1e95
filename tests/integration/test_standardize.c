/* Service tests of issue 15 against the real intake, router and PostgreSQL: phone numbers
 * judged by libphonenumber (422 with a reason, or kept and flagged on channels configured
 * so), 400 hotlines, phone_type/phone_country/flags in GET; .xlsx imports over HTTP
 * (per-row results, units, numeric phone cells, idempotent re-import, .xls refused, the
 * unpack cap); units and Excel-rounded numbers in CSV; the company key in customer
 * matching, sticky owners and the migrate backfill. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/harness.h"
#include "../support/xlsx_writer.h"

TestSuite(standardize, .fini = lf_h_fini);

#define XLSX_CT                                                                          \
    "Content-Type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#define NS "xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\""

static json_t *s_get_lead(lf_h_t *h, const char *id) {
    char path[128];
    snprintf(path, sizeof path, "/v1/leads/%s", id);
    json_t *lead = NULL;
    cr_assert_eq(lf_h_get_json(h, path, &lead), 200);
    return lead;
}

static const char *s_str(const json_t *o, const char *k) {
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "(null)";
}

/* The first field error of an answer, as "field: message". */
static char *s_first_error(const json_t *out) {
    json_t *e = json_array_get(json_object_get(out, "fields"), 0);
    char buf[512];
    snprintf(buf, sizeof buf, "%s: %s", s_str(e, "field"), s_str(e, "message"));
    return strdup(buf);
}

Test(standardize, phones_are_judged_by_libphonenumber, .timeout = 60) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 0);
    struct {
        const char *phone, *why;
    } refused[] = {
        {"142 1234 5678",
         "phone: not a valid Chinese mobile number: no network uses this prefix"},
        {"0731-1234567",
         "phone: not a valid Chinese landline: unknown area code or wrong "
         "length for it"},
        {"+1 999 555 0123", "phone: not a valid phone number for its country (no such "
                            "prefix or length)"},
        {"1.38001E+10",
         "phone: looks like a number rounded by Excel (such as "
         "1.38001E+10): its last digits are lost; format the column as text "
         "and export again"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        char body[256];
        snprintf(body, sizeof body, "{\"name\":\"测试\",\"phone\":\"%s\"}",
                 refused[i].phone);
        json_t *out = NULL;
        cr_expect_eq(lf_h_post_json(h, "/v1/leads", body, &out), 422, "%s",
                     refused[i].phone);
        char *e = s_first_error(out);
        cr_expect_str_eq(e, refused[i].why);
        free(e);
        json_decref(out);
    }
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads"), 0, "nothing stored");

    json_t *out = NULL;
    cr_assert_eq(lf_h_post_json(h, "/v1/leads",
                                "{\"company\":\"华东医疗\",\"phone\":\"400-820-8820\"}",
                                &out),
                 201);
    json_t *lead = s_get_lead(h, s_str(out, "id"));
    cr_expect_str_eq(s_str(lead, "phone"), "+864008208820");
    cr_expect_str_eq(s_str(lead, "phone_type"), "toll_free");
    cr_expect_str_eq(s_str(lead, "phone_country"), "CN");
    cr_expect_eq(json_array_size(json_object_get(lead, "flags")), 0);
    json_decref(lead);
    json_decref(out);
    cr_assert_eq(lf_h_post_json(h, "/v1/leads", "{\"phone\":\"+44 20 7946 0018\"}", &out),
                 201);
    lead = s_get_lead(h, s_str(out, "id"));
    cr_expect_str_eq(s_str(lead, "phone_type"), "fixed_line");
    cr_expect_str_eq(s_str(lead, "phone_country"), "GB");
    json_decref(lead);
    json_decref(out);
    lf_h_destroy(&h);
}

Test(standardize, a_channel_may_keep_unverified_numbers_with_a_flag, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_h_env(h, "LEADFLOW_PHONE_KEEP_UNVERIFIED", "phone,trade_show");
    lf_h_start(h, LF_H_INTAKE, 0);
    json_t *out = NULL;
    cr_assert_eq(lf_h_post_json(h, "/v1/leads",
                                "{\"channel\":\"phone\",\"phone\":\"16812345678\"}",
                                &out),
                 201);
    json_t *lead = s_get_lead(h, s_str(out, "id"));
    cr_expect_str_eq(s_str(lead, "phone"), "+8616812345678");
    cr_expect_str_eq(s_str(lead, "phone_type"), "unknown");
    cr_expect(json_is_null(json_object_get(lead, "phone_country")));
    cr_expect_str_eq(json_string_value(json_array_get(json_object_get(lead, "flags"), 0)),
                     "phone_unverified");
    json_decref(lead);
    json_decref(out);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads WHERE flags ? "
                                  "'phone_unverified'"),
                 1, "flagged leads can be found in SQL");
    /* Other channels still refuse it; text that is no number is refused everywhere. */
    cr_expect_eq(lf_h_post_json(h, "/v1/leads",
                                "{\"channel\":\"web_form\",\"phone\":\"16812345678\"}",
                                NULL),
                 422);
    cr_expect_eq(
        lf_h_post_json(h, "/v1/leads", "{\"channel\":\"phone\",\"phone\":\"abc\"}", NULL),
        422);
    lf_h_destroy(&h);

    /* A bad setting stops intake at start with a clear line (exit status 2). */
    const char *bin = getenv("LF_TEST_BIN") ? getenv("LF_TEST_BIN") : "build/san/bin";
    const char *bad[] = {"LEADFLOW_PHONE_REGION=XX", "LEADFLOW_PHONE_REGION=china",
                         "LEADFLOW_PHONE_KEEP_UNVERIFIED=phone,fax"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd,
                 "%s %s/leadflow-intake 2>&1 | grep -q 'bad configuration'", bad[i], bin);
        cr_expect_eq(system(cmd), 0, "%s did not stop intake with a clear line", bad[i]);
        snprintf(cmd, sizeof cmd, "%s %s/leadflow-intake >/dev/null 2>&1", bad[i], bin);
        int st = system(cmd);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 2, "%s: exit status %d", bad[i],
                  st);
    }
}

/* ------------------------------------------------------------ imports */

static char *s_book(const char *sheet_xml, const char *sst, size_t *len) {
    lf_test_part_t parts[10];
    lf_test_xlsx_book(parts, sheet_xml, sst, NULL, 0);
    return lf_test_xlsx(parts, len);
}

Test(standardize, xlsx_import_over_http, .timeout = 90) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_h_env(h, "LEADFLOW_XLSX_MAX_UNPACKED", "1048576");
    lf_h_start(h, LF_H_INTAKE, 0);
    const char *sst = "<sst " NS "><si><t>姓名</t></si><si><t>手机</t></si>"
                      "<si><t>公司</t></si><si><t>预算（万元）</t></si>"
                      "<si><t>王芳</t></si><si><t>華東醫療器械（上海）有限公司</t></si>"
                      "<si><t>李明</t></si><si><t>1.38001E+10</t></si></sst>";
    const char *sheet =
        "<worksheet " NS "><sheetData>"
        "<row r=\"1\"><c r=\"A1\" t=\"s\"><v>0</v></c><c r=\"B1\" t=\"s\"><v>1</v></c>"
        "<c r=\"C1\" t=\"s\"><v>2</v></c><c r=\"D1\" t=\"s\"><v>3</v></c></row>"
        "<row r=\"2\"><c r=\"A2\" t=\"s\"><v>4</v></c><c r=\"B2\"><v>13800138000</v></c>"
        "<c r=\"C2\" t=\"s\"><v>5</v></c><c r=\"D2\"><v>80</v></c></row>"
        "<row r=\"4\"><c r=\"A4\" t=\"s\"><v>6</v></c><c r=\"B4\"><v>73184567890</v></c>"
        "<c r=\"D4\" t=\"inlineStr\"><is><t>待定</t></is></c></row>"
        "<row r=\"5\"><c r=\"A5\" t=\"s\"><v>6</v></c><c r=\"B5\" "
        "t=\"s\"><v>7</v></c></row>"
        "</sheetData></worksheet>";
    size_t len;
    char *x = s_book(sheet, sst, &len);
    const char *hx[] = {XLSX_CT, NULL};
    char *b = NULL;
    cr_assert_eq(lf_h_http(h, "POST", "/v1/leads/import", hx, x, len, &b), 200, "%s", b);
    json_t *o = json_loads(b, 0, NULL);
    free(b);
    cr_expect_eq(json_integer_value(json_object_get(o, "accepted")), 2);
    cr_expect_eq(json_integer_value(json_object_get(o, "rejected")), 1);
    json_t *rows = json_object_get(o, "rows");
    cr_expect_eq(json_integer_value(json_object_get(json_array_get(rows, 1), "row")), 4);
    json_t *bad = json_array_get(rows, 2);
    cr_expect_eq(json_integer_value(json_object_get(bad, "row")), 5);
    cr_expect(strstr(s_str(json_array_get(json_object_get(bad, "errors"), 0), "message"),
                     "rounded by Excel"));
    json_decref(o);
    char *row =
        lf_h_sql(h, "SELECT channel || '|' || phone || '|' || phone_type || '|' ||"
                    " company || '|' || company_key || '|' || budget_min::bigint"
                    " FROM leads WHERE name = '王芳'");
    cr_expect_str_eq(row, "trade_show|+8613800138000|mobile|華東醫療器械(上海)有限公司|"
                          "华东医疗器械|800000");
    free(row);
    row = lf_h_sql(h,
                   "SELECT phone || '|' || phone_type || '|' || coalesce(budget_raw, '-')"
                   " FROM leads WHERE name = '李明'");
    cr_expect_str_eq(row, "+8673184567890|fixed_line|待定",
                     "the landline that lost its 0 in a number cell is recovered");
    free(row);
    /* The same workbook again: nothing new. */
    cr_assert_eq(lf_h_http(h, "POST", "/v1/leads/import", hx, x, len, &b), 200);
    cr_expect(strstr(b, "\"duplicate\""), "%s", b);
    free(b);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads"), 2);
    /* Sent as bytes, recognised by its signature; a sheet that does not exist is 400. */
    const char *ho[] = {"Content-Type: application/octet-stream", NULL};
    cr_expect_eq(lf_h_http(h, "POST", "/v1/leads/import?sheet=Sheet9", ho, x, len, &b),
                 400);
    cr_expect(strstr(b, "no sheet named \\\"Sheet9\\\""), "%s", b);
    free(b);
    cr_expect_eq(lf_h_http(h, "POST",
                           "/v1/leads/import?sheet=%E5%AE%A2%E6%88%B7%E5%90%8D%E5%8D%95",
                           ho, x, len, NULL),
                 200);
    /* A client that labels every spreadsheet text/csv still gets its workbook read. */
    const char *hcsv[] = {"Content-Type: text/csv", NULL};
    cr_expect_eq(lf_h_http(h, "POST", "/v1/leads/import", hcsv, x, len, &b), 200);
    cr_expect(strstr(b, "\"duplicate\""), "%s", b);
    free(b);
    free(x);

    /* Old .xls: 415 with what to do. */
    const char xls[] = "\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1 rest of a compound document";
    const char *hxls[] = {"Content-Type: application/vnd.ms-excel", NULL};
    cr_expect_eq(lf_h_http(h, "POST", "/v1/leads/import", hxls, xls, sizeof xls - 1, &b),
                 415);
    cr_expect(strstr(b, "save it as .xlsx"), "%s", b);
    free(b);
    cr_expect_eq(lf_h_http(h, "POST", "/v1/leads/import", hx, xls, sizeof xls - 1, NULL),
                 415);

    /* A zip bomb stops at LEADFLOW_XLSX_MAX_UNPACKED (1 MiB here). */
    size_t n = 4u << 20;
    char *big = malloc(n + 256);
    strcpy(big, "<worksheet " NS "><sheetData>");
    size_t off = strlen(big);
    const char *r = "<row><c t=\"inlineStr\"><is><t>x</t></is></c></row>";
    while (off + 64 < n) {
        memcpy(big + off, r, strlen(r));
        off += strlen(r);
    }
    strcpy(big + off, "</sheetData></worksheet>");
    x = s_book(big, NULL, &len);
    free(big);
    cr_expect_lt(len, 200000, "the bomb is small when packed (%zu bytes)", len);
    cr_expect_eq(lf_h_http(h, "POST", "/v1/leads/import", hx, x, len, &b), 400);
    cr_expect(strstr(b, "unpacks to more than 1 MiB"), "%s", b);
    free(b);
    free(x);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads"), 2);
    lf_h_destroy(&h);
}

Test(standardize, csv_units_and_rounded_numbers, .timeout = 60) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 0);
    const char *csv = "姓名,手机,预算（万元）\n"
                      "张伟,13800138000,80\n"
                      "李娜,1.38001E+10,50\n"
                      "王强,13900139000,30万\n";
    const char *hd[] = {"Content-Type: text/csv", NULL};
    char *b = NULL;
    cr_assert_eq(lf_h_http(h, "POST", "/v1/leads/import", hd, csv, strlen(csv), &b), 200);
    json_t *o = json_loads(b, 0, NULL);
    free(b);
    cr_expect_eq(json_integer_value(json_object_get(o, "accepted")), 2);
    json_t *err = json_array_get(
        json_object_get(json_array_get(json_object_get(o, "rows"), 1), "errors"), 0);
    cr_expect(strstr(s_str(err, "message"), "rounded by Excel"), "%s",
              s_str(err, "message"));
    json_decref(o);
    cr_expect_eq(lf_h_sql_long(h, "SELECT budget_min FROM leads WHERE name = '张伟'"),
                 800000, "80 in a 万元 column is 800,000, not 80");
    cr_expect_eq(lf_h_sql_long(h, "SELECT budget_min FROM leads WHERE name = '王强'"),
                 300000);
    const char *nd = "{\"电话\":\"13700137000\",\"预算（万元）\":12}\n";
    const char *hn[] = {"Content-Type: application/x-ndjson", NULL};
    cr_assert_eq(lf_h_http(h, "POST", "/v1/leads/import", hn, nd, strlen(nd), NULL), 200);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT budget_min FROM leads WHERE phone = '+8613700137000'"),
        120000);
    lf_h_destroy(&h);
}

/* ------------------------------------------------------------ companies */

Test(standardize, company_key_links_customers_and_keeps_sticky_owners, .timeout = 120) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE | LF_H_ROUTER, 1);
    /* A known customer, keyed as intake keys companies. */
    free(lf_h_sql(h, "INSERT INTO customers (key, company, owner) VALUES"
                     " ('company:华东医疗器械', '华东医疗器械有限公司', 'wang.fang')"));
    json_t *out = NULL;
    cr_assert_eq(
        lf_h_post_json(h, "/v1/leads",
                       "{\"name\":\"甲\",\"company\":\"華東醫療器械（上海）有限公司\","
                       "\"phone\":\"13800138001\",\"industry\":\"medical\","
                       "\"region\":\"east\"}",
                       &out),
        201);
    char q[512];
    snprintf(q, sizeof q,
             "SELECT c.company FROM leads l JOIN customers c ON c.id = l.customer_id"
             " WHERE l.id = '%s'",
             s_str(out, "id"));
    char *v = lf_h_sql(h, q);
    cr_expect_str_eq(v, "华东医疗器械有限公司", "the variant is linked to the customer");
    free(v);
    snprintf(q, sizeof q,
             "SELECT count(*) FROM leads WHERE id = '%s' AND owner IS NOT NULL",
             s_str(out, "id"));
    cr_assert(lf_h_wait_sql(h, q, "1", 30000), "the first lead was not assigned");
    snprintf(q, sizeof q, "SELECT owner FROM leads WHERE id = '%s'", s_str(out, "id"));
    char *first_owner = lf_h_sql(h, q);
    json_decref(out);

    /* The same company written another way stays with that owner. */
    cr_assert_eq(
        lf_h_post_json(h, "/v1/leads",
                       "{\"name\":\"乙\",\"company\":\"上海华东医疗器械有限公司\","
                       "\"phone\":\"13900139001\",\"industry\":\"medical\","
                       "\"region\":\"east\"}",
                       &out),
        201);
    snprintf(q, sizeof q,
             "SELECT count(*) FROM leads WHERE id = '%s' AND owner IS NOT NULL",
             s_str(out, "id"));
    cr_assert(lf_h_wait_sql(h, q, "1", 30000), "the second lead was not assigned");
    snprintf(q, sizeof q,
             "SELECT owner || '|' || (assignment_reason LIKE '%%already owns this "
             "customer%%')::text FROM leads WHERE id = '%s'",
             s_str(out, "id"));
    v = lf_h_sql(h, q);
    char want[128];
    snprintf(want, sizeof want, "%s|true", first_owner);
    cr_expect_str_eq(v, want);
    free(v);
    char *second = strdup(s_str(out, "id"));
    json_decref(out);
    free(first_owner);
    /* Two leads, two records: the company key never merges leads. */
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads"), 2);

    /* A corrected company gets its own key (PATCH /v1/leads/{id}). */
    char path[128];
    snprintf(path, sizeof path, "/v1/leads/%s", second);
    const char *hj[] = {"Content-Type: application/json", NULL};
    const char *patch = "{\"company\":\"華南醫療器械（廣州）有限公司\"}";
    cr_expect_eq(lf_h_http(h, "PATCH", path, hj, patch, strlen(patch), NULL), 200);
    snprintf(q, sizeof q,
             "SELECT company || '|' || company_key FROM leads WHERE id = '%s'", second);
    v = lf_h_sql(h, q);
    cr_expect_str_eq(v, "華南醫療器械(廣州)有限公司|华南医疗器械");
    free(v);
    free(second);
    lf_h_destroy(&h);
}

Test(standardize, migrate_backfills_company_keys, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    /* Rows as an older intake wrote them: no company_key; a customer keyed the old way.
     */
    free(lf_h_sql(
        h, "INSERT INTO leads (id, channel, company, phone) VALUES"
           " ('00000000-0000-7000-8000-000000000001', 'api', '上海华东医疗器械有限公司', "
           "'+8613800138000'),"
           " ('00000000-0000-7000-8000-000000000002', 'api', NULL, '+8613800138001')"));
    free(lf_h_sql(h, "INSERT INTO customers (key, company) VALUES"
                     " ('company:華東醫療器械有限公司', '華東醫療器械有限公司')"));
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "LEADFLOW_DATABASE_URL='%s' LEADFLOW_MIGRATIONS_DIR=db/migrations "
             "%s/leadflow-migrate >/dev/null 2>&1",
             lf_h_db_url(h),
             getenv("LF_TEST_BIN") ? getenv("LF_TEST_BIN") : "build/san/bin");
    cr_assert_eq(system(cmd), 0, "leadflow-migrate failed");
    char *v =
        lf_h_sql(h, "SELECT string_agg(id || '=' || coalesce(company_key, 'NULL'), ','"
                    " ORDER BY id) FROM leads");
    cr_expect_str_eq(v, "00000000-0000-7000-8000-000000000001=华东医疗器械,"
                        "00000000-0000-7000-8000-000000000002=NULL");
    free(v);
    v = lf_h_sql(h, "SELECT key FROM customers");
    cr_expect_str_eq(v, "company:华东医疗器械");
    free(v);
    cr_assert_eq(system(cmd), 0, "a second run changes nothing and succeeds");
    lf_h_destroy(&h);
}

/* A large workbook is read as a stream, row by row (xlsx.c hands each row on as it is
 * read; nothing holds the sheet's rows): 6,000 contacts under a title merged over the
 * header's width, each company merged down over its three contacts' rows (2,000 ranges,
 * listed after the cells, as Excel writes them), phones in number cells. Every row is
 * taken, each contact with its group's company, the title row not taken for the header.
 * Intake's memory for such a file is measured by bench/import_memory.sh
 * (LF_BENCH_FORMAT=xlsx; docs/intake.md). */
Test(standardize, a_large_xlsx_is_read_row_by_row, .timeout = 240) {
    enum { N = 6000 };
    lf_h_t *h = lf_h_new(0, 0);
    lf_h_env(h, "LEADFLOW_IMPORT_WINDOW", "2048");
    lf_h_start(h, LF_H_INTAKE, 0);
    size_t cap = (size_t)N * 260 + 4096 + (size_t)N / 3 * 40, o = 0;
    char *sheet = malloc(cap);
    cr_assert(sheet);
    o += (size_t)snprintf(
        sheet + o, cap - o,
        "<worksheet " NS "><sheetData>"
        "<row r=\"1\"><c r=\"A1\" t=\"inlineStr\"><is><t>2026 上海医疗展"
        " 客户名单</t></is></c></row>"
        "<row r=\"2\"><c r=\"A2\" t=\"inlineStr\"><is><t>姓名</t></is></c>"
        "<c r=\"B2\" t=\"inlineStr\"><is><t>手机</t></is></c>"
        "<c r=\"C2\" t=\"inlineStr\"><is><t>公司</t></is></c></row>");
    for (int i = 0; i < N; i++) {
        int r = i + 3;
        o += (size_t)snprintf(sheet + o, cap - o,
                              "<row r=\"%d\"><c r=\"A%d\" t=\"inlineStr\"><is><t>客户%05d"
                              "</t></is></c><c r=\"B%d\"><v>139%08d</v></c>",
                              r, r, i, r, i);
        if (i % 3 == 0) /* the company, in the first row of its group only */
            o += (size_t)snprintf(
                sheet + o, cap - o,
                "<c r=\"C%d\" t=\"inlineStr\"><is><t>公司%04d</t></is></c>", r, i / 3);
        o += (size_t)snprintf(sheet + o, cap - o, "</row>");
    }
    o += (size_t)snprintf(
        sheet + o, cap - o,
        "</sheetData><mergeCells count=\"%d\"><mergeCell ref=\"A1:C1\"/>", N / 3 + 1);
    for (int g = 0; g < N / 3; g++)
        o += (size_t)snprintf(sheet + o, cap - o, "<mergeCell ref=\"C%d:C%d\"/>",
                              3 * g + 3, 3 * g + 5);
    o += (size_t)snprintf(sheet + o, cap - o, "</mergeCells></worksheet>");
    cr_assert_lt(o, cap);
    size_t len;
    char *x = s_book(sheet, NULL, &len);
    free(sheet);
    const char *hx[] = {XLSX_CT, NULL};
    char *b = NULL;
    cr_assert_eq(lf_h_http(h, "POST", "/v1/leads/import", hx, x, len, &b), 200, "%.300s",
                 b ? b : "");
    json_t *a = json_loads(b, 0, NULL);
    free(b);
    cr_expect_eq(json_integer_value(json_object_get(a, "accepted")), N);
    cr_expect_eq(json_integer_value(json_object_get(a, "rejected")), 0);
    json_t *rows = json_object_get(a, "rows");
    cr_expect_eq(json_integer_value(json_object_get(json_array_get(rows, 0), "row")), 3);
    cr_expect_eq(json_integer_value(json_object_get(json_array_get(rows, N - 1), "row")),
                 N + 2);
    json_decref(a);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads"), N);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads WHERE company ="
                                  " '公司' || lpad(((substr(name, 3)::int) / 3)::text, 4,"
                                  " '0')"),
                 N, "every contact has its group's company");
    char *one = lf_h_sql(h, "SELECT company || '|' || phone FROM leads WHERE name ="
                            " '客户04000'");
    cr_expect_str_eq(one, "公司1333|+8613900004000");
    free(one);
    free(x);
    lf_h_destroy(&h);
}
