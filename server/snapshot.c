#include "server/snapshot.h"

#include <stdio.h>
#include <string.h>

#include "common/ckpt.h"
#include "common/err.h"
#include "common/file.h"
#include "common/log.h"
#include "common/mem.h"

#define READ_BLOCK_BYTES (4u << 20)
/* w, up to 3 state arrays, the average, last steps */
#define PARTS_PER_TABLE 6
/* The payload layout this build writes (FileHeader.shard_format): 2 keeps
 * the temporal average in float64. Files from before the field (0) hold it
 * in float32; without averaging the two layouts are the same. */
#define SHARD_FORMAT 2u

/* One array of a table as stored: row_bytes per row. */
typedef struct {
    void *data;
    size_t row_bytes;
} shard_array;

/* A table's arrays in file order: w, state..., avg (float64, when
 * averaging), then the int64 last-update step per row. Returns how many. */
static int table_arrays(const ps_store_arrays *a, shard_array out[PARTS_PER_TABLE])
{
    size_t fl = (size_t)a->width * sizeof(float);
    int n = 0;
    out[n++] = (shard_array){a->w, fl};
    for (int k = 0; k < a->nstate; k++) {
        out[n++] = (shard_array){a->state[k], fl};
    }
    if (a->avg) {
        out[n++] = (shard_array){a->avg, (size_t)a->width * sizeof(double)};
    }
    out[n++] = (shard_array){a->last_step, sizeof(int64_t)};
    return n;
}

/* Bytes per row of a table over all its arrays. */
static uint64_t row_bytes(const ps_store_arrays *a)
{
    shard_array arr[PARTS_PER_TABLE];
    uint64_t b = 0;
    for (int k = 0, n = table_arrays(a, arr); k < n; k++) {
        b += arr[k].row_bytes;
    }
    return b;
}

int ps_snapshot_save(ps_store *s, const char *dir, int64_t clock, const char *opt_name,
                     uint32_t nworkers, const char *config)
{
    uint32_t nt = ps_store_ntables(s);
    char path[4096];
    int rc = ps_ckpt_make_dir(dir, clock);
    if (rc || (rc = ps_ckpt_shard_path(path, sizeof path, dir, clock, ps_store_server(s)))) {
        return rc;
    }
    ps_file_table *tables = ps_calloc(nt, sizeof *tables);
    const void **parts = ps_calloc((size_t)nt * PARTS_PER_TABLE, sizeof *parts);
    size_t *lens = ps_calloc((size_t)nt * PARTS_PER_TABLE, sizeof *lens);
    if (!tables || !parts || !lens) {
        rc = PS_ENOMEM;
        goto done;
    }
    size_t np = 0;
    for (uint32_t t = 0; t < nt; t++) {
        ps_store_arrays a;
        ps_store_arrays_get(s, t, &a);
        const ps_table_desc *d = ps_store_table(s, t);
        tables[t] = (ps_file_table){
            .rows = d->rows, .width = d->width, .nslots = a.nslots, .nstate = (uint32_t)a.nstate};
        snprintf(tables[t].name, sizeof tables[t].name, "%s", d->name);
        shard_array arr[PARTS_PER_TABLE];
        for (int k = 0, n = table_arrays(&a, arr); k < n; k++) {
            parts[np] = arr[k].data;
            lens[np++] = (size_t)a.nslots * arr[k].row_bytes;
        }
    }
    const ps_shard *sh = ps_store_shard(s, 0);
    ps_file_header h = {.clock = clock,
                        .rank = ps_store_server(s),
                        .nservers = sh->nservers,
                        .nworkers = nworkers,
                        .config = (char *)config,
                        .ntables = nt,
                        .tables = tables,
                        .shard_mode = (uint32_t)sh->mode,
                        .step = ps_store_step(s),
                        .shard_format = SHARD_FORMAT};
    snprintf(h.kind, sizeof h.kind, "shard");
    snprintf(h.optimizer, sizeof h.optimizer, "%s", opt_name);
    rc = ps_file_write_atomic(path, &h, parts, lens, np);
done:
    ps_free(tables);
    ps_free(parts);
    ps_free(lens);
    return rc;
}

/* Checks that file header h describes the same tables and optimizer as s. */
static int check_header(const ps_store *s, const char *path, const ps_file_header *h, int64_t clock,
                        uint32_t old_nservers, uint32_t j, const char *opt_name)
{
    uint32_t nt = ps_store_ntables(s);
    if (strcmp(h->kind, "shard") || h->clock != clock || h->rank != j ||
        h->nservers != old_nservers) {
        PS_LOG(ERROR, "%s: is %s %u of %u at clock %lld; expected shard %u of %u at clock %lld",
               path, h->kind, h->rank, h->nservers, (long long)h->clock, j, old_nservers,
               (long long)clock);
        return PS_ECKPT;
    }
    if (strcmp(h->optimizer, opt_name) != 0) {
        PS_LOG(ERROR, "%s: holds %s state but this job uses --optimizer %s", path, h->optimizer,
               opt_name);
        return PS_ECKPT;
    }
    if (h->ntables != nt) {
        PS_LOG(ERROR, "%s: has %zu tables, this model has %u", path, h->ntables, nt);
        return PS_ECKPT;
    }
    int averaging = 0;
    for (uint32_t t = 0; t < nt; t++) {
        ps_store_arrays a;
        ps_store_arrays_get((ps_store *)s, t, &a);
        averaging |= a.avg != NULL;
    }
    if (averaging && h->shard_format != SHARD_FORMAT) {
        PS_LOG(ERROR,
               "%s: shard format %u keeps the temporal average in float32; this adamps keeps it "
               "in float64 (format %u) and cannot resume it: resume with the adamps that wrote "
               "it, or start afresh",
               path, h->shard_format, SHARD_FORMAT);
        return PS_ECKPT;
    }
    uint64_t want = 0;
    for (uint32_t t = 0; t < nt; t++) {
        const ps_table_desc *d = ps_store_table(s, t);
        const ps_file_table *f = &h->tables[t];
        ps_shard old;
        if (strcmp(f->name, d->name) || f->rows != d->rows || f->width != d->width ||
            ps_shard_init(&old, f->rows, old_nservers, (ps_shard_mode)h->shard_mode) ||
            f->nslots != ps_shard_count(&old, j)) {
            PS_LOG(ERROR,
                   "%s: table %u is %s %llu x %u (%llu rows here); this model's is %s "
                   "%llu x %u",
                   path, t, f->name, (unsigned long long)f->rows, f->width,
                   (unsigned long long)f->nslots, d->name, (unsigned long long)d->rows, d->width);
            return PS_ECKPT;
        }
        ps_store_arrays a;
        ps_store_arrays_get((ps_store *)s, t, &a);
        want += f->nslots * row_bytes(&a);
    }
    if (h->payload_bytes != want) {
        PS_LOG(ERROR,
               "%s: holds %llu bytes of state, this job needs %llu (is "
               "--temporal-averaging the same as when it was written?)",
               path, (unsigned long long)h->payload_bytes, (unsigned long long)want);
        return PS_ECKPT;
    }
    return 0;
}

/* Streams one array of nslots rows of row_bytes from r; rows this server
 * owns under the current layout go to dst (NULL: skip). */
static int load_rows(ps_file_reader *r, const ps_shard *old, uint32_t j, const ps_shard *cur,
                     uint32_t me, uint64_t nslots, size_t row_bytes, uint8_t *dst, uint8_t *buf,
                     uint64_t *filled)
{
    uint64_t per = READ_BLOCK_BYTES / row_bytes ? READ_BLOCK_BYTES / row_bytes : 1;
    for (uint64_t first = 0; first < nslots; first += per) {
        uint64_t n = nslots - first < per ? nslots - first : per;
        int rc = ps_file_read_payload(r, buf, (size_t)n * row_bytes);
        if (rc) {
            return rc;
        }
        for (uint64_t i = 0; i < n; i++) {
            uint32_t server;
            uint64_t slot;
            ps_shard_locate(cur, ps_shard_key(old, j, first + i), &server, &slot);
            if (server == me) {
                memcpy(dst + slot * row_bytes, buf + i * row_bytes, row_bytes);
                (*filled)++;
            }
        }
    }
    return 0;
}

/* Loads the rows of file j that this server owns. *other_mode (NULL: do
 * not ask) is set, and nothing loaded, when the file was written under
 * another shard mode: then every file may hold rows of this server. */
static int load_file(ps_store *s, const char *path, int64_t clock, uint32_t old_nservers,
                     uint32_t j, const char *opt_name, uint8_t *buf, uint64_t *filled,
                     int *other_mode)
{
    ps_file_reader *r = NULL;
    ps_file_header h;
    int rc = ps_file_open(&r, path, &h);
    if (rc) {
        return rc;
    }
    if ((rc = check_header(s, path, &h, clock, old_nservers, j, opt_name))) {
        goto done;
    }
    if (other_mode && h.shard_mode != (uint32_t)ps_store_shard(s, 0)->mode) {
        *other_mode = 1;
        goto done;
    }
    uint32_t me = ps_store_server(s);
    for (uint32_t t = 0; t < ps_store_ntables(s) && rc == 0; t++) {
        ps_store_arrays a;
        ps_store_arrays_get(s, t, &a);
        ps_shard old;
        ps_shard_init(&old, h.tables[t].rows, old_nservers, (ps_shard_mode)h.shard_mode);
        const ps_shard *cur = ps_store_shard(s, t);
        shard_array arr[PARTS_PER_TABLE];
        for (int k = 0, n = table_arrays(&a, arr); k < n && rc == 0; k++) {
            rc = load_rows(r, &old, j, cur, me, h.tables[t].nslots, arr[k].row_bytes, arr[k].data,
                           buf, filled);
        }
    }
    if (rc == 0) {
        ps_store_set_step(s, h.step);
    }
done:
    ps_file_header_fini(&h);
    ps_file_close(&r);
    return rc;
}

int ps_snapshot_load(ps_store *s, const char *dir, int64_t clock, uint32_t old_nservers,
                     const char *opt_name)
{
    const ps_shard *cur = ps_store_shard(s, 0);
    uint32_t me = ps_store_server(s);
    /* Same layout: only our own file holds our rows. Otherwise (another
     * server count, or --shard changed, which our own file's header tells)
     * every file may. */
    int same = old_nservers == cur->nservers, other_mode = 0;
    uint64_t filled = 0, want = 0;
    size_t buf_bytes = READ_BLOCK_BYTES; /* at least one row of any array */
    for (uint32_t t = 0; t < ps_store_ntables(s); t++) {
        ps_store_arrays a;
        ps_store_arrays_get(s, t, &a);
        shard_array arr[PARTS_PER_TABLE];
        int n = table_arrays(&a, arr);
        want += a.nslots * (uint64_t)n;
        for (int k = 0; k < n; k++) {
            buf_bytes = arr[k].row_bytes > buf_bytes ? arr[k].row_bytes : buf_bytes;
        }
    }
    uint8_t *buf = ps_malloc(buf_bytes);
    if (!buf) {
        return PS_ENOMEM;
    }
    int rc = 0;
    char path[4096];
    if (same && (rc = ps_ckpt_shard_path(path, sizeof path, dir, clock, me)) == 0) {
        rc = load_file(s, path, clock, old_nservers, me, opt_name, buf, &filled, &other_mode);
    }
    for (uint32_t j = 0; (!same || other_mode) && j < old_nservers && rc == 0; j++) {
        rc = ps_ckpt_shard_path(path, sizeof path, dir, clock, j);
        if (rc == 0) {
            rc = load_file(s, path, clock, old_nservers, j, opt_name, buf, &filled, NULL);
        }
    }
    ps_free(buf);
    if (rc == 0 && filled != want) {
        PS_LOG(ERROR, "checkpoint %s/ckpt-%lld restored %llu of this shard's %llu rows", dir,
               (long long)clock, (unsigned long long)filled, (unsigned long long)want);
        rc = PS_ECKPT;
    }
    return rc;
}
