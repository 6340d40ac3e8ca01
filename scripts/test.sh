#!/usr/bin/env bash
# scripts/test.sh — the one test command: installs what is missing (Debian 12, as root),
# builds two trees, runs every unit and integration test in both, and prints as its very
# last line `N passed, N failed` (all unit TAP tests + all integration tests). Exits 1 if
# anything failed or could not run.
#
#   build-ci    -Dwerror=true
#   build-asan  -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false
#
# build-ci is also installed into a temp dir, and a small embedder is built against it with
# pkg-config's flags alone, linked shared and static (tests/pkgconfig/run.sh, TAP).
#
# Then each fuzz target (tests/fuzz/) runs for a short fixed time with a fixed seed, through
# scripts/fuzz in its own clang tree (build-fuzz): one result per target.
#
# One throw-away PostgreSQL (scripts/lib.sh) serves both integration runs and is stopped on
# exit, whatever happens. Environment knobs:
#   PGFEED_ASAN_QUICK=1   integration tests in the ASan tree without the slow ones
#   PGFEED_SKIP_ASAN=1    only the build-ci tree (for a quick local run)
#   PGFEED_NO_INSTALL=1   never call apt-get
#   PGFEED_SKIP_FUZZ=1    no fuzzing
#   PGFEED_FUZZ_TIME=S    seconds per fuzz target (default 20)
#   PGFEED_SKIP_CONTAINER=1  no container image test
#   PGFEED_TEST_COMPOSE=1    the container test also runs docker/compose.yml (podman-compose)
#   PGFEED_TEST_CITUS_LONG=1 the Citus tests load 2,000,000 rows (not 200,000) and add -j 16
#
# The Citus tests (tests/integ/test_citus.py) install ../shared/tools/citus-13.2.2-pg15.tar.gz
# into PostgreSQL 15 when it is not installed (as root) and skip, saying why, where they cannot.
set -uo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
PGFEED_LOG_PREFIX=test.sh
PY=/usr/bin/python3

PASSED=0
FAILED=0
SUMMARY=()
PGDIR=
WORK=

note()
{
    SUMMARY+=("$*")
    printf '== %s\n' "$*"
}

cleanup()
{
    local rc=$?
    [ -n "$PGDIR" ] && pgfeed_pg_stop "$PGDIR" && rm -rf "$PGDIR"
    [ -n "$WORK" ] && rm -rf "$WORK"
    return $rc
}
trap cleanup EXIT
trap 'echo "test.sh: interrupted" >&2; exit 130' INT
trap 'echo "test.sh: terminated" >&2; exit 143' TERM

# tap_count FILE LABEL — adds FILE's TAP results to the totals: `ok` (not SKIP) passes,
# `not ok` fails; a plan that does not match the number of results, or no plan, is one
# more failure (a test program that died half-way).
tap_count()
{
    local file=$1 label=$2 p f s planned ran
    p=$(grep -cE '^ok [0-9]+' "$file")
    s=$(grep -cE '^ok [0-9]+.*# *SKIP' "$file")
    f=$(grep -cE '^not ok [0-9]+' "$file")
    p=$((p - s))
    planned=$(grep -oE '^1\.\.[0-9]+' "$file" | tail -1 | cut -d. -f3)
    ran=$((p + s + f))
    if [ -z "$planned" ] || [ "$planned" -ne "$ran" ]; then
        f=$((f + 1))
        note "$label: plan ${planned:-missing}, ran $ran (counted as one more failure)"
    fi
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
    note "$label: $p passed, $f failed, $s skipped"
}

# unit_tests BUILDDIR — meson test --suite unit, then counts every TAP subtest from
# meson's JSON log (a non-TAP test counts as one result).
unit_tests()
{
    local dir=$1 label="unit ($1)" out
    out=$WORK/unit-$(basename "$dir").txt
    meson test -C "$dir" --suite unit --print-errorlogs --num-processes 2 >"$out" 2>&1
    local rc=$?
    tail -n 30 "$out"
    if [ ! -f "$dir/meson-logs/testlog.json" ]; then
        FAILED=$((FAILED + 1))
        note "$label: meson test did not run (exit $rc)"
        return
    fi
    local counts
    counts=$("$PY" - "$dir/meson-logs/testlog.json" <<'EOF'
import json, re, sys
passed = failed = skipped = 0
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    t = json.loads(line)  # meson 1.0: name, stdout, result, returncode... (no suite field;
    res = t.get("result", "")  # the log holds only this run's tests, i.e. --suite unit)
    out = t.get("stdout") or ""
    if re.search(r"^(not )?ok \d+|^1\.\.\d+", out, re.M):
        oks = re.findall(r"^ok \d+.*$", out, re.M)
        skips = [l for l in oks if re.search(r"#\s*SKIP", l, re.I)]
        nots = re.findall(r"^not ok \d+", out, re.M)
        p, f = len(oks) - len(skips), len(nots)
        plan = re.findall(r"^1\.\.(\d+)", out, re.M)
        if res not in ("OK", "EXPECTEDFAIL", "SKIP") and f == 0:
            f = 1  # crashed, timed out or bad plan with every printed subtest ok
        elif plan and int(plan[-1]) != p + f + len(skips):
            f += 1
        passed, failed, skipped = passed + p, failed + f, skipped + len(skips)
    elif res == "SKIP":
        skipped += 1
    elif res in ("OK", "EXPECTEDFAIL"):
        passed += 1
    else:
        failed += 1
print(passed, failed, skipped)
EOF
)
    local p f s
    read -r p f s <<<"$counts"
    if [ -z "$p" ]; then
        FAILED=$((FAILED + 1))
        note "$label: could not read meson's test log"
        return
    fi
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        f=1
        note "$label: no unit test ran (meson exit $rc)"
    fi
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
    note "$label: $p passed, $f failed, $s skipped"
}

# integ_tests BUILDDIR [RUN_ARGS...]
integ_tests()
{
    local dir=$1 label="integ ($1)"
    shift
    local out=$WORK/integ-$(basename "$dir").tap
    PGFEED_TEST_PGHOST=$PGDIR PGFEED_TEST_TAG=$(basename "$dir" | tr -c 'a-z0-9\n' '_') \
        "$PY" tests/integ/run.py --pgfeed "$dir/pgfeed" --gen-names "$REPO/build-ci/gen-names" \
        "$@" 2>&1 | tee "$out"
    tap_count "$out" "$label"
}

# ---------------------------------------------------------------- install

if [ "${PGFEED_NO_INSTALL:-0}" != 1 ]; then
    pgfeed_install_deps "${PGFEED_BUILD_PKGS[@]}" "${PGFEED_RUN_PKGS[@]}" "${PGFEED_TEST_PKGS[@]}" ||
        pgfeed_log "installing packages failed; trying with what is there"
fi

WORK=$(mktemp -d /tmp/pgfeed-test.XXXXXX)
T0=$(date +%s)

# ---------------------------------------------------------------- build

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

BUILDS=(build-ci)
[ "${PGFEED_SKIP_ASAN:-0}" = 1 ] || BUILDS+=(build-asan)
declare -A BUILT UNIT
for b in "${BUILDS[@]}"; do
    args=(-Dwerror=true)
    [ "$b" = build-asan ] && args+=(-Db_sanitize=address,undefined -Db_lundef=false)
    if pgfeed_build "$b" "${args[@]}"; then
        BUILT[$b]=1
        UNIT[$b]=1
        note "build $b: ok"
    else
        FAILED=$((FAILED + 1))
        note "build $b: FAILED (see $b/build.log)"
        # a broken unit test should not hide the integration results: build what they need
        if [ -f "$b/build.ninja" ] && ninja -C "$b" pgfeed gen-names >>"$b/build.log" 2>&1; then
            BUILT[$b]=1
            note "build $b: pgfeed and gen-names built, integration tests run anyway"
        fi
    fi
done

# LeakSanitizer needs ptrace-like access to the process; where it cannot run it reports a
# fatal error on every exit. Check once with a sanitized binary and turn leaks off then.
if [ -n "${BUILT[build-asan]:-}" ] && [ -x build-asan/gen-names ]; then
    if build-asan/gen-names --rows 1 2>&1 >/dev/null |
        grep -q 'LeakSanitizer has encountered a fatal error'; then
        export ASAN_OPTIONS=${ASAN_OPTIONS//detect_leaks=1/detect_leaks=0}
        note "LeakSanitizer cannot run here (ptrace restricted): leak checks off"
    fi
fi

# ---------------------------------------------------------------- exported symbols

# Every global symbol the static library defines carries the pgfeed_ prefix (STYLE.md).
if [ -n "${BUILT[build-ci]:-}" ] && [ -f build-ci/libpgfeed.a ]; then
    bad=$(nm -g --defined-only build-ci/libpgfeed.a | awk 'NF == 3 && $3 !~ /^pgfeed_/ {print $3}')
    if [ -z "$bad" ]; then
        PASSED=$((PASSED + 1))
        note "symbols: every exported name starts with pgfeed_"
    else
        FAILED=$((FAILED + 1))
        note "symbols: FAILED, names without the pgfeed_ prefix: $(echo $bad)"
    fi
fi

# ---------------------------------------------------------------- pkg-config

# pgfeed.pc as an embedder uses it: `meson install --destdir` of build-ci (the whole tree,
# so only after a complete build), then tests/pkgconfig/embed_min.c built and run with the
# flags pkg-config gives. No server needed.
if [ -n "${UNIT[build-ci]:-}" ]; then
    out=$WORK/pkgconfig.tap
    tests/pkgconfig/run.sh build-ci "$WORK/pkgconfig" 2>&1 | tee "$out"
    tap_count "$out" "pkg-config (build-ci)"
fi

# ---------------------------------------------------------------- unit tests

# One throw-away PostgreSQL for everything below: the unit test of binary COPY checks its
# bytes against the real server (PGFEED_TEST_DB), the integration tests use it throughout.
PG_UP=0
if [ -n "${BUILT[build-ci]:-}" ] || [ -n "${BUILT[build-asan]:-}" ]; then
    PGDIR=$(mktemp -d /tmp/pgfeed-pg.XXXXXX)
    if pgfeed_pg_start "$PGDIR"; then
        PG_UP=1
        note "PostgreSQL on $PGDIR"
        export PGFEED_TEST_DB="$(pgfeed_pg_conninfo "$PGDIR")"
    else
        FAILED=$((FAILED + 1))
        note "PostgreSQL did not start: integration tests not run"
    fi
fi

for b in "${BUILDS[@]}"; do
    if [ -n "${UNIT[$b]:-}" ]; then
        unit_tests "$b"
    fi
done

# ---------------------------------------------------------------- integration tests

if [ "$PG_UP" = 1 ] && [ -n "${BUILT[build-ci]:-}" ]; then
    integ_tests build-ci
fi
if [ "$PG_UP" = 1 ] && [ -n "${BUILT[build-asan]:-}" ]; then
    if [ -z "${BUILT[build-ci]:-}" ]; then
        FAILED=$((FAILED + 1))
        note "integ (build-asan): not run, it uses build-ci's gen-names"
    elif [ "${PGFEED_ASAN_QUICK:-0}" = 1 ]; then
        integ_tests build-asan --quick
    else
        integ_tests build-asan
    fi
fi

# The Citus tests (tests/integ/test_citus.py) skip where Citus cannot be installed: say why.
for f in "$WORK"/integ-*.tap; do
    [ -f "$f" ] || continue
    why=$(grep -m1 -oE '^ok [0-9]+ - citus_[a-z_]+ # SKIP .*' "$f" | sed 's/.*# SKIP //')
    [ -z "$why" ] || note "citus ($(basename "$f" .tap)): skipped: $why"
done

# ---------------------------------------------------------------- container image

# docker/Dockerfile built with rootful podman (installed with apt-get when missing; the
# debootstrap'd base image cached in /var/cache/pgfeed-test) and run against the same
# PostgreSQL through its socket directory: imports, JSON progress, the rejects volume, the
# user, SIGTERM and SIGINT (tests/container/run.sh, TAP). Where podman cannot be installed
# or run, every test is counted as skipped, with the reason on the summary line.
if [ "${PGFEED_SKIP_CONTAINER:-0}" != 1 ] && [ "$PG_UP" = 1 ] && [ -n "${BUILT[build-ci]:-}" ]; then
    out=$WORK/container.tap
    tests/container/run.sh "$PGDIR" "$REPO/build-ci/gen-names" 2>&1 | tee "$out"
    tap_count "$out" "container (docker/Dockerfile)"
    why=$(grep -m1 -oE '# SKIP .*' "$out" | sed 's/^# SKIP //')
    [ -z "$why" ] || note "container: skipped: $why"
fi

# ---------------------------------------------------------------- fuzzing

# Every libFuzzer target for PGFEED_FUZZ_TIME seconds, seed 1, from its seeds alone (a fresh
# corpus), two at a time, with ASan and UBSan: a crash, a sanitizer report, a leak or a hang
# fails that target, and scripts/fuzz prints the input and how to replay it (the input stays
# in build-fuzz/fuzz-artifacts/). A build failure fails every target.
if [ "${PGFEED_SKIP_FUZZ:-0}" != 1 ]; then
    out=$WORK/fuzz.txt
    scripts/fuzz --time "${PGFEED_FUZZ_TIME:-20}" --seed 1 --jobs 2 --corpus "$WORK/fuzz-corpus" \
        >"$out" 2>&1
    cat "$out"
    for t in $(scripts/fuzz --list); do
        if grep -q "^fuzz: $t: ok" "$out"; then
            PASSED=$((PASSED + 1))
            note "$(grep -m1 "^fuzz: $t: ok" "$out" | sed 's/^fuzz: /fuzz /')"
        else
            FAILED=$((FAILED + 1))
            note "fuzz $t: FAILED (see above and build-fuzz/fuzz-logs/$t.log)"
        fi
    done
fi

# ---------------------------------------------------------------- summary

echo
echo "== summary ($(($(date +%s) - T0)) s)"
for s in "${SUMMARY[@]}"; do
    echo "   $s"
done
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
