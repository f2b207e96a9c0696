//! The `compress` middleware against the oracle, real Traefik: both read the same dynamic file
//! and answer the same requests; whether the answer is gzip-encoded and whether it says
//! `Vary: Accept-Encoding` must agree. curl (`--compressed`) then checks that boma's encoded
//! bodies decode to what the backend sent, with and without a length, streamed or not.

mod support;
mod traefik_support;

use support::{Backend, Boma};
use traefik_support::{Traefik, http, wait_all_route};

/// Both proxies' middleware: gzip only (Traefik's default also offers br and zstd, which boma
/// does not), PNGs excluded.
fn dynamic(backend: &Backend) -> String {
    format!(
        "[http.routers.z]\nrule = \"Host(`zip.test`)\"\nservice = \"s\"\nmiddlewares = [\"z\"]\n\
         [http.middlewares.z.compress]\nencodings = [\"gzip\"]\n\
         excludedContentTypes = [\"image/png\"]\n\
         [http.services.s.loadBalancer]\n[[http.services.s.loadBalancer.servers]]\nurl = \"{}\"\n",
        backend.url()
    )
}

/// (description, target, Accept-Encoding or none).
const ROWS: &[(&str, &str, Option<&str>)] = &[
    ("gzip accepted, 4 KiB of text", "/bytes", Some("gzip")),
    (
        "gzip among others with q-values",
        "/bytes",
        Some("br;q=1.0, gzip;q=0.8"),
    ),
    ("any coding (*)", "/bytes", Some("*")),
    ("gzip refused with q=0", "/bytes", Some("gzip;q=0")),
    ("no Accept-Encoding", "/bytes", None),
    ("an empty Accept-Encoding", "/bytes", Some("")),
    ("identity only", "/bytes", Some("identity")),
    ("below minResponseBodyBytes", "/bytes?n=100", Some("gzip")),
    (
        "exactly minResponseBodyBytes",
        "/bytes?n=1024",
        Some("gzip"),
    ),
    ("an excluded content type", "/bytes/png", Some("gzip")),
    (
        "already encoded by the server",
        "/bytes/encoded",
        Some("gzip"),
    ),
    ("no length, long", "/bytes/stream?n=8000", Some("gzip")),
    ("no length, short", "/bytes/stream?n=200", Some("gzip")),
];

/// What is compared: status, Content-Encoding, whether Vary names Accept-Encoding.
fn outcome(r: &traefik_support::Raw) -> (u16, String, bool) {
    let vary = (r.headers.iter())
        .filter(|(k, _)| k.eq_ignore_ascii_case("vary"))
        .any(|(_, v)| v.to_ascii_lowercase().contains("accept-encoding"));
    (
        r.status,
        r.header("content-encoding").unwrap_or("").to_string(),
        vary,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compress_agrees_with_traefik_and_decodes() {
    Traefik::version();
    let backend = Backend::start("z").await;
    let text = dynamic(&backend);
    let boma = Boma::start(support::BASIC_STATIC, Some(&text));
    let traefik = Traefik::start_file(&text).await;
    let web = boma.addr("web");
    // Both routing before comparing.
    wait_all_route(&[web, traefik.web], "zip.test", "/bytes").await;
    let mut differ = Vec::new();
    for (what, target, accept) in ROWS {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept-Encoding", *a)).collect();
        let b = outcome(
            &http(web, "GET", "zip.test", target, &headers)
                .await
                .unwrap(),
        );
        let t = outcome(
            &http(traefik.web, "GET", "zip.test", target, &headers)
                .await
                .unwrap(),
        );
        println!("{what}: boma {b:?}, traefik {t:?}");
        if b != t {
            differ.push(format!("{what}: boma {b:?}, Traefik {t:?}"));
        }
    }
    assert!(
        differ.is_empty(),
        "boma and Traefik differ:\n{}",
        differ.join("\n")
    );

    // Encoded bodies decode to what the backend sent.
    for (target, n) in [("/bytes?n=50000", 50000), ("/bytes/stream?n=70000", 70000)] {
        let url = format!("http://{web}{target}");
        let out = tokio::process::Command::new("curl")
            .args([
                "-sS",
                "--compressed",
                "-H",
                "Host: zip.test",
                "-D",
                "-",
                &url,
            ])
            .output()
            .await
            .expect("curl (make deps)");
        let all = String::from_utf8_lossy(&out.stdout).into_owned();
        let (head, body) = all.split_once("\r\n\r\n").unwrap();
        assert!(
            head.to_ascii_lowercase().contains("content-encoding: gzip"),
            "{head}"
        );
        let want: String = "boma compresses this line. "
            .chars()
            .cycle()
            .take(n)
            .collect();
        assert_eq!(body.len(), n, "{target}: decoded length");
        assert!(body == want, "{target}: decoded body differs");
    }
}
