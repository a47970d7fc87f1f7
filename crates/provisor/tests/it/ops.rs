use provisor_testkit::{TestApp, both};

both!(health_readiness_metrics_and_openapi, ops);
async fn ops(app: TestApp) {
    let r = app.call(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status, 200);
    let ready = app
        .call(reqwest::Method::GET, "/readyz", None, None)
        .await
        .json();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["database"], app.store.backend());

    app.get("/api/v1/domains").await.expect(200);
    app.get("/api/v1/domains/nope")
        .await
        .problem(404, "not-found");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            r#"provisor_http_requests_total{method="GET",route="/api/v1/domains",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"route="/api/v1/domains/{domain}",status="404"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("provisor_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"provisor_db_pool_connections{state="max"} 10"#),
        "{metrics}"
    );

    let doc = app
        .call(reqwest::Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/api/v1/domains",
        "/api/v1/domains/{domain}/devices/{mac}",
        "/api/v1/domains/{domain}/import",
        "/api/v1/tokens",
        "/api/v1/audit",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["Device"].is_object());

    // Without its database the node is alive but not ready.
    app.store.close().await;
    let r = app.call(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["type"], "urn:provisor:problem:unavailable");
    let r = app.call(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status, 200);
}

// Every documented operation is routed (no route the document promises answers 404 route).
both!(every_documented_route_exists, documented_routes);
async fn documented_routes(app: TestApp) {
    let doc = app
        .call(reqwest::Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .json();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{domain}", "nope.example")
            .replace("{mac}", "001565000000")
            .replace("{id}", "1")
            .replace("{username}", "u")
            .replace("{category}", "c");
        for method in ops.as_object().unwrap().keys() {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let a = app
                .call(m, &concrete, Some(&app.token), Some(serde_json::json!({})))
                .await;
            assert_ne!(a.status.as_u16(), 405, "{method} {path}");
            if a.status == 404 {
                assert_ne!(a.json()["detail"], "route not found", "{method} {path}");
            }
        }
    }
}
