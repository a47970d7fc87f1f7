//! HTTPS next to HTTP: phones bootstrap on HTTP and move to HTTPS; client certificates
//! naming a device's MAC prove the device where its domain's policy accepts them.

use std::path::PathBuf;
use std::sync::OnceLock;

use provisor::config::Config;
use provisor_testkit::{Phone, TestApp, both};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde_json::{Value, json};

const DOMAIN: &str = "tls.example.com";

fn self_signed(c: &mut Config) {
    c.tls_self_signed = true;
}

/// A phone vendor's CA, made once for the test binary, and the file its certificate is in.
struct VendorCa {
    cert: Certificate,
    key: KeyPair,
    file: PathBuf,
}

fn vendor_ca() -> &'static VendorCa {
    static CA: OnceLock<VendorCa> = OnceLock::new();
    CA.get_or_init(|| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Test phone vendor CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = std::env::temp_dir().join(format!("provisor-test-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("vendor-ca.pem");
        std::fs::write(&file, cert.pem()).unwrap();
        VendorCa { cert, key, file }
    })
}

/// A device certificate with `mac` as its common name, as PEM certificate + key.
fn device_identity(ca: &VendorCa, mac: &str) -> String {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, mac);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    format!("{}{}", cert.pem(), key.serialize_pem())
}

fn with_client_ca(c: &mut Config) {
    c.tls_self_signed = true;
    c.tls_client_ca = Some(vendor_ca().file.clone());
}

async fn device(app: &TestApp, mac: &str) -> Value {
    if app.get(&format!("/api/v1/domains/{DOMAIN}")).await.status == 404 {
        app.create_domain(DOMAIN).await;
        app.create_user(DOMAIN, "ivy").await;
        app.create_account(DOMAIN, "ivy", "300", "pw-ivy-300").await;
        app.create_account(DOMAIN, "ivy", "301", "pw-ivy-301").await;
    }
    app.create_device(
        DOMAIN,
        json!({"mac": mac, "vendor": "yealink", "model": "T54W", "lines": ["300", "301"]}),
    )
    .await
}

both!(
    phones_bootstrap_on_http_and_move_to_https,
    move_to_https,
    super::self_signed
);
async fn move_to_https(app: TestApp) {
    let https = app.https_base.clone().expect("an HTTPS listener");
    let mac = "001565cc0001";
    let created = device(&app, mac).await;
    let url = created["provisioning"]["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{https}/p/")), "{url}");
    let ua = "Yealink SIP-T54W 96.86.0.100 00:15:65:cc:00:01";
    let mut phone = Phone::new(&app, ua).with_client(app.https_client(None));
    let boot = phone.get(&format!("{mac}.boot")).await;
    assert_eq!(boot.status, 200, "{}", boot.text);
    let include = boot
        .text
        .lines()
        .find_map(|l| l.strip_prefix("include:config \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("an include line");
    assert_eq!(include, format!("{url}{mac}.cfg"));
    phone.move_to(&url);
    let config = phone.get(&format!("{mac}.cfg")).await;
    assert_eq!(config.status, 200, "{}", config.text);
    assert!(config.text.contains("pw-ivy-300") && config.text.contains("pw-ivy-301"));
    assert!(
        config
            .text
            .contains(&format!("static.auto_provision.server.url = {url}")),
        "{}",
        config.text
    );
    // The API is there over HTTPS too.
    let health = app
        .https_client(None)
        .get(format!("{https}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

both!(
    client_certificates_prove_the_device,
    client_certificates,
    super::with_client_ca
);
async fn client_certificates(app: TestApp) {
    let https = app.https_base.clone().expect("an HTTPS listener");
    let ca = vendor_ca();
    let mac = "001565cc0002";
    device(&app, mac).await;
    app.post(
        &format!("/api/v1/domains/{DOMAIN}/devices/{mac}/arm"),
        json!({"minutes": 0}),
    )
    .await
    .expect(200);
    let ua = "Yealink SIP-T54W 96.86.0.100 00:15:65:cc:00:02";
    let file = format!("{mac}.cfg");
    let fetch = |identity: Option<String>| {
        let client = app.https_client(identity.as_deref());
        let mut phone = Phone::new(&app, ua).with_client(client);
        phone.move_to(&format!("{https}/p/"));
        let file = file.clone();
        async move { phone.get_with(&file, &[]).await }
    };
    let own = || Some(device_identity(ca, mac));
    // Not accepted until the domain's policy says so.
    assert_eq!(fetch(own()).await.status, 404);
    app.patch(
        &format!("/api/v1/domains/{DOMAIN}"),
        json!({"phone_policy": {"client_cert": true}}),
    )
    .await
    .expect(200);
    let answer = fetch(own()).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(answer.text.contains("pw-ivy-300"));
    // No certificate, or another device's: nothing.
    assert_eq!(fetch(None).await.status, 404);
    let other = fetch(Some(device_identity(ca, "001565cc0099"))).await;
    assert_eq!(other.status, 404);
    assert!(!other.text.contains("pw-ivy"));
    let refusals = app
        .eventually(
            &format!("/api/v1/domains/{DOMAIN}/devices/{mac}/refusals"),
            |r| r["items"].as_array().is_some_and(|i| i.len() >= 3),
        )
        .await
        .to_string();
    assert!(refusals.contains("does not accept"), "{refusals}");
    assert!(
        refusals.contains("client certificate of 001565cc0099"),
        "{refusals}"
    );
}

/// A self-signed certificate for 127.0.0.1: (certificate PEM, key PEM).
fn server_pair() -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    (made.cert.pem(), made.key_pair.serialize_pem())
}

async fn trusts(pem: &str, url: &str) -> bool {
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    client.get(url).send().await.is_ok()
}

/// `provisor serve --tls-cert … --tls-key …` serves HTTPS next to HTTP and takes a renewed
/// certificate on SIGHUP without a restart.
#[tokio::test]
async fn the_certificate_is_reloaded_on_sighup() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (first_cert, first_key) = server_pair();
    std::fs::write(&cert, &first_cert).unwrap();
    std::fs::write(&key, &first_key).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_provisor"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-listen",
            "127.0.0.1:0",
        ])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .args(["--log-format", "json"])
        .current_dir(dir.path())
        .env_remove("PROVISOR_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut logs = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str::<Value>(&l.unwrap()).expect("a JSON log line"));
    let https = logs
        .by_ref()
        .find_map(|v| v["fields"]["https"].as_str().map(str::to_owned))
        .expect("the HTTPS address is logged");
    let address = https
        .strip_prefix("Some(")
        .and_then(|a| a.strip_suffix(')'))
        .expect("an address");
    let url = format!("https://{address}/healthz");
    assert!(trusts(&first_cert, &url).await);
    let (second_cert, second_key) = server_pair();
    assert!(!trusts(&second_cert, &url).await);
    std::fs::write(&cert, &second_cert).unwrap();
    std::fs::write(&key, &second_key).unwrap();
    Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    logs.find(|v| {
        v["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("reloaded the TLS certificate"))
    })
    .expect("the reload is logged");
    assert!(trusts(&second_cert, &url).await);
    assert!(!trusts(&first_cert, &url).await);
    let _ = child.kill();
    let _ = child.wait();
}
