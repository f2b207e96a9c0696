//! Active health checks: one task per health-checked load balancer probes each server on its
//! interval and flips the server's healthy flag, which the balancer reads when picking.
//!
//! The manager is told about every new snapshot and only starts or stops tasks for load balancers
//! that appeared or disappeared (unchanged services keep their `Arc`, so their task and state
//! carry over a reload). Probes use their own connection per check: a health check must see what
//! a new connection sees, not a pooled socket.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use super::connect::Connector;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinSet;

use crate::runtime::balance::{HealthCheck, Server, Service};

/// Keep the active health checkers in line with the current snapshot.
pub async fn run(
    store: crate::dynamic::Store,
    tls: Arc<super::connect::UpstreamTls>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut manager = HealthManager::new(tls);
    let mut rx = store.subscribe();
    loop {
        {
            let snap = rx.borrow_and_update().clone();
            manager.update(snap.services.iter());
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { break },
            _ = stop.changed() => break,
        }
    }
    manager.shutdown().await;
}

type ProbeClient = Client<Connector, Empty<Bytes>>;

/// Owns the checker tasks.
pub struct HealthManager {
    client: ProbeClient,
    running: HashMap<usize, tokio::task::AbortHandle>,
    tasks: JoinSet<()>,
}

impl HealthManager {
    /// Probes go out like requests: TLS to `https://` servers with `tls`.
    pub fn new(tls: Arc<super::connect::UpstreamTls>) -> Self {
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(Connector::new(conn, tls));
        HealthManager {
            client,
            running: HashMap::new(),
            tasks: JoinSet::new(),
        }
    }

    /// Make the running checkers match these services.
    pub fn update<'a>(&mut self, services: impl Iterator<Item = (&'a String, &'a Arc<Service>)>) {
        while self.tasks.try_join_next().is_some() {}
        let mut wanted: HashMap<usize, (String, Arc<Service>)> = HashMap::new();
        for (name, svc) in services {
            if let Some(lb) = svc.load_balancer()
                && lb.health.is_some()
            {
                wanted.insert(Arc::as_ptr(svc) as usize, (name.clone(), Arc::clone(svc)));
            }
        }
        self.running.retain(|key, handle| {
            let keep = wanted.contains_key(key);
            if !keep {
                handle.abort();
            }
            keep
        });
        for (key, (name, svc)) in wanted {
            if self.running.contains_key(&key) {
                continue;
            }
            let client = self.client.clone();
            let handle = self.tasks.spawn(check_loop(client, name, svc));
            self.running.insert(key, handle);
        }
    }

    /// Stop every checker.
    pub async fn shutdown(&mut self) {
        self.running.clear();
        self.tasks.shutdown().await;
    }
}

async fn check_loop(client: ProbeClient, name: String, svc: Arc<Service>) {
    let Some(lb) = svc.load_balancer() else {
        return;
    };
    let Some(check) = lb.health.clone() else {
        return;
    };
    loop {
        let probes = lb.servers.iter().map(|server| {
            let client = client.clone();
            let check = Arc::clone(&check);
            async move { (server, probe(&client, &check, server).await) }
        });
        let results = futures_util::future::join_all(probes).await;
        let mut any_down = false;
        for (server, result) in results {
            let up = result.is_ok();
            any_down |= !up;
            if server.set_healthy(up) {
                match result {
                    Ok(()) => {
                        tracing::info!(service = %name, server = %server.url, "server is healthy again")
                    }
                    Err(why) => {
                        tracing::warn!(service = %name, server = %server.url, reason = %why, "server is unhealthy")
                    }
                }
            }
        }
        let wait = if any_down {
            check.unhealthy_interval
        } else {
            check.interval
        };
        tokio::time::sleep(wait.max(Duration::from_millis(50))).await;
    }
}

async fn probe(client: &ProbeClient, check: &HealthCheck, server: &Server) -> Result<(), String> {
    let uri = check.uri_for(server).ok_or("bad health check URL")?;
    let mut req = Request::builder()
        .method(check.method.clone())
        .uri(uri)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    *req.headers_mut() = check.headers.clone();
    if let Some(h) = &check.hostname
        && let Ok(v) = http::HeaderValue::from_str(h)
    {
        req.headers_mut().insert(http::header::HOST, v);
    }
    match tokio::time::timeout(check.timeout, client.request(req)).await {
        Err(_) => Err(format!("no answer within {:?}", check.timeout)),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(resp)) if check.accepts(resp.status().as_u16()) => Ok(()),
        Ok(Ok(resp)) => Err(format!("status {}", resp.status().as_u16())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_acceptance() {
        let mut c = HealthCheck {
            path: "/health".into(),
            method: http::Method::GET,
            scheme: None,
            port: None,
            hostname: None,
            headers: http::HeaderMap::new(),
            interval: Duration::from_secs(1),
            unhealthy_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            status: None,
        };
        assert!(c.accepts(200) && c.accepts(302) && !c.accepts(404) && !c.accepts(500));
        c.status = Some(204);
        assert!(c.accepts(204) && !c.accepts(200));
    }
}
