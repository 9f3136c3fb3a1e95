/* smtp.c - e-mail notifications with libcurl's SMTP client.
 *
 * libcurl speaks the protocol (EHLO, STARTTLS, AUTH, MAIL FROM, RCPT TO, DATA with
 * dot-stuffing); this file only writes the message: a UTF-8 subject as an RFC 2047
 * encoded word and the body in base64, so Chinese text arrives whole through any
 * relay. The Message-ID is the delivery batch, so a mail sent twice (a crash between
 * send and record) is recognisably the same mail. */
#include "smtp.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lf/util.h"

static char *s_b64(const char *s, size_t n) {
    char *out = lf_malloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
    return out;
}

static int s_header_safe(const char *s) {
    return s && *s && !strpbrk(s, "\r\n<>");
}

char *lf_smtp_message(const lf_smtp_t *cfg, const char *to, const char *subject,
                      const char *body, const char *message_id) {
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    char *subj = s_b64(subject, strlen(subject));
    char *b64 = s_b64(body, strlen(body));
    size_t bl = strlen(b64);
    /* Lines of 76 characters, as RFC 2045 asks. */
    char *wrapped = lf_malloc(bl + bl / 76 * 2 + 3);
    size_t w = 0;
    for (size_t i = 0; i < bl; i += 76) {
        size_t n = bl - i < 76 ? bl - i : 76;
        memcpy(wrapped + w, b64 + i, n);
        w += n;
        wrapped[w++] = '\r';
        wrapped[w++] = '\n';
    }
    wrapped[w] = '\0';
    char *msg = NULL;
    if (asprintf(&msg,
                 "From: leadflow <%s>\r\n"
                 "To: <%s>\r\n"
                 "Subject: =?UTF-8?B?%s?=\r\n"
                 "Date: %s\r\n"
                 "Message-ID: <%s@leadflow>\r\n"
                 "MIME-Version: 1.0\r\n"
                 "Content-Type: text/plain; charset=UTF-8\r\n"
                 "Content-Transfer-Encoding: base64\r\n"
                 "\r\n"
                 "%s",
                 cfg->from, to, subj, date, message_id, wrapped) < 0)
        abort();
    free(subj);
    free(b64);
    free(wrapped);
    return msg;
}

typedef struct {
    const char *p;
    size_t left;
} s_src_t;

static size_t s_read(char *buf, size_t size, size_t nitems, void *arg) {
    s_src_t *s = arg;
    size_t n = size * nitems < s->left ? size * nitems : s->left;
    memcpy(buf, s->p, n);
    s->p += n;
    s->left -= n;
    return n;
}

lf_send_result_t lf_smtp_send(CURL *c, const lf_smtp_t *cfg, const char *to,
                              const char *subject, const char *body,
                              const char *message_id, char *err, size_t errsz) {
    if (!cfg->url || !cfg->from) {
        snprintf(err, errsz,
                 "e-mail is not configured (LEADFLOW_SMTP_URL, "
                 "LEADFLOW_SMTP_FROM)");
        return LF_SEND_RETRY; /* waits for the operator, up to the maximum age */
    }
    if (!s_header_safe(to) || !strchr(to, '@')) {
        snprintf(err, errsz, "not an e-mail address");
        return LF_SEND_DEAD;
    }
    char *msg = lf_smtp_message(cfg, to, subject, body, message_id);
    s_src_t src = {msg, strlen(msg)};
    char from[320], rcpt_s[320];
    snprintf(from, sizeof from, "<%s>", cfg->from);
    snprintf(rcpt_s, sizeof rcpt_s, "<%s>", to);
    struct curl_slist *rcpt = curl_slist_append(NULL, rcpt_s);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, cfg->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, s_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &src);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_USE_SSL,
                     cfg->tls == 2   ? (long)CURLUSESSL_ALL
                     : cfg->tls == 1 ? (long)CURLUSESSL_TRY
                                     : (long)CURLUSESSL_NONE);
    if (cfg->user) {
        curl_easy_setopt(c, CURLOPT_USERNAME, cfg->user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, cfg->password ? cfg->password : "");
    }
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, cfg->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, cfg->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(rcpt);
    free(msg);
    if (cc == CURLE_OK) {
        err[0] = '\0';
        return LF_SEND_OK;
    }
    snprintf(err, errsz, "SMTP %ld %s", code, curl_easy_strerror(cc));
    return code >= 500 && code < 600 ? LF_SEND_DEAD : LF_SEND_RETRY;
}
