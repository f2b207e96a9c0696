//! Load balancers as assemble builds them from the dynamic schema: server URLs parsed (scheme,
//! authority with its default port, the protocol), sticky cookies with Traefik's default name,
//! health checks checked and compiled. Pure: no I/O, no clock.

use std::sync::Arc;

use http::uri::{Authority, Scheme};

use super::schema;
use crate::runtime::balance::{HealthCheck, LoadBalancer, Protocol, Server, StickyCookie};

/// Parse a server URL into a [`Server`].
fn build_server(s: &schema::Server) -> Result<Server, String> {
    let uri: http::Uri = s
        .url
        .parse()
        .map_err(|e| format!("server url `{}`: {e}", s.url))?;
    let (scheme, protocol) = match uri.scheme_str() {
        Some("http") => (Scheme::HTTP, Protocol::Http1),
        Some("h2c") => (Scheme::HTTP, Protocol::H2c),
        Some("https") => (Scheme::HTTPS, Protocol::Http1),
        _ => {
            return Err(format!(
                "server url `{}`: scheme must be http, https or h2c",
                s.url
            ));
        }
    };
    let authority: Authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| format!("server url `{}` has no host", s.url))?;
    let authority = if authority.port().is_some() {
        authority
    } else {
        let port = if scheme == Scheme::HTTPS { 443 } else { 80 };
        format!("{}:{port}", authority.as_str())
            .parse()
            .map_err(|e| format!("server url `{}`: {e}", s.url))?
    };
    let path_prefix = if s.preserve_path {
        uri.path().trim_end_matches('/').to_string()
    } else {
        String::new()
    };
    Ok(Server::new(
        s.url.clone(),
        scheme,
        authority,
        protocol,
        path_prefix,
        s.effective_weight(),
    ))
}

pub(super) fn build_load_balancer(
    name: &str,
    cfg: &schema::LoadBalancer,
) -> Result<LoadBalancer, String> {
    if cfg.servers.is_empty() {
        return Err("load balancer has no servers".into());
    }
    let servers = cfg
        .servers
        .iter()
        .map(|s| build_server(s).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let health = match &cfg.health_check {
        Some(h) => Some(Arc::new(build_health(h)?)),
        None => None,
    };
    let sticky = cfg
        .sticky
        .as_ref()
        .and_then(|s| s.cookie.as_ref())
        .map(|c| StickyCookie {
            name: c
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| crate::runtime::balance::default_cookie_name(name)),
            secure: c.secure,
            http_only: c.http_only,
            same_site: c.same_site.clone().unwrap_or_default(),
            max_age: c.max_age,
            path: c.path.clone(),
        });
    Ok(LoadBalancer::new(
        servers,
        cfg.pass_host_header,
        sticky.map(Box::new),
        health,
    ))
}

fn build_health(h: &schema::HealthCheck) -> Result<HealthCheck, String> {
    if h.mode != schema::HealthCheckMode::Http {
        return Err("health check mode grpc is not supported (only http)".into());
    }
    let method = match &h.method {
        Some(m) => http::Method::from_bytes(m.as_bytes())
            .map_err(|_| format!("health check method `{m}` is invalid"))?,
        None => http::Method::GET,
    };
    let mut headers = http::HeaderMap::new();
    for (k, v) in &h.headers {
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("health check header name `{k}` is invalid"))?;
        let value = http::HeaderValue::from_str(v)
            .map_err(|_| format!("health check header `{k}` has an invalid value"))?;
        headers.insert(name, value);
    }
    let interval = h.interval.to_std();
    Ok(HealthCheck {
        path: h.path.clone().unwrap_or_else(|| "/".into()),
        method,
        scheme: h.scheme.clone(),
        port: h.port,
        hostname: h.hostname.clone(),
        headers,
        interval,
        unhealthy_interval: h.unhealthy_interval.map_or(interval, |d| d.to_std()),
        timeout: h.timeout.to_std(),
        status: h.status,
    })
}
