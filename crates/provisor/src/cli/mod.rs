//! The command line: `serve`, `default-config`, and admin commands for scripting that
//! work directly on the configured database (the same `--data-dir` / `--database-url`
//! as `serve`), so a running server sees their changes at once.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use provisor_domain::model::*;
use provisor_domain::secret::SecretString;
use provisor_domain::{Mac, csv, password};
use provisor_store::{DeviceDetail, PageRequest, Store, StoreError, device_detail, issue_token};
use serde::Serialize;

mod admins;
mod jobs;
mod templates;

pub use templates::TemplateCmd;

use crate::config::{Config, DEFAULT_CONFIG, LogFormat, Overrides};
use crate::{startup, tls};

#[derive(Parser, Debug)]
#[command(
    name = "provisor",
    version,
    about = "Provisioning server for SIP phones and softphones"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug)]
pub struct Global {
    /// TOML configuration file.
    #[arg(long, global = true, env = "PROVISOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory for the embedded database, key and first token.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// postgres://… to use PostgreSQL instead of the embedded SQLite.
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on, e.g. 0.0.0.0:8080.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        #[command(flatten)]
        tls: TlsFlags,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print an annotated example configuration.
    DefaultConfig,
    #[command(subcommand)]
    Domain(DomainCmd),
    #[command(subcommand)]
    Category(CategoryCmd),
    #[command(subcommand)]
    User(UserCmd),
    #[command(subcommand)]
    Account(AccountCmd),
    #[command(subcommand)]
    Device(DeviceCmd),
    #[command(subcommand)]
    Token(TokenCmd),
    /// Console administrators (web console sign-in).
    #[command(subcommand)]
    Admin(admins::AdminCmd),
    #[command(subcommand)]
    Code(CodeCmd),
    #[command(subcommand)]
    Rollout(RolloutCmd),
    /// A domain's automatic provisioning: devices register themselves into a category.
    #[command(subcommand, name = "auto-provisioning")]
    AutoProvisioning(AutoCmd),
    /// Update jobs: firmware and configuration rollouts applied at check-in.
    #[command(subcommand)]
    Job(jobs::JobCmd),
    /// A domain's innovaphone integration (PBX App object password, device admin password).
    #[command(subcommand)]
    Innovaphone(InnovaphoneCmd),
    #[command(subcommand)]
    Firmware(FirmwareCmd),
    #[command(subcommand)]
    Template(TemplateCmd),
    /// Print what the device of MAC would receive for FILE (passwords masked unless --reveal).
    Render {
        #[arg(long)]
        mac: String,
        file: String,
        /// Show SIP and admin passwords.
        #[arg(long)]
        reveal: bool,
    },
    /// Import users, SIP accounts and devices from CSV (all rows or none).
    Import {
        #[arg(long)]
        domain: String,
        file: PathBuf,
    },
    /// Export a domain as CSV, to FILE or standard output.
    Export {
        #[arg(long)]
        domain: String,
        file: Option<PathBuf>,
        /// Include SIP passwords in clear.
        #[arg(long)]
        passwords: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DomainCmd {
    /// Add a domain (tenant).
    Add {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List all domains.
    List,
}

#[derive(Subcommand, Debug)]
pub enum CategoryCmd {
    /// Add a category to a domain.
    Add {
        #[arg(long)]
        domain: String,
        category: String,
        /// Offer it when users request a provisioning code.
        #[arg(long)]
        provisioning: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Add a user to a domain.
    Add {
        #[arg(long)]
        domain: String,
        username: String,
        #[arg(long, default_value = "")]
        display_name: String,
        #[arg(long, default_value = "")]
        email: String,
        /// Portal password (at least 8 characters).
        #[arg(long)]
        password: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AccountCmd {
    /// Give a user a SIP account.
    Add {
        #[arg(long)]
        domain: String,
        #[arg(long)]
        user: String,
        #[arg(long)]
        sip_user: String,
        #[arg(long)]
        sip_password: String,
        #[arg(long, default_value = "")]
        auth_user: String,
        #[arg(long, default_value = "")]
        display_name: String,
        /// HOST[:PORT]
        #[arg(long, default_value = "")]
        registrar: String,
        /// Outbound proxy HOST[:PORT]
        #[arg(long, default_value = "")]
        proxy: String,
        /// udp, tcp or tls
        #[arg(long, default_value = "udp")]
        transport: String,
    },
}

/// HTTPS next to HTTP (phones bootstrap on HTTP, then move to HTTPS).
#[derive(clap::Args, Debug, Default)]
pub struct TlsFlags {
    /// Server certificate chain (PEM); reloaded with the key on SIGHUP.
    #[arg(long)]
    tls_cert: Option<std::path::PathBuf>,
    /// Private key of the certificate (PEM).
    #[arg(long)]
    tls_key: Option<std::path::PathBuf>,
    /// Make and use a self-signed certificate, for trials.
    #[arg(long)]
    tls_self_signed: bool,
    /// Address of the HTTPS listener (default 127.0.0.1:8443).
    #[arg(long)]
    tls_listen: Option<std::net::SocketAddr>,
    /// CA bundle (PEM) to verify client certificates against.
    #[arg(long)]
    tls_client_ca: Option<std::path::PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum DeviceCmd {
    /// Add a device; --line names SIP accounts in line order.
    Add {
        #[arg(long)]
        domain: String,
        #[arg(long)]
        mac: String,
        #[arg(long, default_value = "")]
        vendor: String,
        #[arg(long, default_value = "")]
        model: String,
        #[arg(long)]
        category: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long = "line")]
        lines: Vec<String>,
    },
    /// Show one device, found by MAC across all domains.
    Show {
        #[arg(long)]
        mac: String,
    },
    /// List a domain's devices.
    List {
        #[arg(long)]
        domain: String,
    },
    /// Give a device a new provisioning URL token (the previous one works for the domain's grace period).
    RotateToken {
        #[arg(long)]
        mac: String,
    },
    /// Let a device fetch once without credentials, to be handed its tokenized URL.
    Arm {
        #[arg(long)]
        mac: String,
        /// How long the window stays open (the domain's arm_minutes if not given; 0 disarms).
        #[arg(long)]
        minutes: Option<u32>,
    },
    /// Why the device's recent fetches were refused, newest first.
    Refusals {
        #[arg(long)]
        mac: String,
    },
}

/// Firmware files phones fetch under their token (`…/firmware/NAME`; a device's
/// `firmware` setting names the one its files point at).
#[derive(Subcommand, Debug)]
pub enum FirmwareCmd {
    /// Store a file (replacing one of the same name).
    Add {
        file: PathBuf,
        /// The name phones ask for; the file's own name if not given.
        #[arg(long)]
        name: Option<String>,
    },
    List,
    Delete {
        name: String,
    },
}

/// Provisioning codes, typed on a new phone to make it a user's.
#[derive(Subcommand, Debug)]
pub enum CodeCmd {
    /// Make a code for a user (printed once).
    Create {
        #[arg(long)]
        domain: String,
        /// The category the phone goes into.
        #[arg(long)]
        category: Option<String>,
        /// The user whose SIP accounts become the phone's lines.
        #[arg(long)]
        user: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AutoCmd {
    /// Set the domain's token (a random one without --token; the old one stops working)
    /// and print the URL for --category.
    Set {
        #[arg(long)]
        domain: String,
        #[arg(long)]
        token: Option<String>,
        #[arg(long)]
        category: Option<String>,
    },
    /// Print the URL to roll out for a category, every value encoded.
    Url {
        #[arg(long)]
        domain: String,
        #[arg(long)]
        category: String,
    },
    /// Turn automatic provisioning off.
    Off {
        #[arg(long)]
        domain: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum InnovaphoneCmd {
    /// Print the domain's innovaphone settings (secrets only as set or not).
    Show {
        #[arg(long)]
        domain: String,
    },
    /// Change them; passwords are read from files (first line), so they stay out of the
    /// process list and shell history. An empty file removes the password.
    Set {
        #[arg(long)]
        domain: String,
        /// The PBX App object's password (AppWebsocket logins).
        #[arg(long)]
        app_password_file: Option<PathBuf>,
        /// The admin password innovaphone devices get over sysclient.
        #[arg(long)]
        admin_password_file: Option<PathBuf>,
        /// The PBX's domain, where it is not this domain's name ("" for none).
        #[arg(long)]
        pbx_domain: Option<String>,
        /// The category of third-party phones whose code names none ("" for none).
        #[arg(long)]
        default_category: Option<String>,
    },
}

async fn innovaphone(store: &dyn Store, cmd: InnovaphoneCmd, out: &Output) -> anyhow::Result<()> {
    let show = |s: &provisor_domain::innovaphone::InnovaphoneSettings| {
        out.show(s, || {
            format!(
                "app password: {}\nadmin password: {}\nPBX domain: {}\ndefault category: {}",
                if s.app_password_set { "set" } else { "not set" },
                if s.admin_password_set {
                    "set"
                } else {
                    "not set"
                },
                s.pbx_domain,
                s.default_category.as_deref().unwrap_or("-"),
            )
        })
    };
    match cmd {
        InnovaphoneCmd::Show { domain } => {
            let d = store.domain(&domain).await?;
            show(&store.innovaphone(d.id).await?)
        }
        InnovaphoneCmd::Set {
            domain,
            app_password_file,
            admin_password_file,
            pbx_domain,
            default_category,
        } => {
            let d = store.domain(&domain).await?;
            let read = |p: Option<PathBuf>| -> anyhow::Result<Option<Option<SecretString>>> {
                p.map(|p| secret_file(&p)).transpose()
            };
            let patch = provisor_domain::innovaphone::InnovaphonePatch {
                app_password: read(app_password_file)?,
                admin_password: read(admin_password_file)?,
                pbx_domain,
                default_category: default_category.map(|c| (!c.is_empty()).then_some(c)),
            };
            let s = store
                .set_innovaphone(&actor(), d.id, &patch.validate()?)
                .await?;
            show(&s)
        }
    }
}

async fn auto_provisioning(
    store: &dyn Store,
    phones: &provisor_http::phone::Phones,
    cmd: AutoCmd,
    out: &Output,
) -> anyhow::Result<()> {
    let actor = actor();
    let (dn, category) = match &cmd {
        AutoCmd::Set {
            domain, category, ..
        } => (domain.clone(), category.clone()),
        AutoCmd::Url { domain, category } => (domain.clone(), Some(category.clone())),
        AutoCmd::Off { domain } => (domain.clone(), None),
    };
    let d = store.domain(&dn).await?;
    let token = match cmd {
        AutoCmd::Set { token, .. } => {
            let token = match token {
                Some(t) if !t.is_empty() => SecretString::new(t),
                Some(_) => bail!("--token must not be empty"),
                None => provisor_domain::token::generate().secret,
            };
            store.set_auto_token(&actor, d.id, Some(&token)).await?;
            token
        }
        AutoCmd::Url { .. } => store
            .auto_token(d.id)
            .await?
            .with_context(|| format!("{dn} has no automatic-provisioning token; set one first"))?,
        AutoCmd::Off { .. } => {
            store.set_auto_token(&actor, d.id, None).await?;
            return out.show(&serde_json::json!({"auto_provisioning": "off"}), || {
                format!("automatic provisioning of {dn} is off")
            });
        }
    };
    let url = match &category {
        Some(c) => {
            store.category(d.id, c).await?;
            Some(phones.auto_provisioning_url(&d.name, token.expose(), c))
        }
        None => None,
    };
    out.show(
        &serde_json::json!({"token": token.expose(), "url": url}),
        || url.clone().unwrap_or_else(|| token.expose().to_owned()),
    )
}

/// Rollouts: one code per user, listed with each user's state.
#[derive(Subcommand, Debug)]
pub enum RolloutCmd {
    /// Make a code for every user of the file (one user name per line, or a CSV whose
    /// first column is `username`).
    Create {
        #[arg(long)]
        domain: String,
        #[arg(long)]
        category: Option<String>,
        /// The phone handed out, for the list (e.g. "Yealink T54W").
        #[arg(long, default_value = "")]
        phone: String,
        #[arg(long)]
        users_file: PathBuf,
        /// Write the list (user, display name, code, valid until, state, MAC) as CSV here.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// A rollout's users, codes and states.
    Show {
        #[arg(long)]
        domain: String,
        id: i64,
        /// Write the list as CSV here instead.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
}

/// User names from a file: one per line, or CSV with `username` first; blank lines and
/// `#` comments skipped.
fn user_names(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split(',').next().unwrap_or("").trim().trim_matches('"'))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .enumerate()
        .filter(|(i, l)| !(*i == 0 && l.eq_ignore_ascii_case("username")))
        .map(|(_, l)| l.to_owned())
        .collect()
}

async fn rollout_list(
    store: &dyn Store,
    d: DomainId,
    id: i64,
    csv_file: Option<PathBuf>,
    out: &Output,
) -> anyhow::Result<()> {
    let (rollout, entries) = store.rollout(d, id).await?;
    if let Some(file) = csv_file {
        std::fs::write(&file, provisor_domain::code::rollout_csv(&entries))
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    out.show(
        &serde_json::json!({"rollout": rollout, "entries": entries}),
        || {
            let mut text = format!(
                "rollout {}: {} pending, {} registered, {} expired (valid until {})",
                rollout.id,
                rollout.pending,
                rollout.registered,
                rollout.expired,
                rollout.valid_until.format("%Y-%m-%d %H:%M UTC")
            );
            for e in &entries {
                text.push_str(&format!(
                    "\n{}  {}  {}  {}",
                    e.user,
                    e.code.expose(),
                    e.state.as_str(),
                    e.mac.map(|m| m.to_string()).unwrap_or_default()
                ));
            }
            text
        },
    )
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create an API token and print it (once).
    Create {
        #[arg(long)]
        role: String,
        #[arg(long)]
        domain: Option<String>,
        #[arg(long, default_value = "")]
        name: String,
    },
}

impl Cli {
    pub fn config(&self) -> anyhow::Result<Config> {
        let default_tls = TlsFlags::default();
        let (listen, tls) = match &self.command {
            Command::Serve { listen, tls } => (*listen, tls),
            _ => (None, &default_tls),
        };
        let overrides = Overrides {
            listen,
            tls_cert: tls.tls_cert.clone(),
            tls_key: tls.tls_key.clone(),
            tls_self_signed: tls.tls_self_signed.then_some(true),
            tls_listen: tls.tls_listen,
            tls_client_ca: tls.tls_client_ca.clone(),
            data_dir: self.global.data_dir.clone(),
            database_url: self.global.database_url.clone(),
            log_format: self.global.log_format,
        };
        Config::load(self.global.config.as_deref(), &overrides)
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::DefaultConfig = cli.command {
        print!("{DEFAULT_CONFIG}");
        return Ok(());
    }
    let config = cli.config()?;
    match cli.command {
        Command::Serve { .. } => {
            startup::init_tracing(config.log_format, &config.log_level);
            return startup::serve(config).await;
        }
        _ => startup::init_tracing(config.log_format, "warn"),
    }
    let store = startup::open_store(&config).await?;
    let out = Output {
        json: cli.global.json,
    };
    let url_base = startup::phone_options(
        &config,
        config.listen,
        tls::files(&config)?.map(|_| config.tls_listen),
    );
    let phone_options = url_base.clone();
    let url = move |token: &str| {
        provisor_domain::phone::provisioning_url(url_base.public_base(), &url_base.base_path, token)
    };
    let firmware_dir = config.data_dir.join("firmware");
    let phones = || -> anyhow::Result<_> {
        let (recorder, recording) =
            provisor_http::phone::Recorder::spawn(store.clone(), std::time::Duration::ZERO);
        let phones = provisor_http::phone::Phones::new(
            startup::renderer(&config)?,
            phone_options.clone(),
            recorder,
        );
        Ok((phones, recording))
    };
    let result = match cli.command {
        Command::Firmware(cmd) => firmware(store.as_ref(), cmd, &out, &firmware_dir).await,
        Command::Template(cmd) => {
            let (phones, recording) = phones()?;
            let r = templates::template(store.as_ref(), &phones, cmd, &out).await;
            drop(phones);
            recording.finish(std::time::Duration::from_secs(5)).await;
            r
        }
        Command::AutoProvisioning(cmd) => {
            let (phones, recording) = phones()?;
            let r = auto_provisioning(store.as_ref(), &phones, cmd, &out).await;
            drop(phones);
            recording.finish(std::time::Duration::from_secs(5)).await;
            r
        }
        Command::Render { mac, file, reveal } => {
            let (phones, recording) = phones()?;
            let r = templates::render(store.as_ref(), &phones, &mac, &file, reveal, &out).await;
            drop(phones);
            recording.finish(std::time::Duration::from_secs(5)).await;
            r
        }
        command => admin(store.as_ref(), command, &out, &url).await,
    };
    store.close().await;
    result
}

struct Output {
    json: bool,
}

impl Output {
    fn show<T: Serialize>(&self, value: &T, text: impl FnOnce() -> String) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            println!("{}", text());
        }
        Ok(())
    }
}

/// The first line of a file holding a secret (so it stays out of the process list and
/// shell history); `None` if it is empty.
fn secret_file(path: &std::path::Path) -> anyhow::Result<Option<SecretString>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let line = text.lines().next().unwrap_or("").to_owned();
    Ok((!line.is_empty()).then(|| SecretString::new(line)))
}

fn actor() -> Actor {
    Actor(format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    ))
}

async fn domain(store: &dyn Store, name: &str) -> anyhow::Result<DomainId> {
    match store.domain(&name.trim().to_ascii_lowercase()).await {
        Ok(d) => Ok(d.id),
        Err(StoreError::NotFound(_)) => bail!("there is no domain '{name}'"),
        Err(e) => Err(e.into()),
    }
}

fn device_text(d: &Device) -> String {
    let lines: Vec<String> = d
        .lines
        .iter()
        .map(|l| format!("{}:{}", l.position, l.sip_user))
        .collect();
    format!(
        "{}  {} {}  state={}  category={}  user={}  lines=[{}]",
        d.mac,
        if d.vendor.is_empty() { "-" } else { &d.vendor },
        if d.model.is_empty() { "-" } else { &d.model },
        d.state,
        d.category.as_deref().unwrap_or("-"),
        d.user.as_deref().unwrap_or("-"),
        lines.join(", ")
    )
}

/// Every page of a list, for commands that print all of it.
async fn all<T, F, Fut>(fetch: F) -> anyhow::Result<Vec<T>>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = provisor_store::Result<provisor_store::Page<T>>>,
{
    Ok(provisor_store::all_pages(fetch).await?)
}

async fn firmware(
    store: &dyn Store,
    command: FirmwareCmd,
    out: &Output,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    use provisor_http::firmware as files;
    match command {
        FirmwareCmd::Add { file, name } => {
            let name = match name {
                Some(n) => n,
                None => file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            let name = firmware_name(&name)?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let sha = files::save(dir, &bytes)
                .await
                .with_context(|| format!("cannot store the file in {}", dir.display()))?;
            let (entry, orphan) = store
                .put_firmware(&actor(), &name, &sha, bytes.len() as u64)
                .await?;
            if let Some(orphan) = orphan {
                files::remove(dir, &orphan).await;
            }
            out.show(&entry, || {
                format!(
                    "stored firmware {} ({} bytes, sha256 {})",
                    entry.name, entry.size, entry.sha256
                )
            })
        }
        FirmwareCmd::List => {
            let all = store.list_firmware().await?;
            out.show(&all, || {
                all.iter()
                    .map(|f| format!("{}  {} bytes  sha256 {}", f.name, f.size, f.sha256))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        FirmwareCmd::Delete { name } => {
            if let Some(orphan) = store.delete_firmware(&actor(), &name).await? {
                files::remove(dir, &orphan).await;
            }
            out.show(&serde_json::json!({"deleted": name}), || {
                format!("deleted firmware {name}")
            })
        }
    }
}

/// The domain of a device found by MAC across all domains.
async fn device_domain(store: &dyn Store, mac: Mac) -> anyhow::Result<DomainId> {
    store.device_domain(mac).await.map_err(|e| match e {
        StoreError::NotFound(_) => anyhow::anyhow!("there is no device with MAC {mac}"),
        e => e.into(),
    })
}

fn detail_text(d: &DeviceDetail) -> String {
    let p = &d.provisioning;
    let mut text = format!(
        "{}\nprovisioning URL: {}",
        device_text(&d.device),
        p.url.as_deref().unwrap_or("(none yet: rotate the token)")
    );
    if let Some(t) = p.armed_until {
        text.push_str(&format!("\narmed until {t}"));
    }
    if let Some(t) = p.previous_token_valid_until {
        text.push_str(&format!("\nprevious token valid until {t}"));
    }
    text
}

async fn admin(
    store: &dyn Store,
    command: Command,
    out: &Output,
    url: &(dyn Fn(&str) -> String + Sync),
) -> anyhow::Result<()> {
    let actor = actor();
    match command {
        Command::Serve { .. }
        | Command::DefaultConfig
        | Command::Firmware(_)
        | Command::Template(_)
        | Command::AutoProvisioning(_)
        | Command::Render { .. } => {
            unreachable!("handled before")
        }
        Command::Innovaphone(cmd) => innovaphone(store, cmd, out).await,
        Command::Job(cmd) => jobs::job(store, cmd, out).await,
        Command::Admin(cmd) => admins::admin(store, cmd, out).await,
        Command::Migrate => out.show(&serde_json::json!({"migrated": store.backend()}), || {
            format!("{} database is up to date", store.backend())
        }),
        Command::Domain(DomainCmd::Add { name, description }) => {
            let new: NewDomain = serde_json::from_value(
                serde_json::json!({"name": name, "description": description}),
            )?;
            let d = store.create_domain(&actor, &new.validate()?).await?;
            out.show(&d, || format!("added domain {}", d.name))
        }
        Command::Domain(DomainCmd::List) => {
            let domains = all(|p| store.list_domains(p)).await?;
            out.show(&domains, || {
                domains
                    .iter()
                    .map(|d| d.name.clone())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        Command::Category(CategoryCmd::Add {
            domain: dn,
            category,
            provisioning,
        }) => {
            let d = domain(store, &dn).await?;
            let new = NewCategory {
                name: category,
                provisioning,
                settings: Default::default(),
            }
            .validate()?;
            let c = store.create_category(&actor, d, &new).await?;
            out.show(&c, || {
                format!(
                    "added category '{}' to {dn}{}",
                    c.name,
                    if c.provisioning {
                        " (provisioning)"
                    } else {
                        ""
                    }
                )
            })
        }
        Command::User(UserCmd::Add {
            domain: dn,
            username,
            display_name,
            email,
            password: pw,
        }) => {
            let d = domain(store, &dn).await?;
            let new = NewUser {
                username,
                display_name,
                email,
                password: pw.map(SecretString::new),
                enabled: true,
                settings: Default::default(),
            }
            .validate()?;
            let hash = match &new.password {
                Some(pw) => {
                    let pw = pw.clone();
                    Some(tokio::task::spawn_blocking(move || password::hash(&pw)).await??)
                }
                None => None,
            };
            let u = store.create_user(&actor, d, &new, hash.as_deref()).await?;
            out.show(&u, || format!("added user {} to {dn}", u.username))
        }
        Command::Account(AccountCmd::Add {
            domain: dn,
            user,
            sip_user,
            sip_password,
            auth_user,
            display_name,
            registrar,
            proxy,
            transport,
        }) => {
            let d = domain(store, &dn).await?;
            let new = NewSipAccount {
                sip_user,
                auth_user,
                password: SecretString::new(sip_password),
                display_name,
                registrar,
                outbound_proxy: proxy,
                transport: transport.parse()?,
                options: Default::default(),
            }
            .validate()?;
            let a = store.create_account(&actor, d, &user, &new).await?;
            out.show(&a, || {
                format!("added SIP account {} (id {}) for {user}", a.sip_user, a.id)
            })
        }
        Command::Device(DeviceCmd::Add {
            domain: dn,
            mac,
            vendor,
            model,
            category,
            user,
            lines,
        }) => {
            let d = domain(store, &dn).await?;
            let new = NewDevice {
                mac: Mac::parse(&mac)?,
                vendor,
                model,
                category,
                user,
                lines,
                settings: Default::default(),
            }
            .validate()?;
            let dev = store.create_device(&actor, d, &new).await?;
            let dev = device_detail(store, d, dev.mac, url).await?;
            out.show(&dev, || format!("added device {}", detail_text(&dev)))
        }
        Command::Device(DeviceCmd::Show { mac }) => {
            let mac = Mac::parse(&mac)?;
            let d = device_domain(store, mac).await?;
            let dev = device_detail(store, d, mac, url).await?;
            out.show(&dev, || detail_text(&dev))
        }
        Command::Device(DeviceCmd::RotateToken { mac }) => {
            let mac = Mac::parse(&mac)?;
            let d = device_domain(store, mac).await?;
            store.rotate_device_token(&actor, d, mac).await?;
            let dev = device_detail(store, d, mac, url).await?;
            out.show(&dev, || detail_text(&dev))
        }
        Command::Device(DeviceCmd::Arm { mac, minutes }) => {
            let mac = Mac::parse(&mac)?;
            let d = device_domain(store, mac).await?;
            store.arm_device(&actor, d, mac, minutes).await?;
            let dev = device_detail(store, d, mac, url).await?;
            out.show(&dev, || detail_text(&dev))
        }
        Command::Device(DeviceCmd::Refusals { mac }) => {
            let mac = Mac::parse(&mac)?;
            let d = device_domain(store, mac).await?;
            let refusals = all(|p| store.list_refusals(d, mac, p)).await?;
            out.show(&refusals, || {
                refusals
                    .iter()
                    .map(|r| format!("{}  {}  {}  {}", r.at, r.ip, r.file, r.reason))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        Command::Device(DeviceCmd::List { domain: dn }) => {
            let d = domain(store, &dn).await?;
            let filter = DeviceFilter::default();
            let devices = all(|p| store.list_devices(d, &filter, p)).await?;
            out.show(&devices, || {
                devices
                    .iter()
                    .map(device_text)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        Command::Token(TokenCmd::Create {
            role,
            domain: dn,
            name,
        }) => {
            let role: Role = role.parse()?;
            let d = match (role, dn) {
                (Role::Operator, None) => None,
                (Role::Operator, Some(_)) => {
                    bail!("an operator token is not limited to a domain; leave out --domain")
                }
                (Role::DomainAdmin, None) => bail!("a domain-admin token needs --domain"),
                (Role::DomainAdmin, Some(dn)) => Some(domain(store, &dn).await?),
            };
            let (token, secret) = issue_token(store, &actor, &name, role, d).await?;
            out.show(&serde_json::json!({"token": secret.expose(), "id": token.id, "role": token.role, "domain": token.domain}), || {
                secret.expose().to_owned()
            })
        }
        Command::Code(CodeCmd::Create {
            domain: dn,
            category,
            user,
        }) => {
            let d = domain(store, &dn).await?;
            let issued = store
                .create_code(&actor, d, category.as_deref(), &user)
                .await?;
            out.show(&issued, || {
                format!(
                    "{}  (for {user}, valid until {})",
                    issued.code.expose(),
                    issued.valid_until.format("%Y-%m-%d %H:%M:%S UTC")
                )
            })
        }
        Command::Rollout(RolloutCmd::Create {
            domain: dn,
            category,
            phone,
            users_file,
            csv: csv_file,
        }) => {
            let d = domain(store, &dn).await?;
            let text = std::fs::read_to_string(&users_file)
                .with_context(|| format!("cannot read {}", users_file.display()))?;
            let rollout = store
                .create_rollout(&actor, d, category.as_deref(), &phone, &user_names(&text))
                .await?;
            rollout_list(store, d, rollout.id, csv_file, out).await
        }
        Command::Rollout(RolloutCmd::Show {
            domain: dn,
            id,
            csv: csv_file,
        }) => {
            let d = domain(store, &dn).await?;
            rollout_list(store, d, id, csv_file, out).await
        }
        Command::Import { domain: dn, file } => {
            let d = domain(store, &dn).await?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            // Rows refused while reading travel in the plan; the store adds its own.
            let plan = csv::read(&bytes);
            match store.import(&actor, d, &plan).await {
                Ok(s) => out.show(&s, || {
                    format!(
                        "imported: users {} new, {} changed; SIP accounts {} new, {} changed; devices {} new, {} changed",
                        s.users_created, s.users_updated, s.accounts_created, s.accounts_updated, s.devices_created, s.devices_updated
                    )
                }),
                Err(StoreError::Rows(rows)) => Err(rejected(&file, &rows)),
                Err(e) => Err(e.into()),
            }
        }
        Command::Export {
            domain: dn,
            file,
            passwords,
        } => {
            let d = domain(store, &dn).await?;
            let text = csv::write(&store.export(d, passwords).await?);
            match file {
                Some(f) => startup::write_private(&f, &text)
                    .with_context(|| format!("cannot write {}", f.display())),
                None => {
                    print!("{text}");
                    Ok(())
                }
            }
        }
    }
}

fn rejected(file: &std::path::Path, rows: &[csv::RowError]) -> anyhow::Error {
    let lines: Vec<String> = rows
        .iter()
        .map(|r| format!("{}:{}: {}", file.display(), r.line, r.reason))
        .collect();
    anyhow::anyhow!(
        "nothing was imported; {} bad rows:\n{}",
        rows.len(),
        lines.join("\n")
    )
}
