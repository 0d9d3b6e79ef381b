/*
 * at_engine.h — the AT command engine: command queue, response routing, URCs,
 * timeouts and resynchronisation. Pure: no fd, no clock of its own.
 *
 * The owner (the Lua binding's port, or a test) does the I/O:
 *   - hf_at_output()/hf_at_wrote(): bytes to write and how many went out;
 *   - hf_at_input(): bytes read from the port;
 *   - hf_at_tick(): the clock moved (timeouts);
 *   - hf_at_deadline(): when the next timeout falls, to size poll()'s wait;
 *   - hf_at_port_lost(): the port is gone; every queued command fails.
 * Times are seconds on a monotonic clock (double).
 *
 * Routing of a received line (after the tokenizer):
 *   1. while a command is being written, or none is in flight, every line is
 *      unsolicited, except the echo of the command being written/just written;
 *   2. a final result (at_final.h) completes the command in flight;
 *   3. a line equal to the command text is its echo and is dropped (once per
 *      command; echo on or off, and even before hf_at_wrote() reported the
 *      last byte, since a module echoes without waiting for the owner);
 *   4. a line matching one of the command's expected prefixes is response
 *      (modes ALL and PREFIXES);
 *   5. else a line matching a known unsolicited prefix (built in: ^RSSI,
 *      +CREG, ... the codes of any Huawei module; or registered with
 *      hf_at_urc_prefix_add: ^FOTASTATE by the FOTA layer, a subscriber's) is
 *      unsolicited, except, in mode ALL, when its prefix names the command
 *      itself ("+CREG:" for AT+CREG?, "^FOTASTATE:" for AT^FOTASTATE?): response;
 *   6. else, in HF_AT_EXPECT_ALL mode the line is response, otherwise unsolicited.
 * Unsolicited lines go to on_urc; nothing is ever left in a buffer. A line
 * longer than HF_AT_LINE_MAX - 1 bytes (noise, a flood without line ends) is
 * dropped, counted (overflows) and reported (HF_AT_EV_OVERFLOW, its length);
 * it does not touch the command in flight, which still completes with its own
 * final result or times out (HF_AT_STATUS_OVERFLOW only means the response
 * itself exceeded HF_AT_RESP_LINES or HF_AT_RESP_BYTES).
 *
 * After a timeout the line is out of step: the module answers one command at a
 * time, in order, so the timed-out command's answer may still come. Before the
 * next command is written the engine resynchronises with a query whose answer
 * it can recognise, so completion never depends on timing. Exactly:
 *   - the timed-out command gets HF_AT_STATUS_TIMEOUT at once;
 *   - resync commands (side-effect-free, answered by every MU509/MU609 at once,
 *     SIM or not), each with its reply line:
 *         AT+CMEE?   "+CMEE: <digit>..."
 *         AT+CSQ     "+CSQ: <digit>..."
 *         AT+CSCS?   "+CSCS: \"..."
 *     (optional spaces after the colon; test-form answers such as
 *     "+CMEE: (0-2)" never match);
 *   - the first candidate, in that order, is chosen that no write still
 *     possibly unanswered can answer with that line: not one whose name
 *     ("CMEE", "CSQ", "CSCS", any case) the timed-out command's text contains,
 *     nor one already written since the line was last in step (so a retry
 *     after an unanswered resync uses another command). With
 *     HF_AT_RESYNC_CMDS >= HF_AT_MAX_TIMEOUTS (checked at compile time) every
 *     write of a round gets a fresh one. Only after a give-up (or for a
 *     command naming all three) can none be fresh: the one unanswered longest
 *     is reused, and the quiet interval below is the only guard;
 *   - it is offered by hf_at_output() (even with nothing queued); once
 *     written, the engine waits HF_AT_RESYNC_TIMEOUT for its reply;
 *   - the resync is answered when its reply line arrives after it was fully
 *     written and the next final result is OK. A reply line of an earlier,
 *     still outstanding resync write followed by OK proves that write and all
 *     before it (the timed-out command too) answered: they are forgotten, the
 *     wait goes on. Any other final (the late answer's OK or error, an error
 *     answer to the resync itself: "COMMAND NOT SUPPORT", "+CME ERROR: ...")
 *     never completes a query resync: an error final cannot say whose it is;
 *   - finals are counted: every write since the line was last in step (the
 *     timed-out command, each resync write) is owed one final. An error final
 *     with no reply line pending that settles the last one owed is the
 *     query's own: the firmware refuses it (HF_AT_EV_RESYNC_REFUSED, e.g.
 *     "AT+CMEE?: COMMAND NOT SUPPORT"); it is never used again on this port
 *     (until a port loss) and the next candidate goes out at once. An error
 *     final while an earlier final is still owed only marks the query as
 *     possibly refused: refused if its resync then times out (the count is
 *     then reset: what is unanswered counts as lost);
 *   - when no query is left to use and one was refused, the fallback is a
 *     plain "AT" (every module answers it; HF_AT_EV_RESYNC_FALLBACK once per
 *     port says why): any final after it was written that settles the last
 *     final owed answers it, then the quiet interval below decides. Weaker
 *     than a reply line (a late final can pass for AT's when a write was lost
 *     and never answered), hence used only when the firmware leaves no choice;
 *   - hf_at_require_sync() (a port just opened or reopened) starts the same
 *     resync before the first command; nothing is known to be owed then
 *     (another process's unanswered command), so its reply line and the quiet
 *     interval are the guards;
 *     Why this holds: the module answers in order, and no outstanding write
 *     can produce the current resync's reply line, so that line then OK means
 *     every earlier write was answered (or lost, and a lost one never is).
 *     Not covered: a timed-out command whose answer carries a candidate's
 *     reply line without naming it (a settings dump); the quiet interval
 *     guards that. A reply line is taken by the resync even when its prefix
 *     is registered as unsolicited;
 *   - once answered, the engine still waits HF_AT_RESYNC_QUIET, restarted by
 *     any final result, as a second guard; then the line is in step and the
 *     queue resumes;
 *   - while resynchronising, the echo of any resync command is dropped; lines
 *     with a known unsolicited prefix still go to on_urc (a registered
 *     ^FOTASTATE must not be lost); every other line, resync reply lines included, is discarded
 *     (HF_AT_EV_DISCARDED);
 *   - a resync not answered in time counts as a timeout and is retried (with
 *     another command, as above); after HF_AT_MAX_TIMEOUTS timeouts in a row
 *     (command + resyncs) the engine gives up: every queued command fails with
 *     HF_AT_STATUS_TIMEOUT, HF_AT_EV_GAVE_UP is reported, and the resync stays
 *     pending so that the next submitted command is preceded by a new resync
 *     (a new round; the writes of the old one are still treated as
 *     outstanding);
 *   - HF_AT_EV_RESYNC_START and HF_AT_EV_RESYNC_FAILED carry the resync
 *     command ("AT+CMEE?", or "AT" for the fallback).
 * Consecutive timeouts are counted (reset by any final result).
 *
 * Callbacks may call hf_at_submit, hf_at_cancel_queued, hf_at_port_lost and
 * hf_at_urc_prefix_add/remove. They must not call hf_at_input, hf_at_wrote or
 * hf_at_tick (those are the owner's I/O loop; a nested hf_at_input is ignored).
 *
 * Memory: everything lives inside struct hf_at (fixed capacity); no allocation.
 */
#ifndef HF_AT_ENGINE_H
#define HF_AT_ENGINE_H

#include <stddef.h>

#include "at_final.h"
#include "at_tokenizer.h"
#include "hf_error.h"

#define HF_AT_CMD_MAX        512    /* bytes of one command, without the CR */
#define HF_AT_QUEUE_MAX      8      /* commands queued, including the one in flight */
#define HF_AT_QUEUE_TEXT     (2 * (HF_AT_CMD_MAX + 2 + HF_AT_PREFIX_MAX * HF_AT_PREFIX_LEN))
                                    /* bytes of command text and expected prefixes the queue
                                       holds (a command costs its length + 2, a prefix its
                                       length + 1): two of the longest with four of the
                                       longest prefixes each (1,220 bytes), or eight of
                                       about 150 */
#define HF_AT_PREFIX_MAX     4      /* expected prefixes per command */
#define HF_AT_PREFIX_LEN     24
#define HF_AT_RESP_BYTES     (2 * (HF_AT_LINE_MAX + 2))  /* response arena of one command
                                       (4,116 bytes): each line costs its bytes + 3 (a 2-byte
                                       length, a NUL); holds two lines of the longest length */
#define HF_AT_RESP_LINES     64
#define HF_AT_URC_PREFIXES   32     /* extra unsolicited prefixes registered at run time */
#define HF_AT_URC_PREFIX_LEN 64     /* bytes of one, with its NUL */
#define HF_AT_URC_TEXT       512    /* bytes of them all, each with its NUL, packed */
#define HF_AT_RESYNC_QUIET   0.3    /* seconds without a final after the resync's answer */
#define HF_AT_RESYNC_TIMEOUT 3.0    /* seconds to wait for the resync's answer */
#define HF_AT_RESYNC_CMDS    3      /* resync commands to choose from (AT+CMEE?, AT+CSQ, AT+CSCS?) */
#define HF_AT_MAX_TIMEOUTS   3      /* timeouts in a row before the queue is failed */
#define HF_AT_DEFAULT_TIMEOUT 30.0  /* seconds, when hf_at_submit is given <= 0 */

typedef enum {
    HF_AT_EXPECT_ALL = 0,     /* every non-URC line before the final is response (AT+GMR) */
    HF_AT_EXPECT_NONE,        /* no intermediate lines expected (AT^FOTADET) */
    HF_AT_EXPECT_PREFIXES,    /* only lines starting with one of the listed prefixes */
} hf_at_expect;

typedef enum {
    HF_AT_STATUS_DONE = 0,    /* a final result arrived (OK or an error final) */
    HF_AT_STATUS_TIMEOUT,     /* deadline passed; engine resynchronises */
    HF_AT_STATUS_PORTLOST,    /* hf_at_port_lost() while queued or in flight */
    HF_AT_STATUS_OVERFLOW,    /* final arrived but response exceeded HF_AT_RESP_* (lines kept so far delivered);
                                 an over-long line alone never causes it */
    HF_AT_STATUS_CANCELLED,   /* hf_at_cancel_queued() */
} hf_at_status;

typedef struct hf_at_result {
    unsigned long id;             /* as returned by hf_at_submit */
    hf_at_status status;
    hf_final final;               /* kind HF_FINAL_NONE unless a final arrived */
    const char *final_line;       /* raw final line, NUL-terminated ("" if none) */
    const char *command;          /* the command text */
    size_t nlines;
    const char *lines[HF_AT_RESP_LINES];   /* NUL-terminated, valid during the callback only */
    size_t line_lens[HF_AT_RESP_LINES];
    double elapsed;               /* seconds from last byte written to completion (0 if never written) */
} hf_at_result;

typedef enum {
    HF_AT_EV_OVERFLOW = 1,    /* an over-long line was dropped (detail: its length) */
    HF_AT_EV_TIMEOUT,         /* a command timed out (detail: the command) */
    HF_AT_EV_RESYNC_START,    /* a resync command is about to be written (detail: it) */
    HF_AT_EV_RESYNC_DONE,     /* line back in step (detail: lines discarded) */
    HF_AT_EV_RESYNC_FAILED,   /* resync unanswered in time (detail: it); counts as a timeout */
    HF_AT_EV_DISCARDED,       /* a line discarded while resynchronising (detail: the line) */
    HF_AT_EV_GAVE_UP,         /* HF_AT_MAX_TIMEOUTS in a row: queue failed (detail: count) */
    HF_AT_EV_RESYNC_REFUSED,  /* a resync query got an error final ("AT+CMEE?: COMMAND NOT SUPPORT") */
    HF_AT_EV_RESYNC_FALLBACK, /* no query left: resync with AT + quiet (detail: why), once per port */
} hf_at_event;

typedef struct hf_at_callbacks {
    /* A command finished (any status). Called exactly once per submitted command. */
    void (*on_result)(void *ud, const hf_at_result *res);
    /* An unsolicited line (every line that is not echo, response or final): len
     * bytes, not NUL-terminated (often passed in place from hf_at_input's bytes). */
    void (*on_urc)(void *ud, const char *line, size_t len);
    /* Diagnostics; may be NULL. detail: len bytes, not NUL-terminated. */
    void (*on_event)(void *ud, hf_at_event ev, const char *detail, size_t len);
} hf_at_callbacks;

typedef struct hf_at_cmd {
    unsigned long id;
    size_t text;                          /* offset in hf_at.qtext of command + "\r" + NUL,
                                             then each expected prefix + NUL */
    size_t len;                           /* bytes of the command including the "\r" */
    size_t size;                          /* bytes it takes in hf_at.qtext, prefixes too */
    hf_at_expect expect;
    unsigned char prefix_lens[HF_AT_PREFIX_MAX];  /* strlen of each, taken once at submit */
    size_t nprefixes;
    double timeout;
} hf_at_cmd;

typedef struct hf_at {
    hf_at_callbacks cb;
    void *ud;
    hf_tok tok;
    hf_at_cmd queue[HF_AT_QUEUE_MAX];     /* ring: queue[head] is in flight or next */
    size_t head, count;
    char qtext[HF_AT_QUEUE_TEXT];         /* the queued commands' texts, packed (a text
                                             leaving closes its gap) */
    size_t qtext_used;
    size_t written;                       /* bytes of queue[head] written so far */
    int in_flight;                        /* queue[head] fully written, awaiting its final */
    double deadline;                      /* absolute, valid while in_flight or resyncing */
    double sent_at;
    unsigned long next_id;
    /* response collection for the command in flight: one arena, each line
     * stored as its length (2 bytes, host order), its bytes and a NUL */
    char resp[HF_AT_RESP_BYTES];
    size_t resp_used;
    size_t resp_nlines;
    int resp_overflow;
    /* resynchronisation */
    int resync_needed;                    /* resync before the next command */
    int resync_state;                     /* 0 none, 1 writing, 2 awaiting reply, 3 quiet */
    size_t resync_written;                /* bytes of the current resync command written */
    unsigned char resync_sent[HF_AT_RESYNC_CMDS + 1]; /* resync commands (queries and the
                                             fallback AT) written and not known answered,
                                             oldest first; the last is current */
    unsigned resync_refused;              /* mask: queries this firmware refused */
    unsigned finals_owed;                 /* writes since the line was in step whose final
                                             has not come yet (unknown ones at open: 0) */
    int resync_maybe_refused;             /* an error final came while an earlier one was owed */
    int resync_fell_back;                 /* HF_AT_EV_RESYNC_FALLBACK reported */
    size_t resync_nsent;
    unsigned resync_named;                /* mask: resync replies the timed-out command may give */
    size_t resync_reply;                  /* 1 + position in resync_sent whose reply line just
                                             arrived (the next final decides), 0 none */
    unsigned long resync_discarded;
    /* counters */
    unsigned consecutive_timeouts;
    unsigned long timeouts, overflows, urcs, echoes;
    /* extra unsolicited prefixes */
    char urc_text[HF_AT_URC_TEXT];        /* the prefixes, each with its NUL, packed (a
                                             removed one closes its gap) */
    size_t urc_text_used;
    unsigned short urc_prefix_offs[HF_AT_URC_PREFIXES]; /* offset of each in urc_text */
    unsigned char urc_prefix_lens[HF_AT_URC_PREFIXES];  /* strlen of each, taken once at add */
    unsigned urc_refs[HF_AT_URC_PREFIXES];   /* registrations of each (ref count) */
    size_t n_urc_prefixes;
    unsigned char urc_pairs[32];          /* filter: a bit per hash of the first two bytes of
                                             each unsolicited prefix (built in and registered) */
    int urc_pairs_off;                    /* a 1-byte prefix is registered: no filtering */
    int in_input;                         /* inside hf_at_input: nested calls are ignored */
    int input_aborted;                    /* port lost during hf_at_input: drop the rest */
    int echo_seen;                        /* echo of queue[head] already dropped */
    unsigned round_timeouts;              /* timeouts in a row in this resync round */
    double now;                           /* last time given by the owner */
} hf_at;

void hf_at_init(hf_at *at, const hf_at_callbacks *cb, void *ud);

/* Queue a command (text without CR). Refuses (returns -1, err) commands that are
 * empty, longer than HF_AT_CMD_MAX, contain CR, LF or NUL ("EINVAL"), too many or
 * too long prefixes ("EINVAL"), or a full queue ("EAGAIN"). timeout <= 0 means 30 s.
 * On success stores the id in *id and returns 0. Safe to call from callbacks. */
int hf_at_submit(hf_at *at, const char *cmd, size_t len, hf_at_expect expect,
                 const char *const *prefixes, size_t nprefixes, double timeout,
                 unsigned long *id, hf_error *err);

/* Bytes that should be written now (NULL/0 when none). */
size_t hf_at_output(hf_at *at, const char **data);

/* n bytes of the output were written at time now. n counts from the data the
 * last hf_at_output() returned; ask hf_at_output() again after any other engine
 * call (a timeout or port loss can change what is due). */
void hf_at_wrote(hf_at *at, size_t n, double now);

/* Bytes received at time now. */
void hf_at_input(hf_at *at, const char *data, size_t n, double now);

/* The clock moved: fire timeouts whose deadline <= now. */
void hf_at_tick(hf_at *at, double now);

/* Next absolute deadline, or a negative value when nothing is timed. */
double hf_at_deadline(const hf_at *at);

/* The port is gone: fail every queued command with HF_AT_STATUS_PORTLOST, forget
 * partial lines and resync state (the next port starts clean). */
void hf_at_port_lost(hf_at *at);

/* Fail every queued (not yet written) command with HF_AT_STATUS_CANCELLED. */
void hf_at_cancel_queued(hf_at *at);

/* Register/remove an extra unsolicited prefix (e.g. "^FOTASTATE:", registered by the
 * FOTA layer; "+CUSD:" by a subscriber). Registrations are counted: a prefix stays
 * unsolicited until each add has had its remove, so two subscribers to one prefix do
 * not undo each other. add returns 0, or -1 when the table is full (HF_AT_URC_PREFIXES
 * prefixes, or HF_AT_URC_TEXT bytes with their NULs) or the prefix
 * empty or HF_AT_URC_PREFIX_LEN bytes or longer; remove returns 0, or -1 when the
 * prefix is not registered. */
int hf_at_urc_prefix_add(hf_at *at, const char *prefix);
int hf_at_urc_prefix_remove(hf_at *at, const char *prefix);

/* The line's state is unknown (a port just opened or reopened: a previous
 * process may have left a command unanswered, its answer still to come):
 * resynchronise, exactly as after a timeout, before the first command is
 * written. Call right after hf_at_init or a reopen. */
void hf_at_require_sync(hf_at *at);

/* Is the engine idle (nothing queued, not resynchronising)? */
int hf_at_idle(const hf_at *at);

/* Stable names for the binding: "TIMEOUT", "RESYNC_START", ... / "DONE",
 * "TIMEOUT", "PORTLOST", "OVERFLOW", "CANCELLED"; "UNKNOWN" otherwise. */
const char *hf_at_event_name(hf_at_event ev);
const char *hf_at_status_name(hf_at_status st);

#endif
