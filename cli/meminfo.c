#include "cli/meminfo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

static uint64_t add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Reads path into buf (len bytes, NUL-terminated); -1 if it cannot. */
static long read_small(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    size_t n = fread(buf, 1, len - 1, f);
    int bad = ferror(f);
    fclose(f);
    buf[n] = '\0';
    return bad ? -1 : (long)n;
}

/* The value of "key:   N kB" in meminfo text, in bytes; 0 if absent. */
static uint64_t meminfo_field(const char *text, const char *key)
{
    size_t k = strlen(key);
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        if (strncmp(l, key, k) == 0 && l[k] == ':') {
            unsigned long long kb = 0;
            if (sscanf(l + k + 1, "%llu", &kb) == 1 && kb < (UINT64_MAX >> 10)) {
                return (uint64_t)kb << 10;
            }
        }
    }
    return 0;
}

/* The smallest limit in `file` of cgroup dir ("/a/b") and its parents
 * under root/base; "max", a missing file or junk is no limit. */
static uint64_t cgroup_limit(const char *root, const char *base, const char *dir, const char *file)
{
    char p[1024], path[1400], text[64];
    uint64_t lim = UINT64_MAX;
    snprintf(p, sizeof p, "%s", strcmp(dir, "/") == 0 ? "" : dir);
    for (;;) {
        snprintf(path, sizeof path, "%s%s%s/%s", root, base, p, file);
        char *end = NULL;
        unsigned long long v = 0;
        if (read_small(path, text, sizeof text) > 0 && text[0] >= '0' && text[0] <= '9') {
            v = strtoull(text, &end, 10);
            /* 0 cannot be a limit this process runs under. */
            if ((*end == '\n' || *end == '\0') && v > 0) {
                lim = v < lim ? v : lim;
            }
        }
        char *slash = strrchr(p, '/');
        if (!slash) {
            break;
        }
        *slash = '\0'; /* "/a/b" -> "/a" -> "" (the root) */
    }
    return lim;
}

int ps_meminfo_node_available(const char *root, uint64_t *out)
{
    char path[1100], text[16384];
    snprintf(path, sizeof path, "%s/proc/meminfo", root);
    if (read_small(path, text, sizeof text) <= 0) {
        return PS_EIO;
    }
    uint64_t avail = meminfo_field(text, "MemAvailable");
    if (!avail) {
        /* Kernels before 3.14: free and reclaimable cache. */
        avail = add(add(meminfo_field(text, "MemFree"), meminfo_field(text, "Buffers")),
                    meminfo_field(text, "Cached"));
    }
    if (!avail) {
        return PS_EIO;
    }
    snprintf(path, sizeof path, "%s/proc/self/cgroup", root);
    if (read_small(path, text, sizeof text) > 0) {
        for (char *l = text, *next; l && *l; l = next) {
            next = strchr(l, '\n');
            if (next) {
                *next++ = '\0';
            }
            /* "id:controllers:path"; v2 has no controllers. */
            char *c1 = strchr(l, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
            if (!c2 || c2[1] != '/') {
                continue;
            }
            *c2 = '\0';
            const char *ctrl = c1 + 1, *dir = c2 + 1;
            uint64_t lim = UINT64_MAX;
            if (ctrl[0] == '\0') {
                lim = cgroup_limit(root, "/sys/fs/cgroup", dir, "memory.max");
                uint64_t u = cgroup_limit(root, "/sys/fs/cgroup/unified", dir, "memory.max");
                lim = u < lim ? u : lim;
            } else {
                for (const char *s = ctrl; s; s = strchr(s, ','), s = s ? s + 1 : NULL) {
                    if (strncmp(s, "memory", 6) == 0 && (s[6] == ',' || s[6] == '\0')) {
                        lim = cgroup_limit(root, "/sys/fs/cgroup/memory", dir,
                                           "memory.limit_in_bytes");
                    }
                }
            }
            avail = lim < avail ? lim : avail;
        }
    }
    *out = avail;
    return 0;
}
