-- innovaphone: a domain's AppWebsocket and sysclient secrets, and what Provisor knows of
-- devices that came through innovaphone (a PBX's ProvisioningPhone, or a sysclient).
-- Keep in lockstep with provisor-store-postgres.
CREATE TABLE innovaphone_domains (
    domain_id           BIGINT PRIMARY KEY REFERENCES domains(id) ON DELETE CASCADE,
    -- the shared secret of the PBX's App object (AppLogin digest, session key)
    app_password_enc    BLOB,
    -- the admin password sysclients are given, RC4-encrypted under their own password
    admin_password_enc  BLOB,
    -- the PBX's domain name, where it is not the Provisor domain's name
    pbx_domain          TEXT NOT NULL DEFAULT '',
    -- where third-party phones go whose code names no category of this domain
    default_category_id BIGINT REFERENCES categories(id) ON DELETE SET NULL,
    updated_at          BIGINT NOT NULL
);

-- kind: 'sysclient' (an innovaphone device registered over sysclient; password_enc is its
-- sysclient password) or 'pbx-phone' (a third-party phone a PBX handed over; hwid is the
-- Hardware ID of the PBX user's device).
CREATE TABLE innovaphone_devices (
    device_id    BIGINT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    domain_id    BIGINT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('sysclient', 'pbx-phone')),
    password_enc BLOB,
    hwid         TEXT NOT NULL DEFAULT '',
    product      TEXT NOT NULL DEFAULT '',
    version      TEXT NOT NULL DEFAULT '',
    platform     TEXT NOT NULL DEFAULT '',
    interfaces   TEXT NOT NULL DEFAULT '[]',
    last_seen    BIGINT,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX innovaphone_devices_domain ON innovaphone_devices (domain_id);
