/* Tests for worker/metrics.c: exact lines compared with hand-written JSON,
 * doubles read back bit for bit, escaping, NaN -> null, truncate/append,
 * and every line parsed by Python's json module when /usr/bin/python3 is
 * there. The header record (ISO time, run id, version, the configuration
 * as a typed object), booleans and nested objects, and time_unix on every
 * stamped line. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "worker/metrics.h"
#include "tests/unit/ps_test.h"

static char dir[64];

static int group_setup(void **state)
{
    (void)state;
    return ps_test_tmpdir_create(dir, sizeof dir, "metrics");
}

static int group_teardown(void **state)
{
    (void)state;
    return ps_test_rmtree(dir);
}

static void write_one(const char *path, ps_metrics_mode mode, const ps_metric_kv *kvs, size_t n)
{
    ps_metrics *m;
    assert_int_equal(ps_metrics_open(&m, path, mode), 0);
    assert_int_equal(ps_metrics_write(m, kvs, n), 0);
    assert_int_equal(ps_metrics_close(&m), 0);
    assert_null(m);
}

static void test_metrics_writes_one_object_per_line(void **state)
{
    (void)state;
    char path[128], buf[1024];
    snprintf(path, sizeof path, "%s/basic.jsonl", dir);
    ps_metrics *m;
    assert_int_equal(ps_metrics_open(&m, path, PS_METRICS_TRUNCATE), 0);
    ps_metric_kv a[] = {
        PS_METRIC_I("step", 100),
        PS_METRIC_D("train_loss", 0.5),
        PS_METRIC_S("phase", "eval"),
    };
    ps_metric_kv b[] = {
        PS_METRIC_I("min", INT64_MIN),
        PS_METRIC_I("max", INT64_MAX),
        PS_METRIC_D("neg", -2.25),
        PS_METRIC_S("none", NULL),
    };
    assert_int_equal(ps_metrics_write(m, a, 3), 0);
    /* Each line reaches the file when written, not at close. */
    ps_test_read_file(path, buf, sizeof buf);
    assert_string_equal(buf, "{\"step\":100,\"train_loss\":0.5,\"phase\":\"eval\"}\n");
    assert_int_equal(ps_metrics_write(m, b, 4), 0);
    assert_int_equal(ps_metrics_write(m, NULL, 0), 0);
    assert_int_equal(ps_metrics_close(&m), 0);
    ps_test_read_file(path, buf, sizeof buf);
    assert_string_equal(buf, "{\"step\":100,\"train_loss\":0.5,\"phase\":\"eval\"}\n"
                             "{\"min\":-9223372036854775808,\"max\":9223372036854775807,"
                             "\"neg\":-2.25,\"none\":null}\n"
                             "{}\n");
    assert_int_equal(ps_metrics_close(&m), 0); /* NULL is fine */
}

static void test_metrics_doubles_read_back_exactly(void **state)
{
    (void)state;
    char path[128], buf[2048];
    snprintf(path, sizeof path, "%s/doubles.jsonl", dir);
    const double vals[] = {0.1,     1.0 / 3.0, -2.5e300, 1e-300,     DBL_MAX,
                           DBL_MIN, 4.9e-324,  0.0,      123456789.0};
    enum { N = sizeof vals / sizeof vals[0] };
    for (size_t i = 0; i < N; i++) {
        ps_metric_kv kv = PS_METRIC_D("x", vals[i]);
        write_one(path, PS_METRICS_TRUNCATE, &kv, 1);
        ps_test_read_file(path, buf, sizeof buf);
        assert_memory_equal(buf, "{\"x\":", 5);
        char *end;
        double back = strtod(buf + 5, &end);
        assert_string_equal(end, "}\n");
        assert_memory_equal(&back, &vals[i], sizeof back);
    }
}

static void test_metrics_nonfinite_becomes_null(void **state)
{
    (void)state;
    char path[128], buf[256];
    snprintf(path, sizeof path, "%s/nan.jsonl", dir);
    ps_metric_kv kvs[] = {
        PS_METRIC_D("a", NAN),
        PS_METRIC_D("b", INFINITY),
        PS_METRIC_D("c", -INFINITY),
        PS_METRIC_D("d", 1.5),
    };
    write_one(path, PS_METRICS_TRUNCATE, kvs, 4);
    ps_test_read_file(path, buf, sizeof buf);
    assert_string_equal(buf, "{\"a\":null,\"b\":null,\"c\":null,\"d\":1.5}\n");
}

static void test_metrics_escapes_strings_and_keys(void **state)
{
    (void)state;
    char path[128], buf[512];
    snprintf(path, sizeof path, "%s/esc.jsonl", dir);
    ps_metric_kv kvs[] = {
        PS_METRIC_S("q\"k", "a\"b\\c"),
        PS_METRIC_S("ctl", "\n\t\r\b\f\x01\x1f"),
        PS_METRIC_S("utf8", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
        PS_METRIC_S("bad", "x\xffy\xe2\x82"),
        PS_METRIC_S("surrogate", "\xed\xa0\x80"),
        PS_METRIC_S("overlong", "\xc0\xaf"),
    };
    write_one(path, PS_METRICS_TRUNCATE, kvs, 6);
    ps_test_read_file(path, buf, sizeof buf);
    /* Each bad byte becomes U+FFFD, written as UTF-8 (EF BF BD). */
#define FFFD "\xef\xbf\xbd"
    assert_string_equal(buf, "{\"q\\\"k\":\"a\\\"b\\\\c\","
                             "\"ctl\":\"\\n\\t\\r\\b\\f\\u0001\\u001F\","
                             "\"utf8\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\","
                             "\"bad\":\"x" FFFD "y" FFFD FFFD "\","
                             "\"surrogate\":\"" FFFD FFFD FFFD "\","
                             "\"overlong\":\"" FFFD FFFD "\"}\n");
#undef FFFD
}

/* Keys come out in the order given, however many (jansson keeps objects in
 * a hash table: the order must not be its order), and a repeated key keeps
 * its first place with its last value. */
static void test_metrics_keeps_key_order(void **state)
{
    (void)state;
    enum { N = 40 };
    char path[128], buf[2048], want[2048], keys[N][8];
    snprintf(path, sizeof path, "%s/order.jsonl", dir);
    ps_metric_kv kvs[N + 1];
    size_t o = (size_t)snprintf(want, sizeof want, "{");
    for (int i = 0; i < N; i++) {
        /* Reverse alphabetical: neither sorted nor insertion-sorted by accident. */
        snprintf(keys[i], sizeof keys[i], "k%02d", N - 1 - i);
        kvs[i] = PS_METRIC_I(keys[i], i);
        o += (size_t)snprintf(want + o, sizeof want - o, "%s\"%s\":%d", i ? "," : "", keys[i],
                              i == 3 ? -1 : i);
    }
    snprintf(want + o, sizeof want - o, "}\n");
    kvs[N] = PS_METRIC_I(keys[3], -1);
    write_one(path, PS_METRICS_TRUNCATE, kvs, N + 1);
    ps_test_read_file(path, buf, sizeof buf);
    assert_string_equal(buf, want);
}

static void test_metrics_lines_parse_with_python_json(void **state)
{
    (void)state;
    if (system("/usr/bin/python3 -c 'import json' >/dev/null 2>&1") != 0) {
        skip();
    }
    char path[128];
    snprintf(path, sizeof path, "%s/py.jsonl", dir);
    ps_metrics *m;
    assert_int_equal(ps_metrics_open(&m, path, PS_METRICS_TRUNCATE), 0);
    for (int i = 0; i < 3; i++) {
        ps_metric_kv kvs[] = {
            PS_METRIC_I("step", i),
            PS_METRIC_D("train_loss", i == 1 ? NAN : 0.1 * i),
            PS_METRIC_S("note", "a\"b\\c\n\t\x01 caf\xc3\xa9 \xff"),
        };
        assert_int_equal(ps_metrics_write(m, kvs, 3), 0);
    }
    assert_int_equal(ps_metrics_close(&m), 0);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import json, sys\n"
             "lines = open(sys.argv[1], encoding=\"utf-8\").read().split(\"\\n\")\n"
             "assert lines[-1] == \"\", \"file must end in a newline\"\n"
             "rows = [json.loads(l) for l in lines[:-1]]\n"
             "assert [r[\"step\"] for r in rows] == [0, 1, 2]\n"
             "assert rows[1][\"train_loss\"] is None\n"
             "assert rows[2][\"train_loss\"] == 0.1 * 2\n"
             "assert rows[0][\"note\"] == \"a\\\"b\\\\c\\n\\t\\x01 caf\\u00e9 \\ufffd\", "
             "repr(rows[0][\"note\"])\n' '%s'",
             path);
    assert_int_equal(system(cmd), 0);
}

static const ps_metric_kv config[] = {
    PS_METRIC_S("model", "logreg"), PS_METRIC_I("batch", 32), PS_METRIC_D("lr", 0.25),
    PS_METRIC_B("quiet", 1),        PS_METRIC_B("resume", 0),
};

/* The first line of a run: event, ISO 8601 UTC time, time_unix, run id,
 * version and the configuration as an object; a stamped line carries
 * time_unix last (a given one is kept). */
static void test_metrics_header_and_stamps(void **state)
{
    (void)state;
    char path[128], buf[2048];
    snprintf(path, sizeof path, "%s/header.jsonl", dir);
    ps_metrics *m;
    assert_int_equal(ps_metrics_open(&m, path, PS_METRICS_TRUNCATE), 0);
    ps_metrics_header h = {.run_id = "0123456789abcdef",
                           .version = "9.9.9",
                           .config = config,
                           .nconfig = sizeof config / sizeof config[0]};
    struct timespec before, after;
    clock_gettime(CLOCK_REALTIME, &before);
    assert_int_equal(ps_metrics_write_header(m, &h), 0);
    ps_metrics_stamp(m, 1);
    ps_metric_kv a[] = {PS_METRIC_I("step", 5)};
    assert_int_equal(ps_metrics_write(m, a, 1), 0);
    ps_metric_kv b[] = {PS_METRIC_I("step", 6), PS_METRIC_D("time_unix", 12.5)};
    assert_int_equal(ps_metrics_write(m, b, 2), 0);
    ps_metrics_stamp(m, 0);
    assert_int_equal(ps_metrics_write(m, a, 1), 0);
    clock_gettime(CLOCK_REALTIME, &after);
    assert_int_equal(ps_metrics_close(&m), 0);
    ps_test_read_file(path, buf, sizeof buf);
    char *l2 = strchr(buf, '\n') + 1, *l3 = strchr(l2, '\n') + 1, *l4 = strchr(l3, '\n') + 1;
    /* {"event":"header","time":"YYYY-MM-DDTHH:MM:SS.mmmZ","time_unix":T,... */
    assert_true(strncmp(buf, "{\"event\":\"header\",\"time\":\"", 26) == 0);
    const char *iso = buf + 26;
    assert_true(iso[4] == '-' && iso[7] == '-' && iso[10] == 'T' && iso[13] == ':' &&
                iso[19] == '.' && iso[23] == 'Z' && iso[24] == '"');
    double t = strtod(strstr(buf, "\"time_unix\":") + 12, NULL);
    assert_true(t >= (double)before.tv_sec && t <= (double)after.tv_sec + 1);
    assert_non_null(strstr(buf, "\"run_id\":\"0123456789abcdef\",\"adamps_version\":\"9.9.9\","
                                "\"config\":{\"model\":\"logreg\",\"batch\":32,\"lr\":0.25,"
                                "\"quiet\":true,\"resume\":false}}\n"));
    static const char stamped[] = "{\"step\":5,\"time_unix\":";
    assert_true(strncmp(l2, stamped, strlen(stamped)) == 0);
    t = strtod(l2 + strlen(stamped), NULL);
    assert_true(t >= (double)before.tv_sec && t <= (double)after.tv_sec + 1);
    static const char given[] = "{\"step\":6,\"time_unix\":12.5}\n";
    assert_true(strncmp(l3, given, strlen(given)) == 0);
    assert_string_equal(l4, "{\"step\":5}\n");
}

static void test_metrics_truncate_and_append_modes(void **state)
{
    (void)state;
    char path[128], buf[256];
    snprintf(path, sizeof path, "%s/modes.jsonl", dir);
    ps_metric_kv one = PS_METRIC_I("a", 1), two = PS_METRIC_I("a", 2);
    write_one(path, PS_METRICS_TRUNCATE, &one, 1);
    write_one(path, PS_METRICS_APPEND, &two, 1);
    ps_test_read_file(path, buf, sizeof buf);
    assert_string_equal(buf, "{\"a\":1}\n{\"a\":2}\n");
    write_one(path, PS_METRICS_TRUNCATE, &two, 1);
    ps_test_read_file(path, buf, sizeof buf);
    assert_string_equal(buf, "{\"a\":2}\n");
    /* Both modes create missing parent directories. */
    snprintf(path, sizeof path, "%s/runs/a/x.jsonl", dir);
    write_one(path, PS_METRICS_TRUNCATE, &one, 1);
    ps_test_read_file(path, buf, sizeof buf);
    assert_string_equal(buf, "{\"a\":1}\n");
    /* Append creates a missing file. */
    snprintf(path, sizeof path, "%s/new.jsonl", dir);
    write_one(path, PS_METRICS_APPEND, &one, 1);
    ps_test_read_file(path, buf, sizeof buf);
    assert_string_equal(buf, "{\"a\":1}\n");
}

static void test_metrics_append_drops_partial_last_line(void **state)
{
    (void)state;
    char path[128];
    static char buf[16384], big[12000];
    snprintf(path, sizeof path, "%s/partial.jsonl", dir);
    ps_metric_kv two = PS_METRIC_I("b", 2);

    ps_test_write_text(path, "{\"a\":1}\n{\"a\":");
    write_one(path, PS_METRICS_APPEND, &two, 1);
    ps_test_read_file(path, buf, sizeof buf);
    assert_string_equal(buf, "{\"a\":1}\n{\"b\":2}\n");

    /* No newline at all: the whole file is the partial line. */
    ps_test_write_text(path, "{\"a\":");
    write_one(path, PS_METRICS_APPEND, &two, 1);
    ps_test_read_file(path, buf, sizeof buf);
    assert_string_equal(buf, "{\"b\":2}\n");

    /* A partial line longer than the scan chunk. */
    memset(big, 'x', sizeof big - 1);
    memcpy(big, "{\"a\":1}\n{\"s\":\"", 14);
    ps_test_write_text(path, big);
    write_one(path, PS_METRICS_APPEND, &two, 1);
    ps_test_read_file(path, buf, sizeof buf);
    assert_string_equal(buf, "{\"a\":1}\n{\"b\":2}\n");
}

static void test_metrics_rejects_bad_input(void **state)
{
    (void)state;
    char path[128], buf[256];
    snprintf(path, sizeof path, "%s/bad.jsonl", dir);
    ps_metrics *m;
    assert_int_equal(ps_metrics_open(&m, path, (ps_metrics_mode)7), PS_EINVAL);
    assert_null(m);
    assert_int_equal(ps_metrics_open(&m, path, PS_METRICS_TRUNCATE), 0);
    ps_metric_kv nokey[] = {PS_METRIC_I("ok", 1), PS_METRIC_I(NULL, 2)};
    assert_int_equal(ps_metrics_write(m, nokey, 2), PS_EINVAL);
    ps_metric_kv badtype = {.key = "t", .type = (ps_metric_type)9};
    assert_int_equal(ps_metrics_write(m, &badtype, 1), PS_EINVAL);
    assert_int_equal(ps_metrics_close(&m), 0);
    /* A rejected line leaves nothing behind. */
    assert_int_equal(ps_test_read_file(path, buf, sizeof buf), 0);

    /* Missing parents are made; a file where a directory must go is an error. */
    snprintf(path, sizeof path, "%s/bad.jsonl/under/x.jsonl", dir);
    assert_int_equal(ps_metrics_open(&m, path, PS_METRICS_TRUNCATE), PS_EIO);
    assert_null(m);
}

static void test_metrics_survives_oom_sweep(void **state)
{
    (void)state;
    char path[128], buf[512];
    snprintf(path, sizeof path, "%s/oom.jsonl", dir);
    ps_metric_kv kvs[] = {
        PS_METRIC_I("step", 7),
        PS_METRIC_S("s", "a long enough string to need the line buffer to grow past its "
                         "first sixteen bytes, twice over"),
    };
    int rc = PS_ENOMEM;
    long n;
    for (n = 0; rc == PS_ENOMEM && n < 100; n++) {
        ps_metrics *m = NULL;
        ps_test_fail_alloc(n);
        rc = ps_metrics_open(&m, path, PS_METRICS_TRUNCATE);
        if (!rc) {
            rc = ps_metrics_write(m, kvs, 2);
        }
        ps_test_fail_alloc(-1);
        assert_int_equal(ps_metrics_close(&m), 0);
        if (rc == PS_ENOMEM) {
            /* Not created yet, or created empty: never half a line. */
            assert_true(access(path, F_OK) != 0 || ps_test_read_file(path, buf, sizeof buf) == 0);
        }
    }
    assert_int_equal(rc, 0);
    assert_true(n > 3);
    ps_test_read_file(path, buf, sizeof buf);
    assert_memory_equal(buf, "{\"step\":7,\"s\":\"a long", 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, ps_test_setup, ps_test_teardown)
        T(test_metrics_writes_one_object_per_line),
        T(test_metrics_doubles_read_back_exactly),
        T(test_metrics_nonfinite_becomes_null),
        T(test_metrics_escapes_strings_and_keys),
        T(test_metrics_keeps_key_order),
        T(test_metrics_lines_parse_with_python_json),
        T(test_metrics_header_and_stamps),
        T(test_metrics_truncate_and_append_modes),
        T(test_metrics_append_drops_partial_last_line),
        T(test_metrics_rejects_bad_input),
        T(test_metrics_survives_oom_sweep),
#undef T
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
