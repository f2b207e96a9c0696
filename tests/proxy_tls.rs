//! TLS termination with real clients: curl (OpenSSL) and `openssl s_client` for what a browser
//! sees (the certificate picked by SNI, its chain, h2 by ALPN, refused versions and names),
//! rustls through tokio-rustls for a connection held open across a certificate renewal and for
//! a handshake flood; client certificates (`clientAuth`) required or verified when given.
//! Certificates are made by the `openssl` CLI; the backend is a real HTTP server echoing the
//! request it got.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use support::{Backend, Boma, eventually};

/// The CA `ca` in `dir` and leaves `a` (a.tls.test), `w` (*.w.tls.test) and `dflt`.
fn certificates(dir: &Path) {
    support::tls::issue(dir, "ca", "a", "subjectAltName=DNS:a.tls.test\n");
    support::tls::issue(dir, "ca", "w", "subjectAltName=DNS:*.w.tls.test\n");
    support::tls::issue(dir, "ca", "dflt", "subjectAltName=DNS:default.tls.test\n");
}

/// Entry points: `web` (plain routers, and the TLS router `mixed` on the same port), `websecure`
/// (`http.tls`: every router TLS), `redir` (redirects to websecure); `strict` options for
/// `strict.tls.test`: TLS 1.3 only.
const STATIC: &str = r#"
[entryPoints.web]
address = "127.0.0.1:0"
[entryPoints.websecure]
address = "127.0.0.1:0"
[entryPoints.websecure.http.tls]
[entryPoints.redir]
address = "127.0.0.1:0"
[entryPoints.redir.http.redirections.entryPoint]
to = "websecure"
scheme = "https"
[providers.file]
filename = "{dir}/dynamic.toml"
[limits]
max_connections_per_ip = 100000
"#;

fn dynamic(dir: &Path, backend: &Backend) -> String {
    let d = dir.display();
    format!(
        r#"
[http.routers.secure]
rule = "Host(`a.tls.test`) || Host(`x.w.tls.test`) || Host(`other.tls.test`)"
service = "s"
entryPoints = ["websecure"]
[http.routers.plain]
rule = "Host(`a.tls.test`)"
service = "s"
entryPoints = ["web"]
[http.routers.mixed]
rule = "Host(`m.w.tls.test`)"
service = "s"
entryPoints = ["web"]
[http.routers.mixed.tls]
[http.routers.strict]
rule = "Host(`strict.tls.test`)"
service = "s"
entryPoints = ["websecure"]
[http.routers.strict.tls]
options = "strict"
[http.services.s.loadBalancer]
[[http.services.s.loadBalancer.servers]]
url = "{url}"
[[tls.certificates]]
certFile = "{d}/a.pem"
keyFile = "{d}/a.key"
[[tls.certificates]]
certFile = "{d}/w.pem"
keyFile = "{d}/w.key"
[tls.stores.default.defaultCertificate]
certFile = "{d}/dflt.pem"
keyFile = "{d}/dflt.key"
[tls.options.strict]
minVersion = "VersionTLS13"
"#,
        url = backend.url()
    )
}

/// Runs a command; (exit code, stdout).
async fn run(program: &str, args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}); run `make deps`"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// curl to `https://{host}:{port}{path}` with the test CA, the name resolved to 127.0.0.1;
/// (exit code, "<status> <http version>\n<body>").
async fn curl(ca: &Path, host: &str, port: u16, path: &str, extra: &[&str]) -> (i32, String) {
    let resolve = format!("{host}:{port}:127.0.0.1");
    let url = format!("https://{host}:{port}{path}");
    let ca = ca.display().to_string();
    let mut args = vec![
        "-sS",
        "--max-time",
        "10",
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-w", "\n%{http_code} %{http_version}", &url]);
    let (code, out) = run("curl", &args).await;
    // Put the status line first.
    let (body, status) = out.rsplit_once('\n').unwrap_or(("", &out));
    (code, format!("{status}\n{body}"))
}

/// The subject common name of the certificate served for `sni` on `port` (None: no handshake).
async fn served_cn(port: u16, sni: &str) -> Option<String> {
    let connect = format!("127.0.0.1:{port}");
    let (_, out) = run(
        "openssl",
        &["s_client", "-connect", &connect, "-servername", sni],
    )
    .await;
    out.lines()
        .find_map(|l| l.strip_prefix("subject="))
        .map(|s| s.replace(' ', "").trim_start_matches("CN=").to_string())
}

/// Waits (bounded) until `sni` is served the certificate named `cn` on `port`: the dynamic file
/// is applied just after boma says it is ready.
async fn wait_served(port: u16, sni: &str, cn: &str) {
    let served = eventually(Duration::from_secs(15), || async {
        (served_cn(port, sni).await.as_deref() == Some(cn)).then_some(())
    })
    .await;
    assert!(
        served.is_some(),
        "{sni} was never served the certificate {cn}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_chain_alpn_redirect_and_the_plain_side_of_the_same_port() {
    let backend = Backend::start("b1").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d);
    let boma = Boma::start(STATIC, Some(&dynamic(d, &backend)));
    let tls = boma.addr("websecure").port();
    wait_served(tls, "a.tls.test", "a").await;
    let web = boma.addr("web").port();
    let ca = d.join("ca.pem");

    sni_picks_the_certificate_and_alpn_gives_h2(&ca, tls).await;
    one_port_serves_plain_and_tls_routers_uncrossed(&ca, web, tls).await;
    the_entry_point_redirects_to_websecure(boma.addr("redir").port(), tls).await;
    tls_options_follow_the_host(&ca, tls).await;
}

/// SNI picks the certificate (the store's default one for a name without one); curl verifies
/// chain and name, and ALPN gives h2 unless curl asks for HTTP/1.1.
async fn sni_picks_the_certificate_and_alpn_gives_h2(ca: &Path, tls: u16) {
    let (code, out) = curl(ca, "a.tls.test", tls, "/hello", &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("200 2\n"), "{out}");
    assert!(out.contains("x-forwarded-proto: https"), "{out}");
    assert!(out.contains(&format!("x-forwarded-port: {tls}\n")), "{out}");
    let (code, out) = curl(ca, "x.w.tls.test", tls, "/", &["--http1.1"]).await;
    assert_eq!((code, &out[..8]), (0, "200 1.1\n"), "{out}");
    assert_eq!(served_cn(tls, "a.tls.test").await.as_deref(), Some("a"));
    assert_eq!(served_cn(tls, "x.w.tls.test").await.as_deref(), Some("w"));
    // A name without a certificate gets the store's default one (curl would refuse it).
    assert_eq!(
        served_cn(tls, "other.tls.test").await.as_deref(),
        Some("dflt")
    );
    let (code, out) = curl(ca, "other.tls.test", tls, "/", &[]).await;
    // 60: curl could not verify the certificate (not a refused connection or a timeout).
    assert_eq!(
        code, 60,
        "the default certificate is not valid for other.tls.test: {out}"
    );
    let (code, out) = curl(ca, "other.tls.test", tls, "/", &["-k"]).await;
    assert_eq!((code, &out[..6]), (0, "200 2\n"), "{out}");
}

/// One port, both sides: on `web`, the plain router answers over HTTP and the TLS router over
/// TLS, and neither is served on the other side (nor a TLS router over plain HTTP on `websecure`).
async fn one_port_serves_plain_and_tls_routers_uncrossed(ca: &Path, web: u16, tls: u16) {
    let (code, out) = run(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Host: a.tls.test",
        ]
        .into_iter()
        .chain([format!("http://127.0.0.1:{web}/").as_str()])
        .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "200"));
    let (code, out) = curl(ca, "m.w.tls.test", web, "/", &[]).await;
    assert_eq!((code, &out[..6]), (0, "200 2\n"), "{out}");
    let (code, out) = curl(ca, "a.tls.test", web, "/", &[]).await;
    assert_eq!(
        (code, &out[..6]),
        (0, "404 2\n"),
        "a plain router is not served over TLS: {out}"
    );
    let plain_on_tls = format!("http://127.0.0.1:{tls}/");
    let (_, out) = run(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Host: a.tls.test",
            &plain_on_tls,
        ],
    )
    .await;
    assert_eq!(out, "404", "a TLS router is not served over plain HTTP");
}

/// The `redir` entry point (on `redir_port`) redirects a GET to websecure with 301, as Traefik
/// does.
async fn the_entry_point_redirects_to_websecure(redir_port: u16, tls: u16) {
    let redir = format!("http://127.0.0.1:{redir_port}/x?y=1");
    let (_, out) = run(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            "-H",
            "Host: a.tls.test",
            &redir,
        ],
    )
    .await;
    // 301 for a GET with `permanent`, as Traefik answers (308 for other methods).
    assert_eq!(out, format!("301 https://a.tls.test:{tls}/x?y=1"));
}

/// TLS options by host: strict.tls.test is TLS 1.3 only, a connection made for another name
/// cannot ask for it (421), and the default options keep TLS 1.2.
async fn tls_options_follow_the_host(ca: &Path, tls: u16) {
    let (code, out) = curl(ca, "strict.tls.test", tls, "/", &["-k", "--tls-max", "1.2"]).await;
    // 35: the handshake failed (the server's protocol_version alert), not the connection.
    assert_eq!(code, 35, "TLS 1.2 refused for strict.tls.test: {out}");
    let (code, out) = curl(ca, "strict.tls.test", tls, "/", &["-k", "--tlsv1.3"]).await;
    assert_eq!((code, &out[..6]), (0, "200 2\n"), "{out}");
    // A connection made for a.tls.test (default options) asking for strict.tls.test: 421,
    // as Traefik's SNI check answers; it would otherwise skip the TLS 1.3 floor.
    let (code, out) = curl(ca, "a.tls.test", tls, "/", &["-H", "Host: strict.tls.test"]).await;
    assert_eq!((code, &out[..6]), (0, "421 2\n"), "{out}");
    let (code, out) = curl(ca, "a.tls.test", tls, "/", &["-H", "Host: x.w.tls.test"]).await;
    assert_eq!(
        (code, &out[..6]),
        (0, "200 2\n"),
        "same options, another name: {out}"
    );
    let (code, out) = curl(ca, "a.tls.test", tls, "/", &["--tls-max", "1.2"]).await;
    assert_eq!(
        (code, &out[..6]),
        (0, "200 2\n"),
        "default options keep TLS 1.2: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_strict_refuses_names_without_a_certificate() {
    let backend = Backend::start("b1").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d);
    // The default option set made strict: no default certificate for unknown names.
    let dynamic = dynamic(d, &backend).replace(
        "[tls.options.strict]\n",
        "[tls.options.default]\nsniStrict = true\n",
    );
    let boma = Boma::start(STATIC, Some(&dynamic));
    let tls = boma.addr("websecure").port();
    wait_served(tls, "a.tls.test", "a").await;
    assert_eq!(served_cn(tls, "a.tls.test").await.as_deref(), Some("a"));
    assert_eq!(served_cn(tls, "other.tls.test").await, None);
    let (code, _) = curl(&d.join("ca.pem"), "other.tls.test", tls, "/", &["-k"]).await;
    assert_ne!(code, 0);
}

/// A rustls client trusting `ca`, offering HTTP/1.1.
fn client_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

async fn tls_connect(
    config: &Arc<rustls::ClientConfig>,
    port: u16,
    name: &str,
    from: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{from}:0").parse().unwrap())?;
    let tcp = socket.connect(([127, 0, 0, 1], port).into()).await?;
    let name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
    tokio_rustls::TlsConnector::from(Arc::clone(config))
        .connect(name, tcp)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_and_open_connections_stay() {
    let backend = Backend::start("b1").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d);
    let boma = Boma::start(STATIC, Some(&dynamic(d, &backend)));
    let tls = boma.addr("websecure").port();
    wait_served(tls, "a.tls.test", "a").await;
    let config = client_config(&d.join("ca.pem"));

    // A keep-alive HTTP/1.1 connection, open before the renewal.
    let stream = tls_connect(&config, tls, "a.tls.test", "127.0.0.1")
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let get = || {
        http::Request::get("/")
            .header("host", "a.tls.test")
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    assert_eq!(sender.send_request(get()).await.unwrap().status(), 200);

    // Renewal: a new key and certificate for the same name, written over the old files (the
    // key first, as a renewal script would; boma keeps the last good pair in between).
    support::tls::issue(d, "ca", "a2", "subjectAltName=DNS:a.tls.test\n");
    std::fs::copy(d.join("a2.key"), d.join("a.key")).unwrap();
    std::fs::copy(d.join("a2.pem"), d.join("a.pem")).unwrap();
    let renewed = eventually(Duration::from_secs(15), || async {
        (served_cn(tls, "a.tls.test").await.as_deref() == Some("a2")).then_some(())
    })
    .await;
    assert!(
        renewed.is_some(),
        "the renewed certificate was never served"
    );

    // The connection opened before the renewal still works, and new ones verify.
    let resp = sender.send_request(get()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("x-forwarded-proto: https"));
    let (code, out) = curl(&d.join("ca.pem"), "a.tls.test", tls, "/", &[]).await;
    assert_eq!((code, &out[..6]), (0, "200 2\n"), "{out}");

    // A broken renewal (a key that is not the certificate's) keeps the last good pair.
    std::fs::copy(d.join("w.key"), d.join("a.key")).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(served_cn(tls, "a.tls.test").await.as_deref(), Some("a2"));
    let stderr = boma.stderr();
    assert!(
        stderr.contains("the key is not the certificate's") && stderr.contains("last good one"),
        "the broken renewal is reported: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_flood_does_not_starve_plain_http() {
    let backend = Backend::start("b1").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d);
    let boma = Boma::start(STATIC, Some(&dynamic(d, &backend)));
    let tls = boma.addr("websecure").port();
    wait_served(tls, "a.tls.test", "a").await;
    let web = boma.addr("web");
    // The flood goes to the port the plain requests use (`web` serves both): the handshakes
    // share its accept loop, connection permits and workers with them.
    let flooded = web.port();
    let config = client_config(&d.join("ca.pem"));

    // From 127.0.0.2: 200 connections that start a handshake and stall mid-ClientHello, and
    // 32 clients making full handshakes back to back.
    let mut stalled = Vec::new();
    for _ in 0..200 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut s = socket
            .connect(([127, 0, 0, 1], flooded).into())
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
            .await
            .unwrap();
        stalled.push(s);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let handshakes = Arc::new(AtomicU64::new(0));
    let mut flood = Vec::new();
    for _ in 0..32 {
        let (stop, handshakes, config) = (stop.clone(), handshakes.clone(), config.clone());
        flood.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if tls_connect(&config, flooded, "a.tls.test", "127.0.0.2")
                    .await
                    .is_ok()
                {
                    handshakes.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // Wait until the flood is under way, then plain HTTP must be answered during it.
    let started = eventually(Duration::from_secs(10), || async {
        (handshakes.load(Ordering::Relaxed) >= 50).then_some(())
    })
    .await;
    assert!(started.is_some(), "the flood never got going");
    let client = support::Client::new();
    for _ in 0..20 {
        let r = tokio::time::timeout(Duration::from_secs(10), client.get(web, "a.tls.test", "/"))
            .await
            .expect("plain HTTP starved by the handshake flood");
        assert_eq!(r.status, 200);
    }
    let during = handshakes.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        handshakes.load(Ordering::Relaxed) > during,
        "the flood was still running while plain requests were answered"
    );
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        let _ = f.await;
    }
    drop(stalled);
}

/// boma's offline CA as the resolver of the `websecure` entry point, its certificate
/// downloadable from `localca@internal` on plain HTTP, the API on `traefik`.
const LOCAL_CA_STATIC: &str = r#"
[entryPoints.web]
address = "127.0.0.1:0"
[entryPoints.websecure]
address = "127.0.0.1:0"
[entryPoints.websecure.http.tls]
certResolver = "village"
[entryPoints.traefik]
address = "127.0.0.1:0"
[api]
insecure = true
[certificatesResolvers.village.localCA]
storage = "{storage}"
domains = ["village.lan"]
[providers.file]
filename = "{dir}/dynamic.toml"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_ca_issues_on_first_use_and_survives_a_restart() {
    let backend = Backend::start("b1").await;
    let storage = tempfile::tempdir().unwrap();
    let ca_dir = storage.path().join("ca");
    let static_toml = LOCAL_CA_STATIC.replace("{storage}", &ca_dir.display().to_string());
    let dynamic = local_ca_dynamic(&backend);
    let got = tempfile::tempdir().unwrap();
    let first_ca = got.path().join("first.crt");
    the_first_boma_issues_on_first_use(&static_toml, &dynamic, &first_ca).await;
    let second_ca = got.path().join("second.crt");
    a_restarted_boma_keeps_its_ca(&static_toml, &dynamic, &first_ca, &second_ca).await;
}

/// Routers on `websecure` for cloud.village.lan (inside the CA's domains) and outside.test
/// (outside them), and the CA's certificate at ca.village.lan on plain HTTP.
fn local_ca_dynamic(backend: &Backend) -> String {
    format!(
        r#"
[http.routers.cloud]
rule = "Host(`cloud.village.lan`)"
service = "s"
entryPoints = ["websecure"]
[http.routers.outside]
rule = "Host(`outside.test`)"
service = "s"
entryPoints = ["websecure"]
[http.routers.ca]
rule = "Host(`ca.village.lan`)"
service = "localca@internal"
entryPoints = ["web"]
[http.services.s.loadBalancer]
[[http.services.s.loadBalancer.servers]]
url = "{}"
"#,
        backend.url()
    )
}

/// curl's exit code and the content type of the CA certificate downloaded from `boma`'s
/// ca.village.lan on plain HTTP into `to`.
async fn download_ca(boma: &Boma, to: &Path) -> (i32, String) {
    let url = format!("http://127.0.0.1:{}/ca.crt", boma.addr("web").port());
    let to = to.display().to_string();
    run(
        "curl",
        &[
            "-sS",
            "-f",
            "-H",
            "Host: ca.village.lan",
            "-o",
            &to,
            "-w",
            "%{content_type}",
            &url,
        ],
    )
    .await
}

/// A first boma: its CA certificate downloads (into `first_ca`) from plain HTTP without
/// credentials, the leaf it issues on first use verifies against it, names outside its domains
/// or without a router get the default certificate, and the API lists the one leaf issued.
async fn the_first_boma_issues_on_first_use(static_toml: &str, dynamic: &str, first_ca: &Path) {
    let boma = Boma::start(static_toml, Some(dynamic));
    let tls = boma.addr("websecure").port();
    wait_served(tls, "cloud.village.lan", "cloud.village.lan").await;
    // The CA certificate, from plain HTTP without credentials (it is public).
    let (code, kind) = download_ca(&boma, first_ca).await;
    assert_eq!((code, kind.as_str()), (0, "application/x-x509-ca-cert"));
    let pem = std::fs::read_to_string(first_ca).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    // The issued leaf verifies against the downloaded CA (curl checks chain and name).
    let (code, out) = curl(first_ca, "cloud.village.lan", tls, "/", &[]).await;
    assert_eq!((code, &out[..6]), (0, "200 2\n"), "{out}");
    // No leaf outside the CA's domains, nor for a name no router has.
    assert_eq!(
        served_cn(tls, "outside.test").await.as_deref(),
        Some("BOMADEFAULTCERT")
    );
    assert_eq!(
        served_cn(tls, "nobody.village.lan").await.as_deref(),
        Some("BOMADEFAULTCERT")
    );
    assert!(
        boma.stderr()
            .contains("outside.test is outside the domains")
    );
    // The API lists what was issued.
    let api = format!("http://127.0.0.1:{}/api/tls", boma.addr("traefik").port());
    let (_, json) = run("curl", &["-sS", &api]).await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let hosts: Vec<&str> = (v["resolvers"][0]["certificates"].as_array().unwrap().iter())
        .filter_map(|c| c["host"].as_str())
        .collect();
    assert_eq!(hosts, ["cloud.village.lan"], "{json}");
}

/// After a restart: the same CA (clients trusted it once, downloaded again into `second_ca`),
/// and a fresh leaf that verifies against the first download.
async fn a_restarted_boma_keeps_its_ca(
    static_toml: &str,
    dynamic: &str,
    first_ca: &Path,
    second_ca: &Path,
) {
    let boma = Boma::start(static_toml, Some(dynamic));
    let tls = boma.addr("websecure").port();
    wait_served(tls, "cloud.village.lan", "cloud.village.lan").await;
    download_ca(&boma, second_ca).await;
    assert_eq!(
        std::fs::read(first_ca).unwrap(),
        std::fs::read(second_ca).unwrap()
    );
    let (code, out) = curl(first_ca, "cloud.village.lan", tls, "/", &[]).await;
    assert_eq!((code, &out[..6]), (0, "200 2\n"), "{out}");
}

/// `clientAuth`: a router whose options require a client certificate from the village's own CA
/// refuses a handshake without one or with one from another CA; one whose options verify a
/// certificate only if given takes both an anonymous client and a good certificate, never a bad
/// one. curl (OpenSSL) is the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_required_or_verified_when_given() {
    let backend = Backend::start("s").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    client_auth_certificates(d);
    let boma = Boma::start(STATIC, Some(&client_auth_dynamic(d, &backend)));
    let port = boma.addr("websecure").port();
    let ca = d.join("ca.pem");
    wait_served(port, "maybe.tls.test", "m").await;
    each_client_is_served_or_refused_in_the_handshake(d, &ca, port).await;
}

/// In `dir`: the server's leaf `m` (mtls.tls.test and maybe.tls.test) from `ca`, alice's client
/// certificate from the village's `clientca`, mallory's from `otherca`.
fn client_auth_certificates(d: &Path) {
    support::tls::issue(
        d,
        "ca",
        "m",
        "subjectAltName=DNS:mtls.tls.test,DNS:maybe.tls.test\n",
    );
    support::tls::issue(d, "clientca", "alice", "extendedKeyUsage=clientAuth\n");
    support::tls::issue(d, "otherca", "mallory", "extendedKeyUsage=clientAuth\n");
}

/// Routers on `websecure`: mtls.tls.test with options that require a client certificate from
/// `clientca`, maybe.tls.test with options that verify one only if given.
fn client_auth_dynamic(d: &Path, backend: &Backend) -> String {
    format!(
        r#"
[http.routers.mtls]
rule = "Host(`mtls.tls.test`)"
service = "s"
entryPoints = ["websecure"]
[http.routers.mtls.tls]
options = "mtls"
[http.routers.maybe]
rule = "Host(`maybe.tls.test`)"
service = "s"
entryPoints = ["websecure"]
[http.routers.maybe.tls]
options = "maybe"
[http.services.s.loadBalancer]
[[http.services.s.loadBalancer.servers]]
url = "{url}"
[[tls.certificates]]
certFile = "{d}/m.pem"
keyFile = "{d}/m.key"
[tls.options.mtls.clientAuth]
caFiles = ["{d}/clientca.pem"]
clientAuthType = "RequireAndVerifyClientCert"
[tls.options.maybe.clientAuth]
caFiles = ["{d}/clientca.pem"]
clientAuthType = "VerifyClientCertIfGiven"
"#,
        url = backend.url(),
        d = d.display()
    )
}

/// curl with no certificate, alice's and mallory's against each router: mtls.tls.test serves
/// alice only, maybe.tls.test serves the anonymous client and alice; every refusal is a TLS one.
async fn each_client_is_served_or_refused_in_the_handshake(d: &Path, ca: &Path, port: u16) {
    let cert = |who: &str| {
        vec![
            "--cert".to_string(),
            d.join(format!("{who}.pem")).display().to_string(),
            "--key".to_string(),
            d.join(format!("{who}.key")).display().to_string(),
        ]
    };
    let (alice, mallory) = (cert("alice"), cert("mallory"));
    let cases: [(&str, Option<&Vec<String>>, bool); 6] = [
        ("mtls.tls.test", None, false),
        ("mtls.tls.test", Some(&alice), true),
        ("mtls.tls.test", Some(&mallory), false),
        ("maybe.tls.test", None, true),
        ("maybe.tls.test", Some(&alice), true),
        ("maybe.tls.test", Some(&mallory), false),
    ];
    for (host, client, served) in cases {
        let extra: Vec<&str> =
            client.map_or(Vec::new(), |v| v.iter().map(String::as_str).collect());
        let (code, out) = curl(ca, host, port, "/", &extra).await;
        let who = client.map_or("no certificate", |c| {
            if c == &alice {
                "alice (village CA)"
            } else {
                "mallory (another CA)"
            }
        });
        if served {
            assert_eq!(code, 0, "{host} with {who}: {out}");
            assert!(out.starts_with("200 "), "{host} with {who}: {out}");
        } else {
            // Refused in the handshake (35), or by the alert that follows it under TLS 1.3,
            // seen while sending the request (55) or reading the answer (56), or as an HTTP/2
            // error (16, 92) by other curl versions: not a timeout, not an HTTP answer.
            assert!(
                matches!(code, 16 | 35 | 55 | 56 | 92),
                "{host} with {who}: curl exit {code}, not a TLS refusal: {out}"
            );
        }
    }
}
