/*
 * fota_parse.c — field parsers and lookup tables for Huawei FOTA answers
 * (see fota_parse.h). Every read is bounded by the caller's length: a small
 * cursor (struct cur) is the only way bytes are consumed.
 */
#include "fota_parse.h"

#include <ctype.h>
#include <limits.h>
#include <string.h>

/* ---- cursor over untrusted bytes ------------------------------------------------ */

typedef struct cur {
    const char *p;
    size_t n;   /* bytes left */
} cur;

static void cur_skip_ws(cur *c)
{
    while (c->n && (*c->p == ' ' || *c->p == '\t')) {
        c->p++;
        c->n--;
    }
}

static int cur_eat(cur *c, char ch)
{
    cur_skip_ws(c);
    if (c->n && *c->p == ch) {
        c->p++;
        c->n--;
        return 1;
    }
    return 0;
}

static int cur_end(cur *c)
{
    cur_skip_ws(c);
    return c->n == 0;
}

/* Unsigned decimal, at most max_digits digits (at most 19: always fits 64 bits). */
static int cur_u64(cur *c, unsigned long long *out, size_t max_digits)
{
    cur_skip_ws(c);
    size_t i = 0;
    unsigned long long v = 0;
    while (i < c->n && isdigit((unsigned char)c->p[i])) {
        if (i == max_digits || i == 19)
            return -1;
        v = v * 10 + (unsigned long long)(c->p[i] - '0');
        i++;
    }
    if (i == 0)
        return -1;
    c->p += i;
    c->n -= i;
    *out = v;
    return 0;
}

/* The same into an unsigned long; -1 when the value does not fit (10 digits can
 * overflow 32 bits: a router's unsigned long). */
static int cur_uint(cur *c, unsigned long *out, size_t max_digits)
{
    cur save = *c;
    unsigned long long v;
    if (cur_u64(c, &v, max_digits) < 0 || v > ULONG_MAX) {
        *c = save;
        return -1;
    }
    *out = (unsigned long)v;
    return 0;
}

/* A quoted string "..." (no escapes in AT syntax) or, when unquoted, everything up
 * to the next comma. Copied bounded into dst; -1 when missing/unterminated/too long. */
static int cur_field_str(cur *c, char *dst, size_t cap)
{
    cur_skip_ws(c);
    const char *s;
    size_t len = 0;
    if (c->n && *c->p == '"') {
        s = c->p + 1;
        const char *q = memchr(s, '"', c->n - 1);
        if (!q)
            return -1;
        len = (size_t)(q - s);
        c->p = q + 1;
        c->n -= len + 2;
    } else {
        s = c->p;
        while (len < c->n && s[len] != ',')
            len++;
        c->p += len;
        c->n -= len;
        hf_trim(&s, &len);
    }
    if (len >= cap || memchr(s, '\0', len))
        return -1;
    memcpy(dst, s, len);
    dst[len] = '\0';
    return 0;
}

/* Skip "prefix" then optional spaces. */
static int cur_prefix(cur *c, const char *prefix)
{
    size_t pl = strlen(prefix);
    if (c->n < pl || memcmp(c->p, prefix, pl) != 0)
        return -1;
    c->p += pl;
    c->n -= pl;
    cur_skip_ws(c);
    return 0;
}

/* Zero the output, then read line after "<prefix>" (and spaces): 0, or -1 + EPARSE
 * "not a <prefix> line". */
static int cur_open(cur *c, const char *line, size_t len, const char *prefix, void *out,
                    size_t size, hf_error *err)
{
    c->p = line;
    c->n = line ? len : 0;
    memset(out, 0, size);
    if (cur_prefix(c, prefix) < 0)
        return hf_error_set(err, "EPARSE", "not a %.*s line", (int)(strlen(prefix) - 1), prefix);
    return 0;
}

/* ---- small shared helpers ----------------------------------------------------- */

void hf_trim(const char **s, size_t *len)
{
    while (*len && ((*s)[0] == ' ' || (*s)[0] == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

void hf_copy_printable(char *dst, size_t cap, const char *s, size_t n)
{
    if (!cap)
        return;
    hf_trim(&s, &n);
    size_t k = n < cap - 1 ? n : cap - 1;
    for (size_t i = 0; i < k; i++)
        dst[i] = ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f) ? '?' : s[i];
    dst[k] = '\0';
}

int hf_has_prefix(const char *line, size_t len, const char *prefix)
{
    size_t pl = strlen(prefix);
    return line && len >= pl && memcmp(line, prefix, pl) == 0;
}

int hf_contains_ci(const char *s, size_t len, const char *needle)
{
    size_t nl = strlen(needle);
    if (!s || nl == 0 || nl > len)
        return nl == 0;
    for (size_t i = 0; i + nl <= len; i++) {
        size_t j = 0;
        while (j < nl && tolower((unsigned char)s[i + j]) == tolower((unsigned char)needle[j]))
            j++;
        if (j == nl)
            return 1;
    }
    return 0;
}

/* ---- versions ----------------------------------------------------------------- */

int hf_version_parse(const char *s, size_t len, hf_version *out, hf_error *err)
{
    if (!s)
        return hf_error_set(err, "EPARSE", "no version");
    hf_trim(&s, &len);
    if (len >= 2 && s[0] == '"' && s[len - 1] == '"') {
        s++;
        len -= 2;
        hf_trim(&s, &len);
    }
    if (len == 0 || len >= HF_VERSION_TEXT_MAX)
        return hf_error_set(err, "EPARSE", "version of %zu bytes is not a firmware version", len);
    memset(out, 0, sizeof *out);
    cur c = {s, len};
    for (;;) {
        if (out->nfields == HF_VERSION_FIELDS_MAX)
            return hf_error_set(err, "EPARSE", "version has more than %d fields",
                                HF_VERSION_FIELDS_MAX);
        /* no spaces inside a version: check before the cursor would skip them */
        if (c.n == 0 || !isdigit((unsigned char)*c.p) ||
            cur_uint(&c, &out->field[out->nfields], 6) < 0)
            return hf_error_set(err, "EPARSE", "version \"%.*s\": expected decimal fields "
                                "separated by dots", (int)len, s);
        out->nfields++;
        if (c.n == 0)
            break;
        if (*c.p != '.')
            return hf_error_set(err, "EPARSE", "version \"%.*s\": unexpected character",
                                (int)len, s);
        c.p++;
        c.n--;
    }
    if (out->nfields < 2)
        return hf_error_set(err, "EPARSE", "version \"%.*s\" has a single field", (int)len, s);
    memcpy(out->text, s, len);
    out->text[len] = '\0';
    return 0;
}

int hf_version_compare(const hf_version *a, const hf_version *b)
{
    size_t n = a->nfields > b->nfields ? a->nfields : b->nfields;
    for (size_t i = 0; i < n; i++) {
        unsigned long x = i < a->nfields ? a->field[i] : 0;
        unsigned long y = i < b->nfields ? b->field[i] : 0;
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}

/* ---- ^FOTASTATE ----------------------------------------------------------------- */

int hf_is_fotastate(const char *line, size_t len)
{
    return hf_has_prefix(line, len, "^FOTASTATE:");
}

/* The description: everything after the size field (it may hold commas and ';').
 * Quotes are removed; control characters become '?' so a log line stays one line. */
static void copy_desc(cur *c, hf_fotastate *out)
{
    const char *s = c->p;
    size_t len = c->n;
    hf_trim(&s, &len);
    if (len >= 2 && s[0] == '"' && s[len - 1] == '"') {
        s++;
        len -= 2;
    } else if (len >= 1 && s[0] == '"') {
        s++;          /* unterminated quote: keep what came */
        len--;
    }
    if (len >= sizeof out->desc) {
        len = sizeof out->desc - 1;
        out->desc_truncated = 1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        out->desc[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    out->desc[len] = '\0';
}

static int parse_state12(cur *c, hf_fotastate *out, hf_error *err)
{
    cur_skip_ws(c);
    size_t vl = 0;
    while (vl < c->n && c->p[vl] != ',')
        vl++;
    if (hf_version_parse(c->p, vl, &out->version, err) < 0)
        return -1;
    c->p += vl;
    c->n -= vl;
    if (!cur_eat(c, ',') || cur_uint(c, &out->size, 10) < 0 || out->size > HF_FOTA_SIZE_MAX)
        return hf_error_set(err, "EPARSE", "^FOTASTATE: 12 without a valid size");
    out->has_version = 1;
    if (cur_eat(c, ','))
        copy_desc(c, out);
    else if (!cur_end(c))
        return hf_error_set(err, "EPARSE", "^FOTASTATE: 12: garbage after the size");
    return 0;
}

int hf_parse_fotastate(const char *line, size_t len, hf_fotastate *out, hf_error *err)
{
    cur c;
    unsigned long st;
    if (cur_open(&c, line, len, "^FOTASTATE:", out, sizeof *out, err) < 0) {
        out->error_code = -1;
        return -1;
    }
    out->error_code = -1;
    if (cur_uint(&c, &st, 3) < 0)
        return hf_error_set(err, "EPARSE", "^FOTASTATE without a state number");
    out->state = (int)st;
    if (cur_end(&c))
        return 0;
    if (!cur_eat(&c, ','))
        return hf_error_set(err, "EPARSE", "^FOTASTATE: garbage after the state");
    if (st == 12)
        return parse_state12(&c, out, err);
    unsigned long code;
    if (cur_uint(&c, &code, 9) < 0)
        return hf_error_set(err, "EPARSE", "^FOTASTATE: %lu with a non-numeric field", st);
    out->error_code = (long)code;
    if (!cur_end(&c))
        return hf_error_set(err, "EPARSE", "^FOTASTATE: %lu: garbage after the code", st);
    return 0;
}

/* ---- ^FOTADLQ, ^FOTACFG, ^FOTAMODE ------------------------------------------------ */

int hf_is_fotadlq(const char *line, size_t len)
{
    return hf_has_prefix(line, len, "^FOTADLQ:");
}

int hf_parse_fotadlq(const char *line, size_t len, hf_fotadlq *out, hf_error *err)
{
    cur c;
    unsigned long idx;
    if (cur_open(&c, line, len, "^FOTADLQ:", out, sizeof *out, err) < 0)
        return -1;
    if (cur_uint(&c, &idx, 3) < 0 || !cur_eat(&c, ','))
        return hf_error_set(err, "EPARSE", "^FOTADLQ: bad index");
    if (cur_field_str(&c, out->name, sizeof out->name) < 0 || !cur_eat(&c, ','))
        return hf_error_set(err, "EPARSE", "^FOTADLQ: bad file name");
    if (cur_u64(&c, &out->done, 10) < 0 || !cur_eat(&c, ',') ||
        cur_u64(&c, &out->total, 10) < 0 || !cur_end(&c))
        return hf_error_set(err, "EPARSE", "^FOTADLQ: bad byte counts");
    out->index = (unsigned)idx;
    return 0;
}

int hf_parse_fotacfg(const char *line, size_t len, hf_fotacfg *out, hf_error *err)
{
    cur c;
    unsigned long auth;
    if (cur_open(&c, line, len, "^FOTACFG:", out, sizeof *out, err) < 0)
        return -1;
    if (cur_field_str(&c, out->apn, sizeof out->apn) < 0 || !cur_eat(&c, ',') ||
        cur_field_str(&c, out->user, sizeof out->user) < 0 || !cur_eat(&c, ',') ||
        cur_field_str(&c, out->password, sizeof out->password) < 0 || !cur_eat(&c, ','))
        return hf_error_set(err, "EPARSE", "^FOTACFG: bad apn/user/password fields");
    if (cur_uint(&c, &auth, 1) < 0 || auth > 3 || !cur_end(&c))
        return hf_error_set(err, "EPARSE", "^FOTACFG: bad auth type");
    out->auth = (int)auth;
    return 0;
}

static int flag01(cur *c, int *out)
{
    unsigned long v;
    if (cur_uint(c, &v, 1) < 0 || v > 1)
        return -1;
    *out = (int)v;
    return 0;
}

int hf_parse_fotamode(const char *line, size_t len, hf_fotamode *out, hf_error *err)
{
    cur c;
    if (cur_open(&c, line, len, "^FOTAMODE:", out, sizeof *out, err) < 0)
        return -1;
    if (flag01(&c, &out->auto_query) < 0 || !cur_eat(&c, ',') ||
        flag01(&c, &out->auto_download) < 0 || !cur_eat(&c, ',') ||
        flag01(&c, &out->auto_upgrade) < 0 || !cur_eat(&c, ',') ||
        flag01(&c, &out->resume) < 0)
        return hf_error_set(err, "EPARSE", "^FOTAMODE: expected four 0/1 fields");
    if (cur_eat(&c, ',')) {
        unsigned long p;
        if (cur_uint(&c, &p, 5) < 0 || p > 65535)
            return hf_error_set(err, "EPARSE", "^FOTAMODE: bad period");
        out->has_period = 1;
        out->period = (unsigned)p;
    }
    if (!cur_end(&c))
        return hf_error_set(err, "EPARSE", "^FOTAMODE: garbage at the end");
    return 0;
}

/* ---- SIM and registration ------------------------------------------------------- */

int hf_parse_cpin(const char *line, size_t len, char *what, size_t what_cap)
{
    cur c = {line, line ? len : 0};
    if (cur_prefix(&c, "+CPIN:") < 0)
        return -1;
    const char *s = c.p;
    size_t n = c.n;
    hf_trim(&s, &n);
    if (what && what_cap) {
        size_t k = n < what_cap - 1 ? n : what_cap - 1;
        for (size_t i = 0; i < k; i++)
            what[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
        what[k] = '\0';
    }
    return n == 5 && memcmp(s, "READY", 5) == 0;
}

int hf_parse_creg(const char *line, size_t len)
{
    cur c = {line, line ? len : 0};
    unsigned long a, b;
    if (cur_prefix(&c, "+CREG:") < 0 && cur_prefix(&c, "+CGREG:") < 0)
        return -1;
    if (cur_uint(&c, &a, 2) < 0)
        return -1;
    /* read form "<n>,<stat>,..." has a bare number second; the unsolicited form
     * "<stat>,"<lac>",..." has a quoted one. */
    if (cur_eat(&c, ',')) {
        cur save = c;
        if (cur_uint(&c, &b, 2) == 0 && (cur_end(&c) || cur_eat(&c, ',')))
            return (int)b;
        c = save;
    }
    return (int)a;
}

int hf_creg_registered(int stat)
{
    return stat == 1 || stat == 5;
}

int hf_imei_form(const char *s, size_t n)
{
    if (n < 14 || n > 17)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

int hf_imei_checked(const char *s)
{
    unsigned sum = 0;
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= 15 || s[n] < '0' || s[n] > '9')
            return 0;
    if (n != 15)
        return 0;
    for (size_t i = 0; i < n; i++) {        /* from the right: every second digit doubled */
        unsigned d = (unsigned)(s[n - 1 - i] - '0');
        if (i & 1)
            d = d * 2 > 9 ? d * 2 - 9 : d * 2;
        sum += d;
    }
    return sum % 10 == 0;
}

const char *hf_creg_stat_text(int stat)
{
    switch (stat) {
    case 0: return "not registered, not searching";
    case 1: return "registered, home network";
    case 2: return "not registered, searching";
    case 3: return "registration denied";
    case 4: return "unknown";
    case 5: return "registered, roaming";
    default: return "unexpected status";
    }
}

/* ---- tables --------------------------------------------------------------------- */

static const hf_model_entry models[] = {
    {"MU509-b", "12.815.03.01.00"},
    {"MU509-g", "12.815.03.01.00"},
    {"MU509-c", "11.815.00.78.00"},
    {"MU609", "12.105.29.00.00"},
    {"MU609 (mini PCIe)", "12.105.29.00.00"},
    {"MU609 (AT&T special)", "12.107.08.05.457"},
    {"MU609 (AT&T mini PCIe special)", "12.107.07.05.457"},
};

const hf_model_entry *hf_model_table(size_t *n)
{
    *n = sizeof models / sizeof models[0];
    return models;
}

/* Is c part of a name token (a letter or digit)? */
static int name_char(char c)
{
    return isalnum((unsigned char)c) != 0;
}

/* Does the whole token tok (case-insensitive) occur in s[0..len), not inside a
 * longer name ("MU609" in "HUAWEI MU609-b", not in "MU6090")? */
static int has_token(const char *s, size_t len, const char *tok, size_t *at)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= len; i++) {
        size_t j = 0;
        while (j < tl && tolower((unsigned char)s[i + j]) == tolower((unsigned char)tok[j]))
            j++;
        if (j == tl && (i == 0 || !name_char(s[i - 1])) &&
            (i + tl == len || !name_char(s[i + tl]))) {
            if (at)
                *at = i + tl;
            return 1;
        }
    }
    return 0;
}

/* The variant letter after the family name: "MU509-b", "MU509 b", "MU509_c" -> 'b'/'c';
 * 0 when there is none (or it is longer than one letter). */
static char variant_letter(const char *s, size_t len, size_t at)
{
    if (at < len && (s[at] == '-' || s[at] == ' ' || s[at] == '_'))
        at++;
    if (at < len && isalpha((unsigned char)s[at]) && (at + 1 == len || !name_char(s[at + 1])))
        return (char)tolower((unsigned char)s[at]);
    return 0;
}

const hf_model_entry *hf_model_match(const char *model, size_t len, const hf_version *running)
{
    if (!model)
        return NULL;
    hf_trim(&model, &len);
    size_t at = 0;
    if (has_token(model, len, "MU509", &at)) {
        char v = variant_letter(model, len, at);
        if (v == 'b')
            return &models[0];
        if (v == 'g')
            return &models[1];
        if (v == 'c')
            return &models[2];
        /* no (known) variant letter: the firmware family tells MU509-c (11.x) from
         * MU509-b/-g (12.x, the same minimum) */
        if (running && running->nfields > 0 && running->field[0] == 11)
            return &models[2];
        return &models[0];
    }
    int mu609 = has_token(model, len, "MU609", NULL);
    int att = hf_contains_ci(model, len, "AT&T");
    if (!mu609 && !att)
        return NULL;
    int mini = hf_contains_ci(model, len, "mini");
    /* AT&T firmware is the 12.107 family, whatever ATI calls the module */
    if (running && running->nfields >= 2 && running->field[0] == 12 && running->field[1] == 107)
        att = 1;
    if (att) {
        /* "mini" names the mini PCIe row; "special"/"AT&T" without it the other. When
         * ATI says neither (plain "MU609" on 12.107 firmware) the host cannot tell the
         * two AT&T variants apart: the lower minimum applies (the module itself refuses
         * FOTA commands its firmware lacks; refusing a supported module cannot be undone
         * by the host). */
        if (mini || (!hf_contains_ci(model, len, "AT&T") && !hf_contains_ci(model, len, "special")))
            return &models[6];
        return &models[5];
    }
    return mini ? &models[4] : &models[3];
}

const hf_model_entry *hf_supported_model(const char *model, size_t len)
{
    return hf_model_match(model, len, NULL);
}

int hf_model_key_matches(const char *key, const char *model, size_t len)
{
    if (!key || !model)
        return 0;
    hf_trim(&model, &len);
    size_t kl = strlen(key);
    if (kl == 0 || kl > len)
        return 0;
    for (size_t j = 0; j < kl; j++)
        if (tolower((unsigned char)model[j]) != tolower((unsigned char)key[j]))
            return 0;
    return kl == len || !name_char(model[kl]) || !name_char(key[kl - 1]);
}

/* Codes of ^FOTASTATE: 13/20 (protocol reference; ranges are inclusive). */
static const struct {
    long lo, hi;
    const char *text;
} fota_errors[] = {
    {1, 1, "unknown error"},
    {2, 2, "previous command not complete"},
    {3, 3, "parameter error"},
    {4, 4, "not supported"},
    {5, 5, "system error"},
    {11, 16, "network or link could not be opened/established"},
    {17, 17, "port bind failed"},
    {18, 18, "connect failed"},
    {19, 19, "invalid domain"},
    {20, 20, "DNS failure"},
    {21, 21, "HTTP server error"},
    {22, 22, "wrong file type"},
    {23, 23, "wrong file source"},
    {51, 51, "could not get the file list"},
    {52, 52, "MD5 check failed"},
    {54, 54, "FOTA collision state"},
    {101, 114, "1K-Xmodem transfer error"},
    {151, 159, "flash, flag or NV error"},
};

const char *hf_fota_error_meaning(long code)
{
    if (code < 0)
        return "no code reported";
    for (size_t i = 0; i < sizeof fota_errors / sizeof fota_errors[0]; i++)
        if (code >= fota_errors[i].lo && code <= fota_errors[i].hi)
            return fota_errors[i].text;
    return "not in the table";
}

const char *hf_fota_state_name(int state)
{
    switch (state) {
    case 10: return "idle";
    case 11: return "querying";
    case 12: return "new_version";
    case 13: return "query_failed";
    case 14: return "no_new_version";
    case 20: return "download_failed";
    case 30: return "downloading";
    case 31: return "download_pending";
    case 40: return "downloaded";
    case 50: return "upgrading";
    case 90: return "upgrade_ok";
    default: return "unknown";
    }
}
