-- What a phone's file is made from changed: the devices, their lines and accounts, users,
-- categories, domains, stored templates, jobs and their progress. Each node caches what it
-- served (provisor-http phone::cache) for the generation it read it in, and moves its
-- generation on when told of a change here.
--
-- A device's contact columns (first_contact, last_contact, last_ip) and updated_at are
-- left out: phones write them on every fetch, and nothing a phone is served is made from
-- them. So are a device's first configuration (state added -> provisioned, which changes
-- no file) and its disarming (armed_until to NULL: the node that disarms forgets the
-- device itself, and a node holding it as armed only asks the database again), so that
-- phones coming up do not flush every node's cache; arming is a change. A column added to devices later that files are made from must be added to the
-- devices trigger below.
--
-- SQLite (one node): a counter the node reads every half second, so that changes made
-- outside the server process (the CLI) reach phones too.
CREATE TABLE changes (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO changes (id, version) VALUES (1, 0);

CREATE TRIGGER domains_insertd AFTER INSERT ON domains
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER domains_updated AFTER UPDATE ON domains
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER domains_deleted AFTER DELETE ON domains
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER categories_insertd AFTER INSERT ON categories
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER categories_updated AFTER UPDATE ON categories
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER categories_deleted AFTER DELETE ON categories
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER users_insertd AFTER INSERT ON users
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER users_updated AFTER UPDATE ON users
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER users_deleted AFTER DELETE ON users
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER sip_accounts_insertd AFTER INSERT ON sip_accounts
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER sip_accounts_updated AFTER UPDATE ON sip_accounts
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER sip_accounts_deleted AFTER DELETE ON sip_accounts
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER device_lines_insertd AFTER INSERT ON device_lines
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER device_lines_updated AFTER UPDATE ON device_lines
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER device_lines_deleted AFTER DELETE ON device_lines
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER templates_insertd AFTER INSERT ON templates
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER templates_updated AFTER UPDATE ON templates
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER templates_deleted AFTER DELETE ON templates
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER jobs_insertd AFTER INSERT ON jobs
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER jobs_updated AFTER UPDATE ON jobs
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER jobs_deleted AFTER DELETE ON jobs
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER job_progress_insertd AFTER INSERT ON job_progress
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER job_progress_updated AFTER UPDATE ON job_progress
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER job_progress_deleted AFTER DELETE ON job_progress
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER devices_insertd AFTER INSERT ON devices
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER devices_updated AFTER UPDATE ON devices
    WHEN OLD.domain_id IS NOT NEW.domain_id
      OR OLD.mac IS NOT NEW.mac
      OR OLD.vendor IS NOT NEW.vendor
      OR OLD.model IS NOT NEW.model
      OR OLD.firmware IS NOT NEW.firmware
      OR OLD.bootcode IS NOT NEW.bootcode
      OR (OLD.state IS NOT NEW.state AND NOT (OLD.state = 'added' AND NEW.state = 'provisioned'))
      OR OLD.category_id IS NOT NEW.category_id
      OR OLD.user_id IS NOT NEW.user_id
      OR OLD.settings IS NOT NEW.settings
      OR OLD.token_hash IS NOT NEW.token_hash
      OR OLD.token_enc IS NOT NEW.token_enc
      OR OLD.prev_token_hash IS NOT NEW.prev_token_hash
      OR OLD.prev_token_until IS NOT NEW.prev_token_until
      OR OLD.admin_password_enc IS NOT NEW.admin_password_enc
      OR OLD.fetch_password_enc IS NOT NEW.fetch_password_enc
      OR (NEW.armed_until IS NOT NULL AND (OLD.armed_until IS NULL OR NEW.armed_until > OLD.armed_until))
      OR OLD.firmware_pin IS NOT NEW.firmware_pin
BEGIN UPDATE changes SET version = version + 1; END;

CREATE TRIGGER devices_deleted AFTER DELETE ON devices
BEGIN UPDATE changes SET version = version + 1; END;
