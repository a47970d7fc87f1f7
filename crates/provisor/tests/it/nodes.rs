//! Several nodes on one PostgreSQL, as real `provisor serve` processes (so a node can be
//! killed with SIGKILL): work one node does at a time is done once, and a killed node's
//! work is taken over when its lease runs out.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use provisor_testkit::TestApp;
use serde_json::{Value, json};

const DOMAIN: &str = "nodes.example.com";

/// One `provisor serve` process.
struct Node {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
    data_dir: std::path::PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Node {
    /// A node named `name` on `database`; with `key_of`, that node's encryption key.
    async fn start(name: &str, database: &str, key_of: Option<&Node>) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).unwrap();
        if let Some(other) = key_of {
            std::fs::copy(
                other.data_dir.join("secret.key"),
                data_dir.join("secret.key"),
            )
            .unwrap();
        }
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_provisor"))
            .args([
                "--data-dir",
                data_dir.to_str().unwrap(),
                "serve",
                "--listen",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .env("PROVISOR_DATABASE_URL", database)
            .env("PROVISOR_NODE_ID", name)
            .env("PROVISOR_WEBHOOK_LEASE_SECONDS", "2")
            .env("PROVISOR_WEBHOOK_RETRY_BASE_SECONDS", "1")
            .env("PROVISOR_WEBHOOK_TIMEOUT_SECONDS", "60")
            .env("PROVISOR_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("provisor starts");
        let node = Node {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
            data_dir,
        };
        let client = client();
        for _ in 0..300 {
            if client
                .get(format!("{}/healthz", node.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return node;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("node {name} did not come up");
    }

    fn kill(&mut self) {
        // SIGKILL: nothing is given back, no lease released.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// The operator API of `node`, with the installation's token (the first node's file).
async fn api(node: &Node, token: &str, method: reqwest::Method, path: &str, body: Value) -> Value {
    let r = client()
        .request(method.clone(), format!("{}{path}", node.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// What the webhook receiver got: (node, event id), and whether it holds the first
/// request without answering (as a receiver that hangs while the node delivering dies).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(String, String)>>>,
    hold_first: Arc<std::sync::atomic::AtomicBool>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap) -> StatusCode {
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let first = {
        let mut got = r.got.lock().unwrap();
        got.push((header("x-provisor-node"), header("x-provisor-event-id")));
        got.len() == 1
    };
    if first && r.hold_first.load(std::sync::atomic::Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    StatusCode::OK
}

async fn receiver(hold_first: bool) -> (Receiver, String) {
    let r = Receiver::default();
    r.hold_first
        .store(hold_first, std::sync::atomic::Ordering::SeqCst);
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, url)
}

impl Receiver {
    async fn until(&self, done: impl Fn(&[(String, String)]) -> bool) -> Vec<(String, String)> {
        for _ in 0..300 {
            let got = self.got.lock().unwrap().clone();
            if done(&got) {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the webhook never got what was expected: {:?}",
            self.got.lock().unwrap()
        );
    }
}

/// The installation's token (the first node's file), and the domain made through `first`.
async fn domain_through(first: &Node) -> String {
    let token = std::fs::read_to_string(first.data_dir.join("operator-token"))
        .unwrap()
        .trim()
        .to_owned();
    let body = json!({"name": DOMAIN});
    api(
        first,
        &token,
        reqwest::Method::POST,
        "/api/v1/domains",
        body,
    )
    .await;
    token
}

/// Three nodes on a fresh database, the domain with a user and an account, and the token.
async fn three_nodes() -> Option<([Node; 3], String)> {
    let database = provisor_store::testdb::fresh_postgres().await?;
    let first = Node::start("n1", &database, None).await;
    let second = Node::start("n2", &database, Some(&first)).await;
    let third = Node::start("n3", &database, Some(&first)).await;
    let token = domain_through(&first).await;
    let post = reqwest::Method::POST;
    api(
        &second,
        &token,
        post.clone(),
        &format!("/api/v1/domains/{DOMAIN}/users"),
        json!({"username": "alice"}),
    )
    .await;
    api(
        &third,
        &token,
        post,
        &format!("/api/v1/domains/{DOMAIN}/users/alice/accounts"),
        json!({"sip_user": "alice1", "password": "pw-alice-1"}),
    )
    .await;
    Some(([first, second, third], token))
}

async fn add_webhook(node: &Node, token: &str, url: &str) {
    api(
        node,
        token,
        reqwest::Method::POST,
        &format!("/api/v1/domains/{DOMAIN}/webhooks"),
        json!({"url": url}),
    )
    .await;
}

/// A phone redeems a fresh code at `node`: one `device.provisioned` event.
async fn provisioned(node: &Node, token: &str, mac: &str) {
    let code = api(
        node,
        token,
        reqwest::Method::POST,
        &format!("/api/v1/domains/{DOMAIN}/codes"),
        json!({"user": "alice"}),
    )
    .await["code"]
        .clone();
    let r = client()
        .post(format!("{}/p/activate", node.base))
        .json(&json!({"code": code, "mac": mac}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_deliver_each_event_once() {
    let Some((nodes, token)) = three_nodes().await else {
        return;
    };
    let (r, url) = receiver(false).await;
    add_webhook(&nodes[0], &token, &url).await;
    for i in 0..9 {
        provisioned(&nodes[i % 3], &token, &format!("0015650000{i:02x}")).await;
    }
    r.until(|got| got.len() >= 9).await;
    // Time for any second delivery to show up; there is none.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = r.got.lock().unwrap().clone();
    let mut ids: Vec<&str> = got.iter().map(|(_, id)| id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 9, "each event once, in order: {got:?}");
    assert_eq!(got.len(), 9, "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_delivery_is_taken_over() {
    let Some((mut nodes, token)) = three_nodes().await else {
        return;
    };
    // The receiver hangs on the first delivery: the node sending it is then killed.
    let (r, url) = receiver(true).await;
    add_webhook(&nodes[0], &token, &url).await;
    provisioned(&nodes[1], &token, "001565000001").await;
    let got = r.until(|got| !got.is_empty()).await;
    let (delivering, event) = got[0].clone();
    let victim = ["n1", "n2", "n3"]
        .iter()
        .position(|n| *n == delivering)
        .expect("a node named in the request");
    nodes[victim].kill();
    // Its lease (2 s) runs out; another node sends the same event again.
    let got = r.until(|got| got.len() >= 2).await;
    assert_eq!(got[1].1, event, "the same event id: {got:?}");
    assert_ne!(got[1].0, delivering, "another node: {got:?}");
}

/// A wrong code sent to `app`'s activation endpoint.
async fn guess(app: &provisor_testkit::TestApp, n: u32) -> provisor_testkit::Answer {
    let body = json!({"code": format!("{:012}", 100_000 + n), "mac": "001565000099"});
    app.send(
        reqwest::Method::POST,
        "/p/activate",
        None,
        "application/json",
        &body.to_string(),
    )
    .await
}

/// Wrong codes spread over two nodes count against one budget: the lockout holds on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_limits_are_shared_by_the_nodes() {
    let few = |c: &mut provisor::config::Config| {
        c.code_failures_per_ip = 4;
    };
    let Some(a) = provisor_testkit::spawn_app_with(provisor_testkit::Backend::Postgres, few).await
    else {
        return;
    };
    let b = a.another_node(few).await;
    // Two wrong codes at each node: four in all, the per-address budget.
    for n in 0..4 {
        let node = if n % 2 == 0 { &a } else { &b };
        assert_eq!(guess(node, n).await.status, 403);
    }
    // Locked now, at either node (one node alone has seen only two).
    for node in [&a, &b] {
        let locked = guess(node, 9).await;
        assert_eq!(locked.status, 429, "{}", locked.text);
        assert!(locked.headers.contains_key("retry-after"));
    }
}

/// Three nodes sweeping every second: each expired code is swept (and reported) once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_codes_are_swept_once_by_three_nodes() {
    let quick = |c: &mut provisor::config::Config| {
        c.sweep_seconds = 1;
    };
    let Some(a) =
        provisor_testkit::spawn_app_with(provisor_testkit::Backend::Postgres, quick).await
    else {
        return;
    };
    let b = a.another_node(quick).await;
    let c = a.another_node(quick).await;
    a.create_domain(DOMAIN).await;
    a.patch(
        &format!("/api/v1/domains/{DOMAIN}"),
        json!({"phone_policy": {"code_seconds": 1}}),
    )
    .await
    .expect(200);
    a.create_user(DOMAIN, "alice").await;
    for node in [&a, &b, &c, &a, &b] {
        node.post(
            &format!("/api/v1/domains/{DOMAIN}/codes"),
            json!({"user": "alice"}),
        )
        .await
        .expect(201);
    }
    a.eventually(&format!("/api/v1/domains/{DOMAIN}/events?after=0"), |e| {
        e.as_array()
            .is_some_and(|e| e.iter().filter(|e| e["kind"] == "code.expired").count() >= 5)
    })
    .await;
    // A few more sweeps by every node: nothing is reported twice.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let events = b
        .get(&format!("/api/v1/domains/{DOMAIN}/events?after=0"))
        .await
        .expect(200);
    let expired: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "code.expired")
        .collect();
    assert_eq!(expired.len(), 5, "{events}");
    let mut ids: Vec<i64> = expired
        .iter()
        .map(|e| e["payload"]["code_id"].as_i64().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "{events}");
}

/// Node A and node B on one PostgreSQL, a device with two lines, and the tokenized path
/// of its file (after `/p/`).
async fn two_nodes_and_a_device() -> Option<(TestApp, TestApp, String)> {
    let a = provisor_testkit::spawn_app_with(provisor_testkit::Backend::Postgres, |_| {}).await?;
    let b = a.another_node(|_| {}).await;
    a.create_domain(DOMAIN).await;
    let device = a
        .device_with_two_lines(
            DOMAIN,
            "carol",
            json!({"mac": "001565aabb77", "vendor": "yealink", "model": "T54W"}),
        )
        .await;
    let url = device["provisioning"]["url"].as_str().unwrap();
    let path = url.split_once("/p/").map(|(_, p)| p).unwrap();
    Some((a, b, format!("{path}001565aabb77.cfg")))
}

async fn fetch_on(app: &TestApp, path: &str) -> String {
    client()
        .get(format!("{}/p/{path}", app.base))
        .header(
            "user-agent",
            "Yealink SIP-T54W 96.86.0.100 00:15:65:aa:bb:77",
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Fetches from `app` until the file has `wanted`: how long that took (at most 5 s).
async fn served_within(app: &TestApp, path: &str, wanted: &str) -> Duration {
    let started = std::time::Instant::now();
    loop {
        let served = fetch_on(app, path).await;
        if served.contains(wanted) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still not served {wanted:?} after 5 s: {served}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Changes line 1's SIP password through `app`'s API.
async fn change_password(app: &TestApp, password: &str) {
    let accounts = app
        .get(&format!("/api/v1/domains/{DOMAIN}/accounts?user=carol"))
        .await
        .expect(200);
    let id = accounts["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["sip_user"] == "carol1")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    app.patch(
        &format!("/api/v1/domains/{DOMAIN}/accounts/{id}"),
        json!({"password": password}),
    )
    .await
    .expect(200);
}

/// A change made through one node is what the others serve as soon as PostgreSQL's
/// notification reaches them (milliseconds), though they had the file in their caches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_node_is_served_by_the_others() {
    let Some((a, b, path)) = two_nodes_and_a_device().await else {
        return;
    };
    let c = a.another_node(|_| {}).await;
    assert!(fetch_on(&b, &path).await.contains("pw-carol-1"));
    // (The first contact records the device's firmware: a change, heard by all.)
    tokio::time::sleep(Duration::from_secs(1)).await;
    for node in [&b, &c] {
        fetch_on(node, &path).await;
        let hits = super::cache::lookups(node, "file", "hit").await;
        assert!(fetch_on(node, &path).await.contains("pw-carol-1"));
        let now = super::cache::lookups(node, "file", "hit").await;
        assert_eq!(now, hits + 1, "the node keeps the file");
    }
    // The SIP password changed through node A; nodes B and C serve the new one.
    change_password(&a, "pw-carol-new").await;
    for (name, node) in [("B", &b), ("C", &c)] {
        let took = served_within(node, &path, "pw-carol-new").await;
        eprintln!("node {name} served node A's change after {took:?}");
        assert!(!fetch_on(node, &path).await.contains("pw-carol-1\n"));
    }
}

/// A node whose listening connection is cut misses the notifications sent meanwhile; it
/// keeps nothing until it listens again, then drops what it kept: a change made while it
/// could not hear is served too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_missed_notifications_flushes_its_cache() {
    let Some((a, b, path)) = two_nodes_and_a_device().await else {
        return;
    };
    fetch_on(&b, &path).await;
    assert!(fetch_on(&b, &path).await.contains("pw-carol-1"));
    let url = a
        .config
        .database_url
        .as_ref()
        .unwrap()
        .0
        .expose()
        .to_owned();
    let db = sqlx::PgPool::connect(&url).await.unwrap();
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(cut.len(), 2, "both nodes were listening");
    // Right away, while B may not know yet: its notification of this is lost.
    change_password(&a, "pw-carol-unheard").await;
    served_within(&b, &path, "pw-carol-unheard").await;
    // B listens again (within seconds): it keeps files again...
    let started = std::time::Instant::now();
    loop {
        let hits = super::cache::lookups(&b, "file", "hit").await;
        fetch_on(&b, &path).await;
        fetch_on(&b, &path).await;
        if super::cache::lookups(&b, "file", "hit").await > hits {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "B caches again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...and hears of changes as before.
    change_password(&a, "pw-carol-heard").await;
    served_within(&b, &path, "pw-carol-heard").await;
}

/// A PostgreSQL cluster of the test's own (it is restarted, so not the shared one), run as
/// the `postgres` user when the test runs as root. None where its tools are missing.
struct OwnCluster {
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl OwnCluster {
    fn as_postgres(&self, tool: &str) -> Command {
        let tool = self.bin.join(tool);
        if nix_is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(tool);
            c
        } else {
            Command::new(tool)
        }
    }

    fn start() -> Option<OwnCluster> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|b| b.join("initdb").exists())?;
        let dir = tempfile::tempdir().ok()?;
        let cluster = OwnCluster {
            bin,
            dir,
            port: free_port(),
        };
        if nix_is_root() {
            Command::new("chown")
                .args(["-R", "postgres"])
                .arg(cluster.dir.path())
                .status()
                .ok()?;
        }
        let data = cluster.dir.path().join("data");
        let ok = cluster
            .as_postgres("initdb")
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?
            .success();
        (ok && cluster.pg_ctl("start")).then_some(cluster)
    }

    fn pg_ctl(&self, action: &str) -> bool {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        self.as_postgres("pg_ctl")
            .args([action, "-w", "-m", "fast", "-D"])
            .arg(self.dir.path().join("data"))
            .args(["-o", &options, "-l"])
            .arg(self.dir.path().join("log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        self.pg_ctl("stop");
    }
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(|u| u == "0"))
        .unwrap_or(false)
}

/// After a PostgreSQL restart every node recovers by itself: ready again, writes work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_recover_after_a_postgresql_restart() {
    let Some(cluster) = OwnCluster::start() else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI needs PostgreSQL's initdb and pg_ctl"
        );
        eprintln!("note: no initdb/pg_ctl here; the PostgreSQL restart test is skipped");
        return;
    };
    let database = cluster.url();
    let first = Node::start("r1", &database, None).await;
    let second = Node::start("r2", &database, Some(&first)).await;
    let token = domain_through(&first).await;
    let post = reqwest::Method::POST;
    assert!(cluster.pg_ctl("restart"), "PostgreSQL restarts");
    for (n, node) in [&first, &second].into_iter().enumerate() {
        let mut ready = false;
        for _ in 0..300 {
            let r = client().get(format!("{}/readyz", node.base)).send().await;
            if r.is_ok_and(|r| r.status().is_success()) {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "node {n} is ready again");
        api(
            node,
            &token,
            post.clone(),
            &format!("/api/v1/domains/{DOMAIN}/users"),
            json!({"username": format!("after{n}")}),
        )
        .await;
    }
}
