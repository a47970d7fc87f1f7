//! Ninth adversarial review of the stored-template sandbox (issue 3).
//!
//! Tests of open findings assert the *safe* behaviour and are ignored until the fix: they
//! fail against the code as reviewed. The others document attacks that the sandbox
//! already stops (or that stay bounded), so a later change cannot reopen them.
//!
//! Run: `cargo test -p provisor-render --test sandbox_review9` (and `-- --ignored` for
//! the open findings; they take about half a minute and leave given-up threads running
//! until the process exits).
//!
//! Measured on a debug build (dependencies at opt-level 1) on an idle 2-core machine.

use std::time::{Duration, Instant};

use provisor_domain::settings;
use provisor_render::Context;

mod common;
use common::{ctx, raw_layer, refused_or_given_up, renderer, threads_end};

/// A device whose four settings layers (domain, category, user, device: each within
/// `MAX_LAYER_BYTES`, as a domain admin writes them) each hold one list, under `a`, `b`,
/// `c` and `d`, of as many copies of `item` as fit: `{}` gives 21,843 empty maps per
/// layer, so `settings.a` and `settings.b` are two distinct, equal lists of 21,843 maps.
fn full_layers(item: serde_json::Value) -> Context {
    let item_bytes = serde_json::to_vec(&item).unwrap().len();
    let layers: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .map(|k| {
            // `{"a":[` and `]}`, and a comma between items.
            let n = (settings::MAX_LAYER_BYTES - 8 + 1) / (item_bytes + 1);
            raw_layer(serde_json::json!({ *k: vec![item.clone(); n] }))
        })
        .collect();
    let mut c = ctx();
    c.settings = settings::merge(&layers);
    c
}

/// `{% if a == b and a == b and … %}` (60 comparisons, within the tag-token cap) in a loop
/// over a context list, writing nothing: every `==` walks two distinct equal lists.
fn comparing_source(op: &str) -> String {
    let conditions = vec![op; 60].join(" and ");
    format!(
        "{{% set a = settings.a %}}{{% set b = settings.b %}}\
         {{% for x in settings.c %}}{{% if {conditions} %}}{{% endif %}}{{% endfor %}}x"
    )
}

// ---------------------------------------------------------------------------------------
// FINDING 1 (high, fixed: stored templates get settings of at most 1,024 items per list or map and 8,192 values in all, checked before rendering): comparisons (`==`, `!=`, `<`, …, the tests `eq`, `ne`, `lt`, `le`,
// `gt`, `ge`) are minijinja's own work inside one instruction: no wrapper sees them, and
// nothing in them looks at the deadline flag. Two distinct equal context values are
// walked in full by each comparison, and a loop over a context list (not `range`) does
// not end when the rendering is given up: the thread runs on to the end of its fuel.
// ---------------------------------------------------------------------------------------

// FINDING: measured with `full_layers` (four layers a domain admin writes, 64 KB each)
// and `comparing_source`, deadline 100 ms: the caller is answered at ~100 ms, but the
// render thread runs on until its fuel (20,000 instructions, ~5,000 comparisons of
// 21,843-item lists) is spent: `a == b` of lists of empty maps 19.9 s, `a is eq b` 20.3 s,
// `a is ge b` 25.6 s; of empty lists 17.9 s; of zeros (32,764 each) 13.7 s; of empty
// texts 6.6 s. (`<` and `!=` are false here, so `and` stops at the first: ~1 s; an `or`
// chain of them is as slow as `==`.) With the real 2 s deadline that is ~18-24 s past it,
// per phone fetch or preview (previews are not remembered: repeat at will); 16 such
// threads on 2 cores run ~8× as long each, while other domains' stored templates are
// refused ("too many stored templates are being rendered"). Fuel does not bound it
// acceptably: one instruction costs ~4 ms here, so 20,000 of them are ~80 s of work.
// Fix: give stored templates the settings (and any context list or map) as guarded
// objects: `Object::custom_cmp` that first calls the given-up check (returning, say,
// `Ordering::Less` once given up) and spends a per-rendering budget of items compared,
// and an `enumerate` that ends once given up (as `range`'s `Guarded` does), so a loop
// over a context list stops at its next round; or cap the items of each list or map of
// the settings handed to stored templates at `MAX_RANGE` and lower the fuel.
#[test]
fn comparing_big_context_values_stops_soon_after_the_deadline() {
    let r = renderer().with_stored_deadline(Duration::from_millis(100));
    let context = full_layers(serde_json::json!({}));
    let started = Instant::now();
    std::thread::scope(|s| {
        let r = &r;
        for op in ["a == b", "a is eq b", "a is ge b"] {
            let context = context.clone();
            s.spawn(move || {
                let source = comparing_source(op);
                if let Err(p) = r.render_stored("yealink", "mac.cfg", &source, context) {
                    refused_or_given_up(&p);
                }
            });
        }
    });
    assert!(
        threads_end(&r, Duration::from_secs(5)),
        "the given-up renderings still run {:?} after they started",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// Attacks the sandbox stops, or that stay bounded (these pass).
// ---------------------------------------------------------------------------------------

#[test]
fn comparing_a_value_with_itself_stays_quick() {
    // The same object compares equal at once (minijinja's `is_same_object`): `settings ==
    // settings` in a loop over a context list runs out of fuel quickly.
    let r = renderer();
    let source = comparing_source("settings == settings");
    let started = Instant::now();
    let out = r.render_stored(
        "yealink",
        "mac.cfg",
        &source,
        full_layers(serde_json::json!({})),
    );
    if let Err(p) = out {
        refused_or_given_up(&p);
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(threads_end(&r, Duration::from_secs(2)));
}

#[test]
fn joining_a_big_context_list_stops_soon_after_the_deadline() {
    // `join` goes through every item (uncapped count), but converts each with
    // `stored::text`, which looks at the flag: 21,843 empty texts joined give nothing to
    // cap, and the loop of joins stops within one item once given up.
    let r = renderer().with_stored_deadline(Duration::from_millis(100));
    let source = "{% for x in settings.c %}{% set y = settings.a | join %}{% endfor %}x";
    let started = Instant::now();
    if let Err(p) = r.render_stored(
        "yealink",
        "mac.cfg",
        source,
        full_layers(serde_json::json!("")),
    ) {
        refused_or_given_up(&p);
    }
    assert!(
        threads_end(&r, Duration::from_secs(3)),
        "the given-up rendering still runs {:?} after it started",
        started.elapsed()
    );
}

#[test]
fn settings_too_big_for_a_stored_template_are_refused_with_their_reason() {
    // Nested so that no list has more than 1,024 items, but 20,000 values in all.
    let r = renderer();
    let mut c = ctx();
    let row: Vec<serde_json::Value> = (0..20).map(|_| serde_json::json!({})).collect();
    c.settings
        .insert("a".into(), serde_json::json!(vec![row; 1000]));
    let p = r
        .render_stored("yealink", "mac.cfg", "{{ device.mac }}", c)
        .unwrap_err();
    assert!(p.message.contains("values"), "{p}");
    // Ordinary settings are fine.
    let mut c = ctx();
    c.settings
        .insert("codecs".into(), serde_json::json!(["g722", "pcmu", "pcma"]));
    assert!(
        r.render_stored("yealink", "mac.cfg", "{{ settings.codecs | join(',') }}", c)
            .is_ok()
    );
}
