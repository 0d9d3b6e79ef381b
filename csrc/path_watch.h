/*
 * path_watch.h — the path watcher: tells when names appear in directories, through
 * one fd a poll loop waits on. Transport level, no Lua, no AT.
 *
 * After the module's reset its port comes back as a new device node (/dev/ttyUSBn,
 * created then given its permissions) and a new /dev/serial/by-id link (a temporary
 * link renamed over the name). Waiting for that with a back-off costs up to its
 * longest wait; the watcher wakes the caller at once instead. Linux inotify: each
 * watched directory reports names created (IN_CREATE), moved in (IN_MOVED_TO) or
 * changed (IN_ATTRIB: permissions set after the node was created), and the
 * directory itself going away. Elsewhere hf_pw_open fails ENOTSUP, and the caller
 * keeps trying periodically (the watcher only ever makes a try earlier).
 *
 * The kernel's event stream is read into a bounded buffer inside hf_pw (no
 * allocation), one read per hf_pw_read, and every event is checked against the
 * bytes read before use; a queue overflow, or bytes that do not parse, are
 * reported as one HF_PW_OVERFLOW event: "something may have changed, try now".
 */
#ifndef HF_PATH_WATCH_H
#define HF_PATH_WATCH_H

#include <limits.h>
#include <stddef.h>

#include "hf_error.h"

#ifndef NAME_MAX
#define NAME_MAX 255
#endif

/* Bytes read per hf_pw_read: 16 events with the longest names (a read never
 * splits an event; one that does not fit stays queued for the next read). */
#define HF_PW_BUF (16 * (16 + NAME_MAX + 1))

typedef enum {
    HF_PW_APPEARED = 1, /* a name was created, moved in, or its attributes changed */
    HF_PW_GONE     = 2, /* a name was deleted or moved out */
    HF_PW_DIR_GONE = 3, /* the watched directory went away: its watch is over */
    HF_PW_OVERFLOW = 4  /* events were lost (or unreadable): anything may have changed */
} hf_pw_kind;

typedef struct {
    int wd;             /* the watch (hf_pw_add's answer); -1 for HF_PW_OVERFLOW */
    hf_pw_kind kind;
    const char *name;   /* the name in the directory ("" when none); valid during the callback */
} hf_pw_event;

typedef struct hf_pw {
    int fd;
    /* aligned for struct inotify_event */
    union { char bytes[HF_PW_BUF]; long long align; } buf;
} hf_pw;

typedef void (*hf_pw_cb)(const hf_pw_event *ev, void *ctx);

/* Open the watcher (non-blocking, close-on-exec). Returns 0, or -1 with err
 * (ENOTSUP where there is no inotify, EMFILE ...); w->fd is then -1. */
int hf_pw_open(hf_pw *w, hf_error *err);

/* The fd to wait on for reading (-1 when closed). */
int hf_pw_fd(const hf_pw *w);

/* Watch directory `dir`. Returns its watch descriptor (>= 0; the same one for a
 * directory already watched), or -1 with err (ENOENT: no such directory yet,
 * ENOTDIR, EACCES ...). */
int hf_pw_add(hf_pw *w, const char *dir, hf_error *err);

/* Stop watching (a watch whose directory went away is over already: 0 too).
 * Returns 0, or -1 with err. */
int hf_pw_remove(hf_pw *w, int wd, hf_error *err);

/* One read of what is queued: cb(event, ctx) for each event. Returns the number
 * of events reported (0: nothing was queued), or -1 with err. */
int hf_pw_read(hf_pw *w, hf_pw_cb cb, void *ctx, hf_error *err);

/* Parse `n` bytes of an inotify event stream (what hf_pw_read read) and report
 * each event; stops at the first event that does not fit in the bytes or whose
 * name is not terminated, reporting HF_PW_OVERFLOW for the rest. Returns the
 * number of events reported. Exposed for the tests. */
int hf_pw_parse(const char *bytes, size_t n, hf_pw_cb cb, void *ctx);

/* Close the watcher (idempotent). */
void hf_pw_close(hf_pw *w);

#endif
