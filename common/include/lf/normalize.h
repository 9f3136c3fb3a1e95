/* lf/normalize.h - field normalizers for lead intake (the "standardize and validate" step
 * of the lead lifecycle).
 *
 * Every function here is pure: no globals, no I/O, no allocation that outlives the call.
 * Inputs are NUL-terminated UTF-8 straight from untrusted clients; outputs go into
 * buffers the caller owns. The common return convention is: 0  success, the output is
 * written; 1  the field is absent (empty after normalization, or for budgets "not a
 * number"), the output holds an empty string / an empty value and the caller stores null;
 *   -1  the input is invalid; when `why` is not NULL, *why is set to a short English
 * reason. The reason strings are static (Borrowed: valid for the life of the program) and
 * never contain the input, so they are safe to log and to return to clients.
 */
#ifndef LF_NORMALIZE_H
#define LF_NORMALIZE_H

#include <stddef.h>

/* Inputs longer than this many bytes are rejected before any work is done, so a hostile
   client cannot make NFKC expansion allocate without bound. */
#define LF_NORM_MAX_INPUT 65536

/* Buffer sizes (bytes, NUL included) that always suffice for a successful result. */
#define LF_NAME_MAX_CHARS 100
#define LF_NAME_SIZE (LF_NAME_MAX_CHARS * 4 + 1)
#define LF_EMAIL_MAX_CHARS 254
#define LF_EMAIL_SIZE (LF_EMAIL_MAX_CHARS * 4 + 1)
#define LF_E164_SIZE 17 /* '+', at most 15 digits, NUL */

/* 1 when the `len` bytes at `s` are well-formed UTF-8 (RFC 3629: no overlong forms, no
   surrogates, nothing above U+10FFFF), 0 otherwise. NUL bytes inside `len` count as
   valid. */
int lf_utf8_valid(const char *s, size_t len);

/* Number of characters (code points) in the NUL-terminated string `s`; 0 for NULL. An
   ill-formed byte sequence counts as one character, so the result is defined for any
   input. */
size_t lf_utf8_chars(const char *s);

/* Free-text rule, the base of the other string rules: drop C0/C1 control characters and
   Unicode format characters (zero-width spaces and joiners, BOM, bidirectional overrides,
   soft hyphens), apply NFKC (full-width "１３８＠．" becomes "138@."), turn every run of
   white space (tab, newline, U+3000 ideographic space, ...) into one ASCII space, and
   trim. Returns 0 with the result in `out`, 1 when the result is empty (out = ""), -1
   when the input is not valid UTF-8, longer than LF_NORM_MAX_INPUT, or the result does
   not fit in `outsz` bytes ("too long"). A NULL `in` counts as empty. On -1, `out` is ""
   if outsz > 0. */
int lf_norm_text(const char *in, char *out, size_t outsz, const char **why);

/* Person or company name: the text rule plus at most LF_NAME_MAX_CHARS characters.
   Returns as lf_norm_text; -1 also when the name is too long. */
int lf_norm_name(const char *in, char *out, size_t outsz, const char **why);

/* E-mail address: the text rule, then Unicode lower-casing, then a syntax check:
   exactly one '@'; a local part of 1..64 bytes made of letters, digits, non-ASCII letters
   and !#$%&'*+/=?^_`{|}~.- with no leading, trailing or doubled dot; a domain of at least
   two dot-separated labels of 1..63 bytes (letters, digits, hyphen not at either end,
   non-ASCII letters for internationalized domains) whose last label is not all digits; at
   most LF_EMAIL_MAX_CHARS characters. Full-width '＠' and ideographic full stops '。' are
   accepted. Quoted local parts, IP literals and comments are rejected.
   Returns 0, 1 when empty, -1 when invalid. */
int lf_norm_email(const char *in, char *out, size_t outsz, const char **why);

/* Phone number to E.164 ("+8613800138000"), defined in common/phone.c: leadflow's
   cleaning (full-width digits and '＋', separators space - . ( ) /, an extension at the
   end such as "转123", "分机 123", "ext. 123", "x123" or "#123" dropped), then
   libphonenumber's parse with the default region (CN unless lf_phone_set_default_region
   changed it) and its validation against the library's metadata (lf/phone.h has the whole
   verdict: type, country, and the E.164 of a number that parses but is not valid). `sz`
   must be at least LF_E164_SIZE for any number to fit. Returns 0, 1 when empty, -1 when
   the text is not a valid phone number (also a number that parses but is not allocated)
   or the buffer is too small. */
int lf_norm_phone(const char *in, char *e164, size_t sz, const char **why);

typedef struct {
    int has_min, has_max; /* 0 when that end is unknown */
    double min, max;      /* in units of currency (yuan, dollars), not 万 */
    char currency[4];     /* ISO 4217, e.g. "CNY", NUL-terminated */
} lf_budget_t;

/* Budget text to an amount or a range. Understands thousands separators (300,000),
   decimal points, exponents (1e5), multipliers 万 w W (1e4), 千 k K (1e3), 百万 m M
   (1e6), 千万, 亿 (1e8) and their combinations; ranges with - ~ 到 至 — – 〜 ("10-20万"
   puts 万 on both ends); currency marks before or after: ¥ ￥ 元 块 RMB CNY 人民币 (CNY),
   $ US$ USD 美元 美金 (USD), € EUR 欧元, £ GBP 英镑, HK$ HKD 港币 港元, JPY 日元, and a
   few more ISO codes; hedges 约 大约 大概 左右 上下 "about" are ignored; 以上 起 + (min
   only) and 以内 以下 不超过 最多 (max only). ¥ is read as CNY, since that is what it
   means in this market. `default_currency` (NULL means "CNY") is used when the text has
   no currency mark; it must be three ASCII letters (any case). Returns 0 when parsed; 1
   when empty or not a number at all ("待定", "TBD", "面议"): the caller keeps the raw
   text and stores a null budget; -1 when it is a number but an invalid one (negative, NaN
   or infinite, above 1e13, min > max, two different currencies) or the default currency
   is malformed. `out` is zeroed on 1 and -1. */
int lf_norm_budget(const char *in, const char *default_currency, lf_budget_t *out,
                   const char **why);

/* Budget given as a JSON number: min = max = v. `currency` as default_currency above.
   Returns 0, or -1 for NaN, infinities, negatives, values above 1e13 or a malformed
   currency. No `why`: the reasons are the same as lf_norm_budget's. */
int lf_norm_budget_number(double v, const char *currency, lf_budget_t *out);

/* Urgency: high/medium/low and h/m/l in any case, urgent/normal, 高/中/低, 紧急/急/很急/
   加急/特急 (high), 一般/普通/中等/正常 (medium), 不急/不紧急 (low), and the priority
   ranks 1/2/3 and p1/p2/p3 (1 is the most urgent). *out points to a static "high",
   "medium" or "low" (Borrowed: valid for the life of the program), NULL unless 0 is
   returned. Returns 0, 1 when empty, -1 when unknown. */
int lf_norm_urgency(const char *in, const char **out, const char **why);

/* Yes/no: true/false, yes/no, y/n, t/f, on/off, 1/0 (any case), 是/否, 是的/不是, 有/无,
   有/没有, 对/不对, 对/不, 真/假. Returns 0 with *out 1 or 0, 1 when empty, -1 when
   unknown
   (*out untouched on 1 and -1). */
int lf_norm_bool(const char *in, int *out, const char **why);

#endif
