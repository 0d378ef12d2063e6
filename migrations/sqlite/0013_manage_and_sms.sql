-- The patient's manage link and SMS opt-outs; see the PostgreSQL migration.
CREATE TABLE manage_links (
    token_hash      TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    appointment_id  TEXT NOT NULL UNIQUE,
    nonce           TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);

CREATE INDEX outbox_appointment ON outbox (appointment_id) WHERE sent_at IS NULL AND dead_at IS NULL;

CREATE TABLE sms_opt_outs (
    sender      TEXT NOT NULL CHECK (length(sender) BETWEEN 2 AND 20),
    phone       TEXT NOT NULL CHECK (length(phone) BETWEEN 2 AND 20),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (sender, phone)
);
