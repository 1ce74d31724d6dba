//! Which destinations a plugin may reach.
//!
//! Deny by default: a plugin reaches only the hosts it was granted, and the
//! check runs on every request (both `http.send` and `wasi:http`). A grant is
//! `[SCHEME://]HOST[:PORT]`, where HOST may be a wildcard `*.example.com`:
//! - a bare `host` allows **https** on port 443 only, so granting
//!   `api.openai.com` opens neither `http://api.openai.com` (clear text) nor
//!   `api.openai.com:8080`;
//! - `host:port` allows that port, over https or plain http (local servers
//!   often speak plain http);
//! - `http://host[:port]` and `https://host[:port]` allow that scheme only
//!   (port 80 or 443 unless given): plain http on its default port takes
//!   this explicit spelling.
//!
//! Wildcards match DNS names only, never IP literals, so an IP literal is
//! reachable only when granted as such.
//!
//! The grant check is on names; where a name may *point* is checked after
//! DNS by [`super::resolver`]: internal addresses need an explicit decision
//! ([`Reach`]): the IP literal itself, or the name granted with
//! `--allow-internal-host` ([`HostGrant::parse_internal`]).

use std::fmt;
use std::str::FromStr;

/// One destination a plugin is allowed to reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGrant {
    scheme: Option<Scheme>,
    pattern: HostPattern,
    port: Option<u16>,
    /// Granted with `--allow-internal-host`: the name may resolve to
    /// internal addresses.
    internal: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// Exactly this host name or IP literal (lower-case).
    Exact(String),
    /// Any strict subdomain of this suffix (`*.example.com` stores `example.com`).
    Subdomains(String),
}

/// A grant string that cannot be parsed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid host grant `{grant}`: {reason} (expected HOST[:PORT], *.DOMAIN[:PORT], or http://HOST[:PORT] for plain http)"
)]
pub struct GrantParseError {
    grant: String,
    reason: &'static str,
}

impl FromStr for HostGrant {
    type Err = GrantParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| GrantParseError { grant: s.to_string(), reason };
        let trimmed = s.trim();
        let (scheme, rest) = match trimmed.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (Some(Scheme::Http), rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (Some(Scheme::Https), rest),
            Some(_) => return Err(err("only http:// and https:// may be named")),
            None => (None, trimmed),
        };
        if rest.contains('/') {
            return Err(err("give a host, not a URL"));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| err("bad port"))?;
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
        Ok(HostGrant { scheme, pattern, port, internal: false })
    }
}

impl fmt::Display for HostGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(scheme) = self.scheme {
            write!(f, "{}://", scheme.name())?;
        }
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
        let host = s.get(..end + 2)?;
        let tail = rest.get(end + 1..)?;
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
    /// A grant for exactly `host:port` (either scheme), e.g. for a provider
    /// started by the host.
    pub fn exact(host: &str, port: u16) -> Self {
        HostGrant {
            scheme: None,
            pattern: HostPattern::Exact(host.to_ascii_lowercase()),
            port: Some(port),
            internal: false,
        }
    }

    /// Parses an `--allow-internal-host` grant: an exact name (no wildcard)
    /// that may resolve to internal addresses.
    pub fn parse_internal(s: &str) -> Result<Self, GrantParseError> {
        let mut grant: HostGrant = s.parse()?;
        if grant.is_wildcard() {
            return Err(GrantParseError {
                grant: s.to_string(),
                reason: "internal addresses are granted per exact name, never to a wildcard",
            });
        }
        grant.internal = true;
        Ok(grant)
    }

    /// Whether this grant covers `host` on `port` over `scheme` (`http` or
    /// `https`; `port` is the URL's effective port).
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        let (scheme_ok, granted_port) = match (self.scheme, self.port) {
            (Some(s), p) => (scheme == s.name(), p.unwrap_or(s.default_port())),
            // A bare host: https on its default port only.
            (None, None) => (scheme == "https", 443),
            (None, Some(p)) => (scheme == "http" || scheme == "https", p),
        };
        let host = host.to_ascii_lowercase();
        let host_ok = match &self.pattern {
            HostPattern::Exact(h) => *h == host,
            HostPattern::Subdomains(suffix) => {
                !is_ip_literal(&host)
                    && host.strip_suffix(suffix.as_str()).is_some_and(|head| head.len() > 1 && head.ends_with('.'))
            }
        };
        scheme_ok && host_ok && port == granted_port
    }

    /// Whether this grant covers `url`.
    pub fn matches_url(&self, url: &reqwest::Url) -> bool {
        match (url.host_str(), url.port_or_known_default()) {
            (Some(host), Some(port)) => self.matches(url.scheme(), host, port),
            _ => false,
        }
    }

    /// Whether this is a `*.domain` grant.
    pub fn is_wildcard(&self) -> bool {
        matches!(self.pattern, HostPattern::Subdomains(_))
    }

    /// Whether this grant names plain http explicitly (`http://...`).
    pub fn is_plain_http(&self) -> bool {
        self.scheme == Some(Scheme::Http)
    }

    /// Whether this grant came from `--allow-internal-host`.
    pub fn is_internal(&self) -> bool {
        self.internal
    }
}

/// Whether `host` (as in a URL: IPv6 in brackets) is an IP address.
fn is_ip_literal(host: &str) -> bool {
    host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok()
}

/// Whether `url` points at this machine by name (`localhost`) or loopback
/// address, so plain http to it never crosses a network.
pub fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The set of destinations granted to one plugin.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    grants: Vec<HostGrant>,
}

/// Why a destination or a request was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Denial {
    #[error("`{0}` is not an absolute http(s) URL")]
    BadUrl(String),
    #[error("scheme `{0}` is not allowed (only http and https)")]
    Scheme(String),
    #[error(
        "host `{host}:{port}` is not granted to this plugin for {scheme} (grant it with --allow-host {suggestion})"
    )]
    NotGranted { scheme: String, host: String, port: u16, suggestion: String },
    #[error("secret `{name}` may not be sent to `{host}`")]
    SecretNotGranted { name: String, host: String },
    #[error(
        "secret `{name}` is not sent to `{host}`, which is granted only by the wildcard `{wildcard}` (it may cover hosts others own); name the host with --secret-host {name}=HOST (or {name}={wildcard} to allow them all)"
    )]
    SecretOnlyWildcard { name: String, host: String, wildcard: String },
    #[error(
        "secret `{name}` would travel in clear text (plain http) to `{host}`; use https, or allow it with --secret-host {name}=http://{host}"
    )]
    PlaintextSecret { name: String, host: String },
    #[error("secret `{0}` is not configured (pass --api-key-env VAR or --secret {0}=env:VAR)")]
    UnknownSecret(String),
    #[error(
        "{0}; to reach internal addresses, grant the name with --allow-internal-host HOST[:PORT] (or the IP address itself with --allow-host)"
    )]
    BlockedAddress(String),
    #[error(
        "this call already made {limit} requests, the most one call may make (--max-requests-per-call); a plugin sends one request per attempt and lets the host retry"
    )]
    RequestBudget { limit: u32 },
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

    /// The grants covering `url`.
    pub fn matching<'a>(&'a self, url: &'a reqwest::Url) -> impl Iterator<Item = &'a HostGrant> + 'a {
        self.grants.iter().filter(move |g| g.matches_url(url))
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
        let matching = || self.grants.iter().filter(|g| g.matches(scheme, host, port));
        if matching().next().is_none() {
            return Err(Denial::NotGranted {
                scheme: scheme.to_string(),
                host: host.to_string(),
                port,
                suggestion: suggest_grant(scheme, host, port),
            });
        }
        let explicit = is_ip_literal(host) || matching().any(HostGrant::is_internal);
        Ok(if explicit { Reach::Any } else { Reach::PublicOnly })
    }
}

/// The narrowest grant covering `scheme://host:port`: never one that also
/// opens internal addresses (that takes `--allow-internal-host`, a decision
/// a hint must not make for the user).
fn suggest_grant(scheme: &str, host: &str, port: u16) -> String {
    match (scheme, port) {
        ("https", 443) => host.to_string(),
        ("http", 80) => format!("http://{host}"),
        _ => format!("{host}:{port}"),
    }
}

/// Which addresses a granted destination may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Granted by name with `--allow-host` (exact, with or without a port,
    /// or a wildcard): the name must resolve to public addresses
    /// ([`super::resolver`]).
    PublicOnly,
    /// Granted explicitly, as an IP literal or by name with
    /// `--allow-internal-host`: internal addresses are the user's decision.
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
    fn a_bare_host_allows_https_on_its_default_port_only() {
        let p = policy(&["api.openai.com"]);
        assert!(allowed(&p, "https://api.openai.com/v1/chat/completions"));
        assert!(allowed(&p, "https://API.OpenAI.com/v1"));
        assert!(!allowed(&p, "https://api.openai.com:8443/v1"));
        assert!(!allowed(&p, "http://api.openai.com/"), "plain http needs its own grant");
        assert!(!allowed(&p, "http://api.openai.com:80/"));
        assert!(!allowed(&p, "http://api.openai.com:443/"));
        assert!(!allowed(&p, "https://evil.com/?x=api.openai.com"));
    }

    #[test]
    fn plain_http_takes_an_explicit_grant() {
        let p = policy(&["http://plain.example", "https://tls.example:8443", "HTTP://Upper.example:8080"]);
        assert!(allowed(&p, "http://plain.example/"));
        assert!(!allowed(&p, "https://plain.example/"), "the named scheme only");
        assert!(!allowed(&p, "http://plain.example:8080/"));
        assert!(allowed(&p, "https://tls.example:8443/"));
        assert!(!allowed(&p, "http://tls.example:8443/"));
        assert!(allowed(&p, "http://upper.example:8080/"));
        assert_eq!(p.grants()[0].to_string(), "http://plain.example");
        assert!(p.grants()[0].is_plain_http() && !p.grants()[1].is_plain_http());
    }

    #[test]
    fn explicit_port_allows_either_scheme_and_loopback() {
        let p = policy(&["127.0.0.1:8080", "[::1]:9000"]);
        assert!(allowed(&p, "http://127.0.0.1:8080/v1"));
        assert!(allowed(&p, "https://127.0.0.1:8080/v1"));
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
        assert!(!allowed(&p, "http://a.example.com/"));
    }

    #[test]
    fn wildcards_never_match_ip_literals() {
        let p = policy(&["*.0.0.1:8080", "*.1]:8080"]);
        assert!(!allowed(&p, "http://127.0.0.1:8080/"));
        assert!(!allowed(&p, "http://[::1]:8080/"));
    }

    #[test]
    fn only_ip_literals_and_internal_grants_may_reach_internal_addresses() {
        let mut grants: Vec<HostGrant> =
            ["api.openai.com", "vllm.lan:8000", "*.corp.example:443", "127.0.0.1:9000", "[::1]"]
                .iter()
                .map(|g| g.parse().expect("grant"))
                .collect();
        grants.push(HostGrant::parse_internal("gpu.lan:8000").expect("internal"));
        let p = EgressPolicy::new(grants);
        let reach = |url: &str| p.check(&url.parse().expect("url")).expect("granted");
        assert_eq!(reach("https://api.openai.com/v1"), Reach::PublicOnly);
        assert_eq!(
            reach("http://vllm.lan:8000/v1"),
            Reach::PublicOnly,
            "a port alone does not open internal addresses"
        );
        assert_eq!(reach("https://a.corp.example/"), Reach::PublicOnly);
        assert_eq!(reach("http://gpu.lan:8000/v1"), Reach::Any);
        assert_eq!(reach("http://127.0.0.1:9000/"), Reach::Any);
        assert_eq!(reach("https://[::1]/"), Reach::Any);
        assert!(p.check(&"http://gpu.lan:8001/".parse().expect("url")).is_err(), "that port only");
    }

    #[test]
    fn internal_grants_are_exact_names() {
        let err = HostGrant::parse_internal("*.lan:8000").expect_err("wildcard");
        assert!(err.to_string().contains("never to a wildcard"), "{err}");
        assert!(HostGrant::parse_internal("vllm.lan:8000").expect("ok").is_internal());
        assert!(!"vllm.lan:8000".parse::<HostGrant>().expect("ok").is_internal());
    }

    #[test]
    fn non_http_schemes_are_refused() {
        let p = policy(&["example.com"]);
        assert!(matches!(p.check(&"ftp://example.com/".parse().expect("url")), Err(Denial::Scheme(_))));
    }

    #[test]
    fn bad_grants_are_rejected() {
        for bad in ["", "https://x.com/v1", "x.com/path", "a*.x.com", "*.", "x.com:notaport", "ftp://x.com", "http://"]
        {
            assert!(bad.parse::<HostGrant>().is_err(), "{bad} should be rejected");
        }
        assert_eq!("*.X.com:8443".parse::<HostGrant>().expect("ok").to_string(), "*.x.com:8443");
        assert_eq!("https://x.com".parse::<HostGrant>().expect("ok").to_string(), "https://x.com");
    }

    #[test]
    fn the_denial_suggests_the_narrowest_screened_grant() {
        let p = EgressPolicy::default();
        let hint = |url: &str| p.check(&url.parse().expect("url")).expect_err("denied").to_string();
        assert!(
            hint("https://api.openai.com/").ends_with("(grant it with --allow-host api.openai.com)"),
            "{}",
            hint("https://api.openai.com/")
        );
        assert!(hint("http://example.com/").contains("--allow-host http://example.com)"));
        assert!(hint("https://example.com:8443/").contains("--allow-host example.com:8443)"));
        assert!(hint("http://127.0.0.1:8080/").contains("--allow-host 127.0.0.1:8080)"));
        // Whatever the hint says, following it never skips address screening.
        for url in ["https://api.openai.com/", "http://example.com/", "https://example.com:8443/"] {
            let suggested = hint(url).rsplit("--allow-host ").next().expect("hint").trim_end_matches(')').to_string();
            let grant: HostGrant = suggested.parse().expect("the hint parses");
            let followed = EgressPolicy::new(vec![grant]);
            assert_eq!(followed.check(&url.parse().expect("url")), Ok(Reach::PublicOnly), "{url}");
        }
    }

    #[test]
    fn loopback_destinations() {
        for url in ["http://127.0.0.1:1/", "http://localhost/", "http://[::1]:9/", "http://127.8.9.1/"] {
            assert!(is_loopback(&url.parse().expect("url")), "{url}");
        }
        for url in ["http://10.0.0.1/", "http://example.com/", "http://localhost.example.com/", "http://[::2]/"] {
            assert!(!is_loopback(&url.parse().expect("url")), "{url}");
        }
    }
}
