//! The phone cache: phones get their files from it, and what they get follows every change
//! however it is made (the API, past the HTTP layer as the CLI or another node writes,
//! deletion), while changes that touch no file leave it alone.

use std::time::Duration;

use provisor_domain::model::{Actor, SipAccountPatch};
use provisor_domain::secret::SecretString;
use provisor_testkit::{Answer, Phone, TestApp, both};
use serde_json::{Value, json};

const DOMAIN: &str = "cache.example";
const MAC: &str = "001565cc0001";
const UA: &str = "Yealink SIP-T54W 96.86.0.100 00:15:65:cc:00:01";

/// `provisor_phone_cache_lookups_total` for `kind` and `result`.
pub(crate) async fn lookups(app: &TestApp, kind: &str, result: &str) -> u64 {
    let metrics = app.metrics().await;
    let series =
        format!("provisor_phone_cache_lookups_total{{kind=\"{kind}\",result=\"{result}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |n| n.trim().parse().unwrap())
}

async fn fetch(phone: &Phone) -> Answer {
    phone.get_with(&format!("{MAC}.cfg"), &[]).await
}

/// Fetches until the file has `wanted` (at most 5 s: the SQLite change poll is half a
/// second, PostgreSQL's notifications take milliseconds).
async fn until_served(phone: &Phone, wanted: &str) -> Duration {
    let started = std::time::Instant::now();
    loop {
        let answer = fetch(phone).await;
        if answer.text.contains(wanted) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still not served {wanted:?} after 5 s: {}",
            answer.text
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn account_id(app: &TestApp, sip_user: &str) -> i64 {
    let accounts = app
        .get(&format!("/api/v1/domains/{DOMAIN}/accounts?user=dana"))
        .await
        .expect(200);
    accounts["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["sip_user"] == sip_user)
        .unwrap()["id"]
        .as_i64()
        .unwrap()
}

/// Every fetch is written as a contact: that they flush nothing is then seen.
fn every_contact(c: &mut provisor::config::Config) {
    c.phone_contact_seconds = 0;
}

both!(
    cached_files_follow_every_change,
    follow,
    super::every_contact
);
async fn follow(app: TestApp) {
    app.create_domain(DOMAIN).await;
    let device: Value = app
        .device_with_two_lines(
            DOMAIN,
            "dana",
            json!({"mac": MAC, "vendor": "yealink", "model": "T54W"}),
        )
        .await;
    let url = device["provisioning"]["url"].as_str().unwrap();
    let mut phone = Phone::new(&app, UA);
    phone.move_to(url);

    // The first fetch tells the device's firmware (a change: it is written with the
    // first contact); after it the second fetch is read again and the third is the second's
    // file, from the cache; so is a fetch after their contact records are written (which
    // change nothing a file is made from).
    let first = fetch(&phone).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert!(first.text.contains("pw-dana-1"), "{}", first.text);
    let contact = || async {
        app.eventually(&format!("/api/v1/domains/{DOMAIN}/devices/{MAC}"), |d| {
            !d["last_contact"].is_null()
        })
        .await["last_contact"]
            .clone()
    };
    let learned = contact().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = fetch(&phone).await;
    let hits = lookups(&app, "file", "hit").await;
    let third = fetch(&phone).await;
    assert_eq!(third.text, second.text);
    assert_eq!(third.headers.get("etag"), second.headers.get("etag"));
    assert_eq!(
        lookups(&app, "file", "hit").await,
        hits + 1,
        "served from the cache"
    );
    app.eventually(&format!("/api/v1/domains/{DOMAIN}/devices/{MAC}"), |d| {
        d["last_contact"] != learned
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    fetch(&phone).await;
    assert_eq!(
        lookups(&app, "file", "hit").await,
        hits + 2,
        "contacts flush nothing"
    );

    // A change through the API is served on the very next fetch.
    let line1 = account_id(&app, "dana1").await;
    app.patch(
        &format!("/api/v1/domains/{DOMAIN}/accounts/{line1}"),
        json!({"password": "pw-dana-api"}),
    )
    .await
    .expect(200);
    let after = fetch(&phone).await;
    assert!(after.text.contains("pw-dana-api"), "{}", after.text);
    assert!(!after.text.contains("pw-dana-1\n"), "{}", after.text);

    // A change written past this node's HTTP layer (as the CLI, or another node, writes):
    // the database says so, and the fetches after it have it.
    let d = app.store.domain(DOMAIN).await.unwrap();
    let line2 = account_id(&app, "dana2").await;
    app.store
        .update_account(
            &Actor::cli(),
            d.id,
            line2,
            &SipAccountPatch {
                password: Some(SecretString::new("pw-dana-store")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    until_served(&phone, "pw-dana-store").await;

    // The domain's settings reach the file the same way.
    app.patch(
        &format!("/api/v1/domains/{DOMAIN}"),
        json!({"settings": {"ntp_server": "ntp.cache.example"}}),
    )
    .await
    .expect(200);
    let after = fetch(&phone).await;
    assert!(after.text.contains("ntp.cache.example"), "{}", after.text);

    // Deleted: its token is refused on the next fetch.
    app.delete(&format!("/api/v1/domains/{DOMAIN}/devices/{MAC}"))
        .await
        .expect(204);
    assert_eq!(fetch(&phone).await.status, 404);
}
