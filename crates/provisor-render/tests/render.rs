//! Built-in templates render real configuration; overrides and template errors behave.

use std::collections::BTreeMap;

use provisor_domain::catalog::FileKind;
use provisor_render::{Context, RenderError, Renderer, Vendors};

fn builtin() -> Renderer {
    Renderer::new(Vendors::builtin().expect("the built-in catalog loads"))
        .expect("the built-in templates compile")
}

#[test]
fn every_served_file_has_its_template() {
    let r = builtin();
    let mut missing = Vec::new();
    for vendor in r.catalog().vendors() {
        for f in &vendor.files {
            if matches!(f.kind, FileKind::Device | FileKind::Common)
                && !r.has_template(&vendor.id, &f.template)
            {
                missing.push(format!("{}/{}", vendor.id, f.template));
            }
        }
    }
    assert_eq!(missing, Vec::<String>::new());
}

/// `key = value` lines of a Yealink file (comments and include lines left out).
fn keys(body: &str) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in body.lines().skip(1) {
        if line.trim().is_empty() || line.starts_with('#') || line.starts_with("include:") {
            continue;
        }
        let (k, v) = line
            .split_once(" = ")
            .unwrap_or_else(|| panic!("not key = value: {line:?}"));
        map.entry(k.to_owned()).or_default().push(v.to_owned());
    }
    map
}

fn one<'a>(keys: &'a BTreeMap<String, Vec<String>>, key: &str) -> &'a str {
    match keys.get(key).map(Vec::as_slice) {
        Some([v]) => v,
        other => panic!("{key}: {other:?}"),
    }
}

#[test]
fn yealink_t54w_with_three_lines() {
    let r = builtin();
    let mut ctx = Context::sample("yealink", "T54W", 3);
    ctx.lines[1].transport = "tls".into();
    ctx.lines[1].proxy_host = "proxy.example.com".into();
    ctx.lines[2].password = "p#w = x%NULL%".into();
    ctx.settings.insert("ntp_server".into(), "10.0.0.1".into());
    ctx.settings.insert("language".into(), "de".into());
    ctx.provisioning.firmware_url = Some("https://fw.example.com/T54W-96.86.0.70.rom".into());
    let out = r.render("yealink", "mac.cfg", ctx).unwrap();
    assert!(out.warnings.is_empty());
    assert!(
        out.body.starts_with("#!version:1.0.0.1\n"),
        "Yealink files start with their version line"
    );
    let k = keys(&out.body);
    for n in 1..=3 {
        assert_eq!(one(&k, &format!("account.{n}.enable")), "1");
        assert_eq!(
            one(&k, &format!("account.{n}.user_name")),
            format!("{}", 100 + n)
        );
        assert_eq!(one(&k, &format!("linekey.{n}.line")), n.to_string());
    }
    for n in 4..=16 {
        assert_eq!(
            one(&k, &format!("account.{n}.enable")),
            "0",
            "accounts beyond ours are switched off"
        );
    }
    assert_eq!(one(&k, "account.1.password"), "secret-1");
    assert_eq!(
        one(&k, "account.3.password"),
        "p#w = x%NULL%",
        "values are written as they are"
    );
    assert_eq!(one(&k, "account.1.sip_server.1.port"), "5060");
    assert_eq!(one(&k, "account.2.sip_server.1.port"), "5061");
    assert_eq!(one(&k, "account.2.sip_server.1.transport_type"), "2");
    assert_eq!(
        one(&k, "account.2.outbound_proxy.1.address"),
        "proxy.example.com"
    );
    assert_eq!(one(&k, "account.1.outbound_proxy_enable"), "0");
    assert_eq!(one(&k, "local_time.ntp_server1"), "10.0.0.1");
    assert_eq!(one(&k, "lang.gui"), "German");
    assert_eq!(
        one(&k, "static.security.user_password"),
        "admin:Adm1n-Sample"
    );
    assert_eq!(
        one(&k, "static.auto_provision.server.url"),
        "https://provisor.example.com/p/TOKEN/"
    );
    assert_eq!(
        one(&k, "static.firmware.url"),
        "https://fw.example.com/T54W-96.86.0.70.rom"
    );
}

#[test]
fn a_value_cannot_add_a_key_of_its_own() {
    let r = builtin();
    let mut ctx = Context::sample("yealink", "T54W", 1);
    ctx.lines[0].display_name = "Alice\nstatic.security.user_password = admin:pwned\r\n".into();
    let body = r.render("yealink", "mac.cfg", ctx).unwrap().body;
    let k = keys(&body);
    assert_eq!(
        one(&k, "static.security.user_password"),
        "admin:Adm1n-Sample"
    );
    assert!(one(&k, "account.1.display_name").starts_with("Alice static.security"));
}

#[test]
fn lines_beyond_the_model_are_left_out_with_a_warning() {
    let r = builtin();
    let mut ctx = Context::sample("yealink", "T40P", 5);
    ctx.device.max_lines = 3;
    ctx.device.keys = 3;
    let out = r.render("yealink", "mac.cfg", ctx).unwrap();
    let k = keys(&out.body);
    assert!(k.contains_key("account.3.user_name") && !k.contains_key("account.4.user_name"));
    assert_eq!(
        out.warnings,
        ["model T40P takes 3 lines; left out: 104, 105"]
    );
}

#[test]
fn boot_files() {
    let r = builtin();
    let body = r
        .render("yealink", "mac.boot", Context::sample("yealink", "T54W", 1))
        .unwrap()
        .body;
    assert_eq!(
        body,
        "#!version:1.0.0.1\n## Provisor: boot file of 001565aabbcc\ninclude:config \"https://provisor.example.com/p/TOKEN/001565aabbcc.cfg\"\noverwrite_mode = 1\n"
    );
    assert!(
        r.render("yealink", "common.boot", Context::sample("yealink", "", 0))
            .unwrap()
            .body
            .starts_with("#!version:1.0.0.1\n")
    );
}

fn with_override(files: &[(&str, &str)]) -> Result<Renderer, RenderError> {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    Renderer::new(Vendors::load(Some(dir.path())).unwrap())
}

const TEST_VENDOR: &str = r#"
id = "acme"
name = "Acme"
mac_case = "lower"
[[files]]
pattern = '^(?P<mac>[0-9a-f]{12})\.xml$'
kind = "device"
template = "mac.xml"
"#;

#[test]
fn an_override_directory_replaces_and_adds() {
    let r = with_override(&[
        (
            "yealink/templates/mac.boot",
            "#!version:1.0.0.1\n## site boot for {{ device.mac }}\n",
        ),
        ("acme/vendor.toml", TEST_VENDOR),
        (
            "acme/templates/mac.xml",
            "<a p=\"{{ lines[0].password }}\">{{ lines[0].display_name }}</a>\n",
        ),
    ])
    .unwrap();
    assert_eq!(
        r.render("yealink", "mac.boot", Context::sample("yealink", "", 0))
            .unwrap()
            .body,
        "#!version:1.0.0.1\n## site boot for 001565aabbcc\n"
    );
    assert!(
        r.has_template("yealink", "mac.cfg"),
        "built-ins not overridden stay"
    );
    assert!(r.catalog().vendor("acme").is_some());
    // XML files escape every value.
    let mut ctx = Context::sample("acme", "", 1);
    ctx.lines[0].password = "<&\"'>".into();
    ctx.lines[0].display_name = "Tom & Jerry".into();
    let body = r.render("acme", "mac.xml", ctx).unwrap().body;
    assert_eq!(
        body,
        "<a p=\"&lt;&amp;&quot;&apos;&gt;\">Tom &amp; Jerry</a>\n"
    );
}

#[test]
fn template_errors_name_the_template_and_line() {
    let e = with_override(&[(
        "yealink/templates/mac.cfg",
        "#!version:1.0.0.1\n{% for x in lines %}\n",
    )])
    .err()
    .unwrap();
    match &e {
        RenderError::Template { name, line, .. } => {
            assert_eq!((name.as_str(), *line), ("yealink/mac.cfg", Some(2)), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let r = with_override(&[(
        "yealink/templates/mac.cfg",
        "#!version:1.0.0.1\n\n{{ device.nonsense }}\n",
    )])
    .unwrap();
    let e = r
        .render("yealink", "mac.cfg", Context::sample("yealink", "", 0))
        .unwrap_err();
    match &e {
        RenderError::Template { line, reason, .. } => {
            assert_eq!(*line, Some(3), "{e}");
            assert!(reason.contains("undefined"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let r = with_override(&[(
        "yealink/templates/mac.cfg",
        "{% for a in range(1000) %}{% for b in range(1000) %}x{% endfor %}{% endfor %}",
    )])
    .unwrap();
    let e = r
        .render("yealink", "mac.cfg", Context::sample("yealink", "", 0))
        .unwrap_err();
    assert!(
        e.to_string().contains("fuel"),
        "a runaway template stops: {e}"
    );
    assert!(matches!(
        builtin().render("yealink", "nope.cfg", Context::sample("yealink", "", 0)),
        Err(RenderError::Missing(_))
    ));
}

/// Values that must survive XML escaping and come back unchanged through a parser.
const HOSTILE: &str = "p<&>\"'w ]]> &amp;";

/// Renders `template` of `vendor` for a sample device with hostile values; returns the text.
fn render_hostile(vendor: &str, model: &str, template: &str, lines: u32) -> String {
    let mut ctx = Context::sample(vendor, model, lines);
    ctx.device.max_lines = 4;
    ctx.device.keys = 2;
    ctx.lines[0].password = HOSTILE.into();
    ctx.lines[0].display_name = "Tom & \"Jerry\" <sales>".into();
    ctx.lines[0].label = "<&>".into();
    ctx.lines[1].transport = "tls".into();
    ctx.lines[1].registrar_port = Some(5071);
    ctx.lines[1].proxy_host = "proxy.example.com".into();
    ctx.settings.insert("language".into(), "fr".into());
    builtin().render(vendor, template, ctx).unwrap().body
}

fn xml(text: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(text)
        .unwrap_or_else(|e| panic!("not well-formed XML ({e}):\n{text}"))
}

/// The text of the one element named `tag` whose attributes include all of `attrs`.
fn element<'a>(doc: &'a roxmltree::Document<'a>, tag: &str, attrs: &[(&str, &str)]) -> &'a str {
    let found: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name(tag) && attrs.iter().all(|(k, v)| n.attribute(*k) == Some(*v)))
        .collect();
    assert_eq!(found.len(), 1, "one <{tag} {attrs:?}>");
    found[0].text().unwrap_or("")
}

#[test]
fn grandstream_named_items() {
    let text = render_hostile("grandstream", "GXP2170", "mac.xml", 2);
    let doc = xml(&text);
    let item = |name: &str| element(&doc, "item", &[("name", name)]);
    assert_eq!(doc.root_element().tag_name().name(), "gs_provision");
    assert_eq!(element(&doc, "mac", &[]), "001565aabbcc");
    assert_eq!(
        item("account.1.sip.subscriber.password"),
        HOSTILE,
        "escaped, and read back unchanged"
    );
    assert_eq!(
        item("account.1.sip.subscriber.name"),
        "Tom & \"Jerry\" <sales>"
    );
    assert_eq!(item("account.1.sip.userid"), "101");
    assert_eq!(
        item("account.2.sip.server.1.address"),
        "sip.example.com:5071"
    );
    assert_eq!(item("account.2.sip.transport"), "TlsOrTcp");
    assert_eq!(
        item("account.2.sip.outboundProxy.1.address"),
        "proxy.example.com"
    );
    assert_eq!(
        item("account.1.sip.registerExpiration"),
        "60",
        "minutes, not seconds"
    );
    assert_eq!(item("account.3.enable"), "No");
    assert_eq!(item("account.4.enable"), "No");
    assert_eq!(item("pks.vpk.2.account"), "1", "key accounts are 0-based");
    assert_eq!(item("users.admin.password"), "Adm1n-Sample");
    assert_eq!(item("language.gui"), "fr");
    assert_eq!(item("provisioning.config.protocol"), "HTTPS");
    assert_eq!(
        item("provisioning.config.serverPath"),
        "provisor.example.com/p/TOKEN/"
    );
    let common = "common.xml";
    let text = builtin()
        .render("grandstream", common, Context::sample("grandstream", "", 0))
        .unwrap()
        .body;
    assert!(
        !xml(&text).descendants().any(|n| n.has_tag_name("item")),
        "common files carry nothing device-specific"
    );
}

#[test]
fn snom_phone_settings_and_function_keys() {
    let text = render_hostile("snom", "D785", "mac.xml", 2);
    let doc = xml(&text);
    let user = |tag: &str, idx: &str| element(&doc, tag, &[("idx", idx)]);
    assert_eq!(user("user_pass", "1"), HOSTILE);
    assert_eq!(user("user_realname", "1"), "Tom & \"Jerry\" <sales>");
    assert_eq!(user("user_name", "2"), "102");
    assert_eq!(user("user_host", "2"), "sip.example.com:5071");
    assert_eq!(
        user("user_outbound", "1"),
        "sip.example.com:5060;transport=udp"
    );
    assert_eq!(
        user("user_outbound", "2"),
        "proxy.example.com:5061;transport=tls"
    );
    assert_eq!(user("user_active", "3"), "off");
    assert_eq!(element(&doc, "language", &[]), "Français");
    assert_eq!(
        element(&doc, "setting_server", &[]),
        "https://provisor.example.com/p/TOKEN/001565AABBCC.xml"
    );
    assert_eq!(element(&doc, "settings_refresh_timer", &[]), "86400");
    let keys: Vec<(&str, &str)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("fkey"))
        .map(|n| (n.attribute("idx").unwrap(), n.attribute("label").unwrap()))
        .collect();
    assert_eq!(
        keys,
        [("0", "<&>"), ("1", "102")],
        "0-based keys, labels escaped in attributes"
    );
    let common = "setting-files.htm";
    let text = builtin()
        .render("snom", common, Context::sample("snom", "D785", 1))
        .unwrap()
        .body;
    let doc = xml(&text);
    assert_eq!(
        element(
            &doc,
            "file",
            &[(
                "url",
                "https://provisor.example.com/p/TOKEN/001565AABBCC.xml"
            )]
        ),
        ""
    );
}

#[test]
fn cisco_mpp_and_spa_flat_profiles() {
    for (vendor, model, admin_key, profile) in [
        (
            "cisco-mpp",
            "8851",
            "Admin_Password",
            "https://provisor.example.com/p/TOKEN/$MA.xml",
        ),
        (
            "cisco-spa",
            "SPA508G",
            "Admin_Passwd",
            "https://provisor.example.com/p/TOKEN/spa$MA.xml",
        ),
    ] {
        let text = render_hostile(vendor, model, "mac.xml", 2);
        let doc = xml(&text);
        let el = |tag: &str| element(&doc, tag, &[]);
        assert_eq!(
            doc.root_element().tag_name().name(),
            "flat-profile",
            "{vendor}"
        );
        assert_eq!(el("Password_1_"), HOSTILE, "{vendor}");
        assert_eq!(el("Display_Name_1_"), "Tom & \"Jerry\" <sales>");
        assert_eq!(el("User_ID_2_"), "102");
        assert_eq!(el("Proxy_2_"), "sip.example.com:5071");
        assert_eq!(el("SIP_Transport_2_"), "TLS");
        assert_eq!(
            (el("Use_Outbound_Proxy_1_"), el("Use_Outbound_Proxy_2_")),
            ("No", "Yes")
        );
        assert_eq!((el("Line_Enable_3_"), el("Line_Enable_4_")), ("No", "No"));
        assert_eq!(el("Short_Name_1_"), "<&>");
        assert_eq!(el(admin_key), "Adm1n-Sample", "{vendor}");
        assert_eq!(el("Profile_Rule"), profile);
        assert_eq!(el("Resync_Periodic"), "86400");
        assert_eq!(el("Language_Selection"), "French");
        let common = builtin()
            .render(vendor, "common.xml", Context::sample(vendor, "", 0))
            .unwrap()
            .body;
        assert!(
            !common.contains("Password"),
            "{vendor} common file carries no secrets"
        );
        xml(&common);
    }
}

#[test]
fn poly_master_and_phone_files() {
    let text = render_hostile("poly", "VVX_450", "phone.xml", 2);
    let doc = xml(&text);
    let attr = |name: &str| {
        let found: Vec<&str> = doc
            .descendants()
            .filter_map(|n| n.attribute(name))
            .collect();
        assert_eq!(found.len(), 1, "{name}");
        found[0]
    };
    assert_eq!(attr("reg.1.auth.password"), HOSTILE);
    assert_eq!(attr("reg.1.displayName"), "Tom & \"Jerry\" <sales>");
    assert_eq!(attr("reg.2.address"), "102");
    assert_eq!(attr("reg.2.server.1.port"), "5071");
    assert_eq!(attr("reg.2.server.1.transport"), "TLS");
    assert_eq!(attr("reg.1.server.1.transport"), "UDPOnly");
    assert_eq!(attr("reg.2.outboundProxy.address"), "proxy.example.com");
    assert_eq!(
        attr("reg.3.address"),
        "",
        "registrations beyond ours are cleared"
    );
    assert_eq!(attr("device.auth.localAdminPassword"), "Adm1n-Sample");
    assert_eq!(
        attr("device.prov.serverName"),
        "https://provisor.example.com/p/TOKEN/"
    );
    assert_eq!(attr("lcl.ml.lang"), "French_France");
    assert_eq!(attr("prov.polling.period"), "86400");
    let master = builtin()
        .render("poly", "master.xml", Context::sample("poly", "", 0))
        .unwrap()
        .body;
    let doc = xml(&master);
    let app = doc.root_element();
    assert_eq!(
        app.attribute("CONFIG_FILES"),
        Some("https://provisor.example.com/p/TOKEN/[PHONE_MAC_ADDRESS]-phone.cfg")
    );
    assert_eq!(app.attribute("APP_FILE_PATH"), Some("sip.ld"));
}

#[test]
fn gigaset_handsets_accounts_and_providers() {
    let text = render_hostile("gigaset", "N870 IP PRO", "mac.xml", 2);
    let doc = xml(&text);
    let param = |name: &str| {
        let found: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("param") && n.attribute("name") == Some(name))
            .filter_map(|n| n.attribute("value"))
            .collect();
        assert_eq!(found.len(), 1, "{name}");
        found[0]
    };
    assert_eq!(param("SipAccount.00001.AuthPassword"), HOSTILE);
    assert_eq!(
        param("SipAccount.00001.DisplayName"),
        "Tom & \"Jerry\" <sales>"
    );
    assert_eq!(param("SipAccount.00002.UserName"), "102");
    assert_eq!(param("SipAccount.00002.ProviderId"), "1");
    assert_eq!(param("SipProvider.1.RegServerPort"), "5071");
    assert_eq!(
        param("SipProvider.1.ProxyServerAddress"),
        "proxy.example.com"
    );
    assert_eq!(param("SipProvider.1.ProxyServerPort"), "5061");
    assert_eq!(param("SipProvider.1.TransportProtocol"), "3");
    assert_eq!(param("SipProvider.0.TransportProtocol"), "1");
    assert_eq!(param("WebUIAccounts.1.Password"), "Adm1n-Sample");
    let handsets: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("oper") && n.attribute("name") == Some("add_hs"))
        .filter_map(|n| n.attribute("value"))
        .collect();
    assert_eq!(handsets, ["00001", "00002"]);
}

#[test]
fn htek_p_codes_for_its_two_verified_accounts() {
    let text = render_hostile("htek", "UC903", "mac.xml", 2);
    let doc = xml(&text);
    let el = |tag: &str| element(&doc, tag, &[]);
    assert_eq!(el("P34"), HOSTILE, "account 1 password");
    assert_eq!(el("P3"), "Tom & \"Jerry\" <sales>");
    assert_eq!(
        el("P735"),
        "102",
        "account 2 user, not Grandstream's numbering"
    );
    assert_eq!(el("P747"), "sip.example.com:5071");
    assert_eq!(el("P830"), "2");
    assert_eq!(el("P748"), "proxy.example.com");
    assert_eq!(el("P2"), "Adm1n-Sample");
    let mut ctx = Context::sample("htek", "UC903", 1);
    ctx.device.max_lines = 2;
    let text = builtin().render("htek", "mac.xml", ctx).unwrap().body;
    assert_eq!(
        element(&xml(&text), "P401", &[]),
        "0",
        "an unused second account is switched off"
    );
}

#[test]
fn panasonic_strict_text_format() {
    let r = builtin();
    let mut ctx = Context::sample("panasonic", "KX-UT136", 2);
    ctx.device.max_lines = 3;
    ctx.lines[0].password = "p<&>'w".into();
    ctx.lines[1].transport = "tls".into();
    let body = r.render("panasonic", "mac.cfg", ctx.clone()).unwrap().body;
    assert!(
        body.starts_with(
            "# Panasonic SIP Phone Standard Format File # DO NOT CHANGE THIS LINE!\r\n"
        )
    );
    assert!(
        !body.replace("\r\n", "").contains('\n'),
        "every line ends in CRLF"
    );
    assert!(
        body.ends_with("\r\n\r\n"),
        "the file ends with an empty line"
    );
    let mut keys = BTreeMap::new();
    for line in body
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (k, v) = line.split_once('=').unwrap_or_else(|| panic!("{line:?}"));
        assert!(
            !k.contains(' ') && v.starts_with('"') && v.ends_with('"'),
            "KEY=\"value\": {line:?}"
        );
        assert!(line.len() <= 537);
        assert!(
            keys.insert(k.to_owned(), v.trim_matches('"').to_owned())
                .is_none(),
            "{k} twice: the first would win"
        );
    }
    assert_eq!(
        keys["SIP_PASS_1"], "p<&>'w",
        "no XML escaping in a text file"
    );
    assert_eq!(keys["PHONE_NUMBER_2"], "102");
    assert_eq!(keys["SIP_TRANSPORT_2"], "2");
    assert_eq!(keys["SIP_RGSTR_PORT_2"], "5061");
    assert_eq!(keys["PHONE_NUMBER_3"], "");
    assert_eq!(keys["ADMIN_PASS"], "Adm1n-Sample");
    assert_eq!(
        keys["CFG_STANDARD_FILE_PATH"],
        "https://provisor.example.com/p/TOKEN/Config{MAC}.cfg"
    );
    // A double quote cannot be written: a clear error, never a changed password.
    ctx.lines[0].password = "pa\"ss".into();
    let e = r.render("panasonic", "mac.cfg", ctx).unwrap_err();
    assert!(e.to_string().contains("double quote"), "{e}");
    let common = r
        .render(
            "panasonic",
            "model.cfg",
            Context::sample("panasonic", "", 0),
        )
        .unwrap()
        .body;
    assert!(
        common.starts_with("# Panasonic SIP Phone Standard Format File #")
            && !common.contains("PASS")
    );
}

#[test]
fn fanvil_sysconf_lines() {
    let text = render_hostile("fanvil", "X5U", "mac.xml", 2);
    let doc = xml(&text);
    let line = |index: &str, tag: &str| {
        let l = doc
            .descendants()
            .find(|n| n.has_tag_name("line") && n.attribute("index") == Some(index))
            .unwrap_or_else(|| panic!("line {index}"));
        l.children()
            .find(|c| c.has_tag_name(tag))
            .and_then(|c| c.text())
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(line("1", "RegisterPswd"), HOSTILE);
    assert_eq!(line("1", "DisplayName"), "Tom & \"Jerry\" <sales>");
    assert_eq!(line("2", "PhoneNumber"), "102");
    assert_eq!(line("2", "Transport"), "3", "Fanvil's TLS is 3");
    assert_eq!(line("2", "RegisterPort"), "5071");
    assert_eq!(line("2", "ProxyAddr"), "proxy.example.com");
    assert_eq!(line("3", "EnableReg"), "0");
    assert_eq!(element(&doc, "Password", &[]), "Adm1n-Sample");
    assert_eq!(element(&doc, "FlashProtocol", &[]), "5");
}

#[test]
fn a_model_can_have_its_own_template() {
    let vendor = format!(
        "{TEST_VENDOR}\n[models.OLD1]\nlines = 2\ntemplates = {{ \"mac.xml\" = \"mac-v1.xml\" }}\n[models.NEW2]\nlines = 4\n"
    );
    let r = with_override(&[
        ("acme/vendor.toml", vendor.as_str()),
        ("acme/templates/mac.xml", "<new/>\n"),
        ("acme/templates/mac-v1.xml", "<old/>\n"),
    ])
    .unwrap();
    let render = |model: &str| {
        r.render("acme", "mac.xml", Context::sample("acme", model, 1))
            .unwrap()
            .body
    };
    assert_eq!(render("OLD1"), "<old/>\n");
    assert_eq!(render("NEW2"), "<new/>\n");
    assert_eq!(render(""), "<new/>\n");
    // A model's template that is not there is found at load.
    let missing =
        format!("{TEST_VENDOR}\n[models.OLD1]\ntemplates = {{ \"mac.xml\" = \"nope.xml\" }}\n");
    assert!(matches!(
        with_override(&[("acme/vendor.toml", missing.as_str()), ("acme/templates/mac.xml", "x")]),
        Err(RenderError::Missing(name)) if name == "acme/nope.xml"
    ));
}
