//! Tests of the dynamic configuration schema (`crate::dynamic::schema`): Traefik file-provider
//! TOML with routers, services of every kind, health checks, defaults and positioned errors.
//! Middleware options are left out: their schema belongs to the proxy.

use std::path::Path;

use super::schema::*;
use crate::config::Duration;

fn parse_ok(src: &str) -> DynamicConfig {
    match parse_dynamic(src, Path::new("dynamic.toml")) {
        Ok(config) => config,
        Err(e) => panic!("unexpected errors:\n{e}\n--- in:\n{src}"),
    }
}

fn problems(src: &str) -> Vec<String> {
    match parse_dynamic(src, Path::new("dynamic.toml")) {
        Ok(config) => panic!("expected errors, parsed {config:?}"),
        Err(e) => e
            .iter()
            .map(|e| format!("{}:{}: {}", e.line, e.col, e.message))
            .collect(),
    }
}

fn http(config: &DynamicConfig) -> &Http {
    config.http.as_ref().expect("an [http] section")
}

/// Shaped like Traefik's documentation, with the case mix found in real files.
const ROUTERS_AND_SERVICES: &str = r#"
[http.routers]
  [http.routers.whoami]
    rule = "Host(`whoami.lan`) && PathPrefix(`/api`)"
    entryPoints = ["web", "websecure"]
    middlewares = ["auth@file", "strip"]
    service = "whoami"
    priority = 42
    [http.routers.whoami.tls]
      certResolver = "myresolver"
      [[http.routers.whoami.tls.domains]]
        main = "lan"
        sans = ["*.lan"]
  [http.routers.Blog]
    Rule = "Host(`blog.lan`)"
    Service = "canary"
    RuleSyntax = "v2"
    [http.routers.Blog.observability]
      accessLogs = false

[http.services]
  [http.services.whoami.loadBalancer]
    passHostHeader = false
    serversTransport = "slow"
    [[http.services.whoami.loadBalancer.servers]]
      url = "http://10.0.0.5:8080/"
    [[http.services.whoami.loadBalancer.servers]]
      url = "http://10.0.0.6:8080/base"
      weight = 3
      preservePath = true
    [http.services.whoami.loadBalancer.healthcheck]
      path = "/health"
      interval = "10s"
      unhealthyInterval = 2
      timeout = "3s"
      status = 204
      port = 9000
      mode = "GRPC"
      followRedirects = false
      [http.services.whoami.loadBalancer.healthCheck.headers]
        X-Probe = "boma"
    [http.services.whoami.loadBalancer.sticky.cookie]
      name = "lb"
      httpOnly = true
      sameSite = "lax"
      maxAge = 3600
    [http.services.whoami.loadBalancer.responseForwarding]
      flushInterval = "-1ms"

  [http.services.canary.weighted]
    [[http.services.canary.weighted.services]]
      name = "blog-v1"
      weight = 9
    [[http.services.canary.weighted.services]]
      name = "blog-v2@docker"
    [http.services.canary.weighted.healthCheck]

  [http.services.shadow.mirroring]
    service = "whoami"
    [[http.services.shadow.mirroring.mirrors]]
      name = "whoami-v2"
      percent = 10

  [http.services.safe.failover]
    service = "whoami"
    fallback = "sorry"
    healthCheck = {}
"#;

#[test]
fn parses_routers_and_services() {
    let c = parse_ok(ROUTERS_AND_SERVICES);
    let h = http(&c);
    let r = &h.routers["whoami"];
    assert_eq!(r.rule, "Host(`whoami.lan`) && PathPrefix(`/api`)");
    assert_eq!(r.entry_points, ["web", "websecure"]);
    assert_eq!(r.middlewares, ["auth@file", "strip"]);
    assert_eq!((r.service.as_str(), r.priority), ("whoami", Some(42)));
    let tls = r.tls.as_ref().expect("tls");
    assert_eq!(tls.cert_resolver.as_deref(), Some("myresolver"));
    assert_eq!(
        (tls.domains[0].main.as_str(), &tls.domains[0].sans[..]),
        ("lan", &["*.lan".to_owned()][..])
    );

    // Router names keep their case; field names do not matter.
    let blog = &h.routers["Blog"];
    assert_eq!(
        (blog.rule_syntax.as_deref(), blog.priority),
        (Some("v2"), None)
    );
    assert!(blog.observability.is_some() && blog.entry_points.is_empty());

    let Service::LoadBalancer(lb) = &h.services["whoami"] else {
        panic!("whoami is a load balancer");
    };
    assert!(!lb.pass_host_header);
    assert_eq!(lb.servers_transport.as_deref(), Some("slow"));
    assert_eq!(lb.servers.len(), 2);
    assert_eq!(
        (lb.servers[0].weight, lb.servers[0].preserve_path),
        (None, false)
    );
    assert_eq!(
        (lb.servers[1].weight, lb.servers[1].preserve_path),
        (Some(3), true)
    );
    assert_eq!(
        (
            lb.servers[0].effective_weight(),
            lb.servers[1].effective_weight()
        ),
        (1, 3)
    );
    let hc = lb.health_check.as_ref().expect("health check");
    assert_eq!(hc.path.as_deref(), Some("/health"));
    assert_eq!(
        (hc.interval, hc.timeout),
        (Duration::from_secs(10), Duration::from_secs(3))
    );
    assert_eq!(hc.unhealthy_interval, Some(Duration::from_secs(2)));
    assert_eq!(
        (hc.status, hc.port, hc.mode),
        (Some(204), Some(9000), HealthCheckMode::Grpc)
    );
    assert!(!hc.follow_redirects);
    assert_eq!(hc.headers["X-Probe"], "boma");
    let cookie = lb
        .sticky
        .as_ref()
        .and_then(|s| s.cookie.as_ref())
        .expect("cookie");
    assert_eq!(cookie.name.as_deref(), Some("lb"));
    assert!(cookie.http_only && !cookie.secure);
    assert_eq!((cookie.max_age, cookie.path.as_str()), (3600, "/"));
    let forwarding = lb
        .response_forwarding
        .as_ref()
        .expect("response forwarding");
    assert_eq!(forwarding.flush_interval, Duration::from_millis(-1));
    assert_eq!(lb.flush_interval(), Duration::from_millis(-1));

    let Service::Weighted(w) = &h.services["canary"] else {
        panic!("canary is weighted");
    };
    let weights: Vec<(&str, u32)> = w
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.weight))
        .collect();
    assert_eq!(weights, [("blog-v1", 9), ("blog-v2@docker", 1)]);
    assert_eq!(w.health_check, Some(ServiceHealthCheck {}));

    let Service::Mirroring(m) = &h.services["shadow"] else {
        panic!("shadow is mirroring");
    };
    assert_eq!(
        (m.service.as_str(), m.mirror_body, m.max_body_size),
        ("whoami", true, -1)
    );
    assert_eq!(
        (m.mirrors[0].name.as_str(), m.mirrors[0].percent),
        ("whoami-v2", 10)
    );

    let Service::Failover(f) = &h.services["safe"] else {
        panic!("safe is failover");
    };
    assert_eq!(
        (f.service.as_str(), f.fallback.as_str()),
        ("whoami", "sorry")
    );
    assert!(f.health_check.is_some());
    assert_eq!(h.services["safe"].kind(), "failover");
}

#[test]
fn defaults_follow_traefik() {
    let c = parse_ok(
        "[http.services.s.loadBalancer]\nservers = [{ url = \"http://a\" }]\n\
         [http.services.s.loadBalancer.healthCheck]\n\
         [http.services.s.loadBalancer.sticky.cookie]\n\
         [http.services.s.loadBalancer.responseForwarding]\n\
         [http.services.s.loadBalancer.passiveHealthCheck]\n",
    );
    let Service::LoadBalancer(lb) = &http(&c).services["s"] else {
        panic!("load balancer");
    };
    assert!(lb.pass_host_header && lb.strategy.is_none() && lb.servers_transport.is_none());
    let bare = parse_ok("[http.services.b.loadBalancer]\n");
    let Service::LoadBalancer(bare) = &http(&bare).services["b"] else {
        panic!("load balancer");
    };
    assert!(bare.servers.is_empty() && bare.response_forwarding.is_none());
    assert_eq!(bare.flush_interval(), Duration::from_millis(100));
    let hc = lb.health_check.as_ref().expect("health check");
    assert_eq!(
        (hc.mode, hc.interval, hc.timeout),
        (
            HealthCheckMode::Http,
            Duration::from_secs(30),
            Duration::from_secs(5)
        )
    );
    assert!(hc.follow_redirects && hc.unhealthy_interval.is_none() && hc.path.is_none());
    let cookie = lb
        .sticky
        .as_ref()
        .and_then(|s| s.cookie.as_ref())
        .expect("cookie");
    assert_eq!(cookie, &Cookie::default());
    assert_eq!(cookie.path, "/");
    let forwarding = lb
        .response_forwarding
        .as_ref()
        .expect("response forwarding");
    assert_eq!(forwarding.flush_interval, Duration::from_millis(100));
    assert_eq!(lb.passive_health_check, Some(PassiveHealthCheck::default()));
    assert_eq!(
        PassiveHealthCheck::default().failure_window,
        Duration::from_secs(10)
    );

    // Traefik's shortcuts: `tls = true` for an empty table, a comma-separated list.
    let c = parse_ok(
        "[http.routers.r]\nrule = \"Path(`/`)\"\nservice = \"s\"\ntls = true\n\
         entrypoints = \"web, websecure\"\npriority = \"7\"\n",
    );
    let r = &http(&c).routers["r"];
    assert_eq!(r.tls, Some(Box::default()));
    assert_eq!(
        (&r.entry_points[..], r.priority),
        (&["web".to_owned(), "websecure".to_owned()][..], Some(7))
    );

    // Absent sections stay absent; an empty file is an empty configuration.
    let c = parse_ok("");
    assert!(c.http.is_none() && c.tcp.is_none() && c.udp.is_none() && c.tls.is_none());
    let c = parse_ok("[http]");
    let h = http(&c);
    assert!(h.routers.is_empty() && h.services.is_empty() && h.middlewares.is_empty());
}

#[test]
fn service_kinds_are_exclusive() {
    let src = "[http.services.both.loadBalancer]\nservers = [{ url = \"http://a\" }]\n\
               [http.services.both.weighted]\nservices = [{ name = \"x\" }]\n";
    assert_eq!(
        problems(src),
        ["1:16: a service has exactly one kind, but this one sets `loadBalancer` and `weighted`"]
    );
    let src = "[http.services]\n  none = {}\n";
    assert_eq!(
        problems(src),
        ["2:3: a service needs one of `loadBalancer`, `weighted`, `mirroring` or `failover`"]
    );
}

#[test]
fn problems_are_positioned_and_all_reported() {
    let src = r#"[http.routers.r]
  rule = "Host(`a`)"
  servise = "s"
[http.routers.ok]
  rule = "Host(`b`)"
  service = "s"
  priority = "high"
[http.services.s.loadBalancer]
  [[http.services.s.loadBalancer.servers]]
    url = "http://a"
    wieght = 2
  [[http.services.s.loadBalancer.servers]]
    weight = -1
[http.models.m]
"#;
    assert_eq!(
        problems(src),
        [
            "1:15: missing field `service`",
            "3:3: unknown key `servise`; did you mean `service`?",
            "7:14: invalid type: string \"high\", expected i64",
            "11:5: unknown key `wieght`; did you mean `weight`?",
            "12:3: missing field `url`",
            "13:14: invalid value: integer `-1`, expected u32",
            "14:7: `models` is a Traefik option that boma does not support",
        ]
    );
}

#[test]
fn unsupported_sections_are_kept_opaque() {
    let src = r#"
[tcp.routers.db]
  rule = "HostSNI(`*`)"
  service = "db"
[udp.services.dns.loadBalancer]
  servers = [{ address = "10.0.0.1:53" }]
[[tls.certificates]]
  certFile = "/certs/a.crt"
  keyFile = "/certs/a.key"
[http.serversTransports.slow]
  insecureSkipVerify = true
"#;
    let c = parse_ok(src);
    let tcp = c.tcp.as_ref().expect("tcp");
    assert_eq!(tcp["routers"]["db"]["service"].as_str(), Some("db"));
    assert!(c.udp.is_some() && c.tls.is_some());
    assert!(http(&c).servers_transports.contains_key("slow"));
}
