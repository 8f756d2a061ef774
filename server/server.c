#include "server/server.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/codec.h"
#include "common/err.h"
#include "common/log.h"
#include "common/stats.h"
#include "common/mem.h"
#include "common/payload.h"
#include "server/answer.h"
#include "server/segcopy.h"
#include "server/snapshot.h"

/* BSP: a worker's push for clock `version` that came before its turn. */
typedef struct {
    ps_segcopy st;
    ps_push push;
    int used;
} held_push;

struct ps_server {
    const ps_server_cfg *cfg;
    ps_comm *comm;
    ps_store *store;
    ps_codec *codec;
    ps_codec *pcodec; /* a pull taken during a push's apply, which holds codec's arena */
    ps_answer ans;    /* replies, and the pulls waiting for their version */
    ps_msg_limits lim;
    int64_t version;        /* clocks pushed by every worker */
    int64_t *pushed;        /* per worker: pushes received */
    uint8_t *done;          /* per worker: sent DONE */
    held_push *held;        /* BSP: per worker, its push for clock `version` if early */
    uint32_t next_w;        /* BSP: the next worker whose push is added */
    uint64_t ref_samples;   /* BSP: samples of the clock's first push with any (bsp_add) */
    uint64_t clock_samples; /* BSP: samples of the clock's pushes added so far */
    uint32_t ndone;
    int64_t ckpt_clock; /* a CHECKPOINT waiting for its version, or -1 */
    int ckpt_src;
    int64_t stop_clock; /* announced by the coordinator (STOP), or 0 */
    int stopped;        /* a worker's DONE said it stopped at the stop clock */
    int stop_asked;     /* this rank's stop signal was passed on */
#ifdef PS_TESTING
    const char *inject; /* ADAMPS_TEST_INJECT, read once */
#endif
    ps_bytes out;
    float *grads; /* a push's payloads, received straight here */
    size_t cap_grads;
    ps_seg *psegs;    /* a push's segments with their payloads, one per table */
    uint32_t pushing; /* the worker whose push self_step applies */
    ps_pull taken;    /* the pull find_pull took from the comm (pcodec's arena) */
};

/* The sender must be the rank the push or pull claims to come from. */
static int check_worker(ps_server *s, int src, uint32_t worker, const char *kind)
{
    if (s->cfg->worker_ranks[worker] != src) {
        PS_LOG(ERROR, "%s from rank %d claims to be worker %u (rank %d)", kind, src, worker,
               s->cfg->worker_ranks[worker]);
        return PS_EMSG;
    }
    return 0;
}

/* Replies from the store as it is now, in pieces (server/answer.h). */
static int answer_pull(ps_server *s, const ps_pull *p, int src)
{
    return ps_answer_send(&s->ans, p, src, s->version, s->stop_clock);
}

/* Receives the payloads push p's header announced, from rank src, straight
 * into the server's gradient buffer; p's segments then point there. A
 * payload of the wrong size is PS_EMSG naming src (ps_comm_recv_into). */
static int take_payloads(ps_server *s, ps_push *p, int src)
{
    size_t total = ps_payload_floats(p->segs, p->nsegs);
    int rc = ps_grow((void **)&s->grads, &s->cap_grads, total ? total : 1, sizeof(float));
    if (rc == 0) {
        rc = ps_payload_recv(s->comm, src, PS_TAG_DATA(PS_TAG_PUSH), p->segs, p->nsegs, 0, s->grads,
                             s->psegs, "a push's values");
    }
    p->segs = s->psegs;
    return rc;
}

#ifdef PS_TESTING
/* Test builds only (make test): ADAMPS_TEST_INJECT=slow-ckpt-SECS makes
 * every shard write take SECS longer, sleeping with heartbeats (a slow
 * file system: peers must not time out), freeze-ckpt-SECS the same without
 * heartbeats (a hung one: they must), fail-ckpt-N fails the write of
 * checkpoint N as a full disk would. Returns a write's rc. */
static int inject_ckpt(ps_server *s, int64_t clock)
{
    const char *w = s->inject;
    double secs = 0;
    int beat = 0;
    if (!w) {
        return 0;
    }
    if (strncmp(w, "fail-ckpt-", 10) == 0 && strtoll(w + 10, NULL, 10) == clock) {
        PS_LOG(ERROR, "%s/ckpt-%lld: write failed: No space left on device (injected)",
               s->cfg->ckpt_dir, (long long)clock);
        return PS_EIO;
    }
    if (strncmp(w, "slow-ckpt-", 10) == 0) {
        secs = strtod(w + 10, NULL);
        beat = 1;
    } else if (strncmp(w, "freeze-ckpt-", 12) == 0) {
        secs = strtod(w + 12, NULL);
    }
    for (double t = 0; t < secs; t += 0.05) {
        struct timespec ts = {0, 50000000L};
        nanosleep(&ts, NULL);
        if (beat) {
            ps_comm_alive();
        }
    }
    return 0;
}
#else
#define inject_ckpt(s, clock) 0
#endif

/* Writes the shard once the requested clock is reached. Under BSP the
 * coordinator's next push comes after its request, so the version is then
 * exactly the requested clock: a consistent snapshot. Under SSP/ASP updates
 * of later clocks may already be in. A failed write (a full disk) is not
 * the server's to judge: it goes back to the coordinator, which knows
 * which checkpoint is still intact and ends the job saying so. */
static int maybe_checkpoint(ps_server *s)
{
    if (s->ckpt_clock < 0 || s->version < s->ckpt_clock) {
        return 0;
    }
    int wrc = inject_ckpt(s, s->ckpt_clock);
    if (wrc == 0) {
        wrc = ps_snapshot_save(s->store, s->cfg->ckpt_dir, s->ckpt_clock, s->cfg->opt_name,
                               s->cfg->nworkers, s->cfg->config_text);
    }
    ps_ctrl done = {.kind = PS_CTRL_CHECKPOINT_DONE,
                    .clock = s->ckpt_clock,
                    .value = wrc ? 1 : 0,
                    .text = wrc ? ps_strerror(wrc) : ""};
    s->ckpt_clock = -1;
    int rc = ps_codec_encode_ctrl(s->codec, &done, &s->out);
    return rc ? rc : ps_comm_send(s->comm, s->ckpt_src, PS_TAG_CTRL, &s->out);
}

static int64_t min_pushed(const ps_server *s)
{
    int64_t v = s->pushed[0];
    for (uint32_t w = 1; w < s->cfg->nworkers; w++) {
        v = s->pushed[w] < v ? s->pushed[w] : v;
    }
    return v;
}

/* Decodes pull m with codec and checks its sender. */
static int decode_pull(ps_server *s, ps_codec *codec, const ps_comm_msg *m, ps_pull *p)
{
    int rc = ps_codec_decode_pull(codec, &s->lim, m->src, m->data, m->len, p);
    return rc ? rc : check_worker(s, m->src, p->worker, "pull");
}

/* ps_answer_find_fn for the push self_step applies: the pushing worker's
 * next pull, if it is in the comm already (the push being applied lives in
 * codec's arena, so it is decoded with pcodec). */
static int find_pull(void *arg, const ps_pull **pull)
{
    ps_server *s = arg;
    ps_comm_msg m;
    int rc = ps_comm_recv(s->comm, s->cfg->worker_ranks[s->pushing], PS_TAG_PULL, 0, &m);
    if (rc) {
        return rc == PS_EEOF ? 0 : rc;
    }
    if ((rc = decode_pull(s, s->pcodec, &m, &s->taken)) == 0) {
        *pull = &s->taken;
    }
    return rc;
}

/* Lazy push p as step t of its own, making the version `version`: applied
 * in parts, each part's stepped weights checked finite (which catches a
 * non-finite gradient too: ps_store_push_part), and the pushing worker's
 * pull, if this step answers it, sent part by part as its rows are stepped
 * (server/answer.h). Not with temporal averaging: an averaged read needs
 * the whole step. */
static int self_step(ps_server *s, const ps_push *p, int64_t t, int64_t version)
{
    ps_answer_step st = {.src = s->cfg->worker_ranks[p->worker],
                         .version = version,
                         .stop_clock = s->stop_clock,
                         .find = s->cfg->store.avg_beta > 0 ? NULL : find_pull,
                         .arg = s};
    s->pushing = p->worker;
    int answered = 0;
    return ps_answer_apply_push(&s->ans, p, t, &st, &answered);
}

/* BSP: adds one push of the clock. Push w's gradients are the mean over its
 * n_w samples, and the clock's step is the mean over all N of them:
 * sum_w (n_w / N) g_w. The first push with samples is added as it is and
 * each later one scaled by n_w / n_first; the apply then multiplies by
 * n_first / N (bsp_advance). So a clock whose samples all come from one
 * push applies exactly that push, and equal batches add with scale 1 and
 * apply 1 / W. An empty or dropped push (samples 0) adds nothing. */
static void bsp_add(ps_server *s, const ps_push *p)
{
    if (p->samples == 0) {
        return;
    }
    float scale = 1.0f;
    if (s->ref_samples == 0) {
        s->ref_samples = p->samples;
    } else {
        scale = (float)((double)p->samples / (double)s->ref_samples);
    }
    s->clock_samples += p->samples;
    ps_store_accumulate(s->store, p, scale);
}

/* BSP: adds the pushes of clock `version` in worker order, never arrival
 * order, so runs are bit-identical. The push of the next worker in order is
 * added as it arrives (with one worker, nothing is ever held); one that
 * comes early waits in held[] until its turn. After the last worker's, the
 * clock is applied as one step. p is worker next_w's push, or NULL. */
static int bsp_advance(ps_server *s, const ps_push *p)
{
    if (p && s->cfg->nworkers == 1 && s->cfg->store.lazy) {
        /* One worker: its push is the whole clock (scale 1). */
        s->next_w = 0;
        s->version++;
        return self_step(s, p, s->version, s->version);
    }
    if (p) {
        bsp_add(s, p);
        s->next_w++;
    }
    while (s->next_w < s->cfg->nworkers && s->held[s->next_w].used) {
        held_push *h = &s->held[s->next_w];
        bsp_add(s, &h->push);
        h->used = 0;
        s->next_w++;
    }
    if (s->next_w < s->cfg->nworkers) {
        return 0;
    }
    float scale =
        s->clock_samples ? (float)((double)s->ref_samples / (double)s->clock_samples) : 1.0f;
    s->ref_samples = s->clock_samples = 0;
    int rc = ps_store_apply_scaled(s->store, s->version + 1, scale);
    if (rc) {
        return rc;
    }
    s->next_w = 0;
    s->version++;
    return 0;
}

/* BSP: keeps worker p->worker's early push until its turn; a dropped one
 * (--nonfinite skip) is kept empty with no samples, so its turn adds
 * nothing and its samples do not count. */
static int hold_push(ps_server *s, const ps_push *p, int drop)
{
    held_push *h = &s->held[p->worker];
    size_t nsegs = drop ? 0 : p->nsegs;
    int rc = ps_segcopy_set(&h->st, p->segs, nsegs);
    if (rc) {
        return rc;
    }
    h->push = *p;
    h->push.nsegs = nsegs;
    h->push.samples = drop ? 0 : p->samples;
    h->push.segs = h->st.segs;
    h->used = 1;
    return 0;
}

static int on_push(ps_server *s, const ps_comm_msg *m)
{
    ps_push p;
    int rc = ps_codec_decode_push(s->codec, &s->lim, m->src, m->data, m->len, &p);
    if (rc || (rc = take_payloads(s, &p, m->src)) ||
        (rc = check_worker(s, m->src, p.worker, "push"))) {
        return rc;
    }
    if (p.clock != s->pushed[p.worker]) {
        PS_LOG(ERROR, "push from rank %d (worker %u) is for clock %lld, expected clock %lld",
               m->src, p.worker, (long long)p.clock, (long long)s->pushed[p.worker]);
        return PS_EMSG;
    }
    if (p.samples == 0 && p.nsegs > 0) {
        PS_LOG(ERROR, "push from rank %d (worker %u) for clock %lld carries gradients of 0 samples",
               m->src, p.worker, (long long)p.clock);
        return PS_EMSG;
    }
    /* A step of its own needs no pass over its gradients: the weight check
     * after each part blames a non-finite one (ps_store_push_part). Unless a
     * dropped push must change nothing (--nonfinite skip). */
    int self = s->cfg->store.lazy && (s->cfg->sync != PS_SYNC_BSP || s->cfg->nworkers == 1);
    int drop = 0;
    if ((!self || s->cfg->nonfinite_skip) && (rc = ps_store_check_finite(s->store, &p))) {
        if (!s->cfg->nonfinite_skip) {
            return rc;
        }
        PS_LOG(WARN, "dropping the gradients of worker %u for clock %lld (--nonfinite skip)",
               p.worker, (long long)p.clock);
        drop = 1;
    }
    /* How far ahead of the slowest worker this push is (0 under BSP). */
    ps_stats_staleness(ps_comm_stats(s->comm), p.clock - s->version);
    s->pushed[p.worker]++;
    if (s->cfg->sync == PS_SYNC_BSP) {
        if (p.clock != s->version) {
            PS_LOG(ERROR,
                   "push from rank %d (worker %u) for clock %lld runs ahead of clock %lld "
                   "under BSP",
                   m->src, p.worker, (long long)p.clock, (long long)s->version);
            return PS_EMSG;
        }
        if (p.worker == s->next_w) {
            if (drop) {
                s->next_w++;
            }
            rc = bsp_advance(s, drop ? NULL : &p);
        } else {
            rc = hold_push(s, &p, drop);
        }
        if (rc) {
            return rc;
        }
    } else {
        /* Every push is a step, a dropped one as an empty push: t counts
         * the pushes received, and every server receives every push, so a
         * part dropped here does not leave this shard's t (bias
         * correction, --lr-schedule) behind the others'. */
        if (drop) {
            p.nsegs = 0;
        }
        int64_t t = ps_store_step(s->store) + 1;
        if (s->cfg->store.lazy) {
            rc = self_step(s, &p, t, min_pushed(s));
        } else {
            ps_store_accumulate(s->store, &p, 1.0f);
            rc = ps_store_apply(s->store, t);
        }
        if (rc) {
            return rc;
        }
        s->version = min_pushed(s);
    }
    if ((rc = maybe_checkpoint(s))) {
        return rc;
    }
    return ps_answer_waiting(&s->ans, s->version, s->stop_clock);
}

static int on_pull(ps_server *s, const ps_comm_msg *m)
{
    ps_pull p;
    int rc = decode_pull(s, s->codec, m, &p);
    if (rc) {
        return rc;
    }
    return p.min_version <= s->version ? answer_pull(s, &p, m->src)
                                       : ps_answer_hold(&s->ans, &p, m->src);
}

static int on_ctrl(ps_server *s, const ps_comm_msg *m)
{
    ps_ctrl c;
    int rc = ps_codec_decode_ctrl(s->codec, &s->lim, m->src, m->data, m->len, &c);
    if (rc || (rc = check_worker(s, m->src, c.worker, "control"))) {
        return rc;
    }
    switch (c.kind) {
    case PS_CTRL_DONE:
        if (s->done[c.worker]) {
            PS_LOG(ERROR, "second DONE from rank %d (worker %u)", m->src, c.worker);
            return PS_EMSG;
        }
        s->done[c.worker] = 1;
        s->stopped |= c.value != 0;
        /* Nothing can raise the version now: a waiting pull would never be
         * answered and its worker would wait for ever. */
        if (++s->ndone == s->cfg->nworkers && ps_answer_nheld(&s->ans)) {
            PS_LOG(ERROR, "all workers are done but %zu pulls still wait for a newer version",
                   ps_answer_nheld(&s->ans));
            return PS_EMSG;
        }
        return 0;
    case PS_CTRL_CHECKPOINT:
        if (!s->cfg->ckpt_dir || !s->cfg->ckpt_dir[0]) {
            PS_LOG(ERROR, "checkpoint request from rank %d, but no --checkpoint-dir", m->src);
            return PS_EMSG;
        }
        s->ckpt_clock = c.clock;
        s->ckpt_src = m->src;
        return maybe_checkpoint(s);
    case PS_CTRL_ERROR:
        PS_LOG(ERROR, "worker %u (rank %d) failed: %s", c.worker, m->src, c.text);
        return PS_EPEER;
    case PS_CTRL_STOP:
        if (c.worker != 0 || c.clock <= 0) {
            PS_LOG(ERROR,
                   "stop at clock %lld from rank %d (worker %u): only the coordinator "
                   "(worker 0) stops the job, at a clock > 0",
                   (long long)c.clock, m->src, c.worker);
            return PS_EMSG;
        }
        if (s->stop_clock == 0) {
            s->stop_clock = c.clock;
        }
        return 0;
    default:
        PS_LOG(ERROR, "control message of kind %d from rank %d is not for a server", c.kind,
               m->src);
        return PS_EMSG;
    }
}

int ps_server_handle(ps_server *s, const ps_comm_msg *m)
{
    switch (m->tag) {
    case PS_TAG_PUSH:
        return on_push(s, m);
    case PS_TAG_PULL:
        return on_pull(s, m);
    case PS_TAG_CTRL:
        return on_ctrl(s, m);
    default:
        PS_LOG(ERROR, "message with unknown tag %d from rank %d", m->tag, m->src);
        return PS_EMSG;
    }
}

int ps_server_is_done(const ps_server *s)
{
    return s->ndone == s->cfg->nworkers;
}

int ps_server_is_stopped(const ps_server *s)
{
    return s->stopped;
}

int64_t ps_server_version(const ps_server *s)
{
    return s->version;
}

ps_store *ps_server_store(ps_server *s)
{
    return s->store;
}

void ps_server_destroy(ps_server **sp)
{
    if (!sp || !*sp) {
        return;
    }
    ps_server *s = *sp;
    for (uint32_t w = 0; s->held && w < s->cfg->nworkers; w++) {
        ps_segcopy_fini(&s->held[w].st);
    }
    ps_free(s->held);
    ps_free(s->pushed);
    ps_free(s->done);
    ps_free(s->out.data);
    ps_free(s->grads);
    ps_answer_fini(&s->ans);
    ps_codec_destroy(&s->pcodec);
    ps_free(s->psegs);
    ps_codec_destroy(&s->codec);
    ps_store_destroy(&s->store);
    ps_free(s);
    *sp = NULL;
}

/* Worker ranks name ranks of comm, one per worker: the replies go there. */
static int check_cfg(const ps_server_cfg *cfg, const ps_comm *comm)
{
    if (cfg->nworkers == 0) {
        PS_LOG(ERROR, "server: no workers to serve");
        return PS_EINVAL;
    }
    for (uint32_t w = 0; w < cfg->nworkers; w++) {
        int r = cfg->worker_ranks[w];
        if (r < 0 || r >= ps_comm_size(comm)) {
            PS_LOG(ERROR, "server: worker %u is rank %d, outside the %d ranks of its comm", w, r,
                   ps_comm_size(comm));
            return PS_EINVAL;
        }
    }
    return 0;
}

int ps_server_create(ps_server **out, const ps_server_cfg *cfg, ps_comm *comm)
{
    *out = NULL;
    int rc = check_cfg(cfg, comm);
    if (rc) {
        return rc;
    }
    ps_server *s = ps_calloc(1, sizeof *s);
    if (!s) {
        return PS_ENOMEM;
    }
    *s = (ps_server){.cfg = cfg, .comm = comm, .ckpt_clock = -1};
    if ((rc = ps_store_create(&s->store, &cfg->store))) {
        goto fail;
    }
    rc = PS_ENOMEM;
    if (ps_codec_create(&s->codec) || ps_codec_create(&s->pcodec) ||
        ps_answer_init(&s->ans, comm, s->codec, s->store, cfg->reply_chunk) ||
        !(s->pushed = ps_calloc(cfg->nworkers, sizeof *s->pushed)) ||
        !(s->done = ps_calloc(cfg->nworkers, sizeof *s->done)) ||
        !(s->held = ps_calloc(cfg->nworkers, sizeof *s->held)) ||
        !(s->psegs = ps_calloc(cfg->store.ntables ? cfg->store.ntables : 1, sizeof *s->psegs))) {
        goto fail;
    }
#ifdef PS_TESTING
    s->inject = getenv("ADAMPS_TEST_INJECT");
#endif
    s->lim = (ps_msg_limits){.tables = ps_store_limits(s->store),
                             .ntables = cfg->store.ntables,
                             .nworkers = cfg->nworkers};
    *out = s;
    return 0;
fail:
    ps_server_destroy(&s);
    return rc;
}

int ps_server_resume(ps_server *s, const ps_ckpt_manifest *m)
{
    int rc = ps_snapshot_load(s->store, s->cfg->ckpt_dir, m->clock, m->nservers, s->cfg->opt_name);
    if (rc == 0) {
        s->version = m->clock;
        for (uint32_t w = 0; w < s->cfg->nworkers; w++) {
            s->pushed[w] = m->clock;
        }
    }
    return rc;
}

/* Collective: loads the newest of cfg->resume that every rank can read
 * (the workers try the same list in the same order; the coordinator says
 * which was taken and why newer ones were skipped). */
static int resume_any(ps_server *s, ps_comm *comm)
{
    const ps_server_cfg *cfg = s->cfg;
    int rc = 0;
    for (uint32_t i = 0; i < cfg->nresume; i++) {
        rc = ps_comm_agree(comm, ps_server_resume(s, &cfg->resume[i]));
        if (rc != PS_ECKPT && rc != PS_EIO) {
            break;
        }
    }
    return rc;
}

/* After a wait gave up on a silent worker: what the server waited for. */
static void log_silent(const ps_server *s)
{
    int r = ps_comm_silent_rank(s->comm);
    for (uint32_t w = 0; w < s->cfg->nworkers; w++) {
        if (s->cfg->worker_ranks[w] == r) {
            PS_LOG(ERROR,
                   "server %u: worker %u (rank %d) fell silent after %lld pushes; version %lld "
                   "waits for it",
                   ps_store_server(s->store), w, r, (long long)s->pushed[w], (long long)s->version);
        }
    }
}

/* A stop signal reached this server: the coordinator decides the clock. */
static int pass_on_stop(ps_server *s)
{
    ps_ctrl m = {.kind = PS_CTRL_STOP_REQUEST, .text = ""};
    int to = s->cfg->worker_ranks[0];
    s->stop_asked = 1;
    PS_LOG(INFO, "got a stop signal; asking the coordinator (rank %d) to stop at a clock", to);
    int rc = ps_codec_encode_ctrl(s->codec, &m, &s->out);
    return rc ? rc : ps_comm_send(s->comm, to, PS_TAG_CTRL, &s->out);
}

int ps_server_run(const ps_server_cfg *cfg, ps_comm *comm)
{
    ps_server *s = NULL;
    int rc = ps_server_create(&s, cfg, comm);
    /* Start-up handshake: nobody sends before every rank is ready. */
    if ((rc = ps_comm_agree(comm, rc)) == 0) {
        rc = resume_any(s, comm);
    }
    while (rc == 0 && !ps_server_is_done(s)) {
        ps_comm_msg m;
        if ((rc = ps_comm_wait(comm, PS_ANY, PS_ANY, "pushes and pulls from the workers", &m)) ==
            0) {
            rc = ps_server_handle(s, &m);
        } else if (rc == PS_ETIMEDOUT) {
            log_silent(s);
        }
        if (rc == 0 && cfg->stop_flag && *cfg->stop_flag && !s->stop_asked) {
            rc = pass_on_stop(s);
        }
    }
    if (rc == 0 && ps_server_is_stopped(s)) {
        rc = PS_ESTOPPED;
    }
    ps_server_destroy(&s);
    return rc;
}
