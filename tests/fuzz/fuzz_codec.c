/* libFuzzer target for the wire decoders (common/codec.c): every input goes
 * to all four ps_codec_decode_* with fixed limits. A decode must either fail
 * with PS_EMSG or return a message that satisfies every promise codec.h
 * makes; an accepted message must also survive encode -> decode unchanged.
 * Built and run by tests/fuzz/fuzz.mk (`make fuzz`). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/codec.h"
#include "common/err.h"
#include "common/log.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Widths 0 and 1 and a table whose slots reach 2^63, to hit the edges of the
 * value count and slot range checks. */
static const ps_msg_table tables[4] = {
    {.width = 1, .slots = 1000},
    {.width = 3, .slots = 64},
    {.width = 0, .slots = 5},
    {.width = 2, .slots = (uint64_t)1 << 63},
};
static const ps_msg_limits lim = {.tables = tables, .ntables = 4, .nworkers = 3};

static ps_codec *dec, *enc;
static ps_bytes bytes;

static void check_segs(const ps_seg *s, size_t nsegs, int slots, int values)
{
    for (size_t i = 0; i < nsegs; i++) {
        CHECK(s[i].table < lim.ntables);
        for (size_t j = 0; j < i; j++) {
            CHECK(s[j].table != s[i].table);
        }
        const ps_msg_table *t = &tables[s[i].table];
        for (size_t k = 0; slots && k < s[i].nkeys; k++) {
            CHECK(s[i].slots[k] < t->slots);
            CHECK(k == 0 || s[i].slots[k] > s[i].slots[k - 1]);
        }
        CHECK(slots || s[i].slots == NULL);
        CHECK(values ? s[i].nvalues == s[i].nkeys * t->width : s[i].nvalues == 0);
        volatile float sink = 0;
        /* values NULL: they follow as a payload, which the header only
         * announces (common/msg.h). */
        for (size_t k = 0; s[i].values && k < s[i].nvalues; k++) {
            sink += s[i].values[k];
        }
        (void)sink;
    }
}

static void same_segs(const ps_seg *a, const ps_seg *b, size_t nsegs, int slots, int values)
{
    for (size_t i = 0; i < nsegs; i++) {
        CHECK(a[i].table == b[i].table && a[i].nkeys == b[i].nkeys);
        CHECK(!slots || a[i].nkeys == 0 ||
              memcmp(a[i].slots, b[i].slots, a[i].nkeys * sizeof(uint64_t)) == 0);
        CHECK(!values || a[i].nvalues == b[i].nvalues);
        CHECK(!values || !a[i].values == !b[i].values);
        CHECK(!values || a[i].nvalues == 0 || !a[i].values ||
              memcmp(a[i].values, b[i].values, a[i].nvalues * sizeof(float)) == 0);
    }
}

static void fuzz_push(const uint8_t *data, size_t size)
{
    ps_push m, back;
    int rc = ps_codec_decode_push(dec, &lim, 1, data, size, &m);
    CHECK(rc == 0 || rc == PS_EMSG);
    if (rc) {
        return;
    }
    CHECK(m.clock >= 0 && m.worker < lim.nworkers);
    check_segs(m.segs, m.nsegs, 1, 1);
    CHECK(ps_codec_encode_push(enc, &m, &bytes) == 0);
    CHECK(ps_codec_decode_push(enc, &lim, 1, bytes.data, bytes.len, &back) == 0);
    CHECK(back.clock == m.clock && back.worker == m.worker && back.nsegs == m.nsegs);
    same_segs(m.segs, back.segs, m.nsegs, 1, 1);
}

static void fuzz_pull(const uint8_t *data, size_t size)
{
    ps_pull m, back;
    int rc = ps_codec_decode_pull(dec, &lim, 1, data, size, &m);
    CHECK(rc == 0 || rc == PS_EMSG);
    if (rc) {
        return;
    }
    CHECK(m.worker < lim.nworkers && (m.averaged == 0 || m.averaged == 1));
    check_segs(m.segs, m.nsegs, 1, 0);
    CHECK(ps_codec_encode_pull(enc, &m, &bytes) == 0);
    CHECK(ps_codec_decode_pull(enc, &lim, 1, bytes.data, bytes.len, &back) == 0);
    CHECK(back.request_id == m.request_id && back.min_version == m.min_version);
    CHECK(back.worker == m.worker && back.averaged == m.averaged && back.nsegs == m.nsegs);
    same_segs(m.segs, back.segs, m.nsegs, 1, 0);
}

static void fuzz_reply(const uint8_t *data, size_t size)
{
    ps_reply m, back;
    int rc = ps_codec_decode_reply(dec, &lim, 1, data, size, &m);
    CHECK(rc == 0 || rc == PS_EMSG);
    if (rc) {
        return;
    }
    CHECK(m.version >= 0);
    check_segs(m.segs, m.nsegs, 0, 1);
    CHECK(ps_codec_encode_reply(enc, &m, &bytes) == 0);
    CHECK(ps_codec_decode_reply(enc, &lim, 1, bytes.data, bytes.len, &back) == 0);
    CHECK(back.request_id == m.request_id && back.version == m.version);
    CHECK(back.nsegs == m.nsegs);
    same_segs(m.segs, back.segs, m.nsegs, 0, 1);
}

static void fuzz_ctrl(const uint8_t *data, size_t size)
{
    ps_ctrl m, back;
    int rc = ps_codec_decode_ctrl(dec, (size & 1) ? &lim : NULL, 1, data, size, &m);
    CHECK(rc == 0 || rc == PS_EMSG);
    if (rc) {
        return;
    }
    CHECK((unsigned)m.kind <= PS_CTRL_LAST && m.clock >= 0 && m.text != NULL);
    CHECK(!(size & 1) || m.worker < lim.nworkers);
    CHECK(ps_codec_encode_ctrl(enc, &m, &bytes) == 0);
    CHECK(ps_codec_decode_ctrl(enc, NULL, 1, bytes.data, bytes.len, &back) == 0);
    CHECK(back.kind == m.kind && back.worker == m.worker && back.clock == m.clock);
    CHECK(back.value == m.value && strcmp(back.text, m.text) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dec) {
        /* Rejections log one line each; at fuzzing rates that is noise. */
        ps_log_set_level((ps_log_level)(PS_LOG_ERROR + 1));
        if (ps_codec_create(&dec) != 0 || ps_codec_create(&enc) != 0) {
            abort();
        }
    }
    /* Each input twice: on a long-lived codec, so arena reuse across
     * messages of different shapes is fuzzed, and on a fresh one, whose
     * arrays are still NULL (that found a NULL + 0 in decode_segs). */
    ps_codec *kept = dec;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && ps_codec_create(&dec) != 0) {
            abort();
        }
        fuzz_push(data, size);
        fuzz_pull(data, size);
        fuzz_reply(data, size);
        fuzz_ctrl(data, size);
    }
    ps_codec_destroy(&dec);
    dec = kept;
    return 0;
}
