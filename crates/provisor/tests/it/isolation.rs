//! A domain admin of one domain can neither see nor change another's, in both directions.

use provisor_testkit::{TestApp, both};
use reqwest::Method;
use serde_json::{Value, json};

async fn populate(app: &TestApp, domain: &str, mac: &str) -> i64 {
    app.create_domain(domain).await;
    app.create_category(domain, "cat", true).await;
    app.create_user(domain, "user").await;
    let account = app.create_account(domain, "user", "100", "pw").await;
    app.create_device(
        domain,
        json!({"mac": mac, "category": "cat", "user": "user", "lines": ["100"]}),
    )
    .await;
    account["id"].as_i64().unwrap()
}

/// Everything `token` must not reach in `other`, each answered 404 like a missing domain.
async fn cannot_reach(
    app: &TestApp,
    token: &str,
    other: &str,
    other_mac: &str,
    other_account: i64,
) {
    let csv = "username,sip_user,sip_password\nmallory,900,pw\n";
    let gets = [
        format!("/api/v1/domains/{other}"),
        format!("/api/v1/domains/{other}/categories"),
        format!("/api/v1/domains/{other}/categories/cat"),
        format!("/api/v1/domains/{other}/users"),
        format!("/api/v1/domains/{other}/users/user"),
        format!("/api/v1/domains/{other}/users/user/accounts"),
        format!("/api/v1/domains/{other}/accounts"),
        format!("/api/v1/domains/{other}/accounts/{other_account}"),
        format!("/api/v1/domains/{other}/devices"),
        format!("/api/v1/domains/{other}/devices/{other_mac}"),
        format!("/api/v1/domains/{other}/export"),
        format!("/api/v1/audit?domain={other}"),
    ];
    for path in &gets {
        app.call(Method::GET, path, Some(token), None)
            .await
            .problem(404, "not-found");
    }
    let changes: [(Method, String, Option<Value>); 8] = [
        (
            Method::PATCH,
            format!("/api/v1/domains/{other}"),
            Some(json!({"description": "pwned"})),
        ),
        (
            Method::POST,
            format!("/api/v1/domains/{other}/users"),
            Some(json!({"username": "mallory"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/domains/{other}/users/user"),
            Some(json!({"enabled": false})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/domains/{other}/users/user"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/domains/{other}/devices/{other_mac}"),
            Some(json!({"state": "disabled"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/domains/{other}/devices/{other_mac}"),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/domains/{other}/accounts/{other_account}"),
            None,
        ),
        (
            Method::POST,
            "/api/v1/tokens".to_owned(),
            Some(json!({"role": "domain-admin", "domain": other})),
        ),
    ];
    for (method, path, body) in changes {
        app.call(method.clone(), &path, Some(token), body)
            .await
            .problem(404, "not-found");
    }
    let r = app
        .client
        .post(format!("{}/api/v1/domains/{other}/import", app.base))
        .bearer_auth(token)
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "import into another domain");
}

both!(domain_admins_are_confined_both_ways, confined);
async fn confined(app: TestApp) {
    let acc_a = populate(&app, "a.example", "001565aaaaaa").await;
    let acc_b = populate(&app, "b.example", "001565bbbbbb").await;
    let token_a = app.domain_admin_token("a.example").await;
    let token_b = app.domain_admin_token("b.example").await;

    cannot_reach(&app, &token_a, "b.example", "001565bbbbbb", acc_b).await;
    cannot_reach(&app, &token_b, "a.example", "001565aaaaaa", acc_a).await;
    // Not even through their own domain's routes with the other's ids.
    app.call(
        Method::GET,
        &format!("/api/v1/domains/a.example/accounts/{acc_b}"),
        Some(&token_a),
        None,
    )
    .await
    .problem(404, "not-found");
    app.call(
        Method::GET,
        "/api/v1/domains/a.example/devices/001565bbbbbb",
        Some(&token_a),
        None,
    )
    .await
    .problem(404, "not-found");
    let p = app
        .call(
            Method::POST,
            "/api/v1/domains/a.example/devices",
            Some(&token_a),
            Some(json!({"mac": "001565cccccc", "user": "user", "lines": ["100"]})),
        )
        .await
        .expect(201);
    assert_eq!(
        p["lines"][0]["account_id"], acc_a,
        "a line name resolves inside the caller's domain only"
    );

    // Lists only ever show their own.
    let domains = app
        .call(Method::GET, "/api/v1/domains", Some(&token_a), None)
        .await
        .expect(200);
    let names: Vec<&str> = domains["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.example"]);
    let audit = app
        .call(Method::GET, "/api/v1/audit", Some(&token_a), None)
        .await
        .expect(200);
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["domain"] == "a.example"),
        "{audit}"
    );
    let tokens = app
        .call(Method::GET, "/api/v1/tokens", Some(&token_a), None)
        .await
        .expect(200);
    assert!(
        tokens["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["domain"] == "a.example"),
        "{tokens}"
    );

    // And B's data is unchanged.
    let dev = app
        .get("/api/v1/domains/b.example/devices/001565bbbbbb")
        .await
        .expect(200);
    assert_eq!(dev["state"], "added");
    app.get("/api/v1/domains/b.example/users/user")
        .await
        .expect(200);
    let b_users = app.get("/api/v1/domains/b.example/users").await.expect(200);
    assert_eq!(b_users["items"].as_array().unwrap().len(), 1);
}
