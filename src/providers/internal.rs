//! The internal provider (`internal`): what boma publishes about itself. With `[api] insecure =
//! true`, the API and dashboard routers on the `traefik` entrypoint, as Traefik does; otherwise
//! nothing, and an operator routes to `api@internal` / `dashboard@internal` with a router of
//! their own (behind basicAuth). Known at start, so it is assembled before boma says ready.

use std::collections::BTreeMap;

use crate::config;
use crate::dynamic::{Fragment, schema};

/// The internal provider's fragment: with `[api] insecure = true`, the API and dashboard routers on the
/// `traefik` entrypoint, as Traefik does. Without `insecure`, nothing is published: an operator
/// routes to `api@internal` / `dashboard@internal` with a router of their own (and basicAuth).
pub fn fragment(
    api: &config::Api,
    entry_points: &BTreeMap<String, config::EntryPoint>,
) -> Result<Fragment, String> {
    let mut fragment = Fragment::default();
    if !api.insecure {
        return Ok(fragment);
    }
    if !entry_points.contains_key("traefik") {
        return Err(
            "[api] insecure = true serves the API on an entrypoint named `traefik`; \
                    define [entryPoints.traefik] with the address it should listen on"
                .into(),
        );
    }
    let router = |rule: &str, service: &str, priority: i64| schema::Router {
        rule: rule.to_string(),
        rule_syntax: None,
        entry_points: vec!["traefik".into()],
        middlewares: Vec::new(),
        service: service.to_string(),
        priority: Some(priority),
        tls: None,
        observability: None,
    };
    let mut http = schema::Http::default();
    http.routers.insert(
        "api".into(),
        router(
            "PathPrefix(`/api`)",
            "api@internal",
            i64::from(i32::MAX) - 1,
        ),
    );
    if api.dashboard {
        http.routers.insert(
            "dashboard".into(),
            router(
                "PathPrefix(`/`)",
                "dashboard@internal",
                i64::from(i32::MAX) - 2,
            ),
        );
    }
    fragment.config = std::sync::Arc::new(crate::dynamic::schema::DynamicConfig {
        http: Some(http),
        ..Default::default()
    });
    Ok(fragment)
}
