use provisor_testkit::{TestApp, both};
use reqwest::Method;
use serde_json::json;

both!(
    readme_flow_domain_user_two_accounts_device_two_lines,
    readme_flow
);
async fn readme_flow(app: TestApp) {
    app.create_domain("acme.example.com").await;
    app.create_category("acme.example.com", "Sales phones", true)
        .await;
    let user = app
        .post("/api/v1/domains/acme.example.com/users", json!({"username": "alice", "display_name": "Alice", "email": "alice@acme.example.com", "password": "correct horse"}))
        .await
        .expect(201);
    assert_eq!(user["has_password"], true);
    assert!(user.get("password").is_none() && !user.to_string().contains("correct horse"));
    let a1 = app
        .create_account("acme.example.com", "alice", "100", "pw<1>&\"")
        .await;
    let a2 = app
        .create_account("acme.example.com", "alice", "101", "pw2")
        .await;
    assert!(
        !a1.to_string().contains("pw<1>"),
        "passwords are never returned: {a1}"
    );
    let device = app
        .create_device(
            "acme.example.com",
            json!({"mac": "00-15-65-AA-BB-CC", "vendor": "Yealink", "model": "T54W", "category": "Sales phones", "user": "alice", "lines": ["101", "100"]}),
        )
        .await;
    assert_eq!(device["mac"], "001565aabbcc");
    assert_eq!(device["vendor"], "yealink");
    assert_eq!(device["state"], "added");
    assert_eq!(
        device["lines"],
        json!([
            {"position": 1, "account_id": a2["id"], "sip_user": "101"},
            {"position": 2, "account_id": a1["id"], "sip_user": "100"},
        ])
    );
    // Every spelling of the MAC reaches the same device.
    for mac in ["00:15:65:aa:bb:cc", "001565AABBCC", "0015.65aa.bbcc"] {
        let got = app
            .get(&format!("/api/v1/domains/acme.example.com/devices/{mac}"))
            .await
            .expect(200);
        assert_eq!(got["lines"], device["lines"]);
        assert_eq!(got["category"], "Sales phones");
        assert_eq!(got["user"], "alice");
    }
    // The stored password is the one given, decrypted from its encrypted form.
    let d = app.store.domain("acme.example.com").await.unwrap();
    assert_eq!(
        app.store
            .account_password(d.id, a1["id"].as_i64().unwrap())
            .await
            .unwrap()
            .expose(),
        "pw<1>&\""
    );
}

both!(crud_update_and_delete, crud);
async fn crud(app: TestApp) {
    app.create_domain("d.example").await;
    app.create_category("d.example", "desk", false).await;
    app.create_user("d.example", "bob").await;
    let acc = app.create_account("d.example", "bob", "200", "pw").await;
    app.create_device(
        "d.example",
        json!({"mac": "001565000001", "lines": ["200"]}),
    )
    .await;

    let dom = app
        .patch(
            "/api/v1/domains/d.example",
            json!({"description": "Demo", "settings": {"ntp": "pool.ntp.org"}}),
        )
        .await
        .expect(200);
    assert_eq!(dom["settings"], json!({"ntp": "pool.ntp.org"}));
    let cat = app
        .patch(
            "/api/v1/domains/d.example/categories/desk",
            json!({"name": "Desk phones", "provisioning": true, "settings": {"lang": "de"}}),
        )
        .await
        .expect(200);
    assert_eq!(
        (cat["name"].as_str(), cat["provisioning"].as_bool()),
        (Some("Desk phones"), Some(true))
    );
    let user = app
        .patch(
            "/api/v1/domains/d.example/users/bob",
            json!({"email": "bob@d.example", "enabled": false, "settings": {"dnd": true}}),
        )
        .await
        .expect(200);
    assert_eq!(
        (user["email"].as_str(), user["enabled"].as_bool()),
        (Some("bob@d.example"), Some(false))
    );
    let id = acc["id"].as_i64().unwrap();
    let acc = app
        .patch(
            &format!("/api/v1/domains/d.example/accounts/{id}"),
            json!({"transport": "tls", "registrar": "sip.d.example:5061"}),
        )
        .await
        .expect(200);
    assert_eq!(acc["transport"], "tls");
    let dev = app
        .patch("/api/v1/domains/d.example/devices/001565000001", json!({"category": "Desk phones", "user": "bob", "state": "disabled", "settings": {"volume": 3}}))
        .await
        .expect(200);
    assert_eq!(
        (dev["category"].as_str(), dev["state"].as_str()),
        (Some("Desk phones"), Some("disabled"))
    );
    let dev = app
        .patch(
            "/api/v1/domains/d.example/devices/001565000001",
            json!({"category": null, "lines": []}),
        )
        .await
        .expect(200);
    assert!(dev["category"].is_null());
    assert_eq!(dev["user"], "bob", "absent fields stay");
    assert_eq!(dev["lines"], json!([]));

    app.delete(&format!("/api/v1/domains/d.example/accounts/{id}"))
        .await
        .expect(204);
    app.get(&format!("/api/v1/domains/d.example/accounts/{id}"))
        .await
        .problem(404, "not-found");
    app.delete("/api/v1/domains/d.example/devices/001565000001")
        .await
        .expect(204);
    app.delete("/api/v1/domains/d.example/users/bob")
        .await
        .expect(204);
    app.delete("/api/v1/domains/d.example/categories/Desk%20phones")
        .await
        .expect(204);
    app.delete("/api/v1/domains/d.example").await.expect(204);
    app.get("/api/v1/domains/d.example")
        .await
        .problem(404, "not-found");
}

both!(errors_are_problem_documents, errors);
async fn errors(app: TestApp) {
    app.create_domain("e.example").await;
    app.create_user("e.example", "carol").await;
    app.create_account("e.example", "carol", "300", "pw").await;

    // A malformed MAC is a 400 naming the field.
    let p = app
        .post(
            "/api/v1/domains/e.example/devices",
            json!({"mac": "00:15:65:AA:BB"}),
        )
        .await
        .problem(400, "invalid-field");
    assert_eq!(
        p["field"], "mac",
        "a bad MAC in a body is named like one in a path"
    );
    assert_eq!(
        p["detail"],
        "mac: '00:15:65:AA:BB' is not a MAC address (expected e.g. 00:15:65:aa:bb:cc or 001565aabbcc)"
    );
    let p = app
        .get("/api/v1/domains/e.example/devices/zz")
        .await
        .problem(400, "invalid-field");
    assert_eq!(p["field"], "mac");
    // Duplicates are 409.
    app.create_device("e.example", json!({"mac": "001565000002"}))
        .await;
    app.post(
        "/api/v1/domains/e.example/devices",
        json!({"mac": "00:15:65:00:00:02"}),
    )
    .await
    .problem(409, "conflict");
    app.post(
        "/api/v1/domains/e.example/users",
        json!({"username": "carol"}),
    )
    .await
    .problem(409, "conflict");
    app.post("/api/v1/domains", json!({"name": "E.example"}))
        .await
        .problem(409, "conflict");
    // References to things that do not exist name the field.
    let p = app
        .post(
            "/api/v1/domains/e.example/devices",
            json!({"mac": "001565000003", "lines": ["999"]}),
        )
        .await
        .problem(400, "invalid-field");
    assert_eq!(p["field"], "lines");
    let p = app
        .post(
            "/api/v1/domains/e.example/devices",
            json!({"mac": "001565000003", "category": "nope"}),
        )
        .await
        .problem(400, "invalid-field");
    assert_eq!(p["field"], "category");
    // Field validation.
    let p = app
        .post(
            "/api/v1/domains/e.example/users/carol/accounts",
            json!({"sip_user": "301", "password": "x", "transport": "sctp"}),
        )
        .await
        .problem(400, "invalid-field");
    assert_eq!(p["field"], "transport");
    let p = app
        .post(
            "/api/v1/domains/e.example/devices",
            json!({"mac": "001565000009", "lines": ["100", 7]}),
        )
        .await
        .problem(400, "invalid-field");
    assert_eq!(p["field"], "lines[1]");
    let p = app
        .post(
            "/api/v1/domains/e.example/users",
            json!({"username": "dave", "password": "short"}),
        )
        .await
        .problem(400, "invalid-field");
    assert_eq!(p["field"], "password");
    let p = app
        .post(
            "/api/v1/domains/e.example/users",
            json!({"username": "dave", "unknown": 1}),
        )
        .await
        .problem(400, "invalid-field");
    assert_eq!(p["field"], "unknown");
    // A missing required field is a bad request saying which.
    let p = app
        .post("/api/v1/domains/e.example/users", json!({}))
        .await
        .problem(400, "bad-request");
    assert!(p["detail"].as_str().unwrap().contains("username"), "{p}");
    app.get("/api/v1/domains/e.example/devices?limit=0")
        .await
        .problem(400, "invalid-field");
    // Bodies: not JSON, wrong content type, too large.
    let r = app
        .client
        .post(format!("{}/api/v1/domains", app.base))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = app
        .client
        .post(format!("{}/api/v1/domains", app.base))
        .bearer_auth(&app.token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // Just over the limit: the server has read (nearly) all of it when it answers, so the
    // client is not cut off while still sending (a broken pipe instead of the 413).
    let big = json!({"name": "big.example", "description": "x".repeat(1024 * 1024)});
    app.post("/api/v1/domains", big)
        .await
        .problem(413, "payload-too-large");
    // 401 without or with a bad token, 403 for a token that may not.
    app.call(Method::GET, "/api/v1/domains", None, None)
        .await
        .problem(401, "unauthorized");
    let a = app
        .call(
            Method::GET,
            "/api/v1/domains",
            Some("pvt_not-a-token"),
            None,
        )
        .await;
    a.problem(401, "unauthorized");
    assert_eq!(a.headers["www-authenticate"], "Bearer realm=\"provisor\"");
    let admin = app.domain_admin_token("e.example").await;
    app.call(
        Method::POST,
        "/api/v1/domains",
        Some(&admin),
        Some(json!({"name": "x.example"})),
    )
    .await
    .problem(403, "forbidden");
    app.call(
        Method::DELETE,
        "/api/v1/domains/e.example",
        Some(&admin),
        None,
    )
    .await
    .problem(403, "forbidden");
    // Unknown routes are problem documents too.
    app.get("/api/v1/nothing").await.problem(404, "not-found");
}

both!(lists_are_paginated_and_filtered, lists);
async fn lists(app: TestApp) {
    app.create_domain("l.example").await;
    app.create_category("l.example", "A", false).await;
    app.create_user("l.example", "u1").await;
    for i in 0..7 {
        let category = if i % 2 == 0 { json!("A") } else { json!(null) };
        let user = if i < 3 { json!("u1") } else { json!(null) };
        app.create_device(
            "l.example",
            json!({"mac": format!("0015650000{i:02}"), "category": category, "user": user}),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut next = String::new();
    loop {
        let page = app
            .get(&format!("/api/v1/domains/l.example/devices?limit=3{next}"))
            .await
            .expect(200);
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["mac"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_i64() {
            Some(n) => next = format!("&after={n}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..7).map(|i| format!("0015650000{i:02}")).collect();
    assert_eq!(seen, expected);
    let count = |v: serde_json::Value| v["items"].as_array().unwrap().len();
    assert_eq!(
        count(
            app.get("/api/v1/domains/l.example/devices?category=A")
                .await
                .expect(200)
        ),
        4
    );
    assert_eq!(
        count(
            app.get("/api/v1/domains/l.example/devices?user=u1")
                .await
                .expect(200)
        ),
        3
    );
    assert_eq!(
        count(
            app.get("/api/v1/domains/l.example/devices?user=u1&category=A")
                .await
                .expect(200)
        ),
        2
    );
    assert_eq!(
        count(
            app.get("/api/v1/domains/l.example/devices?mac=00:15:65:00:00:05")
                .await
                .expect(200)
        ),
        1
    );
    assert_eq!(
        count(
            app.get("/api/v1/domains/l.example/devices?state=added")
                .await
                .expect(200)
        ),
        7
    );
    assert_eq!(
        count(
            app.get("/api/v1/domains/l.example/devices?state=disabled")
                .await
                .expect(200)
        ),
        0
    );
    app.get("/api/v1/domains/l.example/devices?state=sleepy")
        .await
        .problem(400, "bad-request");
}

both!(tokens_can_be_created_and_revoked, tokens);
async fn tokens(app: TestApp) {
    app.create_domain("t.example").await;
    let created = app
        .post("/api/v1/tokens", json!({"role": "operator", "name": "ci"}))
        .await
        .expect(201);
    let secret = created["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(created["hint"].as_str().unwrap()));
    app.call(Method::GET, "/api/v1/domains", Some(&secret), None)
        .await
        .expect(200);
    let listed = app.get("/api/v1/tokens").await.expect(200);
    assert!(
        !listed.to_string().contains(&secret),
        "listing never shows a secret"
    );
    let id = created["id"].as_i64().unwrap();
    let revoked = app
        .delete(&format!("/api/v1/tokens/{id}"))
        .await
        .expect(200);
    assert!(revoked["revoked_at"].is_string());
    app.call(Method::GET, "/api/v1/domains", Some(&secret), None)
        .await
        .problem(401, "unauthorized");
    app.post("/api/v1/tokens", json!({"role": "domain-admin"}))
        .await
        .problem(400, "invalid-field");
    app.post(
        "/api/v1/tokens",
        json!({"role": "operator", "domain": "t.example"}),
    )
    .await
    .problem(400, "invalid-field");
    let p = app
        .post("/api/v1/tokens", json!({"role": "root"}))
        .await
        .problem(400, "invalid-field");
    assert_eq!(p["field"], "role");
}

both!(audit_log_records_admin_changes, audit);
async fn audit(app: TestApp) {
    app.create_domain("a.example").await;
    app.create_user("a.example", "erin").await;
    app.create_account("a.example", "erin", "500", "topsecret-pw")
        .await;
    app.create_device(
        "a.example",
        json!({"mac": "001565000500", "lines": ["500"]}),
    )
    .await;
    app.patch(
        "/api/v1/domains/a.example/devices/001565000500",
        json!({"model": "T46U"}),
    )
    .await
    .expect(200);
    let log = app.get("/api/v1/audit?domain=a.example").await.expect(200);
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "device.update",
            "device.create",
            "account.create",
            "user.create",
            "domain.create"
        ]
    );
    let update = &log["items"][0];
    assert_eq!(update["before"]["model"], "");
    assert_eq!(update["after"]["model"], "T46U");
    assert_eq!(update["target"], "001565000500");
    assert!(
        update["actor"].as_str().unwrap().starts_with("token:"),
        "{update}"
    );
    assert!(
        !log.to_string().contains("topsecret-pw"),
        "no secrets in the audit log"
    );
}
