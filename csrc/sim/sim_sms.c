/*
 * sim_sms.c — text-mode SMS (3GPP TS 27.005) on a simulated MU509/MU609:
 * delivery into SIM storage ("SM") at a trigger (--sms), the new-message
 * indication +CMTI as AT+CNMI allows, and +CMGF, +CPMS, +CNMI, +CMGR, +CMGL,
 * +CMGD. Also --urc: a raw line sent as a URC at a trigger (malformed +CMTI ...).
 *
 * Not simulated: PDU mode reads (+CMS ERROR: 303), "ME"/"SR" storage, sending,
 * +CMT routing of class 0/3 only, indications buffered while CNMI mode is 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sim.h"

#define SC(m, s) ((s) * (m)->cfg->time_scale)

/* ---------------------------------------------------------------- options */

static int printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) return 0;
    return 1;
}

/* "TRIGGER:FROM:TEXT" (urc 0) or "TRIGGER:LINE" (urc 1). */
int sms_parse_plan(const char *v, int urc, sim_sms_plan *p)
{
    memset(p, 0, sizeof *p);
    p->urc = urc;
    const char *c1 = v ? strchr(v, ':') : NULL;
    if (!c1) return -1;
    char trig[96];
    size_t tl = (size_t)(c1 - v);
    if (tl == 0 || tl >= sizeof trig) return -1;
    memcpy(trig, v, tl);
    trig[tl] = '\0';
    if (sim_parse_trigger(trig, &p->trig) < 0) return -1;
    const char *rest = c1 + 1;
    if (urc) {
        if (!*rest || strlen(rest) >= sizeof p->text || !printable(rest)) return -1;
        memcpy(p->text, rest, strlen(rest) + 1);
        return 0;
    }
    const char *c2 = strchr(rest, ':');
    if (!c2) return -1;
    size_t fl = (size_t)(c2 - rest);
    if (fl == 0 || fl >= 21) return -1;
    memcpy(p->from, rest, fl);
    p->from[fl] = '\0';
    if (!printable(p->from) || strchr(p->from, '"')) return -1;
    const char *text = c2 + 1;
    if (strlen(text) >= SIM_SMS_TEXT || !printable(text)) return -1;
    memcpy(p->text, text, strlen(text) + 1);
    return 0;
}

/* ---------------------------------------------------------------- storage */

void sms_defaults(sim_module *m)
{
    m->cmgf = 0;
    memset(m->cnmi, 0, sizeof m->cnmi);
}

static int slots(const sim_module *m) { return m->cfg->sms_slots; }

static int storage(sim_module *m)
{
    if (!m->sms) m->sms = calloc((size_t)slots(m), sizeof *m->sms);
    return m->sms != NULL;
}

static int used(const sim_module *m)
{
    int n = 0;
    for (int i = 0; m->sms && i < slots(m); i++) n += m->sms[i].used;
    return n;
}

/* Service-centre time stamp: 24/11/25,10:00:00 plus the model seconds of a time= trigger
 * (deterministic) or of now, zone +32 (UTC+8). */
static void scts(const sim_module *m, const sim_sms_plan *p, char *out, size_t cap)
{
    double t = p->trig.kind == TRIG_TIME ? p->trig.val : sim_now() / m->cfg->time_scale;
    long s = 36000 + (long)t;
    snprintf(out, cap, "24/11/25,%02ld:%02ld:%02ld+32", (s / 3600) % 24, (s / 60) % 60, s % 60);
}

static void log_sms(sim_module *m, const char *what, int index, const char *extra)
{
    sim_log(m->idx, "\"ev\":\"sms\",\"what\":\"%s\",\"index\":%d%s", what, index, extra ? extra : "");
}

/* A module that is off (resetting) receives nothing: the network retries later. */
static int resetting(const sim_module *m)
{
    return m->mfd < 0 && m->port_back_at > 0 && m->boot_kind != BOOT_PORT_BACK &&
           m->boot_kind != BOOT_NONE;
}

void sms_deliver(sim_module *m, sim_sms_plan *p)
{
    char jt[2 * SIM_STR + 8], jf[2 * SIM_SMS_FROM + 8], extra[4 * SIM_STR];
    p->trig.fired = 1;
    sim_json_str(jt, sizeof jt, p->text);
    if (p->urc) {
        sim_log(m->idx, "\"ev\":\"fault\",\"fault\":\"urc\",\"line\":%s", jt);
        mod_urc(m, p->text);
        return;
    }
    sim_json_str(jf, sizeof jf, p->from);
    char ts[32], line[SIM_STR + 64];
    scts(m, p, ts, sizeof ts);
    if (m->sim_locked) {
        snprintf(extra, sizeof extra, ",\"from\":%s,\"text\":%s,\"reason\":\"sim-locked\"", jf, jt);
        log_sms(m, "rejected", -1, extra);
        return;
    }
    if (m->cnmi[1] == 2) {
        /* routed to the host directly (+CMT), not stored */
        snprintf(extra, sizeof extra, ",\"from\":%s,\"text\":%s,\"cmt\":true", jf, jt);
        log_sms(m, "delivered", -1, extra);
        snprintf(line, sizeof line, "+CMT: \"%s\",,\"%s\"", p->from, ts);
        mod_urc(m, line);
        mod_urc(m, p->text);
        return;
    }
    int idx = -1;
    if (storage(m))
        for (int i = 0; i < slots(m); i++)
            if (!m->sms[i].used) { idx = i; break; }
    if (idx < 0) {
        snprintf(extra, sizeof extra, ",\"from\":%s,\"text\":%s,\"reason\":\"full\"", jf, jt);
        log_sms(m, "rejected", -1, extra);
        return;
    }
    sim_sms *s = &m->sms[idx];
    s->used = 1;
    s->unread = 1;
    snprintf(s->from, sizeof s->from, "%s", p->from);
    memcpy(s->text, p->text, sizeof s->text - 1); /* parse checked: < 161 */
    s->text[sizeof s->text - 1] = '\0';
    snprintf(s->scts, sizeof s->scts, "%s", ts);
    /* mt 1 or 3 with mode 1 or 2: +CMTI now; mode 0 would buffer it (not simulated: lost) */
    int cmti = (m->cnmi[1] == 1 || m->cnmi[1] == 3) && m->cnmi[0] >= 1;
    snprintf(extra, sizeof extra, ",\"from\":%s,\"text\":%s,\"cmti\":%s", jf, jt, cmti ? "true" : "false");
    log_sms(m, "delivered", idx, extra);
    if (cmti) {
        snprintf(line, sizeof line, "+CMTI: \"SM\",%d", idx);
        mod_urc(m, line);
    }
}

/* ---------------------------------------------------------------- triggers */

void sms_check_state(sim_module *m, int st)
{
    for (int i = 0; i < m->f.n_sms; i++) {
        sim_sms_plan *p = &m->f.sms[i];
        if (p->trig.kind == TRIG_STATE && !p->trig.fired && (int)p->trig.val == st) sms_deliver(m, p);
    }
}

void sms_check_cmd(sim_module *m, const char *body, int *match)
{
    for (int i = 0; i < SIM_SMS_PLAN; i++) {
        const sim_sms_plan *p = &m->f.sms[i];
        match[i] = i < m->f.n_sms && p->trig.kind == TRIG_CMD && !p->trig.fired &&
                   mod_cmd_matches(body, &p->trig);
    }
}

/* after the command's own response */
void sms_after_cmd(sim_module *m, const int *match)
{
    for (int i = 0; i < m->f.n_sms; i++)
        if (match[i] && !m->f.sms[i].trig.fired) sms_deliver(m, &m->f.sms[i]);
}

/* Real time a time= or byte= trigger is due (0: not pending). */
static double due(const sim_module *m, const sim_sms_plan *p)
{
    if (p->trig.fired || resetting(m)) return 0;
    if (p->trig.kind == TRIG_TIME) {
        double r = SC(m, p->trig.val);
        return r > 0 ? r : 1e-6;
    }
    if (p->trig.kind == TRIG_BYTE && m->state == 30 && m->ev == EV_DL_THRESHOLD &&
        p->trig.val <= m->dl_target) {
        double r = m->dl_t0 + SC(m, (p->trig.val - m->dl_b0) / m->cfg->rate);
        return r > 1e-6 ? r : 1e-6;
    }
    return 0;
}

void sms_tick(sim_module *m, double now)
{
    for (int i = 0; i < m->f.n_sms; i++) {
        sim_sms_plan *p = &m->f.sms[i];
        double d = due(m, p);
        if (d <= 0 || now < d) continue;
        if (p->trig.kind == TRIG_BYTE && mod_bytes_now(m, now) < p->trig.val) continue;
        sms_deliver(m, p);
    }
}

double sms_next_deadline(const sim_module *m)
{
    double d = 0;
    for (int i = 0; i < m->f.n_sms; i++) {
        double t = due(m, &m->f.sms[i]);
        if (t > 0 && (d == 0 || t < d)) d = t;
    }
    return d;
}

/* ---------------------------------------------------------------- commands */

static void cms(sim_module *m, int code)
{
    char b[40];
    snprintf(b, sizeof b, "+CMS ERROR: %d", code); /* numeric whatever AT+CMEE says (27.005) */
    mod_final(m, b);
}

/* invalid parameter: 304 in PDU mode, 305 in text mode */
static void bad_param(sim_module *m) { cms(m, m->cmgf ? 305 : 304); }

static const char *stat_name(const sim_sms *s) { return s->unread ? "REC UNREAD" : "REC READ"; }

static void mark_read(sim_module *m, int i, const char *by)
{
    sim_sms *s = &m->sms[i];
    char extra[64];
    snprintf(extra, sizeof extra, ",\"by\":\"%s\",\"was\":\"%s\"", by, s->unread ? "unread" : "read");
    log_sms(m, "read", i, extra);
    s->unread = 0;
}

static void cmd_cmgr(sim_module *m, const sim_param *p, int np)
{
    int i;
    if (np != 1 || mod_int_param(&p[0], 0, 65535, &i) < 0) { bad_param(m); return; }
    if (!m->cmgf) { cms(m, 303); return; } /* PDU mode: not simulated */
    if (i >= slots(m) || !m->sms || !m->sms[i].used) { cms(m, 321); return; }
    sim_sms *s = &m->sms[i];
    char b[SIM_SMS_FROM + 96];
    snprintf(b, sizeof b, "+CMGR: \"%s\",\"%s\",,\"%s\"", stat_name(s), s->from, s->scts);
    mod_info(m, b);
    mod_info(m, s->text);
    mark_read(m, i, "CMGR");
    mod_final(m, "OK");
}

static void cmd_cmgl(sim_module *m, const sim_param *p, int np)
{
    int want = 0; /* 0 unread, 1 read, 4 all, 2/3 stored (none: nothing is sent here) */
    if (np > 1) { bad_param(m); return; }
    if (!m->cmgf) { cms(m, 303); return; }
    if (np == 1) {
        if (!p[0].quoted) { bad_param(m); return; }
        if (!strcmp(p[0].s, "REC UNREAD")) want = 0;
        else if (!strcmp(p[0].s, "REC READ")) want = 1;
        else if (!strcmp(p[0].s, "STO UNSENT")) want = 2;
        else if (!strcmp(p[0].s, "STO SENT")) want = 3;
        else if (!strcmp(p[0].s, "ALL")) want = 4;
        else { bad_param(m); return; }
    }
    for (int i = 0; m->sms && i < slots(m); i++) {
        sim_sms *s = &m->sms[i];
        if (!s->used || (want == 0 && !s->unread) || (want == 1 && s->unread) || want == 2 || want == 3)
            continue;
        char b[SIM_SMS_FROM + 96];
        snprintf(b, sizeof b, "+CMGL: %d,\"%s\",\"%s\",,\"%s\"", i, stat_name(s), s->from, s->scts);
        mod_info(m, b);
        mod_info(m, s->text);
        if (s->unread) mark_read(m, i, "CMGL");
    }
    mod_final(m, "OK");
}

static void delete_one(sim_module *m, int i)
{
    if (!m->sms[i].used) return;
    log_sms(m, "deleted", i, NULL);
    memset(&m->sms[i], 0, sizeof m->sms[i]);
}

static void cmd_cmgd(sim_module *m, const sim_param *p, int np)
{
    int i, flag = 0;
    if (np < 1 || np > 2 || mod_int_param(&p[0], 0, 65535, &i) < 0 ||
        (np == 2 && mod_int_param(&p[1], 0, 4, &flag) < 0)) { bad_param(m); return; }
    if (flag == 0) {
        if (i >= slots(m)) { cms(m, 321); return; }
        if (m->sms) delete_one(m, i); /* an empty slot: OK as well */
    } else {
        /* 1 read, 2 read+sent, 3 read+sent+unsent, 4 all: nothing is ever sent here */
        for (int k = 0; m->sms && k < slots(m); k++)
            if (m->sms[k].used && (flag == 4 || !m->sms[k].unread)) delete_one(m, k);
    }
    mod_final(m, "OK");
}

int sms_command(sim_module *m, const char *name, int form, const char *args)
{
    char b[160];
    sim_param p[6];
    int np = 0, v;
    if (strcmp(name, "+CMGF") && strcmp(name, "+CPMS") && strcmp(name, "+CNMI") &&
        strcmp(name, "+CMGR") && strcmp(name, "+CMGL") && strcmp(name, "+CMGD"))
        return 0;
    if (form == 3 || (form == 0 && !strcmp(name, "+CMGL"))) {
        np = mod_params(args, p, 5);
        if (np < 0 || np > 5) { bad_param(m); return 1; }
    }
    if (form == 2) {
        if (!strcmp(name, "+CMGF")) mod_info(m, "+CMGF: (0-1)");
        else if (!strcmp(name, "+CPMS")) mod_info(m, "+CPMS: (\"SM\"),(\"SM\"),(\"SM\")");
        else if (!strcmp(name, "+CNMI")) mod_info(m, "+CNMI: (0-2),(0-3),(0,2),(0-2),(0-1)");
        else if (!strcmp(name, "+CMGL"))
            mod_info(m, m->cmgf ? "+CMGL: (\"REC UNREAD\",\"REC READ\",\"STO UNSENT\",\"STO SENT\",\"ALL\")"
                                : "+CMGL: (0-4)");
        else if (!strcmp(name, "+CMGD")) {
            snprintf(b, sizeof b, "+CMGD: (0-%d),(0-4)", slots(m) - 1);
            mod_info(m, b);
        }
        mod_final(m, "OK");
        return 1;
    }
    if (!strcmp(name, "+CMGF")) {
        if (form == 1) { snprintf(b, sizeof b, "+CMGF: %d", m->cmgf); mod_info(m, b); mod_final(m, "OK"); }
        else if (form == 3 && np == 1 && mod_int_param(&p[0], 0, 1, &v) == 0) { m->cmgf = v; mod_final(m, "OK"); }
        else if (form == 0) { m->cmgf = 0; mod_final(m, "OK"); }
        else bad_param(m);
        return 1;
    }
    if (!strcmp(name, "+CNMI")) {
        static const int hi[5] = {2, 3, 2, 2, 1};
        if (form == 1) {
            snprintf(b, sizeof b, "+CNMI: %d,%d,%d,%d,%d", m->cnmi[0], m->cnmi[1], m->cnmi[2], m->cnmi[3],
                     m->cnmi[4]);
            mod_info(m, b);
            mod_final(m, "OK");
            return 1;
        }
        int c[5];
        memcpy(c, m->cnmi, sizeof c);
        if (form == 0) memset(c, 0, sizeof c);
        else if (form == 3 && np >= 1) {
            for (int i = 0; i < np; i++) {
                if (!p[i].s[0] && !p[i].quoted) continue; /* omitted: unchanged */
                if (mod_int_param(&p[i], 0, hi[i], &c[i]) < 0 || (i == 2 && c[i] == 1)) {
                    bad_param(m);
                    return 1;
                }
            }
        } else { bad_param(m); return 1; }
        memcpy(m->cnmi, c, sizeof c);
        sim_log(m->idx, "\"ev\":\"sms\",\"what\":\"cnmi\",\"mode\":%d,\"mt\":%d", c[0], c[1]);
        mod_final(m, "OK");
        return 1;
    }
    /* the rest needs the SIM */
    if (m->sim_locked) { cms(m, 311); return 1; }
    if (!strcmp(name, "+CPMS")) {
        int u = used(m), t = slots(m);
        if (form == 1) {
            snprintf(b, sizeof b, "+CPMS: \"SM\",%d,%d,\"SM\",%d,%d,\"SM\",%d,%d", u, t, u, t, u, t);
            mod_info(m, b);
            mod_final(m, "OK");
        } else if (form == 3 && np >= 1 && np <= 3) {
            for (int i = 0; i < np; i++)
                if (!p[i].quoted || strcmp(p[i].s, "SM")) { cms(m, 302); return 1; } /* only "SM" */
            snprintf(b, sizeof b, "+CPMS: %d,%d,%d,%d,%d,%d", u, t, u, t, u, t);
            mod_info(m, b);
            mod_final(m, "OK");
        } else bad_param(m);
        return 1;
    }
    if (!strcmp(name, "+CMGR")) {
        if (form != 3) bad_param(m);
        else cmd_cmgr(m, p, np);
        return 1;
    }
    if (!strcmp(name, "+CMGL")) {
        if (form != 0 && form != 3) bad_param(m);
        else cmd_cmgl(m, p, np);
        return 1;
    }
    /* +CMGD */
    if (form != 3) bad_param(m);
    else cmd_cmgd(m, p, np);
    return 1;
}
