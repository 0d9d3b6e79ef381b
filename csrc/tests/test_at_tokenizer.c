/* test_at_tokenizer.c — the tokenizer gives the same lines for every split of a
 * stream, handles every line ending, and drops over-long lines whole. */
#include <stdio.h>
#include <string.h>

#include "at_tokenizer.h"
#include "check.h"

/* Lines recorded as "L<len>:<bytes>|" or "O<len>|" so lists compare with memcmp. */
typedef struct {
    char buf[1 << 16];
    size_t used;
    size_t nlines, noverflows;
    const char *lo, *hi;    /* the bytes fed */
    size_t inplace;         /* lines passed as a pointer into them (no copy) */
} rec;

static void rec_cb(void *ud, hf_tok_kind kind, const char *line, size_t len)
{
    rec *r = ud;
    char head[40];
    int k = snprintf(head, sizeof head, "%c%zu%s", kind == HF_TOK_LINE ? 'L' : 'O', len,
                     kind == HF_TOK_LINE ? ":" : "|");
    size_t need = (size_t)k + (kind == HF_TOK_LINE ? len + 1 : 0);
    if (r->used + need > sizeof r->buf)
        return;
    memcpy(r->buf + r->used, head, (size_t)k);
    r->used += (size_t)k;
    if (kind == HF_TOK_LINE) {
        memcpy(r->buf + r->used, line, len);
        r->used += len;
        r->buf[r->used++] = '|';
        r->nlines++;
        if (line >= r->lo && line + len <= r->hi)
            r->inplace++;
    } else {
        r->noverflows++;
    }
}

static rec whole, part;

static void feed_chunks(rec *r, const char *s, size_t n, size_t chunk)
{
    hf_tok t;
    hf_tok_init(&t);
    memset(r, 0, sizeof *r);
    r->lo = s;
    r->hi = s + n;
    for (size_t i = 0; i < n; i += chunk)
        hf_tok_feed(&t, s + i, n - i < chunk ? n - i : chunk, rec_cb, r);
}

static void feed_split(rec *r, const char *s, size_t n, size_t at)
{
    hf_tok t;
    hf_tok_init(&t);
    memset(r, 0, sizeof *r);
    hf_tok_feed(&t, s, at, rec_cb, r);
    hf_tok_feed(&t, s + at, n - at, rec_cb, r);
}

static int same(const rec *a, const rec *b)
{
    return a->used == b->used && memcmp(a->buf, b->buf, a->used) == 0;
}

/* Every two-way split, byte by byte, and a few chunk sizes must equal the
 * one-shot result, which must equal the expected list. */
static void check_transcript(const char *name, const char *s, size_t n, const char *want,
                             size_t wlen)
{
    feed_chunks(&whole, s, n, n ? n : 1);
    /* fed at once, every line is whole in the feed: passed in place, none copied */
    CHECK_INT(whole.inplace, whole.nlines);
    CHECK(whole.used == wlen && memcmp(whole.buf, want, whole.used) == 0,
          "%s: got \"%.*s\", want \"%s\"", name, (int)(whole.used > 300 ? 300 : whole.used),
          whole.buf, want);
    size_t bad = 0;
    for (size_t at = 0; at <= n; at++) {
        feed_split(&part, s, n, at);
        if (!same(&part, &whole))
            bad++;
    }
    CHECK(bad == 0, "%s: %zu of %zu two-way splits differ", name, bad, n + 1);
    static const size_t chunks[] = {1, 2, 3, 7, 8, 64};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        feed_chunks(&part, s, n, chunks[i]);
        CHECK(same(&part, &whole), "%s: chunks of %zu differ", name, chunks[i]);
    }
}

#define T(name, lit, want) check_transcript(name, lit, sizeof lit - 1, want, sizeof want - 1)

static char big[20000];
static char want[20000];

static void test_endings(void)
{
    T("crlf", "\r\nAT+GMR\r\n12.815.01.03.00\r\n\r\nOK\r\n",
      "L6:AT+GMR|L15:12.815.01.03.00|L2:OK|");
    T("echo without LF", "AT+GMR\r\r\n12.815.01.03.00\r\n\r\nOK\r\n",
      "L6:AT+GMR|L15:12.815.01.03.00|L2:OK|");
    T("crcrlf urc", "\r\n^RSSI: 17\r\r\n\r\n^FOTASTATE: 11\r\r\n",
      "L9:^RSSI: 17|L14:^FOTASTATE: 11|");
    T("bare cr and lf", "a\rb\nc\r\nd\r\r\ne\n\n\r\rf\r", "L1:a|L1:b|L1:c|L1:d|L1:e|L1:f|");
    T("blank only", "\r\n\r\r\n\n\r", "");
    T("no terminator yet", "\r\nOK\r\nhalf", "L2:OK|");
    T("nul kept", "x\0y\r\nOK\r\n", "L3:x\0y|L2:OK|");
    T("lf cr order", "A\n\rB\n\r", "L1:A|L1:B|");
    /* What a module sends during the seed's FOTA log, echo on. */
    T("seed log",
      "AT^FOTADET\r\r\nOK\r\n\r\n^FOTASTATE: 11\r\r\n"
      "\r\n^FOTASTATE: 12,12.815.01.04.00,79114,\"Support send SMS background\"\r\r\n"
      "AT^FOTADLQ\r\r\n^FOTADLQ: 1,\"IMAGE\",1324,1324\r\n"
      "\r\n^FOTADLQ: 2,\"XNV\",47104,77778\r\n\r\nOK\r\n\r\n^FOTASTATE: 40\r\r\n",
      "L10:AT^FOTADET|L2:OK|L14:^FOTASTATE: 11|"
      "L66:^FOTASTATE: 12,12.815.01.04.00,79114,\"Support send SMS background\"|"
      "L10:AT^FOTADLQ|L29:^FOTADLQ: 1,\"IMAGE\",1324,1324|L29:^FOTADLQ: 2,\"XNV\",47104,77778|"
      "L2:OK|L14:^FOTASTATE: 40|");
}

static void test_long_lines(void)
{
    /* A 1400-byte ^FOTASTATE: 12 line must pass whole. */
    size_t n = (size_t)snprintf(big, sizeof big, "\r\n^FOTASTATE: 12,12.815.01.04.00,79114,\"");
    while (n < 1399)
        big[n++] = 'd';
    big[n++] = '"';
    size_t linelen = n - 2;
    memcpy(big + n, "\r\n", 2);
    n += 2;
    int w = snprintf(want, sizeof want, "L%zu:", linelen);
    memcpy(want + w, big + 2, linelen);
    memcpy(want + w + linelen, "|", 2);
    check_transcript("fotastate 12 (1400 bytes)", big, n, want, strlen(want));

    /* 2048 passes (above ModemManager's 2 KB), HF_AT_LINE_MAX-1 passes,
     * HF_AT_LINE_MAX and far beyond are dropped whole and counted. */
    static const size_t lens[] = {2048, HF_AT_LINE_MAX - 1, HF_AT_LINE_MAX, HF_AT_LINE_MAX + 1,
                                  9000};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t L = lens[i];
        memset(big, 'x', L);
        memcpy(big + L, "\r\r\nOK\r\n", 7);
        int k;
        if (L <= HF_AT_LINE_MAX - 1) {
            k = snprintf(want, sizeof want, "L%zu:", L);
            memset(want + k, 'x', L);
            memcpy(want + k + L, "|L2:OK|", 8);
        } else {
            snprintf(want, sizeof want, "O%zu|L2:OK|", L);
        }
        char name[40];
        snprintf(name, sizeof name, "line of %zu", L);
        check_transcript(name, big, L + 7, want, strlen(want));
        CHECK_INT(whole.noverflows, L > HF_AT_LINE_MAX - 1 ? 1 : 0);
    }

    /* The counter survives across lines; overflow reported once per line. */
    hf_tok t;
    hf_tok_init(&t);
    memset(&whole, 0, sizeof whole);
    memset(big, 'y', 5000);
    hf_tok_feed(&t, big, 5000, rec_cb, &whole);
    CHECK_INT(whole.noverflows, 0);   /* not reported before its end */
    hf_tok_feed(&t, big, 5000, rec_cb, &whole);
    hf_tok_feed(&t, "\r\r\n", 3, rec_cb, &whole);
    CHECK_INT(whole.noverflows, 1);
    CHECK_INT(t.overflows, 1);
    hf_tok_feed(&t, big, 4100, rec_cb, &whole);
    hf_tok_feed(&t, "\nOK\n", 4, rec_cb, &whole);
    CHECK_INT(t.overflows, 2);
    CHECK(whole.used == strlen("O10000|O4100|L2:OK|") &&
              memcmp(whole.buf, "O10000|O4100|L2:OK|", whole.used) == 0,
          "got %.*s", (int)whole.used, whole.buf);
}

static void test_reset(void)
{
    hf_tok t;
    hf_tok_init(&t);
    memset(&whole, 0, sizeof whole);
    hf_tok_feed(&t, "\r\n^FOTAST", 9, rec_cb, &whole);
    hf_tok_reset(&t);
    hf_tok_feed(&t, "ATE0\r\nOK\r\n", 10, rec_cb, &whole);
    CHECK(whole.used == strlen("L4:ATE0|L2:OK|") && memcmp(whole.buf, "L4:ATE0|L2:OK|", 14) == 0,
          "partial line forgotten: %.*s", (int)whole.used, whole.buf);

    /* A reset while overflowing forgets the overflow too. */
    memset(&whole, 0, sizeof whole);
    memset(big, 'z', 5000);
    hf_tok_feed(&t, big, 5000, rec_cb, &whole);
    hf_tok_reset(&t);
    hf_tok_feed(&t, "OK\r\n", 4, rec_cb, &whole);
    CHECK_INT(whole.noverflows, 0);
    CHECK_INT(whole.nlines, 1);

    /* NULL callback is tolerated (lines just vanish). */
    hf_tok_feed(&t, "x\r\n", 3, NULL, NULL);
    CHECK_INT(t.len, 0);
}

int main(void)
{
    CHECK_SUITE("at_tokenizer");
    test_endings();
    test_long_lines();
    test_reset();
    return CHECK_END();
}
