/* The node's memory for the plan (cli/meminfo.c): MemAvailable, lowered by
 * the cgroup v1 or v2 memory limits of this process's cgroup and its
 * parents, all read from fake /proc and /sys trees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "cli/meminfo.h"
#include "common/err.h"
#include "tests/unit/ps_test.h"

#define GiB ((uint64_t)1 << 30)

static char tmpdir[64];

static int group_setup(void **state)
{
    if (ps_test_tmpdir_create(tmpdir, sizeof tmpdir, "meminfo") != 0) {
        return -1;
    }
    return ps_test_setup(state);
}

static int group_teardown(void **state)
{
    ps_test_rmtree(tmpdir);
    return ps_test_teardown(state);
}

/* Writes text to tmpdir/root/rel, creating the directories. */
static void fake(const char *root, const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", tmpdir, root, rel);
    for (char *p = path + strlen(tmpdir) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        mkdir(path, 0700);
        *p = '/';
    }
    ps_test_write_text(path, text);
}

static uint64_t node_memory(const char *root)
{
    char path[256];
    uint64_t v = 0;
    snprintf(path, sizeof path, "%s/%s", tmpdir, root);
    int rc = ps_meminfo_node_available(path, &v);
    return rc ? 0 : v;
}

static const char meminfo[] = "MemTotal:       24576000 kB\n"
                              "MemFree:         1000000 kB\n"
                              "MemAvailable:   20000000 kB\n"
                              "Buffers:          100000 kB\n"
                              "Cached:          2000000 kB\n";

static void test_meminfo_reads_node_memory_from_proc_and_cgroups(void **state)
{
    (void)state;
    uint64_t avail = (uint64_t)20000000 << 10;
    /* No cgroup file at all: MemAvailable. */
    fake("plain", "proc/meminfo", meminfo);
    assert_int_equal(node_memory("plain"), avail);
    /* v2: the limit of a parent applies; "max" is none. */
    fake("v2", "proc/meminfo", meminfo);
    fake("v2", "proc/self/cgroup", "0::/a/b\n");
    fake("v2", "sys/fs/cgroup/a/b/memory.max", "max\n");
    fake("v2", "sys/fs/cgroup/a/memory.max", "1073741824\n");
    assert_int_equal(node_memory("v2"), GiB);
    /* v1 (memory among other controllers), unlimited leaf, limited root. */
    fake("v1", "proc/meminfo", meminfo);
    fake("v1", "proc/self/cgroup", "5:devices:/\n4:cpu,memory:/job/42\n0::/\n");
    fake("v1", "sys/fs/cgroup/memory/job/42/memory.limit_in_bytes", "9223372036854771712\n");
    fake("v1", "sys/fs/cgroup/memory/memory.limit_in_bytes", "2147483648\n");
    assert_int_equal(node_memory("v1"), 2 * GiB);
    /* Hybrid: v2 under unified; a limit above MemAvailable changes nothing;
     * junk is no limit. */
    fake("hy", "proc/meminfo", meminfo);
    fake("hy", "proc/self/cgroup", "0::/u\n");
    fake("hy", "sys/fs/cgroup/unified/u/memory.max", "109951162777600\n");
    fake("hy", "sys/fs/cgroup/unified/memory.max", "12abc\n");
    assert_int_equal(node_memory("hy"), avail);
    /* Old kernels: free + buffers + cached. */
    fake("old", "proc/meminfo", "MemTotal: 100 kB\nMemFree: 10 kB\nBuffers: 1 kB\nCached: 4 kB\n");
    assert_int_equal(node_memory("old"), 15 << 10);
    /* No meminfo, or nothing usable in it: unknown. */
    char path[256];
    uint64_t v;
    snprintf(path, sizeof path, "%s/none", tmpdir);
    assert_int_equal(ps_meminfo_node_available(path, &v), PS_EIO);
    fake("junk", "proc/meminfo", "nothing here\n");
    assert_int_equal(node_memory("junk"), 0);
    /* The real system answers something. */
    assert_int_equal(ps_meminfo_node_available("", &v), 0);
    assert_true(v > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meminfo_reads_node_memory_from_proc_and_cgroups),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
