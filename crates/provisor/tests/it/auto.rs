//! Automatic provisioning: a domain token in the provisioning URL registers a device into
//! a category without a code; the URL comes encoded from the API and the CLI; a wrong
//! token is answered like an unknown MAC and rate-limited.

use provisor::config::Config;
use provisor_testkit::{Answer, Phone, TestApp, both};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::provisor_ok;

const DOMAIN: &str = "acme.example.com";
const TOKEN: &str = "abcdef#XYZ";
const CATEGORY: &str = "acme IP Phone";
const UA: &str = "Yealink SIP-T54W 96.86.0.100";

fn auto(rest: &str) -> String {
    format!("/api/v1/domains/{DOMAIN}/auto-provisioning{rest}")
}

/// A phone that fetches `file` from the directory of `url`, with the URL's query.
async fn fetch(url: &str, mac: &str, file: &str) -> Answer {
    let (dir, query) = url.split_once('?').unwrap_or((url, ""));
    let response = reqwest::Client::new()
        .get(format!("{dir}{file}?{query}"))
        .header("user-agent", format!("{UA} {mac}"))
        .send()
        .await
        .unwrap();
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        text: response.text().await.unwrap(),
    }
}

fn strict(c: &mut Config) {
    c.code_failures_per_ip = 3;
    c.code_lockout_seconds = 60;
}

both!(
    devices_register_with_the_domain_token,
    register,
    super::strict
);
async fn register(app: TestApp) {
    app.create_domain(DOMAIN).await;
    app.create_category(DOMAIN, CATEGORY, false).await;
    app.get(&auto("")).await.problem(404, "not-found");
    let set = app
        .call(
            Method::PUT,
            &auto(&format!("?category={}", "acme%20IP%20Phone")),
            Some(&app.token),
            Some(json!({"token": TOKEN})),
        )
        .await
        .expect(200);
    assert_eq!(set["token"], TOKEN);
    let url = set["url"].as_str().unwrap().to_owned();
    assert!(
        url.ends_with("/p/?domain=acme.example.com&token=abcdef%23XYZ&category=acme%20IP%20Phone"),
        "{url}"
    );
    let got = app
        .get(&auto("?category=acme%20IP%20Phone"))
        .await
        .expect(200);
    assert_eq!(got["url"], url);
    let printed = provisor_ok(
        &app,
        &[
            "auto-provisioning",
            "url",
            "--domain",
            DOMAIN,
            "--category",
            CATEGORY,
        ],
    );
    assert_eq!(
        printed.trim(),
        url.replace(&app.base, "http://127.0.0.1:8080"),
        "the CLI gives the same URL for its configured address"
    );

    // The device registers itself and gets its file at once.
    let answer = fetch(&url, "00:15:65:aa:bb:71", "001565aabb71.cfg").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let device = app
        .get(&format!("/api/v1/domains/{DOMAIN}/devices/001565aabb71"))
        .await
        .expect(200);
    assert_eq!(device["category"], CATEGORY);
    assert_eq!(
        (device["vendor"].as_str(), device["model"].as_str()),
        (Some("yealink"), Some("T54W"))
    );
    assert!(
        answer
            .text
            .contains(device["provisioning"]["url"].as_str().unwrap())
    );
    let events = app
        .get(&format!("/api/v1/domains/{DOMAIN}/events"))
        .await
        .expect(200);
    assert_eq!(events[0]["kind"], "device.provisioned");
    assert_eq!(events[0]["payload"]["by"], "auto-provisioning");

    // A wrong token (or category) gets what an unknown MAC gets, and is limited.
    let wrong = url.replace("abcdef%23XYZ", "abcdef");
    let plain = Phone::new(&app, &format!("{UA} 00:15:65:aa:bb:72"))
        .get_with("001565aabb72.cfg", &[])
        .await;
    for bad in [wrong.clone(), url.replace("acme%20IP%20Phone", "Other")] {
        let a = fetch(&bad, "00:15:65:aa:bb:72", "001565aabb72.cfg").await;
        assert_eq!(
            (a.status, a.text.as_str()),
            (plain.status, plain.text.as_str())
        );
    }
    app.get(&format!("/api/v1/domains/{DOMAIN}/devices/001565aabb72"))
        .await
        .problem(404, "not-found");
    fetch(&wrong, "00:15:65:aa:bb:72", "001565aabb72.cfg").await;
    // Three failures from this address: now even the right token waits.
    let locked = fetch(&url, "00:15:65:aa:bb:73", "001565aabb73.cfg").await;
    assert_eq!(locked.status, 404);
    app.get(&format!("/api/v1/domains/{DOMAIN}/devices/001565aabb73"))
        .await
        .problem(404, "not-found");
    let audit = app.get("/api/v1/audit?limit=100").await;
    assert_eq!(audit.text.matches("auto.refused").count(), 3);
    assert!(!audit.text.contains("abcdef"), "no token in the audit log");

    // Rotated: the old token stops working.
    let rotated = app
        .call(Method::PUT, &auto(""), Some(&app.token), Some(json!({})))
        .await
        .expect(200);
    assert_ne!(rotated["token"], TOKEN);
    assert_eq!(rotated["url"], Value::Null);
    app.delete(&auto("")).await.expect(204);
    app.get(&auto("")).await.problem(404, "not-found");
}
