/* Meminfo: how much memory this node can give the job's ranks, the default
 * budget of the memory plan (cli/budget.h). Reads small files under /proc
 * and /sys; nothing else. Thread-safe. */
#ifndef PS_MEMINFO_H
#define PS_MEMINFO_H

#include <stdint.h>

/* The memory this node can give its ranks: MemAvailable from
 * root/proc/meminfo, lowered to the memory limit of this process's cgroup
 * and its parents (cgroup v2 memory.max, under root/sys/fs/cgroup or
 * root/sys/fs/cgroup/unified; v1 memory.limit_in_bytes under
 * root/sys/fs/cgroup/memory), as root/proc/self/cgroup places it. root ""
 * is the real system; tests pass a directory of fake files. Returns 0 and
 * *out, or PS_EIO when meminfo cannot be read or parsed (cgroup files that
 * are missing are no limit). */
int ps_meminfo_node_available(const char *root, uint64_t *out);

#endif
