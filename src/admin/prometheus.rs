//! `prometheus@internal`: the metrics in Prometheus' text format. The proxy's request series
//! come from the [`crate::metrics::Registry`]; everything else is read from its owner at scrape
//! time, so nothing here is stored twice: open connections per entry point, servers' health,
//! TLS certificates' expiry, configuration problems, DNS and DHCP counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::Info;
use crate::dynamic::Snapshot;
use crate::metrics::Text;
use crate::runtime::balance::Service;

/// The whole exposition.
pub fn render(s: &Snapshot, info: &Info) -> String {
    let mut t = Text::default();
    if let Some(registry) = &info.metrics {
        registry.render(&mut t);
    }
    connections(&mut t, info);
    servers(&mut t, s);
    certificates(&mut t, s);
    t.single(
        "boma_config_problems",
        "gauge",
        "Problems in the current configuration (/api/problems).",
        s.problems.len() as f64,
    );
    t.single(
        "boma_uptime_seconds",
        "gauge",
        "Seconds since boma started.",
        info.started.elapsed().as_secs_f64(),
    );
    if let Some(dns) = &info.dns {
        self::dns(&mut t, &dns.stats);
    }
    if let Some(dhcp) = &info.dhcp {
        let st = &dhcp.stats;
        counters(
            &mut t,
            "boma_dhcp_packets_total",
            "DHCP packets by what became of them.",
            "outcome",
            &[
                ("received", &st.received),
                ("malformed", &st.malformed),
                ("offer", &st.offers),
                ("ack", &st.acks),
                ("nak", &st.naks),
            ],
        );
        t.single(
            "boma_dhcp_leases",
            "gauge",
            "DHCP leases held now.",
            s.leases.len() as f64,
        );
    }
    t.finish()
}

fn get(a: &AtomicU64) -> f64 {
    a.load(Ordering::Relaxed) as f64
}

/// One counter family with one label, a sample per value.
fn counters(t: &mut Text, name: &str, help: &str, label: &str, values: &[(&str, &AtomicU64)]) {
    t.family(name, "counter", help);
    for (v, n) in values {
        t.sample(name, &[(label, (*v).to_string())], get(n));
    }
}

/// One counter of an entry point's connection counters.
type Field = fn(&super::ConnStats) -> &AtomicU64;

fn connections(t: &mut Text, info: &Info) {
    let eps = &info.entrypoints;
    let ep = |name: &str| vec![("entrypoint", name.to_string())];
    t.family(
        "traefik_open_connections",
        "gauge",
        "Open client connections per entry point.",
    );
    for e in eps {
        let mut l = ep(&e.name);
        l.push(("protocol", "TCP".into()));
        t.sample("traefik_open_connections", &l, get(&e.connections.open));
    }
    let families: [(&str, &str, Field); 3] = [
        (
            "boma_connections_accepted_total",
            "Client connections accepted per entry point.",
            |c| &c.accepted,
        ),
        (
            "boma_connections_refused_per_ip_total",
            "Client connections closed at once: their address had max_connections_per_ip open.",
            |c| &c.refused_per_ip,
        ),
        (
            "boma_tls_handshakes_failed_total",
            "TLS connections closed before a request: handshake failed, refused or too slow.",
            |c| &c.tls_failed,
        ),
    ];
    for (name, help, field) in families {
        t.family(name, "counter", help);
        for e in eps {
            t.sample(name, &ep(&e.name), get(field(&e.connections)));
        }
    }
}

/// `traefik_service_server_up`: 1 for a server the balancer may pick now, else 0.
fn servers(t: &mut Text, s: &Snapshot) {
    let now = Instant::now();
    t.family(
        "traefik_service_server_up",
        "gauge",
        "Whether each server of each service can be picked now (health checks, passive marks).",
    );
    for (name, svc) in &s.services {
        if let Service::LoadBalancer(lb) = &**svc {
            for srv in &lb.servers {
                let l = [("service", name.clone()), ("url", srv.url.to_string())];
                t.sample(
                    "traefik_service_server_up",
                    &l,
                    f64::from(u8::from(srv.available(now))),
                );
            }
        }
    }
}

/// `traefik_tls_certs_not_after`, by common name and names, for the configured certificates.
fn certificates(t: &mut Text, s: &Snapshot) {
    t.family(
        "traefik_tls_certs_not_after",
        "gauge",
        "When each configured TLS certificate expires (Unix seconds).",
    );
    for c in s.tls.certificates() {
        let l = [
            ("cn", c.facts.subject.clone().unwrap_or_default()),
            ("sans", c.facts.names.join(",")),
            ("source", c.source.clone()),
        ];
        t.sample("traefik_tls_certs_not_after", &l, c.facts.not_after as f64);
    }
}

fn dns(t: &mut Text, st: &crate::dns::Stats) {
    counters(
        t,
        "boma_dns_queries_total",
        "DNS queries by how they were answered.",
        "outcome",
        &[
            ("local", &st.local),
            ("policy", &st.policy),
            ("cache_hit", &st.cache_hits),
            ("forwarded", &st.forwarded),
            ("stale", &st.stale),
            ("refused", &st.refused),
            ("overloaded", &st.overloaded),
        ],
    );
    t.single(
        "boma_dns_received_total",
        "counter",
        "DNS queries received.",
        get(&st.queries),
    );
    t.single(
        "boma_dns_upstream_failures_total",
        "counter",
        "Forwarded queries no upstream answered.",
        get(&st.upstream_failures),
    );
    counters(
        t,
        "boma_dns_dropped_total",
        "DNS packets dropped, by why.",
        "reason",
        &[
            ("malformed", &st.malformed),
            ("bad_source", &st.bad_source),
            ("rebind", &st.rebind_dropped),
            ("tcp_rejected", &st.tcp_rejected),
        ],
    );
}
