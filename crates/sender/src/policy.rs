//! Which delivery targets are allowed. By default only public unicast addresses: a webhook URL
//! must not be a way to reach the daemon's own network (SSRF).
//!
//! [`TargetPolicy::check_url`] is the syntactic check made when an endpoint is created; the HTTP
//! client applies [`is_forbidden_ip`] again to every address a name resolves to at connect time,
//! so DNS names pointing at (or rebinding to) private addresses are refused too.
//!
//! A host is read as browsers and `inet_aton` read it, not as the `http` crate's `Uri` does
//! (which keeps `2130706433` or `0x7f.1` as a name): a host that ends in a number is an IPv4
//! address in decimal, octal or hex parts ([`numeric_ipv4`], the WHATWG URL IPv4 parser), checked
//! like its dotted form; the resolver reads such hosts with the same function.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::uri::{Scheme, Uri};

/// Longest accepted endpoint URL, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// True if `ip` is not a public unicast address: loopback, private, link-local, CGNAT,
/// unspecified, broadcast, multicast, documentation, benchmarking, reserved, IPv6 unique-local,
/// and IPv6 forms that embed a forbidden IPv4 address (mapped, compatible, NAT64, 6to4).
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        // "This network" 0/8 (incl. unspecified), private 10/8, loopback 127/8.
        (0 | 10 | 127, _, _) => true,
        // Shared address space (CGNAT) 100.64/10.
        (100, _, _) => b & 0xc0 == 64,
        // Link-local 169.254/16.
        (169, 254, _) => true,
        // Private 172.16/12.
        (172, _, _) => b & 0xf0 == 16,
        // IETF protocol assignments 192.0.0/24, TEST-NET-1 192.0.2/24, 6to4 relay anycast
        // 192.88.99/24, private 192.168/16.
        (192, 0, 0 | 2) | (192, 88, 99) | (192, 168, _) => true,
        // Benchmarking 198.18/15, TEST-NET-2 198.51.100/24.
        (198, 18 | 19, _) | (198, 51, 100) => true,
        // TEST-NET-3 203.0.113/24.
        (203, 0, 113) => true,
        // Multicast 224/4, reserved 240/4, broadcast.
        (224..=255, _, _) => true,
        _ => false,
    }
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // ::ffff:a.b.c.d (IPv4-mapped): as the IPv4 address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_forbidden_v4(v4);
    }
    // ::/96: unspecified, loopback and the deprecated IPv4-compatible form; never routed.
    if s[..6] == [0; 6] {
        return true;
    }
    // 64:ff9b::/96 (well-known NAT64 prefix): as the embedded IPv4 address.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_forbidden_v4(embedded_v4(s[6], s[7]));
    }
    // 6to4 2002::/16: as the IPv4 address in bits 16..48.
    if s[0] == 0x2002 {
        return is_forbidden_v4(embedded_v4(s[1], s[2]));
    }
    // Only the global unicast space 2000::/3 is public. This excludes, among others, ::/8,
    // local-use NAT64 64:ff9b:1::/48, discard 100::/64, unique-local fc00::/7, link-local
    // fe80::/10, site-local fec0::/10 and multicast ff00::/8.
    if s[0] & 0xe000 != 0x2000 {
        return true;
    }
    // Non-public parts of 2000::/3: IETF protocol assignments 2001::/23 (Teredo, benchmarking,
    // ORCHID...), documentation 2001:db8::/32 and 3fff::/20.
    let ietf = s[0] == 0x2001 && s[1] < 0x200;
    let documentation = (s[0] == 0x2001 && s[1] == 0xdb8) || s[0] & 0xfff0 == 0x3ff0;
    ietf || documentation
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))
}

/// Parses a URI host as an IP literal (`1.2.3.4` or `[::1]`).
pub(crate) fn literal_ip(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// A host that is not a valid numeric IPv4 address although it ends in a number (`1.2.3.256`,
/// `1.2.3.08`, `foo.123`); WHATWG URL parsing fails such URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAnIpv4;

/// The host read as an IPv4 address the way the WHATWG URL standard (and `inet_aton`) reads it:
/// one to four dot-separated parts (a trailing dot allowed), each decimal, octal (leading `0`) or
/// hex (`0x`), the last filling the remaining bytes. `127.1`, `2130706433`, `0x7f.1` and
/// `017700000001` are all 127.0.0.1. `Ok(None)`: the host does not end in a number, so it is a
/// name.
pub fn numeric_ipv4(host: &str) -> Result<Option<Ipv4Addr>, NotAnIpv4> {
    let mut parts: Vec<&str> = host.split('.').collect();
    if parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop();
    }
    let last = parts.last().copied().unwrap_or_default();
    let ends_in_number = !last.is_empty()
        && (last.bytes().all(|b| b.is_ascii_digit()) || ipv4_number(last).is_some());
    if !ends_in_number {
        return Ok(None);
    }
    if parts.len() > 4 {
        return Err(NotAnIpv4);
    }
    let numbers = parts
        .iter()
        .map(|p| ipv4_number(p))
        .collect::<Option<Vec<u64>>>()
        .ok_or(NotAnIpv4)?;
    let (&last, init) = numbers.split_last().ok_or(NotAnIpv4)?;
    if init.iter().any(|&n| n > 255) || last >= 1 << (8 * (5 - numbers.len())) {
        return Err(NotAnIpv4);
    }
    let high = init
        .iter()
        .enumerate()
        .fold(0u64, |acc, (i, &n)| acc | n << (8 * (3 - i)));
    u32::try_from(high | last)
        .map(|v| Some(Ipv4Addr::from(v)))
        .map_err(|_| NotAnIpv4)
}

/// One part of a numeric IPv4 host: `0x`/`0X` hex (`0x` alone is 0), leading-`0` octal, else
/// decimal. Saturates instead of overflowing: anything past 2^32 is out of range anyway.
fn ipv4_number(part: &str) -> Option<u64> {
    let (digits, radix) = if let Some(h) = part.strip_prefix("0x").or(part.strip_prefix("0X")) {
        (h, 16)
    } else if part.len() > 1 && part.starts_with('0') {
        (&part[1..], 8)
    } else {
        (part, 10)
    };
    if part.is_empty() {
        return None;
    }
    digits.chars().try_fold(0u64, |n, c| {
        let d = c.to_digit(radix)?;
        Some(
            n.saturating_mul(u64::from(radix))
                .saturating_add(u64::from(d)),
        )
    })
}

/// `localhost`, `*.localhost` (RFC 6761), with or without a trailing dot, any case.
fn is_localhost_name(host: &str) -> bool {
    let h = host.strip_suffix('.').unwrap_or(host);
    let tail = h.len().checked_sub("localhost".len());
    tail.is_some_and(|i| {
        h.is_char_boundary(i)
            && h[i..].eq_ignore_ascii_case("localhost")
            && (i == 0 || h.as_bytes()[i - 1] == b'.')
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Allow loopback, private and other non-public targets (tests, on-premises receivers).
    pub allow_private: bool,
    /// Refuse plain `http://` URLs.
    pub require_https: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not an absolute http(s) URL with a host, has userinfo, too long...
    #[error("invalid url: {0}")]
    Invalid(String),
    #[error("url must use https")]
    HttpsRequired,
    /// A literal IP address or `localhost` name the policy forbids.
    #[error("forbidden target: {0}")]
    Forbidden(String),
}

impl TargetPolicy {
    /// Syntactic check at endpoint creation: an absolute http/https URL with a host, no userinfo,
    /// parseable as [`http::Uri`], at most [`MAX_URL_LEN`] bytes. Unless `allow_private`, a host
    /// that is a forbidden IP literal or `localhost`/`*.localhost` is [`UrlError::Forbidden`].
    /// Names are not resolved here; the client checks resolved addresses at connect time.
    pub fn check_url(&self, url: &str) -> Result<Uri, UrlError> {
        if url.len() > MAX_URL_LEN {
            return Err(UrlError::Invalid(format!(
                "longer than {MAX_URL_LEN} bytes"
            )));
        }
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| UrlError::Invalid(e.to_string()))?;
        self.check_uri(&uri)?;
        Ok(uri)
    }

    /// The checks of [`check_url`](Self::check_url) on an already parsed URI.
    pub(crate) fn check_uri(&self, uri: &Uri) -> Result<(), UrlError> {
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            Some(s) => return Err(UrlError::Invalid(format!("unsupported scheme {s}"))),
            None => return Err(UrlError::Invalid("not an absolute url".into())),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| UrlError::Invalid("no host".into()))?;
        if authority.as_str().contains('@') {
            return Err(UrlError::Invalid("credentials in the url".into()));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(UrlError::Invalid("no host".into()));
        }
        if self.require_https && !https {
            return Err(UrlError::HttpsRequired);
        }
        if host.contains('%') {
            // Percent-encoded hosts (and IPv6 zone ids) are decoded differently by different
            // parsers; no receiver needs one.
            return Err(UrlError::Invalid("percent sign in the host".into()));
        }
        let ip = match literal_ip(host) {
            Some(ip) => Some(ip),
            None => numeric_ipv4(host)
                .map_err(|NotAnIpv4| {
                    UrlError::Invalid(format!(
                        "{host} ends in a number but is not an IPv4 address"
                    ))
                })?
                .map(IpAddr::V4),
        };
        if !self.allow_private {
            if let Some(ip) = ip {
                if is_forbidden_ip(ip) {
                    return Err(UrlError::Forbidden(format!("{ip} is not a public address")));
                }
            } else if is_localhost_name(host) {
                return Err(UrlError::Forbidden(format!("{host} is a local name")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forbidden_ipv4() {
        for s in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.8.9.10",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(is_forbidden_ip(ip(s)), "{s} should be forbidden");
        }
    }

    #[test]
    fn public_ipv4() {
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "126.255.255.255",
            "128.0.0.1",
            "169.253.1.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "192.0.3.1",
            "192.167.1.1",
            "192.169.1.1",
            "198.17.255.255",
            "198.20.0.1",
            "198.51.101.1",
            "203.0.114.1",
            "223.255.255.254",
        ] {
            assert!(!is_forbidden_ip(ip(s)), "{s} should be allowed");
        }
    }

    #[test]
    fn forbidden_ipv6() {
        for s in [
            "::",
            "::1",
            "::127.0.0.1",
            "::8.8.8.8",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "64:ff9b::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "2001:2::1",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
        ] {
            assert!(is_forbidden_ip(ip(s)), "{s} should be forbidden");
        }
    }

    #[test]
    fn public_ipv6() {
        for s in [
            "2001:4860:4860::8888",
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
            "2001:200::1",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
        ] {
            assert!(!is_forbidden_ip(ip(s)), "{s} should be allowed");
        }
    }

    const STRICT: TargetPolicy = TargetPolicy {
        allow_private: false,
        require_https: false,
    };
    const OPEN: TargetPolicy = TargetPolicy {
        allow_private: true,
        require_https: false,
    };
    const HTTPS: TargetPolicy = TargetPolicy {
        allow_private: false,
        require_https: true,
    };

    #[test]
    fn valid_urls() {
        for url in [
            "https://example.com/hook",
            "http://example.com",
            "https://example.com:8443/a/b?c=d&e=f",
            "HTTPS://Example.COM/x",
            "http://8.8.8.8/x",
            "http://[2001:4860:4860::8888]:8080/x",
            "https://localhost.example.com/x",
            "https://notlocalhost/x",
        ] {
            let uri = STRICT
                .check_url(url)
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            assert!(uri.host().is_some());
        }
        assert_eq!(
            HTTPS.check_url("https://example.com/x").unwrap(),
            "https://example.com/x"
        );
    }

    #[test]
    fn invalid_urls() {
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        for url in [
            "",
            "example.com/hook",
            "/hook",
            "ftp://example.com/x",
            "ws://example.com/x",
            "https://",
            "https:///x",
            "https://user:pass@example.com/x",
            "https://user@example.com/x",
            "https://exa mple.com/x",
            long.as_str(),
        ] {
            assert!(
                matches!(STRICT.check_url(url), Err(UrlError::Invalid(_))),
                "{url:?} should be invalid: {:?}",
                STRICT.check_url(url)
            );
            assert!(matches!(OPEN.check_url(url), Err(UrlError::Invalid(_))));
        }
        let at_limit = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN - 20));
        assert_eq!(at_limit.len(), MAX_URL_LEN);
        STRICT.check_url(&at_limit).unwrap();
    }

    #[test]
    fn https_required() {
        assert_eq!(
            HTTPS.check_url("http://example.com/x").unwrap_err(),
            UrlError::HttpsRequired
        );
        STRICT.check_url("http://example.com/x").unwrap();
    }

    #[test]
    fn forbidden_urls() {
        for url in [
            "http://127.0.0.1:1/x",
            "http://127.8.9.10/x",
            "http://10.0.0.1/x",
            "http://172.16.5.4/x",
            "http://192.168.1.1/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:8080/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://[fd00::1]/x",
            "http://0.0.0.0/x",
            "http://localhost/x",
            "http://LOCALHOST:8080/x",
            "http://localhost./x",
            "https://api.localhost/x",
            "https://a.b.LocalHost/x",
            // Numeric IPv4 forms, and IPv6 forms that embed a private IPv4 address.
            "http://2130706433/",
            "http://0x7f.1/",
            "http://017700000001/",
            "http://127.1/",
            "http://127.0.1:8080/x",
            "http://0x7F000001/",
            "http://0/",
            "http://3232235777/",
            "http://0xa9.0xfe.0xa9.0xfe/latest",
            "http://10.1/",
            "http://[::ffff:7f00:1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[64:ff9b::10.0.0.1]/",
            "http://[2002:7f00:1::]/",
            "http://[2002:c0a8:101::1]/",
            "http://[::127.0.0.1]/",
            "http://[::7f00:1]/",
        ] {
            assert!(
                matches!(STRICT.check_url(url), Err(UrlError::Forbidden(_))),
                "{url} should be forbidden: {:?}",
                STRICT.check_url(url)
            );
            OPEN.check_url(url)
                .unwrap_or_else(|e| panic!("{url} with allow_private: {e}"));
        }
    }

    #[test]
    fn numeric_ipv4_forms() {
        let v4 = |s: &str| numeric_ipv4(s).unwrap().map(|ip| ip.to_string());
        for (host, want) in [
            ("127.0.0.1", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("127.0.1", "127.0.0.1"),
            ("2130706433", "127.0.0.1"),
            ("0x7f.1", "127.0.0.1"),
            ("0X7F.0.0.1", "127.0.0.1"),
            ("0x7f000001", "127.0.0.1"),
            ("017700000001", "127.0.0.1"),
            ("0177.0.0.01", "127.0.0.1"),
            ("0x", "0.0.0.0"),
            ("0", "0.0.0.0"),
            ("10.0xa00001.", "10.160.0.1"),
            ("4294967295", "255.255.255.255"),
            ("3232235777", "192.168.1.1"),
            ("134744072", "8.8.8.8"),
        ] {
            assert_eq!(v4(host).as_deref(), Some(want), "{host}");
        }
        for name in [
            "example.com",
            "0x7f.example",
            "1.2.3.x",
            "a0x1",
            "0xg",
            "localhost",
            "1.2.3.4.example",
        ] {
            assert_eq!(numeric_ipv4(name), Ok(None), "{name}");
        }
        for bad in [
            "4294967296",
            "1.2.3.256",
            "1.2.65536",
            "256.1",
            "1.2.3.4.5",
            "1.2.3.08",
            "09",
            "foo.123",
            "1..2",
            "99999999999999999999999999",
        ] {
            assert_eq!(numeric_ipv4(bad), Err(NotAnIpv4), "{bad}");
        }
    }

    #[test]
    fn numeric_hosts_that_are_public_or_not_ipv4() {
        for url in [
            "http://134744072/",
            "http://0x8.0x8.0x8.0x8/",
            "http://[::ffff:808:808]/",
        ] {
            STRICT
                .check_url(url)
                .unwrap_or_else(|e| panic!("{url}: {e}"));
        }
        for url in [
            "http://4294967296/",
            "http://1.2.3.256/",
            "http://foo.123/",
            "http://%31%32%37.0.0.1/",
            "http://[fe80::1%25eth0]/",
        ] {
            assert!(
                matches!(OPEN.check_url(url), Err(UrlError::Invalid(_))),
                "{url} should be invalid: {:?}",
                OPEN.check_url(url)
            );
        }
    }

    #[test]
    fn localhost_names() {
        assert!(is_localhost_name("localhost"));
        assert!(is_localhost_name("x.localhost"));
        assert!(is_localhost_name("x.LOCALHOST."));
        assert!(!is_localhost_name("xlocalhost"));
        assert!(!is_localhost_name("localhost.com"));
        assert!(!is_localhost_name("localhos"));
        assert!(!is_localhost_name(""));
    }
}

#[cfg(test)]
mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_url_is_checked_without_panicking(url in any::<String>(), allow in any::<bool>(), https in any::<bool>()) {
            let policy = TargetPolicy { allow_private: allow, require_https: https };
            let _ = policy.check_url(&url);
            let _ = policy.check_url(&format!("http://{url}"));
            let _ = policy.check_url(&format!("https://{url}/x"));
        }

        #[test]
        fn any_secret_is_checked_without_panicking(s in any::<String>()) {
            let _ = crate::sign::SigningKey::from_secret(&s);
            let _ = crate::sign::SigningKey::from_secret(&format!("whsec_{s}"));
        }
    }
}
