/*
 * at_tokenizer.h — bytes to lines, incrementally, without allocation.
 *
 * Feeding a stream byte by byte or all at once gives the same lines. Lines end
 * with CR, LF, CRLF or CRCRLF; empty lines are skipped. (Every CR and LF ends a
 * line and empty lines are skipped, so no state is needed to pair CR with LF.)
 * A line longer than HF_AT_LINE_MAX-1 bytes is dropped whole (counted, and reported to the caller
 * once when its end is seen). NUL bytes inside a line are kept as data: lines
 * carry explicit lengths. Knows nothing about commands.
 */
#ifndef HF_AT_TOKENIZER_H
#define HF_AT_TOKENIZER_H

#include <stddef.h>

#define HF_AT_LINE_MAX 2056   /* a 2048-byte line passes (as required: above ModemManager's
                                 2 KB); the longest legal line, ^FOTASTATE: 12, is ~1.3 KB */

typedef enum {
    HF_TOK_LINE = 0,      /* a complete line: line/len valid (not NUL-terminated) */
    HF_TOK_OVERFLOW = 1,  /* an over-long line ended and was dropped; line = "", len = its total length */
} hf_tok_kind;

/* Called for each complete line: `line` holds len bytes, is not NUL-terminated
 * (a line that arrived whole in one feed is passed in place, from the fed bytes:
 * no copy), and is valid only during the call. */
typedef void (*hf_tok_cb)(void *ud, hf_tok_kind kind, const char *line, size_t len);

typedef struct hf_tok {
    char buf[HF_AT_LINE_MAX];
    size_t len;             /* bytes of the current line kept in buf */
    size_t dropped_len;     /* length so far of an overflowing line (0 when not overflowing; then len == 0) */
    unsigned long overflows;/* over-long lines dropped so far */
} hf_tok;

void hf_tok_init(hf_tok *t);

/* Feed n bytes; calls cb for every line completed. cb may call hf_tok_reset()
 * (the rest of the data then starts a fresh line) but must not feed this
 * tokenizer again. */
void hf_tok_feed(hf_tok *t, const char *data, size_t n, hf_tok_cb cb, void *ud);

/* Forget any partial line (after a port loss or reopen). */
void hf_tok_reset(hf_tok *t);

#endif
