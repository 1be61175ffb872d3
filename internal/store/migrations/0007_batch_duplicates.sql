-- A batch receipt tells how many of the batch's events were already stored: SparkPost re-sends
-- events, and its own sample files reuse one event_id, so without this count a batch of 19 that
-- stored 2 looks like 17 events lost. An event is a duplicate when its event_id was stored
-- before, by an earlier batch or earlier in the same batch (the first one stays, once).
ALTER TABLE inbox ADD COLUMN duplicates INTEGER;

-- Batches processed before this column existed: every event of a batch either got a row with
-- the batch's inbox_id or was a duplicate, so the difference is the count. Retention prunes an
-- event only once its batch is past the cutoff too, so a batch still listed has all its events
-- unless it is about to go itself; MAX keeps such a batch from showing a negative count. Batches
-- not yet processed stay NULL and get their count when they are processed.
UPDATE inbox SET duplicates = MAX(0, COALESCE(events, 0) - (SELECT COUNT(*) FROM email_events e WHERE e.inbox_id = inbox.id))
	WHERE processed_at IS NOT NULL;
