/*
 * fota_harness.h — test-only driver for the FOTA state machine: a tiny scripted
 * module that answers the FSM's commands, an event log, and the safety-invariant
 * checks every FSM test runs after every step (header-only; included by tests).
 */
#ifndef HF_FOTA_HARNESS_H
#define HF_FOTA_HARNESS_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "fota_fsm.h"
#include "fota_journal.h"

/* Record only failures: these run after every step, thousands of times. */
#define EXPECT(cond, ...) do { if (!(cond)) CHECK(cond, __VA_ARGS__); } while (0)

/* ---- the module ------------------------------------------------------------------------ */
typedef struct sim {
    int state;                  /* FOTA state */
    char version[40], offer[40];
    int detect_result;          /* 12, 13, 14, or 10 for a silent failure */
    int dl_fail;                /* download ends in 20,<code> */
    int auto_upgrade;
    int resume;                 /* partial download survives power loss */
    int upgrade_ok;             /* reset gives 90 + new version */
    int sim_pin, unregistered, collision;
    int port_up;
    unsigned long done, total;
    int fwup_count;             /* AT^FWUP received, all time */
    int urc_quiet;              /* no URCs (AT^CURC=0) */
} sim;

static void sim_init(sim *s)
{
    memset(s, 0, sizeof *s);
    s->state = 10;
    strcpy(s->version, "12.815.01.03.00");
    strcpy(s->offer, "12.815.01.04.00");
    s->detect_result = 12;
    s->auto_upgrade = 1;
    s->resume = 1;
    s->upgrade_ok = 1;
    s->port_up = 1;
    s->total = 79114;
}

/* ---- the harness ----------------------------------------------------------------------- */
#define H_LOG 256
typedef struct harness {
    hf_fota f;
    hf_fota_actions a;
    sim m;
    double now;
    /* the command in flight, as the owner sees it */
    int pending;
    unsigned long pend_id;
    char pend[HF_FOTA_TEXT_MAX];
    double timer;               /* last TIMER action, -1 none */
    int reopen;                 /* REOPEN asked */
    /* log */
    char sent[H_LOG][96];
    size_t nsent;
    int journals, decisions_dl, decisions_up, progress_over;
    char failed[24], done[24], last_decision[16];
    char failed_msg[HF_FOTA_TEXT_MAX];
    long failed_module_code;
    unsigned last_percent;
    int notices;
    /* invariant bookkeeping (the harness's own view, not the FSM's) */
    int seen_state;             /* last ^FOTASTATE fed to the FSM */
    int image_fwups;            /* AT^FWUP sent for the current image */
    int images;
    int force;
    char fed_running[40];       /* last version answered to AT+GMR/ATI */
    char fed_offer[40];         /* last version announced in a 12 */
    int violations;
    /* policy */
    hf_fota_decision on_download, on_upgrade;
    int auto_decide;
    const char *stop_cmd;       /* h_run stops when this command is in flight */
    hf_fota_event_kind last_kind;
} harness;

static int h_version_cmp(const char *a, const char *b)
{
    hf_version x, y;
    if (hf_version_parse(a, strlen(a), &x, NULL) < 0 || hf_version_parse(b, strlen(b), &y, NULL) < 0)
        return -2;
    return hf_version_compare(&x, &y);
}

/* Every action list passes here: record it and check the safety rules. */
static void h_actions(harness *h)
{
    int sends = 0;
    EXPECT(h->a.dropped == 0, "actions dropped: %lu", h->a.dropped);
    for (size_t i = 0; i < h->a.n; i++) {
        hf_fota_action *x = &h->a.a[i];
        switch (x->kind) {
        case HF_ACT_SEND:
            sends++;
            if (h->pending && h->last_kind != HF_EV_PORT_LOST) {
                h->violations++;
                CHECK(0, "two commands in flight: %s while %s", x->text, h->pend);
            }
            if (strcmp(x->text, "AT^FOTADL=1") == 0 && h->seen_state == 12) {
                h->images++;
                h->image_fwups = 0;
            }
            if (strcmp(x->text, "AT^FWUP") == 0) {
                int newer = h_version_cmp(h->fed_offer, h->fed_running) > 0;
                if (h->seen_state != 40 || h->image_fwups > 0 || !(newer || h->force)) {
                    h->violations++;
                    CHECK(0, "unsafe AT^FWUP: state %d, fwups %d, offer %s running %s",
                          h->seen_state, h->image_fwups, h->fed_offer, h->fed_running);
                }
                h->image_fwups++;
            }
            h->pending = 1;
            h->pend_id = x->id;
            hf_strlcpy(h->pend, sizeof h->pend, x->text);
            if (h->nsent < H_LOG)
                hf_strlcpy(h->sent[h->nsent++], sizeof h->sent[0], x->text);
            break;
        case HF_ACT_TIMER: h->timer = x->at; break;
        case HF_ACT_REOPEN: h->reopen = 1; break;
        case HF_ACT_JOURNAL: h->journals++; break;
        case HF_ACT_EMIT:
            if (x->emit == HF_EMIT_FAILED) {
                hf_strlcpy(h->failed, sizeof h->failed, x->name);
                hf_strlcpy(h->failed_msg, sizeof h->failed_msg, x->text);
                h->failed_module_code = x->code;
            } else if (x->emit == HF_EMIT_DONE) {
                hf_strlcpy(h->done, sizeof h->done, x->name);
            } else if (x->emit == HF_EMIT_DECISION) {
                hf_strlcpy(h->last_decision, sizeof h->last_decision, x->name);
                if (!strcmp(x->name, "download")) h->decisions_dl++; else h->decisions_up++;
            } else if (x->emit == HF_EMIT_PROGRESS) {
                h->last_percent = h->f.progress.percent;
                if (h->f.progress.percent > 100 || h->f.progress.done > h->f.progress.total)
                    h->progress_over++;
            } else if (x->emit == HF_EMIT_NOTICE) {
                h->notices++;
            }
            break;
        }
    }
    EXPECT(sends <= 1, "%d commands sent in one step", sends);
    if (hf_fota_terminal(&h->f))
        EXPECT(sends == 0 || h->f.phase == HF_PH_FAILED || h->f.phase == HF_PH_DONE, "send after end");
}

static void h_init(harness *h, const hf_fota_config *cfg)
{
    memset(h, 0, sizeof *h);
    sim_init(&h->m);
    hf_error e;
    REQUIRE(hf_fota_init(&h->f, cfg, &e) == 0, "hf_fota_init: %s", e.msg);
    h->timer = -1;
    h->seen_state = -1;
    h->force = cfg->force;
    h->on_download = HF_DEC_DOWNLOAD;
    h->on_upgrade = HF_DEC_UPGRADE;
    h->auto_decide = 1;
    h->failed_module_code = -1;
}

static void h_start(harness *h)
{
    h->last_kind = 0;
    hf_fota_start(&h->f, h->now, &h->a);
    h_actions(h);
}

static void h_feed(harness *h, hf_fota_event *ev)
{
    ev->now = h->now;
    h->last_kind = ev->kind;
    if (ev->kind == HF_EV_PORT_LOST)
        h->pending = 0;   /* the engine fails the command in flight */
    hf_fota_feed(&h->f, ev, &h->a);
    h_actions(h);
}

static void h_note_state(harness *h, const hf_fotastate *st)
{
    h->seen_state = st->state;
    if (st->state == 12 && st->has_version)
        hf_strlcpy(h->fed_offer, sizeof h->fed_offer, st->version.text);
}

static void h_note_state_line(harness *h, const char *line)
{
    hf_fotastate st;
    if (hf_parse_fotastate(line, strlen(line), &st, NULL) == 0)
        h_note_state(h, &st);
}

static void h_urc(harness *h, const char *line)
{
    hf_fota_event ev = {.kind = HF_EV_URC, .line = line, .line_len = strlen(line)};
    h_note_state_line(h, line);
    h_feed(h, &ev);
}

static void h_result(harness *h, hf_fota_final fin, long code, const char *text,
                     const char *const *lines, size_t n)
{
    size_t lens[16];
    for (size_t i = 0; i < n && i < 16; i++) {
        lens[i] = strlen(lines[i]);
        h_note_state_line(h, lines[i]);
        if (hf_has_prefix(lines[i], lens[i], "1") && strchr(lines[i], '.'))
            hf_strlcpy(h->fed_running, sizeof h->fed_running, lines[i]);
        if (hf_has_prefix(lines[i], lens[i], "Revision: "))
            hf_strlcpy(h->fed_running, sizeof h->fed_running, lines[i] + 10);
    }
    hf_fota_event ev = {.kind = HF_EV_RESULT, .id = h->pend_id, .final = fin, .code = code,
                        .text = text, .text_len = text ? strlen(text) : 0,
                        .lines = lines, .line_lens = lens, .nlines = n};
    h->pending = 0;
    h_feed(h, &ev);
}

static void h_ok(harness *h, const char *l1, const char *l2)
{
    const char *lines[2] = {l1, l2};
    h_result(h, HF_FF_OK, -1, "", lines, l2 ? 2 : l1 ? 1 : 0);
}

static void h_simple(harness *h, hf_fota_event_kind k)
{
    hf_fota_event ev = {.kind = k};
    h_feed(h, &ev);
}

static void h_decide(harness *h, hf_fota_decision d)
{
    hf_fota_event ev = {.kind = HF_EV_DECISION, .decision = d};
    h_feed(h, &ev);
}

static void h_timer(harness *h)
{
    if (h->timer > h->now)
        h->now = h->timer;
    h_simple(h, HF_EV_TIMER);
}

/* ---- the module answering ----------------------------------------------------------- */

#define URCQ 4
typedef struct urcs { char l[URCQ][96]; int n; } urcs;

static void q(urcs *u, const sim *m, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void q(urcs *u, const sim *m, const char *fmt, ...)
{
    if (m->urc_quiet || u->n == URCQ)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->l[u->n++], sizeof u->l[0], fmt, ap);
    va_end(ap);
}

/* Answer the pending command as the module would; URCs that follow go to u. */
static void sim_answer(harness *h, urcs *u)
{
    sim *m = &h->m;
    const char *c = h->pend;
    char l1[128], l2[128];
    if (!strcmp(c, "AT+GMR")) {
        h_ok(h, m->version, NULL);
    } else if (!strcmp(c, "ATI")) {
        snprintf(l1, sizeof l1, "Revision: %s", m->version);
        h_ok(h, "Model: MU609", l1);
    } else if (!strcmp(c, "AT+CGSN")) {
        h_ok(h, "351234567890124", NULL);
    } else if (!strcmp(c, "AT+CPIN?")) {
        h_ok(h, m->sim_pin ? "+CPIN: SIM PIN" : "+CPIN: READY", NULL);
    } else if (!strcmp(c, "AT+CREG?") || !strcmp(c, "AT+CGREG?")) {
        h_ok(h, m->unregistered ? "+CREG: 0,2" : "+CREG: 0,1", NULL);
    } else if (!strcmp(c, "AT^FOTASTATE?")) {
        if (m->state == 12)
            snprintf(l1, sizeof l1, "^FOTASTATE: 12,%s,%lu,\"Support send SMS background\"",
                     m->offer, m->total);
        else
            snprintf(l1, sizeof l1, "^FOTASTATE: %d", m->state);
        h_ok(h, l1, NULL);
    } else if (!strcmp(c, "AT^FOTADET")) {
        if (m->collision) {
            h_result(h, HF_FF_CME, -1, "FOTA is in collision state", NULL, 0);
            return;
        }
        if (m->state != 10) {
            h_result(h, HF_FF_CME, -1, "FOTA is in collision state", NULL, 0);
            return;
        }
        h_ok(h, NULL, NULL);
        q(u, m, "^FOTASTATE: 11");
        m->state = m->detect_result == 12 ? 12 : 10;
        if (m->detect_result == 12)
            q(u, m, "^FOTASTATE: 12,%s,%lu,\"Support send SMS background\"", m->offer, m->total);
        else if (m->detect_result == 13)
            q(u, m, "^FOTASTATE: 13,20");
        else if (m->detect_result == 14)
            q(u, m, "^FOTASTATE: 14");
        else
            q(u, m, "^FOTASTATE: 10");
    } else if (!strcmp(c, "AT^FOTADL=1")) {
        if (m->state != 12 && m->state != 31) {
            h_result(h, HF_FF_ERROR, -1, "", NULL, 0);
            return;
        }
        h_ok(h, NULL, NULL);
        m->state = 30;
        q(u, m, "^FOTASTATE: 30");
    } else if (!strcmp(c, "AT^FOTADL=2")) {
        h_ok(h, NULL, NULL);
        m->state = 31;
        q(u, m, "^FOTASTATE: 31");
    } else if (!strcmp(c, "AT^FOTADL=0")) {
        h_ok(h, NULL, NULL);
        m->state = 10;
    } else if (!strcmp(c, "AT^FOTADLQ")) {
        if (m->state == 30) {
            m->done += 40000;
            if (m->done >= m->total)
                m->done = m->total;
        }
        snprintf(l2, sizeof l2, "^FOTADLQ: 2,\"XNV\",%lu,%lu", m->done, m->total);
        h_ok(h, "^FOTADLQ: 1,\"IMAGE\",1324,1324", l2);
        if (m->state == 30 && m->done >= m->total) {
            if (m->dl_fail) {
                m->state = 10;
                q(u, m, "^FOTASTATE: 20,52");
            } else {
                m->state = 40;
                q(u, m, "^FOTASTATE: 40");
                if (m->auto_upgrade) {
                    m->state = 50;
                    q(u, m, "^FOTASTATE: 50");
                }
            }
        }
    } else if (!strcmp(c, "AT^FWUP")) {
        m->fwup_count++;
        if (m->state != 40) {
            h_result(h, HF_FF_ERROR, -1, "", NULL, 0);
            return;
        }
        h_ok(h, NULL, NULL);
        m->state = 50;
        q(u, m, "^FOTASTATE: 50");
    } else {
        h_ok(h, NULL, NULL);
    }
}

/* The module resets (after 50) or loses power. */
static void sim_reset(sim *m)
{
    if (m->state == 50) {
        if (m->upgrade_ok) {
            strcpy(m->version, m->offer);
            m->state = 90;
        } else {
            m->state = 10;
        }
    } else if (m->state == 30 || m->state == 31) {
        if (m->resume) {
            m->state = 31;
        } else {
            m->state = 10;
            m->done = 0;
        }
    }
}

/* Run the flow with the module until the FSM ends, reaches stop_phase, or steps run
 * out. Returns the number of steps taken. */
static int h_run(harness *h, int stop_phase, int max_steps)
{
    int steps = 0;
    while (steps++ < max_steps && !hf_fota_terminal(&h->f)) {
        if ((int)h->f.phase == stop_phase)
            break;
        if (h->stop_cmd && h->pending && !strcmp(h->pend, h->stop_cmd))
            break;
        if (h->reopen) {               /* the owner reopens the port */
            h->reopen = 0;
            h->now += 20;
            sim_reset(&h->m);
            h->m.port_up = 1;
            h_simple(h, HF_EV_PORT_BACK);
            if (h->m.state == 90 && !h->m.urc_quiet)
                h_urc(h, "^FOTASTATE: 90");
            continue;
        }
        if (h->pending) {
            urcs u = {.n = 0};
            h->now += 0.2;
            sim_answer(h, &u);
            for (int i = 0; i < u.n && (int)h->f.phase != stop_phase; i++) {
                h->now += 0.1;
                h_urc(h, u.l[i]);
            }
            continue;
        }
        if (h->auto_decide && h->f.phase == HF_PH_DECIDE_DOWNLOAD) {
            h_decide(h, h->on_download);
            continue;
        }
        if (h->auto_decide && h->f.phase == HF_PH_DECIDE_UPGRADE) {
            h_decide(h, h->on_upgrade);
            continue;
        }
        if (h->m.state == 50 && h->m.port_up) {   /* the module resets */
            h->m.port_up = 0;
            h->now += 1;
            h_simple(h, HF_EV_PORT_LOST);
            continue;
        }
        if (h->timer >= 0) {
            h_timer(h);
            continue;
        }
        break;  /* nothing to do: stuck */
    }
    return steps;
}

static int h_sent_count(const harness *h, const char *cmd)
{
    int n = 0;
    for (size_t i = 0; i < h->nsent; i++)
        n += strcmp(h->sent[i], cmd) == 0;
    return n;
}

static void h_dump(const harness *h)
{
    for (size_t i = 0; i < h->nsent; i++)
        fprintf(stderr, "   sent %s\n", h->sent[i]);
    fprintf(stderr, "   phase %s failed=%s (%s) done=%s\n", hf_fota_phase_name(h->f.phase),
            h->failed, h->failed_msg, h->done);
}

#endif
