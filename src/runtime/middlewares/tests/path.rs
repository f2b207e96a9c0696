//! addPrefix, stripPrefix, stripPrefixRegex, replacePath, replacePathRegex.

use super::*;

/// (config, request URI, expected URI after the middleware, expected header values)
type Case<'a> = (&'a str, &'a str, &'a str, &'a [&'a str]);

fn check(cases: &[Case], header_name: &str) {
    for &(src, uri, want, headers) in cases {
        let m = mw(src);
        let mut r = req("GET", uri, &[]);
        let answer = run(&m, &mut r, &mut ctx());
        assert!(answer.is_none(), "{src} {uri}: answered");
        assert_eq!(r.uri.to_string(), want, "{src} {uri}");
        assert_eq!(
            all(&r.headers, header_name),
            headers,
            "{src} {uri}: {header_name}"
        );
    }
}

#[test]
fn add_prefix() {
    let cases: &[Case] = &[
        ("[addPrefix]\nprefix = \"/foo\"", "/bar", "/foo/bar", &[]),
        ("[addPrefix]\nprefix = \"/foo\"", "/", "/foo/", &[]),
        (
            "[addPrefix]\nprefix = \"foo\"",
            "/bar?x=1",
            "/foo/bar?x=1",
            &[],
        ),
        (
            "[addPrefix]\nprefix = \"/a b\"",
            "/c%2Fd",
            "/a%20b/c%2Fd",
            &[],
        ),
        ("[addPrefix]\nprefix = \"/50%\"", "/x", "/50%25/x", &[]),
        ("[addPrefix]\nprefix = \"/é\"", "/x", "/%C3%A9/x", &[]),
    ];
    check(cases, "x-forwarded-prefix");
    assert!(compile_err("[addPrefix]\nprefix = \"\"").contains("empty"));
}

#[test]
fn strip_prefix_like_traefik() {
    let fs = "forceSlash = false";
    let p = |list: &str, extra: &str| format!("[stripPrefix]\nprefixes = {list}\n{extra}");
    let cases: Vec<(String, &str, &str, &[&str])> = vec![
        (p("[]", ""), "/noprefixes", "/noprefixes", &[]),
        (p("[\"/\"]", ""), "/", "/", &["/"]),
        (p("[\"/\"]", fs), "/", "/", &["/"]),
        (p("[\"/stat\"]", ""), "/stat", "/", &["/stat"]),
        (p("[\"/stat\"]", fs), "/stat", "/", &["/stat"]),
        (p("[\"/stat/\"]", fs), "/stat/", "/", &["/stat/"]),
        (p("[\"/stat/\"]", fs), "/stat/us", "/us", &["/stat/"]),
        (p("[\"/stat/\"]", fs), "/status", "/status", &[]),
        (p("[\"/stat\"]", fs), "/stat/", "/", &["/stat"]),
        (
            p("[\"/stat\", \"/stat/us\"]", fs),
            "/stat/us",
            "/us",
            &["/stat"],
        ),
        (
            p("[\"/mismatch\", \"/stat\"]", ""),
            "/stat",
            "/",
            &["/stat"],
        ),
        (p("[\"/stat\"]", fs), "/status", "/us", &["/stat"]),
        (p("[\"/stat\"]", fs), "/stat/a%2Fb", "/a%2Fb", &["/stat"]),
        (
            p("[\"/stat\"]", ""),
            "/stat/x?y=1&z",
            "/x?y=1&z",
            &["/stat"],
        ),
        // forceSlash (the v3 default) keeps one leading slash only.
        (p("[\"/foo\"]", ""), "/foo//bar", "//bar", &["/foo"]),
        (p("[\"/foo\"]", fs), "/foo//bar", "//bar", &["/foo"]),
        // Prefixes match the decoded path; the escaped form is kept on the wire.
        (p("[\"/café\"]", ""), "/caf%C3%A9/menu", "/menu", &["/café"]),
        (p("[\"/a/b\"]", ""), "/a%2Fb/c", "/c", &["/a/b"]),
        // A malformed escape is a literal '%'.
        (p("[\"/%z\"]", ""), "/%z/x", "/x", &["/%z"]),
        (p("[\" /sp \"]", ""), "/sp/x", "/sp/x", &[]),
    ];
    for (src, uri, want, headers) in &cases {
        check(&[(src.as_str(), uri, want, headers)], "x-forwarded-prefix");
    }
}

#[test]
fn strip_prefix_appends_to_existing_header() {
    let m = mw("[stripPrefix]\nprefixes = [\"/a\"]");
    let mut r = req("GET", "/a/b", &[("x-forwarded-prefix", "/outer")]);
    assert!(run(&m, &mut r, &mut ctx()).is_none());
    assert_eq!(all(&r.headers, "x-forwarded-prefix"), ["/outer", "/a"]);
}

#[test]
fn strip_prefix_keeps_absolute_form_uris() {
    let m = mw("[stripPrefix]\nprefixes = [\"/api\"]");
    let mut r = req("GET", "https://example.org/api/v1?q", &[]);
    assert!(run(&m, &mut r, &mut ctx()).is_none());
    assert_eq!(r.uri.to_string(), "https://example.org/v1?q");
}

#[test]
fn strip_prefix_regex_like_traefik() {
    let src =
        "[stripPrefixRegex]\nregex = [\"/a/api/\", \"/b/([a-z0-9]+)/\", \"/c/[a-z0-9]+/[0-9]+/\"]";
    let cases: &[Case] = &[
        (src, "/a/test", "/a/test", &[]),
        (src, "/a/test/", "/a/test/", &[]),
        (src, "/a/api/", "/", &["/a/api/"]),
        (src, "/a/api/test", "/test", &["/a/api/"]),
        (src, "/a/api/test/", "/test/", &["/a/api/"]),
        (src, "/b/api/", "/", &["/b/api/"]),
        (src, "/b/api", "/b/api", &[]),
        (src, "/b/api/test1", "/test1", &["/b/api/"]),
        (src, "/b/api2/test2", "/test2", &["/b/api2/"]),
        (src, "/c/api/123/", "/", &["/c/api/123/"]),
        (src, "/c/api/123", "/c/api/123", &[]),
        (src, "/c/api/123/test3", "/test3", &["/c/api/123/"]),
        (src, "/c/api/abc/test4", "/c/api/abc/test4", &[]),
        (src, "/a/api/a%2Fb", "/a%2Fb", &["/a/api/"]),
        (src, "/x/a/api/y", "/x/a/api/y", &[]),
        // Matched on the decoded path, cut at the same place in the escaped one.
        (src, "/a%2Fapi/rest", "/rest", &["/a/api/"]),
        // Invalid UTF-8 is not matched by Unicode classes (Go would see U+FFFD).
        (
            "[stripPrefixRegex]\nregex = [\"^/[^/]+\"]",
            "/%FF%FE/x",
            "/%FF%FE/x",
            &[],
        ),
        ("[stripPrefixRegex]\nregex = [\"x*\"]", "/a", "/a", &[]),
    ];
    check(cases, "x-forwarded-prefix");
    assert!(compile_err("[stripPrefixRegex]\nregex = [\"(\"]").contains("regular expression"));
}

#[test]
fn replace_path() {
    let cases: &[Case] = &[
        (
            "[replacePath]\npath = \"/foo\"",
            "/bar?q=1",
            "/foo?q=1",
            &["/bar"],
        ),
        (
            "[replacePath]\npath = \"/foo%2Fbar\"",
            "/x",
            "/foo%2Fbar",
            &["/x"],
        ),
        (
            "[replacePath]\npath = \"/a b\"",
            "/x%20y",
            "/a%20b",
            &["/x y"],
        ),
        ("[replacePath]\npath = \"\"", "/x", "/", &["/x"]),
        // The header carries the decoded path unless its escapes are not Go's canonical ones.
        ("[replacePath]\npath = \"/a\"", "/x%2Fy", "/a", &["/x%2Fy"]),
        ("[replacePath]\npath = \"/a\"", "/x%2fy", "/a", &["/x%2fy"]),
        (
            "[replacePath]\npath = \"/a\"",
            "/caf%C3%A9",
            "/a",
            &["/café"],
        ),
        ("[replacePath]\npath = \"/a\"", "/x%0Ay", "/a", &["/x%0Ay"]),
    ];
    check(cases, "x-replaced-path");
    assert!(compile_err("[replacePath]\npath = \"/bad%zz\"").contains("escape"));
}

#[test]
fn replace_path_regex_like_traefik() {
    let rx =
        |re: &str, rep: &str| format!("[replacePathRegex]\nregex = '{re}'\nreplacement = '{rep}'");
    let cases: Vec<(String, &str, &str, &[&str])> = vec![
        (
            rx("^/whoami/(.*)", "/who-am-i/$1"),
            "/whoami/and/whoami",
            "/who-am-i/and/whoami",
            &["/whoami/and/whoami"],
        ),
        (
            rx("/whoami", "/who-am-i"),
            "/whoami/and/whoami",
            "/who-am-i/and/who-am-i",
            &["/whoami/and/whoami"],
        ),
        (
            rx("/no-match", "/whoami"),
            "/whoami/and/whoami",
            "/whoami/and/whoami",
            &[],
        ),
        (
            rx("^(?i)/downloads/([^/]+)/([^/]+)$", "/downloads/$1-$2"),
            "/downloads/src/source.go",
            "/downloads/src-source.go",
            &["/downloads/src/source.go"],
        ),
        (
            rx("/aaa/bbb", "/foo%2Fbar"),
            "/aaa/bbb",
            "/foo%2Fbar",
            &["/aaa/bbb"],
        ),
        (
            rx("/aaa%2Fbbb", "/foo/bar"),
            "/aaa%2Fbbb",
            "/foo/bar",
            &["/aaa%2Fbbb"],
        ),
        (rx("/aaa/bbb", "/foo/bar"), "/aaa%2Fbbb", "/aaa%2Fbbb", &[]),
        (
            rx("^/foo/(.*)", "/$1"),
            "/foo/%08bar",
            "/%08bar",
            &["/foo/%08bar"],
        ),
        (
            rx("^/(?P<v>v[0-9]+)/(.*)", "/api/${v}/$2"),
            "/v2/x?k",
            "/api/v2/x?k",
            &["/v2/x"],
        ),
        (
            rx("^/(.*)", "/$1 and spaces"),
            "/x",
            "/x%20and%20spaces",
            &["/x"],
        ),
        (
            rx(" ^/trim$ ", " /trimmed "),
            "/trim",
            "/trimmed",
            &["/trim"],
        ),
    ];
    for (src, uri, want, headers) in &cases {
        check(&[(src.as_str(), uri, want, headers)], "x-replaced-path");
    }
    assert!(compile_err(&rx("^(?err)/x", "/y")).contains("regular expression"));
}

#[test]
fn replace_path_regex_bad_escape_answers_500() {
    let m = mw("[replacePathRegex]\nregex = '^/(.*)'\nreplacement = '/%zz$1'");
    let answer = run(&m, &mut req("GET", "/x", &[]), &mut ctx()).expect("500");
    assert_eq!(answer.status(), 500);
}

#[test]
fn byte_regex_never_cuts_inside_a_character() {
    // `.` is one character, never one byte of it (Rust-only `(?-u)` is refused: Go syntax).
    let m = mw("[stripPrefixRegex]\nregex = [\"^/.\"]");
    let mut r = req("GET", "/%C3%A9/x", &[]);
    assert!(run(&m, &mut r, &mut ctx()).is_none());
    assert_eq!(r.uri.path(), "/x");
    assert!(
        compile_err("[stripPrefixRegex]\nregex = [\"(?-u)^/.\"]").contains("regular expression")
    );
}
