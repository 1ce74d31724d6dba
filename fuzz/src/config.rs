//! Run options as a user writes them: a `--config` file, a service's
//! tenants file, and the command line (each input line one argument), plus
//! the grammars of `--allow-host`, `--secret` and `--secret-host` values,
//! and the URLs a plugin asks for checked against the grants those lines
//! make.
//!
//! Input: text, read as all three.

use std::path::Path;
use std::str::FromStr;

use batchllm_host::cli::Args;
use batchllm_host::egress::{EgressPolicy, HostGrant, SecretHost, SecretSpec, is_loopback};
use batchllm_host::options::{settle, settle_text};
use batchllm_host::serve::tenants::Tenants;

/// Input: see the module docs.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        // The host reads config files with read_to_string: not UTF-8 is an
        // I/O error naming the file before any parser sees it.
        return;
    };
    // Options may name files the host reads whole (prices, schemas,
    // plugins); a device that never ends is the user's own choice, not a
    // parser's bug.
    if ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p)) {
        return;
    }

    if let Err(e) = settle_text(text, Path::new("run.toml")) {
        let message = e.to_string();
        assert!(message.contains("run.toml"), "a config error that does not name the file: {message}");
    }

    let cache = super::scratch().join("cache");
    let env = |var: &str| var.ends_with("_KEY").then(|| "sk-fuzz-0123456789abcdef".to_string());
    if let Err(e) = Tenants::parse(text, Path::new("tenants.toml"), &cache, &env) {
        let message = e.to_string();
        assert!(message.starts_with("tenants.toml"), "a tenants error that does not name the file: {message}");
    }

    let mut argv = vec!["batchllm-host".to_string()];
    argv.extend(text.lines().map(str::to_string));
    if let Ok(args) = Args::try_parse_args(&argv)
        && let Err(e) = settle(args.run, None)
    {
        let message = e.to_string();
        assert!(message.contains("--"), "a flag error that does not name the flag: {message}");
    }
    let mut grants = Vec::new();
    for line in text.lines() {
        grants.extend(HostGrant::from_str(line));
        grants.extend(HostGrant::parse_internal(line));
        let _ = SecretSpec::from_str(line);
        let _ = SecretHost::from_str(line);
    }
    for grant in grants.iter().filter(|g| !g.is_internal()) {
        // A grant prints as it parses back (messages and `--dry-run` show it).
        let shown = grant.to_string();
        let again = HostGrant::from_str(&shown);
        assert!(again.as_ref().is_ok_and(|g| g == grant), "{shown:?} parses back to {again:?}, not {grant:?}");
    }
    let policy = EgressPolicy::new(grants);
    for line in text.lines() {
        if let Ok(url) = reqwest::Url::parse(line) {
            let allowed = policy.check(&url).is_ok();
            let _ = is_loopback(&url);
            assert!(!allowed || policy.matching(&url).next().is_some(), "{url} allowed by no grant");
        }
    }
}
