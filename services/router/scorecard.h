/* scorecard.h - explainable lead grading (商机分级) from a JSON rule file.
 *
 * A scorecard turns a canonical lead into a score 0..100, a grade A..D and a breakdown
 * that lists every rule that gave or took points, e.g. {"rule": "urgency=high", "points":
 * 20}. The breakdown always sums to the score: when the raw sum leaves 0..100 a final
 * "clamp_to_0" / "clamp_to_100" entry carries the difference.
 */
#ifndef LF_ROUTER_SCORECARD_H
#define LF_ROUTER_SCORECARD_H

#include <stddef.h>
#include <jansson.h>

typedef struct lf_scorecard lf_scorecard_t;

/* Loads and validates a scorecard file (see config/scorecard.json). Returns NULL on a
 * missing file, bad JSON or a bad rule, with a message naming the bad key in `err`.
 * Caller owns the result (lf_scorecard_destroy). */
lf_scorecard_t *lf_scorecard_load(const char *path, char *err, size_t errsz);

/* Same from an already parsed object. Borrowed: `cfg` is only read during the call.
 * Returns NULL with a message in `err` on a bad rule. Caller owns the result. */
lf_scorecard_t *lf_scorecard_from_json(const json_t *cfg, char *err, size_t errsz);

/* Frees the scorecard; accepts NULL and *self_p == NULL, sets *self_p to NULL. */
void lf_scorecard_destroy(lf_scorecard_t **self_p);

/* Grades a canonical lead. Borrowed: `lead` is only read. On success returns 0, stores
 * the score (0..100) and grade ('A'..'D') and sets *breakdown to a new array of
 * {"rule": str, "points": int} whose points sum to the score: caller owns *breakdown.
 * Returns -1 (and touches no output) when an argument is NULL or `lead` is not an object.
 * Read-only on `sc`: several threads may grade with one scorecard. */
int lf_scorecard_grade(const lf_scorecard_t *sc, const json_t *lead, int *score,
                       char *grade, json_t **breakdown);

/* One breakdown entry: `rule` points into the scorecard (valid while it lives). */
typedef struct {
    const char *rule;
    int points;
} lf_score_part_t;

/* At most this many entries in a breakdown: base, six lookups, a budget band, seven
 * completeness rules and a clamp. */
#define LF_SCORECARD_MAX_PARTS 16

/* The same, with the breakdown as entries in parts[0..*n), in the order of the JSON
 * array: for callers that store it in a form of their own (the router's batch path
 * stores a code per entry). Returns -1 as lf_scorecard_grade does. */
int lf_scorecard_grade_parts(const lf_scorecard_t *sc, const json_t *lead, int *score,
                             char *grade, lf_score_part_t parts[LF_SCORECARD_MAX_PARTS],
                             size_t *n);

#endif
