/*
 * check.h — the tiny C test framework of hwfota's unit tests.
 *
 * CHECK(cond, fmt, ...) records one assertion; a failed one prints where and why.
 * CHECK_END() prints the suite's tally in the form the test runner
 * (spec/run-tests.sh) collects: "#tally <suite> passed=N failed=M", and returns
 * the exit status.
 */
#ifndef HF_CHECK_H
#define HF_CHECK_H

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *suite;
    unsigned long passed, failed;
} hf_check_tally;

static hf_check_tally hf_check_t = {"c", 0, 0};

#define CHECK_SUITE(name) (hf_check_t.suite = (name))

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) {                                                             \
            hf_check_t.passed++;                                                \
        } else {                                                                \
            hf_check_t.failed++;                                                \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

#define CHECK_STR(got, want)                                                    \
    CHECK(strcmp((got), (want)) == 0, "got \"%s\", want \"%s\"", (got), (want))

#define CHECK_INT(got, want)                                                    \
    CHECK((long)(got) == (long)(want), "got %ld, want %ld", (long)(got), (long)(want))

#define CHECK_END()                                                             \
    (printf("#tally %s passed=%lu failed=%lu\n", hf_check_t.suite,              \
            hf_check_t.passed, hf_check_t.failed),                              \
     hf_check_t.failed ? 1 : 0)

#endif
