//! `provisor admin …`: console administrators (who signs in to the web console).

use std::path::PathBuf;

use anyhow::bail;
use clap::Subcommand;
use provisor_domain::model::Role;
use provisor_domain::secret::SecretString;
use provisor_store::{Admin, Store};

use super::{Output, actor, domain, secret_file};

#[derive(Subcommand, Debug)]
pub enum AdminCmd {
    /// Add an administrator: an operator, or with `--domain` the admin of that domain.
    /// The password is read from `--password-file` (first line) or, without it, made up
    /// and printed once.
    Add {
        name: String,
        #[arg(long)]
        domain: Option<String>,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Set an administrator's password (from `--password-file`, or made up and printed
    /// once); their sessions end.
    Password {
        name: String,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Remove an administrator; their sessions end.
    Remove {
        name: String,
    },
    List,
}

/// The password of `file`, or a new random one (and whether it was made here).
fn password(file: Option<PathBuf>) -> anyhow::Result<(SecretString, bool)> {
    match file {
        Some(f) => match secret_file(&f)? {
            Some(pw) => Ok((pw, false)),
            None => bail!("{} holds no password", f.display()),
        },
        None => Ok((provisor_domain::token::generate().secret, true)),
    }
}

fn hash(pw: &SecretString) -> anyhow::Result<String> {
    provisor_domain::model::secret_text("password", pw)?;
    Ok(provisor_domain::password::hash(pw)?)
}

fn admin_text(a: &Admin) -> String {
    format!(
        "{}  {}{}",
        a.name,
        a.role,
        a.domain
            .as_deref()
            .map(|d| format!(" of {d}"))
            .unwrap_or_default()
    )
}

pub async fn admin(store: &dyn Store, cmd: AdminCmd, out: &Output) -> anyhow::Result<()> {
    match cmd {
        AdminCmd::Add {
            name,
            domain: dn,
            password_file,
        } => {
            let (role, d) = match dn {
                Some(dn) => (Role::DomainAdmin, Some(domain(store, &dn).await?)),
                None => (Role::Operator, None),
            };
            let (pw, made) = password(password_file)?;
            let a = store
                .create_admin(&actor(), &name, role, d, &hash(&pw)?)
                .await?;
            let shown = made.then(|| pw.expose().to_owned());
            out.show(
                &serde_json::json!({"admin": a, "password": shown}),
                || match &shown {
                    Some(p) => format!("{}\npassword (shown once): {p}", admin_text(&a)),
                    None => admin_text(&a),
                },
            )
        }
        AdminCmd::Password {
            name,
            password_file,
        } => {
            let (pw, made) = password(password_file)?;
            store
                .set_admin_password(&actor(), None, &name.to_lowercase(), &hash(&pw)?)
                .await?;
            let shown = made.then(|| pw.expose().to_owned());
            out.show(
                &serde_json::json!({"admin": name, "password": shown}),
                || match &shown {
                    Some(p) => format!("password (shown once): {p}"),
                    None => "password set".into(),
                },
            )
        }
        AdminCmd::Remove { name } => {
            store
                .delete_admin(&actor(), None, &name.to_lowercase())
                .await?;
            out.show(&serde_json::json!({"removed": name}), || {
                format!("removed {name}")
            })
        }
        AdminCmd::List => {
            let admins = store.list_admins(None).await?;
            out.show(&admins, || {
                admins.iter().map(admin_text).collect::<Vec<_>>().join("\n")
            })
        }
    }
}
