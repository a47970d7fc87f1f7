//! Update jobs: a fleet of emulated Yealink and Snom phones checks in repeatedly; they see
//! the right firmware URL and settings, staged shares hold, progress counts match what the
//! phones did, and cancel, pause and pins behave.

use provisor_testkit::{Phone, TestApp, both};
use reqwest::Method;
use serde_json::{Value, json};

const DOMAIN: &str = "acme.example.com";

struct Fleet {
    devices: Vec<Device>,
}

struct Device {
    vendor: &'static str,
    mac: String,
    url: String,
}

impl Device {
    fn user_agent(&self, version: &str) -> String {
        match self.vendor {
            "yealink" => {
                let colons: Vec<String> = (0..6)
                    .map(|i| self.mac[i * 2..i * 2 + 2].to_owned())
                    .collect();
                format!("Yealink SIP-T54W {version} {}", colons.join(":"))
            }
            "cisco-mpp" => format!("Cisco-CP-8851-3PCC/{version} ({})", self.mac),
            "fanvil" => format!("Fanvil X5U {version} {}", self.mac),
            _ => format!(
                "Mozilla/4.0 (compatible; snomD785-SIP {version} 1.1.5-IFX-05.01.12 {})",
                self.mac.to_uppercase()
            ),
        }
    }

    fn file(&self) -> String {
        match self.vendor {
            "yealink" => format!("{}.cfg", self.mac),
            "cisco-mpp" => format!("{}.xml", self.mac),
            "fanvil" => format!("{}.cfg", self.mac),
            _ => format!("{}.xml", self.mac.to_uppercase()),
        }
    }

    /// One check-in: the device file, fetched from its tokenized URL, running `version`.
    async fn check_in(&self, app: &TestApp, version: &str) -> String {
        let mut phone = Phone::new(app, &self.user_agent(version));
        phone.move_to(&self.url);
        let answer = phone.get(&self.file()).await;
        assert_eq!(answer.status, 200, "{}: {}", self.mac, answer.text);
        answer.text
    }
}

fn jobs(rest: &str) -> String {
    format!("/api/v1/domains/{DOMAIN}/jobs{rest}")
}

/// `n` Yealink, `n` Snom and `n` Cisco MPP phones in category Desk; check-ins are not merged (window 0).
async fn fleet(app: &TestApp, n: usize) -> Fleet {
    app.create_domain(DOMAIN).await;
    app.patch(
        &format!("/api/v1/domains/{DOMAIN}"),
        json!({"phone_policy": {"check_in_seconds": 0}}),
    )
    .await
    .expect(200);
    app.create_category(DOMAIN, "Desk", false).await;
    app.create_category(DOMAIN, "Lobby", false).await;
    app.create_user(DOMAIN, "owner").await;
    let mut devices = Vec::new();
    for i in 0..n {
        for (vendor, model, oui) in [
            ("yealink", "T54W", "001565"),
            ("snom", "D785", "000413"),
            ("cisco-mpp", "8851", "00562b"),
        ] {
            let mac = format!("{oui}{i:06x}");
            let d = app
                .create_device(
                    DOMAIN,
                    json!({"mac": mac, "vendor": vendor, "model": model, "category": "Desk", "user": "owner"}),
                )
                .await;
            devices.push(Device {
                vendor,
                mac,
                url: d["provisioning"]["url"].as_str().unwrap().to_owned(),
            });
        }
    }
    Fleet { devices }
}

async fn create(app: &TestApp, body: Value) -> Value {
    app.post(&jobs(""), body).await.expect(201)
}

fn progress(job: &Value) -> (u64, u64, u64, u64) {
    let p = &job["progress"];
    let n = |k: &str| p[k].as_u64().unwrap();
    (n("pending"), n("offered"), n("applied"), n("failed"))
}

/// The job once the check-ins are recorded (the contact writer works in the background)
/// and `done` holds for its progress.
async fn job_when(app: &TestApp, id: &Value, done: impl Fn((u64, u64, u64, u64)) -> bool) -> Value {
    app.eventually(&jobs(&format!("/{id}")), |j| done(progress(j)))
        .await
}

fn firmware_of(config: &str) -> Option<String> {
    config.lines().find_map(|l| {
        l.strip_prefix("static.firmware.url = ")
            .map(str::to_owned)
            .or_else(|| {
                let l = l.trim();
                l.strip_prefix("<firmware perm=\"R\">")
                    .and_then(|r| r.strip_suffix("</firmware>"))
                    .or_else(|| {
                        l.strip_prefix("<Upgrade_Rule ua=\"na\">")
                            .and_then(|r| r.strip_suffix("</Upgrade_Rule>"))
                    })
                    .or_else(|| {
                        l.strip_prefix("<Auto_Image_URL>")
                            .and_then(|r| r.strip_suffix("</Auto_Image_URL>"))
                    })
                    .map(str::to_owned)
            })
    })
}

both!(software_jobs_roll_out_in_stages_and_report_progress, staged);
async fn staged(app: TestApp) {
    let fleet = fleet(&app, 20).await;
    let old = create(
        &app,
        json!({"kind": "software", "category": "Desk", "url": "https://fw.example/v1.rom", "version": "1.0"}),
    )
    .await;
    let all = fleet.devices.len() as u64;
    assert_eq!(progress(&old), (all, 0, 0, 0), "every device is pending");
    let new = create(
        &app,
        json!({"kind": "software", "category": "Desk", "url": "https://fw.example/v2.rom", "version": "2.0", "percent": 25, "max_offers": 1}),
    )
    .await;
    let staged = progress(&new).0;
    assert_eq!(staged, (all * 25 + 50) / 100, "a quarter of {all}, rounded");

    // First check-in, on the old version: the staged devices get v2, the others v1.
    let mut in_new = Vec::new();
    for d in &fleet.devices {
        let url = firmware_of(&d.check_in(&app, "0.9").await).expect("a firmware URL");
        assert!(url == "https://fw.example/v1.rom" || url == "https://fw.example/v2.rom");
        in_new.push(url.ends_with("v2.rom"));
    }
    let n_new = in_new.iter().filter(|x| **x).count() as u64;
    assert_eq!(
        n_new, staged,
        "the staged devices are the ones the count said"
    );
    job_when(&app, &new["id"], |p| p == (0, n_new, 0, 0)).await;
    job_when(&app, &old["id"], |p| p == (0, all - n_new, 0, 0)).await;

    // The same devices again: no device flips.
    for (d, was) in fleet.devices.iter().zip(&in_new) {
        let url = firmware_of(&d.check_in(&app, "0.9").await).unwrap();
        assert_eq!(
            url.ends_with("v2.rom"),
            *was,
            "{} stays where it was",
            d.mac
        );
    }
    job_when(&app, &new["id"], |p| p.3 == n_new).await;
    // Raising the share keeps them and adds more.
    let raised = app
        .patch(&jobs(&format!("/{}", new["id"])), json!({"percent": 75}))
        .await
        .expect(200);
    let (pending, offered, _, failed) = progress(&raised);
    assert_eq!(failed, n_new, "offered once, back without applying: failed");
    assert_eq!(offered, 0);
    assert_eq!(
        pending + failed,
        (all * 75 + 50) / 100,
        "three quarters, rounded"
    );
    let failures = app.events_of(DOMAIN, "job.failed").await.len() as u64;
    assert_eq!(failures, n_new, "one job.failed per device");

    // Devices that update report the version: applied.
    let mut applied = 0;
    for d in &fleet.devices {
        let text = d.check_in(&app, "1.0").await;
        if firmware_of(&text).unwrap().ends_with("v2.rom") {
            d.check_in(&app, "2.0").await;
            applied += 1;
        }
    }
    job_when(&app, &new["id"], |p| p.2 == applied && p.0 == 0 && p.1 == 0).await;
    let devices = app
        .get(&jobs(&format!("/{}/devices", new["id"])))
        .await
        .expect(200);
    assert_eq!(
        devices
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["state"] == "applied")
            .count() as u64,
        applied
    );
    // The devices left on v1 applied it; those that moved on to v2 are superseded.
    let left = all - (all * 75 + 50) / 100;
    let old_now = job_when(&app, &old["id"], |p| p == (0, 0, left, 0)).await;
    assert_eq!(
        old_now["progress"]["superseded"],
        all - left - n_new,
        "{old_now}"
    );
    assert!(old_now["completed_at"].is_string(), "nothing left to do");

    // Cancelling v2 sends everyone back to v1.
    app.patch(
        &jobs(&format!("/{}", new["id"])),
        json!({"state": "cancelled"}),
    )
    .await
    .expect(200);
    for d in &fleet.devices {
        let url = firmware_of(&d.check_in(&app, "2.0").await).unwrap();
        assert_eq!(url, "https://fw.example/v1.rom");
    }
    app.patch(
        &jobs(&format!("/{}", new["id"])),
        json!({"state": "active"}),
    )
    .await
    .problem(409, "conflict");
}

both!(config_jobs_pause_pins_and_categories, config_and_pins);
async fn config_and_pins(app: TestApp) {
    let fleet = fleet(&app, 2).await;
    let yealink = &fleet.devices[0];
    let snom = &fleet.devices[1];
    let ntp = create(
        &app,
        json!({"kind": "config", "category": "Desk", "config_type": "ntp", "params": {"server": "ntp.jobs.example"}}),
    )
    .await;
    create(
        &app,
        json!({"kind": "config", "config_type": "language", "params": {"language": "de"}}),
    )
    .await;
    let text = yealink.check_in(&app, "1.0").await;
    assert!(
        text.contains("local_time.ntp_server1 = ntp.jobs.example"),
        "{text}"
    );
    assert!(text.contains("lang.gui = German"), "{text}");
    let text = snom.check_in(&app, "1.0").await;
    assert!(text.contains(">ntp.jobs.example<"), "{text}");
    // A config job is applied when the device comes back for its file.
    job_when(&app, &ntp["id"], |p| p == (4, 2, 0, 0)).await;
    yealink.check_in(&app, "1.0").await;
    job_when(&app, &ntp["id"], |p| p == (4, 1, 1, 0)).await;
    // A device setting still wins over a job (the job is a layer over the category).
    app.patch(
        &format!("/api/v1/domains/{DOMAIN}/devices/{}", yealink.mac),
        json!({"settings": {"ntp_server": "ntp.device.example"}}),
    )
    .await
    .expect(200);
    assert!(
        yealink
            .check_in(&app, "1.0")
            .await
            .contains("ntp.device.example")
    );
    // Moving to another category: that category's jobs (none for ntp).
    app.patch(
        &format!("/api/v1/domains/{DOMAIN}/devices/{}", snom.mac),
        json!({"category": "Lobby"}),
    )
    .await
    .expect(200);
    let text = snom.check_in(&app, "1.0").await;
    assert!(!text.contains("ntp.jobs.example"), "{text}");
    assert!(
        text.contains("Deutsch"),
        "the domain-wide language job still applies"
    );

    // Pause: devices that have it keep it, others do not get it.
    let fw = create(
        &app,
        json!({"kind": "software", "url": "https://fw.example/x.rom", "version": "9", "models": ["t54w"]}),
    )
    .await;
    assert_eq!(
        progress(&fw).0,
        2,
        "only the Yealink model, in any category"
    );
    assert_eq!(
        firmware_of(&yealink.check_in(&app, "1.0").await).as_deref(),
        Some("https://fw.example/x.rom")
    );
    job_when(&app, &fw["id"], |p| p.1 == 1).await;
    app.patch(&jobs(&format!("/{}", fw["id"])), json!({"state": "paused"}))
        .await
        .expect(200);
    assert!(firmware_of(&yealink.check_in(&app, "1.0").await).is_some());
    let never_offered = fleet
        .devices
        .iter()
        .filter(|d| d.vendor == "yealink")
        .nth(1)
        .unwrap();
    assert!(firmware_of(&never_offered.check_in(&app, "1.0").await).is_none());
    assert!(firmware_of(&snom.check_in(&app, "1.0").await).is_none());
    // A pin wins over jobs.
    let pin = format!(
        "/api/v1/domains/{DOMAIN}/devices/{}/firmware-pin",
        yealink.mac
    );
    app.call(
        Method::PUT,
        &pin,
        Some(&app.token),
        Some(json!({"url": "https://fw.example/pinned.rom", "version": "8"})),
    )
    .await
    .expect(200);
    assert_eq!(
        firmware_of(&yealink.check_in(&app, "1.0").await).as_deref(),
        Some("https://fw.example/pinned.rom")
    );
    app.delete(&pin).await.expect(204);
    assert_eq!(
        firmware_of(&yealink.check_in(&app, "1.0").await).as_deref(),
        Some("https://fw.example/x.rom")
    );
    // A job for a list of devices completes once they all applied it.
    let listed = create(
        &app,
        json!({"kind": "software", "url": "https://fw.example/y.rom", "version": "9.9", "devices": [yealink.mac]}),
    )
    .await;
    assert_eq!(progress(&listed), (1, 0, 0, 0));
    yealink.check_in(&app, "9.9").await;
    let done = app
        .eventually(&jobs(&format!("/{}", listed["id"])), |j| {
            j["completed_at"].is_string()
        })
        .await;
    assert_eq!(progress(&done), (0, 0, 1, 0));
    let completed = app.events_of(DOMAIN, "job.completed").await;
    assert!(
        completed
            .iter()
            .any(|e| e["payload"]["job_id"] == listed["id"]),
        "{completed:?}"
    );
    // Jobs never cross domains.
    app.create_domain("other.example.com").await;
    let other = app
        .get("/api/v1/domains/other.example.com/jobs")
        .await
        .expect(200);
    assert_eq!(other, json!([]));
    app.get(&format!(
        "/api/v1/domains/other.example.com/jobs/{}",
        fw["id"]
    ))
    .await
    .problem(404, "not-found");
    // A domain-wide job of this domain does not reach a phone of the other one, even in a
    // category of the same name.
    create(
        &app,
        json!({"kind": "software", "url": "https://fw.example/a.rom", "version": "A"}),
    )
    .await;
    app.create_category("other.example.com", "Desk", false)
        .await;
    let foreign = app
        .create_device(
            "other.example.com",
            json!({"mac": "001565ffff01", "vendor": "yealink", "model": "T54W", "category": "Desk"}),
        )
        .await;
    let foreign = Device {
        vendor: "yealink",
        mac: "001565ffff01".into(),
        url: foreign["provisioning"]["url"].as_str().unwrap().to_owned(),
    };
    assert!(firmware_of(&foreign.check_in(&app, "1.0").await).is_none());
    assert_eq!(
        firmware_of(&fleet.devices[2].check_in(&app, "1.0").await).as_deref(),
        Some("https://fw.example/a.rom"),
        "while this domain's phones get it"
    );
}

both!(a_firmware_store_job_serves_its_snapshot, snapshot);
async fn snapshot(app: TestApp) {
    let fleet = fleet(&app, 1).await;
    let d = &fleet.devices[0];
    let put = |body: &'static str| {
        app.client
            .put(format!("{}/api/v1/firmware/t54w.rom", app.base))
            .bearer_auth(&app.token)
            .body(body)
            .send()
    };
    assert!(put("firmware one").await.unwrap().status().is_success());
    create(
        &app,
        json!({"kind": "software", "firmware": "t54w.rom", "version": "2.0"}),
    )
    .await;
    app.post(
        &jobs(""),
        json!({"kind": "software", "firmware": "missing.rom", "version": "2.0"}),
    )
    .await
    .problem(400, "invalid-field");
    // The file is replaced after the job was made: the job still serves what it saw.
    assert!(put("firmware two").await.unwrap().status().is_success());
    let url = firmware_of(&d.check_in(&app, "1.0").await).unwrap();
    assert!(url.contains("/firmware/t54w.rom?sha256="), "{url}");
    let got = app
        .client
        .get(&url)
        .header("user-agent", d.user_agent("1.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.text().await.unwrap(), "firmware one");
    // A Fanvil phone gets the same snapshot.
    let fanvil = app
        .create_device(
            DOMAIN,
            json!({"mac": "0c383eaabb07", "vendor": "fanvil", "model": "X5U", "category": "Desk"}),
        )
        .await;
    let fanvil = Device {
        vendor: "fanvil",
        mac: "0c383eaabb07".into(),
        url: fanvil["provisioning"]["url"].as_str().unwrap().to_owned(),
    };
    let fanvil_url = firmware_of(&fanvil.check_in(&app, "2.12.16.17").await).unwrap();
    assert!(
        fanvil_url.contains("/firmware/t54w.rom?sha256="),
        "{fanvil_url}"
    );
    // Another digest, or another device's token: nothing.
    let wrong = url.split("sha256=").next().unwrap().to_owned() + "sha256=" + &"0".repeat(64);
    assert_eq!(app.client.get(&wrong).send().await.unwrap().status(), 404);
}

both!(the_cli_makes_and_steers_jobs, cli_jobs);
async fn cli_jobs(app: TestApp) {
    let fleet = fleet(&app, 1).await;
    let cli = |args: &[&str]| -> Value {
        let mut all = vec!["--json", "job"];
        all.extend_from_slice(args);
        serde_json::from_str(&crate::cli::provisor_ok(&app, &all)).unwrap()
    };
    let made = cli(&[
        "create",
        "--domain",
        DOMAIN,
        "--kind",
        "config",
        "--type",
        "codecs",
        "--param",
        "codecs=pcmu, g722",
        "--category",
        "Desk",
    ]);
    assert_eq!(
        made["job"]["payload"]["settings"]["codecs"],
        json!(["PCMU", "G722"])
    );
    assert_eq!(made["progress"]["pending"], 3);
    let id = made["job"]["id"].to_string();
    let fw = cli(&[
        "create",
        "--domain",
        DOMAIN,
        "--kind",
        "software",
        "--url",
        "https://fw.example/z.rom",
        "--version",
        "3",
        "--percent",
        "100",
    ]);
    let fw_id = fw["job"]["id"].to_string();
    let listed = cli(&["list", "--domain", DOMAIN]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["job"]["id"], fw["job"]["id"], "newest first");
    assert_eq!(
        cli(&["pause", "--domain", DOMAIN, &fw_id])["job"]["state"],
        "paused"
    );
    assert_eq!(
        cli(&["resume", "--domain", DOMAIN, &fw_id])["job"]["state"],
        "active"
    );
    assert_eq!(
        cli(&["percent", "--domain", DOMAIN, &fw_id, "50"])["job"]["percent"],
        50
    );
    assert_eq!(
        cli(&["cancel", "--domain", DOMAIN, &fw_id])["job"]["state"],
        "cancelled"
    );
    app.create_account(DOMAIN, "owner", "100", "pw-100").await;
    app.patch(
        &format!("/api/v1/domains/{DOMAIN}/devices/{}", fleet.devices[0].mac),
        json!({"lines": ["100"]}),
    )
    .await
    .expect(200);
    let text = fleet.devices[0].check_in(&app, "1").await;
    assert!(firmware_of(&text).is_none(), "cancelled");
    assert!(
        text.contains("account.1.codec.pcmu.priority = 1")
            && text.contains("account.1.codec.g722.priority = 2"),
        "{text}"
    );
    let shown = app
        .eventually(&jobs(&format!("/{id}")), |j| j["progress"]["offered"] == 1)
        .await;
    assert_eq!(shown["progress"]["pending"], 2);
    let with_devices = cli(&["show", "--domain", DOMAIN, &id, "--devices"]);
    assert_eq!(with_devices["devices"][0]["mac"], fleet.devices[0].mac);
}
