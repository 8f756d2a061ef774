/* Metrics: a JSON-lines writer. Each ps_metrics_write call appends one JSON
 * object on one line and hands it to the kernel with a single write(), so
 * a crash loses at most the line being written and `tail -f` sees whole
 * lines. Keys are snake_case with their unit (STYLE.md: `samples_per_sec`,
 * `push_bytes_total`). The coordinator writes one line per evaluation;
 * deploy/plot draws them. Not collective; one writer per thread. */
#ifndef PS_METRICS_H
#define PS_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct ps_metrics ps_metrics;

typedef enum {
    PS_METRICS_TRUNCATE = 0, /* a fresh run: start the file empty */
    PS_METRICS_APPEND = 1,   /* a resumed run: keep earlier lines */
} ps_metrics_mode;

typedef enum {
    PS_METRIC_INT = 0,
    PS_METRIC_DOUBLE,
    PS_METRIC_STRING,
    PS_METRIC_BOOL,
    PS_METRIC_OBJECT /* a nested object of pairs (the configuration) */
} ps_metric_type;

/* One key/value pair. key, s and obj.kvs are borrowed for the duration of
 * the call. */
typedef struct ps_metric_kv {
    const char *key;
    ps_metric_type type;
    union {
        int64_t i;
        double d;
        const char *s; /* NULL is written as null */
        int b;         /* written as true or false */
        struct {
            const struct ps_metric_kv *kvs;
            size_t n;
        } obj;
    } v;
} ps_metric_kv;

#define PS_METRIC_I(k, x) ((ps_metric_kv){.key = (k), .type = PS_METRIC_INT, .v.i = (x)})
#define PS_METRIC_D(k, x) ((ps_metric_kv){.key = (k), .type = PS_METRIC_DOUBLE, .v.d = (x)})
#define PS_METRIC_S(k, x) ((ps_metric_kv){.key = (k), .type = PS_METRIC_STRING, .v.s = (x)})
#define PS_METRIC_B(k, x) ((ps_metric_kv){.key = (k), .type = PS_METRIC_BOOL, .v.b = (x)})
#define PS_METRIC_O(k, p, c)                                                                       \
    ((ps_metric_kv){.key = (k), .type = PS_METRIC_OBJECT, .v.obj = {(p), (c)}})

/* What the first line of a fresh run's file says (ps_metrics_write_header).
 * Strings and config are borrowed for the call. */
typedef struct {
    const char *run_id;         /* also in the run header, so logs and metrics meet */
    const char *version;        /* adamps's */
    const ps_metric_kv *config; /* the training configuration, typed */
    size_t nconfig;
} ps_metrics_header;

/* Opens path for writing (created 0644 if missing). PS_METRICS_TRUNCATE
 * empties it; PS_METRICS_APPEND keeps it and first cuts off a trailing
 * partial line left by a crash (logged as a warning), so every line stays
 * valid JSON. Returns 0 and a new writer in *out, which the caller closes
 * with ps_metrics_close; PS_EINVAL for an unknown mode; PS_ENOMEM; PS_EIO
 * (logged with the path and strerror). */
int ps_metrics_open(ps_metrics **out, const char *path, ps_metrics_mode mode);

/* Writes kvs[0..n) as one JSON object on one line, in the given order (a
 * repeated key appears once, at its first place, with its last value), by
 * common/json.h's rules: doubles read back bit for bit, NaN and infinities
 * are written as null, bytes that are not valid UTF-8 become U+FFFD.
 * Nothing is written unless the whole line could be built. Returns 0;
 * PS_EINVAL (logged) for a NULL key or an unknown type; PS_ENOMEM; PS_EIO
 * (logged). */
int ps_metrics_write(ps_metrics *m, const ps_metric_kv *kvs, size_t n);

/* From now on every line also carries "time_unix": the wall clock
 * (CLOCK_REALTIME) in seconds since the epoch, with microseconds, after the
 * pairs given (unless one of them is time_unix). Off after open. */
void ps_metrics_stamp(ps_metrics *m, int on);

/* Writes the header record: {"event":"header", "time": ISO 8601 UTC with
 * milliseconds, "time_unix", "run_id", "adamps_version", "config": {...}}.
 * Returns as ps_metrics_write. */
int ps_metrics_write_header(ps_metrics *m, const ps_metrics_header *h);

/* The JSON object of kvs[0..n) by ps_metrics_write's rules, for other
 * files that hold the same pairs (model.json's configuration). Returns a
 * new value the caller frees with ps_json_free (common/json.h), or NULL
 * with *rc = PS_ENOMEM or PS_EINVAL (logged: a NULL key or an unknown
 * type). */
struct json_t;
struct json_t *ps_metrics_object(const ps_metric_kv *kvs, size_t n, int *rc);

/* A resumed run: cuts the file before its first line whose "step" is
 * `step` or later (the lines a crashed run wrote after its checkpoint at
 * `step`, which the resumed run writes again; lines are in step order).
 * *dropped gets the number of lines cut. A file that is not a regular file
 * is left alone. Returns 0, PS_ENOMEM or PS_EIO (logged). */
int ps_metrics_truncate_from(ps_metrics *m, int64_t step, size_t *dropped);

/* Closes the file and frees the writer. Returns 0 or PS_EIO (logged).
 * Accepts NULL and *m == NULL; sets *m = NULL. */
int ps_metrics_close(ps_metrics **m);

#endif
