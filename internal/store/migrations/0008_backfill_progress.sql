-- A back-fill job shows its progress while it runs: pages, fetched and retries are written after
-- every page and every retry, and with them the last error SparkPost (or the network) gave and
-- when, so that a job retrying a page says why instead of looking stuck.
ALTER TABLE backfill_jobs ADD COLUMN last_error TEXT;
ALTER TABLE backfill_jobs ADD COLUMN last_error_at INTEGER;

-- Jobs that failed before: the error they failed with is the last one they saw.
UPDATE backfill_jobs SET last_error = error, last_error_at = COALESCE(finished_at, updated_at)
	WHERE status = 'failed' AND error IS NOT NULL;
