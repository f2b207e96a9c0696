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
