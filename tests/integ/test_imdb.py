"""examples/imdb against the real server and tests/httpd.py: its manifest, schema and key
files load small synthetic versions of all seven IMDb datasets (the real headers, \\N
everywhere, comma lists, 0x02-separated akas types and attributes, JSON-ish characters
with quotes and backslashes, titles with quotes) served over HTTP, one without Range and
one slowed down, interrupted with kill -9 and finished with --resume; every table must
equal what the generator wrote, typed as schema.sql says, with the keys in place.

The generator follows the formats of the real files (a real sample of name.basics is
checked against, when present, outside the repository).
"""

import gzip
import json
import random
import re
import shutil
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import REPO, SAMPLE, Failure, check, eq, rows_eq, test  # noqa: E402
from test_http import Httpd  # noqa: E402

EXAMPLE = REPO / "examples" / "imdb"
N = "\\N"

HEADERS = {
    "name.basics": ["nconst", "primaryName", "birthYear", "deathYear", "primaryProfession",
                    "knownForTitles"],
    "title.basics": ["tconst", "titleType", "primaryTitle", "originalTitle", "isAdult",
                     "startYear", "endYear", "runtimeMinutes", "genres"],
    "title.akas": ["titleId", "ordering", "title", "region", "language", "types", "attributes",
                   "isOriginalTitle"],
    "title.crew": ["tconst", "directors", "writers"],
    "title.episode": ["tconst", "parentTconst", "seasonNumber", "episodeNumber"],
    "title.principals": ["tconst", "ordering", "nconst", "category", "job", "characters"],
    "title.ratings": ["tconst", "averageRating", "numVotes"],
}
# Each column's kind in the table: s text, i integer, b boolean, n numeric, a text[] from
# commas, x text[] from 0x02 or commas (title_akas, converted by its after hook)
KINDS = {
    "name.basics": "ssiiaa",
    "title.basics": "ssssbiiia",
    "title.akas": "sisssxxb",
    "title.crew": "saa",
    "title.episode": "ssii",
    "title.principals": "sissss",
    "title.ratings": "sni",
}

WORDS = ["Fred", "Astaire", "Miklós", "Rózsa", "Café", "Noir", "L'été", "\"Quoted\"", "a\\b",
         "Zoë", "Ōkami", "Night", "Day", "The", "Return", "東京"]
PROFESSIONS = ["actor", "actress", "soundtrack", "writer", "director", "producer",
               "music_department", "miscellaneous"]
GENRES = ["Drama", "Comedy", "Short", "Documentary", "Romance", "Sci-Fi", "Film-Noir"]
TYPES = ["imdbDisplay", "original", "alternative", "working", "dvd", "festival"]
ATTRS = ["literal English title", "short title", "YIVO translation", "complete title",
         "informal title, alternative spelling", "reissue title"]


def maybe(r, p, v):
    return N if r.random() < p else v


def title(r):
    return " ".join(r.choice(WORDS) for _ in range(r.randint(1, 4)))


def ids(r, prefix, lo, hi):
    return ",".join(f"{prefix}{r.randint(1, 9_999_999):07d}" for _ in range(r.randint(lo, hi)))


def gen_rows(name, rows, seed):
    r = random.Random(f"{name}-{seed}")
    out = []
    for i in range(1, rows + 1):
        tt, nm = f"tt{i:07d}", f"nm{i:07d}"
        if name == "name.basics":
            prof = r.choice([N, "", ",".join(r.sample(PROFESSIONS, r.randint(1, 3)))])
            out.append([nm, title(r), maybe(r, 0.6, str(r.randint(1850, 2010))),
                        maybe(r, 0.8, str(r.randint(1900, 2024))), prof,
                        maybe(r, 0.2, ids(r, "tt", 1, 4))])
        elif name == "title.basics":
            t = title(r)
            out.append([tt, r.choice(["movie", "short", "tvSeries", "tvEpisode", "video"]), t,
                        r.choice([t, title(r)]), r.choice(["0", "0", "0", "1"]),
                        maybe(r, 0.1, str(r.randint(1890, 2030))),
                        maybe(r, 0.9, str(r.randint(1950, 2030))),
                        maybe(r, 0.4, str(r.randint(1, 600))),
                        maybe(r, 0.1, ",".join(r.sample(GENRES, r.randint(1, 3))))])
        elif name == "title.akas":
            for o in range(1, r.randint(1, 3) + 1):
                sep = r.choice([",", "\x02"])
                types = maybe(r, 0.5, sep.join(r.sample(TYPES, r.randint(1, 2))))
                attrs = maybe(r, 0.7, "\x02".join(r.sample(ATTRS, r.randint(1, 2))))
                out.append([tt, str(o), title(r), maybe(r, 0.3, r.choice(["US", "DE", "JP"])),
                            maybe(r, 0.7, r.choice(["en", "ja", "yi"])), types, attrs,
                            r.choice(["0", "1"])])
        elif name == "title.crew":
            out.append([tt, maybe(r, 0.3, ids(r, "nm", 1, 3)), maybe(r, 0.4, ids(r, "nm", 1, 5))])
        elif name == "title.episode":
            out.append([tt, f"tt{r.randint(1, 9_999_999):07d}", maybe(r, 0.2, str(r.randint(1, 40))),
                        maybe(r, 0.2, str(r.randint(1, 900)))])
        elif name == "title.principals":
            for o in range(1, r.randint(1, 4) + 1):
                chars = r.choice([N, '["Self"]', '["Dr. \\"Doc\\" Brown","Narrator"]',
                                  '["Himself - Host"]', '["a\\\\b"]'])
                out.append([tt, str(o), f"nm{r.randint(1, 9_999_999):07d}",
                            r.choice(["actor", "self", "director", "writer"]),
                            maybe(r, 0.8, r.choice(["producer", "screenplay", "novel \"X\""])),
                            chars])
        elif name == "title.ratings":
            out.append([tt, f"{r.randint(10, 100) / 10:.1f}", str(r.randint(5, 3_000_000))])
    return out


def tsv(name, rows):
    lines = ["\t".join(HEADERS[name])] + ["\t".join(row) for row in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def expected(name, rows):
    """The rows as json_build_array gives them back, sorted by the table's key."""
    def conv(kind, v):
        if v == N:
            return None
        if kind == "i":
            return int(v)
        if kind == "b":
            return v == "1"
        if kind == "n":
            return float(v)
        if kind == "a":
            return v.split(",") if v else []
        if kind == "x":
            return v.split("\x02") if "\x02" in v else v.split(",")
        return v
    kinds = KINDS[name]
    return sorted(tuple(conv(k, v) for k, v in zip(kinds, row)) for row in rows)


def table_rows(ctx, table, ncols, key):
    cols = ctx.sql(f"SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute"
                   f" WHERE attrelid = '{table}'::regclass AND attnum > 0 AND NOT attisdropped;")
    out = ctx.sql(f"SELECT json_build_array({cols.strip()}) FROM {table} ORDER BY {key};")
    got = [tuple(json.loads(ln)) for ln in out.split("\n") if ln]
    check(all(len(g) == ncols for g in got), f"{table}: {ncols} columns")
    return sorted(got)


def example_copy(ctx, base, tweak):
    """examples/imdb copied into the test's dir, its URLs pointing at base (tweak: file ->
    query string)."""
    dst = ctx.tmp / "imdb"
    shutil.copytree(EXAMPLE, dst)
    text = (dst / "imdb.manifest").read_text()

    def url(m):
        f = m.group(1)
        return f"{base}/{f}" + (f"?{tweak[f]}" if f in tweak else "")
    text = re.sub(r"https://datasets\.imdbws\.com/(\S+)", url, text)
    (dst / "imdb.manifest").write_text(text)
    return dst / "imdb.manifest"


SIZES = {"name.basics": 3000, "title.basics": 3000, "title.akas": 2000, "title.crew": 3000,
         "title.episode": 3000, "title.principals": 40_000, "title.ratings": 3000}
KEYS = {"name_basics": "nconst", "title_basics": "tconst", "title_akas": "title_id, ordering",
        "title_crew": "tconst", "title_episode": "tconst", "title_principals": "tconst, ordering",
        "title_ratings": "tconst"}


@test()
def imdb_generator_matches_the_real_sample(ctx):
    sample = ctx.sample().read_text("utf-8").splitlines()
    gen = tsv("name.basics", gen_rows("name.basics", 200, 1)).decode().splitlines()
    eq(gen[0], sample[0], "header")
    shape = re.compile(r"nm\d{7,}\t[^\t]*\t(\d{4}|\\N)\t(\d{4}|\\N)\t([a-z_,]*|\\N)\t"
                       r"((tt\d{7,},?)+|\\N)$")
    bad = [ln for ln in sample[1:] + gen[1:] if not shape.match(ln)]
    check(not bad, f"lines unlike the real name.basics: {bad[:3]}")


@test(time_limit=300)
def imdb_example_loads_all_seven_typed_and_keyed_with_a_resume(ctx):
    data = {}
    for name, n in SIZES.items():
        data[name] = gen_rows(name, n, 7)
        (ctx.tmp / f"{name}.tsv.gz").write_bytes(gzip.compress(tsv(name, data[name]), 6,
                                                               mtime=0))
    srv = Httpd(ctx.tmp)
    try:
        m = example_copy(ctx, srv.base, {"title.crew.tsv.gz": "norange=1",
                                         "title.principals.tsv.gz": "rate=60000"})
        p, errpath = ctx.spawn("--manifest", m, "-b", "4000", "--progress", "json",
                               "--progress-interval", "0.1")
        deadline = time.monotonic() + 120
        while True:  # until the slow principals import has committed a batch: kill -9
            js = [json.loads(ln) for ln in errpath.read_text("utf-8", "replace").splitlines()
                  if ln.startswith("{")]
            if any(j["import"] == "title_principals" and j["rows_committed"] > 0 for j in js):
                break
            if p.poll() is not None or time.monotonic() > deadline:
                raise Failure(f"ended or stalled first: {errpath.read_text()[-3000:]}")
            time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
        ctx.finish(p, errpath)
        n = int(ctx.sql("SELECT count(*) FROM title_principals;"))
        check(0 < n < len(data["title.principals"]), f"title_principals has {n} rows at the kill")
        res = ctx.pgfeed("--manifest", m, "-b", "4000", "--resume", "-v", timeout=240)
        ctx.expect_rc(res, 0)
        ctx.expect_err(res, r"title_principals: resuming after input line")
    finally:
        srv.stop()
    for name, rows in data.items():
        table = name.replace(".", "_")
        got = table_rows(ctx, table, len(HEADERS[name]), KEYS[table])
        rows_eq(got, expected(name, rows), table)
    pkeys = ctx.sql("SELECT conrelid::regclass FROM pg_constraint WHERE contype = 'p' AND"
                    " connamespace = 'public'::regnamespace AND conrelid <> 'pgfeed_checkpoints'"
                    "::regclass;").split()
    eq(sorted(pkeys), sorted(KEYS), "primary keys made by the after hooks")
    types = ctx.sql("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid ="
                    " 'title_akas'::regclass AND attname IN ('types', 'attributes');").split("\n")
    eq(types[:2], ["text[]", "text[]"], "title_akas types and attributes after the hook")
    eq(ctx.sql("SELECT count(*) FROM title_principals WHERE characters::jsonb ? 'Self';").strip(),
       str(sum(1 for r in data["title.principals"] if r[5] == '["Self"]')), "characters as JSON")
