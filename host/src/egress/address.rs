//! Which IP addresses a plugin may not reach through a host *name*.
//!
//! A grant such as `api.example.com` says which name a plugin may use, not
//! where that name points. DNS is outside the user's control (a rebinding
//! attack, a stale record, a hostile zone), so after resolution the host drops
//! every address in a range that is internal to the machine or its network:
//! loopback, private (RFC 1918, IPv6 unique-local), shared/CGNAT (which also
//! holds some clouds' metadata services), link-local (which holds
//! 169.254.169.254, the usual cloud metadata address), unspecified,
//! multicast, broadcast and reserved ranges, plus IPv6 forms that embed an
//! IPv4 address (IPv4-mapped and -compatible, NAT64, 6to4), which are judged
//! by, or blocked for, what they embed.
//!
//! Reaching an internal address therefore takes an explicit decision by the
//! user: granting the IP literal itself (`--allow-host 127.0.0.1:8080`), or
//! granting the exact name with its port (`--allow-host vllm.lan:8000`); see
//! [`super::policy::Reach`] and [`super::resolver`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The internal range `ip` belongs to, or `None` for a public address.
pub fn internal_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let range = match (a, b, c) {
        (0, _, _) => "this-network (0.0.0.0/8)",
        (10, _, _) => "private (10.0.0.0/8)",
        (100, 64..=127, _) => "shared/CGNAT (100.64.0.0/10)",
        (127, _, _) => "loopback (127.0.0.0/8)",
        (169, 254, _) => "link-local/metadata (169.254.0.0/16)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 0, 0) => "IETF protocol assignments (192.0.0.0/24)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (224..=239, _, _) => "multicast (224.0.0.0/4)",
        (240..=255, _, _) => "reserved/broadcast (240.0.0.0/4)",
        _ => return None,
    };
    Some(range)
}

fn internal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified (::)");
    }
    if ip.is_loopback() {
        return Some("loopback (::1)");
    }
    if ip.to_ipv4_mapped().is_some() {
        return Some("IPv4-mapped (::ffff:0:0/96)");
    }
    // Deprecated IPv4-compatible addresses (::a.b.c.d).
    if s[..6] == [0; 6] {
        return Some("IPv4-compatible (::/96)");
    }
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach the embedded IPv4
    // address through a gateway: judge them by it.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return internal_v4(v4).map(|_| "NAT64 of an internal IPv4 address (64:ff9b::/96)");
    }
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return internal_v4(v4).map(|_| "6to4 of an internal IPv4 address (2002::/16)");
    }
    match s[0] {
        0xfc00..=0xfdff => Some("unique-local (fc00::/7)"),
        0xfe80..=0xfebf => Some("link-local (fe80::/10)"),
        0xfec0..=0xfeff => Some("site-local (fec0::/10)"),
        0xff00..=0xffff => Some("multicast (ff00::/8)"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(s: &str) -> bool {
        internal_range(s.parse().expect("ip")).is_some()
    }

    #[test]
    fn internal_ipv4_ranges_are_blocked() {
        for ip in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "100.100.100.200",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.192",
            "192.168.1.1",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(blocked(ip), "{ip} must be blocked");
        }
    }

    #[test]
    fn public_ipv4_is_allowed() {
        for ip in
            ["1.1.1.1", "8.8.8.8", "104.18.6.192", "172.15.255.255", "172.32.0.1", "100.63.255.255", "100.128.0.1"]
        {
            assert!(!blocked(ip), "{ip} is public");
        }
    }

    #[test]
    fn internal_ipv6_ranges_and_embedded_ipv4_are_blocked() {
        for ip in [
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(blocked(ip), "{ip} must be blocked");
        }
    }

    #[test]
    fn public_ipv6_is_allowed() {
        for ip in ["2606:4700::6810:85e5", "2a00:1450:4001:80b::200e", "64:ff9b::808:808", "2002:808:808::"] {
            assert!(!blocked(ip), "{ip} is public");
        }
    }

    #[test]
    fn the_range_is_named() {
        assert_eq!(
            internal_range("169.254.169.254".parse().expect("ip")),
            Some("link-local/metadata (169.254.0.0/16)")
        );
    }
}
