-- Firmware and other static files for phones. Keep in lockstep with provisor-store-postgres.
-- The bytes live in the data directory under firmware/<sha256>; this is the index.
CREATE TABLE firmware (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL UNIQUE,
    sha256     TEXT NOT NULL,
    size       BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
