//! The client address of a request: the peer, or a trusted proxy header; and the bucket it
//! is rate-limited in.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use http::{HeaderMap, HeaderName, Request};

use super::config::ClientIpSource;

/// The client address of a connection, for servers that do not use axum's `ConnectInfo`.
///
/// Insert it into each request's extensions (for example from hyper's accept loop) so the
/// [`QuotaLayer`](crate::QuotaLayer) can rate-limit unauthenticated requests per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

/// The client address of `request` according to `source`.
pub(super) fn client_ip<B>(request: &Request<B>, source: &ClientIpSource) -> Option<IpAddr> {
    if let ClientIpSource::Header { name, trusted_hops } = source
        && let Some(ip) = forwarded_ip(request.headers(), name, *trusted_hops)
    {
        return Some(ip);
    }
    peer_ip(request)
}

/// The address a client is rate-limited as: an IPv4 address as it is (also when written as
/// IPv4-mapped IPv6, `::ffff:a.b.c.d`), an IPv6 address as its /64 network, the smallest
/// block a single subscriber is usually given: one host owns all of it and could otherwise
/// take a fresh address for every request.
pub(super) fn rate_bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(v6) & !u128::from(u64::MAX);
                IpAddr::V6(Ipv6Addr::from(network))
            }
        },
    }
}

fn peer_ip<B>(request: &Request<B>) -> Option<IpAddr> {
    let extensions = request.extensions();
    if let Some(ClientAddr(ip)) = extensions.get::<ClientAddr>() {
        return Some(*ip);
    }
    #[cfg(feature = "axum")]
    if let Some(info) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0.ip());
    }
    None
}

/// The entry `hops` from the right across all lines of the header (`a, b` then `c` is a, b, c).
fn forwarded_ip(headers: &HeaderMap, name: &HeaderName, hops: usize) -> Option<IpAddr> {
    let mut remaining = hops;
    for line in headers.get_all(name).iter().rev() {
        let text = line.to_str().ok()?;
        for entry in text.rsplit(',') {
            remaining = remaining.checked_sub(1)?;
            if remaining == 0 {
                return parse_ip(entry.trim());
            }
        }
    }
    None
}

fn parse_ip(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inner| inner.parse().ok())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn request(lines: &[&'static str]) -> Request<()> {
        let mut request = Request::new(());
        for line in lines {
            request
                .headers_mut()
                .append("x-forwarded-for", HeaderValue::from_static(line));
        }
        request
    }

    #[test]
    fn picks_the_entry_the_trusted_proxy_saw() {
        let source = ClientIpSource::forwarded_for(1);
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert_eq!(
            client_ip(&request(&["6.6.6.6, 10.0.0.1", "192.0.2.7"]), &source),
            ip("192.0.2.7")
        );
        let two = ClientIpSource::forwarded_for(2);
        assert_eq!(
            client_ip(&request(&["6.6.6.6, 10.0.0.1", "192.0.2.7"]), &two),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_ip(&request(&["[2001:db8::1]:443"]), &source),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_ip(&request(&["[2001:db8::2]"]), &source),
            ip("2001:db8::2")
        );
        assert_eq!(client_ip(&request(&["1.2.3.4:80"]), &source), ip("1.2.3.4"));
    }

    #[test]
    fn ipv6_clients_are_bucketed_by_their_64_and_mapped_ipv4_is_ipv4() {
        let bucket = |s: &str| s.parse::<IpAddr>().map(rate_bucket).ok();
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert_eq!(bucket("2001:db8:1:2:aaaa::1"), ip("2001:db8:1:2::"));
        assert_eq!(
            bucket("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            bucket("2001:db8:1:2::")
        );
        assert_ne!(bucket("2001:db8:1:2::1"), bucket("2001:db8:1:3::1"));
        assert_eq!(bucket("::ffff:192.0.2.7"), ip("192.0.2.7"));
        assert_eq!(bucket("192.0.2.7"), ip("192.0.2.7"));
        assert_ne!(bucket("192.0.2.7"), bucket("192.0.2.8"));
        assert_eq!(bucket("::1"), ip("::"));
    }

    #[test]
    fn falls_back_to_the_peer_and_ignores_the_header_unless_trusted() {
        let mut spoofed = request(&["6.6.6.6"]);
        assert_eq!(client_ip(&spoofed, &ClientIpSource::Peer), None);
        let peer: IpAddr = [127, 0, 0, 9].into();
        spoofed.extensions_mut().insert(ClientAddr(peer));
        assert_eq!(client_ip(&spoofed, &ClientIpSource::Peer), Some(peer));
        let garbage = {
            let mut r = request(&["not-an-ip"]);
            r.extensions_mut().insert(ClientAddr(peer));
            r
        };
        assert_eq!(
            client_ip(&garbage, &ClientIpSource::forwarded_for(1)),
            Some(peer)
        );
        assert_eq!(
            client_ip(&request(&["1.1.1.1"]), &ClientIpSource::forwarded_for(3)),
            None
        );
    }
}
