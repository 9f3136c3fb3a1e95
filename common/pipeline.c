/*
 * pipeline.c - the deal pipeline rules (docs/pipeline.md, POST /v1/leads/{id}/stage).
 *
 * Sales managers change their pipeline more often than we release, so the stages, the
 * fields each stage needs, the loss reasons and the allowed moves live in
 * config/pipeline.json rather than in code. That file is validated strictly at load:
 * a typo there would otherwise surface weeks later as a deal that cannot be moved, so
 * every problem stops the service with a message naming the key.
 *
 * At load the move rules are compiled into a small stage-by-stage table; checking a move
 * is then a table lookup plus the field checks, with no allocation except the answer.
 * The module is pure: it knows nothing about PostgreSQL or HTTP, which keeps the whole
 * rule table testable in a unit test. The pipeline keeps a deep copy of its JSON
 * definition and the stage structs borrow their strings from it.
 */
#include "lf/pipeline.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_STAGES 32         /* more stages than this is a process, not a pipeline */
#define S_MAX_LOSS_REASONS 64   /* a pick list longer than this is not picked from */
#define S_MAX_ID_LEN 32         /* ids end up in URLs, SQL enums and BI dashboards */
#define S_REASON_MAX_BYTES 2000 /* a free-text reason, not an essay */

/* Fields a move can require; a stage's `requires` list and the move itself add up. */
enum { S_REQ_AMOUNT = 1u, S_REQ_LOSS_REASON = 2u, S_REQ_REASON = 4u };

/* One cell of the compiled move table. */
enum { S_MOVE_ALLOWED = 1u, S_MOVE_NEEDS_REASON = 2u };

typedef enum { S_KIND_OPEN, S_KIND_WON, S_KIND_LOST } s_kind_t;

typedef struct {
    const char *id;          /* stage id, borrowed from the definition */
    const char *label_zh;    /* Chinese label, borrowed */
    const char *label_en;    /* English label, borrowed */
    const char *playbook_zh; /* Chinese playbook text, borrowed */
    const char *playbook_en; /* English playbook text, borrowed */
    char *playbook;          /* both texts joined for notifications; owned */
    json_int_t order;        /* position in the pipeline; unique */
    s_kind_t kind;           /* open, or final as won or lost */
    double probability;      /* win probability 0..1 for the weighted forecast */
    unsigned requires;       /* S_REQ_* bits demanded on entry */
} s_stage_t;

typedef struct {
    const char *id; /* what is stored and reported, e.g. "no_budget"; borrowed */
    const char *zh; /* Chinese label, also accepted as input, e.g. 预算不足; borrowed */
    const char *en; /* English label; borrowed */
} s_loss_reason_t;

struct lf_pipeline {
    json_t *cfg;                    /* deep copy of the definition; owns strings */
    s_stage_t stages[S_MAX_STAGES]; /* sorted by order */
    size_t nstages;                 /* stages in use */
    s_loss_reason_t reasons[S_MAX_LOSS_REASONS]; /* in configuration order */
    size_t nreasons;                             /* loss reasons in use */
    size_t initial;       /* index of the stage new deals start in */
    size_t first_contact; /* index of the first-contact stage */
    unsigned char moves[S_MAX_STAGES][S_MAX_STAGES]; /* [from][to]: S_MOVE_* bits */
};

/* Out of memory is not a condition this module can recover from; say where and stop. */
static void s_oom(const char *file, int line) {
    fprintf(stderr, "FATAL out of memory at %s:%d\n", file, line);
    abort();
}
#define S_MUST(ptr) ((ptr) ? (void)0 : s_oom(__FILE__, __LINE__))

static void s_err(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_err(char *err, size_t errsz, const char *fmt, ...) {
    if (!err || errsz == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

/* Stage and reason ids are lower-case ASCII so they are safe in every place they go. */
static int s_valid_id(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > S_MAX_ID_LEN || !(s[0] >= 'a' && s[0] <= 'z'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_'))
            return 0;
    return 1;
}

/* Rejects keys the schema does not know, so a misspelt "probabilty" is an error and not
   a silently ignored setting. Keys starting with '_' are comments. */
static int s_check_keys(const json_t *obj, const char *path, const char *const *known,
                        char *err, size_t errsz) {
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        (void)val;
        if (key[0] == '_')
            continue;
        int ok = 0;
        for (size_t i = 0; known[i]; i++)
            if (strcmp(key, known[i]) == 0)
                ok = 1;
        if (!ok) {
            s_err(err, errsz, "%s%s%s: unknown key", path, *path ? "." : "", key);
            return -1;
        }
    }
    return 0;
}

/* Fetches a required non-empty string member. */
static int s_get_str(const json_t *obj, const char *path, const char *key,
                     const char **out, char *err, size_t errsz) {
    json_t *v = json_object_get(obj, key);
    if (!v) {
        s_err(err, errsz, "%s%s%s: missing", path, *path ? "." : "", key);
        return -1;
    }
    if (!json_is_string(v) || json_string_length(v) == 0) {
        s_err(err, errsz, "%s%s%s: must be a non-empty string", path, *path ? "." : "",
              key);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

/* Fetches a {"zh": ..., "en": ...} pair; both texts are required because reps and
   integrators read different ones. */
static int s_get_pair(const json_t *obj, const char *path, const char *key,
                      const char **zh, const char **en, char *err, size_t errsz) {
    static const char *const known[] = {"zh", "en", NULL};
    char sub[128];
    json_t *v = json_object_get(obj, key);
    snprintf(sub, sizeof sub, "%s.%s", path, key);
    if (!v) {
        s_err(err, errsz, "%s: missing", sub);
        return -1;
    }
    if (!json_is_object(v)) {
        s_err(err, errsz, "%s: must be an object {\"zh\": ..., \"en\": ...}", sub);
        return -1;
    }
    if (s_check_keys(v, sub, known, err, errsz) < 0 ||
        s_get_str(v, sub, "zh", zh, err, errsz) < 0 ||
        s_get_str(v, sub, "en", en, err, errsz) < 0)
        return -1;
    return 0;
}

/* Fetches an optional boolean; `*out` keeps its default when the key is absent. */
static int s_get_bool(const json_t *obj, const char *path, const char *key, int *out,
                      char *err, size_t errsz) {
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v)) {
        s_err(err, errsz, "%s%s%s: must be true or false", path, *path ? "." : "", key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

static int s_find(const lf_pipeline_t *p, const char *id) {
    if (!p || !id)
        return -1;
    for (size_t i = 0; i < p->nstages; i++)
        if (strcmp(p->stages[i].id, id) == 0)
            return (int)i;
    return -1;
}

/* Resolves a stage reference such as moves.reopen.to. */
static int s_get_stage_ref(const lf_pipeline_t *p, const json_t *obj, const char *path,
                           const char *key, int *out, char *err, size_t errsz) {
    const char *id;
    if (s_get_str(obj, path, key, &id, err, errsz) < 0)
        return -1;
    *out = s_find(p, id);
    if (*out < 0) {
        s_err(err, errsz, "%s%s%s: unknown stage \"%s\"", path, *path ? "." : "", key,
              id);
        return -1;
    }
    return 0;
}

static int s_parse_requires(s_stage_t *st, const json_t *v, const char *path, char *err,
                            size_t errsz) {
    if (!v)
        return 0; /* nothing required */
    if (!json_is_array(v)) {
        s_err(err, errsz, "%s.requires: must be an array of field names", path);
        return -1;
    }
    size_t j;
    json_t *item;
    json_array_foreach(v, j, item) {
        const char *name = json_string_value(item);
        unsigned bit = 0;
        if (name && strcmp(name, "amount") == 0)
            bit = S_REQ_AMOUNT;
        else if (name && strcmp(name, "loss_reason") == 0)
            bit = S_REQ_LOSS_REASON;
        else if (name && strcmp(name, "reason") == 0)
            bit = S_REQ_REASON;
        if (!bit) {
            s_err(err, errsz,
                  "%s.requires[%zu]: must be \"amount\", \"loss_reason\" or \"reason\"",
                  path, j);
            return -1;
        }
        if (st->requires & bit) {
            s_err(err, errsz, "%s.requires[%zu]: \"%s\" listed twice", path, j, name);
            return -1;
        }
        if (bit == S_REQ_LOSS_REASON && st->kind != S_KIND_LOST) {
            s_err(err, errsz,
                  "%s.requires[%zu]: loss_reason only applies to a lost stage", path, j);
            return -1;
        }
        st->requires |= bit;
    }
    return 0;
}

static int s_parse_stage(lf_pipeline_t *p, const json_t *v, size_t i, char *err,
                         size_t errsz) {
    static const char *const known[] = {"id",          "label",    "order",    "kind",
                                        "probability", "requires", "playbook", NULL};
    char path[64];
    snprintf(path, sizeof path, "stages[%zu]", i);
    s_stage_t *st = &p->stages[i];
    if (!json_is_object(v)) {
        s_err(err, errsz, "%s: must be an object", path);
        return -1;
    }
    if (s_check_keys(v, path, known, err, errsz) < 0 ||
        s_get_str(v, path, "id", &st->id, err, errsz) < 0)
        return -1;
    if (!s_valid_id(st->id)) {
        s_err(err, errsz,
              "%s.id: \"%s\" must be 1-%d characters of a-z, 0-9, _ starting "
              "with a letter",
              path, st->id, S_MAX_ID_LEN);
        return -1;
    }
    for (size_t k = 0; k < i; k++)
        if (strcmp(p->stages[k].id, st->id) == 0) {
            s_err(err, errsz, "%s.id: duplicate stage id \"%s\" (also stages[%zu])", path,
                  st->id, k);
            return -1;
        }
    if (s_get_pair(v, path, "label", &st->label_zh, &st->label_en, err, errsz) < 0 ||
        s_get_pair(v, path, "playbook", &st->playbook_zh, &st->playbook_en, err, errsz) <
            0)
        return -1;

    json_t *order = json_object_get(v, "order");
    if (!json_is_integer(order)) {
        s_err(err, errsz, "%s.order: %s", path, order ? "must be an integer" : "missing");
        return -1;
    }
    st->order = json_integer_value(order);
    for (size_t k = 0; k < i; k++)
        if (p->stages[k].order == st->order) {
            s_err(err, errsz,
                  "%s.order: %" JSON_INTEGER_FORMAT " is also the order of "
                  "stages[%zu]",
                  path, st->order, k);
            return -1;
        }

    const char *kind;
    if (s_get_str(v, path, "kind", &kind, err, errsz) < 0)
        return -1;
    if (strcmp(kind, "open") == 0)
        st->kind = S_KIND_OPEN;
    else if (strcmp(kind, "won") == 0)
        st->kind = S_KIND_WON;
    else if (strcmp(kind, "lost") == 0)
        st->kind = S_KIND_LOST;
    else {
        s_err(err, errsz, "%s.kind: must be \"open\", \"won\" or \"lost\"", path);
        return -1;
    }

    json_t *prob = json_object_get(v, "probability");
    if (!json_is_number(prob) || !(json_number_value(prob) >= 0.0) ||
        !(json_number_value(prob) <= 1.0)) {
        s_err(err, errsz, "%s.probability: %s", path,
              prob ? "must be a number between 0 and 1" : "missing");
        return -1;
    }
    st->probability = json_number_value(prob);

    if (s_parse_requires(st, json_object_get(v, "requires"), path, err, errsz) < 0)
        return -1;

    size_t zl = strlen(st->playbook_zh), el = strlen(st->playbook_en);
    st->playbook = malloc(zl + 2 + el + 1);
    S_MUST(st->playbook);
    memcpy(st->playbook, st->playbook_zh, zl);
    memcpy(st->playbook + zl, "\n\n", 2);
    memcpy(st->playbook + zl + 2, st->playbook_en, el + 1);
    return 0;
}

static int s_parse_stages(lf_pipeline_t *p, const json_t *stages, char *err,
                          size_t errsz) {
    if (!stages) {
        s_err(err, errsz, "stages: missing");
        return -1;
    }
    if (!json_is_array(stages) || json_array_size(stages) < 3 ||
        json_array_size(stages) > S_MAX_STAGES) {
        s_err(err, errsz, "stages: must be an array of 3 to %d stages", S_MAX_STAGES);
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(stages, i, v) {
        /* Count first, so destroy() frees the playbook of every stage parsed so far. */
        p->nstages = i + 1;
        if (s_parse_stage(p, v, i, err, errsz) < 0)
            return -1;
    }

    size_t nwon = 0, nlost = 0, nopen = 0;
    const s_stage_t *won = NULL;
    for (i = 0; i < p->nstages; i++) {
        switch (p->stages[i].kind) {
        case S_KIND_OPEN:
            nopen++;
            break;
        case S_KIND_WON:
            nwon++;
            won = &p->stages[i];
            break;
        case S_KIND_LOST:
            nlost++;
            break;
        }
    }
    /* One won stage keeps "forward" unambiguous at the end of the pipeline; several lost
       stages (lost, disqualified, ...) are fine since each is reached from anywhere. */
    if (nwon != 1 || nlost < 1 || nopen < 1) {
        s_err(err, errsz,
              "stages: need at least one open stage, exactly one won stage and "
              "at least one lost stage (have %zu, %zu, %zu)",
              nopen, nwon, nlost);
        return -1;
    }
    for (i = 0; i < p->nstages; i++)
        if (p->stages[i].kind == S_KIND_OPEN && p->stages[i].order > won->order) {
            s_err(err, errsz,
                  "stages[%zu].order: open stage \"%s\" must come before the "
                  "won stage \"%s\"",
                  i, p->stages[i].id, won->id);
            return -1;
        }

    /* Insertion sort by order: a handful of stages, and it keeps the code obvious. */
    for (i = 1; i < p->nstages; i++) {
        s_stage_t tmp = p->stages[i];
        size_t k = i;
        for (; k > 0 && p->stages[k - 1].order > tmp.order; k--)
            p->stages[k] = p->stages[k - 1];
        p->stages[k] = tmp;
    }
    return 0;
}

static int s_parse_loss_reasons(lf_pipeline_t *p, const json_t *list, char *err,
                                size_t errsz) {
    static const char *const known[] = {"id", "label", NULL};
    if (!list) {
        s_err(err, errsz, "loss_reasons: missing");
        return -1;
    }
    if (!json_is_array(list) || json_array_size(list) == 0 ||
        json_array_size(list) > S_MAX_LOSS_REASONS) {
        s_err(err, errsz, "loss_reasons: must be an array of 1 to %d reasons",
              S_MAX_LOSS_REASONS);
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        char path[64];
        snprintf(path, sizeof path, "loss_reasons[%zu]", i);
        s_loss_reason_t *r = &p->reasons[i];
        if (!json_is_object(v)) {
            s_err(err, errsz, "%s: must be an object", path);
            return -1;
        }
        if (s_check_keys(v, path, known, err, errsz) < 0 ||
            s_get_str(v, path, "id", &r->id, err, errsz) < 0 ||
            s_get_pair(v, path, "label", &r->zh, &r->en, err, errsz) < 0)
            return -1;
        if (!s_valid_id(r->id)) {
            s_err(err, errsz,
                  "%s.id: \"%s\" must be 1-%d characters of a-z, 0-9, _ "
                  "starting with a letter",
                  path, r->id, S_MAX_ID_LEN);
            return -1;
        }
        /* Input is matched against ids and Chinese labels alike, so neither may repeat.
         */
        for (size_t k = 0; k < i; k++) {
            if (strcmp(p->reasons[k].id, r->id) == 0) {
                s_err(err, errsz, "%s.id: duplicate loss reason \"%s\"", path, r->id);
                return -1;
            }
            if (strcmp(p->reasons[k].zh, r->zh) == 0) {
                s_err(err, errsz, "%s.label.zh: duplicate loss reason label \"%s\"", path,
                      r->zh);
                return -1;
            }
        }
        p->nreasons = i + 1;
    }
    return 0;
}

/* Adds one configured move (reopen or extra) to the table. */
static int s_parse_move(lf_pipeline_t *p, const json_t *v, const char *path,
                        int final_only, char *err, size_t errsz) {
    static const char *const known[] = {"from", "to", "requires_reason", NULL};
    int from, to, needs_reason = 1;
    if (!json_is_object(v)) {
        s_err(err, errsz, "%s: must be an object {\"from\": ..., \"to\": ...}", path);
        return -1;
    }
    if (s_check_keys(v, path, known, err, errsz) < 0 ||
        s_get_stage_ref(p, v, path, "from", &from, err, errsz) < 0 ||
        s_get_stage_ref(p, v, path, "to", &to, err, errsz) < 0 ||
        s_get_bool(v, path, "requires_reason", &needs_reason, err, errsz) < 0)
        return -1;
    if (from == to) {
        s_err(err, errsz, "%s: from and to are the same stage", path);
        return -1;
    }
    if (final_only && p->stages[from].kind == S_KIND_OPEN) {
        s_err(err, errsz, "%s.from: must be a won or lost stage", path);
        return -1;
    }
    if (final_only && p->stages[to].kind != S_KIND_OPEN) {
        s_err(err, errsz, "%s.to: must be an open stage", path);
        return -1;
    }
    p->moves[from][to] = S_MOVE_ALLOWED | (needs_reason ? S_MOVE_NEEDS_REASON : 0);
    return 0;
}

/* Compiles the move rules into p->moves. The chain is every stage except the lost ones,
   in order, ending with won; "forward" and "back" count steps along it. */
static int s_parse_moves(lf_pipeline_t *p, const json_t *moves, char *err, size_t errsz) {
    static const char *const known[] = {
        "forward", "back", "back_requires_reason", "lost_from_open", "reopen",
        "extra",   NULL};
    json_int_t forward = 1, back = 1;
    int back_reason = 1, lost_from_open = 1;
    json_t *reopen = NULL, *extra = NULL;

    if (moves) {
        if (!json_is_object(moves)) {
            s_err(err, errsz, "moves: must be an object");
            return -1;
        }
        if (s_check_keys(moves, "moves", known, err, errsz) < 0)
            return -1;
        json_t *f = json_object_get(moves, "forward"),
               *b = json_object_get(moves, "back");
        if (f && (!json_is_integer(f) || json_integer_value(f) < 1 ||
                  json_integer_value(f) > S_MAX_STAGES)) {
            s_err(err, errsz, "moves.forward: must be an integer from 1 to %d",
                  S_MAX_STAGES);
            return -1;
        }
        if (b && (!json_is_integer(b) || json_integer_value(b) < 0 ||
                  json_integer_value(b) > S_MAX_STAGES)) {
            s_err(err, errsz, "moves.back: must be an integer from 0 to %d",
                  S_MAX_STAGES);
            return -1;
        }
        if (f)
            forward = json_integer_value(f);
        if (b)
            back = json_integer_value(b);
        if (s_get_bool(moves, "moves", "back_requires_reason", &back_reason, err, errsz) <
                0 ||
            s_get_bool(moves, "moves", "lost_from_open", &lost_from_open, err, errsz) < 0)
            return -1;
        reopen = json_object_get(moves, "reopen");
        extra = json_object_get(moves, "extra");
    }

    int pos[S_MAX_STAGES], n = 0;
    for (size_t i = 0; i < p->nstages; i++)
        pos[i] = p->stages[i].kind == S_KIND_LOST ? -1 : n++;

    for (size_t f = 0; f < p->nstages; f++) {
        if (p->stages[f].kind != S_KIND_OPEN)
            continue; /* nothing leaves a final stage unless configured below */
        for (size_t t = 0; t < p->nstages; t++) {
            const s_stage_t *to = &p->stages[t];
            unsigned char cell = 0;
            if (t == f)
                continue;
            if (to->kind == S_KIND_LOST) {
                if (lost_from_open)
                    cell = S_MOVE_ALLOWED;
            } else if (pos[t] > pos[f]) {
                if (pos[t] - pos[f] <= forward)
                    cell = S_MOVE_ALLOWED;
            } else if (to->kind == S_KIND_OPEN && pos[f] - pos[t] <= back) {
                cell = S_MOVE_ALLOWED | (back_reason ? S_MOVE_NEEDS_REASON : 0);
            }
            p->moves[f][t] = cell;
        }
    }

    if (reopen && !json_is_null(reopen) &&
        s_parse_move(p, reopen, "moves.reopen", 1, err, errsz) < 0)
        return -1;
    if (extra) {
        if (!json_is_array(extra)) {
            s_err(err, errsz,
                  "moves.extra: must be an array of {\"from\", \"to\"} moves");
            return -1;
        }
        size_t i;
        json_t *v;
        json_array_foreach(extra, i, v) {
            char path[64];
            snprintf(path, sizeof path, "moves.extra[%zu]", i);
            if (s_parse_move(p, v, path, 0, err, errsz) < 0)
                return -1;
        }
    }
    return 0;
}

static int s_parse(lf_pipeline_t *p, char *err, size_t errsz) {
    static const char *const known[] = {"version", "initial",      "first_contact_stage",
                                        "stages",  "loss_reasons", "moves",
                                        NULL};
    const json_t *cfg = p->cfg;
    int idx;
    if (!json_is_object(cfg)) {
        s_err(err, errsz, "(root): must be an object");
        return -1;
    }
    if (s_check_keys(cfg, "", known, err, errsz) < 0)
        return -1;
    json_t *version = json_object_get(cfg, "version");
    if (!json_is_integer(version) || json_integer_value(version) != 1) {
        s_err(err, errsz, "version: %s", version ? "must be 1" : "missing");
        return -1;
    }
    if (s_parse_stages(p, json_object_get(cfg, "stages"), err, errsz) < 0 ||
        s_parse_loss_reasons(p, json_object_get(cfg, "loss_reasons"), err, errsz) < 0)
        return -1;

    if (s_get_stage_ref(p, cfg, "", "initial", &idx, err, errsz) < 0)
        return -1;
    if (p->stages[idx].kind != S_KIND_OPEN) {
        s_err(err, errsz, "initial: \"%s\" must be an open stage", p->stages[idx].id);
        return -1;
    }
    p->initial = (size_t)idx;

    if (s_get_stage_ref(p, cfg, "", "first_contact_stage", &idx, err, errsz) < 0)
        return -1;
    if (p->stages[idx].kind != S_KIND_OPEN ||
        p->stages[idx].order <= p->stages[p->initial].order) {
        s_err(err, errsz,
              "first_contact_stage: \"%s\" must be an open stage after the "
              "initial stage",
              p->stages[idx].id);
        return -1;
    }
    p->first_contact = (size_t)idx;

    return s_parse_moves(p, json_object_get(cfg, "moves"), err, errsz);
}

lf_pipeline_t *lf_pipeline_from_json(const json_t *cfg, char *err, size_t errsz) {
    s_err(err, errsz, "%s", "");
    if (!cfg) {
        s_err(err, errsz, "(root): no definition");
        return NULL;
    }
    lf_pipeline_t *p = calloc(1, sizeof *p);
    S_MUST(p);
    /* A private copy: the caller may free or change `cfg`, and every string the stages
       point at must live as long as the pipeline. */
    p->cfg = json_deep_copy(cfg);
    S_MUST(p->cfg);
    if (s_parse(p, err, errsz) < 0) {
        lf_pipeline_destroy(&p);
        return NULL;
    }
    return p;
}

lf_pipeline_t *lf_pipeline_load(const char *path, char *err, size_t errsz) {
    json_error_t jerr;
    char why[512];
    if (!path) {
        s_err(err, errsz, "pipeline: no path given");
        return NULL;
    }
    /* Duplicate keys would let the second "probability" silently win: refuse them. */
    json_t *cfg = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!cfg) {
        s_err(err, errsz, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    lf_pipeline_t *p = lf_pipeline_from_json(cfg, why, sizeof why);
    json_decref(cfg);
    if (!p)
        s_err(err, errsz, "%s: %s", path, why);
    return p;
}

void lf_pipeline_destroy(lf_pipeline_t **self_p) {
    if (!self_p || !*self_p)
        return;
    lf_pipeline_t *p = *self_p;
    for (size_t i = 0; i < p->nstages; i++)
        free(p->stages[i].playbook);
    json_decref(p->cfg);
    free(p);
    *self_p = NULL;
}

static json_t *s_allowed(const lf_pipeline_t *p, size_t from) {
    json_t *out = json_array();
    S_MUST(out);
    for (size_t t = 0; t < p->nstages; t++)
        if (p->moves[from][t] & S_MOVE_ALLOWED)
            if (json_array_append_new(out, json_string(p->stages[t].id)) < 0)
                s_oom(__FILE__, __LINE__);
    return out;
}

static void s_field_error(json_t *fields, const char *field, const char *code,
                          const char *message) {
    json_t *e =
        json_pack("{s:s, s:s, s:s}", "field", field, "code", code, "message", message);
    S_MUST(e);
    if (json_array_append_new(fields, e) < 0)
        s_oom(__FILE__, __LINE__);
}

/* Accepts a JSON number, or a string holding a plain decimal number ("120000",
   "120000.50") because form posts and spreadsheets send numbers as text. Anything
   fancier (50万, 1,200, 1e5) is refused rather than guessed: this is a money amount the
   forecast relies on. Returns a new JSON number, or NULL when the value is not a number
   greater than zero. */
static json_t *s_amount(const json_t *v) {
    if (json_is_integer(v))
        return json_integer_value(v) > 0 ? json_integer(json_integer_value(v)) : NULL;
    if (json_is_real(v)) {
        double d = json_real_value(v);
        return isfinite(d) && d > 0 ? json_real(d) : NULL;
    }
    if (!json_is_string(v))
        return NULL;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v), digits = 0, dots = 0;
    if (n == 0 || n > 24 || s[0] == '.' || s[n - 1] == '.')
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (isdigit((unsigned char)s[i]))
            digits++;
        else if (s[i] == '.')
            dots++;
        else
            return NULL;
    }
    if (dots > 1 || digits == 0)
        return NULL;
    errno = 0;
    if (dots == 0) {
        long long ll = strtoll(s, NULL, 10);
        return errno == 0 && ll > 0 ? json_integer((json_int_t)ll) : NULL;
    }
    double d = strtod(s, NULL);
    return errno == 0 && isfinite(d) && d > 0 ? json_real(d) : NULL;
}

/* Trims ASCII blanks around `s`; returns the start and sets *len. */
static const char *s_trim(const char *s, size_t *len) {
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)*s))
        s++, n--;
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    *len = n;
    return s;
}

/* Maps an id or a Chinese label to the loss reason's id; NULL when nothing matches. */
static const char *s_loss_reason(const lf_pipeline_t *p, const char *in) {
    size_t n;
    const char *s = s_trim(in, &n);
    for (size_t i = 0; i < p->nreasons; i++) {
        const s_loss_reason_t *r = &p->reasons[i];
        if ((strlen(r->id) == n && memcmp(r->id, s, n) == 0) ||
            (strlen(r->zh) == n && memcmp(r->zh, s, n) == 0))
            return r->id;
    }
    return NULL;
}

lf_move_verdict_t lf_pipeline_check(const lf_pipeline_t *p, const char *from,
                                    const char *to, const json_t *req, json_t **allowed,
                                    json_t **fields, json_t **normalized) {
    if (allowed)
        *allowed = NULL;
    if (fields)
        *fields = NULL;
    if (normalized)
        *normalized = NULL;
    int f = s_find(p, from), t = s_find(p, to);
    if (f < 0 || t < 0)
        return LF_MOVE_UNKNOWN_STAGE;

    unsigned cell = p->moves[f][t];
    if (!(cell & S_MOVE_ALLOWED)) {
        if (allowed)
            *allowed = s_allowed(p, (size_t)f);
        return LF_MOVE_FORBIDDEN;
    }

    const s_stage_t *st = &p->stages[t];
    unsigned need = st->requires | ((cell & S_MOVE_NEEDS_REASON) ? S_REQ_REASON : 0);
    json_t *errs = json_array(), *norm = json_object();
    S_MUST(errs);
    S_MUST(norm);
    char msg[512];
    const json_t *body = json_is_object(req) ? req : NULL;

    /* A value that was sent is checked even where it is not required: a client that sends
       "amount": "abc" has a bug it should hear about. JSON null counts as not sent. */
    json_t *v = json_object_get(body, "amount");
    if (v && !json_is_null(v)) {
        json_t *amount = s_amount(v);
        if (amount)
            json_object_set_new(norm, "amount", amount);
        else
            s_field_error(errs, "amount", "invalid",
                          "must be a number greater than 0, e.g. 120000");
    } else if (need & S_REQ_AMOUNT) {
        snprintf(msg, sizeof msg,
                 "moving to %s (%s) needs the amount, a number greater than 0", st->id,
                 st->label_zh);
        s_field_error(errs, "amount", "required", msg);
    }

    /* A loss reason only means something on the way into a lost stage; elsewhere it is
       ignored so clients may send one form for every move. */
    v = json_object_get(body, "loss_reason");
    if (st->kind == S_KIND_LOST && v && !json_is_null(v)) {
        const char *id =
            json_is_string(v) ? s_loss_reason(p, json_string_value(v)) : NULL;
        if (id) {
            json_object_set_new(norm, "loss_reason", json_string(id));
        } else {
            size_t off = (size_t)snprintf(msg, sizeof msg, "must be one of:");
            for (size_t i = 0; i < p->nreasons && off < sizeof msg; i++)
                off += (size_t)snprintf(msg + off, sizeof msg - off, "%s %s (%s)",
                                        i ? "," : "", p->reasons[i].id, p->reasons[i].zh);
            s_field_error(errs, "loss_reason", "invalid", msg);
        }
    } else if (st->kind == S_KIND_LOST && (need & S_REQ_LOSS_REASON)) {
        snprintf(msg, sizeof msg, "moving to %s (%s) needs a loss_reason", st->id,
                 st->label_zh);
        s_field_error(errs, "loss_reason", "required", msg);
    }

    /* A reason of only blanks is no reason: it counts as missing. */
    v = json_object_get(body, "reason");
    size_t rlen = 0;
    const char *reason = json_is_string(v) ? s_trim(json_string_value(v), &rlen) : NULL;
    if (v && !json_is_null(v) && !json_is_string(v)) {
        s_field_error(errs, "reason", "invalid", "must be a string");
    } else if (reason && rlen > S_REASON_MAX_BYTES) {
        snprintf(msg, sizeof msg, "must be at most %d bytes", S_REASON_MAX_BYTES);
        s_field_error(errs, "reason", "too_long", msg);
    } else if (reason && rlen > 0) {
        json_object_set_new(norm, "reason", json_stringn(reason, rlen));
    } else if (need & S_REQ_REASON) {
        snprintf(msg, sizeof msg, "moving from %s (%s) to %s (%s) needs a reason",
                 p->stages[f].id, p->stages[f].label_zh, st->id, st->label_zh);
        s_field_error(errs, "reason", "required", msg);
    }

    if (json_array_size(errs) > 0) {
        json_decref(norm);
        if (fields)
            *fields = errs;
        else
            json_decref(errs);
        return LF_MOVE_MISSING;
    }
    json_decref(errs);
    if (normalized)
        *normalized = norm;
    else
        json_decref(norm);
    return LF_MOVE_OK;
}

json_t *lf_pipeline_allowed(const lf_pipeline_t *p, const char *from) {
    int f = s_find(p, from);
    return f < 0 ? NULL : s_allowed(p, (size_t)f);
}

int lf_pipeline_move_needs_reason(const lf_pipeline_t *p, const char *from,
                                  const char *to) {
    int f = s_find(p, from), t = s_find(p, to);
    if (f < 0 || t < 0 || !(p->moves[f][t] & S_MOVE_ALLOWED))
        return -1;
    return (p->moves[f][t] & S_MOVE_NEEDS_REASON) ||
           (p->stages[t].requires & S_REQ_REASON);
}

const char *lf_pipeline_playbook(const lf_pipeline_t *p, const char *stage) {
    int i = s_find(p, stage);
    return i < 0 ? NULL : p->stages[i].playbook;
}

/* Picks the "zh" or "en" member of a pair; NULL for any other language. */
static const char *s_lang(const char *lang, const char *zh, const char *en) {
    if (!lang)
        return NULL;
    if (strcmp(lang, "zh") == 0)
        return zh;
    if (strcmp(lang, "en") == 0)
        return en;
    return NULL;
}

const char *lf_pipeline_playbook_lang(const lf_pipeline_t *p, const char *stage,
                                      const char *lang) {
    int i = s_find(p, stage);
    return i < 0 ? NULL
                 : s_lang(lang, p->stages[i].playbook_zh, p->stages[i].playbook_en);
}

const char *lf_pipeline_label(const lf_pipeline_t *p, const char *stage,
                              const char *lang) {
    int i = s_find(p, stage);
    return i < 0 ? NULL : s_lang(lang, p->stages[i].label_zh, p->stages[i].label_en);
}

double lf_pipeline_probability(const lf_pipeline_t *p, const char *stage) {
    int i = s_find(p, stage);
    return i < 0 ? -1.0 : p->stages[i].probability;
}

int lf_pipeline_is_open(const lf_pipeline_t *p, const char *stage) {
    int i = s_find(p, stage);
    return i < 0 ? -1 : p->stages[i].kind == S_KIND_OPEN;
}

int lf_pipeline_is_won(const lf_pipeline_t *p, const char *stage) {
    int i = s_find(p, stage);
    return i < 0 ? -1 : p->stages[i].kind == S_KIND_WON;
}

int lf_pipeline_stops_first_contact(const lf_pipeline_t *p, const char *stage) {
    int i = s_find(p, stage);
    if (i < 0)
        return -1;
    if (p->stages[i].kind != S_KIND_OPEN)
        return 1;
    return p->stages[i].order >= p->stages[p->first_contact].order;
}

const char *lf_pipeline_first_contact_stage(const lf_pipeline_t *p) {
    return p ? p->stages[p->first_contact].id : NULL;
}

const char *lf_pipeline_initial(const lf_pipeline_t *p) {
    return p ? p->stages[p->initial].id : NULL;
}

static const char *s_kind_name(s_kind_t kind) {
    return kind == S_KIND_OPEN ? "open" : kind == S_KIND_WON ? "won" : "lost";
}

json_t *lf_pipeline_to_json(const lf_pipeline_t *p) {
    if (!p)
        return NULL;
    json_t *stages = json_array(), *reasons = json_array();
    S_MUST(stages);
    S_MUST(reasons);
    for (size_t i = 0; i < p->nstages; i++) {
        const s_stage_t *st = &p->stages[i];
        json_t *requires = json_array();
        S_MUST(requires);
        if (st->requires & S_REQ_AMOUNT)
            json_array_append_new(requires, json_string("amount"));
        if (st->requires & S_REQ_LOSS_REASON)
            json_array_append_new(requires, json_string("loss_reason"));
        if (st->requires & S_REQ_REASON)
            json_array_append_new(requires, json_string("reason"));
        json_t *s = json_pack(
            "{s:s, s:{s:s, s:s}, s:I, s:s, s:b, s:f, s:o, s:{s:s, s:s}, s:o}", "id",
            st->id, "label", "zh", st->label_zh, "en", st->label_en, "order", st->order,
            "kind", s_kind_name(st->kind), "open", st->kind == S_KIND_OPEN, "probability",
            st->probability, "requires", requires, "playbook", "zh", st->playbook_zh,
            "en", st->playbook_en, "allowed", s_allowed(p, i));
        S_MUST(s);
        if (json_array_append_new(stages, s) < 0)
            s_oom(__FILE__, __LINE__);
    }
    for (size_t i = 0; i < p->nreasons; i++) {
        json_t *r = json_pack("{s:s, s:{s:s, s:s}}", "id", p->reasons[i].id, "label",
                              "zh", p->reasons[i].zh, "en", p->reasons[i].en);
        S_MUST(r);
        if (json_array_append_new(reasons, r) < 0)
            s_oom(__FILE__, __LINE__);
    }
    json_t *out = json_pack("{s:s, s:s, s:o, s:o}", "initial", lf_pipeline_initial(p),
                            "first_contact_stage", lf_pipeline_first_contact_stage(p),
                            "stages", stages, "loss_reasons", reasons);
    S_MUST(out);
    return out;
}

int lf_pipeline_may_move(const lf_actor_t *actor, const char *owner,
                         const char *owner_manager) {
    if (!actor)
        return 0;
    if (actor->is_admin)
        return 1;
    /* A channel key speaks for a web form or a phone system, never for a person. */
    if (!actor->rep_id || !*actor->rep_id)
        return 0;
    /* Nobody manages an unassigned deal but an admin; empty strings match nobody. */
    if (!owner || !*owner)
        return 0;
    if (strcmp(actor->rep_id, owner) == 0)
        return 1;
    return owner_manager && *owner_manager && strcmp(actor->rep_id, owner_manager) == 0;
}
