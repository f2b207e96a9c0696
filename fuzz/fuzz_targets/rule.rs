//! Rule language: parsing arbitrary text must never panic, and a parsed rule must match any
//! request without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // First line: the rule; the rest: host, path and query to match against.
    let mut lines = text.splitn(4, '\n');
    let rule = lines.next().unwrap_or("");
    let host = lines.next().unwrap_or("example.lan");
    let path = lines.next().unwrap_or("/");
    let query = lines.next();
    let Ok(compiled) = boma::rule::Rule::parse(rule) else {
        return;
    };
    let _ = compiled.host_keys();
    let _ = compiled.mentioned_hosts();
    let headers = http::HeaderMap::new();
    let host = boma::rule::canonical_host(host);
    let req = boma::rule::Request {
        host: &host,
        path,
        query,
        method: &http::Method::GET,
        headers: &headers,
        client_ip: std::net::IpAddr::from([127, 0, 0, 1]),
    };
    let _ = compiled.matches(&req);
});
