/*
 * babble_preload.c — LD_PRELOAD library for spec/babble_spec.lua: a terminal
 * that never stops talking. On every tty fd, poll() reports input at once and
 * read() fills the buffer with "^RSSI: 20\r\n" lines, so a reader that reads
 * "until nothing is left" never gets out. Writes and other fds are untouched.
 */
#include <dlfcn.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

static int is_tty(int fd)
{
    return fd >= 0 && isatty(fd);
}

ssize_t read(int fd, void *buf, size_t n)
{
    if (is_tty(fd) && n > 0) {
        static const char line[] = "^RSSI: 20\r\n";
        char *b = buf;
        for (size_t i = 0; i < n; i++)
            b[i] = line[i % (sizeof line - 1)];
        return (ssize_t)n;
    }
    ssize_t (*real)(int, void *, size_t) = (ssize_t (*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
    return real(fd, buf, n);
}

int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    int ready = 0;
    for (nfds_t i = 0; i < nfds; i++) {
        fds[i].revents = 0;
        if (is_tty(fds[i].fd) && (fds[i].events & POLLIN)) {
            fds[i].revents = POLLIN;
            ready++;
        }
    }
    if (ready)
        return ready;
    int (*real)(struct pollfd *, nfds_t, int) =
        (int (*)(struct pollfd *, nfds_t, int))dlsym(RTLD_NEXT, "poll");
    return real(fds, nfds, timeout);
}
