//! The dhcp provider: turns the DHCP server's current leases into the `dhcp` namespace's
//! [`Fragment`] (leases for DNS names and the API) and its state into problems (another DHCP
//! server on the LAN, a socket that could not be opened), so the dashboard shows them like any
//! other configuration fault.
//!
//! Lease changes are coalesced: at most one fragment per [`THROTTLE`], so a storm of clients
//! costs the assembler a few assembles, not one per ACK. It reads the server's watch channels
//! and never talks to the server itself.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::dynamic::{Fragment, Lease, Problem};
use crate::net::dhcp::{self, State};

/// Shortest time between two fragments.
pub const THROTTLE: Duration = Duration::from_millis(200);

fn fragment(leases: &[dhcp::leases::Lease], state: &State, interface: &str) -> Fragment {
    let leases = (leases.iter())
        .map(|l| Lease {
            address: l.addr,
            mac: dhcp::leases::mac_string(&l.mac),
            hostname: l.hostname.to_string(),
            expires: l.expires,
        })
        .collect();
    let source = format!("dhcp server on {interface}");
    let problems = match state {
        State::Refused { other } => vec![Problem::new(
            source,
            format!(
                "another DHCP server ({other}) answers on this LAN; boma does not serve DHCP \
                 while it does (check the cabling: is the LAN port on somebody else's network?)"
            ),
        )],
        State::Failed { error } => vec![Problem::new(source, error.clone())],
        State::Starting | State::Serving => Vec::new(),
    };
    Fragment {
        problems,
        leases,
        ..Fragment::default()
    }
}

/// Follow the server's leases and state until `stop` or until the server is gone.
pub async fn run(
    mut handle: dhcp::Handle,
    interface: String,
    tx: mpsc::Sender<(String, Fragment)>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let leases = Arc::clone(&handle.leases.borrow_and_update());
        let state = handle.state.borrow_and_update().clone();
        if tx
            .send(("dhcp".into(), fragment(&leases, &state, &interface)))
            .await
            .is_err()
        {
            return;
        }
        tokio::select! {
            r = handle.leases.changed() => if r.is_err() { break },
            r = handle.state.changed() => if r.is_err() { break },
            _ = stop.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(THROTTLE) => {}
            _ = stop.changed() => return,
        }
    }
    let _ = stop.changed().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_and_a_refusal_become_a_fragment() {
        let lease = dhcp::leases::Lease {
            addr: [10, 9, 0, 100].into(),
            mac: [0x52, 0x54, 0, 0, 0, 1],
            client_id: None,
            hostname: heapless::String::try_from("laptop").unwrap_or_default(),
            expires: 99,
        };
        let f = fragment(
            &[lease],
            &State::Refused {
                other: [10, 9, 0, 2].into(),
            },
            "br-lan",
        );
        assert_eq!(f.leases.len(), 1);
        assert_eq!(f.leases[0].mac, "52:54:00:00:00:01");
        assert_eq!(f.leases[0].hostname, "laptop");
        assert_eq!(f.problems.len(), 1);
        assert!(
            f.problems[0].message.contains("10.9.0.2"),
            "{:?}",
            f.problems
        );
        assert!(fragment(&[], &State::Serving, "x").problems.is_empty());
    }
}
