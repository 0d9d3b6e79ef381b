/*
 * io_pump.c — the clock, the wait set over poll(2), and the byte pump between
 * a transport and its AT engine (see io_pump.h).
 */
#include "io_pump.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <time.h>

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
    pp->n = 0;
}

size_t hf_pump_count(const hf_pump *pp)
{
    return pp->n;
}

int hf_pump_add(hf_pump *pp, int fd, unsigned events)
{
    if (fd < 0 || pp->n >= HF_PUMP_MAX_FDS)
        return -1;
    struct pollfd *p = &pp->fds[pp->n];
    p->fd = fd;
    p->events = (short)(((events & HF_PUMP_READ) ? POLLIN : 0) |
                        ((events & HF_PUMP_WRITE) ? POLLOUT : 0));
    p->revents = 0;
    return (int)pp->n++;
}

int hf_pump_wait(hf_pump *pp, double deadline, hf_error *err)
{
    double wait = HF_PUMP_MAX_WAIT;
    if (deadline >= 0) {
        double left = deadline - hf_pump_now();
        if (left < wait)
            wait = left;
    }
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
