-- Phones fetching their files. Keep in lockstep with provisor-store-postgres/migrations.
-- Device secrets are AES-256-GCM sealed (the token too, so an admin can be shown the
-- device's URL); tokens are found by their SHA-256 digest.

ALTER TABLE domains ADD COLUMN phone_policy TEXT NOT NULL DEFAULT '{}';

ALTER TABLE devices ADD COLUMN token_hash TEXT;
ALTER TABLE devices ADD COLUMN token_enc BLOB;
ALTER TABLE devices ADD COLUMN prev_token_hash TEXT;
ALTER TABLE devices ADD COLUMN prev_token_until BIGINT;
ALTER TABLE devices ADD COLUMN admin_password_enc BLOB;
ALTER TABLE devices ADD COLUMN fetch_password_enc BLOB;
ALTER TABLE devices ADD COLUMN armed_until BIGINT;
CREATE UNIQUE INDEX devices_token ON devices (token_hash);
CREATE INDEX devices_prev_token ON devices (prev_token_hash);

-- Why a device's fetches were refused; the newest few per device are kept.
CREATE TABLE device_refusals (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    at        BIGINT NOT NULL,
    ip        TEXT NOT NULL,
    file      TEXT NOT NULL,
    reason    TEXT NOT NULL
);
CREATE INDEX device_refusals_device ON device_refusals (device_id, id);

-- Unknown MACs seen fetching from a domain's networks, for an admin to claim (bounded).
CREATE TABLE unassigned_devices (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id     BIGINT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    mac           TEXT NOT NULL,
    vendor        TEXT NOT NULL DEFAULT '',
    model         TEXT NOT NULL DEFAULT '',
    firmware      TEXT NOT NULL DEFAULT '',
    last_ip       TEXT NOT NULL,
    first_contact BIGINT NOT NULL,
    last_contact  BIGINT NOT NULL,
    UNIQUE (domain_id, mac)
);

-- Files a device uploads (Poly boot and application logs): the latest of each name.
CREATE TABLE device_uploads (
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    name      TEXT NOT NULL,
    at        BIGINT NOT NULL,
    body      BLOB NOT NULL,
    PRIMARY KEY (device_id, name)
);
