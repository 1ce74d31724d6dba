//! `--help` against itself and against README's option table.

use std::collections::BTreeSet;

use super::*;

/// Every `--flag` word in `text`.
fn long_flags(text: &str) -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("--") {
        let tail = &rest[i + 2..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).unwrap_or(tail.len());
        if end > 0 && tail.as_bytes()[0].is_ascii_alphabetic() {
            flags.insert(format!("--{}", &tail[..end]));
        }
        rest = &tail[end..];
    }
    flags
}

/// The rows of README's option table: (first column, default column).
fn readme_rows() -> Vec<(String, String)> {
    let readme = include_str!("../../../README.md");
    let table = readme.split("| option | default | meaning |").nth(1).expect("README has the option table");
    table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            // `\|` is a `|` inside a cell.
            let row = l.replace("\\|", "\u{1}");
            let cells: Vec<String> =
                row.trim().trim_matches('|').split('|').map(|c| c.trim().replace('\u{1}', "|")).collect();
            (cells.first().cloned().unwrap_or_default(), cells.get(1).cloned().unwrap_or_default())
        })
        .collect()
}

/// The long flags `--help` documents (not `--help` and `--version` themselves).
fn documented_flags() -> BTreeSet<String> {
    command()
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| a.get_long())
        .filter(|l| !["help", "version"].contains(l))
        .map(|l| format!("--{l}"))
        .collect()
}

#[test]
fn help_renders_and_shows_each_flag_its_default_and_the_built_ins() {
    let mut cmd = command();
    cmd.build();
    cmd.clone().debug_assert();
    let help = cmd.render_long_help().to_string();
    for flag in documented_flags() {
        assert!(help.contains(&flag), "{flag} missing from --help");
    }
    for needle in ["[default: 8]", "[default: auth,quota_exhausted]", "[default: results.jsonl]", "[default: 0.1]"] {
        assert!(help.contains(needle), "{needle} missing from --help:\n{help}");
    }
    assert!(help.contains("Built-ins: openai ("), "{help}");
    assert!(help.contains(crate::options::INVOCATION_HEADING), "{help}");
}

#[test]
fn readme_lists_exactly_the_documented_flags() {
    let mut in_readme = BTreeSet::new();
    for (first, _) in readme_rows() {
        in_readme.extend(long_flags(&first));
    }
    let documented = documented_flags();
    let missing: Vec<_> = documented.difference(&in_readme).collect();
    let stale: Vec<_> = in_readme.difference(&documented).collect();
    assert!(missing.is_empty(), "flags in --help but not in README's option table: {missing:?}");
    assert!(stale.is_empty(), "flags in README's option table that --help does not know: {stale:?}");
}

/// README shows every option's real default: a row listing N flags has N
/// defaults (`1 / 60`).
#[test]
fn readme_shows_the_real_defaults() {
    let shown: std::collections::HashMap<String, String> = RunOptions::shown_defaults()
        .into_iter()
        .map(|(field, text)| (format!("--{}", field.replace('_', "-")), text))
        .collect();
    let mut checked = BTreeSet::new();
    for (first, defaults) in readme_rows() {
        // The flags in the order they appear in the cell.
        let mut flags = Vec::new();
        for part in first.split(" / ") {
            flags.extend(long_flags(part).into_iter().next());
        }
        let cells: Vec<&str> = defaults.split(" / ").map(|c| c.trim().trim_matches('`')).collect();
        if cells.len() != flags.len() {
            continue;
        }
        for (flag, cell) in flags.iter().zip(cells) {
            if let Some(default) = shown.get(flag) {
                assert_eq!(cell, default, "README's default for {flag}");
                checked.insert(flag.clone());
            }
        }
    }
    let unchecked: Vec<_> = shown.keys().filter(|f| !checked.contains(*f)).collect();
    assert!(unchecked.is_empty(), "README shows no default for {unchecked:?} (one value per flag, ` / ` apart)");
}

#[test]
fn flags_parse_into_both_groups() {
    let args =
        Args::try_parse_args(["batchllm-host", "jobs.jsonl", "-j", "4", "--overwrite", "-vv", "--preserve-order"])
            .expect("parses");
    assert_eq!(args.run.concurrency, Some(4));
    assert_eq!(args.run.preserve_order, Some(true));
    assert!(args.once.overwrite);
    assert_eq!(args.once.verbose, 2);
    let e = Args::try_parse_args(["batchllm-host", "j", "--progress-interval", "0"]).expect_err("range");
    assert!(e.to_string().contains("--progress-interval") && e.to_string().contains("from 0.001"), "{e}");
}
