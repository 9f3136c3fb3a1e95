/* parse.c: bodies of single-lead requests (POST /v1/leads, POST /v1/calls) into jansson.
 *
 * Web forms and the Twilio voice webhook send application/x-www-form-urlencoded; API
 * clients and phone systems send JSON. Both are hostile input from the internet, so each
 * parser is strict where leniency would let bad data through (invalid %-escapes, bytes
 * that are not UTF-8, duplicate JSON keys whose "winner" depends on the parser) and
 * rejects early what would cost us resources: JSON nesting is measured by a cheap scan
 * over the bytes before jansson, which recurses per level, ever sees the document.
 * Content-Type is parsed here too because choosing the parser, and the CSV charset,
 * depends on it. */
#include "parse.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistr.h>

#define s_oom()                                                                          \
    do {                                                                                 \
        fprintf(stderr, "FATAL out of memory at %s:%d\n", __FILE__, __LINE__);           \
        abort();                                                                         \
    } while (0)

/* Decodes one form component into `out` (room for n bytes). Returns the decoded length,
 * or -1 with *why on a bad escape or a NUL byte: C code downstream treats strings as
 * NUL-terminated, so an embedded NUL could make two different values look equal. */
static long s_form_decode(const char *s, size_t n, char *out, const char **why) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            /* Both hex digits must be inside this component: "%4" at the end is bad. */
            int hi = i + 1 < n ? OPENSSL_hexchar2int((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? OPENSSL_hexchar2int((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                *why = "form body has an invalid %-escape";
                return -1;
            }
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0') {
            *why = "form body contains a NUL byte";
            return -1;
        }
        out[o++] = (char)c;
    }
    return (long)o;
}

json_t *lf_parse_form(const char *body, size_t len, const char **why) {
    static const char *unused;
    if (!why)
        why = &unused;
    json_t *obj = json_object();
    char *key = malloc(len + 1), *val = malloc(len + 1);
    if (!obj || !key || !val)
        s_oom();
    size_t i = 0;
    while (i < len) {
        const char *pair = body + i;
        const char *amp = memchr(pair, '&', len - i);
        size_t plen = amp ? (size_t)(amp - pair) : len - i;
        i += plen + 1;
        if (plen == 0)
            continue;
        const char *eq = memchr(pair, '=', plen);
        size_t klen = eq ? (size_t)(eq - pair) : plen;
        long kn = s_form_decode(pair, klen, key, why);
        long vn = kn < 0 ? -1 : eq ? s_form_decode(eq + 1, plen - klen - 1, val, why) : 0;
        if (kn < 0 || vn < 0)
            goto fail;
        if (kn == 0) {
            *why = "form body has a field without a name";
            goto fail;
        }
        if (u8_check((const uint8_t *)key, (size_t)kn) ||
            u8_check((const uint8_t *)val, (size_t)vn)) {
            *why = "form body is not valid UTF-8 after decoding";
            goto fail;
        }
        key[kn] = '\0';
        json_t *s = json_stringn(val, (size_t)vn);
        if (!s || json_object_set_new(obj, key, s) != 0)
            s_oom();
    }
    free(key);
    free(val);
    return obj;
fail:
    free(key);
    free(val);
    json_decref(obj);
    return NULL;
}

/* Returns 1 if the document nests arrays/objects deeper than LF_JSON_MAX_DEPTH. Brackets
 * inside strings do not count; the scan does not validate anything else, jansson does. */
static int s_too_deep(const char *s, size_t n) {
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > LF_JSON_MAX_DEPTH)
                return 1;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 0;
}

static void s_detail(char *detail, size_t detailsz, const char *msg) {
    if (detail && detailsz)
        snprintf(detail, detailsz, "%s", msg);
}

json_t *lf_parse_json_object(const char *body, size_t len, const char **why, char *detail,
                             size_t detailsz) {
    static const char *unused;
    if (!why)
        why = &unused;
    size_t ws = 0;
    while (ws < len && strchr(" \t\r\n", body[ws]) && body[ws] != '\0')
        ws++;
    if (ws == len) {
        *why = "body is empty";
        s_detail(detail, detailsz, *why);
        return NULL;
    }
    if (s_too_deep(body, len)) {
        *why = "nesting too deep";
        s_detail(detail, detailsz, *why);
        return NULL;
    }
    json_error_t err;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (!doc) {
        *why = "body is not valid JSON";
        if (detail && detailsz)
            snprintf(detail, detailsz, "body is not valid JSON: %s at line %d column %d",
                     err.text, err.line, err.column);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        *why = "body must be a JSON object";
        s_detail(detail, detailsz, *why);
        return NULL;
    }
    return doc;
}

/* RFC 9110 token characters. */
static int s_tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *s_ows(const char *p) {
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Copies a lower-cased token of n bytes into out. Returns -1 if it does not fit. */
static int s_copy_lower(const char *s, size_t n, char *out, size_t outsz) {
    if (n >= outsz)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
    out[n] = '\0';
    return 0;
}

int lf_parse_content_type(const char *header, char *media, size_t msz, char *charset,
                          size_t csz) {
    if (!media || !msz || !charset || !csz)
        return -1;
    media[0] = charset[0] = '\0';
    if (!header)
        return -1;
    const char *p = s_ows(header), *t = p;
    while (s_tchar((unsigned char)*p))
        p++;
    if (p == t || *p != '/')
        goto bad;
    p++;
    const char *sub = p;
    while (s_tchar((unsigned char)*p))
        p++;
    if (p == sub || s_copy_lower(t, (size_t)(p - t), media, msz) != 0)
        goto bad;
    int have_charset = 0;
    for (;;) {
        p = s_ows(p);
        if (*p == '\0')
            break;
        if (*p != ';')
            goto bad;
        p = s_ows(p + 1);
        if (*p == ';' || *p == '\0')
            continue;
        const char *name = p;
        while (s_tchar((unsigned char)*p))
            p++;
        size_t nlen = (size_t)(p - name);
        if (nlen == 0 || *p != '=')
            goto bad;
        p++;
        char value[128];
        size_t vlen = 0;
        if (*p == '"') {
            for (p++; *p != '"'; p++) {
                if (*p == '\\' && p[1])
                    p++;
                if (*p == '\0' || (unsigned char)*p < 0x20 || vlen + 1 >= sizeof value)
                    goto bad;
                value[vlen++] = *p;
            }
            p++;
        } else {
            while (s_tchar((unsigned char)*p)) {
                if (vlen + 1 >= sizeof value)
                    goto bad;
                value[vlen++] = *p++;
            }
            if (vlen == 0)
                goto bad;
        }
        value[vlen] = '\0';
        if (nlen == 7 && strncasecmp(name, "charset", 7) == 0 && !have_charset) {
            have_charset = 1;
            if (s_copy_lower(value, vlen, charset, csz) != 0)
                goto bad;
        }
    }
    return 0;
bad:
    media[0] = charset[0] = '\0';
    return -1;
}
