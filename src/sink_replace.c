/*
 * sink_replace.c -- the SQL of --mode replace: the shadow table's checks and creation
 * before the first batch, and the index build and swap when every row is in.
 *
 * Only builds command strings (each a DO block run by the server, so the checks, the
 * names and the order of the steps live in one place and run atomically); sink_pg.c
 * sends them on its first connection and reads their results. The shadow is
 * <table>_pgfeed_new in the target's schema, the old table during the swap
 * <table>_pgfeed_old. A refusal is a server error with SQLSTATE 55000, a message, a
 * detail naming what is in the way, and a hint. A Citus table is refused (the shadow would
 * be a plain table on the coordinator); Citus's catalog is read only where it exists.
 */
#include <stdlib.h>
#include <string.h>

#include "sink_internal.h"

/* What every block declares, then finds first: the target's row, the shadow's and old names. */
static const char decl[] =
    "c pg_catalog.pg_class; nsp text; shadow text; old text; lst text; s oid; r record;"
    " def text; pre text; oids oid[]; names text[];\n";
static const char head[] = "BEGIN\n"
                           "SELECT * INTO c FROM pg_catalog.pg_class WHERE oid = t;\n"
                           "SELECT quote_ident(n.nspname) INTO nsp FROM pg_catalog.pg_namespace n"
                           " WHERE n.oid = c.relnamespace;\n"
                           "shadow := nsp || '.' || quote_ident(c.relname || '_pgfeed_new');\n"
                           "old := nsp || '.' || quote_ident(c.relname || '_pgfeed_old');\n";

/* What would break or be lost in a swap: refused before anything is loaded. */
static const char checks[] =
    "IF octet_length(c.relname) > 51 THEN RAISE EXCEPTION USING ERRCODE = '55000',"
    " MESSAGE = format('table name %s is too long for --mode replace', c.relname),"
    " DETAIL = 'The shadow table''s name adds _pgfeed_new to it, and names have at most 63"
    " bytes.', HINT = 'Rename the table, or use --mode append.'; END IF;\n"
    "IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN EXECUTE 'SELECT CASE"
    " partmethod WHEN ''h'' THEN ''distributed'' ELSE ''reference or local'' END FROM"
    " pg_catalog.pg_dist_partition WHERE logicalrelid = $1' INTO lst USING t; END IF;\n"
    "IF lst IS NOT NULL THEN RAISE EXCEPTION USING ERRCODE = '55000',"
    " MESSAGE = format('table %s cannot be replaced: it is a Citus %s table', t::regclass, lst),"
    " DETAIL = '--mode replace loads a new table and swaps it in; on Citus the new table would"
    " be a plain table on the coordinator, not distributed like the old one.',"
    " HINT = 'Use --mode append (with --truncate to empty the table first), or load a"
    " distributed table of your own and swap it in yourself.'; END IF;\n"
    "lst := CASE WHEN c.relkind = 'p' THEN 'it is partitioned'"
    " WHEN c.relispartition THEN 'it is a partition'"
    " WHEN c.relkind <> 'r' THEN 'it is not a plain table'"
    " WHEN EXISTS (SELECT FROM pg_catalog.pg_inherits WHERE inhrelid = t OR inhparent = t)"
    " THEN 'it has an inheritance parent or children'"
    " WHEN c.relrowsecurity THEN 'it has row level security' END;\n"
    "IF lst IS NULL THEN SELECT 'these views depend on it: ' || string_agg(DISTINCT"
    " w.ev_class::regclass::text, ', ') INTO lst FROM pg_catalog.pg_depend d JOIN"
    " pg_catalog.pg_rewrite w ON w.oid = d.objid WHERE d.classid = 'pg_rewrite'::regclass"
    " AND d.refclassid = 'pg_class'::regclass AND d.refobjid = t AND w.ev_class <> t; END IF;\n"
    "IF lst IS NULL THEN SELECT 'these foreign keys point at it: ' || string_agg(format("
    "'%s on %s', conname, conrelid::regclass), ', ') INTO lst FROM pg_catalog.pg_constraint"
    " WHERE contype = 'f' AND confrelid = t; END IF;\n"
    "IF lst IS NULL THEN SELECT 'it has these triggers: ' || string_agg(tgname, ', ') INTO lst"
    " FROM pg_catalog.pg_trigger WHERE tgrelid = t AND NOT tgisinternal; END IF;\n"
    "IF lst IS NULL THEN SELECT 'it has these rules: ' || string_agg(rulename, ', ') INTO lst"
    " FROM pg_catalog.pg_rewrite WHERE ev_class = t; END IF;\n"
    "IF lst IS NULL THEN SELECT 'it has these exclusion constraints: ' || string_agg(conname,"
    " ', ') INTO lst FROM pg_catalog.pg_constraint WHERE contype = 'x' AND conrelid = t; END IF;\n"
    "IF lst IS NOT NULL THEN RAISE EXCEPTION USING ERRCODE = '55000',"
    " MESSAGE = format('table %s cannot be replaced: %s', t::regclass, lst),"
    " DETAIL = '--mode replace loads a new table and swaps it in; what depends on the old"
    " table, or is not copied to the new one, would break or be lost.',"
    " HINT = 'Use --mode append (with --truncate to empty the table first), or remove what is"
    " in the way.'; END IF;\n";

/* A fresh import: no leftover shadow (dropped with --restart), then the shadow itself. */
static const char create[] =
    "IF restart THEN EXECUTE 'DROP TABLE IF EXISTS ' || shadow; END IF;\n"
    "IF to_regclass(shadow) IS NOT NULL THEN RAISE EXCEPTION USING ERRCODE = '55000',"
    " MESSAGE = format('table %s is left from an earlier --mode replace import', shadow),"
    " DETAIL = 'It holds the rows of an import that did not finish, or of one still running.',"
    " HINT = 'Run again with --resume to continue that import, or with --restart to drop the"
    " table and start over (without checkpoints: drop it yourself).'; END IF;\n"
    "IF keep AND to_regclass(old) IS NOT NULL THEN RAISE EXCEPTION USING ERRCODE = '55000',"
    " MESSAGE = format('table %s already exists', old), DETAIL = '--keep-old keeps the old"
    " rows under that name.', HINT = 'Drop or rename it first.'; END IF;\n"
    "EXECUTE format('CREATE %sTABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
    " INCLUDING GENERATED INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMMENTS)%s%s',"
    " CASE c.relpersistence WHEN 'u' THEN 'UNLOGGED ' ELSE '' END, shadow, t::regclass,"
    " ' WITH (' || array_to_string(c.reloptions, ', ') || ')',"
    " (SELECT ' TABLESPACE ' || quote_ident(spcname) FROM pg_catalog.pg_tablespace"
    " WHERE oid = c.reltablespace));\n"
    "IF c.relowner <> (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN"
    " EXECUTE format('ALTER TABLE %s OWNER TO %I', shadow, pg_catalog.pg_get_userbyid("
    "c.relowner)); END IF;\n";

/* A resume: the shadow the interrupted import loaded must still be there. */
static const char reuse[] =
    "IF to_regclass(shadow) IS NULL THEN RAISE EXCEPTION USING ERRCODE = '55000',"
    " MESSAGE = format('cannot resume: table %s is gone', shadow), DETAIL = 'The interrupted"
    " --mode replace import loaded its rows into it.', HINT = 'Use --restart to start the"
    " import over.'; END IF;\n";

/*
 * The swap. Before the lock: the target's indexes built on the shadow under temporary
 * names (pgfeed_new_<oid>), its primary key and unique constraints added on them, its
 * foreign keys to other tables added again, statistics gathered. Then: the lock, the
 * serial sequences handed over, the renames, the old table dropped (or its indexes
 * renamed out of the way), the indexes given the old names, grants and comment again.
 */
static const char swap[] =
    "s := to_regclass(shadow);\n"
    "IF s IS NULL THEN RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = format('table %s"
    " is gone', shadow), HINT = 'Use --restart to import again.'; END IF;\n"
    "FOR r IN SELECT i.indexrelid, i.indisunique, x.relname, k.contype, k.condeferrable,"
    " k.condeferred FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class x ON x.oid ="
    " i.indexrelid LEFT JOIN pg_catalog.pg_constraint k ON k.conindid = i.indexrelid AND"
    " k.conrelid = t AND k.contype IN ('p', 'u') WHERE i.indrelid = t ORDER BY 1 LOOP\n"
    " def := pg_catalog.pg_get_indexdef(r.indexrelid);\n"
    " pre := 'CREATE ' || CASE WHEN r.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX ' ||"
    " quote_ident(r.relname) || ' ON ' || nsp || '.' || quote_ident(c.relname) || ' ';\n"
    " IF left(def, length(pre)) <> pre THEN RAISE EXCEPTION USING ERRCODE = '55000',"
    " MESSAGE = format('cannot copy index %s: %s', r.relname, def); END IF;\n"
    " EXECUTE 'CREATE ' || CASE WHEN r.indisunique THEN 'UNIQUE ' ELSE '' END ||"
    " 'INDEX pgfeed_new_' || r.indexrelid || ' ON ' || shadow || ' ' ||"
    " substr(def, length(pre) + 1);\n"
    " IF r.contype IS NOT NULL THEN EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s USING"
    " INDEX %I%s%s', shadow, 'pgfeed_new_' || r.indexrelid, CASE r.contype WHEN 'p' THEN"
    " 'PRIMARY KEY' ELSE 'UNIQUE' END, 'pgfeed_new_' || r.indexrelid, CASE WHEN"
    " r.condeferrable THEN ' DEFERRABLE' ELSE '' END, CASE WHEN r.condeferred THEN"
    " ' INITIALLY DEFERRED' ELSE '' END); END IF;\n"
    "END LOOP;\n"
    "FOR r IN SELECT conname, oid FROM pg_catalog.pg_constraint WHERE conrelid = t AND"
    " contype = 'f' LOOP EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', shadow,"
    " r.conname, pg_catalog.pg_get_constraintdef(r.oid)); END LOOP;\n"
    "EXECUTE 'ANALYZE ' || shadow;\n"
    "lst := pg_catalog.obj_description(t, 'pg_class');\n"
    "EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', t::regclass);\n"
    "FOR r IN SELECT d.objid, a.attname FROM pg_catalog.pg_depend d JOIN"
    " pg_catalog.pg_attribute a ON a.attrelid = t AND a.attnum = d.refobjsubid WHERE d.classid"
    " = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = t AND"
    " d.deptype = 'a' AND (SELECT relkind FROM pg_catalog.pg_class WHERE oid = d.objid) = 'S'"
    " LOOP EXECUTE format('ALTER SEQUENCE %s OWNED BY %s.%I', r.objid::regclass, shadow,"
    " r.attname); END LOOP;\n"
    "EXECUTE format('ALTER TABLE %s RENAME TO %I', t::regclass, c.relname || '_pgfeed_old');\n"
    "EXECUTE format('ALTER TABLE %s RENAME TO %I', shadow, c.relname);\n"
    "SELECT array_agg(i.indexrelid ORDER BY 1), array_agg(x.relname ORDER BY 1) INTO oids,"
    " names FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class x ON x.oid = i.indexrelid"
    " WHERE i.indrelid = t;\n"
    "FOR i IN 1 .. coalesce(array_length(oids, 1), 0) LOOP\n"
    " IF keep THEN EXECUTE format('ALTER INDEX %s.%I RENAME TO %I', nsp, names[i],"
    " 'pgfeed_old_' || oids[i]); END IF;\n"
    "END LOOP;\n"
    "IF NOT keep THEN EXECUTE 'DROP TABLE ' || old; END IF;\n"
    "FOR i IN 1 .. coalesce(array_length(oids, 1), 0) LOOP\n"
    " EXECUTE format('ALTER INDEX %s.%I RENAME TO %I', nsp, 'pgfeed_new_' || oids[i],"
    " names[i]);\n"
    "END LOOP;\n"
    "FOR r IN SELECT a.privilege_type, a.is_grantable, a.grantee FROM aclexplode(c.relacl) a"
    " LOOP EXECUTE format('GRANT %s ON %s.%I TO %s%s', r.privilege_type, nsp, c.relname,"
    " CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_catalog.pg_get_userbyid("
    "r.grantee)) END, CASE WHEN r.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);"
    " END LOOP;\n"
    "EXECUTE format('COMMENT ON TABLE %s.%I IS %L', nsp, c.relname,"
    " lst);\n";

/* "DO $pgfeed$ DECLARE t oid := '<table>'::regclass; <vars> <decl> <head> <body> END". */
static char *block(PGconn *conn, const char *table, const char *vars, const char *body1,
                   const char *body2)
{
    if (strstr(table, "$pgfeed$"))
        return NULL;
    char *lit = PQescapeLiteral(conn, table, strlen(table));
    if (lit == NULL)
        return NULL;
    char *sql = pgfeed__strdup_printf("DO $pgfeed$ DECLARE t oid := %s::regclass; %s%s%s%s%s"
                                      "END $pgfeed$",
                                      lit, vars, decl, head, body1, body2);
    PQfreemem(lit);
    return sql;
}

char *pgfeed__replace_sql_prepare(PGconn *conn, const char *table, int resume, int restart,
                                  int keep_old)
{
    char vars[64];
    snprintf(vars, sizeof vars, "restart bool := %s; keep bool := %s; ", restart ? "true" : "false",
             keep_old ? "true" : "false");
    return block(conn, table, vars, checks, resume ? reuse : create);
}

char *pgfeed__replace_sql_swap(PGconn *conn, const char *table, int keep_old)
{
    return block(conn, table, keep_old ? "keep bool := true; " : "keep bool := false; ", swap, "");
}
