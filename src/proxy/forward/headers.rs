//! Rewriting a request's headers for its way upstream, as Traefik does: hop-by-hop fields
//! removed (and those `Connection` names, but never the forwarded fields the proxy manages),
//! X-Forwarded-* and X-Real-Ip set or kept by whether the client is trusted, the client appended
//! to X-Forwarded-For; or, for a request nothing reads on its way, those fields kept beside it
//! ([`Deferred`]). And an answer's hop-by-hop fields removed on its way back.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Facts about the downstream connection the forwarder needs.
#[derive(Debug, Clone)]
pub struct Downstream {
    pub client_ip: IpAddr,
    /// `client_ip` as a header value.
    pub client_ip_header: HeaderValue,
    /// "http" or "https".
    pub scheme: &'static str,
    /// Keep incoming X-Forwarded-* (the client is a trusted proxy).
    pub trusted: bool,
    /// This host's name, for X-Forwarded-Server.
    pub server_name: HeaderValue,
}

const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Is `k` a hop-by-hop field or Upgrade? Their names begin with c, k, p, t or u, which rules out
/// most fields at their first byte, before any comparison of whole names.
fn hop_by_hop_or_upgrade(k: &HeaderName) -> bool {
    matches!(
        k.as_str().as_bytes().first(),
        Some(b'c' | b'k' | b'p' | b't' | b'u')
    ) && (*k == header::UPGRADE || HOP_BY_HOP.contains(k))
}

/// Is this request asking for a protocol upgrade (WebSocket and friends)?
pub fn upgrade_requested(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Remove the fields a request's Connection names, as Traefik's entrypoint does before routing:
/// they belong to the client's own hop, so no router or middleware sees them. Kept: Host and
/// Content-Length, the forwarded fields the proxy manages (it sets or removes them itself), and
/// TE, which a client taking trailers names as RFC 9110 asks ([`strip_hop_by_hop`] passes on
/// `TE: trailers`, where Traefik loses it). Connection is then left as `upgrade` for an upgrade
/// request and removed otherwise (the connection's persistence was read from it already); a
/// Connection that a middleware sets later is honoured by [`strip_hop_by_hop`].
pub fn drop_connection_named(headers: &mut HeaderMap) {
    if !headers.contains_key(header::CONNECTION) {
        return;
    }
    let upgrade = upgrade_requested(headers);
    remove_where(headers, |headers, k| {
        *k != header::CONNECTION
            && *k != header::UPGRADE
            && *k != header::TE
            && !request_keeps(k)
            && connection_names(headers, k)
    });
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::CONNECTION);
    }
}

/// Remove a request's hop-by-hop headers, including those named in Connection; `TE: trailers`
/// is kept (the client takes trailers). With `keep_upgrade`, the Upgrade header and a
/// `Connection: upgrade` survive.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    strip(headers, keep_upgrade, true);
}

/// Remove a response's hop-by-hop headers, including those named in Connection.
pub fn strip_response_hop_by_hop(headers: &mut HeaderMap) {
    strip(headers, false, false);
}

fn strip(headers: &mut HeaderMap, keep_upgrade: bool, request: bool) {
    // Fast path: one pass over the (few) names instead of a dozen hash lookups.
    if !keep_upgrade && !headers.keys().any(hop_by_hop_or_upgrade) {
        return;
    }
    let trailers_ok = request
        && (headers.get_all(header::TE).iter())
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    // The fields Connection names go too (RFC 9110 §7.6.1), Connection itself last. Mostly it
    // names only keep-alive, close or upgrade, and then no field needs matching against it.
    let names_more = connection_tokens(headers).any(|t| {
        !t.is_empty()
            && !t.eq_ignore_ascii_case(b"close")
            && !t.eq_ignore_ascii_case(b"upgrade")
            && !(HOP_BY_HOP.iter()).any(|h| t.eq_ignore_ascii_case(h.as_str().as_bytes()))
    });
    // A request's own fields (the forwarded ones the proxy manages among them) are never removed
    // for being named by it: a client cannot take away what the proxy tells the server (as
    // Traefik since CVE-2024-45410). A server's answer loses every field its Connection names
    // (as Go's reverse proxy).
    remove_where(headers, |headers, k| {
        *k != header::CONNECTION
            && !(keep_upgrade && *k == header::UPGRADE)
            && ((hop_by_hop_or_upgrade(k) && HOP_BY_HOP.contains(k))
                || (names_more && !(request && request_keeps(k)) && connection_names(headers, k)))
    });
    headers.remove(header::CONNECTION);
    if trailers_ok {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

static XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
static XFPROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static XFHOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static XFPORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static XFSERVER: HeaderName = HeaderName::from_static("x-forwarded-server");
static XREALIP: HeaderName = HeaderName::from_static("x-real-ip");
/// What Traefik removes from an untrusted client and does not set itself: a backend (or a
/// forwardAuth server) must never believe a client's claim of them.
const UNTRUSTED_ONLY_REMOVED: [HeaderName; 5] = [
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-uri"),
    HeaderName::from_static("x-forwarded-method"),
    HeaderName::from_static("x-forwarded-tls-client-cert"),
    HeaderName::from_static("x-forwarded-tls-client-cert-info"),
];

/// The tokens of a message's Connection fields, trimmed (empty ones included).
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    (headers.get_all(header::CONNECTION).iter())
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
}

/// Does a Connection field name `k`?
fn connection_names(headers: &HeaderMap, k: &HeaderName) -> bool {
    connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(k.as_str().as_bytes()))
}

/// Remove every field `doomed` picks, one at a time, each found among the (few) names present:
/// no list built, no header name made from a token.
fn remove_where(headers: &mut HeaderMap, doomed: impl Fn(&HeaderMap, &HeaderName) -> bool) {
    while let Some(name) = headers.keys().find(|k| doomed(headers, k)).cloned() {
        headers.remove(&name);
    }
}

/// A request's fields that naming them in Connection cannot take away: Host and Content-Length
/// (in Go they are not header fields at all, so Traefik never removes them either) and the
/// forwarded fields the proxy manages.
fn request_keeps(k: &HeaderName) -> bool {
    *k == header::HOST || *k == header::CONTENT_LENGTH || managed(k)
}

/// One of the forwarded fields the proxy sets, or removes from an untrusted client.
fn managed(k: &HeaderName) -> bool {
    [&XFF, &XFPROTO, &XFHOST, &XFPORT, &XFSERVER, &XREALIP].contains(&k)
        || UNTRUSTED_ONLY_REMOVED.contains(k)
}

/// Set X-Forwarded-* (but For) and X-Real-Ip as Traefik's entrypoint does, before the router's
/// middlewares run: from an untrusted client, incoming values are replaced; from a trusted one
/// they are kept.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    host: &HeaderValue,
    down: &Downstream,
    upgrade: bool,
) {
    // Room for the six added here at once, not in several doublings.
    headers.reserve(6);
    if !down.trusted && any_forwarded(headers) {
        for h in [&XFF, &XFPROTO, &XFHOST, &XFPORT, &XFSERVER, &XREALIP] {
            headers.remove(h);
        }
        for h in UNTRUSTED_ONLY_REMOVED {
            headers.remove(h);
        }
        while let Some(k) = headers.keys().find(|k| underscored(k)).cloned() {
            headers.remove(&k);
        }
    }
    // One hash of each name (an entry), where a lookup and then an insert would take two.
    let set = |headers: &mut HeaderMap, name: &HeaderName, value: &dyn Fn() -> HeaderValue| {
        if let header::Entry::Vacant(v) = headers.entry(name) {
            v.insert(value());
        }
    };
    set(headers, &XFPROTO, &|| {
        HeaderValue::from_static(proto(upgrade, down.scheme))
    });
    set(headers, &XFHOST, &|| host.clone());
    set(headers, &XFPORT, &|| port(host, down.scheme));
    set(headers, &XFSERVER, &|| down.server_name.clone());
    set(headers, &XREALIP, &|| down.client_ip_header.clone());
}

/// The request has a field named like one the proxy manages (or like one with underscores).
fn any_forwarded(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .any(|k| forwarded_prefix(k.as_str().as_bytes()))
}

/// `n` begins like a forwarded field's name, with dashes or underscores.
fn forwarded_prefix(n: &[u8]) -> bool {
    // `a` begins with `b`, an underscore of `a` standing for a dash of `b`.
    let alike = |a: &[u8], b: &[u8]| {
        a.len() >= b.len() && (a.iter().zip(b)).all(|(x, y)| x == y || (*x == b'_' && *y == b'-'))
    };
    alike(n, b"x-forwarded-") || (n.len() == 9 && alike(n, b"x-real-ip"))
}

/// A field named like one the proxy manages but with underscores for dashes
/// (`X_Forwarded_For`): some servers (CGI, PHP) read it as the dashed name, so an untrusted
/// client's goes too, as in Traefik.
fn underscored(k: &HeaderName) -> bool {
    let n = k.as_str();
    n.contains('_') && forwarded_prefix(n.as_bytes()) && {
        let dashed = n.replace('_', "-");
        (HeaderName::from_bytes(dashed.as_bytes())).is_ok_and(|d| managed(&d))
    }
}

fn proto(upgrade: bool, scheme: &str) -> &'static str {
    match (upgrade, scheme) {
        (true, "https") => "wss",
        (true, _) => "ws",
        (false, "https") => "https",
        (false, _) => "http",
    }
}

/// X-Forwarded-Port: the port of the host the client asked for, else the scheme's.
fn port(host: &HeaderValue, scheme: &str) -> HeaderValue {
    let default = if scheme == "https" { 443 } else { 80 };
    match (host.to_str().ok()).and_then(port_of).unwrap_or(default) {
        80 => HeaderValue::from_static("80"),
        443 => HeaderValue::from_static("443"),
        p => HeaderValue::from(p),
    }
}

/// The forwarded fields of a request whose client sent none, kept beside the request instead
/// of put in its map when nothing on the way reads them (a route without middlewares): boma's
/// own client writes them with the head ([`Deferred::fields`]), any other way puts them in the
/// map first ([`Deferred::insert_into`]). The server gets the same fields either way: what
/// [`set_forwarded`], then [`append_forwarded_for`], would have added (after the request's own
/// fields, where a removal from the map may have moved one of them among those).
#[derive(Debug, Clone)]
pub struct Deferred {
    proto: &'static str,
    host: HeaderValue,
    port: HeaderValue,
    server: HeaderValue,
    client: HeaderValue,
}

impl Deferred {
    /// The fields for a request whose `headers` hold none of them yet (`None` otherwise: they
    /// are set in the map as usual).
    pub fn of(
        headers: &HeaderMap,
        host: &HeaderValue,
        down: &Downstream,
        upgrade: bool,
    ) -> Option<Deferred> {
        if any_forwarded(headers) {
            return None;
        }
        Some(Deferred {
            proto: proto(upgrade, down.scheme),
            host: host.clone(),
            port: port(host, down.scheme),
            server: down.server_name.clone(),
            client: down.client_ip_header.clone(),
        })
    }

    /// Names and values, in the order they are written.
    pub fn fields(&self) -> [(&'static str, &[u8]); 6] {
        [
            (XFPROTO.as_str(), self.proto.as_bytes()),
            (XFHOST.as_str(), self.host.as_bytes()),
            (XFPORT.as_str(), self.port.as_bytes()),
            (XFSERVER.as_str(), self.server.as_bytes()),
            (XREALIP.as_str(), self.client.as_bytes()),
            (XFF.as_str(), self.client.as_bytes()),
        ]
    }

    /// Put them in `headers` after all.
    pub fn insert_into(self, headers: &mut HeaderMap) {
        headers.reserve(6);
        headers.append(&XFPROTO, HeaderValue::from_static(self.proto));
        headers.append(&XFHOST, self.host);
        headers.append(&XFPORT, self.port);
        headers.append(&XFSERVER, self.server);
        headers.append(&XREALIP, self.client.clone());
        append_forwarded_for(headers, &self.client);
    }
}

/// Append the client to X-Forwarded-For, as the forwarding step does after the middlewares.
pub fn append_forwarded_for(headers: &mut HeaderMap, client_ip: &HeaderValue) {
    match headers.entry(&XFF) {
        header::Entry::Occupied(mut o) => {
            let joined = match (o.get().to_str(), client_ip.to_str()) {
                (Ok(prior), Ok(ip)) if !prior.is_empty() => {
                    HeaderValue::from_str(&format!("{prior}, {ip}")).ok()
                }
                _ => None,
            };
            // Every value of a repeated field is replaced by the one joined from the first,
            // as an insert does.
            o.insert(joined.unwrap_or_else(|| client_ip.clone()));
        }
        header::Entry::Vacant(v) => {
            v.insert(client_ip.clone());
        }
    }
}

/// The client address as a header value (computed once per connection).
pub fn ip_header(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&ip.to_canonical().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("0.0.0.0"))
}

fn port_of(host: &str) -> Option<u16> {
    let port = &host[host.bytes().rposition(|b| b == b':')? + 1..];
    if host.starts_with('[') && !host.contains("]:") {
        return None;
    }
    port.parse().ok()
}

#[cfg(test)]
#[path = "headers_tests.rs"]
mod tests;
