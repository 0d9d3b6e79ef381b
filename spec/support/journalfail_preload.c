/*
 * journalfail_preload.c — LD_PRELOAD library for spec/journal_safety_spec.lua and the
 * fault campaign: the journal's writes start failing after N of them (a file system
 * filling up, going read-only, a dying flash).
 *
 * A "journal write" is one temporary file created (O_CREAT) whose name contains
 * ".tmp." or ends in ".tmp" (hwfota.core.write_file_atomic, before and after it
 * got unique temporary names). The first JFAIL_AFTER of them
 * (default 0) go through; from then on every one fails at JFAIL_OP:
 *   create  the open() itself         write  the first write() to it (default)
 *   fsync   its fsync()               rename its rename() over the journal
 * with errno JFAIL_ERRNO (ENOSPC (default), EROFS, EIO or EDQUOT). JFAIL_ONLY=1: only
 * that one write fails, the later ones go through again (a transient error). With
 * JFAIL_LOG ("stderr" or a file to append to), each journal write is announced
 * ("jfail: write N ok|fails ... t=<CLOCK_MONOTONIC s>"), so a test can order it
 * against the host's own trace (hwfota.now() is the same clock). Nothing else is
 * touched.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int n_writes;          /* journal writes seen so far */
static int failing_fd = -1;   /* the temporary file of a failing write */
static char failing_name[4096];

static int after(void)
{
    const char *s = getenv("JFAIL_AFTER");
    return s ? atoi(s) : 0;
}

static const char *op(void)
{
    const char *s = getenv("JFAIL_OP");
    return s && *s ? s : "write";
}

static int fail_errno(void)
{
    const char *s = getenv("JFAIL_ERRNO");
    if (!s || !strcmp(s, "ENOSPC"))
        return ENOSPC;
    if (!strcmp(s, "EROFS"))
        return EROFS;
    if (!strcmp(s, "EIO"))
        return EIO;
    if (!strcmp(s, "EDQUOT"))
        return EDQUOT;
    return ENOSPC;
}

static int (*real_open(void))(const char *, int, ...)
{
    return (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
}

static void say(const char *what)
{
    const char *to = getenv("JFAIL_LOG");
    if (!to || !*to)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char buf[160];
    int n = snprintf(buf, sizeof buf, "jfail: write %d %s t=%.6f\n", n_writes, what,
                     (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    if (n <= 0 || (size_t)n >= sizeof buf)
        return;
    ssize_t (*real_write)(int, const void *, size_t) =
        (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    int fd = 2;
    if (strcmp(to, "stderr") != 0) {
        fd = real_open()(to, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0)
            return;
    }
    (void)!real_write(fd, buf, (size_t)n);
    if (fd != 2) {
        int (*real_close)(int) = (int (*)(int))dlsym(RTLD_NEXT, "close");
        real_close(fd);
    }
}

int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    size_t pl = strlen(path);
    int journal = (flags & O_CREAT) && (strstr(path, ".tmp.") != NULL ||
                                        (pl > 4 && !strcmp(path + pl - 4, ".tmp")));
    if (journal) {
        n_writes++;
        const char *only = getenv("JFAIL_ONLY");
        int fails = only && !strcmp(only, "1") ? n_writes == after() + 1 : n_writes > after();
        say(fails ? (strcmp(op(), "create") ? "fails later" : "fails at create") : "ok");
        if (fails && !strcmp(op(), "create")) {
            errno = fail_errno();
            return -1;
        }
        int fd = real_open()(path, flags, mode);
        if (fd >= 0 && fails) {
            failing_fd = fd;
            snprintf(failing_name, sizeof failing_name, "%s", path);
        }
        return fd;
    }
    return real_open()(path, flags, mode);
}

/* The C core is built with -D_FILE_OFFSET_BITS=64 (the Makefile's LFS_FLAGS): its
 * open() calls reach the library as open64. */
int open64(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    return open(path, flags, mode);
}

ssize_t write(int fd, const void *buf, size_t len)
{
    if (fd >= 0 && fd == failing_fd && !strcmp(op(), "write")) {
        errno = fail_errno();
        return -1;
    }
    ssize_t (*real)(int, const void *, size_t) =
        (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    return real(fd, buf, len);
}

int fsync(int fd)
{
    if (fd >= 0 && fd == failing_fd && !strcmp(op(), "fsync")) {
        errno = fail_errno();
        return -1;
    }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}

int close(int fd)
{
    if (fd >= 0 && fd == failing_fd)
        failing_fd = -1;
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "close");
    return real(fd);
}

int rename(const char *from, const char *to)
{
    if (failing_name[0] && !strcmp(from, failing_name)) {
        failing_name[0] = '\0';
        if (!strcmp(op(), "rename")) {
            errno = fail_errno();
            return -1;
        }
    }
    int (*real)(const char *, const char *) =
        (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    return real(from, to);
}
