/* parse.h: request-body parsers of leadflow-intake for single-lead requests.
 *
 * These functions only turn bytes into jansson values with the names the client used;
 * they do not normalize or validate lead fields (normalize.c does). They never read past
 * `len` and do not need the body to be NUL-terminated. */
#ifndef LF_INTAKE_PARSE_H
#define LF_INTAKE_PARSE_H

#include <jansson.h>
#include <stddef.h>

/* Deepest array/object nesting accepted in a JSON body. */
#define LF_JSON_MAX_DEPTH 16

/* Parses an application/x-www-form-urlencoded body into a new object of string values.
 * '+' is a space, %XX is decoded, a repeated key keeps its last value, empty pairs
 * ("a=1&&b") are skipped and a pair without '=' has the empty string as value. Returns
 * NULL with *why set to a static English sentence on an invalid %-escape, a decoded NUL
 * byte, an empty key, or a key or value that is not valid UTF-8 once decoded. Caller owns
 * the result. */
json_t *lf_parse_form(const char *body, size_t len, const char **why);

/* Parses a JSON lead body: valid UTF-8 JSON, an object at the top, nesting depth at most
 * LF_JSON_MAX_DEPTH (checked by a pre-scan before jansson recurses), no duplicate keys,
 * no \u0000 in strings. The caller has already limited the size. On failure returns NULL,
 * sets *why to a static category ("body is empty", "body is not valid JSON", "body must
 * be a JSON object", "nesting too deep") and, when `detail` is not NULL, writes the full
 * sentence for the client into it, e.g. "body is not valid JSON: duplicate object key
 * near '"a"' at line 1 column 12". Caller owns the result. */
json_t *lf_parse_json_object(const char *body, size_t len, const char **why, char *detail,
                             size_t detailsz);

/* Splits a Content-Type header value: writes the media type ("type/subtype", lower-cased,
 * without parameters) into `media` and the charset parameter (lower-cased, quotes
 * removed) or
 * "" into `charset`. Returns 0, or -1 (outputs set to "") when the header is NULL, empty,
 * not of the form token/token[; name=value]*, or an output buffer is too small. */
int lf_parse_content_type(const char *header, char *media, size_t msz, char *charset,
                          size_t csz);

#endif
