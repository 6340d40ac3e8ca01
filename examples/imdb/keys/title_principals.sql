ALTER TABLE title_principals ADD PRIMARY KEY (tconst, ordering);
CREATE INDEX title_principals_nconst_idx ON title_principals (nconst);
