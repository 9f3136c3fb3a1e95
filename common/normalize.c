/* normalize.c - turns what clients type into the canonical lead's field values.
 *
 * Intake accepts leads from web forms, phone systems, Excel exports and partners, and the
 * same person arrives as "王芳 ", "王芳" and "王芳" with a zero-width space inside.
 * Dedup, grading and assignment only work if all of those become one value, so every
 * string field passes through here before anything is stored.
 *
 * Unicode work (validation, NFKC, character classes, case mapping) is delegated to
 * libunistring rather than hand-written tables: it tracks the Unicode standard and it is
 * what glibc-era C code is expected to use. The budget, urgency and yes/no rules are
 * hand-written parsers over the already NFKC-normalized text, because they encode
 * business conventions (万 and 亿, "10-20万" meaning a range) that no library knows.
 * Phone numbers are not here: libphonenumber judges them (phone.c), so that carrier
 * metadata, not a hand-written copy of it, decides. The rules here work on bytes and only
 * ever compare against ASCII or whole UTF-8 keywords, so a multi-byte character can never
 * be split.
 *
 * Every function is pure and re-entrant; temporary buffers live for one call. The inputs
 * are hostile by assumption: lengths are capped before any allocation, and every write
 * into a caller's buffer is bounds-checked. libFuzzer drives all of it
 * (fuzz/fuzz_normalize.c).
 */
/* strtod_l and newlocale are GNU extensions. The Makefile defines _GNU_SOURCE already;
   the one-line fuzz build does not. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "lf/normalize.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unicase.h>
#include <unictype.h>
#include <uninorm.h>
#include <unistr.h>

/* Largest budget we believe: ten trillion in any currency is a typo or an attack. */
#define S_BUDGET_ABSURD 1e13

#define S_OOM()                                                                          \
    do {                                                                                 \
        fprintf(stderr, "FATAL out of memory at %s:%d\n", __FILE__, __LINE__);           \
        abort();                                                                         \
    } while (0)

/* ASCII-only character classes: the <ctype.h> ones follow the process locale, and a
   service that calls setlocale() must not change what counts as a digit here. */
static int s_digit(int c) {
    return c >= '0' && c <= '9';
}

static int s_alpha(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int s_alnum(int c) {
    return s_digit(c) || s_alpha(c);
}

static uint8_t s_lower(uint8_t c) {
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

static void s_set_why(const char **why, const char *reason) {
    if (why)
        *why = reason;
}

static int s_fail(const char **why, const char *reason) {
    s_set_why(why, reason);
    return -1;
}

/* ------------------------------------------------------------------------------------ */
/* UTF-8 and the text rule                                                              */

int lf_utf8_valid(const char *s, size_t len) {
    if (!s)
        return len == 0;
    return u8_check((const uint8_t *)s, len) == NULL;
}

size_t lf_utf8_chars(const char *s) {
    if (!s)
        return 0;
    return u8_mbsnlen((const uint8_t *)s, strlen(s));
}

static int s_is_space(ucs4_t uc) {
    return uc_is_property_white_space(uc);
}

/* Characters that carry no text: C0/C1 controls and format characters (ZWSP, ZWJ, BOM,
   bidi embeddings and overrides, soft hyphen, tags). Dropping them stops look-alike
   duplicates and "evil bidi" names in the sales reps' screens. */
static int s_is_invisible(ucs4_t uc) {
    return uc_is_general_category(uc, UC_CATEGORY_Cc) ||
           uc_is_general_category(uc, UC_CATEGORY_Cf);
}

/* 1 when the text has only printable ASCII and CJK unified ideographs (U+4E00-U+9FFF),
   most names, companies and needs: NFKC leaves such text as it is (none of them has a
   decomposition or composes with its neighbour) and none is invisible, so only the
   white space rule is left to apply. The input is valid UTF-8 (checked before). */
static int s_nfkc_plain(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        if (c >= 0x20 && c < 0x7f) {
            i++;
            continue;
        }
        if (c >= 0xe4 && c <= 0xe9 && i + 2 < n) {
            ucs4_t uc = ((ucs4_t)(c & 0x0f) << 12) | ((ucs4_t)(s[i + 1] & 0x3f) << 6) |
                        (ucs4_t)(s[i + 2] & 0x3f);
            if (uc >= 0x4e00 && uc <= 0x9fff) {
                i += 3;
                continue;
            }
        }
        return 0;
    }
    return 1;
}

/* The text rule into a fresh heap buffer. On 0 and 1, *res is NUL-terminated and owned by
   the caller (free it); on -1 nothing is allocated. */
static int s_norm_text(const char *in, uint8_t **res, size_t *reslen, const char **why) {
    *res = NULL;
    *reslen = 0;
    size_t n = in ? strnlen(in, LF_NORM_MAX_INPUT + 1) : 0;
    if (n > LF_NORM_MAX_INPUT)
        return s_fail(why, "too long");
    const uint8_t *s = (const uint8_t *)(in ? in : "");
    if (u8_check(s, n) != NULL)
        return s_fail(why, "not valid UTF-8");

    uint8_t *norm = NULL;
    const uint8_t *text = s; /* NFKC of the input */
    size_t nl = n;
    if (!s_nfkc_plain(s, n)) {
        /* Pass 1: drop invisible characters before NFKC, so a combining mark hidden
           behind a zero-width space still composes with its base. */
        uint8_t *clean = malloc(n + 1);
        if (!clean)
            S_OOM();
        size_t cl = 0;
        for (size_t i = 0; i < n;) {
            ucs4_t uc;
            int k = u8_mbtouc_unsafe(&uc, s + i, n - i);
            if (s_is_space(uc) || !s_is_invisible(uc)) {
                memcpy(clean + cl, s + i, (size_t)k);
                cl += (size_t)k;
            }
            i += (size_t)k;
        }
        nl = 0;
        if (cl > 0) {
            norm = u8_normalize(UNINORM_NFKC, clean, cl, NULL, &nl);
            if (!norm)
                S_OOM(); /* the input was checked, so ENOMEM is the only failure left */
        }
        free(clean);
        text = norm;
    }
    uint8_t *out = malloc(nl + 1);
    if (!out)
        S_OOM();

    /* Pass 2: collapse and trim white space. NFKC has already turned U+3000 and the other
       wide spaces into U+0020 or left them as White_Space characters handled here. */
    size_t ol = 0;
    int pending = 0;
    for (size_t i = 0; i < nl;) {
        ucs4_t uc;
        int k = u8_mbtouc_unsafe(&uc, text + i, nl - i);
        if (s_is_space(uc)) {
            pending = ol > 0;
        } else if (!s_is_invisible(uc)) {
            if (pending)
                out[ol++] = ' ';
            pending = 0;
            memcpy(out + ol, text + i, (size_t)k);
            ol += (size_t)k;
        }
        i += (size_t)k;
    }
    free(norm);
    out[ol] = '\0';
    *res = out;
    *reslen = ol;
    return ol == 0 ? 1 : 0;
}

/* Copies `len` bytes and a NUL into the caller's buffer, or fails without a partial copy.
 */
static int s_put(char *out, size_t outsz, const void *src, size_t len, const char **why) {
    if (len + 1 > outsz) {
        out[0] = '\0';
        return s_fail(why, "too long");
    }
    memcpy(out, src, len);
    out[len] = '\0';
    return 0;
}

int lf_norm_text(const char *in, char *out, size_t outsz, const char **why) {
    if (!out || outsz == 0)
        return s_fail(why, "output buffer too small");
    out[0] = '\0';
    uint8_t *t;
    size_t tl;
    int rc = s_norm_text(in, &t, &tl, why);
    if (rc == 0)
        rc = s_put(out, outsz, t, tl, why);
    free(t);
    return rc;
}

int lf_norm_name(const char *in, char *out, size_t outsz, const char **why) {
    if (!out || outsz == 0)
        return s_fail(why, "output buffer too small");
    out[0] = '\0';
    uint8_t *t;
    size_t tl;
    int rc = s_norm_text(in, &t, &tl, why);
    if (rc == 0 && u8_mbsnlen(t, tl) > LF_NAME_MAX_CHARS)
        rc = s_fail(why, "name too long");
    if (rc == 0)
        rc = s_put(out, outsz, t, tl, why);
    free(t);
    return rc;
}

/* ------------------------------------------------------------------------------------ */
/* E-mail                                                                               */

static int s_is_word_char(ucs4_t uc) {
    return uc_is_general_category(uc, UC_CATEGORY_L) ||
           uc_is_general_category(uc, UC_CATEGORY_M) ||
           uc_is_general_category(uc, UC_CATEGORY_N);
}

/* RFC 5322 "atext" minus nothing, plus the dot (checked for placement separately). */
static int s_is_local_ascii(uint8_t c) {
    return s_alnum(c) || (c && strchr("!#$%&'*+/=?^_`{|}~-.", c));
}

static int s_check_local(const uint8_t *s, size_t n) {
    if (n == 0 || n > 64 || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n;) {
        ucs4_t uc;
        int k = u8_mbtouc_unsafe(&uc, s + i, n - i);
        if (uc < 0x80) {
            if (!s_is_local_ascii((uint8_t)uc) || (uc == '.' && s[i + 1] == '.'))
                return 0;
        } else if (!s_is_word_char(uc)) {
            return 0;
        }
        i += (size_t)k;
    }
    return 1;
}

static int s_check_domain(const uint8_t *s, size_t n) {
    if (n == 0 || n > 253)
        return 0;
    size_t labels = 0, start = 0;
    int last_all_digits = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.')
            continue;
        size_t ll = i - start;
        const uint8_t *l = s + start;
        if (ll == 0 || ll > 63 || l[0] == '-' || l[ll - 1] == '-')
            return 0;
        last_all_digits = 1;
        for (size_t j = 0; j < ll;) {
            ucs4_t uc;
            int k = u8_mbtouc_unsafe(&uc, l + j, ll - j);
            if (uc < 0x80 ? !(s_alnum(uc) || uc == '-') : !s_is_word_char(uc))
                return 0;
            if (!(uc < 0x80 && s_digit(uc)))
                last_all_digits = 0;
            j += (size_t)k;
        }
        labels++;
        start = i + 1;
    }
    return labels >= 2 && !last_all_digits;
}

static int s_is_ascii(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 0x80)
            return 0;
    return 1;
}

int lf_norm_email(const char *in, char *out, size_t outsz, const char **why) {
    if (!out || outsz == 0)
        return s_fail(why, "output buffer too small");
    out[0] = '\0';
    uint8_t *t;
    size_t tl;
    int rc = s_norm_text(in, &t, &tl, why);
    if (rc != 0) {
        free(t);
        return rc;
    }
    size_t ll = 0;
    uint8_t *low = NULL;
    if (s_is_ascii(t, tl)) {
        /* Nearly every address: ASCII, which NFKC leaves as it is and whose lower
         * case is a byte's (what u8_tolower gives it, without its case mapping and
         * normalization passes: 3% of intake's CPU in a profile). Checked against
         * u8_tolower for every ASCII character in test_normalize. */
        low = t;
        for (size_t i = 0; i < tl; i++)
            if (low[i] >= 'A' && low[i] <= 'Z')
                low[i] = (uint8_t)(low[i] - 'A' + 'a');
        ll = tl;
    } else {
        low = u8_tolower(t, tl, NULL, UNINORM_NFKC, NULL, &ll);
        free(t);
        if (!low)
            S_OOM();
    }

    /* IDNA treats the ideographic full stop as a dot; people type it on Chinese IMEs. */
    size_t w = 0;
    for (size_t r = 0; r < ll;) {
        if (r + 3 <= ll && memcmp(low + r, "\xE3\x80\x82", 3) == 0) {
            low[w++] = '.';
            r += 3;
        } else {
            low[w++] = low[r++];
        }
    }
    ll = w;

    const uint8_t *at = memchr(low, '@', ll);
    if (!at || memchr(at + 1, '@', ll - (size_t)(at - low) - 1))
        rc = s_fail(why, "not a valid e-mail address");
    else if (u8_mbsnlen(low, ll) > LF_EMAIL_MAX_CHARS)
        rc = s_fail(why, "e-mail address too long");
    else if (!s_check_local(low, (size_t)(at - low)) ||
             !s_check_domain(at + 1, ll - (size_t)(at - low) - 1))
        rc = s_fail(why, "not a valid e-mail address");
    else
        rc = s_put(out, outsz, low, ll, why);
    free(low);
    return rc;
}

/* ------------------------------------------------------------------------------------ */
/* Budget                                                                               */

enum s_tok { S_CUR, S_UNIT, S_RANGE, S_DASH, S_APPROX, S_MIN, S_MAX, S_NAN };

typedef struct {
    const char *text; /* lower-case ASCII or UTF-8 as produced by NFKC */
    enum s_tok tok;
    double mult;      /* S_UNIT */
    const char *code; /* S_CUR */
} s_keyword_t;

/* Matched longest-first, so "美元" wins over "元", "至少" over "至" and "hk$" over "$".
 */
static const s_keyword_t s_keywords[] = {
    {"¥", S_CUR, 0, "CNY"},          {"元", S_CUR, 0, "CNY"},
    {"圆", S_CUR, 0, "CNY"},         {"块钱", S_CUR, 0, "CNY"},
    {"块", S_CUR, 0, "CNY"},         {"rmb", S_CUR, 0, "CNY"},
    {"cny", S_CUR, 0, "CNY"},        {"人民币", S_CUR, 0, "CNY"},
    {"$", S_CUR, 0, "USD"},          {"us$", S_CUR, 0, "USD"},
    {"usd", S_CUR, 0, "USD"},        {"美元", S_CUR, 0, "USD"},
    {"美金", S_CUR, 0, "USD"},       {"€", S_CUR, 0, "EUR"},
    {"eur", S_CUR, 0, "EUR"},        {"欧元", S_CUR, 0, "EUR"},
    {"£", S_CUR, 0, "GBP"},          {"gbp", S_CUR, 0, "GBP"},
    {"英镑", S_CUR, 0, "GBP"},       {"hk$", S_CUR, 0, "HKD"},
    {"hkd", S_CUR, 0, "HKD"},        {"港币", S_CUR, 0, "HKD"},
    {"港元", S_CUR, 0, "HKD"},       {"jpy", S_CUR, 0, "JPY"},
    {"日元", S_CUR, 0, "JPY"},       {"nt$", S_CUR, 0, "TWD"},
    {"twd", S_CUR, 0, "TWD"},        {"sgd", S_CUR, 0, "SGD"},
    {"aud", S_CUR, 0, "AUD"},        {"cad", S_CUR, 0, "CAD"},
    {"chf", S_CUR, 0, "CHF"},        {"krw", S_CUR, 0, "KRW"},
    {"十", S_UNIT, 1e1, NULL},       {"百", S_UNIT, 1e2, NULL},
    {"千", S_UNIT, 1e3, NULL},       {"万", S_UNIT, 1e4, NULL},
    {"亿", S_UNIT, 1e8, NULL},       {"k", S_UNIT, 1e3, NULL},
    {"w", S_UNIT, 1e4, NULL},        {"m", S_UNIT, 1e6, NULL},
    {"thousand", S_UNIT, 1e3, NULL}, {"million", S_UNIT, 1e6, NULL},
    {"~", S_RANGE, 0, NULL},         {"到", S_RANGE, 0, NULL},
    {"至", S_RANGE, 0, NULL},        {"—", S_RANGE, 0, NULL},
    {"–", S_RANGE, 0, NULL},         {"〜", S_RANGE, 0, NULL},
    {"to", S_RANGE, 0, NULL},        {"-", S_DASH, 0, NULL},
    {"−", S_DASH, 0, NULL},          {"约", S_APPROX, 0, NULL},
    {"大约", S_APPROX, 0, NULL},     {"大概", S_APPROX, 0, NULL},
    {"左右", S_APPROX, 0, NULL},     {"上下", S_APPROX, 0, NULL},
    {"about", S_APPROX, 0, NULL},    {"approx", S_APPROX, 0, NULL},
    {"around", S_APPROX, 0, NULL},   {"以上", S_MIN, 0, NULL},
    {"起", S_MIN, 0, NULL},          {"+", S_MIN, 0, NULL},
    {"至少", S_MIN, 0, NULL},        {"不低于", S_MIN, 0, NULL},
    {"不少于", S_MIN, 0, NULL},      {"以内", S_MAX, 0, NULL},
    {"以下", S_MAX, 0, NULL},        {"内", S_MAX, 0, NULL},
    {"不超过", S_MAX, 0, NULL},      {"最多", S_MAX, 0, NULL},
    {"nan", S_NAN, 0, NULL},         {"infinity", S_NAN, 0, NULL},
    {"inf", S_NAN, 0, NULL},
};

static const s_keyword_t *s_match_keyword(const char *s, size_t *len) {
    const s_keyword_t *best = NULL;
    size_t bl = 0;
    for (size_t i = 0; i < sizeof s_keywords / sizeof *s_keywords; i++) {
        size_t kl = strlen(s_keywords[i].text);
        if (kl > bl && strncmp(s, s_keywords[i].text, kl) == 0) {
            best = &s_keywords[i];
            bl = kl;
        }
    }
    *len = bl;
    return best;
}

/* One end of a range while it is being read. */
typedef struct {
    int has_num; /* a number was read */
    int neg;     /* a minus sign came before the number */
    int units;   /* how many multipliers followed it */
    int is_nan;  /* "nan" / "inf" was written */
    double num;  /* the number as written */
    double mult; /* product of the multipliers, 1 when none */
} s_side_t;

static locale_t s_c_loc;
static pthread_once_t s_c_loc_once = PTHREAD_ONCE_INIT;

static void s_c_locale_init(void) {
    s_c_loc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (!s_c_loc)
        S_OOM();
}

static locale_t s_c_locale(void) {
    pthread_once(&s_c_loc_once, s_c_locale_init);
    return s_c_loc;
}

/* Reads a decimal number with optional thousands separators (groups of exactly three),
   fraction and exponent. Returns the bytes consumed, 0 when `s` holds no number, or
   (size_t)-1 when the number is too long to be a sane amount. */
static size_t s_read_number(const char *s, double *v) {
    char buf[64];
    size_t i = 0, b = 0;
#define S_PUSH(c)                                                                        \
    do {                                                                                 \
        if (b + 1 >= sizeof buf)                                                         \
            return (size_t)-1;                                                           \
        buf[b++] = (c);                                                                  \
    } while (0)
    while (s_digit(s[i]))
        S_PUSH(s[i++]);
    while (i > 0 && s[i] == ',' && s_digit(s[i + 1]) && s_digit(s[i + 2]) &&
           s_digit(s[i + 3]) && !s_digit(s[i + 4])) {
        for (int k = 1; k <= 3; k++)
            S_PUSH(s[i + (size_t)k]);
        i += 4;
    }
    if (s[i] == '.' && s_digit(s[i + 1])) {
        S_PUSH(s[i++]);
        while (s_digit(s[i]))
            S_PUSH(s[i++]);
    }
    if (i == 0)
        return 0;
    if (s[i] == 'e') {
        size_t j = i + 1;
        if (s[j] == '+' || s[j] == '-')
            j++;
        if (s_digit(s[j])) {
            while (i < j)
                S_PUSH(s[i++]);
            while (s_digit(s[i]))
                S_PUSH(s[i++]);
        }
    }
#undef S_PUSH
    buf[b] = '\0';
    /* strtod follows LC_NUMERIC; read the number in the C locale whatever the process
       set. Overflow gives HUGE_VAL, which the caller rejects as absurd. */
    *v = strtod_l(buf, NULL, s_c_locale());
    return i;
}

static int s_valid_currency(const char *c, char out[4]) {
    if (!c)
        c = "CNY";
    if (strlen(c) != 3)
        return 0;
    for (int i = 0; i < 3; i++) {
        if (!s_alpha(c[i]))
            return 0;
        out[i] = (char)(c[i] & ~0x20);
    }
    out[3] = '\0';
    return 1;
}

/* Final value of one end: number times multipliers, rounded to cents so that 1.2亿 is
   exactly 120000000 and not 119999999.99999999. */
static double s_amount(double num, double mult) {
    double v = num * mult;
    if (v < S_BUDGET_ABSURD)
        v = round(v * 100.0) / 100.0;
    return v;
}

int lf_norm_budget(const char *in, const char *default_currency, lf_budget_t *out,
                   const char **why) {
    memset(out, 0, sizeof *out);
    char defcur[4];
    if (!s_valid_currency(default_currency, defcur))
        return s_fail(why, "not a valid currency code");
    uint8_t *t;
    size_t tl;
    int rc = s_norm_text(in, &t, &tl, why);
    if (rc != 0) {
        free(t);
        if (rc == 1)
            s_set_why(why, "no budget given");
        return rc;
    }
    /* Keywords are lower-case ASCII; CJK and symbols are unaffected by tolower. */
    for (size_t i = 0; i < tl; i++)
        t[i] = s_lower(t[i]);

    s_side_t side[2] = {{0, 0, 0, 0, 0, 1}, {0, 0, 0, 0, 0, 1}};
    int cur_side = 0, bound = 0, conflict = 0, grammar = 1, too_long = 0;
    const char *cur = NULL;
    const char *s = (const char *)t;
    for (size_t i = 0; i < tl && grammar;) {
        s_side_t *sd = &side[cur_side];
        if (s[i] == ' ') {
            i++;
            continue;
        }
        double v;
        size_t k = s_read_number(s + i, &v);
        if (k == (size_t)-1) {
            too_long = 1;
            break;
        }
        if (k > 0) {
            if (sd->has_num)
                grammar = 0;
            sd->has_num = 1;
            sd->num = v;
            i += k;
            continue;
        }
        const s_keyword_t *kw = s_match_keyword(s + i, &k);
        if (!kw) {
            grammar = 0;
            break;
        }
        i += k;
        switch (kw->tok) {
        case S_CUR:
            if (cur && strcmp(cur, kw->code) != 0)
                conflict = 1;
            cur = kw->code;
            break;
        case S_UNIT:
            if (!sd->has_num || sd->is_nan || ++sd->units > 3)
                grammar = 0;
            else
                sd->mult *= kw->mult;
            break;
        case S_DASH:
            if (!sd->has_num) {
                if (sd->neg)
                    grammar = 0;
                sd->neg = 1;
                break;
            }
            /* fall through - after a number a dash separates the two ends */
        case S_RANGE:
            if (cur_side == 0 && sd->has_num)
                cur_side = 1;
            else if (!sd->has_num && kw->tok == S_RANGE && cur_side == 0)
                ; /* "~50万" is "about 50万" */
            else
                grammar = 0;
            break;
        case S_APPROX:
            break;
        case S_MIN:
        case S_MAX:
            if (bound)
                grammar = 0;
            bound = kw->tok == S_MIN ? 1 : 2;
            break;
        case S_NAN:
            if (sd->has_num)
                grammar = 0;
            sd->has_num = sd->is_nan = 1;
            break;
        }
    }
    free(t);
    if (too_long)
        return s_fail(why, "amount too large");
    if (!grammar || !side[0].has_num || (cur_side == 1 && !side[1].has_num) ||
        (cur_side == 1 && bound)) {
        s_set_why(why, "not a number");
        return 1;
    }
    int nsides = cur_side + 1;
    for (int i = 0; i < nsides; i++) {
        if (side[i].is_nan)
            return s_fail(why, "not a finite amount");
        if (side[i].neg && side[i].num != 0)
            return s_fail(why, "negative amount");
    }
    if (conflict)
        return s_fail(why, "conflicting currencies");

    double lo = s_amount(side[0].num, side[0].mult), hi = lo;
    if (nsides == 2) {
        hi = s_amount(side[1].num, side[1].mult);
        /* "10-20万": a multiplier written only on the upper end applies to both. When
           that puts the lower end above the upper one, the lower end was written in plain
           units ("5000-2万" is five to twenty thousand), but only if the two ends are
           within a factor of 100 of each other; "20-10万" stays an error. */
        if (side[0].units == 0 && side[1].units > 0) {
            double shared = s_amount(side[0].num, side[1].mult);
            if (shared <= hi || lo * 100 < hi)
                lo = shared;
        }
    }
    if (!isfinite(lo) || !isfinite(hi) || lo > S_BUDGET_ABSURD || hi > S_BUDGET_ABSURD)
        return s_fail(why, "amount too large");
    if (lo > hi)
        return s_fail(why, "minimum above maximum");

    out->has_min = bound != 2;
    out->has_max = bound != 1;
    out->min = out->has_min ? lo : 0;
    out->max = out->has_max ? hi : 0;
    memcpy(out->currency, cur ? cur : defcur, 4);
    return 0;
}

int lf_norm_budget_number(double v, const char *currency, lf_budget_t *out) {
    memset(out, 0, sizeof *out);
    char c[4];
    if (!s_valid_currency(currency, c) || !isfinite(v) || v < 0 || v > S_BUDGET_ABSURD)
        return -1;
    out->has_min = out->has_max = 1;
    out->min = out->max = v;
    memcpy(out->currency, c, 4);
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Urgency and yes/no                                                                   */

typedef struct {
    const char *text; /* lower-case */
    int value;
} s_word_t;

/* Normalizes a short enumerated answer and looks it up. Returns the rc convention. */
static int s_lookup(const char *in, const s_word_t *words, size_t nwords, int *value,
                    const char **why, const char *unknown) {
    uint8_t *t;
    size_t tl;
    int rc = s_norm_text(in, &t, &tl, why);
    if (rc == 0) {
        for (size_t i = 0; i < tl; i++)
            t[i] = s_lower(t[i]);
        rc = s_fail(why, unknown);
        for (size_t i = 0; i < nwords; i++) {
            if (strcmp((const char *)t, words[i].text) == 0) {
                *value = words[i].value;
                rc = 0;
                break;
            }
        }
    }
    free(t);
    return rc;
}

int lf_norm_urgency(const char *in, const char **out, const char **why) {
    static const char *const levels[] = {"high", "medium", "low"};
    static const s_word_t words[] = {
        {"high", 0},   {"h", 0},        {"urgent", 0}, {"1", 0},    {"p1", 0},
        {"高", 0},     {"紧急", 0},     {"急", 0},     {"很急", 0}, {"加急", 0},
        {"特急", 0},   {"非常紧急", 0}, {"medium", 1}, {"m", 1},    {"med", 1},
        {"normal", 1}, {"2", 1},        {"p2", 1},     {"中", 1},   {"一般", 1},
        {"普通", 1},   {"中等", 1},     {"正常", 1},   {"low", 2},  {"l", 2},
        {"3", 2},      {"p3", 2},       {"低", 2},     {"不急", 2}, {"不紧急", 2},
    };
    *out = NULL;
    int v = 0;
    int rc = s_lookup(in, words, sizeof words / sizeof *words, &v, why,
                      "unknown urgency (use high, medium or low)");
    if (rc == 0)
        *out = levels[v];
    return rc;
}

int lf_norm_bool(const char *in, int *out, const char **why) {
    static const s_word_t words[] = {
        {"true", 1}, {"yes", 1},  {"y", 1},    {"t", 1},    {"on", 1}, {"1", 1},
        {"是", 1},   {"是的", 1}, {"有", 1},   {"对", 1},   {"真", 1}, {"false", 0},
        {"no", 0},   {"n", 0},    {"f", 0},    {"off", 0},  {"0", 0},  {"否", 0},
        {"不是", 0}, {"无", 0},   {"没有", 0}, {"不对", 0}, {"不", 0}, {"假", 0},
    };
    int v = 0;
    int rc =
        s_lookup(in, words, sizeof words / sizeof *words, &v, why, "not a yes/no value");
    if (rc == 0)
        *out = v;
    return rc;
}
