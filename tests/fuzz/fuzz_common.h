// Helpers shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.c).
//
// Each harness defines LLVMFuzzerTestOneInput (and may define
// LLVMFuzzerInitialize). `make fuzz` links it with libFuzzer under
// ASan + UBSan; the normal build links it with tests/fuzz/replay.c, a main
// that feeds every file of the committed corpus to it (tests/cli/test_fuzz.sh),
// so inputs that once crashed stay fixed.
#ifndef COLLM_FUZZ_COMMON_H
#define COLLM_FUZZ_COMMON_H

#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

// A harness-detected violation (not a sanitizer report): print and abort so
// libFuzzer saves the input as a crash.
#define FUZZ_ASSERT(cond, ...)                                                         \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fuzz: %s:%d: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                              \
            fprintf(stderr, "\n");                                                     \
            abort();                                                                   \
        }                                                                              \
    } while (0)

// Values added into here count as used: decoding and forward passes whose
// results are otherwise ignored cannot be optimised away.
static volatile float fuzz_sink;

// A file holding exactly data[0..n) that the library can open by path: an
// in-memory file (memfd) reached through /proc/self/fd, rewritten per input.
typedef struct {
    int fd;
    char path[64];
} fuzz_file;

static inline void fuzz_file_init(fuzz_file *f, const char *name) {
    f->fd = memfd_create(name, 0);
    if (f->fd < 0) {
        fprintf(stderr, "fuzz: memfd_create: %s\n", strerror(errno));
        abort();
    }
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
}

static inline void fuzz_file_set(fuzz_file *f, const uint8_t *data, size_t n) {
    if (ftruncate(f->fd, 0) != 0 || (n && pwrite(f->fd, data, n, 0) != (ssize_t)n)) {
        fprintf(stderr, "fuzz: cannot write the memfd: %s\n", strerror(errno));
        abort();
    }
}

// ../shared (or $COLLM_SHARED): the models the tokenizer harness loads.
static inline const char *fuzz_shared_path(const char *rel) {
    static char buf[4096];
    const char *s = getenv("COLLM_SHARED");
    snprintf(buf, sizeof buf, "%s/%s", s && *s ? s : "../shared", rel);
    return buf;
}

// A private scratch folder for harnesses that need real files (atomic
// writes): under $TMPDIR, else /dev/shm (memory: the fsync of every atomic
// write costs nothing there, 15x the execs of a disk /tmp), else /tmp.
static inline const char *fuzz_tmp_dir(void) {
    static char dir[256];
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        if (!base || !*base) base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(dir, sizeof dir, "%s/collm-fuzz-XXXXXX", base);
        if (!mkdtemp(dir)) {
            fprintf(stderr, "fuzz: mkdtemp %s: %s\n", dir, strerror(errno));
            abort();
        }
    }
    return dir;
}

static inline int fuzz_rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

// Removes the scratch folder and everything in it (at exit).
static inline void fuzz_tmp_remove(void) { nftw(fuzz_tmp_dir(), fuzz_rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

#endif
