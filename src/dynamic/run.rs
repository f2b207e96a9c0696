//! The assembler task: collects the providers' fragments, coalesces a burst of them into one
//! [`assemble`], logs new problems once and publishes the snapshot, only when something changed.
//! CPU work (rules, regexes, middlewares) happens here, on the control runtime; DNS and the
//! proxy workers run on threads of their own, so a storm of container events never stalls them.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::{AssembleCtx, Fragment, Store, assemble};

/// Collect fragments, coalesce bursts, assemble, publish only when something changed.
pub async fn run(
    mut rx: mpsc::Receiver<(String, Fragment)>,
    ctx: AssembleCtx,
    mut fragments: BTreeMap<String, Fragment>,
    store: Store,
    mut stop: watch::Receiver<bool>,
) {
    let mut generation = store.load().generation;
    loop {
        let first = tokio::select! {
            m = rx.recv() => m,
            _ = stop.changed() => return,
        };
        let Some((ns, frag)) = first else {
            // Every provider is done (none watches): keep the last snapshot until shutdown.
            let _ = stop.changed().await;
            return;
        };
        let mut changed = fragments.get(&ns) != Some(&frag);
        fragments.insert(ns, frag);
        // Coalesce a burst (several providers, or a container storm) into one assemble.
        while let Ok((ns, frag)) = rx.try_recv() {
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
    }
}
