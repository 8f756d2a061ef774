/* Tests for data/source.c: the format a file name suggests. (Loading is
 * covered through the readers' tests and test_batcher.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "data/source.h"

static void test_source_guess_format_from_names(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        ps_format want;
    } cases[] = {
        {"/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", PS_FMT_IDX},
        {"t10k-labels-idx1-ubyte", PS_FMT_IDX},
        {"data/x.idx", PS_FMT_IDX},
        {"x.idx3.gz", PS_FMT_IDX},
        {"x.ubyte", PS_FMT_IDX},
        {"a.svm", PS_FMT_LIBSVM},
        {"a.libsvm", PS_FMT_LIBSVM},
        {"a.txt", PS_FMT_LIBSVM},
        {"a.svm.gz", PS_FMT_LIBSVM},
        {"data", PS_FMT_LIBSVM},
        {"dir.idx/a.svm", PS_FMT_LIBSVM}, /* only the file name counts */
        {"ubyte-data.txt", PS_FMT_LIBSVM},
        {"", PS_FMT_LIBSVM},
        {NULL, PS_FMT_LIBSVM},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (ps_source_guess_format(cases[i].path) != cases[i].want) {
            fail_msg("guess '%s' wrong", cases[i].path ? cases[i].path : "(null)");
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_source_guess_format_from_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
