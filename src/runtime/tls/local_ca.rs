//! boma's offline certificate authority, a certificate resolver of its own
//! (`[certificatesResolvers.<name>.localCA]`): for village networks with no way to reach a
//! public CA. The CA is made once and kept in its storage directory (key first, both written
//! durably, the key readable by root only); a leaf is issued on the first handshake for a host
//! of a router that names the resolver, kept in memory (bounded) and issued again once two
//! thirds of its life are over. Clients trust the CA once: its certificate is served by
//! `localca@internal` and the API.
//!
//! With `domains`, the CA carries X.509 name constraints for them, so a client that trusts it
//! trusts it for those names only, and no leaf is issued outside them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// The settings of one local CA (from `config`, kept free of it here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where `ca.pem` and `ca.key` are kept.
    pub storage: PathBuf,
    /// The CA's common name (what a client shows when asked to trust it).
    pub common_name: String,
    /// Names the CA may certify (and their subdomains); empty: any router host.
    pub domains: Vec<String>,
    /// Life of an issued leaf.
    pub leaf_validity: Duration,
    /// At most this many leaves are kept; the one due for renewal soonest goes first.
    pub max_leaves: usize,
}

/// A leaf in the cache.
struct Leaf {
    key: Arc<CertifiedKey>,
    renew_at: SystemTime,
    not_after: SystemTime,
}

/// An open local CA.
pub struct LocalCa {
    settings: Settings,
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    leaves: Mutex<HashMap<String, Leaf>>,
    /// Leaves issued since start (the API shows it).
    pub issued: AtomicU64,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa")
            .field("storage", &self.settings.storage)
            .field("common_name", &self.settings.common_name)
            .finish_non_exhaustive()
    }
}

fn err(what: &str) -> impl Fn(rcgen::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

impl LocalCa {
    /// Opens the CA in `settings.storage`, making it when neither file exists. A CA that is
    /// there but does not load is an error, never replaced: clients may trust it.
    pub fn open(settings: Settings) -> Result<LocalCa, String> {
        let dir = &settings.storage;
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
        let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
        if !cert_path.exists() {
            if unix(SystemTime::now()) < EARLIEST {
                // A box without a battery-backed clock starts in 1970: a CA made now would be
                // expired once the clock is right, and it is never replaced.
                return Err("the clock is not set (NTP); the local CA is made once it is".into());
            }
            crate::store::ensure_dir(dir).map_err(|e| io(dir, e))?;
            // The key is written first. A key without a certificate (a power cut in between)
            // is kept and certified: no key is ever overwritten.
            let key = if key_path.exists() {
                let pem = std::fs::read_to_string(&key_path).map_err(|e| io(&key_path, e))?;
                KeyPair::from_pem(&pem).map_err(err("ca.key"))?
            } else {
                let key = KeyPair::generate().map_err(err("CA key"))?;
                crate::store::write_private(&key_path, key.serialize_pem().as_bytes())
                    .map_err(|e| io(&key_path, e))?;
                key
            };
            let pem = make_ca(&settings, &key)?;
            crate::store::write_durably(&cert_path, pem.as_bytes())
                .map_err(|e| io(&cert_path, e))?;
            tracing::info!(storage = %dir.display(), "local CA created");
        }
        let pem = std::fs::read_to_string(&cert_path).map_err(|e| io(&cert_path, e))?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(|e| io(&key_path, e))?;
        Self::from_pem(settings, pem, &key_pem)
    }

    fn from_pem(settings: Settings, ca_pem: String, key_pem: &str) -> Result<LocalCa, String> {
        use rustls::pki_types::pem::PemObject;
        let ca_der = CertificateDer::from_pem_slice(ca_pem.as_bytes())
            .map_err(|e| format!("ca.pem: {e}"))?;
        let facts = super::der::facts(&ca_der).ok_or("ca.pem: not an X.509 certificate")?;
        let now = unix(SystemTime::now()) as i64;
        if now < facts.not_before || now > facts.not_after {
            return Err(format!(
                "ca.pem is valid from {} to {} (Unix seconds) and the clock says {now}: set the \
                 clock (NTP), or move the CA aside to make a new one",
                facts.not_before, facts.not_after
            ));
        }
        // The stored CA's name constraints are what clients trust it for: a CA made for other
        // `domains` than configured is refused (never replaced), with what to do.
        let canonical = |d: &String| d.trim_end_matches('.').to_ascii_lowercase();
        let mut stored: Vec<String> = facts.permitted.iter().map(canonical).collect();
        let mut wanted: Vec<String> = settings.domains.iter().map(canonical).collect();
        for list in [&mut stored, &mut wanted] {
            list.sort();
            list.dedup();
        }
        if stored != wanted {
            let show = |l: &[String]| match l {
                [] => "any name (no `domains`)".to_string(),
                l => l.join(", "),
            };
            return Err(format!(
                "ca.pem was made for {} but `domains` says {}: clients trust a CA for the names \
                 it was made for. Set `domains` back, or move {} aside to make a new CA (every \
                 client then has to trust the new one)",
                show(&stored),
                show(&wanted),
                settings.storage.display()
            ));
        }
        let subject = facts.subject.ok_or("ca.pem: no common name")?;
        let key = KeyPair::from_pem(key_pem).map_err(err("ca.key"))?;
        // The issuer is what leaves name: the CA's subject and key. Its certificate is not
        // parsed back (that would take an X.509 parser); the subject is built the same way.
        let issuer = Issuer::new(ca_params(&subject, &settings.domains), key);
        let ca = LocalCa {
            settings,
            ca_pem,
            ca_der,
            issuer,
            leaves: Mutex::new(HashMap::new()),
            issued: AtomicU64::new(0),
        };
        // One leaf, checked against the CA, proves key and certificate belong together.
        let host =
            (ca.settings.domains.first()).map_or("probe.invalid".into(), |d| format!("probe.{d}"));
        let probe = ca.issue(&host, SystemTime::now())?;
        ca.verify(&probe.key, &host)
            .map_err(|e| format!("ca.key is not the key of ca.pem ({e})"))?;
        Ok(ca)
    }

    /// The CA certificate (PEM), for clients to trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Whether this CA may certify `host`.
    pub fn covers(&self, host: &str) -> bool {
        let d = &self.settings.domains;
        d.is_empty()
            || d.iter().any(|d| {
                host == d
                    || (host.len() > d.len() && host.ends_with(d.as_str()) && {
                        host.as_bytes()[host.len() - d.len() - 1] == b'.'
                    })
            })
    }

    /// The leaf for `host` (lower case), issued now if there is none or it is due for renewal.
    pub fn leaf(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        self.leaf_at(host, SystemTime::now())
    }

    fn leaf_at(&self, host: &str, now: SystemTime) -> Option<Arc<CertifiedKey>> {
        if !self.covers(host) {
            return None;
        }
        let mut leaves = self.leaves.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(leaf) = leaves.get(host)
            && now < leaf.renew_at
        {
            return Some(Arc::clone(&leaf.key));
        }
        // Issued under the lock: two handshakes for a new host make one leaf. It takes a key
        // generation and one signature, a fraction of a millisecond.
        let leaf = match self.issue(host, now) {
            Ok(leaf) => leaf,
            Err(e) => {
                tracing::warn!(host, error = %e, "local CA: cannot issue a certificate");
                return leaves.get(host).map(|l| Arc::clone(&l.key));
            }
        };
        if leaves.len() >= self.settings.max_leaves.max(1) && !leaves.contains_key(host) {
            let soonest = (leaves.iter())
                .min_by_key(|(_, l)| l.renew_at)
                .map(|(h, _)| h.clone());
            if let Some(h) = soonest {
                leaves.remove(&h);
            }
        }
        let key = Arc::clone(&leaf.key);
        leaves.insert(host.to_string(), leaf);
        self.issued.fetch_add(1, Ordering::Relaxed);
        Some(key)
    }

    /// Hosts with a leaf now and when each expires (Unix seconds), sorted.
    pub fn leaves(&self) -> Vec<(String, u64)> {
        let leaves = self.leaves.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(String, u64)> = (leaves.iter())
            .map(|(h, l)| (h.clone(), unix(l.not_after)))
            .collect();
        out.sort();
        out
    }

    fn issue(&self, host: &str, now: SystemTime) -> Result<Leaf, String> {
        let mut params = CertificateParams::new(vec![host.to_string()]).map_err(err(host))?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, host);
        let validity = self.settings.leaf_validity.max(Duration::from_secs(3600));
        // An hour back: a client whose clock is a little behind still accepts it.
        params.not_before = offset(now - Duration::from_secs(3600))?;
        let not_after = now + validity;
        params.not_after = offset(not_after)?;
        params.serial_number = Some(serial()?);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(err("leaf key"))?;
        let cert = params.signed_by(&key, &self.issuer).map_err(err(host))?;
        let der = PrivateKeyDer::try_from(key.serialize_der())?;
        let signer =
            rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| e.to_string())?;
        let chain = vec![cert.der().clone(), self.ca_der.clone()];
        Ok(Leaf {
            key: Arc::new(CertifiedKey::new(chain, signer)),
            renew_at: now + validity * 2 / 3,
            not_after,
        })
    }

    /// Checks `leaf` for `host` against this CA as a client would.
    fn verify(&self, leaf: &CertifiedKey, host: &str) -> Result<(), String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).map_err(|e| e.to_string())?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .map_err(|e| e.to_string())?;
        let name =
            rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
        rustls::client::danger::ServerCertVerifier::verify_server_cert(
            &*verifier,
            &leaf.cert[0],
            &leaf.cert[1..],
            &name,
            &[],
            rustls::pki_types::UnixTime::now(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }
}

/// The parameters of the CA certificate with common name `cn`.
fn ca_params(cn: &str, domains: &[String]) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    if !domains.is_empty() {
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: (domains.iter())
                .map(|d| GeneralSubtree::DnsName(d.clone()))
                .collect(),
            excluded_subtrees: Vec::new(),
        });
    }
    params
}

/// The earliest plausible time, in Unix seconds: before it, the clock has not been set
/// (2026-01-01).
const EARLIEST: u64 = 1_767_225_600;

/// A new CA certificate for `key` (PEM, valid for 20 years).
fn make_ca(settings: &Settings, key: &KeyPair) -> Result<String, String> {
    let mut params = ca_params(&settings.common_name, &settings.domains);
    let now = SystemTime::now();
    params.not_before = offset(now - Duration::from_secs(86_400))?;
    params.not_after = offset(now + Duration::from_secs(20 * 365 * 86_400))?;
    params.serial_number = Some(serial()?);
    let cert = params.self_signed(key).map_err(err("CA certificate"))?;
    Ok(cert.pem())
}

/// A random positive 16-byte serial number.
fn serial() -> Result<SerialNumber, String> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| "no randomness for a serial number")?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn offset(t: SystemTime) -> Result<time::OffsetDateTime, String> {
    let secs = i64::try_from(unix(t)).map_err(|e| e.to_string())?;
    time::OffsetDateTime::from_unix_timestamp(secs).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path, domains: &[&str]) -> Settings {
        Settings {
            storage: dir.join("ca"),
            common_name: "test local CA".into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            leaf_validity: Duration::from_secs(90 * 86_400),
            max_leaves: 2,
        }
    }

    #[test]
    fn made_once_kept_and_reopened_with_the_same_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let ca = LocalCa::open(settings(dir.path(), &[])).unwrap();
        let pem = ca.ca_pem().to_string();
        let key = std::fs::metadata(dir.path().join("ca/ca.key")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
        let again = LocalCa::open(settings(dir.path(), &[])).unwrap();
        assert_eq!(again.ca_pem(), pem);
        // A leaf of the reopened CA verifies against the CA made first.
        let leaf = again.leaf("cloud.village.lan").unwrap();
        ca.verify(&leaf, "cloud.village.lan").unwrap();
    }

    #[test]
    fn a_key_left_without_its_certificate_is_certified_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        LocalCa::open(settings(dir.path(), &[])).unwrap();
        let key = std::fs::read(dir.path().join("ca/ca.key")).unwrap();
        std::fs::remove_file(dir.path().join("ca/ca.pem")).unwrap();
        LocalCa::open(settings(dir.path(), &[])).unwrap();
        assert_eq!(std::fs::read(dir.path().join("ca/ca.key")).unwrap(), key);
    }

    #[test]
    fn a_ca_whose_key_does_not_match_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        LocalCa::open(settings(dir.path(), &[])).unwrap();
        let other = KeyPair::generate().unwrap().serialize_pem();
        std::fs::write(dir.path().join("ca/ca.key"), other).unwrap();
        let pem_before = std::fs::read(dir.path().join("ca/ca.pem")).unwrap();
        let e = LocalCa::open(settings(dir.path(), &[])).unwrap_err();
        assert!(e.contains("not the key"), "{e}");
        assert_eq!(
            std::fs::read(dir.path().join("ca/ca.pem")).unwrap(),
            pem_before
        );
    }

    #[test]
    fn a_ca_made_for_other_domains_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let ca = LocalCa::open(settings(dir.path(), &["village.lan", "school.lan"])).unwrap();
        let pem = ca.ca_pem().to_string();
        // The same domains, in another order and case: the same CA.
        let again = LocalCa::open(settings(dir.path(), &["School.lan", "village.lan."])).unwrap();
        assert_eq!(again.ca_pem(), pem);
        for other in [&["village.lan"][..], &["clinic.lan"], &[]] {
            let e = LocalCa::open(settings(dir.path(), other)).unwrap_err();
            assert!(e.contains("made for school.lan, village.lan"), "{e}");
            assert!(e.contains("move"), "{e}");
        }
        assert_eq!(
            std::fs::read_to_string(dir.path().join("ca/ca.pem")).unwrap(),
            pem
        );
        // And the other way: a CA for any name is not taken for one with domains.
        let open = tempfile::tempdir().unwrap();
        LocalCa::open(settings(open.path(), &[])).unwrap();
        let e = LocalCa::open(settings(open.path(), &["village.lan"])).unwrap_err();
        assert!(e.contains("made for any name"), "{e}");
    }

    #[test]
    fn leaves_are_cached_renewed_bounded_and_constrained() {
        let dir = tempfile::tempdir().unwrap();
        let ca = LocalCa::open(settings(dir.path(), &["village.lan"])).unwrap();
        let t0 = SystemTime::now();
        let a = ca.leaf_at("a.village.lan", t0).unwrap();
        assert!(Arc::ptr_eq(&a, &ca.leaf_at("a.village.lan", t0).unwrap()));
        // Renewed once two thirds of its 90 days are over.
        let later = t0 + Duration::from_secs(61 * 86_400);
        let a2 = ca.leaf_at("a.village.lan", later).unwrap();
        assert!(!Arc::ptr_eq(&a, &a2));
        // Outside the CA's domains: nothing is issued.
        assert!(ca.leaf_at("example.org", t0).is_none());
        assert!(ca.leaf_at("evilvillage.lan", t0).is_none());
        assert!(ca.covers("village.lan") && ca.covers("x.y.village.lan"));
        // Bounded: a third host evicts the leaf due soonest.
        ca.leaf_at("b.village.lan", t0).unwrap();
        ca.leaf_at("c.village.lan", t0).unwrap();
        let hosts: Vec<String> = ca.leaves().into_iter().map(|(h, _)| h).collect();
        assert_eq!(hosts.len(), 2);
        assert!(hosts.contains(&"c.village.lan".to_string()));
        ca.verify(&ca.leaf("c.village.lan").unwrap(), "c.village.lan")
            .unwrap();
    }
}
