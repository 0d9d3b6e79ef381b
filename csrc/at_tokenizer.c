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
    t->buf[len] = '\0';
    /* Reset before the callback so that a callback calling hf_tok_reset, or the
     * bytes after this line, find a clean state; buf stays intact meanwhile
     * because nothing is appended until cb returns. */
    t->len = 0;
    if (cb)
        cb(ud, HF_TOK_LINE, t->buf, len);
}

void hf_tok_feed(hf_tok *t, const char *data, size_t n, hf_tok_cb cb, void *ud)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && data[j] != '\r' && data[j] != '\n')
            j++;
        if (j > i)
            append(t, data + i, j - i);
        if (j == n)
            break;
        end_line(t, cb, ud);
        i = j + 1;
    }
}
