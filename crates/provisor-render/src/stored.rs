//! Templates stored by admins: a domain's or category's replacement of a built-in template,
//! or an extra device file (a name with `{mac}` in it, e.g. from a 3CX import).
//!
//! Domain admins write these, so they are checked when they are uploaded and run under
//! limits when a phone fetches them:
//!
//! - at most [`MAX_SOURCE`] bytes of source;
//! - before anything is compiled (minijinja folds constant expressions while compiling),
//!   the tokens are checked: no `~`, `*`, `**`, and `+` only with a whole number after it;
//! - tuples, and lists or maps built from values (constant ones are fine), are refused by
//!   the same token check; in the compiled template no macros, captures, `autoescape`
//!   blocks, includes (but of a built-in template by name) or blocks. So every list or map a template handles is the context's, a
//!   constant, a `range`, or filtered from these: nothing nests or repeats beyond what the
//!   source and the context hold;
//! - only the filters, tests and functions listed here; every conversion of a value to
//!   text (printing, `string`, `join`, `replace`, the string filters) is refused beyond
//!   [`MAX_VALUE`] bytes before it is built, `range` gives at most [`MAX_RANGE`] items;
//! - the filters that go through a list (or a text's characters) — `list`, `sort`,
//!   `unique`, `select`, `reject`, `selectattr`, `rejectattr`, `max`, `min` — take at most
//!   [`MAX_RANGE`] items, so one filter call does bounded work; `xml` and `escape` are
//!   capped on what they make as well as on what they take; values are written at most 16
//!   levels deep; a template assigns at most 128 variables, so what a rendering keeps is
//!   bounded too;
//! - a fuel budget (instructions) and a recursion limit;
//!
//! - each rendering runs on a thread of its own and is given up after [`DEADLINE`]: its
//!   caller gets an error at once, and the thread stops at its next value, write or `in`
//!   test; a template that took that long for a device is refused for that device from
//!   then on (until it is stored again; not for an upload's trial, nor for a panic). At
//!   most [`RUNNING`] renderings are waited for at once, and at most [`THREADS`] render
//!   threads live at once (given-up ones included), so slow templates hold a bounded share
//!   of the CPU and cannot keep other domains' templates from being rendered.
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
pub const MAX_VALUE: usize = 16 * 1024;
pub const MAX_OUTPUT: usize = 512 * 1024;
pub const MAX_RANGE: usize = 1024;
const FUEL: u64 = 20_000;
/// How long one rendering of a stored template may take, and how many run at once.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_millis(2000);
pub const RUNNING: usize = 4;
/// Render threads alive at once, given-up ones still stopping included.
pub const THREADS: usize = 4 * RUNNING;
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
    "max",
    "min",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "select",
    "selectattr",
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

const FUNCTIONS: &[&str] = &["range"];

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

/// A value as text for a filter that makes it longer (escaping): refused beyond
/// `MAX_VALUE` bytes, so a chain of such filters cannot grow a value without end.
pub(crate) fn escapable_text<'a>(
    value: &'a Value,
    what: &str,
) -> Result<std::borrow::Cow<'a, str>, TemplateError> {
    let t = text(value)?;
    if t.len() > MAX_VALUE {
        return Err(too_large(what));
    }
    Ok(t)
}

std::thread_local! {
    /// Set on a render thread: raised when the rendering is given up at its deadline.
    static GIVEN_UP: std::cell::RefCell<Option<std::sync::Arc<std::sync::atomic::AtomicBool>>> =
        const { std::cell::RefCell::new(None) };
}

/// Makes this thread's rendering stop at its next value or write once `flag` is raised.
pub(crate) fn stop_when(flag: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    GIVEN_UP.with(|g| *g.borrow_mut() = Some(flag));
}

fn given_up() -> bool {
    GIVEN_UP.with(|g| {
        g.borrow()
            .as_ref()
            .is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed))
    })
}

/// Refuses to go on with a rendering that has been given up. Checked wherever a value
/// becomes text and wherever output is written, so a given-up rendering stops within one
/// filter call instead of running on to the end of its fuel.
fn go_on() -> Result<(), TemplateError> {
    if given_up() {
        return Err(TemplateError::new(
            ErrorKind::InvalidOperation,
            "the rendering was given up at its deadline",
        ));
    }
    Ok(())
}

/// A value as text, refused beyond `MAX_VALUE` bytes before it is built. (A string is
/// taken as it is: the context's values are bounded where they are stored, and everything
/// that makes text longer is capped where it does.)
pub(crate) fn text(value: &Value) -> Result<std::borrow::Cow<'_, str>, TemplateError> {
    go_on()?;
    if let Some(s) = value.as_str() {
        return Ok(std::borrow::Cow::Borrowed(s));
    }
    let mut out = String::new();
    write_text(value, &mut out, 0)?;
    Ok(std::borrow::Cow::Owned(out))
}

/// How deep lists and maps are written.
const MAX_DEPTH: usize = 16;
/// Most tokens one `{{ }}` or `{% %}` tag may hold. minijinja's compiler recurses once per
/// unary operator, filter, attribute or `+` of a chain and limits only brackets: without
/// this a long run of them overflows the compiling thread's stack.
const MAX_TAG_TOKENS: usize = 256;

/// Most bytes of a filter's `attribute` (`sort(attribute='number,label')`, `selectattr`):
/// each comparison walks it, so a long one makes one filter call take minutes.
const MAX_ATTRIBUTE: usize = 64;

fn short_attribute(attribute: Option<&str>, what: &str) -> Result<(), TemplateError> {
    if attribute.is_some_and(|a| a.len() > MAX_ATTRIBUTE) {
        return Err(TemplateError::new(
            ErrorKind::InvalidOperation,
            format!(
                "{what} takes an attribute of at most {MAX_ATTRIBUTE} bytes in stored templates"
            ),
        ));
    }
    Ok(())
}

/// `range`'s numbers, as a loop goes through them: they end early once the rendering is
/// given up, so a loop stops at its next round (the length stays known, for `loop.last`).
struct Guarded {
    items: std::sync::Arc<Vec<i64>>,
    next: usize,
}

impl Iterator for Guarded {
    type Item = i64;

    fn next(&mut self) -> Option<i64> {
        if given_up() {
            self.next = self.items.len();
        }
        let item = self.items.get(self.next).copied();
        self.next += 1;
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.items.len().saturating_sub(self.next);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Guarded {}

/// Most values (scalars, lists and maps, at every depth) the settings a stored template
/// sees may hold, and most items in one list or map.
pub const MAX_SETTINGS_VALUES: usize = 8 * MAX_RANGE;

/// Checks that the context's settings are small enough for a stored template: at most
/// `MAX_RANGE` items in a list or map, `MAX_SETTINGS_VALUES` values in all. minijinja
/// compares and walks values in one instruction, without a check of the deadline (`a == b`
/// over two lists of 20,000 items, in a loop, ran for twenty seconds after the rendering was
/// given up), so stored templates get bounded values only.
pub(crate) fn fits(context: &Context) -> Result<(), String> {
    let mut count = 0usize;
    let mut stack: Vec<(String, &serde_json::Value)> = context
        .settings
        .iter()
        .map(|(k, v)| (format!("settings.{k}"), v))
        .collect();
    if stack.len() > MAX_RANGE {
        return Err(format!(
            "the settings hold {} keys; stored templates take at most {MAX_RANGE}",
            stack.len()
        ));
    }
    while let Some((path, v)) = stack.pop() {
        count += 1;
        if count > MAX_SETTINGS_VALUES {
            return Err(format!(
                "the settings hold more than {MAX_SETTINGS_VALUES} values; stored templates take at most that many"
            ));
        }
        let items: Vec<(String, &serde_json::Value)> = match v {
            serde_json::Value::Array(a) => a.iter().map(|x| (format!("{path}[…]"), x)).collect(),
            serde_json::Value::Object(m) => {
                m.iter().map(|(k, x)| (format!("{path}.{k}"), x)).collect()
            }
            _ => continue,
        };
        if items.len() > MAX_RANGE {
            return Err(format!(
                "the setting {path} holds {} items; stored templates take at most {MAX_RANGE}",
                items.len()
            ));
        }
        stack.extend(items);
    }
    Ok(())
}

/// A text as it is, or a list or map of at most `MAX_RANGE` items (for filters that take
/// either).
fn capped_text_or_items(v: Value, what: &str) -> Result<Value, TemplateError> {
    go_on()?;
    if v.as_str().is_some() {
        return Ok(v);
    }
    capped_items(v, what)
}

/// A list of at most `MAX_RANGE` items.
fn capped_items(list: Value, what: &str) -> Result<Value, TemplateError> {
    go_on()?;
    if list.len().is_some_and(|n| n > MAX_RANGE) {
        return Err(TemplateError::new(
            ErrorKind::InvalidOperation,
            format!("{what} takes at most {MAX_RANGE} items in stored templates"),
        ));
    }
    Ok(list)
}

fn push_capped(out: &mut String, piece: &str, what: &str) -> Result<(), TemplateError> {
    if out.len() + piece.len() > MAX_VALUE {
        return Err(too_large(what));
    }
    out.push_str(piece);
    Ok(())
}

/// Lists and maps as minijinja writes them (`[1, "a"]`, `{"k": 1}`), within the cap.
fn write_text(value: &Value, out: &mut String, depth: usize) -> Result<(), TemplateError> {
    if depth > MAX_DEPTH {
        return Err(TemplateError::new(
            ErrorKind::InvalidOperation,
            format!("values nested deeper than {MAX_DEPTH} are not written in stored templates"),
        ));
    }
    match value.kind() {
        ValueKind::Seq | ValueKind::Iterable => {
            push_capped(out, "[", "a value")?;
            for (i, item) in value.try_iter()?.enumerate() {
                if i > 0 {
                    push_capped(out, ", ", "a value")?;
                }
                write_item(&item, out, depth)?;
            }
            push_capped(out, "]", "a value")
        }
        ValueKind::Map => {
            push_capped(out, "{", "a value")?;
            for (i, key) in value.try_iter()?.enumerate() {
                if i > 0 {
                    push_capped(out, ", ", "a value")?;
                }
                write_item(&key, out, depth)?;
                push_capped(out, ": ", "a value")?;
                write_item(&value.get_item(&key)?, out, depth)?;
            }
            push_capped(out, "}", "a value")
        }
        _ => push_capped(out, &value.to_string(), "a value"),
    }
}

/// An item inside a list or map: strings quoted, as minijinja does.
fn write_item(value: &Value, out: &mut String, depth: usize) -> Result<(), TemplateError> {
    match value.as_str() {
        Some(s) => {
            let quoted = format!("{s:?}");
            push_capped(out, &quoted, "a value")
        }
        None => write_text(value, out, depth + 1),
    }
}

fn keep_safety(original: &Value, text: String) -> Value {
    if original.is_safe() {
        Value::from_safe_string(text)
    } else {
        Value::from(text)
    }
}

/// Left-pads a number or text with zeros to `width` (at most 32) characters.
pub(crate) fn zpad(value: Value, width: usize) -> Result<String, TemplateError> {
    let text = text(&value)?.into_owned();
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
    env.add_filter("bool", filters::bool);
    env.add_filter("count", filters::length);
    env.add_filter("d", filters::default);
    env.add_filter("default", filters::default);
    env.add_filter("dictsort", |v: Value, kwargs: minijinja::value::Kwargs| {
        short_attribute(kwargs.peek::<Option<&str>>("by")?, "dictsort")?;
        filters::dictsort(&capped_items(v, "dictsort")?, kwargs)
    });
    env.add_filter("first", filters::first);
    env.add_filter("float", filters::float);
    env.add_filter("int", filters::int);
    env.add_filter("items", filters::items);
    env.add_filter("last", |v: Value| {
        filters::last(capped_text_or_items(v, "last")?)
    });
    env.add_filter("length", filters::length);
    env.add_filter("list", |state: &minijinja::State, v: Value| {
        let list = filters::list(state, v)?;
        capped_items(list, "list")
    });
    // Filters that go through a list (or a text's characters) take at most `MAX_RANGE`
    // items: one call does bounded work, and what it keeps is bounded.
    macro_rules! capped_picks {
        ($($name:literal => $f:path),+) => {$(
            env.add_filter(
                $name,
                |state: &minijinja::State, v: Value, test: Option<String>, args: Rest<Value>| {
                    $f(state, capped_items(v, $name)?, test.map(Into::into), args)
                },
            );
        )+};
        (attr $($name:literal => $f:path),+) => {$(
            env.add_filter(
                $name,
                |state: &minijinja::State,
                 v: Value,
                 attr: String,
                 test: Option<String>,
                 args: Rest<Value>| {
                    short_attribute(Some(&attr), $name)?;
                    $f(state, capped_items(v, $name)?, attr.into(), test.map(Into::into), args)
                },
            );
        )+};
    }
    capped_picks!("reject" => filters::reject, "select" => filters::select);
    capped_picks!(attr "rejectattr" => filters::rejectattr, "selectattr" => filters::selectattr);
    env.add_filter("reverse", |v: Value| {
        filters::reverse(&capped_text_or_items(v, "reverse")?)
    });
    // The URL filters of the built-in environment, on text converted under the cap.
    env.add_filter("url_scheme", |v: Value| {
        let url = text(&v)?;
        Ok::<_, TemplateError>(
            url.split_once("://")
                .map_or(String::new(), |(s, _)| s.to_owned()),
        )
    });
    env.add_filter("without_scheme", |v: Value| {
        let url = text(&v)?;
        Ok::<_, TemplateError>(
            url.split_once("://")
                .map_or(url.to_string(), |(_, rest)| rest.to_owned()),
        )
    });
    env.add_filter("round", filters::round);
    env.add_filter("max", |state: &minijinja::State, v: Value| {
        filters::max(state, capped_items(v, "max")?)
    });
    env.add_filter("min", |state: &minijinja::State, v: Value| {
        filters::min(state, capped_items(v, "min")?)
    });
    env.add_filter(
        "sort",
        |state: &minijinja::State, v: Value, kwargs: minijinja::value::Kwargs| {
            short_attribute(kwargs.peek::<Option<&str>>("attribute")?, "sort")?;
            filters::sort(state, capped_items(v, "sort")?, kwargs)
        },
    );
    env.add_filter(
        "unique",
        |state: &minijinja::State, v: Value, kwargs: minijinja::value::Kwargs| {
            short_attribute(kwargs.peek::<Option<&str>>("attribute")?, "unique")?;
            filters::unique(state, capped_items(v, "unique")?, kwargs)
        },
    );
    env.add_filter("join", |value: Value, joiner: Option<Value>| {
        let joiner = match &joiner {
            Some(j) => text(j)?.into_owned(),
            None => String::new(),
        };
        let mut out = String::new();
        for (i, item) in value.try_iter()?.enumerate() {
            if i > 0 {
                push_capped(&mut out, &joiner, "join")?;
            }
            push_capped(&mut out, &text(&item)?, "join")?;
        }
        Ok(out)
    });
    env.add_filter("string", |value: Value| {
        Ok::<_, TemplateError>(text(&value)?.into_owned())
    });
    env.add_filter(
        "replace",
        |value: Value, from: Value, to: Value, count: Option<usize>| {
            let (value, from, to) = (text(&value)?, text(&from)?, text(&to)?);
            if from.is_empty() {
                return Err(TemplateError::new(
                    ErrorKind::InvalidOperation,
                    "replace needs something to replace",
                ));
            }
            let found = value
                .matches(from.as_ref())
                .count()
                .min(count.unwrap_or(usize::MAX));
            let size = value.len() - found * from.len() + found * to.len();
            if size > MAX_VALUE {
                return Err(too_large("replace"));
            }
            Ok(value.replacen(from.as_ref(), &to, found))
        },
    );
    // The string filters, on text converted under the cap.
    env.add_filter("lower", |v: Value| {
        Ok::<_, TemplateError>(keep_safety(&v, text(&v)?.to_lowercase()))
    });
    env.add_filter("upper", |v: Value| {
        Ok::<_, TemplateError>(keep_safety(&v, text(&v)?.to_uppercase()))
    });
    env.add_filter("trim", |v: Value| {
        Ok::<_, TemplateError>(keep_safety(&v, text(&v)?.trim().to_owned()))
    });
    env.add_filter("title", |v: Value| {
        Ok::<_, TemplateError>(filters::title(text(&v)?))
    });
    env.add_filter("capitalize", |v: Value| {
        let t = text(&v)?;
        let mut chars = t.chars();
        let out: String = match chars.next() {
            Some(first) => first
                .to_uppercase()
                .chain(chars.flat_map(char::to_lowercase))
                .collect(),
            None => String::new(),
        };
        Ok::<_, TemplateError>(keep_safety(&v, out))
    });
    let escape = |state: &minijinja::State, v: Value| {
        if v.is_safe() {
            return Ok(v);
        }
        let escaped = filters::escape(
            state,
            &Value::from(escapable_text(&v, "the text to escape")?.into_owned()),
        )?;
        if escaped.len().is_some_and(|n| n > MAX_VALUE) {
            return Err(too_large("the escaped text"));
        }
        Ok(escaped)
    };
    env.add_filter("xml", |v: Value| {
        let escaped = crate::env::xml_value(&escapable_text(&v, "the text to escape")?);
        if escaped.chars().count() > MAX_VALUE {
            return Err(too_large("the escaped text"));
        }
        Ok(Value::from_safe_string(escaped))
    });
    env.add_filter("e", escape);
    env.add_filter("escape", escape);
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
            items.push(n);
            match n.checked_add(step) {
                Some(next) => n = next,
                None => break,
            }
        }
        let items = std::sync::Arc::new(items);
        Ok(Value::make_iterable(move || Guarded {
            items: items.clone(),
            next: 0,
        }))
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
    // (Run once per item by `select` and `reject`: a given-up rendering stops here too.)
    env.add_test(
        "in",
        |state: &minijinja::State, v: &Value, other: &Value| {
            go_on()?;
            // A list or map in a text would be written out (uncapped) to be searched.
            if other.as_str().is_some() && v.as_str().is_none() {
                return Err(TemplateError::new(
                    ErrorKind::InvalidOperation,
                    "`is in` a text takes a text on its left in stored templates",
                ));
            }
            tests::is_in(state, v, other)
        },
    );
    // Both sides as text under the cap (minijinja would write a list out uncapped, once per
    // item in a `select`).
    env.add_test("startingwith", |v: Value, other: Value| {
        Ok::<_, TemplateError>(text(&v)?.starts_with(text(&other)?.as_ref()))
    });
    env.add_test("endingwith", |v: Value, other: Value| {
        Ok::<_, TemplateError>(text(&v)?.ends_with(text(&other)?.as_ref()))
    });
    env
}

/// The name a stored template is compiled under: its vendor's (for its escaping) and its
/// file's extension, but not the name of the built-in template it replaces, so an error in
/// an include of that built-in is told as the built-in's, not placed in the stored source.
pub(crate) fn compiled_name(vendor: &str, template: &str) -> String {
    format!("{vendor}/(stored) {template}")
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

/// The token check, before compiling: no `~`, `*`, `**`; `+` only with a whole number after
/// it that nothing binds more tightly to (`n + 1`, not `s + 1 | string`).
fn tokens(source: &str) -> Result<(), TemplateProblem> {
    use minijinja::machinery::{Token, WhitespaceConfig, tokenize};
    let whitespace = WhitespaceConfig {
        keep_trailing_newline: true,
        lstrip_blocks: true,
        trim_blocks: true,
    };
    let all: Vec<(Token<'_>, minijinja::machinery::Span)> =
        match tokenize(source, false, Default::default(), whitespace).collect::<Result<_, _>>() {
            Ok(t) => t,
            // The compiler reports it with its place.
            Err(_) => return Ok(()),
        };
    let at = |span: &minijinja::machinery::Span, message: &str| TemplateProblem {
        line: span.start_line as usize,
        column: span.start_col as usize + 1,
        message: message.to_owned(),
    };
    let mut depth = 0usize;
    let mut in_tag = 0usize;
    for (i, (token, span)) in all.iter().enumerate() {
        match token {
            Token::VariableStart | Token::BlockStart => in_tag = 0,
            _ => in_tag += 1,
        }
        if in_tag > MAX_TAG_TOKENS {
            return Err(at(
                span,
                "a tag holds more than 256 parts; split it up (e.g. with {% set %})",
            ));
        }
        match token {
            Token::ParenOpen | Token::BracketOpen | Token::BraceOpen => depth += 1,
            Token::ParenClose | Token::BracketClose | Token::BraceClose => {
                depth = depth.saturating_sub(1)
            }
            _ => {}
        }
        if depth > MAX_DEPTH {
            return Err(at(
                span,
                "brackets nested deeper than 16 are not available in stored templates",
            ));
        }
        let refused = match token {
            Token::Mul | Token::Pow => Some(
                "`*` (multiplication and repetition) is not available in stored templates; \
                 `provisioning.recheck_seconds` is the re-check interval in seconds",
            ),
            Token::Tilde => Some(
                "`~` (joining texts) is not available in stored templates; write the parts one \
                 after the other, or use `zpad`",
            ),
            Token::Plus => {
                let whole = matches!(all.get(i + 1), Some((Token::Int(_), _)));
                let bound = matches!(
                    all.get(i + 2),
                    Some((
                        Token::Pipe | Token::Dot | Token::BracketOpen | Token::ParenOpen,
                        _
                    ))
                );
                (!whole || bound).then_some(
                    "`+` takes a whole number on its right in stored templates, as in `n + 1`",
                )
            }
            Token::ParenOpen if literal_position(&all[..i]) && tuple(&all[i..]) => {
                Some("tuples are not available in stored templates")
            }
            Token::BracketOpen | Token::BraceOpen if literal_position(&all[..i]) => {
                (!constant_literal(&all[i..])).then_some(
                    "a list or map built from values is not available in stored templates \
                     (constant ones, and the context's, are fine)",
                )
            }
            _ => None,
        };
        if let Some(message) = refused {
            return Err(at(span, message));
        }
    }
    Ok(())
}

/// Most variables (`set`, loop variables) a stored template assigns: what a rendering keeps
/// is at most this many values, each bounded.
const MAX_STORES: usize = 128;

fn stores_seen(stores: &mut usize) -> usize {
    *stores += 1;
    *stores
}

/// Whether a `[` or `{` after the tokens `before` starts a literal (rather than a
/// subscript): after an operator or keyword, and after a test's name (`is eq [...]`).
fn literal_position(
    before: &[(minijinja::machinery::Token<'_>, minijinja::machinery::Span)],
) -> bool {
    use minijinja::machinery::Token;
    let previous = before.last().map(|t| &t.0);
    let test_name = matches!(
        before.len().checked_sub(2).map(|i| &before[i].0),
        Some(Token::Ident("is" | "not"))
    );
    if test_name {
        return true;
    }
    if let Some(Token::Ident(word)) = previous {
        return matches!(
            *word,
            "and" | "or" | "not" | "in" | "is" | "if" | "elif" | "else" | "for" | "set" | "with"
        );
    }
    !matches!(
        previous,
        Some(
            Token::Ident(_)
                | Token::Str(_)
                | Token::String(_)
                | Token::Int(_)
                | Token::Int128(_)
                | Token::Float(_)
                | Token::ParenClose
                | Token::BracketClose
                | Token::BraceClose
        )
    )
}

/// Whether the `(` opening `tokens` (not a call's) holds a comma at its own level: a tuple.
fn tuple(tokens: &[(minijinja::machinery::Token<'_>, minijinja::machinery::Span)]) -> bool {
    use minijinja::machinery::Token;
    let mut depth = 0usize;
    for (token, _) in tokens {
        match token {
            Token::ParenOpen | Token::BracketOpen | Token::BraceOpen => depth += 1,
            Token::ParenClose | Token::BracketClose | Token::BraceClose => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return false;
                }
            }
            Token::Comma if depth == 1 => return true,
            Token::VariableEnd | Token::BlockEnd => return false,
            _ => {}
        }
    }
    false
}

/// Whether the literal opening `tokens` holds only constants (and constant literals).
fn constant_literal(
    tokens: &[(minijinja::machinery::Token<'_>, minijinja::machinery::Span)],
) -> bool {
    use minijinja::machinery::Token;
    let mut depth = 0usize;
    for (token, _) in tokens {
        match token {
            Token::BracketOpen | Token::BraceOpen => depth += 1,
            Token::BracketClose | Token::BraceClose => {
                depth -= 1;
                if depth == 0 {
                    return true;
                }
            }
            Token::Str(_)
            | Token::String(_)
            | Token::Int(_)
            | Token::Int128(_)
            | Token::Float(_)
            | Token::Comma
            | Token::Colon
            | Token::Minus => {}
            Token::Ident(name)
                if matches!(*name, "true" | "false" | "none" | "True" | "False" | "None") => {}
            _ => return false,
        }
    }
    false
}

/// Checks what the template does, instruction by instruction: only allowed operators,
/// filters, tests and functions, and only names of the context.
pub(crate) fn check(
    env: &Environment<'static>,
    name: &str,
    source: &str,
    escaped_alike: &dyn Fn(&str) -> bool,
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
    tokens(source)?;
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
    let mut stores = 0usize;
    // Where jumps land: a value whose instructions are followed by a landing place may come
    // from elsewhere (`(x or 1)` ends in `LoadConst 1`, but `x` jumps past it).
    let landings: BTreeSet<u32> = (0..instructions.len() as u32)
        .filter_map(|idx| match instructions.get(idx)? {
            Instruction::Jump(to)
            | Instruction::JumpIfFalse(to)
            | Instruction::JumpIfFalseOrPop(to)
            | Instruction::JumpIfTrueOrPop(to)
            | Instruction::Iterate(to) => Some(*to),
            _ => None,
        })
        .collect();
    let landed = |idx: usize| landings.contains(&(idx as u32));
    // Where the instructions making each constant value start: a list or map may only be
    // built from constants (and constant lists and maps).
    let mut constant_from: std::collections::HashMap<usize, usize> = Default::default();
    for idx in 0..instructions.len() {
        let Some(instruction) = instructions.get(idx as u32) else {
            break;
        };
        if let Instruction::LoadConst(_) = instruction {
            constant_from.insert(idx, idx);
        }
        let built = match instruction {
            Instruction::BuildList(Some(n)) => Some(*n),
            Instruction::BuildList(None) => None,
            Instruction::BuildMap(n) | Instruction::BuildKwargs(n) => Some(2 * *n),
            _ => None,
        };
        if let Some(items) = built {
            let mut at = idx;
            let mut constant = true;
            for _ in 0..items {
                if landed(at) {
                    constant = false;
                    break;
                }
                match at.checked_sub(1).and_then(|i| constant_from.get(&i)) {
                    Some(start) => at = *start,
                    None => {
                        constant = false;
                        break;
                    }
                }
            }
            if constant {
                constant_from.insert(idx, at);
            }
        }
        let refusal = match instruction {
            // (A filtered loop gathers the items that pass: `BuildList(None)`.)
            // Keyword arguments are a map too (`default(a=x)` returns it).
            Instruction::BuildList(Some(_))
            | Instruction::BuildMap(_)
            | Instruction::BuildKwargs(_)
                if !constant_from.contains_key(&idx) =>
            {
                Some(not_here(
                    "a list, tuple or map built from values (constant ones, and the context's, \
                     are fine)",
                ))
            }
            Instruction::StoreLocal(_) if stores_seen(&mut stores) > MAX_STORES => Some(format!(
                "a stored template assigns at most {MAX_STORES} variables (`set` and loop \
                 variables)"
            )),
            Instruction::In => Some(not_here(
                "the `in` operator (write `x is in y`: the `in` test, with limits)",
            )),
            Instruction::PushWith => Some(not_here("`with` blocks")),
            Instruction::MergeKwargs(_) => Some(not_here("`**` keyword arguments")),
            Instruction::Mul | Instruction::Pow => Some(not_here(
                "`*` (multiplication and repetition; `provisioning.recheck_seconds` is the \
                 re-check interval in seconds)",
            )),
            Instruction::StringConcat => Some(not_here(
                "`~` (joining texts; write the parts one after the other, or use `zpad`)",
            )),
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
            Instruction::PushAutoEscape => Some(not_here("`autoescape` blocks")),
            Instruction::BeginCapture(_) => Some(not_here(
                "capturing output (`{% set x %}…{% endset %}`, `{% filter %}`)",
            )),
            // A built-in template, named as it is: it passes these checks itself. Only one
            // written like this file (minijinja renders an include with the included
            // template's escaping).
            Instruction::Include(_)
                if !landed(idx)
                    && matches!(previous, Some(Instruction::LoadConst(v))
                    if v.as_str().is_some_and(|n| env.get_template(n).is_ok() && escaped_alike(n))) =>
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
        if given_up() {
            return Err(io::Error::other(
                "the rendering was given up at its deadline",
            ));
        }
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
    let mut with_lines = Context::sample(vendor, "", 3);
    with_lines.device.firmware = "1.0.0".into();
    with_lines.device.model = "sample".into();
    let mut bare = Context::sample(vendor, "", 0);
    bare.device.admin_password.clear();
    [with_lines, bare]
}
