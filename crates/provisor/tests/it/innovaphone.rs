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

fn provisioning_phone(key: &str, mac: &str, user: &str, password: &str, code: &str) -> String {
    let seed = "10046478319880090512700";
    json!({
        "mt": "ProvisioningPhone", "src": "src-1", "mac": mac, "code": code, "hwid": mac,
        "usename": user, "cn": "Test User", "seed1": seed,
        "password": inno::encrypt(seed, key, password),
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
    let stream = inno::rc4(format!("1:{key}").as_bytes(), &[0, 0]);
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
    // Tunnel traffic of a proven device is taken (and not used).
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
    // An unknown device without a code.
    let mut ws = connect(&app, &path).await;
    send_identify(&mut ws, "13r2", None, None).await;
    closed(&mut ws).await;
    // The code at another domain's endpoint is refused and stays live.
    let mut ws = connect(&app, "/other.example.com/devices/sysclients").await;
    send_identify(&mut ws, "13r2", Some(&code), None).await;
    closed(&mut ws).await;
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
