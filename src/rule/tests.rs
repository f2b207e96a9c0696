//! Table-driven tests of the rule language: (rule, request, expected) rows for every matcher and
//! operator, (rule, column, message) rows for errors, host keys, mentioned hosts, default
//! priorities and host canonicalisation. Limits and the fuzz live in `fuzz_tests.rs`.
//! Expected values come from Traefik's own tests and sources (cited per group).

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::{Request, Rule, canonical_host, default_priority};

/// A request from a compact spec: `METHOD host path[?query] [ip=ADDR] [Name=Value]...`.
/// `host` goes through [`canonical_host`]; `-` means no host. Default peer: 10.0.0.1.
pub(super) struct Spec {
    host: String,
    path: String,
    query: Option<String>,
    method: Method,
    headers: HeaderMap,
    ip: IpAddr,
}

impl Spec {
    pub(super) fn req(&self) -> Request<'_> {
        Request {
            host: &self.host,
            path: &self.path,
            query: self.query.as_deref(),
            method: &self.method,
            headers: &self.headers,
            client_ip: self.ip,
        }
    }
}

pub(super) fn spec(s: &str) -> Spec {
    let mut parts = s.split(' ');
    let method = Method::from_bytes(parts.next().unwrap_or("GET").as_bytes()).expect("method");
    let host = match parts.next().unwrap_or("-") {
        "-" => String::new(),
        h => canonical_host(h).into_owned(),
    };
    let target = parts.next().unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    let mut headers = HeaderMap::new();
    let mut ip: IpAddr = [10, 0, 0, 1].into();
    for p in parts {
        if let Some(addr) = p.strip_prefix("ip=") {
            ip = addr.parse().expect("ip");
        } else if let Some((k, v)) = p.split_once('=') {
            let v = v.replace('_', " ");
            let name = HeaderName::from_bytes(k.as_bytes()).expect("header name");
            headers.append(
                name,
                HeaderValue::from_bytes(v.as_bytes()).expect("header value"),
            );
        }
    }
    Spec {
        host,
        path,
        query,
        method,
        headers,
        ip,
    }
}

pub(super) fn check(rule: &str, request: &str) -> bool {
    let r = Rule::parse(rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
    r.matches(&spec(request).req())
}

#[rustfmt::skip]
pub(super) const MATCH: &[(&str, &str, bool)] = &[
    // Host: case-insensitive, port and one trailing dot ignored (matcher_test.go TestHostMatcher).
    ("Host(`example.com`)", "GET example.com /", true),
    ("Host(`example.com`)", "GET example.com:8080 /path", true),
    ("Host(`example.com`)", "GET EXAMPLE.COM /path", true),
    ("Host(`example.com`)", "GET example.org /", false),
    ("Host(`example.com`)", "GET example.com. /", true),
    ("Host(`example.com.`)", "GET example.com /", true),
    ("Host(`EXAMPLE.COM`)", "GET example.com /", true),
    ("Host(`example.com`)", "GET - /", false),
    ("Host(`xn--9t9h.com`)", "GET xn--9t9h.com /", true),
    ("Host(`::1`)", "GET [::1]:8080 /", true),
    // Traefik 3.7 strips the brackets of a bare literal: `[10::10]` is `10::10`, and a rule
    // written with brackets matches no request (both checked against it).
    ("Host(`::1`)", "GET [::1] /", true),
    ("Host(`[::1]`)", "GET [::1] /", false),
    ("Host(`example.com:8080`)", "GET example.com:8080 /", false),
    // Wildcards (Traefik 3.7 muxer.DomainMatchHostExpression, double wildcard PR #13882).
    ("Host(`*.example.com`)", "GET foo.example.com /", true),
    ("Host(`*.example.com`)", "GET Foo.Example.com /", true),
    ("Host(`*.example.com`)", "GET bar.foo.example.com /", false),
    ("Host(`*.example.com`)", "GET example.com /", false),
    ("Host(`*.example.com`)", "GET .example.com /", true),
    ("Host(`**.example.com`)", "GET foo.example.com /", true),
    ("Host(`**.example.com`)", "GET bar.foo.example.com /", true),
    ("Host(`**.example.com`)", "GET example.com /", false),
    ("Host(`**.example.com`)", "GET .example.com /", false),
    ("Host(`**.example.com`)", "GET fooexample.com /", false),
    ("Host(`*`)", "GET anything.at.all /", true),
    ("Host(`*`)", "GET - /", true),
    ("Host(`*.`)", "GET localhost /", true),
    ("Host(`*.`)", "GET a.b /", false),
    ("Host(`*foo.com`)", "GET xfoo.com /", false),
    ("Host(`.`)", "GET - /", false),
    ("Host(`.`)", "GET x /", false),
    // v2 multi-argument Host and HostHeader.
    ("Host(`a.com`, `b.com`)", "GET b.com /", true),
    ("Host(`a.com`, `b.com`)", "GET c.com /", false),
    ("HostHeader(`a.com`)", "GET A.com /", true),
    // Matcher name spellings (rules.NewParser registers exact, lower, UPPER, Title).
    ("host(`a.com`)", "GET a.com /", true),
    ("HOST(`a.com`)", "GET a.com /", true),
    ("Hostregexp(`^a`)", "GET a.com /", true),
    ("clientip(`10.0.0.0/8`)", "GET a /", true),
    // HostRegexp: unanchored, case-sensitive, against the canonical (lower-case) host.
    ("HostRegexp(`^[a-zA-Z-]+\\.com$`)", "GET example.com:8080 /", true),
    ("HostRegexp(`^[a-zA-Z-]+\\.com$`)", "GET example.org /", false),
    ("HostRegexp(`^[A-Z]+\\.com$`)", "GET EXAMPLE.com /", false),
    ("HostRegexp(`(?i)^[A-Z]+\\.com$`)", "GET example.com /", true),
    ("HostRegexp(`example`)", "GET www.example.org /", true),
    ("HostRegexp(`^.+\\.example\\.com$`)", "GET a.b.example.com /", true),
    // HostRegexp v2 templates: anchored, `{name}` is one label.
    ("HostRegexp(`{sub:[a-z]+}.example.com`)", "GET foo.example.com /", true),
    ("HostRegexp(`{sub:[a-z]+}.example.com`)", "GET foo.example.com.evil /", false),
    ("HostRegexp(`{sub:[a-z]+}.example.com`)", "GET f00.example.com /", false),
    ("HostRegexp(`{sub}.Example.com`)", "GET foo.example.com /", true),
    ("HostRegexp(`{sub}.example.com`)", "GET a.b.example.com /", false),
    ("HostRegexp(`{catchall:.*}`)", "GET whatever.org /", true),
    ("HostRegexp(`{x:[a-z]{2}}.a.com`)", "GET ab.a.com /", true),
    ("HostRegexp(`a.com`, `{s:[0-9]+}.b.com`)", "GET 12.b.com /", true),
    ("HostRegexp(`a.com`, `{s:[0-9]+}.b.com`)", "GET xa.com /", false),
    ("HostRegexp(`a.com`, `{s:[0-9]+}.b.com`)", "GET a.com /", true),
    // Path: exact, on the routing path (non-reserved %XX decoded; mux.go withRoutingPath).
    ("Path(`/css`)", "GET a /css", true),
    ("Path(`/css`)", "GET a /css/", false),
    ("Path(`/css`)", "GET a /CSS", false),
    ("Path(`/css`)", "GET a /css?x=1", true),
    ("Path(`/foo bar`)", "GET a /foo%20bar", true),
    ("Path(`/a/b`)", "GET a /a%2Fb", false),
    ("Path(`/a%2Fb`)", "GET a /a%2Fb", true),
    ("Path(`/a/b`)", "GET a /a%2fb", true),
    ("Path(`/a%25`)", "GET a /a%25", true),
    ("Path(`/é`)", "GET a /%C3%A9", true),
    ("Path(`/a`)", "GET a /a%zz", false),
    ("!Path(`/a`)", "GET a /b%z", false),
    ("Host(`a`)", "GET a /b%z", true),
    ("Path(`/{/b`)", "GET a /{%2Fb", true),
    ("Path(`/|/%21`)", "GET a /|/!", true),
    ("Path(`/|/!`)", "GET a /|/!", false),
    ("Path(`/a`, `/b`)", "GET a /b", true),
    // PathPrefix.
    ("PathPrefix(`/css`)", "GET a /css/main.css", true),
    ("PathPrefix(`/css`)", "GET a /css", true),
    ("PathPrefix(\"/css\")", "GET a /cssx", true),
    ("PathPrefix(`/css`)", "GET a /html", false),
    ("PathPrefix(`/api`, `/v2`)", "GET a /v2/x", true),
    // PathRegexp: unanchored Go regexps; braces Go cannot read as repeats are literal.
    ("PathRegexp(`^/(css|js)`)", "GET a /js/main.js", true),
    ("PathRegexp(`^/(css|js)`)", "GET a /CSS", false),
    ("PathRegexp(`\\.(jpe?g|png)$`)", "GET a /x/y.jpg", true),
    ("PathRegexp(\"/{path:(css|js)}\")", "GET a /{path:css}/", true),
    ("PathRegexp(\"/{path:(css|js)}\")", "GET a /%7Bpath:js%7D", true),
    ("PathRegexp(\"/{path:(css|js)}\")", "GET a /css", false),
    ("PathRegexp(`^/\\d+$`)", "GET a /123", true),
    ("PathRegexp(`^/\\d+$`)", "GET a /%D9%A3", false),
    ("PathRegexp(`^/\\w+$`)", "GET a /%C3%A9", false),
    ("PathRegexp(`^/(?i)ABC$`)", "GET a /abc", true),
    ("PathRegexp(`^/a{2}$`)", "GET a /aa", true),
    ("PathRegexp(`^/a{,2}$`)", "GET a /a{,2}", true),
    ("PathRegexp(`^/\\Q.*\\E$`)", "GET a /.*", true),
    ("PathRegexp(`^/\\Q.*\\E$`)", "GET a /ab", false),
    ("PathRegexp(`^/[[]x$`)", "GET a /[x", true),
    ("PathRegexp(`^/[[]x$`)", "GET a /%5Bx", false),
    ("PathRegexp(`^/%5B[&]$`)", "GET a /%5B&", true),
    ("PathRegexp(`^/\\141$`)", "GET a /a", true),
    ("PathRegexp(`\\bfoo\\b`)", "GET a /x/foo/y", true),
    ("PathRegexp(`\\bfoo\\b`)", "GET a /x/foos", false),
    ("PathRegexp(`\\bfoo\\b`)", "GET a /%C3%A9foo", true),
    ("PathRegexp(`\\b{start}`)", "GET a /b{start}", true),
    ("PathRegexp(`^/[a\\s]+$`)", "GET a /a%20a%0B", false),
    // Method: rule upper-cased, request compared as is.
    ("Method(`GET`)", "GET a /", true),
    ("Method(`get`)", "GET a /", true),
    ("Method(`GET`)", "get a /", false),
    ("Method(`GET`)", "POST a /", false),
    ("Method(`GET`, `POST`)", "POST a /", true),
    // Header: canonical name, exact value, any of several values (TestHeaderMatcher).
    ("Header(`X-Forwarded-Proto`, `https`)", "GET a / X-Forwarded-Proto=https", true),
    ("Header(`x-forwarded-proto`, `https`)", "GET a / X-Forwarded-Proto=https", true),
    ("Header(`X-Forwarded-Proto`, `https`)", "GET a / X-Forwarded-Proto=http X-Forwarded-Proto=https", true),
    ("Header(`X-Forwarded-Proto`, `https`)", "GET a / X-Forwarded-Proto=HTTPS", false),
    ("Header(`X-Forwarded-Proto`, `https`)", "GET a / X-Forwarded-Host=https", false),
    ("Header(`X-A`, `a, b`)", "GET a / X-A=a,_b", true),
    ("Header(`X-A`, `b`)", "GET a / X-A=a,_b", false),
    ("Header(`Host`, `a`)", "GET a / Host=a", false),
    ("Header(`Bad Name`, `a`)", "GET a /", false),
    ("!Header(`Bad Name`, `a`)", "GET a /", true),
    ("HeaderRegexp(`X-Forwarded-Proto`, `^https?$`)", "GET a / X-Forwarded-Proto=ws X-Forwarded-Proto=http", true),
    ("HeaderRegexp(`X-Forwarded-Proto`, `^https?$`)", "GET a / X-Forwarded-Proto=HTTPS", false),
    ("HeaderRegexp(`X-Forwarded-Proto`, `http{secure:s?}`)", "GET a / X-Forwarded-Proto=http{secure:}", true),
    ("HeaderRegexp(`X-Forwarded-Proto`, `http{secure:s?}`)", "GET a / X-Forwarded-Proto=https", false),
    ("HeaderRegexp(`Content-Type`, `(?i)^application/(json|yaml)$`)", "GET a / Content-Type=Application/JSON", true),
    // v2 Headers / HeadersRegexp: every pair must hold.
    ("Headers(`X-A`, `1`)", "GET a / X-A=1", true),
    ("Headers(`X-A`, `1`, `X-B`, `2`)", "GET a / X-A=1", false),
    ("Headers(`X-A`, `1`, `X-B`, `2`)", "GET a / X-A=1 X-B=2", true),
    ("HeadersRegexp(`X-A`, `^[0-9]+$`)", "GET a / X-A=42", true),
    // Query (TestQueryMatcher): any value; one argument means the empty value.
    ("Query(`q`, `traefik`)", "GET a /?q=traefik", true),
    ("Query(`q`, `traefik`)", "GET a /?rel=ddg&q=traefik", true),
    ("Query(`q`, `traefik`)", "GET a /?q=awesome&q=traefik", true),
    ("Query(`q`, `traefik`)", "GET a /?q=TRAEFIK", false),
    ("Query(`q`, `traefik`)", "GET a /?Q=traefik", false),
    ("Query(`q`, `traefik`)", "GET a /", false),
    ("Query(`q`, `a b`)", "GET a /?q=a+b", true),
    ("Query(`q`, `a b`)", "GET a /?q=a%20b", true),
    ("Query(`q k`, `v`)", "GET a /?q%20k=v", true),
    ("Query(`q`, `a`)", "GET a /?q=a;x=1", false),
    ("Query(`q`, `a`)", "GET a /?q=a&q=%zz", true),
    ("Query(`q`, `a`)", "GET a /?q=%zz", false),
    ("Query(`q`, `a=b`)", "GET a /?q=a=b", true),
    ("Query(`mobile`)", "GET a /?mobile", true),
    ("Query(`mobile`)", "GET a /?mobile=", true),
    ("Query(`mobile`)", "GET a /?mobile=true", false),
    ("Query(`mobile`)", "GET a /", false),
    // v2 Query(`k=v`, ...): first value of each key; `k=` is presence.
    ("Query(`q=traefik`)", "GET a /?q=traefik", true),
    ("Query(`q=traefik`)", "GET a /?q=nginx&q=traefik", false),
    ("Query(`q=`)", "GET a /?q=anything", true),
    ("Query(`q=`)", "GET a /?q", true),
    ("Query(`q=`)", "GET a /?r=1", false),
    ("Query(`a=1`, `b=2`)", "GET a /?b=2;a=1", true),
    ("Query(`a=1`, `b=2`)", "GET a /?a=1", false),
    // QueryRegexp (TestQueryRegexpMatcher).
    ("QueryRegexp(`q`, `^(traefik|nginx)$`)", "GET a /?q=awesome&q=nginx", true),
    ("QueryRegexp(`q`, `^(traefik|nginx)$`)", "GET a /?q=NGINX", false),
    ("QueryRegexp(`q`, `^.*$`)", "GET a /?q=", true),
    ("QueryRegexp(`q`, `^.*$`)", "GET a /?Q=x", false),
    ("QueryRegexp(`q`, `{value:(traefik|nginx)}`)", "GET a /?q={value:traefik}", true),
    ("QueryRegexp(`q`, `{value:(traefik|nginx)}`)", "GET a /?q=traefik", false),
    ("QueryRegexp(`q`, `^a b$`)", "GET a /?q=a+b", true),
    ("QueryRegexp(`q`)", "GET a /?q", true),
    // ClientIP: IPs and CIDRs, v4 and v6, IPv4-mapped peers (pkg/ip/checker.go).
    ("ClientIP(`10.0.0.1`)", "GET a / ip=10.0.0.1", true),
    ("ClientIP(`10.0.0.1`)", "GET a / ip=10.0.0.2", false),
    ("ClientIP(`192.168.1.0/24`)", "GET a / ip=192.168.1.100", true),
    ("ClientIP(`192.168.1.0/24`)", "GET a / ip=192.168.2.1", false),
    ("ClientIP(`1.2.3.4/24`)", "GET a / ip=1.2.3.255", true),
    ("ClientIP(`192.168.1.0/24`)", "GET a / ip=::ffff:192.168.1.7", true),
    ("ClientIP(`::ffff:192.168.1.7`)", "GET a / ip=192.168.1.7", true),
    ("ClientIP(`::ffff:192.168.1.0/120`)", "GET a / ip=192.168.1.9", true),
    ("ClientIP(`0.0.0.0/0`)", "GET a / ip=::1", false),
    ("ClientIP(`::/0`)", "GET a / ip=10.1.1.1", false),
    ("ClientIP(`::/0`)", "GET a / ip=2001:db8::1", true),
    ("ClientIP(`fe80::/10`)", "GET a / ip=fe80::1", true),
    ("ClientIP(`2a03:4000:6:d080::/64`)", "GET a / ip=2a03:4000:7:d080::", false),
    ("ClientIP(`::1`)", "GET a / ip=::1", true),
    ("ClientIP(`10.0.0.0/8`, `::1`)", "GET a / ip=::1", true),
    // Operators: precedence (&& over ||), negation, parentheses.
    ("Host(`a`) && Path(`/x`)", "GET a /x", true),
    ("Host(`a`) && Path(`/x`)", "GET a /y", false),
    ("Host(`a`) || Path(`/x`)", "GET b /x", true),
    ("Host(`a`) || Host(`b`) && Path(`/x`)", "GET a /y", true),
    ("(Host(`a`) || Host(`b`)) && Path(`/x`)", "GET a /y", false),
    ("!Host(`a`)", "GET a /", false),
    ("!Host(`a`)", "GET b /", true),
    ("!!Host(`a`)", "GET a /", true),
    ("!(Host(`a`) && Path(`/x`))", "GET a /y", true),
    ("!(Host(`a`) || Path(`/x`))", "GET b /y", true),
    ("!(Host(`a`) || Path(`/x`))", "GET b /x", false),
    ("Host(`a`) && !(Path(`/x`) || !Method(`GET`))", "GET a /y", true),
    ("Host(`a`) && !(Path(`/x`) || !Method(`GET`))", "POST a /y", false),
    ("Host(`a`)&&Path(`/x`)||Host(`c`)", "GET c /q", true),
    ("  Host( `a` ,\n\t) ", "GET a /", true),
    // Double-quoted strings with Go escapes; raw strings keep backslashes.
    ("Path(\"/a\\tb\")", "GET a /a%09b", true),
    ("Path(\"/\\u00e9\")", "GET a /%C3%A9", true),
    ("Path(\"/\\xc3\\xa9\")", "GET a /%C3%A9", true),
    ("Path(\"/\\141\")", "GET a /a", true),
    ("Header(`X`, \"a\\\"b\")", "GET a / X=a\"b", true),
    ("Header(`X`, `a\\\"b`)", "GET a / X=a\\\"b", true),
];

#[test]
fn matching_table() {
    let mut failures = Vec::new();
    for (rule, request, expected) in MATCH {
        if check(rule, request) != *expected {
            failures.push(format!("{rule}  on  {request}: expected {expected}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[rustfmt::skip]
pub(super) const ERRORS: &[(&str, usize, &str)] = &[
    ("", 1, "empty rule"),
    ("   ", 1, "empty rule"),
    ("Hots(`a`)", 1, "unknown matcher `Hots`; expected one of Host, HostRegexp, Path"),
    ("Hots(`a`)", 1, "did you mean `Host`?"),
    ("hOST(`a`)", 1, "write `Host`, `host`, `HOST` or `Host`"),
    ("Host(`a`) && PathPrefx(`/`)", 14, "did you mean `PathPrefix`?"),
    ("Host(`a)", 6, "unterminated string"),
    ("Host(\"a)", 6, "unterminated string"),
    ("Host(\"a\nb\")", 6, "newline"),
    ("Host('a')", 6, "single quotes"),
    ("Host(`a`", 5, "unbalanced parentheses"),
    ("(Host(`a`)", 1, "unbalanced parentheses"),
    ("Host(`a`))", 10, "without a matching `(`"),
    ("Host(`a`) Path(`/`)", 11, "unexpected `Path` after a complete expression"),
    ("Host(`a`) &&", 13, "expected a matcher, found the end of the rule"),
    ("Host(`a`) & Path(`/`)", 11, "expected `&&`"),
    ("Host(`a`) | Path(`/`)", 11, "expected `||`"),
    ("Host(`a`) == Path(`/`)", 11, "unexpected character `=`"),
    ("Host", 5, "expected `(` after `Host`"),
    ("Host(a)", 6, "expected a string argument"),
    ("Host(1)", 6, "found a number"),
    ("Host(`a` `b`)", 10, "expected `,` or `)`"),
    ("Host(,)", 6, "expected a string argument"),
    ("()", 2, "empty parentheses"),
    ("Host(`a`) && ()", 15, "empty parentheses"),
    ("Host(\"\\q\")", 7, "unknown escape `\\q`"),
    ("Host(\"\\'\")", 7, "unknown escape"),
    ("Host(\"\\xZZ\")", 7, "2 hex digits"),
    ("Host(\"\\xff\")", 6, "not valid UTF-8"),
    ("Host(\"\\uD800\")", 7, "invalid Unicode escape"),
    ("Host(`a\0`)", 8, "NUL"),
    ("Host()", 1, "`Host` needs at least one argument"),
    ("Host(``)", 6, "empty argument to `Host`"),
    ("Host(`🦭.com`)", 6, "must be ASCII"),
    ("HostRegexp(`🦭.com`)", 12, "must be ASCII"),
    ("Path(`css`)", 6, "does not start with `/`"),
    ("PathPrefix(`css`)", 12, "does not start with `/`"),
    ("Path(`/a/{id}`)", 6, "v2 template"),
    ("PathPrefix(`/a`, `/{id:[0-9]+}`)", 18, "v2 template"),
    ("PathRegexp(`/a`, `/b`)", 1, "`PathRegexp` takes 1 argument, got 2"),
    ("PathRegexp(`/(css`)", 13, "invalid regexp in `PathRegexp`: unclosed group"),
    ("HostRegexp(`(example.com`)", 13, "invalid regexp in `HostRegexp`"),
    ("HostRegexp(`{sub:[a-z]+}\\.a.com`)", 13, "outside `{...}`"),
    ("HostRegexp(`{sub:[a-z]+`)", 13, "unbalanced braces"),
    ("HostRegexp(`{sub:}.a.com`)", 13, "missing name or pattern"),
    ("HostRegexp(`a.com`, `^b\\.com$`)", 22, "outside `{...}`"),
    ("PathRegexp(`a{1001}`)", 13, "invalid repeat count"),
    ("PathRegexp(`\\1`)", 13, "backreferences"),
    ("PathRegexp(`(?x)a`)", 13, "unsupported Perl syntax"),
    ("PathRegexp(`(?=a)`)", 13, "unsupported Perl syntax"),
    ("PathRegexp(`\\pL`)", 13, "Unicode classes"),
    ("PathRegexp(`[a`)", 13, "missing closing `]`"),
    ("PathRegexp(`a\\`)", 13, "trailing backslash"),
    ("PathRegexp(`(a{1000}){1000}`)", 13, "too large"),
    ("Header(`X`)", 1, "`Header` takes 2 arguments (name, value), got 1"),
    ("Header(`X`, ``)", 13, "empty argument"),
    ("Header(`X`, `a`, `b`)", 1, "got 3"),
    ("HeaderRegexp(`X`, `(a`)", 20, "invalid regexp in `HeaderRegexp`"),
    ("Headers(`X`, `a`, `Y`)", 1, "pairs of arguments"),
    ("Query(`q`, ``)", 12, "empty argument"),
    ("Query(`q`, `a`, `b`)", 1, "`Query` takes 1 or 2 arguments"),
    ("Query(`a=1`, `b`)", 1, "mixes the v2 form"),
    ("Query(`=1`)", 7, "empty key"),
    ("Query(`id={id:[0-9]+}`)", 7, "v2 query templates"),
    ("QueryRegexp(`q`, `a`, `b`)", 1, "1 or 2 arguments"),
    ("QueryRegexp(`q`, `(a`)", 19, "invalid regexp in `QueryRegexp`"),
    ("ClientIP(`1`)", 10, "not an IP address or a CIDR"),
    ("ClientIP(`10.0.0.0/33`)", 10, "prefix length that is not a number from 0 to 32"),
    ("ClientIP(`fe80::/129`)", 10, "from 0 to 128"),
    ("ClientIP(`10.0.0.0/`)", 10, "prefix length"),
    ("ClientIP(`10.0.0.0/+8`)", 10, "prefix length"),
    ("ClientIP(`10.0.0.256/8`)", 10, "is not an IP address"),
    ("ClientIP(`010.0.0.1`)", 10, "not an IP address"),
    ("ClientIP(`fe80::1%eth0`)", 10, "not an IP address"),
    ("ClientIP(`10.0.0.1`, `x`)", 22, "not an IP address"),
    ("Host(`é`) && Hots(`a`)", 14, "unknown matcher"),
    ("Path(`/é`) && Path(`x`)", 20, "does not start with `/`"),
];

#[test]
fn error_table() {
    let mut failures = Vec::new();
    for (rule, column, needle) in ERRORS {
        match Rule::parse(rule) {
            Ok(_) => failures.push(format!("{rule:?}: parsed, expected error {needle:?}")),
            Err(e) => {
                let byte_col = rule.get(..e.offset).map(|s| s.chars().count() + 1);
                if e.column != *column || !e.message.contains(needle) || byte_col != Some(e.column)
                {
                    failures.push(format!(
                        "{rule:?}: got {e} (offset {}), want column {column} {needle:?}",
                        e.offset
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn error_display() {
    let e = Rule::parse("Host(`a`) && Hots(`b`)").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("column 14: unknown matcher `Hots`"),
        "{e}"
    );
}

#[rustfmt::skip]
const HOST_KEYS: &[(&str, Option<&[&str]>)] = &[
    ("Host(`A.com`)", Some(&["a.com"])),
    ("Host(`a.com.`)", Some(&["a.com"])),
    ("Host(`a.com`) && PathPrefix(`/x`)", Some(&["a.com"])),
    ("Host(`a.com`) || Host(`b.com`)", Some(&["a.com", "b.com"])),
    ("Host(`a.com`, `b.com`)", Some(&["a.com", "b.com"])),
    ("HostHeader(`a.com`)", Some(&["a.com"])),
    ("(Host(`a`) || Host(`b`)) && Path(`/`)", Some(&["a", "b"])),
    ("(Host(`a`) || Host(`b`)) && (Host(`b`) || Host(`c`))", Some(&["b"])),
    ("Host(`a`) && Host(`b`)", Some(&[])),
    ("Host(`a`) || Path(`/x`)", None),
    ("Path(`/x`)", None),
    ("!Host(`a`)", None),
    ("!!Host(`a`)", Some(&["a"])),
    ("!(!Host(`a`) || Path(`/x`))", Some(&["a"])),
    ("HostRegexp(`^a$`)", None),
    ("Host(`*.a.com`)", None),
    ("Host(`*`)", None),
    ("Host(`a`) && HostRegexp(`x`)", Some(&["a"])),
    ("Host(`a`) || Host(`a`)", Some(&["a"])),
    ("Host(`*foo`)", Some(&[])),
    ("Host(`.`)", Some(&[])),
];

#[test]
fn host_keys_table() {
    for (rule, expected) in HOST_KEYS {
        let got = Rule::parse(rule)
            .map(|r| r.host_keys())
            .unwrap_or_else(|e| panic!("{rule}: {e}"));
        let want = expected.map(|v| v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(got, want, "{rule}");
    }
}

#[rustfmt::skip]
const MENTIONED: &[(&str, &[&str])] = &[
    ("Host(`A.com.`) && Path(`/`)", &["a.com"]),
    ("Host(`a`) || Host(`b`, `a`) || HostHeader(`c`)", &["a", "b", "c"]),
    ("!Host(`a`) && Host(`b`)", &["b"]),
    ("!(!Host(`a`) || Path(`/`))", &["a"]),
    ("Host(`*.a.com`) || Host(`**.b.com`) || Host(`*`)", &[]),
    ("HostRegexp(`^a\\.com$`)", &[]),
    ("Host(`10.0.0.1`) || Host(`::1`) || Host(`a.com:80`) || Host(`[::1]`) || Host(`b`)", &["b"]),
];

#[test]
fn mentioned_hosts_table() {
    for (rule, expected) in MENTIONED {
        let r = Rule::parse(rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
        assert_eq!(r.mentioned_hosts(), expected.to_vec(), "{rule}");
        assert_eq!(r.source(), *rule);
    }
}

#[test]
fn default_priority_table() {
    // Priorities from Traefik's docs ("Priority Calculation") and GetRulePriority.
    let rows: &[(&str, i64)] = &[
        ("HostRegexp(`[a-z]+\\.traefik\\.com`)", 34),
        ("Host(`foobar.traefik.com`)", 26),
        ("Host(`é.com`)", 14),
        ("Host(`**.example.com`)", 20),
        ("!Host(`**.example.com`)", 23),
        ("Host(`*.example.com`)", 21),
        ("Host(`**.a`) || Host(`**.b`)", 24),
        ("not a rule", 10),
        ("", 0),
    ];
    for (rule, want) in rows {
        assert_eq!(default_priority(rule), *want, "{rule}");
    }
}

#[test]
fn canonical_host_table() {
    let rows: &[(&str, &str)] = &[
        ("example.com", "example.com"),
        ("Example.COM", "example.com"),
        ("example.com:8080", "example.com"),
        ("example.com.", "example.com"),
        ("example.com.:443", "example.com"),
        ("example.com..", "example.com."),
        ("[::1]:8080", "::1"),
        ("[FE80::1]:80", "fe80::1"),
        ("[::1]", "::1"),
        ("[10::10]", "10::10"),
        ("[[::1]]", "[[::1]]"),
        ("::1", "::1"),
        ("a:b:c", "a:b:c"),
        ("example.com:", "example.com"),
        ("[::1]x:80", "[::1]x:80"),
        ("a]:80", "a]:80"),
        (" a.com ", "a.com"),
        ("", ""),
        ("ÉCOLE.fr", "école.fr"),
    ];
    for (raw, want) in rows {
        assert_eq!(canonical_host(raw), *want, "{raw:?}");
    }
    assert!(matches!(
        canonical_host("a.com:80"),
        std::borrow::Cow::Borrowed(_)
    ));
}

#[test]
fn rule_is_send_sync_debug() {
    fn check<T: Send + Sync + std::fmt::Debug>() {}
    check::<Rule>();
}
