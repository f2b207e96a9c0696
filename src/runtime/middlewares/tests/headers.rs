//! headers: custom headers, CORS (Traefik's header_test.go cases), security headers.

use super::*;

/// Sorted `name: value` lines of a header map, for whole-map comparisons.
fn lines(h: &http::HeaderMap) -> Vec<String> {
    let mut v: Vec<String> = h
        .iter()
        .map(|(k, v)| format!("{}: {}", k, String::from_utf8_lossy(v.as_bytes())))
        .collect();
    v.sort();
    v
}

fn sorted(want: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Runs a request through `on_request` then a backend response (with `backend` headers)
/// through `on_response`; returns the final response headers.
fn round_trip(
    m: &Middleware,
    r: &mut http::request::Parts,
    c: &mut Ctx,
    backend: &[(&str, &str)],
) -> http::HeaderMap {
    assert!(run(m, r, c).is_none(), "answered");
    let mut resp = response(200, backend);
    m.on_response(c, &mut resp);
    resp.headers
}

#[test]
fn custom_request_headers() {
    let cases: &[(&str, &[&str])] = &[
        (
            "X-Custom-Request-Header = \"test_request\"",
            &["foo: bar", "x-custom-request-header: test_request"],
        ),
        (
            "X-Forwarded-For = \"\"\nX-Custom-Request-Header = \"\"\nFoo = \"\"",
            &[],
        ),
        ("Foo = \"test\"", &["foo: test"]),
    ];
    for (table, want) in cases {
        let m = mw(&format!("[headers.customRequestHeaders]\n{table}"));
        let mut r = req("GET", "/foo", &[("foo", "bar")]);
        let mut c = ctx();
        assert!(run(&m, &mut r, &mut c).is_none());
        assert_eq!(lines(&r.headers), sorted(want), "{table}");
        assert_eq!(
            c.drop_x_forwarded_for,
            table.contains("X-Forwarded-For"),
            "{table}"
        );
    }
}

#[test]
fn custom_host_header_rewrites_the_request_host() {
    let m = mw("[headers.customRequestHeaders]\nHost = \"example.com:8080\"");
    // HTTP/1 origin-form: the Host header.
    let mut r = req("GET", "/foo", &[("host", "example.org")]);
    assert!(run(&m, &mut r, &mut ctx()).is_none());
    assert_eq!(header(&r.headers, "host"), Some("example.com:8080"));
    assert_eq!(r.uri.to_string(), "/foo");
    // HTTP/2 (or absolute-form): the authority moves too, scheme, path and query stay.
    let mut r = req("GET", "https://example.org/foo?q", &[]);
    assert!(run(&m, &mut r, &mut ctx()).is_none());
    assert_eq!(header(&r.headers, "host"), Some("example.com:8080"));
    assert_eq!(r.uri.to_string(), "https://example.com:8080/foo?q");
    // An empty Host value cannot delete the host (Traefik: no-op).
    let m = mw("[headers.customRequestHeaders]\nHost = \"\"");
    let mut r = req("GET", "/", &[("host", "example.org")]);
    assert!(run(&m, &mut r, &mut ctx()).is_none());
    assert_eq!(header(&r.headers, "host"), Some("example.org"));
    // The allowed-hosts check sees the rewritten host, as in Traefik.
    let m = mw(
        "[headers]\nallowedHosts = [\"inner.lan\"]\n[headers.customRequestHeaders]\nHost = \"inner.lan\"",
    );
    assert!(run(&m, &mut req("GET", "https://outer.lan/", &[]), &mut ctx()).is_none());
}

#[test]
fn cors_preflights_like_traefik() {
    let base =
        "accessControlAllowMethods = [\"GET\", \"OPTIONS\", \"PUT\"]\naccessControlMaxAge = 600\n";
    let cases: &[(&str, Hs, &[&str])] = &[
        (
            "accessControlAllowOriginList = [\"https://foo.bar.org\"]",
            &[("access-control-request-headers", "origin")],
            &["access-control-allow-origin: https://foo.bar.org"],
        ),
        (
            "accessControlAllowOriginList = [\"*\"]",
            &[],
            &["access-control-allow-origin: *"],
        ),
        (
            "accessControlAllowOriginList = [\"*\"]\naccessControlAllowCredentials = true",
            &[],
            &[
                "access-control-allow-origin: *",
                "access-control-allow-credentials: true",
            ],
        ),
        (
            "accessControlAllowOriginList = [\"*\"]\naccessControlAllowHeaders = [\"origin\", \"X-Forwarded-For\"]",
            &[("access-control-request-headers", "origin")],
            &[
                "access-control-allow-origin: *",
                "access-control-allow-headers: origin,X-Forwarded-For",
            ],
        ),
        (
            "accessControlAllowOriginList = [\"https://other.org\"]",
            &[],
            &[],
        ),
    ];
    for (extra, req_headers, want_extra) in cases {
        let m = mw(&format!("[headers]\n{base}{extra}"));
        let mut headers = vec![
            ("access-control-request-method", "GET"),
            ("origin", "https://foo.bar.org"),
        ];
        headers.extend_from_slice(req_headers);
        let mut r = req("OPTIONS", "/foo", &headers);
        let resp = run(&m, &mut r, &mut ctx()).expect("preflight answered");
        assert_eq!(resp.status(), 200);
        assert!(resp.body().is_empty());
        let mut want = vec![
            "content-length: 0",
            "access-control-max-age: 600",
            "access-control-allow-methods: GET,OPTIONS,PUT",
        ];
        want.extend_from_slice(want_extra);
        assert_eq!(lines(resp.headers()), sorted(&want), "{extra}");
    }
}

#[test]
fn not_a_preflight_goes_through() {
    let cors = mw("[headers]\naccessControlAllowOriginList = [\"*\"]");
    let custom = mw("[headers.customRequestHeaders]\nfoo = \"bar\"");
    let requests: &[(&Middleware, &str, Hs)] = &[
        (&cors, "OPTIONS", &[("origin", "https://a.org")]),
        (
            &cors,
            "OPTIONS",
            &[("access-control-request-method", "GET")],
        ),
        (
            &cors,
            "OPTIONS",
            &[
                ("access-control-request-method", ""),
                ("origin", "https://a.org"),
            ],
        ),
        (
            &cors,
            "GET",
            &[
                ("access-control-request-method", "GET"),
                ("origin", "https://a.org"),
            ],
        ),
        (
            &custom,
            "OPTIONS",
            &[
                ("access-control-request-method", "GET"),
                ("origin", "https://a.org"),
            ],
        ),
    ];
    for (m, method, headers) in requests {
        assert!(
            run(m, &mut req(method, "/", headers), &mut ctx()).is_none(),
            "{method} {headers:?}"
        );
    }
}

#[test]
fn cors_responses_like_traefik() {
    let origin: &[(&str, &str)] = &[("origin", "https://foo.bar.org")];
    let cases: &[(&str, Hs, Hs, &[&str])] = &[
        (
            "accessControlAllowOriginList = [\"https://foo.bar.org\"]",
            origin,
            &[],
            &["access-control-allow-origin: https://foo.bar.org"],
        ),
        (
            "accessControlAllowOriginList = [\"*\"]",
            origin,
            &[],
            &["access-control-allow-origin: *"],
        ),
        (
            "accessControlAllowOriginListRegex = ['^https?://([a-z]+)\\.bar\\.org$']",
            origin,
            &[],
            &["access-control-allow-origin: https://foo.bar.org"],
        ),
        (
            "accessControlAllowOriginListRegex = ['([a-z]+)\\.bar']",
            origin,
            &[],
            &["access-control-allow-origin: https://foo.bar.org"],
        ),
        (
            "accessControlAllowOriginListRegex = ['([a-z]+)\\.bar\\.org']",
            &[("origin", "https://bar.org")],
            &[],
            &[],
        ),
        (
            "accessControlAllowOriginList = [\"https://foo.bar.org\"]",
            &[],
            &[],
            &[],
        ),
        (
            "accessControlAllowOriginList = [\"*\"]\naccessControlAllowCredentials = true",
            origin,
            &[],
            &[
                "access-control-allow-origin: *",
                "access-control-allow-credentials: true",
            ],
        ),
        (
            "accessControlAllowOriginList = [\"*\"]\naccessControlExposeHeaders = [\"origin\", \"X-Forwarded-For\"]",
            origin,
            &[],
            &[
                "access-control-allow-origin: *",
                "access-control-expose-headers: origin,X-Forwarded-For",
            ],
        ),
        (
            "accessControlAllowOriginList = [\"https://foo.bar.org\"]\naddVaryHeader = true",
            origin,
            &[],
            &[
                "access-control-allow-origin: https://foo.bar.org",
                "vary: Origin",
            ],
        ),
        (
            "accessControlAllowOriginList = [\"https://foo.bar.org\"]\naddVaryHeader = true",
            origin,
            &[("vary", "Testing")],
            &[
                "access-control-allow-origin: https://foo.bar.org",
                "vary: Testing,Origin",
            ],
        ),
        (
            "accessControlAllowOriginList = [\"https://foo.bar.org\"]\naddVaryHeader = true",
            origin,
            &[("vary", "Origin")],
            &[
                "access-control-allow-origin: https://foo.bar.org",
                "vary: Origin",
            ],
        ),
        (
            "accessControlAllowOriginList = [\"*\"]",
            origin,
            &[("access-control-allow-origin", "http://foo.bar.org")],
            &["access-control-allow-origin: *"],
        ),
        // Traefik answers `*` even without an Origin header.
        (
            "accessControlAllowOriginList = [\"*\"]",
            &[],
            &[],
            &["access-control-allow-origin: *"],
        ),
    ];
    for (cfg, req_headers, backend, want) in cases {
        let m = mw(&format!("[headers]\n{cfg}"));
        let got = round_trip(
            &m,
            &mut req("GET", "/foo", req_headers),
            &mut ctx(),
            backend,
        );
        assert_eq!(
            lines(&got),
            sorted(want),
            "{cfg} {req_headers:?} {backend:?}"
        );
    }
    assert!(
        compile_err("[headers]\naccessControlAllowOriginListRegex = [\"a(b\"]")
            .contains("regular expression")
    );
}

#[test]
fn custom_response_headers() {
    let cases: &[(&str, &[&str])] = &[
        (
            "Testing = \"foo\"\nTesting2 = \"bar\"",
            &["foo: bar", "testing: foo", "testing2: bar"],
        ),
        (
            "Testing = \"foo\"\nTesting2 = \"\"",
            &["foo: bar", "testing: foo"],
        ),
        ("Testing = \"foo\"\nFoo = \"\"", &["testing: foo"]),
    ];
    for (table, want) in cases {
        let m = mw(&format!("[headers.customResponseHeaders]\n{table}"));
        let got = round_trip(
            &m,
            &mut req("GET", "/foo", &[]),
            &mut ctx(),
            &[("foo", "bar")],
        );
        assert_eq!(lines(&got), sorted(want), "{table}");
    }
}

#[test]
fn security_headers() {
    let sts = "stsSeconds = 315360000\nstsIncludeSubdomains = true\nstsPreload = true\n";
    let sts_value = "strict-transport-security: max-age=315360000; includeSubDomains; preload";
    let cases: &[(&str, &str, Hs, &[&str])] = &[
        ("frameDeny = true", "http", &[], &["x-frame-options: DENY"]),
        (
            "frameDeny = true\ncustomFrameOptionsValue = \"SAMEORIGIN\"",
            "http",
            &[],
            &["x-frame-options: SAMEORIGIN"],
        ),
        (
            "contentTypeNosniff = true",
            "http",
            &[],
            &["x-content-type-options: nosniff"],
        ),
        (
            "browserXssFilter = true",
            "http",
            &[],
            &["x-xss-protection: 1; mode=block"],
        ),
        (
            "customBrowserXSSValue = \"0\"",
            "http",
            &[],
            &["x-xss-protection: 0"],
        ),
        (
            "contentSecurityPolicy = \"default-src 'self'\"",
            "http",
            &[],
            &["content-security-policy: default-src 'self'"],
        ),
        (
            "contentSecurityPolicyReportOnly = \"script-src 'none'\"",
            "http",
            &[],
            &["content-security-policy-report-only: script-src 'none'"],
        ),
        (
            "referrerPolicy = \"no-referrer\"",
            "http",
            &[],
            &["referrer-policy: no-referrer"],
        ),
        (
            "permissionsPolicy = \"camera=()\"",
            "http",
            &[],
            &["permissions-policy: camera=()"],
        ),
        (sts, "http", &[], &[]),
        (sts, "https", &[], &[sts_value]),
        (
            "stsSeconds = 60",
            "https",
            &[],
            &["strict-transport-security: max-age=60"],
        ),
        (
            "stsSeconds = 60\nforceSTSHeader = true",
            "http",
            &[],
            &["strict-transport-security: max-age=60"],
        ),
        ("stsSeconds = 60\nisDevelopment = true", "https", &[], &[]),
        (
            "stsSeconds = 60\n[headers.sslProxyHeaders]\nX-Forwarded-Proto = \"https\"",
            "http",
            &[("x-forwarded-proto", "https")],
            &["strict-transport-security: max-age=60"],
        ),
        (
            "stsSeconds = 60\n[headers.sslProxyHeaders]\nX-Forwarded-Proto = \"https\"",
            "http",
            &[("x-forwarded-proto", "http")],
            &[],
        ),
        (
            "publicKey = \"pin-sha256=\\\"x\\\"\"",
            "https",
            &[],
            &["public-key-pins: pin-sha256=\"x\""],
        ),
        ("publicKey = \"pin\"", "http", &[], &[]),
    ];
    for (cfg, scheme, req_headers, want) in cases {
        let m = mw(&format!("[headers]\n{cfg}"));
        let got = round_trip(
            &m,
            &mut req("GET", "/", req_headers),
            &mut ctx_from("10.0.0.1", scheme),
            &[],
        );
        assert_eq!(lines(&got), sorted(want), "{cfg} {scheme}");
    }
}

#[test]
fn custom_response_headers_override_security_headers() {
    let m = mw("[headers]\nframeDeny = true\ncontentTypeNosniff = true\n\
                [headers.customResponseHeaders]\nX-Frame-Options = \"\"\nX-Content-Type-Options = \"other\"");
    let got = round_trip(
        &m,
        &mut req("GET", "/", &[]),
        &mut ctx(),
        &[("x-frame-options", "ALLOW")],
    );
    assert_eq!(lines(&got), sorted(&["x-content-type-options: other"]));
}

#[test]
fn allowed_hosts() {
    let cfg = "[headers]\nallowedHosts = [\"Example.org\"]\nhostsProxyHeaders = [\"X-Forwarded-Host\"]\n\
               [headers.customResponseHeaders]\nX-Seen = \"yes\"";
    let cases: &[(&[(&str, &str)], bool)] = &[
        (&[("host", "example.org")], true),
        (&[("host", "EXAMPLE.ORG")], true),
        (&[("host", "example.org:8080")], false),
        (&[("host", "evil.org")], false),
        (
            &[("host", "evil.org"), ("x-forwarded-host", "example.org")],
            true,
        ),
        (
            &[("host", "example.org"), ("x-forwarded-host", "evil.org")],
            false,
        ),
        (&[("host", "example.org"), ("x-forwarded-host", "")], true),
        (&[], false),
    ];
    let m = mw(cfg);
    for (headers, ok) in cases {
        let answer = run(&m, &mut req("GET", "/", headers), &mut ctx());
        match (answer, ok) {
            (None, true) => {}
            (Some(resp), false) => {
                assert_eq!(resp.status(), 500);
                assert_eq!(resp.body().as_ref(), b"Bad Host\n");
                assert_eq!(
                    header(resp.headers(), "x-seen"),
                    Some("yes"),
                    "outer custom headers apply"
                );
            }
            (got, _) => panic!("{headers:?}: {:?}", got.map(|r| r.status())),
        }
    }
    let dev = mw("[headers]\nallowedHosts = [\"example.org\"]\nisDevelopment = true");
    assert!(
        run(
            &dev,
            &mut req("GET", "/", &[("host", "evil.org")]),
            &mut ctx()
        )
        .is_none()
    );
}

#[test]
fn on_response_without_request_note_is_safe() {
    let m = mw(
        "[headers]\nframeDeny = true\nstsSeconds = 10\naccessControlAllowOriginList = [\"https://a.org\"]",
    );
    let mut resp = response(200, &[]);
    m.on_response(&ctx(), &mut resp);
    assert_eq!(lines(&resp.headers), sorted(&["x-frame-options: DENY"]));
}

#[test]
fn refused_configurations() {
    let cases: &[(&str, &str)] = &[
        ("[headers]", "nothing set"),
        ("[headers]\nsslRedirect = true", "redirectScheme"),
        ("[headers]\nsslTemporaryRedirect = true", "redirectScheme"),
        ("[headers]\nsslHost = \"a.org\"", "redirectRegex"),
        ("[headers]\nsslForceHost = true", "redirectRegex"),
        (
            "[headers]\nfeaturePolicy = \"camera 'none'\"",
            "permissionsPolicy",
        ),
        (
            "[headers]\naccessControlAllowOrigin = \"*\"",
            "accessControlAllowOriginList",
        ),
        (
            "[headers.customRequestHeaders]\n\"Bad Name\" = \"x\"",
            "invalid header name",
        ),
        (
            "[headers.customResponseHeaders]\nX-A = \"line\\nbreak\"",
            "invalid header value",
        ),
        (
            "[headers]\nhostsProxyHeaders = [\"a b\"]",
            "invalid header name",
        ),
    ];
    for (src, want) in cases {
        let e = compile_err(src);
        assert!(e.contains(want), "{src}: {e}");
    }
    // Deprecated options set to their neutral value are harmless.
    mw("[headers]\nsslRedirect = false\nframeDeny = true");
}

#[test]
fn hostile_origins() {
    let m = mw("[headers]\naccessControlAllowOriginListRegex = [\".*\"]\naddVaryHeader = true");
    let mut r = req("GET", "/", &[]);
    r.headers.insert(
        "origin",
        http::HeaderValue::from_bytes(b"\xff\xfe").expect("obs-text"),
    );
    let got = round_trip(&m, &mut r, &mut ctx(), &[("vary", "A"), ("vary", "B")]);
    assert_eq!(
        got.get("access-control-allow-origin").map(|v| v.as_bytes()),
        Some(&b"\xff\xfe"[..])
    );
    assert_eq!(all(&got, "vary"), ["A,B,Origin"]);
}
