-- The outbox shared by both directions: one row per outbound message (to Segment, or to a
-- workflow URL) with its attempts and status. The row is the source of truth: a delivery is
-- 'delivered' only once the receiver said so, and every other row is tried again until it
-- expires and becomes 'dead' (visible, re-queueable).
CREATE TABLE deliveries (
	id            INTEGER PRIMARY KEY,
	tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	target        TEXT NOT NULL,              -- 'segment' | 'workflow'
	origin_id     TEXT NOT NULL,              -- source id (segment) or workflow id
	ref_id        INTEGER,                    -- the row that caused it (email_events.id, …)
	message_id    TEXT NOT NULL,              -- the receiver's idempotency key
	payload       BLOB NOT NULL,              -- the outbound message, JSON
	status        TEXT NOT NULL,              -- pending | sending | delivered | dead | paused
	reason        TEXT,                       -- why a pending row waits (no_write_key, …)
	attempts      INTEGER NOT NULL DEFAULT 0,
	next_at       INTEGER NOT NULL,           -- not before (Unix ms)
	expires_at    INTEGER NOT NULL,           -- retried until then, then dead
	last_error    TEXT,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL,
	delivered_at  INTEGER
);
-- Claiming: the due rows of one tenant and target, oldest first.
CREATE INDEX deliveries_due ON deliveries (target, tenant_id, next_at) WHERE status = 'pending';
-- Listing and filtering in the admin API.
CREATE INDEX deliveries_tenant ON deliveries (tenant_id, target, status, id);
CREATE INDEX deliveries_origin ON deliveries (origin_id, status);
CREATE INDEX deliveries_ref ON deliveries (ref_id);
