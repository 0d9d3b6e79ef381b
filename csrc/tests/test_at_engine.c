/* test_at_engine.c — the AT engine against scripted module output: routing of
 * echo, response, finals and URCs; timeouts, resync and late answers; port loss,
 * cancel, re-entrant submit; the seed's FOTA command log in tiny chunks. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "at_engine.h"
#include "check.h"

/* ---- fixture: everything the engine reports, as text logs ---------------- */

static hf_at at;
static char reslog[32768], urclog[32768], evlog[32768], wire[8192];
static size_t wire_len;
static unsigned per_id[256];
static unsigned long bad_ids;
static void (*result_hook)(const hf_at_result *res);
static void (*urc_hook)(const char *line, size_t len);

static void app(char *buf, size_t cap, const char *fmt, ...)
{
    size_t used = strlen(buf);
    if (used + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, cap - used, fmt, ap);
    va_end(ap);
}

/* "<command> -> <STATUS> <FINAL>[ code/text] [line;line]" one per result. */
static void on_result(void *ud, const hf_at_result *r)
{
    (void)ud;
    if (r->id < 256)
        per_id[r->id]++;
    else
        bad_ids++;
    app(reslog, sizeof reslog, "%s -> %s %s", r->command, hf_at_status_name(r->status),
        hf_final_name(r->final.kind));
    if (r->final.kind == HF_FINAL_CME || r->final.kind == HF_FINAL_CMS)
        app(reslog, sizeof reslog, " %ld/%.*s", r->final.code, (int)r->final.text_len,
            r->final.text);
    app(reslog, sizeof reslog, " [");
    for (size_t i = 0; i < r->nlines; i++) {
        if (r->line_lens[i] > 100)
            app(reslog, sizeof reslog, "%s<%zu bytes>", i ? ";" : "", r->line_lens[i]);
        else
            app(reslog, sizeof reslog, "%s%s", i ? ";" : "", r->lines[i]);
    }
    app(reslog, sizeof reslog, "]\n");
    if (result_hook)
        result_hook(r);
}

static void on_urc(void *ud, const char *line, size_t len)
{
    (void)ud;
    if (len > 100)
        app(urclog, sizeof urclog, "<%zu bytes>|", len);
    else
        app(urclog, sizeof urclog, "%.*s|", (int)len, line);
    if (urc_hook)
        urc_hook(line, len);
}

static void on_event(void *ud, hf_at_event ev, const char *detail, size_t len)
{
    (void)ud;
    app(evlog, sizeof evlog, "%s(%.*s) ", hf_at_event_name(ev), (int)(len > 60 ? 60 : len),
        detail);
}

static void setup(void)
{
    static const hf_at_callbacks cb = {on_result, on_urc, on_event};
    hf_at_init(&at, &cb, NULL);
    /* as the FOTA layer does (the engine itself knows no FOTA code) */
    REQUIRE(hf_at_urc_prefix_add(&at, "^FOTASTATE:") == 0, "register ^FOTASTATE:");
    reslog[0] = urclog[0] = evlog[0] = '\0';
    wire_len = 0;
    memset(per_id, 0, sizeof per_id);
    bad_ids = 0;
    result_hook = NULL;
    urc_hook = NULL;
}

/* Every submitted command got exactly one result. */
static void check_once(void)
{
    for (unsigned long id = 1; id < at.next_id && id < 256; id++)
        CHECK(per_id[id] == 1, "command %lu got %u results", id, per_id[id]);
    CHECK_INT(bad_ids, 0);
}

static unsigned long sub(const char *cmd, hf_at_expect ex, const char *p1, double timeout)
{
    const char *ps[1] = {p1};
    unsigned long id = 0;
    hf_error err;
    int rc = hf_at_submit(&at, cmd, strlen(cmd), ex, ps, p1 ? 1 : 0, timeout, &id, &err);
    REQUIRE(rc == 0, "submit %s: %s", cmd, err.msg);   /* setup: counts nothing */
    return id;
}

/* Write what the engine offers, at most `chunk` bytes per write. */
static void write_out(double now, size_t chunk)
{
    const char *d;
    size_t n;
    while ((n = hf_at_output(&at, &d)) > 0) {
        size_t k = n < chunk ? n : chunk;
        if (wire_len + k < sizeof wire) {
            memcpy(wire + wire_len, d, k);
            wire_len += k;
            wire[wire_len] = '\0';
        }
        hf_at_wrote(&at, k, now);
    }
}

/* The bytes written since the last call. */
static const char *took(void)
{
    static char out[sizeof wire];
    memcpy(out, wire, wire_len + 1);
    wire_len = 0;
    wire[0] = '\0';
    return out;
}

/* took() empties the wire: evaluate it once, also for the failure message. */
#define CHECK_WIRE(want)                                                        \
    do {                                                                        \
        const char *wire_now_ = took();                                         \
        CHECK_STR(wire_now_, (want));                                           \
    } while (0)

static void in_chunks(const char *s, size_t n, size_t chunk, double now)
{
    for (size_t i = 0; i < n; i += chunk)
        hf_at_input(&at, s + i, n - i < chunk ? n - i : chunk, now);
}

static void in(const char *s, double now)
{
    in_chunks(s, strlen(s), 3, now);
}

static void clear_logs(void)
{
    reslog[0] = urclog[0] = evlog[0] = '\0';
}

/* Submit cmd (timeout 1 s, no response expected), write it at t and let it time
 * out: at t + 1 the engine writes its resync query. */
static void time_out_at(const char *cmd, double t)
{
    sub(cmd, HF_AT_EXPECT_NONE, NULL, 1);
    write_out(t, 64);
    hf_at_tick(&at, t + 1);
    write_out(t + 1, 64);
}

/* One command's round trip, a row of a scripted exchange. */
typedef struct {
    const char *cmd;
    hf_at_expect ex;
    const char *prefix; /* NULL: none */
    const char *answer; /* what the module sends back (fed in 3-byte chunks) */
} exchange;

/* Row i: submitted (timeout 5 s), written out at 0.2*i s in 64-byte chunks, its
 * answer fed at 0.2*i + 0.1 s. */
static void exchanges(const exchange *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double t = 0.2 * (double)i;
        sub(rows[i].cmd, rows[i].ex, rows[i].prefix, 5);
        write_out(t, 64);
        in(rows[i].answer, t + 0.1);
    }
}

/* ---- routing ------------------------------------------------------------ */

static void test_echo_on_off(void)
{
    setup();
    sub("AT+GMR", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(0, 2);
    CHECK_WIRE("AT+GMR\r");
    in("AT+GMR\r\r\n12.815.01.03.00\r\n\r\nOK\r\n", 0.1);
    sub("AT+GMR", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(0.2, 64);
    in("\r\n12.815.01.03.00\r\n\r\nOK\r\n", 0.3);
    CHECK_STR(reslog, "AT+GMR -> DONE OK [12.815.01.03.00]\nAT+GMR -> DONE OK [12.815.01.03.00]\n");
    CHECK_STR(urclog, "");
    CHECK_INT(at.echoes, 1);
    CHECK(hf_at_idle(&at), "idle after both");
    check_once();

    /* The module echoes as soon as it has the CR, possibly before the owner
     * reports the last byte written: still echo, not a URC, not a response. */
    setup();
    sub("ATE0", HF_AT_EXPECT_NONE, NULL, 5);
    const char *d;
    size_t n = hf_at_output(&at, &d);
    CHECK_INT(n, 5);
    hf_at_wrote(&at, 4, 0);
    in("ATE0\r", 0.01);
    hf_at_wrote(&at, 1, 0.02);
    in("\r\nOK\r\n", 0.03);
    CHECK_STR(reslog, "ATE0 -> DONE OK []\n");
    CHECK_STR(urclog, "");
    check_once();

    /* Only the first copy of the command text is its echo. */
    setup();
    sub("AT+X", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(0, 64);
    in("AT+X\r\r\nAT+X\r\n\r\nOK\r\n", 0.1);
    CHECK_STR(reslog, "AT+X -> DONE OK [AT+X]\n");

    /* Before the command is fully written, a final is not its answer. */
    setup();
    sub("AT+CSQ", HF_AT_EXPECT_PREFIXES, "+CSQ:", 5);
    n = hf_at_output(&at, &d);
    hf_at_wrote(&at, 3, 0);
    CHECK(hf_at_deadline(&at) < 0, "no deadline before the last byte");
    in("\r\nOK\r\n", 0.01);
    CHECK_STR(reslog, "");
    CHECK_STR(urclog, "OK|");
    write_out(0.02, 64);
    in("\r\n+CSQ: 17,99\r\n\r\nOK\r\n", 0.05);
    CHECK_STR(reslog, "AT+CSQ -> DONE OK [+CSQ: 17,99]\n");
    check_once();
}

static void test_urcs_around_response(void)
{
    setup();
    in("\r\n^BOOT:12345,0,0,0,6\r\n\r\n^RSSI: 17\r\r\n", 0);   /* before: idle */
    sub("AT+GMR", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(0.1, 3);
    in("AT+GMR\r\r\n^RSSI: 18\r\r\n12.815.01.03.00\r\n\r\n^MODE: 5,4\r\r\n\r\nOK\r\n"
       "\r\n^SIMST: 1\r\r\n",
       0.2);
    CHECK_STR(reslog, "AT+GMR -> DONE OK [12.815.01.03.00]\n");
    CHECK_STR(urclog, "^BOOT:12345,0,0,0,6|^RSSI: 17|^RSSI: 18|^MODE: 5,4|^SIMST: 1|");
    CHECK_INT(at.urcs, 5);
    check_once();

    /* A URC while the command is still being written stays a URC. */
    setup();
    sub("AT^FOTASTATE?", HF_AT_EXPECT_PREFIXES, "^FOTASTATE:", 5);
    const char *d;
    hf_at_output(&at, &d);
    hf_at_wrote(&at, 5, 0);
    in("\r\n^FOTASTATE: 30\r\n", 0.01);
    write_out(0.02, 64);
    in("\r\n^FOTASTATE: 40\r\n\r\nOK\r\n", 0.1);
    CHECK_STR(urclog, "^FOTASTATE: 30|");
    CHECK_STR(reslog, "AT^FOTASTATE? -> DONE OK [^FOTASTATE: 40]\n");
    check_once();
}

static void test_prefix_modes(void)
{
    static const exchange rows[] = {
        /* PREFIXES: only listed lines are response; a listed known-URC prefix wins. */
        {"AT^FOTASTATE?", HF_AT_EXPECT_PREFIXES, "^FOTASTATE:",
         "\r\n^RSSI: 3\r\n\r\n^FOTASTATE: 10\r\n\r\nstray\r\n\r\nOK\r\n"},
        {"AT+CREG?", HF_AT_EXPECT_PREFIXES, "+CREG:", "\r\n+CREG: 0,1\r\n\r\nOK\r\n"},
        /* ALL: a known URC naming the command itself is its answer. */
        {"AT^FOTASTATE?", HF_AT_EXPECT_ALL, NULL,
         "\r\n^FOTASTATE: 12,12.815.01.04.00,79114,\"x\"\r\n\r\n^RSSI: 3\r\n\r\nOK\r\n"},
        /* ALL: other known URCs are not response; unknown lines are. */
        {"AT+GMR", HF_AT_EXPECT_ALL, NULL,
         "\r\n^FOTASTATE: 11\r\n\r\n+CREG: 1\r\n\r\n12.815.01.03.00\r\n\r\nOK\r\n"},
        /* NONE: every intermediate line is unsolicited. */
        {"AT^FOTADET", HF_AT_EXPECT_NONE, NULL, "\r\nwhatever\r\n\r\nOK\r\n\r\n^FOTASTATE: 11\r\n"},
    };
    setup();
    exchanges(rows, sizeof rows / sizeof rows[0]);
    CHECK_STR(reslog, "AT^FOTASTATE? -> DONE OK [^FOTASTATE: 10]\n"
                      "AT+CREG? -> DONE OK [+CREG: 0,1]\n"
                      "AT^FOTASTATE? -> DONE OK [^FOTASTATE: 12,12.815.01.04.00,79114,\"x\"]\n"
                      "AT+GMR -> DONE OK [12.815.01.03.00]\n"
                      "AT^FOTADET -> DONE OK []\n");
    CHECK_STR(urclog, "^RSSI: 3|stray|^RSSI: 3|^FOTASTATE: 11|+CREG: 1|whatever|^FOTASTATE: 11|");

    /* Registered prefixes are URCs until removed; removing twice is harmless. */
    setup();
    CHECK_INT(hf_at_urc_prefix_add(&at, "+CUSD:"), 0);
    CHECK_INT(hf_at_urc_prefix_add(&at, "+CUSD:"), 0);
    CHECK_INT(at.n_urc_prefixes, 2);
    CHECK_INT(hf_at_urc_prefix_add(&at, ""), -1);
    CHECK_INT(hf_at_urc_prefix_add(&at, "+A_VERY_LONG_PREFIX_INDEED_LONGER_THAN_SIXTY_FOUR_BYTES_"
                                        "WITH_ITS_NUL:"), -1);
    sub("ATI", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(0, 64);
    in("\r\n+CUSD: 1\r\n\r\nHuawei\r\n\r\nOK\r\n", 0.1);
    hf_at_urc_prefix_remove(&at, "+CUSD:");
    hf_at_urc_prefix_remove(&at, "+CUSD:");
    sub("ATI", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(0.2, 64);
    in("\r\n+CUSD: 1\r\n\r\nOK\r\n", 0.3);
    CHECK_STR(urclog, "+CUSD: 1|");
    CHECK_STR(reslog, "ATI -> DONE OK [Huawei]\nATI -> DONE OK [+CUSD: 1]\n");
    for (int i = 0; i < HF_AT_URC_PREFIXES - 1; i++) {   /* ^FOTASTATE: holds one */
        char p[16];
        snprintf(p, sizeof p, "+X%d:", i);
        CHECK(hf_at_urc_prefix_add(&at, p) == 0, "add %s", p);
    }
    CHECK_INT(hf_at_urc_prefix_add(&at, "+FULL:"), -1);
    check_once();

    /* The prefixes' texts are packed: one removed from the middle closes its gap
     * and the others still match; the bytes bound them as well as the count. */
    setup();
    CHECK_INT(hf_at_urc_prefix_add(&at, "+AAA:"), 0);
    CHECK_INT(hf_at_urc_prefix_add(&at, "+BBBBBB:"), 0);
    CHECK_INT(hf_at_urc_prefix_add(&at, "+CC:"), 0);
    CHECK_INT(hf_at_urc_prefix_remove(&at, "+AAA:"), 0);
    CHECK_INT(hf_at_urc_prefix_remove(&at, "+AAA:"), -1);
    sub("ATI", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(0, 64);
    in("\r\n+AAA: 1\r\n+BBBBBB: 2\r\n+CC: 3\r\n^FOTASTATE: 10\r\nOK\r\n", 0.1);
    CHECK_STR(urclog, "+BBBBBB: 2|+CC: 3|^FOTASTATE: 10|");
    CHECK_STR(reslog, "ATI -> DONE OK [+AAA: 1]\n");
    char longp[HF_AT_URC_PREFIX_LEN];
    int added = 0;
    size_t used_before = at.urc_text_used;   /* "^FOTASTATE:", "+BBBBBB:", "+CC:" */
    CHECK_INT(used_before, 12 + 9 + 5);
    for (int i = 0; i < HF_AT_URC_PREFIXES; i++) {
        memset(longp, 'p', sizeof longp - 1);
        longp[sizeof longp - 1] = '\0';
        longp[0] = '+';
        longp[1] = (char)('A' + i);
        if (hf_at_urc_prefix_add(&at, longp) < 0)
            break;
        added++;
    }
    /* three short ones hold 3 of the 32 entries: the bytes ran out first */
    CHECK_INT(added, (int)((HF_AT_URC_TEXT - used_before) / HF_AT_URC_PREFIX_LEN));
    CHECK(added + 3 < HF_AT_URC_PREFIXES, "added %d", added);
    CHECK(at.urc_text_used <= HF_AT_URC_TEXT, "%zu", at.urc_text_used);
    check_once();
}

static void test_errors(void)
{
    static const exchange rows[] = {
        {"AT^FOTADET", HF_AT_EXPECT_NONE, NULL,
         "AT^FOTADET\r\r\n+CME ERROR: FOTA is in collision state\r\n"},
        {"AT+CPIN?", HF_AT_EXPECT_PREFIXES, "+CPIN:", "\r\n+CME ERROR: 10\r\n"},
        {"AT^FOTADL=1", HF_AT_EXPECT_NONE, NULL, "\r\nERROR\r\n"},
        {"AT^XYZ", HF_AT_EXPECT_NONE, NULL, "\r\nCOMMAND NOT SUPPORT\r\n"},
        {"AT+CMGS=1", HF_AT_EXPECT_NONE, NULL, "\r\n+CMS ERROR: 304\r\n"},
    };
    setup();
    exchanges(rows, sizeof rows / sizeof rows[0]);
    CHECK_STR(reslog, "AT^FOTADET -> DONE CME -1/FOTA is in collision state []\n"
                      "AT+CPIN? -> DONE CME 10/10 []\n"
                      "AT^FOTADL=1 -> DONE ERROR []\n"
                      "AT^XYZ -> DONE NOT_SUPPORT []\n"
                      "AT+CMGS=1 -> DONE CMS 304/304 []\n");
    check_once();
}

static void test_submit_refusals(void)
{
    setup();
    hf_error err;
    unsigned long id = 0;
    static char longcmd[HF_AT_CMD_MAX + 2];
    memset(longcmd, 'A', sizeof longcmd);
    struct {
        const char *cmd;
        size_t len;
    } bad[] = {{"", 0}, {NULL, 3}, {"AT\r", 3}, {"AT\nX", 4}, {"AT\0X", 4},
               {longcmd, HF_AT_CMD_MAX + 1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_INT(hf_at_submit(&at, bad[i].cmd, bad[i].len, HF_AT_EXPECT_NONE, NULL, 0, 1, &id,
                               &err),
                  -1);
        CHECK(err.code && strcmp(err.code, "EINVAL") == 0, "case %zu: %s", i,
              err.code ? err.code : "(null)");
    }
    /* CR, LF or NUL anywhere in a long command (the check goes 8 bytes at a time);
     * bytes above 0x7F and just above CR are data */
    for (size_t pos = 0; pos < 40; pos += 3) {
        static const char bad_bytes[] = {'\r', '\n', '\0'};
        char c[48];
        memset(c, 'A', sizeof c);
        c[pos] = bad_bytes[pos % 3];
        CHECK_INT(hf_at_submit(&at, c, 41, HF_AT_EXPECT_NONE, NULL, 0, 1, &id, &err), -1);
        CHECK(err.code && strcmp(err.code, "EINVAL") == 0, "byte %d at %zu", c[pos], pos);
    }
    {
        char c[41];
        for (size_t k = 0; k < sizeof c; k++)
            c[k] = (char)(k % 2 ? 0x0E + k % 5 : 0x80 + k);
        CHECK_INT(hf_at_submit(&at, c, sizeof c, HF_AT_EXPECT_NONE, NULL, 0, 1, &id, &err), 0);
        hf_at_cancel_queued(&at);
        setup();   /* ids from 1 again below */
    }
    const char *five[] = {"+A:", "+B:", "+C:", "+D:", "+E:"};
    CHECK_INT(hf_at_submit(&at, "AT", 2, HF_AT_EXPECT_PREFIXES, five, 5, 1, &id, &err), -1);
    CHECK_STR(err.code, "EINVAL");
    const char *longp[] = {"+THIS_PREFIX_IS_TOO_LONG_:"};
    CHECK_INT(hf_at_submit(&at, "AT", 2, HF_AT_EXPECT_PREFIXES, longp, 1, 1, &id, &err), -1);
    CHECK_STR(err.code, "EINVAL");
    const char *emptyp[] = {""};
    CHECK_INT(hf_at_submit(&at, "AT", 2, HF_AT_EXPECT_PREFIXES, emptyp, 1, 1, &id, &err), -1);
    CHECK_INT(hf_at_submit(&at, "AT", 2, (hf_at_expect)7, NULL, 0, 1, &id, &err), -1);
    CHECK_INT(at.count, 0);

    /* The longest command is accepted; then the queue fills. */
    CHECK_INT(hf_at_submit(&at, longcmd, HF_AT_CMD_MAX, HF_AT_EXPECT_NONE, five, 4, 0, &id, &err),
              0);
    CHECK_INT(id, 1);
    for (int i = 1; i < HF_AT_QUEUE_MAX; i++)
        CHECK_INT(hf_at_submit(&at, "AT", 2, HF_AT_EXPECT_NONE, NULL, 0, 1, &id, &err), 0);
    CHECK_INT(hf_at_submit(&at, "AT", 2, HF_AT_EXPECT_NONE, NULL, 0, 1, &id, &err), -1);
    CHECK_STR(err.code, "EAGAIN");
    CHECK_INT(at.count, HF_AT_QUEUE_MAX);

    /* timeout <= 0 means the default. */
    write_out(10, 1000);
    CHECK(hf_at_deadline(&at) == 10 + HF_AT_DEFAULT_TIMEOUT, "deadline %f", hf_at_deadline(&at));
}

/* The queue's texts and expected prefixes share one arena: it holds two of the
 * longest commands with four of the longest prefixes each; a command leaving
 * closes its gap, and the texts and prefixes behind it stay whole. */
static void test_queue_text(void)
{
    setup();
    hf_error err;
    unsigned long id = 0;
    static char a[HF_AT_CMD_MAX + 1], b[HF_AT_CMD_MAX + 1];
    memset(a, 'a', HF_AT_CMD_MAX);
    memset(b, 'b', HF_AT_CMD_MAX);
    memcpy(a, "AT+A", 4);
    memcpy(b, "AT+B", 4);
    static char pre[HF_AT_PREFIX_MAX][HF_AT_PREFIX_LEN];
    const char *pres[HF_AT_PREFIX_MAX];
    for (int i = 0; i < HF_AT_PREFIX_MAX; i++) {
        memset(pre[i], 'P', HF_AT_PREFIX_LEN - 1);
        pre[i][0] = '+';
        pre[i][1] = (char)('0' + i);
        pre[i][HF_AT_PREFIX_LEN - 2] = ':';
        pres[i] = pre[i];
    }
    CHECK_INT(hf_at_submit(&at, a, HF_AT_CMD_MAX, HF_AT_EXPECT_PREFIXES, pres, HF_AT_PREFIX_MAX,
                           5, &id, &err), 0);
    CHECK_INT(hf_at_submit(&at, b, HF_AT_CMD_MAX, HF_AT_EXPECT_PREFIXES, pres, HF_AT_PREFIX_MAX,
                           5, &id, &err), 0);
    CHECK_INT(at.qtext_used, HF_AT_QUEUE_TEXT);
    CHECK_INT(hf_at_submit(&at, "AT", 2, HF_AT_EXPECT_NONE, NULL, 0, 5, &id, &err), -1);
    CHECK_STR(err.code, "EAGAIN");
    CHECK(strstr(err.msg, "bytes of text") != NULL, "%s", err.msg);
    CHECK_INT(at.count, 2);
    write_out(0, 100);
    CHECK_INT(wire_len, HF_AT_CMD_MAX + 1);
    CHECK(memcmp(wire, a, HF_AT_CMD_MAX) == 0 && wire[HF_AT_CMD_MAX] == '\r', "A's text on the wire");
    in("\r\nOK\r\n", 0.1);
    /* A left: its room is free again, B's text moved and is still whole, and so
     * are its prefixes (its fourth takes a line, an unexpected one does not). */
    sub("AT+CSQ", HF_AT_EXPECT_ALL, NULL, 5);
    wire_len = 0;
    write_out(0.2, 7);
    CHECK_INT(wire_len, HF_AT_CMD_MAX + 1);
    CHECK(memcmp(wire, b, HF_AT_CMD_MAX) == 0 && wire[HF_AT_CMD_MAX] == '\r', "B's text on the wire");
    char resp[HF_AT_PREFIX_LEN + 40];
    snprintf(resp, sizeof resp, "\r\n+9other: 1\r\n%s 7\r\nOK\r\n", pre[3]);
    in(resp, 0.3);
    char want[HF_AT_CMD_MAX + 64];
    snprintf(want, sizeof want, "%.*s -> DONE OK [%s 7]\n", HF_AT_CMD_MAX, b, pre[3]);
    CHECK(strstr(reslog, want) != NULL, "B's prefix: %s", reslog);
    CHECK(strstr(urclog, "+9other: 1|") != NULL, "%s", urclog);
    wire_len = 0;
    write_out(0.4, 64);
    CHECK_WIRE("AT+CSQ\r");
    in("\r\n+CSQ: 20,99\r\n\r\nOK\r\n", 0.5);
    CHECK(strstr(reslog, "AT+CSQ -> DONE OK [+CSQ: 20,99]\n") != NULL, "%s", reslog);
    /* Cancelled from the middle: the texts around the gap stay whole. */
    sub("AT+ONE", HF_AT_EXPECT_NONE, NULL, 5);
    const char *d;
    hf_at_output(&at, &d);
    hf_at_wrote(&at, 3, 0.6);   /* partly written: stays */
    sub("AT+TWO", HF_AT_EXPECT_NONE, NULL, 5);
    hf_at_cancel_queued(&at);
    sub("AT+THREE", HF_AT_EXPECT_NONE, NULL, 5);
    wire_len = 0;
    write_out(0.7, 64);
    CHECK_WIRE("ONE\r");
    in("\r\nOK\r\n", 0.8);
    wire_len = 0;
    write_out(0.9, 64);
    CHECK_WIRE("AT+THREE\r");
    in("\r\nOK\r\n", 1.0);
    CHECK(strstr(reslog, "AT+TWO -> CANCELLED NONE []\nAT+ONE -> DONE OK []\n"
                         "AT+THREE -> DONE OK []\n") != NULL, "%s", reslog);
    CHECK_INT(at.qtext_used, 0);
    check_once();
}

/* ---- timeouts, late answers, resync ------------------------------------- */

/* Command A times out; its late answer arrives during the resync; B, queued
 * meanwhile, must get only its own answer. */
static void late_answer_case(const char *late, int late_before_at_written, int late_in_quiet)
{
    setup();
    sub("AT^FOTADET", HF_AT_EXPECT_NONE, NULL, 5);
    write_out(0, 64);
    CHECK_WIRE("AT^FOTADET\r");
    CHECK(hf_at_deadline(&at) == 5.0, "deadline from last byte: %f", hf_at_deadline(&at));
    unsigned long b = sub("AT+GMR", HF_AT_EXPECT_ALL, NULL, 5);
    hf_at_tick(&at, 4.99);
    CHECK_STR(reslog, "");
    hf_at_tick(&at, 5.0);
    CHECK_STR(reslog, "AT^FOTADET -> TIMEOUT NONE []\n");
    CHECK_INT(at.consecutive_timeouts, 1);
    if (late_before_at_written)
        in(late, 5.05);
    write_out(5.1, 64);
    CHECK_WIRE("AT+CMEE?\r");   /* the resync, not B */
    if (!late_before_at_written && !late_in_quiet)
        in(late, 5.15);
    CHECK(hf_at_deadline(&at) > 0, "resync is timed");
    in("AT+CMEE?\r\r\n+CMEE: 2\r\n\r\nOK\r\n", 5.2);   /* the resync's echo and answer */
    if (late_in_quiet)
        in(late, 5.3);
    write_out(5.35, 64);
    CHECK_WIRE("");   /* nothing before the quiet interval passed */
    /* The quiet interval counts from the last final seen, whichever it was. */
    double quiet_end = (late_in_quiet ? 5.3 : 5.2) + HF_AT_RESYNC_QUIET;
    CHECK(hf_at_deadline(&at) == quiet_end, "quiet until %f, want %f", hf_at_deadline(&at),
          quiet_end);
    hf_at_tick(&at, quiet_end - 0.01);
    write_out(quiet_end - 0.01, 64);
    CHECK_WIRE("");
    hf_at_tick(&at, quiet_end);
    write_out(quiet_end, 64);
    CHECK_WIRE("AT+GMR\r");
    in("AT+GMR\r\r\n12.815.01.04.00\r\n\r\nOK\r\n", quiet_end + 0.1);
    CHECK_STR(reslog, "AT^FOTADET -> TIMEOUT NONE []\nAT+GMR -> DONE OK [12.815.01.04.00]\n");
    CHECK_INT(per_id[b], 1);
    CHECK_INT(at.consecutive_timeouts, 0);
    CHECK(hf_at_idle(&at), "idle");
    CHECK(strstr(evlog, "TIMEOUT(AT^FOTADET) RESYNC_START(AT+CMEE?) ") == evlog, "events: %s",
          evlog);
    CHECK(strstr(evlog, "RESYNC_DONE(") != NULL, "events: %s", evlog);
    check_once();
}

static void test_timeout_late_answer(void)
{
    /* late OK arrives after the resync is written: no reply line before it, so
     * not the resync's answer */
    late_answer_case("\r\nOK\r\n", 0, 0);
    CHECK(strstr(evlog, "DISCARDED(OK) DISCARDED(+CMEE: 2) DISCARDED(OK) RESYNC_DONE(3)") != NULL,
          "%s", evlog);
    /* late error before AT goes out */
    late_answer_case("\r\n+CME ERROR: 100\r\n", 1, 0);
    /* late error between AT written and its OK */
    late_answer_case("\r\n+CME ERROR: Previous command is not complete\r\n", 0, 0);
    /* late OK after the resync's answer (the second guard): quiet restarted */
    late_answer_case("\r\nOK\r\n", 0, 1);
    /* late response lines with their final; a URC in the middle is still delivered */
    late_answer_case("\r\n12.815.01.03.00\r\n\r\n^FOTASTATE: 11\r\n\r\nOK\r\n", 0, 0);
    CHECK_STR(urclog, "^FOTASTATE: 11|");
    CHECK(strstr(evlog, "DISCARDED(12.815.01.03.00)") != NULL, "%s", evlog);

    /* A late OK after the quiet interval, while nothing is in flight, is
     * unsolicited, not the next command's answer. */
    setup();
    time_out_at("AT", 0);
    in("\r\n+CMEE: 2\r\n\r\nOK\r\n", 1.1);
    hf_at_tick(&at, 2);
    CHECK(hf_at_idle(&at), "idle after resync");
    in("\r\nOK\r\n", 3);
    CHECK_STR(urclog, "OK|");
    unsigned long b = sub("AT+CGMR", HF_AT_EXPECT_ALL, NULL, 2);
    write_out(4, 64);
    CHECK_WIRE("AT\rAT+CMEE?\rAT+CGMR\r");
    hf_at_tick(&at, 6);
    CHECK_INT(per_id[b], 1);
    CHECK(strstr(reslog, "AT+CGMR -> TIMEOUT") != NULL, "%s", reslog);
}

static void test_resync_failures(void)
{
    setup();
    sub("AT^FOTADLQ", HF_AT_EXPECT_PREFIXES, "^FOTADLQ:", 10);
    write_out(0, 64);
    sub("AT+GMR", HF_AT_EXPECT_ALL, NULL, 5);
    sub("ATI", HF_AT_EXPECT_ALL, NULL, 5);
    hf_at_tick(&at, 10);                         /* timeout 1 */
    write_out(10, 64);
    CHECK_WIRE("AT^FOTADLQ\rAT+CMEE?\r");
    hf_at_tick(&at, 10 + HF_AT_RESYNC_TIMEOUT - 0.01);
    CHECK_INT(at.consecutive_timeouts, 1);
    hf_at_tick(&at, 10 + HF_AT_RESYNC_TIMEOUT);  /* timeout 2: retried */
    CHECK_INT(at.consecutive_timeouts, 2);
    CHECK_STR(reslog, "AT^FOTADLQ -> TIMEOUT NONE []\n");
    write_out(13.5, 64);
    CHECK_WIRE("AT+CSQ\r");   /* a retry uses another command */
    hf_at_tick(&at, 13.5 + HF_AT_RESYNC_TIMEOUT);  /* timeout 3: give up */
    CHECK_INT(at.consecutive_timeouts, 3);
    CHECK_STR(reslog, "AT^FOTADLQ -> TIMEOUT NONE []\nAT+GMR -> TIMEOUT NONE []\n"
                      "ATI -> TIMEOUT NONE []\n");
    CHECK(strstr(evlog, "RESYNC_FAILED(AT+CMEE?) RESYNC_START(AT+CSQ) RESYNC_FAILED(AT+CSQ) "
                        "GAVE_UP(3)") != NULL,
          "%s", evlog);
    CHECK(hf_at_idle(&at), "idle after giving up");
    CHECK_INT(at.resync_needed, 1);
    CHECK(hf_at_deadline(&at) < 0, "nothing timed");
    write_out(20, 64);
    CHECK_WIRE("");   /* nothing queued: no AT sent */

    /* The next submit resyncs first (with the one command not yet written);
     * this time the module answers. */
    clear_logs();
    sub("AT+GMR", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(30, 64);
    CHECK_WIRE("AT+CSCS?\r");
    in("\r\n+CSCS: \"IRA\"\r\n\r\nOK\r\n", 30.1);
    CHECK_INT(at.consecutive_timeouts, 0);
    hf_at_tick(&at, 30.1 + HF_AT_RESYNC_QUIET);
    write_out(30.5, 64);
    CHECK_WIRE("AT+GMR\r");
    in("\r\n12.815.01.03.00\r\n\r\nOK\r\n", 30.6);
    CHECK_STR(reslog, "AT+GMR -> DONE OK [12.815.01.03.00]\n");
    CHECK_INT(at.resync_needed, 0);
    CHECK_INT(at.timeouts, 3);
    check_once();

    /* A new round after giving up gets HF_AT_MAX_TIMEOUTS tries again. */
    setup();
    sub("AT", HF_AT_EXPECT_NONE, NULL, 1);
    write_out(0, 64);
    hf_at_tick(&at, 1);
    for (int i = 0; i < 2; i++) {
        write_out(2 + i * 10, 64);
        hf_at_tick(&at, 2 + i * 10 + HF_AT_RESYNC_TIMEOUT);
    }
    CHECK(strstr(evlog, "GAVE_UP(3)") != NULL, "%s", evlog);
    clear_logs();
    sub("AT", HF_AT_EXPECT_NONE, NULL, 1);
    write_out(50, 64);
    hf_at_tick(&at, 50 + HF_AT_RESYNC_TIMEOUT);
    CHECK_STR(reslog, "");   /* one failed resync is not yet a give-up */
    write_out(54, 64);
    hf_at_tick(&at, 54 + HF_AT_RESYNC_TIMEOUT);
    write_out(58, 64);
    hf_at_tick(&at, 58 + HF_AT_RESYNC_TIMEOUT);
    CHECK_STR(reslog, "AT -> TIMEOUT NONE []\n");
    check_once();
}

/* ---- resync by recognisable reply: an in-order module model -------------- */

/* The module answers one command at a time, in order: a command written at t
 * is done at max(t, previous done) + proc and its answer (echo first if echo
 * is on) arrives then. proc < 0: never answered (lost). Commands without a
 * rule take 0.05 s; resync queries get their standard answers. */
struct mod_rule {
    const char *cmd;
    double proc;
    const char *answer;   /* without echo */
};

static const struct mod_rule *mod_rules;
static size_t mod_nrules;
static int mod_used[32];
static int mod_echo;
static double mod_busy;
static struct {
    long at;              /* in steps of 10 ms */
    char bytes[256];
} mod_out[64];
static size_t mod_nout;
static char mod_written[1024];   /* "cmd@t " for every command the host wrote */

static void mod_setup(const struct mod_rule *rules, size_t n, int echo)
{
    setup();
    mod_rules = rules;
    mod_nrules = n;
    memset(mod_used, 0, sizeof mod_used);
    mod_echo = echo;
    mod_busy = 0;
    mod_nout = 0;
    mod_written[0] = '\0';
}

static void mod_emit(long at_step, const char *a, const char *b)
{
    if (mod_nout >= sizeof mod_out / sizeof mod_out[0]) {
        CHECK(0, "model output full");
        return;
    }
    mod_out[mod_nout].at = at_step;
    snprintf(mod_out[mod_nout].bytes, sizeof mod_out[0].bytes, "%s%s", a, b);
    mod_nout++;
}

/* The module takes the complete commands off the wire. */
static void mod_receive(long step)
{
    double now = step / 100.0;
    char *cr;
    while ((cr = memchr(wire, '\r', wire_len)) != NULL) {
        char cmd[256];
        size_t n = (size_t)(cr - wire);
        snprintf(cmd, sizeof cmd, "%.*s", (int)n, wire);
        memmove(wire, cr + 1, wire_len - n - 1);
        wire_len -= n + 1;
        wire[wire_len] = '\0';
        app(mod_written, sizeof mod_written, "%s@%.2f ", cmd, now);

        double proc = 0.05;
        const char *answer = "\r\nOK\r\n";
        if (strcmp(cmd, "AT+CMEE?") == 0)
            answer = "\r\n+CMEE: 2\r\n\r\nOK\r\n";
        else if (strcmp(cmd, "AT+CSQ") == 0)
            answer = "\r\n+CSQ: 20,99\r\n\r\nOK\r\n";
        else if (strcmp(cmd, "AT+CSCS?") == 0)
            answer = "\r\n+CSCS: \"IRA\"\r\n\r\nOK\r\n";
        for (size_t i = 0; i < mod_nrules; i++) {
            if (!mod_used[i] && strcmp(mod_rules[i].cmd, cmd) == 0) {
                mod_used[i] = 1;
                proc = mod_rules[i].proc;
                answer = mod_rules[i].answer;
                break;
            }
        }
        char echo[300] = "";
        if (mod_echo)
            snprintf(echo, sizeof echo, "%s\r", cmd);
        /* the echo right away (next step: this one's output is read) */
        if (mod_echo)
            mod_emit(step + 1, echo, "");
        if (proc < 0)
            continue;
        double start = now > mod_busy ? now : mod_busy;
        mod_busy = start + proc;
        long done = (long)(mod_busy * 100 + 0.5);
        if (done <= step)
            done = step + 1;
        mod_emit(done, "", answer);
    }
}

/* The owner's loop, every 10 ms from..to (in steps): the module's due output
 * is read, the clock ticks, pending output is written, the module reads it. */
static void mod_run(long from, long to)
{
    for (long step = from; step <= to; step++) {
        double now = step / 100.0;
        for (size_t i = 0; i < mod_nout; i++)
            if (mod_out[i].at == step)
                in(mod_out[i].bytes, now);
        hf_at_tick(&at, now);
        write_out(now, 64);
        mod_receive(step);
    }
}

/* The resync tests' queue: X (AT+X, timeout 5 s) with B (AT+GMR) behind it, run
 * from 0 to `to` (10 ms steps): X times out, B gets its own answer. */
static void x_times_out_b_answers(long to)
{
    sub("AT+X", HF_AT_EXPECT_ALL, NULL, 5);
    sub("AT+GMR", HF_AT_EXPECT_ALL, NULL, 5);
    mod_run(0, to);
    CHECK_STR(reslog, "AT+X -> TIMEOUT NONE []\nAT+GMR -> DONE OK [B-OWN-ANSWER]\n");
}

/* X times out (timeout 5 s, written at 0); B, queued meanwhile, must get only
 * its own answer, whatever X's late answer and however long the module then
 * takes over the resync command. */
static void late_case(const char *x, const char *x_answer, double x_proc, double resync_proc,
                      int echo, const char *want_resync)
{
    char x_res[600];
    snprintf(x_res, sizeof x_res, "%s -> TIMEOUT NONE []\n", x);
    const struct mod_rule rules[] = {
        {x, x_proc, x_answer},
        {want_resync, resync_proc,
         strcmp(want_resync, "AT+CMEE?") == 0 ? "\r\n+CMEE: 2\r\n\r\nOK\r\n"
         : strcmp(want_resync, "AT+CSQ") == 0 ? "\r\n+CSQ: 20,99\r\n\r\nOK\r\n"
                                               : "\r\n+CSCS: \"IRA\"\r\n\r\nOK\r\n"},
        {"AT+GMR", 0.05, "\r\nB-OWN-ANSWER\r\n\r\nOK\r\n"},
    };
    mod_setup(rules, 3, echo);
    sub(x, HF_AT_EXPECT_ALL, NULL, 5);
    unsigned long b = sub("AT+GMR", HF_AT_EXPECT_ALL, NULL, 5);
    mod_run(0, 1200);
    char want[800];
    snprintf(want, sizeof want, "%sAT+GMR -> DONE OK [B-OWN-ANSWER]\n", x_res);
    CHECK(strcmp(reslog, want) == 0, "%s late %.2f, resync after %.2f, echo %d: got \"%s\" "
          "(wrote %s; events %s)", x, x_proc, resync_proc, echo, reslog, mod_written, evlog);
    CHECK_INT(per_id[b], 1);
    CHECK_INT(at.echoes, echo ? 3 : 0);   /* X's, the resync's, B's: none discarded */
    char start[64];
    snprintf(start, sizeof start, "RESYNC_START(%s) ", want_resync);
    CHECK(strstr(evlog, start) != NULL, "%s: %s", x, evlog);
    CHECK(strstr(evlog, "RESYNC_FAILED") == NULL, "%s: %s", x, evlog);
    CHECK(hf_at_idle(&at), "idle");
    CHECK_INT(at.consecutive_timeouts, 0);
    check_once();
}

static void test_resync_reply_delays(void)
{
    /* The resync's answer 0.1, 0.5 and 2 s after X's late answer (which
     * arrives 0.2 s after the resync was written): the quiet interval alone
     * (0.3 s) would hand the resync's OK to B from 0.5 s on. */
    static const double delays[] = {0.1, 0.5, 2.0};
    for (size_t i = 0; i < 3; i++)
        for (int echo = 0; echo < 2; echo++)
            late_case("AT^FOTADET", "\r\nOK\r\n", 5.2, delays[i], echo, "AT+CMEE?");
    /* X's answer only after the resync was written, the resync's 2.5 s later
     * (still within HF_AT_RESYNC_TIMEOUT of its write) */
    late_case("AT^FOTADET", "\r\nOK\r\n", 5.45, 2.5, 1, "AT+CMEE?");
    /* B is written only once the resync is answered */
    late_case("AT^FOTADET", "\r\nOK\r\n", 5.2, 2.0, 0, "AT+CMEE?");
    CHECK(strstr(mod_written, "AT+CMEE?@5.00 AT+GMR@7.") != NULL, "%s", mod_written);
}

static void test_resync_late_answers(void)
{
    static const struct {
        const char *x, *answer, *resync;
    } cases[] = {
        {"AT+GMR", "\r\n12.815.01.03.00\r\n\r\nOK\r\n", "AT+CMEE?"},
        {"AT^FOTADLQ", "\r\n^FOTADLQ: 1,\"IMAGE\",1324,1324\r\n\r\n^FOTADLQ: 2,\"XNV\",0,77778\r\n"
                       "\r\nOK\r\n", "AT+CMEE?"},
        {"AT+CPIN?", "\r\n+CME ERROR: SIM busy\r\n", "AT+CMEE?"},
        {"AT^FOTADL=1", "\r\nCOMMAND NOT SUPPORT\r\n", "AT+CMEE?"},
        {"AT^FOTADET", "\r\n+CME ERROR: 54\r\n", "AT+CMEE?"},
        /* the resync commands themselves timing out: another one is used */
        {"AT+CMEE?", "\r\n+CMEE: 2\r\n\r\nOK\r\n", "AT+CSQ"},
        {"at+cmee?", "\r\n+CMEE: 1\r\n\r\nOK\r\n", "AT+CSQ"},
        {"AT+CMEE=?", "\r\n+CMEE: (0-2)\r\n\r\nOK\r\n", "AT+CSQ"},
        {"AT+CSQ", "\r\n+CSQ: 31,99\r\n\r\nOK\r\n", "AT+CMEE?"},
        {"AT+CSCS?", "\r\n+CSCS: \"GSM\"\r\n\r\nOK\r\n", "AT+CMEE?"},
        {"AT+CMEE?;+CSQ", "\r\n+CMEE: 2\r\n\r\n+CSQ: 20,99\r\n\r\nOK\r\n", "AT+CSCS?"},
        /* a late answer carrying the next command's own kind of line */
        {"AT+CGMR", "\r\nB-OWN-ANSWER\r\n\r\nOK\r\n", "AT+CMEE?"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int echo = 0; echo < 2; echo++)
            late_case(cases[i].x, cases[i].answer, 5.2, 0.5, echo, cases[i].resync);

    /* ^FOTASTATE in the late answer and inside the resync's answer: delivered */
    const struct mod_rule rules[] = {
        {"AT^FOTADET", 5.2, "\r\nOK\r\n\r\n^FOTASTATE: 11\r\n"},
        {"AT+CMEE?", 0.5, "\r\n+CMEE: 2\r\n\r\n^FOTASTATE: 12,12.815.01.04.00,79114,\"x\"\r\n"
                          "\r\n^RSSI: 17\r\n\r\nOK\r\n"},
        {"AT+GMR", 0.05, "\r\nB-OWN-ANSWER\r\n\r\nOK\r\n"},
    };
    mod_setup(rules, 3, 1);
    sub("AT^FOTADET", HF_AT_EXPECT_NONE, NULL, 5);
    sub("AT+GMR", HF_AT_EXPECT_ALL, NULL, 5);
    mod_run(0, 800);
    CHECK_STR(reslog, "AT^FOTADET -> TIMEOUT NONE []\nAT+GMR -> DONE OK [B-OWN-ANSWER]\n");
    CHECK_STR(urclog, "^FOTASTATE: 11|^FOTASTATE: 12,12.815.01.04.00,79114,\"x\"|^RSSI: 17|");
    /* echoes dropped silently: only the late OK, the reply line and the OK discarded */
    CHECK(strstr(evlog, "RESYNC_START(AT+CMEE?) DISCARDED(OK) DISCARDED(+CMEE: 2) DISCARDED(OK) "
                        "RESYNC_DONE(3)") != NULL, "%s", evlog);
    CHECK_INT(at.echoes, 3);   /* X's, the resync's and B's */
    check_once();
}

/* A retry after an unanswered resync must not be completed by the first
 * resync's late answer. */
static void test_resync_retry(void)
{
    /* X answered at 7.0, the first resync (AT+CMEE?, written at 5) at 8.5,
     * after its deadline 8.0; the retry (AT+CSQ, written at 8) 0.5 s later. */
    const struct mod_rule rules[] = {
        {"AT+X", 7.0, "\r\nOK\r\n"},
        {"AT+CMEE?", 1.5, "\r\n+CMEE: 2\r\n\r\nOK\r\n"},
        {"AT+CSQ", 0.5, "\r\n+CSQ: 20,99\r\n\r\nOK\r\n"},
        {"AT+GMR", 0.05, "\r\nB-OWN-ANSWER\r\n\r\nOK\r\n"},
    };
    mod_setup(rules, 4, 0);
    x_times_out_b_answers(1500);
    CHECK(strstr(mod_written, "AT+X@0.00 AT+CMEE?@5.00 AT+CSQ@8.00 AT+GMR@9.") == mod_written,
          "%s", mod_written);
    CHECK(strstr(evlog, "RESYNC_FAILED(AT+CMEE?) RESYNC_START(AT+CSQ) ") != NULL, "%s", evlog);
    CHECK(strstr(evlog, "GAVE_UP") == NULL, "%s", evlog);
    check_once();

    /* The module does not support the first resync command (or refuses it
     * while busy): an error final never completes a resync; once X's final
     * came, it is the query's own: the next one is tried at once (issue 11.7;
     * it used to wait for the resync's timeout). */
    static const char *const refusals[] = {"\r\nCOMMAND NOT SUPPORT\r\n", "\r\nERROR\r\n",
                                           "\r\n+CME ERROR: 2\r\n"};
    for (size_t i = 0; i < 3; i++) {
        const struct mod_rule r2[] = {
            {"AT+X", 5.2, "\r\nOK\r\n"},
            {"AT+CMEE?", 0.05, refusals[i]},
            {"AT+GMR", 0.05, "\r\nB-OWN-ANSWER\r\n\r\nOK\r\n"},
        };
        mod_setup(r2, 3, 1);
        x_times_out_b_answers(1200);
        CHECK(strstr(mod_written, "AT+X@0.00 AT+CMEE?@5.00 AT+CSQ@5.25 AT+GMR@5.") == mod_written,
              "%s", mod_written);
        CHECK_INT(at.timeouts, 1);
        CHECK(strstr(evlog, "RESYNC_REFUSED(AT+CMEE?: ") != NULL, "%s", evlog);
        CHECK(strstr(evlog, "RESYNC_FALLBACK") == NULL, "%s", evlog);
        check_once();
    }

    /* Every resync query refused (issue 11.7: the port was dead for good):
     * the engine falls back to AT, says so, and B gets its own answer. The
     * next timeout on this port goes to AT at once. */
    static const char *const finals[] = {"\r\nCOMMAND NOT SUPPORT\r\n", "\r\nERROR\r\n"};
    for (size_t i = 0; i < 2; i++) {
        const struct mod_rule r4[] = {
            {"AT+X", 5.2, "\r\nOK\r\n"},
            {"AT+CMEE?", 0.05, finals[i]},
            {"AT+CSQ", 0.05, finals[i]},
            {"AT+CSCS?", 0.05, finals[i]},
            {"AT+GMR", 0.05, "\r\nB-OWN-ANSWER\r\n\r\nOK\r\n"},
            {"AT+Y", 9.0, "\r\nLATE-Y\r\n\r\nOK\r\n"},
            {"AT+GMR", 0.05, "\r\nB2\r\n\r\nOK\r\n"},
        };
        mod_setup(r4, 7, (int)i);
        x_times_out_b_answers(800);
        CHECK(strstr(mod_written, "AT+X@0.00 AT+CMEE?@5.00 AT+CSQ@5.25 AT+CSCS?@5.3") == mod_written,
              "%s", mod_written);
        CHECK(strstr(mod_written, " AT@5.3") != NULL, "%s", mod_written);
        CHECK(strstr(evlog, "RESYNC_FALLBACK(resync queries refused by the module: AT+CMEE? AT+CSQ "
                            "AT+CSC") != NULL, "%s", evlog);
        CHECK_INT(at.timeouts, 1);
        CHECK(hf_at_idle(&at), "idle");
        /* a later timeout: AT at once (none of the queries again); Y answers
         * after the AT's timeout (3 s), AT again; Y's late answer is not
         * taken for B2's (the quiet interval after the AT's two OKs) */
        clear_logs();
        mod_written[0] = '\0';
        sub("AT+Y", HF_AT_EXPECT_ALL, NULL, 5);
        sub("AT+GMR", HF_AT_EXPECT_ALL, NULL, 5);
        mod_run(801, 2500);
        CHECK_STR(reslog, "AT+Y -> TIMEOUT NONE []\nAT+GMR -> DONE OK [B2]\n");
        CHECK(strstr(mod_written, "AT+Y@8.01 AT@13.01 AT@16.01 AT+GMR@17.4") == mod_written, "%s",
              mod_written);
        CHECK(strstr(evlog, "RESYNC_FALLBACK") == NULL, "said once: %s", evlog);
        check_once();
    }

    /* A module silent through a whole round answers everything afterwards, in
     * order: the next round's resync (the command not yet used) is recognised
     * among the late replies of the first round's. */
    const struct mod_rule r3[] = {
        {"AT+X", 11.5, "\r\nOK\r\n"},
        {"AT+GMR", 0.05, "\r\nB-OWN-ANSWER\r\n\r\nOK\r\n"},
    };
    mod_setup(r3, 2, 0);
    sub("AT+X", HF_AT_EXPECT_ALL, NULL, 5);
    mod_run(0, 1110);
    CHECK(strstr(evlog, "GAVE_UP(3)") != NULL, "%s", evlog);
    sub("AT+GMR", HF_AT_EXPECT_ALL, NULL, 5);
    mod_run(1111, 1500);
    CHECK_STR(reslog, "AT+X -> TIMEOUT NONE []\nAT+GMR -> DONE OK [B-OWN-ANSWER]\n");
    CHECK(strstr(mod_written, "AT+X@0.00 AT+CMEE?@5.00 AT+CSQ@8.00 AT+CSCS?@11.11 AT+GMR@1") ==
              mod_written, "%s", mod_written);
    check_once();

    /* A first resync's late reply frees its command: after a give-up the next
     * round starts again with it. Never-answered commands stay taken; with all
     * taken the one unanswered longest is reused. */
    const struct mod_rule r4[] = {
        {"AT+X", 7.0, "\r\nOK\r\n"},
        {"AT+CMEE?", 1.5, "\r\n+CMEE: 2\r\n\r\nOK\r\n"},   /* answered at 8.5, late */
        {"AT+CSQ", -1, ""},                                 /* lost */
        {"AT+CMEE?", -1, ""},
        {"AT+CSCS?", -1, ""},
        {"AT+CSQ", -1, ""},
    };
    mod_setup(r4, 6, 0);
    sub("AT+X", HF_AT_EXPECT_ALL, NULL, 5);
    mod_run(0, 1200);
    sub("AT+GMR", HF_AT_EXPECT_ALL, NULL, 5);
    mod_run(1201, 2200);
    CHECK(strstr(mod_written, "AT+X@0.00 AT+CMEE?@5.00 AT+CSQ@8.00 AT+CMEE?@12.01 "
                              "AT+CSCS?@15.01 AT+CSQ@18.01 ") == mod_written, "%s", mod_written);
    CHECK_STR(reslog, "AT+X -> TIMEOUT NONE []\nAT+GMR -> TIMEOUT NONE []\n");
    check_once();

    /* Such a reply also proves the timed-out command answered: a command it
     * ruled out by its name is free again. */
    const struct mod_rule r5[] = {
        {"AT+CMEE?", 7.0, "\r\n+CMEE: 2\r\n\r\nOK\r\n"},
        {"AT+CSQ", 1.5, "\r\n+CSQ: 20,99\r\n\r\nOK\r\n"},   /* answered at 8.5, late */
        {"AT+CSCS?", -1, ""},                                     /* lost */
        {"AT+GMR", 0.05, "\r\nB-OWN-ANSWER\r\n\r\nOK\r\n"},
    };
    mod_setup(r5, 4, 0);
    sub("AT+CMEE?", HF_AT_EXPECT_ALL, NULL, 5);
    mod_run(0, 1200);
    sub("AT+GMR", HF_AT_EXPECT_ALL, NULL, 5);
    mod_run(1201, 1600);
    CHECK(strstr(mod_written, "AT+CMEE?@0.00 AT+CSQ@5.00 AT+CSCS?@8.00 AT+CMEE?@12.01 AT+GMR@1") ==
              mod_written, "%s", mod_written);
    CHECK_STR(reslog, "AT+CMEE? -> TIMEOUT NONE []\nAT+GMR -> DONE OK [B-OWN-ANSWER]\n");
    check_once();
}

/* Lines that look like a resync reply but are not its answer. */
static void test_resync_reply_shape(void)
{
    setup();
    sub("AT^FOO", HF_AT_EXPECT_NONE, NULL, 1);
    write_out(0, 64);
    unsigned long b = sub("AT+GMR", HF_AT_EXPECT_ALL, NULL, 5);
    hf_at_tick(&at, 1);
    write_out(1, 64);
    CHECK_WIRE("AT^FOO\rAT+CMEE?\r");
    in("\r\n+CMEE: (0-2)\r\n\r\nOK\r\n", 1.1);   /* a test form: not the reply */
    in("\r\n+CMEE:\r\n\r\nOK\r\n", 1.2);         /* no value */
    in("\r\n+CSQ: 20,99\r\n\r\nOK\r\n", 1.3);    /* another command's reply */
    in("\r\n+CMEE: 2\r\n\r\nERROR\r\n", 1.4);    /* the reply line, then not OK */
    in("\r\n+CMEE: 2\r\n\r\n^FOTASTATE: 40\r\n\r\nstray\r\n", 1.5);
    hf_at_tick(&at, 2);
    write_out(2, 64);
    CHECK_WIRE("");   /* the reply line came, its final not yet */
    in("\r\nOK\r\n", 2.1);                         /* now */
    hf_at_tick(&at, 2.1 + HF_AT_RESYNC_QUIET);
    write_out(2.5, 64);
    CHECK_WIRE("AT+GMR\r");
    in("\r\nB-OWN-ANSWER\r\n\r\nOK\r\n", 2.6);
    CHECK_STR(reslog, "AT^FOO -> TIMEOUT NONE []\nAT+GMR -> DONE OK [B-OWN-ANSWER]\n");
    CHECK_STR(urclog, "^FOTASTATE: 40|");
    CHECK_INT(per_id[b], 1);
    check_once();

    /* "+CMEE:  2" (two spaces) and "+CMEE:2" are the reply too. */
    setup();
    time_out_at("AT^FOO", 0);
    in("\r\n+CMEE:2\r\n\r\nOK\r\n", 1.1);
    hf_at_tick(&at, 1.1 + HF_AT_RESYNC_QUIET);
    CHECK(hf_at_idle(&at), "in step: %s", evlog);
    time_out_at("AT^FOO", 2);
    in("\r\n+CMEE:  1\r\n\r\nOK\r\n", 3.1);
    hf_at_tick(&at, 3.1 + HF_AT_RESYNC_QUIET);
    CHECK(hf_at_idle(&at), "in step: %s", evlog);

    /* A reply line arriving while the resync is still being written is not
     * its answer (the module has not got the CR yet). */
    setup();
    sub("AT^FOO", HF_AT_EXPECT_NONE, NULL, 1);
    write_out(0, 64);
    hf_at_tick(&at, 1);
    const char *d;
    hf_at_output(&at, &d);
    hf_at_wrote(&at, 4, 1);
    in("\r\n+CMEE: 2\r\n\r\nOK\r\n", 1.05);
    write_out(1.1, 64);
    hf_at_tick(&at, 1.1 + HF_AT_RESYNC_QUIET + 0.1);
    CHECK(!hf_at_idle(&at), "not in step: %s", evlog);
    in("\r\n+CMEE: 2\r\n\r\nOK\r\n", 1.6);
    hf_at_tick(&at, 1.6 + HF_AT_RESYNC_QUIET);
    CHECK(hf_at_idle(&at), "in step: %s", evlog);
    check_once();
}

/* ---- port loss, cancel, re-entrancy ------------------------------------- */

static void test_port_lost(void)
{
    setup();
    sub("AT^FOTADLQ", HF_AT_EXPECT_PREFIXES, "^FOTADLQ:", 10);
    write_out(0, 64);
    sub("AT+GMR", HF_AT_EXPECT_ALL, NULL, 5);
    sub("ATI", HF_AT_EXPECT_ALL, NULL, 5);
    in("\r\n^FOTADLQ: 1,\"IMAGE\",1324,1324\r\n\r\n^FOTAD", 1);
    hf_at_port_lost(&at);
    CHECK_STR(reslog, "AT^FOTADLQ -> PORTLOST NONE [^FOTADLQ: 1,\"IMAGE\",1324,1324]\n"
                      "AT+GMR -> PORTLOST NONE []\nATI -> PORTLOST NONE []\n");
    CHECK(hf_at_idle(&at), "idle");
    hf_at_port_lost(&at);   /* twice is harmless */
    /* The partial line is forgotten; the next port starts clean. */
    sub("AT", HF_AT_EXPECT_NONE, NULL, 5);
    write_out(2, 64);
    CHECK_WIRE("AT^FOTADLQ\rAT\r");
    in("LQ: 2\r\n\r\nOK\r\n", 2.1);
    CHECK_STR(urclog, "LQ: 2|");   /* not "^FOTADLQ: 2" */
    CHECK(strstr(reslog, "AT -> DONE OK []") != NULL, "%s", reslog);
    check_once();

    /* Port lost while resynchronising: the new port needs no resync. */
    setup();
    time_out_at("AT", 0);
    hf_at_port_lost(&at);
    CHECK(hf_at_idle(&at), "idle");
    CHECK(hf_at_deadline(&at) < 0, "no deadline");
    took();
    sub("ATE0", HF_AT_EXPECT_NONE, NULL, 1);
    write_out(2, 64);
    CHECK_WIRE("ATE0\r");
    in("ATE0\r\r\nOK\r\n", 2.1);
    CHECK(strstr(reslog, "ATE0 -> DONE OK []") != NULL, "%s", reslog);
    check_once();
}

static void lose_port_on_urc(const char *line, size_t len)
{
    (void)line;
    (void)len;
    hf_at_port_lost(&at);
}

static void test_port_lost_from_callback(void)
{
    setup();
    urc_hook = lose_port_on_urc;
    sub("AT+GMR", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(0, 64);
    in_chunks("\r\n^BOOT:1\r\n\r\n12.815.01.03.00\r\n\r\nOK\r\n", 36, 36, 0.1);
    CHECK_STR(urclog, "^BOOT:1|");
    CHECK_STR(reslog, "AT+GMR -> PORTLOST NONE []\n");
    check_once();
}

static void feed_again(const char *line, size_t len)
{
    (void)line;
    (void)len;
    hf_at_input(&at, "\r\nOK\r\n", 6, 0.2);   /* misuse: must be ignored */
}

static void test_nested_input_ignored(void)
{
    setup();
    urc_hook = feed_again;
    sub("AT+GMR", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(0, 64);
    in("\r\n^RSSI: 9\r\n\r\n12.815.01.03.00\r\n\r\nOK\r\n", 0.1);
    CHECK_STR(urclog, "^RSSI: 9|");
    CHECK_STR(reslog, "AT+GMR -> DONE OK [12.815.01.03.00]\n");
    check_once();
}

/* Timeouts separated by an answered resync are not "in a row": commands that
 * time out one after another each get TIMEOUT, the queue is not failed. */
static void test_timeouts_not_in_a_row(void)
{
    setup();
    sub("AT+A", HF_AT_EXPECT_NONE, NULL, 1);
    write_out(0, 64);
    sub("AT+B", HF_AT_EXPECT_NONE, NULL, 1);
    hf_at_tick(&at, 1);                              /* 1: AT+A */
    write_out(1, 64);
    hf_at_tick(&at, 1 + HF_AT_RESYNC_TIMEOUT);       /* 2: resync AT */
    write_out(5, 64);
    in("\r\n+CSQ: 20,99\r\n\r\nOK\r\n", 5.1);     /* answered: count back to 0 */
    hf_at_tick(&at, 6);
    write_out(6, 64);
    CHECK_WIRE("AT+A\rAT+CMEE?\rAT+CSQ\rAT+B\r");
    CHECK_INT(at.consecutive_timeouts, 0);
    sub("AT+C", HF_AT_EXPECT_NONE, NULL, 1);
    sub("AT+D", HF_AT_EXPECT_NONE, NULL, 1);
    hf_at_tick(&at, 7);                              /* 1: AT+B */
    write_out(7, 64);
    hf_at_tick(&at, 7 + HF_AT_RESYNC_TIMEOUT);       /* 2 */
    CHECK_STR(reslog, "AT+A -> TIMEOUT NONE []\nAT+B -> TIMEOUT NONE []\n");
    write_out(11, 64);
    in("\r\n+CSQ: 20,99\r\n\r\nOK\r\n", 11.1);
    hf_at_tick(&at, 12);
    write_out(12, 64);
    CHECK_WIRE("AT+CMEE?\rAT+CSQ\rAT+C\r");   /* in step again: the choice starts over */
    hf_at_tick(&at, 13);                             /* 1: AT+C, D still queued */
    CHECK_STR(reslog, "AT+A -> TIMEOUT NONE []\nAT+B -> TIMEOUT NONE []\n"
                      "AT+C -> TIMEOUT NONE []\n");
    CHECK_INT(at.count, 1);
    CHECK(strstr(evlog, "GAVE_UP") == NULL, "%s", evlog);
    hf_at_port_lost(&at);
    check_once();
}

static void remove_on_urc(const char *line, size_t len)
{
    (void)line;
    (void)len;
    hf_at_urc_prefix_remove(&at, "+CUSD:");
}

/* Removing a prefix from inside the URC it matched is safe; the next such line
 * is then response. */
static void test_remove_prefix_in_urc(void)
{
    setup();
    urc_hook = remove_on_urc;
    hf_at_urc_prefix_add(&at, "+X:");
    hf_at_urc_prefix_add(&at, "+CUSD:");
    hf_at_urc_prefix_add(&at, "+Y:");
    sub("ATI", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(0, 64);
    in("\r\n+CUSD: 0\r\n\r\n+CUSD: 1\r\n\r\n+Y: 2\r\n\r\nOK\r\n", 0.1);
    CHECK_STR(urclog, "+CUSD: 0|+Y: 2|");
    CHECK_STR(reslog, "ATI -> DONE OK [+CUSD: 1]\n");
    CHECK_INT(at.n_urc_prefixes, 3);
    check_once();
}

/* Registrations are counted, and the engine knows no FOTA code of its own: an
 * unregistered ^FOTASTATE: inside a command that takes all lines is response,
 * a registered one unsolicited until its last registration is removed. */
static void test_urc_registration(void)
{
    setup();
    CHECK_INT(hf_at_urc_prefix_remove(&at, "^FOTASTATE:"), 0);
    CHECK_INT(hf_at_urc_prefix_remove(&at, "^FOTASTATE:"), -1);
    sub("AT+GMR", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(0, 64);
    in("\r\n^FOTASTATE: 10\r\n\r\n12.815.01.03.00\r\n\r\nOK\r\n", 0.1);
    CHECK_STR(urclog, "");
    CHECK_STR(reslog, "AT+GMR -> DONE OK [^FOTASTATE: 10;12.815.01.03.00]\n");

    /* two subscribers: the first one leaving does not unroute the other's */
    setup();
    const char *longp = "+A_PREFIX_LONGER_THAN_A_COMMAND_PREFIX_SLOT:";
    CHECK_INT(hf_at_urc_prefix_add(&at, longp), 0);
    CHECK_INT(hf_at_urc_prefix_add(&at, longp), 0);
    CHECK_INT(hf_at_urc_prefix_remove(&at, longp), 0);
    sub("ATI", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(0, 64);
    in("\r\n+A_PREFIX_LONGER_THAN_A_COMMAND_PREFIX_SLOT: 1\r\n\r\nHuawei\r\n\r\nOK\r\n", 0.1);
    CHECK_INT(hf_at_urc_prefix_remove(&at, longp), 0);
    CHECK_INT(hf_at_urc_prefix_remove(&at, longp), -1);
    sub("ATI", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(0.2, 64);
    in("\r\n+A_PREFIX_LONGER_THAN_A_COMMAND_PREFIX_SLOT: 2\r\n\r\nOK\r\n", 0.3);
    CHECK_STR(urclog, "+A_PREFIX_LONGER_THAN_A_COMMAND_PREFIX_SLOT: 1|");
    CHECK_STR(reslog, "ATI -> DONE OK [Huawei]\n"
                      "ATI -> DONE OK [+A_PREFIX_LONGER_THAN_A_COMMAND_PREFIX_SLOT: 2]\n");
    /* counts survive a removal that moves the last entry into the hole */
    setup();
    hf_at_urc_prefix_add(&at, "+X:");
    hf_at_urc_prefix_add(&at, "+Y:");
    hf_at_urc_prefix_add(&at, "+Y:");
    CHECK_INT(hf_at_urc_prefix_remove(&at, "^FOTASTATE:"), 0);   /* +Y: moves to slot 0 */
    CHECK_INT(hf_at_urc_prefix_remove(&at, "+Y:"), 0);
    CHECK_INT(at.n_urc_prefixes, 2);
    CHECK_INT(hf_at_urc_prefix_remove(&at, "+Y:"), 0);
    CHECK_INT(at.n_urc_prefixes, 1);
    check_once();
}


/* The URC filter (a bit per hash of a prefix's first two bytes) never hides a
 * registered prefix: one byte long (filtering off), sharing a hash bucket with
 * another, or still registered after another sharing its bit is removed. */
static void test_urc_filter(void)
{
    setup();
    CHECK_INT(hf_at_urc_prefix_add(&at, "#"), 0);      /* 1 byte: the filter cannot hold it */
    sub("ATI", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(0, 64);
    in("\r\n#1\r\n\r\n#\r\n\r\nX\r\n\r\nOK\r\n", 0.1);
    CHECK_STR(urclog, "#1|#|");
    CHECK_STR(reslog, "ATI -> DONE OK [X]\n");
    CHECK_INT(hf_at_urc_prefix_remove(&at, "#"), 0);
    CHECK_INT(at.urc_pairs_off, 0);
    sub("ATI", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(0.2, 64);
    in("\r\n#1\r\n\r\nOK\r\n", 0.3);
    CHECK_STR(urclog, "#1|#|");
    /* Two prefixes in one bucket (the same hash as at_engine.c's pair_hash,
     * searched for among printable pairs): removing one keeps the other's bit. */
    char a[4] = "+A:", b[4] = {0};
    unsigned ha = ((unsigned char)a[0] * 7u + (unsigned char)a[1]) & 0xffu;
    for (int c0 = '!'; c0 <= '~' && !b[0]; c0++)
        for (int c1 = '!'; c1 <= '~'; c1++)
            if ((c0 != a[0] || c1 != a[1]) && (((unsigned)c0 * 7u + (unsigned)c1) & 0xffu) == ha) {
                b[0] = (char)c0, b[1] = (char)c1, b[2] = ':';
                break;
            }
    REQUIRE(b[0] != 0, "a colliding pair exists");
    setup();
    CHECK_INT(hf_at_urc_prefix_add(&at, a), 0);
    CHECK_INT(hf_at_urc_prefix_add(&at, b), 0);
    CHECK_INT(hf_at_urc_prefix_remove(&at, a), 0);     /* b's bit must stay */
    sub("ATI", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(0, 64);
    char reply[64];
    snprintf(reply, sizeof reply, "\r\n%s 1\r\n\r\n%s 2\r\n\r\nOK\r\n", b, a);
    in(reply, 0.1);
    char want_urc[16], want_res[32];
    snprintf(want_urc, sizeof want_urc, "%s 1|", b);
    snprintf(want_res, sizeof want_res, "ATI -> DONE OK [%s 2]\n", a);
    CHECK_STR(urclog, want_urc);
    CHECK_STR(reslog, want_res);
    check_once();
}

static void test_cancel(void)
{
    setup();
    sub("AT+GMR", HF_AT_EXPECT_ALL, NULL, 5);
    const char *d;
    hf_at_output(&at, &d);
    hf_at_wrote(&at, 2, 0);   /* partly written: stays */
    sub("ATI", HF_AT_EXPECT_ALL, NULL, 5);
    sub("AT+CSQ", HF_AT_EXPECT_ALL, NULL, 5);
    sub("AT+CREG?", HF_AT_EXPECT_ALL, NULL, 5);
    hf_at_cancel_queued(&at);
    CHECK_STR(reslog, "ATI -> CANCELLED NONE []\nAT+CSQ -> CANCELLED NONE []\n"
                      "AT+CREG? -> CANCELLED NONE []\n");
    write_out(0.1, 64);
    CHECK_WIRE("+GMR\r");
    in("\r\n12.815.01.03.00\r\n\r\nOK\r\n", 0.2);
    CHECK(strstr(reslog, "AT+GMR -> DONE OK [12.815.01.03.00]\n") != NULL, "%s", reslog);
    /* Nothing started: everything is cancelled. */
    sub("ATI", HF_AT_EXPECT_ALL, NULL, 5);
    sub("ATI", HF_AT_EXPECT_ALL, NULL, 5);
    hf_at_cancel_queued(&at);
    CHECK(hf_at_idle(&at), "idle");
    check_once();
}

/* on_result submits the next command, into the slot just freed. */
static int chain_left;
static void chain_submit(const hf_at_result *r)
{
    char before[HF_AT_CMD_MAX + 1];
    snprintf(before, sizeof before, "%s", r->command);
    if (chain_left > 0) {
        chain_left--;
        sub("AT+CHAINED", HF_AT_EXPECT_NONE, NULL, 5);
    }
    CHECK_STR(r->command, before);   /* our view unchanged by the submit */
}

static void test_reentrant_submit(void)
{
    setup();
    result_hook = chain_submit;
    chain_left = 3;
    for (int i = 0; i < HF_AT_QUEUE_MAX; i++)
        sub("AT+FILL", HF_AT_EXPECT_NONE, NULL, 5);
    write_out(0, 64);
    in("\r\nOK\r\n", 0.1);   /* frees a slot; the callback refills it */
    CHECK_INT(at.count, HF_AT_QUEUE_MAX);
    for (int i = 0; i < HF_AT_QUEUE_MAX + 3; i++) {
        write_out(1 + i, 64);
        in("\r\nOK\r\n", 1.1 + i);
    }
    CHECK(hf_at_idle(&at), "idle, count %zu", at.count);
    CHECK_INT(chain_left, 0);
    CHECK(strstr(reslog, "AT+CHAINED -> DONE OK") != NULL, "%s", reslog);
    check_once();

    /* A callback that resubmits on port loss cannot loop: its command waits
     * for the next port. */
    setup();
    result_hook = chain_submit;
    chain_left = 100;
    sub("AT", HF_AT_EXPECT_NONE, NULL, 5);
    sub("AT", HF_AT_EXPECT_NONE, NULL, 5);
    hf_at_port_lost(&at);
    CHECK_INT(chain_left, 98);
    CHECK_INT(at.count, 2);
    result_hook = NULL;
    hf_at_cancel_queued(&at);
    check_once();
}

/* A port just opened: a previous process's command may still be answered
 * (issue 11.6: its "+CSQ: 21,99 / OK" was taken for AT+GMR's answer). With
 * hf_at_require_sync the first command waits for a resync, exactly as after a
 * timeout; stale lines are discarded. */
static void test_sync_at_open(void)
{
    setup();
    hf_at_require_sync(&at);
    CHECK(hf_at_idle(&at), "nothing to do before a command");
    unsigned long b = sub("AT+GMR", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(0, 64);
    CHECK_WIRE("AT+CMEE?\r");
    in("\r\n+CSQ: 21,99\r\n\r\nOK\r\n", 0.5);   /* the stale answer */
    CHECK_STR(reslog, "");
    in("AT+CMEE?\r\r\n+CMEE: 2\r\n\r\nOK\r\n", 0.6);
    write_out(0.6, 64);
    CHECK_WIRE("");
    hf_at_tick(&at, 0.6 + HF_AT_RESYNC_QUIET);
    write_out(0.6 + HF_AT_RESYNC_QUIET, 64);
    CHECK_WIRE("AT+GMR\r");
    in("\r\n12.815.01.03.00\r\n\r\nOK\r\n", 1.0);
    CHECK_STR(reslog, "AT+GMR -> DONE OK [12.815.01.03.00]\n");
    CHECK_INT(per_id[b], 1);
    CHECK(strstr(evlog, "RESYNC_START(AT+CMEE?) DISCARDED(+CSQ: 21,99) DISCARDED(OK) ") == evlog,
          "%s", evlog);
    CHECK(hf_at_idle(&at), "idle");
    /* in step now: the next command goes out at once */
    sub("AT", HF_AT_EXPECT_NONE, NULL, 5);
    write_out(1.1, 64);
    CHECK_WIRE("AT\r");
    in("\r\nOK\r\n", 1.2);
    /* after a port loss (a reopen), the owner asks again */
    hf_at_port_lost(&at);
    hf_at_require_sync(&at);
    sub("ATI", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(2, 64);
    CHECK_WIRE("AT+CMEE?\r");
    hf_at_port_lost(&at);
    check_once();
}

/* ---- limits -------------------------------------------------------------- */

static char big[20000];

static void test_overflow(void)
{
    setup();
    /* A 1400-byte ^FOTASTATE: 12 answer, and the same as a URC, pass whole. */
    size_t n = (size_t)snprintf(big, sizeof big, "\r\n^FOTASTATE: 12,12.815.01.04.00,79114,\"");
    while (n < 1401)
        big[n++] = 'd';
    memcpy(big + n, "\"\r\n\r\nOK\r\n", 10);
    sub("AT^FOTASTATE?", HF_AT_EXPECT_PREFIXES, "^FOTASTATE:", 5);
    write_out(0, 64);
    in_chunks(big, strlen(big), 5, 0.1);
    in_chunks(big, n + 3, 7, 0.2);
    CHECK_STR(reslog, "AT^FOTASTATE? -> DONE OK [<1400 bytes>]\n");
    CHECK_STR(urclog, "<1400 bytes>|");

    /* An over-long line inside a response: dropped, counted, reported; the
     * command goes on and gets its own answer (issue 12.7: it used to fail
     * as OVERFLOW, read as "the module refused AT+CGSN"). */
    clear_logs();
    sub("AT+GMR", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(1, 64);
    memset(big, 'x', HF_AT_LINE_MAX + 100);
    static const char tail[] = "\r\n12.815.01.03.00\r\n\r\nOK\r\n";
    memcpy(big + HF_AT_LINE_MAX + 100, tail, sizeof tail);
    in_chunks(big, strlen(big), 8, 1.1);
    char want[64];
    snprintf(want, sizeof want, "OVERFLOW(%d) ", HF_AT_LINE_MAX + 100);
    CHECK_STR(evlog, want);
    CHECK_STR(reslog, "AT+GMR -> DONE OK [12.815.01.03.00]\n");
    CHECK_INT(at.overflows, 1);
    in_chunks(big, HF_AT_LINE_MAX + 2, 4096, 1.2);   /* while idle: only counted */
    in("\r\n", 1.2);
    CHECK_INT(at.overflows, 2);
    CHECK_STR(urclog, "");

    /* A 10 MB flood without a line end while AT+CGSN waits: one dropped
     * line, no verdict; the answer after it completes the command. */
    clear_logs();
    sub("AT+CGSN", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(1.5, 64);
    memset(big, 'n', sizeof big);
    for (int i = 0; i < 500; i++)   /* 500 * 20000 bytes */
        hf_at_input(&at, big, sizeof big, 1.6);
    CHECK_STR(reslog, "");
    in("\r\n867530900000009\r\n\r\nOK\r\n", 1.7);
    CHECK_STR(reslog, "AT+CGSN -> DONE OK [867530900000009]\n");
    snprintf(want, sizeof want, "OVERFLOW(%d) ", 500 * 20000);
    CHECK_STR(evlog, want);
    CHECK_INT(at.overflows, 3);
    /* The same flood swallowing the final: the command times out honestly. */
    clear_logs();
    sub("AT+CGSN", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(1.8, 64);
    for (int i = 0; i < 500; i++)
        hf_at_input(&at, big, sizeof big, 1.9);
    in("OK\r\n", 1.9);
    hf_at_tick(&at, 6.8);
    CHECK(strstr(reslog, "AT+CGSN -> TIMEOUT NONE []\n") == reslog, "%s", reslog);
    hf_at_port_lost(&at);

    /* More than HF_AT_RESP_LINES lines: the first ones are kept. */
    clear_logs();
    sub("AT+COPS=?", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(2, 64);
    for (int i = 0; i < HF_AT_RESP_LINES + 5; i++) {
        char line[32];
        snprintf(line, sizeof line, "\r\nline %d\r\n", i);
        in(line, 2.1);
    }
    in("\r\nOK\r\n", 2.2);
    CHECK(strstr(reslog, "AT+COPS=? -> OVERFLOW OK [line 0;line 1;") == reslog, "%s", reslog);
    CHECK(strstr(reslog, ";line 63]") != NULL, "last kept line 63: %s", reslog);

    /* More than HF_AT_RESP_BYTES bytes: the arena holds two lines of the
     * longest length (each costs its bytes + 3), never a third. */
    clear_logs();
    sub("AT+BIG", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(3, 64);
    memset(big, 'b', HF_AT_LINE_MAX - 1);
    memcpy(big + HF_AT_LINE_MAX - 1, "\r\n", 3);
    for (int i = 0; i < 4; i++)
        in_chunks(big, HF_AT_LINE_MAX + 1, 1000, 3.1);
    in("OK\r\n", 3.2);
    char want_big[128];
    snprintf(want_big, sizeof want_big, "AT+BIG -> OVERFLOW OK [<%d bytes>;<%d bytes>]\n",
             HF_AT_LINE_MAX - 1, HF_AT_LINE_MAX - 1);
    CHECK_STR(reslog, want_big);
    /* Lines of mixed lengths keep their own lengths and bytes in the arena. */
    clear_logs();
    sub("AT+MIX", HF_AT_EXPECT_ALL, NULL, 5);
    write_out(4, 64);
    in("\r\na\r\n\r\nbcd\r\n", 4.1);
    in_chunks(big, HF_AT_LINE_MAX + 1, 1000, 4.1);
    in("\r\n\r\nef\r\nOK\r\n", 4.2);
    snprintf(want_big, sizeof want_big, "AT+MIX -> DONE OK [a;bcd;<%d bytes>;ef]\n",
             HF_AT_LINE_MAX - 1);
    CHECK_STR(reslog, want_big);
    check_once();
}

/* ---- the seed's FOTA command log, echo on, tiny chunks ------------------- */

static void test_seed_transcript(void)
{
    static const struct {
        const char *cmd;
        hf_at_expect ex;
        const char *prefix;
        const char *reply;   /* what the module sends once the command is written */
    } steps[] = {
        {"AT+GMR", HF_AT_EXPECT_ALL, NULL, "AT+GMR\r\r\n12.815.01.03.00\r\n\r\nOK\r\n"},
        {"AT^FOTACFG=\"1234\",\"\",\"\",2", HF_AT_EXPECT_NONE, NULL,
         "AT^FOTACFG=\"1234\",\"\",\"\",2\r\r\nOK\r\n"},
        {"AT^FOTAMODE=0,0,1,1", HF_AT_EXPECT_NONE, NULL, "AT^FOTAMODE=0,0,1,1\r\r\nOK\r\n"},
        {"AT^FOTASTATE?", HF_AT_EXPECT_PREFIXES, "^FOTASTATE:",
         "AT^FOTASTATE?\r\r\n^FOTASTATE: 10\r\n\r\nOK\r\n"},
        {"AT^FOTADET", HF_AT_EXPECT_NONE, NULL,
         "AT^FOTADET\r\r\nOK\r\n\r\n^FOTASTATE: 11\r\r\n"
         "\r\n^FOTASTATE: 12,12.815.01.04.00,79114,\"Support send SMS background\"\r\r\n"},
        {"AT^FOTADL=1", HF_AT_EXPECT_NONE, NULL,
         "AT^FOTADL=1\r\r\nOK\r\n\r\n^FOTASTATE: 30\r\r\n"},
        {"AT^FOTADLQ", HF_AT_EXPECT_PREFIXES, "^FOTADLQ:",
         "AT^FOTADLQ\r\r\n^FOTADLQ: 1,\"IMAGE\",1324,1324\r\n"
         "\r\n^FOTADLQ: 2,\"XNV\",47104,77778\r\n\r\nOK\r\n"
         "\r\n^FOTASTATE: 40\r\r\n\r\n^FOTASTATE: 50\r\r\n"
         "\r\n^BOOT:20312345,0,0,0,6\r\n\r\n^SIMST: 1\r\n\r\n^FOTASTATE: 90\r\r\n"},
        {"AT+GMR", HF_AT_EXPECT_ALL, NULL, "AT+GMR\r\r\n12.815.01.04.00\r\n\r\nOK\r\n"},
    };
    static const size_t chunk_sizes[] = {1, 2, 3, 5, 8};
    for (size_t c = 0; c < sizeof chunk_sizes / sizeof chunk_sizes[0]; c++) {
        setup();
        double now = 0;
        for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
            sub(steps[i].cmd, steps[i].ex, steps[i].prefix, 30);
            write_out(now, chunk_sizes[c]);
            char want[600];
            snprintf(want, sizeof want, "%s\r", steps[i].cmd);
            CHECK_WIRE(want);
            in_chunks(steps[i].reply, strlen(steps[i].reply), chunk_sizes[c], now + 0.5);
            now += 1;
            hf_at_tick(&at, now);
        }
        CHECK_STR(reslog,
                  "AT+GMR -> DONE OK [12.815.01.03.00]\n"
                  "AT^FOTACFG=\"1234\",\"\",\"\",2 -> DONE OK []\n"
                  "AT^FOTAMODE=0,0,1,1 -> DONE OK []\n"
                  "AT^FOTASTATE? -> DONE OK [^FOTASTATE: 10]\n"
                  "AT^FOTADET -> DONE OK []\n"
                  "AT^FOTADL=1 -> DONE OK []\n"
                  "AT^FOTADLQ -> DONE OK [^FOTADLQ: 1,\"IMAGE\",1324,1324;"
                  "^FOTADLQ: 2,\"XNV\",47104,77778]\n"
                  "AT+GMR -> DONE OK [12.815.01.04.00]\n");
        CHECK_STR(urclog, "^FOTASTATE: 11|"
                          "^FOTASTATE: 12,12.815.01.04.00,79114,\"Support send SMS background\"|"
                          "^FOTASTATE: 30|^FOTASTATE: 40|^FOTASTATE: 50|"
                          "^BOOT:20312345,0,0,0,6|^SIMST: 1|^FOTASTATE: 90|");
        CHECK_STR(evlog, "");
        CHECK_INT(at.echoes, 8);
        CHECK(hf_at_idle(&at), "idle at the end");
        check_once();
    }
}

int main(void)
{
    CHECK_SUITE("at_engine");
    test_echo_on_off();
    test_urcs_around_response();
    test_prefix_modes();
    test_errors();
    test_submit_refusals();
    test_queue_text();
    test_timeout_late_answer();
    test_resync_failures();
    test_resync_reply_delays();
    test_resync_late_answers();
    test_resync_retry();
    test_resync_reply_shape();
    test_port_lost();
    test_port_lost_from_callback();
    test_cancel();
    test_remove_prefix_in_urc();
    test_urc_registration();
    test_urc_filter();
    test_nested_input_ignored();
    test_timeouts_not_in_a_row();
    test_reentrant_submit();
    test_overflow();
    test_sync_at_open();
    test_seed_transcript();
    return CHECK_END();
}
