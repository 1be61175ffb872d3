-- A raw batch's body moves to a table of its own, written once and never updated. In the inbox
-- row it was rewritten whole whenever the row changed size: marking a 1 MB batch processed
-- (processed_at, events and duplicates going from NULL to numbers) copied all of its pages to
-- the WAL, and the checkpoint copied them again, as much as the hook's own insert. The inbox row
-- keeps the body's length for the backlog bound and for retention, filled in once the body is
-- gone from it, so that each body is copied once by this migration and not rewritten in place.
CREATE TABLE inbox_bodies (
	inbox_id INTEGER PRIMARY KEY REFERENCES inbox (id) ON DELETE CASCADE,
	body     BLOB NOT NULL
);
INSERT INTO inbox_bodies (inbox_id, body) SELECT id, body FROM inbox;
ALTER TABLE inbox DROP COLUMN body;
ALTER TABLE inbox ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
UPDATE inbox SET bytes = (SELECT length(body) FROM inbox_bodies WHERE inbox_id = inbox.id);
