//! Firmware files: uploaded by operators (API and CLI), served to phones only under their
//! token, with ETag, Last-Modified and ranges; a device's `firmware` setting points its
//! configuration at one.

use provisor_testkit::{Phone, TestApp, both};
use reqwest::Method;
use serde_json::json;

const DOMAIN: &str = "fw.example.com";

both!(firmware_goes_to_devices_under_their_token, firmware_flow);
async fn firmware_flow(app: TestApp) {
    let image: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let name = "T54W-96.86.0.100.rom";
    let put = app
        .client
        .put(format!("{}/api/v1/firmware/{name}", app.base))
        .bearer_auth(&app.token)
        .body(image.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let entry: serde_json::Value = put.json().await.unwrap();
    let sha = provisor_domain::token::sha256_hex(&image);
    assert_eq!(entry["sha256"], sha.as_str());
    assert_eq!(entry["size"], 100_000);
    assert!(app.data_path().join("firmware").join(&sha).exists());
    let listed = app.get("/api/v1/firmware").await.expect(200);
    assert_eq!(listed[0]["name"], name);
    // Only operators upload.
    app.create_domain(DOMAIN).await;
    let admin = app.domain_admin_token(DOMAIN).await;
    let refused = app
        .client
        .put(format!("{}/api/v1/firmware/other.rom", app.base))
        .bearer_auth(&admin)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    app.call(
        Method::PUT,
        "/api/v1/firmware/.hidden",
        Some(&app.token),
        None,
    )
    .await
    .problem(400, "invalid-field");

    let mac = "001565dd0001";
    let device = app
        .create_device(
            DOMAIN,
            json!({"mac": mac, "vendor": "yealink", "model": "T54W", "settings": {"firmware": name}}),
        )
        .await;
    let url = device["provisioning"]["url"].as_str().unwrap().to_owned();
    let mut phone = Phone::new(&app, "Yealink SIP-T54W 96.86.0.100 00:15:65:dd:00:01");
    phone.move_to(&url);
    let config = phone.get(&format!("{mac}.cfg")).await;
    assert!(
        config
            .text
            .contains(&format!("static.firmware.url = {url}firmware/{name}")),
        "{}",
        config.text
    );
    let file = format!("firmware/{name}");
    let whole = phone.get_with(&file, &[]).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.headers["etag"], format!("\"{sha}\"").as_str());
    assert!(whole.headers.contains_key("last-modified"));
    assert_eq!(whole.headers["accept-ranges"], "bytes");
    let bytes = app
        .client
        .get(format!("{url}{file}"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.as_ref(), image.as_slice());
    let part = app
        .client
        .get(format!("{url}{file}"))
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 10-19/100000");
    assert_eq!(part.bytes().await.unwrap().as_ref(), &image[10..20]);
    let tail = phone.get_with(&file, &[("range", "bytes=99990-")]).await;
    assert_eq!(tail.status, 206);
    let beyond = phone.get_with(&file, &[("range", "bytes=100000-")]).await;
    assert_eq!(beyond.status, 416);
    let etag = format!("\"{sha}\"");
    let same = phone.get_with(&file, &[("if-none-match", &etag)]).await;
    assert_eq!(same.status, 304);
    // Without the token, or with another one, or a name not uploaded: the empty 404.
    let mut stranger = Phone::new(&app, "curl/8");
    assert_eq!(stranger.get(&file).await.status, 404);
    assert_eq!(
        stranger
            .get(&format!("{}/{file}", "A".repeat(32)))
            .await
            .status,
        404
    );
    assert_eq!(phone.get_with("firmware/none.rom", &[]).await.status, 404);

    // The CLI stores and lists the same way; deleting removes the contents too.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("W52P-25.81.0.10.rom");
    std::fs::write(&path, b"handset firmware").unwrap();
    let added =
        crate::cli::provisor_ok(&app, &["--json", "firmware", "add", path.to_str().unwrap()]);
    assert!(added.contains("W52P-25.81.0.10.rom"), "{added}");
    let listed = crate::cli::provisor_ok(&app, &["firmware", "list"]);
    assert!(
        listed.contains(name) && listed.contains("W52P-25.81.0.10.rom"),
        "{listed}"
    );
    app.delete(&format!("/api/v1/firmware/{name}"))
        .await
        .expect(204);
    assert!(!app.data_path().join("firmware").join(&sha).exists());
    assert_eq!(phone.get_with(&file, &[]).await.status, 404);
}
