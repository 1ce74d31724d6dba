//! The host's modules form layers without cycles, and stay that way.
//!
//! Read from the source: every `crate::a::b` a module's code names (test
//! modules, `tests.rs` files and comments left out) is an arrow from its module to `a` (and,
//! inside `run`, to `run::b`). The arrows must not form a cycle, and the
//! lower layers must not reach up: the vocabulary (`model`) depends on
//! nothing of ours; the files and the network (`input`, `results`,
//! `egress`) only on the vocabulary; the sandbox not on the engine; the
//! engine not on the front ends. Inside the engine, the pure decisions
//! (`run::policy`) and the gates (`run::gate`) know nothing of the workers
//! (`run::engine`), and neither does observability (`run::observe`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read the source folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && path.file_name().is_some_and(|n| n != "tests.rs") {
            out.push(path);
        }
    }
}

/// The module a file belongs to, two levels deep inside `run`: `run/engine/worker.rs` is `run::engine`.
fn module_of(relative: &Path) -> String {
    let parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .filter(|p| p != "mod" && p != "lib" && p != "main")
        .collect();
    match parts.as_slice() {
        [run, sub, ..] if run == "run" && !["mod", "dry"].contains(&sub.as_str()) => format!("run::{sub}"),
        [first, ..] => first.clone(),
        [] => "crate".into(),
    }
}

/// The code of a file without its test module and comments.
fn code(text: &str) -> String {
    let cut = text.find("#[cfg(test)]").unwrap_or(text.len());
    text[..cut].lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// Module -> modules it names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&root).expect("under src");
        let from = module_of(relative);
        let text = code(&std::fs::read_to_string(&file).expect("read a source file"));
        let deps = graph.entry(from.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let path: String =
                text[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect();
            let mut segments = path.split("::").filter(|s| !s.is_empty());
            let Some(first) = segments.next() else { continue };
            let to = match (first, segments.next()) {
                ("run", Some(sub)) if sub.chars().all(|c| c.is_ascii_lowercase() || c == '_') => {
                    if ["policy", "gate", "engine", "observe"].contains(&sub) {
                        format!("run::{sub}")
                    } else {
                        "run".into()
                    }
                }
                (first, _) => first.to_string(),
            };
            if to != from {
                deps.insert(to);
            }
        }
    }
    graph
}

fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut found = stack[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, stack, done) {
                return Some(found);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_form_layers_without_cycles() {
    let graph = graph();
    assert!(graph.contains_key("model") && graph.contains_key("run::engine"), "the scan found the modules: {graph:?}");
    if let Some(found) = cycle(&graph) {
        panic!("a cycle between modules: {}", found.join(" -> "));
    }
    let may_use = |module: &str, allowed: &[&str]| {
        let deps = graph.get(module).cloned().unwrap_or_default();
        let extra: Vec<_> = deps.iter().filter(|d| !allowed.contains(&d.as_str())).collect();
        assert!(extra.is_empty(), "{module} reaches {extra:?}; it may use only {allowed:?}");
    };
    may_use("model", &[]);
    for low in ["input", "results", "egress", "cost", "schema"] {
        may_use(low, &["model"]);
    }
    may_use("run::policy", &["model"]);
    may_use("run::gate", &["model", "run::policy"]);
    may_use("run::observe", &["model", "run::policy", "run::gate", "egress", "results"]);
    for engine_or_below in ["sandbox", "run", "run::engine", "run::policy", "run::gate", "run::observe"] {
        let deps = graph.get(engine_or_below).cloned().unwrap_or_default();
        for front in ["options", "cli", "serve", "cluster", "check", "scaffold"] {
            assert!(!deps.contains(front), "{engine_or_below} reaches up into {front}");
        }
    }
    let sandbox = graph.get("sandbox").cloned().unwrap_or_default();
    assert!(!sandbox.iter().any(|d| d.starts_with("run")), "the sandbox reaches into the engine: {sandbox:?}");
}
