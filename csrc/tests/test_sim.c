/*
 * test_sim.c — hwfota-sim behaves like the protocol reference says.
 *
 * Spawns build/hwfota-sim (or $HWFOTA_SIM) with a temporary --dir and a fast
 * --time-scale, talks to the published pty with plain POSIX I/O and its own
 * line reader (no library code: the simulator is the reference the library is
 * tested against), and checks replies and the simulator's --log file.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define SCALE "0.03"

typedef struct {
    pid_t pid;
    char dir[256];
    char log[300];
    char path[4][300];
    int fd;               /* the port under test */
    char buf[16384];
    size_t len;
    int hup;
} sim;

static char sim_bin[1024];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static void find_sim(void)
{
    const char *e = getenv("HWFOTA_SIM");
    if (e && *e) { snprintf(sim_bin, sizeof sim_bin, "%s", e); return; }
    if (access("build/hwfota-sim", X_OK) == 0) { snprintf(sim_bin, sizeof sim_bin, "build/hwfota-sim"); return; }
    char self[900];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *s = strrchr(self, '/');
        if (s) { *s = '\0'; s = strrchr(self, '/'); }
        if (s) { *s = '\0'; snprintf(sim_bin, sizeof sim_bin, "%s/hwfota-sim", self); return; }
    }
    snprintf(sim_bin, sizeof sim_bin, "build/hwfota-sim");
}

/* Start the simulator with the common options plus NULL-terminated extra ones. */
static int sim_start(sim *s, int modules, ...)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
    snprintf(s->dir, sizeof s->dir, "/tmp/hwfota-simtest.XXXXXX");
    if (!mkdtemp(s->dir)) return -1;
    snprintf(s->log, sizeof s->log, "%s/log.jsonl", s->dir);
    const char *argv[64];
    char mods[16];
    int n = 0;
    snprintf(mods, sizeof mods, "%d", modules);
    argv[n++] = sim_bin;
    argv[n++] = "--dir"; argv[n++] = s->dir;
    argv[n++] = "--log"; argv[n++] = s->log;
    argv[n++] = "--time-scale"; argv[n++] = SCALE;
    argv[n++] = "--modules"; argv[n++] = mods;
    argv[n++] = "--rate"; argv[n++] = "30000"; /* fast downloads unless a test asks otherwise */
    argv[n++] = "--reset-gap"; argv[n++] = "3";
    va_list ap;
    va_start(ap, modules);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 62) argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    int p[2];
    if (pipe(p) < 0) return -1;
    s->pid = fork();
    if (s->pid < 0) return -1;
    if (s->pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execv(sim_bin, (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    char line[2048];
    size_t l = 0;
    double end = now_s() + 5;
    while (now_s() < end && l + 1 < sizeof line) {
        struct pollfd pf = {p[0], POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0) continue;
        ssize_t r = read(p[0], line + l, 1);
        if (r <= 0) break;
        if (line[l] == '\n') break;
        l++;
    }
    line[l] = '\0';
    close(p[0]);
    if (strncmp(line, "ready ", 6) != 0) return -1;
    char *tok = line + 6, *save = NULL;
    for (int i = 0; i < 4; i++) {
        char *t = strtok_r(i == 0 ? tok : NULL, " ", &save);
        if (!t) break;
        snprintf(s->path[i], sizeof s->path[i], "%s", t);
    }
    return 0;
}

static int port_open(sim *s, int idx)
{
    if (s->fd >= 0) close(s->fd);
    s->len = 0;
    s->hup = 0;
    s->fd = open(s->path[idx], O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (s->fd < 0) return -1;
    struct termios t;
    if (tcgetattr(s->fd, &t) == 0) { cfmakeraw(&t); tcsetattr(s->fd, TCSANOW, &t); }
    return 0;
}

/* Wait until the port path can be opened again (after a reset). */
static int port_reopen(sim *s, int idx, double timeout)
{
    double end = now_s() + timeout;
    if (s->fd >= 0) { close(s->fd); s->fd = -1; }
    while (now_s() < end) {
        if (port_open(s, idx) == 0) return 0;
        sleep_s(0.01);
    }
    return -1;
}

/* Read raw bytes into s->buf for up to `timeout` s; -1 on hang-up. */
static int fill(sim *s, double timeout)
{
    if (s->fd < 0 || s->hup) return -1;
    struct pollfd pf = {s->fd, POLLIN, 0};
    int r = poll(&pf, 1, (int)(timeout * 1000));
    if (r <= 0) return 0;
    if (sizeof s->buf - s->len < 2) s->len = 0;
    ssize_t n = read(s->fd, s->buf + s->len, sizeof s->buf - s->len - 1);
    if (n > 0) { s->len += (size_t)n; return 1; }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) { s->hup = 1; return -1; }
    if (pf.revents & (POLLHUP | POLLERR)) { s->hup = 1; return -1; }
    return 0;
}

/* Next non-empty line (split on CR or LF). 1 line, 0 timeout, -1 hang-up. */
static int next_line(sim *s, char *out, size_t cap, double timeout)
{
    double end = now_s() + timeout;
    for (;;) {
        size_t i = 0;
        while (i < s->len && (s->buf[i] == '\r' || s->buf[i] == '\n')) i++;
        if (i) { memmove(s->buf, s->buf + i, s->len - i); s->len -= i; }
        for (i = 0; i < s->len; i++) {
            if (s->buf[i] == '\r' || s->buf[i] == '\n') {
                size_t n = i < cap - 1 ? i : cap - 1;
                memcpy(out, s->buf, n);
                out[n] = '\0';
                memmove(s->buf, s->buf + i, s->len - i);
                s->len -= i;
                return 1;
            }
        }
        double left = end - now_s();
        if (left <= 0) { out[0] = '\0'; return 0; }
        if (fill(s, left) < 0) { out[0] = '\0'; return -1; }
    }
}

static int is_noise(const char *l)
{
    return !strncmp(l, "^RSSI:", 6) || !strncmp(l, "^MODE:", 6) || !strncmp(l, "^DSFLOWRPT:", 11) ||
           !strncmp(l, "^SRVST:", 7) || !strncmp(l, "^HCSQ:", 6);
}

static int noise_seen;

/* Like next_line, skipping noise URCs. */
static int next_nn(sim *s, char *out, size_t cap, double timeout)
{
    for (;;) {
        int r = next_line(s, out, cap, timeout);
        if (r != 1 || !is_noise(out)) return r;
        noise_seen++;
    }
}

static void send_cmd(sim *s, const char *cmd)
{
    char b[1024];
    int n = snprintf(b, sizeof b, "%s\r", cmd);
    if (write(s->fd, b, (size_t)n) != n) s->hup = 1;
}

/* Expect the exact next lines (noise skipped); the first argument is the command. */
#define EXPECT(s, ...) expect_lines((s), __LINE__, __VA_ARGS__, (const char *)NULL)
static int expect_lines(sim *s, int line, ...)
{
    va_list ap;
    const char *want;
    int ok = 1;
    char got[4096];
    va_start(ap, line);
    while ((want = va_arg(ap, const char *))) {
        int r;
        do r = next_line(s, got, sizeof got, 3.0);
        while (r == 1 && is_noise(got) && strcmp(got, want) != 0 && ++noise_seen);
        CHECK(r == 1 && strcmp(got, want) == 0, "line %d: want \"%s\", got \"%s\" (r=%d)", line, want,
              got, r);
        if (r != 1 || strcmp(got, want) != 0) { ok = 0; break; }
    }
    va_end(ap);
    return ok;
}

/* Send a command and expect its echo and the given lines. */
#define CMD(s, cmd, ...) (send_cmd((s), (cmd)), expect_lines((s), __LINE__, (cmd), __VA_ARGS__, (const char *)NULL))
/* Same with echo off. */
#define CMD0(s, cmd, ...) (send_cmd((s), (cmd)), expect_lines((s), __LINE__, __VA_ARGS__, (const char *)NULL))

/* Wait for a line starting with prefix (others skipped); 1 found. */
static int wait_for(sim *s, const char *prefix, double timeout, char *got, size_t cap)
{
    double end = now_s() + timeout;
    char tmp[4096];
    if (!got) { got = tmp; cap = sizeof tmp; }
    while (now_s() < end) {
        int r = next_line(s, got, cap, end - now_s());
        if (r < 0) return -1;
        if (r == 1 && !strncmp(got, prefix, strlen(prefix))) return 1;
    }
    return 0;
}

/* Wait for the hang-up of the current fd. */
static int wait_hup(sim *s, double timeout)
{
    double end = now_s() + timeout, t0 = now_s();
    char tmp[4096];
    while (now_s() < end)
        if (next_line(s, tmp, sizeof tmp, end - now_s()) < 0) {
            if (getenv("SIMTEST_TRACE")) fprintf(stderr, "hup after %.3f s\n", now_s() - t0);
            return 1;
        }
    return 0;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return calloc(1, 1);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = calloc(1, (size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) b[0] = '\0';
    fclose(f);
    return b;
}

static int count_in(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static int log_count(sim *s, const char *needle)
{
    char *b = slurp(s->log);
    int n = b ? count_in(b, needle) : -1;
    free(b);
    return n;
}

/* Wait (bounded) until the log holds `needle` at least n times: an event, where a
 * fixed sleep would race the simulator on a loaded machine. */
static int wait_log(sim *s, const char *needle, int n, double timeout)
{
    double end = now_s() + timeout;
    while (log_count(s, needle) < n && now_s() < end)
        sleep_s(0.01);
    return log_count(s, needle) >= n;
}

static void sim_stop(sim *s)
{
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        int st = 0;
        double end = now_s() + 3;
        pid_t r = 0;
        while (now_s() < end && (r = waitpid(s->pid, &st, WNOHANG)) == 0) sleep_s(0.01);
        if (r == 0) { kill(s->pid, SIGKILL); waitpid(s->pid, &st, 0); }
        CHECK(r == s->pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "sim exits 0 on SIGTERM (st=%d)", st);
        for (int i = 0; i < 4; i++) {
            struct stat sb;
            if (s->path[i][0]) CHECK(lstat(s->path[i], &sb) < 0, "link %s removed on exit", s->path[i]);
        }
        s->pid = 0;
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", s->dir);
}

static int luhn_ok(const char *d)
{
    size_t n = strlen(d);
    int sum = 0;
    for (size_t i = 0; i < n; i++) {
        int v = d[n - 1 - i] - '0';
        if (v < 0 || v > 9) return 0;
        if (i % 2 == 1) { v *= 2; if (v > 9) v -= 9; }
        sum += v;
    }
    return n == 15 && sum % 10 == 0;
}

#define STATE12 "^FOTASTATE: 12,12.815.03.02.00,79114,\"Support send SMS background\""

/* ------------------------------------------------------------------ tests */

/* The seed's log, line for line, through the reset. */
static void test_seed_flow(void)
{
    sim s;
    /* keep: the boot URCs sent before the reopen are read here (drop, the default, loses them) */
    REQUIRE(sim_start(&s, 1, "--closed-port", "keep", "--rate", "8000", NULL) == 0, "sim starts and prints ready");
    REQUIRE(port_open(&s, 0) == 0, "open %s", s.path[0]);
    CMD(&s, "AT+GMR", "12.815.03.01.00", "OK");
    CMD(&s, "AT^FOTACFG=\"1234\",\"\",\"\",2", "OK");
    CMD(&s, "AT^FOTAMODE=0,0,1,1", "OK");
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 10", "OK");
    CMD(&s, "AT^FOTADET", "OK", "^FOTASTATE: 11", STATE12);
    CMD(&s, "AT^FOTADL=1", "OK", "^FOTASTATE: 30");
    send_cmd(&s, "AT^FOTADLQ");
    char l[4096];
    long a = -1, at = -1, b = -1, bt = -1;
    EXPECT(&s, "AT^FOTADLQ");
    next_line(&s, l, sizeof l, 2);
    CHECK(sscanf(l, "^FOTADLQ: 1,\"IMAGE\",%ld,%ld", &a, &at) == 2, "IMAGE line: %s", l);
    next_line(&s, l, sizeof l, 2);
    CHECK(sscanf(l, "^FOTADLQ: 2,\"XNV\",%ld,%ld", &b, &bt) == 2, "XNV line: %s", l);
    EXPECT(&s, "OK");
    CHECK_INT(at, 1324);
    CHECK_INT(bt, 77790);
    CHECK(a >= 0 && a <= at && b >= 0 && b < bt, "partial progress %ld/%ld %ld/%ld", a, at, b, bt);
    CHECK(b == 0 || a == at, "IMAGE before XNV");
    EXPECT(&s, "^FOTASTATE: 40", "^FOTASTATE: 50");
    CHECK(wait_hup(&s, 3) == 1, "host sees hang-up at the reset");
    struct stat sb;
    CHECK(lstat(s.path[0], &sb) < 0, "link gone during the reset");
    CHECK(port_reopen(&s, 0, 3) == 0, "path comes back");
    EXPECT(&s, "^BOOT: 20952350,0,0,0,72", "^SIMST: 1", "^SRVST: 2", "^MODE: 5,4", "^RSSI: 20",
           "^FOTASTATE: 90");
    CMD(&s, "AT+GMR", "12.815.03.02.00", "OK");
    CMD(&s, "AT+CMEE?", "+CMEE: 2", "OK");
    CHECK_INT(log_count(&s, "\"dir\":\"rx\",\"line\":\"AT^FOTADL=1\""), 1);
    CHECK_INT(log_count(&s, "\"ev\":\"reset\",\"reason\":\"upgrade\""), 1);
    CHECK_INT(log_count(&s, "\"ev\":\"state\",\"state\":90"), 1);
    CHECK_INT(log_count(&s, "\"dir\":\"rx\""), 9);
    /* the log's rx lines are the host's commands in order */
    char *lg = slurp(s.log);
    const char *seq[] = {"AT+GMR", "AT^FOTACFG=\\\"1234\\\",\\\"\\\",\\\"\\\",2", "AT^FOTAMODE=0,0,1,1",
                         "AT^FOTASTATE?", "AT^FOTADET", "AT^FOTADL=1", "AT^FOTADLQ", "AT+GMR", "AT+CMEE?"};
    const char *p = lg;
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
        char needle[200];
        snprintf(needle, sizeof needle, "\"dir\":\"rx\",\"line\":\"%s\"", seq[i]);
        const char *q = p ? strstr(p, needle) : NULL;
        CHECK(q != NULL, "log rx #%zu %s in order", i, seq[i]);
        p = q ? q + 1 : NULL;
    }
    CHECK(strstr(lg, "\"ev\":\"port\",\"what\":\"down\"") != NULL, "log: port down");
    free(lg);
    sim_stop(&s);
}

/* AT^FOTADLQ (echo on): the bytes done of the IMAGE and XNV files (-1: unreadable). */
static void read_dlq(sim *s, long *image, long *xnv)
{
    char l[4096];
    send_cmd(s, "AT^FOTADLQ");
    EXPECT(s, "AT^FOTADLQ");
    next_line(s, l, sizeof l, 2);
    sscanf(l, "^FOTADLQ: 1,\"IMAGE\",%ld", image);
    next_line(s, l, sizeof l, 2);
    sscanf(l, "^FOTADLQ: 2,\"XNV\",%ld", xnv);
    EXPECT(s, "OK");
}

/* Echo, ATE0, ATV, CMEE modes, identity commands, syntax errors, preconditions. */
static void test_at_basics(void)
{
    sim s;
    /* --discard-delay 0: AT^FOTADL=0 takes at once (test_end_states plays the delay) */
    REQUIRE(sim_start(&s, 1, "--rate", "2000", "--detect-time", "10", "--discard-delay", "0",
                      NULL) == 0, "sim starts");
    REQUIRE(port_open(&s, 0) == 0, "open");
    CMD(&s, "AT", "OK");
    CMD(&s, "at", "OK");
    CMD(&s, "AT+CMEE?", "+CMEE: 2", "OK");
    CMD(&s, "AT^FOTACFG=1234,\"\",\"\",2", "+CME ERROR: Incorrect parameters");
    CMD(&s, "AT+CMEE=1", "OK");
    CMD(&s, "AT^FOTACFG=\"1234\",\"\",\"\",7", "+CME ERROR: 50");
    CMD(&s, "AT+CMEE=0", "OK");
    CMD(&s, "AT^FOTACFG=\"1234\",\"\",\"\"", "ERROR");
    CMD(&s, "AT+CMEE=2", "OK");
    CMD(&s, "AT^FOTACFG=\"a\",\"b\",\"c\",1,5", "TOO MANY PARAMETERS");
    CMD(&s, "AT^FOTACFG=\"apn.x\",\"u\",\"p\",1", "OK");
    CMD(&s, "AT^FOTACFG?", "^FOTACFG: \"apn.x\",\"u\",\"p\",1", "OK");
    CMD(&s, "AT^FOTAMODE=?", "^FOTAMODE: (0-1),(0-1),(0-1),(0-1),(1-365)", "OK");
    CMD(&s, "AT^FOTAMODE=0,0,0,0,7", "OK");
    CMD(&s, "AT^FOTAMODE?", "^FOTAMODE: 0,0,0,0,7", "OK");
    CMD(&s, "AT^FOTAMODE=0,2,0,0", "+CME ERROR: Incorrect parameters");
    CMD(&s, "AT^FOTADL=?", "^FOTADL: (0-2)", "OK");
    CMD(&s, "AT+CMEE=1\"", "ERROR");
    CMD(&s, "AT+XYZZY", "COMMAND NOT SUPPORT");
    CMD(&s, "ATI", "Manufacturer: Huawei Technologies Co., Ltd.", "Model: MU509-b",
        "Revision: 12.815.03.01.00", "IMEI: 867530900000009", "+GCAP: +CGSM,+DS,+ES", "OK");
    CMD(&s, "AT+CGMR", "12.815.03.01.00", "OK");
    CMD(&s, "AT+CGSN", "867530900000009", "OK");
    CHECK(luhn_ok("867530900000009"), "IMEI Luhn");
    CMD(&s, "AT+CPIN?", "+CPIN: READY", "OK");
    CMD(&s, "AT+CREG?", "+CREG: 0,1", "OK");
    CMD(&s, "AT+CGREG?", "+CGREG: 0,1", "OK");
    CMD(&s, "AT+CSQ", "+CSQ: 20,99", "OK");
    CMD(&s, "AT^CURC=0", "OK");
    /* preconditions */
    CMD(&s, "AT^FOTADL=1", "ERROR");
    CMD(&s, "AT^FWUP", "ERROR");
    CMD(&s, "AT^FOTADLQ", "ERROR");
    CMD(&s, "AT^FOTADET", "OK", "^FOTASTATE: 11");
    CMD(&s, "AT^FOTADET", "+CME ERROR: FOTA is in collision state");
    CMD(&s, "AT^FOTADL=1", "ERROR");
    EXPECT(&s, STATE12);
    CMD(&s, "AT^FOTADL=2", "ERROR");
    CMD(&s, "AT^FOTADL=1", "OK", "^FOTASTATE: 30");
    CMD(&s, "AT^FOTADET", "+CME ERROR: FOTA is in collision state");
    CMD(&s, "AT^FOTADL=2", "+CME ERROR: Operation not supported");
    CMD(&s, "AT^FOTAMODE=0,0,0,1", "OK");
    CMD(&s, "AT^FOTADL=2", "OK", "^FOTASTATE: 31");
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 31", "OK");
    long a1 = -1, b1 = -1, a2 = -1, b2 = -1;
    read_dlq(&s, &a1, &b1);
    sleep_s(0.2);
    read_dlq(&s, &a2, &b2);
    CHECK(a1 >= 0 && a1 == a2 && b1 == b2, "paused: no progress (%ld,%ld -> %ld,%ld)", a1, b1, a2, b2);
    CMD(&s, "AT^FOTADL=1", "OK", "^FOTASTATE: 30");
    CMD(&s, "AT^FOTADL=0", "OK");
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 10", "OK");
    /* echo off, V0 */
    CMD(&s, "ATE0", "OK");
    CMD0(&s, "AT", "OK");
    CMD0(&s, "ATV0", "0");
    CMD0(&s, "AT+XYZZY", "4");
    CMD0(&s, "ATV1", "OK");
    CMD0(&s, "ATE1", "OK");
    CMD(&s, "AT", "OK");
    sim_stop(&s);
}

/* --unsupported: firmware without some commands (or some forms of them). */
static void test_unsupported(void)
{
    sim s;
    REQUIRE(sim_start(&s, 1, "--unsupported", "+CMEE?,+cscs?,+CPIN", NULL) == 0, "sim starts");
    REQUIRE(port_open(&s, 0) == 0, "open");
    CMD(&s, "AT+CMEE?", "COMMAND NOT SUPPORT");
    CMD(&s, "AT+CMEE=2", "OK");
    CMD(&s, "AT+CSCS?", "COMMAND NOT SUPPORT");
    CMD(&s, "AT+CPIN?", "COMMAND NOT SUPPORT");
    CMD(&s, "AT+CPIN=?", "COMMAND NOT SUPPORT");
    CMD(&s, "AT+CREG?", "+CREG: 0,1", "OK");
    CMD(&s, "AT", "OK");
    sim_stop(&s);
    char cmd[1600];
    snprintf(cmd, sizeof cmd, "'%s' --unsupported 'AT+X;Y' --dir /tmp/hwfota-simtest-none >/dev/null 2>&1",
             sim_bin);
    CHECK(system(cmd) != 0, "--unsupported with a bad character rejected");
}

/* --long-line cmd=NAME:N: N noise bytes without a line end before NAME's answer, once. */
static void test_long_line(void)
{
    sim s;
    char line[8192];
    REQUIRE(sim_start(&s, 1, "--long-line", "cmd=CGSN:6000", NULL) == 0, "sim starts");
    REQUIRE(port_open(&s, 0) == 0, "open");
    CMD(&s, "ATE0", "OK");
    send_cmd(&s, "AT+CGSN");
    CHECK(next_nn(&s, line, sizeof line, 2) == 1, "a line");
    CHECK_INT(strlen(line), 6000);
    CHECK(strspn(line, "0123456789") < 6000, "noise, not an answer");
    CHECK(next_nn(&s, line, sizeof line, 2) == 1 && luhn_ok(line), "then the IMEI: %s", line);
    CHECK(next_nn(&s, line, sizeof line, 2) == 1 && !strcmp(line, "OK"), "then OK: %s", line);
    send_cmd(&s, "AT+CGSN");
    CHECK(next_nn(&s, line, sizeof line, 2) == 1 && luhn_ok(line), "once only: %s", line);
    CHECK_INT(log_count(&s, "\"fault\":\"long-line\""), 1);
    sim_stop(&s);
    char cmd[1600];
    snprintf(cmd, sizeof cmd, "'%s' --long-line time=1:50 --dir /tmp/hwfota-simtest-none >/dev/null 2>&1",
             sim_bin);
    CHECK(system(cmd) != 0, "--long-line takes cmd= triggers only");
}

/* A host that closes without dropping TIOCEXCL (as a killed one does): the
 * flag stays unless --release-dead-host on. Root opens despite the flag. */
static int excl_after_dead_host(sim *s)
{
    int excl = -1;
    REQUIRE(port_open(s, 0) == 0, "open");
    CHECK(ioctl(s->fd, TIOCEXCL) == 0, "TIOCEXCL");
    close(s->fd);
    s->fd = -1;
    sleep_s(0.3);
    int fd = open(s->path[0], O_RDWR | O_NOCTTY | O_NONBLOCK);
    CHECK(fd >= 0, "reopen as root");
    if (fd >= 0) {
        CHECK(ioctl(fd, TIOCGEXCL, &excl) == 0, "TIOCGEXCL");
        close(fd);
    }
    return excl;
}

static void test_release_dead_host(void)
{
    sim s;
    /* keep: the flag lives on the pty the simulator's own slave fd keeps open (with
     * drop, the default, it holds none and cannot release anything) */
    REQUIRE(sim_start(&s, 1, "--closed-port", "keep", NULL) == 0, "sim starts");
    CHECK_INT(excl_after_dead_host(&s), 1);
    CHECK_INT(log_count(&s, "\"what\":\"released\""), 0);
    sim_stop(&s);
    REQUIRE(sim_start(&s, 1, "--closed-port", "keep", "--release-dead-host", "on", NULL) == 0, "sim starts");
    CHECK_INT(excl_after_dead_host(&s), 0);
    CHECK(log_count(&s, "\"what\":\"released\"") >= 1, "released logged");
    sim_stop(&s);
    char cmd[1600];
    snprintf(cmd, sizeof cmd, "'%s' --release-dead-host maybe --dir /tmp/hwfota-simtest-none >/dev/null 2>&1",
             sim_bin);
    CHECK(system(cmd) != 0, "--release-dead-host takes on|off");
}

/* Run detection on a sim started with the given faults; returns after the "OK". */
static void detect(sim *s)
{
    CMD(s, "AT^FOTADET", "OK", "^FOTASTATE: 11");
}

static void test_detect_faults(void)
{
    sim s;
    char scen[400];
    REQUIRE(sim_start(&s, 1, NULL) == 0, "sim starts");
    sim_stop(&s);
    /* no new version, from a scenario file */
    snprintf(scen, sizeof scen, "/tmp/hwfota-simtest-scen.%d", (int)getpid());
    FILE *f = fopen(scen, "w");
    CHECK(f != NULL, "scenario file");
    if (f) { fputs("# scenario\nno-new-version = 1\ndetect-time=2\n", f); fclose(f); }
    REQUIRE(sim_start(&s, 1, "--scenario", scen, NULL) == 0, "sim starts with a scenario");
    port_open(&s, 0);
    detect(&s);
    EXPECT(&s, "^FOTASTATE: 14");
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 10", "OK");
    CHECK_INT(log_count(&s, "\"fault\":\"no-new-version\""), 1);
    sim_stop(&s);
    unlink(scen);

    REQUIRE(sim_start(&s, 1, "--detect-fail", "21", NULL) == 0, "sim starts");
    port_open(&s, 0);
    detect(&s);
    EXPECT(&s, "^FOTASTATE: 13,21");
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 10", "OK");
    sim_stop(&s);

    REQUIRE(sim_start(&s, 1, "--not-registered", NULL) == 0, "sim starts");
    port_open(&s, 0);
    CMD(&s, "AT+CREG?", "+CREG: 0,0", "OK");
    CMD(&s, "AT+CGREG?", "+CGREG: 0,0", "OK");
    detect(&s);
    EXPECT(&s, "^FOTASTATE: 13,11");
    sim_stop(&s);

    REQUIRE(sim_start(&s, 1, "--data-session", NULL) == 0, "sim starts");
    port_open(&s, 0);
    CMD(&s, "AT^FOTADET", "+CME ERROR: FOTA is in collision state");
    CMD(&s, "AT+CMEE=1", "OK");
    CMD(&s, "AT^FOTADET", "+CME ERROR: 54");
    CMD(&s, "AT^NDISSTATQRY?", "^NDISSTATQRY: 1,,,\"IPV4\"", "OK");
    CMD(&s, "AT^NDISDUP=1,0", "OK", "^NDISSTAT: 0,,,\"IPV4\"");
    detect(&s);
    EXPECT(&s, STATE12);
    CMD(&s, "AT+CGACT=1,1", "OK");
    CMD(&s, "AT^FOTADL=1", "+CME ERROR: 54");
    CMD(&s, "AT+CGACT=0,1", "OK");
    CMD(&s, "AT^FOTADL=1", "OK", "^FOTASTATE: 30");
    sim_stop(&s);

    REQUIRE(sim_start(&s, 1, "--sim-pin", NULL) == 0, "sim starts");
    port_open(&s, 0);
    CMD(&s, "AT+CPIN?", "+CPIN: SIM PIN", "OK");
    CMD(&s, "AT^FOTADET", "+CME ERROR: SIM PIN required");
    CMD(&s, "AT+CPIN=\"0000\"", "+CME ERROR: incorrect password");
    CMD(&s, "AT+CPIN=\"1234\"", "OK");
    CMD(&s, "AT+CPIN?", "+CPIN: READY", "OK");
    detect(&s);
    EXPECT(&s, STATE12);
    sim_stop(&s);

    REQUIRE(sim_start(&s, 1, "--dup-state", "--bad-state", "12", NULL) == 0, "sim starts");
    port_open(&s, 0);
    CMD(&s, "AT^FOTADET", "OK", "^FOTASTATE: 11", "^FOTASTATE: 11");
    char l[4096];
    next_line(&s, l, sizeof l, 2);
    CHECK(strncmp(l, "^FOTASTATE: 12", 14) == 0 && strlen(l) < strlen(STATE12), "malformed 12: %s", l);
    next_line(&s, l, sizeof l, 2);
    CHECK(strncmp(l, "^FOTASTATE: 12", 14) == 0 && strlen(l) < strlen(STATE12), "malformed 12 twice: %s", l);
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 12", "OK");
    CHECK_INT(log_count(&s, "\"fault\":\"bad-state\""), 1);
    CHECK_INT(log_count(&s, "\"fault\":\"dup-state\""), 2);
    sim_stop(&s);
}

/* Bring a module from idle to 30 (downloading). */
static void to_download(sim *s, const char *mode)
{
    char b[64];
    snprintf(b, sizeof b, "AT^FOTAMODE=%s", mode);
    CMD(s, b, "OK");
    CMD(s, "AT^FOTADET", "OK", "^FOTASTATE: 11", STATE12);
    CMD(s, "AT^FOTADL=1", "OK", "^FOTASTATE: 30");
}

static void test_download_faults(void)
{
    sim s;
    char l[4096];
    REQUIRE(sim_start(&s, 1, "--download-fail", "52", "--download-fail-at", "40000", NULL) == 0, "sim starts");
    port_open(&s, 0);
    to_download(&s, "0,0,1,1");
    EXPECT(&s, "^FOTASTATE: 20,52");
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 10", "OK");
    CMD(&s, "AT^FOTADLQ", "ERROR");
    CHECK_INT(log_count(&s, "\"fault\":\"download-fail\",\"code\":52,\"byte\":40000"), 1);
    sim_stop(&s);

    /* power loss at a byte, resume on: 31 at boot, then resume and FWUP by hand */
    REQUIRE(sim_start(&s, 1, "--closed-port", "keep", "--power-loss", "byte=30000", NULL) == 0, "sim starts");
    port_open(&s, 0);
    CMD(&s, "AT+CMEE=0", "OK");
    CMD(&s, "ATE0", "OK");
    CMD0(&s, "ATE1", "OK");
    to_download(&s, "0,0,0,1");
    CHECK(wait_hup(&s, 3) == 1, "power loss: hang-up");
    CHECK(port_reopen(&s, 0, 3) == 0, "back after power loss");
    CHECK(wait_for(&s, "^BOOT:", 2, NULL, 0) == 1, "^BOOT after power loss");
    CHECK(wait_for(&s, "^RSSI:", 2, NULL, 0) == 1, "last boot URC");
    CMD(&s, "AT^FOTADLQ", "^FOTADLQ: 1,\"IMAGE\",1324,1324", "^FOTADLQ: 2,\"XNV\",28676,77790", "OK");
    CHECK(wait_for(&s, "^FOTASTATE:", 2, l, sizeof l) == 1, "state after boot");
    CHECK_STR(l, "^FOTASTATE: 31");
    CMD(&s, "AT+CMEE?", "+CMEE: 2", "OK"); /* echo on and CMEE back to default after boot */
    CMD(&s, "AT^FOTAMODE?", "^FOTAMODE: 0,0,0,1,7", "OK"); /* FOTA settings survive */
    CMD(&s, "AT^FOTADLQ", "^FOTADLQ: 1,\"IMAGE\",1324,1324", "^FOTADLQ: 2,\"XNV\",28676,77790", "OK");
    CMD(&s, "AT^FOTADL=1", "OK", "^FOTASTATE: 30");
    EXPECT(&s, "^FOTASTATE: 40");
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 40", "OK");
    CMD(&s, "AT^FWUP", "OK", "^FOTASTATE: 50");
    CHECK(wait_hup(&s, 3) == 1, "upgrade reset");
    CHECK(port_reopen(&s, 0, 3) == 0, "back after upgrade");
    CHECK(wait_for(&s, "^FOTASTATE:", 2, l, sizeof l) == 1, "state after upgrade");
    CHECK_STR(l, "^FOTASTATE: 90");
    CMD(&s, "AT+GMR", "12.815.03.02.00", "OK");
    CHECK_INT(log_count(&s, "\"dir\":\"rx\",\"line\":\"AT^FWUP\""), 1);
    CHECK_INT(log_count(&s, "\"fault\":\"power-loss\",\"state\":30,\"byte\":30000"), 1);
    sim_stop(&s);

    /* power loss, resume off: back to 10 */
    REQUIRE(sim_start(&s, 1, "--power-loss", "byte=30000", NULL) == 0, "sim starts");
    port_open(&s, 0);
    to_download(&s, "0,0,0,0");
    CHECK(wait_hup(&s, 3) == 1, "power loss: hang-up");
    CHECK(port_reopen(&s, 0, 3) == 0, "back");
    CHECK(wait_for(&s, "^FOTASTATE:", 2, l, sizeof l) == 1, "state after boot");
    CHECK_STR(l, "^FOTASTATE: 10");
    CMD(&s, "AT^FOTADLQ", "ERROR");
    sim_stop(&s);

    /* power loss on a command: no answer, the port goes */
    REQUIRE(sim_start(&s, 1, "--power-loss", "cmd=FOTADL", NULL) == 0, "sim starts");
    port_open(&s, 0);
    CMD(&s, "AT^FOTADET", "OK", "^FOTASTATE: 11", STATE12);
    send_cmd(&s, "AT^FOTADL=1");
    EXPECT(&s, "AT^FOTADL=1");
    CHECK(wait_hup(&s, 2) == 1, "power loss on FOTADL: hang-up without reply");
    CHECK_INT(log_count(&s, "\"kind\":\"final\""), 1);
    CHECK(port_reopen(&s, 0, 3) == 0, "back");
    CHECK(wait_for(&s, "^FOTASTATE:", 2, l, sizeof l) == 1, "state after boot");
    CHECK_STR(l, "^FOTASTATE: 10");
    CMD(&s, "AT", "OK");
    sim_stop(&s);

    /* power loss in state 40: the delta is applied at the next boot */
    REQUIRE(sim_start(&s, 1, "--power-loss", "state=40", NULL) == 0, "sim starts");
    port_open(&s, 0);
    to_download(&s, "0,0,0,1");
    EXPECT(&s, "^FOTASTATE: 40");
    CHECK(wait_hup(&s, 2) == 1, "power loss at 40");
    CHECK(port_reopen(&s, 0, 3) == 0, "back");
    CHECK(wait_for(&s, "^FOTASTATE:", 2, l, sizeof l) == 1, "state after boot");
    CHECK_STR(l, "^FOTASTATE: 50");
    CHECK(wait_hup(&s, 2) == 1, "upgrade reset");
    CHECK(port_reopen(&s, 0, 3) == 0, "back");
    CHECK(wait_for(&s, "^FOTASTATE:", 2, l, sizeof l) == 1, "state after upgrade");
    CHECK_STR(l, "^FOTASTATE: 90");
    sim_stop(&s);

    /* power loss in state 50 (before the upgrade reset), from a time trigger elsewhere */
    REQUIRE(sim_start(&s, 1, "--closed-port", "keep", "--power-loss", "state=50", "--boot-time", "10", NULL) == 0, "sim starts");
    port_open(&s, 0);
    to_download(&s, "0,0,1,1");
    EXPECT(&s, "^FOTASTATE: 40", "^FOTASTATE: 50");
    CHECK(wait_hup(&s, 2) == 1, "power loss at 50");
    CHECK(port_reopen(&s, 0, 3) == 0, "back");
    CHECK(wait_for(&s, "^RSSI:", 2, NULL, 0) == 1, "last boot URC");
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 40", "OK"); /* before the post-boot report */
    CHECK(wait_for(&s, "^FOTASTATE:", 2, l, sizeof l) == 1, "state after boot");
    CHECK_STR(l, "^FOTASTATE: 50");
    CHECK(wait_hup(&s, 2) == 1, "upgrade reset");
    CHECK(port_reopen(&s, 0, 3) == 0, "back");
    CHECK(wait_for(&s, "^FOTASTATE:", 2, l, sizeof l) == 1, "state after upgrade");
    CHECK_STR(l, "^FOTASTATE: 90");
    CHECK_INT(log_count(&s, "\"ev\":\"reset\",\"reason\":\"power-loss\",\"state\":50"), 1);
    CHECK_INT(log_count(&s, "\"ev\":\"reset\",\"reason\":\"upgrade\""), 1);
    sim_stop(&s);

    /* power loss at a time, while idle: boot, ^FOTASTATE: 10 */
    REQUIRE(sim_start(&s, 1, "--power-loss", "time=3", NULL) == 0, "sim starts");
    port_open(&s, 0);
    CHECK(wait_hup(&s, 2) == 1, "power loss at t=3");
    CHECK(port_reopen(&s, 0, 3) == 0, "back");
    CHECK(wait_for(&s, "^FOTASTATE:", 2, l, sizeof l) == 1, "state after boot");
    CHECK_STR(l, "^FOTASTATE: 10");
    sim_stop(&s);

    /* upgrade failure after the reset: 80 and the old version */
    REQUIRE(sim_start(&s, 1, "--upgrade-fail", "80", "--lose-state", "40", NULL) == 0, "sim starts");
    port_open(&s, 0);
    to_download(&s, "0,0,1,1");
    EXPECT(&s, "^FOTASTATE: 50"); /* 40 lost */
    CHECK(wait_hup(&s, 2) == 1, "upgrade reset");
    CHECK(port_reopen(&s, 0, 3) == 0, "back");
    CHECK(wait_for(&s, "^FOTASTATE:", 2, l, sizeof l) == 1, "state after upgrade");
    CHECK_STR(l, "^FOTASTATE: 80");
    CMD(&s, "AT+GMR", "12.815.03.01.00", "OK");
    CHECK_INT(log_count(&s, "\"fault\":\"lose-state\",\"state\":40"), 1);
    sim_stop(&s);
}

/* The boot report after a power loss tells the state at boot: a command the host
 * sends during --boot-time comes after the boot, and the late report must not
 * override what it started (S1: 11 -> 10 -> 12, 30 -> 31 -> 40, 40 -> 10 -> 50). */
static void test_boot_report_order(void)
{
    sim s;
    char l[4096];
    /* lost in 12: boots in 10; a query started before the report goes on to 12 */
    REQUIRE(sim_start(&s, 1, "--closed-port", "keep", "--power-loss", "state=12", "--boot-time", "20", "--detect-time", "30",
                    NULL) == 0, "sim starts");
    port_open(&s, 0);
    CMD(&s, "AT^FOTADET", "OK", "^FOTASTATE: 11");
    CHECK(wait_hup(&s, 3) == 1, "power loss at 12");
    CHECK(port_reopen(&s, 0, 3) == 0, "back");
    CHECK(wait_for(&s, "^RSSI:", 2, NULL, 0) == 1, "last boot URC");
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 10", "OK");
    CMD(&s, "AT^FOTADET", "OK", "^FOTASTATE: 11");
    EXPECT(&s, STATE12); /* no stale ^FOTASTATE: 10 in between */
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 12", "OK");
    CHECK_INT(log_count(&s, "\"ev\":\"state\",\"state\":10"), 1); /* the state at boot only */
    CHECK_INT(log_count(&s, "\"ev\":\"boot-report\",\"what\":\"superseded\",\"state\":11"), 1);
    sim_stop(&s);

    /* lost in 30 with resume on: boots in 31; a resume before the report goes on to 40 */
    REQUIRE(sim_start(&s, 1, "--closed-port", "keep", "--power-loss", "byte=30000", "--boot-time", "20", "--rate", "2000",
                    NULL) == 0, "sim starts");
    port_open(&s, 0);
    to_download(&s, "0,0,0,1");
    CHECK(wait_hup(&s, 3) == 1, "power loss at byte 30000");
    CHECK(port_reopen(&s, 0, 3) == 0, "back");
    CHECK(wait_for(&s, "^RSSI:", 2, NULL, 0) == 1, "last boot URC");
    CMD(&s, "AT^FOTADL=1", "OK", "^FOTASTATE: 30");
    EXPECT(&s, "^FOTASTATE: 40"); /* no stale ^FOTASTATE: 31 in between */
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 40", "OK");
    CHECK_INT(log_count(&s, "\"ev\":\"state\",\"state\":31"), 1);
    sim_stop(&s);

    /* lost in 40: boots in 40; an image discarded before the report is not applied */
    REQUIRE(sim_start(&s, 1, "--closed-port", "keep", "--power-loss", "state=40", "--boot-time", "20", NULL) == 0, "sim starts");
    port_open(&s, 0);
    to_download(&s, "0,0,0,1");
    EXPECT(&s, "^FOTASTATE: 40");
    CHECK(wait_hup(&s, 2) == 1, "power loss at 40");
    CHECK(port_reopen(&s, 0, 3) == 0, "back");
    CHECK(wait_for(&s, "^RSSI:", 2, NULL, 0) == 1, "last boot URC");
    CMD(&s, "AT^FOTADL=0", "OK");
    CHECK(next_nn(&s, l, sizeof l, 1.2) == 0, "no boot report nor upgrade after the discard (got %s)", l);
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 10", "OK");
    CMD(&s, "AT+GMR", "12.815.03.01.00", "OK");
    CHECK_INT(log_count(&s, "\"ev\":\"state\",\"state\":50"), 0);
    sim_stop(&s);
}

static void test_auto(void)
{
    sim s;
    char desc[1400], want[1500], l[4096];
    for (int i = 0; i < 5; i++) {
        memset(desc + i * 256, 'a' + i, 255);
        desc[i * 256 + 255] = ';';
    }
    desc[5 * 256 - 1] = '\0';
    snprintf(want, sizeof want, "^FOTASTATE: 12,12.815.03.02.00,79114,\"%s\"", desc);
    REQUIRE(sim_start(&s, 1, "--description", desc, "--name", "ttyHW7", NULL) == 0, "sim starts");
    CHECK(strstr(s.path[0], "/ttyHW7") != NULL, "--name: %s", s.path[0]);
    port_open(&s, 0);
    CMD(&s, "AT^FOTAMODE=0,1,1,1", "OK");
    CMD(&s, "AT^FOTADET", "OK", "^FOTASTATE: 11", want, "^FOTASTATE: 30", "^FOTASTATE: 40",
        "^FOTASTATE: 50");
    CHECK(wait_hup(&s, 2) == 1, "automatic upgrade reset");
    CHECK(port_reopen(&s, 0, 3) == 0, "back");
    CHECK(wait_for(&s, "^FOTASTATE:", 2, l, sizeof l) == 1, "state after upgrade");
    CHECK_STR(l, "^FOTASTATE: 90");
    CMD(&s, "ATI", "Manufacturer: Huawei Technologies Co., Ltd.", "Model: MU509-b",
        "Revision: 12.815.03.02.00", "IMEI: 867530900000009", "+GCAP: +CGSM,+DS,+ES", "OK");
    CHECK_INT(log_count(&s, "\"dir\":\"rx\""), 3);
    sim_stop(&s);
}

static void test_auto_query(void)
{
    sim s;
    REQUIRE(sim_start(&s, 1, "--no-new-version", "--day", "5", "--detect-time", "6", NULL) == 0, "sim starts");
    port_open(&s, 0);
    CMD(&s, "AT^FOTAMODE=1,0,0,0,1", "OK", "^FOTASTATE: 11");
    EXPECT(&s, "^FOTASTATE: 14", "^FOTASTATE: 11", "^FOTASTATE: 14", "^FOTASTATE: 11");
    CMD(&s, "AT^FOTAMODE=0,0,0,0,1", "OK");
    EXPECT(&s, "^FOTASTATE: 14");
    char l[4096];
    CHECK(next_line(&s, l, sizeof l, 0.4) == 0, "no query after auto query is off (got %s)", l);
    CHECK(log_count(&s, "\"ev\":\"auto-query\"") >= 2, "auto queries logged");
    sim_stop(&s);
}

static void test_port_faults(void)
{
    sim s;
    char l[4096];
    /* port gone for a while: no boot, settings kept */
    REQUIRE(sim_start(&s, 1, "--port-gone", "cmd=CSQ", "--port-gone-for", "6", NULL) == 0, "sim starts");
    port_open(&s, 0);
    CMD(&s, "ATE0", "OK");
    send_cmd(&s, "AT+CSQ");
    CHECK(wait_hup(&s, 2) == 1, "port gone: hang-up");
    struct stat sb;
    CHECK(lstat(s.path[0], &sb) < 0, "link removed while gone");
    CHECK(port_reopen(&s, 0, 3) == 0, "port back");
    CMD0(&s, "AT+CSQ", "+CSQ: 20,99", "OK");
    CHECK_INT(log_count(&s, "\"ev\":\"boot\""), 1);
    sim_stop(&s);

    /* port gone for good */
    REQUIRE(sim_start(&s, 1, "--port-gone", "time=2", "--port-gone-for", "-1", NULL) == 0, "sim starts");
    port_open(&s, 0);
    CHECK(wait_hup(&s, 2) == 1, "port gone for good: hang-up");
    CHECK(port_reopen(&s, 0, 0.6) < 0, "port stays gone");
    sim_stop(&s);

    /* no answer for a while after a command; the reply comes late, then the queue */
    REQUIRE(sim_start(&s, 1, "--hang", "cmd=AT+CSQ", "--hang-for", "10", NULL) == 0, "sim starts");
    port_open(&s, 0);
    double t0 = now_s();
    send_cmd(&s, "AT+CSQ");
    EXPECT(&s, "AT+CSQ");
    CHECK(next_line(&s, l, sizeof l, 0.15) == 0, "no answer while hanging (got %s)", l);
    send_cmd(&s, "AT");
    EXPECT(&s, "AT", "+CSQ: 20,99", "OK", "OK");
    CHECK(now_s() - t0 >= 0.27, "late reply after the hang (%.2f s)", now_s() - t0);
    CMD(&s, "AT+CSQ", "+CSQ: 20,99", "OK");
    sim_stop(&s);

    /* hang with rejection: other commands fail at once, the late reply still comes */
    REQUIRE(sim_start(&s, 1, "--hang", "cmd=FOTADET", "--hang-for", "10", "--hang-reject", NULL) == 0, "sim starts");
    port_open(&s, 0);
    send_cmd(&s, "AT^FOTADET");
    EXPECT(&s, "AT^FOTADET");
    CMD(&s, "AT^FOTASTATE?", "+CME ERROR: Previous command is not complete");
    EXPECT(&s, "OK", "^FOTASTATE: 11");
    CHECK_INT(log_count(&s, "\"dir\":\"rx\""), 2);
    sim_stop(&s);

    /* garbage bytes before every 2nd line; the OK still arrives */
    REQUIRE(sim_start(&s, 1, "--garbage", "2", NULL) == 0, "sim starts");
    port_open(&s, 0);
    CMD(&s, "ATE0", "OK");
    send_cmd(&s, "AT+GMR");
    int odd = 0, ok = 0;
    for (int i = 0; i < 4 && next_line(&s, l, sizeof l, 0.5) == 1; i++) {
        for (char *p = l; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) { odd = 1; break; }
        if (!strcmp(l, "OK")) { ok = 1; break; }
    }
    CHECK(odd, "garbage bytes seen");
    CHECK(ok, "OK still seen");
    CHECK(log_count(&s, "\"fault\":\"garbage\"") >= 1, "garbage logged");
    sim_stop(&s);

    /* a byte dropped from every line */
    REQUIRE(sim_start(&s, 1, "--drop", "1", NULL) == 0, "sim starts");
    port_open(&s, 0);
    send_cmd(&s, "AT+GMR");
    EXPECT(&s, "AT+GMR");
    next_line(&s, l, sizeof l, 1);
    CHECK(strlen(l) == strlen("12.815.03.01.00") - 1, "version line short by one: %s", l);
    CHECK(log_count(&s, "\"fault\":\"drop\"") >= 1, "drop logged");
    sim_stop(&s);
}

/* --resume-needs-mode (guide 2.3.3): after a boot, a download pending in 31 continues
 * the remained data only after AT^FOTAMODE with resume=1; without it AT^FOTADL=1
 * starts over from zero (on, the default); off resumes anyway. */
static void test_resume_needs_mode(void)
{
    sim s;
    char l[4096];
    for (int variant = 0; variant < 3; variant++) {
        /* 0: default, no mode after the boot; 1: default, mode after the boot;
         * 2: --resume-needs-mode off, no mode */
        if (variant == 2)
            /* keep: the boot URCs are read after the reopen */
            REQUIRE(sim_start(&s, 1, "--closed-port", "keep", "--power-loss", "byte=30000", "--resume-needs-mode", "off",
                            NULL) == 0, "sim starts");
        else
            REQUIRE(sim_start(&s, 1, "--closed-port", "keep", "--power-loss", "byte=30000", NULL) == 0, "sim starts");
        port_open(&s, 0);
        to_download(&s, "0,0,0,1");
        CHECK(wait_hup(&s, 3) == 1, "power loss: hang-up");
        CHECK(port_reopen(&s, 0, 3) == 0, "back after power loss");
        CHECK(wait_for(&s, "^RSSI:", 2, NULL, 0) == 1, "last boot URC");
        CHECK(wait_for(&s, "^FOTASTATE:", 2, l, sizeof l) == 1, "state after boot");
        CHECK_STR(l, "^FOTASTATE: 31");
        if (variant == 1)
            CMD(&s, "AT^FOTAMODE=0,0,0,1", "OK");
        CMD(&s, "AT^FOTADL=1", "OK", "^FOTASTATE: 30");
        CMD(&s, "AT^FOTADL=2", "OK", "^FOTASTATE: 31");   /* freeze the count */
        int from_zero = variant == 0;
        CHECK_INT(log_count(&s, "\"ev\":\"resume\",\"what\":\"from-zero\",\"byte\":30000"), from_zero);
        CHECK_INT(log_count(&s, "\"ev\":\"resume\",\"what\":\"continued\",\"byte\":30000"), !from_zero);
        send_cmd(&s, "AT^FOTADLQ");
        CHECK(wait_for(&s, "^FOTADLQ: 2", 2, l, sizeof l) == 1, "progress");
        long xnv = -1;
        sscanf(l, "^FOTADLQ: 2,\"XNV\",%ld", &xnv);
        if (from_zero)
            CHECK(xnv < 28676, "downloaded from zero again (XNV %ld)", xnv);
        else
            CHECK(xnv >= 28676, "continued from the remained data (XNV %ld)", xnv);
        sim_stop(&s);
    }
}

/* --port-swap: the same path comes back as another module (other IMEI, its own state). */
static void test_port_swap(void)
{
    sim s;
    char a[64] = "", b[64] = "";
    REQUIRE(sim_start(&s, 1, "--port-swap", "cmd=FWUP", NULL) == 0, "sim starts");
    port_open(&s, 0);
    send_cmd(&s, "AT+CGSN");
    EXPECT(&s, "AT+CGSN");
    CHECK(next_line(&s, a, sizeof a, 1) == 1 && luhn_ok(a), "IMEI of module A: %s", a);
    EXPECT(&s, "OK");
    to_download(&s, "0,0,0,1");
    EXPECT(&s, "^FOTASTATE: 40");
    send_cmd(&s, "AT^FWUP");
    EXPECT(&s, "AT^FWUP");
    CHECK(wait_hup(&s, 2) == 1, "port swap: hang-up");
    CHECK(port_reopen(&s, 0, 3) == 0, "the same path is back");
    send_cmd(&s, "AT+CGSN");
    EXPECT(&s, "AT+CGSN");
    CHECK(next_line(&s, b, sizeof b, 1) == 1 && luhn_ok(b), "IMEI of module B: %s", b);
    EXPECT(&s, "OK");
    CHECK(strcmp(a, b) != 0, "another module answers (%s vs %s)", a, b);
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 40", "OK");
    CMD(&s, "AT+GMR", "12.815.03.01.00", "OK");   /* --version-from */
    CHECK(next_line(&s, a, sizeof a, 0.3) == 0, "no boot report, nothing applied (got %s)", a);
    CHECK_INT(log_count(&s, "\"fault\":\"port-swap\""), 1);
    CHECK_INT(log_count(&s, "\"swapped\":true"), 4);   /* boot + 3 commands */
    CHECK_INT(log_count(&s, "\"line\":\"AT+CGSN\",\"swapped\":true"), 1);
    CHECK_INT(log_count(&s, "\"ev\":\"reset\""), 0);
    sim_stop(&s);

    /* at a byte of the download, into an idle module */
    REQUIRE(sim_start(&s, 1, "--port-swap", "byte=20000", "--swap-state", "10", NULL) == 0, "sim starts");
    port_open(&s, 0);
    to_download(&s, "0,0,0,1");
    CHECK(wait_hup(&s, 3) == 1, "port swap during the download: hang-up");
    CHECK(port_reopen(&s, 0, 3) == 0, "the same path is back");
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 10", "OK");
    CMD(&s, "AT^FOTADLQ", "ERROR");
    CHECK_INT(log_count(&s, "\"fault\":\"port-swap\",\"state\":30"), 1);
    sim_stop(&s);
}

/* Open module 0, start a detection (its 12 comes --detect-time model s later) and
 * close the port before the 12: it is sent while no host holds the port. */
static void detect_then_close(sim *s)
{
    REQUIRE(port_open(s, 0) == 0, "open");
    CMD(s, "AT", "OK");
    CMD(s, "AT^FOTADET", "OK", "^FOTASTATE: 11");
    close(s->fd);
    s->fd = -1;
}

/* --closed-port keep: what is sent while no host holds the port waits in the pty
 * buffer and is read on the next open (a pty's behaviour, not a USB port's) */
static void test_closed_port_keep(void)
{
    sim s;
    char l[4096];
    REQUIRE(sim_start(&s, 1, "--closed-port", "keep", "--detect-time", "10", NULL) == 0, "sim starts");
    detect_then_close(&s);
    /* the 12 is sent while the port is closed */
    CHECK(wait_log(&s, "\"ev\":\"state\",\"state\":12", 1, 5), "12 while closed");
    REQUIRE(port_open(&s, 0) == 0, "reopen");
    CHECK(next_line(&s, l, sizeof l, 2) == 1 && !strcmp(l, STATE12), "the 12 kept for the next open "
          "(got %s)", l);
    CHECK_INT(log_count(&s, "\"ev\":\"lost\""), 0);
    sim_stop(&s);
}

/* --closed-port drop (the default): what is sent while no host holds the port is lost;
 * then the same with keep */
static void test_closed_port(void)
{
    sim s;
    char l[4096];
    REQUIRE(sim_start(&s, 1, "--detect-time", "10", NULL) == 0, "sim starts (default: drop)");
    sleep_s(0.05);
    detect_then_close(&s);
    /* the 12 is sent (and lost) while the port is closed */
    CHECK(wait_log(&s, "\"ev\":\"lost\",\"kind\":\"urc\",\"line\":\"^FOTASTATE: 12,", 1, 5), "12 lost");
    REQUIRE(port_open(&s, 0) == 0, "reopen");
    CHECK(next_line(&s, l, sizeof l, 0.1) == 0, "nothing stale after reopen (got %s)", l);
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 12", "OK");
    CHECK_INT(log_count(&s, "\"ev\":\"lost\",\"kind\":\"urc\",\"line\":\"^FOTASTATE: 12,"), 1);
    CHECK(log_count(&s, "\"ev\":\"host\",\"what\":\"closed\"") == 1, "host close seen");
    /* the upgrade reset still hangs up the host, and the path returns */
    CMD(&s, "AT^FOTAMODE=0,1,1,1", "OK");
    CMD(&s, "AT^FOTADL=1", "OK", "^FOTASTATE: 30", "^FOTASTATE: 40", "^FOTASTATE: 50");
    CHECK(wait_hup(&s, 2) == 1, "reset hang-up");
    CHECK(port_reopen(&s, 0, 3) == 0, "back");
    sleep_s(0.2); /* 90 is sent (or lost, if sent before the open) */
    while (next_line(&s, l, sizeof l, 0.05) == 1) ;
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 90", "OK");
    CMD(&s, "AT+GMR", "12.815.03.02.00", "OK");
    sim_stop(&s);
    test_closed_port_keep();
}

/* The port disappears during the download: URCs are lost, the module goes on. */
static void test_gone_during_download(void)
{
    sim s;
    REQUIRE(sim_start(&s, 1, "--port-gone", "byte=20000", "--port-gone-for", "30", NULL) == 0, "sim starts");
    port_open(&s, 0);
    to_download(&s, "0,0,0,1");
    CHECK(wait_hup(&s, 2) == 1, "port gone during download");
    CHECK(port_reopen(&s, 0, 3) == 0, "port back");
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 40", "OK");
    CHECK_INT(log_count(&s, "\"ev\":\"lost\",\"kind\":\"urc\",\"line\":\"^FOTASTATE: 40\""), 1);
    CHECK_INT(log_count(&s, "\"ev\":\"boot\""), 1);
    sim_stop(&s);
}

static void test_noise(void)
{
    sim s;
    char l[4096];
    REQUIRE(sim_start(&s, 1, "--noise", "80", "--seed", "7", NULL) == 0, "sim starts");
    port_open(&s, 0);
    noise_seen = 0;
    CMD(&s, "ATE0", "OK");
    int inner = 0;
    for (int i = 0; i < 12; i++) {
        send_cmd(&s, "AT+GMR");
        CHECK(next_nn(&s, l, sizeof l, 1) == 1 && !strcmp(l, "12.815.03.01.00"), "version: %s", l);
        int before = noise_seen;
        CHECK(next_nn(&s, l, sizeof l, 1) == 1 && !strcmp(l, "OK"), "OK: %s", l);
        if (noise_seen > before) inner++;
    }
    CHECK(noise_seen > 0, "noise seen (%d)", noise_seen);
    CHECK(inner > 0, "noise inside a response (%d)", inner);
    /* raw bytes: some URCs end in CR CR LF (echo is off, so none comes from echo) */
    s.len = 0;
    s.buf[0] = '\0';
    double end = now_s() + 5;   /* until one comes (bounded), not a fixed window */
    while (now_s() < end && !strstr(s.buf, "\r\r\n") && s.len + 1 < sizeof s.buf) {
        fill(&s, 0.05);
        s.buf[s.len] = '\0';
    }
    CHECK(strstr(s.buf, "\r\r\n") != NULL, "CR CR LF endings");
    CHECK(log_count(&s, "\"kind\":\"noise\"") > 0, "noise logged");
    /* ^CURC=0 silences it */
    CMD0(&s, "AT^CURC=0", "OK");
    sleep_s(0.05);
    s.len = 0;
    while (fill(&s, 0.05) > 0) ;
    s.len = 0;
    CHECK(next_line(&s, l, sizeof l, 0.3) == 0, "quiet after ^CURC=0 (got %s)", l);
    sim_stop(&s);
}

static void test_many(void)
{
    sim s;
    char l[4096], imei[2][64];
    REQUIRE(sim_start(&s, 2, "--fault-modules", "1", "--no-new-version", NULL) == 0, "sim starts with 2");
    CHECK(strstr(s.path[0], "/ttyUSB2") != NULL, "path 0: %s", s.path[0]);
    CHECK(strstr(s.path[1], "/ttyUSB3") != NULL, "path 1: %s", s.path[1]);
    for (int i = 0; i < 2; i++) {
        port_open(&s, i);
        send_cmd(&s, "AT+CGSN");
        EXPECT(&s, "AT+CGSN");
        next_line(&s, l, sizeof l, 1);
        snprintf(imei[i], sizeof imei[i], "%.60s", l);
        EXPECT(&s, "OK");
        CHECK(luhn_ok(imei[i]), "IMEI %d Luhn: %s", i, imei[i]);
        detect(&s);
        EXPECT(&s, i == 0 ? STATE12 : "^FOTASTATE: 14");
    }
    CHECK(strcmp(imei[0], imei[1]) != 0, "distinct IMEIs");
    port_open(&s, 0);
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 12", "OK");
    CHECK(log_count(&s, "\"m\":1,\"dir\":\"rx\"") == 2, "module 1's commands logged as m=1");
    sim_stop(&s);

    /* per-module faults from scenario sections */
    char scen[200];
    snprintf(scen, sizeof scen, "/tmp/hwfota-simtest-fleet.%d", (int)getpid());
    FILE *f = fopen(scen, "w");
    if (f) {
        fputs("detect-time = 2\ngarbage = 0\n[module 1]\nno-new-version = 1\n"
              "[modules 2,3]\ndetect-fail = 22\n[module 3]\ndata-session = 1\n[all]\nboot-time = 2\n", f);
        fclose(f);
    }
    REQUIRE(sim_start(&s, 4, "--scenario", scen, NULL) == 0, "sim starts with a fleet scenario");
    const char *want[] = {STATE12, "^FOTASTATE: 14", "^FOTASTATE: 13,22"};
    for (int i = 0; i < 3; i++) {
        port_open(&s, i);
        detect(&s);
        EXPECT(&s, want[i]);
    }
    port_open(&s, 3);
    CMD(&s, "AT^FOTADET", "+CME ERROR: FOTA is in collision state");
    sim_stop(&s);
    f = fopen(scen, "w");
    if (f) { fputs("[module 1]\nrate = 5\n", f); fclose(f); }
    CHECK(sim_start(&s, 2, "--scenario", scen, NULL) != 0, "non-fault key in a section rejected");
    if (s.pid > 0) waitpid(s.pid, NULL, 0);
    s.pid = 0;
    sim_stop(&s);
    unlink(scen);
}

/* SMS: delivery into SIM storage, +CMTI as AT+CNMI allows, text-mode reads, deletion. */
static void test_sms(void)
{
    sim s;
    char l[4096];
    /* model seconds x 0.03: time=2 is 0.06 s, time=30 0.9 s, time=60 1.8 s */
    REQUIRE(sim_start(&s, 1, "--sms", "time=0:+8613800000000:FOTA UPGRADE", "--sms",
                    "time=30:+4915112345678:hello, world: 1", "--urc", "time=60:+CMTI: \"SM\",1;AT^FWUP",
                    "--sms", "cmd=FOTADET:+100:after detect", "--sms", "state=30:+200:during download",
                    "--sms-slots", "4", NULL) == 0, "sim starts with --sms");
    REQUIRE(port_open(&s, 0) == 0, "open");
    CHECK(wait_log(&s, "\"what\":\"delivered\",\"index\":0,\"from\":\"+8613800000000\"", 1, 5),
          "the time=0 SMS stored");
    CMD(&s, "AT+CNMI?", "+CNMI: 0,0,0,0,0", "OK");
    CMD(&s, "AT+CMGF?", "+CMGF: 0", "OK");
    CMD(&s, "AT+CMGR=0", "+CMS ERROR: 303"); /* PDU mode reads: not simulated */
    CMD(&s, "AT+CMGF=1", "OK");
    CMD(&s, "AT+CMGF=2", "+CMS ERROR: 305");
    CMD(&s, "AT+CPMS?", "+CPMS: \"SM\",1,4,\"SM\",1,4,\"SM\",1,4", "OK");
    CMD(&s, "AT+CPMS=\"SM\",\"SM\",\"SM\"", "+CPMS: 1,4,1,4,1,4", "OK");
    CMD(&s, "AT+CPMS=\"ME\"", "+CMS ERROR: 302");
    /* delivered while CNMI was off: stored, no indication; the host lists it */
    CMD(&s, "AT+CMGL=\"REC UNREAD\"", "+CMGL: 0,\"REC UNREAD\",\"+8613800000000\",,\"24/11/25,10:00:00+32\"",
        "FOTA UPGRADE", "OK");
    CMD(&s, "AT+CMGL=\"REC UNREAD\"", "OK");
    CMD(&s, "AT+CMGR=0", "+CMGR: \"REC READ\",\"+8613800000000\",,\"24/11/25,10:00:00+32\"", "FOTA UPGRADE",
        "OK");
    CMD(&s, "AT+CNMI=2,1,0,0,0", "OK");
    CMD(&s, "AT+CNMI=2,1,1,0,0", "+CMS ERROR: 305");
    CMD(&s, "AT+CNMI?", "+CNMI: 2,1,0,0,0", "OK");
    CHECK(wait_for(&s, "+CMTI:", 3, l, sizeof l) == 1, "+CMTI after AT+CNMI=2,1");
    CHECK_STR(l, "+CMTI: \"SM\",1");
    CMD(&s, "AT+CMGR=1", "+CMGR: \"REC UNREAD\",\"+4915112345678\",,\"24/11/25,10:00:30+32\"",
        "hello, world: 1", "OK");
    CMD(&s, "AT+CMGR=1", "+CMGR: \"REC READ\",\"+4915112345678\",,\"24/11/25,10:00:30+32\"",
        "hello, world: 1", "OK");
    CHECK(wait_for(&s, "+CMTI:", 3, l, sizeof l) == 1, "--urc line");
    CHECK_STR(l, "+CMTI: \"SM\",1;AT^FWUP");
    CMD(&s, "AT+CMGR=3", "+CMS ERROR: 321");
    CMD(&s, "AT+CMGR=4", "+CMS ERROR: 321");
    CMD(&s, "AT+CMGR=x", "+CMS ERROR: 305");
    CMD(&s, "AT+CMGL=\"BOGUS\"", "+CMS ERROR: 305");
    CMD(&s, "AT+CMGD=?", "+CMGD: (0-3),(0-4)", "OK");
    CMD(&s, "AT+CMGD=0", "OK");
    CMD(&s, "AT+CMGD=0", "OK");          /* empty slot */
    CMD(&s, "AT+CMGD=4", "+CMS ERROR: 321");
    CMD(&s, "AT+CMGL=\"ALL\"", "+CMGL: 1,\"REC READ\",\"+4915112345678\",,\"24/11/25,10:00:30+32\"",
        "hello, world: 1", "OK");
    /* cmd= delivers after the command's response; state= after the state's URC */
    CMD(&s, "AT^FOTADET", "OK", "^FOTASTATE: 11", "+CMTI: \"SM\",0");
    EXPECT(&s, STATE12);
    CMD(&s, "AT^FOTADL=1", "OK", "^FOTASTATE: 30", "+CMTI: \"SM\",2");
    CMD(&s, "AT+CPMS?", "+CPMS: \"SM\",3,4,\"SM\",3,4,\"SM\",3,4", "OK");
    CMD(&s, "AT+CMGD=0,1", "OK");         /* every read message */
    send_cmd(&s, "AT+CMGL=\"ALL\"");
    EXPECT(&s, "AT+CMGL=\"ALL\"");
    next_nn(&s, l, sizeof l, 2);          /* time stamps of cmd=/state= SMS: model time now */
    CHECK(!strncmp(l, "+CMGL: 0,\"REC UNREAD\",\"+100\",,\"24/11/25,10:0", 38), "listed: %s", l);
    EXPECT(&s, "after detect");
    next_nn(&s, l, sizeof l, 2);
    CHECK(!strncmp(l, "+CMGL: 2,\"REC UNREAD\",\"+200\",,\"24/11/25,10:0", 38), "listed: %s", l);
    EXPECT(&s, "during download", "OK");
    CMD(&s, "AT+CMGD=0,4", "OK");
    CMD(&s, "AT+CMGL=\"ALL\"", "OK");
    CHECK_INT(log_count(&s, "\"ev\":\"sms\",\"what\":\"delivered\""), 4);
    CHECK_INT(log_count(&s, "\"what\":\"delivered\",\"index\":0,\"from\":\"+8613800000000\",\"text\":\"FOTA UPGRADE\",\"cmti\":false"), 1);
    CHECK_INT(log_count(&s, "\"what\":\"delivered\",\"index\":1,\"from\":\"+4915112345678\",\"text\":\"hello, world: 1\",\"cmti\":true"), 1);
    CHECK_INT(log_count(&s, "\"ev\":\"sms\",\"what\":\"read\",\"index\":0,\"by\":\"CMGL\",\"was\":\"unread\""), 2); /* slot 0 twice */
    CHECK_INT(log_count(&s, "\"ev\":\"sms\",\"what\":\"read\",\"index\":1,\"by\":\"CMGR\""), 2);
    CHECK_INT(log_count(&s, "\"ev\":\"sms\",\"what\":\"deleted\""), 4);
    CHECK_INT(log_count(&s, "\"fault\":\"urc\""), 1);
    sim_stop(&s);

    /* full storage; SIM PIN; storage survives the upgrade reset, CNMI/CMGF do not */
    REQUIRE(sim_start(&s, 1, "--sms-slots", "2", "--sms", "time=0:111:one", "--sms", "time=1:222:two",
                    "--sms", "state=50:333:three", "--sms", "byte=40000:444:four", "--sim-pin", NULL) == 0,
          "sim starts");
    REQUIRE(port_open(&s, 0) == 0, "open");
    CHECK(wait_log(&s, "\"reason\":\"sim-locked\"", 2, 5), "both time= SMS refused (SIM locked)");
    CMD(&s, "AT+CMGF=1", "OK");
    CMD(&s, "AT+CMGR=0", "+CMS ERROR: 311");
    CMD(&s, "AT+CPIN=\"1234\"", "OK");
    CMD(&s, "AT+CMGL=\"ALL\"", "OK");  /* both arrived while the SIM was locked: rejected */
    CHECK_INT(log_count(&s, "\"what\":\"rejected\",\"index\":-1,\"from\":\"111\",\"text\":\"one\",\"reason\":\"sim-locked\""), 1);
    CMD(&s, "AT^FOTAMODE=0,1,1,1", "OK");
    CMD(&s, "AT^FOTADET", "OK", "^FOTASTATE: 11", STATE12, "^FOTASTATE: 30", "^FOTASTATE: 40",
        "^FOTASTATE: 50");
    CHECK(wait_hup(&s, 3) == 1, "reset");
    CHECK(port_reopen(&s, 0, 3) == 0, "back");
    CHECK(wait_for(&s, "^FOTASTATE: 90", 3, NULL, 0) == 1, "upgraded");
    CMD(&s, "AT+CNMI?", "+CNMI: 0,0,0,0,0", "OK");
    CMD(&s, "AT+CMGF?", "+CMGF: 0", "OK");
    CMD(&s, "AT+CMGF=1", "OK");
    CMD(&s, "AT+CPIN=\"1234\"", "OK");
    for (int i = 0; i < 2; i++) {
        send_cmd(&s, i ? "AT+CMGR=1" : "AT+CMGR=0");
        EXPECT(&s, i ? "AT+CMGR=1" : "AT+CMGR=0");
        next_nn(&s, l, sizeof l, 2);
        CHECK(!strncmp(l, i ? "+CMGR: \"REC UNREAD\",\"333\",,\"24/11/25," : "+CMGR: \"REC UNREAD\",\"444\",,\"24/11/25,",
                       35), "kept across the reset: %s", l);
        EXPECT(&s, i ? "three" : "four", "OK");
    }
    CHECK_INT(log_count(&s, "\"what\":\"delivered\",\"index\":0,\"from\":\"444\""), 1); /* byte= */
    sim_stop(&s);

    REQUIRE(sim_start(&s, 1, "--sms-slots", "1", "--sms", "time=0:111:one", "--sms", "time=1:222:two", NULL) == 0,
          "sim starts");
    REQUIRE(port_open(&s, 0) == 0, "open");
    CHECK(wait_log(&s, "\"reason\":\"full\"", 1, 5), "the second SMS refused (storage full)");
    CMD(&s, "AT+CMGF=1", "OK");
    CMD(&s, "AT+CMGL=\"ALL\"", "+CMGL: 0,\"REC UNREAD\",\"111\",,\"24/11/25,10:00:00+32\"", "one", "OK");
    CHECK_INT(log_count(&s, "\"what\":\"rejected\",\"index\":-1,\"from\":\"222\",\"text\":\"two\",\"reason\":\"full\""), 1);
    sim_stop(&s);

    /* bad values are refused */
    const char *bad[] = {"time=1", "time=1:", "time=1:+1", "nope=1:+1:x", "time=1::x", "time=1:a\"b:x",
                         "time=1:123456789012345678901:x", NULL};
    char cmd[1600];
    for (int i = 0; bad[i]; i++) {
        snprintf(cmd, sizeof cmd, "'%s' --dir /tmp/hwfota-simtest-none --sms '%s' >/dev/null 2>&1", sim_bin, bad[i]);
        CHECK(system(cmd) != 0, "--sms %s refused", bad[i]);
    }
}

/* --end-state and --discard-delay/--discard-urc (issue 11.1, 11.2). */
static void test_end_states(void)
{
    sim s;
    char l[4096];
    /* default (keep): 90 persists after the upgrade and refuses detection (collision)
     * until AT^FOTADL=0, which answers OK at once and takes --discard-delay later */
    /* keep: the boot URCs are read after the reopen */
    REQUIRE(sim_start(&s, 1, "--closed-port", "keep", "--discard-delay", "20", NULL) == 0, "sim starts");
    port_open(&s, 0);
    CMD(&s, "AT^FOTAMODE=0,0,1,1", "OK");
    CMD(&s, "AT^FOTADET", "OK", "^FOTASTATE: 11", STATE12);
    CMD(&s, "AT^FOTADL=1", "OK", "^FOTASTATE: 30");
    EXPECT(&s, "^FOTASTATE: 40", "^FOTASTATE: 50");
    CHECK(wait_hup(&s, 3) == 1, "reset");
    CHECK(port_reopen(&s, 0, 3) == 0, "back");
    EXPECT(&s, "^BOOT: 20952350,0,0,0,72", "^SIMST: 1", "^SRVST: 2", "^MODE: 5,4", "^RSSI: 20",
           "^FOTASTATE: 90");
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 90", "OK");
    CMD(&s, "AT^FOTADET", "+CME ERROR: FOTA is in collision state");
    CMD(&s, "AT^FOTADL=0", "OK");
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 90", "OK");     /* not yet: 20 model s */
    CMD(&s, "AT^FOTADL=0", "OK");                         /* again: the wait is not restarted */
    CHECK(next_line(&s, l, sizeof l, 0.9) == 0, "no URC with --discard-urc off: %s", l);
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 10", "OK");
    CHECK_INT(log_count(&s, "\"ev\":\"discard\",\"what\":\"pending\",\"state\":90"), 1);
    CMD(&s, "AT^FOTADET", "OK", "^FOTASTATE: 11", STATE12);
    sim_stop(&s);

    /* keep-all: 14 persists too; --discard-urc on reports the 10 */
    REQUIRE(sim_start(&s, 1, "--end-state", "keep-all", "--no-new-version", "--discard-urc", "on",
                    NULL) == 0, "sim starts");
    port_open(&s, 0);
    CMD(&s, "AT^FOTADET", "OK", "^FOTASTATE: 11", "^FOTASTATE: 14");
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 14", "OK");
    CMD(&s, "AT^FOTADET", "+CME ERROR: FOTA is in collision state");
    CMD(&s, "AT^FOTADL=0", "OK");
    EXPECT(&s, "^FOTASTATE: 10");                          /* 2 model s later */
    CMD(&s, "AT^FOTADET", "OK", "^FOTASTATE: 11", "^FOTASTATE: 14");
    sim_stop(&s);

    /* keep (default): 14 returns to idle as the guide says; idle: 80 detects */
    REQUIRE(sim_start(&s, 1, "--no-new-version", NULL) == 0, "sim starts");
    port_open(&s, 0);
    CMD(&s, "AT^FOTADET", "OK", "^FOTASTATE: 11", "^FOTASTATE: 14");
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 10", "OK");
    sim_stop(&s);
    REQUIRE(sim_start(&s, 1, "--closed-port", "keep", "--end-state", "idle", "--upgrade-fail", "80", "--discard-delay", "0",
                    NULL) == 0, "sim starts");
    port_open(&s, 0);
    CMD(&s, "AT^FOTAMODE=0,0,1,1", "OK");
    CMD(&s, "AT^FOTADET", "OK", "^FOTASTATE: 11", STATE12);
    CMD(&s, "AT^FOTADL=1", "OK", "^FOTASTATE: 30");
    EXPECT(&s, "^FOTASTATE: 40", "^FOTASTATE: 50");
    CHECK(wait_hup(&s, 3) == 1, "reset");
    CHECK(port_reopen(&s, 0, 3) == 0, "back");
    EXPECT(&s, "^BOOT: 20952350,0,0,0,72", "^SIMST: 1", "^SRVST: 2", "^MODE: 5,4", "^RSSI: 20",
           "^FOTASTATE: 80");
    CMD(&s, "AT^FOTADET", "OK", "^FOTASTATE: 11", STATE12);
    CMD(&s, "AT^FOTADL=0", "OK");                          /* delay 0: at once, silently */
    CMD(&s, "AT^FOTASTATE?", "^FOTASTATE: 10", "OK");
    sim_stop(&s);
    /* bad values */
    char cmd[1600];
    snprintf(cmd, sizeof cmd, "'%s' --end-state never --dir /tmp/hwfota-simtest-none >/dev/null 2>&1",
             sim_bin);
    CHECK(system(cmd) != 0, "--end-state never rejected");
    snprintf(cmd, sizeof cmd, "'%s' --discard-urc maybe --dir /tmp/hwfota-simtest-none >/dev/null 2>&1",
             sim_bin);
    CHECK(system(cmd) != 0, "--discard-urc maybe rejected");
}

/* --ttys: several ttys per module, one AT port; --reenumerate next: back under
 * other numbers after a port loss; sidecars tell each tty's USB interface. */
static void sidecar_is(const sim *s, const char *name, const char *want)
{
    char p[400];
    snprintf(p, sizeof p, "%s/%s.usb", s->dir, name);
    char *b = slurp(p);
    CHECK(b && !strcmp(b, want), "%s: %s", p, b ? b : "(missing)");
    free(b);
}

static void test_ttys(void)
{
    sim s;
    char l[4096];
    REQUIRE(sim_start(&s, 1, "--ttys", "modem,diag,pcui,gps", "--name", "ttyUSB0", "--reenumerate",
                    "next", "--port-gone", "cmd=CSQ", "--port-gone-for", "2", NULL) == 0, "sim starts");
    char want[300];
    snprintf(want, sizeof want, "%s/ttyUSB2", s.dir);
    CHECK_STR(s.path[0], want);   /* "ready" names the AT port */
    sidecar_is(&s, "ttyUSB0", "interface=00 class=ff subclass=01 protocol=01 role=modem\n");
    sidecar_is(&s, "ttyUSB1", "interface=01 class=ff subclass=01 protocol=03 role=diag\n");
    sidecar_is(&s, "ttyUSB2", "interface=02 class=ff subclass=01 protocol=02 role=pcui\n");
    sidecar_is(&s, "ttyUSB3", "interface=03 class=ff subclass=01 protocol=05 role=gps\n");
    /* modem: basic AT answered, FOTA refused */
    snprintf(s.path[1], sizeof s.path[1], "%s/ttyUSB0", s.dir);
    CHECK(port_open(&s, 1) == 0, "modem tty opens");
    CMD(&s, "AT", "OK");
    CMD(&s, "AT^FOTADET", "ERROR");
    /* diag: never answers */
    snprintf(s.path[1], sizeof s.path[1], "%s/ttyUSB1", s.dir);
    CHECK(port_open(&s, 1) == 0, "diag tty opens");
    send_cmd(&s, "AT");
    CHECK(next_line(&s, l, sizeof l, 0.3) == 0, "diag silent (got %s)", l);
    /* gps: NMEA sentences */
    snprintf(s.path[1], sizeof s.path[1], "%s/ttyUSB3", s.dir);
    CHECK(port_open(&s, 1) == 0, "gps tty opens");
    CHECK(next_line(&s, l, sizeof l, 1) == 1 && !strncmp(l, "$GPGGA,", 7), "NMEA: %s", l);
    CHECK(log_count(&s, "\"ev\":\"aux\",\"what\":\"rx\",\"role\":\"modem\"") == 2, "modem rx logged");
    CHECK(log_count(&s, "\"ev\":\"aux\",\"what\":\"rx\",\"role\":\"diag\"") == 1, "diag rx logged");
    /* the AT port; a port loss re-enumerates the module 4 numbers on */
    CHECK(port_open(&s, 0) == 0, "pcui opens");
    CMD(&s, "ATE0", "OK");
    send_cmd(&s, "AT+CSQ");
    CHECK(wait_hup(&s, 2) == 1, "port gone: hang-up");
    snprintf(s.path[1], sizeof s.path[1], "%s/ttyUSB6", s.dir);
    CHECK(port_reopen(&s, 1, 3) == 0, "back as ttyUSB6");
    CMD0(&s, "AT", "OK");
    struct stat sb;
    char old[400];
    snprintf(old, sizeof old, "%s/ttyUSB2", s.dir);
    CHECK(lstat(old, &sb) < 0, "ttyUSB2 gone");
    snprintf(old, sizeof old, "%s/ttyUSB0.usb", s.dir);
    CHECK(lstat(old, &sb) < 0, "old sidecar gone");
    sidecar_is(&s, "ttyUSB4", "interface=00 class=ff subclass=01 protocol=01 role=modem\n");
    sidecar_is(&s, "ttyUSB6", "interface=02 class=ff subclass=01 protocol=02 role=pcui\n");
    sim_stop(&s);

    /* bad layouts */
    const char *bad[][4] = {{"--ttys", "modem,diag", NULL, NULL}, {"--ttys", "pcui,pcui", NULL, NULL},
                            {"--ttys", "pcui,fax", NULL, NULL}, {"--ttys", "modem,pcui", "--name", "ttyX"},
                            {"--reenumerate", "sometimes", NULL, NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char cmd[1600];
        snprintf(cmd, sizeof cmd, "'%s' --dir /tmp/hwfota-simtest-none %s %s %s %s >/dev/null 2>&1",
                 sim_bin, bad[i][0], bad[i][1], bad[i][2] ? bad[i][2] : "", bad[i][3] ? bad[i][3] : "");
        CHECK(system(cmd) != 0, "rejected: %s %s %s", bad[i][0], bad[i][1], bad[i][2] ? bad[i][2] : "");
    }
}

static void test_help(void)
{
    char cmd[1600];
    snprintf(cmd, sizeof cmd, "'%s' --help", sim_bin);
    FILE *p = popen(cmd, "r");
    char *text = calloc(1, 65536);
    size_t n = 0;
    if (p && text) {
        size_t r;
        while ((r = fread(text + n, 1, 65535 - n, p)) > 0) n += r;
    }
    int st = p ? pclose(p) : -1;
    CHECK(st == 0, "--help exits 0");
    const char *opts[] = {"--modules", "--dir", "--name", "--log", "--scenario", "--time-scale", "--seed",
                          "--model", "--version-from", "--version-to", "--description", "--imei-base",
                          "--pin", "--unknown", "--unsupported", "--cmee", "--ttys", "--ttys-after", "--reenumerate",
                          "--closed-port", "--resume-needs-mode", "--end-state", "--discard-delay",
                          "--discard-urc", "--image-size", "--xnv-size", "--rate",
                          "--detect-time", "--verify-time", "--upgrade-delay", "--reset-delay",
                          "--reset-gap", "--boot-time", "--day", "--noise", "--fault-modules", "--no-new-version",
                          "--detect-fail", "--download-fail", "--download-fail-at", "--power-loss",
                          "--upgrade-fail", "--port-gone", "--port-gone-for", "--port-swap", "--swap-state", "--hang", "--hang-for", "--hang-reject",
                          "--garbage", "--drop", "--dup-state", "--bad-state", "--lose-state",
                          "--data-session", "--sim-pin", "--not-registered", "--sms", "--urc", "--sms-slots",
                          "--long-line", "--release-dead-host", NULL};
    for (int i = 0; opts[i] && text; i++) CHECK(strstr(text, opts[i]) != NULL, "--help names %s", opts[i]);
    free(text);
    snprintf(cmd, sizeof cmd, "'%s' --no-such-option >/dev/null 2>&1", sim_bin);
    CHECK(system(cmd) != 0, "unknown option rejected");
    char scen[200];
    snprintf(scen, sizeof scen, "/tmp/hwfota-simtest-bad.%d", (int)getpid());
    FILE *f = fopen(scen, "w");
    if (f) { fputs("no-such-key = 1\n", f); fclose(f); }
    snprintf(cmd, sizeof cmd, "'%s' --scenario %s --dir /tmp/hwfota-simtest-none >/dev/null 2>&1", sim_bin, scen);
    CHECK(system(cmd) != 0, "bad scenario key rejected");
    unlink(scen);
}

int main(void)
{
    CHECK_SUITE("sim");
    signal(SIGPIPE, SIG_IGN);
    find_sim();
    if (access(sim_bin, X_OK) != 0) {
        CHECK(0, "simulator %s not found", sim_bin);
        return CHECK_END();
    }
    double t0 = now_s();
    void (*tests[])(void) = {test_help, test_seed_flow, test_at_basics, test_unsupported, test_detect_faults,
                             test_download_faults, test_boot_report_order, test_auto, test_auto_query,
                             test_port_faults, test_port_swap, test_closed_port, test_gone_during_download, test_noise,
                             test_many, test_sms, test_long_line, test_release_dead_host, test_ttys,
                             test_resume_needs_mode, test_end_states};
    const char *names[] = {"help", "seed_flow", "at_basics", "unsupported", "detect_faults", "download_faults",
                           "boot_report_order", "auto", "auto_query", "port_faults", "port_swap", "closed_port",
                           "gone_during_download", "noise", "many", "sms", "long_line",
                           "release_dead_host", "ttys", "resume_needs_mode", "end_states"};
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        double t = now_s();
        tests[i]();
        fprintf(stderr, "test_sim: %s %.2f s\n", names[i], now_s() - t);
    }
    fprintf(stderr, "test_sim: %.1f s\n", now_s() - t0);
    return CHECK_END();
}
