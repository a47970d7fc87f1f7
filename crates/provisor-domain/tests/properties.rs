//! Properties of the parsers that read bytes from outside (issue 11): round trips where a
//! value is written and read again, and "never panics" on arbitrary input.

use proptest::prelude::*;
use provisor_domain::Mac;
use provisor_domain::csv::{self, Row};
use provisor_domain::digest::Credentials;
use provisor_domain::innovaphone::Frame;
use provisor_domain::settings;
use serde_json::{Value, json};

/// The spellings phones and admins write a MAC in.
fn spellings(b: [u8; 6]) -> Vec<String> {
    let hex: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    let plain = hex.concat();
    vec![
        plain.clone(),
        plain.to_uppercase(),
        hex.join(":"),
        hex.join("-").to_uppercase(),
        format!("{}.{}.{}", &plain[0..4], &plain[4..8], &plain[8..12]),
    ]
}

/// Small JSON values for settings layers: scalars, and maps nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        "[a-z0-9 ]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop::collection::btree_map("[a-c]{1,2}", inner, 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    })
}

fn layer() -> impl Strategy<Value = settings::Settings> {
    prop::collection::btree_map("[a-d]{1,2}", json_value(), 0..5)
        .prop_map(|m| settings::layer(Value::Object(m.into_iter().collect())).unwrap_or_default())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_mac_reads_back_in_every_spelling(b in any::<[u8; 6]>()) {
        for s in spellings(b) {
            let mac = Mac::parse(&s).unwrap();
            prop_assert_eq!(mac.octets(), b);
            prop_assert_eq!(Mac::parse(&mac.to_string()).unwrap(), mac);
            prop_assert_eq!(mac.to_upper(), mac.to_string().to_uppercase());
        }
    }

    #[test]
    fn mac_parsing_never_panics(s in "\\PC{0,40}") {
        let _ = Mac::parse(&s);
    }

    #[test]
    fn a_cell_survives_export_and_import(
        name in "[a-z][a-z0-9._-]{0,20}",
        display in "\\PC{0,40}",
    ) {
        let mut row = Row::default();
        row.set("username", name.clone());
        row.set("display_name", display.clone());
        let text = csv::write(&[row]);
        // A display name the import refuses (control characters, …) is refused, not
        // changed; one it takes comes back as written, commas, quotes and formulas too.
        if let Ok(plan) = csv::parse(text.as_bytes()) {
            prop_assert_eq!(plan.users.len(), 1);
            prop_assert_eq!(&plan.users[0].username, &name);
            prop_assert_eq!(plan.users[0].display_name.trim(), display.trim());
        }
    }

    #[test]
    fn csv_reading_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = csv::read(&bytes);
    }

    #[test]
    fn csv_rows_of_any_text_never_panic(text in "(\\PC{0,12}[,\"\\n]){0,20}") {
        let input = format!("username,display_name,sip_user,mac,line\n{text}");
        let _ = csv::read(input.as_bytes());
    }

    #[test]
    fn merging_layers_is_associative_and_empty_is_neutral(a in layer(), b in layer(), c in layer()) {
        let all = settings::merge([&a, &b, &c]);
        let ab = settings::merge([&a, &b]);
        prop_assert_eq!(&settings::merge([&ab, &c]), &all);
        let empty = settings::Settings::new();
        prop_assert_eq!(settings::merge([&a, &empty]), settings::merge([&a]));
        prop_assert_eq!(settings::merge([&empty, &a]), settings::merge([&a]));
        // The last layer wins for every key it sets to a scalar.
        for (k, v) in &c {
            if !v.is_object() {
                prop_assert_eq!(all.get(k), Some(v));
            }
        }
    }

    #[test]
    fn settings_layers_of_any_json_never_panic(v in json_value()) {
        let _ = settings::layer(json!({"x": v.clone()}));
        let _ = settings::layer(v);
    }

    #[test]
    fn digest_headers_never_panic(h in "\\PC{0,200}") {
        let _ = Credentials::parse(&h);
        let _ = Credentials::parse(&format!("Digest {h}"));
    }

    #[test]
    fn sysclient_frames_never_panic_and_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(frame) = Frame::parse(&bytes) {
            let again = frame.to_bytes();
            prop_assert_eq!(Frame::parse(&again).unwrap().to_bytes(), again);
        }
    }
}
