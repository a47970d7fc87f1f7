//! Templates stored by admins: what is refused at upload (with line and column), the
//! limits they run under, masking, and 3CX imports.

use provisor_render::context::MASK;
use provisor_render::{Context, Renderer, TemplateProblem, Vendors, stored, threecx};

fn renderer() -> Renderer {
    Renderer::new(Vendors::builtin().unwrap()).unwrap()
}

fn problem(source: &str) -> TemplateProblem {
    renderer()
        .check_stored("yealink", "mac.cfg", source)
        .expect_err("the template is refused")
}

#[track_caller]
fn refused_at(source: &str, line: usize, column: usize, says: &str) {
    let p = problem(source);
    assert_eq!((p.line, p.column), (line, column), "{p}");
    assert!(p.message.contains(says), "{p} does not say {says:?}");
}

#[test]
fn every_built_in_template_may_be_stored() {
    // An admin starts a replacement from the built-in file: it must pass as it is.
    let r = renderer();
    for vendor in r.catalog().vendors() {
        for rule in &vendor.files {
            let Some(source) = r.source(&vendor.id, &rule.template) else {
                continue;
            };
            if let Err(p) = r.check_stored(&vendor.id, &rule.template, &source) {
                panic!("{}/{}: {p}", vendor.id, rule.template);
            }
            // The most lines a model takes: a stored copy stays within its fuel.
            let ctx = Context::sample(&vendor.id, "", 16);
            let stored = r
                .render_stored(&vendor.id, &rule.template, &source, ctx.clone())
                .unwrap();
            let built_in = r.render(&vendor.id, &rule.template, ctx).unwrap();
            assert_eq!(stored, built_in, "{}/{}", vendor.id, rule.template);
        }
    }
}

#[test]
fn syntax_errors_and_unknown_names_have_their_place() {
    refused_at("a\nb {% if %}\n", 2, 9, "syntax error");
    refused_at(
        "x\n  {{ device.macc }}\n",
        2,
        6,
        "unknown variable `device.macc`",
    );
    refused_at("{{ nothing }}", 1, 4, "unknown variable `nothing`");
    refused_at(
        "{% for l in lines %}\n{{ l.passwrd }}\n{% endfor %}",
        2,
        4,
        "passwrd",
    );
    // Settings are free-form, but one a device may not have needs a default.
    assert!(
        renderer()
            .check_stored("yealink", "mac.cfg", "{{ settings.tz | default('UTC') }}")
            .is_ok()
    );
    refused_at("\n\n{{ settings.tz }}", 3, 4, "default");
    // The hand-off renders without lines.
    refused_at("{{ lines[0].sip_user }}", 1, 9, "undefined");
}

#[test]
fn what_could_grow_without_bound_is_refused() {
    refused_at("{{ device.mac ~ 'b' }}", 1, 15, "`~`");
    refused_at("{{ device.mac * 3 }}", 1, 15, "`*`");
    refused_at("{{ device.keys ** 3 }}", 1, 16, "`*`");
    refused_at("{{ device.mac + 'b' }}", 1, 15, "`+`");
    refused_at("{{ lines + lines }}", 1, 10, "`+`");
    refused_at("{{ device.mac | safe }}", 1, 17, "filter `safe`");
    refused_at("{{ device.mac | indent(9) }}", 1, 17, "filter `indent`");
    refused_at("{% macro m() %}x{% endmacro %}", 1, 1, "macros");
    refused_at("{% set x %}a{% endset %}{{ x }}", 1, 1, "capturing");
    refused_at("{% include device.mac %}", 1, 4, "including");
    refused_at("{% include 'other.cfg' %}", 1, 4, "including");
    assert!(
        renderer()
            .check_stored(
                "cisco-mpp",
                "mac.xml",
                "{% set family = {} %}{% include 'cisco-mpp/flat-profile.xml' %}"
            )
            .is_err_and(|p| p.message.contains("flat-profile.xml:26")),
        "an included built-in runs with the includer's names"
    );
    refused_at("{{ lipsum() }}", 1, 4, "function `lipsum`");
    refused_at("{{ device.mac.upper() }}", 1, 14, "method `upper`");
    refused_at("{% if 1 is sameas 1 %}{% endif %}", 1, 12, "test `sameas`");
    // Whole numbers may still be added.
    assert!(
        renderer()
            .check_stored("yealink", "mac.cfg", "{{ lines | length + 1 }}")
            .is_ok()
    );
}

#[test]
fn limits_hold_at_render_time() {
    let long = "x".repeat(100);
    let join = format!("{{{{ range(1000) | join('{long}') }}}}");
    assert!(
        problem(&join).message.contains("join"),
        "{}",
        problem(&join)
    );
    assert!(
        problem("{{ range(5000) | length }}")
            .message
            .contains("range")
    );
    let loops = "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}";
    let p = problem(loops);
    assert!(p.message.contains("fuel"), "{p}");
    let big = format!(
        "{{% for i in range(1000) %}}{{{{ range(1000) | join('{}') }}}}{{% endfor %}}",
        "y".repeat(60)
    );
    let p = problem(&big);
    assert!(p.message.contains("larger than"), "{p}");
    let huge = "x".repeat(stored::MAX_SOURCE + 1);
    assert!(problem(&huge).message.contains("at most"));
}

#[test]
fn stored_templates_escape_as_built_in_ones() {
    let r = renderer();
    let mut ctx = Context::sample("snom", "D785", 1);
    ctx.lines[0].display_name = "A <&> \"B\"".into();
    let body = r
        .render_stored(
            "snom",
            "mac.xml",
            "<n>{{ lines[0].display_name }}</n>",
            ctx.clone(),
        )
        .unwrap()
        .body;
    assert_eq!(body, "<n>A &lt;&amp;&gt; &quot;B&quot;</n>");
    ctx.lines[0].display_name = "a\nkey = b".into();
    let body = r
        .render_stored("yealink", "mac.cfg", "x = {{ lines[0].display_name }}", ctx)
        .unwrap()
        .body;
    assert_eq!(body, "x = a key = b");
}

#[test]
fn masked_contexts_carry_no_secrets() {
    let r = renderer();
    let mut ctx = Context::sample("yealink", "T54W", 2);
    ctx.mask_secrets();
    let body = r.render("yealink", "mac.cfg", ctx).unwrap().body;
    assert!(!body.contains("secret-1") && !body.contains("Adm1n-Sample"));
    assert!(body.contains(&format!("account.2.password = {MASK}")));
}

const THREECX_SNOM: &str = r#"<?xml version="1.0"?>
<doc xmlns:tcx="http://www.3cx.com">
  <data><device>
    <deviceconfig filename="cfg%%mac_address%%">
 <![CDATA[
  user_pname1$: %%extension_auth_id%%
  user_pass1$: %%extension_auth_pw%%
  user_name1$: %%extension_number%%
  user_realname1$: %%extension_first_name%% %%extension_last_name%%
  user_host1$: %%pbx_ip%%
  setting_server: http://provisioning/%%mac_address%%
  ]]>
    </deviceconfig>
  </device></data>
</doc>"#;

#[test]
fn an_imported_3cx_template_writes_every_line() {
    let r = renderer();
    let t = &threecx::import(THREECX_SNOM).unwrap()[0];
    r.check_stored("snom", &t.name, &t.source).unwrap();
    let mut ctx = Context::sample("snom", "D785", 3);
    ctx.lines[1].first_name = "Ada".into();
    ctx.lines[1].last_name = "Lovelace".into();
    let body = r
        .render_stored("snom", &t.name, &t.source, ctx)
        .unwrap()
        .body;
    assert_eq!(
        body,
        "user_pname1$: 101\nuser_pass1$: secret-1\nuser_name1$: 101\nuser_realname1$: Line 1\nuser_host1$: sip.example.com\n\
         user_pname2$: 102\nuser_pass2$: secret-2\nuser_name2$: 102\nuser_realname2$: Ada Lovelace\nuser_host2$: sip.example.com\n\
         user_pname3$: 103\nuser_pass3$: secret-3\nuser_name3$: 103\nuser_realname3$: Line 3\nuser_host3$: sip.example.com\n\
         setting_server: http://provisioning/001565aabbcc\n"
    );
}

#[test]
fn what_the_review_found_is_refused() {
    // Filters that allocate what the template asks for, and `map`, which repeats values.
    refused_at(
        "{{ [1] | batch(1000000000000000) | length }}",
        1,
        10,
        "filter `batch`",
    );
    refused_at(
        "{{ [1] | slice(1000000000000000) | length }}",
        1,
        10,
        "filter `slice`",
    );
    refused_at(
        "{{ lines | map(attribute='x', default='y') }}",
        1,
        12,
        "filter `map`",
    );
    // Constant expressions are refused before minijinja folds them while compiling.
    refused_at("{{ 3 * 4 }}", 1, 6, "`*`");
    refused_at("{{ 'ab' ~ 'cd' }}", 1, 9, "`~`");
    refused_at("{{ 2 in [1] * 10**18 }}", 1, 13, "`*`");
    let folded = format!("{{{{ '{}' * 100000000 }}}}", "x");
    assert!(problem(&folded).message.contains("`*`"));
    // `+` only with a whole number that nothing else binds to.
    refused_at("{% set s = device.mac %}{{ s + (s or 1) }}", 1, 30, "`+`");
    refused_at("{{ device.mac + 1 | string }}", 1, 15, "`+`");
    // Lists and maps built from values; escaping switched off.
    refused_at("{% set a = [lines, lines] %}", 1, 12, "list or map");
    refused_at("{{ {'a': device.mac} }}", 1, 4, "list or map");
    refused_at(
        "{% autoescape false %}<b>{{ device.mac }}{% endautoescape %}",
        1,
        1,
        "autoescape",
    );
    // Constant lists and maps stay fine.
    assert!(
        renderer()
            .check_stored("yealink", "mac.cfg", "{% set t = {'udp': 0, 'tls': 2} %}{{ t[lines[0].transport] | default(0) if lines else 0 }}{{ [1, 2] | length }}")
            .is_ok()
    );
}

#[test]
fn conversions_to_text_are_capped_before_they_are_built() {
    let r = renderer();
    let ctx = Context::sample("yealink", "T54W", 1);
    let big = "y".repeat(100);
    let join = format!("{{{{ range(1000) | join('{big}') }}}}");
    assert!(
        r.render_stored("yealink", "mac.cfg", &join, ctx.clone())
            .is_err()
    );
    let replace = format!(
        "{{{{ device.mac | replace('0', '{}') }}}}",
        "z".repeat(40_000)
    );
    assert!(
        r.render_stored("yealink", "mac.cfg", &replace, ctx.clone())
            .is_err()
    );
    assert!(
        r.render_stored(
            "yealink",
            "mac.cfg",
            "{{ device.mac | replace('', 'x') }}",
            ctx.clone()
        )
        .is_err()
    );
    // The xml filter keeps a value on its line in any file.
    let mut ctx = ctx;
    ctx.lines[0].display_name = "a\nkey = b".into();
    let body = r
        .render_stored(
            "yealink",
            "mac.cfg",
            "x = {{ lines[0].display_name | xml }}",
            ctx,
        )
        .unwrap()
        .body;
    assert_eq!(body, "x = a&#10;key = b");
}

#[test]
fn the_second_review_is_refused_too() {
    // Tuples, and lists or maps after a keyword or from dict(): no structure from values.
    refused_at("{% set p = (device.mac, device.mac) %}", 1, 12, "tuples");
    refused_at("{% set p = none or [lines, lines] %}", 1, 20, "list or map");
    refused_at(
        "{% for x in [lines, lines] %}{% endfor %}",
        1,
        13,
        "list or map",
    );
    refused_at("{% set p = dict(a=lines) %}", 1, 12, "built from values");
    // Grouping and calls stay fine.
    assert!(
        renderer()
            .check_stored(
                "yealink",
                "mac.cfg",
                "{{ (lines | length + 1) if lines else 0 }}{{ range(1, 3) | length }}"
            )
            .is_ok()
    );
    // Long lists cannot be sorted over and over.
    let r = renderer();
    let ctx = Context::sample("yealink", "T54W", 1);
    let sorted = "{% set l = range(900) | join('xyz') | list %}{{ l | sort | length }}";
    assert!(r.render_stored("yealink", "mac.cfg", sorted, ctx).is_err());
}

#[test]
fn a_template_that_takes_too_long_is_given_up_and_refused_after() {
    // No time at all: every rendering runs out of it.
    let r = renderer().with_stored_deadline(std::time::Duration::ZERO);
    // A template that does some work within its fuel: 1,000 comparisons of 16 KB texts.
    let slow = format!(
        "{{% set a = range(1000) | join('{x}') %}}{{% set b = range(1000) | join('{x}') %}}\
         {{% for i in range(1000) %}}{{% if a == b %}}{{% endif %}}{{% endfor %}}",
        x = "x".repeat(13)
    );
    let ctx = Context::sample("yealink", "T54W", 1);
    // A rendering may just beat even no time at all; of twenty (each a new template), one
    // runs out of it.
    let slow = (0..20)
        .map(|n| format!("{slow}{}", " ".repeat(n)))
        .find(|t| {
            r.render_stored("yealink", "mac.cfg", t, ctx.clone())
                .is_err_and(|p| p.message.contains("longer than"))
        })
        .expect("a rendering runs out of time");
    let again = r
        .render_stored("yealink", "mac.cfg", &slow, ctx.clone())
        .unwrap_err();
    assert!(again.message.contains("before"), "{again}");
    // Stored again, changed: tried again (not refused for the old one's time).
    let changed = format!("{slow}\n");
    let tried = r.render_stored("yealink", "mac.cfg", &changed, ctx);
    assert!(tried.is_ok() || !tried.unwrap_err().message.contains("before"));
    // The default deadline lets ordinary templates through.
    assert!(
        renderer()
            .render_stored(
                "yealink",
                "mac.cfg",
                "{{ device.mac }}",
                Context::sample("yealink", "", 0)
            )
            .is_ok()
    );
}

#[test]
fn the_third_review_is_refused_too() {
    // Tuples without brackets, lists after a test, `with`, deep brackets.
    refused_at("{% set p = 1 %}{% set p = p, p %}", 1, 1, "tuple");
    refused_at("{% set p = 1 %}{% set p = p, %}", 1, 1, "tuple");
    refused_at(
        "{% if 1 is eq [device.mac, device.mac] %}{% endif %}",
        1,
        15,
        "built from values",
    );
    refused_at("{% with p = lines %}{% endwith %}", 1, 1, "`with`");
    let deep = format!("{{{{ {}1{} }}}}", "[".repeat(20), "]".repeat(20));
    assert!(problem(&deep).message.contains("nested"));
    // Constant ones, nested too, stay fine (the built-ins use them).
    assert!(
        renderer()
            .check_stored(
                "yealink",
                "mac.cfg",
                "{% set t = {1: {'a': 'b'}, 2: [1, 2]} %}{{ t[1].a }}"
            )
            .is_ok()
    );
}

#[test]
fn the_fourth_review_is_refused_too() {
    // Keyword arguments built from values: `default` would return them as a map.
    refused_at(
        "{% set p = 1 %}{% set p = settings.zz | default(a=p, b=p) %}",
        1,
        41,
        "built from values",
    );
    // Constant keyword arguments stay fine.
    assert!(
        renderer()
            .check_stored("yealink", "mac.cfg", "{{ lines | selectattr('number', 'eq', 1) | list | length }}{{ {'b': 1, 'a': 2} | dictsort(by='value') | length }}")
            .is_ok()
    );
}

#[test]
fn a_preview_that_runs_out_of_time_is_not_remembered_for_the_phone() {
    // The console's preview renders the phone's own context; its running out of time (the
    // machine is busy, the admin's draft is slow) must not refuse the phone's fetch.
    let r = renderer().with_stored_deadline(std::time::Duration::ZERO);
    let slow = "{% for i in range(1000) %}{{ range(1000) | sort(reverse=true) | join(',') | length }}{% endfor %}";
    let ctx = Context::sample("yealink", "T54W", 1);
    let previewed = r
        .preview_stored("yealink", "mac.cfg", slow, ctx.clone())
        .unwrap_err();
    assert!(previewed.message.contains("longer than"), "{previewed}");
    let fetched = r
        .render_stored("yealink", "mac.cfg", slow, ctx)
        .unwrap_err();
    assert!(
        !fetched.message.contains("before"),
        "tried, not refused for the preview's time: {fetched}"
    );
}
