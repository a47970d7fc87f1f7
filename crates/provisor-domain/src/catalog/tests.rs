//! Each vendor's real boot sequence, with real User-Agent strings, against the built-in
//! catalog in `vendors/`.

use super::*;

macro_rules! builtin {
    ($($vendor:literal),+ $(,)?) => {
        [$(($vendor, include_str!(concat!("../../../../vendors/", $vendor, "/vendor.toml")))),+]
    };
}

fn catalog() -> Catalog {
    Catalog::parse(builtin!(
        "yealink",
        "poly",
        "snom",
        "grandstream",
        "cisco-mpp",
        "cisco-spa",
        "fanvil",
        "gigaset",
        "htek",
        "panasonic"
    ))
    .expect("the built-in catalog parses")
}

fn mac(s: &str) -> Mac {
    Mac::parse(s).unwrap()
}

/// Detects and returns (vendor, kind, mac, model, firmware).
fn found(
    c: &Catalog,
    file: &str,
    ua: Option<&str>,
) -> (
    String,
    FileKind,
    Option<Mac>,
    Option<String>,
    Option<String>,
) {
    match c.detect(file, ua) {
        Detected::Found(f) => (f.vendor.id.clone(), f.rule.kind, f.mac, f.model, f.firmware),
        other => panic!("{file} with {ua:?}: {other:?}"),
    }
}

#[test]
fn yealink_boot_sequence() {
    let c = catalog();
    let ua = Some("Yealink SIP-T54W 96.85.0.5 80:5e:c0:11:22:33");
    let m = Some(mac("805ec0112233"));
    let fw = Some("96.85.0.5".to_owned());
    assert_eq!(
        found(&c, "805ec0112233.boot", ua),
        (
            "yealink".into(),
            FileKind::Device,
            m,
            Some("T54W".into()),
            fw.clone()
        )
    );
    assert_eq!(
        found(&c, "y000000000000.boot", ua),
        (
            "yealink".into(),
            FileKind::Common,
            m,
            Some("T54W".into()),
            fw.clone()
        )
    );
    assert_eq!(
        found(&c, "y000000000096.cfg", ua).3,
        Some("T54W".into()),
        "the model code names the model"
    );
    assert_eq!(found(&c, "y000000000066.cfg", None).3, Some("T46S".into()));
    assert_eq!(
        found(&c, "805ec0112233.cfg", ua),
        (
            "yealink".into(),
            FileKind::Device,
            m,
            Some("T54W".into()),
            fw
        )
    );
    // T5x firmware may send the MAC without colons.
    let (_, _, m, model, _) = found(
        &c,
        "001565f429a4.cfg",
        Some("Yealink SIP-T56A 58.80.0.25 001565f429a4"),
    );
    assert_eq!(
        (m, model.as_deref()),
        (Some(mac("001565f429a4")), Some("T56A"))
    );
    // DECT base.
    assert_eq!(
        found(
            &c,
            "805ec0d9c744.cfg",
            Some("Yealink W90DM 130.87.0.10 80:5e:c0:d9:c7:44")
        )
        .3,
        Some("W90DM".into())
    );
}

#[test]
fn poly_boot_sequence_and_log_uploads() {
    let c = catalog();
    let ua = Some("FileTransport PolycomVVX-VVX_400-UA/4.1.4.7430 Type/Application");
    assert_eq!(found(&c, "000000000000.cfg", ua).1, FileKind::Common);
    assert_eq!(
        found(&c, "000000000000.cfg", None).0,
        "poly",
        "the master file is Poly's even without a User-Agent"
    );
    assert_eq!(
        found(&c, "0004f2aabbcc.cfg", ua),
        (
            "poly".into(),
            FileKind::Device,
            Some(mac("0004f2aabbcc")),
            Some("VVX_400".into()),
            Some("4.1.4.7430".into())
        )
    );
    assert_eq!(found(&c, "0004f2aabbcc-phone.cfg", ua).1, FileKind::Device);
    assert_eq!(found(&c, "0004f2aabbcc-boot.log", ua).1, FileKind::Upload);
    assert_eq!(found(&c, "0004f2aabbcc-app.log", ua).1, FileKind::Upload);
    let with_sn =
        Some("FileTransport PolycomVVX-VVX_450-UA/6.4.3.5156 (SN:0004f2abcdef) Type/Application");
    assert_eq!(
        found(&c, "000000000000.cfg", with_sn).2,
        Some(mac("0004f2abcdef"))
    );
}

#[test]
fn snom_and_gigaset_upper_case_files() {
    let c = catalog();
    let ua = Some(
        "Mozilla/4.0 (compatible; snomD785-SIP 10.1.169.16 010.1.169.16 00041396D9B4 SXM:0 UXM:0 UXMC:0)",
    );
    let m = Some(mac("00041396d9b4"));
    assert_eq!(
        found(&c, "snomD785.htm", ua),
        (
            "snom".into(),
            FileKind::Common,
            m,
            Some("D785".into()),
            Some("10.1.169.16".into())
        )
    );
    assert_eq!(
        found(&c, "snomD785-00041396D9B4.htm", ua).1,
        FileKind::Device
    );
    assert_eq!(found(&c, "00041396D9B4.xml", ua).0, "snom");
    assert_eq!(
        found(
            &c,
            "snom710.htm",
            Some("Mozilla/4.0 (compatible; snom710-SIP 8.7.5.35 1.1.5-IFX-05.01.12 000413741767)")
        )
        .3,
        Some("710".into())
    );
    // Without a User-Agent the MAC prefix tells Snom from Gigaset.
    assert_eq!(found(&c, "00041396D9B4.xml", None).0, "snom");
    assert_eq!(found(&c, "7C2F80CA21E4.xml", None).0, "gigaset");
    let (v, k, m, model, fw) = found(
        &c,
        "7C2F80CA21E4.xml",
        Some("Gigaset N720 DM PRO/70.089.00.000.000;7C2F80CA21E4"),
    );
    assert_eq!(
        (v.as_str(), k, m, model.as_deref(), fw.as_deref()),
        (
            "gigaset",
            FileKind::Device,
            Some(mac("7c2f80ca21e4")),
            Some("N720 DM PRO"),
            Some("70.089.00.000.000")
        )
    );
    assert_eq!(
        found(
            &c,
            "7C2F804DF9A9.xml",
            Some("N510 IP PRO/42.245.00.000.000;7C2F804DF9A9")
        )
        .3,
        Some("N510 IP PRO".into())
    );
}

#[test]
fn grandstream_boot_sequence() {
    let c = catalog();
    let ua = Some("Grandstream Model HW GXP2170 SW 1.0.11.85 DevId 000b82865e6a");
    assert_eq!(
        found(&c, "cfg000b82865e6a", ua).1,
        FileKind::Skip,
        "the legacy binary file is passed over"
    );
    assert_eq!(
        found(&c, "cfg000b82865e6a.xml", ua),
        (
            "grandstream".into(),
            FileKind::Device,
            Some(mac("000b82865e6a")),
            Some("GXP2170".into()),
            Some("1.0.11.85".into())
        )
    );
    assert_eq!(
        found(&c, "cfggxp2170.xml", ua).3,
        Some("GXP2170".into()),
        "models in the catalog's spelling"
    );
    assert_eq!(found(&c, "cfg.xml", ua).1, FileKind::Common);
    assert_eq!(
        found(
            &c,
            "cfgc074ad273a10.xml",
            Some("Grandstream Model HW HT801 V1.1A SW 1.0.17.5 DevId c074ad273a10")
        )
        .3,
        Some("HT801".into())
    );
    // Htek asks for the same name; its User-Agent or MAC prefix decides.
    assert_eq!(
        found(
            &c,
            "cfg001fc11c22a9.xml",
            Some("Htek UC903 2.0.4.2 00:1f:c1:1c:22:a9")
        )
        .0,
        "htek"
    );
    assert_eq!(found(&c, "cfg001fc11c22a9.xml", None).0, "htek");
    assert_eq!(found(&c, "cfg000b82865e6a.xml", None).0, "grandstream");
}

#[test]
fn cisco_fanvil_panasonic() {
    let c = catalog();
    let mpp = Some("Cisco-CP-8851-3PCC/11.3.7 (00562b043615)");
    assert_eq!(
        found(&c, "8851-3PCC.xml", mpp),
        (
            "cisco-mpp".into(),
            FileKind::Common,
            Some(mac("00562b043615")),
            Some("8851".into()),
            Some("11.3.7".into())
        )
    );
    assert_eq!(found(&c, "00562b043615.xml", mpp).1, FileKind::Device);
    assert_eq!(
        found(
            &c,
            "00562b043615.xml",
            Some("Cisco-CP-7832-3PCC/11.0.1 (00562b043615)")
        )
        .3,
        Some("7832".into())
    );
    let spa = Some("Cisco/SPA508G-7.4.4 (0002FDFF2103)(CBT141400UK)");
    assert_eq!(found(&c, "spa508G.cfg", spa).3, Some("SPA508G".into()));
    assert_eq!(
        found(&c, "spa0002fdff2103.xml", spa),
        (
            "cisco-spa".into(),
            FileKind::Device,
            Some(mac("0002fdff2103")),
            Some("SPA508G".into()),
            Some("7.4.4".into())
        )
    );
    assert_eq!(
        found(
            &c,
            "spa88019fa42805.xml",
            Some("Linksys/SPA-942-6.1.5(a) (88019FA42805)")
        )
        .3,
        Some("SPA-942".into())
    );
    let fanvil = Some("Fanvil X5U-V2 2.12.16.17 0c383e557eb1");
    assert_eq!(
        found(&c, "0c383e557eb1.cfg", fanvil),
        (
            "fanvil".into(),
            FileKind::Device,
            Some(mac("0c383e557eb1")),
            Some("X5U-V2".into()),
            Some("2.12.16.17".into())
        )
    );
    assert_eq!(
        found(&c, "0c383e10a440.cfg", None).0,
        "fanvil",
        "by MAC prefix"
    );
    let pana = Some("Panasonic_KX-UT113/01.133 (0080f0c8c381)");
    assert_eq!(found(&c, "KX-UT113.cfg", pana).1, FileKind::Common);
    assert_eq!(
        found(&c, "Config0080F0C8C381.cfg", pana),
        (
            "panasonic".into(),
            FileKind::Device,
            Some(mac("0080f0c8c381")),
            Some("KX-UT113".into()),
            Some("01.133".into())
        )
    );
}

#[test]
fn ambiguity_mismatch_and_unknown_names() {
    let c = catalog();
    // <mac>.cfg is Yealink's, Poly's and Fanvil's; nothing here says whose.
    match c.detect("a0b1c2d3e4f5.cfg", None) {
        Detected::Ambiguous { mac: m, vendors } => {
            assert_eq!(m, Some(mac("a0b1c2d3e4f5")));
            let ids: Vec<&str> = vendors.iter().map(|v| v.id.as_str()).collect();
            assert_eq!(ids, ["yealink", "poly", "fanvil"]);
        }
        other => panic!("{other:?}"),
    }
    // The device record can say whose it is.
    match c.detect_for("fanvil", "a0b1c2d3e4f5.cfg", None) {
        Detected::Found(f) => assert_eq!(
            (f.vendor.id.as_str(), f.rule.kind),
            ("fanvil", FileKind::Device)
        ),
        other => panic!("{other:?}"),
    }
    // The file name and the User-Agent must name the same device.
    assert_eq!(
        c.detect(
            "001565000001.cfg",
            Some("Yealink SIP-T46G 28.72.0.1 00:15:65:4a:a9:37")
        ),
        Detected::MacMismatch {
            file: mac("001565000001"),
            user_agent: mac("0015654aa937")
        }
    );
    for name in [
        "",
        "index.html",
        "../001565000001.cfg",
        "001565000001.cfg/x",
        "0015650000011.cfg",
        "y0000000000zz.cfg",
    ] {
        assert_eq!(c.detect(name, None), Detected::Unknown, "{name:?}");
    }
    // A User-Agent of another vendor does not lend its MAC or model.
    let (v, _, m, model, fw) = found(
        &c,
        "Config0080F0C8C381.cfg",
        Some("Yealink SIP-T46G 28.72.0.1 00:15:65:4a:a9:37"),
    );
    assert_eq!(
        (v.as_str(), m, model, fw),
        ("panasonic", Some(mac("0080f0c8c381")), None, None)
    );
}

#[test]
fn the_catalog_is_checked_when_loaded_and_later_sources_override() {
    let base = r#"
        id = "acme"
        name = "Acme"
        mac_case = "lower"
        [[files]]
        pattern = '^(?P<mac>[0-9a-f]{12})\.acme$'
        kind = "device"
        template = "mac.acme"
    "#;
    let c = Catalog::parse([("a", base)]).unwrap();
    assert_eq!(found(&c, "001565000001.acme", None).0, "acme");
    let replaced = base
        .replace(".acme$", ".acme2$")
        .replace("name = \"Acme\"", "name = \"Acme 2\"");
    let c = Catalog::parse([("a", base), ("override", replaced.as_str())]).unwrap();
    assert_eq!(c.vendors().len(), 1);
    assert_eq!(c.vendor("acme").unwrap().name, "Acme 2");
    assert_eq!(c.detect("001565000001.acme", None), Detected::Unknown);

    let e = Catalog::parse([(
        "bad.toml",
        base.replace("[0-9a-f]{12})", "[0-9a-f]{12}").as_str(),
    )])
    .unwrap_err();
    assert!(e.to_string().starts_with("bad.toml: file pattern"), "{e}");
    let e =
        Catalog::parse([("bad.toml", base.replace("?P<mac>", "?P<serial>").as_str())]).unwrap_err();
    assert!(e.reason.contains("group 'serial'"), "{e}");
    let e = Catalog::parse([(
        "bad.toml",
        base.replace("template = \"mac.acme\"", "").as_str(),
    )])
    .unwrap_err();
    assert!(e.reason.contains("needs a template"), "{e}");
    let e = Catalog::parse([(
        "bad.toml",
        base.replace("mac_case = \"lower\"", "mac_case = \"mixed\"")
            .as_str(),
    )])
    .unwrap_err();
    assert_eq!(e.origin, "bad.toml");
    let e =
        Catalog::parse([("bad.toml", format!("ouis = [\"0015\"]\n{base}").as_str())]).unwrap_err();
    assert!(e.reason.contains("OUI '0015'"), "{e}");
}

#[test]
fn mac_case_formats_file_names() {
    let m = mac("00:04:13:96:d9:b4");
    assert_eq!(MacCase::Upper.format(m), "00041396D9B4");
    assert_eq!(MacCase::Lower.format(m), "00041396d9b4");
}
