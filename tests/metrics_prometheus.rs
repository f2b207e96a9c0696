//! `[metrics.prometheus]` end to end: real HTTP requests and DNS queries through boma, then
//! `/metrics` read as Prometheus would and checked by Prometheus' own parser (`promtool check
//! metrics`, Debian's `prometheus` package, installed by `make deps`), and the counts it shows
//! compared with what was sent.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::{Backend, Boma, Client};

const STATIC: &str = r#"
[entryPoints.web]
address = "127.0.0.1:0"
[entryPoints.traefik]
address = "127.0.0.1:0"
[metrics.prometheus]
addRoutersLabels = true
buckets = [0.05, 1.0]
[dns]
listen = ["127.0.0.1:0"]
zone = "metrics.lan"
address = "127.0.0.1"
upstreams = []
[providers.file]
filename = "{dir}/dynamic.toml"
"#;

fn dynamic(backend: &Backend) -> String {
    format!(
        "[http.routers.plain]\nrule = \"Host(`app.metrics.lan`)\"\nservice = \"s\"\n\
         entryPoints = [\"web\"]\n\
         [http.routers.manual]\nrule = \"Host(`scrape.metrics.lan`)\"\n\
         service = \"prometheus@internal\"\nentryPoints = [\"web\"]\n\
         [[http.services.s.loadBalancer.servers]]\nurl = \"{}\"\n",
        backend.url()
    )
}

/// Runs `promtool check metrics` on `text`; its complaints when it fails.
fn promtool(text: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run promtool ({e}); run `make deps`"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The value of the sample `name{labels}` (labels exactly as written), if present.
fn value(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_was_served_and_parse_with_promtool() {
    let backend = Backend::start("b1").await;
    let boma = Boma::start(STATIC, Some(&dynamic(&backend)));
    let client = Client::new();
    boma.routed(&client, "app.metrics.lan", "/").await;
    let web = boma.addr("web");
    // What `routed` sent (and any 404 before the route existed) is the baseline.
    let before = client.get(boma.addr("traefik"), "x", "/metrics").await.body;
    for _ in 0..5 {
        assert_eq!(client.get(web, "app.metrics.lan", "/x").await.status, 200);
    }
    for _ in 0..2 {
        assert_eq!(client.get(web, "nobody.metrics.lan", "/").await.status, 404);
    }
    let dns = boma.dns_addr();
    for _ in 0..3 {
        let out = Command::new("kdig")
            .args([
                &format!("@{}", dns.ip()),
                "-p",
                &dns.port().to_string(),
                "+short",
                "app.metrics.lan",
            ])
            .output()
            .expect("kdig (make deps)");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "127.0.0.1");
    }

    let scrape = client.get(boma.addr("traefik"), "x", "/metrics").await;
    assert_eq!(scrape.status, 200);
    let text = scrape.body.clone();
    promtool(&text).unwrap_or_else(|e| panic!("promtool: {e}\n{text}"));
    let ep = |code: &str| {
        format!(
            "traefik_entrypoint_requests_total{{code=\"{code}\",method=\"GET\",protocol=\"http\",entrypoint=\"web\"}}"
        )
    };
    let delta =
        |sample: &str| value(&text, sample).unwrap_or(0.0) - value(&before, sample).unwrap_or(0.0);
    assert_eq!(delta(&ep("200")), 5.0, "{text}");
    assert_eq!(delta(&ep("404")), 2.0, "{text}");
    let router = "traefik_router_requests_total{code=\"200\",method=\"GET\",protocol=\"http\",router=\"plain@file\",service=\"s@file\"}";
    assert_eq!(delta(router), 5.0, "{text}");
    let service = "traefik_service_request_duration_seconds_count{code=\"200\",method=\"GET\",protocol=\"http\",service=\"s@file\"}";
    assert_eq!(delta(service), 5.0, "{text}");
    let inf = "traefik_service_request_duration_seconds_bucket{code=\"200\",method=\"GET\",protocol=\"http\",service=\"s@file\",le=\"+Inf\"}";
    assert_eq!(value(&text, inf), value(&text, service), "{text}");
    let up = format!(
        "traefik_service_server_up{{service=\"s@file\",url=\"{}\"}}",
        backend.url()
    );
    assert_eq!(value(&text, &up), Some(1.0), "{text}");
    assert!(value(&text, "traefik_config_reloads_total").is_some_and(|n| n >= 1.0));
    assert_eq!(
        value(&text, "boma_dns_queries_total{outcome=\"local\"}"),
        Some(3.0),
        "{text}"
    );
    assert!(
        value(&text, "boma_connections_accepted_total{entrypoint=\"web\"}")
            .is_some_and(|n| n >= 1.0)
    );
    assert!(
        value(
            &text,
            "traefik_open_connections{entrypoint=\"traefik\",protocol=\"TCP\"}"
        )
        .is_some_and(|n| n >= 1.0)
    );
    // No DNS entry point among the proxy's.
    assert!(!text.contains("entrypoint=\"dns\""), "{text}");

    // prometheus@internal behind a router of the operator's, too; the two scrapes on `traefik`
    // show in it (a request is counted once its answer has been sent).
    let again = client.get(web, "scrape.metrics.lan", "/").await;
    assert_eq!(again.status, 200);
    promtool(&again.body).unwrap();
    let scrapes = "traefik_router_requests_total{code=\"200\",method=\"GET\",protocol=\"http\",router=\"prometheus@internal\",service=\"prometheus@internal\"}";
    assert_eq!(value(&again.body, scrapes), Some(2.0), "{}", again.body);
}
