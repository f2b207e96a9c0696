//! Test certificates made with the `openssl` CLI (installed by `make deps`): a CA and
//! certificates it signs, for the TLS peers of the tests (socat with OpenSSL).

use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}); run `make deps`"));
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA `{ca}.pem` (made when missing) and a certificate `{cert}.pem`/`{cert}.key` signed by
/// it, with the X.509 extensions `ext` (e.g. `subjectAltName=IP:127.0.0.1`).
pub fn issue(dir: &Path, ca: &str, cert: &str, ext: &str) {
    if !dir.join(format!("{ca}.pem")).exists() {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ],
        );
    }
    std::fs::write(dir.join(format!("{cert}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={cert}"),
            "-keyout",
            &format!("{cert}.key"),
            "-out",
            &format!("{cert}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{cert}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{cert}.ext"),
            "-out",
            &format!("{cert}.pem"),
        ],
    );
}

/// socat with OpenSSL terminating TLS on a free `127.0.0.1` port and forwarding each connection
/// to `target` (a socat address: `TCP:127.0.0.1:8080`, `UNIX-CONNECT:/var/run/docker.sock`).
/// `cert` and `key` name the server's files; `client_ca`, when given, is the CA its clients'
/// certificates must come from. Stopped when dropped.
pub struct TlsFront {
    pub port: u16,
    socat: std::process::Child,
}

impl TlsFront {
    pub async fn start(
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
        target: &str,
    ) -> TlsFront {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let verify = match client_ca {
            Some(ca) => format!("cafile={},verify=1", ca.display()),
            None => "verify=0".to_string(),
        };
        let listen = format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},{verify}",
            cert.display(),
            key.display()
        );
        let socat = Command::new("socat")
            .args([listen.as_str(), target])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run socat ({e}); run `make deps`"));
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        TlsFront { port, socat }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.socat.kill();
        let _ = self.socat.wait();
    }
}
