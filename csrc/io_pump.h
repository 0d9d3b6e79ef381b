/*
 * io_pump.h — the I/O pump: the monotonic clock, one wait over many fds with a
 * deadline, and the byte pump between a transport and its AT engine. No Lua.
 *
 * Two parts:
 *   - the wait set (hf_pump): register fds with the events wanted
 *     (hf_pump_add), wait until one is ready or the deadline passes
 *     (hf_pump_wait), then read what each slot reported (hf_pump_ready).
 *     Callers see only these functions and the HF_PUMP_* bits. Two backends:
 *       - poll(2) (hf_pump_reset: portable, a set rebuilt for every wait);
 *       - epoll (Linux; hf_pump_open with HF_PUMP_EPOLL, then hf_pump_round
 *         before each round): the kernel keeps the registrations across
 *         waits, so a round whose fds and events did not change costs one
 *         epoll_wait and no epoll_ctl, and the wait's cost follows the ready
 *         fds, not the watched ones. Registrations are kept by fd in records
 *         the caller gives (hf_pump_set_regs) with a key the caller chooses
 *         (hf_pump_add_keyed): a different key for the same fd number (the
 *         fd was closed and the number reused) registers it again. An fd
 *         registered in an earlier round but not added in this one is taken
 *         out when it next reports (lazily: no scan of old registrations).
 *         An fd closed here whose file lives on elsewhere (a child process
 *         inherited it) stays in the kernel's set and cannot be taken out by
 *         its number; its events carry an old registration number, and the
 *         set is then made anew from this round's fds (hf_pump_rebuilds).
 *     The round's slots live in the caller's memory (no allocation):
 *     HF_PUMP_MAX_FDS inline, or any number in an array of hf_pump_slot the
 *     caller gives (hf_pump_reset_with / hf_pump_round: how one process waits
 *     on 1,000 modules);
 *   - the port pump: hf_pump_flush (engine output -> transport),
 *     hf_pump_drain (transport -> engine input, bounded per call) and
 *     hf_pump_port_ready (a readiness report -> drain, hang-up check, flush).
 *     They return -1 with err (EPORTLOST ...) when the transport failed: the
 *     owner then closes the transport and tells the engine (hf_at_port_lost).
 * Times are seconds on CLOCK_MONOTONIC (double), as the AT engine's.
 */
#ifndef HF_IO_PUMP_H
#define HF_IO_PUMP_H

#include <poll.h>
#include <stddef.h>

#include "at_engine.h"
#include "hf_error.h"
#include "transport.h"

#define HF_PUMP_MAX_FDS      128   /* fds in one wait held inline (hf_pump_reset) */
#define HF_PUMP_READ_CHUNK   1024  /* bytes per read */
#define HF_PUMP_READS_PER_STEP 16  /* chunks read before timers and callbacks run */
#define HF_PUMP_MAX_WAIT     (86400.0 * 30) /* longest wait accepted (30 days) */

/* Events wanted (hf_pump_add) and reported (hf_pump_ready). */
enum {
    HF_PUMP_READ    = 1,    /* data to read (or end of file) */
    HF_PUMP_WRITE   = 2,    /* room to write */
    HF_PUMP_HUP     = 4,    /* reported only: the peer hung up */
    HF_PUMP_ERR     = 8,    /* reported only: error condition on the fd */
    HF_PUMP_INVALID = 16,   /* reported only: the fd is not open */
};

/* Backends (hf_pump_open). */
typedef enum {
    HF_PUMP_POLL = 0,   /* poll(2): every system */
    HF_PUMP_EPOLL = 1,  /* epoll: Linux only (hf_pump_open fails with ENOSYS elsewhere) */
} hf_pump_backend;

/* One slot of a wait set (the backend's; callers only size arrays of it). */
typedef struct pollfd hf_pump_slot;

/* One fd's registration with the epoll backend (callers only size arrays of
 * it: hf_pump_set_regs; zeroed memory is "nothing registered"). */
typedef struct hf_pump_reg {
    unsigned long long key;   /* the caller's key when registered */
    unsigned long round;      /* the round that last added the fd */
    unsigned long seen;       /* the wait whose report `got` is */
    unsigned want;            /* HF_PUMP_* events registered */
    unsigned got;             /* HF_PUMP_* events reported */
    unsigned gen;             /* the registration's number (in the kernel's event data) */
    unsigned char registered; /* in the kernel's set */
    unsigned char special;    /* this round: 1 not an open fd, 2 always ready (a file) */
} hf_pump_reg;

typedef struct hf_pump {
    size_t n, cap;
    hf_pump_slot *fds;                    /* inl, or the caller's array */
    int epfd;                             /* epoll fd; -1: poll(2) */
    hf_pump_reg *regs;                    /* epoll: registrations, by fd */
    size_t nregs;
    unsigned long round, waits;           /* epoll: rounds begun, waits done */
    size_t nspecial;                      /* epoll: slots of this round ready at once */
    int ctl_errno, ctl_fd;                /* epoll: a registration that failed */
    unsigned long ctl_calls;              /* epoll: epoll_ctl calls so far */
    unsigned gens;                        /* epoll: registrations made so far */
    unsigned long rebuilds;               /* epoll: kernel sets made anew (orphans) */
    hf_pump_slot inl[HF_PUMP_MAX_FDS];    /* the backend's; use the functions */
} hf_pump;

/* Seconds on the monotonic clock. */
double hf_pump_now(void);

/* A wait of `seconds` as poll's int milliseconds: rounded up, 0 for <= 0 or
 * NaN, capped at INT_MAX (30 days in ms does not fit an int). */
int hf_pump_timeout_ms(double seconds);

/* A poll(2) set, empty (before each round); it holds HF_PUMP_MAX_FDS slots
 * inline. Needs no hf_pump_close. */
void hf_pump_reset(hf_pump *pp);

/* A poll(2) set, empty, with `cap` slots in `slots` (the caller's memory, which
 * must outlive the set's use; NULL or cap <= HF_PUMP_MAX_FDS: the inline ones). */
void hf_pump_reset_with(hf_pump *pp, hf_pump_slot *slots, size_t cap);

/* A set that lives across rounds, on `backend` (HF_PUMP_POLL: as hf_pump_reset).
 * The epoll backend needs registration records (hf_pump_set_regs) before
 * the first add. 0, or -1 with err (the kernel refused an epoll instance, or
 * not Linux: ENOSYS). Release with hf_pump_close. */
int hf_pump_open(hf_pump *pp, hf_pump_backend backend, hf_error *err);

/* Close the epoll instance (the registration records are the caller's). */
void hf_pump_close(hf_pump *pp);

/* "epoll" or "poll". */
const char *hf_pump_backend_name(const hf_pump *pp);

/* The set's backend. */
hf_pump_backend hf_pump_backend_of(const hf_pump *pp);

/* Give an epoll set `n` registration records, one per fd number 0..n-1 (the
 * caller's memory, zeroed, or a copy of the previous records when growing).
 * An fd >= n cannot be added (hf_pump_add answers -1). */
void hf_pump_set_regs(hf_pump *pp, hf_pump_reg *regs, size_t n);

/* Records the set has (hf_pump_set_regs); 0 for poll(2). */
size_t hf_pump_regs(const hf_pump *pp);

/* Begin a round of an opened set: no slots, `cap` of them in `slots` (as
 * hf_pump_reset_with); the epoll registrations stay. */
void hf_pump_round(hf_pump *pp, hf_pump_slot *slots, size_t cap);

/* epoll_ctl calls made so far (0 for poll(2)): what a round cost the kernel. */
unsigned long hf_pump_ctl_calls(const hf_pump *pp);

/* Times the epoll set was made anew because an orphaned registration (see
 * above) reported; 0 for poll(2). */
unsigned long hf_pump_rebuilds(const hf_pump *pp);

/* Add fd wanting `events` (HF_PUMP_READ | HF_PUMP_WRITE; 0 reports only hang-up
 * and errors). Returns the slot (0, 1, ... in order of adding), or -1 when the
 * set is full (its capacity: hf_pump_reset / hf_pump_reset_with) or fd < 0. The same fd may be added twice (two slots). */
int hf_pump_add(hf_pump *pp, int fd, unsigned events);

/* hf_pump_add with the caller's key for the fd (epoll: the registration is
 * kept while fd, key and events stay the same; key 0 means "unknown": checked
 * with the kernel every round, one epoll_ctl). poll(2) ignores the key. */
int hf_pump_add_keyed(hf_pump *pp, int fd, unsigned events, unsigned long long key);

/* Slots in the set. */
size_t hf_pump_count(const hf_pump *pp);

/* Wait until a slot is ready or the absolute `deadline` (hf_pump_now time)
 * passes; deadline < 0: no deadline (the wait is capped at HF_PUMP_MAX_WAIT).
 * A deadline already past polls without waiting. Returns the number of ready
 * slots, 0 on timeout or when a signal interrupted the wait (the caller's
 * loop checks its flags and waits again), -1 with err on failure. */
int hf_pump_wait(hf_pump *pp, double deadline, hf_error *err);

/* What slot reported in the last wait (HF_PUMP_* bits, 0 when nothing or the
 * slot does not exist). */
unsigned hf_pump_ready(const hf_pump *pp, int slot);

/* Events the port needs: READ always, WRITE while the engine has output. */
unsigned hf_pump_port_events(hf_at *at);

/* Write what the engine has to send until done or the fd would block. */
int hf_pump_flush(hf_transport *tr, hf_at *at, hf_error *err);

/* Read what is waiting into the engine, at most HF_PUMP_READS_PER_STEP chunks
 * (a port that never stops talking must not keep timers, callbacks and other
 * ports waiting; the next wait reports the rest at once). A read shorter than
 * a chunk took everything there was: no further read asks again (the next
 * wait reports what arrives later), so a wake costs the wait and one read.
 * The engine's callbacks run inside. */
int hf_pump_drain(hf_transport *tr, hf_at *at, hf_error *err);

/* Handle one readiness report of the port's fd: drain on READ, check a
 * hang-up or error (a hung-up tty with bytes still waiting is drained first),
 * flush. Does not tick the engine's clock: the owner calls hf_at_tick once per
 * round, port ready or not. */
int hf_pump_port_ready(hf_transport *tr, hf_at *at, unsigned ready, hf_error *err);

#endif
