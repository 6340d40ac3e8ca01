/*
 * test_parse.c -- the parser stage (parse_dsv.c) driven into a fake sink.
 *
 * The fake sink collects the COPY bytes and the end_batch infos, and can answer
 * PGFEED_EAGAIN every k-th call; it counts a violation when it is called again before the
 * parser was resumed, or when what it refused is not offered again unchanged. The test
 * stands in for job.c: it re-offers a piece the parser refused after calling the parser's
 * resume, either as soon as the sink refused something (eager) or only when the parser
 * answers EAGAIN (lazy).
 *
 * Every case runs fed whole, one byte at a time, and split at every offset (large cases:
 * in random pieces), each piece ending at a PROT_NONE page and scribbled over once taken.
 * All runs of a case must give byte-identical output, the same batches at the same
 * places, and the same error; the whole-input run is checked against the expectations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tap.h"

#define S(lit)      lit, sizeof(lit) - 1
#define MAX_BATCHES 64

static uv_loop_t loop;

/* ---- guarded input area ---- */

struct guarded {
    char *end;
};

static struct guarded guarded_new(size_t cap)
{
    char *zeros = calloc(1, cap ? cap : 1);
    struct guarded r = {tap_guard(zeros, cap) + cap};
    free(zeros);
    return r;
}

static char *place(struct guarded r, const void *p, size_t n)
{
    if (n)
        memcpy(r.end - n, p, n);
    return r.end - n;
}

/* ---- the fake sink ---- */

enum { CALL_WRITE = 1, CALL_END_BATCH, CALL_FINISH };

struct fake_sink {
    struct pgfeed_stage base;
    struct pgfeed_buf got;
    struct pgfeed_batch_info batches[MAX_BATCHES];
    size_t batch_at[MAX_BATCHES]; /* got.len when the batch ended */
    size_t nbatches;
    int finishes; /* accepted finish calls */
    unsigned calls, eagain_every, eagains, writes;
    int blocked; /* refused something; no resume yet */
    int violations;
    int refused_kind;
    struct pgfeed_buf refused;
    size_t fail_batch; /* end_batch fails hard for this batch (1-based; 0: never) */
};

static int gate(struct fake_sink *k, int kind, const void *p, size_t n)
{
    if (k->blocked)
        k->violations++; /* called before the parser was resumed */
    if (k->refused_kind) {
        if (kind != k->refused_kind || n != k->refused.len ||
            (n && memcmp(p, k->refused.data, n) != 0))
            k->violations++; /* not the same call again */
        k->refused_kind = 0;
    }
    if (k->finishes)
        k->violations++; /* anything after finish */
    k->calls++;
    if (k->eagain_every && k->calls % k->eagain_every == 0) {
        k->blocked = 1;
        k->eagains++;
        k->refused_kind = kind;
        k->refused.len = 0;
        pgfeed__buf_append(&k->refused, p, n);
        return PGFEED_EAGAIN;
    }
    return 0;
}

static int fake_write(struct pgfeed_stage *s, const char *p, size_t n)
{
    struct fake_sink *k = container_of(s, struct fake_sink, base);
    int rc = gate(k, CALL_WRITE, p, n);
    if (rc == 0) {
        pgfeed__buf_append(&k->got, p, n);
        k->writes++;
    }
    return rc;
}

static int fake_end_batch(struct pgfeed_stage *s, const struct pgfeed_batch_info *bi)
{
    struct fake_sink *k = container_of(s, struct fake_sink, base);
    int rc = gate(k, CALL_END_BATCH, bi, sizeof *bi);
    if (rc == 0 && k->nbatches + 1 == k->fail_batch)
        return pgfeed__fail(s->job, "sink", PGFEED_ESERVER, NULL, NULL, "sink refused");
    if (rc == 0 && k->nbatches < MAX_BATCHES) {
        k->batches[k->nbatches] = *bi;
        k->batch_at[k->nbatches++] = k->got.len;
    }
    return rc;
}

static int fake_finish(struct pgfeed_stage *s)
{
    struct fake_sink *k = container_of(s, struct fake_sink, base);
    int rc = gate(k, CALL_FINISH, NULL, 0);
    if (rc == 0)
        k->finishes++;
    return rc;
}

static const struct pgfeed_stage_ops fake_ops = {
    .name = "sink",
    .write = fake_write,
    .finish = fake_finish,
    .end_batch = fake_end_batch,
};

/* ---- cases ---- */

struct tcase {
    const char *name;
    const char *in;
    size_t in_len;
    pgfeed_format_t format;
    int has_header;
    int header_fails; /* on_header fails instead of setting the fields */
    size_t nfields;
    const int *is_array;
    const char *const *names;
    const char *null_marker;
    char delimiter;
    uint64_t batch_rows;
    size_t max_line;
    int large;         /* random pieces instead of every split offset */
    size_t fail_batch; /* the sink fails hard when this batch ends */

    /* expected from the whole-input run */
    const char *out; /* COPY bytes the sink got */
    size_t out_len;
    const char *header; /* NULL: on_header must not be called */
    int code;           /* 0: success */
    uint64_t line;
    int column;
    const char *column_name;
    uint64_t decoded_offset;
    const char *message;
    const char *detail; /* NULL: not checked */
    uint64_t rows_read, lines_read;
    const struct pgfeed_batch_info *batches;
    size_t nbatches;
    const size_t *batch_at;
};

struct outcome {
    struct pgfeed_buf out;
    struct pgfeed_batch_info batches[MAX_BATCHES];
    size_t batch_at[MAX_BATCHES];
    size_t nbatches;
    int finishes, rc, code, column, nheaders, violations, stuck;
    uint64_t line, decoded_offset;
    char *message, *detail, *column_name, *header;
    struct pgfeed_stats stats;
    unsigned eagains, writes;
};

struct ctx {
    const struct tcase *tc;
    struct pgfeed_stage *parser;
    struct outcome *oc;
};

static char *dup_mem(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (n)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static char *dup_str(const char *s)
{
    return s ? dup_mem(s, strlen(s)) : NULL;
}

static int on_header(struct pgfeed_job *job, const char *line, size_t n)
{
    struct ctx *c = pgfeed_job_get_data(job);
    c->oc->nheaders++;
    free(c->oc->header);
    c->oc->header = dup_mem(line, n);
    if (c->tc->header_fails)
        return pgfeed__fail(job, "job", PGFEED_EHEADER, NULL, NULL, "header refused");
    pgfeed__parser_set_fields(c->parser, c->tc->nfields, c->tc->is_array, c->tc->names);
    return 0;
}

/* The sink has room again: what job.c would do, resume the parser (maybe more than once). */
static void unblock(struct fake_sink *k, struct pgfeed_stage *ps, struct outcome *oc)
{
    for (int i = 0; k->blocked; i++) {
        if (i > 100) {
            oc->stuck++;
            return;
        }
        k->blocked = 0;
        ps->ops->resume(ps);
    }
}

static int offer(struct pgfeed_stage *ps, struct fake_sink *k, struct guarded area, const char *p,
                 size_t n, int eager, struct outcome *oc)
{
    char *g = place(area, p, n);
    for (int tries = 0;; tries++) {
        int rc = ps->ops->write(ps, g, n);
        if (eager)
            unblock(k, ps, oc);
        if (rc != PGFEED_EAGAIN) {
            if (n)
                memset(g, 0xA5, n); /* the parser must not keep pointers into our buffer */
            return rc;
        }
        if (!k->blocked && !eager)
            oc->violations++; /* EAGAIN with nothing to wait for */
        if (tries > 100) {
            oc->stuck++;
            return rc;
        }
        unblock(k, ps, oc);
    }
}

/*
 * One run: pieces end at cuts[0..ncuts) (ascending), then the rest; the sink refuses every
 * eagain_every-th call (0: never).
 */
static void run(const struct tcase *tc, struct guarded area, const size_t *cuts, size_t ncuts,
                unsigned eagain_every, int eager, struct outcome *oc)
{
    memset(oc, 0, sizeof *oc);
    struct pgfeed_options o;
    pgfeed_options_init(&o);
    o.source = "-";
    o.table = "t";
    struct pgfeed_job *job = NULL;
    if (pgfeed_job_new(&loop, &o, &job) != 0) {
        oc->stuck++;
        return;
    }
    struct ctx c = {tc, NULL, oc};
    pgfeed_job_set_data(job, &c);

    struct pgfeed_parse_config cfg = {
        .format = tc->format ? tc->format : PGFEED_FORMAT_TSV,
        .delimiter = tc->delimiter ? tc->delimiter : '\t',
        .null_marker = tc->null_marker ? tc->null_marker : "\\N",
        .max_line = tc->max_line ? tc->max_line : 1u << 20,
        .batch_rows = tc->batch_rows,
        .has_header = tc->has_header,
        .on_header = on_header,
        /* With a header the fields come from on_header, as in job.c. */
        .nfields = tc->has_header ? 0 : tc->nfields,
        .is_array = tc->has_header ? NULL : tc->is_array,
        .field_names = tc->has_header ? NULL : tc->names,
    };
    struct pgfeed_stage *ps = NULL;
    if (pgfeed__parser_new(job, &cfg, &ps) != 0) {
        oc->stuck++;
        pgfeed_job_close(job, NULL);
        return;
    }
    c.parser = ps;
    struct fake_sink k = {0};
    k.base.ops = &fake_ops;
    k.base.job = job;
    k.base.prev = ps;
    k.eagain_every = eagain_every;
    k.fail_batch = tc->fail_batch;
    pgfeed__buf_reserve(&k.got, 1); /* data is never NULL, even for no output */
    ps->next = &k.base;

    int rc = 0;
    size_t start = 0;
    for (size_t i = 0; i <= ncuts && rc == 0; i++) {
        size_t end = i < ncuts ? cuts[i] : tc->in_len;
        rc = offer(ps, &k, area, tc->in + start, end - start, eager, oc);
        start = end;
    }
    for (int tries = 0; rc == 0 || rc == PGFEED_EAGAIN; tries++) {
        rc = ps->ops->finish(ps);
        if (eager)
            unblock(&k, ps, oc);
        if (rc != PGFEED_EAGAIN)
            break;
        if (tries > 100) {
            oc->stuck++;
            break;
        }
        unblock(&k, ps, oc);
    }
    if (rc != 0 && rc != PGFEED_EAGAIN) {
        /* a failure sticks */
        if (ps->ops->write(ps, "x\n", 2) != rc || ps->ops->finish(ps) != rc)
            oc->violations++;
    }
    if (rc == 0) {
        /* finish is idempotent once done */
        size_t before = k.got.len;
        if (ps->ops->finish(ps) != 0 || k.got.len != before)
            oc->violations++;
    }

    oc->rc = rc;
    oc->out = k.got;
    memcpy(oc->batches, k.batches, sizeof k.batches);
    memcpy(oc->batch_at, k.batch_at, sizeof k.batch_at);
    oc->nbatches = k.nbatches;
    oc->finishes = k.finishes;
    oc->violations += k.violations;
    oc->eagains = k.eagains;
    oc->writes = k.writes;
    const struct pgfeed_error *e = pgfeed_job_error(job);
    oc->code = e->code;
    oc->line = e->line;
    oc->column = e->column;
    oc->decoded_offset = e->decoded_offset;
    oc->message = dup_str(e->message);
    oc->detail = dup_str(e->detail);
    oc->column_name = dup_str(e->column_name);
    pgfeed_job_stats(job, &oc->stats);

    ps->ops->destroy(ps);
    pgfeed__buf_free(&k.refused);
    pgfeed_job_close(job, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
}

static void outcome_free(struct outcome *oc)
{
    pgfeed__buf_free(&oc->out);
    free(oc->message);
    free(oc->detail);
    free(oc->column_name);
    free(oc->header);
}

static int str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* Same observable result as the reference run? Says what differs first. */
static const char *differs(const struct outcome *a, const struct outcome *ref)
{
    static char why[200];
    if (a->stuck)
        return "the run got stuck";
    if (a->violations)
        return "the parser broke the write/EAGAIN contract";
    if (a->out.len != ref->out.len ||
        (a->out.len && memcmp(a->out.data, ref->out.data, a->out.len) != 0)) {
        snprintf(why, sizeof why, "output: %zu bytes, want %zu; rc %d, want %d", a->out.len,
                 ref->out.len, a->rc, ref->rc);
        return why;
    }
    if (a->nbatches != ref->nbatches ||
        memcmp(a->batches, ref->batches, a->nbatches * sizeof a->batches[0]) != 0 ||
        memcmp(a->batch_at, ref->batch_at, a->nbatches * sizeof a->batch_at[0]) != 0)
        return "batches";
    if (a->rc != ref->rc || a->code != ref->code || a->finishes != ref->finishes) {
        snprintf(why, sizeof why, "result: rc %d code %d finishes %d, want %d %d %d", a->rc,
                 a->code, a->finishes, ref->rc, ref->code, ref->finishes);
        return why;
    }
    if (a->line != ref->line || a->column != ref->column ||
        a->decoded_offset != ref->decoded_offset || !str_eq(a->message, ref->message) ||
        !str_eq(a->detail, ref->detail) || !str_eq(a->column_name, ref->column_name))
        return "error";
    if (a->nheaders != ref->nheaders || !str_eq(a->header, ref->header))
        return "header";
    if (a->stats.rows_read != ref->stats.rows_read ||
        a->stats.lines_read != ref->stats.lines_read || a->stats.rows_sent != ref->stats.rows_sent)
        return "stats";
    return NULL;
}

static void check_expectations(const struct tcase *tc, const struct outcome *r)
{
    char what[200];
#define WHAT(s) (snprintf(what, sizeof what, "%s: %s", tc->name, (s)), what)
    ASSERT_EQ_INT(r->stuck + r->violations, 0, WHAT("whole input, no contract violation"));
    if (tc->out)
        ASSERT_EQ_MEM(r->out.data, r->out.len, tc->out, tc->out_len, WHAT("COPY output"));
    ASSERT_EQ_INT(r->code, tc->code, WHAT("error code"));
    ASSERT_EQ_INT(r->rc, tc->code, WHAT("return code"));
    ASSERT_EQ_INT(r->finishes, tc->code == 0, WHAT("sink finished iff no error"));
    if (tc->header) {
        ASSERT_EQ_INT(r->nheaders, 1, WHAT("on_header called once"));
        ASSERT_EQ_STR(r->header, tc->header, WHAT("header line"));
    } else {
        ASSERT_EQ_INT(r->nheaders, 0, WHAT("on_header not called"));
    }
    if (tc->code) {
        ASSERT_EQ_INT(r->line, tc->line, WHAT("error line"));
        ASSERT_EQ_INT(r->column, tc->column, WHAT("error column"));
        ASSERT_EQ_INT(r->decoded_offset, tc->decoded_offset, WHAT("error decoded offset"));
        ASSERT_EQ_STR(r->message, tc->message, WHAT("error message"));
        if (tc->column_name)
            ASSERT_EQ_STR(r->column_name, tc->column_name, WHAT("error column name"));
        else
            ASSERT_TRUE(r->column_name == NULL, "%s", WHAT("no error column name"));
        if (tc->detail)
            ASSERT_EQ_STR(r->detail, tc->detail, WHAT("error detail"));
    } else {
        ASSERT_EQ_INT(r->stats.rows_read, tc->rows_read, WHAT("rows_read"));
        ASSERT_EQ_INT(r->stats.rows_sent, tc->rows_read, WHAT("rows_sent"));
    }
    ASSERT_EQ_INT(r->stats.lines_read, tc->lines_read, WHAT("lines_read"));
    ASSERT_EQ_INT(r->nbatches, tc->nbatches, WHAT("number of batches"));
    for (size_t i = 0; i < tc->nbatches && i < r->nbatches; i++) {
        const struct pgfeed_batch_info *g = &r->batches[i], *w = &tc->batches[i];
        int ok = g->rows == w->rows && g->first_line == w->first_line &&
                 g->last_line == w->last_line && g->end_decoded == w->end_decoded &&
                 (!tc->batch_at || r->batch_at[i] == tc->batch_at[i]);
        ASSERT_TRUE(ok, "%s: batch %zu", tc->name, i + 1);
        if (!ok)
            tap_note("  got rows %llu lines %llu-%llu end %llu at byte %zu; want rows %llu lines "
                     "%llu-%llu end %llu at byte %zu",
                     (unsigned long long)g->rows, (unsigned long long)g->first_line,
                     (unsigned long long)g->last_line, (unsigned long long)g->end_decoded,
                     r->batch_at[i], (unsigned long long)w->rows, (unsigned long long)w->first_line,
                     (unsigned long long)w->last_line, (unsigned long long)w->end_decoded,
                     tc->batch_at ? tc->batch_at[i] : 0);
    }
#undef WHAT
}

static uint64_t rng_state = 12345;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Runs a pattern over many runs; one TAP line for all of them. */
struct pattern_tally {
    int runs, bad;
    const char *first_diff;
    char first_desc[120];
    unsigned eagains;
};

static void tally(struct pattern_tally *t, struct outcome *oc, const struct outcome *ref,
                  const char *desc)
{
    const char *d = differs(oc, ref);
    t->runs++;
    t->eagains += oc->eagains;
    if (d) {
        if (!t->bad++) {
            t->first_diff = d;
            snprintf(t->first_desc, sizeof t->first_desc, "%s", desc);
        }
    }
    outcome_free(oc);
}

static void report(const struct tcase *tc, const char *pattern, struct pattern_tally *t)
{
    ASSERT_TRUE(t->bad == 0, "%s: %s, %d runs (%u EAGAINs) match the whole-input run", tc->name,
                pattern, t->runs, t->eagains);
    if (t->bad)
        tap_note("  %d runs differ; first: %s (%s)", t->bad, t->first_diff, t->first_desc);
}

static void run_case(const struct tcase *tc)
{
    struct guarded area = guarded_new(tc->in_len);
    struct outcome ref, oc;
    run(tc, area, NULL, 0, 0, 0, &ref);
    check_expectations(tc, &ref);

    size_t n = tc->in_len;
    size_t *cuts = malloc((n + 1) * sizeof *cuts);
    char desc[120];

    struct pattern_tally whole = {0};
    static const unsigned every[] = {2, 3, 5};
    for (int e = 0; e < 3; e++)
        for (int eager = 0; eager < 2; eager++) {
            run(tc, area, NULL, 0, every[e], eager, &oc);
            snprintf(desc, sizeof desc, "EAGAIN every %u, %s", every[e], eager ? "eager" : "lazy");
            tally(&whole, &oc, &ref, desc);
        }
    report(tc, "whole input with EAGAIN", &whole);

    struct pattern_tally bytes = {0};
    for (size_t i = 0; i + 1 < n || (i == 0 && n == 1); i++)
        cuts[i] = i + 1;
    size_t ncuts = n ? n - 1 : 0;
    for (int e = 0; e < 4; e++) {
        run(tc, area, cuts, ncuts, e ? every[e - 1] : 0, e == 2, &oc);
        snprintf(desc, sizeof desc, "EAGAIN every %u", e ? every[e - 1] : 0);
        tally(&bytes, &oc, &ref, desc);
    }
    report(tc, "one byte at a time", &bytes);

    struct pattern_tally splits = {0};
    if (!tc->large) {
        for (size_t at = 0; at <= n; at++) {
            cuts[0] = at;
            unsigned ev = (unsigned)(at % 4) + 1; /* 1 is "never" here */
            run(tc, area, cuts, 1, ev == 1 ? 0 : ev, (int)(at / 4) % 2, &oc);
            snprintf(desc, sizeof desc, "split at %zu, EAGAIN every %u", at, ev == 1 ? 0 : ev);
            tally(&splits, &oc, &ref, desc);
        }
        report(tc, "split at every offset", &splits);
    } else {
        for (int r = 0; r < 40; r++) {
            size_t m = 0, at = 0;
            while (at < n) {
                at += 1 + (size_t)(rnd() % (r % 2 ? 70000 : 300));
                if (at < n)
                    cuts[m++] = at;
            }
            unsigned ev = (unsigned)(r % 4) + 1;
            run(tc, area, cuts, m, ev == 1 ? 0 : ev, r % 3 == 0, &oc);
            snprintf(desc, sizeof desc, "random pieces #%d, EAGAIN every %u", r, ev);
            tally(&splits, &oc, &ref, desc);
        }
        report(tc, "random pieces", &splits);
    }
    free(cuts);
    outcome_free(&ref);
}

/* ---- fixtures ---- */

static const char *const name_fields[] = {"nconst",     "primary_name",        "birth_year",
                                          "death_year", "primary_professions", "known_for_titles"};
static const int name_arrays[] = {0, 0, 0, 0, 1, 1};

#define NAMES_HEADER "nconst\tprimaryName\tbirthYear\tdeathYear\tprimaryProfession\tknownForTitles"
#define NAMES_ROW1                                                                                 \
    "nm0000001\tFred Astaire\t1899\t1987\tsoundtrack,actor,miscellaneous\ttt0053137,tt0031983"
#define NAMES_ROW2 "nm0000003\tBrigitte Bardot\t1934\t\\N\tactress\t\\N"
#define NAMES_ROW3 "nm0000067\tMiklós Rózsa\t\\N\t\\N\t\ttt0038109"
#define NAMES_ROW4 "nm0000099\tJoe \"Bo\" O'Hara\\\t1950\t\\N\tactor,,writer\t"
#define NAMES_ROW5 "nm0000100\tA\\B {x}\t\\N\t\\N\tNULL,say \"hi\",a\\b\t,"

#define NAMES_OUT1                                                                                 \
    "nm0000001\tFred Astaire\t1899\t1987\t{\"soundtrack\",\"actor\",\"miscellaneous\"}\t{\"tt0053137\",\"tt0031983\"}\n"
#define NAMES_OUT2 "nm0000003\tBrigitte Bardot\t1934\t\\N\t{\"actress\"}\t\\N\n"
#define NAMES_OUT3 "nm0000067\tMiklós Rózsa\t\\N\t\\N\t{}\t{\"tt0038109\"}\n"
#define NAMES_OUT4 "nm0000099\tJoe \"Bo\" O'Hara\\\\\t1950\t\\N\t{\"actor\",\"\",\"writer\"}\t{}\n"
#define NAMES_OUT5                                                                                 \
    "nm0000100\tA\\\\B {x}\t\\N\t\\N\t{\"NULL\",\"say \\\\\"hi\\\\\"\",\"a\\\\\\\\b\"}\t{\"\",\"\"}\n"
#define NAMES_OUT NAMES_OUT1 NAMES_OUT2 NAMES_OUT3 NAMES_OUT4 NAMES_OUT5

#define NAMES_CASE .has_header = 1, .nfields = 6, .is_array = name_arrays, .names = name_fields

static const struct pgfeed_batch_info batches_10x3[] = {
    {3, 2, 4, 24, 0},
    {3, 5, 7, 42, 0},
    {3, 8, 10, 60, 0},
};
static const size_t batches_10x3_at[] = {18, 36, 54};
#define TEN_ROWS                                                                                   \
    "h1\th2\n"                                                                                     \
    "r01\tx\nr02\tx\nr03\tx\nr04\tx\nr05\tx\nr06\tx\nr07\tx\nr08\tx\nr09\tx\nr10\tx"

static const struct pgfeed_batch_info batches_crlf[] = {{2, 1, 2, 10, 0}};
static const struct pgfeed_batch_info batches_cr[] = {{2, 1, 2, 12, 0}};

static const char *const two_fields[] = {"a", "b"};
static const char *const three_fields[] = {"a", "b", "c"};
static const char *const one_field[] = {"a"};

static const struct tcase cases[] = {
    {
        "name.basics with header",
        S(NAMES_HEADER "\n" NAMES_ROW1 "\n" NAMES_ROW2 "\n" NAMES_ROW3 "\n" NAMES_ROW4
                       "\n" NAMES_ROW5 "\n"),
        NAMES_CASE,
        .header = NAMES_HEADER,
        .out = S(NAMES_OUT),
        .rows_read = 5,
        .lines_read = 6,
    },
    {
        "name.basics, CRLF",
        S(NAMES_HEADER "\r\n" NAMES_ROW1 "\r\n" NAMES_ROW2 "\r\n" NAMES_ROW3 "\r\n" NAMES_ROW4
                       "\r\n" NAMES_ROW5 "\r\n"),
        NAMES_CASE,
        .header = NAMES_HEADER,
        .out = S(NAMES_OUT),
        .rows_read = 5,
        .lines_read = 6,
    },
    {
        "name.basics, no final newline",
        S(NAMES_HEADER "\n" NAMES_ROW1 "\n" NAMES_ROW2 "\n" NAMES_ROW3 "\n" NAMES_ROW4
                       "\n" NAMES_ROW5),
        NAMES_CASE,
        .header = NAMES_HEADER,
        .out = S(NAMES_OUT),
        .rows_read = 5,
        .lines_read = 6,
    },
    {
        "name.basics, BOM before the header",
        S("\xEF\xBB\xBF" NAMES_HEADER "\n" NAMES_ROW1 "\n"),
        NAMES_CASE,
        .header = NAMES_HEADER,
        .out = S(NAMES_OUT1),
        .rows_read = 1,
        .lines_read = 2,
    },
    {
        "BOM without a header",
        S("\xEF\xBB\xBF"
          "a\tb\n\xEF\xBB\xBF\tc\n"),
        .nfields = 2,
        .names = two_fields,
        .out = S("a\tb\n\xEF\xBB\xBF\tc\n"), /* only the first one is a BOM */
        .rows_read = 2,
        .lines_read = 2,
    },
    {
        "empty input",
        S(""),
        NAMES_CASE,
        .out = S(""),
    },
    {
        "header only",
        S(NAMES_HEADER "\r\n"),
        NAMES_CASE,
        .header = NAMES_HEADER,
        .out = S(""),
        .lines_read = 1,
    },
    {
        "header only, no newline",
        S(NAMES_HEADER),
        NAMES_CASE,
        .header = NAMES_HEADER,
        .out = S(""),
        .lines_read = 1,
    },
    {
        "header refused by on_header",
        S(NAMES_HEADER "\n" NAMES_ROW1 "\n"),
        NAMES_CASE,
        .header = NAMES_HEADER,
        .header_fails = 1,
        .out = S(""),
        .code = PGFEED_EHEADER,
        .message = "header refused",
        .lines_read = 1,
    },
    {
        "CRLF with a CR inside a field",
        S("a\rb\tc\r\n\r\t\r\r\n"),
        .nfields = 2,
        .names = two_fields,
        .out = S("a\\rb\tc\n\\r\t\\r\n"),
        .rows_read = 2,
        .lines_read = 2,
        .batch_rows = 2,
        .batches = batches_cr,
        .nbatches = 1,
    },
    {
        "null marker in scalar and array fields, custom marker",
        S("NULL\tNULL\t\\N\n\tx,NULL\tNULLs\n"),
        .nfields = 3,
        .is_array = (const int[]){0, 1, 0},
        .names = three_fields,
        .null_marker = "NULL",
        .out = S("\\N\t\\N\t\\\\N\n\t{\"x\",\"NULL\"}\tNULLs\n"),
        .rows_read = 2,
        .lines_read = 2,
    },
    {
        "empty null marker",
        S("\tx\n"),
        .nfields = 2,
        .is_array = (const int[]){1, 0},
        .names = two_fields,
        .null_marker = "",
        .out = S("\\N\tx\n"),
        .rows_read = 1,
        .lines_read = 1,
    },
    {
        "other delimiter; tabs in data are escaped",
        S("a|b\tc|d,e\n"),
        .nfields = 3,
        .is_array = (const int[]){0, 0, 1},
        .names = three_fields,
        .delimiter = '|',
        .out = S("a\tb\\tc\t{\"d\",\"e\"}\n"),
        .rows_read = 1,
        .lines_read = 1,
    },
    {
        "too few fields, line counted with the header",
        S(NAMES_HEADER "\n" NAMES_ROW1 "\n" NAMES_ROW2 "\n"
                       "nm1\tX\t1\t2\tactor\n" NAMES_ROW3 "\n"),
        NAMES_CASE,
        .header = NAMES_HEADER,
        .out = S(""),
        .code = PGFEED_EPARSE,
        .line = 4,
        .column = 6,
        .column_name = "known_for_titles",
        .decoded_offset = sizeof(NAMES_HEADER "\n" NAMES_ROW1 "\n" NAMES_ROW2 "\n") - 1,
        .message = "wrong number of fields in line 4",
        .detail = "Expected 6 fields (nconst, primary_name, birth_year, death_year, "
                  "primary_professions, known_for_titles), found 5. The line is "
                  "\"nm1\\tX\\t1\\t2\\tactor\".",
        .lines_read = 4,
    },
    {
        "too many fields after CRLF lines, batches flushed before",
        S("a\tb\r\nc\td\r\ne\tf\tg\th\r\ni\tj\r\n"),
        .nfields = 2,
        .names = two_fields,
        .batch_rows = 2,
        .out = S("a\tb\nc\td\n"),
        .batches = batches_crlf,
        .nbatches = 1,
        .code = PGFEED_EPARSE,
        .line = 3,
        .column = 3,
        .decoded_offset = 10,
        .message = "wrong number of fields in line 3",
        .detail = "Expected 2 fields (a, b), found 4. The line is \"e\\tf\\tg\\th\".",
        .lines_read = 3,
    },
    {
        "empty line is a row of one field",
        S("a\tb\n\n"),
        .nfields = 2,
        .names = two_fields,
        .out = S(""),
        .code = PGFEED_EPARSE,
        .line = 2,
        .column = 2,
        .column_name = "b",
        .decoded_offset = 4,
        .message = "wrong number of fields in line 2",
        .lines_read = 2,
    },
    {
        "wrong count in the last line, no final newline",
        S("a\tb\nc"),
        .nfields = 2,
        .names = two_fields,
        .out = S(""),
        .code = PGFEED_EPARSE,
        .line = 2,
        .column = 2,
        .column_name = "b",
        .decoded_offset = 4,
        .message = "wrong number of fields in line 2",
        .lines_read = 2,
    },
    {
        "line of exactly max_line bytes, CRLF",
        S("0123456789\tabcdefghi\r\nx\ty\n"),
        .nfields = 2,
        .names = two_fields,
        .max_line = 20,
        .out = S("0123456789\tabcdefghi\nx\ty\n"),
        .rows_read = 2,
        .lines_read = 2,
    },
    {
        "too-long line in the middle", S("a\tb\nc\td\n0123456789\tabcdefghij\ne\tf\n"),
        .nfields = 2, .names = two_fields, .max_line = 20, .out = S(""), .code = PGFEED_EPARSE,
        .line = 3, .decoded_offset = 8, .message = "input line 3 is too long",
        .detail = "The limit is 20 bytes; the line begins \"0123456789\\tabcdefghij\".",
        .lines_read = 2, /* the long line is not counted, whether its LF was seen or not */
    },
    {
        "too-long last line without newline",
        S("a\tb\n0123456789\tabcdefghijklmnop"),
        .nfields = 2,
        .names = two_fields,
        .max_line = 20,
        .out = S(""),
        .code = PGFEED_EPARSE,
        .line = 2,
        .decoded_offset = 4,
        .message = "input line 2 is too long",
        .lines_read = 1,
    },
    {
        "batches of 3 over 10 rows",
        S(TEN_ROWS),
        .has_header = 1,
        .nfields = 2,
        .names = two_fields,
        .header = "h1\th2",
        .batch_rows = 3,
        .out =
            S("r01\tx\nr02\tx\nr03\tx\nr04\tx\nr05\tx\nr06\tx\nr07\tx\nr08\tx\nr09\tx\nr10\tx\n"),
        .rows_read = 10,
        .lines_read = 11,
        .batches = batches_10x3,
        .nbatches = 3,
        .batch_at = batches_10x3_at,
    },
    {
        "the sink fails when the second batch ends",
        S(TEN_ROWS),
        .has_header = 1,
        .nfields = 2,
        .names = two_fields,
        .header = "h1\th2",
        .batch_rows = 3,
        .fail_batch = 2,
        .out = S("r01\tx\nr02\tx\nr03\tx\nr04\tx\nr05\tx\nr06\tx\n"),
        .code = PGFEED_ESERVER,
        .message = "sink refused",
        .lines_read = 7,
        .batches = batches_10x3,
        .nbatches = 1,
        .batch_at = batches_10x3_at,
    },
    {
        "batches of 3 over 9 rows: the last batch is full",
        S("h1\th2\nr01\tx\nr02\tx\nr03\tx\nr04\tx\nr05\tx\nr06\tx\nr07\tx\nr08\tx\nr09\tx\n"),
        .has_header = 1,
        .nfields = 2,
        .names = two_fields,
        .header = "h1\th2",
        .batch_rows = 3,
        .out = S("r01\tx\nr02\tx\nr03\tx\nr04\tx\nr05\tx\nr06\tx\nr07\tx\nr08\tx\nr09\tx\n"),
        .rows_read = 9,
        .lines_read = 10,
        .batches = batches_10x3,
        .nbatches = 3,
        .batch_at = batches_10x3_at,
    },
    {
        "text format passes escapes through",
        S("a\\\tb\tc\\\\\t\\N\r\n\\x41\\t\t\t\n"),
        .format = PGFEED_FORMAT_TEXT,
        .nfields = 3,
        .names = three_fields,
        .out = S("a\\\tb\tc\\\\\t\\N\n\\x41\\t\t\t\n"),
        .rows_read = 2,
        .lines_read = 2,
    },
    {
        "text format with header, wrong count",
        S("a\tb\n1\\\t2\n3\t4\n"),
        .format = PGFEED_FORMAT_TEXT,
        .has_header = 1,
        .header = "a\tb",
        .nfields = 2,
        .names = two_fields,
        .out = S(""),
        .code = PGFEED_EPARSE,
        .line = 2,
        .column = 2,
        .column_name = "b",
        .decoded_offset = 4,
        .message = "wrong number of fields in line 2",
        .lines_read = 2,
    },
    {
        "text format end-of-copy marker ends the data",
        S("x\n\\.\n"),
        .format = PGFEED_FORMAT_TEXT,
        .nfields = 1,
        .names = one_field,
        .out = S("x\n"),
        .rows_read = 1,
        .lines_read = 2,
    },
    {
        "text format data after the end-of-copy marker",
        S("x\n\\.\r\ny\n"),
        .format = PGFEED_FORMAT_TEXT,
        .nfields = 1,
        .names = one_field,
        .out = S(""),
        .code = PGFEED_EPARSE,
        .line = 3,
        .decoded_offset = 6,
        .message = "data after the end-of-copy marker in line 3",
        .lines_read = 3,
    },
    {
        "text format end-of-copy marker inside data",
        S("x\ny\\.\n"),
        .format = PGFEED_FORMAT_TEXT,
        .nfields = 1,
        .names = one_field,
        .out = S(""),
        .code = PGFEED_EPARSE,
        .line = 2,
        .decoded_offset = 2,
        .message = "end-of-copy marker inside data in line 2",
        .lines_read = 2,
    },
    {
        "text format backslash at end of line",
        S("x\\\\\ny\\\n"),
        .format = PGFEED_FORMAT_TEXT,
        .nfields = 1,
        .names = one_field,
        .out = S(""),
        .code = PGFEED_EPARSE,
        .line = 2,
        .decoded_offset = 4,
        .message = "backslash at end of line in line 2",
        .lines_read = 2,
    },
};

/* ~20,000 rows, more than one OUT_FLUSH of output, in batches of 5,000. */
static void large_case(void)
{
    struct pgfeed_buf in = {0}, want = {0};
    static struct pgfeed_batch_info b[4];
    static size_t at[4];
    char line[128], row[160];
    size_t nb = 0;
    pgfeed__buf_append(&in, S(NAMES_HEADER "\n"));
    for (int i = 1; i <= 20000; i++) {
        int n = snprintf(line, sizeof line, "nm%07d\tN\\%d\t%d\t\\N\tactor,writer\ttt%07d\n", i, i,
                         1900 + i % 100, i * 7);
        int m = snprintf(row, sizeof row,
                         "nm%07d\tN\\\\%d\t%d\t\\N\t{\"actor\",\"writer\"}\t{\"tt%07d\"}\n", i, i,
                         1900 + i % 100, i * 7);
        pgfeed__buf_append(&in, line, (size_t)n);
        pgfeed__buf_append(&want, row, (size_t)m);
        if (i % 5000 == 0 && nb < 4) {
            b[nb] =
                (struct pgfeed_batch_info){5000, (uint64_t)i - 4998, (uint64_t)i + 1, in.len, 0};
            at[nb++] = want.len;
        }
    }
    struct tcase tc = {
        "20000 rows in batches of 5000",
        in.data,
        in.len,
        NAMES_CASE,
        .header = NAMES_HEADER,
        .batch_rows = 5000,
        .large = 1,
        .out = want.data,
        .out_len = want.len,
        .rows_read = 20000,
        .lines_read = 20001,
        .batches = b,
        .nbatches = nb,
        .batch_at = at,
    };
    run_case(&tc);
    pgfeed__buf_free(&in);
    pgfeed__buf_free(&want);
}

int main(void)
{
    ASSERT_EQ_INT(uv_loop_init(&loop), 0, "uv_loop_init");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i]);
    large_case();
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ_INT(uv_loop_close(&loop), 0, "uv_loop_close: no handle left");
    return tap_done();
}
