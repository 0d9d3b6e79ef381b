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
    int is_prefix;          /* 1: "<text> <code|text>" follows, 0: the whole line */
    hf_final_kind kind;
    const char *name;
    const char *error_code; /* NULL for success */
} final_row;

static const final_row finals[] = {
    {"OK", 0, HF_FINAL_OK, "OK", NULL},
    {"ERROR", 0, HF_FINAL_ERROR, "ERROR", "EERROR"},
    {"+CME ERROR:", 1, HF_FINAL_CME, "CME", "ECME"},
    {"+CMS ERROR:", 1, HF_FINAL_CMS, "CMS", "ECMS"},
    {"COMMAND NOT SUPPORT", 0, HF_FINAL_NOT_SUPPORT, "NOT_SUPPORT", "ENOTSUPPORT"},
    {"TOO MANY PARAMETERS", 0, HF_FINAL_TOO_MANY, "TOO_MANY", "ETOOMANY"},
    {"NO CARRIER", 0, HF_FINAL_NO_CARRIER, "NO_CARRIER", "ENOCARRIER"},
    {"BUSY", 0, HF_FINAL_BUSY, "BUSY", "ELINEBUSY"},
    {"NO ANSWER", 0, HF_FINAL_NO_ANSWER, "NO_ANSWER", "ENOANSWER"},
    {"NO DIALTONE", 0, HF_FINAL_NO_DIALTONE, "NO_DIALTONE", "ENODIALTONE"},
};

#define NFINALS (sizeof finals / sizeof finals[0])

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
    trim(&s, &n);
    for (size_t i = 0; i < NFINALS; i++) {
        const final_row *r = &finals[i];
        size_t tl = strlen(r->text);
        if (n < tl || memcmp(s, r->text, tl) != 0)
            continue;
        if (!r->is_prefix && n != tl)
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
