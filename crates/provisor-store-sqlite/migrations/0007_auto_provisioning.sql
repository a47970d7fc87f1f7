-- A domain's token for automatic provisioning (kept as a keyed digest, and encrypted so
-- admins can be shown the URL again). Keep in lockstep with provisor-store-postgres.
ALTER TABLE domains ADD COLUMN auto_token_hash TEXT;
ALTER TABLE domains ADD COLUMN auto_token_enc BLOB;
