//! The assembler task: collects the providers' fragments, coalesces a burst of them into one
//! [`assemble`], logs new problems once and publishes the snapshot, only when something changed.
//! CPU work (rules, regexes, middlewares) happens here, on the control runtime; DNS and the
//! proxy workers run on threads of their own, so a storm of container events never stalls them.
//! Every [`TLS_FILES_CHECK`] it also looks whether a certificate file the snapshot was built
//! from has changed (a renewal), and assembles again when one has.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::{AssembleCtx, Fragment, Store, assemble};

/// How often the certificate files of the current snapshot are looked at (a `stat` each).
pub const TLS_FILES_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// Collect fragments, coalesce bursts, assemble, publish only when something changed.
pub async fn run(
    mut rx: mpsc::Receiver<(String, Fragment)>,
    (ctx, metrics): (AssembleCtx, Option<Arc<crate::metrics::Registry>>),
    mut fragments: BTreeMap<String, Fragment>,
    store: Store,
    mut stop: watch::Receiver<bool>,
) {
    let mut generation = store.load().generation;
    let mut tick = tokio::time::interval(TLS_FILES_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Every provider is done (none watches): only certificate files can change then.
    let mut providers_done = false;
    loop {
        let mut changed = tokio::select! {
            m = rx.recv(), if !providers_done => match m {
                Some((ns, frag)) => {
                    if let Some(m) = &metrics {
                        m.provider_update(&ns);
                    }
                    let changed = fragments.get(&ns) != Some(&frag);
                    fragments.insert(ns, frag);
                    changed
                }
                None => {
                    providers_done = true;
                    false
                }
            },
            _ = tick.tick() => {
                let renewed = store.load().tls.files_changed();
                if renewed {
                    tracing::info!("a certificate file changed; reading the certificates again");
                }
                renewed
            }
            _ = stop.changed() => return,
        };
        // Coalesce a burst (several providers, or a container storm) into one assemble.
        while let Ok((ns, frag)) = rx.try_recv() {
            if let Some(m) = &metrics {
                m.provider_update(&ns);
            }
            changed |= fragments.get(&ns) != Some(&frag);
            fragments.insert(ns, frag);
        }
        if !changed {
            continue;
        }
        generation += 1;
        let prev = store.load();
        tracing::debug!(generation, "assembling");
        let snapshot = assemble(&fragments, &ctx, Some(&prev), generation);
        for p in &snapshot.problems {
            if !prev.problems.contains(p) {
                tracing::warn!(problem = %p, "configuration problem");
            }
        }
        tracing::info!(
            generation,
            routers = snapshot.routers.len(),
            services = snapshot.services.len(),
            problems = snapshot.problems.len(),
            "configuration applied"
        );
        store.publish(Arc::new(snapshot));
        if let Some(m) = &metrics {
            m.reloads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            (m.last_reload).store(
                now.map_or(0, |d| d.as_secs()),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
    }
}
