//! Events reaching the PBX side: webhooks (signed, in order, retried, with a delivery log,
//! surviving a restart in the middle of a delivery) and the long-polled event stream.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use provisor::config::Config;
use provisor_testkit::{TestApp, both};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

const DOMAIN: &str = "acme.example.com";
const SECRET: &str = "0123456789abcdef-secret";

/// What the receiver got: headers and body of each request, and what it answered.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, String, u16)>>>,
    answer: Arc<AtomicU16>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let status = r.answer.load(Ordering::SeqCst);
    r.got.lock().unwrap().push((headers, body, status));
    StatusCode::from_u16(status).unwrap()
}

async fn receiver(status: u16) -> (Receiver, String) {
    let r = Receiver::default();
    r.answer.store(status, Ordering::SeqCst);
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, url)
}

impl Receiver {
    /// Waits (up to 30 s) until `done` holds for what was received.
    async fn until(&self, done: impl Fn(&[(HeaderMap, String, u16)]) -> bool) {
        for _ in 0..300 {
            if done(&self.got.lock().unwrap()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the webhook never got what was expected");
    }
}

fn quick_retries(c: &mut Config) {
    c.webhook_retry_base_seconds = 1;
}

async fn setup(app: &TestApp) {
    app.create_domain(DOMAIN).await;
    app.create_user(DOMAIN, "alice").await;
    app.create_account(DOMAIN, "alice", "alice1", "pw-alice-1")
        .await;
}

/// A phone redeems a fresh code for `mac`: one `device.provisioned` event.
async fn provisioned(app: &TestApp, mac: &str) {
    let code = app
        .post(
            &format!("/api/v1/domains/{DOMAIN}/codes"),
            json!({"user": "alice"}),
        )
        .await
        .expect(201)["code"]
        .clone();
    app.send(
        Method::POST,
        "/p/activate",
        None,
        "application/json",
        &json!({"code": code, "mac": mac}).to_string(),
    )
    .await
    .expect(200);
}

fn verify(headers: &HeaderMap, body: &str) {
    let sig = headers["x-provisor-signature"].to_str().unwrap();
    let (t, v1) = sig
        .strip_prefix("t=")
        .and_then(|s| s.split_once(",v1="))
        .expect("t=…,v1=…");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    assert_eq!(
        v1,
        hex::encode(mac.finalize().into_bytes()),
        "the signature checks out"
    );
}

both!(webhooks_survive_a_restart, survive, super::quick_retries);
async fn survive(app: TestApp) {
    setup(&app).await;
    let (rx, url) = receiver(500).await;
    let hooks = format!("/api/v1/domains/{DOMAIN}/webhooks");
    app.post(&hooks, json!({"url": "ftp://x/"}))
        .await
        .problem(400, "invalid-field");
    let created = app
        .post(&hooks, json!({"url": url, "secret": SECRET}))
        .await
        .expect(201);
    assert_eq!(created["secret"], SECRET);
    let id = created["webhook"]["id"].as_i64().unwrap();

    provisioned(&app, "001565aabb81").await;
    // The receiver is down (500): the first attempt fails and is logged.
    rx.until(|got| !got.is_empty()).await;
    // (The attempt is logged just after the receiver answered it.)
    let log = app
        .eventually(&format!("{hooks}/{id}/deliveries"), |l| {
            l.as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert_eq!(log[0]["status"], 500);
    assert_eq!(log[0]["attempt"], 1);

    // Provisor restarts before the event is delivered; the receiver comes back.
    let app = app.restart().await;
    rx.answer.store(200, Ordering::SeqCst);
    rx.until(|got| got.iter().any(|(_, _, s)| *s == 200)).await;
    let (headers, body, _) = rx
        .got
        .lock()
        .unwrap()
        .iter()
        .find(|(_, _, s)| *s == 200)
        .cloned()
        .unwrap();
    verify(&headers, &body);
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["kind"], "device.provisioned");
    assert_eq!(event["payload"]["mac"], "001565aabb81");
    assert_eq!(
        headers["x-provisor-event-id"],
        event["id"].to_string().as_str()
    );
    assert_eq!(headers["x-provisor-event"], "device.provisioned");

    // The next events follow, in order, each once it was answered 2xx.
    provisioned(&app, "001565aabb82").await;
    provisioned(&app, "001565aabb83").await;
    rx.until(|got| got.iter().filter(|(_, _, s)| *s == 200).count() >= 3)
        .await;
    let delivered: Vec<Value> = rx
        .got
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, s)| *s == 200)
        .map(|(_, b, _)| serde_json::from_str(b).unwrap())
        .collect();
    let macs: Vec<&str> = delivered
        .iter()
        .map(|e| e["payload"]["mac"].as_str().unwrap())
        .collect();
    assert_eq!(macs, ["001565aabb81", "001565aabb82", "001565aabb83"]);
    assert!(
        delivered
            .windows(2)
            .all(|w| w[0]["id"].as_i64() < w[1]["id"].as_i64())
    );
    let log = app
        .eventually(&format!("{hooks}/{id}/deliveries"), |l| {
            l.as_array()
                .is_some_and(|a| a.len() >= 4 && a[..3].iter().all(|d| d["status"] == 200))
        })
        .await;
    let statuses: Vec<i64> = log
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|d| d["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses.first(), Some(&500));
    assert_eq!(&statuses[statuses.len() - 3..], [200, 200, 200]);
    let last = delivered[2]["id"].clone();
    let listed = app.eventually(&hooks, |l| l[0]["cursor"] == last).await;
    assert!(
        !listed.to_string().contains(SECRET),
        "the secret is shown once"
    );

    app.delete(&format!("{hooks}/{id}")).await.expect(204);
    app.get(&format!("{hooks}/{id}/deliveries"))
        .await
        .problem(404, "not-found");
}

both!(the_event_stream_long_polls, long_poll);
async fn long_poll(app: TestApp) {
    setup(&app).await;
    provisioned(&app, "001565aabb91").await;
    let events = format!("/api/v1/domains/{DOMAIN}/events");
    let first = app.get(&events).await.expect(200);
    let last = first.as_array().unwrap().last().unwrap()["id"]
        .as_i64()
        .unwrap();
    // Nothing new: the request waits, and returns as soon as something happens.
    let waiting = {
        let client = app.client.clone();
        let url = format!("{}{events}?after={last}&wait=20", app.base);
        let token = app.token.clone();
        tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    provisioned(&app, "001565aabb92").await;
    let got = waiting.await.unwrap();
    assert_eq!(got[0]["payload"]["mac"], "001565aabb92");
    // With nothing to come and no wait, an empty list at once.
    let later = got.as_array().unwrap().last().unwrap()["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        app.get(&format!("{events}?after={later}"))
            .await
            .expect(200),
        json!([])
    );
}
