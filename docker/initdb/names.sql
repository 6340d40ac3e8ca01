-- docker/initdb/names.sql: run once by the postgres image when its data volume is new
-- (mounted at /docker-entrypoint-initdb.d). The table of scripts/demo.sh, for IMDb's
-- name.basics.tsv.gz; pgfeed maps its header (nconst, primaryName, ...) by position.
CREATE TABLE names (
    nconst varchar(255),
    primary_name varchar(255),
    birth_year varchar(4),
    death_year varchar(4) DEFAULT '',
    primary_professions varchar[],
    known_for_titles varchar[]
);
