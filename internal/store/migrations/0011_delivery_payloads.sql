-- A delivery's payload moves to a table of its own, which claims and outcomes never touch.
-- Claiming a delivery and marking it delivered rewrite its row, and every page a transaction
-- touches goes whole to the WAL (and again to the database file at the checkpoint): with a 1 KB
-- payload in each row a page held three deliveries, so sending a thousand wrote about 670 pages;
-- without it a page holds some thirty.
CREATE TABLE delivery_payloads (
	delivery_id INTEGER PRIMARY KEY REFERENCES deliveries (id) ON DELETE CASCADE,
	payload     BLOB NOT NULL
);
INSERT INTO delivery_payloads (delivery_id, payload) SELECT id, payload FROM deliveries;
ALTER TABLE deliveries DROP COLUMN payload;
