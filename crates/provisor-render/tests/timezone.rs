//! One `timezone` setting reaches every vendor's file in that vendor's form; a
//! vendor-specific setting still wins.

use provisor_render::timezone::Time;
use provisor_render::{Context, Renderer, Vendors};
use serde_json::json;

fn body(vendor: &str, template: &str, zone: Option<&str>, settings: serde_json::Value) -> String {
    let r = Renderer::new(Vendors::builtin().unwrap()).unwrap();
    let mut ctx = Context::sample(vendor, "", 1);
    if let Some(z) = zone {
        ctx.time = Time::of(z);
    }
    ctx.settings = settings.as_object().unwrap().clone();
    r.render(vendor, template, ctx).unwrap().body
}

#[test]
fn each_vendor_writes_the_zone_its_way() {
    let berlin = Some("Europe/Berlin");
    let none = json!({});
    for (vendor, template, expected) in [
        (
            "yealink",
            "mac.cfg",
            "local_time.time_zone = +1\nlocal_time.time_zone_name = Germany(Berlin)\n",
        ),
        ("snom", "mac.xml", "<timezone perm=\"R\">GER+1</timezone>"),
        (
            "grandstream",
            "mac.xml",
            "<item name=\"dateTime.timezone\">CET-1CEST,M3.5.0,M10.5.0/3</item>",
        ),
        (
            "cisco-mpp",
            "mac.xml",
            "<Time_Zone ua=\"na\">GMT+01:00</Time_Zone>",
        ),
        ("fanvil", "mac.xml", "<TimeZone>4</TimeZone>"),
        ("poly", "phone.xml", "tcpIpApp.sntp.gmtOffset=\"3600\""),
    ] {
        let with = body(vendor, template, berlin, none.clone());
        assert!(
            with.contains(expected),
            "{vendor}: {expected:?} not in\n{with}"
        );
        let without = body(vendor, template, None, none.clone());
        assert!(
            !without.contains(expected),
            "{vendor} without a zone:\n{without}"
        );
    }
    // The offset alone where the vendor's zone name is not known.
    let paris = body("yealink", "mac.cfg", Some("Europe/Paris"), none.clone());
    assert!(paris.contains("local_time.time_zone = +1\n") && !paris.contains("time_zone_name"));
    // Vendor-specific settings win.
    let snom = body("snom", "mac.xml", berlin, json!({"snom_timezone": "AUT+1"}));
    assert!(snom.contains(">AUT+1</timezone>"), "{snom}");
    let yealink = body("yealink", "mac.cfg", berlin, json!({"utc_offset": "+2"}));
    assert!(yealink.contains("local_time.time_zone = +2\n"), "{yealink}");
}
