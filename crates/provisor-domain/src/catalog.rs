//! The vendor catalog and request detection: which vendor, model, MAC and firmware a
//! phone's request is about, from the file name it asks for and its User-Agent.
//!
//! The catalog is data (`vendors/<vendor>/vendor.toml`, see `vendors/README.md`); this
//! module parses it and applies it. It does no I/O: whoever loads the files hands their text
//! to `Catalog::parse`, later sources replacing earlier ones with the same vendor id (so an
//! installation's directory overrides the built-in vendors).

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;
use serde::Deserialize;

use crate::Mac;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MacCase {
    Lower,
    Upper,
}

impl MacCase {
    /// The MAC as this vendor writes it in file names.
    pub fn format(self, mac: Mac) -> String {
        match self {
            MacCase::Lower => mac.to_string(),
            MacCase::Upper => mac.to_upper(),
        }
    }
}

/// What a requested file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// Device-specific (may carry secrets): only for an authenticated device.
    Device,
    /// The same for every device of the vendor (or model).
    Common,
    /// Sent by the phone (a log upload).
    Upload,
    /// Recognised but deliberately not served, so the phone goes on to its next file.
    Skip,
}

/// How a vendor's files are written, where the template name does not say it all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    #[serde(default)]
    pub line_endings: LineEndings,
    #[serde(default)]
    pub values: ValueFormat,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineEndings {
    #[default]
    Lf,
    Crlf,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueFormat {
    /// By the template's name: `.xml`/`.htm` escape for XML, anything else is line-based.
    #[default]
    Auto,
    /// Line-based with values between double quotes, which a value cannot contain.
    Quoted,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// The model code in common file names (Yealink's `y0000000000XX.cfg`).
    pub code: Option<String>,
    /// How many SIP accounts the model takes.
    #[serde(default = "one")]
    pub lines: u32,
    /// Line keys on the device.
    #[serde(default)]
    pub keys: u32,
    /// The model's own templates for the vendor's files, where its format differs:
    /// the file rule's template → the model's (e.g. `"mac.xml" = "mac-v1.xml"`).
    #[serde(default)]
    pub templates: std::collections::BTreeMap<String, String>,
}

fn one() -> u32 {
    1
}

#[derive(Debug)]
pub struct FileRule {
    pub pattern: Regex,
    pub kind: FileKind,
    pub template: String,
}

#[derive(Debug)]
pub struct Vendor {
    pub id: String,
    pub name: String,
    pub mac_case: MacCase,
    pub ouis: Vec<String>,
    pub output: Output,
    user_agents: Vec<Regex>,
    /// In the order the phone asks for them at boot.
    pub files: Vec<FileRule>,
    pub models: BTreeMap<String, Model>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VendorSource {
    id: String,
    name: String,
    mac_case: MacCase,
    #[serde(default)]
    ouis: Vec<String>,
    #[serde(default)]
    user_agents: Vec<String>,
    files: Vec<FileSource>,
    #[serde(default)]
    models: BTreeMap<String, Model>,
    #[serde(default)]
    output: Output,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSource {
    pattern: String,
    kind: FileKind,
    #[serde(default)]
    template: String,
}

/// A catalog source that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {reason}")]
pub struct CatalogError {
    pub origin: String,
    pub reason: String,
}

const CAPTURES: [&str; 4] = ["mac", "model", "model_code", "firmware"];

fn regex(origin: &str, what: &str, pattern: &str) -> Result<Regex, CatalogError> {
    let re = Regex::new(pattern).map_err(|e| CatalogError {
        origin: origin.into(),
        reason: format!("{what} '{pattern}': {e}"),
    })?;
    if let Some(name) = re.capture_names().flatten().find(|n| !CAPTURES.contains(n)) {
        return Err(CatalogError {
            origin: origin.into(),
            reason: format!(
                "{what} '{pattern}' has a group '{name}'; the known groups are {}",
                CAPTURES.join(", ")
            ),
        });
    }
    Ok(re)
}

impl Vendor {
    fn parse(origin: &str, text: &str) -> Result<Vendor, CatalogError> {
        let src: VendorSource = toml::from_str(text).map_err(|e| CatalogError {
            origin: origin.into(),
            reason: e.to_string(),
        })?;
        let bad = |reason: String| CatalogError {
            origin: origin.into(),
            reason,
        };
        if src.id.is_empty()
            || !src
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(bad(format!(
                "id '{}' must be lowercase letters, digits and '-'",
                src.id
            )));
        }
        if src.files.is_empty() {
            return Err(bad("a vendor needs at least one [[files]] entry".into()));
        }
        let ouis = src
            .ouis
            .iter()
            .map(|o| {
                let o = o.to_ascii_lowercase().replace([':', '-'], "");
                if o.len() == 6 && o.chars().all(|c| c.is_ascii_hexdigit()) {
                    Ok(o)
                } else {
                    Err(bad(format!("OUI '{o}' is not 6 hex digits")))
                }
            })
            .collect::<Result<_, _>>()?;
        let user_agents = src
            .user_agents
            .iter()
            .map(|p| regex(origin, "user agent pattern", p))
            .collect::<Result<_, _>>()?;
        let files = src
            .files
            .into_iter()
            .map(|f| {
                if matches!(f.kind, FileKind::Device | FileKind::Common) && f.template.is_empty() {
                    return Err(bad(format!(
                        "file pattern '{}' needs a template",
                        f.pattern
                    )));
                }
                Ok(FileRule {
                    pattern: regex(origin, "file pattern", &f.pattern)?,
                    kind: f.kind,
                    template: f.template,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Vendor {
            id: src.id,
            name: src.name,
            mac_case: src.mac_case,
            output: src.output,
            ouis,
            user_agents,
            files,
            models: src.models,
        })
    }

    fn has_oui(&self, mac: Mac) -> bool {
        let prefix = &mac.to_string()[..6];
        self.ouis.iter().any(|o| o == prefix)
    }

    /// The catalog's spelling of a model name given in any case, or the name as given.
    /// The template that makes `template`'s file for `model`: the model's own, if the
    /// catalog gives it one.
    pub fn template_for<'a>(&'a self, template: &'a str, model: &str) -> &'a str {
        self.models
            .get(model)
            .and_then(|m| m.templates.get(template))
            .map_or(template, String::as_str)
    }

    pub fn canonical_model(&self, name: &str) -> String {
        self.models
            .keys()
            .find(|k| k.eq_ignore_ascii_case(name))
            .cloned()
            .unwrap_or_else(|| name.to_owned())
    }

    /// The model named by a model code in a file name.
    pub fn model_by_code(&self, code: &str) -> Option<&str> {
        self.models
            .iter()
            .find(|(_, m)| {
                m.code
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(code))
            })
            .map(|(name, _)| name.as_str())
    }
}

/// All known vendors.
#[derive(Debug, Default)]
pub struct Catalog {
    vendors: Vec<Vendor>,
}

/// What a User-Agent says, when a vendor's pattern matches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentInfo<'c> {
    pub vendor: &'c Vendor,
    pub model: Option<String>,
    pub firmware: Option<String>,
    pub mac: Option<Mac>,
}

/// A request attributed to a vendor and one of its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found<'c> {
    pub vendor: &'c Vendor,
    pub rule: &'c FileRule,
    pub mac: Option<Mac>,
    pub model: Option<String>,
    pub firmware: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detected<'c> {
    Found(Found<'c>),
    /// The name fits several vendors' files and neither the User-Agent nor the MAC prefix
    /// tells them apart; the device record of `mac`, if there is one, may (`detect_for`).
    Ambiguous {
        mac: Option<Mac>,
        vendors: Vec<&'c Vendor>,
    },
    /// No vendor asks for a file of this name.
    Unknown,
    /// The MAC in the file name and the one in the User-Agent differ.
    MacMismatch {
        file: Mac,
        user_agent: Mac,
    },
}

impl PartialEq for Vendor {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for Vendor {}

impl PartialEq for FileRule {
    fn eq(&self, other: &Self) -> bool {
        self.pattern.as_str() == other.pattern.as_str()
    }
}
impl Eq for FileRule {}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// A MAC from a capture group; all zeros is a placeholder, not a device.
fn mac_of(text: Option<&str>) -> Option<Mac> {
    text.and_then(|t| Mac::parse(t).ok())
        .filter(|m| m.octets() != [0; 6])
}

impl Catalog {
    /// Parses catalog sources `(origin, toml text)`; a later source with a vendor id seen
    /// before replaces it.
    pub fn parse<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Catalog, CatalogError> {
        let mut vendors: Vec<Vendor> = Vec::new();
        for (origin, text) in sources {
            let vendor = Vendor::parse(origin, text)?;
            match vendors.iter_mut().find(|v| v.id == vendor.id) {
                Some(existing) => *existing = vendor,
                None => vendors.push(vendor),
            }
        }
        Ok(Catalog { vendors })
    }

    pub fn vendors(&self) -> &[Vendor] {
        &self.vendors
    }

    pub fn vendor(&self, id: &str) -> Option<&Vendor> {
        self.vendors.iter().find(|v| v.id == id)
    }

    /// The first vendor whose User-Agent pattern matches.
    pub fn user_agent(&self, user_agent: &str) -> Option<AgentInfo<'_>> {
        self.vendors.iter().find_map(|vendor| {
            let caps = vendor
                .user_agents
                .iter()
                .find_map(|re| re.captures(user_agent))?;
            Some(AgentInfo {
                vendor,
                model: caps.name("model").map(|m| m.as_str().to_owned()),
                firmware: caps.name("firmware").map(|m| m.as_str().to_owned()),
                mac: mac_of(caps.name("mac").map(|m| m.as_str())),
            })
        })
    }

    /// Attributes a request for `file` with `user_agent` to a vendor and one of its files.
    pub fn detect(&self, file: &str, user_agent: Option<&str>) -> Detected<'_> {
        self.detect_among(self.vendors.iter(), file, user_agent)
    }

    /// As `detect`, among one vendor only (the vendor a device record names).
    pub fn detect_for(&self, vendor: &str, file: &str, user_agent: Option<&str>) -> Detected<'_> {
        self.detect_among(
            self.vendors.iter().filter(|v| v.id == vendor),
            file,
            user_agent,
        )
    }

    fn detect_among<'c>(
        &'c self,
        candidates: impl Iterator<Item = &'c Vendor>,
        file: &str,
        user_agent: Option<&str>,
    ) -> Detected<'c> {
        // Each vendor's first rule that fits the name (rules are in boot order).
        // A `mac` group of all zeros is a placeholder name (Poly's 000000000000.cfg), not a
        // device's file, so such a rule does not count.
        let fits = |c: &regex::Captures<'_>| {
            c.name("mac")
                .is_none_or(|m| mac_of(Some(m.as_str())).is_some())
        };
        let matches: Vec<(&Vendor, &FileRule, regex::Captures<'_>)> = candidates
            .filter_map(|v| {
                v.files
                    .iter()
                    .find_map(|r| r.pattern.captures(file).filter(fits).map(|c| (v, r, c)))
            })
            .collect();
        if matches.is_empty() {
            return Detected::Unknown;
        }
        let agent = user_agent.and_then(|ua| self.user_agent(ua));
        let file_mac = |c: &regex::Captures<'_>| mac_of(c.name("mac").map(|m| m.as_str()));
        let chosen = match agent
            .as_ref()
            .and_then(|a| matches.iter().position(|(v, ..)| *v == a.vendor))
        {
            Some(i) => i,
            None if matches.len() == 1 => 0,
            None => {
                let mac = matches.iter().find_map(|(_, _, c)| file_mac(c));
                let by_oui: Vec<usize> = (0..matches.len())
                    .filter(|&i| mac.is_some_and(|m| matches[i].0.has_oui(m)))
                    .collect();
                match by_oui[..] {
                    [i] => i,
                    _ => {
                        return Detected::Ambiguous {
                            mac,
                            vendors: matches.iter().map(|(v, ..)| *v).collect(),
                        };
                    }
                }
            }
        };
        let (vendor, rule, caps) = &matches[chosen];
        // The User-Agent counts only if it is the same vendor's.
        let agent = agent.filter(|a| a.vendor == *vendor);
        let mac = match (file_mac(caps), agent.as_ref().and_then(|a| a.mac)) {
            (Some(f), Some(u)) if f != u => {
                return Detected::MacMismatch {
                    file: f,
                    user_agent: u,
                };
            }
            (f, u) => f.or(u),
        };
        let model = caps
            .name("model")
            .map(|m| m.as_str().to_owned())
            .or_else(|| {
                caps.name("model_code")
                    .and_then(|c| vendor.model_by_code(c.as_str()))
                    .map(str::to_owned)
            })
            .or_else(|| agent.as_ref().and_then(|a| a.model.clone()));
        let model = model.map(|m| vendor.canonical_model(&m));
        Detected::Found(Found {
            vendor,
            rule,
            mac,
            model,
            firmware: agent.and_then(|a| a.firmware),
        })
    }
}

#[cfg(test)]
mod tests;
