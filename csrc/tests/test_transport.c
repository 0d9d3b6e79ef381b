/*
 * test_transport.c — the transport layer against real ptys, and libserialport's
 * real path against a pty dressed up as /dev/ttyUSB2 (12d1:1573).
 *
 * The first part runs in this process: POSIX path (kind "pty"), I/O both ways,
 * exclusivity (flock and a foreign TIOCEXCL, which root would otherwise bypass),
 * hang-up -> EPORTLOST, and clear open errors.
 *
 * The second part needs spec/support/fakedev_preload (built by the Makefile as
 * build/support/fakedev_preload): this program re-executes itself with
 * LD_PRELOAD set and "--fakedev", collects the child's tally and adds it to its
 * own. Under ASan the child's LD_PRELOAD starts with the libasan this process
 * has mapped, so the ASan runtime stays first and the sub-test runs in both
 * variants. A missing preload counts as a failure, never as a silent skip.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "transport.h"

#define VID 0x12d1
#define PID 0x1573

/* ---- helpers ------------------------------------------------------------- */

typedef struct {
    int master;
    char slave[64];
} pty_pair;

static int make_pty(pty_pair *p)
{
    int s;
    if (openpty(&p->master, &s, p->slave, NULL, NULL) != 0)
        return -1;
    close(s);   /* the transport opens the slave by name */
    int fl = fcntl(p->master, F_GETFL);
    fcntl(p->master, F_SETFL, fl | O_NONBLOCK);
    return 0;
}

static int wait_fd(int fd, short ev, int ms)
{
    struct pollfd pfd = {fd, ev, 0};
    return poll(&pfd, 1, ms) == 1 ? pfd.revents : 0;
}

/* Read from the transport until `want` bytes arrived or 1 s passed. */
static size_t read_transport(hf_transport *t, char *buf, size_t want)
{
    size_t got = 0;
    hf_error e;
    while (got < want && wait_fd(hf_transport_fd(t), POLLIN, 1000) & POLLIN) {
        ssize_t r = hf_transport_read(t, buf + got, want - got, &e);
        if (r < 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    return got;
}

static size_t read_master(int m, char *buf, size_t want)
{
    size_t got = 0;
    while (got < want && wait_fd(m, POLLIN, 1000) & POLLIN) {
        ssize_t r = read(m, buf + got, want - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    return got;
}

/* Bytes both ways between the transport and the pty master. */
static void check_io(hf_transport *t, int master)
{
    hf_error e;
    char buf[64];
    CHECK_INT(hf_transport_read(t, buf, sizeof buf, &e), 0);   /* nothing yet: 0, not -1 */

    CHECK_INT(write(master, "AT\r", 3), 3);
    CHECK_INT(read_transport(t, buf, 3), 3);
    CHECK_STR(buf, "AT\r");

    CHECK_INT(hf_transport_write(t, "\r\nOK\r\n", 6, &e), 6);
    CHECK_INT(read_master(master, buf, 6), 6);
    CHECK_STR(buf, "\r\nOK\r\n");
}

static void check_busy(const char *path)
{
    hf_error e;
    hf_transport *t2 = hf_transport_open(path, NULL, &e);
    CHECK(t2 == NULL, "second open of %s must fail", path);
    hf_transport_close(t2);
    CHECK(e.code && !strcmp(e.code, "EBUSY"), "code %s", e.code ? e.code : "(null)");
    CHECK(strstr(e.msg, path) != NULL, "message names the port: %s", e.msg);
    CHECK(strstr(e.msg, "ModemManager") != NULL, "message names ModemManager: %s", e.msg);
    CHECK(strstr(e.msg, "ID_MM_PORT_IGNORE") != NULL, "message names the udev tag: %s", e.msg);
}

/* A refused second open must leave the holder alone: its TIOCEXCL stays set
 * and input waiting for it is not flushed. */
static void check_busy_harmless(hf_transport *t, int master, const char *path)
{
    CHECK_INT(write(master, "PENDING", 7), 7);
    CHECK(wait_fd(hf_transport_fd(t), POLLIN, 1000) & POLLIN, "input queued");
    check_busy(path);
    int excl = 0;
    CHECK_INT(ioctl(hf_transport_fd(t), TIOCGEXCL, &excl), 0);
    CHECK_INT(excl, 1);
    char buf[16];
    CHECK_INT(read_transport(t, buf, 7), 7);
    CHECK_STR(buf, "PENDING");
}

/* The master goes away: poll says so, read and write say EPORTLOST. */
static void check_lost(hf_transport *t, int master)
{
    hf_error e;
    close(master);
    int rev = wait_fd(hf_transport_fd(t), POLLIN, 1000);
    CHECK(rev != 0, "poll reports something after hang-up");
    CHECK_INT(hf_transport_check_revents(t, (short)rev, &e), -1);
    CHECK(e.code && !strcmp(e.code, "EPORTLOST"), "revents code %s", e.code ? e.code : "-");
    char buf[8];
    CHECK_INT(hf_transport_read(t, buf, sizeof buf, &e), -1);
    CHECK(e.code && !strcmp(e.code, "EPORTLOST"), "read code %s", e.code ? e.code : "-");
    CHECK(strstr(e.msg, hf_transport_path(t)) != NULL, "message names the port: %s", e.msg);
    CHECK_INT(hf_transport_write(t, "AT\r", 3, &e), -1);
    CHECK(e.code && !strcmp(e.code, "EPORTLOST"), "write code %s", e.code ? e.code : "-");
}

static void check_open_fails(const char *path, const char *code, const char *needle)
{
    hf_error e;
    hf_transport *t = hf_transport_open(path, NULL, &e);
    CHECK(t == NULL, "open %s must fail", path);
    hf_transport_close(t);
    CHECK(e.code && !strcmp(e.code, code), "%s: code %s, want %s", path,
          e.code ? e.code : "(null)", code);
    CHECK(strstr(e.msg, path) != NULL, "message names the path: %s", e.msg);
    CHECK(strstr(e.msg, needle) != NULL, "message has \"%s\": %s", needle, e.msg);
}

/* ---- POSIX path ------------------------------------------------------------ */

/* A new pty pair and its slave opened by the transport (NULL when it fails: the
 * check says why). */
static hf_transport *open_pty(pty_pair *p, hf_error *e)
{
    CHECK_INT(make_pty(p), 0);
    hf_transport *t = hf_transport_open(p->slave, NULL, e);
    CHECK(t != NULL, "open %s: %s", p->slave, e->msg);
    return t;
}

static void test_pty_path(void)
{
    pty_pair p;
    hf_error e;
    hf_transport *t = open_pty(&p, &e);
    if (!t)
        return;
    CHECK_STR(hf_transport_kind(t), "pty");
    CHECK_STR(hf_transport_path(t), p.slave);
    CHECK(hf_transport_fd(t) >= 0, "fd");
    CHECK(fcntl(hf_transport_fd(t), F_GETFL) & O_NONBLOCK, "fd is non-blocking");
    check_io(t, p.master);
    check_busy_harmless(t, p.master, p.slave);
    check_lost(t, p.master);
    hf_transport_close(t);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Nobody reads the master: writes fill the pty and then return 0, never block;
 * revents are interpreted; close with output pending returns at once. */
static void test_nonblocking_and_revents(void)
{
    pty_pair p;
    hf_error e;
    hf_transport *t = open_pty(&p, &e);
    if (!t)
        return;
    CHECK_INT(hf_transport_check_revents(t, POLLIN, &e), 0);
    CHECK_INT(hf_transport_check_revents(t, POLLOUT, &e), 0);
    CHECK_INT(hf_transport_check_revents(t, POLLNVAL, &e), -1);
    CHECK_STR(e.code, "EPORTLOST");

    static char big[1 << 16];
    memset(big, 'A', sizeof big);
    size_t total = 0;
    ssize_t w = 1;
    double t0 = now_ms();
    for (int i = 0; i < 64 && w > 0; i++) {
        w = hf_transport_write(t, big, sizeof big, &e);
        if (w > 0)
            total += (size_t)w;
    }
    CHECK_INT(w, 0);    /* full: 0, not -1, and no blocking */
    CHECK(total > 0 && total < 64 * sizeof big, "wrote %zu bytes before full", total);
    CHECK_INT(hf_transport_write(t, "x", 0, &e), 0);
    t0 = now_ms();
    hf_transport_close(t);
    CHECK(now_ms() - t0 < 200, "close with pending output took %.0f ms", now_ms() - t0);
    close(p.master);

    char buf[4];
    CHECK_INT(hf_transport_read(NULL, buf, sizeof buf, &e), -1);
    CHECK_STR(e.code, "ECLOSED");
    CHECK_INT(hf_transport_write(NULL, buf, sizeof buf, &e), -1);
    CHECK_STR(e.code, "ECLOSED");
    CHECK_INT(hf_transport_check_revents(NULL, POLLIN, &e), -1);
    CHECK_STR(e.code, "ECLOSED");
}

/* Through a symlink (how hwfota-sim publishes its pty), and reopen after close. */
static void test_symlink_and_reopen(void)
{
    pty_pair p;
    CHECK_INT(make_pty(&p), 0);
    char dir[] = "/tmp/hwfota-test-XXXXXX", link[PATH_MAX];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(link, sizeof link, "%s/ttyUSB2", dir);
    CHECK_INT(symlink(p.slave, link), 0);

    hf_error e;
    hf_transport_opts o = {9600, HF_FLOW_RTSCTS};
    hf_transport *t = hf_transport_open(link, &o, &e);
    CHECK(t != NULL, "open %s: %s", link, e.msg);
    if (t) {
        CHECK_STR(hf_transport_kind(t), "pty");
        CHECK_STR(hf_transport_path(t), link);
        struct termios tio;
        CHECK_INT(tcgetattr(hf_transport_fd(t), &tio), 0);
        CHECK(cfgetospeed(&tio) == B9600, "baud 9600");
        CHECK(tio.c_cflag & CRTSCTS, "RTS/CTS on");
        CHECK((tio.c_cflag & CSIZE) == CS8 && !(tio.c_cflag & PARENB), "8N1");
        CHECK(!(tio.c_lflag & ICANON) && tio.c_cc[VMIN] == 0, "raw");
        check_busy(p.slave);    /* same device under another name */
        check_busy(link);
        hf_transport_close(t);
    }
    /* closed: TIOCEXCL dropped, lock released, so it opens again */
    int fd = open(p.slave, O_RDWR | O_NOCTTY | O_NONBLOCK);
    int excl = -1;
    CHECK_INT(ioctl(fd, TIOCGEXCL, &excl), 0);
    CHECK_INT(excl, 0);
    close(fd);
    t = hf_transport_open(link, NULL, &e);
    CHECK(t != NULL, "reopen %s: %s", link, e.msg);
    if (t) {
        check_io(t, p.master);
        hf_transport_close(t);
    }
    unlink(link);
    rmdir(dir);
    close(p.master);
}

/* Open `path` plainly (no flock) and set TIOCEXCL on it, as ModemManager does;
 * returns the fd. */
static int open_excl(const char *path)
{
    int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK);
    CHECK(fd >= 0, "plain open");
    CHECK_INT(ioctl(fd, TIOCEXCL), 0);
    return fd;
}

/* Someone holds the port with TIOCEXCL only (no flock): still EBUSY for root. */
static void test_foreign_tiocexcl(void)
{
    pty_pair p;
    CHECK_INT(make_pty(&p), 0);
    int fd = open_excl(p.slave);
    check_busy(p.slave);
    ioctl(fd, TIOCNXCL);
    close(fd);
    close(p.master);
}

/* Issue 12.8: a holder that ended without closing (SIGKILL) leaves TIOCEXCL on
 * a pty while its master lives. Nobody holds the port: the open takes it over
 * and says so; it used to be EBUSY "often ModemManager" for good. A live
 * holder in another process (TIOCEXCL without flock, as ModemManager) or a
 * live hwfota (flock) is still EBUSY. */
static void test_stale_tiocexcl(void)
{
    pty_pair p;
    CHECK_INT(make_pty(&p), 0);
    int fd = open_excl(p.slave);
    close(fd);   /* as a killed process's last close: the flag stays */
    fd = open(p.slave, O_RDWR | O_NOCTTY | O_NONBLOCK);
    int excl = 0;
    CHECK_INT(ioctl(fd, TIOCGEXCL, &excl), 0);
    CHECK_INT(excl, 1);
    close(fd);
    hf_error e;
    hf_transport *t = hf_transport_open(p.slave, NULL, &e);
    CHECK(t != NULL, "stale flag taken over: %s", e.msg);
    if (t) {
        CHECK(strstr(hf_transport_note(t), "taken over") != NULL, "note: %s", hf_transport_note(t));
        check_io(t, p.master);
        check_busy(p.slave);   /* ours now: a second open is busy */
        hf_transport_close(t);
    }
    /* closed by us: the flag is gone, the next open is ordinary */
    t = hf_transport_open(p.slave, NULL, &e);
    CHECK(t != NULL, "open after close: %s", e.msg);
    if (t) {
        CHECK_STR(hf_transport_note(t), "");
        hf_transport_close(t);
    }

    /* a live holder in another process: TIOCEXCL, no flock */
    int ready[2];
    CHECK_INT(pipe(ready), 0);
    pid_t child = fork();
    if (child == 0) {
        close(p.master);
        int cfd = open(p.slave, O_RDWR | O_NOCTTY | O_NONBLOCK);
        if (cfd < 0 || ioctl(cfd, TIOCEXCL) != 0)
            _exit(1);
        if (write(ready[1], "r", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    char c;
    CHECK_INT(read(ready[0], &c, 1), 1);
    t = hf_transport_open(p.slave, NULL, &e);
    CHECK(t == NULL, "live holder: busy");
    hf_transport_close(t);
    CHECK(e.code && !strcmp(e.code, "EBUSY"), "code %s", e.code ? e.code : "(null)");
    char pid_s[32];
    snprintf(pid_s, sizeof pid_s, "pid %d", (int)child);
    CHECK(strstr(e.msg, pid_s) != NULL, "names the holder: %s", e.msg);
    CHECK(strstr(e.msg, "ModemManager") != NULL, "keeps the hint: %s", e.msg);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    close(ready[0]);
    close(ready[1]);
    /* the child died holding it: stale again, taken over */
    t = hf_transport_open(p.slave, NULL, &e);
    CHECK(t != NULL, "after the holder died: %s", e.msg);
    hf_transport_close(t);
    close(p.master);
}

/* Not root: open(2) itself refuses a TIOCEXCL tty with EBUSY. The message
 * then says whether anyone holds the port's lock: nobody (a stale flag, and
 * how to clear it) or somebody (a plain busy). Run in a child as nobody. */
static int unprivileged_open_msg(const char *path, char *msg, size_t cap)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return -1;
    pid_t child = fork();
    if (child == 0) {
        close(pfd[0]);
        hf_error e;
        hf_error_clear(&e);
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(3);
        hf_transport *t = hf_transport_open(path, NULL, &e);
        int rc = t ? 1 : (e.code && !strcmp(e.code, "EBUSY")) ? 0 : 2;
        hf_transport_close(t);
        if (write(pfd[1], e.msg, strlen(e.msg)) < 0)
            rc = 4;
        _exit(rc);
    }
    close(pfd[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(pfd[0], msg + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    msg[n] = '\0';
    close(pfd[0]);
    int st = 0;
    waitpid(child, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_stale_tiocexcl_unprivileged(void)
{
    if (geteuid() != 0) {
        printf("# skipped: needs root to become nobody\n");
        return;
    }
    pty_pair p;
    CHECK_INT(make_pty(&p), 0);
    CHECK_INT(chmod(p.slave, 0666), 0);
    int fd = open(p.slave, O_RDWR | O_NOCTTY | O_NONBLOCK);
    CHECK_INT(ioctl(fd, TIOCEXCL), 0);
    close(fd);   /* stale */
    char msg[1024];
    CHECK_INT(unprivileged_open_msg(p.slave, msg, sizeof msg), 0);
    CHECK(strstr(msg, "no process holds its lock") != NULL, "stale explained: %s", msg);
    CHECK(strstr(msg, "as root") != NULL, "says how to clear it: %s", msg);
    /* a live hwfota (flock + TIOCEXCL): plain busy */
    hf_error e;
    hf_transport *t = hf_transport_open(p.slave, NULL, &e);
    CHECK(t != NULL, "root takes it over: %s", e.msg);
    CHECK_INT(unprivileged_open_msg(p.slave, msg, sizeof msg), 0);
    CHECK(strstr(msg, "no process holds") == NULL, "a live holder is not stale: %s", msg);
    CHECK(strstr(msg, "in use by another process") != NULL, "%s", msg);
    hf_transport_close(t);
    close(p.master);
}

static void test_open_errors(void)
{
    check_open_fails("/dev/hwfota-no-such-tty9", "ENOENT", "No such file or directory");
    char file[] = "/tmp/hwfota-test-file-XXXXXX";
    int fd = mkstemp(file);
    REQUIRE(fd >= 0, "mkstemp");
    close(fd);
    check_open_fails(file, "EINVAL", "regular file");
    unlink(file);
    check_open_fails("/tmp", "EINVAL", "/tmp");
    check_open_fails("/dev/null", "EINVAL", "not a terminal");

    hf_error e;
    CHECK(hf_transport_open("", NULL, &e) == NULL, "empty path");
    CHECK_STR(e.code, "EINVAL");
    pty_pair p;
    CHECK_INT(make_pty(&p), 0);
    hf_transport_opts bad = {12345, HF_FLOW_NONE};
    CHECK(hf_transport_open(p.slave, &bad, &e) == NULL, "odd baud on a pty");
    CHECK_STR(e.code, "EINVAL");
    CHECK(strstr(e.msg, "12345") != NULL, "names the baud: %s", e.msg);
    bad.baudrate = -1;
    CHECK(hf_transport_open(p.slave, &bad, &e) == NULL, "negative baud");
    CHECK_STR(e.code, "EINVAL");
    close(p.master);

    hf_transport_close(NULL);
    CHECK_INT(hf_transport_fd(NULL), -1);
}

/* The class triple -> role table (protocol reference, "Several ttys, one AT port"). */
static void test_port_role(void)
{
    static const struct { int vid, c, sc, p; const char *role; } rows[] = {
        {0x12d1, 0xff, 0x01, 0x02, "pcui"}, {0x12d1, 0xff, 0x02, 0x02, "pcui"},
        {0x12d1, 0xff, 0x01, 0x01, "modem"}, {0x12d1, 0xff, 0x02, 0x01, "modem"},
        {0x12d1, 0xff, 0x01, 0x03, "diag"}, {0x12d1, 0xff, 0x01, 0x05, "gps"},
        {0x12d1, 0xff, 0x02, 0x05, NULL}, {0x12d1, 0xff, 0x03, 0x02, NULL},
        {0x12d1, 0x02, 0x02, 0x01, NULL}, {0x12d1, -1, -1, -1, NULL},
        {0x1199, 0xff, 0x01, 0x02, NULL},   /* not Huawei: the triple means nothing here */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *r = hf_port_role(rows[i].vid, rows[i].c, rows[i].sc, rows[i].p);
        CHECK(rows[i].role ? (r && !strcmp(r, rows[i].role)) : r == NULL,
              "%04x %02x/%02x/%02x -> %s (want %s)", rows[i].vid, rows[i].c, rows[i].sc,
              rows[i].p, r ? r : "NULL", rows[i].role ? rows[i].role : "NULL");
    }
}

static void test_list_real_machine(void)
{
    hf_error e;
    size_t found = 99;
    CHECK_INT(hf_list_ports(NULL, 0, &found, &e), 0);
    CHECK(found != 99, "found is set");
}

/* ---- libserialport path, in the child under the preload ------------------- */

static void test_fake_list(void)
{
    hf_port_info ports[4];
    size_t found = 0;
    hf_error e;
    memset(ports, 0x5a, sizeof ports);
    CHECK_INT(hf_list_ports(ports, 4, &found, &e), 0);
    CHECK_INT(found, 1);    /* the console entry (virtual) is skipped; real ttys hidden */
    if (found < 1)
        return;
    hf_port_info *pi = &ports[0];
    CHECK_STR(pi->path, "/dev/ttyUSB2");
    CHECK_STR(pi->transport, "usb");
    CHECK_INT(pi->vid, VID);
    CHECK_INT(pi->pid, PID);
    CHECK_STR(pi->manufacturer, "Huawei Technologies Co., Ltd.");
    CHECK_STR(pi->product, "HUAWEI Mobile");
    CHECK_STR(pi->serial, "SIM-MU609-0001");
    CHECK_INT(pi->usb_bus, 3);
    CHECK_INT(pi->usb_address, 7);
    CHECK(strstr(pi->description, "HUAWEI Mobile") != NULL, "description %s", pi->description);
    /* the tty's USB interface (the preload's default: 02, class ff/01/02) */
    CHECK_INT(pi->interface, 2);
    CHECK_INT(pi->usb_class, 0xff);
    CHECK_INT(pi->usb_subclass, 0x01);
    CHECK_INT(pi->usb_protocol, 0x02);
    CHECK_STR(pi->role, "pcui");
    CHECK(strncmp(pi->by_id, "/dev/serial/by-id/usb-", 22) == 0 &&
          strstr(pi->by_id, "SIM-MU609-0001-if02-port0") != NULL, "by-id %s", pi->by_id);

    size_t f2 = 0;
    CHECK_INT(hf_list_ports(NULL, 0, &f2, &e), 0);  /* count only */
    CHECK_INT(f2, 1);
}

static void test_fake_serial(const char *link)
{
    pty_pair p;
    CHECK_INT(make_pty(&p), 0);
    unlink(link);
    CHECK_INT(symlink(p.slave, link), 0);
    setenv("HWFOTA_FAKEDEV_PTY", link, 1);

    hf_error e;
    hf_transport_opts o = {115200, HF_FLOW_RTSCTS};
    hf_transport *t = hf_transport_open("/dev/ttyUSB2", &o, &e);
    CHECK(t != NULL, "open /dev/ttyUSB2: %s", e.msg);
    if (!t)
        return;
    CHECK_STR(hf_transport_kind(t), "serial");
    CHECK_STR(hf_transport_path(t), "/dev/ttyUSB2");
    CHECK(fcntl(hf_transport_fd(t), F_GETFL) & O_NONBLOCK, "fd is non-blocking");
    struct termios tio;
    CHECK_INT(tcgetattr(hf_transport_fd(t), &tio), 0);
    CHECK(cfgetospeed(&tio) == B115200, "baud 115200 via libserialport");
    CHECK(tio.c_cflag & CRTSCTS, "RTS/CTS via libserialport");
    CHECK((tio.c_cflag & CSIZE) == CS8 && !(tio.c_cflag & (PARENB | CSTOPB)), "8N1");
    check_io(t, p.master);
    check_busy_harmless(t, p.master, "/dev/ttyUSB2");
    check_busy(p.slave);    /* the pty itself is held too */
    check_lost(t, p.master);
    hf_transport_close(t);
}

/* The simulator is gone (no pty published): the port does not exist. */
static void test_fake_unplugged(const char *link)
{
    unlink(link);
    check_open_fails("/dev/ttyUSB2", "ENOENT", "No such file or directory");
    unsetenv("HWFOTA_FAKEDEV_PTY");
    check_open_fails("/dev/ttyUSB2", "ENOENT", "No such file or directory");
}

/* A pty under its own name stays on the POSIX path even with the preload. */
static void test_fake_pty_still_pty(void)
{
    pty_pair p;
    CHECK_INT(make_pty(&p), 0);
    hf_error e;
    hf_transport *t = hf_transport_open(p.slave, NULL, &e);
    CHECK(t != NULL, "open %s: %s", p.slave, e.msg);
    if (t)
        CHECK_STR(hf_transport_kind(t), "pty");
    hf_transport_close(t);
    close(p.master);
}

static int fakedev_child(void)
{
    CHECK_SUITE("transport-fakedev");
    alarm(10);
    char dir[] = "/tmp/hwfota-test-XXXXXX", link[PATH_MAX];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(link, sizeof link, "%s/ttyUSB2", dir);
    test_fake_list();
    test_fake_serial(link);
    test_fake_unplugged(link);
    test_fake_pty_still_pty();
    rmdir(dir);
    return CHECK_END();
}

/* ---- parent side of the re-exec -------------------------------------------- */

/* Path of the libasan this process runs with, or "" (plain build). */
static void mapped_libasan(char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return;
    char line[PATH_MAX + 128];
    while (fgets(line, sizeof line, f)) {
        char *p = strchr(line, '/');
        if (p && strstr(p, "/libasan.so")) {
            p[strcspn(p, "\n")] = '\0';
            snprintf(out, cap, "%s", p);
            break;
        }
    }
    fclose(f);
}

/* This program's own path: argv[0] when it names a file (under valgrind
 * /proc/self/exe is valgrind's tool, not us), else /proc/self/exe. */
static int self_path(const char *argv0, char *out, size_t cap)
{
    if (strchr(argv0, '/') && strlen(argv0) < cap && realpath(argv0, out))
        return 0;
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);
    if (n <= 0)
        return -1;
    out[n] = '\0';
    return 0;
}

static int preload_path(const char *self, char *out, size_t cap)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", self);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    if (snprintf(out, cap, "%s/../support/fakedev_preload", dir) >= (int)cap)
        return -1;
    return access(out, R_OK);
}

static void set_child_env(const char *preload)
{
    char asan[PATH_MAX], ld[2 * PATH_MAX + 2];
    mapped_libasan(asan, sizeof asan);
    snprintf(ld, sizeof ld, "%s%s%s", asan, asan[0] ? ":" : "", preload);
    setenv("LD_PRELOAD", ld, 1);
    setenv("HWFOTA_FAKEDEV_TTY", "ttyUSB2", 1);
    setenv("HWFOTA_FAKEDEV_VIDPID", "12d1:1573", 1);
    setenv("HWFOTA_FAKEDEV_MANUFACTURER", "Huawei Technologies Co., Ltd.", 1);
    setenv("HWFOTA_FAKEDEV_PRODUCT", "HUAWEI Mobile", 1);
    setenv("HWFOTA_FAKEDEV_SERIAL", "SIM-MU609-0001", 1);
    setenv("HWFOTA_FAKEDEV_BUSNUM", "3", 1);
    setenv("HWFOTA_FAKEDEV_DEVNUM", "7", 1);
    unsetenv("HWFOTA_FAKEDEV_PTY");
}

/* Add the child's "#tally" to ours; pass its other output through. */
static void collect_child(FILE *in)
{
    char line[512];
    int seen = 0;
    while (fgets(line, sizeof line, in)) {
        unsigned long p, f;
        if (sscanf(line, "#tally %*s passed=%lu failed=%lu", &p, &f) == 2) {
            hf_check_t.passed += p;
            hf_check_t.failed += f;
            seen = 1;
        } else {
            fputs(line, stdout);
        }
    }
    CHECK(seen, "fakedev child printed its tally");
}

static void test_under_preload(const char *argv0)
{
    char self[PATH_MAX], preload[PATH_MAX];
    if (self_path(argv0, self, sizeof self) != 0 ||
        preload_path(self, preload, sizeof preload) != 0) {
        CHECK(0, "build/support/fakedev_preload missing: run `make tests`");
        return;
    }
    int fds[2];
    REQUIRE_INT(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        set_child_env(preload);
        execl(self, self, "--fakedev", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *in = fdopen(fds[0], "r");
    collect_child(in);
    fclose(in);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st), "fakedev child exited normally (status %d)", st);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && !strcmp(argv[1], "--fakedev"))
        return fakedev_child();
    CHECK_SUITE("transport");
    alarm(20);  /* a hang is a failure, not a stuck CI job */
    test_pty_path();
    test_nonblocking_and_revents();
    test_symlink_and_reopen();
    test_foreign_tiocexcl();
    test_stale_tiocexcl();
    test_stale_tiocexcl_unprivileged();
    test_open_errors();
    test_list_real_machine();
    test_port_role();
    test_under_preload(argv[0]);
    return CHECK_END();
}
