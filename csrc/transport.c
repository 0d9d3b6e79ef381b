/*
 * transport.c — open, configure, read, write and close one AT port (see transport.h).
 *
 * Path choice: the given path is resolved with realpath() first, so a symlink
 * (/tmp/hwfota-sim/ttyUSB2 -> /dev/pts/5, /dev/serial/by-id/... -> /dev/ttyUSB2)
 * is judged by what it points to. If libserialport knows the resolved device
 * (sp_get_port_by_name succeeds: it has a sysfs tty entry) it is opened and
 * configured through libserialport ("serial"); anything it refuses (ptys, other
 * character devices) is opened with open(2) + raw termios ("pty").
 *
 * Exclusivity, on both paths: flock(LOCK_EX|LOCK_NB) on our fd, then TIOCEXCL.
 * Root bypasses TIOCEXCL, so before taking the port we also ask the kernel with
 * TIOCGEXCL whether someone else already holds it exclusively (ModemManager and
 * libserialport >= 0.1.2 set it). On the serial path that check and the flock
 * first run on a guard fd held across sp_open, because sp_open rewrites termios
 * and modem lines and must not do that under another owner's feet.
 *
 * A stale flag. A pseudo-terminal keeps TIOCEXCL after its holder died without
 * closing it (SIGKILL, os.exit): its tty lives on while the other side (the
 * master) is open; a real USB tty is freed at its last close and never has
 * this. When TIOCGEXCL says "exclusive" we therefore ask who holds it:
 *   - our flock is refused: a live hwfota (or another flock user): EBUSY;
 *   - else any other process has the tty open (/proc/PID/fd; a process that
 *     also holds the pty's master is the terminal's provider, not a client):
 *     EBUSY naming it (ModemManager and others set TIOCEXCL without flock);
 *   - else nobody holds it: the flag is stale. We keep the flock we just took
 *     and take the port (TIOCEXCL is ours now, dropped again at close), and
 *     say so (hf_transport_note). Safe because every opener that could still
 *     use the port would show up above, and our flock keeps a second hwfota
 *     out while we look. Root only: anyone else gets EBUSY from open(2) on a
 *     TIOCEXCL tty, and is told instead whether a holder was found
 *     (/proc/locks) and how to clear a stale flag.
 */
#include "transport.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include <libserialport.h>

#include <signal.h>

#define HF_DEFAULT_BAUD 115200

/* Ports this process holds exclusively, for hf_transport_release_all() (called
 * from a signal handler: fixed slots, no locks, no allocation). */
#define HF_OWNED_MAX 64
static volatile sig_atomic_t owned_fds[HF_OWNED_MAX];   /* fd + 1; 0 = free */

static void owned_add(int fd)
{
    for (int i = 0; i < HF_OWNED_MAX; i++) {
        if (owned_fds[i] == 0) {
            owned_fds[i] = fd + 1;
            return;
        }
    }
}

static void owned_remove(int fd)
{
    for (int i = 0; i < HF_OWNED_MAX; i++)
        if (owned_fds[i] == fd + 1)
            owned_fds[i] = 0;
}

void hf_transport_release_all(void)
{
    for (int i = 0; i < HF_OWNED_MAX; i++) {
        int fd = (int)owned_fds[i] - 1;
        if (fd < 0)
            continue;
        owned_fds[i] = 0;
        (void)tcflush(fd, TCIOFLUSH);
        (void)ioctl(fd, TIOCNXCL);
        (void)close(fd);   /* releases the flock */
    }
}

struct hf_transport {
    int fd;
    int owned;              /* 1 once flock + TIOCEXCL are ours */
    struct sp_port *sp;     /* NULL on the POSIX path */
    char note[256];         /* what the open had to do (a stale flag taken over), or "" */
    char path[];            /* as given to open, sized for it (a port per module: 1,000
                               ports must not cost 4 KB of PATH_MAX each) */
};

static const char busy_hint[] =
    "often ModemManager: stop it, inhibit the modem with `mmcli -m N --inhibit`, "
    "or tag the port ID_MM_PORT_IGNORE in a udev rule";

/* ---- errors ------------------------------------------------------------ */

static void set_busy(hf_error *err, const char *path)
{
    hf_error_set(err, "EBUSY", "%s is in use by another process (%s)", path, busy_hint);
}

/* "cannot <what> <path>: <strerror>" with the code derived from errnum. */
static void set_errno(hf_error *err, const char *what, const char *path, int errnum)
{
    if (errnum == EBUSY) {
        set_busy(err, path);
        return;
    }
    const char *code = hf_error_code_from_errno(errnum);
    if (errnum == EISDIR || errnum == ENOTTY)
        code = "EINVAL";
    const char *hint = errnum == EACCES || errnum == EPERM
                           ? " (run as root or add the user to the port's group, e.g. dialout)"
                           : "";
    hf_error_set(err, code, "cannot %s %s: %s%s", what, path, strerror(errnum), hint);
}

static void set_lost(hf_error *err, const char *path, const char *why)
{
    hf_error_set(err, "EPORTLOST",
                 "port %s lost (%s): module reset or unplugged; find it again by USB identity",
                 path, why);
}

/* ---- exclusivity -------------------------------------------------------- */

/* 1 when another opener already set TIOCEXCL (root is not stopped by it), else 0. */
static int held_exclusive(int fd)
{
#ifdef TIOCGEXCL
    int excl = 0;
    if (ioctl(fd, TIOCGEXCL, &excl) == 0 && excl)
        return 1;
#else
    (void)fd;
#endif
    return 0;
}

/* The pty index of a pty slave device (Unix98 majors 136..143), else -1. */
static long pty_index(dev_t rdev)
{
    unsigned ma = major(rdev);
    return ma >= 136 && ma <= 143 ? (long)(ma - 136) * 256 + (long)minor(rdev) : -1;
}

/* Does process `pid` hold the master of pty `index` (a ptmx fd whose fdinfo
 * says "tty-index: index")? */
static int holds_pty_master(const char *pid, long index)
{
    char dpath[300];
    snprintf(dpath, sizeof dpath, "/proc/%s/fd", pid);
    DIR *d = opendir(dpath);
    if (!d)
        return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        char lpath[600], target[64];
        snprintf(lpath, sizeof lpath, "%s/%s", dpath, e->d_name);
        ssize_t n = readlink(lpath, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strcmp(target, "/dev/ptmx") != 0 && strcmp(target, "/dev/pts/ptmx") != 0)
            continue;
        char ipath[600], line[128];
        snprintf(ipath, sizeof ipath, "/proc/%s/fdinfo/%s", pid, e->d_name);
        FILE *f = fopen(ipath, "r");
        if (!f)
            continue;
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "tty-index:", 10) == 0 && strtol(line + 10, NULL, 10) == index)
                found = 1;
        fclose(f);
    }
    closedir(d);
    return found;
}

/* How many processes have the tty of `fd` open besides this fd (our own
 * process counts with any other fd on it; another process that holds the pty's
 * master does not). The first one
 * found goes into who ("pid 123 (ModemManager)"). -1 when /proc cannot be read. */
static int other_openers(int fd, char *who, size_t cap)
{
    struct stat me;
    if (fstat(fd, &me) != 0)
        return -1;
    long index = pty_index(me.st_rdev);
    DIR *proc = opendir("/proc");
    if (!proc)
        return -1;
    char self[32];
    snprintf(self, sizeof self, "%ld", (long)getpid());
    int count = 0;
    struct dirent *pe;
    while ((pe = readdir(proc)) != NULL) {
        if (!isdigit((unsigned char)pe->d_name[0]))
            continue;
        char dpath[300];
        snprintf(dpath, sizeof dpath, "/proc/%s/fd", pe->d_name);
        DIR *d = opendir(dpath);
        if (!d)
            continue;   /* gone, or not ours to read (only root sees every process) */
        int holds = 0;
        struct dirent *e;
        while (!holds && (e = readdir(d)) != NULL) {
            if (!isdigit((unsigned char)e->d_name[0]))
                continue;
            if (strcmp(pe->d_name, self) == 0 && atoi(e->d_name) == fd)
                continue;
            char lpath[600];
            struct stat st;
            snprintf(lpath, sizeof lpath, "%s/%s", dpath, e->d_name);
            if (stat(lpath, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == me.st_rdev)
                holds = 1;
        }
        closedir(d);
        /* another process holding the pty's master provides the terminal (the
         * simulator keeps a slave fd of its own): not a client. Our own process
         * always counts: a second open in one process is busy. */
        if (!holds || (index >= 0 && strcmp(pe->d_name, self) != 0 &&
                       holds_pty_master(pe->d_name, index)))
            continue;
        if (count++ == 0) {
            char cpath[300], comm[64] = "?";
            snprintf(cpath, sizeof cpath, "/proc/%s/comm", pe->d_name);
            FILE *f = fopen(cpath, "r");
            if (f) {
                if (fgets(comm, sizeof comm, f))
                    comm[strcspn(comm, "\n")] = '\0';
                fclose(f);
            }
            snprintf(who, cap, "pid %.20s (%.40s)", pe->d_name, comm);
        }
    }
    closedir(proc);
    return count;
}

/* TIOCEXCL is set on fd (root got through): is it live? 0: nobody holds the
 * port, the flag is stale, and our flock is taken (note says so); -1: busy
 * (err set, no lock kept). See the header comment. */
static int judge_exclusive(hf_transport *t, int fd, hf_error *err)
{
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        set_busy(err, t->path);
        return -1;
    }
    char who[96] = "";
    int n = other_openers(fd, who, sizeof who);
    if (n != 0) {
        (void)flock(fd, LOCK_UN);
        if (n > 0)
            hf_error_set(err, "EBUSY", "%s is in use by another process, %s (%s)", t->path, who,
                         busy_hint);
        else
            set_busy(err, t->path);
        return -1;
    }
    snprintf(t->note, sizeof t->note,
             "%.100s: exclusive flag (TIOCEXCL) left set by a process that ended without "
             "closing the port, and no process holds it: taken over", t->path);
    return 0;
}

/* open(2) said EBUSY (not root: TIOCEXCL refuses us). Whether anybody holds the
 * port's flock (/proc/locks) tells a live hwfota from a stale flag. */
static void set_busy_unprivileged(hf_error *err, const char *dev, const char *path)
{
    struct stat st;
    FILE *f = fopen("/proc/locks", "r");
    int locked = -1;
    if (f && stat(dev, &st) == 0) {
        char line[256];
        locked = 0;
        while (fgets(line, sizeof line, f)) {
            unsigned ma, mi;
            unsigned long ino;
            char *p = strstr(line, "FLOCK");
            if (!p)
                continue;
            /* "1: FLOCK  ADVISORY  WRITE 1234 00:05:3 0 EOF" */
            char *q = p;
            for (int field = 0; field < 4 && q; field++) {
                q = strchr(q, ' ');
                while (q && *q == ' ')
                    q++;
            }
            if (q && sscanf(q, "%x:%x:%lu", &ma, &mi, &ino) == 3 && ma == major(st.st_dev) &&
                mi == minor(st.st_dev) && ino == (unsigned long)st.st_ino)
                locked = 1;
        }
    }
    if (f)
        fclose(f);
    if (locked == 0)
        hf_error_set(err, "EBUSY", "%s is marked exclusive (TIOCEXCL) but no process holds its "
                     "lock: probably left by a program killed without closing it (a "
                     "pseudo-terminal keeps the flag while its other side is open); open it "
                     "once as root (hwfota takes a stale flag over) or restart the program "
                     "that provides the terminal; if ModemManager uses it, inhibit the modem "
                     "(mmcli -m N --inhibit)", path);
    else
        set_busy(err, path);
}

/* Take the port for us: TIOCGEXCL check (when check_foreign), flock, TIOCEXCL.
 * The serial path skips the check here: it ran on the guard before sp_open, and
 * libserialport > 0.1.1 sets TIOCEXCL itself inside sp_open. 0 or -1 + err. */
static int take_exclusive(hf_transport *t, int check_foreign, hf_error *err)
{
    int fd = t->fd;
    const char *path = t->path;
    if (check_foreign && held_exclusive(fd) && judge_exclusive(t, fd, err) != 0)
        return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK || errno == EAGAIN)
            set_busy(err, path);
        else
            set_errno(err, "lock", path, errno);
        return -1;
    }
    t->owned = 1;   /* the lock is ours now: close must drop TIOCEXCL again */
    owned_add(fd);
    if (ioctl(fd, TIOCEXCL) != 0) {
        set_errno(err, "set exclusive mode on", path, errno);
        return -1;
    }
    return 0;
}

/* Close without blocking. When the port is ours: discard unsent output (a
 * stalled or vanished USB port would otherwise make the kernel wait up to
 * closing_wait, 30 s by default, in close()) and drop TIOCEXCL (a pty slave
 * keeps the flag while its master lives). When it is not (a failed open of a
 * busy port), touch nothing: flushing or clearing TIOCEXCL would hurt the real
 * owner. close() releases our flock. Errors are irrelevant here. */
static void close_fd_quietly(int fd, int owned)
{
    if (fd < 0)
        return;
    if (owned) {
        owned_remove(fd);
        (void)tcflush(fd, TCIOFLUSH);
        (void)ioctl(fd, TIOCNXCL);
    }
    (void)close(fd);
}

static int set_nonblock_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    int fdfl = fcntl(fd, F_GETFD);
    if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0)
        return -1;
    return 0;
}

/* ---- POSIX path (ptys and other ttys libserialport refuses) ------------ */

static int baud_to_speed(int baud, speed_t *out)
{
    static const struct { int baud; speed_t speed; } table[] = {
        {1200, B1200}, {2400, B2400}, {4800, B4800}, {9600, B9600},
        {19200, B19200}, {38400, B38400}, {57600, B57600}, {115200, B115200},
        {230400, B230400}, {460800, B460800}, {921600, B921600},
#ifdef B3000000
        {1000000, B1000000}, {2000000, B2000000}, {3000000, B3000000},
        {4000000, B4000000},
#endif
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (table[i].baud == baud) {
            *out = table[i].speed;
            return 0;
        }
    }
    return -1;
}

/* The fd is a character device and a terminal, else EINVAL with what it is. */
static int check_is_tty(int fd, const char *path, hf_error *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        set_errno(err, "inspect", path, errno);
        return -1;
    }
    if (!S_ISCHR(st.st_mode)) {
        hf_error_set(err, "EINVAL", "cannot use %s: not a serial port (%s)", path,
                     S_ISREG(st.st_mode) ? "regular file" :
                     S_ISDIR(st.st_mode) ? "directory" :
                     S_ISFIFO(st.st_mode) ? "FIFO" :
                     S_ISSOCK(st.st_mode) ? "socket" : "not a character device");
        return -1;
    }
    struct termios tio;
    if (tcgetattr(fd, &tio) != 0) {
        hf_error_set(err, "EINVAL", "cannot use %s: not a terminal device (%s)", path,
                     strerror(errno));
        return -1;
    }
    return 0;
}

static int configure_raw(int fd, const char *path, const hf_transport_opts *o, hf_error *err)
{
    speed_t speed;
    if (baud_to_speed(o->baudrate, &speed) != 0) {
        hf_error_set(err, "EINVAL", "cannot configure %s: unsupported baud rate %d", path,
                     o->baudrate);
        return -1;
    }
    struct termios tio;
    if (tcgetattr(fd, &tio) != 0) {
        set_errno(err, "configure", path, errno);
        return -1;
    }
    cfmakeraw(&tio);
    tio.c_cflag &= ~(CSIZE | PARENB | CSTOPB | CRTSCTS);
    tio.c_cflag |= CS8 | CLOCAL | CREAD;
    if (o->flow == HF_FLOW_RTSCTS)
        tio.c_cflag |= CRTSCTS;
    tio.c_cc[VMIN] = 0;
    tio.c_cc[VTIME] = 0;
    if (cfsetispeed(&tio, speed) != 0 || cfsetospeed(&tio, speed) != 0 ||
        tcsetattr(fd, TCSANOW, &tio) != 0) {
        set_errno(err, "configure", path, errno);
        return -1;
    }
    return 0;
}

static int open_posix(hf_transport *t, const char *dev, const hf_transport_opts *o,
                      hf_error *err)
{
    t->fd = open(dev, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (t->fd < 0) {
        if (errno == EBUSY)
            set_busy_unprivileged(err, dev, t->path);
        else
            set_errno(err, "open", t->path, errno);
        return -1;
    }
    if (check_is_tty(t->fd, t->path, err) != 0 || take_exclusive(t, 1, err) != 0 ||
        configure_raw(t->fd, t->path, o, err) != 0)
        return -1;  /* caller closes */
    return 0;
}

/* ---- libserialport path ------------------------------------------------- */

/* Errno behind libserialport's last failure (0.1.1: errno itself on Unix). */
static int sp_errno(void)
{
    int e = sp_last_error_code();
    return e > 0 ? e : EIO;
}

/* Guard before sp_open: fails with EBUSY if anyone holds the port, without
 * touching its termios. Returns the guard fd, holding our flock, or -1. The
 * caller keeps it open across sp_open (so the tty is never fully closed in
 * between, which would drop DTR through HUPCL) and closes it afterwards. */
static int guard_open(hf_transport *t, const char *dev, hf_error *err)
{
    int fd = open(dev, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == EBUSY)
            set_busy_unprivileged(err, dev, t->path);
        else
            set_errno(err, "open", t->path, errno);
        return -1;
    }
    if (held_exclusive(fd) ? judge_exclusive(t, fd, err) != 0
                           : flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (!held_exclusive(fd))
            set_busy(err, t->path);
        (void)close(fd);
        return -1;
    }
    return fd;
}

/* 8N1, baud rate and flow control in one sp_set_config round trip. */
static int configure_sp(struct sp_port *sp, const char *path, const hf_transport_opts *o,
                        hf_error *err)
{
    struct sp_port_config *cfg = NULL;
    if (sp_new_config(&cfg) != SP_OK) {
        hf_error_set(err, "ENOMEM", "cannot configure %s: out of memory", path);
        return -1;
    }
    enum sp_flowcontrol fc = o->flow == HF_FLOW_RTSCTS ? SP_FLOWCONTROL_RTSCTS
                                                       : SP_FLOWCONTROL_NONE;
    int rc = 0;
    if (sp_set_config_baudrate(cfg, o->baudrate) != SP_OK ||
        sp_set_config_bits(cfg, 8) != SP_OK ||
        sp_set_config_parity(cfg, SP_PARITY_NONE) != SP_OK ||
        sp_set_config_stopbits(cfg, 1) != SP_OK ||
        sp_set_config_flowcontrol(cfg, fc) != SP_OK) {
        hf_error_set(err, "EINVAL", "cannot configure %s: invalid settings", path);
        rc = -1;
    } else if (sp_set_config(sp, cfg) != SP_OK) {
        hf_error_set(err, "EINVAL", "cannot configure %s (baud %d): %s", path, o->baudrate,
                     strerror(sp_errno()));
        rc = -1;
    }
    sp_free_config(cfg);
    return rc;
}

/* Debian's libserialport 0.1.1 accepts SP_FLOWCONTROL_RTSCTS but never puts
 * CRTSCTS into the termios it writes (seen with strace). Read the settings back
 * and put the flag right ourselves, whichever libserialport we run on. */
static int enforce_rtscts(int fd, const char *path, hf_flow flow, hf_error *err)
{
    struct termios tio;
    if (tcgetattr(fd, &tio) != 0) {
        set_errno(err, "configure", path, errno);
        return -1;
    }
    int want = flow == HF_FLOW_RTSCTS;
    if (!!(tio.c_cflag & CRTSCTS) == want)
        return 0;
    if (want)
        tio.c_cflag |= CRTSCTS;
    else
        tio.c_cflag &= ~CRTSCTS;
    if (tcsetattr(fd, TCSANOW, &tio) != 0) {
        set_errno(err, "set flow control on", path, errno);
        return -1;
    }
    return 0;
}

/* After sp_open: take the fd, make it non-blocking and ours alone. */
static int adopt_sp_fd(hf_transport *t, hf_error *err)
{
    int fd = -1;
    if (sp_get_port_handle(t->sp, &fd) != SP_OK || fd < 0) {
        hf_error_set(err, "EIO", "cannot open %s: libserialport gave no file descriptor",
                     t->path);
        return -1;
    }
    t->fd = fd;
    if (set_nonblock_cloexec(fd) != 0) {
        set_errno(err, "set non-blocking mode on", t->path, errno);
        return -1;
    }
    return take_exclusive(t, 0, err);
}

static int open_serial(hf_transport *t, const char *dev, const hf_transport_opts *o,
                       hf_error *err)
{
    int guard = guard_open(t, dev, err);
    if (guard < 0)
        return -1;
    enum sp_return rc = sp_open(t->sp, SP_MODE_READ_WRITE);
    int sp_err = sp_errno();
    (void)close(guard);     /* releases the guard's lock; adopt_sp_fd takes it again */
    if (rc != SP_OK) {
        set_errno(err, "open", t->path, sp_err);
        return -1;
    }
    if (adopt_sp_fd(t, err) != 0 || configure_sp(t->sp, t->path, o, err) != 0 ||
        enforce_rtscts(t->fd, t->path, o->flow, err) != 0)
        return -1;  /* caller closes */
    return 0;
}

/* ---- public ------------------------------------------------------------- */

static hf_transport_opts effective_opts(const hf_transport_opts *opts)
{
    hf_transport_opts o = {HF_DEFAULT_BAUD, HF_FLOW_NONE};
    if (opts) {
        if (opts->baudrate != 0)
            o.baudrate = opts->baudrate;
        o.flow = opts->flow;
    }
    return o;
}

static int check_args(const char *path, const hf_transport_opts *o, hf_error *err)
{
    if (!path || !*path)
        return hf_error_set(err, "EINVAL", "cannot open port: empty path");
    if (strlen(path) >= PATH_MAX)
        return hf_error_set(err, "EINVAL", "cannot open port: path too long");
    if (o->baudrate <= 0)
        return hf_error_set(err, "EINVAL", "cannot open %s: invalid baud rate %d", path,
                            o->baudrate);
    if (o->flow != HF_FLOW_NONE && o->flow != HF_FLOW_RTSCTS)
        return hf_error_set(err, "EINVAL", "cannot open %s: invalid flow control", path);
    return 0;
}

hf_transport *hf_transport_open(const char *path, const hf_transport_opts *opts, hf_error *err)
{
    hf_error_clear(err);
    hf_transport_opts o = effective_opts(opts);
    if (check_args(path, &o, err) != 0)
        return NULL;

    char dev[PATH_MAX];
    if (!realpath(path, dev)) {
        set_errno(err, "open", path, errno);
        return NULL;
    }
    size_t plen = strlen(path);   /* < PATH_MAX: check_args */
    hf_transport *t = calloc(1, sizeof *t + plen + 1);
    if (!t) {
        hf_error_set(err, "ENOMEM", "cannot open %s: out of memory", path);
        return NULL;
    }
    t->fd = -1;
    memcpy(t->path, path, plen + 1);

    int rc;
    if (sp_get_port_by_name(dev, &t->sp) == SP_OK)
        rc = open_serial(t, dev, &o, err);
    else
        rc = open_posix(t, dev, &o, err);
    if (rc != 0) {
        hf_transport_close(t);
        return NULL;
    }
    return t;
}

int hf_transport_fd(const hf_transport *t)
{
    return t ? t->fd : -1;
}

const char *hf_transport_note(const hf_transport *t)
{
    return t ? t->note : "";
}

const char *hf_transport_kind(const hf_transport *t)
{
    return t && t->sp ? "serial" : "pty";
}

const char *hf_transport_path(const hf_transport *t)
{
    return t ? t->path : "";
}

static int check_open(hf_transport *t, hf_error *err)
{
    if (!t || t->fd < 0)
        return hf_error_set(err, "ECLOSED", "port is closed");
    return 0;
}

/* A failed read or write: errors that mean the device went away (the module
 * reset or was unplugged) are EPORTLOST, the rest name the operation. -1. */
static int set_io_error(hf_error *err, const char *path, const char *what, int errnum)
{
    if (errnum == EIO || errnum == ENODEV || errnum == ENXIO || errnum == EPIPE)
        set_lost(err, path, strerror(errnum));
    else
        set_errno(err, what, path, errnum);
    return -1;
}

/* read() gave 0. With VMIN=0/VTIME=0 (raw mode, as libserialport sets it too)
 * the tty answers 0 rather than EAGAIN when nothing is buffered, and a hung-up
 * tty answers 0 as well: a zero-timeout poll tells which. */
static ssize_t read_zero(hf_transport *t, hf_error *err)
{
    struct pollfd pfd = {t->fd, POLLIN, 0};
    if (poll(&pfd, 1, 0) < 0 || !(pfd.revents & (POLLHUP | POLLERR | POLLNVAL)))
        return 0;
    set_lost(err, t->path, "hang-up");
    return -1;
}

ssize_t hf_transport_read(hf_transport *t, void *buf, size_t n, hf_error *err)
{
    if (check_open(t, err) != 0)
        return -1;
    if (n == 0)
        return 0;
    for (;;) {
        ssize_t r = read(t->fd, buf, n);
        if (r > 0)
            return r;
        if (r == 0)
            return read_zero(t, err);
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return set_io_error(err, t->path, "read from", errno);
    }
}

ssize_t hf_transport_write(hf_transport *t, const void *buf, size_t n, hf_error *err)
{
    if (check_open(t, err) != 0)
        return -1;
    if (n == 0)
        return 0;
    for (;;) {
        ssize_t w = write(t->fd, buf, n);
        if (w >= 0)
            return w;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return set_io_error(err, t->path, "write to", errno);
    }
}

/* Bytes waiting to be read, -1 when the question cannot be answered (hung-up
 * ttys answer ioctls with EIO/ENOTTY). */
static int input_waiting(int fd)
{
    int n = 0;
    if (ioctl(fd, FIONREAD, &n) != 0)
        return -1;
    return n;
}

int hf_transport_check_revents(hf_transport *t, short revents, hf_error *err)
{
    if (check_open(t, err) != 0)
        return -1;
    if (revents & POLLNVAL) {
        set_lost(err, t->path, "file descriptor no longer valid");
        return -1;
    }
    if (!(revents & (POLLHUP | POLLERR)))
        return 0;
    /* A hung-up tty also reports POLLIN; only real pending bytes count. */
    if ((revents & POLLIN) && input_waiting(t->fd) > 0)
        return 0;
    set_lost(err, t->path, (revents & POLLHUP) ? "hang-up" : "error condition");
    return -1;
}

/* Never blocks. We close the fd ourselves instead of calling sp_close (which in
 * 0.1.1 is a bare close(), so nothing is lost): close_fd_quietly() first
 * discards pending output so the kernel's close-time drain cannot stall, and a
 * future libserialport whose sp_close drains or restores settings cannot either.
 * sp_free_port then only frees memory (it never touches the fd). */
void hf_transport_close(hf_transport *t)
{
    if (!t)
        return;
    close_fd_quietly(t->fd, t->owned);
    t->fd = -1;
    if (t->sp)
        sp_free_port(t->sp);
    free(t);
}

/* ---- enumeration -------------------------------------------------------- */

static const char *sp_transport_name(enum sp_transport tr)
{
    switch (tr) {
    case SP_TRANSPORT_USB: return "usb";
    case SP_TRANSPORT_BLUETOOTH: return "bluetooth";
    default: return "native";
    }
}

static void copy_opt(char *dst, size_t cap, const char *src)
{
    hf_strlcpy(dst, cap, src ? src : "");
}

static void fill_port_info(hf_port_info *pi, const struct sp_port *p)
{
    copy_opt(pi->path, sizeof pi->path, sp_get_port_name(p));
    copy_opt(pi->description, sizeof pi->description, sp_get_port_description(p));
    enum sp_transport tr = sp_get_port_transport(p);
    hf_strlcpy(pi->transport, sizeof pi->transport, sp_transport_name(tr));
    pi->vid = pi->pid = -1;
    pi->usb_bus = pi->usb_address = -1;
    pi->manufacturer[0] = pi->product[0] = pi->serial[0] = '\0';
    if (tr != SP_TRANSPORT_USB)
        return;
    int vid, pid, bus, addr;
    if (sp_get_port_usb_vid_pid(p, &vid, &pid) == SP_OK) {
        pi->vid = vid;
        pi->pid = pid;
    }
    if (sp_get_port_usb_bus_address(p, &bus, &addr) == SP_OK) {
        pi->usb_bus = bus;
        pi->usb_address = addr;
    }
    copy_opt(pi->manufacturer, sizeof pi->manufacturer, sp_get_port_usb_manufacturer(p));
    copy_opt(pi->product, sizeof pi->product, sp_get_port_usb_product(p));
    copy_opt(pi->serial, sizeof pi->serial, sp_get_port_usb_serial(p));
}

const char *hf_port_role(int vid, int cls, int subclass, int protocol)
{
    if (vid != 0x12d1 || cls != 0xff || (subclass != 0x01 && subclass != 0x02))
        return NULL;
    switch (protocol) {
    case 0x01: return "modem";
    case 0x02: return "pcui";
    case 0x03: return "diag";
    case 0x05: return subclass == 0x01 ? "gps" : NULL;
    default: return NULL;
    }
}

/* A two-digit hex sysfs attribute (bInterfaceNumber, bInterfaceClass ...):
 * 0..255, or -1 when missing or malformed. */
static int read_hex_attr(const char *dir, const char *name)
{
    char path[PATH_MAX], buf[16];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return -1;
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *got = fgets(buf, sizeof buf, f);
    fclose(f);
    if (!got)
        return -1;
    char *end;
    long v = strtol(buf, &end, 16);
    if (end == buf || (*end && *end != '\n') || v < 0 || v > 255)
        return -1;
    return (int)v;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* The tty's USB interface: its directory is device/ (cdc-acm binds the tty to
 * the interface) or device/.. (usb-serial puts a port directory between). */
static void fill_interface(hf_port_info *pi)
{
    pi->interface = pi->usb_class = pi->usb_subclass = pi->usb_protocol = -1;
    const char *name = base_name(pi->path);
    if (!name[0] || strlen(name) > 64)
        return;
    static const char *const rel[] = {"device", "device/.."};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        char dir[160];
        snprintf(dir, sizeof dir, "/sys/class/tty/%s/%s", name, rel[i]);
        int n = read_hex_attr(dir, "bInterfaceNumber");
        if (n < 0)
            continue;
        pi->interface = n;
        pi->usb_class = read_hex_attr(dir, "bInterfaceClass");
        pi->usb_subclass = read_hex_attr(dir, "bInterfaceSubClass");
        pi->usb_protocol = read_hex_attr(dir, "bInterfaceProtocol");
        return;
    }
}

/* /dev/serial/by-id: names and the tty each links to, read once per listing. */
#define BYID_DIR "/dev/serial/by-id"
#define BYID_MAX 64
typedef struct {
    char name[256];
    char tty[64];
} byid_entry;

static size_t read_by_id(byid_entry *e, size_t cap)
{
    DIR *d = opendir(BYID_DIR);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *de;
    while (n < cap && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof e[n].name)
            continue;
        char link[PATH_MAX], target[PATH_MAX];
        snprintf(link, sizeof link, "%s/%s", BYID_DIR, de->d_name);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        const char *tty = base_name(target);
        if (!tty[0] || strlen(tty) >= sizeof e[n].tty)
            continue;
        memcpy(e[n].name, de->d_name, strlen(de->d_name) + 1);
        memcpy(e[n].tty, tty, strlen(tty) + 1);
        n++;
    }
    closedir(d);
    return n;
}

/* The by-id name of the port (the smallest when several link to it), and the
 * interface number from its "-ifNN-" when sysfs did not tell it. */
static void fill_by_id(hf_port_info *pi, const byid_entry *e, size_t n)
{
    pi->by_id[0] = '\0';
    const char *name = base_name(pi->path);
    const byid_entry *best = NULL;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(e[i].tty, name) && (!best || strcmp(e[i].name, best->name) < 0))
            best = &e[i];
    if (!best)
        return;
    snprintf(pi->by_id, sizeof pi->by_id, "%s/%s", BYID_DIR, best->name);
    const char *ifp = strstr(best->name, "-if");
    if (pi->interface < 0 && ifp) {
        char *end;
        long v = strtol(ifp + 3, &end, 16);
        if (end == ifp + 5 && v >= 0 && v <= 255)
            pi->interface = (int)v;
    }
}

static int cmp_port_name(const void *a, const void *b)
{
    const char *na = sp_get_port_name(*(struct sp_port *const *)a);
    const char *nb = sp_get_port_name(*(struct sp_port *const *)b);
    return strcmp(na ? na : "", nb ? nb : "");
}

int hf_list_ports(hf_port_info *out, size_t cap, size_t *found, hf_error *err)
{
    hf_error_clear(err);
    if (found)
        *found = 0;
    struct sp_port **list = NULL;
    if (sp_list_ports(&list) != SP_OK) {
        hf_error_set(err, "EIO", "cannot list serial ports: %s", strerror(sp_errno()));
        return -1;
    }
    size_t n = 0;
    while (list[n])
        n++;
    /* readdir order is arbitrary: sort by name so callers see a stable order. */
    qsort(list, n, sizeof list[0], cmp_port_name);
    byid_entry *byid = NULL;
    size_t nbyid = 0;
    if (out && cap > 0) {
        byid = calloc(BYID_MAX, sizeof *byid);
        if (byid)
            nbyid = read_by_id(byid, BYID_MAX);
    }
    for (size_t i = 0; i < n && i < cap && out; i++) {
        hf_port_info *pi = &out[i];
        fill_port_info(pi, list[i]);
        pi->interface = pi->usb_class = pi->usb_subclass = pi->usb_protocol = -1;
        pi->by_id[0] = pi->role[0] = '\0';
        if (strcmp(pi->transport, "usb") != 0)
            continue;
        fill_interface(pi);
        fill_by_id(pi, byid, nbyid);
        const char *role = hf_port_role(pi->vid, pi->usb_class, pi->usb_subclass,
                                        pi->usb_protocol);
        hf_strlcpy(pi->role, sizeof pi->role, role ? role : "");
    }
    free(byid);
    sp_free_port_list(list);
    if (found)
        *found = n;
    return 0;
}
