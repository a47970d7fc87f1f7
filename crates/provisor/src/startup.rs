//! From configuration to a running server: data directory, encryption key, store,
//! first operator token, listener, graceful shutdown.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::serve::Listener as _;
use provisor_domain::model::{Actor, Role};
use provisor_domain::secret::{Cipher, SecretString};
use provisor_http::limit::Limit;
use provisor_http::net::{PlainListener, TlsConfig, TlsListener};
use provisor_http::phone::cache::PhoneCache;
use provisor_http::phone::{CodeLimits, Recorder};
use provisor_http::{AppState, PhoneOptions, Phones};
use provisor_render::{Renderer, Vendors};
use provisor_store::{Store, issue_token};
use tokio::net::TcpListener;

use crate::config::{Config, LogFormat};
use crate::tls;

const KEY_FILE: &str = "secret.key";
const TOKEN_FILE: &str = "operator-token";
const DB_FILE: &str = "provisor.db";
const KEY_CHECK_META: &str = "key_check";
const KEY_CHECK_TEXT: &str = "provisor encryption key check";
const BOOTSTRAP_META: &str = "bootstrap_token_issued";

pub fn init_tracing(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Writes `contents` to `path` readable by its owner only (mode 0600), replacing any file
/// there atomically: readers see the old file or the whole new one.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let name = path.file_name().context("a file path")?.to_string_lossy();
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temp).and_then(|mut file| {
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    });
    let result = written.and_then(|()| std::fs::rename(&temp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))
}

/// Where the key comes from, so errors can say what to fix.
enum KeySource {
    Config,
    File(PathBuf),
    /// Generated now; written to this path once the database accepts it.
    New(PathBuf, String),
}

fn load_key(config: &Config) -> anyhow::Result<(Cipher, KeySource)> {
    if let Some(key) = &config.encryption_key {
        let cipher = Cipher::from_text(key.0.expose()).context("configuration: encryption_key")?;
        return Ok((cipher, KeySource::Config));
    }
    let path = config.data_dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let cipher = Cipher::from_text(&text)
                .with_context(|| format!("the key file {} is damaged", path.display()))?;
            Ok((cipher, KeySource::File(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = Cipher::generate_key_text();
            let cipher = Cipher::from_text(&text).expect("a generated key is valid");
            Ok((cipher, KeySource::New(path, text)))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read the key file {}", path.display())),
    }
}

/// Proves the key opens what the database holds, or records it as the database's key.
/// A generated key is saved before the database is bound to it, and removed again if the
/// database turns out to have another key.
async fn check_key(store: &dyn Store, cipher: &Cipher, source: KeySource) -> anyhow::Result<()> {
    let mut wrote = false;
    if store.meta_get(KEY_CHECK_META).await?.is_none() {
        if let KeySource::New(path, text) = &source {
            write_private(path, &format!("{text}\n"))?;
            wrote = true;
        }
        let sealed = hex::encode(cipher.encrypt(KEY_CHECK_TEXT));
        if store.meta_init(KEY_CHECK_META, &sealed).await? {
            if wrote {
                tracing::info!("generated the encryption key for secrets at rest");
            }
            return Ok(());
        }
    }
    let stored = store
        .meta_get(KEY_CHECK_META)
        .await?
        .context("the key check vanished")?;
    let opens = hex::decode(&stored)
        .ok()
        .and_then(|b| cipher.decrypt(&b).ok())
        .is_some_and(|t| t.expose() == KEY_CHECK_TEXT);
    match (opens, source) {
        (true, _) => Ok(()),
        (false, KeySource::New(path, _)) => {
            if wrote {
                let _ = std::fs::remove_file(&path);
            }
            bail!(
                "the database holds secrets encrypted with a key that is not here: restore {} or set encryption_key / encryption_key_file",
                path.display()
            )
        }
        (false, KeySource::File(path)) => bail!(
            "the key in {} does not match the database's secrets (wrong key file?)",
            path.display()
        ),
        (false, KeySource::Config) => {
            bail!("the configured encryption_key does not match the database's secrets")
        }
    }
}

/// Opens the configured store (migrating it) with its encryption key checked.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    create_data_dir(&config.data_dir)?;
    let (cipher, source) = load_key(config)?;
    let store: Arc<dyn Store> = match &config.database_url {
        None => {
            let path = config.data_dir.join(DB_FILE);
            let store =
                provisor_store_sqlite::open(&path, cipher.clone(), config.db_max_connections)
                    .await
                    .with_context(|| {
                        format!("cannot open the SQLite database {}", path.display())
                    })?;
            Arc::new(store)
        }
        Some(url) => {
            let url = url.0.expose();
            // Name the scheme only if it looks like one: the rest of a URL may hold a password.
            let scheme = url.split_once(':').map(|(s, _)| s).filter(|s| {
                !s.is_empty()
                    && s.len() <= 20
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
            });
            if !matches!(scheme, Some("postgres" | "postgresql")) {
                let named = scheme.map_or_else(
                    || "the database URL has no scheme".to_owned(),
                    |s| format!("unsupported database URL scheme '{s}'"),
                );
                bail!(
                    "{named}: use postgres://… for PostgreSQL, or no database_url for SQLite in the data directory"
                );
            }
            let store =
                provisor_store_postgres::open(url, cipher.clone(), config.db_max_connections)
                    .await
                    .context("cannot open the PostgreSQL database")?;
            Arc::new(store)
        }
    };
    check_key(store.as_ref(), &cipher, source).await?;
    Ok(store)
}

/// On the very first start of an installation: an operator token, saved in the data
/// directory with mode 0600 (replacing any file left there), then printed once. The claim
/// is made first, so two nodes starting together issue one token; if saving fails, the
/// token is revoked and the claim withdrawn, so the next start tries again.
pub async fn bootstrap_token(
    store: &dyn Store,
    data_dir: &Path,
) -> anyhow::Result<Option<SecretString>> {
    if store.meta_get(BOOTSTRAP_META).await?.is_some()
        || !store.meta_init(BOOTSTRAP_META, &unix_now()).await?
    {
        return Ok(None);
    }
    let path = data_dir.join(TOKEN_FILE);
    let issued: anyhow::Result<SecretString> = async {
        let (token, secret) = issue_token(
            store,
            &Actor::system(),
            "first operator token",
            Role::Operator,
            None,
        )
        .await?;
        if let Err(e) = write_private(&path, &format!("{}\n", secret.expose())) {
            let _ = store.revoke_token(&Actor::system(), None, token.id).await;
            return Err(e);
        }
        Ok(secret)
    }
    .await;
    let secret = match issued {
        Ok(secret) => secret,
        Err(e) => {
            let _ = store.meta_remove(BOOTSTRAP_META).await;
            return Err(
                e.context("could not issue the first operator token; the next start tries again")
            );
        }
    };
    println!(
        "Operator API token (shown once; also saved to {}):\n{}",
        path.display(),
        secret.expose()
    );
    Ok(Some(secret))
}

fn unix_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    secs.to_string()
}

/// The phone side: where phones reach this server, and what they get unauthenticated.
/// `https` is the HTTPS listener's address, where there is one.
pub fn phone_options(
    config: &Config,
    listening: SocketAddr,
    https: Option<SocketAddr>,
) -> PhoneOptions {
    PhoneOptions {
        base_path: config.phone_base_path.clone(),
        public_url: config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{listening}")),
        secure_url: config
            .public_https_url
            .clone()
            .or_else(|| https.map(|a| format!("https://{a}"))),
        unauthenticated: config.phone_unauthenticated,
        firmware_dir: config.data_dir.join("firmware"),
        code_limits: code_limits(config),
        innovaphone_path: config.innovaphone_path.clone(),
        max_in_flight: config.phone_max_in_flight as usize,
        trusted_proxies: config.trusted_proxies.clone(),
    }
}

fn code_limits(config: &Config) -> CodeLimits {
    let limit = |failures: u32| Limit {
        failures: failures.max(1),
        window: Duration::from_secs(config.code_failure_window_seconds.max(1)),
        lockout: Duration::from_secs(config.code_lockout_seconds),
    };
    CodeLimits {
        per_ip: limit(config.code_failures_per_ip),
        total: limit(config.code_failures_total),
        per_domain: limit(config.login_failures_per_domain),
    }
}

/// This process among the nodes sharing a database: host, process id and a random part
/// (a restarted node is a new one; its old leases run out).
pub fn node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let random = provisor_domain::token::digest(provisor_domain::token::generate().secret.expose());
    format!("{}-{}-{}", host.trim(), std::process::id(), &random[..8])
}

/// Sweeps expired codes every `every` (a minute), on one node at a time (the lease
/// `sweeper`, held a little less than the interval, so the sweep moves to another node
/// when this one dies).
fn spawn_sweeper(
    store: Arc<dyn Store>,
    node: String,
    every: Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        let lease_ms = every.as_millis() as i64 * 9 / 10;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
            match store.take_lease("sweeper", &node, lease_ms).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "the sweeper's lease could not be taken");
                    continue;
                }
            }
            // Failure counts a day old (longer than any window or lockout) are dropped.
            let day_ago = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)
                - 86_400_000;
            if let Err(e) = store.prune_limits(day_ago).await {
                tracing::warn!(error = %e, "old failure counts could not be removed");
            }
            match store.sweep_codes().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(count = n, "expired provisioning codes removed"),
                Err(e) => {
                    tracing::warn!(error = %e, "expired provisioning codes could not be removed")
                }
            }
        }
    })
}

/// The built-in vendors with the configured directory's files over them, compiled.
pub fn renderer(config: &Config) -> anyhow::Result<Renderer> {
    let vendors = Vendors::load(config.vendors_dir.as_deref()).context("the vendor catalog")?;
    Renderer::new(vendors).context("the vendor templates")
}

/// The sockets Provisor serves on: HTTP always, HTTPS where it is configured.
pub struct Listeners {
    pub http: TcpListener,
    pub https: Option<TcpListener>,
}

/// Binds `listen`, and `tls_listen` if HTTPS is configured.
pub async fn bind(config: &Config) -> anyhow::Result<Listeners> {
    let http = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let https = match tls::files(config)? {
        Some(_) => Some(
            TcpListener::bind(config.tls_listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.tls_listen))?,
        ),
        None => None,
    };
    Ok(Listeners { http, https })
}

/// Reloads the certificate and key on SIGHUP; a file that does not load leaves the one
/// in use in place.
fn reload_on_sighup(files: tls::TlsFiles, cell: Arc<TlsConfig>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            match tls::server_config(&files) {
                Ok(config) => {
                    cell.replace(config);
                    tracing::info!(cert = %files.cert.display(), "reloaded the TLS certificate");
                }
                Err(e) => tracing::error!(
                    error = format!("{e:#}"),
                    "the TLS certificate was not reloaded; the old one stays in use"
                ),
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (files, cell);
}

/// Serves the application on the listeners until `shutdown` completes, then lets running
/// requests finish for up to `shutdown_grace_seconds`.
pub async fn run(
    store: Arc<dyn Store>,
    config: &Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let grace = Duration::from_secs(config.shutdown_grace_seconds);
    let listening = listeners.http.local_addr()?;
    let https = match (tls::files(config)?, listeners.https) {
        (Some(files), Some(listener)) => {
            let cell = TlsConfig::new(tls::server_config(&files)?);
            reload_on_sighup(files, cell.clone());
            Some(TlsListener::new(listener, cell)?)
        }
        (None, None) => None,
        _ => bail!("an HTTPS listener goes with a TLS certificate"),
    };
    let https_addr = https
        .as_ref()
        .map(|l| l.local_addr().map(|p| p.addr))
        .transpose()?;
    if config.public_url.is_none() && listening.ip().is_unspecified() {
        tracing::warn!(
            "public_url is not set and Provisor listens on {listening}: the URLs handed to phones will not reach it; set public_url"
        );
    }
    let options = phone_options(config, listening, https_addr);
    let (recorder, recording) = Recorder::spawn(
        store.clone(),
        Duration::from_secs(config.phone_contact_seconds),
    );
    // With PostgreSQL, failure limits are the database's: shared by every node on it.
    let limiter = match store.backend() {
        "postgres" => provisor_http::limit::Limiter::shared(store.clone()),
        _ => provisor_http::limit::Limiter::new(),
    };
    // Told of every change by the database; what phones were served is kept for as long as
    // nothing changed.
    let changes = Arc::new(provisor_store::Changes::default());
    let following = tokio::spawn({
        let (store, changes) = (store.clone(), changes.clone());
        async move { store.follow_changes(changes).await }
    });
    let cache = PhoneCache::new(changes, config.phone_cache_mb.saturating_mul(1 << 20));
    let phones = Phones::new(renderer(config)?, options, recorder)
        .with_limiter(limiter)
        .with_cache(cache);
    let app = provisor_http::app(AppState::new(store.clone(), phones));
    let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
    let node = config.node_id.clone().unwrap_or_else(node_id);
    let sweeper = spawn_sweeper(
        store.clone(),
        node.clone(),
        Duration::from_secs(config.sweep_seconds.max(1)),
        stopping_rx.clone(),
    );
    let webhooks = provisor_http::webhooks::spawn(
        store.clone(),
        provisor_http::webhooks::WebhookOptions {
            retry_base: Duration::from_secs(config.webhook_retry_base_seconds.max(1)),
            retry_max: Duration::from_secs(config.webhook_retry_max_seconds.max(1)),
            timeout: Duration::from_secs(config.webhook_timeout_seconds.max(1)),
            poll: Duration::from_secs(1),
            lease: Duration::from_secs(config.webhook_lease_seconds.max(1)),
        },
        node,
        stopping_rx.clone(),
    );
    let stopped = move || {
        let mut rx = stopping_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections, finishing running requests");
        let _ = stopping_tx.send(true);
    };
    let header_read = Duration::from_secs(config.header_read_timeout_seconds.max(1));
    let http = provisor_http::net::serve(
        PlainListener(listeners.http),
        app.clone(),
        header_read,
        stopped(),
    );
    let https_stopped = stopped();
    let https = async move {
        if let Some(listener) = https {
            provisor_http::net::serve(listener, app, header_read, https_stopped).await;
        }
    };
    let servers = async move {
        tokio::join!(http, https);
    };
    let deadline_stopped = stopped();
    let deadline = async move {
        deadline_stopped.await;
        tokio::time::sleep(grace).await;
    };
    tokio::spawn(signal);
    tokio::select! {
        () = servers => {}
        () = deadline => tracing::warn!("requests still running after the shutdown grace period; exiting anyway"),
    }
    recording.finish(Duration::from_secs(5)).await;
    // Both stop at their next step; a webhook delivery under way is not waited for long
    // (its event is delivered again after the restart).
    let _ = tokio::time::timeout(Duration::from_secs(5), sweeper).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), webhooks).await;
    following.abort();
    store.close().await;
    Ok(())
}

/// SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

/// `provisor serve`.
pub async fn serve(mut config: Config) -> anyhow::Result<()> {
    config.node_id.get_or_insert_with(node_id);
    let store = open_store(&config).await?;
    bootstrap_token(store.as_ref(), &config.data_dir).await?;
    let listeners = bind(&config).await?;
    let https = listeners
        .https
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()?;
    tracing::info!(address = %listeners.http.local_addr()?, https = ?https, database = store.backend(), node = config.node_id.as_deref().unwrap_or_default(), "Provisor is listening");
    run(store, &config, listeners, shutdown_signal()).await
}
