//! Rollouts end to end: one code per user, states Pending → Registered as phones redeem
//! them, the CSV, the CLI, and a rollout of 10,000 users.

use provisor_testkit::{TestApp, both};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::provisor_ok;

const DOMAIN: &str = "acme.example.com";

fn rollouts(rest: &str) -> String {
    format!("/api/v1/domains/{DOMAIN}/rollouts{rest}")
}

/// `n` users (`u00001`, …), each with one SIP account, through the bulk import.
async fn users(app: &TestApp, n: usize) -> Vec<String> {
    let mut csv = String::from("username,display_name,sip_user,sip_password\n");
    let names: Vec<String> = (1..=n).map(|i| format!("u{i:05}")).collect();
    for (i, name) in names.iter().enumerate() {
        csv.push_str(&format!("{name},User {i},{}, pw-{name}\n", 10_000 + i));
    }
    app.send(
        Method::POST,
        &format!("/api/v1/domains/{DOMAIN}/import"),
        Some(&app.token),
        "text/csv",
        &csv,
    )
    .await
    .expect(200);
    names
}

async fn activate(app: &TestApp, code: &Value, mac: &str) -> u16 {
    app.send(
        Method::POST,
        "/p/activate",
        None,
        "application/json",
        &json!({"code": code, "mac": mac}).to_string(),
    )
    .await
    .status
    .as_u16()
}

both!(rollouts_track_each_user, track);
async fn track(app: TestApp) {
    app.create_domain(DOMAIN).await;
    app.create_category(DOMAIN, "acme IP Phone", false).await;
    let names = users(&app, 3).await;
    // A display name that a spreadsheet would run.
    app.patch(
        &format!("/api/v1/domains/{DOMAIN}/users/u00003"),
        json!({"display_name": "=cmd|' /C calc'!A0"}),
    )
    .await
    .expect(200);
    app.post(&rollouts(""), json!({"users": ["u00001", "ghost"]}))
        .await
        .problem(400, "invalid-field");
    let created = app
        .post(
            &rollouts(""),
            json!({"category": "acme IP Phone", "phone": "Yealink T54W", "users": names}),
        )
        .await
        .expect(201);
    let id = created["rollout"]["id"].as_i64().unwrap();
    let entries = created["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert!(entries.iter().all(|e| e["state"] == "pending"));

    assert_eq!(
        activate(&app, &entries[0]["code"], "001565aabb51").await,
        200
    );
    let shown = app.get(&rollouts(&format!("/{id}"))).await.expect(200);
    assert_eq!(shown["entries"][0]["state"], "registered");
    assert_eq!(shown["entries"][0]["mac"], "001565aabb51");
    assert_eq!(shown["entries"][1]["state"], "pending");
    assert_eq!(shown["rollout"]["registered"], 1);
    let device = app
        .get(&format!("/api/v1/domains/{DOMAIN}/devices/001565aabb51"))
        .await
        .expect(200);
    assert_eq!(device["category"], "acme IP Phone");
    assert_eq!(device["user"], "u00001");

    let csv = app.get(&rollouts(&format!("/{id}.csv"))).await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let lines: Vec<&str> = csv.text.split("\r\n").collect();
    assert_eq!(lines[0], "user,display_name,code,valid_until,state,mac");
    assert!(lines[1].starts_with(&format!(
        "u00001,User 0,{},",
        entries[0]["code"].as_str().unwrap()
    )));
    assert!(
        lines[1].ends_with(",Registered,001565aabb51"),
        "{}",
        lines[1]
    );
    assert!(
        lines[3].starts_with("u00003,'=cmd|' /C calc'!A0,"),
        "{}",
        lines[3]
    );
    app.get(&rollouts("/999")).await.problem(404, "not-found");
    app.create_domain("other.example").await;
    let other = app.domain_admin_token("other.example").await;
    app.call(
        Method::GET,
        &rollouts(&format!("/{id}")),
        Some(&other),
        None,
    )
    .await
    .problem(404, "not-found");

    // The last registration completes it.
    for (e, mac) in entries[1..].iter().zip(["001565aabb52", "001565aabb53"]) {
        assert_eq!(activate(&app, &e["code"], mac).await, 200);
    }
    let done = app.get(&rollouts(&format!("/{id}"))).await.expect(200);
    assert!(done["rollout"]["completed_at"].is_string());
    assert!(!app.events_of(DOMAIN, "rollout.completed").await.is_empty());

    // The CLI.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.csv");
    std::fs::write(&file, "username\nu00002\n\n# comment\nu00003\n").unwrap();
    let out = dir.path().join("out.csv");
    let printed = provisor_ok(
        &app,
        &[
            "rollout",
            "create",
            "--domain",
            DOMAIN,
            "--category",
            "acme IP Phone",
            "--users-file",
            file.to_str().unwrap(),
            "--csv",
            out.to_str().unwrap(),
        ],
    );
    assert!(printed.contains("2 pending"), "{printed}");
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written.lines().count(), 3);
    let id2: String = printed
        .split(':')
        .next()
        .unwrap()
        .trim_start_matches("rollout ")
        .to_owned();
    let shown = provisor_ok(
        &app,
        &["--json", "rollout", "show", "--domain", DOMAIN, &id2],
    );
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["entries"][0]["user"], "u00002");
}

both!(a_rollout_of_ten_thousand_users, ten_thousand);
async fn ten_thousand(app: TestApp) {
    app.create_domain(DOMAIN).await;
    let names = users(&app, 10_000).await;
    let created = app
        .post(&rollouts(""), json!({"users": names}))
        .await
        .expect(201);
    assert_eq!(created["rollout"]["pending"], 10_000);
    let entries = created["entries"].as_array().unwrap();
    let codes: std::collections::HashSet<&str> = entries
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), 10_000, "every code is its own");
    let id = created["rollout"]["id"].as_i64().unwrap();
    assert_eq!(
        activate(&app, &entries[9_999]["code"], "001565aabb61").await,
        200
    );
    let csv = app.get(&rollouts(&format!("/{id}.csv"))).await;
    assert_eq!(csv.status, 200);
    let rows: Vec<&str> = csv.text.trim_end().split("\r\n").collect();
    assert_eq!(rows.len(), 10_001);
    assert!(
        rows[10_000].starts_with("u10000,") && rows[10_000].ends_with(",Registered,001565aabb61")
    );
}
