//! Starting the control side: the assembler (with the internal provider's routes published
//! before anything serves), what the admin API reports, the certificate resolvers, and the
//! providers that feed the assembler.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::{Listening, StartError};
use crate::config::Config;
use crate::dynamic::{self, AssembleCtx, EntryPointSpec, Fragment, Store};
use crate::{admin, dns, metrics, net, providers, runtime, update};

/// What the API, dashboard and metrics report, and where they read it.
pub(crate) fn admin_info(
    cfg: &Config,
    listening: &[Listening],
    workers: usize,
    (resolvers, dns, dhcp): (
        &Resolvers,
        Option<Arc<dns::Resolver>>,
        Option<net::dhcp::Handle>,
    ),
) -> admin::Info {
    admin::Info {
        entrypoints: (listening.iter())
            .filter(|l| l.what == "proxy")
            .map(|l| admin::EntryPointInfo {
                name: l.name.clone(),
                address: l.addr,
                connections: Arc::default(),
            })
            .collect(),
        started: std::time::Instant::now(),
        start_date: std::time::SystemTime::now(),
        dhcp,
        update: Arc::new(update::Updater::new(cfg.update.as_ref())),
        local_cas: (resolvers.iter())
            .filter_map(|(n, r)| Some((n.clone(), Arc::clone(r.as_ref().ok()?))))
            .collect(),
        metrics: metrics_registry(cfg, workers),
        dns,
    }
}

/// The request metrics' registry, with `[metrics.prometheus]`: one shard per worker.
pub(crate) fn metrics_registry(cfg: &Config, workers: usize) -> Option<Arc<metrics::Registry>> {
    let p = cfg.metrics.as_ref()?.prometheus.as_ref()?;
    let settings = metrics::Settings {
        buckets: p.buckets.clone(),
        entrypoints: p.add_entry_points_labels,
        routers: p.add_routers_labels,
        services: p.add_services_labels,
        max_series: cfg.limits.max_metric_series,
    };
    Some(Arc::new(metrics::Registry::new(settings, workers)))
}

/// The static configuration's certificate resolvers, opened (a local CA is made on first use of
/// its storage), or why not: a CA that cannot be opened leaves its routers with the default
/// certificate and a problem, never the gateway down.
pub(crate) type Resolvers = BTreeMap<String, Result<Arc<runtime::tls::local_ca::LocalCa>, String>>;

pub(crate) fn open_resolvers(cfg: &Config) -> Resolvers {
    let mut out = BTreeMap::new();
    for (name, r) in &cfg.certificates_resolvers {
        let Some(ca) = &r.local_ca else { continue };
        let settings = runtime::tls::local_ca::Settings {
            storage: ca.storage.clone(),
            common_name: ca.common_name.clone(),
            domains: (ca.domains.iter())
                .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            leaf_validity: ca.certificate_duration.to_std(),
            max_leaves: ca.max_certificates,
        };
        let opened = runtime::tls::local_ca::LocalCa::open(settings).map(Arc::new);
        if let Err(e) = &opened {
            tracing::error!(resolver = %name, error = %e, "local CA unavailable");
        }
        out.insert(name.clone(), opened);
    }
    out
}

/// The assembler task, after assembling what is known now (the internal provider), so the API
/// answers as soon as boma says ready. Returns where providers send their fragments.
pub(crate) fn start_assembler(
    cfg: &Config,
    (entrypoints, resolvers, metrics): (
        Vec<EntryPointSpec>,
        Resolvers,
        Option<Arc<metrics::Registry>>,
    ),
    store: &Store,
    tasks: &mut JoinSet<()>,
    stop: &watch::Receiver<bool>,
) -> Result<mpsc::Sender<(String, Fragment)>, StartError> {
    let (frag_tx, frag_rx) = mpsc::channel::<(String, Fragment)>(64);
    let ctx = AssembleCtx {
        entrypoints,
        max_routes: cfg.limits.max_routes,
        middleware_bounds: runtime::middlewares::Bounds {
            max_sources: cfg.limits.rate_limit_sources,
            max_buffered_memory: cfg.limits.max_buffered_memory,
            max_buffered_body: cfg.limits.max_buffered_body,
        },
        admin: admin_gate(cfg)?,
        resolvers,
    };
    let mut initial = BTreeMap::new();
    if cfg.api.is_some() || cfg.metrics.is_some() {
        let internal =
            providers::internal::fragment(cfg).map_err(|message| StartError::EntryPoint {
                name: "traefik".into(),
                message,
            })?;
        initial.insert("internal".to_string(), internal);
    }
    store.publish(Arc::new(dynamic::assemble(&initial, &ctx, None, 1)));
    let (store, stop) = (store.clone(), stop.clone());
    tasks.spawn(dynamic::run::run(
        frag_rx,
        (ctx, metrics),
        initial,
        store,
        stop,
    ));
    Ok(frag_tx)
}

/// The check `[admin] users` puts before the API and dashboard behind an operator's router.
pub(crate) fn admin_gate(cfg: &Config) -> Result<dynamic::AdminGate, StartError> {
    let users = cfg
        .admin
        .as_ref()
        .map(|a| a.users.clone())
        .unwrap_or_default();
    if users.is_empty() {
        return Ok(dynamic::AdminGate::Unset);
    }
    let auth = runtime::middlewares::MiddlewareConfig {
        basic_auth: Some(runtime::middlewares::BasicAuthConfig {
            users,
            realm: "boma".into(),
            remove_header: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    match runtime::middlewares::compile(&auth) {
        Ok(runtime::middlewares::Compiled::One(m)) => Ok(dynamic::AdminGate::Users(Arc::new(m))),
        Ok(runtime::middlewares::Compiled::Chain(_)) => unreachable!("basicAuth is not a chain"),
        Err(e) => Err(StartError::Admin(e.to_string())),
    }
}

/// The file, docker and swarm providers, each a task sending fragments to the assembler.
pub(crate) fn start_providers(
    cfg: &Config,
    frag_tx: &mpsc::Sender<(String, Fragment)>,
    tasks: &mut JoinSet<()>,
    stop: &watch::Receiver<bool>,
) -> Result<(), StartError> {
    let providers = cfg.providers.as_ref();
    if let Some(file) = providers.and_then(|p| p.file.as_ref()) {
        let src = providers::file::FileSource {
            filename: file.filename.clone(),
            directory: file.directory.clone(),
            watch: file.watch,
            poll: Duration::from_secs(1),
        };
        tasks.spawn(providers::file::run(src, frag_tx.clone(), stop.clone()));
    }
    for (name, section, swarm) in [
        ("docker", providers.and_then(|p| p.docker.as_ref()), false),
        ("swarm", providers.and_then(|p| p.swarm.as_ref()), true),
    ] {
        let Some(section) = section else { continue };
        let sources =
            providers::docker::sources(section, swarm).map_err(|message| StartError::Provider {
                name: name.into(),
                message,
            })?;
        for src in sources {
            tasks.spawn(providers::docker::run(src, frag_tx.clone(), stop.clone()));
        }
    }
    Ok(())
}
