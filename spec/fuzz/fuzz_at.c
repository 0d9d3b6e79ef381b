/*
 * fuzz_at.c — libFuzzer harness: the AT tokenizer + engine router driven by an
 * arbitrary byte string.
 *
 * The input is a program: each byte picks an operation (submit, write out, feed
 * bytes or a line, let time pass, lose the port, cancel, register a URC prefix,
 * change what the callbacks do) and the following bytes are its operands. The
 * engine's contract (at_engine.h) is checked as it runs:
 *   - on_result exactly once per submitted command; never for an id not submitted;
 *   - after hf_at_port_lost() every command submitted before has had its result
 *     (so nothing arrives later for an old id);
 *   - never two commands in flight: a command becomes in flight only after the
 *     previous one got its result, and nothing is offered for writing meanwhile;
 *   - DONE/OVERFLOW only for the command in flight, with a final line; CANCELLED
 *     only for a command not started; the result carries the submitted text;
 *   - response/URC lines are NUL-terminated at their length, at most HF_AT_RESP_LINES;
 *   - a final result is never handed to on_urc while a command awaits its final;
 *   - hf_at_tick() at the reported deadline always moves the engine on;
 *   - at the end (port lost) the engine is idle and every command has its result.
 * Any violation aborts (a libFuzzer crash).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_engine.h"

#define FZ_CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "fuzz_at: invariant failed: " \
    __VA_ARGS__); fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__); abort(); } } while (0)

#define MAX_IDS 2048

static const char *const cmds[] = {
    "AT", "AT^FOTASTATE?", "AT+GMR", "AT^FOTADET", "AT^FOTADLQ", "AT+CREG?", "ATI",
    "AT^FWUP", "AT+CGSN", "AT^FOTADL=1", "AT+CPIN?", "at^fotamode?",
};
#define NCMDS (sizeof cmds / sizeof cmds[0])

static const char *const prefixes[] = {"^FOTASTATE:", "^FOTADLQ:", "+CREG:", "+GMR:", "X"};

static const char *const lines[] = {
    "OK", "ERROR", "+CME ERROR: 3", "+CME ERROR: FOTA is in collision state",
    "+CMS ERROR: 500", "COMMAND NOT SUPPORT", "TOO MANY PARAMETERS", "NO CARRIER",
    "^FOTASTATE: 40", "^FOTASTATE: 12,12.815.01.04.00,79114,\"desc\"", "^FOTADLQ: 1,\"IMAGE\",1,2",
    "+CREG: 0,1", "^RSSI: 20", "12.815.01.03.00", "AT", "AT^FOTASTATE?", "ATI", "+CMTI: \"SM\",1",
    "^BOOT:1,2", "Revision: 12.815.01.03.00", "BUSY", "",
};
#define NLINES (sizeof lines / sizeof lines[0])

typedef struct fz {
    hf_at at;
    const uint8_t *d;
    size_t n, i;
    double now;
    unsigned char results[MAX_IDS];   /* on_result calls per id */
    unsigned char submitted[MAX_IDS];
    char text[MAX_IDS][24];           /* submitted text (cmds[] are short) */
    unsigned long flight;             /* id in flight awaiting its result, 0 none */
    unsigned long max_id;             /* highest id returned by hf_at_submit */
    int cb_submit, cb_cancel, cb_lost_urc, cb_lost_result;
    int depth;
} fz;

static uint8_t take(fz *z)
{
    return z->i < z->n ? z->d[z->i++] : 0;
}

static void submit(fz *z, uint8_t sel, uint8_t ex, uint8_t tmo)
{
    const char *c = cmds[sel % NCMDS];
    const char *pf[HF_AT_PREFIX_MAX];
    size_t np = (size_t)(ex >> 2) % 3;
    for (size_t k = 0; k < np; k++)
        pf[k] = prefixes[(sel + k) % (sizeof prefixes / sizeof prefixes[0])];
    hf_at_expect e = (hf_at_expect)(ex & 3);   /* 3 is invalid: must be refused */
    unsigned long id = 0;
    hf_error err;
    size_t before = z->at.count;
    int r = hf_at_submit(&z->at, c, strlen(c), e, pf, np, (double)(tmo % 16) * 0.5, &id, &err);
    if (e > HF_AT_EXPECT_PREFIXES || before >= HF_AT_QUEUE_MAX) {
        FZ_CHECK(r == -1 && err.code, "submit should be refused (expect %d, queue %zu)", (int)e,
                 before);
        return;
    }
    FZ_CHECK(r == 0, "submit refused: %s", err.msg);
    FZ_CHECK(id > z->max_id && id < MAX_IDS, "id %lu not fresh (max %lu)", id, z->max_id);
    z->max_id = id;
    z->submitted[id] = 1;
    snprintf(z->text[id], sizeof z->text[id], "%s", c);
}

static void on_result(void *ud, const hf_at_result *res)
{
    fz *z = ud;
    unsigned long id = res->id;
    FZ_CHECK(id >= 1 && id < MAX_IDS && z->submitted[id], "result for id %lu never submitted", id);
    FZ_CHECK(z->results[id] == 0, "second result for id %lu", id);
    z->results[id] = 1;
    FZ_CHECK(strcmp(res->command, z->text[id]) == 0, "result %lu carries \"%s\", not \"%s\"", id,
             res->command, z->text[id]);
    FZ_CHECK(res->nlines <= HF_AT_RESP_LINES, "%zu lines", res->nlines);
    for (size_t k = 0; k < res->nlines; k++)
        FZ_CHECK(res->lines[k] && res->lines[k][res->line_lens[k]] == '\0', "line %zu", k);
    FZ_CHECK(res->elapsed >= 0, "elapsed %f", res->elapsed);
    switch (res->status) {
    case HF_AT_STATUS_DONE:
    case HF_AT_STATUS_OVERFLOW:
        FZ_CHECK(id == z->flight, "final for %lu while %lu is in flight", id, z->flight);
        FZ_CHECK(res->final.kind != HF_FINAL_NONE && res->final_line[0] &&
                     hf_final_parse(res->final_line, strlen(res->final_line), NULL) ==
                         res->final.kind, "DONE without its final line");
        break;
    case HF_AT_STATUS_CANCELLED:
        FZ_CHECK(id != z->flight, "in-flight command %lu cancelled", id);
        break;
    case HF_AT_STATUS_TIMEOUT:
    case HF_AT_STATUS_PORTLOST:
        break;
    default:
        FZ_CHECK(0, "status %d", (int)res->status);
    }
    if (id == z->flight)
        z->flight = 0;
    if (z->depth > 4)
        return;
    z->depth++;
    if (z->cb_submit) {
        z->cb_submit--;
        submit(z, (uint8_t)(id * 7), (uint8_t)id, 3);
    }
    if (z->cb_cancel) {
        z->cb_cancel = 0;
        hf_at_cancel_queued(&z->at);
    }
    if (z->cb_lost_result) {
        z->cb_lost_result = 0;
        unsigned long upto = z->max_id;
        hf_at_port_lost(&z->at);
        for (unsigned long k = 1; k <= upto; k++)
            FZ_CHECK(z->results[k] == 1, "id %lu has no result after port_lost (in callback)", k);
    }
    z->depth--;
}

static void on_urc(void *ud, const char *line, size_t len)
{
    fz *z = ud;
    FZ_CHECK(len > 0 && !memchr(line, '\r', len) && !memchr(line, '\n', len), "URC of %zu", len);
    if (z->flight && z->at.resync_state == 0)
        FZ_CHECK(hf_final_parse(line, len, NULL) == HF_FINAL_NONE,
                 "final \"%.*s\" taken as URC while %lu awaits its final", (int)len, line,
                 z->flight);
    if (z->cb_lost_urc && z->depth == 0) {
        z->cb_lost_urc = 0;
        z->depth++;
        unsigned long upto = z->max_id;
        hf_at_port_lost(&z->at);
        for (unsigned long k = 1; k <= upto; k++)
            FZ_CHECK(z->results[k] == 1, "id %lu has no result after port_lost (in URC)", k);
        z->depth--;
    }
}

static void on_event(void *ud, hf_at_event ev, const char *detail, size_t len)
{
    (void)ud;
    FZ_CHECK(ev >= HF_AT_EV_OVERFLOW && ev <= HF_AT_EV_GAVE_UP, "event %d", (int)ev);
    FZ_CHECK(detail || len == 0, "event detail");
}

/* A command is in flight now: the previous one must have had its result. */
static void note_flight(fz *z)
{
    if (!z->at.in_flight)
        return;
    unsigned long id = z->at.queue[z->at.head].id;
    if (id == z->flight)
        return;
    FZ_CHECK(z->flight == 0, "%lu in flight while %lu awaits its result", id, z->flight);
    FZ_CHECK(id < MAX_IDS && z->submitted[id] && !z->results[id], "in flight: %lu", id);
    z->flight = id;
}

static void feed(fz *z, const char *p, size_t n)
{
    hf_at_input(&z->at, p, n, z->now);
    note_flight(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fz z0;
    fz *z = &z0;
    memset(z, 0, sizeof *z);
    z->d = data;
    z->n = size;
    z->now = 1000.0;
    hf_at_callbacks cb = {on_result, on_urc, on_event};
    hf_at_init(&z->at, &cb, z);
    (void)hf_at_urc_prefix_add(&z->at, "^FOTASTATE:");   /* as the FOTA layer does */

    unsigned steps = 0;
    while (z->i < z->n && steps++ < 4000) {
        uint8_t op = take(z);
        switch (op % 12) {
        case 0: case 1: {             /* submit */
            uint8_t a = take(z), b = take(z), c = take(z);
            if (z->max_id + 1 < MAX_IDS - 8)
                submit(z, a, b, c);
            break;
        }
        case 2: case 3: {             /* write some or all of what is due */
            const char *out;
            size_t k = hf_at_output(&z->at, &out);
            if (z->flight)
                FZ_CHECK(k == 0, "%zu bytes offered while %lu awaits its result", k, z->flight);
            uint8_t w = take(z);
            size_t nw = (w & 0x80) ? k : (size_t)(w % 8);
            if (nw > k)
                nw = k;
            z->now += (w & 0x40) ? 0.01 : 0.0;
            hf_at_wrote(&z->at, nw, z->now);
            note_flight(z);
            break;
        }
        case 4: case 5: {             /* raw bytes from the module */
            size_t len = take(z) % 48;
            if (len > z->n - z->i)
                len = z->n - z->i;
            feed(z, (const char *)z->d + z->i, len);
            z->i += len;
            break;
        }
        case 6: {                     /* one known line, or the echo of the head */
            uint8_t s = take(z);
            char buf[HF_AT_CMD_MAX + 8];
            const char *l = lines[s % NLINES];
            if ((s & 0xc0) == 0xc0 && z->at.count)   /* the head's text: its echo */
                snprintf(buf, sizeof buf, "%.*s", (int)(z->at.queue[z->at.head].len - 1),
                         z->at.qtext + z->at.queue[z->at.head].text);
            else
                snprintf(buf, sizeof buf, "%s", l);
            size_t len = strlen(buf);
            const char *end = (s & 0x20) ? "\r" : "\r\n";
            memcpy(buf + len, end, strlen(end) + 1);
            feed(z, buf, strlen(buf));
            break;
        }
        case 7: {                     /* time passes, maybe exactly to the deadline */
            uint8_t t = take(z);
            double dl = hf_at_deadline(&z->at);
            if ((t & 0x80) && dl >= 0) {
                if (dl > z->now)
                    z->now = dl;
                hf_at_tick(&z->at, z->now);
                double after = hf_at_deadline(&z->at);
                FZ_CHECK(after < 0 || after != dl, "tick at the deadline %f did nothing", dl);
            } else {
                z->now += (double)(t & 0x7f) * 0.05;
                hf_at_tick(&z->at, z->now);
            }
            note_flight(z);
            break;
        }
        case 8: {                     /* the port goes away */
            unsigned long upto = z->max_id;
            hf_at_port_lost(&z->at);
            z->flight = 0;
            for (unsigned long k = 1; k <= upto; k++)
                FZ_CHECK(z->results[k] == 1, "id %lu has no result after port_lost", k);
            /* only what the callbacks submitted meanwhile may be queued */
            size_t fresh = 0;
            for (unsigned long k = upto + 1; k <= z->max_id; k++)
                fresh += z->results[k] == 0;
            FZ_CHECK(z->at.count == fresh, "%zu queued after port_lost, %zu new", z->at.count,
                     fresh);
            break;
        }
        case 9: {                     /* cancel: only a started head (and callbacks' new) stay */
            unsigned long upto = z->max_id;
            int started = z->at.count && (z->at.in_flight || z->at.written > 0);
            hf_at_cancel_queued(&z->at);
            size_t fresh = 0;
            for (unsigned long k = upto + 1; k <= z->max_id; k++)
                fresh += z->results[k] == 0;
            FZ_CHECK(z->at.count <= (size_t)started + fresh, "%zu queued after cancel",
                     z->at.count);
            break;
        }
        case 10: {                    /* URC prefixes */
            uint8_t s = take(z);
            static const char *const extra[] = {"+CGREG:", "^FOTADLQ:", "OK", "+GMR:", "1"};
            const char *p = extra[s % 5];
            if (s & 0x80)
                hf_at_urc_prefix_remove(&z->at, p);
            else
                (void)hf_at_urc_prefix_add(&z->at, p);
            break;
        }
        case 11: {                    /* what the callbacks do next */
            uint8_t s = take(z);
            z->cb_submit = s & 3;
            z->cb_cancel = (s >> 2) & 1;
            z->cb_lost_urc = (s & 0x30) == 0x30;
            z->cb_lost_result = (s & 0xc0) == 0xc0;
            break;
        }
        }
    }
    /* End: the port goes; every command ever submitted has had exactly one result. */
    z->cb_submit = z->cb_cancel = z->cb_lost_urc = z->cb_lost_result = 0;
    hf_at_port_lost(&z->at);
    for (unsigned long k = 1; k <= z->max_id; k++)
        FZ_CHECK(z->results[k] == 1, "id %lu: %d results at the end", k, z->results[k]);
    FZ_CHECK(hf_at_idle(&z->at), "not idle at the end");
    return 0;
}
