-- examples/imdb/schema.sql: the seven IMDb datasets (https://datasets.imdbws.com/), typed.
--
-- Every import of imdb.manifest runs this file as its --before hook, in its own
-- transaction. The advisory lock makes the seven hooks, which start together, take turns:
-- the first creates every table, the others find them (CREATE TABLE IF NOT EXISTS run
-- concurrently for one name can fail on the catalog's unique index). Columns are named
-- as pgfeed maps IMDb's headers (camelCase -> snake_case), so --header auto maps by name.
--
-- Types: 0/1 flags are boolean, years, counts and numbers integer, ratings numeric(3,1),
-- comma-separated lists text[] (pgfeed splits a field bound for an array column on
-- commas; \N is NULL). Two kinds of value stay text while loading:
--   title_akas.types and .attributes hold several values separated by a comma or by the
--     control character 0x02, and an attribute may itself hold a comma; they load as text
--     and keys/title_akas.sql turns them into text[] once the rows are in.
--   title_principals.characters is a JSON list of strings (["Self"], with \" inside);
--     it is kept as the file has it: characters::jsonb reads it.
-- No foreign keys: IMDb's files refer to titles and names they do not list.

SELECT pg_advisory_xact_lock(hashtext('pgfeed examples/imdb schema'));

CREATE TABLE IF NOT EXISTS name_basics (
    nconst             text NOT NULL,
    primary_name       text,
    birth_year         integer,
    death_year         integer,
    primary_profession text[],
    known_for_titles   text[]
);

CREATE TABLE IF NOT EXISTS title_basics (
    tconst          text NOT NULL,
    title_type      text,
    primary_title   text,
    original_title  text,
    is_adult        boolean,
    start_year      integer,
    end_year        integer,
    runtime_minutes integer,
    genres          text[]
);

CREATE TABLE IF NOT EXISTS title_akas (
    title_id          text NOT NULL,
    ordering          integer NOT NULL,
    title             text,
    region            text,
    language          text,
    types             text,    -- text[] after keys/title_akas.sql
    attributes        text,    -- text[] after keys/title_akas.sql
    is_original_title boolean
);

CREATE TABLE IF NOT EXISTS title_crew (
    tconst    text NOT NULL,
    directors text[],
    writers   text[]
);

CREATE TABLE IF NOT EXISTS title_episode (
    tconst         text NOT NULL,
    parent_tconst  text,
    season_number  integer,
    episode_number integer
);

CREATE TABLE IF NOT EXISTS title_principals (
    tconst     text NOT NULL,
    ordering   integer NOT NULL,
    nconst     text,
    category   text,
    job        text,
    characters text        -- a JSON list as IMDb writes it: characters::jsonb
);

CREATE TABLE IF NOT EXISTS title_ratings (
    tconst         text NOT NULL,
    average_rating numeric(3,1),
    num_votes      integer
);
