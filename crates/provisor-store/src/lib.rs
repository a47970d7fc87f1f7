//! Storage for Provisor: the traits every backend implements, the one error type, and the
//! shared test suite (feature `testsuite`) that runs unchanged against every backend.
//!
//! The query code itself lives in `../sql/` and is compiled into each backend crate
//! (`provisor-store-sqlite`, `provisor-store-postgres`) with that backend's concrete sqlx
//! types, so both run the same statements without `sqlx::Any`. What differs between
//! backends (migrations, connection set-up, how a write transaction begins) stays in the
//! backend crate.
//!
//! Every method that touches tenant data takes the `DomainId` it is scoped to, and every
//! statement filters by it: a caller holding domain A's id cannot reach domain B's rows.
#![forbid(unsafe_code)]

use async_trait::async_trait;
use provisor_domain::code::{IssuedCode, Redemption, Rollout, RolloutEntry};
use provisor_domain::csv::{Plan, Row, RowError};
use provisor_domain::innovaphone::{
    InnovaphoneDevice, InnovaphonePatch, InnovaphoneSettings, PbxPhone, SysclientReport,
};
use provisor_domain::job::{FirmwarePin, Job, JobPatch, JobSpec, Progress, ProgressCounts};
use provisor_domain::model::*;
use provisor_domain::phone::{Contact, PhoneDevice, Refusal};
use provisor_domain::secret::{CipherError, SecretString};
use provisor_domain::template::{StoredTemplate, TemplateOrigin};
use provisor_domain::{Invalid, Mac};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod changes;
#[cfg(feature = "testsuite")]
pub mod suite;
#[cfg(feature = "testsuite")]
pub mod testdb;

pub use changes::Changes;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist, or not in the caller's domain.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique name or MAC is taken, or the object is still in use.
    #[error("{0}")]
    Conflict(String),
    /// The request refers to something that is not there (a category, a user, an account).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// An import had bad rows; nothing was written.
    #[error("{} rows of the import are bad", .0.len())]
    Rows(Vec<RowError>),
    #[error(transparent)]
    Cipher(#[from] CipherError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    pub fn is_unique_violation(e: &sqlx::Error) -> bool {
        e.as_database_error()
            .is_some_and(|d| d.is_unique_violation())
    }
    /// Also SQLite's `ON DELETE RESTRICT`, which it enforces with an internal trigger and
    /// reports as `SQLITE_CONSTRAINT_TRIGGER` (extended code 1811), a code sqlx does not
    /// classify as a foreign-key violation. (PostgreSQL codes are SQLSTATEs, never "1811".)
    pub fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
        e.as_database_error().is_some_and(|d| {
            d.is_foreign_key_violation()
                || (d.code().as_deref() == Some("1811")
                    && d.message().contains("FOREIGN KEY constraint failed"))
        })
    }
}

/// Which page of a list: up to `limit` items with ids after `after` (for the audit log,
/// which lists newest first, ids before it).
#[derive(Clone, Copy, Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageRequest {
    /// Items per page, 1 to 1000 (default 100).
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub limit: u32,
    /// The `next` cursor of the previous page.
    pub after: Option<i64>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: default_limit(),
            after: None,
        }
    }
}

/// Items per page when a request does not say.
pub fn default_limit() -> u32 {
    100
}

impl PageRequest {
    pub const MAX_LIMIT: u32 = 1000;
    pub fn validate(self) -> Result<Self, Invalid> {
        if !(1..=Self::MAX_LIMIT).contains(&self.limit) {
            return Err(Invalid::new(
                "limit",
                format!("must be from 1 to {}", Self::MAX_LIMIT),
            ));
        }
        Ok(self)
    }
}

/// Every item of a paged list, fetched page by page (largest pages).
pub async fn all_pages<T, F, Fut>(mut fetch: F) -> Result<Vec<T>>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>>>,
{
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = fetch(PageRequest {
            limit: PageRequest::MAX_LIMIT,
            after,
        })
        .await?;
        after = page.next;
        out.extend(page.items);
        if after.is_none() {
            return Ok(out);
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next: Option<i64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ImportSummary {
    pub users_created: u64,
    pub users_updated: u64,
    pub accounts_created: u64,
    pub accounts_updated: u64,
    pub devices_created: u64,
    pub devices_updated: u64,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

/// Installation-level operations.
#[async_trait]
pub trait BaseStore: Send + Sync {
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;
    async fn ping(&self) -> Result<()>;
    fn pool_stats(&self) -> PoolStats;
    async fn close(&self);
    async fn meta_get(&self, key: &str) -> Result<Option<String>>;
    /// Sets `key` unless it is set already; true if this call set it.
    async fn meta_init(&self, key: &str, value: &str) -> Result<bool>;
    async fn meta_remove(&self, key: &str) -> Result<()>;
    /// The failure counts of `keys` (a fresh row for a key without one), changed by
    /// `change` (rows in the order of `keys`) and written back in one transaction that
    /// holds them: failure limits shared by every node of an installation.
    async fn with_limits(
        &self,
        keys: &[String],
        change: &mut (dyn for<'r> FnMut(&'r mut [LimitRow]) + Send),
    ) -> Result<()>;
    /// Drops counts that began, and locks that ended, before `before` (ms).
    async fn prune_limits(&self, before: i64) -> Result<u64>;
    /// Takes (or renews) the lease `name` for `node` for `lease_ms`, unless another node
    /// holds it: whether `node` holds it now. For work one node does at a time.
    async fn take_lease(&self, name: &str, node: &str, lease_ms: i64) -> Result<bool>;
    /// Moves `changes` on whenever the database says what phones' files are made from
    /// changed, by any node or process; runs until the task is dropped. While it cannot
    /// hear of changes (the database is unreachable), `changes` has no generation.
    async fn follow_changes(&self, changes: std::sync::Arc<Changes>);
}

#[async_trait]
pub trait DomainStore: Send + Sync {
    async fn create_domain(&self, actor: &Actor, new: &NewDomain) -> Result<Domain>;
    async fn domain(&self, name: &str) -> Result<Domain>;
    async fn domain_by_id(&self, id: DomainId) -> Result<Domain>;
    async fn list_domains(&self, page: PageRequest) -> Result<Page<Domain>>;
    async fn update_domain(
        &self,
        actor: &Actor,
        id: DomainId,
        patch: &DomainPatch,
    ) -> Result<Domain>;
    async fn delete_domain(&self, actor: &Actor, id: DomainId) -> Result<()>;

    async fn create_category(
        &self,
        actor: &Actor,
        d: DomainId,
        new: &NewCategory,
    ) -> Result<Category>;
    async fn category(&self, d: DomainId, name: &str) -> Result<Category>;
    async fn list_categories(&self, d: DomainId, page: PageRequest) -> Result<Page<Category>>;
    async fn update_category(
        &self,
        actor: &Actor,
        d: DomainId,
        name: &str,
        patch: &CategoryPatch,
    ) -> Result<Category>;
    async fn delete_category(&self, actor: &Actor, d: DomainId, name: &str) -> Result<()>;
}

/// Users and their SIP accounts. Portal passwords arrive already hashed: hashing is slow
/// and belongs off the executor, in the caller.
#[async_trait]
pub trait UserStore: Send + Sync {
    async fn create_user(
        &self,
        actor: &Actor,
        d: DomainId,
        new: &NewUser,
        password_hash: Option<&str>,
    ) -> Result<User>;
    async fn user(&self, d: DomainId, username: &str) -> Result<User>;
    /// The domain's users, by id; with `search`, those whose username, display name or
    /// e-mail address holds it (ignoring case).
    async fn list_users(
        &self,
        d: DomainId,
        search: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<User>>;
    async fn update_user(
        &self,
        actor: &Actor,
        d: DomainId,
        username: &str,
        patch: &UserPatch,
        password_hash: Option<&str>,
    ) -> Result<User>;
    async fn delete_user(&self, actor: &Actor, d: DomainId, username: &str) -> Result<()>;
    /// The stored argon2id hash, if the user has a portal password.
    async fn user_password_hash(&self, d: DomainId, username: &str) -> Result<Option<String>>;

    async fn create_account(
        &self,
        actor: &Actor,
        d: DomainId,
        username: &str,
        new: &NewSipAccount,
    ) -> Result<SipAccount>;
    async fn account(&self, d: DomainId, id: i64) -> Result<SipAccount>;
    async fn list_accounts(
        &self,
        d: DomainId,
        username: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<SipAccount>>;
    async fn update_account(
        &self,
        actor: &Actor,
        d: DomainId,
        id: i64,
        patch: &SipAccountPatch,
    ) -> Result<SipAccount>;
    async fn delete_account(&self, actor: &Actor, d: DomainId, id: i64) -> Result<()>;
    /// The decrypted SIP password, for rendering configurations.
    async fn account_password(&self, d: DomainId, id: i64) -> Result<SecretString>;
}

#[async_trait]
pub trait DeviceStore: Send + Sync {
    async fn create_device(&self, actor: &Actor, d: DomainId, new: &NewDevice) -> Result<Device>;
    async fn device(&self, d: DomainId, mac: Mac) -> Result<Device>;
    /// The domain a MAC belongs to, across the installation (MACs are unique in it).
    /// Only for callers that act for the whole installation: the CLI and, later, phones.
    async fn device_domain(&self, mac: Mac) -> Result<DomainId>;
    async fn list_devices(
        &self,
        d: DomainId,
        filter: &DeviceFilter,
        page: PageRequest,
    ) -> Result<Page<Device>>;
    async fn update_device(
        &self,
        actor: &Actor,
        d: DomainId,
        mac: Mac,
        patch: &DevicePatch,
    ) -> Result<Device>;
    async fn delete_device(&self, actor: &Actor, d: DomainId, mac: Mac) -> Result<()>;
}

/// A token as presented, resolved to what it may do.
#[derive(Clone, Debug)]
pub struct TokenGrant {
    pub token: ApiToken,
    pub domain: Option<DomainId>,
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn create_token(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        domain: Option<DomainId>,
        hash: &str,
        hint: &str,
    ) -> Result<ApiToken>;
    /// The live (not revoked) token with this digest.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenGrant>>;
    /// Tokens of one domain, or all of them (`None`, operators only).
    async fn list_tokens(
        &self,
        scope: Option<DomainId>,
        page: PageRequest,
    ) -> Result<Page<ApiToken>>;
    async fn revoke_token(
        &self,
        actor: &Actor,
        scope: Option<DomainId>,
        id: i64,
    ) -> Result<ApiToken>;
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Newest first; one domain's entries, or all (`None`, operators only).
    async fn list_audit(
        &self,
        scope: Option<DomainId>,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>>;
    /// Records something that changed nothing but must be on record, such as a refused
    /// provisioning code (`detail` must hold no secret).
    async fn record_audit(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<()>;
}

#[async_trait]
pub trait BulkStore: Send + Sync {
    /// Applies a whole import in one transaction: all of it, or nothing and every bad row.
    async fn import(&self, actor: &Actor, d: DomainId, plan: &Plan) -> Result<ImportSummary>;
    /// Every user, account and device of the domain in the import format.
    async fn export(&self, d: DomainId, with_passwords: bool) -> Result<Vec<Row>>;
}

/// A device's provisioning credentials, for its admins.
#[derive(Clone, Debug)]
pub struct DeviceCredentials {
    /// The URL token; `None` for a device added before tokens existed, until it is rotated.
    pub token: Option<SecretString>,
    pub previous_token_until: Option<Timestamp>,
    pub armed_until: Option<Timestamp>,
    pub admin_password: Option<SecretString>,
    pub fetch_password: Option<SecretString>,
}

/// A refused fetch, as listed with its device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct RefusalEntry {
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    pub ip: String,
    pub file: String,
    pub reason: String,
}

/// An unknown MAC seen fetching from one of the domain's networks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct UnassignedDevice {
    pub id: i64,
    pub mac: Mac,
    pub vendor: String,
    pub model: String,
    pub firmware: String,
    pub last_ip: String,
    pub first_contact: chrono::DateTime<chrono::Utc>,
    pub last_contact: chrono::DateTime<chrono::Utc>,
}

/// A file a device uploaded (a log), without its body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct UploadEntry {
    pub name: String,
    pub at: chrono::DateTime<chrono::Utc>,
    pub size: u64,
}

/// A device with where and how it fetches its files, for its admins.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DeviceDetail {
    #[serde(flatten)]
    pub device: Device,
    pub provisioning: ProvisioningInfo,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ProvisioningInfo {
    /// The tokenized directory URL the device fetches its files from (a credential: whoever
    /// has it gets the device's files). Absent until the device has a token.
    pub url: Option<String>,
    /// Until when a fetch without credentials hands the device this URL.
    pub armed_until: Option<chrono::DateTime<chrono::Utc>>,
    /// Until when the token before the last rotation still works.
    pub previous_token_valid_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// The device of `mac` in `d` with its provisioning URL, made by `url` from its token.
pub async fn device_detail(
    store: &dyn Store,
    d: DomainId,
    mac: Mac,
    url: impl Fn(&str) -> String,
) -> Result<DeviceDetail> {
    let device = store.device(d, mac).await?;
    let c = store.device_credentials(d, mac).await?;
    Ok(DeviceDetail {
        device,
        provisioning: ProvisioningInfo {
            url: c.token.as_ref().map(|t| url(t.expose())),
            armed_until: c.armed_until,
            previous_token_valid_until: c.previous_token_until,
        },
    })
}

/// Most unassigned MACs one domain keeps; further unknown MACs are not recorded.
pub const MAX_UNASSIGNED_PER_DOMAIN: i64 = 1000;
/// Refusals kept per device, newest first.
pub const REFUSALS_KEPT: i64 = 50;

/// What the phone routes need: devices by token or MAC with everything their files are
/// rendered from, and the records fetches leave. These act for the whole installation
/// (a phone's request names no domain); the admin side is scoped by domain as elsewhere.
#[async_trait]
pub trait PhoneStore: Send + Sync {
    /// The device whose current token, or previous token still in its grace period, has
    /// this digest.
    async fn phone_by_token(&self, token_hash: &str) -> Result<Option<PhoneDevice>>;
    /// The device with this MAC, in whichever domain.
    async fn phone_by_mac(&self, mac: Mac) -> Result<Option<PhoneDevice>>;
    /// Ends the device's arming window; true only for the one caller that ended it.
    async fn disarm(&self, device_id: i64) -> Result<bool>;
    /// Contacts of known devices (first/last contact, IP, firmware, provisioned) and unknown
    /// MACs (recorded as unassigned where a domain's policy asks for it, bounded).
    async fn record_contacts(&self, contacts: &[Contact]) -> Result<()>;
    /// Refusals of fetches naming a known device's MAC (others are not kept).
    async fn record_refusals(&self, refusals: &[Refusal]) -> Result<()>;
    /// Keeps `body` as the device's latest upload called `name`.
    async fn store_upload(&self, device_id: i64, name: &str, body: &[u8]) -> Result<()>;

    async fn device_credentials(&self, d: DomainId, mac: Mac) -> Result<DeviceCredentials>;
    /// A new URL token; the previous one keeps working for the domain's grace period.
    async fn rotate_device_token(&self, actor: &Actor, d: DomainId, mac: Mac) -> Result<()>;
    /// Lets the device fetch once without credentials for `minutes` (the domain's
    /// `arm_minutes` if `None`), to be handed its tokenized URL; 0 disarms.
    async fn arm_device(
        &self,
        actor: &Actor,
        d: DomainId,
        mac: Mac,
        minutes: Option<u32>,
    ) -> Result<Option<Timestamp>>;
    async fn list_refusals(
        &self,
        d: DomainId,
        mac: Mac,
        page: PageRequest,
    ) -> Result<Page<RefusalEntry>>;
    async fn list_unassigned(
        &self,
        d: DomainId,
        page: PageRequest,
    ) -> Result<Page<UnassignedDevice>>;
    async fn list_uploads(&self, d: DomainId, mac: Mac) -> Result<Vec<UploadEntry>>;
    async fn upload(&self, d: DomainId, mac: Mac, name: &str) -> Result<Vec<u8>>;
}

/// The index of firmware files (their bytes are the caller's, in the data directory).
#[async_trait]
pub trait FirmwareStore: Send + Sync {
    /// Records `name` with its digest and size, replacing an earlier file of that name;
    /// returns the entry and the digest it replaced, if any.
    async fn put_firmware(
        &self,
        actor: &Actor,
        name: &str,
        sha256: &str,
        size: u64,
    ) -> Result<(Firmware, Option<String>)>;
    async fn firmware(&self, name: &str) -> Result<Firmware>;
    async fn list_firmware(&self) -> Result<Vec<Firmware>>;
    /// Removes the entry; returns its digest if no other entry has the same contents.
    async fn delete_firmware(&self, actor: &Actor, name: &str) -> Result<Option<String>>;
}

/// Which stored template: of the domain (no category) or of one of its categories.
#[derive(Clone, Copy, Debug)]
pub struct TemplateKey<'a> {
    pub category: Option<&'a str>,
    pub vendor: &'a str,
    pub name: &'a str,
}

/// Templates stored by admins (checked by the caller before they are stored).
#[async_trait]
pub trait TemplateStore: Send + Sync {
    /// Stores the template, replacing one stored under the same key before.
    async fn put_template(
        &self,
        actor: &Actor,
        d: DomainId,
        key: TemplateKey<'_>,
        origin: TemplateOrigin,
        source: &str,
    ) -> Result<StoredTemplate>;
    async fn template(&self, d: DomainId, key: TemplateKey<'_>) -> Result<StoredTemplate>;
    /// The domain's and its categories' templates, by category (domain first), vendor, name.
    async fn list_templates(&self, d: DomainId) -> Result<Vec<StoredTemplate>>;
    async fn delete_template(&self, actor: &Actor, d: DomainId, key: TemplateKey<'_>)
    -> Result<()>;
}

/// A redeemed code's outcome: the device now the code's user's.
#[derive(Clone, Debug)]
pub struct Redeemed {
    pub domain: DomainId,
    pub domain_name: String,
    pub device: Device,
}

/// Provisioning codes.
#[async_trait]
pub trait CodeStore: Send + Sync {
    /// A new code for `user` (and the category the phone goes into), valid for the domain's
    /// `code_seconds`.
    async fn create_code(
        &self,
        actor: &Actor,
        d: DomainId,
        category: Option<&str>,
        user: &str,
    ) -> Result<IssuedCode>;
    /// Redeems a code for the phone of `r.mac`, in one transaction: the device is created in
    /// the code's domain and category with the user's SIP accounts as lines, the code is
    /// used up, and `device.provisioned` is written. `None` when the code is not live
    /// (unknown, used, expired) or the MAC already belongs to a device: callers answer
    /// both alike.
    async fn redeem_code(&self, code: &str, r: &Redemption) -> Result<Option<Redeemed>>;
    /// Deletes expired codes, writing `code.expired` for each; returns how many.
    async fn sweep_codes(&self) -> Result<u64>;
    /// Sets (or with `None` removes) the domain's automatic-provisioning token.
    async fn set_auto_token(
        &self,
        actor: &Actor,
        d: DomainId,
        token: Option<&SecretString>,
    ) -> Result<()>;
    async fn auto_token(&self, d: DomainId) -> Result<Option<SecretString>>;
    /// Registers the phone of `r.mac` into `category` of `domain` when `token` is the
    /// domain's automatic-provisioning token, in one transaction with `device.provisioned`.
    /// `None` for a wrong domain, token or category, or a MAC that has a device: callers
    /// answer all alike.
    async fn auto_provision(
        &self,
        domain: &str,
        token: &str,
        category: &str,
        r: &Redemption,
    ) -> Result<Option<Redeemed>>;
}

/// Rollouts: one code per user.
#[async_trait]
pub trait RolloutStore: Send + Sync {
    /// Makes one code per user (all of them or, if a user is unknown, none), valid for the
    /// domain's `rollout_seconds`.
    async fn create_rollout(
        &self,
        actor: &Actor,
        d: DomainId,
        category: Option<&str>,
        phone: &str,
        users: &[String],
    ) -> Result<Rollout>;
    async fn rollout(&self, d: DomainId, id: i64) -> Result<(Rollout, Vec<RolloutEntry>)>;
    /// The domain's rollouts with their counts, newest first (`after`: ids before it).
    async fn list_rollouts(&self, d: DomainId, page: PageRequest) -> Result<Page<Rollout>>;
}

/// A webhook whose next delivery is due, with what delivering needs.
#[derive(Clone, Debug)]
pub struct DueWebhook {
    pub id: i64,
    pub domain: DomainId,
    pub url: String,
    pub secret: SecretString,
    pub cursor: i64,
    pub failures: u32,
}

/// A key's failure count (`provisor_http::limit` keeps the rules): failures since `since`,
/// locked until `locked_until` (ms since the epoch; 0: not locked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitRow {
    pub key: String,
    pub since: i64,
    pub failures: u32,
    pub locked_until: i64,
}

/// A webhook as leased to a node: what a delivery attempt is recorded under.
#[derive(Clone, Copy, Debug)]
pub struct WebhookLease<'a> {
    pub webhook: i64,
    pub node: &'a str,
    pub lease_ms: i64,
}

/// Webhooks and their delivery log.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// A webhook that gets the domain's events from now on.
    async fn create_webhook(
        &self,
        actor: &Actor,
        d: DomainId,
        url: &str,
        secret: &SecretString,
    ) -> Result<Webhook>;
    async fn list_webhooks(&self, d: DomainId) -> Result<Vec<Webhook>>;
    async fn delete_webhook(&self, actor: &Actor, d: DomainId, id: i64) -> Result<()>;
    /// The latest attempts, newest first.
    async fn deliveries(&self, d: DomainId, id: i64, limit: u32) -> Result<Vec<Delivery>>;
    /// Webhooks whose next attempt is due now and whose lease is free (or run out),
    /// leased to `node` for `lease_ms`: with several nodes each webhook is delivered by one.
    async fn claim_webhooks(
        &self,
        node: &str,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<DueWebhook>>;
    /// Logs an attempt at `event_id` by `node`, if it still holds the webhook's lease (then
    /// extended by `lease_ms`; false if not: another node has taken it over, and the
    /// attempt is not recorded). A delivered event moves the cursor past it, a failed one
    /// sets the next attempt to `retry_at` (ms).
    async fn record_delivery(
        &self,
        lease: WebhookLease<'_>,
        event_id: i64,
        status: Option<u16>,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<bool>;
    /// Gives the webhook's lease back (if `node` holds it).
    async fn release_webhook(&self, webhook: i64, node: &str) -> Result<()>;
}

/// What a softphone of a user gets: the user, their SIP accounts with passwords, and the
/// settings layers (domain, user).
#[derive(Clone, Debug)]
pub struct SoftphoneUser {
    pub user: User,
    pub accounts: Vec<provisor_domain::phone::PhoneLine>,
    pub layers: Vec<provisor_domain::settings::Settings>,
}

/// An installation as a provisioning request finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallSeen {
    pub id: i64,
    /// Whether it was new (first provisioning), or another user's until now.
    pub new: bool,
    pub revoked: bool,
    /// What it received last time, and when that changed (ms; 0 if never).
    pub digest: String,
    pub delivered_at: i64,
}

/// Softphone installations and what they are given.
#[async_trait]
pub trait SoftphoneStore: Send + Sync {
    async fn softphone_user(&self, d: DomainId, username: &str) -> Result<SoftphoneUser>;
    /// Records a contact of `app`'s installation `install_id` for the user (created on the
    /// first one; a revoked one stays revoked).
    async fn install_contact(
        &self,
        d: DomainId,
        username: &str,
        app: &str,
        install_id: &str,
        ip: &str,
        user_agent: &str,
    ) -> Result<InstallSeen>;
    /// The installation of `app` with this id: its domain, user, and whether it is revoked.
    async fn find_install(
        &self,
        app: &str,
        install_id: &str,
    ) -> Result<Option<(DomainId, String, InstallSeen)>>;
    /// What the installation has now been given.
    async fn install_delivered(&self, id: i64, digest: &str) -> Result<()>;
    async fn list_installs(&self, d: DomainId, username: &str) -> Result<Vec<Install>>;
    /// Revokes the user's installation: its next provisioning takes its accounts away.
    async fn revoke_install(
        &self,
        actor: &Actor,
        d: DomainId,
        username: &str,
        id: i64,
    ) -> Result<()>;
}

/// The event log.
/// What the innovaphone endpoints need of a domain: its secrets, decrypted.
pub struct InnovaphoneDomain {
    pub id: DomainId,
    pub name: String,
    pub app_password: Option<SecretString>,
    pub admin_password: Option<SecretString>,
    pub pbx_domain: String,
}

/// What a PBX's ProvisioningPhone came to.
#[derive(Debug)]
pub struct PbxPhoneResult {
    pub device: Device,
    /// Whether the device is new (a replay finds it there and changes nothing else).
    pub created: bool,
}

/// A device registered over sysclient, with the password its digests are made with.
pub struct Sysclient {
    pub device_id: i64,
    pub password: SecretString,
}

#[async_trait]
pub trait InnovaphoneStore: Send + Sync {
    async fn innovaphone(&self, d: DomainId) -> Result<InnovaphoneSettings>;
    async fn set_innovaphone(
        &self,
        actor: &Actor,
        d: DomainId,
        patch: &InnovaphonePatch,
    ) -> Result<InnovaphoneSettings>;
    /// The domain of this name with its innovaphone secrets; `None` if there is none.
    async fn innovaphone_domain(&self, name: &str) -> Result<Option<InnovaphoneDomain>>;
    /// Creates or updates, in one transaction, the user, their SIP account and the
    /// third-party device a PBX handed over (in the category of the code, if it is a live
    /// code of this domain, which it then uses up; else the domain's default category).
    async fn provision_pbx_phone(
        &self,
        actor: &Actor,
        d: DomainId,
        phone: &PbxPhone,
    ) -> Result<PbxPhoneResult>;
    async fn sysclient(&self, d: DomainId, mac: Mac) -> Result<Option<Sysclient>>;
    /// What is known of the device through innovaphone; `NotFound` if it did not come so.
    async fn innovaphone_device(&self, d: DomainId, mac: Mac) -> Result<InnovaphoneDevice>;
    /// Keeps what a sysclient that proved itself reported (model, firmware, interfaces).
    async fn sysclient_seen(
        &self,
        d: DomainId,
        mac: Mac,
        report: &SysclientReport,
        ip: Option<std::net::IpAddr>,
    ) -> Result<()>;
}

/// A device's progress with a job.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct JobDevice {
    #[schema(value_type = String)]
    pub mac: Mac,
    pub state: Progress,
    /// Check-ins at which it was offered the job.
    pub offers: u32,
    pub first_offered: chrono::DateTime<chrono::Utc>,
    pub last_offered: chrono::DateTime<chrono::Utc>,
    /// When it applied it, or failed.
    pub done_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[async_trait]
pub trait JobStore: Send + Sync {
    /// Stores a job; a firmware store file's digest is taken now (the snapshot).
    async fn create_job(&self, actor: &Actor, d: DomainId, spec: &JobSpec) -> Result<Job>;
    /// The domain's jobs, newest first, with their devices by progress.
    async fn list_jobs(&self, d: DomainId) -> Result<Vec<(Job, ProgressCounts)>>;
    async fn job(&self, d: DomainId, id: i64) -> Result<(Job, ProgressCounts)>;
    /// The devices that were offered the job, with their progress.
    async fn job_devices(&self, d: DomainId, id: i64) -> Result<Vec<JobDevice>>;
    /// Pause, resume, cancel (final), or change the share.
    async fn update_job(
        &self,
        actor: &Actor,
        d: DomainId,
        id: i64,
        patch: &JobPatch,
    ) -> Result<Job>;
    async fn set_firmware_pin(
        &self,
        actor: &Actor,
        d: DomainId,
        mac: Mac,
        pin: Option<&FirmwarePin>,
    ) -> Result<()>;
    async fn firmware_pin(&self, d: DomainId, mac: Mac) -> Result<Option<FirmwarePin>>;
}

#[async_trait]
pub trait EventStore: Send + Sync {
    /// The domain's events after `after` (an event id; 0 for the first), oldest first.
    async fn list_events(&self, d: DomainId, after: i64, limit: u32) -> Result<Vec<Event>>;
}

/// A console administrator: an operator, or the admin of one domain. The password hash is
/// never returned.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Admin {
    pub id: i64,
    /// The sign-in name, unique in the installation.
    pub name: String,
    pub role: Role,
    /// The domain a domain admin is limited to.
    pub domain: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// An administrator as a sign-in needs them.
#[derive(Clone, Debug)]
pub struct AdminLogin {
    pub admin: Admin,
    pub domain: Option<DomainId>,
    pub password_hash: String,
}

/// Whose session a new one is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionOf {
    Admin(i64),
    User { domain: DomainId, username: String },
}

/// A live session: its administrator (with their domain), or its user (enabled).
#[derive(Clone, Debug, PartialEq)]
pub enum Session {
    Admin {
        admin: Admin,
        domain: Option<DomainId>,
    },
    User {
        domain: DomainId,
        username: String,
    },
}

/// How long a session lasts: at most `absolute` from sign-in, and `idle` after its last use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLifetime {
    pub absolute: std::time::Duration,
    pub idle: std::time::Duration,
}

/// Console administrators and the sessions of the console and of self-service. Sessions
/// are found by the digest of their cookie; they end when they expire, when their
/// administrator or user is removed, or when that one's password changes.
#[async_trait]
pub trait ConsoleStore: Send + Sync {
    async fn create_admin(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        domain: Option<DomainId>,
        password_hash: &str,
    ) -> Result<Admin>;
    /// Every administrator, or a domain's.
    async fn list_admins(&self, scope: Option<DomainId>) -> Result<Vec<Admin>>;
    async fn delete_admin(&self, actor: &Actor, scope: Option<DomainId>, name: &str) -> Result<()>;
    /// Sets the password and ends the administrator's sessions.
    async fn set_admin_password(
        &self,
        actor: &Actor,
        scope: Option<DomainId>,
        name: &str,
        password_hash: &str,
    ) -> Result<()>;
    async fn admin_login(&self, name: &str) -> Result<Option<AdminLogin>>;
    /// A new session with cookie digest `hash`; sessions past their end are removed.
    async fn create_session(
        &self,
        hash: &str,
        of: &SessionOf,
        lifetime: SessionLifetime,
    ) -> Result<()>;
    /// The live session of `hash`, its idle end moved on by `idle` (written at most once a
    /// minute).
    async fn session(&self, hash: &str, idle: std::time::Duration) -> Result<Option<Session>>;
    async fn end_session(&self, hash: &str) -> Result<()>;
}

/// Everything a backend provides.
pub trait Store:
    BaseStore
    + DomainStore
    + UserStore
    + DeviceStore
    + TemplateStore
    + CodeStore
    + RolloutStore
    + EventStore
    + WebhookStore
    + SoftphoneStore
    + InnovaphoneStore
    + JobStore
    + ConsoleStore
    + TokenStore
    + AuditStore
    + BulkStore
    + PhoneStore
    + FirmwareStore
    + 'static
{
}

impl<T> Store for T where
    T: BaseStore
        + PhoneStore
        + FirmwareStore
        + DomainStore
        + UserStore
        + DeviceStore
        + TemplateStore
        + CodeStore
        + RolloutStore
        + EventStore
        + WebhookStore
        + SoftphoneStore
        + InnovaphoneStore
        + JobStore
        + ConsoleStore
        + TokenStore
        + AuditStore
        + BulkStore
        + 'static
{
}

/// Makes a new API token and stores its digest; the secret is returned once, here.
pub async fn issue_token(
    store: &dyn Store,
    actor: &Actor,
    name: &str,
    role: Role,
    domain: Option<DomainId>,
) -> Result<(ApiToken, SecretString)> {
    let fresh = provisor_domain::token::generate();
    let token = store
        .create_token(actor, name, role, domain, &fresh.hash, &fresh.hint)
        .await?;
    Ok((token, fresh.secret))
}
