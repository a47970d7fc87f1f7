//! Domains, categories, users and SIP accounts.

use async_trait::async_trait;
use provisor_domain::model::*;
use provisor_domain::phone::PhonePolicy;
use provisor_domain::secret::{Cipher, SecretString};
use provisor_domain::settings::Settings;
use provisor_store::{DomainStore, Page, PageRequest, Result, StoreError, UserStore};
use sqlx::types::Json;

use super::{Conn, SqlStore, audit, fetch_limit, in_use, json, now, page, ts, unique};

const DOMAIN_COLS: &str = "id, name, description, settings, phone_policy, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct DomainRow {
    id: i64,
    name: String,
    description: String,
    settings: Json<Settings>,
    phone_policy: Json<PhonePolicy>,
    created_at: i64,
    updated_at: i64,
}

impl From<DomainRow> for Domain {
    fn from(r: DomainRow) -> Self {
        Domain {
            id: DomainId(r.id),
            name: r.name,
            description: r.description,
            settings: r.settings.0,
            phone_policy: r.phone_policy.0,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        }
    }
}

const CATEGORY_COLS: &str = "id, name, provisioning, settings, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct CategoryRow {
    id: i64,
    name: String,
    provisioning: bool,
    settings: Json<Settings>,
    created_at: i64,
    updated_at: i64,
}

impl From<CategoryRow> for Category {
    fn from(r: CategoryRow) -> Self {
        Category {
            id: r.id,
            name: r.name,
            provisioning: r.provisioning,
            settings: r.settings.0,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        }
    }
}

const USER_COLS: &str = "id, username, display_name, email, enabled, password_hash IS NOT NULL AS has_password, settings, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    username: String,
    display_name: String,
    email: String,
    enabled: bool,
    has_password: bool,
    settings: Json<Settings>,
    created_at: i64,
    updated_at: i64,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: r.id,
            username: r.username,
            display_name: r.display_name,
            email: r.email,
            enabled: r.enabled,
            has_password: r.has_password,
            settings: r.settings.0,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        }
    }
}

pub(super) const ACCOUNT_SELECT: &str = "SELECT a.id, u.username AS owner, a.sip_user, a.auth_user, a.display_name, a.registrar, \
     a.outbound_proxy, a.transport, a.options, a.created_at, a.updated_at \
     FROM sip_accounts a JOIN users u ON u.id = a.user_id";

#[derive(sqlx::FromRow)]
pub(super) struct AccountRow {
    id: i64,
    owner: String,
    sip_user: String,
    auth_user: String,
    display_name: String,
    registrar: String,
    outbound_proxy: String,
    transport: String,
    options: Json<Settings>,
    created_at: i64,
    updated_at: i64,
}

impl From<AccountRow> for SipAccount {
    fn from(r: AccountRow) -> Self {
        SipAccount {
            id: r.id,
            user: r.owner,
            sip_user: r.sip_user,
            auth_user: r.auth_user,
            display_name: r.display_name,
            registrar: r.registrar,
            outbound_proxy: r.outbound_proxy,
            transport: r.transport.parse().unwrap_or_default(),
            options: r.options.0,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        }
    }
}

async fn domain_row(c: &mut Conn, id: DomainId) -> Result<Domain> {
    sqlx::query_as::<_, DomainRow>(&format!("SELECT {DOMAIN_COLS} FROM domains WHERE id = $1"))
        .bind(id.0)
        .fetch_optional(c)
        .await?
        .map(Domain::from)
        .ok_or(StoreError::NotFound("domain"))
}

async fn category_row(c: &mut Conn, d: DomainId, name: &str) -> Result<Category> {
    sqlx::query_as::<_, CategoryRow>(&format!(
        "SELECT {CATEGORY_COLS} FROM categories WHERE domain_id = $1 AND name = $2"
    ))
    .bind(d.0)
    .bind(name)
    .fetch_optional(c)
    .await?
    .map(Category::from)
    .ok_or(StoreError::NotFound("category"))
}

pub(super) async fn user_row(c: &mut Conn, d: DomainId, username: &str) -> Result<User> {
    sqlx::query_as::<_, UserRow>(&format!(
        "SELECT {USER_COLS} FROM users WHERE domain_id = $1 AND username = $2"
    ))
    .bind(d.0)
    .bind(username)
    .fetch_optional(c)
    .await?
    .map(User::from)
    .ok_or(StoreError::NotFound("user"))
}

pub(super) async fn account_row(c: &mut Conn, d: DomainId, id: i64) -> Result<SipAccount> {
    sqlx::query_as::<_, AccountRow>(&format!(
        "{ACCOUNT_SELECT} WHERE a.domain_id = $1 AND a.id = $2"
    ))
    .bind(d.0)
    .bind(id)
    .fetch_optional(c)
    .await?
    .map(SipAccount::from)
    .ok_or(StoreError::NotFound("SIP account"))
}

/// A named kind of row in a domain: table, naming column, and the noun for messages.
pub(super) struct Named(&'static str, &'static str, &'static str);

pub(super) const CATEGORY: Named = Named("categories", "name", "category");
pub(super) const USER: Named = Named("users", "username", "user");
pub(super) const ACCOUNT: Named = Named("sip_accounts", "sip_user", "SIP account");

/// The name of the category of this id, if there is one.
pub(super) async fn category_name(c: &mut Conn, id: Option<i64>) -> Result<Option<String>> {
    match id {
        Some(id) => Ok(Some(
            sqlx::query_scalar("SELECT name FROM categories WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *c)
                .await?,
        )),
        None => Ok(None),
    }
}

/// The id of a named row in the domain, or an `Invalid` for `field` if there is none.
pub(super) async fn id_of(
    c: &mut Conn,
    d: DomainId,
    field: &str,
    kind: &Named,
    value: &str,
) -> Result<i64> {
    let Named(table, column, noun) = kind;
    sqlx::query_scalar::<_, i64>(&format!(
        "SELECT id FROM {table} WHERE domain_id = $1 AND {column} = $2"
    ))
    .bind(d.0)
    .bind(value)
    .fetch_optional(c)
    .await?
    .ok_or_else(|| {
        provisor_domain::Invalid::new(
            field,
            format!("there is no {noun} '{value}' in this domain"),
        )
        .into()
    })
}

#[async_trait]
impl DomainStore for SqlStore {
    async fn create_domain(&self, actor: &Actor, new: &NewDomain) -> Result<Domain> {
        let mut tx = self.write().await?;
        let row: DomainRow = sqlx::query_as(&format!(
            "INSERT INTO domains (name, description, settings, phone_policy, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING {DOMAIN_COLS}"
        ))
        .bind(&new.name)
        .bind(&new.description)
        .bind(Json(&new.settings))
        .bind(Json(&new.phone_policy))
        .bind(now())
        .fetch_one(&mut *tx)
        .await
        .map_err(unique(format!("a domain named '{}' already exists", new.name)))?;
        let domain = Domain::from(row);
        audit(
            &mut tx,
            actor,
            "domain.create",
            Some(domain.id),
            &domain.name,
            None,
            Some(json(&domain)),
        )
        .await?;
        tx.commit().await?;
        Ok(domain)
    }

    async fn domain(&self, name: &str) -> Result<Domain> {
        sqlx::query_as::<_, DomainRow>(&format!(
            "SELECT {DOMAIN_COLS} FROM domains WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .map(Domain::from)
        .ok_or(StoreError::NotFound("domain"))
    }

    async fn domain_by_id(&self, id: DomainId) -> Result<Domain> {
        domain_row(&mut *self.pool.acquire().await?, id).await
    }

    async fn list_domains(&self, req: PageRequest) -> Result<Page<Domain>> {
        let rows: Vec<DomainRow> = sqlx::query_as(&format!(
            "SELECT {DOMAIN_COLS} FROM domains WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(req.after.unwrap_or(0))
        .bind(fetch_limit(req))
        .fetch_all(&self.pool)
        .await?;
        Ok(page(
            rows.into_iter().map(Domain::from).collect(),
            req,
            |d| d.id.0,
        ))
    }

    async fn update_domain(
        &self,
        actor: &Actor,
        id: DomainId,
        patch: &DomainPatch,
    ) -> Result<Domain> {
        let mut tx = self.write().await?;
        let before = domain_row(&mut tx, id).await?;
        let row: DomainRow = sqlx::query_as(&format!(
            "UPDATE domains SET description = $1, settings = $2, phone_policy = $3, updated_at = $4 WHERE id = $5 RETURNING {DOMAIN_COLS}"
        ))
        .bind(patch.description.as_ref().unwrap_or(&before.description))
        .bind(Json(patch.settings.as_ref().unwrap_or(&before.settings)))
        .bind(Json(patch.phone_policy.as_ref().unwrap_or(&before.phone_policy)))
        .bind(now())
        .bind(id.0)
        .fetch_one(&mut *tx)
        .await?;
        let after = Domain::from(row);
        audit(
            &mut tx,
            actor,
            "domain.update",
            Some(id),
            &after.name,
            Some(json(&before)),
            Some(json(&after)),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn delete_domain(&self, actor: &Actor, id: DomainId) -> Result<()> {
        let mut tx = self.write().await?;
        let before = domain_row(&mut tx, id).await?;
        audit(
            &mut tx,
            actor,
            "domain.delete",
            Some(id),
            &before.name,
            Some(json(&before)),
            None,
        )
        .await?;
        // Lines refer to accounts with RESTRICT; a domain goes with all it holds.
        sqlx::query("DELETE FROM device_lines WHERE device_id IN (SELECT id FROM devices WHERE domain_id = $1)")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM domains WHERE id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_category(
        &self,
        actor: &Actor,
        d: DomainId,
        new: &NewCategory,
    ) -> Result<Category> {
        let mut tx = self.write().await?;
        let row: CategoryRow = sqlx::query_as(&format!(
            "INSERT INTO categories (domain_id, name, provisioning, settings, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING {CATEGORY_COLS}"
        ))
        .bind(d.0)
        .bind(&new.name)
        .bind(new.provisioning)
        .bind(Json(&new.settings))
        .bind(now())
        .fetch_one(&mut *tx)
        .await
        .map_err(unique(format!("a category named '{}' already exists in this domain", new.name)))?;
        let category = Category::from(row);
        audit(
            &mut tx,
            actor,
            "category.create",
            Some(d),
            &category.name,
            None,
            Some(json(&category)),
        )
        .await?;
        tx.commit().await?;
        Ok(category)
    }

    async fn category(&self, d: DomainId, name: &str) -> Result<Category> {
        category_row(&mut *self.pool.acquire().await?, d, name).await
    }

    async fn list_categories(&self, d: DomainId, req: PageRequest) -> Result<Page<Category>> {
        let rows: Vec<CategoryRow> = sqlx::query_as(&format!(
            "SELECT {CATEGORY_COLS} FROM categories WHERE domain_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(d.0)
        .bind(req.after.unwrap_or(0))
        .bind(fetch_limit(req))
        .fetch_all(&self.pool)
        .await?;
        Ok(page(
            rows.into_iter().map(Category::from).collect(),
            req,
            |c| c.id,
        ))
    }

    async fn update_category(
        &self,
        actor: &Actor,
        d: DomainId,
        name: &str,
        patch: &CategoryPatch,
    ) -> Result<Category> {
        let mut tx = self.write().await?;
        let before = category_row(&mut tx, d, name).await?;
        let new_name = patch.name.as_ref().unwrap_or(&before.name);
        let row: CategoryRow = sqlx::query_as(&format!(
            "UPDATE categories SET name = $1, provisioning = $2, settings = $3, updated_at = $4 WHERE id = $5 RETURNING {CATEGORY_COLS}"
        ))
        .bind(new_name)
        .bind(patch.provisioning.unwrap_or(before.provisioning))
        .bind(Json(patch.settings.as_ref().unwrap_or(&before.settings)))
        .bind(now())
        .bind(before.id)
        .fetch_one(&mut *tx)
        .await
        .map_err(unique(format!("a category named '{new_name}' already exists in this domain")))?;
        let after = Category::from(row);
        audit(
            &mut tx,
            actor,
            "category.update",
            Some(d),
            &before.name,
            Some(json(&before)),
            Some(json(&after)),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn delete_category(&self, actor: &Actor, d: DomainId, name: &str) -> Result<()> {
        let mut tx = self.write().await?;
        let before = category_row(&mut tx, d, name).await?;
        sqlx::query("DELETE FROM categories WHERE id = $1")
            .bind(before.id)
            .execute(&mut *tx)
            .await?;
        audit(
            &mut tx,
            actor,
            "category.delete",
            Some(d),
            &before.name,
            Some(json(&before)),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The audit form of an account, noting a password change without the password.
pub(super) fn account_json(a: &SipAccount, password_changed: bool) -> serde_json::Value {
    let mut v = json(a);
    if password_changed {
        v["password"] = "(changed)".into();
    }
    v
}

/// Adds a user in the caller's transaction, with its audit entry.
pub(super) async fn insert_user(
    c: &mut Conn,
    actor: &Actor,
    d: DomainId,
    new: &NewUser,
    password_hash: Option<&str>,
) -> Result<User> {
    let row: UserRow = sqlx::query_as(&format!(
        "INSERT INTO users (domain_id, username, display_name, email, password_hash, enabled, settings, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING {USER_COLS}"
    ))
    .bind(d.0)
    .bind(&new.username)
    .bind(&new.display_name)
    .bind(&new.email)
    .bind(password_hash)
    .bind(new.enabled)
    .bind(Json(&new.settings))
    .bind(now())
    .fetch_one(&mut *c)
    .await
    .map_err(unique(format!(
        "a user named '{}' already exists in this domain",
        new.username
    )))?;
    let user = User::from(row);
    audit(
        c,
        actor,
        "user.create",
        Some(d),
        &user.username,
        None,
        Some(json(&user)),
    )
    .await?;
    Ok(user)
}

/// Adds a SIP account of user `user_id` in the caller's transaction, with its audit entry.
pub(super) async fn insert_account(
    c: &mut Conn,
    cipher: &Cipher,
    actor: &Actor,
    d: DomainId,
    user_id: i64,
    new: &NewSipAccount,
) -> Result<SipAccount> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO sip_accounts (domain_id, user_id, sip_user, auth_user, password_enc, display_name, registrar, \
         outbound_proxy, transport, options, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING id",
    )
    .bind(d.0)
    .bind(user_id)
    .bind(&new.sip_user)
    .bind(&new.auth_user)
    .bind(cipher.encrypt(new.password.expose()))
    .bind(&new.display_name)
    .bind(&new.registrar)
    .bind(&new.outbound_proxy)
    .bind(new.transport.as_str())
    .bind(Json(&new.options))
    .bind(now())
    .fetch_one(&mut *c)
    .await
    .map_err(unique(format!(
        "a SIP account '{}' already exists in this domain",
        new.sip_user
    )))?;
    let account = account_row(c, d, id).await?;
    audit(
        c,
        actor,
        "account.create",
        Some(d),
        &account.sip_user,
        None,
        Some(account_json(&account, true)),
    )
    .await?;
    Ok(account)
}

#[async_trait]
impl UserStore for SqlStore {
    async fn create_user(
        &self,
        actor: &Actor,
        d: DomainId,
        new: &NewUser,
        password_hash: Option<&str>,
    ) -> Result<User> {
        let mut tx = self.write().await?;
        let user = insert_user(&mut tx, actor, d, new, password_hash).await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn user(&self, d: DomainId, username: &str) -> Result<User> {
        user_row(&mut *self.pool.acquire().await?, d, username).await
    }

    async fn list_users(
        &self,
        d: DomainId,
        search: Option<&str>,
        req: PageRequest,
    ) -> Result<Page<User>> {
        let mut q = sqlx::QueryBuilder::<super::Db>::new(format!(
            "SELECT {USER_COLS} FROM users WHERE domain_id = "
        ));
        q.push_bind(d.0)
            .push(" AND id > ")
            .push_bind(req.after.unwrap_or(0));
        if let Some(search) = search {
            let pattern = format!("%{}%", like_literal(&search.to_lowercase()));
            q.push(" AND (LOWER(username) LIKE ")
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\' OR LOWER(display_name) LIKE ")
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\' OR LOWER(email) LIKE ")
                .push_bind(pattern)
                .push(" ESCAPE '\\')");
        }
        q.push(" ORDER BY id LIMIT ").push_bind(fetch_limit(req));
        let rows: Vec<UserRow> = q.build_query_as().fetch_all(&self.pool).await?;
        Ok(page(rows.into_iter().map(User::from).collect(), req, |u| {
            u.id
        }))
    }

    async fn update_user(
        &self,
        actor: &Actor,
        d: DomainId,
        username: &str,
        patch: &UserPatch,
        password_hash: Option<&str>,
    ) -> Result<User> {
        let mut tx = self.write().await?;
        let before = user_row(&mut tx, d, username).await?;
        let row: UserRow = sqlx::query_as(&format!(
            "UPDATE users SET display_name = $1, email = $2, enabled = $3, settings = $4, updated_at = $5, \
             password_hash = COALESCE($6, password_hash) WHERE id = $7 RETURNING {USER_COLS}"
        ))
        .bind(patch.display_name.as_ref().unwrap_or(&before.display_name))
        .bind(patch.email.as_ref().unwrap_or(&before.email))
        .bind(patch.enabled.unwrap_or(before.enabled))
        .bind(Json(patch.settings.as_ref().unwrap_or(&before.settings)))
        .bind(now())
        .bind(password_hash)
        .bind(before.id)
        .fetch_one(&mut *tx)
        .await?;
        let after = User::from(row);
        let mut after_json = json(&after);
        if password_hash.is_some() {
            after_json["password"] = "(changed)".into();
            // Signed in with the old password: signed out.
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(before.id)
                .execute(&mut *tx)
                .await?;
        }
        audit(
            &mut tx,
            actor,
            "user.update",
            Some(d),
            username,
            Some(json(&before)),
            Some(after_json),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn delete_user(&self, actor: &Actor, d: DomainId, username: &str) -> Result<()> {
        let mut tx = self.write().await?;
        let before = user_row(&mut tx, d, username).await?;
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(before.id)
            .execute(&mut *tx)
            .await
            .map_err(in_use(format!("user '{username}' has SIP accounts that are lines on devices; remove those lines first")))?;
        audit(
            &mut tx,
            actor,
            "user.delete",
            Some(d),
            username,
            Some(json(&before)),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn user_password_hash(&self, d: DomainId, username: &str) -> Result<Option<String>> {
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT password_hash FROM users WHERE domain_id = $1 AND username = $2",
        )
        .bind(d.0)
        .bind(username)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("user"))
    }

    async fn create_account(
        &self,
        actor: &Actor,
        d: DomainId,
        username: &str,
        new: &NewSipAccount,
    ) -> Result<SipAccount> {
        let mut tx = self.write().await?;
        let user = user_row(&mut tx, d, username).await?;
        let account = insert_account(&mut tx, &self.cipher, actor, d, user.id, new).await?;
        tx.commit().await?;
        Ok(account)
    }

    async fn account(&self, d: DomainId, id: i64) -> Result<SipAccount> {
        account_row(&mut *self.pool.acquire().await?, d, id).await
    }

    async fn list_accounts(
        &self,
        d: DomainId,
        username: Option<&str>,
        req: PageRequest,
    ) -> Result<Page<SipAccount>> {
        let mut q = sqlx::QueryBuilder::<super::Db>::new(ACCOUNT_SELECT);
        q.push(" WHERE a.domain_id = ")
            .push_bind(d.0)
            .push(" AND a.id > ")
            .push_bind(req.after.unwrap_or(0));
        // By the owner's id, so the index on it is used.
        if let Some(username) = username {
            q.push(" AND a.user_id = (SELECT id FROM users WHERE domain_id = ")
                .push_bind(d.0)
                .push(" AND username = ")
                .push_bind(username.to_owned())
                .push(")");
        }
        q.push(" ORDER BY a.id LIMIT ").push_bind(fetch_limit(req));
        let rows: Vec<AccountRow> = q.build_query_as().fetch_all(&self.pool).await?;
        Ok(page(
            rows.into_iter().map(SipAccount::from).collect(),
            req,
            |a| a.id,
        ))
    }

    async fn update_account(
        &self,
        actor: &Actor,
        d: DomainId,
        id: i64,
        patch: &SipAccountPatch,
    ) -> Result<SipAccount> {
        let mut tx = self.write().await?;
        let before = account_row(&mut tx, d, id).await?;
        let sip_user = patch.sip_user.as_ref().unwrap_or(&before.sip_user);
        sqlx::query(
            "UPDATE sip_accounts SET sip_user = $1, auth_user = $2, display_name = $3, registrar = $4, outbound_proxy = $5, \
             transport = $6, options = $7, updated_at = $8, password_enc = COALESCE($9, password_enc) WHERE id = $10",
        )
        .bind(sip_user)
        .bind(patch.auth_user.as_ref().unwrap_or(&before.auth_user))
        .bind(patch.display_name.as_ref().unwrap_or(&before.display_name))
        .bind(patch.registrar.as_ref().unwrap_or(&before.registrar))
        .bind(patch.outbound_proxy.as_ref().unwrap_or(&before.outbound_proxy))
        .bind(patch.transport.unwrap_or(before.transport).as_str())
        .bind(Json(patch.options.as_ref().unwrap_or(&before.options)))
        .bind(now())
        .bind(patch.password.as_ref().map(|p| self.cipher.encrypt(p.expose())))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(unique(format!("a SIP account '{sip_user}' already exists in this domain")))?;
        let after = account_row(&mut tx, d, id).await?;
        let changed = patch.password.is_some();
        audit(
            &mut tx,
            actor,
            "account.update",
            Some(d),
            &before.sip_user,
            Some(json(&before)),
            Some(account_json(&after, changed)),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn delete_account(&self, actor: &Actor, d: DomainId, id: i64) -> Result<()> {
        let mut tx = self.write().await?;
        let before = account_row(&mut tx, d, id).await?;
        sqlx::query("DELETE FROM sip_accounts WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(in_use(format!(
                "SIP account '{}' is a line on a device; remove the line first",
                before.sip_user
            )))?;
        audit(
            &mut tx,
            actor,
            "account.delete",
            Some(d),
            &before.sip_user,
            Some(json(&before)),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn account_password(&self, d: DomainId, id: i64) -> Result<SecretString> {
        let blob: Vec<u8> = sqlx::query_scalar(
            "SELECT password_enc FROM sip_accounts WHERE domain_id = $1 AND id = $2",
        )
        .bind(d.0)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("SIP account"))?;
        Ok(self.cipher.decrypt(&blob)?)
    }
}

/// `text` for a LIKE pattern with `\` as its escape: `%`, `_` and `\` match themselves.
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
