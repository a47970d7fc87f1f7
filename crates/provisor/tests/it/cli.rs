use std::process::{Command, Output};

use provisor_testkit::{TestApp, both};
use serde_json::Value;

/// Runs `provisor ARGS` against the test app's database, as an operator's script would.
fn provisor(app: &TestApp, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_provisor"));
    cmd.args(args)
        .arg("--data-dir")
        .arg(app.data_path())
        .env_remove("PROVISOR_DATABASE_URL");
    if let Some(url) = &app.config.database_url {
        cmd.env("PROVISOR_DATABASE_URL", url.0.expose());
    }
    cmd.output().unwrap()
}

/// `provisor ARGS`'s standard output; fails the test if it fails.
#[track_caller]
pub(crate) fn provisor_ok(app: &TestApp, args: &[&str]) -> String {
    ok(provisor(app, args))
}

#[track_caller]
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[track_caller]
fn fails(out: Output, says: &str) {
    assert!(
        !out.status.success(),
        "should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(says), "stderr should say {says:?}: {err}");
}

both!(
    cli_builds_the_readme_setup_and_the_server_sees_it_at_once,
    cli_flow
);
async fn cli_flow(app: TestApp) {
    ok(provisor(&app, &["domain", "add", "cli.example"]));
    ok(provisor(
        &app,
        &[
            "category",
            "add",
            "--domain",
            "cli.example",
            "Sales",
            "--provisioning",
        ],
    ));
    ok(provisor(
        &app,
        &[
            "user",
            "add",
            "--domain",
            "cli.example",
            "alice",
            "--display-name",
            "Alice",
            "--email",
            "a@cli.example",
            "--password",
            "long enough pw",
        ],
    ));
    for (sip, pw) in [("100", "pw&100"), ("101", "pw101")] {
        ok(provisor(
            &app,
            &[
                "account",
                "add",
                "--domain",
                "cli.example",
                "--user",
                "alice",
                "--sip-user",
                sip,
                "--sip-password",
                pw,
                "--registrar",
                "sip.cli.example:5060",
                "--transport",
                "tls",
            ],
        ));
    }
    ok(provisor(
        &app,
        &[
            "device",
            "add",
            "--domain",
            "cli.example",
            "--mac",
            "00:15:65:12:34:56",
            "--model",
            "T54W",
            "--category",
            "Sales",
            "--user",
            "alice",
            "--line",
            "101",
            "--line",
            "100",
        ],
    ));

    let shown: Value = serde_json::from_str(&ok(provisor(
        &app,
        &["device", "show", "--mac", "001565123456", "--json"],
    )))
    .unwrap();
    let lines: Vec<&str> = shown["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["sip_user"].as_str().unwrap())
        .collect();
    assert_eq!(lines, ["101", "100"]);
    let text = ok(provisor(
        &app,
        &["device", "list", "--domain", "cli.example"],
    ));
    assert!(
        text.contains("001565123456") && text.contains("1:101, 2:100"),
        "{text}"
    );
    let listed: Value = serde_json::from_str(&ok(provisor(
        &app,
        &["device", "list", "--domain", "cli.example", "--json"],
    )))
    .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // The running server serves what the CLI wrote, at once.
    let dev = app
        .get("/api/v1/domains/cli.example/devices/001565123456")
        .await
        .expect(200);
    assert_eq!(dev["lines"][0]["sip_user"], "101");
    let user = app
        .get("/api/v1/domains/cli.example/users/alice")
        .await
        .expect(200);
    assert_eq!(user["has_password"], true);
    // A CLI token works against the server.
    let token = ok(provisor(
        &app,
        &[
            "token",
            "create",
            "--role",
            "domain-admin",
            "--domain",
            "cli.example",
        ],
    ));
    let answer = app
        .call(
            reqwest::Method::GET,
            "/api/v1/domains/cli.example/devices",
            Some(token.trim()),
            None,
        )
        .await;
    assert_eq!(answer.expect(200)["items"].as_array().unwrap().len(), 1);
    // The audit log names the CLI as the actor.
    let log = app
        .get("/api/v1/audit?domain=cli.example")
        .await
        .expect(200);
    assert!(
        log["items"][0]["actor"]
            .as_str()
            .unwrap()
            .starts_with("cli:"),
        "{log}"
    );
    let d = app.store.domain("cli.example").await.unwrap();
    let account = app
        .store
        .list_accounts(d.id, Some("alice"), Default::default())
        .await
        .unwrap()
        .items[0]
        .id;
    assert_eq!(
        app.store
            .account_password(d.id, account)
            .await
            .unwrap()
            .expose(),
        "pw&100"
    );
}

both!(cli_refuses_bad_input_with_a_clear_message, cli_errors);
async fn cli_errors(app: TestApp) {
    ok(provisor(&app, &["domain", "add", "err.example"]));
    fails(
        provisor(&app, &["domain", "add", "err.example"]),
        "already exists",
    );
    fails(provisor(&app, &["domain", "add", "bad name"]), "domain");
    fails(
        provisor(
            &app,
            &[
                "device",
                "add",
                "--domain",
                "err.example",
                "--mac",
                "00:15:65",
            ],
        ),
        "is not a MAC address",
    );
    fails(
        provisor(
            &app,
            &[
                "device",
                "add",
                "--domain",
                "nope.example",
                "--mac",
                "001565000001",
            ],
        ),
        "there is no domain 'nope.example'",
    );
    fails(
        provisor(
            &app,
            &[
                "device",
                "add",
                "--domain",
                "err.example",
                "--mac",
                "001565000001",
                "--line",
                "404",
            ],
        ),
        "there is no SIP account '404'",
    );
    fails(
        provisor(
            &app,
            &[
                "user",
                "add",
                "--domain",
                "err.example",
                "bob",
                "--password",
                "short",
            ],
        ),
        "at least 8",
    );
    fails(
        provisor(
            &app,
            &[
                "account",
                "add",
                "--domain",
                "err.example",
                "--user",
                "ghost",
                "--sip-user",
                "1",
                "--sip-password",
                "x",
            ],
        ),
        "user not found",
    );
    fails(
        provisor(
            &app,
            &[
                "account",
                "add",
                "--domain",
                "err.example",
                "--user",
                "ghost",
                "--sip-user",
                "1",
                "--sip-password",
                "x",
                "--transport",
                "sctp",
            ],
        ),
        "sctp",
    );
    fails(
        provisor(&app, &["token", "create", "--role", "domain-admin"]),
        "needs --domain",
    );
    fails(
        provisor(&app, &["device", "show", "--mac", "001565999999"]),
        "no device with MAC 001565999999",
    );
    fails(
        provisor(&app, &["--database-url", "mysql://x/y", "domain", "list"]),
        "unsupported database URL scheme",
    );
    fails(
        provisor(&app, &["domain", "frobnicate"]),
        "unrecognized subcommand",
    );
}

both!(cli_import_and_export, cli_bulk);
async fn cli_bulk(app: TestApp) {
    ok(provisor(&app, &["domain", "add", "bulk.example"]));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "username,sip_user,sip_password,mac\nalice,100,pw,001565000001\nbob,101,,zz\n",
    )
    .unwrap();
    fails(
        provisor(
            &app,
            &["import", "--domain", "bulk.example", bad.to_str().unwrap()],
        ),
        "bad.csv:3: mac:",
    );
    assert!(
        app.get("/api/v1/domains/bulk.example/users/alice")
            .await
            .status
            == 404,
        "nothing imported"
    );

    let good = dir.path().join("good.csv");
    std::fs::write(&good, "username,sip_user,sip_password,mac,line\nalice,100,pw,001565000001,1\nalice,101,pw2,001565000001,2\n").unwrap();
    let out = ok(provisor(
        &app,
        &[
            "import",
            "--domain",
            "bulk.example",
            good.to_str().unwrap(),
            "--json",
        ],
    ));
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["accounts_created"], 2);
    let exported = dir.path().join("out.csv");
    ok(provisor(
        &app,
        &[
            "export",
            "--domain",
            "bulk.example",
            exported.to_str().unwrap(),
        ],
    ));
    let api = app.get("/api/v1/domains/bulk.example/export").await.text;
    assert_eq!(std::fs::read_to_string(&exported).unwrap(), api);
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&exported).unwrap().permissions()
        ) & 0o777,
        0o600,
        "exports are readable by their owner only"
    );
    let with_pw = ok(provisor(
        &app,
        &["export", "--domain", "bulk.example", "--passwords"],
    ));
    assert!(with_pw.contains(",pw2,") && !api.contains(",pw2,"));
}

#[test]
fn default_config_prints_every_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_provisor"))
        .arg("default-config")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for key in [
        "listen = \"127.0.0.1:8080\"",
        "data_dir = \"provisor-data\"",
        "database_url",
        "encryption_key",
        "log_format",
    ] {
        assert!(text.contains(key), "{key}");
    }
}
