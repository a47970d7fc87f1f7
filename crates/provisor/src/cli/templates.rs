//! `provisor template …` and `provisor render`: stored templates and the render preview,
//! checked and rendered exactly as the API does.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use provisor_domain::Mac;
use provisor_domain::template::TemplateOrigin;
use provisor_http::phone::Phones;
use provisor_render::Unstorable;
use provisor_store::{Store, TemplateKey};

use super::{Output, actor, device_domain};

/// Templates stored per domain or category: replacing a vendor's built-in device template
/// (e.g. `yealink mac.cfg`) or adding a device file whose name holds `{mac}`.
#[derive(Subcommand, Debug)]
pub enum TemplateCmd {
    /// The domain's and its categories' stored templates.
    List {
        #[arg(long)]
        domain: String,
    },
    /// Print a stored template's source.
    Show {
        #[arg(long)]
        domain: String,
        #[arg(long)]
        category: Option<String>,
        vendor: String,
        name: String,
    },
    /// Print a built-in template's source, to start a replacement from.
    Builtin { vendor: String, name: String },
    /// Check FILE and store it as the domain's (or category's) template NAME of VENDOR.
    Set {
        #[arg(long)]
        domain: String,
        #[arg(long)]
        category: Option<String>,
        vendor: String,
        name: String,
        file: PathBuf,
    },
    /// Remove a stored template.
    Delete {
        #[arg(long)]
        domain: String,
        #[arg(long)]
        category: Option<String>,
        vendor: String,
        name: String,
    },
    /// Import a 3CX phone template (XML with <deviceconfig filename="…%%mac_address%%…">).
    #[command(name = "import-3cx")]
    Import3cx {
        #[arg(long)]
        domain: String,
        #[arg(long)]
        category: Option<String>,
        /// The vendor whose phones get the imported files.
        #[arg(long)]
        vendor: String,
        file: PathBuf,
    },
}

fn read(file: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

fn refused(file: &std::path::Path, e: Unstorable) -> anyhow::Error {
    match e {
        Unstorable::Name(why) => anyhow::anyhow!(why),
        Unstorable::Problem(p) => {
            anyhow::anyhow!("{}:{}:{}: {}", file.display(), p.line, p.column, p.message)
        }
    }
}

pub(super) async fn template(
    store: &dyn Store,
    phones: &Phones,
    cmd: TemplateCmd,
    out: &Output,
) -> anyhow::Result<()> {
    let renderer = phones.renderer();
    let key = |category: &Option<String>, vendor: &str, name: &str| {
        (category.clone(), vendor.to_owned(), name.to_owned())
    };
    match cmd {
        TemplateCmd::List { domain } => {
            let d = store.domain(&domain).await?;
            let all = store.list_templates(d.id).await?;
            out.show(&all, || {
                all.iter()
                    .map(|t| {
                        format!(
                            "{}  {}/{}  ({}, {} by {})",
                            t.category.as_deref().unwrap_or("(domain)"),
                            t.vendor,
                            t.name,
                            t.origin.as_str(),
                            t.updated_at.format("%Y-%m-%d %H:%M"),
                            t.updated_by
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        TemplateCmd::Show {
            domain,
            category,
            vendor,
            name,
        } => {
            let d = store.domain(&domain).await?;
            let (c, v, n) = key(&category, &vendor, &name);
            let t = store
                .template(
                    d.id,
                    TemplateKey {
                        category: c.as_deref(),
                        vendor: &v,
                        name: &n,
                    },
                )
                .await?;
            out.show(&t, || t.source.clone())
        }
        TemplateCmd::Builtin { vendor, name } => match renderer.source(&vendor, &name) {
            Some(source) => out.show(
                &serde_json::json!({"vendor": vendor, "name": name, "source": source}),
                || source.clone(),
            ),
            None => bail!("there is no built-in template {vendor}/{name}"),
        },
        TemplateCmd::Set {
            domain,
            category,
            vendor,
            name,
            file,
        } => {
            let d = store.domain(&domain).await?;
            let source = read(&file)?;
            let name = renderer
                .storable(&vendor, &name, &source)
                .map_err(|e| refused(&file, e))?;
            let t = store
                .put_template(
                    &actor(),
                    d.id,
                    TemplateKey {
                        category: category.as_deref(),
                        vendor: &vendor,
                        name: &name,
                    },
                    TemplateOrigin::Template,
                    &source,
                )
                .await?;
            out.show(&t, || {
                format!(
                    "stored template {}/{} for {}",
                    t.vendor,
                    t.name,
                    t.category.as_deref().unwrap_or(&domain)
                )
            })
        }
        TemplateCmd::Delete {
            domain,
            category,
            vendor,
            name,
        } => {
            let d = store.domain(&domain).await?;
            store
                .delete_template(
                    &actor(),
                    d.id,
                    TemplateKey {
                        category: category.as_deref(),
                        vendor: &vendor,
                        name: &name,
                    },
                )
                .await?;
            out.show(
                &serde_json::json!({"deleted": format!("{vendor}/{name}")}),
                || format!("deleted template {vendor}/{name}"),
            )
        }
        TemplateCmd::Import3cx {
            domain,
            category,
            vendor,
            file,
        } => {
            let d = store.domain(&domain).await?;
            let files = renderer
                .import_3cx(&vendor, &read(&file)?)
                .map_err(|e| refused(&file, e))?;
            let mut stored = Vec::new();
            for f in &files {
                stored.push(
                    store
                        .put_template(
                            &actor(),
                            d.id,
                            TemplateKey {
                                category: category.as_deref(),
                                vendor: &vendor,
                                name: &f.name,
                            },
                            TemplateOrigin::ThreeCx,
                            &f.source,
                        )
                        .await?,
                );
                for w in &f.warnings {
                    eprintln!("warning: {w}");
                }
            }
            out.show(&stored, || {
                stored
                    .iter()
                    .map(|t| format!("imported {}/{}", t.vendor, t.name))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
    }
}

/// What the device of `mac` would receive for `file`.
pub(super) async fn render(
    store: &dyn Store,
    phones: &Phones,
    mac: &str,
    file: &str,
    reveal: bool,
    out: &Output,
) -> anyhow::Result<()> {
    let mac = Mac::parse(mac)?;
    device_domain(store, mac).await?;
    let Some(device) = store.phone_by_mac(mac).await? else {
        bail!("there is no device with MAC {mac}");
    };
    let preview = phones.preview(&device, file, reveal)?;
    for w in &preview.warnings {
        eprintln!("warning: {w}");
    }
    out.show(&preview, || preview.body.clone())
}
