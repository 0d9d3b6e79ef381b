/*
 * sim_module.c — one simulated MU509/MU609: AT command handling (own simple
 * parser), the FOTA state machine and its timeline, faults and noise.
 */
#include <ctype.h>
#include <stddef.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "sim.h"

#define SC(m, s) ((s) * (m)->cfg->time_scale)

static void execute(sim_module *m, const char *body);
static void process_input(sim_module *m);

static long total_size(const sim_module *m) { return m->cfg->image_size + m->cfg->xnv_size; }

/* ---------------------------------------------------------------- output */

int mod_port_open(const sim_module *m)
{
    return m->mfd >= 0 && (!m->cfg->drop_closed || m->host);
}

void mod_host_closed(sim_module *m)
{
    if (!m->host) return;
    m->host = 0;
    m->outlen = 0;
    m->inlen = 0;
    m->host_check_at = sim_now() + 0.02;
    sim_log(m->idx, "\"ev\":\"host\",\"what\":\"closed\"");
}

/* --closed-port drop: has a host opened the slave? (the master reads EIO until then) */
static void look_for_host(sim_module *m, double now)
{
    char buf[1024];
    ssize_t r = read(m->mfd, buf, sizeof buf);
    if (r < 0 && errno == EIO) { m->host_check_at = now + 0.02; return; }
    m->host = 1;
    m->host_check_at = 0;
    sim_log(m->idx, "\"ev\":\"host\",\"what\":\"opened\"");
    if (r > 0) mod_input(m, buf, (size_t)r);
}

static void out_raw(sim_module *m, const char *b, size_t n)
{
    if (!mod_port_open(m) || n == 0) return;
    if (m->outlen == 0) {
        ssize_t w = write(m->mfd, b, n);
        if (w > 0) { b += w; n -= (size_t)w; }
    }
    if (n == 0) return;
    if (m->outlen + n > SIM_OUTBUF) {
        sim_log(m->idx, "\"ev\":\"overflow\",\"dropped\":%zu", m->outlen + n - SIM_OUTBUF);
        n = SIM_OUTBUF - m->outlen;
    }
    memcpy(m->out + m->outlen, b, n);
    m->outlen += n;
}

void mod_flush(sim_module *m)
{
    if (m->mfd < 0 || m->outlen == 0) return;
    ssize_t w = write(m->mfd, m->out, m->outlen);
    if (w > 0) {
        memmove(m->out, m->out + w, m->outlen - (size_t)w);
        m->outlen -= (size_t)w;
    }
}

/* kind: info | final | urc | noise | boot. crcr: end in CR CR LF. */
static void send_line(sim_module *m, const char *kind, const char *text, int crcr)
{
    char j[SIM_DESC * 2 + 64];
    sim_json_str(j, sizeof j, text);
    if (!mod_port_open(m)) {
        sim_log(m->idx, "\"ev\":\"lost\",\"kind\":\"%s\",\"line\":%s", kind, j);
        return;
    }
    m->lines_sent++;
    if (m->f.garbage_every > 0 && m->lines_sent % (unsigned long)m->f.garbage_every == 0) {
        char g[8], hex[24];
        for (int i = 0; i < 8; i++) {
            unsigned char c;
            do c = (unsigned char)(sim_rand() & 0xff); while (c == '\r' || c == '\n');
            g[i] = (char)c;
            snprintf(hex + 2 * i, 3, "%02x", c);
        }
        out_raw(m, g, sizeof g);
        sim_log(m->idx, "\"ev\":\"fault\",\"fault\":\"garbage\",\"hex\":\"%s\"", hex);
    }
    char buf[2 * SIM_DESC + 256];
    size_t n;
    if (m->verbose || strcmp(kind, "final") != 0)
        n = (size_t)snprintf(buf, sizeof buf, "%s%s%s", m->verbose ? "\r\n" : "", text,
                             crcr ? "\r\r\n" : "\r\n");
    else {
        const char *code = text;
        if (!strcmp(text, "OK")) code = "0";
        else if (!strcmp(text, "ERROR") || !strcmp(text, "COMMAND NOT SUPPORT") ||
                 !strcmp(text, "TOO MANY PARAMETERS")) code = "4";
        n = (size_t)snprintf(buf, sizeof buf, "%s%s", code, code == text ? "\r\n" : "\r");
    }
    if (n >= sizeof buf) n = sizeof buf - 1;
    if (m->f.drop_every > 0 && m->lines_sent % (unsigned long)m->f.drop_every == 0) {
        size_t at = (m->verbose ? 2 : 0) + strlen(text) / 2;
        if (at < n) {
            sim_log(m->idx, "\"ev\":\"fault\",\"fault\":\"drop\",\"byte\":%zu,\"line\":%s", at, j);
            memmove(buf + at, buf + at + 1, n - at);
            n--;
        }
    }
    out_raw(m, buf, n);
    sim_log(m->idx, "\"dir\":\"tx\",\"kind\":\"%s\",\"line\":%s", kind, j);
}

static void send_noise(sim_module *m)
{
    char t[160];
    int crcr = 0;
    switch (sim_rand() % 5) {
    case 0: snprintf(t, sizeof t, "^RSSI: %lu", 12 + sim_rand() % 15); crcr = 1; break;
    case 1: snprintf(t, sizeof t, "^MODE: %d,%d", m->f.not_registered ? 0 : 5,
                     m->f.not_registered ? 0 : 4); break;
    case 2:
        snprintf(t, sizeof t, "^DSFLOWRPT: %08lX,00000000,00000000,0000000000000000,"
                 "0000000000000000,0003E800,0003E800", sim_rand() % 100000);
        crcr = 1;
        break;
    case 3: snprintf(t, sizeof t, "^SRVST: %d", m->f.not_registered ? 0 : 2); break;
    default:
        snprintf(t, sizeof t, "^HCSQ: \"WCDMA\",%lu,%lu,%lu", 30 + sim_rand() % 30,
                 40 + sim_rand() % 20, 20 + sim_rand() % 30);
    }
    send_line(m, "noise", t, crcr);
}

/* Noise inside a multi-line response (between its lines, before its OK). */
static void maybe_inner_noise(sim_module *m)
{
    if (m->cfg->noise > 0 && m->curc && m->resp_info > 0 && sim_rand01() < 0.5) send_noise(m);
}

static void info(sim_module *m, const char *text)
{
    maybe_inner_noise(m);
    send_line(m, "info", text, 0);
    m->resp_info++;
}

static void final(sim_module *m, const char *text)
{
    maybe_inner_noise(m);
    send_line(m, "final", text, 0);
    m->resp_info = 0;
}

static void ok(sim_module *m) { final(m, "OK"); }
static void error(sim_module *m) { final(m, "ERROR"); }

static void cme(sim_module *m, int num, const char *text)
{
    char b[160];
    if (m->cmee == 0) { error(m); return; }
    if (m->cmee == 1) snprintf(b, sizeof b, "+CME ERROR: %d", num);
    else snprintf(b, sizeof b, "+CME ERROR: %s", text);
    final(m, b);
}

/* ---------------------------------------------------------------- FOTA states */

/* A pty hang-up flushes what the host has not read yet, so a fault that follows
 * a line we sent (an echo, a URC) waits a little for it to drain. */
#define FAULT_DRAIN 0.05

static void check_state_triggers(sim_module *m, int st)
{
    sms_check_state(m, st);
    if (m->f.power_loss.kind == TRIG_STATE && !m->f.power_loss.fired && (int)m->f.power_loss.val == st)
        m->pending_power = 1;
    if (m->f.port_gone.kind == TRIG_STATE && !m->f.port_gone.fired && (int)m->f.port_gone.val == st)
        m->pending_gone = 1;
    if (m->f.port_swap.kind == TRIG_STATE && !m->f.port_swap.fired && (int)m->f.port_swap.val == st)
        m->pending_swap = 1;
    if (m->pending_power || m->pending_gone || m->pending_swap)
        m->pending_at = sim_now() + FAULT_DRAIN;
    if (m->f.hang.kind == TRIG_STATE && !m->f.hang.fired && (int)m->f.hang.val == st) {
        m->f.hang.fired = 1;
        m->busy_until = sim_now() + SC(m, m->f.hang_for);
        sim_log(m->idx, "\"ev\":\"fault\",\"fault\":\"hang\",\"for\":%g", m->f.hang_for);
    }
}

/* The log's "state" events are changes: a report of the same state after a
 * boot (^FOTASTATE: 31 again) is a URC, not a new state. */
static void log_state(sim_module *m, int st)
{
    if (st != m->logged_state) {
        sim_log(m->idx, "\"ev\":\"state\",\"state\":%d", st);
        /* A change while the module boots (the host's AT^FOTADET in 10, AT^FOTADL=1
         * in 31, AT^FOTADL=0, AT^FWUP in 40, and what follows from them) happens
         * after the boot: the pending boot report, which tells the state at boot,
         * must not override it. */
        if (m->post_boot_at > 0 && m->post_kind != BOOT_NONE && !m->post_superseded) {
            m->post_superseded = 1;
            sim_log(m->idx, "\"ev\":\"boot-report\",\"what\":\"superseded\",\"state\":%d", st);
        }
    }
    m->logged_state = st;
}

/* Enter state st and report it with ^FOTASTATE: <st><extra>. */
static void set_state(sim_module *m, int st, const char *extra)
{
    char t[SIM_DESC + 128];
    m->state = st;
    log_state(m, st);
    snprintf(t, sizeof t, "^FOTASTATE: %d%s", st, extra ? extra : "");
    if (m->f.lose_state == st) {
        sim_log(m->idx, "\"ev\":\"fault\",\"fault\":\"lose-state\",\"state\":%d", st);
    } else {
        if (m->f.bad_state == st) {
            t[strlen(t) / 2] = '\0';
            sim_log(m->idx, "\"ev\":\"fault\",\"fault\":\"bad-state\",\"state\":%d", st);
        }
        send_line(m, "urc", t, 0);
        if (m->f.dup_state) {
            sim_log(m->idx, "\"ev\":\"fault\",\"fault\":\"dup-state\",\"state\":%d", st);
            send_line(m, "urc", t, 0);
        }
    }
    check_state_triggers(m, st);
}

static int state_is_idle(const sim_module *m)
{
    /* 10; with --end-state idle also the reports after an upgrade (90, or a failure
     * >= 60). With keep / keep-all they are results the module holds until
     * AT^FOTADL=0: AT^FOTADET in them is a collision. */
    return m->state == 10 || (m->cfg->end_state == END_IDLE && m->state >= 60);
}

/* Automatic query: the next one <period> days after the module went idle. */
static void schedule_auto_query(sim_module *m)
{
    if (m->auto_query && state_is_idle(m) && m->ev == EV_NONE) {
        m->ev = EV_AUTO_QUERY;
        m->ev_at = sim_now() + SC(m, m->period * m->cfg->day);
    }
}

/* 13, 14 and 20 return to idle by themselves (--end-state keep-all: they persist
 * until AT^FOTADL=0, like 90). */
static void back_to_idle(sim_module *m)
{
    if (m->cfg->end_state == END_KEEP_ALL) {
        m->ev = EV_NONE;
        return;
    }
    m->state = 10;
    m->ev = EV_NONE;
    log_state(m, 10);
    schedule_auto_query(m);
}

/* AT^FOTADL=0 took: back to 10 (a ^FOTASTATE: 10 URC only with --discard-urc on). */
static void discard_done(sim_module *m)
{
    m->ev = EV_NONE;
    m->done = 0;
    m->have_delta = 0;
    if (m->cfg->discard_urc) set_state(m, 10, NULL);
    else {
        m->state = 10;
        log_state(m, 10);
    }
    schedule_auto_query(m);
}

static double bytes_now(const sim_module *m, double now)
{
    if (m->state != 30) return m->done;
    double b = m->dl_b0 + (now - m->dl_t0) / m->cfg->time_scale * m->cfg->rate;
    if (b > m->dl_target) b = m->dl_target;
    return floor(b);
}

static void schedule_download(sim_module *m, double now)
{
    double total = (double)total_size(m);
    double target = total;
    const sim_trigger *tr[4] = {&m->f.power_loss, &m->f.port_gone, &m->f.hang, &m->f.port_swap};
    if (m->f.not_registered) target = m->done;
    if (m->f.download_fail > 0 && !m->dl_fail_fired) {
        double at = m->f.download_fail_at < 0 ? floor(total / 2) : m->f.download_fail_at;
        if (at < m->done) at = m->done;
        if (at < target) target = at;
    }
    for (int i = 0; i < 4; i++)
        if (tr[i]->kind == TRIG_BYTE && !tr[i]->fired && tr[i]->val >= m->done && tr[i]->val < target)
            target = tr[i]->val;
    m->dl_t0 = now;
    m->dl_b0 = m->done;
    m->dl_target = target;
    m->ev = EV_DL_THRESHOLD;
    m->ev_at = now + SC(m, (target - m->done) / m->cfg->rate);
}

static void start_download(sim_module *m)
{
    set_state(m, 30, NULL);
    schedule_download(m, sim_now());
}

static void start_detect(sim_module *m)
{
    set_state(m, 11, NULL);
    m->ev = EV_DETECT_DONE;
    m->ev_at = sim_now() + SC(m, m->cfg->detect_time);
}

/* What the module was doing and drops when it goes away (a reset, or another
 * module taking its port): the pending event, a hang, a held answer, the boot
 * report still to come. */
static void drop_activity(sim_module *m)
{
    m->ev = EV_NONE;
    m->busy_until = 0;
    m->have_held = 0;
    m->post_boot_at = 0;
    m->post_kind = BOOT_NONE;
    m->post_superseded = 0;
}

static void reset_module(sim_module *m, const char *reason, sim_boot kind)
{
    sim_log(m->idx, "\"ev\":\"reset\",\"reason\":\"%s\",\"state\":%d", reason, m->state);
    sim_unpublish(m, 1);
    m->boot_kind = kind;
    m->port_back_at = m->gone_for_good ? 0 : sim_now() + SC(m, m->cfg->reset_gap);
    drop_activity(m);
}

static void power_loss(sim_module *m)
{
    m->f.power_loss.fired = 1;
    m->pending_power = 0;
    if (m->state == 30) m->done = bytes_now(m, sim_now());
    sim_log(m->idx, "\"ev\":\"fault\",\"fault\":\"power-loss\",\"state\":%d,\"byte\":%.0f",
            m->state, m->done);
    reset_module(m, "power-loss", BOOT_POWER_LOSS);
    /* what survives in flash: the state at boot, which the boot report tells */
    int s = m->state;
    m->state = (s == 30 || s == 31) ? (m->resume ? 31 : 10) : (s == 40 || s == 50) ? 40
             : (s == 11 || s == 12) ? 10 : s;
    if (m->state == 10) { m->done = 0; m->have_delta = 0; }
    m->mode_wanted = m->state == 31 && m->cfg->resume_needs_mode;
    if (m->state != s) log_state(m, m->state);
}

static void port_gone(sim_module *m)
{
    m->f.port_gone.fired = 1;
    m->pending_gone = 0;
    sim_log(m->idx, "\"ev\":\"fault\",\"fault\":\"port-gone\",\"for\":%g", m->f.port_gone_for);
    sim_unpublish(m, 1);
    if (m->f.port_gone_for < 0) {
        m->gone_for_good = 1;
        m->port_back_at = 0;
    } else {
        m->port_back_at = sim_now() + SC(m, m->f.port_gone_for);
        if (m->boot_kind == BOOT_NONE) m->boot_kind = BOOT_PORT_BACK;
    }
}

static void luhn_imei(unsigned long long base14, char out[16]);

/* --port-swap: the pty goes away and the same path comes back as another module
 * (paths are reused after a re-enumeration). This module object becomes that
 * module: other IMEI, its own FOTA state and settings; A's activity is abandoned. */
static void port_swap(sim_module *m)
{
    m->f.port_swap.fired = 1;
    m->pending_swap = 0;
    char other[16], ji[40];
    luhn_imei(m->cfg->imei_base + 500000ULL + (unsigned long long)m->idx, other);
    sim_json_str(ji, sizeof ji, other);
    sim_log(m->idx, "\"ev\":\"fault\",\"fault\":\"port-swap\",\"state\":%d,\"imei\":%s,"
            "\"swap_state\":%d", m->state, ji, m->f.swap_state);
    sim_unpublish(m, 1);
    m->swapped = 1;
    snprintf(m->imei, sizeof m->imei, "%s", other);
    snprintf(m->version, sizeof m->version, "%s", m->cfg->version_from);
    m->state = m->f.swap_state;
    m->have_delta = m->state == 12 || m->state == 30 || m->state == 31 || m->state == 40 ||
                    m->state == 50;
    m->done = m->state == 40 || m->state == 50 ? (double)total_size(m) : 0;
    m->apn[0] = m->user[0] = m->pw[0] = '\0';
    m->auth = 0;
    m->auto_query = m->auto_dl = m->auto_up = 0;
    m->resume = 0;
    m->period = 7;
    drop_activity(m);
    m->inlen = 0;
    m->gone_for_good = 0;
    m->boot_kind = BOOT_SWAP;
    m->port_back_at = sim_now() + SC(m, m->cfg->reset_gap);
    log_state(m, m->state);
}

static void at_defaults(sim_module *m)
{
    m->echo = 1;
    m->verbose = 1;
    m->cmee = m->cfg->cmee_default;
    m->curc = 1;
    m->creg_n = 0;
    m->cgreg_n = 0;
    m->resp_info = 0;
    sms_defaults(m);
}

static void boot_urcs(sim_module *m)
{
    send_line(m, "boot", "^BOOT: 20952350,0,0,0,72", 0);
    send_line(m, "boot", m->f.sim_pin ? "^SIMST: 1,1" : "^SIMST: 1", 0);
    send_line(m, "boot", m->f.not_registered ? "^SRVST: 0" : "^SRVST: 2", 0);
    send_line(m, "boot", m->f.not_registered ? "^MODE: 0,0" : "^MODE: 5,4", 0);
    send_line(m, "boot", "^RSSI: 20", 1);
}

static void next_noise(sim_module *m, double now)
{
    if (m->cfg->noise <= 0) { m->noise_at = 0; return; }
    double u = sim_rand01();
    if (u < 1e-6) u = 1e-6;
    m->noise_at = now + (-log(u)) / m->cfg->noise;
}

/* The pty is back after a reset or a port loss. */
static void port_back(sim_module *m, double now)
{
    m->port_back_at = 0;
    if (sim_publish(m) < 0) { m->port_back_at = now + 0.5; return; }
    sim_boot kind = m->boot_kind;
    m->boot_kind = BOOT_NONE;
    if (kind == BOOT_PORT_BACK || kind == BOOT_NONE) return;
    if (kind == BOOT_SWAP) {
        /* another module, up and running for a while: no boot report, nothing applied */
        char jv[128], ji[40];
        sim_json_str(jv, sizeof jv, m->version);
        sim_json_str(ji, sizeof ji, m->imei);
        sim_log(m->idx, "\"ev\":\"boot\",\"version\":%s,\"imei\":%s,\"swapped\":true", jv, ji);
        at_defaults(m);
        m->sim_locked = m->f.sim_pin;
        m->inlen = 0;
        return;
    }
    m->post_kind = kind;
    if (kind == BOOT_UPGRADE && m->f.upgrade_fail <= 0)
        snprintf(m->version, sizeof m->version, "%s", m->cfg->version_to);
    char jv[128];
    sim_json_str(jv, sizeof jv, m->version);
    sim_log(m->idx, "\"ev\":\"boot\",\"version\":%s", jv);
    at_defaults(m);
    m->sim_locked = m->f.sim_pin;
    m->inlen = 0;
    boot_urcs(m);
    m->post_superseded = 0;
    m->post_boot_at = now + SC(m, m->cfg->boot_time);
}

/* The boot report, --boot-time after the boot: the state the module booted in
 * (m->state, set at the reset), unless a later change superseded it. */
static void post_boot(sim_module *m)
{
    sim_boot kind = m->post_kind;
    int superseded = m->post_superseded;
    m->post_boot_at = 0;
    m->post_kind = BOOT_NONE;
    m->post_superseded = 0;
    if (superseded) {
        /* the host moved the module on after the boot: that state stands, and the
         * module already reported it; nothing stale is sent */
    } else if (kind == BOOT_UPGRADE) {
        m->have_delta = 0;
        m->done = 0;
        if (m->f.upgrade_fail > 0) {
            sim_log(m->idx, "\"ev\":\"fault\",\"fault\":\"upgrade-fail\",\"state\":%d",
                    m->f.upgrade_fail);
            set_state(m, m->f.upgrade_fail, NULL);
        } else set_state(m, 90, NULL);
    } else if (kind == BOOT_POWER_LOSS) {
        /* power_loss() left the state at boot: 31 or 10 after a download, 40 with a
         * complete image (lost in 40 or 50), 10 after a query, else as it was */
        if (m->state == 40) {
            set_state(m, 50, NULL); /* the complete delta is applied at boot */
            m->ev = EV_RESET;
            m->ev_at = sim_now() + SC(m, m->cfg->reset_delay);
            return;
        }
        set_state(m, m->state, NULL);
    }
    if (m->auto_query && state_is_idle(m)) start_detect(m);
}

static void fota_event(sim_module *m, double now)
{
    sim_event ev = m->ev;
    m->ev = EV_NONE;
    char t[SIM_DESC + 128];
    switch (ev) {
    case EV_DETECT_DONE:
        if (m->f.not_registered) { set_state(m, 13, ",11"); back_to_idle(m); }
        else if (m->f.detect_fail > 0) {
            snprintf(t, sizeof t, ",%d", m->f.detect_fail);
            sim_log(m->idx, "\"ev\":\"fault\",\"fault\":\"detect-fail\",\"code\":%d", m->f.detect_fail);
            set_state(m, 13, t);
            back_to_idle(m);
        } else if (m->f.no_new_version) {
            sim_log(m->idx, "\"ev\":\"fault\",\"fault\":\"no-new-version\"");
            set_state(m, 14, NULL);
            back_to_idle(m);
        } else {
            snprintf(t, sizeof t, ",%s,%ld,\"%s\"", m->cfg->version_to, total_size(m),
                     m->cfg->description);
            m->have_delta = 1;
            m->done = 0;
            set_state(m, 12, t);
            if (m->auto_dl) start_download(m);
        }
        break;
    case EV_DL_THRESHOLD: {
        m->done = m->dl_target;
        int code = 0;
        if (m->f.not_registered) code = 11;
        else if (m->f.download_fail > 0 && !m->dl_fail_fired) {
            double at = m->f.download_fail_at < 0 ? floor((double)total_size(m) / 2)
                                                  : m->f.download_fail_at;
            if (m->done >= at) {
                code = m->f.download_fail;
                m->dl_fail_fired = 1;
                sim_log(m->idx, "\"ev\":\"fault\",\"fault\":\"download-fail\",\"code\":%d,"
                        "\"byte\":%.0f", code, m->done);
            }
        }
        if (code) {
            snprintf(t, sizeof t, ",%d", code);
            m->done = 0;
            m->have_delta = 0;
            set_state(m, 20, t);
            back_to_idle(m);
            break;
        }
        if (m->f.power_loss.kind == TRIG_BYTE && !m->f.power_loss.fired &&
            m->f.power_loss.val <= m->done) {
            m->state = 30;
            power_loss(m);
            break;
        }
        if (m->f.port_gone.kind == TRIG_BYTE && !m->f.port_gone.fired && m->f.port_gone.val <= m->done)
            port_gone(m);
        if (m->f.port_swap.kind == TRIG_BYTE && !m->f.port_swap.fired &&
            m->f.port_swap.val <= m->done && m->mfd >= 0) {
            m->state = 30;
            port_swap(m);
            break;
        }
        if (m->f.hang.kind == TRIG_BYTE && !m->f.hang.fired && m->f.hang.val <= m->done) {
            m->f.hang.fired = 1;
            m->busy_until = now + SC(m, m->f.hang_for);
            sim_log(m->idx, "\"ev\":\"fault\",\"fault\":\"hang\",\"for\":%g", m->f.hang_for);
        }
        if (m->done >= (double)total_size(m)) {
            m->ev = EV_VERIFY_DONE;
            m->ev_at = now + SC(m, m->cfg->verify_time);
        } else schedule_download(m, now);
        break;
    }
    case EV_VERIFY_DONE:
        set_state(m, 40, NULL);
        if (m->auto_up) {
            m->ev = EV_UPGRADE_START;
            m->ev_at = now + SC(m, m->cfg->upgrade_delay);
        }
        break;
    case EV_UPGRADE_START:
        set_state(m, 50, NULL);
        m->ev = EV_RESET;
        m->ev_at = now + SC(m, m->cfg->reset_delay);
        break;
    case EV_RESET:
        reset_module(m, "upgrade", BOOT_UPGRADE);
        break;
    case EV_DISCARD_DONE:
        discard_done(m);
        break;
    case EV_AUTO_QUERY:
        if (m->auto_query && state_is_idle(m)) {
            sim_log(m->idx, "\"ev\":\"auto-query\"");
            start_detect(m);
        }
        break;
    default:
        break;
    }
}

static double trig_time(const sim_module *m, const sim_trigger *t)
{
    if (t->kind != TRIG_TIME || t->fired) return 0;
    double r = SC(m, t->val);
    return r > 0 ? r : 1e-6;
}

void mod_tick(sim_module *m, double now)
{
    double tt;
    if ((tt = trig_time(m, &m->f.power_loss)) > 0 && now >= tt && m->mfd >= 0) power_loss(m);
    if ((tt = trig_time(m, &m->f.port_gone)) > 0 && now >= tt && m->mfd >= 0) port_gone(m);
    if ((tt = trig_time(m, &m->f.port_swap)) > 0 && now >= tt && m->mfd >= 0) port_swap(m);
    if ((tt = trig_time(m, &m->f.hang)) > 0 && now >= tt) {
        m->f.hang.fired = 1;
        m->busy_until = now + SC(m, m->f.hang_for);
        sim_log(m->idx, "\"ev\":\"fault\",\"fault\":\"hang\",\"for\":%g", m->f.hang_for);
    }
    if ((m->pending_power || m->pending_gone || m->pending_swap) && now >= m->pending_at) {
        if (m->pending_power) power_loss(m);
        else if (m->pending_swap && m->mfd >= 0) port_swap(m);
        else if (m->pending_gone && m->mfd >= 0) port_gone(m);
        m->pending_power = m->pending_gone = m->pending_swap = 0;
    }
    sms_tick(m, now);
    if (m->port_back_at > 0 && now >= m->port_back_at) port_back(m, now);
    if (m->post_boot_at > 0 && now >= m->post_boot_at && m->mfd >= 0) post_boot(m);
    if (m->ev != EV_NONE && now >= m->ev_at) fota_event(m, now);
    if (m->busy_until > 0 && now >= m->busy_until) {
        m->busy_until = 0;
        if (m->have_held) {
            m->have_held = 0;
            execute(m, m->held);
        }
        process_input(m);
    }
    if (m->cfg->drop_closed && m->mfd >= 0 && !m->host && m->host_check_at > 0 &&
        now >= m->host_check_at)
        look_for_host(m, now);
    if (m->cfg->noise > 0) {
        if (m->mfd < 0) m->noise_at = 0;
        else if (m->noise_at == 0) next_noise(m, now);
        else if (now >= m->noise_at) {
            if (m->curc && m->busy_until == 0 && mod_port_open(m)) send_noise(m);
            next_noise(m, now);
        }
    }
}

double mod_next_deadline(const sim_module *m)
{
    double d = 0, c[13];
    int n = 0;
    if (m->pending_power || m->pending_gone || m->pending_swap) return m->pending_at;
    if (m->ev != EV_NONE) c[n++] = m->ev_at;
    c[n++] = m->port_back_at;
    c[n++] = m->post_boot_at;
    c[n++] = m->busy_until;
    c[n++] = m->mfd >= 0 ? m->noise_at : 0;
    c[n++] = trig_time(m, &m->f.power_loss);
    c[n++] = trig_time(m, &m->f.port_gone);
    c[n++] = trig_time(m, &m->f.hang);
    c[n++] = trig_time(m, &m->f.port_swap);
    c[n++] = m->cfg->drop_closed && m->mfd >= 0 && !m->host ? m->host_check_at : 0;
    c[n++] = sms_next_deadline(m);
    for (int i = 0; i < n; i++)
        if (c[i] > 0 && (d == 0 || c[i] < d)) d = c[i];
    return d;
}

/* ---------------------------------------------------------------- init */

static void luhn_imei(unsigned long long base14, char out[16])
{
    char d[15];
    snprintf(d, sizeof d, "%014llu", base14 % 100000000000000ULL);
    int sum = 0;
    for (int i = 0; i < 14; i++) {
        int v = d[i] - '0';
        if (i % 2 == 1) { v *= 2; if (v > 9) v -= 9; }
        sum += v;
    }
    snprintf(out, 16, "%s%d", d, (10 - sum % 10) % 10);
}

void mod_init(sim_module *m, int idx, const sim_config *cfg, const sim_faults *faults)
{
    /* the buffers at the end stay untouched (calloc'd) so that idle modules cost no RSS */
    memset(m, 0, offsetof(sim_module, in));
    m->inlen = m->outlen = 0;
    m->idx = idx;
    m->cfg = cfg;
    m->logged_state = -1;
    m->close_wd = -1;
    if (faults) m->f = *faults;
    else {
        memset(&m->f, 0, sizeof m->f);
        m->f.bad_state = m->f.lose_state = -1;
    }
    m->mfd = m->sfd = -1;
    luhn_imei(cfg->imei_base + (unsigned long long)idx, m->imei);
    snprintf(m->version, sizeof m->version, "%s", cfg->version_from);
    m->state = 10;
    m->period = 7;
    m->auth = 0;
}

void mod_boot(sim_module *m)
{
    at_defaults(m);
    m->sim_locked = m->f.sim_pin;
    char jv[128], ji[40];
    sim_json_str(jv, sizeof jv, m->version);
    sim_json_str(ji, sizeof ji, m->imei);
    sim_log(m->idx, "\"ev\":\"boot\",\"version\":%s,\"imei\":%s", jv, ji);
}

/* ---------------------------------------------------------------- input */

static int cmd_matches(const char *body, const sim_trigger *t)
{
    char n[SIM_INBUF];
    size_t i = 0;
    if (*body == '^' || *body == '+') body++;
    for (; body[i] && i + 1 < sizeof n; i++) n[i] = (char)toupper((unsigned char)body[i]);
    n[i] = '\0';
    if (strpbrk(t->cmd, "=?")) return strcmp(n, t->cmd) == 0;
    size_t k = 0;
    while (isalnum((unsigned char)n[k])) k++;
    return k == strlen(t->cmd) && strncmp(n, t->cmd, k) == 0;
}

static void handle_line(sim_module *m, char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == ' ' || line[n - 1] == '\t')) line[--n] = '\0';
    while (*line == ' ' || *line == '\t' || *line == '\n') line++;
    if (!*line) return;
    char j[SIM_INBUF * 2];
    sim_json_str(j, sizeof j, line);
    if (m->swapped)
        sim_log(m->idx, "\"dir\":\"rx\",\"line\":%s,\"swapped\":true", j);
    else
        sim_log(m->idx, "\"dir\":\"rx\",\"line\":%s", j);
    if (strncasecmp(line, "AT", 2) != 0) {
        sim_log(m->idx, "\"ev\":\"ignored\",\"why\":\"no AT prefix\"");
        return;
    }
    const char *body = line + 2;
    if (m->f.hang.kind == TRIG_CMD && !m->f.hang.fired && cmd_matches(body, &m->f.hang)) {
        m->f.hang.fired = 1;
        m->busy_until = sim_now() + SC(m, m->f.hang_for);
        snprintf(m->held, sizeof m->held, "%s", body);
        m->have_held = 1;
        sim_log(m->idx, "\"ev\":\"fault\",\"fault\":\"hang\",\"for\":%g,\"cmd\":%s", m->f.hang_for, j);
        return;
    }
    if (m->f.power_loss.kind == TRIG_CMD && !m->f.power_loss.fired &&
        cmd_matches(body, &m->f.power_loss)) {
        m->f.power_loss.fired = 1;
        m->pending_power = 1;
        m->pending_at = sim_now() + FAULT_DRAIN;
        return;
    }
    if (m->f.port_swap.kind == TRIG_CMD && !m->f.port_swap.fired && cmd_matches(body, &m->f.port_swap)) {
        m->f.port_swap.fired = 1;
        m->pending_swap = 1;
        m->pending_at = sim_now() + FAULT_DRAIN;
        return;
    }
    if (m->f.port_gone.kind == TRIG_CMD && !m->f.port_gone.fired && cmd_matches(body, &m->f.port_gone)) {
        m->f.port_gone.fired = 1;
        m->pending_gone = 1;
        m->pending_at = sim_now() + FAULT_DRAIN;
        return;
    }
    if (m->f.long_line.kind == TRIG_CMD && !m->f.long_line.fired && cmd_matches(body, &m->f.long_line)) {
        /* N printable bytes without a line end; the answer's own CR LF ends them */
        char chunk[1024];
        m->f.long_line.fired = 1;
        sim_log(m->idx, "\"ev\":\"fault\",\"fault\":\"long-line\",\"bytes\":%ld,\"cmd\":%s",
                m->f.long_line_len, j);
        for (long left = m->f.long_line_len; left > 0;) {
            size_t k = left < (long)sizeof chunk ? (size_t)left : sizeof chunk;
            for (size_t i = 0; i < k; i++) chunk[i] = (char)(0x21 + sim_rand() % 94);
            out_raw(m, chunk, k);
            left -= (long)k;
        }
    }
    int sms_match[SIM_SMS_PLAN];
    sms_check_cmd(m, body, sms_match);
    execute(m, body);
    sms_after_cmd(m, sms_match);
}

static void process_input(sim_module *m)
{
    /* one command at a time; nothing more once power or port is about to go */
    while ((m->busy_until == 0 || m->f.hang_reject) && m->mfd >= 0 && !m->pending_power &&
           !m->pending_gone) {
        char *cr = memchr(m->in, '\r', m->inlen);
        if (!cr) {
            if (m->inlen == sizeof m->in) { m->inlen = 0; m->in_overflow = 1; }
            return;
        }
        size_t len = (size_t)(cr - m->in);
        char line[SIM_INBUF];
        memcpy(line, m->in, len);
        line[len] = '\0';
        memmove(m->in, cr + 1, m->inlen - len - 1);
        m->inlen -= len + 1;
        if (m->in_overflow) {
            m->in_overflow = 0;
            sim_log(m->idx, "\"ev\":\"ignored\",\"why\":\"line too long\"");
            error(m);
            continue;
        }
        /* drop LFs (a host may send CR LF) and NULs */
        size_t o = 0;
        for (size_t i = 0; i < len; i++)
            if (line[i] != '\n' && line[i] != '\0') line[o++] = line[i];
        line[o] = '\0';
        if (m->busy_until > 0) {
            /* --hang-reject: the module is still busy with the held command */
            char j[SIM_INBUF * 2];
            sim_json_str(j, sizeof j, line);
            if (!o) continue;
            sim_log(m->idx, "\"dir\":\"rx\",\"line\":%s", j);
            cme(m, 2, "Previous command is not complete");
            continue;
        }
        handle_line(m, line);
    }
}

void mod_input(sim_module *m, const char *buf, size_t n)
{
    if (m->echo) out_raw(m, buf, n);
    for (size_t i = 0; i < n; i++) {
        if (m->inlen < sizeof m->in) m->in[m->inlen++] = buf[i];
        else if (buf[i] == '\r') { m->in[sizeof m->in - 1] = '\r'; m->in_overflow = 1; }
    }
    process_input(m);
}

/* ---------------------------------------------------------------- AT commands */

typedef sim_param param;

/* Split "a,\"b\",c" into params. -1 when malformed. */
static int parse_params(const char *p, param *out, int max)
{
    int n = 0;
    if (!*p) return 0;
    for (;;) {
        if (n == max) return max + 1;
        param *q = &out[n++];
        size_t o = 0;
        q->quoted = 0;
        while (*p == ' ') p++;
        if (*p == '"') {
            q->quoted = 1;
            p++;
            while (*p && *p != '"') {
                if (o + 1 >= sizeof q->s) return -1;
                q->s[o++] = *p++;
            }
            if (*p != '"') return -1;
            p++;
            while (*p == ' ') p++;
        } else {
            while (*p && *p != ',') {
                if (*p == '"' || o + 1 >= sizeof q->s) return -1;
                q->s[o++] = *p++;
            }
            while (o && q->s[o - 1] == ' ') o--;
        }
        q->s[o] = '\0';
        if (!*p) return n;
        if (*p != ',') return -1;
        p++;
    }
}

static int int_param(const param *q, int lo, int hi, int *out)
{
    if (q->quoted || !q->s[0] || strspn(q->s, "0123456789") != strlen(q->s) || strlen(q->s) > 6)
        return -1;
    int v = atoi(q->s);
    if (v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static void bad_params(sim_module *m) { cme(m, 50, "Incorrect parameters"); }

static void cmd_ati(sim_module *m)
{
    char b[256];
    snprintf(b, sizeof b, "Manufacturer: %s", m->cfg->manufacturer);
    info(m, b);
    snprintf(b, sizeof b, "Model: %s", m->cfg->model);
    info(m, b);
    snprintf(b, sizeof b, "Revision: %s", m->version);
    info(m, b);
    snprintf(b, sizeof b, "IMEI: %s", m->imei);
    info(m, b);
    info(m, "+GCAP: +CGSM,+DS,+ES");
    ok(m);
}

static int fota_gate(sim_module *m)
{
    if (m->sim_locked) { cme(m, 11, "SIM PIN required"); return -1; }
    return 0;
}

static void cmd_fotadl(sim_module *m, const char *args)
{
    param p[4];
    int v;
    int n = parse_params(args, p, 1);
    if (n != 1 || int_param(&p[0], 0, 2, &v) < 0) { if (n > 1) final(m, "TOO MANY PARAMETERS"); else bad_params(m); return; }
    if (v == 1) {
        if (m->f.data_session) { cme(m, 54, "FOTA is in collision state"); return; }
        if (m->state != 12 && m->state != 31) { error(m); return; }
        ok(m);
        if (m->state == 31 && m->mode_wanted) {
            /* guide 2.3.3: the remained data continues only after AT^FOTAMODE enabled
             * resumable transfer since the boot; without it the transfer starts over */
            sim_log(m->idx, "\"ev\":\"resume\",\"what\":\"from-zero\",\"byte\":%.0f", m->done);
            m->done = 0;
        } else if (m->state == 31) {
            sim_log(m->idx, "\"ev\":\"resume\",\"what\":\"continued\",\"byte\":%.0f", m->done);
        }
        m->mode_wanted = 0;
        start_download(m);
    } else if (v == 2) {
        if (m->state != 30) { error(m); return; }
        if (!m->resume) { cme(m, 4, "Operation not supported"); return; }
        m->done = bytes_now(m, sim_now());
        m->ev = EV_NONE;
        ok(m);
        set_state(m, 31, NULL);
    } else {
        if (m->state == 50) { error(m); return; }
        ok(m);
        if (m->state == 10) return;
        if (m->cfg->discard_delay > 0) {
            /* --discard-delay: OK now, idle later; the old state is reported meanwhile.
             * A repeated AT^FOTADL=0 does not restart the wait. */
            if (m->ev == EV_DISCARD_DONE) return;
            if (m->state == 30) {      /* the download stops: progress frozen */
                double now = sim_now();
                m->done = bytes_now(m, now);
                m->dl_b0 = m->dl_target = m->done;
                m->dl_t0 = now;
            }
            m->ev = EV_DISCARD_DONE;
            m->ev_at = sim_now() + SC(m, m->cfg->discard_delay);
            sim_log(m->idx, "\"ev\":\"discard\",\"what\":\"pending\",\"state\":%d,\"delay\":%g",
                    m->state, m->cfg->discard_delay);
            return;
        }
        discard_done(m);
    }
}

static void cmd_fotadlq(sim_module *m)
{
    if (!m->have_delta) { error(m); return; }
    double d = bytes_now(m, sim_now());
    long img = m->cfg->image_size, xnv = m->cfg->xnv_size;
    long di = (long)(d < (double)img ? d : (double)img);
    long dx = (long)d - di;
    if (dx > xnv) dx = xnv;
    char b[128];
    snprintf(b, sizeof b, "^FOTADLQ: 1,\"IMAGE\",%ld,%ld", di, img);
    info(m, b);
    snprintf(b, sizeof b, "^FOTADLQ: 2,\"XNV\",%ld,%ld", dx, xnv);
    info(m, b);
    ok(m);
}

/* --unsupported: is this command (name in upper case, form as typed: "", "?", "=?",
 * "=") one the configured firmware lacks? A list item without a form covers all. */
static int unsupported(const sim_module *m, const char *name, const char *form)
{
    const char *p = m->cfg->unsupported;
    size_t nl = strlen(name), fl = strlen(form);
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n >= nl && strncasecmp(p, name, nl) == 0 &&
            (n == nl || (n - nl == fl && strncmp(p + nl, form, fl) == 0)))
            return 1;
        p += n;
        if (*p == ',') p++;
    }
    return 0;
}

static void execute(sim_module *m, const char *body)
{
    char b[SIM_DESC + 64];
    param p[8];
    int v;
    m->resp_info = 0;

    if (!*body) { ok(m); return; }
    if (*body != '+' && *body != '^') {
        /* basic commands */
        char c = (char)toupper((unsigned char)body[0]);
        const char *a = body + 1;
        if ((c == 'E' || c == 'V' || c == 'Z' || c == 'Q') && (!*a || ((*a == '0' || *a == '1') && !a[1]))) {
            int on = *a == '1';
            if (c == 'E') m->echo = on;
            else if (c == 'V') m->verbose = on;
            else if (c == 'Z') at_defaults(m);
            else if (on) { error(m); return; }
            ok(m);
            return;
        }
        if (c == 'I' && (!*a || (*a == '0' && !a[1]))) { cmd_ati(m); return; }
        if (c == '&' && toupper((unsigned char)*a) == 'F' && (!a[1] || (a[1] == '0' && !a[2]))) {
            at_defaults(m);
            ok(m);
            return;
        }
        error(m);
        return;
    }
    /* extended: <prefix><name>[ ? | =? | =args ] */
    char name[32];
    size_t k = 0;
    name[k++] = body[0];
    const char *q = body + 1;
    while (isalnum((unsigned char)*q) && k + 1 < sizeof name) name[k++] = (char)toupper((unsigned char)*q++);
    name[k] = '\0';
    int form; /* 0 exec, 1 read, 2 test, 3 set */
    const char *args = "";
    if (!*q) form = 0;
    else if (!strcmp(q, "?")) form = 1;
    else if (!strcmp(q, "=?")) form = 2;
    else if (*q == '=') { form = 3; args = q + 1; }
    else { error(m); return; }
    static const char *const form_text[] = {"", "?", "=?", "="};
    if (unsupported(m, name, form_text[form])) {
        final(m, m->cfg->unknown_error ? "ERROR" : "COMMAND NOT SUPPORT");
        return;
    }
    int np = form == 3 ? parse_params(args, p, 6) : 0;
    if (np < 0) { error(m); return; }

#define IS(s) (!strcmp(name, (s)))
    if (IS("+CMEE")) {
        if (form == 1) { snprintf(b, sizeof b, "+CMEE: %d", m->cmee); info(m, b); ok(m); }
        else if (form == 2) { info(m, "+CMEE: (0-2)"); ok(m); }
        else if (form == 3 && np == 1 && int_param(&p[0], 0, 2, &v) == 0) { m->cmee = v; ok(m); }
        else error(m);
    } else if (IS("+GMR") || IS("+CGMR")) {
        if (form == 0) { info(m, m->version); ok(m); }
        else if (form == 2) ok(m);
        else error(m);
    } else if (IS("+CGSN") || IS("+GSN")) {
        if (form == 0) { info(m, m->imei); ok(m); }
        else if (form == 2) ok(m);
        else error(m);
    } else if (IS("+CGMI") || IS("+GMI")) {
        if (form == 0) { info(m, "huawei"); ok(m); } else error(m);
    } else if (IS("+CGMM") || IS("+GMM")) {
        if (form == 0) { info(m, m->cfg->model); ok(m); } else error(m);
    } else if (IS("+CPIN")) {
        if (form == 1) { info(m, m->sim_locked ? "+CPIN: SIM PIN" : "+CPIN: READY"); ok(m); }
        else if (form == 2) ok(m);
        else if (form == 3 && np >= 1 && np <= 2) {
            if (!m->sim_locked) cme(m, 3, "operation not allowed");
            else if (!strcmp(p[0].s, m->cfg->pin)) {
                m->sim_locked = 0;
                sim_log(m->idx, "\"ev\":\"sim\",\"what\":\"unlocked\"");
                ok(m);
            } else cme(m, 16, "incorrect password");
        } else error(m);
    } else if (IS("+CREG") || IS("+CGREG")) {
        int *n = IS("+CREG") ? &m->creg_n : &m->cgreg_n;
        if (form == 1) {
            snprintf(b, sizeof b, "%s: %d,%d", name, *n, m->f.not_registered ? 0 : 1);
            info(m, b);
            ok(m);
        } else if (form == 2) { snprintf(b, sizeof b, "%s: (0-2)", name); info(m, b); ok(m); }
        else if (form == 3 && np == 1 && int_param(&p[0], 0, 2, &v) == 0) { *n = v; ok(m); }
        else error(m);
    } else if (IS("+CSQ")) {
        if (form == 0) { info(m, m->f.not_registered ? "+CSQ: 99,99" : "+CSQ: 20,99"); ok(m); }
        else if (form == 2) { info(m, "+CSQ: (0-31,99),(99)"); ok(m); }
        else error(m);
    } else if (IS("^NDISDUP")) {
        /* ^NDISDUP=<cid>,<connect>[,<apn>...]: the module's own data call (ends a collision) */
        if (form == 2) { info(m, "^NDISDUP: (1-16),(0-1)"); ok(m); }
        else if (form == 3 && np >= 2 && int_param(&p[0], 1, 16, &v) == 0 &&
                 int_param(&p[1], 0, 1, &v) == 0) {
            m->f.data_session = v;
            sim_log(m->idx, "\"ev\":\"data-session\",\"up\":%d", v);
            ok(m);
            send_line(m, "urc", v ? "^NDISSTAT: 1,,,\"IPV4\"" : "^NDISSTAT: 0,,,\"IPV4\"", 0);
        } else error(m);
    } else if (IS("^NDISSTATQRY")) {
        if (form == 1) {
            info(m, m->f.data_session ? "^NDISSTATQRY: 1,,,\"IPV4\"" : "^NDISSTATQRY: 0,,,\"IPV4\"");
            ok(m);
        } else error(m);
    } else if (IS("+CGACT")) {
        if (form == 1) { info(m, m->f.data_session ? "+CGACT: 1,1" : "+CGACT: 1,0"); ok(m); }
        else if (form == 2) { info(m, "+CGACT: (0,1)"); ok(m); }
        else if (form == 3 && np >= 1 && int_param(&p[0], 0, 1, &v) == 0) {
            m->f.data_session = v;
            sim_log(m->idx, "\"ev\":\"data-session\",\"up\":%d", v);
            ok(m);
        } else error(m);
    } else if (IS("^CURC")) {
        if (form == 1) { snprintf(b, sizeof b, "^CURC: %d", m->curc); info(m, b); ok(m); }
        else if (form == 2) { info(m, "^CURC: (0-2)"); ok(m); }
        else if (form == 3 && np >= 1 && int_param(&p[0], 0, 2, &v) == 0) { m->curc = v; ok(m); }
        else error(m);
    } else if (sms_command(m, name, form, args)) {
        /* +CMGF +CPMS +CNMI +CMGR +CMGL +CMGD (sim_sms.c) */
    } else if (IS("^FOTACFG")) {
        if (form == 2) { info(m, "^FOTACFG: (APN),(USERNAME),(PASSWORD),(0-2)"); ok(m); return; }
        if (fota_gate(m) < 0) return;
        if (form == 1) {
            snprintf(b, sizeof b, "^FOTACFG: \"%s\",\"%s\",\"%s\",%d", m->apn, m->user, m->pw, m->auth);
            info(m, b);
            ok(m);
        } else if (form == 3) {
            if (np > 4) { final(m, "TOO MANY PARAMETERS"); return; }
            if (np != 4 || !p[0].quoted || !p[1].quoted || !p[2].quoted || !p[0].s[0] ||
                strlen(p[0].s) > 99 || strlen(p[1].s) > 99 || strlen(p[2].s) > 99 ||
                int_param(&p[3], 0, 2, &v) < 0) { bad_params(m); return; }
            snprintf(m->apn, sizeof m->apn, "%s", p[0].s);
            snprintf(m->user, sizeof m->user, "%s", p[1].s);
            snprintf(m->pw, sizeof m->pw, "%s", p[2].s);
            m->auth = v;
            ok(m);
        } else error(m);
    } else if (IS("^FOTAMODE")) {
        if (form == 2) { info(m, "^FOTAMODE: (0-1),(0-1),(0-1),(0-1),(1-365)"); ok(m); return; }
        if (fota_gate(m) < 0) return;
        if (form == 1) {
            snprintf(b, sizeof b, "^FOTAMODE: %d,%d,%d,%d,%d", m->auto_query, m->auto_dl,
                     m->auto_up, m->resume, m->period);
            info(m, b);
            ok(m);
        } else if (form == 3) {
            int a[5] = {0, 0, 0, 0, m->period};
            if (np > 5) { final(m, "TOO MANY PARAMETERS"); return; }
            if (np < 4) { bad_params(m); return; }
            for (int i = 0; i < np; i++)
                if (int_param(&p[i], i == 4 ? 1 : 0, i == 4 ? 365 : 1, &a[i]) < 0) { bad_params(m); return; }
            m->auto_query = a[0];
            m->auto_dl = a[1];
            m->auto_up = a[2];
            m->resume = a[3];
            m->period = a[4];
            if (m->resume) m->mode_wanted = 0;
            ok(m);
            if (!m->auto_query && m->ev == EV_AUTO_QUERY) m->ev = EV_NONE;
            if (m->auto_query && state_is_idle(m) && m->ev != EV_DETECT_DONE) start_detect(m);
        } else error(m);
    } else if (IS("^FOTADET")) {
        if (form == 2) { ok(m); return; }
        if (form != 0) { error(m); return; }
        if (fota_gate(m) < 0) return;
        if (m->f.data_session || !state_is_idle(m)) { cme(m, 54, "FOTA is in collision state"); return; }
        ok(m);
        start_detect(m);
    } else if (IS("^FOTADL")) {
        if (form == 2) { info(m, "^FOTADL: (0-2)"); ok(m); return; }
        if (form != 3) { error(m); return; }
        if (fota_gate(m) < 0) return;
        cmd_fotadl(m, args);
    } else if (IS("^FOTADLQ")) {
        if (form == 2) { ok(m); return; }
        if (form != 0) { error(m); return; }
        if (fota_gate(m) < 0) return;
        cmd_fotadlq(m);
    } else if (IS("^FWUP")) {
        if (form == 2) { ok(m); return; }
        if (form != 0) { error(m); return; }
        if (fota_gate(m) < 0) return;
        if (m->state != 40) { error(m); return; }
        ok(m);
        m->ev = EV_UPGRADE_START;
        m->ev_at = sim_now();
        fota_event(m, sim_now());
    } else if (IS("^FOTASTATE")) {
        if (form == 2) { ok(m); return; }
        if (form != 1) { error(m); return; }
        if (fota_gate(m) < 0) return;
        snprintf(b, sizeof b, "^FOTASTATE: %d", m->state);
        info(m, b);
        ok(m);
    } else {
        final(m, m->cfg->unknown_error ? "ERROR" : "COMMAND NOT SUPPORT");
    }
#undef IS
}

/* ---------------------------------------------------------------- shared with sim_sms.c */

int mod_params(const char *p, sim_param *out, int max) { return parse_params(p, out, max); }
int mod_int_param(const sim_param *q, int lo, int hi, int *out) { return int_param(q, lo, hi, out); }
void mod_info(sim_module *m, const char *text) { info(m, text); }
void mod_final(sim_module *m, const char *text) { final(m, text); }
void mod_urc(sim_module *m, const char *text) { send_line(m, "urc", text, 0); }
int mod_cmd_matches(const char *body, const sim_trigger *t) { return cmd_matches(body, t); }
double mod_bytes_now(const sim_module *m, double now) { return bytes_now(m, now); }

void mod_free(sim_module *m)
{
    free(m->sms);
    m->sms = NULL;
}
