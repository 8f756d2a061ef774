/* Feature hashing: deterministic, in range, uniform over buckets, and a row
 * with colliding ids comes out sorted with their values summed. The Python
 * reference in README.md (for serving a hashed model elsewhere) gives the
 * same rows as ps_fhash, run when /usr/bin/python3 is there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "data/fhash.h"
#include "common/mem.h"
#include "common/rng.h"
#include "tests/unit/ps_test.h"

static void test_fhash_is_deterministic_and_in_range(void **state)
{
    (void)state;
    for (unsigned bits = 1; bits <= 40; bits++) {
        for (uint64_t id = 0; id < 2000; id += 7) {
            uint64_t h = ps_fhash(id, bits);
            assert_true(h < ((uint64_t)1 << bits));
            assert_true(h == ps_fhash(id, bits));
        }
    }
    /* Large ids too, and bits == 0 is the identity. */
    assert_true(ps_fhash(UINT64_MAX, 40) < ((uint64_t)1 << 40));
    assert_true(ps_fhash(123456789, 0) == 123456789);
}

static void test_fhash_differs_from_identity(void **state)
{
    (void)state;
    /* A hash that kept low bits would map 0..1023 to themselves. */
    int same = 0;
    for (uint64_t id = 0; id < 1024; id++) {
        same += ps_fhash(id, 10) == id;
    }
    assert_true(same < 10); /* ~1 expected */
}

/* Chi-square over 2^10 buckets: 1023 dof, mean 1023, sd ~45; 1400 is more
 * than 8 sd out. Three id patterns a weak hash fails: consecutive, strided
 * by the bucket count, and high bits only. */
static double chi2_buckets(uint64_t start, uint64_t stride)
{
    enum { B = 1024, N = 1 << 20 };
    static long cnt[B];
    for (int i = 0; i < B; i++) {
        cnt[i] = 0;
    }
    for (uint64_t i = 0; i < N; i++) {
        cnt[ps_fhash(start + i * stride, 10)]++;
    }
    double exp = (double)N / B, chi2 = 0;
    for (int i = 0; i < B; i++) {
        chi2 += ((double)cnt[i] - exp) * ((double)cnt[i] - exp) / exp;
    }
    return chi2;
}

static void test_fhash_spreads_ids_uniformly(void **state)
{
    (void)state;
    assert_true(chi2_buckets(0, 1) < 1400);
    assert_true(chi2_buckets(5, 1024) < 1400);
    assert_true(chi2_buckets(0, (uint64_t)1 << 32) < 1400);
}

static void test_fhash_row_merges_collisions(void **state)
{
    (void)state;
    /* With 1 bit everything lands in rows 0 and 1. */
    uint64_t idx[6] = {3, 10, 11, 500, 9000, 77777};
    float val[6] = {1, 2, 4, 8, 16, 32};
    float want[2] = {0, 0};
    for (int i = 0; i < 6; i++) {
        want[ps_fhash(idx[i], 1)] += val[i];
    }
    size_t n = ps_fhash_row(idx, val, 6, 1);
    assert_true(n >= 1 && n <= 2);
    float got[2] = {0, 0};
    for (size_t i = 0; i < n; i++) {
        assert_true(idx[i] < 2);
        if (i > 0) {
            assert_true(idx[i] > idx[i - 1]);
        }
        got[idx[i]] = val[i];
    }
    assert_true(got[0] == want[0] && got[1] == want[1]);
    assert_int_equal(ps_fhash_row(idx, val, 0, 1), 0);
}

/* A long row (heapsort path): ascending, in range, values conserved per
 * bucket. */
static void test_fhash_row_sorts_long_rows(void **state)
{
    (void)state;
    enum { N = 1000, BITS = 6 };
    uint64_t *idx = ps_malloc(N * sizeof *idx);
    float *val = ps_malloc(N * sizeof *val);
    assert_true(idx && val);
    double want[1 << BITS] = {0};
    ps_rng r;
    ps_rng_seed(&r, 5);
    for (int i = 0; i < N; i++) {
        idx[i] = ps_rng_next(&r);
        val[i] = (float)(i % 7);
        want[ps_fhash(idx[i], BITS)] += val[i];
    }
    size_t n = ps_fhash_row(idx, val, N, BITS);
    assert_true(n > 32 && n <= (1 << BITS));
    for (size_t i = 0; i < n; i++) {
        assert_true(idx[i] < (1 << BITS));
        if (i > 0) {
            assert_true(idx[i] > idx[i - 1]);
        }
        assert_true((double)val[i] == want[idx[i]]);
    }
    ps_free(idx);
    ps_free(val);
}

static void test_fhash_check_bits_rejects_out_of_range(void **state)
{
    (void)state;
    assert_int_equal(ps_fhash_check_bits(0), PS_ECONFIG);
    assert_int_equal(ps_fhash_check_bits(41), PS_ECONFIG);
    assert_int_equal(ps_fhash_check_bits(1), 0);
    assert_int_equal(ps_fhash_check_bits(40), 0);
}

/* The README's ```python block that defines fhash, copied into buf (cap
 * bytes); 0 when the README is not here (not run from the source tree). */
static size_t readme_reference(char *buf, size_t cap)
{
    FILE *f = fopen("README.md", "r");
    if (!f) {
        return 0;
    }
    char line[512];
    size_t len = 0;
    int in = 0, done = 0;
    while (!done && fgets(line, sizeof line, f)) {
        const char *t = line + strspn(line, " ");
        if (!in && strncmp(t, "```python", 9) == 0) {
            in = 1;
            len = 0;
        } else if (in && strncmp(t, "```", 3) == 0) {
            in = 0;
            done = strstr(buf, "def fhash(") != NULL;
        } else if (in) {
            /* The block is indented as a list item's: drop the indent. */
            const char *code = line + (strncmp(line, "  ", 2) == 0 ? 2 : 0);
            size_t n = strlen(code);
            assert_true(len + n < cap);
            memcpy(buf + len, code, n + 1);
            len += n;
        }
    }
    fclose(f);
    return done ? len : 0;
}

static void test_fhash_python_reference_matches(void **state)
{
    (void)state;
    static char code[4096];
    if (access("/usr/bin/python3", X_OK) != 0 || readme_reference(code, sizeof code) == 0) {
        skip();
    }
    static const uint64_t ids[] = {0, 1, 2, 99, 12345, 1ULL << 33, UINT64_MAX - 7};
    static const unsigned bits[] = {1, 10, 24, 40};
    char path[] = "/tmp/adamps_test_fhash.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fprintf(f, "%s\nimport sys\n", code);
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        for (size_t b = 0; b < sizeof bits / sizeof bits[0]; b++) {
            fprintf(f, "assert fhash(%llu, %u) == %llu, (%llu, %u, fhash(%llu, %u))\n",
                    (unsigned long long)ids[i], bits[b],
                    (unsigned long long)ps_fhash(ids[i], bits[b]), (unsigned long long)ids[i],
                    bits[b], (unsigned long long)ids[i], bits[b]);
        }
    }
    /* The README states the header's seed. */
    fprintf(f, "assert SEED == %llu\n", (unsigned long long)PS_FHASH_SEED);
    assert_int_equal(fclose(f), 0);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s", path);
    int rc = system(cmd);
    unlink(path);
    assert_int_equal(rc, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fhash_is_deterministic_and_in_range),
        cmocka_unit_test(test_fhash_differs_from_identity),
        cmocka_unit_test(test_fhash_spreads_ids_uniformly),
        cmocka_unit_test(test_fhash_row_merges_collisions),
        cmocka_unit_test(test_fhash_row_sorts_long_rows),
        cmocka_unit_test(test_fhash_check_bits_rejects_out_of_range),
        cmocka_unit_test(test_fhash_python_reference_matches),
    };
    return cmocka_run_group_tests(tests, ps_test_setup, ps_test_teardown);
}
