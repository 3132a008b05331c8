/* Shared helpers for the libFuzzer targets in tests/fuzz/ (one fuzz_<name>.c per parser).
 *
 * Every target: quiets the logger (a target must never print what it was fed: inputs are
 * shaped like tokens and Secrets), frees everything it is given (LeakSanitizer is on), and
 * checks cheap invariants with FUZZ_CHECK, which aborts so that libFuzzer keeps the input. */
#ifndef PGTR_FUZZ_H
#define PGTR_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A failed invariant: says which (never with input bytes: they may be secret-shaped) and
 * aborts, so libFuzzer writes the input as a crash artifact. */
#define FUZZ_CHECK(cond)                                                                      \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "fuzz invariant failed at %s:%d: %s\n", __FILE__, __LINE__,      \
                    #cond);                                                                   \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

/* A copy of data[0..size) with a NUL after it (as a C string it ends at data's first NUL, if
 * any); free() it. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Whether needle[0..n) occurs in hay (a C string). */
static inline bool fuzz_contains(const char *hay, const char *needle, size_t n)
{
    return n && memmem(hay, strlen(hay), needle, n) != NULL;
}

/* A private directory for targets whose parser reads files: under $FUZZ_TMPDIR (run.sh sets
 * /dev/shm, or build/fuzz/tmp), else $TMPDIR, else /tmp. Made once; removed at exit with the
 * files named by fuzz_tmpfile (a crash leaves a pgtr-fuzz-* directory behind). */
#define FUZZ_TMPFILES_MAX 8
static char fuzz_dir_[4096];
static char fuzz_files_[FUZZ_TMPFILES_MAX][4200];
static size_t fuzz_n_files_;

static inline void fuzz_tmp_cleanup_(void)
{
    for (size_t i = 0; i < fuzz_n_files_; i++)
        unlink(fuzz_files_[i]);
    if (fuzz_dir_[0])
        rmdir(fuzz_dir_);
}

static inline const char *fuzz_tmpdir(void)
{
    const char *base = getenv("FUZZ_TMPDIR");

    if (fuzz_dir_[0])
        return fuzz_dir_;
    if (!base || !*base)
        base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    snprintf(fuzz_dir_, sizeof(fuzz_dir_), "%s/pgtr-fuzz-XXXXXX", base);
    if (!mkdtemp(fuzz_dir_)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fuzz_tmp_cleanup_);
    return fuzz_dir_;
}

/* The path of file name in fuzz_tmpdir(), removed at exit. The pointer stays valid. */
static inline const char *fuzz_tmpfile(const char *name)
{
    char *p;

    FUZZ_CHECK(fuzz_n_files_ < FUZZ_TMPFILES_MAX);
    p = fuzz_files_[fuzz_n_files_++];
    snprintf(p, sizeof(fuzz_files_[0]), "%s/%s", fuzz_tmpdir(), name);
    return p;
}

/* Replaces path's contents with data[0..size). */
static inline void fuzz_write(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");

    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(size == 0 || fwrite(data, 1, size, f) == size);
    FUZZ_CHECK(fclose(f) == 0);
}

/* Targets call this from LLVMFuzzerInitialize. */
static inline void fuzz_quiet(void)
{
    log_set_level(LOG_OFF);
}

#endif
