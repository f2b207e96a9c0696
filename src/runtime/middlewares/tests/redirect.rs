//! redirectScheme and redirectRegex: Traefik's cases, adapted to an origin-form request (so a
//! bare host redirects to `host/` rather than `host`), plus methods and hostile hosts.

use super::*;

struct Case<'a> {
    cfg: &'a str,
    method: &'a str,
    host: &'a str,
    path: &'a str,
    tls: bool,
    headers: &'a [(&'a str, &'a str)],
    /// `None`: the request goes through unchanged.
    want: Option<(u16, &'a str)>,
}

const BASE: Case = Case {
    cfg: "",
    method: "GET",
    host: "foo",
    path: "/",
    tls: false,
    headers: &[],
    want: None,
};

fn check(cases: &[Case]) {
    for c in cases {
        let m = mw(c.cfg);
        let mut headers: Vec<(&str, &str)> = c.headers.to_vec();
        if !c.host.is_empty() {
            headers.push(("host", c.host));
        }
        let mut r = req(c.method, c.path, &headers);
        let before = r.uri.clone();
        let mut cx = ctx_from("10.0.0.1", if c.tls { "https" } else { "http" });
        let what = format!(
            "{} {} {}{} tls={} {:?}",
            c.cfg, c.method, c.host, c.path, c.tls, c.headers
        );
        match (run(&m, &mut r, &mut cx), c.want) {
            (None, None) => assert_eq!(r.uri, before, "{what}"),
            (Some(resp), Some((502, _))) => assert_eq!(resp.status(), 502, "{what}"),
            (Some(resp), Some((status, location))) => {
                assert_eq!(resp.status().as_u16(), status, "{what}");
                assert_eq!(header(resp.headers(), "location"), Some(location), "{what}");
                let reason = resp.status().canonical_reason().unwrap_or_default();
                assert_eq!(resp.body().as_ref(), reason.as_bytes(), "{what}");
            }
            (got, _) => panic!(
                "{what}: got {:?}",
                got.map(|r| (r.status(), r.headers().clone()))
            ),
        }
    }
}

#[test]
fn redirect_scheme_like_traefik() {
    let https = "[redirectScheme]\nscheme = \"https\"";
    let https_8443 = "[redirectScheme]\nscheme = \"https\"\nport = \"8443\"";
    let wss_9443 = "[redirectScheme]\nscheme = \"wss\"\nport = \"9443\"";
    let wss = "[redirectScheme]\nscheme = \"wss\"";
    check(&[
        Case {
            cfg: https,
            want: Some((302, "https://foo/")),
            ..BASE
        },
        Case {
            cfg: https,
            headers: &[("x-forwarded-proto", "http")],
            want: Some((302, "https://foo/")),
            ..BASE
        },
        Case {
            cfg: https,
            headers: &[("x-forwarded-proto", "https")],
            ..BASE
        },
        Case {
            cfg: https,
            headers: &[("x-forwarded-proto", "bar")],
            want: Some((302, "https://foo/")),
            ..BASE
        },
        Case {
            cfg: https,
            headers: &[("x-forwarded-proto", "ws")],
            want: Some((302, "https://foo/")),
            ..BASE
        },
        Case {
            cfg: https,
            headers: &[("x-forwarded-proto", "wss")],
            ..BASE
        },
        Case {
            cfg: https,
            headers: &[("x-forwarded-proto", "HTTPS")],
            ..BASE
        },
        Case {
            cfg: https,
            host: "foo:8080",
            want: Some((302, "https://foo/")),
            ..BASE
        },
        Case {
            cfg: https_8443,
            want: Some((302, "https://foo:8443/")),
            ..BASE
        },
        Case {
            cfg: https_8443,
            host: "foo:8000",
            want: Some((302, "https://foo:8443/")),
            ..BASE
        },
        Case {
            cfg: https_8443,
            host: "foo:8000",
            tls: true,
            want: Some((302, "https://foo:8443/")),
            ..BASE
        },
        Case {
            cfg: https,
            host: "foo:8000",
            tls: true,
            want: Some((302, "https://foo/")),
            ..BASE
        },
        Case {
            cfg: https,
            host: "foo:8000",
            path: "/theother",
            tls: true,
            want: Some((302, "https://foo/theother")),
            ..BASE
        },
        Case {
            cfg: https,
            tls: true,
            ..BASE
        },
        Case {
            cfg: https,
            host: "foo:443",
            tls: true,
            ..BASE
        },
        Case {
            cfg: "[redirectScheme]\nscheme = \"https\"\nport = \"8443\"\npermanent = true",
            want: Some((301, "https://foo:8443/")),
            ..BASE
        },
        Case {
            cfg: "[redirectScheme]\nscheme = \"http\"\nport = \"80\"",
            host: "foo:80",
            ..BASE
        },
        Case {
            cfg: "[redirectScheme]\nscheme = \"https\"\nport = 443",
            host: "foo:443",
            tls: true,
            ..BASE
        },
        Case {
            cfg: wss_9443,
            want: Some((302, "wss://foo:9443/")),
            ..BASE
        },
        Case {
            cfg: wss,
            want: Some((302, "wss://foo/")),
            ..BASE
        },
        Case {
            cfg: wss,
            host: "foo:5678",
            want: Some((302, "wss://foo/")),
            ..BASE
        },
        Case {
            cfg: https,
            host: "foo:443",
            want: Some((302, "https://foo/")),
            ..BASE
        },
        Case {
            cfg: "[redirectScheme]\nscheme = \"http\"\nport = \"8181\"",
            host: "foo:8080",
            want: Some((302, "http://foo:8181/")),
            ..BASE
        },
        Case {
            cfg: https,
            host: "foo:80",
            tls: true,
            want: Some((302, "https://foo/")),
            ..BASE
        },
        Case {
            cfg: https,
            host: "[::1]",
            want: Some((302, "https://[::1]/")),
            ..BASE
        },
        Case {
            cfg: https_8443,
            host: "[::1]",
            want: Some((302, "https://[::1]:8443/")),
            ..BASE
        },
        Case {
            cfg: https,
            host: "[::1]:80",
            want: Some((302, "https://[::1]/")),
            ..BASE
        },
        Case {
            cfg: https_8443,
            host: "[::1]:80",
            want: Some((302, "https://[::1]:8443/")),
            ..BASE
        },
        Case {
            cfg: https,
            path: "/a/b?c=d&e",
            want: Some((302, "https://foo/a/b?c=d&e")),
            ..BASE
        },
        Case {
            cfg: https,
            method: "POST",
            want: Some((307, "https://foo/")),
            ..BASE
        },
        Case {
            cfg: https,
            method: "HEAD",
            want: Some((307, "https://foo/")),
            ..BASE
        },
        Case {
            cfg: "[redirectScheme]\nscheme = \"https\"\npermanent = true",
            method: "PUT",
            want: Some((308, "https://foo/")),
            ..BASE
        },
        // Hostile hosts: never a panic; a URL Go would refuse answers 502.
        Case {
            cfg: https,
            host: "a b",
            want: Some((502, "")),
            ..BASE
        },
        Case {
            cfg: https,
            host: "evil.com/x",
            want: Some((302, "https://evil.com/x/")),
            ..BASE
        },
        Case {
            cfg: https,
            host: "",
            want: Some((302, "https:///")),
            ..BASE
        },
        Case {
            cfg: https,
            host: "h:1:2:3",
            want: Some((302, "https://h:2:3/")),
            ..BASE
        },
        Case {
            cfg: https,
            host: "é.example",
            want: Some((302, "https://%C3%A9.example/")),
            ..BASE
        },
    ]);
    assert!(compile_err("[redirectScheme]\npermanent = true").contains("target scheme"));
}

#[test]
fn redirect_regex_like_traefik() {
    let simple = "[redirectRegex]\nregex = '^(?:http?:\\/\\/)(foo)(\\.com)(:\\d+)(.*)$'\nreplacement = 'https://${1}bar$2:443$4'";
    let to_https_perm =
        "[redirectRegex]\nregex = '^http://'\nreplacement = 'https://$1'\npermanent = true";
    let to_https = "[redirectRegex]\nregex = '^http://'\nreplacement = 'https://$1'";
    check(&[
        Case {
            cfg: simple,
            host: "foo.com:80",
            want: Some((302, "https://foobar.com:443/")),
            ..BASE
        },
        Case {
            cfg: simple,
            host: "bar.com:80",
            ..BASE
        },
        Case {
            cfg: "[redirectRegex]\nregex = '^(.*)$'\nreplacement = 'http://192.168.0.%31/'",
            host: "foo.com:80",
            want: Some((502, "")),
            ..BASE
        },
        Case {
            cfg: to_https_perm,
            want: Some((301, "https://foo/")),
            ..BASE
        },
        Case {
            cfg: "[redirectRegex]\nregex = 'https://foo'\nreplacement = 'http://foo'\npermanent = true",
            tls: true,
            want: Some((301, "http://foo/")),
            ..BASE
        },
        Case {
            cfg: "[redirectRegex]\nregex = 'http://foo:80'\nreplacement = 'https://foo:443'",
            host: "foo:80",
            want: Some((302, "https://foo:443/")),
            ..BASE
        },
        Case {
            cfg: "[redirectRegex]\nregex = 'http://foo:80'\nreplacement = 'https://foo:443'",
            host: "foo:80",
            headers: &[("x-forwarded-proto", "https")],
            want: Some((302, "https://foo:443/")),
            ..BASE
        },
        Case {
            cfg: "[redirectRegex]\nregex = 'https://foo:443'\nreplacement = 'http://foo:80'",
            host: "foo:443",
            tls: true,
            want: Some((302, "http://foo:80/")),
            ..BASE
        },
        Case {
            cfg: to_https,
            method: "POST",
            want: Some((307, "https://foo/")),
            ..BASE
        },
        Case {
            cfg: to_https_perm,
            method: "POST",
            want: Some((308, "https://foo/")),
            ..BASE
        },
        Case {
            cfg: "[redirectRegex]\nregex = '^(.*)$'\nreplacement = '$1'",
            ..BASE
        },
        Case {
            cfg: "[redirectRegex]\nregex = '^http://foo/(.*)'\nreplacement = 'https://bar/new path/$1'",
            path: "/x?q=a",
            want: Some((302, "https://bar/new%20path/x?q=a")),
            ..BASE
        },
        Case {
            cfg: "[redirectRegex]\nregex = '^(.*)$'\nreplacement = \"/x\\u0001\"",
            want: Some((502, "")),
            ..BASE
        },
        Case {
            cfg: "[redirectRegex]\nregex = '^(.*)$'\nreplacement = 'https://h:port/'",
            want: Some((502, "")),
            ..BASE
        },
        Case {
            cfg: "[redirectRegex]\nregex = '^http://(?P<host>[^/]+)/(.*)$'\nreplacement = '/${host}/$2'",
            path: "/p",
            want: Some((302, "/foo/p")),
            ..BASE
        },
    ]);
    assert!(
        compile_err("[redirectRegex]\nregex = '^(.*'\nreplacement = '$1'")
            .contains("regular expression")
    );
}

#[test]
fn http2_requests_use_the_authority() {
    let m = mw("[redirectScheme]\nscheme = \"https\"");
    let mut r = req("GET", "http://h2.lan:8080/x?y", &[]);
    let resp = run(&m, &mut r, &mut ctx()).expect("redirect");
    assert_eq!(
        header(resp.headers(), "location"),
        Some("https://h2.lan/x?y")
    );
    let mut r = req("GET", "https://h2.lan/x", &[]);
    assert!(run(&m, &mut r, &mut ctx_from("10.0.0.1", "https")).is_none());
    // Absolute-form authority wins over the Host header, as Go's req.Host.
    let mut r = req("GET", "http://a.lan/", &[("host", "b.lan")]);
    let resp = run(&m, &mut r, &mut ctx()).expect("redirect");
    assert_eq!(header(resp.headers(), "location"), Some("https://a.lan/"));
}
