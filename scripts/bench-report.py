#!/usr/bin/python3
"""scripts/bench-report.py — the report of scripts/bench (stdlib only).

  bench-report.py META RESULTS [PROFILE]   the tables, ratios and issue 7's targets
  bench-report.py --callgrind ANNOTATED [CALLERS]
                                           summarize callgrind_annotate output (CALLERS:
                                           the same with --tree=caller, to name stripped
                                           functions by their callers)

META: "key<TAB>value" lines. RESULTS: one line per run:
  size round name wall user sys rss_kb backend bg httpd busy rc window
(round 0 is the warm-up and is not reported; times in seconds, rss in KiB).
"""

import os
import re
import statistics
import sys
from collections import defaultdict

DESCR = {
    "L1": "server: COPY names FROM 'preformatted.txt' (text; the limit)",
    "L1bin": "server: COPY names FROM 'preformatted.bin' (FORMAT binary)",
    "P": "gzip -dc preformatted.txt.gz | psql -c '\\copy names FROM STDIN'",
    "Pcurl": "curl -s http://127.0.0.1/preformatted.txt.gz | gzip -dc | psql \\copy",
    "F": "pgfeed -q -t names name.basics.tsv.gz   (local file)",
    "H": "pgfeed -q -t names http://127.0.0.1/name.basics.tsv.gz   (-j1)",
    "Hb0": "pgfeed -q -b 0 -t names http://... (one transaction; a knob, not a target)",
    "Hj2": "pgfeed -q -j 2 -t names http://127.0.0.1/name.basics.tsv.gz",
    "Hbin": "pgfeed -q --copy-format binary -t names http://.../name.basics.tsv.gz",
}
PGFEED = ("F", "H", "Hb0", "Hj2", "Hbin")
MIB = 1024.0


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def span(xs, fmt):
    """median [min–max] in fmt"""
    if not xs:
        return "-"
    return f"{fmt.format(med(xs))} [{fmt.format(min(xs))}–{fmt.format(max(xs))}]"


def mb(n):
    return f"{int(n) / 1e6:.1f} MB"


def load_meta(path):
    meta = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            meta[k] = v
    return meta


def load_runs(path):
    runs = defaultdict(dict)  # (size, name) -> {round: record}
    with open(path) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) < 13:
                continue
            r = dict(wall=float(p[3]), cpu=float(p[4]) + float(p[5]), rss=int(p[6]) / MIB,
                     backend=float(p[7]), bg=float(p[8]), httpd=float(p[9]), busy=float(p[10]),
                     window=float(p[12]))
            r["other"] = max(0.0, r["busy"] - r["cpu"] - r["backend"] - r["bg"] - r["httpd"])
            # CPUs in use by processes that are not the benchmark's, on average over the window
            r["others"] = r["other"] / r["window"] if r["window"] > 0 else 0.0
            runs[(p[0], p[2])][int(p[1])] = r
    return runs


def measured(runs, size, name):
    """the measured rounds (1..K) of a contender, by round"""
    return {k: v for k, v in runs.get((size, name), {}).items() if k >= 1}


def paired(runs, size, a, b, key="wall"):
    """per-round ratios a/b over the rounds both have"""
    ra, rb = measured(runs, size, a), measured(runs, size, b)
    return [ra[k][key] / rb[k][key] for k in sorted(ra) if k in rb and rb[k][key] > 0]


def table(rows, header):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    out = []
    for j, r in enumerate([header] + rows):
        cells = [str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i])
                 for i, c in enumerate(r)]
        out.append("  ".join(cells).rstrip())
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def report(meta, runs, profile):
    p = print
    sizes = [meta["rows"]] + ([str(int(meta["rows"]) // 10)] if meta.get("scaling") == "1" else [])
    p(f"pgfeed benchmark (issue 7)   {meta['date']}")
    p(f"command:   {meta['command']}")
    p(f"machine:   {meta['nproc']} CPUs ({meta['cpu']}), {meta['mem']} RAM, {meta['kernel']}")
    p(f"load at start: {meta['load_start'].strip()}")
    p(f"pgfeed:    {meta['pgfeed']}, git {meta['git']}; {meta['cc']}")
    p(f"versions:  {meta['postgres']}; zlib {meta['zlib']}; libpq {meta['libpq']}; "
      f"libcurl {meta['libcurl']}; {meta['gzip']}; curl: {meta['curl']}; {meta['python']}")
    p(f"server:    throw-away cluster on a Unix socket, the same for every contender: "
      f"{meta['pgsettings']}")
    p("           (fsync=off and synchronous_commit=off: no durability, this measures CPU and "
      "protocol, not disks;")
    p("           a CHECKPOINT before every run, autovacuum off; the table is TRUNCATEd "
      "before every run)")
    for s in sizes:
        f = lambda n: meta.get(f"file_{s}_{n}", "0")
        p(f"data {int(s):,} rows: TSV {mb(f('name.basics.tsv'))}, .gz {mb(f('name.basics.tsv.gz'))} "
          f"(gzip -6); pre-formatted COPY text {mb(f('preformatted.txt'))} "
          f"(.gz {mb(f('preformatted.txt.gz'))}), binary {mb(f('preformatted.bin'))}")
    p(f"method:    1 warm-up round + {meta['runs']} measured rounds; in every round each "
      "contender once, in the order of the table (interleaved, so drift hits all alike);")
    p("           median [min–max] over the measured rounds; ×L1 = median of the per-round "
      "ratios to L1 (paired).")
    p("           client CPU = user+sys of the client command and its children "
      "(/usr/bin/time); client RSS = its peak RSS")
    p("           (for a pipeline: of its largest process); backend CPU = the cluster's client "
      "backends (postmaster cutime+cstime);")
    p("           bg = the cluster's other processes; httpd = tests/httpd.py (Python) serving "
      "the HTTP runs; other = the machine's")
    p("           busy CPU (/proc/stat) minus all of these, as CPUs in use on average during the "
      "run: load that is not the benchmark's")
    p(f"           (out of {meta['nproc']} CPUs: 1.0 means one CPU's worth of other work).")
    if meta.get("have_j") != "1":
        p("not built: pgfeed --help lists no -j/--connections: the -j2 mode is not built yet "
          "(not measured)")
    if meta.get("have_bin") != "1":
        p("not built: pgfeed --help lists no --copy-format: the binary COPY mode is not built "
          "yet (not measured)")
    c = runs.get(("control", "control"), {}).get(0)
    i = runs.get(("control", "idle"), {}).get(0)
    if c and i:
        p(f"control:   a `psql -c 'SELECT 1'` costs the cluster {c['backend']:.2f} s of backend "
          f"CPU; 2 s idle: {i['bg']:.2f} s bg CPU, while others used {i['others']:.2f} CPUs")
    exact = [f"{n}" for n in DESCR if f"exact_{sizes[0]}_{n}" in meta]
    if exact:
        p(f"exactness: after the warm-up run, every contender's table had the same row count "
          f"and content checksum as L1's ({', '.join(exact)})")

    for s in sizes:
        names = meta.get(f"contenders_{s}", "").split()
        p()
        p(f"== {int(s):,} rows, median [min–max] of {meta['runs']} runs")
        p()
        rows, rows2 = [], []
        for n in names:
            m = measured(runs, s, n)
            if not m:
                continue
            v = list(m.values())
            g = lambda k: [r[k] for r in v]
            x = paired(runs, s, n, "L1")
            xb = paired(runs, s, n, "L1", "backend")
            rows.append([n, span(g("wall"), "{:.2f}"), span(x, "{:.2f}") if n != "L1" else "1",
                         span(g("cpu"), "{:.2f}"), span(g("rss"), "{:.1f}"),
                         f"{med(g('others')):.2f}"])
            rows2.append([n, span(g("backend"), "{:.2f}"),
                          span(xb, "{:.2f}") if n != "L1" else "1",
                          f"{med([r['backend'] / r['wall'] for r in v if r['wall'] > 0]):.2f}",
                          f"{med(g('bg')):.2f}", f"{med(g('httpd')):.2f}"])
        p(table(rows, ["", "wall s", "wall × L1 (paired)", "client CPU s", "client RSS MiB",
                       "others' CPUs"]))
        p()
        p(table(rows2, ["", "backend CPU s", "backend CPU × L1's (paired)",
                        "backend busy (CPU/wall)", "bg CPU s", "httpd CPU s"]))
        p()
        for n in names:
            p(f"  {n:6} {DESCR.get(n, n)}")
        p()
        loads = [meta[k] for k in sorted(meta) if k.startswith(f"load_{s}_round")]
        if loads:
            p(f"  1-min load after each round (warm-up first): {'; '.join(x.split()[0] for x in loads)}")
        for a, b in (("F", "P"), ("H", "Pcurl"), ("H", "P"), ("H", "Hb0")):
            x = paired(runs, s, a, b)
            xb = paired(runs, s, a, b, "backend")
            if x:
                what = "batches of 100000 rows vs one transaction" if b == "Hb0" else \
                    "pgfeed vs pipeline"
                p(f"  {what}: {a}/{b} wall = {span(x, '{:.2f}')}, backend CPU = "
                  f"{span(xb, '{:.2f}')} (paired)")
        for n in PGFEED:
            m = measured(runs, s, n)
            if m:
                x = [r["cpu"] / r["backend"] for r in m.values() if r["backend"] > 0]
                p(f"  {n}: pgfeed CPU / backend CPU = {span(x, '{:.2f}')}; pgfeed peak RSS "
                  f"{max(r['rss'] for r in m.values()):.1f} MiB (max of runs)")

    scal = {}
    if len(sizes) == 2:
        p()
        p(f"== scaling: peak RSS at {int(sizes[0]):,} rows / at {int(sizes[1]):,} rows")
        for n in PGFEED + ("P", "Pcurl"):
            a, b = measured(runs, sizes[0], n), measured(runs, sizes[1], n)
            if a and b:
                ra = med([r["rss"] for r in a.values()])
                rb = med([r["rss"] for r in b.values()])
                scal[n] = (ra, rb)
                p(f"  {n:6} {ra:.1f} MiB / {rb:.1f} MiB = {ra / rb:.3f}  (medians)")

    # Noise: spread of the limit itself, and foreign load.
    s0 = sizes[0]
    l1 = [r["wall"] for r in measured(runs, s0, "L1").values()]
    other = [r["others"] for (sz, n), rr in runs.items() if sz == s0
             for k, r in rr.items() if k >= 1]
    p()
    p(f"load at end: {meta['load_end'].strip()}")
    if l1:
        spread = (max(l1) - min(l1)) / med(l1)
        oth = med(other) if other else 0.0
        noisy = spread > 0.10 or oth > 0.25
        p(f"noise: L1's wall time varies by {spread * 100:.0f}% (max-min over median) across "
          f"runs; other processes used {oth:.2f} of the {meta['nproc']} CPUs on average during "
          "the runs (median)")
        if not noisy:
            p("       -- quiet: the ratios below should hold to a few percent")
        else:
            p("       -- NOISY: the times are not precise; a ratio is only resolved as far as its "
              "min–max range allows.")
        if oth > 0.25:
            p(f"       With other processes runnable, each of ours gets only a share of the "
              f"{meta['nproc']} CPUs, and that share changes")
            p("       from second to second: wall times stretch by a varying factor. Pairing "
              "cancels slow drift, not this.")
            p("       It also biases the wall ratios against the contenders with a busy client "
              "(P, Pcurl, F, H): on a quiet")
            p("       2-CPU machine the client runs beside the backend for free; here its CPU "
              "seconds compete with the backend's.")
            p("       CPU seconds are less affected but not immune (a busy sibling CPU and "
              "shared caches slow every instruction).")
            l1b = med([r["backend"] for r in measured(runs, s0, "L1").values()])
            if s0 == "2000000":
                p(f"       Compare L1's backend CPU here, {l1b:.2f} s, with 1.99 s in issue 7's "
                  "quiet measurement of 2M rows.")
            p("       With one connection the backend is the bottleneck, so the backend-CPU "
              "ratio to L1's is a proxy for the")
            p("       wall ratio a quiet machine would show; it is given with the first target.")

    # Targets
    p()
    p("== issue 7 targets (from this run)")
    def verdict(ok):
        return "met    " if ok else "NOT MET"
    h = measured(runs, s0, "H")
    if h:
        x = paired(runs, s0, "H", "L1")
        p(f"  {verdict(med(x) <= 1.05)} pgfeed -j1 over HTTP, text COPY: wall ≤ 1.05 × L1: "
          f"{med(x):.2f} × L1 (paired, runs {min(x):.2f}–{max(x):.2f}; "
          f"{med([r['wall'] for r in h.values()]):.2f} s vs L1 {med(l1):.2f} s)")
        for sz in sizes:
            xb = paired(runs, sz, "H", "L1", "backend")
            xw = paired(runs, sz, "H", "L1")
            if xb:
                p(f"          at {int(sz):,} rows: wall {med(xw):.2f} × L1 [{min(xw):.2f}–"
                  f"{max(xw):.2f}]; proxy, H's backend CPU: {med(xb):.2f} × L1's "
                  f"[{min(xb):.2f}–{max(xb):.2f}]")
        x = [r["cpu"] / r["backend"] for r in h.values() if r["backend"] > 0]
        p(f"  {verdict(med(x) <= 0.6)} pgfeed CPU ≤ 0.6 × server backend CPU: {med(x):.2f} × "
          f"(pgfeed {med([r['cpu'] for r in h.values()]):.2f} s, backend "
          f"{med([r['backend'] for r in h.values()]):.2f} s; runs {min(x):.2f}–{max(x):.2f})")
        allrss = [r["rss"] for n in ("F", "H") for r in measured(runs, s0, n).values()]
        p(f"  {verdict(max(allrss) <= 32)} peak RSS ≤ 32 MiB with default options: "
          f"{max(allrss):.1f} MiB (max over the F and H runs)")
        if "H" in scal:
            ra, rb = scal["H"]
            p(f"  {verdict(ra / rb <= 1.1)} peak RSS {int(sizes[0]):,} rows ≤ 1.1 × "
              f"{int(sizes[1]):,} rows: {ra / rb:.3f} ({ra:.1f} / {rb:.1f} MiB, H medians)")
        else:
            p("  (not measured) peak RSS flat in input size: run with --scaling")
    if meta.get("have_j") == "1" and measured(runs, s0, "Hj2"):
        x = paired(runs, s0, "H", "Hj2")
        p(f"  {verdict(med(x) >= 1.25)} -j2 faster than -j1 by ≥ 1.25×: {med(x):.2f}× (paired)")
    else:
        p("  NOT MET -j2 faster than -j1 by ≥ 1.25×: -j2 is not built yet")
    if meta.get("have_bin") == "1" and measured(runs, s0, "Hbin"):
        x = paired(runs, s0, "Hbin", "L1")
        p(f"  {verdict(med(x) <= 0.90)} binary COPY mode: wall ≤ 0.90 × L1: {med(x):.2f} × L1")
    else:
        x = paired(runs, s0, "L1bin", "L1")
        ref = f" (the server reading a binary file: {med(x):.2f} × L1)" if x else ""
        p(f"  NOT MET binary COPY mode ≤ 0.90 × L1: --copy-format binary is not built yet{ref}")

    p()
    p("== raw runs (round 0 = warm-up; seconds, MiB)")
    hdr = ["rows", "round", "contender", "wall", "client CPU", "client RSS", "backend CPU",
           "bg CPU", "httpd CPU", "others' CPUs"]
    raw = []
    for (sz, n), rr in runs.items():
        for k in sorted(rr):
            r = rr[k]
            raw.append((sz, k, n, r))
    order = {n: i for i, n in enumerate(["control", "idle"] + list(DESCR))}
    raw.sort(key=lambda t: (t[0] != "control", -int(t[0]) if t[0].isdigit() else 0, t[1],
                            order.get(t[2], 99)))
    p(table([[sz, k, n, f"{r['wall']:.2f}", f"{r['cpu']:.2f}", f"{r['rss']:.1f}",
              f"{r['backend']:.2f}", f"{r['bg']:.2f}", f"{r['httpd']:.2f}", f"{r['others']:.2f}"]
             for sz, k, n, r in raw], hdr))

    if profile and os.path.exists(profile):
        p()
        p("== profile")
        with open(profile) as f:
            sys.stdout.write(f.read())


LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(.*?)\s*(?:\[(.*)\])?\s*$")


def lib_of(obj, fn):
    b = os.path.basename(obj or "")
    for key, label in (("libz", "zlib (inflate, crc32)"), ("libpq", "libpq"),
                       ("libc", "libc (memcpy, memchr, malloc, ...)"), ("libcurl", "libcurl"),
                       ("libuv", "libuv"), ("libssl", "OpenSSL"), ("libcrypto", "OpenSSL"),
                       ("ld-linux", "dynamic loader"), ("pgfeed", "pgfeed itself")):
        if b.startswith(key) or b == key:
            return label
    if "vgpreload" in b or "valgrind" in b:
        return "valgrind preload (malloc wrappers)"
    return b or "?"


def callers_of(path):
    """function -> its callers, from callgrind_annotate --tree=caller"""
    out = defaultdict(list)
    pending = []
    if not path or not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            m = re.match(r"^\s*[\d,]+\s+\(\s*[\d.]+%\)\s+([<*])\s+(.*?)\s*(?:\[(.*)\])?\s*$", line)
            if not m:
                pending = []
                continue
            name = re.sub(r"\s*\(\d+x\)$", "", m.group(2).split(":", 1)[-1])
            if m.group(1) == "<":
                pending.append(name)
            else:
                out[name] = pending
                pending = []
    return out


def callgrind(path, callers_path=None):
    total = None
    funcs = []
    with open(path) as f:
        for line in f:
            if total is None:
                m = re.match(r"^\s*([\d,]+)\s+\(100\.0%\)\s+PROGRAM TOTALS", line)
                if m:
                    total = int(m.group(1).replace(",", ""))
                continue
            m = LINE.match(line)
            if m and ":" in m.group(3):
                funcs.append((int(m.group(1).replace(",", "")), m.group(3), m.group(4)))
    if not total:
        print("(no callgrind totals found)")
        return
    callers = callers_of(callers_path)
    by_lib = defaultdict(int)
    for ir, fn, obj in funcs:
        by_lib[lib_of(obj, fn)] += ir
    print(f"instructions executed by pgfeed (callgrind Ir, self cost; user space only): {total:,}")
    print("by library:")
    for lib, ir in sorted(by_lib.items(), key=lambda x: -x[1]):
        if ir * 1000 >= total:
            print(f"  {ir * 100.0 / total:5.1f}%  {lib}")
    rest = total - sum(by_lib.values())
    if rest * 1000 >= total:
        print(f"  {rest * 100.0 / total:5.1f}%  (functions below callgrind_annotate's threshold)")
    print("top functions (self):")
    for ir, fn, obj in sorted(funcs, key=lambda x: -x[0])[:20]:
        if ir * 1000 < total:
            break
        name = fn.split(":", 1)[1]
        note = ""
        if name.startswith("0x"):
            # callers of a stripped function are only trustworthy for the big ones
            c = sorted(set(callers.get(name, []))) if ir * 100 >= total else []
            note = "  (stripped symbol" + (f"; called by {', '.join(c)}" if c else "") + ")"
        print(f"  {ir * 100.0 / total:5.1f}%  {name}  [{os.path.basename(obj or '?')}]{note}")


def main():
    if len(sys.argv) in (3, 4) and sys.argv[1] == "--callgrind":
        callgrind(sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else None)
        return 0
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    report(load_meta(sys.argv[1]), load_runs(sys.argv[2]),
           sys.argv[3] if len(sys.argv) == 4 else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
