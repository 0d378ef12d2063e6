-- A version per provider, raised by every change (see the PostgreSQL migration).
ALTER TABLE providers ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
