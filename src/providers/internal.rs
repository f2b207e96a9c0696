//! The internal provider (`internal`): what boma publishes about itself. With `[api] insecure =
//! true`, the API and dashboard routers on the `traefik` entrypoint, as Traefik does; otherwise
//! an operator routes to `api@internal` / `dashboard@internal` with a router of their own
//! (behind basicAuth). With `[metrics.prometheus]` (and no `manualRouting`), `/metrics` on its
//! entry point. Known at start, so it is assembled before boma says ready.

use std::collections::BTreeMap;

use crate::config;
use crate::dynamic::{Fragment, schema};

/// The internal provider's fragment for `cfg`.
pub fn fragment(cfg: &config::Config) -> Result<Fragment, String> {
    let mut http = schema::Http::default();
    if let Some(api) = &cfg.api {
        api_routers(api, &cfg.entry_points, &mut http)?;
    }
    let prometheus = cfg.metrics.as_ref().and_then(|m| m.prometheus.as_ref());
    if let Some(p) = prometheus.filter(|p| !p.manual_routing) {
        if !cfg.entry_points.contains_key(&p.entry_point) {
            return Err(format!(
                "[metrics.prometheus] serves /metrics on entry point `{}`, which is not defined",
                p.entry_point
            ));
        }
        let r = router(
            &p.entry_point,
            "PathPrefix(`/metrics`)",
            "prometheus@internal",
            i64::from(i32::MAX) - 1,
        );
        http.routers.insert("prometheus".into(), r);
    }
    let mut fragment = Fragment::default();
    if !http.routers.is_empty() {
        fragment.config = std::sync::Arc::new(schema::DynamicConfig {
            http: Some(http),
            ..Default::default()
        });
    }
    Ok(fragment)
}

fn router(entry_point: &str, rule: &str, service: &str, priority: i64) -> schema::Router {
    schema::Router {
        rule: rule.to_string(),
        rule_syntax: None,
        entry_points: vec![entry_point.into()],
        middlewares: Vec::new(),
        service: service.to_string(),
        priority: Some(priority),
        tls: None,
        observability: None,
    }
}

/// With `[api] insecure = true`, the API and dashboard routers on the `traefik` entrypoint, as
/// Traefik does. Without `insecure`, nothing is published: an operator routes to
/// `api@internal` / `dashboard@internal` with a router of their own (and basicAuth).
fn api_routers(
    api: &config::Api,
    entry_points: &BTreeMap<String, config::EntryPoint>,
    http: &mut schema::Http,
) -> Result<(), String> {
    if !api.insecure {
        return Ok(());
    }
    if !entry_points.contains_key("traefik") {
        return Err(
            "[api] insecure = true serves the API on an entrypoint named `traefik`; \
                    define [entryPoints.traefik] with the address it should listen on"
                .into(),
        );
    }
    let api_router = router(
        "traefik",
        "PathPrefix(`/api`)",
        "api@internal",
        i64::from(i32::MAX) - 1,
    );
    http.routers.insert("api".into(), api_router);
    if api.dashboard {
        let dashboard = router(
            "traefik",
            "PathPrefix(`/`)",
            "dashboard@internal",
            i64::from(i32::MAX) - 2,
        );
        http.routers.insert("dashboard".into(), dashboard);
    }
    Ok(())
}
