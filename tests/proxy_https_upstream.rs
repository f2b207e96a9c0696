//! `https://` servers: boma speaks TLS to the server, checking its certificate against the
//! static `[serversTransport]` (`rootCAs`, or `insecureSkipVerify`). The server is a real TLS
//! stack that is not boma's, OpenSSL through socat, in front of a real HTTP backend; the
//! certificates come from the `openssl` CLI. Requests are real HTTP through boma.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::tls::TlsFront;
use support::{BASIC_STATIC, Backend, Boma, Client, eventually};

/// OpenSSL (socat) terminating TLS in front of `backend`, with a certificate for IP 127.0.0.1
/// signed by `ca.pem` in `dir`.
struct TlsServer {
    dir: tempfile::TempDir,
    front: TlsFront,
}

impl TlsServer {
    async fn start(backend: &Backend) -> TlsServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        support::tls::issue(
            d,
            "ca",
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        );
        let front = TlsFront::start(
            &d.join("server.pem"),
            &d.join("server.key"),
            None,
            &format!("TCP:{}", backend.addr),
        )
        .await;
        TlsServer { dir, front }
    }

    fn ca(&self) -> String {
        self.dir.path().join("ca.pem").display().to_string()
    }
}

/// boma with `transport` as its static `[serversTransport]` body (none when empty), routing
/// `secure.test` to `url`.
fn boma(transport: &str, url: &str) -> Boma {
    let static_toml = if transport.is_empty() {
        BASIC_STATIC.to_string()
    } else {
        format!("{BASIC_STATIC}\n[serversTransport]\n{transport}\n")
    };
    let dynamic = format!(
        "[http.routers.s]\nrule = \"Host(`secure.test`)\"\nservice = \"s\"\n\
         [[http.services.s.loadBalancer.servers]]\nurl = \"{url}\"\n"
    );
    Boma::start(&static_toml, Some(&dynamic))
}

async fn status(boma: &Boma, client: &Client) -> (u16, String) {
    let r = eventually(Duration::from_secs(10), || async {
        let r = client.get(boma.addr("web"), "secure.test", "/x").await;
        (r.status != 404).then_some(r)
    })
    .await
    .unwrap_or_else(|| panic!("never routed; log:\n{}", boma.stderr()));
    (r.status, r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_servers_are_verified_against_the_servers_transport() {
    let backend = Backend::start("behind-tls").await;
    let tls = TlsServer::start(&backend).await;
    let url = format!("https://127.0.0.1:{}", tls.front.port);
    let client = Client::new();

    // Trusted through rootCAs: served, over TLS.
    let trusted = boma(&format!("rootCAs = [\"{}\"]", tls.ca()), &url);
    let (code, body) = status(&trusted, &client).await;
    assert_eq!(code, 200, "{body}\n{}", trusted.stderr());
    assert_eq!(body.lines().next(), Some("behind-tls"));

    // No transport: the host's CAs do not include the test CA, so the certificate is refused.
    let untrusted = boma("", &url);
    let (code, _) = status(&untrusted, &client).await;
    assert_eq!(code, 502, "{}", untrusted.stderr());
    assert!(
        untrusted.stderr().contains("UnknownIssuer"),
        "{}",
        untrusted.stderr()
    );

    // insecureSkipVerify accepts it.
    let insecure = boma("insecureSkipVerify = true", &url);
    let (code, body) = status(&insecure, &client).await;
    assert_eq!(code, 200, "{}", insecure.stderr());
    assert_eq!(body.lines().next(), Some("behind-tls"));

    // The name checked is the URL's host: the certificate is for 127.0.0.1, not localhost.
    let wrong_name = boma(
        &format!("rootCAs = [\"{}\"]", tls.ca()),
        &format!("https://localhost:{}", tls.front.port),
    );
    let (code, _) = status(&wrong_name, &client).await;
    assert_eq!(code, 502, "{}", wrong_name.stderr());
    assert!(
        wrong_name
            .stderr()
            .contains("certificate not valid for name"),
        "{}",
        wrong_name.stderr()
    );

    // Plain HTTP behind an https:// URL fails the handshake: 502, as Traefik.
    let plain = boma(
        "insecureSkipVerify = true",
        &format!("https://{}", backend.addr),
    );
    let (code, _) = status(&plain, &client).await;
    assert_eq!(code, 502, "{}", plain.stderr());
}

#[test]
fn a_ca_file_that_does_not_read_is_a_config_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_boma"))
        .args(["check", "/dev/stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(b"[serversTransport]\nrootCAs = [\"/nonexistent/ca.pem\"]\n")?;
            c.wait_with_output()
        })
        .expect("run boma check");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("/nonexistent/ca.pem"), "{text}");
}
