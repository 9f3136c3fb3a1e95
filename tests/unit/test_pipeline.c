/*
 * test_pipeline.c - the deal pipeline rules against the shipped config/pipeline.json.
 *
 * The expected move table is derived here from the stage order and the written rules
 * (one step forward, lost from any open stage, one step back with a reason, reopen
 * lost -> new with a reason, nothing else out of won or lost), never from the module,
 * so a change to either the code or the file that breaks the rules fails here. Field
 * checks, bad configurations and permissions are tables: adding a case is adding a row.
 * Run from the repository root, or point LEADFLOW_PIPELINE_CONFIG at the file.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lf/pipeline.h"

#define N_STAGES 8

/* The default pipeline as the product brief states it: id, labels, kind (o/w/l). */
static const struct {
    const char *id, *zh, *en;
    char kind;
} k_stages[N_STAGES] = {
    {"new", "新线索", "New lead", 'o'},
    {"contacted", "初步接触", "Contacted", 'o'},
    {"qualified", "需求确认", "Qualified", 'o'},
    {"proposal", "方案提交", "Proposal", 'o'},
    {"quote", "报价", "Quote", 'o'},
    {"negotiation", "谈判", "Negotiation", 'o'},
    {"won", "成交", "Won", 'w'},
    {"lost", "流失", "Lost", 'l'},
};

static const char *s_config_path(void) {
    const char *env = getenv("LEADFLOW_PIPELINE_CONFIG");
    return env && *env ? env : "config/pipeline.json";
}

static lf_pipeline_t *s_load_default(void) {
    char err[512];
    lf_pipeline_t *p = lf_pipeline_load(s_config_path(), err, sizeof err);
    cr_assert_not_null(p, "loading %s: %s", s_config_path(), err);
    return p;
}

static json_t *s_default_json(void) {
    json_error_t jerr;
    json_t *cfg = json_load_file(s_config_path(), 0, &jerr);
    cr_assert_not_null(cfg, "%s: %s", s_config_path(), jerr.text);
    return cfg;
}

/* Expected verdict of a move in the default pipeline, from the rules alone. Returns 1
   when allowed and sets *reason when the move needs one; 0 when forbidden. Indices are
   into k_stages, whose first seven entries are the forward chain. */
static int s_expect(int f, int t, int *reason) {
    *reason = 0;
    if (f == t)
        return 0;
    if (k_stages[f].kind == 'o') {
        if (k_stages[t].kind == 'l')
            return 1;
        if (t == f + 1)
            return 1;
        if (t == f - 1 && k_stages[t].kind == 'o') {
            *reason = 1;
            return 1;
        }
        return 0;
    }
    if (k_stages[f].kind == 'l' && t == 0) {
        *reason = 1; /* reopen */
        return 1;
    }
    return 0;
}

/* The fields the target stage needs, all valid, plus an optional reason. */
static json_t *s_body(int t, int with_reason) {
    json_t *b = json_object();
    if (strcmp(k_stages[t].id, "quote") == 0 || strcmp(k_stages[t].id, "won") == 0)
        json_object_set_new(b, "amount", json_integer(120000));
    if (strcmp(k_stages[t].id, "lost") == 0)
        json_object_set_new(b, "loss_reason", json_string("price"));
    if (with_reason)
        json_object_set_new(b, "reason", json_string("客户要求调整"));
    return b;
}

static int s_has_field(const json_t *fields, const char *field, const char *code) {
    size_t i;
    json_t *e;
    json_array_foreach(fields, i, e) {
        if (strcmp(json_string_value(json_object_get(e, "field")), field) == 0 &&
            strcmp(json_string_value(json_object_get(e, "code")), code) == 0 &&
            json_string_length(json_object_get(e, "message")) > 0)
            return 1;
    }
    return 0;
}

Test(pipeline, full_rule_table) {
    lf_pipeline_t *p = s_load_default();
    int checked = 0;
    for (int f = 0; f < N_STAGES; f++) {
        json_t *expect_allowed = json_array();
        for (int t = 0; t < N_STAGES; t++) {
            int r;
            if (s_expect(f, t, &r))
                json_array_append_new(expect_allowed, json_string(k_stages[t].id));
        }
        for (int t = 0; t < N_STAGES; t++) {
            int needs_reason, ok = s_expect(f, t, &needs_reason);
            json_t *body = s_body(t, 1), *allowed = NULL, *fields = NULL, *norm = NULL;
            lf_move_verdict_t v = lf_pipeline_check(p, k_stages[f].id, k_stages[t].id,
                                                    body, &allowed, &fields, &norm);
            const char *fid = k_stages[f].id, *tid = k_stages[t].id;
            if (ok) {
                cr_expect_eq(v, LF_MOVE_OK, "%s -> %s: verdict %d, want OK", fid, tid, v);
                cr_expect_not_null(norm, "%s -> %s: no normalized fields", fid, tid);
                cr_expect_null(allowed);
                cr_expect_null(fields);
                cr_expect_eq(lf_pipeline_move_needs_reason(p, fid, tid), needs_reason,
                             "%s -> %s: needs_reason", fid, tid);
            } else {
                cr_expect_eq(v, LF_MOVE_FORBIDDEN, "%s -> %s: verdict %d, want FORBIDDEN",
                             fid, tid, v);
                cr_expect(json_equal(allowed, expect_allowed), "%s -> %s: allowed %s",
                          fid, tid, allowed ? json_dumps(allowed, JSON_COMPACT) : "NULL");
                cr_expect_null(norm);
                cr_expect_eq(lf_pipeline_move_needs_reason(p, fid, tid), -1);
            }
            json_decref(allowed);
            json_decref(fields);
            json_decref(norm);
            json_decref(body);

            /* The same move without a reason: only the reason-bearing moves fail. */
            if (ok) {
                body = s_body(t, 0);
                v = lf_pipeline_check(p, fid, tid, body, NULL, &fields, &norm);
                if (needs_reason) {
                    cr_expect_eq(v, LF_MOVE_MISSING, "%s -> %s without reason", fid, tid);
                    cr_expect(s_has_field(fields, "reason", "required"));
                    cr_expect_eq(json_array_size(fields), 1);
                } else {
                    cr_expect_eq(v, LF_MOVE_OK, "%s -> %s without reason: %d", fid, tid,
                                 v);
                }
                json_decref(fields);
                json_decref(norm);
                json_decref(body);
            }
            checked++;
        }
        json_t *got = lf_pipeline_allowed(p, k_stages[f].id);
        cr_expect(json_equal(got, expect_allowed), "allowed from %s", k_stages[f].id);
        json_decref(got);
        json_decref(expect_allowed);
    }
    cr_expect_eq(checked, N_STAGES * N_STAGES);
    lf_pipeline_destroy(&p);
    cr_expect_null(p);
}

Test(pipeline, unknown_stages) {
    lf_pipeline_t *p = s_load_default();
    static const char *const pairs[][2] = {{"bogus", "new"},
                                           {"new", "bogus"},
                                           {NULL, "new"},
                                           {"new", NULL},
                                           {"New", "contacted"}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        json_t *allowed = json_string("sentinel"), *fields = allowed, *norm = allowed;
        json_t *keep = allowed;
        cr_expect_eq(lf_pipeline_check(p, pairs[i][0], pairs[i][1], NULL, &allowed,
                                       &fields, &norm),
                     LF_MOVE_UNKNOWN_STAGE, "case %zu", i);
        cr_expect(allowed == NULL && fields == NULL && norm == NULL, "outputs cleared");
        json_decref(keep);
    }
    cr_expect_null(lf_pipeline_allowed(p, "bogus"));
    cr_expect_eq(lf_pipeline_is_open(p, "bogus"), -1);
    cr_expect_eq(lf_pipeline_probability(p, "bogus"), -1.0);
    cr_expect_null(lf_pipeline_label(p, "bogus", "zh"));
    cr_expect_null(lf_pipeline_playbook(p, "bogus"));
    cr_expect_eq(lf_pipeline_stops_first_contact(p, "bogus"), -1);
    lf_pipeline_destroy(&p);
}

/* amount on the way into quote: the JSON text sent, the expected verdict, the field code
   when refused, and the normalized number when accepted. NULL text means not sent. */
static const struct {
    const char *json;
    lf_move_verdict_t verdict;
    const char *code;
    double value;
    int integer;
} k_amounts[] = {
    {NULL, LF_MOVE_MISSING, "required", 0, 0},
    {"null", LF_MOVE_MISSING, "required", 0, 0},
    {"0", LF_MOVE_MISSING, "invalid", 0, 0},
    {"0.0", LF_MOVE_MISSING, "invalid", 0, 0},
    {"-5", LF_MOVE_MISSING, "invalid", 0, 0},
    {"-0.01", LF_MOVE_MISSING, "invalid", 0, 0},
    {"\"abc\"", LF_MOVE_MISSING, "invalid", 0, 0},
    {"\"\"", LF_MOVE_MISSING, "invalid", 0, 0},
    {"\"0\"", LF_MOVE_MISSING, "invalid", 0, 0},
    {"\"-1\"", LF_MOVE_MISSING, "invalid", 0, 0},
    {"\"1e5\"", LF_MOVE_MISSING, "invalid", 0, 0},
    {"\"50万\"", LF_MOVE_MISSING, "invalid", 0, 0},
    {"\"120,000\"", LF_MOVE_MISSING, "invalid", 0, 0},
    {"\" 120000\"", LF_MOVE_MISSING, "invalid", 0, 0},
    {"\"1.2.3\"", LF_MOVE_MISSING, "invalid", 0, 0},
    {"\"12.\"", LF_MOVE_MISSING, "invalid", 0, 0},
    {"\"99999999999999999999999\"", LF_MOVE_MISSING, "invalid", 0, 0},
    {"true", LF_MOVE_MISSING, "invalid", 0, 0},
    {"[120000]", LF_MOVE_MISSING, "invalid", 0, 0},
    {"{}", LF_MOVE_MISSING, "invalid", 0, 0},
    {"120000", LF_MOVE_OK, NULL, 120000, 1},
    {"99.5", LF_MOVE_OK, NULL, 99.5, 0},
    {"\"120000\"", LF_MOVE_OK, NULL, 120000, 1},
    {"\"120000.50\"", LF_MOVE_OK, NULL, 120000.5, 0},
    {"\"0.01\"", LF_MOVE_OK, NULL, 0.01, 0},
};

static void s_check_amount(lf_pipeline_t *p, const char *from, const char *to, size_t i) {
    json_t *body = json_object(), *fields = NULL, *norm = NULL;
    if (k_amounts[i].json) {
        json_t *v = json_loads(k_amounts[i].json, JSON_DECODE_ANY, NULL);
        cr_assert_not_null(v, "bad fixture %s", k_amounts[i].json);
        json_object_set_new(body, "amount", v);
    }
    const char *shown = k_amounts[i].json ? k_amounts[i].json : "(absent)";
    lf_move_verdict_t v = lf_pipeline_check(p, from, to, body, NULL, &fields, &norm);
    cr_expect_eq(v, k_amounts[i].verdict, "%s -> %s amount %s: verdict %d", from, to,
                 shown, v);
    if (k_amounts[i].verdict == LF_MOVE_MISSING) {
        cr_expect(s_has_field(fields, "amount", k_amounts[i].code), "amount %s: want %s",
                  shown, k_amounts[i].code);
        cr_expect_eq(json_array_size(fields), 1, "amount %s: one error", shown);
        cr_expect_null(norm);
    } else {
        json_t *a = json_object_get(norm, "amount");
        cr_expect(json_is_number(a), "amount %s: normalized", shown);
        cr_expect(fabs(json_number_value(a) - k_amounts[i].value) < 1e-9, "amount %s",
                  shown);
        cr_expect_eq(json_is_integer(a), k_amounts[i].integer, "amount %s: integer",
                     shown);
        cr_expect_null(fields);
    }
    json_decref(fields);
    json_decref(norm);
    json_decref(body);
}

Test(pipeline, amount_into_quote_and_won) {
    lf_pipeline_t *p = s_load_default();
    for (size_t i = 0; i < sizeof k_amounts / sizeof k_amounts[0]; i++) {
        s_check_amount(p, "proposal", "quote", i);
        s_check_amount(p, "negotiation", "won", i);
    }
    lf_pipeline_destroy(&p);
}

Test(pipeline, amount_checked_even_when_not_required) {
    lf_pipeline_t *p = s_load_default();
    json_t *fields = NULL, *norm = NULL;
    json_t *body = json_pack("{s:s}", "amount", "abc");
    cr_expect_eq(lf_pipeline_check(p, "new", "contacted", body, NULL, &fields, &norm),
                 LF_MOVE_MISSING);
    cr_expect(s_has_field(fields, "amount", "invalid"));
    json_decref(fields);
    json_decref(body);

    body = json_pack("{s:i}", "amount", 5000);
    cr_expect_eq(lf_pipeline_check(p, "new", "contacted", body, NULL, NULL, &norm),
                 LF_MOVE_OK);
    cr_expect_eq(json_integer_value(json_object_get(norm, "amount")), 5000);
    json_decref(norm);
    json_decref(body);
    lf_pipeline_destroy(&p);
}

/* loss_reason on the way into lost: sent JSON, expected id or NULL with a code. */
static const struct {
    const char *json;
    const char *id;
    const char *code;
} k_loss[] = {
    {NULL, NULL, "required"},
    {"null", NULL, "required"},
    {"\"price\"", "price", NULL},
    {"\"competitor\"", "competitor", NULL},
    {"\"价格\"", "price", NULL},
    {"\"竞品\"", "competitor", NULL},
    {"\"预算不足\"", "no_budget", NULL},
    {"\"需求取消\"", "need_cancelled", NULL},
    {"\"无法联系\"", "unreachable", NULL},
    {"\"其他\"", "other", NULL},
    {"\" 竞品 \"", "competitor", NULL},
    {"\"Price\"", NULL, "invalid"},
    {"\"bogus\"", NULL, "invalid"},
    {"\"\"", NULL, "invalid"},
    {"\"价\"", NULL, "invalid"},
    {"42", NULL, "invalid"},
    {"[\"price\"]", NULL, "invalid"},
};

Test(pipeline, loss_reason) {
    lf_pipeline_t *p = s_load_default();
    for (size_t i = 0; i < sizeof k_loss / sizeof k_loss[0]; i++) {
        json_t *body = json_object(), *fields = NULL, *norm = NULL;
        if (k_loss[i].json)
            json_object_set_new(body, "loss_reason",
                                json_loads(k_loss[i].json, JSON_DECODE_ANY, NULL));
        const char *shown = k_loss[i].json ? k_loss[i].json : "(absent)";
        lf_move_verdict_t v =
            lf_pipeline_check(p, "quote", "lost", body, NULL, &fields, &norm);
        if (k_loss[i].id) {
            cr_expect_eq(v, LF_MOVE_OK, "loss_reason %s: verdict %d", shown, v);
            cr_expect_str_eq(json_string_value(json_object_get(norm, "loss_reason")),
                             k_loss[i].id, "loss_reason %s", shown);
        } else {
            cr_expect_eq(v, LF_MOVE_MISSING, "loss_reason %s: verdict %d", shown, v);
            cr_expect(s_has_field(fields, "loss_reason", k_loss[i].code),
                      "loss_reason %s: want %s", shown, k_loss[i].code);
        }
        json_decref(fields);
        json_decref(norm);
        json_decref(body);
    }
    lf_pipeline_destroy(&p);
}

Test(pipeline, loss_reason_ignored_outside_lost_and_errors_listed_together) {
    lf_pipeline_t *p = s_load_default();
    json_t *fields = NULL, *norm = NULL;
    json_t *body = json_pack("{s:i, s:s}", "amount", 1000, "loss_reason", "bogus");
    cr_expect_eq(lf_pipeline_check(p, "proposal", "quote", body, NULL, &fields, &norm),
                 LF_MOVE_OK);
    cr_expect_null(json_object_get(norm, "loss_reason"));
    json_decref(norm);
    json_decref(body);

    /* Every broken field is reported at once, as the API promises of a 422. */
    body = json_pack("{s:s, s:i}", "amount", "abc", "reason", 7);
    cr_expect_eq(lf_pipeline_check(p, "quote", "lost", body, NULL, &fields, &norm),
                 LF_MOVE_MISSING);
    cr_expect_eq(json_array_size(fields), 3);
    cr_expect(s_has_field(fields, "amount", "invalid"));
    cr_expect(s_has_field(fields, "loss_reason", "required"));
    cr_expect(s_has_field(fields, "reason", "invalid"));
    cr_expect_null(norm);
    json_decref(fields);
    json_decref(body);
    lf_pipeline_destroy(&p);
}

Test(pipeline, back_moves_need_a_reason) {
    lf_pipeline_t *p = s_load_default();
    static const struct {
        const char *json; /* reason sent; NULL = absent */
        lf_move_verdict_t verdict;
        const char *code;       /* field code when refused */
        const char *normalized; /* recorded reason when accepted */
    } cases[] = {
        {NULL, LF_MOVE_MISSING, "required", NULL},
        {"null", LF_MOVE_MISSING, "required", NULL},
        {"\"\"", LF_MOVE_MISSING, "required", NULL},
        {"\"   \\t \"", LF_MOVE_MISSING, "required", NULL},
        {"12", LF_MOVE_MISSING, "invalid", NULL},
        {"\"客户要求修改方案\"", LF_MOVE_OK, NULL, "客户要求修改方案"},
        {"\"  scope changed \"", LF_MOVE_OK, NULL, "scope changed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *body = json_object(), *fields = NULL, *norm = NULL;
        if (cases[i].json)
            json_object_set_new(body, "reason",
                                json_loads(cases[i].json, JSON_DECODE_ANY, NULL));
        lf_move_verdict_t v =
            lf_pipeline_check(p, "quote", "proposal", body, NULL, &fields, &norm);
        cr_expect_eq(v, cases[i].verdict, "case %zu: verdict %d", i, v);
        if (cases[i].code)
            cr_expect(s_has_field(fields, "reason", cases[i].code), "case %zu", i);
        else
            cr_expect_str_eq(json_string_value(json_object_get(norm, "reason")),
                             cases[i].normalized, "case %zu", i);
        json_decref(fields);
        json_decref(norm);
        json_decref(body);
    }

    /* Too long a reason is refused rather than cut. */
    char *big = malloc(2002);
    memset(big, 'x', 2001);
    big[2001] = '\0';
    json_t *body = json_pack("{s:s}", "reason", big), *fields = NULL;
    cr_expect_eq(lf_pipeline_check(p, "quote", "proposal", body, NULL, &fields, NULL),
                 LF_MOVE_MISSING);
    cr_expect(s_has_field(fields, "reason", "too_long"));
    json_decref(fields);
    json_decref(body);
    big[2000] = '\0';
    body = json_pack("{s:s}", "reason", big);
    cr_expect_eq(lf_pipeline_check(p, "quote", "proposal", body, NULL, NULL, NULL),
                 LF_MOVE_OK);
    json_decref(body);
    free(big);

    /* Two steps back is not one step back, with or without a reason. */
    body = json_pack("{s:s}", "reason", "redo");
    cr_expect_eq(lf_pipeline_check(p, "quote", "qualified", body, NULL, NULL, NULL),
                 LF_MOVE_FORBIDDEN);
    json_decref(body);
    lf_pipeline_destroy(&p);
}

Test(pipeline, terminal_stages) {
    lf_pipeline_t *p = s_load_default();
    json_t *a = lf_pipeline_allowed(p, "won");
    cr_expect_eq(json_array_size(a), 0);
    json_decref(a);
    a = lf_pipeline_allowed(p, "lost");
    cr_expect_eq(json_array_size(a), 1);
    cr_expect_str_eq(json_string_value(json_array_get(a, 0)), "new");
    json_decref(a);

    json_t *body = json_pack("{s:s}", "reason", "客户重新询价"), *norm = NULL;
    cr_expect_eq(lf_pipeline_check(p, "lost", "new", body, NULL, NULL, &norm),
                 LF_MOVE_OK);
    cr_expect_str_eq(json_string_value(json_object_get(norm, "reason")), "客户重新询价");
    json_decref(norm);
    json_decref(body);

    /* No request body at all (NULL) is an empty body. */
    json_t *fields = NULL;
    cr_expect_eq(lf_pipeline_check(p, "lost", "new", NULL, NULL, &fields, NULL),
                 LF_MOVE_MISSING);
    cr_expect(s_has_field(fields, "reason", "required"));
    json_decref(fields);
    lf_pipeline_destroy(&p);
}

Test(pipeline, stage_attributes) {
    lf_pipeline_t *p = s_load_default();
    /* Probabilities rise along the open stages; won is 1 and lost 0. */
    double prev = -1;
    for (int i = 0; i < N_STAGES; i++) {
        const char *id = k_stages[i].id;
        cr_expect_str_eq(lf_pipeline_label(p, id, "zh"), k_stages[i].zh);
        cr_expect_str_eq(lf_pipeline_label(p, id, "en"), k_stages[i].en);
        cr_expect_null(lf_pipeline_label(p, id, "fr"));
        cr_expect_null(lf_pipeline_label(p, id, NULL));
        cr_expect_eq(lf_pipeline_is_open(p, id), k_stages[i].kind == 'o', "%s", id);
        cr_expect_eq(lf_pipeline_is_won(p, id), k_stages[i].kind == 'w', "%s", id);
        /* The SLA stops from contacted on, and in either final stage. */
        cr_expect_eq(lf_pipeline_stops_first_contact(p, id), i != 0, "%s", id);
        double pr = lf_pipeline_probability(p, id);
        cr_expect(pr >= 0 && pr <= 1, "%s", id);
        if (k_stages[i].kind == 'o')
            cr_expect_gt(pr, prev, "%s", id);
        prev = pr;
        const char *zh = lf_pipeline_playbook_lang(p, id, "zh");
        const char *en = lf_pipeline_playbook_lang(p, id, "en");
        const char *both = lf_pipeline_playbook(p, id);
        cr_assert(zh && en && both, "%s playbook", id);
        cr_expect_not_null(strstr(both, zh));
        cr_expect_not_null(strstr(both, en));
        cr_expect_null(lf_pipeline_playbook_lang(p, id, "de"));
    }
    cr_expect_eq(lf_pipeline_probability(p, "won"), 1.0);
    cr_expect_eq(lf_pipeline_probability(p, "lost"), 0.0);
    cr_expect_str_eq(lf_pipeline_initial(p), "new");
    cr_expect_str_eq(lf_pipeline_first_contact_stage(p), "contacted");
    lf_pipeline_destroy(&p);
    lf_pipeline_destroy(&p); /* already NULL: harmless */
    lf_pipeline_destroy(NULL);
}

Test(pipeline, public_description) {
    lf_pipeline_t *p = s_load_default();
    json_t *d = lf_pipeline_to_json(p);
    cr_assert_not_null(d);
    cr_expect_str_eq(json_string_value(json_object_get(d, "initial")), "new");
    json_t *stages = json_object_get(d, "stages");
    cr_assert_eq(json_array_size(stages), N_STAGES);
    for (int i = 0; i < N_STAGES; i++) {
        json_t *s = json_array_get(stages, i);
        cr_expect_str_eq(json_string_value(json_object_get(s, "id")), k_stages[i].id);
        json_t *allowed = lf_pipeline_allowed(p, k_stages[i].id);
        cr_expect(json_equal(json_object_get(s, "allowed"), allowed), "%s",
                  k_stages[i].id);
        json_decref(allowed);
    }
    json_t *quote_req = json_object_get(json_array_get(stages, 4), "requires");
    cr_expect_str_eq(json_string_value(json_array_get(quote_req, 0)), "amount");
    cr_expect_eq(json_array_size(json_object_get(d, "loss_reasons")), 6);
    json_decref(d);
    lf_pipeline_destroy(&p);
}

Test(pipeline, permissions) {
    static const struct {
        const char *rep;
        int admin;
        const char *owner, *manager;
        int want;
    } cases[] = {
        {"wang.fang", 0, "wang.fang", "li.ming", 1}, /* owner */
        {"li.ming", 0, "wang.fang", "li.ming", 1},   /* owner's manager */
        {"zhao.lei", 0, "wang.fang", "li.ming", 0},  /* another rep */
        {NULL, 1, "wang.fang", "li.ming", 1},        /* admin key */
        {"zhao.lei", 1, "wang.fang", "li.ming", 1},  /* admin rep */
        {NULL, 0, "wang.fang", "li.ming", 0},        /* channel key */
        {"wang.fang", 0, "wang.fang", NULL, 1},      /* owner without a manager */
        {"li.ming", 0, NULL, "li.ming", 0},          /* unassigned deal */
        {NULL, 1, NULL, NULL, 1},                    /* admin, unassigned deal */
        {"", 0, "", "", 0},                          /* empty ids match nobody */
        {"Wang.Fang", 0, "wang.fang", "li.ming", 0}, /* ids are exact */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lf_actor_t actor = {cases[i].rep, cases[i].admin};
        cr_expect_eq(lf_pipeline_may_move(&actor, cases[i].owner, cases[i].manager),
                     cases[i].want, "case %zu", i);
    }
    cr_expect_eq(lf_pipeline_may_move(NULL, "wang.fang", "li.ming"), 0);
}

/* Sets (or, with value NULL, deletes) the member at a '/'-separated path such as
   "stages/2/probability". */
static void s_mutate(json_t *root, const char *path, const char *value) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *node = root;
    char *save = NULL, *tok = strtok_r(buf, "/", &save);
    while (tok) {
        char *next = strtok_r(NULL, "/", &save);
        int is_arr = json_is_array(node);
        size_t idx = (size_t)strtoul(tok, NULL, 10);
        if (!next) {
            json_t *v = value ? json_loads(value, JSON_DECODE_ANY, NULL) : NULL;
            cr_assert(!value || v, "bad fixture value %s", value);
            if (is_arr)
                cr_assert_eq(v ? json_array_set_new(node, idx, v)
                               : json_array_remove(node, idx),
                             0, "%s", path);
            else if (v)
                json_object_set_new(node, tok, v);
            else
                cr_assert_eq(json_object_del(node, tok), 0, "%s", path);
            return;
        }
        node = is_arr ? json_array_get(node, idx) : json_object_get(node, tok);
        cr_assert_not_null(node, "fixture path %s", path);
        tok = next;
    }
}

/* Each row breaks the shipped definition in one way; the error must name the key. */
static const struct {
    const char *path, *value, *expect;
} k_bad[] = {
    {"version", "2", "version: must be 1"},
    {"version", NULL, "version: missing"},
    {"stage", "[]", "stage: unknown key"},
    {"stages", "[]", "stages: must be an array"},
    {"stages", "{}", "stages: must be an array"},
    {"stages", NULL, "stages: missing"},
    {"stages/2", "\"qualified\"", "stages[2]: must be an object"},
    {"stages/2/probability", "1.5",
     "stages[2].probability: must be a number between 0 and 1"},
    {"stages/2/probability", "-0.1",
     "stages[2].probability: must be a number between 0 and 1"},
    {"stages/2/probability", "\"0.3\"", "stages[2].probability: must be a number"},
    {"stages/2/probability", NULL, "stages[2].probability: missing"},
    {"stages/2/probabilty", "0.3", "stages[2].probabilty: unknown key"},
    {"stages/3/id", "\"new\"", "stages[3].id: duplicate stage id \"new\""},
    {"stages/3/id", "\"Proposal\"", "stages[3].id: \"Proposal\" must be"},
    {"stages/3/id", "\"\"", "stages[3].id: must be a non-empty string"},
    {"stages/3/id", NULL, "stages[3].id: missing"},
    {"stages/1/label", NULL, "stages[1].label: missing"},
    {"stages/1/label", "\"初步接触\"", "stages[1].label: must be an object"},
    {"stages/1/label/zh", NULL, "stages[1].label.zh: missing"},
    {"stages/1/label/en", "\"\"", "stages[1].label.en: must be a non-empty string"},
    {"stages/1/label/fr", "\"Contacté\"", "stages[1].label.fr: unknown key"},
    {"stages/0/playbook", NULL, "stages[0].playbook: missing"},
    {"stages/0/playbook/en", NULL, "stages[0].playbook.en: missing"},
    {"stages/0/kind", "\"closed\"", "stages[0].kind: must be"},
    {"stages/0/order", "\"first\"", "stages[0].order: must be an integer"},
    {"stages/0/order", "20", "stages[1].order: 20 is also the order of stages[0]"},
    {"stages/0/order", "100", "stages[0].order: open stage \"new\" must come before"},
    {"stages/4/requires", "[\"price\"]", "stages[4].requires[0]: must be"},
    {"stages/4/requires", "\"amount\"", "stages[4].requires: must be an array"},
    {"stages/4/requires", "[\"amount\", \"amount\"]",
     "stages[4].requires[1]: \"amount\" listed twice"},
    {"stages/4/requires", "[\"loss_reason\"]",
     "stages[4].requires[0]: loss_reason only applies"},
    {"stages/6/kind", "\"open\"",
     "stages: need at least one open stage, exactly one won"},
    {"stages/5/kind", "\"won\"", "stages: need at least one open stage, exactly one won"},
    {"stages/7/kind", "\"won\"", "stages[7].requires[0]: loss_reason only applies"},
    {"initial", "\"nowhere\"", "initial: unknown stage \"nowhere\""},
    {"initial", "\"won\"", "initial: \"won\" must be an open stage"},
    {"initial", NULL, "initial: missing"},
    {"first_contact_stage", "\"new\"",
     "first_contact_stage: \"new\" must be an open stage after"},
    {"first_contact_stage", "\"lost\"",
     "first_contact_stage: \"lost\" must be an open stage"},
    {"first_contact_stage", NULL, "first_contact_stage: missing"},
    {"loss_reasons", "[]", "loss_reasons: must be an array of 1 to"},
    {"loss_reasons", NULL, "loss_reasons: missing"},
    {"loss_reasons/1/id", "\"price\"",
     "loss_reasons[1].id: duplicate loss reason \"price\""},
    {"loss_reasons/1/id", "\"No budget\"", "loss_reasons[1].id: \"No budget\" must be"},
    {"loss_reasons/2/label/zh", "\"价格\"", "loss_reasons[2].label.zh: duplicate"},
    {"loss_reasons/2/label", NULL, "loss_reasons[2].label: missing"},
    {"loss_reasons/2/note", "\"x\"", "loss_reasons[2].note: unknown key"},
    {"moves", "[]", "moves: must be an object"},
    {"moves/forward", "0", "moves.forward: must be an integer from 1"},
    {"moves/forward", "1.5", "moves.forward: must be an integer from 1"},
    {"moves/back", "\"one\"", "moves.back: must be an integer from 0"},
    {"moves/back", "-1", "moves.back: must be an integer from 0"},
    {"moves/back_requires_reason", "\"yes\"",
     "moves.back_requires_reason: must be true or false"},
    {"moves/lost_from_open", "1", "moves.lost_from_open: must be true or false"},
    {"moves/skip", "true", "moves.skip: unknown key"},
    {"moves/reopen/to", "\"nowhere\"", "moves.reopen.to: unknown stage \"nowhere\""},
    {"moves/reopen/to", "\"won\"", "moves.reopen.to: must be an open stage"},
    {"moves/reopen/from", "\"quote\"", "moves.reopen.from: must be a won or lost stage"},
    {"moves/reopen/from", NULL, "moves.reopen.from: missing"},
    {"moves/reopen", "\"lost->new\"", "moves.reopen: must be an object"},
    {"moves/extra", "{}", "moves.extra: must be an array"},
    {"moves/extra", "[{\"from\": \"new\", \"to\": \"ghost\"}]",
     "moves.extra[0].to: unknown stage \"ghost\""},
    {"moves/extra", "[{\"from\": \"new\", \"to\": \"new\"}]",
     "moves.extra[0]: from and to are the same"},
    {"moves/extra", "[{\"from\": \"new\", \"to\": \"won\", \"requires_reason\": 0}]",
     "moves.extra[0].requires_reason: must be true or false"},
};

Test(pipeline, bad_configs_name_the_key) {
    for (size_t i = 0; i < sizeof k_bad / sizeof k_bad[0]; i++) {
        json_t *cfg = s_default_json();
        s_mutate(cfg, k_bad[i].path, k_bad[i].value);
        char err[512] = "untouched";
        lf_pipeline_t *p = lf_pipeline_from_json(cfg, err, sizeof err);
        cr_expect_null(p, "case %zu (%s = %s) loaded", i, k_bad[i].path,
                       k_bad[i].value ? k_bad[i].value : "(deleted)");
        cr_expect_not_null(strstr(err, k_bad[i].expect),
                           "case %zu (%s): got \"%s\", want \"%s\"", i, k_bad[i].path,
                           err, k_bad[i].expect);
        lf_pipeline_destroy(&p);
        json_decref(cfg);
    }
    char err[128];
    json_t *arr = json_array();
    cr_expect_null(lf_pipeline_from_json(arr, err, sizeof err));
    cr_expect_not_null(strstr(err, "(root): must be an object"), "%s", err);
    json_decref(arr);
    cr_expect_null(lf_pipeline_from_json(NULL, NULL, 0)); /* no buffer: no crash */
}

/* Variants that must load, and what they change. */
Test(pipeline, configurable_moves) {
    static const struct {
        const char *path, *value;
        const char *from, *to;
        lf_move_verdict_t verdict; /* with an empty body */
    } cases[] = {
        {"moves", NULL, "new", "contacted", LF_MOVE_OK}, /* defaults = shipped rules */
        {"moves", NULL, "contacted", "new", LF_MOVE_MISSING},
        {"moves", NULL, "lost", "new", LF_MOVE_FORBIDDEN}, /* no reopen by default */
        {"moves/reopen", "null", "lost", "new", LF_MOVE_FORBIDDEN},
        {"moves/forward", "2", "new", "qualified", LF_MOVE_OK},
        {"moves/forward", "2", "new", "proposal", LF_MOVE_FORBIDDEN},
        {"moves/back", "0", "contacted", "new", LF_MOVE_FORBIDDEN},
        {"moves/back", "2", "proposal", "contacted", LF_MOVE_MISSING},
        {"moves/back_requires_reason", "false", "contacted", "new", LF_MOVE_OK},
        {"moves/lost_from_open", "false", "new", "lost", LF_MOVE_FORBIDDEN},
        {"moves/extra",
         "[{\"from\": \"new\", \"to\": \"quote\", \"requires_reason\": false}]", "new",
         "quote", LF_MOVE_MISSING /* quote still needs its amount */},
        {"moves/extra", "[{\"from\": \"won\", \"to\": \"negotiation\"}]", "won",
         "negotiation",
         LF_MOVE_MISSING /* configured moves need a reason unless told otherwise */},
        {"stages/1/requires", "[\"reason\"]", "new", "contacted", LF_MOVE_MISSING},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *cfg = s_default_json();
        s_mutate(cfg, cases[i].path, cases[i].value);
        char err[512];
        lf_pipeline_t *p = lf_pipeline_from_json(cfg, err, sizeof err);
        json_decref(cfg); /* the pipeline must not depend on the caller's copy */
        cr_assert_not_null(p, "case %zu: %s", i, err);
        cr_expect_eq(
            lf_pipeline_check(p, cases[i].from, cases[i].to, NULL, NULL, NULL, NULL),
            cases[i].verdict, "case %zu: %s -> %s", i, cases[i].from, cases[i].to);
        cr_expect_str_eq(lf_pipeline_label(p, "new", "zh"), "新线索");
        lf_pipeline_destroy(&p);
    }
}

/* A stage list written out of order is used in `order` order. */
Test(pipeline, stages_sorted_by_order) {
    json_t *cfg = s_default_json();
    json_t *stages = json_object_get(cfg, "stages");
    json_t *first = json_incref(json_array_get(stages, 0));
    json_array_remove(stages, 0);
    json_array_append_new(stages, first);
    char err[512];
    lf_pipeline_t *p = lf_pipeline_from_json(cfg, err, sizeof err);
    json_decref(cfg);
    cr_assert_not_null(p, "%s", err);
    json_t *a = lf_pipeline_allowed(p, "new");
    cr_expect_str_eq(json_string_value(json_array_get(a, 0)), "contacted");
    json_decref(a);
    lf_pipeline_destroy(&p);
}

static void s_write(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(pipeline, load_errors_name_the_file) {
    char err[512], dir[] = "/tmp/lf_pipeline_XXXXXX", path[600];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/pipeline.json", dir);

    cr_expect_null(lf_pipeline_load(path, err, sizeof err)); /* does not exist yet */
    cr_expect_not_null(strstr(err, path), "%s", err);

    s_write(path, "{\"version\": 1,\n \"stages\": [\n");
    cr_expect_null(lf_pipeline_load(path, err, sizeof err));
    cr_expect_not_null(strstr(err, path), "%s", err);

    s_write(path, "{\"version\": 1, \"version\": 1}");
    cr_expect_null(lf_pipeline_load(path, err, sizeof err));
    cr_expect_not_null(strstr(err, "duplicate"), "%s", err);

    s_write(path, "{\"version\": 1}");
    cr_expect_null(lf_pipeline_load(path, err, sizeof err));
    cr_expect_not_null(strstr(err, path), "%s", err);
    cr_expect_not_null(strstr(err, "stages: missing"), "%s", err);

    cr_expect_null(lf_pipeline_load(NULL, err, sizeof err));
    unlink(path);
    rmdir(dir);
}
