/* Tests for common/json.c (and the JSON lines of common/log.c, its other
 * user in common/): exact compact and indented text, key order, doubles
 * that read back bit for bit, NaN -> null, bad UTF-8 repaired into valid
 * JSON (checked with Python's json module when /usr/bin/python3 is there),
 * ownership on every failure path (cmocka's leak check), and an OOM sweep
 * that only passes if jansson allocates through ps_malloc. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "tests/unit/ps_test.h"

#define FFFD "\xef\xbf\xbd" /* U+FFFD in UTF-8 */

/* Dumps j (then frees it) and returns the text, NUL-terminated; the
 * caller ps_free()s it. */
static char *dump_free(ps_json *j, unsigned indent)
{
    ps_bytes b = {0};
    assert_int_equal(ps_json_dump(j, indent, &b), 0);
    assert_int_equal(PS_GROW(b.data, b.cap, b.len + 1), 0);
    b.data[b.len] = '\0';
    ps_json_free(&j);
    assert_null(j);
    return (char *)b.data;
}

static ps_json *sample(void)
{
    ps_json *o = ps_json_object(), *a = ps_json_array();
    assert_int_equal(ps_json_set(o, "i", ps_json_int(INT64_MIN)), 0);
    assert_int_equal(ps_json_set(o, "d", ps_json_real(-2.25)), 0);
    assert_int_equal(ps_json_set(o, "one", ps_json_real(1.0)), 0);
    assert_int_equal(ps_json_set(o, "s", ps_json_string("a\"b\\c/\n")), 0);
    assert_int_equal(ps_json_set(o, "t", ps_json_bool(1)), 0);
    assert_int_equal(ps_json_set(o, "n", ps_json_string(NULL)), 0);
    assert_int_equal(ps_json_set(o, "a", a), 0);
    assert_int_equal(ps_json_append(a, ps_json_int(1)), 0);
    assert_int_equal(ps_json_append(a, ps_json_object()), 0);
    return o;
}

static void test_json_compact_text_is_exact(void **state)
{
    (void)state;
    char *s = dump_free(sample(), 0);
    /* A real keeps a ".0" so readers do not take it for an integer. */
    assert_string_equal(s, "{\"i\":-9223372036854775808,\"d\":-2.25,\"one\":1.0,"
                           "\"s\":\"a\\\"b\\\\c/\\n\",\"t\":true,\"n\":null,\"a\":[1,{}]}");
    ps_free(s);
}

static void test_json_indented_text_is_exact(void **state)
{
    (void)state;
    ps_json *o = ps_json_object(), *a = ps_json_array();
    assert_int_equal(ps_json_set(o, "x", ps_json_int(3)), 0);
    assert_int_equal(ps_json_set(o, "shape", a), 0);
    assert_int_equal(ps_json_append(a, ps_json_int(784)), 0);
    assert_int_equal(ps_json_append(a, ps_json_int(10)), 0);
    char *s = dump_free(o, 2);
    assert_string_equal(s, "{\n  \"x\": 3,\n  \"shape\": [\n    784,\n    10\n  ]\n}");
    ps_free(s);
}

static void test_json_keeps_key_order(void **state)
{
    (void)state;
    enum { N = 50 };
    ps_json *o = ps_json_object();
    char want[1024];
    size_t w = (size_t)snprintf(want, sizeof want, "{");
    for (int i = 0; i < N; i++) {
        char key[8];
        snprintf(key, sizeof key, "z%02d", (i * 37) % N); /* a shuffled order */
        assert_int_equal(ps_json_set(o, key, ps_json_int(i)), 0);
        w += (size_t)snprintf(want + w, sizeof want - w, "%s\"%s\":%d", i ? "," : "", key,
                              i == 0 ? 99 : i);
    }
    snprintf(want + w, sizeof want - w, "}");
    /* A repeated key keeps its place and takes the new value. */
    assert_int_equal(ps_json_set(o, "z00", ps_json_int(99)), 0);
    char *s = dump_free(o, 0);
    assert_string_equal(s, want);
    ps_free(s);
}

static void test_json_doubles_read_back_exactly_and_nonfinite_is_null(void **state)
{
    (void)state;
    const double vals[] = {0.1,      1.0 / 3.0, -2.5e300, 1e-300,      DBL_MAX, DBL_MIN,
                           4.9e-324, 0.0,       -0.0,     123456789.0, 1e22,    2.0 / 3.0 * 1e-5};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        char *s = dump_free(ps_json_real(vals[i]), 0);
        char *end;
        double back = strtod(s, &end);
        assert_int_equal(*end, '\0');
        if (memcmp(&back, &vals[i], sizeof back) != 0) {
            fail_msg("%.17g dumped as %s reads back as %.17g", vals[i], s, back);
        }
        ps_free(s);
    }
    const double bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < 3; i++) {
        char *s = dump_free(ps_json_real(bad[i]), 0);
        assert_string_equal(s, "null");
        ps_free(s);
    }
}

static void test_json_repairs_bad_utf8_in_strings_and_keys(void **state)
{
    (void)state;
    ps_json *o = ps_json_object();
    assert_int_equal(ps_json_set(o, "k\xff", ps_json_string("x\xffy\xe2\x82")), 0);
    assert_int_equal(ps_json_set(o, "ok", ps_json_string("caf\xc3\xa9 \xf0\x9f\x98\x80")), 0);
    assert_int_equal(ps_json_set(o, "sur", ps_json_string("\xed\xa0\x80\xc0\xaf\xf4\x90")), 0);
    assert_int_equal(ps_json_set(o, "ctl", ps_json_string("\x01\x1f\t")), 0);
    char *s = dump_free(o, 0);
    assert_string_equal(s, "{\"k" FFFD "\":\"x" FFFD "y" FFFD FFFD "\","
                           "\"ok\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\","
                           "\"sur\":\"" FFFD FFFD FFFD FFFD FFFD FFFD FFFD "\","
                           "\"ctl\":\"\\u0001\\u001F\\t\"}");
    if (system("/usr/bin/python3 -c 'import json' >/dev/null 2>&1") == 0) {
        char dir[64], path[128], cmd[512];
        assert_int_equal(ps_test_tmpdir_create(dir, sizeof dir, "json"), 0);
        snprintf(path, sizeof path, "%s/bad.json", dir);
        ps_test_write_text(path, s);
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 -c 'import json, sys\n"
                 "d = json.load(open(sys.argv[1], encoding=\"utf-8\"))\n"
                 "assert d[\"k\\ufffd\"] == \"x\\ufffdy\\ufffd\\ufffd\", d\n"
                 "assert d[\"ok\"] == \"caf\\u00e9 \\U0001F600\", d\n' '%s'",
                 path);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(ps_test_rmtree(dir), 0);
    }
    ps_free(s);
}

/* Every failure takes the value: cmocka's leak check fails this test if
 * one is dropped. */
static void test_json_set_and_append_own_value_on_failure(void **state)
{
    (void)state;
    ps_json *o = ps_json_object(), *a = ps_json_array();
    assert_int_equal(ps_json_set(o, "x", NULL), PS_ENOMEM);
    assert_int_equal(ps_json_append(a, NULL), PS_ENOMEM);
    assert_int_equal(ps_json_set(NULL, "x", ps_json_string("leak?")), PS_ENOMEM);
    assert_int_equal(ps_json_append(NULL, ps_json_int(1)), PS_ENOMEM);
    char *s = dump_free(o, 0);
    assert_string_equal(s, "{}");
    ps_free(s);
    ps_json_free(&a);
    ps_json_free(&a); /* NULL is fine */
    ps_json_free(NULL);
}

static void test_json_dump_appends_and_restores_on_failure(void **state)
{
    (void)state;
    ps_bytes b = {0};
    ps_json *j = ps_json_string("abc");
    assert_int_equal(ps_json_dump(j, 0, &b), 0);
    assert_int_equal(ps_json_dump(j, 0, &b), 0);
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.data, "\"abc\"\"abc\"", 10);
    /* Growing past the capacity fails: the text so far is kept as it was. */
    ps_json *big = ps_json_string("a long string that cannot fit in the sixteen bytes");
    ps_bytes small = {0};
    assert_int_equal(PS_GROW(small.data, small.cap, 1), 0);
    memcpy(small.data, "x", 1);
    small.len = 1;
    ps_test_fail_alloc(0);
    assert_int_equal(ps_json_dump(big, 0, &small), PS_ENOMEM);
    ps_test_fail_alloc(-1);
    assert_int_equal(small.len, 1);
    ps_free(small.data);
    ps_json_free(&big);
    ps_json_free(&j);
    ps_free(b.data);
}

/* Builds sample() with failure n injected: NULL-tolerant, so it must end
 * in PS_ENOMEM or the right text, and never leak. */
static int build_and_dump(char **out)
{
    ps_json *o = ps_json_object(), *a = NULL;
    int rc = ps_json_set(o, "s", ps_json_string("bad \xff byte"));
    rc = rc ? rc : ps_json_set(o, "k\xfe", ps_json_real(0.5));
    rc = rc ? rc : ps_json_set(o, "a", a = ps_json_array());
    rc = rc ? rc : ps_json_append(a, ps_json_int(7));
    ps_bytes b = {0};
    rc = rc ? rc : ps_json_dump(o, 0, &b);
    rc = rc ? rc : PS_GROW(b.data, b.cap, b.len + 1);
    if (rc == 0) {
        b.data[b.len] = '\0';
        *out = (char *)b.data;
    } else {
        ps_free(b.data);
    }
    ps_json_free(&o);
    return rc;
}

/* The exact text also catches a failure jansson swallows: 2.14 ignores the
 * write callback's result while dumping an object key, which once gave a
 * "successful" dump with half a key. */
static void test_json_survives_oom_sweep(void **state)
{
    (void)state;
    int rc = PS_ENOMEM;
    long n;
    char *s = NULL;
    for (n = 0; rc == PS_ENOMEM && n < 200; n++) {
        ps_test_fail_alloc(n);
        rc = build_and_dump(&s);
        ps_test_fail_alloc(-1);
    }
    assert_int_equal(rc, 0);
    /* jansson's own allocations failed too: it goes through ps_malloc. */
    assert_true(n > 8);
    assert_string_equal(s, "{\"s\":\"bad " FFFD " byte\",\"k" FFFD "\":0.5,\"a\":[7]}");
    ps_free(s);
}

/* --log-format json: one valid JSON object per line (bad UTF-8 repaired);
 * when jansson cannot allocate, the text line instead. */
static void test_log_json_lines_and_text_fallback(void **state)
{
    (void)state;
    ps_log_set_json(1);
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    PS_LOG(INFO, "said \"hi\" \xff");
    PS_LOG(ERROR, "broke");
    ps_test_fail_alloc(0);
    PS_LOG(WARN, "no memory");
    ps_test_fail_alloc(-1);
    char *err = ps_test_capture_end(&cap);
    ps_log_set_json(0);
    assert_int_equal(ps_test_count_lines(err), 3);
    char *l2 = strchr(err, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
    assert_memory_equal(err, "{\"time\":\"", 9);
    assert_non_null(
        strstr(err, "\",\"rank\":-1,\"level\":\"INFO\",\"msg\":\"said \\\"hi\\\" " FFFD "\"}\n"));
    assert_non_null(strstr(l2, "\"level\":\"ERROR\",\"msg\""));
    assert_true(strstr(l2, "\"msg\":\"broke\"}\n") < l3);
    assert_non_null(strstr(l3, "[rank -1] WARN: no memory\n"));
    assert_int_equal(l3[0] == '{', 0);
    test_free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, ps_test_setup, ps_test_teardown)
        T(test_json_compact_text_is_exact),
        T(test_json_indented_text_is_exact),
        T(test_json_keeps_key_order),
        T(test_json_doubles_read_back_exactly_and_nonfinite_is_null),
        T(test_json_repairs_bad_utf8_in_strings_and_keys),
        T(test_json_set_and_append_own_value_on_failure),
        T(test_json_dump_appends_and_restores_on_failure),
        T(test_json_survives_oom_sweep),
        T(test_log_json_lines_and_text_fallback),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
