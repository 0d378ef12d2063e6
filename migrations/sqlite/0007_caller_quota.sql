-- How many upcoming active appointments one caller's number may hold in a clinic when a voice
-- agent books (0: no limit).
ALTER TABLE organizations ADD COLUMN max_active_per_caller INTEGER NOT NULL DEFAULT 3
    CHECK (max_active_per_caller >= 0);
