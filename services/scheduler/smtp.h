/* smtp.h - e-mail notifications over SMTP with libcurl (STARTTLS, optional login). */
#ifndef LF_SCHEDULER_SMTP_H
#define LF_SCHEDULER_SMTP_H

#include <curl/curl.h>
#include <stddef.h>

#include "notify_format.h"

typedef struct {
    const char *url;      /* smtp://host:587 or smtps://host:465; NULL: e-mail off */
    const char *from;     /* envelope and header sender address */
    const char *user;     /* NULL: no login */
    const char *password; /* borrowed */
    int tls;              /* 0 off, 1 try STARTTLS, 2 require it */
    long timeout_ms;
} lf_smtp_t;

/* Builds the RFC 5322 message (UTF-8 subject and base64 text body) for `to`. Caller
 * owns the result. message_id names it (the delivery batch: stable across retries). */
char *lf_smtp_message(const lf_smtp_t *cfg, const char *to, const char *subject,
                      const char *body, const char *message_id);
/* Sends body (from lf_notify_render) to `to` on the reused handle c. A 5xx answer
 * (no such mailbox, refused login) is permanent, everything else is a retry. err
 * gets one line. */
lf_send_result_t lf_smtp_send(CURL *c, const lf_smtp_t *cfg, const char *to,
                              const char *subject, const char *body,
                              const char *message_id, char *err, size_t errsz);

#endif
