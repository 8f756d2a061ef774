/* Memory plan (cli/budget.c): a server's bytes are exactly its shard's
 * arrays; a worker's grow with its part and the coordinator's with the test
 * set, and a streamed part is bounded whatever the file; the check refuses
 * the issue's 2^31-row table naming the table and the ways out (and the
 * --hash-bits it suggests does fit), counts only the ranks of the node, and
 * takes --max-memory per rank; byte counts parse and print back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/budget.h"
#include "cli/job.h"
#include "common/err.h"
#include "server/optim.h"
#include "tests/unit/ps_test.h"

#define GiB ((uint64_t)1 << 30)
#define MiB ((uint64_t)1 << 20)

/* A sparse logreg job over rows x classes, Adam, lazy, range sharding.
 * Every job made points at this one array of tables. */
static ps_table_desc tables[2];

static ps_budget_job logreg_job(uint64_t rows, uint32_t classes, uint32_t nservers,
                                uint32_t nworkers)
{
    memset(tables, 0, sizeof tables);
    snprintf(tables[0].name, sizeof tables[0].name, "w");
    snprintf(tables[1].name, sizeof tables[1].name, "b");
    tables[0].rows = rows;
    tables[0].width = classes;
    tables[1].rows = 1;
    tables[1].width = classes;
    ps_budget_job j = {.tables = tables,
                       .ntables = 2,
                       .nservers = nservers,
                       .shard = PS_SHARD_RANGE,
                       .nstate = ps_opt_nstate(PS_OPT_ADAM),
                       .lazy = 1,
                       .nworkers = nworkers,
                       .batch = 128,
                       .eval_batch = 1000,
                       .libsvm = 1,
                       .stream = PS_STREAM_AUTO,
                       .train = "train.svm"};
    j.model = (ps_model_cfg){.kind = PS_MODEL_LOGREG,
                             .in_dim = rows,
                             .nclasses = classes,
                             .sparse_input = 1,
                             .max_batch = 1000,
                             .init_override = -1};
    j.spec = (ps_source_spec){.dim = rows,
                              .nclasses = classes,
                              .sparse = 1,
                              .ntest = 1000,
                              .train_bytes = 10 * MiB,
                              .sample_rows = 1000,
                              .sample_nnz = 20000,
                              .sample_bytes = 200000,
                              .max_nnz = 30,
                              .test_nnz = 20000};
    return j;
}

static void test_budget_server_counts_every_shard_array(void **state)
{
    (void)state;
    /* w, gradient, m, v, average: 5 floats of width 3, step counter 8,
     * lazy flag and row list 9. */
    assert_int_equal(ps_budget_row_bytes(3, 2, 1, 1), 3 * 4 * 5 + 8 + 9);
    assert_int_equal(ps_budget_row_bytes(3, 0, 0, 0), 3 * 4 * 2 + 8);
    ps_budget_job j = logreg_job(1000, 3, 2, 1);
    j.averaged = 1;
    ps_budget_rank s0, s1;
    ps_budget_server(&j, 0, &s0);
    ps_budget_server(&j, 1, &s1);
    uint64_t row = ps_budget_row_bytes(3, 2, 1, 1);
    assert_int_equal(s0.tables, 501 * row); /* 500 rows of w and b's row */
    assert_int_equal(s1.tables, 500 * row);
    assert_int_equal(s0.big, 0);
    assert_int_equal(s0.big_bytes, 500 * row);
    assert_true(s0.total >= s0.tables + PS_BUDGET_RUNTIME);
    /* Hash sharding deals the same rows out: the shards add up. */
    j.shard = PS_SHARD_HASH;
    j.nservers = 3;
    uint64_t sum = 0;
    for (uint32_t s = 0; s < 3; s++) {
        ps_budget_server(&j, s, &s0);
        sum += s0.tables;
    }
    assert_int_equal(sum, 1001 * row);
    /* A table too big for 64 bits saturates rather than wraps. */
    j = logreg_job(UINT64_MAX / 2, 1u << 20, 1, 1);
    ps_budget_server(&j, 0, &s0);
    assert_int_equal(s0.total, UINT64_MAX);
}

static void test_budget_worker_holds_its_part_and_the_test_set(void **state)
{
    (void)state;
    /* Dense IDX data: 6000 rows over 2 workers, 784 floats each. */
    ps_budget_job j = logreg_job(784, 10, 1, 2);
    j.libsvm = 0;
    j.model.sparse_input = 0;
    j.spec = (ps_source_spec){.dim = 784, .nclasses = 10, .ntrain = 6000, .ntest = 500};
    ps_budget_rank w0, w1;
    ps_budget_worker(&j, 0, &w0);
    ps_budget_worker(&j, 1, &w1);
    assert_true(w1.data >= 3000 * 784 * 4);
    assert_true(w1.data < 3000 * 784 * 4 + 4 * MiB);
    assert_true(w0.data - w1.data >= 500 * 784 * 4); /* the coordinator's test set */
    assert_int_equal(w0.buffers, w1.buffers);
    assert_int_equal(w0.total, w0.data + w0.buffers + PS_BUDGET_RUNTIME);

    /* libsvm: in memory, the part grows with the file; streamed (auto past
     * 1 GiB a part, or --stream on) it is one chunk whatever the file. */
    j = logreg_job(1 << 20, 2, 1, 2);
    ps_budget_worker(&j, 1, &w1);
    uint64_t small = w1.data;
    assert_true(small >= 5 * MiB); /* 5 MiB of text, ~10 bytes per non-zero */
    j.spec.train_bytes = 100 * GiB;
    ps_budget_worker(&j, 1, &w1);
    assert_true(w1.data < 64 * MiB);
    j.spec.train_bytes = 10 * MiB;
    j.stream = PS_STREAM_ON;
    ps_budget_worker(&j, 1, &w1);
    assert_true(w1.data < small);
}

/* ranks 0.. on node 0 unless moved; the last nservers ranks serve. */
static int is_server[8], node_of[8];

static ps_budget_world world(int size, int nservers)
{
    for (int r = 0; r < size; r++) {
        is_server[r] = r >= size - nservers;
        node_of[r] = 0;
    }
    return (ps_budget_world){.size = size, .is_server = is_server, .node_of_rank = node_of};
}

/* Issue 10: `1 2147483647:1` without --hash-bits made a 2^31-row table on a
 * 24 GB node of 3 ranks. */
static void test_budget_refuses_the_issue_table_naming_the_ways_out(void **state)
{
    (void)state;
    ps_budget_job j = logreg_job((uint64_t)1 << 31, 2, 1, 2);
    ps_budget_world w = world(3, 1);
    char msg[1024];
    for (int r = 0; r < 3; r++) {
        assert_int_equal(ps_budget_check(&j, &w, r, 0, 24 * GiB, msg, sizeof msg), PS_ECONFIG);
    }
    const char *want[] = {"table w (2147483648 rows x 2)",
                          "98.0 GiB on server 0 of 1",
                          "24.0 GiB available",
                          "--hash-bits",
                          "--servers",
                          "--features N",
                          "--max-memory"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!strstr(msg, want[i])) {
            fail_msg("'%s' lacks '%s'", msg, want[i]);
        }
    }
    assert_null(strchr(msg, '\n'));
    /* The --hash-bits it names fits, one more does not. */
    unsigned b = 0;
    const char *at = strstr(msg, "--hash-bits ");
    assert_int_equal(sscanf(at, "--hash-bits %u", &b), 1);
    ps_budget_job k = logreg_job((uint64_t)1 << b, 2, 1, 2);
    assert_int_equal(ps_budget_check(&k, &w, 0, 0, 24 * GiB, msg, sizeof msg), 0);
    assert_string_equal(msg, "");
    k = logreg_job((uint64_t)2 << b, 2, 1, 2);
    assert_int_equal(ps_budget_check(&k, &w, 0, 0, 24 * GiB, msg, sizeof msg), PS_ECONFIG);
    /* The --servers it names fits each server under --max-memory. (The
     * jobs share one table array: rebuild it.) */
    j = logreg_job((uint64_t)1 << 31, 2, 1, 2);
    assert_int_equal(ps_budget_check(&j, &w, 2, 4 * GiB, 0, msg, sizeof msg), PS_ECONFIG);
    unsigned s = 0;
    at = strstr(msg, "--servers ");
    assert_int_equal(sscanf(at, "--servers %u", &s), 1);
    ps_budget_job m = logreg_job((uint64_t)1 << 31, 2, s, 2);
    ps_budget_rank p;
    ps_budget_server(&m, 0, &p);
    assert_true(p.total <= 4 * GiB);
    m.nservers = s - 1;
    ps_budget_server(&m, 0, &p);
    assert_true(p.total > 4 * GiB);
    /* Unknown memory: nothing to check. */
    assert_int_equal(ps_budget_check(&j, &w, 0, 0, 0, msg, sizeof msg), 0);
}

/* Auto: the ranks of a node share its memory by need, so one big server
 * with two small workers fits where an even split would not; ranks on
 * other nodes do not count. --max-memory is per rank. */
static void test_budget_node_shares_by_need_and_per_rank_is_strict(void **state)
{
    (void)state;
    ps_budget_job j = logreg_job((uint64_t)1 << 27, 2, 1, 2); /* ~6 GiB on the server */
    ps_budget_world w = world(3, 1);
    ps_budget_rank p;
    ps_budget_server(&j, 0, &p);
    assert_true(p.total > 4 * GiB && p.total < 8 * GiB);
    char msg[1024];
    assert_int_equal(ps_budget_check(&j, &w, 0, 0, 9 * GiB, msg, sizeof msg), 0);
    assert_int_equal(ps_budget_check(&j, &w, 2, 3 * GiB, 0, msg, sizeof msg), PS_ECONFIG);
    assert_non_null(strstr(msg, "over --max-memory 3.0 GiB per rank"));
    assert_int_equal(ps_budget_check(&j, &w, 0, 3 * GiB, 0, msg, sizeof msg), 0); /* a worker */
    /* The server alone on node 1: node 0's workers fit in little. */
    node_of[2] = 1;
    assert_int_equal(ps_budget_check(&j, &w, 0, 0, 1 * GiB, msg, sizeof msg), 0);
    assert_int_equal(ps_budget_check(&j, &w, 2, 0, 1 * GiB, msg, sizeof msg), PS_ECONFIG);
    assert_non_null(strstr(msg, "the 1 ranks on this node"));
    /* A worker's data too big: named with the file and its ways out. */
    j = logreg_job(1000, 2, 1, 2);
    j.stream = PS_STREAM_OFF;
    j.spec.train_bytes = 8 * GiB;
    w = world(3, 1);
    assert_int_equal(ps_budget_check(&j, &w, 0, 0, 4 * GiB, msg, sizeof msg), PS_ECONFIG);
    assert_non_null(strstr(msg, "worker 0's data"));
    assert_non_null(strstr(msg, "train.svm"));
    assert_non_null(strstr(msg, "--stream on"));
}

static void test_budget_describe_gives_the_plan(void **state)
{
    (void)state;
    ps_budget_job j = logreg_job(1 << 20, 2, 1, 2);
    char buf[512];
    ps_budget_describe(&j, 0, 20 * GiB, 3, buf, sizeof buf);
    assert_non_null(strstr(buf, "memory plan: "));
    assert_non_null(strstr(buf, "per server (tables 49.0 MiB)"));
    assert_non_null(strstr(buf, "20.0 GiB available on the node for its 3 ranks"));
    ps_budget_describe(&j, 2 * GiB, 0, 3, buf, sizeof buf);
    assert_non_null(strstr(buf, "--max-memory 2.0 GiB per rank"));
    /* The scan bound: rows of width 2 that 2 servers of 1 GiB hold. */
    uint64_t rows = ps_budget_max_rows(GiB, 2, 2, 2, 0, 1);
    assert_int_equal(rows, 2 * (GiB - PS_BUDGET_RUNTIME) / ps_budget_row_bytes(2, 2, 0, 1));
    assert_int_equal(ps_budget_max_rows(1, 1, 2, 2, 0, 1), 1);
}

static void test_budget_parses_and_prints_byte_counts(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t want; /* 0: refused */
    } cases[] = {
        {"1000", 1000},
        {"1K", 1024},
        {"512M", 512 * MiB},
        {"512m", 512 * MiB},
        {"4G", 4 * GiB},
        {"4GiB", 4 * GiB},
        {"4GB", 4 * GiB},
        {"2T", (uint64_t)2 << 40},
        {"1P", (uint64_t)1 << 50},
        {"100B", 100},
        {"18446744073709551615", UINT64_MAX},
        {"18446744073709551616", 0},
        {"16384P", 0}, /* 2^64 */
        {"0", 0},
        {"0G", 0},
        {"", 0},
        {"-1", 0},
        {"4X", 0},
        {"4 G", 0},
        {"G", 0},
        {"1.5G", 0},
        {"4Gi", 0},
        {"0x10", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t v = 0;
        int rc = ps_budget_parse_bytes(cases[i].text, &v);
        if (cases[i].want ? rc != 0 || v != cases[i].want : rc != PS_EINVAL) {
            fail_msg("'%s': rc %d, %llu", cases[i].text, rc, (unsigned long long)v);
        }
    }
    static const uint64_t back[] = {1, 1000, 1024, 1536 * MiB, 4 * GiB, 3 * GiB + 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof back / sizeof back[0]; i++) {
        char buf[32];
        uint64_t v = 0;
        ps_budget_format_bytes(back[i], buf, sizeof buf);
        assert_int_equal(ps_budget_parse_bytes(buf, &v), 0);
        assert_int_equal(v, back[i]);
    }
    char buf[32];
    ps_budget_format_bytes(4 * GiB, buf, sizeof buf);
    assert_string_equal(buf, "4G");
    ps_budget_format_bytes(1536 * MiB, buf, sizeof buf);
    assert_string_equal(buf, "1536M");
    ps_budget_human(512, buf, sizeof buf);
    assert_string_equal(buf, "512 B");
    ps_budget_human(1536, buf, sizeof buf);
    assert_string_equal(buf, "1.5 KiB");
    ps_budget_human(98 * GiB, buf, sizeof buf);
    assert_string_equal(buf, "98.0 GiB");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_server_counts_every_shard_array),
        cmocka_unit_test(test_budget_worker_holds_its_part_and_the_test_set),
        cmocka_unit_test(test_budget_refuses_the_issue_table_naming_the_ways_out),
        cmocka_unit_test(test_budget_node_shares_by_need_and_per_rank_is_strict),
        cmocka_unit_test(test_budget_describe_gives_the_plan),
        cmocka_unit_test(test_budget_parses_and_prints_byte_counts),
    };
    return cmocka_run_group_tests(tests, ps_test_setup, ps_test_teardown);
}
