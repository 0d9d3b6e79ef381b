/*
 * io_pump.h — the I/O pump: the monotonic clock, one wait over many fds with a
 * deadline, and the byte pump between a transport and its AT engine. No Lua.
 *
 * Two parts:
 *   - the wait set (hf_pump): register fds with the events wanted
 *     (hf_pump_add), wait until one is ready or the deadline passes
 *     (hf_pump_wait), then read what each slot reported (hf_pump_ready).
 *     Callers see only these functions and the HF_PUMP_* bits; the backend is
 *     poll(2) today and can become epoll without changing them. The set holds
 *     at most HF_PUMP_MAX_FDS fds and lives in the caller's memory (no
 *     allocation);
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

#define HF_PUMP_MAX_FDS      128   /* fds in one wait */
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

typedef struct hf_pump {
    size_t n;
    struct pollfd fds[HF_PUMP_MAX_FDS];   /* the backend's; use the functions */
} hf_pump;

/* Seconds on the monotonic clock. */
double hf_pump_now(void);

/* A wait of `seconds` as poll's int milliseconds: rounded up, 0 for <= 0 or
 * NaN, capped at INT_MAX (30 days in ms does not fit an int). */
int hf_pump_timeout_ms(double seconds);

/* Empty the set (before each round). */
void hf_pump_reset(hf_pump *pp);

/* Add fd wanting `events` (HF_PUMP_READ | HF_PUMP_WRITE; 0 reports only hang-up
 * and errors). Returns the slot (0, 1, ... in order of adding), or -1 when the
 * set is full or fd < 0. The same fd may be added twice (two slots). */
int hf_pump_add(hf_pump *pp, int fd, unsigned events);

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
 * ports waiting; the next wait reports the rest at once). The engine's
 * callbacks run inside. */
int hf_pump_drain(hf_transport *tr, hf_at *at, hf_error *err);

/* Handle one readiness report of the port's fd: drain on READ, check a
 * hang-up or error (a hung-up tty with bytes still waiting is drained first),
 * flush. Does not tick the engine's clock: the owner calls hf_at_tick once per
 * round, port ready or not. */
int hf_pump_port_ready(hf_transport *tr, hf_at *at, unsigned ready, hf_error *err);

#endif
