//! Phones fetching their files: every vendor's boot sequence with real User-Agents and
//! file names, the armed hand-off to the tokenized URL, and every way a fetch is refused.

use provisor::config::Config;
use provisor_domain::phone::Unauthenticated;
use provisor_testkit::{Answer, Phone, TestApp, both};
use reqwest::Method;
use serde_json::{Value, json};

const DOMAIN: &str = "acme.example.com";

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Common,
    Device,
    Skip,
}

struct Boot {
    vendor: &'static str,
    model: &'static str,
    mac: &'static str,
    user_agent: &'static str,
    /// The files in the order the phone asks for them.
    files: &'static [(&'static str, Kind)],
}

use Kind::*;

const BOOTS: &[Boot] = &[
    Boot {
        vendor: "yealink",
        model: "T54W",
        mac: "001565aabb01",
        user_agent: "Yealink SIP-T54W 96.86.0.100 00:15:65:aa:bb:01",
        files: &[
            ("001565aabb01.boot", Device),
            ("y000000000000.boot", Common),
            ("y000000000096.cfg", Common),
            ("001565aabb01.cfg", Device),
        ],
    },
    Boot {
        vendor: "poly",
        model: "VVX_450",
        mac: "0004f2aabb02",
        user_agent: "FileTransport PolycomVVX-VVX_450-UA/6.4.6.2 Type/Application",
        files: &[
            ("000000000000.cfg", Common),
            ("0004f2aabb02.cfg", Device),
            ("0004f2aabb02-phone.cfg", Device),
        ],
    },
    Boot {
        vendor: "snom",
        model: "D785",
        mac: "000413aabb03",
        user_agent: "Mozilla/4.0 (compatible; snomD785-SIP 10.1.169.16 1.1.5-IFX-05.01.12 000413AABB03)",
        files: &[
            ("snomD785.htm", Common),
            ("snomD785-000413AABB03.htm", Device),
            ("000413AABB03.xml", Device),
        ],
    },
    Boot {
        vendor: "grandstream",
        model: "GXP2170",
        mac: "000b82aabb04",
        user_agent: "Grandstream Model HW GXP2170 SW 1.0.11.85 DevId 000b82aabb04",
        files: &[
            ("cfg000b82aabb04", Skip),
            ("cfg000b82aabb04.xml", Device),
            ("cfggxp2170.xml", Common),
            ("cfg.xml", Common),
        ],
    },
    Boot {
        vendor: "cisco-mpp",
        model: "8851",
        mac: "00562baabb05",
        user_agent: "Cisco-CP-8851-3PCC/11.3.1 (00562baabb05)",
        files: &[("8851-3PCC.xml", Common), ("00562baabb05.xml", Device)],
    },
    Boot {
        vendor: "cisco-spa",
        model: "SPA504G",
        mac: "0002fdaabb06",
        user_agent: "Cisco/SPA504G-7.6.2 (0002FDAABB06)(CBT141400UK)",
        files: &[("spa504G.cfg", Common), ("spa0002fdaabb06.xml", Device)],
    },
    Boot {
        vendor: "fanvil",
        model: "X5U",
        mac: "0c383eaabb07",
        user_agent: "Fanvil X5U 2.12.16.17 0c383eaabb07",
        files: &[("0c383eaabb07.cfg", Device)],
    },
    Boot {
        vendor: "gigaset",
        model: "N510 IP PRO",
        mac: "7c2f80aabb08",
        user_agent: "N510 IP PRO/42.245.00.000.000;7C2F80AABB08",
        files: &[("7C2F80AABB08.xml", Device)],
    },
    Boot {
        vendor: "htek",
        model: "UC903",
        mac: "001fc1aabb09",
        user_agent: "Htek UC903 2.0.4.2 00:1f:c1:aa:bb:09",
        files: &[("cfg001fc1aabb09.xml", Device)],
    },
    Boot {
        vendor: "panasonic",
        model: "KX-UT123",
        mac: "0080f0aabb0a",
        user_agent: "Panasonic_KX-UT123/01.133 (0080f0aabb0a)",
        files: &[("KX-UT123.cfg", Common), ("Config0080F0AABB0A.cfg", Device)],
    },
];

fn devices(mac: &str) -> String {
    format!("/api/v1/domains/{DOMAIN}/devices/{mac}")
}

/// A domain with user `owner` holding two accounts, and a device with both as its lines.
async fn device_with_two_lines(
    app: &TestApp,
    owner: &str,
    vendor: &str,
    model: &str,
    mac: &str,
) -> Value {
    if app.get(&format!("/api/v1/domains/{DOMAIN}")).await.status == 404 {
        app.create_domain(DOMAIN).await;
    }
    app.device_with_two_lines(
        DOMAIN,
        owner,
        json!({"mac": mac, "vendor": vendor, "model": model}),
    )
    .await
}

fn url_of(device: &Value) -> String {
    device["provisioning"]["url"]
        .as_str()
        .expect("a provisioning URL")
        .to_owned()
}

#[track_caller]
fn assert_carries_lines(boot: &Boot, owner: &str, file: &str, answer: &Answer) {
    assert_eq!(
        answer.status, 200,
        "{} {file}: {}",
        boot.vendor, answer.text
    );
    for n in 1..=2 {
        assert!(
            answer.text.contains(&format!("pw-{owner}-{n}"))
                && answer.text.contains(&format!("{owner}{n}")),
            "{} {file} lacks line {n}:\n{}",
            boot.vendor,
            answer.text
        );
    }
}

both!(every_vendor_boots_through_its_hand_off, every_vendor_boots);
async fn every_vendor_boots(app: TestApp) {
    for (i, boot) in BOOTS.iter().enumerate() {
        let owner = format!("u{i}");
        // The owner's SIP passwords (`pw-u0-1`, …); a random URL token may hold "pw-".
        let secret = format!("pw-{owner}-");
        let device = device_with_two_lines(&app, &owner, boot.vendor, boot.model, boot.mac).await;
        assert!(
            device["provisioning"]["armed_until"].is_string(),
            "{device}"
        );
        let token_url = url_of(&device);
        let without_scheme = token_url.split_once("://").unwrap().1;
        let mut phone = Phone::new(&app, boot.user_agent);
        let mut moved = false;
        for &(file, kind) in boot.files {
            let answer = phone.get(file).await;
            match kind {
                Skip => assert_eq!(answer.status, 404, "{} {file}", boot.vendor),
                Common => {
                    assert_eq!(
                        answer.status, 200,
                        "{} {file}: {}",
                        boot.vendor, answer.text
                    );
                    assert!(!answer.text.contains(&secret), "{} {file}", boot.vendor);
                }
                Device if !moved => {
                    // The hand-off: no secrets, the tokenized URL; then the phone moves.
                    assert_eq!(
                        answer.status, 200,
                        "{} {file}: {}",
                        boot.vendor, answer.text
                    );
                    assert!(
                        !answer.text.contains(&secret),
                        "{}: {}",
                        boot.vendor,
                        answer.text
                    );
                    assert!(
                        answer.text.contains(without_scheme),
                        "{} {file} does not point at {token_url}:\n{}",
                        boot.vendor,
                        answer.text
                    );
                    phone.move_to(&token_url);
                    moved = true;
                    let again = phone.get(file).await;
                    assert_eq!(again.status, 200, "{} {file}: {}", boot.vendor, again.text);
                }
                Device => {
                    assert_eq!(
                        answer.status, 200,
                        "{} {file}: {}",
                        boot.vendor, answer.text
                    );
                }
            }
        }
        assert!(moved, "{} has a device file", boot.vendor);
        // The last device file is the configuration, with every line.
        let last = boot
            .files
            .iter()
            .rev()
            .find(|(_, k)| *k == Device)
            .unwrap()
            .0;
        let config = phone.get_with(last, &[]).await;
        assert_carries_lines(boot, &owner, last, &config);
        // The phone keeps fetching from its tokenized URL; unchanged files are 304.
        assert_eq!(phone.get(last).await.status, 304, "{}", boot.vendor);
        // The hand-off was once: a second unauthenticated fetch is refused.
        let mut fresh = Phone::new(&app, boot.user_agent);
        let again = fresh
            .get(boot.files.iter().find(|(_, k)| *k == Device).unwrap().0)
            .await;
        assert_eq!(again.status, 404, "{}: {}", boot.vendor, again.text);
        let seen = app
            .eventually(&devices(boot.mac), |d| d["state"] == "provisioned")
            .await;
        assert_eq!(seen["last_ip"], "127.0.0.1");
        assert!(seen["first_contact"].is_string() && seen["last_contact"].is_string());
        assert_eq!(seen["provisioning"]["armed_until"], Value::Null);
        assert!(!seen["firmware"].as_str().unwrap().is_empty(), "{seen}");
    }
}

/// Headers that may differ between two answers without telling anything.
fn comparable(a: &Answer) -> (u16, Vec<(String, String)>, String) {
    let mut headers: Vec<(String, String)> = a
        .headers
        .iter()
        .filter(|(k, _)| *k != "date")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    headers.sort();
    (a.status.as_u16(), headers, a.text.clone())
}

both!(
    unauthenticated_fetches_tell_nothing,
    unauthenticated_fetches
);
async fn unauthenticated_fetches(app: TestApp) {
    let known = "001565aabbcc";
    device_with_two_lines(&app, "alice", "yealink", "T54W", known).await;
    // Not armed any more (as after its hand-off).
    app.post(&format!("{}/arm", devices(known)), json!({"minutes": 0}))
        .await
        .expect(200);
    let ua = |mac: &str| format!("Yealink SIP-T54W 96.86.0.100 {mac}");
    let mut a = Phone::new(&app, &ua(known));
    let mut b = Phone::new(&app, &ua("001565000099"));
    let known_answer = a.get(&format!("{known}.cfg")).await;
    let unknown_answer = b.get("001565000099.cfg").await;
    assert_eq!(known_answer.status, 404);
    assert_eq!(known_answer.text, "");
    assert_eq!(comparable(&known_answer), comparable(&unknown_answer));

    // A wrong token, an unknown path and an unknown file all look the same.
    let mut nobody = Phone::new(&app, &ua(known));
    let wrong_token = nobody.get(&format!("{}/{known}.cfg", "A".repeat(32))).await;
    let unknown_path = nobody.get("nothing/here.cfg").await;
    let unknown_file = nobody.get("index.html").await;
    let deep = nobody.get("a/b/c.cfg").await;
    assert_eq!(comparable(&wrong_token), comparable(&unknown_path));
    assert_eq!(comparable(&wrong_token), comparable(&unknown_file));
    assert_eq!(comparable(&wrong_token), comparable(&deep));
    assert_eq!(comparable(&wrong_token), comparable(&known_answer));

    let refusals = app
        .eventually(&format!("{}/refusals", devices(known)), |r| {
            r["items"].as_array().is_some_and(|i| !i.is_empty())
        })
        .await;
    let reason = refusals["items"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("without credentials"), "{reason}");
    assert_eq!(refusals["items"][0]["file"], format!("{known}.cfg"));
    assert_eq!(refusals["items"][0]["ip"], "127.0.0.1");
}

both!(refusals_name_their_reason, refusal_reasons);
async fn refusal_reasons(app: TestApp) {
    let a = "001565aabb11";
    let b = "001565aabb22";
    let da = device_with_two_lines(&app, "alice", "yealink", "T54W", a).await;
    device_with_two_lines(&app, "bob", "yealink", "T54W", b).await;
    let ua = "Yealink SIP-T54W 96.86.0.100 00:15:65:aa:bb:11";
    let mut phone = Phone::new(&app, ua);
    phone.move_to(&url_of(&da));
    assert_eq!(phone.get(&format!("{a}.cfg")).await.status, 200);

    // A's token asking for B's file (a User-Agent without a MAC).
    let mut quiet = Phone::new(&app, "Yealink SIP-T54W 96.86.0.100");
    quiet.move_to(&url_of(&da));
    let other = quiet.get(&format!("{b}.cfg")).await;
    assert_eq!(other.status, 404);
    assert!(!other.text.contains("pw-bob"));
    // The file name's MAC and the User-Agent's differ.
    let mut liar = Phone::new(&app, ua);
    assert_eq!(liar.get(&format!("{b}.cfg")).await.status, 404);
    // Disabled devices get nothing, even with their token.
    app.patch(&devices(a), json!({"state": "disabled"}))
        .await
        .expect(200);
    assert_eq!(phone.get_with(&format!("{a}.cfg"), &[]).await.status, 404);
    app.patch(&devices(a), json!({"state": "provisioned"}))
        .await
        .expect(200);
    // Outside the domain's networks, the token is not enough.
    app.patch(
        &format!("/api/v1/domains/{DOMAIN}"),
        json!({"phone_policy": {"networks": ["10.0.0.0/8"]}}),
    )
    .await
    .expect(200);
    assert_eq!(phone.get_with(&format!("{a}.cfg"), &[]).await.status, 404);

    let reasons = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["reason"].as_str().unwrap().to_owned())
            .collect()
    };
    let a_refusals = app
        .eventually(&format!("{}/refusals", devices(a)), |r| {
            reasons(r).len() >= 3
        })
        .await;
    let a_reasons = reasons(&a_refusals).join("\n");
    assert!(a_reasons.contains("file of 001565aabb22"), "{a_reasons}");
    assert!(a_reasons.contains("disabled"), "{a_reasons}");
    assert!(
        a_reasons.contains("outside the domain's allowed networks"),
        "{a_reasons}"
    );
    let b_refusals = app
        .eventually(&format!("{}/refusals", devices(b)), |r| {
            !reasons(r).is_empty()
        })
        .await;
    assert!(
        reasons(&b_refusals)[0].contains("User-Agent"),
        "{b_refusals}"
    );

    // The CLI lists them too.
    let out = crate::cli::provisor_ok(&app, &["device", "refusals", "--mac", a]);
    assert!(
        out.contains("outside the domain's allowed networks"),
        "{out}"
    );
}

both!(networks_can_be_the_credential, networks_suffice);
async fn networks_suffice(app: TestApp) {
    let mac = "001565aabb33";
    device_with_two_lines(&app, "carol", "yealink", "T54W", mac).await;
    app.post(&format!("{}/arm", devices(mac)), json!({"minutes": 0}))
        .await
        .expect(200);
    let mut phone = Phone::new(&app, "Yealink SIP-T54W 96.86.0.100 00:15:65:aa:bb:33");
    assert_eq!(phone.get(&format!("{mac}.cfg")).await.status, 404);
    app.patch(
        &format!("/api/v1/domains/{DOMAIN}"),
        json!({"phone_policy": {"networks": ["127.0.0.0/8"], "networks_suffice": true}}),
    )
    .await
    .expect(200);
    let answer = phone.get(&format!("{mac}.cfg")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(answer.text.contains("pw-carol-1") && answer.text.contains("pw-carol-2"));
    let bad = app
        .patch(
            &format!("/api/v1/domains/{DOMAIN}"),
            json!({"phone_policy": {"networks": ["10.0.0.0/33"]}}),
        )
        .await;
    bad.problem(400, "invalid-field");
}

both!(rotated_tokens_keep_working_for_their_grace, token_rotation);
async fn token_rotation(app: TestApp) {
    let mac = "001565aabb44";
    let device = device_with_two_lines(&app, "dave", "yealink", "T54W", mac).await;
    let old = url_of(&device);
    let rotated = app
        .post(&format!("{}/token", devices(mac)), json!({}))
        .await
        .expect(200);
    let new = url_of(&rotated);
    assert_ne!(old, new);
    assert!(rotated["provisioning"]["previous_token_valid_until"].is_string());
    let mut phone = Phone::new(&app, "Yealink SIP-T54W 96.86.0.100 00:15:65:aa:bb:44");
    for url in [&old, &new] {
        phone.move_to(url);
        let answer = phone.get_with(&format!("{mac}.cfg"), &[]).await;
        assert_eq!(answer.status, 200, "{url}");
        // The file points the phone at the newest URL.
        assert!(answer.text.contains(&new), "{}", answer.text);
    }
    // Without a grace period the old token stops at once.
    app.patch(
        &format!("/api/v1/domains/{DOMAIN}"),
        json!({"phone_policy": {"token_grace_minutes": 0}}),
    )
    .await
    .expect(200);
    let newest = url_of(
        &app.post(&format!("{}/token", devices(mac)), json!({}))
            .await
            .expect(200),
    );
    phone.move_to(&new);
    assert_eq!(phone.get_with(&format!("{mac}.cfg"), &[]).await.status, 404);
    phone.move_to(&newest);
    assert_eq!(phone.get_with(&format!("{mac}.cfg"), &[]).await.status, 200);
    // The CLI shows the URL.
    let shown = crate::cli::provisor_ok(&app, &["--json", "device", "show", "--mac", mac]);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    // (The CLI builds it from the configuration; this test server listens on port 0.)
    let path = |u: &str| u.split_once("/p/").unwrap().1.to_owned();
    assert_eq!(
        path(shown["provisioning"]["url"].as_str().unwrap()),
        path(&newest)
    );
    // Audited, without the token.
    let audit = app.get("/api/v1/audit").await.expect(200).to_string();
    assert!(audit.contains("device.rotate-token"));
    assert!(!audit.contains(newest.rsplit('/').nth(1).unwrap()));
}

both!(unknown_macs_are_recorded_only_where_asked, unassigned);
async fn unassigned(app: TestApp) {
    app.create_domain(DOMAIN).await;
    let mut phone = Phone::new(&app, "Yealink SIP-T46S 66.86.0.15 00:15:65:00:00:77");
    assert_eq!(phone.get("001565000077.cfg").await.status, 404);
    // Records are written in order, after the answer: once a later refusal is listed, the
    // unknown MAC's contact has been handled under the policy of that time.
    let witness = "001565000079";
    app.create_device(DOMAIN, json!({"mac": witness})).await;
    app.post(&format!("{}/arm", devices(witness)), json!({"minutes": 0}))
        .await
        .expect(200);
    let mut other = Phone::new(&app, "Yealink SIP-T46S 66.86.0.15 00:15:65:00:00:79");
    assert_eq!(other.get(&format!("{witness}.cfg")).await.status, 404);
    app.eventually(&format!("{}/refusals", devices(witness)), |r| {
        r["items"].as_array().is_some_and(|i| !i.is_empty())
    })
    .await;
    app.patch(
        &format!("/api/v1/domains/{DOMAIN}"),
        json!({"phone_policy": {"networks": ["127.0.0.0/8"], "record_unassigned": true}}),
    )
    .await
    .expect(200);
    let mut phone = Phone::new(&app, "Yealink SIP-T46S 66.86.0.15 00:15:65:00:00:78");
    assert_eq!(phone.get("001565000078.cfg").await.status, 404);
    let seen = app
        .eventually(&format!("/api/v1/domains/{DOMAIN}/unassigned"), |v| {
            v["items"].as_array().is_some_and(|i| !i.is_empty())
        })
        .await;
    let items = seen["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "only after the policy asked: {seen}");
    assert_eq!(items[0]["mac"], "001565000078");
    assert_eq!(items[0]["vendor"], "yealink");
    assert_eq!(items[0]["model"], "T46S");
    assert_eq!(items[0]["firmware"], "66.86.0.15");
    // Claimed: it leaves the list.
    app.create_device(DOMAIN, json!({"mac": "001565000078"}))
        .await;
    let after = app
        .get(&format!("/api/v1/domains/{DOMAIN}/unassigned"))
        .await
        .expect(200);
    assert_eq!(after["items"], json!([]));
}

both!(poly_uploads_its_logs_under_its_token, poly_logs);
async fn poly_logs(app: TestApp) {
    let mac = "0004f2aabb55";
    let device = device_with_two_lines(&app, "erin", "poly", "VVX_450", mac).await;
    let mut phone = Phone::new(
        &app,
        "FileTransport PolycomVVX-VVX_450-UA/6.4.6.2 Type/Application",
    );
    assert_eq!(
        phone
            .put(&format!("{mac}-boot.log"), "no token")
            .await
            .status,
        404
    );
    phone.move_to(&url_of(&device));
    assert_eq!(
        phone
            .put(&format!("{mac}-boot.log"), "booted fine")
            .await
            .status,
        204
    );
    assert_eq!(
        phone.put("0004f2000000-app.log", "not mine").await.status,
        404
    );
    let listed = app
        .get(&format!("{}/uploads", devices(mac)))
        .await
        .expect(200);
    assert_eq!(listed[0]["name"], format!("{mac}-boot.log"));
    assert_eq!(listed[0]["size"], 11);
    let body = app
        .get(&format!("{}/uploads/{mac}-boot.log", devices(mac)))
        .await;
    assert_eq!(body.text, "booted fine");
    let _ = phone.get("000000000000.cfg").await;
}

/// RFC 2617 digest response for a request, as a phone computes it.
fn digest_response(user: &str, password: &str, nonce: &str, uri: &str) -> String {
    use md5::{Digest, Md5};
    let h = |s: String| hex::encode(Md5::digest(s.as_bytes()));
    let ha1 = h(format!("{user}:provisor:{password}"));
    let ha2 = h(format!("GET:{uri}"));
    h(format!("{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}"))
}

fn nonce_of(answer: &Answer) -> String {
    let header = answer.headers["www-authenticate"].to_str().unwrap();
    header
        .split("nonce=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned()
}

fn challenge(c: &mut Config) {
    c.phone_unauthenticated = Unauthenticated::Challenge;
}

fn bootstrap(c: &mut Config) {
    c.phone_unauthenticated = Unauthenticated::Bootstrap;
}

both!(
    digest_with_the_mac_and_fetch_password,
    digest_flow,
    super::challenge
);
async fn digest_flow(app: TestApp) {
    let mac = "001565aabb66";
    device_with_two_lines(&app, "frank", "yealink", "T54W", mac).await;
    app.post(&format!("{}/arm", devices(mac)), json!({"minutes": 0}))
        .await
        .expect(200);
    let ua = "Yealink SIP-T54W 96.86.0.100 00:15:65:aa:bb:66";
    let phone = Phone::new(&app, ua);
    let file = format!("{mac}.cfg");
    // Known and unknown MACs are challenged alike.
    let known = phone.get_with(&file, &[]).await;
    let unknown = Phone::new(&app, "Yealink SIP-T54W 96.86.0.100 00:15:65:00:00:01")
        .get_with("001565000001.cfg", &[])
        .await;
    assert_eq!(known.status, 401);
    assert_eq!(unknown.status, 401);
    let strip = |a: &Answer| {
        let (s, h, t) = comparable(a);
        let h: Vec<_> = h
            .into_iter()
            .filter(|(k, _)| k != "www-authenticate")
            .collect();
        (s, h, t)
    };
    assert_eq!(strip(&known), strip(&unknown));
    let secrets = app
        .get(&format!("{}/secrets", devices(mac)))
        .await
        .expect(200);
    let password = secrets["digest_password"].as_str().unwrap().to_owned();
    assert_eq!(secrets["digest_user"], mac);
    let uri = format!("/p/{file}");
    let authorize = |password: &str, nonce: &str| {
        format!(
            "Digest username=\"{mac}\", realm=\"provisor\", nonce=\"{nonce}\", uri=\"{uri}\", qop=auth, nc=00000001, cnonce=\"c0ffee\", response=\"{}\"",
            digest_response(mac, password, nonce, &uri)
        )
    };
    // Digest is off in the domain's policy: even the right password is refused.
    let nonce = nonce_of(&known);
    let off = phone
        .get_with(&file, &[("authorization", &authorize(&password, &nonce))])
        .await;
    assert_eq!(off.status, 401);
    app.patch(
        &format!("/api/v1/domains/{DOMAIN}"),
        json!({"phone_policy": {"digest": true}}),
    )
    .await
    .expect(200);
    let wrong = phone
        .get_with(&file, &[("authorization", &authorize("not-it", &nonce))])
        .await;
    assert_eq!(wrong.status, 401);
    let right = phone
        .get_with(&file, &[("authorization", &authorize(&password, &nonce))])
        .await;
    assert_eq!(right.status, 200, "{}", right.text);
    assert!(right.text.contains("pw-frank-1") && right.text.contains("pw-frank-2"));
    let reasons = app
        .eventually(&format!("{}/refusals", devices(mac)), |r| {
            r["items"].as_array().is_some_and(|i| i.len() >= 3)
        })
        .await
        .to_string();
    assert!(reasons.contains("wrong digest password"), "{reasons}");
    assert!(reasons.contains("does not accept"), "{reasons}");
}

both!(
    bootstrap_is_the_same_for_every_mac,
    bootstrap_flow,
    super::bootstrap
);
async fn bootstrap_flow(app: TestApp) {
    let known = "001565aabb77";
    let unknown = "001565aabb78";
    device_with_two_lines(&app, "gina", "yealink", "T54W", known).await;
    app.post(&format!("{}/arm", devices(known)), json!({"minutes": 0}))
        .await
        .expect(200);
    let ua = |mac: &str| format!("Yealink SIP-T54W 96.86.0.100 {mac}");
    let k = Phone::new(&app, &ua(known))
        .get_with(&format!("{known}.cfg"), &[])
        .await;
    let u = Phone::new(&app, &ua(unknown))
        .get_with(&format!("{unknown}.cfg"), &[])
        .await;
    assert_eq!(k.status, 200);
    assert!(k.text.starts_with("#!version:1.0.0.1"), "{}", k.text);
    assert!(
        !k.text.contains("pw-gina") && !k.text.contains("user_password"),
        "{}",
        k.text
    );
    let same = |a: &Answer, mac: &str| {
        let (s, h, t) = comparable(a);
        let h: Vec<_> = h.into_iter().filter(|(k, _)| k != "etag").collect();
        (s, h, t.replace(mac, "MAC"))
    };
    assert_eq!(same(&k, known), same(&u, unknown));
    assert!(k.text.contains(&format!("{}/p/\n", app.base)), "{}", k.text);
}

both!(admin_routes_stay_scoped, admin_scoping);
async fn admin_scoping(app: TestApp) {
    let mac = "001565aabb88";
    device_with_two_lines(&app, "hal", "yealink", "T54W", mac).await;
    app.create_domain("other.example").await;
    let other = app.domain_admin_token("other.example").await;
    for (method, path) in [
        (Method::GET, format!("{}/secrets", devices(mac))),
        (Method::GET, format!("{}/refusals", devices(mac))),
        (Method::POST, format!("{}/token", devices(mac))),
    ] {
        let body = (method == Method::POST).then(|| json!({}));
        app.call(method, &path, Some(&other), body)
            .await
            .problem(404, "not-found");
    }
}

fn one_at_a_time(c: &mut Config) {
    c.phone_max_in_flight = 1;
}

both!(
    a_boot_storm_beyond_the_limit_is_told_to_come_back,
    admission,
    super::one_at_a_time
);
async fn admission(app: TestApp) {
    use tokio::io::AsyncWriteExt;
    // A phone request in progress: a log upload whose body has not arrived yet.
    let mut slow = tokio::net::TcpStream::connect(app.address).await.unwrap();
    slow.write_all(
        b"PUT /p/001565aabbcc-boot.log HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
    )
    .await
    .unwrap();
    // In progress, not answered (the server waits for its body).
    let mut first = [0u8; 1];
    let pending = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        tokio::io::AsyncReadExt::read(&mut slow, &mut first),
    )
    .await;
    assert!(pending.is_err(), "the upload is not answered yet");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let fetch = || {
        client
            .get(format!("{}/p/001565aabbcc.cfg", app.base))
            .send()
    };
    // Another phone meanwhile: told to come back, 5 to 30 seconds later.
    let mut turned_away = None;
    for _ in 0..200 {
        let r = fetch().await.unwrap();
        if r.status() == 503 {
            turned_away = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let r = turned_away.expect("a 503 while the upload is in progress");
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((5..=30).contains(&wait), "{wait}");
    assert_eq!(r.headers()["cache-control"], "no-store");
    // The API is not phone traffic: still answered.
    app.get("/api/v1/domains").await.expect(200);
    // The upload ends (its phone goes away): phones are answered again.
    drop(slow);
    let mut answered = false;
    for _ in 0..200 {
        if fetch().await.unwrap().status() == 404 {
            answered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(answered, "the place is given back");
}

fn behind_a_balancer(c: &mut Config) {
    c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
}

/// A device (not armed) whose domain lets phones of 198.51.100.0/24 fetch by their address.
async fn only_from_a_network(app: &TestApp) -> &'static str {
    let mac = "001565aabb34";
    device_with_two_lines(app, "dave", "yealink", "T54W", mac).await;
    app.post(&format!("{}/arm", devices(mac)), json!({"minutes": 0}))
        .await
        .expect(200);
    app.patch(
        &format!("/api/v1/domains/{DOMAIN}"),
        json!({"phone_policy": {"networks": ["198.51.100.0/24"], "networks_suffice": true}}),
    )
    .await
    .expect(200);
    mac
}

/// What a phone behind the balancer at 127.0.0.1 gets for its file.
async fn fetch_forwarded(app: &TestApp, mac: &str, forwarded_for: &str) -> u16 {
    let phone = Phone::new(app, "Yealink SIP-T54W 96.86.0.100 00:15:65:aa:bb:34");
    phone
        .get_with(&format!("{mac}.cfg"), &[("x-forwarded-for", forwarded_for)])
        .await
        .status
        .as_u16()
}

both!(
    a_trusted_balancer_names_the_phone,
    forwarded_for,
    super::behind_a_balancer
);
async fn forwarded_for(app: TestApp) {
    let mac = only_from_a_network(&app).await;
    // The phone's own address, as the balancer (a trusted proxy) passes it on.
    assert_eq!(fetch_forwarded(&app, mac, "198.51.100.7").await, 200);
    // A client's own claim before the balancer's entry does not count: the right-most
    // untrusted address is the one the balancer saw.
    assert_eq!(
        fetch_forwarded(&app, mac, "198.51.100.7, 203.0.113.9").await,
        404
    );
    assert_eq!(fetch_forwarded(&app, mac, "not an address").await, 404);
    // Refusals are written by the background writer, a moment after the answer.
    app.eventually(&format!("{}/refusals", devices(mac)), |r| {
        r.to_string().contains("203.0.113.9")
    })
    .await;
}

both!(x_forwarded_for_is_ignored_from_others, forwarded_ignored);
async fn forwarded_ignored(app: TestApp) {
    let mac = only_from_a_network(&app).await;
    // No trusted proxies: anyone may write the header; it changes nothing.
    assert_eq!(fetch_forwarded(&app, mac, "198.51.100.7").await, 404);
}
