//! The bodies of the fuzz targets (issue 11): one function per parser that reads bytes
//! from outside, calling the parser production uses and checking what must hold of its
//! answer. `fuzz/fuzz_targets/<target>.rs` calls these under libFuzzer; `tests/corpus.rs`
//! replays the committed corpus and the regressions through them in every test run.
//!
//! A function panics only when an invariant breaks (or the parser itself panics): that is
//! a finding. Inputs made of several parts (a file name and a User-Agent, a vendor and a
//! template) are split at their first newlines, so the corpus files stay readable.
//!
//! This crate holds no parsing logic of its own: where a parser sat inside a handler, the
//! handler's crate exposes it (`provisor_http::softphone::AcrobitsQuery::from_request`,
//! `provisor_http::innovaphone::appws::Msg`, `provisor_http::phone::mac_in`).

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, Method, Uri, header::AUTHORIZATION};
use provisor_domain::catalog::Detected;
use provisor_domain::csv::{self, COLUMNS, Row};
use provisor_domain::digest::{Credentials, Nonces};
use provisor_domain::innovaphone::{self as inno, Frame, Identify, SysclientReport};
use provisor_domain::{Mac, code, template};
use provisor_render::{Renderer, Vendors, threecx};

/// The built-in catalog and templates, loaded once per process.
fn renderer() -> &'static Renderer {
    static R: OnceLock<Renderer> = OnceLock::new();
    R.get_or_init(|| {
        Renderer::new(Vendors::builtin().expect("the built-in vendors load"))
            .expect("the built-in templates compile")
    })
}

/// `data` cut at its first newline: the line (without `\r`) and the rest, if there is one.
fn first_line(data: &str) -> (&str, Option<&str>) {
    match data.split_once('\n') {
        Some((line, rest)) => (line.strip_suffix('\r').unwrap_or(line), Some(rest)),
        None => (data, None),
    }
}

/// Text as a phone's header or a form gives it: bytes that are not UTF-8 are replaced.
fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// A phone's request: the file name on the first line, the User-Agent (if any) after it.
/// Attribution (`Catalog::detect`, and `detect_for` as the device record's vendor asks),
/// the User-Agent on its own, the MAC runs in the name and the log's path.
pub fn detect(data: &[u8]) {
    let data = text(data);
    let (file, user_agent) = first_line(&data);
    let catalog = renderer().catalog();
    let found = catalog.detect(file, user_agent);
    if let Detected::Found(f) = &found {
        // Among the attributed vendor alone the same file is found.
        assert_eq!(
            catalog.detect_for(&f.vendor.id, file, user_agent),
            found,
            "detect_for the vendor detect found disagrees"
        );
        // A MAC comes from the file name or the vendor's own User-Agent.
        if let Some(mac) = f.mac {
            let in_agent = user_agent
                .and_then(|ua| catalog.user_agent(ua))
                .is_some_and(|a| a.vendor.id == f.vendor.id && a.mac == Some(mac));
            let in_file = file
                .to_ascii_lowercase()
                .replace([':', '-', '.'], "")
                .contains(&mac.to_string());
            assert!(
                in_agent || in_file,
                "{mac} is neither in {file:?} nor in the User-Agent"
            );
        }
    }
    for v in catalog.vendors() {
        let _ = catalog.detect_for(&v.id, file, user_agent);
    }
    if let Some(ua) = user_agent {
        let _ = catalog.user_agent(ua);
    }
    if let Some(mac) = provisor_http::phone::mac_in(file) {
        assert!(file.to_ascii_lowercase().contains(&mac.to_string()));
    }
    let path = format!("/p/{file}");
    let _ = provisor_http::phone::loggable_path(&path, "/p");
}

/// A MAC as an admin, a CSV, a file name or a message writes it: what parses prints in one
/// form that parses to the same MAC, and a stored template's `{mac}` file name finds it.
pub fn mac(data: &[u8]) {
    let data = text(data);
    let Ok(mac) = Mac::parse(&data) else {
        let _ = template::file_mac("cfg{mac}.xml", &data);
        return;
    };
    let plain = mac.to_string();
    assert_eq!(plain.len(), 12);
    assert_eq!(Mac::parse(&plain), Ok(mac), "{data:?} prints as {plain}");
    assert_eq!(Mac::parse(&mac.to_upper()), Ok(mac));
    assert_eq!(mac.to_upper(), plain.to_uppercase());
    assert_eq!(plain.parse::<Mac>(), Ok(mac));
    for file in [
        format!("cfg{plain}.xml"),
        format!("cfg{}.xml", mac.to_upper()),
    ] {
        assert_eq!(template::file_mac("cfg{mac}.xml", &file), Some(mac));
    }
}

/// A bulk import: the plan or its refusals. Then the input's lines, cut at commas into
/// cells, are exported with `csv::write` and imported again: an export is always read as
/// CSV (its refusals are about values, never the format), and a password comes back
/// exactly as written.
pub fn csv_import(data: &[u8]) {
    let plan = csv::read(data);
    for e in &plan.errors {
        assert!(e.line >= 1, "a refusal on line {}", e.line);
    }
    let _ = csv::parse(data);

    let input = text(data);
    let rows: Vec<Row> = input
        .lines()
        .take(64)
        .map(|line| {
            let mut row = Row::default();
            for (column, cell) in COLUMNS.iter().zip(line.split(',')) {
                row.set(column, cell);
            }
            row
        })
        .collect();
    let exported = csv::write(&rows);
    let again = csv::read(exported.as_bytes());
    for e in &again.errors {
        // The format's refusals (`csv_error`); a value's name their field first.
        let format = e.reason == "cannot be read as CSV"
            || e.reason == "is not valid UTF-8"
            || (e.reason.starts_with("has ") && e.reason.contains(" cells, the header has "));
        assert!(
            !format && e.line > 1,
            "an export is not read back: line {}: {}\n{exported}",
            e.line,
            e.reason
        );
    }
    for account in &again.accounts {
        let Some(password) = &account.password else {
            continue;
        };
        assert!(
            rows.iter()
                .any(|r| r.get("sip_password") == password.expose()),
            "a password came back changed: {:?}",
            password.expose()
        );
    }
}

/// A 3CX phone template: the vendor on the first line, the XML after it. The conversion
/// on its own, then as the import route runs it (converted, then each file checked as an
/// upload is).
pub fn threecx_import(data: &[u8]) {
    let Ok(data) = std::str::from_utf8(data) else {
        return;
    };
    let (vendor, xml) = first_line(data);
    let xml = xml.unwrap_or(vendor);
    if let Ok(files) = threecx::import(xml) {
        for f in &files {
            assert!(f.name.contains("{mac}"), "imported {:?}", f.name);
            assert!(
                template::template_name(&f.name).is_ok(),
                "imported {:?}",
                f.name
            );
        }
    }
    let _ = renderer().import_3cx(vendor, xml);
}

/// A template upload: the vendor on the first line, the template's name on the second, the
/// source after them; checked as the API, CLI and console check it (`Renderer::storable`).
pub fn template_upload(data: &[u8]) {
    let Ok(data) = std::str::from_utf8(data) else {
        return;
    };
    let (vendor, rest) = first_line(data);
    let (name, source) = first_line(rest.unwrap_or_default());
    let source = source.unwrap_or_default();
    if let Ok(stored) = renderer().storable(vendor, name, source) {
        assert!(template::template_name(&stored).is_ok());
    }
}

/// A softphone's sign-in: the bytes as SessionTalk's query string (read by axum's `Query`,
/// as its route does), as Acrobits' query (GET) and as its form (POST).
pub fn softphone(data: &[u8]) {
    let raw = text(data);
    if let Ok(uri) = format!("/sessiontalk/provisioning?{raw}").parse::<Uri>() {
        let _ =
            axum::extract::Query::<provisor_http::softphone::SessionTalkQuery>::try_from_uri(&uri);
    }
    let _ = provisor_http::softphone::AcrobitsQuery::from_request(&Method::GET, Some(&raw), &[]);
    let _ = provisor_http::softphone::AcrobitsQuery::from_request(&Method::POST, None, data);
}

/// An AppWebsocket text message from a PBX: decoded as the connection does, its login
/// digest, and the phone a `ProvisioningPhone` hands over (decrypted with a fixed key).
pub fn appws(data: &[u8]) {
    // WebSocket text messages are UTF-8 (axum refuses others before they arrive).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(msg) = provisor_http::innovaphone::appws::Msg::decode(text) else {
        return;
    };
    let _ = msg.kind();
    let digest = inno::login_digest(&msg.login_fields(), "1234567890123456", "app-password");
    assert!(inno::digest_matches(&digest, &digest));
    let key = inno::session_key("1234567890123456", "app-password");
    if let Ok(phone) = msg.pbx_phone("a.example", "pbx.a.example", key.expose()) {
        assert!(phone.hwid.chars().count() <= 64);
        if let Some(code) = &phone.code {
            assert_eq!(code::normalize(code).as_deref(), Some(code.as_str()));
        }
    }
}

/// A binary sysclient message: the frame, which writes back as the same bytes; an Identify
/// read as the endpoint reads it, with what it takes from one.
pub fn sysclient(data: &[u8]) {
    let Ok(frame) = Frame::parse(data) else {
        return;
    };
    assert_eq!(frame.to_bytes(), data, "{frame:?} writes other bytes");
    let Frame::Admin { kind, json } = frame else {
        return;
    };
    if kind != inno::admin::IDENTIFY {
        return;
    }
    let Ok(id) = serde_json::from_slice::<Identify>(json) else {
        return;
    };
    let _ = Mac::parse(&id.id);
    let report = SysclientReport::from(&id);
    assert!(report.product.chars().count() <= 200);
    assert!(report.interfaces.len() <= 16);
    let _ = inno::sysclient_digest(&id.id, &id.product, &id.version, "challenge", "password");
    if let Some(c) = &id.provisioning_code {
        let _ = code::normalize(c);
    }
}

/// An `Authorization` header a phone sends: Digest credentials (parsed, written again with
/// every value quoted, parsed to the same; their response checked, their nonce checked),
/// and Basic (the code prompt's, the portal's).
pub fn authorization(data: &[u8]) {
    let header = text(data);
    if let Some(c) = Credentials::parse(&header) {
        assert_eq!(Credentials::parse(&canonical(&c)), Some(c.clone()));
        let _ = c.verify("GET", "password");
        let nonces = Nonces::new([7; 32], 300);
        let _ = nonces.check(&c.nonce, 1_000_000);
    }
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value);
        if let Some((_, password)) = provisor_http::auth::basic_credentials(&headers) {
            let _ = code::normalize(&password);
        }
    }
}

/// Credentials written back as a header, every value a quoted string.
fn canonical(c: &Credentials) -> String {
    let quote = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    let mut fields = vec![
        ("username", Some(&c.username)),
        ("realm", Some(&c.realm)),
        ("nonce", Some(&c.nonce)),
        ("uri", Some(&c.uri)),
        ("response", Some(&c.response)),
        ("qop", c.qop.as_ref()),
        ("nc", c.nc.as_ref()),
        ("cnonce", c.cnonce.as_ref()),
        ("algorithm", c.algorithm.as_ref()),
    ];
    fields.retain(|(_, v)| v.is_some());
    let params: Vec<String> = fields
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}=\"{}\"", quote(v))))
        .collect();
    format!("Digest {}", params.join(", "))
}

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus replay.
pub const TARGETS: [(&str, Target); 9] = [
    ("detect", detect),
    ("mac", mac),
    ("csv_import", csv_import),
    ("threecx_import", threecx_import),
    ("template_upload", template_upload),
    ("softphone", softphone),
    ("appws", appws),
    ("sysclient", sysclient),
    ("authorization", authorization),
];
