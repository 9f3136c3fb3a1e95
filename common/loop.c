/* loop.c - see loop.h. The sweep runs at start-up too, so whatever arrived while
 * the service was down is processed before anything new.
 *
 * One turn of the loop does at most one sweep chunk and one batch from the SUB
 * socket: a long backlog is swept chunk after chunk (the next sweep is due at once
 * while chunks come back full), with the socket read between chunks. An earlier loop
 * ran up to 100 sweep chunks before it looked at the socket, so envelopes waited there
 * for minutes (the consumer's cursor guard makes a stale envelope harmless, but the
 * queue then overflowed and its events waited for the sweep). */
#include "lf/loop.h"

#include <stdlib.h>
#include <zmq.h>

#include "lf/event.h"
#include "lf/log.h"
#include "lf/service.h"
#include "lf/util.h"

static void s_publish(lf_loop_t *loop) {
    json_t *out = lf_consumer_take_published(loop->consumer);
    if (loop->pub) {
        size_t i;
        json_t *env;
        json_array_foreach(out, i, env) {
            const char *type = json_string_value(json_array_get(env, 0));
            const json_t *text = json_array_get(env, 1);
            if (!json_is_array(env))
                lf_event_send(loop->pub, env);
            else if (type && json_is_string(text)) /* [type, text]: JSON already */
                lf_event_send_raw(loop->pub, type, json_string_value(text),
                                  json_string_length(text));
        }
    }
    json_decref(out);
}

/* Takes the envelopes waiting on the SUB socket, up to a batch. With a linger
 * (linger_ms > 0) it goes on waiting for more after the first one, until the batch is
 * full or linger_ms passed: under a steady stream each batch - one transaction, one
 * commit with its WAL flush - then carries many events instead of the few that were
 * queued at that instant. The wait ends early at a signal and when the sweep or the
 * tick is due, so neither waits for a batch to fill. Returns the number taken. */
static size_t s_gather(lf_loop_t *loop, zmq_pollitem_t *items, json_t **batch,
                       int64_t next_sweep, int64_t next_tick) {
    size_t n = 0;
    int64_t until = 0;
    json_t *env;
    int head = loop->keep || lf_consumer_seq_only(loop->consumer);
    for (;;) {
        while (n < (size_t)loop->batch &&
               (env = head ? lf_event_recv_head(loop->sub, loop->keep)
                           : lf_event_recv(loop->sub)))
            batch[n++] = env;
        if (n == 0 || n >= (size_t)loop->batch || loop->linger_ms <= 0 ||
            lf_service_stopping())
            return n;
        int64_t now = lf_mono_ms();
        if (!until) {
            until = now + loop->linger_ms;
            if (next_sweep < until)
                until = next_sweep;
            if (loop->tick && next_tick < until)
                until = next_tick;
        }
        if (now >= until || zmq_poll(items, 1, (long)(until - now)) <= 0 ||
            !(items[0].revents & ZMQ_POLLIN))
            return n;
    }
}

int lf_loop_run(lf_loop_t *loop) {
    json_t **batch = lf_calloc((size_t)loop->batch, sizeof *batch);
    int64_t next_sweep = 0, next_tick = 0,
            next_advance = lf_mono_ms() + LF_LOOP_ADVANCE_MS;
    int healthy = 0;
    long batches = 0, events = 0; /* envelopes taken from the socket, for the stop line */
    if (loop->max_attempts > 0)
        lf_consumer_set_retry(loop->consumer, loop->max_attempts, loop->backoff_ms);
    while (!lf_service_stopping()) {
        int64_t now = lf_mono_ms();
        if (now >= next_sweep) {
            /* One chunk of the backlog; while chunks come back full, the next one is
             * due at once (after a look at the socket). */
            int n = loop->sweep ? loop->sweep(loop->sweep_arg, loop->batch)
                                : lf_consumer_sweep(loop->consumer, loop->batch);
            s_publish(loop);
            healthy = n >= 0;
            next_sweep = n >= loop->batch / 2 ? 0 : lf_mono_ms() + loop->sweep_ms;
        }
        if (now >= next_advance) {
            lf_consumer_advance(loop->consumer);
            if (lf_consumer_replay(loop->consumer) > 0)
                s_publish(loop);
            next_advance = now + LF_LOOP_ADVANCE_MS;
        }
        if (loop->tick && now >= next_tick) {
            int want = loop->tick(loop->tick_arg);
            if (want < 0 || want > loop->tick_ms)
                want = loop->tick_ms;
            next_tick = lf_mono_ms() + want;
        }
        if (healthy)
            lf_service_healthy(loop->cfg);
        int64_t wait = next_sweep - lf_mono_ms();
        if (loop->tick && next_tick - lf_mono_ms() < wait)
            wait = next_tick - lf_mono_ms();
        if (wait > 200)
            wait = 200; /* bounded, so a signal is noticed quickly */
        if (wait < 0)
            wait = 0;
        zmq_pollitem_t items[] = {{loop->sub, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 1, (long)wait) <= 0 || !(items[0].revents & ZMQ_POLLIN))
            continue;
        size_t n = s_gather(loop, items, batch, next_sweep, next_tick);
        if (n) {
            batches++;
            events += (long)n;
        }
        if (n && lf_consumer_handle(loop->consumer, batch, n) < 0)
            next_sweep = 0; /* retry soon from the outbox */
        s_publish(loop);
        for (size_t i = 0; i < n; i++)
            json_decref(batch[i]);
    }
    if (batches || lf_consumer_parked(loop->consumer))
        lf_info("consumer loop stopped consumer=%s batches=%ld events=%ld "
                "mean_batch=%.1f parked=%ld",
                lf_consumer_name(loop->consumer), batches, events,
                batches ? (double)events / (double)batches : 0.0,
                lf_consumer_parked(loop->consumer));
    free(batch);
    return 0;
}
