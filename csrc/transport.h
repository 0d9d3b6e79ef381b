/*
 * transport.h — open, read, write and close a module's AT port. Bottom layer.
 *
 * Real serial devices (ttyUSB, ttyACM, ttyS ...) go through libserialport
 * (sp_get_port_by_name + sp_open, 8N1, baud rate, flow control), then its fd is
 * used directly in the owner's poll() loop. Pseudo-terminals and other character
 * devices that libserialport refuses are opened with open(2) + raw termios. The
 * choice is automatic and reported by hf_transport_kind().
 *
 * Every fd is non-blocking and held exclusively (flock + TIOCEXCL). Hang-up, EIO
 * and ENODEV become "EPORTLOST". Nothing here knows about AT commands.
 */
#ifndef HF_TRANSPORT_H
#define HF_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>

#include "hf_error.h"

/* The transport and the Lua binding (which include this) call stat() and readdir():
 * on 32-bit glibc targets those fail with EOVERFLOW on 64-bit inode numbers and
 * directory offsets unless built with -D_FILE_OFFSET_BITS=64 (the Makefile's
 * HF_CFLAGS). Found by `make check-cross` on mips and armhf. */
_Static_assert(sizeof(off_t) == 8 && sizeof(ino_t) == 8,
               "build with -D_FILE_OFFSET_BITS=64 (32-bit glibc: stat/readdir EOVERFLOW)");

typedef struct hf_transport hf_transport;

typedef enum { HF_FLOW_NONE = 0, HF_FLOW_RTSCTS = 1 } hf_flow;

typedef struct hf_transport_opts {
    int baudrate;      /* default 115200 when 0 */
    hf_flow flow;      /* default none */
} hf_transport_opts;

/* Open `path`. On failure returns NULL and fills err: ENOENT (no such port),
 * EACCES, EBUSY (held by another process; the message names ModemManager and
 * how to keep it away), EINVAL (not a tty), EIO. */
hf_transport *hf_transport_open(const char *path, const hf_transport_opts *opts, hf_error *err);

/* The fd to poll for POLLIN (and POLLOUT while output is pending). -1 once closed. */
int hf_transport_fd(const hf_transport *t);

/* "serial" (libserialport) or "pty" (POSIX open + termios: ptys, and any other
 * tty libserialport refuses). The path is resolved first, so a symlink to a pty
 * is "pty" and /dev/serial/by-id/... to a ttyUSB is "serial". */
const char *hf_transport_kind(const hf_transport *t);

/* The path given to open. */
const char *hf_transport_path(const hf_transport *t);

/* Read up to n bytes. Returns >0 bytes read, 0 when nothing is available now,
 * -1 on error (err->code "EPORTLOST" for hang-up/EIO/ENODEV/EOF). A raw tty
 * (VMIN=0, VTIME=0) reads 0 both when idle and when hung up; the two are told
 * apart with a zero-timeout poll, so 0 really means "nothing yet".
 * On a closed handle (NULL or fd -1): -1 with "ECLOSED". Same for write and
 * check_revents. */
ssize_t hf_transport_read(hf_transport *t, void *buf, size_t n, hf_error *err);

/* Write up to n bytes. Returns bytes written (possibly 0 when the fd would block),
 * -1 on error (EPORTLOST as for read). */
ssize_t hf_transport_write(hf_transport *t, const void *buf, size_t n, hf_error *err);

/* Interpret poll() revents for this fd: returns -1 and fills err (EPORTLOST) when
 * they mean the port is gone (POLLHUP/POLLERR/POLLNVAL without readable data), else 0. */
int hf_transport_check_revents(hf_transport *t, short revents, hf_error *err);

/* What the open had to do beyond the ordinary, for the owner to report: ""
 * or e.g. a stale exclusive flag (TIOCEXCL left by a killed process, no
 * holder) taken over (see transport.c). */
const char *hf_transport_note(const hf_transport *t);

/* Drop TIOCEXCL on every port this process holds and close them (their flock
 * goes too). Async-signal-safe: for a handler of a signal that ends the
 * process (SIGTERM), so that the next open finds the port free. Transports
 * stay allocated; the process is about to end. */
void hf_transport_release_all(void);

/* Close and free. Never blocks (no tcdrain on a dead USB port; unsent output is
 * discarded so the kernel's close-time drain cannot stall). Drops TIOCEXCL and
 * the flock. Accepts NULL. */
void hf_transport_close(hf_transport *t);

/* --- enumeration -------------------------------------------------------- */

typedef struct hf_port_info {
    char path[256];
    char description[128];
    char transport[16];     /* "usb", "native", "bluetooth" */
    int vid, pid;           /* -1 when unknown */
    char manufacturer[128];
    char product[128];
    char serial[128];
    int usb_bus, usb_address; /* -1 when unknown */
    /* The tty's own USB interface (sysfs, or the by-id name's -ifNN-): */
    int interface;          /* bInterfaceNumber, -1 when unknown */
    int usb_class, usb_subclass, usb_protocol; /* bInterface{Class,SubClass,Protocol}, -1 unknown */
    char by_id[288];        /* /dev/serial/by-id/... link to this port, "" when none */
    char role[8];           /* Huawei port role from the class triple: "pcui" (the AT port),
                               "modem", "diag", "gps"; "" when unknown */
} hf_port_info;

/* Enumerate ports through sp_list_ports, sorted by path. Fills at most `cap`
 * entries of `out` (out may be NULL when cap is 0: count only) and stores the
 * number found (may exceed cap) in *found. Returns 0 or -1 + err.
 * USB ports also get their interface number and class triple (sysfs: the
 * tty's device/ (cdc-acm) or device/.. (usb-serial) directory), their
 * /dev/serial/by-id name and, for vendor 12d1, the role the class triple
 * tells (hf_port_role). */
int hf_list_ports(hf_port_info *out, size_t cap, size_t *found, hf_error *err);

/* The role of a Huawei (vendor 12d1) vendor-specific interface from its USB
 * class triple, as ModemManager's Huawei port-type rules read it: class ff,
 * subclass 01|02, protocol 02 = "pcui" (the AT port), 01 = "modem" (PPP; also
 * answers AT but is the data port), 03 = "diag" (inferred: Huawei's diagnostics
 * protocol), 05 = "gps" (MU609's NMEA port, ff/01/05). NULL when the triple is
 * unknown, not vendor-specific or not one of these. */
const char *hf_port_role(int vid, int cls, int subclass, int protocol);

#endif
