//! Which IP addresses a plugin may not reach through a host *name*.
//!
//! A grant such as `api.example.com` says which name a plugin may use, not
//! where that name points. DNS is outside the user's control (a rebinding
//! attack, a stale record, a hostile zone), so after resolution the host drops
//! every address that is internal to the machine or its network, or not a
//! normal public destination at all:
//! - loopback, private (RFC 1918, IPv6 unique-local and site-local),
//!   shared/CGNAT (which also holds some clouds' metadata services),
//!   link-local (which holds 169.254.169.254, the usual cloud metadata
//!   address), unspecified, multicast, broadcast and reserved ranges;
//! - cloud platform endpoints on public addresses (Azure's 168.63.129.16);
//! - ranges that are never a public server: documentation (TEST-NET-1/2/3,
//!   2001:db8::/32, 3fff::/20), benchmarking, IETF protocol assignments
//!   (192.0.0.0/24, 2001::/23, which holds Teredo 2001::/32), the 6to4
//!   relay anycast, discard-only (100::/64) and SRv6 (5f00::/16);
//! - IPv6 forms that carry an IPv4 address through some gateway:
//!   IPv4-mapped, IPv4-translated and IPv4-compatible addresses and
//!   local-use NAT64 (64:ff9b:1::/48) are blocked outright (where they lead
//!   is up to the local network), while the well-known NAT64 prefix and 6to4
//!   are judged by the IPv4 address they embed.
//!
//! Reaching an internal address therefore takes an explicit decision by the
//! user: granting the IP literal itself (`--allow-host 127.0.0.1:8080`), or
//! granting the name with `--allow-internal-host vllm.lan:8000`; see
//! [`super::policy::Reach`] and [`super::resolver`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The internal or special range `ip` belongs to, or `None` for a public
/// address.
pub fn internal_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, d] = ip.octets();
    let range = match (a, b, c, d) {
        (0, ..) => "this-network (0.0.0.0/8)",
        (10, ..) => "private (10.0.0.0/8)",
        (100, 64..=127, ..) => "shared/CGNAT (100.64.0.0/10)",
        (127, ..) => "loopback (127.0.0.0/8)",
        (168, 63, 129, 16) => "cloud platform endpoint (Azure 168.63.129.16)",
        (169, 254, ..) => "link-local/metadata (169.254.0.0/16)",
        (172, 16..=31, ..) => "private (172.16.0.0/12)",
        (192, 0, 0, _) => "IETF protocol assignments (192.0.0.0/24)",
        (192, 0, 2, _) => "documentation (192.0.2.0/24)",
        (192, 88, 99, _) => "6to4 relay anycast (192.88.99.0/24)",
        (192, 168, ..) => "private (192.168.0.0/16)",
        (198, 18..=19, ..) => "benchmarking (198.18.0.0/15)",
        (198, 51, 100, _) => "documentation (198.51.100.0/24)",
        (203, 0, 113, _) => "documentation (203.0.113.0/24)",
        (224..=239, ..) => "multicast (224.0.0.0/4)",
        (240..=255, ..) => "reserved/broadcast (240.0.0.0/4)",
        _ => return None,
    };
    Some(range)
}

/// The IPv4 address in the last 32 bits of `s`.
fn embedded_v4(s: [u16; 8]) -> Ipv4Addr {
    let [hi, lo] = [s[6], s[7]];
    Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))
}

fn internal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let range = match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => "unspecified (::)",
        [0, 0, 0, 0, 0, 0, 0, 1] => "loopback (::1)",
        [0, 0, 0, 0, 0, 0xffff, _, _] => "IPv4-mapped (::ffff:0:0/96)",
        [0, 0, 0, 0, 0xffff, 0, _, _] => "IPv4-translated (::ffff:0:0:0/96)",
        // Deprecated IPv4-compatible addresses (::a.b.c.d).
        [0, 0, 0, 0, 0, 0, _, _] => "IPv4-compatible (::/96)",
        // Well-known NAT64 reaches the embedded IPv4 address through a
        // gateway: judge it by that address.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => {
            return internal_v4(embedded_v4(s)).map(|_| "NAT64 of an internal IPv4 address (64:ff9b::/96)");
        }
        // Local-use NAT64 (RFC 8215): a gateway of the local network, to
        // wherever it is configured to go.
        [0x64, 0xff9b, 1, ..] => "local-use NAT64 (64:ff9b:1::/48)",
        [0x100, 0, 0, 0, ..] => "discard-only (100::/64)",
        [0x2001, 0, ..] => "Teredo (2001::/32)",
        [0x2001, 0x0db8, ..] => "documentation (2001:db8::/32)",
        [0x2001, 0..=0x01ff, ..] => "IETF protocol assignments (2001::/23)",
        [0x2002, hi, lo, ..] => {
            let v4 = Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
            return internal_v4(v4).map(|_| "6to4 of an internal IPv4 address (2002::/16)");
        }
        [0x3fff, 0..=0x0fff, ..] => "documentation (3fff::/20)",
        [0x5f00, ..] => "SRv6 segment identifiers (5f00::/16)",
        [0xfc00..=0xfdff, ..] => "unique-local (fc00::/7)",
        [0xfe80..=0xfebf, ..] => "link-local (fe80::/10)",
        [0xfec0..=0xfeff, ..] => "site-local (fec0::/10)",
        [0xff00..=0xffff, ..] => "multicast (ff00::/8)",
        _ => return None,
    };
    Some(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str) -> Option<&'static str> {
        internal_range(s.parse().expect("ip"))
    }

    /// Every row: an address and the range it must be blocked as.
    const BLOCKED: &[(&str, &str)] = &[
        ("0.0.0.0", "this-network"),
        ("10.1.2.3", "private (10."),
        ("100.64.0.1", "shared/CGNAT"),
        ("100.100.100.200", "shared/CGNAT"),
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("168.63.129.16", "Azure"),
        ("169.254.169.254", "link-local/metadata"),
        ("172.16.0.1", "private (172.16"),
        ("172.31.255.255", "private (172.16"),
        ("192.0.0.192", "IETF protocol assignments"),
        ("192.0.2.1", "documentation (192.0.2"),
        ("192.88.99.1", "6to4 relay anycast"),
        ("192.168.1.1", "private (192.168"),
        ("198.18.0.1", "benchmarking"),
        ("198.51.100.7", "documentation (198.51.100"),
        ("203.0.113.9", "documentation (203.0.113"),
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "reserved/broadcast"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "IPv4-mapped"),
        ("::ffff:8.8.8.8", "IPv4-mapped"),
        ("::ffff:0:127.0.0.1", "IPv4-translated"),
        ("::ffff:0:8.8.8.8", "IPv4-translated"),
        ("::127.0.0.1", "IPv4-compatible"),
        ("64:ff9b::a9fe:a9fe", "NAT64 of an internal"),
        ("64:ff9b::a83f:8110", "NAT64 of an internal"),
        ("64:ff9b:1::808:808", "local-use NAT64"),
        ("64:ff9b:1:ffff::1", "local-use NAT64"),
        ("100::1", "discard-only"),
        ("2001::1", "Teredo"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
        ("2001:2::1", "IETF protocol assignments"),
        ("2001:10::1", "IETF protocol assignments"),
        ("2001:1ff::1", "IETF protocol assignments"),
        ("2001:db8::1", "documentation (2001:db8"),
        ("2002:7f00:1::", "6to4 of an internal"),
        ("2002:a83f:8110::", "6to4 of an internal"),
        ("3fff::1", "documentation (3fff"),
        ("3fff:fff::1", "documentation (3fff"),
        ("5f00::1", "SRv6"),
        ("fd00:ec2::254", "unique-local"),
        ("fc00::1", "unique-local"),
        ("fe80::1", "link-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
    ];

    #[test]
    fn the_table_of_blocked_ranges() {
        for (ip, expected) in BLOCKED {
            match range(ip) {
                Some(found) => assert!(found.contains(expected), "{ip}: blocked as {found}, expected {expected}"),
                None => panic!("{ip} must be blocked as {expected}"),
            }
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "104.18.6.192",
            "168.63.129.15",
            "168.63.129.17",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "192.0.3.1",
            "198.51.101.1",
            "203.0.114.1",
            "2606:4700::6810:85e5",
            "2a00:1450:4001:80b::200e",
            "64:ff9b::808:808",
            "64:ff9b:2::1",
            "2002:808:808::",
            "2001:200::1",
            "2001:4860:4860::8888",
            "2001:db9::1",
            "3fff:1000::1",
            "101::1",
        ] {
            assert_eq!(range(ip), None, "{ip} is public");
        }
    }
}
