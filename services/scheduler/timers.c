/* timers.c - SLA reminders and escalations on Redis timers whose truth is in
 * PostgreSQL.
 *
 * The life of a timer: a row in `timers` (state pending) is written in the same
 * transaction as the event that caused it, and its id is added to a Redis sorted
 * set scored by due time. Every tick a Lua script atomically takes the due ids out
 * of the set; one transaction flips them to fired (only rows still pending, so a
 * timer fires once however often it is claimed) and records what firing means:
 * a notification, a timeline entry, an outbox event, the next step's timer.
 *
 * What Redis may lose, PostgreSQL recovers:
 * - an id added to Redis by a transaction that rolled back is an orphan; firing
 *   finds no pending row and ignores it;
 * - ids claimed by a scheduler that crashed before committing, or lost in a Redis
 *   restart, are found by the PostgreSQL sweep of pending timers past due;
 * - a flushed Redis loses the epoch key too, and the next tick rebuilds the whole
 *   index from PostgreSQL. */
#include "timers.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/event.h"
#include "lf/log.h"
#include "lf/util.h"

static const char *s_claim_lua =
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, "
    "ARGV[2]) "
    "if #ids > 0 then redis.call('ZREM', KEYS[1], unpack(ids)) end "
    "return ids";

static long s_seconds(const json_t *sla, const char *key, const char *grade, long def) {
    const json_t *v = json_object_get(json_object_get(sla, key), grade);
    return json_is_integer(v) ? (long)json_integer_value(v) : def;
}

static int s_zadd(lf_timers_t *t, const char *id, const char *due_ms) {
    redisReply *r = lf_redis_cmd(t->redis, "ZADD %s %s %s", t->zkey, due_ms, id);
    if (!r) {
        /* Not fatal: the PostgreSQL sweep fires it; it will only be later. */
        lf_warn("timer not indexed in Redis id=%s reason=%s", id, t->redis->errstr);
        return -1;
    }
    freeReplyObject(r);
    return 0;
}

/* Inserts a timer row (idempotent per lead/kind/step) and indexes it. */
static int s_add_timer(lf_timers_t *t, lf_db_t *db, const char *lead_id, const char *kind,
                       int step, long delay_s) {
    char step_s[8], delay[24];
    snprintf(step_s, sizeof step_s, "%d", step);
    snprintf(delay, sizeof delay, "%ld", delay_s);
    const char *p[] = {lead_id, kind, step_s, delay};
    PGresult *res = lf_db_exec(
        db,
        "INSERT INTO timers (lead_id, kind, step, due_at) VALUES ($1, $2, $3::int,"
        " now() + make_interval(secs => $4::int)) ON CONFLICT DO NOTHING"
        " RETURNING id, (extract(epoch FROM due_at) * 1000)::bigint",
        4, p);
    if (!res)
        return -1;
    if (PQntuples(res) == 1)
        s_zadd(t, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
    PQclear(res);
    return 0;
}

/* Follow-ups (pipeline): an activity's next_action_at becomes a 'follow_up' timer at
 * that time. Its step is the activity's number on the lead, so each activity has at
 * most one timer however often the event is redelivered. */
static int s_on_activity(lf_timers_t *t, lf_db_t *db, const char *lead_id,
                         const json_t *pl) {
    const char *due = json_string_value(json_object_get(pl, "next_action_at"));
    json_int_t seq = json_integer_value(json_object_get(pl, "seq"));
    if (!lead_id || !due || seq <= 0 || seq > 2000000000)
        return 0;
    char step[24];
    snprintf(step, sizeof step, "%lld", (long long)seq);
    const char *p[] = {lead_id, step, due};
    PGresult *res =
        lf_db_exec(db,
                   "INSERT INTO timers (lead_id, kind, step, due_at) VALUES ($1, "
                   "'follow_up', $2::int,"
                   " $3::timestamptz) ON CONFLICT DO NOTHING"
                   " RETURNING id, (extract(epoch FROM due_at) * 1000)::bigint",
                   3, p);
    if (!res)
        return -1;
    if (PQntuples(res) == 1)
        s_zadd(t, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
    PQclear(res);
    return 0;
}

/* Fires a follow-up timer: a 'follow_up_reminder' notification to the deal's owner
 * with what the activity said, a timeline entry and a 'followup.reminded' event.
 * A deal without an owner has nobody to remind. Returns 0 or -1. */
static int s_fire_follow_up(lf_timers_t *t, lf_db_t *db, const char *timer_id,
                            const char *lead_id, const char *step, const char *owner) {
    if (!owner)
        return 0;
    const char *q[] = {timer_id, lead_id, owner, step};
    PGresult *r = lf_db_exec(
        db,
        "WITH a AS (SELECT coalesce((SELECT data FROM lead_events WHERE lead_id = $2"
        "  AND type = 'activity' AND data->>'seq' = $4 ORDER BY id LIMIT 1), '{}') AS d),"
        " m AS (SELECT '跟进提醒 follow-up reminder: lead ' || $2 || ' is due for its "
        "next"
        "  action' || coalesce(' after the ' || (d->>'activity'), '')"
        "  || coalesce(' (' || (d->>'outcome') || ')', '')"
        "  || coalesce(': ' || (d->>'note'), '') AS text FROM a),"
        " n AS (INSERT INTO notifications (timer_id, lead_id, rep_id, kind, message)"
        "  SELECT $1::bigint, $2, $3, 'follow_up_reminder', m.text FROM m"
        "  ON CONFLICT (timer_id) DO NOTHING RETURNING id, message)"
        " INSERT INTO lead_events (lead_id, type, actor, data)"
        " SELECT $2, 'follow_up_reminder', 'scheduler', jsonb_build_object('to', $3,"
        "  'message', n.message, 'notification', n.id, 'activity_seq', $4::int) FROM n"
        " RETURNING id",
        4, q);
    if (!r)
        return -1;
    int inserted = PQntuples(r);
    PQclear(r);
    if (!inserted)
        return 0;
    json_t *pl = json_pack("{s:s, s:s, s:i}", "kind", "follow_up_reminder", "to", owner,
                           "activity_seq", atoi(step));
    json_t *ev = lf_outbox_add(db, "followup.reminded", lead_id, pl);
    json_decref(pl);
    if (!ev)
        return -1;
    json_decref(ev); /* analytics picks it up from the outbox sweep */
    t->reminders++;
    return 0;
}

int lf_timers_on_event(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg) {
    lf_timers_t *t = arg;
    const char *type = lf_event_type(env);
    if (type && strcmp(type, "activity.logged") == 0)
        return s_on_activity(t, db, lf_event_lead(env), lf_event_payload(env));
    const char *lead_id = lf_event_lead(env);
    const json_t *pl = lf_event_payload(env);
    const char *grade = json_string_value(json_object_get(pl, "grade"));
    if (!lead_id || !grade)
        return 0;
    long secs = s_seconds(t->sla, "first_contact_seconds", grade, 3600);
    if (type && strcmp(type, "lead.reassigned") == 0) {
        /* A new owner gets a first-contact clock of their own: the SLA timers of
         * round r use steps 10r, 10r+1, 10r+2, where r counts the reassignments. */
        if (!json_string_value(json_object_get(pl, "owner")))
            return 0; /* went to a queue: nobody to remind */
        const char *p[] = {lead_id};
        PGresult *r = lf_db_exec(db,
                                 "SELECT count(*) FROM assignments WHERE lead_id = $1"
                                 " AND kind = 'reassign'",
                                 1, p);
        if (!r)
            return -1;
        int round = atoi(PQgetvalue(r, 0, 0));
        PQclear(r);
        return s_add_timer(t, db, lead_id, "sla_first_contact", round * 10, secs);
    }
    return s_add_timer(t, db, lead_id, "sla_first_contact", 0, secs);
}

long lf_timers_rebuild(lf_timers_t *t) {
    PGresult *res = lf_db_exec(t->db,
                               "SELECT id, (extract(epoch FROM due_at) * 1000)::bigint "
                               "FROM timers WHERE state = 'pending'",
                               0, NULL);
    if (!res)
        return -1;
    long n = PQntuples(res);
    /* Pipelined ZADDs, 1000 per reply batch. */
    for (long i = 0; i < n; i += 1000) {
        long end = i + 1000 < n ? i + 1000 : n;
        if (lf_redis_ensure(t->redis) < 0)
            goto fail;
        for (long j = i; j < end; j++)
            redisAppendCommand(t->redis->ctx, "ZADD %s %s %s", t->zkey,
                               PQgetvalue(res, (int)j, 1), PQgetvalue(res, (int)j, 0));
        for (long j = i; j < end; j++) {
            void *reply = NULL;
            if (redisGetReply(t->redis->ctx, &reply) != REDIS_OK) {
                t->redis->err = 1;
                goto fail;
            }
            freeReplyObject(reply);
        }
    }
    PQclear(res);
    redisReply *r =
        lf_redis_cmd(t->redis, "SET %s %lld", t->epoch_key, (long long)lf_now_ms());
    if (!r)
        return -1;
    freeReplyObject(r);
    t->rebuilt++;
    lf_info("timer index rebuilt from PostgreSQL pending=%ld", n);
    return n;
fail:
    PQclear(res);
    lf_warn("timer index rebuild failed: %s", t->redis->errstr);
    if (t->redis->ctx) {
        redisFree(t->redis->ctx);
        t->redis->ctx = NULL;
    }
    return -1;
}

/* Fires the given timer ids (a PostgreSQL bigint[] literal) in one transaction.
 * Returns the number that fired, or -1. */
static int s_fire(lf_timers_t *t, const char *ids) {
    lf_db_t *db = t->db;
    int fired = 0;
    if (lf_db_begin(db) < 0)
        return -1;
    const char *p[] = {ids};
    PGresult *res = lf_db_exec(
        db,
        "WITH f AS (UPDATE timers SET state = 'fired', fired_at = now()"
        "  WHERE id = ANY($1::bigint[]) AND state = 'pending'"
        "  RETURNING id, lead_id, kind, step)"
        " SELECT f.id, f.lead_id, f.kind, f.step, l.owner, r.manager, l.grade,"
        "  (l.first_contact_at IS NULL AND l.stage = 'new' AND l.owner IS NOT NULL),"
        "  (SELECT count(*) FROM assignments a WHERE a.lead_id = l.id"
        "   AND a.kind = 'reassign')"
        " FROM f JOIN leads l ON l.id = f.lead_id LEFT JOIN reps r ON r.id = l.owner"
        " ORDER BY f.id",
        1, p);
    if (!res)
        goto fail;
    for (int i = 0; i < PQntuples(res); i++) {
        fired++;
        if (strcmp(PQgetvalue(res, i, 2), "follow_up") == 0) {
            if (s_fire_follow_up(t, db, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                                 PQgetvalue(res, i, 3),
                                 PQgetisnull(res, i, 4) ? NULL : PQgetvalue(res, i, 4)) <
                0)
                goto fail;
            continue;
        }
        if (strcmp(PQgetvalue(res, i, 7), "t") != 0)
            continue; /* contacted in time, or unassigned: the timer just ends */
        const char *timer_id = PQgetvalue(res, i, 0), *lead_id = PQgetvalue(res, i, 1);
        const char *kind = PQgetvalue(res, i, 2), *owner = PQgetvalue(res, i, 4);
        const char *manager = PQgetisnull(res, i, 5) ? NULL : PQgetvalue(res, i, 5);
        const char *grade = PQgetvalue(res, i, 6);
        int round = atoi(PQgetvalue(res, i, 3)) / 10,
            step = atoi(PQgetvalue(res, i, 3)) % 10;
        if (strcmp(kind, "sla_first_contact") != 0)
            continue;
        if (round != atoi(PQgetvalue(res, i, 8)))
            continue; /* a clock of a previous owner: the lead has been reassigned since
                       */
        if (step == 2) {
            /* Still not contacted after the escalation: the router hands the lead to
             * another rep (never a previous owner) or to the queue. */
            json_t *rp =
                json_pack("{s:s, s:[s]}", "reason", "sla_missed", "exclude", owner);
            json_t *rev = lf_outbox_add(db, "lead.reassign", lead_id, rp);
            json_decref(rp);
            if (!rev)
                goto fail;
            json_decref(rev); /* the router picks it up from the outbox sweep */
            continue;
        }
        const char *nkind = step == 0 ? "sla_reminder" : "sla_escalation";
        const char *to = step == 0 ? owner : (manager ? manager : owner);
        char msg[512];
        if (step == 0)
            snprintf(
                msg, sizeof msg,
                "首次联系超时提醒: grade %s lead %s has not been contacted within its "
                "first-contact SLA; please contact the customer now.",
                grade, lead_id);
        else
            snprintf(
                msg, sizeof msg,
                "升级提醒: grade %s lead %s owned by %s is still not contacted after "
                "the reminder.",
                grade, lead_id, owner);
        const char *q[] = {timer_id, lead_id, to, nkind, msg};
        PGresult *r = lf_db_exec(
            db,
            "WITH n AS (INSERT INTO notifications (timer_id, lead_id, rep_id, kind, "
            "message)"
            "  VALUES ($1::bigint, $2, $3, $4, $5) ON CONFLICT (timer_id) DO NOTHING"
            "  RETURNING id)"
            " INSERT INTO lead_events (lead_id, type, actor, data)"
            " SELECT $2, $4, 'scheduler', jsonb_build_object('to', $3, 'message', $5,"
            "  'notification', n.id) FROM n RETURNING id",
            5, q);
        if (!r)
            goto fail;
        int inserted = PQntuples(r);
        PQclear(r);
        if (!inserted)
            continue;
        json_t *pl = json_pack("{s:s, s:s, s:i}", "kind", nkind, "to", to, "step", step);
        json_t *ev =
            lf_outbox_add(db, step == 0 ? "sla.reminded" : "sla.escalated", lead_id, pl);
        json_decref(pl);
        if (!ev)
            goto fail;
        json_decref(ev); /* analytics picks it up from the outbox sweep */
        if (step == 0) {
            t->reminders++;
            long secs = s_seconds(t->sla, "escalate_after_seconds", grade, 3600);
            if (s_add_timer(t, db, lead_id, "sla_first_contact", round * 10 + 1, secs) <
                0)
                goto fail;
        } else {
            t->escalations++;
            long ra = s_seconds(t->sla, "reassign_after_seconds", grade, -1);
            if (ra >= 0 &&
                s_add_timer(t, db, lead_id, "sla_first_contact", round * 10 + 2, ra) < 0)
                goto fail;
        }
    }
    PQclear(res);
    res = NULL;
    if (lf_db_commit(db) < 0)
        goto fail;
    t->fired += fired;
    return fired;
fail:
    PQclear(res);
    lf_warn("timer batch not fired (will be swept): %s", db->errstr);
    lf_db_rollback(db);
    return -1;
}

/* Claims due ids from Redis and fires them. Returns how many were claimed. */
static int s_claim_and_fire(lf_timers_t *t) {
    char now[24], lim[16];
    snprintf(now, sizeof now, "%lld", (long long)lf_now_ms());
    snprintf(lim, sizeof lim, "%d", t->claim_batch);
    redisReply *r =
        lf_redis_cmd(t->redis, "EVAL %s 1 %s %s %s", s_claim_lua, t->zkey, now, lim);
    if (!r)
        return -1;
    int n = (int)r->elements;
    if (n > 0) {
        size_t cap = (size_t)n * 22 + 4, len = 1;
        char *ids = lf_malloc(cap);
        ids[0] = '{';
        for (int i = 0; i < n; i++)
            len += (size_t)snprintf(ids + len, cap - len, "%s%s", i ? "," : "",
                                    r->element[i]->str);
        snprintf(ids + len, cap - len, "}");
        s_fire(t, ids);
        free(ids);
    }
    freeReplyObject(r);
    return n;
}

/* Fires pending timers that are past due by more than two seconds: Redis lost them
 * (restart without persistence, a crash between claim and commit). */
static void s_sweep_pg(lf_timers_t *t) {
    PGresult *res =
        lf_db_exec(t->db,
                   "SELECT coalesce('{' || string_agg(id::text, ',') || '}', '{}')"
                   " FROM (SELECT id FROM timers WHERE state = 'pending'"
                   " AND due_at < now() - interval '2 seconds'"
                   " ORDER BY due_at LIMIT 1000) d",
                   0, NULL);
    if (!res)
        return;
    const char *ids = PQgetvalue(res, 0, 0);
    if (strcmp(ids, "{}") != 0) {
        int n = s_fire(t, ids);
        if (n > 0)
            lf_info("fired overdue timers Redis did not have fired=%d", n);
    }
    PQclear(res);
}

static size_t s_discard(char *ptr, size_t size, size_t nmemb, void *arg) {
    (void)ptr;
    (void)arg;
    return size * nmemb;
}

/* Delivers recorded notifications to the webhook, at least once each. */
static void s_deliver(lf_timers_t *t) {
    if (!t->webhook_url)
        return;
    PGresult *res = lf_db_exec(
        t->db,
        "SELECT id, json_build_object('id', id, 'lead_id', lead_id, 'to', rep_id, 'kind',"
        " kind, 'message', message, 'at', lf_rfc3339(created_at))::text FROM "
        "notifications"
        " WHERE delivered_at IS NULL AND attempts < 20 ORDER BY id LIMIT 20",
        0, NULL);
    if (!res)
        return;
    CURL *curl = curl_easy_init();
    for (int i = 0; curl && i < PQntuples(res); i++) {
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        curl_easy_reset(curl);
        curl_easy_setopt(curl, CURLOPT_URL, t->webhook_url);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, PQgetvalue(res, i, 1));
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 2000L);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_discard);
        CURLcode cc = curl_easy_perform(curl);
        long status = 0;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(h);
        const char *p[] = {PQgetvalue(res, i, 0)};
        if (cc == CURLE_OK && status >= 200 && status < 300)
            lf_db_cmd(t->db,
                      "UPDATE notifications SET delivered_at = now(),"
                      " attempts = attempts + 1 WHERE id = $1::bigint",
                      1, p);
        else
            lf_db_cmd(t->db,
                      "UPDATE notifications SET attempts = attempts + 1"
                      " WHERE id = $1::bigint",
                      1, p);
    }
    if (curl)
        curl_easy_cleanup(curl);
    PQclear(res);
}

int lf_timers_tick(void *arg) {
    lf_timers_t *t = arg;
    static int64_t next_pg_sweep, next_deliver;
    int64_t now = lf_mono_ms();
    redisReply *r = lf_redis_cmd(t->redis, "EXISTS %s", t->epoch_key);
    if (r) {
        long exists = r->integer;
        freeReplyObject(r);
        if (!exists)
            lf_timers_rebuild(t);
    }
    int n;
    int rounds = 0;
    while ((n = s_claim_and_fire(t)) >= t->claim_batch && ++rounds < 50)
        ;
    if (now >= next_pg_sweep) {
        s_sweep_pg(t);
        next_pg_sweep = now + 1000;
    }
    if (now >= next_deliver) {
        s_deliver(t);
        next_deliver = now + 1000;
    }
    /* Sleep until the next due timer, at most the loop's tick interval. */
    r = lf_redis_cmd(t->redis, "ZRANGE %s 0 0 WITHSCORES", t->zkey);
    int wait = -1;
    if (r && r->elements == 2) {
        long long due = atoll(r->element[1]->str) - lf_now_ms();
        wait = due < 0 ? 0 : (due > 100000 ? 100000 : (int)due);
    }
    if (r)
        freeReplyObject(r);
    return wait;
}
