/*
 * at_final.h — which lines are final result codes, as a table (not a strcmp chain).
 *
 * OK, ERROR, +CME ERROR: <n|text>, +CMS ERROR: <n|text>, COMMAND NOT SUPPORT,
 * TOO MANY PARAMETERS, NO CARRIER, BUSY, NO ANSWER, NO DIALTONE.
 */
#ifndef HF_AT_FINAL_H
#define HF_AT_FINAL_H

#include <stddef.h>

typedef enum {
    HF_FINAL_NONE = 0,      /* not a final result */
    HF_FINAL_OK,
    HF_FINAL_ERROR,
    HF_FINAL_CME,           /* +CME ERROR: */
    HF_FINAL_CMS,           /* +CMS ERROR: */
    HF_FINAL_NOT_SUPPORT,   /* COMMAND NOT SUPPORT (Huawei) */
    HF_FINAL_TOO_MANY,      /* TOO MANY PARAMETERS (Huawei) */
    HF_FINAL_NO_CARRIER,
    HF_FINAL_BUSY,
    HF_FINAL_NO_ANSWER,
    HF_FINAL_NO_DIALTONE,
} hf_final_kind;

typedef struct hf_final {
    hf_final_kind kind;
    long code;              /* numeric CME/CMS code, or -1 when absent/textual */
    const char *text;       /* CME/CMS text after the colon (trimmed), pointer into the line; "" if none */
    size_t text_len;
} hf_final;

/* Classify a line (explicit length). Returns the kind (HF_FINAL_NONE when not final)
 * and fills *out when out != NULL. */
hf_final_kind hf_final_parse(const char *line, size_t len, hf_final *out);

/* A filter before hf_final_parse, inline on the per-line path: 0 when a line
 * whose first byte is c cannot be a final result (hf_final_parse would return
 * HF_FINAL_NONE: no row starts with c, and c is no space or tab to trim). */
static inline int hf_final_may_start(unsigned char c)
{
    switch (c) {
    case 'O': case 'E': case '+': case 'C': case 'T': case 'B': case 'N': case ' ': case '\t':
        return 1;
    default:
        return 0;
    }
}

/* Stable short name: "OK", "ERROR", "CME", "CMS", "NOT_SUPPORT", ... */
const char *hf_final_name(hf_final_kind kind);

/* The hwfota error code for a failed final: "ECME", "ECMS", "EERROR", "ENOTSUPPORT",
 * "ETOOMANY", "ENOCARRIER", ...; NULL for OK. */
const char *hf_final_error_code(hf_final_kind kind);

#endif
