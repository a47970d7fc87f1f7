//! API tokens and the audit log.

use async_trait::async_trait;
use provisor_domain::model::*;
use provisor_store::{AuditStore, Page, PageRequest, Result, StoreError, TokenGrant, TokenStore};
use sqlx::QueryBuilder;
use sqlx::types::Json;

use super::{Conn, Db, SqlStore, audit, fetch_limit, json, now, page, ts};

const TOKEN_SELECT: &str = "SELECT t.id, t.name, t.role, t.domain_id, d.name AS domain, t.hint, t.created_at, t.revoked_at \
     FROM api_tokens t LEFT JOIN domains d ON d.id = t.domain_id";

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    name: String,
    role: String,
    domain_id: Option<i64>,
    domain: Option<String>,
    hint: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TokenRow {
    fn grant(self) -> Result<TokenGrant> {
        Ok(TokenGrant {
            domain: self.domain_id.map(DomainId),
            token: ApiToken {
                id: self.id,
                name: self.name,
                role: self.role.parse()?,
                domain: self.domain,
                hint: self.hint,
                created_at: ts(self.created_at),
                revoked_at: self.revoked_at.map(ts),
            },
        })
    }
}

/// `TOKEN_SELECT` limited to one token and, for a domain admin, to their domain.
fn token_query(id: i64, scope: Option<DomainId>) -> QueryBuilder<'static, Db> {
    let mut q = QueryBuilder::new(TOKEN_SELECT);
    q.push(" WHERE t.id = ").push_bind(id);
    if let Some(d) = scope {
        q.push(" AND t.domain_id = ").push_bind(d.0);
    }
    q
}

async fn token_by_id(c: &mut Conn, id: i64) -> Result<ApiToken> {
    Ok(token_query(id, None)
        .build_query_as::<TokenRow>()
        .fetch_one(c)
        .await?
        .grant()?
        .token)
}

#[async_trait]
impl TokenStore for SqlStore {
    async fn create_token(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        domain: Option<DomainId>,
        hash: &str,
        hint: &str,
    ) -> Result<ApiToken> {
        let mut tx = self.write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_tokens (name, role, domain_id, hash, hint, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(domain.map(|d| d.0))
        .bind(hash)
        .bind(hint)
        .bind(now())
        .fetch_one(&mut *tx)
        .await?;
        let token = token_by_id(&mut tx, id).await?;
        audit(
            &mut tx,
            actor,
            "token.create",
            domain,
            &format!("token:{id}"),
            None,
            Some(json(&token)),
        )
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenGrant>> {
        sqlx::query_as::<_, TokenRow>(&format!(
            "{TOKEN_SELECT} WHERE t.hash = $1 AND t.revoked_at IS NULL"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?
        .map(TokenRow::grant)
        .transpose()
    }

    async fn list_tokens(
        &self,
        scope: Option<DomainId>,
        req: PageRequest,
    ) -> Result<Page<ApiToken>> {
        let mut q = QueryBuilder::<Db>::new(TOKEN_SELECT);
        q.push(" WHERE t.id > ").push_bind(req.after.unwrap_or(0));
        if let Some(d) = scope {
            q.push(" AND t.domain_id = ").push_bind(d.0);
        }
        q.push(" ORDER BY t.id LIMIT ").push_bind(fetch_limit(req));
        let rows = q.build_query_as::<TokenRow>().fetch_all(&self.pool).await?;
        let tokens = rows
            .into_iter()
            .map(|r| r.grant().map(|g| g.token))
            .collect::<Result<Vec<_>>>()?;
        Ok(page(tokens, req, |t| t.id))
    }

    async fn revoke_token(
        &self,
        actor: &Actor,
        scope: Option<DomainId>,
        id: i64,
    ) -> Result<ApiToken> {
        let mut tx = self.write().await?;
        let before = token_query(id, scope)
            .build_query_as::<TokenRow>()
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("token"))?
            .grant()?;
        sqlx::query("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
            .bind(now())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let after = token_by_id(&mut tx, id).await?;
        audit(
            &mut tx,
            actor,
            "token.revoke",
            before.domain,
            &format!("token:{id}"),
            Some(json(&before.token)),
            Some(json(&after)),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at: i64,
    actor: String,
    action: String,
    domain_name: Option<String>,
    target: String,
    before: Option<Json<serde_json::Value>>,
    after: Option<Json<serde_json::Value>>,
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn record_audit(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        let mut c = self.pool.acquire().await?;
        audit(&mut c, actor, action, None, target, None, Some(detail)).await
    }

    async fn list_audit(
        &self,
        scope: Option<DomainId>,
        req: PageRequest,
    ) -> Result<Page<AuditEntry>> {
        let mut q = QueryBuilder::<Db>::new(
            "SELECT id, at, actor, action, domain_name, target, before, after FROM audit_log WHERE id < ",
        );
        q.push_bind(req.after.unwrap_or(i64::MAX));
        if let Some(d) = scope {
            q.push(" AND domain_id = ").push_bind(d.0);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(fetch_limit(req));
        let rows = q.build_query_as::<AuditRow>().fetch_all(&self.pool).await?;
        let entries = rows
            .into_iter()
            .map(|r| AuditEntry {
                id: r.id,
                at: ts(r.at),
                actor: r.actor,
                action: r.action,
                domain: r.domain_name,
                target: r.target,
                before: r.before.map(|j| j.0),
                after: r.after.map(|j| j.0),
            })
            .collect();
        Ok(page(entries, req, |e| e.id))
    }
}
