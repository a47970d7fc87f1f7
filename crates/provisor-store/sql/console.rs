//! Console administrators and sessions (console and self-service).

use async_trait::async_trait;
use provisor_domain::model::*;
use provisor_store::{
    Admin, AdminLogin, ConsoleStore, Result, Session, SessionLifetime, SessionOf, StoreError,
};
use sqlx::QueryBuilder;

use super::{Conn, Db, SqlStore, audit, json, now, ts, unique};

const ADMIN_SELECT: &str = "SELECT a.id, a.name, a.role, a.domain_id, d.name AS domain, a.created_at, a.password_hash \
     FROM admins a LEFT JOIN domains d ON d.id = a.domain_id";

#[derive(sqlx::FromRow)]
struct AdminRow {
    id: i64,
    name: String,
    role: String,
    domain_id: Option<i64>,
    domain: Option<String>,
    created_at: i64,
    password_hash: String,
}

impl AdminRow {
    fn login(self) -> Result<AdminLogin> {
        Ok(AdminLogin {
            domain: self.domain_id.map(DomainId),
            admin: Admin {
                id: self.id,
                name: self.name,
                role: self.role.parse()?,
                domain: self.domain,
                created_at: ts(self.created_at),
            },
            password_hash: self.password_hash,
        })
    }
}

/// `ADMIN_SELECT` for one name, limited to a domain's administrators if `scope` is set.
async fn admin_named(c: &mut Conn, scope: Option<DomainId>, name: &str) -> Result<AdminLogin> {
    let mut q = QueryBuilder::<Db>::new(ADMIN_SELECT);
    q.push(" WHERE a.name = ").push_bind(name.to_owned());
    if let Some(d) = scope {
        q.push(" AND a.domain_id = ").push_bind(d.0);
    }
    q.build_query_as::<AdminRow>()
        .fetch_optional(c)
        .await?
        .ok_or(StoreError::NotFound("administrator"))?
        .login()
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

/// An idle end written less than this long ago is not written again.
const IDLE_WRITE_EVERY_MS: i64 = 60_000;

#[async_trait]
impl ConsoleStore for SqlStore {
    async fn create_admin(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        domain: Option<DomainId>,
        password_hash: &str,
    ) -> Result<Admin> {
        let name = provisor_domain::names::admin_name(name)?;
        if (role == Role::Operator) != domain.is_none() {
            return Err(provisor_domain::Invalid::new(
                "domain",
                "a domain admin needs a domain, an operator has none",
            )
            .into());
        }
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO admins (name, role, domain_id, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&name)
        .bind(role.as_str())
        .bind(domain.map(|d| d.0))
        .bind(password_hash)
        .bind(now())
        .execute(&mut *tx)
        .await
        .map_err(unique(format!("administrator '{name}' exists")))?;
        let admin = admin_named(&mut tx, None, &name).await?.admin;
        audit(
            &mut tx,
            actor,
            "admin.create",
            domain,
            &format!("admin:{name}"),
            None,
            Some(json(&admin)),
        )
        .await?;
        tx.commit().await?;
        Ok(admin)
    }

    async fn list_admins(&self, scope: Option<DomainId>) -> Result<Vec<Admin>> {
        let mut q = QueryBuilder::<Db>::new(ADMIN_SELECT);
        if let Some(d) = scope {
            q.push(" WHERE a.domain_id = ").push_bind(d.0);
        }
        q.push(" ORDER BY a.name");
        q.build_query_as::<AdminRow>()
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| r.login().map(|l| l.admin))
            .collect()
    }

    async fn delete_admin(&self, actor: &Actor, scope: Option<DomainId>, name: &str) -> Result<()> {
        let mut tx = self.write().await?;
        let before = admin_named(&mut tx, scope, name).await?;
        sqlx::query("DELETE FROM admins WHERE id = $1")
            .bind(before.admin.id)
            .execute(&mut *tx)
            .await?;
        audit(
            &mut tx,
            actor,
            "admin.delete",
            before.domain,
            &format!("admin:{name}"),
            Some(json(&before.admin)),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_admin_password(
        &self,
        actor: &Actor,
        scope: Option<DomainId>,
        name: &str,
        password_hash: &str,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        let before = admin_named(&mut tx, scope, name).await?;
        sqlx::query("UPDATE admins SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(before.admin.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE admin_id = $1")
            .bind(before.admin.id)
            .execute(&mut *tx)
            .await?;
        audit(
            &mut tx,
            actor,
            "admin.password",
            before.domain,
            &format!("admin:{name}"),
            None,
            Some(serde_json::json!({"password": "(changed)"})),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn admin_login(&self, name: &str) -> Result<Option<AdminLogin>> {
        let mut c = self.pool.acquire().await?;
        match admin_named(&mut c, None, &name.trim().to_lowercase()).await {
            Ok(l) => Ok(Some(l)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create_session(
        &self,
        hash: &str,
        of: &SessionOf,
        lifetime: SessionLifetime,
    ) -> Result<()> {
        let at = now();
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR idle_until <= $1")
            .bind(at)
            .execute(&mut *tx)
            .await?;
        let (admin, user) = match of {
            SessionOf::Admin(id) => (Some(*id), None),
            SessionOf::User { domain, username } => {
                let id: i64 = sqlx::query_scalar(
                    "SELECT id FROM users WHERE domain_id = $1 AND username = $2",
                )
                .bind(domain.0)
                .bind(username)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("user"))?;
                (None, Some(id))
            }
        };
        sqlx::query(
            "INSERT INTO sessions (hash, admin_id, user_id, created_at, expires_at, idle_until) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(hash)
        .bind(admin)
        .bind(user)
        .bind(at)
        .bind(at.saturating_add(millis(lifetime.absolute)))
        .bind(at.saturating_add(millis(lifetime.idle)))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session(&self, hash: &str, idle: std::time::Duration) -> Result<Option<Session>> {
        let at = now();
        let row: Option<(Option<i64>, Option<i64>, Option<String>, i64)> = sqlx::query_as(
            "SELECT s.admin_id, u.domain_id, u.username, s.idle_until FROM sessions s \
             LEFT JOIN users u ON u.id = s.user_id \
             WHERE s.hash = $1 AND s.expires_at > $2 AND s.idle_until > $2 \
             AND (s.user_id IS NULL OR u.enabled)",
        )
        .bind(hash)
        .bind(at)
        .fetch_optional(&self.pool)
        .await?;
        let Some((admin_id, domain, username, idle_until)) = row else {
            return Ok(None);
        };
        let idle_end = at.saturating_add(millis(idle));
        if idle_end - idle_until >= IDLE_WRITE_EVERY_MS {
            sqlx::query("UPDATE sessions SET idle_until = $1 WHERE hash = $2 AND idle_until < $1")
                .bind(idle_end)
                .bind(hash)
                .execute(&self.pool)
                .await?;
        }
        Ok(match (admin_id, domain, username) {
            (Some(id), _, _) => {
                let mut q = QueryBuilder::<Db>::new(ADMIN_SELECT);
                q.push(" WHERE a.id = ").push_bind(id);
                match q
                    .build_query_as::<AdminRow>()
                    .fetch_optional(&self.pool)
                    .await?
                {
                    Some(r) => {
                        let l = r.login()?;
                        Some(Session::Admin {
                            admin: l.admin,
                            domain: l.domain,
                        })
                    }
                    None => None,
                }
            }
            (None, Some(d), Some(username)) => Some(Session::User {
                domain: DomainId(d),
                username,
            }),
            _ => None,
        })
    }

    async fn end_session(&self, hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE hash = $1")
            .bind(hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
