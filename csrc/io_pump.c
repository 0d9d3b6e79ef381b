/*
 * io_pump.c — the clock, the wait set over poll(2) or epoll, and the byte pump
 * between a transport and its AT engine (see io_pump.h).
 */
#include "io_pump.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif

#define PUMP_EPOLL_BATCH 64   /* events taken from one epoll_wait (the rest: next wait) */

double hf_pump_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int hf_pump_timeout_ms(double seconds)
{
    double ms = ceil(seconds * 1000.0);
    if (!(ms > 0))
        return 0;
    return ms >= (double)INT_MAX ? INT_MAX : (int)ms;
}

void hf_pump_reset(hf_pump *pp)
{
    hf_pump_reset_with(pp, NULL, 0);
}

static void use_slots(hf_pump *pp, hf_pump_slot *slots, size_t cap)
{
    pp->n = 0;
    if (slots && cap > HF_PUMP_MAX_FDS) {
        pp->fds = slots;
        pp->cap = cap;
    } else {
        pp->fds = pp->inl;
        pp->cap = HF_PUMP_MAX_FDS;
    }
}

void hf_pump_reset_with(hf_pump *pp, hf_pump_slot *slots, size_t cap)
{
    pp->epfd = -1;
    pp->regs = NULL;
    pp->nregs = 0;
    pp->round = pp->waits = 0;
    pp->nspecial = 0;
    pp->ctl_errno = 0;
    pp->ctl_fd = -1;
    pp->ctl_calls = 0;
    pp->gens = 0;
    pp->rebuilds = 0;
    use_slots(pp, slots, cap);
}

int hf_pump_open(hf_pump *pp, hf_pump_backend backend, hf_error *err)
{
    hf_pump_reset(pp);
    if (backend == HF_PUMP_POLL)
        return 0;
#ifdef __linux__
    pp->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (pp->epfd < 0)
        return hf_error_set(err, hf_error_code_from_errno(errno),
                            "creating an epoll wait set failed: %s", strerror(errno));
    return 0;
#else
    return hf_error_set(err, "ENOSYS", "the epoll wait set exists only on Linux");
#endif
}

void hf_pump_close(hf_pump *pp)
{
    if (pp->epfd >= 0)
        close(pp->epfd);
    pp->epfd = -1;
    pp->regs = NULL;
    pp->nregs = 0;
}

const char *hf_pump_backend_name(const hf_pump *pp)
{
    return pp->epfd >= 0 ? "epoll" : "poll";
}

hf_pump_backend hf_pump_backend_of(const hf_pump *pp)
{
    return pp->epfd >= 0 ? HF_PUMP_EPOLL : HF_PUMP_POLL;
}

void hf_pump_set_regs(hf_pump *pp, hf_pump_reg *regs, size_t n)
{
    if (pp->epfd < 0)
        return;
    pp->regs = regs;
    pp->nregs = regs ? n : 0;
}

size_t hf_pump_regs(const hf_pump *pp)
{
    return pp->epfd >= 0 ? pp->nregs : 0;
}

void hf_pump_round(hf_pump *pp, hf_pump_slot *slots, size_t cap)
{
    use_slots(pp, slots, cap);
    pp->round++;
    pp->nspecial = 0;
    pp->ctl_errno = 0;
    pp->ctl_fd = -1;
}

unsigned long hf_pump_ctl_calls(const hf_pump *pp)
{
    return pp->ctl_calls;
}

unsigned long hf_pump_rebuilds(const hf_pump *pp)
{
    return pp->rebuilds;
}

size_t hf_pump_count(const hf_pump *pp)
{
    return pp->n;
}

#ifdef __linux__
static unsigned epoll_bits(unsigned events)
{
    return ((events & HF_PUMP_READ) ? (unsigned)EPOLLIN : 0u) |
           ((events & HF_PUMP_WRITE) ? (unsigned)EPOLLOUT : 0u);
}

static unsigned pump_bits(unsigned ev)
{
    return ((ev & EPOLLIN) ? HF_PUMP_READ : 0u) | ((ev & EPOLLOUT) ? HF_PUMP_WRITE : 0u) |
           ((ev & EPOLLHUP) ? HF_PUMP_HUP : 0u) | ((ev & EPOLLERR) ? HF_PUMP_ERR : 0u);
}

/* One epoll_ctl; an ADD or MOD gives the registration a new number, carried
 * in its events with the fd (an event with another number is an orphan's). */
static int ctl(hf_pump *pp, int op, int fd, unsigned events)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = epoll_bits(events);
    unsigned gen = 0;
    if (op != EPOLL_CTL_DEL) {
        gen = ++pp->gens ? pp->gens : ++pp->gens;   /* never 0 */
        ev.data.u64 = (unsigned long long)(unsigned)fd | ((unsigned long long)gen << 32);
    }
    pp->ctl_calls++;
    int rc = epoll_ctl(pp->epfd, op, fd, &ev);
    if (rc == 0 && op != EPOLL_CTL_DEL)
        pp->regs[fd].gen = gen;
    return rc;
}

/* An orphaned registration reported: make the kernel's set anew with this
 * round's fds (every other record forgets its registration). 0 or -1. */
static int rebuild(hf_pump *pp)
{
    int fd = epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0)
        return -1;
    close(pp->epfd);
    pp->epfd = fd;
    pp->rebuilds++;
    for (size_t i = 0; i < pp->nregs; i++)
        pp->regs[i].registered = 0;
    for (size_t i = 0; i < pp->n; i++) {
        hf_pump_reg *r = &pp->regs[pp->fds[i].fd];
        if (r->round == pp->round && !r->special && !r->registered &&
            ctl(pp, EPOLL_CTL_ADD, pp->fds[i].fd, r->want) == 0)
            r->registered = 1;
    }
    return 0;
}

/* Make the kernel's registration of fd what this round wants (epoll). */
static void epoll_register(hf_pump *pp, int fd, unsigned events, unsigned long long key)
{
    hf_pump_reg *r = &pp->regs[fd];
    if (r->round == pp->round) {          /* the same fd twice in one round */
        if (r->special || (r->want | events) == r->want)
            return;
        events |= r->want;
        key = r->key;
    } else {
        r->round = pp->round;
        r->special = 0;
        if (r->registered && key != 0 && r->key == key && r->want == events)
            return;                       /* unchanged since an earlier round */
    }
    int rc = r->registered ? ctl(pp, EPOLL_CTL_MOD, fd, events) : ctl(pp, EPOLL_CTL_ADD, fd, events);
    if (rc < 0 && errno == ENOENT)        /* closed since (the kernel forgot it) */
        rc = ctl(pp, EPOLL_CTL_ADD, fd, events);
    else if (rc < 0 && errno == EEXIST)
        rc = ctl(pp, EPOLL_CTL_MOD, fd, events);
    r->key = key;
    r->want = events;
    r->registered = rc == 0;
    if (rc == 0)
        return;
    if (errno == EBADF)
        r->special = 1;                   /* reported as INVALID, as poll's POLLNVAL */
    else if (errno == EPERM)
        r->special = 2;                   /* a file: always ready, as poll says */
    else if (!pp->ctl_errno) {
        pp->ctl_errno = errno;
        pp->ctl_fd = fd;
        return;
    }
    pp->nspecial++;
}

static int epoll_wait_round(hf_pump *pp, double deadline, double wait, hf_error *err)
{
    struct epoll_event evs[PUMP_EPOLL_BATCH];
    if (pp->ctl_errno)
        return hf_error_set(err, hf_error_code_from_errno(pp->ctl_errno),
                            "watching file descriptor %d failed: %s", pp->ctl_fd,
                            strerror(pp->ctl_errno));
    for (;;) {
        pp->waits++;
        int ms = pp->nspecial ? 0 : hf_pump_timeout_ms(wait);
        int r = epoll_wait(pp->epfd, evs, PUMP_EPOLL_BATCH, ms);
        if (r < 0) {
            if (errno == EINTR)
                return (int)pp->nspecial;
            return hf_error_set(err, hf_error_code_from_errno(errno),
                                "waiting for %zu file descriptors failed: %s", pp->n,
                                strerror(errno));
        }
        int ready = (int)pp->nspecial, orphan = 0;
        for (int i = 0; i < r; i++) {
            int fd = (int)(unsigned)(evs[i].data.u64 & 0xffffffffu);
            unsigned gen = (unsigned)(evs[i].data.u64 >> 32);
            hf_pump_reg *rg = fd >= 0 && (size_t)fd < pp->nregs ? &pp->regs[fd] : NULL;
            if (!rg || !rg->registered || rg->gen != gen) {
                orphan = 1;   /* a file closed here but open elsewhere */
                continue;
            }
            if (rg->round != pp->round) {
                /* registered in an earlier round, not wanted now: out it goes
                 * (by its number: if that names another file now, it is an orphan) */
                if (ctl(pp, EPOLL_CTL_DEL, fd, 0) != 0)
                    orphan = 1;
                rg->registered = 0;
                continue;
            }
            rg->got = pump_bits(evs[i].events);
            rg->seen = pp->waits;
            ready++;
        }
        if (orphan && rebuild(pp) != 0)
            return hf_error_set(err, hf_error_code_from_errno(errno),
                                "making the epoll wait set anew failed: %s", strerror(errno));
        if (ready > 0 || r == 0)
            return ready;
        /* only stale fds woke us: wait the rest of the time */
        if (deadline >= 0) {
            wait = deadline - hf_pump_now();
            if (wait <= 0)
                return 0;
        }
    }
}
#endif

int hf_pump_add_keyed(hf_pump *pp, int fd, unsigned events, unsigned long long key)
{
    if (fd < 0 || pp->n >= pp->cap)
        return -1;
    events &= HF_PUMP_READ | HF_PUMP_WRITE;
#ifdef __linux__
    if (pp->epfd >= 0) {
        if ((size_t)fd >= pp->nregs)
            return -1;
        epoll_register(pp, fd, events, key);
    }
#else
    (void)key;
#endif
    struct pollfd *p = &pp->fds[pp->n];
    p->fd = fd;
    p->events = (short)(((events & HF_PUMP_READ) ? POLLIN : 0) |
                        ((events & HF_PUMP_WRITE) ? POLLOUT : 0));
    p->revents = 0;
    return (int)pp->n++;
}

int hf_pump_add(hf_pump *pp, int fd, unsigned events)
{
    return hf_pump_add_keyed(pp, fd, events, 0);
}

int hf_pump_wait(hf_pump *pp, double deadline, hf_error *err)
{
    double wait = HF_PUMP_MAX_WAIT;
    if (deadline >= 0) {
        double left = deadline - hf_pump_now();
        if (left < wait)
            wait = left;
    }
#ifdef __linux__
    if (pp->epfd >= 0)
        return epoll_wait_round(pp, deadline, wait, err);
#endif
    for (size_t i = 0; i < pp->n; i++)
        pp->fds[i].revents = 0;
    int r = poll(pp->fds, (nfds_t)pp->n, hf_pump_timeout_ms(wait));
    if (r < 0) {
        if (errno == EINTR)
            return 0;
        return hf_error_set(err, hf_error_code_from_errno(errno),
                            "waiting for %zu file descriptors failed: %s", pp->n,
                            strerror(errno));
    }
    return r;
}

unsigned hf_pump_ready(const hf_pump *pp, int slot)
{
    if (slot < 0 || (size_t)slot >= pp->n)
        return 0;
    if (pp->epfd >= 0) {
        const hf_pump_slot *s = &pp->fds[slot];
        const hf_pump_reg *rg = &pp->regs[s->fd];
        unsigned want = ((s->events & POLLIN) ? HF_PUMP_READ : 0u) |
                        ((s->events & POLLOUT) ? HF_PUMP_WRITE : 0u);
        if (rg->round != pp->round)
            return 0;
        if (rg->special == 1)
            return HF_PUMP_INVALID;
        if (rg->special == 2)
            return want;
        if (rg->seen != pp->waits)
            return 0;
        return rg->got & (want | HF_PUMP_HUP | HF_PUMP_ERR);
    }
    short r = pp->fds[slot].revents;
    return ((r & POLLIN) ? HF_PUMP_READ : 0u) | ((r & POLLOUT) ? HF_PUMP_WRITE : 0u) |
           ((r & POLLHUP) ? HF_PUMP_HUP : 0u) | ((r & POLLERR) ? HF_PUMP_ERR : 0u) |
           ((r & POLLNVAL) ? HF_PUMP_INVALID : 0u);
}

unsigned hf_pump_port_events(hf_at *at)
{
    const char *data;
    return HF_PUMP_READ | (hf_at_output(at, &data) > 0 ? HF_PUMP_WRITE : 0u);
}

int hf_pump_flush(hf_transport *tr, hf_at *at, hf_error *err)
{
    const char *data;
    size_t n;
    while ((n = hf_at_output(at, &data)) > 0) {
        ssize_t w = hf_transport_write(tr, data, n, err);
        if (w < 0)
            return -1;
        if (w == 0)
            return 0; /* would block: the next wait asks for WRITE */
        hf_at_wrote(at, (size_t)w, hf_pump_now());
    }
    return 0;
}

int hf_pump_drain(hf_transport *tr, hf_at *at, hf_error *err)
{
    char buf[HF_PUMP_READ_CHUNK];
    for (int i = 0; i < HF_PUMP_READS_PER_STEP; i++) {
        ssize_t n = hf_transport_read(tr, buf, sizeof buf, err);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        hf_at_input(at, buf, (size_t)n, hf_pump_now());
        if ((size_t)n < sizeof buf)
            return 0;   /* all there was: the next wait reports more */
    }
    return 0;
}

int hf_pump_port_ready(hf_transport *tr, hf_at *at, unsigned ready, hf_error *err)
{
    if ((ready & HF_PUMP_READ) && hf_pump_drain(tr, at, err) < 0)
        return -1;
    if (ready & (HF_PUMP_HUP | HF_PUMP_ERR | HF_PUMP_INVALID)) {
        short revents = (short)(((ready & HF_PUMP_READ) ? POLLIN : 0) |
                                ((ready & HF_PUMP_HUP) ? POLLHUP : 0) |
                                ((ready & HF_PUMP_ERR) ? POLLERR : 0) |
                                ((ready & HF_PUMP_INVALID) ? POLLNVAL : 0));
        if (hf_transport_check_revents(tr, revents, err) < 0)
            return -1;
    }
    return hf_pump_flush(tr, at, err);
}
