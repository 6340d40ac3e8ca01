#!/usr/bin/env bash
# tests/pkgconfig/run.sh — pgfeed.pc as an embedder meets it. Installs BUILDDIR with
# `meson install --destdir WORKDIR/root`, moves the installed pgfeed.pc's prefix= there
# (libdir and includedir follow it), and builds tests/pkgconfig/embed_min.c with the flags
# pkg-config gives and nothing else. Prints TAP (scripts/test.sh counts it):
#
#   1  the install, and the .pc moved to it
#   2  `pkg-config --cflags --libs pgfeed`: -I, -L into the install, -lpgfeed, -luv
#   3  Requires is libuv (pgfeed.h includes uv.h); Requires.private is libcurl, zlib,
#      libpq, and libisal, libzstd, liblzma exactly when libpgfeed.a calls them
#   4  linked against libpgfeed.so with `pkg-config --cflags --libs pgfeed`; runs, exits 0
#   5  libpgfeed.a linked in, the dependencies shared, as the README shows it: the
#      archive, then the libraries of every package pgfeed.pc requires, public and
#      private; runs, and needs no libpgfeed.so
#   6  linked with `pkg-config --static --libs pgfeed` as printed, libpgfeed.so moved aside
#      (plus -L for libpq's -lpgcommon -lpgport, as the README says); runs. SKIP when the
#      linker cannot find libraries that only the libcurl and libpq .pc files name (their
#      Libs.private): on Debian 12 those need more -dev packages and
#      postgresql-server-dev-15, which scripts/lib.sh does not install (README, Library)
#
#   tests/pkgconfig/run.sh BUILDDIR WORKDIR     (WORKDIR is emptied first; CC: default cc)
#
# Exits 1 if a result is `not ok`. Besides pkg-config's flags, the compiler gets only
# -Wall -Wextra -Werror.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:?usage: run.sh BUILDDIR WORKDIR}
WORK=${2:?usage: run.sh BUILDDIR WORKDIR}
CC=${CC:-cc}
SRC=$REPO/tests/pkgconfig/embed_min.c
ROOT=$WORK/root
WANT=6
N=0
FAILED=0

result()
{
    N=$((N + 1))
    echo "$1 $N - $2"
}

ok()
{
    result ok "$*"
}

not_ok()
{
    FAILED=$((FAILED + 1))
    result "not ok" "$*"
}

# diag FILE — the last lines of FILE as TAP comments
diag()
{
    tail -n 25 "$1" | sed 's/^/# /'
}

# fail_rest WHY — the remaining results fail (nothing to build against), then exit
fail_rest()
{
    while [ "$N" -lt "$WANT" ]; do
        not_ok "not run: $1"
    done
    exit 1
}

# build_and_run NAME LD_PATH FLAGS... — compiles embed_min.c into WORK/NAME with FLAGS,
# runs it (LD_LIBRARY_PATH=LD_PATH); 0 if both worked. The compiler's output is in
# WORK/NAME.log.
build_and_run()
{
    local name=$1 ldpath=$2
    shift 2
    "$CC" -Wall -Wextra -Werror "$SRC" -o "$WORK/$name" "$@" >"$WORK/$name.log" 2>&1 &&
        LD_LIBRARY_PATH=$ldpath "$WORK/$name" >>"$WORK/$name.log" 2>&1
}

echo "1..$WANT"
rm -rf "$WORK"
mkdir -p "$WORK"

# ---------------------------------------------------------------- 1 install

if ! meson install -C "$BUILD" --destdir "$ROOT" >"$WORK/install.log" 2>&1; then
    diag "$WORK/install.log"
    not_ok "meson install -C $BUILD --destdir"
    fail_rest "nothing installed"
fi
PC=$(find "$ROOT" -path '*/pkgconfig/pgfeed.pc' | head -n 1)
if [ -z "$PC" ]; then
    not_ok "meson install put no pkgconfig/pgfeed.pc under $ROOT"
    fail_rest "no pgfeed.pc"
fi
prefix=$(sed -n 's/^prefix=//p' "$PC")
sed -i "s|^prefix=.*|prefix=$ROOT$prefix|" "$PC"
export PKG_CONFIG_PATH=${PC%/pgfeed.pc}
ok "meson install --destdir; pgfeed.pc's prefix $prefix moved to $ROOT$prefix"
sed 's/^/# /' "$PC"

# ---------------------------------------------------------------- 2 flags

flags=$(pkg-config --cflags --libs pgfeed 2>"$WORK/flags.log")
libdir=$(pkg-config --variable=libdir pgfeed)
incdir=$(pkg-config --variable=includedir pgfeed)
echo "# pkg-config --cflags --libs pgfeed: $flags"
missing=
for f in "-I$incdir" "-L$libdir" -lpgfeed -luv; do
    case " $flags " in
    *" $f "*) ;;
    *) missing="$missing $f" ;;
    esac
done
if [ -s "$WORK/flags.log" ] || [ "${libdir#"$ROOT"/}" = "$libdir" ] ||
    [ ! -f "$incdir/pgfeed.h" ] || [ ! -f "$libdir/libpgfeed.a" ]; then
    diag "$WORK/flags.log"
    not_ok "pkg-config --cflags --libs pgfeed: -I and -L into the install (libdir $libdir)"
    fail_rest "no flags into the install"
elif [ -n "$missing" ]; then
    not_ok "pkg-config --cflags --libs pgfeed: -I and -L into the install, -lpgfeed, -luv (missing:$missing)"
else
    ok "pkg-config --cflags --libs pgfeed: -I and -L into the install, -lpgfeed, -luv"
fi

# ---------------------------------------------------------------- 3 requires

# names — the package names of pkg-config --print-requires* on stdin, sorted, on one line
names()
{
    sed 's/[ <>=].*//' | sort | tr '\n' ' '
}

requires=$(pkg-config --print-requires pgfeed | names)
private=$(pkg-config --print-requires-private pgfeed | names)
want_private="libcurl libpq zlib"
# (grep -q on a pipe would stop reading early: with pipefail, a SIGPIPE is a failure)
undefined=$(nm -u "$libdir/libpgfeed.a")
if grep -q ' isal_' <<<"$undefined"; then
    want_private="libcurl libisal libpq zlib"
fi
# zstd and xz input (libbz2 has no .pc: -lbz2 goes to Libs.private instead)
if grep -q ' ZSTD_' <<<"$undefined"; then
    want_private="$want_private libzstd"
fi
if grep -q ' lzma_' <<<"$undefined"; then
    want_private="$want_private liblzma"
fi
want_private=$(echo "$want_private" | tr ' ' '\n' | names)
if [ "$requires" = "libuv " ] && [ "$private" = "$want_private" ]; then
    ok "Requires: ${requires% }; Requires.private: ${private% }"
else
    not_ok "Requires: '${requires% }' (want libuv); Requires.private: '${private% }' (want ${want_private% })"
fi

# ---------------------------------------------------------------- 4 shared

# shellcheck disable=SC2086 # the flags are words
if build_and_run embed_shared "$libdir" $flags &&
    grep -q "libpgfeed.so.0 => $libdir/" <<<"$(LD_LIBRARY_PATH=$libdir ldd "$WORK/embed_shared")"; then
    sed 's/^/# /' "$WORK/embed_shared.log"
    ok "shared: cc embed_min.c \$(pkg-config --cflags --libs pgfeed) links, runs, exits 0"
else
    diag "$WORK/embed_shared.log"
    not_ok "shared: cc embed_min.c \$(pkg-config --cflags --libs pgfeed) (link, run, or libpgfeed.so.0 not from $libdir)"
fi

# ---------------------------------------------------------------- 5 static libpgfeed.a

# What libpgfeed.a needs from other libraries is Requires.private's job: a package
# missing there is an undefined reference here.
cflags=$(pkg-config --cflags pgfeed)
deps=$(pkg-config --print-requires --print-requires-private pgfeed | tr '\n' ' ')
# shellcheck disable=SC2086 # "libuv >= 1.44" is three words to pkg-config
dyn_libs=$(pkg-config --libs $deps)
# libbz2 has no .pc on Debian: pgfeed.pc's Libs.private names -lbz2 itself
if grep -q ' BZ2_' <<<"$undefined"; then
    dyn_libs="$dyn_libs -lbz2"
fi
echo "# pkg-config --libs $deps: $dyn_libs"
# shellcheck disable=SC2086 # the flags are words
if build_and_run embed_static "" $cflags "$libdir/libpgfeed.a" $dyn_libs &&
    ! grep -q 'NEEDED.*libpgfeed' <<<"$(readelf -d "$WORK/embed_static")"; then
    ok "libpgfeed.a, dependencies shared: links, runs, exits 0"
else
    diag "$WORK/embed_static.log"
    not_ok "libpgfeed.a, dependencies shared (link, run, or still needs libpgfeed.so)"
fi

# ---------------------------------------------------------------- 6 pkg-config --static

# As printed; without the .so beside it, -lpgfeed is the archive. Debian's libpq.pc names
# -lpgcommon -lpgport, which postgresql-server-dev-15 ships outside the linker's path: -L
# as the README says.
mkdir -p "$WORK/aside"
mv "$libdir"/libpgfeed.so* "$WORK/aside/"

static_libs=$(pkg-config --static --libs pgfeed)
echo "# pkg-config --static --libs pgfeed: $static_libs"
extra=()
pkglibdir=$(pg_config --pkglibdir 2>/dev/null) && [ -f "$pkglibdir/libpgcommon.a" ] &&
    extra=("-L$pkglibdir")
# shellcheck disable=SC2086 # the flags are words
if build_and_run embed_static_pc "" $cflags $static_libs "${extra[@]}"; then
    ok "pkg-config --static --libs pgfeed${extra[*]:+ ${extra[*]}}: links, runs, exits 0"
else
    # skipped only if every library not found comes from another package's Libs.private
    notfound=$(grep -o 'cannot find -l[^ :]*' "$WORK/embed_static_pc.log" | sed 's/cannot find //' |
        sort -u | tr '\n' ' ')
    ours=
    for l in $notfound; do
        case " -lpgfeed $dyn_libs " in *" $l "*) ours="$ours $l" ;; esac
    done
    if [ -n "$notfound" ] && [ -z "$ours" ]; then
        ok "pkg-config --static --libs pgfeed # SKIP not installed here: ${notfound% } (named by the Libs.private of libcurl.pc and libpq.pc; see README, Library)"
    else
        diag "$WORK/embed_static_pc.log"
        not_ok "pkg-config --static --libs pgfeed: links, runs, exits 0"
    fi
fi
[ "$FAILED" -eq 0 ]
