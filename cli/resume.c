#include "cli/resume.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"

/* Header keys whose change a resume takes in its stride: how long to go
 * on, where output goes, how much is said, how patient to be, how often
 * and how many checkpoints, and the server layout (the shards are re-sharded
 * on load). "cmd", "resume" and "resume_allow" describe the invocation. */
static const char *const safe_keys[] = {
    "cmd",
    "resume",
    "resume_allow",
    "steps",
    "epochs",
    "metrics",
    "save_model",
    "checkpoint_dir",
    "checkpoint_every",
    "keep_checkpoints",
    "clock_log",
    "quiet",
    "log_format",
    "log_every",
    "progress_every",
    "peer_timeout",
    "reply_chunk",
    "servers",
    "shard",
    "inject_delay_ms",
    "out",
    "proba",
    "model_dir",
};

static int is_safe(const char *key)
{
    for (size_t i = 0; i < sizeof safe_keys / sizeof safe_keys[0]; i++) {
        if (strcmp(safe_keys[i], key) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Whether flag (without "--") is in the comma list of --resume-allow. */
static int is_allowed(const char *list, const char *flag)
{
    size_t n = strlen(flag);
    for (const char *p = list; *p;) {
        p += strncmp(p, "--", 2) == 0 ? 2 : 0;
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, flag, n) == 0) {
            return 1;
        }
        p += len + (p[len] == ',');
    }
    return 0;
}

/* The next "key=value" pair of a run header, unquoted, into key and val.
 * Returns 0, or 1 at the end. */
static int next_pair(const char **pp, char *key, size_t klen, char *val, size_t vlen)
{
    const char *p = *pp;
    while (*p == ' ') {
        p++;
    }
    if (!*p) {
        return 1;
    }
    size_t k = 0, v = 0;
    while (*p && *p != '=' && *p != ' ') {
        if (k + 1 < klen) {
            key[k++] = *p;
        }
        p++;
    }
    key[k] = '\0';
    p += *p == '=';
    int quoted = *p == '"';
    p += quoted;
    while (*p && (quoted ? *p != '"' : *p != ' ')) {
        if (quoted && *p == '\\' && p[1]) {
            p++;
        }
        if (v + 1 < vlen) {
            val[v++] = *p;
        }
        p++;
    }
    val[v] = '\0';
    p += quoted && *p == '"';
    *pp = p;
    return 0;
}

/* Appends to the message in err, snprintf-style, keeping it terminated. */
static void add(char *err, size_t errlen, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add(char *err, size_t errlen, size_t *used, const char *fmt, ...)
{
    if (*used >= errlen) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err + *used, errlen - *used, fmt, ap);
    va_end(ap);
    *used = n < 0 ? errlen : *used + (size_t)n;
}

int ps_resume_check_config(const ps_cfg *cfg, const char *header, char *err, size_t errlen)
{
    static ps_cfg old; /* large; the coordinator checks one header at a time */
    char key[64], val[PS_CFG_PATH + 64], cur[PS_CFG_PATH + 64];
    size_t used = 0;
    int ndiff = 0;
    err[0] = '\0';
    for (const char *p = cfg->resume_allow; *p;) {
        p += strncmp(p, "--", 2) == 0 ? 2 : 0;
        size_t len = strcspn(p, ",");
        int known = 0;
        for (size_t i = 0; i < ps_cfg_count() && !known; i++) {
            const char *flag;
            ps_cfg_pair(cfg, i, &flag, cur, sizeof cur);
            known = flag && strlen(flag) == len && strncmp(flag, p, len) == 0;
        }
        if (!known) {
            add(err, errlen, &used, "--resume-allow: '%.*s' is not a flag", (int)len, p);
            return PS_ECONFIG;
        }
        p += len + (p[len] == ',');
    }
    ps_cfg_defaults(&old);
    for (const char *p = header; next_pair(&p, key, sizeof key, val, sizeof val) == 0;) {
        if (ps_cfg_set(&old, key, val, NULL, 0) != 0 && !is_safe(key)) {
            add(err, errlen, &used, "%s%s=%s (a setting this build does not have)",
                ndiff++ ? ", " : "", key, val);
        }
    }
    for (size_t i = 0; i < ps_cfg_count(); i++) {
        const char *flag;
        const char *k = ps_cfg_pair(cfg, i, &flag, cur, sizeof cur);
        ps_cfg_pair(&old, i, NULL, val, sizeof val);
        if (strcmp(cur, val) == 0 || is_safe(k) || (flag && is_allowed(cfg->resume_allow, flag))) {
            continue;
        }
        add(err, errlen, &used, "%s--%s %s (this job: %s)", ndiff++ ? ", " : "", flag ? flag : k,
            val[0] ? val : "\"\"", cur[0] ? cur : "\"\"");
    }
    if (ndiff) {
        char list[4096];
        snprintf(list, sizeof list, "%s", err);
        used = 0;
        add(err, errlen, &used,
            "written with other settings: %s. Resume with the same flags, or name the changes "
            "you mean in --resume-allow",
            list);
        return PS_ECONFIG;
    }
    return 0;
}

int ps_resume_plan(const ps_cfg *cfg, uint32_t nworkers, ps_ckpt_manifest *out, uint32_t max,
                   uint32_t *n)
{
    const char *dir = cfg->ckpt_dir;
    int rc = ps_ckpt_list(dir, out, max, n);
    if (rc == 0 && *n == 0) {
        PS_LOG(ERROR, "--resume: no checkpoint to resume in %s (no complete ckpt-N in it)", dir);
        rc = PS_EIO;
    }
    for (uint32_t i = 0; rc == 0 && i < *n; i++) {
        char *header = NULL;
        static char why[4096];
        if (out[i].nworkers != nworkers) {
            PS_LOG(ERROR,
                   "%s/ckpt-%lld: the checkpoint was written by %u workers, this job has %u; "
                   "resume with the same number of workers (servers may differ)",
                   dir, (long long)out[i].clock, out[i].nworkers, nworkers);
            rc = PS_ECKPT;
        } else if ((rc = ps_ckpt_read_manifest(dir, out[i].clock, &out[i], &header)) == 0 &&
                   ps_resume_check_config(cfg, header, why, sizeof why)) {
            PS_LOG(ERROR, "--resume: %s/ckpt-%lld: %s", dir, (long long)out[i].clock, why);
            rc = PS_ECONFIG;
        }
        ps_free(header);
    }
    return rc;
}
