/* log.c - stderr logging with masking of personal data.
 *
 * Each call formats the whole line first and writes it with one fputs on a
 * line-buffered stream, so lines from different threads do not interleave. */
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
    /* Keep the first 6 and last 4 characters, as Chinese carriers print numbers. */
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
