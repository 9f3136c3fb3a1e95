/* phone.c - from what people type into a phone field to a verdict of libphonenumber.
 *
 * Two halves. The cleaning is ours, because it encodes how Chinese users write numbers
 * that no phone library knows: full-width digits from an input method, "转123" and
 * "分机 123" for extensions, brackets and dots as separators, and the "1.38001E+10" that
 * a CSV exported from Excel carries when the phone column was a number. The judging is
 * libphonenumber's (through the C shim in phonenumber.cc): whether 142... is a mobile
 * prefix or 0731 takes 8-digit local numbers is carrier metadata that Google keeps up to
 * date and Debian ships, and hand-written copies of it go stale (issue 15 measured 71%
 * agreement for the hand-written rules this file replaces).
 *
 * libphonenumber already reads the trunk prefix, "+86 (0)10", "0086" and "86" without a
 * plus, and Chinese landlines that lost their leading zero in a spreadsheet number cell
 * ("73184567890" is 0731 8456 7890: CN metadata makes the trunk 0 optional, so the
 * number is valid exactly when that reading is unambiguous). */
#include "lf/phone.h"

#include <stdio.h>
#include <string.h>

#include "lf/phonenumber.h"

/* Phone text longer than this (after cleaning) is not a phone number. */
#define S_PHONE_MAX_TEXT 96
/* Most digits accepted before asking the library (E.164 allows 15, plus 00 and a trunk
   0 and a little slack for "0086 (0)"). */
#define S_PHONE_MAX_DIGITS 20

static char s_region[3] = "CN";

const char *lf_phone_default_region(void) {
    return s_region;
}

int lf_phone_set_default_region(const char *region) {
    if (!region || strlen(region) != 2 || region[0] < 'A' || region[0] > 'Z' ||
        region[1] < 'A' || region[1] > 'Z')
        return -1;
    if (strcmp(region, "CN") != 0 && !lf_pn_region_supported(region))
        return -1;
    memcpy(s_region, region, 3);
    return 0;
}

const char *lf_phone_library_version(void) {
    return lf_pn_version();
}

static int s_digit(int c) {
    return c >= '0' && c <= '9';
}

static int s_fail(const char **why, const char *reason, int rc) {
    if (why)
        *why = reason;
    return rc;
}

/* Removes a trailing extension ("转123", "ext. 123", "x123", "#123", "分机 123") in
   place: the lead is about the person, and dedup works on the main line. */
static void s_drop_extension(char *s, size_t *n) {
    static const char *const markers[] = {"分机号", "分机", "转", "ext.",
                                          "ext",    "x",    "#"};
    size_t e = *n, i = e;
    while (i > 0 && s_digit(s[i - 1]))
        i--;
    if (i == e || e - i > 6)
        return;
    while (i > 0 && s[i - 1] == ' ')
        i--;
    for (size_t m = 0; m < sizeof markers / sizeof *markers; m++) {
        size_t ml = strlen(markers[m]);
        if (i >= ml && strncmp(s + i - ml, markers[m], ml) == 0) {
            /* Only when a number precedes it: "x123" alone is not a phone with an
               extension. */
            size_t j = i - ml;
            while (j > 0 && s[j - 1] == ' ')
                j--;
            if (j > 0 && (s_digit(s[j - 1]) || s[j - 1] == ')')) {
                s[j] = '\0';
                *n = j;
            }
            return;
        }
    }
}

/* 1 when the text is a number in scientific notation ("1.38001e+10", "1.38E10"), which is
   how Excel shows a long number cell and how its CSV export writes it. */
static int s_rounded(const char *s) {
    size_t i = 0, digits = 0;
    while (s[i] == ' ')
        i++;
    while (s_digit(s[i]))
        i++, digits++;
    if (s[i] == '.')
        for (i++; s_digit(s[i]); i++)
            digits++;
    if (digits == 0 || s[i] != 'e')
        return 0;
    i++;
    if (s[i] == '+')
        i++;
    if (!s_digit(s[i]))
        return 0;
    while (s_digit(s[i]))
        i++;
    while (s[i] == ' ')
        i++;
    return s[i] == '\0';
}

static const char *s_api_type(const char *lib) {
    if (!strcmp(lib, "MOBILE"))
        return "mobile";
    if (!strcmp(lib, "FIXED_LINE"))
        return "fixed_line";
    /* 400 numbers are SHARED_COST and 800 numbers TOLL_FREE: to a sales team both are a
       company's hotline, and the API has one type for them. */
    if (!strcmp(lib, "TOLL_FREE") || !strcmp(lib, "SHARED_COST"))
        return "toll_free";
    if (!strcmp(lib, "VOIP"))
        return "voip";
    /* FIXED_LINE_OR_MOBILE (every US number), PREMIUM_RATE, PAGER, UAN, ... */
    return "unknown";
}

/* The reason a parsed number is not valid, as a client should read it. */
static const char *s_invalid_reason(const lf_pn_result_t *r, const char *digits,
                                    int plus) {
    size_t n = strlen(digits);
    int cn = r->country_code == 86;
    if (cn && !plus && (n == 7 || n == 8) && digits[0] != '0')
        return "landline number needs an area code";
    switch (r->reason) {
    case LF_PN_INVALID_COUNTRY_CODE:
        return "unknown country calling code";
    case LF_PN_TOO_SHORT:
        return "too few digits for a phone number of its country";
    case LF_PN_TOO_LONG:
    case LF_PN_INVALID_LENGTH:
        return "wrong number of digits for a phone number of its country";
    default:
        break;
    }
    /* The national number: the E.164 without '+' and the calling code. */
    const char *nat = r->e164 + 1 +
                      (r->country_code >= 100  ? 3
                       : r->country_code >= 10 ? 2
                                               : 1);
    if (cn && nat[0] == '1' && strlen(nat) == 11)
        return "not a valid Chinese mobile number: no network uses this prefix";
    if (cn)
        return "not a valid Chinese landline: unknown area code or wrong length for it";
    return "not a valid phone number for its country (no such prefix or length)";
}

int lf_phone_parse(const char *in, const char *region, lf_phone_t *out,
                   const char **why) {
    memset(out, 0, sizeof *out);
    out->type = "unknown";
    out->lib_type = "UNKNOWN";
    char t[S_PHONE_MAX_TEXT + 1];
    const char *w = NULL;
    int rc = lf_norm_text(in, t, sizeof t, &w);
    if (rc == 1)
        return s_fail(why, w, 1);
    if (rc < 0)
        return s_fail(why, w && !strcmp(w, "too long") ? "not a valid phone number" : w,
                      -1);
    size_t n = strlen(t);
    for (size_t i = 0; i < n; i++)
        if (t[i] >= 'A' && t[i] <= 'Z')
            t[i] = (char)(t[i] + 32);
    if (s_rounded(t))
        return s_fail(why,
                      "looks like a number rounded by Excel (such as 1.38001E+10): its "
                      "last digits are lost; format the column as text and export again",
                      -1);
    s_drop_extension(t, &n);
    /* "tel:" is what a number copied from a link on a web page starts with. */
    char *start = t;
    if (!strncmp(t, "tel:", 4)) {
        start += 4;
        n -= 4;
    }

    char digits[S_PHONE_MAX_DIGITS + 1];
    size_t nd = 0;
    int plus = 0;
    for (size_t i = 0; i < n; i++) {
        char c = start[i];
        if (s_digit(c)) {
            if (nd == S_PHONE_MAX_DIGITS)
                return s_fail(why, "not a valid phone number", -1);
            digits[nd++] = c;
        } else if (c == '+') {
            if (plus || nd > 0)
                return s_fail(why, "not a valid phone number", -1);
            plus = 1;
        } else if (!strchr(" -.()/", c)) {
            return s_fail(why, "not a valid phone number", -1);
        }
    }
    digits[nd] = '\0';
    if (nd < 3)
        return s_fail(why, "not a valid phone number", -1);

    lf_pn_result_t r;
    if (lf_pn_parse(start, region ? region : s_region, &r) != 0)
        return s_fail(why,
                      plus ? "not a valid international phone number"
                           : "not a valid phone number",
                      -1);
    size_t el = strlen(r.e164);
    if (el + 1 > sizeof out->e164)
        return s_fail(why, "not a valid phone number", -1);
    memcpy(out->e164, r.e164, el + 1);
    if (!r.valid)
        return s_fail(why, s_invalid_reason(&r, digits, plus), -2);
    static const char *const lib_types[] = {
        "FIXED_LINE",  "MOBILE", "FIXED_LINE_OR_MOBILE", "TOLL_FREE", "PREMIUM_RATE",
        "SHARED_COST", "VOIP",   "PERSONAL_NUMBER",      "PAGER",     "UAN",
        "VOICEMAIL"};
    for (size_t i = 0; i < sizeof lib_types / sizeof *lib_types; i++)
        if (!strcmp(r.type, lib_types[i]))
            out->lib_type = lib_types[i];
    out->type = s_api_type(out->lib_type);
    if (strlen(r.country) == 2)
        memcpy(out->country, r.country, 3);
    return 0;
}

int lf_norm_phone(const char *in, char *e164, size_t sz, const char **why) {
    if (!e164 || sz == 0)
        return s_fail(why, "output buffer too small", -1);
    e164[0] = '\0';
    lf_phone_t p;
    int rc = lf_phone_parse(in, NULL, &p, why);
    if (rc == 1)
        return 1;
    if (rc != 0)
        return -1;
    size_t n = strlen(p.e164);
    if (n + 1 > sz)
        return s_fail(why, "output buffer too small", -1);
    memcpy(e164, p.e164, n + 1);
    return 0;
}
