/* tz.c - time zones as tables of UTC offsets (see tz.h).
 *
 * setenv("TZ") + localtime_r is not thread-safe and costs a system call path per
 * lookup, so a zone is resolved once into a table of UTC offsets: fixed offsets
 * ("+08:00", "-0530", "UTC") directly, IANA names by reading the TZif file under $TZDIR
 * or /usr/share/zoneinfo (the 64-bit v2+ block, RFC 8536). A lookup is then a binary
 * search over transitions, pure arithmetic on read-only data; nothing here calls
 * tzset() or reads TZ. Instants after the file's last transition keep the last offset;
 * Debian ships "fat" TZif files whose transitions run to 2037, so the POSIX-rule footer
 * is not needed before then. */
#include "lf/tz.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/util.h"

#define S_TZIF_MAX (1 << 20)

struct lf_tz {
    char name[64];    /* as it was written */
    int64_t *trans;   /* transition instants, ascending; NULL for a fixed offset */
    int32_t *offs;    /* UTC offset in seconds from trans[i] on */
    size_t n;         /* transitions */
    int32_t base_off; /* offset before the first transition (or the fixed offset) */
};

int32_t lf_tz_offset(const lf_tz_t *tz, int64_t t) {
    if (tz->n == 0 || t < tz->trans[0])
        return tz->base_off;
    size_t lo = 0, hi = tz->n; /* find the last transition <= t */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return tz->offs[lo];
}

/* "+08:00", "-0530", "+8", "UTC", "Z": a fixed offset. Returns false if it is not one. */
static bool s_tz_fixed(const char *s, int32_t *off) {
    if (!strcmp(s, "UTC") || !strcmp(s, "Z") || !strcmp(s, "GMT") ||
        !strcmp(s, "Etc/UTC")) {
        *off = 0;
        return true;
    }
    if (!strncmp(s, "UTC", 3) && (s[3] == '+' || s[3] == '-'))
        s += 3;
    if (*s != '+' && *s != '-')
        return false;
    int sign = *s == '-' ? -1 : 1, hh = 0, mm = 0, digits = 0;
    const char *p = s + 1;
    while (*p >= '0' && *p <= '9' && digits < 2)
        hh = hh * 10 + (*p++ - '0'), digits++;
    if (digits == 0)
        return false;
    if (*p == ':')
        p++;
    if (*p) {
        if (!(p[0] >= '0' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' && p[2] == '\0'))
            return false;
        mm = (p[0] - '0') * 10 + (p[1] - '0');
    }
    if (hh > 14)
        return false;
    *off = sign * (hh * 3600 + mm * 60);
    return true;
}

static uint32_t s_be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t s_be64(const unsigned char *p) {
    return (uint64_t)s_be32(p) << 32 | s_be32(p + 4);
}

/* Parses a TZif file (RFC 8536) into `tz`; uses the 64-bit block when there is one. */
static int s_tzif_parse(const unsigned char *buf, size_t len, lf_tz_t *tz) {
    const unsigned char *p = buf;
    size_t left = len;
    for (int pass = 0; pass < 2; pass++) {
        if (left < 44 || memcmp(p, "TZif", 4) != 0)
            return -1;
        int v2 = p[4] >= '2';
        uint32_t isut = s_be32(p + 20), isstd = s_be32(p + 24), leap = s_be32(p + 28);
        uint32_t timecnt = s_be32(p + 32), typecnt = s_be32(p + 36),
                 charcnt = s_be32(p + 40);
        size_t tsz = pass == 0 ? 4 : 8;
        if (timecnt > 100000 || typecnt == 0 || typecnt > 256 || charcnt > 100000 ||
            leap > 100000 || isut > 256 || isstd > 256)
            return -1;
        size_t body = timecnt * tsz + timecnt + typecnt * 6 + charcnt + leap * (tsz + 4) +
                      isstd + isut;
        if (left - 44 < body)
            return -1;
        if (pass == 0 && v2) { /* skip the 32-bit block, read the 64-bit one */
            p += 44 + body;
            left -= 44 + body;
            continue;
        }
        const unsigned char *times = p + 44, *idx = times + timecnt * tsz;
        const unsigned char *types = idx + timecnt;
        tz->trans = lf_calloc(timecnt, sizeof *tz->trans);
        tz->offs = lf_calloc(timecnt, sizeof *tz->offs);
        for (uint32_t i = 0; i < timecnt; i++) {
            if (idx[i] >= typecnt)
                return -1;
            tz->trans[i] = tsz == 8 ? (int64_t)s_be64(times + 8 * i)
                                    : (int64_t)(int32_t)s_be32(times + 4 * i);
            tz->offs[i] = (int32_t)s_be32(types + 6 * idx[i]);
            if (i > 0 && tz->trans[i] <= tz->trans[i - 1])
                return -1;
        }
        tz->n = timecnt;
        tz->base_off = (int32_t)s_be32(types); /* RFC 8536: type 0 before the first one */
        return 0;
    }
    return -1;
}

static int s_tz_load(lf_tz_t *tz, const char *name, char *err, size_t errsz) {
    snprintf(tz->name, sizeof tz->name, "%s", name);
    if (s_tz_fixed(name, &tz->base_off))
        return 0;
    /* Only plain zone names: no way out of the zoneinfo directory. */
    bool ok = *name && *name != '/' && !strstr(name, "..");
    for (const char *c = name; ok && *c; c++)
        ok = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
             (*c >= '0' && *c <= '9') || *c == '/' || *c == '_' || *c == '-' || *c == '+';
    if (!ok) {
        snprintf(err, errsz, "not a time zone name or offset: \"%s\"", name);
        return -1;
    }
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errsz, "unknown time zone \"%s\" (%s)", name, strerror(errno));
        return -1;
    }
    unsigned char *buf = lf_calloc(S_TZIF_MAX, 1);
    size_t len = fread(buf, 1, S_TZIF_MAX, f);
    fclose(f);
    int rc = s_tzif_parse(buf, len, tz);
    free(buf);
    if (rc != 0)
        snprintf(err, errsz, "time zone \"%s\": not a valid TZif file", name);
    return rc;
}

lf_tz_t *lf_tz_load(const char *name, char *err, size_t errsz) {
    if (!name || strlen(name) >= 64) {
        snprintf(err, errsz, "not a time zone name or offset");
        return NULL;
    }
    lf_tz_t *tz = lf_calloc(1, sizeof *tz);
    if (s_tz_load(tz, name, err, errsz) != 0)
        lf_tz_destroy(&tz);
    return tz;
}

void lf_tz_destroy(lf_tz_t **self_p) {
    if (!self_p || !*self_p)
        return;
    free((*self_p)->trans);
    free((*self_p)->offs);
    free(*self_p);
    *self_p = NULL;
}

const char *lf_tz_name(const lf_tz_t *tz) {
    return tz->name;
}

int64_t lf_tz_from_local(const lf_tz_t *tz, int64_t local) {
    /* Guess with the offset at `local` read as UTC, then correct once with the offset
     * in effect at the guess; a second correction settles the DST edges. */
    int64_t t = local - lf_tz_offset(tz, local);
    int32_t off = lf_tz_offset(tz, t);
    if (local - off != t) {
        int64_t t2 = local - off;
        if (lf_tz_offset(tz, t2) == off)
            return t2 < t ? t2 : t;
    }
    return t;
}
