/* receiver.h - a loopback HTTP or SMTP receiver for notification tests: a thread
 * that accepts one connection at a time, records every request (target, headers,
 * body, arrival time) and answers from a script: a status and body, a Retry-After, a
 * delay (a timeout for a short client timeout) or a hang, a late read, then the
 * default answer. It can go down (connections refused) and come back on the same
 * port. */
#ifndef LF_TEST_RECEIVER_H
#define LF_TEST_RECEIVER_H

#include <stdint.h>

typedef struct lf_rcv lf_rcv_t;

typedef struct {
    int status;        /* HTTP status, or the SMTP code answering RCPT TO */
    const char *body;  /* HTTP body (NULL: empty) */
    int retry_after;   /* seconds for a Retry-After header, 0 none */
    int delay_ms;      /* wait before answering */
    int hang;          /* never answer; the connection is closed at stop */
    int read_delay_ms; /* HTTP: wait this long after accepting the connection before
                        * reading the request, whose arrival time is when it was read
                        * (a slow network path, as the target sees it) */
} lf_rcv_answer_t;

/* Starts a receiver on a free 127.0.0.1 port; smtp = 1 speaks SMTP. Aborts the
 * test when it cannot. Caller owns the result. */
lf_rcv_t *lf_rcv_start(int smtp);
void lf_rcv_stop(lf_rcv_t **self_p);
int lf_rcv_port(const lf_rcv_t *self);
/* Answers for the next n requests (copied), then the default answer. */
void lf_rcv_script(lf_rcv_t *self, const lf_rcv_answer_t *answers, int n);
void lf_rcv_default(lf_rcv_t *self, lf_rcv_answer_t answer);
/* down = 1 closes the listening socket (connections are refused); 0 listens again. */
void lf_rcv_down(lf_rcv_t *self, int down);

/* Requests recorded so far. */
int lf_rcv_count(lf_rcv_t *self);
/* Waits until at least n requests arrived or timeout_ms passed. Returns the count. */
int lf_rcv_wait(lf_rcv_t *self, int n, int timeout_ms);
/* Request i (0-based): copies the caller frees. For SMTP, target is "MAIL FROM
 * RCPT TO" and body the DATA. */
char *lf_rcv_body(lf_rcv_t *self, int i);
char *lf_rcv_target(lf_rcv_t *self, int i);
/* The value of header name of request i (caller frees), NULL when absent. */
char *lf_rcv_header(lf_rcv_t *self, int i, const char *name);
/* Arrival time of request i, monotonic ms: when the receiver had read it. */
int64_t lf_rcv_at(lf_rcv_t *self, int i);
/* The status the receiver answered request i with (0: none, hung or delayed past the
 * client's patience). */
int lf_rcv_answered(lf_rcv_t *self, int i);

#endif
