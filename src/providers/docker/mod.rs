//! Container discovery: the Docker provider. It watches one or more Docker engines (the local
//! socket, `tcp://` endpoints) and turns the labels of their running containers into one
//! [`Fragment`] per engine, with Traefik's label grammar and defaults, so that compose files
//! written for Traefik work unchanged.
//!
//! Layers, each in its own file:
//! - `labels`: label keys → a case-insensitive tree, and subtrees → serde types through the same
//!   lenient reader as the file provider.
//! - `decode`: one container → its routers, services (with its server address) and middlewares.
//! - `build`: every container of an engine → one fragment (same-service merge, conflicts).
//! - `client`: the transport: HTTP/1.1 `GET`s on the unix socket, TCP or TLS, the short calls
//!   of an engine sharing one kept connection, TCP keepalive, API version negotiation.
//! - `lines`: the event stream cut into lines.
//! - `engine`: the Docker API (read-only: version, info, list, inspect, events, ping) →
//!   [`Container`].
//! - `watch`: the task: initial list, then events, inspecting only the container concerned,
//!   with a watchdog pinging an engine whose stream is silent; retries with backoff while the
//!   engine is away and keeps the last routes until a fresh list.
//!
//! Everything but `client`, `engine` and `watch` is pure and tested from fixtures (the version
//! negotiation and line splitting too). Nothing here writes to
//! an engine, and a bad label is a [`Problem`], never a crash and never silently dropped.

mod address;
mod build;
mod client;
mod decode;
mod engine;
mod error;
mod labels;
mod lines;
mod swarm;
mod watch;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_build;
#[cfg(test)]
mod tests_client;
#[cfg(test)]
mod tests_swarm;

use std::collections::BTreeMap;

pub use build::build;
pub use client::{Endpoint, TlsFiles};

use crate::rule::constraint::Constraint;
use crate::rule::template::{self, Template};
pub use watch::{DockerSource, EngineStatus, Kind, engines, run};

#[cfg(doc)]
use crate::dynamic::{Fragment, Problem};

/// Compose's labels naming a container's project and service (`<service>-<project>` names).
const COMPOSE_PROJECT: &str = "com.docker.compose.project";
const COMPOSE_SERVICE: &str = "com.docker.compose.service";

/// The namespace of the first (or only) engine: `name@docker`.
pub const NAMESPACE: &str = "docker";
/// The namespace of the swarm provider's names: `name@swarm`.
pub const SWARM_NAMESPACE: &str = "swarm";

/// What boma needs to know about one container, whatever engine or API version it came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Container {
    /// Full container ID.
    pub id: String,
    /// Container name without Docker's leading `/` (a Swarm task: `<service>.<slot>`).
    pub name: String,
    /// The service it belongs to when the engine says so (a Swarm service's name); otherwise
    /// the service name comes from compose labels or the container name.
    pub service: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Only running containers are routed.
    pub running: bool,
    /// Docker healthcheck status (`starting`, `healthy`, `unhealthy`); `None` without one.
    pub health: Option<String>,
    /// `HostConfig.NetworkMode`: `default`, `bridge`, `host`, `none`, `container:<id>`, or a
    /// network name.
    pub network_mode: String,
    /// Exposed ports (published or not), as `(port, protocol)`.
    pub ports: Vec<(u16, String)>,
    /// Attached networks by name, with the container's address on each (IPv4, else IPv6).
    pub networks: BTreeMap<String, String>,
}

/// How containers of one engine become configuration (the `[providers.docker]` settings).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The namespace of this engine's names (`docker`, or `docker-<name>` for further engines).
    pub namespace: String,
    /// Route containers without `traefik.enable=true` (Traefik's default: true).
    pub exposed_by_default: bool,
    /// Rule of routers without a `rule` label.
    pub default_rule: Template,
    /// Network used when a container has no `traefik.docker.network` label.
    pub network: Option<String>,
    /// Only containers whose labels match are considered.
    pub constraints: Option<Constraint>,
    /// Keep services of unhealthy containers (with no server) instead of dropping them.
    pub allow_empty_services: bool,
    /// Address of containers in host network mode (`127.0.0.1` for a local engine, the engine's
    /// host for a remote one).
    pub host_address: String,
    /// The containers are swarm tasks or services: `traefik.swarm.*` labels apply.
    pub swarm: bool,
}

impl Settings {
    /// Traefik's defaults, for the engine named by `namespace`.
    pub fn new(namespace: &str) -> Settings {
        Settings {
            namespace: namespace.to_string(),
            exposed_by_default: true,
            default_rule: Template::parse(template::DEFAULT_RULE)
                .unwrap_or_else(|_| Template::empty()),
            network: None,
            constraints: None,
            allow_empty_services: false,
            host_address: "127.0.0.1".to_string(),
            swarm: false,
        }
    }
}

/// One [`DockerSource`] per engine of a `[providers.docker]` section, or the one engine of a
/// `[providers.swarm]` section (`swarm`).
pub fn sources(
    cfg: &crate::config::DockerProvider,
    swarm: bool,
) -> Result<Vec<DockerSource>, String> {
    let default_rule = cfg.template()?;
    let constraints = cfg.constraint()?;
    let engines = cfg.engines(swarm)?;
    let kind = if swarm {
        Kind::Swarm {
            refresh: cfg.refresh(),
        }
    } else {
        Kind::Containers
    };
    Ok(engines
        .into_iter()
        .map(|e| DockerSource {
            settings: Settings {
                namespace: e.namespace,
                exposed_by_default: cfg.exposed_by_default,
                default_rule: default_rule.clone(),
                network: cfg.network.clone(),
                constraints: constraints.clone(),
                allow_empty_services: cfg.allow_empty_services,
                host_address: e.endpoint.host_address(),
                swarm,
            },
            endpoint: e.endpoint,
            tls: e.tls,
            watch: cfg.watch,
            kind,
        })
        .collect())
}
