//! The Docker Engine API for plain containers, read-only: connect (agreeing on the API version),
//! the engine's clock, the running containers, one container's inspection and the event stream,
//! each turned into boma's own types ([`Container`], [`Event`]) so nothing above this file
//! depends on the API's JSON or its version. The transport is `client`.
//!
//! Only `GET` endpoints are used: `/version`, `/info`, `/containers/json`,
//! `/containers/{id}/json`, `/events`, and `/_ping` for the watchdog.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::Container;
use super::client::{ApiError, Client, Endpoint, query_value};
use super::lines::Lines;

/// Inspections run at once during a full list.
const INSPECT_CONCURRENCY: usize = 8;

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
    client: Client,
}

#[derive(Deserialize)]
struct Info {
    #[serde(rename = "SystemTime")]
    system_time: Option<String>,
}

#[derive(Deserialize)]
struct Summary {
    #[serde(rename = "Id")]
    id: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Inspect {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Config")]
    config: Option<Config>,
    #[serde(rename = "State")]
    state: Option<State>,
    #[serde(rename = "HostConfig")]
    host_config: Option<HostConfig>,
    #[serde(rename = "NetworkSettings")]
    network_settings: Option<NetworkSettings>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Config {
    #[serde(rename = "Labels")]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct State {
    #[serde(rename = "Running")]
    running: bool,
    #[serde(rename = "Paused")]
    paused: bool,
    #[serde(rename = "Restarting")]
    restarting: bool,
    #[serde(rename = "Health")]
    health: Option<Health>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Health {
    #[serde(rename = "Status")]
    status: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct HostConfig {
    #[serde(rename = "NetworkMode")]
    network_mode: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NetworkSettings {
    /// Exposed ports (`80/tcp`), published or not.
    #[serde(rename = "Ports")]
    ports: Option<BTreeMap<String, IgnoredAny>>,
    #[serde(rename = "Networks")]
    networks: Option<BTreeMap<String, EndpointSettings>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct EndpointSettings {
    #[serde(rename = "IPAddress")]
    ip_address: Option<String>,
    #[serde(rename = "GlobalIPv6Address")]
    global_ipv6_address: Option<String>,
}

/// One message of the event stream.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct EventMessage {
    /// `container`, `network`, `service`...
    #[serde(rename = "Type")]
    pub typ: String,
    /// `start`, `die`, `update`...
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
}

/// The object an event is about.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    /// Labels and details (`container` on network events).
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// The container events that can change routes.
const CONTAINER_EVENTS: [&str; 11] = [
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
];

impl Engine {
    /// Connect and agree on the API version.
    pub async fn connect(
        ep: &Endpoint,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Engine, ApiError> {
        Ok(Engine {
            client: Client::connect(ep, tls).await?,
        })
    }

    /// The API version in use, e.g. `1.41`.
    pub fn api_version(&self) -> &str {
        self.client.version()
    }

    /// The engine still answers: `/_ping` within `client::PING_TIMEOUT`.
    pub async fn ping(&self) -> Result<(), ApiError> {
        self.client.ping().await
    }

    /// The engine's clock, in Unix seconds (for replaying events from just before a list).
    pub async fn now(&self) -> Result<Option<i64>, ApiError> {
        let info: Info = self.client.get("/info").await?;
        Ok(info.system_time.as_deref().and_then(unix_seconds))
    }

    /// IDs of the running containers.
    pub async fn running(&self) -> Result<Vec<String>, ApiError> {
        let list: Vec<Summary> = self.client.get("/containers/json").await?;
        Ok(list.into_iter().map(|c| c.id).collect())
    }

    /// Every running container, inspected.
    pub async fn all(&self) -> Result<BTreeMap<String, Container>, ApiError> {
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
    pub async fn inspect(&self, id: &str) -> Result<Option<Container>, ApiError> {
        let path = format!("/containers/{}/json", query_value(id));
        match self.client.get::<Inspect>(&path).await {
            Ok(c) => Ok(Some(container(c))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Container and network events from `since` (Unix seconds) on.
    pub async fn events(&self, since: i64) -> Result<Events, ApiError> {
        let filters = serde_json::json!({
            "type": ["container", "network"],
            "event": CONTAINER_EVENTS,
        });
        self.events_matching(since, &filters).await
    }

    /// Events from `since` (Unix seconds) on that match the API's `filters` object.
    pub(super) async fn events_matching(
        &self,
        since: i64,
        filters: &serde_json::Value,
    ) -> Result<Events, ApiError> {
        let path = format!(
            "/events?since={since}&filters={}",
            query_value(&filters.to_string())
        );
        Ok(Events {
            lines: self.client.lines(&path).await?,
        })
    }

    /// The client, for the Swarm endpoints.
    pub(super) fn client(&self) -> &Client {
        &self.client
    }
}

/// The event stream of one engine, as provider events.
pub struct Events {
    lines: Lines,
}

impl Events {
    /// The next event that concerns a container; `None` when the stream ends. Cancel-safe.
    pub async fn next(&mut self) -> Option<Result<Event, ApiError>> {
        loop {
            match self.next_message().await? {
                Err(e) => return Some(Err(e)),
                Ok(m) => {
                    if let Some(ev) = event(m) {
                        return Some(Ok(ev));
                    }
                }
            }
        }
    }

    /// The next message as the engine sent it; `None` when the stream ends. Cancel-safe.
    pub(super) async fn next_message(&mut self) -> Option<Result<EventMessage, ApiError>> {
        loop {
            match self.lines.next().await? {
                Err(e) => return Some(Err(e)),
                Ok(line) => match serde_json::from_slice::<EventMessage>(&line) {
                    Ok(m) => return Some(Ok(m)),
                    // An event boma cannot read is skipped, not fatal: the next list fixes
                    // anything it may have meant.
                    Err(_) => {
                        tracing::debug!(line = %String::from_utf8_lossy(&line), "docker: unreadable event skipped");
                    }
                },
            }
        }
    }
}

/// What an engine event means for the provider (`None`: nothing).
fn event(m: EventMessage) -> Option<Event> {
    let id = if m.typ == "network" {
        m.actor.attributes.get("container")?.clone()
    } else {
        m.actor.id
    };
    if id.is_empty() {
        return None;
    }
    match m.action.split(':').next().unwrap_or("").trim() {
        "die" | "stop" | "destroy" | "pause" => Some(Event::Gone(id)),
        _ => Some(Event::Refresh(id)),
    }
}

/// boma's view of an inspected container.
fn container(c: Inspect) -> Container {
    let state = c.state.unwrap_or_default();
    let running = state.running && !state.paused && !state.restarting;
    let health = (state.health)
        .map(|h| h.status)
        .filter(|s| !s.is_empty() && s != "none");
    let settings = c.network_settings.unwrap_or_default();
    let mut ports: Vec<(u16, String)> = (settings.ports.unwrap_or_default().into_keys())
        .filter_map(|k| {
            let (port, proto) = k.split_once('/').unwrap_or((k.as_str(), "tcp"));
            Some((port.parse().ok()?, proto.to_string()))
        })
        .collect();
    ports.sort();
    let networks = (settings.networks.unwrap_or_default().into_iter())
        .map(|(name, n)| (name, n.address()))
        .collect();
    Container {
        id: c.id,
        name: c.name.trim_start_matches('/').to_string(),
        service: None,
        labels: c.config.and_then(|c| c.labels).unwrap_or_default(),
        running,
        health,
        network_mode: (c.host_config.and_then(|h| h.network_mode))
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "default".to_string()),
        ports,
        networks,
    }
}

impl EndpointSettings {
    /// The container's address on this network: IPv4, else global IPv6, else empty.
    fn address(self) -> String {
        (self.ip_address.filter(|a| !a.is_empty()))
            .or(self.global_ipv6_address)
            .unwrap_or_default()
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
    let days = crate::linelog::days_from_civil(y, mo, day);
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss - offset)
}
