//! Which delivery targets are allowed. By default only public unicast addresses: a webhook URL
//! must not be a way to reach the daemon's own network (SSRF).
//!
//! [`TargetPolicy::check_url`] is the syntactic check made when an endpoint is created; the HTTP
//! client applies [`is_forbidden_ip`] again to every address a name resolves to at connect time,
//! so DNS names pointing at (or rebinding to) private addresses are refused too.

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
        if !self.allow_private {
            if let Some(ip) = literal_ip(host) {
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
