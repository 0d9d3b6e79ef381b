/* hf_error.c — filling hf_error records (see hf_error.h). */
#include "hf_error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void hf_error_clear(hf_error *err)
{
    if (!err)
        return;
    err->code = NULL;
    err->msg[0] = '\0';
}

int hf_error_set(hf_error *err, const char *code, const char *fmt, ...)
{
    if (!err)
        return -1;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        err->msg[0] = '\0';
    return -1;
}

const char *hf_error_code_from_errno(int errnum)
{
    switch (errnum) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EBUSY: return "EBUSY";
    case ENODEV: case ENXIO: case EIO: case EPIPE: return "EPORTLOST";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ENOMEM: return "ENOMEM";
    case EINVAL: return "EINVAL";
    case ENOTTY: return "ENOTTY";
    case EMFILE: return "EMFILE";   /* this process is at RLIMIT_NOFILE */
    default: return "EIO";
    }
}

int hf_strlcpy(char *dst, size_t cap, const char *src)
{
    if (cap == 0)
        return -1;
    size_t n = strlen(src);
    if (n >= cap) {
        memcpy(dst, src, cap - 1);
        dst[cap - 1] = '\0';
        return -1;
    }
    memcpy(dst, src, n + 1);
    return 0;
}
