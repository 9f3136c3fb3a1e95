/* log.h - one line per event on stderr: level first, then the message, then
 * key=value details. Personal data never reaches a log line unmasked. */
#ifndef LF_LOG_H
#define LF_LOG_H

#include <stddef.h>

typedef enum { LF_LOG_DEBUG = 0, LF_LOG_INFO, LF_LOG_WARN, LF_LOG_ERROR } lf_log_level_t;

/* Sets the service name printed on each line and the minimum level. */
void lf_log_init(const char *service, lf_log_level_t level);
/* Parses "debug|info|warn|error". Returns the level, or -1 when unknown. */
int lf_log_parse_level(const char *s);
void lf_log(lf_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define lf_debug(...) lf_log(LF_LOG_DEBUG, __VA_ARGS__)
#define lf_info(...) lf_log(LF_LOG_INFO, __VA_ARGS__)
#define lf_warn(...) lf_log(LF_LOG_WARN, __VA_ARGS__)
#define lf_error(...) lf_log(LF_LOG_ERROR, __VA_ARGS__)

/* Maskers write into out (always NUL-terminated) and return out, so they can be
 * used inline in a log call. NULL input gives "-". */
/* "+8613800138000" -> "+86138****8000": enough to tell numbers apart, not to call. */
const char *lf_mask_phone(const char *phone, char *out, size_t outsz);
/* "wang.fang@example.com" -> "w***@example.com". */
const char *lf_mask_email(const char *email, char *out, size_t outsz);
/* "dev-admin-key" -> "dev-***" (first four characters at most). */
const char *lf_mask_key(const char *key, char *out, size_t outsz);

/* Masks, in place, what looks like personal data or a secret in a free text (a
 * PostgreSQL error message, a log line): e-mail addresses (lf_mask_email), runs of 7
 * to 15 digits with an optional leading + (lf_mask_phone; digit groups inside a UUID
 * are left alone) and leadflow keys "lf_<hex>" (lf_mask_key). The text never grows.
 * lf_log applies it to every line, and lf_db to every error it keeps, so a value
 * quoted by a database error cannot reach a log or an error column. Returns s. */
char *lf_log_scrub(char *s);
/* Masks, in place, the values a PostgreSQL error message quotes: the text between
 * double quotes becomes "***" unless the word before it names a database object
 * (relation "leads", constraint "x" stay readable), and a key's value "=(...)" becomes
 * "=(***)". For what is stored where an operator reads it and may copy it (the error
 * of a parked event): the scrub masks phone numbers and e-mail addresses partly, this
 * hides a name or an address quoted whole. The text never grows. Returns s. */
char *lf_log_mask_values(char *s);

#endif
