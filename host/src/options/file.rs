//! The `--config` file: run options in TOML, under their long flag names.
//!
//! ```toml
//! plugin = "openai"
//! concurrency = 32
//! allow-host = ["api.openai.com"]
//! api-key-env = "OPENAI_API_KEY"
//! rpm = 500
//! fail-fast = ["auth", "quota_exhausted"]
//!
//! [plugin-config]
//! model = "gpt-4o-mini"
//! ```
//!
//! The file is read into the same [`RunOptions`] the flags fill, so a key
//! accepts exactly what its flag accepts and goes through the same checks.
//! A mistake names the file, the line and the key: an unknown key (with the
//! nearest known one), a switch that is a flag only, a value of the wrong
//! type. Nothing is silently ignored.

use std::path::{Path, PathBuf};

use clap::{Args as _, Command};

use super::defs::{Invocation, RunOptions};

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {snippet}: {message}", path.display())]
    Parse { path: PathBuf, line: usize, snippet: String, message: String },
    #[error("{}: unknown key `{key}`{}; keys are the long flag names", path.display(), hint(.nearest))]
    UnknownKey { path: PathBuf, key: String, nearest: Option<String> },
    #[error(
        "{}: `{key}` belongs to one invocation, so it is a flag only: pass --{key} on the command line",
        path.display()
    )]
    FlagOnly { path: PathBuf, key: String },
}

fn hint(nearest: &Option<String>) -> String {
    nearest.as_ref().map(|k| format!(" (did you mean `{k}`?)")).unwrap_or_default()
}

/// Reads and parses `path`.
pub(super) fn load(path: &Path) -> Result<RunOptions, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read { path: path.into(), source })?;
    parse(&text, path)
}

/// Parses TOML `text`; `path` is for messages.
pub(super) fn parse(text: &str, path: &Path) -> Result<RunOptions, FileError> {
    let parse_error = |e: toml::de::Error| {
        let mut at = e.span().map_or(0, |s| s.start).min(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        FileError::Parse {
            path: path.into(),
            line: text[..at].matches('\n').count() + 1,
            snippet: text[line_start..line_end].trim().to_string(),
            message: e.message().trim().to_string(),
        }
    };
    // The keys first, for messages serde cannot give (the nearest key, a
    // flag-only switch); then the values, with their line.
    let table: toml::Table = toml::from_str(text).map_err(parse_error)?;
    let known = long_names(RunOptions::augment_args(Command::new("config")));
    for key in table.keys() {
        if known.contains(key) {
            continue;
        }
        if long_names(Invocation::augment_args(Command::new("invocation"))).contains(key) {
            return Err(FileError::FlagOnly { path: path.into(), key: key.clone() });
        }
        let nearest =
            known.iter().min_by_key(|k| strsim::levenshtein(k, key)).filter(|k| strsim::levenshtein(k, key) <= 3);
        return Err(FileError::UnknownKey { path: path.into(), key: key.clone(), nearest: nearest.cloned() });
    }
    toml::from_str(text).map_err(parse_error)
}

/// The long names of a command's arguments.
fn long_names(cmd: Command) -> Vec<String> {
    cmd.get_arguments().filter_map(|a| a.get_long()).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FailureClass;
    use crate::run::AbortMode;

    fn parse(text: &str) -> Result<RunOptions, FileError> {
        super::parse(text, Path::new("run.toml"))
    }

    #[test]
    fn reads_every_kind_of_value() {
        let c = parse(
            r#"
            plugin = "openai"
            concurrency = 32
            allow-host = ["api.openai.com", "*.example.com:8443"]
            rpm = 500
            preserve-order = true
            fail-fast = ["auth", "quota-exhausted"]
            abort-mode = "cancel"
            secret = ["org=env:ORG_KEY"]
            secret-host = ["org=api.openai.com"]
            metrics-addr = "127.0.0.1:9464"
            [plugin-config]
            model = "gpt-4o-mini"
            temperature = 0.2
            "#,
        )
        .expect("valid");
        assert_eq!(c.plugin.as_deref(), Some("openai"));
        assert_eq!(c.concurrency, Some(32));
        assert_eq!(c.allow_host.len(), 2);
        assert_eq!(c.rpm, Some(500.0));
        assert_eq!(c.preserve_order, Some(true));
        assert_eq!(c.fail_fast.map(|l| l.0), Some(vec![FailureClass::Auth, FailureClass::QuotaExhausted]));
        assert_eq!(c.abort_mode, Some(AbortMode::Cancel));
        assert_eq!(c.secret.len(), 1);
        assert_eq!(c.secret_host.len(), 1);
        assert!(c.metrics_addr.is_some());
        assert!(c.plugin_config.contains(&("temperature".to_string(), serde_json::json!(0.2))));
    }

    #[test]
    fn unknown_keys_are_named_with_the_nearest_known_one() {
        let e = parse("concurency = 3").expect_err("typo").to_string();
        assert_eq!(e, "run.toml: unknown key `concurency` (did you mean `concurrency`?); keys are the long flag names");
        let e = parse("zzzzzzzzzzzz = 3").expect_err("unknown").to_string();
        assert!(!e.contains("did you mean"), "{e}");
    }

    #[test]
    fn flag_only_switches_are_explained() {
        for key in ["overwrite", "dry-run", "progress-interval", "quiet"] {
            let e = parse(&format!("{key} = true")).expect_err("flag only").to_string();
            assert!(e.contains(&format!("pass --{key} on the command line")), "{e}");
        }
    }

    #[test]
    fn bad_values_name_the_line_and_the_key() {
        let e = parse("plugin = \"mock\"\nconcurrency = \"many\"\n").expect_err("type").to_string();
        assert!(e.starts_with("run.toml:2: concurrency = \"many\": invalid type"), "{e}");
        let e = parse("fail-fast = [\"nope\"]").expect_err("bad class").to_string();
        assert!(e.contains("fail-fast = [\"nope\"]") && e.contains("unknown failure class"), "{e}");
        let e = parse("allow-host = [\"https://x.com/v1\"]").expect_err("bad grant").to_string();
        assert!(e.contains("give a host, not a URL"), "{e}");
        let e = parse("rpm = ").expect_err("syntax").to_string();
        assert!(e.starts_with("run.toml:1: rpm ="), "{e}");
        let e = parse("plugin = \"ü\"\nrpm = \"é\u{2028}\"").expect_err("type").to_string();
        assert!(e.starts_with("run.toml:2: rpm = "), "{e}");
    }

    proptest::proptest! {
        /// Whatever the file holds, reading it ends in options or an error
        /// naming the file: never a panic (the error's line is cut from the
        /// text at the parser's byte offset).
        #[test]
        fn any_text_is_read_or_refused(text in "(\\PC|\n|=|\"|\\[|\\]| |[a-z-]){0,80}") {
            if let Err(e) = parse(&text) {
                proptest::prop_assert!(e.to_string().starts_with("run.toml"), "{}", e);
            }
        }

        /// Any key with a value of any TOML type, on any line: settled
        /// options, or an error naming the file and the key (and the line,
        /// for a value of the wrong type).
        #[test]
        fn any_value_of_any_key_is_settled_or_refused_by_name(
            key in proptest::sample::select(long_names(RunOptions::augment_args(Command::new("config")))),
            value in proptest::sample::select(vec![
                "1", "-1", "0", "1.5", "1e300", "nan", "-inf", "\"x\"", "\"\"", "true", "[]", "[1, \"a\"]", "{}",
                "{ a = 1 }", "1979-05-27T07:32:00Z", "\"api.example.com\"", "[\"auth\", \"nope\"]",
                "\"k=env:X\"", "[\"*.example.com:99999\"]", "\"mock\"", "9223372036854775807",
            ]),
            line in 1usize..4,
        ) {
            let text = format!("{}{key} = {value}\n", "# a comment\n".repeat(line - 1));
            if let Err(e) = crate::options::settle_text(&text, Path::new("run.toml")) {
                let e = e.to_string();
                proptest::prop_assert!(e.contains("run.toml") && e.contains(key.as_str()), "{}", e);
                if e.starts_with("run.toml:") {
                    proptest::prop_assert!(e.starts_with(&format!("run.toml:{line}: ")), "{}", e);
                }
            }
        }
    }
}
