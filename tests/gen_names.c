/*
 * gen_names.c
 *    Deterministic generator of IMDb name.basics-like TSV, for the tests, the demo and the
 *    benchmark.
 *
 * Writes to stdout only; compression is left to the caller (`gen-names | gzip`). The same
 * --seed gives the same bytes on every machine: the generator has its own PRNG (splitmix64)
 * and never calls rand() or reads the clock.
 *
 * Columns, as IMDb's file: nconst, primaryName, birthYear, deathYear, primaryProfession,
 * knownForTitles. Rows are nm%07d numbered from 1. Names are UTF-8 with accents, now and
 * then Japanese or Cyrillic, apostrophes (O'Hara), double quotes (nicknames) and an
 * occasional backslash (a trailing one, or `\N` inside a name, which is not a NULL). Years
 * are \N now and then (death years mostly); 0-3 professions from IMDb's list (none is \N,
 * or sometimes an empty field); 0-4 titles tt%07d (none is \N).
 *
 * --bad-line L drops the last field of output line L (1-based; the header, when written,
 * is line 1), so that line has 5 fields instead of 6.
 *
 * Output goes through one 1 MiB buffer; a row is formatted by hand (no printf per row).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OUTBUF_SIZE (1u << 20)
#define ROW_MAX     1024 /* far more than the longest row this program makes */

struct out {
    char buf[OUTBUF_SIZE];
    size_t len;
};

static const char *const first_names[] = {
    "Fred",    "Lauren",   "Brigitte",  "John",       "Ingmar",     "Ingrid",   "Humphrey",
    "Marlon",  "Richard",  "James",     "Gary",       "Bette",      "Doris",    "Olivia",
    "Georges", "Marlene",  "Kirk",      "Federico",   "Maureen",    "Beverly",  "Donna",
    "Miklós",  "François", "Louis",     "Gérard",     "Renée",      "Zoë",      "Jürgen",
    "Søren",   "Björn",    "Åsa",       "Łukasz",     "Małgorzata", "José",     "Peñélope",
    "Núria",   "Chloé",    "Hélène",    "Ærøskøbing", "Dvořák",     "Žofie",    "Ştefan",
    "İlker",   "Íñigo",    "Jean-Luc",  "Mary",       "Robert",     "Patricia", "Michael",
    "Linda",   "William",  "Elizabeth", "David",      "Susan",      "Joseph",   "Jessica",
    "Thomas",  "Sarah",    "Charles",   "Karen",      "Anna",       "Pierre",   "Sofía",
    "Ángel",   "Günther",  "Maëlle",    "Noël",       "Zoltán",     "Agnès",    "Jacques",
    "Céline",
};

static const char *const last_names[] = {
    "Astaire",        "Bacall",      "Bardot",   "Belushi",   "Bergman",     "Bogart",
    "Brando",         "Burton",      "Cagney",   "Cooper",    "Davis",       "Day",
    "de Havilland",   "Dean",        "Delerue",  "Dietrich",  "Douglas",     "Fellini",
    "O'Hara",         "D'Angelo",    "D'Errico", "Rózsa",     "Truffaut",    "de Funès",
    "Pirès",          "Zellweger",   "Müller",   "Schröder",  "Kierkegaard", "Østergaard",
    "Borg",           "Lewandowski", "Wałęsa",   "Núñez",     "Peña",        "Muñoz",
    "García Márquez", "Brontë",      "Ibáñez",   "Dvořáková", "Čapek",       "O'Brien",
    "O'Connor",       "L'Écuyer",    "Smith",    "Johnson",   "Williams",    "Brown",
    "Jones",          "Miller",      "Wilson",   "Moore",     "Taylor",      "Anderson",
    "Jackson",        "White",       "Harris",   "Martin",    "Thompson",    "Moreau",
    "Lefèvre",        "Gauß",        "Straße",   "Ødegaard",  "Kovačević",   "Şahin",
    "Yılmaz",         "Nguyễn",
};

/* Whole names in other scripts, used instead of first + last now and then. */
static const char *const other_names[] = {
    "三船 敏郎",
    "黒澤 明",
    "宮崎 駿",
    "原 節子",
    "北野 武",
    "坂本 龍一",
    "Сергей Эйзенштейн",
    "Андрей Тарковский",
    "Людмила Гурченко",
    "Никита Михалков",
    "Фёдор Шаляпин",
    "Ирина Скобцева",
    "張藝謀",
    "王家衛",
    "Ἀριστοτέλης Ὀνάσης",
};

/* Nicknames, written between double quotes: Dwayne "The Rock" Johnson. */
static const char *const nicknames[] = {
    "The Rock", "Babe", "Duke", "Bud", "Kiki", "Lucky", "Señor", "Léo",
};

/* Names with a backslash: a trailing one, a `\N` that is not a NULL, a path-like one. */
static const char *const backslash_names[] = {
    "Kid\\Nova",  "DJ \\o/ Müller",   "Back\\slash", "Trailing\\",
    "\\N Junior", "C:\\Films\\Ågren", "Ends \\\\",
};

/* IMDb's professions, the frequent ones first (sampled with a skew toward them). */
static const char *const professions[] = {
    "actor",
    "actress",
    "producer",
    "soundtrack",
    "director",
    "writer",
    "miscellaneous",
    "music_department",
    "composer",
    "cinematographer",
    "editor",
    "assistant_director",
    "stunts",
    "executive",
    "production_manager",
    "art_department",
    "animation_department",
    "make_up_department",
    "camera_department",
    "editorial_department",
    "special_effects",
    "script_department",
    "costume_department",
    "set_decorator",
    "production_designer",
    "casting_director",
    "art_director",
    "talent_agent",
    "visual_effects",
    "sound_department",
    "casting_department",
    "location_management",
    "transportation_department",
    "electrical_department",
    "legal",
    "publicist",
    "manager",
    "choreographer",
    "podcaster",
    "archive_footage",
    "archive_sound",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform in [0, n), n > 0; the modulo bias is irrelevant at these sizes. */
static uint32_t pick(uint64_t *st, uint32_t n)
{
    return (uint32_t)((splitmix64(st) >> 32) % n);
}

static void out_flush(struct out *o)
{
    if (o->len > 0 && fwrite(o->buf, 1, o->len, stdout) != o->len) {
        fprintf(stderr, "gen-names: error: could not write to stdout: %s\n", strerror(errno));
        exit(1);
    }
    o->len = 0;
}

static void put_str(char **p, const char *s)
{
    size_t n = strlen(s);
    memcpy(*p, s, n);
    *p += n;
}

/* Writes v, zero-padded to at least width digits. */
static void put_uint(char **p, uint64_t v, int width)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (n < width)
        tmp[n++] = '0';
    while (n > 0)
        *(*p)++ = tmp[--n];
}

static void put_name(char **p, uint64_t *st)
{
    uint32_t r = pick(st, 1000);
    if (r < 15) {
        put_str(p, other_names[pick(st, COUNT(other_names))]);
    } else if (r < 20) {
        put_str(p, backslash_names[pick(st, COUNT(backslash_names))]);
    } else {
        put_str(p, first_names[pick(st, COUNT(first_names))]);
        *(*p)++ = ' ';
        if (r < 30) {
            *(*p)++ = '"';
            put_str(p, nicknames[pick(st, COUNT(nicknames))]);
            put_str(p, "\" ");
        } else if (r < 130) {
            *(*p)++ = (char)('A' + pick(st, 26));
            put_str(p, ". ");
        }
        put_str(p, last_names[pick(st, COUNT(last_names))]);
        if (r >= 990)
            put_str(p, " Jr.");
    }
}

/* Skewed toward the head of the list, as IMDb's professions are. */
static uint32_t pick_profession(uint64_t *st)
{
    uint32_t r = pick(st, 100);
    if (r < 70)
        return pick(st, 6);
    if (r < 90)
        return 6 + pick(st, 10);
    return pick(st, COUNT(professions));
}

static void put_professions(char **p, uint64_t *st)
{
    uint32_t r = pick(st, 100), n, chosen[3];
    n = r < 6 ? 0 : r < 40 ? 1 : r < 70 ? 2 : 3;
    if (n == 0) {
        /* IMDb writes an empty list as \N; keep a few truly empty fields too */
        if (pick(st, 4) != 0)
            put_str(p, "\\N");
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k;
        int dup;
        do {
            k = pick_profession(st);
            dup = 0;
            for (uint32_t j = 0; j < i; j++)
                dup |= chosen[j] == k;
        } while (dup);
        chosen[i] = k;
        if (i > 0)
            *(*p)++ = ',';
        put_str(p, professions[k]);
    }
}

static void put_titles(char **p, uint64_t *st)
{
    uint32_t r = pick(st, 100);
    uint32_t n = r < 8 ? 0 : r < 18 ? 1 : r < 26 ? 2 : r < 32 ? 3 : 4;
    if (n == 0) {
        put_str(p, "\\N");
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (i > 0)
            *(*p)++ = ',';
        put_str(p, "tt");
        put_uint(p, 1 + pick(st, 9999999), 7);
    }
}

/* Formats data row `id` into p; returns the end. bad: leave out the last field. */
static char *put_row(char *p, uint64_t id, uint64_t *st, int bad)
{
    uint32_t birth = 0, death = 0;

    put_str(&p, "nm");
    put_uint(&p, id, 7);
    *p++ = '\t';
    put_name(&p, st);
    *p++ = '\t';

    if (pick(st, 100) < 78)
        birth = 1870 + pick(st, 141); /* 1870..2010 */
    if (birth > 0 && birth < 1960 && pick(st, 100) < 55)
        death = birth + 18 + pick(st, 80);
    else if (birth == 0 && pick(st, 100) < 3)
        death = 1900 + pick(st, 120);
    if (death > 2024)
        death = 0;

    if (birth > 0)
        put_uint(&p, birth, 4);
    else
        put_str(&p, "\\N");
    *p++ = '\t';
    if (death > 0)
        put_uint(&p, death, 4);
    else
        put_str(&p, "\\N");
    *p++ = '\t';
    put_professions(&p, st);
    if (bad) {
        /* still draw the titles so the rows after this one do not change */
        char scratch[ROW_MAX];
        char *q = scratch;
        put_titles(&q, st);
    } else {
        *p++ = '\t';
        put_titles(&p, st);
    }
    *p++ = '\n';
    return p;
}

static int parse_u64(const char *opt, const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    if (s == NULL || *s == '\0' || *s == '-' || *s == '+') {
        fprintf(stderr, "gen-names: error: %s needs a non-negative integer\n", opt);
        return -1;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        fprintf(stderr, "gen-names: error: invalid value for %s: \"%s\"\n", opt, s);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

static void usage(FILE *f)
{
    fputs("Usage: gen-names [--rows N] [--seed S] [--no-header] [--bad-line L]\n"
          "Writes N (default 1000) rows of IMDb name.basics-like TSV to stdout.\n"
          "The same seed (default 1) always gives the same bytes.\n"
          "  --no-header   leave out the header line\n"
          "  --bad-line L  give output line L (1-based, header included) 5 fields\n",
          f);
}

int main(int argc, char **argv)
{
    static struct out o; /* 1 MiB: keep it off the stack */
    uint64_t rows = 1000, seed = 1, bad_line = 0, line = 0, st;
    int header = 1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--rows") == 0 || strcmp(a, "--seed") == 0 || strcmp(a, "--bad-line") == 0) {
            uint64_t *dst = a[2] == 'r' ? &rows : a[2] == 's' ? &seed : &bad_line;
            if (parse_u64(a, i + 1 < argc ? argv[i + 1] : NULL, dst) != 0)
                return 2;
            i++;
        } else if (strcmp(a, "--no-header") == 0) {
            header = 0;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "gen-names: error: unknown argument \"%s\"\n", a);
            usage(stderr);
            return 2;
        }
    }

    /* mix the seed so that seeds 1, 2, 3... give unrelated streams */
    st = seed;
    st = splitmix64(&st) ^ UINT64_C(0x6E6D2D6E616D6573); /* "nm-names" */

    if (header) {
        line++;
        const char *h = line == bad_line
                            ? "nconst\tprimaryName\tbirthYear\tdeathYear\tprimaryProfession\n"
                            : "nconst\tprimaryName\tbirthYear\tdeathYear\tprimaryProfession\t"
                              "knownForTitles\n";
        size_t n = strlen(h);
        memcpy(o.buf, h, n);
        o.len = n;
    }
    for (uint64_t id = 1; id <= rows; id++) {
        if (OUTBUF_SIZE - o.len < ROW_MAX)
            out_flush(&o);
        line++;
        o.len = (size_t)(put_row(o.buf + o.len, id, &st, line == bad_line) - o.buf);
    }
    out_flush(&o);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "gen-names: error: could not write to stdout: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
