/*
 * check.h — the tiny C test framework of hwfota's unit tests.
 *
 * CHECK(cond, fmt, ...) records one assertion; a failed one prints where and why.
 * REQUIRE(cond, fmt, ...) is for setup steps (an init, a submit, an openpty): a setup
 * step that succeeds is not a test, so it counts nothing; one that fails counts one
 * failure, prints where and why, and ends the binary there (with its tally), since
 * nothing after a failed setup would mean anything.
 * CHECK_END() prints the suite's tally in the form the test runner
 * (spec/run-tests.sh) collects: "#tally <suite> passed=N failed=M", and returns
 * the exit status.
 */
#ifndef HF_CHECK_H
#define HF_CHECK_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

#define REQUIRE(cond, ...)                                                      \
    do {                                                                        \
        if (!(cond)) {                                                          \
            hf_check_t.failed++;                                                \
            fprintf(stderr, "FAIL (setup) %s:%d: %s: ", __FILE__, __LINE__,      \
                    #cond);                                                     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
            fflush(stderr);                                                     \
            printf("#tally %s passed=%lu failed=%lu\n", hf_check_t.suite,       \
                   hf_check_t.passed, hf_check_t.failed);                       \
            fflush(stdout);                                                     \
            _exit(1);                                                           \
        }                                                                       \
    } while (0)

#define REQUIRE_INT(got, want)                                                  \
    REQUIRE((long)(got) == (long)(want), "got %ld, want %ld", (long)(got), (long)(want))

#define CHECK_STR(got, want)                                                    \
    CHECK(strcmp((got), (want)) == 0, "got \"%s\", want \"%s\"", (got), (want))

/* long long, not long: long is 32 bits on the cross targets (make check-cross), where
 * values 2^32 apart would compare equal. */
#define CHECK_INT(got, want)                                                    \
    CHECK((long long)(got) == (long long)(want), "got %lld, want %lld",         \
          (long long)(got), (long long)(want))

#define CHECK_END()                                                             \
    (printf("#tally %s passed=%lu failed=%lu\n", hf_check_t.suite,              \
            hf_check_t.passed, hf_check_t.failed),                              \
     hf_check_t.failed ? 1 : 0)

#endif
