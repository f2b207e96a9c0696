//! `[certificatesResolvers.<name>]`: where routers that name a resolver (`tls.certResolver`)
//! get their certificates. Traefik's `acme` needs the internet and is not there yet; boma's own
//! `localCA` is an offline CA for village networks (`docs/tls.md`). A resolver is one of the
//! two kinds, so ACME can be added beside `localCA` without changing how routers name it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Duration;

/// `[certificatesResolvers.<name>]`: one kind (`acme` and `tailscale` are refused as not
/// supported, by the static configuration's list of those).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CertResolver {
    /// boma's offline CA.
    #[serde(rename = "localCA")]
    pub local_ca: Option<LocalCa>,
}

/// `[certificatesResolvers.<name>.localCA]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalCa {
    /// Directory of the CA's certificate and key (default `/data/boma/local-ca`, the image's
    /// data partition).
    pub storage: PathBuf,
    /// The CA's name, which a client shows when asked to trust it.
    #[serde(rename = "commonName")]
    pub common_name: String,
    /// Names the CA may certify, with their subdomains (X.509 name constraints, so a client
    /// trusts it for these only); empty: any router host. Fixed when the CA is made.
    pub domains: Vec<String>,
    /// Life of an issued certificate (default 90 days; renewed after two thirds of it).
    #[serde(rename = "certificateDuration")]
    pub certificate_duration: Duration,
    /// Issued certificates kept in memory (default 1024).
    #[serde(rename = "maxCertificates")]
    pub max_certificates: usize,
}

impl Default for LocalCa {
    fn default() -> Self {
        LocalCa {
            storage: PathBuf::from("/data/boma/local-ca"),
            common_name: "boma local CA".into(),
            domains: Vec::new(),
            certificate_duration: Duration::from_secs(90 * 86_400),
            max_certificates: 1024,
        }
    }
}
