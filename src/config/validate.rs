//! Checks of a parsed [`Config`] that relate several values or bound one: duplicate listen
//! addresses, redirections to missing entry points, the file provider's source, negative
//! durations, status code ranges, limits. Each problem points at the offending key.
//!
//! Pure: reads the config and the span map, returns every problem found; never stops at the first,
//! never touches the network or the file system.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::error::{ConfigError, Locator};
use super::spans::SpanMap;
use super::{AccessLog, Config, Duration, EntryPoint, Limits, Providers, RedirectTarget};

/// Every problem of `config`, positioned with `spans` and `locator`.
pub(super) fn check(config: &Config, spans: &SpanMap, locator: &Locator<'_>) -> Vec<ConfigError> {
    let mut check = Check {
        spans,
        locator,
        errors: Vec::new(),
    };
    check.entry_points(&config.entry_points);
    if let Some(providers) = &config.providers {
        check.providers(providers);
    }
    if let Some(access_log) = &config.access_log {
        check.access_log(access_log);
    }
    check.limits(&config.limits);
    if let Some(dns) = &config.dns {
        check.dns(dns);
    }
    check.router(config);
    check.wifi(config);
    check.update(config);
    if let Some(admin) = &config.admin {
        for (i, entry) in admin.users.iter().enumerate() {
            if let Some(why) = super::sections::admin_user_problem(entry) {
                check.value(&["admin", "users", &i.to_string()], why);
            }
        }
    }
    if let Some(transport) = &config.servers_transport
        && let Err(message) = transport.tls()
    {
        check.value(&["serversTransport", "rootCAs"], message);
    }
    check.resolvers(config);
    check.metrics(config);
    check.errors
}

pub(super) struct Check<'a> {
    spans: &'a SpanMap,
    locator: &'a Locator<'a>,
    errors: Vec<ConfigError>,
}

impl Check<'_> {
    /// `[metrics.prometheus]`: ascending finite buckets, an entry point that exists.
    fn metrics(&mut self, config: &Config) {
        let Some(p) = config.metrics.as_ref().and_then(|m| m.prometheus.as_ref()) else {
            return;
        };
        let path = ["metrics", "prometheus"];
        let ascending = p.buckets.windows(2).all(|w| w[0] < w[1]);
        if p.buckets.is_empty() || !ascending || p.buckets.iter().any(|b| !b.is_finite()) {
            self.value(
                &[path[0], path[1], "buckets"],
                "finite bounds in ascending order",
            );
        }
        if !p.manual_routing && !config.entry_points.contains_key(&p.entry_point) {
            let why = format!(
                "entry point `{}` does not exist (define it, or set manualRouting and route to \
                 prometheus@internal)",
                p.entry_point
            );
            self.key(&[path[0], path[1]], why);
        }
    }

    /// `[certificatesResolvers]`: each one a local CA with sane bounds.
    fn resolvers(&mut self, config: &Config) {
        const R: &str = "certificatesResolvers";
        for (name, resolver) in &config.certificates_resolvers {
            let Some(ca) = &resolver.local_ca else {
                self.key(&[R, name], "a resolver needs a kind: localCA");
                continue;
            };
            for (i, d) in ca.domains.iter().enumerate() {
                if !super::is_domain_name(d) || d.starts_with("*.") {
                    let why = format!("`{d}` is not a domain name (subdomains are included)");
                    self.value(&[R, name, "localCA", "domains", &i.to_string()], why);
                }
            }
            // Apple's devices refuse server certificates valid for more than 825 days, even
            // from a CA their owner installed.
            let d = ca.certificate_duration;
            if d < Duration::from_secs(3600) || d > Duration::from_secs(825 * 86_400) {
                let path = [R, name, "localCA", "certificateDuration"];
                self.value(&path, "from 1h to 825 days (19800h)");
            }
            if ca.max_certificates == 0 {
                self.value(&[R, name, "localCA", "maxCertificates"], "at least 1");
            }
            if ca.common_name.trim().is_empty() {
                self.value(&[R, name, "localCA", "commonName"], "must not be empty");
            }
        }
    }

    /// A problem with the value at `path`.
    pub(super) fn value(&mut self, path: &[&str], message: impl Into<String>) {
        let span = self.spans.value_span(path);
        self.errors.push(self.locator.error(&span, message));
    }

    /// A problem with the table or key at `path` as a whole.
    pub(super) fn key(&mut self, path: &[&str], message: impl Into<String>) {
        let span = self.spans.key_span(path);
        self.errors.push(self.locator.error(&span, message));
    }

    pub(super) fn not_negative(&mut self, path: &[&str], d: Duration) {
        if d.is_negative() {
            let name = path.last().copied().unwrap_or_default();
            self.value(path, format!("`{name}` must not be negative (got {d})"));
        }
    }

    pub(super) fn positive(&mut self, path: &[&str], d: Duration) {
        if d.as_nanos() <= 0 {
            let name = path.last().copied().unwrap_or_default();
            self.value(
                path,
                format!("`{name}` must be greater than zero (got {d})"),
            );
        }
    }

    fn entry_points(&mut self, entry_points: &BTreeMap<String, EntryPoint>) {
        for (name, ep) in entry_points {
            self.entry_point(name, ep, entry_points);
        }
        self.duplicate_addresses(entry_points);
    }

    fn entry_point(&mut self, name: &str, ep: &EntryPoint, all: &BTreeMap<String, EntryPoint>) {
        let base = ["entryPoints", name];
        let rt = &ep.transport.responding_timeouts;
        let timeouts = [
            ("readTimeout", rt.read_timeout),
            ("writeTimeout", rt.write_timeout),
            ("idleTimeout", rt.idle_timeout),
        ];
        for (key, d) in timeouts {
            self.not_negative(
                &[&base[..], &["transport", "respondingTimeouts", key]].concat(),
                d,
            );
        }
        let lc = &ep.transport.life_cycle;
        let cycle = [
            ("requestAcceptGraceTimeout", lc.request_accept_grace_timeout),
            ("graceTimeOut", lc.grace_time_out),
        ];
        for (key, d) in cycle {
            self.not_negative(&[&base[..], &["transport", "lifeCycle", key]].concat(), d);
        }

        if let Some(redirect) = ep.redirection() {
            let path = |key: &'static str| {
                [&base[..], &["http", "redirections", "entryPoint", key]].concat()
            };
            match redirect.target() {
                RedirectTarget::Port(_) => {}
                RedirectTarget::EntryPoint("") => {
                    self.value(&path("to"), "redirection target `to` is empty");
                }
                RedirectTarget::EntryPoint(to) if to == name => {
                    self.value(
                        &path("to"),
                        format!("entry point `{name}` redirects to itself"),
                    );
                }
                RedirectTarget::EntryPoint(to) if !all.contains_key(to) => {
                    let known: Vec<String> = all.keys().map(|k| format!("`{k}`")).collect();
                    let message = format!(
                        "redirection to unknown entry point `{to}` (known: {}); use a name or \
                         a port like \":443\"",
                        known.join(", ")
                    );
                    self.value(&path("to"), message);
                }
                RedirectTarget::EntryPoint(_) => {}
            }
            if !matches!(
                redirect.scheme.to_ascii_lowercase().as_str(),
                "http" | "https"
            ) {
                let message = format!(
                    "redirection scheme `{}` is not http or https",
                    redirect.scheme
                );
                self.value(&path("scheme"), message);
            }
        }

        for (i, middleware) in ep.http.middlewares.iter().enumerate() {
            if middleware.trim().is_empty() {
                let index = i.to_string();
                let path = [&base[..], &["http", "middlewares", &index]].concat();
                self.value(&path, "empty middleware name");
            }
        }

        for (i, ip) in ep.forwarded_headers.trusted_ips.iter().enumerate() {
            if !is_ip_or_cidr(ip) {
                let index = i.to_string();
                let path = [&base[..], &["forwardedHeaders", "trustedIPs", &index]].concat();
                self.value(&path, format!("`{ip}` is not an IP address or CIDR range"));
            }
        }
    }

    /// Two entry points cannot listen on the same port of the same address, nor on a port that
    /// another one holds on every address of that family.
    fn duplicate_addresses(&mut self, entry_points: &BTreeMap<String, EntryPoint>) {
        let mut in_file_order: Vec<(&str, SocketAddr, usize)> = entry_points
            .iter()
            .map(|(name, ep)| {
                let at = self
                    .spans
                    .value_span(&["entryPoints", name, "address"])
                    .start;
                (name.as_str(), ep.socket_addr(), at)
            })
            .collect();
        in_file_order.sort_by_key(|(_, _, at)| *at);
        for (i, (name, addr, _)) in in_file_order.iter().enumerate() {
            let earlier = in_file_order[..i]
                .iter()
                .find(|(_, other, _)| addresses_clash(*addr, *other));
            if let Some((other_name, other, _)) = earlier {
                let message = format!(
                    "entry point `{name}` listens on {addr}, which clashes with {other} of entry \
                     point `{other_name}`"
                );
                self.value(&["entryPoints", name, "address"], message);
            }
        }
    }

    fn providers(&mut self, providers: &Providers) {
        self.not_negative(
            &["providers", "providersThrottleDuration"],
            providers.providers_throttle_duration,
        );
        for (section, cfg, swarm) in [
            ("docker", &providers.docker, false),
            ("swarm", &providers.swarm, true),
        ] {
            let Some(cfg) = cfg else { continue };
            for (path, message) in cfg.problems(swarm) {
                let mut full = vec!["providers", section];
                full.extend(path.iter().map(String::as_str));
                self.value(&full, message);
            }
        }
        let Some(file) = &providers.file else {
            return;
        };
        match (&file.filename, &file.directory) {
            (None, None) => self.key(
                &["providers", "file"],
                "the file provider needs `filename` or `directory`",
            ),
            (Some(_), Some(_)) => self.key(
                &["providers", "file", "directory"],
                "set only one of `filename` and `directory`",
            ),
            (Some(path), None) | (None, Some(path)) if path.as_os_str().is_empty() => {
                let key = if file.filename.is_some() {
                    "filename"
                } else {
                    "directory"
                };
                self.value(&["providers", "file", key], format!("`{key}` is empty"));
            }
            _ => {}
        }
    }

    fn access_log(&mut self, access_log: &AccessLog) {
        self.not_negative(
            &["accessLog", "filters", "minDuration"],
            access_log.filters.min_duration,
        );
        for (i, codes) in access_log.filters.status_codes.iter().enumerate() {
            if !is_status_range(codes) {
                let index = i.to_string();
                let message =
                    format!("`{codes}` is not a status code or range like \"404\" or \"500-599\"");
                self.value(&["accessLog", "filters", "statusCodes", &index], message);
            }
        }
    }

    fn limits(&mut self, limits: &Limits) {
        let counts = [
            ("max_connections", limits.max_connections),
            ("max_connections_per_ip", limits.max_connections_per_ip),
            ("max_routes", limits.max_routes),
            ("rate_limit_sources", limits.rate_limit_sources),
            ("max_metric_series", limits.max_metric_series),
        ];
        for (key, n) in counts {
            if n == 0 {
                self.value(&["limits", key], format!("`{key}` must be at least 1"));
            }
        }
        let range = Limits::MIN_HEADER_BYTES..=Limits::MAX_HEADER_BYTES;
        if !range.contains(&limits.max_header_bytes) {
            let message = format!(
                "`max_header_bytes` must be between {} and {}",
                range.start(),
                range.end()
            );
            self.value(&["limits", "max_header_bytes"], message);
        }
        let waits = [
            ("upstream_idle_timeout", limits.upstream_idle_timeout),
            ("upstream_connect_timeout", limits.upstream_connect_timeout),
            (
                "upstream_response_timeout",
                limits.upstream_response_timeout,
            ),
            ("passive_cooldown", limits.passive_cooldown),
            ("upgraded_idle_timeout", limits.upgraded_idle_timeout),
        ];
        for (key, d) in waits {
            self.positive(&["limits", key], d);
        }
    }
}

/// Same port, and the same IP or an unspecified IP of the same family on either side.
fn addresses_clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip()
            || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified())))
}

/// `192.168.1.1`, `10.0.0.0/8`, `::1`, `fd00::/8`.
pub(crate) fn is_ip_or_cidr(s: &str) -> bool {
    match s.split_once('/') {
        None => s.parse::<IpAddr>().is_ok(),
        Some((ip, bits)) => match (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
            (Ok(IpAddr::V4(_)), Ok(bits)) => bits <= 32,
            (Ok(IpAddr::V6(_)), Ok(bits)) => bits <= 128,
            _ => false,
        },
    }
}

/// `"404"` or `"500-599"`, codes within 100..=599.
fn is_status_range(s: &str) -> bool {
    let code = |t: &str| {
        t.trim()
            .parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
    };
    match s.split_once('-') {
        None => code(s).is_some(),
        Some((lo, hi)) => matches!((code(lo), code(hi)), (Some(lo), Some(hi)) if lo <= hi),
    }
}
