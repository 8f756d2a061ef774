#include "worker/batcher.h"

#include "common/err.h"
#include "data/libsvm.h"
#include "common/log.h"
#include "common/mem.h"
#include "data/partition.h"
#include "common/rng.h"

#define STREAM_AUTO_BYTES ((uint64_t)1 << 30)
#define CHUNK_BATCHES 64

struct ps_batcher {
    ps_batcher_cfg cfg;
    ps_source_cfg src;
    uint32_t worker;
    uint64_t rows;
    ps_dataset data; /* in memory: the whole part; streamed: the current chunk */
    size_t *order;   /* shuffled row order of data */
    size_t cap_order;
    uint64_t epoch;    /* epoch `order` (and the chunk) belong to; UINT64_MAX: none */
    ps_libsvm *reader; /* streamed only */
    uint64_t chunk;    /* index of the chunk in data, within epoch */
    size_t chunk_rows; /* batch * CHUNK_BATCHES */
};

/* Identity order, shuffled unless --shuffle off; each worker has its own
 * stream and, streamed, each chunk too. */
static int shuffle(ps_batcher *b, size_t n, uint64_t chunk, uint64_t epoch)
{
    int rc = PS_GROW(b->order, b->cap_order, n ? n : 1);
    if (rc) {
        return rc;
    }
    for (size_t k = 0; k < n; k++) {
        b->order[k] = k;
    }
    if (b->cfg.shuffle) {
        ps_partition_shuffle(b->order, n, ps_rng_hash(b->cfg.seed, 0x5eed, b->worker, chunk),
                             epoch);
    }
    return 0;
}

/* Counts the rows of the streamed part: one pass, a chunk at a time. */
static int count_rows(ps_batcher *b)
{
    int rc;
    b->rows = 0;
    while ((rc = ps_libsvm_next(b->reader, b->chunk_rows, &b->data)) == 0) {
        b->rows += b->data.n;
    }
    return rc == PS_EEOF ? ps_libsvm_rewind(b->reader) : rc;
}

int ps_batcher_create(ps_batcher **out, const ps_batcher_cfg *cfg, const ps_source_cfg *src,
                      const ps_source_spec *spec, uint32_t worker, uint32_t nworkers)
{
    ps_batcher *b = ps_calloc(1, sizeof *b);
    if (!b) {
        return PS_ENOMEM;
    }
    b->cfg = *cfg;
    b->src = *src;
    b->worker = worker;
    b->epoch = UINT64_MAX;
    b->chunk_rows = (size_t)cfg->batch * CHUNK_BATCHES;
    int rc = 0;
    if (ps_source_is_libsvm(src) && cfg->stream != PS_STREAM_OFF) {
        uint64_t bytes = 0;
        rc = ps_source_open_train_stream(src, spec, worker, nworkers, &b->reader, &bytes);
        if (rc == 0 && cfg->stream == PS_STREAM_AUTO && bytes <= STREAM_AUTO_BYTES) {
            ps_libsvm_close(&b->reader); /* small enough to hold */
        }
    }
    if (rc == 0) {
        rc =
            b->reader ? count_rows(b) : ps_source_load_train(src, spec, worker, nworkers, &b->data);
    }
    if (rc) {
        ps_batcher_destroy(&b);
        return rc;
    }
    if (!b->reader) {
        b->rows = b->data.n;
    }
    *out = b;
    return 0;
}

void ps_batcher_destroy(ps_batcher **bp)
{
    if (!bp || !*bp) {
        return;
    }
    ps_batcher *b = *bp;
    ps_libsvm_close(&b->reader);
    ps_dataset_fini(&b->data);
    ps_free(b->order);
    ps_free(b);
    *bp = NULL;
}

uint64_t ps_batcher_rows(const ps_batcher *b)
{
    return b->rows;
}

int ps_batcher_streamed(const ps_batcher *b)
{
    return b->reader != NULL;
}

/* Streamed: makes data hold chunk `chunk` of epoch `epoch`, reading
 * forward, or from the start of the file when that chunk is behind us. */
static int seek_chunk(ps_batcher *b, uint64_t epoch, uint64_t chunk)
{
    if (b->epoch == epoch && b->chunk == chunk) {
        return 0;
    }
    int rc = 0;
    uint64_t next = b->chunk + 1; /* the chunk the reader returns next */
    if (b->epoch != epoch || chunk < next) {
        if ((rc = ps_libsvm_rewind(b->reader))) {
            return rc;
        }
        next = 0;
    }
    b->epoch = UINT64_MAX; /* data is in flux until the right chunk is in */
    for (; next <= chunk; next++) {
        if ((rc = ps_libsvm_next(b->reader, b->chunk_rows, &b->data))) {
            if (rc == PS_EEOF) {
                PS_LOG(ERROR,
                       "%s: worker %u's part ended before chunk %llu: the file changed "
                       "since it was counted",
                       b->src.train, b->worker, (unsigned long long)chunk);
                rc = PS_EFORMAT;
            }
            return rc;
        }
    }
    if ((rc = shuffle(b, b->data.n, chunk, epoch))) {
        return rc;
    }
    b->epoch = epoch;
    b->chunk = chunk;
    return 0;
}

int ps_batcher_get(ps_batcher *b, uint64_t clock, uint64_t batches_per_epoch, ps_dataset *out)
{
    uint64_t epoch = clock / batches_per_epoch;
    uint64_t first = (clock % batches_per_epoch) * b->cfg.batch;
    size_t count = first >= b->rows ? 0 : (size_t)(b->rows - first);
    count = count < b->cfg.batch ? count : b->cfg.batch;
    if (count == 0) {
        return ps_dataset_gather(&b->data, b->order, 0, out);
    }
    int rc;
    if (b->reader) {
        /* A chunk is a whole number of batches, so no batch spans two. */
        if ((rc = seek_chunk(b, epoch, first / b->chunk_rows))) {
            return rc;
        }
        first %= b->chunk_rows;
    } else if (epoch != b->epoch) {
        if ((rc = shuffle(b, b->data.n, 0, epoch))) {
            return rc;
        }
        b->epoch = epoch;
    }
    return ps_dataset_gather(&b->data, b->order + first, count, out);
}

int ps_batcher_head(const ps_batcher *b, const ps_source_spec *spec, uint32_t nworkers, uint64_t n,
                    ps_dataset *out)
{
    size_t want = (size_t)(n < b->rows ? n : b->rows);
    if (want == 0) {
        return 0;
    }
    if (ps_source_is_libsvm(&b->src)) {
        ps_libsvm *r = NULL;
        uint64_t bytes;
        int rc = ps_source_open_train_stream(&b->src, spec, b->worker, nworkers, &r, &bytes);
        if (rc == 0) {
            rc = ps_libsvm_next(r, want, out);
        }
        ps_libsvm_close(&r);
        return rc;
    }
    ps_source_cfg head = b->src;
    head.train_limit = want;
    return ps_source_load_train(&head, spec, 0, 1, out);
}
