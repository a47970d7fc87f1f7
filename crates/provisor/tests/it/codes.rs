//! Provisioning codes end to end: requested by an admin or the CLI, redeemed at
//! `/p/activate` (JSON and form) and at the phone's HTTP-auth prompt, single use, expiring,
//! and locked out after repeated failures; `device.provisioned` in the event log.

use base64::Engine as _;
use provisor::config::Config;
use provisor_domain::phone::Unauthenticated;
use provisor_testkit::{Answer, Phone, TestApp, both};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::provisor_ok;

const DOMAIN: &str = "acme.example.com";
const UA: &str = "Yealink SIP-T54W 96.86.0.100";

/// The domain, category `Desk`, and user alice with SIP accounts alice1 and alice2.
async fn setup(app: &TestApp) {
    app.create_domain(DOMAIN).await;
    app.create_category(DOMAIN, "Desk", true).await;
    app.create_user(DOMAIN, "alice").await;
    for n in 1..=2 {
        app.create_account(
            DOMAIN,
            "alice",
            &format!("alice{n}"),
            &format!("pw-alice-{n}"),
        )
        .await;
    }
}

/// A code for alice's phone in Desk, as the API answers it.
async fn issue(app: &TestApp) -> Value {
    app.post(
        &format!("/api/v1/domains/{DOMAIN}/codes"),
        json!({"user": "alice", "category": "Desk"}),
    )
    .await
    .expect(201)
}

async fn new_code(app: &TestApp) -> String {
    issue(app).await["code"].as_str().unwrap().to_owned()
}

async fn activate(app: &TestApp, body: Value) -> Answer {
    app.send(
        Method::POST,
        "/p/activate",
        None,
        "application/json",
        &body.to_string(),
    )
    .await
}

fn carries_alice(answer: &Answer) {
    assert_eq!(answer.status, 200, "{}", answer.text);
    for n in 1..=2 {
        assert!(
            answer.text.contains(&format!("pw-alice-{n}")),
            "line {n}: {}",
            answer.text
        );
    }
}

both!(codes_redeemed_at_activate, at_activate);
async fn at_activate(app: TestApp) {
    setup(&app).await;
    let issued = issue(&app).await;
    let code = issued["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 12);
    assert!(issued["valid_until"].as_str().is_some());

    let done = activate(
        &app,
        json!({"code": code, "mac": "00:15:65:aa:bb:01", "model": "T54W", "firmware": "96.86.0.100", "bootcode": "b1", "ip": "10.0.0.5"}),
    )
    .await
    .expect(200);
    assert_eq!(done["domain"], DOMAIN);
    let device = app
        .get(&format!("/api/v1/domains/{DOMAIN}/devices/001565aabb01"))
        .await
        .expect(200);
    assert_eq!(device["category"], "Desk");
    assert_eq!(device["user"], "alice");
    assert_eq!(device["provisioning"]["url"], done["provisioning_url"]);

    // The phone fetches its file under the URL it was given.
    let mut phone = Phone::new(&app, &format!("{UA} 00:15:65:aa:bb:01"));
    phone.move_to(done["provisioning_url"].as_str().unwrap());
    carries_alice(&phone.get("001565aabb01.cfg").await);
    // Its first configuration: the device came up.
    let seen = app
        .eventually(&format!("/api/v1/domains/{DOMAIN}/events"), |v| {
            v.as_array()
                .is_some_and(|e| e.iter().any(|e| e["kind"] == "device.registered"))
        })
        .await;
    let registered: Vec<&Value> = seen
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "device.registered")
        .collect();
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0]["payload"]["mac"], "001565aabb01");

    // Used, unknown and malformed codes, and a MAC with a device, all get one answer.
    let used = activate(&app, json!({"code": code, "mac": "001565aabb02"})).await;
    let unknown = activate(&app, json!({"code": "000000000000", "mac": "001565aabb02"})).await;
    let short = activate(&app, json!({"code": "12", "mac": "001565aabb02"})).await;
    let fresh = new_code(&app).await;
    let taken = activate(&app, json!({"code": fresh, "mac": "001565aabb01"})).await;
    for a in [&used, &unknown, &short, &taken] {
        assert_eq!(
            (a.status.as_u16(), a.text.as_str()),
            (used.status.as_u16(), used.text.as_str())
        );
    }
    assert_eq!(used.status, 403);
    activate(&app, json!({"mac": "001565aabb02"}))
        .await
        .expect(400);

    // The code refused for a taken MAC still works, here as a form.
    let form = format!("code={fresh}&mac=001565aabb03&model=T46S");
    let done = app
        .send(
            Method::POST,
            "/p/activate",
            None,
            "application/x-www-form-urlencoded",
            &form,
        )
        .await
        .expect(200);
    assert_eq!(done["mac"], "001565aabb03");

    // The event log has both, in order; another domain's admin reaches none of it.
    let events = app
        .get(&format!("/api/v1/domains/{DOMAIN}/events"))
        .await
        .expect(200);
    // (the phone's fetch adds `device.registered` when it gets there)
    let kinds: Vec<(&str, &str)> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "device.provisioned")
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["payload"]["mac"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("device.provisioned", "001565aabb01"),
            ("device.provisioned", "001565aabb03")
        ]
    );
    assert_eq!(events[0]["payload"]["bootcode"], "b1");
    assert_eq!(events[0]["payload"]["reported_ip"], "10.0.0.5");
    let after = events[0]["id"].as_i64().unwrap();
    let rest = app
        .get(&format!("/api/v1/domains/{DOMAIN}/events?after={after}"))
        .await
        .expect(200);
    assert!(
        rest.as_array()
            .unwrap()
            .iter()
            .all(|e| e["id"].as_i64() > Some(after))
    );
    assert!(!rest.as_array().unwrap().is_empty());
    app.create_domain("other.example").await;
    let other = app.domain_admin_token("other.example").await;
    app.call(
        Method::POST,
        &format!("/api/v1/domains/{DOMAIN}/codes"),
        Some(&other),
        Some(json!({"user": "alice"})),
    )
    .await
    .problem(404, "not-found");
    app.call(
        Method::GET,
        &format!("/api/v1/domains/{DOMAIN}/events"),
        Some(&other),
        None,
    )
    .await
    .problem(404, "not-found");

    // No code in the audit log; failures are in it.
    let audit = app.get("/api/v1/audit").await;
    assert!(!audit.text.contains(&code) && !audit.text.contains(&fresh));
    assert!(audit.text.contains("code.refused"));

    // The CLI makes codes too.
    let printed = provisor_ok(
        &app,
        &["code", "create", "--domain", DOMAIN, "--user", "alice"],
    );
    let cli_code = printed.split_whitespace().next().unwrap().to_owned();
    activate(&app, json!({"code": cli_code, "mac": "001565aabb04"}))
        .await
        .expect(200);
}

fn code_prompt(c: &mut Config) {
    c.phone_unauthenticated = Unauthenticated::CodePrompt;
}

fn basic(code: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("anyone:{code}"))
    )
}

fn comparable(a: &Answer) -> (u16, Option<String>, String) {
    (
        a.status.as_u16(),
        a.headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned()),
        a.text.clone(),
    )
}

both!(codes_typed_at_the_prompt, at_the_prompt, super::code_prompt);
async fn at_the_prompt(app: TestApp) {
    setup(&app).await;
    // A known device, past its hand-off.
    app.create_device(DOMAIN, json!({"mac": "001565aabb0a", "vendor": "yealink"}))
        .await;
    app.post(
        &format!("/api/v1/domains/{DOMAIN}/devices/001565aabb0a/arm"),
        json!({"minutes": 0}),
    )
    .await
    .expect(200);
    let known = Phone::new(&app, &format!("{UA} 00:15:65:aa:bb:0a"));
    let new = Phone::new(&app, &format!("{UA} 00:15:65:aa:bb:0b"));

    // Without credentials: the same prompt, known MAC or not.
    let a = known.get_with("001565aabb0a.cfg", &[]).await;
    let b = new.get_with("001565aabb0b.cfg", &[]).await;
    assert_eq!(a.status, 401);
    assert_eq!(comparable(&a), comparable(&b));
    assert!(
        a.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic realm=\"Provisioning code\"")
    );
    // A wrong code: the prompt again.
    let wrong = new
        .get_with(
            "001565aabb0b.cfg",
            &[("authorization", &basic("111122223333"))],
        )
        .await;
    assert_eq!(comparable(&wrong), comparable(&b));

    // A live code binds the new MAC, and the same request gets the file.
    let code = new_code(&app).await;
    let file = new
        .get_with("001565aabb0b.cfg", &[("authorization", &basic(&code))])
        .await;
    carries_alice(&file);
    let device = app
        .get(&format!("/api/v1/domains/{DOMAIN}/devices/001565aabb0b"))
        .await
        .expect(200);
    assert_eq!(
        (
            device["category"].as_str(),
            device["vendor"].as_str(),
            device["model"].as_str()
        ),
        (Some("Desk"), Some("yealink"), Some("T54W"))
    );
    assert!(
        file.text
            .contains(device["provisioning"]["url"].as_str().unwrap()),
        "the file moves the phone to its tokenized URL"
    );

    // A MAC with a device is never re-bound, even with a live code.
    let other = new_code(&app).await;
    let again = known
        .get_with("001565aabb0a.cfg", &[("authorization", &basic(&other))])
        .await;
    assert_eq!(again.status, 401);
    let owner = app
        .get(&format!("/api/v1/domains/{DOMAIN}/devices/001565aabb0a"))
        .await
        .expect(200);
    assert_eq!(owner["user"], Value::Null);
    // That code is still live for a new phone.
    activate(&app, json!({"code": other, "mac": "001565aabb0c"}))
        .await
        .expect(200);
}

fn strict(c: &mut Config) {
    c.code_failures_per_ip = 3;
    c.code_lockout_seconds = 60;
}

both!(wrong_codes_lock_out, lock_out, super::strict);
async fn lock_out(app: TestApp) {
    setup(&app).await;
    let code = new_code(&app).await;
    for n in 0..3 {
        let a = activate(
            &app,
            json!({"code": format!("99999999999{n}"), "mac": "001565aabb01"}),
        )
        .await;
        assert_eq!(a.status, 403, "attempt {n}");
    }
    // Locked: even the right code waits, and says how long.
    let locked = activate(&app, json!({"code": code, "mac": "001565aabb01"})).await;
    assert_eq!(locked.status, 429, "{}", locked.text);
    let wait: u64 = locked.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    app.get(&format!("/api/v1/domains/{DOMAIN}/devices/001565aabb01"))
        .await
        .problem(404, "not-found");
    let audit = app.get("/api/v1/audit?limit=100").await.expect(200);
    let refused = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "code.refused")
        .count();
    assert_eq!(refused, 3, "every failure is audited");
}

both!(codes_expire, expire);
async fn expire(app: TestApp) {
    setup(&app).await;
    app.patch(
        &format!("/api/v1/domains/{DOMAIN}"),
        json!({"phone_policy": {"code_seconds": 1}}),
    )
    .await
    .expect(200);
    let code = new_code(&app).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    activate(&app, json!({"code": code, "mac": "001565aabb01"}))
        .await
        .expect(403);
}

async fn portal(
    app: &TestApp,
    method: Method,
    path: &str,
    login: &str,
    password: &str,
    body: Option<Value>,
) -> Answer {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", app.base))
        .basic_auth(login, Some(password));
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request.send().await.unwrap();
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        text: response.text().await.unwrap(),
    }
}

/// User erin with portal password `correct horse` and one SIP account.
async fn erin(app: &TestApp) -> String {
    app.post(
        &format!("/api/v1/domains/{DOMAIN}/users"),
        json!({"username": "erin", "password": "correct horse"}),
    )
    .await
    .expect(201);
    app.create_account(DOMAIN, "erin", "erin1", "pw-erin-1")
        .await;
    format!("erin@{DOMAIN}")
}

both!(users_request_their_own_codes, self_service);
async fn self_service(app: TestApp) {
    setup(&app).await;
    app.create_category(DOMAIN, "Hidden", false).await;
    let login = erin(&app).await;
    let listed = portal(
        &app,
        Method::GET,
        "/api/v1/self/categories",
        &login,
        "correct horse",
        None,
    )
    .await
    .expect(200);
    assert_eq!(
        listed,
        json!([{"name": "Desk"}]),
        "only provisioning categories"
    );
    let issued = portal(
        &app,
        Method::POST,
        "/api/v1/self/codes",
        &login,
        "correct horse",
        Some(json!({"category": "Desk"})),
    )
    .await
    .expect(201);
    assert_eq!(issued["user"], "erin");
    let done = activate(&app, json!({"code": issued["code"], "mac": "001565aabb21"}))
        .await
        .expect(200);
    assert_eq!(done["domain"], DOMAIN);
    let device = app
        .get(&format!("/api/v1/domains/{DOMAIN}/devices/001565aabb21"))
        .await
        .expect(200);
    assert_eq!(
        (device["user"].as_str(), device["category"].as_str()),
        (Some("erin"), Some("Desk"))
    );
    portal(
        &app,
        Method::POST,
        "/api/v1/self/codes",
        &login,
        "correct horse",
        Some(json!({"category": "Hidden"})),
    )
    .await
    .problem(400, "invalid-field");

    // Wrong password, unknown user, unknown domain, no password at all: one answer.
    let wrong = portal(
        &app,
        Method::GET,
        "/api/v1/self/categories",
        &login,
        "wrong horse",
        None,
    )
    .await;
    let nobody = portal(
        &app,
        Method::GET,
        "/api/v1/self/categories",
        &format!("nobody@{DOMAIN}"),
        "x",
        None,
    )
    .await;
    let nowhere = portal(
        &app,
        Method::GET,
        "/api/v1/self/categories",
        "erin@nowhere.example",
        "x",
        None,
    )
    .await;
    let alice = portal(
        &app,
        Method::GET,
        "/api/v1/self/categories",
        &format!("alice@{DOMAIN}"),
        "",
        None,
    )
    .await;
    for a in [&wrong, &nobody, &nowhere, &alice] {
        assert_eq!(
            (a.status.as_u16(), a.text.as_str()),
            (401, wrong.text.as_str())
        );
        assert!(
            a.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
    }
    // A bearer token is not a portal login.
    app.call(
        Method::GET,
        "/api/v1/self/categories",
        Some(&app.token),
        None,
    )
    .await
    .problem(401, "unauthorized");
}

both!(
    logins_and_codes_share_the_limit,
    shared_limit,
    super::strict
);
async fn shared_limit(app: TestApp) {
    setup(&app).await;
    let login = erin(&app).await;
    for _ in 0..3 {
        portal(
            &app,
            Method::GET,
            "/api/v1/self/categories",
            &login,
            "wrong horse",
            None,
        )
        .await
        .expect(401);
    }
    let locked = portal(
        &app,
        Method::GET,
        "/api/v1/self/categories",
        &login,
        "correct horse",
        None,
    )
    .await;
    assert_eq!(locked.status, 429);
    assert!(locked.headers.contains_key("retry-after"));
    // The same address's codes wait too.
    let code = new_code(&app).await;
    assert_eq!(
        activate(&app, json!({"code": code, "mac": "001565aabb31"}))
            .await
            .status,
        429
    );
    let audit = app.get("/api/v1/audit?limit=100").await;
    assert_eq!(audit.text.matches("login.refused").count(), 3);
    assert!(!audit.text.contains("wrong horse"));
}

fn strict_prompt(c: &mut Config) {
    strict(c);
    code_prompt(c);
}

both!(
    known_macs_count_like_unknown_ones,
    known_count,
    super::strict_prompt
);
async fn known_count(app: TestApp) {
    setup(&app).await;
    app.create_device(DOMAIN, json!({"mac": "001565aabb0a", "vendor": "yealink"}))
        .await;
    app.post(
        &format!("/api/v1/domains/{DOMAIN}/devices/001565aabb0a/arm"),
        json!({"minutes": 0}),
    )
    .await
    .expect(200);
    let known = Phone::new(&app, &format!("{UA} 00:15:65:aa:bb:0a"));
    // Wrong codes at the prompt of a MAC that has a device: never tried, but counted, so
    // the limit cannot tell known MACs from unknown ones.
    for _ in 0..3 {
        let a = known
            .get_with(
                "001565aabb0a.cfg",
                &[("authorization", &basic("111122223333"))],
            )
            .await;
        assert_eq!(a.status, 401);
    }
    let code = new_code(&app).await;
    assert_eq!(
        activate(&app, json!({"code": code, "mac": "001565aabb0b"}))
            .await
            .status,
        429
    );
}

both!(login_bursts_count_every_attempt, burst, super::strict);
async fn burst(app: TestApp) {
    setup(&app).await;
    let login = erin(&app).await;
    // Twenty wrong logins at the same moment: only the limit's worth is checked at all.
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let url = format!("{}/api/v1/self/categories", app.base);
            let login = login.clone();
            tokio::spawn(async move {
                reqwest::Client::new()
                    .get(url)
                    .basic_auth(login, Some("wrong horse"))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut checked = 0;
    for a in attempts {
        match a.await.unwrap() {
            401 => checked += 1,
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        checked <= 3,
        "{checked} wrong logins were checked; the limit is 3"
    );
}
