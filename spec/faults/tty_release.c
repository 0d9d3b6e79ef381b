/*
 * tty_release.c — do for a simulated port what the kernel does for a real one
 * when its last holder dies: drop the exclusive mode (TIOCEXCL).
 *
 * hwfota takes its port with flock + TIOCEXCL and drops TIOCEXCL when it closes
 * it. A host process that is SIGKILLed cannot: on a real ttyUSB the kernel frees
 * the tty at its last close and the flag goes with it, but hwfota-sim keeps its
 * own slave fd open, so the pty never sees a last close and stays exclusive.
 * The fault campaign runs this after it killed a host process, before starting
 * the next one. It only clears the flag when nobody holds the port's flock (a
 * live hwfota would). Needs root (TIOCEXCL refuses other openers).
 *
 *   tty-release PATH      exit 0: released or not exclusive; 1: held; 2: error
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: tty-release PATH\n");
        return 2;
    }
    int fd = open(argv[1], O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return 0;       /* port gone: nothing to release */
        fprintf(stderr, "tty-release: open %s: %s\n", argv[1], strerror(errno));
        return 2;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return 1;                            /* a live process holds it */
    }
    int rc = 0;
    if (ioctl(fd, TIOCNXCL) != 0) {
        fprintf(stderr, "tty-release: TIOCNXCL %s: %s\n", argv[1], strerror(errno));
        rc = 2;
    }
    close(fd);
    return rc;
}
