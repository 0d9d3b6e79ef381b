/*
 * test_io_pump.c — the I/O pump (io_pump.h) against ptys and pipes: data
 * arriving, hang-up, deadlines kept (and a past one not waited for), many fds
 * in one wait, a full set, an fd that is not open, 1,000 pipes in one wait in
 * the caller's slots (beyond the inline set: exactly the written ones ready,
 * a hang-up among them, the caller's capacity kept); then the port pump between a
 * transport on a pty and an AT engine: a command out, its answer in, a hang-up
 * reported as EPORTLOST, and a talking peer drained a bounded amount per call.
 */
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "io_pump.h"

typedef struct {
    int master, slave;
    char name[64];
} pty_pair;

static void open_pty(pty_pair *p, int keep_slave)
{
    REQUIRE(openpty(&p->master, &p->slave, p->name, NULL, NULL) == 0, "openpty: %s",
            strerror(errno));
    struct termios t;
    REQUIRE(tcgetattr(p->slave, &t) == 0, "tcgetattr");
    cfmakeraw(&t);
    REQUIRE(tcsetattr(p->slave, TCSANOW, &t) == 0, "tcsetattr");
    fcntl(p->master, F_SETFL, fcntl(p->master, F_GETFL) | O_NONBLOCK);
    if (!keep_slave) {
        close(p->slave);   /* the transport opens the slave by name */
        p->slave = -1;
    }
}

/* Registration records for the epoll backend's sets (one set at a time). */
#define TEST_REGS 4096
static hf_pump_reg test_regs[TEST_REGS];

/* An empty set on backend b (closed with hf_pump_close); each later round
 * begins with hf_pump_round, as a long-lived owner does it. */
static void open_set(hf_pump *pp, hf_pump_backend b)
{
    hf_error err;
    hf_error_clear(&err);
    REQUIRE(hf_pump_open(pp, b, &err) == 0, "open a %s set: %s",
            b == HF_PUMP_EPOLL ? "epoll" : "poll", err.msg);
    memset(test_regs, 0, sizeof test_regs);
    hf_pump_set_regs(pp, test_regs, TEST_REGS);
    hf_pump_round(pp, NULL, 0);
}

/* The single-fd tests' fixture: a raw pty, and a pump on backend b watching
 * its slave for reading in the first slot. Returns the slot. */
static int pump_on_pty(pty_pair *p, hf_pump *pp, hf_pump_backend b)
{
    open_pty(p, 1);
    open_set(pp, b);
    int slot = hf_pump_add(pp, p->slave, HF_PUMP_READ);
    REQUIRE(slot == 0, "first slot");
    return slot;
}

static void put(int fd, const char *s)
{
    REQUIRE(write(fd, s, strlen(s)) == (ssize_t)strlen(s), "write: %s", strerror(errno));
}

static void test_clock(void)
{
    double a = hf_pump_now();
    double b = hf_pump_now();
    CHECK(a > 0 && b >= a, "monotonic clock: %f then %f", a, b);
    CHECK_INT(hf_pump_timeout_ms(0.0015), 2);
    CHECK_INT(hf_pump_timeout_ms(-1), 0);
    CHECK_INT(hf_pump_timeout_ms(0.0 / 0.0), 0);
    CHECK(hf_pump_timeout_ms(HF_PUMP_MAX_WAIT) > 0, "30 days must not wrap to a negative wait");
}

static void test_data_arriving(hf_pump_backend b)
{
    pty_pair p;
    hf_pump pp;
    hf_error err;
    int slot = pump_on_pty(&p, &pp, b);
    put(p.master, "hello");
    double t0 = hf_pump_now();
    int r = hf_pump_wait(&pp, t0 + 5, &err);
    CHECK_INT(r, 1);
    CHECK(hf_pump_ready(&pp, slot) & HF_PUMP_READ, "data on the pty: READ");
    CHECK(hf_pump_now() - t0 < 1, "ready data does not wait for the deadline");
    CHECK_INT(hf_pump_ready(&pp, 5), 0);   /* no such slot */
    close(p.master);
    close(p.slave);
    hf_pump_close(&pp);
}

static void test_deadline(hf_pump_backend b)
{
    pty_pair p;
    hf_pump pp;
    hf_error err;
    int slot = pump_on_pty(&p, &pp, b);
    double t0 = hf_pump_now();
    int r = hf_pump_wait(&pp, t0 + 0.2, &err);
    double took = hf_pump_now() - t0;
    CHECK_INT(r, 0);
    CHECK_INT(hf_pump_ready(&pp, slot), 0);
    CHECK(took >= 0.199 && took < 1.0, "a 0.2 s deadline took %f s", took);
    t0 = hf_pump_now();
    r = hf_pump_wait(&pp, t0 - 10, &err);
    CHECK(r == 0 && hf_pump_now() - t0 < 0.05, "a past deadline does not wait (%f s)",
          hf_pump_now() - t0);
    /* data arriving from another writer during the wait ends it early */
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        usleep(150000);
        put(p.master, "late");
        _exit(0);
    }
    t0 = hf_pump_now();
    r = hf_pump_wait(&pp, t0 + 3, &err);
    took = hf_pump_now() - t0;
    CHECK(r == 1 && took >= 0.1 && took < 2.9, "woke by late data after %f s (r=%d)", took, r);
    waitpid(pid, NULL, 0);
    close(p.master);
    close(p.slave);
    hf_pump_close(&pp);
}

static void test_hangup(hf_pump_backend b)
{
    pty_pair p;
    hf_pump pp;
    hf_error err;
    int slot = pump_on_pty(&p, &pp, b);
    close(p.master);
    double t0 = hf_pump_now();
    int r = hf_pump_wait(&pp, t0 + 5, &err);
    CHECK_INT(r, 1);
    CHECK(hf_pump_ready(&pp, slot) & HF_PUMP_HUP, "closed master: HUP (got %u)",
          hf_pump_ready(&pp, slot));
    CHECK(hf_pump_now() - t0 < 1, "a hang-up is reported at once");
    close(p.slave);
    hf_pump_close(&pp);
}

static void test_many_fds(hf_pump_backend b)
{
    enum { NPIPES = 100 };
    int fds[NPIPES][2];
    hf_pump pp;
    hf_error err;
    open_set(&pp, b);
    for (int i = 0; i < NPIPES; i++) {
        REQUIRE(pipe(fds[i]) == 0, "pipe %d: %s", i, strerror(errno));
        REQUIRE(hf_pump_add(&pp, fds[i][0], HF_PUMP_READ) == i, "slot %d", i);
    }
    CHECK_INT(hf_pump_count(&pp), NPIPES);
    put(fds[73][1], "x");
    put(fds[7][1], "y");
    int r = hf_pump_wait(&pp, hf_pump_now() + 2, &err);
    CHECK_INT(r, 2);
    int others = 0;
    for (int i = 0; i < NPIPES; i++)
        if (i != 73 && i != 7 && hf_pump_ready(&pp, i))
            others++;
    CHECK(hf_pump_ready(&pp, 73) == HF_PUMP_READ && hf_pump_ready(&pp, 7) == HF_PUMP_READ,
          "the two written pipes are readable");
    CHECK_INT(others, 0);
    /* a write end wanting WRITE is ready at once; its reader gone: ERR */
    hf_pump_round(&pp, NULL, 0);
    int w = hf_pump_add(&pp, fds[1][1], HF_PUMP_WRITE);
    CHECK_INT(hf_pump_wait(&pp, hf_pump_now() + 2, &err), 1);
    CHECK_INT(hf_pump_ready(&pp, w), HF_PUMP_WRITE);
    close(fds[1][0]);
    CHECK_INT(hf_pump_wait(&pp, hf_pump_now() + 2, &err), 1);
    CHECK(hf_pump_ready(&pp, w) & HF_PUMP_ERR, "pipe without reader: ERR (got %u)",
          hf_pump_ready(&pp, w));
    /* the set is bounded: the slot after the last is refused, not overrun */
    hf_pump_round(&pp, NULL, 0);
    int last = -1;
    for (int i = 0; i < HF_PUMP_MAX_FDS; i++)
        last = hf_pump_add(&pp, fds[i % NPIPES][0], HF_PUMP_READ);
    CHECK_INT(last, HF_PUMP_MAX_FDS - 1);
    CHECK_INT(hf_pump_add(&pp, fds[0][0], HF_PUMP_READ), -1);
    CHECK_INT(hf_pump_add(&pp, -1, HF_PUMP_READ), -1);
    /* an fd that is not open is reported, not waited on */
    hf_pump_round(&pp, NULL, 0);
    int dead = fds[2][0];
    close(dead);
    int s = hf_pump_add(&pp, dead, HF_PUMP_READ);
    CHECK_INT(hf_pump_wait(&pp, hf_pump_now() + 2, &err), 1);
    CHECK(hf_pump_ready(&pp, s) & HF_PUMP_INVALID, "closed fd: INVALID (got %u)",
          hf_pump_ready(&pp, s));
    for (int i = 0; i < NPIPES; i++) {
        if (i != 1 && i != 2)
            close(fds[i][0]);
        close(fds[i][1]);
    }
    hf_pump_close(&pp);
}

/* hf_pump_reset is the portable poll(2) set, needing no close. */
static void test_reset_is_poll(void)
{
    hf_pump pp;
    hf_pump_reset(&pp);
    CHECK_STR(hf_pump_backend_name(&pp), "poll");
    CHECK_INT(hf_pump_regs(&pp), 0);
    CHECK_INT(hf_pump_ctl_calls(&pp), 0);
}

/* epoll: a round with the same fds, keys and events costs no epoll_ctl; a
 * change of events costs one; key 0 ("unknown") one per round. */
static void test_epoll_keeps_registrations(void)
{
    enum { NP = 10 };
    int fds[NP][2];
    hf_pump pp;
    hf_error err;
    hf_error_clear(&err);
    open_set(&pp, HF_PUMP_EPOLL);
    CHECK_STR(hf_pump_backend_name(&pp), "epoll");
    for (int i = 0; i < NP; i++) {
        REQUIRE(pipe(fds[i]) == 0, "pipe: %s", strerror(errno));
        CHECK_INT(hf_pump_add_keyed(&pp, fds[i][0], HF_PUMP_READ, (unsigned long long)i + 1), i);
    }
    CHECK_INT(hf_pump_ctl_calls(&pp), NP);
    CHECK_INT(hf_pump_wait(&pp, hf_pump_now() + 0.02, &err), 0);
    for (int round = 0; round < 3; round++) {
        hf_pump_round(&pp, NULL, 0);
        for (int i = 0; i < NP; i++)
            hf_pump_add_keyed(&pp, fds[i][0], HF_PUMP_READ, (unsigned long long)i + 1);
        put(fds[4][1], "x");
        CHECK_INT(hf_pump_wait(&pp, hf_pump_now() + 2, &err), 1);
        CHECK_INT(hf_pump_ready(&pp, 4), HF_PUMP_READ);
        CHECK_INT(hf_pump_ready(&pp, 5), 0);
        char c;
        REQUIRE(read(fds[4][0], &c, 1) == 1, "read");
    }
    CHECK(hf_pump_ctl_calls(&pp) == NP, "unchanged rounds cost no epoll_ctl (%lu calls)",
          hf_pump_ctl_calls(&pp));
    hf_pump_round(&pp, NULL, 0);
    for (int i = 0; i < NP; i++)
        hf_pump_add_keyed(&pp, i == 2 ? fds[i][1] : fds[i][0], i == 2 ? HF_PUMP_WRITE : HF_PUMP_READ,
                          i == 3 ? 0 : (unsigned long long)i + 1);
    CHECK_INT(hf_pump_ctl_calls(&pp), NP + 2);   /* the new fd, and key 0 asked again */
    CHECK_INT(hf_pump_wait(&pp, hf_pump_now() + 2, &err), 1);
    CHECK_INT(hf_pump_ready(&pp, 2), HF_PUMP_WRITE);
    for (int i = 0; i < NP; i++) {
        close(fds[i][0]);
        close(fds[i][1]);
    }
    hf_pump_close(&pp);
}

/* epoll: an fd closed and its number reused by a new pipe, added with a new
 * key, is registered again (the kernel dropped the old registration). */
static void test_epoll_reused_fd(void)
{
    int a[2], b[2];
    hf_pump pp;
    hf_error err;
    hf_error_clear(&err);
    open_set(&pp, HF_PUMP_EPOLL);
    REQUIRE(pipe(a) == 0, "pipe");
    hf_pump_add_keyed(&pp, a[0], HF_PUMP_READ, 1);
    CHECK_INT(hf_pump_wait(&pp, hf_pump_now() + 0.01, &err), 0);
    int old = a[0];
    close(a[0]);
    close(a[1]);
    REQUIRE(pipe(b) == 0, "pipe");
    REQUIRE(b[0] == old, "the lowest number is reused (%d, was %d)", b[0], old);
    hf_pump_round(&pp, NULL, 0);
    int s = hf_pump_add_keyed(&pp, b[0], HF_PUMP_READ, 2);
    put(b[1], "y");
    double t0 = hf_pump_now();
    CHECK_INT(hf_pump_wait(&pp, t0 + 2, &err), 1);
    CHECK_INT(hf_pump_ready(&pp, s), HF_PUMP_READ);
    CHECK(hf_pump_now() - t0 < 1, "the reused fd is watched, not waited past");
    close(b[0]);
    close(b[1]);
    hf_pump_close(&pp);
}

/* epoll: an fd from an earlier round, not added to this one, that becomes
 * ready is neither reported nor spun on: it is taken out, the wait goes on to
 * its deadline; added again later it is registered again. */
static void test_epoll_stale_fd(void)
{
    int x[2], y[2];
    hf_pump pp;
    hf_error err;
    hf_error_clear(&err);
    open_set(&pp, HF_PUMP_EPOLL);
    REQUIRE(pipe(x) == 0 && pipe(y) == 0, "pipe");
    hf_pump_add_keyed(&pp, x[0], HF_PUMP_READ, 1);
    hf_pump_add_keyed(&pp, y[0], HF_PUMP_READ, 2);
    CHECK_INT(hf_pump_wait(&pp, hf_pump_now() + 0.01, &err), 0);
    hf_pump_round(&pp, NULL, 0);
    int sx = hf_pump_add_keyed(&pp, x[0], HF_PUMP_READ, 1);
    unsigned long calls = hf_pump_ctl_calls(&pp);
    put(y[1], "z");
    double t0 = hf_pump_now();
    CHECK_INT(hf_pump_wait(&pp, t0 + 0.2, &err), 0);
    double took = hf_pump_now() - t0;
    CHECK(took >= 0.19 && took < 1.5, "the stale fd does not end the wait (%f s)", took);
    CHECK_INT(hf_pump_ready(&pp, sx), 0);
    CHECK_INT(hf_pump_ctl_calls(&pp), calls + 1);   /* its EPOLL_CTL_DEL */
    hf_pump_round(&pp, NULL, 0);
    hf_pump_add_keyed(&pp, x[0], HF_PUMP_READ, 1);
    int sy = hf_pump_add_keyed(&pp, y[0], HF_PUMP_READ, 2);
    CHECK_INT(hf_pump_wait(&pp, hf_pump_now() + 2, &err), 1);
    CHECK_INT(hf_pump_ready(&pp, sy), HF_PUMP_READ);
    close(x[0]);
    close(x[1]);
    close(y[0]);
    close(y[1]);
    hf_pump_close(&pp);
}

/* epoll: an fd closed here while its file lives on (a dup; a child process
 * that inherited it) stays registered in the kernel under its old number.
 * Its events must not pass for the new file that got the number, nor make
 * the wait spin: the set is made anew and the wait goes on. */
static void test_epoll_orphan(void)
{
    int a[2], b[2];
    hf_pump pp;
    hf_error err;
    hf_error_clear(&err);
    open_set(&pp, HF_PUMP_EPOLL);
    REQUIRE(pipe(a) == 0, "pipe");
    int keep = dup(a[0]);               /* the file outlives our fd */
    REQUIRE(keep >= 0, "dup");
    hf_pump_add_keyed(&pp, a[0], HF_PUMP_READ, 1);
    CHECK_INT(hf_pump_wait(&pp, hf_pump_now() + 0.01, &err), 0);
    int old = a[0];
    close(a[0]);
    REQUIRE(pipe(b) == 0, "pipe");
    REQUIRE(b[0] == old, "the number is reused (%d, was %d)", b[0], old);
    hf_pump_round(&pp, NULL, 0);
    int s = hf_pump_add_keyed(&pp, b[0], HF_PUMP_READ, 2);
    put(a[1], "old");                   /* the orphan becomes readable */
    double t0 = hf_pump_now();
    CHECK_INT(hf_pump_wait(&pp, t0 + 0.3, &err), 0);
    double took = hf_pump_now() - t0;
    CHECK_INT(hf_pump_ready(&pp, s), 0);
    CHECK(took >= 0.29 && took < 2, "the orphan neither ends the wait nor passes for the new "
          "pipe (%f s)", took);
    CHECK_INT(hf_pump_rebuilds(&pp), 1);
    put(b[1], "new");
    CHECK_INT(hf_pump_wait(&pp, hf_pump_now() + 2, &err), 1);
    CHECK_INT(hf_pump_ready(&pp, s), HF_PUMP_READ);
    /* a closed fd left out of the round: its events cannot be taken out by
     * number (EPOLL_CTL_DEL fails): no spinning until the deadline */
    int c2[2];
    REQUIRE(pipe(c2) == 0, "pipe");
    int keep2 = dup(c2[0]);
    hf_pump_round(&pp, NULL, 0);
    hf_pump_add_keyed(&pp, b[0], HF_PUMP_READ, 2);
    hf_pump_add_keyed(&pp, c2[0], HF_PUMP_READ, 3);
    char buf[8];
    REQUIRE(read(b[0], buf, sizeof buf) == 3, "drain b");
    CHECK_INT(hf_pump_wait(&pp, hf_pump_now() + 0.01, &err), 0);
    close(c2[0]);
    hf_pump_round(&pp, NULL, 0);
    hf_pump_add_keyed(&pp, b[0], HF_PUMP_READ, 2);
    unsigned long calls = hf_pump_ctl_calls(&pp);
    put(c2[1], "x");
    t0 = hf_pump_now();
    CHECK_INT(hf_pump_wait(&pp, t0 + 0.3, &err), 0);
    CHECK(hf_pump_now() - t0 >= 0.29, "the wait lasted its time");
    CHECK(hf_pump_ctl_calls(&pp) - calls < 10, "no spinning on the orphan (%lu epoll_ctl)",
          hf_pump_ctl_calls(&pp) - calls);
    CHECK_INT(hf_pump_rebuilds(&pp), 2);
    close(keep);
    close(keep2);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    close(c2[1]);
    hf_pump_close(&pp);
}

/* epoll: an fd beyond the caller's registration records is refused. */
static void test_epoll_regs_bound(void)
{
    hf_pump pp;
    hf_error err;
    hf_error_clear(&err);
    REQUIRE(hf_pump_open(&pp, HF_PUMP_EPOLL, &err) == 0, "open: %s", err.msg);
    hf_pump_reg few[8];
    memset(few, 0, sizeof few);
    hf_pump_set_regs(&pp, few, 8);
    CHECK_INT(hf_pump_regs(&pp), 8);
    hf_pump_round(&pp, NULL, 0);
    CHECK_INT(hf_pump_add(&pp, 8, HF_PUMP_READ), -1);
    CHECK_INT(hf_pump_add(&pp, 2, HF_PUMP_WRITE), 0);   /* stderr */
    hf_pump_close(&pp);
}

/* ---- the port pump: transport on a pty + AT engine ---------------------- */

typedef struct {
    int results;
    hf_at_status status;
    hf_final_kind kind;
    char line[64];
    unsigned long urcs;
} sink;

static void on_result(void *ud, const hf_at_result *r)
{
    sink *s = ud;
    s->results++;
    s->status = r->status;
    s->kind = r->final.kind;
    if (r->nlines > 0)
        hf_strlcpy(s->line, sizeof s->line, r->lines[0]);
}

static void on_urc(void *ud, const char *line, size_t len)
{
    (void)line;
    (void)len;
    ((sink *)ud)->urcs++;
}

static const hf_at_callbacks sink_cb = {on_result, on_urc, NULL};

/* One round as an owner's loop does it: wait, handle readiness, tick. */
static int round_once(hf_transport *tr, hf_at *at, double seconds, hf_error *err)
{
    hf_pump pp;
    hf_pump_reset(&pp);
    int slot = hf_pump_add(&pp, hf_transport_fd(tr), hf_pump_port_events(at));
    int r = hf_pump_wait(&pp, hf_pump_now() + seconds, err);
    int rc = hf_pump_port_ready(tr, at, r > 0 ? hf_pump_ready(&pp, slot) : 0, err);
    hf_at_tick(at, hf_pump_now());
    return rc;
}

static void test_port_pump(void)
{
    pty_pair p;
    open_pty(&p, 0);
    hf_error err;
    hf_error_clear(&err);
    hf_transport_opts o = {0, HF_FLOW_NONE};
    /* static: the forked writer below exits holding a copy of it, which valgrind
     * (memcheck follows a fork) would call a definite leak and fail the writer */
    static hf_transport *tr;
    tr = hf_transport_open(p.name, &o, &err);
    REQUIRE(tr != NULL, "open %s: %s", p.name, err.msg);
    static hf_at at;   /* 20 KB: not on the stack */
    sink s;
    memset(&s, 0, sizeof s);
    hf_at_init(&at, &sink_cb, &s);
    unsigned long id;
    REQUIRE(hf_at_submit(&at, "AT+GMR", 6, HF_AT_EXPECT_ALL, NULL, 0, 5, &id, &err) == 0,
            "submit: %s", err.msg);
    CHECK(hf_pump_port_events(&at) & HF_PUMP_WRITE, "output pending: the port wants WRITE");
    CHECK_INT(hf_pump_flush(tr, &at, &err), 0);
    CHECK_INT(hf_pump_port_events(&at), HF_PUMP_READ);
    char buf[64] = {0};
    usleep(50000);
    ssize_t n = read(p.master, buf, sizeof buf - 1);
    CHECK(n == 7 && memcmp(buf, "AT+GMR\r", 7) == 0, "the command reached the peer (%zd)", n);
    put(p.master, "\r\n12.815.03.01.00\r\n\r\n^RSSI: 20\r\n\r\nOK\r\n");
    double end = hf_pump_now() + 3;
    while (!s.results && hf_pump_now() < end)
        REQUIRE(round_once(tr, &at, 0.5, &err) == 0, "round: %s", err.msg);
    CHECK_INT(s.results, 1);
    CHECK(s.status == HF_AT_STATUS_DONE && s.kind == HF_FINAL_OK, "answered OK");
    CHECK_STR(s.line, "12.815.03.01.00");
    CHECK_INT(s.urcs, 1);

    /* a peer that never stops (a child writing 64 KB, blocked whenever the
     * pty is full): one drain takes a bounded share, later rounds the rest */
    enum { FLOOD_LINES = 6500 };
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        fcntl(p.master, F_SETFL, fcntl(p.master, F_GETFL) & ~O_NONBLOCK);
        /* a blocking write may still come back short or interrupted (seen under
         * valgrind): write the rest, so that only a real error fails the writer */
        for (int i = 0; i < FLOOD_LINES; i++) {
            const char *line = "\r\n^X: 12\r\n";
            size_t off = 0;
            while (off < 10) {
                ssize_t w = write(p.master, line + off, 10 - off);
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0)
                    _exit(1);
                off += (size_t)w;
            }
        }
        _exit(0);
    }
    /* wait until the writer (slow to start under valgrind) has filled the pty */
    hf_pump wp;
    hf_pump_reset(&wp);
    hf_pump_add(&wp, hf_transport_fd(tr), HF_PUMP_READ);
    REQUIRE(hf_pump_wait(&wp, hf_pump_now() + 10, &err) == 1, "the writer never wrote");
    usleep(100000);
    unsigned long before = s.urcs;
    CHECK_INT(hf_pump_drain(tr, &at, &err), 0);
    unsigned long lines = s.urcs - before;
    CHECK(lines > 0 && lines * 10 <= HF_PUMP_READ_CHUNK * HF_PUMP_READS_PER_STEP,
          "one drain read %lu lines of %d", lines, FLOOD_LINES);
    end = hf_pump_now() + 10;
    while (s.urcs - before < FLOOD_LINES && hf_pump_now() < end)
        REQUIRE(round_once(tr, &at, 0.5, &err) == 0, "round: %s", err.msg);
    CHECK(s.urcs - before == FLOOD_LINES, "every line arrives over later rounds (%lu of %d)",
          s.urcs - before, FLOOD_LINES);
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the writer wrote everything");

    /* the peer hangs up: the port pump says EPORTLOST */
    close(p.master);
    int rc = 0;
    end = hf_pump_now() + 3;
    while (rc == 0 && hf_pump_now() < end)
        rc = round_once(tr, &at, 0.5, &err);
    CHECK_INT(rc, -1);
    CHECK(err.code && strcmp(err.code, "EPORTLOST") == 0, "hang-up: %s (%s)",
          err.code ? err.code : "(none)", err.msg);
    hf_transport_close(tr);
}

/* 1,000 pipes (2,000 fds: RLIMIT_NOFILE raised to the hard limit when needed)
 * in one wait, in slots the caller gives. */
#define BIG_PIPES 1000
static void test_thousand_fds(hf_pump_backend b)
{
    struct rlimit rl;
    REQUIRE(getrlimit(RLIMIT_NOFILE, &rl) == 0, "getrlimit");
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 2 * BIG_PIPES + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 2 * BIG_PIPES + 64) {
        printf("# skipped 1,000 pipes: RLIMIT_NOFILE hard limit %llu\n",
               (unsigned long long)rl.rlim_max);
        return;
    }
    static int fds[BIG_PIPES][2];
    static hf_pump_slot slots[BIG_PIPES + 1];
    for (int i = 0; i < BIG_PIPES; i++)
        REQUIRE(pipe(fds[i]) == 0, "pipe %d: %s", i, strerror(errno));
    hf_pump pp;
    hf_error err;
    hf_error_clear(&err);
    open_set(&pp, b);
    hf_pump_round(&pp, slots, BIG_PIPES + 1);
    for (int i = 0; i < BIG_PIPES; i++)
        CHECK_INT(hf_pump_add(&pp, fds[i][0], HF_PUMP_READ), i);
    CHECK_INT(hf_pump_count(&pp), BIG_PIPES);
    /* nothing written: the wait times out */
    CHECK_INT(hf_pump_wait(&pp, hf_pump_now() + 0.05, &err), 0);
    /* writes to pipes beyond the inline set and one inside it; a hang-up at 999 */
    REQUIRE(write(fds[500][1], "x", 1) == 1, "write");
    REQUIRE(write(fds[998][1], "y", 1) == 1, "write");
    REQUIRE(write(fds[3][1], "z", 1) == 1, "write");
    close(fds[999][1]);
    fds[999][1] = -1;
    CHECK_INT(hf_pump_wait(&pp, hf_pump_now() + 2, &err), 4);
    int others = 0;
    for (int i = 0; i < BIG_PIPES; i++)
        if (i != 500 && i != 998 && i != 3 && i != 999 && hf_pump_ready(&pp, i))
            others++;
    CHECK_INT(others, 0);
    CHECK_INT(hf_pump_ready(&pp, 500), HF_PUMP_READ);
    CHECK_INT(hf_pump_ready(&pp, 998), HF_PUMP_READ);
    CHECK_INT(hf_pump_ready(&pp, 3), HF_PUMP_READ);
    CHECK(hf_pump_ready(&pp, 999) & HF_PUMP_HUP, "hung-up pipe: HUP (got %u)",
          hf_pump_ready(&pp, 999));
    /* the caller's capacity is kept: one more slot, then full */
    CHECK_INT(hf_pump_add(&pp, fds[0][0], HF_PUMP_READ), BIG_PIPES);
    CHECK_INT(hf_pump_add(&pp, fds[1][0], HF_PUMP_READ), -1);
    /* a small caller array means the inline set */
    hf_pump_round(&pp, slots, 4);
    int last = -1;
    for (int i = 0; i < HF_PUMP_MAX_FDS; i++)
        last = hf_pump_add(&pp, fds[i][0], HF_PUMP_READ);
    CHECK_INT(last, HF_PUMP_MAX_FDS - 1);
    CHECK_INT(hf_pump_add(&pp, fds[0][0], HF_PUMP_READ), -1);
    for (int i = 0; i < BIG_PIPES; i++) {
        close(fds[i][0]);
        if (fds[i][1] >= 0)
            close(fds[i][1]);
    }
    hf_pump_close(&pp);
}

int main(void)
{
    CHECK_SUITE("io_pump");
    test_clock();
    test_reset_is_poll();
    static const hf_pump_backend backends[] = {HF_PUMP_POLL, HF_PUMP_EPOLL};
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        printf("# wait set on %s\n", backends[i] == HF_PUMP_EPOLL ? "epoll" : "poll(2)");
        fflush(stdout);   /* before the forks below: printed once */
        test_data_arriving(backends[i]);
        test_deadline(backends[i]);
        test_hangup(backends[i]);
        test_many_fds(backends[i]);
        test_thousand_fds(backends[i]);
    }
    test_epoll_keeps_registrations();
    test_epoll_reused_fd();
    test_epoll_stale_fd();
    test_epoll_orphan();
    test_epoll_regs_bound();
    test_port_pump();
    return CHECK_END();
}
