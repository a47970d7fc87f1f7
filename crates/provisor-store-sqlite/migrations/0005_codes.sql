-- Provisioning codes and the event log. Keep in lockstep with provisor-store-postgres.
-- A code is kept as a keyed digest while it is live; code_hash is cleared when it is used.
CREATE TABLE codes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id   BIGINT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    category_id BIGINT REFERENCES categories(id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash   TEXT UNIQUE,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    valid_until BIGINT NOT NULL,
    used_at     BIGINT,
    device_id   BIGINT REFERENCES devices(id) ON DELETE SET NULL,
    mac         TEXT,
    ip          TEXT
);
CREATE INDEX codes_live_until ON codes (valid_until) WHERE used_at IS NULL;

-- What happened, per domain, in order (id is the cursor subscribers resume from).
CREATE TABLE events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id BIGINT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    kind      TEXT NOT NULL,
    at        BIGINT NOT NULL,
    payload   TEXT NOT NULL
);
CREATE INDEX events_by_domain ON events (domain_id, id);
