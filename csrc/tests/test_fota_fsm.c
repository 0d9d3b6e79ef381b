/* test_fota_fsm.c — the FOTA state machine: the seed flow command for command,
 * every failure path of the issue, every (phase, event) pair, journal restores in
 * every phase, and thousands of random event sequences against the safety rules. */
#include <stdlib.h>

#include "fota_harness.h"

static hf_fota_config seed_cfg(void)
{
    hf_fota_config c;
    hf_fota_config_default(&c);
    c.skip_model_check = 1;   /* demo versions are below the MU509 minimum */
    c.check_prereq = 0;       /* the seed's log has no CPIN/CREG */
    c.read_imei = 0;
    c.has_cfg = 1;
    strcpy(c.apn, "1234");
    c.auth = 2;
    c.has_mode = 1;
    c.mode = (hf_fotamode){.auto_query = 0, .auto_download = 0, .auto_upgrade = 1, .resume = 1};
    return c;
}

static hf_fota_config full_cfg(int auto_upgrade)
{
    hf_fota_config c = seed_cfg();
    c.skip_model_check = 0;
    c.check_prereq = 1;
    c.read_imei = 1;
    c.mode.auto_upgrade = auto_upgrade;
    return c;
}

/* A journal of an earlier run in phase p: offer 12.815.01.04.00 over 12.815.01.03.00. */
static hf_fota_snapshot snap_in(hf_fota_phase p)
{
    hf_fota_snapshot s;
    memset(&s, 0, sizeof s);
    s.version = HF_FOTA_SNAPSHOT_VERSION;
    s.phase = p;
    strcpy(s.from_version, "12.815.01.03.00");
    strcpy(s.target_version, "12.815.01.04.00");
    strcpy(s.imei, "351234567890124");   /* the harness module's: the restart confirms it */
    return s;
}

static harness H;   /* big: keep it off the stack */

/* Run (at most steps) until cmd is in flight, and check that it is. */
static void run_until_sent(harness *h, const char *cmd, int steps)
{
    h->stop_cmd = cmd;
    h_run(h, -1, steps);
    h->stop_cmd = NULL;
    CHECK_STR(h->pend, cmd);
}

/* The download goes on without progress: every poll answers 30 and the same byte
 * count, for at most `rounds` timer rounds or until the machine ends. */
static void download_without_progress(harness *h, int rounds)
{
    for (int i = 0; i < rounds && !hf_fota_terminal(&h->f); i++) {
        h_timer(h);
        if (h->pending && !strcmp(h->pend, "AT^FOTADLQ"))
            h_ok(h, "^FOTADLQ: 1,\"IMAGE\",5,1324", NULL);
        else if (h->pending)
            h_ok(h, "^FOTASTATE: 30", NULL);
    }
}

/* The journal of a run that wrote AT^FWUP for its verified image, in phase p. */
static hf_fota_snapshot snap_fwup(hf_fota_phase p)
{
    hf_fota_snapshot s = snap_in(p);
    s.fwup_sent = 1;
    s.image_verified = 1;
    return s;
}

/* A machine of the seed's configuration restored from s (a journal file), started. */
static harness *seed_restored(const hf_fota_snapshot *s)
{
    hf_fota_config c = seed_cfg();
    hf_error e;
    h_init(&H, &c);
    CHECK(hf_fota_restore(&H.f, s, &e) == 0, "restore: %s", e.msg);
    h_start(&H);
    return &H;
}

/* The preambles most tests share: the seed's configuration, started; the default
 * configuration with automatic upgrade off on both sides (the host sends AT^FWUP),
 * not started yet. */
static harness *seed_started(void)
{
    hf_fota_config c = seed_cfg();
    h_init(&H, &c);
    h_start(&H);
    return &H;
}

static harness *host_fwup(void)
{
    hf_fota_config c = full_cfg(0);
    h_init(&H, &c);
    H.m.auto_upgrade = 0;
    return &H;
}

static void expect_sent(const harness *h, const char *const *want, size_t n)
{
    int same = h->nsent == n;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(h->sent[i], want[i]) == 0;
    CHECK(same, "command sequence differs (%zu sent, %zu expected)", h->nsent, n);
    if (!same) {
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, "   want %s\n", want[i]);
        h_dump(h);
    }
}

/* The seed's log, step by step, with hand-fed events. */
static void test_seed_flow(void)
{
    harness *h = seed_started();
    CHECK_STR(h->pend, "AT+GMR");
    h_ok(h, "12.815.01.03.00", NULL);
    CHECK_STR(h->pend, "AT^FOTACFG=\"1234\",\"\",\"\",2");
    h_ok(h, NULL, NULL);
    CHECK_STR(h->pend, "AT^FOTAMODE=0,0,1,1");
    h_ok(h, NULL, NULL);
    CHECK_STR(h->pend, "AT^FOTASTATE?");
    h_ok(h, "^FOTASTATE: 10", NULL);
    CHECK_STR(h->pend, "AT^FOTADET");
    h_ok(h, NULL, NULL);
    CHECK_INT(h->f.phase, HF_PH_DETECT);
    h_urc(h, "^FOTASTATE: 11");
    h_urc(h, "^FOTASTATE: 12,12.815.01.04.00,79114,\"Support send SMS background\"");
    CHECK_INT(h->f.phase, HF_PH_DECIDE_DOWNLOAD);
    CHECK_STR(h->last_decision, "download");
    CHECK_STR(h->f.target.text, "12.815.01.04.00");
    CHECK_STR(h->f.desc, "Support send SMS background");
    CHECK_INT(h->f.size, 79114);
    h_decide(h, HF_DEC_DOWNLOAD);
    CHECK_STR(h->pend, "AT^FOTADL=1");
    h_ok(h, NULL, NULL);
    h_urc(h, "^FOTASTATE: 30");
    CHECK(h->timer > h->now && h->timer <= h->now + 3.01, "poll timer in 3 s");
    h_timer(h);
    CHECK_STR(h->pend, "AT^FOTADLQ");
    h_ok(h, "^FOTADLQ: 1,\"IMAGE\",1324,1324", "^FOTADLQ: 2,\"XNV\",47104,77778");
    CHECK_INT(h->f.progress.nfiles, 2);
    CHECK_INT(h->f.progress.done, 1324 + 47104);
    CHECK_INT(h->last_percent, (1324UL + 47104) * 100 / (1324 + 77778));
    h_urc(h, "^FOTASTATE: 40");
    CHECK_INT(h->f.phase, HF_PH_DOWNLOADED);   /* automatic upgrade: no AT^FWUP */
    h_urc(h, "^FOTASTATE: 50");
    CHECK_INT(h->f.phase, HF_PH_REBOOT);
    h_simple(h, HF_EV_PORT_LOST);
    CHECK_INT(h->reopen, 1);
    h->now += 40;
    h_simple(h, HF_EV_PORT_BACK);
    CHECK_STR(h->pend, "AT+GMR");
    h_urc(h, "^FOTASTATE: 90");
    h_ok(h, "12.815.01.04.00", NULL);
    CHECK_INT(h->f.phase, HF_PH_DONE);
    CHECK_STR(h->done, "upgraded");
    static const char *const want[] = {
        "AT+GMR", "AT^FOTACFG=\"1234\",\"\",\"\",2", "AT^FOTAMODE=0,0,1,1", "AT^FOTASTATE?",
        "AT^FOTADET", "AT^FOTADL=1", "AT^FOTADLQ", "AT+GMR"};
    expect_sent(h, want, sizeof want / sizeof want[0]);
    CHECK_INT(h_sent_count(h, "AT^FWUP"), 0);
    CHECK(h->journals >= 4, "journal at phase changes (%d)", h->journals);
    CHECK_INT(h->violations, 0);
}

/* The default configuration adds ATI, AT+CGSN, AT+CPIN?, AT+CREG?, AT+CGREG?; with
 * automatic upgrade off the FSM sends AT^FWUP itself, once. */
static void test_full_flow_fwup(void)
{
    harness *h = host_fwup();
    strcpy(h->m.version, "12.105.29.00.00");
    strcpy(h->m.offer, "12.105.30.00.00");
    h_start(h);
    h_run(h, -1, 500);
    static const char *const want_head[] = {"ATI", "AT+CGSN", "AT+CPIN?", "AT+CREG?",
                                            "AT+CGREG?", "AT^FOTACFG=\"1234\",\"\",\"\",2",
                                            "AT^FOTAMODE=0,0,0,1", "AT^FOTASTATE?",
                                            "AT^FOTADET", "AT^FOTADL=1"};
    int head = h->nsent >= 10;
    for (size_t i = 0; head && i < 10; i++)
        head = strcmp(h->sent[i], want_head[i]) == 0;
    CHECK(head, "full flow head");
    CHECK_STR(h->done, "upgraded");
    CHECK_INT(h_sent_count(h, "AT^FWUP"), 1);
    CHECK_INT(h->m.fwup_count, 1);
    CHECK_INT(h->decisions_up, 1);
    /* AT^FWUP is preceded by a fresh AT^FOTASTATE? and, after the reset, IMEI + version */
    size_t i = 0;
    while (i < h->nsent && strcmp(h->sent[i], "AT^FWUP"))
        i++;
    CHECK(i > 0 && !strcmp(h->sent[i - 1], "AT^FOTASTATE?"), "state read before FWUP");
    CHECK(i + 2 < h->nsent && !strcmp(h->sent[i + 1], "AT+CGSN") &&
          !strcmp(h->sent[i + 2], "AT+GMR"), "verify after reset");
    CHECK_INT(h->progress_over, 0);
    CHECK_INT(h->violations, 0);
    if (strcmp(h->done, "upgraded"))
        h_dump(h);
}

typedef struct scenario {
    const char *name;
    void (*setup)(harness *h, hf_fota_config *c);
    const char *failed;      /* expected failure code, or NULL */
    const char *done;        /* expected outcome, or NULL */
    const char *msg_has;     /* substring of the failure message / notice */
    long module_code;        /* expected module code, or -2 to skip */
} scenario;

static void s_none(harness *h, hf_fota_config *c) { (void)h; (void)c; }
static void s_no_new(harness *h, hf_fota_config *c) { (void)c; h->m.detect_result = 14; }
static void s_det13(harness *h, hf_fota_config *c) { (void)c; h->m.detect_result = 13; }
static void s_silent(harness *h, hf_fota_config *c) { (void)c; h->m.detect_result = 10; }
static void s_dlfail(harness *h, hf_fota_config *c) { (void)c; h->m.dl_fail = 1; }
static void s_upfail(harness *h, hf_fota_config *c) { (void)c; h->m.upgrade_ok = 0; }
static void s_collision(harness *h, hf_fota_config *c) { (void)c; h->m.collision = 1; }
static void s_pin(harness *h, hf_fota_config *c) { c->check_prereq = 1; h->m.sim_pin = 1; }
static void s_unreg(harness *h, hf_fota_config *c) { c->check_prereq = 1; h->m.unregistered = 1; }
static void s_older(harness *h, hf_fota_config *c) { (void)c; strcpy(h->m.offer, "12.815.01.02.00"); }
static void s_same_forced(harness *h, hf_fota_config *c)
{
    c->force = 1;
    h->force = 1;
    strcpy(h->m.offer, "12.815.01.03.01");
}
static void s_reject(harness *h, hf_fota_config *c) { (void)c; h->on_download = HF_DEC_REJECT; }
static void s_defer(harness *h, hf_fota_config *c) { (void)c; h->on_download = HF_DEC_DEFER; }
static void s_defer_up(harness *h, hf_fota_config *c)
{
    c->mode.auto_upgrade = 0;
    h->m.auto_upgrade = 0;
    h->on_upgrade = HF_DEC_DEFER;
}
static void s_quiet(harness *h, hf_fota_config *c) { (void)c; h->m.urc_quiet = 1; }
static void s_model_low(harness *h, hf_fota_config *c)
{
    c->skip_model_check = 0;
    strcpy(h->m.version, "12.100.00.00.00");
}

/* A whole run of cfg with one fault of the simulated module on (fault's changes to
 * the configuration come too late to count): it fails with code. */
static void fails_with(const hf_fota_config *cfg, void (*fault)(harness *, hf_fota_config *),
                       const char *code)
{
    hf_fota_config c = *cfg;
    h_init(&H, &c);
    fault(&H, &c);
    h_start(&H);
    h_run(&H, -1, 500);
    CHECK_STR(H.failed, code);
}

static const scenario scenarios[] = {
    {"seed via module", s_none, NULL, "upgraded", NULL, -2},
    {"no new version", s_no_new, NULL, "no_new_version", NULL, -2},
    {"detection failure 13", s_det13, "EDETECT", NULL, "DNS", 20},
    {"silent detection failure", s_silent, "EDETECT", NULL, "11 -> 10", -2},
    {"download failure 20", s_dlfail, "EDOWNLOAD", NULL, "MD5 check failed", 52},
    {"upgrade failure after reset", s_upfail, "EUPGRADE", NULL, "expected 12.815.01.04.00", 10},
    {"collision", s_collision, "ECOLLISION", NULL, "bring the WAN interface down", -2},
    {"SIM PIN", s_pin, "ESIM", NULL, "PIN", -2},
    {"not registered", s_unreg, "ENOTREG", NULL, "searching", 2},
    {"older offer refused", s_older, NULL, "not_newer", NULL, -2},
    {"forced", s_same_forced, NULL, "upgraded", NULL, -2},
    {"policy rejects", s_reject, NULL, "rejected", NULL, -2},
    {"policy defers download", s_defer, NULL, "deferred", NULL, -2},
    {"policy defers upgrade", s_defer_up, NULL, "deferred", NULL, -2},
    {"URCs silenced (AT^CURC=0): polling", s_quiet, NULL, "upgraded", NULL, -2},
    {"firmware below the table minimum", s_model_low, "EUNSUPPORTED", NULL, "minimum", -2},
};

static void test_scenarios(void)
{
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        const scenario *s = &scenarios[i];
        hf_fota_config c = seed_cfg();
        harness *h = &H;
        sim m0;
        sim_init(&m0);
        h_init(h, &c);
        s->setup(h, &c);
        sim keep = h->m;
        int force = h->force;
        hf_fota_decision d1 = h->on_download, d2 = h->on_upgrade;
        h_init(h, &c);            /* again, with the adjusted config */
        h->m = keep;
        h->force = force;
        h->on_download = d1;
        h->on_upgrade = d2;
        h_start(h);
        h_run(h, -1, 2000);
        int ok = hf_fota_terminal(&h->f);
        if (s->failed)
            ok = ok && !strcmp(h->failed, s->failed);
        if (s->done)
            ok = ok && !strcmp(h->done, s->done) && !h->failed[0];
        if (s->msg_has && s->failed)
            ok = ok && strstr(h->failed_msg, s->msg_has);
        if (s->module_code != -2)
            ok = ok && h->failed_module_code == s->module_code;
        CHECK(ok, "scenario \"%s\"", s->name);
        if (!ok)
            h_dump(h);
        CHECK_INT(h->violations, 0);
        CHECK_INT(h->progress_over, 0);
        if (!strcmp(s->name, "older offer refused") || !strcmp(s->name, "policy rejects"))
            CHECK_INT(h_sent_count(h, "AT^FOTADL=0"), 1);
        if (!strcmp(s->name, "URCs silenced (AT^CURC=0): polling"))
            CHECK(h_sent_count(h, "AT^FOTASTATE?") > 2, "state polled");
    }
}

static void test_pause_resume(void)
{
    harness *h = seed_started();
    h_run(h, HF_PH_DOWNLOAD, 100);
    h_run(h, -1, 3);                  /* AT^FOTADL=1 answered, 30 seen */
    CHECK_INT(h->f.phase, HF_PH_DOWNLOAD);
    h_simple(h, HF_EV_PAUSE);
    h_run(h, HF_PH_PAUSED, 20);
    CHECK_INT(h->f.phase, HF_PH_PAUSED);
    CHECK_INT(h_sent_count(h, "AT^FOTADL=2"), 1);
    int sent = (int)h->nsent;
    h->now += 100;
    h_timer(h);                       /* no polling while paused */
    CHECK_INT((int)h->nsent, sent);
    h_simple(h, HF_EV_RESUME);
    CHECK_STR(h->pend, "AT^FOTADL=1");
    h_run(h, -1, 500);
    CHECK_STR(h->done, "upgraded");
    CHECK_INT(h->violations, 0);
}

static void power_loss(int resume, int *fotadet, char *done, size_t cap, int *notices)
{
    hf_fota_config c = seed_cfg();
    c.mode.resume = resume;
    c.read_imei = 1;                  /* the module is confirmed when the port is back */
    harness *h = &H;
    h_init(h, &c);
    h->m.resume = resume;
    h_start(h);
    h_run(h, HF_PH_DOWNLOAD, 100);
    h_run(h, -1, 4);                  /* some progress */
    CHECK_INT(h->f.phase, HF_PH_DOWNLOAD);
    h->m.port_up = 0;
    h_simple(h, HF_EV_PORT_LOST);     /* power loss */
    CHECK_INT(h->f.phase, HF_PH_RECOVER);
    CHECK_INT(h->reopen, 1);
    h_run(h, -1, 1000);
    *fotadet = h_sent_count(h, "AT^FOTADET");
    hf_strlcpy(done, cap, h->done);
    *notices = h->notices;
    CHECK_INT(h->violations, 0);
}

static void test_power_loss(void)
{
    int det, notices;
    char done[24];
    power_loss(1, &det, done, sizeof done, &notices);
    CHECK_STR(done, "upgraded");
    CHECK_INT(det, 1);                /* resumed from 31, not re-detected */
    power_loss(0, &det, done, sizeof done, &notices);
    CHECK_STR(done, "upgraded");
    CHECK_INT(det, 2);                /* restarted from zero: detect again */
    CHECK(notices >= 1, "restart from zero reported");
}

static void test_reboot_timeout(void)
{
    hf_fota_config c = seed_cfg();
    c.reboot_timeout = 180;
    harness *h = &H;
    h_init(h, &c);
    h_start(h);
    h_run(h, HF_PH_REBOOT, 500);
    h_simple(h, HF_EV_PORT_LOST);
    CHECK_INT(h->reopen, 1);
    double t0 = h->now;
    h->now += 100;
    h_simple(h, HF_EV_TIMER);         /* early: nothing */
    CHECK_INT(h->f.phase, HF_PH_REBOOT);
    h->now = t0 + 181;
    h_simple(h, HF_EV_TIMER);
    CHECK_STR(h->failed, "ETIMEDOUT");
    CHECK(strstr(h->failed_msg, "did not come back") != NULL, "message");
    /* port back late but within the timeout: verified */
    h_init(h, &c);
    h_start(h);
    h_run(h, HF_PH_REBOOT, 500);
    h->m.port_up = 0;
    h_simple(h, HF_EV_PORT_LOST);
    h->now += 170;
    h_simple(h, HF_EV_TIMER);
    sim_reset(&h->m);
    h->reopen = 0;
    h_simple(h, HF_EV_PORT_BACK);
    h_run(h, -1, 50);
    CHECK_STR(h->done, "upgraded");
}

static void test_timeouts_and_config(void)
{
    harness *h = seed_started();
    for (int i = 0; i < 3; i++) {
        CHECK_STR(h->pend, "AT+GMR");
        h_result(h, HF_FF_TIMEOUT, -1, NULL, NULL, 0);
    }
    CHECK_STR(h->failed, "ETIMEDOUT");
    CHECK_INT(h_sent_count(h, "AT+GMR"), 3);

    /* AT^FWUP unanswered: never resent, the FSM waits for the reset */
    hf_fota_config c = full_cfg(0);
    h_init(h, &c);
    h->m.auto_upgrade = 0;
    strcpy(h->m.version, "12.105.29.00.00");
    strcpy(h->m.offer, "12.105.30.00.00");
    h_start(h);
    for (int i = 0; i < 500 && strcmp(h->pend, "AT^FWUP"); i++)
        h_run(h, -1, 1);
    CHECK_STR(h->pend, "AT^FWUP");
    h_result(h, HF_FF_TIMEOUT, -1, NULL, NULL, 0);
    CHECK_INT(h->f.phase, HF_PH_REBOOT);
    h->m.state = 50;
    h_run(h, -1, 500);
    CHECK_INT(h_sent_count(h, "AT^FWUP"), 1);
    CHECK_STR(h->done, "upgraded");
    /* "previous command not complete": retried after a delay, bounded */
    c = seed_cfg();
    h_init(h, &c);
    h_start(h);
    h_result(h, HF_FF_CME, -1, "Previous command is not complete", NULL, 0);
    CHECK_INT(h->pending, 0);
    h_timer(h);
    CHECK_STR(h->pend, "AT+GMR");
    h_ok(h, "12.815.01.03.00", NULL);
    CHECK(h->pending && strstr(h->pend, "FOTACFG"), "continues");

    /* parameters that would end up in AT commands */
    static const char *bad[] = {"a\"b", "a;b", "a\rb", "a\nb", "a\x01b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hf_fota_config b = seed_cfg();
        hf_error e;
        hf_fota f;
        hf_strlcpy(b.user, sizeof b.user, bad[i]);
        hf_error_clear(&e);
        CHECK(hf_fota_init(&f, &b, &e) == -1 && e.code && !strcmp(e.code, "EINVAL"),
              "accepted user %zu", i);
    }
    hf_fota_config b = seed_cfg();
    hf_fota f;
    b.auth = 3;
    CHECK_INT(hf_fota_init(&f, &b, NULL), -1);
    b = seed_cfg();
    b.reboot_timeout = -1;
    CHECK_INT(hf_fota_init(&f, &b, NULL), -1);
    /* the model rows are the caller's: a count without rows is refused, not read */
    b = seed_cfg();
    b.nmodels = 2;
    b.models = NULL;
    hf_error me;
    CHECK(hf_fota_init(&f, &b, &me) == -1 && me.code && !strcmp(me.code, "EINVAL") &&
              strstr(me.msg, "no rows"), "models without rows: %s", me.msg);
    /* one operation at a time */
    c = seed_cfg();
    h_init(h, &c);
    h_start(h);
    int n = (int)h->nsent;
    h_start(h);
    CHECK_INT((int)h->nsent, n);
    CHECK_INT(h->f.phase, HF_PH_PROBE);
}

/* Progress over files whose sizes sum past 4 GiB: done <= total and percent <= 100 on
 * every CPU. With unsigned long sums (32 bits on mips/armhf routers) the total wrapped:
 * done > total, 234 % (the fuzz corpus showed 519 % under make check-cross). */
static void test_progress_past_4gib(void)
{
    hf_fota_config c = seed_cfg();
    harness *h = &H;
    h_init(h, &c);
    h_start(h);
    h_run(h, HF_PH_DOWNLOAD, 100);
    CHECK_STR(h->pend, "AT^FOTADL=1");
    h_ok(h, NULL, NULL);
    h_urc(h, "^FOTASTATE: 30");
    h_timer(h);
    CHECK_STR(h->pend, "AT^FOTADLQ");
    h_ok(h, "^FOTADLQ: 1,\"IMAGE\",3000000000,3000000000",
         "^FOTADLQ: 2,\"XNV\",1000000000,3000000000");
    CHECK(h->f.progress.done == 4000000000ULL && h->f.progress.total == 6000000000ULL,
          "sums %llu/%llu", (unsigned long long)h->f.progress.done,
          (unsigned long long)h->f.progress.total);
    CHECK_INT(h->last_percent, 66);
    CHECK_INT(h->progress_over, 0);
}

/* Poll intervals, backoff, the 30 s resume limit, stall and detection deadlines. */
static void test_polling(void)
{
    harness *h = seed_started();
    h_run(h, HF_PH_DOWNLOAD, 100);
    CHECK_STR(h->pend, "AT^FOTADL=1");
    h_ok(h, NULL, NULL);
    h_urc(h, "^FOTASTATE: 30");
    CHECK_INT(h->f.phase, HF_PH_DOWNLOAD);
    double t = h->now;
    CHECK(h->timer > t && h->timer <= t + 3.01, "3 s poll while downloading");
    h_timer(h);
    CHECK_STR(h->pend, "AT^FOTADLQ");
    h_ok(h, "^FOTADLQ: 1,\"IMAGE\",100,1324", NULL);
    t = h->now;
    CHECK(h->timer <= t + 3.01, "progress: stay at 3 s");
    h_timer(h);
    h_ok(h, "^FOTADLQ: 1,\"IMAGE\",100,1324", NULL);
    t = h->now;
    CHECK(h->timer > t + 4.9 && h->timer <= t + 5.01, "no change: back off to 5 s (%.1f)",
          h->timer - t);
    /* 31 without a pause request: AT^FOTADL=1 at most every 30 s */
    h->now += 40;
    h_urc(h, "^FOTASTATE: 31");
    CHECK_STR(h->pend, "AT^FOTADL=1");
    double first = h->now;
    h_ok(h, NULL, NULL);
    h->now += 1;
    h_urc(h, "^FOTASTATE: 31");
    CHECK_INT(h->pending, 0);               /* too soon */
    int resumes = h_sent_count(h, "AT^FOTADL=1");
    for (int i = 0; i < 40 && h->now < first + 29; i++) {
        h_timer(h);
        if (h->pending) {
            CHECK(strcmp(h->pend, "AT^FOTADL=1") != 0 || h->now >= first + 30, "resume too soon");
            h_ok(h, "^FOTASTATE: 31", NULL);
        }
    }
    CHECK(h_sent_count(h, "AT^FOTADL=1") <= resumes + 1, "resumed again only after 30 s");
    /* stall: no progress for stall_timeout */
    hf_fota_config c = seed_cfg();
    c.stall_timeout = 60;
    h_init(h, &c);
    h_start(h);
    h_run(h, HF_PH_DOWNLOAD, 100);
    h_run(h, -1, 2);
    download_without_progress(h, 40);
    CHECK_STR(h->failed, "ESTALLED");
    /* detection never answered */
    c = seed_cfg();
    c.detect_timeout = 20;
    h_init(h, &c);
    h_start(h);
    h_run(h, HF_PH_DETECT, 100);
    h_ok(h, NULL, NULL);                    /* AT^FOTADET OK, then silence */
    for (int i = 0; i < 20 && !hf_fota_terminal(&h->f); i++) {
        h_timer(h);
        if (h->pending)
            h_ok(h, "^FOTASTATE: 11", NULL);
    }
    CHECK_STR(h->failed, "ETIMEDOUT");
    /* a URC slipped into the AT^FOTASTATE? answer: the last line counts */
    c = seed_cfg();
    h_init(h, &c);
    h_start(h);
    h_ok(h, "12.815.01.03.00", NULL);
    h_ok(h, NULL, NULL);
    h_ok(h, NULL, NULL);
    CHECK_STR(h->pend, "AT^FOTASTATE?");
    h_ok(h, "^FOTASTATE: 14", "^FOTASTATE: 10");
    CHECK_STR(h->pend, "AT^FOTADET");
}

/* Cancel while a command is in flight: AT^FOTADL=0 waits for that answer; the
 * late answer (even a timeout) of the old phase neither fails nor advances. */
static void test_stale_answers(void)
{
    harness *h = seed_started();
    h_run(h, HF_PH_DOWNLOAD, 100);
    h_ok(h, NULL, NULL);
    h_urc(h, "^FOTASTATE: 30");
    h_timer(h);
    CHECK_STR(h->pend, "AT^FOTADLQ");
    h_simple(h, HF_EV_CANCEL);
    CHECK_INT(h->f.phase, HF_PH_DISCARD);
    CHECK_STR(h->pend, "AT^FOTADLQ");            /* nothing new written yet */
    h_result(h, HF_FF_TIMEOUT, -1, NULL, NULL, 0);
    CHECK_STR(h->pend, "AT^FOTADL=0");
    h_ok(h, NULL, NULL);
    CHECK_STR(h->pend, "AT^FOTASTATE?");         /* the discard is confirmed */
    CHECK_STR(h->failed, "");
    h_ok(h, "^FOTASTATE: 10", NULL);
    CHECK_STR(h->failed, "ECANCELED");
    CHECK_INT(h_sent_count(h, "AT^FOTADLQ"), 1);

    /* the reboot wait counts from the moment the port went away */
    h = seed_started();
    h_run(h, HF_PH_REBOOT, 500);
    h->now += 100;                                /* port still there for 100 s */
    h_simple(h, HF_EV_PORT_LOST);
    CHECK(h->timer >= h->now + 179, "deadline from the port loss");
    h->now += 150;
    h_simple(h, HF_EV_TIMER);
    CHECK_INT(h->f.phase, HF_PH_REBOOT);
}

static void test_send_shapes(void)
{
    harness *h = seed_started();
    h_ok(h, "12.815.01.03.00", NULL);
    h_ok(h, NULL, NULL);
    hf_fota_event ev = {.kind = HF_EV_RESULT, .id = h->pend_id, .final = HF_FF_OK};
    h->pending = 0;
    h->now += 1;
    ev.now = h->now;
    hf_fota_feed(&h->f, &ev, &h->a);
    const hf_fota_action *send = NULL;
    for (size_t i = 0; i < h->a.n; i++)
        if (h->a.a[i].kind == HF_ACT_SEND)
            send = &h->a.a[i];
    CHECK(send && !strcmp(send->text, "AT^FOTASTATE?"), "state query");
    CHECK(send && send->expect == HF_FOTA_EXPECT_PREFIX && send->prefix &&
          !strcmp(send->prefix, "^FOTASTATE:"), "prefix for the engine");
    /* a result for another command (stale id) is ignored */
    unsigned long id = send ? send->id : 0;
    hf_fota_event stale = {.kind = HF_EV_RESULT, .id = id + 100, .final = HF_FF_OK, .now = h->now};
    CHECK_INT(hf_fota_feed(&h->f, &stale, &h->a), 0);
    CHECK_INT(h->f.cmd, HF_CMD_STATE);
}

/* ---- every (phase, event) pair -------------------------------------------------------- */

/* Drive a fresh FSM into phase p. Returns 0 when reached. */
static int reach(harness *h, hf_fota_phase p)
{
    hf_fota_config c = seed_cfg();
    if (p == HF_PH_PREPARE)
        c.check_prereq = 1;
    if (p == HF_PH_DECIDE_UPGRADE || p == HF_PH_UPGRADE)
        c.mode.auto_upgrade = 0;
    h_init(h, &c);
    if (p == HF_PH_DECIDE_UPGRADE || p == HF_PH_UPGRADE)
        h->m.auto_upgrade = 0;
    if (p == HF_PH_IDLE)
        return 0;
    h_start(h);
    switch (p) {
    case HF_PH_DISCARD: h->on_download = HF_DEC_REJECT; break;
    case HF_PH_DETECT: h->m.urc_quiet = 1; break;
    default: break;
    }
    hf_fota_phase via = p;
    if (p == HF_PH_PAUSED || p == HF_PH_RECOVER)
        via = HF_PH_DOWNLOAD;
    if (p == HF_PH_FAILED) {
        h_simple(h, HF_EV_CANCEL);
        return h->f.phase == p ? 0 : -1;
    }
    h_run(h, (int)via, 2000);
    if (p == HF_PH_PAUSED) {
        h_run(h, -1, 2);
        h_simple(h, HF_EV_PAUSE);
        h_run(h, (int)p, 20);
    } else if (p == HF_PH_RECOVER) {
        h_simple(h, HF_EV_PORT_LOST);
    }
    return h->f.phase == p ? 0 : -1;
}

/* Event variants for a kind: n-th variant (returns 0 when there is no such variant). */
static int make_event(harness *h, hf_fota_event_kind k, int v, hf_fota_event *ev,
                      const char **lines, size_t *lens)
{
    static const char *states[] = {"^FOTASTATE: 10", "^FOTASTATE: 11",
        "^FOTASTATE: 12,12.815.01.04.00,79114,\"x\"", "^FOTASTATE: 13,20", "^FOTASTATE: 14",
        "^FOTASTATE: 20,52", "^FOTASTATE: 30", "^FOTASTATE: 31", "^FOTASTATE: 40",
        "^FOTASTATE: 50", "^FOTASTATE: 90", "^FOTASTATE: 80", "^FOTASTATE: garbage",
        "^RSSI: 20", "^FOTASTATE: 12"};
    memset(ev, 0, sizeof *ev);
    ev->kind = k;
    switch (k) {
    case HF_EV_RESULT: {
        static const hf_fota_final fins[] = {HF_FF_OK, HF_FF_OK, HF_FF_OK, HF_FF_ERROR,
                                             HF_FF_CME, HF_FF_CME, HF_FF_TIMEOUT,
                                             HF_FF_PORTLOST, HF_FF_CANCELLED, HF_FF_OK};
        if (v >= 10)
            return 0;
        ev->final = fins[v];
        ev->id = v == 9 ? 999999 : h->pend_id;     /* 9: a stale id */
        ev->text = v == 5 ? "FOTA is in collision state" : "SIM PIN required";
        ev->text_len = strlen(ev->text);
        if (v == 1) {
            lines[0] = "^FOTASTATE: 40";
            lines[1] = "^FOTADLQ: 1,\"IMAGE\",1324,1324";
        } else {
            lines[0] = "12.815.01.04.00";
            lines[1] = "^FOTASTATE: 90";
        }
        lens[0] = strlen(lines[0]);
        lens[1] = strlen(lines[1]);
        ev->lines = lines;
        ev->line_lens = lens;
        ev->nlines = v == 2 ? 0 : 2;
        return 1;
    }
    case HF_EV_URC:
        if (v >= (int)(sizeof states / sizeof states[0]))
            return 0;
        ev->line = states[v];
        ev->line_len = strlen(states[v]);
        return 1;
    case HF_EV_STATE: {
        static hf_fotastate st;
        if (v >= (int)(sizeof states / sizeof states[0]) ||
            hf_parse_fotastate(states[v], strlen(states[v]), &st, NULL) < 0)
            return v < (int)(sizeof states / sizeof states[0]) ? 2 : 0;
        ev->state = &st;
        return 1;
    }
    case HF_EV_PROGRESS: {
        static hf_fotadlq files[2] = {{1, "IMAGE", 1324, 1324}, {2, "XNV", 90000, 77778}};
        if (v >= 2)
            return 0;
        ev->files = files;
        ev->nfiles = v ? 2 : 1;
        return 1;
    }
    case HF_EV_DECISION:
        if (v >= 5)
            return 0;
        ev->decision = (hf_fota_decision)(v);   /* 0 is invalid on purpose */
        return 1;
    case HF_EV_TIMER:
        if (v >= 3)
            return 0;
        ev->now = v == 0 ? h->now : v == 1 ? h->timer : h->now + 1e6;
        return 1;
    default:
        return v == 0;
    }
}

static void test_cross_product(void)
{
    harness *h = &H;
    int pairs = 0, reached = 0;
    for (int p = 0; p < HF_PH_COUNT; p++) {
        if (reach(h, (hf_fota_phase)p) < 0) {
            CHECK(0, "could not reach phase %s", hf_fota_phase_name((hf_fota_phase)p));
            continue;
        }
        reached++;
        for (int k = HF_EV_RESULT; k < HF_EV_COUNT; k++) {
            for (int v = 0;; v++) {
                reach(h, (hf_fota_phase)p);
                const char *lines[2];
                size_t lens[2];
                hf_fota_event ev;
                int r = make_event(h, (hf_fota_event_kind)k, v, &ev, lines, lens);
                if (!r)
                    break;
                if (r == 2)
                    continue;
                if (k == HF_EV_TIMER && v == 1 && h->timer < 0)
                    continue;
                double t = ev.now;
                if (k == HF_EV_URC)
                    h_note_state_line(h, ev.line);
                if (k == HF_EV_STATE)
                    h_note_state(h, ev.state);
                if (k == HF_EV_RESULT) {
                    for (size_t i = 0; i < ev.nlines; i++)
                        h_note_state_line(h, lines[i]);
                    if (!h->pending)
                        ev.id = 0;
                }
                h->last_kind = ev.kind;
                if (k == HF_EV_PORT_LOST || (k == HF_EV_RESULT && ev.id == h->pend_id))
                    h->pending = 0;
                ev.now = t ? t : h->now;
                hf_fota_feed(&h->f, &ev, &h->a);
                h_actions(h);
                pairs++;
                EXPECT((unsigned)h->f.phase < HF_PH_COUNT, "phase in range");
                /* and the machine still runs to an end with the module */
                h->auto_decide = 1;
                h_run(h, -1, 3000);
                EXPECT(hf_fota_terminal(&h->f) || h->f.phase == HF_PH_PAUSED ||
                      h->f.phase == HF_PH_IDLE || h->f.phase == HF_PH_DOWNLOADED ||
                      h->f.phase == HF_PH_DECIDE_UPGRADE || h->f.phase == HF_PH_REBOOT ||
                      h->f.phase == HF_PH_RECOVER || h->f.phase == HF_PH_DOWNLOAD ||
                      h->f.phase == HF_PH_DECIDE_DOWNLOAD || h->f.phase == HF_PH_VERIFY,
                      "phase %s event %d/%d ends in %s", hf_fota_phase_name((hf_fota_phase)p),
                      k, v, hf_fota_phase_name(h->f.phase));
                EXPECT(h->violations == 0, "violations");
                EXPECT(h->m.fwup_count <= 1, "module got AT^FWUP %d times", h->m.fwup_count);
            }
        }
    }
    CHECK_INT(reached, HF_PH_COUNT);
    CHECK(pairs > 400, "pairs exercised: %d", pairs);
    fprintf(stderr, "cross product: %d phases, %d (phase, event variant) cases\n", reached, pairs);
}

/* Specific expected transitions for the meaningful pairs. */
static void test_transitions(void)
{
    static const struct {
        hf_fota_phase from;
        const char *urc;            /* ^FOTASTATE line, or NULL */
        hf_fota_event_kind kind;    /* when urc is NULL */
        int decision;
        hf_fota_phase to;
        const char *failed;
    } t[] = {
        {HF_PH_DETECT, "^FOTASTATE: 11", 0, 0, HF_PH_DETECT, NULL},
        {HF_PH_DETECT, "^FOTASTATE: 12,12.815.01.04.00,1,\"d\"", 0, 0, HF_PH_DECIDE_DOWNLOAD, NULL},
        {HF_PH_DETECT, "^FOTASTATE: 14", 0, 0, HF_PH_DONE, NULL},
        {HF_PH_DETECT, "^FOTASTATE: 13,52", 0, 0, HF_PH_FAILED, "EDETECT"},
        {HF_PH_DETECT, NULL, HF_EV_CANCEL, 0, HF_PH_FAILED, "ECANCELED"},
        {HF_PH_DETECT, NULL, HF_EV_PORT_LOST, 0, HF_PH_FAILED, "EPORTLOST"},
        {HF_PH_DECIDE_DOWNLOAD, NULL, HF_EV_DECISION, HF_DEC_DOWNLOAD, HF_PH_DOWNLOAD, NULL},
        {HF_PH_DECIDE_DOWNLOAD, NULL, HF_EV_DECISION, HF_DEC_DEFER, HF_PH_DONE, NULL},
        {HF_PH_DECIDE_DOWNLOAD, NULL, HF_EV_DECISION, HF_DEC_REJECT, HF_PH_DISCARD, NULL},
        {HF_PH_DECIDE_DOWNLOAD, NULL, HF_EV_DECISION, HF_DEC_UPGRADE, HF_PH_DECIDE_DOWNLOAD, NULL},
        {HF_PH_DECIDE_DOWNLOAD, "^FOTASTATE: 30", 0, 0, HF_PH_DOWNLOAD, NULL},
        {HF_PH_DOWNLOAD, "^FOTASTATE: 40", 0, 0, HF_PH_DOWNLOADED, NULL},
        {HF_PH_DOWNLOAD, "^FOTASTATE: 20,52", 0, 0, HF_PH_FAILED, "EDOWNLOAD"},
        {HF_PH_DOWNLOAD, "^FOTASTATE: 50", 0, 0, HF_PH_REBOOT, NULL},
        {HF_PH_DOWNLOAD, NULL, HF_EV_PORT_LOST, 0, HF_PH_RECOVER, NULL},
        {HF_PH_DOWNLOAD, NULL, HF_EV_CANCEL, 0, HF_PH_DISCARD, NULL},
        {HF_PH_PAUSED, NULL, HF_EV_RESUME, 0, HF_PH_DOWNLOAD, NULL},
        {HF_PH_PAUSED, NULL, HF_EV_CANCEL, 0, HF_PH_DISCARD, NULL},
        {HF_PH_DOWNLOADED, "^FOTASTATE: 50", 0, 0, HF_PH_REBOOT, NULL},
        {HF_PH_DOWNLOADED, NULL, HF_EV_PORT_LOST, 0, HF_PH_REBOOT, NULL},
        {HF_PH_DECIDE_UPGRADE, NULL, HF_EV_DECISION, HF_DEC_UPGRADE, HF_PH_UPGRADE, NULL},
        /* issue 11.4: an image left in 40 is applied at the next reboot: defer,
         * reject and cancel discard it; only keep_until_reboot leaves it */
        {HF_PH_DECIDE_UPGRADE, NULL, HF_EV_DECISION, HF_DEC_DEFER, HF_PH_DISCARD, NULL},
        {HF_PH_DECIDE_UPGRADE, NULL, HF_EV_DECISION, HF_DEC_REJECT, HF_PH_DISCARD, NULL},
        {HF_PH_DECIDE_UPGRADE, NULL, HF_EV_DECISION, HF_DEC_KEEP, HF_PH_DONE, NULL},
        {HF_PH_DECIDE_UPGRADE, NULL, HF_EV_DECISION, HF_DEC_DOWNLOAD, HF_PH_DECIDE_UPGRADE, NULL},
        {HF_PH_DECIDE_UPGRADE, NULL, HF_EV_CANCEL, 0, HF_PH_DISCARD, NULL},
        {HF_PH_DOWNLOADED, NULL, HF_EV_CANCEL, 0, HF_PH_DISCARD, NULL},
        {HF_PH_DECIDE_DOWNLOAD, NULL, HF_EV_DECISION, HF_DEC_KEEP, HF_PH_DONE, NULL},
        {HF_PH_REBOOT, NULL, HF_EV_CANCEL, 0, HF_PH_REBOOT, NULL},
        {HF_PH_REBOOT, NULL, HF_EV_PORT_BACK, 0, HF_PH_REBOOT, NULL},   /* port never lost */
        {HF_PH_REBOOT, "^FOTASTATE: 90", 0, 0, HF_PH_VERIFY, NULL},
        {HF_PH_RECOVER, NULL, HF_EV_PORT_BACK, 0, HF_PH_RECOVER, NULL}, /* reads the state */
        {HF_PH_DONE, "^FOTASTATE: 10", 0, 0, HF_PH_DONE, NULL},
        {HF_PH_FAILED, NULL, HF_EV_PORT_LOST, 0, HF_PH_FAILED, NULL},
        {HF_PH_PROBE, NULL, HF_EV_CANCEL, 0, HF_PH_FAILED, "ECANCELED"},
    };
    harness *h = &H;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (reach(h, t[i].from) < 0) {
            CHECK(0, "reach %s", hf_fota_phase_name(t[i].from));
            continue;
        }
        h->failed[0] = '\0';
        if (t[i].urc) {
            h_urc(h, t[i].urc);
        } else if (t[i].kind == HF_EV_DECISION) {
            h_decide(h, (hf_fota_decision)t[i].decision);
        } else {
            h_simple(h, t[i].kind);
        }
        CHECK(h->f.phase == t[i].to, "case %zu: %s -> %s, want %s", i,
              hf_fota_phase_name(t[i].from), hf_fota_phase_name(h->f.phase),
              hf_fota_phase_name(t[i].to));
        if (t[i].failed)
            CHECK_STR(h->failed, t[i].failed);
    }
}

/* ---- journal ------------------------------------------------------------------------ */

static harness H2;

/* Stop in phase p, crash (snapshot -> text -> parse), restart a new FSM from the
 * journal against the same module, and finish. AT^FWUP at most once overall. */
static void test_restore_every_phase(void)
{
    for (int p = HF_PH_PROBE; p < HF_PH_COUNT; p++) {
        for (int auto_up = 0; auto_up <= 1; auto_up++) {
            hf_fota_config c = full_cfg(auto_up);
            c.skip_model_check = 1;
            harness *h = &H;
            h_init(h, &c);
            h->m.auto_upgrade = auto_up;
            h_start(h);
            if (p == HF_PH_PAUSED) {
                h_run(h, HF_PH_DOWNLOAD, 2000);
                h_run(h, -1, 2);
                h_simple(h, HF_EV_PAUSE);
            }
            if (p == HF_PH_RECOVER) {
                h_run(h, HF_PH_DOWNLOAD, 2000);
                h_run(h, -1, 2);
                h->m.port_up = 0;
                h_simple(h, HF_EV_PORT_LOST);
                sim_reset(&h->m);
            }
            h_run(h, p, 2000);
            /* also crash right after AT^FWUP went out, before its answer */
            if (p == HF_PH_UPGRADE)
                for (int i = 0; i < 5 && strcmp(h->pend, "AT^FWUP") && !hf_fota_terminal(&h->f); i++)
                    h_run(h, -1, 1);
            hf_fota_snapshot snap, back;
            hf_fota_snapshot_take(&h->f, &snap);
            char text[HF_JOURNAL_TEXT_MAX];
            hf_error e;
            CHECK(hf_journal_format(&snap, text, sizeof text) > 0, "format");
            CHECK_INT(hf_journal_parse(text, strlen(text), &back, &e), 0);
            int fw1 = h->m.fwup_count;
            int was_fwup = snap.fwup_sent;
            /* the module carries on by itself while the host is down */
            sim m = h->m;
            if (h->pending && !strcmp(h->pend, "AT^FWUP") && m.state == 40) {
                m.fwup_count++;
                m.state = 50;
            }
            if (m.state == 30) {
                m.state = 40;
                m.done = m.total;
            }
            harness *g = &H2;
            h_init(g, &c);
            g->m = m;
            g->m.port_up = 1;     /* the new host process opens the port */
            g->m.fwup_count = m.fwup_count;
            g->image_fwups = was_fwup;
            hf_strlcpy(g->fed_offer, sizeof g->fed_offer, h->fed_offer);
            if (p == HF_PH_IDLE)
                continue;
            CHECK_INT(hf_fota_restore(&g->f, &back, &e), 0);
            h_start(g);
            if (g->m.state == 50) {
                g->m.port_up = 1;
            }
            h_run(g, -1, 3000);
            CHECK(hf_fota_terminal(&g->f), "restore in %s ends (in %s)",
                  hf_fota_phase_name((hf_fota_phase)p), hf_fota_phase_name(g->f.phase));
            CHECK(g->m.fwup_count <= 1, "restore in %s: AT^FWUP %d times",
                  hf_fota_phase_name((hf_fota_phase)p), g->m.fwup_count);
            if (was_fwup)
                CHECK_INT(h_sent_count(g, "AT^FWUP"), 0);
            if (back.image_verified && m.state == 40)
                CHECK_INT(h_sent_count(g, "AT^FOTADL=1"), 0);
            if (!back.imei[0]) {
                /* a journal naming no module (only a probe-phase snapshot here; a
                 * real one comes from a read_imei=false run): nothing confirms the
                 * module, so nothing that changes its state goes to it */
                CHECK(!strcmp(g->failed, "EIDENTITY") || !strcmp(g->done, "upgraded"),
                      "restore without IMEI in %s: %s/%s", hf_fota_phase_name((hf_fota_phase)p),
                      g->done, g->failed);
            } else if (p != HF_PH_FAILED && p != HF_PH_DONE && strcmp(g->done, "upgraded") &&
                strcmp(g->done, "no_new_version")) {
                CHECK(0, "restore in %s (auto %d): %s/%s", hf_fota_phase_name((hf_fota_phase)p),
                      auto_up, g->done, g->failed);
                h_dump(g);
            }
            CHECK_INT(g->violations, 0);
            (void)fw1;
        }
    }
}

/* A host restarted from a journal written after AT^FWUP finds the module still
 * up (state 50) and loses the port in the middle of its probe: that is the upgrade's
 * reset, so the machine waits and verifies; it neither fails nor resends AT^FWUP.
 * (Found by spec/flow_journal_spec.lua against the simulator: it failed EPORTLOST.) */
static void test_restore_port_lost_in_probe(void)
{
    hf_fota_snapshot s = snap_fwup(HF_PH_REBOOT);
    s.size = 79114;
    s.image_seq = 1;
    harness *h = seed_restored(&s);
    CHECK_STR(h->pend, "AT+GMR");
    h_result(h, HF_FF_PORTLOST, -1, NULL, NULL, 0);
    h_simple(h, HF_EV_PORT_LOST);
    CHECK_INT(h->f.phase, HF_PH_RECOVER);
    CHECK(h->reopen, "waits for the port");
    CHECK_STR(h->failed, "");
    h_simple(h, HF_EV_PORT_BACK);
    CHECK_STR(h->pend, "AT+CGSN");            /* the journal's module? */
    h_ok(h, "351234567890124", NULL);
    CHECK_STR(h->pend, "AT^FOTASTATE?");
    h_ok(h, "^FOTASTATE: 90", NULL);
    CHECK_INT(h->f.phase, HF_PH_VERIFY);
    CHECK_STR(h->pend, "AT+GMR");
    h_ok(h, "12.815.01.04.00", NULL);
    CHECK_STR(h->pend, "AT^FOTASTATE?");
    h_ok(h, "^FOTASTATE: 90", NULL);
    CHECK_STR(h->done, "upgraded");
    CHECK_INT(h_sent_count(h, "AT^FWUP"), 0);

    /* a journal from before the download: a lost port is still a failure */
    s.phase = HF_PH_DECIDE_DOWNLOAD;
    s.fwup_sent = 0;
    s.image_verified = 0;
    h = seed_restored(&s);
    h_result(h, HF_FF_PORTLOST, -1, NULL, NULL, 0);
    h_simple(h, HF_EV_PORT_LOST);
    CHECK_STR(h->failed, "EPORTLOST");
}

/* K3 (fault campaign): a host killed while discarding a refused offer (journal
 * phase discard) must not, restarted, download that offer; a deferred run's
 * journal (phase done) asks the policy again. Only a journal from the download
 * on means the policy already said download. */
static void test_restore_discard_never_downloads(void)
{
    static const hf_fota_phase phases[] = {HF_PH_DISCARD, HF_PH_DONE, HF_PH_DOWNLOAD};
    for (size_t i = 0; i < sizeof phases / sizeof phases[0]; i++) {
        hf_fota_config c = seed_cfg();
        harness *h = &H;
        hf_fota_snapshot s;
        hf_error e;
        memset(&s, 0, sizeof s);
        s.version = HF_FOTA_SNAPSHOT_VERSION;
        s.phase = phases[i];
        strcpy(s.from_version, "12.815.01.03.00");
        strcpy(s.target_version, phases[i] == HF_PH_DISCARD ? "11.815.01.04.00" : "12.815.01.04.00");
        strcpy(s.imei, "351234567890124");
        s.size = 79114;
        h_init(h, &c);
        CHECK_INT(hf_fota_restore(&h->f, &s, &e), 0);
        h_start(h);
        h_ok(h, "12.815.01.03.00", NULL);   /* AT+GMR */
        h_ok(h, "351234567890124", NULL);   /* AT+CGSN: the journal's IMEI */
        h_ok(h, NULL, NULL);                /* AT^FOTACFG */
        h_ok(h, NULL, NULL);                /* AT^FOTAMODE */
        CHECK_STR(h->pend, "AT^FOTASTATE?");
        h_ok(h, "^FOTASTATE: 12", NULL);
        if (phases[i] == HF_PH_DOWNLOAD) {
            /* a restored run continues the download: the mode again first (2.3.3) */
            CHECK_STR(h->pend, "AT^FOTAMODE=0,0,1,1");
            h_ok(h, NULL, NULL);
            CHECK_STR(h->pend, "AT^FOTADL=1");
        } else {
            CHECK_INT(h_sent_count(h, "AT^FOTADL=1"), 0);
            if (phases[i] == HF_PH_DISCARD)
                CHECK_STR(h->pend, "AT^FOTADL=0");   /* older: refused again */
            else
                CHECK_INT(h->decisions_dl, 1);       /* deferred: asked again */
        }
    }
}

/* Fault campaign seed 6985: a journal of an approved download, but the module upgraded
 * to that very version while no host watched (automatic upgrade after the host died in
 * 40) and the server offers it again (a bare 12). The approval is for a version newer
 * than what runs: not downloaded again, the offer is dropped as not newer. */
static void test_restore_approved_but_running_it(void)
{
    hf_fota_snapshot s = snap_in(HF_PH_DOWNLOAD);
    s.size = 79114;
    harness *h = seed_restored(&s);
    h_ok(h, "12.815.01.04.00", NULL);   /* AT+GMR: it runs the journal's target */
    h_ok(h, "351234567890124", NULL);   /* AT+CGSN */
    h_ok(h, NULL, NULL);                /* AT^FOTACFG */
    h_ok(h, NULL, NULL);                /* AT^FOTAMODE */
    CHECK_STR(h->pend, "AT^FOTASTATE?");
    h_ok(h, "^FOTASTATE: 12", NULL);
    CHECK_INT(h_sent_count(h, "AT^FOTADL=1"), 0);
    CHECK_STR(h->pend, "AT^FOTADL=0");
}

/* The module already found a version (12) but the host never saw the 12 URC (it was
 * restarted before any journal): AT^FOTASTATE? answers a bare 12. Downloading an
 * image of unknown version would end in ENOTARGET; instead: AT^FOTADL=0, detect again.
 * (Found by spec/flow_journal_spec.lua: host killed right after AT^FOTADET.) */
static void test_offer_of_unknown_version(void)
{
    harness *h = seed_started();
    h_ok(h, "12.815.01.03.00", NULL);       /* AT+GMR */
    h_ok(h, NULL, NULL);                    /* AT^FOTACFG */
    h_ok(h, NULL, NULL);                    /* AT^FOTAMODE */
    CHECK_STR(h->pend, "AT^FOTASTATE?");
    h_ok(h, "^FOTASTATE: 12", NULL);
    CHECK_INT(h->decisions_dl, 0);
    CHECK_STR(h->pend, "AT^FOTADL=0");
    h_ok(h, NULL, NULL);
    h_ok(h, "^FOTASTATE: 10", NULL);        /* AT^FOTASTATE?: the discard took */
    CHECK_INT(h->f.phase, HF_PH_DETECT);
    CHECK_STR(h->pend, "AT^FOTADET");
    h_ok(h, NULL, NULL);
    h_urc(h, "^FOTASTATE: 11");
    h_urc(h, "^FOTASTATE: 12,12.815.01.04.00,79114,\"Support send SMS background\"");
    CHECK_INT(h->f.phase, HF_PH_DECIDE_DOWNLOAD);
    CHECK_INT(h->decisions_dl, 1);
    CHECK_STR(h->failed, "");

    /* forced: the caller accepts an unknown version, no second query */
    hf_fota_config c = seed_cfg();
    c.force = 1;
    h_init(h, &c);
    h_start(h);
    h_ok(h, "12.815.01.03.00", NULL);
    h_ok(h, NULL, NULL);
    h_ok(h, NULL, NULL);
    h_ok(h, "^FOTASTATE: 12", NULL);
    CHECK_INT(h->f.phase, HF_PH_DECIDE_DOWNLOAD);
    CHECK_INT(h_sent_count(h, "AT^FOTADL=0"), 0);
}

/* K1 (fault campaign): the 12 URC with the version is lost during detection and
 * the state poll answers a bare 12. No download of an image whose version was
 * never read: discard and detect again; after max_redetect, ENOTARGET. */
static void test_lost_offer_urc_never_downloads(void)
{
    harness *h = seed_started();
    h_ok(h, "12.815.01.03.00", NULL);       /* AT+GMR */
    h_ok(h, NULL, NULL);                    /* AT^FOTACFG */
    h_ok(h, NULL, NULL);                    /* AT^FOTAMODE */
    h_ok(h, "^FOTASTATE: 10", NULL);
    CHECK_STR(h->pend, "AT^FOTADET");
    h_ok(h, NULL, NULL);
    h_urc(h, "^FOTASTATE: 11");
    h_urc(h, "^FOTASTATE: 12");             /* the version fields were lost */
    CHECK_INT(h->decisions_dl, 0);
    CHECK_INT(h_sent_count(h, "AT^FOTADL=1"), 0);
    CHECK_STR(h->pend, "AT^FOTADL=0");
    h_ok(h, NULL, NULL);
    h_ok(h, "^FOTASTATE: 10", NULL);
    CHECK_STR(h->pend, "AT^FOTADET");

    /* every detection loses the version: give up with ENOTARGET, never download */
    for (int i = 0; i < 12 && !h->failed[0]; i++) {
        if (strcmp(h->pend, "AT^FOTADET") == 0) {
            h_ok(h, NULL, NULL);
            h_urc(h, "^FOTASTATE: 11");
            h_urc(h, "^FOTASTATE: 12");
        } else if (!strcmp(h->pend, "AT^FOTASTATE?")) {
            h_ok(h, "^FOTASTATE: 10", NULL);
        } else if (h->pend[0]) {
            h_ok(h, NULL, NULL);
        }
    }
    CHECK_STR(h->failed, "ENOTARGET");
    CHECK_INT(h_sent_count(h, "AT^FOTADL=1"), 0);
    CHECK_INT(h->decisions_dl, 0);
    /* the last offer was dropped too: the module is left idle */
    CHECK_INT(h_sent_count(h, "AT^FOTADL=0"), h_sent_count(h, "AT^FOTADET"));
}

/* The URC "^FOTASTATE: 12,<version>,..." arriving inside the AT^FOTASTATE? answer
 * (same prefix, taken as a response line) keeps its version. */
static void test_offer_inside_state_answer(void)
{
    harness *h = seed_started();
    h_ok(h, "12.815.01.03.00", NULL);
    h_ok(h, NULL, NULL);
    h_ok(h, NULL, NULL);
    CHECK_STR(h->pend, "AT^FOTASTATE?");
    h_ok(h, "^FOTASTATE: 12,12.815.01.04.00,79114,\"x\"", "^FOTASTATE: 12");
    CHECK_INT(h->f.phase, HF_PH_DECIDE_DOWNLOAD);
    CHECK_INT(h->decisions_dl, 1);
    CHECK_STR(h->f.target.text, "12.815.01.04.00");
}

static void test_journal_text(void)
{
    hf_fota_snapshot s, b;
    memset(&s, 0, sizeof s);
    s.version = 1;
    s.phase = HF_PH_REBOOT;
    strcpy(s.from_version, "12.815.01.03.00");
    strcpy(s.target_version, "12.815.01.04.00");
    s.size = 79114;
    s.fwup_sent = 1;
    s.image_verified = 1;
    s.image_seq = 1;
    strcpy(s.imei, "351234567890124");
    s.started_at = 100.5;
    s.phase_at = 200.25;
    char t[HF_JOURNAL_TEXT_MAX];
    hf_error e;
    int n = hf_journal_format(&s, t, sizeof t);
    CHECK(n > 0, "format");
    CHECK_INT(hf_journal_parse(t, (size_t)n, &b, &e), 0);
    CHECK_STR(b.target_version, "12.815.01.04.00");
    CHECK_INT(b.fwup_sent, 1);
    CHECK_INT(b.phase, HF_PH_REBOOT);
    hf_fota f;
    hf_fota_config c = seed_cfg();
    hf_fota_init(&f, &c, NULL);
    CHECK_INT(hf_fota_restore(&f, &b, &e), 0);
    /* every truncation and every single-byte change is rejected or still valid */
    for (int k = 0; k < n; k++)
        CHECK(hf_journal_parse(t, (size_t)k, &b, &e) == -1, "truncated at %d accepted", k);
    int accepted = 0;
    for (int k = 0; k < n; k++) {
        char m[HF_JOURNAL_TEXT_MAX];
        memcpy(m, t, (size_t)n);
        m[k] = m[k] == '1' ? '7' : 'Z';
        if (hf_journal_parse(m, (size_t)n, &b, &e) == 0) {
            hf_fota_init(&f, &c, NULL);
            if (hf_fota_restore(&f, &b, &e) == 0)
                accepted++;
        }
    }
    CHECK(accepted < 20, "mutations accepted: %d", accepted);
    /* semantic checks of hf_fota_restore */
    hf_fota_snapshot bad = s;
    bad.image_verified = 0;          /* FWUP for an unverified image */
    hf_fota_init(&f, &c, NULL);
    CHECK_INT(hf_fota_restore(&f, &bad, &e), -1);
    bad = s;
    strcpy(bad.imei, "12ab");
    CHECK_INT(hf_fota_restore(&f, &bad, &e), -1);
    bad = s;
    bad.phase = (hf_fota_phase)99;
    CHECK_INT(hf_fota_restore(&f, &bad, &e), -1);
    bad = s;
    strcpy(bad.target_version, "abc");
    CHECK_INT(hf_fota_restore(&f, &bad, &e), -1);
    bad = s;
    bad.fwup_sent = 2;
    CHECK_INT(hf_fota_restore(&f, &bad, &e), -1);
    CHECK_STR(e.code, "EJOURNAL");
    CHECK_INT(hf_journal_parse("hwfota-journal 2\n", 17, &b, &e), -1);
}

/* ---- random sequences ---------------------------------------------------------------- */

static unsigned rng_state;
static unsigned rnd(unsigned n)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (rng_state >> 8) % n;
}

static void test_random(void)
{
    harness *h = &H;
    int sequences = 4000, fwups = 0, dones = 0, ran = 0, bad = 0;
    rng_state = 20261125;
    for (int s = 0; s < sequences; s++) {
        hf_fota_config c = rnd(2) ? seed_cfg() : full_cfg((int)rnd(2));
        c.skip_model_check = 1;
        c.force = rnd(8) == 0;
        h_init(h, &c);
        h->m.auto_upgrade = c.mode.auto_upgrade;
        h->m.resume = (int)rnd(2);
        h->m.upgrade_ok = rnd(4) != 0;
        h->m.urc_quiet = rnd(5) == 0;
        if (rnd(4) == 0)
            strcpy(h->m.offer, rnd(2) ? "12.815.01.03.00" : "12.815.01.02.09");
        h_start(h);
        for (int step = 0; step < 300 && !hf_fota_terminal(&h->f); step++) {
            unsigned r = rnd(100);
            if (r < 65) {
                h_run(h, -1, 1);
                continue;
            }
            const char *lines[2];
            size_t lens[2];
            hf_fota_event ev;
            hf_fota_event_kind k = (hf_fota_event_kind)(1 + rnd(HF_EV_COUNT - 1));
            int v = (int)rnd(16);
            if (!make_event(h, k, v, &ev, lines, lens) || (ev.kind == HF_EV_STATE && !ev.state))
                continue;
            if (k == HF_EV_URC)
                h_note_state_line(h, ev.line);
            if (k == HF_EV_STATE)
                h_note_state(h, ev.state);
            if (k == HF_EV_RESULT)
                for (size_t i = 0; i < ev.nlines; i++)
                    h_note_state_line(h, lines[i]);
            if (k == HF_EV_PORT_LOST || (k == HF_EV_RESULT && ev.id == h->pend_id))
                h->pending = 0;
            if (k == HF_EV_PORT_BACK)
                h->reopen = 0;
            h->last_kind = k;
            h->now += rnd(10);
            ev.now = k == HF_EV_TIMER ? ev.now : h->now;
            hf_fota_feed(&h->f, &ev, &h->a);
            h_actions(h);
        }
        fwups += h_sent_count(h, "AT^FWUP");
        dones += !strcmp(h->done, "upgraded");
        if (h->violations) {
            fprintf(stderr, "sequence %d violated the safety rules\n", s);
            h_dump(h);
            bad = s + 1;
            break;
        }
        ran++;
    }
    /* One check for the whole test, whatever the number of sequences (the safety
     * checks inside them count only when they fail). */
    CHECK(bad == 0 && ran == sequences, "random sequences (%d): %d ran clean, sequence %d broke "
          "the safety rules", sequences, ran, bad - 1);
    printf("# random sequences (%d): %d ran clean\n", sequences, ran);
    CHECK(fwups > 50, "random runs sent AT^FWUP %d times (coverage)", fwups);
    CHECK(dones > 100, "random runs upgraded %d times (coverage)", dones);
}

/* Time the owner reopens the port after a loss: the module is back. */
static void h_port_back_after(harness *h, double secs)
{
    CHECK_INT(h->reopen, 1);
    h->reopen = 0;
    h->now += secs;
    h->m.port_up = 1;
    h_simple(h, HF_EV_PORT_BACK);
    /* a known IMEI is confirmed before anything else: the module answers its own */
    if (h->f.imei[0]) {
        CHECK_STR(h->pend, "AT+CGSN");
        h_ok(h, "351234567890124", NULL);
    }
}

/* K4 (fault campaign): AT^FWUP lost with the port (the module never got it). Back,
 * the module is still in 40 on the old firmware: AT^FWUP is never repeated; after
 * boot_settle the image is discarded so the module is not left in 40, and the run
 * fails EUPGRADE saying so. A module that starts its boot-time upgrade within the
 * settle time is followed to the end instead. */
static void test_fwup_lost_with_port(void)
{
    for (int boot_upgrade = 0; boot_upgrade <= 1; boot_upgrade++) {
        harness *h = host_fwup();
        h_start(h);
        run_until_sent(h, "AT^FWUP", 500);
        h_result(h, HF_FF_PORTLOST, -1, NULL, NULL, 0);   /* lost as it was written */
        h_simple(h, HF_EV_PORT_LOST);
        CHECK_INT(h->f.phase, HF_PH_REBOOT);
        h_port_back_after(h, 3);
        double back = h->now;
        CHECK_INT(h->f.phase, HF_PH_VERIFY);
        if (boot_upgrade) {
            h_run(h, -1, 3);                      /* AT+CGSN, AT+GMR, AT^FOTASTATE?: 40 */
            h->m.state = 50;                      /* the module applies it by itself */
            h_urc(h, "^FOTASTATE: 50");
            h_run(h, -1, 500);
            CHECK_STR(h->done, "upgraded");
            CHECK_STR(h->failed, "");
            CHECK_INT(h_sent_count(h, "AT^FOTADL=0"), 0);
        } else {
            h_run(h, -1, 500);
            CHECK_STR(h->failed, "EUPGRADE");
            CHECK(strstr(h->failed_msg, "never repeated") != NULL, "message: %s", h->failed_msg);
            CHECK_INT(h->failed_module_code, 40);
            CHECK_INT(h_sent_count(h, "AT^FOTADL=0"), 1);
            CHECK_INT(h->m.state, 10);            /* not left in 40 */
            CHECK(h->now >= back + h->f.cfg.boot_settle, "discarded %.1f s after the port came "
                  "back, before boot_settle", h->now - back);
        }
        CHECK_INT(h_sent_count(h, "AT^FWUP"), 1);
        CHECK_INT(h->m.fwup_count, 0);
        CHECK_INT(h->violations, 0);
    }
}

/* K5 (fault campaign): a power loss in 40; back, the module reads 40 but will start
 * its own boot-time upgrade a moment later. AT^FWUP waits boot_settle after the
 * port came back: the module's 50 arrives first and is followed, no AT^FWUP. Without
 * a 50 the AT^FWUP goes out once the settle time has passed, after a fresh 40. */
static void test_fwup_waits_for_boot_report(void)
{
    for (int boot_upgrade = 0; boot_upgrade <= 1; boot_upgrade++) {
        harness *h = host_fwup();
        h->auto_decide = 0;
        h_start(h);
        h->now += 100;                             /* the port has been up long */
        h_run(h, HF_PH_DECIDE_DOWNLOAD, 500);
        h_decide(h, HF_DEC_DOWNLOAD);
        h_run(h, HF_PH_DECIDE_UPGRADE, 500);
        CHECK_INT(h->f.phase, HF_PH_DECIDE_UPGRADE);
        h->m.port_up = 0;                          /* power loss */
        h_simple(h, HF_EV_PORT_LOST);
        h_port_back_after(h, 5);
        double back = h->now;
        h_run(h, HF_PH_DECIDE_UPGRADE, 50);       /* verify: 40 without AT^FWUP */
        CHECK_INT(h->f.phase, HF_PH_DECIDE_UPGRADE);
        h_decide(h, HF_DEC_UPGRADE);
        CHECK_INT(h->f.phase, HF_PH_UPGRADE);
        CHECK_INT(h->pending, 0);                  /* nothing written yet */
        CHECK(h->timer >= back + h->f.cfg.boot_settle - 1e-9, "timer at %.1f, settle until %.1f",
              h->timer, back + h->f.cfg.boot_settle);
        if (boot_upgrade) {
            h->now += 2;
            h->m.state = 50;
            h_urc(h, "^FOTASTATE: 50");
            CHECK_INT(h->f.phase, HF_PH_REBOOT);
            h_run(h, -1, 500);
            CHECK_STR(h->done, "upgraded");
            CHECK_INT(h_sent_count(h, "AT^FWUP"), 0);
        } else {
            h_timer(h);
            CHECK_STR(h->pend, "AT^FOTASTATE?");
            h_run(h, -1, 500);
            CHECK_STR(h->done, "upgraded");
            CHECK_INT(h_sent_count(h, "AT^FWUP"), 1);
        }
        CHECK_INT(h->violations, 0);
    }
}

/* K7 (fault campaign): the discard of a refused offer is confirmed by the state:
 * AT^FOTADL=0 timed out or lost with the port is tried again; the run reports
 * "not_newer" only once the module is idle, and fails when it never gets there. */
static void test_discard_confirmed(void)
{
    for (int how = 0; how < 3; how++) {
        hf_fota_config c = seed_cfg();
        c.read_imei = 1;                            /* confirmed when the port is back */
        harness *h = &H;
        h_init(h, &c);
        strcpy(h->m.offer, "12.815.01.02.00");      /* older: refused */
        h->stop_cmd = "AT^FOTADL=0";
        h_start(h);
        h_run(h, -1, 500);
        CHECK_INT(h->f.phase, HF_PH_DISCARD);
        CHECK_STR(h->pend, "AT^FOTADL=0");
        h->stop_cmd = NULL;
        if (how == 0) {                              /* no answer: ask the state */
            h_result(h, HF_FF_TIMEOUT, -1, NULL, NULL, 0);
            CHECK_STR(h->pend, "AT^FOTASTATE?");
            h_ok(h, "^FOTASTATE: 12,12.815.01.02.00,79114,\"x\"", NULL);
            CHECK_STR(h->done, "");
            CHECK_INT(h->pending, 0);                /* still 12: again at the next poll */
            h_timer(h);
            CHECK_STR(h->pend, "AT^FOTADL=0");
        } else if (how == 1) {                       /* port lost: again once back */
            h_result(h, HF_FF_PORTLOST, -1, NULL, NULL, 0);
            h_simple(h, HF_EV_PORT_LOST);
            CHECK_STR(h->done, "");
            h_port_back_after(h, 2);
            CHECK_STR(h->pend, "AT^FOTADL=0");
        } else {                                     /* the module never leaves 12 */
            double t0 = h->now;
            for (int i = 0; i < 100 && !h->failed[0]; i++) {
                if (!h->pending)
                    h_timer(h);                      /* paced: poll_interval */
                else if (!strcmp(h->pend, "AT^FOTADL=0"))
                    h_ok(h, NULL, NULL);
                else
                    h_ok(h, "^FOTASTATE: 12", NULL);
            }
            CHECK_STR(h->failed, "EMODULE");
            CHECK_INT(h->failed_module_code, 12);
            CHECK_STR(h->done, "");
            /* bounded by discard_timeout, not by a count of instant retries */
            CHECK(h->now - t0 >= c.discard_timeout - 1e-9, "failed after %.1f s", h->now - t0);
            CHECK(h->now - t0 <= c.discard_timeout + c.poll_interval, "failed after %.1f s",
                  h->now - t0);
            continue;
        }
        h_run(h, -1, 50);
        CHECK_STR(h->done, "not_newer");
        CHECK_INT(h_sent_count(h, "AT^FOTADL=0"), 2);
        CHECK_INT(h->m.state, 10);
    }
}

/* Issue 11.1: a module that keeps an end state (90 after its upgrade, 80, a kept 14)
 * and refuses AT^FOTADET in it ("collision") is cleared with AT^FOTADL=0, confirmed
 * idle, then detected from 10; never ECOLLISION "bring the WAN down". */
static void test_end_state_cleared(void)
{
    static const int states[] = {90, 80, 14, 13, 20};
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
        hf_fota_config c = seed_cfg();
        harness *h = &H;
        h_init(h, &c);
        h->m.state = states[i];               /* the harness module refuses FOTADET != 10 */
        if (states[i] == 90)
            strcpy(h->m.version, h->m.offer); /* upgraded: the same version is offered */
        h_start(h);
        h_run(h, -1, 500);
        CHECK(strcmp(h->failed, "ECOLLISION") != 0, "state %d: %s", states[i], h->failed_msg);
        CHECK_STR(h->failed, "");
        CHECK_STR(h->done, states[i] == 90 ? "not_newer" : "upgraded");
        CHECK_INT(h_sent_count(h, "AT^FOTADET"), 1);   /* from 10 only */
        CHECK(h->nsent > 0 && h_sent_count(h, "AT^FOTADL=0") >= 1, "state %d: no clear",
              states[i]);
        /* AT^FOTADL=0 went out before AT^FOTADET */
        int dl0 = -1, det = -1;
        for (size_t k = 0; k < h->nsent; k++) {
            if (dl0 < 0 && !strcmp(h->sent[k], "AT^FOTADL=0")) dl0 = (int)k;
            if (det < 0 && !strcmp(h->sent[k], "AT^FOTADET")) det = (int)k;
        }
        CHECK(dl0 >= 0 && det > dl0, "state %d: clear %d, detect %d", states[i], dl0, det);
    }
}

/* Issue 11.1, the other firmware: the module keeps 90 through AT^FOTADL=0 (never 10)
 * but detects from it; and one that refuses detection in its kept state even after
 * the clear: an error naming the state, not the WAN. Also a collision during
 * detection while the module says 14 (kept, e.g. after a lost partial download). */
static void test_end_state_tolerated(void)
{
    for (int how = 0; how < 3; how++) {
        hf_fota_config c = seed_cfg();
        harness *h = &H;
        h_init(h, &c);
        h->m.state = 90;
        h->stop_cmd = "AT^FOTADL=0";
        h_start(h);
        h_run(h, -1, 500);
        CHECK_INT(h->f.phase, HF_PH_DISCARD);
        h_ok(h, NULL, NULL);                  /* OK, but the state stays 90 */
        double t0 = h->now;
        h->stop_cmd = "AT^FOTADET";
        for (int i = 0; i < 100 && h->f.phase == HF_PH_DISCARD; i++) {
            if (!h->pending)
                h_timer(h);
            else if (!strcmp(h->pend, "AT^FOTASTATE?"))
                h_ok(h, "^FOTASTATE: 90", NULL);
            else
                h_ok(h, NULL, NULL);
        }
        CHECK(h->now - t0 >= c.discard_timeout - 1e-9, "gave up after %.1f s", h->now - t0);
        CHECK_INT(h->f.phase, HF_PH_DETECT);   /* tries detection from 90 */
        CHECK_STR(h->pend, "AT^FOTADET");
        h->stop_cmd = NULL;
        if (how == 0) {                       /* accepted from 90 */
            h->m.state = 10;
            h_run(h, -1, 500);
            CHECK_STR(h->done, "upgraded");
        } else {                              /* refused: name the state */
            h_result(h, HF_FF_CME, -1, "FOTA is in collision state", NULL, 0);
            CHECK_STR(h->failed, "EMODULE");
            CHECK_INT(h->failed_module_code, 90);
            CHECK(strstr(h->failed_msg, "90") && !strstr(h->failed_msg, "WAN"), "msg: %s",
                  h->failed_msg);
        }
    }
    /* the port came back during the download with the module in a kept 14 (the
     * partial download lost): detection is refused as a collision in 14, so the
     * state is cleared once and detection runs again */
    hf_fota_config c = seed_cfg();
    c.read_imei = 1;                         /* confirmed when the port is back (12.1) */
    harness *h = &H;
    h_init(h, &c);
    h_start(h);
    h_run(h, HF_PH_DOWNLOAD, 500);
    CHECK_INT(h->f.phase, HF_PH_DOWNLOAD);
    h_run(h, -1, 1);                         /* AT^FOTADL=1 answered */
    h->m.state = 14;
    h->m.done = 0;
    h->m.port_up = 0;
    h_simple(h, HF_EV_PORT_LOST);
    h_run(h, -1, 2000);
    CHECK_STR(h->failed, "");
    CHECK_STR(h->done, "upgraded");
    CHECK_INT(h_sent_count(h, "AT^FOTADET"), 3);   /* first, refused in 14, after the clear */
    CHECK_INT(h_sent_count(h, "AT^FOTADL=0"), 1);
    /* a collision because an automatic query began (11 reported): wait for its result */
    h_init(h, &c);
    h_start(h);
    run_until_sent(h, "AT^FOTADET", 500);
    h_urc(h, "^FOTASTATE: 11");
    h_result(h, HF_FF_CME, -1, "FOTA is in collision state", NULL, 0);
    CHECK_STR(h->failed, "");
    CHECK_INT(h->f.phase, HF_PH_DETECT);
    h->m.state = 12;
    h_urc(h, "^FOTASTATE: 12,12.815.01.04.00,79114,\"x\"");
    h_run(h, -1, 2000);
    CHECK_STR(h->done, "upgraded");
    CHECK_INT(h_sent_count(h, "AT^FOTADET"), 1);
    /* a real data session while idle is still ECOLLISION with its advice */
    fails_with(&c, s_collision, "ECOLLISION");
}

/* Issue 11.2: AT^FOTADL=0 answers OK before the module is idle. The discard waits
 * (paced AT^FOTASTATE?, or the ^FOTASTATE: 10 URC) instead of failing at once. */
static void test_discard_waits(void)
{
    for (int urc = 0; urc < 2; urc++) {
        hf_fota_config c = seed_cfg();
        harness *h = &H;
        h_init(h, &c);
        strcpy(h->m.offer, "12.815.01.02.00");   /* older: refused, discarded */
        h_start(h);
        run_until_sent(h, "AT^FOTADL=0", 500);
        h_ok(h, NULL, NULL);                     /* OK; the module is still in 12 */
        CHECK_STR(h->pend, "AT^FOTASTATE?");
        h_ok(h, "^FOTASTATE: 12", NULL);
        double t0 = h->now;
        for (int i = 0; i < 3; i++) {            /* 3 polls, still 12 */
            CHECK_INT(h->pending, 0);
            CHECK_STR(h->done, "");
            CHECK_STR(h->failed, "");
            h_timer(h);
            CHECK_STR(h->pend, "AT^FOTASTATE?");
            h_ok(h, "^FOTASTATE: 12", NULL);
        }
        CHECK(h->now - t0 >= 3 * c.poll_interval - 1e-9, "polls not paced: %.2f s",
              h->now - t0);
        h->m.state = 10;
        if (urc) {
            h->now += 0.5;
            h_urc(h, "^FOTASTATE: 10");
        } else {
            h_timer(h);
            h_ok(h, "^FOTASTATE: 10", NULL);
        }
        CHECK_STR(h->failed, "");
        CHECK_STR(h->done, "not_newer");
        CHECK_INT(h_sent_count(h, "AT^FOTADL=0"), 1);
    }
}

/* Issue 11.4: after the download, defer/reject/cancel discard the image (a module in
 * 40 applies it at its next reboot); keep_until_reboot keeps it. */
static void test_decide_upgrade_discards(void)
{
    const hf_fota_decision ds[] = {HF_DEC_DEFER, HF_DEC_REJECT, HF_DEC_KEEP, 0};
    const char *want[] = {"deferred", "rejected", "deferred", ""};
    for (int i = 0; i < 4; i++) {
        hf_fota_config c = seed_cfg();
        c.mode.auto_upgrade = 0;
        harness *h = &H;
        h_init(h, &c);
        h->m.auto_upgrade = 0;
        h_start(h);
        h_run(h, HF_PH_DECIDE_UPGRADE, 2000);
        CHECK_INT(h->f.phase, HF_PH_DECIDE_UPGRADE);
        CHECK_INT(h->m.state, 40);
        if (ds[i])
            h_decide(h, ds[i]);
        else
            h_simple(h, HF_EV_CANCEL);
        h_run(h, -1, 500);
        CHECK_STR(h->done, want[i]);
        if (!ds[i])
            CHECK_STR(h->failed, "ECANCELED");
        CHECK_INT(h->m.state, ds[i] == HF_DEC_KEEP ? 40 : 10);
        CHECK_INT(h_sent_count(h, "AT^FOTADL=0"), ds[i] == HF_DEC_KEEP ? 0 : 1);
        CHECK_INT(h_sent_count(h, "AT^FWUP"), 0);
    }
}

/* Fuzz finding (offer-after-failed-run-then-restart-same-version): a failed run's
 * journal names target T; unwatched, the module fetched another image U to 40. The
 * restored target is not trusted: the image is discarded and detected again, never
 * AT^FWUP judged by T. (A deferral's journal, phase done, is trusted: below.) */
static void test_restore_terminal_target_not_trusted(void)
{
    static const hf_fota_phase phases[] = {HF_PH_FAILED};
    for (size_t i = 0; i < sizeof phases / sizeof phases[0]; i++) {
        hf_fota_config c = seed_cfg();
        c.mode.auto_upgrade = 0;
        harness *h = &H;
        hf_fota_snapshot s = snap_in(phases[i]);
        hf_error e;
        s.image_verified = 1;
        h_init(h, &c);
        h->m.auto_upgrade = 0;
        h->m.state = 40;                  /* holds U = the running version */
        strcpy(h->m.offer, "12.815.01.05.00");
        CHECK_INT(hf_fota_restore(&h->f, &s, &e), 0);
        h_start(h);
        h_run(h, -1, 500);
        CHECK_INT(h_sent_count(h, "AT^FOTADL=0"), 1);
        CHECK(h_sent_count(h, "AT^FOTADET") >= 1, "detected again");
        CHECK_STR(h->done, "upgraded");
        CHECK_STR(h->f.target.text, "12.815.01.05.00");
        CHECK_INT(h_sent_count(h, "AT^FWUP"), 1);
        CHECK_INT(h->violations, 0);
    }

    /* a deferral (phase done) from disk, and a failed machine carried within one
     * process (session steps: the port stayed open): trusted */
    for (int carried = 0; carried <= 1; carried++) {
        hf_fota_config c = seed_cfg();
        c.mode.auto_upgrade = 0;
        harness *h = &H;
        hf_fota_snapshot s = snap_in(carried ? HF_PH_FAILED : HF_PH_DONE);
        hf_error e;
        s.image_verified = 1;
        h_init(h, &c);
        h->m.auto_upgrade = 0;
        h->m.state = 40;
        strcpy(h->fed_offer, "12.815.01.04.00");
        CHECK_INT(hf_fota_restore_from(&h->f, &s, carried, &e), 0);
        h_start(h);
        h_run(h, -1, 500);
        CHECK_INT(h_sent_count(h, "AT^FOTADL=0"), 0);
        CHECK_INT(h_sent_count(h, "AT^FOTADET"), 0);
        CHECK_STR(h->done, "upgraded");
        CHECK_INT(h->violations, 0);
    }
}

/* Fault campaign seed 179 (hang): the 40 URC ends the download while an AT^FOTADLQ
 * hangs; the boot_settle wake-up falls while that answer is still pending. When it
 * comes, the upgrade must still start (the wait was lost: the host hung). */
static void test_settle_timer_during_stale_command(void)
{
    hf_fota_config c = full_cfg(0);
    harness *h = &H;
    hf_fota_snapshot snap = snap_in(HF_PH_DOWNLOAD);
    hf_error e;
    h_init(h, &c);
    CHECK_INT(hf_fota_restore(&h->f, &snap, &e), 0);
    h->m.auto_upgrade = 0;
    h->m.state = 30;
    strcpy(h->fed_offer, "12.815.01.04.00");   /* announced to the earlier process */
    h->stop_cmd = "AT^FOTADLQ";
    h_start(h);
    h_run(h, -1, 500);
    CHECK_STR(h->pend, "AT^FOTADLQ");
    CHECK(h->now < c.boot_settle, "still within the settle time (%.1f s)", h->now);
    h->stop_cmd = NULL;
    h->m.state = 40;
    h->m.done = h->m.total;
    h_urc(h, "^FOTASTATE: 40");
    CHECK_INT(h->f.phase, HF_PH_DECIDE_UPGRADE);
    h_decide(h, HF_DEC_UPGRADE);
    CHECK_INT(h->f.phase, HF_PH_UPGRADE);
    h_timer(h);                                /* settle over, AT^FOTADLQ still hangs */
    CHECK_STR(h->pend, "AT^FOTADLQ");
    h->now += 5;
    h_ok(h, "^FOTADLQ: 1,\"IMAGE\",1324,1324", NULL);
    h_run(h, -1, 500);
    CHECK_STR(h->done, "upgraded");
    CHECK_INT(h_sent_count(h, "AT^FWUP"), 1);
    CHECK_INT(h->violations, 0);
}

/* A fresh run (no journal) applies only an image it saw announced and downloaded
 * itself: no settle wait before AT^FWUP, however soon after the port opened. */
static void test_fresh_run_no_settle(void)
{
    harness *h = host_fwup();
    h->stop_cmd = "AT^FWUP";
    h_start(h);
    h_run(h, -1, 500);
    CHECK_STR(h->pend, "AT^FWUP");
    CHECK_INT(h->f.phase, HF_PH_UPGRADE);
    CHECK(h->now - h->f.phase_at < 1, "AT^FWUP %.1f s after the decision", h->now - h->f.phase_at);
    h->stop_cmd = NULL;
    h_run(h, -1, 500);
    CHECK_STR(h->done, "upgraded");
}

/* A machine that knew a target (restored from a deferral) finds the module idle and
 * detects again; the new 12 comes without its version (URC garbled): the old
 * target is not taken for it, the offer is dropped and detected again. */
static void test_detect_forgets_old_target(void)
{
    hf_fota_snapshot s = snap_in(HF_PH_DONE);   /* deferred, offer 12.815.01.04.00 */
    harness *h = seed_restored(&s);
    h_ok(h, "12.815.01.03.00", NULL);          /* AT+GMR */
    h_ok(h, "351234567890124", NULL);          /* AT+CGSN: the journal's IMEI */
    CHECK_STR(h->pend, "AT^FOTASTATE?");
    h_ok(h, "^FOTASTATE: 10", NULL);           /* the offer is gone */
    CHECK_STR(h->pend, "AT^FOTADET");
    h_ok(h, NULL, NULL);
    h_urc(h, "^FOTASTATE: 11");
    h_urc(h, "^FOTASTATE: 12");                /* its version lost */
    CHECK_INT(h->decisions_dl, 0);
    CHECK_STR(h->pend, "AT^FOTADL=0");
    CHECK_INT(h_sent_count(h, "AT^FOTADL=1"), 0);
}

/* Fuzz finding (recover-bare-12-after-fwup): restored after a refused AT^FWUP (journal
 * failed, fwup_sent=1, target kept to judge that upgrade), the port goes away in
 * configure; back, the module says a bare 12: a new offer of unknown version, not the
 * journal's target. No AT^FOTADL=1 for it. */
static void test_recover_bare_12_not_approved(void)
{
    hf_fota_snapshot s = snap_fwup(HF_PH_FAILED);
    harness *h = seed_restored(&s);
    h_ok(h, "12.815.01.03.00", NULL);          /* AT+GMR */
    h_ok(h, "351234567890124", NULL);          /* AT+CGSN: the journal's IMEI */
    CHECK_STR(h->pend, "AT^FOTASTATE?");
    h_result(h, HF_FF_PORTLOST, -1, NULL, NULL, 0);
    h_simple(h, HF_EV_PORT_LOST);
    CHECK_INT(h->f.phase, HF_PH_RECOVER);
    h_port_back_after(h, 2);
    CHECK_STR(h->pend, "AT^FOTASTATE?");
    for (int i = 0; i < 8 && !h->failed[0] && h->pending; i++) {
        if (!strcmp(h->pend, "AT^FOTASTATE?"))
            h_ok(h, "^FOTASTATE: 12", NULL);
        else
            h_ok(h, NULL, NULL);
    }
    CHECK_INT(h_sent_count(h, "AT^FOTADL=1"), 0);
    CHECK_STR(h->failed, "EUPGRADE");      /* the upgrade's result is not 90 */
}

/* Fuzz finding (offer-inside-answer-before-40): the AT^FOTASTATE? before AT^FWUP
 * answers "^FOTASTATE: 12,<older>,..." (a URC inside the answer) then 40: the offer
 * announced there is what the image is judged by: no AT^FWUP for an older version. */
static void test_offer_urc_inside_fwup_gate(void)
{
    harness *h = host_fwup();
    h_start(h);
    h_run(h, HF_PH_UPGRADE, 500);
    CHECK_INT(h->f.phase, HF_PH_UPGRADE);
    CHECK_STR(h->pend, "AT^FOTASTATE?");
    h_ok(h, "^FOTASTATE: 12,11.0,79114,\"x\"", "^FOTASTATE: 40");
    CHECK_INT(h_sent_count(h, "AT^FWUP"), 0);
    CHECK_STR(h->failed, "ESAFETY");
}

/* Issue 12.1: the port comes back as ANOTHER module (a reused path). Before any
 * command that changes the module's state, AT+CGSN is compared with the known IMEI:
 * a different one fails EIDENTITY, nothing else is sent and the journal is not
 * touched. Lost during the download (recover), after AT^FWUP (reboot), while
 * discarding, and on a journal restore. */
static const char *const OTHER_IMEI = "869999000000017";

static void swap_after_loss(harness *h, const char *where)
{
    CHECK(h->reopen, "%s: waits for the port", where);
    h->reopen = 0;
    h->now += 3;
    h->m.port_up = 1;
    h->m.state = 40;                  /* the other module holds an image */
    int journals = h->journals;
    size_t sent = h->nsent;
    h_simple(h, HF_EV_PORT_BACK);
    CHECK_STR(h->pend, "AT+CGSN");
    h_urc(h, "^FOTASTATE: 12,12.815.01.09.00,79114,\"x\"");  /* its words move nothing */
    h_ok(h, OTHER_IMEI, NULL);
    CHECK_STR(h->failed, "");                   /* one reading is not trusted: again */
    CHECK_STR(h->pend, "AT+CGSN");
    h_ok(h, OTHER_IMEI, NULL);                  /* two readings agree: another module */
    CHECK_STR(h->failed, "EIDENTITY");
    CHECK(strstr(h->failed_msg, OTHER_IMEI) && strstr(h->failed_msg, "351234567890124"),
          "%s: the message names both IMEIs: %s", where, h->failed_msg);
    CHECK_INT((int)h->nsent, (int)sent + 2);   /* AT+CGSN only */
    CHECK_INT(h->journals, journals);           /* the journal is our module's */
    CHECK_INT(h_sent_count(h, "AT^FWUP"), where[0] == 'r' ? 1 : 0);
}

/* A host-AT^FWUP run that loses its port a moment into the download. */
static harness *lost_in_download(void)
{
    harness *h = host_fwup();
    h_start(h);
    h_run(h, HF_PH_DOWNLOAD, 500);
    h_run(h, -1, 3);
    h->m.port_up = 0;
    h_simple(h, HF_EV_PORT_LOST);
    return h;
}

static void test_port_back_other_module(void)
{
    harness *h = &H;
    hf_fota_config c = full_cfg(0);
    /* during the download */
    h = lost_in_download();
    CHECK_INT(h->f.phase, HF_PH_RECOVER);
    swap_after_loss(h, "download");

    /* during the upgrade's reset, after AT^FWUP */
    h_init(h, &c);
    h->m.auto_upgrade = 0;
    h->stop_cmd = "AT^FWUP";
    h_start(h);
    h_run(h, -1, 500);
    h->stop_cmd = NULL;
    h_ok(h, NULL, NULL);
    CHECK_INT(h->f.phase, HF_PH_REBOOT);
    h->m.port_up = 0;
    h_simple(h, HF_EV_PORT_LOST);
    swap_after_loss(h, "reboot");

    /* while discarding a refused offer */
    h_init(h, &c);
    strcpy(h->m.offer, "12.105.28.00.00");     /* older than 12.105.29: refused */
    strcpy(h->m.version, "12.105.29.00.00");
    h->stop_cmd = "AT^FOTADL=0";
    h_start(h);
    h_run(h, -1, 500);
    CHECK_INT(h->f.phase, HF_PH_DISCARD);
    h->stop_cmd = NULL;
    h_result(h, HF_FF_PORTLOST, -1, NULL, NULL, 0);
    h_simple(h, HF_EV_PORT_LOST);
    swap_after_loss(h, "discard");

    /* the same module back: the run goes on, AT+CGSN asked once */
    h = lost_in_download();
    h_run(h, -1, 3000);
    CHECK_STR(h->done, "upgraded");
    CHECK_INT(h_sent_count(h, "AT+CGSN"), 3);   /* probe, port back, after the reset */

    /* a journal restored on a path where another module now is */
    hf_fota_snapshot snap = snap_in(HF_PH_DOWNLOAD);
    hf_error e;
    h_init(h, &c);
    CHECK_INT(hf_fota_restore(&h->f, &snap, &e), 0);
    h->m.state = 40;
    h_start(h);
    CHECK_STR(h->pend, "ATI");
    h_ok(h, "Model: MU609", "Revision: 12.815.01.03.00");
    CHECK_STR(h->pend, "AT+CGSN");
    h_ok(h, OTHER_IMEI, NULL);
    CHECK_STR(h->pend, "AT+CGSN");
    h_ok(h, OTHER_IMEI, NULL);
    CHECK_STR(h->failed, "EIDENTITY");
    CHECK_INT((int)h->nsent, 3);
    CHECK_INT(h->journals, 0);
}

/* Fault campaign seed 6173 (invariant I8): from the loss of the port until the IMEI
 * is confirmed after it came back, nothing the path says moves the run and no
 * state-changing command may go out. The driver reopens and sends its setup before
 * PORT_BACK; a ^FOTASTATE: 10 that arrived then was taken by a discard that was
 * going to detect again as "discard done", and AT^FOTADET went out before the
 * AT+CGSN of the port back. */
static int sent_at(const harness *h, const char *cmd, int n);

/* A phase deadline that passes while a command is in flight waits for that command's
 * result (the engine's own timeout bounds it): fault campaign seed 52249, where the
 * download's stall deadline ended the run while AT^FOTADL=1 still waited behind the
 * engine's resync, and the module was left with a start the host no longer watched. */
static void test_deadline_waits_for_command_in_flight(void)
{
    hf_fota_config c = seed_cfg();
    c.stall_timeout = 60;
    h_init(&H, &c);
    harness *h = &H;
    h_start(h);
    run_until_sent(h, "AT^FOTADL=1", 200);
    h->now += 61;                           /* the start is still unanswered */
    h_simple(h, HF_EV_TIMER);
    CHECK(!hf_fota_terminal(&h->f), "no %s while AT^FOTADL=1 is in flight",
          h->failed[0] ? h->failed : "failure");
    CHECK(h->f.timer_at < 0 || h->f.timer_at > h->now, "no timer due meanwhile (no spin)");
    h_ok(h, NULL, NULL);                    /* the module takes the start only now */
    CHECK(!hf_fota_terminal(&h->f), "the stall clock starts at the start's OK");
    CHECK(h->f.deadline >= h->now + 59, "stall deadline re-armed from the OK (%.0f)",
          h->f.deadline - h->now);
    download_without_progress(h, 60);
    CHECK_STR(h->failed, "ESTALLED");       /* no progress after it: stalled, as before */
    /* a deadline deferred behind a poll that brings nothing new fires at its result */
    h_init(h, &c);
    h_start(h);
    run_until_sent(h, "AT^FOTADL=1", 200);
    h_ok(h, NULL, NULL);
    h->now += 30;
    h_timer(h);
    for (int i = 0; i < 10 && !h->pending; i++)
        h_timer(h);
    CHECK(h->pending, "a poll in flight");
    h->now += 40;                           /* past the stall deadline, poll unanswered */
    h_simple(h, HF_EV_TIMER);
    CHECK(!hf_fota_terminal(&h->f), "deferred while the poll is in flight");
    if (!strcmp(h->pend, "AT^FOTADLQ"))
        h_ok(h, "^FOTADLQ: 1,\"IMAGE\",0,1324", NULL);
    else
        h_ok(h, "^FOTASTATE: 30", NULL);
    CHECK_STR(h->failed, "ESTALLED");
}

static void test_port_lost_says_nothing(void)
{
    for (int redetect = 0; redetect < 2; redetect++) {
        hf_fota_config c = seed_cfg();
        c.read_imei = 1;
        harness *h = &H;
        h_init(h, &c);
        strcpy(h->m.offer, "12.815.01.02.00");      /* older: refused, discarded */
        h->stop_cmd = "AT^FOTADL=0";
        h_start(h);
        h_run(h, -1, 500);
        h->stop_cmd = NULL;
        CHECK_INT(h->f.phase, HF_PH_DISCARD);
        /* a discard that detects again when idle (as for an offer of unknown version) */
        h->f.redetect = redetect;
        h_ok(h, NULL, NULL);                         /* AT^FOTADL=0: OK, but ... */
        CHECK_STR(h->pend, "AT^FOTASTATE?");
        h_ok(h, "^FOTASTATE: 12,12.815.01.02.00,79114,\"x\"", NULL);   /* ... still 12 */
        CHECK_INT(h->pending, 0);
        h_timer(h);                                  /* the discard wait polls */
        CHECK_STR(h->pend, "AT^FOTASTATE?");
        h_result(h, HF_FF_PORTLOST, -1, NULL, NULL, 0);
        h_simple(h, HF_EV_PORT_LOST);
        CHECK_INT(h->f.identity_ok, 0);              /* the gate closes at the loss */
        size_t sent = h->nsent;
        int journals = h->journals;
        h->m.state = 10;
        h_urc(h, "^FOTASTATE: 10");                  /* before PORT_BACK */
        h_simple(h, HF_EV_TIMER);
        CHECK_INT(h->f.phase, HF_PH_DISCARD);
        CHECK_STR(h->done, "");
        CHECK_STR(h->failed, "");
        CHECK_INT((int)h->nsent, (int)sent);
        CHECK_INT(h->journals, journals);
        h_port_back_after(h, 2);                     /* AT+CGSN: ours */
        CHECK_STR(h->pend, "AT^FOTADL=0");           /* the discard starts over */
        h_run(h, -1, 500);
        if (redetect) {
            int back = sent_at(h, "AT+CGSN", 1);
            CHECK(back > 0 && sent_at(h, "AT^FOTADET", 1) > back,
                  "AT^FOTADET only after the IMEI was confirmed");
        } else {
            CHECK_STR(h->done, "not_newer");
        }
    }

    /* after AT^FWUP: a 90 during the loss is not taken; the state is asked after the
     * IMEI matched, and the upgrade is still seen */
    harness *h = host_fwup();
    h->stop_cmd = "AT^FWUP";
    h_start(h);
    h_run(h, -1, 500);
    h->stop_cmd = NULL;
    h_ok(h, NULL, NULL);
    h->m.state = 50;
    h->m.port_up = 0;
    h_simple(h, HF_EV_PORT_LOST);
    CHECK_INT(h->f.phase, HF_PH_REBOOT);
    sim_reset(&h->m);
    h_urc(h, "^FOTASTATE: 90");
    CHECK_INT(h->f.phase, HF_PH_REBOOT);
    CHECK(h->f.last_state != 90, "the 90 of an unconfirmed module is not recorded");
    h_port_back_after(h, 3);
    CHECK_INT(h->f.phase, HF_PH_VERIFY);
    size_t asked = h->nsent;
    h_run(h, -1, 500);
    CHECK_STR(h->done, "upgraded");
    int state_after = 0;
    for (size_t i = asked; i < h->nsent; i++)
        state_after += !strcmp(h->sent[i], "AT^FOTASTATE?");
    CHECK(state_after >= 1, "the state is asked after the port came back");
}

/* Fault campaign seed 8579 (--drop 8, invariant I4): one AT+CGSN reading that differs
 * is not taken for another module. A line with a byte dropped is asked again; two
 * readings that agree on another IMEI are; readings that never agree end EIDENTITY
 * "cannot confirm" (the safe outcome). A new reference is taken from one reading only
 * when its check digit holds. */
static void test_imei_reading_not_trusted_alone(void)
{
    /* after a loss in the download: "35123456789012" (one byte dropped), then ours */
    harness *h = lost_in_download();
    CHECK_INT(h->reopen, 1);
    h->reopen = 0;
    h->now += 3;
    h->m.port_up = 1;
    h_simple(h, HF_EV_PORT_BACK);
    CHECK_STR(h->pend, "AT+CGSN");
    h_ok(h, "35123456789012", NULL);
    CHECK_STR(h->failed, "");
    CHECK_STR(h->pend, "AT+CGSN");
    h_ok(h, "351234567890124", NULL);
    CHECK_INT(h->f.identity_ok, 1);
    h_run(h, -1, 3000);
    CHECK_STR(h->done, "upgraded");

    /* three readings, no two alike (cmd_retries = 2): cannot confirm */
    h = lost_in_download();
    h->reopen = 0;
    h->now += 3;
    h->m.port_up = 1;
    h_simple(h, HF_EV_PORT_BACK);
    size_t sent = h->nsent;
    static const char *const reads[] = {"35123456789012", "869999000000017", "35123456789124"};
    for (size_t i = 0; i < 3; i++) {
        CHECK_STR(h->pend, "AT+CGSN");
        h_ok(h, reads[i], NULL);
    }
    CHECK_STR(h->failed, "EIDENTITY");
    CHECK(strstr(h->failed_msg, "cannot confirm") != NULL, "says so: %s", h->failed_msg);
    for (size_t i = sent; i < h->nsent; i++)
        CHECK_STR(h->sent[i], "AT+CGSN");

    /* a fresh probe: a cut first reading is not the reference; a reading whose
     * check digit holds is taken alone */
    hf_fota_config c = full_cfg(1);
    h_init(h, &c);
    h_start(h);
    run_until_sent(h, "AT+CGSN", 10);
    h_ok(h, "35123456789012", NULL);
    CHECK_STR(h->f.imei, "");
    CHECK_STR(h->pend, "AT+CGSN");
    h_ok(h, "351234567890124", NULL);
    CHECK_STR(h->f.imei, "351234567890124");
    h_run(h, -1, 3000);
    CHECK_STR(h->done, "upgraded");
    CHECK_INT(h_sent_count(h, "AT+CGSN"), 3);      /* probe (2), after the reset */

    /* a module whose IMEI has no valid check digit: the reference after two readings */
    h_init(h, &c);
    h_start(h);
    run_until_sent(h, "AT+CGSN", 10);
    h_ok(h, "351234567890123", NULL);
    CHECK_STR(h->pend, "AT+CGSN");
    h_ok(h, "351234567890123", NULL);
    CHECK_STR(h->f.imei, "351234567890123");
    CHECK_STR(h->failed, "");
}

/* A later attempt of a run on a reopened port (hf_fota_expect_imei): the probe's
 * AT+CGSN confirms the module the run started with by the same two-reading rule as
 * after a reopen, and nothing that changes the module goes out before it. */
static void test_expected_imei(void)
{
    harness *h = &H;
    hf_fota_config c = full_cfg(1);
    hf_error err;
    /* a cut reading of the expected module is asked again, not taken for another */
    h_init(h, &c);
    CHECK_INT(hf_fota_expect_imei(&h->f, "351234567890124", &err), 0);
    CHECK_INT(h->f.identity_ok, 0);
    h_start(h);
    run_until_sent(h, "AT+CGSN", 10);
    CHECK_INT(h->f.identity_ok, 0);                 /* the gate holds until confirmed */
    h_ok(h, "35123456789012", NULL);
    CHECK_STR(h->failed, "");
    CHECK_INT(h->f.identity_ok, 0);
    CHECK_STR(h->pend, "AT+CGSN");
    h_ok(h, "351234567890124", NULL);
    CHECK_INT(h->f.identity_ok, 1);
    h_run(h, -1, 3000);
    CHECK_STR(h->done, "upgraded");

    /* another module, read twice alike: EIDENTITY, only queries were sent */
    h_init(h, &c);
    CHECK_INT(hf_fota_expect_imei(&h->f, "351234567890124", &err), 0);
    h_start(h);
    run_until_sent(h, "AT+CGSN", 10);
    h_ok(h, "869999000000017", NULL);
    CHECK_STR(h->failed, "");
    h_ok(h, "869999000000017", NULL);
    CHECK_STR(h->failed, "EIDENTITY");
    CHECK(strstr(h->failed_msg, "different module") != NULL, "says so: %s", h->failed_msg);
    CHECK_INT(h_sent_count(h, "AT^FOTADET"), 0);
    CHECK_INT(h_sent_count(h, "AT^FOTADL=0"), 0);
    CHECK_INT(h_sent_count(h, "AT^FOTAMODE=0,0,0,1"), 0);

    /* refused: malformed, read_imei off, after start, against a journal's other IMEI */
    h_init(h, &c);
    CHECK_INT(hf_fota_expect_imei(&h->f, "3512345678901x4", &err), -1);
    CHECK_STR(err.code, "EINVAL");
    CHECK_INT(hf_fota_expect_imei(&h->f, "123", &err), -1);
    CHECK_STR(err.code, "EINVAL");
    hf_fota_config off = full_cfg(1);
    off.read_imei = 0;
    h_init(h, &off);
    CHECK_INT(hf_fota_expect_imei(&h->f, "351234567890124", &err), -1);
    CHECK(strstr(err.msg, "read_imei") != NULL, "says why: %s", err.msg);
    h_init(h, &c);
    h_start(h);
    CHECK_INT(hf_fota_expect_imei(&h->f, "351234567890124", &err), -1);
    CHECK_STR(err.code, "EBUSY");
    h_init(h, &c);
    hf_strlcpy(h->f.imei, sizeof h->f.imei, "869999000000017");   /* as a restore leaves it */
    CHECK_INT(hf_fota_expect_imei(&h->f, "351234567890124", &err), -1);
    CHECK_STR(err.code, "EIDENTITY");
}

/* read_imei=false: no IMEI to compare after a reopen or on a journal. Queries still
 * go out (the verify after AT^FWUP needs no state change), but the first command
 * that would change the module's state is refused: EIDENTITY, never sent. */
static void test_unconfirmed_identity_gate(void)
{
    harness *h = &H;
    hf_fota_config c = seed_cfg();
    h_init(h, &c);
    h_start(h);
    h_run(h, HF_PH_DOWNLOAD, 500);
    h_run(h, -1, 3);
    h->m.port_up = 0;
    h_simple(h, HF_EV_PORT_LOST);
    h_run(h, -1, 3000);
    CHECK_STR(h->failed, "EIDENTITY");
    CHECK_INT(h_sent_count(h, "AT+CGSN"), 0);
    CHECK_INT(h_sent_count(h, "AT^FOTADL=1"), 1);     /* the first start only */
    CHECK_INT(h_sent_count(h, "AT^FWUP"), 0);
    CHECK(strstr(h->failed_msg, "read_imei") != NULL, "says why: %s", h->failed_msg);

    /* a journal without an IMEI (written with read_imei=false) */
    hf_fota_snapshot snap = snap_in(HF_PH_DECIDE_UPGRADE);
    hf_error e;
    snap.imei[0] = '\0';
    snap.image_verified = 1;
    h_init(h, &c);
    CHECK_INT(hf_fota_restore(&h->f, &snap, &e), 0);
    h->m.state = 40;
    h_run(h, -1, 0);
    h_start(h);
    h_run(h, -1, 3000);
    CHECK_STR(h->failed, "EIDENTITY");
    CHECK_INT(h_sent_count(h, "AT^FWUP"), 0);
    CHECK_INT(h_sent_count(h, "AT^FOTADL=0"), 0);

    /* the seed flow (read_imei=false) still upgrades: after the reset only queries */
    h_init(h, &c);
    h_start(h);
    h_run(h, -1, 3000);
    CHECK_STR(h->done, "upgraded");
}

/* Index of the n-th (0-based) sent command equal to cmd, -1 when none. */
static int sent_at(const harness *h, const char *cmd, int n)
{
    for (size_t i = 0; i < h->nsent; i++)
        if (strcmp(h->sent[i], cmd) == 0 && n-- == 0)
            return (int)i;
    return -1;
}

/* Issue 11.3 (guide 2.3.3): the module continues a pending download only after
 * AT^FOTAMODE enabled resumable transfer since its boot. Every AT^FOTADL=1 that
 * starts or resumes a download follows an AT^FOTAMODE sent since the port last
 * opened: after a power loss (recover), with the caller's mode (resume forced on for
 * a resume), and without one (0,0,<auto_upgrade_ok>,1). The seed flow stays the
 * seed's sequence (test_seed_flow): configure's mode covers its first start. */
static void test_mode_before_every_download(void)
{
    harness *h = &H;
    for (int variant = 0; variant < 4; variant++) {
        /* 0: seed mode 0,0,1,1; 1: caller's mode with resume off; 2: no mode;
         * 3: no mode, auto_upgrade_ok */
        hf_fota_config c = seed_cfg();
        c.read_imei = 1;          /* the module is confirmed when the port is back (12.1) */
        const char *first = NULL, *again = "AT^FOTAMODE=0,0,1,1";
        if (variant == 1) {
            c.mode.auto_upgrade = 0;
            c.mode.resume = 0;
            again = "AT^FOTAMODE=0,0,0,1";   /* resume forced on to continue 31 */
        } else if (variant == 2) {
            c.has_mode = 0;
            first = again = "AT^FOTAMODE=0,0,0,1";
        } else if (variant == 3) {
            c.has_mode = 0;
            c.auto_upgrade_ok = 1;
            first = again = "AT^FOTAMODE=0,0,1,1";
        }
        h_init(h, &c);
        h->m.auto_upgrade = variant == 0 || variant == 3;
        h_start(h);
        h_run(h, HF_PH_DOWNLOAD, 100);
        h_run(h, -1, 4);                  /* some progress */
        CHECK_INT(h->f.phase, HF_PH_DOWNLOAD);
        int dl1 = sent_at(h, "AT^FOTADL=1", 0);
        CHECK(dl1 > 0, "download started (variant %d)", variant);
        if (first) {
            CHECK_STR(h->sent[dl1 - 1], first);
            CHECK_INT(sent_at(h, first, 1), -1);   /* once before the first start */
        } else {
            CHECK(strncmp(h->sent[dl1 - 1], "AT^FOTAMODE", 11) != 0,
                  "configure's mode covers the first start: no second AT^FOTAMODE (%s)",
                  h->sent[dl1 - 1]);
        }
        h->m.resume = 1;                  /* the partial download survives: 31 */
        h->m.port_up = 0;
        h_simple(h, HF_EV_PORT_LOST);     /* power loss */
        CHECK_INT(h->f.phase, HF_PH_RECOVER);
        h_port_back_after(h, 20);
        sim_reset(&h->m);
        CHECK_INT(h->m.state, 31);
        CHECK_STR(h->pend, "AT^FOTASTATE?");
        h_run(h, -1, 1);
        CHECK_STR(h->pend, again);        /* the mode, resume on ... */
        h_ok(h, NULL, NULL);
        CHECK_STR(h->pend, "AT^FOTADL=1"); /* ... then the resume */
        h_run(h, -1, 500);
        CHECK_STR(h->done, "upgraded");
        CHECK_INT(h_sent_count(h, "AT^FOTADET"), 1);   /* resumed, not detected again */
        CHECK_INT(h_sent_count(h, "AT^FWUP"), variant == 0 || variant == 3 ? 0 : 1);
        CHECK_INT(h->violations, 0);
    }
    /* refused: said, and the download is started all the same */
    hf_fota_config c = seed_cfg();
    c.has_mode = 0;
    h_init(h, &c);
    h->m.auto_upgrade = 0;
    h_start(h);
    run_until_sent(h, "AT^FOTAMODE=0,0,0,1", 100);
    int notices = h->notices;
    h_result(h, HF_FF_ERROR, -1, "COMMAND NOT SUPPORT", NULL, 0);
    CHECK(h->notices > notices, "the refusal is reported");
    CHECK_STR(h->pend, "AT^FOTADL=1");
}

/* A journal of a run whose AT^FWUP record was written (fwup_sent=1) and the module
 * in 40 on the old firmware: the module in 40 with hf_fota_restore. */
static void start_after_fwup_record(harness *h, const hf_fota_config *c, int retry,
                                    int carried)
{
    hf_fota_snapshot s = snap_in(HF_PH_UPGRADE);
    hf_error e;
    s.size = 79114;
    s.fwup_sent = 1;
    s.fwup_retry = retry;
    s.image_verified = 1;
    s.image_seq = 1;
    h_init(h, c);
    h->m.auto_upgrade = 0;
    h->m.state = 40;
    hf_strlcpy(h->fed_offer, sizeof h->fed_offer, "12.815.01.04.00");
    CHECK_INT(hf_fota_restore_from(&h->f, &s, carried, &e), 0);
    h_start(h);
}

/* Issue 12.9: the host was killed after the fwup_sent journal record, before
 * AT^FWUP reached the wire. Restarted, it finds the module in 40 on the old
 * firmware. Once the port has been up boot_settle s without a boot-time upgrade,
 * the command never acted: the policy is asked, and AT^FWUP goes out once more,
 * after a journal that records the retry (fwup_retry=1). A journal that already
 * records it discards and says what happened; a carried snapshot (the same process
 * wrote the command) keeps the old rule. */
static void test_fwup_record_without_command(void)
{
    hf_fota_config c = full_cfg(0);
    harness *h = &H;
    start_after_fwup_record(h, &c, 0, 0);
    double t0 = h->now;
    h->stop_cmd = "AT^FWUP";
    h_run(h, -1, 500);
    CHECK_STR(h->pend, "AT^FWUP");
    CHECK(h->now >= t0 + c.boot_settle, "AT^FWUP %.1f s after the start, before boot_settle",
          h->now - t0);
    CHECK_INT(h->decisions_up, 1);        /* the policy decides again */
    CHECK_INT(h->f.fwup_retry, 1);
    hf_fota_snapshot snap;
    hf_fota_snapshot_take(&h->f, &snap);
    CHECK_INT(snap.fwup_sent, 1);
    CHECK_INT(snap.fwup_retry, 1);
    char text[HF_JOURNAL_TEXT_MAX];
    CHECK(hf_journal_format(&snap, text, sizeof text) > 0, "format");
    CHECK(strstr(text, "\nfwup_retry=1\n") != NULL, "journal records the retry:\n%s", text);
    h->stop_cmd = NULL;
    h_run(h, -1, 500);
    CHECK_STR(h->done, "upgraded");
    CHECK_INT(h->m.fwup_count, 1);
    CHECK_INT(h_sent_count(h, "AT^FWUP"), 1);
    CHECK_INT(h->violations, 0);

    /* the retry recorded and still 40: never a third time */
    start_after_fwup_record(h, &c, 1, 0);
    h_run(h, -1, 500);
    CHECK_STR(h->failed, "EUPGRADE");
    CHECK(strstr(h->failed_msg, "may not have reached the module") != NULL, "message: %s",
          h->failed_msg);
    CHECK_INT(h_sent_count(h, "AT^FWUP"), 0);
    CHECK_INT(h_sent_count(h, "AT^FOTADL=0"), 1);

    /* a carried snapshot: this process wrote AT^FWUP; the old rule holds */
    start_after_fwup_record(h, &c, 0, 1);
    h_run(h, -1, 500);
    CHECK_STR(h->failed, "EUPGRADE");
    CHECK_INT(h_sent_count(h, "AT^FWUP"), 0);

    /* found by fuzz_fsm: restored from a journal WITHOUT fwup_sent (decide_upgrade),
     * this process sends AT^FWUP, the port goes with it, the module stays in 40: that
     * is the in-process case (the command was written), no retry */
    {
        hf_fota_snapshot s = snap_in(HF_PH_DECIDE_UPGRADE);
        hf_error e;
        s.size = 79114;
        s.image_verified = 1;
        s.image_seq = 1;
        h_init(h, &c);
        h->m.auto_upgrade = 0;
        h->m.state = 40;
        hf_strlcpy(h->fed_offer, sizeof h->fed_offer, "12.815.01.04.00");
        CHECK_INT(hf_fota_restore(&h->f, &s, &e), 0);
        h_start(h);
        run_until_sent(h, "AT^FWUP", 500);
        h_result(h, HF_FF_PORTLOST, -1, NULL, NULL, 0);   /* lost as it was written */
        h_simple(h, HF_EV_PORT_LOST);
        h_port_back_after(h, 3);
        h_run(h, -1, 500);
        CHECK_STR(h->failed, "EUPGRADE");
        CHECK_INT(h_sent_count(h, "AT^FWUP"), 1);
        CHECK_INT(h->f.fwup_retry, 0);
        CHECK_INT(h->violations, 0);
    }

    /* the module starts its boot-time upgrade within the settle time: followed */
    start_after_fwup_record(h, &c, 0, 0);
    h_run(h, -1, 4);
    h->m.state = 50;
    h_urc(h, "^FOTASTATE: 50");
    h_run(h, -1, 500);
    CHECK_STR(h->done, "upgraded");
    CHECK_INT(h_sent_count(h, "AT^FWUP"), 0);

    /* journal text: fwup_retry reads back; without fwup_sent it is refused */
    hf_fota_snapshot b;
    hf_error e;
    snap.fwup_retry = 1;
    int n = hf_journal_format(&snap, text, sizeof text);
    CHECK_INT(hf_journal_parse(text, (size_t)n, &b, &e), 0);
    CHECK_INT(b.fwup_retry, 1);
    snap.fwup_retry = 0;
    n = hf_journal_format(&snap, text, sizeof text);
    CHECK(strstr(text, "fwup_retry") == NULL, "no line when 0");
    CHECK_INT(hf_journal_parse(text, (size_t)n, &b, &e), 0);
    CHECK_INT(b.fwup_retry, 0);
    b.fwup_sent = 0;
    b.fwup_retry = 1;
    h_init(h, &c);
    CHECK_INT(hf_fota_restore(&h->f, &b, &e), -1);
}

/* Issue 11.8: a prerequisite query the firmware does not know (COMMAND NOT SUPPORT,
 * ERROR, +CME ERROR: operation not supported) is unknown, not "SIM not ready": a
 * notice that quotes the module, and the run goes on. A SIM that needs its PIN or
 * is missing stays ESIM, and a real "not registered" stays ENOTREG. */
static void test_prereq_unsupported(void)
{
    harness *h = &H;
    static const struct {
        const char *cmd;
        hf_fota_final fin;
        long code;
        const char *text;
        const char *fails;          /* NULL: goes on */
    } cases[] = {
        {"AT+CPIN?", HF_FF_ERROR, -1, "COMMAND NOT SUPPORT", NULL},
        {"AT+CPIN?", HF_FF_ERROR, -1, "ERROR", NULL},
        {"AT+CPIN?", HF_FF_CME, 4, "operation not supported", NULL},
        {"AT+CREG?", HF_FF_ERROR, -1, "COMMAND NOT SUPPORT", NULL},
        {"AT+CGREG?", HF_FF_ERROR, -1, "ERROR", NULL},
        {"AT+CPIN?", HF_FF_CME, 11, "SIM PIN required", "ESIM"},
        {"AT+CPIN?", HF_FF_CME, 10, "SIM not inserted", "ESIM"},
        {"AT+CREG?", HF_FF_CME, 30, "no network service", "ENOTREG"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hf_fota_config c = full_cfg(0);
        h_init(h, &c);
        h->m.auto_upgrade = 0;
        h->stop_cmd = cases[i].cmd;
        h_start(h);
        h_run(h, -1, 100);
        CHECK_STR(h->pend, cases[i].cmd);
        h->stop_cmd = NULL;
        int notices = h->notices;
        h_result(h, cases[i].fin, cases[i].code, cases[i].text, NULL, 0);
        if (cases[i].fails) {
            CHECK_STR(h->failed, cases[i].fails);
            CHECK(strstr(h->failed_msg, cases[i].text) != NULL, "says what the module said: %s",
                  h->failed_msg);
            continue;
        }
        CHECK_STR(h->failed, "");
        CHECK(h->notices > notices, "case %zu: a notice", i);
        h_run(h, -1, 500);
        CHECK_STR(h->done, "upgraded");
    }
    /* +CPIN: SIM PIN answered: ESIM as before */
    hf_fota_config c = full_cfg(0);
    fails_with(&c, s_pin, "ESIM");
}

/* ---- the command table ----------------------------------------------------------------- */

/* Every row: a timeout resends only what is idempotent; the protocol reference's
 * commands that start, stop or apply something are not idempotent. */
static void test_command_table(void)
{
    hf_error e;
    CHECK(hf_fota_cmd_check_table(&e) == 0, "table consistent: %s", e.msg);
    static const hf_fota_cmd acting[] = {HF_CMD_FOTADET, HF_CMD_DL_START, HF_CMD_DL_PAUSE,
                                         HF_CMD_DL_STOP, HF_CMD_FWUP};
    for (size_t i = 0; i < sizeof acting / sizeof acting[0]; i++)
        CHECK(!hf_fota_cmd_get(acting[i])->idempotent, "%s is not idempotent",
              hf_fota_cmd_name(acting[i]));
    for (int c = 1; c < HF_CMD_COUNT; c++) {
        const hf_fota_cmd_def *r = hf_fota_cmd_get((hf_fota_cmd)c);
        CHECK(r->idempotent ? r->on_timeout == HF_TMO_RESEND : r->on_timeout != HF_TMO_RESEND,
              "%s: timeout policy %s, idempotent %d", r->text, hf_fota_tmo_name(r->on_timeout),
              r->idempotent);
        CHECK(hf_fota_cmd_by_name(r->name, strlen(r->name)) == (hf_fota_cmd)c, "by name %s",
              r->name);
    }
    CHECK_INT(hf_fota_cmd_by_name("nope", 4), HF_CMD_NONE);
    /* built texts go through the one parameter rule */
    char t[HF_FOTA_TEXT_MAX];
    hf_fota_cmd_params p = {.apn = "\b\b\b", .auth = 0};
    CHECK(hf_fota_cmd_text(HF_CMD_FOTACFG, &p, t, sizeof t, &e) < 0 &&
          !strcmp(e.code, "EINVAL") && strstr(e.msg, "control character"), "apn \\b: %s", e.msg);
    p.apn = "internet";
    p.auth = 3;
    CHECK(hf_fota_cmd_text(HF_CMD_FOTACFG, &p, t, sizeof t, &e) < 0, "auth 3 refused");
    p.auth = 2;
    CHECK(hf_fota_cmd_text(HF_CMD_FOTACFG, &p, t, sizeof t, &e) == 0 &&
          !strcmp(t, "AT^FOTACFG=\"internet\",\"\",\"\",2"), "fotacfg text %s", t);
    p.mode = (hf_fotamode){.resume = 1, .has_period = 1, .period = 0};
    CHECK(hf_fota_cmd_text(HF_CMD_FOTAMODE, &p, t, sizeof t, &e) < 0, "period 0 refused");
    p.mode.period = 7;
    CHECK(hf_fota_cmd_text(HF_CMD_FOTAMODE, &p, t, sizeof t, &e) == 0 &&
          !strcmp(t, "AT^FOTAMODE=0,0,0,1,7"), "fotamode text %s", t);
    /* the setup-command rule: harmless forms only, no FOTA command by any spelling */
    static const char *const good[] = {"ATE0", "ATE0V1&C1", "AT+CMEE=2", "AT^CURC=0", "",
                                       "hello"};
    static const char *const bad[] = {"AT^FOTADL=0", "at^fwup", "ATE0;^FWUP", "ATZ",
                                      "AT+CFUN=1,1", "ATE0\r", "xAT^FWUP",
                                      "AT+CGDCONT=1,\"IP\",\"^FWUP\""};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK(hf_fota_check_setup_command(good[i], strlen(good[i]), &e) == 0, "setup %s: %s",
              good[i], e.msg);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(hf_fota_check_setup_command(bad[i], strlen(bad[i]), &e) < 0 &&
              !strcmp(e.code, "EINVAL"), "setup %s refused", bad[i]);
    /* the answer parsers the machine and the Lua layer share */
    hf_fota_answer a;
    const char *ati[] = {"Manufacturer: Huawei", "model : MU509-b", "Revision: 12.815.03.01.00",
                         "IMEI: 351234567890124"};
    size_t al[4];
    for (size_t i = 0; i < 4; i++)
        al[i] = strlen(ati[i]);
    CHECK(hf_fota_cmd_parse(HF_CMD_ATI, ati, al, 4, &a, &e) == 0 && !strcmp(a.model, "MU509-b") &&
          !strcmp(a.firmware.text, "12.815.03.01.00") && !strcmp(a.imei, "351234567890124") &&
          !strcmp(a.manufacturer, "Huawei"), "ATI parsed");
    CHECK(hf_fota_cmd_parse(HF_CMD_ATI, ati, al, 2, &a, &e) < 0 && !strcmp(e.code, "EMODULE"),
          "ATI without a Revision");
    const char *st[] = {"^FOTASTATE: 12,12.1.2,100,\"d\"", "^FOTASTATE: 12"};
    size_t sl[2] = {strlen(st[0]), strlen(st[1])};
    CHECK(hf_fota_cmd_parse(HF_CMD_STATE, st, sl, 2, &a, &e) == 0 && a.nstates == 2 &&
          a.states[1].has_version && !strcmp(a.states[1].version.text, "12.1.2"),
          "a bare 12 answer takes the version of the 12 before it");
    const char *dlq[] = {"^FOTADLQ: 1,\"A\",150,100", "^FOTADLQ: 2,\"B\",0,100"};
    size_t dl[2] = {strlen(dlq[0]), strlen(dlq[1])};
    CHECK(hf_fota_cmd_parse(HF_CMD_DLQ, dlq, dl, 2, &a, &e) == 0 && a.progress.done == 100 &&
          a.progress.total == 200 && a.progress.percent == 50, "progress clamped and summed");
}

/* A timeout on each non-idempotent command the machine sends: never the same text
 * again in answer; ASK_STATE rows ask AT^FOTASTATE?, NEVER rows send nothing. */
static void test_no_blind_resend(void)
{
    static const struct {
        hf_fota_cmd cmd;
        hf_fota_decision on_download;
        int pause;
    } ways[] = {
        {HF_CMD_FOTADET, HF_DEC_DOWNLOAD, 0}, {HF_CMD_DL_START, HF_DEC_DOWNLOAD, 0},
        {HF_CMD_DL_PAUSE, HF_DEC_DOWNLOAD, 1}, {HF_CMD_DL_STOP, HF_DEC_REJECT, 0},
        {HF_CMD_FWUP, HF_DEC_DOWNLOAD, 0},
    };
    harness *h = &H;
    for (int c = 1; c < HF_CMD_COUNT; c++) {
        const hf_fota_cmd_def *r = hf_fota_cmd_get((hf_fota_cmd)c);
        if (r->idempotent)
            continue;
        size_t w = 0;
        while (w < sizeof ways / sizeof ways[0] && ways[w].cmd != (hf_fota_cmd)c)
            w++;
        int known = w < sizeof ways / sizeof ways[0];
        CHECK(known, "%s: no way to send it in this test", r->text);
        if (!known)
            continue;
        hf_fota_config cfg = seed_cfg();
        cfg.mode.auto_upgrade = 0;
        h_init(h, &cfg);
        h->m.auto_upgrade = 0;
        h->on_download = ways[w].on_download;
        h_start(h);
        if (ways[w].pause) {
            h_run(h, HF_PH_DOWNLOAD, 500);
            h_run(h, -1, 2);
            h_simple(h, HF_EV_PAUSE);
        }
        h->stop_cmd = r->text;
        h_run(h, -1, 500);
        h->stop_cmd = NULL;
        int sent = h->pending && !strcmp(h->pend, r->text);
        CHECK(sent, "%s in flight (pending %s)", r->text, h->pend);
        if (!sent)
            continue;
        h_result(h, HF_FF_TIMEOUT, -1, "", NULL, 0);
        int same = 0, asked = 0;
        for (size_t i = 0; i < h->a.n; i++)
            if (h->a.a[i].kind == HF_ACT_SEND) {
                same += !strcmp(h->a.a[i].text, r->text);
                asked += !strcmp(h->a.a[i].text, "AT^FOTASTATE?");
            }
        CHECK(same == 0, "%s timed out: never resent blindly", r->text);
        if (r->on_timeout == HF_TMO_ASK_STATE)
            CHECK(asked == 1 && h->pending && !strcmp(h->pend, "AT^FOTASTATE?"),
                  "%s timed out: the state is asked", r->text);
        else
            CHECK(asked == 0 && h->f.phase == HF_PH_REBOOT, "%s timed out: the reset is "
                  "waited for (phase %s)", r->text, hf_fota_phase_name(h->f.phase));
        CHECK_INT(h->violations, 0);
    }
}

int main(void)
{
    CHECK_SUITE("fota_fsm");
    test_seed_flow();
    test_full_flow_fwup();
    test_scenarios();
    test_pause_resume();
    test_power_loss();
    test_reboot_timeout();
    test_timeouts_and_config();
    test_polling();
    test_progress_past_4gib();
    test_send_shapes();
    test_stale_answers();
    test_transitions();
    test_cross_product();
    test_journal_text();
    test_restore_every_phase();
    test_restore_port_lost_in_probe();
    test_offer_of_unknown_version();
    test_lost_offer_urc_never_downloads();
    test_restore_discard_never_downloads();
    test_restore_approved_but_running_it();
    test_offer_inside_state_answer();
    test_fwup_lost_with_port();
    test_fwup_waits_for_boot_report();
    test_discard_confirmed();
    test_end_state_cleared();
    test_end_state_tolerated();
    test_discard_waits();
    test_decide_upgrade_discards();
    test_settle_timer_during_stale_command();
    test_fresh_run_no_settle();
    test_detect_forgets_old_target();
    test_recover_bare_12_not_approved();
    test_offer_urc_inside_fwup_gate();
    test_restore_terminal_target_not_trusted();
    test_mode_before_every_download();
    test_fwup_record_without_command();
    test_prereq_unsupported();
    test_port_back_other_module();
    test_unconfirmed_identity_gate();
    test_port_lost_says_nothing();
    test_deadline_waits_for_command_in_flight();
    test_imei_reading_not_trusted_alone();
    test_expected_imei();
    test_command_table();
    test_no_blind_resend();
    test_random();
    return CHECK_END();
}
