/*
 * at_engine.c — the AT command engine: one command in flight, response routing
 * (finals, echo, expected prefixes, URCs), timeouts and resynchronisation
 * (see at_engine.h for the contract). No I/O, no clock, no allocation.
 */
#include "at_engine.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { RS_NONE = 0, RS_WRITING = 1, RS_AWAIT_REPLY = 2, RS_QUIET = 3 };

/* Resync commands: side-effect-free queries every Huawei MU509/MU609 answers
 * at once, with or without SIM or network, each with an information line no
 * other candidate produces. `name` is what a command must contain to be able
 * to answer with that line (case-insensitive); `shape` is the first byte the
 * reply carries after the prefix and its spaces ("+CMEE: 2", "+CSQ: 17,99",
 * "+CSCS: \"IRA\""), so the test forms ("+CMEE: (0-2)") never match. */
static const struct {
    const char *text;     /* with the CR */
    const char *name;
    const char *prefix;
    char shape;           /* 'd' a digit, '"' a quote */
} resync_cmds[] = {
    {"AT+CMEE?\r", "CMEE", "+CMEE:", 'd'},
    {"AT+CSQ\r", "CSQ", "+CSQ:", 'd'},
    {"AT+CSCS?\r", "CSCS", "+CSCS:", '"'},
    /* The fallback, after the queries were refused ("COMMAND NOT SUPPORT",
     * "ERROR"): every module answers AT. It has no reply line, so any final
     * after it was written, then the quiet interval, proves the line in step. */
    {"AT\r", NULL, NULL, 0},
};
#define N_RESYNC_CMDS (sizeof resync_cmds / sizeof resync_cmds[0] - 1)
#define RESYNC_FALLBACK N_RESYNC_CMDS

/* One round writes at most HF_AT_MAX_TIMEOUTS - 1 resync commands after the
 * timed-out one; with one candidate ruled out by its text there must still be
 * a fresh one for each. */
_Static_assert(HF_AT_RESYNC_CMDS + 1 == sizeof resync_cmds / sizeof resync_cmds[0],
               "HF_AT_RESYNC_CMDS matches the table (plus the fallback)");
_Static_assert(HF_AT_RESYNC_CMDS >= HF_AT_MAX_TIMEOUTS,
               "a fresh resync reply for every write of a round");
_Static_assert(HF_AT_RESYNC_CMDS <= 8 * sizeof(unsigned), "candidate masks fit");
_Static_assert(HF_AT_LINE_MAX <= 65536, "a response line's length fits the arena's 2 bytes");
_Static_assert(HF_AT_PREFIX_LEN <= 256, "an expected prefix's length fits its byte");
_Static_assert(HF_AT_URC_TEXT <= 65536 && HF_AT_URC_PREFIX_LEN <= 256,
               "unsolicited prefixes' offsets and lengths fit their fields");


/* Lines any Huawei module sends on its own (radio, SIM, boot, calls, SMS).
 * Matched after the command's own expected prefixes, so AT+CREG? with prefix
 * "+CREG:" still gets its answer. Feature-specific codes (FOTA's ^FOTASTATE:)
 * are not here: the layer that knows them registers them
 * (hf_at_urc_prefix_add), and a subscription does too. */
static const struct {
    const char *text;
    size_t len;            /* taken at compile time: no strlen per line */
} builtin_urcs[] = {
#define URC(t) {t, sizeof t - 1}
    URC("^RSSI:"), URC("^HCSQ:"), URC("^MODE:"), URC("^SRVST:"), URC("^SIMST:"), URC("^BOOT"),
    URC("^DSFLOWRPT:"), URC("^NDISSTAT:"), URC("^STIN:"), URC("^CEND:"), URC("^ORIG:"),
    URC("^CONF:"), URC("^CONN:"), URC("+CMTI:"), URC("+CREG:"),
#undef URC
};
#define N_BUILTIN_URCS (sizeof builtin_urcs / sizeof builtin_urcs[0])

/* ---- small helpers ------------------------------------------------------ */

static void emit(hf_at *at, hf_at_event ev, const char *detail, size_t len)
{
    if (at->cb.on_event)
        at->cb.on_event(at->ud, ev, detail, len);
}

static void emit_num(hf_at *at, hf_at_event ev, unsigned long n)
{
    char buf[32];
    int k = snprintf(buf, sizeof buf, "%lu", n);
    if (k < 0)
        k = 0;
    if ((size_t)k >= sizeof buf)
        k = (int)sizeof buf - 1;
    emit(at, ev, buf, (size_t)k);
}

static int starts_with(const char *line, size_t len, const char *prefix)
{
    size_t pl = strlen(prefix);
    return pl <= len && memcmp(line, prefix, pl) == 0;
}

/* starts_with for a prefix of known length: compared in place, byte by byte.
 * Prefixes are short (<= 63 bytes) and most lines differ in their first bytes,
 * where this loop stops; a memcmp call costs more than that. */
static int starts_with_n(const char *line, size_t len, const char *prefix, size_t pl)
{
    if (pl > len)
        return 0;
    for (size_t i = 0; i < pl; i++)
        if (line[i] != prefix[i])
            return 0;
    return 1;
}

/* The URC filter: most lines (responses, finals) share their first two bytes
 * with no unsolicited prefix, and are told so by one bit instead of a compare
 * per prefix. A set bit only means "maybe": the prefixes are compared then. */
static unsigned pair_hash(const char *s)
{
    return ((unsigned char)s[0] * 7u + (unsigned char)s[1]) & 0xffu;
}

static void pairs_add(hf_at *at, const char *prefix, size_t len)
{
    if (len < 2) {
        at->urc_pairs_off = 1;
        return;
    }
    unsigned h = pair_hash(prefix);
    at->urc_pairs[h >> 3] |= (unsigned char)(1u << (h & 7));
}

/* From scratch: after a removal (a bit may be shared by several prefixes). */
static void pairs_rebuild(hf_at *at)
{
    memset(at->urc_pairs, 0, sizeof at->urc_pairs);
    at->urc_pairs_off = 0;
    for (size_t i = 0; i < N_BUILTIN_URCS; i++)
        pairs_add(at, builtin_urcs[i].text, builtin_urcs[i].len);
    for (size_t i = 0; i < at->n_urc_prefixes; i++)
        pairs_add(at, at->urc_text + at->urc_prefix_offs[i], at->urc_prefix_lens[i]);
}

static int is_known_urc(const hf_at *at, const char *line, size_t len)
{
    if (!at->urc_pairs_off) {
        if (len < 2)
            return 0;   /* every prefix has 2 bytes or more */
        unsigned h = pair_hash(line);
        if (!(at->urc_pairs[h >> 3] & (1u << (h & 7))))
            return 0;
    }
    if (len >= 2) {   /* every built-in prefix is longer: its second byte rejects most */
        char c0 = line[0], c1 = line[1];
        for (size_t i = 0; i < N_BUILTIN_URCS; i++) {
            const char *t = builtin_urcs[i].text;
            if (t[1] == c1 && t[0] == c0 && starts_with_n(line, len, t, builtin_urcs[i].len))
                return 1;
        }
    }
    for (size_t i = 0; i < at->n_urc_prefixes; i++)
        if (starts_with_n(line, len, at->urc_text + at->urc_prefix_offs[i],
                          at->urc_prefix_lens[i]))
            return 1;
    return 0;
}

static void deliver_urc(hf_at *at, const char *line, size_t len)
{
    at->urcs++;
    if (at->cb.on_urc)
        at->cb.on_urc(at->ud, line, len);
}

static hf_at_cmd *head_cmd(hf_at *at)
{
    return at->count ? &at->queue[at->head] : NULL;
}

/* A queued command's text: command + CR + NUL, in the queue's text arena. */
static const char *cmd_text(const hf_at *at, const hf_at_cmd *c)
{
    return at->qtext + c->text;
}

/* Close the gap of n bytes at off in a packed arena of *used bytes (the
 * caller moves the offsets behind it). */
static void arena_cut(char *buf, size_t *used, size_t off, size_t n)
{
    memmove(buf + off, buf + off + n, *used - off - n);
    *used -= n;
}

/* A command left the queue: close the gap its text and prefixes (n bytes)
 * leave in the arena, and move the offsets of the texts
 * behind it. Once per command, over at most HF_AT_QUEUE_TEXT bytes (nothing
 * when it was the last text, as a lone command in flight is). */
static void drop_text(hf_at *at, size_t off, size_t n)
{
    if (at->count == 0) {   /* it was the last one (as a lone command in flight is) */
        at->qtext_used = 0;
        return;
    }
    arena_cut(at->qtext, &at->qtext_used, off, n);
    for (size_t i = 0, k = at->head; i < at->count; i++, k = (k + 1) % HF_AT_QUEUE_MAX)
        if (at->queue[k].text > off)
            at->queue[k].text -= n;
}

/* The command in flight; only valid while at->in_flight (which implies count > 0). */
static hf_at_cmd *flight_cmd(hf_at *at)
{
    return &at->queue[at->head];
}

static void reset_resp(hf_at *at)
{
    at->resp_used = 0;
    at->resp_nlines = 0;
    at->resp_overflow = 0;
}

/* ---- completion --------------------------------------------------------- */

/* Take queue[head] out of the queue, then tell its owner how it ended. The
 * command is copied first so that a callback may submit into the freed slot,
 * and so that nested completions (port lost from a callback) each keep their
 * own text. */
static void finish_head(hf_at *at, hf_at_status st, const hf_final *fin, const char *final_line)
{
    /* Only what the result needs is copied (the text's own bytes, not the
     * whole slot), and the result's line arrays are filled up to nlines, not
     * cleared whole: this runs once per command, on the parse path. */
    const hf_at_cmd *head = &at->queue[at->head];
    char text[HF_AT_CMD_MAX + 2];
    memcpy(text, cmd_text(at, head), head->len - 1);
    text[head->len - 1] = '\0';   /* drop the CR: the command as submitted */
    size_t text_off = head->text, text_size = head->size;
    int was_sent = at->in_flight;

    hf_at_result res;
    res.id = head->id;
    res.status = st;
    if (fin) {
        res.final = *fin;
    } else {
        res.final.kind = HF_FINAL_NONE;
        res.final.code = -1;
        res.final.text = "";
        res.final.text_len = 0;
    }
    res.final_line = final_line ? final_line : "";
    res.command = text;
    res.nlines = 0;
    res.elapsed = was_sent ? at->now - at->sent_at : 0.0;
    if (was_sent) {
        /* Lines stay in at->resp; nothing can append to it before we return
         * because hf_at_input may not be called from callbacks. */
        res.nlines = at->resp_nlines;
        const char *p = at->resp;
        for (size_t i = 0; i < res.nlines; i++) {
            uint16_t n;
            memcpy(&n, p, sizeof n);
            res.lines[i] = p + sizeof n;
            res.line_lens[i] = n;
            p += sizeof n + n + 1;
        }
    }

    at->head = (at->head + 1) % HF_AT_QUEUE_MAX;
    at->count--;
    drop_text(at, text_off, text_size);
    at->written = 0;
    at->in_flight = 0;
    at->echo_seen = 0;
    reset_resp(at);

    if (at->cb.on_result)
        at->cb.on_result(at->ud, &res);
}

/* Fail the first n queued commands (a snapshot: commands submitted by the
 * callbacks themselves stay queued, so a retrying callback cannot loop). */
static void fail_queued(hf_at *at, size_t n, hf_at_status st)
{
    while (n-- && at->count)
        finish_head(at, st, NULL, "");
}

/* ---- resynchronisation -------------------------------------------------- */

static int ascii_upper(int ch)
{
    return ch >= 'a' && ch <= 'z' ? ch - 'a' + 'A' : ch;
}

/* Does text (len bytes) contain name (upper case), ignoring case? */
static int names(const char *text, size_t len, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i + nl <= len; i++) {
        size_t j = 0;
        while (j < nl && ascii_upper((unsigned char)text[i + j]) == name[j])
            j++;
        if (j == nl)
            return 1;
    }
    return 0;
}

/* The resync commands whose reply line the timed-out command might produce. */
static unsigned candidates_named_by(const hf_at *at, const hf_at_cmd *c)
{
    unsigned mask = 0;
    for (size_t i = 0; i < N_RESYNC_CMDS; i++)
        if (names(cmd_text(at, c), c->len - 1, resync_cmds[i].name))
            mask |= 1u << i;
    return mask;
}

/* Is the line the information line of resync command i ("+CMEE: 2")? */
static int is_resync_reply(size_t i, const char *line, size_t len)
{
    if (i >= N_RESYNC_CMDS)
        return 0;   /* the fallback AT has no reply line */
    if (!starts_with(line, len, resync_cmds[i].prefix))
        return 0;
    size_t k = strlen(resync_cmds[i].prefix);
    while (k < len && line[k] == ' ')
        k++;
    if (k >= len)
        return 0;
    if (resync_cmds[i].shape == 'd')
        return line[k] >= '0' && line[k] <= '9';
    return line[k] == resync_cmds[i].shape;
}

static int is_resync_echo(const char *line, size_t len)
{
    for (size_t i = 0; i <= RESYNC_FALLBACK; i++)
        if (len == strlen(resync_cmds[i].text) - 1 && memcmp(line, resync_cmds[i].text, len) == 0)
            return 1;
    return 0;
}

/* The resync command in progress (written last). */
static size_t current_resync(const hf_at *at)
{
    return at->resync_sent[at->resync_nsent - 1];
}

static void emit_resync(hf_at *at, hf_at_event ev)
{
    const char *t = resync_cmds[current_resync(at)].text;
    emit(at, ev, t, strlen(t) - 1);
}

/* Choose the next resync command: one whose reply line no write still
 * possibly unanswered can produce (the timed-out command, by its text, and the
 * resync commands already written since the line was last in step). Append it
 * to resync_sent (oldest first). */
/* Move resync command c to the end of resync_sent (written again now). */
static void resend_resync(hf_at *at, size_t c)
{
    for (size_t i = 0; i < at->resync_nsent; i++) {
        if (at->resync_sent[i] == c) {
            memmove(at->resync_sent + i, at->resync_sent + i + 1, at->resync_nsent - i - 1);
            at->resync_nsent--;
            break;
        }
    }
    at->resync_sent[at->resync_nsent++] = (unsigned char)c;
}

static void choose_resync(hf_at *at)
{
    unsigned busy = at->resync_named | at->resync_refused;
    for (size_t i = 0; i < at->resync_nsent; i++)
        busy |= 1u << at->resync_sent[i];
    for (size_t i = 0; i < N_RESYNC_CMDS; i++) {
        if (!(busy & (1u << i))) {
            at->resync_sent[at->resync_nsent++] = (unsigned char)i;
            return;
        }
    }
    if (at->resync_refused) {
        /* No query left that this firmware answers: plain AT, any final,
         * then the quiet interval (see at_engine.h). Said once per port. */
        if (!at->resync_fell_back) {
            at->resync_fell_back = 1;
            char msg[160];
            int k = snprintf(msg, sizeof msg, "resync queries refused by the module:%s%s%s; "
                             "falling back to AT and %.1f s of quiet",
                             at->resync_refused & 1u ? " AT+CMEE?" : "",
                             at->resync_refused & 2u ? " AT+CSQ" : "",
                             at->resync_refused & 4u ? " AT+CSCS?" : "", HF_AT_RESYNC_QUIET);
            emit(at, HF_AT_EV_RESYNC_FALLBACK, msg,
                 k < 0 ? 0 : (size_t)k < sizeof msg ? (size_t)k : sizeof msg - 1);
        }
        resend_resync(at, RESYNC_FALLBACK);
        return;
    }
    /* None is fresh (only after a give-up, or a command naming every
     * candidate): reuse the one unanswered longest; the quiet interval is then
     * the only guard. */
    resend_resync(at, at->resync_nsent ? at->resync_sent[0] : 0);
}

static void begin_resync_write(hf_at *at)
{
    choose_resync(at);
    at->resync_state = RS_WRITING;
    at->resync_written = 0;
    at->resync_reply = 0;
    at->resync_maybe_refused = 0;
    emit_resync(at, HF_AT_EV_RESYNC_START);
}

/* A resync is pending and the next command has not started: resync first. */
static void maybe_start_resync(hf_at *at)
{
    if (at->resync_needed && at->resync_state == RS_NONE && at->count && !at->in_flight &&
        at->written == 0) {
        at->resync_discarded = 0;
        begin_resync_write(at);
    }
}

/* In step again (or a new port): nothing is outstanding any more. */
static void forget_resync(hf_at *at)
{
    at->resync_state = RS_NONE;
    at->resync_needed = 0;
    at->resync_written = 0;
    at->resync_nsent = 0;
    at->resync_named = 0;
    at->resync_reply = 0;
    at->round_timeouts = 0;
    at->finals_owed = 0;
    at->resync_maybe_refused = 0;
}

/* The module answered the current resync query with an error final and no
 * reply line, the last final owed (see at_engine.h): it does not know the
 * command. Marked, so that no later resync on this port uses it; the write
 * stays outstanding (should the error have been an earlier write's after all,
 * its reply line still completes it, and clears the mark). */
static void mark_refused(hf_at *at, const char *line, size_t len)
{
    size_t c = current_resync(at);
    at->resync_refused |= 1u << c;
    char msg[96];
    int k = snprintf(msg, sizeof msg, "%.*s: %.*s", (int)(strlen(resync_cmds[c].text) - 1),
                     resync_cmds[c].text, (int)(len > 60 ? 60 : len), line);
    emit(at, HF_AT_EV_RESYNC_REFUSED, msg,
         k < 0 ? 0 : (size_t)k < sizeof msg ? (size_t)k : sizeof msg - 1);
}

/* HF_AT_MAX_TIMEOUTS in a row: the module is gone or rebooting. Fail what is
 * queued, keep the resync pending for whatever is submitted next. What was
 * written stays outstanding: the next round chooses around it. */
static void give_up(hf_at *at)
{
    unsigned n = at->round_timeouts;
    at->round_timeouts = 0;
    at->resync_state = RS_NONE;
    at->resync_needed = 1;
    emit_num(at, HF_AT_EV_GAVE_UP, n);
    fail_queued(at, at->count, HF_AT_STATUS_TIMEOUT);
    maybe_start_resync(at);
}

static void count_timeout(hf_at *at)
{
    at->timeouts++;
    at->consecutive_timeouts++;
    at->round_timeouts++;
}

static void command_timed_out(hf_at *at)
{
    hf_at_cmd *c = flight_cmd(at);
    count_timeout(at);
    emit(at, HF_AT_EV_TIMEOUT, cmd_text(at, c), c->len - 1);
    at->resync_needed = 1;
    at->resync_discarded = 0;
    at->resync_named |= candidates_named_by(at, c);
    at->finals_owed++;   /* its final may still come */
    if (at->round_timeouts >= HF_AT_MAX_TIMEOUTS) {
        give_up(at);   /* fails this command first, then the rest of the queue */
        return;
    }
    begin_resync_write(at);   /* before the callback: a submit sees the resync */
    finish_head(at, HF_AT_STATUS_TIMEOUT, NULL, "");
}

static void resync_timed_out(hf_at *at)
{
    count_timeout(at);
    emit_resync(at, HF_AT_EV_RESYNC_FAILED);
    if (at->resync_maybe_refused && current_resync(at) != RESYNC_FALLBACK)
        mark_refused(at, "an error final", 14);   /* not provably its own: a write was lost */
    at->finals_owed = 0;   /* what is still unanswered is taken as lost; the quiet guards */
    if (at->round_timeouts >= HF_AT_MAX_TIMEOUTS)
        give_up(at);
    else
        begin_resync_write(at);
}

static void resync_done(hf_at *at)
{
    forget_resync(at);
    emit_num(at, HF_AT_EV_RESYNC_DONE, at->resync_discarded);
}

static void discard(hf_at *at, const char *line, size_t len)
{
    at->resync_discarded++;
    emit(at, HF_AT_EV_DISCARDED, line, len);
}

/* Which outstanding resync write (position in resync_sent) has the line as
 * its reply line? The current one only once fully written. -1: none. */
static int outstanding_reply(const hf_at *at, const char *line, size_t len)
{
    size_t n = at->resync_nsent;
    if (at->resync_state == RS_QUIET)
        return -1;
    if (at->resync_state != RS_AWAIT_REPLY)
        n--;   /* RS_WRITING: the module cannot have answered it yet */
    for (size_t i = 0; i < n; i++)
        if (is_resync_reply(at->resync_sent[i], line, len))
            return (int)i;
    return -1;
}

/* The reply line of resync write `pos`, then OK. The module answers in order,
 * so every write before it (the timed-out command too) is answered or lost. */
static void resync_answered(hf_at *at, size_t pos)
{
    at->resync_refused &= ~(1u << at->resync_sent[pos]);   /* it does answer */
    if (pos + 1 == at->resync_nsent) {
        /* Ours: in step. The quiet interval is a second guard only. */
        at->resync_state = RS_QUIET;
        at->deadline = at->now + HF_AT_RESYNC_QUIET;
        return;
    }
    /* An earlier resync's late reply: it and all before it are done. */
    memmove(at->resync_sent, at->resync_sent + pos + 1, at->resync_nsent - pos - 1);
    at->resync_nsent -= pos + 1;
    at->resync_named = 0;
    at->finals_owed = (unsigned)at->resync_nsent - (at->resync_state == RS_WRITING ? 1u : 0u);
}

/* While resynchronising nothing is response: a resync reply line followed by
 * OK drives the resync, known URCs are still delivered, everything else (late
 * answers, error finals) is discarded. */
/* Out of line (cold: only after a timeout or an open): on_line's common path
 * stays small. */
__attribute__((noinline, cold)) static void route_resync(hf_at *at, const char *line, size_t len)
{
    hf_final_kind k = hf_final_parse(line, len, NULL);
    if (k != HF_FINAL_NONE) {
        size_t reply = at->resync_reply;
        at->resync_reply = 0;
        at->consecutive_timeouts = 0;
        if (at->finals_owed)
            at->finals_owed--;
        discard(at, line, len);
        if (at->resync_state == RS_QUIET) {
            at->deadline = at->now + HF_AT_RESYNC_QUIET;   /* a final after ours: wait on */
        } else if (reply && k == HF_FINAL_OK) {
            resync_answered(at, reply - 1);
        } else if (at->resync_state == RS_AWAIT_REPLY &&
                   current_resync(at) == RESYNC_FALLBACK) {
            /* any final after AT was written, once no earlier write is owed
             * one (the module answers in order); then the quiet interval */
            if (!at->finals_owed) {
                at->resync_state = RS_QUIET;
                at->deadline = at->now + HF_AT_RESYNC_QUIET;
            }
        } else if (at->resync_state == RS_AWAIT_REPLY && k != HF_FINAL_OK && !reply) {
            if (at->finals_owed) {
                at->resync_maybe_refused = 1;   /* maybe an earlier write's: wait on */
            } else {
                mark_refused(at, line, len);   /* the last final owed: the query's own */
                begin_resync_write(at);        /* the next one at once, no timeout */
            }
        }
        return;
    }
    if (is_resync_echo(line, len)) {
        at->echoes++;
        return;
    }
    int pos = outstanding_reply(at, line, len);
    if (pos >= 0) {
        at->resync_reply = (size_t)pos + 1;   /* the next final decides */
        discard(at, line, len);
        return;
    }
    if (is_known_urc(at, line, len)) {
        deliver_urc(at, line, len);
        return;
    }
    discard(at, line, len);
}

/* ---- normal routing ----------------------------------------------------- */

/* "AT+CREG?" names "+CREG"; a line "+CREG: 0,1" answers it. */
static int line_names_command(const hf_at *at, const hf_at_cmd *c, const char *line,
                              size_t len)
{
    size_t tl = c->len - 1;
    const char *t = cmd_text(at, c);
    if (tl < 3 || (t[0] != 'A' && t[0] != 'a') || (t[1] != 'T' && t[1] != 't'))
        return 0;
    const char *name = t + 2;
    size_t nl = 0;
    while (2 + nl < tl && name[nl] != '=' && name[nl] != '?')
        nl++;
    return nl > 0 && len > nl && line[nl] == ':' && memcmp(line, name, nl) == 0;
}

static int is_response(const hf_at *at, const hf_at_cmd *c, const char *line, size_t len)
{
    if (c->expect == HF_AT_EXPECT_NONE)
        return 0;
    const char *p = cmd_text(at, c) + c->len + 1;   /* the prefixes follow the text */
    for (size_t i = 0; i < c->nprefixes; p += c->prefix_lens[i] + 1u, i++)
        if (starts_with_n(line, len, p, c->prefix_lens[i]))
            return 1;
    if (c->expect == HF_AT_EXPECT_PREFIXES)
        return 0;
    if (is_known_urc(at, line, len))
        return line_names_command(at, c, line, len);
    return 1;
}

/* Append a line to the response arena: its length (2 bytes: lines are shorter
 * than HF_AT_LINE_MAX), its bytes, a NUL. */
static void store_resp(hf_at *at, const char *line, size_t len)
{
    uint16_t n = (uint16_t)len;
    if (at->resp_nlines >= HF_AT_RESP_LINES ||
        sizeof n + len + 1 > HF_AT_RESP_BYTES - at->resp_used) {
        at->resp_overflow = 1;
        return;
    }
    char *p = at->resp + at->resp_used;
    memcpy(p, &n, sizeof n);
    memcpy(p + sizeof n, line, len);
    p[sizeof n + len] = '\0';
    at->resp_nlines++;
    at->resp_used += sizeof n + len + 1;
}

static int is_echo(hf_at *at, const char *line, size_t len)
{
    const hf_at_cmd *c = head_cmd(at);
    if (!c || at->echo_seen || (!at->in_flight && at->written == 0))
        return 0;
    return len == c->len - 1 && memcmp(line, cmd_text(at, c), len) == 0;
}

/* The command in flight got its final: the result carries the final line
 * NUL-terminated (lines arrive unterminated, in place), and its text (a CME
 * code or message) pointing into that copy. Out of line: the copy's buffer
 * stays off on_line's frame. */
__attribute__((noinline)) static void finish_final(hf_at *at, hf_final *fin, const char *line,
                                                   size_t len)
{
    char copy[HF_AT_LINE_MAX];   /* len < HF_AT_LINE_MAX: the tokenizer's bound */
    memcpy(copy, line, len);
    copy[len] = '\0';
    if (fin->text_len > 0)
        fin->text = copy + (fin->text - line);
    finish_head(at, at->resp_overflow ? HF_AT_STATUS_OVERFLOW : HF_AT_STATUS_DONE, fin, copy);
}

/* Every branch ends right after its callback: a callback may change the queue. */
static void route_normal(hf_at *at, const char *line, size_t len)
{
    if (is_echo(at, line, len)) {
        at->echo_seen = 1;
        at->echoes++;
        return;
    }
    if (!at->in_flight) {
        deliver_urc(at, line, len);
        return;
    }
    hf_final fin;
    if (hf_final_may_start((unsigned char)line[0]) &&
        hf_final_parse(line, len, &fin) != HF_FINAL_NONE) {
        at->consecutive_timeouts = 0;   /* round_timeouts is 0 here: resync_done reset it */
        finish_final(at, &fin, line, len);
        return;
    }
    if (is_response(at, flight_cmd(at), line, len))
        store_resp(at, line, len);
    else
        deliver_urc(at, line, len);
}

static void on_line(void *ud, hf_tok_kind kind, const char *line, size_t len)
{
    hf_at *at = ud;
    if (at->input_aborted)
        return;
    if (kind == HF_TOK_OVERFLOW) {
        /* Dropped, counted, reported; the command in flight goes on. A line
         * that long is no answer of any AT command we send (noise, a port
         * streaming data, a final buried in garbage): the command still gets
         * its own final, or times out honestly, never a verdict from noise. */
        at->overflows++;
        emit_num(at, HF_AT_EV_OVERFLOW, len);
        return;
    }
    if (at->resync_state != RS_NONE)
        route_resync(at, line, len);
    else
        route_normal(at, line, len);
}

/* ---- public API --------------------------------------------------------- */

void hf_at_init(hf_at *at, const hf_at_callbacks *cb, void *ud)
{
    memset(at, 0, sizeof *at);
    if (cb)
        at->cb = *cb;
    at->ud = ud;
    hf_tok_init(&at->tok);
    at->next_id = 1;
    pairs_rebuild(at);
}

static int has_bad_byte(const char *s, size_t n)
{
    size_t i = 0;
    /* 8 bytes at a time: a word with no byte below 0x0E (CR, LF and NUL are) is
     * skipped at once ("has a byte less than n", exact for n <= 128, either byte
     * order); a word that may have one is checked byte by byte below. */
    for (; n - i >= 8; i += 8) {
        uint64_t v;
        memcpy(&v, s + i, sizeof v);
        if ((v - UINT64_C(0x0E0E0E0E0E0E0E0E)) & ~v & UINT64_C(0x8080808080808080))
            break;
    }
    for (; i < n; i++)
        if ((unsigned char)s[i] <= '\r' && (s[i] == '\r' || s[i] == '\n' || s[i] == '\0'))
            return 1;   /* one compare per byte: printable bytes are above CR */
    return 0;
}

static int check_prefixes(const char *const *prefixes, size_t n, hf_error *err)
{
    if (n > HF_AT_PREFIX_MAX)
        return hf_error_set(err, "EINVAL", "too many prefixes (%zu, at most %d)", n,
                            HF_AT_PREFIX_MAX);
    if (n && !prefixes)
        return hf_error_set(err, "EINVAL", "prefix list missing");
    for (size_t i = 0; i < n; i++) {
        if (!prefixes[i] || !prefixes[i][0])
            return hf_error_set(err, "EINVAL", "prefix %zu is empty", i + 1);
        if (strlen(prefixes[i]) >= HF_AT_PREFIX_LEN)
            return hf_error_set(err, "EINVAL", "prefix %zu longer than %d bytes", i + 1,
                                HF_AT_PREFIX_LEN - 1);
    }
    return 0;
}

int hf_at_submit(hf_at *at, const char *cmd, size_t len, hf_at_expect expect,
                 const char *const *prefixes, size_t nprefixes, double timeout,
                 unsigned long *id, hf_error *err)
{
    if (!cmd || len == 0)
        return hf_error_set(err, "EINVAL", "empty command");
    if (len > HF_AT_CMD_MAX)
        return hf_error_set(err, "EINVAL", "command longer than %d bytes", HF_AT_CMD_MAX);
    if (has_bad_byte(cmd, len))
        return hf_error_set(err, "EINVAL", "command contains CR, LF or NUL");
    if (expect != HF_AT_EXPECT_ALL && expect != HF_AT_EXPECT_NONE &&
        expect != HF_AT_EXPECT_PREFIXES)
        return hf_error_set(err, "EINVAL", "unknown expect mode %d", (int)expect);
    if (check_prefixes(prefixes, nprefixes, err))
        return -1;
    size_t size = len + 2;
    for (size_t i = 0; i < nprefixes; i++)
        size += strlen(prefixes[i]) + 1;   /* each < HF_AT_PREFIX_LEN: check_prefixes */
    if (at->count >= HF_AT_QUEUE_MAX || size > HF_AT_QUEUE_TEXT - at->qtext_used)
        return hf_error_set(err, "EAGAIN", "command queue full (%d commands, %d bytes of text)",
                            HF_AT_QUEUE_MAX, HF_AT_QUEUE_TEXT);

    hf_at_cmd *c = &at->queue[(at->head + at->count) % HF_AT_QUEUE_MAX];
    /* Every field read later is set here; the slot is not cleared whole (this
     * runs once per command, on the parse path). */
    c->id = at->next_id++;
    char *t = at->qtext + at->qtext_used;
    memcpy(t, cmd, len);
    t[len] = '\r';
    t[len + 1] = '\0';
    c->text = at->qtext_used;
    c->len = len + 1;
    c->size = size;
    c->expect = expect;
    t += len + 2;
    for (size_t i = 0; i < nprefixes; i++) {
        size_t pl = strlen(prefixes[i]);
        c->prefix_lens[i] = (unsigned char)pl;
        memcpy(t, prefixes[i], pl + 1);
        t += pl + 1;
    }
    at->qtext_used += size;
    c->nprefixes = nprefixes;
    c->timeout = timeout > 0 ? timeout : HF_AT_DEFAULT_TIMEOUT;   /* NaN too */
    at->count++;
    if (id)
        *id = c->id;
    hf_error_clear(err);
    maybe_start_resync(at);
    return 0;
}

size_t hf_at_output(hf_at *at, const char **data)
{
    *data = NULL;
    maybe_start_resync(at);
    if (at->resync_state == RS_WRITING) {
        const char *t = resync_cmds[current_resync(at)].text;
        *data = t + at->resync_written;
        return strlen(t) - at->resync_written;
    }
    if (at->resync_state != RS_NONE || !at->count || at->in_flight)
        return 0;
    hf_at_cmd *c = head_cmd(at);
    *data = cmd_text(at, c) + at->written;
    return c->len - at->written;
}

void hf_at_wrote(hf_at *at, size_t n, double now)
{
    at->now = now;
    if (at->resync_state == RS_WRITING) {
        size_t total = strlen(resync_cmds[current_resync(at)].text);
        size_t left = total - at->resync_written;
        at->resync_written += n < left ? n : left;
        if (at->resync_written == total) {
            at->resync_state = RS_AWAIT_REPLY;
            at->deadline = now + HF_AT_RESYNC_TIMEOUT;
            at->finals_owed++;
        }
        return;
    }
    if (at->resync_state != RS_NONE || !at->count || at->in_flight)
        return;
    hf_at_cmd *c = head_cmd(at);
    size_t left = c->len - at->written;
    at->written += n < left ? n : left;
    if (at->written == c->len) {
        /* Only now may lines be taken as its response; the deadline starts now. */
        at->in_flight = 1;
        at->sent_at = now;
        at->deadline = now + c->timeout;
        reset_resp(at);
    }
}

void hf_at_input(hf_at *at, const char *data, size_t n, double now)
{
    if (at->in_input)
        return;   /* misuse: called from a callback while the tokenizer is busy */
    at->now = now;
    at->in_input = 1;
    at->input_aborted = 0;
    hf_tok_feed(&at->tok, data, n, on_line, at);
    if (at->input_aborted)
        hf_tok_reset(&at->tok);   /* the rest came from the lost port */
    at->input_aborted = 0;
    at->in_input = 0;
}

void hf_at_tick(hf_at *at, double now)
{
    at->now = now;
    if (at->in_flight && now >= at->deadline)
        command_timed_out(at);
    else if (at->resync_state == RS_AWAIT_REPLY && now >= at->deadline)
        resync_timed_out(at);
    else if (at->resync_state == RS_QUIET && now >= at->deadline)
        resync_done(at);
}

double hf_at_deadline(const hf_at *at)
{
    if (at->in_flight || at->resync_state == RS_AWAIT_REPLY || at->resync_state == RS_QUIET)
        return at->deadline;
    return -1.0;
}

void hf_at_port_lost(hf_at *at)
{
    /* Clean first, so callbacks (which may submit) see the new port's state. */
    forget_resync(at);
    at->resync_refused = 0;   /* the port may come back with another firmware */
    at->resync_fell_back = 0;
    hf_tok_reset(&at->tok);
    if (at->in_input)
        at->input_aborted = 1;
    fail_queued(at, at->count, HF_AT_STATUS_PORTLOST);
}

/* Remove queue position 1 (just behind the started head) by moving the head
 * into its slot: O(1) and FIFO order is kept. */
static void cancel_behind_head(hf_at *at)
{
    size_t behind = (at->head + 1) % HF_AT_QUEUE_MAX;
    hf_at_cmd victim = at->queue[behind];
    char text[HF_AT_CMD_MAX + 2];
    memcpy(text, cmd_text(at, &victim), victim.len - 1);
    text[victim.len - 1] = '\0';   /* drop the CR: the command as submitted */
    at->queue[behind] = at->queue[at->head];
    at->head = behind;
    at->count--;
    drop_text(at, victim.text, victim.size);

    hf_at_result res;
    memset(&res, 0, sizeof res);
    res.id = victim.id;
    res.status = HF_AT_STATUS_CANCELLED;
    res.final.kind = HF_FINAL_NONE;
    res.final.code = -1;
    res.final.text = "";
    res.final_line = "";
    res.command = text;
    if (at->cb.on_result)
        at->cb.on_result(at->ud, &res);
}

void hf_at_cancel_queued(hf_at *at)
{
    /* The head stays if any byte of it went out: the module may act on it. */
    int started = at->count && (at->in_flight || at->written > 0);
    size_t n = at->count - (started ? 1 : 0);
    while (n--) {
        started = at->count && (at->in_flight || at->written > 0);
        if (at->count <= (size_t)started)
            break;
        if (started)
            cancel_behind_head(at);
        else
            finish_head(at, HF_AT_STATUS_CANCELLED, NULL, "");
    }
}

int hf_at_urc_prefix_add(hf_at *at, const char *prefix)
{
    if (!prefix || !prefix[0] || strlen(prefix) >= HF_AT_URC_PREFIX_LEN)
        return -1;
    for (size_t i = 0; i < at->n_urc_prefixes; i++) {
        if (strcmp(at->urc_text + at->urc_prefix_offs[i], prefix) == 0) {
            at->urc_refs[i]++;
            return 0;
        }
    }
    size_t n = strlen(prefix);
    if (at->n_urc_prefixes >= HF_AT_URC_PREFIXES || n + 1 > HF_AT_URC_TEXT - at->urc_text_used)
        return -1;
    memcpy(at->urc_text + at->urc_text_used, prefix, n + 1);
    at->urc_prefix_offs[at->n_urc_prefixes] = (unsigned short)at->urc_text_used;
    at->urc_prefix_lens[at->n_urc_prefixes] = (unsigned char)n;
    at->urc_text_used += n + 1;
    at->urc_refs[at->n_urc_prefixes++] = 1;
    pairs_add(at, prefix, strlen(prefix));
    return 0;
}

int hf_at_urc_prefix_remove(hf_at *at, const char *prefix)
{
    if (!prefix)
        return -1;
    for (size_t i = 0; i < at->n_urc_prefixes; i++) {
        if (strcmp(at->urc_text + at->urc_prefix_offs[i], prefix) != 0)
            continue;
        if (--at->urc_refs[i] > 0)
            return 0;
        size_t off = at->urc_prefix_offs[i], n = at->urc_prefix_lens[i] + 1u;
        arena_cut(at->urc_text, &at->urc_text_used, off, n);
        at->n_urc_prefixes--;
        if (i != at->n_urc_prefixes) {
            at->urc_prefix_offs[i] = at->urc_prefix_offs[at->n_urc_prefixes];
            at->urc_prefix_lens[i] = at->urc_prefix_lens[at->n_urc_prefixes];
            at->urc_refs[i] = at->urc_refs[at->n_urc_prefixes];
        }
        for (size_t k = 0; k < at->n_urc_prefixes; k++)
            if (at->urc_prefix_offs[k] > off)
                at->urc_prefix_offs[k] = (unsigned short)(at->urc_prefix_offs[k] - n);
        pairs_rebuild(at);
        return 0;
    }
    return -1;
}

void hf_at_require_sync(hf_at *at)
{
    at->resync_needed = 1;
    at->resync_discarded = 0;
    maybe_start_resync(at);
}

int hf_at_idle(const hf_at *at)
{
    return at->count == 0 && at->resync_state == RS_NONE;
}

const char *hf_at_event_name(hf_at_event ev)
{
    switch (ev) {
    case HF_AT_EV_OVERFLOW: return "OVERFLOW";
    case HF_AT_EV_TIMEOUT: return "TIMEOUT";
    case HF_AT_EV_RESYNC_START: return "RESYNC_START";
    case HF_AT_EV_RESYNC_DONE: return "RESYNC_DONE";
    case HF_AT_EV_RESYNC_FAILED: return "RESYNC_FAILED";
    case HF_AT_EV_DISCARDED: return "DISCARDED";
    case HF_AT_EV_GAVE_UP: return "GAVE_UP";
    case HF_AT_EV_RESYNC_REFUSED: return "RESYNC_REFUSED";
    case HF_AT_EV_RESYNC_FALLBACK: return "RESYNC_FALLBACK";
    }
    return "UNKNOWN";
}

const char *hf_at_status_name(hf_at_status st)
{
    switch (st) {
    case HF_AT_STATUS_DONE: return "DONE";
    case HF_AT_STATUS_TIMEOUT: return "TIMEOUT";
    case HF_AT_STATUS_PORTLOST: return "PORTLOST";
    case HF_AT_STATUS_OVERFLOW: return "OVERFLOW";
    case HF_AT_STATUS_CANCELLED: return "CANCELLED";
    }
    return "UNKNOWN";
}
