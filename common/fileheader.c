/* FileHeader <-> ps_file_header. Part of the codec layer: one of the only
 * files that include the generated protobuf-c code (see fileheader.h). */
#include "common/fileheader.h"

#include <stdio.h>
#include <string.h>

#include "adamps.pb-c.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"

/* protobuf-c reports an allocation failure and a parse error the same way
 * (NULL), so the allocator remembers whether it failed. Routing through
 * ps_malloc lets the OOM tests reach the decoder. */
typedef struct {
    int oom;
} pb_alloc_state;

static void *pb_alloc(void *data, size_t size)
{
    void *p = ps_malloc(size);
    if (!p) {
        ((pb_alloc_state *)data)->oom = 1;
    }
    return p;
}

static void pb_free(void *data, void *p)
{
    (void)data;
    ps_free(p);
}

/* The numeric fields that keep the same name in ps_file_table and
 * TableInfo, and in ps_file_header and FileHeader: one list, so the encoder
 * and the decoder cannot drift apart. Strings, tables and counts, whose
 * handling differs, are copied by hand. */
#define TABLE_NUMBERS(X) X(rows) X(width) X(first_slot) X(nslots) X(nstate)
#define MODEL_NUMBERS(X)                                                                           \
    X(in_dim) X(nclasses) X(sparse_input) X(hash_bits) X(hash_fingerprint) X(averaged) X(latent)
#define HEADER_NUMBERS(X)                                                                          \
    X(format_version)                                                                              \
    X(payload_bytes)                                                                               \
    X(crc32) X(clock) X(rank) X(nservers) X(nworkers) X(shard_mode) X(step) X(shard_format)

int ps_fileheader_encode(const ps_file_header *h, ps_bytes *out)
{
    int rc = 0;
    Adamps__TableInfo *infos = NULL;
    Adamps__TableInfo **ptrs = NULL;

    if (!memchr(h->kind, '\0', sizeof h->kind)) {
        PS_LOG(ERROR, "file header: kind is not NUL-terminated within %zu bytes", sizeof h->kind);
        rc = PS_EINVAL;
        goto done;
    }
    if (h->ntables) {
        infos = ps_calloc(h->ntables, sizeof *infos);
        ptrs = ps_calloc(h->ntables, sizeof *ptrs);
        if (!infos || !ptrs) {
            rc = PS_ENOMEM;
            goto done;
        }
    }
    for (size_t i = 0; i < h->ntables; i++) {
        const ps_file_table *t = &h->tables[i];
        if (!memchr(t->name, '\0', sizeof t->name)) {
            PS_LOG(ERROR, "file header: table %zu name is not NUL-terminated within %zu bytes", i,
                   sizeof t->name);
            rc = PS_EINVAL;
            goto done;
        }
        adamps__table_info__init(&infos[i]);
        /* protobuf-c only reads the strings while packing. */
        infos[i].name = (char *)t->name;
#define TO_INFO(f) infos[i].f = t->f;
        TABLE_NUMBERS(TO_INFO)
#undef TO_INFO
        ptrs[i] = &infos[i];
    }

    Adamps__ModelInfo model = ADAMPS__MODEL_INFO__INIT;
    if (h->has_model) {
        const ps_file_model *m = &h->model;
        if (!memchr(m->kind, '\0', sizeof m->kind)) {
            PS_LOG(ERROR, "file header: model kind is not NUL-terminated within %zu bytes",
                   sizeof m->kind);
            rc = PS_EINVAL;
            goto done;
        }
        if (m->nhidden > PS_FILE_MAX_HIDDEN || m->nconv > PS_FILE_MAX_HIDDEN ||
            m->nlabels > PS_FILE_MAX_LABELS || !memchr(m->activation, '\0', sizeof m->activation)) {
            PS_LOG(ERROR,
                   "file header: model has %u hidden layers and %u convolutions (at most %d "
                   "each) and %u labels (at most %d), or an activation name that is not "
                   "NUL-terminated",
                   m->nhidden, m->nconv, PS_FILE_MAX_HIDDEN, m->nlabels, PS_FILE_MAX_LABELS);
            rc = PS_EINVAL;
            goto done;
        }
        model.kind = (char *)m->kind;
#define TO_MODEL(f) model.f = m->f;
        MODEL_NUMBERS(TO_MODEL)
#undef TO_MODEL
        model.n_hidden = m->nhidden;
        model.hidden = (uint32_t *)m->hidden;
        model.activation = (char *)m->activation;
        model.n_conv = m->nconv;
        model.conv = (uint32_t *)m->conv;
        model.n_labels = m->nlabels;
        model.labels = (int32_t *)m->labels;
    }

    Adamps__FileHeader msg = ADAMPS__FILE_HEADER__INIT;
#define TO_MSG(f) msg.f = h->f;
    HEADER_NUMBERS(TO_MSG)
#undef TO_MSG
    msg.kind = (char *)h->kind;
    msg.config = h->config ? h->config : (char *)"";
    msg.n_tables = h->ntables;
    msg.tables = ptrs;
    msg.optimizer = (char *)h->optimizer;
    msg.model = h->has_model ? &model : NULL;

    size_t need = adamps__file_header__get_packed_size(&msg);
    void *data = out->data;
    rc = ps_grow(&data, &out->cap, need, 1);
    out->data = data;
    if (rc) {
        goto done;
    }
    out->len = adamps__file_header__pack(&msg, out->data);

done:
    ps_free(ptrs);
    ps_free(infos);
    return rc;
}

/* Decode errors are logged unless the caller asked for quiet (what NULL). */
#define DECODE_LOG(...)                                                                            \
    do {                                                                                           \
        if (what) {                                                                                \
            PS_LOG(ERROR, __VA_ARGS__);                                                            \
        }                                                                                          \
    } while (0)

int ps_fileheader_decode(const char *what, const void *buf, size_t len, ps_file_header *out)
{
    int rc = 0;
    pb_alloc_state st = {0};
    ProtobufCAllocator alloc = {pb_alloc, pb_free, &st};

    memset(out, 0, sizeof *out);
    Adamps__FileHeader *msg = adamps__file_header__unpack(&alloc, len, buf);
    if (!msg) {
        if (st.oom) {
            rc = PS_ENOMEM;
        } else {
            DECODE_LOG("%s: file header (%zu bytes) does not parse as a FileHeader message", what,
                       len);
            rc = PS_ECKPT;
        }
        goto done;
    }
    if (strlen(msg->kind) >= sizeof out->kind) {
        DECODE_LOG("%s: file header kind is %zu bytes long, at most %zu allowed", what,
                   strlen(msg->kind), sizeof out->kind - 1);
        rc = PS_ECKPT;
        goto free_msg;
    }
    for (size_t i = 0; i < msg->n_tables; i++) {
        if (strlen(msg->tables[i]->name) >= sizeof out->tables[0].name) {
            DECODE_LOG("%s: file header table %zu name is %zu bytes long, at most %zu allowed",
                       what, i, strlen(msg->tables[i]->name), sizeof out->tables[0].name - 1);
            rc = PS_ECKPT;
            goto free_msg;
        }
    }
    const Adamps__ModelInfo *model = msg->model;
    if (model && strlen(model->kind) >= sizeof out->model.kind) {
        DECODE_LOG("%s: file header field model.kind is %zu bytes long, at most %zu allowed", what,
                   strlen(model->kind), sizeof out->model.kind - 1);
        rc = PS_ECKPT;
        goto free_msg;
    }
    if (model && (model->n_hidden > PS_FILE_MAX_HIDDEN || model->n_conv > PS_FILE_MAX_HIDDEN)) {
        DECODE_LOG("%s: file header field model.hidden or model.conv has %zu / %zu layers, at most "
                   "%d allowed",
                   what, model->n_hidden, model->n_conv, PS_FILE_MAX_HIDDEN);
        rc = PS_ECKPT;
        goto free_msg;
    }
    if (model && model->n_labels > PS_FILE_MAX_LABELS) {
        DECODE_LOG("%s: file header field model.labels has %zu labels, at most %d allowed", what,
                   model->n_labels, PS_FILE_MAX_LABELS);
        rc = PS_ECKPT;
        goto free_msg;
    }
    if (model && strlen(model->activation) >= sizeof out->model.activation) {
        DECODE_LOG("%s: file header field model.activation is %zu bytes long, at most %zu allowed",
                   what, strlen(model->activation), sizeof out->model.activation - 1);
        rc = PS_ECKPT;
        goto free_msg;
    }

    out->config = ps_strdup(msg->config);
    if (!out->config) {
        rc = PS_ENOMEM;
        goto free_msg;
    }
    if (msg->n_tables) {
        out->tables = ps_calloc(msg->n_tables, sizeof *out->tables);
        if (!out->tables) {
            rc = PS_ENOMEM;
            goto free_msg;
        }
    }
    out->ntables = msg->n_tables;
    for (size_t i = 0; i < msg->n_tables; i++) {
        const Adamps__TableInfo *in = msg->tables[i];
        ps_file_table *t = &out->tables[i];
        strcpy(t->name, in->name);
#define FROM_INFO(f) t->f = in->f;
        TABLE_NUMBERS(FROM_INFO)
#undef FROM_INFO
    }
#define FROM_MSG(f) out->f = msg->f;
    HEADER_NUMBERS(FROM_MSG)
#undef FROM_MSG
    strcpy(out->kind, msg->kind);
    snprintf(out->optimizer, sizeof out->optimizer, "%s", msg->optimizer);
    if (model) {
        ps_file_model *m = &out->model;
        out->has_model = 1;
        strcpy(m->kind, model->kind);
#define FROM_MODEL(f) m->f = model->f;
        MODEL_NUMBERS(FROM_MODEL)
#undef FROM_MODEL
        m->nhidden = (uint32_t)model->n_hidden;
        for (size_t i = 0; i < model->n_hidden; i++) {
            m->hidden[i] = model->hidden[i];
        }
        strcpy(m->activation, model->activation);
        m->nconv = (uint32_t)model->n_conv;
        for (size_t i = 0; i < model->n_conv; i++) {
            m->conv[i] = model->conv[i];
        }
        m->nlabels = (uint32_t)model->n_labels;
        if (model->n_labels) {
            memcpy(m->labels, model->labels, model->n_labels * sizeof *m->labels);
        }
    }

free_msg:
    if (rc) {
        ps_free(out->config);
        out->config = NULL;
    }
    adamps__file_header__free_unpacked(msg, &alloc);
done:
    return rc;
}
