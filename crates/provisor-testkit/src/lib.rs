//! Test helpers: `spawn_app()` runs the real server on port 0 against a fresh database of
//! either backend, with the first operator token ready, and `TestApp` has one typed
//! helper per common API call so tests read as what a user does.
#![forbid(unsafe_code)]

mod browser;
pub use browser::{Browser, csrf_in, form_body};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use provisor::config::{Config, Secret};
use provisor::startup;
use provisor_domain::secret::SecretString;
use provisor_store::Store;
use provisor_store::testdb::fresh_postgres;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub address: SocketAddr,
    pub base: String,
    /// `https://127.0.0.1:PORT` where the configuration asks for HTTPS.
    pub https_base: Option<String>,
    pub client: reqwest::Client,
    /// The operator token the first start printed.
    pub token: String,
    pub store: Arc<dyn Store>,
    pub config: Config,
    pub data_dir: TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A configuration for a fresh installation of `backend` in a new temporary directory;
/// `None` if that backend is not available here (see `provisor_store::testdb`).
pub async fn fresh_config(backend: Backend) -> Option<(Config, TempDir)> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database_url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(Secret(SecretString::new(fresh_postgres().await?))),
    };
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("an address"),
        tls_listen: "127.0.0.1:0".parse().expect("an address"),
        data_dir: dir.path().join("data"),
        database_url,
        ..Config::default()
    };
    Some((config, dir))
}

/// Starts Provisor as `provisor serve` would, on a free port.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// As `spawn_app`, with the configuration changed by `change` first.
pub async fn spawn_app_with(backend: Backend, change: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let (mut config, data_dir) = fresh_config(backend).await?;
    change(&mut config);
    Some(start(config, data_dir, None).await)
}

/// Starts Provisor on `config` (free ports); `token`: the operator token of an earlier
/// start, none for a fresh installation (which issues one).
async fn start(config: Config, data_dir: TempDir, token: Option<String>) -> TestApp {
    let store = startup::open_store(&config).await.expect("the store opens");
    let issued = startup::bootstrap_token(store.as_ref(), &config.data_dir)
        .await
        .expect("the first token");
    let token = match (token, issued) {
        (Some(t), _) => SecretString::new(t),
        (None, Some(t)) => t,
        (None, None) => panic!("a fresh installation issues a token"),
    };
    let listeners = startup::bind(&config).await.expect("free ports");
    let address = listeners.http.local_addr().expect("a bound address");
    let https_address = listeners
        .https
        .as_ref()
        .map(|l| l.local_addr().expect("a bound address"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run_config = Config {
        shutdown_grace_seconds: 5,
        ..config.clone()
    };
    let server = tokio::spawn({
        let store = store.clone();
        async move {
            startup::run(store, &run_config, listeners, async move {
                let _ = rx.await;
            })
            .await
        }
    });
    TestApp {
        address,
        base: format!("http://{address}"),
        https_base: https_address.map(|a| format!("https://{a}")),
        client: reqwest::Client::new(),
        token: token.expose().to_owned(),
        store,
        config,
        data_dir,
        shutdown: Some(tx),
        server: Some(server),
    }
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected answer: {}",
            self.text
        );
        if self.text.is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }
    /// Asserts a problem document of this status and `type` suffix; returns it.
    #[track_caller]
    pub fn problem(&self, status: u16, kind: &str) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected answer: {}",
            self.text
        );
        assert_eq!(self.headers["content-type"], "application/problem+json");
        let p = self.json();
        assert_eq!(p["type"], format!("urn:provisor:problem:{kind}"), "{p}");
        assert_eq!(p["status"], status);
        p
    }
}

impl TestApp {
    pub fn data_path(&self) -> PathBuf {
        self.config.data_dir.clone()
    }

    /// A request with `token` (or none), and an optional JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.expect("the server answers");
        Answer {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.expect("a body"),
        }
    }

    /// A request with a raw `body` of `content_type`, with `token` (or none).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> Answer {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body.to_owned());
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        read(request).await
    }

    /// As the operator.
    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, Some(&self.token), None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(&self.token), Some(body))
            .await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(&self.token), Some(body))
            .await
    }
    pub async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, Some(&self.token), None)
            .await
    }

    pub async fn create_domain(&self, name: &str) -> Value {
        self.post("/api/v1/domains", json!({"name": name}))
            .await
            .expect(201)
    }
    pub async fn create_category(&self, domain: &str, name: &str, provisioning: bool) -> Value {
        self.post(
            &format!("/api/v1/domains/{domain}/categories"),
            json!({"name": name, "provisioning": provisioning}),
        )
        .await
        .expect(201)
    }
    pub async fn create_user(&self, domain: &str, username: &str) -> Value {
        self.post(
            &format!("/api/v1/domains/{domain}/users"),
            json!({"username": username, "display_name": username.to_uppercase()}),
        )
        .await
        .expect(201)
    }
    /// User `owner` with two SIP accounts (`{owner}1`, `{owner}2`, passwords
    /// `pw-{owner}-1`, `pw-{owner}-2`), and a device of theirs (`device`: its fields) with
    /// both as its lines.
    pub async fn device_with_two_lines(&self, domain: &str, owner: &str, device: Value) -> Value {
        self.create_user(domain, owner).await;
        for n in 1..=2 {
            self.create_account(
                domain,
                owner,
                &format!("{owner}{n}"),
                &format!("pw-{owner}-{n}"),
            )
            .await;
        }
        let mut device = device;
        device["user"] = json!(owner);
        device["lines"] = json!([format!("{owner}1"), format!("{owner}2")]);
        self.create_device(domain, device).await
    }
    pub async fn create_account(
        &self,
        domain: &str,
        username: &str,
        sip_user: &str,
        password: &str,
    ) -> Value {
        self.post(
            &format!("/api/v1/domains/{domain}/users/{username}/accounts"),
            json!({"sip_user": sip_user, "password": password, "registrar": "sip.example.com"}),
        )
        .await
        .expect(201)
    }
    pub async fn create_device(&self, domain: &str, body: Value) -> Value {
        self.post(&format!("/api/v1/domains/{domain}/devices"), body)
            .await
            .expect(201)
    }
    /// A new domain-admin token for `domain`.
    pub async fn domain_admin_token(&self, domain: &str) -> String {
        let t = self.post("/api/v1/tokens", json!({"role": "domain-admin", "domain": domain, "name": format!("{domain} admin")})).await.expect(201);
        t["token"].as_str().expect("a token").to_owned()
    }

    /// Another node of the same installation: a server of its own (its own data directory,
    /// with this one's encryption key, and ports) on the same PostgreSQL database, as a
    /// second machine behind a load balancer; `change` alters its configuration.
    pub async fn another_node(&self, change: impl FnOnce(&mut Config)) -> TestApp {
        assert!(
            self.config.database_url.is_some(),
            "nodes share a PostgreSQL database"
        );
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).expect("a data directory");
        std::fs::copy(
            self.config.data_dir.join("secret.key"),
            data_dir.join("secret.key"),
        )
        .expect("the installation's key");
        let mut config = Config {
            data_dir,
            ..self.config.clone()
        };
        change(&mut config);
        start(config, dir, Some(self.token.clone())).await
    }

    /// Stops the server as SIGTERM would, and starts it again on the same data directory
    /// and database (on new ports).
    pub async fn restart(mut self) -> TestApp {
        self.shutdown_and_wait().await;
        let data_dir = std::mem::replace(
            &mut self.data_dir,
            tempfile::tempdir().expect("a temporary directory"),
        );
        start(self.config.clone(), data_dir, Some(self.token.clone())).await
    }

    async fn shutdown_and_wait(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("the server task")
                .expect("a clean shutdown");
        }
    }

    /// Stops the server as SIGTERM would and waits for it.
    pub async fn stop(mut self) {
        self.shutdown_and_wait().await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Runs one async test body on both backends: `both!(name, body_fn)` defines
/// `name::sqlite` and `name::postgres`, each calling `body_fn(app)`;
/// `both!(name, body_fn, configure)` first changes the configuration with
/// `configure(&mut Config)`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:ident) => {
        $crate::both!($name, $body, $crate::unchanged);
    };
    ($name:ident, $body:ident, $configure:path) => {
        mod $name {
            // Two workers: a test blocking on a CLI process must not stop the in-process
            // server (its contact writer may hold SQLite's write lock meanwhile).
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(app) = $crate::spawn_app_with($crate::Backend::Sqlite, $configure).await
                {
                    super::$body(app).await;
                }
            }
            // Two workers: a test blocking on a CLI process must not stop the in-process
            // server (its contact writer may hold SQLite's write lock meanwhile).
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) =
                    $crate::spawn_app_with($crate::Backend::Postgres, $configure).await
                {
                    super::$body(app).await;
                }
            }
        }
    };
}

/// The configuration as `fresh_config` makes it.
pub fn unchanged(_: &mut Config) {}

/// A desk phone as the server sees it: a User-Agent, the directory URL it fetches from
/// (moved when a file tells it to), and the ETags of what it has.
pub struct Phone {
    pub user_agent: String,
    /// The directory URL, ending in `/`.
    pub url: String,
    client: reqwest::Client,
    etags: std::collections::HashMap<String, String>,
}

impl Phone {
    /// A factory-fresh phone pointed (by DHCP option 66, say) at the plain phone route.
    pub fn new(app: &TestApp, user_agent: &str) -> Phone {
        Phone {
            user_agent: user_agent.to_owned(),
            url: format!("{}/p/", app.base),
            client: reqwest::Client::new(),
            etags: Default::default(),
        }
    }

    /// The same phone with its own HTTP client (one trusting a test CA, with a client
    /// certificate, …).
    pub fn with_client(mut self, client: reqwest::Client) -> Phone {
        self.client = client;
        self
    }

    /// Fetches `file` from the phone's directory URL, sending the ETag it has for it.
    pub async fn get(&mut self, file: &str) -> Answer {
        let url = format!("{}{file}", self.url);
        let mut request = self.client.get(&url).header("user-agent", &self.user_agent);
        if let Some(tag) = self.etags.get(&url) {
            request = request.header("if-none-match", tag);
        }
        let answer = read(request).await;
        if let Some(tag) = answer.headers.get("etag").and_then(|v| v.to_str().ok()) {
            self.etags.insert(url, tag.to_owned());
        }
        answer
    }

    /// A request to the phone's directory with extra headers, remembering nothing.
    pub async fn get_with(&self, file: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = self
            .client
            .get(format!("{}{file}", self.url))
            .header("user-agent", &self.user_agent);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        read(request).await
    }

    pub async fn put(&self, file: &str, body: &str) -> Answer {
        read(
            self.client
                .put(format!("{}{file}", self.url))
                .header("user-agent", &self.user_agent)
                .body(body.to_owned()),
        )
        .await
    }

    /// Follows a file's instruction to fetch from another directory URL.
    pub fn move_to(&mut self, url: &str) {
        self.url = url.to_owned();
    }
}

async fn read(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("the server answers");
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        text: response.text().await.expect("a body"),
    }
}

impl TestApp {
    /// An HTTPS client trusting the self-signed certificate this installation made, with
    /// `identity` (PEM certificate and key) as its client certificate if given.
    pub fn https_client(&self, identity: Option<&str>) -> reqwest::Client {
        self.https_client_with(identity, reqwest::Client::builder())
    }

    /// `https_client` made from `builder` (for other settings, such as redirects).
    pub fn https_client_with(
        &self,
        identity: Option<&str>,
        builder: reqwest::ClientBuilder,
    ) -> reqwest::Client {
        let pem = std::fs::read(self.config.data_dir.join("tls-self-signed.crt"))
            .expect("the self-signed certificate");
        let mut builder = builder
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("PEM"));
        if let Some(identity) = identity {
            builder = builder
                .identity(reqwest::Identity::from_pem(identity.as_bytes()).expect("an identity"));
        }
        builder.build().expect("a client")
    }

    /// The domain's events of `kind` (the first 1000 events), oldest first.
    pub async fn events_of(&self, domain: &str, kind: &str) -> Vec<Value> {
        let events = self
            .get(&format!("/api/v1/domains/{domain}/events?limit=1000"))
            .await
            .expect(200);
        events
            .as_array()
            .expect("a list of events")
            .iter()
            .filter(|e| e["kind"] == kind)
            .cloned()
            .collect()
    }

    /// Polls `path` (as the operator) until `done` holds for its JSON, for what the server
    /// writes in the background; panics after 10 seconds.
    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let r = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await;
        r.unwrap().text().await.unwrap()
    }

    pub async fn eventually(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let v = self.get(path).await.expect(200);
            if done(&v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still not as expected after 10 s: {v}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
