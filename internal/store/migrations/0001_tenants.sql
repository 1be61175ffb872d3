-- Tenants and their Segment write keys. Every tenant-owned table references tenants(id)
-- ON DELETE CASCADE, so deleting a tenant removes all of its data in one statement.
CREATE TABLE tenants (
	id          TEXT PRIMARY KEY,
	name        TEXT NOT NULL,
	token_gen   INTEGER NOT NULL DEFAULT 1, -- bumped to revoke every tenant token at once
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
);
CREATE INDEX tenants_created ON tenants (created_at, id);

CREATE TABLE segment_keys (
	tenant_id        TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
	write_key_enc    BLOB NOT NULL,    -- AES-GCM sealed; never stored or logged in the clear
	write_key_hint   TEXT NOT NULL,
	endpoint         TEXT NOT NULL,
	max_rps          INTEGER NOT NULL,
	version          INTEGER NOT NULL, -- bumped on every change so senders rebuild their client
	updated_at       INTEGER NOT NULL
);
