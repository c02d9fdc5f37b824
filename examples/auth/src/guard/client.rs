//! The client's address, through the proxies trusted.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The client's address: the peer, or — when the peer is a trusted proxy — the right-most
/// address of `X-Forwarded-For` that is not itself a trusted proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

/// The address a request came from, given the peer and the proxies trusted.
pub fn client_address(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer?;
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let Some(forwarded) = forwarded_for else {
        return Some(peer);
    };
    let mut chain = forwarded
        .split(',')
        .rev()
        .map(|hop| hop.trim().parse::<IpAddr>());
    let mut last = peer;
    for hop in chain.by_ref() {
        match hop {
            Ok(ip) if is_trusted(&ip) => last = ip,
            Ok(ip) => return Some(ip),
            // A malformed hop: trust nothing further left.
            Err(_) => return Some(last),
        }
    }
    Some(last)
}

impl FromRequestParts<crate::startup::AuthState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::startup::AuthState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        Ok(ClientAddress(client_address(
            peer,
            forwarded,
            &state.guards.trusted_proxies,
        )))
    }
}
