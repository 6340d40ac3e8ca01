#!/usr/bin/env python3
"""pgfeed.1 (made by scripts/manpage.py at build time) and the bash completion agree with
`pgfeed --help`: every option, short and long, is in the man page once, which man renders
without warnings, and the completion offers every long option. TAP on stdout.

    test_manpage.py PGFEED PGFEED.1 SOURCE_ROOT
"""

import os
import re
import shutil
import subprocess
import sys

PGFEED, PAGE, ROOT = sys.argv[1:4]
ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
N = 0
FAILED = 0


def result(ok, what, diag=""):
    global N, FAILED
    N += 1
    FAILED += not ok
    print(f"{'ok' if ok else 'not ok'} {N} - {what}")
    for ln in (diag.splitlines()[:20] if not ok else []):
        print(f"# {ln}")


help_text = subprocess.run([PGFEED, "--help"], capture_output=True, text=True, env=ENV,
                           check=True).stdout
page = open(PAGE, encoding="utf-8").read()
options = re.findall(r"^  (?:(-\w), )?\s*(--[\w-]+)", help_text, re.M)
longs = [lo for _, lo in options]
shorts = [sh for sh, _ in options if sh]
in_page = re.findall(r"^\.TP\n(?:\\fB(\\-\w)\\fR, )?\\fB(\\-\\-[\w\\-]+)\\fR", page, re.M)
page_longs = [lo.replace("\\-", "-") for _, lo in in_page]
page_shorts = [sh.replace("\\-", "-") for sh, _ in in_page if sh]
result(len(longs) > 30, f"--help lists {len(longs)} options")
result(page_longs == longs, "the man page has every long option of --help, in its order",
       f"missing: {sorted(set(longs) - set(page_longs))}\nextra: "
       f"{sorted(set(page_longs) - set(longs))}")
result(page_shorts == shorts, "and every short one", f"{page_shorts} vs {shorts}")
first = help_text.split("\n")[0].replace("-", "\\-")
result(first in page, "the DESCRIPTION starts with --help's first line", first)

if shutil.which("man"):
    r = subprocess.run(["man", "--warnings", "-l", PAGE], capture_output=True, text=True,
                       env=dict(ENV, MANWIDTH="80", MANPAGER="cat", PAGER="cat"))
    result(r.returncode == 0 and not r.stderr.strip() and "--resume" in r.stdout,
           "man renders it without warnings", r.stderr)
else:
    print(f"ok {N + 1} - # SKIP man is not installed")
    N += 1


def complete(*words):
    script = (f'source {ROOT}/scripts/completion/pgfeed.bash; COMP_WORDS=({PGFEED} '
              + " ".join(f"'{w}'" for w in words) + f'); COMP_CWORD={len(words)}; _pgfeed; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=ENV)
    return [w for w in r.stdout.split("\n") if w], r.stderr


got, err = complete("--")
want = set(longs) | set(re.findall(r"also (--[\w-]+)", help_text))  # --ca-file, --ca-path
result(sorted(got) == sorted(want), "bash completion offers every long option of --help",
       f"missing: {sorted(want - set(got))}\nextra: {sorted(set(got) - want)}\n{err}")
got, err = complete("--he")
result(sorted(got) == ["--header", "--help"], "bash completion of --he", f"{got}\n{err}")
got, err = complete("--format", "")
result(got == ["tsv", "csv", "text"], "bash completion of --format's values", f"{got}\n{err}")

print(f"1..{N}")
sys.exit(1 if FAILED else 0)
