/*
 * lf/pipeline.h - the deal pipeline: stages, the moves allowed between them, the fields
 * a move must carry, and who may make it.
 *
 * The pipeline is loaded once from config/pipeline.json and is read-only afterwards, so
 * one lf_pipeline_t may be shared by threads without locking. Nothing here touches the
 * database: the HTTP handler for POST /v1/leads/{id}/stage reads the deal, asks
 * lf_pipeline_check(), and writes the move and the normalized fields itself.
 * docs/pipeline.md describes the rules and the configuration file.
 */
#ifndef LF_PIPELINE_H
#define LF_PIPELINE_H

#include <stddef.h>
#include <jansson.h>

typedef struct lf_pipeline lf_pipeline_t;

/* Loads and validates the pipeline definition at `path`. Returns NULL on failure with a
   one-line message in `err` (may be NULL) naming the file and the offending key, e.g.
   "stages[2].probability: must be a number between 0 and 1". Caller owns the result. */
lf_pipeline_t *lf_pipeline_load(const char *path, char *err, size_t errsz);

/* Same as lf_pipeline_load() for a definition already parsed. `cfg` is borrowed and may
   be changed or freed afterwards: the pipeline keeps its own copy. Returns NULL with a
   message in `err` when the definition is invalid. Caller owns the result. */
lf_pipeline_t *lf_pipeline_from_json(const json_t *cfg, char *err, size_t errsz);

/* Frees the pipeline; accepts NULL and a pointer to NULL; sets *self_p to NULL. */
void lf_pipeline_destroy(lf_pipeline_t **self_p);

typedef enum {
    LF_MOVE_OK = 0,           /* the move may be recorded */
    LF_MOVE_FORBIDDEN = 1,    /* the rules do not allow it: HTTP 409 */
    LF_MOVE_MISSING = 2,      /* a required field is missing or invalid: HTTP 422 */
    LF_MOVE_UNKNOWN_STAGE = 3 /* `from` or `to` is not a stage of this pipeline */
} lf_move_verdict_t;

/* Checks a move of a deal from stage `from` to stage `to` carrying the request body `req`
   ({"to", "reason", "amount", "loss_reason", ...}; borrowed, may be NULL for an empty
   body). The three out-parameters may each be NULL when the caller does not want them;
   those not filled are set to NULL.
   - LF_MOVE_UNKNOWN_STAGE: nothing is returned.
   - LF_MOVE_FORBIDDEN: *allowed is a new array of the stage ids reachable from `from`,
     in pipeline order (empty from a final stage). Caller owns it.
   - LF_MOVE_MISSING: *fields is a new array of {"field", "code", "message"} objects, one
     per broken field, in the API's error shape; codes are "required", "invalid" and
     "too_long". Caller owns it.
   - LF_MOVE_OK: *normalized is a new object holding what to record with the move:
     "amount" (a JSON number > 0), "loss_reason" (the reason id, only when entering a
     lost stage) and "reason" (trimmed text), each only when given or required. Caller
     owns it.
   Moving a deal to the stage it is already in is FORBIDDEN; a handler that wants
   repeated requests to be idempotent must compare stages before calling. */
lf_move_verdict_t lf_pipeline_check(const lf_pipeline_t *p, const char *from,
                                    const char *to, const json_t *req, json_t **allowed,
                                    json_t **fields, json_t **normalized);

/* Returns a new array of the stage ids reachable from `from`, in pipeline order; an
   empty array from a final stage; NULL when `from` is unknown. Caller owns the result. */
json_t *lf_pipeline_allowed(const lf_pipeline_t *p, const char *from);

/* Returns 1 when moving from `from` to `to` needs a "reason" (a step back, a reopen, or
   a configured move that asks for one), 0 when it does not, -1 when the move is not
   allowed or a stage is unknown. */
int lf_pipeline_move_needs_reason(const lf_pipeline_t *p, const char *from,
                                  const char *to);

/* Returns the stage's playbook (标准操作指引): the Chinese text, a blank line, then the
   English text, ready to push to the owner. NULL for an unknown stage. Borrowed: valid
   until the pipeline is destroyed. */
const char *lf_pipeline_playbook(const lf_pipeline_t *p, const char *stage);

/* Returns the playbook in one language, "zh" or "en". NULL for an unknown stage or
   language. Borrowed: valid until the pipeline is destroyed. */
const char *lf_pipeline_playbook_lang(const lf_pipeline_t *p, const char *stage,
                                      const char *lang);

/* Returns the stage's label in "zh" or "en". NULL for an unknown stage or language.
   Borrowed: valid until the pipeline is destroyed. */
const char *lf_pipeline_label(const lf_pipeline_t *p, const char *stage,
                              const char *lang);

/* Returns the stage's win probability in 0..1 for the weighted forecast; -1 when the
   stage is unknown. */
double lf_pipeline_probability(const lf_pipeline_t *p, const char *stage);

/* Returns 1 for an open stage, 0 for a final one (won or lost), -1 for an unknown one. */
int lf_pipeline_is_open(const lf_pipeline_t *p, const char *stage);

/* Returns 1 for a won stage, 0 for any other stage, -1 for an unknown one. */
int lf_pipeline_is_won(const lf_pipeline_t *p, const char *stage);

/* Returns 1 when entering `stage` stops the first-contact SLA timer, 0 when it does not,
   -1 when the stage is unknown. The timer stops on entering the configured first-contact
   stage ("contacted"), any stage after it in pipeline order, or a final stage (a deal
   lost before anyone reached the customer needs no more reminders). Whether the SLA was
   met is for the caller to judge from lf_pipeline_first_contact_stage(). */
int lf_pipeline_stops_first_contact(const lf_pipeline_t *p, const char *stage);

/* Returns the id of the stage whose entry counts as the first contact ("contacted").
   Borrowed: valid until the pipeline is destroyed. */
const char *lf_pipeline_first_contact_stage(const lf_pipeline_t *p);

/* Returns the id of the stage new deals start in ("new"). Borrowed: valid until the
   pipeline is destroyed. */
const char *lf_pipeline_initial(const lf_pipeline_t *p);

/* Returns the public description served by GET /v1/pipeline: {"initial",
   "first_contact_stage", "stages": [{"id", "label": {"zh", "en"}, "order", "kind",
   "open", "probability", "requires", "playbook": {"zh", "en"}, "allowed"}],
   "loss_reasons": [{"id", "label": {"zh", "en"}}]}. NULL only when out of memory.
   Caller owns the result. */
json_t *lf_pipeline_to_json(const lf_pipeline_t *p);

/* Who is asking to move a deal. rep_id is NULL for a channel key, which never moves
   deals. Both strings are borrowed. */
typedef struct {
    const char *rep_id; /* the acting rep, or NULL for a channel key */
    int is_admin;       /* non-zero for the admin key */
} lf_actor_t;

/* Returns 1 when `actor` may move a deal owned by `owner` whose manager is
   `owner_manager` (both may be NULL: unassigned deal, owner without a manager); 0
   otherwise. An admin always may; a rep may when they are the owner or the owner's
   manager; a channel key never may. An unassigned deal is movable only by an admin. */
int lf_pipeline_may_move(const lf_actor_t *actor, const char *owner,
                         const char *owner_manager);

#endif
