//! boma's static configuration (`boma.toml`): Traefik's static sections under Traefik's names
//! (`entryPoints`, `providers`, `api`, `log`, `accessLog`, keys in any case) plus boma's own
//! `[limits]` and `[dns]`, the embedded default used without a file, and [`load`]/[`parse`],
//! which report every problem with `file:line:col`.
//!
//! A section that is absent is `None` and its component does not run. This module describes and
//! checks configuration; it never binds, spawns or watches anything, and it reads no file other
//! than the one [`load`] is given.

mod dns;
pub mod docker;
pub mod duration;
mod entrypoint;
mod error;
mod net;
pub mod nocase;
mod resolvers;
mod sections;
mod spans;
mod update;
mod validate;
mod wifi;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_docker;
#[cfg(test)]
mod tests_net;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use dns::{AnswerAddr, Dns, is_domain_name, parse_upstream};
pub use docker::{DockerEndpoint, DockerProvider, Engine as DockerEngine};
pub use duration::{Duration, DurationError};
pub use entrypoint::{
    Address, AddressError, Domain, EntryPoint, EntryPointHttp, EntryPointTls, ForwardedHeaders,
    LifeCycle, RedirectEntryPoint, RedirectTarget, Redirections, RespondingTimeouts, Transport,
};
pub use error::{ConfigError, ConfigErrors, Locator, Span};
pub use net::{
    Dhcp, DhcpHost, Ipv4Cidr, Lan, MAX_POOL, Nat, Wan, WanMode, is_host_label, is_ifname, parse_mac,
};
pub use resolvers::{CertResolver, LocalCa as LocalCaConfig};
pub use sections::{
    AccessLog, AccessLogFields, AccessLogFilters, Admin, Api, FieldHeaders, FieldMode,
    FileProvider, Limits, Log, LogFormat, LogLevel, Metrics, Prometheus, Providers,
    ServersTransport, admin_user_problem,
};
pub use spans::{KeySpans, SpanMap};
pub use update::Update;
pub use wifi::{CHANNELS_5GHZ, DEFAULT_CHANNEL, Secret, Wifi, WifiMode, passphrase_problem};

/// The configuration `boma run` uses when no file is given: one entry point, `web`, on
/// `127.0.0.1:8080`, log level `info`, and no provider, so nothing is routed until a file with a
/// `[providers.file]` section is given.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// The whole static configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where to listen, by entry point name. Unlike Traefik, no `:80` entry point is made up when
    /// there is none: the proxy then does not run.
    #[serde(rename = "entryPoints", default)]
    pub entry_points: BTreeMap<String, EntryPoint>,
    /// Sources of dynamic configuration.
    pub providers: Option<Providers>,
    /// API and dashboard.
    pub api: Option<Api>,
    /// Who may use the API and dashboard through an operator's router.
    pub admin: Option<Admin>,
    /// boma's log; `None` means Traefik's defaults ([`Log::default`]).
    pub log: Option<Log>,
    /// Access log; off when `None`.
    #[serde(rename = "accessLog")]
    pub access_log: Option<AccessLog>,
    /// boma's bounds, always in force (defaults when the section is absent).
    #[serde(default)]
    pub limits: Limits,
    /// DNS server with a local zone and a forwarding cache; off when `None`.
    pub dns: Option<Dns>,
    /// TLS towards `https://` servers: `insecureSkipVerify`, `rootCAs`.
    #[serde(rename = "serversTransport")]
    pub servers_transport: Option<ServersTransport>,
    /// The village side of a gateway: interface or bridge and address; `None` on a box that is
    /// a server on somebody else's network.
    pub lan: Option<Lan>,
    /// The uplink: DHCP client or static address.
    pub wan: Option<Wan>,
    /// The DHCP server on the LAN; off when `None`.
    pub dhcp: Option<Dhcp>,
    /// NAT and the port 53/80 redirects between LAN and WAN; off when `None`.
    pub nat: Option<Nat>,
    /// The radio: an access point on the LAN or a client as the uplink; off when `None`.
    pub wifi: Option<Wifi>,
    /// Signed A/B updates: where and how (defaults when `None`; on only on an A/B-booted system).
    pub update: Option<Update>,
    /// Prometheus metrics; off when `None`.
    pub metrics: Option<Metrics>,
    /// Certificate resolvers by name, for routers' `tls.certResolver`.
    #[serde(rename = "certificatesResolvers", default)]
    pub certificates_resolvers: BTreeMap<String, CertResolver>,
}

impl Config {
    /// What is valid but probably not meant, for `boma check` and the start-up log: the API
    /// published without credentials (`[api] insecure = true`) on an address other hosts reach.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.api.as_ref().is_some_and(|a| a.insecure)
            && let Some(ep) = self.entry_points.get("traefik")
            && !ep.address.socket_addr().ip().is_loopback()
        {
            out.push(format!(
                "[api] insecure = true serves the API and dashboard without credentials on {} \
                 (entryPoints.traefik), which is not a loopback address: anyone who reaches it \
                 can read the gateway's configuration; publish them through a router instead \
                 (they then ask for [admin] users)",
                ep.address.socket_addr()
            ));
        }
        if let Some(w) = &self.wifi
            && w.mode == WifiMode::Ap
            && w.passphrase.is_none()
        {
            out.push(format!(
                "[wifi] has no passphrase: the access point `{}` is open, and anyone in range \
                 joins the LAN",
                w.ssid
            ));
        }
        for (name, r) in &self.certificates_resolvers {
            if r.local_ca.as_ref().is_some_and(|ca| ca.domains.is_empty()) {
                out.push(format!(
                    "certificatesResolvers.{name}.localCA has no domains: a device that trusts \
                     this CA trusts it for every name, and any router host gets a certificate; \
                     set domains (e.g. your DNS zone) before its first start"
                ));
            }
        }
        out
    }

    /// Entry points for routers that name none: those marked `asDefault`, or all of them when
    /// none is (Traefik's rule).
    pub fn default_entry_points(&self) -> Vec<&str> {
        let marked: Vec<&str> = (self.entry_points.iter())
            .filter(|(_, ep)| ep.as_default)
            .map(|(name, _)| name.as_str())
            .collect();
        if marked.is_empty() {
            self.entry_points.keys().map(String::as_str).collect()
        } else {
            marked
        }
    }
}

/// Traefik static options boma knows and does not implement, by schema struct: rejected with a
/// message that says so.
const UNSUPPORTED: nocase::Unsupported = &[
    (
        "Config",
        &[
            "global",
            "tcpServersTransport",
            "ping",
            "tracing",
            "hostResolver",
            "experimental",
            "core",
            "spiffe",
            "ocsp",
        ],
    ),
    (
        "EntryPoint",
        &[
            "allowACMEByPass",
            "reusePort",
            "proxyProtocol",
            "http2",
            "http3",
            "udp",
            "observability",
        ],
    ),
    (
        "EntryPointHttp",
        &["encodeQuerySemicolons", "sanitizePath", "maxHeaderBytes"],
    ),
    ("Transport", &["keepAliveMaxTime", "keepAliveMaxRequests"]),
    ("CertResolver", &["acme", "tailscale"]),
    (
        "Metrics",
        &["datadog", "statsD", "influxDB2", "otlp", "addInternals"],
    ),
    ("Prometheus", &["headerLabels"]),
    ("ForwardedHeaders", &["connection"]),
    (
        "Providers",
        &[
            "kubernetesIngress",
            "kubernetesIngressNGINX",
            "kubernetesCRD",
            "kubernetesGateway",
            "rest",
            "consulCatalog",
            "nomad",
            "ecs",
            "consul",
            "etcd",
            "zooKeeper",
            "redis",
            "http",
            "plugin",
        ],
    ),
    ("FileProvider", &["debugLogGeneratedTemplate"]),
    (
        "ServersTransport",
        &["maxIdleConnsPerHost", "forwardingTimeouts", "spiffe"],
    ),
    (
        "DockerProvider",
        &["useBindPortIP", "httpClientTimeout", "username", "password"],
    ),
    ("Api", &["basePath", "disableDashboardAd"]),
    (
        "Log",
        &["maxSize", "maxAge", "maxBackups", "compress", "otlp"],
    ),
    ("AccessLog", &["addInternals", "otlp"]),
];

/// Parses and checks a static configuration read from `origin` (used only in messages).
pub fn parse(src: &str, origin: &Path) -> Result<Config, ConfigErrors> {
    let (config, spans) = nocase::from_toml_spanned::<Config>(src, origin, UNSUPPORTED)?;
    let problems = validate::check(&config, &spans, &Locator::new(origin, src));
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(problems).normalize())
    }
}

/// Reads, parses and checks the static configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let src = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::whole_file(path, format!("cannot read the file: {e}")))?;
    parse(&src, path)
}
