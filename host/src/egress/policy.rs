//! Which destinations a plugin may reach.
//!
//! Deny by default: a plugin reaches only the hosts it was granted, and the
//! check runs on every request (both `http.send` and `wasi:http`). A grant is
//! `host`, `host:port` or a wildcard `*.example.com[:port]`; a grant without a
//! port allows the scheme's default port only (443 for https, 80 for http),
//! so granting `api.openai.com` does not open `api.openai.com:8080`.
//! Wildcards match DNS names only, never IP literals, so an IP literal is
//! reachable only when granted as such.
//!
//! The grant check is on names; where a name may *point* is checked after
//! DNS by [`super::resolver`]: internal addresses need an explicit grant
//! ([`Reach`]).

use std::fmt;
use std::str::FromStr;

/// One destination a plugin is allowed to reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGrant {
    pattern: HostPattern,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// Exactly this host name or IP literal (lower-case).
    Exact(String),
    /// Any strict subdomain of this suffix (`*.example.com` stores `example.com`).
    Subdomains(String),
}

/// A grant string that cannot be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid host grant `{grant}`: {reason} (expected HOST, HOST:PORT or *.DOMAIN[:PORT])")]
pub struct GrantParseError {
    grant: String,
    reason: &'static str,
}

impl FromStr for HostGrant {
    type Err = GrantParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| GrantParseError { grant: s.to_string(), reason };
        let trimmed = s.trim();
        if trimmed.contains("://") || trimmed.contains('/') {
            return Err(err("give a host, not a URL"));
        }
        let (host, port) = split_host_port(trimmed).ok_or_else(|| err("bad port"))?;
        if host.is_empty() {
            return Err(err("empty host"));
        }
        let host = host.to_ascii_lowercase();
        let pattern = if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(err("a wildcard must look like *.example.com"));
            }
            HostPattern::Subdomains(suffix.to_string())
        } else if host.contains('*') {
            return Err(err("a wildcard is only allowed as the leading `*.`"));
        } else {
            HostPattern::Exact(host)
        };
        Ok(HostGrant { pattern, port })
    }
}

impl fmt::Display for HostGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pattern {
            HostPattern::Exact(h) => write!(f, "{h}")?,
            HostPattern::Subdomains(s) => write!(f, "*.{s}")?,
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// Splits `host[:port]`, keeping bracketed IPv6 literals whole.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &s[..end + 2];
        let tail = &rest[end + 1..];
        return match tail.strip_prefix(':') {
            Some(p) => Some((host, Some(p.parse().ok()?))),
            None if tail.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((s, None)),
    }
}

impl HostGrant {
    /// A grant for exactly `host:port`, e.g. for a provider started by the host.
    pub fn exact(host: &str, port: u16) -> Self {
        HostGrant { pattern: HostPattern::Exact(host.to_ascii_lowercase()), port: Some(port) }
    }

    /// Whether this grant covers `host` on `port` (the effective port of the URL).
    pub fn matches(&self, host: &str, port: u16, default_port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        let host_ok = match &self.pattern {
            HostPattern::Exact(h) => *h == host,
            HostPattern::Subdomains(suffix) => {
                !is_ip_literal(&host)
                    && host.strip_suffix(suffix.as_str()).is_some_and(|head| head.len() > 1 && head.ends_with('.'))
            }
        };
        host_ok && port == self.port.unwrap_or(default_port)
    }
}

/// Whether `host` (as in a URL: IPv6 in brackets) is an IP address.
fn is_ip_literal(host: &str) -> bool {
    host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok()
}

/// The set of destinations granted to one plugin.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    grants: Vec<HostGrant>,
}

/// Why a destination was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Denial {
    #[error("`{0}` is not an absolute http(s) URL")]
    BadUrl(String),
    #[error("scheme `{0}` is not allowed (only http and https)")]
    Scheme(String),
    #[error("host `{host}:{port}` is not granted to this plugin (grant it with --allow-host {host}:{port})")]
    NotGranted { host: String, port: u16 },
    #[error("secret `{name}` may not be sent to `{host}`")]
    SecretNotGranted { name: String, host: String },
    #[error("secret `{0}` is not configured (pass --api-key-env VAR or --secret {0}=env:VAR)")]
    UnknownSecret(String),
    #[error(
        "{0}; internal addresses need an explicit grant of the address or of the exact host with its port (--allow-host HOST:PORT)"
    )]
    BlockedAddress(String),
}

impl EgressPolicy {
    /// A policy granting exactly `grants`.
    pub fn new(grants: Vec<HostGrant>) -> Self {
        EgressPolicy { grants }
    }

    /// The grants, for logs and summaries.
    pub fn grants(&self) -> &[HostGrant] {
        &self.grants
    }

    /// Checks one URL; on success says which addresses it may reach.
    pub fn check(&self, url: &reqwest::Url) -> Result<Reach, Denial> {
        let scheme = url.scheme();
        let default_port = match scheme {
            "https" => 443,
            "http" => 80,
            other => return Err(Denial::Scheme(other.to_string())),
        };
        let host = url.host_str().ok_or_else(|| Denial::BadUrl(url.to_string()))?;
        let port = url.port().unwrap_or(default_port);
        let matching = || self.grants.iter().filter(|g| g.matches(host, port, default_port));
        if matching().next().is_none() {
            return Err(Denial::NotGranted { host: host.to_string(), port });
        }
        let explicit =
            is_ip_literal(host) || matching().any(|g| matches!(g.pattern, HostPattern::Exact(_)) && g.port.is_some());
        Ok(if explicit { Reach::Any } else { Reach::PublicOnly })
    }
}

/// Which addresses a granted destination may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Granted by a wildcard or by a name without a port: the name must
    /// resolve to public addresses ([`super::resolver`]).
    PublicOnly,
    /// Granted explicitly, as an IP literal or as the exact name with its
    /// port: internal addresses are the user's decision.
    Any,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(grants: &[&str]) -> EgressPolicy {
        EgressPolicy::new(grants.iter().map(|g| g.parse().expect("valid grant")).collect())
    }

    fn allowed(p: &EgressPolicy, url: &str) -> bool {
        p.check(&url.parse().expect("valid url")).is_ok()
    }

    #[test]
    fn exact_host_allows_default_port_only() {
        let p = policy(&["api.openai.com"]);
        assert!(allowed(&p, "https://api.openai.com/v1/chat/completions"));
        assert!(allowed(&p, "https://API.OpenAI.com/v1"));
        assert!(!allowed(&p, "https://api.openai.com:8443/v1"));
        assert!(!allowed(&p, "http://api.openai.com:443/"));
        assert!(!allowed(&p, "https://evil.com/?x=api.openai.com"));
    }

    #[test]
    fn explicit_port_and_loopback() {
        let p = policy(&["127.0.0.1:8080", "[::1]:9000"]);
        assert!(allowed(&p, "http://127.0.0.1:8080/v1"));
        assert!(!allowed(&p, "http://127.0.0.1:8081/v1"));
        assert!(!allowed(&p, "http://localhost:8080/v1"));
        assert!(allowed(&p, "http://[::1]:9000/"));
    }

    #[test]
    fn wildcard_matches_strict_subdomains() {
        let p = policy(&["*.example.com"]);
        assert!(allowed(&p, "https://a.example.com/"));
        assert!(allowed(&p, "https://a.b.example.com/"));
        assert!(!allowed(&p, "https://example.com/"));
        assert!(!allowed(&p, "https://badexample.com/"));
    }

    #[test]
    fn wildcards_never_match_ip_literals() {
        let p = policy(&["*.0.0.1:8080", "*.1]:8080"]);
        assert!(!allowed(&p, "http://127.0.0.1:8080/"));
        assert!(!allowed(&p, "http://[::1]:8080/"));
    }

    #[test]
    fn only_ip_literals_and_exact_names_with_their_port_may_reach_internal_addresses() {
        let p =
            policy(&["api.openai.com", "vllm.lan:8000", "vllm.lan", "*.corp.example:443", "127.0.0.1:9000", "[::1]"]);
        let reach = |url: &str| p.check(&url.parse().expect("url")).expect("granted");
        assert_eq!(reach("https://api.openai.com/v1"), Reach::PublicOnly);
        assert_eq!(reach("http://vllm.lan:8000/v1"), Reach::Any);
        assert_eq!(reach("https://vllm.lan/v1"), Reach::PublicOnly, "the explicit port does not carry over");
        assert_eq!(reach("https://a.corp.example/"), Reach::PublicOnly);
        assert_eq!(reach("http://127.0.0.1:9000/"), Reach::Any);
        assert_eq!(reach("https://[::1]/"), Reach::Any);
    }

    #[test]
    fn non_http_schemes_are_refused() {
        let p = policy(&["example.com"]);
        assert!(matches!(p.check(&"ftp://example.com/".parse().expect("url")), Err(Denial::Scheme(_))));
    }

    #[test]
    fn bad_grants_are_rejected() {
        for bad in ["", "https://x.com", "x.com/path", "a*.x.com", "*.", "x.com:notaport"] {
            assert!(bad.parse::<HostGrant>().is_err(), "{bad} should be rejected");
        }
        assert_eq!("*.X.com:8443".parse::<HostGrant>().expect("ok").to_string(), "*.x.com:8443");
    }

    #[test]
    fn empty_policy_denies_everything() {
        let p = EgressPolicy::default();
        let err = p.check(&"https://api.openai.com/".parse().expect("url")).expect_err("denied");
        assert!(err.to_string().contains("--allow-host api.openai.com:443"));
    }
}
