/* Snapshot: a server's shard on disk. Saving writes every table's w,
 * optimizer state, temporal average and per-row last step, with a header
 * naming the layout (servers, shard mode, tables) and the optimizer.
 * Loading reads the shard files of any number of servers and keeps the rows
 * this server owns under the current layout, so a job can resume with a
 * different number of servers (re-sharding). A file that does not match
 * the job (tables, optimizer, averaging) or fails its CRC is refused with a
 * message naming it. */
#ifndef PS_SNAPSHOT_H
#define PS_SNAPSHOT_H

#include <stdint.h>

#include "server/store.h"

/* Writes DIR/ckpt-<clock>/shard-<server>.bin. opt_name names the rule. */
int ps_snapshot_save(ps_store *s, const char *dir, int64_t clock, const char *opt_name,
                     uint32_t nworkers, const char *config);
/* Fills s from DIR/ckpt-<clock>/shard-0..old_nservers-1.bin and sets its
 * step. Returns 0, PS_ECKPT (mismatch or corruption), PS_EIO, PS_ENOMEM. */
int ps_snapshot_load(ps_store *s, const char *dir, int64_t clock, uint32_t old_nservers,
                     const char *opt_name);

#endif
