//! A minimal browser for console tests: keeps cookies (by name, sent only under their
//! `Path`), does not follow redirects (so tests see them), and fills in the CSRF token of
//! the last page it loaded.

use std::collections::HashMap;
use std::sync::Mutex;

use reqwest::Method;

use crate::{Answer, TestApp, read};

pub struct Browser {
    client: reqwest::Client,
    base: String,
    /// name → (value, path)
    cookies: Mutex<HashMap<String, (String, String)>>,
    csrf: Mutex<Option<String>>,
}

impl Browser {
    pub fn new(app: &TestApp) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client"),
            base: app.base.clone(),
            cookies: Mutex::new(HashMap::new()),
            csrf: Mutex::new(None),
        }
    }

    /// A browser of the installation's HTTPS listener (trusting its self-signed
    /// certificate).
    pub fn over_https(app: &TestApp) -> Browser {
        Browser {
            client: app.https_client_with(
                None,
                reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()),
            ),
            base: app.https_base.clone().expect("HTTPS configured"),
            cookies: Mutex::new(HashMap::new()),
            csrf: Mutex::new(None),
        }
    }

    /// The cookies this browser would send to `path`, as a `Cookie` header value.
    pub fn cookie_header(&self, path: &str) -> String {
        let cookies = self.cookies.lock().unwrap();
        let mut pairs: Vec<String> = cookies
            .iter()
            .filter(|(_, (_, p))| path == p || path.starts_with(&format!("{p}/")) || p == "/")
            .map(|(k, (v, _))| format!("{k}={v}"))
            .collect();
        pairs.sort();
        pairs.join("; ")
    }

    pub fn has_cookie(&self, name: &str) -> bool {
        self.cookies.lock().unwrap().contains_key(name)
    }

    fn keep(&self, a: &Answer) {
        let mut cookies = self.cookies.lock().unwrap();
        for v in a.headers.get_all("set-cookie") {
            let text = v.to_str().unwrap_or_default();
            let mut parts = text.split(';').map(str::trim);
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let mut path = "/".to_owned();
            let mut gone = value.is_empty();
            for attr in parts {
                match attr.split_once('=') {
                    Some((k, v)) if k.eq_ignore_ascii_case("path") => path = v.to_owned(),
                    Some((k, "0")) if k.eq_ignore_ascii_case("max-age") => gone = true,
                    _ => {}
                }
            }
            if gone {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_owned(), (value.to_owned(), path));
            }
        }
        if let Some(token) = csrf_in(&a.text) {
            *self.csrf.lock().unwrap() = Some(token);
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        form: Option<String>,
    ) -> Answer {
        let mut r = self.client.request(method, format!("{}{path}", self.base));
        let cookies = self.cookie_header(path.split('?').next().unwrap_or(path));
        if !cookies.is_empty() {
            r = r.header("cookie", cookies);
        }
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        if let Some(body) = form {
            r = r
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
        }
        let a = read(r).await;
        self.keep(&a);
        a
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.request(Method::GET, path, &[], None).await
    }

    /// Posts `fields` with the CSRF token of the last page loaded.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let csrf = self.csrf.lock().unwrap().clone().unwrap_or_default();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// Posts exactly `fields` (no CSRF token added).
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body = form_body(fields);
        self.request(Method::POST, path, &[], Some(body)).await
    }

    /// Signs in at `realm` (`/console` or `/self`); the answer to the form.
    pub async fn sign_in(&self, realm: &str, login: &str, password: &str) -> Answer {
        self.get(&format!("{realm}/signin")).await;
        self.post(
            &format!("{realm}/signin"),
            &[("login", login), ("password", password)],
        )
        .await
    }
}

pub fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The CSRF token of the first form of a page.
pub fn csrf_in(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    let end = html[at..].find('"')?;
    Some(html[at..at + end].to_owned())
}
