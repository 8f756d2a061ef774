/* Tests for cli/resume: a resume's flags against the run header a
 * checkpoint was written with. The same flags pass; a changed flag that
 * alters training is refused naming it with both values (every one of
 * them, not just the first); the safe changes pass; --resume-allow lets a
 * named change through and refuses an unknown name; a setting this build
 * does not know is refused; and the coordinator's plan finds the complete
 * checkpoints and checks their worker count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/cfg.h"
#include "cli/resume.h"
#include "common/ckpt.h"
#include "common/err.h"
#include "common/mem.h"
#include "tests/unit/ps_test.h"

#define MAXA 40

static ps_cfg cfg_of(const char *const *extra)
{
    const char *argv[MAXA] = {"adamps",  "train",  "--dataset",        "fashion-mnist",
                              "--model", "logreg", "--checkpoint-dir", "ck"};
    int argc = 8;
    for (; extra && *extra; extra++) {
        argv[argc++] = *extra;
    }
    ps_cfg c;
    char err[256];
    assert_int_equal(ps_cfg_parse(&c, argc, (char **)argv, err, sizeof err), 0);
    return c;
}

static void header_of(const ps_cfg *c, char *buf, size_t n)
{
    assert_true(ps_cfg_format(c, buf, n) < (int)n);
}

/* Checks `now` (flags on top of the base) against a header written with
 * `then`; returns the rc, err holds the reason. */
static int check(const char *const *then, const char *const *now, char *err, size_t n)
{
    static char header[8192];
    ps_cfg a = cfg_of(then), b = cfg_of(now);
    header_of(&a, header, sizeof header);
    return ps_resume_check_config(&b, header, err, n);
}

static void test_resume_same_flags_pass(void **state)
{
    (void)state;
    char err[4096];
    const char *both[] = {"--seed", "3", "--lr", "0.05", "--hidden", "8,4", NULL};
    assert_int_equal(check(both, both, err, sizeof err), 0);
    assert_string_equal(err, "");
    /* Also when a path has blanks and quotes (the header quotes it). */
    const char *odd[] = {"--metrics", "my \"run\" 1.jsonl", "--train-limit", "500", NULL};
    assert_int_equal(check(odd, odd, err, sizeof err), 0);
}

static void test_resume_changed_flags_are_refused_naming_each(void **state)
{
    (void)state;
    char err[4096];
    const char *then[] = {"--seed", "1", "--lr", "0.01", "--batch", "32", NULL};
    const char *now[] = {"--seed",        "2",   "--lr",          "0.02", "--batch", "64",
                         "--consistency", "asp", "--train-limit", "100",  NULL};
    assert_int_equal(check(then, now, err, sizeof err), PS_ECONFIG);
    assert_non_null(strstr(err, "--seed 1 (this job: 2)"));
    assert_non_null(strstr(err, "--lr 0.01 (this job: 0.02)"));
    assert_non_null(strstr(err, "--batch 32 (this job: 64)"));
    assert_non_null(strstr(err, "--consistency bsp (this job: asp)"));
    assert_non_null(strstr(err, "--train-limit 0 (this job: 100)"));
    assert_non_null(strstr(err, "--resume-allow"));
}

static void test_resume_safe_changes_pass(void **state)
{
    (void)state;
    char err[4096];
    const char *then[] = {"--steps", "100", "--servers", "1", NULL};
    const char *now[] = {"--steps",   "500",
                         "--servers", "3",
                         "--shard",   "hash",
                         "--quiet",   "--progress-every",
                         "1",         "--peer-timeout",
                         "5",         "--checkpoint-every",
                         "7",         "--keep-checkpoints",
                         "4",         "--metrics",
                         "m.jsonl",   "--resume",
                         NULL};
    assert_int_equal(check(then, now, err, sizeof err), 0);
}

static void test_resume_allow_lets_named_changes_through(void **state)
{
    (void)state;
    char err[4096];
    const char *then[] = {"--lr", "0.01", "--eval-every", "10", NULL};
    const char *now[] = {"--lr", "0.02", "--eval-every", "20", "--resume-allow", "lr", NULL};
    assert_int_equal(check(then, now, err, sizeof err), PS_ECONFIG);
    assert_null(strstr(err, "--lr"));
    assert_non_null(strstr(err, "--eval-every 10 (this job: 20)"));
    const char *both[] = {"--lr", "0.02", "--eval-every", "20", "--resume-allow", "lr,--eval-every",
                          NULL};
    assert_int_equal(check(then, both, err, sizeof err), 0);
    const char *bogus[] = {"--resume-allow", "lr,bogus", NULL};
    assert_int_equal(check(then, bogus, err, sizeof err), PS_ECONFIG);
    assert_non_null(strstr(err, "--resume-allow: 'bogus' is not a flag"));
}

static void test_resume_unknown_setting_is_refused(void **state)
{
    (void)state;
    char err[4096], header[8300];
    ps_cfg c = cfg_of(NULL);
    header_of(&c, header, 8192);
    strcat(header, " warp_drive=on");
    assert_int_equal(ps_resume_check_config(&c, header, err, sizeof err), PS_ECONFIG);
    assert_non_null(strstr(err, "warp_drive=on (a setting this build does not have)"));
}

static void test_resume_plan_lists_and_checks_worker_count(void **state)
{
    (void)state;
    char dir[128], header[8192];
    assert_int_equal(ps_test_tmpdir_create(dir, sizeof dir, "resume"), 0);
    const char *flags[] = {"--seed", "9", NULL};
    ps_cfg c = cfg_of(flags);
    snprintf(c.ckpt_dir, sizeof c.ckpt_dir, "%s", dir);
    header_of(&c, header, sizeof header);
    ps_ckpt_manifest out[PS_CKPT_MAX_LIST];
    uint32_t n = 0;
    PS_TEST_EXPECT_LOG(ps_resume_plan(&c, 2, out, PS_CKPT_MAX_LIST, &n), PS_EIO,
                       "no checkpoint to resume");
    for (int64_t clock = 10; clock <= 20; clock += 10) {
        ps_ckpt_manifest m = {.clock = clock, .nservers = 1, .nworkers = 2};
        assert_int_equal(ps_ckpt_make_dir(dir, clock), 0);
        assert_int_equal(ps_ckpt_commit(dir, &m, header), 0);
    }
    assert_int_equal(ps_resume_plan(&c, 2, out, PS_CKPT_MAX_LIST, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].clock, 20);
    assert_int_equal(out[1].clock, 10);
    PS_TEST_EXPECT_LOG(ps_resume_plan(&c, 3, out, PS_CKPT_MAX_LIST, &n), PS_ECKPT,
                       "written by 2 workers, this job has 3");
    c.seed = 10;
    PS_TEST_EXPECT_LOG(ps_resume_plan(&c, 2, out, PS_CKPT_MAX_LIST, &n), PS_ECONFIG,
                       "ckpt-20: written with other settings: --seed 9 (this job: 10)");
    assert_int_equal(ps_test_rmtree(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, ps_test_setup, ps_test_teardown)
        T(test_resume_same_flags_pass),
        T(test_resume_changed_flags_are_refused_naming_each),
        T(test_resume_safe_changes_pass),
        T(test_resume_allow_lets_named_changes_through),
        T(test_resume_unknown_setting_is_refused),
        T(test_resume_plan_lists_and_checks_worker_count),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
