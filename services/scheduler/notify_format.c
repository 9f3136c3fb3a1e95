/* notify_format.c - a notification in the shape each target expects, and what the
 * target's answer means.
 *
 * Every chat robot wants a different JSON: WeCom {"msgtype", "text"|"markdown"},
 * DingTalk the same names with an "at" block and a signed query, Feishu "msg_type"
 * text|post|interactive with the signature in the body, Slack {"text"}. The words are
 * the same for all: a Chinese title and one line per notification, from a template
 * per kind (built in below, overridable in config/notify.json), the lead's essentials
 * and a link to it. Several notifications waiting for one destination become one
 * message (title with the counts, the first max_lines items, "另有 N 条"), so a
 * handover of 500 leads is a few messages, not 500, and each stays under the
 * target's size limit.
 *
 * Signing uses OpenSSL's one-shot HMAC() and EVP_EncodeBlock(); nothing here does
 * I/O, so the unit tests check every body and signature byte for byte. */
#include "notify_format.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/log.h"
#include "lf/util.h"

static const char *const s_type_names[LF_DEST_NTYPES] = {"wecom", "dingtalk", "feishu",
                                                         "slack", "webhook",  "email"};

int lf_dest_type_parse(const char *name) {
    for (int i = 0; name && i < LF_DEST_NTYPES; i++)
        if (!strcmp(name, s_type_names[i]))
            return i;
    return -1;
}

const char *lf_dest_type_name(int type) {
    return type >= 0 && type < LF_DEST_NTYPES ? s_type_names[type] : "?";
}

/* ---- built-in wording ---- */

static const struct {
    const char *kind, *label, *text;
} s_builtin[] = {
    {"lead_assigned", "新线索分配",
     "{grade}级新线索：{name}（{company}），电话 {phone}，需求：{need}，预算：{budget}。"
     "请尽快联系。"},
    {"lead_reassigned", "线索改派",
     "{grade}级线索 {name}（{company}）已改派给你，电话 {phone}。请尽快联系。"},
    {"pool_waiting", "公海线索待领取",
     "{grade}级线索 {name}（{company}）在公海等待领取。"},
    {"inquiry", "客户再次咨询",
     "{name}（{company}）再次咨询，已并入原线索。需求：{need}。"},
    {"call", "客户来电", "{name}（{company}）来电，电话 {phone}。"},
    {"playbook", "阶段操作指引", "线索 {name}（{company}）进入新阶段：{message}"},
    {"sla_reminder", "首次联系超时提醒",
     "{grade}级线索 {name}（{company}）已超过首次联系时限，请立即联系客户，电话 "
     "{phone}。"},
    {"sla_escalation", "首次联系超时升级",
     "{grade}级线索 {name}（{company}）由 {owner} 负责，提醒后仍未联系，请督促跟进。"},
    {"follow_up_reminder", "跟进提醒",
     "线索 {name}（{company}）到了下一步跟进时间。{message}"},
    {"follow_up_overdue", "跟进逾期", "线索 {name}（{company}）的跟进已逾期。{message}"},
    {"stale_warning", "线索停滞预警",
     "线索 {name}（{company}）长时间没有进展，阶段：{stage}。{message}"},
    {"recycled", "线索已回收", "线索 {name}（{company}）因长期未跟进已回收到公海。"},
    {"reactivated", "线索再激活", "已流失的线索 {name}（{company}）重新激活。"},
    {"digest", "漏跟进周报", "{message}"},
    {"destination_paused", "通知通道已暂停", "{message}"},
    {NULL, "通知", "{message}"},
};

static int s_builtin_index(const char *kind) {
    int i = 0;
    for (; s_builtin[i].kind; i++)
        if (kind && !strcmp(kind, s_builtin[i].kind))
            return i;
    return i; /* the catch-all */
}

/* ---- a growing string ---- */

typedef struct {
    char *p;
    size_t len, cap;
} s_buf_t;

static void s_put(s_buf_t *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2 + 64;
        b->p = lf_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void s_puts(s_buf_t *b, const char *s) {
    s_put(b, s, strlen(s));
}

static void s_printf(s_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_printf(s_buf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    s_put(b, s, (size_t)n);
    free(s);
}

static char *s_take(s_buf_t *b) {
    if (!b->p)
        return lf_strdup("");
    return b->p;
}

/* Cuts s (in place) to at most max bytes at a UTF-8 character boundary, with "…". */
static void s_cut_utf8(char *s, size_t max) {
    size_t n = strlen(s);
    if (n <= max || max < 4)
        return;
    size_t end = max - 3;
    while (end > 0 && ((unsigned char)s[end] & 0xC0) == 0x80)
        end--;
    memcpy(s + end, "…", 3);
    s[end + 3] = '\0';
}

/* ---- templates ---- */

static const json_t *s_tpl(const lf_notify_style_t *st, const char *kind) {
    return st && st->templates ? json_object_get(st->templates, kind ? kind : "") : NULL;
}

static const char *s_label(const lf_notify_style_t *st, const char *kind) {
    const char *t = json_string_value(json_object_get(s_tpl(st, kind), "title"));
    return t ? t : s_builtin[s_builtin_index(kind)].label;
}

static const char *s_item_kind(const json_t *item) {
    return json_string_value(json_object_get(item, "kind"));
}

/* A link to the item's lead from the link template, or NULL (caller frees). */
static char *s_link(const json_t *item, const lf_notify_style_t *st) {
    const char *lead = json_string_value(json_object_get(item, "lead_id"));
    if (!st || !st->link || !*st->link || !lead)
        return NULL;
    s_buf_t b = {0};
    for (const char *p = st->link; *p;) {
        if (!strncmp(p, "{lead_id}", 9)) {
            /* Lead ids are UUIDs or [A-Za-z0-9._-]: nothing to escape. */
            s_puts(&b, lead);
            p += 9;
        } else {
            s_put(&b, p, 1);
            p++;
        }
    }
    return s_take(&b);
}

/* The value of placeholder `name` for item into out ("-" when unknown). */
static const char *s_var(const json_t *item, const lf_notify_style_t *st,
                         const char *name, char *out, size_t outsz) {
    const json_t *lead = json_object_get(item, "lead");
    const json_t *v = NULL;
    if (!strcmp(name, "label"))
        return s_label(st, s_item_kind(item));
    if (!strcmp(name, "phone")) {
        const char *ph = json_string_value(json_object_get(lead, "phone"));
        return ph ? lf_mask_phone(ph, out, outsz) : "-";
    }
    if (!strcmp(name, "phone_full"))
        v = json_object_get(lead, "phone");
    else if (!strcmp(name, "lead_id") || !strcmp(name, "kind") || !strcmp(name, "to") ||
             !strcmp(name, "message") || !strcmp(name, "at"))
        v = json_object_get(item, name);
    else
        v = json_object_get(lead, name);
    if (json_is_string(v) && json_string_length(v) > 0)
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(out, outsz, "%lld", (long long)json_integer_value(v));
        return out;
    }
    if (json_is_real(v)) {
        snprintf(out, outsz, "%g", json_real_value(v));
        return out;
    }
    return "-";
}

/* Expands "{name}" placeholders of tpl for item. Caller frees. */
static char *s_expand(const char *tpl, const json_t *item, const lf_notify_style_t *st) {
    s_buf_t b = {0};
    for (const char *p = tpl; *p;) {
        const char *close = p[0] == '{' ? strchr(p, '}') : NULL;
        if (close && close - p > 1 && close - p < 32) {
            char name[32], tmp[64];
            memcpy(name, p + 1, (size_t)(close - p - 1));
            name[close - p - 1] = '\0';
            s_puts(&b, s_var(item, st, name, tmp, sizeof tmp));
            p = close + 1;
        } else {
            s_put(&b, p, 1);
            p++;
        }
    }
    return s_take(&b);
}

/* The item's line text (template "text"), at most 400 bytes. Caller frees. */
static char *s_item_text(const json_t *item, const lf_notify_style_t *st) {
    const char *kind = s_item_kind(item);
    const char *t = json_string_value(json_object_get(s_tpl(st, kind), "text"));
    char *s = s_expand(t ? t : s_builtin[s_builtin_index(kind)].text, item, st);
    s_cut_utf8(s, 400);
    return s;
}

/* The message title: the kind's title for one item, the counts per kind for many.
 * Caller frees. */
static char *s_title(const json_t *items, const lf_notify_style_t *st) {
    size_t n = json_array_size(items);
    if (n == 1)
        return lf_strdup(s_label(st, s_item_kind(json_array_get(items, 0))));
    s_buf_t b = {0};
    s_printf(&b, "leadflow：共 %zu 条通知（", n);
    /* Counts per kind, in order of first appearance. */
    const char *seen[32];
    size_t counts[32], ns = 0;
    for (size_t i = 0; i < n; i++) {
        const char *k = s_item_kind(json_array_get(items, i));
        k = k ? k : "";
        size_t j = 0;
        while (j < ns && strcmp(seen[j], k))
            j++;
        if (j == ns && ns < 32) {
            seen[ns] = k;
            counts[ns++] = 0;
        }
        if (j < ns)
            counts[j]++;
    }
    for (size_t j = 0; j < ns; j++)
        s_printf(&b, "%s%s %zu", j ? "，" : "", s_label(st, seen[j]), counts[j]);
    s_puts(&b, "）");
    return s_take(&b);
}

/* ---- signatures ---- */

static void s_hmac_b64(const void *key, size_t klen, const void *msg, size_t mlen,
                       char *out, size_t outsz) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mlen_out = 0;
    HMAC(EVP_sha256(), key, (int)klen, msg, mlen, mac, &mlen_out);
    unsigned char b64[64];
    EVP_EncodeBlock(b64, mac, (int)mlen_out);
    lf_strlcpy(out, (const char *)b64, outsz);
}

void lf_sign_dingtalk(const char *secret, int64_t ts_ms, char *out, size_t outsz) {
    char *msg = NULL;
    int n = asprintf(&msg, "%lld\n%s", (long long)ts_ms, secret);
    if (n < 0)
        abort();
    s_hmac_b64(secret, strlen(secret), msg, (size_t)n, out, outsz);
    free(msg);
}

void lf_sign_feishu(const char *secret, int64_t ts_s, char *out, size_t outsz) {
    char *key = NULL;
    int n = asprintf(&key, "%lld\n%s", (long long)ts_s, secret);
    if (n < 0)
        abort();
    s_hmac_b64(key, (size_t)n, "", 0, out, outsz);
    free(key);
}

void lf_sign_webhook(const char *secret, const char *ts, const char *body, size_t len,
                     char out[65]) {
    size_t tl = strlen(ts);
    char *msg = lf_malloc(tl + 1 + len);
    memcpy(msg, ts, tl);
    msg[tl] = '.';
    memcpy(msg + tl + 1, body, len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)msg, tl + 1 + len,
         mac, &ml);
    free(msg);
    for (unsigned i = 0; i < ml && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
    out[64] = '\0';
}

/* Percent-encodes s for a query value. Caller frees. */
static char *s_query_escape(const char *s) {
    s_buf_t b = {0};
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
            (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '~')
            s_put(&b, (const char *)p, 1);
        else
            s_printf(&b, "%%%02X", *p);
    }
    return s_take(&b);
}

/* ---- the bodies ---- */

/* The lines of a chat message: each item's text with its link in the target's markup,
 * at most st->max_lines of them and about cap bytes, then "另有 N 条". */
typedef enum { S_MK_PLAIN, S_MK_MARKDOWN, S_MK_SLACK } s_markup_t;

static char *s_lines(const json_t *items, const lf_notify_style_t *st, s_markup_t mk,
                     size_t cap) {
    size_t n = json_array_size(items), shown = 0;
    int max = st && st->max_lines > 0 ? st->max_lines : 10;
    s_buf_t b = {0};
    for (size_t i = 0; i < n && shown < (size_t)max; i++) {
        const json_t *it = json_array_get(items, i);
        char *text = s_item_text(it, st);
        char *link = s_link(it, st);
        s_buf_t line = {0};
        if (mk == S_MK_MARKDOWN)
            s_puts(&line, n > 1 ? "- " : "");
        else
            s_puts(&line, n > 1 ? "• " : "");
        if (n > 1)
            s_printf(&line, "[%s] ", s_label(st, s_item_kind(it)));
        s_puts(&line, text);
        if (link) {
            if (mk == S_MK_MARKDOWN)
                s_printf(&line, " [查看](%s)", link);
            else if (mk == S_MK_SLACK)
                s_printf(&line, " <%s|查看>", link);
            else
                s_printf(&line, " %s", link);
        }
        s_puts(&line, "\n");
        free(text);
        free(link);
        if (shown > 0 && b.len + line.len > cap) {
            free(line.p);
            break;
        }
        s_put(&b, line.p, line.len);
        free(line.p);
        shown++;
    }
    if (shown < n)
        s_printf(&b, "……另有 %zu 条，请在 leadflow 中查看\n", n - shown);
    if (b.len && b.p[b.len - 1] == '\n')
        b.p[--b.len] = '\0';
    return s_take(&b);
}

static char *s_dump(json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static int s_has(const char *s) {
    return s && *s;
}

static int s_fmt_is(const lf_dest_t *d, const char *f) {
    return d->format && !strcmp(d->format, f);
}

static void s_wecom(const lf_dest_t *d, const json_t *items, const lf_notify_style_t *st,
                    const char *title, lf_notify_msg_t *m) {
    /* markdown cannot @-mention by mobile: with a `to`, text is the default. */
    int md = d->format ? s_fmt_is(d, "markdown") : !s_has(d->to);
    json_t *j;
    if (md) {
        char *lines = s_lines(items, st, S_MK_MARKDOWN, 3600);
        char *content = NULL;
        if (asprintf(&content, "**%s**\n%s", title, lines) < 0)
            abort();
        j = json_pack("{s:s, s:{s:s}}", "msgtype", "markdown", "markdown", "content",
                      content);
        free(content);
        free(lines);
    } else {
        char *lines = s_lines(items, st, S_MK_PLAIN, 1700);
        char *content = NULL;
        if (asprintf(&content, "【%s】\n%s", title, lines) < 0)
            abort();
        j = json_pack("{s:s, s:{s:s}}", "msgtype", "text", "text", "content", content);
        if (s_has(d->to))
            json_object_set_new(json_object_get(j, "text"), "mentioned_mobile_list",
                                json_pack("[s]", d->to));
        free(content);
        free(lines);
    }
    m->url = lf_strdup(d->url);
    m->body = s_dump(j);
}

static void s_dingtalk(const lf_dest_t *d, const json_t *items,
                       const lf_notify_style_t *st, const char *title, int64_t now_ms,
                       lf_notify_msg_t *m) {
    int md = !s_fmt_is(d, "text");
    char *lines = s_lines(items, st, md ? S_MK_MARKDOWN : S_MK_PLAIN, 3600);
    char at[80] = "";
    /* DingTalk @-mentions only when the text itself carries "@<mobile>". */
    if (s_has(d->to))
        snprintf(at, sizeof at, "\n@%.60s", d->to);
    char *text = NULL;
    json_t *j;
    if (md) {
        if (asprintf(&text, "#### %s\n%s%s", title, lines, at) < 0)
            abort();
        j = json_pack("{s:s, s:{s:s, s:s}}", "msgtype", "markdown", "markdown", "title",
                      title, "text", text);
    } else {
        if (asprintf(&text, "【%s】\n%s%s", title, lines, at) < 0)
            abort();
        j = json_pack("{s:s, s:{s:s}}", "msgtype", "text", "text", "content", text);
    }
    json_object_set_new(j, "at",
                        json_pack("{s:o, s:b}", "atMobiles",
                                  s_has(d->to) ? json_pack("[s]", d->to) : json_array(),
                                  "isAtAll", 0));
    free(text);
    free(lines);
    m->body = s_dump(j);
    if (s_has(d->secret)) {
        char sign[64];
        lf_sign_dingtalk(d->secret, now_ms, sign, sizeof sign);
        char *esc = s_query_escape(sign);
        if (asprintf(&m->url, "%s%ctimestamp=%lld&sign=%s", d->url,
                     strchr(d->url, '?') ? '&' : '?', (long long)now_ms, esc) < 0)
            abort();
        free(esc);
    } else {
        m->url = lf_strdup(d->url);
    }
}

static void s_feishu(const lf_dest_t *d, const json_t *items, const lf_notify_style_t *st,
                     const char *title, int64_t now_ms, lf_notify_msg_t *m) {
    json_t *j;
    if (s_fmt_is(d, "text")) {
        char *lines = s_lines(items, st, S_MK_PLAIN, 3600);
        char *text = NULL;
        if (asprintf(&text, "【%s】\n%s%s%s%s", title, lines,
                     s_has(d->to) ? "\n<at user_id=\"" : "", s_has(d->to) ? d->to : "",
                     s_has(d->to) ? "\"></at>" : "") < 0)
            abort();
        j = json_pack("{s:s, s:{s:s}}", "msg_type", "text", "content", "text", text);
        free(text);
        free(lines);
    } else if (s_fmt_is(d, "interactive")) {
        char *lines = s_lines(items, st, S_MK_MARKDOWN, 3600);
        char *md = NULL;
        if (asprintf(&md, "%s%s%s%s", lines, s_has(d->to) ? "\n<at id=" : "",
                     s_has(d->to) ? d->to : "", s_has(d->to) ? "></at>" : "") < 0)
            abort();
        j = json_pack("{s:s, s:{s:{s:{s:s, s:s}}, s:[{s:s, s:{s:s, s:s}}]}}", "msg_type",
                      "interactive", "card", "header", "title", "tag", "plain_text",
                      "content", title, "elements", "tag", "div", "text", "tag",
                      "lark_md", "content", md);
        free(md);
        free(lines);
    } else {
        /* post (rich text): one paragraph per item, its link an "a" element. */
        json_t *content = json_array();
        size_t n = json_array_size(items), shown = 0, bytes = 0;
        int max = st && st->max_lines > 0 ? st->max_lines : 10;
        for (size_t i = 0; i < n && shown < (size_t)max && bytes < 3600; i++) {
            const json_t *it = json_array_get(items, i);
            char *text = s_item_text(it, st);
            char *link = s_link(it, st);
            char *line = NULL;
            if (asprintf(&line, "%s%s%s%s", n > 1 ? "[" : "",
                         n > 1 ? s_label(st, s_item_kind(it)) : "", n > 1 ? "] " : "",
                         text) < 0)
                abort();
            json_t *para = json_pack("[{s:s, s:s}]", "tag", "text", "text", line);
            if (link)
                json_array_append_new(para, json_pack("{s:s, s:s, s:s}", "tag", "a",
                                                      "text", " 查看", "href", link));
            json_array_append_new(content, para);
            bytes += strlen(line);
            free(line);
            free(text);
            free(link);
            shown++;
        }
        if (shown < n) {
            char more[96];
            snprintf(more, sizeof more, "……另有 %zu 条，请在 leadflow 中查看", n - shown);
            json_array_append_new(content,
                                  json_pack("[{s:s, s:s}]", "tag", "text", "text", more));
        }
        if (s_has(d->to))
            json_array_append_new(
                content, json_pack("[{s:s, s:s}]", "tag", "at", "user_id", d->to));
        j = json_pack("{s:s, s:{s:{s:{s:s, s:o}}}}", "msg_type", "post", "content",
                      "post", "zh_cn", "title", title, "content", content);
    }
    if (s_has(d->secret)) {
        int64_t ts = now_ms / 1000;
        char sign[64], tss[24];
        lf_sign_feishu(d->secret, ts, sign, sizeof sign);
        snprintf(tss, sizeof tss, "%lld", (long long)ts);
        json_object_set_new(j, "timestamp", json_string(tss));
        json_object_set_new(j, "sign", json_string(sign));
    }
    m->url = lf_strdup(d->url);
    m->body = s_dump(j);
}

static void s_slack(const lf_dest_t *d, const json_t *items, const lf_notify_style_t *st,
                    const char *title, lf_notify_msg_t *m) {
    char *lines = s_lines(items, st, S_MK_SLACK, 2800);
    char *text = NULL;
    if (asprintf(&text, "%s%s%s*%s*\n%s", s_has(d->to) ? "<@" : "",
                 s_has(d->to) ? d->to : "", s_has(d->to) ? "> " : "", title, lines) < 0)
        abort();
    m->url = lf_strdup(d->url);
    m->body = s_dump(json_pack("{s:s}", "text", text));
    free(text);
    free(lines);
}

static void s_email(const lf_dest_t *d, const json_t *items, const lf_notify_style_t *st,
                    const char *title, lf_notify_msg_t *m) {
    /* Mail has room: every item is listed (a merged batch is at most a few hundred). */
    lf_notify_style_t all = st ? *st : (lf_notify_style_t){0};
    all.max_lines = 1000;
    char *lines = s_lines(items, &all, S_MK_PLAIN, (size_t)1 << 22);
    s_buf_t b = {0};
    s_printf(&b, "%s\n\n%s\n\n-- \nleadflow\n", title, lines);
    free(lines);
    m->body = s_take(&b);
    (void)d;
}

static void s_webhook(const lf_dest_t *d, const json_t *items,
                      const lf_notify_style_t *st, const char *title,
                      const char *delivery_id, int64_t now_ms, lf_notify_msg_t *m) {
    json_t *list = json_array();
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        json_t *c = json_deep_copy(it);
        char *text = s_item_text(it, st);
        char *link = s_link(it, st);
        json_object_set_new(c, "title", json_string(s_label(st, s_item_kind(it))));
        json_object_set_new(c, "text", json_string(text));
        json_object_set_new(c, "link", link ? json_string(link) : json_null());
        json_array_append_new(list, c);
        free(text);
        free(link);
    }
    m->url = lf_strdup(d->url);
    m->body = s_dump(json_pack(
        "{s:s, s:s, s:I, s:o}", "delivery_id", delivery_id ? delivery_id : "", "title",
        title, "count", (json_int_t)json_array_size(items), "notifications", list));
    char ts[24];
    snprintf(ts, sizeof ts, "%lld", (long long)(now_ms / 1000));
    if (asprintf(&m->headers[m->nheaders++], "X-Leadflow-Timestamp: %s", ts) < 0 ||
        asprintf(&m->headers[m->nheaders++], "X-Leadflow-Delivery: %s",
                 delivery_id ? delivery_id : "") < 0)
        abort();
    if (s_has(d->secret)) {
        char sig[65];
        lf_sign_webhook(d->secret, ts, m->body, strlen(m->body), sig);
        if (asprintf(&m->headers[m->nheaders++], "X-Leadflow-Signature: sha256=%s", sig) <
            0)
            abort();
    }
}

int lf_notify_render(const lf_dest_t *d, const json_t *items, const lf_notify_style_t *st,
                     const char *delivery_id, int64_t now_ms, lf_notify_msg_t *out) {
    memset(out, 0, sizeof *out);
    if (!d || !json_is_array(items) || json_array_size(items) == 0)
        return -1;
    if (d->type != LF_DEST_EMAIL && !s_has(d->url))
        return -1;
    char *title = s_title(items, st);
    switch (d->type) {
    case LF_DEST_WECOM:
        s_wecom(d, items, st, title, out);
        break;
    case LF_DEST_DINGTALK:
        s_dingtalk(d, items, st, title, now_ms, out);
        break;
    case LF_DEST_FEISHU:
        s_feishu(d, items, st, title, now_ms, out);
        break;
    case LF_DEST_SLACK:
        s_slack(d, items, st, title, out);
        break;
    case LF_DEST_WEBHOOK:
        s_webhook(d, items, st, title, delivery_id, now_ms, out);
        break;
    case LF_DEST_EMAIL:
        s_email(d, items, st, title, out);
        break;
    default:
        free(title);
        return -1;
    }
    out->subject = title;
    return 0;
}

void lf_notify_msg_clear(lf_notify_msg_t *m) {
    if (!m)
        return;
    free(m->url);
    free(m->body);
    free(m->subject);
    for (int i = 0; i < m->nheaders; i++)
        free(m->headers[i]);
    memset(m, 0, sizeof *m);
}

/* ---- answers ---- */

/* Robot error codes that mean "later" rather than "never". Everything else a robot
 * refuses with (bad signature 310000/19021, keyword 310000/19024, IP 310000/19022,
 * a deleted robot 93000/300001, a malformed message) stays refused however often it
 * is sent. */
static int s_robot_retry(int type, long code, long *retry_after_s) {
    switch (type) {
    case LF_DEST_WECOM:
        return code == -1 || code == 45009 || code == 45033;
    case LF_DEST_DINGTALK:
        if (code == 130101) { /* too fast: the robot is blocked for 10 minutes */
            *retry_after_s = 600;
            return 1;
        }
        return code == -1 || code == 130102;
    case LF_DEST_FEISHU:
        return code == 9499 || code == 11232 || code == 11233 || code == -1;
    default:
        return 0;
    }
}

lf_send_result_t lf_notify_classify(int type, long status, const char *body,
                                    long retry_after, char *err, size_t errsz,
                                    long *retry_after_s) {
    *retry_after_s = retry_after >= 0 ? retry_after : -1;
    char snippet[160];
    lf_strlcpy(snippet, body ? body : "", sizeof snippet);
    for (char *p = snippet; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    if (status == 0) {
        snprintf(err, errsz, "no answer");
        return LF_SEND_RETRY;
    }
    int robot =
        type == LF_DEST_WECOM || type == LF_DEST_DINGTALK || type == LF_DEST_FEISHU;
    /* The robots' own error code, wherever the HTTP status says otherwise. */
    json_t *j = robot && body ? json_loads(body, JSON_DECODE_ANY, NULL) : NULL;
    const json_t *c = json_object_get(j, type == LF_DEST_FEISHU ? "code" : "errcode");
    if (!c && type == LF_DEST_FEISHU)
        c = json_object_get(j, "StatusCode");
    long code = json_is_integer(c) ? (long)json_integer_value(c) : 0;
    int has_code = json_is_integer(c);
    json_decref(j);
    if (status == 408 || status == 429 || status >= 500) {
        snprintf(err, errsz, "HTTP %ld %s", status, snippet);
        return LF_SEND_RETRY;
    }
    if (has_code && code != 0) {
        snprintf(err, errsz, "HTTP %ld code %ld %s", status, code, snippet);
        return s_robot_retry(type, code, retry_after_s) ? LF_SEND_RETRY : LF_SEND_DEAD;
    }
    if (status >= 200 && status < 300) {
        if (type == LF_DEST_SLACK && body && *body && strcmp(body, "ok") != 0) {
            snprintf(err, errsz, "HTTP %ld %s", status, snippet);
            return LF_SEND_DEAD;
        }
        err[0] = '\0';
        return LF_SEND_OK;
    }
    snprintf(err, errsz, "HTTP %ld %s", status, snippet);
    return LF_SEND_DEAD; /* 3xx (not followed) and 4xx other than 408/429 */
}
