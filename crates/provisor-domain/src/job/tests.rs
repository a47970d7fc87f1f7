use super::*;
use serde_json::json;

fn mac(s: &str) -> Mac {
    Mac::parse(s).unwrap()
}

fn new(v: serde_json::Value) -> Result<JobSpec, Invalid> {
    serde_json::from_value::<NewJob>(v).unwrap().validate()
}

fn software(id: i64, version: &str) -> JobRule {
    JobRule {
        id,
        state: JobState::Active,
        category_id: Some(1),
        models: Vec::new(),
        cutoff: i64::MAX,
        devices: Vec::new(),
        payload: Payload::Software {
            firmware: None,
            sha256: None,
            url: Some(format!("http://fw/{version}")),
            version: version.into(),
        },
        max_offers: 3,
        progress: None,
    }
}

fn config(id: i64, kind: ConfigType, settings: serde_json::Value) -> JobRule {
    JobRule {
        payload: Payload::Config {
            config_type: kind,
            settings: settings.as_object().unwrap().clone(),
        },
        ..software(id, "x")
    }
}

#[test]
fn jobs_validate_by_kind() {
    let s = new(json!({"kind": "software", "category": "Desk", "url": "https://fw.example/t54.rom", "version": "96.86.0.110"})).unwrap();
    assert_eq!(s.percent, 100);
    assert_eq!(s.max_offers, DEFAULT_MAX_OFFERS);
    let err = |v| new(v).unwrap_err().field;
    assert_eq!(
        err(json!({"kind": "software", "url": "https://x/y"})),
        "version"
    );
    assert_eq!(err(json!({"kind": "software", "version": "1"})), "firmware");
    assert_eq!(
        err(json!({"kind": "software", "version": "1", "url": "https://x", "firmware": "a.rom"})),
        "firmware"
    );
    assert_eq!(
        err(json!({"kind": "software", "version": "1", "url": "ftp://x"})),
        "url"
    );
    assert_eq!(
        err(json!({"kind": "software", "version": "1", "url": "https://x", "percent": 0})),
        "percent"
    );
    assert_eq!(
        err(
            json!({"kind": "software", "version": "1", "url": "https://x", "percent": 5, "devices": ["001565000001"]})
        ),
        "percent"
    );
    let c = new(
        json!({"kind": "config", "config_type": "ntp", "params": {"server": "ntp.example.com"}}),
    )
    .unwrap();
    assert_eq!(
        c.payload,
        Payload::Config {
            config_type: ConfigType::Ntp,
            settings: json!({"ntp_server": "ntp.example.com"})
                .as_object()
                .unwrap()
                .clone()
        }
    );
    assert_eq!(
        err(json!({"kind": "config", "config_type": "ntp", "params": {}})),
        "params.server"
    );
    assert_eq!(
        err(json!({"kind": "config", "config_type": "ntp", "params": {"server": "a b"}})),
        "params.server"
    );
    assert_eq!(
        err(json!({"kind": "config", "params": {"x": 1}})),
        "config_type"
    );
    assert_eq!(
        err(json!({"kind": "config", "config_type": "codecs", "params": {"codecs": []}})),
        "params.codecs"
    );
    let codecs = new(
        json!({"kind": "config", "config_type": "codecs", "params": {"codecs": ["pcma", "g722"]}}),
    )
    .unwrap();
    assert!(
        matches!(codecs.payload, Payload::Config { settings, .. } if settings["codecs"] == json!(["PCMA", "G722"]))
    );
    assert_eq!(
        err(json!({"kind": "config", "config_type": "custom", "params": {}})),
        "params"
    );
    assert_eq!(
        err(
            json!({"kind": "config", "config_type": "language", "version": "1", "params": {"language": "de"}})
        ),
        "firmware"
    );
}

#[test]
fn stages_take_the_share_exactly_and_grow() {
    let macs: Vec<Mac> = (0..4000u32)
        .map(|i| mac(&format!("0015650{i:05x}")))
        .collect();
    let count = |p| {
        let c = cutoff(7, p, &macs);
        macs.iter().filter(|m| position(7, **m) < c).count()
    };
    assert_eq!(count(10), 400);
    assert_eq!(count(25), 1000);
    assert_eq!(count(100), macs.len());
    let (ten, fifty) = (cutoff(7, 10, &macs), cutoff(7, 50, &macs));
    assert!(ten <= fifty, "raising the share keeps everyone in");
    // 1 % of 30 devices rounds to none; of 50 to one.
    assert_eq!(
        macs[..30]
            .iter()
            .filter(|m| position(7, **m) < cutoff(7, 1, &macs[..30]))
            .count(),
        0
    );
    assert_eq!(
        macs[..50]
            .iter()
            .filter(|m| position(7, **m) < cutoff(7, 1, &macs[..50]))
            .count(),
        1
    );
    // Without devices yet, the same share of positions.
    assert_eq!(cutoff(7, 50, &[]), (i64::MAX / 100) * 50);
    // Once offered, a device stays in when the share shrinks.
    let mut r = software(7, "1");
    r.cutoff = 0;
    assert!(!r.targets(macs[0], "T54W", Some(1)));
    r.progress = Some((Progress::Offered, 1));
    assert!(r.targets(macs[0], "T54W", Some(1)));
}

#[test]
fn the_newest_matching_job_wins_and_cancel_falls_back() {
    let m = mac("001565000001");
    let mut rules = vec![software(1, "1.0"), software(2, "2.0")];
    assert_eq!(select(&rules, m, "T54W", Some(1), false).software, Some(2));
    assert_eq!(
        select(&rules, m, "T54W", Some(2), false).software,
        None,
        "other category"
    );
    assert_eq!(
        select(&rules, m, "T54W", Some(1), true).software,
        None,
        "pinned"
    );
    rules[1].state = JobState::Cancelled;
    assert_eq!(select(&rules, m, "T54W", Some(1), false).software, Some(1));
    // Paused: kept where offered, not offered anew.
    rules[1].state = JobState::Paused;
    assert_eq!(select(&rules, m, "T54W", Some(1), false).software, Some(1));
    rules[1].progress = Some((Progress::Offered, 1));
    assert_eq!(select(&rules, m, "T54W", Some(1), false).software, Some(2));
    // Models and lists.
    let mut only = software(3, "3.0");
    only.models = vec!["t46u".into()];
    rules.push(only);
    assert_eq!(select(&rules, m, "T54W", Some(1), false).software, Some(2));
    assert_eq!(select(&rules, m, "T46U", Some(1), false).software, Some(3));
    let mut listed = software(4, "4.0");
    listed.devices = vec![mac("001565000002")];
    rules.push(listed);
    assert_eq!(select(&rules, m, "T54W", Some(1), false).software, Some(2));
    assert_eq!(
        select(&rules, mac("001565000002"), "T54W", Some(1), false).software,
        Some(4)
    );
}

#[test]
fn config_jobs_apply_per_type() {
    let m = mac("001565000001");
    let rules = vec![
        config(1, ConfigType::Ntp, json!({"ntp_server": "old"})),
        config(2, ConfigType::Language, json!({"language": "de"})),
        config(3, ConfigType::Ntp, json!({"ntp_server": "new"})),
        config(4, ConfigType::Custom, json!({"language": "fr", "x": 1})),
    ];
    let s = select(&rules, m, "T54W", Some(1), false);
    assert_eq!(s.config, vec![2, 3, 4]);
    let layer = config_layer(&rules, &s.config);
    assert_eq!(
        serde_json::Value::Object(layer),
        json!({"ntp_server": "new", "language": "fr", "x": 1})
    );
}

#[test]
fn versions_compare_loosely() {
    assert!(runs_version(" 96.86.0.110 ", "96.86.0.110"));
    assert!(!runs_version("96.86.0.100", "96.86.0.110"));
    assert!(!runs_version("", ""));
}
