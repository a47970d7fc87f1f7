-- Webhooks: a domain's events POSTed in order, the position (cursor: the last event id
-- delivered) kept here, so nothing is lost across restarts. Keep in lockstep with provisor-store-postgres.
CREATE TABLE webhooks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id       BIGINT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    secret_enc      BLOB NOT NULL,
    created_at      BIGINT NOT NULL,
    created_by      TEXT NOT NULL,
    cursor          BIGINT NOT NULL,
    failures        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX webhooks_due ON webhooks (next_attempt_at);

-- Every delivery attempt.
CREATE TABLE webhook_deliveries (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id BIGINT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id   BIGINT NOT NULL,
    attempt    INTEGER NOT NULL,
    at         BIGINT NOT NULL,
    status     INTEGER,
    error      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX webhook_deliveries_of ON webhook_deliveries (webhook_id, id);
