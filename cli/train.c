/* adamps train: decides roles, sets up liveness (who watches whom, the
 * peer timeout), agrees on the data's shape, builds the model's table list,
 * prepares the checkpoint directory (lock, checks, sweep, what --resume
 * may continue from) and runs each rank as a server or a worker. */
#include <cblas.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/budget.h"
#include "cli/cli.h"
#include "cli/job.h"
#include "cli/meminfo.h"
#include "cli/resume.h"
#include "cli/summary.h"
#include "common/ckpt.h"
#include "common/comm.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/rng.h"
#include "data/labels.h"
#include "data/source.h"
#include "server/optim.h"
#include "server/server.h"
#include "worker/model.h"
#include "worker/train.h"

#define EVAL_BATCH 1000

typedef struct {
    int32_t rc;
    ps_source_spec spec;
} probe_msg;

/* Exit status for an rc: problems no retry can fix (usage, input, a
 * corrupt or foreign checkpoint, a full disk) are 2; a stop at a
 * checkpoint after a signal is 75 (EX_TEMPFAIL: run again with --resume);
 * the rest (a dead or silent peer, ...) are run failures (1), which
 * deploy/launch retries. */
static int exit_code(int rc)
{
    if (rc == PS_ESTOPPED) {
        return 75;
    }
    return rc == PS_ECONFIG || rc == PS_EFORMAT || rc == PS_EIO || rc == PS_ERANGE || rc == PS_ECKPT
               ? 2
               : 1;
}

/* SIGTERM or SIGUSR1 (preemption, the time limit): a checkpoint at the next
 * clock boundary every worker can reach, then exit 75. A second signal
 * ends the process at once. */
static volatile sig_atomic_t stop_flag;

static void on_stop_signal(int sig)
{
    if (stop_flag) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
    stop_flag = 1;
}

static void catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

typedef struct {
    int *node_of_rank, *is_server, *server_ranks, *worker_ranks;
    int nservers, nworkers, my_id;
    char (*label)[32];   /* per rank: "server 0", "worker 1", for messages */
    const char **labels; /* pointers into label */
} layout;

static int make_layout(ps_comm *comm, const ps_cfg *cfg, layout *l)
{
    int size = ps_comm_size(comm), rank = ps_comm_rank(comm), nnodes = 0;
    if (!(l->node_of_rank = ps_calloc((size_t)size, sizeof(int))) ||
        !(l->is_server = ps_calloc((size_t)size, sizeof(int))) ||
        !(l->server_ranks = ps_calloc((size_t)size, sizeof(int))) ||
        !(l->worker_ranks = ps_calloc((size_t)size, sizeof(int)))) {
        return PS_ENOMEM;
    }
    int rc = ps_comm_nodes(comm, l->node_of_rank, &nnodes);
    if (rc) {
        return rc;
    }
    l->nservers = cfg->servers ? (int)cfg->servers : nnodes;
    char err[512];
    if (ps_job_check_world(cfg, size, l->nservers, err, sizeof err)) {
        if (rank == 0) {
            fprintf(stderr, "adamps: %s\n", err);
        }
        return PS_ECONFIG;
    }
    if ((rc = ps_job_assign_roles(size, l->nservers, l->node_of_rank, nnodes, l->is_server))) {
        return rc;
    }
    l->nworkers = 0;
    int ns = 0;
    for (int r = 0; r < size; r++) {
        if (r == rank) {
            l->my_id = l->is_server[r] ? ns : l->nworkers;
        }
        if (l->is_server[r]) {
            l->server_ranks[ns++] = r;
        } else {
            l->worker_ranks[l->nworkers++] = r;
        }
    }
    return 0;
}

static void layout_fini(layout *l)
{
    ps_free(l->node_of_rank);
    ps_free(l->is_server);
    ps_free(l->server_ranks);
    ps_free(l->worker_ranks);
    ps_free(l->label);
    ps_free(l->labels);
}

/* Collective: the coordinator reads the data's shape, everyone gets it. */
static int agree_spec(ps_comm *comm, const ps_cfg *cfg, const layout *l, ps_source_spec *spec)
{
    probe_msg msg = {0};
    int root = l->worker_ranks[0];
    if (ps_comm_rank(comm) == root) {
        ps_source_cfg src;
        uint64_t room = cfg->max_memory;
        if (!room && ps_meminfo_node_available("", &room) != 0) {
            room = 0;
        }
        ps_job_source_cfg(cfg, &src);
        /* A scan stops at the first id no table in the budget could hold. */
        src.max_dim = ps_job_scan_limit(cfg, (uint32_t)l->nservers, room);
        msg.rc = ps_source_probe(&src, &msg.spec);
    }
    int rc = ps_comm_bcast(comm, root, &msg, sizeof msg);
    if (rc) {
        return rc;
    }
    *spec = msg.spec;
    return msg.rc;
}

/* Collective: each rank checks the memory plan of its node (or its own,
 * under --max-memory) before anything big is allocated. If any refuses, the
 * lowest refusing rank prints one line and all return PS_ECONFIG; else the
 * coordinator gets the plan's line for the run header in plan. */
static int check_memory(ps_comm *comm, const ps_cfg *cfg, const layout *l, const ps_budget_job *job,
                        char *plan, size_t len)
{
    int size = ps_comm_size(comm), rank = ps_comm_rank(comm);
    uint64_t avail = 0;
    if (!cfg->max_memory && ps_meminfo_node_available("", &avail) != 0) {
        avail = 0; /* unknown: nothing to check against */
    }
    ps_budget_world w = {.size = size, .is_server = l->is_server, .node_of_rank = l->node_of_rank};
    char msg[1024];
    int refuse = ps_budget_check(job, &w, rank, cfg->max_memory, avail, msg, sizeof msg);
    int *all = ps_calloc((size_t)size, sizeof *all);
    int rc = ps_comm_agree(comm, all ? 0 : PS_ENOMEM);
    if (rc == 0 && (rc = ps_comm_allgather_int(comm, refuse != 0, all)) == 0) {
        int first = 0;
        while (first < size && !all[first]) {
            first++;
        }
        if (first < size) {
            if (rank == first) {
                fprintf(stderr, "adamps: %s\n", msg);
            }
            rc = PS_ECONFIG;
        }
    }
    int node_ranks = 0;
    for (int r = 0; r < size; r++) {
        node_ranks += l->node_of_rank[r] == l->node_of_rank[rank];
    }
    ps_budget_describe(job, cfg->max_memory, avail, node_ranks, plan, len);
    ps_free(all);
    return rc;
}

/* Who watches whom (common/comm.h, liveness): a server its workers, a
 * worker the servers and the coordinator, the coordinator every rank. So
 * every wait has peers it can judge, and every rank is watched. */
static int set_liveness(ps_comm *comm, const ps_cfg *cfg, layout *l)
{
    int rank = ps_comm_rank(comm), n = 0;
    int *peers = ps_malloc(sizeof(int) * (size_t)ps_comm_size(comm));
    if (!peers) {
        return PS_ENOMEM;
    }
    int size = ps_comm_size(comm);
    int server = l->is_server[rank], coord = rank == l->worker_ranks[0];
    for (int r = 0; r < size; r++) {
        if (server ? !l->is_server[r] : l->is_server[r] || coord || r == l->worker_ranks[0]) {
            peers[n++] = r;
        }
    }
    ps_comm_set_timeout(comm, cfg->peer_timeout);
    int rc = ps_comm_set_peers(comm, peers, n);
    ps_free(peers);
    if (rc == 0 && (l->label = ps_calloc((size_t)size, sizeof *l->label)) &&
        (l->labels = ps_calloc((size_t)size, sizeof *l->labels))) {
        for (int s = 0, w = 0, r = 0; r < size; r++) {
            snprintf(l->label[r], sizeof l->label[r], l->is_server[r] ? "server %d" : "worker %d",
                     l->is_server[r] ? s++ : w++);
            l->labels[r] = l->label[r];
        }
        ps_comm_set_labels(comm, l->labels);
    }
    return rc;
}

/* The bytes one checkpoint of this model takes: every table's w, the
 * optimizer's state and the average per row, its last step, plus headers
 * and the small files. */
static uint64_t checkpoint_bytes(const ps_cfg *cfg, const ps_table_desc *tables, uint32_t n,
                                 const layout *l)
{
    uint64_t arrays = 1 + (uint64_t)ps_opt_nstate(cfg->opt.kind) + (cfg->temporal_averaging > 0);
    uint64_t bytes = 0;
    for (uint32_t t = 0; t < n; t++) {
        bytes += tables[t].rows * (tables[t].width * sizeof(float) * arrays + sizeof(int64_t));
    }
    return bytes + (uint64_t)(l->nservers + l->nworkers + 2) * 16384;
}

/* What the coordinator tells every rank about the checkpoint directory. */
typedef struct {
    int32_t rc;
    uint32_t nresume;
    ps_ckpt_manifest resume[PS_CKPT_MAX_LIST];
} ckpt_plan;

/* Coordinator, with --checkpoint-dir: the directory is created and checked
 * now, not at the first checkpoint; this job locks it (*lock_fd) and
 * sweeps what crashed writers left; with --resume, the checkpoints it may
 * continue from. */
static int prepare_ckpt(const ps_cfg *cfg, const layout *l, uint64_t need, time_t job_start,
                        ckpt_plan *plan, int *lock_fd)
{
    const char *dir = cfg->ckpt_dir;
    int rc = ps_ckpt_prepare_dir(dir, need);
    if (rc || (rc = ps_ckpt_lock(dir, 5.0, lock_fd))) {
        return rc;
    }
    ps_ckpt_sweep(dir, job_start);
    if (cfg->resume) {
        return ps_resume_plan(cfg, (uint32_t)l->nworkers, plan->resume, PS_CKPT_MAX_LIST,
                              &plan->nresume);
    }
    ps_ckpt_manifest old;
    uint32_t n = 0;
    if (ps_ckpt_list(dir, &old, 1, &n) == 0 && n) {
        PS_LOG(WARN,
               "%s holds checkpoints of an earlier run (the newest ckpt-%lld); without "
               "--resume this run starts over and replaces them as it writes its own",
               dir, (long long)old.clock);
    }
    return 0;
}

/* A run id for logs and metrics to meet on: a hash of the wall clock in
 * nanoseconds, the pid and the host, as 16 hex digits. */
static void make_run_id(char *buf, size_t len)
{
    struct timespec ts;
    char host[256] = "";
    uint64_t h = 1469598103934665603ULL; /* FNV-1a over the host name */
    clock_gettime(CLOCK_REALTIME, &ts);
    gethostname(host, sizeof host - 1);
    for (const char *p = host; *p; p++) {
        h = (h ^ (uint8_t)*p) * 0x100000001b3ULL;
    }
    uint64_t id = ps_rng_hash((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec,
                              (uint64_t)getpid(), h, 0);
    snprintf(buf, len, "%016llx", (unsigned long long)id);
}

/* The lowest rank of each node warns when OpenBLAS's threads times the
 * node's ranks exceed its cores. */
static void warn_blas_threads(ps_comm *comm, const layout *l)
{
    int rank = ps_comm_rank(comm), ranks = 0, first = -1;
    for (int r = 0; r < ps_comm_size(comm); r++) {
        if (l->node_of_rank[r] == l->node_of_rank[rank]) {
            first = first < 0 ? r : first;
            ranks++;
        }
    }
    char msg[512], host[256] = "";
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    gethostname(host, sizeof host - 1);
    if (first == rank && ps_job_blas_oversubscribed(openblas_get_num_threads(), ranks, (int)cores,
                                                    msg, sizeof msg)) {
        PS_LOG(WARN, "node %s: %s", host, msg);
    }
}

static int run(ps_comm *comm, const ps_cfg *cfg, const char *header, time_t job_start)
{
    layout l = {0};
    static ckpt_plan ckpt;
    ps_source_spec spec;
    ps_comm *workers = NULL;
    int lock_fd = -1;
    int rank = ps_comm_rank(comm);
    int rc = make_layout(comm, cfg, &l);
    if (rc == 0) {
        rc = set_liveness(comm, cfg, &l);
    }
    if (rc == 0) {
        rc = agree_spec(comm, cfg, &l, &spec);
    }
    /* Config and data errors are the same on every rank here: leave cleanly. */
    if ((rc = ps_comm_agree(comm, rc))) {
        goto done;
    }
    int server = l.is_server[rank], coord = rank == l.worker_ranks[0];
    ps_model_cfg mcfg;
    ps_job_model_cfg(cfg, &spec, server ? 0 : (uint32_t)l.my_id, EVAL_BATCH, &mcfg);
    /* The table list only: the model's buffers are the worker's business. */
    ps_table_desc tables[PS_MODEL_MAX_TABLES];
    uint32_t ntables = 0;
    ps_budget_job budget;
    char budget_line[512];
    rc = ps_model_tables(&mcfg, tables, PS_MODEL_MAX_TABLES, &ntables);
    if ((rc = ps_comm_agree(comm, rc))) {
        goto done;
    }
    ps_job_budget(cfg, &spec, &mcfg, tables, ntables, (uint32_t)l.nservers, (uint32_t)l.nworkers,
                  EVAL_BATCH, &budget);
    if ((rc = check_memory(comm, cfg, &l, &budget, budget_line, sizeof budget_line))) {
        goto done;
    }
    memset(&ckpt, 0, sizeof ckpt);
    if (coord && cfg->ckpt_dir[0]) {
        ckpt.rc = prepare_ckpt(cfg, &l, checkpoint_bytes(cfg, tables, ntables, &l), job_start,
                               &ckpt, &lock_fd);
    }
    if ((rc = ps_comm_bcast(comm, l.worker_ranks[0], &ckpt, sizeof ckpt)) || (rc = ckpt.rc) ||
        (rc = ps_comm_split(comm, server ? -1 : 0, &workers))) {
        goto done;
    }
    const volatile sig_atomic_t *flag = cfg->ckpt_dir[0] ? &stop_flag : NULL;
    static char run_id[32];
    if (coord) {
        make_run_id(run_id, sizeof run_id);
    }
    if (coord && !cfg->quiet) {
        /* Unscanned libsvm: the workers count their own parts. */
        char ntrain[96], labels[200] = "";
        snprintf(ntrain, sizeof ntrain, spec.ntrain ? "%llu train" : "%llu bytes of training lines",
                 (unsigned long long)(spec.ntrain ? spec.ntrain : spec.train_bytes));
        if (spec.nlabels) {
            char list[160];
            ps_labels_format(spec.labels, spec.nlabels, list, sizeof list);
            snprintf(labels, sizeof labels, " (labels %s)", list);
        }
        PS_LOG(INFO,
               "adamps %s train, run %s: %d servers, %d workers; data: %llu features, %u "
               "classes%s, %s / %s%llu %s samples",
               PS_VERSION, run_id, l.nservers, l.nworkers, (unsigned long long)spec.dim,
               spec.nclasses, labels, ntrain,
               cfg->holdout > 0 && spec.sparse && !spec.ntrain ? "about " : "",
               (unsigned long long)spec.ntest, cfg->holdout > 0 ? "held-out" : "test");
        PS_LOG(INFO, "config: %s", header);
        /* OpenBLAS picks its kernel at run time; an old build on a new CPU
         * falls back to a slow generic one (see README, Performance). */
        PS_LOG(INFO, "OpenBLAS %s kernel, %d thread(s) per worker", openblas_get_corename(),
               openblas_get_num_threads());
        for (uint32_t t = 0; t < ntables; t++) {
            PS_LOG(INFO, "table %u %s: %llu x %u, init %s", t, tables[t].name,
                   (unsigned long long)tables[t].rows, tables[t].width,
                   ps_init_name(tables[t].init));
        }
        PS_LOG(INFO, "%s", budget_line);
    }
    char advice[256];
    if (coord && ps_cfg_warning(cfg, advice, sizeof advice)) {
        PS_LOG(WARN, "%s", advice); /* even with --quiet */
    }
    warn_blas_threads(comm, &l);
    if (server) {
        ps_server_cfg sc;
        ps_job_server_cfg(cfg, &sc);
        sc.nworkers = (uint32_t)l.nworkers;
        sc.worker_ranks = l.worker_ranks;
        sc.config_text = header;
        sc.resume = ckpt.resume;
        sc.nresume = ckpt.nresume;
        sc.stop_flag = flag;
        sc.store.tables = tables;
        sc.store.ntables = ntables;
        sc.store.server = (uint32_t)l.my_id;
        sc.store.nservers = (uint32_t)l.nservers;
        rc = ps_server_run(&sc, comm);
    } else {
        static ps_worker_cfg wc; /* the spec's label list is large */
        static ps_job_pairs pairs;
        ps_job_worker_cfg(cfg, &wc);
        ps_job_config_pairs(cfg, &pairs);
        wc.model = mcfg;
        wc.spec = spec;
        wc.config_text = header;
        wc.config = pairs.kv;
        wc.nconfig = pairs.n;
        wc.run_id = run_id;
        wc.resume = ckpt.resume;
        wc.nresume = ckpt.nresume;
        wc.stop_flag = flag;
        wc.nservers_running = (uint32_t)l.nservers;
        wc.client = (ps_client_cfg){.tables = tables,
                                    .ntables = ntables,
                                    .nservers = (uint32_t)l.nservers,
                                    .server_ranks = l.server_ranks,
                                    .shard = cfg->shard,
                                    .worker = (uint32_t)l.my_id,
                                    .nworkers = (uint32_t)l.nworkers,
                                    .coordinator_rank = l.worker_ranks[0]};
        rc = ps_worker_run(&wc, comm, workers);
    }
    /* The last wait: nobody finalises while a peer may still need it, and a
     * rank that falls silent now is named like at any other time. */
    if ((rc == 0 || rc == PS_ESTOPPED) && (rc = ps_comm_agree(comm, rc)) == PS_ESTOPPED && coord) {
        PS_LOG(INFO, "stopped after a signal; exit 75");
    }
    if (rc == 0) {
        ps_summary_cfg sum = {.is_server = l.is_server,
                              .coordinator = l.worker_ranks[0],
                              .metrics = cfg->metrics,
                              .run_id = run_id,
                              .quiet = cfg->quiet};
        rc = ps_summary_run(comm, &sum);
    }
    if (rc && rc != PS_ESTOPPED) {
        /* Peers may be blocked waiting on this rank: only an abort ends them. */
        PS_LOG(ERROR, "%s %d failed: %s; aborting the job", server ? "server" : "worker", l.my_id,
               ps_strerror(rc));
        ps_comm_abort(comm, exit_code(rc));
    }
done:
    ps_ckpt_unlock(&lock_fd);
    ps_comm_destroy(&workers);
    ps_comm_set_labels(comm, NULL); /* they go with the layout */
    layout_fini(&l);
    return rc;
}

int ps_cli_train(const ps_cfg *cfg, int *argc, char ***argv)
{
    /* Temp files older than this are no live writer's (the sweep). */
    time_t job_start = time(NULL);
    ps_comm *comm = NULL;
    ps_log_set_json(cfg->log_json);
    /* Before start-up, not at the first clock: a preemption signal during
     * a slow start (loading, planning) must still end in exit 75, not in
     * SIGUSR1's default action. The flag is read at the first clock. */
    if (cfg->ckpt_dir[0]) {
        catch_stop_signals();
    }
    if (ps_comm_init(&comm, argc, argv)) {
        return 1;
    }
    static char header[8192];
    ps_cfg_format(cfg, header, sizeof header);
    int rc = run(comm, cfg, header, job_start);
    ps_comm_destroy(&comm);
    return rc ? exit_code(rc) : 0;
}
