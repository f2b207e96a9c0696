//! Certificates as the handshake needs them: PEM pairs read (from a file or inline text) into
//! rustls' `CertifiedKey`, indexed by the names they are for, with a default for an SNI that
//! matches none: the store's configured `defaultCertificate`, or one generated once per process
//! (as Traefik's "TRAEFIK DEFAULT CERT").

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::der::{self, Facts};

/// A PEM file larger than this is refused (a chain is a few KiB).
const PEM_MAX: u64 = 1 << 20;

/// Where a file was when it was read: a change of either means reading it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub path: PathBuf,
    pub modified: Option<SystemTime>,
    pub len: u64,
    /// Inode and change time: a file replaced by rename, or rewritten with its old mtime
    /// (`cp -p`, `rsync -t`), changes them.
    pub ino: u64,
    pub ctime: (i64, i64),
}

impl Stamp {
    fn of(path: PathBuf) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&path).ok();
        Stamp {
            modified: meta.as_ref().and_then(|m| m.modified().ok()),
            len: meta.as_ref().map_or(0, |m| m.len()),
            ino: meta.as_ref().map_or(0, |m| m.ino()),
            ctime: meta.map_or((0, 0), |m| (m.ctime(), m.ctime_nsec())),
            path,
        }
    }

    /// The file is no longer as it was read.
    pub fn changed(&self) -> bool {
        *self != Stamp::of(self.path.clone())
    }
}

/// One certificate ready to serve.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    pub facts: Facts,
    /// The certificate's file, or `inline` for PEM text in the configuration.
    pub source: String,
    /// As configured: (certFile, keyFile).
    pub pair: (String, String),
}

/// Whether `spec` is PEM text rather than a path (a key never goes into a message).
fn inline(spec: &str) -> bool {
    spec.contains("-----BEGIN") || spec.contains('\n') || spec.len() > 4096
}

/// The PEM bytes of `spec` (a path, or PEM text itself) and the stamp of its file.
pub fn pem_bytes(spec: &str, stamps: &mut Vec<Stamp>) -> Result<Vec<u8>, String> {
    if inline(spec) {
        return Ok(spec.as_bytes().to_vec());
    }
    let path = PathBuf::from(spec);
    // Stamped before reading: a change made while reading shows up on the next check.
    stamps.push(Stamp::of(path.clone()));
    let mut bytes = Vec::new();
    let file = crate::runtime::regular::open(&path).map_err(|e| format!("{spec}: {e}"))?;
    file.take(PEM_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{spec}: {e}"))?;
    if bytes.len() as u64 > PEM_MAX {
        return Err(format!("{spec}: larger than {PEM_MAX} bytes"));
    }
    Ok(bytes)
}

/// Reads a chain and its key (each a path or PEM text).
pub fn load(cert: &str, key: &str, stamps: &mut Vec<Stamp>) -> Result<Loaded, String> {
    let source = if inline(cert) {
        "inline".to_string()
    } else {
        cert.to_string()
    };
    let chain_pem = pem_bytes(cert, stamps)?;
    let key_pem = pem_bytes(key, stamps)?;
    let chain = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{source}: {e}"))?;
    let Some(leaf) = chain.first() else {
        return Err(format!("{source}: no certificate in it"));
    };
    let facts = der::facts(leaf).ok_or_else(|| format!("{source}: not an X.509 certificate"))?;
    let key_der =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| format!("{source}: key: {e}"))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| format!("{source}: key: {e}"))?;
    let certified = CertifiedKey::new(chain, signer);
    certified
        .keys_match()
        .map_err(|e| format!("{source}: the key is not the certificate's: {e}"))?;
    Ok(Loaded {
        key: Arc::new(certified),
        facts,
        source,
        pair: (cert.to_string(), key.to_string()),
    })
}

/// The certificates of a configuration, by name.
#[derive(Debug, Default)]
pub struct CertStore {
    certs: Vec<Loaded>,
    /// Exact names → index in `certs` (the first certificate for a name wins).
    exact: HashMap<Box<str>, usize>,
    /// `*.example.org` is found under `example.org`.
    wildcard: HashMap<Box<str>, usize>,
    /// The store's `defaultCertificate`, if any.
    default: Option<usize>,
    /// Hosts whose routers name a local CA: issued a certificate when nothing above has one.
    issuers: HashMap<Box<str>, Arc<super::local_ca::LocalCa>>,
}

impl CertStore {
    pub fn new(certs: Vec<Loaded>, default: Option<Loaded>) -> CertStore {
        let mut store = CertStore::default();
        for cert in certs {
            let i = store.certs.len();
            for name in &cert.facts.names {
                match name.strip_prefix("*.") {
                    Some(parent) => store.wildcard.entry(parent.into()).or_insert(i),
                    None => store.exact.entry(name.as_str().into()).or_insert(i),
                };
            }
            store.certs.push(cert);
        }
        if let Some(cert) = default {
            store.default = Some(store.certs.len());
            store.certs.push(cert);
        }
        store
    }

    /// Hosts to issue certificates for, with their CA.
    pub fn set_issuers(&mut self, issuers: HashMap<Box<str>, Arc<super::local_ca::LocalCa>>) {
        self.issuers = issuers;
    }

    /// The certificate for `sni` (lower case, no trailing dot): an exact name, else a wildcard
    /// one label up, else one issued by the local CA its routers name.
    pub fn find(&self, sni: &str) -> Option<Arc<CertifiedKey>> {
        let configured = (self.exact.get(sni).copied())
            .or_else(|| self.wildcard.get(sni.split_once('.')?.1).copied());
        match configured {
            Some(i) => Some(Arc::clone(&self.certs[i].key)),
            None => self.issuers.get(sni)?.leaf(sni),
        }
    }

    /// Served when the SNI matches nothing (or there is none).
    pub fn fallback(&self) -> Option<Arc<CertifiedKey>> {
        match self.default {
            Some(i) => Some(Arc::clone(&self.certs[i].key)),
            None => generated(),
        }
    }

    /// Every certificate with what it says about itself (the API lists them).
    pub fn certificates(&self) -> impl Iterator<Item = &Loaded> {
        self.certs.iter()
    }

    /// The certificate loaded from `cert` and `key` (as configured), if this store has it.
    pub fn loaded_from(&self, cert: &str, key: &str) -> Option<&Loaded> {
        (self.certs.iter()).find(|l| l.pair.0 == cert && l.pair.1 == key)
    }
}

/// The process's generated default certificate (made on first use; `None`, logged, only if the
/// system's random source fails).
fn generated() -> Option<Arc<CertifiedKey>> {
    static GENERATED: OnceLock<Option<Arc<CertifiedKey>>> = OnceLock::new();
    GENERATED
        .get_or_init(|| {
            let made = (|| -> Result<Arc<CertifiedKey>, String> {
                let mut params = rcgen::CertificateParams::new(vec!["boma.default.invalid".into()])
                    .map_err(|e| e.to_string())?;
                params
                    .distinguished_name
                    .push(rcgen::DnType::CommonName, "BOMA DEFAULT CERT");
                let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
                let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
                let der = PrivateKeyDer::try_from(key.serialize_der())?;
                let signer = rustls::crypto::ring::sign::any_supported_type(&der)
                    .map_err(|e| e.to_string())?;
                Ok(Arc::new(CertifiedKey::new(
                    vec![cert.der().clone()],
                    signer,
                )))
            })();
            made.map_err(|e| tracing::error!(error = %e, "cannot generate the default certificate"))
                .ok()
        })
        .clone()
}

/// rustls' view of a store under one option set: `strict` refuses an SNI that matches no
/// certificate (`sniStrict`), and a handshake without SNI.
#[derive(Debug)]
pub struct Resolver {
    pub store: Arc<CertStore>,
    pub strict: bool,
}

impl rustls::server::ResolvesServerCert for Resolver {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello
            .server_name()
            .map(|s| s.trim_end_matches('.').to_ascii_lowercase());
        if let Some(found) = sni.as_deref().and_then(|s| self.store.find(s)) {
            return Some(found);
        }
        if self.strict {
            return None;
        }
        self.store.fallback()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `names` as (cert PEM, key PEM).
    fn pair(names: &[&str]) -> (String, String) {
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn exact_names_then_wildcards_then_the_default() {
        let (a_cert, a_key) = pair(&["a.lan"]);
        let (w_cert, w_key) = pair(&["*.w.lan", "w.lan"]);
        let (d_cert, d_key) = pair(&["default.lan"]);
        let mut stamps = Vec::new();
        let a = load(&a_cert, &a_key, &mut stamps).unwrap();
        let w = load(&w_cert, &w_key, &mut stamps).unwrap();
        let d = load(&d_cert, &d_key, &mut stamps).unwrap();
        assert!(stamps.is_empty(), "inline PEM has no file to watch");
        assert_eq!(a.source, "inline");
        let (a_key_arc, w_key_arc, d_key_arc) = (a.key.clone(), w.key.clone(), d.key.clone());
        let store = CertStore::new(vec![a, w], Some(d));
        let same = |found: Option<Arc<CertifiedKey>>, want: &Arc<CertifiedKey>| {
            found.is_some_and(|f| Arc::ptr_eq(&f, want))
        };
        assert!(same(store.find("a.lan"), &a_key_arc));
        assert!(same(store.find("x.w.lan"), &w_key_arc));
        assert!(same(store.find("w.lan"), &w_key_arc));
        // A wildcard covers one label only.
        assert!(store.find("y.x.w.lan").is_none());
        assert!(store.find("b.lan").is_none());
        assert!(Arc::ptr_eq(&store.fallback().unwrap(), &d_key_arc));
        // Without a configured default, the generated one (the same every time).
        let bare = CertStore::new(Vec::new(), None);
        let g = bare.fallback().unwrap();
        assert!(Arc::ptr_eq(&g, &bare.fallback().unwrap()));
    }

    #[test]
    fn bad_pairs_are_errors() {
        let (a_cert, a_key) = pair(&["a.lan"]);
        let (_, other_key) = pair(&["b.lan"]);
        let mut stamps = Vec::new();
        let e = load(&a_cert, &other_key, &mut stamps).unwrap_err();
        assert!(e.contains("not the certificate's"), "{e}");
        let e = load(&a_key, &a_key, &mut stamps).unwrap_err();
        assert!(e.contains("no certificate"), "{e}");
        let e = load("/nonexistent/cert.pem", &a_key, &mut stamps).unwrap_err();
        assert!(e.contains("/nonexistent/cert.pem"), "{e}");
        assert_eq!(stamps.len(), 1, "a missing file is still watched");
        assert!(!stamps[0].changed());
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("boma-tls-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("cert.pem");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        // In a thread: a regression would block in open(); the test then fails, not hangs.
        let path = fifo.to_str().unwrap().to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(pem_bytes(&path, &mut Vec::new())));
        let got = rx.recv_timeout(std::time::Duration::from_secs(10));
        let e = got.expect("pem_bytes blocked on a FIFO").unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
