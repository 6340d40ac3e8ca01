# scripts/lib.sh — shell functions shared by scripts/test.sh, scripts/demo.sh and the
# integration harness (tests/integ/harness.py calls pgfeed_pg_start / pgfeed_pg_stop).
#
# Source it; it defines functions and a few variables and does nothing else:
#   pgfeed_install_deps PKG...   apt-get install what is missing (root only; one apt-get update)
#   pgfeed_build DIR [MESON_ARGS...]
#                                meson setup (or reconfigure) + ninja, offline wraps
#   pgfeed_pg_start DIR          throw-away PostgreSQL 15: initdb in DIR/data, socket in DIR
#   pgfeed_pg_stop DIR           stop it (fast, then immediate), leave DIR to the caller
#   pgfeed_pg_conninfo DIR [DB]  the conninfo string for it
#
# The cluster listens on a Unix socket in DIR only (listen_addresses = ''), with fsync off:
# it exists for one run and is deleted with DIR. initdb refuses to run as root, so as root
# the server runs as the `postgres` user, which must be able to enter DIR.

PGFEED_PG_BINDIR=${PGFEED_PG_BINDIR:-/usr/lib/postgresql/15/bin}

# Packages a fresh Debian 12 needs to build pgfeed and run its tests and demo.
# libisal-dev: ISA-L's inflate, used when meson finds it (-Disal=auto; zlib otherwise).
# libzstd-dev, libbz2-dev, liblzma-dev: zstd, bzip2 and xz input (each -D...=auto).
PGFEED_BUILD_PKGS=(build-essential meson ninja-build pkg-config libuv1-dev
    libcurl4-openssl-dev zlib1g-dev libpq-dev libisal-dev libzstd-dev libbz2-dev liblzma-dev)
PGFEED_RUN_PKGS=(postgresql-15 postgresql-client-15 python3 gzip)
# Only the tests: tmux gives the progress bar a real terminal; clang and libclang-rt-14-dev
# (libFuzzer) build the fuzz targets (scripts/fuzz); valgrind runs the embedding example
# (tests/integ/test_embed.py); iproute2 brings up loopback in the DNS tests' namespace;
# strace watches the rejects file being made durable (test_rejects.py); man-db renders the
# man page (tests/unit/test_manpage.py); zstd, bzip2, pbzip2 and xz-utils make the
# compressed fixtures of test_codecs.py.
PGFEED_TEST_PKGS=(tmux clang libclang-rt-14-dev valgrind iproute2 strace man-db zstd bzip2 pbzip2
    xz-utils)

pgfeed_log()
{
    printf '%s: %s\n' "${PGFEED_LOG_PREFIX:-pgfeed-scripts}" "$*" >&2
}

# pgfeed_install_deps PKG... — installs the packages that are not installed yet. Runs
# `apt-get update` once, and only when something is missing. Without root it only says
# what is missing (the build or the tests will then fail with their own message).
pgfeed_install_deps()
{
    local missing=() p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        pgfeed_log "not root, cannot install missing packages: ${missing[*]}"
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        pgfeed_log "no apt-get; install these yourself: ${missing[*]}"
        return 0
    fi
    pgfeed_log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# pgfeed_build DIR [MESON_ARGS...] — configures DIR (from scratch, or with --reconfigure
# when it exists) and builds it: everything, or the ninja targets in $PGFEED_BUILD_TARGETS.
# Output goes to DIR/build.log; its tail is shown on failure.
pgfeed_build()
{
    local dir=$1
    shift
    local log=$dir/build.log
    local configured=0
    [ -f "$dir/build.ninja" ] && configured=1
    [ $configured = 1 ] || rm -rf "$dir"
    mkdir -p "$dir"
    if ! {
        if [ $configured = 1 ]; then
            meson setup --reconfigure --wrap-mode=nodownload "$dir" "$@"
        else
            meson setup --wrap-mode=nodownload "$dir" "$@"
        fi && ninja -C "$dir" ${PGFEED_BUILD_TARGETS:-}
    } >"$log" 2>&1; then
        pgfeed_log "build of $dir failed (full log: $log):"
        tail -n 40 "$log" >&2
        return 1
    fi
    return 0
}

# Runs "$@" as the postgres user when we are root (initdb refuses root), from DIR so that
# the command does not trip over a working directory it cannot enter.
_pgfeed_as_pg()
{
    local dir=$1
    shift
    if [ "$(id -u)" = 0 ]; then
        (cd "$dir" && runuser -u postgres -- "$@")
    else
        (cd "$dir" && "$@")
    fi
}

# pgfeed_pg_start DIR — DIR must exist and be empty-ish (a data/ subdirectory is made).
# Returns 0 once the server accepts connections, non-zero (with the server log) otherwise.
pgfeed_pg_start()
{
    local dir=$1 i
    if [ ! -x "$PGFEED_PG_BINDIR/initdb" ]; then
        pgfeed_log "PostgreSQL binaries not found in $PGFEED_PG_BINDIR (install postgresql-15)"
        return 1
    fi
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$dir" || return 1
    fi
    chmod 0755 "$dir"
    if ! _pgfeed_as_pg "$dir" "$PGFEED_PG_BINDIR/initdb" -D "$dir/data" -U postgres \
        -A trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1; then
        pgfeed_log "initdb failed:"
        cat "$dir/initdb.log" >&2
        return 1
    fi
    cat >>"$dir/data/postgresql.conf" <<EOF
# pgfeed test cluster: private Unix socket, no durability
listen_addresses = ''
unix_socket_directories = '$dir'
port = 5432
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 40
log_min_messages = warning
EOF
    # -w waits for the server itself (pg_ctl polls it); the loop below is the bounded
    # confirmation that the socket in DIR answers, with the server log on failure.
    if ! _pgfeed_as_pg "$dir" "$PGFEED_PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" \
        -w -t 60 start >"$dir/pg_ctl.log" 2>&1; then
        pgfeed_log "PostgreSQL did not start:"
        cat "$dir/pg_ctl.log" "$dir/server.log" >&2 2>/dev/null
        return 1
    fi
    for i in $(seq 1 100); do
        if "$PGFEED_PG_BINDIR/pg_isready" -q -h "$dir" -p 5432 -U postgres -d postgres; then
            return 0
        fi
        sleep 0.1
    done
    pgfeed_log "PostgreSQL started but does not accept connections on $dir after 10 s:"
    cat "$dir/server.log" >&2 2>/dev/null
    return 1
}

# pgfeed_pg_stop DIR — stops the cluster if it runs; never fails.
pgfeed_pg_stop()
{
    local dir=$1
    [ -f "$dir/data/postmaster.pid" ] || return 0
    _pgfeed_as_pg "$dir" "$PGFEED_PG_BINDIR/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop \
        >/dev/null 2>&1 ||
        _pgfeed_as_pg "$dir" "$PGFEED_PG_BINDIR/pg_ctl" -D "$dir/data" -m immediate -w -t 30 \
            stop >/dev/null 2>&1 || true
    return 0
}

# pgfeed_pg_conninfo DIR [DBNAME]
pgfeed_pg_conninfo()
{
    printf 'host=%s port=5432 dbname=%s user=postgres\n' "$1" "${2:-postgres}"
}
