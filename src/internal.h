/*
 * internal.h -- what the stages of libpgfeed share and nobody else sees.
 *
 * The pipeline is a chain of stages: source -> decoder -> parser -> sink.
 * Each stage's struct starts with `struct pgfeed_stage base` and is reached
 * from the base with container_of. Bytes flow downstream through ops->write;
 * room flows upstream through ops->resume.
 *
 * The write contract (all or nothing):
 *   write(s, p, n) returns 0 when it took all n bytes, PGFEED_EAGAIN when it
 *   took none (the caller offers the same bytes again after its resume op is
 *   called), or another negative code on failure (the stage has already set
 *   the job's error with pgfeed__fail). A stage that gets EAGAIN from
 *   downstream partway through its input keeps the rest in its own buffer,
 *   whose size is fixed at creation, returns 0, and answers EAGAIN until that
 *   backlog has drained; then it calls pgfeed__stage_resume_upstream().
 *   finish(s) means "no more input"; it follows the same 0 / EAGAIN / error
 *   rule and must be safe to call again after an EAGAIN.
 *   resume(s) is only ever called by job.c's deferred-resume machinery or by
 *   the downstream stage's resume, never from inside a write.
 *
 * The error-path rule (every stage that talks to a peer over a socket):
 *   every state that waits for the socket to become writable also reads and
 *   handles what the peer sends, and every state that waits for an answer
 *   also looks at what the client library has already buffered. libpq reads
 *   the socket inside PQputCopyData/PQflush whenever the socket is full, so
 *   the server's ErrorResponse can sit in libpq's buffer with nothing left
 *   in the kernel's, and a level-triggered poll never fires for it (issue 11:
 *   a value refused mid-batch hung both sides). pg_conn.c's pgfeed__conn_watch
 *   schedules a pass over libpq's buffer (kick_cb) with every watch it sets
 *   outside COPY_IN.
 */
#ifndef PGFEED_INTERNAL_H
#define PGFEED_INTERNAL_H

#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pgfeed.h"

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#endif

#if defined(__GNUC__)
#define PGFEED_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PGFEED_PRINTF(f, a)
#endif

struct pgfeed_ctx;
struct pgfeed_stage;

/* What identifies one version of a source; strings may be NULL, size -1 when unknown. */
struct pgfeed_validators {
    const char *etag;          /* HTTP strong ETag, quotes included */
    const char *last_modified; /* HTTP Last-Modified, or a file's mtime as seconds.nanoseconds */
    int64_t size;
};

/* Input lines first..last (1-based, inclusive). */
struct pgfeed_line_range {
    uint64_t first, last;
};

/* A job's row in the state table. */
struct pgfeed_checkpoint {
    int found;
    int finished;
    uint64_t rows;           /* rows committed, all runs */
    uint64_t batches;        /* batches committed, all runs */
    uint64_t lines;          /* the prefix: input lines consumed by committed rows, header
                              * included (0: none yet, only batches past it) */
    uint64_t decoded_offset; /* uncompressed offset just past the last committed row */
    uint64_t raw_offset;     /* source offset to restart from (with restart, else 0) */
    char *restart;           /* decoder restart point (opaque bytes), or NULL */
    size_t restart_len;
    char *options; /* format options and target columns, compared on resume */
    char *etag, *last_modified;
    int64_t size;
    char *updated_at;
    /* Not found, but an unfinished checkpoint of another job matching the identity's
     * `others` pattern is (fields above then describe that one). */
    int other;
    /* Batches committed past the prefix above (several connections commit out of
     * order): their lines, in order. rows and batches count them too; lines does not. */
    struct pgfeed_line_range *ahead;
    size_t nahead;
};
/* checkpoint.c: the state table's SQL and its row read back. */
void pgfeed__checkpoint_clear(struct pgfeed_checkpoint *c);
/* The statements, for the state table `table` (NULL without memory). select: $1 the job
 * key, $2 a LIKE pattern for other jobs (their unfinished checkpoints count too); finish
 * and forget: $1 the job key (forget and finish also take the rows past its prefix);
 * upsert, the prefix row, in the transaction of the batch that extends the committed
 * prefix: $1 job key, $2 source, $3 target, $4 options, $5 etag, $6 last_modified, $7 size,
 * $8 the batch's rows and $9 batches (added to the row's), $10 its last line, $11 decoded
 * and $12 raw offset, $13 finished, $14 the restart point (pgfeed__checkpoint_hex). */
char *pgfeed__checkpoint_sql_create(const char *table);
char *pgfeed__checkpoint_sql_select(const char *table);
char *pgfeed__checkpoint_sql_upsert(const char *table);
char *pgfeed__checkpoint_sql_finish(const char *table);
/* A batch committed past the prefix: the upsert's parameters and $15 its first line. */
char *pgfeed__checkpoint_sql_ahead(const char *table);
/* $1 the job key: its batches past the prefix (pgfeed__checkpoint_read_ahead reads them). */
char *pgfeed__checkpoint_sql_select_ahead(const char *table);
char *pgfeed__checkpoint_sql_forget(const char *table);
struct pgfeed_buf;
/* Appends blob as bytea hex input ("\\x0a1b...", NUL-terminated): 0 or UV_ENOMEM. */
int pgfeed__checkpoint_hex(struct pgfeed_buf *out, const char *blob, size_t n);
/* Reads the select's one row into c (cleared first). Returns 0, or an error recorded with
 * pgfeed__fail: PGFEED_ECHECKPOINT for a restart column that is not hex, UV_ENOMEM. */
struct pg_result; /* libpq's PGresult */
int pgfeed__checkpoint_read(struct pgfeed_checkpoint *c, const struct pg_result *r,
                            struct pgfeed_ctx *ctx);
/* The select_ahead result into c->ahead (after pgfeed__checkpoint_read): 0 or UV_ENOMEM. */
int pgfeed__checkpoint_read_ahead(struct pgfeed_checkpoint *c, const struct pg_result *r);
/* The source part of the job key: a file's real path (real_path, from the source once
 * opened; NULL: the path as given), a URL without credentials, stdin's "stdin:HASH"
 * (stdin_id) or "stdin". NULL when out of memory. */
char *pgfeed__checkpoint_source_id(struct pgfeed_ctx *ctx, const char *source, const char *stdin_id,
                                   const char *real_path);
/* The format options a resume must match ("format=... header=..."), with " targets=a,b"
 * when t maps fields. NULL when out of memory. */
struct pgfeed_targets;
char *pgfeed__checkpoint_options_text(const struct pgfeed_options *o,
                                      const struct pgfeed_targets *t);
/* LIKE pattern of other stdin streams' jobs into table ("stdin% -> " + table, escaped). */
char *pgfeed__checkpoint_stdin_others(const char *table);
/* The targets stored in a checkpoint's options text as column indexes (*out NULL, 0 when
 * none are stored); a column the table lost fails the import. */
struct pgfeed_column;
int pgfeed__checkpoint_targets(struct pgfeed_ctx *ctx, const char *opts,
                               const struct pgfeed_column *cols, size_t ncols, size_t **out,
                               size_t *nout);
/* What a checkpoint read at start-up means for this run (ctx->opt: resume, restart,
 * truncate; v: the source's validators, or NULL): one of these, or a failure (< 0, error
 * set). */
enum {
    PGFEED_CKPT_FRESH = 0,    /* none, or a finished one: import from the start */
    PGFEED_CKPT_RESUME = 1,   /* continue after its lines */
    PGFEED_CKPT_FINISHED = 2, /* --resume of a finished import: nothing to do */
    PGFEED_CKPT_FORGET = 3,   /* --restart of an unfinished one: delete it, then start */
};
struct pgfeed_validators;
int pgfeed__checkpoint_weigh(struct pgfeed_ctx *ctx, const struct pgfeed_checkpoint *c,
                             const struct pgfeed_validators *v);

/* ---- per-batch bookkeeping handed from parser to sink ---- */
/*
 * Start lines of a batch's rows (rowmap.c). Row r (1-based) starts at first + r - 1 + delta,
 * with delta from the last entry whose row is <= r (0 before the first): an entry is added
 * only where a row does not start on the line after the previous one (a multi-line csv
 * record, a rejected row in between). Rows from `lost` on are unknown (entries ran out).
 */
struct pgfeed_rowmap {
    uint64_t seq; /* the batch (0-based, in this run) whose rows these are */
    uint64_t first, rows, lost;
    struct pgfeed_rowmap_ex {
        uint32_t row, delta;
    } * ex;
    size_t nex, cap;
};
/* Row r's start line is `line`; limit: most entries kept (the rest are lost). */
void pgfeed__rowmap_add(struct pgfeed_rowmap *m, uint64_t line, size_t limit);
/* The input line row r (1-based) of the batch starts at; 0 when unknown. */
uint64_t pgfeed__rowmap_line(const struct pgfeed_rowmap *m, uint64_t r);

struct pgfeed_buf {
    char *data;
    size_t len, cap;
};

/*
 * A batch as the parser ends it, with what its checkpoint row and its refused rows need
 * attached (pgfeed__ctx_batch_ending), so that the sink reads no other stage's state.
 */
struct pgfeed_batch_info {
    uint64_t rows;        /* data rows in the batch */
    uint64_t first_line;  /* input line of its first row */
    uint64_t last_line;   /* input line of its last row */
    uint64_t end_decoded; /* uncompressed offset just past its last row */
    uint64_t end_raw;     /* compressed offset consumed when it ended (approximate) */
    uint64_t seq;         /* the batch's number in this run, from 0 */
    /* The decoder's restart point for end_decoded and the source offset it reads from
     * (has_restart 0: none; a resume re-reads from the start). The parser's: a sink that
     * keeps it past end_batch / last_batch copies it. */
    int has_restart;
    struct pgfeed_buf restart;
    uint64_t restart_raw;
    const struct pgfeed_validators *validators; /* the source's, or NULL; borrowed */
    const struct pgfeed_rowmap *rowmap;         /* its rows' lines (the parser's), or NULL */
};

/* Most COPY connections one job may use (--connections). */
#define PGFEED_MAX_CONNECTIONS 16

struct pgfeed_stage_ops {
    const char *name; /* shown in errors: "source", "decoder", "parser", "sink" */
    int (*write)(struct pgfeed_stage *s, const char *p, size_t n);
    int (*finish)(struct pgfeed_stage *s);
    void (*resume)(struct pgfeed_stage *s);
    /* Stops all activity and closes the stage's handles; every uv_close goes
     * through pgfeed__ctx_handle_closing()/pgfeed__ctx_close_cb. May be NULL. */
    void (*stop)(struct pgfeed_stage *s);
    void (*destroy)(struct pgfeed_stage *s); /* frees memory; handles already closed */
    /* Sources only: begin producing (called once, after the table is known). */
    int (*start)(struct pgfeed_stage *s);
    /* Sinks only: the current batch's last row has been written; 0 or EAGAIN. */
    int (*end_batch)(struct pgfeed_stage *s, const struct pgfeed_batch_info *bi);
    /* Sinks only, optional: at the end of input, before finish, what the rows written
     * since the last end_batch are (the input's last batch). 0 (taken) or a failure. */
    int (*last_batch)(struct pgfeed_stage *s, const struct pgfeed_batch_info *bi);
    /*
     * Sources only, both optional. seek: before start, begin at this byte of
     * the source (a Range request, lseek, or reading and discarding), and
     * refuse (PGFEED_ECHANGED, error set) a source whose validators differ
     * from expect's non-empty ones. validators: what identifies this version
     * of the source (NULL or fields empty when unknown yet).
     */
    int (*seek)(struct pgfeed_stage *s, uint64_t raw_offset,
                const struct pgfeed_validators *expect);
    const struct pgfeed_validators *(*validators)(struct pgfeed_stage *s);
    /*
     * Sources only, optional (NULL: yes). Whether the bytes already read can be read
     * again by a new source for the same input (a pipe cannot): an in-run retry
     * re-reads from the checkpoint, so without it a retry would skip new bytes.
     */
    int (*rereadable)(struct pgfeed_stage *s);
    /*
     * Sources only, both optional. open: before anything else, the filesystem work the
     * source needs (open, fstat, realpath) on libuv's threadpool; cb runs once from the
     * loop with 0 or a failure (error set), unless open itself fails (error set, no cb).
     * A stop while it is pending holds a close reference until its request returns, and
     * cb then does not run. real_path: the source's canonical path once opened, NULL
     * when it has none (a descriptor, a path realpath() cannot resolve).
     */
    int (*open)(struct pgfeed_stage *s, void (*cb)(void *arg, int status), void *arg);
    const char *(*real_path)(struct pgfeed_stage *s);
};

struct pgfeed_stage {
    const struct pgfeed_stage_ops *ops;
    struct pgfeed_stage *next; /* downstream */
    struct pgfeed_stage *prev; /* upstream */
    struct pgfeed_ctx *ctx;
};

/* Calls prev->ops->resume when there is an upstream stage. */
void pgfeed__stage_resume_upstream(struct pgfeed_stage *s);

/* ---- growable byte buffer (buf.c) ---- */

int pgfeed__buf_reserve(struct pgfeed_buf *b, size_t extra); /* 0 or UV_ENOMEM */
int pgfeed__buf_append(struct pgfeed_buf *b, const void *p, size_t n);
void pgfeed__buf_free(struct pgfeed_buf *b);

/* ---- the delay before a retry (backoff.c) ---- */

/* Where the limit applies: to the doubled delay before the jitter (so up to 1.25 x limit),
 * or to the delay after it. */
enum pgfeed_backoff_limit { PGFEED_BACKOFF_LIMIT_BASE, PGFEED_BACKOFF_LIMIT_DELAY };
/* The delay before retry number attempt + 1 (attempt 0: the first retry), in the unit of
 * first and limit: first doubled attempt times (at most 8), times 0.75 + 0.5 u for u in
 * [0, 1), with limit applied where `where` says. */
double pgfeed__backoff(unsigned attempt, double first, double limit, double u,
                       enum pgfeed_backoff_limit where);

/* ---- errors and logging (error.c, ctx.c) ---- */

/* An owned copy of struct pgfeed_error; the context (ctx.c) keeps one per job. */
struct pgfeed_err_store {
    struct pgfeed_error pub;
    char *message, *detail, *hint, *sqlstate, *column_name;
};

/*
 * Records the import's first failure (later ones are logged at DEBUG and
 * dropped) and asks the pipeline's owner to stop. Returns code so a stage can
 * write `return pgfeed__fail(...)`. fmt is the primary message; detail and hint
 * are optional (NULL) plain strings. Everything stored is escaped for printing.
 */
int pgfeed__fail(struct pgfeed_ctx *ctx, const char *stage, int code, const char *detail,
                 const char *hint, const char *fmt, ...) PGFEED_PRINTF(6, 7);
/* Fills position fields of the stored error (after pgfeed__fail). */
void pgfeed__fail_at(struct pgfeed_ctx *ctx, uint64_t line, int column, const char *column_name,
                     uint64_t decoded_offset, uint64_t raw_offset);
void pgfeed__fail_sqlstate(struct pgfeed_ctx *ctx, const char *sqlstate);
/*
 * The stored error's detail ends with "; N rows in M earlier batches are committed.",
 * counted when the import ends: with several connections an earlier batch may still commit
 * after a later one failed, so the count at the moment of failure can be short.
 */
void pgfeed__fail_count_committed(struct pgfeed_ctx *ctx);
void pgfeed__log(struct pgfeed_ctx *ctx, int level, const char *fmt, ...) PGFEED_PRINTF(3, 4);
void pgfeed__err_clear(struct pgfeed_err_store *e);

/* printf into a new malloc'd string, or NULL. */
char *pgfeed__strdup_printf(const char *fmt, ...) PGFEED_PRINTF(1, 2);
/* Quotes input for a message: at most 100 bytes then "...", unprintables as \xNN. */
char *pgfeed__quote_input(const char *p, size_t n);
/*
 * A message (or a name in one) made safe to print: control characters, DEL, C1 controls
 * and bytes that are not UTF-8 as \xNN, runs of tabs and line ends as one space,
 * everything else (backslashes included) as it is, so that escaping twice changes
 * nothing. pgfeed__fail, pgfeed__fail_at and pgfeed__log pass what they store through
 * it. A new malloc'd string, or NULL.
 */
char *pgfeed__escape_text(const char *s);
/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0 if it is not one. */
size_t pgfeed__utf8_len(const char *p, size_t n);

/* ---- column description, filled by the sink from the catalog ---- */
struct pgfeed_column {
    char *name;        /* as in the catalog */
    int is_array;      /* split on commas into an array literal */
    uint32_t type_oid; /* atttypid */
    uint32_t elem_oid; /* arrays: the element type (typelem), else 0 */
    char *type_name;   /* format_type(): "character varying(255)[]" */
};

/* ---- the context below every stage (ctx.c) ---- */

/*
 * A row refused before it reaches the server (wrong field count, invalid
 * UTF-8, a NUL byte, an unterminated quote...) or by the server. Strings are
 * borrowed for the call.
 */
struct pgfeed_reject {
    const char *stage; /* "parser" */
    uint64_t line;     /* input line where the record starts */
    uint64_t decoded_offset;
    int column; /* 1-based field, 0 when not about one field */
    const char *column_name;
    const char *message; /* primary message, lower case, no final period */
    const char *detail;  /* may be NULL */
    const char *hint;    /* may be NULL */
    const char *raw;     /* the record as read (without its line end) */
    size_t raw_len;
};

/* What the owner of the pipeline (job.c) does for the context; set before any stage runs. */
struct pgfeed_ctx_hooks {
    void *owner;
    /* The first (and every later) pgfeed__fail: stop the pipeline if it runs. */
    void (*failed)(void *owner, int code);
    /* A handle close finished (pending_closes was decremented). */
    void (*closed)(void *owner);
    /* Run s->ops->resume(s) soon, from a timer, never re-entrantly. */
    void (*schedule_resume)(void *owner, struct pgfeed_stage *s);
    /* A rejected row: 0 when it is set aside and the stage goes on, or the failure code
     * when the import fails instead (--max-rejects reached or 0; the error is then set). */
    int (*reject)(void *owner, const struct pgfeed_reject *r);
    /* Before a batch commits: the rejects of lines from..upto to the file, as
     * pgfeed__rejects_flush (1: done; 0: cb runs when they are on disk; <0: failed). */
    int (*flush_rejects)(void *owner, uint64_t from, uint64_t upto,
                         void (*cb)(void *arg, int status), void *arg);
    /* A batch ends (bi filled but for what it carries to the sink): attach the restart
     * point for bi->end_decoded, the source's validators and its rows' lines. */
    void (*batch_ending)(void *owner, struct pgfeed_batch_info *bi);
};

/* A pipe's bytes since the last committed restart point, for an in-run retry. */
struct pgfeed_replay {
    struct pgfeed_buf buf;
    uint64_t start; /* stream offset of buf.data[0] */
    int lost;       /* a byte a retry would need was not kept */
};

struct pgfeed_ctx {
    uv_loop_t *loop;
    const struct pgfeed_options *opt; /* resolved; the owner's */
    const char *display;              /* the source as messages show it */
    struct pgfeed_ctx_hooks hooks;
    int running;  /* the pipeline runs: stages may resume one another */
    int canceled; /* a cancel was asked for: nothing is transient any more */

    struct pgfeed_stats stats; /* live counters of the current attempt */
    struct pgfeed_err_store err;
    int err_count_committed; /* append the final committed counts to err's detail */
    unsigned pending_closes;
    uint64_t server_wait_ns, server_wait_since, busy_ns;

    int transient;            /* the failure being handled may go away: retry */
    int attempts;             /* retries done */
    int waiting_db;           /* the failure is a server not up yet: wait (--wait-for-db) */
    int waits;                /* new attempts made while waiting for the server */
    int connected;            /* a database connection was made in this job */
    const char *compression;  /* what the decoder found: "gzip", "zlib", or NULL (plain) */
    uint64_t wait_db_until;   /* uv_hrtime() until which a first connection may wait */
    uint64_t lines_committed; /* input lines the checkpoint covers (all runs) */
    int user_resume;          /* resume as the caller gave it (a retry sets opt->resume) */
    int before_ran;           /* before_sql committed in this job (not again on a retry) */
    struct pgfeed_replay replay;
    /* The gzip member being read, and the committed batches holding its rows. */
    struct {
        uint64_t dec_start, raw_start;
        uint64_t first_line, last_line, rows, batches;
        int damaged;
    } member;
};

uv_loop_t *pgfeed__ctx_loop(struct pgfeed_ctx *ctx);
const struct pgfeed_options *pgfeed__ctx_options(struct pgfeed_ctx *ctx);
struct pgfeed_stats *pgfeed__ctx_stats(struct pgfeed_ctx *ctx);
/*
 * Handle close bookkeeping. Call pgfeed__ctx_handle_closing(ctx) before each
 * uv_close of a handle a stage owns, then either set h->data = ctx and pass
 * pgfeed__ctx_close_cb to uv_close, or call pgfeed__ctx_handle_closed(ctx) at
 * the end of the stage's own close callback. The import ends only once every
 * such close has finished; stage memory is freed later, in destroy.
 */
void pgfeed__ctx_handle_closing(struct pgfeed_ctx *ctx);
void pgfeed__ctx_handle_closed(struct pgfeed_ctx *ctx);
void pgfeed__ctx_close_cb(uv_handle_t *h);
/* Runs s->ops->resume(s) soon, from a timer, never re-entrantly. */
void pgfeed__ctx_schedule_resume(struct pgfeed_ctx *ctx, struct pgfeed_stage *s);
/* A rejected row (see the hooks): 0 to go on, or the failure code. */
int pgfeed__ctx_reject(struct pgfeed_ctx *ctx, const struct pgfeed_reject *r);
int pgfeed__ctx_flush_rejects(struct pgfeed_ctx *ctx, uint64_t from, uint64_t upto,
                              void (*cb)(void *arg, int status), void *arg);
/* The parser ended a batch: what its checkpoint needs is attached (see the hooks). */
void pgfeed__ctx_batch_ending(struct pgfeed_ctx *ctx, struct pgfeed_batch_info *bi);
/*
 * Time accounting for the stats: the sink marks when the pipeline starts and
 * stops waiting on the server (waiting = 1 / 0; repeated calls are fine); a
 * source adds the time it spent inside downstream calls (from since_ns, a
 * uv_hrtime() value). Time in neither is time spent waiting for input.
 */
void pgfeed__ctx_server_wait(struct pgfeed_ctx *ctx, int waiting);
void pgfeed__ctx_busy(struct pgfeed_ctx *ctx, uint64_t since_ns);
/*
 * Call right before pgfeed__fail for a failure that may go away (a lost
 * server connection, SQLSTATE 08xxx, 57P0x, 40001, 40P01): the owner then
 * retries (up to --retries, with backoff) from the last committed checkpoint
 * instead of failing, unless it was canceled.
 */
void pgfeed__ctx_transient(struct pgfeed_ctx *ctx);
/*
 * A connection could not be made. not_up_yet: it failed the way a server still coming up
 * fails (refused, no socket, timed out, starting up, a name not resolving yet; the
 * caller's judgement). The job then waits for the server (--wait-for-db, nothing
 * connected yet, time left); otherwise the failure is transient only on a retry attempt
 * (a server restarting or away for a moment), and final on the first.
 */
void pgfeed__ctx_connect_failed(struct pgfeed_ctx *ctx, int not_up_yet);
/* This is not the job's first attempt (a retry, or a wait for the server): a source read
 * only once replays the bytes the context kept before reading on. */
int pgfeed__ctx_retrying(const struct pgfeed_ctx *ctx);
/*
 * A batch committed. With prefix_raw, it wrote the checkpoint's prefix row: its last line
 * is where the checkpoint now stands, and *prefix_raw the source offset a retry would read
 * again from (the row's raw_offset; 0 without a restart point). NULL: it committed past
 * the prefix, which does not move.
 */
void pgfeed__ctx_batch_committed(struct pgfeed_ctx *ctx, const struct pgfeed_batch_info *bi,
                                 const uint64_t *prefix_raw);
/*
 * Replay for a source that gives its bytes once (a pipe): every byte read since the last
 * committed restart point is kept, at most (connections + 1) x --batch-bytes (cap), so
 * that an in-run retry can read them again. keep: the source read these n bytes next
 * (offsets count from the stream's first byte). get: the kept bytes from offset on
 * (*n = 0: none kept past it); UV_ENOENT when offset is not kept (or keeping gave up).
 * ok: every byte a retry may need is still kept.
 */
size_t pgfeed__ctx_replay_cap(const struct pgfeed_ctx *ctx);
void pgfeed__ctx_replay_keep(struct pgfeed_ctx *ctx, const char *p, size_t n);
int pgfeed__ctx_replay_get(struct pgfeed_ctx *ctx, uint64_t offset, const char **p, size_t *n);
int pgfeed__ctx_replay_ok(const struct pgfeed_ctx *ctx);
/*
 * The decoder started a gzip member (zlib stream) at this decoded and compressed
 * offset. Its CRC is checked only at its end, after batches holding its rows may have
 * committed: a failed check then says which committed lines came from it
 * (damaged_member, called by the decoder when the check fails).
 */
void pgfeed__ctx_member_start(struct pgfeed_ctx *ctx, uint64_t decoded, uint64_t raw);
void pgfeed__ctx_damaged_member(struct pgfeed_ctx *ctx);
/* Frees what the context owns (the stored error, the replay buffer). */
void pgfeed__ctx_free(struct pgfeed_ctx *ctx);
/* ---- options: copies, defaults, checks (options.c) ---- */

/* The strings an import owns: copies of the caller's, and the source as messages show it. */
struct pgfeed_option_copies {
    char *source, *conninfo, *table, *columns, *null_marker, *ca_file, *ca_path, *state_table;
    char *rejects_path;
    char *encoding;
    char *before_sql, *after_sql;
    char *display; /* the source without user:password@ */
};
/* *dst = *src with every string copied into c (UV_ENOMEM: nothing kept), and the floors
 * applied (batch bytes, chunk size, max line). */
int pgfeed__options_copy(struct pgfeed_options *dst, struct pgfeed_option_copies *c,
                         const struct pgfeed_options *src);
void pgfeed__options_free(struct pgfeed_option_copies *c);
/* Resolves every default that depends on another option and refuses bad combinations
 * (the error set in ctx). After it, no stage defaults an option. */
int pgfeed__options_resolve(struct pgfeed_ctx *ctx, struct pgfeed_options *o);
/* The format's delimiter, quote and NULL marker where they are 0 / NULL. */
void pgfeed__format_defaults(pgfeed_format_t format, char *delimiter, char *quote,
                             const char **null_marker);

/* ---- counters across retries, and rates (stats.c) ---- */

#define PGFEED_RATE_RING 41 /* 10 s of samples every 250 ms, plus the current one */
struct pgfeed_rates {
    struct pgfeed_rate_sample {
        uint64_t t_ns, rows, bytes, inflated;
    } s[PGFEED_RATE_RING];
    size_t n, head;
    double last_wait_source; /* wait_source_s never goes back */
};
/* Counters that only grow: for those a retry reads again, the larger of carry and live;
 * for the rest (committed, rejected, retries) their sum. */
void pgfeed__stats_merge(struct pgfeed_stats *out, const struct pgfeed_stats *carry,
                         const struct pgfeed_stats *live);
void pgfeed__rates_sample(struct pgfeed_rates *r, const struct pgfeed_stats *merged);
/* Fills out's waits, rates and ETA from the samples and the context's clocks. */
void pgfeed__stats_derive(const struct pgfeed_rates *r, const struct pgfeed_ctx *ctx,
                          struct pgfeed_stats *out);

/* ---- the rejects file (rejects.c) ---- */

struct pgfeed_pending_reject {
    uint64_t line;
    char *text; /* "LINE\tREASON\tROW\n", ready to write (the row may hold NUL bytes) */
    size_t len;
};
#define PGFEED_REJECTS_WAITERS 64 /* batches committing at once (one per connection) */
struct pgfeed_rejects_waiter {
    uint64_t from, upto_line; /* the batch's lines */
    int taken;                /* its rows are in `out` (the file is open) */
    uint64_t upto;            /* then: answered once `synced` reaches this */
    void (*cb)(void *arg, int status);
    void *arg;
};
struct pgfeed_rejects {
    struct pgfeed_ctx *ctx;
    struct pgfeed_pending_reject *pending; /* rows of batches not committed yet */
    size_t n, cap;
    char *path;  /* chosen by pgfeed__rejects_choose */
    uv_fs_t req; /* the one request in flight (busy) */
    int busy, opened, checked, fd;
    int is_dev;    /* a character device (/dev/null): appended to, never synced */
    int sync;      /* a regular file: fdatasync before answering a flush */
    int dir_state; /* a file this import created: 0 its directory not synced yet, 1 opening
                    * it, 2 syncing it, 3 done (appends and devices start at 3) */
    int dir_fd;
    int failed;                      /* a write failed: the error, set; every later flush fails */
    struct pgfeed_buf out, inflight; /* bytes not yet written; being written */
    size_t inflight_off;
    uint64_t appended, written, syncing, synced; /* bytes of the file's stream */
    struct pgfeed_rejects_waiter wait[PGFEED_REJECTS_WAITERS];
    size_t nwait;
    void (*check_cb)(void *arg, int status);
    void *check_arg;
};
/* In pgfeed_job_new, with no filesystem call: where rejects go (ctx->opt: max_rejects,
 * rejects_path, table). 0 or UV_ENOMEM (error set). */
int pgfeed__rejects_choose(struct pgfeed_rejects *rj, struct pgfeed_ctx *ctx);
/*
 * At the job's start (ctx->opt->resume too): an lstat on the threadpool, then cb with 0,
 * or a failure (error set) for a file that a new import would mix into, a symbolic link,
 * or something that is not a regular file or a character device. Returns 0 (cb will
 * run), 1 (nothing to check: no cb) or a failure (error set, no cb).
 */
int pgfeed__rejects_check(struct pgfeed_rejects *rj, void (*cb)(void *arg, int status), void *arg);
/* A stop: the check, if it has not begun, does not run (its cb does not either). */
void pgfeed__rejects_cancel(struct pgfeed_rejects *rj);
/* A rejected row: kept until its batch commits (0), or the import's failure (--max-rejects
 * reached: the error is set from the row's message, detail, hint and position). */
int pgfeed__rejects_add(struct pgfeed_rejects *rj, struct pgfeed_ctx *ctx,
                        const struct pgfeed_reject *r);
/*
 * Before a batch commits: the kept rows of lines from..upto go to the file. Returns 1 when
 * nothing needs waiting for (cb does not run), 0 when cb(arg, status) will run once they
 * and every byte before them are written and synced (0) or could not be (the error set;
 * also from inside this call), or a failure (error set).
 */
int pgfeed__rejects_flush(struct pgfeed_rejects *rj, uint64_t from, uint64_t upto,
                          void (*cb)(void *arg, int status), void *arg);
/*
 * A refused row written back as an input line, for the rejects file's ORIGINAL ROW: every
 * path that rebuilds a row (sink_refused.c from COPY text, pgfeed__bin_row_as_input from a
 * binary tuple) hands each field's value to pgfeed__rejects_field, so the file does not
 * depend on how the row travelled.
 */
struct pgfeed_input_form {
    char delimiter;
    char quote;              /* csv's quote character; 0: tsv, no value is quoted */
    const char *null_marker; /* what a NULL is written as */
};
/*
 * Appends field i (0-based) of a row: the delimiter unless i is 0, then the null marker
 * when v is NULL, else the n bytes at v; in csv a value with the delimiter, the quote, CR or
 * LF, or equal to the null marker (so "" when it is empty), is quoted and its quotes
 * doubled. 0 or UV_ENOMEM (out may then hold part of the field).
 */
int pgfeed__rejects_field(struct pgfeed_buf *out, const struct pgfeed_input_form *form, size_t i,
                          const char *v, size_t n);
/* Forgets the kept rows (their batches are read again by a retry); returns how many. */
size_t pgfeed__rejects_drop_pending(struct pgfeed_rejects *rj);
/* The file's path once something was written to it, else NULL. */
const char *pgfeed__rejects_written(const struct pgfeed_rejects *rj);
void pgfeed__rejects_free(struct pgfeed_rejects *rj);

/* ---- the SOURCE string (url.c) ---- */

int pgfeed__url_is(const char *s, const char *scheme); /* scheme with "://", any case */
int pgfeed__url_is_http(const char *s);                /* http:// or https:// */
/* The URL without user:password@ (http and https; anything else as it is); NULL: ENOMEM. */
char *pgfeed__url_strip_credentials(const char *url);
/* The path ends in suffix (lower case), a URL's query and fragment left out. */
int pgfeed__url_path_ends_with(const char *src, const char *suffix);
/* A file:// URL's local path, percent-decoded, in *out (malloc'd); another host or a
 * URL that does not parse is PGFEED_EUSAGE with the error set. */
int pgfeed__url_file_path(struct pgfeed_ctx *ctx, const char *url, char **out);

/* ---- column mapping (mapping.c) ---- */

/* The table column of each input field, in input order, and their binary kinds. */
struct pgfeed_targets {
    size_t n;
    size_t *idx;                  /* into the sink's columns */
    int *is_array;                /* per field */
    const char **names;           /* per field, borrowed from the columns */
    struct pgfeed_bin_field *bin; /* COPY binary: the kinds; NULL: text COPY */
    int bin_noticed;              /* the fallback to text COPY was logged */
};
/* Sets t to these columns (n indexes into cols) and chooses binary COPY when the types
 * allow it (ctx->opt->copy_format, format). 0 or failure (error set). */
int pgfeed__targets_set(struct pgfeed_targets *t, struct pgfeed_ctx *ctx,
                        const struct pgfeed_column *cols, const size_t *idx, size_t n);
void pgfeed__targets_free(struct pgfeed_targets *t);
/* A header line (ctx->opt->header, delimiter) to column indexes, *out malloc'd, *nout
 * fields; or PGFEED_EHEADER with the error set (names not found, counts differ). */
int pgfeed__map_header(struct pgfeed_ctx *ctx, const struct pgfeed_column *cols, size_t ncols,
                       const char *line, size_t n, size_t **out, size_t *nout);
/* --columns (ctx->opt->columns) to column indexes, *out malloc'd; or PGFEED_EUSAGE. */
int pgfeed__map_columns_option(struct pgfeed_ctx *ctx, const struct pgfeed_column *cols,
                               size_t ncols, size_t **out, size_t *nout);

/* job.c: the context of a job, for the code that builds stages on it (the job, tests). */
struct pgfeed_ctx *pgfeed__job_ctx(pgfeed_job_t *job);

/* ---- stage constructors ---- */

/* source_file.c: path or fd (path NULL). No filesystem call until open (see the op);
 * reads on start(). */
int pgfeed__source_file_new(struct pgfeed_ctx *ctx, const char *path, int fd,
                            struct pgfeed_stage **out);
/*
 * Before start: reads the first `want` bytes (fewer at end of input) into the source's
 * own buffer, then calls cb with them from the loop; start delivers them first. For
 * stdin, whose contents nothing else identifies (job.c fingerprints them). want must not
 * exceed the chunk size. 0, or a negative code (error set).
 */
typedef void (*pgfeed_prefetch_cb)(void *arg, const char *p, size_t n);
int pgfeed__source_file_prefetch(struct pgfeed_stage *s, size_t want, pgfeed_prefetch_cb cb,
                                 void *arg);
/*
 * source_once.c: for a source whose bytes come only once (a pipe, the embedder's writes).
 * init: name is borrowed for messages; replaying starts 0 (set it for a retry, when
 * pgfeed__ctx_retrying). seek: before start, begin at raw_offset: a retry replays from
 * there, else the first raw_offset bytes are dropped as they come; 0, or a failure (the
 * replay no longer holds it; error set). replay: while replaying, the kept bytes from the
 * next position on, borrowed until the context's next replay call (*n = 0: all replayed,
 * replaying is cleared); 0 or a failure (error set); replayed: n of them were taken.
 * drop: n bytes came next, how many of them to drop from the front. end: the input ended;
 * 0, or PGFEED_ECHANGED (error set) when it ended before the position a resume starts at.
 */
struct pgfeed_once {
    struct pgfeed_ctx *ctx;
    const char *name;
    uint64_t discard;    /* bytes still to drop (a resume) */
    int replaying;       /* a retry: bytes come from the context's replay first */
    uint64_t replay_pos; /* stream offset of the next byte to replay */
};
void pgfeed__once_init(struct pgfeed_once *o, struct pgfeed_ctx *ctx, const char *name);
int pgfeed__once_seek(struct pgfeed_once *o, uint64_t raw_offset);
int pgfeed__once_replay(struct pgfeed_once *o, const char **p, size_t *n);
void pgfeed__once_replayed(struct pgfeed_once *o, size_t n);
size_t pgfeed__once_drop(struct pgfeed_once *o, size_t n);
int pgfeed__once_end(struct pgfeed_once *o);
/*
 * source_push.c: the embedder's writes (pgfeed_options.push). The inbox belongs to the job
 * and outlives the stages of one attempt: the bytes written and not yet taken by the
 * pipeline wait in buf from off on. write: takes all n bytes (0) while fewer than bound
 * bytes wait, else none (PGFEED_EAGAIN; room(arg) then runs once, from the stage's work,
 * when what waits falls below bound); UV_ENOMEM. end: no more writes. The source stage
 * reads it from start() until stop(), from its resume op only.
 */
struct pgfeed_push_inbox {
    struct pgfeed_buf buf;
    size_t off;
    size_t bound;
    int ended;     /* pgfeed_job_write_end */
    int want_room; /* a write was refused: call room when below bound */
    void (*room)(void *arg);
    void *room_arg;
    struct pgfeed_stage *reader; /* the started push source, else NULL */
};
void pgfeed__push_init(struct pgfeed_push_inbox *in, size_t bound, void (*room)(void *arg),
                       void *arg);
int pgfeed__push_write(struct pgfeed_push_inbox *in, const void *p, size_t n);
void pgfeed__push_end(struct pgfeed_push_inbox *in);
void pgfeed__push_free(struct pgfeed_push_inbox *in);
int pgfeed__source_push_new(struct pgfeed_ctx *ctx, struct pgfeed_push_inbox *in,
                            struct pgfeed_stage **out);
/*
 * source_regular.c: a regular file read ahead on libuv's threadpool, for source_file.c.
 * Embedded in the source; init before use (UV_ENOMEM), free after the last close.
 * take() hands over the chunk that landed: it swaps *buf (the caller's drained buffer, cap
 * bytes) with the filled one, sets *n (cap except for the last chunk) and *end (the file
 * ended after them), starts the next read and returns 0; or returns 1 when nothing has
 * landed yet (a read is then in flight and ready_cb runs when it lands, from the loop,
 * never from inside a reader call); or a failed read's UV_E*. seek: the next byte taken is
 * the one at pos (what was read ahead is dropped). stop: no ready_cb after it; a read in
 * flight holds a close reference (pgfeed__ctx_handle_closing) until it returns.
 */
struct pgfeed_reader {
    struct pgfeed_ctx *ctx;
    uv_fs_t req;
    uv_file fd;
    char *spare; /* cap bytes: the read lands here */
    size_t cap;
    size_t got;   /* bytes in spare */
    uint64_t pos; /* file offset of spare[got] */
    int reading, ready, eof, stale, stopped, ref;
    int err; /* a failed read, UV_E* */
    void (*ready_cb)(struct pgfeed_reader *r);
};
int pgfeed__reader_init(struct pgfeed_reader *r, struct pgfeed_ctx *ctx, uv_file fd, size_t cap,
                        uint64_t pos, void (*ready_cb)(struct pgfeed_reader *r));
/* Starts a read unless one is in flight or has landed (or the end was taken): 0 or UV_E*. */
int pgfeed__reader_start(struct pgfeed_reader *r);
int pgfeed__reader_take(struct pgfeed_reader *r, char **buf, size_t *n, int *end);
void pgfeed__reader_seek(struct pgfeed_reader *r, uint64_t pos);
void pgfeed__reader_stop(struct pgfeed_reader *r);
void pgfeed__reader_free(struct pgfeed_reader *r);
/*
 * source_http.c: http:// and https:// URLs (file:// ones go to source_file.c)
 * through libcurl's multi interface on the job's loop. multi is the shared
 * transfer context or NULL (the source then makes its own). Counts bytes_read
 * and sets bytes_total.
 */
struct pgfeed_http;
int pgfeed__source_http_new(struct pgfeed_ctx *ctx, const char *url, struct pgfeed_http *shared,
                            struct pgfeed_stage **out);

/* decode_gzip.c: gzip (multi-member), zlib, zstd, bzip2, xz or plain, detected from the first
 * bytes. */
int pgfeed__decoder_new(struct pgfeed_ctx *ctx, size_t out_chunk, struct pgfeed_stage **out);
/* Before the first write: discard the first n bytes of decoded output (a re-read resume). */
void pgfeed__decoder_skip_output(struct pgfeed_stage *s, uint64_t n);
/*
 * Restart points: resuming mid-stream without re-reading the compressed input
 * from its start (the top comments of decode_gzip.c and inflater.c have the
 * details, restart_point.c the blob's format). restart_point appends to out a
 * self-contained restart point for the latest access point at or before
 * decoded offset `decoded`, and sets *raw_offset to the source byte from
 * which reading must restart. Returns 0, 1 when no access point at or before
 * `decoded` is kept any more (re-read from 0 and skip instead), or UV_ENOMEM
 * (the job's error is not set). restart_from, before the first write, sets a
 * new decoder up from such a blob: the source then delivers its bytes from
 * *raw_offset on, and the decoder discards output up to `decoded` (the
 * checkpoint's decoded offset, at or after the point's). Returns 0, or a
 * failure code with the job's error set: PGFEED_ECHECKPOINT for a blob that
 * is damaged or of another format version.
 */
int pgfeed__decoder_restart_point(struct pgfeed_stage *s, uint64_t decoded, struct pgfeed_buf *out,
                                  uint64_t *raw_offset);
int pgfeed__decoder_restart_from(struct pgfeed_stage *s, const void *blob, size_t n,
                                 uint64_t decoded);
/*
 * Before the first write, chooses the engine for gzip members' deflate data
 * (decode_engine.h): on = 1 the build's engine (ISA-L with -Disal), on = 0
 * zlib alone. A restart point recorded with one resumes with the other.
 * Returns 1 when the build has an engine besides zlib, else 0.
 */
int pgfeed__decoder_use_isal(struct pgfeed_stage *s, int on);
/* Decoded bytes at least between two access points (default 1 MiB; 0: every block). */
void pgfeed__decoder_set_span(struct pgfeed_stage *s, size_t span);
/* Before the first write: the largest zstd window (xz: dictionary) accepted; 0: 128 MiB. */
void pgfeed__decoder_set_max_window(struct pgfeed_stage *s, uint64_t bytes);

/* restart_point.c: the restart point blob (its first comment has the format). */
#define PGFEED_RP_WINSIZE 32768u /* deflate's window */
enum pgfeed_rp_mode {
    PGFEED_RP_START,
    PGFEED_RP_PLAIN,
    PGFEED_RP_GZIP,
    PGFEED_RP_ZLIB,
    PGFEED_RP_ZSTD, /* the next three: a stream (frame) boundary, no window */
    PGFEED_RP_BZIP2,
    PGFEED_RP_XZ,
    PGFEED_RP_XZ_BLOCK, /* an xz block boundary inside a stream; check: the stream's check type */
    PGFEED_RP_BZIP2_BLOCK, /* a bzip2 block boundary: bits; check: combined CRC; mlen: level */
};
/* A place in the compressed input where inflating can start over. */
struct access_point {
    uint64_t seq;        /* 1, 2, ... in recording order; 0: an empty slot */
    uint64_t raw;        /* the first input byte the engine had not consumed */
    uint64_t dec;        /* decoded offset */
    uint64_t member_raw; /* where its gzip member (zlib stream) starts */
    uint64_t member_no;
    uint64_t mlen;       /* the member's decoded bytes before the point */
    uint32_t check;      /* their CRC-32 (gzip) or Adler-32 (zlib) */
    unsigned char start; /* the start of the input: mode 0, nothing else set */
    unsigned char bits;  /* unused bits in byte, the input byte at raw - 1 */
    unsigned char byte;
    unsigned wlen; /* window bytes */
};
/* Appends the blob of point p, in mode mode, its window wlen bytes at window. 0 or UV_ENOMEM. */
int pgfeed__rp_encode(const struct access_point *p, enum pgfeed_rp_mode mode,
                      const unsigned char *window, struct pgfeed_buf *out);
/*
 * Reads the header of blob[0, n) into p and mode, for a checkpoint at decoded
 * offset `decoded`. 0, or PGFEED_ECHECKPOINT with *detail (malloc'd, may be
 * NULL) saying what is wrong. The window is read by pgfeed__rp_window.
 */
int pgfeed__rp_decode(const void *blob, size_t n, uint64_t decoded, struct access_point *p,
                      enum pgfeed_rp_mode *mode, char **detail);
/*
 * After pgfeed__rp_decode accepted blob: its p->wlen window bytes into window
 * (PGFEED_RP_WINSIZE bytes). 0, UV_ENOMEM, or PGFEED_ECHECKPOINT with *detail.
 */
int pgfeed__rp_window(const void *blob, const struct access_point *p, unsigned char *window,
                      char **detail);
/* The last PGFEED_RP_RING access points a decoder recorded, with their windows. */
#define PGFEED_RP_RING 8
struct pgfeed_rp_ring {
    struct access_point pt[PGFEED_RP_RING];
    unsigned next;           /* the slot the next point goes to */
    uint64_t seq;            /* the last point's seq */
    unsigned char *windows;  /* PGFEED_RP_RING * PGFEED_RP_WINSIZE, allocated with the first */
    struct pgfeed_buf cache; /* the last blob made, for the point cache_seq */
    uint64_t cache_seq;
};
/* A ring whose only point is p (seq set to 1), or the start of the input when p is NULL. */
void pgfeed__rp_ring_init(struct pgfeed_rp_ring *r, const struct access_point *p);
const struct access_point *pgfeed__rp_ring_newest(const struct pgfeed_rp_ring *r);
/* The window of the slot the next point goes to; NULL without memory. */
unsigned char *pgfeed__rp_ring_window(struct pgfeed_rp_ring *r);
/* Stores p, its window already in place, as the newest point (sets p's seq). */
void pgfeed__rp_ring_push(struct pgfeed_rp_ring *r, const struct access_point *p);
/*
 * Appends the blob of the newest point at or before decoded offset `decoded`
 * (mode for a point that is not the start) and sets *raw_offset as
 * pgfeed__decoder_restart_point does. 0, 1 without such a point, or UV_ENOMEM.
 */
int pgfeed__rp_ring_blob(struct pgfeed_rp_ring *r, uint64_t decoded, enum pgfeed_rp_mode mode,
                         struct pgfeed_buf *out, uint64_t *raw_offset);
void pgfeed__rp_ring_free(struct pgfeed_rp_ring *r);

/* parse_dsv.c (and parse_*.c): tsv, text and csv formats; writes COPY text rows to the sink. */
struct pgfeed_parse_config {
    pgfeed_format_t format; /* PGFEED_FORMAT_TSV, PGFEED_FORMAT_TEXT or PGFEED_FORMAT_CSV */
    char delimiter;         /* 0: tab (tsv, text) or ',' (csv) */
    char quote;             /* csv: 0 means '"' */
    /*
     * Borrowed for the parser's lifetime. NULL: "\N" (tsv, text) or "" (csv,
     * where only an unquoted field can be NULL). delimiter and quote must be
     * ASCII, not NUL, LF or CR, and differ: else pgfeed__parser_new returns
     * UV_EINVAL.
     */
    const char *null_marker;
    size_t max_line;     /* a longer line (csv: record) is an error */
    uint64_t batch_rows; /* 0: one batch */
    size_t batch_bytes;  /* also end a batch at this many COPY bytes; 0: no limit */
    /*
     * has_header: the first line is not data. It is handed, without its line
     * end (LF or CRLF), to on_header, which maps it and must call
     * pgfeed__parser_set_fields() before returning 0 (or return a failure
     * code it set with pgfeed__fail). csv: the header record's fields are
     * handed unquoted (doubled quotes undone) and joined by the delimiter.
     * Without a header, the fields below are used from the start.
     */
    int has_header;
    int (*on_header)(void *arg, const char *line, size_t n);
    void *on_header_arg;
    size_t nfields;                 /* expected fields per row */
    const int *is_array;            /* nfields flags, borrowed */
    const char *const *field_names; /* nfields names for messages, borrowed */
    /* Rows whose first line falls in one of these ranges (in order, borrowed) are parsed
     * but neither sent nor rejected: they were committed by an earlier run (copied). */
    const struct pgfeed_line_range *skip;
    size_t nskip;
    const struct pgfeed_encoding *encoding; /* of the input (static); NULL: UTF8 */
};
int pgfeed__parser_new(struct pgfeed_ctx *ctx, const struct pgfeed_parse_config *cfg,
                       struct pgfeed_stage **out);
/* Before the first write: the input starts at this line and decoded offset, with no header. */
void pgfeed__parser_set_position(struct pgfeed_stage *s, uint64_t line, uint64_t decoded_offset);
/* Sets (or replaces) the expected fields; arrays are borrowed for the parser's lifetime. */
void pgfeed__parser_set_fields(struct pgfeed_stage *s, size_t nfields, const int *is_array,
                               const char *const *field_names);
/*
 * Binary COPY: before the first data row, fields (one per field as set by
 * pgfeed__parser_set_fields, borrowed for the parser's lifetime) makes tsv and csv rows
 * binary tuples (encode_binary.c) instead of COPY text rows, without the file header and
 * trailer (the sink's); a value the server would refuse is a rejected row. NULL: COPY text.
 * Ignored for the text format. batch_bytes counts tuple bytes.
 */
struct pgfeed_bin_field;
void pgfeed__parser_set_binary(struct pgfeed_stage *s, const struct pgfeed_bin_field *fields);
/*
 * The input line where row batch_row (1-based, as in the server's "COPY t, line N") of batch
 * seq (pgfeed_batch_info.seq) starts, or 0 when unknown. Known for the batch being built and
 * the PGFEED_MAX_CONNECTIONS batches before it. Exact for every format, with multi-line csv
 * records and with rejected rows in between (where first_line + N - 1 is not); only rows
 * past a batch's first 262,144 irregular ones are unknown.
 */
uint64_t pgfeed__parser_row_line(struct pgfeed_stage *s, uint64_t seq, uint64_t batch_row);
/*
 * What end_batch would be given if the batch ended now: the rows parsed since the last
 * end_batch, and every line and byte consumed so far (rejected records after the last row
 * included). For the sink's last, partial batch at finish, which gets no end_batch.
 */
void pgfeed__parser_pending_batch(struct pgfeed_stage *s, struct pgfeed_batch_info *bi);
/* Batch seq's row map while the parser keeps it (the batches a sink may still be working
 * on), else NULL. */
const struct pgfeed_rowmap *pgfeed__parser_rowmap(struct pgfeed_stage *s, uint64_t seq);
/* parse_utf8.c: the offset of the first byte of p[0..n) that is 0x00 or not valid UTF-8, else n. */
size_t pgfeed__utf8_check(const char *p, size_t n);

/* ---- the input's encoding (encoding.c) ---- */

/* One of PostgreSQL's encodings. */
struct pgfeed_encoding {
    const char *name;    /* PostgreSQL's name, as SET client_encoding takes it */
    const char *iconv;   /* iconv's name for it (hints) */
    const uint16_t *sb;  /* single-byte: code points of 0x80..0xFF, 0 where refused; else NULL */
    const char *refused; /* why pgfeed cannot read it (a sentence), or NULL */
};
/* The encoding a name or alias of PostgreSQL's stands for (any case, punctuation ignored as
 * PostgreSQL does: "windows-1252", "ISO-8859-1", "latin1"), or NULL. Static: never freed. */
const struct pgfeed_encoding *pgfeed__encoding_find(const char *name);
/* UTF8 (also e == NULL, the default)? */
int pgfeed__encoding_is_utf8(const struct pgfeed_encoding *e);
/* The offset of the first byte of s[0..n) that is 0x00 or not valid in e, else n. A multibyte
 * sequence that n cuts counts as invalid at its first byte. */
size_t pgfeed__encoding_check(const struct pgfeed_encoding *e, const char *s, size_t n);
/* s[0..n) as UTF-8 in out (replacing its contents; not terminated), a byte e refuses as
 * U+FFFD. 0 or UV_ENOMEM. */
int pgfeed__encoding_to_utf8(const struct pgfeed_encoding *e, const char *s, size_t n,
                             struct pgfeed_buf *out);
/* "UTF-16LE" or "UTF-16BE" when the first line s[0..n) starts with a UTF-16 byte order mark
 * or with two ASCII characters in UTF-16, else NULL. */
const char *pgfeed__encoding_utf16(const char *s, size_t n);

/* encode_copy.c: COPY text encoding of one field, appended to out. */
int pgfeed__encode_field(struct pgfeed_buf *out, const char *p, size_t n);
int pgfeed__encode_array(struct pgfeed_buf *out, const char *p, size_t n);
/*
 * The same, written to dst, which has room for the bound below (the parser
 * reserves once per row); each returns the end of what it wrote.
 */
#define PGFEED_ENCODE_FIELD_MAX(n) (2 * (size_t)(n))
#define PGFEED_ENCODE_ARRAY_MAX(n) (4 * (size_t)(n) + 4)
char *pgfeed__encode_field_to(char *dst, const char *p, size_t n);
char *pgfeed__encode_array_to(char *dst, const char *p, size_t n);
/* How the parser's tsv lines become COPY rows (encode_row below). */
struct pgfeed_row_spec {
    char delimiter;
    const char *null_marker; /* a field equal to it becomes \N */
    size_t null_len;
    size_t nfields;
    const int *is_array; /* nfields flags, or NULL when no field is an array */
};
/* Room pgfeed__encode_row needs for a line of n bytes (16 of it for word-wide stores). */
#define PGFEED_ENCODE_ROW_MAX(n, nfields) (4 * (size_t)(n) + 5 * ((size_t)(nfields) + 1) + 16)
/*
 * Encodes one line of delimited fields (no line end) as a COPY text row at *dst: fields
 * joined by tabs and ended by a newline, each as encode_field, encode_array (is_array) or
 * \N (equal to the null marker). Returns the number of fields the line has; only when it
 * equals spec->nfields is the row complete and *dst moved past it.
 */
size_t pgfeed__encode_row(char **dst, const char *line, size_t n,
                          const struct pgfeed_row_spec *spec);
/* buf.c: fields in p[0..end) split at every delim (at least 1), for rows with the wrong count. */
size_t pgfeed__count_fields(const char *p, const char *end, char delim);

/* ---- binary COPY (encode_binary.c) ---- */

/* What a field's column takes, in binary form. */
enum pgfeed_bin_kind {
    PGFEED_BIN_TEXT,   /* text, varchar, bpchar: the bytes as they are */
    PGFEED_BIN_INT2,   /* smallint */
    PGFEED_BIN_INT4,   /* integer */
    PGFEED_BIN_INT8,   /* bigint */
    PGFEED_BIN_BOOL,   /* boolean */
    PGFEED_BIN_NUMERIC /* numeric; the server applies (p,s) on receive */
};
struct pgfeed_bin_field {
    int kind; /* enum pgfeed_bin_kind: the column's type, or its element type */
    int is_array;
    /* Arrays: the element type's OID, which array_recv insists on: 25 text, 1043 varchar,
     * 1042 bpchar, 21 int2, 23 int4, 20 int8, 16 bool, 1700 numeric. */
    uint32_t elem_oid;
};
/* A value the server would refuse (the same input in text COPY would fail the same way). */
enum {
    PGFEED_BIN_ESYNTAX = 1, /* 22P02 invalid input syntax for type ... */
    PGFEED_BIN_ERANGE,      /* 22003 value "..." is out of range for type ... */
    PGFEED_BIN_EOVERFLOW,   /* 22003 value overflows numeric format */
    PGFEED_BIN_EKIND        /* not a kind above (a bug) */
};
struct pgfeed_bin_error {
    int code;          /* 0 or PGFEED_BIN_E*, set by every encoder */
    int kind;          /* of the value refused */
    size_t field;      /* 0-based field of the row (encode_bin_row only) */
    const char *value; /* the value, or array element, refused: borrowed from the input */
    size_t value_len;
};
/*
 * Room for one field of n input bytes (int32 length included) and for a tuple of a line of
 * n bytes: 8 bytes per input byte covers an int8 or numeric array of one-digit elements.
 */
#define PGFEED_ENCODE_BIN_FIELD_MAX(n)        (8 * (size_t)(n) + 32)
#define PGFEED_ENCODE_BIN_ROW_MAX(n, nfields) (8 * (size_t)(n) + 32 * ((size_t)(nfields) + 1) + 16)
/*
 * One non-NULL value p[0..n) of column f as int32 length + binary value at dst (room for
 * PGFEED_ENCODE_BIN_FIELD_MAX(n)); returns the end. Arrays split at every comma, elements
 * never NULL or trimmed, "" is an empty array. Integers, booleans and numerics follow
 * PostgreSQL 15's pg_strtoint16/32/64, boolin and numeric_in; a value they refuse returns
 * NULL with err set (code, kind, value).
 */
char *pgfeed__encode_bin_field(char *dst, const char *p, size_t n, const struct pgfeed_bin_field *f,
                               struct pgfeed_bin_error *err);
/*
 * pgfeed__encode_row's binary twin: one line of delimited fields (no line end) as a tuple at
 * *dst (int16 field count, then each field; equal to the null marker: length -1), which has
 * room for PGFEED_ENCODE_BIN_ROW_MAX (bytes past the tuple may be scribbled on). f has
 * spec->nfields entries (spec->is_array is not used). Returns the number of fields the line
 * has; the row is complete and *dst moved past it only when that equals spec->nfields and
 * err->code is 0. Otherwise, with the right field count, err says which field (err->field)
 * holds which bad value.
 */
size_t pgfeed__encode_bin_row(char **dst, const char *line, size_t n,
                              const struct pgfeed_row_spec *spec, const struct pgfeed_bin_field *f,
                              struct pgfeed_bin_error *err);
/*
 * The message PostgreSQL 15 gives for err's value (malloc'd, NULL without memory), e.g.
 * `invalid input syntax for type integer: "x"`, and its SQLSTATE (22P02 or 22003).
 */
char *pgfeed__bin_error_message(const struct pgfeed_bin_error *err);
const char *pgfeed__bin_error_sqlstate(const struct pgfeed_bin_error *err);
/*
 * The length of the first complete tuple at p, or 0 when p[0..n) does not hold one (also for
 * the trailer, int16 -1, and for lengths below -1).
 */
size_t pgfeed__bin_tuple_len(const char *p, size_t n);
/*
 * One tuple (exactly n bytes) back to an input line, appended to out without a line end:
 * arrays as comma lists, numbers and booleans printed as the server prints them (t/f),
 * each value then written by pgfeed__rejects_field (delimiter, null_marker, quote: 0 for
 * tsv, else csv's quote character), as a COPY text row is. Returns 0, UV_ENOMEM, or
 * UV_EINVAL for a tuple that is not nfields fields of f (out is then as before).
 */
int pgfeed__bin_row_as_input(struct pgfeed_buf *out, const char *tuple, size_t n,
                             const struct pgfeed_bin_field *f, size_t nfields, char delimiter,
                             const char *null_marker, char quote);

/* sink_pg.c */

/*
 * What the sink reports upward, given at creation. Every callback runs from the sink's own
 * loop callbacks; a non-zero return of table_described / checkpoint_read is a failure
 * already recorded with pgfeed__fail. What a batch needs from other stages (its restart
 * point, the source's validators, its rows' lines) comes attached to the batch.
 */
struct pgfeed_sink_events {
    void *arg;
    /* The catalog was read: pgfeed__sink_columns is valid; set targets and identity. */
    int (*table_described)(void *arg);
    /* The checkpoint was read (pgfeed__sink_checkpoint): set the parser up, start the
     * source, or ask for pgfeed__sink_forget_checkpoint. */
    int (*checkpoint_read)(void *arg);
    /* Everything is committed (status 0), or the sink gave up. */
    void (*done)(void *arg, int status);
};
int pgfeed__sink_new(struct pgfeed_ctx *ctx, const struct pgfeed_sink_events *ev,
                     struct pgfeed_stage **out);
int pgfeed__sink_connect(struct pgfeed_stage *s); /* connect + catalog, then table_described */
/* The sink's columns, valid once table_described was called. */
const struct pgfeed_column *pgfeed__sink_columns(struct pgfeed_stage *s, size_t *n);
/* Sets the column list of the COPY statement (indexes into sink columns). */
/* bin: NULL for COPY text, else n field kinds (borrowed) for COPY binary. */
int pgfeed__sink_set_targets(struct pgfeed_stage *s, const size_t *idx, size_t n,
                             const struct pgfeed_bin_field *bin);
/* The job's checkpoint as read from the state table (found == 0 if none). */
const struct pgfeed_checkpoint *pgfeed__sink_checkpoint(struct pgfeed_stage *s);
/* Sets what each batch's checkpoint row records besides the counters. */
struct pgfeed_ckpt_identity {
    const char *key;     /* job identity: source id + " -> " + table */
    const char *source;  /* shown to people */
    const char *options; /* format options and targets */
    /* A LIKE pattern for other jobs of the same kind whose unfinished checkpoint this
     * run's --resume may have meant (stdin: another stream into the table), or NULL. */
    const char *others;
};
int pgfeed__sink_set_identity(struct pgfeed_stage *s, const struct pgfeed_ckpt_identity *id);
/* Deletes the job's checkpoint now (--restart); the sink then goes on as usual. */
int pgfeed__sink_forget_checkpoint(struct pgfeed_stage *s);
/* The table as the server names it (regclass::text), valid after the catalog query. */
const char *pgfeed__sink_table(struct pgfeed_stage *s);

#endif /* PGFEED_INTERNAL_H */
