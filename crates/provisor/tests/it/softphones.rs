//! Softphone apps: SessionTalk's requests as the app sends them (seed 003): first
//! provisioning, unchanged and changed re-provisioning, a revoked installation, a disabled
//! user, a wrong password.

use provisor_testkit::{TestApp, both};
use reqwest::Method;
use serde_json::{Value, json};

const DOMAIN: &str = "acme.example.com";
const LOGIN: &str = "jbloggs@acme.example.com";
const PASSWORD: &str = "7578743843-pw";

async fn setup(app: &TestApp) {
    app.create_domain(DOMAIN).await;
    app.post(
        &format!("/api/v1/domains/{DOMAIN}/users"),
        json!({"username": "jbloggs", "password": PASSWORD, "settings": {"messaging": true}}),
    )
    .await
    .expect(201);
    app.post(
        &format!("/api/v1/domains/{DOMAIN}/users/jbloggs/accounts"),
        json!({"sip_user": "user1", "password": "29de?8", "auth_user": "629456",
               "registrar": "pbx.example.com", "outbound_proxy": "proxy.example.com:5061", "transport": "tls"}),
    )
    .await
    .expect(201);
}

/// Gives jbloggs's SIP account a new password.
async fn change_sip_password(app: &TestApp, password: &str) {
    let accounts = app
        .get(&format!("/api/v1/domains/{DOMAIN}/users/jbloggs/accounts"))
        .await
        .expect(200);
    let id = accounts["items"][0]["id"].as_i64().unwrap();
    app.patch(
        &format!("/api/v1/domains/{DOMAIN}/accounts/{id}"),
        json!({"password": password}),
    )
    .await
    .expect(200);
}

/// The request exactly as the app sends it.
async fn provision(app: &TestApp, password: &str, reprovision: bool, device: &str) -> Value {
    let url = format!(
        "{}/sessiontalk/provisioning?username={}&password={}&reprovision={reprovision}&deviceId={device}",
        app.base,
        LOGIN.replace('@', "%40"),
        password
    );
    let response = reqwest::Client::new()
        .get(url)
        .header("connection", "close")
        .header("cache-control", "max-age=0")
        .header("user-agent", "SessionTalk/6.0.0")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

both!(sessiontalk_provisioning, sessiontalk);
async fn sessiontalk(app: TestApp) {
    setup(&app).await;
    let device = "3kQs875391li29";

    let first = provision(&app, PASSWORD, false, device).await;
    assert_eq!(first["update"], true, "{first}");
    assert_eq!(first["errmsg"], "");
    assert_eq!(
        first["sipaccounts"],
        json!([{
            "sipusername": "user1", "sippassword": "29de?8", "authusername": "629456",
            "transport": "TLS", "proxy": "proxy.example.com:5061",
            "srtp": "Enabled", "messaging": "Enabled", "video": "Enabled", "callrecording": "Disabled"
        }])
    );
    // Unchanged: the app keeps its accounts.
    let again = provision(&app, PASSWORD, true, device).await;
    assert_eq!(again["update"], false, "{again}");
    // Changed: the new password reaches the app.
    change_sip_password(&app, "n3w-pw").await;
    let changed = provision(&app, PASSWORD, true, device).await;
    assert_eq!(changed["update"], true);
    assert_eq!(changed["sipaccounts"][0]["sippassword"], "n3w-pw");
    assert_eq!(
        provision(&app, PASSWORD, true, device).await["update"],
        false
    );

    // Another installation is its own device; revoking one takes its accounts away.
    let other = provision(&app, PASSWORD, false, "second-install").await;
    assert_eq!(other["update"], true);
    let installs = app
        .get(&format!("/api/v1/domains/{DOMAIN}/users/jbloggs/installs"))
        .await
        .expect(200);
    assert_eq!(installs.as_array().unwrap().len(), 2);
    assert_eq!(installs[0]["app"], "sessiontalk");
    assert_eq!(installs[0]["install_id"], device);
    assert_eq!(installs[0]["user_agent"], "SessionTalk/6.0.0");
    let second = installs[1]["id"].as_i64().unwrap();
    app.delete(&format!(
        "/api/v1/domains/{DOMAIN}/users/jbloggs/installs/{second}"
    ))
    .await
    .expect(204);
    let revoked = provision(&app, PASSWORD, true, "second-install").await;
    assert_eq!(
        (revoked["update"].clone(), revoked["sipaccounts"].clone()),
        (json!(true), json!([]))
    );
    assert_eq!(
        provision(&app, PASSWORD, true, device).await["update"],
        false,
        "the other is untouched"
    );

    // Wrong password: the app shows the message and keeps nothing new.
    let wrong = provision(&app, "guess", true, device).await;
    assert_eq!(wrong["update"], false);
    assert_eq!(wrong["sipaccounts"], json!([]));
    assert!(!wrong["errmsg"].as_str().unwrap().is_empty());
    // The user is disabled: the app removes the accounts.
    app.patch(
        &format!("/api/v1/domains/{DOMAIN}/users/jbloggs"),
        json!({"enabled": false}),
    )
    .await
    .expect(200);
    let disabled = provision(&app, PASSWORD, true, device).await;
    assert_eq!(
        (disabled["update"].clone(), disabled["sipaccounts"].clone()),
        (json!(true), json!([]))
    );
    // A disabled user cannot sign in to self-service either.
    let answer = reqwest::Client::new()
        .get(format!("{}/api/v1/self/categories", app.base))
        .basic_auth(LOGIN, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    // No credential in the audit log.
    let audit = app
        .call(
            Method::GET,
            "/api/v1/audit?limit=100",
            Some(&app.token),
            None,
        )
        .await;
    assert!(!audit.text.contains("guess") && !audit.text.contains(PASSWORD));
}

/// An Acrobits request as the app sends it (seed 004), GET with a query.
async fn acrobits(app: &TestApp, query: &str, since: Option<&str>) -> reqwest::Response {
    let mut r = reqwest::Client::new()
        .get(format!("{}/acrobits/provisioning?{query}", app.base))
        .header("connection", "close")
        .header("cache-control", "max-age=0")
        .header("user-agent", "CloudSoftphone/1.5.6");
    if let Some(s) = since {
        r = r.header("if-modified-since", s);
    }
    r.send().await.unwrap()
}

fn node<'a>(doc: &'a roxmltree::Document<'a>, name: &str) -> &'a str {
    doc.descendants()
        .find(|n| n.has_tag_name(name))
        .and_then(|n| n.text())
        .unwrap_or_else(|| panic!("no <{name}>"))
}

both!(acrobits_provisioning, acrobits_flow);
async fn acrobits_flow(app: TestApp) {
    setup(&app).await;
    let defs = app
        .get(&format!("/api/v1/domains/{DOMAIN}/acrobits"))
        .await
        .expect(200);
    assert!(defs["InitialProvisioningUrl"]
        .as_str()
        .unwrap()
        .ends_with("/acrobits/provisioning?cloud_username=%username%&cloud_password=%password%&cloud_id=%fullcode%"));

    let login = LOGIN.replace('@', "%40");
    let first = acrobits(
        &app,
        &format!(
            "cloud_username={login}&cloud_password={PASSWORD}&cloud_id=EXAMPLE&initialScreen=1"
        ),
        None,
    )
    .await;
    assert_eq!(first.status(), 200);
    assert!(
        first.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/xml")
    );
    let modified = first.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_owned();
    let text = first.text().await.unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "account");
    assert_eq!(node(&doc, "username"), "user1");
    assert_eq!(node(&doc, "password"), "29de?8");
    assert_eq!(node(&doc, "authUsername"), "629456");
    assert_eq!(node(&doc, "host"), "pbx.example.com");
    assert_eq!(node(&doc, "proxy"), "proxy.example.com:5061");
    assert_eq!(node(&doc, "transport"), "tls");
    assert_eq!(node(&doc, "allowMessage"), "1");
    assert_eq!(node(&doc, "extProvLogoutStatusCode"), "410");
    assert!(node(&doc, "extProvUrl").contains("install=%account[X-install-id]%"));
    let install = node(&doc, "X-install-id").to_owned();

    // Re-provisioning as the app does it, with the account's values: unchanged is 304.
    let again = format!("cloud_username={login}&cloud_password={PASSWORD}&install={install}");
    let unchanged = acrobits(&app, &again, Some(&modified)).await;
    assert_eq!(unchanged.status(), 304);
    // Changed data: the new Account XML.
    change_sip_password(&app, "n3w-pw").await;
    let changed = acrobits(&app, &again, Some(&modified)).await;
    assert_eq!(changed.status(), 200);
    assert!(
        changed
            .text()
            .await
            .unwrap()
            .contains("<password>n3w-pw</password>")
    );

    // Wrong password at first sign-in: a message; on re-provisioning: log out.
    let wrong = acrobits(
        &app,
        &format!("cloud_username={login}&cloud_password=guess&cloud_id=EXAMPLE"),
        None,
    )
    .await;
    assert_eq!(wrong.status(), 403);
    assert!(wrong.text().await.unwrap().contains("<error><message>"));
    let gone = acrobits(
        &app,
        &format!("cloud_username={login}&cloud_password=guess&install={install}"),
        None,
    )
    .await;
    assert_eq!(gone.status(), 410);
    // A revoked installation is logged out.
    let listed = app
        .get(&format!("/api/v1/domains/{DOMAIN}/users/jbloggs/installs"))
        .await
        .expect(200);
    let id = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["install_id"] == install.as_str())
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    app.delete(&format!(
        "/api/v1/domains/{DOMAIN}/users/jbloggs/installs/{id}"
    ))
    .await
    .expect(204);
    assert_eq!(acrobits(&app, &again, None).await.status(), 410);
    // A disabled user is logged out.
    app.patch(
        &format!("/api/v1/domains/{DOMAIN}/users/jbloggs"),
        json!({"enabled": false}),
    )
    .await
    .expect(200);
    assert_eq!(acrobits(&app, &again, None).await.status(), 410);
    let installs = app
        .get(&format!("/api/v1/domains/{DOMAIN}/users/jbloggs/installs"))
        .await
        .expect(200);
    assert!(
        installs
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["app"] == "acrobits" && i["install_id"] == install.as_str())
    );
}

fn entries(doc: &roxmltree::Document<'_>, section: &str) -> Vec<(String, String)> {
    doc.descendants()
        .find(|n| n.has_tag_name("section") && n.attribute("name") == Some(section))
        .unwrap_or_else(|| panic!("no section {section}"))
        .children()
        .filter(|n| n.has_tag_name("entry"))
        .map(|n| {
            (
                n.attribute("name").unwrap().to_owned(),
                n.text().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

both!(linphone_remote_provisioning, linphone_flow);
async fn linphone_flow(app: TestApp) {
    setup(&app).await;
    app.post(
        &format!("/api/v1/domains/{DOMAIN}/users/jbloggs/accounts"),
        json!({"sip_user": "user2", "password": "pw<&>2", "registrar": "pbx.example.com"}),
    )
    .await
    .expect(201);
    let created = app
        .post(
            &format!("/api/v1/domains/{DOMAIN}/users/jbloggs/linphone"),
            json!({}),
        )
        .await
        .expect(201);
    let url = created["url"].as_str().unwrap().to_owned();
    assert!(url.contains("/linphone/"));
    let fetched = reqwest::get(&url).await.unwrap();
    assert_eq!(fetched.status(), 200);
    let text = fetched.text().await.unwrap();
    // The lpconfig format: a proxy_N and an auth_info_N section per SIP account.
    let doc = roxmltree::Document::parse(&text).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "config");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.linphone.org/xsds/lpconfig.xsd")
    );
    let p0 = entries(&doc, "proxy_0");
    assert!(
        p0.contains(&(
            "reg_proxy".into(),
            "<sip:proxy.example.com:5061;transport=tls>".into()
        )),
        "{p0:?}"
    );
    assert!(
        p0.contains(&("reg_identity".into(), "<sip:user1@pbx.example.com>".into())),
        "{p0:?}"
    );
    assert!(p0.contains(&("reg_sendregister".into(), "1".into())));
    let a0 = entries(&doc, "auth_info_0");
    assert!(a0.contains(&("userid".into(), "629456".into())));
    assert!(a0.contains(&("passwd".into(), "29de?8".into())));
    let a1 = entries(&doc, "auth_info_1");
    assert!(
        a1.contains(&("passwd".into(), "pw<&>2".into())),
        "escaped and read back"
    );
    assert!(entries(&doc, "proxy_1").contains(&(
        "reg_proxy".into(),
        "<sip:pbx.example.com;transport=udp>".into()
    )));

    // The installation is the user's device; revoked, its URL is gone. Unknown tokens too.
    let installs = app
        .get(&format!("/api/v1/domains/{DOMAIN}/users/jbloggs/installs"))
        .await
        .expect(200);
    let linphone = installs
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["app"] == "linphone")
        .unwrap();
    assert!(
        !url.contains(linphone["install_id"].as_str().unwrap()),
        "only the token's digest is kept"
    );
    let id = linphone["id"].as_i64().unwrap();
    let unknown = reqwest::get(format!("{}/linphone/nope", app.base))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    app.delete(&format!(
        "/api/v1/domains/{DOMAIN}/users/jbloggs/installs/{id}"
    ))
    .await
    .expect(204);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 404);
}

/// The text of a PNG QR code.
fn decode_qr(png_bytes: &[u8]) -> String {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code");
    grids[0].decode().unwrap().1
}

both!(qr_codes_for_each_app, qr_codes);
async fn qr_codes(app: TestApp) {
    setup(&app).await;
    app.patch(
        &format!("/api/v1/domains/{DOMAIN}"),
        json!({"settings": {"acrobits_cloud_id": "EXAMPLE", "sessiontalk_provider_id": "acme"}}),
    )
    .await
    .expect(200);
    let own = |path: &str| {
        let url = format!("{}/api/v1/self/qr/{path}", app.base);
        async move {
            reqwest::Client::new()
                .get(url)
                .basic_auth(LOGIN, Some(PASSWORD))
                .send()
                .await
                .unwrap()
        }
    };
    let acrobits = own("acrobits?format=png").await;
    assert_eq!(acrobits.status(), 200);
    assert_eq!(acrobits.headers()["content-type"], "image/png");
    let text = decode_qr(&acrobits.bytes().await.unwrap());
    assert_eq!(text, "csc:jbloggs%40acme.example.com:7578743843-pw@EXAMPLE");
    let sessiontalk = decode_qr(&own("sessiontalk?format=png").await.bytes().await.unwrap());
    assert_eq!(sessiontalk, format!("scsc:{LOGIN}:{PASSWORD}:acme"));
    let linphone = decode_qr(&own("linphone?format=png").await.bytes().await.unwrap());
    assert!(linphone.contains("/linphone/"));
    assert_eq!(
        reqwest::get(&linphone).await.unwrap().status(),
        200,
        "the QR's URL provisions"
    );
    let svg = own("acrobits").await;
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().contains("<svg"));

    // Admins get the Acrobits code without the password, and no SessionTalk one.
    let admin = app
        .call(
            Method::GET,
            &format!("/api/v1/domains/{DOMAIN}/users/jbloggs/qr/acrobits?format=png"),
            Some(&app.token),
            None,
        )
        .await;
    assert_eq!(admin.status, 200);
    app.get(&format!(
        "/api/v1/domains/{DOMAIN}/users/jbloggs/qr/sessiontalk"
    ))
    .await
    .problem(400, "bad-request");
    app.get(&format!("/api/v1/domains/{DOMAIN}/users/jbloggs/qr/zoiper"))
        .await
        .problem(404, "not-found");
}

// A real Linphone client (Debian's `linphone-cli`) applies the remote provisioning:
// its rc file gets the `[proxy_0]` and `[auth_info_0]` sections. Skipped with a note
// where `linphonec` is not installed, except in CI.
both!(a_real_linphone_client_is_provisioned, real_linphone);
async fn real_linphone(app: TestApp) {
    if std::process::Command::new("linphonec")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").is_err(),
            "linphonec is needed in CI (apt-get install linphone-cli)"
        );
        eprintln!("note: linphonec is not installed; the real-client Linphone test is skipped");
        return;
    }
    setup(&app).await;
    let url = app
        .post(
            &format!("/api/v1/domains/{DOMAIN}/users/jbloggs/linphone"),
            json!({}),
        )
        .await
        .expect(201)["url"]
        .as_str()
        .unwrap()
        .replace("http://127.0.0.1:8080", &app.base);
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".local/share/linphone")).unwrap();
    let rc = home.path().join("linphonerc");
    std::fs::write(
        &rc,
        format!(
            "[misc]\nconfig-uri={url}\n\n[sip]\nbind_address=127.0.0.1\nsip_port=-1\nsip_tcp_port=0\nsip_tls_port=0\nuse_ipv6=0\n"
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new("linphonec")
        .arg("-c")
        .arg(&rc)
        .env("HOME", home.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut applied = String::new();
    for _ in 0..100 {
        applied = std::fs::read_to_string(&rc).unwrap_or_default();
        if applied.contains("[auth_info_0]") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(applied.contains("[proxy_0]"), "{applied}");
    assert!(
        applied.contains("reg_proxy=<sip:proxy.example.com:5061;transport=tls>"),
        "{applied}"
    );
    assert!(
        applied.contains("[auth_info_0]") && applied.contains("passwd=29de?8"),
        "{applied}"
    );
}

both!(acrobits_by_post_and_self_revoke, post_and_revoke);
async fn post_and_revoke(app: TestApp) {
    setup(&app).await;
    // The initial web service as a POST form, as a definition may say.
    let first = reqwest::Client::new()
        .post(format!("{}/acrobits/provisioning", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", "CloudSoftphone/1.5.6")
        .body(format!(
            "cloud_username={}&cloud_password={PASSWORD}&cloud_id=EXAMPLE",
            LOGIN.replace('@', "%40")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let text = first.text().await.unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    assert_eq!(node(&doc, "username"), "user1");
    assert_eq!(node(&doc, "title"), "user1");
    let install = node(&doc, "X-install-id").to_owned();

    // The user revokes the installation themself; its next re-provisioning logs it out.
    let own = |method: Method, path: String| {
        reqwest::Client::new()
            .request(method, format!("{}{path}", app.base))
            .basic_auth(LOGIN, Some(PASSWORD))
            .send()
    };
    let listed: Value = own(Method::GET, "/api/v1/self/installs".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = listed[0]["id"].as_i64().unwrap();
    assert_eq!(listed[0]["install_id"], install.as_str());
    let revoked = own(Method::DELETE, format!("/api/v1/self/installs/{id}"))
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let again = acrobits(
        &app,
        &format!(
            "cloud_username={}&cloud_password={PASSWORD}&install={install}",
            LOGIN.replace('@', "%40")
        ),
        None,
    )
    .await;
    assert_eq!(again.status(), 410);
}
