/*
 * polltimeout_preload.c — LD_PRELOAD library that checks the timeouts hwfota
 * hands to poll(), for spec/poll_limits_spec.lua.
 *
 * The same for epoll_wait (hwfota.core.poll's wait set is epoll on Linux).
 *
 * A negative timeout means "wait forever": hwfota never asks for that (it always
 * has a bound), so one is reported on stderr and the process exits 99 at once
 * instead of hanging the suite. A timeout longer than one hour is answered
 * "nothing happened" at once (as if it had elapsed), after printing it on stderr
 * as "poll-timeout-ms <n>", so a test can ask for a 30-day wait and see what
 * reached the kernel without waiting for it. Shorter timeouts go to the real poll.
 */
#include <dlfcn.h>
#include <poll.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <unistd.h>

/* The check both waits share: a negative timeout (an endless wait) ends the process
 * with 99; one over an hour is reported and the wait returns at once. */
static int overlong(int timeout)
{
    if (timeout < 0) {
        fprintf(stderr, "poll-negative-timeout %d\n", timeout);
        fflush(stderr);
        _exit(99);
    }
    if (timeout > 3600 * 1000) {
        fprintf(stderr, "poll-timeout-ms %d\n", timeout);
        return 1;
    }
    return 0;
}

int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    if (overlong(timeout)) {
        for (nfds_t i = 0; i < nfds; i++)
            fds[i].revents = 0;
        return 0;
    }
    int (*real)(struct pollfd *, nfds_t, int) =
        (int (*)(struct pollfd *, nfds_t, int))dlsym(RTLD_NEXT, "poll");
    return real(fds, nfds, timeout);
}

int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
    if (overlong(timeout))
        return 0;
    int (*real)(int, struct epoll_event *, int, int) =
        (int (*)(int, struct epoll_event *, int, int))dlsym(RTLD_NEXT, "epoll_wait");
    return real(epfd, events, maxevents, timeout);
}
