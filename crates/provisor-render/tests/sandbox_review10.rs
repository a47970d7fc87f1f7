//! Tenth adversarial review of the stored-template sandbox (issue 3).
//!
//! Tests of open findings assert the *safe* behaviour and are ignored until the fix: they
//! fail against the code as reviewed. The others document attacks that the sandbox
//! already stops (or that stay bounded), so a later change cannot reopen them.
//!
//! Run: `cargo test -p provisor-render --test sandbox_review10` (and `-- --ignored` for
//! the open findings; they take about ten seconds and leave given-up threads running
//! meanwhile).
//!
//! Measured on a debug build (dependencies at opt-level 1) on a 2-core machine.

use std::time::{Duration, Instant};

use provisor_domain::settings;
use provisor_render::Context;

mod common;
use common::{ctx, raw_layer, refused_or_given_up, renderer, threads_end};

/// A device whose settings layers (domain, category, …: each checked by
/// `settings::layer`) hold one key each.
fn layered(parts: &[(&str, serde_json::Value)]) -> Context {
    let layers: Vec<_> = parts
        .iter()
        .map(|(k, v)| raw_layer(serde_json::json!({ *k: v })))
        .collect();
    let mut c = ctx();
    c.settings = settings::merge(&layers);
    c
}

/// `a` and `b`: two distinct, equal lists of 1,000 items `item`; `c`: 60 zeros. With
/// `{"a": {"a": {"a": {}}}}` that is 4,001 values each, 8,063 in all: within the caps of
/// `stored::fits` (1,024 items per list or map, 8,192 values).
fn equal_lists(item: serde_json::Value) -> Context {
    let big = serde_json::json!(vec![item; 1000]);
    layered(&[
        ("a", big.clone()),
        ("b", big),
        ("c", serde_json::json!(vec![0; 60])),
    ])
}

/// `{% if OP and OP and … %}` (60 times, within the tag-token cap) in two nested loops
/// over `settings.c` (a context list: the loop does not end when the rendering is given
/// up), writing nothing: the rendering runs until its fuel is spent.
fn looping(op: &str) -> String {
    let conditions = vec![op; 60].join(" and ");
    format!(
        "{{% set a = settings.a %}}{{% set b = settings.b %}}\
         {{% for x in settings.c %}}{{% for y in settings.c %}}\
         {{% if {conditions} %}}{{% endif %}}{{% endfor %}}{{% endfor %}}x"
    )
}

/// Renders `source` for `context` with a deadline of 100 ms; how long after the start
/// its render thread ended (at most `limit`).
fn thread_time(source: &str, context: Context, limit: Duration) -> Duration {
    let r = renderer().with_stored_deadline(Duration::from_millis(100));
    let started = Instant::now();
    if let Err(p) = r.render_stored("yealink", "mac.cfg", source, context) {
        refused_or_given_up(&p);
    }
    threads_end(&r, limit);
    started.elapsed()
}

// ---------------------------------------------------------------------------------------
// FINDING 1 (medium): a comparison of two context values is still one instruction that
// walks both, without a look at the deadline flag, and a loop over a context list still
// runs on after the rendering is given up. The caps of review 9's fix bound one
// comparison to ~4,000 values a side, but not the 20,000 instructions of fuel: ~5,000
// comparisons of ~0.6-1 ms each.
// ---------------------------------------------------------------------------------------

// FINDING: measured with `equal_lists` and `looping`, deadline 100 ms (the caller is
// answered at ~100 ms): the render thread ends 3.3-3.6 s after the start for lists of
// `[[], [], []]`, `[[[[]]]]` or `[[[[[[[[]]]]]]]]` (500 of those), `==` or `is ge`; 3.7 s
// (`==`) and 4.9 s (`is ge`) for `{"a": {"a": {"a": {}}}}`; 1.4-1.7 s for flat items
// (zeros, empty texts); a map of 1,000 keys of 51 bytes: 1.2-1.6 s. With the real 2 s
// deadline that is ~3 s past it per phone fetch or preview (previews are not remembered:
// repeat at will). 16 such renderings (the `THREADS` cap) on 2 cores run ~8× as long
// each, ~25-40 s in which every other domain's stored templates are refused ("too many
// stored templates are being rendered"). Not high by the review's measure (one thread
// ends ~3 s, not 10 s, past the deadline), but the amplification is the same as review 9
// finding 1's, only smaller.
// Fix: count the work of comparisons against the fuel or the deadline: give stored
// templates the settings as guarded objects (`Object::custom_cmp` that calls `go_on`
// and spends a per-rendering budget of items compared; `enumerate` that ends once given
// up, like `range`'s `Guarded`), so a loop over a context list stops at its next round;
// or refuse `==`/`!=`/`<`/… and the comparison tests unless one side is a constant or a
// scalar (lists and maps are compared item by item in `select('eq', …)` anyway), or
// lower `MAX_SETTINGS_VALUES` to ~1,024 (then ~0.5 s).
#[test]
#[ignore = "open finding of the tenth sandbox review (issue 3): remove this line with the fix"]
fn comparing_capped_context_values_in_a_loop_stops_soon_after_the_deadline() {
    let item = serde_json::json!({"a": {"a": {"a": {}}}});
    for op in ["a == b", "a is ge b"] {
        let took = thread_time(
            &looping(op),
            equal_lists(item.clone()),
            Duration::from_secs(30),
        );
        assert!(
            took < Duration::from_millis(1500),
            "`{op}`: the given-up rendering ran {took:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// FINDING 2 (medium, fixed: `settings::layer` refuses a list or object of more than 1,024 items and a layer of more than 1,024 values, so seven merged layers stay within what stored templates take): settings that a settings layer takes, but stored templates do not,
// pass the upload check and break every phone fetch of every stored template of the
// domain, whether the template reads settings or not.
// ---------------------------------------------------------------------------------------

// FINDING: `stored::fits` refuses a context whose settings hold a list or map of more
// than 1,024 items or more than 8,192 values, but `settings::layer` checks bytes only:
// a domain layer of 1,025 speed-dial numbers (7 KB), or 20,000 zeros (40 KB), is stored
// without complaint. The upload check renders the sample device, which has no settings,
// so every stored template passes it; then each phone of the domain (the domain layer is
// in every device's settings) gets "the setting settings.speed_dials holds 1025 items;
// stored templates take at most 1024" for every stored template, even
// `{{ device.mac }}`. The merged total is worse: four layers (domain, category, user,
// device) of 3,000 values each are each fine on their own but 12,000 together, so the
// device layer (or the user's) can break a device that every other layer lets through,
// and a category admin's layer all phones of the category. Built-in templates go on
// rendering, which hides the cause.
// Fix: refuse, in `settings::layer`, a list or map of more than `MAX_RANGE` items and a
// layer of more than a quarter of `MAX_SETTINGS_VALUES` values (so the merge of domain,
// category, user and device stays within the cap), with the same messages; or hand
// stored templates the settings with the lists cut at the cap and a warning (as
// `fit_lines` does for lines), refusing only a template that reads a cut value.
#[test]
fn settings_a_layer_takes_do_not_break_every_stored_template_of_a_domain() {
    let r = renderer();
    let source = "{{ device.mac }}\n";
    assert!(r.check_stored("yealink", "mac.cfg", source).is_ok());
    for domain in [
        serde_json::json!({ "speed_dials": (0..1025).map(|n| 1000 + n).collect::<Vec<_>>() }),
        serde_json::json!({ "zeros": vec![[0; 20]; 1000] }),
    ] {
        let layer = settings::layer(domain.clone());
        let refused_when_stored = layer.is_err();
        let renders = layer.is_ok_and(|layer| {
            let mut c = ctx();
            c.settings = settings::merge(&[layer]);
            r.render_stored("yealink", "mac.cfg", source, c).is_ok()
        });
        assert!(
            refused_when_stored || renders,
            "a domain layer stored without complaint breaks every stored template"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Attacks the sandbox stops, or that stay bounded (these pass).
// ---------------------------------------------------------------------------------------

#[test]
fn long_context_texts_stay_cheap_to_compare_slice_and_look_up() {
    // Two distinct equal texts of 60,000 bytes (a layer each): `==`, `is lt`, a
    // reversing slice (a 60 KB copy, past `MAX_VALUE` but made once per instruction and
    // kept at most 128 times), and a map lookup by such a text each cost microseconds:
    // the loop spends its fuel in ~1 s.
    let s = "x".repeat(60_000);
    let context = || {
        layered(&[
            ("a", serde_json::json!(s)),
            ("b", serde_json::json!(s)),
            ("c", serde_json::json!(vec![0; 60])),
        ])
    };
    for op in [
        "a == b",
        "not a is lt b",
        "a[::-1] | length",
        "settings[b] is undefined",
    ] {
        let took = thread_time(&looping(op), context(), Duration::from_secs(5));
        assert!(took < Duration::from_millis(2500), "`{op}`: {took:?}");
    }
}

#[test]
fn number_conversions_of_long_texts_fail_fast() {
    // `int` and `float` of a 60,000-digit text: one parse, then an error or a number.
    let digits = "9".repeat(60_000);
    let context = layered(&[("a", serde_json::json!(digits))]);
    let r = renderer();
    for source in [
        "{{ settings.a | int }}",
        "{{ settings.a | float }}",
        "{{ settings.a | round }}",
    ] {
        let started = Instant::now();
        let _ = r.render_stored("yealink", "mac.cfg", source, context.clone());
        assert!(started.elapsed() < Duration::from_secs(1), "{source}");
    }
}

#[test]
fn case_insensitive_sorting_of_long_texts_stops_at_the_next_call() {
    // `sort`/`unique(case_sensitive=false)` lower-case texts per comparison (~2.5 MB of
    // case mapping per call over a layer's 1,000 texts of 60 bytes), but each call looks at
    // the flag first: the loop of them ends within one call of the deadline.
    let texts: Vec<String> = (0..1000).map(|n| format!("{n:A>60}")).collect();
    let context = layered(&[
        ("a", serde_json::json!(texts)),
        ("c", serde_json::json!(vec![0; 60])),
    ]);
    for filter in [
        "sort(case_sensitive=false)",
        "unique(case_sensitive=false)",
        "max",
    ] {
        let source = format!(
            "{{% for x in settings.c %}}{{% for y in settings.c %}}\
             {{% if settings.a | {filter} | length %}}{{% endif %}}{{% endfor %}}{{% endfor %}}x"
        );
        let took = thread_time(&source, context.clone(), Duration::from_secs(5));
        assert!(took < Duration::from_millis(1500), "{filter}: {took:?}");
    }
}

#[test]
fn settings_within_the_caps_render() {
    // What `fits` lets through renders as it did: a list of 1,024 items, 8,063 values.
    let r = renderer();
    let c = layered(&[("a", serde_json::json!(vec![0; 1024]))]);
    let out = r
        .render_stored("yealink", "mac.cfg", "{{ settings.a | length }}", c)
        .unwrap();
    assert_eq!(out.body, "1024");
    let c = equal_lists(serde_json::json!({"a": {"a": {"a": {}}}}));
    let out = r
        .render_stored("yealink", "mac.cfg", "{{ settings.a == settings.b }}", c)
        .unwrap();
    assert_eq!(out.body, "True");
}
