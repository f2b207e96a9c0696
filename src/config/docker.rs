//! `[providers.docker]`: container discovery, with Traefik's keys and defaults (`endpoint`,
//! `tls`, `exposedByDefault`, `defaultRule`, `network`, `constraints`, `watch`,
//! `allowEmptyServices`) plus boma's `endpoints`, further engines watched at the same time, each
//! under its own name (`x@docker-<name>`). `[providers.swarm]` has the same keys (one engine, a
//! manager) plus `refreshSeconds`.
//!
//! Types, defaults and the checks of these values (endpoint syntax, template and constraint
//! syntax, endpoint names); nothing here connects to an engine.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Duration;
use crate::rule::constraint::Constraint;
use crate::rule::template::{self, Template};

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

/// Where an engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `unix:///var/run/docker.sock`.
    Unix(PathBuf),
    /// `tcp://host:port` (plain HTTP).
    Tcp { host: String, port: u16 },
}

/// An endpoint that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("endpoint `{0}`: expected unix:///path/to/docker.sock or tcp://host:port")]
    Syntax(String),
    #[error(
        "endpoint `{0}`: {1} is not supported (use unix:// or tcp://, with a `tls` table for TLS)"
    )]
    Scheme(String, String),
}

impl Endpoint {
    /// Parse Traefik's `endpoint` syntax.
    pub fn parse(s: &str) -> Result<Endpoint, EndpointError> {
        let syntax = || EndpointError::Syntax(s.to_string());
        let (scheme, rest) = s.split_once("://").ok_or_else(syntax)?;
        match scheme {
            "unix" if rest.starts_with('/') => Ok(Endpoint::Unix(PathBuf::from(rest))),
            "unix" => Err(syntax()),
            "tcp" | "http" => {
                let rest = rest.trim_end_matches('/');
                let (host, port) = rest.rsplit_once(':').ok_or_else(syntax)?;
                let port: u16 = port.parse().map_err(|_| syntax())?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if host.is_empty() || rest.contains('/') {
                    return Err(syntax());
                }
                Ok(Endpoint::Tcp {
                    host: host.to_string(),
                    port,
                })
            }
            other => Err(EndpointError::Scheme(s.to_string(), other.to_string())),
        }
    }

    /// The address of containers in host network mode behind this engine.
    pub fn host_address(&self) -> String {
        match self {
            Endpoint::Unix(_) => "127.0.0.1".to_string(),
            Endpoint::Tcp { host, .. } => host.clone(),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            Endpoint::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

/// TLS settings of a `tcp://` engine (Traefik's `tls` table of the docker provider).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM file of the CA that signed the engine's certificate.
    pub ca: Option<PathBuf>,
    /// PEM client certificate (chain) presented to the engine.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// Do not check the engine's certificate (its signatures still are). For tests only.
    #[serde(rename = "insecureSkipVerify", default)]
    pub insecure_skip_verify: bool,
}

impl TlsFiles {
    /// Read the files into a rustls client configuration.
    pub fn load(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        let roots = if self.insecure_skip_verify {
            None
        } else {
            let ca = (self.ca.as_ref())
                .ok_or("tls: `ca` is required (the CA that signed the engine's certificate)")?;
            Some(std::slice::from_ref(ca))
        };
        let client = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            (None, None) => None,
            _ => return Err("tls: `cert` and `key` go together".into()),
        };
        let mut config = crate::tlsclient::config(roots, client)?;
        // A full handshake per connection costs nothing (the short calls to an engine share a
        // kept connection, the event stream has one of its own), and OpenSSL-based TLS fronts
        // (socat, stunnel) that verify client certificates often refuse resumption.
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Arc::new(config))
    }
}
