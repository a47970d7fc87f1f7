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
-- PostgreSQL (many nodes): a notification on channel provisor_changes, which PostgreSQL
-- sends when the transaction commits (once per transaction however many rows changed); every
-- node listens, and flushes everything after its listening connection comes back.
CREATE FUNCTION provisor_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('provisor_changes', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER domains_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON domains
    FOR EACH STATEMENT EXECUTE FUNCTION provisor_changed();

CREATE TRIGGER categories_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON categories
    FOR EACH STATEMENT EXECUTE FUNCTION provisor_changed();

CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION provisor_changed();

CREATE TRIGGER sip_accounts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sip_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION provisor_changed();

CREATE TRIGGER device_lines_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON device_lines
    FOR EACH STATEMENT EXECUTE FUNCTION provisor_changed();

CREATE TRIGGER templates_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON templates
    FOR EACH STATEMENT EXECUTE FUNCTION provisor_changed();

CREATE TRIGGER jobs_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION provisor_changed();

CREATE TRIGGER job_progress_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON job_progress
    FOR EACH STATEMENT EXECUTE FUNCTION provisor_changed();

CREATE TRIGGER devices_added_or_removed AFTER INSERT OR DELETE OR TRUNCATE ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION provisor_changed();
CREATE TRIGGER devices_changed AFTER UPDATE ON devices FOR EACH ROW
    WHEN (OLD.domain_id IS DISTINCT FROM NEW.domain_id
       OR OLD.mac IS DISTINCT FROM NEW.mac
       OR OLD.vendor IS DISTINCT FROM NEW.vendor
       OR OLD.model IS DISTINCT FROM NEW.model
       OR OLD.firmware IS DISTINCT FROM NEW.firmware
       OR OLD.bootcode IS DISTINCT FROM NEW.bootcode
       OR (OLD.state IS DISTINCT FROM NEW.state AND NOT (OLD.state = 'added' AND NEW.state = 'provisioned'))
       OR OLD.category_id IS DISTINCT FROM NEW.category_id
       OR OLD.user_id IS DISTINCT FROM NEW.user_id
       OR OLD.settings IS DISTINCT FROM NEW.settings
       OR OLD.token_hash IS DISTINCT FROM NEW.token_hash
       OR OLD.token_enc IS DISTINCT FROM NEW.token_enc
       OR OLD.prev_token_hash IS DISTINCT FROM NEW.prev_token_hash
       OR OLD.prev_token_until IS DISTINCT FROM NEW.prev_token_until
       OR OLD.admin_password_enc IS DISTINCT FROM NEW.admin_password_enc
       OR OLD.fetch_password_enc IS DISTINCT FROM NEW.fetch_password_enc
       OR (NEW.armed_until IS NOT NULL AND (OLD.armed_until IS NULL OR NEW.armed_until > OLD.armed_until))
       OR OLD.firmware_pin IS DISTINCT FROM NEW.firmware_pin)
    EXECUTE FUNCTION provisor_changed();
