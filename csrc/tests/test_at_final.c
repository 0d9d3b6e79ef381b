/* test_at_final.c — final result classification: kinds, CME/CMS codes and text,
 * and lines that only look like finals. */
#include <string.h>

#include "at_final.h"
#include "check.h"

static hf_final f;

static hf_final_kind parse(const char *s)
{
    return hf_final_parse(s, strlen(s), &f);
}

static int text_is(const char *want)
{
    return f.text_len == strlen(want) && memcmp(f.text, want, f.text_len) == 0;
}

static void test_kinds(void)
{
    static const struct {
        const char *line;
        hf_final_kind kind;
        const char *name;
    } rows[] = {
        {"OK", HF_FINAL_OK, "OK"},
        {"ERROR", HF_FINAL_ERROR, "ERROR"},
        {"+CME ERROR: 10", HF_FINAL_CME, "CME"},
        {"+CMS ERROR: 500", HF_FINAL_CMS, "CMS"},
        {"COMMAND NOT SUPPORT", HF_FINAL_NOT_SUPPORT, "NOT_SUPPORT"},
        {"TOO MANY PARAMETERS", HF_FINAL_TOO_MANY, "TOO_MANY"},
        {"NO CARRIER", HF_FINAL_NO_CARRIER, "NO_CARRIER"},
        {"BUSY", HF_FINAL_BUSY, "BUSY"},
        {"NO ANSWER", HF_FINAL_NO_ANSWER, "NO_ANSWER"},
        {"NO DIALTONE", HF_FINAL_NO_DIALTONE, "NO_DIALTONE"},
        {"  OK  ", HF_FINAL_OK, "OK"},
        {"OKAY", HF_FINAL_NONE, "NONE"},
        {"ok", HF_FINAL_NONE, "NONE"},
        {"OK,", HF_FINAL_NONE, "NONE"},
        {"ERROR 5", HF_FINAL_NONE, "NONE"},
        {"^FOTASTATE: 10", HF_FINAL_NONE, "NONE"},
        {"12.815.01.03.00", HF_FINAL_NONE, "NONE"},
        {"+CME ERRO", HF_FINAL_NONE, "NONE"},
        {"BUSYNESS", HF_FINAL_NONE, "NONE"},
        {"", HF_FINAL_NONE, "NONE"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        CHECK(parse(rows[i].line) == rows[i].kind, "\"%s\" kind %d", rows[i].line, (int)f.kind);
        CHECK_INT(f.kind, rows[i].kind);
        CHECK_STR(hf_final_name(f.kind), rows[i].name);
    }
    /* Explicit length: a NUL inside the line is data, not an end. */
    CHECK_INT(hf_final_parse("OK\0junk", 7, &f), HF_FINAL_NONE);
    CHECK_INT(hf_final_parse("OK\0junk", 2, NULL), HF_FINAL_OK);
    CHECK_INT(hf_final_parse(NULL, 0, &f), HF_FINAL_NONE);
}

static void test_cme_cms(void)
{
    CHECK_INT(parse("+CME ERROR: 10"), HF_FINAL_CME);
    CHECK_INT(f.code, 10);
    CHECK(text_is("10"), "numeric text kept");

    CHECK_INT(parse("+CME ERROR:3"), HF_FINAL_CME);
    CHECK_INT(f.code, 3);

    CHECK_INT(parse("+CME ERROR: FOTA is in collision state  "), HF_FINAL_CME);
    CHECK_INT(f.code, -1);
    CHECK(text_is("FOTA is in collision state"), "text trimmed: %.*s", (int)f.text_len, f.text);

    CHECK_INT(parse("+CME ERROR: \"SIM PIN required\""), HF_FINAL_CME);
    CHECK_INT(f.code, -1);
    CHECK(text_is("\"SIM PIN required\""), "quotes kept raw: %.*s", (int)f.text_len, f.text);

    CHECK_INT(parse("+CME ERROR:"), HF_FINAL_CME);
    CHECK_INT(f.code, -1);
    CHECK_INT(f.text_len, 0);

    CHECK_INT(parse("+CME ERROR: 12a"), HF_FINAL_CME);
    CHECK_INT(f.code, -1);
    CHECK_INT(parse("+CME ERROR: 99999999999999999999999"), HF_FINAL_CME);
    CHECK_INT(f.code, -1);   /* too long for a code: kept as text */

    CHECK_INT(parse("+CMS ERROR: 304"), HF_FINAL_CMS);
    CHECK_INT(f.code, 304);
    CHECK_INT(parse("+CMS ERROR: invalid PDU mode"), HF_FINAL_CMS);
    CHECK(text_is("invalid PDU mode"), "cms text");

    /* Plain finals carry no code and empty text. */
    CHECK_INT(parse("ERROR"), HF_FINAL_ERROR);
    CHECK_INT(f.code, -1);
    CHECK_STR(f.text, "");
}

static void test_codes(void)
{
    CHECK(hf_final_error_code(HF_FINAL_OK) == NULL, "OK is no error");
    CHECK(hf_final_error_code(HF_FINAL_NONE) == NULL, "NONE is no error");
    CHECK_STR(hf_final_error_code(HF_FINAL_ERROR), "EERROR");
    CHECK_STR(hf_final_error_code(HF_FINAL_CME), "ECME");
    CHECK_STR(hf_final_error_code(HF_FINAL_CMS), "ECMS");
    CHECK_STR(hf_final_error_code(HF_FINAL_NOT_SUPPORT), "ENOTSUPPORT");
    CHECK_STR(hf_final_error_code(HF_FINAL_TOO_MANY), "ETOOMANY");
    CHECK_STR(hf_final_error_code(HF_FINAL_NO_CARRIER), "ENOCARRIER");
    CHECK_STR(hf_final_name((hf_final_kind)99), "NONE");
}


/* ---- the lookup by first byte against a plain scan of every final --------
 * reference_parse is the classifier as it was before the lookup by first
 * byte (every row, strlen + memcmp, trim on both sides first): the fast path
 * must classify every final and every near miss exactly as it does. */

static const struct {
    const char *text;
    int is_prefix;
    hf_final_kind kind;
} ref_rows[] = {
    {"OK", 0, HF_FINAL_OK},
    {"ERROR", 0, HF_FINAL_ERROR},
    {"+CME ERROR:", 1, HF_FINAL_CME},
    {"+CMS ERROR:", 1, HF_FINAL_CMS},
    {"COMMAND NOT SUPPORT", 0, HF_FINAL_NOT_SUPPORT},
    {"TOO MANY PARAMETERS", 0, HF_FINAL_TOO_MANY},
    {"NO CARRIER", 0, HF_FINAL_NO_CARRIER},
    {"BUSY", 0, HF_FINAL_BUSY},
    {"NO ANSWER", 0, HF_FINAL_NO_ANSWER},
    {"NO DIALTONE", 0, HF_FINAL_NO_DIALTONE},
};
#define N_REF (sizeof ref_rows / sizeof ref_rows[0])

static int ref_space(char c)
{
    return c == ' ' || c == '\t';
}

static void ref_trim(const char **s, size_t *n)
{
    while (*n && ref_space(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && ref_space((*s)[*n - 1]))
        (*n)--;
}

static long ref_code(const char *s, size_t n)
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

static hf_final_kind reference_parse(const char *line, size_t len, hf_final *out)
{
    const char *s = line;
    size_t n = len;
    out->kind = HF_FINAL_NONE;
    out->code = -1;
    out->text = "";
    out->text_len = 0;
    ref_trim(&s, &n);
    for (size_t i = 0; i < N_REF; i++) {
        size_t tl = strlen(ref_rows[i].text);
        if (n < tl || memcmp(s, ref_rows[i].text, tl) != 0)
            continue;
        if (!ref_rows[i].is_prefix && n != tl)
            continue;
        out->kind = ref_rows[i].kind;
        if (ref_rows[i].is_prefix) {
            const char *t = s + tl;
            size_t tn = n - tl;
            ref_trim(&t, &tn);
            out->text = t;
            out->text_len = tn;
            out->code = ref_code(t, tn);
        }
        return out->kind;
    }
    return HF_FINAL_NONE;
}

static unsigned long compared, differed;

static void compare(const char *line, size_t len)
{
    hf_final a, b;
    hf_final_kind ka = hf_final_parse(line, len, &a);
    hf_final_kind kb = reference_parse(line, len, &b);
    compared++;
    int same = ka == kb && a.kind == b.kind && a.code == b.code && a.text_len == b.text_len &&
               memcmp(a.text, b.text, a.text_len) == 0 &&
               hf_final_parse(line, len, NULL) == kb;
    if (!same) {
        differed++;
        if (differed <= 5)
            CHECK(0, "\"%.*s\" (%zu bytes): fast %d/%ld, reference %d/%ld", (int)len, line, len,
                  (int)ka, a.code, (int)kb, b.code);
    }
}

/* Every final; each with every byte value at each position (first byte
 * included: the lookup's key), cut short at every length, with spaces, tabs,
 * codes and trailing bytes around it; lowercase. */
static void test_lookup_matches_scan(void)
{
    static const char *const tails[] = {"", " ", "\t", " 10", ": 3", "X", "  500  ", " text here",
                                        "\0", ",", "0"};
    static const char *const heads[] = {"", " ", "\t", "  \t", "X", "+", "^"};
    char buf[128];
    for (size_t r = 0; r < N_REF; r++) {
        const char *t = ref_rows[r].text;
        size_t tl = strlen(t);
        for (size_t h = 0; h < sizeof heads / sizeof heads[0]; h++) {
            for (size_t k = 0; k < sizeof tails / sizeof tails[0]; k++) {
                size_t hl = strlen(heads[h]), kl = k == 8 ? 1 : strlen(tails[k]);
                memcpy(buf, heads[h], hl);
                memcpy(buf + hl, t, tl);
                memcpy(buf + hl + tl, tails[k], kl);
                compare(buf, hl + tl + kl);
            }
        }
        for (size_t cut = 0; cut <= tl; cut++)
            compare(t, cut);
        for (size_t pos = 0; pos < tl; pos++) {
            for (int v = 0; v < 256; v++) {
                memcpy(buf, t, tl);
                buf[pos] = (char)v;
                compare(buf, tl);
                memcpy(buf + tl, " 7", 2);
                compare(buf, tl + 2);
            }
        }
        for (size_t i = 0; i < tl; i++)
            buf[i] = (char)(t[i] >= 'A' && t[i] <= 'Z' ? t[i] + 32 : t[i]);
        compare(buf, tl);
    }
    /* Every single byte and every pair of bytes as a whole line. */
    for (int v = 0; v < 256; v++) {
        buf[0] = (char)v;
        compare(buf, 1);
        for (int w = 0; w < 256; w++) {
            buf[1] = (char)w;
            compare(buf, 2);
        }
    }
    CHECK(differed == 0, "%lu of %lu lines classified differently", differed, compared);
    CHECK(compared > 20000, "compared %lu lines", compared);
}

/* hf_final_may_start lets through every byte a final can start with (each row's
 * first byte, and the spaces a final may be preceded by), and turns away a line
 * that hf_final_parse classifies as no final, byte by byte. */
static void test_may_start(void)
{
    for (size_t i = 0; i < N_REF; i++)
        CHECK(hf_final_may_start((unsigned char)ref_rows[i].text[0]), "row %s", ref_rows[i].text);
    CHECK(hf_final_may_start(' ') && hf_final_may_start('\t'), "leading space or tab");
    for (int c = 0; c < 256; c++) {
        if (hf_final_may_start((unsigned char)c))
            continue;
        /* any row's text behind an unexpected first byte is no final */
        for (size_t i = 0; i < N_REF; i++) {
            char line[40];
            int n = snprintf(line, sizeof line, "%c%s", c ? c : 'x', ref_rows[i].text);
            CHECK_INT(hf_final_parse(line, (size_t)n, NULL), HF_FINAL_NONE);
        }
    }
    CHECK(!hf_final_may_start('^') && !hf_final_may_start('1') && !hf_final_may_start('A'),
          "URCs, versions, echoes are turned away");
}

int main(void)
{
    CHECK_SUITE("at_final");
    test_kinds();
    test_cme_cms();
    test_codes();
    test_lookup_matches_scan();
    test_may_start();
    return CHECK_END();
}
