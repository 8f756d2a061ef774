/* One setting's text and its value: strict numbers, choices, paths and
 * the custom codecs (--hidden, --synthetic, --consistency, --conv). */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cfg_internal.h"
#include "common/err.h"
#include "common/log.h"

const ps_cfg_range ps_cfg_nonneg = {0.0, INFINITY, 0, 1};
const ps_cfg_range ps_cfg_pos = {0.0, INFINITY, 1, 1};
const ps_cfg_range ps_cfg_unit = {0.0, 1.0, 0, 1};

int ps_cfg_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return PS_ECONFIG;
}

/* Strict unsigned integer: decimal digits only (no sign, no blanks, no
 * 0x), the whole text consumed, within [lo, hi]. */
static int parse_uint(const char *label, const char *text, uint64_t lo, uint64_t hi, uint64_t *out,
                      char *err, size_t errlen)
{
    int rc = 0;
    const char *kind = lo >= 1 ? "a positive integer" : "a non-negative integer";
    char *end = NULL;
    errno = 0;
    unsigned long long v = text[0] >= '0' && text[0] <= '9' ? strtoull(text, &end, 10) : 0;
    if (!end || *end != '\0' || (lo >= 1 && v == 0)) {
        rc = ps_cfg_err(err, errlen, "%s: '%s' is not %s", label, text, kind);
    } else if (errno == ERANGE || v < lo || v > hi) {
        rc = ps_cfg_err(err, errlen, "%s: '%s' is out of range [%llu, %llu]", label, text,
                        (unsigned long long)lo, (unsigned long long)hi);
    } else {
        *out = v;
    }
    return rc;
}

static int in_range(const ps_cfg_range *r, double v)
{
    int ok_lo = r->lo_open ? v > r->lo : v >= r->lo;
    int ok_hi = r->hi_open ? v < r->hi : v <= r->hi;
    return ok_lo && ok_hi;
}

/* Strict real: strtod over the whole text, finite, inside r. With as_float
 * the value is checked after rounding to float, so what is stored (a float
 * field) is what was checked: --beta2 0.999999999 rounds to 1 and is
 * rejected rather than silently breaking Adam. */
static int parse_real(const char *label, const char *text, const ps_cfg_range *r, int as_float,
                      double *out, char *err, size_t errlen)
{
    int rc = 0;
    char *end = NULL;
    /* strtod skips leading blanks; a flag value with them is a typo. */
    double v = text[0] == '\0' || text[0] == ' ' || text[0] == '\t' ? 0 : strtod(text, &end);
    if (!end || *end != '\0') {
        rc = ps_cfg_err(err, errlen, "%s: '%s' is not a number", label, text);
    } else if (!isfinite(v)) {
        rc = ps_cfg_err(err, errlen, "%s: '%s' is not a finite number", label, text);
    } else if (as_float && fabs(v) > FLT_MAX) {
        rc = ps_cfg_err(err, errlen, "%s: '%s' does not fit in a float", label, text);
    } else {
        v = as_float ? (double)(float)v : v;
        if (!in_range(r, v)) {
            char what[64];
            if (isinf(r->hi)) {
                snprintf(what, sizeof what, "%s %g", r->lo_open ? ">" : ">=", r->lo);
            } else {
                snprintf(what, sizeof what, "in %c%g, %g%c", r->lo_open ? '(' : '[', r->lo, r->hi,
                         r->hi_open ? ')' : ']');
            }
            rc = ps_cfg_err(err, errlen, "%s: '%s' is not %s", label, text, what);
        } else {
            *out = v;
        }
    }
    return rc;
}

/* Shortest %g text that reads back to the same value, so the run header
 * says lr=0.001 and not lr=0.00100000005, yet loses nothing. */
void ps_cfg_format_real(char *buf, size_t n, double v, int as_float)
{
    for (int p = 6; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, v);
        if (as_float ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v) {
            break;
        }
    }
}

static int copy_text(const char *label, const char *text, char *dst, size_t cap, char *err,
                     size_t errlen)
{
    int rc = 0;
    size_t n = strlen(text);
    if (n == 0) {
        rc = ps_cfg_err(err, errlen, "%s: empty value", label);
    } else if (n >= cap) {
        rc = ps_cfg_err(err, errlen, "%s: '%.40s...' is longer than %zu bytes", label, text,
                        cap - 1);
    } else {
        /* The tail is zeroed too, so configs compare with memcmp. */
        memset(dst, 0, cap);
        memcpy(dst, text, n);
    }
    return rc;
}

/* Index of text in names, or -1. */
static int find_name(const char *text, const char *const *names, size_t n)
{
    int found = -1;
    for (size_t i = 0; i < n && found < 0; i++) {
        if (strcmp(text, names[i]) == 0) {
            found = (int)i;
        }
    }
    return found;
}

static const char *choice_name(const ps_cfg_choice *c, int v)
{
    if (v < 0 || v >= c->count) {
        return "?";
    }
    return c->names ? c->names[v] : c->name(v);
}

int ps_cfg_choice_parse(const ps_cfg_choice *c, const char *text, int *out)
{
    if (!c->names) {
        return c->parse(text, out);
    }
    int i = find_name(text, c->names, (size_t)c->count);
    *out = i >= 0 ? i : *out;
    return i >= 0 ? 0 : PS_EINVAL;
}

/* f's words joined by sep (its `word` first), for --help and messages. */
void ps_cfg_choice_list(const ps_cfg_row *f, const char *sep, char *buf, size_t n)
{
    size_t used =
        (size_t)snprintf(buf, n, "%s", f->word && f->type == PS_CFG_CHOICE ? f->word : "");
    for (int v = 0; v < f->choices->count && used < n; v++) {
        used += (size_t)snprintf(buf + used, n - used, "%s%s", used ? sep : "",
                                 choice_name(f->choices, v));
    }
}

static void store_uint(void *p, size_t size, uint64_t v)
{
    if (size == sizeof(uint32_t)) {
        *(uint32_t *)p = (uint32_t)v;
    } else {
        PS_ASSERT(size == sizeof(uint64_t));
        *(uint64_t *)p = v;
    }
}

static uint64_t load_uint(const void *p, size_t size)
{
    return size == sizeof(uint32_t) ? *(const uint32_t *)p : *(const uint64_t *)p;
}

/* Stores text, a value as the flag takes it, into f's field. */
int ps_cfg_parse_value(ps_cfg *cfg, const ps_cfg_row *f, const char *text, char *err, size_t errlen)
{
    char lab[48];
    snprintf(lab, sizeof lab, "%s%s", f->name ? "--" : "", f->name ? f->name : f->key);
    void *p = (char *)cfg + f->off;
    int rc = 0;
    int v = 0;
    uint64_t u = 0;
    double d = 0.0;
    switch (f->type) {
    case PS_CFG_BOOL:
        if (strcmp(text, "0") != 0 && strcmp(text, "1") != 0) {
            rc = ps_cfg_err(err, errlen, "%s: '%s' is not 0 or 1", lab, text);
        } else {
            *(int *)p = text[0] == '1';
        }
        break;
    case PS_CFG_UINT:
        if (!f->word || strcmp(text, f->word) != 0) {
            rc = parse_uint(lab, text, f->lo, f->hi, &u, err, errlen);
        }
        if (rc == 0) {
            store_uint(p, f->size, u);
        }
        break;
    case PS_CFG_REAL:
        rc = parse_real(lab, text, f->range, f->size == sizeof(float), &d, err, errlen);
        if (rc == 0 && f->size == sizeof(float)) {
            *(float *)p = (float)d;
        } else if (rc == 0) {
            *(double *)p = d;
        }
        break;
    case PS_CFG_TEXT:
    case PS_CFG_CHOICE:
        if (f->type == PS_CFG_CHOICE && f->word && strcmp(text, f->word) == 0) {
            v = -1;
        } else if (f->choices && ps_cfg_choice_parse(f->choices, text, &v) != 0) {
            char list[256];
            ps_cfg_choice_list(f, ", ", list, sizeof list);
            rc = ps_cfg_err(err, errlen, "%s: unknown value '%s' (expected one of: %s)", lab, text,
                            list);
        }
        if (rc == 0 && f->type == PS_CFG_TEXT) {
            rc = copy_text(lab, text, p, f->size, err, errlen);
        } else if (rc == 0) {
            PS_ASSERT(f->size == sizeof(int)); /* an enum or an int */
            *(int *)p = v;
        }
        break;
    case PS_CFG_CUSTOM:
        rc = f->ops->parse(cfg, text, err, errlen);
        break;
    }
    return rc;
}

/* f's value in cfg as the flag would spell it ("" for an unset path). */
void ps_cfg_format_value(const ps_cfg *cfg, const ps_cfg_row *f, char *buf, size_t n)
{
    const void *p = (const char *)cfg + f->off;
    uint64_t u = 0;
    int v = 0;
    switch (f->type) {
    case PS_CFG_BOOL:
        snprintf(buf, n, "%d", *(const int *)p);
        break;
    case PS_CFG_UINT:
        u = load_uint(p, f->size);
        if (u == 0 && f->word) {
            snprintf(buf, n, "%s", f->word);
        } else {
            snprintf(buf, n, "%llu", (unsigned long long)u);
        }
        break;
    case PS_CFG_REAL:
        if (f->size == sizeof(float)) {
            ps_cfg_format_real(buf, n, *(const float *)p, 1);
        } else {
            ps_cfg_format_real(buf, n, *(const double *)p, 0);
        }
        break;
    case PS_CFG_TEXT:
        snprintf(buf, n, "%s", (const char *)p);
        break;
    case PS_CFG_CHOICE:
        v = *(const int *)p;
        snprintf(buf, n, "%s", v == -1 && f->word ? f->word : choice_name(f->choices, v));
        break;
    case PS_CFG_CUSTOM:
        f->ops->format(cfg, buf, n);
        break;
    }
}

/* Calls item(cfg, text of item i, i, ctx) for each comma-separated item of
 * text; an empty item, one longer than 63 bytes or a trailing comma is an
 * error naming label and saying text is not a list of `what`. */
static int split_list(ps_cfg *cfg, const char *label, const char *what, const char *text,
                      int (*item)(ps_cfg *, const char *, size_t, void *, char *, size_t),
                      void *ctx, char *err, size_t errlen)
{
    int rc = 0;
    const char *p = text;
    for (size_t i = 0; *p != '\0' && rc == 0; i++) {
        char one[64];
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof one) {
            rc = ps_cfg_err(err, errlen, "%s: '%s' is not a list of %s", label, text, what);
        } else if (p[len] == ',' && p[len + 1] == '\0') {
            rc = ps_cfg_err(err, errlen, "%s: '%s' ends with a comma", label, text);
        } else {
            memcpy(one, p, len);
            one[len] = '\0';
            rc = item(cfg, one, i, ctx, err, errlen);
            p += len + (p[len] == ',');
        }
    }
    return rc;
}

static int hidden_item(ps_cfg *cfg, const char *item, size_t i, void *ctx, char *err, size_t errlen)
{
    uint64_t w = 0;
    int rc = parse_uint("--hidden", item, 1, INT32_MAX, &w, err, errlen);
    (void)ctx;
    cfg->hidden[i] = (uint32_t)w;
    cfg->nhidden = (uint32_t)i + 1;
    return rc;
}

/* "1000,1000": 1..8 positive widths; "" means no hidden layer (logreg). */
static int parse_hidden(ps_cfg *cfg, const char *text, char *err, size_t errlen)
{
    size_t n = 1;
    for (const char *p = text; *p; p++) {
        n += *p == ',';
    }
    if (n > PS_MODEL_MAX_HIDDEN) {
        return ps_cfg_err(err, errlen, "--hidden: '%s' has more than %d layers", text,
                          PS_MODEL_MAX_HIDDEN);
    }
    memset(cfg->hidden, 0, sizeof cfg->hidden);
    cfg->nhidden = 0;
    return split_list(cfg, "--hidden", "positive integers", text, hidden_item, NULL, err, errlen);
}

static void format_hidden(const ps_cfg *cfg, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < cfg->nhidden && i < PS_MODEL_MAX_HIDDEN && used < n; i++) {
        used += (size_t)snprintf(buf + used, n - used, "%s%u", i ? "," : "", cfg->hidden[i]);
    }
}

/* "c32-c64-1000": 1..PS_MODEL_MAX_CONV convolution stages "cN" (output
 * channels), then the fully connected width. */
static int parse_conv(ps_cfg *cfg, const char *text, char *err, size_t errlen)
{
    int rc = 0;
    uint32_t n = 0, fc = 0;
    uint32_t ch[PS_MODEL_MAX_CONV];
    const char *p = text;
    while (rc == 0 && *p) {
        size_t len = strcspn(p, "-");
        int is_conv = p[0] == 'c';
        char one[32];
        uint64_t v = 0;
        if (len == 0 || len >= sizeof one || fc) {
            rc = ps_cfg_err(err, errlen,
                            "--conv: '%s' is not cN-..-N (channels per convolution, then the "
                            "fully connected width, e.g. c32-c64-1000)",
                            text);
            break;
        }
        memcpy(one, p + is_conv, len - (size_t)is_conv);
        one[len - (size_t)is_conv] = '\0';
        if ((rc = parse_uint("--conv", one, 1, is_conv ? 65536 : INT32_MAX, &v, err, errlen))) {
            break;
        }
        if (is_conv && n == PS_MODEL_MAX_CONV) {
            rc = ps_cfg_err(err, errlen, "--conv: '%s' has more than %d convolutions", text,
                            PS_MODEL_MAX_CONV);
        } else if (is_conv) {
            ch[n++] = (uint32_t)v;
        } else {
            fc = (uint32_t)v;
        }
        p += len + (p[len] == '-');
    }
    if (rc == 0 && (n == 0 || fc == 0)) {
        rc = ps_cfg_err(err, errlen,
                        "--conv: '%s' needs at least one convolution cN and ends with the fully "
                        "connected width (e.g. c32-c64-1000)",
                        text);
    }
    if (rc == 0) {
        memset(cfg->conv, 0, sizeof cfg->conv);
        memcpy(cfg->conv, ch, n * sizeof *ch);
        cfg->nconv = n;
        cfg->conv_fc = fc;
    }
    return rc;
}

static void format_conv(const ps_cfg *cfg, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < cfg->nconv && i < PS_MODEL_MAX_CONV && used < n; i++) {
        used += (size_t)snprintf(buf + used, n - used, "c%u-", cfg->conv[i]);
    }
    if (used < n) {
        snprintf(buf + used, n - used, "%u", cfg->conv_fc);
    }
}

/* One "key=value" of --synthetic; ctx marks the keys seen. */
static int synthetic_item(ps_cfg *cfg, const char *item, size_t i, void *ctx, char *err,
                          size_t errlen)
{
    unsigned char *seen = ctx;
    size_t k = 0, len = strcspn(item, "=");
    (void)i;
    while (k < PS_CFG_NSYNTH && (strlen(ps_cfg_synth_keys[k].key) != len ||
                                 strncmp(item, ps_cfg_synth_keys[k].key, len) != 0)) {
        k++;
    }
    if (item[len] != '=') {
        return ps_cfg_err(err, errlen, "--synthetic: '%s' is not key=value", item);
    } else if (k == PS_CFG_NSYNTH) {
        return ps_cfg_err(err, errlen,
                          "--synthetic: unknown key '%.*s' (known: rows, features, nnz, classes, "
                          "zipf, noise, test)",
                          (int)len, item);
    } else if (seen[k]) {
        return ps_cfg_err(err, errlen, "--synthetic: key '%.*s' given twice", (int)len, item);
    }
    seen[k] = 1;
    return ps_cfg_parse_value(cfg, &ps_cfg_synth_keys[k], item + len + 1, err, errlen);
}

/* "rows=N,features=N,nnz=N,classes=N,zipf=X,noise=X,test=N": keys may be
 * omitted (they take their defaults; test defaults to rows/10); "off" is no
 * synthetic data, with the defaults kept for the synth command. */
static int parse_synthetic(ps_cfg *cfg, const char *text, char *err, size_t errlen)
{
    int rc = 0;
    unsigned char seen[PS_CFG_NSYNTH] = {0};
    int off = strcmp(text, "off") == 0;
    for (size_t k = 0; k + 1 < PS_CFG_NSYNTH && rc == 0; k++) {
        rc = ps_cfg_parse_value(cfg, &ps_cfg_synth_keys[k], ps_cfg_synth_keys[k].def, err, errlen);
    }
    if (rc == 0 && !off) {
        rc = split_list(cfg, "--synthetic", "key=value", text, synthetic_item, seen, err, errlen);
    }
    if (!seen[PS_CFG_NSYNTH - 1]) {
        cfg->synth_test = cfg->synth.n / 10;
    }
    if (rc == 0 && cfg->synth.nnz > cfg->synth.nfeatures) {
        rc = ps_cfg_err(err, errlen, "--synthetic: nnz=%u exceeds features=%llu", cfg->synth.nnz,
                        (unsigned long long)cfg->synth.nfeatures);
    }
    /* Test rows are held out of rows, so some must be left to train on. */
    if (rc == 0 && cfg->synth_test >= cfg->synth.n) {
        rc = ps_cfg_err(err, errlen, "--synthetic: test=%llu leaves no training rows of rows=%llu",
                        (unsigned long long)cfg->synth_test, (unsigned long long)cfg->synth.n);
    }
    cfg->synthetic = rc == 0 && !off;
    return rc;
}

static void format_synthetic(const ps_cfg *cfg, char *buf, size_t n)
{
    size_t used = (size_t)snprintf(buf, n, "%s", cfg->synthetic ? "" : "off");
    for (size_t k = 0; k < PS_CFG_NSYNTH && cfg->synthetic && used < n; k++) {
        char val[32];
        ps_cfg_format_value(cfg, &ps_cfg_synth_keys[k], val, sizeof val);
        used += (size_t)snprintf(buf + used, n - used, "%s%s=%s", k ? "," : "",
                                 ps_cfg_synth_keys[k].key, val);
    }
}

static int parse_consistency(ps_cfg *cfg, const char *text, char *err, size_t errlen)
{
    int rc = 0;
    uint64_t k = 0;
    if (strcmp(text, "bsp") == 0 || strcmp(text, "asp") == 0) {
        cfg->sync = text[0] == 'b' ? PS_SYNC_BSP : PS_SYNC_ASP;
        cfg->staleness = 0;
    } else if (strncmp(text, "ssp:", 4) == 0) {
        rc = parse_uint("--consistency ssp:K", text + 4, 0, INT_MAX, &k, err, errlen);
        if (rc == 0) {
            /* ssp:0 behaves like bsp but stays SSP: the server's code path
             * and the run header say what the user asked for. */
            cfg->sync = PS_SYNC_SSP;
            cfg->staleness = (uint32_t)k;
        }
    } else if (strcmp(text, "ssp") == 0) {
        rc = ps_cfg_err(err, errlen, "--consistency: 'ssp' needs a staleness bound, e.g. ssp:2");
    } else {
        rc = ps_cfg_err(err, errlen,
                        "--consistency: unknown value '%s' (expected one of: bsp, ssp:K, asp)",
                        text);
    }
    return rc;
}

static void format_consistency(const ps_cfg *cfg, char *buf, size_t n)
{
    if (cfg->sync == PS_SYNC_SSP) {
        snprintf(buf, n, "ssp:%u", cfg->staleness);
    } else {
        snprintf(buf, n, "%s", cfg->sync == PS_SYNC_ASP ? "asp" : "bsp");
    }
}

const ps_cfg_custom ps_cfg_hidden = {parse_hidden, format_hidden};
const ps_cfg_custom ps_cfg_conv = {parse_conv, format_conv};
const ps_cfg_custom ps_cfg_synthetic = {parse_synthetic, format_synthetic};
const ps_cfg_custom ps_cfg_consistency = {parse_consistency, format_consistency};
