/*
 * fakedev_preload.c — LD_PRELOAD library that makes a pty look like a USB modem
 * port (/dev/ttyUSB2, 12d1:1573) to libserialport, so hwfota's real serial path
 * (sp_list_ports, sp_get_port_by_name, sp_open, configuration, I/O) runs in tests
 * without hardware and without root.
 *
 * Why this recipe and not umockdev (both are described in the project's
 * test-harness notes): hwfota's transport calls realpath() on every port path,
 * and realpath() on a umockdev-emulated tty node crashes the process; umockdev
 * also answers ENOTTY to pty ioctls and must come after a shim in LD_PRELOAD.
 * This library needs no package, chains every wrapper with dlsym(RTLD_NEXT) so
 * the preload order does not matter, works under ASan (libasan first in
 * LD_PRELOAD, or ASAN_OPTIONS=verify_asan_link_order=0) and valgrind, costs a
 * few ms per process, and hides the machine's real ttys, so a real modem can
 * never leak into a test. umockdev would also fake udev and hotplug, which
 * hwfota does not use today.
 *
 * What it does in the process it is loaded into:
 *   - Builds, on first use, a small sysfs tree in a private temporary directory
 *     ($TMPDIR or /tmp, hwfota-fakedev.XXXXXX; removed at exit by the process that
 *     made it): class/tty/<TTY> -> a USB device 1-1 with idVendor, idProduct,
 *     busnum, devnum, manufacturer, product, serial, interface 1-1:1.<IFACE>, and
 *     class/tty/console -> devices/virtual/... (which enumeration must skip).
 *   - Rewrites every path under /sys/class/tty and /sys/devices/hwfota-fakedev to
 *     that tree (open, openat, fopen, opendir, stat/lstat and the __xstat forms
 *     Debian's libserialport 0.1.1 imports, access, readlink, realpath).
 *   - Maps /dev/<TTY> to $HWFOTA_FAKEDEV_PTY (read at every call, so the
 *     simulator may publish or replace its pty at any time); when that is unset
 *     or dangling, /dev/<TTY> does not exist (ENOENT: "unplugged").
 *     realpath("/dev/<TTY>") answers "/dev/<TTY>"; lstat follows the pty link.
 *   - Emulates the modem-control ioctls a pty refuses (TIOCMGET/SET/BIS/BIC) on
 *     pty slaves: DTR/RTS kept per line, reported with CTS|DSR|CD. Everything
 *     else goes to the kernel.
 *
 * Several ttys of one module, and re-enumeration (HWFOTA_FAKEDEV_DIR set to
 * the directory of `hwfota-sim --ttys ...`): every DIR/<tty> link the simulator
 * publishes with its DIR/<tty>.usb sidecar ("interface=NN class=ff subclass=SS
 * protocol=PP role=R") is /dev/<tty> (ttyUSB*, ttyACM*), an interface
 * 1-1:1.<NN> of the one USB device 1-1 with that class triple, a
 * /sys/class/tty/<tty> entry and a /dev/serial/by-id/usb-..-ifNN-port0 link,
 * for as long as the link exists: the tree is brought up to date at every
 * access under /sys/class/tty or /dev/serial, so when the simulator publishes
 * the module under other numbers after a reset (--reenumerate next), the old
 * ttys vanish from enumeration and the new ones appear, as on a real machine.
 *
 * Environment (all optional except HWFOTA_FAKEDEV_PTY or _DIR for I/O):
 *   HWFOTA_FAKEDEV_DIR           a simulator directory: several ttys (above); PTY and
 *                                TTY are then ignored
 *   HWFOTA_FAKEDEV_HIDE          comma list of what sysfs and /dev do not tell: "class"
 *                                (no class triple), "interface" (no bInterfaceNumber),
 *                                "by-id" (no /dev/serial/by-id links): the unknown cases
 *   HWFOTA_FAKEDEV_CLASS         one tty's class triple, default ff/01/02 (the PCUI)
 *   HWFOTA_FAKEDEV_PTY           pty slave (or a symlink to it) backing /dev/<TTY>
 *   HWFOTA_FAKEDEV_TTY           device name, default ttyUSB2
 *   HWFOTA_FAKEDEV_VIDPID        vid:pid in hex, default 12d1:1573
 *   HWFOTA_FAKEDEV_MANUFACTURER  default "Huawei Technologies Co., Ltd."
 *   HWFOTA_FAKEDEV_PRODUCT       default "HUAWEI Mobile"
 *   HWFOTA_FAKEDEV_SERIAL        default "0123456789ABCDEF"
 *   HWFOTA_FAKEDEV_BUSNUM        default 1
 *   HWFOTA_FAKEDEV_DEVNUM        default 4
 *   HWFOTA_FAKEDEV_IFACE         interface number, default 2
 *   HWFOTA_FAKEDEV_DEBUG         non-empty: log each rewritten path to stderr
 * All but PTY are read once, when the tree is built (first /sys access).
 *
 * Limits: only calls through the PLT are caught (not static binaries, not libc's
 * internal calls); one fake USB device per process; line settings and DTR are
 * not visible to the simulator.
 */
#undef _FORTIFY_SOURCE  /* the wrappers below must be real functions */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define FAKE_DEVICES "/sys/devices/hwfota-fakedev"
#define SYS_TTY "/sys/class/tty"
#define BY_ID "/dev/serial/by-id"

/* ---- configuration and the tree ----------------------------------------- */

static char g_root[PATH_MAX];       /* temp dir holding sys/...; "" until built */
static char g_tty[64] = "ttyUSB2";  /* fixed at first use */
static pid_t g_owner;               /* process that must remove g_root */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_once_t g_name_once = PTHREAD_ONCE_INIT;

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

static void load_tty_name(void)
{
    const char *t = env_or("HWFOTA_FAKEDEV_TTY", "ttyUSB2");
    if (strlen(t) < sizeof g_tty && !strchr(t, '/'))
        memcpy(g_tty, t, strlen(t) + 1);
}

static int put_file(const char *dir, const char *name, const char *text)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s/%s", dir, name) >= (int)sizeof p)
        return -1;
    FILE *f = fopen(p, "w");
    if (!f)
        return -1;
    fprintf(f, "%s\n", text);
    return fclose(f);
}

static int mkdirs(const char *path)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p)
        return -1;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return -1;
        *s = '/';
    }
    return mkdir(p, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int build_usb_device(const char *usbdev)
{
    unsigned vid = 0x12d1, pid = 0x1573;
    if (sscanf(env_or("HWFOTA_FAKEDEV_VIDPID", "12d1:1573"), "%x:%x", &vid, &pid) != 2)
        vid = 0x12d1, pid = 0x1573;
    char v[8], p[8];
    snprintf(v, sizeof v, "%04x", vid & 0xffff);
    snprintf(p, sizeof p, "%04x", pid & 0xffff);
    if (mkdirs(usbdev) != 0 || put_file(usbdev, "idVendor", v) != 0 ||
        put_file(usbdev, "idProduct", p) != 0 ||
        put_file(usbdev, "busnum", env_or("HWFOTA_FAKEDEV_BUSNUM", "1")) != 0 ||
        put_file(usbdev, "devnum", env_or("HWFOTA_FAKEDEV_DEVNUM", "4")) != 0)
        return -1;
    if (put_file(usbdev, "manufacturer",
                 env_or("HWFOTA_FAKEDEV_MANUFACTURER", "Huawei Technologies Co., Ltd.")) != 0 ||
        put_file(usbdev, "product", env_or("HWFOTA_FAKEDEV_PRODUCT", "HUAWEI Mobile")) != 0 ||
        put_file(usbdev, "serial", env_or("HWFOTA_FAKEDEV_SERIAL", "0123456789ABCDEF")) != 0)
        return -1;
    return 0;
}

/* 1 when HWFOTA_FAKEDEV_HIDE lists what. */
static int hidden(const char *what)
{
    const char *h = getenv("HWFOTA_FAKEDEV_HIDE");
    size_t n = strlen(what);
    for (const char *p = h; p && *p;) {
        size_t k = strcspn(p, ",");
        if (k == n && !strncmp(p, what, n))
            return 1;
        p += k + (p[k] == ',');
    }
    return 0;
}

/* "188:2" style dev numbers of tty: ttyUSB -> 188, ttyACM -> 166, else 4. */
static void devnum_of(const char *tty, char *out, size_t cap)
{
    const char *d = tty + strcspn(tty, "0123456789");
    int major = !strncmp(tty, "ttyUSB", 6) ? 188 : !strncmp(tty, "ttyACM", 6) ? 166 : 4;
    snprintf(out, cap, "%d:%d", major, atoi(d));
}

/* usb1/1-1/1-1:1.<if>/<tty>/tty/<tty>/ with dev, and device -> ../../../<tty>;
 * the interface's number and class triple ("ff/01/02") unless hidden. */
static int build_node(const char *usbdev, const char *tty, int iface, const char *triple,
                      char *rel, size_t relcap)
{
    char ifdir[PATH_MAX], node[PATH_MAX], num[16], link[PATH_MAX], target[128];
    snprintf(num, sizeof num, "%02x", iface & 0xff);
    if (snprintf(ifdir, sizeof ifdir, "%s/1-1:1.%d", usbdev, iface) >= (int)sizeof ifdir ||
        snprintf(node, sizeof node, "%s/%s/tty/%s", ifdir, tty, tty) >= (int)sizeof node ||
        snprintf(link, sizeof link, "%s/device", node) >= (int)sizeof link)
        return -1;
    devnum_of(tty, target, sizeof target);
    if (mkdirs(node) != 0 || put_file(node, "dev", target) != 0)
        return -1;
    if (!hidden("interface") && put_file(ifdir, "bInterfaceNumber", num) != 0)
        return -1;
    unsigned c = 0xff, sc = 1, pr = 2;
    if (sscanf(triple, "%x/%x/%x", &c, &sc, &pr) != 3)
        c = 0xff, sc = 1, pr = 2;
    char v[8];
    if (!hidden("class")) {
        snprintf(v, sizeof v, "%02x", c & 0xff);
        if (put_file(ifdir, "bInterfaceClass", v) != 0)
            return -1;
        snprintf(v, sizeof v, "%02x", sc & 0xff);
        if (put_file(ifdir, "bInterfaceSubClass", v) != 0)
            return -1;
        snprintf(v, sizeof v, "%02x", pr & 0xff);
        if (put_file(ifdir, "bInterfaceProtocol", v) != 0)
            return -1;
    }
    snprintf(target, sizeof target, "../../../%s", tty);
    if (symlink(target, link) != 0 && errno != EEXIST)
        return -1;
    snprintf(rel, relcap, "../../devices/hwfota-fakedev/usb1/1-1/1-1:1.%d/%s/tty/%s", iface,
             tty, tty);
    return 0;
}

/* /sys/class/tty/<tty> and, unless hidden, /dev/serial/by-id/usb-...-ifNN-port0. */
static int link_tty(const char *tty, int iface, const char *rel)
{
    char link[PATH_MAX], name[PATH_MAX], target[128];
    if (snprintf(link, sizeof link, "%s%s/%s", g_root, SYS_TTY, tty) >= PATH_MAX)
        return -1;
    if (symlink(rel, link) != 0 && errno != EEXIST)
        return -1;
    if (hidden("by-id"))
        return 0;
    /* udev's ID_SERIAL: vendor_model_serial with blanks as '_' */
    char id[192];
    snprintf(id, sizeof id, "%s_%s_%s",
             env_or("HWFOTA_FAKEDEV_MANUFACTURER", "Huawei Technologies Co., Ltd."),
             env_or("HWFOTA_FAKEDEV_PRODUCT", "HUAWEI Mobile"),
             env_or("HWFOTA_FAKEDEV_SERIAL", "0123456789ABCDEF"));
    for (char *p = id; *p; p++)
        if (*p == ' ' || *p == '/' || *p == ',')
            *p = '_';
    if (snprintf(name, sizeof name, "%s%s/usb-%s-if%02x-port0", g_root, BY_ID, id,
                 iface & 0xff) >= PATH_MAX)
        return -1;
    snprintf(target, sizeof target, "../../%s", tty);
    unlink(name);
    return symlink(target, name);
}

static int build_tty_node(const char *usbdev)
{
    int iface = atoi(env_or("HWFOTA_FAKEDEV_IFACE", "2"));
    char rel[PATH_MAX];
    if (build_node(usbdev, g_tty, iface, env_or("HWFOTA_FAKEDEV_CLASS", "ff/01/02"), rel,
                   sizeof rel) != 0)
        return -1;
    return link_tty(g_tty, iface, rel);
}

static const char *sim_dir(void)
{
    const char *d = getenv("HWFOTA_FAKEDEV_DIR");
    return d && *d ? d : NULL;
}

static int build_tree(void)
{
    char usbdev[PATH_MAX], cls[PATH_MAX], virt[PATH_MAX], byid[PATH_MAX], link[PATH_MAX];
    if (snprintf(usbdev, sizeof usbdev, "%s%s/usb1/1-1", g_root, FAKE_DEVICES) >= PATH_MAX ||
        snprintf(cls, sizeof cls, "%s%s", g_root, SYS_TTY) >= PATH_MAX ||
        snprintf(byid, sizeof byid, "%s%s", g_root, BY_ID) >= PATH_MAX ||
        snprintf(virt, sizeof virt, "%s/sys/devices/virtual/tty/console", g_root) >= PATH_MAX)
        return -1;
    if (build_usb_device(usbdev) != 0 || mkdirs(cls) != 0 || mkdirs(byid) != 0 ||
        mkdirs(virt) != 0 || put_file(virt, "dev", "5:1") != 0)
        return -1;
    if (!sim_dir() && build_tty_node(usbdev) != 0)
        return -1;
    if (snprintf(link, sizeof link, "%s/console", cls) >= PATH_MAX)
        return -1;
    return symlink("../../devices/virtual/tty/console", link);
}

/* A tty name the simulator may publish: ttyUSB<n> / ttyACM<n>. */
static int is_tty_name(const char *n)
{
    return (!strncmp(n, "ttyUSB", 6) || !strncmp(n, "ttyACM", 6)) && n[6] &&
           strspn(n + 6, "0123456789") == strlen(n + 6) && strlen(n) < 32;
}

/* What each listed tty was built from (its sidecar line and pty), by name. */
#define MAX_SEEN 64
static struct {
    char name[32];
    char key[192];
} g_seen[MAX_SEEN];

static int seen_slot(const char *name)
{
    int free_slot = -1;
    for (int i = 0; i < MAX_SEEN; i++) {
        if (!strcmp(g_seen[i].name, name))
            return i;
        if (free_slot < 0 && !g_seen[i].name[0])
            free_slot = i;
    }
    if (free_slot >= 0 && strlen(name) < sizeof g_seen[0].name) {
        memcpy(g_seen[free_slot].name, name, strlen(name) + 1);
        g_seen[free_slot].key[0] = '\0';
    }
    return free_slot;
}

/* The tty a by-id link byid/name points to (the last component of its target, kept
 * in target[PATH_MAX]); p[PATH_MAX] gets the link's path. NULL: not a readable link. */
static const char *by_id_link_tty(const char *byid, const char *name, char *p, char *target)
{
    if (snprintf(p, PATH_MAX, "%s/%s", byid, name) >= PATH_MAX)
        return NULL;
    ssize_t n = readlink(p, target, PATH_MAX - 1);
    if (n <= 0)
        return NULL;
    target[n] = '\0';
    const char *t = strrchr(target, '/');
    return t ? t + 1 : target;
}

/* Remove the by-id links (in the tree's directory byid) that point to tty. */
static void unlink_by_id_of(const char *byid, const char *tty)
{
    DIR *d = opendir(byid);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        char p[PATH_MAX], target[PATH_MAX];
        const char *t = by_id_link_tty(byid, de->d_name, p, target);
        if (t && !strcmp(t, tty))
            unlink(p);
    }
    if (d)
        closedir(d);
}

/* 1: name is a tty name and dir/name exists (its pty is there); 0: a tty name
 * whose pty is gone; -1: not a tty name (or a path too long). */
static int tty_in_dir(const char *dir, const char *name)
{
    char p[PATH_MAX];
    struct stat st;
    if (!is_tty_name(name) || snprintf(p, sizeof p, "%s/%s", dir, name) >= (int)sizeof p)
        return -1;
    return stat(p, &st) == 0;
}

/* Directory mode: make the tree list exactly the ttys whose link and sidecar
 * exist in the simulator's directory now. */
static void refresh_dir(void)
{
    const char *dir = sim_dir();
    if (!dir || !g_root[0])
        return;
    char usbdev[PATH_MAX], cls[PATH_MAX], p[PATH_MAX];
    if (snprintf(usbdev, sizeof usbdev, "%s%s/usb1/1-1", g_root, FAKE_DEVICES) >= PATH_MAX ||
        snprintf(cls, sizeof cls, "%s%s", g_root, SYS_TTY) >= PATH_MAX)
        return;
    /* drop what is gone: class entries (and their by-id links) whose tty left */
    DIR *d = opendir(cls);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (tty_in_dir(dir, de->d_name) != 0)
            continue;
        if (snprintf(p, sizeof p, "%s/%s", cls, de->d_name) >= (int)sizeof p)
            continue;
        unlink(p);
    }
    if (d)
        closedir(d);
    char byid[PATH_MAX];
    if (snprintf(byid, sizeof byid, "%s%s", g_root, BY_ID) >= PATH_MAX)
        return;
    d = opendir(byid);
    while (d && (de = readdir(d)) != NULL) {
        char target[PATH_MAX], live[PATH_MAX];
        const char *tty = by_id_link_tty(byid, de->d_name, p, target);
        if (!tty || snprintf(live, sizeof live, "%s/%s", dir, tty) >= PATH_MAX)
            continue;
        struct stat st;
        if (stat(live, &st) != 0)
            unlink(p);
    }
    if (d)
        closedir(d);
    /* add what is there */
    d = opendir(dir);
    while (d && (de = readdir(d)) != NULL) {
        struct stat st;
        if (tty_in_dir(dir, de->d_name) != 1)
            continue;           /* not a tty, or dangling: the pty is gone */
        if (snprintf(p, sizeof p, "%s/%s.usb", dir, de->d_name) >= (int)sizeof p)
            continue;
        FILE *f = fopen(p, "r");
        if (!f)
            continue;
        char line[128] = "";
        char *got_line = fgets(line, sizeof line, f);
        fclose(f);
        unsigned iface = 0;
        char c[8] = "", sc[8] = "", pr[8] = "", triple[32];
        if (!got_line || sscanf(line, "interface=%x class=%7s subclass=%7s protocol=%7s", &iface,
                                c, sc, pr) != 4 || iface > 255)
            continue;
        if (snprintf(triple, sizeof triple, "%s/%s/%s", c, sc, pr) >= (int)sizeof triple)
            continue;
        /* listed already with this description and pty? (a tty of the same name may
         * come back as another interface after a reset: then it is rebuilt) */
        char key[sizeof g_seen[0].key], pts[PATH_MAX] = "";
        if (snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= (int)sizeof p)
            continue;
        ssize_t pl = readlink(p, pts, sizeof pts - 1);
        pts[pl > 0 ? pl : 0] = '\0';
        snprintf(key, sizeof key, "%s %s", line, pts);
        int slot = seen_slot(de->d_name);
        if (snprintf(p, sizeof p, "%s/%s", cls, de->d_name) >= (int)sizeof p)
            continue;
        if (lstat(p, &st) == 0 && slot >= 0 && !strcmp(g_seen[slot].key, key))
            continue;
        unlink(p);
        unlink_by_id_of(byid, de->d_name);
        char rel[PATH_MAX];
        if (build_node(usbdev, de->d_name, (int)iface, triple, rel, sizeof rel) == 0 &&
            link_tty(de->d_name, (int)iface, rel) == 0 && slot >= 0)
            memcpy(g_seen[slot].key, key, sizeof key);
    }
    if (d)
        closedir(d);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    remove(p);
    return 0;
}

static void remove_tree(void)
{
    if (g_root[0] && getpid() == g_owner)
        nftw(g_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void init_once(void)
{
    pthread_once(&g_name_once, load_tty_name);
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "%s/hwfota-fakedev.XXXXXX", env_or("TMPDIR", "/tmp"));
    if (!mkdtemp(tmpl)) {
        fprintf(stderr, "fakedev_preload: mkdtemp %s: %s\n", tmpl, strerror(errno));
        return;
    }
    memcpy(g_root, tmpl, strlen(tmpl) + 1);
    g_owner = getpid();
    if (build_tree() != 0)
        fprintf(stderr, "fakedev_preload: cannot build %s: %s\n", g_root, strerror(errno));
    atexit(remove_tree);
}

static void ensure_init(void)
{
    pthread_once(&g_once, init_once);
}

/* ---- path mapping --------------------------------------------------------- */

static int has_prefix(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    return !strncmp(path, prefix, n) && (path[n] == '\0' || path[n] == '/');
}

/* 1 when path names a fake /dev node. */
static int is_fake_dev(const char *path)
{
    if (!path || strncmp(path, "/dev/", 5))
        return 0;
    if (sim_dir())
        return is_tty_name(path + 5);
    pthread_once(&g_name_once, load_tty_name);  /* no I/O: safe from inside init */
    return !strcmp(path + 5, g_tty);
}

/* What backs the fake node `path`: the simulator's link for it. */
static const char *pty_target_of(const char *path, char *buf, size_t cap)
{
    if (sim_dir() && path && !strncmp(path, "/dev/", 5)) {
        if (snprintf(buf, cap, "%s/%s", sim_dir(), path + 5) < (int)cap)
            return buf;
    }
    return env_or("HWFOTA_FAKEDEV_PTY", "/nonexistent/hwfota-fakedev-unplugged");
}

/* /dev/serial/by-id/<name> -> "/dev/<tty>" it links to (in buf), or NULL. */
static const char *by_id_tty(const char *path, char *buf, size_t cap)
{
    if (!has_prefix(path, BY_ID) || !path[strlen(BY_ID)] || !g_root[0])
        return NULL;
    char link[PATH_MAX], target[PATH_MAX];
    if (snprintf(link, sizeof link, "%s%s", g_root, path) >= (int)sizeof link)
        return NULL;
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0)
        return NULL;
    target[n] = '\0';
    const char *tty = strrchr(target, '/');
    if (snprintf(buf, cap, "/dev/%s", tty ? tty + 1 : target) >= (int)cap)
        return NULL;
    return buf;
}

/* The path to hand to libc: into our tree, to the pty, or unchanged. */
static const char *map_path(const char *path, char *buf, size_t cap)
{
    if (!path)
        return path;
    if (is_fake_dev(path))
        return pty_target_of(path, buf, cap);
    if (!has_prefix(path, SYS_TTY) && !has_prefix(path, FAKE_DEVICES) && !has_prefix(path, BY_ID))
        return path;
    ensure_init();
    if (has_prefix(path, SYS_TTY) || has_prefix(path, BY_ID))
        refresh_dir();
    char dev[64];
    if (by_id_tty(path, dev, sizeof dev))
        return pty_target_of(dev, buf, cap);
    if (!g_root[0] || snprintf(buf, cap, "%s%s", g_root, path) >= (int)cap)
        return path;
    if (getenv("HWFOTA_FAKEDEV_DEBUG") && *getenv("HWFOTA_FAKEDEV_DEBUG"))
        fprintf(stderr, "fakedev: %s -> %s\n", path, buf);
    return buf;
}

/* var: the next definition of sym after this library, looked up once. */
#define NEXT_FN(var, sym)                                                       \
    static __typeof__(&sym) var;                                                \
    if (!var)                                                                   \
        var = (__typeof__(&sym))dlsym(RTLD_NEXT, #sym)

/* real_<name>: the definition this wrapper stands in front of. */
#define REAL(name) NEXT_FN(real_##name, name)

/* ---- opening -------------------------------------------------------------- */

static int has_mode_arg(int flags)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

/* mode: an open's third argument when its flags say it has one, else 0. */
#define MODE_ARG(mode, flags)                                                   \
    mode_t mode = 0;                                                            \
    if (has_mode_arg(flags)) {                                                  \
        va_list ap;                                                             \
        va_start(ap, flags);                                                    \
        mode = va_arg(ap, mode_t);                                              \
        va_end(ap);                                                             \
    }

#define OPEN_WRAPPER(name)                                                      \
    int name(const char *path, int flags, ...)                                  \
    {                                                                           \
        REAL(name);                                                             \
        MODE_ARG(mode, flags);                                                  \
        char buf[PATH_MAX];                                                     \
        return real_##name(map_path(path, buf, sizeof buf), flags, mode);       \
    }
OPEN_WRAPPER(open)
OPEN_WRAPPER(open64)

#define OPENAT_WRAPPER(name)                                                    \
    int name(int dirfd, const char *path, int flags, ...)                       \
    {                                                                           \
        REAL(name);                                                             \
        MODE_ARG(mode, flags);                                                  \
        char buf[PATH_MAX];                                                     \
        return real_##name(dirfd, map_path(path, buf, sizeof buf), flags, mode); \
    }
OPENAT_WRAPPER(openat)
OPENAT_WRAPPER(openat64)

#define OPEN2_WRAPPER(name)                                                     \
    int name(const char *path, int flags);                                      \
    int name(const char *path, int flags)                                       \
    {                                                                           \
        REAL(name);                                                             \
        char buf[PATH_MAX];                                                     \
        return real_##name(map_path(path, buf, sizeof buf), flags);             \
    }
OPEN2_WRAPPER(__open_2)
OPEN2_WRAPPER(__open64_2)

#define FOPEN_WRAPPER(name)                                                     \
    FILE *name(const char *path, const char *mode)                              \
    {                                                                           \
        REAL(name);                                                             \
        char buf[PATH_MAX];                                                     \
        return real_##name(map_path(path, buf, sizeof buf), mode);              \
    }
FOPEN_WRAPPER(fopen)
FOPEN_WRAPPER(fopen64)

DIR *opendir(const char *path)
{
    REAL(opendir);
    char buf[PATH_MAX];
    return real_opendir(map_path(path, buf, sizeof buf));
}

int access(const char *path, int mode)
{
    REAL(access);
    char buf[PATH_MAX];
    return real_access(map_path(path, buf, sizeof buf), mode);
}

/* ---- stat family: lstat of the fake node follows the pty link ------------- */

#define STAT_WRAPPER(name, st_t, follow)                                        \
    int name(const char *path, st_t *st)                                        \
    {                                                                           \
        REAL(name);                                                             \
        char buf[PATH_MAX];                                                     \
        if (is_fake_dev(path)) {                                                \
            NEXT_FN(follow_fn, follow);                                         \
            return follow_fn(pty_target_of(path, buf, sizeof buf), st);         \
        }                                                                       \
        return real_##name(map_path(path, buf, sizeof buf), st);                \
    }
STAT_WRAPPER(stat, struct stat, stat)
STAT_WRAPPER(lstat, struct stat, stat)
STAT_WRAPPER(stat64, struct stat64, stat64)
STAT_WRAPPER(lstat64, struct stat64, stat64)

#define XSTAT_WRAPPER(name, st_t, follow)                                       \
    int name(int ver, const char *path, st_t *st);                              \
    int name(int ver, const char *path, st_t *st)                               \
    {                                                                           \
        REAL(name);                                                             \
        char buf[PATH_MAX];                                                     \
        if (is_fake_dev(path)) {                                                \
            NEXT_FN(follow_fn, follow);                                         \
            return follow_fn(ver, pty_target_of(path, buf, sizeof buf), st);    \
        }                                                                       \
        return real_##name(ver, map_path(path, buf, sizeof buf), st);           \
    }
XSTAT_WRAPPER(__xstat, struct stat, __xstat)
XSTAT_WRAPPER(__lxstat, struct stat, __xstat)
XSTAT_WRAPPER(__xstat64, struct stat64, __xstat64)
XSTAT_WRAPPER(__lxstat64, struct stat64, __xstat64)

/* ---- links and canonical names -------------------------------------------- */

ssize_t readlink(const char *path, char *out, size_t cap)
{
    REAL(readlink);
    if (is_fake_dev(path)) {
        errno = EINVAL;     /* a device node, not a link */
        return -1;
    }
    char buf[PATH_MAX];
    if (has_prefix(path, BY_ID) && path[strlen(BY_ID)]) {
        ensure_init();      /* the by-id link itself, not the pty it stands for */
        refresh_dir();
        if (g_root[0] && snprintf(buf, sizeof buf, "%s%s", g_root, path) < (int)sizeof buf)
            return real_readlink(buf, out, cap);
    }
    return real_readlink(map_path(path, buf, sizeof buf), out, cap);
}

ssize_t __readlink_chk(const char *path, char *out, size_t cap, size_t outlen);
ssize_t __readlink_chk(const char *path, char *out, size_t cap, size_t outlen)
{
    if (cap > outlen)
        abort();
    return readlink(path, out, cap);
}

static char *give_name(const char *name, char *resolved)
{
    if (!resolved)
        return strdup(name);
    if (strlen(name) >= PATH_MAX) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    return memcpy(resolved, name, strlen(name) + 1);
}

char *realpath(const char *path, char *resolved)
{
    REAL(realpath);
    char dev[64];
    if (has_prefix(path, BY_ID)) {
        ensure_init();
        refresh_dir();
        if (by_id_tty(path, dev, sizeof dev))
            path = dev;     /* /dev/serial/by-id/... -> /dev/ttyUSBn */
    }
    if (is_fake_dev(path)) {
        REAL(stat);
        struct stat st;
        char tb[PATH_MAX];
        if (real_stat(pty_target_of(path, tb, sizeof tb), &st) != 0)
            return NULL;    /* errno from stat: ENOENT when unplugged */
        return give_name(path, resolved);
    }
    char buf[PATH_MAX], out[PATH_MAX];
    const char *m = map_path(path, buf, sizeof buf);
    if (m != buf)
        return real_realpath(path, resolved);
    if (!real_realpath(m, out))
        return NULL;
    size_t n = strlen(g_root);
    return give_name(strncmp(out, g_root, n) ? out : out + n, resolved);
}

char *__realpath_chk(const char *path, char *resolved, size_t cap);
char *__realpath_chk(const char *path, char *resolved, size_t cap)
{
    if (resolved && cap < PATH_MAX)
        abort();
    return realpath(path, resolved);
}

/* ---- modem-control lines on pty slaves ------------------------------------ */

#define MAX_LINES 32
static struct { dev_t rdev; int bits; } g_lines[MAX_LINES];
static pthread_mutex_t g_lines_lock = PTHREAD_MUTEX_INITIALIZER;

static int is_pty_slave(int fd, dev_t *rdev)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode))
        return 0;
    *rdev = st.st_rdev;
    return major(st.st_rdev) >= 136 && major(st.st_rdev) <= 143;
}

/* The DTR/RTS word of a line; a new line starts with both raised. */
static int *line_bits(dev_t rdev)
{
    for (int i = 0; i < MAX_LINES; i++)
        if (g_lines[i].rdev == rdev)
            return &g_lines[i].bits;
    for (int i = 0; i < MAX_LINES; i++) {
        if (g_lines[i].rdev == 0) {
            g_lines[i].rdev = rdev;
            g_lines[i].bits = TIOCM_DTR | TIOCM_RTS;
            return &g_lines[i].bits;
        }
    }
    return &g_lines[MAX_LINES - 1].bits;    /* table full: share the last slot */
}

static int emulate_tiocm(int fd, unsigned long req, int *arg)
{
    dev_t rdev;
    if (!is_pty_slave(fd, &rdev))
        return -1;
    if (!arg) {
        errno = EFAULT;
        return -1;
    }
    const int settable = TIOCM_DTR | TIOCM_RTS;
    pthread_mutex_lock(&g_lines_lock);
    int *bits = line_bits(rdev);
    if (req == TIOCMGET)
        *arg = *bits | TIOCM_CTS | TIOCM_DSR | TIOCM_CD;
    else if (req == TIOCMSET)
        *bits = *arg & settable;
    else if (req == TIOCMBIS)
        *bits |= *arg & settable;
    else
        *bits &= ~(*arg & settable);
    pthread_mutex_unlock(&g_lines_lock);
    return 0;
}

int ioctl(int fd, unsigned long req, ...)
{
    REAL(ioctl);
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int rc = real_ioctl(fd, req, arg);
    if (rc == 0 || (errno != ENOTTY && errno != EINVAL))
        return rc;
    if (req != TIOCMGET && req != TIOCMSET && req != TIOCMBIS && req != TIOCMBIC)
        return rc;
    int saved = errno;
    if (emulate_tiocm(fd, req, arg) == 0)
        return 0;
    errno = saved;
    return rc;
}
