use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use provisor::config::Secret;
use provisor::startup::{bootstrap_token, open_store};
use provisor_domain::secret::{Cipher, SecretString};
use provisor_testkit::{Backend, fresh_config};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

async fn first_start_then_keys(backend: Backend) {
    let Some((config, _dir)) = fresh_config(backend).await else {
        return;
    };
    let store = open_store(&config).await.unwrap();
    let token = bootstrap_token(store.as_ref(), &config.data_dir)
        .await
        .unwrap()
        .expect("a first token");
    let token_file = config.data_dir.join("operator-token");
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap().trim(),
        token.expose()
    );
    assert_eq!(mode(&token_file), 0o600);
    assert_eq!(mode(&config.data_dir.join("secret.key")), 0o600);
    assert_eq!(mode(&config.data_dir), 0o700);
    assert!(
        bootstrap_token(store.as_ref(), &config.data_dir)
            .await
            .unwrap()
            .is_none(),
        "only the first start issues a token"
    );
    store.close().await;

    // Reopening with the same key works; a wrong or missing key stops the start.
    open_store(&config).await.unwrap().close().await;
    let mut wrong = config.clone();
    wrong.encryption_key = Some(Secret(SecretString::new(Cipher::generate_key_text())));
    let e = open_store(&wrong)
        .await
        .err()
        .expect("a wrong key is refused")
        .to_string();
    assert!(e.contains("does not match"), "{e}");
    let key = std::fs::read_to_string(config.data_dir.join("secret.key")).unwrap();
    std::fs::remove_file(config.data_dir.join("secret.key")).unwrap();
    let e = format!(
        "{:#}",
        open_store(&config)
            .await
            .err()
            .expect("a missing key is refused")
    );
    assert!(e.contains("restore"), "{e}");
    assert!(
        !config.data_dir.join("secret.key").exists(),
        "no new key is written over a database with secrets"
    );
    // The key may also come from configuration.
    let mut given = config.clone();
    given.encryption_key = Some(Secret(SecretString::new(key.trim())));
    open_store(&given).await.unwrap().close().await;
}

#[tokio::test]
async fn first_start_and_encryption_key_sqlite() {
    first_start_then_keys(Backend::Sqlite).await;
}

#[tokio::test]
async fn first_start_and_encryption_key_postgres() {
    first_start_then_keys(Backend::Postgres).await;
}

#[tokio::test]
async fn an_unknown_database_scheme_is_an_error() {
    let (mut config, _dir) = fresh_config(Backend::Sqlite).await.unwrap();
    config.database_url = Some(Secret(SecretString::new("mysql://root@localhost/x")));
    let e = open_store(&config).await.err().unwrap().to_string();
    assert!(e.contains("unsupported database URL scheme 'mysql'"), "{e}");
    assert!(
        !config.data_dir.join("provisor.db").exists(),
        "no SQLite file appears instead"
    );
}

#[tokio::test]
async fn a_url_without_a_known_scheme_never_echoes_its_password() {
    let (mut config, _dir) = fresh_config(Backend::Sqlite).await.unwrap();
    config.database_url = Some(Secret(SecretString::new("postgres//u:hunter2@h/x")));
    let e = format!("{:#}", open_store(&config).await.err().unwrap());
    assert!(!e.contains("hunter2"), "{e}");
    assert!(e.contains("has no scheme"), "{e}");
}

/// A data directory reused for a new database (here: the database files deleted) still
/// gets a working first token; the old token file is replaced, not a reason to fail.
#[tokio::test]
async fn a_leftover_token_file_is_replaced_on_first_start() {
    let (config, _dir) = fresh_config(Backend::Sqlite).await.unwrap();
    let store = open_store(&config).await.unwrap();
    let first = bootstrap_token(store.as_ref(), &config.data_dir)
        .await
        .unwrap()
        .unwrap();
    store.close().await;
    for f in [
        "provisor.db",
        "provisor.db-wal",
        "provisor.db-shm",
        "secret.key",
    ] {
        let _ = std::fs::remove_file(config.data_dir.join(f));
    }
    let store = open_store(&config).await.unwrap();
    let second = bootstrap_token(store.as_ref(), &config.data_dir)
        .await
        .unwrap()
        .expect("a new first token");
    assert_ne!(first.expose(), second.expose());
    let file = config.data_dir.join("operator-token");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        second.expose()
    );
    assert_eq!(mode(&file), 0o600);
    let digest = provisor_domain::token::digest(second.expose());
    assert!(
        store.token_by_hash(&digest).await.unwrap().is_some(),
        "the saved token works"
    );
}

#[test]
fn migrations_are_in_lockstep() {
    let list = |m: &Migrator| {
        m.iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect::<Vec<_>>()
    };
    let sqlite = list(&provisor_store_sqlite::MIGRATOR);
    let postgres = list(&provisor_store_postgres::MIGRATOR);
    assert!(!sqlite.is_empty());
    assert_eq!(
        sqlite, postgres,
        "both backends must have the same migrations, version for version"
    );
}

use sqlx::migrate::Migrator;

/// `provisor serve` with no arguments: SQLite in ./provisor-data, 127.0.0.1:8080 (here a
/// free port), token printed once; SIGTERM stops it cleanly.
#[test]
fn serve_starts_with_nothing_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_provisor"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .current_dir(dir.path())
        .env_remove("PROVISOR_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = stdout.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .unwrap()
            .starts_with("Operator API token")
    );
    let token = lines.next().unwrap().unwrap();
    assert!(token.starts_with("pvt_"));
    let stderr = BufReader::new(child.stderr.take().unwrap());
    // Logs are JSON lines; the listening address is a field of one of them.
    let address = stderr
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(&l.unwrap()).expect("a JSON log line"))
        .find_map(|v| v["fields"]["address"].as_str().map(str::to_owned))
        .expect("the listening address is logged");
    assert!(dir.path().join("provisor-data/provisor.db").exists());
    let body = std::net::TcpStream::connect(&address).and_then(|mut s| {
        use std::io::{Read, Write};
        write!(
            s,
            "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    });
    assert!(body.unwrap().contains("\"ready\""));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "provisor did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}
