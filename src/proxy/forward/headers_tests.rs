//! Unit tests of `proxy::forward::headers`: hop-by-hop removal, the fields Connection may and
//! may not name, forwarded fields from trusted and untrusted clients.

use super::*;

fn down(trusted: bool) -> Downstream {
    Downstream {
        client_ip: "192.0.2.1".parse().unwrap(),
        client_ip_header: HeaderValue::from_static("192.0.2.1"),
        scheme: "http",
        trusted,
        server_name: HeaderValue::from_static("gw"),
    }
}

#[test]
fn hop_by_hop_removed() {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONNECTION,
        HeaderValue::from_static("close, x-secret"),
    );
    h.insert("x-secret", HeaderValue::from_static("1"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert(header::TE, HeaderValue::from_static("trailers"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert("x-keep", HeaderValue::from_static("1"));
    strip_hop_by_hop(&mut h, false);
    assert!(!h.contains_key("x-secret"));
    assert!(!h.contains_key(header::CONNECTION));
    assert!(!h.contains_key("keep-alive"));
    assert!(!h.contains_key(header::UPGRADE));
    assert_eq!(h.get(header::TE).unwrap(), "trailers");
    assert!(h.contains_key("x-keep"));
    // TE is a request's field: an answer carrying it loses it.
    strip_response_hop_by_hop(&mut h);
    assert!(!h.contains_key(header::TE));
    assert!(h.contains_key("x-keep"));
}

#[test]
fn connection_cannot_name_away_the_forwarded_fields() {
    let mut h = HeaderMap::new();
    let named = "x-forwarded-host, X-Real-Ip, x-forwarded-uri, x-other";
    h.insert(header::CONNECTION, HeaderValue::from_str(named).unwrap());
    for k in [
        "x-forwarded-host",
        "x-real-ip",
        "x-forwarded-uri",
        "x-other",
    ] {
        h.insert(k, HeaderValue::from_static("1"));
    }
    let mut answer = h.clone();
    strip_hop_by_hop(&mut h, false);
    let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
    left.sort();
    assert_eq!(left, ["x-forwarded-host", "x-forwarded-uri", "x-real-ip"]);
    // A server's answer loses what its Connection names, these included.
    strip_response_hop_by_hop(&mut answer);
    assert!(answer.is_empty(), "{answer:?}");
}

#[test]
fn fields_connection_names_go_before_routing() {
    let mut h = HeaderMap::new();
    h.append(
        header::CONNECTION,
        HeaderValue::from_static("keep-alive, X-Env"),
    );
    h.append(
        header::CONNECTION,
        HeaderValue::from_static("TE, x-forwarded-host"),
    );
    for k in ["x-env", "keep-alive", "te", "x-forwarded-host", "x-other"] {
        h.insert(k, HeaderValue::from_static("1"));
    }
    drop_connection_named(&mut h);
    let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
    left.sort();
    assert_eq!(left, ["te", "x-forwarded-host", "x-other"]);
    // Host and Content-Length are the request's own, before routing and after.
    let mut h = HeaderMap::new();
    h.insert(
        header::CONNECTION,
        HeaderValue::from_static("Host, Content-Length"),
    );
    h.insert(header::HOST, HeaderValue::from_static("a.test"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
    let mut later = h.clone();
    drop_connection_named(&mut h);
    strip_hop_by_hop(&mut later, false);
    for h in [h, later] {
        assert_eq!(h.get(header::HOST).unwrap(), "a.test");
        assert_eq!(h.get(header::CONTENT_LENGTH).unwrap(), "3");
        assert!(!h.contains_key(header::CONNECTION));
    }
    // An upgrade keeps what it needs; the fields it names go all the same.
    let mut h = HeaderMap::new();
    h.insert(
        header::CONNECTION,
        HeaderValue::from_static("Upgrade, x-env"),
    );
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert("x-env", HeaderValue::from_static("1"));
    drop_connection_named(&mut h);
    assert_eq!(h.get(header::CONNECTION).unwrap(), "upgrade");
    assert_eq!(h.get(header::UPGRADE).unwrap(), "websocket");
    assert!(!h.contains_key("x-env"));
    // Nothing named, nothing touched.
    let mut h = HeaderMap::new();
    h.insert("x-env", HeaderValue::from_static("1"));
    drop_connection_named(&mut h);
    assert_eq!(h.len(), 1);
}

#[test]
fn upgrade_kept_when_asked() {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONNECTION,
        HeaderValue::from_static("keep-alive, Upgrade"),
    );
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    assert!(upgrade_requested(&h));
    strip_hop_by_hop(&mut h, true);
    assert_eq!(h.get(header::CONNECTION).unwrap(), "upgrade");
    assert_eq!(h.get(header::UPGRADE).unwrap(), "websocket");
}

#[test]
fn forwarded_untrusted_replaced() {
    let mut h = HeaderMap::new();
    h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
    h.insert("x-real-ip", HeaderValue::from_static("6.6.6.6"));
    h.insert("x-forwarded-uri", HeaderValue::from_static("/admin"));
    h.insert("x-forwarded-tls-client-cert", HeaderValue::from_static("x"));
    let host = HeaderValue::from_static("app.lan:8080");
    set_forwarded(&mut h, &host, &down(false), false);
    assert!(!h.contains_key("x-forwarded-uri"));
    assert!(!h.contains_key("x-forwarded-tls-client-cert"));
    append_forwarded_for(&mut h, &down(false).client_ip_header);
    assert_eq!(h.get("x-forwarded-for").unwrap(), "192.0.2.1");
    assert_eq!(h.get("x-real-ip").unwrap(), "192.0.2.1");
    assert_eq!(h.get("x-forwarded-host").unwrap(), "app.lan:8080");
    assert_eq!(h.get("x-forwarded-port").unwrap(), "8080");
    assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
}

/// Kept beside the request or put in its map, the forwarded fields are the ones (and in
/// the order) that set_forwarded and append_forwarded_for give, for every scheme and port.
#[test]
fn deferred_fields_are_the_ones_the_map_gets() {
    for (host, scheme, upgrade) in [
        ("app.lan", "http", false),
        ("app.lan:8080", "https", false),
        ("[::1]:8443", "http", true),
        ("", "https", true),
    ] {
        let host = HeaderValue::from_str(host).unwrap();
        let down = Downstream {
            scheme,
            ..down(false)
        };
        let mut head = HeaderMap::new();
        head.insert(header::HOST, HeaderValue::from_static("h"));
        let mut map = head.clone();
        set_forwarded(&mut map, &host, &down, upgrade);
        append_forwarded_for(&mut map, &down.client_ip_header);
        let deferred = Deferred::of(&head, &host, &down, upgrade).expect("none sent");
        let written: Vec<(String, Vec<u8>)> = (deferred.fields().iter())
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect();
        // The map's fields but the request's own Host.
        let set: Vec<(String, Vec<u8>)> = (map.iter())
            .filter(|(n, _)| *n != header::HOST)
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        assert_eq!(written, set);
        let mut inserted = head.clone();
        deferred.insert_into(&mut inserted);
        assert_eq!(inserted, map);
    }
    // A client that sent one: the map path, not this.
    let mut sent = HeaderMap::new();
    sent.insert("x-forwarded-host", HeaderValue::from_static("evil"));
    let host = HeaderValue::from_static("h");
    assert!(Deferred::of(&sent, &host, &down(false), false).is_none());
}

#[test]
fn underscore_spellings_go_from_an_untrusted_client_only() {
    let forged = [
        "x_forwarded_for",
        "x_forwarded_host",
        "x-forwarded_proto",
        "x_real_ip",
        "x_forwarded_tls_client_cert",
    ];
    let mut h = HeaderMap::new();
    for k in forged {
        h.insert(
            HeaderName::from_static(k),
            HeaderValue::from_static("6.6.6.6"),
        );
    }
    h.insert("x_forwarded_other", HeaderValue::from_static("kept"));
    h.insert("x_real_ipv6", HeaderValue::from_static("kept"));
    let host = HeaderValue::from_static("h");
    assert!(Deferred::of(&h, &host, &down(false), false).is_none());
    let mut trusted = h.clone();
    set_forwarded(&mut h, &host, &down(false), false);
    for k in forged {
        assert!(!h.contains_key(k), "{k} left");
    }
    assert!(h.contains_key("x_forwarded_other") && h.contains_key("x_real_ipv6"));
    set_forwarded(&mut trusted, &host, &down(true), false);
    for k in forged {
        assert!(trusted.contains_key(k), "{k} removed from a trusted client");
    }
}

#[test]
fn forwarded_trusted_appended() {
    let mut h = HeaderMap::new();
    h.insert("x-forwarded-for", HeaderValue::from_static("10.1.1.1"));
    h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    set_forwarded(
        &mut h,
        &HeaderValue::from_static("app.lan"),
        &down(true),
        true,
    );
    append_forwarded_for(&mut h, &down(true).client_ip_header);
    assert_eq!(h.get("x-forwarded-for").unwrap(), "10.1.1.1, 192.0.2.1");
    assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
    assert_eq!(h.get("x-forwarded-port").unwrap(), "80");
}

#[test]
fn first_byte_filter_passes_every_hop_by_hop_name() {
    for k in HOP_BY_HOP.iter().chain([&header::UPGRADE]) {
        assert!(hop_by_hop_or_upgrade(k), "{k}");
    }
    for k in [
        header::HOST,
        header::COOKIE,
        header::CONTENT_TYPE,
        XFF.clone(),
    ] {
        assert!(!hop_by_hop_or_upgrade(&k), "{k}");
    }
}

#[test]
fn connection_naming_only_keep_alive_strips_the_standard_fields() {
    let mut h = HeaderMap::new();
    h.insert(header::CONNECTION, HeaderValue::from_static("Keep-Alive"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    strip_hop_by_hop(&mut h, false);
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h.contains_key(header::CONTENT_TYPE));
    assert_eq!(port_of("example.com:8080"), Some(8080));
    assert_eq!(port_of("[::1]:8443"), Some(8443));
    assert_eq!(port_of("[::1]"), None);
    assert_eq!(port_of("example.com"), None);
}
