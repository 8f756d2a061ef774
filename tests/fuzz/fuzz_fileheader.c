/* libFuzzer target for the framed files (common/file.c, the FileHeader
 * codec common/fileheader.c) and their readers: each input is decoded as a
 * bare header (which must survive encode -> decode unchanged), read as a
 * whole file and in pieces, and used as a checkpoint's MANIFEST, a worker's
 * state and a server's shard (loaded into a 16 x 2 Adam store, the shape
 * of the seed corpus's checkpoint). Every reader must return 0 or a logged
 * error code; the header's sizes must never buy memory the file does not
 * hold (run with -malloc_limit_mb). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "common/ckpt.h"
#include "common/err.h"
#include "common/file.h"
#include "common/fileheader.h"
#include "common/mem.h"
#include "server/optim.h"
#include "server/snapshot.h"
#include "server/store.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CLOCK 2

static void same_header(const ps_file_header *a, const ps_file_header *b)
{
    CHECK(a->format_version == b->format_version && strcmp(a->kind, b->kind) == 0);
    CHECK(a->payload_bytes == b->payload_bytes && a->crc32 == b->crc32);
    CHECK(a->clock == b->clock && a->rank == b->rank && a->nservers == b->nservers);
    CHECK(a->nworkers == b->nworkers && a->ntables == b->ntables && a->step == b->step);
    CHECK(strcmp(a->config ? a->config : "", b->config ? b->config : "") == 0);
    for (size_t t = 0; t < a->ntables; t++) {
        CHECK(strcmp(a->tables[t].name, b->tables[t].name) == 0);
        CHECK(a->tables[t].rows == b->tables[t].rows && a->tables[t].width == b->tables[t].width);
        CHECK(a->tables[t].nslots == b->tables[t].nslots);
    }
    CHECK(a->has_model == b->has_model);
    CHECK(!a->has_model ||
          (a->model.in_dim == b->model.in_dim && a->model.nhidden == b->model.nhidden &&
           strcmp(a->model.kind, b->model.kind) == 0));
}

static void fuzz_decode(const uint8_t *data, size_t size)
{
    ps_file_header h, back;
    memset(&h, 0, sizeof h);
    memset(&back, 0, sizeof back);
    int rc = ps_fileheader_decode("fuzz", data, size, &h);
    CHECK(rc == 0 || rc == PS_ECKPT || rc == PS_ENOMEM);
    if (rc == 0) {
        ps_bytes b = {0};
        rc = ps_fileheader_encode(&h, &b);
        CHECK(rc == 0 || rc == PS_ENOMEM);
        if (rc == 0) {
            CHECK(ps_fileheader_decode("again", b.data, b.len, &back) == 0);
            same_header(&h, &back);
        }
        ps_free(b.data);
    }
    ps_file_header_fini(&h);
    ps_file_header_fini(&back);
}

static void fuzz_file(const char *path)
{
    ps_file_header h;
    void *payload = NULL;
    size_t len = 0;
    int rc = ps_file_read(path, &h, &payload, &len);
    CHECK(rc == 0 || rc == PS_ECKPT || rc == PS_EIO || rc == PS_ENOMEM);
    CHECK(rc == 0 || payload == NULL);
    if (rc == 0) {
        CHECK(len == h.payload_bytes);
        ps_free(payload);
        ps_file_header_fini(&h);
    }
    ps_file_reader *r = NULL;
    rc = ps_file_open(&r, path, &h);
    CHECK(rc == 0 || rc == PS_ECKPT || rc == PS_EIO || rc == PS_ENOMEM);
    if (rc == 0) {
        uint8_t buf[7];
        uint64_t left = h.payload_bytes;
        while (left && rc == 0) {
            size_t n = left < sizeof buf ? (size_t)left : sizeof buf;
            rc = ps_file_read_payload(r, buf, n);
            left -= n;
        }
        CHECK(rc == 0 || rc == PS_ECKPT || rc == PS_EIO);
        ps_file_close(&r);
        ps_file_header_fini(&h);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ps_store *store;
    const char *dir = fuzz_tmpdir();
    char path[512];
    if (!store) {
        static const ps_table_desc t[2] = {{.name = "w", .rows = 16, .width = 2},
                                           {.name = "b", .rows = 1, .width = 2}};
        ps_store_cfg c = {.tables = t, .ntables = 2, .nservers = 1, .lazy = 1, .seed = 1};
        ps_opt_defaults(&c.hp, PS_OPT_ADAM);
        if (ps_store_create(&store, &c) != 0 || ps_ckpt_make_dir(dir, CLOCK) != 0) {
            abort();
        }
    }
    fuzz_decode(data, size);

    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    fuzz_write_path(path, data, size);
    fuzz_file(path);
    ps_ckpt_manifest m;
    char *config = NULL;
    int rc = ps_ckpt_read_manifest(dir, -1, &m, &config);
    CHECK(rc == 0 || rc == PS_ECKPT || rc == PS_EIO || rc == PS_ENOMEM);
    CHECK(rc || (m.clock >= 0 && m.nservers >= 1 && m.nworkers >= 1 && config));
    ps_free(config);

    if (ps_ckpt_worker_path(path, sizeof path, dir, CLOCK, 0) != 0) {
        abort();
    }
    fuzz_write_path(path, data, size);
    ps_ckpt_worker_state st;
    rc = ps_ckpt_read_worker(dir, CLOCK, 0, 1, &st);
    CHECK(rc == 0 || rc == PS_ECKPT || rc == PS_EIO || rc == PS_ENOMEM);

    if (ps_ckpt_shard_path(path, sizeof path, dir, CLOCK, 0) != 0) {
        abort();
    }
    fuzz_write_path(path, data, size);
    rc = ps_snapshot_load(store, dir, CLOCK, 1, "adam");
    CHECK(rc == 0 || rc == PS_ECKPT || rc == PS_EIO || rc == PS_ENOMEM);
    return 0;
}
