ALTER TABLE title_episode ADD PRIMARY KEY (tconst);
CREATE INDEX title_episode_parent_idx ON title_episode (parent_tconst, season_number, episode_number);
