-- The event store of SPEC §5.5: indexes for the Message-Events filters, per-tenant retention,
-- exact total counts that stay cheap on millions of events, and back-fill jobs.

-- How long a tenant's SparkPost events (and the raw batches they came in) are kept.
ALTER TABLE tenants ADD COLUMN retention_days INTEGER NOT NULL DEFAULT 90;

-- One index per filter that narrows a search on its own; a query reads the index of the most
-- selective filter it has (INDEXED BY, see events.go) and checks the others on the rows found,
-- newest first. Partial indexes leave out the events that lack the column (sms_status has no
-- campaign, only bounces have a bounce class), which keeps them small and cheap to maintain. The
-- campaign index carries the type after the time: a campaign alone reads in time order, and
-- campaign + type + day is counted without reading a row. Already there from 0003:
-- (tenant_id, event_id) unique, (tenant_id, ts, id), (tenant_id, recipient, ts), (tenant_id, type, ts).
CREATE INDEX email_events_message ON email_events (tenant_id, message_id) WHERE message_id IS NOT NULL;
CREATE INDEX email_events_campaign ON email_events (tenant_id, campaign_id, ts DESC, type) WHERE campaign_id IS NOT NULL;
CREATE INDEX email_events_template ON email_events (tenant_id, template_id, ts DESC) WHERE template_id IS NOT NULL;
CREATE INDEX email_events_transmission ON email_events (tenant_id, transmission_id, ts DESC) WHERE transmission_id IS NOT NULL;
CREATE INDEX email_events_subaccount ON email_events (tenant_id, subaccount_id, ts DESC) WHERE subaccount_id IS NOT NULL;
CREATE INDEX email_events_bounce_class ON email_events (tenant_id, bounce_class, ts DESC) WHERE bounce_class IS NOT NULL;

-- Retention removes a tenant's old raw batches without reading the whole inbox.
CREATE INDEX inbox_received ON inbox (tenant_id, received_at);

-- Event counts per tenant, hour (ts / 3600000) and type, so that total_count of a search by
-- time and type adds up a few hundred rows instead of counting millions of index entries.
-- The counts cover exactly the events with id <= email_event_counts_state.upto: a background
-- step rolls newer events in (an insert trigger would double the cost of every insert), and the
-- query counts the events above the mark itself. Deletes keep the counts right through the
-- trigger below, which also lowers the mark when the newest events go, so that a reused rowid
-- is never taken for one already counted.
CREATE TABLE email_event_counts (
	tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	hour        INTEGER NOT NULL,
	type        TEXT NOT NULL,
	n           INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, hour, type)
) WITHOUT ROWID;

CREATE TABLE email_event_counts_state (
	id    INTEGER PRIMARY KEY CHECK (id = 1),
	upto  INTEGER NOT NULL
);
INSERT INTO email_event_counts_state (id, upto) VALUES (1, 0);

CREATE TRIGGER email_events_uncount AFTER DELETE ON email_events BEGIN
	UPDATE email_event_counts SET n = n - 1
		WHERE tenant_id = old.tenant_id AND hour = old.ts / 3600000 AND type = old.type
		AND old.id <= (SELECT upto FROM email_event_counts_state WHERE id = 1);
	UPDATE email_event_counts_state SET upto = (SELECT COALESCE(MAX(id), 0) FROM email_events)
		WHERE id = 1 AND upto > (SELECT COALESCE(MAX(id), 0) FROM email_events);
END;

-- Back-fill jobs: pulls of SparkPost's Events API into a source. The API key is never stored;
-- a job lives in the process that started it, and one found running at start-up is marked
-- interrupted. The events a job brought are found through its batches in the inbox
-- (batch_id 'backfill:<job id>:<n>').
CREATE TABLE backfill_jobs (
	id           TEXT PRIMARY KEY,
	tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	source_id    TEXT NOT NULL,
	from_ts      INTEGER NOT NULL,
	to_ts        INTEGER NOT NULL,
	base_url     TEXT NOT NULL,
	forward      INTEGER NOT NULL,
	status       TEXT NOT NULL,             -- running | processing | done | failed | interrupted
	pages        INTEGER NOT NULL DEFAULT 0,
	fetched      INTEGER NOT NULL DEFAULT 0,
	total        INTEGER,                   -- SparkPost's total_count for the window
	retries      INTEGER NOT NULL DEFAULT 0,
	batches      INTEGER NOT NULL DEFAULT 0,
	error        TEXT,
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL,
	finished_at  INTEGER
);
CREATE INDEX backfill_jobs_tenant ON backfill_jobs (tenant_id, created_at);
CREATE INDEX backfill_jobs_running ON backfill_jobs (tenant_id) WHERE status = 'running';

-- Disk space: the database keeps auto_vacuum NONE (it cannot change on an existing file without
-- a full VACUUM). Pruned pages go to SQLite's free list and new rows reuse them, so under steady
-- traffic the file stops growing at about one retention period of data; retention_test.go shows it.
