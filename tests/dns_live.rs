//! The local zone follows the dynamic configuration: a router with a `Host` rule inside the zone
//! added to the watched file makes its name resolve (without the wildcard, so nothing else
//! could), and removing it makes the name disappear again; names outside the zone stay out.

mod dns_support;
mod support;

use std::time::Duration;

use dns_support::{kdig, kdig_until};
use support::Boma;

const STATIC: &str = r#"
[entryPoints.web]
address = "127.0.0.1:0"

[providers.file]
filename = "{dir}/dynamic.toml"
watch = true

[dns]
listen = ["127.0.0.1:0"]
zone = "village.lan"
address = "10.0.0.1"
wildcard = false
upstreams = []
"#;

const EMPTY: &str = "[http.routers]\n";

const WITH_ROUTER: &str = r#"
[http.routers.app]
rule = "Host(`app.village.lan`) || Host(`app.example.org`)"
service = "app"

[[http.services.app.loadBalancer.servers]]
url = "http://127.0.0.1:9"
"#;

#[test]
fn a_host_rule_added_to_the_dynamic_file_resolves() {
    let boma = Boma::start(STATIC, Some(EMPTY));
    let dns = boma.dns_addr();
    let d = kdig(dns, &["app.village.lan"]);
    assert_eq!(d.status, "NXDOMAIN", "{}", d.raw);
    assert_eq!(d.authority, ["SOA"], "{}", d.raw);

    boma.write_dynamic(WITH_ROUTER);
    let d = kdig_until(dns, &["app.village.lan"], Duration::from_secs(15), |d| {
        d.status == "NOERROR"
    });
    assert_eq!(d.rdata(), ["10.0.0.1"], "{}\n{}", d.raw, boma.stderr());
    assert!(d.has_flag("aa"));
    // A Host outside the zone is not made local (and with no upstream it is refused).
    assert_eq!(kdig(dns, &["app.example.org"]).status, "REFUSED");

    boma.write_dynamic(EMPTY);
    let d = kdig_until(dns, &["app.village.lan"], Duration::from_secs(15), |d| {
        d.status == "NXDOMAIN"
    });
    assert_eq!(d.status, "NXDOMAIN", "{}", d.raw);
}
