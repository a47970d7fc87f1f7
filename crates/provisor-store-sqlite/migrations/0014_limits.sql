-- Failure counts of guessable secrets (provisioning codes, portal, console and innovaphone
-- logins) by key (a source address, a name, a domain, the installation), shared by every
-- node: failures since `since` (ms), locked until `locked_until` (ms, 0: not locked).
-- Keep in lockstep with provisor-store-postgres.
CREATE TABLE limits (
    key          TEXT PRIMARY KEY,
    since        BIGINT NOT NULL,
    failures     INTEGER NOT NULL,
    locked_until BIGINT NOT NULL
);
