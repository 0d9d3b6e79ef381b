/*
 * lua_core.c — luaopen_hwfota_core: the C half of `require "hwfota"`.
 *
 * Assembles the module table from the binding files (ports, FOTA state
 * machine, FOTA command table, path watcher) and adds the functions that need no object: list_ports,
 * write_file_atomic, read_file, remove_file, check_file_path, realpath,
 * release_ports_on_signals, and signals as loop events: signal_route,
 * signal_unroute, signal_take (now and poll come with the ports). The Lua half
 * (lua/hwfota/init.lua) documents the public API.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua_cmds.h"
#include "lua_fota.h"
#include "lua_port.h"
#include "lua_pump.h"
#include "lua_watch.h"
#include "transport.h"

#define CORE_MAX_PORTS 64

static void set_str(lua_State *L, const char *k, const char *v)
{
    if (v && v[0]) {
        lua_pushstring(L, v);
        lua_setfield(L, -2, k);
    }
}

static void set_int(lua_State *L, const char *k, int v)
{
    if (v >= 0) {
        lua_pushinteger(L, v);
        lua_setfield(L, -2, k);
    }
}

/* list_ports() -> array of {path, description, transport, vid, pid,
 * manufacturer, product, serial, usb_bus, usb_address, interface, usb_class,
 * usb_subclass, usb_protocol, by_id, role, huawei} | nil,msg,code */
static int core_list_ports(lua_State *L)
{
    static const size_t cap = CORE_MAX_PORTS;
    hf_port_info *info = lua_newuserdatauv(L, sizeof *info * cap, 0); /* GC-owned scratch */
    size_t found = 0;
    hf_error err;
    hf_error_clear(&err);
    if (hf_list_ports(info, cap, &found, &err) < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        lua_pushstring(L, err.code ? err.code : "EIO");
        return 3;
    }
    if (found > cap)
        found = cap;
    lua_createtable(L, (int)found, 0);
    for (size_t i = 0; i < found; i++) {
        const hf_port_info *p = &info[i];
        lua_createtable(L, 0, 17);
        set_str(L, "path", p->path);
        set_str(L, "description", p->description);
        set_str(L, "transport", p->transport);
        set_int(L, "vid", p->vid);
        set_int(L, "pid", p->pid);
        set_str(L, "manufacturer", p->manufacturer);
        set_str(L, "product", p->product);
        set_str(L, "serial", p->serial);
        set_int(L, "usb_bus", p->usb_bus);
        set_int(L, "usb_address", p->usb_address);
        set_int(L, "interface", p->interface);
        set_int(L, "usb_class", p->usb_class);
        set_int(L, "usb_subclass", p->usb_subclass);
        set_int(L, "usb_protocol", p->usb_protocol);
        set_str(L, "by_id", p->by_id);
        set_str(L, "role", p->role);
        lua_pushboolean(L, p->vid == 0x12d1);
        lua_setfield(L, -2, "huawei");
        lua_seti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* nil, "<what> <path>: <strerror>", CODE for a failed file operation. The
 * errno codes of hf_error are the serial port's: there EIO, ENXIO, ENODEV and
 * EPIPE mean the module went away (EPORTLOST); on a file they are I/O errors. */
static int fail_errno(lua_State *L, const char *what, const char *path, int e)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s %s: %s", what, path, strerror(e));
    const char *code = hf_error_code_from_errno(e);
    lua_pushstring(L, strcmp(code, "EPORTLOST") == 0 ? "EIO" : code);
    return 3;
}

/* What a file that is not a regular file is, for messages. */
static const char *file_kind(mode_t m)
{
    if (S_ISLNK(m))
        return "a symbolic link";
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISSOCK(m))
        return "a socket";
    return "not a regular file";
}

static int fail_kind(lua_State *L, const char *path, mode_t m)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s is %s, not a regular file: refused (only a regular file, or a path "
                    "that does not exist yet, is written, read or removed)", path, file_kind(m));
    lua_pushstring(L, "EINVAL");
    return 3;
}

static const char *check_path_arg(lua_State *L, int idx)
{
    size_t plen;
    if (lua_type(L, idx) != LUA_TSTRING)   /* a number would become a file name */
        luaL_typeerror(L, idx, "string");
    const char *path = lua_tolstring(L, idx, &plen);
    luaL_argcheck(L, plen > 0 && plen < 4000 && strlen(path) == plen, idx,
                  "path must be 1 to 3999 bytes without NUL");
    return path;
}

/* The directory of path, into dir[cap] ("." for a bare name). */
static void dir_of(const char *path, char *dir, size_t cap)
{
    snprintf(dir, cap, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, cap, ".");
}

/* 0: path is a regular file (not a symbolic link) or does not exist (*exists
 * says which); else pushes nil, msg, code and returns 3. */
static int check_target(lua_State *L, const char *path, int *exists)
{
    struct stat st;
    *exists = 0;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return fail_errno(L, "cannot inspect", path, errno);
    }
    if (!S_ISREG(st.st_mode))
        return fail_kind(L, path, st.st_mode);
    *exists = 1;
    return 0;
}

/* The path argument 1 and what it names: 0 with *exists set, or the count of the
 * nil, message, code pushed for a target that is not a regular file. */
static int path_target(lua_State *L, const char **path, int *exists)
{
    *path = check_path_arg(L, 1);
    return check_target(L, *path, exists);
}

/* write_file_atomic(path, data) -> true | nil,msg,code. Writes a new temporary
 * file next to path (path.tmp.<unique>, created with O_CREAT|O_EXCL|O_NOFOLLOW:
 * never an existing file or a symbolic link's target), fsyncs it, renames it over
 * path and fsyncs the directory, so a power cut leaves either the old or the new
 * content, never a mix (journal files). path must be a regular file or not exist
 * (checked with lstat before and again right before the rename): a device, FIFO,
 * directory or symbolic link is refused (EINVAL), never replaced. */
static int core_write_file_atomic(lua_State *L)
{
    size_t len;
    const char *path = check_path_arg(L, 1);
    const char *data = luaL_checklstring(L, 2, &len);
    int exists, n;
    if ((n = check_target(L, path, &exists)) != 0)
        return n;
    static unsigned serial;
    char tmp[4096];
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 100; tries++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned u = (unsigned)ts.tv_nsec ^ (++serial * 2654435761u);
        int w = snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%08x", path, (long)getpid(), u);
        if (w < 0 || (size_t)w >= sizeof tmp)
            return fail_errno(L, "cannot name a temporary file for", path, ENAMETOOLONG);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            return fail_errno(L, "cannot create", tmp, errno);
    }
    if (fd < 0)
        return fail_errno(L, "cannot create a temporary file for", path, EEXIST);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            close(fd);
            unlink(tmp);
            return fail_errno(L, "cannot write", tmp, e);
        }
        off += (size_t)w;
    }
    if (fsync(fd) < 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return fail_errno(L, "cannot fsync", tmp, e);
    }
    if (close(fd) < 0 && errno != EINTR) {
        int e = errno;
        unlink(tmp);
        return fail_errno(L, "cannot close", tmp, e);
    }
    /* the target may have been replaced meanwhile (a symbolic link, a device) */
    if ((n = check_target(L, path, &exists)) != 0) {
        unlink(tmp);
        return n;
    }
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return fail_errno(L, "cannot rename to", path, e);
    }
    /* make the rename itself durable: until the directory is synced a power cut
     * may bring the old content back, and a journal that says less than what was
     * done (AT^FWUP sent) could lead to a step being repeated. EINVAL: the file
     * system cannot sync directories (nothing more can be done there). */
    char dir[4096];
    dir_of(path, dir, sizeof dir);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return fail_errno(L, "cannot open the directory to fsync it:", dir, errno);
    if (fsync(dfd) < 0 && errno != EINVAL) {
        int e = errno;
        close(dfd);
        return fail_errno(L, "cannot fsync the directory", dir, e);
    }
    close(dfd);
    lua_pushboolean(L, 1);
    return 1;
}

/* read_file(path, max) -> data (at most max bytes) | nil,msg,code. Opens with
 * O_NONBLOCK|O_NOFOLLOW and reads only a regular file: a FIFO never blocks, a
 * symbolic link, a device or a directory is refused (EINVAL). A missing file is
 * nil, msg, "ENOENT". */
static int core_read_file(lua_State *L)
{
    const char *path = check_path_arg(L, 1);
    lua_Integer max = luaL_checkinteger(L, 2);
    luaL_argcheck(L, max >= 0 && max <= 1 << 20, 2, "max must be 0 .. 1048576");
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        struct stat st;
        if (e == ELOOP && lstat(path, &st) == 0)
            return fail_kind(L, path, st.st_mode);
        return fail_errno(L, "cannot open", path, e);
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return fail_errno(L, "cannot inspect", path, e);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fail_kind(L, path, st.st_mode);
    }
    luaL_Buffer b;
    char *buf = luaL_buffinitsize(L, &b, (size_t)max + 1);
    size_t got = 0;
    while (got < (size_t)max) {
        ssize_t r = read(fd, buf + got, (size_t)max - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return fail_errno(L, "cannot read", path, e);
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    luaL_pushresultsize(&b, got);
    return 1;
}

/* remove_file(path) -> true | nil,msg,code. Removes a regular file; a missing
 * one is fine (true); anything else (symbolic link, device, FIFO, directory) is
 * refused (EINVAL) and left alone. */
static int core_remove_file(lua_State *L)
{
    const char *path;
    int exists, n = path_target(L, &path, &exists);
    if (n)
        return n;
    if (exists && unlink(path) < 0 && errno != ENOENT)
        return fail_errno(L, "cannot remove", path, errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* check_file_path(path) -> true | nil,msg,code. true when path can be a
 * journal: a regular file, or a name that does not exist yet in an existing
 * directory. A symbolic link, device, FIFO, socket or directory: EINVAL. */
static int core_check_file_path(lua_State *L)
{
    const char *path;
    int exists, n = path_target(L, &path, &exists);
    if (n)
        return n;
    if (!exists) {
        char dir[4096];
        struct stat st;
        dir_of(path, dir, sizeof dir);
        if (stat(dir, &st) < 0)
            return fail_errno(L, "cannot use the directory of", path, errno);
        if (!S_ISDIR(st.st_mode))
            return fail_errno(L, "cannot use the directory of", path, ENOTDIR);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* realpath(path) -> canonical path | nil,msg,code (follows /dev/serial/by-id links). */
static int core_realpath(lua_State *L)
{
    size_t plen;
    const char *path = luaL_checklstring(L, 1, &plen);
    luaL_argcheck(L, plen > 0 && strlen(path) == plen, 1, "path must be a non-empty string without NUL");
    char *r = realpath(path, NULL);
    if (!r)
        return fail_errno(L, "cannot resolve", path, errno);
    lua_pushstring(L, r);
    free(r);
    return 1;
}

/* ---- ports released on a fatal signal ---------------------------------
 * A process ended by a signal never runs the ports' close: on a pty TIOCEXCL
 * then stays (see transport.c), and a procd service gets SIGTERM (then SIGKILL
 * 5 s later). release_ports_on_signals() installs, for SIGTERM and SIGHUP, a
 * handler that drops every port's exclusive flag and lock
 * (hf_transport_release_all, async-signal-safe) and then ends the process by
 * the same signal, as before. SIGINT: the interpreter's own handler (lua.c:
 * "interrupted!" at the next Lua instruction, the command's graceful stop)
 * runs first; it resets SIGINT to the default, and a second SIGINT then
 * releases the ports and ends the process. The journal is written only at
 * phase changes, so dying here is what a SIGKILL would do, minus the flag. */

static struct sigaction prev_int;

static void die_releasing(int sig)
{
    hf_transport_release_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void on_sigint(int sig)
{
    if (prev_int.sa_handler != SIG_DFL && prev_int.sa_handler != SIG_IGN &&
        !(prev_int.sa_flags & SA_SIGINFO)) {
        prev_int.sa_handler(sig);   /* lua.c's: stop at the next Lua instruction */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = die_releasing;   /* the second one ends the process */
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        return;
    }
    die_releasing(sig);
}

/* release_ports_on_signals() -> true. Idempotent. */
static int core_release_ports_on_signals(lua_State *L)
{
    static int installed;
    if (!installed) {
        struct sigaction sa, cur;
        memset(&sa, 0, sizeof sa);
        sigemptyset(&sa.sa_mask);
        sa.sa_handler = die_releasing;
        static const int fatal[] = {SIGTERM, SIGHUP};
        for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
            if (sigaction(fatal[i], NULL, &cur) == 0 && cur.sa_handler != SIG_IGN)
                sigaction(fatal[i], &sa, NULL);
        if (sigaction(SIGINT, NULL, &prev_int) == 0 && prev_int.sa_handler != SIG_IGN) {
            sa.sa_handler = on_sigint;
            sigaction(SIGINT, &sa, NULL);
        }
        installed = 1;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- signals as loop events ---------------------------------------------
 * hwfota.on_signal (loop.lua) routes a signal into the poll loop: the handler
 * only writes the signal's number into a self-pipe (async-signal-safe) whose
 * read end the loop watches; the loop reads it (signal_take) and calls the Lua
 * handlers between two steps, where stopping is safe. No "interrupted!"
 * error thrown into whatever Lua code happens to run. With `once`, the
 * handler also sets the signal to die_releasing: a second one (Ctrl-C again)
 * releases the ports and ends the process at once, even while a blocking call
 * waits. unroute restores what was there before route.
 * State: a signal handler gets no context argument, so the pipe and the saved
 * dispositions are the process's (like the dispositions themselves). */

static const char *const sig_names[] = {"INT", "TERM", "HUP", "USR1", "USR2", NULL};
static const int sig_numbers[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2};
#define N_ROUTED (sizeof sig_numbers / sizeof sig_numbers[0])

static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t sig_once[N_ROUTED];
static struct sigaction sig_prev[N_ROUTED];
static int sig_routed[N_ROUTED];

static void on_routed_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (sig_pipe[1] >= 0 && write(sig_pipe[1], &b, 1) < 0) {
        /* pipe full: signals are already waiting to be read; nothing is lost
         * that the loop would not see */
    }
    for (size_t i = 0; i < N_ROUTED; i++) {
        if (sig_numbers[i] == sig && sig_once[i]) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sigemptyset(&sa.sa_mask);
            sa.sa_handler = die_releasing;
            sigaction(sig, &sa, NULL);
        }
    }
    errno = saved;
}

static int open_sig_pipe(lua_State *L)
{
    if (sig_pipe[0] >= 0)
        return 0;
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        sig_pipe[0] = sig_pipe[1] = -1;
        lua_pushnil(L);
        lua_pushfstring(L, "cannot create the signal pipe: %s", strerror(errno));
        lua_pushstring(L, hf_error_code_from_errno(errno));
        return 3;
    }
    return 0;
}

/* signal_route(name, once) -> fd of the pipe | nil, msg, code */
static int core_signal_route(lua_State *L)
{
    int i = luaL_checkoption(L, 1, NULL, sig_names);
    int once = lua_toboolean(L, 2);
    int n = open_sig_pipe(L);
    if (n)
        return n;
    sig_once[i] = once;
    if (!sig_routed[i]) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sigemptyset(&sa.sa_mask);
        sa.sa_handler = on_routed_signal;
        if (sigaction(sig_numbers[i], &sa, &sig_prev[i]) != 0) {
            lua_pushnil(L);
            lua_pushfstring(L, "cannot handle SIG%s: %s", sig_names[i], strerror(errno));
            lua_pushliteral(L, "EINVAL");
            return 3;
        }
        sig_routed[i] = 1;
    }
    lua_pushinteger(L, sig_pipe[0]);
    return 1;
}

/* signal_unroute(name) -> true: the disposition from before signal_route. */
static int core_signal_unroute(lua_State *L)
{
    int i = luaL_checkoption(L, 1, NULL, sig_names);
    if (sig_routed[i]) {
        sigaction(sig_numbers[i], &sig_prev[i], NULL);
        sig_routed[i] = 0;
        sig_once[i] = 0;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* signal_take() -> array of names of the signals received since the last call. */
static int core_signal_take(lua_State *L)
{
    lua_newtable(L);
    if (sig_pipe[0] < 0)
        return 1;
    unsigned char buf[64];
    lua_Integer k = 0;
    ssize_t r;
    while ((r = read(sig_pipe[0], buf, sizeof buf)) > 0) {
        for (ssize_t j = 0; j < r; j++) {
            for (size_t i = 0; i < N_ROUTED; i++) {
                if (sig_numbers[i] == buf[j]) {
                    lua_pushstring(L, sig_names[i]);
                    lua_seti(L, -2, ++k);
                }
            }
        }
    }
    return 1;
}

int luaopen_hwfota_core(lua_State *L);

int luaopen_hwfota_core(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"list_ports", core_list_ports},
        {"write_file_atomic", core_write_file_atomic},
        {"read_file", core_read_file},
        {"remove_file", core_remove_file},
        {"check_file_path", core_check_file_path},
        {"realpath", core_realpath},
        {"release_ports_on_signals", core_release_ports_on_signals},
        {"signal_route", core_signal_route},
        {"signal_unroute", core_signal_unroute},
        {"signal_take", core_signal_take},
        {NULL, NULL},
    };
    lua_newtable(L);
    hf_lua_port_register(L);
    hf_lua_pump_register(L);
    hf_lua_fota_register(L);
    hf_lua_cmds_register(L);
    hf_lua_watch_register(L);
    luaL_setfuncs(L, funcs, 0);
    return 1;
}
