//! The registry's shards, bounds and text format, from fixtures.

use super::*;

fn registry(max_series: usize) -> Registry {
    let settings = Settings {
        buckets: vec![0.1, 0.3, 1.2, 5.0],
        entrypoints: true,
        routers: true,
        services: true,
        max_series,
    };
    Registry::new(settings, 2)
}

fn req<'a>(route: Option<(&'a str, &'a str)>, code: u16, secs: f64) -> Request<'a> {
    Request {
        entrypoint: "web",
        route,
        code,
        method: method_index("GET"),
        protocol: Protocol::Http,
        seconds: secs,
        bytes: 10,
    }
}

#[test]
fn shards_are_summed_into_traefik_families() {
    let r = registry(100);
    r.observe(0, &req(Some(("r@file", "s@file")), 200, 0.05));
    r.observe(1, &req(Some(("r@file", "s@file")), 200, 0.5));
    r.observe(1, &req(None, 404, 0.001));
    let mut t = Text::default();
    r.render(&mut t);
    let out = t.finish();
    for line in [
        "traefik_entrypoint_requests_total{code=\"200\",method=\"GET\",protocol=\"http\",entrypoint=\"web\"} 2",
        "traefik_entrypoint_requests_total{code=\"404\",method=\"GET\",protocol=\"http\",entrypoint=\"web\"} 1",
        "traefik_router_requests_total{code=\"200\",method=\"GET\",protocol=\"http\",router=\"r@file\",service=\"s@file\"} 2",
        "traefik_service_request_duration_seconds_bucket{code=\"200\",method=\"GET\",protocol=\"http\",service=\"s@file\",le=\"0.1\"} 1",
        "traefik_service_request_duration_seconds_bucket{code=\"200\",method=\"GET\",protocol=\"http\",service=\"s@file\",le=\"1.2\"} 2",
        "traefik_service_request_duration_seconds_bucket{code=\"200\",method=\"GET\",protocol=\"http\",service=\"s@file\",le=\"+Inf\"} 2",
        "traefik_service_request_duration_seconds_count{code=\"200\",method=\"GET\",protocol=\"http\",service=\"s@file\"} 2",
        "traefik_service_responses_bytes_total{code=\"200\",method=\"GET\",protocol=\"http\",service=\"s@file\"} 20",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line}\n{out}");
    }
    // A 404 without a router counts for the entry point only.
    assert!(!out.contains("code=\"404\",method=\"GET\",protocol=\"http\",service"));
}

#[test]
fn series_are_bounded_and_methods_too() {
    let r = registry(2);
    for code in [200, 201, 202, 203] {
        r.observe(0, &req(None, code, 0.0));
    }
    assert_eq!(r.dropped.load(Ordering::Relaxed), 2);
    assert_eq!(method_index("BREW"), method_index("PROPFIND"));
    assert_eq!(METHODS[method_index("BREW") as usize], "EXTENSION_METHOD");
    assert_eq!(METHODS[method_index("PATCH") as usize], "PATCH");
}

#[test]
fn labels_are_escaped_and_protocols_read() {
    let mut t = Text::default();
    t.sample("x", &[("a", "q\"b\\n\nl".into())], 1.0);
    assert_eq!(t.finish(), "x{a=\"q\\\"b\\\\n\\nl\"} 1\n");
    assert_eq!(
        Protocol::of(Some(b"WebSocket"), None, None),
        Protocol::Websocket
    );
    assert_eq!(
        Protocol::of(None, Some(b"text/event-stream"), None),
        Protocol::Sse
    );
    let grpc_web = Some(&b"application/grpc-web+proto"[..]);
    assert_eq!(Protocol::of(None, None, grpc_web), Protocol::GrpcWeb);
    assert_eq!(
        Protocol::of(None, None, Some(b"application/grpc")),
        Protocol::Grpc
    );
    assert_eq!(Protocol::of(None, None, None), Protocol::Http);
}
