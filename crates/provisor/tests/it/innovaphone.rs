//! innovaphone: a WebSocket client plays the PBX (AppChallenge, AppLogin, ProvisioningPhone
//! with a password it encrypted with the session key) and an emulated phone then fetches
//! its config; another plays an innovaphone device registering over sysclient with a
//! provisioning code. Bad logins, frames and ciphertexts are refused with nothing written.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use provisor::config::Config;
use provisor_domain::innovaphone as inno;
use provisor_testkit::{Phone, TestApp, both};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const DOMAIN: &str = "acme.example.com";
const APP_PASSWORD: &str = "app-object-secret";
const ADMIN_PASSWORD: &str = "device-admin-pw";
const PHONE_MAC: &str = "001565aabb99";
const PHONE_UA: &str = "Yealink SIP-T54W 96.86.0.100 00:15:65:aa:bb:99";

fn strict(c: &mut Config) {
    c.code_failures_per_ip = 3;
    c.code_lockout_seconds = 60;
}

async fn connect(app: &TestApp, path: &str) -> Ws {
    let url = format!("ws://{}{path}", app.address);
    tokio_tungstenite::connect_async(url)
        .await
        .expect("the WebSocket opens")
        .0
}

async fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.unwrap();
}

/// The next message, `None` once the server closed the connection.
async fn next(ws: &mut Ws) -> Option<Message> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an answer within 10 s")
        {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(m)) => return Some(m),
        }
    }
}

async fn recv_json(ws: &mut Ws) -> Value {
    match next(ws).await {
        Some(Message::Text(t)) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("expected a JSON message, got {other:?}"),
    }
}

async fn closed(ws: &mut Ws) {
    assert!(next(ws).await.is_none(), "the server closes the connection");
}

/// The reason of the close frame the server ends with (messages before it are skipped).
async fn close_reason(ws: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an answer within 10 s")
        {
            Some(Ok(Message::Close(Some(frame)))) => return frame.reason.to_string(),
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return String::new(),
            Some(Ok(_)) => continue,
        }
    }
}

/// A WebSocket from the local address `from` (127.0.0.x), to tell peers apart.
async fn connect_from(app: &TestApp, path: &str, from: &str) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(app.address).await.unwrap();
    let url = format!("ws://{}{path}", app.address);
    tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
        .await
        .expect("the WebSocket opens")
        .0
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A device of the domain (`rest`: a sub-resource such as `/innovaphone`), as the operator.
async fn fetch_device(app: &TestApp, mac: &str, rest: &str) -> Value {
    app.get(&format!("/api/v1/domains/{DOMAIN}/devices/{mac}{rest}"))
        .await
        .expect(200)
}

async fn setup(app: &TestApp) {
    app.create_domain(DOMAIN).await;
    app.create_category(DOMAIN, "ThirdParty", true).await;
    app.create_category(DOMAIN, "Desk", true).await;
    let set = app
        .call(
            Method::PUT,
            &format!("/api/v1/domains/{DOMAIN}/innovaphone"),
            Some(&app.token),
            Some(json!({
                "app_password": APP_PASSWORD, "admin_password": ADMIN_PASSWORD,
                "default_category": "ThirdParty", "pbx_domain": "pbx.acme.example.com",
            })),
        )
        .await
        .expect(200);
    assert_eq!(set["app_password_set"], true);
    assert!(!set.to_string().contains(APP_PASSWORD), "{set}");
    assert_eq!(
        set["app_url"],
        format!("ws://{}/innovaphone/{DOMAIN}", app.address)
    );
    assert_eq!(
        set["sysclient_url"],
        format!("ws://{}/{DOMAIN}/devices/sysclients", app.address)
    );
}

/// Challenge and login as the PBX, with an `info` object written with white space (it is
/// hashed as sent); the session key.
async fn login(ws: &mut Ws, password: &str) -> Result<String, Value> {
    send(ws, r#"{"mt":"AppChallenge"}"#).await;
    let challenge = recv_json(ws).await;
    assert_eq!(challenge["mt"], "AppChallengeResult");
    let challenge = challenge["challenge"].as_str().unwrap().to_owned();
    assert!(challenge.len() <= 16 && challenge.bytes().all(|b| b.is_ascii_digit()));
    let info = r#"{ "appobj": "provisor",  "cn": "Provisor / App" }"#;
    let digest = sha256_hex(&format!(
        "provisor:pbx.acme.example.com:provisor:guid-1:Provisor:{info}:{challenge}:{password}"
    ));
    send(
        ws,
        &format!(
            r#"{{"mt":"AppLogin","app":"provisor","domain":"pbx.acme.example.com","sip":"provisor","guid":"guid-1","dn":"Provisor","digest":"{digest}","pbxObj":"not-hashed","info":{info}}}"#
        ),
    )
    .await;
    let result = recv_json(ws).await;
    assert_eq!(result["mt"], "AppLoginResult");
    if result["ok"] == true {
        Ok(sha256_hex(&format!(
            "innovaphoneAppSessionKey:{challenge}:{password}"
        )))
    } else {
        Err(result)
    }
}

/// RC4 written again here, so the end-to-end test does not encrypt with the code that
/// decrypts (the unit vectors pin that one).
fn rc4(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut s: Vec<u8> = (0..=255).collect();
    let mut j = 0usize;
    for i in 0..256 {
        j = (j + s[i] as usize + key[i % key.len()] as usize) % 256;
        s.swap(i, j);
    }
    let (mut i, mut j) = (0usize, 0usize);
    data.iter()
        .map(|b| {
            i = (i + 1) % 256;
            j = (j + s[i] as usize) % 256;
            s.swap(i, j);
            b ^ s[(s[i] as usize + s[j] as usize) % 256]
        })
        .collect()
}

fn provisioning_phone(key: &str, mac: &str, user: &str, password: &str, code: &str) -> String {
    let seed = "10046478319880090512700";
    json!({
        "mt": "ProvisioningPhone", "src": "src-1", "mac": mac, "code": code, "hwid": mac,
        "usename": user, "cn": "Test User", "seed1": seed,
        "password": hex::encode(rc4(format!("{seed}:{key}").as_bytes(), password.as_bytes())),
        "domain": "pbx.acme.example.com", "dns": "",
    })
    .to_string()
}

both!(a_pbx_hands_a_third_party_phone_over, pbx_phone);
async fn pbx_phone(app: TestApp) {
    setup(&app).await;
    let mut ws = connect(&app, &format!("/innovaphone/{DOMAIN}")).await;
    let key = login(&mut ws, APP_PASSWORD).await.expect("the login works");
    send(
        &mut ws,
        r#"{"mt":"PbxInfo","domain":"pbx.acme.example.com","pbx":"master","apis":["Services"]}"#,
    )
    .await;
    send(
        &mut ws,
        r#"{"mt":"ServiceInfo","app":"provisor","src":"s"}"#,
    )
    .await;
    let info = recv_json(&mut ws).await;
    assert_eq!(info["mt"], "ServiceInfoResult");
    assert!(info["info"]["apis"]["com.innovaphone.provisioning"].is_object());

    let message = provisioning_phone(&key, PHONE_MAC, "test_user", "sip-pass-ü1", "562822784750");
    send(&mut ws, &message).await;
    let result = recv_json(&mut ws).await;
    assert_eq!(result["mt"], "ProvisioningPhoneResult");
    assert_eq!(result["src"], "src-1");
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["created"], true);
    // A replay is answered the same and changes nothing.
    let audit_before = app.get("/api/v1/audit?limit=1000").await.expect(200)["items"]
        .as_array()
        .unwrap()
        .len();
    send(&mut ws, &message).await;
    let again = recv_json(&mut ws).await;
    assert_eq!(again["ok"], true);
    assert_eq!(again["created"], false);
    let audit_after = app.get("/api/v1/audit?limit=1000").await.expect(200)["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(audit_before, audit_after, "a replay writes nothing");
    // The Users Admin workflow: several phones on one connection, with a live code of
    // this domain naming the category.
    let code = app
        .post(
            &format!("/api/v1/domains/{DOMAIN}/codes"),
            json!({"user": "test_user", "category": "Desk"}),
        )
        .await;
    let code = code.expect(201)["code"].as_str().unwrap().to_owned();
    send(
        &mut ws,
        &provisioning_phone(&key, "001565aabb98", "second_user", "pw-2", &code),
    )
    .await;
    assert_eq!(recv_json(&mut ws).await["ok"], true);

    let device = fetch_device(&app, PHONE_MAC, "").await;
    assert_eq!(device["user"], "test_user");
    assert_eq!(device["category"], "ThirdParty");
    let handed = fetch_device(&app, PHONE_MAC, "/innovaphone").await;
    assert_eq!(handed["kind"], "pbx-phone");
    assert_eq!(handed["hwid"], PHONE_MAC);
    let second = fetch_device(&app, "001565aabb98", "").await;
    assert_eq!(second["category"], "Desk", "the code's category");
    let account = app
        .get(&format!(
            "/api/v1/domains/{DOMAIN}/users/test_user/accounts"
        ))
        .await
        .expect(200);
    assert_eq!(account["items"][0]["registrar"], "pbx.acme.example.com");

    // The phone boots: the hand-off moves it to its tokenized URL, where its config
    // carries the password the PBX sent.
    let mut phone = Phone::new(&app, PHONE_UA);
    let handoff = phone.get(&format!("{PHONE_MAC}.cfg")).await;
    assert_eq!(handoff.status, 200, "{}", handoff.text);
    assert!(!handoff.text.contains("sip-pass"), "{}", handoff.text);
    phone.move_to(device["provisioning"]["url"].as_str().unwrap());
    let config = phone.get(&format!("{PHONE_MAC}.cfg")).await;
    assert_eq!(config.status, 200);
    assert!(
        config.text.contains("sip-pass-ü1") && config.text.contains("test_user"),
        "{}",
        config.text
    );
    assert!(!config.text.contains(APP_PASSWORD));
}

both!(
    bad_pbx_logins_and_messages_are_refused,
    pbx_refusals,
    super::strict
);
async fn pbx_refusals(app: TestApp) {
    setup(&app).await;
    let path = format!("/innovaphone/{DOMAIN}");

    // Nothing before the login.
    let mut ws = connect(&app, &path).await;
    send(
        &mut ws,
        &provisioning_phone("0", PHONE_MAC, "early", "pw", ""),
    )
    .await;
    let r = recv_json(&mut ws).await;
    assert_eq!(r["mt"], "ProvisioningPhoneResult");
    assert_eq!(r["error"], "login-required");
    closed(&mut ws).await;
    // A login without a challenge.
    let mut ws = connect(&app, &path).await;
    send(&mut ws, r#"{"mt":"AppLogin","app":"x","digest":"00"}"#).await;
    assert_ne!(recv_json(&mut ws).await["ok"], true);
    closed(&mut ws).await;
    // Not JSON, and binary.
    let mut ws = connect(&app, &path).await;
    send(&mut ws, "{not json").await;
    closed(&mut ws).await;
    let mut ws = connect(&app, &path).await;
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    closed(&mut ws).await;
    // A wrong password, and an unknown domain, are refused alike.
    let mut ws = connect(&app, &path).await;
    let refused = login(&mut ws, "wrong").await.unwrap_err();
    assert_eq!(refused["error"], "login-failed");
    closed(&mut ws).await;
    let mut ws = connect(&app, "/innovaphone/nowhere.example.com").await;
    assert_eq!(
        login(&mut ws, APP_PASSWORD).await.unwrap_err()["error"],
        "login-failed"
    );
    // The info object re-serialized (compact) does not match what was sent.
    let mut ws = connect(&app, &path).await;
    send(&mut ws, r#"{"mt":"AppChallenge"}"#).await;
    let challenge = recv_json(&mut ws).await["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    let digest = sha256_hex(&format!(
        "provisor:::::{{\"cn\":\"x\"}}:{challenge}:{APP_PASSWORD}"
    ));
    send(
        &mut ws,
        &format!(
            r#"{{"mt":"AppLogin","app":"provisor","digest":"{digest}","info":{{ "cn": "x" }}}}"#
        ),
    )
    .await;
    assert_ne!(recv_json(&mut ws).await["ok"], true);

    let audit = app.get("/api/v1/audit?limit=1000").await.expect(200);
    assert!(audit.to_string().contains("innovaphone.refused"), "{audit}");
    // Three failures from this address: now even the right password is refused.
    let mut ws = connect(&app, &path).await;
    let locked = login(&mut ws, APP_PASSWORD).await.unwrap_err();
    assert!(
        locked["errorText"].as_str().unwrap().contains("too many"),
        "{locked}"
    );
    let users = app.get(&format!("/api/v1/domains/{DOMAIN}/users")).await;
    assert_eq!(users.expect(200)["items"], json!([]));
}

both!(bad_ciphertexts_and_domains_write_nothing, pbx_bad_messages);
async fn pbx_bad_messages(app: TestApp) {
    setup(&app).await;
    let mut ws = connect(&app, &format!("/innovaphone/{DOMAIN}")).await;
    let key = login(&mut ws, APP_PASSWORD).await.unwrap();
    let mut expect_error = async |message: Value, error: &str| {
        send(&mut ws, &message.to_string()).await;
        let r = recv_json(&mut ws).await;
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(r["error"], error, "{r}");
    };
    let good = |v: Value| {
        let mut m: Value =
            serde_json::from_str(&provisioning_phone(&key, PHONE_MAC, "bad", "pw", "")).unwrap();
        for (k, val) in v.as_object().unwrap() {
            m[k] = val.clone();
        }
        m
    };
    expect_error(good(json!({"password": "zz"})), "undecryptable").await;
    expect_error(good(json!({"password": "abc"})), "undecryptable").await;
    // Bytes that decrypt to invalid UTF-8: the keystream XOR 0xff.
    let stream = rc4(format!("1:{key}").as_bytes(), &[0, 0]);
    let invalid = hex::encode([stream[0] ^ 0xff, stream[1] ^ 0xfe]);
    expect_error(
        good(json!({"seed1": "1", "password": invalid})),
        "undecryptable",
    )
    .await;
    // (A ciphertext made with another key cannot be told apart where it decrypts to text:
    // RC4 has no integrity check. An empty password is refused.)
    expect_error(good(json!({"password": ""})), "undecryptable").await;
    expect_error(
        good(json!({"domain": "other.example.com"})),
        "unknown-domain",
    )
    .await;
    expect_error(good(json!({"mac": "not-a-mac"})), "invalid-mac").await;
    expect_error(good(json!({"usename": "bad name!"})), "invalid-field").await;
    assert_eq!(
        app.get(&format!("/api/v1/domains/{DOMAIN}/users"))
            .await
            .expect(200)["items"],
        json!([])
    );
    app.get(&format!("/api/v1/domains/{DOMAIN}/devices/{PHONE_MAC}"))
        .await
        .problem(404, "not-found");
}

// ---- sysclient ----

const DEVICE_MAC: &str = "009033400001";

fn frame(kind: u16, body: &Value) -> Message {
    Message::Binary(inno::admin_frame(kind, body).into())
}

/// The next admin message: its type and JSON.
async fn recv_admin(ws: &mut Ws) -> (u16, Value) {
    match next(ws).await {
        Some(Message::Binary(b)) => match inno::Frame::parse(&b).unwrap() {
            inno::Frame::Admin { kind, json } => (kind, serde_json::from_slice(json).unwrap()),
            other => panic!("expected an admin message, got {other:?}"),
        },
        other => panic!("expected a binary message, got {other:?}"),
    }
}

async fn send_identify(ws: &mut Ws, version: &str, code: Option<&str>, digest: Option<&str>) {
    ws.send(frame(
        inno::admin::IDENTIFY,
        &identify(version, code, digest),
    ))
    .await
    .unwrap();
}

fn identify(version: &str, code: Option<&str>, digest: Option<&str>) -> Value {
    let mut v = json!({
        "id": DEVICE_MAC, "product": "IP222", "version": version,
        "platform": {"type": "PHONE"},
        "ethIfs": [{"if": "ETH0", "ipv4": "10.0.0.5", "ipv6": ""}],
    });
    if let Some(code) = code {
        v["provisioningCode"] = code.into();
    }
    if let Some(digest) = digest {
        v["digest"] = digest.into();
    }
    v
}

async fn sysclient_setup(app: &TestApp) -> String {
    setup(app).await;
    app.create_user(DOMAIN, "ida").await;
    app.create_account(DOMAIN, "ida", "ida1", "pw-ida-1").await;
    app.post(
        &format!("/api/v1/domains/{DOMAIN}/codes"),
        json!({"user": "ida", "category": "Desk"}),
    )
    .await
    .expect(201)["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

both!(
    an_innovaphone_device_registers_with_a_code,
    sysclient_register
);
async fn sysclient_register(app: TestApp) {
    let code = sysclient_setup(&app).await;
    let path = format!("/{DOMAIN}/devices/sysclients");
    let mut ws = connect(&app, &path).await;
    send_identify(&mut ws, "13r2", Some(&code), None).await;
    let (kind, body) = recv_admin(&mut ws).await;
    assert_eq!(kind, inno::admin::PASSWORD);
    let password = body["password"].as_str().unwrap().to_owned();
    assert_eq!(password.len(), 32);
    let (kind, body) = recv_admin(&mut ws).await;
    assert_eq!(kind, inno::admin::ADMIN_PASSWORD);
    let admin = inno::decrypt(
        body["seed"].as_str().unwrap(),
        &password,
        body["pwd"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(admin.expose(), ADMIN_PASSWORD);
    drop(ws);

    let device = fetch_device(&app, DEVICE_MAC, "").await;
    assert_eq!(device["vendor"], "innovaphone");
    assert_eq!(device["model"], "IP222");
    assert_eq!(device["firmware"], "13r2");
    assert_eq!(device["category"], "Desk");
    assert_eq!(device["user"], "ida");
    assert_eq!(device["lines"][0]["sip_user"], "ida1");

    // Later connections are challenged, and the digest proves the device.
    let mut ws = connect(&app, &path).await;
    send_identify(&mut ws, "14r1", None, None).await;
    let (kind, body) = recv_admin(&mut ws).await;
    assert_eq!(kind, inno::admin::CHALLENGE);
    let challenge = body["challenge"].as_str().unwrap();
    let digest = sha256_hex(&format!("{DEVICE_MAC}:IP222:14r1:{challenge}:{password}"));
    send_identify(&mut ws, "14r1", None, Some(&digest)).await;
    let (kind, _) = recv_admin(&mut ws).await;
    assert_eq!(kind, inno::admin::ADMIN_PASSWORD);
    let device = fetch_device(&app, DEVICE_MAC, "").await;
    assert_eq!(device["firmware"], "14r1", "updated from Identify");
    assert!(device["last_contact"].is_string());
    let seen = fetch_device(&app, DEVICE_MAC, "/innovaphone").await;
    assert_eq!(seen["kind"], "sysclient");
    assert_eq!(seen["version"], "14r1");
    assert_eq!(seen["platform"], "PHONE");
    assert_eq!(seen["interfaces"][0]["ipv4"], "10.0.0.5");
    assert!(!seen.to_string().contains(&password), "{seen}");
    // Tunnel traffic of a proven device is taken (and not used) …
    ws.send(Message::Binary(
        inno::Frame::Tunnel {
            session: 1,
            event: 0,
            data: b"x",
        }
        .to_bytes()
        .into(),
    ))
    .await
    .unwrap();
    // … but it speaks for itself only: another device's MAC ends the connection, and
    // that device is unchanged.
    app.create_device(
        DOMAIN,
        json!({"mac": "001565aabbcc", "vendor": "yealink", "model": "T54W"}),
    )
    .await;
    let mut other = identify("6.6.6", None, None);
    other["id"] = "001565aabbcc".into();
    other["product"] = "EVIL".into();
    ws.send(frame(inno::admin::IDENTIFY, &other)).await.unwrap();
    assert_eq!(close_reason(&mut ws).await, "not registered");
    let untouched = fetch_device(&app, "001565aabbcc", "").await;
    assert_eq!(untouched["model"], "T54W");
    assert_eq!(untouched["firmware"], "");

    // A wrong digest closes the connection and changes nothing.
    let mut ws = connect(&app, &path).await;
    send_identify(&mut ws, "15r1", None, None).await;
    let (kind, _) = recv_admin(&mut ws).await;
    assert_eq!(kind, inno::admin::CHALLENGE);
    send_identify(&mut ws, "15r1", None, Some(&"0".repeat(64))).await;
    closed(&mut ws).await;
    let device = fetch_device(&app, DEVICE_MAC, "").await;
    assert_eq!(device["firmware"], "14r1");
}

both!(
    bad_sysclient_frames_and_codes_are_refused,
    sysclient_refusals
);
async fn sysclient_refusals(app: TestApp) {
    let code = sysclient_setup(&app).await;
    app.create_domain("other.example.com").await;
    let path = format!("/{DOMAIN}/devices/sysclients");
    for bad in [
        vec![],
        vec![9, 0, 0],
        vec![1, 0],
        vec![2, 0, 0],
        b"\x01\x00\x00{not json".to_vec(),
        b"\x01\x00\x00{\"id\":\"not-a-mac\"}".to_vec(),
        b"\x01\x00\x04{}".to_vec(),
    ] {
        let mut ws = connect(&app, &path).await;
        ws.send(Message::Binary(bad.clone().into())).await.unwrap();
        closed(&mut ws).await;
    }
    let mut ws = connect(&app, &path).await;
    send(&mut ws, "{}").await;
    closed(&mut ws).await;
    // An unknown device gets a challenge like a known one; its answer is refused like a
    // wrong one, and a code at another domain's (or no domain's) endpoint too: one reason.
    let mut reasons = Vec::new();
    for at in [path.as_str(), "/nowhere.example/devices/sysclients"] {
        let mut ws = connect(&app, at).await;
        send_identify(&mut ws, "13r2", None, None).await;
        let (kind, body) = recv_admin(&mut ws).await;
        assert_eq!(kind, inno::admin::CHALLENGE);
        assert_eq!(body["challenge"].as_str().unwrap().len(), 16);
        send_identify(&mut ws, "13r2", None, Some(&"0".repeat(64))).await;
        reasons.push(close_reason(&mut ws).await);
    }
    for at in [
        "/other.example.com/devices/sysclients",
        "/nowhere.example/devices/sysclients",
    ] {
        let mut ws = connect(&app, at).await;
        send_identify(&mut ws, "13r2", Some(&code), None).await;
        reasons.push(close_reason(&mut ws).await);
    }
    let mut ws = connect(&app, &path).await;
    send_identify(&mut ws, "13r2", Some("000000000000"), None).await;
    reasons.push(close_reason(&mut ws).await);
    assert_eq!(reasons, vec!["not registered"; 5]);
    app.get(&format!(
        "/api/v1/domains/other.example.com/devices/{DEVICE_MAC}"
    ))
    .await
    .problem(404, "not-found");
    assert_eq!(app.get("/healthz").await.status, 200, "the server is fine");
    let mut ws = connect(&app, &path).await;
    send_identify(&mut ws, "13r2", Some(&code), None).await;
    assert_eq!(recv_admin(&mut ws).await.0, inno::admin::PASSWORD);
}

both!(the_cli_sets_the_innovaphone_passwords, cli_settings);
async fn cli_settings(app: TestApp) {
    app.create_domain(DOMAIN).await;
    app.create_category(DOMAIN, "ThirdParty", true).await;
    let file = app.data_dir.path().join("app-password");
    std::fs::write(&file, "from-the-cli\n").unwrap();
    let printed = crate::cli::provisor_ok(
        &app,
        &[
            "--json",
            "innovaphone",
            "set",
            "--domain",
            DOMAIN,
            "--app-password-file",
            file.to_str().unwrap(),
            "--default-category",
            "ThirdParty",
        ],
    );
    let shown: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(shown["app_password_set"], true);
    assert_eq!(shown["default_category"], "ThirdParty");
    assert!(!printed.contains("from-the-cli"));
    let mut ws = connect(&app, &format!("/innovaphone/{DOMAIN}")).await;
    login(&mut ws, "from-the-cli")
        .await
        .expect("the CLI's password logs in");
    let audit = app.get("/api/v1/audit?limit=1000").await.expect(200);
    assert!(!audit.to_string().contains("from-the-cli"));
}

fn lenient(c: &mut Config) {
    c.code_failures_per_ip = 3;
    c.login_failures_per_domain = 2;
    c.code_lockout_seconds = 60;
}

both!(
    logins_at_the_same_moment_all_count,
    racing_logins,
    super::lenient
);
async fn racing_logins(app: TestApp) {
    setup(&app).await;
    let path = format!("/innovaphone/{DOMAIN}");
    let tries = (0..20).map(|_| async {
        let mut ws = connect(&app, &path).await;
        login(&mut ws, "wrong").await.unwrap_err()
    });
    let refusals = futures_util::future::join_all(tries).await;
    let checked = refusals
        .iter()
        .filter(|r| r["errorText"] == "the login is not correct")
        .count();
    assert_eq!(
        checked, 2,
        "two wrong logins lock the domain for new addresses"
    );
}

both!(
    a_domain_lock_does_not_lock_out_its_pbx,
    domain_lock,
    super::lenient
);
async fn domain_lock(app: TestApp) {
    setup(&app).await;
    let path = format!("/innovaphone/{DOMAIN}");
    // The PBX logs in once: its address is trusted from then on.
    let mut pbx = connect_from(&app, &path, "127.0.0.1").await;
    login(&mut pbx, APP_PASSWORD)
        .await
        .expect("the PBX logs in");
    // Wrong logins from two other addresses lock the domain …
    for from in ["127.0.0.2", "127.0.0.3"] {
        let mut ws = connect_from(&app, &path, from).await;
        assert_eq!(
            login(&mut ws, "guess").await.unwrap_err()["errorText"],
            "the login is not correct"
        );
    }
    // … for every new address, even with the right password …
    let mut ws = connect_from(&app, &path, "127.0.0.4").await;
    let locked = login(&mut ws, APP_PASSWORD).await.unwrap_err();
    assert!(
        locked["errorText"].as_str().unwrap().contains("too many"),
        "{locked}"
    );
    // … but not for the PBX that logged in before.
    let mut again = connect_from(&app, &path, "127.0.0.1").await;
    login(&mut again, APP_PASSWORD)
        .await
        .expect("the trusted PBX still logs in");
}
