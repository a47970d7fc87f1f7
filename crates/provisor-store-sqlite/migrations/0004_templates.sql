-- Templates stored by admins, per domain or per category. Keep in lockstep with provisor-store-postgres.
-- name is a built-in template's (replaced) or a device file name with {mac} (added).
CREATE TABLE templates (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id   BIGINT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    category_id BIGINT REFERENCES categories(id) ON DELETE CASCADE,
    vendor      TEXT NOT NULL,
    name        TEXT NOT NULL,
    origin      TEXT NOT NULL,
    source      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL
);
CREATE UNIQUE INDEX templates_of_domain ON templates (domain_id, vendor, name) WHERE category_id IS NULL;
CREATE UNIQUE INDEX templates_of_category ON templates (category_id, vendor, name) WHERE category_id IS NOT NULL;
