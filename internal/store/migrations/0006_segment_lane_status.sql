-- A tenant's Segment lane can be paused by Segment itself: a 401/403 means the write key was
-- rejected, and nothing more is sent with it until the key is replaced or a retry is asked for.
-- status_since says since when, status_reason what Segment answered.
ALTER TABLE segment_keys ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
ALTER TABLE segment_keys ADD COLUMN status_since INTEGER;
ALTER TABLE segment_keys ADD COLUMN status_reason TEXT;
