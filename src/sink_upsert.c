/*
 * sink_upsert.c -- the SQL of --mode upsert: the key's discovery and checks (and the table of
 * keys seen for --delete-missing) before the first batch, the staging table each connection
 * COPYs into, each batch's merge into the target, and --delete-missing's final DELETE.
 *
 * Only builds command strings; sink_pg.c sends them, reads their results, and decides when
 * a batch may merge (in file order). The checks run as one DO block on the server, which
 * leaves the key's columns in the session setting pgfeed.upsert_key for the SELECT that
 * follows it. A refusal is a server error with SQLSTATE 55000 (or 42703 for a column that
 * does not exist), a message, a detail and a hint.
 *
 * The staging table is pg_temp.pgfeed_stage, made LIKE the target with its NOT NULL and
 * CHECK constraints (NOT NULL dropped on the columns the file does not fill, which the
 * target fills with their defaults), plus pgfeed_ord, an identity column numbering the rows
 * as the COPY stores them: the merge keeps, of the rows sharing a key, the one with the
 * highest number (the lowest with --on-conflict nothing). ON COMMIT DELETE ROWS empties it
 * at each batch's commit.
 */
#include <stdlib.h>
#include <string.h>

#include "sink_internal.h"

#define STAGE "pg_temp.pgfeed_stage"

/* Unique indexes ON CONFLICT can use as arbiter: immediate, valid, no predicate or expression. */
#define ELIGIBLE                                                                                   \
    "i.indrelid = t AND i.indisunique AND i.indimmediate AND i.indisvalid AND i.indpred IS NULL"   \
    " AND i.indexprs IS NULL"
/* The index i's key columns in order. */
#define INDEX_COLS                                                                                 \
    "(SELECT array_agg(a.attname::text ORDER BY x.n) FROM unnest(i.indkey::int2[]) WITH"           \
    " ORDINALITY x(attnum, n) JOIN pg_catalog.pg_attribute a ON a.attrelid = t AND a.attnum ="     \
    " x.attnum WHERE x.n <= i.indnkeyatts)"

/* want NULL: the primary key, else the only eligible unique index. */
static const char find_key[] =
    "IF want IS NULL THEN\n"
    " SELECT " INDEX_COLS " INTO k FROM pg_catalog.pg_index i WHERE i.indrelid = t AND"
    " i.indisprimary;\n"
    " IF k IS NULL THEN\n"
    "  SELECT count(*), string_agg(i.indexrelid::regclass::text, ', ') INTO n, lst FROM"
    " pg_catalog.pg_index i WHERE " ELIGIBLE ";\n"
    "  IF n = 0 THEN RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = format('table %s has no"
    " primary key or unique index', t::regclass), DETAIL = '--mode upsert merges rows by a key,"
    " and INSERT ... ON CONFLICT needs a unique index on exactly its columns.', HINT = 'Add a"
    " primary key or unique index, then name its columns with --key if it is not the primary"
    " key.'; END IF;\n"
    "  IF n > 1 THEN RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = format('table %s has"
    " several unique indexes and no primary key', t::regclass), DETAIL = format('Its unique"
    " indexes: %s.', lst), HINT = 'Choose the key with --key COL[,COL...].'; END IF;\n"
    "  SELECT " INDEX_COLS " INTO k FROM pg_catalog.pg_index i WHERE " ELIGIBLE ";\n"
    " END IF;\n"
    "ELSE\n"
    " SELECT string_agg(quote_ident(w), ', ') INTO lst FROM unnest(want) w WHERE NOT EXISTS"
    " (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = t AND a.attname = w AND"
    " a.attnum > 0 AND NOT a.attisdropped);\n"
    " IF lst IS NOT NULL THEN RAISE EXCEPTION USING ERRCODE = '42703', MESSAGE = format('key"
    " column %s of table %s does not exist', lst, t::regclass), HINT = 'Check --key: name the"
    " columns as the table spells them.'; END IF;\n"
    " IF NOT EXISTS (SELECT FROM pg_catalog.pg_index i WHERE " ELIGIBLE " AND i.indnkeyatts ="
    " cardinality(want) AND (SELECT array_agg(ic ORDER BY ic) FROM unnest(" INDEX_COLS ") ic) ="
    " (SELECT array_agg(DISTINCT w ORDER BY w) FROM unnest(want) w)) THEN RAISE EXCEPTION USING"
    " ERRCODE = '55000', MESSAGE = format('no unique index of table %s is on exactly (%s)',"
    " t::regclass, array_to_string(want, ', ')), DETAIL = '--mode upsert merges with INSERT ..."
    " ON CONFLICT, which needs a unique index or constraint (not deferrable, not partial) on"
    " exactly the key''s columns.', HINT = format('Create one (CREATE UNIQUE INDEX ON %s (%s)),"
    " or name the columns of an existing one with --key.', t::regclass, array_to_string(want,"
    " ', ')); END IF;\n"
    " k := want;\n"
    "END IF;\n";

/* --delete-missing: the table of keys seen, made fresh or found again (resume). */
static const char make_keys[] =
    "IF dm THEN\n"
    " IF octet_length(c.relname) > 51 THEN RAISE EXCEPTION USING ERRCODE = '55000',"
    " MESSAGE = format('table name %s is too long for --delete-missing', c.relname),"
    " DETAIL = 'The table of keys seen adds _pgfeed_keys to it, and names have at most 63"
    " bytes.', HINT = 'Rename the table, or leave out --delete-missing.'; END IF;\n"
    " IF dropold THEN EXECUTE 'DROP TABLE IF EXISTS ' || keys; END IF;\n"
    " IF resume AND to_regclass(keys) IS NULL THEN RAISE EXCEPTION USING ERRCODE = '55000',"
    " MESSAGE = format('cannot resume: table %s is gone', keys), DETAIL = 'The interrupted"
    " --delete-missing import kept the keys it had merged in it.', HINT = 'Use --restart to"
    " start the import over.'; END IF;\n"
    " IF NOT resume AND to_regclass(keys) IS NOT NULL THEN RAISE EXCEPTION USING ERRCODE ="
    " '55000', MESSAGE = format('table %s is left from an earlier --delete-missing import',"
    " keys), DETAIL = 'It holds the keys of an import that did not finish, or of one still"
    " running.', HINT = 'Run again with --resume to continue that import, or with --restart to"
    " drop the table and start over (without checkpoints: drop it yourself).'; END IF;\n"
    " IF NOT resume THEN EXECUTE format('CREATE TABLE %s AS SELECT %s FROM %s WITH NO DATA',"
    " keys, (SELECT string_agg(quote_ident(x), ', ') FROM unnest(k) x), t::regclass); END IF;\n"
    "END IF;\n";

/* The key's columns, comma-separated, as an SQL text[] literal ('{"a","b"}'), or NULL. */
static char *want_literal(PGconn *conn, const char *key)
{
    struct pgfeed_buf b = {0};
    int bad = pgfeed__buf_append(&b, "{", 1);
    for (const char *p = key; *p && !bad;) {
        size_t n = strcspn(p, ",");
        size_t a = 0, z = n;
        while (a < z && p[a] == ' ')
            a++;
        while (z > a && p[z - 1] == ' ')
            z--;
        bad |= pgfeed__buf_append(&b, p == key ? "\"" : ",\"", p == key ? 1 : 2);
        for (size_t i = a; i < z && !bad; i++)
            bad |= (p[i] == '"' || p[i] == '\\' ? pgfeed__buf_append(&b, "\\", 1) : 0) |
                   pgfeed__buf_append(&b, p + i, 1);
        bad |= pgfeed__buf_append(&b, "\"", 1);
        p += n + (p[n] == ',');
    }
    bad |= pgfeed__buf_append(&b, "}", 2);
    char *lit = bad ? NULL : PQescapeLiteral(conn, b.data, strlen(b.data));
    pgfeed__buf_free(&b);
    if (lit == NULL)
        return NULL;
    char *out = pgfeed__strdup_printf("%s::text[]", lit);
    PQfreemem(lit);
    return out;
}

char *pgfeed__upsert_sql_prepare(PGconn *conn, const char *table, const char *key,
                                 int delete_missing, int resume, int drop_old)
{
    if (strstr(table, "$pgfeed$") || (key && strstr(key, "$pgfeed$")))
        return NULL;
    char *lit = PQescapeLiteral(conn, table, strlen(table));
    char *want = key ? want_literal(conn, key) : strdup("NULL::text[]");
    char *sql = NULL;
    if (lit && want)
        sql = pgfeed__strdup_printf(
            "DO $pgfeed$ DECLARE t oid := %s::regclass; want text[] := %s; dm bool := %s;"
            " resume bool := %s; dropold bool := %s; c pg_catalog.pg_class; keys text;"
            " k text[]; n bigint; lst text;\n"
            "BEGIN\n"
            "SELECT * INTO c FROM pg_catalog.pg_class WHERE oid = t;\n"
            "SELECT quote_ident(s.nspname) || '.' || quote_ident(c.relname || '_pgfeed_keys')"
            " INTO keys FROM pg_catalog.pg_namespace s WHERE s.oid = c.relnamespace;\n"
            "%s%s"
            "PERFORM set_config('pgfeed.upsert_key', k::text, false);\n"
            "END $pgfeed$; SELECT x, (SELECT format('%%I.%%I', s.nspname, c.relname ||"
            " '_pgfeed_keys') FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace s ON s.oid"
            " = c.relnamespace WHERE c.oid = %s::regclass) FROM"
            " unnest(current_setting('pgfeed.upsert_key')::text[]) x",
            lit, want, delete_missing ? "true" : "false", resume ? "true" : "false",
            drop_old ? "true" : "false", find_key, make_keys, lit);
    PQfreemem(lit);
    free(want);
    return sql;
}

/* "a, b, c" from names, each quoted as an identifier (prefix before each, e.g. "EXCLUDED."). */
static int append_names(PGconn *conn, struct pgfeed_buf *b, char *const *names, size_t n,
                        const char *prefix)
{
    int bad = 0;
    for (size_t i = 0; i < n && !bad; i++) {
        char *q = PQescapeIdentifier(conn, names[i], strlen(names[i]));
        if (q == NULL)
            return UV_ENOMEM;
        bad |= (i ? pgfeed__buf_append(b, ", ", 2) : 0) |
               pgfeed__buf_append(b, prefix, strlen(prefix)) | pgfeed__buf_append(b, q, strlen(q));
        PQfreemem(q);
    }
    return bad ? UV_ENOMEM : 0;
}

static int append_str(struct pgfeed_buf *b, const char *s)
{
    return pgfeed__buf_append(b, s, strlen(s));
}

char *pgfeed__upsert_sql_stage(PGconn *conn, const char *table, char *const *cols, size_t ncols)
{
    struct pgfeed_buf names = {0};
    int bad = append_str(&names, "{");
    for (size_t i = 0; i < ncols && !bad; i++) {
        bad |= append_str(&names, i ? ",\"" : "\"");
        for (const char *p = cols[i]; *p && !bad; p++)
            bad |= (*p == '"' || *p == '\\' ? append_str(&names, "\\") : 0) |
                   pgfeed__buf_append(&names, p, 1);
        bad |= append_str(&names, "\"");
    }
    bad |= pgfeed__buf_append(&names, "}", 2);
    char *lit = bad ? NULL : PQescapeLiteral(conn, names.data, strlen(names.data));
    char *tab = PQescapeLiteral(conn, table, strlen(table));
    char *sql = NULL;
    if (lit && tab && !strstr(table, "$pgfeed$"))
        sql = pgfeed__strdup_printf(
            "DO $pgfeed$ DECLARE r record; BEGIN IF to_regclass('" STAGE "') IS NULL THEN"
            " EXECUTE format('CREATE TEMP TABLE pgfeed_stage (LIKE %%s INCLUDING CONSTRAINTS,"
            " pgfeed_ord bigint GENERATED ALWAYS AS IDENTITY (CACHE 10000)) ON COMMIT DELETE"
            " ROWS', %s::regclass);"
            " FOR r IN SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = '" STAGE
            "'::regclass AND attnum > 0 AND attnotnull AND attname <> 'pgfeed_ord' AND attname"
            " <> ALL (%s::text[]) LOOP EXECUTE format('ALTER TABLE " STAGE " ALTER %%I DROP NOT"
            " NULL', r.attname); END LOOP; END IF; END $pgfeed$; COPY " STAGE " (",
            tab, lit);
    PQfreemem(lit);
    PQfreemem(tab);
    pgfeed__buf_free(&names);
    return sql;
}

/*
 * One batch's merge: the last row of each key in the stage (the first with nothing) into
 * the target, and with delete_missing their keys into the table of keys seen. A row equal
 * to the one there (compared as text, which every type has: a conservative test that may
 * update an equal row, never skip a changed one) is left alone, so a refresh of a table
 * that mostly holds the file already writes little -- unless !compare: Citus refuses that
 * test (a row's text form is not IMMUTABLE), and every row whose key is there is written.
 * Its one row: the rows inserted, the rows updated, and the keys merged.
 */
char *pgfeed__upsert_sql_merge(PGconn *conn, const char *table, const char *keys_table,
                               char *const *cols, size_t ncols, char *const *key, size_t nkey,
                               int nothing, int compare)
{
    struct pgfeed_buf b = {0};
    char **rest = calloc(ncols ? ncols : 1, sizeof *rest);
    size_t nrest = 0;
    for (size_t i = 0; rest && i < ncols; i++) {
        int in_key = 0;
        for (size_t j = 0; j < nkey; j++)
            in_key |= strcmp(cols[i], key[j]) == 0;
        if (!in_key)
            rest[nrest++] = cols[i];
    }
    int bad = rest == NULL;
    bad |= append_str(&b, "WITH d AS (SELECT DISTINCT ON (") |
           append_names(conn, &b, key, nkey, "") | append_str(&b, ") ") |
           append_names(conn, &b, cols, ncols, "") | append_str(&b, " FROM " STAGE " ORDER BY ") |
           append_names(conn, &b, key, nkey, "") |
           append_str(&b, nothing ? ", pgfeed_ord), m AS (INSERT INTO "
                                  : ", pgfeed_ord DESC), m AS (INSERT INTO ") |
           append_str(&b, table) | append_str(&b, " AS t (") |
           append_names(conn, &b, cols, ncols, "") | append_str(&b, ") SELECT ") |
           append_names(conn, &b, cols, ncols, "") | append_str(&b, " FROM d ON CONFLICT (") |
           append_names(conn, &b, key, nkey, "");
    if (nothing || nrest == 0)
        bad |= append_str(&b, ") DO NOTHING");
    else
        bad |= append_str(&b, ") DO UPDATE SET (") | append_names(conn, &b, rest, nrest, "") |
               append_str(&b, ") = ROW(") | append_names(conn, &b, rest, nrest, "EXCLUDED.") |
               append_str(&b, ")");
    if (!nothing && nrest > 0 && compare)
        bad |= append_str(&b, " WHERE ROW(") | append_names(conn, &b, rest, nrest, "t.") |
               append_str(&b, ")::text IS DISTINCT FROM ROW(") |
               append_names(conn, &b, rest, nrest, "EXCLUDED.") | append_str(&b, ")::text");
    bad |= append_str(&b, " RETURNING t.xmax = 0 AS ins)");
    if (keys_table)
        bad |= append_str(&b, ", s AS (INSERT INTO ") | append_str(&b, keys_table) |
               append_str(&b, " SELECT ") | append_names(conn, &b, key, nkey, "") |
               append_str(&b, " FROM d)");
    bad |= append_str(&b, " SELECT count(*) FILTER (WHERE ins), count(*) FILTER (WHERE NOT ins),"
                          " (SELECT count(*) FROM d) FROM m") |
           pgfeed__buf_append(&b, "", 1);
    free(rest);
    if (bad) {
        pgfeed__buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* --delete-missing, in the final transaction: its one row is the rows deleted. */
char *pgfeed__upsert_sql_delete(PGconn *conn, const char *table, const char *keys_table,
                                char *const *key, size_t nkey)
{
    struct pgfeed_buf b = {0};
    int bad = append_str(&b, "WITH d AS (DELETE FROM ") | append_str(&b, table) |
              append_str(&b, " AS t WHERE ");
    for (size_t i = 0; i < nkey && !bad; i++)
        bad |= (i ? append_str(&b, " AND ") : 0) | append_names(conn, &b, key + i, 1, "t.") |
               append_str(&b, " IS NOT NULL");
    bad |= append_str(&b, " AND NOT EXISTS (SELECT FROM ") | append_str(&b, keys_table) |
           append_str(&b, " s WHERE ");
    for (size_t i = 0; i < nkey && !bad; i++)
        bad |= (i ? append_str(&b, " AND ") : 0) | append_names(conn, &b, key + i, 1, "s.") |
               append_str(&b, " = ") | append_names(conn, &b, key + i, 1, "t.");
    bad |= append_str(&b, ") RETURNING 1) SELECT count(*) FROM d; DROP TABLE ") |
           append_str(&b, keys_table);
    bad |= pgfeed__buf_append(&b, "", 1);
    if (bad) {
        pgfeed__buf_free(&b);
        return NULL;
    }
    return b.data;
}
