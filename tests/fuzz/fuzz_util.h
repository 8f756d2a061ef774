/* Shared by the libFuzzer targets that need files: a private temporary
 * directory (on /dev/shm when there is one, for speed), removed at exit,
 * and writing an input to a file in it. Every helper aborts on a failure
 * of its own, which is the harness's bug, not the input's. */
#ifndef PS_FUZZ_UTIL_H
#define PS_FUZZ_UTIL_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

/* A broken promise is our bug: crash so libFuzzer saves the input. */
#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            ps_log_fatal(__FILE__, __LINE__, #x);                                                  \
        }                                                                                          \
    } while (0)

static char fuzz_dir[256];

/* Removes path and what is under it (the targets' trees are shallow). */
static inline void fuzz_rmtree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        char p[600];
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", path, e->d_name);
                fuzz_rmtree(p);
            }
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static inline void fuzz_cleanup(void)
{
    fuzz_rmtree(fuzz_dir);
}

/* The directory, made on first use. Also quiets the log: rejections log a
 * line each, which at fuzzing rates is noise. */
static inline const char *fuzz_tmpdir(void)
{
    if (!fuzz_dir[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/adamps-fuzz.XXXXXX", base);
        if (!mkdtemp(fuzz_dir)) {
            abort();
        }
        atexit(fuzz_cleanup);
        ps_log_set_level((ps_log_level)(PS_LOG_ERROR + 1));
    }
    return fuzz_dir;
}

/* Writes data to path. */
static inline void fuzz_write_path(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        abort();
    }
}

/* Writes data to fuzz_dir/name; the path goes to path (cap bytes). */
static inline void fuzz_write(const char *name, const void *data, size_t size, char *path,
                              size_t cap)
{
    snprintf(path, cap, "%s/%s", fuzz_tmpdir(), name);
    fuzz_write_path(path, data, size);
}

#endif
