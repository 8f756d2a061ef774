#include "common/stats.h"

#include <string.h>

#include "common/comm.h"
#include "common/err.h"
#include "common/mem.h"

typedef struct {
    uint64_t bytes[2], msgs[2]; /* [0] sent, [1] received */
} tag_count;

struct ps_stats {
    int n;
    tag_count *peers; /* n * PS_STATS_NTAGS */
    ps_phase phase;
    double since; /* when the current phase began */
    double phase_s[PS_NPHASES];
    double wait_s[PS_NPHASES];
    uint64_t phase_bytes[PS_NPHASES];
    uint64_t samples;
    uint64_t stale[PS_STATS_NSTALE];
};

int ps_stats_create(ps_stats **out, int n)
{
    *out = NULL;
    ps_stats *s = ps_calloc(1, sizeof *s);
    if (!s || !(s->peers = ps_calloc((size_t)(n > 0 ? n : 1) * PS_STATS_NTAGS, sizeof *s->peers))) {
        ps_free(s);
        return PS_ENOMEM;
    }
    s->n = n;
    s->phase = PS_PHASE_LOAD;
    s->since = ps_comm_time();
    *out = s;
    return 0;
}

void ps_stats_destroy(ps_stats **sp)
{
    if (sp && *sp) {
        ps_free((*sp)->peers);
        ps_free(*sp);
        *sp = NULL;
    }
}

static int is_data(int tag)
{
    return tag >= PS_TAG_DATA(PS_TAG_PUSH) && tag <= PS_TAG_DATA(PS_TAG_CTRL);
}

/* A payload counts under its header's tag (common/comm.h, PS_TAG_DATA). */
static int tag_index(int tag)
{
    tag = is_data(tag) ? tag - PS_TAG_DATA_OFFSET : tag;
    return tag >= PS_TAG_PUSH && tag <= PS_TAG_CTRL ? tag : 0;
}

static void count(ps_stats *s, int dir, int peer, int tag, size_t len, double now)
{
    if (peer < 0 || peer >= s->n) {
        return;
    }
    if (s->phase == PS_PHASE_LOAD && (tag == PS_TAG_PUSH || tag == PS_TAG_PULL)) {
        /* The first push or pull ends start-up; the time since goes to
         * training. */
        s->phase_s[PS_PHASE_LOAD] += now - s->since;
        s->since = now;
        s->phase = PS_PHASE_TRAIN;
    }
    tag_count *t = &s->peers[(size_t)peer * PS_STATS_NTAGS + (size_t)tag_index(tag)];
    t->bytes[dir] += len;
    t->msgs[dir] += !is_data(tag); /* a header and its payloads are one message */
    s->phase_bytes[s->phase] += len;
}

void ps_stats_on_send(ps_stats *s, int peer, int tag, size_t len, double now)
{
    count(s, 0, peer, tag, len, now);
}

void ps_stats_on_recv(ps_stats *s, int peer, int tag, size_t len, double now)
{
    count(s, 1, peer, tag, len, now);
}

void ps_stats_on_wait(ps_stats *s, double secs)
{
    s->wait_s[s->phase] += secs;
}

void ps_stats_phase(ps_stats *s, ps_phase p)
{
    double now = ps_comm_time();
    s->phase_s[s->phase] += now - s->since;
    s->since = now;
    s->phase = p;
}

ps_phase ps_stats_current(const ps_stats *s)
{
    return s->phase;
}

void ps_stats_samples(ps_stats *s, uint64_t n)
{
    s->samples += n;
}

void ps_stats_staleness(ps_stats *s, int64_t clocks)
{
    int64_t last = PS_STATS_NSTALE - 1;
    s->stale[clocks < 0 ? 0 : clocks > last ? last : clocks]++;
}

static ps_stats_count sum(const ps_stats *s, int dir, int peer, int tag)
{
    ps_stats_count c = {0, 0};
    for (int p = peer == PS_ANY ? 0 : peer; p < (peer == PS_ANY ? s->n : peer + 1); p++) {
        if (p < 0 || p >= s->n) {
            break;
        }
        for (int t = 0; t < PS_STATS_NTAGS; t++) {
            if (tag == PS_ANY || t == tag_index(tag)) {
                const tag_count *k = &s->peers[(size_t)p * PS_STATS_NTAGS + (size_t)t];
                c.bytes += k->bytes[dir];
                c.msgs += k->msgs[dir];
            }
        }
    }
    return c;
}

ps_stats_count ps_stats_sent(const ps_stats *s, int peer, int tag)
{
    return sum(s, 0, peer, tag);
}

ps_stats_count ps_stats_received(const ps_stats *s, int peer, int tag)
{
    return sum(s, 1, peer, tag);
}

void ps_stats_record(const ps_stats *s, double *v)
{
    memset(v, 0, sizeof(double) * PS_STATS_NVALS);
    for (int t = 0; t < PS_STATS_NTAGS; t++) {
        ps_stats_count out = sum(s, 0, PS_ANY, t), in = sum(s, 1, PS_ANY, t);
        v[PS_SV_SENT_BYTES(t)] = (double)out.bytes;
        v[PS_SV_SENT_MSGS(t)] = (double)out.msgs;
        v[PS_SV_RECV_BYTES(t)] = (double)in.bytes;
        v[PS_SV_RECV_MSGS(t)] = (double)in.msgs;
    }
    for (int p = 0; p < PS_NPHASES; p++) {
        v[PS_SV_PHASE_S + p] = s->phase_s[p];
        v[PS_SV_WAIT_S + p] = s->wait_s[p];
        v[PS_SV_PHASE_BYTES + p] = (double)s->phase_bytes[p];
    }
    v[PS_SV_PHASE_S + s->phase] += ps_comm_time() - s->since;
    v[PS_SV_SAMPLES] = (double)s->samples;
    for (int b = 0; b < PS_STATS_NSTALE; b++) {
        v[PS_SV_STALE + b] = (double)s->stale[b];
    }
}

int ps_stats_gather(ps_comm *c, const ps_stats *s, double *table)
{
    int n = ps_comm_size(c), me = ps_comm_rank(c);
    /* A gather as a sum: every rank fills its own row, zeros elsewhere. */
    memset(table, 0, sizeof(double) * (size_t)n * PS_STATS_NVALS);
    ps_stats_record(s, table + (size_t)me * PS_STATS_NVALS);
    return ps_comm_allreduce_sum(c, table, n * PS_STATS_NVALS);
}
