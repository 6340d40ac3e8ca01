ALTER TABLE title_crew ADD PRIMARY KEY (tconst);
