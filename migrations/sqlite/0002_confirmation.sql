-- Confirmation links: only the SHA-256 hash of a token is stored, one live token per appointment
-- (rescheduling replaces it).
CREATE TABLE confirmation_tokens (
    token_hash      TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    appointment_id  TEXT NOT NULL UNIQUE,
    expires_at      INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);
