//! "Never panics" on arbitrary input for the parsers of the render crate and the catalog
//! (issue 11): request detection (file name and User-Agent), 3CX template import, and the
//! upload check of stored templates.

use std::sync::OnceLock;

use proptest::prelude::*;
use provisor_render::{Renderer, Vendors, threecx};

fn renderer() -> &'static Renderer {
    static R: OnceLock<Renderer> = OnceLock::new();
    R.get_or_init(|| Renderer::new(Vendors::builtin().unwrap()).unwrap())
}

/// File names as phones and scanners ask for them: the catalog's shapes with noise.
fn file_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,40}",
        "[0-9a-fA-F]{12}(\\.cfg|\\.xml|\\.boot|-phone\\.cfg|\\.htm)?",
        "(cfg|spa|snom|Config|y0000000000)[0-9a-zA-Z]{0,14}(\\.xml|\\.cfg|\\.htm)?",
        "(\\.\\./|%2e%2e/|/|\\\\){0,3}[a-z0-9.]{0,20}",
    ]
}

fn user_agent() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        "\\PC{0,80}",
        "(Yealink SIP-|PolycomVVX-|snom|Grandstream Model HW |Cisco/|Fanvil |Gigaset |Htek |Panasonic_)[A-Za-z0-9_ -]{0,20} [0-9.]{0,12} ([0-9a-f]{2}:){0,5}[0-9a-f]{0,2}",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn request_detection_never_panics(file in file_name(), ua in user_agent()) {
        let catalog = renderer().catalog();
        let _ = catalog.detect(&file, ua.as_deref());
        for v in catalog.vendors() {
            let _ = catalog.detect_for(&v.id, &file, ua.as_deref());
        }
    }

    #[test]
    fn threecx_import_never_panics(
        body in "\\PC{0,200}",
        name in "[a-z%_.]{0,30}",
    ) {
        let _ = threecx::import(&body);
        let xml = format!(
            "<?xml version=\"1.0\"?><phone><deviceconfig filename=\"{name}\">{body}</deviceconfig></phone>"
        );
        let _ = threecx::import(&xml);
    }
}

proptest! {
    // Each case compiles and tries a template: fewer of them.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_upload_check_never_panics(
        parts in prop::collection::vec(
            prop_oneof![
                "\\PC{0,10}",
                Just("{{ ".to_owned()),
                Just(" }}".to_owned()),
                Just("{% ".to_owned()),
                Just(" %}".to_owned()),
                "(lines|device|settings|provisioning|time)(\\.[a-z_]{1,8}|\\[[0-9]\\])?",
                "\\| ?(e|xml|length|join|replace|lower|default|sort|select|first|zpad)(\\([^)]{0,6}\\))?",
                "(for|if|set|endfor|endif|else|in|is|not|and|or) ",
            ],
            0..20,
        )
    ) {
        let source = parts.concat();
        let _ = renderer().check_stored("yealink", "mac.cfg", &source);
        let _ = renderer().check_stored("snom", "mac.xml", &source);
    }
}
