/*
 * react_driver.c — writes unsolicited lines into a pty and lets a subject
 * program time them: `make bench` row B3 (reaction) and spec/syscalls_spec.lua
 * (syscalls per wake).
 *
 *   react_driver COUNT GAP_US PROGRAM [ARG...]
 *
 * Opens a pty (raw), starts PROGRAM with BENCH_TTY=<slave path> in its
 * environment and its stdout on a pipe, waits for its line "ready", then
 * writes COUNT lines "^BENCH: <t>" (t: CLOCK_MONOTONIC in ns when written),
 * GAP_US microseconds apart (one wake each), and "^BENCHEND: 0". The subject
 * answers each ^BENCH line in its own callback with (its clock - t) and, after
 * ^BENCHEND, prints its figures; they are copied to our stdout. What the
 * subject writes to the port is read and dropped. Exit status: the subject's.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void drop_input(int fd)
{
    char buf[512];
    while (read(fd, buf, sizeof buf) > 0) {
    }
}

static int put_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && (errno == EINTR || errno == EAGAIN)) {
            drop_input(fd);
            usleep(1000);
            continue;
        }
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: react_driver COUNT GAP_US PROGRAM [ARG...]\n");
        return 2;
    }
    int count = atoi(argv[1]);
    int gap = atoi(argv[2]);
    int master, slave;
    char name[128];
    if (openpty(&master, &slave, name, NULL, NULL) != 0) {
        perror("openpty");
        return 1;
    }
    struct termios t;
    tcgetattr(slave, &t);
    cfmakeraw(&t);
    tcsetattr(slave, TCSANOW, &t);
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    int out[2];
    if (pipe(out) != 0) {
        perror("pipe");
        return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        close(master);
        close(slave);
        close(out[0]);
        dup2(out[1], 1);
        close(out[1]);
        setenv("BENCH_TTY", name, 1);
        execvp(argv[3], argv + 3);
        fprintf(stderr, "react_driver: cannot run %s: %s\n", argv[3], strerror(errno));
        _exit(127);
    }
    close(out[1]);
    FILE *from = fdopen(out[0], "r");
    char line[512];
    if (!fgets(line, sizeof line, from) || strncmp(line, "ready", 5) != 0) {
        fprintf(stderr, "react_driver: %s did not say ready\n", argv[3]);
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        return 1;
    }
    /* the slave stays open here too: no hang-up between the subject's opens */
    usleep(100000);
    drop_input(master);
    for (int i = 0; i < count; i++) {
        char msg[64];
        int n = snprintf(msg, sizeof msg, "\r\n^BENCH: %lld\r\n", now_ns());
        if (put_all(master, msg, (size_t)n) != 0) {
            fprintf(stderr, "react_driver: write failed: %s\n", strerror(errno));
            break;
        }
        usleep((useconds_t)gap);
        drop_input(master);
    }
    put_all(master, "\r\n^BENCHEND: 0\r\n", 16);
    while (fgets(line, sizeof line, from))
        fputs(line, stdout);
    int status = 0;
    waitpid(pid, &status, 0);
    close(master);
    close(slave);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
