/*
 * pgfeed.h -- the public API of libpgfeed, the only header an embedder includes.
 *
 * pgfeed streams a (usually gzipped) TSV, CSV or text file from a local path
 * (or file:// URL), stdin or HTTP(S) into a PostgreSQL table with COPY (text or
 * binary), on the caller's libuv loop. Nothing in the library installs signal
 * handlers, prints, exits, or keeps global state (libcurl's global init aside, which
 * is pgfeed_library_init()'s job and the caller's to call once from main). Nor does it
 * wait for the network in a blocking call: host names are looked up off the loop (see
 * pgfeed_job_cancel()), and libpq is handed the addresses. Local files never hold the
 * loop in a system call that waits for a disk: the source path is opened, fstat()ed and
 * realpath()ed, and the rejects file checked (lstat), opened, written and fdatasync()ed,
 * with libuv's uv_fs_* requests on libuv's threadpool (its size is libuv's:
 * UV_THREADPOOL_SIZE, default 4, shared with the rest of the process). A pipe, FIFO,
 * socket, terminal or character device is read nonblocking when the loop says it is
 * readable (a FIFO without a writer yet opens at once and waits on the loop); a regular
 * file is read on the threadpool too (uv_fs_read at an offset, one chunk_size read in
 * flight, the next chunk read while the previous one is decoded: two chunks of memory),
 * and a stop cancels or lets finish the read in flight before close_cb. (A device epoll
 * refuses, such as /dev/null, is read() from an idle handle.)
 *
 * Lifecycle:
 *
 *     struct pgfeed_options opt;
 *     pgfeed_options_init(&opt);
 *     opt.source = "name.basics.tsv.gz";
 *     opt.table = "names";
 *     pgfeed_job_t *job;
 *     if (pgfeed_job_new(loop, &opt, &job) == 0 && pgfeed_job_start(job, done_cb) == 0)
 *         uv_run(loop, UV_RUN_DEFAULT);  // done_cb runs exactly once
 *     pgfeed_job_close(job, close_cb);    // frees the job in close_cb ...
 *     uv_run(loop, UV_RUN_DEFAULT);       // ... which runs from the loop
 *
 * Every function returns 0 or a negative error code: pgfeed's own codes below,
 * or a libuv code (UV_ENOMEM, UV_EINVAL, ...) passed through. A function that
 * takes a callback and returns an error never calls that callback; otherwise
 * the callback runs exactly once (done_cb: unless the job is closed before it
 * finishes), never from inside the call that registered it.
 *
 * Threads. A libuv loop is not thread-safe, and everything pgfeed does happens on the
 * thread that runs the loop the job (or HTTP context) was made on: call every
 * function that takes a loop, a job or an HTTP context (pgfeed_job_*, pgfeed_http_*)
 * from that thread only, before uv_run() or from one of the loop's callbacks. That
 * includes pgfeed_job_cancel() and pgfeed_job_stats(): to stop a job from another
 * thread, uv_async_send() to the loop and cancel from the async callback.
 * pgfeed_options_init(), pgfeed_strerror(), pgfeed_err_name(), pgfeed_version() and
 * pgfeed_build_info() touch no shared state and may be called from any thread;
 * pgfeed_library_init() and pgfeed_library_cleanup() as said with them (once each, from
 * main). Give a job only an HTTP context made on the job's own loop.
 * Every callback (log_cb, progress_cb, drain_cb, done_cb, close_cb and
 * pgfeed_http_close()'s) runs on the loop's thread. pgfeed starts no thread; its file
 * requests and database host name lookups run on libuv's threadpool (uv_fs_*,
 * uv_getaddrinfo), whose threads run no pgfeed code. libcurl may start threads: its threaded
 * resolver (the usual build of libcurl, and Debian's) starts a thread for each host
 * name it looks up for an HTTP(S) download (not for a numeric address, nor for a name
 * in its DNS cache). That thread runs only getaddrinfo() and no pgfeed code; one still
 * waiting when its transfer ends is detached and may outlive the job.
 *
 * Callbacks. No pgfeed function calls log_cb, progress_cb, drain_cb, done_cb or close_cb
 * before it returns: they run from the work the loop's own callbacks do (a socket becoming
 * readable or writable, a timer, a handle's close), so none of them is ever entered
 * from inside a call the embedder makes. When each one runs, how long its arguments
 * live and what it may call in turn are said with its type below.
 */
#ifndef PGFEED_H
#define PGFEED_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(PGFEED_BUILDING) && defined(__GNUC__)
#define PGFEED_API __attribute__((visibility("default")))
#else
#define PGFEED_API
#endif

#define PGFEED_VERSION_STRING "0.1.0"

/*
 * pgfeed's error codes: X(name, value, description). Values are negative and
 * far from libuv's (which are negated errnos, all above -4096).
 */
#define PGFEED_ERRNO_MAP(X)                                                                        \
    X(EAGAIN, -30001, "resource temporarily unavailable (flow control)")                           \
    X(ECANCELED, -30002, "import canceled")                                                        \
    X(EUSAGE, -30003, "invalid option")                                                            \
    X(ESOURCE, -30004, "could not read the source")                                                \
    X(EDECODE, -30005, "corrupt or truncated compressed input")                                    \
    X(EPARSE, -30006, "malformed input")                                                           \
    X(ECONNECT, -30007, "could not connect to the database")                                       \
    X(ESERVER, -30008, "the database server reported an error")                                    \
    X(ETABLE, -30009, "target table not usable")                                                   \
    X(EHEADER, -30010, "header does not match the table")                                          \
    X(ETIMEDOUT, -30011, "time limit reached")                                                     \
    X(EINTERNAL, -30012, "internal error")                                                         \
    X(EHTTP, -30013, "HTTP transfer failed")                                                       \
    X(ECHECKPOINT, -30014, "an unfinished import exists")                                          \
    X(ECHANGED, -30015, "the source changed since the checkpoint")

typedef enum {
#define PGFEED_ERR_ENUM(name, val, desc) PGFEED_##name = (val),
    PGFEED_ERRNO_MAP(PGFEED_ERR_ENUM)
#undef PGFEED_ERR_ENUM
} pgfeed_errno_t;

/* The description of a pgfeed or libuv error code; never NULL, static storage. */
PGFEED_API const char *pgfeed_strerror(int err);
/* The symbolic name ("PGFEED_EPARSE", "ENOMEM"); never NULL, static storage. */
PGFEED_API const char *pgfeed_err_name(int err);
/* "0.1.0"; static storage. */
PGFEED_API const char *pgfeed_version(void);
/*
 * How this build was made, for --version: "inflate: zlib" or "inflate: ISA-L ...", then
 * ", zstd: libzstd" (or "zstd: no"), ", bzip2: libbz2", ", xz: liblzma"; static.
 */
PGFEED_API const char *pgfeed_build_info(void);

/*
 * libcurl's global initialisation (curl_global_init). Call once from main,
 * before any thread starts and before the first job; pgfeed_library_cleanup()
 * once at the end. Returns 0 or PGFEED_EINTERNAL.
 */
PGFEED_API int pgfeed_library_init(void);
PGFEED_API void pgfeed_library_cleanup(void);

typedef enum {
    PGFEED_FORMAT_AUTO = 0, /* csv if the source's path ends in .csv or .csv.gz, else tsv */
    PGFEED_FORMAT_TSV,      /* tab-separated, no quoting, backslashes literal, \N is NULL */
    PGFEED_FORMAT_TEXT,     /* PostgreSQL COPY text format, passed through */
    PGFEED_FORMAT_CSV       /* RFC 4180: quotes, doubled quotes, quoted delimiters and newlines */
} pgfeed_format_t;

/*
 * A header (any mode but NONE) with a zero byte or bytes that are not UTF-8 fails the job
 * with PGFEED_EPARSE, stage "parser", "the input does not look like text": the detail gives
 * its first 8 bytes in hex, a known file signature (zip, bzip2, xz, zstd, PDF, UTF-16, ...)
 * and whether it was inflated from gzip or zlib.
 */
typedef enum {
    PGFEED_HEADER_AUTO = 0, /* first line is a header: by name, else by position if counts agree */
    PGFEED_HEADER_MATCH,    /* first line is a header whose names must all match */
    PGFEED_HEADER_SKIP,     /* drop the first line, map by position */
    PGFEED_HEADER_NONE      /* no header */
} pgfeed_header_t;

/* How rows travel to the server (pgfeed_options.copy_format). */
typedef enum {
    PGFEED_COPY_TEXT = 0, /* COPY text format */
    PGFEED_COPY_BINARY,   /* COPY binary where the target columns' types allow, else text
                           * with a notice */
    PGFEED_COPY_AUTO      /* the same, saying why only at PGFEED_LOG_INFO */
} pgfeed_copy_format_t;

/* What an import does with the rows already in its target table. */
typedef enum {
    PGFEED_MODE_APPEND = 0, /* add the file's rows to them (default) */
    PGFEED_MODE_REPLACE,    /* load a shadow table, then swap it in (see pgfeed_options.mode) */
    PGFEED_MODE_UPSERT      /* merge each batch by key (see pgfeed_options.key) */
} pgfeed_mode_t;

/* PGFEED_MODE_UPSERT: what a row whose key is already in the table does. */
typedef enum {
    PGFEED_ON_CONFLICT_UPDATE = 0, /* replaces the row's other columns (default) */
    PGFEED_ON_CONFLICT_NOTHING     /* leaves the row as it is */
} pgfeed_on_conflict_t;

typedef enum {
    PGFEED_LOG_ERROR = 0,
    PGFEED_LOG_WARNING,
    PGFEED_LOG_NOTICE, /* also: NOTICEs from the server */
    PGFEED_LOG_INFO,
    PGFEED_LOG_DEBUG
} pgfeed_log_level_t;

/*
 * A log line: level is a pgfeed_log_level_t no higher than pgfeed_options.log_level;
 * msg is one line made safe to print (tabs and line ends become spaces, other control
 * characters and bytes that are not UTF-8 become \xNN), valid only until log_cb
 * returns: copy it to keep it. log_cb runs where the library logs, in the middle of a
 * loop callback's work, often with libcurl or libpq part-way through a call. So it may
 * only look: pgfeed_job_stats(), pgfeed_job_error(), pgfeed_job_rejects_path(),
 * pgfeed_job_get_data(). It must not call pgfeed_job_start(), pgfeed_job_cancel(),
 * pgfeed_job_close() or pgfeed_http_close(), nor run the loop; to act on a message
 * (cancel on a warning, say), start a 0 ms uv_timer_t and do it from its callback.
 */
typedef void (*pgfeed_log_cb)(void *arg, int level, const char *msg);

/* Counters; all monotonic during a run. */
struct pgfeed_stats {
    uint64_t bytes_read;     /* source bytes (compressed) */
    int64_t bytes_total;     /* source size when known, else -1 */
    uint64_t bytes_inflated; /* bytes after decompression */
    uint64_t rows_read;      /* data rows read (header excluded): imported + rejected at the end */
    uint64_t rows_sent;      /* rows handed to the server */
    uint64_t rows_committed; /* rows in committed batches */
    uint64_t rows_rejected;  /* rows skipped and written to the rejects file */
    uint64_t batches_committed;
    uint64_t lines_read; /* input lines, header included */
    /*
     * Retries made so far, of both kinds together: the download's (an HTTP(S) request
     * made again after a dropped or stalled connection, a short body or a transient
     * status; each is logged as a PGFEED_LOG_WARNING) and the job's (a reconnect to the
     * database after a lost connection, which continues from the checkpoint and counts
     * once even when it reads an HTTP source again). A failure given up on is not counted.
     */
    uint64_t retries;
    double elapsed_s; /* since pgfeed_job_start() */
    /* Rates over the last ~10 seconds (0 until two samples exist), and the
     * estimated seconds to go from source bytes (-1 when the total is unknown). */
    double rate_rows_s;
    double rate_bytes_s;    /* source (compressed) bytes per second */
    double rate_inflated_s; /* decompressed bytes per second */
    double eta_s;
    /* Where the time went: waiting on PostgreSQL (connecting, COPY data it
     * has not taken yet, commits) versus waiting for input (network or disk).
     * The rest is pgfeed's own work. */
    double wait_server_s;
    double wait_source_s;
    int done; /* 1 once the job has finished */
    /*
     * PGFEED_MODE_UPSERT, rows of committed batches (of this run, as rows_committed:
     * a resumed import counts what it commits itself). inserted + updated + unchanged
     * = rows_committed. A row whose key comes again later in the same batch counts as
     * updated (with ON_CONFLICT_NOTHING: unchanged), as if rows were merged one by one.
     */
    uint64_t rows_inserted; /* a new key: a row added */
    uint64_t rows_updated;  /* key already there: its row replaced (ON_CONFLICT_UPDATE) */
    /* key already there: its row left as it is, because it equals the file's (compared as
     * text) or with ON_CONFLICT_NOTHING (or when every column is in the key) */
    uint64_t rows_unchanged;
    uint64_t rows_deleted; /* delete_missing: target rows whose key was not in the file */
};

struct pgfeed_job;
typedef struct pgfeed_job pgfeed_job_t;

/*
 * Progress, from the job's progress timer while it runs (backoffs before a retry
 * included), about every pgfeed_options.progress_interval_ms (the timer ticks every
 * 250 ms, or every interval if that is shorter; never with an interval of 0); and once
 * more when the job has finished, with stats->done = 1, right before done_cb and from
 * the same loop callback (not for a job closed before it finished). stats points to a
 * copy that lives until progress_cb returns. It may call pgfeed_job_stats() and
 * pgfeed_job_error(), and mid-run pgfeed_job_cancel() or pgfeed_job_close() (the job
 * then stops as usual; after a close, done_cb does not run). In the last call
 * pgfeed_job_close() may be called too, but the job has finished, so done_cb still
 * runs as soon as progress_cb returns, and close_cb after it.
 */
typedef void (*pgfeed_progress_cb)(void *arg, const struct pgfeed_stats *stats);
/*
 * The job ended. status: 0 imported, or the negative code of the failure
 * (PGFEED_ECANCELED if canceled). Runs once for a started job that was not closed before
 * it finished, on the loop's thread, from whichever of the job's loop callbacks ends
 * its last piece of work (a timer, a socket poll or a handle's close callback), never
 * from inside a pgfeed_* call; every handle of the job is closed or inactive by then.
 * From here on pgfeed_job_stats() (with done = 1), pgfeed_job_error() and
 * pgfeed_job_rejects_path() give the final outcome, unchanged until close_cb. It may
 * call those, and pgfeed_job_close() (the usual place to release the job);
 * pgfeed_job_cancel() has no effect and pgfeed_job_start() returns UV_EINVAL
 * (PGFEED_ECANCELED after a cancel). Other jobs may be made, started or closed from it.
 */
typedef void (*pgfeed_done_cb)(pgfeed_job_t *job, int status);
/*
 * The job is closed: runs once after pgfeed_job_close(), on the loop's thread, from the
 * libuv close callback of the job's last handle, never from inside pgfeed_job_close().
 * The job is freed as soon as it returns; until then pgfeed_job_stats(),
 * pgfeed_job_error(), pgfeed_job_rejects_path() and pgfeed_job_get_data() still work
 * (the place to free what pgfeed_job_set_data() was given). Nothing else may be called
 * on the job.
 */
typedef void (*pgfeed_close_cb)(pgfeed_job_t *job);

/*
 * A push job (pgfeed_options.push) takes writes again: pgfeed_job_write() answered
 * PGFEED_EAGAIN, and what the job holds has since fallen below its bound. Runs once per
 * refusal (several refusals before it: once), on the loop's thread, from a 0 ms timer of
 * the job's, never from inside a pgfeed_* call nor from the pipeline's own work; not after
 * pgfeed_job_write_end(), and not once the job has stopped (done_cb tells then). It may
 * call pgfeed_job_write() (the usual thing: write what was refused, then more until the
 * next EAGAIN), pgfeed_job_write_end(), pgfeed_job_stats(), pgfeed_job_error(),
 * pgfeed_job_cancel() and pgfeed_job_close().
 */
typedef void (*pgfeed_drain_cb)(pgfeed_job_t *job, void *arg);

/*
 * Options. Fill with pgfeed_options_init(), then set what you need. Strings are
 * borrowed only during pgfeed_job_new(), which copies them.
 */
struct pgfeed_options {
    const char *source; /* path, file:// URL, "-" for source_fd; push: a name (required) */
    int source_fd;      /* the descriptor "-" reads (default 0); never closed by pgfeed */
    /*
     * 1: a push job. The embedder writes the input with pgfeed_job_write() and ends it
     * with pgfeed_job_write_end(); the same decoding (gzip, zlib, zstd, bzip2, xz or plain, from
     * the first bytes), parsing, batches, checkpoints and rejects as for a file follow. source is
     * then a name for the stream, not opened: it is what messages show, what the format
     * default looks at (a name ending in .csv or .csv.gz is csv), and the checkpoint's
     * job key ("push:" + source + " -> " + table, so never the same job as a path, a URL
     * or stdin): give each stream a name of its own, and the same name again to resume
     * it. drain_cb (may be NULL: then poll with writes) and drain_arg as said with
     * pgfeed_drain_cb. Default 0.
     */
    int push;
    pgfeed_drain_cb drain_cb;
    void *drain_arg;
    const char *conninfo; /* libpq conninfo or URI; NULL: libpq's PG* environment */
    const char *table;    /* target table, optionally schema-qualified (required) */
    const char *columns;  /* "a,b,c": target columns in input order; NULL: from header/table */
    pgfeed_format_t format;
    pgfeed_header_t header;
    const char *null_marker; /* NULL: "\N" (tsv, text) or "" (csv: an unquoted empty field) */
    char delimiter;          /* 0: tab (tsv, text) or ',' (csv) */
    char quote;              /* csv quote character; 0: '"' */
    uint64_t batch_rows;     /* rows per transaction; 0 = one transaction (default 100000) */
    int truncate;            /* TRUNCATE the table in the first batch's transaction */
    size_t max_line;         /* longest accepted input line in bytes (default 64 MiB) */
    size_t chunk_size;       /* read and inflate chunk (default 128 KiB; 4 KiB to 64 MiB) */
    /*
     * The largest window a compressed stream may make the decoder keep, in bytes
     * (default and 0: 128 MiB). A zstd frame declaring a larger window (zstd --long=31
     * writes up to 2 GiB) fails with PGFEED_EDECODE before anything is allocated; an xz
     * stream may use this plus 16 MiB (its dictionary: 8 MiB for xz -6, 64 MiB for -9).
     * gzip, zlib (32 KiB) and bzip2 (900 kB blocks) always fit.
     */
    uint64_t max_window;
    pgfeed_log_cb log_cb; /* NULL: silent */
    void *log_arg;
    int log_level;                  /* highest level delivered (default PGFEED_LOG_INFO) */
    pgfeed_progress_cb progress_cb; /* NULL: none */
    void *progress_arg;
    uint64_t progress_interval_ms; /* default 1000 */

    /*
     * Checkpoints. Every batch's transaction also upserts this job's row in
     * the state table (created on demand), so committed rows and checkpoint
     * never disagree. A job is its source (canonical path or URL without
     * credentials) and its target table.
     */
    int resume;  /* continue an unfinished import of the same source into the same table */
    int restart; /* forget an unfinished import's checkpoint and start over */
    /* default "pgfeed_checkpoints" (in the search_path's first schema). Used as it is when it
     * exists (the role needs SELECT, INSERT, UPDATE, DELETE on it); created only when missing. */
    const char *state_table;
    /* 1: no state table at all, no checkpoint per batch; resume is then refused, and a lost
     * connection is not retried (what is committed is said in the error). Default 0. */
    int no_checkpoint;

    /*
     * Rejected rows. Up to max_rejects rows that cannot be imported (wrong
     * field count, invalid UTF-8, a value the server refuses...) are skipped
     * and written to rejects_path, one line each: LINE<TAB>REASON<TAB>ROW
     * (the row as read, newlines escaped as \n); one more fails the import.
     * Default 0: the first bad row fails it. rejects_path NULL: TABLE.rejects.tsv
     * in the working directory (TABLE as the server reads it, schema.table, with
     * characters unsafe in a file name replaced by '_'), created only when a row
     * is rejected. A new import (resume 0, restart included) creates the file new:
     * with max_rejects > 0, the job fails at its start (done_cb with UV_EEXIST, its
     * error saying why, before anything is imported) if it exists (/dev/null
     * excepted), and with UV_ELOOP for a symbolic link; resume 1 appends. The rows
     * rejected from a batch are written and fdatasync()ed before that batch commits;
     * a write that fails fails the import before that COMMIT. On Citus, a row a worker
     * refuses (a constraint violation the coordinator re-raises as XX000) counts too;
     * its REASON names the table's constraint and the shard (README: Scaling out with
     * Citus).
     */
    uint64_t max_rejects;
    const char *rejects_path;
    /* A batch also ends when its COPY data reaches this many bytes (default 16 MiB):
     * the bound on what is kept to find the bad rows of a refused batch. */
    size_t batch_bytes;

    /* Time and retries. */
    double timeout_s; /* give up after this long (PGFEED_ETIMEDOUT); 0: no limit */
    /*
     * Retries of transient failures (default 5): of a download, that many in a row (an
     * attempt that brings new bytes before it fails starts the count again; the error of
     * a download given up on says how many it made in all); of the database connection,
     * that many in the whole run.
     */
    int retries;
    /*
     * Waiting for the database server to come up (a batch job started together with its
     * database: compose, Kubernetes). For this many seconds after the start, while no
     * connection has been made yet, a connection that is refused, finds no server socket,
     * times out, meets a server that is starting up, or whose host name does not resolve
     * yet is tried again after 0.5 s (with jitter) growing to 2 s (logged at PGFEED_LOG_NOTICE; not
     * counted in stats.retries nor against retries). Default 0: the first such failure is final.
     */
    double wait_for_db_s;

    /* HTTP(S) sources. */
    struct pgfeed_http *http; /* shared transfer context (pgfeed_http_new) or NULL: own */
    const char *ca_file;      /* CA bundle (CURLOPT_CAINFO); NULL: libcurl's default */
    const char *ca_path;      /* CA directory (CURLOPT_CAPATH); NULL: default */
    int insecure;             /* 1: skip TLS verification (like curl -k); default 0 */
    double connect_timeout_s; /* default 30 */
    double low_speed_time_s;  /* abort (and retry) if under 1 byte/s this long; default 60 */

    /*
     * Parallel COPY connections, 1 to 16 (default 1). Batches go to whichever
     * connection is free and COPY concurrently; each commits as soon as its
     * COPY ends, and the checkpoint records the committed prefix of the input
     * plus the batches committed past it (at most this many), which a resume
     * skips: --resume stays exact.
     */
    int connections;
    /*
     * The input's encoding, by one of PostgreSQL's names or aliases, in any case
     * ("LATIN1", "ISO-8859-1", "WIN1252", "windows-1252", "UTF8"...; copied). NULL: UTF8.
     * Rows are checked for it (a byte it leaves undefined, as PostgreSQL's conversion
     * does, or a zero byte: a rejected row, kept as it was in the rejects file) and each
     * COPY runs with client_encoding set to it, so the server converts; a header is read
     * in it. UTF8 and the single-byte encodings are read; another name (SJIS, EUC_JP...)
     * or an unknown one: pgfeed_job_new fails with PGFEED_EUSAGE. A UTF-8 byte order mark
     * is skipped (UTF8 only); input in UTF-16 fails with PGFEED_EPARSE. Part of what a
     * checkpoint records: resume refuses another encoding (PGFEED_ECHECKPOINT).
     */
    const char *encoding;
    /*
     * PGFEED_COPY_BINARY sends tsv and csv rows in COPY's binary format, so
     * the server parses nothing: for target columns of type text, varchar,
     * char, smallint, integer, bigint, boolean, numeric and arrays of these.
     * Values are checked as the server would (a bad integer is a rejected
     * row with the server's message). Another type, a domain, or format
     * text: text COPY, with a notice (PGFEED_COPY_AUTO: at info level).
     * Default PGFEED_COPY_AUTO (binary measured ~10 % faster than text).
     */
    pgfeed_copy_format_t copy_format;
    /*
     * PGFEED_MODE_REPLACE: the rows go into a shadow table, <table>_pgfeed_new in the
     * target's schema, made like the target (columns, defaults, check and not-null
     * constraints, generated and identity columns, storage, comments; no indexes). When
     * every row is in, the target's indexes (and primary key and unique constraints)
     * are built on it, and one transaction locks the target, renames it to
     * <table>_pgfeed_old, renames the shadow to <table>, drops the old table (unless
     * keep_old), grants the old table's privileges again, gives the new table the old
     * one's owner and serial sequences, renames the indexes to the old names, and marks
     * the checkpoint finished. Readers see the old rows or the new, never a mix. Refused
     * (PGFEED_ETABLE) for a target with dependent views, foreign keys pointing at it,
     * triggers, rules, exclusion constraints, or partitions, and for a leftover shadow
     * without resume (continue into it) or restart (drop it). Not with truncate.
     */
    pgfeed_mode_t mode;
    int keep_old; /* PGFEED_MODE_REPLACE: keep the old rows as <table>_pgfeed_old */
    /*
     * PGFEED_MODE_UPSERT: each batch is COPYed into a temporary staging table on its
     * connection (made LIKE the target with its NOT NULL and CHECK constraints, so it
     * refuses the rows the target's own constraints would; a row refused there goes to
     * the rejects file as in append mode), then merged into the target in the batch's
     * transaction, with its checkpoint: INSERT ... ON CONFLICT (key) DO UPDATE of the
     * rows that differ from the file's (or DO NOTHING), keeping the last row of each key
     * in the batch (the first with ON_CONFLICT_NOTHING). With several connections the COPYs run in
     * parallel and the merges in file order (a batch merges once every earlier one committed), so
     * the last row of a key in the file wins (the first with ON_CONFLICT_NOTHING). A row refused by
     * the merge itself (a foreign key, another unique index, a trigger) fails the batch and the
     * import with the server's error (PGFEED_ESERVER).
     *
     * key: the key's columns, comma-separated ("a,b", spelled as in the catalog, spaces
     * around the commas ignored); NULL: the primary key, else the only unique index. No key
     * found, several unique indexes and no primary key, or a key no unique index or
     * constraint covers exactly: PGFEED_ETABLE before anything is loaded. The key's
     * columns must be among those the file fills.
     */
    const char *key;
    pgfeed_on_conflict_t on_conflict;
    /*
     * PGFEED_MODE_UPSERT: the transaction that marks the checkpoint finished also
     * deletes the target's rows whose key the file does not have (a row with a NULL in
     * a key column is left alone). The keys seen are kept in <table>_pgfeed_keys (a
     * table in the target's schema, made at the start, kept across resume, dropped at
     * the end). A leftover one without resume or restart: PGFEED_ETABLE. Only merged rows
     * count as seen, so with max_rejects > 0 (a row set aside would leave its key unseen
     * and its row deleted) the job refuses it: PGFEED_EUSAGE.
     */
    int delete_missing;

    /*
     * Load hooks: SQL text (one or more statements, no transaction control; NULL: none),
     * each run on the first connection in a transaction of its own.
     * before_sql runs right after connecting, before the table's columns are read, so it
     * may CREATE the table; with resume = 1 it runs only if the table does not exist yet
     * (a resumed import continues rows loaded after its hook ran once: running it again
     * could undo them), and never twice in one job (a retry after a lost connection
     * does not repeat a hook that committed). after_sql runs once every row is committed,
     * in the transaction that marks the checkpoint finished (with PGFEED_MODE_REPLACE:
     * the swap's, after the swap; with PGFEED_MODE_UPSERT and delete_missing: the final
     * transaction's, after the delete), so a finished import has run its after hook exactly
     * once; when it fails, the rows stay committed, the import is not finished, and a
     * resume runs it again (with no row left to load). An import found finished is not
     * loaded again and runs neither hook. A hook that fails fails the job with
     * PGFEED_ESERVER, the server's message after "before hook failed: " or
     * "after hook failed: ", and its SQLSTATE. Statements that cannot run in a
     * transaction block (VACUUM, CREATE INDEX CONCURRENTLY) fail there.
     */
    const char *before_sql;
    const char *after_sql;
};

/* Fills *opt with the defaults named above. */
PGFEED_API void pgfeed_options_init(struct pgfeed_options *opt);

/*
 * Creates a job on loop. Makes no filesystem or network call of its own: what is at the source
 * and rejects paths is found out by the job once started (a missing source, an existing
 * rejects file: done_cb). On success returns 0 and *out owns a job that must be
 * released with pgfeed_job_close(). On failure returns PGFEED_EUSAGE (with
 * *out still set, so pgfeed_job_error() can say what was wrong; close it) or
 * UV_ENOMEM (*out = NULL). opt and its strings may be freed after the call.
 */
PGFEED_API int pgfeed_job_new(uv_loop_t *loop, const struct pgfeed_options *opt,
                              pgfeed_job_t **out);

/*
 * Starts the import. Returns 0, after which done_cb runs exactly once, from a
 * loop callback (unless the job is closed before it finishes); UV_EINVAL if
 * already started (or refused by pgfeed_job_new()); PGFEED_ECANCELED if the job was
 * canceled before it started. Its first steps are filesystem requests on libuv's
 * threadpool (the rejects file's lstat when max_rejects > 0, then the source's open,
 * fstat and realpath); their failures (UV_EEXIST, UV_ELOOP, UV_EINVAL for the rejects
 * file; PGFEED_ESOURCE for the source) come through done_cb with the job's error set.
 * When done_cb runs, the job has no active handle and no pending request left on the
 * loop (uv_run can return; a database host name lookup it let go of aside, see
 * pgfeed_job_cancel()) and its stats and error stay readable until
 * pgfeed_job_close(). A job closed or canceled while such a request is pending stops
 * at once; its close_cb runs once the request has returned (uv_cancel()ed if no
 * thread has taken it yet).
 */
PGFEED_API int pgfeed_job_start(pgfeed_job_t *job, pgfeed_done_cb done_cb);

/*
 * Asks the job to stop: the batch in flight is rolled back (COPY ended with an
 * error, so the server keeps none of it), committed batches stay. done_cb then
 * runs with PGFEED_ECANCELED (with the failure's code if the job was already stopping
 * after one). Safe from any loop callback of the embedder's and from progress_cb and
 * done_cb (not from log_cb), any number of times; no effect once the job has finished.
 *
 * Lookups: the database's host names (opt.conninfo) are looked up with uv_getaddrinfo()
 * on libuv's threadpool before libpq connects, so libpq never blocks the loop resolving
 * them. A cancel during one returns at once: a request not yet started is cancelled, one
 * under way is let go of (it touches nothing of the job's afterwards) but holds its
 * threadpool thread and keeps uv_run() from returning until getaddrinfo() gives up on its
 * own (resolv.conf's timeout x attempts per server; ~10 s with glibc's defaults), and
 * libuv's exit handler joins it too (the command line leaves with _exit() then).
 * libcurl's threaded resolver (the usual build) runs each HTTP host name lookup
 * (getaddrinfo) in a thread of its own. Cancel and
 * pgfeed_job_close() return at once during a lookup only with a libcurl that has a
 * threaded or c-ares resolver and CURLOPT_QUICK_EXIT (7.87 or later): the lookup's
 * thread is then left to finish alone. An older libcurl waits for the lookup to end
 * (up to the resolver's own timeouts, ~10 s with glibc's defaults) inside the call.
 */
PGFEED_API void pgfeed_job_cancel(pgfeed_job_t *job);

/*
 * Releases the job. If it is still running it is canceled first. close_cb (may
 * be NULL) runs from a loop callback once every handle of the job is closed;
 * the job's memory is freed as soon as close_cb returns, so job is invalid
 * after that. done_cb is not called for a job closed before it finished. May be
 * called from done_cb and progress_cb (see there), not from log_cb or close_cb; a
 * second call has no effect other than replacing close_cb.
 */
PGFEED_API void pgfeed_job_close(pgfeed_job_t *job, pgfeed_close_cb close_cb);

/*
 * Push jobs (pgfeed_options.push): the next len bytes of the input, copied, so buf may be
 * reused as soon as the call returns. All or nothing. Returns:
 *   0                 all len bytes were taken (len 0: nothing to take).
 *   PGFEED_EAGAIN     none were taken: the job holds its bound of input already. Write
 *                     the same bytes (or others: nothing was taken) again after drain_cb.
 *   UV_EINVAL         not a push job, input already ended (pgfeed_job_write_end), buf NULL
 *                     with len > 0, or a job pgfeed_job_new() refused.
 *   PGFEED_ECANCELED  the job was canceled (or closed); the failure's code (PGFEED_EPARSE,
 *                     PGFEED_ESERVER, ...) once it stopped after a failure; UV_EPIPE once
 *                     it finished without needing the input (a resume of a finished
 *                     import). done_cb says the same.
 *   UV_ENOMEM         the copy could not be made (nothing taken).
 * Backpressure: a write is taken while the job holds fewer than 4 x chunk_size bytes of
 * input not yet decoded (512 KiB by default) and refused from there on, so a job holds
 * less than that bound plus one write: a write larger than the bound is taken whole when
 * less than the bound waits (split large buffers to keep memory to the bound). A pipeline
 * that PostgreSQL holds back stops taking the job's input, and so the host's writes.
 * Writes before pgfeed_job_start() are taken too, up to the bound (EAGAIN then, and
 * drain_cb once the started job has made room). Writes go on being taken while the job
 * reconnects after a lost connection (its retry reads again, from memory, what it had
 * taken since the last committed restart point: up to (connections + 1) x batch_bytes;
 * past that a lost connection fails the job, saying what is committed).
 * Resume: a push stream cannot be read back, so a job with resume = 1 is written the
 * stream from its start again; it drops the bytes before its checkpoint's restart point
 * as they come (an input that ends before it is PGFEED_ECHANGED) and imports the rest.
 * The bytes are handed to the pipeline from a loop callback, never inside this call, so
 * no callback runs from it. Call it from the embedder's own loop callbacks, before
 * pgfeed_job_start(), or from drain_cb, progress_cb or done_cb (which returns the job's
 * status there); not from log_cb or close_cb.
 */
PGFEED_API int pgfeed_job_write(pgfeed_job_t *job, const void *buf, size_t len);

/*
 * Push jobs: the input ends after what was written. The job then imports what it holds,
 * commits the last batch and runs done_cb. A job whose input never ends waits for more
 * (with no limit other than timeout_s). Returns 0, or what pgfeed_job_write() would
 * return for a refused write (UV_EINVAL for a second call). Called from where
 * pgfeed_job_write() may be; drain_cb does not run after it.
 */
PGFEED_API int pgfeed_job_write_end(pgfeed_job_t *job);

/* Copies the current counters into *out; any time until close_cb returns. */
PGFEED_API void pgfeed_job_stats(const pgfeed_job_t *job, struct pgfeed_stats *out);

/* A failure, in PostgreSQL's style: message, detail, hint. Strings are NULL when absent. */
struct pgfeed_error {
    int code;             /* 0 when there is no error */
    const char *stage;    /* "source", "decoder", "parser", "sink", "job" */
    const char *message;  /* one line, lower case, no final period */
    const char *detail;   /* sentences */
    const char *hint;     /* sentences */
    const char *sqlstate; /* server errors only */
    const char *url;      /* the source, without credentials */
    uint64_t line;        /* input line (1-based), 0 when not tied to a line */
    int column;           /* 1-based field number, 0 when unknown */
    const char *column_name;
    uint64_t decoded_offset; /* uncompressed byte offset of the failing record, or of the failure */
    uint64_t raw_offset;     /* compressed byte offset */
};

/*
 * The job's error (code 0 if none). The pointer stays valid until close_cb returns, but
 * what it holds is final only from done_cb on: a failure the job retries is cleared
 * (its strings freed), and the message, detail or hint of the last one may be
 * rewritten when the job stops, so strings read before done_cb may dangle later (copy
 * them). From done_cb until close_cb nothing in it changes. After a refused
 * pgfeed_job_new(), or a pgfeed_job_cancel() before the start, it says why.
 */
PGFEED_API const struct pgfeed_error *pgfeed_job_error(const pgfeed_job_t *job);

/* Where rejected rows were written, or NULL if none was. Valid until close_cb returns. */
PGFEED_API const char *pgfeed_job_rejects_path(const pgfeed_job_t *job);

/* A pointer for the embedder. */
PGFEED_API void pgfeed_job_set_data(pgfeed_job_t *job, void *data);
PGFEED_API void *pgfeed_job_get_data(const pgfeed_job_t *job);

/* ---------------------------------------------------------------- HTTP */

/*
 * A shared HTTP transfer context: one libcurl multi handle driven by one
 * uv_timer_t and one uv_poll_t per socket on loop. Jobs whose options name it
 * (pgfeed_options.http) run their transfers in it, so connections and the
 * DNS cache are shared; a job with http == NULL makes a private one and
 * closes it itself.
 */
typedef struct pgfeed_http pgfeed_http_t;
typedef void (*pgfeed_http_close_cb)(pgfeed_http_t *h);

/*
 * Creates a context on loop. Call pgfeed_library_init() first. Returns 0 and
 * *out, which must be released with pgfeed_http_close(); UV_EINVAL (loop is
 * NULL), UV_ENOMEM, or PGFEED_EINTERNAL (libcurl refused) with *out = NULL.
 * Its handles stay inactive until a transfer begins, so an idle context does
 * not keep uv_run() going (uv_loop_close() still needs it closed first).
 */
PGFEED_API int pgfeed_http_new(uv_loop_t *loop, pgfeed_http_t **out);

/*
 * Releases h. When jobs still use it, the close waits for the last of them to
 * stop. close_cb (may be NULL) runs once, from a loop callback, when every
 * handle of h is closed, never from inside this call; h is freed right after it
 * returns. Call it once, from the loop's thread: from the embedder's own loop callbacks,
 * or from a job's done_cb, progress_cb or close_cb (the usual place is the done_cb of
 * the last job that uses h: the teardown waits until libcurl's calls on the stack have
 * returned); not from log_cb nor from its own close_cb. h must not be given to a new
 * job afterwards.
 */
PGFEED_API void pgfeed_http_close(pgfeed_http_t *h, pgfeed_http_close_cb close_cb);

#ifdef __cplusplus
}
#endif
#endif /* PGFEED_H */
