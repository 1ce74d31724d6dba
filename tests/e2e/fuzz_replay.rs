//! The fuzz targets' harnesses (`fuzz/src/`, the functions `cargo fuzz`
//! runs) on the stable toolchain, in every test run: over each target's
//! checked-in seeds (`fuzz/seeds/TARGET`) and kept crashes
//! (`fuzz/regressions/TARGET`), then over random edits of those seeds (a
//! short, deterministic fuzz run without libFuzzer or nightly).

use std::path::{Path, PathBuf};

use proptest::prelude::*;

// The fuzz crate's harnesses are `pub` for its targets; here they are a private module.
#[allow(unreachable_pub)]
#[path = "../../fuzz/src/lib.rs"]
mod harness;

type Harness = fn(&[u8]);

/// Every target of `fuzz/Cargo.toml`, with its harness.
const TARGETS: [(&str, Harness); 8] = [
    ("checkpoint", harness::checkpoint::run),
    ("classify", harness::classify::run),
    ("config", harness::config::run),
    ("jobs_line", harness::jobs::run),
    ("record", harness::record::run),
    ("scrub", harness::scrub::run),
    ("tables", harness::tables::run),
    ("wire_headers", harness::wire::run),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn harness(target: &str) -> Harness {
    TARGETS.iter().find(|(t, _)| *t == target).map(|(_, h)| *h).unwrap_or_else(|| panic!("no target {target}"))
}

/// The seeds and kept crashes of `target`: (path under `fuzz/`, bytes).
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut inputs = Vec::new();
    for kind in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind).join(target)) else { continue };
        for entry in entries {
            let path = entry.expect("a fuzz input").path();
            let bytes = std::fs::read(&path).expect("read a fuzz input");
            inputs.push((format!("{kind}/{target}/{}", path.file_name().unwrap_or_default().to_string_lossy()), bytes));
        }
    }
    inputs.sort();
    inputs
}

/// Runs `target`'s harness on each of its seeds and kept crashes, naming
/// the input that fails.
fn replay(target: &str) {
    let run = harness(target);
    let inputs = inputs(target);
    assert!(inputs.len() >= 3, "{target}: only {} seeds under {}", inputs.len(), fuzz_dir().display());
    for (name, bytes) in inputs {
        if std::panic::catch_unwind(|| run(&bytes)).is_err() {
            panic!("the {target} harness fails on fuzz/{name}");
        }
    }
}

#[test]
fn every_fuzz_target_is_replayed() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let mut declared: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "batchllm-fuzz")
        .collect();
    declared.sort_unstable();
    let replayed: Vec<&str> = TARGETS.iter().map(|(t, _)| *t).collect();
    assert_eq!(declared, replayed, "fuzz/Cargo.toml's targets and the ones replayed here");
}

#[test]
fn checkpoint_inputs() {
    replay("checkpoint");
}

#[test]
fn classify_inputs() {
    replay("classify");
}

#[test]
fn config_inputs() {
    replay("config");
}

#[test]
fn jobs_line_inputs() {
    replay("jobs_line");
}

#[test]
fn record_inputs() {
    replay("record");
}

#[test]
fn scrub_inputs() {
    replay("scrub");
}

#[test]
fn tables_inputs() {
    replay("tables");
}

#[test]
fn wire_headers_inputs() {
    replay("wire_headers");
}

/// One random edit of a seed, as libFuzzer's mutators make them.
#[derive(Debug, Clone)]
enum Edit {
    Flip { at: usize, bit: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Remove { at: usize, len: usize },
    Duplicate { at: usize, len: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    // Bytes that matter to the formats: JSON punctuation, escapes,
    // newlines, digits, a multi-byte character cut anywhere.
    let interesting = prop::sample::select(vec![
        b"\"".to_vec(),
        b"\\".to_vec(),
        b"\\u".to_vec(),
        b"\n".to_vec(),
        b"\r\n".to_vec(),
        b"{".to_vec(),
        b"}".to_vec(),
        b"[".to_vec(),
        b"]".to_vec(),
        b":".to_vec(),
        b",".to_vec(),
        b"=".to_vec(),
        b"0".to_vec(),
        b"-1".to_vec(),
        b"1e999".to_vec(),
        b"18446744073709551616".to_vec(),
        "é".as_bytes().to_vec(),
        vec![0xE2, 0x82],
        vec![0xFF],
        vec![0],
    ]);
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Edit::Flip { at, bit }),
        (any::<usize>(), prop_oneof![interesting, prop::collection::vec(any::<u8>(), 1..8)])
            .prop_map(|(at, bytes)| Edit::Insert { at, bytes }),
        (any::<usize>(), 1usize..32).prop_map(|(at, len)| Edit::Remove { at, len }),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Edit::Duplicate { at, len }),
    ]
}

fn apply(mut data: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = data.len();
        match e {
            Edit::Flip { at, bit } if n > 0 => {
                if let Some(b) = data.get_mut(at % n) {
                    *b ^= 1 << bit;
                }
            }
            Edit::Flip { .. } => {}
            Edit::Insert { at, bytes } => {
                let at = at % (n + 1);
                data.splice(at..at, bytes.iter().copied());
            }
            Edit::Remove { at, len } => {
                let at = at % (n + 1);
                let end = at.saturating_add(*len).min(n);
                data.drain(at..end);
            }
            Edit::Duplicate { at, len } => {
                let at = at % (n + 1);
                let end = at.saturating_add(*len).min(n);
                let copy = data.get(at..end).map(<[u8]>::to_vec).unwrap_or_default();
                data.splice(end..end, copy);
            }
        }
    }
    data
}

proptest! {
    // 64 cases in the suite; PROPTEST_CASES=N for a longer run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random edits of every target's seeds through its harness. A failure
    /// prints the edited input: keep it as `fuzz/regressions/TARGET/NAME`
    /// (then the replay above runs it in every test run) and fix the code.
    #[test]
    fn edited_seeds_pass_their_harness(
        target in prop::sample::select(TARGETS.iter().map(|(t, _)| *t).collect::<Vec<_>>()),
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let inputs = inputs(target);
        let (_, seed) = pick.get(&inputs);
        let data = apply(seed.clone(), &edits);
        let run = harness(target);
        let outcome = std::panic::catch_unwind(|| run(&data));
        prop_assert!(outcome.is_ok(), "the {} harness fails on {:?}", target, String::from_utf8_lossy(&data));
    }
}
