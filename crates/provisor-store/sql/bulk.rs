//! Bulk import and export in the CSV format of `provisor_domain::csv`.
//!
//! An import runs in one write transaction. Every row is checked against what the
//! database holds; if any row is refused, the transaction is rolled back and all refusals
//! are returned with their line numbers.

use std::collections::HashMap;

use async_trait::async_trait;
use provisor_domain::csv::{Plan, PlanDevice, Row, RowError};
use provisor_domain::model::*;
use provisor_store::{BulkStore, ImportSummary, Result, StoreError};

use super::devices::set_lines;
use serde_json::{Value, json as object};

use super::{Conn, SqlStore, audit, json, now};

/// Keeps `current` where the import leaves a cell empty.
fn keep<'a>(new: &'a str, current: &'a str) -> &'a str {
    if new.is_empty() { current } else { new }
}

#[derive(sqlx::FromRow)]
struct ExistingUser {
    id: i64,
    display_name: String,
    email: String,
}

#[derive(sqlx::FromRow)]
struct ExistingAccount {
    id: i64,
    user_id: i64,
    auth_user: String,
    display_name: String,
    registrar: String,
    outbound_proxy: String,
    transport: String,
    password_enc: Vec<u8>,
}

#[derive(sqlx::FromRow)]
struct ExistingDevice {
    id: i64,
    domain_id: i64,
    vendor: String,
    model: String,
    category_id: Option<i64>,
    category: Option<String>,
    user_id: Option<i64>,
    owner: Option<String>,
}

struct Importer<'a> {
    store: &'a SqlStore,
    actor: &'a Actor,
    d: DomainId,
    t: i64,
    users: HashMap<&'a str, i64>,
    accounts: HashMap<&'a str, i64>,
    categories: HashMap<&'a str, Option<i64>>,
    summary: ImportSummary,
    errors: Vec<RowError>,
}

impl<'a> Importer<'a> {
    /// Every object an import creates or changes gets its own audit entry.
    async fn audit(
        &self,
        c: &mut Conn,
        action: &str,
        target: &str,
        before: Option<Value>,
        after: Value,
    ) -> Result<()> {
        audit(
            c,
            self.actor,
            action,
            Some(self.d),
            target,
            before,
            Some(after),
        )
        .await
    }

    async fn users(&mut self, c: &mut Conn, plan: &'a Plan) -> Result<()> {
        for u in &plan.users {
            let existing: Option<ExistingUser> = sqlx::query_as(
                "SELECT id, display_name, email FROM users WHERE domain_id = $1 AND username = $2",
            )
            .bind(self.d.0)
            .bind(&u.username)
            .fetch_optional(&mut *c)
            .await?;
            let id = match existing {
                Some(e) => {
                    let (display_name, email) = (
                        keep(&u.display_name, &e.display_name),
                        keep(&u.email, &e.email),
                    );
                    if display_name != e.display_name || email != e.email {
                        sqlx::query("UPDATE users SET display_name = $1, email = $2, updated_at = $3 WHERE id = $4")
                            .bind(display_name)
                            .bind(email)
                            .bind(self.t)
                            .bind(e.id)
                            .execute(&mut *c)
                            .await?;
                        self.summary.users_updated += 1;
                        let before = object!({"username": u.username, "display_name": e.display_name, "email": e.email});
                        let after = object!({"username": u.username, "display_name": display_name, "email": email});
                        self.audit(c, "user.update", &u.username, Some(before), after)
                            .await?;
                    }
                    e.id
                }
                None => {
                    self.summary.users_created += 1;
                    let id = sqlx::query_scalar(
                        "INSERT INTO users (domain_id, username, display_name, email, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
                    )
                    .bind(self.d.0)
                    .bind(&u.username)
                    .bind(&u.display_name)
                    .bind(&u.email)
                    .bind(self.t)
                    .fetch_one(&mut *c)
                    .await?;
                    let after = object!({"username": u.username, "display_name": u.display_name, "email": u.email});
                    self.audit(c, "user.create", &u.username, None, after)
                        .await?;
                    id
                }
            };
            self.users.insert(&u.username, id);
        }
        Ok(())
    }

    async fn accounts(&mut self, c: &mut Conn, plan: &'a Plan) -> Result<()> {
        for a in &plan.accounts {
            let Some(&user_id) = self.users.get(a.username.as_str()) else {
                continue;
            };
            let existing: Option<ExistingAccount> = sqlx::query_as(
                "SELECT id, user_id, auth_user, display_name, registrar, outbound_proxy, transport, password_enc \
                 FROM sip_accounts WHERE domain_id = $1 AND sip_user = $2",
            )
            .bind(self.d.0)
            .bind(&a.sip_user)
            .fetch_optional(&mut *c)
            .await?;
            let id = match existing {
                Some(e) if e.user_id != user_id => {
                    self.errors.push(RowError::new(
                        a.line,
                        format!(
                            "sip_user: '{}' belongs to another user of this domain",
                            a.sip_user
                        ),
                    ));
                    continue;
                }
                Some(e) => {
                    let transport: &str = match a.transport {
                        Some(t) => t.as_str(),
                        None => &e.transport,
                    };
                    // A password counts as a change only if it differs from the stored one.
                    let password = a
                        .password
                        .as_ref()
                        .filter(|new| {
                            self.store
                                .cipher
                                .decrypt(&e.password_enc)
                                .map_or(true, |old| old.expose() != new.expose())
                        })
                        .map(|p| self.store.cipher.encrypt(p.expose()));
                    let auth_user = keep(&a.auth_user, &e.auth_user);
                    let display_name = keep(&a.display_name, &e.display_name);
                    let registrar = keep(&a.registrar, &e.registrar);
                    let outbound_proxy = keep(&a.outbound_proxy, &e.outbound_proxy);
                    let mut after = object!({
                        "user": a.username, "sip_user": a.sip_user, "auth_user": auth_user, "display_name": display_name,
                        "registrar": registrar, "outbound_proxy": outbound_proxy, "transport": transport,
                    });
                    let before = object!({
                        "user": a.username, "sip_user": a.sip_user, "auth_user": e.auth_user, "display_name": e.display_name,
                        "registrar": e.registrar, "outbound_proxy": e.outbound_proxy, "transport": e.transport,
                    });
                    if password.is_some() || after != before {
                        sqlx::query(
                            "UPDATE sip_accounts SET auth_user = $1, display_name = $2, registrar = $3, outbound_proxy = $4, \
                             transport = $5, password_enc = COALESCE($6, password_enc), updated_at = $7 WHERE id = $8",
                        )
                        .bind(auth_user)
                        .bind(display_name)
                        .bind(registrar)
                        .bind(outbound_proxy)
                        .bind(transport)
                        .bind(&password)
                        .bind(self.t)
                        .bind(e.id)
                        .execute(&mut *c)
                        .await?;
                        self.summary.accounts_updated += 1;
                        if password.is_some() {
                            after["password"] = "(changed)".into();
                        }
                        self.audit(c, "account.update", &a.sip_user, Some(before), after)
                            .await?;
                    }
                    e.id
                }
                None => {
                    let Some(password) = &a.password else {
                        self.errors.push(RowError::new(
                            a.line,
                            format!(
                                "sip_password: is needed for the new SIP account '{}'",
                                a.sip_user
                            ),
                        ));
                        continue;
                    };
                    self.summary.accounts_created += 1;
                    let transport = a.transport.unwrap_or_default();
                    let id = sqlx::query_scalar(
                        "INSERT INTO sip_accounts (domain_id, user_id, sip_user, auth_user, password_enc, display_name, registrar, \
                         outbound_proxy, transport, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
                    )
                    .bind(self.d.0)
                    .bind(user_id)
                    .bind(&a.sip_user)
                    .bind(&a.auth_user)
                    .bind(self.store.cipher.encrypt(password.expose()))
                    .bind(&a.display_name)
                    .bind(&a.registrar)
                    .bind(&a.outbound_proxy)
                    .bind(transport.as_str())
                    .bind(self.t)
                    .fetch_one(&mut *c)
                    .await?;
                    let after = object!({
                        "user": a.username, "sip_user": a.sip_user, "auth_user": a.auth_user, "display_name": a.display_name,
                        "registrar": a.registrar, "outbound_proxy": a.outbound_proxy, "transport": transport, "password": "(changed)",
                    });
                    self.audit(c, "account.create", &a.sip_user, None, after)
                        .await?;
                    id
                }
            };
            self.accounts.insert(&a.sip_user, id);
        }
        Ok(())
    }

    async fn category(
        &mut self,
        c: &mut Conn,
        line: u64,
        name: &'a str,
    ) -> Result<Option<Option<i64>>> {
        if name.is_empty() {
            return Ok(Some(None));
        }
        if let Some(id) = self.categories.get(name) {
            return Ok(Some(*id));
        }
        let id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM categories WHERE domain_id = $1 AND name = $2")
                .bind(self.d.0)
                .bind(name)
                .fetch_optional(&mut *c)
                .await?;
        if id.is_none() {
            self.errors.push(RowError::new(
                line,
                format!("category: there is no category '{name}' in this domain"),
            ));
            return Ok(None);
        }
        self.categories.insert(name, id);
        Ok(Some(id))
    }

    /// The device's lines as (position, account id), if all its accounts were accepted.
    fn lines_of(&self, dev: &PlanDevice) -> Option<Vec<(u32, i64)>> {
        dev.lines
            .iter()
            .map(|l| {
                self.accounts
                    .get(l.sip_user.as_str())
                    .map(|a| (l.position, *a))
            })
            .collect()
    }

    async fn devices(&mut self, c: &mut Conn, plan: &'a Plan) -> Result<()> {
        for dev in &plan.devices {
            let Some(category) = self.category(c, dev.line, &dev.category).await? else {
                continue;
            };
            let Some(owner) = dev
                .owner
                .as_deref()
                .map(|o| self.users.get(o).copied())
                .map_or(Some(None), |id| id.map(Some))
            else {
                continue;
            };
            let existing: Option<ExistingDevice> = sqlx::query_as(
                "SELECT d.id, d.domain_id, d.vendor, d.model, d.category_id, c.name AS category, d.user_id, u.username AS owner \
                 FROM devices d LEFT JOIN categories c ON c.id = d.category_id LEFT JOIN users u ON u.id = d.user_id WHERE d.mac = $1",
            )
            .bind(dev.mac.to_string())
            .fetch_optional(&mut *c)
            .await?;
            let lines = self.lines_of(dev);
            let line_names: Vec<&str> = dev.lines.iter().map(|l| l.sip_user.as_str()).collect();
            let mac = dev.mac.to_string();
            let id = match existing {
                Some(e) if e.domain_id != self.d.0 => {
                    self.errors.push(RowError::new(
                        dev.line,
                        format!("mac: a device with MAC {} already exists", dev.mac),
                    ));
                    continue;
                }
                Some(e) => {
                    let category_id = category.or(e.category_id);
                    let lines_changed = !dev.lines.is_empty()
                        && lines.as_ref() != Some(&current_lines(c, e.id).await?);
                    let (vendor, model) =
                        (keep(&dev.vendor, &e.vendor), keep(&dev.model, &e.model));
                    let changed = vendor != e.vendor
                        || model != e.model
                        || category_id != e.category_id
                        || owner != e.user_id
                        || lines_changed;
                    if changed {
                        sqlx::query("UPDATE devices SET vendor = $1, model = $2, category_id = $3, user_id = $4, updated_at = $5 WHERE id = $6")
                            .bind(vendor)
                            .bind(model)
                            .bind(category_id)
                            .bind(owner)
                            .bind(self.t)
                            .bind(e.id)
                            .execute(&mut *c)
                            .await?;
                        self.summary.devices_updated += 1;
                        let category = if dev.category.is_empty() {
                            e.category.clone()
                        } else {
                            Some(dev.category.clone())
                        };
                        let before = object!({"mac": mac, "vendor": e.vendor, "model": e.model, "category": e.category, "user": e.owner});
                        let mut after = object!({"mac": mac, "vendor": vendor, "model": model, "category": category, "user": dev.owner});
                        if lines_changed {
                            after["lines"] = object!(line_names);
                        }
                        self.audit(c, "device.update", &mac, Some(before), after)
                            .await?;
                    }
                    e.id
                }
                None => {
                    self.summary.devices_created += 1;
                    let id = sqlx::query_scalar(
                        "INSERT INTO devices (domain_id, mac, vendor, model, state, category_id, user_id, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
                    )
                    .bind(self.d.0)
                    .bind(&mac)
                    .bind(&dev.vendor)
                    .bind(&dev.model)
                    .bind(DeviceState::Added.as_str())
                    .bind(category)
                    .bind(owner)
                    .bind(self.t)
                    .fetch_one(&mut *c)
                    .await?;
                    super::phones::issue_secrets(c, &self.store.cipher, self.d, id).await?;
                    let category = (!dev.category.is_empty()).then_some(&dev.category);
                    let after = object!({"mac": mac, "vendor": dev.vendor, "model": dev.model, "category": category, "user": dev.owner, "lines": line_names});
                    self.audit(c, "device.create", &mac, None, after).await?;
                    id
                }
            };
            // An account refused above has no id; its row already carries the error.
            if let (false, Some(lines)) = (dev.lines.is_empty(), lines) {
                set_lines(c, id, &lines).await?;
            }
        }
        Ok(())
    }
}

async fn current_lines(c: &mut Conn, device_id: i64) -> Result<Vec<(u32, i64)>> {
    let rows: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT position, account_id FROM device_lines WHERE device_id = $1 ORDER BY position",
    )
    .bind(device_id)
    .fetch_all(&mut *c)
    .await?;
    Ok(rows.into_iter().map(|(p, a)| (p as u32, a)).collect())
}

#[derive(sqlx::FromRow)]
struct ExportAccount {
    username: String,
    display_name: String,
    email: String,
    account_id: Option<i64>,
    sip_user: Option<String>,
    auth_user: Option<String>,
    password_enc: Option<Vec<u8>>,
    account_display_name: Option<String>,
    registrar: Option<String>,
    outbound_proxy: Option<String>,
    transport: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ExportDevice {
    id: i64,
    mac: String,
    owner: Option<String>,
    vendor: String,
    model: String,
    category: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ExportLine {
    device_id: i64,
    position: i32,
    username: String,
    sip_user: String,
}

impl SqlStore {
    async fn import_all(&self, actor: &Actor, d: DomainId, plan: &Plan) -> Result<ImportSummary> {
        let mut tx = self.write().await?;
        let mut importer = Importer {
            store: self,
            actor,
            d,
            t: now(),
            users: HashMap::new(),
            accounts: HashMap::new(),
            categories: HashMap::new(),
            summary: ImportSummary::default(),
            errors: plan.errors.clone(),
        };
        importer.users(&mut tx, plan).await?;
        importer.accounts(&mut tx, plan).await?;
        importer.devices(&mut tx, plan).await?;
        if !importer.errors.is_empty() {
            importer.errors.sort_by_key(|e| e.line);
            tx.rollback().await?;
            return Err(StoreError::Rows(importer.errors));
        }
        let summary = importer.summary;
        audit(
            &mut tx,
            actor,
            "import",
            Some(d),
            "csv",
            None,
            Some(json(&summary)),
        )
        .await?;
        tx.commit().await?;
        Ok(summary)
    }
}

#[async_trait]
impl BulkStore for SqlStore {
    async fn import(&self, actor: &Actor, d: DomainId, plan: &Plan) -> Result<ImportSummary> {
        self.import_all(actor, d, plan).await.map_err(|e| match e {
            // Another writer created the same user, account or MAC while this import ran.
            StoreError::Database(e) if StoreError::is_unique_violation(&e) => {
                StoreError::Conflict("a concurrent change created some of the same users, SIP accounts or devices; nothing was imported, try again".into())
            }
            e => e,
        })
    }

    async fn export(&self, d: DomainId, with_passwords: bool) -> Result<Vec<Row>> {
        let mut c = self.pool.acquire().await?;
        let accounts: Vec<ExportAccount> = sqlx::query_as(
            "SELECT u.username, u.display_name, u.email, a.id AS account_id, a.sip_user, a.auth_user, a.password_enc, \
             a.display_name AS account_display_name, a.registrar, a.outbound_proxy, a.transport \
             FROM users u LEFT JOIN sip_accounts a ON a.user_id = u.id WHERE u.domain_id = $1 ORDER BY u.id, a.id",
        )
        .bind(d.0)
        .fetch_all(&mut *c)
        .await?;
        let devices: Vec<ExportDevice> = sqlx::query_as(
            "SELECT d.id, d.mac, u.username AS owner, d.vendor, d.model, c.name AS category FROM devices d \
             LEFT JOIN users u ON u.id = d.user_id LEFT JOIN categories c ON c.id = d.category_id WHERE d.domain_id = $1 ORDER BY d.id",
        )
        .bind(d.0)
        .fetch_all(&mut *c)
        .await?;
        let lines: Vec<ExportLine> = sqlx::query_as(
            "SELECT l.device_id, l.position, u.username, a.sip_user FROM device_lines l JOIN devices d ON d.id = l.device_id \
             JOIN sip_accounts a ON a.id = l.account_id JOIN users u ON u.id = a.user_id WHERE d.domain_id = $1 ORDER BY l.device_id, l.position",
        )
        .bind(d.0)
        .fetch_all(&mut *c)
        .await?;

        let mut rows = Vec::with_capacity(accounts.len() + devices.len() + lines.len());
        for a in accounts {
            let mut row = Row::default();
            row.set("username", a.username);
            row.set("display_name", a.display_name);
            row.set("email", a.email);
            if a.account_id.is_some() {
                row.set("sip_user", a.sip_user.unwrap_or_default());
                row.set("auth_user", a.auth_user.unwrap_or_default());
                row.set(
                    "account_display_name",
                    a.account_display_name.unwrap_or_default(),
                );
                row.set("registrar", a.registrar.unwrap_or_default());
                row.set("outbound_proxy", a.outbound_proxy.unwrap_or_default());
                row.set("transport", a.transport.unwrap_or_default());
                if let (true, Some(blob)) = (with_passwords, a.password_enc) {
                    row.set("sip_password", self.cipher.decrypt(&blob)?.expose());
                }
            }
            rows.push(row);
        }
        // A device's first row names its owner; its lines follow in order.
        let mut lines = lines.into_iter().peekable();
        for dev in devices {
            let mut row = Row::default();
            row.set("username", dev.owner.unwrap_or_default());
            row.set("mac", dev.mac.clone());
            row.set("vendor", dev.vendor);
            row.set("model", dev.model);
            row.set("category", dev.category.unwrap_or_default());
            rows.push(row);
            while let Some(l) = lines.next_if(|l| l.device_id == dev.id) {
                let mut row = Row::default();
                row.set("username", l.username);
                row.set("sip_user", l.sip_user);
                row.set("mac", dev.mac.clone());
                row.set("line", l.position.to_string());
                rows.push(row);
            }
        }
        Ok(rows)
    }
}
