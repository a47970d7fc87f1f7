-- Work that one node of several does at a time: each webhook is delivered by the node that
-- holds its lease (lease_holder until lease_until, ms), and singleton tasks (the sweeper)
-- run on the node holding their named lease. A lease held by a node that died runs out
-- and is taken over. Keep in lockstep with provisor-store-postgres.
ALTER TABLE webhooks ADD COLUMN lease_holder TEXT;
ALTER TABLE webhooks ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;

CREATE TABLE leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  BIGINT NOT NULL
);
