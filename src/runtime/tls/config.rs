//! `[tls]` of the dynamic configuration, as Traefik's file provider reads it: certificates
//! (`[[tls.certificates]]`), named option sets (`[tls.options.<name>]`) and stores
//! (`[tls.stores.default.defaultCertificate]`). Shape only (here, as middlewares' options are
//! in `middlewares`, so that `dynamic::schema` above can use them): files are read, versions
//! and suites checked when [`super::compile`] compiles it.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[tls]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// Certificates offered by SNI (every store is the default one, as in Traefik v3).
    pub certificates: Vec<Certificate>,
    /// Option sets by name; `default` applies where no router names one.
    pub options: BTreeMap<String, Options>,
    /// Stores by name; only `default` is used.
    pub stores: BTreeMap<String, Store>,
}

/// A certificate chain and its key: each a file path or the PEM text itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Certificate {
    #[serde(rename = "certFile")]
    pub cert_file: String,
    #[serde(rename = "keyFile")]
    pub key_file: String,
    /// Stores this certificate goes to (Traefik v3 has only `default`).
    pub stores: Vec<String>,
}

/// `[tls.options.<name>]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// `VersionTLS12` (default) or `VersionTLS13`; 1.0 and 1.1 are read as 1.2.
    #[serde(rename = "minVersion")]
    pub min_version: Option<String>,
    #[serde(rename = "maxVersion")]
    pub max_version: Option<String>,
    /// TLS 1.2 suites by their IANA names (TLS 1.3 suites are always all on, as in Go).
    #[serde(rename = "cipherSuites")]
    pub cipher_suites: Vec<String>,
    /// `CurveP256`, `CurveP384`, `X25519` (Go's names), in preference order.
    #[serde(rename = "curvePreferences")]
    pub curve_preferences: Vec<String>,
    #[serde(rename = "clientAuth")]
    pub client_auth: Option<ClientAuth>,
    /// Refuse handshakes whose SNI matches no certificate (no default certificate).
    #[serde(rename = "sniStrict")]
    pub sni_strict: bool,
    /// Offered by ALPN, in order (default `h2`, `http/1.1`).
    #[serde(rename = "alpnProtocols")]
    pub alpn_protocols: Option<Vec<String>>,
    /// Deprecated in Traefik and without effect there since Go 1.17: accepted, ignored.
    #[serde(rename = "preferServerCipherSuites")]
    pub prefer_server_cipher_suites: Option<bool>,
    #[serde(rename = "disableSessionTickets")]
    pub disable_session_tickets: bool,
}

/// `[tls.options.<name>.clientAuth]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientAuth {
    /// CA certificates (files or PEM text) client certificates must chain to.
    #[serde(rename = "caFiles")]
    pub ca_files: Vec<String>,
    /// `NoClientCert` (default), `VerifyClientCertIfGiven` or `RequireAndVerifyClientCert`.
    #[serde(rename = "clientAuthType")]
    pub client_auth_type: Option<String>,
}

/// `[tls.stores.<name>]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Store {
    /// Served when no certificate matches the SNI.
    #[serde(rename = "defaultCertificate")]
    pub default_certificate: Option<StoreCertificate>,
    /// An ACME-generated default: not supported (boma has no ACME client yet).
    #[serde(rename = "defaultGeneratedCert")]
    pub default_generated_cert: Option<toml::Value>,
}

/// `[tls.stores.<name>.defaultCertificate]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreCertificate {
    #[serde(rename = "certFile")]
    pub cert_file: String,
    #[serde(rename = "keyFile")]
    pub key_file: String,
}

impl Tls {
    /// Merge `other` (another file of the same provider) in: certificates added once, option
    /// sets and stores by name, the first definition of a name winning (`conflict` told).
    pub fn merge_from(&mut self, other: &Tls, conflict: &mut dyn FnMut(&str, &str)) {
        for c in &other.certificates {
            if !self.certificates.contains(c) {
                self.certificates.push(c.clone());
            }
        }
        for (name, o) in &other.options {
            match self.options.get(name) {
                Some(mine) if mine != o => conflict("tls options", name),
                Some(_) => {}
                None => {
                    self.options.insert(name.clone(), o.clone());
                }
            }
        }
        for (name, s) in &other.stores {
            match self.stores.get(name) {
                Some(mine) if mine != s => conflict("tls store", name),
                Some(_) => {}
                None => {
                    self.stores.insert(name.clone(), s.clone());
                }
            }
        }
    }
}
