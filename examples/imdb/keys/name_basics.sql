-- After name.basics is in: its key, and an index for looking people up by name.
ALTER TABLE name_basics ADD PRIMARY KEY (nconst);
CREATE INDEX name_basics_primary_name_idx ON name_basics (primary_name);
