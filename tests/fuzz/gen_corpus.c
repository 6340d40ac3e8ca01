/*
 * gen_corpus.c -- writes the fuzz targets' seed corpora: gen-fuzz-corpus DIR makes
 * DIR/<target>/seed-NNN for each target in tests/fuzz/.
 *
 * The seeds are the unit tests' kinds of input, small: name.basics-like TSV rows, CSV with
 * quotes, quoted newlines, CRLF and a BOM, no final newline, invalid UTF-8 and zero bytes,
 * COPY text escapes; gzip in one and two members, with header fields, zero padding, stored
 * blocks, truncated; zlib; zstd, bzip2 and xz (those the build reads) in one and two
 * streams, cut, with xz stream padding and trailing garbage; values of each binary kind (integers
 * at their limits, booleans, numerics with exponents, NaN and infinities, arrays); and restart
 * points taken from real decodes (gzip, zlib, plain, and the codecs' stream boundaries). Each seed
 * starts with its target's configuration bytes (see each target's top comment), set to a few useful
 * combinations.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>
#include <zlib.h>

#include "internal.h"

static const char *outdir;
static unsigned seq;

struct bytes {
    unsigned char *p;
    size_t n, cap;
};

static void add(struct bytes *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        if (!(b->p = realloc(b->p, b->cap)))
            abort();
    }
    if (n)
        memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void adds(struct bytes *b, const char *s)
{
    add(b, s, strlen(s));
}

static void addb(struct bytes *b, unsigned c)
{
    unsigned char x = (unsigned char)c;
    add(b, &x, 1);
}

/* Writes head (configuration bytes) + body as the next seed of target. */
static void seed(const char *target, const void *head, size_t hn, const void *body, size_t bn)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", outdir, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/seed-%03u", outdir, target, seq++);
    FILE *f = fopen(path, "wb");
    if (!f || (hn && fwrite(head, 1, hn, f) != hn) || (bn && fwrite(body, 1, bn, f) != bn) ||
        fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* p compressed: window_bits 31 gzip, 15 zlib; header fields for gzip when named. */
static void deflated(struct bytes *out, const void *p, size_t n, int window_bits, int level,
                     int named, int strategy)
{
    static unsigned char name[] = "name.basics.tsv", extra[] = "XY\4\0abcd";
    z_stream zs;
    gz_header h;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, level, Z_DEFLATED, window_bits, 8, strategy) != Z_OK)
        abort();
    if (named) {
        memset(&h, 0, sizeof h);
        h.name = name;
        h.extra = extra;
        h.extra_len = 8;
        h.hcrc = 1;
        deflateSetHeader(&zs, &h);
    }
    size_t bound = deflateBound(&zs, (uLong)n) + 64;
    unsigned char *tmp = malloc(bound);
    if (!tmp)
        abort();
    zs.next_in = (unsigned char *)(uintptr_t)p;
    zs.avail_in = (uInt)n;
    zs.next_out = tmp;
    zs.avail_out = (uInt)bound;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
        abort();
    add(out, tmp, bound - zs.avail_out);
    deflateEnd(&zs);
    free(tmp);
}

static void tsv_rows(struct bytes *b, unsigned rows)
{
    static const char *const names[] = {"Fred Astaire", "Lauren Bacall", "Zoë Kravitz",
                                        "Toshiro Mifune", "Ngozi Okonjo"};
    char line[200];
    adds(b, "nconst\tprimaryName\tbirthYear\tdeathYear\tprimaryProfession\tknownForTitles\n");
    for (unsigned i = 1; i <= rows; i++) {
        int k = snprintf(line, sizeof line, "nm%07u\t%s\t%u\t%s\tactor,producer\ttt%07u,tt%07u\n",
                         i, names[i % 5], 1900 + i % 100, i % 3 ? "\\N" : "1999", i * 7, i * 13);
        add(b, line, (size_t)k);
    }
}

/* ---- decoder and restart points ---- */

struct collect {
    struct pgfeed_stage base;
    struct bytes got;
};

static int c_write(struct pgfeed_stage *s, const char *p, size_t n)
{
    add(&container_of(s, struct collect, base)->got, p, n);
    return 0;
}

static int c_finish(struct pgfeed_stage *s)
{
    (void)s;
    return 0;
}

static const struct pgfeed_stage_ops collect_ops = {
    .name = "sink", .write = c_write, .finish = c_finish};

static uv_loop_t loop;

#ifdef PGFEED_HAVE_ZSTD
#include <zstd.h>
#endif
#ifdef PGFEED_HAVE_BZIP2
#include <bzlib.h>
#endif
#ifdef PGFEED_HAVE_XZ
#include <lzma.h>
#endif

/* One stream of p[0, n) in codec c (0 zstd, 1 bzip2, 2 xz), if the build reads it: 1, else 0. */
static int compressed(struct bytes *b, int c, const void *p, size_t n)
{
    size_t cap = n + n / 2 + 1024;
    unsigned char *out = malloc(cap);
    size_t len = 0;
    int ok = 0;

    if (!out)
        abort();
#ifdef PGFEED_HAVE_ZSTD
    if (c == 0 && !ZSTD_isError(len = ZSTD_compress(out, cap, p, n, 3)))
        ok = 1;
#endif
#ifdef PGFEED_HAVE_BZIP2
    unsigned blen = (unsigned)cap;
    if (c == 1 && BZ2_bzBuffToBuffCompress((char *)out, &blen, (char *)(uintptr_t)p, (unsigned)n, 1,
                                           0, 0) == BZ_OK) {
        len = blen;
        ok = 1;
    }
#endif
#ifdef PGFEED_HAVE_XZ
    if (c == 2 &&
        lzma_easy_buffer_encode(1, LZMA_CHECK_CRC32, NULL, p, n, out, &len, cap) == LZMA_OK)
        ok = 1;
#endif
    if (ok)
        add(b, out, len);
    free(out);
    return ok;
}

/* zstd, bzip2, xz: one and two streams, cut, with garbage after, xz with padding. */
static void codec_seeds(const struct bytes *text, const struct bytes *small,
                        const unsigned char cfgs[][4], struct bytes *multi)
{
    struct bytes b = {0};

    for (int c = 0; c < 3; c++) {
        b.n = 0;
        if (!compressed(&b, c, text->p, text->n))
            continue;
        seed("fuzz_decode", cfgs[0], 4, b.p, b.n);
        seed("fuzz_decode", cfgs[1], 4, b.p, b.n / 2);
        b.n = 0;
        compressed(&b, c, small->p, small->n / 2);
        if (c == 2)
            add(&b, "\0\0\0\0", 4);
        compressed(&b, c, small->p + small->n / 2, small->n - small->n / 2);
        for (size_t k = 0; k < 4; k++)
            seed("fuzz_decode", cfgs[k], 4, b.p, b.n);
        add(&b, "garbage\n", 8);
        seed("fuzz_decode", cfgs[2], 4, b.p, b.n);
        compressed(&multi[c], c, text->p, text->n / 3);
        compressed(&multi[c], c, text->p + text->n / 3, text->n - text->n / 3);
    }
    free(b.p);
}

/* xz, if the build reads it: one stream of 2 KiB blocks (what xz -T writes, small). */
static void xz_multi_block(struct bytes *b, const struct bytes *text)
{
#ifdef PGFEED_HAVE_XZ
    lzma_stream s = LZMA_STREAM_INIT;
    lzma_mt mt = {.threads = 1, .block_size = 2048, .preset = 1, .check = LZMA_CHECK_CRC32};
    size_t cap = lzma_stream_buffer_bound(text->n);
    unsigned char *out = malloc(cap);

    if (!out || lzma_stream_encoder_mt(&s, &mt) != LZMA_OK)
        abort();
    s.next_in = text->p;
    s.avail_in = text->n;
    s.next_out = out;
    s.avail_out = cap;
    lzma_ret rc;
    while ((rc = lzma_code(&s, LZMA_FINISH)) == LZMA_OK)
        ;
    if (rc != LZMA_STREAM_END)
        abort();
    add(b, out, cap - s.avail_out);
    lzma_end(&s);
    free(out);
#else
    (void)b;
    (void)text;
#endif
}

/* bzip2, if the build reads it: one level 1 stream of three 100 kB blocks (rows repeated: small).
 */
static void bzip2_multi_block(struct bytes *b, const struct bytes *small)
{
#ifdef PGFEED_HAVE_BZIP2
    struct bytes rows = {0};

    while (rows.n < 250000)
        add(&rows, small->p, small->n);
    if (!compressed(b, 1, rows.p, rows.n))
        abort();
    free(rows.p);
#else
    (void)b;
    (void)small;
#endif
}

static void decoder_seeds(void)
{
    struct bytes text = {0}, small = {0}, gz = {0}, two = {0}, zl = {0}, b = {0};
    tsv_rows(&text, 400);
    tsv_rows(&small, 6);
    deflated(&gz, text.p, text.n, 31, 6, 1, Z_DEFAULT_STRATEGY);
    deflated(&two, small.p, small.n, 31, 9, 0, Z_DEFAULT_STRATEGY);
    deflated(&two, small.p, small.n, 31, 1, 1, Z_DEFAULT_STRATEGY);
    deflated(&zl, small.p, small.n, 15, 6, 0, Z_DEFAULT_STRATEGY);
    static const unsigned char cfgs[][4] = {
        {0x05, 0x00, 0x00, 0x00}, /* 4 KiB out, whole */
        {0x11, 0x03, 0x0d, 0x10}, /* 2-byte out, every block a point, EAGAIN, 2-byte pieces */
        {0x23, 0x02, 0x0c, 0x55}, /* 64-byte out, ISA-L, span 100, EAGAIN, 17-byte pieces */
        {0x4e, 0x05, 0x01, 0x03}, /* zlib only, 128 KiB out, skip 111 */
    };
    const struct bytes *ins[] = {&gz, &two, &zl, &small};
    for (size_t i = 0; i < 4; i++)
        for (size_t c = 0; c < 4; c++)
            seed("fuzz_decode", cfgs[c], 4, ins[i]->p, ins[i]->n);
    /* truncated, padded, stored blocks, a lone 1f, trailing garbage */
    seed("fuzz_decode", cfgs[1], 4, gz.p, gz.n / 2);
    b.n = 0;
    add(&b, two.p, two.n);
    add(&b, "\0\0\0\0", 4);
    seed("fuzz_decode", cfgs[0], 4, b.p, b.n);
    b.n = 0;
    deflated(&b, small.p, 300, 31, 0, 0, Z_DEFAULT_STRATEGY);
    seed("fuzz_decode", cfgs[2], 4, b.p, b.n);
    deflated(&b, small.p, small.n, 31, 9, 0, Z_HUFFMAN_ONLY);
    seed("fuzz_decode", cfgs[1], 4, b.p, b.n);
    b.n = 0;
    deflated(&b, small.p, small.n, 31, 9, 0, Z_FIXED);
    add(&b, "\x1f", 1);
    seed("fuzz_decode", cfgs[0], 4, b.p, b.n);
    seed("fuzz_decode", cfgs[0], 4, "\x1f", 1);
    seed("fuzz_decode", cfgs[0], 4, "\x1f\x8b", 2);
    b.n = 0;
    add(&b, zl.p, zl.n);
    adds(&b, "garbage\n");
    seed("fuzz_decode", cfgs[3], 4, b.p, b.n);

    struct bytes multi[3] = {{0}, {0}, {0}}, xz_blocks = {0}, bz_blocks = {0};
    codec_seeds(&text, &small, cfgs, multi);
    xz_multi_block(&xz_blocks, &text);
    seed("fuzz_decode", cfgs[1], 4, xz_blocks.p, xz_blocks.n);
    bzip2_multi_block(&bz_blocks, &small);
    seed("fuzz_decode", cfgs[0], 4, bz_blocks.p, bz_blocks.n);

    /* Restart points: decode with a point at every block, take some, write blob + rest. */
    const struct bytes *srcs[] = {&gz,       &two,      &zl,        &text,     &multi[0],
                                  &multi[1], &multi[2], &xz_blocks, &bz_blocks};
    for (size_t i = 0; i < 9; i++) {
        if (srcs[i]->n == 0)
            continue;
        for (int isal = 0; isal < 2; isal++) {
            pgfeed_job_t *job = NULL;
            struct pgfeed_options o;
            pgfeed_options_init(&o);
            o.source = "-";
            o.table = "t";
            if (pgfeed_job_new(&loop, &o, &job) != 0)
                abort();
            struct pgfeed_stage *dec;
            struct collect k = {.base = {.ops = &collect_ops}};
            if (pgfeed__decoder_new(pgfeed__job_ctx(job), 1024, &dec) != 0)
                abort();
            pgfeed__decoder_use_isal(dec, isal);
            pgfeed__decoder_set_span(dec, 0);
            dec->next = &k.base;
            k.base.prev = dec;
            k.base.ctx = pgfeed__job_ctx(job);
            if (dec->ops->write(dec, (const char *)srcs[i]->p, srcs[i]->n) != 0 ||
                dec->ops->finish(dec) != 0)
                abort();
            for (int j = 1; j <= 3; j++) {
                struct pgfeed_buf blob = {0};
                uint64_t raw = 0, at = k.got.n * (uint64_t)j / 4;
                if (pgfeed__decoder_restart_point(dec, at, &blob, &raw) == 0) {
                    struct bytes s = {0};
                    unsigned char head[6] = {0x00,
                                             0x02,
                                             0x04,
                                             0,
                                             (unsigned char)blob.len,
                                             (unsigned char)(blob.len >> 8)};
                    head[3] = (unsigned char)(at % 200);
                    head[0] = (unsigned char)(isal ? 0 : 4);
                    add(&s, head, 6);
                    add(&s, blob.data, blob.len);
                    add(&s, srcs[i]->p + raw, srcs[i]->n - raw);
                    seed("fuzz_restart", NULL, 0, s.p, s.n);
                    free(s.p);
                }
                pgfeed__buf_free(&blob);
            }
            dec->ops->destroy(dec);
            free(k.got.p);
            pgfeed_job_close(job, NULL);
            uv_run(&loop, UV_RUN_DEFAULT);
        }
    }
    free(text.p);
    free(small.p);
    free(gz.p);
    free(two.p);
    free(zl.p);
    free(b.p);
    for (int c = 0; c < 3; c++)
        free(multi[c].p);
    free(xz_blocks.p);
    free(bz_blocks.p);
}

/* ---- parser ---- */

static void parse_seeds(void)
{
    struct bytes t = {0};
    tsv_rows(&t, 12);
    static const char csv[] = "\xEF\xBB\xBFid,name,tags\r\n"
                              "1,\"Astaire, Fred\",\"a,b\"\r\n"
                              "2,\"line\nbreak\",\"say \"\"hi\"\"\"\r\n"
                              "3,,\"\"\n"
                              "4,ab\"c,x\r"
                              "5,\"unterminated";
    static const char text[] = "1\tFred\\tA\t{a,b}\n"
                               "2\t\\N\t\\\\x\n"
                               "3\tbad\\\n"
                               "\\.\n";
    static const char bad[] = "1\tok\tx\n"
                              "2\tz\xC3\x28\tx\n"
                              "3\tzero\0byte\tx\n"
                              "4\ttoo\tmany\tfields\n"
                              "5\tfew\n"
                              "6\tno final newline\tx";
    static const char bin[] = "1\t-32768\t2147483647\tt\t1.5e3\t{1,2,3}\n"
                              "2\t32768\t-9223372036854775808\tyes\tNaN\t{}\n"
                              "3\t 7 \tx\toff\t-Infinity\t{4}\n"
                              "4\t\\N\t0\t0\t.5\t{1,x}\n";
    /* byte 0: format | header << 2 | binary << 4 | position << 5 (see fuzz_parse.c) */
    unsigned char h[16];
    static const unsigned char tsv_cfgs[][8] = {
        {0x04, 0x05, 0x00, 0x00, 0x02, 0x00, 0x01, 0}, /* tsv, header, 6 fields, 2 rows */
        {0x04, 0x05, 0x30, 0x00, 0x22, 0x2c, 0x07, 0}, /* arrays, EAGAIN, pieces, rejects */
        {0x00, 0x05, 0x00, 0x00, 0x00, 0x01, 0x00, 0}, /* no header, max_line 8 */
        {0x08, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0}, /* header refused */
    };
    for (size_t i = 0; i < 4; i++)
        seed("fuzz_parse", tsv_cfgs[i], 8, t.p, t.n);
    static const unsigned char csv_cfgs[][8] = {
        {0x06, 0x02, 0x04, 0x00, 0x61, 0x00, 0x00, 0}, /* csv, header, 3 fields, tags array */
        {0x02, 0x02, 0x00, 0x00, 0x41, 0x3c, 0x05, 0}, /* no header, EAGAIN, rejects */
        {0x02, 0x02, 0x04, 0x40, 0x63, 0x4a, 0x09, 0}, /* null "", pieces */
    };
    for (size_t i = 0; i < 3; i++)
        seed("fuzz_parse", csv_cfgs[i], 8, csv, sizeof csv - 1);
    static const unsigned char text_cfg[8] = {0x01, 0x02, 0x00, 0x00, 0x61, 0x24, 0x03, 0};
    seed("fuzz_parse", text_cfg, 8, text, sizeof text - 1);
    static const unsigned char bad_cfg[8] = {0x00, 0x02, 0x00, 0x00, 0x61, 0x24, 0x03, 0};
    seed("fuzz_parse", bad_cfg, 8, bad, sizeof bad - 1);
    /* binary: 6 fields, the last an array; kinds int4 int2 int8 bool numeric int4[] */
    memcpy(h,
           (const unsigned char[]){0x10, 0x05, 0x20, 0x00, 0x61, 0x20, 0x00, 0, 2, 1, 3, 4, 5, 2},
           14);
    seed("fuzz_parse", h, 14, bin, sizeof bin - 1);
    h[0] = 0x12; /* csv */
    h[3] = 0x01; /* tab delimiter */
    seed("fuzz_parse", h, 14, bin, sizeof bin - 1);
    h[0] = 0x30; /* start at line 7 */
    h[5] = 0x2c;
    seed("fuzz_parse", h, 14, bin, sizeof bin - 1);
    /* windows-1252 (byte 7): curly quotes, euro, an undefined 0x81, a zero byte, a UTF-8
     * BOM that is data; csv with a header, then tsv with rejects. */
    static const char w1252[] = "\xEF\xBB\xBFid,n\xE4me,tags\r\n"
                                "1,\"\x93q\x94, \x80\",\"a,\xE9\"\r\n"
                                "2,bad\x81,x\n"
                                "3,z\0,\x9F\n";
    static const unsigned char w_cfgs[][8] = {
        {0x06, 0x02, 0x04, 0x00, 0x61, 0x24, 0x03, 2}, /* csv, header, rejects, WIN1252 */
        {0x00, 0x02, 0x00, 0x02, 0x61, 0x2c, 0x05, 2}, /* tsv split on ',', EAGAIN */
        {0x02, 0x02, 0x00, 0x00, 0x61, 0x00, 0x00, 1}, /* csv, LATIN1 */
    };
    for (size_t i = 0; i < 3; i++)
        seed("fuzz_parse", w_cfgs[i], 8, w1252, sizeof w1252 - 1);
    free(t.p);
}

/* ---- encoders ---- */

static void encode_seeds(void)
{
    static const char *const lines[] = {
        "nm0000001\tFred Astaire\t1899\t1987\tactor,producer\ttt0050419,tt0053137",
        "a\\b\tc\rd\t\\N\t{x}\t\"q\",r\t",
        "plain text with no delimiter at all, long enough for two blocks of sixteen",
        "\t\t\t",
        "x\x01y\x0bz\x0c\t\\\\\t,,,\t\"\"\"",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        /* delimiter tab; fields 6, null "\N" (2 bytes); arrays: field 5 and 6 */
        unsigned char h[6] = {'\t', 0x25, 0x30, 0, '\\', 'N'};
        seed("fuzz_encode_copy", h, 6, lines[i], strlen(lines[i]));
        h[1] = 0x03; /* 4 fields, null "" */
        h[2] = 0x0f;
        seed("fuzz_encode_copy", h, 4, lines[i], strlen(lines[i]));
        h[0] = ','; /* comma delimiter, 2 fields */
        h[1] = 0x11;
        h[4] = 'x';
        seed("fuzz_encode_copy", h, 5, lines[i], strlen(lines[i]));
    }
    static const struct {
        const char *line;
        unsigned char kinds[8];
        unsigned nf, arrays;
    } rows[] = {
        {"12\t-32768\t9223372036854775807\ttrue", {2, 1, 3, 4}, 4, 0},
        {"  42  \t32768\t-9223372036854775809\tmaybe", {2, 1, 3, 4}, 4, 0},
        {"1.5e3\t-0.000123\tNaN\t-Infinity\t1e-16383\t123456789012345678901234567890.5",
         {5, 5, 5, 5, 5, 5},
         6,
         0},
        {"1,2,3\t\ty,n,on,off\t1.5,2e2,inf\ta,,b", {2, 1, 4, 5, 0}, 5, 0x1f},
        {"text\t\\N\t\t0", {0, 0, 0, 4}, 4, 0},
        {"1e1000000000\t.\t1e\t- 1", {5, 5, 5, 2}, 4, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        unsigned char h[12] = {(unsigned char)(rows[i].nf - 1) | 0x10,
                               (unsigned char)rows[i].arrays, 0, 0};
        memcpy(h + 4, rows[i].kinds, rows[i].nf);
        seed("fuzz_encode_binary", h, 4 + rows[i].nf, rows[i].line, strlen(rows[i].line));
        h[0] |= 0x40; /* csv on the way back */
        seed("fuzz_encode_binary", h, 4 + rows[i].nf, rows[i].line, strlen(rows[i].line));
        /* and the tuple it makes, to be read */
        struct pgfeed_row_spec sp = {'\t', "\\N", 2, rows[i].nf, NULL};
        struct pgfeed_bin_field f[8];
        for (unsigned j = 0; j < rows[i].nf; j++) {
            static const uint32_t oids[] = {25, 21, 23, 20, 16, 1700};
            f[j].kind = rows[i].kinds[j];
            f[j].is_array = (rows[i].arrays >> j) & 1;
            f[j].elem_oid = oids[rows[i].kinds[j]];
        }
        size_t n = strlen(rows[i].line);
        char *buf = malloc(PGFEED_ENCODE_BIN_ROW_MAX(n, rows[i].nf)), *o = buf;
        struct pgfeed_bin_error err;
        if (pgfeed__encode_bin_row(&o, rows[i].line, n, &sp, f, &err) == rows[i].nf &&
            err.code == 0) {
            h[0] = (unsigned char)((rows[i].nf - 1) | 0x08 | 0x10);
            seed("fuzz_encode_binary", h, 4 + rows[i].nf, buf, (size_t)(o - buf));
        }
        free(buf);
    }
    /* Tuples put together from values (fuzz_encode_binary.c's build_tuple): numerics with
     * many digits, an int4 array, text, a NULL. */
    struct bytes t = {0};
    unsigned char h[8] = {0x88 | 3, 0x02, 0, 0, 5, 2, 0, 5};
    add(&t, h, 8);
    for (int f = 0; f < 4; f++) {
        if (f == 1) {
            addb(&t, 3); /* an array of 3 */
            for (int j = 0; j < 3; j++)
                add(&t, "\x00\x7f\x00\x00\x01", 5);
            continue;
        }
        if (f == 2) {
            addb(&t, 0xff); /* NULL */
            continue;
        }
        addb(&t, 0);
        unsigned nd = f == 0 ? 40 : 200;
        addb(&t, nd);
        add(&t, f == 0 ? "\x0a\x00" : "\x00\xc8", 2); /* weight */
        addb(&t, 1);                                  /* negative */
        add(&t, "\x00\x10", 2);                       /* dscale */
        for (unsigned j = 0; j < nd; j++)
            add(&t, j % 2 ? "\x27\x0f" : "\x04\xd2", 2);
    }
    seed("fuzz_encode_binary", NULL, 0, t.p, t.n);
    free(t.p);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen-fuzz-corpus DIR\n");
        return 2;
    }
    outdir = argv[1];
    if (mkdir(outdir, 0755) != 0 && errno != EEXIST) {
        perror(outdir);
        return 1;
    }
    uv_loop_init(&loop);
    decoder_seeds();
    parse_seeds();
    encode_seeds();
    uv_loop_close(&loop);
    return 0;
}
