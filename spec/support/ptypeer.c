/*
 * ptypeer.c — a scripted pseudo-terminal peer for the Lua API specs.
 *
 * Creates a pty, prints "ready <slave path>" on stdout, then follows a script
 * (file given as argv[1], or stdin with "-") one line at a time:
 *   expect TEXT     wait (at most 10 s) for the host to send the command TEXT
 *                   (terminated by CR); anything else received first fails
 *   send TEXT       send "\r\nTEXT\r\n" (a module's response/URC framing)
 *   raw TEXT        send TEXT as is; escapes \r \n \t \\ \xHH are decoded
 *   echo on|off     echo every received command line back (as a module does)
 *   sleep SECONDS   wait without reading (what the host sends stays queued)
 *   hangup          close the pty (the host sees the port vanish)
 *   # ...           comment
 * Exits 0 when the script ran to its end, 1 with a message on stderr otherwise.
 * Every received line is appended to the file named by $PTYPEER_LOG, if set.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_LEN 8192

typedef struct peer {
    int master;
    int echo;
    char rx[LINE_MAX_LEN];
    size_t rx_len;
    FILE *log;
} peer;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && (errno == EINTR || errno == EAGAIN)) {
            struct pollfd p = {fd, POLLOUT, 0};
            poll(&p, 1, 100);
            continue;
        }
        if (w <= 0)
            return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Decode \r \n \t \\ \xHH in place; returns the decoded length. */
static size_t unescape(char *s)
{
    char *o = s;
    for (char *i = s; *i; i++) {
        if (*i != '\\' || !i[1]) {
            *o++ = *i;
            continue;
        }
        i++;
        switch (*i) {
        case 'r': *o++ = '\r'; break;
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'x':
            if (i[1] && i[2]) {
                char hex[3] = {i[1], i[2], 0};
                *o++ = (char)strtol(hex, NULL, 16);
                i += 2;
            }
            break;
        default: *o++ = *i; break;
        }
    }
    return (size_t)(o - s);
}

/* Receive until a complete command line is available or the deadline passes.
 * Returns 1 with the line in `out`, 0 on timeout, -1 on error. */
static int receive_line(peer *p, double deadline, char *out, size_t cap)
{
    for (;;) {
        char *cr = memchr(p->rx, '\r', p->rx_len);
        if (cr) {
            size_t n = (size_t)(cr - p->rx);
            size_t keep = n < cap - 1 ? n : cap - 1;
            memcpy(out, p->rx, keep);
            out[keep] = '\0';
            size_t skip = n + 1;
            if (skip < p->rx_len && p->rx[skip] == '\n')
                skip++;
            memmove(p->rx, p->rx + skip, p->rx_len - skip);
            p->rx_len -= skip;
            if (p->log) {
                fprintf(p->log, "%s\n", out);
                fflush(p->log);
            }
            if (p->echo) {
                write_all(p->master, out, strlen(out));
                write_all(p->master, "\r", 1);
            }
            return 1;
        }
        double left = deadline - now_s();
        if (left <= 0)
            return 0;
        struct pollfd pfd = {p->master, POLLIN, 0};
        int r = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        if (p->rx_len == sizeof p->rx)
            return -1;
        ssize_t n = read(p->master, p->rx + p->rx_len, sizeof p->rx - p->rx_len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0) {
            /* the host closed the slave: nothing more will come; wait quietly */
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        p->rx_len += (size_t)n;
    }
}

static int run_line(peer *p, char *line, int lineno)
{
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    if (len == 0 || line[0] == '#')
        return 0;
    char *arg = strchr(line, ' ');
    if (arg)
        *arg++ = '\0';
    else
        arg = line + len;
    char got[LINE_MAX_LEN];
    if (strcmp(line, "expect") == 0) {
        unescape(arg);
        int r = receive_line(p, now_s() + 10.0, got, sizeof got);
        if (r != 1) {
            fprintf(stderr, "ptypeer: line %d: expected \"%s\", got %s\n", lineno, arg,
                    r == 0 ? "nothing within 10 s" : "an error");
            return -1;
        }
        if (strcmp(got, arg) != 0) {
            fprintf(stderr, "ptypeer: line %d: expected \"%s\", got \"%s\"\n", lineno, arg, got);
            return -1;
        }
    } else if (strcmp(line, "send") == 0) {
        size_t n = unescape(arg);
        if (write_all(p->master, "\r\n", 2) < 0 || write_all(p->master, arg, n) < 0 ||
            write_all(p->master, "\r\n", 2) < 0)
            return -1;
    } else if (strcmp(line, "raw") == 0) {
        size_t n = unescape(arg);
        if (write_all(p->master, arg, n) < 0)
            return -1;
    } else if (strcmp(line, "echo") == 0) {
        p->echo = strcmp(arg, "on") == 0;
    } else if (strcmp(line, "sleep") == 0) {
        /* receive nothing meanwhile: what the host sends stays queued in the pty */
        double s = atof(arg);
        struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
        nanosleep(&ts, NULL);
    } else if (strcmp(line, "hangup") == 0) {
        close(p->master);
        p->master = -1;
    } else {
        fprintf(stderr, "ptypeer: line %d: unknown directive \"%s\"\n", lineno, line);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: ptypeer SCRIPT|-\n");
        return 2;
    }
    FILE *script = strcmp(argv[1], "-") == 0 ? stdin : fopen(argv[1], "r");
    if (!script) {
        perror(argv[1]);
        return 2;
    }
    peer p = {.master = -1};
    int slave;
    char name[256];
    struct termios tio;
    memset(&tio, 0, sizeof tio);
    cfmakeraw(&tio);
    if (openpty(&p.master, &slave, name, &tio, NULL) < 0) {
        perror("openpty");
        return 2;
    }
    /* Keep no slave fd: when the host closes it we must not hold the line up. */
    close(slave);
    const char *logpath = getenv("PTYPEER_LOG");
    if (logpath && *logpath)
        p.log = fopen(logpath, "a");
    printf("ready %s\n", name);
    fflush(stdout);
    char line[LINE_MAX_LEN];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, script)) {
        lineno++;
        if (p.master < 0 && strncmp(line, "hangup", 6) != 0 && line[0] != '#' && line[0] != '\n') {
            fprintf(stderr, "ptypeer: line %d: the pty is already closed\n", lineno);
            rc = 1;
            break;
        }
        if (run_line(&p, line, lineno) < 0) {
            rc = 1;
            break;
        }
    }
    if (p.master >= 0) {
        /* let the host read the last bytes before the pty disappears */
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
        close(p.master);
    }
    if (p.log)
        fclose(p.log);
    return rc;
}
