-- Update jobs (software: firmware; config: a settings layer), their per-device progress,
-- and firmware pins. Keep in lockstep with provisor-store-postgres.
CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id       BIGINT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('software', 'config')),
    state           TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'paused', 'cancelled')),
    -- a job of a category goes with it; NULL: every device of the domain
    category_id     BIGINT REFERENCES categories(id) ON DELETE CASCADE,
    models          TEXT NOT NULL DEFAULT '[]',
    percent         INTEGER NOT NULL CHECK (percent BETWEEN 1 AND 100),
    -- devices whose position (provisor_domain::job::position) is below it are in the stage
    stage_cutoff    BIGINT NOT NULL,
    devices         TEXT NOT NULL DEFAULT '[]',
    -- the snapshot of what it delivers (provisor_domain::job::Payload)
    payload         TEXT NOT NULL,
    -- the firmware store contents it refers to, kept while the job is not cancelled
    firmware_sha256 TEXT,
    max_offers      INTEGER NOT NULL,
    created_at      BIGINT NOT NULL,
    created_by      TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    completed_at    BIGINT
);
CREATE INDEX jobs_domain ON jobs (domain_id, id);

CREATE TABLE job_progress (
    job_id          BIGINT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    device_id       BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    state           TEXT NOT NULL CHECK (state IN ('offered', 'applied', 'failed')),
    offers          INTEGER NOT NULL DEFAULT 0,
    first_offered   BIGINT NOT NULL,
    last_offered    BIGINT NOT NULL,
    done_at         BIGINT,
    PRIMARY KEY (job_id, device_id)
);
CREATE INDEX job_progress_device ON job_progress (device_id);

-- provisor_domain::job::FirmwarePin as JSON, or NULL
ALTER TABLE devices ADD COLUMN firmware_pin TEXT;
