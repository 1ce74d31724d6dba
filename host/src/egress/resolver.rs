//! Name resolution that refuses internal addresses (SSRF and DNS-rebinding
//! protection).
//!
//! The grant check runs on the URL's host *name*; this resolver runs after it,
//! inside the shared client, on every new connection (both `http.send` and
//! `wasi:http` use that client). It resolves the name, then drops every
//! address in an internal range ([`super::address`]): a plugin granted
//! `api.example.com` cannot reach 127.0.0.1, the LAN or a cloud metadata
//! service because a DNS record says so. When nothing public is left the
//! connection fails with [`BlockedAddresses`], which the client reports as an
//! egress denial.
//!
//! Exceptions are explicit, never implied by DNS ([`super::policy::Reach`]):
//! - an IP-literal URL never reaches a resolver; the grant check already
//!   required that exact address to be granted (wildcards never match IP
//!   literals), which is the user's explicit decision (`--allow-host
//!   127.0.0.1:8080`, the bundled mock provider);
//! - a request whose destination is granted with `--allow-internal-host`
//!   (`vllm.lan:8000`, an exact name) goes through a second client that uses
//!   the system resolver unscreened. The choice is made per request from the
//!   grant that matched, so `vllm.lan:8000` being internal does not make
//!   `vllm.lan:443` internal; wildcard grants never are, and neither is a
//!   name granted with `--allow-host`, port or not.

use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::address::internal_range;

/// A name resolved only to internal addresses, and it is not trusted.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("`{host}` resolves only to blocked internal addresses ({detail})")]
pub struct BlockedAddresses {
    /// The name that was resolved.
    pub host: String,
    /// Each dropped address with its range.
    pub detail: String,
}

/// A [`Resolve`] that drops internal addresses.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_ascii_lowercase();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept = screen(&host, addrs)?;
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// Keeps the public addresses among `addrs`; none left is an error.
pub(super) fn screen(host: &str, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, BlockedAddresses> {
    let (kept, dropped): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|a| internal_range(a.ip()).is_none());
    if !dropped.is_empty() {
        tracing::debug!(target: "batchllm::egress", host, ?dropped, "dropped internal addresses after DNS");
    }
    if kept.is_empty() && !dropped.is_empty() {
        let detail = dropped
            .iter()
            .map(|a| format!("{} is {}", a.ip(), internal_range(a.ip()).unwrap_or("internal")))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(BlockedAddresses { host: host.to_string(), detail });
    }
    Ok(kept)
}

/// Finds a [`BlockedAddresses`] in an error's source chain.
pub(super) fn find_blocked(e: &(dyn std::error::Error + 'static)) -> Option<BlockedAddresses> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(b) = err.downcast_ref::<BlockedAddresses>() {
            return Some(b.clone());
        }
        current = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|ip| SocketAddr::new(ip.parse().expect("ip"), 0)).collect()
    }

    #[test]
    fn internal_addresses_are_dropped_public_kept() {
        let kept = screen("mixed.example", addrs(&["127.0.0.1", "93.184.215.14", "::1"])).expect("one public");
        assert_eq!(kept, addrs(&["93.184.215.14"]));
    }

    #[test]
    fn only_internal_addresses_is_an_error_naming_them() {
        let err = screen("rebind.example", addrs(&["169.254.169.254", "10.0.0.1"])).expect_err("blocked");
        assert_eq!(err.host, "rebind.example");
        assert!(err.detail.contains("169.254.169.254 is link-local/metadata"), "{}", err.detail);
        assert!(err.to_string().contains("10.0.0.1 is private"), "{err}");
    }

    /// The real client path: `localhost` resolves to loopback and is refused
    /// before any connection is made.
    #[tokio::test]
    async fn a_client_with_the_resolver_refuses_loopback_names() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = tokio::spawn(async move { listener.accept().await.is_ok() });
        let url = format!("http://localhost:{port}/");

        let guarded = reqwest::Client::builder().no_proxy().dns_resolver(GuardedResolver).build().expect("client");
        let err = guarded.get(&url).send().await.expect_err("refused");
        let blocked = find_blocked(&err).expect("the chain carries BlockedAddresses");
        assert_eq!(blocked.host, "localhost");
        assert!(blocked.detail.contains("loopback"), "{}", blocked.detail);
        assert!(!accepted.is_finished(), "no connection was made");
    }
}
