-- Direction B: Segment Webhooks destinations, the raw messages Segment posted to them, the
-- subscriber profiles and events built from those messages, and the tenant's workflows.
-- Every table references tenants(id) ON DELETE CASCADE: deleting a tenant removes all of it.
CREATE TABLE destinations (
	id          TEXT PRIMARY KEY,
	tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	name        TEXT NOT NULL,
	settings    TEXT NOT NULL,              -- JSON: prefix_events, channel_map, preference_map, channel_policy, require_signature, hold_for_ms
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
);
CREATE INDEX destinations_tenant ON destinations (tenant_id, created_at, id);

-- API key (hashed) and shared secret (sealed: it is needed to verify X-Signature). A rotation
-- gives the current row an expiry 24 h ahead and adds a new current row (expires_at NULL).
CREATE TABLE destination_keys (
	id              INTEGER PRIMARY KEY,
	tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	destination_id  TEXT NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
	api_key_hash    TEXT NOT NULL,
	api_key_hint    TEXT NOT NULL,
	secret_enc      BLOB NOT NULL,
	secret_hint     TEXT NOT NULL,
	expires_at      INTEGER,                -- NULL: current
	created_at      INTEGER NOT NULL
);
CREATE INDEX destination_keys_destination ON destination_keys (destination_id);

-- Every message Segment posted, kept verbatim for replay (SPEC §6.6), with what became of it.
-- A re-sent messageId is recorded as a 'duplicate' row without a body; the partial unique
-- index is the dedupe of SPEC §6.1. A delete call blanks the bodies of the user's earlier
-- messages (erased = 1) so that the raw copy does not outlive the erasure.
CREATE TABLE dest_messages (
	id              INTEGER PRIMARY KEY,
	tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	destination_id  TEXT NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
	message_id      TEXT NOT NULL,          -- Segment's messageId, or "sha256:<hex>" of the raw bytes
	type            TEXT NOT NULL,          -- identify, track, …; '' when unreadable
	distinct_id     TEXT,                   -- userId (or anonymousId for events)
	body            BLOB,                   -- the raw message; NULL for duplicates and erased messages
	status          TEXT NOT NULL,          -- applied | duplicate | ignored
	reason          TEXT,                   -- why it was ignored
	warnings        TEXT,                   -- JSON array of rejected values
	erased          INTEGER NOT NULL DEFAULT 0,
	ts              INTEGER,                -- the message's own timestamp (Unix ms)
	received_at     INTEGER NOT NULL
);
CREATE UNIQUE INDEX dest_messages_dedupe ON dest_messages (destination_id, message_id) WHERE status <> 'duplicate';
CREATE INDEX dest_messages_destination ON dest_messages (destination_id, id);
CREATE INDEX dest_messages_user ON dest_messages (tenant_id, distinct_id);
CREATE INDEX dest_messages_received ON dest_messages (tenant_id, received_at);

-- Subscriber profiles (SPEC §6.3), one per tenant and distinct_id; body is the profile's JSON.
CREATE TABLE profiles (
	tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	distinct_id  TEXT NOT NULL,
	body         BLOB NOT NULL,
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, distinct_id)
) WITHOUT ROWID;
CREATE INDEX profiles_created ON profiles (tenant_id, created_at, distinct_id);

-- The profiles' channel values, for finding a subscriber by email, phone or token. Emails are
-- stored lower-cased here (the profile keeps them as sent).
CREATE TABLE profile_channels (
	tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	distinct_id  TEXT NOT NULL,
	channel      TEXT NOT NULL,             -- $email, $sms, $whatsapp, $slack, $androidpush, $iospush
	value        TEXT NOT NULL,
	PRIMARY KEY (tenant_id, value, channel, distinct_id),
	FOREIGN KEY (tenant_id, distinct_id) REFERENCES profiles (tenant_id, distinct_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX profile_channels_profile ON profile_channels (tenant_id, distinct_id);

-- Events from track, page and screen calls (names already prefixed when the destination says so).
CREATE TABLE user_events (
	id              INTEGER PRIMARY KEY,
	tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	destination_id  TEXT NOT NULL,
	distinct_id     TEXT NOT NULL,
	message_id      TEXT NOT NULL,
	type            TEXT NOT NULL,          -- track | page | screen
	name            TEXT NOT NULL,
	properties      BLOB NOT NULL,          -- JSON object
	ts              INTEGER NOT NULL,       -- event time (Unix ms; received time when the message has none)
	created_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX user_events_message ON user_events (tenant_id, destination_id, message_id);
CREATE INDEX user_events_user ON user_events (tenant_id, distinct_id, ts DESC, id DESC);

-- Event-triggered workflows (SPEC §6.4). The secret signs each POST, so it is sealed, not hashed.
CREATE TABLE workflows (
	id          TEXT PRIMARY KEY,
	tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	name        TEXT NOT NULL,
	event       TEXT NOT NULL,
	url         TEXT NOT NULL,
	secret_enc  BLOB NOT NULL,
	secret_hint TEXT NOT NULL,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
);
CREATE INDEX workflows_tenant ON workflows (tenant_id, created_at, id);
CREATE INDEX workflows_event ON workflows (tenant_id, event);

-- Workflow deliveries name the subscriber they are for, so that an identify can release the
-- ones waiting for it (reason 'waiting_for_user') and a delete can erase them.
ALTER TABLE deliveries ADD COLUMN subject TEXT;
CREATE INDEX deliveries_subject ON deliveries (tenant_id, subject) WHERE subject IS NOT NULL;
