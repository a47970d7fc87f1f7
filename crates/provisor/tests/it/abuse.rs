//! Abuse of what faces the network (issue 11): path traversal in file, template and
//! firmware names, oversized bodies and headers, XML entity expansion, spreadsheet formulas
//! on export, SIGKILL in the middle of an import or a rollout. Each gets a clear refusal;
//! nothing leaks, nothing is half-written, the server goes on answering.

use provisor_testkit::{Answer, TestApp, both};
use reqwest::Method;
use serde_json::json;

const DOMAIN: &str = "acme.example.com";

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Whether the server answers its health check.
async fn healthy(app: &TestApp) -> bool {
    client()
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// A raw request line (the client does not normalise `..`), and what came back.
async fn raw(app: &TestApp, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(app.address).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// An operator's request with a body of its own type.
async fn send(app: &TestApp, method: Method, path: &str, kind: &str, body: &str) -> Answer {
    app.send(method, path, Some(&app.token), kind, body).await
}

async fn import_3cx(app: &TestApp, xml: &str) -> Answer {
    let path = format!("/api/v1/domains/{DOMAIN}/templates/import-3cx?vendor=grandstream");
    send(app, Method::POST, &path, "application/xml", xml).await
}

both!(file_names_cannot_climb_out, traversal);
async fn traversal(app: TestApp) {
    app.create_domain(DOMAIN).await;
    let device = app
        .device_with_two_lines(DOMAIN, "alice", json!({"mac": "001565aabbcc"}))
        .await;
    let url = device["provisioning"]["url"].as_str().unwrap().to_owned();
    let token = url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let key = std::fs::read_to_string(app.config.data_dir.join("secret.key")).unwrap();
    for path in [
        "/p/../../etc/passwd".to_owned(),
        "/p/..%2f..%2fetc%2fpasswd".to_owned(),
        "/p/%2e%2e/%2e%2e/etc/passwd".to_owned(),
        format!("/p/{token}/../secret.key"),
        format!("/p/{token}/..%2fsecret.key"),
        format!("/p/{token}/firmware/..%2f..%2fsecret.key"),
        format!("/p/{token}/%2e%2e%2f%2e%2e%2fprovisor.db"),
        "/p/....//....//etc/passwd".to_owned(),
    ] {
        let answer = raw(
            &app,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await;
        let status = answer.split(' ').nth(1).unwrap_or("");
        assert!(
            status == "404" || status == "400",
            "{path}: {}",
            answer.lines().next().unwrap_or("")
        );
        assert!(
            !answer.contains("root:") && !answer.contains(key.trim()),
            "{path}"
        );
    }
    // Names an admin gives: templates and firmware.
    for name in ["..%2F..%2Fsecret.key", "%2e%2e", "a%2Fb"] {
        let template = format!("/api/v1/domains/{DOMAIN}/templates/yealink/{name}");
        let r = send(&app, Method::PUT, &template, "text/plain", "x").await;
        assert!(r.status == 400 || r.status == 404, "{name}: {}", r.text);
        let firmware = format!("/api/v1/firmware/{name}");
        let r = send(
            &app,
            Method::PUT,
            &firmware,
            "application/octet-stream",
            "fw",
        )
        .await;
        assert!(
            r.status == 400 || r.status == 404,
            "firmware {name}: {}",
            r.text
        );
    }
    assert!(
        !app.config.data_dir.join("../secret.key").exists()
            && !app.config.data_dir.parent().unwrap().join("b").exists()
    );
}

both!(
    oversized_requests_are_refused_and_the_server_goes_on,
    oversized
);
async fn oversized(app: TestApp) {
    // A JSON body beyond the API's limit.
    let big = format!("{{\"name\": \"{}\"}}", "a".repeat(3 * 1024 * 1024));
    let r = send(
        &app,
        Method::POST,
        "/api/v1/domains",
        "application/json",
        &big,
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.text);
    // Headers beyond what the server reads: refused (or the connection closed), not a crash.
    let answer = raw(
        &app,
        &format!(
            "GET /p/001565aabbcc.cfg HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            "b".repeat(1024 * 1024)
        ),
    )
    .await;
    let status = answer.split(' ').nth(1).unwrap_or("");
    assert!(
        answer.is_empty() || status == "431" || status == "400",
        "{}",
        answer.lines().next().unwrap_or("")
    );
    let many: String = (0..500).map(|i| format!("X-H{i}: v\r\n")).collect();
    let answer = raw(
        &app,
        &format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n"),
    )
    .await;
    let status = answer.split(' ').nth(1).unwrap_or("");
    assert!(answer.is_empty() || status == "431" || status == "400" || status == "200");
    // Still answering.
    assert!(healthy(&app).await);
    assert_eq!(
        app.get("/api/v1/domains").await.expect(200)["items"],
        json!([])
    );
}

both!(xml_entities_are_not_expanded, entities);
async fn entities(app: TestApp) {
    app.create_domain(DOMAIN).await;
    // "Billion laughs": a DTD whose entities expand to gigabytes.
    let mut dtd = String::from("<!DOCTYPE lolz [<!ENTITY lol \"lol\">");
    for i in 1..10 {
        let prev = if i == 1 {
            "lol".to_owned()
        } else {
            format!("lol{}", i - 1)
        };
        dtd.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">",
            format!("&{prev};").repeat(10)
        ));
    }
    dtd.push(']');
    dtd.push('>');
    let xml = format!(
        "<?xml version=\"1.0\"?>{dtd}<template><deviceconfig filename=\"cfg%%mac_address%%.xml\">&lol9;</deviceconfig></template>"
    );
    let started = std::time::Instant::now();
    let r = import_3cx(&app, &xml).await;
    assert!(r.status == 422 || r.status == 400, "{}", r.text);
    assert!(!r.text.contains("lollollol"), "nothing expanded");
    // (A refusal, not minutes of expansion: bounded well below any timeout.)
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // An external entity (a file of the server) is not read either.
    let xxe = "<?xml version=\"1.0\"?><!DOCTYPE t [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\
               <template><deviceconfig filename=\"cfg%%mac_address%%.xml\">&x;</deviceconfig></template>";
    let r = import_3cx(&app, xxe).await;
    assert!(r.status == 422 || r.status == 400, "{}", r.text);
    assert!(!r.text.contains("root:"));
    assert_eq!(
        app.get(&format!("/api/v1/domains/{DOMAIN}/templates"))
            .await
            .expect(200),
        json!([]),
        "nothing stored"
    );
}

both!(exports_do_not_carry_spreadsheet_formulas, formulas);
async fn formulas(app: TestApp) {
    app.create_domain(DOMAIN).await;
    for (name, display) in [
        ("u1", "=HYPERLINK(\"http://evil\")"),
        ("u2", "+cmd|' /C calc'!A0"),
        ("u3", "-2+3"),
        ("u4", "@SUM(A1)"),
    ] {
        app.post(
            &format!("/api/v1/domains/{DOMAIN}/users"),
            json!({"username": name, "display_name": display}),
        )
        .await
        .expect(201);
    }
    let export = format!("/api/v1/domains/{DOMAIN}/export");
    let csv = send(&app, Method::GET, &export, "text/plain", "")
        .await
        .text;
    for line in csv.lines().skip(1) {
        let display = line.split(',').nth(1).unwrap_or("");
        let cell = display.trim_start_matches('"');
        assert!(
            !cell.starts_with(['=', '+', '-', '@']),
            "a formula reaches the spreadsheet: {line}"
        );
    }
    assert!(
        csv.contains("'=HYPERLINK") || csv.contains("\"'=HYPERLINK"),
        "{csv}"
    );
}

fn impatient(c: &mut provisor::config::Config) {
    c.header_read_timeout_seconds = 1;
}

both!(slow_clients_are_cut_off, slowloris, super::impatient);
async fn slowloris(app: TestApp) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Fifty connections that never finish their headers, trickling a byte now and then.
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut s = tokio::net::TcpStream::connect(app.address).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a")
            .await
            .unwrap();
        slow.push(s);
    }
    // Others are served meanwhile.
    assert!(healthy(&app).await);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for s in &mut slow {
        let _ = s.write_all(b"a").await;
    }
    // After the header timeout the server has closed every one of them (a 408 first, or
    // just the end of the stream).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    for mut s in slow {
        let mut buf = Vec::new();
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "a slow connection is still open");
        let text = String::from_utf8_lossy(&buf);
        assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    }
}

/// Runs `provisor ARGS` against the app's database and kills it with SIGKILL after two
/// seconds, unless it finished before: whether it finished.
async fn killed_midway(app: &TestApp, args: &[&str], file: &std::path::Path) -> bool {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_provisor"));
    cmd.args(args)
        .arg(file)
        .arg("--data-dir")
        .arg(app.data_path())
        .env_remove("PROVISOR_DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(url) = &app.config.database_url {
        cmd.env("PROVISOR_DATABASE_URL", url.0.expose());
    }
    let mut child = cmd.spawn().unwrap();
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if child.try_wait().unwrap().is_some() {
            break;
        }
    }
    let finished = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    let _ = child.wait();
    finished
}

/// Rows of `table` in the app's database, read past the server.
async fn rows(app: &TestApp, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {table}");
    match &app.config.database_url {
        Some(url) => {
            let db = sqlx::PgPool::connect(url.0.expose()).await.unwrap();
            sqlx::query_scalar(&sql).fetch_one(&db).await.unwrap()
        }
        None => {
            let file = app.data_path().join("provisor.db");
            let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", file.display()))
                .await
                .unwrap();
            sqlx::query_scalar(&sql).fetch_one(&db).await.unwrap()
        }
    }
}

both!(an_import_killed_midway_leaves_nothing, killed_import);
async fn killed_import(app: TestApp) {
    app.create_domain(DOMAIN).await;
    // A large import (one transaction), through the CLI, killed with SIGKILL while it runs.
    let mut csv = String::from("username,sip_user,sip_password,mac,vendor,line\n");
    for i in 0..40_000 {
        csv.push_str(&format!(
            "k{i:05},{},pw-{i},001565{i:06x},yealink,1\n",
            500_000 + i
        ));
    }
    let file = app.data_path().join("../big.csv");
    std::fs::write(&file, csv).unwrap();
    // Killed after two seconds, well inside its transaction (40,000 rows take longer).
    let finished = killed_midway(&app, &["import", "--domain", DOMAIN], &file).await;
    let users = app
        .get(&format!("/api/v1/domains/{DOMAIN}/users?limit=5"))
        .await
        .expect(200);
    let devices = app
        .get(&format!("/api/v1/domains/{DOMAIN}/devices?limit=5"))
        .await
        .expect(200);
    if finished {
        // (A fast machine finished first: then all of it is there.)
        assert_eq!(users["items"].as_array().unwrap().len(), 5);
    } else {
        assert_eq!(users["items"], json!([]), "no user of a killed import");
        assert_eq!(devices["items"], json!([]), "no device of a killed import");
    }
    // The database is whole: another import goes through.
    let r = send(
        &app,
        Method::POST,
        &format!("/api/v1/domains/{DOMAIN}/import"),
        "text/csv",
        "username,sip_user,sip_password\nafter,900001,pw-after\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

both!(a_rollout_killed_midway_leaves_nothing, killed_rollout);
async fn killed_rollout(app: TestApp) {
    app.create_domain(DOMAIN).await;
    const USERS: i64 = 30_000;
    let mut csv = String::from("username\n");
    for i in 0..USERS {
        csv.push_str(&format!("r{i:05}\n"));
    }
    let r = send(
        &app,
        Method::POST,
        &format!("/api/v1/domains/{DOMAIN}/import"),
        "text/csv",
        &csv,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A code for each of 30,000 users (one transaction), killed while it runs.
    let file = app.data_path().join("../rollout-users.txt");
    std::fs::write(&file, csv).unwrap();
    let args = ["rollout", "create", "--domain", DOMAIN, "--users-file"];
    let finished = killed_midway(&app, &args, &file).await;
    let (rollouts, codes) = (rows(&app, "rollouts").await, rows(&app, "codes").await);
    let audited = rows(&app, "audit_log WHERE action = 'rollout.create'").await;
    // All of it (committed before the kill: the CLI may still have been printing) or none.
    let state = (rollouts, codes, audited);
    assert!(
        state == (0, 0, 0) || state == (1, USERS, 1),
        "a killed rollout left {state:?} (rollouts, codes, audit entries)"
    );
    if !finished {
        eprintln!("killed while running; left {state:?}");
    }
    // The database is whole: a rollout through the API goes through.
    let r = send(
        &app,
        Method::POST,
        &format!("/api/v1/domains/{DOMAIN}/rollouts"),
        "application/json",
        &json!({"users": ["r00001", "r00002"]}).to_string(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

fn small_budgets(c: &mut provisor::config::Config) {
    c.code_failures_per_ip = 5;
    c.code_failures_total = 20;
    c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
}

both!(
    guesses_from_many_addresses_get_the_installations_budget,
    guess_rate,
    super::small_budgets
);
async fn guess_rate(app: TestApp) {
    // The documented arithmetic: at most `code_failures_total` wrong codes are checked per
    // window, whatever the number of source addresses (here 12 addresses, each within its
    // own budget of 5, behind a trusted balancer that names them).
    let mut checked = 0;
    let mut locked = 0;
    for n in 0..60u32 {
        let address = format!("198.51.100.{}", n % 12 + 1);
        let body = json!({"code": format!("{:012}", 700_000 + n), "mac": "001565000042"});
        let r = client()
            .post(format!("{}/p/activate", app.base))
            .header("x-forwarded-for", address)
            .json(&body)
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            403 => checked += 1,
            429 => locked += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((checked, locked), (20, 40));
    // One more address, never seen: locked too (the installation's budget is spent).
    let r = client()
        .post(format!("{}/p/activate", app.base))
        .header("x-forwarded-for", "203.0.113.200")
        .json(&json!({"code": "123456789012", "mac": "001565000042"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
}
