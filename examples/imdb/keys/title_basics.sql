ALTER TABLE title_basics ADD PRIMARY KEY (tconst);
CREATE INDEX title_basics_primary_title_idx ON title_basics (primary_title);
CREATE INDEX title_basics_genres_idx ON title_basics USING gin (genres);
