//! The Docker Engine API, read-only, through bollard: connect (negotiating the API version
//! down to the engine's), the engine's clock, the list of running containers, one container's
//! inspection, and the event stream, each turned into boma's own types ([`Container`],
//! [`Event`]) so nothing above this file depends on bollard or on an API version.
//!
//! Only `GET` endpoints are used: `/version`, `/info`, `/containers/json`,
//! `/containers/{id}/json`, `/events`. Every call has a timeout; an engine that answers garbage
//! is an error, never a panic.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, EventMessage, HealthStatusEnum};
use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use futures_util::{Stream, StreamExt};

use super::Container;

/// Time allowed for one API call (the event stream only for its response head).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Inspections run at once during a full list.
const INSPECT_CONCURRENCY: usize = 8;

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
        "endpoint `{0}`: {1} is not supported (use unix:// or tcp://; TLS client certificates are not supported yet)"
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

/// A failed API call.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Api(#[from] bollard::errors::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// What an event asks the provider to do about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Inspect it again (started, health changed, renamed, network attached...).
    Refresh(String),
    /// It stopped or was removed.
    Gone(String),
}

/// A connected engine.
pub struct Engine {
    docker: Docker,
}

async fn timed<T>(
    f: impl std::future::Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, EngineError> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(r) => r.map_err(EngineError::Api),
        Err(_) => Err(EngineError::Timeout(CALL_TIMEOUT)),
    }
}

impl Engine {
    /// Connect and agree on the API version.
    pub async fn connect(ep: &Endpoint) -> Result<Engine, EngineError> {
        let secs = CALL_TIMEOUT.as_secs();
        let docker = match ep {
            Endpoint::Unix(path) => Docker::connect_with_unix(
                &path.to_string_lossy(),
                secs,
                bollard::API_DEFAULT_VERSION,
            )?,
            Endpoint::Tcp { .. } => {
                Docker::connect_with_http(&ep.to_string(), secs, bollard::API_DEFAULT_VERSION)?
            }
        };
        let docker = timed(docker.negotiate_version()).await?;
        Ok(Engine { docker })
    }

    /// The API version in use, e.g. `1.41`.
    pub fn api_version(&self) -> String {
        let v = self.docker.client_version();
        format!("{}.{}", v.major_version, v.minor_version)
    }

    /// The engine's clock, in Unix seconds (for replaying events from just before a list).
    pub async fn now(&self) -> Result<Option<i64>, EngineError> {
        let info = timed(self.docker.info()).await?;
        Ok(info.system_time.as_deref().and_then(unix_seconds))
    }

    /// IDs of the running containers.
    pub async fn running(&self) -> Result<Vec<String>, EngineError> {
        let list = timed(
            self.docker
                .list_containers(Some(ListContainersOptions::default())),
        )
        .await?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    /// Every running container, inspected.
    pub async fn all(&self) -> Result<BTreeMap<String, Container>, EngineError> {
        let ids = self.running().await?;
        let results: Vec<_> = futures_util::stream::iter(ids)
            .map(|id| async move { self.inspect(&id).await })
            .buffer_unordered(INSPECT_CONCURRENCY)
            .collect()
            .await;
        let mut out = BTreeMap::new();
        for r in results {
            if let Some(c) = r? {
                out.insert(c.id.clone(), c);
            }
        }
        Ok(out)
    }

    /// One container, or `None` when it no longer exists.
    pub async fn inspect(&self, id: &str) -> Result<Option<Container>, EngineError> {
        match timed(self.docker.inspect_container(id, None)).await {
            Ok(c) => Ok(Some(container(c))),
            Err(EngineError::Api(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Container and network events from `since` (Unix seconds) on, as provider events.
    pub fn events(&self, since: i64) -> impl Stream<Item = Result<Event, EngineError>> + use<> {
        let filters = HashMap::from([
            (
                "type".to_string(),
                vec!["container".to_string(), "network".to_string()],
            ),
            (
                "event".to_string(),
                [
                    "start",
                    "die",
                    "stop",
                    "destroy",
                    "pause",
                    "unpause",
                    "rename",
                    "update",
                    "health_status",
                    "connect",
                    "disconnect",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ),
        ]);
        let opts = EventsOptions {
            since: Some(since.to_string()),
            until: None,
            filters: Some(filters),
        };
        self.docker.events(Some(opts)).filter_map(|r| async move {
            match r {
                Ok(m) => event(m).map(Ok),
                Err(e) => Some(Err(EngineError::Api(e))),
            }
        })
    }
}

/// What an engine event means for the provider (`None`: nothing).
fn event(m: EventMessage) -> Option<Event> {
    let action = m.action.unwrap_or_default();
    let actor = m.actor?;
    let typ = m.typ.map(|t| t.to_string()).unwrap_or_default();
    let id = if typ == "network" {
        actor.attributes?.get("container")?.clone()
    } else {
        actor.id?
    };
    if id.is_empty() {
        return None;
    }
    let base = action.split(':').next().unwrap_or("").trim();
    match base {
        "die" | "stop" | "destroy" | "pause" => Some(Event::Gone(id)),
        _ => Some(Event::Refresh(id)),
    }
}

/// boma's view of an inspected container.
fn container(c: ContainerInspectResponse) -> Container {
    let state = c.state.unwrap_or_default();
    let running = state.running.unwrap_or(false)
        && !state.paused.unwrap_or(false)
        && !state.restarting.unwrap_or(false);
    let health = state.health.and_then(|h| h.status).and_then(|s| match s {
        HealthStatusEnum::EMPTY | HealthStatusEnum::NONE => None,
        other => Some(other.to_string()),
    });
    let config = c.config.unwrap_or_default();
    let settings = c.network_settings.unwrap_or_default();
    let mut ports: Vec<(u16, String)> = (settings.ports.unwrap_or_default().into_keys())
        .filter_map(|k| {
            let (port, proto) = k.split_once('/').unwrap_or((k.as_str(), "tcp"));
            Some((port.parse().ok()?, proto.to_string()))
        })
        .collect();
    ports.sort();
    let networks = (settings.networks.unwrap_or_default().into_iter())
        .map(|(name, n)| {
            let ip = n
                .ip_address
                .filter(|a| !a.is_empty())
                .or(n.global_ipv6_address)
                .unwrap_or_default();
            (name, ip)
        })
        .collect();
    Container {
        id: c.id.unwrap_or_default(),
        name: c
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        running,
        health,
        network_mode: (c.host_config.and_then(|h| h.network_mode))
            .unwrap_or_else(|| "default".to_string()),
        ports,
        networks,
    }
}

/// Seconds since the Unix epoch of an RFC 3339 time (`2024-05-01T12:00:00.5+02:00`).
pub(super) fn unix_seconds(t: &str) -> Option<i64> {
    let num = |s: &str| s.parse::<i64>().ok();
    let (date, time) = t.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-');
    let (y, mo, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let hms = time.get(..8)?;
    let mut h = hms.splitn(3, ':');
    let (hh, mm, ss) = (num(h.next()?)?, num(h.next()?)?, num(h.next()?)?);
    let zone = &time[8..];
    let zone = zone.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let offset = match zone {
        "Z" | "z" | "" => 0,
        z => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let (oh, om) = z.get(1..)?.split_once(':')?;
            sign * (num(oh)? * 3600 + num(om)? * 60)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss - offset)
}
