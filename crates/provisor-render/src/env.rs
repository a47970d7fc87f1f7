//! The template environment: one per catalog, templates compiled at load, so a syntax error
//! is found when templates are loaded, never when a phone fetches its file.

use minijinja::value::Value;
use minijinja::{
    AutoEscape, Environment, Error as TemplateError, ErrorKind, Output, State, UndefinedBehavior,
};
use provisor_domain::catalog::{Catalog, FileKind, LineEndings, ValueFormat};
use provisor_domain::template::template_name;

use crate::context::Context;
use crate::load::Vendors;
use crate::stored::{self, TemplateProblem};
use crate::threecx::{self, ImportError, Imported};

/// Upper bound on the work one rendering may do (minijinja "fuel"): a template with a
/// runaway loop fails instead of tying up the server.
const FUEL: u64 = 200_000;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template that cannot be compiled or rendered, with the line at fault.
    #[error("template {name}{}: {reason}", .line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Template {
        name: String,
        line: Option<usize>,
        reason: String,
    },
    #[error("there is no template {0}")]
    Missing(String),
}

/// A rendered file and what the admin should know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub body: String,
    /// E.g. lines left out because the model takes fewer.
    pub warnings: Vec<String>,
}

pub struct Renderer {
    env: Environment<'static>,
    /// For templates stored by admins: limited (see `stored`).
    stored: std::sync::Arc<Environment<'static>>,
    /// Stored renders waited for now, their threads alive (each rendering has a thread of
    /// its own), and the templates that ran out of time (by digest of vendor, name and
    /// source): refused from then on.
    waited: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    threads: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    deadline: std::time::Duration,
    too_slow: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The `vendor/` prefixes of vendors whose values are quoted (see `escaping`).
    quoted: Vec<String>,
    catalog: Catalog,
}

/// How template `name`'s values are escaped: `quoted` for a vendor whose values are quoted
/// (`quoted` holds their `vendor/` prefixes), `xml` for markup, else `line`.
fn escaping(quoted: &[String], name: &str) -> &'static str {
    if quoted
        .iter()
        .any(|prefix| name.starts_with(prefix.as_str()))
    {
        "quoted"
    } else if is_markup(name) {
        "xml"
    } else {
        "line"
    }
}

fn is_markup(name: &str) -> bool {
    name.ends_with(".xml") || name.ends_with(".htm") || name.ends_with(".html")
}

fn template_error(name: &str, e: &TemplateError) -> RenderError {
    let reason = e
        .detail()
        .map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind()));
    RenderError::Template {
        name: name.to_owned(),
        line: e.line(),
        reason,
    }
}

/// `text` with `& < > " '` escaped for XML.
pub fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    xml_escape(text, &mut out);
    out
}

fn xml_escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

/// The `xml` filter's text: escaped for XML, line breaks as character references.
pub(crate) fn xml_value(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    xml_escape(text, &mut escaped);
    escaped.replace('\r', "&#13;").replace('\n', "&#10;")
}

/// Writes a value as its output format needs (see the crate documentation).
fn format_value(
    out: &mut Output<'_>,
    state: &State<'_, '_>,
    value: &Value,
) -> Result<(), TemplateError> {
    let failed = |_| TemplateError::new(ErrorKind::WriteFailure, "could not write the output");
    if value.is_none() {
        return Ok(());
    }
    // Lists and maps are written under the cap of stored templates (their own values are
    // capped where they are made).
    let text = crate::stored::text(value)?.into_owned();
    if value.is_safe() {
        return out.write_str(&text).map_err(failed);
    }
    let mut escaped = String::with_capacity(text.len());
    match state.auto_escape() {
        AutoEscape::Custom("xml") => xml_escape(&text, &mut escaped),
        AutoEscape::Custom("quoted") if text.contains('"') => {
            return Err(TemplateError::new(
                ErrorKind::InvalidOperation,
                "a value contains a double quote (\"), which this vendor's files cannot carry",
            ));
        }
        _ => escaped.extend(
            text.chars()
                .map(|c| if c == '\r' || c == '\n' { ' ' } else { c }),
        ),
    }
    out.write_str(&escaped).map_err(failed)
}

/// What both environments share: strict names, whitespace, escaping by output format, the
/// URL filters.
fn configure(env: &mut Environment<'static>, quoted: Vec<String>) {
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_auto_escape_callback(move |name| AutoEscape::Custom(escaping(&quoted, name)));
    env.set_formatter(format_value);
    // Escaped for XML whatever the file's name says (imported templates whose text is XML).
    // Line breaks as character references, so the value stays on its line in any file.
    // (Stored templates have their own, capped.)
    env.add_filter("xml", |value: Value| {
        let text = crate::stored::text(&value)?;
        Ok::<_, TemplateError>(Value::from_safe_string(xml_value(&text)))
    });
    // `https://h/p/` → `https` and `h/p/`, for vendors that take them apart.
    env.add_filter("url_scheme", |url: String| {
        url.split_once("://")
            .map_or(String::new(), |(s, _)| s.to_owned())
    });
    env.add_filter("without_scheme", |url: String| {
        url.split_once("://")
            .map_or(url.clone(), |(_, rest)| rest.to_owned())
    });
}

impl Renderer {
    /// Compiles every template; the first that does not compile is the error.
    pub fn new(vendors: Vendors) -> Result<Self, RenderError> {
        // Vendors whose values are quoted, whatever their templates are called.
        let quoted: Vec<String> = vendors
            .catalog
            .vendors()
            .iter()
            .filter(|v| v.output.values == ValueFormat::Quoted)
            .map(|v| format!("{}/", v.id))
            .collect();
        let mut env = Environment::new();
        configure(&mut env, quoted.clone());
        env.set_fuel(Some(FUEL));
        env.add_filter("zpad", stored::zpad);
        // The stored templates' environment holds the built-in ones, for them to include.
        let mut stored = stored::environment(|e| configure(e, quoted.clone()));
        for (name, source) in vendors.templates {
            env.add_template_owned(name.clone(), source.clone())
                .map_err(|e| template_error(&name, &e))?;
            stored
                .add_template_owned(name.clone(), source)
                .map_err(|e| template_error(&name, &e))?;
        }
        // A model's own template must be there.
        for v in vendors.catalog.vendors() {
            for own in v.models.values().flat_map(|m| m.templates.values()) {
                let name = format!("{}/{own}", v.id);
                if env.get_template(&name).is_err() {
                    return Err(RenderError::Missing(name));
                }
            }
        }
        Ok(Self {
            env,
            stored: std::sync::Arc::new(stored),
            waited: Default::default(),
            threads: Default::default(),
            deadline: stored::DEADLINE,
            too_slow: Default::default(),
            quoted,
            catalog: vendors.catalog,
        })
    }

    /// The same renderer with another deadline for stored templates (tests).
    pub fn with_stored_deadline(mut self, deadline: std::time::Duration) -> Self {
        self.deadline = deadline;
        self
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The source of a built-in (or catalog directory) template, to start a replacement from.
    pub fn source(&self, vendor: &str, template: &str) -> Option<String> {
        self.env
            .get_template(&format!("{vendor}/{template}"))
            .ok()
            .map(|t| t.source().to_owned())
    }

    pub fn has_template(&self, vendor: &str, template: &str) -> bool {
        self.env
            .get_template(&format!("{vendor}/{template}"))
            .is_ok()
    }

    /// Renders `template` of `vendor` for `context`. Lines beyond what the model takes are
    /// left out with a warning.
    pub fn render(
        &self,
        vendor: &str,
        template: &str,
        mut context: Context,
    ) -> Result<Rendered, RenderError> {
        let template = self.catalog.vendor(vendor).map_or(template, |v| {
            v.template_for(template, &context.device.model)
        });
        let name = format!("{vendor}/{template}");
        let compiled = self
            .env
            .get_template(&name)
            .map_err(|_| RenderError::Missing(name.clone()))?;
        let warnings = fit_lines(&mut context);
        let body = compiled
            .render(&context)
            .map_err(|e| template_error(&name, &e))?;
        Ok(self.finish(vendor, body, warnings))
    }

    /// Checks a template an admin wants to store as `template` of `vendor` (see `stored`):
    /// compiled, limited to what stored templates may do, and tried for a device with lines
    /// and for one without.
    pub fn check_stored(
        &self,
        vendor: &str,
        template: &str,
        source: &str,
    ) -> Result<(), TemplateProblem> {
        let name = stored::compiled_name(vendor, template);
        // Compiled on a thread with the render threads' room (the caller's may have little).
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("stored-check".into())
                .stack_size(16 * 1024 * 1024)
                .spawn_scoped(scope, || {
                    // An include is written like the file itself: minijinja renders it with
                    // the included template's escaping.
                    let alike = |other: &str| {
                        escaping(&self.quoted, other) == escaping(&self.quoted, &name)
                    };
                    stored::check(&self.stored, &name, source, &alike)
                })
                .map_err(|e| TemplateProblem {
                    line: 1,
                    column: 1,
                    message: format!("the template cannot be checked now: {e}"),
                })?
                .join()
                .unwrap_or_else(|_| {
                    Err(TemplateProblem {
                        line: 1,
                        column: 1,
                        message: "the template cannot be compiled".into(),
                    })
                })
        })?;
        // (A trial that runs out of time is not remembered: the sample device is every
        // upload's, and the time may be the machine's load.)
        for context in stored::trial_contexts(vendor) {
            self.render_limited(vendor, template, source, context, false)?;
        }
        Ok(())
    }

    /// Checks that `source` may be stored as `vendor`'s template `name`: a device template of
    /// the vendor's catalog it replaces, or a device file of its own with `{mac}` in its
    /// name; and that the source passes `check_stored`. Returns the name.
    pub fn storable(&self, vendor: &str, name: &str, source: &str) -> Result<String, Unstorable> {
        let v = self.catalog.vendor(vendor).ok_or_else(|| {
            Unstorable::Name(format!("there is no vendor '{vendor}' in the catalog"))
        })?;
        let name = template_name(name).map_err(|e| Unstorable::Name(e.to_string()))?;
        if !name.contains("{mac}") {
            let device_templates: Vec<&str> = v
                .files
                .iter()
                .filter(|f| f.kind == FileKind::Device)
                .map(|f| f.template.as_str())
                .collect();
            if !device_templates.contains(&name.as_str()) {
                return Err(Unstorable::Name(format!(
                    "{vendor} has no device template '{name}' to replace (it has {}); common files are the same for every phone and come from the catalog; a new device file needs {{mac}} in its name",
                    device_templates.join(", ")
                )));
            }
        }
        self.check_stored(vendor, &name, source)
            .map_err(Unstorable::Problem)?;
        Ok(name)
    }

    /// Converts a 3CX phone template into templates of `vendor` and checks each as
    /// `storable`: all of them, or an error.
    pub fn import_3cx(&self, vendor: &str, xml: &str) -> Result<Vec<Imported>, Unstorable> {
        let files = threecx::import(xml).map_err(|e| {
            let line = match &e {
                ImportError::UnknownVariable { line, .. } | ImportError::FileName { line, .. } => {
                    *line
                }
                _ => 1,
            };
            Unstorable::Problem(TemplateProblem {
                line,
                column: 1,
                message: e.to_string(),
            })
        })?;
        for f in &files {
            self.storable(vendor, &f.name, &f.source)
                .map_err(|e| match e {
                    Unstorable::Problem(p) => Unstorable::Problem(TemplateProblem {
                        message: format!("{} as converted from 3CX: {}", f.name, p.message),
                        ..p
                    }),
                    other => other,
                })?;
        }
        Ok(files)
    }

    /// Renders a stored template (checked by `check_stored` when it was stored) under the
    /// limits of stored templates, on a thread of its own, given up after the deadline
    /// (see `stored`): one that takes longer is refused from then on (until it is stored
    /// again, changed).
    pub fn render_stored(
        &self,
        vendor: &str,
        template: &str,
        source: &str,
        context: Context,
    ) -> Result<Rendered, TemplateProblem> {
        self.render_limited(vendor, template, source, context, true)
    }

    /// `render_stored` for a preview: a rendering that runs out of time is not remembered
    /// (the preview is not the phone's fetch).
    pub fn preview_stored(
        &self,
        vendor: &str,
        template: &str,
        source: &str,
        context: Context,
    ) -> Result<Rendered, TemplateProblem> {
        self.render_limited(vendor, template, source, context, false)
    }

    /// `render_stored`; a rendering that runs out of time is remembered (for its device:
    /// another device's rendering of the same source, in another domain perhaps, is not
    /// refused for it) when `remember`.
    fn render_limited(
        &self,
        vendor: &str,
        template: &str,
        source: &str,
        mut context: Context,
        remember: bool,
    ) -> Result<Rendered, TemplateProblem> {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::mpsc::RecvTimeoutError;
        let refuse = |message: String| TemplateProblem {
            line: 1,
            column: 1,
            message,
        };
        // Values a stored template may compare or walk in one instruction, bounded.
        stored::fits(&context).map_err(refuse)?;
        let key = provisor_domain::token::digest(&format!(
            "{}\0{vendor}\0{template}\0{source}",
            context.device.mac
        ));
        if remember && self.too_slow.lock().is_ok_and(|s| s.contains(&key)) {
            return Err(refuse(format!(
                "the template took longer than {} ms before; store it again, changed",
                self.deadline.as_millis()
            )));
        }
        // A place among the renderings waited for, and a thread, waited for up to the
        // deadline. The place is this call's; the thread's count goes down when it ends.
        let started = std::time::Instant::now();
        let (place, thread) = loop {
            let place = Place::take(&self.waited, stored::RUNNING);
            let thread = place
                .as_ref()
                .and_then(|_| Place::take(&self.threads, stored::THREADS));
            if let (Some(place), Some(thread)) = (place, thread) {
                break (place, thread);
            }
            if started.elapsed() >= self.deadline {
                return Err(refuse(
                    "too many stored templates are being rendered; try again".into(),
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        };
        let warnings = fit_lines(&mut context);
        let env = self.stored.clone();
        let name = stored::compiled_name(vendor, template);
        let source = source.to_owned();
        let given_up = Arc::new(AtomicBool::new(false));
        let flag = given_up.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("stored-template".into())
            // Room for what the checks allow (values at most 16 deep) and then some.
            .stack_size(16 * 1024 * 1024)
            .spawn(move || {
                // Given back however the rendering ends (a panic too).
                let _thread = thread;
                stored::stop_when(flag);
                let result = (|| {
                    let compiled = env
                        .template_from_named_str(&name, &source)
                        .map_err(|e| stored::problem(&name, &source, &e))?;
                    let mut out = stored::Bounded(Vec::new());
                    compiled
                        .render_captured_to(&context, &mut out)
                        .map_err(|e| stored::problem(&name, &source, &e))?;
                    Ok(String::from_utf8_lossy(&out.0).into_owned())
                })();
                let _ = tx.send(result);
            })
            .map_err(|_| refuse("no thread for the template".into()))?;
        let outcome = rx.recv_timeout(self.deadline);
        drop(place);
        match outcome {
            Ok(result) => Ok(self.finish(vendor, result?, warnings)),
            // The thread ended without an answer: it panicked (a fault of the engine,
            // not of the template's time).
            Err(RecvTimeoutError::Disconnected) => {
                Err(refuse("the template failed while it was rendered".into()))
            }
            Err(RecvTimeoutError::Timeout) => {
                given_up.store(true, Ordering::Relaxed);
                match self.too_slow.lock() {
                    Ok(mut slow) if remember => {
                        // Bounded: forgetting them all costs each one more try.
                        if slow.len() >= 10_000 {
                            slow.clear();
                        }
                        slow.insert(key);
                    }
                    _ => {}
                }
                Err(refuse(format!(
                    "the template takes longer than {} ms, the limit for stored templates",
                    self.deadline.as_millis()
                )))
            }
        }
    }

    /// Render threads of stored templates alive now (given-up ones still stopping too).
    pub fn stored_threads(&self) -> usize {
        self.threads.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The vendor's line endings.
    fn finish(&self, vendor: &str, mut body: String, warnings: Vec<String>) -> Rendered {
        if self
            .catalog
            .vendor(vendor)
            .is_some_and(|v| v.output.line_endings == LineEndings::Crlf)
        {
            body = body.replace("\r\n", "\n").replace('\n', "\r\n");
        }
        Rendered { body, warnings }
    }
}

/// One of a bounded number of places (a counter below its limit), given back when dropped.
struct Place(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Place {
    fn take(count: &std::sync::Arc<std::sync::atomic::AtomicUsize>, limit: usize) -> Option<Self> {
        use std::sync::atomic::Ordering;
        if count.fetch_add(1, Ordering::SeqCst) < limit {
            return Some(Self(count.clone()));
        }
        count.fetch_sub(1, Ordering::SeqCst);
        None
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Why a template cannot be stored.
#[derive(Debug, thiserror::Error)]
pub enum Unstorable {
    /// The vendor or the name is not one a template can have.
    #[error("{0}")]
    Name(String),
    #[error("{0}")]
    Problem(TemplateProblem),
}

/// Leaves out the lines beyond what the model takes, with a warning naming them.
fn fit_lines(context: &mut Context) -> Vec<String> {
    let max = context.device.max_lines as usize;
    if max == 0 || context.lines.len() <= max {
        return Vec::new();
    }
    let dropped: Vec<String> = context.lines.drain(max..).map(|l| l.sip_user).collect();
    vec![format!(
        "model {} takes {max} lines; left out: {}",
        if context.device.model.is_empty() {
            "(unknown)"
        } else {
            &context.device.model
        },
        dropped.join(", ")
    )]
}
