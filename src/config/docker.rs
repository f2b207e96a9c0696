//! `[providers.docker]`: container discovery, with Traefik's keys and defaults (`endpoint`,
//! `tls`, `exposedByDefault`, `defaultRule`, `network`, `constraints`, `watch`,
//! `allowEmptyServices`) plus boma's `endpoints`, further engines watched at the same time, each
//! under its own name (`x@docker-<name>`). `[providers.swarm]` has the same keys (one engine, a
//! manager) plus `refreshSeconds`.
//!
//! Types, defaults and the checks of these values (endpoint syntax, template and constraint
//! syntax, endpoint names); nothing here connects to an engine.

use serde::{Deserialize, Serialize};

use std::sync::Arc;

use super::Duration;

use crate::providers::docker::{Constraint, Endpoint, Template, TlsFiles, template};

/// `[providers.docker]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DockerProvider {
    /// The engine: `unix:///var/run/docker.sock` (default) or `tcp://host:port`. Its names
    /// are `x@docker`.
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// TLS for a `tcp://` endpoint: `ca`, client `cert` and `key`, `insecureSkipVerify`.
    pub tls: Option<TlsFiles>,
    /// Route containers that do not say `traefik.enable=true` (default true).
    #[serde(rename = "exposedByDefault", default = "default_true")]
    pub exposed_by_default: bool,
    /// Rule of routers without a `rule` label, a Go template (default
    /// ``Host(`{{ normalize .Name }}`)``).
    #[serde(rename = "defaultRule", default = "default_rule")]
    pub default_rule: String,
    /// Network used to reach containers without a `traefik.docker.network` label.
    pub network: Option<String>,
    /// Only containers whose labels match this expression are considered, e.g.
    /// ``Label(`zone`, `public`)``.
    pub constraints: Option<String>,
    /// Follow the engine's events (default true); false lists the containers once.
    #[serde(default = "default_true")]
    pub watch: bool,
    /// Keep the services of unhealthy or starting containers, with no server.
    #[serde(rename = "allowEmptyServices", default)]
    pub allow_empty_services: bool,
    /// boma: further engines, each with a name; their names are `x@docker-<name>`. Not for
    /// swarm.
    #[serde(default)]
    pub endpoints: Vec<DockerEndpoint>,
    /// Swarm only: list the services again at least this often (default 15s), also when no
    /// event said so.
    #[serde(rename = "refreshSeconds")]
    pub refresh_seconds: Option<Duration>,
}

/// Traefik's default `refreshSeconds`.
const DEFAULT_REFRESH: Duration = Duration::from_secs(15);

/// One further engine of `[providers.docker]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DockerEndpoint {
    /// Lower-case letters, digits and `-`; unique.
    pub name: String,
    /// `unix:///path` or `tcp://host:port`.
    pub endpoint: String,
    /// TLS for a `tcp://` endpoint.
    pub tls: Option<TlsFiles>,
}

impl Default for DockerProvider {
    fn default() -> Self {
        Self {
            endpoint: default_endpoint(),
            tls: None,
            exposed_by_default: true,
            default_rule: default_rule(),
            network: None,
            constraints: None,
            watch: true,
            allow_empty_services: false,
            endpoints: Vec::new(),
            refresh_seconds: None,
        }
    }
}

fn default_endpoint() -> String {
    "unix:///var/run/docker.sock".to_string()
}

fn default_rule() -> String {
    template::DEFAULT_RULE.to_string()
}

fn default_true() -> bool {
    true
}

/// One engine to watch, checked.
#[derive(Clone)]
pub struct Engine {
    /// `docker` or `docker-<name>`.
    pub namespace: String,
    pub endpoint: Endpoint,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// An endpoint and its TLS files, checked and loaded.
pub(crate) fn engine(
    namespace: String,
    endpoint: &str,
    tls: Option<&TlsFiles>,
) -> Result<Engine, String> {
    let endpoint = Endpoint::parse(endpoint).map_err(|e| e.to_string())?;
    let tls = match (tls, &endpoint) {
        (None, _) => None,
        (Some(_), Endpoint::Unix(_)) => {
            return Err(format!(
                "endpoint `{endpoint}`: `tls` applies to tcp:// endpoints only"
            ));
        }
        (Some(files), Endpoint::Tcp { .. }) => Some(files.load()?),
    };
    Ok(Engine {
        namespace,
        endpoint,
        tls,
    })
}

impl DockerProvider {
    /// Every engine to watch, the main one first (a swarm has one).
    pub fn engines(&self, swarm: bool) -> Result<Vec<Engine>, String> {
        let main = if swarm { "swarm" } else { "docker" };
        let mut out = vec![engine(main.into(), &self.endpoint, self.tls.as_ref())?];
        for e in &self.endpoints {
            out.push(engine(
                format!("docker-{}", e.name),
                &e.endpoint,
                e.tls.as_ref(),
            )?);
        }
        Ok(out)
    }

    /// How often a swarm is listed in any case.
    pub fn refresh(&self) -> std::time::Duration {
        let d = self.refresh_seconds.unwrap_or(DEFAULT_REFRESH).to_std();
        d.max(std::time::Duration::from_secs(1))
    }

    /// The parsed default rule.
    pub fn template(&self) -> Result<Template, String> {
        Template::parse(&self.default_rule).map_err(|e| e.to_string())
    }

    /// The parsed constraints, if any.
    pub fn constraint(&self) -> Result<Option<Constraint>, String> {
        (self.constraints.as_deref())
            .filter(|c| !c.trim().is_empty())
            .map(Constraint::parse)
            .transpose()
            .map_err(|e| e.to_string())
    }

    /// Every problem, as (path below `providers.docker` or `providers.swarm`, message).
    pub(super) fn problems(&self, swarm: bool) -> Vec<(Vec<String>, String)> {
        let mut out = Vec::new();
        let at = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        if swarm && !self.endpoints.is_empty() {
            out.push((
                at(&["endpoints"]),
                "a swarm is watched through one manager: use `endpoint`".to_string(),
            ));
        }
        if !swarm && self.refresh_seconds.is_some() {
            out.push((
                at(&["refreshSeconds"]),
                "`refreshSeconds` is for [providers.swarm]; containers are followed by events"
                    .to_string(),
            ));
        }
        if self
            .refresh_seconds
            .is_some_and(|d| d < Duration::from_secs(1))
        {
            out.push((
                at(&["refreshSeconds"]),
                "`refreshSeconds` must be at least 1s".to_string(),
            ));
        }
        if let Err(e) = engine(String::new(), &self.endpoint, self.tls.as_ref()) {
            out.push((at(&["endpoint"]), e));
        }
        if let Err(e) = self.template() {
            out.push((at(&["defaultRule"]), e));
        }
        if let Err(e) = self.constraint() {
            out.push((at(&["constraints"]), e));
        }
        if self.network.as_deref() == Some("") {
            out.push((at(&["network"]), "`network` is empty".to_string()));
        }
        let mut names: Vec<&str> = Vec::new();
        for (i, e) in self.endpoints.iter().enumerate() {
            let index = i.to_string();
            let ok = !e.name.is_empty()
                && e.name.len() <= 32
                && (e.name.bytes())
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                out.push((
                    at(&["endpoints", &index, "name"]),
                    format!(
                        "endpoint name `{}`: use 1 to 32 lower-case letters, digits or `-`",
                        e.name
                    ),
                ));
            } else if names.contains(&e.name.as_str()) {
                out.push((
                    at(&["endpoints", &index, "name"]),
                    format!("endpoint name `{}` is used twice", e.name),
                ));
            }
            names.push(&e.name);
            if let Err(err) = engine(String::new(), &e.endpoint, e.tls.as_ref()) {
                out.push((at(&["endpoints", &index, "endpoint"]), err));
            }
        }
        out
    }
}
