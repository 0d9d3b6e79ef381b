/*
 * bench_parse.c — `make bench` row B1 (parsing): a generated module transcript
 * fed through the AT engine (csrc/at_engine.h) with commands in flight, in
 * chunks of a given size, the way the Lua port feeds what read() returned.
 *
 *   bench_parse dump FILE           write the transcript (one pass) to FILE
 *                                   (the Lua peer, spec/bench/lua_classifier.lua,
 *                                   reads it: both parse the same bytes)
 *   bench_parse run CHUNK PASSES    one warm-up pass, then PASSES passes; prints
 *                                   "bytes=.. lines=.. seconds=.. allocs=.."
 *
 * Only the measured passes run with callgrind's instrumentation on
 * (CALLGRIND_START/STOP_INSTRUMENTATION; run under valgrind with
 * --instr-atstart=no): instructions/byte count the engine's whole per-exchange
 * work (submit, output/wrote, input with routing and completion), nothing of
 * the transcript generation or the warm-up.
 *
 * Heap allocations are counted by defining malloc/calloc/realloc here (they
 * forward to glibc's __libc_* entry points): every allocation in the process,
 * the engine's and libc's on its behalf, goes through them.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <valgrind/callgrind.h>

#include "at_engine.h"

/* ---- allocation counter -------------------------------------------------- */

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static unsigned long n_allocs;   /* bench program only: the counter must be global */

void *malloc(size_t n) { n_allocs++; return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { n_allocs++; return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { n_allocs++; return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }

/* ---- the transcript ------------------------------------------------------ */

/* One exchange: a command, how its answer is routed, and the module's bytes
 * (echo, URCs inside the response, odd line ends, a final of every kind). */
typedef struct {
    const char *cmd;
    hf_at_expect expect;
    const char *prefix;      /* NULL: none */
    const char *reply;       /* NULL: the 1.3 KB ^FOTASTATE: 12 line (built below) */
} exchange;

static const exchange script[] = {
    {"AT^FOTASTATE?", HF_AT_EXPECT_ALL, NULL, NULL},
    {"AT+CSQ", HF_AT_EXPECT_PREFIXES, "+CSQ:",
     "AT+CSQ\r\r\n^RSSI: 17\r\n\r\n+CSQ: 17,99\r\n\r\nOK\r\n"},
    {"AT+GMR", HF_AT_EXPECT_ALL, NULL,
     "AT+GMR\r\r\n11.608.13.02.00\r\n\r\n^HCSQ: \"LTE\",50,42,130,20\r\n\r\nOK\r\n"},
    {"ATI", HF_AT_EXPECT_ALL, NULL,
     "ATI\r\r\nManufacturer: Huawei Technologies Co., Ltd.\r\nModel: MU609\r\n"
     "Revision: 12.105.29.00.00\r\nIMEI: 860000000000001\r\n+GCAP: +CGSM,+DS,+ES\r\n\r\nOK\r\n"},
    {"AT+CREG?", HF_AT_EXPECT_ALL, NULL,
     "AT+CREG?\r\r\n^MODE: 5,4\r\n\r\n+CREG: 0,1\r\n\r\nOK\r\n"},
    {"AT+CPIN?", HF_AT_EXPECT_PREFIXES, "+CPIN:", "AT+CPIN?\r\r\n+CME ERROR: 10\r\n"},
    {"AT+CMGS=1", HF_AT_EXPECT_NONE, NULL, "AT+CMGS=1\r\r\n+CMS ERROR: 500\r\n"},
    {"AT^FOTADET", HF_AT_EXPECT_NONE, NULL,
     "AT^FOTADET\r\r\n^SRVST: 2\r\n\r\nCOMMAND NOT SUPPORT\r\n"},
    {"AT^FOTAMODE=0,0,0,0,0", HF_AT_EXPECT_NONE, NULL,
     "AT^FOTAMODE=0,0,0,0,0\r\r\nTOO MANY PARAMETERS\r\n"},
    {"AT+BOGUS", HF_AT_EXPECT_ALL, NULL, "AT+BOGUS\r\r\nERROR\r\n"},
    {"ATD*99#", HF_AT_EXPECT_NONE, NULL, "ATD*99#\r\r\nNO CARRIER\r\n"},
    {"ATD123;", HF_AT_EXPECT_NONE, NULL, "ATD123;\r\r\nBUSY\r\n"},
    {"ATD124;", HF_AT_EXPECT_NONE, NULL, "ATD124;\r\r\nNO ANSWER\r\n"},
    {"ATD125;", HF_AT_EXPECT_NONE, NULL, "\r\n^DSFLOWRPT: 0,0,0,0,0,0,0\r\nATD125;\r\r\nNO DIALTONE\r\n"},
    {"AT^FOTACFG?", HF_AT_EXPECT_PREFIXES, "^FOTACFG:",
     "AT^FOTACFG?\r\r\n^FOTACFG: \"apn\",\"user\",\"pass\",1\r\n\r\n+CMTI: \"SM\",3\r\n\r\nOK\r\n"},
};
#define N_SCRIPT (sizeof script / sizeof script[0])

#define FOTA_LINE_LEN 1300

/* The transcript of one pass: every exchange's reply, back to back; off[i] is
 * where exchange i starts (off[N_SCRIPT] the end). */
static char pass_buf[8192];
static size_t pass_len, off[N_SCRIPT + 1];

static void put(const char *s, size_t n)
{
    if (pass_len + n > sizeof pass_buf) {
        fprintf(stderr, "bench_parse: transcript larger than %zu bytes\n", sizeof pass_buf);
        exit(2);
    }
    memcpy(pass_buf + pass_len, s, n);
    pass_len += n;
}

static void build_pass(void)
{
    for (size_t i = 0; i < N_SCRIPT; i++) {
        off[i] = pass_len;
        if (script[i].reply) {
            put(script[i].reply, strlen(script[i].reply));
            continue;
        }
        /* AT^FOTASTATE? answered with state 12 and a long description (the
         * firmware's release notes), a URC in the middle of the response. */
        const char *head = "AT^FOTASTATE?\r\r\n^FOTASTATE: 12,\"";
        put(head, strlen(head));
        size_t body = FOTA_LINE_LEN - strlen("^FOTASTATE: 12,\"\"");
        for (size_t k = 0; k < body; k++)
            put(&"Release notes: modem stability fixes. "[k % 38], 1);
        put("\"\r\n\r\n^RSSI: 20\r\n\r\nOK\r\n", 22);
    }
    off[N_SCRIPT] = pass_len;
}

static unsigned long count_lines(const char *s, size_t n)
{
    unsigned long lines = 0;
    int in_line = 0;
    for (size_t i = 0; i < n; i++) {
        int end = s[i] == '\r' || s[i] == '\n';
        if (!end && !in_line)
            lines++;
        in_line = !end;
    }
    return lines;
}

/* ---- driving the engine -------------------------------------------------- */

typedef struct {
    unsigned long results, urcs, bad;
} tally;

static void on_result(void *ud, const hf_at_result *r)
{
    tally *t = ud;
    t->results++;
    if (r->status != HF_AT_STATUS_DONE)
        t->bad++;
}

static void on_urc(void *ud, const char *line, size_t len)
{
    (void)line;
    (void)len;
    ((tally *)ud)->urcs++;
}

/* One pass: for each exchange, submit its command, write it, then feed its
 * reply in chunks of `chunk` bytes. */
static void run_pass(hf_at *at, size_t chunk, double *clock)
{
    for (size_t i = 0; i < N_SCRIPT; i++) {
        const exchange *e = &script[i];
        const char *pre[1] = {e->prefix};
        hf_error err;
        unsigned long id;
        if (hf_at_submit(at, e->cmd, strlen(e->cmd), e->expect, pre, e->prefix ? 1 : 0, 10.0,
                         &id, &err) != 0) {
            fprintf(stderr, "bench_parse: submit %s failed: %s\n", e->cmd, err.msg);
            exit(2);
        }
        const char *out;
        size_t n = hf_at_output(at, &out);
        hf_at_wrote(at, n, *clock);
        for (size_t p = off[i]; p < off[i + 1]; p += chunk) {
            size_t k = off[i + 1] - p < chunk ? off[i + 1] - p : chunk;
            hf_at_input(at, pass_buf + p, k, *clock);
        }
        *clock += 0.001;
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static hf_at engine;   /* ~60 KB: static rather than on the stack */

int main(int argc, char **argv)
{
    build_pass();
    if (argc == 3 && strcmp(argv[1], "dump") == 0) {
        FILE *f = fopen(argv[2], "wb");
        if (!f || fwrite(pass_buf, 1, pass_len, f) != pass_len || fclose(f) != 0) {
            perror(argv[2]);
            return 2;
        }
        return 0;
    }
    if (argc != 4 || strcmp(argv[1], "run") != 0) {
        fprintf(stderr, "usage: bench_parse dump FILE | run CHUNK PASSES\n");
        return 2;
    }
    size_t chunk = strtoul(argv[2], NULL, 10);
    unsigned long passes = strtoul(argv[3], NULL, 10);
    if (chunk == 0) {
        fprintf(stderr, "bench_parse: CHUNK must be > 0\n");
        return 2;
    }
    tally t = {0, 0, 0};
    hf_at_callbacks cb = {on_result, on_urc, NULL};
    hf_at_init(&engine, &cb, &t);
    if (hf_at_urc_prefix_add(&engine, "^FOTASTATE:") != 0)
        return 2;
    double clock = 1.0;
    run_pass(&engine, chunk, &clock);   /* warm-up: caches, lazy binding, first-use paths */
    unsigned long results0 = t.results, urcs0 = t.urcs, allocs0 = n_allocs;

    double t0 = now_s();
    CALLGRIND_START_INSTRUMENTATION;
    for (unsigned long k = 0; k < passes; k++)
        run_pass(&engine, chunk, &clock);
    CALLGRIND_STOP_INSTRUMENTATION;
    double secs = now_s() - t0;
    unsigned long allocs = n_allocs - allocs0;

    unsigned long want_results = passes * N_SCRIPT;
    if (t.bad || t.results - results0 != want_results) {
        fprintf(stderr, "bench_parse: %lu results (%lu not DONE), expected %lu\n",
                t.results - results0, t.bad, want_results);
        return 1;
    }
    printf("bytes=%lu lines=%lu results=%lu urcs=%lu seconds=%.6f allocs=%lu\n",
           (unsigned long)pass_len * passes, count_lines(pass_buf, pass_len) * passes,
           t.results - results0, t.urcs - urcs0, secs, allocs);
    return 0;
}
