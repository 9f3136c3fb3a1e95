/* mapping.h: column-header synonyms and per-partner field mapping for leadflow-intake.
 *
 * Two jobs share this module because both turn "somebody else's field names" into the
 * canonical lead field names of the API: spreadsheet headers (any language, any case) and
 * partner JSON documents (configured per partner in config/channels.json). The same file
 * also maps a dialled phone number to the source/campaign of a call. */
#ifndef LF_INTAKE_MAPPING_H
#define LF_INTAKE_MAPPING_H

#include <jansson.h>
#include <stddef.h>

/* Maps a column header or field name (Chinese or English, any ASCII case, surrounding
 * spaces including U+3000, full-width ASCII such as "（" and "：", a trailing unit or
 * note in parentheses such as "预算（万元）", a trailing '*' or ':') to a canonical field
 * name. Returns a static string, or NULL when the header is not a known synonym (the
 * caller keeps the column under its own name in "extra"). Never fails otherwise; NULL
 * input gives NULL. */
const char *lf_map_header(const char *header);

/* Longest unit text lf_map_header_unit writes, NUL included. */
#define LF_UNIT_SIZE 32

/* As lf_map_header, and when the header carries a unit of amount in brackets at its end
 * ("预算（万元）", "Budget (k USD)", "预算(单位:千元)"; 万元, 千元, 元, 万, k, USD, 美元,
 * EUR and whatever else lf_norm_budget reads after a number), writes that unit, as the
 * budget parser reads it, into `unit`; otherwise `unit` is "". The unit is only reported
 * for a header that maps to "budget": a note in another column means nothing to leadflow.
 * `unitsz` should be LF_UNIT_SIZE. */
const char *lf_map_header_unit(const char *header, char *unit, size_t unitsz);

/* The value a plain number in a column with `unit` stands for, as budget text: "80" with
 * "万元" gives "80万元", which lf_norm_budget reads as 800,000 CNY. Only a plain number
 * is changed (digits, thousands commas, one decimal point, spaces around); a cell with
 * its own unit or currency ("50万", "$5k") or any other text is returned as it is. Writes
 * into `out` and returns it; a result that does not fit leaves the value as it is. */
const char *lf_apply_unit(const char *value, const char *unit, char *out, size_t outsz);

/* Returns 1 if `name` is one of the canonical input field names of the API (channel,
 * source, name, company, email, phone, need, budget, currency, urgency, decision_maker,
 * region, industry, external_id), else 0. */
int lf_is_canonical_field(const char *name);

typedef struct lf_mapping lf_mapping_t;

/* Loads config/channels.json. Returns NULL with a one-line reason in `err` when the file
 * cannot be read, is not JSON, or any partner or call-number entry is malformed (unknown
 * canonical field, bad path syntax, non-string source). Caller owns the result. */
lf_mapping_t *lf_mapping_load(const char *path, char *err, size_t errsz);

/* Same as lf_mapping_load from an already parsed document. `cfg` is borrowed: the mapping
 * keeps its own copies. Returns NULL with `err` on a malformed configuration. Caller owns
 * the result. */
lf_mapping_t *lf_mapping_from_json(const json_t *cfg, char *err, size_t errsz);

/* Frees the mapping; accepts NULL and a pointer to NULL, and sets *self_p to NULL. */
void lf_mapping_destroy(lf_mapping_t **self_p);

/* Returns 1 if `partner` is configured, 0 otherwise (also for NULL arguments). */
int lf_mapping_has(const lf_mapping_t *m, const char *partner);

/* Applies the partner's field mapping to the input document `in` (borrowed, must be an
 * object). Paths are dotted keys with [n] array indexes ("contact.phones[0]"). A path
 * that does not resolve, or resolves to null, an object or an array, leaves its field
 * unset. Top-level input keys that are canonical field names and not mapped explicitly
 * are taken as they are. "channel" is the partner's configured channel (default
 * "partner"), "source" the mapped value or else the configured source (default: the
 * partner's name). Everything not consumed (leaves used by a path removed, emptied
 * containers pruned) goes to "extra", always present as an object. Returns a new object
 * (values as found: strings, numbers, booleans), or NULL for an unknown partner or a
 * non-object input. Caller owns the result. */
json_t *lf_mapping_apply(const lf_mapping_t *m, const char *partner, const json_t *in);

/* Looks up the dialled number (already E.164, e.g. "+864001234567") in calls.numbers and
 * returns its {"source": ..., "campaign": ...} object, or NULL when not configured.
 * Borrowed: valid until lf_mapping_destroy. */
const json_t *lf_mapping_call_number(const lf_mapping_t *m, const char *to_e164);

#endif
