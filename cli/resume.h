/* Resume: which checkpoints `adamps train --resume` may continue from. A
 * checkpoint is taken only if the job that wrote it ran with this job's
 * settings, as its run header records them, except for the flags that are
 * safe to change (longer --steps or --epochs, output paths, --quiet,
 * --log-format, --progress-every, --peer-timeout, --checkpoint-every,
 * --keep-checkpoints, --servers and --shard, since resuming re-shards) and
 * those the user names in --resume-allow. Pure apart from reading the
 * checkpoints' manifests; used by the coordinator in cli/train.c. */
#ifndef PS_RESUME_H
#define PS_RESUME_H

#include <stddef.h>
#include <stdint.h>

#include "cli/cfg.h"
#include "common/ckpt.h"

/* Compares cfg with the settings in header (a run header, as
 * ps_cfg_format writes it). Returns 0 when every difference is safe or
 * allowed; else PS_ECONFIG with err (errlen bytes) listing each differing
 * flag with the checkpoint's value and this job's, or naming an unknown
 * flag in --resume-allow. Pure. */
int ps_resume_check_config(const ps_cfg *cfg, const char *header, char *err, size_t errlen);

/* The coordinator's half of --resume: lists the complete checkpoints in
 * cfg->ckpt_dir (newest first, at most max) into out and checks that each
 * was written by nworkers workers and with this job's settings. Returns 0
 * with *n >= 1; PS_EIO when there is none ("no checkpoint to resume");
 * PS_ECKPT (another worker count) or PS_ECONFIG (other settings), logged
 * naming the checkpoint and each difference. */
int ps_resume_plan(const ps_cfg *cfg, uint32_t nworkers, ps_ckpt_manifest *out, uint32_t max,
                   uint32_t *n);

#endif
