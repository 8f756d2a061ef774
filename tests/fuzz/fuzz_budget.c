/* libFuzzer target for the memory plan's parsers: --max-memory byte counts
 * (cli/budget.c: an accepted count prints back to text that parses to the
 * same count) and the node's memory files (cli/meminfo.c): the input, split
 * at 0x01 bytes, becomes a fake proc/meminfo, proc/self/cgroup and the root
 * cgroup's v2 memory.max and v1 memory.limit_in_bytes. The reader must
 * return 0 with a positive size no larger than what meminfo allows, or
 * PS_EIO. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/budget.h"
#include "cli/meminfo.h"
#include "common/err.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const files[] = {"proc/meminfo", "proc/self/cgroup", "sys/fs/cgroup/memory.max",
                                    "sys/fs/cgroup/memory/memory.limit_in_bytes"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char root[300];
    char text[256], path[600];
    if (!root[0]) {
        snprintf(root, sizeof root, "%s/root", fuzz_tmpdir());
        const char *dirs[] = {"",        "/proc",          "/proc/self",           "/sys",
                              "/sys/fs", "/sys/fs/cgroup", "/sys/fs/cgroup/memory"};
        for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
            snprintf(path, sizeof path, "%s%s", root, dirs[i]);
            mkdir(path, 0700);
        }
    }
    size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    uint64_t v = 0, w = 0;
    if (ps_budget_parse_bytes(text, &v) == 0) {
        char back[32];
        CHECK(v > 0);
        ps_budget_format_bytes(v, back, sizeof back);
        CHECK(ps_budget_parse_bytes(back, &w) == 0 && w == v);
        ps_budget_human(v, back, sizeof back);
    }

    const uint8_t *p = data, *end = data + size;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        const uint8_t *q = memchr(p, 0x01, (size_t)(end - p));
        q = q ? q : end;
        snprintf(path, sizeof path, "%s/%s", root, files[f]);
        fuzz_write_path(path, p, (size_t)(q - p));
        p = q < end ? q + 1 : end;
    }
    int rc = ps_meminfo_node_available(root, &v);
    CHECK(rc == 0 || rc == PS_EIO);
    CHECK(rc || v > 0);
    return 0;
}
