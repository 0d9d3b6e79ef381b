/*
 * at_final.c — recognise final result codes from a table (see at_final.h).
 *
 * One row per final: its text, whether the text is the whole line or a prefix
 * followed by a code/text, its kind, stable name and hwfota error code. Adding
 * a final result is adding a row.
 */
#include "at_final.h"

#include <string.h>

typedef struct {
    const char *text;
    size_t len;             /* strlen(text), fixed at compile time */
    int is_prefix;          /* 1: "<text> <code|text>" follows, 0: the whole line */
    hf_final_kind kind;
    const char *name;
    const char *error_code; /* NULL for success */
} final_row;

/* A row; the text's length is taken at compile time. */
#define ROW(text, ...) {text, sizeof text - 1, __VA_ARGS__}

static const final_row finals[] = {
    ROW("OK", 0, HF_FINAL_OK, "OK", NULL),
    ROW("ERROR", 0, HF_FINAL_ERROR, "ERROR", "EERROR"),
    ROW("+CME ERROR:", 1, HF_FINAL_CME, "CME", "ECME"),
    ROW("+CMS ERROR:", 1, HF_FINAL_CMS, "CMS", "ECMS"),
    ROW("COMMAND NOT SUPPORT", 0, HF_FINAL_NOT_SUPPORT, "NOT_SUPPORT", "ENOTSUPPORT"),
    ROW("TOO MANY PARAMETERS", 0, HF_FINAL_TOO_MANY, "TOO_MANY", "ETOOMANY"),
    ROW("BUSY", 0, HF_FINAL_BUSY, "BUSY", "ELINEBUSY"),
    ROW("NO CARRIER", 0, HF_FINAL_NO_CARRIER, "NO_CARRIER", "ENOCARRIER"),
    ROW("NO ANSWER", 0, HF_FINAL_NO_ANSWER, "NO_ANSWER", "ENOANSWER"),
    ROW("NO DIALTONE", 0, HF_FINAL_NO_DIALTONE, "NO_DIALTONE", "ENODIALTONE"),
};

#define NFINALS (sizeof finals / sizeof finals[0])

/* The rows a line starting with byte c can match: [*first, *first + count).
 * Rows sharing a first byte are adjacent in the table above. Most lines
 * (responses, URCs: '^', digits, other letters) match no row and cost one
 * switch. tests/test_at_final.c compares this lookup with a plain scan of
 * every row on each final and many near misses, so a row added to the table
 * but not here fails there. */
static size_t rows_for(unsigned char c, size_t *first)
{
    switch (c) {
    case 'O': *first = 0; return 1;     /* OK */
    case 'E': *first = 1; return 1;     /* ERROR */
    case '+': *first = 2; return 2;     /* +CME ERROR:, +CMS ERROR: */
    case 'C': *first = 4; return 1;     /* COMMAND NOT SUPPORT */
    case 'T': *first = 5; return 1;     /* TOO MANY PARAMETERS */
    case 'B': *first = 6; return 1;     /* BUSY */
    case 'N': *first = 7; return 3;     /* NO CARRIER, NO ANSWER, NO DIALTONE */
    default: *first = 0; return 0;
    }
}

/* memcmp(a, b, n) == 0 for the short texts of the table: in place, stopping
 * at the first difference (cheaper than a call for <= 19 bytes). */
static int same_bytes(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Trim spaces/tabs on both sides of [*s, *s + *n). */
static void trim(const char **s, size_t *n)
{
    while (*n && is_space(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && is_space((*s)[*n - 1]))
        (*n)--;
}

/* A CME/CMS code is numeric only when it is all digits and short enough to
 * fit a long everywhere; anything else is kept as text. */
static long parse_code(const char *s, size_t n)
{
    if (n == 0 || n > 9)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static const final_row *row_of(hf_final_kind kind)
{
    for (size_t i = 0; i < NFINALS; i++)
        if (finals[i].kind == kind)
            return &finals[i];
    return NULL;
}

hf_final_kind hf_final_parse(const char *line, size_t len, hf_final *out)
{
    const char *s = line;
    size_t n = len;
    if (out) {
        out->kind = HF_FINAL_NONE;
        out->code = -1;
        out->text = "";
        out->text_len = 0;
    }
    if (!line)
        return HF_FINAL_NONE;
    if (n == 2 && s[0] == 'O' && s[1] == 'K') {   /* most finals: no lookup */
        if (out)
            out->kind = HF_FINAL_OK;
        return HF_FINAL_OK;
    }
    if (n && (is_space(s[0]) || is_space(s[n - 1])))
        trim(&s, &n);
    if (n == 0)
        return HF_FINAL_NONE;
    size_t first;
    size_t count = rows_for((unsigned char)s[0], &first);
    for (size_t i = first; i < first + count; i++) {
        const final_row *r = &finals[i];
        size_t tl = r->len;
        /* a whole-line final must have its length: most near misses end here */
        if (r->is_prefix ? n < tl : n != tl)
            continue;
        if (tl > 8 ? memcmp(s, r->text, tl) != 0 : !same_bytes(s, r->text, tl))
            continue;
        if (out) {
            out->kind = r->kind;
            if (r->is_prefix) {
                const char *t = s + tl;
                size_t tn = n - tl;
                trim(&t, &tn);
                out->text = t;
                out->text_len = tn;
                out->code = parse_code(t, tn);
            }
        }
        return r->kind;
    }
    return HF_FINAL_NONE;
}

const char *hf_final_name(hf_final_kind kind)
{
    const final_row *r = row_of(kind);
    return r ? r->name : "NONE";
}

const char *hf_final_error_code(hf_final_kind kind)
{
    const final_row *r = row_of(kind);
    return r ? r->error_code : NULL;
}
