/* Tests for common/file.c and common/fileheader.c: round trips, every
 * rejection check, atomicity on failed writes, OOM sweeps. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/codec.h"
#include "common/fileheader.h"
#include "common/afile.h"
#include "common/err.h"
#include "common/file.h"
#include "common/mem.h"
#include "tests/unit/ps_test.h"

static char dir[64];

static int group_setup(void **state)
{
    (void)state;
    return ps_test_tmpdir_create(dir, sizeof dir, "file");
}

static int group_teardown(void **state)
{
    (void)state;
    return ps_test_rmtree(dir);
}

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static uint32_t get_le32(const unsigned char *p)
{
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

/* Writes magic, length, the hlen header bytes, their CRC (with_crc: the
 * format-1 layout has none) and the payload, by hand. */
static void write_framed(const char *path, const void *hdr, uint32_t hlen, const void *payload,
                         size_t plen, int with_crc)
{
    unsigned char raw[4096];
    memcpy(raw, "APS1", 4);
    put_le32(raw + 4, hlen);
    memcpy(raw + 8, hdr, hlen);
    size_t n = 8 + hlen;
    if (with_crc) {
        put_le32(raw + n, ps_file_crc32(0, raw, n));
        n += 4;
    }
    memcpy(raw + n, payload, plen);
    ps_test_write_file(path, raw, n + plen);
}

static ps_file_table tables[2] = {
    {"embedding", 1000, 16, 0, 500, 3},
    {"out", 16, 10, 8, 8, 3},
};

static ps_file_header sample_header(void)
{
    ps_file_header h = {0};
    strcpy(h.kind, "shard");
    h.config = "--servers 2 --adam-beta1 0.9\nline two \"quoted\"";
    h.clock = 1234567890123LL;
    h.rank = 3;
    h.nservers = 2;
    h.nworkers = 5;
    h.ntables = 2;
    h.tables = tables;
    return h;
}

/* Writes a 3-part payload "abc" "" "defgh" and returns its path. */
static void write_sample(const char *path)
{
    ps_file_header h = sample_header();
    const void *parts[] = {"abc", "", "defgh"};
    size_t lens[] = {3, 0, 5};
    assert_int_equal(ps_file_write_atomic(path, &h, parts, lens, 3), 0);
}

/* ps_file_read's rc for a file that must not read: nothing comes back. */
static int read_fails(const char *path)
{
    ps_file_header h;
    void *payload = (void *)1;
    size_t len = 99;
    int rc = ps_file_read(path, &h, &payload, &len);
    assert_true(rc != 0);
    assert_null(payload);
    assert_int_equal(len, 0);
    assert_null(h.config);
    assert_null(h.tables);
    return rc;
}

static void expect_read_fails(const char *path, int want)
{
    assert_int_equal(read_fails(path), want);
}

static void expect_sample_intact(const char *path)
{
    ps_file_header h;
    void *payload;
    size_t len;
    assert_int_equal(ps_file_read(path, &h, &payload, &len), 0);
    assert_int_equal(len, 8);
    assert_memory_equal(payload, "abcdefgh", 8);
    ps_free(payload);
    ps_file_header_fini(&h);
}

static void test_file_round_trip_keeps_header_and_payload(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "round.aps");
    write_sample(path);

    ps_file_header in = sample_header(), out;
    void *payload;
    size_t len;
    assert_int_equal(ps_file_read(path, &out, &payload, &len), 0);
    assert_int_equal(len, 8);
    assert_memory_equal(payload, "abcdefgh", 8);
    assert_int_equal(out.format_version, PS_FILE_FORMAT_VERSION);
    assert_string_equal(out.kind, "shard");
    assert_int_equal(out.payload_bytes, 8);
    assert_string_equal(out.config, in.config);
    assert_int_equal(out.clock, in.clock);
    assert_int_equal(out.rank, 3);
    assert_int_equal(out.nservers, 2);
    assert_int_equal(out.nworkers, 5);
    assert_int_equal(out.ntables, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(out.tables[i].name, tables[i].name);
        assert_int_equal(out.tables[i].rows, tables[i].rows);
        assert_int_equal(out.tables[i].width, tables[i].width);
        assert_int_equal(out.tables[i].first_slot, tables[i].first_slot);
        assert_int_equal(out.tables[i].nslots, tables[i].nslots);
        assert_int_equal(out.tables[i].nstate, tables[i].nstate);
    }
    ps_free(payload);
    ps_file_header_fini(&out);
    assert_null(out.config);
    ps_file_header_fini(&out); /* twice is harmless */

    /* The layout is the documented one: magic, LE length, header, LE CRC of
     * everything before it, payload. */
    unsigned char raw[4096];
    size_t n = ps_test_read_file(path, raw, sizeof raw);
    assert_memory_equal(raw, "APS1", 4);
    uint32_t hlen = get_le32(raw + 4);
    assert_int_equal(n, 8 + hlen + 4 + 8);
    assert_int_equal(get_le32(raw + 8 + hlen), ps_file_crc32(0, raw, 8 + hlen));
    assert_memory_equal(raw + 8 + hlen + 4, "abcdefgh", 8);
}

/* Every byte of the header is covered: flipping any one of them (the
 * prefix, a field, the header's own CRC) is refused, never read. */
static void test_file_rejects_every_header_byte_flip(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "hflip.aps");
    write_sample(path);
    unsigned char raw[4096], bad[4096];
    size_t n = ps_test_read_file(path, raw, sizeof raw);
    size_t covered = 8 + get_le32(raw + 4) + 4;
    ps_test_capture cap;
    ps_test_capture_begin(&cap);
    for (size_t i = 0; i < covered; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            memcpy(bad, raw, n);
            bad[i] ^= (unsigned char)(1u << bit);
            ps_test_write_file(path, bad, n);
            expect_read_fails(path, PS_ECKPT);
        }
    }
    test_free(ps_test_capture_end(&cap));
    ps_test_write_file(path, raw, n);
    expect_sample_intact(path); /* the control */
}

/* ps_afile_write_all (shared with common/metrics.c) writes every byte, and a
 * failed write is PS_EIO with errno left for the caller's message. */
/* The model field (kind "model" files) round trips and is absent unless
 * set; a file without it reads back has_model 0 (test above: shards). */
static void test_file_model_info_round_trips(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "model.bin");
    ps_file_table mt[2] = {{"w1", 1ULL << 20, 7, 0, 1ULL << 20, 1}, {"b1", 1, 7, 0, 1, 1}};
    ps_file_header h = {.clock = 600, .ntables = 2, .tables = mt, .has_model = 1};
    strcpy(h.kind, "model");
    ps_file_model *m = &h.model;
    strcpy(m->kind, "mlp");
    m->in_dim = 1ULL << 20;
    m->nclasses = 10;
    m->sparse_input = 1;
    m->hash_bits = 20;
    m->hash_fingerprint = 0xfedcba9876543210ULL;
    m->nhidden = PS_FILE_MAX_HIDDEN;
    for (uint32_t i = 0; i < PS_FILE_MAX_HIDDEN; i++) {
        m->hidden[i] = 1000 + i;
    }
    m->averaged = 1;
    /* The class labels, negative ones included (sint32: zigzag). */
    m->nlabels = 10;
    for (uint32_t i = 0; i < 10; i++) {
        m->labels[i] = (int32_t)(i * 1000) - 3000000;
    }
    const void *parts[] = {"xy"};
    size_t lens[] = {2};
    assert_int_equal(ps_file_write_atomic(path, &h, parts, lens, 1), 0);

    ps_file_header out;
    void *payload;
    size_t len;
    assert_int_equal(ps_file_read(path, &out, &payload, &len), 0);
    assert_string_equal(out.kind, "model");
    assert_int_equal(out.has_model, 1);
    assert_string_equal(out.model.kind, "mlp");
    assert_int_equal(out.model.in_dim, 1ULL << 20);
    assert_int_equal(out.model.nclasses, 10);
    assert_int_equal(out.model.sparse_input, 1);
    assert_int_equal(out.model.hash_bits, 20);
    assert_int_equal(out.model.hash_fingerprint, 0xfedcba9876543210ULL);
    assert_int_equal(out.model.nhidden, PS_FILE_MAX_HIDDEN);
    assert_memory_equal(out.model.hidden, m->hidden, sizeof m->hidden);
    assert_int_equal(out.model.averaged, 1);
    assert_int_equal(out.model.nlabels, 10);
    assert_memory_equal(out.model.labels, m->labels, 10 * sizeof m->labels[0]);
    assert_int_equal(out.ntables, 2);
    assert_string_equal(out.tables[0].name, "w1");
    assert_int_equal(out.tables[0].nslots, 1ULL << 20);
    ps_free(payload);
    ps_file_header_fini(&out);
    assert_int_equal(out.has_model, 0);

    /* A logreg: an empty ModelInfo still counts as present. */
    memset(m, 0, sizeof *m);
    strcpy(m->kind, "logreg");
    assert_int_equal(ps_file_write_atomic(path, &h, parts, lens, 1), 0);
    assert_int_equal(ps_file_read(path, &out, &payload, &len), 0);
    assert_int_equal(out.has_model, 1);
    assert_string_equal(out.model.kind, "logreg");
    assert_int_equal(out.model.nhidden, 0);
    assert_int_equal(out.model.nlabels, 0); /* older files: class c is label c */
    ps_free(payload);
    ps_file_header_fini(&out);

    /* More labels than a model file holds: refused on write. */
    m->nlabels = PS_FILE_MAX_LABELS + 1;
    PS_TEST_EXPECT_LOG(ps_file_write_atomic(path, &h, parts, lens, 1), PS_EINVAL, "labels");
    m->nlabels = 0;

    /* Without it, nothing is written or read back. */
    write_sample(path);
    assert_int_equal(ps_file_read(path, &out, &payload, &len), 0);
    assert_int_equal(out.has_model, 0);
    assert_string_equal(out.model.kind, "");
    ps_free(payload);
    ps_file_header_fini(&out);
}

static void test_file_model_info_limits(void **state)
{
    (void)state;
    ps_file_header h = {.has_model = 1};
    strcpy(h.kind, "model");
    strcpy(h.model.kind, "mlp");
    h.model.nhidden = PS_FILE_MAX_HIDDEN + 1;
    ps_bytes hb = {0};
    assert_int_equal(ps_fileheader_encode(&h, &hb), PS_EINVAL);
    h.model.nhidden = 1;
    memset(h.model.kind, 'm', sizeof h.model.kind);
    assert_int_equal(ps_fileheader_encode(&h, &hb), PS_EINVAL);
    ps_free(hb.data);

    /* Hand-built headers: field 14 (model) holding field 7 (hidden, packed)
     * with 9 widths, then field 1 (kind) of 16 bytes. Both parse as
     * protobuf and both are refused. */
    char path[128];
    path_in(path, sizeof path, "model-limits.aps");
    unsigned char hdr[13] = {0x72, 11, 0x3a, 9};
    memset(hdr + 4, 1, 9);
    write_framed(path, hdr, sizeof hdr, "", 0, 1);
    PS_TEST_EXPECT_LOG(read_fails(path), PS_ECKPT, "model.hidden or model.conv has 9 / 0 layers");
    unsigned char hdr2[20] = {0x72, 18, 0x0a, 16};
    memset(hdr2 + 4, 'k', 16);
    write_framed(path, hdr2, sizeof hdr2, "", 0, 1);
    PS_TEST_EXPECT_LOG(read_fails(path), PS_ECKPT, "model.kind is 16 bytes long");
}

/* The streaming writer: payload size and CRC declared up front, the data
 * in pieces, and both checked at commit. */
static void test_file_streaming_writer_checks_declared_size_and_crc(void **state)
{
    (void)state;
    char path[128], tmp[192];
    path_in(path, sizeof path, "swriter.aps");
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    ps_file_header h = sample_header();
    /* Chained CRCs are the CRC of the whole. */
    h.crc32 = ps_file_crc32(ps_file_crc32(ps_file_crc32(0, "abc", 3), "", 0), "defgh", 5);
    assert_int_equal(h.crc32, ps_file_crc32(0, "abcdefgh", 8));
    h.payload_bytes = 8;
    ps_file_writer *w;
    assert_int_equal(ps_file_create(&w, path, &h), 0);
    assert_int_equal(access(path, F_OK), -1); /* not published before commit */
    assert_int_equal(ps_file_write_payload(w, "abc", 3), 0);
    assert_int_equal(ps_file_write_payload(w, "defghi", 6), PS_EINVAL); /* past the size */
    assert_int_equal(ps_file_write_payload(w, "defgh", 5), 0);
    assert_int_equal(ps_file_commit(&w), 0);
    assert_null(w);
    expect_sample_intact(path);

    /* Other bytes than the CRC promised: nothing published, no temp left. */
    path_in(path, sizeof path, "swriter-bad.aps");
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    assert_int_equal(ps_file_create(&w, path, &h), 0);
    assert_int_equal(ps_file_write_payload(w, "abcdefgX", 8), 0);
    assert_int_equal(ps_file_commit(&w), PS_EIO);
    assert_null(w);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(access(tmp, F_OK), -1);
    /* Short of the declared size. */
    assert_int_equal(ps_file_create(&w, path, &h), 0);
    assert_int_equal(ps_file_write_payload(w, "abc", 3), 0);
    assert_int_equal(ps_file_commit(&w), PS_EINVAL);
    assert_int_equal(access(tmp, F_OK), -1);
    /* Abort. */
    assert_int_equal(ps_file_create(&w, path, &h), 0);
    ps_file_abort(&w);
    assert_null(w);
    ps_file_abort(&w);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(access(path, F_OK), -1);
}

static void test_file_write_all_writes_everything_or_eio(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "write_all.bin");
    enum { N = 300000 };
    unsigned char *src = test_malloc(N), *back = test_malloc(N + 1);
    for (size_t i = 0; i < N; i++) {
        src[i] = (unsigned char)(i * 131u >> 3);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ps_afile_write_all(fd, src, N), 0);
    assert_int_equal(ps_afile_write_all(fd, src, 0), 0);
    assert_int_equal(close(fd), 0);
    assert_int_equal(ps_test_read_file(path, back, N + 1), N);
    assert_memory_equal(back, src, N);
    errno = 0;
    assert_int_equal(ps_afile_write_all(-1, src, 1), PS_EIO);
    assert_int_equal(errno, EBADF);
    test_free(back);
    test_free(src);
}

static void test_file_crc_is_ieee_crc32(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "crc.aps");
    ps_file_header h = {0};
    strcpy(h.kind, "worker");
    const void *parts[] = {"1234", "56789"};
    size_t lens[] = {4, 5};
    assert_int_equal(ps_file_write_atomic(path, &h, parts, lens, 2), 0);
    ps_file_header out;
    void *payload;
    size_t len;
    assert_int_equal(ps_file_read(path, &out, &payload, &len), 0);
    /* The CRC-32 check value of "123456789" (IEEE 802.3, as in zlib). */
    assert_int_equal(out.crc32, 0xCBF43926u);
    assert_string_equal(out.config, ""); /* NULL config is written as "" */
    assert_int_equal(out.ntables, 0);
    ps_free(payload);
    ps_file_header_fini(&out);
}

static void test_file_empty_payload_round_trips(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "empty.aps");
    ps_file_header h = {0};
    strcpy(h.kind, "manifest");
    assert_int_equal(ps_file_write_atomic(path, &h, NULL, NULL, 0), 0);
    ps_file_header out;
    void *payload;
    size_t len;
    assert_int_equal(ps_file_read(path, &out, &payload, &len), 0);
    assert_int_equal(len, 0);
    assert_non_null(payload);
    assert_string_equal(out.kind, "manifest");
    ps_free(payload);
    ps_file_header_fini(&out);
}

static void test_file_streaming_read_in_pieces(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "stream.aps");
    enum { N = 100000 };
    float *big = test_malloc(N * sizeof *big);
    for (size_t i = 0; i < N; i++) {
        big[i] = (float)i * 0.5f;
    }
    ps_file_header h = sample_header();
    const void *parts[] = {big};
    size_t lens[] = {N * sizeof *big};
    assert_int_equal(ps_file_write_atomic(path, &h, parts, lens, 1), 0);

    ps_file_reader *r;
    ps_file_header out;
    assert_int_equal(ps_file_open(&r, path, &out), 0);
    assert_int_equal(out.payload_bytes, lens[0]);
    float piece[777];
    size_t done = 0;
    while (done < N) {
        size_t n = N - done < 777 ? N - done : 777;
        assert_int_equal(ps_file_read_payload(r, piece, n * sizeof *piece), 0);
        assert_memory_equal(piece, big + done, n * sizeof *piece);
        done += n;
    }
    /* Past the end is the caller's error, not the file's. */
    assert_int_equal(ps_file_read_payload(r, piece, 1), PS_EINVAL);
    ps_file_close(&r);
    assert_null(r);
    ps_file_close(&r);
    ps_file_header_fini(&out);
    test_free(big);
}

static void test_file_rejects_flipped_payload_byte(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "flip.aps");
    write_sample(path);
    unsigned char raw[4096];
    size_t n = ps_test_read_file(path, raw, sizeof raw);
    raw[n - 3] ^= 0x10;
    ps_test_write_file(path, raw, n);
    expect_read_fails(path, PS_ECKPT);

    /* The streaming reader reports it when the last byte is read. */
    ps_file_reader *r;
    ps_file_header h;
    char buf[8];
    assert_int_equal(ps_file_open(&r, path, &h), 0);
    assert_int_equal(ps_file_read_payload(r, buf, 4), 0);
    assert_int_equal(ps_file_read_payload(r, buf + 4, 4), PS_ECKPT);
    ps_file_close(&r);
    ps_file_header_fini(&h);
}

static void test_file_rejects_truncated_file(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "trunc.aps");
    write_sample(path);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    /* Cut in the payload, in the header, in the prefix, and to nothing. */
    off_t cuts[] = {sb.st_size - 1, 20, 6, 0};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        assert_int_equal(truncate(path, cuts[i]), 0);
        expect_read_fails(path, PS_ECKPT);
    }
}

static void test_file_rejects_trailing_bytes(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "trail.aps");
    write_sample(path);
    FILE *f = fopen(path, "ab");
    assert_non_null(f);
    fputc('x', f);
    fclose(f);
    expect_read_fails(path, PS_ECKPT);
}

static void test_file_rejects_wrong_magic(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "magic.aps");
    write_sample(path);
    unsigned char raw[4096];
    size_t n = ps_test_read_file(path, raw, sizeof raw);
    raw[3] = '2';
    ps_test_write_file(path, raw, n);
    expect_read_fails(path, PS_ECKPT);
}

/* Builds a file by hand around a header with the given version (format 1:
 * the layout without the header CRC). */
static void write_with_version(const char *path, uint32_t version)
{
    ps_file_header h = sample_header();
    h.format_version = version;
    h.payload_bytes = 3;
    h.crc32 = 0x352441C2u; /* CRC-32 of "abc" */
    ps_bytes hb = {0};
    assert_int_equal(ps_fileheader_encode(&h, &hb), 0);
    write_framed(path, hb.data, (uint32_t)hb.len, "abc", 3, version != 1);
    ps_free(hb.data);
}

static void test_file_rejects_future_format_version(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "version.aps");
    /* The hand-built file is accepted with the current version ... */
    write_with_version(path, PS_FILE_FORMAT_VERSION);
    ps_file_header h;
    void *payload;
    size_t len;
    assert_int_equal(ps_file_read(path, &h, &payload, &len), 0);
    assert_memory_equal(payload, "abc", 3);
    ps_free(payload);
    ps_file_header_fini(&h);
    /* ... and rejected with the next one ... */
    write_with_version(path, PS_FILE_FORMAT_VERSION + 1);
    expect_read_fails(path, PS_ECKPT);
    /* ... and format 1 (no header CRC), saying what it is. */
    write_with_version(path, 1);
    PS_TEST_EXPECT_LOG(read_fails(path), PS_ECKPT, "file has version 1");
    PS_TEST_EXPECT_LOG(read_fails(path), PS_ECKPT, "written by an older adamps");
}

static void test_file_rejects_garbage_header(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "garbage.aps");
    unsigned char garbage[16];
    memset(garbage, 0xff, sizeof garbage); /* not a protobuf message, with a good CRC */
    write_framed(path, garbage, sizeof garbage, "abc", 3, 1);
    PS_TEST_EXPECT_LOG(read_fails(path), PS_ECKPT, "does not parse");

    /* A header length far past the end of the file. */
    unsigned char raw[64];
    size_t n = ps_test_read_file(path, raw, sizeof raw);
    raw[7] = 0x7f;
    ps_test_write_file(path, raw, n);
    PS_TEST_EXPECT_LOG(read_fails(path), PS_ECKPT, "header length check failed");
}

static void test_file_rejects_overlong_kind_in_header(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "kind.aps");
    /* Field 2 (kind), length-delimited, 20 bytes: parses, but does not fit. */
    unsigned char hdr[22] = {0x12, 20};
    memset(hdr + 2, 'k', 20);
    write_framed(path, hdr, sizeof hdr, "", 0, 1);
    PS_TEST_EXPECT_LOG(read_fails(path), PS_ECKPT, "kind is 20 bytes long");
}

static void test_file_encode_rejects_unterminated_kind(void **state)
{
    (void)state;
    ps_file_header h = {0};
    memset(h.kind, 'x', sizeof h.kind);
    ps_bytes hb = {0};
    assert_int_equal(ps_fileheader_encode(&h, &hb), PS_EINVAL);
    ps_free(hb.data);
    char path[128];
    path_in(path, sizeof path, "never.aps");
    assert_int_equal(ps_file_write_atomic(path, &h, NULL, NULL, 0), PS_EINVAL);
    assert_int_equal(access(path, F_OK), -1);
}

static void test_file_missing_file_is_io_error(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "does-not-exist.aps");
    expect_read_fails(path, PS_EIO);
}

static void test_file_write_to_missing_dir_fails(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "no/such/dir/x.aps");
    ps_file_header h = sample_header();
    const void *parts[] = {"abc"};
    size_t lens[] = {3};
    assert_int_equal(ps_file_write_atomic(path, &h, parts, lens, 1), PS_EIO);
}

static void test_file_failed_create_keeps_old_file(void **state)
{
    (void)state;
    char path[128], tmp[192];
    path_in(path, sizeof path, "keep.aps");
    write_sample(path);
    /* A directory where the temp file must go makes the create fail, even
     * for root. */
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    assert_int_equal(mkdir(tmp, 0755), 0);
    ps_file_header h = sample_header();
    const void *parts[] = {"new content"};
    size_t lens[] = {11};
    assert_int_equal(ps_file_write_atomic(path, &h, parts, lens, 1), PS_EIO);
    assert_int_equal(rmdir(tmp), 0);
    expect_sample_intact(path);
}

static void test_file_failed_write_keeps_old_file_and_removes_temp(void **state)
{
    (void)state;
    char path[128], tmp[192];
    path_in(path, sizeof path, "fsize.aps");
    write_sample(path);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());

    /* A file size limit makes write() fail part way (EFBIG). */
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 4096;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    static char big[64 * 1024];
    ps_file_header h = sample_header();
    const void *parts[] = {big};
    size_t lens[] = {sizeof big};
    int rc = ps_file_write_atomic(path, &h, parts, lens, 1);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);

    assert_int_equal(rc, PS_EIO);
    assert_int_equal(access(tmp, F_OK), -1);
    expect_sample_intact(path);
}

static void test_file_write_to_readonly_dir_fails(void **state)
{
    (void)state;
    if (geteuid() == 0) {
        skip(); /* root writes anywhere; the tests above cover the paths */
    }
    char sub[128], path[160];
    path_in(sub, sizeof sub, "ro");
    assert_int_equal(mkdir(sub, 0755), 0);
    snprintf(path, sizeof path, "%s/x.aps", sub);
    write_sample(path);
    assert_int_equal(chmod(sub, 0555), 0);
    ps_file_header h = sample_header();
    const void *parts[] = {"zz"};
    size_t lens[] = {2};
    int rc = ps_file_write_atomic(path, &h, parts, lens, 1);
    assert_int_equal(chmod(sub, 0755), 0);
    assert_int_equal(rc, PS_EIO);
    expect_sample_intact(path);
}

static void test_file_atomic_writer_abort_leaves_nothing(void **state)
{
    (void)state;
    char path[128], tmp[192];
    path_in(path, sizeof path, "abort.bin");
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    ps_afile *f;
    assert_int_equal(ps_afile_open(&f, path), 0);
    assert_int_equal(access(tmp, F_OK), 0);
    assert_int_equal(ps_afile_write(f, "xyz", 3), 0);
    ps_afile_abort(&f);
    assert_null(f);
    ps_afile_abort(&f);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(access(path, F_OK), -1);
}

static void test_file_write_survives_oom_sweep(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "oomw.aps");
    ps_file_header h = sample_header();
    const void *parts[] = {"abc", "defgh"};
    size_t lens[] = {3, 5};
    int rc = PS_ENOMEM;
    long n;
    for (n = 0; rc == PS_ENOMEM && n < 1000; n++) {
        ps_test_fail_alloc(n);
        rc = ps_file_write_atomic(path, &h, parts, lens, 2);
        ps_test_fail_alloc(-1);
        if (rc == PS_ENOMEM) {
            assert_int_equal(access(path, F_OK), -1);
        }
    }
    assert_int_equal(rc, 0);
    assert_true(n > 1);
    expect_sample_intact(path);
}

static void test_file_read_survives_oom_sweep(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "oomr.aps");
    write_sample(path);
    int rc = PS_ENOMEM;
    long n;
    ps_file_header h;
    void *payload = NULL;
    size_t len;
    for (n = 0; rc == PS_ENOMEM && n < 1000; n++) {
        ps_test_fail_alloc(n);
        rc = ps_file_read(path, &h, &payload, &len);
        ps_test_fail_alloc(-1);
        if (rc == PS_ENOMEM) {
            assert_null(payload);
            assert_null(h.config);
        }
    }
    assert_int_equal(rc, 0);
    assert_true(n > 3);
    assert_memory_equal(payload, "abcdefgh", 8);
    ps_free(payload);
    ps_file_header_fini(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, ps_test_setup, ps_test_teardown)
        T(test_file_round_trip_keeps_header_and_payload),
        T(test_file_rejects_every_header_byte_flip),
        T(test_file_model_info_round_trips),
        T(test_file_model_info_limits),
        T(test_file_streaming_writer_checks_declared_size_and_crc),
        T(test_file_crc_is_ieee_crc32),
        T(test_file_write_all_writes_everything_or_eio),
        T(test_file_empty_payload_round_trips),
        T(test_file_streaming_read_in_pieces),
        T(test_file_rejects_flipped_payload_byte),
        T(test_file_rejects_truncated_file),
        T(test_file_rejects_trailing_bytes),
        T(test_file_rejects_wrong_magic),
        T(test_file_rejects_future_format_version),
        T(test_file_rejects_garbage_header),
        T(test_file_rejects_overlong_kind_in_header),
        T(test_file_encode_rejects_unterminated_kind),
        T(test_file_missing_file_is_io_error),
        T(test_file_write_to_missing_dir_fails),
        T(test_file_failed_create_keeps_old_file),
        T(test_file_failed_write_keeps_old_file_and_removes_temp),
        T(test_file_write_to_readonly_dir_fails),
        T(test_file_atomic_writer_abort_leaves_nothing),
        T(test_file_write_survives_oom_sweep),
        T(test_file_read_survives_oom_sweep),
#undef T
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
