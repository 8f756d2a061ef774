/* Tests for common/ckpt, on files in a mkdtemp directory: paths, the two
 * manifests and a worker's state round-trip (and are refused when
 * corrupt), listing finds the complete checkpoints newest first, pruning
 * keeps the newest K and drops the rest, the lock keeps a second holder
 * out and names the first, the sweep removes only orphan temp files, and
 * the start-up check creates the directory and refuses one without room. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#include <cmocka.h>

#include "common/ckpt.h"
#include "common/err.h"
#include "common/file.h"
#include "common/mem.h"
#include "tests/unit/ps_test.h"

static char root[64];

static int group_setup(void **state)
{
    (void)state;
    return ps_test_tmpdir_create(root, sizeof root, "ckpt");
}

static int group_teardown(void **state)
{
    (void)state;
    return ps_test_rmtree(root);
}

static void test_dir(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", root, name);
}

static int exists(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static void flip_byte(const char *path, long at)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, at, SEEK_SET), 0);
    int ch = fgetc(f);
    assert_true(ch != EOF);
    assert_int_equal(fseek(f, at, SEEK_SET), 0);
    assert_int_equal(fputc(ch ^ 0x10, f), ch ^ 0x10);
    assert_int_equal(fclose(f), 0);
}

/* A complete checkpoint of `clock` (a worker file and its manifest). */
static void make_complete(const char *dir, int64_t clock)
{
    ps_ckpt_worker_state st = {.loss_ema = 0.25, .have_ema = 1, .time_s = (double)clock};
    ps_ckpt_manifest m = {.clock = clock, .nservers = 1, .nworkers = 1};
    assert_int_equal(ps_ckpt_make_dir(dir, clock), 0);
    assert_int_equal(ps_ckpt_write_worker(dir, clock, 0, 1, &st, "cfg"), 0);
    assert_int_equal(ps_ckpt_commit(dir, &m, "seed=1"), 0);
}

static void test_ckpt_paths(void **state)
{
    (void)state;
    char p[64];
    assert_int_equal(ps_ckpt_dir_path(p, sizeof p, "/d", 12), 0);
    assert_string_equal(p, "/d/ckpt-12");
    assert_int_equal(ps_ckpt_shard_path(p, sizeof p, "/d", 12, 3), 0);
    assert_string_equal(p, "/d/ckpt-12/shard-3.bin");
    assert_int_equal(ps_ckpt_worker_path(p, sizeof p, "/d", 0, 7), 0);
    assert_string_equal(p, "/d/ckpt-0/worker-7.bin");
    assert_int_equal(ps_ckpt_shard_path(p, 22, "/d", 12, 3), PS_EINVAL); /* needs 23 */
    assert_int_equal(ps_ckpt_shard_path(p, 23, "/d", 12, 3), 0);
}

static void test_ckpt_manifests_round_trip_and_name_the_newest(void **state)
{
    (void)state;
    char dir[128], path[256];
    test_dir(dir, sizeof dir, "manifest");
    assert_int_equal(mkdir(dir, 0777), 0);
    ps_ckpt_manifest m;
    char *config = NULL;
    PS_TEST_EXPECT_LOG(ps_ckpt_read_manifest(dir, -1, &m, NULL), PS_EIO, "no checkpoint to resume");
    ps_ckpt_manifest w = {.clock = 123456789012LL, .nservers = 3, .nworkers = 5};
    assert_int_equal(ps_ckpt_make_dir(dir, w.clock), 0);
    assert_int_equal(ps_ckpt_commit(dir, &w, "seed=7 lr=0.5"), 0);
    for (int newest = 0; newest < 2; newest++) {
        assert_int_equal(ps_ckpt_read_manifest(dir, newest ? -1 : w.clock, &m, &config), 0);
        assert_int_equal(m.clock, w.clock);
        assert_int_equal(m.nservers, 3);
        assert_int_equal(m.nworkers, 5);
        assert_string_equal(config, "seed=7 lr=0.5");
        ps_free(config);
    }
    /* The next checkpoint moves DIR/MANIFEST on; its own stays. */
    ps_ckpt_manifest w2 = {.clock = 9, .nservers = 1, .nworkers = 5};
    assert_int_equal(ps_ckpt_make_dir(dir, 9), 0);
    assert_int_equal(ps_ckpt_commit(dir, &w2, NULL), 0);
    assert_int_equal(ps_ckpt_read_manifest(dir, -1, &m, NULL), 0);
    assert_int_equal(m.clock, 9);
    assert_int_equal(ps_ckpt_read_manifest(dir, w.clock, &m, NULL), 0);
    assert_int_equal(m.clock, w.clock);
    /* A checkpoint's manifest must be that checkpoint's. */
    snprintf(path, sizeof path, "%s/ckpt-9/MANIFEST", dir);
    char other[256];
    snprintf(other, sizeof other, "%s/ckpt-%lld/MANIFEST", dir, (long long)w.clock);
    assert_int_equal(rename(path, other), 0);
    PS_TEST_EXPECT_LOG(ps_ckpt_read_manifest(dir, w.clock, &m, NULL), PS_ECKPT,
                       "is not this checkpoint");
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    flip_byte(path, 2);
    PS_TEST_EXPECT_LOG(ps_ckpt_read_manifest(dir, -1, &m, &config), PS_ECKPT, "MANIFEST");
    assert_null(config);
}

static void test_ckpt_worker_state_round_trips(void **state)
{
    (void)state;
    char dir[128], wpath[256], mpath[256];
    test_dir(dir, sizeof dir, "worker");
    assert_int_equal(ps_ckpt_make_dir(dir, 4), 0);
    assert_int_equal(ps_ckpt_make_dir(dir, 4), 0); /* racing ranks: exists is fine */
    ps_ckpt_worker_state st = {.loss_ema = 0.123456789,
                               .have_ema = 1,
                               .time_s = 98.25,
                               .blas_threads = 3},
                         back;
    snprintf(st.blas_core, sizeof st.blas_core, "SkylakeX");
    assert_int_equal(ps_ckpt_write_worker(dir, 4, 1, 3, &st, "cfg"), 0);
    memset(&back, 0, sizeof back);
    assert_int_equal(ps_ckpt_read_worker(dir, 4, 1, 3, &back), 0);
    assert_true(back.loss_ema == st.loss_ema);
    assert_int_equal(back.have_ema, 1);
    assert_true(back.time_s == st.time_s);
    assert_int_equal(back.blas_threads, 3);
    assert_string_equal(back.blas_core, "SkylakeX");
    /* The same kernel and threads on resume: nothing to say; others warn,
     * naming both. */
    assert_int_equal(ps_ckpt_warn_blas_change(&back, 1, "SkylakeX", 3), 0);
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    int warned = ps_ckpt_warn_blas_change(&back, 1, "Haswell", 3);
    int warned2 = ps_ckpt_warn_blas_change(&back, 1, "SkylakeX", 1);
    char *log = ps_test_capture_end(&cap);
    assert_int_equal(warned, 1);
    assert_int_equal(warned2, 1);
    assert_non_null(strstr(log, "worker 1: the checkpoint was computed with OpenBLAS SkylakeX "
                                "kernel, 3 thread(s), this run uses Haswell, 3 thread(s)"));
    assert_non_null(strstr(log, "this run uses SkylakeX, 1 thread(s)"));
    test_free(log);
    PS_TEST_EXPECT_LOG(ps_ckpt_read_worker(dir, 4, 1, 4, &back), PS_ECKPT, "same worker count");
    assert_int_equal(ps_ckpt_read_worker(dir, 4, 2, 3, &back), PS_EIO); /* no such file */
    assert_int_equal(ps_ckpt_read_worker(dir, 5, 1, 3, &back), PS_EIO); /* no such clock */
    /* A manifest is not a worker file. */
    ps_ckpt_manifest m = {.clock = 4, .nservers = 1, .nworkers = 3};
    assert_int_equal(ps_ckpt_commit(dir, &m, NULL), 0);
    assert_int_equal(ps_ckpt_worker_path(wpath, sizeof wpath, dir, 4, 0), 0);
    snprintf(mpath, sizeof mpath, "%s/ckpt-4/MANIFEST", dir);
    assert_int_equal(rename(mpath, wpath), 0);
    PS_TEST_EXPECT_LOG(ps_ckpt_read_worker(dir, 4, 0, 3, &back), PS_ECKPT,
                       "is a manifest file, expected a worker file");
}

static void test_ckpt_list_gives_complete_checkpoints_newest_first(void **state)
{
    (void)state;
    char dir[128], path[256];
    test_dir(dir, sizeof dir, "list");
    ps_ckpt_manifest out[PS_CKPT_MAX_LIST];
    uint32_t n = 99;
    assert_int_equal(mkdir(dir, 0777), 0);
    assert_int_equal(ps_ckpt_list(dir, out, PS_CKPT_MAX_LIST, &n), 0);
    assert_int_equal(n, 0);
    make_complete(dir, 10);
    make_complete(dir, 200); /* numerically, not as text, after 10 */
    make_complete(dir, 25);
    assert_int_equal(ps_ckpt_make_dir(dir, 300), 0); /* incomplete: no manifest */
    snprintf(path, sizeof path, "%s/ckpt-25/MANIFEST", dir);
    flip_byte(path, 20); /* complete, but its manifest does not read */
    snprintf(path, sizeof path, "%s/ckpt-x", dir);
    assert_int_equal(mkdir(path, 0777), 0); /* not a checkpoint at all */
    PS_TEST_EXPECT_LOG(ps_ckpt_list(dir, out, PS_CKPT_MAX_LIST, &n), 0, "ckpt-25: its manifest");
    assert_int_equal(n, 2);
    assert_int_equal(out[0].clock, 200);
    assert_int_equal(out[1].clock, 10);
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    assert_int_equal(ps_ckpt_list(dir, out, 1, &n), 0);
    test_free(ps_test_capture_end(&cap));
    assert_int_equal(n, 1);
    assert_int_equal(out[0].clock, 200);
    snprintf(path, sizeof path, "%s/none", dir);
    PS_TEST_EXPECT_LOG(ps_ckpt_list(path, out, 4, &n), PS_EIO, "cannot read checkpoint directory");
}

static void test_ckpt_prune_keeps_the_newest_k(void **state)
{
    (void)state;
    char dir[128];
    test_dir(dir, sizeof dir, "prune");
    for (int64_t c = 10; c <= 50; c += 10) {
        make_complete(dir, c);
    }
    assert_int_equal(ps_ckpt_make_dir(dir, 5), 0); /* a crashed write, older */
    /* Newest written: 30 (the run resumed from 20 after 40 and 50 failed
     * to verify, say). */
    PS_TEST_EXPECT_LOG((ps_ckpt_prune(dir, 30, 2), 0), 0, "ckpt-50: newer than ckpt-30");
    assert_true(exists(dir, "ckpt-30") && exists(dir, "ckpt-20"));
    assert_false(exists(dir, "ckpt-10") || exists(dir, "ckpt-5"));
    assert_false(exists(dir, "ckpt-40") || exists(dir, "ckpt-50"));
    assert_true(exists(dir, "MANIFEST"));
    ps_ckpt_prune(dir, 30, 1);
    assert_true(exists(dir, "ckpt-30"));
    assert_false(exists(dir, "ckpt-20"));
    ps_ckpt_remove(dir, 20); /* already gone: harmless */
}

static void test_ckpt_lock_keeps_a_second_job_out_naming_the_first(void **state)
{
    (void)state;
    char dir[128], want[64];
    test_dir(dir, sizeof dir, "lock");
    assert_int_equal(mkdir(dir, 0777), 0);
    int a = -1, b = -1;
    assert_int_equal(ps_ckpt_lock(dir, 0, &a), 0);
    assert_true(a >= 0);
    /* flock is per open file: a second open, even here, is another job. */
    snprintf(want, sizeof want, "pid %ld on host", (long)getpid());
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    PS_TEST_EXPECT_LOG(ps_ckpt_lock(dir, 0.3, &b), PS_ECONFIG, want);
    clock_gettime(CLOCK_MONOTONIC, &w1);
    double waited = (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) * 1e-9;
    assert_true(waited >= 0.3 && waited < 5); /* it kept trying for the time given */
    assert_int_equal(b, -1);
    ps_ckpt_unlock(&a);
    assert_int_equal(a, -1);
    assert_int_equal(ps_ckpt_lock(dir, 0, &b), 0); /* free again */
    ps_ckpt_unlock(&b);
    ps_ckpt_unlock(&b); /* twice is harmless */
}

static void touch(const char *dir, const char *name, time_t mtime)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ps_test_write_text(path, "partial");
    struct utimbuf t = {.actime = mtime, .modtime = mtime};
    assert_int_equal(utime(path, &t), 0);
}

static void test_ckpt_sweep_removes_only_orphan_temp_files(void **state)
{
    (void)state;
    char dir[128], sub[160], mine[64];
    test_dir(dir, sizeof dir, "sweep");
    assert_int_equal(ps_ckpt_make_dir(dir, 3), 0);
    snprintf(sub, sizeof sub, "%s/ckpt-3", dir);
    time_t now = time(NULL), job = now - 10;
    /* pid 2^22 + 1 is above Linux's pid_max ceiling: never alive. */
    touch(dir, "MANIFEST.tmp.4194305", now);
    touch(sub, "shard-0.bin.tmp.4194305", now);
    snprintf(mine, sizeof mine, "shard-1.bin.tmp.%ld", (long)getpid());
    touch(sub, mine, now);                        /* alive and recent: a writer of this job */
    touch(sub, "worker-0.bin.tmp.1", now - 3600); /* alive (init), but older than the job */
    touch(sub, "worker-1.bin", now - 3600);       /* not a temp file */
    touch(sub, "notes.tmp.txt", now - 3600);      /* not ".tmp.<pid>" */
    PS_TEST_EXPECT_LOG((ps_ckpt_sweep(dir, job), 0), 0, "no longer running");
    assert_false(exists(dir, "MANIFEST.tmp.4194305"));
    assert_false(exists(sub, "shard-0.bin.tmp.4194305"));
    assert_false(exists(sub, "worker-0.bin.tmp.1"));
    assert_true(exists(sub, mine));
    assert_true(exists(sub, "worker-1.bin"));
    assert_true(exists(sub, "notes.tmp.txt"));
}

static void test_ckpt_prepare_dir_creates_it_and_checks_room(void **state)
{
    (void)state;
    char dir[192];
    snprintf(dir, sizeof dir, "%s/prep/a/b", root);
    assert_int_equal(ps_ckpt_prepare_dir(dir, 1), 0);
    struct stat sb;
    assert_int_equal(stat(dir, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(ps_ckpt_prepare_dir(dir, 1), 0); /* exists: fine */
    PS_TEST_EXPECT_LOG(ps_ckpt_prepare_dir(dir, (uint64_t)1 << 50), PS_ECONFIG,
                       "one checkpoint of this model needs 1024.0 TiB");
    char file[256];
    snprintf(file, sizeof file, "%s/prep/plain", root);
    ps_test_write_text(file, "x");
    snprintf(dir, sizeof dir, "%s/prep/plain/sub", root);
    PS_TEST_EXPECT_LOG(ps_ckpt_prepare_dir(dir, 1), PS_ECONFIG, "cannot create");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, ps_test_setup, ps_test_teardown)
        T(test_ckpt_paths),
        T(test_ckpt_manifests_round_trip_and_name_the_newest),
        T(test_ckpt_worker_state_round_trips),
        T(test_ckpt_list_gives_complete_checkpoints_newest_first),
        T(test_ckpt_prune_keeps_the_newest_k),
        T(test_ckpt_lock_keeps_a_second_job_out_naming_the_first),
        T(test_ckpt_sweep_removes_only_orphan_temp_files),
        T(test_ckpt_prepare_dir_creates_it_and_checks_room),
#undef T
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
