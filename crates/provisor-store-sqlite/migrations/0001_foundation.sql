-- Foundation schema. Keep in lockstep with provisor-store-postgres/migrations (same file names).
-- Timestamps are milliseconds since the Unix epoch (BIGINT) on both backends.
-- AUTOINCREMENT: ids are never handed out again after a delete (audit entries and
-- tokens refer to them), as PostgreSQL identities never are.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE domains (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE categories (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id    BIGINT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    provisioning BOOLEAN NOT NULL DEFAULT FALSE,
    settings     TEXT NOT NULL DEFAULT '{}',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (domain_id, name)
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id     BIGINT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    username      TEXT NOT NULL,
    display_name  TEXT NOT NULL DEFAULT '',
    email         TEXT NOT NULL DEFAULT '',
    password_hash TEXT,
    enabled       BOOLEAN NOT NULL DEFAULT TRUE,
    settings      TEXT NOT NULL DEFAULT '{}',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (domain_id, username)
);

CREATE TABLE sip_accounts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id      BIGINT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    user_id        BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sip_user       TEXT NOT NULL,
    auth_user      TEXT NOT NULL DEFAULT '',
    password_enc   BLOB NOT NULL,
    display_name   TEXT NOT NULL DEFAULT '',
    registrar      TEXT NOT NULL DEFAULT '',
    outbound_proxy TEXT NOT NULL DEFAULT '',
    transport      TEXT NOT NULL DEFAULT 'udp' CHECK (transport IN ('udp', 'tcp', 'tls')),
    options        TEXT NOT NULL DEFAULT '{}',
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    UNIQUE (domain_id, sip_user)
);
CREATE INDEX sip_accounts_user ON sip_accounts (user_id);

CREATE TABLE devices (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id     BIGINT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    mac           TEXT NOT NULL UNIQUE,
    vendor        TEXT NOT NULL DEFAULT '',
    model         TEXT NOT NULL DEFAULT '',
    firmware      TEXT NOT NULL DEFAULT '',
    bootcode      TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL DEFAULT 'added',
    category_id   BIGINT REFERENCES categories(id) ON DELETE SET NULL,
    user_id       BIGINT REFERENCES users(id) ON DELETE SET NULL,
    first_contact BIGINT,
    last_contact  BIGINT,
    last_ip       TEXT,
    settings      TEXT NOT NULL DEFAULT '{}',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX devices_domain ON devices (domain_id, id);
CREATE INDEX devices_category ON devices (category_id);
CREATE INDEX devices_user ON devices (user_id);

-- An account that is a line on a device cannot be deleted until the line is removed.
CREATE TABLE device_lines (
    device_id  BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    position   INTEGER NOT NULL CHECK (position >= 1),
    account_id BIGINT NOT NULL REFERENCES sip_accounts(id) ON DELETE RESTRICT,
    PRIMARY KEY (device_id, position)
);
CREATE INDEX device_lines_account ON device_lines (account_id);

CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL DEFAULT '',
    role       TEXT NOT NULL CHECK (role IN ('operator', 'domain-admin')),
    domain_id  BIGINT REFERENCES domains(id) ON DELETE CASCADE,
    hash       TEXT NOT NULL UNIQUE,
    hint       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    CHECK ((role = 'operator') = (domain_id IS NULL))
);

-- The audit log outlives what it describes: no foreign keys, the domain's name is kept.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    domain_id   BIGINT,
    domain_name TEXT,
    target      TEXT NOT NULL,
    before      TEXT,
    after       TEXT
);
CREATE INDEX audit_log_domain ON audit_log (domain_id, id);
