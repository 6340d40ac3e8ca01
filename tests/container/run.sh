#!/usr/bin/env bash
# tests/container/run.sh — the container image (docker/Dockerfile) built with rootful podman
# and run against the test suite's PostgreSQL, as TAP on stdout (scripts/test.sh counts it).
#
#   tests/container/run.sh PGHOST_DIR GEN_NAMES
#
# PGHOST_DIR is the socket directory of a running cluster (scripts/lib.sh pgfeed_pg_start):
# containers reach it through a bind mount of that directory, and tests/httpd.py on
# 127.0.0.1 through --network=host. Every test is reported as skipped (with the reason)
# when podman cannot be installed or cannot run a container here; the build, the imports,
# the signals and the volume fail as tests.
#
# Podman's whole state (storage, run dir, config) lives in a temp dir that is removed at
# the end; /etc/containers and /var/lib/containers are not touched. The one thing kept is
# the base image: debian:bookworm-slim is not pulled (no registry is reachable on these
# machines) but made with debootstrap from apt's mirror and cached as a tarball in
# $PGFEED_CONTAINER_CACHE (default ${XDG_CACHE_HOME:-/var/cache}/pgfeed-test).
# ../shared notes: runc (crun 1.8 rejects a hybrid cgroup layout), ulimits within the
# machine's hard limits, netavark.
#
# Environment:
#   PGFEED_NO_INSTALL=1       never call apt-get (skip when podman is missing)
#   PGFEED_CONTAINER_CACHE    where the base tarball is cached
#   PGFEED_TEST_COMPOSE=1     also run docker/compose.yml with podman-compose (slower: builds
#                             a local PostgreSQL 15 image, since postgres:15 cannot be pulled)
#   PGFEED_CONTAINER_KEEP=1   keep the temp dir and the images (for debugging)
set -uo pipefail

PGHOST_DIR=${1:?usage: run.sh PGHOST_DIR GEN_NAMES}
GEN_NAMES=${2:?usage: run.sh PGHOST_DIR GEN_NAMES}
cd "$(dirname "$0")/../.."
REPO=$(pwd)
PY=/usr/bin/python3
IMAGE=localhost/pgfeed-test:latest
# The image measured 20.6 MB (podman's count, 10^6 bytes): the shared libraries ldd lists
# (since the bzip2 and xz codecs, libbz2 and liblzma too; libzstd came with libcurl), the
# binary, the 0.22 MB CA bundle (docker/README.md). The limit catches growth such as an
# unstripped binary (+0.77 MB) or a stray file.
SIZE_LIMIT=21000000

TESTS=(build labels size import_http_database_url progress_json
    pg_env_file_volume rejects_volume sigterm_stop non_root sigint_kill)
[ "${PGFEED_TEST_COMPOSE:-0}" = 1 ] && TESTS+=(compose)
echo "1..${#TESTS[@]}"
N=0

diag() { printf '# %s\n' "$*"; }
ok() { N=$((N + 1)); echo "ok $N - $1"; }
not_ok() {
    N=$((N + 1))
    echo "not ok $N - $1"
    shift
    local l
    for l in "$@"; do diag "$l"; done
}
check() { # check NAME COND_STATUS MESSAGE...
    local name=$1 st=$2
    shift 2
    if [ "$st" = 0 ]; then ok "$name"; else not_ok "$name" "$@"; fi
}
skip_rest() {
    while [ $N -lt ${#TESTS[@]} ]; do
        N=$((N + 1))
        echo "ok $N - ${TESTS[$((N - 1))]} # SKIP $1"
    done
    exit 0
}

T0=$(date +%s)
say() { diag "[$(($(date +%s) - T0)) s] $*"; }

# ---------------------------------------------------------------- podman

if [ "$(id -u)" != 0 ]; then
    skip_rest "not root: rootful podman and debootstrap need root"
fi
if ! command -v podman >/dev/null || ! command -v runc >/dev/null ||
    ! command -v debootstrap >/dev/null ||
    { [ "${PGFEED_TEST_COMPOSE:-0}" = 1 ] && ! command -v podman-compose >/dev/null; }; then
    if [ "${PGFEED_NO_INSTALL:-0}" = 1 ] || ! command -v apt-get >/dev/null; then
        skip_rest "podman, runc or debootstrap missing and PGFEED_NO_INSTALL=1 or no apt-get"
    fi
    say "installing podman runc netavark aardvark-dns iptables debootstrap"
    pkgs=(podman runc netavark aardvark-dns iptables debootstrap ca-certificates)
    [ "${PGFEED_TEST_COMPOSE:-0}" = 1 ] && pkgs+=(podman-compose)
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${pkgs[@]}"; } \
        >/dev/null 2>&1; then
        skip_rest "podman could not be installed with apt-get"
    fi
fi

W=$(mktemp -d /var/tmp/pgfeed-ctr.XXXXXX)
chmod 0755 "$W"
HTTPD_PID=
cleanup()
{
    [ -n "$HTTPD_PID" ] && kill "$HTTPD_PID" 2>/dev/null && wait "$HTTPD_PID" 2>/dev/null
    if [ "${PGFEED_CONTAINER_KEEP:-0}" != 1 ]; then
        podman rm -a -f >/dev/null 2>&1
        podman volume prune -f >/dev/null 2>&1
        podman rmi -a -f >/dev/null 2>&1
        # overlay mounts under the graphroot must go before the directory can
        grep -o " $W/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
        rm -rf "$W"
    else
        diag "kept $W (CONTAINERS_CONF=$W/containers.conf CONTAINERS_STORAGE_CONF=$W/storage.conf)"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=1048576
cat >"$W/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
EOF
driver=overlay
grep -qw overlay /proc/filesystems || driver=vfs
cat >"$W/storage.conf" <<EOF
[storage]
driver = "$driver"
graphroot = "$W/storage"
runroot = "$W/run"
EOF
export CONTAINERS_CONF="$W/containers.conf" CONTAINERS_STORAGE_CONF="$W/storage.conf"

# ---------------------------------------------------------------- base image

CACHE=${PGFEED_CONTAINER_CACHE:-${XDG_CACHE_HOME:-/var/cache}/pgfeed-test}
BASE_TAR=$CACHE/debian-bookworm-slim.tar
MIRROR=${PGFEED_CONTAINER_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' \
    /etc/apt/sources.list.d/debian.sources 2>/dev/null)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

# make_base_tar — a debootstrap minbase bookworm, slimmed like the official image (no apt
# lists, docs, man pages, locales; dpkg excludes them in later installs too).
make_base_tar()
{
    local R=$W/rootfs
    debootstrap --variant=minbase bookworm "$R" "$MIRROR" >"$W/debootstrap.log" 2>&1 || return 1
    rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/cache/apt/*.bin "$R"/var/lib/apt/lists/* \
        "$R"/etc/apt/sources.list
    cat >"$R/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
        'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
        'path-exclude /usr/share/locale/*' 'path-exclude /usr/share/groff/*' \
        'path-exclude /usr/share/lintian/overrides/*' >"$R/etc/dpkg/dpkg.cfg.d/docker"
    echo 'Acquire::Languages "none";' >"$R/etc/apt/apt.conf.d/docker-no-languages"
    cat >"$R/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    find "$R/usr/share/doc" -type f ! -name copyright -delete
    rm -rf "$R"/usr/share/man/* "$R"/usr/share/info/* "$R"/usr/share/locale/* "$R"/usr/share/groff/*
    mkdir -p "$CACHE" &&
        tar --numeric-owner -C "$R" -cf "$BASE_TAR.tmp.$$" . &&
        mv "$BASE_TAR.tmp.$$" "$BASE_TAR"
    local st=$?
    rm -rf "$R"
    return $st
}

if [ ! -s "$BASE_TAR" ]; then
    say "debootstrap bookworm minbase from $MIRROR (cached in $BASE_TAR)"
    if ! make_base_tar; then
        tail -n 5 "$W/debootstrap.log" 2>/dev/null | sed 's/^/# /'
        skip_rest "no base image: debootstrap from $MIRROR failed"
    fi
fi
say "import the base image"
if ! podman import -q --change 'CMD ["bash"]' "$BASE_TAR" docker.io/library/debian:bookworm-slim \
    >"$W/import.log" 2>&1; then
    sed 's/^/# /' "$W/import.log"
    skip_rest "podman cannot import an image here"
fi
if ! podman run --rm --network=none docker.io/library/debian:bookworm-slim true >"$W/run.log" 2>&1; then
    sed 's/^/# /' "$W/run.log"
    skip_rest "podman cannot run a container here"
fi

# ---------------------------------------------------------------- build

VERSION=$(meson introspect --projectinfo meson.build 2>/dev/null |
    "$PY" -c 'import json, sys; print(json.load(sys.stdin)["version"])')
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
say "build docker/Dockerfile (VERSION=$VERSION)"
tb=$(date +%s)
# --layers=false: no intermediate layer is committed (the storage goes at the end anyway);
# measured 33 s instead of 58 s for the same build
podman build --pull=never --layers=false -f docker/Dockerfile -t "$IMAGE" --build-arg VERSION="$VERSION" \
    --build-arg REVISION="$REVISION" . >"$W/build.log" 2>&1
st=$?
[ $st = 0 ] || tail -n 40 "$W/build.log" | sed 's/^/# /'
check build $st "podman build failed (exit $st)"
[ $st = 0 ] || skip_rest "the image did not build"
say "built in $(($(date +%s) - tb)) s"

label() { podman image inspect --format "{{index .Labels \"org.opencontainers.image.$1\"}}" "$IMAGE"; }
got="$(label version) $(label licenses) $(label revision)"
[ "$got" = "$VERSION MIT $REVISION" ]
check labels $? "labels version, licenses, revision: got \"$got\", want \"$VERSION MIT $REVISION\""

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
gz=$(podman save "$IMAGE" 2>/dev/null | gzip -c | wc -c)
diag "image size $size bytes, podman save | gzip $gz bytes"
[ "$size" -le "$SIZE_LIMIT" ]
check size $? "image size $size bytes > $SIZE_LIMIT"

# ---------------------------------------------------------------- imports

export PGOPTIONS="-c client_min_messages=warning"
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1 -h "$PGHOST_DIR" -p 5432 -U postgres -d postgres)
sql() { "${PSQL[@]}" -c "$1"; }
names_table()
{
    sql "DROP TABLE IF EXISTS $1; CREATE TABLE $1 (nconst varchar(255),
        primary_name varchar(255), birth_year varchar(4), death_year varchar(4) DEFAULT '',
        primary_professions varchar[], known_for_titles varchar[])" >/dev/null
}
# state for the checkpoints of this run's imports, dropped first: a rerun starts clean
sql "DROP TABLE IF EXISTS pgfeed_checkpoints" >/dev/null

DATA=$W/data
mkdir -p "$DATA"
"$GEN_NAMES" --rows 20000 --seed 7 | gzip -c >"$DATA/small.tsv.gz"
"$GEN_NAMES" --rows 300000 --seed 8 | gzip -c >"$DATA/slow.tsv.gz"

exec 3< <(exec "$PY" tests/httpd.py "$DATA")
HTTPD_PID=$!
read -r -u 3 word PORT
[ "${word:-}" = PORT ] || { not_ok "import_http_database_url" "tests/httpd.py did not start"; skip_rest "no HTTP server"; }
URL=http://127.0.0.1:$PORT

# the socket dir at /run/postgresql, libpq's default; host network for the HTTP server
RUN=(podman run --network=host -v "$PGHOST_DIR:/run/postgresql")

names_table imp
"${RUN[@]}" --rm -e DATABASE_URL="postgresql:///postgres?host=/run/postgresql&user=postgres" \
    "$IMAGE" -t imp -b 5000 "$URL/small.tsv.gz" >"$W/imp.out" 2>"$W/imp.err"
st=$?
rows=$(sql "SELECT count(*) FROM imp")
[ $st = 0 ] && [ "$rows" = 20000 ]
check import_http_database_url $? "exit $st, $rows rows of 20000" "$(tail -n 5 "$W/imp.err")"

# no --progress given, stderr not a terminal: the image's PGFEED_PROGRESS=auto-json; the last line says imported, done
last=$(grep '^{' "$W/imp.err" | tail -n 1)
"$PY" - "$last" <<'EOF'
import json, sys
d = json.loads(sys.argv[1])
sys.exit(0 if d["done"] and d["status"] == "imported" and d["rows_committed"] == 20000 else 1)
EOF
check progress_json $? "last JSON line: ${last:-none}"

# PG* environment, no -d and no DATABASE_URL; a file from a read-only volume
names_table pgenv
"${RUN[@]}" --rm -e PGHOST=/run/postgresql -e PGUSER=postgres -e PGDATABASE=postgres \
    -v "$DATA:/in:ro" "$IMAGE" -q -t pgenv /in/small.tsv.gz >"$W/pgenv.out" 2>&1
st=$?
rows=$(sql "SELECT count(*) FROM pgenv")
[ $st = 0 ] && [ "$rows" = 20000 ]
check pg_env_file_volume $? "exit $st, $rows rows of 20000" "$(tail -n 5 "$W/pgenv.out")"

# bad rows go to the rejects file in /data, the working directory: a host directory that
# belongs to the image's user (10001)
names_table rej
{ "$GEN_NAMES" --rows 1000 --seed 9; printf 'bad\trow\n'; printf 'nm9\tx\t1\t2\ta\tb\tc\n'; } \
    >"$DATA/rej.tsv"
mkdir -p "$W/vol"
chown 10001:10001 "$W/vol"
"${RUN[@]}" --rm -e PGHOST=/run/postgresql -e PGUSER=postgres -v "$W/vol:/data" \
    -v "$DATA:/in:ro" "$IMAGE" -q -t rej --max-rejects 5 /in/rej.tsv >"$W/rej.out" 2>&1
st=$?
rows=$(sql "SELECT count(*) FROM rej")
rej=$(wc -l <"$W/vol/rej.rejects.tsv" 2>/dev/null)
owner=$(stat -c %u "$W/vol/rej.rejects.tsv" 2>/dev/null)
[ $st = 0 ] && [ "$rows" = 1000 ] && [ "${rej:-0}" = 2 ] && [ "$owner" = 10001 ]
check rejects_volume $? "exit $st, $rows rows of 1000, ${rej:-no} rejects file lines (want 2), owner ${owner:-none}" \
    "$(tail -n 5 "$W/rej.out")"

# ---------------------------------------------------------------- signals and the user

# interrupt NAME TABLE HOW WANT_STATUS — a detached import throttled by the HTTP server, in
# 1000-row batches; once a JSON line shows a committed batch, HOW stops it (podman stop:
# SIGTERM to PID 1; podman kill -s INT). Checks the status, that the table holds exactly
# the committed batches (the one in flight rolled back) and the last JSON line; sets UID_SEEN
# to the uid of the container's pgfeed process, read from the host.
UID_SEEN=
interrupt()
{
    local name=$1 table=$2 how=$3 want=$4 line committed=0 st rows last
    names_table "$table"
    podman rm -f "$name" >/dev/null 2>&1
    if ! "${RUN[@]}" -d --name "$name" -e PGHOST=/run/postgresql -e PGUSER=postgres "$IMAGE" \
        -t "$table" -b 1000 --progress-interval 0.1 "$URL/slow.tsv.gz?rate=200000" >/dev/null; then
        not_ok "$name" "podman run -d failed"
        return
    fi
    local pid
    pid=$(podman inspect --format '{{.State.Pid}}' "$name")
    UID_SEEN=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$pid/status" 2>/dev/null)
    # follow its stderr until a batch is committed (or the container ends)
    while read -r line; do
        case $line in
        \{*) committed=$("$PY" -c 'import json, sys; print(json.loads(sys.argv[1])["rows_committed"])' "$line") ;;
        esac
        [ "${committed:-0}" -gt 0 ] && break
    done < <(timeout 60 podman logs -f "$name" 2>&1)
    $how "$name" >/dev/null 2>&1
    st=$(podman wait "$name")
    podman logs "$name" >"$W/$name.err" 2>&1
    rows=$(sql "SELECT count(*) FROM $table")
    last=$(grep '^{' "$W/$name.err" | tail -n 1)
    "$PY" - "$last" "$rows" "$want" <<'EOF'
import json, sys
d = json.loads(sys.argv[1])
rows, want = int(sys.argv[2]), int(sys.argv[3])
sys.exit(0 if d["done"] and d["status"] == "interrupted" and d["exit_code"] == want
         and d["rows_committed"] == rows and 0 < rows < 300000 and rows % 1000 == 0 else 1)
EOF
    local good=$?
    [ "$st" = "$want" ] && [ $good = 0 ]
    check "$name" $? "exit $st (want $want), $rows rows in the table, last JSON line: ${last:-none}" \
        "$(grep -v '^{' "$W/$name.err" | tail -n 5)"
    podman rm -f "$name" >/dev/null 2>&1
}
stop_term() { podman stop -t 30 "$1"; }
kill_int() { podman kill -s INT "$1"; }

interrupt sigterm_stop sigterm stop_term 143
uid_stop=$UID_SEEN
user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
[ "$user" = 10001:10001 ] && [ "$uid_stop" = "10001 10001 10001 10001" ]
check non_root $? "image user \"$user\", the process's real, effective, saved, fs uid \"$uid_stop\""
interrupt sigint_kill sigint kill_int 130

# ---------------------------------------------------------------- compose

if [ "${PGFEED_TEST_COMPOSE:-0}" = 1 ]; then
    GEN_NAMES=$GEN_NAMES tests/container/compose.sh "$IMAGE" "$W" >"$W/compose.log" 2>&1
    st=$?
    sed 's/^/# /' "$W/compose.log" | tail -n 30
    check compose $st "tests/container/compose.sh failed (exit $st)"
fi
say "done"
