/*
 * fota_journal.c — snapshot <-> text (see fota_journal.h). The parser accepts only
 * what the formatter writes: fixed key order, bounded values, nothing extra.
 */
#include "fota_journal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hf_journal_format(const hf_fota_snapshot *s, char *buf, size_t cap)
{
    /* fwup_retry: a line only when set, so journals without it read as before */
    int n = snprintf(buf, cap,
                     "hwfota-journal %u\nphase=%s\nfrom=%s\ntarget=%s\nsize=%lu\n"
                     "fwup_sent=%d\n%simage_verified=%d\nimage_seq=%u\ndetect_attempts=%u\n"
                     "resume_attempts=%u\nimei=%s\nstarted=%.3f\nphase_at=%.3f\nend\n",
                     s->version, hf_fota_phase_name(s->phase), s->from_version,
                     s->target_version, s->size, s->fwup_sent,
                     s->fwup_retry ? "fwup_retry=1\n" : "", s->image_verified,
                     s->image_seq, s->detect_attempts, s->resume_attempts, s->imei,
                     s->started_at, s->phase_at);
    return (n < 0 || (size_t)n >= cap) ? -1 : n;
}

typedef struct jcur {
    const char *p;
    size_t n;
    int lineno;
} jcur;

/* Next line (without LF); -1 at the end or on a line without LF. */
static int next_line(jcur *c, const char **line, size_t *len)
{
    const char *nl = c->n ? memchr(c->p, '\n', c->n) : NULL;
    if (!nl)
        return -1;
    *line = c->p;
    *len = (size_t)(nl - c->p);
    c->n -= *len + 1;
    c->p = nl + 1;
    c->lineno++;
    return 0;
}

/* "key=value" with this key: the value copied (bounded, no NUL/CR inside). */
static int kv(jcur *c, const char *key, char *val, size_t cap, hf_error *err)
{
    const char *line;
    size_t len, kl = strlen(key);
    if (next_line(c, &line, &len) < 0)
        return hf_error_set(err, "EJOURNAL", "journal ends before \"%s\"", key);
    if (len <= kl || memcmp(line, key, kl) != 0 || line[kl] != '=')
        return hf_error_set(err, "EJOURNAL", "journal line %d: expected \"%s=\"", c->lineno, key);
    size_t vl = len - kl - 1;
    if (vl >= cap || memchr(line + kl + 1, '\0', vl) || memchr(line + kl + 1, '\r', vl))
        return hf_error_set(err, "EJOURNAL", "journal line %d: bad %s value", c->lineno, key);
    memcpy(val, line + kl + 1, vl);
    val[vl] = '\0';
    return 0;
}

static int kv_ulong(jcur *c, const char *key, unsigned long max, unsigned long *out,
                    hf_error *err)
{
    char v[24];
    if (kv(c, key, v, sizeof v, err) < 0)
        return -1;
    if (!v[0] || strspn(v, "0123456789") != strlen(v) || strlen(v) > 12)
        return hf_error_set(err, "EJOURNAL", "journal %s is not a number", key);
    *out = strtoul(v, NULL, 10);
    if (*out > max)
        return hf_error_set(err, "EJOURNAL", "journal %s out of range", key);
    return 0;
}

static int kv_uint(jcur *c, const char *key, unsigned long max, unsigned *out, hf_error *err)
{
    unsigned long v;
    if (kv_ulong(c, key, max, &v, err) < 0)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int kv_flag(jcur *c, const char *key, int *out, hf_error *err)
{
    unsigned v;
    if (kv_uint(c, key, 1, &v, err) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

static int kv_time(jcur *c, const char *key, double *out, hf_error *err)
{
    char v[32], *end;
    if (kv(c, key, v, sizeof v, err) < 0)
        return -1;
    if (!v[0] || strspn(v, "0123456789.") != strlen(v))
        return hf_error_set(err, "EJOURNAL", "journal %s is not a time", key);
    errno = 0;
    *out = strtod(v, &end);
    if (errno || *end || !isfinite(*out) || *out > 1e12)
        return hf_error_set(err, "EJOURNAL", "journal %s out of range", key);
    return 0;
}

static int parse_head(jcur *c, hf_fota_snapshot *s, hf_error *err)
{
    const char *line;
    size_t len;
    static const char magic[] = "hwfota-journal 1";
    if (next_line(c, &line, &len) < 0 || len != sizeof magic - 1 ||
        memcmp(line, magic, len) != 0)
        return hf_error_set(err, "EJOURNAL", "not an hwfota journal of version %d",
                            HF_FOTA_SNAPSHOT_VERSION);
    s->version = HF_FOTA_SNAPSHOT_VERSION;
    char phase[32];
    if (kv(c, "phase", phase, sizeof phase, err) < 0)
        return -1;
    int p = hf_fota_phase_from_name(phase, strlen(phase));
    if (p < 0)
        return hf_error_set(err, "EJOURNAL", "journal phase \"%s\" unknown", phase);
    s->phase = (hf_fota_phase)p;
    return 0;
}

int hf_journal_parse(const char *text, size_t len, hf_fota_snapshot *s, hf_error *err)
{
    jcur c = {text, text ? len : 0, 0};
    memset(s, 0, sizeof *s);
    if (len > HF_JOURNAL_TEXT_MAX)
        return hf_error_set(err, "EJOURNAL", "journal of %zu bytes is too long", len);
    if (parse_head(&c, s, err) < 0 ||
        kv(&c, "from", s->from_version, sizeof s->from_version, err) < 0 ||
        kv(&c, "target", s->target_version, sizeof s->target_version, err) < 0 ||
        kv_ulong(&c, "size", HF_FOTA_SIZE_MAX, &s->size, err) < 0 ||
        kv_flag(&c, "fwup_sent", &s->fwup_sent, err) < 0 ||
        (c.n > 11 && memcmp(c.p, "fwup_retry=", 11) == 0 &&
         kv_flag(&c, "fwup_retry", &s->fwup_retry, err) < 0) ||
        kv_flag(&c, "image_verified", &s->image_verified, err) < 0 ||
        kv_uint(&c, "image_seq", 100000, &s->image_seq, err) < 0 ||
        kv_uint(&c, "detect_attempts", 1000, &s->detect_attempts, err) < 0 ||
        kv_uint(&c, "resume_attempts", 100000, &s->resume_attempts, err) < 0 ||
        kv(&c, "imei", s->imei, sizeof s->imei, err) < 0 ||
        kv_time(&c, "started", &s->started_at, err) < 0 ||
        kv_time(&c, "phase_at", &s->phase_at, err) < 0)
        return -1;
    const char *line;
    size_t ll;
    if (next_line(&c, &line, &ll) < 0 || ll != 3 || memcmp(line, "end", 3) != 0 || c.n != 0)
        return hf_error_set(err, "EJOURNAL", "journal does not end with \"end\" (truncated "
                            "or extra data)");
    return 0;
}

/* ---- restore validation: every field of a snapshot read back from a file ------------- */

static int check_text_version(const char *what, const char *s, size_t cap, hf_version *v,
                              int *have, hf_error *err)
{
    size_t n = strnlen(s, cap);
    *have = 0;
    if (n == cap)
        return hf_error_set(err, "EJOURNAL", "journal %s is not terminated", what);
    if (n == 0)
        return 0;
    if (hf_version_parse(s, n, v, NULL) < 0)
        return hf_error_set(err, "EJOURNAL", "journal %s \"%.*s\" is not a version", what,
                            (int)n, s);
    *have = 1;
    return 0;
}

int hf_journal_check(const hf_fota_snapshot *s, hf_journal_versions *v, hf_error *err)
{
    memset(v, 0, sizeof *v);
    if (s->version != HF_FOTA_SNAPSHOT_VERSION)
        return hf_error_set(err, "EJOURNAL", "journal version %u, expected %d", s->version,
                            HF_FOTA_SNAPSHOT_VERSION);
    if ((unsigned)s->phase >= HF_PH_COUNT)
        return hf_error_set(err, "EJOURNAL", "journal phase %d is out of range", (int)s->phase);
    if (check_text_version("from", s->from_version, sizeof s->from_version, &v->from,
                           &v->have_from, err) < 0 ||
        check_text_version("target", s->target_version, sizeof s->target_version, &v->target,
                           &v->have_target, err) < 0)
        return -1;
    if ((unsigned)s->fwup_sent > 1 || (unsigned)s->image_verified > 1)
        return hf_error_set(err, "EJOURNAL", "journal flags must be 0 or 1");
    if ((unsigned)s->fwup_retry > 1 || (s->fwup_retry && !s->fwup_sent))
        return hf_error_set(err, "EJOURNAL", "journal fwup_retry must be 0, or 1 with "
                            "fwup_sent=1");
    if (s->fwup_sent && !s->image_verified)
        return hf_error_set(err, "EJOURNAL", "journal says AT^FWUP was sent for an image "
                            "never verified");
    if (s->size > HF_FOTA_SIZE_MAX)
        return hf_error_set(err, "EJOURNAL", "journal size out of range");
    if (s->image_seq > 100000 || s->detect_attempts > 1000 || s->resume_attempts > 100000)
        return hf_error_set(err, "EJOURNAL", "journal counters out of range");
    size_t il = strnlen(s->imei, sizeof s->imei);
    if (il == sizeof s->imei || (il && !hf_imei_form(s->imei, il)))
        return hf_error_set(err, "EJOURNAL", "journal IMEI is malformed");
    if (!isfinite(s->started_at) || !isfinite(s->phase_at) || signbit(s->started_at) ||
        signbit(s->phase_at) || s->started_at > 1e12 || s->phase_at > 1e12)   /* -0.0 too */
        return hf_error_set(err, "EJOURNAL", "journal timestamps out of range");
    return 0;
}
