//! Importing 3CX phone templates: `<deviceconfig filename="cfg%%mac_address%%">` elements
//! whose text, with `%%variable%%` placeholders, is a phone's file.
//!
//! Each `deviceconfig` becomes a stored template named by its file name, `%%mac_address%%`
//! written `{mac}` (so `cfg{mac}` answers `cfg000413246672`). The placeholders become the
//! context's names. 3CX writes one account per phone; here the lines that carry an
//! account's placeholders are written once per line of the device, with the account number
//! in their keys (`user_name1`, `account.1.`, `idx="1"`) counting up. Where a block's keys
//! carry no recognisable account number (Grandstream's P-codes), only the first line is
//! written, with a warning.

use roxmltree::Document;

/// One imported file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// The template's name: the file name with `{mac}` for the MAC.
    pub name: String,
    /// The template, in Provisor's template language.
    pub source: String,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("the template is not well-formed XML: {0}")]
    Xml(String),
    #[error("the template has no <deviceconfig filename=\"…\"> element")]
    NoDeviceConfig,
    #[error("line {line}: unknown variable %%{name}%%; known are {}", KNOWN.join(", "))]
    UnknownVariable { name: String, line: usize },
    #[error("line {line}: {message}")]
    FileName { line: usize, message: String },
}

/// The 3CX placeholders and what they are here; `true` for an account's.
const VARIABLES: &[(&str, &str, bool)] = &[
    ("extension_number", "line.sip_user", true),
    ("extension_first_name", "line.first_name", true),
    ("extension_last_name", "line.last_name", true),
    ("extension_auth_id", "line.auth_user", true),
    ("extension_auth_pw", "line.password", true),
    ("pbx_ip", "line.registrar_host", true),
    ("mac_address", "device.mac", false),
];

const KNOWN: &[&str] = &[
    "%%extension_number%%",
    "%%extension_first_name%%",
    "%%extension_last_name%%",
    "%%extension_auth_id%%",
    "%%extension_auth_pw%%",
    "%%pbx_ip%%",
    "%%mac_address%%",
];

/// A `%%name%%` in `text`: its byte range and name.
fn placeholders(text: &str) -> Vec<(std::ops::Range<usize>, &str)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(start) = text[from..].find("%%").map(|i| i + from) {
        let rest = &text[start + 2..];
        let Some(len) = rest.find("%%") else { break };
        let name = &rest[..len];
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            found.push((start..start + 2 + len + 2, name));
            from = start + 2 + len + 2;
        } else {
            from = start + 2;
        }
    }
    found
}

/// Literal text as template source: `{{`, `{%` and `{#` would open a tag.
fn literal(text: &str, out: &mut String) {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '{' && matches!(chars.peek(), Some('{' | '%' | '#')) {
            out.push_str("{{ \"{\" }}");
        } else {
            out.push(c);
        }
    }
}

/// The first `1` standing alone (no digit next to it) in `key`.
fn account_number(key: &str) -> Option<usize> {
    let bytes = key.as_bytes();
    (0..bytes.len()).find(|&i| {
        bytes[i] == b'1'
            && (i == 0 || !bytes[i - 1].is_ascii_digit())
            && bytes.get(i + 1).is_none_or(|b| !b.is_ascii_digit())
    })
}

/// Imports every `deviceconfig` of a 3CX template.
pub fn import(xml: &str) -> Result<Vec<Imported>, ImportError> {
    let doc = Document::parse(xml).map_err(|e| ImportError::Xml(e.to_string()))?;
    let mut imported = Vec::new();
    for node in doc
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().name().eq_ignore_ascii_case("deviceconfig"))
    {
        let element_line = doc.text_pos_at(node.range().start).row as usize;
        let file_error = |message: String| ImportError::FileName {
            line: element_line,
            message,
        };
        let filename = node
            .attribute("filename")
            .ok_or_else(|| file_error("<deviceconfig> has no filename".into()))?;
        let name = file_name(filename, element_line)?;
        if !name.contains("{mac}") {
            return Err(file_error(format!(
                "the file name {filename} has no %%mac_address%%; imported files are per device"
            )));
        }
        let (text, first_line) = match node.children().find(|c| c.is_text()) {
            Some(t) => (
                node.children().filter_map(|c| c.text()).collect::<String>(),
                doc.text_pos_at(t.range().start).row as usize,
            ),
            None => (String::new(), element_line),
        };
        let (source, warnings) = convert(&text, first_line, &name)?;
        imported.push(Imported {
            name,
            source,
            warnings,
        });
    }
    if imported.is_empty() {
        return Err(ImportError::NoDeviceConfig);
    }
    Ok(imported)
}

fn file_name(filename: &str, line: usize) -> Result<String, ImportError> {
    let mut name = String::new();
    let mut at = 0;
    for (range, var) in placeholders(filename) {
        name.push_str(&filename[at..range.start]);
        if var != "mac_address" {
            return Err(ImportError::UnknownVariable {
                name: var.to_owned(),
                line,
            });
        }
        name.push_str("{mac}");
        at = range.end;
    }
    name.push_str(&filename[at..]);
    // The name a stored template may have (one `{mac}`, no braces of its own), so a file
    // the import takes is one the upload check takes too.
    provisor_domain::template::template_name(name.trim()).map_err(|_| ImportError::FileName {
        line,
        message: format!(
            "the file name {filename} may hold only letters, digits, '.', '_', '-' and one %%mac_address%%, and not start with '.'"
        ),
    })
}

/// The text of one `deviceconfig` as a template; `first_line` is its line in the file.
fn convert(
    text: &str,
    first_line: usize,
    name: &str,
) -> Result<(String, Vec<String>), ImportError> {
    let raw: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (first_line + i, l.trim_end()))
        .collect();
    let start = raw.iter().position(|(_, l)| !l.trim().is_empty());
    let end = raw.iter().rposition(|(_, l)| !l.trim().is_empty());
    let lines: &[(usize, &str)] = match (start, end) {
        (Some(s), Some(e)) => &raw[s..=e],
        _ => &[],
    };
    let indent = lines
        .iter()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(_, l)| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let lines: Vec<(usize, &str)> = lines
        .iter()
        .map(|(n, l)| (*n, l.get(indent..).unwrap_or(l.trim_start())))
        .collect();
    // XML: a declaration, a comment or an element first (not Fanvil's `<<VOIP CONFIG FILE>>`).
    let markup = lines
        .iter()
        .find(|(_, l)| !l.trim().is_empty())
        .map(|(_, l)| l.trim_start().trim_start_matches('\u{feff}'))
        .is_some_and(|l| {
            l.starts_with("<?xml")
                || l.starts_with("<!--")
                || l.strip_prefix('<')
                    .and_then(|r| r.chars().next())
                    .is_some_and(|c| c.is_ascii_alphabetic())
        });

    // Check every placeholder, and find the account block.
    let mut block: Option<(usize, usize)> = None;
    for (i, (n, l)) in lines.iter().enumerate() {
        for (_, var) in placeholders(l) {
            let Some((_, _, account)) = VARIABLES.iter().find(|(v, _, _)| *v == var) else {
                return Err(ImportError::UnknownVariable {
                    name: var.to_owned(),
                    line: *n,
                });
            };
            if *account {
                block = Some(block.map_or((i, i), |(s, _)| (s, i)));
            }
        }
    }
    // In the block, every line with an account's placeholder must show its account number.
    let numbered = block.is_some_and(|(s, e)| {
        lines[s..=e].iter().all(|(_, l)| {
            let has_account = placeholders(l)
                .iter()
                .any(|(_, v)| VARIABLES.iter().any(|(n, _, a)| n == v && *a));
            let key = &l[..l.find("%%").unwrap_or(l.len())];
            !has_account || account_number(key).is_some()
        })
    });
    let mut warnings = Vec::new();
    let mut out = String::new();
    for (i, (_, l)) in lines.iter().enumerate() {
        if block.is_some_and(|(s, _)| s == i) {
            if numbered {
                out.push_str("{% for line in lines %}\n");
            } else {
                out.push_str("{% for line in lines[:1] %}\n");
                warnings.push(format!(
                    "{name}: the account's keys carry no account number, so only the device's first line is written"
                ));
            }
        }
        let in_block = block.is_some_and(|(s, e)| (s..=e).contains(&i));
        write_line(l, in_block && numbered, markup, &mut out);
        out.push('\n');
        if block.is_some_and(|(_, e)| e == i) {
            out.push_str("{% endfor %}\n");
        }
    }
    Ok((out, warnings))
}

/// One line of the file: literal text, placeholders as values, and (in a numbered block)
/// the account number of its key as the line's.
fn write_line(line: &str, renumber: bool, markup: bool, out: &mut String) {
    let key_end = line.find("%%").unwrap_or(line.len());
    let number = if renumber {
        account_number(&line[..key_end])
    } else {
        None
    };
    let mut at = 0;
    let text = |upto: usize, out: &mut String, at: &mut usize| {
        let piece = &line[*at..upto];
        match number.filter(|n| (*at..upto).contains(n)) {
            Some(n) => {
                literal(&line[*at..n], out);
                out.push_str("{{ line.number }}");
                literal(&line[n + 1..upto], out);
            }
            None => literal(piece, out),
        }
        *at = upto;
    };
    for (range, var) in placeholders(line) {
        text(range.start, out, &mut at);
        let (_, name, _) = VARIABLES
            .iter()
            .find(|(v, _, _)| *v == var)
            .expect("checked before");
        out.push_str("{{ ");
        out.push_str(name);
        if markup {
            out.push_str(" | xml");
        }
        out.push_str(" }}");
        at = range.end;
    }
    text(line.len(), out, &mut at);
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNOM: &str = r#"<?xml version="1.0"?>
<doc xmlns:tcx="http://www.3cx.com">
  <header><type>phone-template</type><name>Snom 320</name></header>
  <data>
    <device>
      <type>phone</type>
      <field name="Name">Snom 320</field>
    <deviceconfig filename="cfg%%mac_address%%">
 <![CDATA[

  # First account

  user_pname1$: %%extension_auth_id%%
  user_pass1$: %%extension_auth_pw%%
  user_name1$: %%extension_number%%
  user_realname1$: %%extension_first_name%% %%extension_last_name%%
  user_host1$: %%pbx_ip%%

  ]]>
     </deviceconfig>
   </device>
 </data>
</doc>"#;

    #[test]
    fn the_documented_snom_template_becomes_a_template_per_line() {
        let imported = import(SNOM).unwrap();
        assert_eq!(imported.len(), 1);
        let t = &imported[0];
        assert_eq!(t.name, "cfg{mac}");
        assert!(t.warnings.is_empty(), "{:?}", t.warnings);
        assert_eq!(
            t.source,
            "# First account\n\
             \n\
             {% for line in lines %}\n\
             user_pname{{ line.number }}$: {{ line.auth_user }}\n\
             user_pass{{ line.number }}$: {{ line.password }}\n\
             user_name{{ line.number }}$: {{ line.sip_user }}\n\
             user_realname{{ line.number }}$: {{ line.first_name }} {{ line.last_name }}\n\
             user_host{{ line.number }}$: {{ line.registrar_host }}\n\
             {% endfor %}\n"
        );
    }

    #[test]
    fn an_unknown_variable_is_named_with_its_line() {
        let xml = SNOM.replace("%%pbx_ip%%", "%%pbx_sip_port%%");
        assert_eq!(
            import(&xml).unwrap_err(),
            ImportError::UnknownVariable {
                name: "pbx_sip_port".into(),
                line: 17
            }
        );
        let xml = SNOM.replace("cfg%%mac_address%%", "cfg%%model%%");
        assert!(matches!(
            import(&xml).unwrap_err(),
            ImportError::UnknownVariable { name, .. } if name == "model"
        ));
    }

    #[test]
    fn keys_without_an_account_number_write_the_first_line_only() {
        let xml = r#"<doc><deviceconfig filename="cfg%%mac_address%%.xml"><![CDATA[
<gs_provision><config version="1">
  <P271>1</P271>
  <P35>%%extension_number%%</P35>
  <P34>%%extension_auth_pw%%</P34>
</config></gs_provision>
]]></deviceconfig></doc>"#;
        let t = &import(xml).unwrap()[0];
        assert_eq!(t.name, "cfg{mac}.xml");
        assert_eq!(t.warnings.len(), 1, "{:?}", t.warnings);
        assert!(t.source.contains("{% for line in lines[:1] %}"));
        assert!(t.source.contains("<P34>{{ line.password | xml }}</P34>"));
    }

    #[test]
    fn template_syntax_in_the_text_stays_text() {
        let xml = r#"<doc><deviceconfig filename="%%mac_address%%.cfg">a {{ b }} {% c %} {# d #} {x}</deviceconfig></doc>"#;
        let t = &import(xml).unwrap()[0];
        assert_eq!(
            t.source,
            "a {{ \"{\" }}{ b }} {{ \"{\" }}% c %} {{ \"{\" }}# d #} {x}\n"
        );
    }

    #[test]
    fn refuses_what_is_not_a_device_template() {
        assert!(matches!(import("<doc>"), Err(ImportError::Xml(_))));
        assert_eq!(
            import("<doc><x/></doc>").unwrap_err(),
            ImportError::NoDeviceConfig
        );
        assert!(matches!(
            import(r#"<doc><deviceconfig filename="common.cfg">x</deviceconfig></doc>"#),
            Err(ImportError::FileName { .. })
        ));
        assert!(matches!(
            import(r#"<doc><deviceconfig filename="../%%mac_address%%">x</deviceconfig></doc>"#),
            Err(ImportError::FileName { .. })
        ));
    }

    /// Found by fuzzing (fuzz/regressions/threecx_import): a file name with a `{mac}` of its
    /// own besides `%%mac_address%%` was taken, as a name no stored template can have.
    #[test]
    fn file_names_are_template_names() {
        for filename in [
            "%%mac_address%%.cfg{mac}",
            "%%mac_address%%%%mac_address%%.cfg",
            "%%mac_address%%{x}.cfg",
            ".%%mac_address%%.cfg",
        ] {
            let xml = format!(r#"<doc><deviceconfig filename="{filename}">x</deviceconfig></doc>"#);
            assert!(
                matches!(import(&xml), Err(ImportError::FileName { .. })),
                "{filename}"
            );
        }
        let xml =
            r#"<doc><deviceconfig filename=" cfg%%mac_address%%.xml ">x</deviceconfig></doc>"#;
        assert_eq!(import(xml).unwrap()[0].name, "cfg{mac}.xml");
    }
}

#[cfg(test)]
mod markup_tests {
    use super::import;

    #[test]
    fn fanvil_text_is_not_taken_for_xml() {
        let xml = r#"<doc><deviceconfig filename="%%mac_address%%.cfg"><![CDATA[<<VOIP CONFIG FILE>>Version:2.0000000000
<SIP CONFIG MODULE>
--SIP Line List--  :
SIP1 Phone Number       :%%extension_number%%
]]></deviceconfig></doc>"#;
        let t = &import(xml).unwrap()[0];
        assert!(!t.source.contains("| xml"), "{}", t.source);
        let xml = "<doc><deviceconfig filename=\"%%mac_address%%.xml\"><![CDATA[\u{feff}<!-- x -->\n<a>%%extension_number%%</a>]]></deviceconfig></doc>";
        let t = &import(xml).unwrap()[0];
        assert!(t.source.contains("| xml"), "{}", t.source);
    }
}
