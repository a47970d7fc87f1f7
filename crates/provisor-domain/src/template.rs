//! Templates stored by admins: a domain's (or a category's) replacement of a built-in
//! template, or an extra device file whose name holds `{mac}`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Invalid;
use crate::mac::Mac;

/// Where a stored template came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TemplateOrigin {
    /// Written in Provisor's template language.
    #[default]
    Template,
    /// Imported from a 3CX phone template.
    #[serde(rename = "3cx")]
    ThreeCx,
}

impl TemplateOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateOrigin::Template => "template",
            TemplateOrigin::ThreeCx => "3cx",
        }
    }

    pub fn parse(s: &str) -> Self {
        if s == "3cx" {
            TemplateOrigin::ThreeCx
        } else {
            TemplateOrigin::Template
        }
    }
}

/// A stored template, as admins see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct StoredTemplate {
    /// The category it applies to; none for the whole domain.
    pub category: Option<String>,
    pub vendor: String,
    /// The built-in template it replaces (e.g. `mac.cfg`), or a device file name with
    /// `{mac}` (e.g. `cfg{mac}`).
    pub name: String,
    pub origin: TemplateOrigin,
    pub source: String,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

/// A stored template as a device's fetch needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceTemplate {
    pub vendor: String,
    pub name: String,
    pub source: String,
    /// From the device's category (which goes before its domain's).
    pub from_category: bool,
}

/// A template name: 1 to 128 letters, digits, `.`, `_`, `-`, with at most one `{mac}`;
/// not starting with `.`.
pub fn template_name(name: &str) -> Result<String, Invalid> {
    // Apart from its one `{mac}`, a template name is what a firmware name is.
    crate::model::firmware_name(&name.replacen("{mac}", "m", 1))
        .map(|_| name.to_owned())
        .map_err(|_| {
            Invalid::new(
                "name",
                "a template name is 1 to 128 letters, digits, '.', '_' or '-', with at most one {mac}, not starting with '.'",
            )
        })
}

/// Whether `file` is the file a template named `name` (with `{mac}`) makes, and for which
/// MAC: `{mac}` matches twelve hex digits in either case.
pub fn file_mac(name: &str, file: &str) -> Option<Mac> {
    let (before, after) = name.split_once("{mac}")?;
    let middle = file.strip_prefix(before)?.strip_suffix(after)?;
    (middle.len() == 12 && middle.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| Mac::parse(middle).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_files() {
        assert!(template_name("mac.cfg").is_ok());
        assert!(template_name("cfg{mac}.xml").is_ok());
        for bad in ["", ".x", "a/b", "{mac}{mac}", "x{y}", "../x"] {
            assert!(template_name(bad).is_err(), "{bad}");
        }
        let m = Mac::parse("000413246672").unwrap();
        assert_eq!(file_mac("cfg{mac}", "cfg000413246672"), Some(m));
        assert_eq!(
            file_mac("cfg{mac}", "cfg000413ABCDEF").map(|m| m.to_string()),
            Some("000413abcdef".into())
        );
        assert_eq!(file_mac("cfg{mac}.xml", "cfg000413246672.xml"), Some(m));
        assert_eq!(file_mac("cfg{mac}.xml", "cfg000413246672"), None);
        assert_eq!(file_mac("cfg{mac}", "cfg00041324667"), None);
        assert_eq!(file_mac("cfg{mac}", "cfg00041324667z"), None);
        assert_eq!(file_mac("mac.cfg", "mac.cfg"), None);
    }
}
