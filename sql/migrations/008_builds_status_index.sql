-- 008_builds_status_index.sql - builds_status_times for databases that
-- applied 006 before the index was added to it (006 was amended after it
-- had landed; a landed migration is never edited again, this is the fix).
CREATE INDEX IF NOT EXISTS builds_status_times
	ON builds (status, started_at, finished_at);
