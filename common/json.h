/* JSON output: the one writer behind metrics lines (worker/metrics.c),
 * `--log-format json` lines (common/log.c) and model.json
 * (worker/export.c), on jansson. A value is built from the constructors
 * below and dumped with ps_json_dump; the rules live here, once: strings and
 * keys that are not valid UTF-8 get U+FFFD for each bad byte (the output is
 * always valid JSON), non-finite doubles become null (JSON has no NaN),
 * doubles use 17 significant digits (they read back bit for bit), object
 * keys come out in the order they were set. jansson allocates through
 * ps_malloc/ps_free, so the unit tests' leak checks and failed-allocation
 * sweeps cover it. Nothing here reads JSON: adamps reads only its own binary
 * files. Thread-safe on distinct values. */
#ifndef PS_JSON_H
#define PS_JSON_H

#include <stdint.h>

#include "common/mem.h"

/* jansson's json_t, opaque here so callers cannot allocate around ps_malloc. */
typedef struct json_t ps_json;

/* Constructors: each returns a new value that the caller owns (freed with
 * ps_json_free, or handed to ps_json_set / ps_json_append), or NULL when out
 * of memory. NULL is an accepted input of ps_json_set and ps_json_append, so
 * a constructor can be passed straight in. */
ps_json *ps_json_object(void);
ps_json *ps_json_array(void);
ps_json *ps_json_int(int64_t v);
/* v, or null when v is NaN or infinite. */
ps_json *ps_json_real(double v);
/* s as a string (bad UTF-8 repaired as above); NULL gives null. Borrows s
 * until return. */
ps_json *ps_json_string(const char *s);
ps_json *ps_json_bool(int v);

/* Sets obj[key] = value, after any earlier keys (a repeated key keeps its
 * first position and takes the new value). Takes ownership of value in
 * every case; key (repaired like a string) is borrowed until return.
 * Returns 0, or PS_ENOMEM when obj or value is NULL (a constructor failed)
 * or the insertion cannot allocate. */
int ps_json_set(ps_json *obj, const char *key, ps_json *value);
/* Sets every key of the object other into obj, as ps_json_set would, in
 * other's order. Borrows other. Returns 0 or PS_ENOMEM. */
int ps_json_update(ps_json *obj, const ps_json *other);
/* Appends value to array arr. Ownership and return as ps_json_set. */
int ps_json_append(ps_json *arr, ps_json *value);

/* Appends the text of j to out->data (growing it with ps_grow, out->len
 * updated; no NUL is added): one line when indent is 0, else indent spaces
 * per level. No newline at the end. Returns 0, or PS_ENOMEM (out->len is
 * then back where it was). */
int ps_json_dump(const ps_json *j, unsigned indent, ps_bytes *out);

/* Frees j and everything it holds and sets *j = NULL; accepts NULL and
 * *j == NULL. */
void ps_json_free(ps_json **j);

#endif
