/*
 * fuzz_fsm.c — libFuzzer harness: the FOTA state machine fed arbitrary event
 * sequences decoded from the input, with its safety rules checked inside.
 *
 * The first bytes choose the configuration (force, model check, prerequisites,
 * IMEI, auto upgrade, resume) and maybe a journal to start from; then each byte
 * picks an event: an answer to the command in flight (OK/ERROR/CME/TIMEOUT/
 * PORTLOST/CANCELLED, lines built from tables of plausible and hostile values, or
 * raw bytes), a ^FOTASTATE URC, a parsed state or progress event, a timer, port
 * lost/back, a decision, cancel/pause/resume, an answer carrying a wrong id, or a
 * kill -9 of the host followed by a restart from the last journal written.
 *
 * The harness keeps its own view of the world (what the module said last, which
 * firmware runs, which image was announced, how often AT^FWUP went out for the
 * image on the module) and aborts when:
 *   - AT^FWUP is sent unless the last module state told to this process was 40,
 *     or a second time for the same downloaded image (across restarts; an image
 *     ends when the module says it holds none: 10-14, 20, 90) except the one retry
 *     a restarted process may send (restored from a journal with fwup_sent=1 and
 *     no fwup_retry, none sent by this process, the port up boot_settle s, and a
 *     journal saying fwup_retry=1 before it), never a third, or for a
 *     version not newer than the running one without force, or without a JOURNAL
 *     action before it in the same step;
 *   - a command is sent while another is in flight (no result, no port loss), or
 *     two in one step, or anything after the machine ended;
 *   - a command text would be refused by the AT engine (empty, CR/LF/NUL, too long);
 *   - a journal the machine asks to write does not parse back or cannot be restored;
 *   - actions were dropped, a timer is not finite, progress exceeds 100 %.
 *
 * Modelled assumption: after a run ends in phase done (a deferral keeps its journal),
 * nothing else drives the module's FOTA until the next run (see note_state).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_engine.h"
#include "fota_fsm.h"
#include "fota_journal.h"
#include "fota_parse.h"

#define FZ_CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "fuzz_fsm: invariant failed: " \
    __VA_ARGS__); fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__); abort(); } } while (0)

static const char *const versions[] = {
    "12.815.01.03.00", "12.815.01.04.00", "12.815.01.02.00", "12.815.01.03.00.0",
    "\"12.815.01.05.00\"", "11.0", "99.999999", "abc", "12.815.01.04.00.1", "",
};
#define NVER (sizeof versions / sizeof versions[0])
static const int states[] = {10, 11, 12, 13, 14, 20, 30, 31, 40, 50, 90, 0, 999, 40, 40, 12};
#define NSTATES (sizeof states / sizeof states[0])
static const char *const sizes[] = {"79114", "0", "4000000000", "4000000001", "9999999999", "1"};
static const char *const imeis[] = {"351234567890123", "351234567890999", "12", "\"351234567890123\""};
static const char *const cme_texts[] = {
    "FOTA is in collision state", "previous command not complete", "SIM PIN required",
    "unknown", "operation not allowed", "",
};
static const char *const models[] = {"MU609", "MU509-b", "E3372", "mu509-C "};

typedef struct h {
    hf_fota f;
    hf_fota_actions a;
    hf_fota_config cfg;
    const uint8_t *d;
    size_t n, i;
    double now, timer;
    int pending;
    unsigned long pend_id, last_id;
    char pend[HF_FOTA_TEXT_MAX];
    int reopen_asked;
    /* the world, as the harness saw it */
    int seen_state;              /* last ^FOTASTATE told to this process, -1 none */
    int image_fwups;             /* AT^FWUP for the image on the module (all processes) */
    int retry_used;              /* ... the once-only retry after a restart went out */
    int proc_fwups;              /* AT^FWUP sent by this process */
    int restored_fwup;           /* this process restored a journal: fwup_sent=1, no retry */
    double up_at;                /* this process started or the port came back */
    hf_version running, offer;
    int have_running, have_offer;
    char journal[HF_JOURNAL_TEXT_MAX + 1];
    int journal_len;             /* 0: none written yet */
    unsigned restarts;
} h;

static uint8_t take(h *z)
{
    return z->i < z->n ? z->d[z->i++] : 0;
}

static void note_state(h *z, const hf_fotastate *st)
{
    z->seen_state = st->state;
    /* The documented assumption of a deferral (csrc/fota_fsm.md, "Journal restore"):
     * while a finished run's journal waits (phase done), no other program drives the
     * module's FOTA, so it is not offered another image unwatched. Lines fed to the
     * ended machine then do not change the image the harness believes in. */
    if (hf_fota_terminal(&z->f) && z->f.phase == HF_PH_DONE)
        return;
    /* A module idle, querying, offering, failed a download or upgraded holds no
     * downloaded image: a later 40 is of a new download (by the host or the module's
     * own automatic mode), with its own AT^FWUP allowance. */
    if ((st->state >= 10 && st->state <= 14) || st->state == 20 || st->state == 90)
        z->image_fwups = z->retry_used = 0;
    if (st->state == 12 && st->has_version) {
        z->offer = st->version;
        z->have_offer = 1;
    }
}

static void note_state_line(h *z, const char *line, size_t len)
{
    hf_fotastate st;
    if (hf_is_fotastate(line, len) && hf_parse_fotastate(line, len, &st, NULL) == 0)
        note_state(z, &st);
}

/* A journal the machine asked to write: it must read back and restore. */
static void write_journal(h *z)
{
    hf_fota_snapshot s, back;
    hf_error err;
    hf_fota_snapshot_take(&z->f, &s);
    int len = hf_journal_format(&s, z->journal, sizeof z->journal);
    FZ_CHECK(len > 0, "journal does not fit");
    FZ_CHECK(hf_journal_parse(z->journal, (size_t)len, &back, &err) == 0,
             "the machine wrote a journal it cannot read: %s\n%s", err.msg, z->journal);
    static hf_fota fresh;
    FZ_CHECK(hf_fota_init(&fresh, &z->cfg, &err) == 0, "init");
    FZ_CHECK(hf_fota_restore(&fresh, &back, &err) == 0, "journal not restorable: %s\n%s",
             err.msg, z->journal);
    z->journal_len = len;
}

static void actions(h *z, int after_port_lost)
{
    int sends = 0, journaled = 0;
    FZ_CHECK(z->a.dropped == 0, "%lu actions dropped", z->a.dropped);
    FZ_CHECK(z->a.n <= HF_FOTA_ACTIONS_MAX, "n");
    for (size_t i = 0; i < z->a.n; i++)
        if (z->a.a[i].kind == HF_ACT_JOURNAL) {
            write_journal(z);    /* the snapshot after the step, as the session writes it */
            break;
        }
    for (size_t i = 0; i < z->a.n; i++) {
        hf_fota_action *x = &z->a.a[i];
        switch (x->kind) {
        case HF_ACT_SEND: {
            sends++;
            size_t tl = strnlen(x->text, sizeof x->text);
            FZ_CHECK(tl > 0 && tl < sizeof x->text && tl <= HF_AT_CMD_MAX &&
                     !memchr(x->text, '\r', tl) && !memchr(x->text, '\n', tl),
                     "bad command text \"%s\"", x->text);
            FZ_CHECK(!z->pending || after_port_lost, "%s sent while %s is in flight", x->text,
                     z->pend);
            FZ_CHECK(x->expect >= HF_FOTA_EXPECT_ALL && x->expect <= HF_FOTA_EXPECT_PREFIX &&
                     (x->expect != HF_FOTA_EXPECT_PREFIX || (x->prefix && x->prefix[0])),
                     "expect");
            if (!strcmp(x->text, "AT^FOTADL=1") && z->seen_state == 12)
                z->image_fwups = z->retry_used = 0;   /* a new image replaces the old one */
            if (!strcmp(x->text, "AT^FWUP")) {
                int newer = z->have_offer && z->have_running &&
                            hf_version_compare(&z->offer, &z->running) > 0;
                FZ_CHECK(z->seen_state == 40, "AT^FWUP after state %d", z->seen_state);
                int retry = z->image_fwups == 1 && !z->retry_used && z->proc_fwups == 0 &&
                            z->restored_fwup && z->now - z->up_at >= z->cfg.boot_settle;
                FZ_CHECK(z->image_fwups == 0 || retry, "AT^FWUP number %d for one image "
                         "(restarts %u, retry used %d, this process %d)", z->image_fwups + 1,
                         z->restarts, z->retry_used, z->proc_fwups);
                FZ_CHECK(newer || z->cfg.force, "AT^FWUP to %s over running %s",
                         z->have_offer ? z->offer.text : "?",
                         z->have_running ? z->running.text : "?");
                FZ_CHECK(journaled, "AT^FWUP without a journal before it");
                FZ_CHECK(z->journal_len && strstr(z->journal, "\nfwup_sent=1\n"),
                         "journal before AT^FWUP does not say fwup_sent=1");
                if (z->image_fwups) {
                    FZ_CHECK(strstr(z->journal, "\nfwup_retry=1\n"),
                             "journal before the retried AT^FWUP does not say fwup_retry=1");
                    z->retry_used = 1;
                }
                z->image_fwups++;
                z->proc_fwups++;
            }
            z->pending = 1;
            z->pend_id = x->id;
            z->last_id = x->id;
            memcpy(z->pend, x->text, tl + 1);
            break;
        }
        case HF_ACT_TIMER:
            FZ_CHECK(isfinite(x->at) && x->at >= 0, "timer at %f", x->at);
            z->timer = x->at;
            break;
        case HF_ACT_REOPEN:
            FZ_CHECK(isfinite(x->at), "reopen deadline");
            z->reopen_asked = 1;
            z->pending = 0;      /* the owner closes the port: the engine fails it */
            break;
        case HF_ACT_JOURNAL:
            journaled = 1;
            break;
        case HF_ACT_EMIT:
            FZ_CHECK(x->emit >= HF_EMIT_STATE && x->emit <= HF_EMIT_FAILED, "emit");
            if (x->emit == HF_EMIT_PROGRESS)
                FZ_CHECK(z->f.progress.percent <= 100 &&
                         z->f.progress.done <= z->f.progress.total, "progress %u%%",
                         z->f.progress.percent);
            if (x->emit == HF_EMIT_FAILED || x->emit == HF_EMIT_DONE)
                FZ_CHECK(x->name != NULL, "outcome name");
            break;
        default:
            FZ_CHECK(0, "action kind %d", (int)x->kind);
        }
    }
    FZ_CHECK(sends <= 1, "%d commands in one step", sends);
}

/* FZ_TRACE=1 (replaying one input): every event and action on stderr. */
static int tracing(void)
{
    static int t = -1;
    if (t < 0)
        t = getenv("FZ_TRACE") != NULL;
    return t;
}

static void trace_step(const h *z, const hf_fota_event *ev)
{
    if (ev) {
        int first = ev->nlines && ev->lines && ev->line_lens && ev->lines[0];
        fprintf(stderr, "%8.1f [%s] ev %d %.*s final=%d nlines=%zu%s%.*s\n", z->now,
                hf_fota_phase_name(z->f.phase), (int)ev->kind,
                (int)(ev->line ? ev->line_len : 0), ev->line ? ev->line : "",
                (int)ev->final, ev->nlines, first ? " first=" : "",
                (int)(first ? ev->line_lens[0] : 0), first ? ev->lines[0] : "");
    }
    for (size_t i = 0; i < z->a.n; i++) {
        const hf_fota_action *x = &z->a.a[i];
        if (x->kind == HF_ACT_SEND)
            fprintf(stderr, "          -> send %s\n", x->text);
        else if (x->kind == HF_ACT_JOURNAL)
            fprintf(stderr, "          -> journal (phase %s)\n", hf_fota_phase_name(z->f.phase));
        else if (x->kind == HF_ACT_REOPEN)
            fprintf(stderr, "          -> reopen\n");
        else if (x->kind == HF_ACT_EMIT && (x->emit == HF_EMIT_FAILED || x->emit == HF_EMIT_DONE ||
                                            x->emit == HF_EMIT_PHASE || x->emit == HF_EMIT_STATE))
            fprintf(stderr, "          -> emit %s %ld %s\n", x->name ? x->name : "", x->code, x->text);
    }
}

static void feed(h *z, hf_fota_event *ev)
{
    int was_terminal = hf_fota_terminal(&z->f);
    ev->now = z->now;
    if (ev->kind == HF_EV_PORT_LOST)
        z->pending = 0;          /* the engine fails what was in flight */
    if (ev->kind == HF_EV_PORT_BACK && z->f.port_lost)
        z->up_at = z->now;
    if (ev->kind == HF_EV_RESULT && ev->id == 0 && !ev->command)
        z->pending = 0;          /* matches whatever is in flight */
    hf_fota_feed(&z->f, ev, &z->a);
    if (tracing())
        trace_step(z, ev);
    if (was_terminal)
        for (size_t i = 0; i < z->a.n; i++)
            FZ_CHECK(z->a.a[i].kind != HF_ACT_SEND, "send after the end");
    actions(z, ev->kind == HF_EV_PORT_LOST);
}

static void start(h *z)
{
    z->up_at = z->now;
    z->proc_fwups = 0;
    z->restored_fwup = z->f.restored && z->f.fwup_sent && !z->f.fwup_retry;
    hf_fota_start(&z->f, z->now, &z->a);
    if (tracing()) {
        fprintf(stderr, "%8.1f start (restored %d, phase %s, target %s)\n", z->now,
                z->f.restored, hf_fota_phase_name(z->f.restored_phase),
                z->f.have_target ? z->f.target.text : "-");
        trace_step(z, NULL);
    }
    actions(z, 0);
}

/* ---- answers ---- */

typedef struct lines {
    char buf[8][160];
    const char *p[8];
    size_t len[8];
    size_t n;
} lines;

static void add(lines *l, const char *fmt, const char *a, const char *b)
{
    if (l->n == 8)
        return;
    snprintf(l->buf[l->n], sizeof l->buf[0], fmt, a, b);
    l->p[l->n] = l->buf[l->n];
    l->len[l->n] = strlen(l->buf[l->n]);
    l->n++;
}

static void state_line(h *z, char *out, size_t cap)
{
    uint8_t s = take(z), v = take(z);
    int st = states[s % NSTATES];
    if (st == 12 && !(v & 0x80))
        snprintf(out, cap, "^FOTASTATE: 12,%s,%s,\"Support send SMS background\"",
                 versions[v % NVER], sizes[(v >> 4) % 6]);
    else if ((st == 13 || st == 20) && (v & 1))
        snprintf(out, cap, "^FOTASTATE: %d,%u", st, v);
    else
        snprintf(out, cap, "^FOTASTATE: %d", st);
}

static void answer(h *z, int raw)
{
    uint8_t how = take(z), sel = take(z);
    lines l;
    memset(&l, 0, sizeof l);
    const char *c = z->pend;
    if (raw) {
        size_t len = take(z) % 96;
        if (len > z->n - z->i)
            len = z->n - z->i;
        const char *p = (const char *)z->d + z->i;
        z->i += len;
        while (len && l.n < 8) {     /* LF-separated lines, explicit lengths */
            const char *nl = memchr(p, '\n', len);
            size_t k = nl ? (size_t)(nl - p) : len;
            l.p[l.n] = p;
            l.len[l.n++] = k;
            p += k + (nl != NULL);
            len -= k + (nl != NULL);
        }
    } else if (!strcmp(c, "ATI")) {
        add(&l, "Manufacturer: Huawei%s%s", "", "");
        add(&l, "Model: %s%s", models[sel % 4], "");
        if (!(sel & 0x40))
            add(&l, "Revision: %s%s", versions[(sel >> 2) % NVER], "");
    } else if (!strcmp(c, "AT+GMR")) {
        add(&l, (sel & 0x80) ? "+GMR: %s%s" : "%s%s", versions[sel % NVER], "");
    } else if (!strcmp(c, "AT+CGSN")) {
        add(&l, "%s%s", imeis[sel % 4], "");
    } else if (!strcmp(c, "AT+CPIN?")) {
        add(&l, "+CPIN: %s%s", (sel & 7) ? "READY" : "SIM PIN", "");
    } else if (!strcmp(c, "AT+CREG?") || !strcmp(c, "AT+CGREG?")) {
        char st[4];
        snprintf(st, sizeof st, "%d", (sel & 3) ? 1 : (sel >> 2) % 7);
        add(&l, "%s 0,%s", !strcmp(c, "AT+CREG?") ? "+CREG:" : "+CGREG:", st);
    } else if (!strcmp(c, "AT^FOTASTATE?")) {
        char line[160];
        if (sel & 1) {                     /* a URC slipped in before the answer */
            state_line(z, line, sizeof line);
            add(&l, "%s%s", line, "");
        }
        if (!(sel & 2)) {
            state_line(z, line, sizeof line);
            add(&l, "%s%s", line, "");
        }
    } else if (!strcmp(c, "AT^FOTADLQ")) {
        char a[24], b[24];
        unsigned long done = (unsigned long)take(z) * 1000, total = (unsigned long)(sel & 0x7f) * 2000;
        snprintf(a, sizeof a, "%lu", done);
        snprintf(b, sizeof b, "%lu", total);
        add(&l, "^FOTADLQ: 1,\"IMAGE\",%s,%s", a, b);
        if (sel & 0x80)
            add(&l, "^FOTADLQ: 2,\"XNV\",%s,%s", b, b);
    }
    hf_fota_event ev = {.kind = HF_EV_RESULT, .lines = l.p, .line_lens = l.len, .nlines = l.n};
    switch (how & 7) {
    case 0: case 1: case 2: case 3: ev.final = HF_FF_OK; break;
    case 4: ev.final = HF_FF_ERROR; break;
    case 5:
        ev.final = HF_FF_CME;
        ev.code = (how & 8) ? (long)(how >> 4) : -1;
        ev.text = cme_texts[(how >> 4) % 6];
        ev.text_len = strlen(ev.text);
        break;
    case 6: ev.final = (how & 8) ? HF_FF_TIMEOUT : HF_FF_CANCELLED; break;
    case 7: ev.final = HF_FF_PORTLOST; break;
    }
    /* which command it answers: the one in flight, by id or by text, or a stale one */
    int match = 0;
    switch ((how >> 6) & 3) {
    case 0: case 1: ev.id = z->pend_id; match = z->pending; break;
    case 2: ev.command = z->pend; ev.id = 0; match = z->pending; break;
    case 3: ev.id = z->last_id + 1 + (how & 1); break;   /* never sent */
    }
    if (!z->pending && ev.id == z->pend_id)
        match = 0;
    if (match) {
        z->pending = 0;
        if (ev.final == HF_FF_OK) {
            if (!strcmp(c, "AT^FOTASTATE?")) {
                for (size_t k = 0; k < l.n; k++)
                    note_state_line(z, l.p[k], l.len[k]);
            } else if (!strcmp(c, "ATI") || !strcmp(c, "AT+GMR")) {
                for (size_t k = 0; k < l.n; k++) {
                    const char *s = l.p[k];
                    size_t n = l.len[k];
                    if (!strcmp(c, "ATI")) {
                        if (!hf_has_prefix(s, n, "Revision:"))
                            continue;
                        s += 9, n -= 9;
                    } else if (hf_has_prefix(s, n, "+GMR:")) {
                        s += 5, n -= 5;
                    }
                    hf_version v;
                    if (hf_version_parse(s, n, &v, NULL) == 0) {
                        z->running = v;
                        z->have_running = 1;
                        break;
                    }
                }
            }
        }
    }
    feed(z, &ev);
}

static void restart(h *z)
{
    /* kill -9 and start again from the last journal (or from nothing) */
    hf_error err;
    z->restarts++;
    FZ_CHECK(hf_fota_init(&z->f, &z->cfg, &err) == 0, "init");
    if (z->journal_len) {
        hf_fota_snapshot s;
        FZ_CHECK(hf_journal_parse(z->journal, (size_t)z->journal_len, &s, &err) == 0, "parse");
        FZ_CHECK(hf_fota_restore(&z->f, &s, &err) == 0, "restore: %s", err.msg);
    }
    z->pending = 0;
    z->timer = -1;
    z->reopen_asked = 0;
    z->seen_state = -1;        /* the new process has been told nothing yet */
    z->have_running = 0;       /* ... nor which firmware runs */
    z->now += 5;
    start(z);
}

static void initial_journal(h *z)
{
    uint8_t a = take(z), b = take(z), c = take(z);
    hf_fota_snapshot s;
    memset(&s, 0, sizeof s);
    s.version = HF_FOTA_SNAPSHOT_VERSION;
    s.phase = (hf_fota_phase)(a % HF_PH_COUNT);
    snprintf(s.from_version, sizeof s.from_version, "%s", (b & 1) ? "12.815.01.03.00" : "");
    if (b & 2) {
        const char *t = versions[(b >> 2) % NVER];
        hf_version v;
        if (hf_version_parse(t, strlen(t), &v, NULL) == 0) {
            snprintf(s.target_version, sizeof s.target_version, "%s", v.text);
            z->offer = v;          /* the image an earlier run saw announced */
            z->have_offer = 1;
        }
    }
    s.size = 79114;
    s.image_verified = (c & 1);
    s.fwup_sent = (c & 2) && s.image_verified;
    s.fwup_retry = (c & 0x20) && s.fwup_sent;
    s.image_seq = (c >> 2) & 3;
    snprintf(s.imei, sizeof s.imei, "%s", (c & 0x10) ? imeis[0] : "");
    s.started_at = 100;
    s.phase_at = 100;
    z->journal_len = hf_journal_format(&s, z->journal, sizeof z->journal);
    FZ_CHECK(z->journal_len > 0, "format");
    if (s.fwup_sent)
        z->image_fwups = 1;    /* the journal says the image on the module was used */
    if (s.fwup_retry) {
        z->image_fwups = 2;    /* ... twice: the retry after a restart too */
        z->retry_used = 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static h z0;
    h *z = &z0;
    memset(z, 0, sizeof *z);
    z->d = data;
    z->n = size;
    z->now = 100;
    z->timer = -1;
    z->seen_state = -1;

    uint8_t c0 = take(z), c1 = take(z);
    hf_fota_config_default(&z->cfg);
    z->cfg.force = (c0 & 1);
    z->cfg.skip_model_check = (c0 >> 1) & 1;
    z->cfg.check_prereq = (c0 >> 2) & 1;
    z->cfg.read_imei = (c0 >> 3) & 1;
    if (c0 & 0x10) {
        z->cfg.has_mode = 1;
        z->cfg.mode.auto_upgrade = (c1 & 1);
        z->cfg.mode.auto_download = (c1 >> 1) & 1;
        z->cfg.mode.resume = (c1 >> 2) & 1;
        z->cfg.resume = z->cfg.mode.resume;
        z->cfg.mode.has_period = (c1 >> 3) & 1;
        z->cfg.mode.period = c1;
    }
    if (c0 & 0x20) {
        z->cfg.has_cfg = 1;
        strcpy(z->cfg.apn, "internet");
        z->cfg.auth = c1 % 3;
    }
    z->cfg.cmd_retries = (c1 >> 4) & 3;
    z->cfg.max_redetect = (c1 >> 6) & 3;
    hf_error err;
    FZ_CHECK(hf_fota_init(&z->f, &z->cfg, &err) == 0, "init: %s", err.msg);
    if (c0 & 0x40) {
        initial_journal(z);
        z->restarts--;       /* not a kill: the first start */
        restart(z);
    } else {
        start(z);
    }

    unsigned steps = 0;
    while (z->i < z->n && steps++ < 3000) {
        uint8_t op = take(z);
        hf_fota_event ev;
        memset(&ev, 0, sizeof ev);
        switch (op % 20) {
        case 0: case 1: case 2: case 3: case 4: case 5:
            z->now += 0.2;
            answer(z, 0);
            break;
        case 6: case 7: {            /* ^FOTASTATE as a URC */
            char line[160];
            state_line(z, line, sizeof line);
            note_state_line(z, line, strlen(line));
            ev.kind = HF_EV_URC;
            ev.line = line;
            ev.line_len = strlen(line);
            feed(z, &ev);
            break;
        }
        case 8: case 9: {            /* time passes: to the timer, or a little */
            uint8_t t = take(z);
            if ((t & 1) && z->timer > z->now)
                z->now = z->timer;
            else
                z->now += (double)(t >> 1) * 0.5;
            ev.kind = HF_EV_TIMER;
            feed(z, &ev);
            break;
        }
        case 10:
            ev.kind = HF_EV_PORT_LOST;
            feed(z, &ev);
            break;
        case 11:
            z->reopen_asked = 0;
            z->now += 1;
            ev.kind = HF_EV_PORT_BACK;
            feed(z, &ev);
            break;
        case 12:
            ev.kind = HF_EV_DECISION;
            ev.decision = (hf_fota_decision)(take(z) % 6);
            feed(z, &ev);
            break;
        case 13: {
            uint8_t k = take(z) % 3;
            ev.kind = k == 0 ? HF_EV_CANCEL : k == 1 ? HF_EV_PAUSE : HF_EV_RESUME;
            feed(z, &ev);
            break;
        }
        case 14: {                   /* an already parsed state */
            char line[160];
            hf_fotastate st;
            state_line(z, line, sizeof line);
            if (hf_parse_fotastate(line, strlen(line), &st, NULL) == 0) {
                note_state(z, &st);
                ev.kind = HF_EV_STATE;
                ev.state = &st;
                feed(z, &ev);
            }
            break;
        }
        case 15: {                   /* an already parsed progress list */
            hf_fotadlq files[HF_FOTA_FILES_MAX + 2];
            size_t nf = take(z) % (HF_FOTA_FILES_MAX + 3);
            memset(files, 0, sizeof files);
            for (size_t k = 0; k < nf; k++) {
                files[k].index = (unsigned)k + 1;
                /* 64-bit arithmetic: the same input means the same sizes on every CPU */
                files[k].done = (unsigned long long)take(z) * 100000000ULL;
                files[k].total = (unsigned long long)take(z) * 100000000ULL;
            }
            ev.kind = HF_EV_PROGRESS;
            ev.files = files;
            ev.nfiles = nf;
            feed(z, &ev);
            break;
        }
        case 16: {                   /* raw bytes as a URC */
            size_t len = take(z) % 64;
            if (len > z->n - z->i)
                len = z->n - z->i;
            ev.kind = HF_EV_URC;
            ev.line = (const char *)z->d + z->i;
            ev.line_len = len;
            note_state_line(z, ev.line, len);
            z->i += len;
            feed(z, &ev);
            break;
        }
        case 17:
            answer(z, 1);
            break;
        case 18:
            if (take(z) & 1)
                restart(z);
            break;
        case 19: {                   /* an event kind out of range, or with no payload */
            uint8_t k = take(z);
            ev.kind = (hf_fota_event_kind)(k % (HF_EV_COUNT + 2));
            ev.nlines = 3;           /* lines NULL: must not be dereferenced */
            feed(z, &ev);
            break;
        }
        }
    }
    return 0;
}
