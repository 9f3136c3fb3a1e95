/* mapping.c: from other people's field names to leadflow's canonical lead fields.
 *
 * Spreadsheet headers arrive in whatever form a trade-show organiser typed them: Chinese
 * or English, mixed case, with full-width punctuation from a Chinese input method and
 * notes such as "预算（万元）". Rather than a growing list of spellings, a header is
 * first folded to one plain form (full-width ASCII to ASCII, lower case, trimmed, unit
 * note in (), [] or 【】 dropped, spaces and dashes to '_') and only then looked up in a
 * small synonym table.
 *
 * Partner JSON is mapped by configuration, not code: config/channels.json names, per
 * partner, the path of each canonical field inside the partner's document. Paths are
 * compiled once at load time so that a typo in the configuration stops the service at
 * start instead of silently dropping a field on every request. Whatever a mapping does
 * not consume is kept in "extra", so no partner data is lost because nobody mapped it
 * yet. */
#include "mapping.h"

#include "lf/normalize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Out of memory is not a condition this service can recover from (the allocation rule of
 * lf/util.h). */
#define s_oom()                                                                          \
    do {                                                                                 \
        fprintf(stderr, "FATAL out of memory at %s:%d\n", __FILE__, __LINE__);           \
        abort();                                                                         \
    } while (0)

/* The longest header we bother to fold; anything longer is not a column name. */
#define S_HEADER_MAX 256

/* The largest array index a path may use; larger indexes are configuration mistakes. */
#define S_INDEX_MAX 100000

static const char *const s_canonical[] = {
    "channel",        "source", "name",     "company",     "email",
    "phone",          "need",   "budget",   "currency",    "urgency",
    "decision_maker", "region", "industry", "external_id",
};

static const char *const s_channels[] = {"web_form", "phone", "trade_show",
                                         "partner",  "api",   "referral"};

/* Synonyms after folding (see s_fold): lower-case ASCII, '_' for spaces and dashes. */
static const struct {
    const char *synonym;
    const char *field;
} s_synonyms[] = {
    {"姓名", "name"},
    {"联系人", "name"},
    {"联系人姓名", "name"},
    {"客户姓名", "name"},
    {"name", "name"},
    {"contact", "name"},
    {"contact_name", "name"},
    {"full_name", "name"},
    {"公司", "company"},
    {"公司名称", "company"},
    {"单位", "company"},
    {"单位名称", "company"},
    {"企业名称", "company"},
    {"company", "company"},
    {"company_name", "company"},
    {"organization", "company"},
    {"手机", "phone"},
    {"电话", "phone"},
    {"手机号", "phone"},
    {"手机号码", "phone"},
    {"联系电话", "phone"},
    {"电话号码", "phone"},
    {"联系方式", "phone"},
    {"phone", "phone"},
    {"mobile", "phone"},
    {"tel", "phone"},
    {"telephone", "phone"},
    {"phone_number", "phone"},
    {"邮箱", "email"},
    {"电子邮件", "email"},
    {"电子邮箱", "email"},
    {"邮件", "email"},
    {"email", "email"},
    {"e_mail", "email"},
    {"mail", "email"},
    {"预算", "budget"},
    {"预算金额", "budget"},
    {"budget", "budget"},
    {"需求", "need"},
    {"需求描述", "need"},
    {"need", "need"},
    {"requirement", "need"},
    {"requirements", "need"},
    {"紧急程度", "urgency"},
    {"紧急度", "urgency"},
    {"urgency", "urgency"},
    {"是否决策人", "decision_maker"},
    {"决策人", "decision_maker"},
    {"decision_maker", "decision_maker"},
    {"is_decision_maker", "decision_maker"},
    {"地区", "region"},
    {"区域", "region"},
    {"省份", "region"},
    {"所在地区", "region"},
    {"region", "region"},
    {"province", "region"},
    {"行业", "industry"},
    {"所属行业", "industry"},
    {"industry", "industry"},
    {"来源", "source"},
    {"线索来源", "source"},
    {"source", "source"},
    {"编号", "external_id"},
    {"外部编号", "external_id"},
    {"external_id", "external_id"},
    {"id", "external_id"},
    {"币种", "currency"},
    {"货币", "currency"},
    {"currency", "currency"},
    {"渠道", "channel"},
    {"channel", "channel"},
};

/* One step of a compiled path: an object key, or (key == NULL) an array index. */
typedef struct {
    char *key;  /* object member name, or NULL for an index step */
    size_t idx; /* array index when key is NULL */
} s_step_t;

typedef struct {
    char *field;             /* canonical field name this path fills */
    s_step_t *steps;         /* compiled path */
    size_t nsteps;           /* number of steps, at least 1 */
    char unit[LF_UNIT_SIZE]; /* budget only: the unit in the path's last key, or "" */
} s_field_t;

typedef struct {
    char *name;        /* partner name as used in the URL or API key */
    char *channel;     /* channel for every lead of this partner */
    char *source;      /* default source when the document maps none */
    s_field_t *fields; /* compiled field paths */
    size_t nfields;    /* number of entries in fields */
} s_partner_t;

struct lf_mapping {
    s_partner_t *partners; /* configured partners */
    size_t npartners;      /* number of entries in partners */
    json_t *numbers;       /* calls.numbers: E.164 -> {source, campaign}; owned */
};

static char *s_strdup(const char *s) {
    char *d = strdup(s);
    if (!d)
        s_oom();
    return d;
}

int lf_is_canonical_field(const char *name) {
    if (!name)
        return 0;
    for (size_t i = 0; i < sizeof s_canonical / sizeof *s_canonical; i++)
        if (strcmp(name, s_canonical[i]) == 0)
            return 1;
    return 0;
}

/* Decodes one UTF-8 sequence at s (n bytes available). Returns its length, or 0 when the
 * bytes are not well-formed UTF-8, which makes the whole header unmappable. */
static size_t s_utf8_decode(const unsigned char *s, size_t n, unsigned *cp) {
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t len;
    unsigned min;
    if ((s[0] & 0xE0) == 0xC0) {
        len = 2, min = 0x80, *cp = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3, min = 0x800, *cp = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        len = 4, min = 0x10000, *cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (s[i] & 0x3F);
    }
    if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF))
        return 0;
    return len;
}

/* Folds a header into `out` (see the file comment). Returns 0, or -1 when the header is
 * too long or not UTF-8. */
static int s_fold(const char *header, char *out, size_t outsz) {
    const unsigned char *s = (const unsigned char *)header;
    size_t n = strlen(header), o = 0;
    if (n >= S_HEADER_MAX)
        return -1;
    for (size_t i = 0; i < n;) {
        unsigned cp;
        size_t l = s_utf8_decode(s + i, n - i, &cp);
        if (l == 0)
            return -1;
        /* A Chinese input method types full-width ASCII; U+3000 and NBSP are spaces. */
        if (cp >= 0xFF01 && cp <= 0xFF5E)
            cp -= 0xFEE0;
        else if (cp == 0x3000 || cp == 0xA0)
            cp = ' ';
        if (cp < 0x80) {
            char c = (char)cp;
            if (c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            if (c == '\t' || c == '\r' || c == '\n')
                c = ' ';
            if (o + 1 >= outsz)
                return -1;
            out[o++] = c;
        } else {
            if (o + l >= outsz)
                return -1;
            memcpy(out + o, s + i, l);
            o += l;
        }
        i += l;
    }
    out[o] = '\0';

    /* Trim, then drop decorations at the end ("*", ":", "(万元)") until none is left. */
    for (;;) {
        size_t start = 0;
        while (out[start] == ' ')
            start++;
        if (start)
            memmove(out, out + start, strlen(out + start) + 1);
        o = strlen(out);
        while (o > 0 && out[o - 1] == ' ')
            out[--o] = '\0';
        if (o > 0 && (out[o - 1] == '*' || out[o - 1] == ':')) {
            out[--o] = '\0';
            continue;
        }
        if (o > 0 && out[0] == '*') {
            out[0] = ' ';
            continue;
        }
        if (o > 1 && (out[o - 1] == ')' || out[o - 1] == ']')) {
            char *open = strrchr(out, out[o - 1] == ')' ? '(' : '[');
            if (open && open != out) {
                *open = '\0';
                continue;
            }
        }
        static const char close_cjk[] = "】", open_cjk[] = "【";
        if (o > strlen(close_cjk) && !strcmp(out + o - strlen(close_cjk), close_cjk)) {
            char *open = NULL;
            for (char *q = out; (q = strstr(q, open_cjk)); q++)
                open = q;
            if (open && open != out) {
                *open = '\0';
                continue;
            }
        }
        break;
    }
    /* "Decision Maker", "decision-maker" and "decision_maker" are one name. */
    size_t w = 0;
    for (size_t r = 0; out[r]; r++) {
        char c = out[r] == ' ' || out[r] == '-' ? '_' : out[r];
        if (c == '_' && w > 0 && out[w - 1] == '_')
            continue;
        out[w++] = c;
    }
    out[w] = '\0';
    return 0;
}

const char *lf_map_header(const char *header) {
    char folded[S_HEADER_MAX * 2];
    if (!header || s_fold(header, folded, sizeof folded) != 0 || !folded[0])
        return NULL;
    for (size_t i = 0; i < sizeof s_synonyms / sizeof *s_synonyms; i++)
        if (strcmp(folded, s_synonyms[i].synonym) == 0)
            return s_synonyms[i].field;
    return NULL;
}

/* The text of the last bracket group of a header ("预算（万元）" -> "万元"), brackets of
   either width, with a "单位:" (unit:) label dropped. Returns 0, or -1 when there is
   none. */
static int s_bracket_note(const char *header, char *note, size_t notesz) {
    static const struct {
        const char *open, *close;
    } pairs[] = {{"(", ")"}, {"（", "）"}, {"[", "]"}, {"【", "】"}};
    size_t n = strlen(header);
    while (n > 0 &&
           (header[n - 1] == ' ' || header[n - 1] == '*' || header[n - 1] == ':'))
        n--;
    for (size_t p = 0; p < sizeof pairs / sizeof *pairs; p++) {
        size_t cl = strlen(pairs[p].close);
        if (n < cl || memcmp(header + n - cl, pairs[p].close, cl) != 0)
            continue;
        const char *open = NULL;
        for (const char *q = header; (q = strstr(q, pairs[p].open)) && q < header + n;
             q++)
            open = q;
        if (!open)
            return -1;
        const char *b = open + strlen(pairs[p].open), *e = header + n - cl;
        static const char *const labels[] = {"单位:", "单位：", "unit:", "Unit:", "单位"};
        for (size_t l = 0; l < sizeof labels / sizeof *labels; l++)
            if ((size_t)(e - b) > strlen(labels[l]) &&
                !strncmp(b, labels[l], strlen(labels[l]))) {
                b += strlen(labels[l]);
                break;
            }
        while (b < e && *b == ' ')
            b++;
        while (e > b && e[-1] == ' ')
            e--;
        if (e == b || (size_t)(e - b) >= notesz)
            return -1;
        memcpy(note, b, (size_t)(e - b));
        note[e - b] = '\0';
        return 0;
    }
    return -1;
}

/* Writes the unit of amount in brackets at the end of `name` into `unit`, or "". A unit
   is whatever the budget parser reads after a plain number. */
static void s_unit_of(const char *name, char *unit, size_t unitsz) {
    char note[LF_UNIT_SIZE];
    unit[0] = '\0';
    if (s_bracket_note(name, note, sizeof note) != 0)
        return;
    char probe[LF_UNIT_SIZE + 4];
    snprintf(probe, sizeof probe, "1%s", note);
    lf_budget_t b;
    if (lf_norm_budget(probe, NULL, &b, NULL) == 0 && b.has_min && b.has_max &&
        b.min == b.max && strlen(note) < unitsz)
        snprintf(unit, unitsz, "%s", note);
}

const char *lf_map_header_unit(const char *header, char *unit, size_t unitsz) {
    if (unit && unitsz)
        unit[0] = '\0';
    const char *field = lf_map_header(header);
    if (field && !strcmp(field, "budget") && unit && unitsz)
        s_unit_of(header, unit, unitsz);
    return field;
}

/* 1 when `s` is a plain number: digits with thousands commas and at most one decimal
   point, spaces around. */
static int s_plain_number(const char *s) {
    while (*s == ' ')
        s++;
    size_t digits = 0;
    int dot = 0;
    for (; *s && *s != ' '; s++) {
        if (*s >= '0' && *s <= '9')
            digits++;
        else if (*s == '.' && !dot)
            dot = 1;
        else if (*s != ',' || digits == 0)
            return 0;
    }
    while (*s == ' ')
        s++;
    return digits > 0 && *s == '\0';
}

const char *lf_apply_unit(const char *value, const char *unit, char *out, size_t outsz) {
    if (!value || !unit || !unit[0] || !s_plain_number(value))
        return value;
    int n = snprintf(out, outsz, "%s%s", value, unit);
    return n > 0 && (size_t)n < outsz ? out : value;
}

/* Compiles "a.b[0][2].c" into steps. Returns 0, or -1 with `err` on bad syntax. */
static int s_compile_path(const char *path, s_step_t **steps_p, size_t *n_p, char *err,
                          size_t errsz) {
    size_t cap = 4, n = 0;
    s_step_t *steps = calloc(cap, sizeof *steps);
    if (!steps)
        s_oom();
    const char *p = path;
    int need_name = 1;
    while (*p) {
        if (n + 1 >= cap) {
            cap *= 2;
            steps = realloc(steps, cap * sizeof *steps);
            if (!steps)
                s_oom();
        }
        if (need_name) {
            size_t len = strcspn(p, ".[]");
            if (len == 0)
                goto bad;
            steps[n].key = strndup(p, len);
            if (!steps[n].key)
                s_oom();
            n++;
            p += len;
            need_name = 0;
        } else if (*p == '[') {
            p++;
            size_t idx = 0, digits = 0;
            while (*p >= '0' && *p <= '9') {
                idx = idx * 10 + (size_t)(*p - '0');
                if (++digits > 6 || idx > S_INDEX_MAX)
                    goto bad;
                p++;
            }
            if (digits == 0 || *p != ']')
                goto bad;
            p++;
            steps[n].key = NULL;
            steps[n].idx = idx;
            n++;
        } else if (*p == '.') {
            p++;
            need_name = 1;
        } else {
            goto bad;
        }
    }
    if (n == 0 || need_name)
        goto bad;
    *steps_p = steps;
    *n_p = n;
    return 0;
bad:
    snprintf(err, errsz, "bad field path \"%s\" (use dotted keys and [n] indexes)", path);
    for (size_t i = 0; i < n; i++)
        free(steps[i].key);
    free(steps);
    return -1;
}

/* Follows the first `upto` steps of a path. Borrowed result, or NULL when a step is
 * missing or the container has the wrong type. */
static json_t *s_resolve(const json_t *doc, const s_step_t *steps, size_t upto) {
    json_t *cur = (json_t *)doc;
    for (size_t i = 0; i < upto && cur; i++)
        cur = steps[i].key
                  ? (json_is_object(cur) ? json_object_get(cur, steps[i].key) : NULL)
                  : (json_is_array(cur) ? json_array_get(cur, steps[i].idx) : NULL);
    return cur;
}

static int s_is_scalar(const json_t *v) {
    return json_is_string(v) || json_is_number(v) || json_is_boolean(v);
}

static int s_is_empty_container(const json_t *v) {
    if (json_is_object(v))
        return json_object_size(v) == 0;
    if (!json_is_array(v))
        return 0;
    for (size_t i = 0; i < json_array_size(v); i++)
        if (!json_is_null(json_array_get(v, i)))
            return 0;
    return 1;
}

/* Removes the leaf at the end of `steps` from `extra` (a copy of the input), then removes
 * every container on the way up that this left empty. Array elements become null instead
 * of being deleted so that the indexes of their siblings keep their meaning. */
static void s_consume(json_t *extra, const s_step_t *steps, size_t nsteps) {
    for (size_t k = nsteps; k > 0; k--) {
        json_t *parent = s_resolve(extra, steps, k - 1);
        if (!parent)
            return;
        if (k < nsteps && !s_is_empty_container(s_resolve(extra, steps, k)))
            return;
        if (steps[k - 1].key && json_is_object(parent))
            json_object_del(parent, steps[k - 1].key);
        else if (!steps[k - 1].key && json_is_array(parent))
            json_array_set_new(parent, steps[k - 1].idx, json_null());
        else
            return;
    }
}

static void s_partner_free(s_partner_t *p) {
    for (size_t i = 0; i < p->nfields; i++) {
        for (size_t j = 0; j < p->fields[i].nsteps; j++)
            free(p->fields[i].steps[j].key);
        free(p->fields[i].steps);
        free(p->fields[i].field);
    }
    free(p->fields);
    free(p->name);
    free(p->channel);
    free(p->source);
}

static int s_valid_channel(const char *c) {
    for (size_t i = 0; i < sizeof s_channels / sizeof *s_channels; i++)
        if (strcmp(c, s_channels[i]) == 0)
            return 1;
    return 0;
}

static int s_load_partner(s_partner_t *p, const char *name, const json_t *def, char *err,
                          size_t errsz) {
    memset(p, 0, sizeof *p);
    p->name = s_strdup(name);
    if (!json_is_object(def)) {
        snprintf(err, errsz, "partners.%s must be an object", name);
        return -1;
    }
    json_t *ch = json_object_get(def, "channel"), *src = json_object_get(def, "source");
    json_t *fields = json_object_get(def, "fields");
    if (ch && (!json_is_string(ch) || !s_valid_channel(json_string_value(ch)))) {
        snprintf(err, errsz, "partners.%s.channel must be one of the API channels", name);
        return -1;
    }
    if (src && (!json_is_string(src) || json_string_length(src) == 0)) {
        snprintf(err, errsz, "partners.%s.source must be a non-empty string", name);
        return -1;
    }
    if (fields && !json_is_object(fields)) {
        snprintf(err, errsz, "partners.%s.fields must be an object", name);
        return -1;
    }
    p->channel = s_strdup(ch ? json_string_value(ch) : "partner");
    p->source = s_strdup(src ? json_string_value(src) : name);
    size_t nf = fields ? json_object_size(fields) : 0;
    p->fields = calloc(nf ? nf : 1, sizeof *p->fields);
    if (!p->fields)
        s_oom();
    const char *field;
    json_t *path;
    json_object_foreach((json_t *)fields, field, path) {
        if (!lf_is_canonical_field(field) || strcmp(field, "channel") == 0) {
            snprintf(err, errsz,
                     "partners.%s.fields: \"%s\" is not a mappable lead field", name,
                     field);
            return -1;
        }
        if (!json_is_string(path)) {
            snprintf(err, errsz, "partners.%s.fields.%s must be a path string", name,
                     field);
            return -1;
        }
        s_field_t *f = &p->fields[p->nfields];
        if (s_compile_path(json_string_value(path), &f->steps, &f->nsteps, err, errsz) !=
            0)
            return -1;
        f->field = s_strdup(field);
        /* "预算（万元）" as the partner's key: its plain numbers are in 万元. */
        if (!strcmp(field, "budget") && f->steps[f->nsteps - 1].key)
            s_unit_of(f->steps[f->nsteps - 1].key, f->unit, sizeof f->unit);
        p->nfields++;
    }
    return 0;
}

static int s_load_numbers(lf_mapping_t *m, const json_t *calls, char *err, size_t errsz) {
    if (!calls)
        return 0;
    json_t *numbers = json_is_object(calls) ? json_object_get(calls, "numbers") : NULL;
    if (!json_is_object(calls) || (numbers && !json_is_object(numbers))) {
        snprintf(err, errsz, "calls.numbers must be an object of E.164 numbers");
        return -1;
    }
    const char *num;
    json_t *v;
    json_object_foreach(numbers, num, v) {
        size_t digits = strspn(num + (num[0] == '+'), "0123456789");
        if (num[0] != '+' || digits < 6 || digits > 15 || num[1 + digits] != '\0') {
            snprintf(err, errsz, "calls.numbers: \"%s\" is not an E.164 number", num);
            return -1;
        }
        json_t *s = json_object_get(v, "source"), *c = json_object_get(v, "campaign");
        if (!json_is_object(v) || (s && !json_is_string(s)) ||
            (c && !json_is_string(c))) {
            snprintf(err, errsz,
                     "calls.numbers.%s must be {\"source\": str, \"campaign\": str}",
                     num);
            return -1;
        }
    }
    if (numbers) {
        m->numbers = json_deep_copy(numbers);
        if (!m->numbers)
            s_oom();
    }
    return 0;
}

lf_mapping_t *lf_mapping_from_json(const json_t *cfg, char *err, size_t errsz) {
    if (!json_is_object(cfg)) {
        snprintf(err, errsz, "channel configuration must be a JSON object");
        return NULL;
    }
    lf_mapping_t *m = calloc(1, sizeof *m);
    if (!m)
        s_oom();
    json_t *partners = json_object_get(cfg, "partners");
    if (partners && !json_is_object(partners)) {
        snprintf(err, errsz, "partners must be an object");
        goto fail;
    }
    m->partners =
        calloc(partners ? json_object_size(partners) + 1 : 1, sizeof *m->partners);
    if (!m->partners)
        s_oom();
    const char *name;
    json_t *def;
    json_object_foreach(partners, name, def) {
        /* Count the partner first so that a half-loaded entry is still freed. */
        int rc = s_load_partner(&m->partners[m->npartners++], name, def, err, errsz);
        if (rc != 0)
            goto fail;
    }
    if (s_load_numbers(m, json_object_get(cfg, "calls"), err, errsz) != 0)
        goto fail;
    return m;
fail:
    lf_mapping_destroy(&m);
    return NULL;
}

lf_mapping_t *lf_mapping_load(const char *path, char *err, size_t errsz) {
    json_error_t jerr;
    json_t *cfg = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!cfg) {
        snprintf(err, errsz, "%s: %s at line %d column %d", path, jerr.text, jerr.line,
                 jerr.column);
        return NULL;
    }
    lf_mapping_t *m = lf_mapping_from_json(cfg, err, errsz);
    json_decref(cfg);
    return m;
}

void lf_mapping_destroy(lf_mapping_t **self_p) {
    if (!self_p || !*self_p)
        return;
    lf_mapping_t *m = *self_p;
    for (size_t i = 0; i < m->npartners; i++)
        s_partner_free(&m->partners[i]);
    free(m->partners);
    json_decref(m->numbers);
    free(m);
    *self_p = NULL;
}

static const s_partner_t *s_find(const lf_mapping_t *m, const char *partner) {
    if (!m || !partner)
        return NULL;
    for (size_t i = 0; i < m->npartners; i++)
        if (strcmp(m->partners[i].name, partner) == 0)
            return &m->partners[i];
    return NULL;
}

int lf_mapping_has(const lf_mapping_t *m, const char *partner) {
    return s_find(m, partner) != NULL;
}

static int s_mapped(const s_partner_t *p, const char *field) {
    for (size_t i = 0; i < p->nfields; i++)
        if (strcmp(p->fields[i].field, field) == 0)
            return 1;
    return 0;
}

json_t *lf_mapping_apply(const lf_mapping_t *m, const char *partner, const json_t *in) {
    const s_partner_t *p = s_find(m, partner);
    if (!p || !json_is_object(in))
        return NULL;
    json_t *out = json_object(), *extra = json_deep_copy(in);
    if (!out || !extra)
        s_oom();
    for (size_t i = 0; i < p->nfields; i++) {
        const s_field_t *f = &p->fields[i];
        json_t *v = s_resolve(in, f->steps, f->nsteps);
        if (!s_is_scalar(v))
            continue;
        char num[64], withunit[256];
        const char *text = json_is_string(v) ? json_string_value(v) : NULL;
        if (json_is_integer(v) || json_is_real(v)) {
            snprintf(num, sizeof num, "%.15g", json_number_value(v));
            text = num;
        }
        const char *u = f->unit[0] && text
                            ? lf_apply_unit(text, f->unit, withunit, sizeof withunit)
                            : NULL;
        if (u && u != text)
            json_object_set_new(out, f->field, json_string(u));
        else
            json_object_set_new(out, f->field, json_copy(v));
        s_consume(extra, f->steps, f->nsteps);
    }
    /* A partner that already uses our names needs no mapping for them. */
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)in, key, v) {
        if (!lf_is_canonical_field(key) || strcmp(key, "channel") == 0 ||
            s_mapped(p, key) || !s_is_scalar(v))
            continue;
        json_object_set_new(out, key, json_copy(v));
        json_object_del(extra, key);
    }
    json_object_set_new(out, "channel", json_string(p->channel));
    if (!json_object_get(out, "source"))
        json_object_set_new(out, "source", json_string(p->source));
    json_object_set_new(out, "extra", extra);
    return out;
}

const json_t *lf_mapping_call_number(const lf_mapping_t *m, const char *to_e164) {
    if (!m || !m->numbers || !to_e164)
        return NULL;
    return json_object_get(m->numbers, to_e164);
}
