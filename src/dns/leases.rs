//! The source of DHCP names for the local zone: whoever hands out leases (the DHCP server of the
//! `net` part, once it exists) publishes the whole current set of `hostname → address` pairs on
//! a [`LeaseFeed`]; the DNS zone task rebuilds the zone from it, as it does from a new snapshot.
//!
//! A watch channel, so a burst of lease changes coalesces into one rebuild and the publisher
//! never waits for DNS. This module only carries names: it does not validate host names (the
//! zone does: they come from the network) and holds no lease state of its own.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::watch;

/// One name a lease publishes: `hostname.<zone>` (and the plain `hostname`) → `addr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseName {
    /// The client's host name as it sent it (option 12 or 81); validated by the zone.
    pub hostname: String,
    pub addr: IpAddr,
}

impl LeaseName {
    pub fn new(hostname: &str, addr: IpAddr) -> Self {
        LeaseName {
            hostname: hostname.to_string(),
            addr,
        }
    }
}

/// Where the DHCP side publishes its names; cheap to clone.
#[derive(Clone, Debug)]
pub struct LeaseFeed {
    tx: Arc<watch::Sender<Arc<Vec<LeaseName>>>>,
}

impl Default for LeaseFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl LeaseFeed {
    /// A feed with no names yet.
    pub fn new() -> Self {
        let (tx, _) = watch::channel(Arc::new(Vec::new()));
        LeaseFeed { tx: Arc::new(tx) }
    }

    /// Replace the whole set of lease names (a no-op when nothing changed).
    pub fn publish(&self, names: Vec<LeaseName>) {
        self.tx.send_if_modified(|current| {
            if **current == names {
                false
            } else {
                *current = Arc::new(names);
                true
            }
        });
    }

    /// The current names.
    pub fn current(&self) -> Arc<Vec<LeaseName>> {
        Arc::clone(&self.tx.borrow())
    }

    /// Follow changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Vec<LeaseName>>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_only_changes() {
        let feed = LeaseFeed::new();
        let mut rx = feed.subscribe();
        assert!(feed.current().is_empty());
        let names = vec![LeaseName::new("pc", IpAddr::from([10, 0, 0, 9]))];
        feed.publish(names.clone());
        assert!(rx.has_changed().unwrap_or(false));
        rx.borrow_and_update();
        feed.publish(names.clone());
        assert!(!rx.has_changed().unwrap_or(true));
        assert_eq!(*feed.current(), names);
    }
}
