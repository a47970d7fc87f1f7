//! Names that identify things in URLs, the CLI and CSV files: domains, categories,
//! users, SIP user parts. Checked once at the edge so that everything inside can trust them.

use crate::Invalid;

fn check(
    field: &str,
    value: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
    what: &str,
) -> Result<String, Invalid> {
    if value.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(Invalid::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if let Some(c) = value.chars().find(|c| !allowed(*c)) {
        return Err(Invalid::new(
            field,
            format!("must not contain {c:?}; allowed are {what}"),
        ));
    }
    Ok(value.to_owned())
}

/// A domain (tenant) name: lowercase letters, digits, `.`, `-` and `_`, like a DNS name.
pub fn domain_name(value: &str) -> Result<String, Invalid> {
    let v = value.trim().to_ascii_lowercase();
    let v = check(
        "domain",
        &v,
        253,
        |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'),
        "letters, digits, '.', '-' and '_'",
    )?;
    if v.starts_with(['.', '-']) || v.ends_with(['.', '-']) {
        return Err(Invalid::new(
            "domain",
            "must not start or end with '.' or '-'",
        ));
    }
    Ok(v)
}

/// A category name: any printable text without control characters or `/`.
pub fn category_name(value: &str) -> Result<String, Invalid> {
    check(
        "category",
        value.trim(),
        64,
        |c| !c.is_control() && c != '/',
        "printable characters except '/'",
    )
}

/// A user name or SIP user part: letters, digits and `. _ - + @ *` (no spaces).
pub fn user_name(field: &str, value: &str) -> Result<String, Invalid> {
    check(
        field,
        value.trim(),
        128,
        |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '@' | '*' | '#'),
        "letters, digits and . _ - + @ * #",
    )
}

/// A console administrator's sign-in name: a user name, in lowercase (sign-in ignores case).
pub fn admin_name(value: &str) -> Result<String, Invalid> {
    user_name("name", &value.to_lowercase())
}

/// A host with an optional port (`sip.example.com`, `10.0.0.1:5060`, `[2001:db8::1]:5061`).
pub fn host_port(field: &str, value: &str) -> Result<String, Invalid> {
    let v = value.trim();
    let v = check(
        field,
        v,
        255,
        |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'),
        "a host name or address with an optional :port",
    )?;
    let port = v
        .rsplit_once(':')
        .filter(|_| !v.ends_with(']') && v.matches(':').count() == 1)
        .map(|(_, p)| p);
    if let Some(port) = port.filter(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
        return Err(Invalid::new(
            field,
            format!("port '{port}' is not a number from 1 to 65535"),
        ));
    }
    Ok(v.to_owned())
}

/// Free text such as a display name: no control characters, bounded length.
pub fn text(field: &str, value: &str, max: usize) -> Result<String, Invalid> {
    if value.chars().count() > max {
        return Err(Invalid::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Invalid::new(field, "must not contain control characters"));
    }
    Ok(value.trim().to_owned())
}

/// An e-mail address, checked loosely: one `@` with text on both sides, no spaces.
pub fn email(value: &str) -> Result<String, Invalid> {
    let v = text("email", value, 254)?;
    match v.split_once('@') {
        Some((l, r))
            if !l.is_empty()
                && !r.is_empty()
                && !r.contains('@')
                && !v.contains(char::is_whitespace) =>
        {
            Ok(v)
        }
        _ => Err(Invalid::new(
            "email",
            format!("'{v}' is not an e-mail address"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_are_lowercased_and_checked() {
        assert_eq!(domain_name("Acme.Example.COM").unwrap(), "acme.example.com");
        assert!(domain_name("").is_err());
        assert!(domain_name("a b").is_err());
        assert!(domain_name("-a").is_err());
        assert!(domain_name("a/b").is_err());
    }

    #[test]
    fn host_ports() {
        assert!(host_port("registrar", "sip.example.com").is_ok());
        assert!(host_port("registrar", "sip.example.com:5061").is_ok());
        assert!(host_port("registrar", "[2001:db8::1]:5061").is_ok());
        assert!(host_port("registrar", "2001:db8::1").is_ok());
        assert!(host_port("registrar", "sip.example.com:0").is_err());
        assert!(host_port("registrar", "sip.example.com:99999").is_err());
        assert!(host_port("registrar", "sip example").is_err());
    }

    #[test]
    fn user_names() {
        assert!(user_name("username", "alice.smith").is_ok());
        assert!(user_name("sip_user", "+4930123").is_ok());
        assert!(user_name("username", "alice smith").is_err());
        assert!(user_name("username", "").is_err());
    }

    #[test]
    fn emails() {
        assert!(email("a@b.c").is_ok());
        assert!(email("ab.c").is_err());
        assert!(email("a@b@c").is_err());
    }
}
