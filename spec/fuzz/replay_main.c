/*
 * replay_main.c — a main() for a libFuzzer harness without libFuzzer: runs
 * LLVMFuzzerTestOneInput once on every file named (directories: every regular file
 * in them, sorted), each in an exact-size heap buffer so a sanitizer sees any read
 * past the end. Prints "#tally fuzz-<name> passed=<files> failed=0"; a finding
 * aborts the process (the caller counts the missing tally as a failure), after
 * "replay: <file>" names the input.
 *
 *   build/fuzz-replay/fuzz_at spec/fuzz/corpus/fuzz_at
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef HARNESS_NAME
#define HARNESS_NAME "harness"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned long files, failed;

static void run_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        failed++;
        return;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t k;
    while (buf && (k = fread(buf + n, 1, cap - n, fp)) > 0) {
        n += k;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        }
    }
    fclose(fp);
    if (!buf) {
        failed++;
        return;
    }
    uint8_t *exact = malloc(n ? n : 1);   /* exact size: ASan catches over-reads */
    if (!exact) {
        free(buf);
        failed++;
        return;
    }
    memcpy(exact, buf, n);
    free(buf);
    fprintf(stderr, "replay: %s\n", path);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    files++;
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: no such file or directory\n", path);
        failed++;
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        run_file(path);
        return;
    }
    DIR *d = opendir(path);
    if (!d) {
        failed++;
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            char **nn = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof *names);
            if (!nn)
                break;
            names = nn;
        }
        size_t l = strlen(path) + strlen(e->d_name) + 2;
        names[n] = malloc(l);
        if (!names[n])
            break;
        snprintf(names[n], l, "%s/%s", path, e->d_name);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp);
    for (size_t i = 0; i < n; i++) {
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
            run_file(names[i]);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        run_path(argv[i]);
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        failed++;
    }
    if (files == 0)
        failed++;       /* an empty corpus proves nothing */
    printf("#tally fuzz-%s passed=%lu failed=%lu\n", HARNESS_NAME, files, failed);
    return failed ? 1 : 0;
}
