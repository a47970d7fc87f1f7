-- Console sign-in: administrators with a password (operators, or admins of one domain),
-- and sessions of administrators and of users (self-service). A session is found by the
-- SHA-256 digest of its cookie; it ends at expires_at, or at idle_until if unused.
-- Keep in lockstep with provisor-store-postgres.
CREATE TABLE admins (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('operator', 'domain-admin')),
    domain_id     BIGINT REFERENCES domains(id) ON DELETE CASCADE,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    CHECK ((role = 'operator') = (domain_id IS NULL))
);

CREATE TABLE sessions (
    hash        TEXT PRIMARY KEY,
    admin_id    BIGINT REFERENCES admins(id) ON DELETE CASCADE,
    user_id     BIGINT REFERENCES users(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    idle_until  BIGINT NOT NULL,
    CHECK ((admin_id IS NULL) <> (user_id IS NULL))
);
CREATE INDEX sessions_expiry ON sessions (expires_at);
CREATE INDEX sessions_of_admin ON sessions (admin_id);
CREATE INDEX sessions_of_user ON sessions (user_id);
