#!/usr/bin/env python3
"""scripts/manpage.py — writes pgfeed.1 from `pgfeed --help`, so that the man page and the
help never disagree: the summary line, the usage, the SOURCE paragraph, every option with
its text and the exit statuses come from the help; the examples, the environment and the
pointers to the README are added here.

    manpage.py PGFEED OUTPUT        (meson runs it at build time; the standard library only)
"""

import os
import re
import subprocess
import sys

OPTION = re.compile(r"^  (?:(-\w), )?\s*(--[\w-]+)(?: (\S+))?(?:\s{2,}(.*))?$")

EXTRA = r"""
.SH ENVIRONMENT
.TP
.B DATABASE_URL
the connection when \-\-db is not given
.TP
.BR PGHOST ", " PGPORT ", " PGDATABASE ", " PGUSER ", " PGPASSWORD ", ..."
libpq's variables, when neither \-\-db nor DATABASE_URL is given; ~/.pgpass for passwords
.TP
.B PGFEED_PROGRESS
the default of \-\-progress
.SH EXAMPLES
IMDb's name.basics (about 14 million rows) into an existing table:
.PP
.nf
.RS
pgfeed \-d postgres:///imdb \-t names https://datasets.imdbws.com/name.basics.tsv.gz
.RE
.fi
.PP
The same import, after it was interrupted, from the last committed batch on:
.PP
.nf
.RS
pgfeed \-d postgres:///imdb \-t names \-\-resume https://datasets.imdbws.com/name.basics.tsv.gz
.RE
.fi
.PP
A CSV file on standard input, bad rows skipped into a file:
.PP
.nf
.RS
gzip \-dc data.csv.gz | pgfeed \-f csv \-t items \-\-max\-rejects 100 \-\-rejects bad.tsv \-
.RE
.fi
.SH SEE ALSO
.BR psql (1),
README.md in pgfeed's sources (quick start, troubleshooting, formats, resume, the C library)
"""


def roff(text):
    """Text as roff sees it literally: backslashes doubled, hyphens as \\-, no leading dot."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"^([.'])", r"\\&\1", text, flags=re.M)


def parse(help_text):
    lines = help_text.rstrip("\n").split("\n")
    head, options, tail, part = [], [], [], "head"
    for ln in lines:
        if part == "head":
            if ln == "Options:":
                part = "options"
            else:
                head.append(ln)
        elif part == "options":
            m = OPTION.match(ln)
            if m:
                options.append([m.group(1), m.group(2), m.group(3), [m.group(4) or ""]])
            elif ln.startswith("      ") and ln.strip() and options:
                options[-1][3].append(ln.strip())
            elif ln.strip():
                part = "tail"
                tail.append(ln)
        else:
            tail.append(ln)
    return head, options, tail


def page(help_text, version):
    head, options, tail = parse(help_text)
    summary = head[0].removeprefix("pgfeed ").rstrip(".")
    out = [f'.TH PGFEED 1 "" "pgfeed {roff(version)}" "User Commands"',
           ".SH NAME", f"pgfeed \\- {roff(summary)}",
           ".SH SYNOPSIS", ".B pgfeed", "[\\fIOPTIONS\\fR] \\fISOURCE\\fR",
           ".SH DESCRIPTION", roff(head[0])]
    body = [ln.strip() for ln in head[1:] if ln.strip() and ln.strip() not in
            ("Usage:", "pgfeed [OPTIONS] SOURCE")]
    if body:
        out += [".PP", roff(" ".join(body))]
    out.append(".SH OPTIONS")
    for short, long_, arg, text in options:
        names = (f"\\fB{roff(short)}\\fR, " if short else "") + f"\\fB{roff(long_)}\\fR"
        if arg:
            names += f" \\fI{roff(arg)}\\fR"
        out += [".TP", names, roff(" ".join(t for t in text if t))]
    for ln in tail:
        if ln.startswith("Exit status:"):
            out += [".SH EXIT STATUS", roff(ln.removeprefix("Exit status:").strip())]
        elif ln.strip():
            out += [".PP", roff(ln.strip())]
    return "\n".join(out) + EXTRA


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: manpage.py PGFEED OUTPUT")
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")

    def run(arg):
        return subprocess.run([sys.argv[1], arg], capture_output=True, text=True, env=env,
                              check=True, timeout=60).stdout

    words = run("--version").split()  # "pgfeed 0.1.0 (inflate: ...)"
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write(page(run("--help"), words[1] if len(words) > 1 else ""))

if __name__ == "__main__":
    main()
