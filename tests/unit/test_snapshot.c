/* Tests for server/snapshot and common/ckpt, on files in a mkdtemp
 * directory: a saved shard loads back bit for bit, into any number of
 * servers and either shard mode (every row lands where the new layout puts
 * its key), mismatched or corrupt checkpoints are refused (common/ckpt's
 * own files are tests/unit/test_ckpt.c's). The original store is stepped (lazy
 * Adam with temporal averaging) so w, m, v, avg and per-row last steps all
 * differ from a fresh store's; fresh stores use another seed, so a row the
 * load misses still shows. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/ckpt.h"
#include "common/err.h"
#include "common/file.h"
#include "common/mem.h"
#include "server/snapshot.h"
#include "server/store.h"
#include "tests/unit/ps_test.h"

static char root[64];

static int group_setup(void **state)
{
    (void)state;
    return ps_test_tmpdir_create(root, sizeof root, "snapshot");
}

static int group_teardown(void **state)
{
    (void)state;
    return ps_test_rmtree(root);
}

/* A fresh directory under root for one test. */
static void test_dir(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", root, name);
}

static const ps_table_desc tables[2] = {
    {"w", 10, 3, PS_INIT_GLOROT, 0.5f},
    {"b", 1, 4, PS_INIT_NORMAL, 0.1f},
};

static ps_store_cfg make_cfg(const ps_table_desc *t, uint32_t server, uint32_t nservers,
                             ps_shard_mode mode, float avg_beta, uint64_t seed)
{
    ps_store_cfg c;
    memset(&c, 0, sizeof c);
    c.tables = t;
    c.ntables = 2;
    c.server = server;
    c.nservers = nservers;
    c.shard = mode;
    ps_opt_defaults(&c.hp, PS_OPT_ADAM);
    c.hp.lr = 0.05f;
    c.lazy = 1;
    c.avg_beta = avg_beta;
    c.seed = seed;
    return c;
}

static ps_store *make_store(const ps_store_cfg *c)
{
    ps_store *s = NULL;
    assert_int_equal(ps_store_create(&s, c), 0);
    return s;
}

/* A 1-server store after 3 lazy steps touching different rows. */
static ps_store *make_original(float avg_beta)
{
    ps_store_cfg c = make_cfg(tables, 0, 1, PS_SHARD_RANGE, avg_beta, 7);
    ps_store *s = make_store(&c);
    for (int64_t t = 1; t <= 3; t++) {
        uint64_t slots[3] = {(uint64_t)t, (uint64_t)t + 3, 9};
        float vals[9];
        for (int i = 0; i < 9; i++) {
            vals[i] = 0.1f * (float)(i + 1) * (float)(t % 2 ? 1 : -1);
        }
        uint64_t b0 = 0;
        float bv[4] = {1.0f, -1.0f, 0.5f, (float)t};
        ps_seg segs[2] = {{.table = 0,
                           .nkeys = t == 2 ? 2 : 3,
                           .slots = slots,
                           .values = vals,
                           .nvalues = (t == 2 ? 2 : 3) * 3},
                          {.table = 1, .nkeys = 1, .slots = &b0, .values = bv, .nvalues = 4}};
        ps_push p = {.clock = t - 1, .worker = 0, .nsegs = 2, .segs = segs};
        ps_store_accumulate(s, &p, 1.0f);
        assert_int_equal(ps_store_apply(s, t), 0);
    }
    return s;
}

/* Every row of s (any layout) equals the original's row for the same key,
 * in every array, and the step counters agree. */
static void assert_rows_match(ps_store *s, ps_store *orig)
{
    assert_int_equal(ps_store_step(s), ps_store_step(orig));
    for (uint32_t t = 0; t < ps_store_ntables(s); t++) {
        ps_store_arrays a, o;
        ps_store_arrays_get(s, t, &a);
        ps_store_arrays_get(orig, t, &o);
        assert_int_equal(a.nstate, o.nstate);
        assert_int_equal(a.avg != NULL, o.avg != NULL);
        size_t w = a.width;
        for (uint64_t slot = 0; slot < a.nslots; slot++) {
            uint64_t key = ps_shard_key(ps_store_shard(s, t), ps_store_server(s), slot);
            uint64_t os = ps_shard_slot(ps_store_shard(orig, t), key);
            assert_memory_equal(a.w + slot * w, o.w + os * w, w * sizeof(float));
            for (int k = 0; k < a.nstate; k++) {
                assert_memory_equal(a.state[k] + slot * w, o.state[k] + os * w, w * sizeof(float));
            }
            if (a.avg) {
                assert_memory_equal(a.avg + slot * w, o.avg + os * w, w * sizeof(double));
            }
            assert_int_equal(a.last_step[slot], o.last_step[os]);
        }
    }
}

/* Copies the original's rows into shard store s (the state a real
 * multi-server run would hold) and its step. */
static void fill_from(ps_store *s, ps_store *orig)
{
    for (uint32_t t = 0; t < ps_store_ntables(s); t++) {
        ps_store_arrays a, o;
        ps_store_arrays_get(s, t, &a);
        ps_store_arrays_get(orig, t, &o);
        size_t w = a.width;
        for (uint64_t slot = 0; slot < a.nslots; slot++) {
            uint64_t key = ps_shard_key(ps_store_shard(s, t), ps_store_server(s), slot);
            uint64_t os = ps_shard_slot(ps_store_shard(orig, t), key);
            memcpy(a.w + slot * w, o.w + os * w, w * sizeof(float));
            for (int k = 0; k < a.nstate; k++) {
                memcpy(a.state[k] + slot * w, o.state[k] + os * w, w * sizeof(float));
            }
            if (a.avg) {
                memcpy(a.avg + slot * w, o.avg + os * w, w * sizeof(double));
            }
            a.last_step[slot] = o.last_step[os];
        }
    }
    ps_store_set_step(s, ps_store_step(orig));
}

static void test_snapshot_round_trip_same_layout(void **state)
{
    (void)state;
    char dir[128];
    test_dir(dir, sizeof dir, "same");
    ps_store *orig = make_original(0.9f);
    ps_store_arrays o;
    ps_store_arrays_get(orig, 0, &o);
    assert_true(o.last_step[1] == 1 && o.last_step[9] == 3 && o.last_step[0] == 0);
    assert_int_equal(ps_snapshot_save(orig, dir, 3, "adam", 2, "--cfg"), 0);
    ps_store_cfg c = make_cfg(tables, 0, 1, PS_SHARD_RANGE, 0.9f, 8);
    ps_store *s = make_store(&c);
    ps_store_arrays a;
    ps_store_arrays_get(s, 0, &a);
    assert_memory_not_equal(a.w, o.w, 30 * sizeof(float)); /* the load has work to do */
    assert_int_equal(ps_snapshot_load(s, dir, 3, 1, "adam"), 0);
    for (uint32_t t = 0; t < 2; t++) {
        ps_store_arrays_get(s, t, &a);
        ps_store_arrays_get(orig, t, &o);
        size_t bytes = (size_t)a.nslots * a.width * sizeof(float);
        assert_memory_equal(a.w, o.w, bytes);
        assert_memory_equal(a.state[0], o.state[0], bytes);
        assert_memory_equal(a.state[1], o.state[1], bytes);
        assert_memory_equal(a.avg, o.avg, 2 * bytes); /* double */
        assert_memory_equal(a.last_step, o.last_step, a.nslots * sizeof(int64_t));
    }
    assert_int_equal(ps_store_step(s), 3);
    ps_store_destroy(&s);
    ps_store_destroy(&orig);
}

/* The original's rows, saved at clock by each of n servers in mode. */
static void save_layout(const char *dir, int64_t clock, uint32_t n, ps_shard_mode mode,
                        ps_store *orig)
{
    for (uint32_t server = 0; server < n; server++) {
        ps_store_cfg c = make_cfg(tables, server, n, mode, 0.9f, 8);
        ps_store *s = make_store(&c);
        fill_from(s, orig);
        assert_int_equal(ps_snapshot_save(s, dir, clock, "adam", 2, "x"), 0);
        ps_store_destroy(&s);
    }
}

/* Each of n servers in mode loads what old_n servers saved at clock, and
 * holds the original's rows under its own layout. */
static void load_layout(const char *dir, int64_t clock, uint32_t old_n, uint32_t n,
                        ps_shard_mode mode, ps_store *orig)
{
    for (uint32_t server = 0; server < n; server++) {
        ps_store_cfg c = make_cfg(tables, server, n, mode, 0.9f, 9);
        ps_store *s = make_store(&c);
        assert_int_equal(ps_snapshot_load(s, dir, clock, old_n, "adam"), 0);
        assert_rows_match(s, orig);
        ps_store_destroy(&s);
    }
}

/* Saved by 1 server, loaded by each server of 2- and 3-server layouts in
 * both shard modes. */
static void test_snapshot_reshards_one_to_many(void **state)
{
    (void)state;
    char dir[128];
    test_dir(dir, sizeof dir, "one_to_many");
    ps_store *orig = make_original(0.9f);
    assert_int_equal(ps_snapshot_save(orig, dir, 3, "adam", 2, NULL), 0);
    for (uint32_t n = 2; n <= 3; n++) {
        for (int mode = PS_SHARD_RANGE; mode <= PS_SHARD_HASH; mode++) {
            load_layout(dir, 3, 1, n, (ps_shard_mode)mode, orig);
        }
    }
    ps_store_destroy(&orig);
}

/* Saved by 3 hash-mode servers, loaded by 1 (range) and by 2 servers. */
static void test_snapshot_reshards_three_to_fewer(void **state)
{
    (void)state;
    char dir[128];
    test_dir(dir, sizeof dir, "three_to_fewer");
    ps_store *orig = make_original(0.9f);
    save_layout(dir, 4, 3, PS_SHARD_HASH, orig);
    load_layout(dir, 4, 3, 1, PS_SHARD_RANGE, orig);
    load_layout(dir, 4, 3, 2, PS_SHARD_RANGE, orig);
    ps_store_destroy(&orig);
}

/* Saved by 2 range servers, loaded by 2 hash servers: the same count, so
 * only the files' shard mode says that every file must be read. */
static void test_snapshot_reshards_when_only_the_shard_mode_changes(void **state)
{
    (void)state;
    char dir[128];
    test_dir(dir, sizeof dir, "mode_change");
    ps_store *orig = make_original(0.9f);
    save_layout(dir, 5, 2, PS_SHARD_RANGE, orig);
    load_layout(dir, 5, 2, 2, PS_SHARD_HASH, orig);
    ps_store_destroy(&orig);
}

static int load_fresh(const ps_table_desc *t, float avg_beta, const char *dir, int64_t clock,
                      uint32_t old_n, const char *opt)
{
    ps_store_cfg c = make_cfg(t, 0, 1, PS_SHARD_RANGE, avg_beta, 8);
    ps_store *s = make_store(&c);
    int rc = ps_snapshot_load(s, dir, clock, old_n, opt);
    ps_store_destroy(&s);
    return rc;
}

static void test_snapshot_refuses_mismatched_job(void **state)
{
    (void)state;
    char dir[128], dir_off[128];
    test_dir(dir, sizeof dir, "mismatch");
    test_dir(dir_off, sizeof dir_off, "mismatch_noavg");
    ps_store *orig = make_original(0.9f);
    assert_int_equal(ps_snapshot_save(orig, dir, 3, "adam", 2, NULL), 0);
    ps_store *plain = make_original(0.0f);
    assert_int_equal(ps_snapshot_save(plain, dir_off, 3, "adam", 2, NULL), 0);

    assert_int_equal(load_fresh(tables, 0.9f, dir, 3, 1, "adam"), 0); /* the control */
    assert_int_equal(load_fresh(tables, 0.9f, dir, 3, 1, "adamw"), PS_ECKPT);
    ps_table_desc wide[2] = {tables[0], tables[1]};
    wide[0].width = 4;
    assert_int_equal(load_fresh(wide, 0.9f, dir, 3, 1, "adam"), PS_ECKPT);
    ps_table_desc taller[2] = {tables[0], tables[1]};
    taller[0].rows = 11;
    assert_int_equal(load_fresh(taller, 0.9f, dir, 3, 1, "adam"), PS_ECKPT);
    ps_table_desc renamed[2] = {tables[0], tables[1]};
    strcpy(renamed[1].name, "c");
    assert_int_equal(load_fresh(renamed, 0.9f, dir, 3, 1, "adam"), PS_ECKPT);
    /* Averaging on in the file, off in the job, and the other way round. */
    assert_int_equal(load_fresh(tables, 0.0f, dir, 3, 1, "adam"), PS_ECKPT);
    assert_int_equal(load_fresh(tables, 0.9f, dir_off, 3, 1, "adam"), PS_ECKPT);
    assert_int_equal(load_fresh(tables, 0.0f, dir_off, 3, 1, "adam"), 0);
    ps_store_destroy(&orig);
    ps_store_destroy(&plain);
}

/* A shard as adamps wrote it before shard_format (header field 0): the
 * temporal average in float32, after w and the state, then the last steps. */
static void write_old_shard(ps_store *s, const char *dir, int64_t clock)
{
    char path[256];
    ps_file_table ft[2];
    const void *parts[12];
    size_t lens[12], np = 0;
    float *avg32[2] = {NULL, NULL};
    assert_int_equal(ps_ckpt_make_dir(dir, clock), 0);
    assert_int_equal(ps_ckpt_shard_path(path, sizeof path, dir, clock, 0), 0);
    for (uint32_t t = 0; t < 2; t++) {
        ps_store_arrays a;
        ps_store_arrays_get(s, t, &a);
        size_t n = (size_t)a.nslots * a.width;
        ft[t] = (ps_file_table){.rows = tables[t].rows,
                                .width = a.width,
                                .nslots = a.nslots,
                                .nstate = (uint32_t)a.nstate};
        memcpy(ft[t].name, tables[t].name, sizeof ft[t].name);
        parts[np] = a.w;
        lens[np++] = n * sizeof(float);
        for (int k = 0; k < a.nstate; k++) {
            parts[np] = a.state[k];
            lens[np++] = n * sizeof(float);
        }
        if (a.avg) {
            avg32[t] = test_malloc(n * sizeof(float));
            for (size_t i = 0; i < n; i++) {
                avg32[t][i] = (float)a.avg[i];
            }
            parts[np] = avg32[t];
            lens[np++] = n * sizeof(float);
        }
        parts[np] = a.last_step;
        lens[np++] = a.nslots * sizeof(int64_t);
    }
    ps_file_header h = {.clock = clock,
                        .nservers = 1,
                        .nworkers = 1,
                        .ntables = 2,
                        .tables = ft,
                        .step = ps_store_step(s)};
    snprintf(h.kind, sizeof h.kind, "shard");
    snprintf(h.optimizer, sizeof h.optimizer, "adam");
    assert_int_equal(ps_file_write_atomic(path, &h, parts, lens, np), 0);
    for (int t = 0; t < 2; t++) {
        if (avg32[t]) {
            test_free(avg32[t]);
        }
    }
}

/* Format 2 keeps the temporal average in float64. An older shard with an
 * average is refused, saying why; without averaging the layouts are the
 * same and it loads. */
static void test_snapshot_refuses_float32_average_of_old_format(void **state)
{
    (void)state;
    char dir[128], dir_off[128];
    test_dir(dir, sizeof dir, "oldfmt");
    test_dir(dir_off, sizeof dir_off, "oldfmt_noavg");
    ps_store *orig = make_original(0.9f), *plain = make_original(0.0f);
    write_old_shard(orig, dir, 3);
    write_old_shard(plain, dir_off, 3);
    PS_TEST_EXPECT_LOG(load_fresh(tables, 0.9f, dir, 3, 1, "adam"), PS_ECKPT,
                       "shard format 0 keeps the temporal average in float32; this adamps "
                       "keeps it in float64 (format 2) and cannot resume it");
    ps_store_cfg c = make_cfg(tables, 0, 1, PS_SHARD_RANGE, 0.0f, 8);
    ps_store *s = make_store(&c);
    assert_int_equal(ps_snapshot_load(s, dir_off, 3, 1, "adam"), 0);
    assert_rows_match(s, plain);
    ps_store_destroy(&s);
    ps_store_destroy(&orig);
    ps_store_destroy(&plain);
}

static void test_snapshot_missing_files_are_io_errors(void **state)
{
    (void)state;
    char dir[128], path[256];
    test_dir(dir, sizeof dir, "missing");
    ps_store *orig = make_original(0.9f);
    for (uint32_t server = 0; server < 3; server++) {
        ps_store_cfg c = make_cfg(tables, server, 3, PS_SHARD_RANGE, 0.9f, 8);
        ps_store *s = make_store(&c);
        fill_from(s, orig);
        assert_int_equal(ps_snapshot_save(s, dir, 6, "adam", 1, NULL), 0);
        ps_store_destroy(&s);
    }
    assert_int_equal(load_fresh(tables, 0.9f, dir, 6, 3, "adam"), 0);      /* the control */
    assert_int_equal(load_fresh(tables, 0.9f, dir, 5, 3, "adam"), PS_EIO); /* no ckpt-5 */
    /* Files that claim 3 servers, read as if 4 or 2 wrote them: shard-0's
     * header already disagrees, before shard-3's absence would show. */
    assert_int_equal(load_fresh(tables, 0.9f, dir, 6, 4, "adam"), PS_ECKPT);
    assert_int_equal(load_fresh(tables, 0.9f, dir, 6, 2, "adam"), PS_ECKPT);
    assert_int_equal(ps_ckpt_shard_path(path, sizeof path, dir, 6, 1), 0);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(load_fresh(tables, 0.9f, dir, 6, 3, "adam"), PS_EIO);
    ps_store_destroy(&orig);
}

static void flip_byte(const char *path, long from_end)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, -from_end, SEEK_END), 0);
    int ch = fgetc(f);
    assert_true(ch != EOF);
    assert_int_equal(fseek(f, -from_end, SEEK_END), 0);
    assert_int_equal(fputc(ch ^ 0x10, f), ch ^ 0x10);
    assert_int_equal(fclose(f), 0);
}

/* The payload is the file's tail: flipping a byte there (a float of the
 * last-step array, or of w near its end) breaks the CRC. */
static void test_snapshot_rejects_flipped_payload_byte(void **state)
{
    (void)state;
    char dir[128], path[256];
    test_dir(dir, sizeof dir, "flip");
    ps_store *orig = make_original(0.9f);
    const long offsets[2] = {3, 200};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ps_snapshot_save(orig, dir, 3, "adam", 2, NULL), 0);
        assert_int_equal(load_fresh(tables, 0.9f, dir, 3, 1, "adam"), 0);
        assert_int_equal(ps_ckpt_shard_path(path, sizeof path, dir, 3, 0), 0);
        flip_byte(path, offsets[i]);
        assert_int_equal(load_fresh(tables, 0.9f, dir, 3, 1, "adam"), PS_ECKPT);
    }
    ps_store_destroy(&orig);
}

static void test_snapshot_save_and_load_survive_oom_sweep(void **state)
{
    (void)state;
    char dir[128];
    test_dir(dir, sizeof dir, "oom");
    ps_store *orig = make_original(0.9f);
    int rc = PS_ENOMEM;
    long n;
    for (n = 0; n < 200 && rc; n++) {
        ps_test_fail_alloc(n);
        rc = ps_snapshot_save(orig, dir, 3, "adam", 2, "cfg");
        ps_test_fail_alloc(-1);
        assert_true(rc == 0 || rc == PS_ENOMEM);
    }
    assert_int_equal(rc, 0);
    assert_true(n > 3);
    ps_store_cfg c = make_cfg(tables, 1, 2, PS_SHARD_HASH, 0.9f, 8);
    ps_store *s = make_store(&c);
    rc = PS_ENOMEM;
    for (n = 0; n < 200 && rc; n++) {
        ps_test_fail_alloc(n);
        rc = ps_snapshot_load(s, dir, 3, 1, "adam");
        ps_test_fail_alloc(-1);
        assert_true(rc == 0 || rc == PS_ENOMEM);
    }
    assert_int_equal(rc, 0);
    assert_true(n > 1);
    assert_rows_match(s, orig);
    ps_store_destroy(&s);
    ps_store_destroy(&orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, ps_test_setup, ps_test_teardown)
        T(test_snapshot_round_trip_same_layout),
        T(test_snapshot_reshards_one_to_many),
        T(test_snapshot_reshards_three_to_fewer),
        T(test_snapshot_reshards_when_only_the_shard_mode_changes),
        T(test_snapshot_refuses_mismatched_job),
        T(test_snapshot_refuses_float32_average_of_old_format),
        T(test_snapshot_missing_files_are_io_errors),
        T(test_snapshot_rejects_flipped_payload_byte),
        T(test_snapshot_save_and_load_survive_oom_sweep),
#undef T
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
