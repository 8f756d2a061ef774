/* Tests for common/afile.c beyond the atomic write itself (which
 * test_file.c covers through the framed files): files are created with the
 * user's umask, not a mode of ours, and mkdir -p of a directory or of a
 * file's parent, refusing a path that runs through a file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "common/afile.h"
#include "common/err.h"
#include "tests/unit/ps_test.h"

static char dir[64];

static int group_setup(void **state)
{
    (void)state;
    return ps_test_tmpdir_create(dir, sizeof dir, "afile");
}

static int group_teardown(void **state)
{
    (void)state;
    return ps_test_rmtree(dir);
}

static mode_t write_with_umask(const char *name, mode_t mask)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    mode_t old = umask(mask);
    ps_afile *f = NULL;
    assert_int_equal(ps_afile_open(&f, path), 0);
    assert_int_equal(ps_afile_write(f, "x", 1), 0);
    assert_int_equal(ps_afile_commit(&f), 0);
    umask(old);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 0777;
}

static void test_afile_honours_the_umask(void **state)
{
    (void)state;
    assert_int_equal(write_with_umask("u022", 022), 0644);
    assert_int_equal(write_with_umask("u002", 002), 0664);
    assert_int_equal(write_with_umask("u077", 077), 0600);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void test_afile_mkdirs_makes_every_parent(void **state)
{
    (void)state;
    char path[160];
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    assert_int_equal(ps_afile_mkdirs(path, 0), 0);
    assert_true(is_dir(path));
    assert_int_equal(ps_afile_mkdirs(path, 0), 0); /* exists: fine */

    /* parent_of: only the file's directory. */
    snprintf(path, sizeof path, "%s/m/n/run.jsonl", dir);
    assert_int_equal(ps_afile_mkdirs(path, 1), 0);
    snprintf(path, sizeof path, "%s/m/n", dir);
    assert_true(is_dir(path));
    snprintf(path, sizeof path, "%s/m/n/run.jsonl", dir);
    assert_false(is_dir(path));
    assert_int_equal(ps_afile_mkdirs("plain-name.jsonl", 1), 0); /* the cwd */
}

static void test_afile_mkdirs_refuses_a_file_in_the_way(void **state)
{
    (void)state;
    char file[128], path[160];
    snprintf(file, sizeof file, "%s/blocker", dir);
    ps_test_write_text(file, "not a directory");
    snprintf(path, sizeof path, "%s/sub", file);
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    int rc = ps_afile_mkdirs(path, 0);
    char *log = ps_test_capture_end(&cap);
    assert_int_equal(rc, PS_EIO);
    assert_non_null(strstr(log, "cannot create directory"));
    test_free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_afile_honours_the_umask, ps_test_setup,
                                        ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_afile_mkdirs_makes_every_parent, ps_test_setup,
                                        ps_test_teardown),
        cmocka_unit_test_setup_teardown(test_afile_mkdirs_refuses_a_file_in_the_way, ps_test_setup,
                                        ps_test_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
