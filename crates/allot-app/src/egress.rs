//! Where outgoing webhook requests may go: only to public addresses, unless an operator
//! allows a private range (`--webhook-allow-private 10.1.2.0/24`) for on-premise receivers.
//!
//! What it owns: the address rules (loopback, private, link-local, shared, unique-local,
//! multicast, unspecified and reserved ranges are not public; IPv4 inside IPv6 — mapped,
//! compatible, NAT64, 6to4 — is judged as the IPv4 it carries), the check of an endpoint
//! URL when it is registered, and the resolver the relay's HTTP client connects through.
//! What it must never do: let a connection reach an address that was not checked. The
//! resolver answers only checked addresses, so the client connects to exactly what was
//! checked (no second lookup that DNS rebinding could answer differently).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// Names that always mean this machine or a private network, refused at registration
/// unless the operator allowed private ranges (then the address decides at delivery).
const INTERNAL_NAME_SUFFIXES: [&str; 4] = ["localhost", "internal", "local", "home.arpa"];

/// What the relay may connect to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressRules {
    /// Ranges allowed although not public (operators' on-premise receivers; loopback in
    /// tests and with `--allow-insecure-webhooks`).
    pub allow_private: Vec<IpNet>,
    /// Names resolved without DNS, like `/etc/hosts` entries; the addresses are still
    /// checked. For tests of the delivery-time check.
    pub hosts: Vec<(String, IpAddr)>,
}

impl EgressRules {
    /// Whether a connection to `ip` is allowed.
    pub fn permits(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.allow_private.iter().any(|net| net.contains(&ip))
    }
}

/// Whether `ip` is a public unicast address (the only kind a webhook may reach by default).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let not_public = ip.is_unspecified()
        || a == 0 // "this network"
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, cloud metadata services
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT), 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments, 192.0.0/24
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, 198.18/15
        || ip.is_multicast()
        || a >= 240; // reserved and broadcast
    !not_public
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let not_public = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local, fc00::/7
        || (first & 0xffc0) == 0xfe80 // link local, fe80::/10
        || (first & 0xffc0) == 0xfec0 // site local (deprecated), fec0::/10
        || ip.segments()[..4] == [0x0100, 0, 0, 0]; // discard, 100::/64
    !not_public
}

/// The IPv4 address an IPv6 address stands for, where it carries one: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, deprecated), NAT64 (`64:ff9b::/96`)
/// and 6to4 (`2002:AABB:CCDD::/48`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail),
        // `::` and `::1` are judged as IPv6 (unspecified, loopback).
        [0, 0, 0, 0, 0, 0, _, _] if !ip.is_unspecified() && !ip.is_loopback() => Some(tail),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)),
        _ => None,
    }
}

/// Checks an endpoint URL when it is registered: the scheme (`https`; plain `http` only to
/// loopback with `allow_insecure`), no credentials, and a host that is not a non-public
/// address or an internal name. Names are checked again, by address, at every delivery.
pub fn check_endpoint(url: &reqwest::Url, rules: &EgressRules, allow_insecure: bool) -> Result<(), String> {
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password; put credentials in the secret".to_owned());
    }
    let host = url.host().ok_or("must name a host")?;
    let loopback_host = match &host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure && loopback_host => {}
        "http" if allow_insecure => return Err("plain http only to 127.0.0.1, [::1] or localhost".to_owned()),
        _ => return Err("must be an https URL".to_owned()),
    }
    let refused = "is not a public address (an operator may allow a private range with --webhook-allow-private)";
    match host {
        url::Host::Ipv4(ip) if !rules.permits(IpAddr::V4(ip)) => Err(format!("{ip} {refused}")),
        url::Host::Ipv6(ip) if !rules.permits(IpAddr::V6(ip)) => Err(format!("{ip} {refused}")),
        url::Host::Domain(name) if rules.allow_private.is_empty() && is_internal_name(name) => {
            Err(format!("{name} names an internal host; webhooks go to public hosts"))
        }
        _ => Ok(()),
    }
}

fn is_internal_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    INTERNAL_NAME_SUFFIXES.iter().any(|s| name == *s || name.ends_with(&format!(".{s}")))
}

/// The address literal of a URL's host, if it is one (the HTTP client connects to it
/// without asking the resolver, so the relay checks it itself).
pub fn literal_address(url: &reqwest::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// The relay's resolver: looks a name up (or in [`EgressRules::hosts`]) and answers only
/// the addresses the rules permit; none permitted is an error, so nothing is connected.
#[derive(Debug, Clone)]
pub struct CheckedResolver {
    rules: Arc<EgressRules>,
    hosts: Arc<HashMap<String, Vec<IpAddr>>>,
}

impl CheckedResolver {
    pub fn new(rules: EgressRules) -> CheckedResolver {
        let mut hosts: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for (name, ip) in &rules.hosts {
            hosts.entry(name.to_ascii_lowercase()).or_default().push(*ip);
        }
        CheckedResolver { rules: Arc::new(rules), hosts: Arc::new(hosts) }
    }
}

/// Why a name gave no address to connect to (logged; the delivery shows "delivery failed").
#[derive(Debug, thiserror::Error)]
#[error("{name} resolves to no permitted address")]
struct NoPermittedAddress {
    name: String,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (rules, hosts) = (self.rules.clone(), self.hosts.clone());
        let name = name.as_str().to_ascii_lowercase();
        Box::pin(async move {
            let found: Vec<IpAddr> = match hosts.get(&name) {
                Some(ips) => ips.clone(),
                None => tokio::net::lookup_host((name.as_str(), 0)).await?.map(|a| a.ip()).collect(),
            };
            let permitted: Vec<SocketAddr> =
                found.into_iter().filter(|ip| rules.permits(*ip)).map(|ip| SocketAddr::new(ip, 0)).collect();
            if permitted.is_empty() {
                return Err(Box::new(NoPermittedAddress { name }) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(permitted.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn endpoints_that_reach_inside_are_refused_at_registration() {
        let rules = EgressRules::default();
        for bad in [
            "https://169.254.169.254/latest/meta-data",
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://10.0.0.1/",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://017700000001/",
            "https://[::ffff:169.254.169.254]/",
            "https://[::ffff:7f00:1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[2002:7f00:1::]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://0.0.0.0/",
            "https://[::]/",
            "https://224.0.0.1/",
            "https://100.64.0.1/",
            "https://192.168.1.1/",
            "https://172.16.0.1/",
            "https://metadata.google.internal/computeMetadata/v1/",
            "https://localhost/",
            "https://foo.localhost/",
            "https://printer.local/",
            "https://user:password@hooks.example.com/",
            "https://token@hooks.example.com/",
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
        ] {
            assert!(check_endpoint(&url(bad), &rules, false).is_err(), "{bad} was accepted");
        }
        for good in ["https://hooks.example.com/allot", "https://93.184.215.14/", "https://[2606:2800:21f:cb07::1]/"] {
            assert_eq!(check_endpoint(&url(good), &rules, false), Ok(()), "{good}");
        }
    }

    #[test]
    fn an_allowed_private_range_admits_exactly_that_range() {
        let rules = EgressRules { allow_private: vec!["10.1.2.0/24".parse().unwrap()], ..Default::default() };
        assert_eq!(check_endpoint(&url("https://10.1.2.7/h"), &rules, false), Ok(()));
        assert!(check_endpoint(&url("https://10.1.3.7/h"), &rules, false).is_err());
        assert!(check_endpoint(&url("https://169.254.169.254/"), &rules, false).is_err());
        // With private ranges allowed, internal names are for the address check to judge.
        assert_eq!(check_endpoint(&url("https://hooks.corp.internal/h"), &rules, false), Ok(()));
    }

    #[test]
    fn plain_http_only_to_loopback_and_only_when_insecure_is_allowed() {
        let loopback = EgressRules { allow_private: vec!["127.0.0.0/8".parse().unwrap()], ..Default::default() };
        assert_eq!(check_endpoint(&url("http://127.0.0.1:9000/h"), &loopback, true), Ok(()));
        assert!(check_endpoint(&url("http://127.0.0.1:9000/h"), &loopback, false).is_err());
        assert!(check_endpoint(&url("http://10.0.0.1/h"), &loopback, true).is_err());
        assert!(check_endpoint(&url("http://hooks.example.com/h"), &loopback, true).is_err());
    }

    #[test]
    fn ipv4_carried_in_ipv6_is_judged_as_ipv4() {
        for (ip, public) in [
            ("::ffff:8.8.8.8", true),
            ("::ffff:10.0.0.1", false),
            ("64:ff9b::808:808", true),
            ("64:ff9b::a00:1", false),
            ("2002:0808:0808::1", true),
            ("2002:c0a8:0101::1", false),
            ("::1", false),
            ("::", false),
            ("2001:4860:4860::8888", true),
        ] {
            assert_eq!(is_public(ip.parse().unwrap()), public, "{ip}");
        }
    }

    #[tokio::test]
    async fn the_resolver_answers_only_permitted_addresses() {
        use reqwest::dns::Resolve;
        let rules = EgressRules {
            hosts: vec![
                ("rebind.example".to_owned(), "127.0.0.1".parse().unwrap()),
                ("mixed.example".to_owned(), "10.0.0.7".parse().unwrap()),
                ("mixed.example".to_owned(), "93.184.215.14".parse().unwrap()),
            ],
            ..Default::default()
        };
        let resolver = CheckedResolver::new(rules);
        assert!(resolver.resolve("rebind.example".parse().unwrap()).await.is_err());
        let addrs: Vec<SocketAddr> = resolver.resolve("mixed.example".parse().unwrap()).await.unwrap().collect();
        assert_eq!(addrs, ["93.184.215.14:0".parse::<SocketAddr>().unwrap()]);
    }
}
