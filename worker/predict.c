#include "worker/predict.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/afile.h"
#include "common/err.h"
#include "common/file.h"
#include "common/log.h"
#include "common/mem.h"
#include "data/npy.h"
#include "data/source.h"

#define MAX_TABLES (2 * (PS_MODEL_MAX_HIDDEN + 1))
/* model.json is a few KB (the config line is the longest part); anything
 * near this is not one of ours. */
#define MAX_JSON_BYTES ((size_t)1 << 24)
#define MAX_JSON_DEPTH 32
/* hash_bits beyond this cannot index a table in memory. */
#define MAX_HASH_BITS 40
#define PATH_LEN (PS_SOURCE_PATH + 320)

typedef struct {
    char name[32];
    char file[256];
    uint64_t rows, width;
} saved_table;

/* What model.json says. */
typedef struct {
    ps_model_kind kind;
    uint64_t in_dim, nclasses, sparse_input, hash_bits;
    uint32_t nhidden;
    uint32_t hidden[PS_MODEL_MAX_HIDDEN];
    uint32_t ntables;
    saved_table tables[MAX_TABLES];
} saved_meta;

struct ps_predictor {
    ps_model *model;
    uint32_t hash_bits;
    uint32_t ntables;
    float *table[MAX_TABLES];  /* whole tables, rows x width, from the .npy files */
    float *gather[MAX_TABLES]; /* one chunk's rows of a table the chunk needs only part of */
    size_t gather_cap[MAX_TABLES];
    const float *params[MAX_TABLES];
    ps_keylist keys[MAX_TABLES];
};

/* ---- a small strict JSON reader for model.json ---- */

typedef struct {
    const char *path; /* DIR/model.json, for messages */
    const char *start, *p, *end;
} json;

static int json_line(const json *j)
{
    int line = 1;
    for (const char *q = j->start; q < j->p; q++) {
        line += *q == '\n';
    }
    return line;
}

static int json_bad(const json *j, const char *field, const char *why)
{
    PS_LOG(ERROR, "%s: field \"%s\": %s (line %d)", j->path, field, why, json_line(j));
    return PS_EFORMAT;
}

static void json_ws(json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) {
        j->p++;
    }
}

static int json_expect(json *j, char c, const char *field, const char *why)
{
    json_ws(j);
    if (j->p >= j->end || *j->p != c) {
        return json_bad(j, field, why);
    }
    j->p++;
    return 0;
}

static int put_byte(json *j, const char *field, char *buf, size_t cap, size_t *n, unsigned c)
{
    if (!buf) {
        return 0;
    }
    if (*n + 1 >= cap) {
        return json_bad(j, field, "string too long");
    }
    buf[(*n)++] = (char)c;
    return 0;
}

static int hex4(const char *s, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16) {
            return -1;
        }
        *v = *v << 4 | d;
    }
    return 0;
}

/* A string into buf (cap bytes, NUL-terminated), or skipped when buf is
 * NULL. Escapes are decoded; \uXXXX becomes UTF-8 (surrogates are not
 * paired: no field we read holds them). */
static int json_string(json *j, const char *field, char *buf, size_t cap)
{
    json_ws(j);
    if (j->p >= j->end || *j->p != '"') {
        return json_bad(j, field, "expected a string");
    }
    j->p++;
    size_t n = 0;
    int rc = 0;
    for (;;) {
        if (j->p >= j->end) {
            return json_bad(j, field, "unterminated string");
        }
        unsigned c = (unsigned char)*j->p++;
        if (c == '"') {
            break;
        }
        if (c < 0x20) {
            return json_bad(j, field, "control character inside a string");
        }
        if (c == '\\') {
            if (j->p >= j->end) {
                return json_bad(j, field, "unterminated string");
            }
            char e = *j->p++;
            const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
            const char *at = e ? strchr(from, e) : NULL;
            if (at) {
                c = (unsigned char)to[at - from];
            } else if (e == 'u') {
                if (j->end - j->p < 4 || hex4(j->p, &c)) {
                    return json_bad(j, field, "bad \\u escape");
                }
                j->p += 4;
                if (c >= 0x80) {
                    /* Two or three UTF-8 bytes; the last one goes out below. */
                    if (c >= 0x800) {
                        rc = put_byte(j, field, buf, cap, &n, 0xe0 | c >> 12);
                        rc = rc ? rc : put_byte(j, field, buf, cap, &n, 0x80 | (c >> 6 & 0x3f));
                    } else {
                        rc = put_byte(j, field, buf, cap, &n, 0xc0 | c >> 6);
                    }
                    c = 0x80 | (c & 0x3f);
                }
            } else {
                return json_bad(j, field, "bad escape in a string");
            }
        }
        if (rc || (rc = put_byte(j, field, buf, cap, &n, c))) {
            return rc;
        }
    }
    if (buf) {
        buf[n] = '\0';
    }
    return 0;
}

/* A non-negative integer <= max. */
static int json_uint(json *j, const char *field, uint64_t max, uint64_t *v)
{
    json_ws(j);
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') {
        return json_bad(j, field, "expected a non-negative integer");
    }
    if (*j->p == '0' && j->end - j->p > 1 && j->p[1] >= '0' && j->p[1] <= '9') {
        return json_bad(j, field, "number with a leading zero");
    }
    uint64_t x = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        unsigned d = (unsigned)(*j->p++ - '0');
        if (x > (UINT64_MAX - d) / 10) {
            return json_bad(j, field, "integer overflows 64 bits");
        }
        x = x * 10 + d;
    }
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E')) {
        return json_bad(j, field, "expected an integer, not a fraction");
    }
    if (x > max) {
        char why[96];
        snprintf(why, sizeof why, "%" PRIu64 " is out of range (at most %" PRIu64 ")", x, max);
        return json_bad(j, field, why);
    }
    *v = x;
    return 0;
}

/* Before each member or element of an object or array whose opening
 * bracket was read: 1 when another one follows (its separator consumed),
 * 0 after the closing bracket, or a negative PS_E* code. */
static int json_more(json *j, char close, unsigned *count, const char *field)
{
    json_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return 0;
    }
    if (*count > 0) {
        if (j->p >= j->end || *j->p != ',') {
            return json_bad(j, field, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
        }
        j->p++;
    }
    (*count)++;
    return 1;
}

/* The key of an object member and its ':'. */
static int json_key(json *j, const char *field, char *key, size_t cap)
{
    int rc = json_string(j, field, key, cap);
    return rc ? rc : json_expect(j, ':', field, "expected ':' after a key");
}

/* Skips any value (fields we do not read). */
static int json_skip(json *j, const char *field, int depth)
{
    if (depth > MAX_JSON_DEPTH) {
        return json_bad(j, field, "nested too deeply");
    }
    json_ws(j);
    if (j->p >= j->end) {
        return json_bad(j, field, "expected a value, found the end of the file");
    }
    char c = *j->p;
    int rc = 0;
    if (c == '"') {
        return json_string(j, field, NULL, 0);
    }
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        unsigned count = 0;
        j->p++;
        while ((rc = json_more(j, close, &count, field)) > 0) {
            if ((c == '{' && (rc = json_key(j, field, NULL, 0))) ||
                (rc = json_skip(j, field, depth + 1))) {
                return rc;
            }
        }
        return rc;
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(words[i]);
        if ((size_t)(j->end - j->p) >= len && memcmp(j->p, words[i], len) == 0) {
            j->p += len;
            return 0;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        const char *s = j->p;
        int digits = 0;
        while (j->p < j->end && *j->p && strchr("+-.eE0123456789", *j->p)) {
            digits += *j->p >= '0' && *j->p <= '9';
            j->p++;
        }
        return digits ? 0 : (j->p = s, json_bad(j, field, "malformed number"));
    }
    return json_bad(j, field, "unexpected character");
}

static int parse_hidden(json *j, saved_meta *m)
{
    unsigned count = 0;
    int rc = json_expect(j, '[', "hidden", "expected an array of layer widths");
    while (rc == 0 && (rc = json_more(j, ']', &count, "hidden")) > 0) {
        uint64_t w;
        if (count > PS_MODEL_MAX_HIDDEN) {
            return json_bad(j, "hidden", "more hidden layers than adamps supports (8)");
        }
        if ((rc = json_uint(j, "hidden", UINT32_MAX, &w))) {
            return rc;
        }
        m->hidden[count - 1] = (uint32_t)w;
        m->nhidden = count;
        rc = 0;
    }
    return rc;
}

static int parse_table(json *j, saved_table *t, unsigned i)
{
    char field[48], key[32];
    unsigned count = 0, seen = 0;
    snprintf(field, sizeof field, "tables[%u]", i);
    int rc = json_expect(j, '{', field, "expected an object");
    while (rc == 0 && (rc = json_more(j, '}', &count, field)) > 0) {
        if ((rc = json_key(j, field, key, sizeof key))) {
            return rc;
        }
        snprintf(field, sizeof field, "tables[%u].%s", i, key);
        unsigned bit = strcmp(key, "name") == 0    ? 1u
                       : strcmp(key, "file") == 0  ? 2u
                       : strcmp(key, "shape") == 0 ? 4u
                                                   : 0u;
        if (bit & seen) {
            return json_bad(j, field, "appears twice");
        }
        seen |= bit;
        if (bit == 1) {
            rc = json_string(j, field, t->name, sizeof t->name);
        } else if (bit == 2) {
            /* A bare name inside DIR: a path could reach outside it. */
            if ((rc = json_string(j, field, t->file, sizeof t->file)) == 0 &&
                (!t->file[0] || strchr(t->file, '/') || strcmp(t->file, "..") == 0)) {
                rc = json_bad(j, field, "must be a file name inside the model directory");
            }
        } else if (bit == 4) {
            unsigned n = 0;
            uint64_t v[2] = {0, 0};
            rc = json_expect(j, '[', field, "expected [rows, width]");
            while (rc == 0 && (rc = json_more(j, ']', &n, field)) > 0) {
                if (n > 2) {
                    return json_bad(j, field, "expected [rows, width], found more dimensions");
                }
                if ((rc = json_uint(j, field, UINT64_MAX, &v[n - 1]))) {
                    return rc;
                }
                rc = 0;
            }
            if (rc == 0 && n != 2) {
                rc = json_bad(j, field, "expected [rows, width]");
            }
            t->rows = v[0];
            t->width = v[1];
        } else {
            rc = json_skip(j, field, 2);
        }
        snprintf(field, sizeof field, "tables[%u]", i);
    }
    if (rc == 0 && seen != 7) {
        snprintf(field, sizeof field, "tables[%u].%s", i,
                 !(seen & 1)   ? "name"
                 : !(seen & 2) ? "file"
                               : "shape");
        PS_LOG(ERROR, "%s: field \"%s\" is missing", j->path, field);
        rc = PS_EFORMAT;
    }
    return rc;
}

static int parse_tables(json *j, saved_meta *m)
{
    unsigned count = 0;
    int rc = json_expect(j, '[', "tables", "expected an array of tables");
    while (rc == 0 && (rc = json_more(j, ']', &count, "tables")) > 0) {
        if (count > MAX_TABLES) {
            return json_bad(j, "tables", "more tables than any adamps model has");
        }
        if ((rc = parse_table(j, &m->tables[count - 1], count - 1))) {
            return rc;
        }
        m->ntables = count;
    }
    return rc;
}

enum {
    F_MODEL,
    F_IN_DIM,
    F_NCLASSES,
    F_SPARSE_INPUT,
    F_HASH_BITS,
    F_HIDDEN,
    F_TABLES,
    F_FORMAT_VERSION, /* optional: when present it must be 1 */
    F_COUNT
};
static const char *const field_names[F_COUNT] = {"model",        "in_dim",        "nclasses",
                                                 "sparse_input", "hash_bits",     "hidden",
                                                 "tables",       "format_version"};

static int parse_field(json *j, int f, saved_meta *m)
{
    const char *name = field_names[f];
    char kind[16];
    uint64_t v;
    int rc = 0;
    switch (f) {
    case F_MODEL:
        if ((rc = json_string(j, name, kind, sizeof kind)) == 0) {
            if (strcmp(kind, "mlp") == 0) {
                m->kind = PS_MODEL_MLP;
            } else if (strcmp(kind, "logreg") == 0) {
                m->kind = PS_MODEL_LOGREG;
            } else {
                rc = json_bad(j, name, "expected \"mlp\" or \"logreg\"");
            }
        }
        break;
    case F_IN_DIM:
        rc = json_uint(j, name, UINT64_MAX, &m->in_dim);
        break;
    case F_NCLASSES:
        rc = json_uint(j, name, UINT32_MAX, &m->nclasses);
        break;
    case F_SPARSE_INPUT:
        rc = json_uint(j, name, 1, &m->sparse_input);
        break;
    case F_HASH_BITS:
        rc = json_uint(j, name, MAX_HASH_BITS, &m->hash_bits);
        break;
    case F_HIDDEN:
        rc = parse_hidden(j, m);
        break;
    case F_TABLES:
        rc = parse_tables(j, m);
        break;
    case F_FORMAT_VERSION:
        if ((rc = json_uint(j, name, UINT64_MAX, &v)) == 0 && v != 1) {
            rc = json_bad(j, name, "format version is not 1, the only one this adamps reads");
        }
        break;
    }
    return rc;
}

/* Parses the text of model.json into m; every error is logged naming path
 * and the field. */
static int parse_meta(const char *path, const char *text, size_t len, saved_meta *m)
{
    json j = {path, text, text, text + len};
    unsigned seen = 0, count = 0;
    char key[64];
    memset(m, 0, sizeof *m);
    int rc = json_expect(&j, '{', "(top level)", "expected a JSON object");
    while (rc == 0 && (rc = json_more(&j, '}', &count, "(top level)")) > 0) {
        if ((rc = json_key(&j, "(top level)", key, sizeof key))) {
            break;
        }
        int f = 0;
        while (f < F_COUNT && strcmp(key, field_names[f]) != 0) {
            f++;
        }
        if (f == F_COUNT) {
            rc = json_skip(&j, key, 1);
        } else if (seen & 1u << f) {
            rc = json_bad(&j, key, "appears twice");
        } else {
            seen |= 1u << f;
            rc = parse_field(&j, f, m);
        }
    }
    json_ws(&j);
    if (rc == 0 && j.p != j.end) {
        rc = json_bad(&j, "(top level)", "text after the closing '}'");
    }
    for (int f = 0; rc == 0 && f < F_FORMAT_VERSION; f++) {
        if (!(seen & 1u << f)) {
            PS_LOG(ERROR, "%s: field \"%s\" is missing", path, field_names[f]);
            rc = PS_EFORMAT;
        }
    }
    if (rc == 0 && m->kind == PS_MODEL_MLP && m->nhidden == 0) {
        PS_LOG(ERROR, "%s: field \"hidden\": an mlp needs at least one hidden layer", path);
        rc = PS_EFORMAT;
    }
    if (rc == 0 && m->hash_bits && (!m->sparse_input || m->in_dim != UINT64_C(1) << m->hash_bits)) {
        PS_LOG(ERROR,
               "%s: field \"hash_bits\": %" PRIu64 " does not fit in_dim %" PRIu64
               " (want 2^hash_bits, sparse input)",
               path, m->hash_bits, m->in_dim);
        rc = PS_EFORMAT;
    }
    return rc;
}

/* Reads the whole of path into a new NUL-terminated buffer (ps_free it). */
static int read_text(const char *path, char **out, size_t *len)
{
    int rc = 0;
    char *buf = NULL;
    *out = NULL;
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f) {
        PS_LOG(ERROR, "cannot open %s: %s", path, strerror(errno));
        return PS_EIO;
    }
    if (fstat(fileno(f), &st) != 0) {
        PS_LOG(ERROR, "cannot stat %s: %s", path, strerror(errno));
        rc = PS_EIO;
        goto done;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_JSON_BYTES) {
        PS_LOG(ERROR, "%s: not a model.json (not a regular file, or over %zu bytes)", path,
               MAX_JSON_BYTES);
        rc = PS_EFORMAT;
        goto done;
    }
    size_t n = (size_t)st.st_size;
    if (!(buf = ps_malloc(n + 1))) {
        rc = PS_ENOMEM;
        goto done;
    }
    if (fread(buf, 1, n, f) != n) {
        PS_LOG(ERROR, "cannot read %s: %s", path, ferror(f) ? strerror(errno) : "file shrank");
        rc = PS_EIO;
        goto done;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
done:
    ps_free(buf);
    fclose(f);
    return rc;
}

/* ---- loading ---- */

/* Checks model.json's tables against the model built from it, then loads
 * and checks each .npy. */
static int load_tables(ps_predictor *p, const saved_meta *meta, const char *dir,
                       const char *json_path)
{
    uint32_t nt = ps_model_ntables(p->model);
    if (meta->ntables != nt) {
        PS_LOG(ERROR, "%s: field \"tables\": %u tables, but this %s model has %u", json_path,
               meta->ntables, meta->kind == PS_MODEL_MLP ? "mlp" : "logreg", nt);
        return PS_EFORMAT;
    }
    for (uint32_t t = 0; t < nt; t++) {
        const ps_table_desc *d = ps_model_table(p->model, t);
        const saved_table *s = &meta->tables[t];
        if (strcmp(s->name, d->name) != 0 || s->rows != d->rows || s->width != d->width) {
            PS_LOG(ERROR,
                   "%s: field \"tables[%u]\": table '%s' %" PRIu64 " x %" PRIu64
                   ", but the model needs '%s' %" PRIu64 " x %u here",
                   json_path, t, s->name, s->rows, s->width, d->name, d->rows, d->width);
            return PS_EFORMAT;
        }
    }
    for (uint32_t t = 0; t < nt; t++) {
        const saved_table *s = &meta->tables[t];
        char path[PATH_LEN];
        uint64_t shape[PS_NPY_MAX_DIMS];
        int ndim;
        snprintf(path, sizeof path, "%s/%s", dir, s->file);
        int rc = ps_npy_read(path, &p->table[t], shape, &ndim);
        if (rc) {
            return rc;
        }
        if (ndim != 2 || shape[0] != s->rows || shape[1] != s->width) {
            PS_LOG(ERROR,
                   "%s: %d-dimensional array%s%" PRIu64 " x %" PRIu64
                   ", but %s says table '%s' is %" PRIu64 " x %" PRIu64,
                   path, ndim, ndim == 2 ? " " : ", first dimensions ", ndim > 0 ? shape[0] : 0,
                   ndim > 1 ? shape[1] : 0, json_path, s->name, s->rows, s->width);
            return PS_EFORMAT;
        }
        size_t n = (size_t)(s->rows * s->width);
        for (size_t i = 0; i < n; i++) {
            if (!isfinite(p->table[t][i])) {
                PS_LOG(ERROR, "%s: non-finite weight %g at row %zu, column %zu", path,
                       (double)p->table[t][i], i / s->width, i % s->width);
                return PS_EFORMAT;
            }
        }
        p->ntables = t + 1;
    }
    return 0;
}

int ps_predict_create(ps_predictor **out, const char *dir)
{
    int rc = 0;
    char *text = NULL;
    size_t len = 0;
    char json_path[PATH_LEN];
    saved_meta *meta = NULL;
    ps_predictor *p = NULL;
    *out = NULL;
    if (snprintf(json_path, sizeof json_path, "%s/model.json", dir) >= (int)sizeof json_path) {
        PS_LOG(ERROR, "model directory name is too long: %s", dir);
        rc = PS_ECONFIG;
        goto done;
    }
    if (!(meta = ps_malloc(sizeof *meta)) || !(p = ps_calloc(1, sizeof *p))) {
        rc = PS_ENOMEM;
        goto done;
    }
    if ((rc = read_text(json_path, &text, &len)) || (rc = parse_meta(json_path, text, len, meta))) {
        goto done;
    }
    ps_model_cfg mc = {.kind = meta->kind,
                       .in_dim = meta->in_dim,
                       .nclasses = (uint32_t)meta->nclasses,
                       .sparse_input = (int)meta->sparse_input,
                       .nhidden = meta->kind == PS_MODEL_MLP ? meta->nhidden : 0,
                       .init_override = -1,
                       .max_batch = PS_PREDICT_CHUNK};
    memcpy(mc.hidden, meta->hidden, sizeof mc.hidden);
    if ((rc = ps_model_create(&p->model, &mc))) {
        if (rc == PS_ECONFIG) {
            PS_LOG(ERROR, "%s describes a model adamps cannot build (reason above)", json_path);
        }
        goto done;
    }
    p->hash_bits = (uint32_t)meta->hash_bits;
    if ((rc = load_tables(p, meta, dir, json_path))) {
        goto done;
    }
    *out = p;
    p = NULL;
done:
    ps_predict_destroy(&p);
    ps_free(meta);
    ps_free(text);
    return rc;
}

void ps_predict_destroy(ps_predictor **pp)
{
    if (!pp || !*pp) {
        return;
    }
    ps_predictor *p = *pp;
    for (uint32_t t = 0; t < MAX_TABLES; t++) {
        ps_free(p->table[t]);
        ps_free(p->gather[t]);
    }
    if (p->model) {
        ps_model_keys_fini(p->keys, ps_model_ntables(p->model));
    }
    ps_model_destroy(&p->model);
    ps_free(p);
    *pp = NULL;
}

const ps_model_cfg *ps_predict_model_cfg(const ps_predictor *p)
{
    return ps_model_config(p->model);
}

uint32_t ps_predict_hash_bits(const ps_predictor *p)
{
    return p->hash_bits;
}

/* ---- scoring ---- */

/* params[t] for the keys of one chunk: row i = table row keys[t].keys[i]. */
static int gather(ps_predictor *p)
{
    for (uint32_t t = 0; t < p->ntables; t++) {
        const ps_table_desc *d = ps_model_table(p->model, t);
        const ps_keylist *k = &p->keys[t];
        /* Sorted unique keys below rows, as many as rows: every row in
         * order, so the table itself is the buffer. */
        if (k->n == d->rows) {
            p->params[t] = p->table[t];
            continue;
        }
        if (k->n > SIZE_MAX / sizeof(float) / d->width) {
            return PS_ENOMEM;
        }
        if (k->n) {
            void *buf = p->gather[t];
            int rc = ps_grow(&buf, &p->gather_cap[t], k->n * d->width, sizeof(float));
            p->gather[t] = buf;
            if (rc) {
                PS_LOG(ERROR, "predict: out of memory gathering %zu rows of table %s", k->n,
                       d->name);
                return rc;
            }
        }
        for (size_t i = 0; i < k->n; i++) {
            memcpy(p->gather[t] + i * d->width, p->table[t] + k->keys[i] * d->width,
                   d->width * sizeof(float));
        }
        p->params[t] = p->gather[t];
    }
    return 0;
}

int ps_predict_score(ps_predictor *p, const ps_batch *b, double *loss_sum, size_t *ncorrect,
                     int32_t *classes)
{
    int rc = 0;
    double lsum = 0.0;
    size_t good = 0;
    for (size_t first = 0; first < b->n && rc == 0; first += PS_PREDICT_CHUNK) {
        ps_batch c = *b;
        c.n = b->n - first < PS_PREDICT_CHUNK ? b->n - first : PS_PREDICT_CHUNK;
        if (b->sparse) {
            c.indptr = b->indptr + first;
        } else {
            c.x = b->x + first * b->dim;
        }
        c.y = b->y + first;
        double ls = 0.0;
        size_t nc = 0;
        if ((rc = ps_model_batch_keys(p->model, &c, p->keys)) || (rc = gather(p)) ||
            (rc = ps_model_evaluate(p->model, &c, p->keys, p->params, &ls, &nc))) {
            break;
        }
        if (classes) {
            rc = ps_model_predict(p->model, &c, p->keys, p->params, classes + first);
        }
        lsum += ls;
        good += nc;
    }
    *loss_sum = lsum;
    *ncorrect = good;
    return rc;
}

/* ---- the command ---- */

/* Loads the test set cfg names into ds, shaped for p's model; name gets the
 * file to blame in messages (the images, or the libsvm file). */
static int load_test(const ps_predictor *p, const ps_predict_cfg *cfg, ps_dataset *ds, char *name,
                     size_t namelen)
{
    const ps_model_cfg *mc = ps_model_config(p->model);
    const ps_source_cfg *src = &cfg->source;
    ps_source_spec spec;
    memset(&spec, 0, sizeof spec);
    ps_source_cfg sc = *src;
    ps_format fmt = src->dataset[0]              ? PS_FMT_IDX
                    : src->format != PS_FMT_AUTO ? src->format
                                                 : ps_source_guess_format(src->test);
    int rc = 0;
    char ti[PS_SOURCE_PATH], tl[PS_SOURCE_PATH], si[PS_SOURCE_PATH], sl[PS_SOURCE_PATH];
    if (fmt == PS_FMT_IDX) {
        ps_source_paths(src, ti, tl, si, sl, sizeof ti);
        snprintf(name, namelen, "%s", si);
        if (mc->sparse_input) {
            PS_LOG(ERROR,
                   "%s is IDX (dense) data, but the model in %s was trained on sparse "
                   "(libsvm) input",
                   si, cfg->model_dir);
            return PS_ECONFIG;
        }
        /* Probe only the test files: the training set need not be here. */
        sc.dataset = "";
        sc.format = PS_FMT_IDX;
        sc.train = si;
        sc.test = si;
        if ((rc = ps_source_probe(&sc, &spec))) {
            return rc;
        }
        if (spec.dim != mc->in_dim) {
            PS_LOG(ERROR, "%s: %" PRIu64 " values per image, but the model in %s takes %" PRIu64,
                   si, spec.dim, cfg->model_dir, mc->in_dim);
            return PS_EFORMAT;
        }
    } else if (fmt == PS_FMT_LIBSVM) {
        snprintf(name, namelen, "%s", src->test);
        if (!mc->sparse_input) {
            PS_LOG(ERROR,
                   "%s is libsvm (sparse) data, but the model in %s was trained on dense "
                   "(IDX) input",
                   src->test, cfg->model_dir);
            return PS_ECONFIG;
        }
        if (src->hash_bits && src->hash_bits != p->hash_bits) {
            PS_LOG(ERROR, "--hash-bits %u differs from the model's hash_bits %u (%s/model.json)",
                   src->hash_bits, p->hash_bits, cfg->model_dir);
            return PS_ECONFIG;
        }
        sc.format = PS_FMT_LIBSVM;
        sc.features = mc->in_dim;
        sc.hash_bits = p->hash_bits;
        /* The model fixes the shape, so no probe pass over the file: with
         * dim and classes given, the reader itself rejects feature ids past
         * in_dim and labels the model has no class for. */
        spec.dim = mc->in_dim;
        spec.nclasses = mc->nclasses;
        spec.sparse = 1;
    } else {
        PS_LOG(ERROR, "predict reads IDX or libsvm test files only");
        return PS_ECONFIG;
    }
    if ((rc = ps_source_load_test(&sc, &spec, ds))) {
        return rc;
    }
    for (size_t i = 0; i < ds->n; i++) {
        if (ds->y[i] < 0 || (uint32_t)ds->y[i] >= mc->nclasses) {
            PS_LOG(ERROR, "%s: sample %zu has label %d, but the model has %u classes", name, i,
                   ds->y[i], mc->nclasses);
            return PS_EFORMAT;
        }
    }
    return 0;
}

static int write_classes(const char *path, const int32_t *classes, size_t n)
{
    ps_afile *f = NULL;
    char buf[8192];
    size_t o = 0;
    int rc = ps_afile_open(&f, path);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%d\n", (int)classes[i]);
        if (sizeof buf - o < 16 || i + 1 == n) {
            rc = ps_afile_write(f, buf, o);
            o = 0;
        }
    }
    if (rc == 0) {
        rc = ps_afile_commit(&f);
    }
    ps_afile_abort(&f);
    return rc;
}

int ps_predict_run(const ps_predict_cfg *cfg, ps_predict_result *res)
{
    ps_predictor *p = NULL;
    ps_dataset ds = {0};
    int32_t *classes = NULL;
    char name[PS_SOURCE_PATH];
    memset(res, 0, sizeof *res);
    int rc = ps_predict_create(&p, cfg->model_dir);
    if (rc || (rc = load_test(p, cfg, &ds, name, sizeof name))) {
        goto done;
    }
    uint64_t lim = cfg->source.test_limit;
    size_t n = lim && lim < ds.n ? (size_t)lim : ds.n;
    if (n == 0) {
        PS_LOG(ERROR, "%s: no samples to score", name);
        rc = PS_EFORMAT;
        goto done;
    }
    if (!cfg->quiet) {
        const ps_model_cfg *mc = ps_model_config(p->model);
        PS_LOG(INFO,
               "adamps predict: %s model from %s (%" PRIu64 " inputs, %u classes); %zu "
               "samples from %s",
               ps_model_kind_name(mc->kind), cfg->model_dir, mc->in_dim, mc->nclasses, n, name);
    }
    if (!(classes = ps_malloc(n * sizeof *classes))) {
        rc = PS_ENOMEM;
        goto done;
    }
    ps_batch b = ps_dataset_view(&ds, 0, n);
    double loss_sum = 0.0;
    size_t correct = 0;
    if ((rc = ps_predict_score(p, &b, &loss_sum, &correct, classes))) {
        goto done;
    }
    if (cfg->out[0] && (rc = write_classes(cfg->out, classes, n))) {
        goto done;
    }
    res->loss = loss_sum / (double)n;
    res->accuracy = (double)correct / (double)n;
    res->samples = n;
done:
    ps_free(classes);
    ps_dataset_fini(&ds);
    ps_predict_destroy(&p);
    return rc;
}
