-- A source takes one provider's webhooks: SparkPost (every source so far) or SendGrid.
ALTER TABLE sources ADD COLUMN provider TEXT NOT NULL DEFAULT 'sparkpost';
