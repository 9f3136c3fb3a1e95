/* notify_format.h - one notification message in the target's own format: WeCom,
 * DingTalk and Feishu robots, Slack incoming webhooks, e-mail and signed generic
 * webhooks; their signatures; and what their answers mean. Pure functions: no I/O. */
#ifndef LF_SCHEDULER_NOTIFY_FORMAT_H
#define LF_SCHEDULER_NOTIFY_FORMAT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    LF_DEST_WECOM = 0,
    LF_DEST_DINGTALK,
    LF_DEST_FEISHU,
    LF_DEST_SLACK,
    LF_DEST_WEBHOOK,
    LF_DEST_EMAIL,
    LF_DEST_NTYPES
} lf_dest_type_t;

/* "wecom" ... "email" -> LF_DEST_*, or -1. */
int lf_dest_type_parse(const char *name);
/* LF_DEST_* -> its name ("?" when out of range). Static string. */
const char *lf_dest_type_name(int type);

/* A destination. All borrowed. */
typedef struct {
    int type;           /* LF_DEST_* */
    const char *url;    /* robot / webhook URL; unused for e-mail */
    const char *secret; /* signing secret or NULL */
    const char *to;     /* whom to @-mention (mobile, Feishu user id, Slack user id) or
                           the e-mail address; NULL for none */
    const char *format; /* "text", "markdown", "post", "interactive" or NULL: the
                           target's default */
} lf_dest_t;

/* How messages are worded: one {title, text} template per notification kind
 * (config/notify.json "templates", merged over the built-in Chinese ones), the link
 * to a lead (LEADFLOW_LINK_TEMPLATE, "{lead_id}" replaced), and how many items a
 * merged message lists before "另有 N 条". */
typedef struct {
    const json_t *templates; /* borrowed, may be NULL: {"<kind>": {"title", "text"}} */
    const char *link;        /* borrowed, may be NULL: no link */
    int max_lines;           /* items listed in a merged chat message (>= 1) */
} lf_notify_style_t;

/* A request ready to send. Everything owned; lf_notify_msg_clear frees it. */
typedef struct {
    char *url;        /* where to POST (with DingTalk's signed query); NULL for e-mail */
    char *body;       /* JSON for HTTP targets, the plain-text body for e-mail */
    char *subject;    /* e-mail subject (also set for the others: the title) */
    char *headers[4]; /* extra "Name: value" headers (generic webhook signature) */
    int nheaders;
} lf_notify_msg_t;

/* Renders items - a JSON array of notifications, each {"id", "kind", "to",
 * "lead_id", "message", "at", "lead": {"name", "company", "phone", "grade", "stage",
 * "need", "budget", "owner", ...}} - as one message for d. Several items make one
 * merged message. delivery_id goes into X-Leadflow-Delivery; now_ms is the signing
 * time. Returns 0 and fills *out, or -1 (unknown type, empty items). */
int lf_notify_render(const lf_dest_t *d, const json_t *items, const lf_notify_style_t *st,
                     const char *delivery_id, int64_t now_ms, lf_notify_msg_t *out);
void lf_notify_msg_clear(lf_notify_msg_t *m);

/* DingTalk: base64 HMAC-SHA256 keyed with secret over "<ts_ms>\n<secret>" (not yet
 * URL-encoded). out needs 45 bytes. */
void lf_sign_dingtalk(const char *secret, int64_t ts_ms, char *out, size_t outsz);
/* Feishu/Lark: base64 HMAC-SHA256 keyed with "<ts_s>\n<secret>" over an empty
 * message. out needs 45 bytes. */
void lf_sign_feishu(const char *secret, int64_t ts_s, char *out, size_t outsz);
/* Generic webhook: hex HMAC-SHA256 keyed with secret over "<ts>.<body>". */
void lf_sign_webhook(const char *secret, const char *ts, const char *body, size_t len,
                     char out[65]);

/* What an answer means. */
typedef enum { LF_SEND_OK = 0, LF_SEND_RETRY, LF_SEND_DEAD } lf_send_result_t;

/* Classifies an HTTP answer of a destination of `type`: status (0 when no answer
 * arrived: network error or timeout, always a retry), the body (may be NULL) and the
 * Retry-After header value in seconds (-1 none). Robots answer 200 with an error code
 * in the body: signature, keyword and IP refusals are permanent (LF_SEND_DEAD), "too
 * fast" is a retry. *retry_after_s gets the wait the target asked for (DingTalk's
 * 10-minute block included), or -1. err gets one line for last_error. */
lf_send_result_t lf_notify_classify(int type, long status, const char *body,
                                    long retry_after, char *err, size_t errsz,
                                    long *retry_after_s);

#endif
