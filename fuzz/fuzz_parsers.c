/* fuzz_parsers.c: libFuzzer target over every intake body parser.
 *
 * The first input byte picks the parser (form, JSON, CSV as UTF-8, CSV as GB18030,
 * NDJSON, Content-Type, header mapping) so that one corpus covers them all; the rest is
 * the body. CSV and NDJSON are also fed to the streaming parser in pieces of 1-9 bytes
 * (the first byte again) and must give what the whole body gives. Results are walked and
 * freed so that ASan sees leaks and bad reads on every path. Build and run (from the
 * repository root): clang -g -O1 -fsanitize=fuzzer,address,undefined -Iservices/intake
 * fuzz/fuzz_parsers.c \
 *     services/intake/parse.c services/intake/csv_import.c services/intake/mapping.c \
 *     -ljansson -lcsv -lunistring -o build/fuzz_parsers
 *   ./build/fuzz_parsers -max_total_time=60 -max_len=4096 */
#include "csv_import.h"
#include "mapping.h"
#include "parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void s_walk_import(lf_import_t *imp) {
    for (size_t i = 0; i < lf_import_rows(imp) + 1; i++) {
        const json_t *obj;
        const char *err;
        size_t line;
        int rc = lf_import_row(imp, i, &obj, &err, &line);
        if (rc == 0 && (!obj || err || line == 0))
            abort();
        if (rc != 0 && i < lf_import_rows(imp) && (obj || !err || line == 0))
            abort();
        if (obj) {
            char *s = json_dumps(obj, 0);
            free(s);
        }
    }
    lf_import_destroy(&imp);
}

/* The streaming parser's rows, compared one by one with the whole body's. */
typedef struct {
    const lf_import_t *whole;
    size_t next;
} s_cmp_t;

static void s_cmp_row(void *arg, size_t line, const json_t *obj, const char *err) {
    s_cmp_t *c = arg;
    if (!c->whole) /* a file error: the rows handed out before it are dropped */
        return;
    const json_t *wobj;
    const char *werr;
    size_t wline;
    int rc = lf_import_row(c->whole, c->next++, &wobj, &werr, &wline);
    if (line != wline || (rc == 0) != (obj != NULL) || (obj && !json_equal(obj, wobj)) ||
        (err && (!werr || strcmp(err, werr))))
        abort();
}

/* The same body fed in pieces of `piece` bytes must give the same rows and the same
 * file-level reason as the whole (a character, a CRLF or a quote split anywhere). */
static void s_pieces(int ndjson, const char *charset, const char *buf, size_t len,
                     size_t piece) {
    char why[256] = "", why2[256] = "";
    lf_import_t *whole = ndjson ? lf_import_ndjson(buf, len, why, sizeof why)
                                : lf_import_csv(buf, len, charset, why, sizeof why);
    s_cmp_t c = {whole, 0};
    lf_import_parser_t *p =
        lf_import_parser_new(ndjson, charset, s_cmp_row, &c, why2, sizeof why2);
    if (!p)
        abort();
    for (size_t off = 0; off < len; off += piece)
        lf_import_parser_feed(p, buf + off, len - off < piece ? len - off : piece);
    int rc = lf_import_parser_finish(p, why2, sizeof why2);
    if (whole ? rc != 0 || c.next != lf_import_rows(whole)
              : rc != -1 || strcmp(why, why2) != 0)
        abort();
    lf_import_parser_destroy(&p);
    lf_import_destroy(&whole);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    /* Copy into an exact-size heap buffer so that any read past `len` is caught. */
    char *buf = malloc(len ? len : 1);
    if (len)
        memcpy(buf, body, len);
    char why[256];
    const char *cwhy;
    switch (data[0] % 7) {
    case 0: {
        json_t *o = lf_parse_form(buf, len, &cwhy);
        json_decref(o);
        break;
    }
    case 1: {
        json_t *o = lf_parse_json_object(buf, len, &cwhy, why, sizeof why);
        if (o && !json_is_object(o))
            abort();
        json_decref(o);
        break;
    }
    case 2:
        s_walk_import(lf_import_csv(buf, len, "", why, sizeof why));
        s_pieces(0, "", buf, len, 1 + data[0] / 7 % 9);
        break;
    case 3:
        s_walk_import(lf_import_csv(buf, len, "gb18030", why, sizeof why));
        s_pieces(0, "gb18030", buf, len, 1 + data[0] / 7 % 9);
        break;
    case 4:
        s_walk_import(lf_import_ndjson(buf, len, why, sizeof why));
        s_pieces(1, "", buf, len, 1 + data[0] / 7 % 9);
        break;
    case 5:
    case 6: {
        char *z = malloc(len + 1);
        memcpy(z, buf, len);
        z[len] = '\0';
        if (data[0] % 7 == 5) {
            char media[64], charset[32];
            lf_parse_content_type(z, media, sizeof media, charset, sizeof charset);
        } else {
            /* Header mapping with its unit, and the unit applied to the header itself as
               if it were a cell: a unit is never longer than LF_UNIT_SIZE, and a value
               changes only by gaining the unit at its end. */
            char unit[LF_UNIT_SIZE], out[256];
            const char *f = lf_map_header_unit(z, unit, sizeof unit);
            if (f != lf_map_header(z) || strlen(unit) >= LF_UNIT_SIZE ||
                (unit[0] && strcmp(f, "budget") != 0))
                abort();
            const char *v = lf_apply_unit(z, unit[0] ? unit : "万元", out, sizeof out);
            if (v != z && (strncmp(v, z, strlen(z)) != 0 || strlen(v) <= strlen(z)))
                abort();
        }
        free(z);
        break;
    }
    }
    free(buf);
    return 0;
}
