-- Webhooks (Standard Webhooks): a clinic's endpoints, each with the events it wants (empty: all)
-- and its signing secret (kept to sign with; shown once). Their messages go through the outbox,
-- written in the same transaction as the change they announce.
CREATE TABLE webhooks (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    url         text NOT NULL CHECK (length(url) BETWEEN 8 AND 2000),
    events      jsonb NOT NULL DEFAULT '[]',
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX webhooks_org ON webhooks (org_id, created_at, id);

ALTER TABLE webhooks ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhooks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhooks
    USING (org_id = (SELECT current_org())) WITH CHECK (org_id = (SELECT current_org()));
GRANT SELECT, INSERT, DELETE ON webhooks TO booking_app;
