/*
 * sim_main.c — hwfota-sim: options, scenario files, ptys, the JSON-lines log and
 * the single-threaded poll() loop hosting every simulated module.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"

static sim_config cfg;
static sim_module *mods;
static FILE *log_fp;
static double t_start;
static unsigned long long rng_state = 88172645463325252ULL;
static volatile sig_atomic_t stop_sig;

/* ---------------------------------------------------------------- time, rng */

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double sim_now(void) { return mono() - t_start; }

unsigned long sim_rand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned long)(rng_state >> 11);
}

double sim_rand01(void) { return (double)(sim_rand() % 1000000UL) / 1000000.0; }

/* ------------------------------------------------- a host that died holding the port
 * On a real USB port a host's TIOCEXCL ends with its last close (the tty is freed).
 * Here our own slave fd keeps the pty alive, so the exclusive flag of a host killed
 * without closing (SIGKILL) would stay set and make the port "busy" for ever. When
 * the flag is set but nobody holds a flock on the slave (hwfota takes flock before
 * TIOCEXCL and keeps it while the port is open), the owner is gone: clear the flag.
 * Checked when the slave is closed (inotify, below), not on a timer. Only with
 * --release-dead-host on: by default the flag stays, as on any pty whose other
 * side stays open, and the host has to recognise a stale flag itself. */

static void release_dead_exclusive(sim_module *m)
{
#ifdef TIOCGEXCL
    int excl = 0;
    if (!cfg.release_dead_host) return;   /* default: the host must cope (a bare pty) */
    if (m->sfd < 0 || ioctl(m->sfd, TIOCGEXCL, &excl) != 0 || !excl) return;
    if (flock(m->sfd, LOCK_EX | LOCK_NB) != 0) return;   /* a live host holds it */
    ioctl(m->sfd, TIOCNXCL);
    flock(m->sfd, LOCK_UN);
    sim_log(m->idx, "\"ev\":\"host\",\"what\":\"released\"");
#else
    (void)m;
#endif
}

/* ---------------------------------------------------------------- log */

void sim_json_str(char *dst, size_t cap, const char *s)
{
    size_t o = 0;
    if (cap < 8) { if (cap) dst[0] = '\0'; return; }
    dst[o++] = '"';
    for (; *s && o + 8 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { dst[o++] = '\\'; dst[o++] = (char)c; }
        else if (c == '\r') { dst[o++] = '\\'; dst[o++] = 'r'; }
        else if (c == '\n') { dst[o++] = '\\'; dst[o++] = 'n'; }
        else if (c < 0x20 || c >= 0x7f) o += (size_t)snprintf(dst + o, cap - o, "\\u%04x", c);
        else dst[o++] = (char)c;
    }
    dst[o++] = '"';
    dst[o] = '\0';
}

/* One JSON object per line: {"t":<real s>,"m":<module>,<fmt...>} */
void sim_log(int m, const char *fmt, ...)
{
    if (!log_fp) return;
    va_list ap;
    fprintf(log_fp, "{\"t\":%.4f,\"m\":%d,", sim_now(), m);
    va_start(ap, fmt);
    vfprintf(log_fp, fmt, ap);
    va_end(ap);
    fputs("}\n", log_fp);
    fflush(log_fp);
}

/* ---------------------------------------------------------------- ptys */

/* Closes of a module's slave (a host closed it, or died) are watched with
 * inotify; each one runs release_dead_exclusive() for that module. Opens too:
 * with --closed-port drop a host's open is looked for at once (as a USB port
 * carries the host's first command at once), not at the next 20 ms check. */
static int close_watch = -1;

static void watch_closes(sim_module *m, const char *pts)
{
    m->close_wd = -1;
    if (close_watch < 0)
        close_watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (close_watch >= 0)
        m->close_wd = inotify_add_watch(close_watch, pts,
                                         IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_OPEN);
}

static void unwatch_closes(sim_module *m)
{
    if (close_watch >= 0 && m->close_wd >= 0)
        inotify_rm_watch(close_watch, m->close_wd);
    m->close_wd = -1;
}

/* Read the close and open events; a host closed module k's slave: free its
 * TIOCEXCL; a host opened it (drop): look for the host now. */
static void handle_closes(sim_module *mods, int n)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t got;
    while ((got = read(close_watch, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + got;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            for (int i = 0; i < n; i++) {
                if (mods[i].close_wd != ev->wd) continue;
                if (ev->mask & IN_OPEN) {
                    if (cfg.drop_closed && !mods[i].host && mods[i].host_check_at > 0)
                        mods[i].host_check_at = sim_now();
                    continue;
                }
                /* --closed-port drop logs its own "closed" (the master's EIO) */
                if (!cfg.drop_closed) sim_log(mods[i].idx, "\"ev\":\"host\",\"what\":\"closed\"");
                release_dead_exclusive(&mods[i]);
            }
            p += sizeof *ev + ev->len;
        }
    }
}

/* ---------------------------------------------------------------- other ttys
 * --ttys: besides its AT port (PCUI, the module proper), a module exposes other
 * USB interfaces as ttys: "modem" (PPP data port; answers basic AT commands,
 * ERROR to anything else), "diag" (Huawei's binary diagnostics: never answers),
 * "gps" (NMEA: a sentence every model second, input ignored). Each tty is
 * published as DIR/<prefix><n> with a sidecar DIR/<prefix><n>.usb telling its
 * USB interface (number = position in --ttys, class triple per role), written
 * before the link, removed with it, so a test harness can present it as a USB
 * tty. They go down and come back with the module (reset, port loss). */

typedef struct {
    int role, iface;
    char path[PATH_MAX + 128];
    int mfd, sfd;
    int echo;
    char in[256];
    size_t inlen;
    double nmea_at;
} sim_aux;

static sim_aux *auxs;         /* modules x tty_stride; the PCUI's slot is unused */
static int tty_stride = 1;    /* the larger of the two layouts */
static int *generation;       /* --reenumerate: how many times each module came back */
static int *layout;           /* 1: the module runs the --ttys-after layout (upgraded) */

static int lay_n(const sim_module *m) { return layout[m->idx] ? cfg.n_ttys_after : cfg.n_ttys; }
static int lay_pcui(const sim_module *m) { return layout[m->idx] ? cfg.pcui_after : cfg.pcui_index; }
static int lay_role(const sim_module *m, int j)
{
    return layout[m->idx] ? cfg.tty_role_after[j] : cfg.tty_role[j];
}

/* several ttys, other names or another layout: sidecars tell the harness */
static int describe_ttys(void) { return tty_stride > 1 || cfg.reenumerate || cfg.n_ttys_after; }
static const char *const role_names[] = {"pcui", "modem", "diag", "gps"};
static const char *const role_triples[] = {"ff 01 02", "ff 01 01", "ff 01 03", "ff 01 05"};

static sim_aux *aux_of(const sim_module *m, int j) { return &auxs[m->idx * tty_stride + j]; }

/* DIR/<prefix><n>: n counts up per tty and module; after each return with
 * --reenumerate the module takes the next block of numbers. */
static void tty_path(const sim_module *m, int j, char *out, size_t cap)
{
    long n = cfg.name_start + ((long)generation[m->idx] * cfg.modules + m->idx) * tty_stride + j;
    snprintf(out, cap, "%s/%s%ld", cfg.dir, cfg.name_prefix, n);
}

static void write_sidecar(const char *path, int j, int role)
{
    char p[PATH_MAX + 160];
    snprintf(p, sizeof p, "%s.usb", path);
    FILE *f = fopen(p, "w");
    if (!f) return;
    char c[3], sc[3], pr[3];
    sscanf(role_triples[role], "%2s %2s %2s", c, sc, pr);
    fprintf(f, "interface=%02x class=%s subclass=%s protocol=%s role=%s\n", j, c, sc, pr,
            role_names[role]);
    fclose(f);
}

static void remove_sidecar(const char *path)
{
    char p[PATH_MAX + 160];
    snprintf(p, sizeof p, "%s.usb", path);
    unlink(p);
}

/* openpty, raw, master non-blocking; slave name in name. */
static int new_pty(int *mfd, int *sfd, char *name)
{
    if (openpty(mfd, sfd, name, NULL, NULL) < 0) {
        fprintf(stderr, "hwfota-sim: openpty: %s\n", strerror(errno));
        return -1;
    }
    struct termios tio;
    if (tcgetattr(*sfd, &tio) == 0) {
        cfmakeraw(&tio);
        cfsetispeed(&tio, B115200);
        cfsetospeed(&tio, B115200);
        tcsetattr(*sfd, TCSANOW, &tio);
    }
    fcntl(*mfd, F_SETFL, fcntl(*mfd, F_GETFL) | O_NONBLOCK);
    fcntl(*mfd, F_SETFD, FD_CLOEXEC);
    fcntl(*sfd, F_SETFD, FD_CLOEXEC);
    return 0;
}

/* Link DIR/... to the pty atomically (a temporary link renamed over it). */
static int link_pty(const char *name, const char *path)
{
    char tmp[PATH_MAX + 192];
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    unlink(tmp);
    if (symlink(name, tmp) < 0 || rename(tmp, path) < 0) {
        fprintf(stderr, "hwfota-sim: publish %s: %s\n", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void aux_down(sim_module *m)
{
    for (int j = 0; j < tty_stride; j++) {
        sim_aux *a = aux_of(m, j);
        if (a->mfd < 0) continue;
        unlink(a->path);
        remove_sidecar(a->path);
        close(a->sfd);
        close(a->mfd);
        a->mfd = a->sfd = -1;
        char jp[2 * PATH_MAX + 300];
        sim_json_str(jp, sizeof jp, a->path);
        sim_log(m->idx, "\"ev\":\"aux\",\"what\":\"down\",\"role\":\"%s\",\"path\":%s",
                role_names[a->role], jp);
    }
}

static int aux_up(sim_module *m)
{
    for (int j = 0; j < lay_n(m); j++) {
        if (j == lay_pcui(m)) continue;
        sim_aux *a = aux_of(m, j);
        char name[64];
        a->role = lay_role(m, j);
        a->iface = j;
        tty_path(m, j, a->path, sizeof a->path);
        if (new_pty(&a->mfd, &a->sfd, name) < 0) return -1;
        write_sidecar(a->path, j, a->role);
        if (link_pty(name, a->path) < 0) {
            close(a->mfd);
            close(a->sfd);
            a->mfd = a->sfd = -1;
            return -1;
        }
        a->echo = 1;
        a->inlen = 0;
        a->nmea_at = sim_now() + cfg.time_scale;
        char jp[2 * PATH_MAX + 300], jt[96];
        sim_json_str(jp, sizeof jp, a->path);
        sim_json_str(jt, sizeof jt, name);
        sim_log(m->idx, "\"ev\":\"aux\",\"what\":\"up\",\"role\":\"%s\",\"path\":%s,\"pty\":%s",
                role_names[a->role], jp, jt);
    }
    return 0;
}

static void aux_write(sim_aux *a, const char *text)
{
    size_t n = strlen(text);
    if (write(a->mfd, text, n) < 0) { /* nobody reads: dropped, as on a USB port */ }
}

/* The modem (PPP) port: answers the basic commands a dialler sends, nothing of FOTA. */
static void aux_modem_line(sim_module *m, sim_aux *a, const char *line)
{
    char up[32];
    size_t n = strlen(line);
    if (n >= sizeof up) n = sizeof up - 1;
    for (size_t i = 0; i < n; i++)
        up[i] = (char)((line[i] >= 'a' && line[i] <= 'z') ? line[i] - 32 : line[i]);
    up[n] = '\0';
    if (a->echo) { aux_write(a, line); aux_write(a, "\r"); }
    int ok = !strcmp(up, "AT") || !strcmp(up, "ATZ") || !strcmp(up, "AT&F") ||
             !strcmp(up, "ATE0") || !strcmp(up, "ATE1") || !strcmp(up, "ATE") ||
             !strcmp(up, "ATV1") || !strncmp(up, "AT+CMEE=", 8);
    if (!strcmp(up, "ATE0") || !strcmp(up, "ATE")) a->echo = 0;
    if (!strcmp(up, "ATE1")) a->echo = 1;
    aux_write(a, ok ? "\r\nOK\r\n" : "\r\nERROR\r\n");
    (void)m;
}

static void aux_input(sim_module *m, sim_aux *a)
{
    char buf[512];
    ssize_t got = read(a->mfd, buf, sizeof buf);
    for (ssize_t i = 0; i < got; i++) {
        char c = buf[i];
        if (c != '\r' && c != '\n') {
            if (a->inlen + 1 < sizeof a->in) a->in[a->inlen++] = c;
            continue;
        }
        if (a->inlen == 0) continue;
        a->in[a->inlen] = '\0';
        a->inlen = 0;
        char jl[600];
        sim_json_str(jl, sizeof jl, a->in);
        sim_log(m->idx, "\"ev\":\"aux\",\"what\":\"rx\",\"role\":\"%s\",\"line\":%s",
                role_names[a->role], jl);
        if (a->role == SIM_ROLE_MODEM) aux_modem_line(m, a, a->in);
        /* diag: binary protocol, no answer to text; gps: input ignored */
    }
}

/* GPS: one NMEA sentence (no fix) every model second while the port is up. */
static void aux_tick(sim_module *m, double now, double *next)
{
    for (int j = 0; j < tty_stride; j++) {
        sim_aux *a = aux_of(m, j);
        if (a->mfd < 0 || a->role != SIM_ROLE_GPS) continue;
        if (now >= a->nmea_at) {
            static const char body[] = "GPGGA,000000.00,,,,,0,00,99.99,,,,,,";
            unsigned cs = 0;
            for (const char *p = body; *p; p++) cs ^= (unsigned char)*p;
            char line[96];
            snprintf(line, sizeof line, "$%s*%02X\r\n", body, cs & 0xff);
            aux_write(a, line);
            a->nmea_at = now + cfg.time_scale;
        }
        if (*next == 0 || a->nmea_at < *next) *next = a->nmea_at;
    }
}

int sim_publish(sim_module *m)
{
    int mfd, sfd;
    char name[64];
    if (new_pty(&mfd, &sfd, name) < 0)
        return -1;
    /* a new firmware may bring another USB composition (--ttys-after) */
    if (cfg.n_ttys_after && m->boot_kind == BOOT_UPGRADE && m->f.upgrade_fail <= 0)
        layout[m->idx] = 1;
    if (cfg.name_start >= 0)
        tty_path(m, lay_pcui(m), m->path, sizeof m->path);
    /* the other ttys first: once the AT port's link is there, all are */
    if (aux_up(m) < 0) {
        aux_down(m);
        close(mfd);
        close(sfd);
        return -1;
    }
    if (describe_ttys())
        write_sidecar(m->path, lay_pcui(m), SIM_ROLE_PCUI);
    /* Publish atomically: a temporary link renamed over the stable path. */
    if (link_pty(name, m->path) < 0) {
        aux_down(m);
        close(mfd);
        close(sfd);
        return -1;
    }
    m->mfd = mfd;
    m->sfd = sfd; /* kept open: the master never sees EIO while no host holds the port */
    watch_closes(m, name);
    m->host = 0;
    m->host_check_at = 0;
    if (cfg.drop_closed) {
        /* like a USB port: what is sent while nobody holds it is lost */
        close(sfd);
        m->sfd = -1;
        m->host_check_at = sim_now() + 0.02;
    }
    snprintf(m->pts, sizeof m->pts, "%s", name);
    m->outlen = 0;
    char jp[2 * PATH_MAX + 300], jt[96];
    sim_json_str(jp, sizeof jp, m->path);
    sim_json_str(jt, sizeof jt, name);
    sim_log(m->idx, "\"ev\":\"port\",\"what\":\"up\",\"path\":%s,\"pty\":%s", jp, jt);
    return 0;
}

void sim_unpublish(sim_module *m, int remove_link)
{
    if (remove_link) unlink(m->path);
    if (remove_link && describe_ttys()) remove_sidecar(m->path);
    aux_down(m);
    /* a USB device that went away comes back under the next free tty numbers */
    if (cfg.reenumerate && m->mfd >= 0) generation[m->idx]++;
    unwatch_closes(m);
    if (m->sfd >= 0) close(m->sfd);
    if (m->mfd >= 0) close(m->mfd); /* the host's slave fd now sees hang-up / EIO */
    if (m->mfd >= 0) sim_log(m->idx, "\"ev\":\"port\",\"what\":\"down\"");
    m->mfd = m->sfd = -1;
    m->outlen = 0;
    m->inlen = 0;
}

/* ---------------------------------------------------------------- options */

int sim_parse_trigger(const char *s, sim_trigger *t)
{
    memset(t, 0, sizeof *t);
    const char *eq = strchr(s, '=');
    if (!eq) return -1;
    size_t k = (size_t)(eq - s);
    const char *v = eq + 1;
    char *end;
    if (k == 4 && strncasecmp(s, "byte", 4) == 0) t->kind = TRIG_BYTE;
    else if (k == 5 && strncasecmp(s, "state", 5) == 0) t->kind = TRIG_STATE;
    else if (k == 4 && strncasecmp(s, "time", 4) == 0) t->kind = TRIG_TIME;
    else if (k == 3 && strncasecmp(s, "cmd", 3) == 0) {
        t->kind = TRIG_CMD;
        if (strncasecmp(v, "AT", 2) == 0) v += 2;
        if (*v == '^' || *v == '+') v++;
        if (!*v || strlen(v) >= sizeof t->cmd) return -1;
        for (size_t i = 0; v[i]; i++)
            t->cmd[i] = (char)((v[i] >= 'a' && v[i] <= 'z') ? v[i] - 32 : v[i]);
        return 0;
    } else return -1;
    t->val = strtod(v, &end);
    if (end == v || *end) return -1;
    return 0;
}

static int parse_num(const char *v, double lo, double hi, double *out)
{
    char *end;
    if (!v || !*v) return -1;
    double d = strtod(v, &end);
    if (*end || d < lo || d > hi || d != d) return -1;
    *out = d;
    return 0;
}

static int parse_flag(const char *v)
{
    if (!v || !*v || !strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes")) return 1;
    if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no")) return 0;
    return -1;
}

static void usage(FILE *o)
{
    fputs(
"usage: hwfota-sim [OPTION...]\n"
"Simulated Huawei MU509/MU609 module(s) speaking the FOTA AT commands on ptys.\n"
"Each module's pty slave is published as a symlink DIR/NAME (ttyUSB2, ttyUSB3, ...);\n"
"once all are up, one line \"ready <path>...\" is printed on stdout. SIGTERM/SIGINT\n"
"remove the links and exit 0. Times are model seconds, multiplied by --time-scale.\n"
"\n"
"General:\n"
"  --modules N            number of modules (1..1024, default 1)\n"
"  --dir DIR              where the links go (default /tmp/hwfota-sim)\n"
"  --name NAME            first link name; a trailing number counts up (default ttyUSB2)\n"
"  --log FILE             JSON-lines log of every line received/sent and every event\n"
"  --scenario FILE        read key=value lines (keys = long options without --; '#' comments;\n"
"                         flags take 1/0); later options override earlier ones. Fault keys\n"
"                         after a line [module N] or [modules N,M,...] apply to those modules\n"
"                         only (starting from the global faults so far); [all] ends that\n"
"  --time-scale X         multiply every model duration (default 1.0; tests use 0.03)\n"
"  --seed N               seed for noise and garbage (default 1)\n"
"  --help                 this text\n"
"Identity:\n"
"  --model NAME           Model: line of ATI (default MU509-b)\n"
"  --manufacturer NAME    (default \"Huawei Technologies Co., Ltd.\")\n"
"  --version-from V       running firmware (default 12.815.03.01.00: the MU509-b minimum)\n"
"  --version-to V         version offered by the server (default 12.815.03.02.00)\n"
"  --description TEXT     the 12 URC's description (default \"Support send SMS background\")\n"
"  --imei-base N          14 digits; module i gets N+i plus a Luhn digit (default 86753090000000)\n"
"  --pin PIN              PIN that AT+CPIN=\"PIN\" accepts with --sim-pin (default 1234)\n"
"  --unknown error|cns    unknown commands answer ERROR or COMMAND NOT SUPPORT (default cns)\n"
"  --unsupported LIST     commands this firmware lacks, answered like unknown ones: a comma\n"
"                         list of names (+CPIN: every form) or forms (+CMEE?, ^FOTADL=?,\n"
"                         +CREG=); e.g. --unsupported '+CMEE?,+CSCS?,+CPIN?'\n"
"  --cmee N               AT+CMEE value after boot, 0..2 (default 2)\n"
"  --release-dead-host on|off  a host killed without closing the port leaves TIOCEXCL set on\n"
"                         the pty: off (default) keeps it, as a pty does (a real USB tty is\n"
"                         freed at its last close); on clears it when no flock is held\n"
"                         (logged {\"ev\":\"host\",\"what\":\"released\"})\n"
"  --ttys LIST            the module's ttys in USB interface order (interface N = Nth), one of\n"
"                         them pcui, e.g. modem,diag,pcui,gps (default pcui: one tty). pcui (class\n"
"                         ff/01/02) runs the module; modem (ff/01/01, the PPP data port) answers\n"
"                         AT, ATZ, ATE, ATV1, AT&F, AT+CMEE= with OK and anything else ERROR;\n"
"                         diag (ff/01/03) never answers; gps (ff/01/05, MU609's NMEA port) sends\n"
"                         $GPGGA every model second, ignores input. Each is DIR/<prefix><n>,\n"
"                         n counting up per tty and module, with DIR/<prefix><n>.usb telling\n"
"                         \"interface=NN class=ff subclass=SS protocol=PP role=R\" (for a test\n"
"                         harness that presents them as USB ttys). \"ready\" names the pcui ttys\n"
"  --reenumerate same|next  after a reset or port loss the ttys come back under the same names\n"
"                         (default) or, as a USB device re-enumerated while the host still held\n"
"                         its old ttys, under the next free numbers (modules x ttys further on:\n"
"                         ttyUSB2 -> ttyUSB6 with 4 ttys); the .usb sidecars are written too\n"
"  --ttys-after LIST      the ttys after a successful upgrade, as --ttys: a new firmware's USB\n"
"                         composition (inferred: Huawei firmware can change its port layout),\n"
"                         e.g. modem,pcui,diag,gps: the AT port is interface 1 and the old\n"
"                         AT port's name another tty. Default: as before the upgrade\n"
"  --closed-port drop|keep  lines sent while no host holds the port: lost as on a real USB\n"
"                         port (default: URCs missed while closed; poll ^FOTASTATE?), or kept\n"
"                         in the pty buffer and read on the next open (a pty's behaviour)\n"
"  --end-state keep|keep-all|idle  end-of-operation states: keep (default): 90 and failure\n"
"                         states (>= 60) persist, across resets, until AT^FOTADL=0, and\n"
"                         AT^FOTADET in them answers +CME ERROR: FOTA is in collision state;\n"
"                         keep-all: 13, 14 and 20 persist the same way (else they return to\n"
"                         10 at once); idle: 90/failure states persist but count as idle for\n"
"                         AT^FOTADET (the behaviour before this option)\n"
"  --discard-delay S      AT^FOTADL=0 answers OK at once, the state becomes 10 S model\n"
"                         seconds later (default 2; 0: at once); meanwhile the old state is\n"
"                         reported and a download stops\n"
"  --discard-urc on|off   ^FOTASTATE: 10 URC when a discard took (default off: the host must\n"
"                         query AT^FOTASTATE? to see it)\n"
"  --resume-needs-mode on|off  after a boot, a download pending in 31 continues the remained\n"
"                         data only if AT^FOTAMODE with resume=1 came since that boot (guide\n"
"                         2.3.3); otherwise AT^FOTADL=1 downloads from zero (on, default), or\n"
"                         it resumes anyway (off)\n"
"Timeline (model seconds):\n"
"  --image-size B         size of file 1 \"IMAGE\" (default 1324)\n"
"  --xnv-size B           size of file 2 \"XNV\" (default 77790; delta = sum = 79114)\n"
"  --rate B               download rate, bytes/s (default 8000)\n"
"  --detect-time S        ^FOTADET: 11 -> result (default 3)\n"
"  --verify-time S        last byte -> 40 (MD5 check) (default 1)\n"
"  --upgrade-delay S      40 -> 50 with automatic upgrade (default 1)\n"
"  --reset-delay S        50 -> reset (default 2)\n"
"  --reset-gap S          pty absent during a reset (default 5)\n"
"  --boot-time S          boot URCs -> ^FOTASTATE: 90/80/31/10 (default 2)\n""  --day S                model seconds per day of AT^FOTAMODE's query period (default 86400).\n"
"                         Auto query: at once when turned on in idle, after each boot, and\n"
"                         <period> days after each query that leaves the module idle\n"
"Noise:\n"
"  --noise R              ^RSSI/^MODE/^DSFLOWRPT/^SRVST/^HCSQ per real second per module,\n"
"                         between lines and inside multi-line responses (default 0).\n"
"                         ^RSSI and ^DSFLOWRPT end in CR CR LF. AT^CURC=0 silences them.\n"
"Faults (each alone or together; TRIGGER is byte=N, state=S, cmd=NAME (e.g. cmd=FOTADL or\n"
"cmd=FOTADL=1) or time=T (model seconds after start); each trigger fires once):\n"
"  --fault-modules LIST   comma-separated module indexes the faults apply to (default all)\n"
"  --no-new-version       detection ends in ^FOTASTATE: 14\n"
"  --detect-fail CODE     detection ends in ^FOTASTATE: 13,CODE\n"
"  --download-fail CODE   the download ends in ^FOTASTATE: 20,CODE (file deleted, idle) ...\n"
"  --download-fail-at B   ... when byte B is reached (default: half the delta)\n"
"  --power-loss TRIGGER   module loses power: pty gone for --reset-gap, boots again; a partial\n"
"                         download resumes to 31 if resume mode is on (else 10); a complete\n"
"                         one (40/50) is applied at boot (50, reset, 90)\n"
"  --upgrade-fail STATE   after the upgrade reset report STATE (e.g. 80), keep the old version\n"
"  --port-gone TRIGGER    the pty disappears (module keeps running; URCs lost) ...\n"
"  --port-gone-for S      ... for S model seconds, or for good when S < 0 (default 5)\n"
"  --port-swap TRIGGER    the pty goes away (as in a reset) and after --reset-gap the SAME path\n"
"                         comes back as a different module: another IMEI (--imei-base + 500000\n"
"                         + index), firmware --version-from, FOTA state --swap-state, default\n"
"                         FOTA settings; what the first module was doing is abandoned. Logged\n"
"                         {\"ev\":\"fault\",\"fault\":\"port-swap\",...}; every line it receives is\n"
"                         logged with \"swapped\":true. Paths get reused after re-enumeration\n"
"  --swap-state S         the FOTA state the other module is in (default 40: an image ready\n"
"                         to apply, the dangerous case; it is not applied at this boot)\n"
"  --hang TRIGGER         no answer: commands wait (echo continues) ...\n"
"  --hang-for S           ... for S model seconds; a cmd= trigger's own reply comes late\n"
"                         (default 10)\n""  --hang-reject          commands sent during a hang answer at once\n"
"                         +CME ERROR: Previous command is not complete (default: they wait)\n"
"  --garbage N            a burst of 8 garbage bytes before every Nth line sent\n"
"  --drop N               one byte missing from every Nth line sent\n"
"  --dup-state            every ^FOTASTATE URC sent twice\n"
"  --bad-state S          the URC for state S sent malformed (first half of the line only)\n"
"  --lose-state S         the URC for state S not sent (state still changes)\n"
"  --data-session         a data session is up: ^FOTADET and ^FOTADL=1 answer\n"
"                         +CME ERROR: FOTA is in collision state, until the host ends it with\n"
"                         AT^NDISDUP=1,0 or AT+CGACT=0,1 (AT^NDISDUP=1,1 / AT+CGACT=1,1 start one)\n"
"  --sim-pin              SIM PIN required: +CPIN: SIM PIN; FOTA commands answer\n"
"                         +CME ERROR: SIM PIN required until AT+CPIN=\"PIN\"\n"
"  --not-registered       +CREG: 0,0 / +CGREG: 0,0; detection ends in 13,11, download in 20,11\n"
"  --long-line cmd=NAME:N  when command NAME arrives, N printable noise bytes without a line\n"
"                         end (1..60000) go out before its answer (an over-long line, a flood)\n"
"  --urc TRIGGER:LINE     send LINE (printable ASCII) as a URC, e.g. a malformed\n"
"                         --urc 'time=1:+CMTI: \"SM\",1;AT^FWUP' (repeatable)\n"
"SMS (text mode, 3GPP 27.005; SIM storage \"SM\" survives resets, indexes from 0):\n"
"  --sms TRIGGER:FROM:TEXT  an SMS from FROM (up to 20 characters, no '\"') with TEXT\n"
"                         (up to 160 printable ASCII characters) arrives; repeatable (8 in all\n"
"                         with --urc), also per module. Stored in the first free slot, then\n"
"                         +CMTI: \"SM\",<index> if AT+CNMI's mode is 1|2 and mt 1|3 (CNMI is\n"
"                         0,0,0,0,0 after boot: no indication); mt 2: +CMT, not stored.\n"
"                         Full storage: not stored (logged). While the module resets, it\n"
"                         arrives after the reboot. e.g. --sms 'time=1:+8613800000000:FOTA UPGRADE'\n"
"  --sms-slots N          SIM storage size, 1..255 (default 20)\n"
"  Commands: AT+CMGF=0|1 (0 after boot; reads need 1: PDU mode answers +CMS ERROR: 303),\n"
"  AT+CPMS? / AT+CPMS=\"SM\"[,\"SM\"[,\"SM\"]] (other memories: 302), AT+CNMI=<mode>,<mt>[,...],\n"
"  AT+CMGR=<i> (REC UNREAD becomes REC READ), AT+CMGL[=\"REC UNREAD\"|\"REC READ\"|\"ALL\"|...],\n"
"  AT+CMGD=<i>[,<delflag 0-4>]. +CMS ERROR: <n> is numeric whatever AT+CMEE says: 321 invalid\n"
"  index (empty or out of range), 304/305 invalid PDU/text mode parameter, 311 SIM PIN.\n"
"\n"
"CME errors follow AT+CMEE: 0 ERROR, 1 +CME ERROR: <n>, 2 +CME ERROR: <text>. Numbers:\n"
"SIM PIN required 11, Operation not supported 4, FOTA is in collision state 54 and\n"
"Previous command is not complete 2 (both inferred),\n"
"incorrect parameters 50.\n"
"\n"
"Log (--log): one JSON object per line, t = real seconds since start, m = module index:\n"
"  {\"t\":0.1,\"m\":0,\"dir\":\"rx\",\"line\":\"AT^FWUP\"}             command received\n"
"  {\"t\":0.1,\"m\":0,\"dir\":\"tx\",\"kind\":\"final\",\"line\":\"OK\"}   kind: info|final|urc|noise|boot\n"
"  {\"t\":0.2,\"m\":0,\"ev\":\"state\",\"state\":30}                   FOTA state change\n"
"  {\"t\":0.3,\"m\":0,\"ev\":\"reset\",\"reason\":\"upgrade\"}           reason: upgrade|power-loss\n"
"  {\"t\":0.4,\"m\":0,\"ev\":\"port\",\"what\":\"up\",\"path\":..,\"pty\":..}  what: up|down\n"
"  {\"t\":0.5,\"m\":0,\"ev\":\"boot\",\"version\":\"...\"}\n"
"  {\"t\":0.6,\"m\":0,\"ev\":\"fault\",\"fault\":\"<option name>\",...}\n"
"  {\"t\":0.7,\"m\":0,\"ev\":\"lost\",\"line\":\"...\"}                 line sent while the port was gone\n"
"  {\"t\":0.8,\"m\":0,\"ev\":\"sms\",\"what\":\"delivered\",\"index\":0,\"from\":..,\"text\":..,\"cmti\":true}\n"
"                                     what: delivered|rejected (reason full|sim-locked)|read|deleted|cnmi\n",
        o);
}

static int apply_option(const char *k, const char *v);
static sim_faults *cur_faults; /* inside a scenario [module N] section */

static int is_fault_key(const char *k)
{
    static const char *keys[] = {"no-new-version", "detect-fail", "download-fail", "download-fail-at",
        "power-loss", "upgrade-fail", "port-gone", "port-gone-for", "port-swap", "swap-state", "hang", "hang-for", "hang-reject",
        "garbage", "drop", "dup-state", "bad-state", "lose-state", "data-session", "sim-pin",
        "not-registered", "sms", "urc", "long-line", NULL};
    for (int i = 0; keys[i]; i++)
        if (!strcmp(k, keys[i])) return 1;
    return 0;
}

/* "[module 3]" or "[modules 1,4]": fault keys that follow apply to those modules only,
 * starting from the global faults set so far; "[all]" goes back to the global set. */
static int section(char *s, int *targets, int *nt)
{
    size_t n = strlen(s);
    if (n < 2 || s[n - 1] != ']') return -1;
    s[n - 1] = '\0';
    s++;
    *nt = 0;
    if (!strcmp(s, "all")) return 0;
    if (!strncmp(s, "modules ", 8)) s += 8;
    else if (!strncmp(s, "module ", 7)) s += 7;
    else return -1;
    while (*s) {
        char *end;
        long i = strtol(s, &end, 10);
        if (end == s || i < 0 || i >= SIM_MAX_MODULES || *nt >= SIM_MAX_MODULES) return -1;
        if (!cfg.module_faults[i]) {
            cfg.module_faults[i] = malloc(sizeof(sim_faults));
            if (!cfg.module_faults[i]) return -1;
            *cfg.module_faults[i] = cfg.faults;
        }
        targets[(*nt)++] = (int)i;
        s = end;
        while (*s == ',' || *s == ' ') s++;
    }
    return *nt ? 0 : -1;
}

static int load_scenario(const char *file)
{
    FILE *fp = fopen(file, "r");
    if (!fp) {
        fprintf(stderr, "hwfota-sim: %s: %s\n", file, strerror(errno));
        return -1;
    }
    char line[4096];
    int ln = 0, rc = 0;
    static int targets[SIM_MAX_MODULES];
    int nt = 0;
    while (fgets(line, sizeof line, fp)) {
        ln++;
        char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        size_t n = strlen(s);
        while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
            s[--n] = '\0';
        if (!*s || *s == '#') continue;
        if (*s == '[') {
            if (section(s, targets, &nt) < 0) {
                fprintf(stderr, "hwfota-sim: %s:%d: bad section (want [module N], [modules N,M] or [all])\n",
                        file, ln);
                rc = -1;
                break;
            }
            continue;
        }
        char *eq = strchr(s, '=');
        const char *val = NULL;
        if (eq) {
            char *ke = eq;
            while (ke > s && (ke[-1] == ' ' || ke[-1] == '\t')) ke--;
            *ke = '\0';
            val = eq + 1;
            while (*val == ' ' || *val == '\t') val++;
        }
        int bad = 0;
        if (nt == 0) bad = apply_option(s, val) < 0;
        else if (!is_fault_key(s)) bad = 1;
        else
            for (int t = 0; t < nt && !bad; t++) {
                cur_faults = cfg.module_faults[targets[t]];
                bad = apply_option(s, val) < 0;
                cur_faults = NULL;
            }
        if (bad) {
            fprintf(stderr, "hwfota-sim: %s:%d: bad setting \"%s\"\n", file, ln, s);
            rc = -1;
            break;
        }
    }
    fclose(fp);
    return rc;
}

static int set_str(char *dst, size_t cap, const char *v)
{
    if (!v || strlen(v) >= cap) return -1;
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

/* --ttys pcui,modem,diag,gps: roles in interface order, exactly one pcui. */
static int parse_ttys(const char *v, int *roles, int *count, int *pcui_out)
{
    if (!v || !*v || strlen(v) >= 128) return -1;
    char buf[128];
    memcpy(buf, v, strlen(v) + 1);
    int n = 0, pcui = -1;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int r = -1;
        for (int i = 0; i < 4; i++)
            if (!strcmp(t, role_names[i])) r = i;
        if (r < 0 || n >= SIM_MAX_TTYS) return -1;
        if (r == SIM_ROLE_PCUI) {
            if (pcui >= 0) return -1;
            pcui = n;
        }
        roles[n++] = r;
    }
    if (pcui < 0) return -1;
    *count = n;
    *pcui_out = pcui;
    return 0;
}

static int apply_option(const char *k, const char *v)
{
    double d;
    sim_faults *f = cur_faults ? cur_faults : &cfg.faults;
#define NUM(lo, hi) (parse_num(v, (lo), (hi), &d) < 0 ? -1 : 0)
    if (!strcmp(k, "modules")) { if (NUM(1, SIM_MAX_MODULES)) return -1; cfg.modules = (int)d; }
    else if (!strcmp(k, "dir")) return set_str(cfg.dir, sizeof cfg.dir, v);
    else if (!strcmp(k, "name")) {
        if (!v || !*v || strlen(v) >= sizeof cfg.name_prefix || strchr(v, '/')) return -1;
        size_t n = strlen(v), i = n;
        while (i > 0 && v[i - 1] >= '0' && v[i - 1] <= '9') i--;
        memcpy(cfg.name_prefix, v, i);
        cfg.name_prefix[i] = '\0';
        cfg.name_start = i < n ? atoi(v + i) : -1;
    }
    else if (!strcmp(k, "log")) return set_str(cfg.log_path, sizeof cfg.log_path, v);
    else if (!strcmp(k, "scenario")) return v ? load_scenario(v) : -1;
    else if (!strcmp(k, "time-scale")) { if (NUM(1e-6, 1e6)) return -1; cfg.time_scale = d; }
    else if (!strcmp(k, "seed")) { if (NUM(0, 4e9)) return -1; cfg.seed = (unsigned long)d; }
    else if (!strcmp(k, "model")) return set_str(cfg.model, sizeof cfg.model, v);
    else if (!strcmp(k, "manufacturer")) return set_str(cfg.manufacturer, sizeof cfg.manufacturer, v);
    else if (!strcmp(k, "version-from")) return set_str(cfg.version_from, sizeof cfg.version_from, v);
    else if (!strcmp(k, "version-to")) return set_str(cfg.version_to, sizeof cfg.version_to, v);
    else if (!strcmp(k, "description")) return set_str(cfg.description, sizeof cfg.description, v);
    else if (!strcmp(k, "imei-base")) {
        if (!v || strlen(v) != 14 || strspn(v, "0123456789") != 14) return -1;
        cfg.imei_base = strtoull(v, NULL, 10);
    }
    else if (!strcmp(k, "pin")) return set_str(cfg.pin, sizeof cfg.pin, v);
    else if (!strcmp(k, "unknown")) {
        if (v && !strcmp(v, "error")) cfg.unknown_error = 1;
        else if (v && !strcmp(v, "cns")) cfg.unknown_error = 0;
        else return -1;
    }
    else if (!strcmp(k, "unsupported")) {
        if (!v || strspn(v, "+^ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789?=,") != strlen(v))
            return -1;
        return set_str(cfg.unsupported, sizeof cfg.unsupported, v);
    }
    else if (!strcmp(k, "release-dead-host")) {
        if (v && !strcmp(v, "on")) cfg.release_dead_host = 1;
        else if (v && !strcmp(v, "off")) cfg.release_dead_host = 0;
        else return -1;
    }
    else if (!strcmp(k, "closed-port")) {
        if (v && !strcmp(v, "drop")) cfg.drop_closed = 1;
        else if (v && !strcmp(v, "keep")) cfg.drop_closed = 0;
        else return -1;
    }
    else if (!strcmp(k, "resume-needs-mode")) {
        if (v && !strcmp(v, "on")) cfg.resume_needs_mode = 1;
        else if (v && !strcmp(v, "off")) cfg.resume_needs_mode = 0;
        else return -1;
    }
    else if (!strcmp(k, "ttys")) return parse_ttys(v, cfg.tty_role, &cfg.n_ttys, &cfg.pcui_index);
    else if (!strcmp(k, "ttys-after"))
        return parse_ttys(v, cfg.tty_role_after, &cfg.n_ttys_after, &cfg.pcui_after);
    else if (!strcmp(k, "reenumerate")) {
        if (v && !strcmp(v, "next")) cfg.reenumerate = 1;
        else if (v && !strcmp(v, "same")) cfg.reenumerate = 0;
        else return -1;
    }
    else if (!strcmp(k, "cmee")) { if (NUM(0, 2)) return -1; cfg.cmee_default = (int)d; }
    else if (!strcmp(k, "end-state")) {
        if (v && !strcmp(v, "keep")) cfg.end_state = END_KEEP;
        else if (v && !strcmp(v, "keep-all")) cfg.end_state = END_KEEP_ALL;
        else if (v && !strcmp(v, "idle")) cfg.end_state = END_IDLE;
        else return -1;
    }
    else if (!strcmp(k, "discard-delay")) { if (NUM(0, 1e7)) return -1; cfg.discard_delay = d; }
    else if (!strcmp(k, "discard-urc")) {
        if (v && !strcmp(v, "on")) cfg.discard_urc = 1;
        else if (v && !strcmp(v, "off")) cfg.discard_urc = 0;
        else return -1;
    }
    else if (!strcmp(k, "image-size")) { if (NUM(1, 1e9)) return -1; cfg.image_size = (long)d; }
    else if (!strcmp(k, "xnv-size")) { if (NUM(1, 1e9)) return -1; cfg.xnv_size = (long)d; }
    else if (!strcmp(k, "rate")) { if (NUM(1e-3, 1e12)) return -1; cfg.rate = d; }
    else if (!strcmp(k, "detect-time")) { if (NUM(0, 1e7)) return -1; cfg.detect_time = d; }
    else if (!strcmp(k, "verify-time")) { if (NUM(0, 1e7)) return -1; cfg.verify_time = d; }
    else if (!strcmp(k, "upgrade-delay")) { if (NUM(0, 1e7)) return -1; cfg.upgrade_delay = d; }
    else if (!strcmp(k, "reset-delay")) { if (NUM(0, 1e7)) return -1; cfg.reset_delay = d; }
    else if (!strcmp(k, "reset-gap")) { if (NUM(0, 1e7)) return -1; cfg.reset_gap = d; }
    else if (!strcmp(k, "boot-time")) { if (NUM(0, 1e7)) return -1; cfg.boot_time = d; }
    else if (!strcmp(k, "day")) { if (NUM(1e-3, 1e9)) return -1; cfg.day = d; }
    else if (!strcmp(k, "noise")) { if (NUM(0, 1e4)) return -1; cfg.noise = d; }
    else if (!strcmp(k, "fault-modules")) {
        if (!v || !*v) return -1;
        memset(cfg.fault_mask, 0, sizeof cfg.fault_mask);
        const char *p = v;
        while (*p) {
            char *end;
            long i = strtol(p, &end, 10);
            if (end == p || i < 0 || i >= SIM_MAX_MODULES) return -1;
            cfg.fault_mask[i] = 1;
            p = end;
            if (*p == ',') p++;
            else if (*p) return -1;
        }
        cfg.fault_mask_set = 1;
    }
    else if (!strcmp(k, "no-new-version")) { int b = parse_flag(v); if (b < 0) return -1; f->no_new_version = b; }
    else if (!strcmp(k, "detect-fail")) { if (NUM(0, 9999)) return -1; f->detect_fail = (int)d; }
    else if (!strcmp(k, "download-fail")) { if (NUM(0, 9999)) return -1; f->download_fail = (int)d; }
    else if (!strcmp(k, "download-fail-at")) { if (NUM(0, 1e12)) return -1; f->download_fail_at = d; }
    else if (!strcmp(k, "power-loss")) return v ? sim_parse_trigger(v, &f->power_loss) : -1;
    else if (!strcmp(k, "upgrade-fail")) { if (NUM(0, 9999)) return -1; f->upgrade_fail = (int)d; }
    else if (!strcmp(k, "port-gone")) return v ? sim_parse_trigger(v, &f->port_gone) : -1;
    else if (!strcmp(k, "port-gone-for")) { if (NUM(-1e12, 1e7)) return -1; f->port_gone_for = d; }
    else if (!strcmp(k, "port-swap")) return v ? sim_parse_trigger(v, &f->port_swap) : -1;
    else if (!strcmp(k, "swap-state")) { if (NUM(0, 999)) return -1; f->swap_state = (int)d; }
    else if (!strcmp(k, "hang")) return v ? sim_parse_trigger(v, &f->hang) : -1;
    else if (!strcmp(k, "hang-for")) { if (NUM(0, 1e7)) return -1; f->hang_for = d; }
    else if (!strcmp(k, "hang-reject")) { int b = parse_flag(v); if (b < 0) return -1; f->hang_reject = b; }
    else if (!strcmp(k, "garbage")) { if (NUM(0, 1e9)) return -1; f->garbage_every = (int)d; }
    else if (!strcmp(k, "drop")) { if (NUM(0, 1e9)) return -1; f->drop_every = (int)d; }
    else if (!strcmp(k, "dup-state")) { int b = parse_flag(v); if (b < 0) return -1; f->dup_state = b; }
    else if (!strcmp(k, "bad-state")) { if (NUM(-1, 999)) return -1; f->bad_state = (int)d; }
    else if (!strcmp(k, "lose-state")) { if (NUM(-1, 999)) return -1; f->lose_state = (int)d; }
    else if (!strcmp(k, "data-session")) { int b = parse_flag(v); if (b < 0) return -1; f->data_session = b; }
    else if (!strcmp(k, "sim-pin")) { int b = parse_flag(v); if (b < 0) return -1; f->sim_pin = b; }
    else if (!strcmp(k, "not-registered")) { int b = parse_flag(v); if (b < 0) return -1; f->not_registered = b; }
    else if (!strcmp(k, "long-line")) {
        const char *colon = v ? strrchr(v, ':') : NULL;
        char trig[96];
        if (!colon || (size_t)(colon - v) >= sizeof trig) return -1;
        memcpy(trig, v, (size_t)(colon - v));
        trig[colon - v] = '\0';
        if (sim_parse_trigger(trig, &f->long_line) < 0 || f->long_line.kind != TRIG_CMD) return -1;
        if (parse_num(colon + 1, 1, 60000, &d) < 0) return -1;
        f->long_line_len = (long)d;
    }
    else if (!strcmp(k, "sms") || !strcmp(k, "urc")) {
        if (f->n_sms >= SIM_SMS_PLAN) return -1;
        if (sms_parse_plan(v, !strcmp(k, "urc"), &f->sms[f->n_sms]) < 0) return -1;
        f->n_sms++;
    }
    else if (!strcmp(k, "sms-slots")) { if (NUM(1, SIM_SMS_SLOTS_MAX)) return -1; cfg.sms_slots = (int)d; }
    else return -1;
#undef NUM
    return 0;
}

static int is_flag_option(const char *k)
{
    static const char *flags[] = {"no-new-version", "dup-state", "data-session", "sim-pin", "hang-reject",
                                  "not-registered", NULL};
    for (int i = 0; flags[i]; i++)
        if (!strcmp(k, flags[i])) return 1;
    return 0;
}

static void defaults(void)
{
    memset(&cfg, 0, sizeof cfg);
    cfg.modules = 1;
    snprintf(cfg.dir, sizeof cfg.dir, "/tmp/hwfota-sim");
    snprintf(cfg.name_prefix, sizeof cfg.name_prefix, "ttyUSB");
    cfg.name_start = 2;
    cfg.time_scale = 1.0;
    snprintf(cfg.model, sizeof cfg.model, "MU509-b");
    snprintf(cfg.manufacturer, sizeof cfg.manufacturer, "Huawei Technologies Co., Ltd.");
    snprintf(cfg.version_from, sizeof cfg.version_from, "12.815.03.01.00");
    snprintf(cfg.version_to, sizeof cfg.version_to, "12.815.03.02.00");
    snprintf(cfg.description, sizeof cfg.description, "Support send SMS background");
    cfg.imei_base = 86753090000000ULL;
    cfg.image_size = 1324;
    cfg.xnv_size = 77790;
    cfg.rate = 8000;
    cfg.detect_time = 3;
    cfg.verify_time = 1;
    cfg.upgrade_delay = 1;
    cfg.reset_delay = 2;
    cfg.reset_gap = 5;
    cfg.boot_time = 2;
    cfg.day = 86400;
    cfg.seed = 1;
    cfg.cmee_default = 2;
    cfg.drop_closed = 1;   /* the demanding case: a real USB port loses lines sent while closed */
    cfg.end_state = END_KEEP;
    cfg.discard_delay = 2;
    cfg.discard_urc = 0;
    cfg.resume_needs_mode = 1;
    snprintf(cfg.pin, sizeof cfg.pin, "1234");
    cfg.sms_slots = SIM_SMS_SLOTS;
    cfg.n_ttys = 1;
    cfg.tty_role[0] = SIM_ROLE_PCUI;
    cfg.faults.download_fail_at = -1;
    cfg.faults.port_gone_for = 5;
    cfg.faults.hang_for = 10;
    cfg.faults.swap_state = 40;
    cfg.faults.bad_state = -1;
    cfg.faults.lose_state = -1;
}

/* ---------------------------------------------------------------- main loop */

static void on_signal(int sig) { stop_sig = sig; }

static int mkdir_p(const char *dir)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST) return -1;
    return 0;
}

int main(int argc, char **argv)
{
    defaults();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "hwfota-sim: unexpected argument \"%s\" (see --help)\n", a);
            return 2;
        }
        char key[64];
        const char *val = NULL;
        const char *eq = strchr(a + 2, '=');
        size_t kl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (kl >= sizeof key) { fprintf(stderr, "hwfota-sim: bad option %s\n", a); return 2; }
        memcpy(key, a + 2, kl);
        key[kl] = '\0';
        if (eq) val = eq + 1;
        else if (!is_flag_option(key)) {
            if (i + 1 >= argc) { fprintf(stderr, "hwfota-sim: %s needs a value\n", a); return 2; }
            val = argv[++i];
        }
        if (apply_option(key, val) < 0) {
            fprintf(stderr, "hwfota-sim: bad option --%s%s%s (see --help)\n", key,
                    val ? " " : "", val ? val : "");
            return 2;
        }
    }

    t_start = mono();
    rng_state = 0x9E3779B97F4A7C15ULL ^ ((unsigned long long)cfg.seed * 0x2545F4914F6CDD1DULL);
    if (!rng_state) rng_state = 1;

    if (mkdir_p(cfg.dir) < 0) {
        fprintf(stderr, "hwfota-sim: mkdir %s: %s\n", cfg.dir, strerror(errno));
        return 1;
    }
    if (cfg.log_path[0]) {
        log_fp = fopen(cfg.log_path, "w");
        if (!log_fp) {
            fprintf(stderr, "hwfota-sim: %s: %s\n", cfg.log_path, strerror(errno));
            return 1;
        }
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t block, orig;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &orig);

    /* two fds per module: raise the soft limit as far as allowed */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    tty_stride = cfg.n_ttys > cfg.n_ttys_after ? cfg.n_ttys : cfg.n_ttys_after;
    if (describe_ttys() && cfg.name_start < 0) {
        fprintf(stderr, "hwfota-sim: --ttys/--ttys-after/--reenumerate need a numbered --name "
                "(e.g. ttyUSB0)\n");
        return 2;
    }
    mods = calloc((size_t)cfg.modules, sizeof *mods);
    auxs = calloc((size_t)cfg.modules * (size_t)tty_stride, sizeof *auxs);
    generation = calloc((size_t)cfg.modules, sizeof *generation);
    layout = calloc((size_t)cfg.modules, sizeof *layout);
    if (!mods || !auxs || !generation || !layout) {
        fprintf(stderr, "hwfota-sim: out of memory\n");
        return 1;
    }
    for (int i = 0; i < cfg.modules * tty_stride; i++) auxs[i].mfd = auxs[i].sfd = -1;
    int rc = 0;
    for (int i = 0; i < cfg.modules; i++) {
        sim_module *m = &mods[i];
        int faulty = !cfg.fault_mask_set || cfg.fault_mask[i];
        mod_init(m, i, &cfg, cfg.module_faults[i] ? cfg.module_faults[i] : faulty ? &cfg.faults : NULL);
        if (cfg.name_start >= 0)
            snprintf(m->path, sizeof m->path, "%s/%s%d", cfg.dir, cfg.name_prefix,
                     cfg.name_start + i);
        else if (cfg.modules == 1)
            snprintf(m->path, sizeof m->path, "%s/%s", cfg.dir, cfg.name_prefix);
        else
            snprintf(m->path, sizeof m->path, "%s/%s%d", cfg.dir, cfg.name_prefix, i);
        if (sim_publish(m) < 0) { rc = 1; cfg.modules = i; break; }
        mod_boot(m);
    }
    if (rc == 0) {
        fputs("ready", stdout);
        for (int i = 0; i < cfg.modules; i++) printf(" %s", mods[i].path);
        putchar('\n');
        fflush(stdout);
        sim_log(-1, "\"ev\":\"ready\",\"modules\":%d", cfg.modules);
    }

    size_t nslots = (size_t)cfg.modules * (size_t)tty_stride + 2;
    struct pollfd *pfd = calloc(nslots, sizeof *pfd);
    int *pmod = calloc(nslots, sizeof *pmod);
    while (rc == 0 && !stop_sig && pfd && pmod) {
        double now = sim_now();
        for (int i = 0; i < cfg.modules; i++) mod_tick(&mods[i], now);
        int n = 0;
        double next = 0;
        for (int i = 0; i < cfg.modules; i++) {
            sim_module *m = &mods[i];
            double d = mod_next_deadline(m);
            if (d > 0 && (next == 0 || d < next)) next = d;
            if (tty_stride > 1) {
                aux_tick(m, now, &next);
                for (int j = 0; j < tty_stride; j++) {
                    sim_aux *a = aux_of(m, j);
                    if (a->mfd < 0) continue;
                    pfd[n].fd = a->mfd;
                    pfd[n].events = POLLIN;
                    pfd[n].revents = 0;
                    pmod[n++] = -2 - (i * tty_stride + j);   /* an aux tty */
                }
            }
            if (!mod_port_open(m)) continue;
            pfd[n].fd = m->mfd;
            pfd[n].events = POLLIN | (m->outlen ? POLLOUT : 0);
            pfd[n].revents = 0;
            pmod[n++] = i;
        }
        int watch_slot = -1;
        if (close_watch >= 0) {
            watch_slot = n;
            pfd[n].fd = close_watch;
            pfd[n].events = POLLIN;
            pfd[n].revents = 0;
            pmod[n++] = -1;
        }
        struct timespec ts, *tsp = NULL;
        if (next > 0) {
            double wait = next - sim_now();
            if (wait < 0) wait = 0;
            ts.tv_sec = (time_t)wait;
            ts.tv_nsec = (long)((wait - (double)ts.tv_sec) * 1e9) + 1000000L;
            if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
            tsp = &ts;
        }
        int r = ppoll(pfd, (nfds_t)n, tsp, &orig);
        if (r < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "hwfota-sim: poll: %s\n", strerror(errno));
            rc = 1;
            break;
        }
        if (watch_slot >= 0 && (pfd[watch_slot].revents & POLLIN))
            handle_closes(mods, cfg.modules);
        for (int k = 0; k < n; k++) {
            if (k == watch_slot) continue;
            if (pmod[k] <= -2) {
                int slot = -2 - pmod[k];
                sim_aux *a = &auxs[slot];
                if (a->mfd == pfd[k].fd && (pfd[k].revents & POLLIN))
                    aux_input(&mods[slot / tty_stride], a);
                continue;
            }
            sim_module *m = &mods[pmod[k]];
            if (m->mfd != pfd[k].fd) continue;
            if (pfd[k].revents & POLLOUT) mod_flush(m);
            if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR)) {
                char buf[1024];
                ssize_t got = read(m->mfd, buf, sizeof buf);
                if (got > 0) mod_input(m, buf, (size_t)got);
                else if (cfg.drop_closed && (got == 0 || errno == EIO)) mod_host_closed(m);
                /* EIO on the master only means no host holds the slave; we keep
                 * our own slave fd open, so this should not spin. */
            }
        }
    }
    for (int i = 0; i < cfg.modules; i++) {
        sim_unpublish(&mods[i], 1);
        mod_free(&mods[i]);
    }
    if (stop_sig) sim_log(-1, "\"ev\":\"exit\",\"signal\":%d", (int)stop_sig);
    if (log_fp) fclose(log_fp);
    free(pfd);
    free(pmod);
    free(mods);
    free(auxs);
    free(generation);
    free(layout);
    for (int i = 0; i < SIM_MAX_MODULES; i++) free(cfg.module_faults[i]);
    return rc;
}
