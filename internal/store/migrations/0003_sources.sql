-- Direction A: SparkPost sources, their credentials, the inbox of raw batches and the events
-- parsed out of them.
CREATE TABLE sources (
	id          TEXT PRIMARY KEY,
	tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	name        TEXT NOT NULL,
	auth        TEXT NOT NULL,              -- basic | oauth2
	settings    TEXT NOT NULL,              -- JSON: user_id_keys, anonymous_id, events, forward_initial_opens
	paused      INTEGER NOT NULL DEFAULT 0,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
);
CREATE INDEX sources_tenant ON sources (tenant_id, created_at, id);

-- Basic username/password or OAuth2 client id/secret. A rotation gives the old row an expiry
-- 24 h ahead; the current row has none.
CREATE TABLE source_credentials (
	id           INTEGER PRIMARY KEY,
	source_id    TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
	username     TEXT NOT NULL,             -- basic username or OAuth2 client_id
	secret_hash  TEXT NOT NULL,
	expires_at   INTEGER,                   -- NULL: current
	created_at   INTEGER NOT NULL
);
CREATE INDEX source_credentials_source ON source_credentials (source_id);
CREATE INDEX source_credentials_username ON source_credentials (username);

-- Raw batches exactly as SparkPost posted them, committed before the 200.
CREATE TABLE inbox (
	id            INTEGER PRIMARY KEY,
	tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	source_id     TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
	batch_id      TEXT,                     -- X-MessageSystems-Batch-ID
	body          BLOB NOT NULL,
	received_at   INTEGER NOT NULL,
	processed_at  INTEGER,
	events        INTEGER,                  -- how many events the batch held
	error         TEXT                      -- why the batch as a whole could not be split
);
CREATE UNIQUE INDEX inbox_batch ON inbox (source_id, batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX inbox_unprocessed ON inbox (id) WHERE processed_at IS NULL;

-- One row per SparkPost event, unique per tenant by event_id.
CREATE TABLE email_events (
	id              INTEGER PRIMARY KEY,
	tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	source_id       TEXT NOT NULL,
	inbox_id        INTEGER NOT NULL,
	event_id        TEXT NOT NULL,
	type            TEXT NOT NULL,
	wrapper         TEXT NOT NULL,          -- msys key: message_event, track_event, …
	ts              INTEGER NOT NULL,       -- event time (Unix ms; received time when the event has none)
	recipient       TEXT,
	message_id      TEXT,
	campaign_id     TEXT,
	template_id     TEXT,
	transmission_id TEXT,
	subaccount_id   TEXT,
	bounce_class    TEXT,
	body            BLOB NOT NULL,          -- the event object as received
	status          TEXT NOT NULL,          -- queued (its delivery has the rest) | not_sent | skipped | invalid
	reason          TEXT,
	segment_message_id TEXT
);
CREATE UNIQUE INDEX email_events_event ON email_events (tenant_id, event_id);
CREATE INDEX email_events_ts ON email_events (tenant_id, ts DESC, id DESC);
CREATE INDEX email_events_recipient ON email_events (tenant_id, recipient, ts DESC);
CREATE INDEX email_events_type ON email_events (tenant_id, type, ts DESC);
CREATE INDEX email_events_inbox ON email_events (inbox_id);
