//! Table-driven tests: a TOML middleware table, a request head, the expected rewrite or answer.
//! Cases follow Traefik's own tests where they exist, plus hostile inputs. Shared helpers and
//! the configuration/compile tests live here; one file per middleware family.

mod auth;
mod headers;
mod ip;
mod limit;
mod path;
mod redirect;

use std::net::IpAddr;
use std::time::Instant;

use super::*;

/// Parses a `[http.middlewares.NAME]` body written as TOML (`[stripPrefix]\nprefixes = [...]`).
/// A list of header name/value pairs in a test table.
pub(super) type Hs<'a> = &'a [(&'a str, &'a str)];

/// An answer a middleware gave, boxed to keep `Result`s small.
pub(super) type Answer = Box<http::Response<bytes::Bytes>>;

pub(super) fn config(src: &str) -> MiddlewareConfig {
    match toml::from_str(src) {
        Ok(c) => c,
        Err(e) => panic!("config {src:?} does not parse: {e}"),
    }
}

pub(super) fn mw(src: &str) -> Middleware {
    match compile(&config(src)) {
        Ok(Compiled::One(m)) => m,
        Ok(Compiled::Chain(_)) => panic!("{src:?} is a chain"),
        Err(e) => panic!("{src:?} does not compile: {e}"),
    }
}

pub(super) fn compile_err(src: &str) -> String {
    match compile(&config(src)) {
        Ok(_) => panic!("{src:?} compiled but should not"),
        Err(e) => e.to_string(),
    }
}

pub(super) fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut b = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).expect("test request").into_parts().0
}

pub(super) fn ctx_from(ip: &str, scheme: &'static str) -> Ctx {
    let ip: IpAddr = ip.parse().expect("test ip");
    Ctx::new(ip, scheme, Instant::now())
}

pub(super) fn ctx() -> Ctx {
    ctx_from("10.0.0.1", "http")
}

/// Runs `on_request`; returns the answer if the middleware answered.
pub(super) fn run(
    m: &Middleware,
    r: &mut http::request::Parts,
    c: &mut Ctx,
) -> Option<http::Response<bytes::Bytes>> {
    let flow = match m.on_request(r, c) {
        Flow::Verify(v) => m.verified(v.run_blocking(), r, c),
        other => other,
    };
    match flow {
        Flow::Continue => None,
        Flow::Respond(resp) => Some(resp),
        Flow::Verify(_) => panic!("a second Verify"),
    }
}

pub(super) fn header<'a>(h: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.to_str().unwrap_or("<non-ascii>"))
}

pub(super) fn all(h: &http::HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

pub(super) fn response(status: u16, headers: &[(&str, &str)]) -> http::response::Parts {
    let mut b = http::Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).expect("test response").into_parts().0
}

#[test]
fn compile_checks_how_many_types_are_set() {
    assert!(matches!(
        compile(&MiddlewareConfig::default()),
        Err(MiddlewareError::Empty)
    ));
    let e = compile_err("[addPrefix]\nprefix = \"/a\"\n[stripPrefix]\nprefixes = [\"/b\"]");
    assert!(e.contains("addPrefix, stripPrefix"), "{e}");
}

#[test]
fn errors_buffering_and_circuit_breaker_compile() {
    for (text, kind) in [
        ("[buffering]\nmaxRequestBodyBytes = 2000000", "buffering"),
        (
            "[circuitBreaker]\nexpression = \"NetworkErrorRatio() > 0.5\"",
            "circuitBreaker",
        ),
        (
            "[errors]\nstatus = [\"500-599\"]\nservice = \"err\"\nquery = \"/{status}.html\"",
            "errors",
        ),
    ] {
        let cfg: MiddlewareConfig = toml::from_str(text).expect(text);
        match compile(&cfg) {
            Ok(Compiled::One(m)) => assert_eq!(m.type_name(), kind),
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn unsupported_types_parse_loosely_and_are_reported() {
    let cases = [
        (
            "[forwardAuth]\naddress = \"http://auth\"\n[forwardAuth.tls]\ninsecureSkipVerify = true",
            "forwardAuth",
        ),
        ("[digestAuth]\nusers = [\"a:b:c\"]", "digestAuth"),
        ("[grpcWeb]\nallowOrigins = [\"*\"]", "grpcWeb"),
        ("[contentType]", "contentType"),
        ("[passTLSClientCert]\npem = true", "passTLSClientCert"),
        ("[plugin.example]\nfoo = \"bar\"", "plugin"),
        (
            "[rateLimit]\naverage = 1\n[rateLimit.redis]\nendpoints = [\"x:6379\"]",
            "rateLimit.redis",
        ),
    ];
    for (src, name) in cases {
        match compile(&config(src)) {
            Err(MiddlewareError::Unsupported(n)) => assert_eq!(n, name, "{src}"),
            other => panic!("{src}: expected Unsupported, got {:?}", other.err()),
        }
    }
}

#[test]
fn unknown_fields_are_refused() {
    for src in [
        "[stripPrefix]\nprefix = \"/a\"",
        "[foo]\nbar = 1",
        "[headers]\nsslRedirectt = true",
    ] {
        assert!(toml::from_str::<MiddlewareConfig>(src).is_err(), "{src}");
    }
}

#[test]
fn chain_compiles_to_names() {
    let srcs = [
        "[chain]\nmiddlewares = [\"a\", \"b@file\"]",
        "[chain]\nmiddlewares = \"a,b@file\"",
    ];
    for src in srcs {
        match compile(&config(src)) {
            Ok(Compiled::Chain(names)) => assert_eq!(names, ["a", "b@file"]),
            _ => panic!("{src}: not a chain"),
        }
    }
}

#[test]
fn label_style_string_values_are_accepted() {
    let c = config(
        "[rateLimit]\naverage = \"100\"\nburst = \"50\"\nperiod = \"1m\"\n\
         [rateLimit.sourceCriterion]\nrequestHost = \"true\"",
    );
    let rl = c.rate_limit.expect("rateLimit");
    assert_eq!((rl.average, rl.burst), (100, 50));
    assert_eq!(rl.period, Some(GoDuration(60_000_000_000)));
    assert!(rl.source_criterion.expect("criterion").request_host);
    let c = config("[redirectScheme]\nscheme = \"https\"\nport = 8443\npermanent = \"true\"");
    let rs = c.redirect_scheme.expect("redirectScheme");
    assert_eq!((rs.port.as_str(), rs.permanent), ("8443", true));
    let c = config("[ipAllowList]\nsourceRange = \"10.0.0.0/8,192.168.1.1\"\nipStrategy = \"\"");
    let ip = c.ip_allow_list.expect("ipAllowList");
    assert_eq!(ip.source_range, ["10.0.0.0/8", "192.168.1.1"]);
    assert_eq!(ip.ip_strategy, Some(IpStrategyConfig::default()));
    assert!(toml::from_str::<MiddlewareConfig>("[rateLimit]\naverage = \"ten\"").is_err());
    assert!(
        toml::from_str::<MiddlewareConfig>("[retry]\ninitialInterval = \"5 parsecs\"").is_err()
    );
}

#[test]
fn go_durations() {
    let cases = [
        ("10", Some(10_000_000_000)),
        ("1s", Some(1_000_000_000)),
        ("1m30s", Some(90_000_000_000)),
        ("1.5h", Some(5_400_000_000_000)),
        ("250ms", Some(250_000_000)),
        ("3us", Some(3_000)),
        ("-2s", Some(-2_000_000_000)),
        ("0", Some(0)),
        ("", None),
        ("s", None),
        ("1x", None),
        ("1.2.3s", None),
        ("9999999999999h", None),
    ];
    for (s, want) in cases {
        assert_eq!(util::parse_go_duration(s), want, "{s:?}");
    }
    let fmt = |ns: u64| util::format_go_duration(std::time::Duration::from_nanos(ns));
    assert_eq!(fmt(0), "0s");
    assert_eq!(fmt(500_000_000), "500ms");
    assert_eq!(fmt(1_500_000), "1.5ms");
    assert_eq!(fmt(1_500_000_000), "1.5s");
    assert_eq!(fmt(120_000_000_000), "2m0s");
    assert_eq!(fmt(3_600_000_000_000), "1h0m0s");
    assert_eq!(fmt(999), "999ns");
}

#[test]
fn middlewares_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Middleware>();
    check::<Guard>();
    check::<Ctx>();
}

#[test]
fn retry_reports_its_parameters() {
    let m = mw("[retry]\nattempts = 3\ninitialInterval = \"100ms\"");
    assert_eq!(m.retry(), Some((3, std::time::Duration::from_millis(100))));
    assert_eq!(m.type_name(), "retry");
    assert!(run(&m, &mut req("GET", "/", &[]), &mut ctx()).is_none());
    assert_eq!(
        mw("[retry]\nattempts = 1").retry(),
        Some((1, std::time::Duration::ZERO))
    );
    assert!(compile_err("[retry]\nattempts = 0").contains("incorrect"));
    assert!(compile_err("[retry]\nattempts = 2\ninitialInterval = \"-1s\"").contains("negative"));
    assert_eq!(mw("[addPrefix]\nprefix = \"/a\"").retry(), None);
}

#[test]
fn every_middleware_survives_hostile_requests() {
    let configs = [
        "[addPrefix]\nprefix = \"/p\"",
        "[stripPrefix]\nprefixes = [\"/\", \"/é\", \"/%\"]",
        "[stripPrefix]\nprefixes = [\"/a\"]\nforceSlash = false",
        "[stripPrefixRegex]\nregex = [\"^/.\", \"^/[^/]*\"]",
        "[replacePath]\npath = \"/r\"",
        "[replacePathRegex]\nregex = \"(.)\"\nreplacement = \"$1%$1\"",
        "[redirectScheme]\nscheme = \"https\"\nport = \"8443\"",
        "[redirectRegex]\nregex = \"^(.*)$\"\nreplacement = \"$1/x\"",
        "[headers]\nframeDeny = true\nallowedHosts = [\"é\"]\nhostsProxyHeaders = [\"X-H\"]\n\
         accessControlAllowOriginListRegex = [\".\"]\naddVaryHeader = true\n\
         [headers.customRequestHeaders]\nHost = \"h\"\nX-Forwarded-For = \"\"",
        "[basicAuth]\nusers = [\"u:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/\"]\nheaderField = \"X-U\"",
        "[ipAllowList]\nsourceRange = [\"::/0\"]\n[ipAllowList.ipStrategy]\ndepth = 2\nipv6Subnet = 1",
        "[ipAllowList]\nsourceRange = [\"0.0.0.0/0\"]\n[ipAllowList.ipStrategy]\nexcludedIPs = [\"::/0\"]",
        "[rateLimit]\naverage = 1\nburst = 1000000000000\n[rateLimit.sourceCriterion]\nrequestHeaderName = \"X-K\"",
        "[rateLimit]\naverage = 9223372036854775807\nperiod = \"1ns\"",
        "[inFlightReq]\namount = 1\n[inFlightReq.sourceCriterion]\nrequestHost = true",
        "[retry]\nattempts = 4294967296",
    ];
    let uris = [
        "/",
        "*",
        "http://h/x?y",
        "/%",
        "/%zz/%",
        "/é/ü",
        "//",
        "/a/../b",
        "/?",
        "h:443",
    ];
    let odd: [&[u8]; 6] = [b"\xff\xfe", b"", b"[", b"a:b:c", b"Basic \xff", b"%%%"];
    for src in configs {
        let m = mw(src);
        for uri in uris {
            for value in odd {
                let method = if uri == "h:443" { "CONNECT" } else { "OPTIONS" };
                let mut r = req(method, uri, &[]);
                for name in [
                    "host",
                    "x-forwarded-for",
                    "origin",
                    "authorization",
                    "x-h",
                    "x-k",
                ] {
                    r.headers.insert(
                        name,
                        http::HeaderValue::from_bytes(value).expect("obs-text"),
                    );
                }
                r.headers.insert(
                    "access-control-request-method",
                    http::HeaderValue::from_static("GET"),
                );
                let mut c = ctx_from("2001:db8::1", "https");
                if run(&m, &mut r, &mut c).is_none() {
                    let mut resp = response(200, &[("vary", "x")]);
                    resp.headers.insert(
                        "vary",
                        http::HeaderValue::from_bytes(value).expect("obs-text"),
                    );
                    m.on_response(&c, &mut resp);
                }
            }
        }
    }
}
