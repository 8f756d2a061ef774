/* Tests for common/shard.c: both layouts are bijections between keys and
 * (server, slot) with dense slots, ps_shard_key inverts ps_shard_locate,
 * and hash mode spreads a hot contiguous range where range mode cannot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "tests/unit/ps_test.h"

#include "common/err.h"
#include "common/mem.h"
#include "common/shard.h"

static const uint64_t row_counts[] = {1, 2, 7, 100, 1000, 4097};

/* For one (rows, servers, mode): every key lands on exactly one (server,
 * slot), each server's slots are exactly 0..count-1, and the inverse maps
 * back. hit[server][slot] counts keys, so a collision or a gap shows. */
static void check_bijection(uint64_t rows, uint32_t nservers, ps_shard_mode mode)
{
    ps_shard s;
    assert_int_equal(ps_shard_init(&s, rows, nservers, mode), 0);
    uint64_t total = 0, maxc = 0, minc = UINT64_MAX;
    uint64_t *base = ps_calloc(nservers + 1, sizeof *base);
    assert_non_null(base);
    for (uint32_t k = 0; k < nservers; k++) {
        uint64_t c = ps_shard_count(&s, k);
        base[k + 1] = base[k] + c;
        total += c;
        maxc = c > maxc ? c : maxc;
        minc = c < minc ? c : minc;
    }
    assert_int_equal(total, rows);
    /* Both layouts balance counts to within one row. */
    assert_true(maxc - minc <= 1);

    unsigned char *hit = ps_calloc(rows, 1);
    assert_non_null(hit);
    for (uint64_t key = 0; key < rows; key++) {
        uint32_t server;
        uint64_t slot;
        ps_shard_locate(&s, key, &server, &slot);
        assert_true(server < nservers);
        assert_true(slot < ps_shard_count(&s, server));
        assert_int_equal(ps_shard_server(&s, key), server);
        assert_int_equal(ps_shard_slot(&s, key), slot);
        assert_int_equal(ps_shard_key(&s, server, slot), key);
        hit[base[server] + slot]++;
    }
    for (uint64_t i = 0; i < rows; i++) {
        assert_int_equal(hit[i], 1);
    }
    /* And from the other side: every (server, slot) names a key that maps
     * back to it. */
    for (uint32_t k = 0; k < nservers; k++) {
        for (uint64_t slot = 0; slot < ps_shard_count(&s, k); slot++) {
            uint64_t key = ps_shard_key(&s, k, slot);
            assert_true(key < rows);
            uint32_t server;
            uint64_t back;
            ps_shard_locate(&s, key, &server, &back);
            assert_int_equal(server, k);
            assert_int_equal(back, slot);
        }
    }
    ps_free(hit);
    ps_free(base);
}

static void test_shard_range_is_bijection(void **state)
{
    (void)state;
    for (size_t r = 0; r < sizeof row_counts / sizeof row_counts[0]; r++) {
        for (uint32_t n = 1; n <= 7; n++) {
            check_bijection(row_counts[r], n, PS_SHARD_RANGE);
        }
    }
}

static void test_shard_hash_is_bijection(void **state)
{
    (void)state;
    for (size_t r = 0; r < sizeof row_counts / sizeof row_counts[0]; r++) {
        for (uint32_t n = 1; n <= 7; n++) {
            check_bijection(row_counts[r], n, PS_SHARD_HASH);
        }
    }
}

/* Range mode keeps blocks contiguous: keys ascend with (server, slot). */
static void test_shard_range_blocks_are_contiguous(void **state)
{
    (void)state;
    ps_shard s;
    assert_int_equal(ps_shard_init(&s, 4097, 4, PS_SHARD_RANGE), 0);
    uint64_t expect = 0;
    for (uint32_t k = 0; k < 4; k++) {
        for (uint64_t slot = 0; slot < ps_shard_count(&s, k); slot++) {
            assert_int_equal(ps_shard_key(&s, k, slot), expect++);
        }
    }
    /* 4097 = 4 * 1024 + 1: the first server holds the extra row. */
    assert_int_equal(ps_shard_count(&s, 0), 1025);
    assert_int_equal(ps_shard_count(&s, 3), 1024);
}

/* Keys near the top of a huge key space still map and invert. */
static void test_shard_handles_huge_tables(void **state)
{
    (void)state;
    const uint64_t rows_list[] = {(uint64_t)1 << 40, ((uint64_t)1 << 63) + 12345, UINT64_MAX};
    for (size_t r = 0; r < 3; r++) {
        for (int mode = PS_SHARD_RANGE; mode <= PS_SHARD_HASH; mode++) {
            ps_shard s;
            uint64_t rows = rows_list[r];
            assert_int_equal(ps_shard_init(&s, rows, 3, (ps_shard_mode)mode), 0);
            const uint64_t keys[] = {0, 1, rows / 2, rows - 2, rows - 1};
            for (size_t i = 0; i < 5; i++) {
                uint32_t server;
                uint64_t slot;
                ps_shard_locate(&s, keys[i], &server, &slot);
                assert_true(server < 3);
                assert_true(slot < ps_shard_count(&s, server));
                assert_true(ps_shard_key(&s, server, slot) == keys[i]);
            }
        }
    }
}

/* A hot contiguous range (the first 1000 of 10^6 ids) lands within 20% of
 * an even split over 4 servers in hash mode, and all on one in range mode. */
static void test_shard_hash_spreads_hot_range(void **state)
{
    (void)state;
    ps_shard h, r;
    uint64_t hcount[4] = {0}, rcount[4] = {0};
    assert_int_equal(ps_shard_init(&h, 1000000, 4, PS_SHARD_HASH), 0);
    assert_int_equal(ps_shard_init(&r, 1000000, 4, PS_SHARD_RANGE), 0);
    for (uint64_t key = 0; key < 1000; key++) {
        hcount[ps_shard_server(&h, key)]++;
        rcount[ps_shard_server(&r, key)]++;
    }
    for (int k = 0; k < 4; k++) {
        print_message("server %d: hash %llu, range %llu of 1000 hot keys\n", k,
                      (unsigned long long)hcount[k], (unsigned long long)rcount[k]);
        assert_true(hcount[k] >= 200 && hcount[k] <= 300);
    }
    assert_int_equal(rcount[0], 1000);
}

static void test_shard_init_rejects_empty(void **state)
{
    (void)state;
    ps_shard s;
    assert_int_equal(ps_shard_init(&s, 0, 2, PS_SHARD_RANGE), PS_EINVAL);
    assert_int_equal(ps_shard_init(&s, 10, 0, PS_SHARD_HASH), PS_EINVAL);
    assert_int_equal(ps_shard_init(&s, 10, 2, (ps_shard_mode)7), PS_EINVAL);
}

static void test_shard_parse_mode_accepts_range_and_hash(void **state)
{
    (void)state;
    ps_shard_mode m = (ps_shard_mode)99;
    assert_int_equal(ps_shard_parse_mode("range", &m), 0);
    assert_int_equal(m, PS_SHARD_RANGE);
    assert_int_equal(ps_shard_parse_mode("hash", &m), 0);
    assert_int_equal(m, PS_SHARD_HASH);
    const char *bad[] = {"", "Range", "HASH", "hash ", " range", "ranges", "has", "random"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m = (ps_shard_mode)99;
        assert_int_equal(ps_shard_parse_mode(bad[i], &m), PS_EINVAL);
        assert_int_equal(m, 99); /* untouched on failure */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shard_range_is_bijection),
        cmocka_unit_test(test_shard_hash_is_bijection),
        cmocka_unit_test(test_shard_range_blocks_are_contiguous),
        cmocka_unit_test(test_shard_handles_huge_tables),
        cmocka_unit_test(test_shard_hash_spreads_hot_range),
        cmocka_unit_test(test_shard_init_rejects_empty),
        cmocka_unit_test(test_shard_parse_mode_accepts_range_and_hash),
    };
    return cmocka_run_group_tests(tests, ps_test_setup, ps_test_teardown);
}
