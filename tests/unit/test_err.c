/* Tests for common/err and common/log: one distinct message per error code,
 * and what PS_LOG writes to stderr (captured by pointing fd 2 at a temp
 * file): one line per call with level, rank and message, file:line on debug
 * and error lines, the level filter, and JSON lines that a strict parser
 * (below) accepts and decodes back to the original message. */
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
#include "common/log.h"
#include "tests/unit/ps_test.h"

/* Every code, spelled out here so a code added without a message (or a
 * message dropped) is caught by the count check below. */
static const int all_codes[] = {PS_ENOMEM, PS_EINVAL, PS_EIO,        PS_EFORMAT, PS_ERANGE,
                                PS_EMSG,   PS_EMPI,   PS_ENONFINITE, PS_ECONFIG, PS_ECKPT,
                                PS_EEOF,   PS_EPEER,  PS_ETIMEDOUT,  PS_ESTOPPED};
#define NCODES (sizeof all_codes / sizeof all_codes[0])

static void test_err_every_code_has_distinct_message(void **state)
{
    (void)state;
    assert_int_equal(PS_ERR_LAST_ - PS_ERR_FIRST_ - 1, NCODES);
    for (size_t i = 0; i < NCODES; i++) {
        const char *s = ps_strerror(all_codes[i]);
        assert_true(all_codes[i] < 0);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        assert_string_not_equal(s, "unknown error");
        assert_string_not_equal(s, "success");
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(all_codes[i], all_codes[j]);
            assert_string_not_equal(s, ps_strerror(all_codes[j]));
        }
    }
    assert_string_equal(ps_strerror(PS_ENOMEM), "out of memory");
    assert_string_equal(ps_strerror(PS_ECKPT), "bad or mismatched checkpoint");
}

static void test_err_success_and_unknown_codes(void **state)
{
    (void)state;
    assert_int_equal(PS_OK, 0);
    assert_string_equal(ps_strerror(0), "success");
    const int unknown[] = {1, -1, 42, PS_ERR_FIRST_, PS_ERR_LAST_, -2000000000, 2000000000};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_string_equal(ps_strerror(unknown[i]), "unknown error");
    }
}

static int log_reset(void **state)
{
    ps_log_set_level(PS_LOG_INFO);
    ps_log_set_json(0);
    ps_log_set_rank(-1);
    return ps_test_setup(state);
}

static int log_teardown(void **state)
{
    ps_log_set_level(PS_LOG_INFO);
    ps_log_set_json(0);
    ps_log_set_rank(-1);
    return ps_test_teardown(state);
}

/* Runs first, before anything sets a level: the built-in default drops
 * debug lines and keeps info. */
static void test_log_default_level_drops_debug(void **state)
{
    (void)state;
    ps_test_capture c;
    ps_test_capture_begin(&c);
    PS_LOG(DEBUG, "hidden %d", 1);
    PS_LOG(INFO, "shown %d", 2);
    char *out = ps_test_capture_end(&c);
    assert_null(strstr(out, "hidden"));
    assert_non_null(strstr(out, "shown 2"));
    assert_int_equal(ps_test_count_lines(out), 1);
    test_free(out);
}

static void test_log_each_level_writes_one_line(void **state)
{
    (void)state;
    static const struct {
        ps_log_level level;
        const char *name;
        int where; /* file:line expected */
    } levels[] = {{PS_LOG_DEBUG, "DEBUG", 1},
                  {PS_LOG_INFO, "INFO", 0},
                  {PS_LOG_WARN, "WARN", 0},
                  {PS_LOG_ERROR, "ERROR", 1}};
    ps_log_set_level(PS_LOG_DEBUG);
    ps_log_set_rank(7);
    for (size_t i = 0; i < 4; i++) {
        ps_test_capture c;
        ps_test_capture_begin(&c);
        int line = __LINE__ + 1;
        ps_log_write(levels[i].level, "dir/test_err.c", line, "message %s #%zu", "body", i);
        char *out = ps_test_capture_end(&c);
        char msg[64], where[64], lvl[32];
        snprintf(msg, sizeof msg, "message body #%zu\n", i);
        snprintf(where, sizeof where, "test_err.c:%d", line);
        snprintf(lvl, sizeof lvl, " %s", levels[i].name);
        assert_int_equal(ps_test_count_lines(out), 1);
        assert_non_null(strstr(out, lvl));
        assert_non_null(strstr(out, "[rank 7]"));
        /* The message ends the line. */
        assert_true(strlen(out) >= strlen(msg));
        assert_string_equal(out + strlen(out) - strlen(msg), msg);
        if (levels[i].where) {
            assert_non_null(strstr(out, where));
            assert_null(strstr(out, "dir/")); /* only the file's base name */
        } else {
            assert_null(strstr(out, where));
        }
        test_free(out);
    }
}

static void test_log_level_filter_drops_lower_levels(void **state)
{
    (void)state;
    ps_log_set_level(PS_LOG_WARN);
    ps_test_capture c;
    ps_test_capture_begin(&c);
    PS_LOG(DEBUG, "d-line");
    PS_LOG(INFO, "i-line");
    PS_LOG(WARN, "w-line");
    PS_LOG(ERROR, "e-line");
    char *out = ps_test_capture_end(&c);
    assert_int_equal(ps_test_count_lines(out), 2);
    assert_null(strstr(out, "d-line"));
    assert_null(strstr(out, "i-line"));
    assert_non_null(strstr(out, "w-line"));
    assert_non_null(strstr(out, "e-line"));
    test_free(out);
}

/* --- a strict parser for the flat JSON objects the logger writes ----------
 * Grammar: '{' string ':' (string | integer) (',' ...)* '}' then '\n'. */

typedef struct {
    const char *p;
} jp;

static void skip_ws(jp *j)
{
    while (*j->p == ' ' || *j->p == '\t') {
        j->p++;
    }
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* Decodes a JSON string (ASCII escapes only) into out; 0 on success. */
static int parse_string(jp *j, char *out, size_t cap)
{
    size_t o = 0;
    if (*j->p++ != '"') {
        return -1;
    }
    for (;;) {
        unsigned char ch = (unsigned char)*j->p++;
        if (ch == '"') {
            break;
        }
        if (ch < 0x20) {
            return -1; /* raw control characters (and the NUL end) are invalid */
        }
        if (ch == '\\') {
            char e = *j->p++;
            switch (e) {
            case '"':
            case '\\':
            case '/':
                ch = (unsigned char)e;
                break;
            case 'n':
                ch = '\n';
                break;
            case 't':
                ch = '\t';
                break;
            case 'r':
                ch = '\r';
                break;
            case 'b':
                ch = '\b';
                break;
            case 'f':
                ch = '\f';
                break;
            case 'u': {
                int v = 0;
                for (int k = 0; k < 4; k++) {
                    int h = hexval(*j->p++);
                    if (h < 0) {
                        return -1;
                    }
                    v = v * 16 + h;
                }
                if (v > 0x7f) {
                    return -1;
                }
                ch = (unsigned char)v;
                break;
            }
            default:
                return -1;
            }
        }
        if (o + 1 >= cap) {
            return -1;
        }
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return 0;
}

typedef struct {
    char time[64], level[16], msg[8192];
    long rank;
    int have_time, have_level, have_msg, have_rank;
} log_obj;

/* Parses one line (up to and including '\n'); returns the next line or NULL. */
static const char *parse_line(const char *line, log_obj *o)
{
    jp j = {line};
    memset(o, 0, sizeof *o);
    skip_ws(&j);
    if (*j.p++ != '{') {
        return NULL;
    }
    for (;;) {
        char key[32];
        skip_ws(&j);
        if (parse_string(&j, key, sizeof key)) {
            return NULL;
        }
        skip_ws(&j);
        if (*j.p++ != ':') {
            return NULL;
        }
        skip_ws(&j);
        if (*j.p == '"') {
            char *dst = NULL;
            size_t cap = 0;
            if (!strcmp(key, "time")) {
                dst = o->time, cap = sizeof o->time, o->have_time = 1;
            } else if (!strcmp(key, "level")) {
                dst = o->level, cap = sizeof o->level, o->have_level = 1;
            } else if (!strcmp(key, "msg")) {
                dst = o->msg, cap = sizeof o->msg, o->have_msg = 1;
            } else {
                return NULL;
            }
            if (parse_string(&j, dst, cap)) {
                return NULL;
            }
        } else {
            char *end;
            long v = strtol(j.p, &end, 10);
            if (end == j.p || strcmp(key, "rank")) {
                return NULL;
            }
            o->rank = v;
            o->have_rank = 1;
            j.p = end;
        }
        skip_ws(&j);
        char sep = *j.p++;
        if (sep == '}') {
            break;
        }
        if (sep != ',') {
            return NULL;
        }
    }
    if (*j.p++ != '\n') {
        return NULL;
    }
    return j.p;
}

static void test_log_json_escapes_and_parses(void **state)
{
    (void)state;
    ps_log_set_json(1);
    ps_log_set_level(PS_LOG_DEBUG);
    ps_log_set_rank(3);
    const char *msgs[] = {"plain text", "say \"hi\"\nsecond line\ttab \\ back\\slash",
                          "ctrl \x01\x1f end", "{\"not\":\"json\"}"};
    const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    ps_test_capture c;
    ps_test_capture_begin(&c);
    for (int i = 0; i < 4; i++) {
        ps_log_write((ps_log_level)i, "x.c", 1, "%s", msgs[i]);
    }
    char *out = ps_test_capture_end(&c);
    assert_int_equal(ps_test_count_lines(out), 4);
    const char *p = out;
    static log_obj o;
    for (int i = 0; i < 4; i++) {
        p = parse_line(p, &o);
        assert_non_null(p);
        assert_true(o.have_time && o.have_level && o.have_msg && o.have_rank);
        assert_string_equal(o.msg, msgs[i]);
        assert_string_equal(o.level, names[i]);
        assert_int_equal(o.rank, 3);
        assert_int_equal(strlen(o.time), strlen("2024-01-01T00:00:00.000Z"));
        assert_int_equal(o.time[strlen(o.time) - 1], 'Z');
    }
    assert_int_equal(*p, '\0');
    test_free(out);
}

/* A message that overflows the escape buffer is cut, but still one valid
 * object whose message is a prefix of the original. */
static void test_log_json_long_message_stays_one_object(void **state)
{
    (void)state;
    ps_log_set_json(1);
    static char big[1900];
    for (size_t i = 0; i + 1 < sizeof big; i++) {
        big[i] = i % 3 == 0 ? '\n' : (i % 3 == 1 ? '"' : 'a');
    }
    big[sizeof big - 1] = '\0';
    ps_test_capture c;
    ps_test_capture_begin(&c);
    PS_LOG(WARN, "%s", big);
    char *out = ps_test_capture_end(&c);
    assert_int_equal(ps_test_count_lines(out), 1);
    static log_obj o;
    const char *end = parse_line(out, &o);
    assert_non_null(end);
    assert_int_equal(*end, '\0');
    assert_true(strlen(o.msg) > 100);
    assert_memory_equal(o.msg, big, strlen(o.msg));
    test_free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* First, so it sees the built-in default level. */
        cmocka_unit_test_setup_teardown(test_log_default_level_drops_debug, ps_test_setup,
                                        log_teardown),
#define T(f) cmocka_unit_test_setup_teardown(f, log_reset, log_teardown)
        T(test_err_every_code_has_distinct_message),
        T(test_err_success_and_unknown_codes),
        T(test_log_each_level_writes_one_line),
        T(test_log_level_filter_drops_lower_levels),
        T(test_log_json_escapes_and_parses),
        T(test_log_json_long_message_stays_one_object),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
