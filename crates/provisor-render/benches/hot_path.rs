//! Micro-benchmarks of a phone fetch's own work (issue 9): detecting what a request asks
//! for (file name and User-Agent against the catalog), merging settings layers, and
//! rendering a built-in template. `cargo bench -p provisor-render`; the boot-storm harness
//! (`bench/run`) measures the whole server.

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use provisor_domain::catalog::Detected;
use provisor_domain::settings;
use provisor_render::{Context, Renderer, Vendors};
use serde_json::json;

fn detection(c: &mut Criterion) {
    let renderer = Renderer::new(Vendors::builtin().unwrap()).unwrap();
    let catalog = renderer.catalog();
    let ua = Some("Yealink SIP-T54W 96.86.0.100 00:15:65:aa:bb:cc");
    c.bench_function("detect a Yealink device file", |b| {
        b.iter(|| {
            matches!(
                black_box(catalog.detect(black_box("001565aabbcc.cfg"), ua)),
                Detected::Found(_)
            )
        })
    });
    c.bench_function("detect a Snom file without a User-Agent", |b| {
        b.iter(|| {
            matches!(
                black_box(catalog.detect(black_box("snomD785-000413AABBCC.htm"), None)),
                Detected::Found(_)
            )
        })
    });
    c.bench_function("detect an unknown file", |b| {
        b.iter(|| {
            matches!(
                black_box(catalog.detect(black_box("wp-login.php"), Some("curl/8.0"))),
                Detected::Found(_)
            )
        })
    });
}

fn merge(c: &mut Criterion) {
    // Seven layers (built-in → vendor → model → domain → category → user → device), each
    // with twenty keys, some nested.
    let layers: Vec<settings::Settings> = (0..7)
        .map(|l| {
            let mut m = serde_json::Map::new();
            for k in 0..20 {
                m.insert(format!("key{k}"), json!(format!("layer {l}")));
            }
            m.insert(
                "ntp".into(),
                json!({"server": format!("ntp{l}.example.com"), "interval": l}),
            );
            settings::layer(serde_json::Value::Object(m)).unwrap()
        })
        .collect();
    c.bench_function("merge seven settings layers", |b| {
        b.iter(|| black_box(settings::merge(black_box(&layers))).len())
    });
}

fn rendering(c: &mut Criterion) {
    let renderer = Renderer::new(Vendors::builtin().unwrap()).unwrap();
    for (vendor, model, template, lines) in [
        ("yealink", "T54W", "mac.cfg", 3),
        ("snom", "D785", "mac.xml", 6),
        ("grandstream", "GXP2170", "mac.xml", 6),
    ] {
        let context = Context::sample(vendor, model, lines);
        c.bench_function(
            &format!("render {vendor} {template} with {lines} lines"),
            |b| {
                b.iter(|| {
                    renderer
                        .render(vendor, template, black_box(context.clone()))
                        .unwrap()
                        .body
                        .len()
                })
            },
        );
    }
}

criterion_group!(benches, detection, merge, rendering);
criterion_main!(benches);
