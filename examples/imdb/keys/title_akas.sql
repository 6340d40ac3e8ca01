-- types and attributes: several values separated by 0x02 or by commas. A value that holds
-- 0x02 is split on it only (an attribute may contain a comma), any other on commas. One
-- ALTER TABLE rewrites the table once for both columns.
ALTER TABLE title_akas
    ALTER COLUMN types TYPE text[] USING
        CASE WHEN strpos(types, chr(2)) > 0 THEN string_to_array(types, chr(2))
             ELSE string_to_array(types, ',') END,
    ALTER COLUMN attributes TYPE text[] USING
        CASE WHEN strpos(attributes, chr(2)) > 0 THEN string_to_array(attributes, chr(2))
             ELSE string_to_array(attributes, ',') END;
ALTER TABLE title_akas ADD PRIMARY KEY (title_id, ordering);
