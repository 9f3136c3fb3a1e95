/* The exactly-once outbox consumer against a real PostgreSQL. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <zmq.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/harness.h"
#include "lf/consumer.h"
#include "lf/loop.h"
#include "lf/service.h"
#include "lf/event.h"

TestSuite(consumer, .fini = lf_h_fini);

typedef struct {
    int calls;
    const char *poison; /* lead id whose event fails */
} s_ctx_t;

/* Lead ids are uuids: a test names its events with short labels (6 bytes at most),
 * kept as the last 12 hex digits of the id, "a" -> 00000000-0000-7000-8000-000000000061.
 * The returned text lives until the 16th call after. */
static const char *s_id(const char *label) {
    static char ring[16][37];
    static int k;
    char *out = ring[k++ % 16], hex[13] = "000000000000";
    size_t n = strlen(label);
    cr_assert(n <= 6, "label too long: %s", label);
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 12 - 2 * (n - i), 3, "%02x", (unsigned char)label[i]);
    snprintf(out, 37, "00000000-0000-7000-8000-%s", hex);
    return out;
}

/* The label back from an id made by s_id; any other id as it is. */
static const char *s_label(const char *id) {
    static char ring[16][37];
    static int k;
    char *out = ring[k++ % 16];
    if (!id)
        return NULL;
    snprintf(out, 37, "%s", id);
    if (strncmp(id, "00000000-0000-7000-8000-", 24) || strlen(id) != 36)
        return out;
    char label[7];
    size_t n = 0;
    for (int i = 24; i < 36; i += 2) {
        unsigned v;
        if (sscanf(id + i, "%2x", &v) != 1)
            return out;
        if (v == 0 && n == 0)
            continue;
        if (v < 0x20 || v > 0x7e)
            return out;
        label[n++] = (char)v;
    }
    label[n] = '\0';
    snprintf(out, 37, "%s", label);
    return out;
}

/* The effect of applying an event of `lead`: a row of test_effects. Returns 0 or -1. */
static int s_effect(lf_db_t *db, const char *lead) {
    const char *p[] = {lead ? lead : "-"};
    return lf_db_cmd(db, "INSERT INTO test_effects (lead) VALUES ($1)", 1, p) < 0 ? -1
                                                                                  : 0;
}

/* A statement that fails with `sqlstate`, as a real one would. Returns -1. */
static int s_fail_with(lf_db_t *db, const char *sqlstate) {
    char sql[160];
    snprintf(sql, sizeof sql,
             "DO $$ BEGIN RAISE EXCEPTION 'failed as told' USING ERRCODE = '%s'; END $$",
             sqlstate);
    lf_db_cmd(db, sql, 0, NULL);
    return -1;
}

static int s_count(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg) {
    s_ctx_t *ctx = arg;
    const char *lead = s_label(lf_event_lead(env));
    if (ctx->poison && lead && !strcmp(lead, ctx->poison)) {
        /* A failing statement, as a real bug would produce. */
        lf_db_cmd(db, "SELECT 1/0", 0, NULL);
        return -1;
    }
    ctx->calls++;
    return s_effect(db, lead);
}

static const char *const s_types[] = {"test.event", NULL};

static lf_db_t *s_setup(lf_h_t *h) {
    lf_h_allow_orphans(h); /* events of made-up leads */
    free(lf_h_sql(h, "CREATE TABLE test_effects (lead text)"));
    lf_db_t *db = lf_db_connect(lf_h_db_url(h), "test");
    cr_assert_eq(db->err, 0, "%s", db->errstr);
    return db;
}

static json_t *s_add(lf_db_t *db, const char *lead) {
    json_t *env = lf_outbox_add(db, "test.event", s_id(lead), NULL);
    cr_assert(env, "%s", db->errstr);
    return env;
}

Test(consumer, redelivery_applies_once, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_db_t *db = s_setup(h);
    s_ctx_t ctx = {0};
    lf_consumer_t *c = lf_consumer_new(db, "t", s_types, s_count, &ctx);
    json_t *e1 = s_add(db, "a"), *e2 = s_add(db, "b");
    json_t *batch[] = {e2, e1, e1}; /* out of order, and a duplicate inside the batch */
    cr_expect_eq(lf_consumer_handle(c, batch, 3), 2);
    cr_expect_eq(lf_consumer_handle(c, batch, 3), 0, "second delivery applies nothing");
    cr_expect_eq(lf_consumer_sweep(c, 100), 0, "nothing left to sweep");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM test_effects"), 2);
    json_decref(e1);
    json_decref(e2);
    lf_consumer_destroy(&c);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

Test(consumer, sweep_finds_what_the_wire_lost_and_skips_other_types, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_db_t *db = s_setup(h);
    s_ctx_t ctx = {0};
    lf_consumer_t *c = lf_consumer_new(db, "t", s_types, s_count, &ctx);
    for (int i = 0; i < 25; i++)
        json_decref(s_add(db, "x"));
    json_decref(lf_outbox_add(db, "other.event", s_id("y"), NULL));
    cr_expect_eq(lf_consumer_sweep(c, 10), 10);
    cr_expect_eq(lf_consumer_sweep(c, 100), 15);
    cr_expect_eq(lf_consumer_sweep(c, 100), 0);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM test_effects"), 25);
    /* A second consumer name has its own acks. */
    s_ctx_t ctx2 = {0};
    lf_consumer_t *c2 = lf_consumer_new(db, "t2", s_types, s_count, &ctx2);
    cr_expect_eq(lf_consumer_sweep(c2, 100), 25);
    lf_consumer_destroy(&c2);
    lf_consumer_destroy(&c);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

Test(consumer, a_poison_event_is_set_aside_and_does_not_block, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_db_t *db = s_setup(h);
    s_ctx_t ctx = {.poison = "bad"};
    lf_consumer_t *c = lf_consumer_new(db, "t", s_types, s_count, &ctx);
    json_decref(s_add(db, "good1"));
    json_decref(s_add(db, "bad"));
    json_decref(s_add(db, "good2"));
    cr_expect_eq(lf_consumer_sweep(c, 100), 2);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM test_effects"), 2);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM consumer_acks WHERE error IS NOT NULL"), 1,
        "the failure is recorded with its reason");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM consumer_parked WHERE sqlstate = "
                                  "'22012' AND attempts = 1 AND type = 'test.event'"),
                 1, "and the event is parked");
    cr_expect_eq(lf_consumer_sweep(c, 100), 0, "and not retried for ever");
    /* A replay whose handler fails again leaves the event parked, with the request
     * cleared and the failure counted; nothing of the failed try is kept. */
    free(lf_h_sql(h, "UPDATE consumer_parked SET replay_requested_at = now()"));
    cr_expect_eq(lf_consumer_replay(c), 0);
    cr_expect_eq(lf_h_sql_long(h, "SELECT attempts FROM consumer_parked WHERE "
                                  "replay_requested_at IS NULL AND sqlstate = '22012'"),
                 2);
    cr_expect_eq(lf_consumer_replay(c), 0, "asked once, tried once");
    cr_expect_eq(lf_h_sql_long(h, "SELECT attempts FROM consumer_parked"), 2);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM test_effects"), 2);
    lf_consumer_destroy(&c);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}
/* A handler whose statement chokes on the event's personal data: PostgreSQL's message
 * quotes the value whole (a name, a phone number, an e-mail address). */
static int s_choke(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg) {
    const json_t *pl = lf_event_payload(env);
    char v[256];
    snprintf(v, sizeof v, "%s %s %s", json_string_value(json_object_get(pl, "name")),
             json_string_value(json_object_get(pl, "phone")),
             json_string_value(json_object_get(pl, "email")));
    const char *p[] = {v};
    lf_db_cmd(db, "SELECT $1::text::integer", 1, p);
    return -1;
}

/* Reads the whole file at path (caller frees). */
static char *s_slurp(const char *path) {
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot read %s", path);
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* What a parked event leaves for an operator - consumer_parked.error, the failed
 * ack's error, the service's log - says what failed (SQLSTATE, the message with its
 * values masked) and quotes none of the event's personal data; nor does a replay that
 * fails again. Failed on the old consumer, which stored PostgreSQL's message: the
 * name whole, the phone number and e-mail address half masked. */
Test(consumer, a_parked_event_leaves_no_personal_data_in_the_table_or_the_log,
     .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_db_t *db = s_setup(h);
    lf_consumer_t *c = lf_consumer_new(db, "t", s_types, s_choke, NULL);
    json_t *pl = json_pack("{s:s, s:s, s:s}", "name", "Wang Fang", "phone", "13800138000",
                           "email", "wang.fang@example.com");
    json_t *env = lf_outbox_add(db, "test.event", s_id("pii"), pl);
    cr_assert(env, "%s", db->errstr);
    json_decref(env);
    json_decref(pl);
    char log[] = "/tmp/lf_consumer_log.XXXXXX";
    int fd = mkstemp(log), saved = dup(2);
    cr_assert(fd >= 0 && saved >= 0);
    fflush(stderr);
    dup2(fd, 2);
    int swept = lf_consumer_sweep(c, 100);
    free(lf_h_sql(h, "UPDATE consumer_parked SET replay_requested_at = now()"));
    int replayed = lf_consumer_replay(c);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    cr_expect_eq(swept, 0);
    cr_expect_eq(replayed, 0, "the replay fails again");
    char *logged = s_slurp(log);
    unlink(log);
    char *stored = lf_h_sql(
        h, "SELECT string_agg(x, ' | ') FROM (SELECT concat_ws(' ', event_id, type, "
           "attempts, sqlstate, error) AS x FROM consumer_parked UNION ALL "
           "SELECT error FROM consumer_acks WHERE error IS NOT NULL) s");
    cr_assert(stored);
    cr_expect(strstr(stored, "test.event 2 22P02 query: ERROR:  invalid input syntax for "
                             "type integer: \"***\""),
              "parked: %s", stored);
    cr_expect(strstr(logged, "event parked consumer=t seq="), "log: %s", logged);
    cr_expect(strstr(logged, "stays parked"), "log: %s", logged);
    static const char *const personal[] = {"Wang",        "Fang",    "13800138000",
                                           "138****8000", "0138000", "wang.fang",
                                           "w***@",       NULL};
    for (const char *const *w = personal; *w; w++) {
        cr_expect_null(strstr(stored, *w), "stored: %s", stored);
        cr_expect_null(strstr(logged, *w), "logged: %s", logged);
    }
    free(stored);
    free(logged);
    lf_consumer_destroy(&c);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

/* Fails the first time it sees each lead whose label starts with "race", with the
 * SQLSTATE in ctx->transient: a transaction that lost a race, not a bad event. */
typedef struct {
    const char *transient; /* SQLSTATE to fail with */
    int failed;            /* leads failed so far */
    char seen[8][8];
} s_race_t;

static int s_racing(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg) {
    s_race_t *r = arg;
    const char *lead = s_label(lf_event_lead(env));
    if (lead && !strncmp(lead, "race", 4)) {
        int seen = 0;
        for (int i = 0; i < r->failed; i++)
            seen |= !strcmp(r->seen[i], lead);
        if (!seen && r->failed < 8) {
            snprintf(r->seen[r->failed++], sizeof r->seen[0], "%s", lead);
            return s_fail_with(db, r->transient);
        }
    }
    return s_effect(db, lead);
}

/* A handler that fails because its transaction lost a race - a deadlock (PostgreSQL
 * fails one side), a serialization failure, a lock or statement timeout - rolls the
 * whole batch back and the event is applied when the batch is tried again. The old
 * consumer set such an event aside as poison: the scheduler deadlocked with the router
 * on two leads and one lead never got its first-contact timer. */
Test(consumer, an_event_whose_handler_lost_a_race_is_retried_not_set_aside,
     .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_db_t *db = s_setup(h);
    const char *states[] = {"40P01", "40001", "55P03", "57014"};
    for (int k = 0; k < 4; k++) {
        s_race_t r = {.transient = states[k]};
        lf_consumer_t *c = lf_consumer_new(db, "t", s_types, s_racing, &r);
        char label[8] = "race0";
        label[4] = (char)('0' + k);
        json_decref(s_add(db, "good"));
        json_decref(s_add(db, label));
        cr_expect_lt(lf_consumer_sweep(c, 100), 0, "%s: the batch is not rolled back",
                     states[k]);
        cr_expect_eq(lf_consumer_sweep(c, 100), 2, "%s: not applied on the retry",
                     states[k]);
        cr_expect_eq(lf_consumer_sweep(c, 100), 0);
        cr_expect_eq(lf_h_sql_long(
                         h, "SELECT count(*) FROM consumer_acks WHERE error IS NOT NULL"),
                     0, "%s: the event was set aside", states[k]);
        char q[128];
        snprintf(q, sizeof q, "SELECT count(*) FROM test_effects WHERE lead = '%s'",
                 label);
        cr_expect_eq(lf_h_sql_long(h, q), 1, "%s: applied other than once", states[k]);
        lf_consumer_destroy(&c);
    }
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM test_effects"), 8);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

/* Times out on every try for the lead labelled "stuck" (SQLSTATE 57014, as a
 * statement that never finishes in time would), until ctx->fixed is set. */
typedef struct {
    int fixed;       /* the cause was fixed: the handler applies "stuck" too */
    int stuck_tries; /* how often the handler ran for "stuck" */
    int kill;        /* ends its own connection instead of timing out */
} s_stuck_t;

static int s_stuck(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg) {
    s_stuck_t *st = arg;
    const char *lead = s_label(lf_event_lead(env));
    if (lead && !strcmp(lead, "stuck")) {
        st->stuck_tries++;
        if (!st->fixed && st->kill) {
            lf_db_cmd(db, "SELECT pg_terminate_backend(pg_backend_pid())", 0, NULL);
            return -1;
        }
        if (!st->fixed)
            return s_fail_with(db, "57014");
    }
    return s_effect(db, lead);
}

/* An event whose handler only ever times out is tried a bounded number of times, with
 * a growing pause, while the events around it are applied; then it is parked (a
 * consumer_parked row and a failed ack), and a replay asked for by an operator applies
 * it exactly once. The old consumer rolled the whole batch back at every try, for
 * ever: neither the stuck event nor the good ones beside it were ever applied. */
Test(consumer, an_event_that_only_ever_times_out_is_parked_and_replayed_once,
     .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_db_t *db = s_setup(h);
    s_stuck_t st = {0};
    lf_consumer_t *c = lf_consumer_new(db, "t", s_types, s_stuck, &st);
    lf_consumer_set_retry(c, 3, 100);
    json_decref(s_add(db, "good1"));
    json_decref(s_add(db, "stuck"));
    json_decref(s_add(db, "good2"));
    int applied = 0, failed = 0;
    for (int i = 0;
         i < 100 && lf_h_sql_long(h, "SELECT count(*) FROM consumer_parked") < 1; i++) {
        int n = lf_consumer_sweep(c, 100);
        applied += n > 0 ? n : 0;
        failed += n < 0;
        usleep(20 * 1000);
    }
    cr_expect_eq(applied, 2, "the good events are applied meanwhile");
    cr_expect_eq(st.stuck_tries, 3, "tried 3 times, not %d", st.stuck_tries);
    cr_expect_eq(failed, 1,
                 "the first try rolled its batch back; the second ran alone beside the "
                 "good events, the third parked it");
    char *row = lf_h_sql(h, "SELECT consumer || ' ' || type || ' ' || attempts || ' ' || "
                            "sqlstate || ' ' || (replay_requested_at IS NULL) "
                            "FROM consumer_parked");
    cr_expect_str_eq(row, "t test.event 3 57014 true");
    free(row);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM consumer_acked a JOIN consumer_parked k "
                         "USING (consumer, event_id) WHERE a.error IS NOT NULL"),
        1, "the parked event has a failed ack: no path applies it");
    cr_expect_eq(lf_consumer_parked(c), 1);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(lf_consumer_sweep(c, 100), 0, "nothing more is tried");
    cr_expect_eq(st.stuck_tries, 3);
    cr_expect_eq(lf_consumer_replay(c), 0, "no replay asked for");
    /* The operator fixed the cause and asks for a replay (docs/operations.md); a twin
     * instance sees the same request. */
    st.fixed = 1;
    free(lf_h_sql(h, "UPDATE consumer_parked SET replay_requested_at = now()"));
    lf_db_t *db2 = lf_db_connect(lf_h_db_url(h), "twin");
    s_stuck_t st2 = {.fixed = 1};
    lf_consumer_t *twin = lf_consumer_new(db2, "t", s_types, s_stuck, &st2);
    cr_expect_eq(lf_consumer_replay(c), 1);
    cr_expect_eq(lf_consumer_replay(twin), 0, "replayed once, not by the twin again");
    cr_expect_eq(lf_consumer_sweep(twin, 100), 0);
    cr_expect_eq(lf_consumer_advance(c), 0);
    cr_expect_eq(lf_consumer_sweep(c, 100), 0);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM test_effects WHERE lead = 'stuck'"), 1);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM test_effects"), 3);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM consumer_parked"), 0);
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM consumer_acks WHERE error IS NOT NULL"),
        0);
    lf_consumer_destroy(&twin);
    lf_db_destroy(&db2);
    lf_consumer_destroy(&c);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

/* A handler that loses its connection on an event (a backend that dies on it) cannot
 * park it in that transaction: the tries are counted, and the event is parked, without
 * another try, in the first batch after the last one. */
Test(consumer, an_event_that_kills_its_connection_is_parked_without_another_try,
     .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_db_t *db = s_setup(h);
    s_stuck_t st = {.kill = 1};
    lf_consumer_t *c = lf_consumer_new(db, "t", s_types, s_stuck, &st);
    lf_consumer_set_retry(c, 3, 0);
    json_decref(s_add(db, "good1"));
    json_decref(s_add(db, "stuck"));
    json_decref(s_add(db, "good2"));
    for (int i = 0;
         i < 20 && lf_h_sql_long(h, "SELECT count(*) FROM consumer_parked") < 1; i++) {
        lf_consumer_sweep(c, 100);
        usleep(20 * 1000);
    }
    cr_expect_eq(st.stuck_tries, 3, "tried 3 times, not %d", st.stuck_tries);
    /* (a connection ended by the server leaves no SQLSTATE) */
    char *row = lf_h_sql(h, "SELECT attempts || ' ' || coalesce(sqlstate, '-') || ' ' || "
                            "error FROM consumer_parked");
    cr_expect_str_eq(row, "3 - gave up after failed tries");
    free(row);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM test_effects"), 2);
    cr_expect_eq(lf_consumer_sweep(c, 100), 0);
    cr_expect_eq(st.stuck_tries, 3);
    lf_consumer_destroy(&c);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

/* Advances until at most `max_acks` acks of the consumer are left, for up to 10 s: the
 * cursor also waits for transactions of other tests running on the same server (the
 * oldest running transaction is cluster-wide), which end within moments. Returns the
 * acks left. */
static long s_advance_until(lf_h_t *h, lf_consumer_t *c, const char *count_sql,
                            long max_acks) {
    long n = -1;
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(lf_consumer_advance(c), 0);
        n = lf_h_sql_long(h, count_sql);
        if (n <= max_acks)
            break;
        usleep(100 * 1000);
    }
    return n;
}

static const char *const s_all_acks = "SELECT count(*) FROM consumer_acked";

/* The cursor stops at the first unacknowledged event and at the oldest transaction
 * still running; what lies below it is pruned. (Other tests' transactions on the same
 * server can hold it lower for a moment, hence the waits.) */
Test(consumer, cursor_stops_at_a_gap_and_at_a_running_transaction, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_db_t *db = s_setup(h);
    s_ctx_t ctx = {0};
    lf_consumer_t *c = lf_consumer_new(db, "t", s_types, s_count, &ctx);
    for (int i = 0; i < 5; i++)
        json_decref(s_add(db, "x"));
    free(lf_h_sql(h, "INSERT INTO consumer_cursors (consumer) VALUES ('t')"));
    free(lf_h_sql(h, "INSERT INTO consumer_acks (consumer, seqs, top_xid) SELECT 't', "
                     "int8multirange(int8range(id, id, '[]')), xid FROM outbox "
                     "WHERE id IN (1, 3)"));
    cr_expect_eq(s_advance_until(h, c, s_all_acks, 1), 1,
                 "the ack of event 1, below the cursor, is pruned; 3's is kept");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM consumer_cursors k, outbox o "
                                  "WHERE k.consumer = 't' AND o.id = 2 "
                                  "AND k.safe_xid <= o.xid"),
                 1, "the gap at event 2 holds the cursor");
    cr_expect_eq(lf_consumer_sweep(c, 100), 3, "events 2, 4 and 5 are still delivered");

    /* A transaction that wrote an event and has not committed holds the cursor. */
    lf_db_t *held = lf_db_connect(lf_h_db_url(h), "test-held");
    cr_assert_eq(lf_db_begin(held), 0);
    json_t *late = lf_outbox_add(held, "test.event", s_id("late"), NULL);
    cr_assert(late, "%s", held->errstr);
    json_decref(late);
    json_decref(s_add(db, "after"));
    cr_expect_eq(lf_consumer_sweep(c, 100), 1);
    cr_expect_eq(s_advance_until(
                     h, c, "SELECT count(*) FROM consumer_acked WHERE event_id <= 5", 0),
                 0, "acks below the cursor are pruned");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM consumer_cursors k, outbox o "
                                  "WHERE k.consumer = 't' AND o.lead_id = "
                                  "'00000000-0000-7000-8000-006166746572' "
                                  "AND k.safe_xid < o.xid"),
                 1, "the cursor is below the running transaction");
    cr_expect_eq(lf_db_commit(held), 0);
    cr_expect_eq(lf_consumer_sweep(c, 100), 1, "the late event is delivered");
    cr_expect_eq(lf_consumer_sweep(c, 100), 0);
    cr_expect_eq(s_advance_until(h, c, s_all_acks, 0), 0,
                 "every ack is behind the cursor once nothing runs");
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM test_effects"), 5,
                 "2, 4, 5, after, late (1 and 3 were acknowledged by hand)");
    lf_db_destroy(&held);
    lf_consumer_destroy(&c);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

/* An event whose transaction began long ago and committed after later ones is still
 * delivered. The old cursor moved past events older than 60 seconds by their `at`, the
 * start of the producing transaction, so this event (at: 5 minutes ago, committed now)
 * was skipped for ever. */
Test(consumer, an_event_that_commits_late_is_still_delivered, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_db_t *db = s_setup(h);
    s_ctx_t ctx = {0};
    lf_consumer_t *c = lf_consumer_new(db, "t", s_types, s_count, &ctx);
    lf_db_t *held = lf_db_connect(lf_h_db_url(h), "test-held");
    cr_assert_eq(lf_db_begin(held), 0);
    cr_assert_eq(
        lf_db_cmd(
            held,
            "INSERT INTO outbox (event_id, type, lead_id, at) VALUES "
            "(gen_random_uuid(), 'test.event', '00000000-0000-7000-8000-00006c617465', "
            "now() - interval '5 minutes')",
            0, NULL),
        1, "%s", held->errstr);
    free(lf_h_sql(
        h, "INSERT INTO outbox (event_id, type, lead_id, at) VALUES "
           "(gen_random_uuid(), 'test.event', '00000000-0000-7000-8000-006561726c79', "
           "now() - interval '5 minutes')"));
    cr_expect_eq(lf_consumer_sweep(c, 100), 1);
    cr_expect_eq(lf_consumer_advance(c), 0);
    cr_expect_eq(lf_consumer_sweep(c, 100), 0);
    cr_assert_eq(lf_db_commit(held), 0);
    cr_expect_eq(lf_consumer_sweep(c, 100), 1, "the event that committed late is lost");
    cr_expect_eq(
        lf_h_sql_long(h, "SELECT count(*) FROM test_effects WHERE lead = 'late'"), 1);
    lf_db_destroy(&held);
    lf_consumer_destroy(&c);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

/* An envelope that waited in a queue while the cursor passed its event (and its ack
 * was pruned) is recognised as done. The old code inserted a new ack for it and
 * applied it a second time. */
Test(consumer, a_stale_envelope_below_the_cursor_is_not_applied_again, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_db_t *db = s_setup(h);
    s_ctx_t ctx = {0};
    lf_consumer_t *c = lf_consumer_new(db, "t", s_types, s_count, &ctx);
    json_t *e1 = s_add(db, "a"), *e2 = s_add(db, "b");
    json_t *batch[] = {e1, e2};
    cr_expect_eq(lf_consumer_handle(c, batch, 2), 2);
    /* Old enough for any cursor rule. */
    free(lf_h_sql(h, "UPDATE outbox SET at = now() - interval '5 minutes'"));
    cr_assert_eq(s_advance_until(h, c, s_all_acks, 0), 0, "the acks were pruned");
    cr_expect_eq(lf_consumer_handle(c, batch, 1), 0,
                 "the stale envelope was applied again");
    cr_expect_eq(lf_consumer_sweep(c, 100), 0);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM test_effects"), 2);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM consumer_acks"), 0,
                 "no ack is inserted below the cursor");
    json_decref(e1);
    json_decref(e2);
    lf_consumer_destroy(&c);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

/* How many savepoints named "ev" are open around a handler: it releases the
 * consumer's own, then tries to release another one. */
static int s_probe_depth(lf_db_t *db) {
    int depth = 0;
    if (lf_db_cmd(db, "RELEASE SAVEPOINT ev", 0, NULL) < 0)
        return -1;
    depth = 1;
    lf_db_cmd(db, "SAVEPOINT probe", 0, NULL);
    if (lf_db_cmd(db, "RELEASE SAVEPOINT ev", 0, NULL) >= 0) {
        depth = 2; /* a leaked one: it (and probe) are gone now */
    } else {
        lf_db_cmd(db, "ROLLBACK TO SAVEPOINT probe", 0, NULL);
        lf_db_cmd(db, "RELEASE SAVEPOINT probe", 0, NULL);
    }
    lf_db_cmd(db, "SAVEPOINT ev", 0, NULL); /* the consumer releases it */
    return depth;
}

typedef struct {
    s_ctx_t base;
    int depth; /* what the probe event saw */
} s_probe_ctx_t;

static int s_probe(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg) {
    s_probe_ctx_t *p = arg;
    if (lf_event_lead(env) && !strcmp(s_label(lf_event_lead(env)), "probe")) {
        p->depth = s_probe_depth(db);
        return 0;
    }
    return s_count(c, db, env, &p->base);
}

/* Each event's savepoint is released whatever happened to the event (already
 * acknowledged, set aside): subtransactions never pile up in a batch. The old code
 * left the savepoint of an acknowledged or failed event open. */
Test(consumer, each_event_savepoint_is_released_on_every_path, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_db_t *db = s_setup(h);
    s_probe_ctx_t pc = {.base = {.poison = "bad"}};
    lf_consumer_t *c = lf_consumer_new(db, "t", s_types, s_probe, &pc);
    json_t *done = s_add(db, "done"), *bad = s_add(db, "bad"),
           *probe = s_add(db, "probe");
    json_t *first[] = {done};
    cr_assert_eq(lf_consumer_handle(c, first, 1), 1);
    json_t *batch[] = {done, bad, probe};
    cr_expect_eq(lf_consumer_handle(c, batch, 3), 1, "%s", db->errstr);
    cr_expect_eq(pc.depth, 1, "savepoints open around the handler: %d", pc.depth);
    json_decref(done);
    json_decref(bad);
    json_decref(probe);
    lf_consumer_destroy(&c);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

static int s_count_batch(lf_consumer_t *c, lf_db_t *db, json_t *const *envs, size_t n,
                         void *arg) {
    for (size_t i = 0; i < n; i++)
        if (s_count(c, db, envs[i], arg) < 0)
            return -1;
    return 0;
}

/* A backlog of many windows is swept through to its end, one window per call. An
 * earlier batch path went back to the cursor after 50 windows, met only
 * acknowledged windows there and never got further until the cursor moved. */
Test(consumer, batch_sweep_pages_through_a_long_backlog, .timeout = 120) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_db_t *db = s_setup(h);
    free(lf_h_sql(h, "INSERT INTO outbox (event_id, type, lead_id, payload)"
                     " SELECT gen_random_uuid(), 'test.event',"
                     " ('00000000-0000-7000-8000-' || lpad(i::text, 12, '0'))::uuid, '{}'"
                     " FROM generate_series(1, 240) i"));
    s_ctx_t ctx = {0};
    lf_consumer_t *c = lf_consumer_new(db, "t", s_types, s_count, &ctx);
    lf_consumer_set_batch_fn(c, s_count_batch, 0);
    int total = 0, calls = 0;
    while (calls < 130 && total < 240) {
        int n = lf_consumer_sweep(c, 2);
        cr_assert_geq(n, 0, "%s", db->errstr);
        total += n;
        calls++;
    }
    cr_expect_eq(total, 240, "all 120 windows swept in %d calls", calls);
    cr_expect_eq(calls, 120, "one window per call");
    cr_expect_eq(lf_consumer_sweep(c, 2), 0, "nothing left");
    long effects = lf_h_sql_long(h, "SELECT count(DISTINCT lead) FROM test_effects");
    cr_expect_eq(effects, 240, "effects: %ld, applied %d, calls %d", effects, total,
                 calls);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM test_effects"), 240,
                 "no phantom event for a window without new events");
    lf_consumer_destroy(&c);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

typedef struct {
    int n;         /* events applied so far */
    int total;     /* stop the loop after this many */
    int pushed_at; /* when the envelope that came over ZeroMQ was applied */
} s_order_t;

static int s_order(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg) {
    s_order_t *o = arg;
    o->n++;
    if (lf_event_lead(env) && !strcmp(s_label(lf_event_lead(env)), "pushed"))
        o->pushed_at = o->n;
    if (o->n == o->total)
        raise(SIGTERM); /* the service's handler: the loop stops after this batch */
    return 0;
}

/* The loop reads its SUB socket between sweep chunks: an envelope that arrives while
 * a long backlog is being swept is applied after one chunk, not after the backlog. The
 * old loop ran up to 100 sweep chunks before it looked at the socket (here: the whole
 * backlog of 300; the pushed event came last, from the sweep). */
Test(consumer, the_loop_reads_the_socket_between_sweep_chunks, .timeout = 120) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_db_t *db = s_setup(h);
    free(lf_h_sql(h, "INSERT INTO outbox (event_id, type, lead_id, payload)"
                     " SELECT gen_random_uuid(), 'test.event',"
                     " ('0000000b-0000-7000-8000-' || lpad(i::text, 12, '0'))::uuid, '{}'"
                     " FROM generate_series(1, 300) i"));
    json_t *pushed = s_add(db, "pushed");
    void *zctx = zmq_ctx_new();
    void *pub = lf_zmq_pub(zctx, "inproc://loop-starve");
    const char *eps[] = {"inproc://loop-starve", NULL};
    void *sub = lf_zmq_sub(zctx, eps, NULL);
    usleep(100 * 1000);
    cr_assert_eq(lf_event_send(pub, pushed), 0);
    static const lf_cfg_def_t defs[] = {LF_CFG_COMMON, {NULL, 0, NULL, 0, 0, NULL}};
    char name[] = "test";
    char *argv[] = {name, NULL};
    int code = 0;
    lf_config_t *cfg = lf_service_init("test", defs, 1, argv, &code);
    cr_assert(cfg, "service init failed (%d)", code);
    s_order_t o = {.total = 301};
    lf_consumer_t *c = lf_consumer_new(db, "loop", s_types, s_order, &o);
    lf_loop_t loop = {
        .consumer = c, .sub = sub, .batch = 4, .sweep_ms = 1000, .cfg = cfg};
    lf_loop_run(&loop);
    cr_expect_eq(o.n, 301, "applied %d of 301", o.n);
    cr_expect_gt(o.pushed_at, 0);
    cr_expect_lt(o.pushed_at, 20, "the pushed event waited for %d backlog events",
                 o.pushed_at - 1);
    lf_consumer_destroy(&c);
    lf_config_destroy(&cfg);
    json_decref(pushed);
    zmq_close(sub);
    zmq_close(pub);
    zmq_ctx_term(zctx);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

typedef struct {
    void *pub;
    json_t *envs[5];
} s_trickle_t;

/* Publishes the first envelope, then the other four 20 ms later. */
static void *s_trickle(void *arg) {
    s_trickle_t *t = arg;
    usleep(300 * 1000); /* the loop is up and the subscription connected */
    lf_event_send(t->pub, t->envs[0]);
    usleep(20 * 1000);
    for (int i = 1; i < 5; i++)
        lf_event_send(t->pub, t->envs[i]);
    return NULL;
}

typedef struct {
    s_order_t o; /* first: the handler's arg */
    int batches; /* committed batches */
} s_linger_t;

static void s_count_batches(void *arg, int committed) {
    if (committed)
        ((s_linger_t *)arg)->batches++;
}

static int s_no_sweep(void *arg, int limit) {
    return 0;
}

/* With a linger (LEADFLOW_CONSUMER_LINGER_MS) the loop waits for more envelopes after
 * the first one: five that arrive within 20 ms are applied in one batch - one
 * transaction - where the loop without a linger took the first alone (two batches).
 * The sweep is left out so that only the socket delivers. */
Test(consumer, the_loop_lingers_for_a_fuller_batch, .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_db_t *db = s_setup(h);
    s_trickle_t tr;
    const char *leads[] = {"l1", "l2", "l3", "l4", "l5"};
    for (int i = 0; i < 5; i++)
        tr.envs[i] = s_add(db, leads[i]);
    void *zctx = zmq_ctx_new();
    tr.pub = lf_zmq_pub(zctx, "inproc://loop-linger");
    const char *eps[] = {"inproc://loop-linger", NULL};
    void *sub = lf_zmq_sub(zctx, eps, NULL);
    static const lf_cfg_def_t defs[] = {LF_CFG_COMMON, {NULL, 0, NULL, 0, 0, NULL}};
    char name[] = "test";
    char *argv[] = {name, NULL};
    int code = 0;
    lf_config_t *cfg = lf_service_init("test", defs, 1, argv, &code);
    cr_assert(cfg, "service init failed (%d)", code);
    s_linger_t st = {.o = {.total = 5}};
    lf_consumer_t *c = lf_consumer_new(db, "linger", s_types, s_order, &st.o);
    lf_consumer_on_batch(c, s_count_batches);
    lf_loop_t loop = {.consumer = c,
                      .sub = sub,
                      .batch = 64,
                      .linger_ms = 100,
                      .sweep_ms = 60000,
                      .sweep = s_no_sweep,
                      .cfg = cfg};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, s_trickle, &tr), 0);
    lf_loop_run(&loop);
    pthread_join(th, NULL);
    cr_expect_eq(st.o.n, 5, "applied %d of 5", st.o.n);
    cr_expect_eq(st.batches, 1, "the five envelopes took %d batches", st.batches);
    lf_consumer_destroy(&c);
    lf_config_destroy(&cfg);
    for (int i = 0; i < 5; i++)
        json_decref(tr.envs[i]);
    zmq_close(sub);
    zmq_close(tr.pub);
    zmq_ctx_term(zctx);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

typedef struct {
    s_ctx_t c;
    int begins;    /* on_begin calls: batch transactions opened */
    size_t last_n; /* events the last on_begin saw */
} s_begins_t;

static int s_count_begin(void *arg, lf_db_t *db, json_t *const *envs, size_t n) {
    (void)db;
    (void)envs;
    s_begins_t *b = arg; /* the consumer's arg: &b.c, its first member */
    b->begins++;
    b->last_n = n;
    return 0;
}

/* A batch-path consumer behind its ZeroMQ stream meets events the sweep handled
 * already. Each such batch used to open the batch transaction twice (the plain ack
 * insert fails, the ON CONFLICT retry finds nothing new), taking the consumer's
 * on_begin locks each time (the router's: the routing lock and every lead). Once a
 * redelivery was seen, the next batches are first checked against the acks: an
 * all-done batch opens no transaction, a mixed one goes on with only its new events.
 * Applied exactly once throughout. */
Test(consumer, a_redelivered_batch_takes_no_locks_once_redeliveries_are_seen,
     .timeout = 60) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_db_t *db = s_setup(h);
    s_begins_t b = {0};
    lf_consumer_t *c = lf_consumer_new(db, "t", s_types, s_count, &b.c);
    lf_consumer_set_batch_fn(c, s_count_batch, 0);
    lf_consumer_on_begin(c, s_count_begin);
    json_t *ea = s_add(db, "a"), *eb = s_add(db, "b"), *ec = s_add(db, "c");
    json_t *ed = s_add(db, "d");
    json_t *ab[] = {ea, eb}, *bc[] = {eb, ec}, *d[] = {ed};
    cr_expect_eq(lf_consumer_handle(c, ab, 2), 2);
    cr_expect_eq(b.begins, 1);
    cr_expect_eq(lf_consumer_handle(c, ab, 2), 0, "the first redelivery applies nothing");
    int after_first = b.begins; /* 2: the redelivery found nothing new */
    cr_expect_eq(lf_consumer_handle(c, ab, 2), 0, "nor the second");
    cr_expect_eq(b.begins, after_first, "an all-done batch opened %d transactions",
                 b.begins - after_first);
    cr_expect_eq(lf_consumer_handle(c, bc, 2), 1, "b done, c new");
    cr_expect_eq(b.begins, after_first + 1);
    cr_expect_eq(b.last_n, 1, "the transaction saw %zu events, only c is new", b.last_n);
    cr_expect_eq(lf_consumer_handle(c, d, 1), 1);
    cr_expect_eq(lf_consumer_handle(c, bc, 2), 0, "redelivered again");
    cr_expect_eq(b.c.calls, 4, "each of a, b, c, d applied once: %d", b.c.calls);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM test_effects"), 4);
    cr_expect_eq(lf_consumer_sweep(c, 100), 0, "nothing left to sweep");
    json_decref(ea);
    json_decref(eb);
    json_decref(ec);
    json_decref(ed);
    lf_consumer_destroy(&c);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

/* Twin instances acknowledging the same event at once: instance A has applied event b
 * and acknowledged it in a transaction it has not committed yet when instance B takes
 * a batch of a, b and c. B's snapshot cannot see A's ack; what stops B from applying
 * b a second time is the acks' exclusion constraint (no two ack rows of a consumer
 * share a seq): B's ack insert waits for A, finds b acknowledged once A committed, and
 * B applies only a and c. Without the constraint B applied b too (two effects of b).
 * B takes the batch path, then the per-event path. */
static pthread_mutex_t s_hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t s_hold_cv = PTHREAD_COND_INITIALIZER;
static int s_hold_state; /* 1: A applied its batch and waits; 2: A may commit */

static int s_hold_batch(lf_consumer_t *c, lf_db_t *db, json_t *const *envs, size_t n,
                        void *arg) {
    int rc = s_count_batch(c, db, envs, n, arg);
    pthread_mutex_lock(&s_hold_mu);
    s_hold_state = 1;
    pthread_cond_broadcast(&s_hold_cv);
    while (s_hold_state != 2)
        pthread_cond_wait(&s_hold_cv, &s_hold_mu);
    pthread_mutex_unlock(&s_hold_mu);
    return rc;
}

typedef struct {
    lf_consumer_t *c;
    json_t **envs;
    size_t n;
    int applied;
} s_run_t;

static void *s_run(void *arg) {
    s_run_t *r = arg;
    r->applied = lf_consumer_handle(r->c, r->envs, r->n);
    return NULL;
}

Test(consumer, twins_acknowledging_one_event_at_once_apply_it_once, .timeout = 90) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_db_t *db = s_setup(h);
    /* The cursor row exists: B must not wait for A's insert of it instead. */
    free(lf_h_sql(h, "INSERT INTO consumer_cursors (consumer) VALUES ('t')"));
    for (int batch_path = 1; batch_path >= 0; batch_path--) {
        const char *la = batch_path ? "a" : "a2", *lb = batch_path ? "b" : "b2",
                   *lc = batch_path ? "c" : "c2";
        json_t *ea = s_add(db, la), *eb = s_add(db, lb), *ec = s_add(db, lc);
        lf_db_t *dba = lf_db_connect(lf_h_db_url(h), "twin-a");
        lf_db_t *dbb = lf_db_connect(lf_h_db_url(h), "twin-b");
        cr_assert(!dba->err && !dbb->err);
        s_ctx_t ca = {0}, cb = {0};
        lf_consumer_t *a = lf_consumer_new(dba, "t", s_types, s_count, &ca);
        lf_consumer_t *b = lf_consumer_new(dbb, "t", s_types, s_count, &cb);
        lf_consumer_set_batch_fn(a, s_hold_batch, 0);
        if (batch_path)
            lf_consumer_set_batch_fn(b, s_count_batch, 0);
        json_t *one[] = {eb}, *three[] = {ea, eb, ec};
        s_run_t ra = {a, one, 1, -9}, rb = {b, three, 3, -9};
        s_hold_state = 0;
        pthread_t ta, tb;
        cr_assert_eq(pthread_create(&ta, NULL, s_run, &ra), 0);
        pthread_mutex_lock(&s_hold_mu);
        while (s_hold_state != 1)
            pthread_cond_wait(&s_hold_cv, &s_hold_mu);
        pthread_mutex_unlock(&s_hold_mu);
        /* A holds b's ack uncommitted; B takes a, b and c and waits on b's ack (with
         * the guard; without it, B goes through and this wait times out). */
        cr_assert_eq(pthread_create(&tb, NULL, s_run, &rb), 0);
        int waited = lf_h_wait_sql(h,
                                   "SELECT count(*) FROM pg_stat_activity WHERE "
                                   "application_name = 'twin-b' AND wait_event_type = "
                                   "'Lock'",
                                   "1", 5000);
        pthread_mutex_lock(&s_hold_mu);
        s_hold_state = 2;
        pthread_cond_broadcast(&s_hold_cv);
        pthread_mutex_unlock(&s_hold_mu);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        cr_expect(waited, "B did not wait for A's ack of b (path %d)", batch_path);
        cr_expect_eq(ra.applied, 1, "A applied b: %d", ra.applied);
        cr_expect_eq(rb.applied, 2, "B applied only a and c: %d (path %d)", rb.applied,
                     batch_path);
        char q[160];
        snprintf(q, sizeof q, "SELECT count(*) FROM test_effects WHERE lead = '%s'", lb);
        cr_expect_eq(lf_h_sql_long(h, q), 1, "b applied once (path %d)", batch_path);
        snprintf(q, sizeof q,
                 "SELECT count(*) FROM test_effects WHERE lead IN ('%s', '%s', '%s')", la,
                 lb, lc);
        cr_expect_eq(lf_h_sql_long(h, q), 3, "each of a, b, c applied once");
        cr_expect_eq(lf_consumer_sweep(b, 100), 0, "nothing left to sweep");
        lf_consumer_destroy(&a);
        lf_consumer_destroy(&b);
        lf_db_destroy(&dba);
        lf_db_destroy(&dbb);
        json_decref(ea);
        json_decref(eb);
        json_decref(ec);
    }
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}

/* A batch that loses its ack to a twin three rounds running is handled event by event,
 * and still applies each event once. Instance B takes a batch of v, w, x, y and z on
 * the batch path. As each of B's transactions begins (its on_begin hook), one more twin
 * instance takes one of w, x and y and holds its ack uncommitted, so B's ack insert waits
 * for that twin, finds the event acknowledged once the twin commits, and the round is
 * lost (rolled back, taken again with a new snapshot). After the third lost round B goes
 * event by event (common/consumer.c, s_handle_batch): it applies v and z, each with an
 * ack row of its own, and skips w, x and y, which the twins applied. */
typedef struct {
    s_ctx_t ctx; /* first: s_count's context */
    lf_consumer_t *c;
    lf_db_t *db;
    json_t *env;
    pthread_t th;
    int state; /* 0 idle, 1 applied its event and holds the ack, 2 may commit */
    int applied;
} s_twin_t;

typedef struct {
    s_ctx_t ctx;     /* first: s_count's context */
    s_twin_t *twins; /* the three twins, in the order they step in */
    int begins;      /* B's transactions begun so far */
} s_loser_t;

static int s_twin_hold(lf_consumer_t *c, lf_db_t *db, json_t *const *envs, size_t n,
                       void *arg) {
    s_twin_t *tw = arg;
    int rc = s_count_batch(c, db, envs, n, &tw->ctx);
    pthread_mutex_lock(&s_hold_mu);
    tw->state = 1;
    pthread_cond_broadcast(&s_hold_cv);
    while (tw->state != 2)
        pthread_cond_wait(&s_hold_cv, &s_hold_mu);
    pthread_mutex_unlock(&s_hold_mu);
    return rc;
}

static void *s_twin_run(void *arg) {
    s_twin_t *tw = arg;
    json_t *one[] = {tw->env};
    tw->applied = lf_consumer_handle(tw->c, one, 1);
    return NULL;
}

/* B's on_begin: in each of its first three transactions, before its ack statement,
 * the next twin takes its event and holds the ack. */
static int s_loser_begin(void *arg, lf_db_t *db, json_t *const *envs, size_t n) {
    s_loser_t *l = arg;
    int k = l->begins++;
    if (k >= 3)
        return 0;
    s_twin_t *tw = &l->twins[k];
    if (pthread_create(&tw->th, NULL, s_twin_run, tw) != 0)
        return -1;
    pthread_mutex_lock(&s_hold_mu);
    while (tw->state != 1)
        pthread_cond_wait(&s_hold_cv, &s_hold_mu);
    pthread_mutex_unlock(&s_hold_mu);
    return 0;
}

Test(consumer, a_batch_that_loses_to_twins_three_times_goes_event_by_event_once,
     .timeout = 120) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_db_t *db = s_setup(h);
    free(lf_h_sql(h, "INSERT INTO consumer_cursors (consumer) VALUES ('t')"));
    const char *labels[] = {"v", "w", "x", "y", "z"};
    json_t *ev[5];
    for (int i = 0; i < 5; i++)
        ev[i] = s_add(db, labels[i]);
    s_twin_t twins[3];
    memset(twins, 0, sizeof twins);
    for (int k = 0; k < 3; k++) {
        char app[24];
        snprintf(app, sizeof app, "twin-%d", k);
        twins[k].db = lf_db_connect(lf_h_db_url(h), app);
        cr_assert(!twins[k].db->err, "%s", twins[k].db->errstr);
        twins[k].c = lf_consumer_new(twins[k].db, "t", s_types, s_count, &twins[k]);
        lf_consumer_set_batch_fn(twins[k].c, s_twin_hold, 0);
        twins[k].env = ev[1 + k]; /* w, x, y */
        twins[k].applied = -9;
    }
    lf_db_t *dbb = lf_db_connect(lf_h_db_url(h), "loser");
    cr_assert(!dbb->err, "%s", dbb->errstr);
    s_loser_t lb = {.twins = twins};
    lf_consumer_t *b = lf_consumer_new(dbb, "t", s_types, s_count, &lb);
    lf_consumer_set_batch_fn(b, s_count_batch, 0);
    lf_consumer_on_begin(b, s_loser_begin);
    s_run_t rb = {b, ev, 5, -9};
    pthread_t tb;
    cr_assert_eq(pthread_create(&tb, NULL, s_run, &rb), 0);
    int waited[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        pthread_mutex_lock(&s_hold_mu);
        while (twins[k].state != 1)
            pthread_cond_wait(&s_hold_cv, &s_hold_mu);
        pthread_mutex_unlock(&s_hold_mu);
        /* B's ack insert waits for twin k's uncommitted ack of its event. */
        waited[k] =
            lf_h_wait_sql(h,
                          "SELECT count(*) FROM pg_stat_activity WHERE "
                          "application_name = 'loser' AND wait_event_type = 'Lock'",
                          "1", 10000);
        pthread_mutex_lock(&s_hold_mu);
        twins[k].state = 2;
        pthread_cond_broadcast(&s_hold_cv);
        pthread_mutex_unlock(&s_hold_mu);
        pthread_join(twins[k].th, NULL);
    }
    pthread_join(tb, NULL);
    for (int k = 0; k < 3; k++) {
        cr_expect(waited[k], "B's round %d did not wait for twin %d's ack", k + 1, k);
        cr_expect_eq(twins[k].applied, 1, "twin %d applied %s: %d", k, labels[1 + k],
                     twins[k].applied);
    }
    cr_expect_eq(lb.begins, 4,
                 "three batch rounds and one event-by-event transaction: %d", lb.begins);
    cr_expect_eq(rb.applied, 2, "B applied only v and z: %d", rb.applied);
    cr_expect_eq(lb.ctx.calls, 2, "B's handler ran for v and z only: %d", lb.ctx.calls);
    for (int i = 0; i < 5; i++) {
        char q[160];
        snprintf(q, sizeof q, "SELECT count(*) FROM test_effects WHERE lead = '%s'",
                 labels[i]);
        cr_expect_eq(lf_h_sql_long(h, q), 1, "%s applied once", labels[i]);
    }
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM test_effects"), 5);
    /* Event by event: v and z have an ack row each (the batch path writes one row for
     * both), the twins' w, x and y one each. */
    cr_expect_eq(lf_h_sql_long(h,
                               "SELECT count(*) FROM consumer_acks WHERE consumer = 't'"
                               " AND error IS NULL AND upper(seqs) - lower(seqs) = 1"),
                 5, "five acks of one event each");
    cr_expect_eq(lf_consumer_sweep(b, 100), 0, "nothing left to sweep");
    lf_consumer_destroy(&b);
    lf_db_destroy(&dbb);
    for (int k = 0; k < 3; k++) {
        lf_consumer_destroy(&twins[k].c);
        lf_db_destroy(&twins[k].db);
    }
    for (int i = 0; i < 5; i++)
        json_decref(ev[i]);
    lf_db_destroy(&db);
    lf_h_destroy(&h);
}
