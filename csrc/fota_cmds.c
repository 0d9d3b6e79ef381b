/*
 * fota_cmds.c — the FOTA command table (see fota_cmds.h): one row per command, its
 * text builders with their parameter rules, and the answer parsers the rows name.
 */
#include "fota_cmds.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- parameter rules and builders ------------------------------------------------------ */

int hf_fota_check_at_param(const char *what, const char *s, size_t n, hf_error *err)
{
    if (n > HF_FOTA_CRED_MAX)
        return hf_error_set(err, "EINVAL", "%s is longer than %d bytes", what, HF_FOTA_CRED_MAX);
    if (memchr(s, '"', n) || memchr(s, ';', n) || memchr(s, '\r', n) || memchr(s, '\n', n))
        return hf_error_set(err, "EINVAL", "%s must not contain '\"', ';', CR or LF "
                            "(it goes into an AT command)", what);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return hf_error_set(err, "EINVAL", "%s contains the control character 0x%02X at "
                                "byte %zu (it would go into an AT command)", what,
                                (unsigned)(unsigned char)s[i], i + 1);
    return 0;
}

int hf_fota_check_mode(const hf_fotamode *m, hf_error *err)
{
    if ((unsigned)m->auto_query > 1 || (unsigned)m->auto_download > 1 ||
        (unsigned)m->auto_upgrade > 1 || (unsigned)m->resume > 1 ||
        (m->has_period && (m->period < HF_FOTA_PERIOD_MIN || m->period > HF_FOTA_PERIOD_MAX)))
        return hf_error_set(err, "EINVAL", "mode flags must be 0/1, period 1..365 days");
    return 0;
}

static int check_str(const char *what, const char *s, hf_error *err)
{
    return hf_fota_check_at_param(what, s, strnlen(s, HF_FOTA_CRED_MAX + 1), err);
}

static int built(int n, size_t cap, hf_error *err)
{
    if (n < 0 || (size_t)n >= cap)
        return hf_error_set(err, "EINVAL", "the command does not fit %zu bytes", cap);
    return 0;
}

static int build_fotacfg(const hf_fota_cmd_params *p, char *dst, size_t cap, hf_error *err)
{
    const char *apn = p->apn ? p->apn : "", *user = p->user ? p->user : "";
    const char *pw = p->password ? p->password : "";
    if (check_str("apn", apn, err) < 0 || check_str("user", user, err) < 0 ||
        check_str("password", pw, err) < 0)
        return -1;
    if (p->auth < 0 || p->auth > 2)
        return hf_error_set(err, "EINVAL", "auth must be 0 (none), 1 (PAP) or 2 (CHAP)");
    return built(snprintf(dst, cap, "AT^FOTACFG=\"%s\",\"%s\",\"%s\",%d", apn, user, pw,
                          p->auth), cap, err);
}

static int build_fotamode(const hf_fota_cmd_params *p, char *dst, size_t cap, hf_error *err)
{
    const hf_fotamode *m = &p->mode;
    if (hf_fota_check_mode(m, err) < 0)
        return -1;
    if (m->has_period)
        return built(snprintf(dst, cap, "AT^FOTAMODE=%d,%d,%d,%d,%u", m->auto_query,
                              m->auto_download, m->auto_upgrade, m->resume, m->period), cap, err);
    return built(snprintf(dst, cap, "AT^FOTAMODE=%d,%d,%d,%d", m->auto_query, m->auto_download,
                          m->auto_upgrade, m->resume), cap, err);
}

/* ---- setup commands ------------------------------------------------------------------------ */

/* Names a setup command must not carry: every FOTA command (^FOTA*, ^FWUP: the table's
 * state-changing rows), resets, functionality and port-mode changes, NV writes. */
static const char *const setup_deny[] = {"^FOTA", "^FWUP", "+CFUN", "^RESET", "^GETPORTMODE",
                                         "^SETPORT", "^NVWR"};

static int is_word(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

static int upper(unsigned char ch)
{
    return ch >= 'a' && ch <= 'z' ? ch - 'a' + 'A' : ch;
}

/* Parameters after "=": plain values (letters, digits, space , . - _ / :) and quoted
 * text without + ^ % $ & (a command hidden in quotes). */
static int plain_params(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"') {
            const char *q = memchr(s + i + 1, '"', n - i - 1);
            if (!q)
                return 0;
            for (const char *k = s + i + 1; k < q; k++)
                if (strchr("+^%$&", *k))
                    return 0;
            i = (size_t)(q - s);
        } else if (!is_word(ch) && !strchr(" ,.-/:", ch)) {
            return 0;
        }
    }
    return 1;
}

int hf_fota_check_setup_command(const char *c, size_t n, hf_error *err)
{
    if (n > 200)
        return hf_error_set(err, "EINVAL", "longer than 200 bytes");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)c[i] < 0x20 || c[i] == 0x7f)
            return hf_error_set(err, "EINVAL", "it contains a control character");
    if (memchr(c, ';', n))
        return hf_error_set(err, "EINVAL", "';' chains commands: one command per entry");
    if (n < 2 || upper((unsigned char)c[0]) != 'A' || upper((unsigned char)c[1]) != 'T') {
        for (size_t i = 0; i + 1 < n; i++)
            if (upper((unsigned char)c[i]) == 'A' &&
                (upper((unsigned char)c[i + 1]) == 'T' || c[i + 1] == '/'))
                return hf_error_set(err, "EINVAL", "a command line must start with AT "
                                    "(modules skip bytes before it)");
        return 0;           /* no command at all: the module discards the line */
    }
    const char *b = c + 2;
    size_t bn = n - 2;
    if (bn == 0)
        return 0;
    if (strchr("+^%$", b[0]) && bn > 1 && is_word((unsigned char)b[1])) {
        size_t nl = 1;
        while (nl < bn && is_word((unsigned char)b[nl]))
            nl++;
        char name[201];
        for (size_t i = 0; i < nl; i++)
            name[i] = (char)upper((unsigned char)b[i]);
        name[nl] = '\0';
        for (size_t d = 0; d < sizeof setup_deny / sizeof setup_deny[0]; d++)
            if (strncmp(name, setup_deny[d], strlen(setup_deny[d])) == 0)
                return hf_error_set(err, "EINVAL", "%s changes the module's FOTA state or "
                                    "resets it: not a setup command", name);
        const char *rest = b + nl;
        size_t rn = bn - nl;
        if (rn == 0 || (rn == 1 && rest[0] == '?') || (rn == 2 && !memcmp(rest, "=?", 2)))
            return 0;
        if (rest[0] != '=')
            return hf_error_set(err, "EINVAL", "unexpected text after %s", name);
        if (!plain_params(rest + 1, rn - 1))
            return hf_error_set(err, "EINVAL", "parameters must be plain values (a second "
                                "command after the first?)");
        return 0;
    }
    for (size_t i = 0; i < bn;) {
        int ch = upper((unsigned char)b[i]);
        if (strchr("EVQX", ch) && ch) {
            i++;
        } else if (ch == '&' && i + 1 < bn && strchr("CDK", upper((unsigned char)b[i + 1])) &&
                   b[i + 1]) {
            i += 2;
        } else {
            char bad[5];    /* the two bytes, '"' and '\\' escaped */
            size_t k = 0;
            for (size_t j = i; j < bn && j < i + 2; j++) {
                if (b[j] == '"' || b[j] == '\\')
                    bad[k++] = '\\';
                bad[k++] = (char)upper((unsigned char)b[j]);
            }
            bad[k] = '\0';
            return hf_error_set(err, "EINVAL", "basic command \"%s\" is not allowed (only E, "
                                "V, Q, X, &C, &D, &K: Z and &F reset the module's settings)",
                                bad);
        }
        while (i < bn && b[i] >= '0' && b[i] <= '9')
            i++;
    }
    return 0;
}

/* ---- answer parsers ---------------------------------------------------------------------- */

/* "Key: value" with this key (case-insensitive, spaces around both): the value. */
static int key_value(const char *s, size_t n, const char *key, const char **v, size_t *vn)
{
    const char *colon = memchr(s, ':', n);
    if (!colon)
        return 0;
    const char *k = s;
    size_t kn = (size_t)(colon - s);
    hf_trim(&k, &kn);
    if (kn != strlen(key) || strncasecmp(k, key, kn) != 0)
        return 0;
    *v = colon + 1;
    *vn = (size_t)(s + n - (colon + 1));
    hf_trim(v, vn);
    return 1;
}

static int version_of(const char *s, size_t n, hf_fota_answer *a)
{
    if (hf_has_prefix(s, n, "+GMR:")) {
        s += 5;
        n -= 5;
    }
    hf_trim(&s, &n);
    if (hf_version_parse(s, n, &a->firmware, NULL) < 0)
        return -1;
    a->has |= HF_ANS_FIRMWARE | HF_ANS_REVISION;
    hf_copy_printable(a->revision, sizeof a->revision, s, n);
    return 0;
}

static int imei_line(const char *s, size_t n, char *out, size_t cap)
{
    if (hf_has_prefix(s, n, "+CGSN:")) {
        s += 6;
        n -= 6;
    }
    hf_trim(&s, &n);
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s++;
        n -= 2;
    }
    if (n >= cap || !hf_imei_form(s, n))
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

/* ATI: Manufacturer:, Model:, Revision:, IMEI: lines (any order, any case). */
static void parse_ati(const char *const *l, const size_t *ln, size_t n, hf_fota_answer *a)
{
    for (size_t i = 0; i < n; i++) {
        const char *v;
        size_t vn;
        if (!l[i])
            continue;
        if (key_value(l[i], ln[i], "Manufacturer", &v, &vn)) {
            hf_copy_printable(a->manufacturer, sizeof a->manufacturer, v, vn);
            a->has |= HF_ANS_MAKER;
        } else if (key_value(l[i], ln[i], "Model", &v, &vn)) {
            hf_copy_printable(a->model, sizeof a->model, v, vn);
            a->has |= HF_ANS_MODEL;
        } else if (key_value(l[i], ln[i], "Revision", &v, &vn)) {
            if (version_of(v, vn, a) < 0) {
                hf_copy_printable(a->revision, sizeof a->revision, v, vn);
                a->has |= HF_ANS_REVISION;
            }
        } else if (key_value(l[i], ln[i], "IMEI", &v, &vn)) {
            if (imei_line(v, vn, a->imei, sizeof a->imei) == 0)
                a->has |= HF_ANS_IMEI;
        }
    }
}

/* AT+GMR: the first line that reads as a version ("+GMR:" or bare). */
static void parse_gmr(const char *const *l, const size_t *ln, size_t n, hf_fota_answer *a)
{
    for (size_t i = 0; i < n; i++)
        if (l[i] && version_of(l[i], ln[i], a) == 0)
            return;
    for (size_t i = 0; i < n; i++) {
        const char *s = l[i];
        size_t sn = l[i] ? ln[i] : 0;
        hf_trim(&s, &sn);
        if (sn) {       /* unreadable as a version: the text for people only */
            hf_copy_printable(a->revision, sizeof a->revision, s, sn);
            a->has |= HF_ANS_REVISION;
            return;
        }
    }
}

static void parse_cgsn(const char *const *l, const size_t *ln, size_t n, hf_fota_answer *a)
{
    for (size_t i = 0; i < n; i++)
        if (l[i] && imei_line(l[i], ln[i], a->imei, sizeof a->imei) == 0) {
            a->has |= HF_ANS_IMEI;
            return;
        }
}

static void parse_cpin(const char *const *l, const size_t *ln, size_t n, hf_fota_answer *a)
{
    a->has |= HF_ANS_SIM;
    a->sim_ready = 0;
    for (size_t i = 0; i < n; i++) {
        if (!l[i] || !hf_has_prefix(l[i], ln[i], "+CPIN:"))
            continue;
        a->sim_ready = hf_parse_cpin(l[i], ln[i], a->sim_what, sizeof a->sim_what) == 1;
        break;
    }
    if (!a->sim_ready && !a->sim_what[0])
        hf_strlcpy(a->sim_what, sizeof a->sim_what, "no answer");
}

static void parse_reg(const char *const *l, const size_t *ln, size_t n, hf_fota_answer *a)
{
    a->has |= HF_ANS_REG;
    a->reg_stat = -1;
    for (size_t i = 0; i < n && a->reg_stat < 0; i++)
        if (l[i])
            a->reg_stat = hf_parse_creg(l[i], ln[i]);
}

static void parse_cgreg(const char *const *l, const size_t *ln, size_t n, hf_fota_answer *a)
{
    parse_reg(l, ln, n, a);
    a->reg_ps = 1;
}

static int state_line(const char *s, size_t n, hf_fotastate *st)
{
    return s && hf_is_fotastate(s, n) && hf_parse_fotastate(s, n, st, NULL) == 0;
}

/* The answer to AT^FOTASTATE? is its last ^FOTASTATE line. Lines before it are URCs
 * the engine took as response (same prefix): kept in order (the last
 * HF_FOTA_ANSWER_STATES - 1), and a "^FOTASTATE: 12,<version>,..." among them gives
 * the bare "^FOTASTATE: 12" answer the offer's version it lacks. */
static void parse_state(const char *const *l, const size_t *ln, size_t n, hf_fota_answer *a)
{
    size_t i = n;
    while (i > 0 && !(l[i - 1] && hf_is_fotastate(l[i - 1], ln[i - 1])))
        i--;
    hf_fotastate last;
    if (i-- == 0 || hf_parse_fotastate(l[i], ln[i], &last, NULL) != 0)
        return;         /* unreadable */
    size_t first = 0, kept = 0;
    for (size_t k = i; k-- > 0 && kept < HF_FOTA_ANSWER_STATES - 1;)
        if (l[k] && hf_is_fotastate(l[k], ln[k])) {
            kept++;
            first = k;
        }
    for (size_t k = first; kept && k < i; k++)
        if (state_line(l[k], ln[k], &a->states[a->nstates]))
            a->nstates++;
    if (last.state == 12 && !last.has_version)
        for (size_t k = a->nstates; k-- > 0;)
            if (a->states[k].state == 12 && a->states[k].has_version) {
                last = a->states[k];
                break;
            }
    a->states[a->nstates++] = last;
    a->has |= HF_ANS_STATE;
}

void hf_fota_progress_sum(const hf_fotadlq *files, size_t n, hf_fota_progress *p)
{
    memset(p, 0, sizeof *p);
    for (size_t i = 0; i < n && p->nfiles < HF_FOTA_FILES_MAX; i++) {
        hf_fotadlq d = files[i];
        if (d.done > d.total)
            d.done = d.total;     /* never more than 100 % */
        p->files[p->nfiles++] = d;
        p->done += d.done;
        p->total += d.total;
    }
    p->percent = p->total ? (unsigned)((unsigned long long)p->done * 100 / p->total) : 0;
}

static void parse_dlq(const char *const *l, const size_t *ln, size_t n, hf_fota_answer *a)
{
    hf_fotadlq files[HF_FOTA_FILES_MAX];
    size_t k = 0;
    for (size_t i = 0; i < n && k < HF_FOTA_FILES_MAX; i++)
        if (l[i] && hf_parse_fotadlq(l[i], ln[i], &files[k], NULL) == 0)
            k++;
    if (!k)
        return;
    hf_fota_progress_sum(files, k, &a->progress);
    a->has |= HF_ANS_PROGRESS;
}

static void parse_cfg(const char *const *l, const size_t *ln, size_t n, hf_fota_answer *a)
{
    for (size_t i = 0; i < n; i++)
        if (l[i] && hf_parse_fotacfg(l[i], ln[i], &a->cfg, NULL) == 0) {
            a->has |= HF_ANS_CFG;
            return;
        }
}

/* ---- the table ------------------------------------------------------------------------------ */

#define QUERY(t, pre) .text = t, .expect = (pre) ? HF_FOTA_EXPECT_PREFIX : HF_FOTA_EXPECT_ALL, \
    .prefix = pre, .idempotent = 1, .on_timeout = HF_TMO_RESEND
#define SETTER .expect = HF_FOTA_EXPECT_NONE, .changes_state = 1

static const hf_fota_cmd_def rows[HF_CMD_COUNT] = {
    [HF_CMD_NONE] = {.name = "", .text = "", .expect = HF_FOTA_EXPECT_NONE, .idempotent = 1,
        .on_timeout = HF_TMO_RESEND},
    [HF_CMD_ATI] = {.name = "ati", QUERY("ATI", NULL), .parse = parse_ati,
        .teaches = HF_ANS_MODEL | HF_ANS_FIRMWARE, .needs = HF_ANS_FIRMWARE,
        .unreadable_code = "EMODULE",
        .unreadable_msg = "ATI did not report a readable firmware Revision",
        .err_code = "EMODULE", .err_msg = "the module refused ATI (%s)"},
    [HF_CMD_GMR] = {.name = "gmr", QUERY("AT+GMR", NULL), .parse = parse_gmr,
        .teaches = HF_ANS_FIRMWARE, .needs = HF_ANS_FIRMWARE, .unreadable_code = "EMODULE",
        .unreadable_msg = "AT+GMR gave no readable firmware version",
        .err_code = "EMODULE", .err_msg = "the module refused AT+GMR (%s)"},
    [HF_CMD_CGSN] = {.name = "cgsn", QUERY("AT+CGSN", NULL), .parse = parse_cgsn,
        .teaches = HF_ANS_IMEI, .needs = HF_ANS_IMEI, .unreadable_code = "EMODULE",
        .unreadable_msg = "AT+CGSN gave no readable IMEI",
        .err_code = "EMODULE", .err_msg = "the module refused AT+CGSN (%s)"},
    [HF_CMD_CPIN] = {.name = "cpin", QUERY("AT+CPIN?", "+CPIN:"), .parse = parse_cpin,
        .teaches = HF_ANS_SIM, .refusal = HF_REF_UNKNOWN_OK, .subject = "the SIM state",
        .err_code = "ESIM", .err_msg = "SIM not ready: the module answered AT+CPIN? with "
        "\"%s\"; insert or unlock the SIM"},
    [HF_CMD_CREG] = {.name = "creg", QUERY("AT+CREG?", "+CREG:"), .parse = parse_reg,
        .teaches = HF_ANS_REG, .refusal = HF_REF_UNKNOWN_OK,
        .subject = "the network registration", .err_code = "ENOTREG",
        .err_msg = "not registered: the module answered AT+CREG? with \"%s\""},
    [HF_CMD_CGREG] = {.name = "cgreg", QUERY("AT+CGREG?", "+CGREG:"), .parse = parse_cgreg,
        .teaches = HF_ANS_REG, .refusal = HF_REF_UNKNOWN_OK,
        .subject = "the packet data registration", .err_code = "ENOTREG",
        .err_msg = "not registered: the module answered AT+CGREG? with \"%s\""},
    /* setting the same parameters twice is setting them once */
    [HF_CMD_FOTACFG] = {.name = "fotacfg", .text = "AT^FOTACFG=", .build = build_fotacfg,
        SETTER, .idempotent = 1, .on_timeout = HF_TMO_RESEND,
        .err_code = "EMODULE", .err_msg = "the module refused AT^FOTACFG (%s)"},
    [HF_CMD_FOTAMODE] = {.name = "fotamode", .text = "AT^FOTAMODE=", .build = build_fotamode,
        SETTER, .idempotent = 1, .on_timeout = HF_TMO_RESEND, .ok = HF_OK_MODE_SET,
        .refusal = HF_REF_SKIP_IN_DOWNLOAD,
        .err_code = "EMODULE", .err_msg = "the module refused AT^FOTAMODE (%s)"},
    [HF_CMD_STATE] = {.name = "state", QUERY("AT^FOTASTATE?", "^FOTASTATE:"),
        .parse = parse_state, .teaches = HF_ANS_STATE, .needs = HF_ANS_STATE,
        .unreadable_resend = 1, .unreadable_code = "EPROTO",
        .unreadable_msg = "AT^FOTASTATE? gave no readable ^FOTASTATE line",
        .err_code = "EUNSUPPORTED", .err_msg = "AT^FOTASTATE? failed (%s): this firmware may "
        "lack FOTA"},
    /* starts a version query: a second one may be refused or start another */
    [HF_CMD_FOTADET] = {.name = "fotadet", .text = "AT^FOTADET", SETTER,
        .on_timeout = HF_TMO_ASK_STATE, .collision_by_state = 1, .err_code = "EDETECT",
        .err_msg = "the module refused AT^FOTADET (%s): its FOTA state must be idle and no "
        "data session active"},
    [HF_CMD_DL_START] = {.name = "dl_start", .text = "AT^FOTADL=1", SETTER,
        .on_timeout = HF_TMO_ASK_STATE, .ok = HF_OK_DL_STARTED, .err_code = "EDOWNLOAD",
        .err_msg = "the module refused AT^FOTADL=1 (%s)", .err_with_state = 1},
    [HF_CMD_DL_PAUSE] = {.name = "dl_pause", .text = "AT^FOTADL=2", SETTER,
        .on_timeout = HF_TMO_ASK_STATE,
        .timeout_notice = "AT^FOTADL=2 got no answer: the download is not paused",
        .ok = HF_OK_TO_PAUSED, .refusal = HF_REF_DROP_REQUEST,
        .err_msg = "the module refused to pause (%s): resumable transfer off or not "
        "supported; the download continues"},
    [HF_CMD_DL_STOP] = {.name = "dl_stop", .text = "AT^FOTADL=0", SETTER,
        .on_timeout = HF_TMO_ASK_STATE, .refusal = HF_REF_ASK_STATE},
    [HF_CMD_DLQ] = {.name = "dlq", QUERY("AT^FOTADLQ", "^FOTADLQ:"), .timeout = 10,
        .parse = parse_dlq, .teaches = HF_ANS_PROGRESS, .refusal = HF_REF_IGNORE},
    /* applies the image: never twice (fota_fsm.c's gate) */
    [HF_CMD_FWUP] = {.name = "fwup", .text = "AT^FWUP", SETTER, .on_timeout = HF_TMO_NEVER,
        .timeout_notice = "AT^FWUP got no answer; it is never resent: waiting for the reset",
        .ok = HF_OK_TO_REBOOT, .refusal = HF_REF_FINAL, .err_code = "EUPGRADE",
        .err_msg = "the module refused AT^FWUP (%s); it is not retried"},
    [HF_CMD_CFG_READ] = {.name = "fotacfg_read", QUERY("AT^FOTACFG?", "^FOTACFG:"),
        .timeout = 10, .parse = parse_cfg, .needs = HF_ANS_CFG, .unreadable_code = "EPROTO",
        .unreadable_msg = "AT^FOTACFG? gave no readable ^FOTACFG line",
        .err_code = "EMODULE", .err_msg = "the module refused AT^FOTACFG? (%s)"},
    [HF_CMD_ECHO_OFF] = {.name = "echo_off", QUERY("ATE0", NULL), .setup = 1},
    /* verbose errors: the machine recognises "collision", "SIM PIN", "not complete" */
    [HF_CMD_CMEE] = {.name = "cmee", QUERY("AT+CMEE=2", NULL), .setup = 1},
    /* nothing that changes a state: what a port of unknown kind may be sent */
    [HF_CMD_PROBE] = {.name = "probe", QUERY("AT", NULL)},
};

const hf_fota_cmd_def *hf_fota_cmd_get(hf_fota_cmd c)
{
    return &rows[(unsigned)c < HF_CMD_COUNT ? c : HF_CMD_NONE];
}

hf_fota_cmd hf_fota_cmd_by_name(const char *name, size_t len)
{
    for (int i = 1; i < HF_CMD_COUNT; i++)
        if (strlen(rows[i].name) == len && memcmp(rows[i].name, name, len) == 0)
            return (hf_fota_cmd)i;
    return HF_CMD_NONE;
}

int hf_fota_cmd_text(hf_fota_cmd c, const hf_fota_cmd_params *p, char *dst, size_t cap,
                     hf_error *err)
{
    const hf_fota_cmd_def *r = hf_fota_cmd_get(c);
    if (r->build) {
        hf_fota_cmd_params none;
        memset(&none, 0, sizeof none);
        return r->build(p ? p : &none, dst, cap, err);
    }
    if (hf_strlcpy(dst, cap, r->text) < 0)
        return hf_error_set(err, "EINVAL", "%s does not fit %zu bytes", r->text, cap);
    return 0;
}

int hf_fota_cmd_parse(hf_fota_cmd c, const char *const *lines, const size_t *lens, size_t n,
                      hf_fota_answer *a, hf_error *err)
{
    const hf_fota_cmd_def *r = hf_fota_cmd_get(c);
    memset(a, 0, sizeof *a);
    a->reg_stat = -1;
    if (!lines || !lens)
        n = 0;
    if (r->parse)
        r->parse(lines, lens, n, a);
    if ((a->has & r->needs) != r->needs)
        return hf_error_set(err, r->unreadable_code ? r->unreadable_code : "EPROTO", "%s",
                            r->unreadable_msg ? r->unreadable_msg : "unreadable answer");
    return 0;
}

const char *hf_fota_tmo_name(hf_fota_tmo t)
{
    switch (t) {
    case HF_TMO_RESEND: return "resend";
    case HF_TMO_ASK_STATE: return "ask_state";
    case HF_TMO_NEVER: return "never";
    }
    return "?";
}

int hf_fota_cmd_check_table(hf_error *err)
{
    for (int i = 1; i < HF_CMD_COUNT; i++) {
        const hf_fota_cmd_def *r = &rows[i];
        if (!r->name || !r->name[0] || !r->text || !r->text[0])
            return hf_error_set(err, "EINVAL", "command row %d has no name or text", i);
        if (r->on_timeout == HF_TMO_RESEND && !r->idempotent)
            return hf_error_set(err, "EINVAL", "%s is not idempotent but is resent after a "
                                "timeout", r->text);
        if (r->on_timeout != HF_TMO_RESEND && r->on_timeout != HF_TMO_ASK_STATE &&
            r->on_timeout != HF_TMO_NEVER)
            return hf_error_set(err, "EINVAL", "%s has no timeout policy", r->text);
        if (r->idempotent && r->on_timeout != HF_TMO_RESEND)
            return hf_error_set(err, "EINVAL", "%s is idempotent: a timeout resends it", r->text);
        if (r->needs && !r->parse)
            return hf_error_set(err, "EINVAL", "%s needs an answer but has no parser", r->text);
        if (r->expect == HF_FOTA_EXPECT_PREFIX && !r->prefix)
            return hf_error_set(err, "EINVAL", "%s expects a prefix but names none", r->text);
    }
    return 0;
}
