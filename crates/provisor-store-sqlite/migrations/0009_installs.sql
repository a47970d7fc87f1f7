-- Softphone installations (SessionTalk deviceId, Acrobits install id, Linphone token), each
-- a device of its user. digest: what it last received. Keep in lockstep with provisor-store-postgres.
CREATE TABLE installs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id     BIGINT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    user_id       BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    app           TEXT NOT NULL,
    install_id    TEXT NOT NULL,
    first_contact BIGINT NOT NULL,
    last_contact  BIGINT NOT NULL,
    last_ip       TEXT NOT NULL DEFAULT '',
    user_agent    TEXT NOT NULL DEFAULT '',
    digest        TEXT NOT NULL DEFAULT '',
    delivered_at  BIGINT NOT NULL DEFAULT 0,
    revoked_at    BIGINT,
    UNIQUE (app, install_id)
);
CREATE INDEX installs_of_user ON installs (user_id);
