//! Secrets (API keys) that plugins may *use* but never *see*.
//!
//! A plugin writes the placeholder `{{secret:NAME}}` into a header value; the
//! host substitutes the value on the way out, only for requests to hosts the
//! secret is granted for, and scrubs the value from every response before the
//! plugin reads it. Values come from the host's environment or a file the user
//! names; the plugin's own environment stays empty.
//!
//! Where a secret may go:
//! - with `--secret-host NAME=HOST[:PORT]`, only to those hosts (still also
//!   granted to the plugin), so a plugin granted both a provider and, say, a
//!   logging endpoint cannot put the provider's key into a request to the
//!   logging endpoint;
//! - without, to every host granted to the plugin *by name*: a wildcard
//!   grant (`*.amazonaws.com`) covers hosts anyone can own, so a secret goes
//!   there only when a `--secret-host` entry says so;
//! - never in clear text (plain http) across a network: only to this
//!   machine (`localhost`, loopback addresses), or where a `--secret-host`
//!   entry names `http://` itself.
//!
//! Placeholders are substituted in header values only: one in a URL, a
//! header name or a body goes out as the literal placeholder text, which
//! carries nothing secret.
//!
//! Scrubbing must never change data that is not the secret. A value shorter
//! than [`MIN_SCRUBBABLE_LEN`] characters or made of fewer than
//! [`MIN_DISTINCT_CHARS`] distinct characters (`EMPTY`, `ollama`, `none`,
//! `k`, `aaaaaaaa`: what local servers accept) would match ordinary text, so
//! it is not scrubbed, and the run says so at start. In a JSON body only
//! occurrences inside string literals are replaced, so the body stays valid
//! JSON; a secret appearing outside any string (as a number, say) withholds
//! the body instead.

use std::fmt;
use std::str::FromStr;

use super::policy::{Denial, EgressPolicy, GrantParseError, HostGrant, is_loopback};

/// Shortest secret value scrubbed from answers.
pub(super) const MIN_SCRUBBABLE_LEN: usize = 8;

/// Fewest distinct characters a scrubbed secret value has.
pub(super) const MIN_DISTINCT_CHARS: usize = 4;

/// Whether `value` is distinctive enough to be replaced wherever it appears
/// without rewriting unrelated text.
pub(super) fn is_scrubbable(value: &str) -> bool {
    let distinct: std::collections::BTreeSet<char> = value.chars().collect();
    value.chars().count() >= MIN_SCRUBBABLE_LEN && distinct.len() >= MIN_DISTINCT_CHARS
}

const PREFIX: &str = "{{secret:";
const SUFFIX: &str = "}}";

/// Where a secret's value comes from, as given on the command line.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretSpec {
    /// The name plugins refer to, e.g. `api-key`.
    pub name: String,
    /// The source of the value.
    pub source: SecretSource,
}

/// The source of a secret's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable of the host process.
    Env(String),
    /// A file whose contents (trailing newline trimmed) are the value.
    File(std::path::PathBuf),
}

impl fmt::Debug for SecretSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretSpec({}={:?})", self.name, self.source)
    }
}

/// Errors reading or parsing secrets.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("invalid --secret `{0}`: expected NAME=env:VAR or NAME=file:PATH")]
    Syntax(String),
    #[error("secret `{name}`: environment variable `{var}` is not set (or not UTF-8)")]
    MissingEnv { name: String, var: String },
    #[error("secret `{name}`: cannot read `{path}`: {source}")]
    File { name: String, path: String, source: std::io::Error },
    #[error("secret `{0}` is empty")]
    Empty(String),
    #[error("invalid --secret-host `{0}`: expected NAME=HOST[:PORT]")]
    HostSyntax(String),
    #[error(transparent)]
    Grant(#[from] GrantParseError),
    #[error("--secret-host names secret `{0}`, which is not configured (add --secret {0}=env:VAR)")]
    UnknownSecret(String),
}

/// `--secret-host NAME=HOST[:PORT]`: one host a secret may be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretHost {
    /// The secret's name.
    pub name: String,
    /// A destination it may go to (same grammar as `--allow-host`).
    pub grant: HostGrant,
}

impl FromStr for SecretHost {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, host) = s.split_once('=').ok_or_else(|| SecretError::HostSyntax(s.to_string()))?;
        if name.is_empty() || host.is_empty() {
            return Err(SecretError::HostSyntax(s.to_string()));
        }
        Ok(SecretHost { name: name.to_string(), grant: host.parse()? })
    }
}

impl FromStr for SecretSpec {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || SecretError::Syntax(s.to_string());
        let (name, source) = s.split_once('=').ok_or_else(syntax)?;
        let valid_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_name {
            return Err(syntax());
        }
        let source = if let Some(var) = source.strip_prefix("env:") {
            SecretSource::Env(var.to_string())
        } else if let Some(path) = source.strip_prefix("file:") {
            SecretSource::File(path.into())
        } else {
            return Err(syntax());
        };
        Ok(SecretSpec { name: name.to_string(), source })
    }
}

/// A loaded secret value. Its `Debug` never prints the value.
#[derive(Clone)]
struct Secret {
    name: String,
    value: String,
    /// Hosts this secret is restricted to; `None` = all the plugin's grants.
    hosts: Option<EgressPolicy>,
    /// A searcher for `value` when it is scrubbed ([`is_scrubbable`]):
    /// every answer is searched, so the searcher is built once.
    finder: Option<memchr::memmem::Finder<'static>>,
}

impl Secret {
    fn new(name: String, value: String, hosts: Option<EgressPolicy>) -> Self {
        let finder = is_scrubbable(&value).then(|| memchr::memmem::Finder::new(value.as_bytes()).into_owned());
        Secret { name, value, hosts, finder }
    }

    /// Where the (scrubbed) value first occurs in `haystack`.
    fn find_in(&self, haystack: &[u8]) -> Option<usize> {
        self.finder.as_ref().and_then(|f| f.find(haystack))
    }
}

/// The secrets of one run, with the policy deciding where each may go.
#[derive(Clone, Default)]
pub struct Secrets {
    secrets: Vec<Secret>,
    /// The plugin's grants: no secret goes anywhere else.
    policy: EgressPolicy,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.secrets.iter().map(|s| s.name.as_str()).collect();
        f.debug_struct("Secrets").field("names", &names).finish()
    }
}

impl Secrets {
    /// Loads every spec from the environment or files.
    pub fn load(specs: &[SecretSpec], policy: EgressPolicy) -> Result<Self, SecretError> {
        let mut secrets = Vec::with_capacity(specs.len());
        for spec in specs {
            let value = match &spec.source {
                SecretSource::Env(var) => std::env::var(var)
                    .map_err(|_| SecretError::MissingEnv { name: spec.name.clone(), var: var.clone() })?,
                SecretSource::File(path) => std::fs::read_to_string(path)
                    .map_err(|source| SecretError::File {
                        name: spec.name.clone(),
                        path: path.display().to_string(),
                        source,
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            };
            if value.is_empty() {
                return Err(SecretError::Empty(spec.name.clone()));
            }
            warn_if_unscrubbable(&spec.name, &value);
            secrets.push(Secret::new(spec.name.clone(), value, None));
        }
        Ok(Secrets { secrets, policy })
    }

    /// Restricts secrets to the hosts given with `--secret-host`; a secret
    /// with no entry keeps the default (every host granted to the plugin).
    pub fn restrict(&mut self, hosts: &[SecretHost]) -> Result<(), SecretError> {
        for entry in hosts {
            let secret = self
                .secrets
                .iter_mut()
                .find(|s| s.name == entry.name)
                .ok_or_else(|| SecretError::UnknownSecret(entry.name.clone()))?;
            let mut grants = secret.hosts.take().map(|p| p.grants().to_vec()).unwrap_or_default();
            grants.push(entry.grant.clone());
            secret.hosts = Some(EgressPolicy::new(grants));
        }
        Ok(())
    }

    /// A set holding literal values, for tests and the bundled mock provider.
    pub fn from_values(values: Vec<(String, String)>, policy: EgressPolicy) -> Self {
        let secrets = values.into_iter().map(|(name, value)| Secret::new(name, value, None)).collect();
        Secrets { secrets, policy }
    }

    /// Adds (or replaces) a secret with a literal value, granted for every
    /// host the plugin is granted.
    pub fn insert(&mut self, name: String, value: String) {
        warn_if_unscrubbable(&name, &value);
        self.secrets.retain(|s| s.name != name);
        self.secrets.push(Secret::new(name, value, None));
    }

    /// A short digest of every secret's name and value: what tells two API
    /// keys apart (two quotas) without revealing either, e.g. as the name
    /// of a limit shared by several hosts.
    pub fn fingerprint(&self) -> String {
        let mut pairs: Vec<(&str, &str)> = self.secrets.iter().map(|s| (s.name.as_str(), s.value.as_str())).collect();
        pairs.sort_unstable();
        let mut bytes = Vec::new();
        for (name, value) in pairs {
            bytes.extend_from_slice(name.as_bytes());
            bytes.push(0);
            bytes.extend_from_slice(value.as_bytes());
            bytes.push(0);
        }
        crate::model::short_digest(&bytes)
    }

    /// Whether any secrets are configured.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Replaces every `{{secret:NAME}}` in a header value bound for `url`,
    /// refusing when the secret may not go there ([`Secrets::may_send`]).
    pub fn substitute(&self, value: &str, url: &reqwest::Url) -> Result<String, Denial> {
        if !value.contains(PREFIX) {
            return Ok(value.to_string());
        }
        let mut out = String::with_capacity(value.len() + 64);
        let mut rest = value;
        while let Some(start) = rest.find(PREFIX) {
            let (before, from) = rest.split_at(start);
            out.push_str(before);
            let after = &from[PREFIX.len()..];
            let Some(end) = after.find(SUFFIX) else {
                out.push_str(from);
                return Ok(out);
            };
            let (name, tail) = after.split_at(end);
            let secret = self
                .secrets
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| Denial::UnknownSecret(printable_name(name)))?;
            self.may_send(secret, url)?;
            out.push_str(&secret.value);
            rest = &tail[SUFFIX.len()..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Whether `secret` may go to `url`:
    /// - the destination is granted to the plugin;
    /// - it is one of the secret's `--secret-host` entries, or, for a secret
    ///   without any, granted to the plugin by a grant that is not a
    ///   wildcard (`*.amazonaws.com` covers hosts anyone can own);
    /// - plain http only to this machine, or where a `--secret-host` entry
    ///   names `http://` itself: a key in clear text can be read on the way.
    fn may_send(&self, secret: &Secret, url: &reqwest::Url) -> Result<(), Denial> {
        // Checked for every request carrying a secret: the names in a
        // denial are only spelt out when there is one.
        let name = || secret.name.clone();
        let host = || authority(url);
        if self.policy.check(url).is_err() {
            return Err(Denial::SecretNotGranted { name: name(), host: host() });
        }
        match &secret.hosts {
            Some(hosts) if hosts.matching(url).next().is_none() => {
                return Err(Denial::SecretNotGranted { name: name(), host: host() });
            }
            Some(_) => {}
            None => {
                if !self.policy.matching(url).any(|g| !g.is_wildcard()) {
                    let wildcard = self.policy.matching(url).next().map(ToString::to_string).unwrap_or_default();
                    return Err(Denial::SecretOnlyWildcard { name: name(), host: host(), wildcard });
                }
            }
        }
        let plain_http_allowed = || secret.hosts.as_ref().is_some_and(|h| h.matching(url).any(|g| g.is_plain_http()));
        if url.scheme() == "http" && !is_loopback(url) && !plain_http_allowed() {
            return Err(Denial::PlaintextSecret { name: name(), host: host() });
        }
        Ok(())
    }

    /// Whether some secret may be sent to `url` (so an answer from there
    /// could carry one back).
    pub fn any_may_go_to(&self, url: &reqwest::Url) -> bool {
        self.secrets.iter().any(|s| self.may_send(s, url).is_ok())
    }

    /// Replaces every occurrence of a secret value in `text` with a marker, so
    /// a value echoed by a server (or an error message) never reaches a plugin
    /// or a log.
    pub fn scrub(&self, text: &str) -> String {
        self.scrub_owned(text.to_string())
    }

    /// [`Secrets::scrub`] of a string the caller owns: unchanged (and not
    /// copied) when it holds no secret, the usual case.
    pub fn scrub_owned(&self, mut text: String) -> String {
        for s in self.scrubbed() {
            if s.find_in(text.as_bytes()).is_some() {
                text = text.replace(&s.value, &marker(&s.name));
            }
        }
        text
    }

    fn scrubbed(&self) -> impl Iterator<Item = &Secret> {
        self.secrets.iter().filter(|s| s.finder.is_some())
    }

    /// Like [`Secrets::scrub`], for raw bytes (response bodies). A JSON body
    /// stays valid JSON: only occurrences inside string literals are
    /// replaced, and a body with one elsewhere is withheld.
    pub fn scrub_bytes(&self, body: Vec<u8>) -> Vec<u8> {
        let contains_any = self.scrubbed().any(|s| s.find_in(&body).is_some());
        if !contains_any {
            return body;
        }
        if looks_like_json(&body) {
            return match self.scrub_json(&body) {
                // A value spanning a string's end (it holds a `"`) is
                // replaced from inside one string into the next: the result
                // is checked, and withheld rather than broken.
                Some(scrubbed) if serde_json::from_slice::<serde::de::IgnoredAny>(&scrubbed).is_ok() => scrubbed,
                _ => b"[response withheld: a secret appeared outside a JSON string]".to_vec(),
            };
        }
        match String::from_utf8(body) {
            Ok(text) => self.scrub(&text).into_bytes(),
            // A non-UTF-8 body carrying a secret: withhold it entirely.
            Err(_) => b"[response withheld: it contained a secret]".to_vec(),
        }
    }

    /// Replaces secrets inside the string literals of a JSON text; `None`
    /// when one appears outside a string.
    fn scrub_json(&self, body: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(body.len());
        let (mut in_string, mut i) = (false, 0);
        // Inside an escape: the letter after a backslash, then the four hex
        // digits of a `\u` escape. A value starting there is not in the
        // decoded text, and cutting the escape in two would break the JSON.
        let (mut letter, mut hex) = (false, 0u8);
        'bytes: while i < body.len() {
            for s in self.scrubbed().filter(|_| !letter && hex == 0) {
                let value = s.value.as_bytes();
                if body.get(i..i + value.len()) == Some(value) {
                    if !in_string {
                        return None;
                    }
                    out.extend_from_slice(marker(&s.name).as_bytes());
                    i += value.len();
                    continue 'bytes;
                }
            }
            let b = body[i];
            if letter {
                letter = false;
                hex = if b == b'u' { 4 } else { 0 };
            } else if hex > 0 {
                hex -= 1;
            } else if in_string && b == b'\\' {
                letter = true;
            } else if b == b'"' {
                in_string = !in_string;
            }
            out.push(b);
            i += 1;
        }
        Some(out)
    }
}

fn marker(name: &str) -> String {
    format!("[secret:{name}]")
}

/// A body that is JSON by its first non-blank byte (and parses as such).
fn looks_like_json(body: &[u8]) -> bool {
    matches!(body.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'['))
        && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

fn warn_if_unscrubbable(name: &str, value: &str) {
    if !is_scrubbable(value) {
        tracing::warn!(
            secret = name,
            "the secret's value is too short or too plain to scrub from answers without corrupting them \
             (fewer than {MIN_SCRUBBABLE_LEN} characters or {MIN_DISTINCT_CHARS} distinct ones): it is still \
             sent only where it may go, but a server that echoes it can show it to the plugin"
        );
    }
}

/// `host:port` of a URL, for messages.
fn authority(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// A name the plugin wrote, made safe to print: a real secret name is
/// `[A-Za-z0-9_-]`, anything else (a newline forging a log line, a terminal
/// escape) is escaped, and the whole is cut short.
fn printable_name(name: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = name.chars().flat_map(char::escape_default).take(MAX + 1).collect();
    if out.chars().count() > MAX {
        out = out.chars().take(MAX).collect();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secrets() -> Secrets {
        let policy = EgressPolicy::new(vec!["api.example.com".parse().expect("grant")]);
        Secrets::from_values(vec![("api-key".into(), "sk-12345678".into())], policy)
    }

    #[test]
    fn parses_specs() {
        let s: SecretSpec = "api-key=env:OPENAI_API_KEY".parse().expect("valid");
        assert_eq!(s.source, SecretSource::Env("OPENAI_API_KEY".into()));
        let s: SecretSpec = "k=file:/run/key".parse().expect("valid");
        assert_eq!(s.source, SecretSource::File("/run/key".into()));
        for bad in ["k", "=env:X", "k=X", "bad name=env:X"] {
            assert!(bad.parse::<SecretSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn substitutes_only_for_granted_hosts() {
        let s = secrets();
        let good: reqwest::Url = "https://api.example.com/v1".parse().expect("url");
        let evil: reqwest::Url = "https://evil.example.net/".parse().expect("url");
        assert_eq!(s.substitute("Bearer {{secret:api-key}}", &good).expect("ok"), "Bearer sk-12345678");
        assert_eq!(s.substitute("plain", &evil).expect("ok"), "plain");
        assert!(matches!(s.substitute("Bearer {{secret:api-key}}", &evil), Err(Denial::SecretNotGranted { .. })));
        assert!(matches!(s.substitute("{{secret:other}}", &good), Err(Denial::UnknownSecret(_))));
    }

    #[test]
    fn a_restricted_secret_goes_only_to_its_hosts() {
        let policy = EgressPolicy::new(vec![
            "api.example.com".parse().expect("grant"),
            "logs.example.com".parse().expect("grant"),
        ]);
        let mut s = Secrets::from_values(
            vec![("api-key".into(), "sk-12345678".into()), ("other".into(), "o-1".into())],
            policy,
        );
        s.restrict(&["api-key=api.example.com".parse().expect("valid")]).expect("known secret");
        let api: reqwest::Url = "https://api.example.com/v1".parse().expect("url");
        let logs: reqwest::Url = "https://logs.example.com/".parse().expect("url");
        assert_eq!(s.substitute("Bearer {{secret:api-key}}", &api).expect("granted"), "Bearer sk-12345678");
        let err = s.substitute("Bearer {{secret:api-key}}", &logs).expect_err("not this secret's host");
        assert_eq!(err.to_string(), "secret `api-key` may not be sent to `logs.example.com:443`");
        // Unrestricted secrets keep the default: every granted host.
        assert_eq!(s.substitute("{{secret:other}}", &logs).expect("default"), "o-1");
        // A secret-host grant never widens the plugin's grants.
        s.restrict(&["other=evil.example.net".parse().expect("valid")]).expect("known");
        let evil: reqwest::Url = "https://evil.example.net/".parse().expect("url");
        assert!(s.substitute("{{secret:other}}", &evil).is_err());
        assert!(matches!(s.restrict(&["nope=x.com".parse().expect("valid")]), Err(SecretError::UnknownSecret(_))));
    }

    #[test]
    fn secret_host_syntax() {
        let h: SecretHost = "api-key=*.example.com:8443".parse().expect("valid");
        assert_eq!((h.name.as_str(), h.grant.to_string().as_str()), ("api-key", "*.example.com:8443"));
        let h: SecretHost = "api-key=http://vllm.lan:8000".parse().expect("plain http named");
        assert!(h.grant.is_plain_http());
        for bad in ["api-key", "=x.com", "k=", "k=https://x.com/v1"] {
            assert!(bad.parse::<SecretHost>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_wildcard_grant_alone_gets_no_secret() {
        let policy = EgressPolicy::new(vec![
            "*.amazonaws.com".parse().expect("grant"),
            "bedrock.us-east-1.amazonaws.com".parse().expect("grant"),
        ]);
        let mut s = Secrets::from_values(vec![("k".into(), "v-1".into()), ("w".into(), "w-1".into())], policy);
        let named: reqwest::Url = "https://bedrock.us-east-1.amazonaws.com/x".parse().expect("url");
        let other: reqwest::Url = "https://attacker-bucket.amazonaws.com/".parse().expect("url");
        assert_eq!(s.substitute("{{secret:k}}", &named).expect("granted by name"), "v-1");
        let err = s.substitute("{{secret:k}}", &other).expect_err("wildcard only");
        assert!(matches!(err, Denial::SecretOnlyWildcard { .. }), "{err}");
        assert!(err.to_string().contains("--secret-host k=HOST"), "{err}");
        // A --secret-host wildcard is the user's explicit decision.
        s.restrict(&["w=*.amazonaws.com".parse().expect("valid")]).expect("known");
        assert_eq!(s.substitute("{{secret:w}}", &other).expect("explicit"), "w-1");
        assert!(s.any_may_go_to(&other) && s.any_may_go_to(&named));
    }

    #[test]
    fn secrets_go_over_plain_http_only_to_this_machine_unless_named() {
        let policy = EgressPolicy::new(vec![
            "vllm.lan:8000".parse().expect("grant"),
            "127.0.0.1:8000".parse().expect("grant"),
            "localhost:9000".parse().expect("grant"),
            "http://plain.example".parse().expect("grant"),
        ]);
        let mut s = Secrets::from_values(vec![("k".into(), "v-1".into()), ("p".into(), "p-1".into())], policy);
        for url in ["http://127.0.0.1:8000/", "http://localhost:9000/", "https://vllm.lan:8000/"] {
            let url: reqwest::Url = url.parse().expect("url");
            assert_eq!(s.substitute("{{secret:k}}", &url).expect("allowed"), "v-1", "{url}");
        }
        for url in ["http://vllm.lan:8000/", "http://plain.example/"] {
            let url: reqwest::Url = url.parse().expect("url");
            let err = s.substitute("{{secret:k}}", &url).expect_err("clear text");
            assert!(matches!(err, Denial::PlaintextSecret { .. }), "{url}: {err}");
            assert!(err.to_string().contains("--secret-host k=http://"), "{err}");
        }
        // Naming the host without the scheme is not saying "in clear text".
        s.restrict(&["k=vllm.lan:8000".parse().expect("valid"), "p=http://vllm.lan:8000".parse().expect("valid")])
            .expect("known");
        let lan: reqwest::Url = "http://vllm.lan:8000/v1".parse().expect("url");
        assert!(matches!(s.substitute("{{secret:k}}", &lan), Err(Denial::PlaintextSecret { .. })));
        assert_eq!(s.substitute("{{secret:p}}", &lan).expect("named with http://"), "p-1");
    }

    #[test]
    fn an_unknown_secret_name_is_printed_escaped() {
        let s = secrets();
        let url: reqwest::Url = "https://api.example.com/".parse().expect("url");
        let forged = "x\n2025-01-01T00:00:00Z  INFO fake line\r\u{1b}[2J";
        let err = s.substitute(&format!("{{{{secret:{forged}}}}}"), &url).expect_err("unknown");
        let text = err.to_string();
        assert!(!text.chars().any(char::is_control), "{text:?}");
        let long = "n".repeat(1000);
        let err = s.substitute(&format!("{{{{secret:{long}}}}}"), &url).expect_err("unknown");
        assert!(err.to_string().len() < 300, "{err}");
    }

    fn with_value(value: &str) -> Secrets {
        Secrets::from_values(vec![("api-key".into(), value.into())], EgressPolicy::new(vec![]))
    }

    #[test]
    fn short_or_plain_values_are_never_scrubbed_so_answers_stay_intact() {
        for value in ["k", "EMPTY", "ollama", "none", "aaaaaaaaaaaa", "abababab"] {
            let s = with_value(value);
            let body =
                br#"{"usage":{"prompt_tokens":9},"content":"LLMock says none of it","name":"cachedContents/mock-1"}"#;
            assert_eq!(s.scrub_bytes(body.to_vec()), body.to_vec(), "{value}");
            assert_eq!(s.scrub("prompt_tokens kitchen"), "prompt_tokens kitchen", "{value}");
        }
        assert!(is_scrubbable("sk-12345") && !is_scrubbable("sk-1234") && !is_scrubbable("11111111"));
    }

    #[test]
    fn a_json_body_stays_valid_json() {
        let s = with_value("sk-live-0123456789");
        let body = br#"{"echo":"key=sk-live-0123456789","escaped":"a\"sk-live-0123456789\"b"}"#.to_vec();
        let out = s.scrub_bytes(body);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("still JSON");
        assert_eq!(v["echo"], "key=[secret:api-key]");
        assert_eq!(v["escaped"], "a\"[secret:api-key]\"b");
        // A digits-only key showing up as a number cannot be replaced
        // without breaking the body: the body is withheld.
        let digits = with_value("9876543210");
        let out = digits.scrub_bytes(br#"{"n":9876543210}"#.to_vec());
        assert!(String::from_utf8_lossy(&out).starts_with("[response withheld"), "{out:?}");
    }

    /// A value starting with an escape's letter (`n`, `t`, `u`, ...) right
    /// after a backslash is not in the decoded text; replacing it cut the
    /// escape in two (`"\[secret:api-key]"`) and broke the JSON.
    #[test]
    fn a_value_after_a_backslash_is_part_of_an_escape_and_left_alone() {
        let s = with_value("nabcdefgh");
        let body = br#"{"a":"x\nabcdefgh","b":"nabcdefgh"}"#.to_vec();
        let out = s.scrub_bytes(body);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("still JSON");
        assert_eq!(v["a"], "x\nabcdefgh", "an escaped newline, then text that is not the secret");
        assert_eq!(v["b"], "[secret:api-key]");
    }

    /// A value holding a quote can run from inside a string to outside
    /// it; replacing it left an unterminated string (`["[secret:api-key]]`),
    /// so the body is withheld.
    #[test]
    fn a_value_running_out_of_a_string_withholds_the_body() {
        let s = with_value("key-1\",2");
        let out = s.scrub_bytes(br#"["key-1",2]"#.to_vec());
        assert!(out.starts_with(b"[response withheld"), "{}", String::from_utf8_lossy(&out));
        // Across two whole strings the result is still JSON, and kept.
        let s = with_value("k1\",\"k2-xyz");
        let out = s.scrub_bytes(br#"["k1","k2-xyz"]"#.to_vec());
        assert_eq!(out, br#"["[secret:api-key]"]"#.to_vec());
    }

    /// Inside a `\u` escape too: the value `1fABCDEF` is not in the text
    /// `"\u001fABCDEF12"` (a control character, then `ABCDEF12`).
    #[test]
    fn a_value_inside_a_unicode_escape_is_left_alone() {
        let s = with_value("1fABCDEF");
        let body = br#"{"a":"\u001fABCDEF12"}"#.to_vec();
        assert_eq!(s.scrub_bytes(body.clone()), body);
    }

    /// A realistic key (letters, digits, `-_.`), echoed anywhere in any
    /// JSON strings and keys, is gone from the decoded body, which stays
    /// valid JSON; a body without it is never touched.
    fn json_echoing(value: String) -> impl Strategy<Value = serde_json::Value> {
        let text = (".{0,4}", any::<bool>(), ".{0,4}")
            .prop_map(move |(a, echo, b)| if echo { format!("{a}{value}{b}") } else { format!("{a}{b}") });
        let leaf = prop_oneof![
            text.clone().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
        ];
        leaf.prop_recursive(3, 16, 3, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(serde_json::Value::from),
                prop::collection::vec((text.clone(), inner), 0..3)
                    .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| {
                out.push(k.clone());
                strings(x, out);
            }),
            _ => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn a_body_without_the_value_is_never_changed(
            value in "\\PC{1,16}",
            body in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            prop_assume!(memchr::memmem::find(&body, value.as_bytes()).is_none());
            prop_assert_eq!(with_value(&value).scrub_bytes(body.clone()), body);
        }

        #[test]
        fn an_echoed_key_is_scrubbed_from_valid_json(
            (value, tree) in "[A-Za-z][A-Za-z0-9_.-]{7,23}".prop_filter("scrubbable", |v| is_scrubbable(v))
                .prop_flat_map(|v| (Just(v.clone()), json_echoing(v))),
            pretty in any::<bool>(),
        ) {
            let body = if pretty { serde_json::to_vec_pretty(&tree) } else { serde_json::to_vec(&tree) }.expect("print");
            let out = with_value(&value).scrub_bytes(body);
            let parsed: serde_json::Value = serde_json::from_slice(&out).expect("still JSON");
            let mut texts = Vec::new();
            strings(&parsed, &mut texts);
            prop_assert!(texts.iter().all(|t| !t.contains(&value)), "{:?}", texts);
        }

        /// Any bytes: JSON in, JSON (or the withheld notice) out.
        #[test]
        fn any_json_body_stays_json(
            value in "[ -~]{1,12}",
            body in prop::collection::vec(prop::sample::select(b"{}[]\",:\\nu0aA9 ".to_vec()), 0..48),
            at in any::<prop::sample::Index>(),
        ) {
            let mut body = body;
            let i = at.index(body.len() + 1);
            body.splice(i..i, value.bytes());
            let json_in = looks_like_json(&body);
            let out = with_value(&value).scrub_bytes(body);
            if json_in && !out.starts_with(b"[response withheld") {
                prop_assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&out).is_ok());
            }
        }
    }

    #[test]
    fn scrubs_values() {
        let s = secrets();
        assert_eq!(s.scrub("key is sk-12345678!"), "key is [secret:api-key]!");
        assert_eq!(s.scrub_bytes(b"x sk-12345678".to_vec()), b"x [secret:api-key]".to_vec());
        assert_eq!(s.scrub_bytes(b"clean".to_vec()), b"clean".to_vec());
        assert!(!format!("{s:?}").contains("sk-12345678"));
    }
}
