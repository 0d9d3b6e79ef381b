/*
 * fuzz_parse.c — libFuzzer harness: every field parser on untrusted bytes.
 *
 * The first byte picks the target; the rest is its input (never NUL-terminated:
 * libFuzzer's buffer ends exactly there, so ASan sees any read past len).
 *   0 ^FOTASTATE   1 ^FOTADLQ   2 ^FOTACFG   3 ^FOTAMODE   4 version
 *   5 three versions (LF-separated): compare is antisymmetric and transitive
 *   6 final result codes (+CME/+CMS ERROR ...)   7 journal text (parse, restore)
 *   8 a raw journal snapshot struct (restore)     9 tokenizer split invariance
 *   10 +CPIN/+CREG, model table, name tables
 * Parsed results are checked for bounds and formatted back: format -> parse gives
 * the same fields (round trip). Any violation aborts.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_final.h"
#include "at_tokenizer.h"
#include "fota_fsm.h"
#include "fota_journal.h"
#include "fota_parse.h"

#define FZ_CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "fuzz_parse: invariant failed: " \
    __VA_ARGS__); fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__); abort(); } } while (0)

static int terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static void check_version(const hf_version *v)
{
    FZ_CHECK(terminated(v->text, sizeof v->text), "version text not terminated");
    FZ_CHECK(v->nfields >= 2 && v->nfields <= HF_VERSION_FIELDS_MAX, "%zu fields", v->nfields);
    for (size_t i = 0; i < v->nfields; i++)
        FZ_CHECK(v->field[i] <= 999999, "field %lu", v->field[i]);
    hf_version w;
    FZ_CHECK(hf_version_parse(v->text, strlen(v->text), &w, NULL) == 0, "text \"%s\" does not "
             "parse again", v->text);
    FZ_CHECK(hf_version_compare(v, &w) == 0 && w.nfields == v->nfields, "reparse differs");
    FZ_CHECK(hf_version_compare(v, v) == 0, "not reflexive");
    /* canonical form: fields without leading zeros, same value */
    char canon[128];
    size_t k = 0;
    for (size_t i = 0; i < v->nfields; i++)
        k += (size_t)snprintf(canon + k, sizeof canon - k, "%s%lu", i ? "." : "", v->field[i]);
    hf_version c;
    if (k < HF_VERSION_TEXT_MAX) {
        FZ_CHECK(hf_version_parse(canon, k, &c, NULL) == 0, "canonical \"%s\" refused", canon);
        FZ_CHECK(hf_version_compare(v, &c) == 0, "canonical \"%s\" compares unequal", canon);
    }
}

static void t_fotastate(const char *s, size_t n)
{
    hf_fotastate st, st2;
    hf_error err;
    if (hf_parse_fotastate(s, n, &st, &err) < 0) {
        FZ_CHECK(err.code && terminated(err.msg, sizeof err.msg), "error not set");
        return;
    }
    FZ_CHECK(st.state >= 0 && st.state <= 999, "state %d", st.state);
    FZ_CHECK(st.error_code >= -1, "code %ld", st.error_code);
    FZ_CHECK(terminated(st.desc, sizeof st.desc), "desc not terminated");
    for (const char *p = st.desc; *p; p++)
        FZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f, "control char in desc");
    FZ_CHECK(!st.has_version || st.state == 12, "version with state %d", st.state);
    static char line[HF_FOTA_DESC_MAX + 128];
    int k;
    if (st.has_version) {
        check_version(&st.version);
        k = snprintf(line, sizeof line, "^FOTASTATE: 12,%s,%lu,\"%s\"", st.version.text, st.size,
                     st.desc);
    } else if (st.error_code >= 0) {
        k = snprintf(line, sizeof line, "^FOTASTATE: %d,%ld", st.state, st.error_code);
    } else {
        k = snprintf(line, sizeof line, "^FOTASTATE: %d", st.state);
    }
    FZ_CHECK(k > 0 && (size_t)k < sizeof line, "format");
    FZ_CHECK(hf_parse_fotastate(line, (size_t)k, &st2, &err) == 0, "round trip refused: %s (%s)",
             line, err.msg);
    FZ_CHECK(st2.state == st.state && st2.error_code == st.error_code &&
             st2.has_version == st.has_version && st2.size == st.size, "round trip differs");
    if (st.has_version)
        FZ_CHECK(strcmp(st2.version.text, st.version.text) == 0 &&
                 (st.desc_truncated || strcmp(st2.desc, st.desc) == 0), "round trip text differs");
}

static void t_fotadlq(const char *s, size_t n)
{
    hf_fotadlq d, d2;
    if (hf_parse_fotadlq(s, n, &d, NULL) < 0)
        return;
    FZ_CHECK(terminated(d.name, sizeof d.name), "name");
    FZ_CHECK(d.index <= 999, "index %u", d.index);
    FZ_CHECK(d.done <= 9999999999UL && d.total <= 9999999999UL, "counts");
    if (strchr(d.name, '"'))
        return;
    char line[128];
    int k = snprintf(line, sizeof line, "^FOTADLQ: %u,\"%s\",%llu,%llu", d.index, d.name, d.done,
                     d.total);
    FZ_CHECK(hf_parse_fotadlq(line, (size_t)k, &d2, NULL) == 0, "round trip refused: %s", line);
    FZ_CHECK(d2.index == d.index && !strcmp(d2.name, d.name) && d2.done == d.done &&
             d2.total == d.total, "round trip differs");
}

static void t_fotacfg(const char *s, size_t n)
{
    hf_fotacfg c, c2;
    if (hf_parse_fotacfg(s, n, &c, NULL) < 0)
        return;
    FZ_CHECK(terminated(c.apn, sizeof c.apn) && terminated(c.user, sizeof c.user) &&
             terminated(c.password, sizeof c.password), "fields");
    FZ_CHECK(c.auth >= 0 && c.auth <= 3, "auth");
    if (strchr(c.apn, '"') || strchr(c.user, '"') || strchr(c.password, '"'))
        return;
    char line[512];
    int k = snprintf(line, sizeof line, "^FOTACFG: \"%s\",\"%s\",\"%s\",%d", c.apn, c.user,
                     c.password, c.auth);
    FZ_CHECK(hf_parse_fotacfg(line, (size_t)k, &c2, NULL) == 0, "round trip refused: %s", line);
    FZ_CHECK(!strcmp(c.apn, c2.apn) && !strcmp(c.user, c2.user) &&
             !strcmp(c.password, c2.password) && c.auth == c2.auth, "round trip differs");
}

static void t_fotamode(const char *s, size_t n)
{
    hf_fotamode m, m2;
    if (hf_parse_fotamode(s, n, &m, NULL) < 0)
        return;
    FZ_CHECK(((m.auto_query | m.auto_download | m.auto_upgrade | m.resume) & ~1) == 0, "flags");
    FZ_CHECK(!m.has_period || m.period <= 65535, "period");
    char line[96];
    int k = m.has_period
        ? snprintf(line, sizeof line, "^FOTAMODE: %d,%d,%d,%d,%u", m.auto_query, m.auto_download,
                   m.auto_upgrade, m.resume, m.period)
        : snprintf(line, sizeof line, "^FOTAMODE: %d,%d,%d,%d", m.auto_query, m.auto_download,
                   m.auto_upgrade, m.resume);
    FZ_CHECK(hf_parse_fotamode(line, (size_t)k, &m2, NULL) == 0, "round trip refused");
    FZ_CHECK(memcmp(&m, &m2, sizeof m) == 0, "round trip differs");
}

static void t_version(const char *s, size_t n)
{
    hf_version v;
    hf_error err;
    if (hf_version_parse(s, n, &v, &err) == 0)
        check_version(&v);
    else
        FZ_CHECK(err.code != NULL, "no error code");
}

static int sgn(int x)
{
    return (x > 0) - (x < 0);
}

static void t_version3(const char *s, size_t n)
{
    hf_version v[3];
    int ok[3] = {0, 0, 0};
    size_t at = 0;
    for (int i = 0; i < 3; i++) {
        const char *nl = at < n ? memchr(s + at, '\n', n - at) : NULL;
        size_t len = nl ? (size_t)(nl - (s + at)) : n - at;
        ok[i] = at <= n && hf_version_parse(s + at, len, &v[i], NULL) == 0;
        at += len + 1;
        if (at > n)
            at = n;
    }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            if (!ok[i] || !ok[j])
                continue;
            int c = hf_version_compare(&v[i], &v[j]);
            FZ_CHECK(c >= -1 && c <= 1, "compare returned %d", c);
            FZ_CHECK(sgn(c) == -sgn(hf_version_compare(&v[j], &v[i])), "not antisymmetric: %s %s",
                     v[i].text, v[j].text);
            for (int k = 0; k < 3; k++) {
                if (!ok[k])
                    continue;
                int d = hf_version_compare(&v[j], &v[k]);
                int e = hf_version_compare(&v[i], &v[k]);
                if (c <= 0 && d <= 0)
                    FZ_CHECK(e <= 0, "not transitive: %s <= %s <= %s", v[i].text, v[j].text,
                             v[k].text);
                if (c == 0 && d == 0)
                    FZ_CHECK(e == 0, "equality not transitive");
            }
        }
}

static void t_final(const char *s, size_t n)
{
    hf_final f;
    hf_final_kind k = hf_final_parse(s, n, &f);
    FZ_CHECK(k == hf_final_parse(s, n, NULL), "out changes the answer");
    FZ_CHECK(f.kind == k && hf_final_name(k) != NULL, "kind");
    FZ_CHECK((hf_final_error_code(k) == NULL) == (k == HF_FINAL_OK || k == HF_FINAL_NONE),
             "error code for %d", (int)k);
    if (k != HF_FINAL_CME && k != HF_FINAL_CMS) {
        FZ_CHECK(f.code == -1 && f.text_len == 0, "code outside CME/CMS");
        return;
    }
    FZ_CHECK(f.text >= s && f.text + f.text_len <= s + n, "text outside the line");
    FZ_CHECK(f.code >= -1 && f.code <= 999999999L, "code %ld", f.code);
    if (f.code >= 0) {
        char line[64];
        int m = snprintf(line, sizeof line, "%s %ld", k == HF_FINAL_CME ? "+CME ERROR:" :
                         "+CMS ERROR:", f.code);
        hf_final g;
        FZ_CHECK(hf_final_parse(line, (size_t)m, &g) == k && g.code == f.code, "round trip");
    }
}

static void check_restorable(const hf_fota_snapshot *snap, const char *what)
{
    char text[HF_JOURNAL_TEXT_MAX + 1];
    int len = hf_journal_format(snap, text, sizeof text);
    FZ_CHECK(len > 0, "%s: journal does not format", what);
    hf_fota_snapshot back;
    hf_error err;
    FZ_CHECK(hf_journal_parse(text, (size_t)len, &back, &err) == 0, "%s: written journal does "
             "not parse: %s\n%s", what, err.msg, text);
    char text2[HF_JOURNAL_TEXT_MAX + 1];
    int len2 = hf_journal_format(&back, text2, sizeof text2);
    FZ_CHECK(len2 == len && memcmp(text, text2, (size_t)len) == 0, "%s: format(parse(t)) != t",
             what);
}

static void t_journal(const char *s, size_t n)
{
    hf_fota_snapshot snap;
    hf_error err;
    if (hf_journal_parse(s, n, &snap, &err) < 0) {
        FZ_CHECK(err.code && !strcmp(err.code, "EJOURNAL"), "journal error code");
        return;
    }
    FZ_CHECK(snap.version == HF_FOTA_SNAPSHOT_VERSION && snap.phase < HF_PH_COUNT, "header");
    check_restorable(&snap, "parsed");
    hf_fota_config cfg;
    hf_fota_config_default(&cfg);
    static hf_fota f;
    FZ_CHECK(hf_fota_init(&f, &cfg, &err) == 0, "init");
    if (hf_fota_restore(&f, &snap, &err) < 0)
        return;
    static hf_fota_actions a;
    size_t na = hf_fota_start(&f, snap.started_at, &a);
    FZ_CHECK(na >= 1 && a.dropped == 0, "start gave %zu actions", na);
    for (size_t i = 0; i < a.n; i++)
        FZ_CHECK(a.a[i].kind != HF_ACT_SEND || strcmp(a.a[i].text, "AT^FWUP") != 0,
                 "AT^FWUP at start");
    hf_fota_snapshot again;
    hf_fota_snapshot_take(&f, &again);
    check_restorable(&again, "restored");
}

static void t_snapshot(const char *s, size_t n)
{
    hf_fota_snapshot snap;
    memset(&snap, 0, sizeof snap);
    memcpy(&snap, s, n < sizeof snap ? n : sizeof snap);
    hf_fota_config cfg;
    hf_fota_config_default(&cfg);
    static hf_fota f;
    hf_error err;
    FZ_CHECK(hf_fota_init(&f, &cfg, &err) == 0, "init");
    if (hf_fota_restore(&f, &snap, &err) < 0) {
        FZ_CHECK(err.code != NULL, "restore error code");
        return;
    }
    /* accepted by restore: what the machine journals from it must read back */
    hf_fota_snapshot again;
    hf_fota_snapshot_take(&f, &again);
    check_restorable(&again, "restored raw");
}

/* ---- tokenizer: the same lines however the bytes are split ---- */
typedef struct tokrec {
    unsigned long n;
    uint64_t h;
} tokrec;

static void tok_cb(void *ud, hf_tok_kind kind, const char *line, size_t len)
{
    tokrec *r = ud;
    if (kind == HF_TOK_LINE) {
        FZ_CHECK(len > 0 && len < HF_AT_LINE_MAX, "line of %zu", len);
        FZ_CHECK(!memchr(line, '\r', len) && !memchr(line, '\n', len), "CR/LF inside a line");
    } else {
        FZ_CHECK(kind == HF_TOK_OVERFLOW && len >= HF_AT_LINE_MAX && !line[0], "overflow %zu", len);
    }
    uint64_t h = r->h ^ ((uint64_t)kind * 0x9e3779b97f4a7c15ULL) ^ len;
    for (size_t i = 0; kind == HF_TOK_LINE && i < len; i++)
        h = (h ^ (unsigned char)line[i]) * 0x100000001b3ULL;
    r->h = h * 31 + 7;
    r->n++;
}

static void t_tokenizer(const char *s, size_t n)
{
    static hf_tok t;
    tokrec a = {0, 1}, b = {0, 1}, c = {0, 1};
    hf_tok_init(&t);
    hf_tok_feed(&t, s, n, tok_cb, &a);
    hf_tok_init(&t);
    for (size_t i = 0; i < n; i++)
        hf_tok_feed(&t, s + i, 1, tok_cb, &b);
    hf_tok_init(&t);
    size_t i = 0, step = n ? (unsigned char)s[0] % 7 + 2 : 1;
    while (i < n) {
        size_t k = n - i < step ? n - i : step;
        hf_tok_feed(&t, s + i, k, tok_cb, &c);
        i += k;
        step = step * 3 % 11 + 1;
    }
    FZ_CHECK(a.n == b.n && a.h == b.h, "byte-by-byte differs (%lu vs %lu lines)", a.n, b.n);
    FZ_CHECK(a.n == c.n && a.h == c.h, "chunked differs (%lu vs %lu lines)", a.n, c.n);
}

static void t_misc(const char *s, size_t n)
{
    char what[8];
    int r = hf_parse_cpin(s, n, what, sizeof what);
    FZ_CHECK(r >= -1 && r <= 1 && (r < 0 || terminated(what, sizeof what)), "cpin");
    int st = hf_parse_creg(s, n);
    FZ_CHECK(st >= -1 && st <= 99, "creg %d", st);
    FZ_CHECK(hf_creg_stat_text(st) != NULL, "creg text");
    const hf_model_entry *m = hf_supported_model(s, n);
    FZ_CHECK(!m || (m->model && m->min_firmware), "model");
    unsigned long u = 0;
    for (size_t i = 0; i < n && i < 4; i++)
        u = u * 256 + (unsigned char)s[i];
    long code = (long)(u % 100000);
    FZ_CHECK(hf_fota_error_meaning(code - 1000) != NULL, "meaning");
    FZ_CHECK(hf_fota_state_name((int)(code % 2000) - 1000) != NULL, "state name");
    FZ_CHECK(hf_fota_phase_from_name(s, n) < HF_PH_COUNT, "phase name");
    FZ_CHECK(hf_contains_ci(s, n, "collision") >= 0, "contains");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 11) {
    case 0: t_fotastate(s, n); break;
    case 1: t_fotadlq(s, n); break;
    case 2: t_fotacfg(s, n); break;
    case 3: t_fotamode(s, n); break;
    case 4: t_version(s, n); break;
    case 5: t_version3(s, n); break;
    case 6: t_final(s, n); break;
    case 7: t_journal(s, n); break;
    case 8: t_snapshot(s, n); break;
    case 9: t_tokenizer(s, n); break;
    case 10: t_misc(s, n); break;
    }
    return 0;
}
