/* Push encode + decode throughput of common/codec.c, side by side with
 * memcpy of the same raw keys and values in the same run. Sorted slot sets
 * of 1%, 10% and 100% density over a 1M-row range, widths 1 and 10; each
 * figure is the median of 7 repetitions. Payload per key is the raw size:
 * an 8-byte key plus 4 * width bytes of values.
 *
 * Prints a table; if BENCH_JSON names a file, appends one JSON object per
 * row to it. No MPI. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_util.h"
#include "common/codec.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/rng.h"

enum { RANGE = 1000000, REPS = 7 };

typedef struct {
    uint32_t width;
    unsigned density_pct;
    size_t nkeys;
    double encode_ns_per_key;
    double decode_ns_per_key;
    double ns_per_key;
    double bytes_per_key;
    double gb_per_s;
    double memcpy_gb_per_s;
} row;

/* Keeps the compiler from dropping the copies. */
static volatile uint8_t sink;

static int measure(ps_codec *c, ps_rng *rng, uint32_t width, unsigned density_pct, row *out)
{
    int rc = 0;
    uint64_t *slots = ps_malloc(RANGE * sizeof *slots);
    uint64_t *slots_copy = ps_malloc(RANGE * sizeof *slots_copy);
    float *vals = ps_malloc((size_t)RANGE * width * sizeof *vals);
    float *vals_copy = ps_malloc((size_t)RANGE * width * sizeof *vals_copy);
    ps_bytes b = {0};
    if (!slots || !slots_copy || !vals || !vals_copy) {
        rc = PS_ENOMEM;
        goto cleanup;
    }
    size_t n = 0;
    for (uint64_t k = 0; k < RANGE; k++) {
        if (ps_rng_below(rng, 100) < density_pct) {
            slots[n++] = k;
        }
    }
    for (size_t i = 0; i < n * width; i++) {
        vals[i] = ps_rng_unit_float(ps_rng_next(rng)) - 0.5f;
    }
    const ps_msg_table table = {.width = width, .slots = RANGE};
    const ps_msg_limits lim = {.tables = &table, .ntables = 1, .nworkers = 1};
    ps_seg seg = {.table = 0, .nkeys = n, .slots = slots, .values = vals, .nvalues = n * width};
    ps_push push = {.clock = 1, .worker = 0, .nsegs = 1, .segs = &seg}, got;

    /* Enough inner iterations that one repetition covers ~2M keys. */
    size_t inner = n ? (2000000 + n - 1) / n : 1;
    double enc[REPS], dec[REPS], cpy[REPS];
    /* Warm-up grows every buffer, and checks the round trip once. */
    if ((rc = ps_codec_encode_push(c, &push, &b)) != 0 ||
        (rc = ps_codec_decode_push(c, &lim, 0, b.data, b.len, &got)) != 0) {
        goto cleanup;
    }
    if (got.nsegs != 1 || got.segs[0].nkeys != n ||
        memcmp(got.segs[0].slots, slots, n * sizeof *slots) != 0 ||
        memcmp(got.segs[0].values, vals, n * width * sizeof *vals) != 0) {
        PS_LOG(ERROR, "bench: round trip of %zu keys differs", n);
        rc = PS_EINVAL;
        goto cleanup;
    }
    for (int r = 0; r < REPS; r++) {
        double t0 = bench_now_s();
        for (size_t i = 0; i < inner && rc == 0; i++) {
            rc = ps_codec_encode_push(c, &push, &b);
        }
        double t1 = bench_now_s();
        for (size_t i = 0; i < inner && rc == 0; i++) {
            rc = ps_codec_decode_push(c, &lim, 0, b.data, b.len, &got);
        }
        double t2 = bench_now_s();
        for (size_t i = 0; i < inner; i++) {
            memcpy(slots_copy, slots, n * sizeof *slots);
            memcpy(vals_copy, vals, n * width * sizeof *vals);
            sink ^= ((const uint8_t *)slots_copy)[i % (n * sizeof *slots + 1)];
        }
        double t3 = bench_now_s();
        if (rc) {
            goto cleanup;
        }
        enc[r] = (t1 - t0) / (double)inner;
        dec[r] = (t2 - t1) / (double)inner;
        cpy[r] = (t3 - t2) / (double)inner;
    }
    double keys = n ? (double)n : 1.0;
    double payload = keys * (8.0 + 4.0 * width);
    double te = bench_median(enc, REPS), td = bench_median(dec, REPS), tc = bench_median(cpy, REPS);
    *out = (row){
        .width = width,
        .density_pct = density_pct,
        .nkeys = n,
        .encode_ns_per_key = te * 1e9 / keys,
        .decode_ns_per_key = td * 1e9 / keys,
        .ns_per_key = (te + td) * 1e9 / keys,
        .bytes_per_key = (double)b.len / keys,
        .gb_per_s = payload / (te + td) * 1e-9,
        .memcpy_gb_per_s = payload / tc * 1e-9,
    };
cleanup:
    ps_free(b.data);
    ps_free(vals_copy);
    ps_free(vals);
    ps_free(slots_copy);
    ps_free(slots);
    return rc;
}

static void append_json(const char *path, const row *r)
{
    FILE *f = fopen(path, "a");
    if (!f) {
        PS_LOG(ERROR, "bench: cannot append to %s", path);
        return;
    }
    fprintf(f,
            "{\"bench\":\"codec_push\",\"width\":%u,\"density_pct\":%u,\"keys\":%zu,"
            "\"encode_ns_per_key\":%.3f,\"decode_ns_per_key\":%.3f,\"ns_per_key\":%.3f,"
            "\"bytes_per_key\":%.3f,\"gb_per_s\":%.3f,\"memcpy_gb_per_s\":%.3f,"
            "\"ratio_vs_memcpy\":%.4f}\n",
            r->width, r->density_pct, r->nkeys, r->encode_ns_per_key, r->decode_ns_per_key,
            r->ns_per_key, r->bytes_per_key, r->gb_per_s, r->memcpy_gb_per_s,
            r->gb_per_s / r->memcpy_gb_per_s);
    fclose(f);
}

int main(void)
{
    static const uint32_t widths[] = {1, 10};
    static const unsigned densities[] = {1, 10, 100};
    const char *json = getenv("BENCH_JSON");
    ps_codec *c = NULL;
    ps_rng rng;
    int rc = ps_codec_create(&c);
    if (rc) {
        goto done;
    }
    ps_rng_seed(&rng, 2015);
    printf("codec push encode+decode vs memcpy, range %d rows, median of %d\n", RANGE, REPS);
    printf("%5s %7s %8s %9s %9s %9s %9s %8s %11s %7s\n", "width", "density", "keys", "enc_ns/k",
           "dec_ns/k", "ns/key", "bytes/key", "GB/s", "memcpy_GB/s", "ratio");
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
        for (size_t d = 0; d < sizeof densities / sizeof densities[0]; d++) {
            row r = {0};
            if ((rc = measure(c, &rng, widths[w], densities[d], &r)) != 0) {
                goto done;
            }
            printf("%5u %6u%% %8zu %9.2f %9.2f %9.2f %9.2f %8.2f %11.2f %7.3f\n", r.width,
                   r.density_pct, r.nkeys, r.encode_ns_per_key, r.decode_ns_per_key, r.ns_per_key,
                   r.bytes_per_key, r.gb_per_s, r.memcpy_gb_per_s, r.gb_per_s / r.memcpy_gb_per_s);
            if (json && *json) {
                append_json(json, &r);
            }
        }
    }
done:
    ps_codec_destroy(&c);
    if (rc) {
        fprintf(stderr, "bench_codec: %s\n", ps_strerror(rc));
    }
    return rc ? 1 : 0;
}
