//! Templates stored by admins: a domain's or category's replacement of a built-in template,
//! or an extra device file (a name with `{mac}` in it, e.g. from a 3CX import).
//!
//! Domain admins write these, so they are checked when they are uploaded and run under
//! limits when a phone fetches them:
//!
//! - at most [`MAX_SOURCE`] bytes of source;
//! - no operator that can build a value of any size from small ones (`~`, `*`, `**`, `+`
//!   except with a whole number on the right), no macros, captures, includes or blocks:
//!   together with the capped filters below, no value can grow beyond a fixed multiple of
//!   the largest input;
//! - only the filters, tests and functions listed here, the growing ones (`join`, `string`,
//!   `replace`) refusing results over [`MAX_VALUE`] bytes, `range` at most [`MAX_RANGE`]
//!   items;
//! - a fuel budget (instructions) and a recursion limit;
//! - at most [`MAX_OUTPUT`] bytes of output.
//!
//! Upload also catches what would otherwise fail only when a phone asks: every name a
//! template reads must be part of the context, and the template is rendered for a sample
//! device with lines and for one without (the hand-off), so `lines[0]` or a setting used
//! without `default` is reported with its line and column.

use std::collections::BTreeSet;
use std::io;

use minijinja::machinery::{Instruction, get_compiled_template};
use minijinja::value::{Rest, Value, ValueKind};
use minijinja::{Environment, Error as TemplateError, ErrorKind, filters, tests};
use serde::Serialize;

use crate::context::Context;

pub const MAX_SOURCE: usize = 64 * 1024;
pub const MAX_VALUE: usize = 64 * 1024;
pub const MAX_OUTPUT: usize = 512 * 1024;
pub const MAX_RANGE: usize = 1024;
const FUEL: u64 = 100_000;
const RECURSION: usize = 16;

/// What is wrong with a template, and where (1-based line and column).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct TemplateProblem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The filters a stored template may use.
const FILTERS: &[&str] = &[
    "abs",
    "batch",
    "bool",
    "capitalize",
    "count",
    "d",
    "default",
    "dictsort",
    "e",
    "escape",
    "first",
    "float",
    "int",
    "items",
    "join",
    "last",
    "length",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "select",
    "selectattr",
    "slice",
    "sort",
    "string",
    "title",
    "trim",
    "unique",
    "upper",
    "url_scheme",
    "without_scheme",
    "xml",
    "zpad",
];

const FUNCTIONS: &[&str] = &["dict", "range"];

const TESTS: &[&str] = &[
    "defined",
    "undefined",
    "none",
    "number",
    "integer",
    "float",
    "string",
    "sequence",
    "mapping",
    "true",
    "false",
    "even",
    "odd",
    "divisibleby",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "in",
    "startingwith",
    "endingwith",
];

/// The names a template can read, with their fields (`settings` takes any key).
const CONTEXT: &[(&str, &[&str])] = &[
    (
        "device",
        &[
            "mac",
            "mac_upper",
            "vendor",
            "model",
            "firmware",
            "max_lines",
            "keys",
            "admin_password",
        ],
    ),
    ("lines", &[]),
    ("settings", &["*"]),
    (
        "provisioning",
        &["url", "recheck_minutes", "recheck_seconds", "firmware_url"],
    ),
    (
        "time",
        &[
            "zone",
            "known",
            "utc_offset_minutes",
            "utc_offset_seconds",
            "utc_offset_quarters",
            "utc_offset_hours",
            "gmt",
            "posix",
            "yealink_name",
            "snom",
        ],
    ),
];

fn too_large(what: &str) -> TemplateError {
    TemplateError::new(
        ErrorKind::InvalidOperation,
        format!("{what} would be larger than {MAX_VALUE} bytes, the limit for stored templates"),
    )
}

fn capped(value: String, what: &str) -> Result<String, TemplateError> {
    if value.len() > MAX_VALUE {
        Err(too_large(what))
    } else {
        Ok(value)
    }
}

/// Left-pads a number or text with zeros to `width` (at most 32) characters.
pub(crate) fn zpad(value: Value, width: usize) -> Result<String, TemplateError> {
    let text = value.to_string();
    if width > 32 {
        return Err(TemplateError::new(
            ErrorKind::InvalidOperation,
            "zpad takes a width of at most 32",
        ));
    }
    Ok(format!("{text:0>width$}"))
}

/// The environment stored templates are compiled and rendered in; `base` configures what
/// it shares with the built-in one (escaping, formatter, whitespace, strictness, URL filters).
pub(crate) fn environment(base: impl FnOnce(&mut Environment<'static>)) -> Environment<'static> {
    let mut env = Environment::empty();
    base(&mut env);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION);
    env.add_filter("abs", filters::abs);
    env.add_filter("batch", filters::batch);
    env.add_filter("bool", filters::bool);
    env.add_filter("capitalize", filters::capitalize);
    env.add_filter("count", filters::length);
    env.add_filter("d", filters::default);
    env.add_filter("default", filters::default);
    env.add_filter("dictsort", filters::dictsort);
    env.add_filter("e", filters::escape);
    env.add_filter("escape", filters::escape);
    env.add_filter("first", filters::first);
    env.add_filter("float", filters::float);
    env.add_filter("int", filters::int);
    env.add_filter("items", filters::items);
    env.add_filter("last", filters::last);
    env.add_filter("length", filters::length);
    env.add_filter("list", filters::list);
    env.add_filter("lower", filters::lower);
    env.add_filter("map", filters::map);
    env.add_filter("max", filters::max);
    env.add_filter("min", filters::min);
    env.add_filter("reject", filters::reject);
    env.add_filter("rejectattr", filters::rejectattr);
    env.add_filter("reverse", filters::reverse);
    env.add_filter("round", filters::round);
    env.add_filter("select", filters::select);
    env.add_filter("selectattr", filters::selectattr);
    env.add_filter("slice", filters::slice);
    env.add_filter("sort", filters::sort);
    env.add_filter("title", filters::title);
    env.add_filter("trim", filters::trim);
    env.add_filter("unique", filters::unique);
    env.add_filter("upper", filters::upper);
    env.add_filter("join", |value: Value, joiner: Option<String>| {
        let parts: Vec<String> = value.try_iter()?.map(|v| v.to_string()).collect();
        capped(parts.join(joiner.as_deref().unwrap_or("")), "join")
    });
    env.add_filter("string", |value: Value| capped(value.to_string(), "string"));
    env.add_filter(
        "replace",
        |value: String, from: String, to: String, count: Option<usize>| {
            let replaced = match count {
                Some(n) => value.replacen(&from, &to, n),
                None => value.replace(&from, &to),
            };
            capped(replaced, "replace")
        },
    );
    env.add_filter("zpad", zpad);
    env.add_function("range", |lower: i64, rest: Rest<i64>| {
        let (lo, hi, step) = match rest.as_slice() {
            [] => (0, lower, 1),
            [upper] => (lower, *upper, 1),
            [upper, step, ..] => (lower, *upper, *step),
        };
        if step == 0 {
            return Err(TemplateError::new(
                ErrorKind::InvalidOperation,
                "range takes a step other than 0",
            ));
        }
        let mut items = Vec::new();
        let mut n = lo;
        while (step > 0 && n < hi) || (step < 0 && n > hi) {
            if items.len() == MAX_RANGE {
                return Err(TemplateError::new(
                    ErrorKind::InvalidOperation,
                    format!("range gives at most {MAX_RANGE} items in stored templates"),
                ));
            }
            items.push(Value::from(n));
            n += step;
        }
        Ok(Value::from(items))
    });
    env.add_function("dict", |kwargs: minijinja::value::Kwargs| {
        let map: std::collections::BTreeMap<String, Value> = kwargs
            .args()
            .map(|k| Ok((k.to_owned(), kwargs.get::<Value>(k)?)))
            .collect::<Result<_, TemplateError>>()?;
        Ok(Value::from(map))
    });
    env.add_test("defined", tests::is_defined);
    env.add_test("undefined", tests::is_undefined);
    env.add_test("none", tests::is_none);
    env.add_test("number", tests::is_number);
    env.add_test("integer", tests::is_integer);
    env.add_test("float", tests::is_float);
    env.add_test("string", tests::is_string);
    env.add_test("sequence", tests::is_sequence);
    env.add_test("mapping", tests::is_mapping);
    env.add_test("true", tests::is_true);
    env.add_test("false", tests::is_false);
    env.add_test("even", tests::is_even);
    env.add_test("odd", tests::is_odd);
    env.add_test("divisibleby", tests::is_divisibleby);
    env.add_test("eq", tests::is_eq);
    env.add_test("ne", tests::is_ne);
    env.add_test("lt", tests::is_lt);
    env.add_test("le", tests::is_le);
    env.add_test("gt", tests::is_gt);
    env.add_test("ge", tests::is_ge);
    env.add_test("in", tests::is_in);
    env.add_test("startingwith", tests::is_startingwith);
    env.add_test("endingwith", tests::is_endingwith);
    env
}

/// 1-based line and column of byte `offset` in `source`.
fn position(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A template error as a problem at its position.
pub(crate) fn problem(name: &str, source: &str, e: &TemplateError) -> TemplateProblem {
    // An error in an included built-in template is told with that template's line.
    let elsewhere = e.name().filter(|n| *n != name);
    let (line, column) = match (elsewhere, e.range()) {
        (None, Some(r)) => position(source, r.start),
        _ => (e.line().unwrap_or(1), 1),
    };
    if e.kind() == ErrorKind::WriteFailure {
        return TemplateProblem {
            line,
            column,
            message: format!(
                "the output would be larger than {MAX_OUTPUT} bytes, the limit for stored templates"
            ),
        };
    }
    let mut message = e
        .detail()
        .map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind()));
    if let Some(snippet) = e
        .range()
        .filter(|_| elsewhere.is_none())
        .and_then(|r| source.get(r))
        .filter(|s| !s.is_empty() && s.len() <= 80 && !s.contains('\n'))
    {
        message.push_str(&format!(" in `{snippet}`"));
    }
    let mut cause = std::error::Error::source(e);
    while let Some(inner) = cause {
        message.push_str(&format!(": {inner}"));
        cause = inner.source();
    }
    if e.kind() == ErrorKind::UndefinedError {
        message.push_str(
            " (a value a device may not have, such as a setting, needs `| default(…)` or \
             `is defined`)",
        );
    }
    if let Some(other) = elsewhere {
        message = format!("in the included template {other}, line {line}: {message}");
    }
    TemplateProblem {
        line,
        column,
        message,
    }
}

/// Checks what the template does, instruction by instruction: only allowed operators,
/// filters, tests and functions, and only names of the context.
pub(crate) fn check(
    env: &Environment<'static>,
    name: &str,
    source: &str,
) -> Result<(), TemplateProblem> {
    if source.len() > MAX_SOURCE {
        return Err(TemplateProblem {
            line: 1,
            column: 1,
            message: format!(
                "the template is {} bytes; stored templates are at most {MAX_SOURCE}",
                source.len()
            ),
        });
    }
    let template = env
        .template_from_named_str(name, source)
        .map_err(|e| problem(name, source, &e))?;
    let compiled = get_compiled_template(&template);
    let instructions = &compiled.instructions;
    let at = |idx: usize, message: String| {
        let (line, column) = instructions
            .get_span(idx as u32)
            .map(|s| (s.start_line as usize, s.start_col as usize + 1))
            .or_else(|| instructions.get_line(idx as u32).map(|l| (l, 1)))
            .unwrap_or((1, 1));
        TemplateProblem {
            line,
            column,
            message,
        }
    };
    if !compiled.blocks.is_empty() {
        return Err(at(0, "blocks are not available in stored templates".into()));
    }
    let not_here = |what: &str| format!("{what} is not available in stored templates");
    let mut previous: Option<&Instruction<'_>> = None;
    for idx in 0..instructions.len() {
        let Some(instruction) = instructions.get(idx as u32) else {
            break;
        };
        let refusal = match instruction {
            Instruction::Mul | Instruction::Pow => Some(not_here(
                "`*` (multiplication and repetition; `provisioning.recheck_seconds` is the \
                 re-check interval in seconds)",
            )),
            Instruction::StringConcat => Some(not_here(
                "`~` (joining texts; write the parts one after the other, or use `zpad`)",
            )),
            Instruction::Add => {
                let whole_number = matches!(
                    previous,
                    Some(Instruction::LoadConst(v)) if v.kind() == ValueKind::Number && v.as_i64().is_some()
                );
                (!whole_number).then(|| {
                    "`+` takes a whole number on its right in stored templates, as in `n + 1`"
                        .to_owned()
                })
            }
            Instruction::ApplyFilter(f, ..) => (!FILTERS.contains(f)).then(|| {
                format!(
                    "{} ({})",
                    not_here(&format!("the filter `{f}`")),
                    FILTERS.join(", ")
                )
            }),
            Instruction::PerformTest(t, ..) => {
                (!TESTS.contains(t)).then(|| not_here(&format!("the test `{t}`")))
            }
            Instruction::CallFunction(f, _) => {
                (!FUNCTIONS.contains(f)).then(|| not_here(&format!("the function `{f}`")))
            }
            Instruction::CallMethod(m, _) => Some(not_here(&format!("the method `{m}`"))),
            Instruction::BuildMacro(..) | Instruction::CallObject(_) => Some(not_here("macros")),
            Instruction::BeginCapture(_) => Some(not_here(
                "capturing output (`{% set x %}…{% endset %}`, `{% filter %}`)",
            )),
            // A built-in template, named as it is: it passes these checks itself.
            Instruction::Include(_)
                if matches!(previous, Some(Instruction::LoadConst(v))
                    if v.as_str().is_some_and(|n| env.get_template(n).is_ok())) =>
            {
                None
            }
            Instruction::Include(_)
            | Instruction::LoadBlocks
            | Instruction::CallBlock(_)
            | Instruction::FastSuper
            | Instruction::ExportLocals => Some(not_here(
                "including (other than a built-in template by its name), importing or \
                 extending templates",
            )),
            _ => None,
        };
        if let Some(message) = refusal {
            return Err(at(idx, message));
        }
        previous = Some(instruction);
    }
    // Names the template reads that it does not set itself.
    let undeclared: BTreeSet<String> = template.undeclared_variables(true).into_iter().collect();
    for dotted in &undeclared {
        let (top, field) = match dotted.split_once('.') {
            Some((t, f)) => (t, Some(f.split('.').next().unwrap_or(f))),
            None => (dotted.as_str(), None),
        };
        if FUNCTIONS.contains(&top) {
            continue;
        }
        let known = CONTEXT.iter().find(|(n, _)| *n == top);
        let fine = match (known, field) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some((_, fields)), Some(f)) => fields.contains(&"*") || fields.contains(&f),
        };
        if fine {
            continue;
        }
        let idx = (0..instructions.len())
            .find(|&i| {
                matches!(instructions.get(i as u32), Some(Instruction::Lookup(n)) if *n == top)
                    && field.is_none_or(|f| {
                        matches!(instructions.get(i as u32 + 1), Some(Instruction::GetAttr(a)) if *a == f)
                    })
            })
            .map(|i| if field.is_some() { i + 1 } else { i })
            .unwrap_or(0);
        let names: Vec<&str> = CONTEXT.iter().map(|(n, _)| *n).collect();
        let message = match (known, field) {
            (Some((_, fields)), Some(f)) => {
                format!(
                    "unknown variable `{top}.{f}`; `{top}` has {}",
                    fields.join(", ")
                )
            }
            _ => format!(
                "unknown variable `{top}`; templates see {}",
                names.join(", ")
            ),
        };
        return Err(at(idx, message));
    }
    Ok(())
}

/// An `io::Write` that refuses more than `MAX_OUTPUT` bytes.
pub(crate) struct Bounded(pub Vec<u8>);

impl io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.len() + buf.len() > MAX_OUTPUT {
            return Err(io::Error::other(format!(
                "the output would be larger than {MAX_OUTPUT} bytes, the limit for stored templates"
            )));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The contexts an upload is tried with: a device with lines, and the hand-off (none).
pub(crate) fn trial_contexts(vendor: &str) -> [Context; 2] {
    let with_lines = Context::sample(vendor, "", 3);
    let mut bare = Context::sample(vendor, "", 0);
    bare.device.admin_password.clear();
    [with_lines, bare]
}
