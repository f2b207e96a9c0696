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

/// The server configuration of option set `opts` over `store`.
pub fn server_config(
    opts: &Options,
    store: &Arc<CertStore>,
    stamps: &mut Vec<Stamp>,
) -> Result<Arc<ServerConfig>, String> {
    let versions = versions(opts)?;
    let provider = Arc::new(provider(opts)?);
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
    if opts.disable_session_tickets {
        config.send_tls13_tickets = 0;
    } else {
        config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| e.to_string())?;
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

/// ring's suites and groups, narrowed to the TLS 1.2 suites and the curves asked for.
fn provider(opts: &Options) -> Result<CryptoProvider, String> {
    let mut provider = rustls::crypto::ring::default_provider();
    if !opts.cipher_suites.is_empty() {
        let name = |s: &rustls::SupportedCipherSuite| format!("{:?}", s.suite());
        for wanted in &opts.cipher_suites {
            let known = provider.cipher_suites.iter().any(|s| name(s) == *wanted);
            if !known {
                return Err(format!("cipher suite `{wanted}` is not one boma offers"));
            }
        }
        // Go's rule: the list narrows TLS 1.2 only; TLS 1.3's suites are always on.
        provider.cipher_suites.retain(|s| {
            s.version() == &rustls::version::TLS13 || opts.cipher_suites.contains(&name(s))
        });
    }
    if !opts.curve_preferences.is_empty() {
        let all = std::mem::take(&mut provider.kx_groups);
        for wanted in &opts.curve_preferences {
            let group = match wanted.as_str() {
                "CurveP256" | "secp256r1" => rustls::NamedGroup::secp256r1,
                "CurveP384" | "secp384r1" => rustls::NamedGroup::secp384r1,
                "X25519" | "x25519" => rustls::NamedGroup::X25519,
                other => return Err(format!("curve `{other}` is not one boma offers")),
            };
            if let Some(g) = all.iter().find(|g| g.name() == group) {
                provider.kx_groups.push(*g);
            }
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
