/* Sharding: which server holds a table row, and where in its shard.
 * Keys are global row ids in [0, rows). `range` gives each server one
 * contiguous block; `hash` first permutes the key space with a keyed
 * bijection (so hot, clustered ids spread over servers) and then deals rows
 * out round-robin. Both map a key to a dense local slot in O(1) with no
 * table, and back again, so a shard is a plain array and checkpoints can be
 * re-sharded. Pure functions, thread-safe. */
#ifndef PS_SHARD_H
#define PS_SHARD_H

#include <stdint.h>

typedef enum { PS_SHARD_RANGE = 0, PS_SHARD_HASH = 1 } ps_shard_mode;

typedef struct {
    uint64_t rows;     /* global key space [0, rows) */
    uint32_t nservers; /* >= 1 */
    ps_shard_mode mode;
    uint32_t bits; /* hash mode: permutation domain is 2^bits >= rows (even) */
} ps_shard;

/* Fills s; returns 0, or PS_EINVAL for rows == 0 or nservers == 0. */
int ps_shard_init(ps_shard *s, uint64_t rows, uint32_t nservers, ps_shard_mode mode);
/* Server that owns key (key < rows). */
uint32_t ps_shard_server(const ps_shard *s, uint64_t key);
/* Local slot of key on its server. */
uint64_t ps_shard_slot(const ps_shard *s, uint64_t key);
/* Both at once (cheaper in hash mode). */
void ps_shard_locate(const ps_shard *s, uint64_t key, uint32_t *server, uint64_t *slot);
/* Number of rows server holds. */
uint64_t ps_shard_count(const ps_shard *s, uint32_t server);
/* Global key of (server, slot); slot < ps_shard_count(server). */
uint64_t ps_shard_key(const ps_shard *s, uint32_t server, uint64_t slot);
/* Parses "range" or "hash"; returns 0 or PS_EINVAL. */
int ps_shard_parse_mode(const char *text, ps_shard_mode *out);
/* The name ps_shard_parse_mode reads, or "?" for a mode out of range. */
const char *ps_shard_mode_name(ps_shard_mode mode);

#endif
