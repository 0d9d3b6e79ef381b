/* test_fota_parse.c — the FOTA field parsers and tables, table-driven, including
 * hostile input (no terminator, NUL bytes, huge fields, truncation at every offset). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fota_parse.h"

#define L(s) s, sizeof(s) - 1

static void test_versions(void)
{
    static const struct { const char *a, *b; int cmp; } cmp[] = {
        {"12.815.01.03.00", "12.815.01.04.00", -1},
        {"12.815.01.04.00", "12.815.01.04.00", 0},
        {"12.107.08.05.457", "12.107.08.05.99", 1},       /* AT&T 3-digit last field */
        {" \"12.815.01.04.00\" ", "12.815.01.04.00", 0}, /* normalised */
        {"1.2", "1.2.0", 0},
        {"11.815.00.78.00", "12.105.29.00.00", -1},
        {"12.105.29.00.01", "12.105.29.00.00", 1},
    };
    for (size_t i = 0; i < sizeof cmp / sizeof cmp[0]; i++) {
        hf_version a, b;
        CHECK_INT(hf_version_parse(cmp[i].a, strlen(cmp[i].a), &a, NULL), 0);
        CHECK_INT(hf_version_parse(cmp[i].b, strlen(cmp[i].b), &b, NULL), 0);
        CHECK_INT(hf_version_compare(&a, &b), cmp[i].cmp);
        CHECK_INT(hf_version_compare(&b, &a), -cmp[i].cmp);
    }
    hf_version v;
    CHECK_INT(hf_version_parse(L(" \"12.815.01.04.00\"\t"), &v, NULL), 0);
    CHECK_STR(v.text, "12.815.01.04.00");
    static const char *bad[] = {"", " ", "abc", "1..2", "1.2a", "-1.2", "12", "1.2.",
                                ".1.2", "1. 2", "1234567.1", "1.2.3.4.5.6.7.8.9", "\"\"",
                                "12.815.01.04.00 junk", "0x1.2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hf_error e;
        hf_error_clear(&e);
        CHECK(hf_version_parse(bad[i], strlen(bad[i]), &v, &e) == -1, "accepted \"%s\"", bad[i]);
        CHECK(e.code && strcmp(e.code, "EPARSE") == 0, "code for \"%s\"", bad[i]);
    }
    CHECK_INT(hf_version_parse("1.2\0.3", 6, &v, NULL), -1);
    CHECK_INT(hf_version_parse(NULL, 3, &v, NULL), -1);
}

static void test_fotastate(void)
{
    hf_fotastate st;
    hf_error e;
    CHECK_INT(hf_parse_fotastate(L("^FOTASTATE: 10"), &st, &e), 0);
    CHECK_INT(st.state, 10);
    CHECK_INT(st.error_code, -1);
    CHECK_INT(hf_parse_fotastate(L("^FOTASTATE:30"), &st, &e), 0);
    CHECK_INT(st.state, 30);
    CHECK_INT(hf_parse_fotastate(L("^FOTASTATE: 13,20"), &st, &e), 0);
    CHECK_INT(st.state, 13);
    CHECK_INT(st.error_code, 20);
    CHECK_INT(hf_parse_fotastate(L("^FOTASTATE: 20,52"), &st, &e), 0);
    CHECK_INT(st.error_code, 52);
    CHECK_INT(hf_parse_fotastate(
                  L("^FOTASTATE: 12,12.815.01.04.00,79114,\"Support send SMS background\""),
                  &st, &e), 0);
    CHECK_INT(st.state, 12);
    CHECK_INT(st.has_version, 1);
    CHECK_STR(st.version.text, "12.815.01.04.00");
    CHECK_INT(st.size, 79114);
    CHECK_STR(st.desc, "Support send SMS background");
    /* commas and ';' inside the description */
    CHECK_INT(hf_parse_fotastate(L("^FOTASTATE: 12,12.815.01.04.00,5,\"a, b;c,d;e\""), &st, &e), 0);
    CHECK_STR(st.desc, "a, b;c,d;e");
    /* a query answer may carry the bare state: valid, version unknown */
    CHECK_INT(hf_parse_fotastate(L("^FOTASTATE: 12"), &st, &e), 0);
    CHECK_INT(st.has_version, 0);
    CHECK_INT(hf_parse_fotastate(L("^FOTASTATE: 12,12.815.01.04.00,5"), &st, &e), 0);
    CHECK_STR(st.desc, "");
    /* five records of 255 characters: 1279 bytes of description, kept whole */
    char big[1400];
    size_t n = (size_t)snprintf(big, sizeof big, "^FOTASTATE: 12,1.2.3,9,\"");
    for (int r = 0; r < 5; r++) {
        memset(big + n, 'a' + r, 255);
        n += 255;
        if (r < 4)
            big[n++] = ';';
    }
    big[n++] = '"';
    CHECK_INT(hf_parse_fotastate(big, n, &st, &e), 0);
    CHECK_INT(strlen(st.desc), 5 * 255 + 4);
    CHECK_INT(st.desc_truncated, 0);
    /* an over-long description is cut, never overflows */
    char *huge = malloc(5000);
    size_t hn = (size_t)snprintf(huge, 5000, "^FOTASTATE: 12,1.2.3,9,\"");
    memset(huge + hn, 'x', 4000);
    hn += 4000;
    CHECK_INT(hf_parse_fotastate(huge, hn, &st, &e), 0);
    CHECK_INT(st.desc_truncated, 1);
    CHECK_INT(strlen(st.desc), HF_FOTA_DESC_MAX - 1);
    free(huge);
    /* control characters do not reach the description */
    CHECK_INT(hf_parse_fotastate(L("^FOTASTATE: 12,1.2,9,\"a\rb\""), &st, &e), 0);
    CHECK_STR(st.desc, "a?b");
    CHECK_INT(hf_parse_fotastate(L("^FOTASTATE: 12,1.2,4000000000"), &st, &e), 0);
    CHECK_INT(st.size, 4000000000UL);
    static const char *bad[] = {"^FOTASTATE:", "^FOTASTATE: x", "FOTASTATE: 10",
                                "^FOTASTATE: 10x", "^FOTASTATE: 1000", "^FOTASTATE: 13,",
                                "^FOTASTATE: 13,x", "^FOTASTATE: 12,", "^FOTASTATE: 12,abc,5",
                                "^FOTASTATE: 12,1.2", "^FOTASTATE: 12,1.2,x",
                                "^FOTASTATE: 20,1,2", "^FOTASTATE: 12,1.2,99999999999,\"\"",
                                /* over HF_FOTA_SIZE_MAX: its journal could not be read back */
                                "^FOTASTATE: 12,1.2,4000000001,\"\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(hf_parse_fotastate(bad[i], strlen(bad[i]), &st, &e) == -1, "accepted \"%s\"",
              bad[i]);
    /* every truncation of a valid line parses or fails cleanly (ASan watches reads) */
    const char *full = "^FOTASTATE: 12,12.815.01.04.00,79114,\"Support send SMS background\"";
    size_t odd = 0, parsed = 0;
    for (size_t k = 0; k <= strlen(full); k++) {
        char *cut = malloc(k ? k : 1);
        memcpy(cut, full, k);
        int rc = hf_parse_fotastate(cut, k, &st, NULL);
        odd += rc != 0 && rc != -1;
        parsed += rc == 0;
        free(cut);
    }
    /* one check for all truncations: each one parses (0) or is refused (-1), the whole
     * line parses, and one cut short of its version does not */
    CHECK(odd == 0 && hf_parse_fotastate(full, strlen(full), &st, NULL) == 0 && parsed >= 1 && parsed < strlen(full),
          "truncations of %s: %zu results not 0/-1, %zu parsed", full, odd, parsed);
}

static void test_dlq_cfg_mode(void)
{
    hf_fotadlq d;
    CHECK_INT(hf_parse_fotadlq(L("^FOTADLQ: 1,\"IMAGE\",1324,1324"), &d, NULL), 0);
    CHECK_INT(d.index, 1);
    CHECK_STR(d.name, "IMAGE");
    CHECK_INT(d.done, 1324);
    CHECK_INT(d.total, 1324);
    CHECK_INT(hf_parse_fotadlq(L("^FOTADLQ: 2,\"XNV\",47104,77778"), &d, NULL), 0);
    CHECK_INT(d.done, 47104);
    CHECK_INT(d.total, 77778);
    CHECK_INT(hf_parse_fotadlq(L("^FOTADLQ: 2,\"X,Y\",1,2"), &d, NULL), 0);
    CHECK_STR(d.name, "X,Y");
    /* 10-digit byte counts parse alike on every CPU: unsigned long is 32 bits on
     * mips/armhf routers, where these were refused (found by make check-cross) */
    CHECK_INT(hf_parse_fotadlq(L("^FOTADLQ: 1,\"IMAGE\",4294967296,9999999999"), &d, NULL), 0);
    CHECK(d.done == 4294967296ULL && d.total == 9999999999ULL, "10-digit counts: %llu/%llu",
          (unsigned long long)d.done, (unsigned long long)d.total);
    static const char *bad[] = {"^FOTADLQ: 1,\"IMAGE\",1324", "^FOTADLQ: 1,\"IMAGE,1,2",
                                "^FOTADLQ: ,\"A\",1,2", "^FOTADLQ: 1,\"A\",-1,2",
                                "^FOTADLQ: 1,\"A\",1,2,3", "^FOTADLQ: 1,\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",1,2",
                                "^FOTADLQ: 1,\"A\",99999999999,2", "^FOTADL: 1,\"A\",1,2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(hf_parse_fotadlq(bad[i], strlen(bad[i]), &d, NULL) == -1, "accepted \"%s\"", bad[i]);

    hf_fotacfg c;
    CHECK_INT(hf_parse_fotacfg(L("^FOTACFG: \"1234\",\"\",\"\",2"), &c, NULL), 0);
    CHECK_STR(c.apn, "1234");
    CHECK_STR(c.user, "");
    CHECK_INT(c.auth, 2);
    CHECK_INT(hf_parse_fotacfg(L("^FOTACFG: \"a\",\"b\",\"c\",9"), &c, NULL), -1);
    CHECK_INT(hf_parse_fotacfg(L("^FOTACFG: \"a\",\"b\",2"), &c, NULL), -1);

    hf_fotamode m;
    CHECK_INT(hf_parse_fotamode(L("^FOTAMODE: 0,0,1,1"), &m, NULL), 0);
    CHECK_INT(m.auto_upgrade, 1);
    CHECK_INT(m.resume, 1);
    CHECK_INT(m.has_period, 0);
    CHECK_INT(hf_parse_fotamode(L("^FOTAMODE: 1,0,0,1,7"), &m, NULL), 0);
    CHECK_INT(m.auto_query, 1);
    CHECK_INT(m.period, 7);
    CHECK_INT(hf_parse_fotamode(L("^FOTAMODE: 2,0,0,1"), &m, NULL), -1);
    CHECK_INT(hf_parse_fotamode(L("^FOTAMODE: 0,0,1"), &m, NULL), -1);
    CHECK_INT(hf_parse_fotamode(L("^FOTAMODE: 0,0,1,1,70000"), &m, NULL), -1);
}

static void test_sim_reg_tables(void)
{
    char what[16];
    CHECK_INT(hf_parse_cpin(L("+CPIN: READY"), what, sizeof what), 1);
    CHECK_INT(hf_parse_cpin(L("+CPIN: SIM PIN"), what, sizeof what), 0);
    CHECK_STR(what, "SIM PIN");
    CHECK_INT(hf_parse_cpin(L("+CPIN: READY2"), what, sizeof what), 0);
    CHECK_INT(hf_parse_cpin(L("+CREG: 1"), what, sizeof what), -1);
    CHECK_INT(hf_parse_creg(L("+CREG: 0,1")), 1);
    CHECK_INT(hf_parse_creg(L("+CREG: 2,5,\"00C3\",\"0000001A\",7")), 5);
    CHECK_INT(hf_parse_creg(L("+CREG: 1,\"00C3\",\"0000001A\"")), 1);
    CHECK_INT(hf_parse_creg(L("+CGREG: 0,2")), 2);
    CHECK_INT(hf_parse_creg(L("+CGREG: 3")), 3);
    CHECK_INT(hf_parse_creg(L("+COPS: 0")), -1);
    CHECK_INT(hf_creg_registered(1), 1);
    CHECK_INT(hf_creg_registered(5), 1);
    CHECK_INT(hf_creg_registered(2), 0);

    const hf_model_entry *m = hf_supported_model(L(" mu609 "));
    CHECK(m != NULL, "MU609 known");
    CHECK_STR(m->min_firmware, "12.105.29.00.00");
    m = hf_supported_model(L("MU609 (AT&T special)"));
    CHECK(m && strcmp(m->min_firmware, "12.107.08.05.457") == 0, "AT&T");
    CHECK(hf_supported_model(L("MU509-b")) != NULL, "MU509-b");
    CHECK(hf_supported_model(L("ME909")) == NULL, "ME909 not in table");
    size_t n;
    hf_model_table(&n);
    CHECK_INT(n, 7);

    CHECK_STR(hf_fota_error_meaning(52), "MD5 check failed");
    CHECK_STR(hf_fota_error_meaning(54), "FOTA collision state");
    CHECK_STR(hf_fota_error_meaning(2), "previous command not complete");
    CHECK_STR(hf_fota_error_meaning(13), "network or link could not be opened/established");
    CHECK_STR(hf_fota_error_meaning(114), "1K-Xmodem transfer error");
    CHECK_STR(hf_fota_error_meaning(155), "flash, flag or NV error");
    CHECK_STR(hf_fota_error_meaning(999), "not in the table");
    CHECK_STR(hf_fota_error_meaning(6), "not in the table");
    CHECK_STR(hf_fota_error_meaning(-1), "no code reported");

    static const struct { int n; const char *name; } names[] = {
        {10, "idle"}, {11, "querying"}, {12, "new_version"}, {13, "query_failed"},
        {14, "no_new_version"}, {20, "download_failed"}, {30, "downloading"},
        {31, "download_pending"}, {40, "downloaded"}, {50, "upgrading"}, {90, "upgrade_ok"},
        {80, "unknown"}, {-1, "unknown"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        CHECK_STR(hf_fota_state_name(names[i].n), names[i].name);
}

/* Model matching as ATI prints it (issue 11.5): family, variant letter, case, the
 * table's own row names, and the firmware family for MU509-c and the AT&T rows. */
static const char *row_of(const char *model, const char *running)
{
    hf_version v;
    int have = running && hf_version_parse(running, strlen(running), &v, NULL) == 0;
    const hf_model_entry *e = hf_model_match(model, strlen(model), have ? &v : NULL);
    return e ? e->model : "(none)";
}

static void test_model_match(void)
{
    static const struct { const char *model, *running, *row; } cases[] = {
        {"MU509", "12.815.03.01.00", "MU509-b"},
        {"MU509", "11.815.00.78.00", "MU509-c"},
        {"MU509", NULL, "MU509-b"},
        {"MU509-b", "11.815.00.78.00", "MU509-b"},
        {"mu509-G", NULL, "MU509-g"},
        {"MU509 c", NULL, "MU509-c"},
        {"MU509-C", "11.815.00.78.00", "MU509-c"},
        {"HUAWEI MU509-b", NULL, "MU509-b"},
        {"MU609", "12.105.29.00.00", "MU609"},
        {"MU609-b", "12.105.29.00.00", "MU609"},
        {"mu609", NULL, "MU609"},
        {"MU609 (mini PCIE)", "12.105.29.00.00", "MU609 (mini PCIe)"},
        {"MU609 (AT&T Special)", NULL, "MU609 (AT&T special)"},
        {"MU609 (AT&T Special)", "12.107.08.05.457", "MU609 (AT&T special)"},
        {"AT&T mini PCIE Special", NULL, "MU609 (AT&T mini PCIe special)"},
        {"MU609 (AT&T mini PCIe special)", NULL, "MU609 (AT&T mini PCIe special)"},
        {"MU609", "12.107.07.05.457", "MU609 (AT&T mini PCIe special)"},
        {"MU609 (mini PCIe)", "12.107.07.05.457", "MU609 (AT&T mini PCIe special)"},
        {"MU6090", NULL, "(none)"},
        {"XMU609", NULL, "(none)"},
        {"ME909", NULL, "(none)"},
        {"", NULL, "(none)"},
        {"MU709", NULL, "(none)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = row_of(cases[i].model, cases[i].running);
        if (strcmp(got, cases[i].row) != 0)
            fprintf(stderr, "model \"%s\" on %s: row %s, expected %s\n", cases[i].model,
                    cases[i].running ? cases[i].running : "?", got, cases[i].row);
        CHECK(strcmp(got, cases[i].row) == 0, cases[i].model);
    }
    CHECK(hf_model_key_matches("MU709", L("MU709")), "key exact");
    CHECK(hf_model_key_matches("mu709", L(" MU709-s ")), "key + suffix, case");
    CHECK(hf_model_key_matches("MU709", L("MU709 (mini PCIe)")), "key + variant");
    CHECK(!hf_model_key_matches("MU709", L("MU7090")), "key inside a longer name");
    CHECK(!hf_model_key_matches("MU709-s", L("MU709")), "key longer than the model");
    CHECK(!hf_model_key_matches("", L("MU709")), "empty key");
}

/* Random bytes into every parser: no crash, no read past len (ASan build). */
static void test_garbage(void)
{
    unsigned s = 12345;
    int odd = 0, accepted = 0;
    static const char *prefixes[] = {"^FOTASTATE: ", "^FOTADLQ: ", "^FOTACFG: ", "^FOTAMODE: ",
                                     "+CPIN: ", "+CREG: ", ""};
    for (int i = 0; i < 20000; i++) {
        char buf[64];
        const char *p = prefixes[i % 7];
        size_t pl = strlen(p), n = pl;
        memcpy(buf, p, pl);
        s = s * 1103515245u + 12345u;
        size_t extra = (s >> 16) % (sizeof buf - pl);
        static const char alphabet[] = "0123456789,.\"; \0abc\r";
        for (size_t k = 0; k < extra; k++) {
            s = s * 1103515245u + 12345u;
            buf[n++] = alphabet[(s >> 16) % (sizeof alphabet - 1)];
        }
        char *heap = malloc(n ? n : 1);
        memcpy(heap, buf, n);
        hf_fotastate st;
        hf_fotadlq d;
        hf_fotacfg c;
        hf_fotamode m;
        hf_version v;
        char w[8];
        int r[5] = {hf_parse_fotastate(heap, n, &st, NULL), hf_parse_fotadlq(heap, n, &d, NULL),
                    hf_parse_fotacfg(heap, n, &c, NULL), hf_parse_fotamode(heap, n, &m, NULL),
                    hf_version_parse(heap, n, &v, NULL)};
        for (int j = 0; j < 5; j++)
            odd += r[j] != 0 && r[j] != -1;
        w[sizeof w - 1] = 'x';
        int pin = hf_parse_cpin(heap, n, w, sizeof w);
        odd += pin < -1 || pin > 1 || (pin >= 0 && memchr(w, '\0', sizeof w) == NULL);
        odd += hf_parse_creg(heap, n) < -1;
        accepted += r[0] == 0;
        free(heap);
    }
    /* one check for the 20000 inputs: every parser keeps its return contract (0 or -1;
     * +CPIN -1/0/1 with a terminated code; +CREG >= -1); ASan watches the reads */
    CHECK(odd == 0, "garbage (20000 inputs): %d results outside the contract", odd);
    CHECK(accepted > 0, "garbage: no ^FOTASTATE input parsed (the generator tests nothing)");
}

/* The IMEI check digit (3GPP TS 23.003): what makes one AT+CGSN reading trustworthy. */
static void test_imei_checked(void)
{
    /* the form: 14 to 17 digits, counted by the length given (no NUL needed) */
    CHECK_INT(hf_imei_form("35123456789012", 14), 1);
    CHECK_INT(hf_imei_form("35123456789012345", 17), 1);
    CHECK_INT(hf_imei_form("3512345678901", 13), 0);
    CHECK_INT(hf_imei_form("351234567890123456", 18), 0);
    CHECK_INT(hf_imei_form("3512345678901x4", 15), 0);
    CHECK_INT(hf_imei_form("351234567890124 trailing", 15), 1);
    CHECK_INT(hf_imei_checked("867530900000009"), 1);    /* the simulator's */
    CHECK_INT(hf_imei_checked("490154203237518"), 1);
    CHECK_INT(hf_imei_checked("351234567890124"), 1);
    CHECK_INT(hf_imei_checked("351234567890123"), 0);    /* check digit wrong */
    CHECK_INT(hf_imei_checked("86753090000009"), 0);     /* one byte dropped */
    CHECK_INT(hf_imei_checked("8675309000000090"), 0);   /* 16 digits (an IMEISV) */
    CHECK_INT(hf_imei_checked("86753090000000a"), 0);
    CHECK_INT(hf_imei_checked(""), 0);
}

int main(void)
{
    CHECK_SUITE("fota_parse");
    test_imei_checked();
    test_versions();
    test_fotastate();
    test_dlq_cfg_mode();
    test_sim_reg_tables();
    test_model_match();
    test_garbage();
    return CHECK_END();
}
