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

int main(void)
{
    CHECK_SUITE("at_final");
    test_kinds();
    test_cme_cms();
    test_codes();
    return CHECK_END();
}
