//! Stored templates reaching phones: a domain's and a category's replacement of a built-in
//! template, checks at upload with line and column, the render preview with masked secrets,
//! 3CX imports serving every line, and the CLI.

use provisor_testkit::{Answer, Phone, TestApp, both};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::provisor_ok;

const DOMAIN: &str = "acme.example.com";
const YEALINK_UA: &str = "Yealink SIP-T54W 96.86.0.100";
const SNOM_UA: &str =
    "Mozilla/4.0 (compatible; snomD785-SIP 10.1.169.16 1.1.5-IFX-05.01.12 000413AABB03)";

fn templates(rest: &str) -> String {
    format!("/api/v1/domains/{DOMAIN}/templates{rest}")
}

async fn put_template(app: &TestApp, token: &str, path: &str, source: &str) -> Answer {
    app.send(
        Method::PUT,
        &templates(path),
        Some(token),
        "text/plain",
        source,
    )
    .await
}

async fn device(app: &TestApp, owner: &str, body: Value) -> Value {
    app.device_with_two_lines(DOMAIN, owner, body).await
}

/// The device's phone, already moved to its tokenized URL.
fn phone_of(app: &TestApp, device: &Value, user_agent: &str) -> Phone {
    let mut phone = Phone::new(app, user_agent);
    phone.move_to(device["provisioning"]["url"].as_str().unwrap());
    phone
}

const OVERRIDE: &str = "#!version:1.0.0.1\n\
{% for line in lines %}\n\
account.{{ line.number }}.user_name = {{ line.sip_user }}\n\
account.{{ line.number }}.password = {{ line.password }}\n\
{% endfor %}\n\
static.security.user_password = admin:{{ device.admin_password }}\n\
made.by = ";

both!(overrides_reach_phones, overrides);
async fn overrides(app: TestApp) {
    app.create_domain(DOMAIN).await;
    app.create_category(DOMAIN, "Desk", false).await;
    let desk = device(
        &app,
        "alice",
        json!({"mac": "001565aabb01", "vendor": "yealink", "model": "T54W", "category": "Desk"}),
    )
    .await;
    let plain = device(
        &app,
        "bob",
        json!({"mac": "001565aabb02", "vendor": "yealink", "model": "T54W"}),
    )
    .await;
    let op = app.token.clone();
    let admin = app.domain_admin_token(DOMAIN).await;

    // Built-in files until a template is stored.
    let mut desk_phone = phone_of(&app, &desk, &format!("{YEALINK_UA} 00:15:65:aa:bb:01"));
    let mut plain_phone = phone_of(&app, &plain, &format!("{YEALINK_UA} 00:15:65:aa:bb:02"));
    let built_in = desk_phone.get("001565aabb01.cfg").await;
    assert_eq!(built_in.status, 200);
    assert!(!built_in.text.contains("made.by"));

    // The domain admin stores the domain's; an operator the category's.
    let stored = put_template(
        &app,
        &admin,
        "/yealink/mac.cfg",
        &format!("{OVERRIDE}domain\n"),
    )
    .await
    .expect(200);
    assert_eq!(stored["origin"], "template");
    assert_eq!(stored["category"], Value::Null);
    put_template(
        &app,
        &op,
        "/yealink/mac.cfg?category=Desk",
        &format!("{OVERRIDE}desk\n"),
    )
    .await
    .expect(200);

    let desk_file = desk_phone.get("001565aabb01.cfg").await;
    assert_eq!(desk_file.status, 200, "{}", desk_file.text);
    assert!(
        desk_file.text.ends_with("made.by = desk\n"),
        "{}",
        desk_file.text
    );
    assert!(desk_file.text.contains("account.2.password = pw-alice-2"));
    assert_ne!(desk_file.headers["etag"], built_in.headers["etag"]);
    let plain_file = plain_phone.get("001565aabb02.cfg").await;
    assert!(
        plain_file.text.ends_with("made.by = domain\n"),
        "{}",
        plain_file.text
    );
    assert!(plain_file.text.contains("account.1.password = pw-bob-1"));
    // Unchanged: 304 as for built-in files.
    assert_eq!(plain_phone.get("001565aabb02.cfg").await.status, 304);

    // Problems are found at upload, with line and column, and change nothing.
    let p = put_template(
        &app,
        &admin,
        "/yealink/mac.cfg",
        "ok\n  {{ device.macc }}\n",
    )
    .await
    .problem(422, "invalid-template");
    assert_eq!(
        (p["line"].as_u64(), p["column"].as_u64()),
        (Some(2), Some(6)),
        "{p}"
    );
    assert!(p["detail"].as_str().unwrap().contains("device.macc"), "{p}");
    let p = put_template(&app, &admin, "/yealink/mac.cfg", "{% for x in lines %}")
        .await
        .problem(422, "invalid-template");
    assert!(
        p["detail"].as_str().unwrap().contains("syntax error"),
        "{p}"
    );
    let p = put_template(
        &app,
        &admin,
        "/yealink/mac.cfg",
        "{{ device.mac ~ device.mac }}",
    )
    .await
    .problem(422, "invalid-template");
    assert!(p["detail"].as_str().unwrap().contains("`~`"), "{p}");
    put_template(&app, &admin, "/yealink/common.boot", "x")
        .await
        .problem(400, "bad-request");
    put_template(&app, &admin, "/nokia/mac.cfg", "x")
        .await
        .problem(400, "bad-request");
    put_template(&app, &admin, "/yealink/mac.cfg?category=Nope", "x")
        .await
        .problem(400, "invalid-field");
    assert!(
        plain_phone
            .get_with("001565aabb02.cfg", &[])
            .await
            .text
            .ends_with("made.by = domain\n")
    );

    // Listing and reading back; another domain's admin sees nothing of it.
    let listed = app.get(&templates("")).await.expect(200);
    let keys: Vec<(Value, Value)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["category"].clone(), t["name"].clone()))
        .collect();
    assert_eq!(
        keys,
        [
            (json!(null), json!("mac.cfg")),
            (json!("Desk"), json!("mac.cfg"))
        ]
    );
    let one = app
        .get(&templates("/yealink/mac.cfg?category=Desk"))
        .await
        .expect(200);
    assert!(one["source"].as_str().unwrap().ends_with("desk\n"));
    app.create_domain("other.example").await;
    let other = app.domain_admin_token("other.example").await;
    app.call(Method::GET, &templates(""), Some(&other), None)
        .await
        .problem(404, "not-found");
    put_template(&app, &other, "/yealink/mac.cfg", "x")
        .await
        .problem(404, "not-found");
    let builtin = app.get("/api/v1/vendors/yealink/templates/mac.cfg").await;
    assert_eq!(builtin.status, 200);
    assert!(builtin.text.starts_with("#!version:1.0.0.1"));

    // The preview: what the device would get, passwords masked unless an operator asks.
    let render = format!("/api/v1/domains/{DOMAIN}/devices/001565aabb01/render");
    let preview = app
        .post(&render, json!({"file": "001565aabb01.cfg"}))
        .await
        .expect(200);
    assert_eq!(preview["source"], "category");
    assert_eq!(preview["template"], "mac.cfg");
    assert_eq!(preview["masked"], true);
    let body = preview["body"].as_str().unwrap();
    assert!(
        body.contains("account.1.password = ********") && !body.contains("pw-alice"),
        "{body}"
    );
    assert!(body.contains("admin:********"));
    let revealed = app
        .post(&render, json!({"file": "001565aabb01.cfg", "reveal": true}))
        .await
        .expect(200);
    assert_eq!(revealed["masked"], false);
    assert_eq!(revealed["body"].as_str().unwrap(), desk_file.text);
    let as_admin = app
        .call(
            Method::POST,
            &render,
            Some(&admin),
            Some(json!({"file": "001565aabb01.cfg", "reveal": true})),
        )
        .await
        .expect(200);
    assert_eq!(
        as_admin["masked"], true,
        "domain admins never see SIP passwords"
    );
    assert!(!as_admin["body"].as_str().unwrap().contains("pw-alice"));
    let common = app
        .post(&render, json!({"file": "y000000000096.cfg"}))
        .await
        .expect(200);
    assert_eq!(
        (common["kind"].as_str(), common["source"].as_str()),
        (Some("common"), Some("built-in"))
    );
    app.post(&render, json!({"file": "001565aabb02.cfg"}))
        .await
        .problem(400, "bad-request");
    app.post(&render, json!({"file": "index.html"}))
        .await
        .problem(400, "bad-request");
    app.call(
        Method::POST,
        &render.replace(DOMAIN, "other.example"),
        Some(&other),
        Some(json!({"file": "x.cfg"})),
    )
    .await
    .problem(404, "not-found");

    // Deleting the category's template brings the domain's back.
    app.delete(&templates("/yealink/mac.cfg?category=Desk"))
        .await
        .expect(204);
    let back = desk_phone.get("001565aabb01.cfg").await;
    assert!(back.text.ends_with("made.by = domain\n"), "{}", back.text);
    app.delete(&templates("/yealink/mac.cfg?category=Desk"))
        .await
        .problem(404, "not-found");
    let audit = app.get(&format!("/api/v1/audit?domain={DOMAIN}")).await;
    assert!(
        audit.text.contains("template.put") && !audit.text.contains("made.by"),
        "{}",
        audit.text
    );
}

const THREECX_SNOM: &str = r#"<?xml version="1.0"?>
<doc xmlns:tcx="http://www.3cx.com">
  <header><type>phone-template</type><name>Snom 320</name></header>
  <data>
    <device>
      <type>phone</type>
    <deviceconfig filename="cfg%%mac_address%%">
 <![CDATA[
  # First account
  user_pname1$: %%extension_auth_id%%
  user_pass1$: %%extension_auth_pw%%
  user_name1$: %%extension_number%%
  user_realname1$: %%extension_first_name%% %%extension_last_name%%
  user_host1$: %%pbx_ip%%
  ]]>
     </deviceconfig>
   </device>
 </data>
</doc>"#;

both!(threecx_templates_serve_every_line, threecx);
async fn threecx(app: TestApp) {
    app.create_domain(DOMAIN).await;
    let snom = device(
        &app,
        "carol",
        json!({"mac": "000413aabb03", "vendor": "snom", "model": "D785"}),
    )
    .await;
    let import = templates("/import-3cx?vendor=snom");

    // An unknown variable names itself, and nothing is stored.
    let bad = THREECX_SNOM.replace("%%pbx_ip%%", "%%pbx_sip_port%%");
    let p = app
        .send(
            Method::POST,
            &import,
            Some(&app.token),
            "application/xml",
            &bad,
        )
        .await
        .problem(422, "invalid-template");
    assert!(
        p["detail"].as_str().unwrap().contains("%%pbx_sip_port%%"),
        "{p}"
    );
    assert_eq!(p["line"], 14);
    assert_eq!(app.get(&templates("")).await.expect(200), json!([]));

    let imported = app
        .send(
            Method::POST,
            &import,
            Some(&app.token),
            "application/xml",
            THREECX_SNOM,
        )
        .await
        .expect(200);
    assert_eq!(imported["templates"][0]["name"], "cfg{mac}");
    assert_eq!(imported["templates"][0]["origin"], "3cx");
    assert_eq!(imported["warnings"], json!([]));

    // The phone fetches the 3CX file name under its token and gets both lines.
    let mut phone = phone_of(&app, &snom, SNOM_UA);
    let file = phone.get("cfg000413aabb03").await;
    assert_eq!(file.status, 200, "{}", file.text);
    assert_eq!(file.headers["content-type"], "text/plain; charset=utf-8");
    for (n, pw) in [(1, "pw-carol-1"), (2, "pw-carol-2")] {
        assert!(
            file.text.contains(&format!("user_pass{n}$: {pw}\n")),
            "{}",
            file.text
        );
        assert!(
            file.text.contains(&format!("user_name{n}$: carol{n}\n")),
            "{}",
            file.text
        );
        assert!(
            file.text
                .contains(&format!("user_host{n}$: sip.example.com\n")),
            "{}",
            file.text
        );
    }
    // Its other files are still the built-in ones.
    assert_eq!(phone.get("000413AABB03.xml").await.status, 200);

    // Without credentials the name gets what any unknown file gets, known MAC or not.
    let mut stranger = Phone::new(&app, SNOM_UA);
    let known = stranger.get("cfg000413aabb03").await;
    let unknown = stranger.get("cfg000413ffffff").await;
    assert_eq!((known.status.as_u16(), known.text.as_str()), (404, ""));
    assert_eq!((unknown.status.as_u16(), unknown.text.as_str()), (404, ""));
    let other_mac = phone.get("cfg000413ffffff").await;
    assert_eq!(other_mac.status, 404);

    // The preview shows it too, and the CLI agrees.
    let preview = app
        .post(
            &format!("/api/v1/domains/{DOMAIN}/devices/000413aabb03/render"),
            json!({"file": "cfg000413aabb03", "reveal": true}),
        )
        .await
        .expect(200);
    assert_eq!(preview["source"], "domain");
    assert_eq!(preview["body"].as_str().unwrap(), file.text);
    let printed = provisor_ok(
        &app,
        &["render", "--mac", "000413aabb03", "cfg000413aabb03"],
    );
    assert!(
        printed.contains("user_pass2$: ********") && !printed.contains("pw-carol"),
        "{printed}"
    );
    let revealed = provisor_ok(
        &app,
        &[
            "render",
            "--mac",
            "000413aabb03",
            "cfg000413aabb03",
            "--reveal",
        ],
    );
    assert_eq!(revealed.trim_end(), file.text.trim_end());
}

both!(templates_from_the_cli, cli);
async fn cli(app: TestApp) {
    app.create_domain(DOMAIN).await;
    let yealink = device(
        &app,
        "dave",
        json!({"mac": "001565aabb05", "vendor": "yealink", "model": "T54W"}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("mac.cfg");
    std::fs::write(&good, format!("{OVERRIDE}cli\n")).unwrap();
    let bad = dir.path().join("bad.cfg");
    std::fs::write(&bad, "a\nb\n{{ nothing }}\n").unwrap();
    let xml = dir.path().join("snom.xml");
    std::fs::write(&xml, THREECX_SNOM).unwrap();
    let good = good.to_str().unwrap();

    // One IANA time zone setting, in Yealink's form.
    app.patch(
        &format!("/api/v1/domains/{DOMAIN}"),
        json!({"settings": {"timezone": "Europe/Berlin"}}),
    )
    .await
    .expect(200);
    let before = phone_of(&app, &yealink, &format!("{YEALINK_UA} 00:15:65:aa:bb:05"))
        .get("001565aabb05.cfg")
        .await;
    assert!(
        before
            .text
            .contains("local_time.time_zone = +1\nlocal_time.time_zone_name = Germany(Berlin)\n"),
        "{}",
        before.text
    );

    let builtin = provisor_ok(&app, &["template", "builtin", "yealink", "mac.cfg"]);
    assert!(builtin.starts_with("#!version:1.0.0.1"));
    provisor_ok(
        &app,
        &[
            "template", "set", "--domain", DOMAIN, "yealink", "mac.cfg", good,
        ],
    );
    // The server hears of the CLI's change from the database: at once on PostgreSQL
    // (a notification), within the half-second change poll on SQLite.
    let phone = phone_of(&app, &yealink, &format!("{YEALINK_UA} 00:15:65:aa:bb:05"));
    let started = std::time::Instant::now();
    loop {
        let file = phone.get_with("001565aabb05.cfg", &[]).await;
        if file.text.ends_with("made.by = cli\n") {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "not served 3 s after the CLI set it: {}",
            file.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_provisor"))
        .args(["template", "set", "--domain", DOMAIN, "yealink", "mac.cfg"])
        .arg(&bad)
        .arg("--data-dir")
        .arg(app.data_path())
        .envs(
            app.config
                .database_url
                .as_ref()
                .map(|u| ("PROVISOR_DATABASE_URL", u.0.expose().to_owned())),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.cfg:3:4") && err.contains("nothing"),
        "{err}"
    );

    provisor_ok(
        &app,
        &[
            "template",
            "import-3cx",
            "--domain",
            DOMAIN,
            "--vendor",
            "snom",
            xml.to_str().unwrap(),
        ],
    );
    let listed = provisor_ok(&app, &["--json", "template", "list", "--domain", DOMAIN]);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cfg{mac}", "mac.cfg"]);
    let shown = provisor_ok(
        &app,
        &["template", "show", "--domain", DOMAIN, "yealink", "mac.cfg"],
    );
    assert!(shown.contains("made.by = cli"));
    provisor_ok(
        &app,
        &[
            "template", "delete", "--domain", DOMAIN, "yealink", "mac.cfg",
        ],
    );
    assert_eq!(
        app.get(&templates(""))
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
