/*
 * fota_fsm.c — the FOTA state machine (see fota_fsm.h): a table of phases, each
 * with its entry action, poll, deadline and handlers; commands run one at a time
 * from a short per-phase script, each driven by its row of the command table
 * (fota_cmds.c: text, answer, timeout and refusal rules); every AT^FWUP goes through
 * one safety gate.
 */
#include "fota_fsm.h"

#include "fota_journal.h"

#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define EV_BIT(k) (1u << (k))
#define NO_TIME (-1.0)

/* ---- commands: the rows of fota_cmds.c ------------------------------------------------ */

const char *hf_fota_cmd_name(hf_fota_cmd cmd)
{
    return hf_fota_cmd_get(cmd)->text;
}

/* ---- the phase table ---------------------------------------------------------------- */

typedef struct phase_def {
    const char *name;
    void (*enter)(hf_fota *f);
    void (*on_state)(hf_fota *f, const hf_fotastate *st);  /* NULL: just recorded */
    void (*on_done)(hf_fota *f);        /* the phase's command script finished */
    void (*on_poll)(hf_fota *f);        /* poll due and no command in flight */
    double (*poll_every)(const hf_fota *f);  /* NULL: no polling */
    size_t deadline_off;                /* offsetof(hf_fota_config, ...) or NO_DEADLINE */
    const char *deadline_code;
    const char *deadline_msg;           /* "%.0f" gets the seconds */
    void (*on_deadline)(hf_fota *f);    /* NULL: fail with deadline_code/msg */
    void (*on_port_lost)(hf_fota *f);
    unsigned accepts;                   /* EV_BIT of the event kinds handled */
    int journal;                        /* persist on entry */
} phase_def;

#define NO_DEADLINE ((size_t)-1)

static const phase_def phases[HF_PH_COUNT];

static const phase_def *def(const hf_fota *f)
{
    return &phases[f->phase];
}

const char *hf_fota_phase_name(hf_fota_phase p)
{
    return (unsigned)p < HF_PH_COUNT ? phases[p].name : "unknown";
}

int hf_fota_phase_from_name(const char *name, size_t len)
{
    for (int i = 0; i < HF_PH_COUNT; i++)
        if (strlen(phases[i].name) == len && memcmp(phases[i].name, name, len) == 0)
            return i;
    return -1;
}

int hf_fota_terminal(const hf_fota *f)
{
    return f->phase == HF_PH_DONE || f->phase == HF_PH_FAILED;
}

/* ---- actions ------------------------------------------------------------------------ */

static hf_fota_action *push(hf_fota *f, hf_fota_action_kind kind)
{
    hf_fota_actions *o = f->out;
    if (o->n == HF_FOTA_ACTIONS_MAX) {
        o->dropped++;
        return NULL;
    }
    hf_fota_action *a = &o->a[o->n++];
    memset(a, 0, sizeof *a);
    a->kind = kind;
    a->code = -1;
    return a;
}

static hf_fota_action *emit(hf_fota *f, hf_fota_emit e, const char *name, long code)
{
    hf_fota_action *a = push(f, HF_ACT_EMIT);
    if (a) {
        a->emit = e;
        a->name = name;
        a->code = code;
    }
    return a;
}

static void notice(hf_fota *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notice(hf_fota *f, const char *fmt, ...)
{
    hf_fota_action *a = emit(f, HF_EMIT_NOTICE, "notice", -1);
    if (!a)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->text, sizeof a->text, fmt, ap);
    va_end(ap);
}

static void journal(hf_fota *f)
{
    if (!f->foreign)        /* the journal describes our module, not the one on the port */
        push(f, HF_ACT_JOURNAL);
}

static void enter(hf_fota *f, hf_fota_phase p);
static void port_back_continue(hf_fota *f);

/* Terminal failure: what failed, a message a person can act on, the module's code. */
static void fail(hf_fota *f, const char *code, long module_code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail(hf_fota *f, const char *code, long module_code, const char *fmt, ...)
{
    if (hf_fota_terminal(f))
        return;
    hf_fota_action *a = emit(f, HF_EMIT_FAILED, code, module_code);
    if (a) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(a->text, sizeof a->text, fmt, ap);
        va_end(ap);
    }
    f->fail_code = code;
    f->failed_in = f->phase;
    if (strcmp(code, "EIDENTITY") == 0)
        f->foreign = 1;
    enter(f, HF_PH_FAILED);
}

/* A failure the module reported with an error code (13, 20): its meaning from the
 * protocol reference's table, then what to do (advice may be NULL). */
static void fail_reported(hf_fota *f, const char *code, long module_code, const char *what,
                          const char *advice)
{
    fail(f, code, module_code, "%s: code %ld (%s)%s%s", what, module_code,
         hf_fota_error_meaning(module_code), advice ? "; " : "", advice ? advice : "");
}

static void finish(hf_fota *f, const char *outcome)
{
    if (hf_fota_terminal(f))
        return;
    f->outcome = outcome;
    emit(f, HF_EMIT_DONE, outcome, -1);
    enter(f, HF_PH_DONE);
}

/* ---- sending ------------------------------------------------------------------------ */

static int version_newer(const hf_fota *f)
{
    return f->have_target && f->have_running &&
           hf_version_compare(&f->target, &f->running) > 0;
}

/* A bare 12 continues a download the policy approved only while its target is still
 * newer than what runs (or force): a module that upgraded meanwhile (fault campaign
 * seed 6985: host killed in 40, the module's automatic upgrade, the server offering
 * the same version again) must not download the version it runs. */
static int resume_approved(const hf_fota *f)
{
    return f->dl_approved && (f->cfg.force || version_newer(f));
}

/* The one gate every AT^FWUP passes: state 40 read last, never sent before for this
 * image, and a newer (or forced) target. */
static int fwup_allowed(const hf_fota *f)
{
    return f->last_state == 40 && (!f->fwup_sent || f->fwup_again) && f->image_verified &&
           (f->cfg.force || version_newer(f));
}

/* The mode to send: the caller's, else 0,0,<auto_upgrade_ok>,<resume>; resumable
 * transfer on whenever a pending download (31) is to continue (guide 2.3.3). */
static hf_fotamode mode_to_send(const hf_fota *f)
{
    const hf_fota_config *g = &f->cfg;
    hf_fotamode m;
    if (g->has_mode) {
        m = g->mode;
    } else {
        memset(&m, 0, sizeof m);
        m.auto_upgrade = g->auto_upgrade_ok;
        m.resume = g->resume;
    }
    if (f->phase == HF_PH_DOWNLOAD && f->last_state == 31)
        m.resume = 1;
    return m;
}

/* The parameters of the built commands: the configuration's, and the mode to send. */
static int build_text(hf_fota *f, hf_fota_cmd c, char *dst, size_t cap, hf_error *err)
{
    const hf_fota_config *g = &f->cfg;
    if (c == HF_CMD_FOTAMODE)
        f->mode_now = mode_to_send(f);
    hf_fota_cmd_params p = {.apn = g->apn, .user = g->user, .password = g->password,
                            .auth = g->auth, .mode = f->mode_now};
    return hf_fota_cmd_text(c, &p, dst, cap, err);
}

static void send_cmd(hf_fota *f, hf_fota_cmd c, int in_script)
{
    if (f->cmd != HF_CMD_NONE) {
        /* one command at a time: this one goes out when the answer in flight is in */
        f->next_cmd = c;
        f->next_in_script = in_script;
        return;
    }
    const hf_fota_cmd_def *r = hf_fota_cmd_get(c);
    if (r->changes_state && !f->identity_ok) {
        /* the second gate: the port came back (or the run resumed a journal) and no
         * IMEI confirmed that it is still our module (read_imei off, or a journal
         * without an IMEI): only queries may go to it */
        fail(f, "EIDENTITY", -1, "refusing %s: the identity of the module on the port was "
             "not confirmed since it %s (no IMEI to compare: read_imei is off or the "
             "journal has none); check which module is on the port and run again",
             hf_fota_cmd_name(c), f->restored && !f->identity_since_back ?
             "was resumed from the journal" : "came back");
        return;
    }
    if (c == HF_CMD_FWUP) {
        if (!fwup_allowed(f)) {
            fail(f, "ESAFETY", -1, "refusing AT^FWUP: state %d, image %s, %s", f->last_state,
                 f->fwup_sent ? "already sent AT^FWUP" : "not yet sent",
                 version_newer(f) ? "newer target" : "target not newer");
            return;
        }
        /* persisted before the command is written: a crash right after the write
         * must never lead to a second AT^FWUP (nor to a third, after the one retry) */
        if (f->fwup_again) {
            f->fwup_again = 0;
            f->fwup_retry = 1;
        }
        f->fwup_sent = 1;
        f->fwup_count++;
        journal(f);
    }
    char text[HF_FOTA_TEXT_MAX];
    hf_error err;
    if (build_text(f, c, text, sizeof text, &err) < 0) {
        fail(f, err.code, -1, "cannot build %s: %s", r->text, err.msg);   /* init checked it */
        return;
    }
    hf_fota_action *a = push(f, HF_ACT_SEND);
    if (!a)
        return;
    f->cmd = c;
    f->cmd_in_script = in_script;
    f->cmd_gen = f->gen;
    f->cmd_id = ++f->next_id;
    a->id = f->cmd_id;
    a->name = hf_fota_cmd_name(c);
    a->expect = r->expect;
    a->prefix = r->prefix;
    hf_strlcpy(a->text, sizeof a->text, text);
    hf_strlcpy(f->cmd_text, sizeof f->cmd_text, text);
}

static void script(hf_fota *f, const hf_fota_cmd *list, size_t n)
{
    f->nscript = 0;
    for (size_t i = 0; i < n && f->nscript < sizeof f->script / sizeof f->script[0]; i++)
        if (list[i] != HF_CMD_NONE)
            f->script[f->nscript++] = list[i];
    f->step = 0;
}

/* Send the next command of the phase's script, or report the script finished. */
static void script_next(hf_fota *f)
{
    while (f->step < f->nscript) {
        hf_fota_cmd c = f->script[f->step++];
        /* after a reset the 90 often arrives on its own: no need to ask */
        if (c == HF_CMD_STATE && f->phase == HF_PH_VERIFY && f->state_seen_since_back)
            continue;
        /* the IMEI was confirmed when the port came back: no need to ask again */
        if (c == HF_CMD_CGSN && f->phase == HF_PH_VERIFY && f->identity_since_back)
            continue;
        send_cmd(f, c, 1);
        return;
    }
    f->nscript = 0;
    if (def(f)->on_done)
        def(f)->on_done(f);
}

static void run_script(hf_fota *f, const hf_fota_cmd *list, size_t n)
{
    script(f, list, n);
    script_next(f);
}

/* ---- phase changes and timers ------------------------------------------------------- */

static void enter(hf_fota *f, hf_fota_phase p)
{
    f->phase = p;
    f->phase_at = f->now;
    f->gen++;
    f->nscript = 0;
    f->next_cmd = HF_CMD_NONE;   /* a command queued for the old phase is not wanted now */
    f->confirming = 0;           /* a deadline moved on: the send gate still holds */
    f->next_poll = NO_TIME;
    f->deadline = NO_TIME;
    f->deadline_deferred = 0;    /* the new phase has its own deadline */
    const phase_def *d = def(f);
    if (d->deadline_off != NO_DEADLINE) {
        double secs;
        memcpy(&secs, (const char *)&f->cfg + d->deadline_off, sizeof secs);
        f->deadline = f->now + secs;
    }
    emit(f, HF_EMIT_PHASE, d->name, -1);
    if (d->journal)
        journal(f);
    if (d->enter)
        d->enter(f);
}

/* Arm the poll when idle, and tell the owner when the next wake-up moved. */
static void update_timer(hf_fota *f)
{
    const phase_def *d = def(f);
    if (hf_fota_terminal(f)) {
        f->deadline = f->next_poll = NO_TIME;
    } else if (f->cmd == HF_CMD_NONE && f->next_poll < 0 && d->poll_every && !f->port_lost) {
        double every = d->poll_every(f);
        if (every > 0)
            f->next_poll = f->now + every;
    }
    double t = f->deadline;
    if (f->next_poll >= 0 && (t < 0 || f->next_poll < t))
        t = f->next_poll;
    if (t >= 0 && t != f->timer_at) {
        hf_fota_action *a = push(f, HF_ACT_TIMER);
        if (a)
            a->at = t;
    }
    f->timer_at = t;
}

static void reopen(hf_fota *f)
{
    f->port_lost = 1;
    /* whatever answers on the path from now on is not known to be our module until
     * AT+CGSN confirms it after PORT_BACK: the send gate closes at the loss, not only
     * when the port is back (the driver's reopen may pass a URC before PORT_BACK) */
    f->identity_ok = 0;
    f->cmd = HF_CMD_NONE;   /* the engine fails it; its late result is not ours any more */
    f->next_poll = NO_TIME;
    hf_fota_action *a = push(f, HF_ACT_REOPEN);
    if (a)
        a->at = f->deadline >= 0 ? f->deadline : f->now + f->cfg.reboot_timeout;
}

/* ---- module state bookkeeping ---------------------------------------------------------- */

static void set_target_from(hf_fota *f, const hf_fotastate *st)
{
    int changed = !f->have_target || hf_version_compare(&f->target, &st->version) != 0;
    f->target = st->version;
    f->have_target = 1;
    f->size = st->size;
    hf_strlcpy(f->desc, sizeof f->desc, st->desc);
    if (changed || !f->announced) {
        f->announced = 1;
        emit(f, HF_EMIT_NEW_VERSION, "new_version", (long)st->size);
    }
    /* the journal must name the image now on offer: a restart from an older journal
     * would judge the downloaded image by a version it is not (downgrade after a crash) */
    if (changed)
        journal(f);
}

/* Every ^FOTASTATE (URC or query answer) passes here, then goes to the phase. */
static void record_state(hf_fota *f, const hf_fotastate *st)
{
    int changed = st->state != f->last_state || st->error_code != f->last_state_code;
    f->last_state = st->state;
    f->last_state_code = st->error_code;
    f->last_state_at = f->now;
    f->state_seen_since_back = 1;
    f->parse_errors = 0;
    if (changed)
        emit(f, HF_EMIT_STATE, hf_fota_state_name(st->state), st->state);
    if (st->state == 12 && st->has_version)
        set_target_from(f, st);
    if (st->state == 40)
        f->image_verified = 1;
}

static void handle_state(hf_fota *f, const hf_fotastate *st)
{
    record_state(f, st);
    if (def(f)->on_state)
        def(f)->on_state(f, st);
}

/* ---- phase: probe --------------------------------------------------------------------- */

static void probe_enter(hf_fota *f)
{
    /* a restored IMEI is always compared: it is how a restart knows the module */
    hf_fota_cmd list[] = {f->cfg.skip_model_check ? HF_CMD_GMR : HF_CMD_ATI,
                          f->cfg.read_imei || f->imei[0] ? HF_CMD_CGSN : HF_CMD_NONE};
    run_script(f, list, 2);
}

static int check_model(hf_fota *f)
{
    if (f->cfg.skip_model_check)
        return 0;
    /* the integrator's rows first (the longest key that matches), then the table */
    const char *row = NULL, *min_text = NULL;
    size_t best = 0;
    for (size_t i = 0; i < f->cfg.nmodels && i < HF_FOTA_MODELS_MAX; i++) {
        size_t kl = strlen(f->cfg.models[i].model);
        if (kl > best && hf_model_key_matches(f->cfg.models[i].model, f->model, strlen(f->model))) {
            best = kl;
            row = f->cfg.models[i].model;
            min_text = f->cfg.models[i].min_firmware;
        }
    }
    if (!row) {
        const hf_model_entry *m = hf_model_match(f->model, strlen(f->model),
                                                 f->have_running ? &f->running : NULL);
        if (m) {
            row = m->model;
            min_text = m->min_firmware;
        }
    }
    if (!row) {
        fail(f, "EUNSUPPORTED", -1, "module model \"%s\" is not in the FOTA support table; "
             "if Huawei confirmed FOTA for it, add it with its minimum firmware (option "
             "models = {[\"%s\"] = \"<version>\"}, hwfota --allow-model MODEL=VERSION)",
             f->model, f->model);
        return -1;
    }
    hf_version min;
    if (hf_version_parse(min_text, strlen(min_text), &min, NULL) == 0 &&
        hf_version_compare(&f->running, &min) < 0) {
        fail(f, "EUNSUPPORTED", -1, "firmware %s of %s (table row %s) is below %s, the "
             "minimum for FOTA; update it by other means, or, if Huawei agreed FOTA from "
             "this version, extend the table (option models, hwfota --allow-model %s=%s)",
             f->running.text, f->model, row, min_text, row, f->running.text);
        return -1;
    }
    return 0;
}

static void probe_done(hf_fota *f)
{
    emit(f, HF_EMIT_INFO, "info", -1);
    if (!f->have_from) {
        f->from = f->running;
        f->have_from = 1;
    }
    if (check_model(f) < 0)
        return;
    if (f->restored)
        enter(f, HF_PH_CONFIGURE);   /* journal resume: read the state, no setup */
    else
        enter(f, f->cfg.check_prereq ? HF_PH_PREPARE : HF_PH_CONFIGURE);
}

/* ---- phase: prepare, configure ------------------------------------------------------- */

static void prepare_enter(hf_fota *f)
{
    hf_fota_cmd list[] = {HF_CMD_CPIN, HF_CMD_CREG, HF_CMD_CGREG};
    run_script(f, list, 3);
}

static void prepare_done(hf_fota *f)
{
    enter(f, HF_PH_CONFIGURE);
}

static void configure_enter(hf_fota *f)
{
    /* after a journal restore the module may be mid-upgrade: only read its state */
    int setup = !f->restored;
    hf_fota_cmd list[] = {setup && f->cfg.has_cfg ? HF_CMD_FOTACFG : HF_CMD_NONE,
                          setup && f->cfg.has_mode ? HF_CMD_FOTAMODE : HF_CMD_NONE,
                          HF_CMD_STATE};
    run_script(f, list, 3);
}

static void verify_evaluate(hf_fota *f);
static void discard_then_fail(hf_fota *f, const char *code, long module_code,
                              const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The module is past the offer (downloading, paused, downloaded, upgrading): enter
 * the phase that carries on from its state and return 1; 0 for any other state.
 * Shared by the start of a run and the return of the port during a download. */
static int enter_download_side(hf_fota *f, int st)
{
    switch (st) {
    case 30:
        enter(f, HF_PH_DOWNLOAD);
        return 1;
    case 31:
        f->want_dl_start = 1;   /* paused or interrupted: resume it */
        enter(f, HF_PH_DOWNLOAD);
        return 1;
    case 40:
        enter(f, HF_PH_DOWNLOADED);
        return 1;
    case 50:
        enter(f, HF_PH_REBOOT);
        return 1;
    default:
        return 0;
    }
}

/* The results of an operation: query failed (13), no new version (14), download
 * failed (20), upgraded (90) or an upgrade failure (>= 60). The guide says 13/14/20
 * return to idle; a module may keep reporting any of them until AT^FOTADL=0. */
static int end_state(int st)
{
    return st == 13 || st == 14 || st == 20 || st >= 60;
}

/* AT^FOTADL=0, wait for 10, then detect; once per run. */
static void clear_end_state(hf_fota *f)
{
    f->end_cleared = 1;
    f->clearing_end = 1;
    f->redetect = 1;
    enter(f, HF_PH_DISCARD);
}

/* Where to go from the module's FOTA state (after configure or a journal restore). */
static void dispatch(hf_fota *f)
{
    int st = f->last_state;
    int was_upgrading = f->restored && (f->restored_phase == HF_PH_REBOOT ||
                                        f->restored_phase == HF_PH_VERIFY);
    if (f->fwup_sent || was_upgrading || (st == 90 && f->restored && f->image_verified)) {
        /* never AT^FWUP again: read the result of the upgrade instead */
        if (st == 50)
            enter(f, HF_PH_REBOOT);
        else
            verify_evaluate(f);
        return;
    }
    switch (st) {
    case 10:
        enter(f, HF_PH_DETECT);
        break;
    case 11:
        f->detect_wait_only = 1;   /* already querying: wait for its result */
        enter(f, HF_PH_DETECT);
        break;
    case 12:
        if (resume_approved(f)) {
            /* the policy already said download (a journal from the download on). Not
             * after discard, done or failed (a refused, rejected or deferred offer):
             * those decide again; nor when the module runs that version by now (it
             * upgraded while no host watched): decide_download refuses it as not newer. */
            f->want_dl_start = 1;
            enter(f, HF_PH_DOWNLOAD);
        } else if (!f->have_target && !f->cfg.force &&
                   f->detect_attempts <= f->cfg.max_redetect) {
            /* found by an earlier query whose 12 we did not see (host restarted):
             * AT^FOTASTATE? does not repeat the version, and an image of unknown
             * version could never be applied (ENOTARGET). Back to idle, ask again. */
            notice(f, "the module holds an offer of unknown version: AT^FOTADL=0, then "
                   "detect again to learn it");
            f->redetect = 1;
            enter(f, HF_PH_DISCARD);
        } else {
            enter(f, HF_PH_DECIDE_DOWNLOAD);
        }
        break;
    default:
        if (enter_download_side(f, st))
            break;
        if (end_state(st)) {
            /* the result of an earlier operation, which the module may keep reporting
             * (and refuse AT^FOTADET in): detection is for 10, so clear it first */
            notice(f, "the module still reports state %d (%s) from an earlier operation: "
                   "AT^FOTADL=0 to bring it back to idle before detecting", st,
                   hf_fota_state_name(st));
            clear_end_state(f);
            break;
        }
        fail(f, "EMODULE", st, "module reports FOTA state %d (%s), which hwfota does not "
             "handle; bring it back to idle with AT^FOTADL=0 and retry", st,
             hf_fota_state_name(st));
    }
}

/* ---- phase: detect ------------------------------------------------------------------- */

static void detect_enter(hf_fota *f)
{
    f->saw_querying = f->detect_wait_only;
    f->detect_attempts++;
    /* A new query may bring another offer: the version known so far (restored, or of
     * an offer lost since) must not be taken for it when its 12 comes without one. */
    f->have_target = 0;
    f->announced = 0;
    f->dl_approved = 0;
    if (!f->detect_wait_only) {
        hf_fota_cmd list[] = {HF_CMD_FOTADET};
        run_script(f, list, 1);
    }
    f->detect_wait_only = 0;
}

static void detect_state(hf_fota *f, const hf_fotastate *st)
{
    switch (st->state) {
    case 11:
        f->saw_querying = 1;
        break;
    case 12:
        enter(f, HF_PH_DECIDE_DOWNLOAD);
        break;
    case 13:
        fail_reported(f, "EDETECT", st->error_code, "the version query failed", "check the "
                      "AT^FOTACFG APN/user/password, then whether the module can make a "
                      "data connection");
        break;
    case 14:
        finish(f, "no_new_version");
        break;
    case 10:
        if (f->saw_querying)
            fail(f, "EDETECT", -1, "the version query ended without a result (11 -> 10): "
                 "check the APN and the server registration of this module (IMEI)");
        break;
    case 30: case 31: case 40: case 50:
        dispatch(f);   /* the module went ahead on its own (automatic mode) */
        break;
    default:
        break;
    }
}

static double poll_state_every(const hf_fota *f)
{
    return f->cfg.poll_interval;
}

static void poll_state(hf_fota *f)
{
    send_cmd(f, HF_CMD_STATE, 0);
}

/* ---- phase: decide_download -------------------------------------------------------- */

static void decide_download_enter(hf_fota *f)
{
    if (!f->have_target && !f->cfg.force) {
        /* the 12 with the version was lost (URC dropped or garbled): an image of
         * unknown version could not be checked as newer, so never download it */
        /* either way the offer is dropped (AT^FOTADL=0) so the module is left idle */
        f->unseen_offers++;
        if (f->detect_attempts <= f->cfg.max_redetect) {
            notice(f, "a new version was announced but its version was not seen: "
                   "AT^FOTADL=0, then detect again to learn it");
            f->redetect = 1;
        }
        enter(f, HF_PH_DISCARD);
        return;
    }
    if (f->have_target && f->have_running && !f->cfg.force &&
        hf_version_compare(&f->target, &f->running) <= 0) {
        notice(f, "the server offers %s, not newer than the running %s: refused (force "
               "overrides)", f->target.text, f->running.text);
        f->outcome = "not_newer";
        enter(f, HF_PH_DISCARD);
        return;
    }
    emit(f, HF_EMIT_DECISION, "download", -1);
}

static void decide_download_state(hf_fota *f, const hf_fotastate *st)
{
    if (st->state == 30) {
        enter(f, HF_PH_DOWNLOAD);   /* automatic download */
    } else if (st->state == 10 || st->state == 13 || st->state == 14) {
        fail(f, "EDETECT", st->error_code, "the module dropped the offered version (state "
             "%d); run the detection again", st->state);
    }
}

/* ---- phase: download, paused, recover ---------------------------------------------- */

/* AT^FOTADL=1, preceded by AT^FOTAMODE unless one went out since the port opened
 * (with resumable transfer on when a pending download is to continue): after a boot
 * the module continues the remained data only once AT^FOTAMODE enabled it (guide
 * 2.3.3). A first start right after configure's AT^FOTAMODE sends none again. */
static void dl_start(hf_fota *f)
{
    int resuming = f->last_state == 31;
    int need = !f->mode_sent || (resuming && !f->mode_resume);
    hf_fota_cmd list[] = {need ? HF_CMD_FOTAMODE : HF_CMD_NONE, HF_CMD_DL_START};
    run_script(f, list, 2);
}

static void download_enter(hf_fota *f)
{
    f->progress_at = f->now;
    f->dl_interval = f->cfg.dl_poll;
    f->resume_due = NO_TIME;
    if (f->want_dl_start || f->last_state == 12 || f->last_state == 31) {
        if (f->last_state == 12) {     /* a new image: its own AT^FWUP allowance */
            f->image_seq++;
            f->fwup_sent = 0;
            f->fwup_retry = f->fwup_again = 0;
            f->image_verified = 0;
        }
        f->last_resume_at = f->now;
        dl_start(f);
    }
    f->want_dl_start = 0;
}

static void download_deadline_push(hf_fota *f)
{
    f->deadline = f->progress_at + f->cfg.stall_timeout;
}

static void download_state(hf_fota *f, const hf_fotastate *st)
{
    switch (st->state) {
    case 31:
        if (f->pause_requested) {
            enter(f, HF_PH_PAUSED);
        } else if (f->now - f->last_resume_at >= f->cfg.resume_interval &&
                   f->cmd == HF_CMD_NONE) {
            f->last_resume_at = f->now;
            f->resume_attempts++;
            dl_start(f);
        } else {
            f->resume_due = f->last_resume_at + f->cfg.resume_interval;
        }
        break;
    case 12:
        if (f->now - f->last_resume_at >= f->cfg.resume_interval && f->cmd == HF_CMD_NONE) {
            f->last_resume_at = f->now;
            dl_start(f);
        }
        break;
    case 40:
        enter(f, HF_PH_DOWNLOADED);
        break;
    case 20:
        fail_reported(f, "EDOWNLOAD", st->error_code, "download failed",
                      "the module deleted the partial file");
        break;
    case 10:
        fail(f, "EDOWNLOAD", -1, "the module went back to idle during the download (its "
             "failure report was lost?); detect again");
        break;
    case 50:
        enter(f, HF_PH_REBOOT);
        break;
    default:
        break;
    }
}

static double download_every(const hf_fota *f)
{
    return f->dl_interval;
}

static void download_poll(hf_fota *f)
{
    if (f->resume_due >= 0 && f->now >= f->resume_due && f->last_state == 31) {
        f->resume_due = NO_TIME;
        f->last_resume_at = f->now;
        f->resume_attempts++;
        dl_start(f);
    } else if (f->now - f->last_state_at >= f->cfg.state_poll) {
        send_cmd(f, HF_CMD_STATE, 0);   /* URCs may be silenced (AT^CURC=0) or lost */
    } else {
        send_cmd(f, HF_CMD_DLQ, 0);
    }
}

static void download_port_lost(hf_fota *f)
{
    enter(f, HF_PH_RECOVER);
}

static void paused_state(hf_fota *f, const hf_fotastate *st)
{
    if (st->state == 30 || st->state == 40 || st->state == 20 || st->state == 50) {
        f->pause_requested = 0;
        enter(f, HF_PH_DOWNLOAD);
        download_state(f, st);
    }
}

static void recover_enter(hf_fota *f)
{
    reopen(f);
}

/* The port is back after a loss during the download: what survived? */
static void recover_done(hf_fota *f)
{
    if (enter_download_side(f, f->last_state))
        return;
    switch (f->last_state) {
    case 12:
        /* the offer survived, its download did not start: start it — if it is the
         * offer the policy approved. A 12 after AT^FWUP, or in a run that approved
         * nothing, is another offer whose version this bare state does not tell. */
        if (resume_approved(f) && !f->fwup_sent) {
            f->want_dl_start = 1;
            enter(f, HF_PH_DOWNLOAD);
        } else {
            dispatch(f);
        }
        break;
    case 90:   /* the whole delta was in: the module upgraded at boot */
        enter(f, HF_PH_VERIFY);
        break;
    case 20:
        fail_reported(f, "EDOWNLOAD", f->last_state_code, "download failed", NULL);
        break;
    case 10: case 13: case 14:
        notice(f, "the module lost the partial download (%s): the download restarted from "
               "zero", f->cfg.resume ? "resumable transfer did not survive" :
               "resumable transfer is off");
        if (f->detect_attempts > f->cfg.max_redetect)
            fail(f, "EDOWNLOAD", -1, "the download was lost %u times; giving up",
                 f->detect_attempts);
        else
            enter(f, HF_PH_DETECT);
        break;
    default:
        fail(f, "EMODULE", f->last_state, "unexpected FOTA state %d after the port came back",
             f->last_state);
    }
}

/* ---- phase: downloaded, decide_upgrade, upgrade ---------------------------------- */

/* Automatic upgrade on: the caller's mode says so, or the mode this machine sent
 * before the download did (auto_upgrade_ok). */
static int auto_upgrade(const hf_fota *f)
{
    return f->cfg.has_mode ? f->cfg.mode.auto_upgrade : f->mode_up;
}

static void downloaded_enter(hf_fota *f)
{
    f->image_verified = 1;
    if (!auto_upgrade(f))
        enter(f, HF_PH_DECIDE_UPGRADE);
}

static void to_reboot_on_50(hf_fota *f, const hf_fotastate *st)
{
    if (st->state == 50)
        enter(f, HF_PH_REBOOT);
}

static void downloaded_deadline(hf_fota *f)
{
    notice(f, "automatic upgrade did not start within %.0f s", f->cfg.auto_upgrade_wait);
    enter(f, HF_PH_DECIDE_UPGRADE);
}

static void reboot_port_lost(hf_fota *f)
{
    if (f->phase != HF_PH_REBOOT)
        enter(f, HF_PH_REBOOT);
    f->deadline = f->now + f->cfg.reboot_timeout;   /* counted from the reset */
    reopen(f);
}

static void decide_upgrade_enter(hf_fota *f)
{
    if (f->fwup_sent && !f->fwup_again) {
        enter(f, HF_PH_REBOOT);
        return;
    }
    /* An image that may never be applied is not left in 40 (the module would apply
     * it at its next boot): AT^FOTADL=0 discards it. */
    if (!f->cfg.force && !f->have_target) {
        if (f->detect_attempts <= f->cfg.max_redetect) {
            /* e.g. downloaded by a run whose journal is gone or not trusted:
             * ^FOTASTATE: 40 names no version; fetch it again from a fresh offer */
            notice(f, "a downloaded image of unknown version waits on the module: "
                   "AT^FOTADL=0, then detect again to learn its version");
            f->redetect = 1;
            enter(f, HF_PH_DISCARD);
        } else {
            discard_then_fail(f, "ENOTARGET", 40, "a downloaded image waited on the module "
                              "but its version is unknown: discarded with AT^FOTADL=0, not "
                              "applied (force overrides)");
        }
        return;
    }
    if (!f->cfg.force && !version_newer(f)) {
        discard_then_fail(f, "ENOTNEWER", 40, "the downloaded version %s is not newer than "
                          "the running %s: discarded with AT^FOTADL=0, not applied (force "
                          "overrides)", f->target.text,
                          f->have_running ? f->running.text : "?");
        return;
    }
    emit(f, HF_EMIT_DECISION, "upgrade", -1);
}

/* A module that boots with a complete image applies it by itself ("the upgrade starts
 * at the next boot"), reporting 50 a moment after its port is back; until then
 * AT^FOTASTATE? still says 40. AT^FWUP in that window would race the module's own
 * upgrade (a second upgrade start, or an ERROR in 50). So AT^FWUP waits until the
 * port has been up for boot_settle s; a 50 meanwhile goes to reboot (to_reboot_on_50). */
static double upgrade_settled_at(const hf_fota *f)
{
    return f->up_at + f->cfg.boot_settle;
}

/* Read the state (then AT^FWUP in upgrade_done) once the port has settled. */
static void upgrade_start(hf_fota *f)
{
    if (f->now < upgrade_settled_at(f))
        return;                    /* upgrade_every arms the timer */
    hf_fota_cmd list[] = {HF_CMD_STATE};   /* fresh proof of state 40 before AT^FWUP */
    run_script(f, list, 1);
}

static void upgrade_enter(hf_fota *f)
{
    double left = upgrade_settled_at(f) - f->now;
    if (left > 0 && isfinite(left))
        notice(f, "the port opened %.1f s ago: waiting %.1f s for a boot-time upgrade "
               "report before AT^FWUP", f->now - f->up_at, left);
    upgrade_start(f);
}

/* The wake-up for upgrade_start while nothing is in flight and nothing started yet
 * (a timer that fell while an older answer was pending is not lost). */
static double upgrade_every(const hf_fota *f)
{
    if ((f->fwup_sent && !f->fwup_again) || f->nscript)
        return 0;
    double left = upgrade_settled_at(f) - f->now;
    return left > 0 ? left : 1e-3;
}

static void upgrade_done(hf_fota *f)
{
    if (f->last_state == 50) {
        enter(f, HF_PH_REBOOT);
    } else if (f->last_state != 40) {
        fail(f, "EUPGRADE", f->last_state, "the module is in state %d (%s), not 40: not "
             "sending AT^FWUP", f->last_state, hf_fota_state_name(f->last_state));
    } else {
        send_cmd(f, HF_CMD_FWUP, 0);
    }
}

/* ---- phase: reboot, verify ----------------------------------------------------------- */

static void reboot_state(hf_fota *f, const hf_fotastate *st)
{
    if (st->state == 90 && !f->port_lost)
        enter(f, HF_PH_VERIFY);
}

static double reboot_every(const hf_fota *f)
{
    return f->cfg.poll_interval * 3;   /* the port may vanish at any moment */
}

static void reboot_deadline(hf_fota *f)
{
    if (f->port_lost)
        fail(f, "ETIMEDOUT", -1, "the module did not come back within %.0f s after the "
             "reset; it may still be upgrading: do not power it off, check USB and retry "
             "later (the journal resumes)", f->cfg.reboot_timeout);
    else
        enter(f, HF_PH_VERIFY);
}

static void verify_enter(hf_fota *f)
{
    f->state_seen_since_back = 0;
    hf_fota_cmd list[] = {f->cfg.read_imei ? HF_CMD_CGSN : HF_CMD_NONE, HF_CMD_GMR,
                          HF_CMD_STATE};
    run_script(f, list, 3);
}

static void verify_evaluate(hf_fota *f)
{
    int st = f->last_state;
    if (st == 50) {                  /* still applying: wait within the deadline */
        if (f->phase != HF_PH_VERIFY)
            enter(f, HF_PH_REBOOT);
        return;
    }
    if (st == 40 && !f->fwup_sent) {
        enter(f, HF_PH_DOWNLOADED);  /* reset without upgrade: the image is still there */
        return;
    }
    if (st == 40) {
        /* AT^FWUP went out but the module never acted on it (lost with the port as it
         * was written): still 40, old firmware. It is never repeated. Give a boot-time
         * upgrade its chance first, then discard the image so the module is not left
         * in 40; a later run downloads it anew and decides again. */
        if (f->phase != HF_PH_VERIFY) {
            double left = f->up_at + f->cfg.boot_settle - f->now;
            if (left > 0 && isfinite(left))
                notice(f, "the module still says 40 after AT^FWUP: waiting %.1f s for a "
                       "boot-time upgrade report", left);
            enter(f, HF_PH_VERIFY);
            return;
        }
        if (f->now < f->up_at + f->cfg.boot_settle)
            return;                  /* polled meanwhile (verify_every) */
        const char *run = f->have_running ? f->running.text : "the old firmware";
        if (f->fwup_restored && f->fwup_count == 1 && !f->fwup_retry && f->image_verified &&
            f->have_target && (f->cfg.force || version_newer(f))) {
            /* A restarted host: the journal says AT^FWUP, but the previous process may
             * have died after writing that record and before the command reached the
             * wire. The module has been up boot_settle s, still in 40 with the old
             * firmware: the command never acted. One more AT^FWUP for this image,
             * recorded in the journal before it goes out (fwup_retry), never again. */
            notice(f, "AT^FWUP may not have reached the module: it still holds the image "
                   "in 40 and runs %s %.0f s after the port came up. The journal allows "
                   "one more AT^FWUP for this image (recorded; never a third)", run,
                   f->now - f->up_at);
            f->fwup_again = 1;
            enter(f, HF_PH_DECIDE_UPGRADE);
            return;
        }
        if (f->fwup_restored && f->fwup_retry)
            discard_then_fail(f, "EUPGRADE", 40, "AT^FWUP may not have reached the module: "
                              "it still holds the image in 40 and runs %s, after the one "
                              "AT^FWUP a restart allows was sent too. It is never repeated "
                              "again: the image was discarded with AT^FOTADL=0 and the module "
                              "is idle; run again to download it anew", run);
        else
            discard_then_fail(f, "EUPGRADE", 40, "AT^FWUP was not acted on: the module "
                              "stayed in 40 running %s (the command was lost with the "
                              "port?). It is never repeated: the image was discarded with "
                              "AT^FOTADL=0 and the module is idle; run again to download it "
                              "anew", run);
        return;
    }
    int same = f->have_target ? hf_version_compare(&f->running, &f->target) == 0
                              : hf_version_compare(&f->running, &f->from) > 0;
    if (st == 90 && same && f->have_running) {
        finish(f, "upgraded");
        return;
    }
    fail(f, "EUPGRADE", st, "upgrade failed: module state %d (%s), running %s, expected %s",
         st, hf_fota_state_name(st), f->have_running ? f->running.text : "?",
         f->have_target ? f->target.text : "a newer version");
}

static double verify_every(const hf_fota *f)
{
    return f->last_state == 50 || f->last_state == 40 ? f->cfg.poll_interval : 0;
}

static void verify_poll(hf_fota *f)
{
    send_cmd(f, HF_CMD_STATE, 0);
}

static void verify_state(hf_fota *f, const hf_fotastate *st)
{
    if (st->state != 50 && f->nscript == 0 && f->cmd == HF_CMD_NONE)
        verify_evaluate(f);
}

static void verify_deadline(hf_fota *f)
{
    fail(f, "EUPGRADE", f->last_state, "the module still reports state %d (%s) %.0f s after "
         "coming back", f->last_state, hf_fota_state_name(f->last_state),
         f->cfg.reboot_timeout);
}

static void verify_port_lost(hf_fota *f)
{
    if (++f->reboots > 3) {
        fail(f, "EPORTLOST", -1, "the module keeps resetting after the upgrade");
        return;
    }
    reboot_port_lost(f);
}

/* ---- phase: discard ------------------------------------------------------------------- */

/* AT^FOTADL=0, then AT^FOTASTATE? to see that it took: an offer or image left behind
 * is never reported as discarded (discard_check). The module may answer OK before it
 * is idle: the phase then waits for the change (a URC, or AT^FOTASTATE? every
 * poll_interval) up to discard_timeout. */
static void discard_enter(hf_fota *f)
{
    f->discard_resend = 0;
    hf_fota_cmd list[] = {HF_CMD_DL_STOP, HF_CMD_STATE};
    run_script(f, list, 2);
}

static void discard_start(hf_fota *f)
{
    f->discard_tries = 0;
    f->discard_from = f->last_state;
    discard_enter(f);
}

static void discard_then_fail(hf_fota *f, const char *code, long module_code,
                              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->discard_msg, sizeof f->discard_msg, fmt, ap);
    va_end(ap);
    f->discard_code = code;
    f->discard_mcode = module_code;
    enter(f, HF_PH_DISCARD);
}

static void discard_done(hf_fota *f);

/* Has AT^FOTADL=0 taken? 10, or 11 (an automatic query began), or another result
 * (13/14/20) than the one being cleared (an automatic query ended). */
static int discard_took(const hf_fota *f, int st)
{
    if (st == 10 || st == 11)
        return 1;
    return (st == 13 || st == 14 || st == 20) && st != f->discard_from;
}

/* The state after AT^FOTADL=0 (answered, refused or timed out): idle means done;
 * anything else is waited for (discard_every polls; discard_timeout bounds it). */
static void discard_check(hf_fota *f)
{
    int st = f->last_state;
    if (discard_took(f, st)) {
        discard_done(f);
        return;
    }
    if (st == 50) {              /* the module applies the image by itself */
        enter(f, HF_PH_REBOOT);
        return;
    }
    /* not yet: the next poll asks again (and resends a refused AT^FOTADL=0) */
}

/* A URC (or a poll's answer) while the discard waits. */
static void discard_state(hf_fota *f, const hf_fotastate *st)
{
    (void)st;
    if (f->nscript == 0 && f->cmd == HF_CMD_NONE)
        discard_check(f);
}

static double discard_every(const hf_fota *f)
{
    return f->nscript ? 0 : f->cfg.poll_interval;
}

static void discard_poll(hf_fota *f)
{
    if (f->discard_resend && f->discard_tries < f->cfg.cmd_retries) {
        f->discard_tries++;
        discard_enter(f);
    } else {
        send_cmd(f, HF_CMD_STATE, 0);
    }
}

static void discard_deadline(hf_fota *f)
{
    int st = f->last_state;
    if (f->port_lost) {
        fail(f, "ETIMEDOUT", -1, "the module did not come back within %.0f s to discard its "
             "offer or image (AT^FOTADL=0)", f->cfg.reboot_timeout);
    } else if (f->clearing_end && !f->discard_code && !f->cancel_requested) {
        /* some firmware keeps its result but detects from it: try */
        notice(f, "AT^FOTADL=0 did not bring the module from state %d (%s) to idle within "
               "%.0f s; detecting from that state", st, hf_fota_state_name(st),
               f->cfg.discard_timeout);
        f->clearing_end = 0;
        f->redetect = 0;
        enter(f, HF_PH_DETECT);
    } else {
        fail(f, "EMODULE", st, "AT^FOTADL=0 did not bring the module back to idle within "
             "%.0f s: it is still in state %d (%s)", f->cfg.discard_timeout, st,
             hf_fota_state_name(st));
    }
}

static void discard_port_lost(hf_fota *f)
{
    if (++f->discard_tries > f->cfg.cmd_retries) {
        fail(f, "EPORTLOST", f->last_state, "the port went away %u times while discarding "
             "with AT^FOTADL=0; the module may still be in state %d (%s)", f->discard_tries,
             f->last_state, hf_fota_state_name(f->last_state));
        return;
    }
    f->deadline = f->now + f->cfg.reboot_timeout;
    reopen(f);                   /* on port_back: discard_enter again */
}

static void discard_done(hf_fota *f)
{
    f->clearing_end = 0;
    /* the module is idle: no verified image is left (a deferral's journal then names
     * none, and the next run detects again) */
    if (!f->fwup_sent)
        f->image_verified = 0;
    if (f->discard_code) {
        fail(f, f->discard_code, f->discard_mcode, "%s", f->discard_msg);
        return;
    }
    if (f->redetect && !f->cancel_requested) {
        f->redetect = 0;
        f->detect_wait_only = f->last_state == 11;   /* an automatic query began */
        enter(f, HF_PH_DETECT);
        return;
    }
    if (f->cancel_requested)
        fail(f, "ECANCELED", -1, "cancelled by the caller");
    else if (f->unseen_offers && !f->have_target)
        fail(f, "ENOTARGET", -1, "a new version was announced %u times without its version "
             "being seen (its ^FOTASTATE: 12 report lost or garbled); the offer was dropped: "
             "an image that cannot be checked as newer is never downloaded (force overrides)",
             f->unseen_offers);
    else
        finish(f, f->outcome ? f->outcome : "rejected");
}

/* ---- generic handlers --------------------------------------------------------------- */

static void fail_port_lost(hf_fota *f)
{
    fail(f, "EPORTLOST", -1, "the port went away during %s: the module reset or was "
         "unplugged; check the USB connection and retry", def(f)->name);
}

/* Probe/configure of a run restored from a journal written at or after the download:
 * the module may reset under us (power loss, or the upgrade's reset when the host
 * died after AT^FWUP). That is the expected module behaviour, not a failure: wait
 * for the port like recover does, then read the state and dispatch from it. */
static void restart_port_lost(hf_fota *f)
{
    if (f->restored && (f->fwup_sent || f->restored_phase >= HF_PH_DOWNLOAD) &&
        f->restored_phase != HF_PH_DISCARD) {
        notice(f, "the port went away while resuming from the journal (phase %s): the "
               "module is resetting; waiting for it", hf_fota_phase_name(f->restored_phase));
        enter(f, HF_PH_RECOVER);
        return;
    }
    fail_port_lost(f);
}

/* ---- the table ---------------------------------------------------------------------- */

#define CFG(field) offsetof(hf_fota_config, field)
#define COMMON (EV_BIT(HF_EV_RESULT) | EV_BIT(HF_EV_URC) | EV_BIT(HF_EV_STATE) | \
                EV_BIT(HF_EV_TIMER) | EV_BIT(HF_EV_PORT_LOST) | EV_BIT(HF_EV_CANCEL))

static const phase_def phases[HF_PH_COUNT] = {
    [HF_PH_IDLE] = {.name = "idle", .deadline_off = NO_DEADLINE},
    [HF_PH_PROBE] = {.name = "probe", .enter = probe_enter, .on_done = probe_done,
        .deadline_off = NO_DEADLINE, .on_port_lost = restart_port_lost, .accepts = COMMON},
    [HF_PH_PREPARE] = {.name = "prepare", .enter = prepare_enter, .on_done = prepare_done,
        .deadline_off = NO_DEADLINE, .on_port_lost = fail_port_lost, .accepts = COMMON},
    [HF_PH_CONFIGURE] = {.name = "configure", .enter = configure_enter, .on_done = dispatch,
        .deadline_off = NO_DEADLINE, .on_port_lost = restart_port_lost, .accepts = COMMON},
    [HF_PH_DETECT] = {.name = "detect", .enter = detect_enter, .on_state = detect_state,
        .on_poll = poll_state, .poll_every = poll_state_every,
        .deadline_off = CFG(detect_timeout), .deadline_code = "ETIMEDOUT",
        .deadline_msg = "no version query result within %.0f s; check the APN and the network",
        .on_port_lost = fail_port_lost, .accepts = COMMON},
    [HF_PH_DECIDE_DOWNLOAD] = {.name = "decide_download", .enter = decide_download_enter,
        .on_state = decide_download_state, .deadline_off = NO_DEADLINE,
        .on_port_lost = fail_port_lost, .accepts = COMMON | EV_BIT(HF_EV_DECISION),
        .journal = 1},
    [HF_PH_DOWNLOAD] = {.name = "download", .enter = download_enter,
        .on_state = download_state, .on_poll = download_poll, .poll_every = download_every,
        .deadline_off = CFG(stall_timeout), .deadline_code = "ESTALLED",
        .deadline_msg = "the download made no progress for %.0f s; check the signal and "
                        "the data connection",
        .on_port_lost = download_port_lost,
        .accepts = COMMON | EV_BIT(HF_EV_PROGRESS) | EV_BIT(HF_EV_PAUSE), .journal = 1},
    [HF_PH_PAUSED] = {.name = "paused", .on_state = paused_state,
        .deadline_off = NO_DEADLINE, .on_port_lost = download_port_lost,
        .accepts = COMMON | EV_BIT(HF_EV_RESUME), .journal = 1},
    [HF_PH_RECOVER] = {.name = "recover", .enter = recover_enter, .on_done = recover_done,
        .on_port_lost = recover_enter,
        .deadline_off = CFG(reboot_timeout), .deadline_code = "ETIMEDOUT",
        .deadline_msg = "the module did not come back within %.0f s after losing the port "
                        "during the download; check power and USB",
        .accepts = COMMON | EV_BIT(HF_EV_PORT_BACK)},
    [HF_PH_DOWNLOADED] = {.name = "downloaded", .enter = downloaded_enter,
        .on_state = to_reboot_on_50, .on_poll = poll_state, .poll_every = poll_state_every,
        .deadline_off = CFG(auto_upgrade_wait), .on_deadline = downloaded_deadline,
        .on_port_lost = reboot_port_lost, .accepts = COMMON, .journal = 1},
    [HF_PH_DECIDE_UPGRADE] = {.name = "decide_upgrade", .enter = decide_upgrade_enter,
        .on_state = to_reboot_on_50, .deadline_off = NO_DEADLINE,
        .on_port_lost = reboot_port_lost, .accepts = COMMON | EV_BIT(HF_EV_DECISION),
        .journal = 1},
    [HF_PH_UPGRADE] = {.name = "upgrade", .enter = upgrade_enter, .on_done = upgrade_done,
        .on_poll = upgrade_start, .poll_every = upgrade_every,
        .on_state = to_reboot_on_50, .deadline_off = NO_DEADLINE,
        .on_port_lost = reboot_port_lost, .accepts = COMMON},
    [HF_PH_REBOOT] = {.name = "reboot", .on_state = reboot_state, .on_poll = poll_state,
        .poll_every = reboot_every, .deadline_off = CFG(reboot_timeout),
        .on_deadline = reboot_deadline, .on_port_lost = reboot_port_lost,
        .accepts = COMMON | EV_BIT(HF_EV_PORT_BACK), .journal = 1},
    [HF_PH_VERIFY] = {.name = "verify", .enter = verify_enter, .on_done = verify_evaluate,
        .on_state = verify_state, .on_poll = verify_poll, .poll_every = verify_every,
        .deadline_off = CFG(reboot_timeout), .on_deadline = verify_deadline,
        .on_port_lost = verify_port_lost, .accepts = COMMON},
    [HF_PH_DISCARD] = {.name = "discard", .enter = discard_start, .on_done = discard_check,
        .on_state = discard_state, .on_poll = discard_poll, .poll_every = discard_every,
        .deadline_off = CFG(discard_timeout), .on_deadline = discard_deadline,
        .on_port_lost = discard_port_lost, .accepts = COMMON | EV_BIT(HF_EV_PORT_BACK)},
    [HF_PH_DONE] = {.name = "done", .deadline_off = NO_DEADLINE, .journal = 1},
    [HF_PH_FAILED] = {.name = "failed", .deadline_off = NO_DEADLINE, .journal = 1},
};

/* ---- command results ------------------------------------------------------------------ */

static void imei_trusted(hf_fota *f)
{
    f->imei_odd[0] = '\0';
    f->imei_reads = 0;
}

/* An AT+CGSN reading. The known IMEI (the reference) must match: another module is
 * EIDENTITY. But one reading is not trusted when it differs from the reference or
 * when it would become the reference: a line the port cut or garbled ("86753090000009",
 * one byte dropped, for "867530900000009") reads as another module. AT+CGSN is an
 * idempotent query (the send gate holds while we ask), so it is asked again:
 * - the reference's own reading matches: the same module;
 * - two readings in a row agree on another IMEI: a different module (EIDENTITY);
 * - no two agree within cmd_retries more readings: EIDENTITY "cannot confirm", the
 *   safe outcome (nothing that changes the module's state was sent).
 * A new reference (a fresh run's probe: no journal IMEI, no IMEI of an earlier
 * attempt) is taken from one reading only when that reading proves itself: 15 digits
 * with a Luhn check digit that holds (every real IMEI has one; a reading that lost
 * or changed a digit fails it nine times in ten). Any other reading becomes the
 * reference only once a second reading agrees: a reference taken from a cut line
 * would turn every later, correct reading into a false EIDENTITY. That costs one
 * more AT+CGSN only on a module whose IMEI has no valid check digit (an IMEISV, a
 * test fixture). Returns 0 when taken, -1 when the run failed or asked again. */
static int take_imei(hf_fota *f, const char *imei)
{
    int reference = f->imei[0] != '\0';
    if (reference ? strcmp(f->imei, imei) == 0 : hf_imei_checked(imei)) {
        imei_trusted(f);
        if (reference)
            f->identity_ok = 1;      /* the same module as before */
        hf_strlcpy(f->imei, sizeof f->imei, imei);
        return 0;
    }
    int agree = f->imei_odd[0] && strcmp(f->imei_odd, imei) == 0;
    if (agree && !reference) {
        imei_trusted(f);             /* two readings of the same IMEI */
        hf_strlcpy(f->imei, sizeof f->imei, imei);
        return 0;
    }
    if (agree) {
        imei_trusted(f);
        fail(f, "EIDENTITY", -1, "a different module answered (IMEI %s in two readings, "
             "expected %s): nothing more is sent to it; check which module is on the port",
             imei, f->imei);
        return -1;
    }
    if (++f->imei_reads > f->cfg.cmd_retries) {
        char last[HF_IMEI_MAX];
        hf_strlcpy(last, sizeof last, f->imei_odd);
        imei_trusted(f);
        if (reference)
            fail(f, "EIDENTITY", -1, "cannot confirm which module came back on the port: "
                 "%u readings of AT+CGSN differ from IMEI %s and from each other (last %s, "
                 "before it %s); nothing more is sent to it", f->cfg.cmd_retries + 1,
                 f->imei, imei, last);
        else
            fail(f, "EIDENTITY", -1, "cannot read the module's IMEI: %u readings of AT+CGSN "
                 "differ (last %s, before it %s) and none has a valid check digit; "
                 "nothing that changes the module's state was sent", f->cfg.cmd_retries + 1,
                 imei, last);
        return -1;
    }
    hf_strlcpy(f->imei_odd, sizeof f->imei_odd, imei);
    if (reference)
        notice(f, "AT+CGSN read IMEI %s, expected %s: asking again (a cut or garbled line "
               "is not taken for another module)", imei, f->imei);
    send_cmd(f, HF_CMD_CGSN, f->cmd_in_script);
    return -1;
}

static void absorb_progress(hf_fota *f, const hf_fota_progress *p)
{
    int changed = p->done != f->progress.done || p->total != f->progress.total ||
                  p->nfiles != f->progress.nfiles;
    f->progress = *p;
    f->dl_interval = changed ? f->cfg.dl_poll : f->cfg.dl_poll_idle;
    if (changed) {
        f->progress_at = f->now;
        if (f->phase == HF_PH_DOWNLOAD)
            download_deadline_push(f);
        emit(f, HF_EMIT_PROGRESS, "progress", (long)p->percent);
    }
}

/* What an OK teaches the machine, the same for every command: its row's parser reads
 * the lines, and the facts the row names go in. Returns 0 to continue, 1 to resend
 * (an unreadable answer to a query that may be asked again), -1 when it already
 * failed or moved on. */
static int absorb_ok(hf_fota *f, hf_fota_cmd c, const hf_fota_event *ev)
{
    const hf_fota_cmd_def *r = hf_fota_cmd_get(c);
    hf_fota_answer a;
    hf_error err;
    if (hf_fota_cmd_parse(c, ev->lines, ev->line_lens, ev->nlines, &a, &err) < 0) {
        if (r->unreadable_resend)
            return 1;
        fail(f, err.code, -1, "%s", err.msg);
        return -1;
    }
    unsigned t = a.has & r->teaches;
    if (t & HF_ANS_MODEL)
        hf_strlcpy(f->model, sizeof f->model, a.model);
    if (t & HF_ANS_FIRMWARE) {
        f->running = a.firmware;
        f->have_running = 1;
    }
    if ((t & HF_ANS_IMEI) && take_imei(f, a.imei) < 0)
        return -1;
    if ((t & HF_ANS_SIM) && !a.sim_ready) {
        fail(f, "ESIM", -1, "SIM not ready (%s): enter the PIN (AT+CPIN=\"<pin>\") or "
             "disable the PIN lock, then retry", a.sim_what);
        return -1;
    }
    if ((t & HF_ANS_REG) && !hf_creg_registered(a.reg_stat)) {
        fail(f, "ENOTREG", a.reg_stat, "not registered %s(%s): check the antenna, the SIM's "
             "subscription and the coverage", a.reg_ps ? "for packet data " : "on the network ",
             a.reg_stat < 0 ? "no answer" : hf_creg_stat_text(a.reg_stat));
        return -1;
    }
    if (t & HF_ANS_STATE) {
        /* URCs that arrived inside the answer first, in order: an offer announced
         * there (12 with its version) is the target the answer is judged by */
        for (size_t k = 0; k + 1 < a.nstates; k++)
            record_state(f, &a.states[k]);
        handle_state(f, &a.states[a.nstates - 1]);
    }
    if (t & HF_ANS_PROGRESS)
        absorb_progress(f, &a.progress);
    if (r->ok == HF_OK_MODE_SET) {
        f->mode_sent = 1;
        f->mode_resume = f->mode_now.resume;
        f->mode_up = f->mode_now.auto_upgrade;
    } else if (r->ok == HF_OK_DL_STARTED) {
        f->last_resume_at = f->now;
        /* the stall clock counts from the module taking the start, not from the phase
         * entry: the start may have waited behind a resync longer than stall_timeout */
        f->progress_at = f->now;
        if (f->phase == HF_PH_DOWNLOAD)
            download_deadline_push(f);
    }
    return 0;
}

/* What an OK moves to when the command is not a script step (also what a command that
 * is never resent is taken to have done when its answer is lost: AT^FWUP). */
static void ok_move(hf_fota *f, const hf_fota_cmd_def *r)
{
    if (r->ok == HF_OK_TO_REBOOT)
        enter(f, HF_PH_REBOOT);
    else if (r->ok == HF_OK_TO_PAUSED)
        enter(f, HF_PH_PAUSED);
}

/* A command that did not do what it was sent for drops the request behind it. */
static void drop_request(hf_fota *f, const hf_fota_cmd_def *r)
{
    if (r->ok == HF_OK_TO_PAUSED)
        f->pause_requested = 0;
}

/* A command that may have acted was refused or went unanswered: never repeated
 * blindly; read the state (as a script step, so the phase's on_done judges it) and
 * let the phase send it again at its poll when the state says it did not take (the
 * discard does, bounded by cmd_retries). */
static void ask_state(hf_fota *f)
{
    f->discard_resend = 1;
    hf_fota_cmd list[] = {HF_CMD_STATE};
    run_script(f, list, 1);
}

static void resend_or_fail(hf_fota *f, hf_fota_cmd c, const char *why)
{
    if (++f->cmd_tries <= f->cfg.cmd_retries) {
        int in_script = f->cmd_in_script;
        if (in_script && f->step > 0)
            f->step--;           /* the script's step is re-run */
        if (in_script)
            script_next(f);
        else
            send_cmd(f, c, 0);
        return;
    }
    f->cmd_tries = 0;
    fail(f, "ETIMEDOUT", -1, "%s %s %u times: check that the port is the module's AT "
         "(PCUI) port and that the module is powered", hf_fota_cmd_name(c), why,
         f->cfg.cmd_retries + 1);
}

/* The row's timeout policy: only an idempotent command is sent again. */
static void on_timeout(hf_fota *f, hf_fota_cmd c)
{
    const hf_fota_cmd_def *r = hf_fota_cmd_get(c);
    if (r->timeout_notice)
        notice(f, "%s", r->timeout_notice);
    if (r->on_timeout != HF_TMO_RESEND)
        drop_request(f, r);
    switch (r->on_timeout) {
    case HF_TMO_RESEND:
        resend_or_fail(f, c, "got no answer");
        break;
    case HF_TMO_ASK_STATE:
        ask_state(f);
        break;
    case HF_TMO_NEVER:
        ok_move(f, r);
        break;
    }
}

static int is_collision(const hf_fota_event *ev)
{
    return hf_contains_ci(ev->text, ev->text_len, "collision");
}

/* AT^FOTADET refused as a collision while the module is not idle: its own state
 * explains the refusal (a kept 13/14/20/90/...), not a data session. Clear it with
 * AT^FOTADL=0 and detect again, once; then name the state. */
static void detect_collision_in_state(hf_fota *f, const char *text)
{
    int st = f->last_state;
    if (st == 11) {
        /* querying already (an automatic query): wait for its result */
        notice(f, "the module refused AT^FOTADET (%s) while querying (11): waiting for "
               "that query's result", text);
        f->saw_querying = 1;
        return;
    }
    if (!f->end_cleared) {
        notice(f, "the module refused AT^FOTADET (%s) in state %d (%s), not idle: "
               "AT^FOTADL=0, then detect again", text, st, hf_fota_state_name(st));
        clear_end_state(f);
        return;
    }
    fail(f, "EMODULE", st, "the module refused AT^FOTADET (%s) in FOTA state %d (%s)%s: "
         "its own state explains the refusal, not a data connection; check AT^FOTASTATE? "
         "and power-cycle the module if it stays there", text, st, hf_fota_state_name(st),
         f->end_cleared ? ", which AT^FOTADL=0 did not clear" : "");
}

/* A query this firmware does not know: ERROR / COMMAND NOT SUPPORT / TOO MANY
 * PARAMETERS, or +CME ERROR 4 / 100 / "not support". Its answer is unknown, not a
 * failed SIM or registration. */
static int unsupported_answer(const hf_fota_event *ev)
{
    if (ev->final == HF_FF_ERROR)
        return 1;
    return ev->final == HF_FF_CME && (ev->code == 4 || ev->code == 100 ||
                                      hf_contains_ci(ev->text, ev->text_len, "not support") ||
                                      hf_contains_ci(ev->text, ev->text_len, "unknown"));
}

/* A refusal: the row's own rule where it comes first, the texts every command shares
 * (collision, SIM PIN, "not complete"), then the row's rule. */
static void on_error(hf_fota *f, hf_fota_cmd c, const hf_fota_event *ev)
{
    const hf_fota_cmd_def *r = hf_fota_cmd_get(c);
    char text[96];
    hf_copy_printable(text, sizeof text, ev->text ? ev->text : "", ev->text ? ev->text_len : 0);
    if (!text[0])
        hf_strlcpy(text, sizeof text, ev->final == HF_FF_CME ? "CME error" : "ERROR");
    long code = ev->final == HF_FF_CME ? ev->code : -1;
    if (r->refusal == HF_REF_ASK_STATE) {
        ask_state(f);
    } else if ((r->teaches & HF_ANS_IMEI) && f->confirming) {
        fail(f, "EIDENTITY", code, "cannot confirm which module came back on the port: "
             "%s failed (%s); nothing more is sent to it", r->text, text);
    } else if (r->refusal == HF_REF_FINAL) {
        fail(f, r->err_code, code, r->err_msg, text);
    } else if (r->collision_by_state && is_collision(ev) && f->last_state != 10) {
        detect_collision_in_state(f, text);
    } else if (is_collision(ev)) {
        fail(f, "ECOLLISION", code, "a data connection is active; bring the WAN interface "
             "down first (the module reports: %s)", text);
    } else if (hf_contains_ci(ev->text, ev->text_len, "SIM PIN") || code == 11) {
        fail(f, "ESIM", code, "SIM PIN required: enter the PIN (AT+CPIN=\"<pin>\") or "
             "disable the PIN lock, then retry");
    } else if (hf_contains_ci(ev->text, ev->text_len, "not complete")) {
        if (++f->cmd_tries > f->cfg.cmd_retries) {
            fail(f, "EBUSY", code, "the module keeps answering \"%s\" to %s", text,
                 hf_fota_cmd_name(c));
        } else {            /* retried after a short delay, from the timer */
            f->retry_cmd = c;
            f->next_poll = f->now + f->cfg.busy_delay;
        }
    } else if (r->refusal == HF_REF_IGNORE) {
        /* optional (progress): keep polling */
    } else if (r->refusal == HF_REF_SKIP_IN_DOWNLOAD && f->phase == HF_PH_DOWNLOAD &&
               f->cmd_in_script) {
        notice(f, "the module refused %s (%s): a pending download may restart from zero",
               f->cmd_text, text);
        script_next(f);       /* the start goes on all the same */
    } else if (r->refusal == HF_REF_DROP_REQUEST) {
        drop_request(f, r);
        notice(f, r->err_msg, text);
    } else if (r->refusal == HF_REF_UNKNOWN_OK && f->cmd_in_script && unsupported_answer(ev)) {
        notice(f, "the module answered %s with \"%s\": %s is unknown, going on (a real "
               "problem shows in the version query; check_prereq=false, hwfota "
               "--no-prereq, skips these queries)", r->text, text, r->subject);
        script_next(f);
    } else if (!r->err_code) {
        fail(f, "EMODULE", code, "the module refused %s (%s)", f->cmd_text, text);
    } else if (r->err_with_state) {
        char msg[HF_FOTA_TEXT_MAX];
        snprintf(msg, sizeof msg, r->err_msg, text);
        fail(f, r->err_code, code, "%s in state %d", msg, f->last_state);
    } else {
        fail(f, r->err_code, code, r->err_msg, text);
    }
}

static int result_matches(const hf_fota *f, const hf_fota_event *ev)
{
    if (f->cmd == HF_CMD_NONE)
        return 0;
    if (ev->id)
        return ev->id == f->cmd_id;
    if (ev->command)
        return strcmp(ev->command, f->cmd_text) == 0;
    return 1;
}

static void on_result(hf_fota *f, const hf_fota_event *ev)
{
    if (!result_matches(f, ev)) {
        f->ignored++;
        return;
    }
    hf_fota_cmd c = f->cmd;
    /* the answer to a command of an earlier phase still informs (states, progress)
     * but neither advances nor fails the phase we are in now */
    int stale = f->cmd_gen != f->gen;
    f->cmd = HF_CMD_NONE;
    if (ev->final == HF_FF_PORTLOST) {
        if (def(f)->on_port_lost)
            def(f)->on_port_lost(f);
        return;
    }
    if (stale && ev->final != HF_FF_OK)
        return;
    if (ev->final == HF_FF_TIMEOUT || ev->final == HF_FF_CANCELLED) {
        on_timeout(f, c);
        return;
    }
    if (ev->final != HF_FF_OK) {
        on_error(f, c, ev);
        return;
    }
    if (stale) {
        if (hf_fota_cmd_get(c)->teaches & (HF_ANS_STATE | HF_ANS_PROGRESS))
            (void)absorb_ok(f, c, ev);
        return;
    }
    unsigned gen = f->gen;
    int r = absorb_ok(f, c, ev);
    if (r > 0) {
        resend_or_fail(f, c, "gave no readable answer");
        return;
    }
    f->cmd_tries = 0;
    if (r < 0 || gen != f->gen || hf_fota_terminal(f))
        return;       /* the answer moved the machine on */
    if (c == HF_CMD_CGSN && f->confirming) {
        f->confirming = 0;
        f->identity_since_back = 1;
        port_back_continue(f);
    } else if (f->cmd_in_script) {
        script_next(f);
    } else {
        ok_move(f, hf_fota_cmd_get(c));
    }
}

/* ---- other events ---------------------------------------------------------------------- */

static void on_urc(hf_fota *f, const hf_fota_event *ev)
{
    if (!hf_is_fotastate(ev->line, ev->line_len))
        return;      /* ^RSSI and friends are not ours */
    hf_fotastate st;
    if (hf_parse_fotastate(ev->line, ev->line_len, &st, NULL) < 0) {
        /* tolerate a garbled line or two; the poll asks again */
        if (++f->parse_errors > 3)
            notice(f, "%d unreadable ^FOTASTATE lines in a row", f->parse_errors);
        return;
    }
    handle_state(f, &st);
}

static void fire_deadline(hf_fota *f)
{
    const phase_def *d = def(f);
    f->deadline = NO_TIME;
    f->deadline_deferred = 0;
    if (d->on_deadline)
        d->on_deadline(f);
    else
        fail(f, d->deadline_code ? d->deadline_code : "ETIMEDOUT", -1, d->deadline_msg
             ? d->deadline_msg : "%.0f s passed", f->now - f->phase_at);
}

static void on_timer(hf_fota *f)
{
    if (f->deadline >= 0 && f->now >= f->deadline) {
        if (f->cmd != HF_CMD_NONE && !f->port_lost) {
            /* A command is in flight (maybe still queued behind the engine's resync):
             * its result comes first, the engine's own timeout bounds the wait. Ending
             * the run now would leave the module doing what that command asks with no
             * host watching (fault campaign seed 52249: the download's stall deadline
             * ended the run while AT^FOTADL=1 still waited in the engine's queue). */
            f->deadline = NO_TIME;
            f->deadline_deferred = 1;
            return;
        }
        fire_deadline(f);
        return;
    }
    if (f->next_poll < 0 || f->now < f->next_poll)
        return;
    f->next_poll = NO_TIME;
    if (f->cmd != HF_CMD_NONE || f->port_lost)
        return;
    if (f->retry_cmd != HF_CMD_NONE) {
        hf_fota_cmd c = f->retry_cmd;
        f->retry_cmd = HF_CMD_NONE;
        if (f->nscript && f->step > 0 && f->script[f->step - 1] == c) {
            f->step--;
            script_next(f);
        } else {
            send_cmd(f, c, 0);
        }
        return;
    }
    if (def(f)->on_poll)
        def(f)->on_poll(f);
}

static void on_port_lost(hf_fota *f)
{
    if (f->port_lost)
        return;          /* already waiting for it */
    f->cmd = HF_CMD_NONE;   /* the engine fails everything queued on the dead port */
    f->next_cmd = HF_CMD_NONE;
    if (def(f)->on_port_lost)
        def(f)->on_port_lost(f);
}

/* The port is back and (when an IMEI is known) the same module answered: the
 * phase goes on where the loss interrupted it. */
static void port_back_continue(hf_fota *f)
{
    if (f->phase == HF_PH_RECOVER) {
        hf_fota_cmd list[] = {HF_CMD_STATE};
        run_script(f, list, 1);
    } else if (f->phase == HF_PH_DISCARD) {
        f->deadline = f->now + f->cfg.discard_timeout;
        discard_enter(f);
    } else {
        enter(f, HF_PH_VERIFY);
    }
}

/* Whatever came back at the path may be another module (paths are reused after a
 * re-enumeration): before anything else, AT+CGSN is compared with the known IMEI.
 * Without one (read_imei off) the identity stays unconfirmed and send_cmd refuses
 * every command that would change the module's state (EIDENTITY). */
static void on_port_back(hf_fota *f)
{
    if (!f->port_lost)
        return;
    f->port_lost = 0;
    f->state_seen_since_back = 0;
    f->identity_since_back = 0;
    f->identity_ok = 0;
    imei_trusted(f);                     /* the readings of the new confirmation count */
    f->up_at = f->now;
    f->mode_sent = f->mode_resume = 0;   /* a new boot, maybe: set the mode again */
    if (f->imei[0]) {
        f->confirming = 1;
        f->cmd_tries = 0;
        send_cmd(f, HF_CMD_CGSN, 0);
        return;
    }
    port_back_continue(f);
}

static void on_decision(hf_fota *f, hf_fota_decision d)
{
    if (f->phase == HF_PH_DECIDE_DOWNLOAD) {
        if (d == HF_DEC_DOWNLOAD) {
            f->want_dl_start = 1;
            f->dl_approved = 1;
            enter(f, HF_PH_DOWNLOAD);
        } else if (d == HF_DEC_DEFER || d == HF_DEC_KEEP) {
            finish(f, "deferred");     /* an offer (12) is not applied at a reboot */
        } else if (d == HF_DEC_REJECT) {
            f->outcome = "rejected";
            enter(f, HF_PH_DISCARD);
        } else {
            f->ignored++;
        }
    } else if (f->phase == HF_PH_DECIDE_UPGRADE) {
        if (d == HF_DEC_UPGRADE) {
            enter(f, HF_PH_UPGRADE);
        } else if (d == HF_DEC_KEEP) {
            /* explicitly kept: the module applies it at its next reboot (guide 2.3.3) */
            notice(f, "the downloaded image stays on the module (state 40): the module "
                   "applies it at its next reboot");
            finish(f, "deferred");
        } else if (d == HF_DEC_DEFER || d == HF_DEC_REJECT) {
            /* a module in 40 applies the image at its next reboot: deferring means
             * discarding it (a later run downloads it again) */
            f->outcome = d == HF_DEC_DEFER ? "deferred" : "rejected";
            enter(f, HF_PH_DISCARD);
        } else {
            f->ignored++;
        }
    }
}

static void on_cancel(hf_fota *f)
{
    switch (f->phase) {
    case HF_PH_UPGRADE:
        if (f->fwup_sent && !f->fwup_again) {
            notice(f, "cannot cancel now: AT^FWUP was sent; wait for the module");
            break;
        }
        if (f->fwup_sent) {
            /* the journal records an earlier AT^FWUP: left to the next run, as before */
            fail(f, "ECANCELED", -1, "cancelled by the caller");
            break;
        }
        /* the image in 40 would be applied at the next reboot: discard it */
        /* fall through */
    case HF_PH_DECIDE_DOWNLOAD: case HF_PH_DOWNLOAD: case HF_PH_PAUSED:
    case HF_PH_DOWNLOADED: case HF_PH_DECIDE_UPGRADE:
        f->cancel_requested = 1;
        enter(f, HF_PH_DISCARD);   /* AT^FOTADL=0 after the command in flight */
        break;
    case HF_PH_REBOOT: case HF_PH_VERIFY: case HF_PH_DISCARD:
        notice(f, "cannot cancel now: %s; wait for the module", f->phase == HF_PH_DISCARD
               ? "already stopping" : "the upgrade is running");
        break;
    default:
        fail(f, "ECANCELED", -1, "cancelled by the caller");
    }
}

static void on_pause(hf_fota *f)
{
    f->pause_requested = 1;   /* AT^FOTADL=2 goes out when no command is in flight (end()) */
}

static void on_resume(hf_fota *f)
{
    f->last_resume_at = -1e18;   /* an explicit resume is not rate-limited */
    f->pause_requested = 0;
    f->want_dl_start = 1;
    enter(f, HF_PH_DOWNLOAD);
}

/* ---- public ------------------------------------------------------------------------- */

void hf_fota_config_default(hf_fota_config *c)
{
    memset(c, 0, sizeof *c);
    c->check_prereq = 1;
    c->read_imei = 1;
    c->resume = 1;
    c->auth = 0;
    c->poll_interval = 3;
    c->dl_poll = 3;
    c->dl_poll_idle = 5;
    c->state_poll = 15;
    c->resume_interval = 30;
    c->reboot_timeout = 180;
    c->detect_timeout = 120;
    c->stall_timeout = 300;
    c->auto_upgrade_wait = 120;
    c->busy_delay = 2;
    c->boot_settle = 20;
    c->discard_timeout = 30;
    c->cmd_retries = 2;
    c->max_redetect = 2;
}

static int check_cred(const char *what, const char *s, size_t cap, hf_error *err)
{
    size_t n = strnlen(s, cap);
    if (n >= cap)
        return hf_error_set(err, "EINVAL", "%s is longer than %d bytes", what, HF_FOTA_CRED_MAX);
    return hf_fota_check_at_param(what, s, n, err);
}

static int check_secs(const char *what, double v, hf_error *err)
{
    if (!isfinite(v) || v <= 0 || v > 86400.0 * 30)
        return hf_error_set(err, "EINVAL", "%s must be a number of seconds in (0, 30 days]",
                            what);
    return 0;
}

static int check_config(const hf_fota_config *c, hf_error *err)
{
    if (c->has_cfg && (check_cred("apn", c->apn, sizeof c->apn, err) < 0 ||
                       check_cred("user", c->user, sizeof c->user, err) < 0 ||
                       check_cred("password", c->password, sizeof c->password, err) < 0))
        return -1;
    if (c->has_cfg && (c->auth < 0 || c->auth > 2))
        return hf_error_set(err, "EINVAL", "auth must be 0 (none), 1 (PAP) or 2 (CHAP)");
    if (c->has_mode && hf_fota_check_mode(&c->mode, err) < 0)
        return -1;
    if (c->nmodels > HF_FOTA_MODELS_MAX)
        return hf_error_set(err, "EINVAL", "at most %d models", HF_FOTA_MODELS_MAX);
    if (c->nmodels > 0 && !c->models)
        return hf_error_set(err, "EINVAL", "%zu models but no rows", c->nmodels);
    for (size_t i = 0; i < c->nmodels; i++) {
        const hf_fota_model *r = &c->models[i];
        size_t kl = strnlen(r->model, sizeof r->model);
        hf_version v;
        if (kl == 0 || kl == sizeof r->model)
            return hf_error_set(err, "EINVAL", "a models key must be 1..%d characters",
                                HF_MODEL_MAX - 1);
        for (size_t k = 0; k < kl; k++)
            if ((unsigned char)r->model[k] < 0x20 || (unsigned char)r->model[k] > 0x7e)
                return hf_error_set(err, "EINVAL", "a models key must be printable ASCII");
        if (hf_version_parse(r->min_firmware, strnlen(r->min_firmware, sizeof r->min_firmware),
                             &v, NULL) < 0)
            return hf_error_set(err, "EINVAL", "models[\"%s\"]: the minimum firmware must be a "
                                "version like 12.815.03.01.00", r->model);
    }
    const struct { const char *n; double v; } secs[] = {
        {"poll_interval", c->poll_interval}, {"dl_poll", c->dl_poll},
        {"dl_poll_idle", c->dl_poll_idle}, {"state_poll", c->state_poll},
        {"resume_interval", c->resume_interval}, {"reboot_timeout", c->reboot_timeout},
        {"detect_timeout", c->detect_timeout}, {"stall_timeout", c->stall_timeout},
        {"auto_upgrade_wait", c->auto_upgrade_wait}, {"busy_delay", c->busy_delay},
        {"boot_settle", c->boot_settle}, {"discard_timeout", c->discard_timeout},
    };
    for (size_t i = 0; i < sizeof secs / sizeof secs[0]; i++)
        if (check_secs(secs[i].n, secs[i].v, err) < 0)
            return -1;
    if ((unsigned)c->auto_upgrade_ok > 1)
        return hf_error_set(err, "EINVAL", "auto_upgrade_ok must be 0 or 1");
    if (c->cmd_retries > 10 || c->max_redetect > 10)
        return hf_error_set(err, "EINVAL", "cmd_retries and max_redetect must be <= 10");
    return 0;
}

int hf_fota_init(hf_fota *f, const hf_fota_config *cfg, hf_error *err)
{
    memset(f, 0, sizeof *f);
    if (check_config(cfg, err) < 0)
        return -1;
    f->cfg = *cfg;
    if (cfg->has_mode)
        f->cfg.resume = cfg->mode.resume;
    f->phase = HF_PH_IDLE;
    f->last_state = -1;
    f->last_state_code = -1;
    f->last_state_at = NO_TIME;
    f->deadline = f->next_poll = f->timer_at = NO_TIME;
    f->resume_due = NO_TIME;
    f->last_resume_at = -1e18;
    return 0;
}

static void begin(hf_fota *f, double now, hf_fota_actions *out)
{
    out->n = 0;
    out->dropped = 0;
    f->out = out;
    if (isfinite(now) && now > f->now)
        f->now = now;   /* the clock never runs backwards inside the FSM */
}

static size_t end(hf_fota *f)
{
    if (f->deadline_deferred && f->cmd == HF_CMD_NONE && !hf_fota_terminal(f)) {
        /* the command the deadline waited for is answered (or the port went): the
         * deadline fires now, unless what came in armed a new one (progress) */
        f->deadline_deferred = 0;
        if (f->deadline < 0)
            fire_deadline(f);
    }
    if (f->cmd == HF_CMD_NONE && f->next_cmd != HF_CMD_NONE && !f->port_lost &&
        !hf_fota_terminal(f)) {
        hf_fota_cmd c = f->next_cmd;
        f->next_cmd = HF_CMD_NONE;
        send_cmd(f, c, f->next_in_script);
    }
    if (f->phase == HF_PH_DOWNLOAD && f->pause_requested && f->cmd == HF_CMD_NONE &&
        !f->port_lost)
        send_cmd(f, HF_CMD_DL_PAUSE, 0);
    update_timer(f);
    size_t n = f->out->n;
    f->out = NULL;
    return n;
}

int hf_fota_expect_imei(hf_fota *f, const char *imei, hf_error *err)
{
    if (f->phase != HF_PH_IDLE)
        return hf_error_set(err, "EBUSY", "expect_imei only before start");
    if (!f->cfg.read_imei)
        return hf_error_set(err, "EINVAL", "expect_imei needs read_imei: the module's "
                            "IMEI cannot be confirmed without AT+CGSN");
    if (!hf_imei_form(imei, strnlen(imei, HF_IMEI_MAX)))
        return hf_error_set(err, "EINVAL", "expected IMEI must be 14 to 17 decimal digits");
    if (f->imei[0] && strcmp(f->imei, imei) != 0)
        return hf_error_set(err, "EIDENTITY", "the restored journal names IMEI %s, the run "
                            "expects %s", f->imei, imei);
    hf_strlcpy(f->imei, sizeof f->imei, imei);
    f->imei_expected = 1;
    f->identity_ok = 0;
    return 0;
}

size_t hf_fota_start(hf_fota *f, double now, hf_fota_actions *out)
{
    begin(f, now, out);
    if (f->phase != HF_PH_IDLE) {
        notice(f, "this FOTA operation is already %s: one at a time",
               hf_fota_terminal(f) ? "finished" : "running");
        return end(f);
    }
    if (!f->restored)
        f->started_at = f->now;
    /* a fresh run's module is the one the caller opened: its IMEI becomes the
     * reference; a journal's module is confirmed by the probe's AT+CGSN */
    if (!f->restored && !f->imei_expected)
        f->identity_ok = 1;
    /* A restored run may follow the module's boot (power loss, the host restarted with
     * the router): the settle applies from now. A fresh run has nothing to wait for:
     * it never applies an image it did not see announced and downloaded itself. */
    f->up_at = f->restored ? f->now : -HUGE_VAL;
    enter(f, HF_PH_PROBE);
    return end(f);
}

size_t hf_fota_feed(hf_fota *f, const hf_fota_event *ev, hf_fota_actions *out)
{
    begin(f, ev ? ev->now : 0, out);
    if (!ev || (unsigned)ev->kind >= HF_EV_COUNT ||
        !(def(f)->accepts & EV_BIT(ev->kind))) {
        f->ignored++;
        return end(f);
    }
    hf_fota_event safe;
    if (ev->kind == HF_EV_RESULT && ev->nlines && (!ev->lines || !ev->line_lens)) {
        safe = *ev;          /* a caller bug must not become a NULL dereference */
        safe.nlines = 0;
        ev = &safe;
    }
    if ((f->confirming || f->port_lost) && (ev->kind == HF_EV_URC ||
                                            ev->kind == HF_EV_STATE ||
                                            ev->kind == HF_EV_PROGRESS)) {
        /* from the loss of the port until the IMEI matched after it came back, what
         * the path says is not known to come from our module (the driver may pass a
         * URC from the reopened port before PORT_BACK): nothing it says may move the
         * run or reach the journal; the phase asks again once the IMEI matched
         * (recover and verify read the state, discard starts over) */
        f->ignored++;
        return end(f);
    }
    switch (ev->kind) {
    case HF_EV_RESULT: on_result(f, ev); break;
    case HF_EV_URC: if (ev->line) on_urc(f, ev); break;
    case HF_EV_STATE: if (ev->state) handle_state(f, ev->state); break;
    case HF_EV_PROGRESS:
        if (ev->files) {
            hf_fota_progress p;
            hf_fota_progress_sum(ev->files, ev->nfiles, &p);
            absorb_progress(f, &p);
        }
        break;
    case HF_EV_TIMER: on_timer(f); break;
    case HF_EV_PORT_LOST: on_port_lost(f); break;
    case HF_EV_PORT_BACK: on_port_back(f); break;
    case HF_EV_DECISION: on_decision(f, ev->decision); break;
    case HF_EV_CANCEL: on_cancel(f); break;
    case HF_EV_PAUSE: on_pause(f); break;
    case HF_EV_RESUME: on_resume(f); break;
    default: f->ignored++; break;
    }
    return end(f);
}

/* ---- journal ------------------------------------------------------------------------- */

/* The snapshot fields that are the machine's own counters and flags, copied as they
 * are in both directions (take and restore): one list, so a field added to the
 * journal is never saved but forgotten on restore. The versions, the phase and the
 * IMEI are converted or checked on the way and are copied by hand. */
#define SNAPSHOT_PLAIN_FIELDS(X) \
    X(size) X(fwup_sent) X(fwup_retry) X(image_verified) X(image_seq) \
    X(detect_attempts) X(resume_attempts) X(started_at)

void hf_fota_snapshot_take(const hf_fota *f, hf_fota_snapshot *s)
{
    memset(s, 0, sizeof *s);
    s->version = HF_FOTA_SNAPSHOT_VERSION;
    s->phase = f->phase;
    if (f->have_from)
        hf_strlcpy(s->from_version, sizeof s->from_version, f->from.text);
    if (f->have_target)
        hf_strlcpy(s->target_version, sizeof s->target_version, f->target.text);
#define TAKE_FIELD(name) s->name = f->name;
    SNAPSHOT_PLAIN_FIELDS(TAKE_FIELD)
#undef TAKE_FIELD
    hf_strlcpy(s->imei, sizeof s->imei, f->imei);
    s->phase_at = f->phase_at;
}

int hf_fota_restore(hf_fota *f, const hf_fota_snapshot *s, hf_error *err)
{
    return hf_fota_restore_from(f, s, 0, err);
}

int hf_fota_restore_from(hf_fota *f, const hf_fota_snapshot *s, int carried, hf_error *err)
{
    if (f->phase != HF_PH_IDLE)
        return hf_error_set(err, "EBUSY", "restore only before start");
    hf_journal_versions v;
    if (hf_journal_check(s, &v, err) < 0)
        return -1;
    f->restored = 1;
    f->fwup_restored = !carried && s->fwup_sent;
    f->restored_phase = s->phase;
    f->from = v.from;
    f->have_from = v.have_from;
    int have_target = v.have_target;
    /* The target of a failed (or cancelled) run is not trusted unless AT^FWUP went
     * out: no process watched the module since, and it may have dropped that image
     * and fetched another (^FOTASTATE: 12/40 of a later query), which would then be
     * applied under the old version's name. The run detects again. A deferral (done)
     * is trusted: deferring a download or an upgrade to a later run is its purpose,
     * and nothing else drives the module's FOTA meanwhile (documented assumption:
     * delete the journal if something might). */
    if (s->phase == HF_PH_FAILED && !s->fwup_sent && !carried)
        have_target = 0;
    f->target = v.target;
    f->have_target = have_target;
    f->announced = have_target;
#define RESTORE_FIELD(name) f->name = s->name;
    SNAPSHOT_PLAIN_FIELDS(RESTORE_FIELD)
#undef RESTORE_FIELD
    f->fwup_count = (unsigned)s->fwup_sent;
    /* the journal of a run past the download decision: the policy approved the target */
    f->dl_approved = have_target && !s->fwup_sent && s->phase >= HF_PH_DOWNLOAD &&
                     s->phase < HF_PH_DISCARD;
    hf_strlcpy(f->imei, sizeof f->imei, s->imei);
    /* a snapshot carried from this process's machine on a port that stayed open is
     * the same module; a journal file's module is confirmed by the probe's AT+CGSN */
    f->identity_ok = carried == HF_RESTORE_CARRIED;
    return 0;
}
