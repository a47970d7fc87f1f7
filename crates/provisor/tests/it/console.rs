//! The web console and self-service pages over HTTP, as a browser uses them: sign-in,
//! sessions and their cookies, CSRF, what a domain admin may open, the admin's forms end
//! to end, and a user getting a code that a phone then redeems. (The same flows in a real
//! Chromium are in `tests/browser/`.)

use provisor::config::Config;
use provisor_testkit::{Browser, TestApp, both, csrf_in};
use reqwest::Method;
use serde_json::json;

const DOMAIN: &str = "acme.example.com";
const PASSWORD: &str = "console-password-1";

async fn admin(app: &TestApp, name: &str, domain: Option<&str>) {
    let role = if domain.is_some() {
        "domain-admin"
    } else {
        "operator"
    };
    app.post(
        "/api/v1/admins",
        json!({"name": name, "role": role, "domain": domain, "password": PASSWORD}),
    )
    .await
    .expect(201);
}

fn location(a: &provisor_testkit::Answer) -> &str {
    a.headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn set_cookies(a: &provisor_testkit::Answer) -> Vec<String> {
    a.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

both!(console_sessions_and_csrf, sessions);
async fn sessions(app: TestApp) {
    admin(&app, "Root", None).await;
    let b = Browser::new(&app);
    let first = b.get("/console").await;
    assert_eq!(
        (first.status.as_u16(), location(&first)),
        (303, "/console/signin")
    );

    // Wrong password: the form again, 401, no session.
    let wrong = b.sign_in("/console", "root", "not-the-password").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text.contains("not right"));
    assert!(!b.has_cookie("provisor_console"));
    // A sign-in form without its cookie's token is refused.
    let stranger = Browser::new(&app);
    let forged = stranger
        .post_raw(
            "/console/signin",
            &[("csrf", "00"), ("login", "root"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(forged.status, 403);

    let ok = b.sign_in("/console", "ROOT", PASSWORD).await;
    assert_eq!((ok.status.as_u16(), location(&ok)), (303, "/console"));
    let cookie = set_cookies(&ok)
        .into_iter()
        .find(|c| c.starts_with("provisor_console="))
        .expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP: not Secure ({cookie})"
    );
    let secret = cookie["provisor_console=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let audit = app.get("/api/v1/audit").await.expect(200).to_string();
    assert!(
        !audit.contains(&secret),
        "the session secret is not in the audit log"
    );

    let home = b.get("/console").await;
    assert_eq!(home.status, 200);
    assert!(home.text.contains("Add a domain"));
    assert_eq!(home.headers["cache-control"], "no-store");
    let csrf = csrf_in(&home.text).unwrap();

    // Forms need the page's CSRF token, and no other site's Origin.
    let none = b
        .post_raw("/console/domains", &[("name", "x.example")])
        .await;
    assert_eq!(none.status, 403);
    let bad = b
        .post_raw(
            "/console/domains",
            &[("csrf", &"0".repeat(64)), ("name", "x.example")],
        )
        .await;
    assert_eq!(bad.status, 403);
    let body = provisor_testkit::form_body(&[("csrf", &csrf), ("name", "x.example")]);
    let cross = b
        .request(
            Method::POST,
            "/console/domains",
            &[("origin", "http://evil.example")],
            Some(body.clone()),
        )
        .await;
    assert_eq!(cross.status, 403);
    app.get("/api/v1/domains/x.example")
        .await
        .problem(404, "not-found");
    let host = app.base.trim_start_matches("http://").to_owned();
    let same = b
        .request(
            Method::POST,
            "/console/domains",
            &[("origin", &format!("http://{host}"))],
            Some(body),
        )
        .await;
    assert_eq!(
        (same.status.as_u16(), location(&same)),
        (303, "/console/d/x.example")
    );

    // The session cookie is a credential of the console only.
    assert!(b.cookie_header("/self").is_empty());
    assert!(b.cookie_header("/api/v1/domains").is_empty());

    // Signing out ends the session on the server too: the old cookie is worth nothing.
    let old = b.cookie_header("/console");
    let out = b.post("/console/signout", &[]).await;
    assert_eq!(
        (out.status.as_u16(), location(&out)),
        (303, "/console/signin")
    );
    assert!(!b.has_cookie("provisor_console"));
    let replay = b
        .request(Method::GET, "/console", &[("cookie", &old)], None)
        .await;
    assert_eq!(
        (replay.status.as_u16(), location(&replay)),
        (303, "/console/signin")
    );
}

fn few_attempts(c: &mut Config) {
    c.code_failures_per_ip = 3;
}

both!(console_sign_in_is_limited, limited, super::few_attempts);
async fn limited(app: TestApp) {
    admin(&app, "root", None).await;
    let b = Browser::new(&app);
    for _ in 0..2 {
        assert_eq!(
            b.sign_in("/console", "root", "wrong-password").await.status,
            401
        );
    }
    let third = b.sign_in("/console", "root", "wrong-password").await;
    assert_eq!(third.status, 401, "the third failure locks");
    let locked = b.sign_in("/console", "root", PASSWORD).await;
    assert_eq!(locked.status, 429, "locked: even the right password waits");
    assert!(locked.headers.contains_key("retry-after"));
    // Refusals are audited, without the password.
    let audit = app.get("/api/v1/audit").await.expect(200).to_string();
    assert!(audit.contains("login.refused") && !audit.contains("wrong-password"));
}

both!(console_domain_admin_sees_own_domain_only, own_domain);
async fn own_domain(app: TestApp) {
    app.create_domain(DOMAIN).await;
    app.create_domain("other.example").await;
    app.create_device("other.example", json!({"mac": "001565000001"}))
        .await;
    app.create_device(DOMAIN, json!({"mac": "001565000002"}))
        .await;
    admin(&app, "ann", Some(DOMAIN)).await;
    let b = Browser::new(&app);
    assert_eq!(b.sign_in("/console", "ann", PASSWORD).await.status, 303);
    let home = b.get("/console").await;
    assert_eq!(location(&home), format!("/console/d/{DOMAIN}"));
    assert_eq!(
        b.get(&format!("/console/d/{DOMAIN}/devices/001565000002"))
            .await
            .status,
        200
    );
    // Another domain's device, the other domain, a domain that does not exist: alike.
    let theirs = b.get("/console/d/other.example/devices/001565000001").await;
    let missing = b
        .get("/console/d/nowhere.example/devices/001565000001")
        .await;
    assert_eq!(
        (theirs.status.as_u16(), missing.status.as_u16()),
        (404, 404)
    );
    assert_eq!(theirs.text, missing.text);
    assert_eq!(b.get("/console/d/other.example").await.status, 404);
    // Nor through its own domain's URL with the other's MAC.
    assert_eq!(
        b.get(&format!("/console/d/{DOMAIN}/devices/001565000001"))
            .await
            .status,
        404
    );
    // Domains are the operators' to add.
    b.get(&format!("/console/d/{DOMAIN}")).await;
    assert_eq!(
        b.post("/console/domains", &[("name", "mine.example")])
            .await
            .status,
        403
    );
    // The API lists this domain's administrators only to its token.
    let token = app.domain_admin_token("other.example").await;
    let listed = app
        .call(Method::GET, "/api/v1/admins", Some(&token), None)
        .await
        .expect(200);
    assert_eq!(listed, json!([]));
    app.call(
        Method::POST,
        "/api/v1/admins",
        Some(&token),
        Some(json!({"name": "x", "role": "domain-admin", "domain": DOMAIN, "password": PASSWORD})),
    )
    .await
    .problem(404, "not-found");
}

both!(console_forms_end_to_end, forms);
async fn forms(app: TestApp) {
    admin(&app, "root", None).await;
    let b = Browser::new(&app);
    b.sign_in("/console", "root", PASSWORD).await;
    b.get("/console").await;
    let made = b
        .post(
            "/console/domains",
            &[("name", DOMAIN), ("description", "Acme <b>Corp</b>")],
        )
        .await;
    assert_eq!(location(&made), format!("/console/d/{DOMAIN}"));
    let d = format!("/console/d/{DOMAIN}");
    let overview = b.get(&d).await;
    assert!(
        overview.text.contains("Acme &lt;b&gt;Corp") && !overview.text.contains("<b>Corp"),
        "values are escaped"
    );
    b.post(
        &format!("{d}/categories"),
        &[("name", "Desk phones"), ("provisioning", "on")],
    )
    .await;
    let bad = b.post(&format!("{d}/categories"), &[("name", "a/b")]).await;
    assert_eq!(bad.status, 400);
    assert!(bad.text.contains("category"), "{}", bad.text);
    b.get(&format!("{d}/users")).await;
    let user = b
        .post(
            &format!("{d}/users"),
            &[
                ("username", "alice"),
                ("display_name", "Alice"),
                ("password", "alice-portal-pw"),
            ],
        )
        .await;
    assert_eq!(location(&user), format!("{d}/users/alice"));
    // The list searches by name (ignoring case), in the console and the API.
    let found = b.get(&format!("{d}/users?q=ALI")).await;
    assert!(found.text.contains(">alice</a>"), "{}", found.text);
    let none = b.get(&format!("{d}/users?q=zzz")).await;
    assert!(none.text.contains("No user matches") && !none.text.contains(">alice</a>"));
    let api = app
        .get(&format!(
            "/api/v1/domains/{DOMAIN}/users?search=alice&limit=5"
        ))
        .await
        .expect(200);
    assert_eq!(api["items"][0]["username"], "alice");
    let api = app
        .get(&format!("/api/v1/domains/{DOMAIN}/users?search=nobody"))
        .await
        .expect(200);
    assert_eq!(api["items"], json!([]));
    b.get(&format!("{d}/users/alice")).await;
    b.post(
        &format!("{d}/users/alice/accounts"),
        &[
            ("sip_user", "201"),
            ("password", "sip-secret-201"),
            ("display_name", "Alice"),
        ],
    )
    .await;
    b.get(&format!("{d}/devices")).await;
    let dev = b
        .post(
            &format!("{d}/devices"),
            &[
                ("mac", "00:15:65:AA:BB:CC"),
                ("vendor", "yealink"),
                ("model", "T54W"),
                ("user", "alice"),
                ("lines", "201"),
            ],
        )
        .await;
    assert_eq!(location(&dev), format!("{d}/devices/001565aabbcc"));
    let page = b.get(&format!("{d}/devices/001565aabbcc")).await;
    assert!(page.text.contains("201") && page.text.contains("001565aabbcc.cfg"));
    let preview = b
        .get(&format!("{d}/devices/001565aabbcc?file=001565aabbcc.cfg"))
        .await;
    assert_eq!(preview.status, 200);
    assert!(preview.text.contains("#!version:1.0.0.1"));
    assert!(preview.text.contains("********") && !preview.text.contains("sip-secret-201"));
    let search = b.get(&format!("{d}/devices?user=alice")).await;
    assert!(search.text.contains("001565aabbcc"));
    let none = b.get(&format!("{d}/devices?user=bob")).await;
    assert!(!none.text.contains("001565aabbcc"));

    // A code for the user, and a rollout with its CSV.
    b.get(&format!("{d}/users/alice")).await;
    let code = b
        .post(
            &format!("{d}/users/alice/codes"),
            &[("category", "Desk phones")],
        )
        .await;
    assert_eq!(code.status, 200);
    assert!(code.text.contains("data-code>"));
    b.get(&format!("{d}/rollouts")).await;
    let r = b
        .post(
            &format!("{d}/rollouts"),
            &[
                ("category", "Desk phones"),
                ("phone", "T54W"),
                ("all", "on"),
            ],
        )
        .await;
    let at = location(&r).to_owned();
    assert!(at.starts_with(&format!("{d}/rollouts/")), "{at}");
    let shown = b.get(&at).await;
    assert!(shown.text.contains("alice") && shown.text.contains("Download CSV"));
    let csv = b.get(&format!("{at}.csv")).await;
    assert!(
        csv.text
            .starts_with("user,display_name,code,valid_until,state,mac")
    );
    assert!(csv.text.contains("alice,Alice,"));
    // A settings job through its form, listed with its progress; webhooks with their log.
    b.get(&format!("{d}/jobs")).await;
    let job = b
        .post(
            &format!("{d}/jobs"),
            &[
                ("kind", "config"),
                ("config_type", "ntp"),
                ("params", "server=ntp.acme.example\n"),
                ("percent", "100"),
                ("version", "ignored"),
            ],
        )
        .await;
    assert_eq!(location(&job), format!("{d}/jobs"), "{}", job.text);
    let jobs = b.get(&format!("{d}/jobs")).await;
    assert!(
        jobs.text.contains("ntp settings") && jobs.text.contains("all devices"),
        "{}",
        jobs.text
    );
    let bad = b
        .post(
            &format!("{d}/jobs"),
            &[("kind", "software"), ("percent", "100")],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    app.post(
        &format!("/api/v1/domains/{DOMAIN}/webhooks"),
        json!({"url": "http://127.0.0.1:9/hook"}),
    )
    .await
    .expect(201);
    let hooks = b.get(&format!("{d}/webhooks")).await;
    assert!(
        hooks.text.contains("127.0.0.1:9") && hooks.text.contains("Nothing delivered yet"),
        "{}",
        hooks.text
    );
    // What the admin did is in the audit log under their name.
    let audit = b.get(&format!("{d}/audit")).await;
    assert!(audit.text.contains("admin:root") && audit.text.contains("device.create"));
    assert!(!audit.text.contains("sip-secret-201") && !audit.text.contains("alice-portal-pw"));
}

both!(self_service_code_to_phone, self_service);
async fn self_service(app: TestApp) {
    app.create_domain(DOMAIN).await;
    app.create_category(DOMAIN, "Desk phones", true).await;
    app.create_category(DOMAIN, "Lab", false).await;
    app.post(
        &format!("/api/v1/domains/{DOMAIN}/users"),
        json!({"username": "alice", "password": "alice-portal-pw"}),
    )
    .await
    .expect(201);
    app.create_account(DOMAIN, "alice", "201", "sip-secret-201")
        .await;
    let b = Browser::new(&app);
    assert_eq!(
        b.sign_in("/self", &format!("alice@{DOMAIN}"), "wrong-password")
            .await
            .status,
        401
    );
    let ok = b
        .sign_in("/self", &format!("alice@{DOMAIN}"), "alice-portal-pw")
        .await;
    assert_eq!((ok.status.as_u16(), location(&ok)), (303, "/self"));
    assert!(
        b.cookie_header("/console").is_empty(),
        "a user's session is not the console's"
    );
    assert_eq!(location(&b.get("/console").await), "/console/signin");
    let home = b.get("/self").await;
    assert!(home.text.contains("Desk phones") && !home.text.contains(">Lab<"));
    // Only provisioning categories.
    assert_eq!(
        b.post("/self/codes", &[("category", "Lab")]).await.status,
        400
    );
    b.get("/self").await;
    let code_page = b.post("/self/codes", &[("category", "Desk phones")]).await;
    assert_eq!(code_page.status, 200);
    let at = code_page.text.find("data-code>").unwrap() + "data-code>".len();
    let code = &code_page.text[at..at + 12];
    assert!(code.chars().all(|c| c.is_ascii_digit()), "{code}");
    assert!(code_page.text.contains("data-countdown="));

    // A phone redeems it; the user sees it as theirs.
    let activated = app
        .send(
            Method::POST,
            "/p/activate",
            None,
            "application/json",
            &json!({"code": code, "mac": "001565aabb77"}).to_string(),
        )
        .await;
    assert_eq!(activated.status, 200, "{}", activated.text);
    let home = b.get("/self").await;
    assert!(home.text.contains("001565aabb77"));

    // A Linphone installation from its QR page, then revoked.
    let linphone = b.post("/self/apps/linphone", &[]).await;
    assert_eq!(linphone.status, 200);
    assert!(linphone.text.contains("<svg"));
    let home = b.get("/self").await;
    let revoke = home
        .text
        .find("/self/installs/")
        .expect("an install listed");
    let id: String = home.text[revoke + "/self/installs/".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let done = b.post(&format!("/self/installs/{id}/revoke"), &[]).await;
    assert_eq!(location(&done), "/self");
    let installs = app
        .get(&format!("/api/v1/domains/{DOMAIN}/users/alice/installs"))
        .await
        .expect(200);
    assert!(installs[0]["revoked_at"].is_string(), "{installs}");
    // Disabling the user ends their session.
    app.patch(
        &format!("/api/v1/domains/{DOMAIN}/users/alice"),
        json!({"enabled": false}),
    )
    .await
    .expect(200);
    assert_eq!(location(&b.get("/self").await), "/self/signin");
}

fn self_signed(c: &mut Config) {
    c.tls_self_signed = true;
}

both!(
    console_cookies_are_secure_over_https,
    over_https,
    super::self_signed
);
async fn over_https(app: TestApp) {
    admin(&app, "root", None).await;
    let b = Browser::over_https(&app);
    let signin = b.get("/console/signin").await;
    assert!(
        set_cookies(&signin).iter().all(|c| c.contains("; Secure")),
        "{:?}",
        set_cookies(&signin)
    );
    let ok = b.sign_in("/console", "root", PASSWORD).await;
    let session = set_cookies(&ok)
        .into_iter()
        .find(|c| c.starts_with("provisor_console="))
        .expect("a session cookie");
    assert!(session.contains("; Secure"), "{session}");
    assert_eq!(b.get("/console").await.status, 200);
}

fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, x)| (k.as_str(), x.as_str())).collect()
}

both!(console_templates_edit_check_preview_save, templates_editor);
async fn templates_editor(app: TestApp) {
    app.create_domain(DOMAIN).await;
    app.create_domain("other.example").await;
    app.device_with_two_lines(
        DOMAIN,
        "alice",
        json!({"mac": "001565aabbcc", "vendor": "yealink", "model": "T54W"}),
    )
    .await;
    app.create_device(
        "other.example",
        json!({"mac": "001565000001", "vendor": "yealink"}),
    )
    .await;
    admin(&app, "ann", Some(DOMAIN)).await;
    let b = Browser::new(&app);
    b.sign_in("/console", "ann", PASSWORD).await;
    let t = format!("/console/d/{DOMAIN}/templates");
    let list = b.get(&t).await;
    assert_eq!(list.status, 200);
    assert!(list.text.contains("No stored templates"), "{}", list.text);
    assert!(list.text.contains("yealink&#x2f;mac.cfg"), "{}", list.text);

    // The editor starts from the built-in source.
    let edit = b
        .get(&format!("{t}/edit?template=yealink/mac.cfg&category="))
        .await;
    assert_eq!(edit.status, 200);
    assert!(edit.text.contains("built-in"));
    assert!(edit.text.contains("account.{{ line.number }}.user_name"));

    // A problem is shown at its line and column, with the line marked; nothing stored.
    let broken =
        "#!version:1.0.0.1\n# fine\naccount.1.label = {{ lines[0].nosuch_filter | frobnicate }}\n";
    let form = |source: &str, action: &str, mac: &str| {
        vec![
            ("vendor".to_owned(), "yealink".to_owned()),
            ("name".to_owned(), "mac.cfg".to_owned()),
            ("category".to_owned(), String::new()),
            ("source".to_owned(), source.replace('\n', "\r\n")),
            ("mac".to_owned(), mac.to_owned()),
            ("action".to_owned(), action.to_owned()),
        ]
    };
    let checked = b
        .post(&format!("{t}/edit"), &pairs(&form(broken, "save", "")))
        .await;
    assert_eq!(checked.status, 422, "{}", checked.text);
    assert!(checked.text.contains("Line 3, column"), "{}", checked.text);
    assert!(checked.text.contains("frobnicate"));
    assert!(checked.text.contains("class=\"here\""));
    app.get(&format!(
        "/api/v1/domains/{DOMAIN}/templates/yealink/mac.cfg"
    ))
    .await
    .problem(404, "not-found");

    // The live preview answers the same form with JSON: a problem with its place...
    let live = b
        .post(&format!("{t}/preview"), &pairs(&form(broken, "", "")))
        .await;
    assert_eq!(live.status, 200);
    let answer: serde_json::Value = serde_json::from_str(&live.text).unwrap();
    assert_eq!(answer["problem"]["line"], 3, "{answer}");
    // ...or what the chosen phone receives, its passwords masked.
    let good = "#!version:1.0.0.1\n{% for line in lines %}account.{{ line.number }}.user_name = {{ line.sip_user }}\naccount.{{ line.number }}.password = {{ line.password }}\n{% endfor %}";
    let live = b
        .post(
            &format!("{t}/preview"),
            &pairs(&form(good, "", "00:15:65:AA:BB:CC")),
        )
        .await;
    let answer: serde_json::Value = serde_json::from_str(&live.text).unwrap();
    let body = answer["body"].as_str().expect("a body");
    assert!(body.contains("account.2.user_name = alice2"), "{body}");
    assert!(body.contains("account.1.password = ********"), "{body}");
    assert!(!body.contains("pw-alice"), "{body}");
    // Another domain's phone is not there to preview with.
    let theirs = b
        .post(
            &format!("{t}/preview"),
            &pairs(&form(good, "", "001565000001")),
        )
        .await;
    let answer: serde_json::Value = serde_json::from_str(&theirs.text).unwrap();
    assert!(
        answer["problem"]["message"]
            .as_str()
            .unwrap()
            .contains("no device"),
        "{answer}"
    );
    // Without the page's CSRF token: refused.
    let forged = b
        .post_raw(
            &format!("{t}/preview"),
            &[("vendor", "yealink"), ("name", "mac.cfg"), ("source", good)],
        )
        .await;
    assert_eq!(forged.status, 403);

    // Check (without script): the preview on the page; then save.
    let shown = b
        .post(
            &format!("{t}/edit"),
            &pairs(&form(good, "check", "001565aabbcc")),
        )
        .await;
    assert_eq!(shown.status, 200);
    assert!(
        shown.text.contains("account.1.user_name = alice1"),
        "{}",
        shown.text
    );
    let saved = b
        .post(
            &format!("{t}/edit"),
            &pairs(&form(good, "save", "001565aabbcc")),
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.text);
    assert!(location(&saved).contains("saved=1"));
    let stored = app
        .get(&format!(
            "/api/v1/domains/{DOMAIN}/templates/yealink/mac.cfg"
        ))
        .await
        .expect(200);
    assert_eq!(
        stored["source"], good,
        "CR LF from the browser is stored as LF"
    );
    assert_eq!(stored["updated_by"], "admin:ann");
    let after = b.get(location(&saved)).await;
    assert!(after.text.contains("Saved."));
    // The page shows what the chosen phone now gets.
    assert!(
        after.text.contains("account.1.user_name = alice1"),
        "{}",
        after.text
    );
    assert!(after.text.contains("account.1.password = ********"));
    assert!(after.text.contains("stored"));
    // The device page's preview now comes from it.
    let dev = b
        .get(&format!(
            "/console/d/{DOMAIN}/devices/001565aabbcc?file=001565aabbcc.cfg"
        ))
        .await;
    assert!(
        dev.text.contains("account.2.user_name = alice2"),
        "{}",
        dev.text
    );
    assert!(
        !dev.text.contains("sip_server"),
        "the built-in template is replaced"
    );
    let listed = b.get(&t).await;
    assert!(listed.text.contains("yealink · mac.cfg"));

    // Removed: back to the built-in.
    let removed = b
        .post(&format!("{t}/edit"), &pairs(&form(good, "delete", "")))
        .await;
    assert_eq!(
        (removed.status.as_u16(), location(&removed)),
        (303, t.as_str())
    );
    app.get(&format!(
        "/api/v1/domains/{DOMAIN}/templates/yealink/mac.cfg"
    ))
    .await
    .problem(404, "not-found");
    // Another domain's templates are not this admin's.
    assert_eq!(
        b.get("/console/d/other.example/templates").await.status,
        404
    );
}

both!(console_manages_admins_webhooks_and_jobs, manage);
async fn manage(app: TestApp) {
    app.create_domain(DOMAIN).await;
    app.create_domain("other.example").await;
    admin(&app, "root", None).await;
    admin(&app, "olga", Some("other.example")).await;
    let root = Browser::new(&app);
    root.sign_in("/console", "root", PASSWORD).await;

    // Administrators: an operator sees everyone and adds a domain admin.
    let list = root.get("/console/admins").await;
    assert_eq!(list.status, 200);
    assert!(list.text.contains("root") && list.text.contains("olga"));
    let added = root
        .post(
            "/console/admins",
            &[
                ("name", "Bob"),
                ("role", "domain-admin"),
                ("domain", DOMAIN),
                ("password", "bob-password-1"),
            ],
        )
        .await;
    assert_eq!(location(&added), "/console/admins", "{}", added.text);
    let short = root
        .post(
            "/console/admins",
            &[("name", "x"), ("role", "operator"), ("password", "short")],
        )
        .await;
    assert_eq!(short.status, 400, "{}", short.text);
    let bob = Browser::new(&app);
    assert_eq!(
        bob.sign_in("/console", "bob", "bob-password-1")
            .await
            .status,
        303
    );
    // A domain admin sees and adds only their domain's admins, never an operator.
    let theirs = bob.get("/console/admins").await;
    assert!(theirs.text.contains("bob") && !theirs.text.contains("olga"));
    assert!(!theirs.text.contains(">root<"), "{}", theirs.text);
    let up = bob
        .post(
            "/console/admins",
            &[
                ("name", "eve"),
                ("role", "operator"),
                ("password", "eve-password-1"),
            ],
        )
        .await;
    assert!(up.status == 403 || up.status == 404, "{}", up.status);
    let carl = bob
        .post(
            "/console/admins",
            &[
                ("name", "carl"),
                ("role", "domain-admin"),
                ("domain", DOMAIN),
                ("password", "carl-password-1"),
            ],
        )
        .await;
    assert_eq!(carl.status, 303, "{}", carl.text);
    assert_eq!(
        bob.post("/console/admins/olga/remove", &[]).await.status,
        404,
        "another domain's admin is not there for bob"
    );
    // A new password ends Bob's session; removal takes him off.
    root.get("/console/admins").await;
    let pw = root
        .post(
            "/console/admins/bob/password",
            &[("password", "bob-password-2")],
        )
        .await;
    assert_eq!(pw.status, 303, "{}", pw.text);
    assert_eq!(location(&bob.get("/console").await), "/console/signin");
    root.get("/console/admins").await;
    assert_eq!(
        root.post("/console/admins/bob/remove", &[]).await.status,
        303
    );
    let names = app.get("/api/v1/admins").await.expect(200).to_string();
    assert!(
        !names.contains("\"bob\"") && names.contains("\"carl\""),
        "{names}"
    );

    // Webhooks: added through the form, the secret shown once; a bad URL refused.
    let d = format!("/console/d/{DOMAIN}");
    root.get(&format!("{d}/webhooks")).await;
    let hook = root
        .post(
            &format!("{d}/webhooks"),
            &[("url", "http://127.0.0.1:9/hook"), ("secret", "")],
        )
        .await;
    assert_eq!(hook.status, 200, "{}", hook.text);
    assert!(hook.text.contains("shown this once"));
    let listed = app
        .get(&format!("/api/v1/domains/{DOMAIN}/webhooks"))
        .await
        .expect(200);
    let id = listed[0]["id"].as_i64().unwrap();
    let again = root.get(&format!("{d}/webhooks")).await;
    assert!(!again.text.contains("shown this once"));
    let bad = root
        .post(&format!("{d}/webhooks"), &[("url", "ftp://x")])
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let removed = root.post(&format!("{d}/webhooks/{id}/remove"), &[]).await;
    assert_eq!(removed.status, 303);
    assert_eq!(
        app.get(&format!("/api/v1/domains/{DOMAIN}/webhooks"))
            .await
            .expect(200),
        json!([])
    );

    // Jobs: paused, resumed, cancelled from the list.
    root.get(&format!("{d}/jobs")).await;
    root.post(
        &format!("{d}/jobs"),
        &[
            ("kind", "config"),
            ("config_type", "ntp"),
            ("params", "server=ntp.acme.example\n"),
            ("percent", "100"),
        ],
    )
    .await;
    let jobs = app
        .get(&format!("/api/v1/domains/{DOMAIN}/jobs"))
        .await
        .expect(200);
    let job = jobs[0]["id"].as_i64().unwrap();
    let job_path = format!("/api/v1/domains/{DOMAIN}/jobs/{job}");
    for (to, expect) in [
        ("paused", "paused"),
        ("active", "active"),
        ("cancelled", "cancelled"),
    ] {
        root.get(&format!("{d}/jobs")).await;
        let r = root
            .post(&format!("{d}/jobs/{job}"), &[("state", to)])
            .await;
        assert_eq!(r.status, 303, "{}", r.text);
        assert_eq!(app.get(&job_path).await.expect(200)["state"], expect);
    }
    let page = root.get(&format!("{d}/jobs")).await;
    assert!(
        !page.text.contains("value=\"paused\""),
        "a cancelled job has no buttons"
    );
    let nonsense = root
        .post(&format!("{d}/jobs/{job}"), &[("state", "exploded")])
        .await;
    assert_eq!(nonsense.status, 400);
}
