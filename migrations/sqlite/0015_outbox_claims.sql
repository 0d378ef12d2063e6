-- How many times each message was claimed; see the PostgreSQL migration.
ALTER TABLE outbox ADD COLUMN claims INTEGER NOT NULL DEFAULT 0;
