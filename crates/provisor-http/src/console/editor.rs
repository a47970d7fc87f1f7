//! The console's template pages: a domain's (and its categories') stored templates, and an
//! editor that checks a template as an upload is checked, shows a problem at its line and
//! column, and previews what a phone (a real one of the domain, or a sample with three
//! lines) would receive, passwords masked. The preview is live with the script (a JSON
//! answer to the same form) and a button without it.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::context;
use provisor_domain::Mac;
use provisor_domain::catalog::FileKind;
use provisor_domain::model::Domain;
use provisor_domain::template::TemplateOrigin;
use provisor_render::{TemplateProblem, Unstorable};
use provisor_store::{StoreError, TemplateKey};
use serde::Deserialize;

use super::admin::{Signed, category_names, domain_path, vendor_choices, with};
use super::{PageError, PageResult, filled, page, see};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/d/{domain}/templates", get(list))
        .route(
            "/console/d/{domain}/templates/edit",
            get(edit).post(edit_post),
        )
        .route("/console/d/{domain}/templates/preview", post(preview))
}

fn templates_path(d: &Domain) -> String {
    format!("{}/templates", domain_path(d))
}

/// The device templates of every vendor of the catalog, as `vendor/name`.
fn replaceable(st: &AppState) -> Vec<String> {
    st.phones
        .renderer()
        .catalog()
        .vendors()
        .iter()
        .flat_map(|v| {
            v.files
                .iter()
                .filter(|f| f.kind == FileKind::Device)
                .map(move |f| format!("{}/{}", v.id, f.template))
        })
        .collect()
}

async fn list(State(st): State<AppState>, a: Signed, Path(name): Path<String>) -> PageResult {
    let d = a.domain(&st, &name).await?;
    let templates = st.store.list_templates(d.id).await?;
    let categories = category_names(&st, d.id).await?;
    let vendors = vendor_choices(&st);
    page(
        "templates.html",
        with(
            a.ctx(Some(&d), "templates"),
            context! { templates, categories, vendors, replaceable => replaceable(&st) },
        ),
    )
}

#[derive(Deserialize)]
struct Which {
    /// `vendor/name`, as the list's chooser gives it.
    template: Option<String>,
    vendor: Option<String>,
    name: Option<String>,
    category: Option<String>,
    mac: Option<String>,
    saved: Option<String>,
}

/// The template an edit is about.
struct Chosen {
    vendor: String,
    name: String,
    category: Option<String>,
}

impl Chosen {
    fn key(&self) -> TemplateKey<'_> {
        TemplateKey {
            category: self.category.as_deref(),
            vendor: &self.vendor,
            name: &self.name,
        }
    }

    /// The editor's address for this template.
    fn path(&self, d: &Domain) -> String {
        let mut query = vec![("vendor", self.vendor.as_str()), ("name", &self.name)];
        if let Some(c) = &self.category {
            query.push(("category", c));
        }
        format!(
            "{}/edit?{}",
            templates_path(d),
            serde_urlencoded::to_string(query).unwrap_or_default()
        )
    }
}

fn chosen(
    template: Option<&str>,
    vendor: Option<&str>,
    name: Option<&str>,
    category: Option<&str>,
) -> Result<Chosen, PageError> {
    let (vendor, name) = match (template, vendor, name) {
        (Some(t), _, _) => t
            .split_once('/')
            .ok_or_else(|| PageError::bad("choose a template as vendor/name"))?,
        (None, Some(v), Some(n)) => (v, n),
        _ => return Err(PageError::bad("choose a vendor and a template name")),
    };
    Ok(Chosen {
        vendor: vendor.trim().to_owned(),
        name: name.trim().to_owned(),
        category: category.map(str::to_owned),
    })
}

/// What the editor shows besides the source.
#[derive(Default)]
struct Outcome {
    problem: Option<TemplateProblem>,
    preview: Option<provisor_render::Rendered>,
    saved: bool,
    /// The template as stored, and the built-in one (`current`).
    held: Held,
}

/// The lines around a problem, the one at fault marked, with a caret under its column.
fn excerpt(source: &str, p: &TemplateProblem) -> Vec<minijinja::Value> {
    let from = p.line.saturating_sub(3);
    source
        .lines()
        .enumerate()
        .skip(from)
        .take(5)
        .map(|(i, text)| {
            let here = i + 1 == p.line;
            context! {
                n => format!("{:>4}", i + 1),
                text,
                here,
                caret => here.then(|| format!("{}^", " ".repeat(p.column.saturating_sub(1)))),
            }
        })
        .collect()
}

fn problem_view(source: &str, p: &TemplateProblem) -> minijinja::Value {
    context! { line => p.line, column => p.column, message => p.message, excerpt => excerpt(source, p) }
}

/// The template as the domain has it stored, and the built-in one of that name.
async fn current(
    st: &AppState,
    d: &Domain,
    which: &Chosen,
) -> Result<
    (
        Option<provisor_domain::template::StoredTemplate>,
        Option<String>,
    ),
    PageError,
> {
    let stored = match st.store.template(d.id, which.key()).await {
        Ok(t) => Some(t),
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    Ok((
        stored,
        st.phones.renderer().source(&which.vendor, &which.name),
    ))
}

/// The template as stored, and the built-in one of that name (`current`).
type Held = (
    Option<provisor_domain::template::StoredTemplate>,
    Option<String>,
);

async fn editor(
    st: &AppState,
    a: &Signed,
    d: &Domain,
    which: &Chosen,
    source: Option<String>,
    mac: Option<&str>,
    outcome: Outcome,
) -> PageResult {
    let (stored, builtin) = outcome.held;
    let renderer = st.phones.renderer();
    if renderer.catalog().vendor(&which.vendor).is_none() {
        return Err(PageError::bad(format!(
            "there is no vendor '{}' in the catalog",
            which.vendor
        ))
        .back(templates_path(d)));
    }
    let from = match (&stored, &builtin) {
        (Some(t), _) if t.origin == TemplateOrigin::ThreeCx => "imported from 3CX",
        (Some(_), _) => "stored",
        (None, Some(_)) => "built-in",
        (None, None) => "new",
    };
    let source_given = source.is_some();
    let source = source
        .or_else(|| stored.as_ref().map(|t| t.source.clone()))
        .or(builtin)
        .unwrap_or_default();
    let categories = category_names(st, d.id).await?;
    let status = if outcome.problem.is_some() && source_given {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let problem = outcome.problem.as_ref().map(|p| problem_view(&source, p));
    let preview = outcome
        .preview
        .map(|r| context! { body => r.body, warnings => r.warnings });
    let mut r = page(
        "template.html",
        with(
            a.ctx(Some(d), "templates"),
            context! {
                vendor => which.vendor, name => which.name, category => which.category,
                categories, source, from, stored => stored.as_ref().map(|t| context! {
                    updated_at => t.updated_at, updated_by => t.updated_by,
                }),
                mac => mac.unwrap_or_default(), problem, preview, saved => outcome.saved,
                list => templates_path(d),
                action => format!("{}/edit", templates_path(d)),
                preview_action => format!("{}/preview", templates_path(d)),
            },
        ),
    )?;
    *r.status_mut() = status;
    Ok(r)
}

async fn edit(
    State(st): State<AppState>,
    a: Signed,
    Path(name): Path<String>,
    Query(q): Query<Which>,
) -> PageResult {
    let d = a.domain(&st, &name).await?;
    let which = chosen(
        filled(&q.template),
        filled(&q.vendor),
        filled(&q.name),
        filled(&q.category),
    )
    .map_err(|e| e.back(templates_path(&d)))?;
    // What phones get from the template as it is (stored, or the built-in).
    let mac = filled(&q.mac);
    let held = current(&st, &d, &which).await?;
    let current = held
        .0
        .as_ref()
        .map(|t| t.source.clone())
        .or_else(|| held.1.clone());
    let mut outcome = Outcome {
        saved: q.saved.is_some(),
        ..Default::default()
    };
    if let Some(source) = current.filter(|s| !s.is_empty()) {
        match attempt(&st, &d, &which, &source, mac).await {
            Ok(Ok((_, rendered))) => outcome.preview = Some(rendered),
            Ok(Err(problem)) => outcome.problem = Some(problem),
            // A name that cannot be stored, or a MAC not here: told at the check.
            Err(_) => {}
        }
    }
    outcome.held = held;
    editor(&st, &a, &d, &which, None, mac, outcome).await
}

#[derive(Deserialize)]
struct EditForm {
    vendor: String,
    name: String,
    category: Option<String>,
    #[serde(default)]
    source: String,
    mac: Option<String>,
    /// `check` (the default), `save` or `delete`.
    #[serde(default)]
    action: String,
}

impl EditForm {
    fn chosen(&self) -> Result<Chosen, PageError> {
        chosen(
            None,
            Some(&self.vendor),
            Some(&self.name),
            filled(&self.category),
        )
    }

    /// The source as the phone's file is made from it (browsers send CR LF).
    fn source(&self) -> String {
        self.source.replace("\r\n", "\n")
    }
}

/// Checks the form's source and renders it for the chosen device (or a sample): the name
/// it is stored under and what it makes, or its problem.
async fn attempt(
    st: &AppState,
    d: &Domain,
    which: &Chosen,
    source: &str,
    mac: Option<&str>,
) -> Result<Result<(String, provisor_render::Rendered), TemplateProblem>, PageError> {
    let device = match mac {
        Some(m) => {
            let mac = Mac::parse(m).map_err(|e| PageError::bad(e.to_string()))?;
            Some(
                st.store
                    .phone_by_mac(mac)
                    .await?
                    .filter(|p| p.domain == d.id)
                    .ok_or_else(|| {
                        PageError::bad(format!("there is no device {mac} in this domain"))
                    })?,
            )
        }
        None => None,
    };
    match st
        .phones
        .try_template(device.as_ref(), &which.vendor, &which.name, source)
    {
        Ok(done) => Ok(Ok(done)),
        Err(Unstorable::Problem(p)) => Ok(Err(p)),
        Err(Unstorable::Name(why)) => Err(PageError::bad(why)),
    }
}

async fn edit_post(
    State(st): State<AppState>,
    a: Signed,
    Path(name): Path<String>,
    body: Bytes,
) -> PageResult {
    let d = a.domain(&st, &name).await?;
    let f: EditForm = a.form(&body)?;
    let which = f.chosen()?;
    let back = which.path(&d);
    let (source, mac) = (f.source(), filled(&f.mac));
    if f.action == "delete" {
        st.store
            .delete_template(a.actor(), d.id, which.key())
            .await
            .map_err(|e| PageError::from(e).back(&back))?;
        return Ok(see(&templates_path(&d)));
    }
    let outcome = match attempt(&st, &d, &which, &source, mac)
        .await
        .map_err(|e| e.back(&back))?
    {
        Err(problem) => Outcome {
            problem: Some(problem),
            ..Default::default()
        },
        Ok((stored_name, _)) if f.action == "save" => {
            let which = Chosen {
                name: stored_name,
                ..which
            };
            st.store
                .put_template(
                    a.actor(),
                    d.id,
                    which.key(),
                    TemplateOrigin::Template,
                    &source,
                )
                .await
                .map_err(|e| PageError::from(e).back(&back))?;
            let mut to = which.path(&d);
            to.push_str("&saved=1");
            if let Some(m) = mac {
                to.push_str(&format!("&mac={}", crate::url_component(m)));
            }
            return Ok(see(&to));
        }
        Ok((_, rendered)) => Outcome {
            preview: Some(rendered),
            ..Default::default()
        },
    };
    let outcome = Outcome {
        held: current(&st, &d, &which).await?,
        ..outcome
    };
    editor(&st, &a, &d, &which, Some(source), mac, outcome).await
}

/// The live preview: the editor's form, answered with JSON (`problem` with line, column
/// and message, or `body` and `warnings`).
async fn preview(
    State(st): State<AppState>,
    a: Signed,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let d = a.domain(&st, &name).await?;
    let f: EditForm = a.form(&body)?;
    let which = f.chosen()?;
    let answer = match attempt(&st, &d, &which, &f.source(), filled(&f.mac)).await {
        Ok(Ok((_, r))) => serde_json::json!({ "body": r.body, "warnings": r.warnings }),
        Ok(Err(p)) => serde_json::json!({ "problem": p }),
        Err(e) => {
            serde_json::json!({ "problem": { "line": 0, "column": 0, "message": e.message() } })
        }
    };
    Ok(super::no_store(axum::Json(answer).into_response()))
}
