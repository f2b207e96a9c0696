//! Discovery and DNS together, as a service author sees them: a labelled container started on
//! the real engine becomes resolvable by name in the local zone (and routable), and its name
//! goes away when the container stops. The zone's wildcard is off, so only published names
//! answer.

mod dns_support;
mod docker_support;
mod support;

use std::time::Duration;

use dns_support::{free_port, kdig_until};
use docker_support::{Container, Spec, unique};
use support::{Boma, Client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_container_resolves_and_a_stopped_one_does_not() {
    docker_support::require_engine();
    let tag = unique("dnsd");
    let port = free_port([127, 0, 0, 1]);
    let cfg = format!(
        r#"
[entryPoints.web]
address = "127.0.0.1:0"
[providers.docker]
constraints = "Label(`boma.test`, `{tag}`)"
defaultRule = "Host(`{{{{ normalize .Name }}}}.village.lan`)"
[dns]
listen = ["127.0.0.1:{port}"]
zone = "village.lan"
address = ["127.0.0.1"]
wildcard = false
upstreams = []
"#
    );
    let boma = Boma::start(&cfg, None);
    let dns = boma.dns_addr();
    let name = unique("svc");
    let fqdn = format!("{name}.village.lan");

    // Not published yet: NXDOMAIN (the wildcard is off).
    let before = kdig_until(dns, &[&fqdn, "A"], Duration::from_secs(5), |d| {
        d.status == "NXDOMAIN"
    });
    assert_eq!(before.status, "NXDOMAIN", "{before:?}");

    let container = Container::run(Spec {
        name: Some(name.clone()),
        labels: vec![("boma.test", &tag)],
        expose: vec![80],
        ..Spec::default()
    });
    let after = kdig_until(dns, &[&fqdn, "A"], Duration::from_secs(20), |d| {
        d.rdata() == vec!["127.0.0.1".to_string()]
    });
    assert_eq!(
        after.rdata(),
        vec!["127.0.0.1".to_string()],
        "{after:?}\n{}",
        boma.stderr()
    );
    // And the proxy routes the same name to the container.
    let r = boma.routed(&Client::new(), &fqdn, "/").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.backend(), name);

    container.stop();
    let gone = kdig_until(dns, &[&fqdn, "A"], Duration::from_secs(20), |d| {
        d.status == "NXDOMAIN"
    });
    assert_eq!(gone.status, "NXDOMAIN", "{gone:?}");
}
