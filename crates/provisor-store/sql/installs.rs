//! Softphone installations, and the accounts and settings their users' apps receive.

use async_trait::async_trait;
use provisor_domain::model::*;
use provisor_domain::phone::PhoneLine;
use provisor_domain::settings::Settings;
use provisor_store::{InstallSeen, Result, SoftphoneStore, SoftphoneUser, StoreError};
use serde_json::json;
use sqlx::types::Json;

use super::directory::user_row;
use super::{SqlStore, audit, now, ts};

#[derive(sqlx::FromRow)]
struct AccountRow {
    sip_user: String,
    auth_user: String,
    password_enc: Vec<u8>,
    display_name: String,
    registrar: String,
    outbound_proxy: String,
    transport: String,
}

#[derive(sqlx::FromRow)]
struct InstallRow {
    id: i64,
    username: String,
    app: String,
    install_id: String,
    first_contact: i64,
    last_contact: i64,
    last_ip: String,
    user_agent: String,
    revoked_at: Option<i64>,
}

impl From<InstallRow> for Install {
    fn from(r: InstallRow) -> Self {
        Install {
            id: r.id,
            user: r.username,
            app: r.app,
            install_id: r.install_id,
            first_contact: ts(r.first_contact),
            last_contact: ts(r.last_contact),
            last_ip: r.last_ip,
            user_agent: r.user_agent,
            revoked_at: r.revoked_at.map(ts),
        }
    }
}

/// An installation seen before.
fn known(id: i64, revoked: Option<i64>, digest: String, delivered_at: i64) -> InstallSeen {
    InstallSeen {
        id,
        new: false,
        revoked: revoked.is_some(),
        digest,
        delivered_at,
    }
}

#[async_trait]
impl SoftphoneStore for SqlStore {
    async fn softphone_user(&self, d: DomainId, username: &str) -> Result<SoftphoneUser> {
        let mut c = self.pool.acquire().await?;
        let user = user_row(&mut c, d, username).await?;
        let rows: Vec<AccountRow> = sqlx::query_as(
            "SELECT sip_user, auth_user, password_enc, display_name, registrar, outbound_proxy, transport \
             FROM sip_accounts WHERE domain_id = $1 AND user_id = $2 ORDER BY id",
        )
        .bind(d.0)
        .bind(user.id)
        .fetch_all(&mut *c)
        .await?;
        let accounts = rows
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                Ok(PhoneLine {
                    position: i as u32 + 1,
                    sip_user: a.sip_user,
                    auth_user: a.auth_user,
                    password: self.cipher.decrypt(&a.password_enc)?,
                    display_name: a.display_name,
                    registrar: a.registrar,
                    outbound_proxy: a.outbound_proxy,
                    transport: a.transport.parse().unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let domain: Json<Settings> =
            sqlx::query_scalar("SELECT settings FROM domains WHERE id = $1")
                .bind(d.0)
                .fetch_one(&mut *c)
                .await?;
        let layers = vec![domain.0, user.settings.clone()];
        Ok(SoftphoneUser {
            user,
            accounts,
            layers,
        })
    }

    async fn install_contact(
        &self,
        d: DomainId,
        username: &str,
        app: &str,
        install_id: &str,
        ip: &str,
        user_agent: &str,
    ) -> Result<InstallSeen> {
        let mut tx = self.write().await?;
        let user = user_row(&mut tx, d, username).await?;
        let at = now();
        let existing: Option<(i64, i64, Option<i64>, String, i64)> = sqlx::query_as(
            "SELECT id, user_id, revoked_at, digest, delivered_at FROM installs WHERE app = $1 AND install_id = $2",
        )
        .bind(app)
        .bind(install_id)
        .fetch_optional(&mut *tx)
        .await?;
        let seen = match existing {
            Some((id, owner, revoked, digest, delivered_at)) if owner == user.id => {
                sqlx::query(
                    "UPDATE installs SET last_contact = $1, last_ip = $2, user_agent = $3 WHERE id = $4",
                )
                .bind(at)
                .bind(ip)
                .bind(user_agent)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                known(id, revoked, digest, delivered_at)
            }
            // The installation now signs in as someone else: it starts afresh.
            Some((id, _, _, _, _)) => {
                sqlx::query(
                    "UPDATE installs SET domain_id = $1, user_id = $2, first_contact = $3, last_contact = $3, \
                     last_ip = $4, user_agent = $5, digest = '', delivered_at = 0, revoked_at = NULL WHERE id = $6",
                )
                .bind(d.0)
                .bind(user.id)
                .bind(at)
                .bind(ip)
                .bind(user_agent)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                InstallSeen {
                    id,
                    new: true,
                    revoked: false,
                    digest: String::new(),
                    delivered_at: 0,
                }
            }
            None => {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO installs (domain_id, user_id, app, install_id, first_contact, last_contact, last_ip, user_agent) \
                     VALUES ($1, $2, $3, $4, $5, $5, $6, $7) RETURNING id",
                )
                .bind(d.0)
                .bind(user.id)
                .bind(app)
                .bind(install_id)
                .bind(at)
                .bind(ip)
                .bind(user_agent)
                .fetch_one(&mut *tx)
                .await?;
                InstallSeen {
                    id,
                    new: true,
                    revoked: false,
                    digest: String::new(),
                    delivered_at: 0,
                }
            }
        };
        tx.commit().await?;
        Ok(seen)
    }

    async fn find_install(
        &self,
        app: &str,
        install_id: &str,
    ) -> Result<Option<(DomainId, String, InstallSeen)>> {
        let row: Option<(i64, i64, String, Option<i64>, String, i64)> = sqlx::query_as(
            "SELECT i.id, i.domain_id, u.username, i.revoked_at, i.digest, i.delivered_at FROM installs i \
             JOIN users u ON u.id = i.user_id WHERE i.app = $1 AND i.install_id = $2",
        )
        .bind(app)
        .bind(install_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(id, d, username, revoked, digest, delivered_at)| {
            (
                DomainId(d),
                username,
                known(id, revoked, digest, delivered_at),
            )
        }))
    }

    async fn install_delivered(&self, id: i64, digest: &str) -> Result<()> {
        sqlx::query("UPDATE installs SET digest = $1, delivered_at = $2 WHERE id = $3")
            .bind(digest)
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_installs(&self, d: DomainId, username: &str) -> Result<Vec<Install>> {
        let mut c = self.pool.acquire().await?;
        let user = user_row(&mut c, d, username).await?;
        let rows: Vec<InstallRow> = sqlx::query_as(
            "SELECT i.id, u.username, i.app, i.install_id, i.first_contact, i.last_contact, i.last_ip, \
             i.user_agent, i.revoked_at FROM installs i JOIN users u ON u.id = i.user_id \
             WHERE i.user_id = $1 ORDER BY i.id",
        )
        .bind(user.id)
        .fetch_all(&mut *c)
        .await?;
        Ok(rows.into_iter().map(Install::from).collect())
    }

    async fn revoke_install(
        &self,
        actor: &Actor,
        d: DomainId,
        username: &str,
        id: i64,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        let user = user_row(&mut tx, d, username).await?;
        let done = sqlx::query(
            "UPDATE installs SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND user_id = $3",
        )
        .bind(now())
        .bind(id)
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("install"));
        }
        audit(
            &mut tx,
            actor,
            "install.revoke",
            Some(d),
            username,
            None,
            Some(json!({"install": id})),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
