//! HTTP Digest authentication (RFC 7616, RFC 2617) for phones fetching their configuration.
//!
//! This module owns the Digest wire format and its arithmetic: the stateless nonces the
//! server hands out, the `WWW-Authenticate` challenge, parsing the `Authorization: Digest`
//! header and checking its response. Only what desk phones implement is accepted:
//! algorithm MD5 with `qop=auth`, plus the RFC 2069 form without `qop`.
//!
//! Nothing here remembers anything between requests: a nonce carries its own issue time
//! and a keyed hash, so any server holding the key can check it. Replays of a captured
//! request within the nonce lifetime are therefore not detected (no `nc` tracking); the
//! lifetime bounds that window. Checking that the realm is [`REALM`], that the `uri`
//! matches the request and that the nonce is fresh is left to the caller, which knows the
//! request.

use md5::Md5;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Realm every challenge names.
pub const REALM: &str = "provisor";

/// How far in the future a nonce's issue time may be, to absorb clock adjustments.
const MAX_FUTURE_SECS: u64 = 60;

/// The longest issue time a nonce can carry: a `u64` in hex.
const MAX_TS_HEX_LEN: usize = 16;

/// Makes and checks stateless nonces: `<unix seconds in hex>.<first 32 hex digits of SHA-256(key || ts_hex)>`.
#[derive(Clone)]
pub struct Nonces {
    key: [u8; 32],
    lifetime_secs: u64,
}

/// What [`Nonces::check`] thinks of a nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceState {
    /// Made with this key and still fresh.
    Valid,
    /// Made with this key but older than the lifetime: challenge again with `stale=true`, so
    /// the phone retries with its stored password instead of reporting a failure.
    Stale,
    /// Not made with this key, malformed, or dated too far in the future.
    Invalid,
}

impl Nonces {
    /// Nonces keyed with `key`, accepted for `lifetime_secs` after they were issued.
    pub fn new(key: [u8; 32], lifetime_secs: u64) -> Self {
        Self { key, lifetime_secs }
    }

    /// A random key (rand::rngs::OsRng).
    pub fn random(lifetime_secs: u64) -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self::new(key, lifetime_secs)
    }

    /// A nonce issued at `now_unix` (seconds since the Unix epoch).
    pub fn issue(&self, now_unix: u64) -> String {
        let ts_hex = format!("{now_unix:x}");
        let mac = self.mac(&ts_hex);
        format!("{ts_hex}.{mac}")
    }

    /// Fresh (not older than the lifetime, not from the future by more than 60 s) and made with this key.
    pub fn check(&self, nonce: &str, now_unix: u64) -> NonceState {
        let Some((ts_hex, _)) = nonce.split_once('.') else {
            return NonceState::Invalid;
        };
        if ts_hex.is_empty()
            || ts_hex.len() > MAX_TS_HEX_LEN
            || !ts_hex.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return NonceState::Invalid;
        }
        let Ok(ts) = u64::from_str_radix(ts_hex, 16) else {
            return NonceState::Invalid;
        };
        // Rebuilding the canonical nonce also rejects other spellings of the same time
        // (leading zeros, upper case), so exactly one string is valid per issue time.
        let expected = self.issue(ts);
        if !bool::from(expected.as_bytes().ct_eq(nonce.as_bytes())) {
            return NonceState::Invalid;
        }
        if ts > now_unix.saturating_add(MAX_FUTURE_SECS) {
            return NonceState::Invalid;
        }
        if now_unix.saturating_sub(ts) > self.lifetime_secs {
            NonceState::Stale
        } else {
            NonceState::Valid
        }
    }

    /// The first 32 hex digits of SHA-256(key || ts_hex).
    fn mac(&self, ts_hex: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.key);
        hasher.update(ts_hex.as_bytes());
        let digest = hasher.finalize();
        hex::encode(&digest[..16])
    }
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces").finish_non_exhaustive()
    }
}

/// The value of a `WWW-Authenticate` header for a new challenge; `stale` adds `stale=true`.
pub fn challenge(nonce: &str, stale: bool) -> String {
    let mut header = format!(
        "Digest realm=\"{}\", qop=\"auth\", algorithm=MD5, nonce=\"{}\"",
        quote(REALM),
        quote(nonce)
    );
    if stale {
        header.push_str(", stale=true");
    }
    header
}

/// A parsed `Authorization: Digest …` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub algorithm: Option<String>,
}

impl Credentials {
    /// Parses the header value (`Digest username="…", …`): scheme case-insensitive, quoted and token values, backslash escapes in quoted strings, commas inside quotes, extra whitespace, unknown params ignored. None if it is not Digest or lacks username/realm/nonce/uri/response, or if qop is given without nc and cnonce.
    ///
    /// Parameter names are case-insensitive. A malformed parameter list, or a known
    /// parameter given twice, is also None: there is no telling which copy was meant.
    pub fn parse(header: &str) -> Option<Credentials> {
        let header = header.trim_start_matches(is_ws);
        let scheme_end = header.find(is_ws).unwrap_or(header.len());
        let (scheme, rest) = header.split_at(scheme_end);
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }

        let mut username = None;
        let mut realm = None;
        let mut nonce = None;
        let mut uri = None;
        let mut response = None;
        let mut qop = None;
        let mut nc = None;
        let mut cnonce = None;
        let mut algorithm = None;
        for (name, value) in parse_params(rest)? {
            let slot = match name.to_ascii_lowercase().as_str() {
                "username" => &mut username,
                "realm" => &mut realm,
                "nonce" => &mut nonce,
                "uri" => &mut uri,
                "response" => &mut response,
                "qop" => &mut qop,
                "nc" => &mut nc,
                "cnonce" => &mut cnonce,
                "algorithm" => &mut algorithm,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return None;
            }
        }

        if qop.is_some() && (nc.is_none() || cnonce.is_none()) {
            return None;
        }
        Some(Credentials {
            username: username?,
            realm: realm?,
            nonce: nonce?,
            uri: uri?,
            response: response?,
            qop,
            nc,
            cnonce,
            algorithm,
        })
    }

    /// Whether `response` is right for `password` and the request `method` (e.g. "GET"): HA1 = MD5(username:realm:password), HA2 = MD5(method:uri), response = MD5(HA1:nonce:nc:cnonce:qop:HA2) with qop=auth, or MD5(HA1:nonce:HA2) without qop (RFC 2069 compatibility). Algorithm absent or "MD5" (case-insensitive) only; anything else (MD5-sess, SHA-256) is false. qop other than "auth" is false. Compare in constant time (subtle).
    pub fn verify(&self, method: &str, password: &str) -> bool {
        if self
            .algorithm
            .as_deref()
            .is_some_and(|algorithm| !algorithm.eq_ignore_ascii_case("MD5"))
        {
            return false;
        }
        let ha1 = md5_hex(&[&self.username, &self.realm, password]);
        let ha2 = md5_hex(&[method, &self.uri]);
        let expected = match (&self.qop, &self.nc, &self.cnonce) {
            (None, _, _) => md5_hex(&[&ha1, &self.nonce, &ha2]),
            (Some(qop), Some(nc), Some(cnonce)) if qop == "auth" => {
                md5_hex(&[&ha1, &self.nonce, nc, cnonce, qop, &ha2])
            }
            _ => return false,
        };
        // The digest is lower-case hex; tolerate clients that send upper case.
        let given = self.response.to_ascii_lowercase();
        expected.as_bytes().ct_eq(given.as_bytes()).into()
    }
}

/// MD5 of the parts joined with `:`, as lower-case hex.
fn md5_hex(parts: &[&str]) -> String {
    let mut hasher = Md5::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(b":");
        }
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// `value` with `\` and `"` escaped, for use inside a quoted string.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | '"') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whitespace allowed between the parts of a header, including folded line breaks.
fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// A token character (RFC 9110 `tchar`), as allowed in parameter names.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Splits a comma-separated list of `name=value` parameters, values quoted or not.
/// Empty list elements are skipped; anything else that is not a parameter is None.
fn parse_params(input: &str) -> Option<Vec<(String, String)>> {
    let mut params = Vec::new();
    let mut rest = input;
    loop {
        rest = rest.trim_start_matches(|c| is_ws(c) || c == ',');
        if rest.is_empty() {
            return Some(params);
        }

        let name_end = rest.find(|c| !is_tchar(c)).unwrap_or(rest.len());
        if name_end == 0 {
            return None;
        }
        let (name, after_name) = rest.split_at(name_end);
        rest = after_name
            .trim_start_matches(is_ws)
            .strip_prefix('=')?
            .trim_start_matches(is_ws);

        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let (value, after) = parse_quoted(quoted)?;
            rest = after;
            value
        } else {
            // Tokens, leniently: anything up to whitespace, a comma or a quote, so that an
            // unquoted `uri=/path` from a sloppy client still parses.
            let end = rest
                .find(|c| is_ws(c) || c == ',' || c == '"')
                .unwrap_or(rest.len());
            if end == 0 {
                return None;
            }
            let (value, after) = rest.split_at(end);
            rest = after;
            value.to_owned()
        };
        params.push((name.to_owned(), value));

        rest = rest.trim_start_matches(is_ws);
        if !rest.is_empty() && !rest.starts_with(',') {
            return None;
        }
    }
}

/// The contents of a quoted string whose opening quote is already consumed, unescaped, and
/// what follows its closing quote. None if the closing quote is missing.
fn parse_quoted(input: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = input.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &input[i + 1..])),
            '\\' => value.push(chars.next()?.1),
            _ => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `Authorization` header value from RFC 2617 section 3.5, line breaks included.
    const RFC2617_HEADER: &str = "Digest username=\"Mufasa\",
                 realm=\"testrealm@host.com\",
                 nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",
                 uri=\"/dir/index.html\",
                 qop=auth,
                 nc=00000001,
                 cnonce=\"0a4f113b\",
                 response=\"6629fae49393a05397450978507c4ef1\",
                 opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";

    const PASSWORD: &str = "Circle Of Life";

    fn rfc2617() -> Credentials {
        Credentials {
            username: "Mufasa".into(),
            realm: "testrealm@host.com".into(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            uri: "/dir/index.html".into(),
            response: "6629fae49393a05397450978507c4ef1".into(),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            cnonce: Some("0a4f113b".into()),
            algorithm: None,
        }
    }

    /// `s` with its last character replaced by a different one.
    fn tweak(s: &str) -> String {
        let mut out: String = s.chars().take(s.chars().count() - 1).collect();
        out.push(if s.ends_with('0') { '1' } else { '0' });
        out
    }

    #[test]
    fn rfc2617_example_verifies() {
        assert!(rfc2617().verify("GET", PASSWORD));
    }

    #[test]
    fn rfc2617_example_fails_with_any_change() {
        let creds = rfc2617();
        assert!(!creds.verify("GET", &tweak(PASSWORD)));
        assert!(!creds.verify("GET", "circle of life"));
        assert!(!creds.verify("GEX", PASSWORD));
        assert!(!creds.verify("POST", PASSWORD));

        let mut c = rfc2617();
        c.uri = tweak(&c.uri);
        assert!(!c.verify("GET", PASSWORD));

        let mut c = rfc2617();
        c.nc = Some("00000002".into());
        assert!(!c.verify("GET", PASSWORD));

        let mut c = rfc2617();
        c.cnonce = c.cnonce.as_deref().map(tweak);
        assert!(!c.verify("GET", PASSWORD));

        let mut c = rfc2617();
        c.nonce = tweak(&c.nonce);
        assert!(!c.verify("GET", PASSWORD));

        let mut c = rfc2617();
        c.username = "mufasa".into();
        assert!(!c.verify("GET", PASSWORD));

        let mut c = rfc2617();
        c.realm = tweak(&c.realm);
        assert!(!c.verify("GET", PASSWORD));

        let mut c = rfc2617();
        c.response = tweak(&c.response);
        assert!(!c.verify("GET", PASSWORD));

        let mut c = rfc2617();
        c.response.pop();
        assert!(!c.verify("GET", PASSWORD));
    }

    #[test]
    fn upper_case_response_and_algorithm_are_accepted() {
        let mut c = rfc2617();
        c.response = c.response.to_ascii_uppercase();
        c.algorithm = Some("md5".into());
        assert!(c.verify("GET", PASSWORD));
        c.algorithm = Some("MD5".into());
        assert!(c.verify("GET", PASSWORD));
    }

    #[test]
    fn other_algorithms_are_refused() {
        for algorithm in ["SHA-256", "MD5-sess", "md5-sess", "SHA-512-256", ""] {
            let mut c = rfc2617();
            c.algorithm = Some(algorithm.into());
            assert!(!c.verify("GET", PASSWORD), "{algorithm}");
        }
        let header = format!("{RFC2617_HEADER}, algorithm=SHA-256");
        let parsed = Credentials::parse(&header).expect("parses");
        assert_eq!(parsed.algorithm.as_deref(), Some("SHA-256"));
        assert!(!parsed.verify("GET", PASSWORD));
    }

    #[test]
    fn other_qops_are_refused() {
        for qop in ["auth-int", "AUTH", "auth,auth-int", ""] {
            let mut c = rfc2617();
            c.qop = Some(qop.into());
            assert!(!c.verify("GET", PASSWORD), "{qop}");
        }
        // Even a response that is right for the qop=auth formula with "auth-int" in place of
        // "auth" is refused (computed independently with Python hashlib).
        let mut c = rfc2617();
        c.qop = Some("auth-int".into());
        c.response = "540d3fa09c3b00a60b56729a4a588b49".into();
        assert!(!c.verify("GET", PASSWORD));
        // Built by hand, qop without nc or cnonce cannot verify either.
        let mut c = rfc2617();
        c.nc = None;
        assert!(!c.verify("GET", PASSWORD));
        let mut c = rfc2617();
        c.cnonce = None;
        assert!(!c.verify("GET", PASSWORD));
    }

    #[test]
    fn rfc2069_form_without_qop_verifies() {
        // Computed independently (Python hashlib):
        // MD5(MD5("Mufasa:testrealm@host.com:Circle Of Life") ":" nonce ":" MD5("GET:/dir/index.html"))
        let mut c = rfc2617();
        c.qop = None;
        c.nc = None;
        c.cnonce = None;
        c.response = "670fd8c2df070c60b045671b8b24ff02".into();
        assert!(c.verify("GET", PASSWORD));
        assert!(!c.verify("GET", &tweak(PASSWORD)));
        assert!(!c.verify("HEAD", PASSWORD));

        // The qop=auth response is not valid in the RFC 2069 form, and vice versa.
        let mut c = rfc2617();
        c.qop = None;
        assert!(!c.verify("GET", PASSWORD));
        let mut c = rfc2617();
        c.response = "670fd8c2df070c60b045671b8b24ff02".into();
        assert!(!c.verify("GET", PASSWORD));
    }

    #[test]
    fn parses_the_rfc2617_header() {
        assert_eq!(Credentials::parse(RFC2617_HEADER), Some(rfc2617()));
        let parsed = Credentials::parse(RFC2617_HEADER).expect("parses");
        assert!(parsed.verify("GET", PASSWORD));
    }

    #[test]
    fn parses_scheme_case_insensitively_with_odd_whitespace() {
        let header = "  dIGEST\tUserName = \"Mufasa\" ,realm=\"testrealm@host.com\",,\r\n \
                      nonce=dcd98b7102dd2f0e8b11d0f600bfb0c093 , uri=/dir/index.html,\
                      qop=\"auth\",nc=00000001,cnonce=0a4f113b,\
                      response=\"6629fae49393a05397450978507c4ef1\", ";
        assert_eq!(Credentials::parse(header), Some(rfc2617()));
    }

    #[test]
    fn parses_quoted_commas_and_escapes() {
        let header = r#"Digest username="a,b \"c\" d\\e", realm="provisor", nonce="n", uri="/x?a=1,2", response="r", opaque="x\"y,z""#;
        let c = Credentials::parse(header).expect("parses");
        assert_eq!(c.username, r#"a,b "c" d\e"#);
        assert_eq!(c.realm, "provisor");
        assert_eq!(c.nonce, "n");
        assert_eq!(c.uri, "/x?a=1,2");
        assert_eq!(c.response, "r");
        assert_eq!(c.qop, None);
        assert_eq!(c.nc, None);
        assert_eq!(c.cnonce, None);
        assert_eq!(c.algorithm, None);
    }

    #[test]
    fn refuses_other_schemes_and_incomplete_headers() {
        assert_eq!(
            Credentials::parse("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            None
        );
        assert_eq!(Credentials::parse(""), None);
        assert_eq!(Credentials::parse("Digest"), None);
        assert_eq!(
            Credentials::parse(&RFC2617_HEADER.replacen("Digest", "Digestive", 1)),
            None
        );
        assert_eq!(
            Credentials::parse(&RFC2617_HEADER.replacen("Digest ", "", 1)),
            None
        );

        let without = |param: &str| {
            let header = RFC2617_HEADER
                .split(',')
                .filter(|p| !p.trim_start_matches("Digest").trim().starts_with(param))
                .collect::<Vec<_>>()
                .join(",");
            let header = if header.starts_with("Digest") {
                header
            } else {
                format!("Digest {header}")
            };
            Credentials::parse(&header)
        };
        assert!(without("opaque=").is_some());
        for param in ["username=", "realm=", "nonce=", "uri=", "response="] {
            assert_eq!(without(param), None, "{param}");
        }
        // qop needs both nc and cnonce.
        assert_eq!(without("nc="), None);
        assert_eq!(without("cnonce="), None);
        // nc and cnonce without qop are the RFC 2069 form.
        assert!(without("qop=").is_some_and(|c| c.qop.is_none()));
    }

    #[test]
    fn refuses_malformed_parameter_lists() {
        let base = r#"Digest username="u", realm="r", nonce="n", uri="/", response="x""#;
        assert!(Credentials::parse(base).is_some());
        for bad in [
            format!(r#"{base}, opaque="unterminated"#),
            format!(r#"{base}, opaque="ends in \"#),
            format!("{base}, opaque="),
            format!("{base}, =value"),
            format!("{base}, opaque"),
            format!(r#"{base} opaque="x""#),
            format!(r#"{base}, username="again""#),
            format!(r#"{base}, Response="again""#),
        ] {
            assert_eq!(Credentials::parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn challenge_names_realm_qop_and_nonce() {
        let nonce = Nonces::new([7; 32], 300).issue(1_700_000_000);
        let fresh = challenge(&nonce, false);
        assert!(fresh.starts_with("Digest "));
        assert!(fresh.contains(r#"realm="provisor""#));
        assert!(fresh.contains(r#"qop="auth""#));
        assert!(fresh.contains("algorithm=MD5"));
        assert!(fresh.contains(&format!(r#"nonce="{nonce}""#)));
        assert!(!fresh.contains("stale"));

        let stale = challenge(&nonce, true);
        assert!(stale.contains("stale=true"));
        assert!(stale.starts_with(&fresh));

        let params = parse_params(&stale["Digest ".len()..]).expect("parses");
        let get = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("realm"), Some(REALM));
        assert_eq!(get("qop"), Some("auth"));
        assert_eq!(get("algorithm"), Some("MD5"));
        assert_eq!(get("nonce"), Some(nonce.as_str()));
        assert_eq!(get("stale"), Some("true"));
    }

    #[test]
    fn challenge_quotes_the_nonce() {
        let header = challenge(r#"a"b\c"#, false);
        let params = parse_params(&header["Digest ".len()..]).expect("parses");
        assert!(params.contains(&("nonce".to_owned(), r#"a"b\c"#.to_owned())));
    }

    const NOW: u64 = 1_700_000_000;
    const LIFETIME: u64 = 300;

    fn nonces() -> Nonces {
        Nonces::new([42; 32], LIFETIME)
    }

    #[test]
    fn nonce_has_the_documented_shape() {
        let nonce = nonces().issue(NOW);
        let (ts, mac) = nonce.split_once('.').expect("has a dot");
        assert_eq!(ts, format!("{NOW:x}"));
        let mut input = vec![42u8; 32];
        input.extend_from_slice(ts.as_bytes());
        assert_eq!(mac, &hex::encode(Sha256::digest(&input))[..32]);
    }

    #[test]
    fn nonce_is_valid_until_its_lifetime_ends() {
        let n = nonces();
        let nonce = n.issue(NOW);
        assert_eq!(n.check(&nonce, NOW), NonceState::Valid);
        assert_eq!(n.check(&nonce, NOW + LIFETIME - 1), NonceState::Valid);
        assert_eq!(n.check(&nonce, NOW + LIFETIME), NonceState::Valid);
        assert_eq!(n.check(&nonce, NOW + LIFETIME + 1), NonceState::Stale);
        assert_eq!(n.check(&nonce, NOW + 100 * LIFETIME), NonceState::Stale);
        assert_eq!(n.check(&nonce, u64::MAX), NonceState::Stale);
    }

    #[test]
    fn nonce_from_the_future_is_invalid_beyond_60_seconds() {
        let n = nonces();
        assert_eq!(n.check(&n.issue(NOW + 60), NOW), NonceState::Valid);
        assert_eq!(n.check(&n.issue(NOW + 61), NOW), NonceState::Invalid);
        assert_eq!(n.check(&n.issue(u64::MAX), NOW), NonceState::Invalid);
        assert_eq!(n.check(&n.issue(u64::MAX), u64::MAX), NonceState::Valid);
    }

    #[test]
    fn nonce_from_another_key_is_invalid() {
        let nonce = Nonces::new([1; 32], LIFETIME).issue(NOW);
        assert_eq!(nonces().check(&nonce, NOW), NonceState::Invalid);
        // Even when it is also old: a stranger's nonce is never merely stale.
        assert_eq!(
            nonces().check(&nonce, NOW + 10 * LIFETIME),
            NonceState::Invalid
        );
        let a = Nonces::random(LIFETIME);
        let b = Nonces::random(LIFETIME);
        assert_eq!(a.check(&a.issue(NOW), NOW), NonceState::Valid);
        assert_eq!(b.check(&a.issue(NOW), NOW), NonceState::Invalid);
    }

    #[test]
    fn tampered_nonce_is_invalid() {
        let n = nonces();
        let nonce = n.issue(NOW);
        let (ts, mac) = nonce.split_once('.').expect("has a dot");

        // Moved to another time, keeping the hash.
        let later = format!("{:x}.{mac}", NOW + 1);
        assert_eq!(n.check(&later, NOW), NonceState::Invalid);
        // Same time spelled differently.
        assert_eq!(n.check(&format!("0{ts}.{mac}"), NOW), NonceState::Invalid);
        assert_eq!(n.check(&format!("+{ts}.{mac}"), NOW), NonceState::Invalid);
        // Hash changed, truncated or extended.
        assert_eq!(n.check(&tweak(&nonce), NOW), NonceState::Invalid);
        assert_eq!(n.check(&nonce[..nonce.len() - 1], NOW), NonceState::Invalid);
        assert_eq!(n.check(&format!("{nonce}0"), NOW), NonceState::Invalid);
        assert_eq!(
            n.check(&nonce.to_ascii_uppercase(), NOW),
            NonceState::Invalid
        );
        assert_eq!(n.check(&format!("{ts}."), NOW), NonceState::Invalid);
    }

    #[test]
    fn garbage_nonce_is_invalid() {
        let n = nonces();
        for garbage in [
            "",
            "x",
            "zz.zz",
            ".",
            ".abc",
            "6553f100",
            "10000000000000000.0123456789abcdef0123456789abcdef",
            "ééé.ééé",
        ] {
            assert_eq!(n.check(garbage, NOW), NonceState::Invalid, "{garbage:?}");
        }
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let shown = format!("{:?}", Nonces::new([0xab; 32], LIFETIME));
        assert_eq!(shown, "Nonces { .. }");
        assert!(!shown.contains("171"));
    }
}
