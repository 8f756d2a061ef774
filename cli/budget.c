#include "cli/budget.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "data/partition.h"
#include "worker/batcher.h"

/* As worker/batcher.c decides: --stream auto streams parts over 1 GiB, in
 * chunks of 64 batches. */
#define STREAM_AUTO_BYTES ((uint64_t)1 << 30)
#define STREAM_CHUNK_BATCHES 64
/* Readers' fixed buffers: the IDX chunk plus zread's input and inflate
 * window; the libsvm line buffer. */
#define IDX_READ_BYTES ((uint64_t)3 << 19)
#define LIBSVM_READ_BYTES ((uint64_t)64 << 10)
/* Model scratch the plan does not size by the batch (radix counters). */
#define MODEL_FIXED_BYTES ((uint64_t)8 << 10)
/* A row of an unknown sparse data set: non-zeros assumed when the probe saw
 * no row; bytes per row and per non-zero of libsvm text. */
#define GUESS_NNZ 64
#define GUESS_ROW_BYTES 16
#define GUESS_NNZ_BYTES 8

static uint64_t add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t mul(uint64_t a, uint64_t b)
{
    return a && b > UINT64_MAX / a ? UINT64_MAX : a * b;
}

/* a * num / den in double, saturated: estimates from the probe's sample. */
static uint64_t scale(uint64_t a, uint64_t num, uint64_t den)
{
    double v = (double)a * (double)num / (double)(den ? den : 1);
    return v >= 1.8e19 ? UINT64_MAX : (uint64_t)v;
}

uint64_t ps_budget_row_bytes(uint32_t width, int nstate, int averaged, int lazy)
{
    /* store.c: w, the pending gradient, nstate state arrays and the average
     * (width floats each); last_step (8 bytes); lazy: touched flag and the
     * touched-row list (1 + 8). */
    uint64_t floats = 2 + (uint64_t)(nstate > 0 ? nstate : 0) + (averaged ? 1 : 0);
    return (uint64_t)width * 4 * floats + 8 + (lazy ? 9 : 0);
}

/* Rows of table t that a batch of n samples can touch: all rows of dense
 * tables, the batch's features of a sparse-input first table. */
static uint64_t touched(const ps_budget_job *j, uint32_t t, uint64_t n)
{
    uint64_t rows = j->tables[t].rows;
    if (t != 0 || !j->model.sparse_input) {
        return rows;
    }
    uint64_t k = mul(n, j->spec.max_nnz ? j->spec.max_nnz : GUESS_NNZ);
    return k < rows ? k : rows;
}

static uint64_t slots_on(const ps_budget_job *j, uint32_t t, uint32_t server)
{
    ps_shard sh;
    if (ps_shard_init(&sh, j->tables[t].rows, j->nservers, j->shard) != 0) {
        return 0;
    }
    return ps_shard_count(&sh, server);
}

void ps_budget_server(const ps_budget_job *j, uint32_t server, ps_budget_rank *out)
{
    memset(out, 0, sizeof *out);
    uint64_t n = j->batch > j->eval_batch ? j->batch : j->eval_batch;
    for (uint32_t t = 0; t < j->ntables; t++) {
        const ps_table_desc *d = &j->tables[t];
        uint64_t slots = slots_on(j, t, server);
        uint64_t b = mul(slots, ps_budget_row_bytes(d->width, j->nstate, j->averaged, j->lazy));
        out->tables = add(out->tables, b);
        if (b > out->big_bytes || t == 0) {
            out->big = b > out->big_bytes ? t : out->big;
            out->big_bytes = b > out->big_bytes ? b : out->big_bytes;
        }
        /* Messages: each worker's push of a batch (held when early), the
         * pulls' replies and the lazy scratch, this server's share. */
        uint64_t share = touched(j, t, n) / (j->nservers ? j->nservers : 1) + 1;
        share = share < slots ? share : slots;
        uint64_t msgs = mul(mul(share, (uint64_t)d->width * 4 + 16), 2 * (uint64_t)j->nworkers + 2);
        out->buffers = add(out->buffers, msgs);
    }
    out->total = add(add(out->tables, out->buffers), PS_BUDGET_RUNTIME);
}

/* The model's buffers for max_batch samples (worker/model.c create). */
static uint64_t model_bytes(const ps_model_cfg *m, uint64_t max_nnz)
{
    uint64_t nb = m->max_batch, maxw = m->nclasses, maxh = 0, act = m->nclasses;
    uint32_t nh = m->kind == PS_MODEL_MLP ? m->nhidden : 0;
    for (uint32_t l = 0; l < nh && l < PS_MODEL_MAX_HIDDEN; l++) {
        act += m->hidden[l];
        maxh = m->hidden[l] > maxh ? m->hidden[l] : maxh;
    }
    maxw = maxh > maxw ? maxh : maxw;
    uint64_t floats = add(mul(nb, act), mul(2 * nb, maxw));
    if (maxh && m->dropout_hidden > 0.0f) {
        floats = add(floats, mul(nb, maxh));
    }
    if (!m->sparse_input && m->dropout_input > 0.0f) {
        floats = add(floats, mul(nb, m->in_dim));
    }
    if (m->sparse_input && m->dropout_input > 0.0f) {
        floats = add(floats, mul(nb, max_nnz));
    }
    return add(mul(floats, 4), MODEL_FIXED_BYTES);
}

/* A libsvm range of `bytes` bytes, as the probe's sample suggests. */
static void libsvm_rows(const ps_source_spec *s, uint64_t bytes, uint64_t *rows, uint64_t *nnz)
{
    if (s->sample_bytes && s->sample_rows) {
        *rows = scale(bytes, s->sample_rows, s->sample_bytes) + 1;
        *nnz = scale(bytes, s->sample_nnz, s->sample_bytes) + 1;
    } else {
        *rows = bytes / GUESS_ROW_BYTES + 1;
        *nnz = bytes / GUESS_NNZ_BYTES + 1;
    }
}

/* CSR rows in memory, grown by doubling: indptr 8, y 4, shuffle order 8
 * per row, index 8 and value 4 per non-zero. */
static uint64_t csr_bytes(uint64_t rows, uint64_t nnz, int grown)
{
    uint64_t b = add(mul(rows, 20), mul(nnz, 12));
    return grown ? mul(b, 2) : b;
}

static uint64_t train_part(const ps_budget_job *j, uint32_t worker)
{
    const ps_source_spec *s = &j->spec;
    if (!j->libsvm) {
        size_t first = 0, count = 0;
        if (ps_partition_range((size_t)s->ntrain, j->nworkers, worker, &first, &count) != 0) {
            return 0;
        }
        if (!s->sparse) {
            return add(mul(count, add(mul(s->dim, 4), 12)), IDX_READ_BYTES);
        }
        /* Synthetic: exact rows, plus the generator's weight cache. */
        uint64_t cache = mul(s->dim < 65536 ? s->dim : 65536, mul(j->model.nclasses, 4));
        return add(csr_bytes(count, mul(count, s->max_nnz), 0), cache);
    }
    uint64_t begin = 0, end = 0, rows, nnz;
    if (ps_partition_bytes(s->train_bytes, j->nworkers, worker, &begin, &end) != 0) {
        return 0;
    }
    uint64_t bytes = end - begin;
    int streamed =
        j->stream == PS_STREAM_ON || (j->stream == PS_STREAM_AUTO && bytes > STREAM_AUTO_BYTES);
    libsvm_rows(s, bytes, &rows, &nnz);
    if (streamed) {
        uint64_t chunk = (uint64_t)j->batch * STREAM_CHUNK_BATCHES;
        nnz = rows ? scale(chunk, nnz, rows) + 1 : chunk;
        rows = chunk;
    }
    return add(csr_bytes(rows, nnz, 1), LIBSVM_READ_BYTES);
}

static uint64_t test_set(const ps_budget_job *j)
{
    const ps_source_spec *s = &j->spec;
    if (!s->sparse) {
        return add(mul(s->ntest, add(mul(s->dim, 4), 4)), IDX_READ_BYTES);
    }
    return csr_bytes(s->ntest, s->test_nnz, j->libsvm);
}

void ps_budget_worker(const ps_budget_job *j, uint32_t worker, ps_budget_rank *out)
{
    memset(out, 0, sizeof *out);
    const ps_source_spec *s = &j->spec;
    uint64_t nnz = s->max_nnz ? s->max_nnz : GUESS_NNZ;
    uint64_t rowbufs = 0, keys = 0;
    for (uint32_t t = 0; t < j->ntables; t++) {
        uint64_t w4 = (uint64_t)j->tables[t].width * 4;
        uint64_t tb = touched(j, t, j->batch), te = touched(j, t, j->eval_batch);
        /* Pulled params (a batch's or an evaluation chunk's) and the reply
         * they came in; gradients, the client's gathered copy, the push.
         * Two batches' keys in flight and the evaluation's: key, position,
         * the plan's slot and position. Growth doubles all of them. */
        uint64_t b = add(mul(mul(te, w4), 2), mul(tb, 3 * w4 + 10));
        b = mul(add(b, mul(add(mul(tb, 2), te), 28)), 2);
        rowbufs = add(rowbufs, b);
        if (b > out->big_bytes) {
            out->big = t;
            out->big_bytes = b;
        }
    }
    uint64_t batches = s->sparse ? mul(mul(j->batch, add(mul(nnz, 12), 12)), 2)
                                 : mul(j->batch, add(mul(s->dim, 4), 4));
    out->buffers = add(add(add(rowbufs, keys), mul(batches, 2)), model_bytes(&j->model, nnz));
    out->data = train_part(j, worker);
    if (worker == 0) {
        out->data = add(out->data, test_set(j));
    }
    out->total = add(add(out->data, out->buffers), PS_BUDGET_RUNTIME);
}

/* Rank r's plan, and its role's index. */
static void plan_of(const ps_budget_job *j, const ps_budget_world *w, int r, ps_budget_rank *p,
                    uint32_t *id)
{
    uint32_t k = 0;
    for (int i = 0; i < r; i++) {
        k += w->is_server[i] == w->is_server[r];
    }
    *id = k;
    if (w->is_server[r]) {
        ps_budget_server(j, k, p);
    } else {
        ps_budget_worker(j, k, p);
    }
}

/* Does the plan fit? OUT *worst: the rank taking most (of rank's node, or
 * rank itself with per_rank), OUT *need: what is compared with the budget. */
static int fits(const ps_budget_job *j, const ps_budget_world *w, int rank, uint64_t per_rank,
                uint64_t avail, int *worst, uint64_t *need)
{
    ps_budget_rank p;
    uint32_t id;
    uint64_t most = 0;
    *worst = rank;
    *need = 0;
    if (per_rank) {
        plan_of(j, w, rank, &p, &id);
        *need = p.total;
        return p.total <= per_rank;
    }
    for (int r = 0; r < w->size; r++) {
        if (w->node_of_rank[r] != w->node_of_rank[rank]) {
            continue;
        }
        plan_of(j, w, r, &p, &id);
        *need = add(*need, p.total);
        if (p.total > most) {
            most = p.total;
            *worst = r;
        }
    }
    return avail == 0 || *need <= avail;
}

/* The largest B <= max_bits whose 2^B-row first table fits; 0 if none. */
static unsigned bits_that_fit(const ps_budget_job *j, const ps_budget_world *w, int rank,
                              uint64_t per_rank, uint64_t avail, unsigned max_bits)
{
    ps_table_desc t[PS_MODEL_MAX_TABLES];
    ps_budget_job k = *j;
    int worst;
    uint64_t need;
    if (j->ntables > PS_MODEL_MAX_TABLES) {
        return 0;
    }
    memcpy(t, j->tables, j->ntables * sizeof *t);
    k.tables = t;
    for (unsigned b = max_bits; b >= 1; b--) {
        t[0].rows = (uint64_t)1 << b;
        k.spec.dim = t[0].rows;
        if (fits(&k, w, rank, per_rank, avail, &worst, &need)) {
            return b;
        }
    }
    return 0;
}

/* The fewest servers (beyond today's) whose share of `server`'s tables fits
 * room, one server per node; 0 if none up to 2^20. */
static uint32_t servers_that_fit(const ps_budget_job *j, uint64_t room)
{
    ps_budget_job k = *j;
    ps_budget_rank p;
    uint32_t lo = j->nservers + 1, hi = 1u << 20;
    k.nservers = hi;
    ps_budget_server(&k, 0, &p);
    if (p.total > room) {
        return 0;
    }
    while (lo < hi) {
        k.nservers = lo + (hi - lo) / 2;
        ps_budget_server(&k, 0, &p);
        if (p.total <= room) {
            hi = k.nservers;
        } else {
            lo = k.nservers + 1;
        }
    }
    return lo;
}

/* Appends printf text to buf at *pos, never past len. */
__attribute__((format(printf, 4, 5))) static void put(char *buf, size_t len, size_t *pos,
                                                      const char *fmt, ...)
{
    va_list ap;
    if (*pos >= len) {
        return;
    }
    va_start(ap, fmt);
    int n = vsnprintf(buf + *pos, len - *pos, fmt, ap);
    va_end(ap);
    *pos = n < 0 ? len : *pos + (size_t)n;
}

/* Worker plans on rank's node: what a server there cannot have. */
static uint64_t workers_on_node(const ps_budget_job *j, const ps_budget_world *w, int rank)
{
    uint64_t sum = 0;
    for (int r = 0; r < w->size; r++) {
        if (!w->is_server[r] && w->node_of_rank[r] == w->node_of_rank[rank]) {
            ps_budget_rank p;
            uint32_t id;
            plan_of(j, w, r, &p, &id);
            sum = add(sum, p.total);
        }
    }
    return sum;
}

static int ranks_on_node(const ps_budget_world *w, int rank)
{
    int n = 0;
    for (int r = 0; r < w->size; r++) {
        n += w->node_of_rank[r] == w->node_of_rank[rank];
    }
    return n;
}

/* The server's side of the message: the table and the ways out. */
static void server_why(const ps_budget_job *j, const ps_budget_world *w, int rank,
                       uint64_t per_rank, uint64_t avail, const ps_budget_rank *p, uint32_t id,
                       char *buf, size_t len, size_t *pos, char *ways, size_t wlen, size_t *wpos)
{
    const ps_table_desc *d = &j->tables[p->big];
    char a[32];
    ps_budget_human(p->big_bytes, a, sizeof a);
    put(buf, len, pos,
        "table %s (%llu rows x %u) takes %s on server %u of %u (%s sharding; with the "
        "gradient, %d optimizer state array%s%s and step counters)",
        d->name, (unsigned long long)d->rows, d->width, a, id, j->nservers,
        ps_shard_mode_name(j->shard), j->nstate, j->nstate == 1 ? "" : "s",
        j->averaged ? ", the average" : "");
    if (p->big == 0 && j->model.sparse_input) {
        unsigned top = 0;
        while (top < 40 && ((uint64_t)2 << top) < d->rows) {
            top++;
        }
        unsigned b = bits_that_fit(j, w, rank, per_rank, avail, top);
        if (b) {
            put(ways, wlen, wpos, " --hash-bits %u (2^%u rows fit),", b, b);
        } else {
            put(ways, wlen, wpos, " a smaller --hash-bits B,");
        }
        if (j->libsvm && !j->hash_bits) {
            put(ways, wlen, wpos, " --features N (ids past N refused),");
        }
    } else if (p->big + 2 < j->ntables || !j->model.sparse_input) {
        put(ways, wlen, wpos, " a smaller --hidden,");
    }
    uint64_t others = per_rank ? 0 : workers_on_node(j, w, rank);
    uint64_t room = per_rank ? per_rank : avail > others ? avail - others : 0;
    uint32_t s = room ? servers_that_fit(j, room) : 0;
    if (s) {
        put(ways, wlen, wpos, " --servers %u%s,", s, per_rank ? "" : " (one per node, more nodes)");
    } else {
        put(ways, wlen, wpos, " more --servers,");
    }
}

int ps_budget_check(const ps_budget_job *j, const ps_budget_world *w, int rank, uint64_t per_rank,
                    uint64_t node_avail, char *msg, size_t len)
{
    int worst;
    uint64_t need;
    size_t pos = 0, wpos = 0;
    char ways[512] = "";
    if (msg && len) {
        msg[0] = '\0';
    }
    if (fits(j, w, rank, per_rank, node_avail, &worst, &need)) {
        return 0;
    }
    ps_budget_rank p;
    uint32_t id;
    plan_of(j, w, worst, &p, &id);
    put(msg, len, &pos, "not enough memory: ");
    if (w->is_server[worst]) {
        server_why(j, w, rank, per_rank, node_avail, &p, id, msg, len, &pos, ways, sizeof ways,
                   &wpos);
    } else if (p.data >= p.buffers) {
        char a[32];
        ps_budget_human(p.data, a, sizeof a);
        put(msg, len, &pos, "worker %u's data takes %s (its part of %s%s)", id, a,
            j->train[0] ? j->train : "the training set", id == 0 ? ", and the test set" : "");
        put(ways, sizeof ways, &wpos, " --train-limit N, more workers,%s%s",
            j->libsvm && j->stream != PS_STREAM_ON ? " --stream on," : "",
            id == 0 ? " --test-limit N," : "");
    } else {
        const ps_table_desc *d = &j->tables[p.big];
        char a[32];
        ps_budget_human(p.big_bytes, a, sizeof a);
        put(msg, len, &pos,
            "table %s (%llu rows x %u) takes %s on worker %u for the rows a batch touches "
            "(pulled values, gradients, messages)",
            d->name, (unsigned long long)d->rows, d->width, a, id);
        put(ways, sizeof ways, &wpos, "%s",
            p.big == 0 && j->model.sparse_input ? " a smaller --batch or --hash-bits B,"
                                                : " a smaller --hidden,");
    }
    char b[32], c[32];
    ps_budget_human(need, b, sizeof b);
    ps_budget_human(per_rank ? per_rank : node_avail, c, sizeof c);
    if (per_rank) {
        put(msg, len, &pos, "; that rank needs %s, over --max-memory %s per rank", b, c);
    } else {
        put(msg, len, &pos,
            "; the %d ranks on this node need %s together, but it has %s available "
            "(MemAvailable, cgroup limit)",
            ranks_on_node(w, rank), b, c);
    }
    put(msg, len, &pos, ". Ways out:%s or --max-memory BYTES to set a per-rank budget", ways);
    return PS_ECONFIG;
}

void ps_budget_describe(const ps_budget_job *j, uint64_t per_rank, uint64_t node_avail,
                        int node_ranks, char *buf, size_t len)
{
    ps_budget_rank s, w0, w1;
    char a[32], b[32], c[32], d[32], e[32];
    size_t pos = 0;
    /* Block splits give the first server and worker the most. */
    ps_budget_server(j, 0, &s);
    ps_budget_worker(j, 0, &w0);
    ps_budget_human(s.total, a, sizeof a);
    ps_budget_human(s.tables, b, sizeof b);
    ps_budget_human(w0.total, c, sizeof c);
    ps_budget_human(w0.data, d, sizeof d);
    put(buf, len, &pos, "memory plan: %s per server (tables %s), %s on worker 0 (data %s)", a, b, c,
        d);
    if (j->nworkers > 1) {
        ps_budget_worker(j, 1, &w1);
        ps_budget_human(w1.total, e, sizeof e);
        put(buf, len, &pos, ", %s per other worker", e);
    }
    if (per_rank) {
        ps_budget_human(per_rank, e, sizeof e);
        put(buf, len, &pos, "; budget --max-memory %s per rank", e);
    } else if (node_avail) {
        ps_budget_human(node_avail, e, sizeof e);
        put(buf, len, &pos, "; budget %s available on the node for its %d ranks", e, node_ranks);
    } else {
        put(buf, len, &pos, "; no budget (the node's memory is unknown: give --max-memory)");
    }
}

uint64_t ps_budget_max_rows(uint64_t room, uint32_t nservers, uint32_t width, int nstate,
                            int averaged, int lazy)
{
    uint64_t usable = room > PS_BUDGET_RUNTIME ? room - PS_BUDGET_RUNTIME : 0;
    uint64_t rows = mul(usable, nservers) / ps_budget_row_bytes(width, nstate, averaged, lazy);
    return rows ? rows : 1;
}

static const char units[] = "KMGTP";

int ps_budget_parse_bytes(const char *text, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = text;
    if (*p < '0' || *p > '9') {
        return PS_EINVAL;
    }
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned dgt = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - dgt) / 10) {
            return PS_EINVAL;
        }
        v = v * 10 + dgt;
    }
    unsigned shift = 0;
    char u = *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
    const char *k = u ? strchr(units, u) : NULL;
    if (k) {
        shift = 10 * (unsigned)(k - units + 1);
        p++;
        p += strcmp(p, "iB") == 0 ? 2 : 0;
    }
    p += strcmp(p, "B") == 0;
    if (*p || v == 0 || (shift && v > (UINT64_MAX >> shift))) {
        return PS_EINVAL;
    }
    *out = v << shift;
    return 0;
}

void ps_budget_format_bytes(uint64_t bytes, char *buf, size_t len)
{
    int u = (int)sizeof units - 2;
    for (; u >= 0; u--) {
        uint64_t m = (uint64_t)1 << (10 * (u + 1));
        if (bytes && bytes % m == 0) {
            snprintf(buf, len, "%llu%c", (unsigned long long)(bytes / m), units[u]);
            return;
        }
    }
    snprintf(buf, len, "%llu", (unsigned long long)bytes);
}

void ps_budget_human(uint64_t bytes, char *buf, size_t len)
{
    static const char *const names[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < 1024) {
        snprintf(buf, len, "%llu B", (unsigned long long)bytes);
        return;
    }
    double v = (double)bytes / 1024;
    int u = 0;
    for (; v >= 1024 && u < 5; u++) {
        v /= 1024;
    }
    snprintf(buf, len, "%.1f %s", v, names[u]);
}
