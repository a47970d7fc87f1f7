-- Rollouts: one code per user, listed with their state. Keep in lockstep with provisor-store-postgres.
CREATE TABLE rollouts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id    BIGINT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    category_id  BIGINT REFERENCES categories(id) ON DELETE SET NULL,
    phone        TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    valid_until  BIGINT NOT NULL,
    completed_at BIGINT
);

-- A rollout's codes stay listed after use or expiry (expired_at), and are kept encrypted
-- (code_enc) for the rollout's list and CSV.
ALTER TABLE codes ADD COLUMN rollout_id BIGINT REFERENCES rollouts(id) ON DELETE CASCADE;
ALTER TABLE codes ADD COLUMN code_enc BLOB;
ALTER TABLE codes ADD COLUMN expired_at BIGINT;
CREATE INDEX codes_of_rollout ON codes (rollout_id, id);
