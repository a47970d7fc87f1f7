//! Replays the fuzz corpus (`fuzz/corpus/<target>/`, grown and minimised by the runs), the
//! real inputs it was seeded from (`fuzz/seeds/<target>/`, kept whole: what phones, PBXs
//! and tests send) and the inputs of past findings (`fuzz/regressions/<target>/`) through
//! the targets' functions, so every test run checks what the fuzzing runs found and
//! covered. A target without a corpus or seeds fails: an empty directory would let this
//! pass without testing anything.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `dir`, sorted; none if it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_target_has_a_corpus_seeds_and_a_fuzz_target() {
    for (name, _) in provisor_fuzz::TARGETS {
        let corpus = fuzz_dir().join("corpus").join(name);
        assert!(
            !inputs(&corpus).is_empty(),
            "{} has no inputs: seed it and run fuzz/run-all",
            corpus.display()
        );
        let seeds = fuzz_dir().join("seeds").join(name);
        assert!(
            !inputs(&seeds).is_empty(),
            "{} has no inputs",
            seeds.display()
        );
        let target = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        assert!(target.is_file(), "{} is missing", target.display());
    }
}

#[test]
fn no_input_left_without_its_target() {
    for kind in ["corpus", "seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind)) else {
            continue;
        };
        for entry in entries {
            let entry = entry.expect("a readable directory entry");
            if !entry.path().is_dir() {
                continue;
            }
            let name = entry.file_name();
            let name = name.to_string_lossy();
            assert!(
                provisor_fuzz::TARGETS.iter().any(|(t, _)| *t == name),
                "fuzz/{kind}/{name} belongs to no target in provisor_fuzz::TARGETS"
            );
        }
    }
}

/// One test per target, so a failure names the target; each says which file broke it.
macro_rules! replay {
    ($($target:ident),* $(,)?) => {$(
        #[test]
        fn $target() {
            let mut files = inputs(&fuzz_dir().join("corpus").join(stringify!($target)));
            for kind in ["seeds", "regressions"] {
                files.extend(inputs(&fuzz_dir().join(kind).join(stringify!($target))));
            }
            assert!(!files.is_empty(), "no inputs for {}", stringify!($target));
            for file in files {
                let data = std::fs::read(&file).expect("a readable input");
                let run = std::panic::catch_unwind(|| provisor_fuzz::$target(&data));
                assert!(run.is_ok(), "{} fails on {}", stringify!($target), file.display());
            }
        }
    )*};
}

replay!(
    detect,
    mac,
    csv_import,
    threecx_import,
    template_upload,
    softphone,
    appws,
    sysclient,
    authorization,
);
