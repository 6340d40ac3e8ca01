ALTER TABLE title_ratings ADD PRIMARY KEY (tconst);
