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
    "H": "pgfeed -q -t names http://127.0.0.1/name.basics.tsv.gz   (-j1, text COPY)",
    "Hj2": "pgfeed -q -j 2 -t names http://...   (2 COPY connections, text)",
    "Hbin": "pgfeed -q --copy-format binary -t names http://...   (-j1, COPY binary)",
    "Hj2bin": "pgfeed -q -j 2 --copy-format binary -t names http://...",
    # --knobs
    "Hb0": "pgfeed -q -b 0 -t names http://...   (the whole import in one transaction)",
    "Hbinb0": "pgfeed -q --copy-format binary -b 0 -t names http://...   (binary, one transaction)",
    "Hb1M": "pgfeed -q -b 1000000 -t names http://...   (batches of 1M rows, not 100k)",
    "Hunlog": "pgfeed -q -t names_unlogged http://...   (CREATE UNLOGGED TABLE, same columns)",
    "Hpk": "pgfeed -q -t names_pk http://...   (PRIMARY KEY (nconst) during the load)",
    "Hnoix": "pgfeed -q -t names_idx http://...   (no index; part 1 of Hpkafter)",
    "Hmkpk": "psql -c 'ALTER TABLE names_idx ADD PRIMARY KEY (nconst)'   (part 2 of Hpkafter)",
    "Hpkafter": "Hnoix + Hmkpk per round: load without the key, then add it",
    "L1frz": "server: BEGIN; TRUNCATE names; COPY names FROM '...txt' WITH (FREEZE); COMMIT",
    "Hj3bin": "pgfeed -q -j 3 --copy-format binary -t names http://...",
}
PGFEED = ("F", "H", "Hj2", "Hbin", "Hj2bin", "Hb0", "Hbinb0", "Hb1M", "Hunlog", "Hpk", "Hnoix",
          "Hj3bin")
KNOBS = ("Hb0", "Hbinb0", "Hb1M", "Hunlog", "Hpk", "Hnoix", "Hmkpk", "Hpkafter", "L1frz", "Hj3bin")
# two-part contenders: the report adds their parts up round by round
SUMS = {"Hpkafter": ("Hnoix", "Hmkpk")}
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


def add_sums(runs):
    """Hpkafter = Hnoix + Hmkpk, round by round (peak RSS: the larger)"""
    for (size, name) in list(runs):
        for total, (a, b) in SUMS.items():
            if name != a or (size, b) not in runs:
                continue
            ra, rb = runs[(size, a)], runs[(size, b)]
            for k in ra:
                if k in rb:
                    r = {f: ra[k][f] + rb[k][f] for f in ra[k] if f not in ("rss", "others")}
                    r["rss"] = max(ra[k]["rss"], rb[k]["rss"])
                    r["others"] = r["other"] / r["window"] if r["window"] > 0 else 0.0
                    runs[(size, total)][k] = r


def measured(runs, size, name):
    """the measured rounds (1..K) of a contender, by round"""
    return {k: v for k, v in runs.get((size, name), {}).items() if k >= 1}


def paired(runs, size, a, b, key="wall"):
    """per-round ratios a/b over the rounds both have"""
    ra, rb = measured(runs, size, a), measured(runs, size, b)
    return [ra[k][key] / rb[k][key] for k in sorted(ra) if k in rb and rb[k][key] > 0]


def best(runs, size, a, b):
    """a's fastest measured run over b's fastest: robust to rounds that are slow for everyone"""
    ra, rb = measured(runs, size, a), measured(runs, size, b)
    if not ra or not rb:
        return "-"
    if a == b:
        return "1"
    return f"{min(r['wall'] for r in ra.values()) / min(r['wall'] for r in rb.values()):.2f}"


def table(rows, header, left=(0,)):
    """a plain-text table; the columns in left are left-aligned, the others right-aligned"""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    out = []
    for j, r in enumerate([header] + rows):
        cells = [str(c).ljust(widths[i]) if i in left else str(c).rjust(widths[i])
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
      "ratios to L1 (paired); best × L1's best =")
    p("           the fastest run over L1's fastest (robust to rounds in which every contender "
      "was slow).")
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
          f"and content checksum as L1's ({', '.join(exact)}; the knobs' own tables "
          "names_unlogged, names_pk, names_idx compared with L1's names)")

    for s in sizes:
        names = meta.get(f"contenders_{s}", "").split()
        main = [n for n in names if n not in KNOBS]
        knobs = [n for n in names if n in KNOBS]
        if "Hnoix" in knobs and "Hmkpk" in knobs:
            knobs.insert(knobs.index("Hmkpk") + 1, "Hpkafter")
        p()
        p(f"== {int(s):,} rows, median [min–max] of {meta['runs']} runs")
        p()
        rows, rows2 = [], []
        for n in main:
            m = measured(runs, s, n)
            if not m:
                continue
            v = list(m.values())
            g = lambda k: [r[k] for r in v]
            x = paired(runs, s, n, "L1")
            xb = paired(runs, s, n, "L1", "backend")
            rows.append([n, span(g("wall"), "{:.2f}"), span(x, "{:.2f}") if n != "L1" else "1",
                         best(runs, s, n, "L1"), span(g("cpu"), "{:.2f}"),
                         span(g("rss"), "{:.1f}"), f"{med(g('others')):.2f}"])
            rows2.append([n, span(g("backend"), "{:.2f}"),
                          span(xb, "{:.2f}") if n != "L1" else "1",
                          f"{med([r['backend'] / r['wall'] for r in v if r['wall'] > 0]):.2f}",
                          f"{med(g('bg')):.2f}", f"{med(g('httpd')):.2f}"])
        p(table(rows, ["", "wall s", "wall × L1 (paired)", "best × L1's best", "client CPU s",
                       "client RSS MiB", "others' CPUs"]))
        p()
        p(table(rows2, ["", "backend CPU s", "backend CPU × L1's (paired)",
                        "backend busy (CPU/wall)", "bg CPU s", "httpd CPU s"]))
        p()
        for n in main:
            p(f"  {n:6} {DESCR.get(n, n)}")
        p()
        loads = [meta[k] for k in sorted(meta) if k.startswith(f"load_{s}_round")]
        if loads:
            p(f"  1-min load after each round (warm-up first): {'; '.join(x.split()[0] for x in loads)}")
        for a, b, what in (("F", "P", "pgfeed vs pipeline"), ("H", "Pcurl", "pgfeed vs pipeline"),
                           ("H", "P", "pgfeed vs pipeline"), ("H", "Hj2", "-j1 vs -j2"),
                           ("Hbin", "Hj2bin", "-j1 vs -j2, binary"),
                           ("H", "Hbin", "text vs binary COPY"),
                           ("Hj2", "Hj2bin", "text vs binary COPY, -j2")):
            x = paired(runs, s, a, b)
            xb = paired(runs, s, a, b, "backend")
            if x:
                p(f"  {what}: {a}/{b} wall = {span(x, '{:.2f}')}, backend CPU = "
                  f"{span(xb, '{:.2f}')} (paired)")
        for n in PGFEED:
            if n in KNOBS:
                continue
            m = measured(runs, s, n)
            if m:
                x = [r["cpu"] / r["backend"] for r in m.values() if r["backend"] > 0]
                p(f"  {n}: pgfeed CPU / backend CPU = {span(x, '{:.2f}')}; pgfeed peak RSS "
                  f"{max(r['rss'] for r in m.values()):.1f} MiB (max of runs)")

        if knobs:
            p()
            p(f"-- knobs, {int(s):,} rows: median [min–max]; × H = median of the per-round "
              "ratios to H (paired, same round)")
            p()
            krows = []
            for n in ["H"] + knobs:
                m = measured(runs, s, n)
                if not m:
                    continue
                v = list(m.values())
                g = lambda k: [r[k] for r in v]
                x = paired(runs, s, n, "H")
                xb = paired(runs, s, n, "H", "backend")
                krows.append([n, span(g("wall"), "{:.2f}"),
                              span(x, "{:.2f}") if n != "H" else "1",
                              best(runs, s, n, "H"), best(runs, s, n, "L1"),
                              span(g("backend"), "{:.2f}"),
                              span(xb, "{:.2f}") if n != "H" else "1",
                              f"{med(g('cpu')):.2f}", f"{max(g('rss')):.1f}",
                              f"{med(g('others')):.2f}"])
            p(table(krows, ["", "wall s", "wall × H (paired)", "best × H's", "best × L1's",
                            "backend CPU s",
                            "backend CPU × H's", "client CPU s", "peak RSS MiB",
                            "others' CPUs"]))
            p()
            for n in knobs:
                p(f"  {n:8} {DESCR.get(n, n)}")
            p()
            for a, b, what in (("Hb0", "Hb1M", "one transaction vs 1M-row batches"),
                               ("Hpk", "Hpkafter", "key during the load vs added after it"),
                               ("L1frz", "L1", "COPY FREEZE after TRUNCATE in the same "
                                "transaction vs plain COPY, server-side"),
                               ("Hj3bin", "Hj2bin", "-j3 vs -j2, binary"),
                               ("Hj3bin", "L1", "-j3 binary vs the limit")):
                x = paired(runs, s, a, b)
                xb = paired(runs, s, a, b, "backend")
                if x:
                    p(f"  {what}: {a}/{b} wall = {span(x, '{:.2f}')}, backend CPU = "
                      f"{span(xb, '{:.2f}')} (paired)")
            a, b = measured(runs, s, "Hnoix"), measured(runs, s, "Hmkpk")
            if a and b:
                p(f"  Hpkafter's parts: load {med([r['wall'] for r in a.values()]):.2f} s + "
                  f"ADD PRIMARY KEY {med([r['wall'] for r in b.values()]):.2f} s (medians; "
                  "the sum is taken round by round)")

    scal = {}
    if len(sizes) == 2:
        p()
        p(f"== scaling: peak RSS at {int(sizes[0]):,} rows / at {int(sizes[1]):,} rows")
        for n in tuple(n for n in PGFEED if n not in KNOBS) + ("P", "Pcurl"):
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
        slow = {}
        for (sz, n), rr in runs.items():
            if sz != s0 or n in SUMS:
                continue
            mw = med([r["wall"] for k, r in rr.items() if k >= 1])
            for k, r in rr.items():
                if k >= 1 and mw > 0:
                    slow.setdefault(k, []).append(r["wall"] / mw)
        if slow:
            p("       each round's pace: the median over the contenders of a run's wall time over "
              "its contender's median: "
              + "; ".join(f"round {k} {med(v):.2f}" for k, v in sorted(slow.items())))
        if not noisy:
            p("       -- quiet: the ratios below should hold to a few percent")
        else:
            p("       -- NOISY: the times are not precise; a ratio is only resolved as far as its "
              "min–max range allows.")
        if noisy and oth <= 0.25:
            p("       No other load was visible on the machine, yet some runs were slow in the "
              "backend's own CPU seconds as well:")
            p("       probably something outside this machine's accounting (a virtual machine's "
              "CPUs share the host's cores and caches).")
            p("       Such slow stretches last tens of seconds and hit whichever contenders run "
              "then; the paired and the best-of ratios")
            p("       cancel part of it, the min–max ranges show the rest.")
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
    p(f"== issue 7 targets ({int(s0):,} rows, median of {meta['runs']} paired rounds "
      "[min–max of the per-round ratios])")
    p()
    trows = []

    def exact(*ns):
        ok = all(f"exact_{s0}_{n}" in meta for n in ns)
        return "; exact" if ok else "; NOT checked for exactness"

    def target(what, x, limit, higher=False, detail=""):
        """one row: verdict on the median, and whether the runs' range straddles the limit"""
        if not x:
            trows.append(["not measured", what, "-", detail])
            return
        m = med(x)
        ok = m >= limit if higher else m <= limit
        allok = min(x) >= limit if higher else max(x) <= limit
        nonok = max(x) < limit if higher else min(x) > limit
        v = "met" if ok else "NOT met"
        if ok and not allok or not ok and not nonok:
            v += " (range straddles)"
        trows.append([v, what, f"{m:.2f} [{min(x):.2f}–{max(x):.2f}]", detail])

    def medk(n, k, sz=s0):
        return med([r[k] for r in measured(runs, sz, n).values()])

    h = measured(runs, s0, "H")
    xb = paired(runs, s0, "H", "L1", "backend")
    target("H (-j1, HTTP, text COPY) wall ≤ 1.05 × L1", paired(runs, s0, "H", "L1"), 1.05,
           detail=f"{medk('H', 'wall'):.2f} s vs L1 {medk('L1', 'wall'):.2f} s; backend CPU "
           f"{med(xb):.2f} × L1's" if h else "")
    if meta.get("have_bin") == "1":
        target("Hbin (-j1, COPY binary) wall ≤ 0.90 × L1", paired(runs, s0, "Hbin", "L1"), 0.90,
               detail=(f"{medk('Hbin', 'wall'):.2f} s{exact('Hbin')}; L1bin (server reads a "
                       f"binary file): {med(paired(runs, s0, 'L1bin', 'L1')):.2f} × L1"
                       + (f"; best reached, -b 0 (Hbinb0): "
                          f"{med(paired(runs, s0, 'Hbinb0', 'L1')):.2f} × L1"
                          if measured(runs, s0, "Hbinb0") else ""))
               if measured(runs, s0, "Hbin") else "")
    else:
        trows.append(["NOT met", "binary COPY wall ≤ 0.90 × L1", "-",
                      "--copy-format is not built"])
    if meta.get("have_j") == "1":
        target("-j2 speed-up, text: H wall / Hj2 wall ≥ 1.25", paired(runs, s0, "H", "Hj2"),
               1.25, higher=True,
               detail=f"Hj2 {medk('Hj2', 'wall'):.2f} s = {med(paired(runs, s0, 'Hj2', 'L1')):.2f}"
               f" × L1{exact('Hj2')}" if measured(runs, s0, "Hj2") else "")
        if meta.get("have_bin") == "1":
            target("-j2 speed-up, binary: Hbin wall / Hj2bin wall ≥ 1.25",
                   paired(runs, s0, "Hbin", "Hj2bin"), 1.25, higher=True,
                   detail=f"Hj2bin {medk('Hj2bin', 'wall'):.2f} s = "
                   f"{med(paired(runs, s0, 'Hj2bin', 'L1')):.2f} × L1{exact('Hj2bin')}"
                   if measured(runs, s0, "Hj2bin") else "")
    else:
        trows.append(["NOT met", "-j2 ≥ 1.25 × faster than -j1", "-", "-j is not built"])
    if h:
        x = [r["cpu"] / r["backend"] for r in h.values() if r["backend"] > 0]
        others = []
        for n in ("Hbin", "Hj2", "Hj2bin"):
            m = measured(runs, s0, n)
            if m:
                others.append(f"{n} {med([r['cpu'] / r['backend'] for r in m.values() if r['backend'] > 0]):.2f}")
        target("pgfeed CPU / server backend CPU ≤ 0.6 (H)", x, 0.6,
               detail=f"{medk('H', 'cpu'):.2f} s / {medk('H', 'backend'):.2f} s"
               + (f"; {', '.join(others)}" if others else ""))
        rss = [r["rss"] for n in ("F", "H") for r in measured(runs, s0, n).values()]
        allp = [(max(r["rss"] for r in measured(runs, s0, n).values()), n)
                for n in PGFEED if measured(runs, s0, n)]
        top = max(allp)
        trows.append(["met" if max(rss) <= 32 else "NOT met",
                      "peak RSS ≤ 32 MiB, default options (F, H)", f"{max(rss):.1f} MiB",
                      f"max over the runs; any pgfeed mode: {top[0]:.1f} MiB ({top[1]})"])
        if "H" in scal:
            ra, rb = scal["H"]
            more = [f"{n} {scal[n][0] / scal[n][1]:.3f}" for n in ("F", "Hj2", "Hbin", "Hj2bin")
                    if n in scal]
            trows.append(["met" if ra / rb <= 1.1 else "NOT met",
                          f"peak RSS {int(sizes[0]):,} rows ≤ 1.1 × {int(sizes[1]):,} rows (H)",
                          f"{ra / rb:.3f}", f"{ra:.1f} / {rb:.1f} MiB, medians"
                          + (f"; {', '.join(more)}" if more else "")])
        else:
            trows.append(["not measured", "peak RSS flat in input size", "-",
                          "run with --scaling"])
    p(table(trows, ["verdict", "target", "measured", "detail"], left=(0, 1, 3)))
    if len(sizes) == 2 and h:
        sz = sizes[1]
        x = paired(runs, sz, "H", "L1")
        xb = paired(runs, sz, "H", "L1", "backend")
        if x:
            p(f"  at {int(sz):,} rows: H wall {med(x):.2f} × L1 [{min(x):.2f}–{max(x):.2f}], "
              f"backend CPU {med(xb):.2f} × L1's")
    p("  (range straddles): the median is on one side of the limit, some rounds on the other")
    p()
    p("== raw runs (round 0 = warm-up; seconds, MiB)")
    hdr = ["rows", "round", "contender", "wall", "client CPU", "client RSS", "backend CPU",
           "bg CPU", "httpd CPU", "others' CPUs"]
    raw = []
    for (sz, n), rr in runs.items():
        if n in SUMS:
            continue
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
    runs = load_runs(sys.argv[2])
    add_sums(runs)
    report(load_meta(sys.argv[1]), runs,
           sys.argv[3] if len(sys.argv) == 4 else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
