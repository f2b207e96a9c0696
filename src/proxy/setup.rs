//! From the static configuration to the proxy's parts: an entrypoint's facts, connection limits
//! and the assembler's view of it; the access log's filters and fields. Checked here once, at
//! start-up; nothing here serves a request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::EntryPoint;
use super::entrypoint::ConnLimits;
use crate::config;
use crate::config::Config;
use crate::dynamic::EntryPointSpec;

/// The proxy's and the assembler's view of one configured entrypoint `name` (errors are about
/// that entrypoint).
pub fn entrypoint_parts(
    cfg: &Config,
    name: &str,
    ep: &config::EntryPoint,
    ports: &BTreeMap<String, u16>,
    stats: Arc<crate::admin::ConnStats>,
) -> Result<(EntryPoint, ConnLimits, EntryPointSpec), String> {
    let timeouts = &ep.transport.responding_timeouts;
    let redirect = match ep.redirection() {
        Some(r) => {
            let port = match r.target() {
                config::RedirectTarget::Port(p) => p,
                config::RedirectTarget::EntryPoint(to) => *ports
                    .get(to)
                    .ok_or_else(|| format!("redirection to unknown entrypoint `{to}`"))?,
            };
            let cfg = crate::runtime::middlewares::MiddlewareConfig {
                redirect_scheme: Some(crate::runtime::middlewares::RedirectSchemeConfig {
                    scheme: r.scheme.clone(),
                    port: port.to_string(),
                    permanent: r.permanent,
                }),
                ..Default::default()
            };
            match crate::runtime::middlewares::compile(&cfg) {
                Ok(crate::runtime::middlewares::Compiled::One(m)) => Some(Arc::new(m)),
                Ok(_) => None,
                Err(e) => return Err(format!("redirection: {e}")),
            }
        }
        None => None,
    };
    let trusted = crate::ipnet::IpSet::parse(&ep.forwarded_headers.trusted_ips)
        .map_err(|e| format!("forwardedHeaders.trustedIPs: {e}"))?;
    let idle = timeouts.idle_timeout.to_std();
    let info = EntryPoint {
        name: name.to_string(),
        tls: ep.http.tls.is_some(),
        redirect,
        trusted,
        trust_all: ep.forwarded_headers.insecure,
        idle_timeout: idle,
        write_timeout: timeouts.write_timeout.as_timeout(),
        read_timeout: timeouts.read_timeout.as_timeout(),
        per_source: super::entrypoint::PerSource::new(cfg.limits.max_connections_per_ip),
        stats,
    };
    let limits = ConnLimits {
        max_connections: cfg.limits.max_connections,
        max_header_bytes: cfg.limits.max_header_bytes,
        header_read_timeout: timeouts
            .read_timeout
            .as_timeout()
            .unwrap_or(Duration::from_secs(60)),
        idle_timeout: idle,
        upgraded_idle_timeout: cfg.limits.upgraded_idle_timeout.to_std(),
        grace: ep.transport.life_cycle.grace_time_out.to_std(),
    };
    let spec = EntryPointSpec {
        name: name.to_string(),
        as_default: ep.as_default,
        middlewares: ep.http.middlewares.clone(),
        tls: ep.http.tls.clone(),
    };
    Ok((info, limits, spec))
}

/// The access log's filters and JSON field modes from `[accessLog]`.
pub fn access_log_shape(
    a: &config::AccessLog,
) -> Result<(super::accesslog::Filter, super::accesslog::Fields), String> {
    use super::accesslog::{Fields, Filter, HeaderMode};
    let filter = Filter {
        status_ranges: Filter::parse_status(&a.filters.status_codes).map_err(|e| e.to_string())?,
        retry_attempts: a.filters.retry_attempts,
        min_duration: a.filters.min_duration.as_timeout(),
    };
    let mode = |m: config::FieldMode| match m {
        config::FieldMode::Keep => HeaderMode::Keep,
        config::FieldMode::Drop => HeaderMode::Drop,
        config::FieldMode::Redact => HeaderMode::Redact,
    };
    let by_mode = |want: config::FieldMode| {
        a.fields
            .names
            .iter()
            .filter(|(_, m)| **m == want)
            .map(|(n, _)| n.clone())
            .collect::<Vec<_>>()
    };
    let fields = Fields {
        drop_by_default: a.fields.default_mode == config::FieldMode::Drop,
        keep: by_mode(config::FieldMode::Keep),
        drop: by_mode(config::FieldMode::Drop),
        redact: by_mode(config::FieldMode::Redact),
        headers_default: mode(a.fields.headers.default_mode),
        headers: a
            .fields
            .headers
            .names
            .iter()
            .map(|(n, m)| (n.to_ascii_lowercase(), mode(*m)))
            .collect(),
    };
    Ok((filter, fields))
}
