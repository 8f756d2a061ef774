#include "common/json.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "common/err.h"
#include "common/mem.h"

/* U+FFFD REPLACEMENT CHARACTER in UTF-8. */
#define REPLACEMENT "\xef\xbf\xbd"
#define REPLACEMENT_LEN 3

static pthread_once_t alloc_once = PTHREAD_ONCE_INIT;

static void set_alloc(void)
{
    json_set_alloc_funcs(ps_malloc, ps_free);
}

/* Every constructor runs this first, so no jansson value is ever allocated
 * with another allocator than the one that frees it. */
static void init(void)
{
    pthread_once(&alloc_once, set_alloc);
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if it is not one.
 * Rejects overlong forms, surrogates and code points past U+10FFFF, which
 * JSON parsers refuse (and jansson will not dump). The terminating NUL stops
 * a truncated sequence. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n;
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf) {
            return 0;
        }
    }
    return n;
}

/* s itself when it is valid UTF-8 (*copy = NULL), else a new copy with each
 * bad byte replaced by U+FFFD (*copy = the copy, ps_free it). NULL when out
 * of memory. */
static const char *utf8_repair(const char *s, char **copy)
{
    *copy = NULL;
    size_t bad = 0, len = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_len(p);
        bad += n == 0;
        p += n ? n : 1;
        len += n ? n : 1;
    }
    if (!bad) {
        return s;
    }
    char *out = ps_malloc(len + bad * (REPLACEMENT_LEN - 1) + 1);
    if (!out) {
        return NULL;
    }
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_len(p);
        if (n) {
            memcpy(out + o, p, n);
            o += n;
            p += n;
        } else {
            memcpy(out + o, REPLACEMENT, REPLACEMENT_LEN);
            o += REPLACEMENT_LEN;
            p++;
        }
    }
    out[o] = '\0';
    *copy = out;
    return out;
}

ps_json *ps_json_object(void)
{
    init();
    return json_object();
}

ps_json *ps_json_array(void)
{
    init();
    return json_array();
}

ps_json *ps_json_int(int64_t v)
{
    init();
    return json_integer((json_int_t)v);
}

ps_json *ps_json_real(double v)
{
    init();
    return isfinite(v) ? json_real(v) : json_null();
}

ps_json *ps_json_string(const char *s)
{
    init();
    if (!s) {
        return json_null();
    }
    char *copy;
    const char *ok = utf8_repair(s, &copy);
    json_t *j = ok ? json_stringn_nocheck(ok, strlen(ok)) : NULL;
    ps_free(copy);
    return j;
}

ps_json *ps_json_bool(int v)
{
    init();
    return json_boolean(v);
}

int ps_json_set(ps_json *obj, const char *key, ps_json *value)
{
    int rc = PS_ENOMEM;
    char *copy = NULL;
    if (!value) {
        goto done;
    }
    const char *ok = utf8_repair(key, &copy);
    /* _new steals value even when it fails. */
    if (!ok) {
        json_decref(value);
    } else if (json_object_set_new_nocheck(obj, ok, value) == 0) {
        rc = 0;
    }
done:
    ps_free(copy);
    return rc;
}

int ps_json_update(ps_json *obj, const ps_json *other)
{
    /* Keys were repaired when other was built. */
    return json_object_update(obj, (json_t *)other) == 0 ? 0 : PS_ENOMEM;
}

int ps_json_append(ps_json *arr, ps_json *value)
{
    return value && json_array_append_new(arr, value) == 0 ? 0 : PS_ENOMEM;
}

typedef struct {
    ps_bytes *out;
    int failed;
} dump_ctx;

/* Sticky: jansson 2.14 ignores the callback's result while it writes an
 * object key and carries on, so one failure must fail every later call, and
 * ps_json_dump checks the flag, not only jansson's return value. */
static int dump_to_bytes(const char *buf, size_t size, void *data)
{
    dump_ctx *c = data;
    void *p = c->out->data;
    if (c->failed || (c->failed = ps_grow(&p, &c->out->cap, c->out->len + size, 1)) != 0) {
        return -1;
    }
    c->out->data = p;
    memcpy(c->out->data + c->out->len, buf, size);
    c->out->len += size;
    return 0;
}

int ps_json_dump(const ps_json *j, unsigned indent, ps_bytes *out)
{
    size_t flags = JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17) | JSON_ENCODE_ANY;
    flags |= indent ? JSON_INDENT(indent > 31 ? 31 : indent) : JSON_COMPACT;
    dump_ctx c = {out, 0};
    size_t start = out->len;
    /* Our values hold no cycles and only valid UTF-8, so a failure can only
     * be an allocation (jansson's or ours). */
    if (json_dump_callback(j, dump_to_bytes, &c, flags) != 0 || c.failed) {
        out->len = start;
        return PS_ENOMEM;
    }
    return 0;
}

void ps_json_free(ps_json **j)
{
    if (j && *j) {
        json_decref(*j);
        *j = NULL;
    }
}
