/* log.c - stderr logging with masking of personal data.
 *
 * Each call formats the whole line first and writes it with one fputs on a
 * line-buffered stream, so lines from different threads do not interleave. Every
 * line goes through lf_log_scrub before it is written: callers mask the values they
 * log on purpose, and the scrub catches what they did not mean to log (a value
 * quoted inside an error message). */
#include "lf/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lf/util.h"

static char s_service[32] = "leadflow";
static lf_log_level_t s_level = LF_LOG_INFO;
static const char *s_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void lf_log_init(const char *service, lf_log_level_t level) {
    lf_strlcpy(s_service, service, sizeof s_service);
    s_level = level;
}

int lf_log_parse_level(const char *s) {
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, s_names[i]) == 0)
            return i;
    if (strcasecmp(s, "warning") == 0)
        return LF_LOG_WARN;
    return -1;
}

void lf_log(lf_log_level_t level, const char *fmt, ...) {
    if (level < s_level)
        return;
    char ts[40], line[2048];
    lf_rfc3339(lf_now_ms(), ts, sizeof ts);
    int n = snprintf(line, sizeof line, "%s %s %s: ", s_names[level], ts, s_service);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    lf_log_scrub(line + n);
    size_t len = strlen(line);
    if (len + 1 < sizeof line) {
        line[len] = '\n';
        line[len + 1] = '\0';
    } else {
        line[sizeof line - 2] = '\n';
    }
    fputs(line, stderr);
}

const char *lf_mask_phone(const char *phone, char *out, size_t outsz) {
    if (!phone) {
        lf_strlcpy(out, "-", outsz);
        return out;
    }
    size_t n = strlen(phone);
    if (n < 8) {
        lf_strlcpy(out, "****", outsz);
        return out;
    }
    /* Keep the first 6 and last 4 characters, as Chinese carriers print numbers. A
     * shorter number (some countries' numbers have 7 or 8 digits in E.164) keeps 3 and
     * 2: 6 and 4 would show all or nearly all of it. An 11-digit national number
     * without '+' is masked by the caller as 139****9000 (lf_log_scrub). */
    if (n < 11 || (phone[0] == '+' && n < 13))
        snprintf(out, outsz, "%.3s****%s", phone, phone + n - 2);
    else
        snprintf(out, outsz, "%.6s****%s", phone, phone + n - 4);
    return out;
}

const char *lf_mask_email(const char *email, char *out, size_t outsz) {
    if (!email) {
        lf_strlcpy(out, "-", outsz);
        return out;
    }
    const char *at = strchr(email, '@');
    if (!at || at == email) {
        lf_strlcpy(out, "***", outsz);
        return out;
    }
    snprintf(out, outsz, "%c***%s", email[0], at);
    return out;
}

const char *lf_mask_key(const char *key, char *out, size_t outsz) {
    if (!key) {
        lf_strlcpy(out, "-", outsz);
        return out;
    }
    size_t n = strlen(key);
    snprintf(out, outsz, "%.*s***", (int)(n < 8 ? n / 2 : 4), key);
    return out;
}

static int s_email_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

static int s_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int s_word(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || (unsigned char)c >= 0x80;
}

/* 1 when the number at s[at] is the value of one of our own key=value details
 * (seq=, folded=, pending=...): counters and ids, not phone numbers. A key that names
 * a number a person has (phone=, from=, to=, tel=, mobile=, caller=) is not one. */
static int s_counter(const char *s, size_t at) {
    if (at == 0 || s[at - 1] != '=')
        return 0;
    size_t k = at - 1;
    while (k > 0 && (s_word(s[k - 1])))
        k--;
    char key[32];
    size_t n = at - 1 - k < sizeof key - 1 ? at - 1 - k : sizeof key - 1;
    memcpy(key, s + k, n);
    key[n] = '\0';
    static const char *const personal[] = {"phone", "tel",    "mobile", "from",
                                           "to",    "caller", "called", NULL};
    for (int i = 0; personal[i]; i++)
        if (strcasestr(key, personal[i]))
            return 0;
    return n > 0;
}

/* Replaces s[from, to) with the masked text m (never longer than the span). */
static size_t s_splice(char *s, size_t from, size_t to, const char *m) {
    size_t mlen = strlen(m), span = to - from;
    if (mlen > span) { /* a short value: hide it whole rather than cut the mask */
        m = "****";
        mlen = span < 4 ? span : 4;
    }
    memcpy(s + from, m, mlen);
    memmove(s + from + mlen, s + to, strlen(s + to) + 1);
    return from + mlen;
}

char *lf_log_scrub(char *s) {
    if (!s)
        return s;
    size_t i = 0;
    while (s[i]) {
        /* leadflow keys: lf_ and at least 16 hex digits */
        if (s[i] == 'l' && s[i + 1] == 'f' && s[i + 2] == '_' &&
            (i == 0 || !s_word(s[i - 1]))) {
            size_t j = i + 3;
            while (s_hex(s[j]))
                j++;
            if (j - i - 3 >= 16) {
                char key[80], m[16];
                size_t n = j - i < sizeof key ? j - i : sizeof key - 1;
                memcpy(key, s + i, n);
                key[n] = '\0';
                i = s_splice(s, i, j, lf_mask_key(key, m, sizeof m));
                continue;
            }
        }
        /* e-mail addresses: the whole token around an @ */
        if (s[i] == '@' && i > 0 && s_email_char(s[i - 1]) && s_email_char(s[i + 1])) {
            size_t a = i, b = i + 1;
            while (a > 0 && s_email_char(s[a - 1]))
                a--;
            while (s_email_char(s[b]) || (unsigned char)s[b] >= 0x80)
                b++;
            char mail[256], m[256];
            size_t n = b - a < sizeof mail ? b - a : sizeof mail - 1;
            memcpy(mail, s + a, n);
            mail[n] = '\0';
            lf_mask_email(mail, m, sizeof m);
            if (strlen(m) > n && i - a >= 1) {
                /* a short local part: as many stars as letters, so nothing grows */
                memset(m, '*', i - a);
                lf_strlcpy(m + (i - a), s + i, sizeof m - (i - a));
                m[n] = '\0';
            }
            i = s_splice(s, a, b, m);
            continue;
        }
        /* phone numbers: 7..15 digits, + allowed in front, not part of a word or a
         * UUID group (hex letters or '-' around it) */
        if ((s[i] >= '0' && s[i] <= '9') ||
            (s[i] == '+' && s[i + 1] >= '0' && s[i + 1] <= '9')) {
            size_t a = i, b = i + (s[i] == '+');
            while (s[b] >= '0' && s[b] <= '9')
                b++;
            size_t digits = b - a - (s[a] == '+');
            int inside = (a > 0 && (s_word(s[a - 1]) || s[a - 1] == '-')) ||
                         s_word(s[b]) || s[b] == '-' || s_counter(s, a);
            if (digits >= 7 && digits <= 15 && !inside) {
                char num[20], m[24];
                size_t n = b - a;
                memcpy(num, s + a, n);
                num[n] = '\0';
                lf_mask_phone(num, m, sizeof m);
                if (strlen(m) > n) /* 11 digits: 139****9000, the same length */
                    snprintf(m, sizeof m, "%.*s****%s", (int)(n - 8), num, num + n - 4);
                i = s_splice(s, a, b, m);
                continue;
            }
            i = b > i ? b : i + 1;
            continue;
        }
        i++;
    }
    return s;
}

/* 1 when the word that ends just before s[at] (spaces skipped) names a kind of database
 * object, so the quoted text at s[at] is an identifier, not a value. */
static int s_names_object(const char *s, size_t at) {
    size_t e = at;
    while (e > 0 && s[e - 1] == ' ')
        e--;
    size_t b = e;
    while (b > 0 && s_word(s[b - 1]))
        b--;
    static const char *const kinds[] = {
        "relation", "table",     "column",    "constraint", "index",     "type",
        "function", "schema",    "sequence",  "view",       "trigger",   "role",
        "database", "operator",  "cursor",    "savepoint",  "extension", "domain",
        "policy",   "statement", "procedure", "parameter",  NULL};
    for (const char *const *k = kinds; *k; k++)
        if (strlen(*k) == e - b && !strncasecmp(s + b, *k, e - b))
            return 1;
    return 0;
}

char *lf_log_mask_values(char *s) {
    if (!s)
        return s;
    size_t i = 0;
    while (s[i]) {
        char close = 0;
        if (s[i] == '"')
            close = '"';
        else if (s[i] == '(' && i > 0 && s[i - 1] == '=')
            close = ')';
        if (!close) {
            i++;
            continue;
        }
        size_t a = i + 1, b = a;
        while (s[b] && s[b] != close)
            b++;
        if (close == '"' && s_names_object(s, i)) {
            i = s[b] ? b + 1 : b;
            continue;
        }
        size_t stars = b - a < 3 ? b - a : 3; /* "***", or as many as characters */
        memset(s + a, '*', stars);
        memmove(s + a + stars, s + b, strlen(s + b) + 1);
        b = a + stars;
        i = s[b] ? b + 1 : b;
    }
    return s;
}
