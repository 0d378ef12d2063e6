-- Webhooks (Standard Webhooks); see the PostgreSQL migration.
CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    url         TEXT NOT NULL CHECK (length(url) BETWEEN 8 AND 2000),
    events      TEXT NOT NULL DEFAULT '[]',
    secret      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX webhooks_org ON webhooks (org_id, created_at, id);
