//! A TLS option set (`[tls.options.<name>]`) compiled into a rustls server configuration:
//! protocol versions, TLS 1.2 cipher suites and curves by Go's names, client certificates,
//! ALPN and session tickets. Anything boma cannot honour is an error, never silently weaker.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::WebPkiClientVerifier;

use super::certs::{CertStore, Resolver, Stamp, pem_bytes};
use super::config::Options;

/// What boma offers by ALPN unless told otherwise (Traefik's default minus `acme-tls/1`, which
/// only an ACME client answers).
const DEFAULT_ALPN: [&str; 2] = ["h2", "http/1.1"];

/// The server configuration of option set `opts` over `store`, issuing session tickets with
/// `ticketer` (shared across compiles, so a reload does not void the tickets clients hold);
/// what it left out goes to `notes`.
pub fn server_config(
    opts: &Options,
    store: &Arc<CertStore>,
    (stamps, notes): (&mut Vec<Stamp>, &mut Vec<String>),
    ticketer: Option<&Arc<dyn rustls::server::ProducesTickets>>,
) -> Result<Arc<ServerConfig>, String> {
    let versions = versions(opts)?;
    let provider = Arc::new(provider(opts, notes)?);
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let builder = match client_verifier(opts, &provider, stamps)? {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(Resolver {
        store: Arc::clone(store),
        strict: opts.sni_strict,
    }));
    config.alpn_protocols = match &opts.alpn_protocols {
        Some(list) => list
            .iter()
            .filter(|p| p.as_str() != "acme-tls/1")
            .map(|p| p.as_bytes().to_vec())
            .collect(),
        None => DEFAULT_ALPN.iter().map(|p| p.as_bytes().to_vec()).collect(),
    };
    match ticketer {
        Some(t) if !opts.disable_session_tickets => config.ticketer = Arc::clone(t),
        _ => config.send_tls13_tickets = 0,
    }
    Ok(Arc::new(config))
}

fn version(name: &str) -> Result<u8, String> {
    match name {
        // rustls has no TLS 1.0 or 1.1: a floor that low is TLS 1.2's.
        "VersionTLS10" | "VersionTLS11" | "VersionTLS12" => Ok(12),
        "VersionTLS13" => Ok(13),
        other => Err(format!(
            "unknown TLS version `{other}` (VersionTLS12 or VersionTLS13)"
        )),
    }
}

fn versions(opts: &Options) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let min = opts.min_version.as_deref().map_or(Ok(12), version)?;
    let max = opts.max_version.as_deref().map_or(Ok(13), version)?;
    if min > max {
        return Err(format!(
            "minVersion TLS 1.{} is above maxVersion TLS 1.{}",
            min - 10,
            max - 10
        ));
    }
    let mut out = Vec::new();
    if min <= 13 && max >= 13 {
        out.push(&rustls::version::TLS13);
    }
    if min <= 12 {
        out.push(&rustls::version::TLS12);
    }
    Ok(out)
}

/// A cipher suite name as Traefik (Go) writes it.
enum GoSuite {
    /// A TLS 1.2 suite rustls has.
    Tls12(rustls::CipherSuite),
    /// A TLS 1.3 suite: always on (Go ignores them in the list too).
    Tls13,
    /// A suite Go knows and rustls does not offer (CBC, RSA key exchange, 3DES, RC4).
    Weak,
}

fn go_suite(name: &str) -> Option<GoSuite> {
    use rustls::CipherSuite as C;
    Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => {
            GoSuite::Tls12(C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => {
            GoSuite::Tls12(C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
        }
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => {
            GoSuite::Tls12(C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)
        }
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => {
            GoSuite::Tls12(C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)
        }
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            GoSuite::Tls12(C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)
        }
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            GoSuite::Tls12(C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)
        }
        "TLS_AES_128_GCM_SHA256" | "TLS_AES_256_GCM_SHA384" | "TLS_CHACHA20_POLY1305_SHA256" => {
            GoSuite::Tls13
        }
        n if n.starts_with("TLS_RSA_WITH_")
            || n.starts_with("TLS_ECDHE_RSA_WITH_")
            || n.starts_with("TLS_ECDHE_ECDSA_WITH_") =>
        {
            GoSuite::Weak
        }
        _ => return None,
    })
}

/// ring's suites and groups, narrowed to the TLS 1.2 suites and the curves asked for. Names
/// Go knows that boma does not offer are left out, with a note: that is stricter, never
/// weaker; a list left with nothing usable is an error.
fn provider(opts: &Options, notes: &mut Vec<String>) -> Result<CryptoProvider, String> {
    let mut provider = rustls::crypto::ring::default_provider();
    if !opts.cipher_suites.is_empty() {
        let mut wanted = Vec::new();
        for name in &opts.cipher_suites {
            match go_suite(name.trim()) {
                Some(GoSuite::Tls12(s)) => wanted.push(s),
                Some(GoSuite::Tls13) => {}
                Some(GoSuite::Weak) => notes.push(format!("cipher suite {name} is not offered")),
                None => return Err(format!("unknown cipher suite `{name}`")),
            }
        }
        if wanted.is_empty() {
            return Err("none of cipherSuites is one boma offers for TLS 1.2".into());
        }
        // Go's rule: the list narrows TLS 1.2 only; TLS 1.3's suites are always on.
        provider
            .cipher_suites
            .retain(|s| s.version() == &rustls::version::TLS13 || wanted.contains(&s.suite()));
    }
    if !opts.curve_preferences.is_empty() {
        let all = std::mem::take(&mut provider.kx_groups);
        for name in &opts.curve_preferences {
            let group = match name.trim() {
                "CurveP256" | "secp256r1" => rustls::NamedGroup::secp256r1,
                "CurveP384" | "secp384r1" => rustls::NamedGroup::secp384r1,
                "X25519" | "x25519" => rustls::NamedGroup::X25519,
                "CurveP521" | "secp521r1" | "X25519MLKEM768" => {
                    notes.push(format!("curve {name} is not offered"));
                    continue;
                }
                other => return Err(format!("unknown curve `{other}`")),
            };
            if let Some(g) = all.iter().find(|g| g.name() == group) {
                provider.kx_groups.push(*g);
            }
        }
        if provider.kx_groups.is_empty() {
            return Err("none of curvePreferences is one boma offers".into());
        }
    }
    Ok(provider)
}

/// The verifier of `clientAuth`, if client certificates are asked for.
fn client_verifier(
    opts: &Options,
    provider: &Arc<CryptoProvider>,
    stamps: &mut Vec<Stamp>,
) -> Result<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>, String> {
    let Some(auth) = &opts.client_auth else {
        return Ok(None);
    };
    let optional = match auth.client_auth_type.as_deref() {
        None | Some("NoClientCert") => return Ok(None),
        Some("VerifyClientCertIfGiven") => true,
        Some("RequireAndVerifyClientCert") => false,
        Some(other @ ("RequestClientCert" | "RequireAnyClientCert")) => {
            return Err(format!(
                "clientAuthType {other} (certificates not verified) is not supported; use \
                 RequireAndVerifyClientCert with caFiles"
            ));
        }
        Some(other) => return Err(format!("unknown clientAuthType `{other}`")),
    };
    if auth.ca_files.is_empty() {
        return Err("clientAuth verifies client certificates: caFiles is required".into());
    }
    let mut roots = rustls::RootCertStore::empty();
    for spec in &auth.ca_files {
        let pem = pem_bytes(spec, stamps)?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("caFiles {spec}: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("caFiles {spec}: {e}"))?;
        }
    }
    let builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider));
    let builder = if optional {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    builder
        .build()
        .map(Some)
        .map_err(|e| format!("clientAuth: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(suites: &[&str], curves: &[&str]) -> Options {
        Options {
            cipher_suites: suites.iter().map(|s| s.to_string()).collect(),
            curve_preferences: curves.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn go_names_from_traefik_configs_are_read() {
        // Mozilla's "intermediate" list as Traefik users paste it, TLS 1.3 names included.
        let mozilla = [
            "TLS_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        ];
        let mut notes = Vec::new();
        let p = provider(&opts(&mozilla, &["X25519", "CurveP256"]), &mut notes).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(p.kx_groups.len(), 2);
        // A CBC suite is left out with a note; a list of nothing usable is an error.
        let weak = [
            "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ];
        let mut notes = Vec::new();
        let p = provider(&opts(&weak, &["CurveP521", "CurveP384"]), &mut notes).unwrap();
        assert_eq!(notes.len(), 2, "{notes:?}");
        let tls12 = (p.cipher_suites.iter()).filter(|s| s.version() == &rustls::version::TLS12);
        assert_eq!(tls12.count(), 1);
        assert!(provider(&opts(&["TLS_RSA_WITH_AES_128_CBC_SHA"], &[]), &mut notes).is_err());
        assert!(provider(&opts(&["NOT_A_SUITE"], &[]), &mut notes).is_err());
        assert!(provider(&opts(&[], &["CurveP521"]), &mut notes).is_err());
    }
}
