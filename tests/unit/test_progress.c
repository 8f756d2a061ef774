/* Tests for worker/progress.c: the time left counts the evaluations to come
 * at the time they take, not at the training rate; the count of
 * evaluations left matches the loop's schedule walked clock by clock;
 * h:mm:ss rounding and the unknown time; the progress line in text and as
 * JSON whose fields Python's json parses (when /usr/bin/python3 is there),
 * and the final line in both formats. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "worker/progress.h"
#include "tests/unit/ps_test.h"

static void test_progress_eta_counts_evaluations_at_their_cost(void **state)
{
    (void)state;
    /* 100 steps in 30 s of which 2 evaluations took 10 s: 0.2 s a step, 5
     * s an evaluation. 400 steps and 4 evaluations left: 80 + 20 s. */
    ps_progress p = {.steps_done = 100,
                     .steps_left = 400,
                     .elapsed_s = 30,
                     .eval_s = 10,
                     .evals_done = 2,
                     .evals_left = 4};
    assert_true(fabs(ps_progress_eta(&p) - 100.0) < 1e-9);
    /* Without the evaluations' share the estimate would be 120 + 0 s:
     * counting them at the step rate is what the old ETA did. */
    p.evals_left = 0;
    assert_true(fabs(ps_progress_eta(&p) - 80.0) < 1e-9);
    /* None timed yet: only the steps, at the whole elapsed time's rate. */
    p = (ps_progress){.steps_done = 10, .steps_left = 90, .elapsed_s = 5, .evals_left = 3};
    assert_true(fabs(ps_progress_eta(&p) - 45.0) < 1e-9);
    /* Nothing done: unknown. */
    p = (ps_progress){.steps_left = 5, .evals_left = 1};
    assert_true(ps_progress_eta(&p) < 0);
    /* Done: nothing left but the final evaluation. */
    p = (ps_progress){
        .steps_done = 10, .elapsed_s = 12, .eval_s = 2, .evals_done = 1, .evals_left = 1};
    assert_true(fabs(ps_progress_eta(&p) - 2.0) < 1e-9);
}

/* The loop evaluates at the top of clock k (0 < k < total, k % every ==
 * 0) and once at the end: count what is left from each next clock. */
static void test_progress_evals_left_follows_the_schedule(void **state)
{
    (void)state;
    for (uint64_t total = 0; total <= 40; total++) {
        for (uint64_t every = 0; every <= 9; every++) {
            for (uint64_t next = 0; next <= total; next++) {
                uint64_t want = 1;
                for (uint64_t k = next; k < total; k++) {
                    want += k > 0 && every && k % every == 0;
                }
                if (ps_progress_evals_left(next, total, every) != want) {
                    fail_msg("next %llu total %llu every %llu: %llu, want %llu",
                             (unsigned long long)next, (unsigned long long)total,
                             (unsigned long long)every,
                             (unsigned long long)ps_progress_evals_left(next, total, every),
                             (unsigned long long)want);
                }
            }
        }
    }
    assert_int_equal(ps_progress_evals_left(5, 4, 1), 0);
}

static void test_progress_formats_hms(void **state)
{
    (void)state;
    static const struct {
        double s;
        const char *want;
    } cases[] = {
        {0, "0:00:00"},        {0.49, "0:00:00"},   {0.5, "0:00:01"},  {59.6, "0:01:00"},
        {245, "0:04:05"},      {3599.4, "0:59:59"}, {3600, "1:00:00"}, {100000, "27:46:40"},
        {360000, "100:00:00"}, {-1, "-:--:--"},     {NAN, "-:--:--"},  {INFINITY, "-:--:--"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        ps_progress_hms(cases[i].s, buf, sizeof buf);
        assert_string_equal(buf, cases[i].want);
    }
}

static const ps_progress_line line = {.step = 120,
                                      .steps_total = 480,
                                      .epoch = 0.25,
                                      .samples_per_sec = 5120.5,
                                      .train_loss_ma = 0.375,
                                      .push_bytes_per_sec = 2.5e6,
                                      .pull_bytes_per_sec = 3e6,
                                      .eta_s = 3725};

static void test_progress_line_in_text_and_json(void **state)
{
    (void)state;
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    ps_progress_log(&line, 0);
    char *text = ps_test_capture_end(&cap);
    assert_non_null(strstr(text, "epoch 0.25 step 120/480  5120 samples/s  train_loss_ma 0.3750  "
                                 "push 2.5 MB/s pull 3.0 MB/s  eta 1:02:05"));
    test_free(text);

    ps_log_set_json(1);
    ps_test_capture_begin(&cap);
    ps_progress_log(&line, 1);
    ps_progress_line none = line;
    none.eta_s = -1;
    none.train_loss_ma = NAN;
    ps_progress_log(&none, 1);
    char *js = ps_test_capture_end(&cap);
    ps_log_set_json(0);
    assert_int_equal(ps_test_count_lines(js), 2);
    assert_non_null(strstr(js, "\"event\":\"progress\",\"step\":120,\"steps_total\":480,"
                               "\"epoch\":0.25,\"samples_per_sec\":5120.5,"
                               "\"train_loss_ma\":0.375"));
    assert_non_null(strstr(js, "\"eta_s\":3725.0,\"eta\":\"1:02:05\""));
    assert_non_null(strstr(js, "\"train_loss_ma\":null"));
    assert_non_null(strstr(js, "\"eta_s\":null,\"eta\":\"-:--:--\""));
    if (access("/usr/bin/python3", X_OK) == 0) {
        char path[64] = "/tmp/adamps_test_progress.XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, js, strlen(js)), (ssize_t)strlen(js));
        close(fd);
        char cmd[512];
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 -c 'import json, sys\n"
                 "l = [json.loads(x) for x in open(sys.argv[1])]\n"
                 "assert l[0][\"step\"] == 120 and l[0][\"eta\"] == \"1:02:05\", l[0]\n"
                 "assert l[0][\"level\"] == \"INFO\" and \"msg\" in l[0], l[0]\n"
                 "assert l[1][\"eta_s\"] is None and l[1][\"train_loss_ma\"] is None, l[1]\n' %s",
                 path);
        int rc = system(cmd);
        unlink(path);
        assert_int_equal(rc, 0);
    }
    test_free(js);
}

static void test_progress_final_line_in_both_formats(void **state)
{
    (void)state;
    ps_progress_final f = {.step = 480,
                           .test_loss = 0.5,
                           .test_acc = 0.875,
                           .time_s = 12.345,
                           .samples_per_sec = 4000,
                           .run_id = "00ff"};
    char buf[512];
    FILE *t = tmpfile();
    assert_non_null(t);
    ps_progress_print_final(&f, 0, t);
    f.test_acc = NAN;
    ps_progress_print_final(&f, 0, t);
    ps_progress_print_final(&f, 1, t);
    rewind(t);
    size_t n = fread(buf, 1, sizeof buf - 1, t);
    fclose(t);
    buf[n] = '\0';
    assert_string_equal(buf, "final step=480 test_loss=0.500000 test_acc=0.8750 time_s=12.35 "
                             "samples_per_sec=4000.0\n"
                             "final step=480 test_loss=0.500000 test_acc=null time_s=12.35 "
                             "samples_per_sec=4000.0\n"
                             "{\"event\":\"final\",\"step\":480,\"test_loss\":0.5,"
                             "\"test_acc\":null,\"time_s\":12.345000000000001,"
                             "\"samples_per_sec\":4000.0,\"run_id\":\"00ff\"}\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, ps_test_setup, ps_test_teardown)
        T(test_progress_eta_counts_evaluations_at_their_cost),
        T(test_progress_evals_left_follows_the_schedule),
        T(test_progress_formats_hms),
        T(test_progress_line_in_text_and_json),
        T(test_progress_final_line_in_both_formats),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
