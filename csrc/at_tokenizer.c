/*
 * at_tokenizer.c — turn a byte stream into lines, incrementally and without
 * allocation (see at_tokenizer.h).
 *
 * Every CR and every LF ends a line, and empty lines are skipped: this makes
 * CRLF, CRCRLF, bare CR and bare LF all equivalent without remembering the
 * previous byte, so any split of the stream yields the same lines.
 */
#include "at_tokenizer.h"

#include <string.h>

void hf_tok_init(hf_tok *t)
{
    memset(t, 0, sizeof *t);
}

void hf_tok_reset(hf_tok *t)
{
    /* buf is left alone: a line callback calling this may still be reading it. */
    t->len = 0;
    t->dropped_len = 0;
}

/* Keep as much of the segment as fits; count the rest as dropped so the line
 * is reported as an overflow when it ends (never delivered truncated). */
static void append(hf_tok *t, const char *seg, size_t n)
{
    size_t room = (HF_AT_LINE_MAX - 1) - t->len;
    if (t->dropped_len == 0 && n <= room) {
        memcpy(t->buf + t->len, seg, n);
        t->len += n;
        return;
    }
    /* Once a line overflows, none of it is kept. */
    t->dropped_len += t->len + n;
    t->len = 0;
}

/* A terminator was seen: deliver the line (or its overflow report), then start
 * afresh. Empty lines say nothing and are skipped. */
static void end_line(hf_tok *t, hf_tok_cb cb, void *ud)
{
    if (t->dropped_len) {
        size_t total = t->dropped_len;
        t->overflows++;
        hf_tok_reset(t);
        if (cb)
            cb(ud, HF_TOK_OVERFLOW, "", total);
        return;
    }
    if (t->len == 0)
        return;
    size_t len = t->len;
    /* Reset before the callback so that a callback calling hf_tok_reset, or the
     * bytes after this line, find a clean state; buf stays intact meanwhile
     * because nothing is appended until cb returns. */
    t->len = 0;
    if (cb)
        cb(ud, HF_TOK_LINE, t->buf, len);
}

static int is_eol(char c)
{
    return c == '\r' || c == '\n';
}

/* Line ends are found with memchr (libc's, vectorised): the next LF once, then
 * the first CR before it. The LF position is kept across lines of one feed, so
 * every byte is scanned at most once for each, whatever the line ends (CR-only
 * streams too): linear in n, a few instructions per line plus a fraction per
 * byte. A short rest (tiny reads, 1-byte chunks) is scanned byte by byte: a
 * call costs more than the loop there. A run of terminators (CRLF, CRCRLF, the
 * empty lines between responses) is skipped in one go after a line ends: the
 * empty lines it holds are skipped anyway. */
#define SHORT_SCAN 16

void hf_tok_feed(hf_tok *t, const char *data, size_t n, hf_tok_cb cb, void *ud)
{
    size_t i = 0;
    size_t lf = 0;          /* next LF at or after i, or n; valid while lf_known and lf >= i */
    int lf_known = 0;
    while (i < n) {
        size_t j;
        if (n - i <= SHORT_SCAN) {
            j = i;
            while (j < n && !is_eol(data[j]))
                j++;
        } else {
            if (!lf_known || lf < i) {
                const char *p = memchr(data + i, '\n', n - i);
                lf = p ? (size_t)(p - data) : n;
                lf_known = 1;
            }
            const char *q = memchr(data + i, '\r', lf - i);
            j = q ? (size_t)(q - data) : lf;
        }
        if (j < n && t->len == 0 && t->dropped_len == 0 && j - i <= HF_AT_LINE_MAX - 1) {
            /* The whole line is in this feed: delivered in place, not copied. */
            if (j > i && cb)
                cb(ud, HF_TOK_LINE, data + i, j - i);
        } else {
            if (j > i)
                append(t, data + i, j - i);
            if (j == n)
                break;
            end_line(t, cb, ud);
        }
        i = j + 1;
        while (i < n && is_eol(data[i]))
            i++;
    }
}
