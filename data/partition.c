#include "data/partition.h"

#include "common/err.h"
#include "common/log.h"
#include "common/rng.h"

/* Tags the shuffle's stream so it never equals another use of the seed. */
#define SHUFFLE_TAG 0x5348554646ULL

static int check_worker(uint32_t nworkers, uint32_t worker)
{
    if (nworkers == 0 || worker >= nworkers) {
        PS_LOG(ERROR, "partition: worker %u not in [0, %u)", worker, nworkers);
        return PS_EINVAL;
    }
    return 0;
}

/* 128-bit-free block split: worker w starts at w * base + min(w, rem). */
static void block(uint64_t n, uint32_t nworkers, uint32_t worker, uint64_t *first, uint64_t *count)
{
    uint64_t base = n / nworkers;
    uint64_t rem = n % nworkers;
    *first = worker * base + (worker < rem ? worker : rem);
    *count = base + (worker < rem ? 1 : 0);
}

int ps_partition_range(size_t n, uint32_t nworkers, uint32_t worker, size_t *first, size_t *count)
{
    int rc = check_worker(nworkers, worker);
    if (rc == 0) {
        uint64_t f, c;
        block(n, nworkers, worker, &f, &c);
        *first = (size_t)f;
        *count = (size_t)c;
    }
    return rc;
}

int ps_partition_bytes(uint64_t file_size, uint32_t nworkers, uint32_t worker, uint64_t *begin,
                       uint64_t *end)
{
    int rc = check_worker(nworkers, worker);
    if (rc == 0) {
        uint64_t f, c;
        block(file_size, nworkers, worker, &f, &c);
        *begin = f;
        *end = f + c;
    }
    return rc;
}

void ps_partition_shuffle(size_t *order, size_t n, uint64_t seed, uint64_t epoch)
{
    for (size_t i = 0; i < n; i++) {
        order[i] = i;
    }
    ps_rng r;
    ps_rng_seed(&r, ps_rng_hash(seed, SHUFFLE_TAG, epoch, 0));
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)ps_rng_below(&r, i);
        size_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
}
