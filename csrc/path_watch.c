/*
 * path_watch.c — the path watcher (path_watch.h): inotify on directories, its
 * event stream read into a bounded buffer and checked before use.
 */
#include "path_watch.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#ifdef __linux__
#include <sys/inotify.h>

_Static_assert(sizeof(struct inotify_event) <= 16, "HF_PW_BUF assumes 16-byte event headers");
_Static_assert(HF_PW_BUF >= sizeof(struct inotify_event) + NAME_MAX + 1,
               "the buffer must hold the longest event (a smaller read fails EINVAL)");

#define PW_MASK (IN_CREATE | IN_MOVED_TO | IN_ATTRIB | IN_DELETE | IN_MOVED_FROM | \
                 IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
#endif

int hf_pw_open(hf_pw *w, hf_error *err)
{
    w->fd = -1;
#ifdef __linux__
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return hf_error_set(err, hf_error_code_from_errno(e),
                            "cannot watch for the port's return (inotify_init1): %s", strerror(e));
    }
    w->fd = fd;
    return 0;
#else
    return hf_error_set(err, "ENOTSUP", "cannot watch for the port's return: no inotify on this system");
#endif
}

int hf_pw_fd(const hf_pw *w)
{
    return w->fd;
}

int hf_pw_add(hf_pw *w, const char *dir, hf_error *err)
{
    if (w->fd < 0) return hf_error_set(err, "ECLOSED", "the path watcher is closed");
#ifdef __linux__
    int wd = inotify_add_watch(w->fd, dir, PW_MASK);
    if (wd < 0) {
        int e = errno;
        return hf_error_set(err, hf_error_code_from_errno(e), "cannot watch directory %s: %s",
                            dir, strerror(e));
    }
    return wd;
#else
    (void)dir;
    return hf_error_set(err, "ENOTSUP", "no inotify on this system");
#endif
}

int hf_pw_remove(hf_pw *w, int wd, hf_error *err)
{
    if (w->fd < 0) return hf_error_set(err, "ECLOSED", "the path watcher is closed");
#ifdef __linux__
    /* EINVAL: the kernel ended the watch already (its directory went away) */
    if (inotify_rm_watch(w->fd, wd) < 0 && errno != EINVAL) {
        int e = errno;
        return hf_error_set(err, hf_error_code_from_errno(e), "cannot stop watch %d: %s", wd,
                            strerror(e));
    }
    return 0;
#else
    (void)wd;
    return hf_error_set(err, "ENOTSUP", "no inotify on this system");
#endif
}

int hf_pw_parse(const char *bytes, size_t n, hf_pw_cb cb, void *ctx)
{
    int count = 0;
#ifdef __linux__
    size_t off = 0;
    const size_t head = sizeof(struct inotify_event);
    while (off < n) {
        struct inotify_event ev;
        hf_pw_event out = {.wd = -1, .kind = HF_PW_OVERFLOW, .name = ""};
        if (n - off < head) {   /* a truncated header: not what the kernel writes */
            cb(&out, ctx);
            return count + 1;
        }
        memcpy(&ev, bytes + off, head);   /* no alignment assumed on the input */
        const char *name = bytes + off + head;
        if (ev.len > n - off - head || (ev.len > 0 && !memchr(name, '\0', ev.len))) {
            cb(&out, ctx);
            return count + 1;
        }
        off += head + ev.len;
        if (ev.mask & IN_Q_OVERFLOW) {
            out.kind = HF_PW_OVERFLOW;
        } else if (ev.mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) {
            out.kind = HF_PW_DIR_GONE;
            out.wd = ev.wd;
        } else if (ev.mask & (IN_CREATE | IN_MOVED_TO | IN_ATTRIB)) {
            out.kind = HF_PW_APPEARED;
            out.wd = ev.wd;
            out.name = ev.len > 0 ? name : "";
        } else if (ev.mask & (IN_DELETE | IN_MOVED_FROM)) {
            out.kind = HF_PW_GONE;
            out.wd = ev.wd;
            out.name = ev.len > 0 ? name : "";
        } else {
            continue;   /* nothing a waiter asked for */
        }
        cb(&out, ctx);
        count++;
    }
#else
    (void)bytes;
    (void)n;
    (void)cb;
    (void)ctx;
#endif
    return count;
}

int hf_pw_read(hf_pw *w, hf_pw_cb cb, void *ctx, hf_error *err)
{
    if (w->fd < 0) return hf_error_set(err, "ECLOSED", "the path watcher is closed");
    ssize_t r;
    do {
        r = read(w->fd, w->buf.bytes, sizeof w->buf.bytes);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK) return 0;
        return hf_error_set(err, hf_error_code_from_errno(e), "cannot read the path watcher: %s",
                            strerror(e));
    }
    return hf_pw_parse(w->buf.bytes, (size_t)r, cb, ctx);
}

void hf_pw_close(hf_pw *w)
{
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
}
