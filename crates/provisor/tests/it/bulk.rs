use provisor_testkit::{TestApp, both};
use reqwest::Method;
use serde_json::json;

const GOOD: &str = "username,display_name,email,sip_user,sip_password,registrar,transport,mac,vendor,model,category,line
alice,Alice,alice@x.example,100,pw-100,sip.x.example,udp,00:15:65:00:01:00,yealink,T54W,Sales,1
alice,,,101,pw-101,sip.x.example,tls,001565000100,,,,2
bob,Bob,,+4930123,pw-b,,,,,,,
,,,,,,,001565000199,snom,D785,Sales,
";

/// The line numbers of an `import-rejected` problem's errors.
fn error_lines(p: &serde_json::Value) -> Vec<u64> {
    p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect()
}

async fn import(app: &TestApp, domain: &str, token: &str, csv: String) -> provisor_testkit::Answer {
    let r = app
        .client
        .post(format!("{}/api/v1/domains/{domain}/import", app.base))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    provisor_testkit::Answer {
        status: r.status(),
        headers: r.headers().clone(),
        text: r.text().await.unwrap(),
    }
}

both!(import_creates_everything_in_order, imports);
async fn imports(app: TestApp) {
    app.create_domain("x.example").await;
    app.create_category("x.example", "Sales", false).await;
    let summary = import(&app, "x.example", &app.token, GOOD.into())
        .await
        .expect(200);
    assert_eq!(summary["users_created"], 2);
    assert_eq!(summary["accounts_created"], 3);
    assert_eq!(summary["devices_created"], 2);
    let dev = app
        .get("/api/v1/domains/x.example/devices/001565000100")
        .await
        .expect(200);
    let lines: Vec<&str> = dev["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["sip_user"].as_str().unwrap())
        .collect();
    assert_eq!(lines, ["100", "101"]);
    assert_eq!(
        (
            dev["user"].as_str(),
            dev["model"].as_str(),
            dev["category"].as_str()
        ),
        (Some("alice"), Some("T54W"), Some("Sales"))
    );
    let orphan = app
        .get("/api/v1/domains/x.example/devices/001565000199")
        .await
        .expect(200);
    assert!(orphan["user"].is_null());
    // The same file again changes nothing.
    let again = import(&app, "x.example", &app.token, GOOD.into())
        .await
        .expect(200);
    assert!(
        again.as_object().unwrap().values().all(|n| n == 0),
        "nothing counts as created or changed: {again}"
    );
    // A changed password and a changed line order do count, and nothing else does.
    let changed = "username,sip_user,sip_password,mac,line\nalice,100,pw-new,001565000100,2\nalice,101,,001565000100,1\n";
    let summary = import(&app, "x.example", &app.token, changed.into())
        .await
        .expect(200);
    assert_eq!(
        summary,
        serde_json::json!({"users_created": 0, "users_updated": 0, "accounts_created": 0, "accounts_updated": 1, "devices_created": 0, "devices_updated": 1})
    );
    let dev = app
        .get("/api/v1/domains/x.example/devices/001565000100")
        .await
        .expect(200);
    let lines: Vec<&str> = dev["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["sip_user"].as_str().unwrap())
        .collect();
    assert_eq!(lines, ["101", "100"]);
    assert_eq!(
        (dev["model"].as_str(), dev["category"].as_str()),
        (Some("T54W"), Some("Sales")),
        "empty cells change nothing"
    );
}

both!(a_bad_row_imports_nothing_and_every_bad_row_is_named, atomic);
async fn atomic(app: TestApp) {
    app.create_domain("x.example").await;
    app.create_category("x.example", "Sales", false).await;
    let mut csv = String::from("username,sip_user,sip_password,mac,category,line\n");
    for i in 0..500 {
        csv.push_str(&format!(
            "user{i},{},pw{i},0015651{i:05},Sales,1\n",
            1000 + i
        ));
    }
    csv.push_str("late,9999,,,,\n"); // line 502: a new account without password
    csv.push_str("later,9998,pw,001565ffffff,Nope,1\n"); // line 503: unknown category
    let p = import(&app, "x.example", &app.token, csv)
        .await
        .problem(422, "import-rejected");
    let lines = error_lines(&p);
    assert_eq!(lines, [502, 503], "{p}");
    assert!(
        p["errors"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("sip_password")
    );
    assert!(
        p["errors"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("category")
    );
    // Nothing at all was written.
    let users = app.get("/api/v1/domains/x.example/users").await.expect(200);
    assert_eq!(users["items"], serde_json::json!([]));
    let devices = app
        .get("/api/v1/domains/x.example/devices")
        .await
        .expect(200);
    assert_eq!(devices["items"], serde_json::json!([]));
    // Errors found while parsing are all reported too.
    let p = import(
        &app,
        "x.example",
        &app.token,
        "username,mac\nok,001565000001\nbad,nope\n,\nbad2,00:11\n".into(),
    )
    .await
    .problem(422, "import-rejected");
    let lines = error_lines(&p);
    assert_eq!(lines, [3, 5], "{p}");
}

both!(export_round_trips_and_keeps_passwords_back, export);
async fn export(app: TestApp) {
    app.create_domain("x.example").await;
    app.create_domain("y.example").await;
    for d in ["x.example", "y.example"] {
        app.create_category(d, "Sales", false).await;
    }
    import(&app, "x.example", &app.token, GOOD.into())
        .await
        .expect(200);
    let plain = app.get("/api/v1/domains/x.example/export").await;
    assert_eq!(plain.status, 200);
    assert!(
        plain.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(!plain.text.contains("pw-100"), "no passwords unless asked");
    assert!(
        plain.text.contains("'+4930123"),
        "formula-like cells are escaped: {}",
        plain.text
    );
    let full = app
        .get("/api/v1/domains/x.example/export?passwords=true")
        .await;
    assert!(full.text.contains("pw-100"));
    // Domain admins never get passwords.
    let admin = app.domain_admin_token("x.example").await;
    app.call(
        Method::GET,
        "/api/v1/domains/x.example/export?passwords=true",
        Some(&admin),
        None,
    )
    .await
    .problem(403, "forbidden");
    assert_eq!(
        app.call(
            Method::GET,
            "/api/v1/domains/x.example/export",
            Some(&admin),
            None
        )
        .await
        .status,
        200
    );
    // Round trip into another domain: the same export comes out. Its devices need new MACs,
    // so move them by deleting from x first.
    for mac in ["001565000100", "001565000199"] {
        app.delete(&format!("/api/v1/domains/x.example/devices/{mac}"))
            .await
            .expect(204);
    }
    import(&app, "y.example", &app.token, full.text.clone())
        .await
        .expect(200);
    let again = app
        .get("/api/v1/domains/y.example/export?passwords=true")
        .await;
    assert_eq!(again.text, full.text);
}

both!(tens_of_thousands_of_rows_in_one_import, large);
async fn large(app: TestApp) {
    app.create_domain("big.example").await;
    let mut csv = String::from("username,sip_user,sip_password,mac,line\n");
    for i in 0..20_000u32 {
        csv.push_str(&format!(
            "u{i},{},pw{i},{:012x},1\n",
            100_000 + i,
            0x0015_6500_0000u64 + u64::from(i)
        ));
    }
    let summary = import(&app, "big.example", &app.token, csv)
        .await
        .expect(200);
    assert_eq!(summary["devices_created"], 20_000);
    assert_eq!(summary["accounts_created"], 20_000);
    let dev = app
        .get(&format!(
            "/api/v1/domains/big.example/devices/{:012x}",
            0x0015_6500_0000u64 + 19_999
        ))
        .await
        .expect(200);
    assert_eq!(dev["lines"][0]["sip_user"], "119999");
    assert_eq!(dev["user"], "u19999");
}

both!(
    format_and_database_errors_are_reported_together,
    every_bad_row
);
async fn every_bad_row(app: TestApp) {
    app.create_domain("x.example").await;
    app.create_domain("other.example").await;
    app.create_user("x.example", "owner").await;
    app.create_account("x.example", "owner", "500", "pw").await;
    app.create_device("other.example", json!({"mac": "001565000777"}))
        .await;
    let csv = "username,sip_user,sip_password,mac,category
ok,100,pw,001565000001,
badmac,101,pw,nope,
nocat,102,pw,001565000002,Nope
nopw,103,,,
thief,500,pw,,
taken,104,pw,001565000777,
";
    let p = import(&app, "x.example", &app.token, csv.into())
        .await
        .problem(422, "import-rejected");
    let lines = error_lines(&p);
    assert_eq!(
        lines,
        [3, 4, 5, 6, 7],
        "one attempt names every bad row: {p}"
    );
    assert!(app.get("/api/v1/domains/x.example/users/ok").await.status == 404);
}

both!(an_import_audits_every_object_it_changes, import_audit);
async fn import_audit(app: TestApp) {
    app.create_domain("x.example").await;
    app.create_category("x.example", "Sales", false).await;
    import(&app, "x.example", &app.token, GOOD.into())
        .await
        .expect(200);
    let changed = "username,sip_user,sip_password,mac,line\nalice,100,pw-new,001565000100,2\nalice,101,,001565000100,1\n";
    import(&app, "x.example", &app.token, changed.into())
        .await
        .expect(200);
    let log = app
        .get("/api/v1/audit?domain=x.example&limit=1000")
        .await
        .expect(200);
    let actions: Vec<(&str, &str)> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["target"].as_str().unwrap()))
        .collect();
    assert_eq!(
        &actions[..4],
        [
            ("import", "csv"),
            ("device.update", "001565000100"),
            ("account.update", "100"),
            ("import", "csv")
        ],
        "the second import changed one account and one device"
    );
    for expected in [
        ("user.create", "alice"),
        ("user.create", "bob"),
        ("account.create", "+4930123"),
        ("device.create", "001565000199"),
    ] {
        assert!(actions.contains(&expected), "{expected:?} in {actions:?}");
    }
    let device_update = &log["items"][1];
    assert_eq!(device_update["after"]["lines"], json!(["101", "100"]));
    assert_eq!(log["items"][2]["after"]["password"], "(changed)");
    assert!(
        !log.to_string().contains("pw-new"),
        "no passwords in the audit log"
    );
}

both!(an_oversized_import_is_a_problem_document, oversized);
async fn oversized(app: TestApp) {
    app.create_domain("x.example").await;
    let huge = "a".repeat(provisor_http::MAX_IMPORT_BODY + 1);
    import(&app, "x.example", &app.token, huge)
        .await
        .problem(413, "payload-too-large");
}
