/*
 * hf_error.h — the error record every hwfota layer fills in.
 *
 * Errors live in a caller-owned struct, never in globals: a stable upper-case
 * code (ETIMEDOUT, EPORTLOST, EBUSY, ...) that scripts can switch on, and a
 * human message that says what failed and why. Formatting is bounded.
 */
#ifndef HF_ERROR_H
#define HF_ERROR_H

#include <stddef.h>

#define HF_ERROR_MSG_MAX 320

typedef struct hf_error {
    const char *code;               /* static string such as "EPORTLOST"; NULL when no error */
    char msg[HF_ERROR_MSG_MAX];     /* NUL-terminated, truncated if needed */
} hf_error;

/* Clear an error record (code NULL, empty message). Accepts NULL. */
void hf_error_clear(hf_error *err);

/* Set code and printf-style message (bounded, truncated). Accepts err == NULL. Returns -1
 * so that callers can write `return hf_error_set(err, ...)`. */
int hf_error_set(hf_error *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Map an errno value to the stable hwfota code ("ENOENT", "EBUSY", "EPORTLOST", "EIO" ...). */
const char *hf_error_code_from_errno(int errnum);

/* Bounded string helpers used across the core: copy/append never overflow `cap`
 * (including the terminating NUL) and return 0, or -1 when the text had to be cut. */
int hf_strlcpy(char *dst, size_t cap, const char *src);

#endif
