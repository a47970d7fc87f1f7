//! The template environment: one per catalog, templates compiled at load, so a syntax error
//! is found when templates are loaded, never when a phone fetches its file.

use minijinja::value::Value;
use minijinja::{
    AutoEscape, Environment, Error as TemplateError, ErrorKind, Output, State, UndefinedBehavior,
};
use provisor_domain::catalog::{Catalog, LineEndings, ValueFormat};

use crate::context::Context;
use crate::load::Vendors;

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
    catalog: Catalog,
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
    let text = value.to_string();
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

impl Renderer {
    /// Compiles every template; the first that does not compile is the error.
    pub fn new(vendors: Vendors) -> Result<Self, RenderError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // Vendors whose values are quoted, whatever their templates are called.
        let quoted: Vec<String> = vendors
            .catalog
            .vendors()
            .iter()
            .filter(|v| v.output.values == ValueFormat::Quoted)
            .map(|v| format!("{}/", v.id))
            .collect();
        env.set_auto_escape_callback(move |name| {
            if quoted
                .iter()
                .any(|prefix| name.starts_with(prefix.as_str()))
            {
                AutoEscape::Custom("quoted")
            } else if is_markup(name) {
                AutoEscape::Custom("xml")
            } else {
                AutoEscape::Custom("line")
            }
        });
        env.set_formatter(format_value);
        // `https://h/p/` → `https` and `h/p/`, for vendors that take them apart.
        env.add_filter("url_scheme", |url: String| {
            url.split_once("://")
                .map_or(String::new(), |(s, _)| s.to_owned())
        });
        env.add_filter("without_scheme", |url: String| {
            url.split_once("://")
                .map_or(url.clone(), |(_, rest)| rest.to_owned())
        });
        for (name, source) in vendors.templates {
            env.add_template_owned(name.clone(), source)
                .map_err(|e| template_error(&name, &e))?;
        }
        Ok(Self {
            env,
            catalog: vendors.catalog,
        })
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
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
        let name = format!("{vendor}/{template}");
        let compiled = self
            .env
            .get_template(&name)
            .map_err(|_| RenderError::Missing(name.clone()))?;
        let mut warnings = Vec::new();
        let max = context.device.max_lines as usize;
        if max > 0 && context.lines.len() > max {
            let dropped: Vec<String> = context.lines.drain(max..).map(|l| l.sip_user).collect();
            warnings.push(format!(
                "model {} takes {max} lines; left out: {}",
                if context.device.model.is_empty() {
                    "(unknown)"
                } else {
                    &context.device.model
                },
                dropped.join(", ")
            ));
        }
        let mut body = compiled
            .render(&context)
            .map_err(|e| template_error(&name, &e))?;
        if self
            .catalog
            .vendor(vendor)
            .is_some_and(|v| v.output.line_endings == LineEndings::Crlf)
        {
            body = body.replace("\r\n", "\n").replace('\n', "\r\n");
        }
        Ok(Rendered { body, warnings })
    }
}
