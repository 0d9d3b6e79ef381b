/*
 * test_path_watch.c — the path watcher (path_watch.h) on a temporary directory:
 * a name created, renamed in over an old one (as a by-id link is published), its
 * permissions changed, deleted; the fd ready for poll exactly when something is
 * queued; a missing directory refused with ENOENT; the directory removed; a real
 * queue overflow reported as HF_PW_OVERFLOW; and the parser against bytes that
 * are not what the kernel writes (truncated header, name past the end, name not
 * terminated).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "path_watch.h"

#define MAX_SEEN 64

typedef struct {
    int n;
    int wd[MAX_SEEN];
    hf_pw_kind kind[MAX_SEEN];
    char name[MAX_SEEN][NAME_MAX + 1];
    long total;
    int overflows;
} seen;

static void record(const hf_pw_event *ev, void *ctx)
{
    seen *s = ctx;
    s->total++;
    if (ev->kind == HF_PW_OVERFLOW) s->overflows++;
    if (s->n >= MAX_SEEN) return;
    s->wd[s->n] = ev->wd;
    s->kind[s->n] = ev->kind;
    snprintf(s->name[s->n], sizeof s->name[s->n], "%s", ev->name);
    s->n++;
}

/* Read everything queued into s (a few reads: one is bounded by HF_PW_BUF). */
static int drain(hf_pw *w, seen *s)
{
    memset(s, 0, sizeof *s);
    hf_error err;
    int total = 0, r;
    while ((r = hf_pw_read(w, record, s, &err)) > 0) total += r;
    REQUIRE(r == 0, "hf_pw_read: %s", err.msg);
    return total;
}

static int has(const seen *s, hf_pw_kind kind, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (s->kind[i] == kind && (!name || strcmp(s->name[i], name) == 0)) return 1;
    return 0;
}

static int ready(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

static void touch(const char *path)
{
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0, "create %s: %s", path, strerror(errno));
    close(fd);
}

static void test_events(void)
{
    char dir[] = "/tmp/hwfota-pw.XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    char path[256], tmp[256];
    snprintf(path, sizeof path, "%s/ttyUSB2", dir);
    snprintf(tmp, sizeof tmp, "%s/ttyUSB2.tmp1", dir);

    hf_pw w;
    hf_error err;
    REQUIRE(hf_pw_open(&w, &err) == 0, "hf_pw_open: %s", err.msg);
    int wd = hf_pw_add(&w, dir, &err);
    CHECK(wd >= 0, "hf_pw_add(%s): %s", dir, err.msg);
    CHECK_INT(hf_pw_add(&w, dir, &err), wd);   /* the same directory: the same watch */
    seen s;
    CHECK(!ready(hf_pw_fd(&w), 0), "nothing queued yet: the fd is not ready");
    CHECK_INT(drain(&w, &s), 0);

    touch(path);
    CHECK(ready(hf_pw_fd(&w), 1000), "a created name makes the fd ready");
    drain(&w, &s);
    CHECK(has(&s, HF_PW_APPEARED, "ttyUSB2"), "created: APPEARED ttyUSB2 (%d events)", s.n);
    CHECK(s.n > 0 && s.wd[0] == wd, "the event names the watch");
    CHECK(!ready(hf_pw_fd(&w), 0), "drained: the fd is not ready");

    /* published as the simulator and udev do: a temporary link renamed over the name */
    REQUIRE(symlink("/dev/null", tmp) == 0, "symlink: %s", strerror(errno));
    REQUIRE(rename(tmp, path) == 0, "rename: %s", strerror(errno));
    drain(&w, &s);
    CHECK(has(&s, HF_PW_APPEARED, "ttyUSB2"), "renamed in: APPEARED ttyUSB2");
    CHECK(has(&s, HF_PW_GONE, "ttyUSB2.tmp1"), "the temporary name moved out: GONE");

    REQUIRE(unlink(path) == 0, "unlink: %s", strerror(errno));
    touch(path);
    drain(&w, &s);
    REQUIRE(chmod(path, 0644) == 0, "chmod: %s", strerror(errno));
    drain(&w, &s);
    CHECK(has(&s, HF_PW_APPEARED, "ttyUSB2") && s.n == 1,
          "permissions changed (udev after the node's creation): APPEARED (%d events)", s.n);

    REQUIRE(unlink(path) == 0, "unlink: %s", strerror(errno));
    drain(&w, &s);
    CHECK(has(&s, HF_PW_GONE, "ttyUSB2") && !has(&s, HF_PW_APPEARED, NULL), "deleted: GONE only");

    char missing[300];
    snprintf(missing, sizeof missing, "%s/by-id", dir);
    CHECK(hf_pw_add(&w, missing, &err) < 0 && err.code && strcmp(err.code, "ENOENT") == 0,
          "a missing directory: ENOENT (got %s)", err.code ? err.code : "success");
    CHECK(strstr(err.msg, "by-id") != NULL, "the message names the directory: %s", err.msg);
    REQUIRE(mkdir(missing, 0700) == 0, "mkdir: %s", strerror(errno));
    drain(&w, &s);
    CHECK(has(&s, HF_PW_APPEARED, "by-id"), "a directory created in a watched one: APPEARED");
    int wd2 = hf_pw_add(&w, missing, &err);
    CHECK(wd2 >= 0 && wd2 != wd, "the new directory gets its own watch");
    CHECK_INT(hf_pw_remove(&w, wd2, &err), 0);
    drain(&w, &s);
    CHECK(has(&s, HF_PW_DIR_GONE, NULL), "a removed watch ends with DIR_GONE (IN_IGNORED)");
    REQUIRE(rmdir(missing) == 0, "rmdir: %s", strerror(errno));

    REQUIRE(rmdir(dir) == 0, "rmdir: %s", strerror(errno));
    drain(&w, &s);
    int gone = 0;
    for (int i = 0; i < s.n; i++) gone |= s.kind[i] == HF_PW_DIR_GONE && s.wd[i] == wd;
    CHECK(gone, "the watched directory removed: DIR_GONE for its watch");
    CHECK_INT(hf_pw_remove(&w, wd, &err), 0);   /* over already: not an error */

    hf_pw_close(&w);
    hf_pw_close(&w);
    CHECK(hf_pw_fd(&w) == -1 && hf_pw_read(&w, record, &s, &err) < 0 &&
          strcmp(err.code, "ECLOSED") == 0, "closed: ECLOSED");
}

static long max_queued(void)
{
    FILE *f = fopen("/proc/sys/fs/inotify/max_queued_events", "r");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1) v = -1;
        fclose(f);
    }
    return v;
}

/* More events than the kernel queues: the overflow is reported, as one event. */
static void test_overflow(void)
{
    long max = max_queued();
    if (max <= 0 || max > 200000) {
        printf("#note test_path_watch: max_queued_events %ld: overflow test skipped\n", max);
        return;
    }
    char dir[] = "/tmp/hwfota-pw.XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    char a[256], b[256];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    touch(a);
    touch(b);
    hf_pw w;
    hf_error err;
    REQUIRE(hf_pw_open(&w, &err) == 0, "hf_pw_open: %s", err.msg);
    REQUIRE(hf_pw_add(&w, dir, &err) >= 0, "hf_pw_add: %s", err.msg);
    /* alternate names: the kernel merges only an event identical to the last one */
    for (long i = 0; i < max + 10; i++)
        REQUIRE(chmod(i % 2 ? a : b, (i / 2) % 2 ? 0600 : 0644) == 0, "chmod: %s", strerror(errno));
    seen s;
    drain(&w, &s);
    CHECK_INT(s.overflows, 1);
    CHECK(s.total == max + 1, "the queue's events and the overflow: %ld (max %ld)", s.total, max);
    hf_pw_close(&w);
    unlink(a);
    unlink(b);
    rmdir(dir);
}

/* Bytes that are not what the kernel writes: never read past them. */
static void test_parse(void)
{
    union { char b[256]; long long align; } buf;
    struct inotify_event ev = {.wd = 3, .mask = IN_CREATE, .cookie = 0, .len = 16};
    const size_t h = sizeof ev;
    seen s;

    memset(&buf, 0, sizeof buf);
    memcpy(buf.b, &ev, h);
    memcpy(buf.b + h, "ttyUSB2", 8);
    memset(&s, 0, sizeof s);
    CHECK_INT(hf_pw_parse(buf.b, h + 16, record, &s), 1);
    CHECK(s.n == 1 && s.kind[0] == HF_PW_APPEARED && s.wd[0] == 3 &&
          strcmp(s.name[0], "ttyUSB2") == 0, "a well-formed event is reported");

    memset(&s, 0, sizeof s);
    CHECK_INT(hf_pw_parse(buf.b, h - 1, record, &s), 1);
    CHECK(s.n == 1 && s.kind[0] == HF_PW_OVERFLOW, "a truncated header: OVERFLOW");

    memset(&s, 0, sizeof s);
    CHECK_INT(hf_pw_parse(buf.b, h + 8, record, &s), 1);
    CHECK(s.n == 1 && s.kind[0] == HF_PW_OVERFLOW, "a name past the bytes read: OVERFLOW");

    memset(buf.b + h, 'x', 16);   /* no NUL in the name */
    memset(&s, 0, sizeof s);
    CHECK_INT(hf_pw_parse(buf.b, h + 16, record, &s), 1);
    CHECK(s.n == 1 && s.kind[0] == HF_PW_OVERFLOW, "a name without its NUL: OVERFLOW");

    struct inotify_event q = {.wd = -1, .mask = IN_Q_OVERFLOW, .cookie = 0, .len = 0};
    struct inotify_event gone = {.wd = 3, .mask = IN_DELETE, .cookie = 0, .len = 0};
    struct inotify_event other = {.wd = 3, .mask = IN_OPEN, .cookie = 0, .len = 0};
    memcpy(buf.b, &q, h);
    memcpy(buf.b + h, &other, h);
    memcpy(buf.b + 2 * h, &gone, h);
    memset(&s, 0, sizeof s);
    CHECK_INT(hf_pw_parse(buf.b, 3 * h, record, &s), 2);
    CHECK(s.n == 2 && s.kind[0] == HF_PW_OVERFLOW && s.kind[1] == HF_PW_GONE &&
          strcmp(s.name[1], "") == 0, "IN_Q_OVERFLOW, an event not asked for skipped, GONE");
}

int main(void)
{
    CHECK_SUITE("path_watch");
    test_events();
    test_overflow();
    test_parse();
    return CHECK_END();
}
