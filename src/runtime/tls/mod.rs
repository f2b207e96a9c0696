//! TLS termination's compiled form: the certificates of every provider's `[tls]` in one store,
//! each option set as a rustls server configuration, and which option set a host's handshake
//! gets (from the routers' `tls.options`). The proxy picks a configuration by the ClientHello's
//! SNI ([`TlsSetup::config_for`]); rustls then picks the certificate from the store.
//!
//! Compiling reads the certificate files; the files read are stamped, so the assembler can see
//! a renewed certificate ([`TlsSetup::files_changed`]) and compile again. Connections already
//! open keep the configuration they started with.

pub mod certs;
pub mod config;
pub mod der;
pub mod local_ca;
pub mod options;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rustls::ServerConfig;

use certs::{CertStore, Loaded, Stamp};
use config::{Options, Tls};
use local_ca::LocalCa;

/// The certificate resolvers of the static configuration that opened, by name.
pub type Resolvers = BTreeMap<String, Arc<LocalCa>>;

/// The name of the option set used where none is named.
pub const DEFAULT_OPTIONS: &str = "default";

/// Everything compiling looks at: equal inputs with unchanged files give the same setup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsInput {
    /// Each provider's `[tls]`, by namespace.
    pub sections: BTreeMap<String, Tls>,
    /// (entry point, host in lower case) → qualified option set, from the TLS routers' `Host`
    /// rules.
    pub host_options: BTreeMap<(String, String), String>,
    /// Host → the resolver (a local CA, by name) its TLS routers name.
    pub host_resolvers: BTreeMap<String, String>,
}

/// The compiled TLS configuration of one snapshot.
#[derive(Debug, Default)]
pub struct TlsSetup {
    pub input: TlsInput,
    pub store: Arc<CertStore>,
    /// Qualified option set name → its configuration (`None`: it did not compile, and the
    /// handshakes it governs are refused rather than served weaker).
    configs: Configs,
    /// Entry point → host → qualified option set name.
    hosts: HashMap<Box<str>, HashMap<Box<str>, String>>,
    /// The files read, to notice when one changes.
    files: Vec<Stamp>,
    /// Faults found while compiling: (what, why).
    pub problems: Vec<(String, String)>,
    /// Issues and reads session tickets; kept from one compile to the next.
    ticketer: Option<Arc<dyn rustls::server::ProducesTickets>>,
}

impl TlsSetup {
    /// Compile `input` with the static `resolvers`; `prev` is returned as is when nothing it
    /// read has changed.
    pub fn compile(
        input: TlsInput,
        resolvers: &Resolvers,
        prev: Option<&Arc<TlsSetup>>,
    ) -> Arc<TlsSetup> {
        if let Some(prev) = prev
            && prev.input == input
            && !prev.files_changed()
        {
            return Arc::clone(prev);
        }
        let mut files = Vec::new();
        let mut problems = Vec::new();
        let last = prev.map(|p| &*p.store);
        let mut store = build_store(&input, last, &mut files, &mut problems);
        store.set_issuers(
            (input.host_resolvers.iter())
                .filter_map(|(host, r)| Some((host.as_str().into(), Arc::clone(resolvers.get(r)?))))
                .collect(),
        );
        let store = Arc::new(store);
        let options = option_sets(&input, &mut problems);
        let ticketer = ticketer(prev, &mut problems);
        let mut configs = server_configs(
            options,
            &store,
            ticketer.as_ref(),
            &mut files,
            &mut problems,
        );
        let hosts = host_options(&input, &mut configs, &mut problems);
        Arc::new(TlsSetup {
            input,
            store,
            configs,
            hosts,
            files,
            problems,
            ticketer,
        })
    }

    /// The name of the option set a handshake (or request) for `host` on entry point `ep`
    /// gets: its host's there, else the default one.
    pub fn options_for(&self, ep: &str, host: Option<&str>) -> &str {
        let Some(hosts) = self.hosts.get(ep) else {
            return DEFAULT_OPTIONS;
        };
        host.map(|s| s.trim_end_matches('.').to_ascii_lowercase())
            .and_then(|s| hosts.get(s.as_str()))
            .map_or(DEFAULT_OPTIONS, String::as_str)
    }

    /// The configuration a handshake on `ep` for `sni` gets, with its option set's name.
    /// `None` when that set did not compile or does not exist (the handshake is refused).
    pub fn config_for(&self, ep: &str, sni: Option<&str>) -> Option<(Arc<ServerConfig>, &str)> {
        let name = self.options_for(ep, sni);
        Some((self.configs.get(name).cloned().flatten()?, name))
    }

    /// A certificate, key or CA file read by the last compile has changed since.
    pub fn files_changed(&self) -> bool {
        self.files.iter().any(Stamp::changed)
    }

    /// Certificates in the store, for the API.
    pub fn certificates(&self) -> impl Iterator<Item = &Loaded> {
        self.store.certificates()
    }
}

/// Option set name → its configuration (`None`: it did not compile).
type Configs = HashMap<String, Option<Arc<ServerConfig>>>;

/// Every provider's option sets by qualified name (`name@provider`, but `default` unqualified),
/// the built-in default added when none defines one.
fn option_sets<'a>(
    input: &'a TlsInput,
    problems: &mut Vec<(String, String)>,
) -> BTreeMap<String, Cow<'a, Options>> {
    let mut options: BTreeMap<String, Cow<'a, Options>> = BTreeMap::new();
    for (ns, tls) in &input.sections {
        for (name, opts) in &tls.options {
            // Any provider's `default` is the default; defined by two, the first (by
            // provider name) is used and the other reported.
            let key = if name == DEFAULT_OPTIONS {
                DEFAULT_OPTIONS.to_string()
            } else {
                format!("{name}@{ns}")
            };
            if key == DEFAULT_OPTIONS && options.contains_key(&key) {
                problems.push((
                    format!("tls options default@{ns}"),
                    "another provider defines the default options too; the first (by \
                     provider name) is used"
                        .into(),
                ));
                continue;
            }
            options.entry(key).or_insert(Cow::Borrowed(opts));
        }
    }
    options
        .entry(DEFAULT_OPTIONS.to_string())
        .or_insert_with(|| Cow::Owned(Options::default()));
    options
}

/// The session-ticket key source: the previous setup's (tickets stay valid across compiles),
/// else a new one.
fn ticketer(
    prev: Option<&Arc<TlsSetup>>,
    problems: &mut Vec<(String, String)>,
) -> Option<Arc<dyn rustls::server::ProducesTickets>> {
    if let Some(t) = prev.and_then(|p| p.ticketer.clone()) {
        return Some(t);
    }
    match rustls::crypto::ring::Ticketer::new() {
        Ok(t) => Some(t),
        Err(e) => {
            problems.push(("tls".into(), format!("no session tickets: {e}")));
            None
        }
    }
}

/// Each option set as a rustls configuration; what did not compile is reported and kept as
/// `None`.
fn server_configs(
    options: BTreeMap<String, Cow<'_, Options>>,
    store: &Arc<CertStore>,
    tickets: Option<&Arc<dyn rustls::server::ProducesTickets>>,
    files: &mut Vec<Stamp>,
    problems: &mut Vec<(String, String)>,
) -> Configs {
    let mut configs = HashMap::new();
    for (name, opts) in options {
        let mut notes = Vec::new();
        let built = options::server_config(&opts, store, (&mut *files, &mut notes), tickets);
        let config = match built {
            Ok(c) => Some(c),
            Err(why) => {
                problems.push((format!("tls options {name}"), why));
                None
            }
        };
        problems.extend(
            notes
                .into_iter()
                .map(|n| (format!("tls options {name}"), n)),
        );
        configs.insert(name, config);
    }
    configs
}

/// Entry point → host → the option set its TLS routers name. A name that does not exist is
/// reported and kept as a set that refuses every handshake.
fn host_options(
    input: &TlsInput,
    configs: &mut Configs,
    problems: &mut Vec<(String, String)>,
) -> HashMap<Box<str>, HashMap<Box<str>, String>> {
    let mut hosts: HashMap<Box<str>, HashMap<Box<str>, String>> = HashMap::new();
    for ((ep, host), name) in &input.host_options {
        if !configs.contains_key(name) {
            // Never the default set instead: a typo must not drop clientAuth or a version
            // floor. Its handshakes are refused until the name exists.
            problems.push((
                format!("host {host}"),
                format!("TLS options `{name}` do not exist; handshakes for this host are refused"),
            ));
            configs.insert(name.clone(), None);
        }
        (hosts.entry(ep.as_str().into()).or_default()).insert(host.as_str().into(), name.clone());
    }
    hosts
}

/// Every provider's certificates (each pair once) and the default store's default certificate.
/// A pair that no longer loads keeps its `last` good certificate (a renewal caught between
/// writing the certificate and its key is read again at the next check).
fn build_store(
    input: &TlsInput,
    last: Option<&CertStore>,
    files: &mut Vec<Stamp>,
    problems: &mut Vec<(String, String)>,
) -> CertStore {
    let mut load = |cert: &str, key: &str, what: String| match certs::load(cert, key, files) {
        Ok(loaded) => Some(loaded),
        Err(why) => {
            let kept = last.and_then(|l| l.loaded_from(cert, key)).cloned();
            let note = if kept.is_some() {
                "; the last good one is kept"
            } else {
                ""
            };
            problems.push((what, format!("{why}{note}")));
            kept
        }
    };
    let mut notes = Vec::new();
    let mut seen = Vec::new();
    let mut loaded = Vec::new();
    let mut default = None;
    for (ns, tls) in &input.sections {
        for c in &tls.certificates {
            if seen.contains(&c) {
                continue;
            }
            seen.push(c);
            let what = format!("tls certificate ({ns})");
            loaded.extend(load(&c.cert_file, &c.key_file, what));
        }
        for (name, store) in &tls.stores {
            if name != "default" {
                notes.push((
                    format!("tls store {name}@{ns}"),
                    "only the `default` store is used (as in Traefik v3)".into(),
                ));
                continue;
            }
            if store.default_generated_cert.is_some() {
                notes.push((
                    format!("tls store default@{ns}"),
                    "defaultGeneratedCert needs an ACME resolver, which boma does not have yet"
                        .into(),
                ));
            }
            if let Some(d) = &store.default_certificate
                && default.is_none()
            {
                default = load(
                    &d.cert_file,
                    &d.key_file,
                    format!("tls default certificate ({ns})"),
                );
            }
        }
    }
    problems.extend(notes);
    CertStore::new(loaded, default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recompile_keeps_the_session_ticket_keys() {
        let first = TlsSetup::compile(TlsInput::default(), &Resolvers::new(), None);
        let mut input = TlsInput::default();
        (input.host_options).insert(("web".into(), "a.lan".into()), DEFAULT_OPTIONS.into());
        let second = TlsSetup::compile(input, &Resolvers::new(), Some(&first));
        assert!(
            !Arc::ptr_eq(&first, &second),
            "a new input is compiled again"
        );
        let (a, b) = (first.ticketer.as_ref(), second.ticketer.as_ref());
        assert!(a.zip(b).is_some_and(|(a, b)| Arc::ptr_eq(a, b)));
        // And the same input is not compiled again at all.
        let third = TlsSetup::compile(second.input.clone(), &Resolvers::new(), Some(&second));
        assert!(Arc::ptr_eq(&second, &third));
    }
}
