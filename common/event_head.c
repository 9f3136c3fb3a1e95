/* event_head.c - an envelope's seq, type and lead_id read from its text.
 *
 * jsmn (Debian's libjsmn-dev, a header-only tokenizer) splits the text into tokens in
 * a fixed array on the stack: no allocation, no tree. The top-level keys are then
 * walked once; the values of other keys are skipped whole. Only what this reader can
 * judge exactly as jansson would is judged here; anything else (an escape in a key or
 * in a value it returns, a seq that is not plain digits, a text jsmn does not take) is
 * left to the whole parse (LF_HEAD_WHOLE), so an envelope is never read differently
 * by the two paths. What the head reader does not check is the rest of the text
 * beyond its tokens' shape (numbers, UTF-8): a consumer of seqs reads the event from
 * its outbox row, not from the message. */
#include "lf/event_head.h"

#include <string.h>

#define JSMN_STATIC
#define JSMN_STRICT
#include <jsmn.h>

/* Tokens of the largest envelope read here; a lead.created envelope with a full lead
 * has about 90. More: LF_HEAD_WHOLE. */
#define S_TOKENS 256

static int s_key_is(const char *text, const jsmntok_t *t, const char *key) {
    size_t n = (size_t)(t->end - t->start);
    return strlen(key) == n && memcmp(text + t->start, key, n) == 0;
}

/* A string token with an escape or a control character in it: jansson unescapes the
 * one and refuses the other, so such a text is left to it. */
static int s_escaped(const char *text, const jsmntok_t *t) {
    for (int k = t->start; k < t->end; k++)
        if (text[k] == '\\' || (unsigned char)text[k] < 0x20)
            return 1;
    return 0;
}

/* The index of the token after the value at i and everything inside it. */
static int s_skip(const jsmntok_t *tok, int ntok, int i) {
    int end = tok[i].end;
    for (i++; i < ntok && tok[i].start < end; i++)
        ;
    return i;
}

/* A seq as jansson reads an integer that lf_event_seq accepts: digits, no sign or
 * leading zero, at most 18 of them (below 2^63). 0: anything else. */
static long long s_seq(const char *text, const jsmntok_t *t) {
    int n = t->end - t->start;
    const char *p = text + t->start;
    if (t->type != JSMN_PRIMITIVE || n < 1 || n > 18 || p[0] < '1' || p[0] > '9')
        return 0;
    long long v = 0;
    for (int k = 0; k < n; k++) {
        if (p[k] < '0' || p[k] > '9')
            return 0;
        v = v * 10 + (p[k] - '0');
    }
    return v;
}

static int s_listed(const char *text, const jsmntok_t *key, const char *const *list) {
    for (; list && *list; list++)
        if (s_key_is(text, key, *list))
            return 1;
    return 0;
}

/* A kept value as jansson would read it: a string without escapes or null. Returns 1
 * and sets *v (a new reference), 0 when the text must be parsed whole, -1 when the
 * string is not UTF-8 (jansson refuses the whole text). */
static int s_value(const char *text, const jsmntok_t *t, json_t **v) {
    *v = NULL;
    if (t->type == JSMN_PRIMITIVE && t->end - t->start == 4 &&
        !memcmp(text + t->start, "null", 4)) {
        *v = json_null();
        return 1;
    }
    if (t->type != JSMN_STRING || s_escaped(text, t))
        return 0;
    *v = json_stringn(text + t->start, (size_t)(t->end - t->start));
    return *v ? 1 : -1;
}

/* Copies into obj the keys of list found among the n pairs of the object token at o
 * (the last of a repeated key counts). Returns 1, 0 (parse whole) or -1 (malformed). */
static int s_keep(const char *text, const jsmntok_t *tok, int ntok, int o,
                  const char *const *list, json_t *obj) {
    int i = o + 1;
    for (int pair = 0; pair < tok[o].size; pair++) {
        if (i + 1 >= ntok || tok[i].type != JSMN_STRING || s_escaped(text, &tok[i]))
            return 0;
        if (s_listed(text, &tok[i], list)) {
            json_t *v;
            int rc = s_value(text, &tok[i + 1], &v);
            if (rc <= 0)
                return rc;
            json_object_setn_new_nocheck(obj, text + tok[i].start,
                                         (size_t)(tok[i].end - tok[i].start), v);
        }
        i = s_skip(tok, ntok, i + 1);
    }
    return 1;
}

lf_head_rc lf_event_head(const char *text, size_t len, const lf_head_keep_t *keep,
                         json_t **out) {
    *out = NULL;
    jsmn_parser parser;
    jsmntok_t tok[S_TOKENS];
    jsmn_init(&parser);
    int ntok = jsmn_parse(&parser, text, len, tok, S_TOKENS);
    if (ntok < 1 || tok[0].type != JSMN_OBJECT)
        return LF_HEAD_WHOLE;
    /* The object must be the whole text (jansson refuses anything after it). */
    for (size_t k = (size_t)tok[0].end; k < len; k++)
        if (text[k] != ' ' && text[k] != '\t' && text[k] != '\r' && text[k] != '\n')
            return LF_HEAD_WHOLE;
    if (s_skip(tok, ntok, 0) != ntok)
        return LF_HEAD_WHOLE;
    const jsmntok_t *seq = NULL, *type = NULL, *lead = NULL;
    int payload = -1;
    int i = 1;
    for (int pair = 0; pair < tok[0].size; pair++) {
        if (i + 1 >= ntok || tok[i].type != JSMN_STRING)
            return LF_HEAD_WHOLE;
        const jsmntok_t *key = &tok[i], *val = &tok[i + 1];
        if (s_escaped(text, key))
            return LF_HEAD_WHOLE;
        /* A key given twice: the last one counts, as in jansson's object. */
        if (s_key_is(text, key, "seq"))
            seq = val;
        else if (s_key_is(text, key, "type"))
            type = val;
        else if (s_key_is(text, key, "lead_id"))
            lead = val;
        else if (s_key_is(text, key, "payload"))
            payload = i + 1;
        i = s_skip(tok, ntok, i + 1);
    }
    if (!seq || !type || type->type != JSMN_STRING)
        return LF_HEAD_MALFORMED;
    long long n = s_seq(text, seq);
    if (n <= 0) /* a real, a sign, a leading zero, too many digits: not a seq here */
        return seq->type == JSMN_PRIMITIVE && text[seq->start] >= '0' &&
                       text[seq->start] <= '9' && seq->end - seq->start > 18
                   ? LF_HEAD_WHOLE
                   : LF_HEAD_MALFORMED;
    if (s_escaped(text, type) ||
        (lead && lead->type == JSMN_STRING && s_escaped(text, lead)))
        return LF_HEAD_WHOLE;
    if (keep && keep->type && !s_key_is(text, type, keep->type))
        return LF_HEAD_WHOLE;
    json_t *env = json_object();
    json_object_set_new_nocheck(env, "seq", json_integer((json_int_t)n));
    json_t *s = json_stringn(text + type->start, (size_t)(type->end - type->start));
    int rc = s ? 1 : -1; /* not UTF-8: jansson's parse refuses the text */
    if (s)
        json_object_set_new_nocheck(env, "type", s);
    if (rc > 0 && lead && lead->type == JSMN_STRING) {
        s = json_stringn(text + lead->start, (size_t)(lead->end - lead->start));
        rc = s ? 1 : -1;
        if (s)
            json_object_set_new_nocheck(env, "lead_id", s);
    }
    if (rc > 0 && keep && keep->top)
        rc = s_keep(text, tok, ntok, 0, keep->top, env);
    if (rc > 0 && keep && keep->payload && payload >= 0) {
        if (tok[payload].type != JSMN_OBJECT) {
            rc = 0;
        } else {
            json_t *pl = json_object();
            json_object_set_new_nocheck(env, "payload", pl);
            rc = s_keep(text, tok, ntok, payload, keep->payload, pl);
        }
    }
    if (rc <= 0) {
        json_decref(env);
        return rc < 0 ? LF_HEAD_MALFORMED : LF_HEAD_WHOLE;
    }
    *out = env;
    return LF_HEAD_OK;
}
