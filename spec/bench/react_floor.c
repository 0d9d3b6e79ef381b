/*
 * react_floor.c — `make bench`, row B3: the floor. The least a program can do
 * to react to a line on a tty: poll(2) on the fd, read(2), find the line.
 * Run by react_driver (BENCH_TTY names the pty); prints n, median_us, p99_us.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAXN 100000

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(void)
{
    static double lat[MAXN];
    const char *path = getenv("BENCH_TTY");
    int fd = path ? open(path, O_RDWR | O_NOCTTY | O_NONBLOCK) : -1;
    if (fd < 0) {
        perror("react_floor: open BENCH_TTY");
        return 1;
    }
    struct termios t;
    tcgetattr(fd, &t);
    cfmakeraw(&t);
    tcsetattr(fd, TCSANOW, &t);
    printf("ready\n");
    fflush(stdout);
    char buf[4096];
    size_t have = 0, n = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, -1) < 0)
            continue;
        ssize_t r = read(fd, buf + have, sizeof buf - have - 1);
        if (r <= 0)
            continue;
        long long t_now = now_ns();
        have += (size_t)r;
        buf[have] = 0;
        char *s = buf, *nl;
        while ((nl = memchr(s, '\n', have - (size_t)(s - buf))) != NULL) {
            *nl = 0;
            if (strncmp(s, "^BENCHEND", 9) == 0) {
                qsort(lat, n, sizeof lat[0], cmp);
                printf("n=%zu median_us=%.1f p99_us=%.1f\n", n, n ? lat[n / 2] : 0,
                       n ? lat[(n * 99) / 100] : 0);
                return 0;
            }
            if (strncmp(s, "^BENCH: ", 8) == 0 && n < MAXN)
                lat[n++] = (double)(t_now - atoll(s + 8)) / 1000.0;
            s = nl + 1;
        }
        have -= (size_t)(s - buf);
        memmove(buf, s, have);
        if (have >= sizeof buf - 1)
            have = 0;
    }
}
