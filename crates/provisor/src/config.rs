//! Configuration, layered: built-in defaults → TOML file (`--config`) → `PROVISOR_*`
//! environment variables → command-line flags. Secrets may instead come from a file
//! named by the matching `*_file` key (`PROVISOR_DATABASE_URL_FILE`, …), and never print.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use provisor_domain::phone::Unauthenticated;
use provisor_domain::secret::SecretString;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything Provisor can be configured with. See `DEFAULT_CONFIG` for each key's meaning.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    #[serde(skip_serializing)]
    pub database_url: Option<Secret>,
    pub database_url_file: Option<PathBuf>,
    pub db_max_connections: u32,
    #[serde(skip_serializing)]
    pub encryption_key: Option<Secret>,
    pub encryption_key_file: Option<PathBuf>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub shutdown_grace_seconds: u64,
    pub public_url: Option<String>,
    pub phone_base_path: String,
    /// Path prefix of the innovaphone AppWebsocket endpoint: `<prefix>/<domain>`.
    pub innovaphone_path: String,
    pub phone_unauthenticated: Unauthenticated,
    pub vendors_dir: Option<PathBuf>,
    pub tls_listen: SocketAddr,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_self_signed: bool,
    pub tls_client_ca: Option<PathBuf>,
    pub public_https_url: Option<String>,
    /// Wrong provisioning codes per source IP, and for the whole installation, within
    /// `code_failure_window_seconds` before attempts are refused for `code_lockout_seconds`.
    pub code_failures_per_ip: u32,
    pub code_failures_total: u32,
    /// Wrong portal logins naming one domain within the window (same lockout).
    pub login_failures_per_domain: u32,
    pub code_failure_window_seconds: u64,
    pub code_lockout_seconds: u64,
    /// Webhooks: the first retry's delay (doubling per failure up to the maximum) and how
    /// long a delivery may take.
    pub webhook_retry_base_seconds: u64,
    pub webhook_retry_max_seconds: u64,
    pub webhook_timeout_seconds: u64,
    /// How long a node's claim on a webhook lasts without an attempt: when a node dies,
    /// another takes its webhooks over after this.
    pub webhook_lease_seconds: u64,
    /// This node's name among the nodes sharing a database (leases, logs, the
    /// `X-Provisor-Node` header of webhook requests); by default host, process id and a
    /// random part.
    pub node_id: Option<String>,
    /// How long a client may take to send a request's headers (slow clients are cut off).
    pub header_read_timeout_seconds: u64,
    /// How often expired codes are swept (on one node of several).
    pub sweep_seconds: u64,
    /// Load balancers (addresses or networks) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Phone requests answered at once; above it, new ones get 503 with a jittered
    /// `Retry-After` while those in progress finish (0: no limit).
    pub phone_max_in_flight: u32,
    /// Memory for devices and rendered files kept between phones' fetches (0: none).
    pub phone_cache_mb: u64,
    /// A phone that fetches again and tells nothing new is written as a contact at most
    /// this often (0: every fetch).
    pub phone_contact_seconds: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("a valid address"),
            data_dir: PathBuf::from("provisor-data"),
            database_url: None,
            database_url_file: None,
            db_max_connections: 10,
            encryption_key: None,
            encryption_key_file: None,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            shutdown_grace_seconds: 30,
            public_url: None,
            phone_base_path: "/p".into(),
            innovaphone_path: "/innovaphone".into(),
            phone_unauthenticated: Unauthenticated::NotFound,
            vendors_dir: None,
            tls_listen: "127.0.0.1:8443".parse().expect("a valid address"),
            tls_cert: None,
            tls_key: None,
            tls_self_signed: false,
            tls_client_ca: None,
            public_https_url: None,
            code_failures_per_ip: 10,
            code_failures_total: 100,
            login_failures_per_domain: 50,
            code_failure_window_seconds: 600,
            code_lockout_seconds: 900,
            webhook_retry_base_seconds: 5,
            webhook_retry_max_seconds: 600,
            webhook_timeout_seconds: 10,
            webhook_lease_seconds: 60,
            node_id: None,
            trusted_proxies: Vec::new(),
            sweep_seconds: 60,
            header_read_timeout_seconds: 10,
            phone_max_in_flight: 512,
            phone_cache_mb: 64,
            phone_contact_seconds: 60,
        }
    }
}

/// A configuration secret: read like a string, printed as `[redacted]`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub SecretString);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The keys read from `PROVISOR_*` variables; others (such as `PROVISOR_CONFIG` or the
/// test suite's variables) are not configuration.
const ENV_KEYS: [&str; 37] = [
    "phone_contact_seconds",
    "phone_cache_mb",
    "header_read_timeout_seconds",
    "sweep_seconds",
    "trusted_proxies",
    "node_id",
    "phone_max_in_flight",
    "webhook_lease_seconds",
    "innovaphone_path",
    "webhook_retry_base_seconds",
    "webhook_retry_max_seconds",
    "webhook_timeout_seconds",
    "login_failures_per_domain",
    "code_failures_per_ip",
    "code_failures_total",
    "code_failure_window_seconds",
    "code_lockout_seconds",
    "tls_listen",
    "tls_cert",
    "tls_key",
    "tls_self_signed",
    "tls_client_ca",
    "public_https_url",
    "public_url",
    "phone_base_path",
    "phone_unauthenticated",
    "vendors_dir",
    "listen",
    "data_dir",
    "database_url",
    "database_url_file",
    "db_max_connections",
    "encryption_key",
    "encryption_key_file",
    "log_format",
    "log_level",
    "shutdown_grace_seconds",
];

/// Values given as command-line flags; unset flags leave lower layers alone.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_self_signed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_ca: Option<PathBuf>,
}

impl Config {
    /// Reads the layers in order, then resolves `*_file` secrets.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                bail!("config file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment
            .merge(Env::prefixed("PROVISOR_").only(&ENV_KEYS))
            .merge(Serialized::globals(overrides));
        let mut config: Config = figment
            .extract()
            .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        config.database_url = secret_from_file(
            "database_url",
            config.database_url.take(),
            config.database_url_file.as_deref(),
        )?;
        config.encryption_key = secret_from_file(
            "encryption_key",
            config.encryption_key.take(),
            config.encryption_key_file.as_deref(),
        )?;
        if config.db_max_connections == 0 {
            bail!("configuration: db_max_connections must be at least 1");
        }
        let bad_prefix = |base: &str| {
            !base.starts_with('/')
                || base.len() < 2
                || base.ends_with('/')
                || base.starts_with("/api")
                || !base[1..]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_/".contains(c))
        };
        for (key, value) in [
            ("phone_base_path", &config.phone_base_path),
            ("innovaphone_path", &config.innovaphone_path),
        ] {
            if bad_prefix(value) {
                bail!(
                    "configuration: {key} must look like /p: a slash, then letters, digits, - or _, no trailing slash, not under /api"
                );
            }
        }
        if config.phone_base_path == config.innovaphone_path {
            bail!("configuration: phone_base_path and innovaphone_path must differ");
        }
        let bad_url = |url: &str| {
            !(url.starts_with("http://") || url.starts_with("https://")) || url.contains('?')
        };
        if config.public_url.as_deref().is_some_and(bad_url)
            || config
                .public_https_url
                .as_deref()
                .is_some_and(|u| bad_url(u) || !u.starts_with("https://"))
        {
            bail!(
                "configuration: public_url (http:// or https://) and public_https_url (https://) are URLs without a query, such as https://prov.example.com"
            );
        }
        Ok(config)
    }
}

fn secret_from_file(
    key: &str,
    value: Option<Secret>,
    file: Option<&Path>,
) -> anyhow::Result<Option<Secret>> {
    match (value, file) {
        (Some(_), Some(_)) => bail!("configuration: set {key} or {key}_file, not both"),
        (value, None) => Ok(value),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file).with_context(|| {
                format!("configuration: cannot read {key}_file {}", file.display())
            })?;
            Ok(Some(Secret(SecretString::new(text.trim()))))
        }
    }
}

/// What `provisor default-config` prints: every key with its default and meaning.
pub const DEFAULT_CONFIG: &str = r#"# Provisor configuration (TOML). Every key is optional; shown are the defaults.
# Layers, later wins: these defaults, this file (--config), PROVISOR_<KEY> environment
# variables (e.g. PROVISOR_DATA_DIR), then command-line flags.

# Address and port of the HTTP listener (--listen).
listen = "127.0.0.1:8080"

# Where the embedded SQLite database, the encryption key and the first operator token
# are kept (--data-dir). Created on first start with mode 0700.
data_dir = "provisor-data"

# PostgreSQL instead of the embedded SQLite (--database-url), e.g.
# "postgres://provisor:secret@db.example.com:5432/provisor". Only postgres:// and
# postgresql:// URLs are accepted. Or put it in a file and name the file:
# database_url = "postgres://…"
# database_url_file = "/run/secrets/provisor-database-url"

# Largest number of database connections this node holds.
db_max_connections = 10

# The AES-256-GCM key that encrypts SIP passwords at rest: 64 hex digits or base64 of 32
# bytes. Without it, a key is generated into <data_dir>/secret.key on first start. Nodes
# sharing one PostgreSQL must share the key. A missing or wrong key stops the start.
# encryption_key = "…"
# encryption_key_file = "/run/secrets/provisor-key"

# Log lines as "text" or "json" (--log-format), and the level or tracing filter.
log_format = "text"
log_level = "info"

# After SIGTERM, how long running requests may take before Provisor exits anyway.
shutdown_grace_seconds = 30

# The URL phones reach Provisor at (scheme, host and port, no path), used in the files
# that point phones at their tokenized URL. Without it, http://<listen address>.
# public_url = "https://prov.example.com"

# Path prefix of the phone routes: phones fetch <public_url><phone_base_path>/<file> and,
# once moved, <public_url><phone_base_path>/<token>/<file>.
phone_base_path = "/p"

# innovaphone: a PBX's App object connects to <public_url><innovaphone_path>/<domain>
# (ws:// or wss://) with the domain's app password (PUT /api/v1/domains/{d}/innovaphone);
# innovaphone devices register at /<domain>/devices/sysclients.
innovaphone_path = "/innovaphone"

# What a fetch of a device file without valid credentials gets, whether or not its MAC is
# known: "not-found" (an empty 404), "bootstrap" (the vendor's generic file, without any
# device's data), "challenge" (401 asking for HTTP digest credentials) or "code-prompt"
# (401 asking for a provisioning code as the password: a live code binds a MAC that has no
# device yet, and the phone gets its file).
phone_unauthenticated = "not-found"

# Wrong provisioning codes (at the code prompt and POST /p/activate) allowed per source IP
# and for the whole installation within the window, before code attempts are refused for
# the lockout. With these defaults at most 100 wrong codes are tried per 10 minutes,
# whatever the number of addresses: with L live codes among 10^12, a day of guessing
# succeeds with a chance of at most 14,400 x L / 10^12.
# Portal logins (self-service, softphones) share the per-IP budget; wrong logins of one
# user (from any address) are limited like an address's, and those naming one domain too.
code_failures_per_ip = 10
code_failures_total = 100
login_failures_per_domain = 50
code_failure_window_seconds = 600
code_lockout_seconds = 900

# Webhooks get each domain's events in order; a failed delivery is retried after
# webhook_retry_base_seconds, doubling per failure up to webhook_retry_max_seconds.
webhook_retry_base_seconds = 5
webhook_retry_max_seconds = 600
webhook_timeout_seconds = 10
# With several nodes on one PostgreSQL each webhook is delivered by one node at a time;
# when that node dies another takes its webhooks over after this many seconds (an event
# whose delivery was cut short is sent again, with the same X-Provisor-Event-Id).
webhook_lease_seconds = 60

# This node's name among the nodes sharing a PostgreSQL database (in leases, in the log,
# and in the X-Provisor-Node header of webhook requests). Unique per node; by default the
# host name, process id and a random part.
# node_id = "prov-1"

# Behind load balancers (nginx, HAProxy) that set X-Forwarded-For: their addresses or
# networks. A request from one of them is taken to come from the client the header names
# (the right-most address not itself listed), so failure limits, a domain's network rules
# and contact records see the phone; the header is ignored from anyone else.
# For example ["10.0.0.10/32", "10.0.0.11/32"].
trusted_proxies = []

# How long a client may take to send a request's headers; a slow (or slowloris) client is
# cut off after this, so it cannot hold connections.
header_read_timeout_seconds = 10

# How often expired provisioning codes are removed (code.expired events, rollout codes
# marked expired); with several nodes, one of them does it each time.
sweep_seconds = 60

# Admission control for boot storms: at most this many phone requests are answered at once;
# above it a new one gets 503 with a Retry-After of 5 to 30 seconds (jittered, so the
# phones come back spread out) while those in progress finish. 0 turns it off.
phone_max_in_flight = 512

# Memory (MiB) for devices and rendered files kept between phones' fetches, so that a boot
# storm costs neither a database read nor a rendering per request. Any change to what a
# file is made from (through any node, or the CLI) makes what was kept out of date at once
# on this node; other nodes on PostgreSQL hear of it by LISTEN/NOTIFY within milliseconds,
# and the CLI's changes on SQLite reach phones within half a second. 0 turns it off.
phone_cache_mb = 64

# A phone's fetches are recorded (last contact, address, firmware) off the request path. One
# that fetches again telling nothing new (same address, firmware, no job) is written at most
# this often, so a device's last contact is exact to this many seconds and a boot storm's
# repeated fetches cost no writes. 0 writes every fetch.
phone_contact_seconds = 60

# HTTPS next to HTTP: phones bootstrap on HTTP, and the files that move a device to its
# tokenized URL then point at HTTPS. A certificate chain and key (PEM, --tls-cert and
# --tls-key, reloaded on SIGHUP), or a self-signed certificate kept in the data directory
# for trials (--tls-self-signed). The listener's address (--tls-listen).
# tls_cert = "/etc/provisor/tls/fullchain.pem"
# tls_key = "/etc/provisor/tls/key.pem"
tls_self_signed = false
tls_listen = "127.0.0.1:8443"

# Verify client certificates against this CA bundle (PEM); a domain whose phone_policy
# has client_cert = true then accepts a certificate naming the device's MAC (--tls-client-ca).
# tls_client_ca = "/etc/provisor/tls/phone-vendors-ca.pem"

# The HTTPS URL phones reach Provisor at; without it, https://<tls_listen>.
# public_https_url = "https://prov.example.com"

# A directory laid out like the built-in vendors/ (<vendor>/vendor.toml,
# <vendor>/templates/<name>) whose files replace or add to the built-in catalog.
# vendors_dir = "/etc/provisor/vendors"
"#;

#[cfg(test)]
// figment's Jail returns its own large error type; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_default_config_is_the_default() {
        let from_text: Config = Figment::from(Toml::string(DEFAULT_CONFIG))
            .extract()
            .unwrap();
        assert_eq!(from_text, Config::default());
    }

    #[test]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "p.toml",
                "listen = \"127.0.0.1:9000\"\ndata_dir = \"from-file\"\nlog_level = \"debug\"\n",
            )?;
            jail.set_env("PROVISOR_DATA_DIR", "from-env");
            jail.set_env("PROVISOR_LOG_FORMAT", "json");
            jail.set_env("PROVISOR_TEST_DATABASE_URL", "ignored");
            let flags = Overrides {
                data_dir: Some("from-flag".into()),
                ..Default::default()
            };
            let c = Config::load(Some(Path::new("p.toml")), &flags).unwrap();
            assert_eq!(c.listen.port(), 9000, "file beats default");
            assert_eq!(c.log_level, "debug");
            assert_eq!(c.log_format, LogFormat::Json, "env beats default");
            assert_eq!(
                c.data_dir,
                PathBuf::from("from-flag"),
                "flag beats env and file"
            );
            let c = Config::load(Some(Path::new("p.toml")), &Overrides::default()).unwrap();
            assert_eq!(c.data_dir, PathBuf::from("from-env"), "env beats file");
            Ok(())
        });
    }

    #[test]
    fn secrets_come_from_files_and_never_print() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("url", "postgres://u:pw@db/x\n")?;
            jail.set_env("PROVISOR_DATABASE_URL_FILE", "url");
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(
                c.database_url.as_ref().unwrap().0.expose(),
                "postgres://u:pw@db/x"
            );
            assert!(!format!("{c:?}").contains("pw@"), "{c:?}");
            jail.create_file("key", "  00112233  \n")?;
            jail.set_env("PROVISOR_ENCRYPTION_KEY_FILE", "key");
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(c.encryption_key.as_ref().unwrap().0.expose(), "00112233");
            jail.set_env("PROVISOR_DATABASE_URL", "postgres://other");
            let e = Config::load(None, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("not both"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn typos_in_the_file_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("p.toml", "lisen = \"127.0.0.1:9000\"\n")?;
            let e = Config::load(Some(Path::new("p.toml")), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("lisen"), "{e}");
            Ok(())
        });
    }
}
