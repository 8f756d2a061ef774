/* adamps train: decides roles, agrees on the data's shape, builds the
 * model's table list and runs each rank as a server or a worker. */
#include <cblas.h>
#include <stdio.h>
#include <string.h>

#include "cli/budget.h"
#include "cli/cli.h"
#include "cli/job.h"
#include "cli/meminfo.h"
#include "common/ckpt.h"
#include "common/comm.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "data/source.h"
#include "server/server.h"
#include "worker/model.h"
#include "worker/train.h"

#define EVAL_BATCH 1000

typedef struct {
    int32_t rc;
    ps_source_spec spec;
} probe_msg;

/* Exit status for an rc: problems found before any training are usage or
 * input errors (2); the rest are run failures (1). */
static int exit_code(int rc)
{
    return rc == PS_ECONFIG || rc == PS_EFORMAT || rc == PS_EIO || rc == PS_ERANGE || rc == PS_ECKPT
               ? 2
               : 1;
}

typedef struct {
    int *node_of_rank, *is_server, *server_ranks, *worker_ranks;
    int nservers, nworkers, my_id;
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

/* --resume: every rank reads the manifest (a small file on the shared
 * checkpoint directory) and checks it fits this job. */
static int read_resume(const ps_cfg *cfg, const layout *l, ps_ckpt_manifest *m)
{
    m->clock = -1;
    if (!cfg->resume) {
        return 0;
    }
    int rc = ps_ckpt_read_manifest(cfg->ckpt_dir, m);
    if (rc == 0 && m->nworkers != (uint32_t)l->nworkers) {
        PS_LOG(ERROR,
               "%s/MANIFEST: the checkpoint was written by %u workers, this job has %d; "
               "resume with the same number of workers (servers may differ)",
               cfg->ckpt_dir, m->nworkers, l->nworkers);
        rc = PS_ECKPT;
    }
    return rc;
}

static int run(ps_comm *comm, const ps_cfg *cfg, const char *header)
{
    layout l = {0};
    ps_ckpt_manifest resume = {.clock = -1};
    ps_source_spec spec;
    ps_comm *workers = NULL;
    int rank = ps_comm_rank(comm);
    int rc = make_layout(comm, cfg, &l);
    if (rc == 0) {
        rc = agree_spec(comm, cfg, &l, &spec);
    }
    if (rc == 0) {
        rc = read_resume(cfg, &l, &resume);
    }
    /* Config and data errors are the same on every rank here: leave cleanly. */
    if ((rc = ps_comm_agree(comm, rc))) {
        goto done;
    }
    int server = l.is_server[rank];
    ps_model_cfg mcfg;
    ps_job_model_cfg(cfg, &spec, server ? 0 : (uint32_t)l.my_id, EVAL_BATCH, &mcfg);
    /* The table list only: the model's buffers are the worker's business. */
    ps_table_desc tables[PS_MODEL_MAX_TABLES];
    uint32_t ntables = 0;
    ps_budget_job plan;
    char plan_line[512];
    if ((rc = ps_comm_agree(comm, ps_model_tables(&mcfg, tables, PS_MODEL_MAX_TABLES, &ntables)))) {
        goto done;
    }
    ps_job_budget(cfg, &spec, &mcfg, tables, ntables, (uint32_t)l.nservers, (uint32_t)l.nworkers,
                  EVAL_BATCH, &plan);
    if ((rc = check_memory(comm, cfg, &l, &plan, plan_line, sizeof plan_line)) ||
        (rc = ps_comm_split(comm, server ? -1 : 0, &workers))) {
        goto done;
    }
    if (rank == l.worker_ranks[0] && !cfg->quiet) {
        /* Unscanned libsvm: the workers count their own parts. */
        char ntrain[96];
        snprintf(ntrain, sizeof ntrain, spec.ntrain ? "%llu train" : "%llu bytes of training lines",
                 (unsigned long long)(spec.ntrain ? spec.ntrain : spec.train_bytes));
        PS_LOG(INFO,
               "adamps %s train: %d servers, %d workers; data: %llu features, %u classes, "
               "%s / %llu test samples",
               PS_VERSION, l.nservers, l.nworkers, (unsigned long long)spec.dim, spec.nclasses,
               ntrain, (unsigned long long)spec.ntest);
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
        PS_LOG(INFO, "%s", plan_line);
    }
    char advice[256];
    if (rank == l.worker_ranks[0] && ps_cfg_warning(cfg, advice, sizeof advice)) {
        PS_LOG(WARN, "%s", advice); /* even with --quiet */
    }
    if (server) {
        ps_server_cfg sc;
        ps_job_server_cfg(cfg, &sc);
        sc.nworkers = (uint32_t)l.nworkers;
        sc.worker_ranks = l.worker_ranks;
        sc.config_text = header;
        sc.resume_clock = resume.clock;
        sc.resume_nservers = resume.nservers;
        sc.store.tables = tables;
        sc.store.ntables = ntables;
        sc.store.server = (uint32_t)l.my_id;
        sc.store.nservers = (uint32_t)l.nservers;
        rc = ps_server_run(&sc, comm);
    } else {
        ps_worker_cfg wc;
        ps_job_worker_cfg(cfg, &wc);
        wc.model = mcfg;
        wc.spec = spec;
        wc.config_text = header;
        wc.resume_clock = resume.clock;
        wc.nservers_running = (uint32_t)l.nservers;
        wc.client = (ps_client_cfg){.tables = tables,
                                    .ntables = ntables,
                                    .nservers = (uint32_t)l.nservers,
                                    .server_ranks = l.server_ranks,
                                    .shard = cfg->shard,
                                    .worker = (uint32_t)l.my_id,
                                    .nworkers = (uint32_t)l.nworkers};
        rc = ps_worker_run(&wc, comm, workers);
    }
    if (rc) {
        /* Peers may be blocked waiting on this rank: only an abort ends them. */
        PS_LOG(ERROR, "%s %d failed: %s; aborting the job", server ? "server" : "worker", l.my_id,
               ps_strerror(rc));
        ps_comm_abort(comm, exit_code(rc));
    }
done:
    ps_comm_destroy(&workers);
    layout_fini(&l);
    return rc;
}

int ps_cli_train(const ps_cfg *cfg, int *argc, char ***argv)
{
    ps_comm *comm = NULL;
    ps_log_set_json(cfg->log_json);
    if (ps_comm_init(&comm, argc, argv)) {
        return 1;
    }
    static char header[8192];
    ps_cfg_format(cfg, header, sizeof header);
    int rc = run(comm, cfg, header);
    ps_comm_destroy(&comm);
    return rc ? exit_code(rc) : 0;
}
