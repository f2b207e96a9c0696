//! `[entryPoints.<name>]`: the addresses boma listens on for HTTP, with Traefik's key names and
//! defaults (timeouts, redirections, forwarded headers, default middlewares and TLS).
//!
//! Types and per-value checks only (an address parses or it does not); checks that relate several
//! values (duplicate addresses, redirections to missing entrypoints) live in `validate.rs`. Nothing
//! here opens a socket.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use super::Duration;

/// One entry point: where to listen and how to treat the connections accepted there.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EntryPoint {
    /// `":8080"`, `"127.0.0.1:8080"`, `"[::1]:8080"`; an optional `/tcp` suffix is accepted.
    pub address: Address,
    /// Routers that name no entry point are attached to the entry points with `asDefault`
    /// (or to all of them when none has it).
    #[serde(rename = "asDefault", default)]
    pub as_default: bool,
    /// HTTP settings applied to every router of this entry point.
    #[serde(default)]
    pub http: EntryPointHttp,
    /// Client-side timeouts and shutdown behaviour.
    #[serde(default)]
    pub transport: Transport,
    /// Which clients may set `X-Forwarded-*` headers.
    #[serde(rename = "forwardedHeaders", default)]
    pub forwarded_headers: ForwardedHeaders,
}

impl EntryPoint {
    /// The socket address to bind (`":8080"` is `0.0.0.0:8080`).
    pub fn socket_addr(&self) -> SocketAddr {
        self.address.socket_addr()
    }

    /// The entry point redirection, if this entry point redirects everything.
    pub fn redirection(&self) -> Option<&RedirectEntryPoint> {
        self.http.redirections.as_ref()?.entry_point.as_ref()
    }
}

/// A validated entry point address: the text as written and the socket address it means.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    raw: String,
    addr: SocketAddr,
}

/// Why an entry point address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Traefik's `/udp` suffix.
    #[error("UDP entrypoints not supported yet")]
    Udp,
    /// A suffix other than `/tcp` or `/udp`.
    #[error("invalid protocol `{0}` in address: only `tcp` is supported")]
    Protocol(String),
    /// A host name instead of an IP address.
    #[error("host `{0}` is not an IP address: use an IP (e.g. \"127.0.0.1:8080\") or \":8080\"")]
    HostName(String),
    /// Anything else.
    #[error("invalid address `{0}`: expected \":PORT\", \"IPv4:PORT\" or \"[IPv6]:PORT\"")]
    Invalid(String),
}

impl Address {
    /// Parses Traefik's address forms; an empty host means every IPv4 address.
    pub fn parse(raw: &str) -> Result<Self, AddressError> {
        let (hostport, protocol) = match raw.split_once('/') {
            Some((hostport, protocol)) => (hostport, Some(protocol)),
            None => (raw, None),
        };
        if let Some(protocol) = protocol {
            match protocol.to_ascii_lowercase().as_str() {
                "tcp" => {}
                "udp" => return Err(AddressError::Udp),
                _ => return Err(AddressError::Protocol(protocol.to_owned())),
            }
        }
        let invalid = || AddressError::Invalid(raw.to_owned());
        let addr = if let Some(port) = hostport.strip_prefix(':') {
            let port: u16 = port.parse().map_err(|_| invalid())?;
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
        } else if let Ok(addr) = hostport.parse::<SocketAddr>() {
            addr
        } else {
            return Err(match hostport.rsplit_once(':') {
                Some((host, port))
                    if !host.is_empty() && !host.contains(':') && port.parse::<u16>().is_ok() =>
                {
                    AddressError::HostName(host.to_owned())
                }
                _ => invalid(),
            });
        };
        Ok(Self {
            raw: raw.to_owned(),
            addr,
        })
    }

    /// The socket address to bind.
    pub fn socket_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address as written in the file.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(de::Error::custom)
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

/// `[entryPoints.<name>.http]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EntryPointHttp {
    /// Redirect every request of this entry point elsewhere (typically HTTP → HTTPS).
    pub redirections: Option<Redirections>,
    /// Middlewares (`name@provider`) put in front of every router of this entry point.
    #[serde(default)]
    pub middlewares: Vec<String>,
    /// Default TLS settings for the routers of this entry point (TLS itself comes later).
    pub tls: Option<EntryPointTls>,
}

/// `[entryPoints.<name>.http.redirections]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Redirections {
    /// Redirect to another entry point.
    #[serde(rename = "entryPoint")]
    pub entry_point: Option<RedirectEntryPoint>,
}

/// `[entryPoints.<name>.http.redirections.entryPoint]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectEntryPoint {
    /// The target: an entry point name (`"websecure"`) or a port (`":443"`).
    pub to: String,
    /// Scheme of the redirect location (default `"https"`).
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// 301/308 when true (default), 302/307 when false.
    #[serde(default = "default_true")]
    pub permanent: bool,
    /// Priority of the generated catch-all router (default: just below the maximum, so it wins).
    #[serde(default = "default_redirect_priority")]
    pub priority: i64,
}

/// Where a redirection points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectTarget<'a> {
    /// The port of another entry point, by name.
    EntryPoint(&'a str),
    /// A port given directly (`":443"`).
    Port(u16),
}

impl RedirectEntryPoint {
    /// Reads `to`: `":443"` is a port, anything else an entry point name.
    pub fn target(&self) -> RedirectTarget<'_> {
        match self.to.strip_prefix(':').map(str::parse::<u16>) {
            Some(Ok(port)) => RedirectTarget::Port(port),
            _ => RedirectTarget::EntryPoint(&self.to),
        }
    }
}

fn default_scheme() -> String {
    "https".to_owned()
}

fn default_true() -> bool {
    true
}

/// Traefik's `math.MaxInt - 1`.
fn default_redirect_priority() -> i64 {
    i64::MAX - 1
}

/// `[entryPoints.<name>.http.tls]`: kept in Traefik's shape for when TLS lands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EntryPointTls {
    /// Name of a TLS options set of the dynamic configuration.
    pub options: Option<String>,
    /// Certificate resolver used by the routers of this entry point.
    #[serde(rename = "certResolver")]
    pub cert_resolver: Option<String>,
    /// Domains to get certificates for.
    #[serde(default)]
    pub domains: Vec<Domain>,
}

/// A certificate domain: the main name and its alternative names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    /// Main domain name.
    #[serde(default)]
    pub main: String,
    /// Subject alternative names.
    #[serde(default)]
    pub sans: Vec<String>,
}

/// `[entryPoints.<name>.transport]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Transport {
    /// Timeouts applied to clients.
    #[serde(rename = "respondingTimeouts", default)]
    pub responding_timeouts: RespondingTimeouts,
    /// Shutdown behaviour.
    #[serde(rename = "lifeCycle", default)]
    pub life_cycle: LifeCycle,
}

/// `[entryPoints.<name>.transport.respondingTimeouts]`; zero means no timeout.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RespondingTimeouts {
    /// Longest time to read a whole request, body included (default 60s).
    #[serde(rename = "readTimeout")]
    pub read_timeout: Duration,
    /// Longest time to write a response (default 0: none).
    #[serde(rename = "writeTimeout")]
    pub write_timeout: Duration,
    /// Longest time a keep-alive connection may stay idle (default 180s).
    #[serde(rename = "idleTimeout")]
    pub idle_timeout: Duration,
}

impl Default for RespondingTimeouts {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(60),
            write_timeout: Duration::ZERO,
            idle_timeout: Duration::from_secs(180),
        }
    }
}

/// `[entryPoints.<name>.transport.lifeCycle]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifeCycle {
    /// How long to keep accepting requests once shutdown starts (default 0).
    #[serde(rename = "requestAcceptGraceTimeout")]
    pub request_accept_grace_timeout: Duration,
    /// How long active requests get to finish before boma stops (default 10s).
    #[serde(rename = "graceTimeOut")]
    pub grace_time_out: Duration,
}

impl Default for LifeCycle {
    fn default() -> Self {
        Self {
            request_accept_grace_timeout: Duration::ZERO,
            grace_time_out: Duration::from_secs(10),
        }
    }
}

/// `[entryPoints.<name>.forwardedHeaders]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardedHeaders {
    /// Clients (IPs or CIDRs) whose `X-Forwarded-*` headers are kept.
    #[serde(rename = "trustedIPs", default)]
    pub trusted_ips: Vec<String>,
    /// Keep `X-Forwarded-*` headers from every client.
    #[serde(default)]
    pub insecure: bool,
}
