//! What the API contract tests (scripts/contract, schemathesis) found, kept as tests: the
//! OpenAPI document says what the server answers.

use provisor_testkit::{TestApp, both};
use reqwest::Method;
use serde_json::{Value, json};

async fn document(app: &TestApp) -> Value {
    app.call(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .json()
}

// Enums are documented in their wire spelling (the document had the Rust names: `Udp`
// where the server sends and takes `udp`, `DomainAdmin` for `domain-admin`).
both!(enums_are_documented_as_sent, enums_as_sent);
async fn enums_as_sent(app: TestApp) {
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    for (name, values) in [
        ("Role", json!(["operator", "domain-admin"])),
        ("Transport", json!(["udp", "tcp", "tls"])),
        ("DeviceState", json!(["added", "provisioned", "disabled"])),
        ("JobKind", json!(["software", "config"])),
        ("JobState", json!(["active", "paused", "cancelled"])),
        (
            "ConfigType",
            json!([
                "ntp",
                "timezone",
                "language",
                "codecs",
                "dial_plan",
                "custom"
            ]),
        ),
    ] {
        assert_eq!(schemas[name]["enum"], values, "{name}");
        assert_eq!(schemas[name]["type"], "string", "{name}");
    }
    let domain = "enums.example";
    app.create_domain(domain).await;
    app.create_user(domain, "ann").await;
    let account = app
        .post(
            &format!("/api/v1/domains/{domain}/users/ann/accounts"),
            json!({"sip_user": "100", "password": "s3cret", "transport": "tls"}),
        )
        .await
        .expect(201);
    assert_eq!(account["transport"], "tls");
}

// Every problem document is `application/problem+json` in the document, as answered;
// every operation documents 401, and 415 where it takes JSON (the extractors' refusals);
// a path parameter is in the path (query parameters of five operations were documented
// as required path parameters).
both!(problems_are_documented_as_answered, problems_as_answered);
async fn problems_as_answered(app: TestApp) {
    let doc = document(&app).await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            for (status, response) in responses {
                let content = response["content"].as_object();
                for (media, body) in content.into_iter().flatten() {
                    if body["schema"]["$ref"] == "#/components/schemas/Problem" {
                        assert_eq!(
                            media, "application/problem+json",
                            "{method} {path} {status}"
                        );
                    }
                }
                if status.starts_with('4') {
                    assert!(
                        response["content"]["application/problem+json"].is_object(),
                        "{method} {path} {status}"
                    );
                }
            }
            assert!(responses.contains_key("401"), "{method} {path}");
            for parameter in op["parameters"].as_array().into_iter().flatten() {
                if parameter["in"] == "path" {
                    let name = parameter["name"].as_str().unwrap();
                    assert!(
                        path.contains(&format!("{{{name}}}")),
                        "{method} {path} {name}"
                    );
                }
            }
            if op["requestBody"]["content"]["application/json"].is_object() {
                assert!(responses.contains_key("415"), "{method} {path}");
                assert!(responses.contains_key("413"), "{method} {path}");
            }
        }
    }
    let r = app
        .send(
            Method::POST,
            "/api/v1/domains",
            Some(&app.token),
            "text/plain",
            "{}",
        )
        .await;
    assert_eq!(r.status, 415);
    assert_eq!(r.headers["content-type"], "application/problem+json");
}

// A rollout is JSON, or CSV for an id with `.csv`: both are documented (the CSV answer
// had replaced the JSON one in the document).
both!(
    a_rollout_is_documented_as_json_and_csv,
    rollout_as_json_and_csv
);
async fn rollout_as_json_and_csv(app: TestApp) {
    let doc = document(&app).await;
    let content = &doc["paths"]["/api/v1/domains/{domain}/rollouts/{id}"]["get"]["responses"]["200"]
        ["content"];
    assert_eq!(
        content["application/json"]["schema"]["$ref"],
        "#/components/schemas/RolloutView"
    );
    assert!(content["text/csv"].is_object(), "{content}");
}

// Firmware is bytes: documented as a binary body, and an empty one is refused (it was
// stored as a file of 0 bytes).
both!(firmware_is_a_binary_body_and_not_empty, firmware_not_empty);
async fn firmware_not_empty(app: TestApp) {
    let doc = document(&app).await;
    let body = &doc["paths"]["/api/v1/firmware/{name}"]["put"]["requestBody"]["content"]["application/octet-stream"]
        ["schema"];
    assert_eq!(body, &json!({"type": "string", "format": "binary"}));
    let put = app
        .client
        .put(format!("{}/api/v1/firmware/empty.rom", app.base))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 400);
    let problem: Value = put.json().await.unwrap();
    assert_eq!(problem["field"], "body");
    assert_eq!(
        app.get("/api/v1/firmware").await.expect(200),
        json!([]),
        "nothing is stored"
    );
}
