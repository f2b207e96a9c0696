//! The start-up steps [`crate::Gateway::start`] runs, one function per component: here what
//! they report (where each listener is, why start-up failed); in [`proxy`] the entrypoints'
//! sockets, the access log and the worker threads; in [`control`] the assembler, the admin
//! API's view, the certificate resolvers and the providers; in [`network`] DNS and the router
//! side (firewall, WAN, Wi-Fi, DHCP).

pub mod control;
pub mod network;
pub mod proxy;

use std::net::SocketAddr;

use crate::dns;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("entrypoint {name}: cannot listen on {addr}: {source}")]
    Bind {
        name: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("entrypoint {name}: {message}")]
    EntryPoint { name: String, message: String },
    #[error("cannot start a worker thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    Dns(#[from] dns::DnsError),
    #[error("access log: {0}")]
    AccessLog(String),
    #[error("provider {name}: {message}")]
    Provider { name: String, message: String },
    #[error("[admin] users: {0}")]
    Admin(String),
}

/// A listener that is bound and about to serve, as printed at start-up.
#[derive(Debug, Clone)]
pub struct Listening {
    pub what: &'static str,
    pub name: String,
    pub addr: SocketAddr,
    /// How to reach it: `http`, `https` (an entrypoint with `http.tls`) or `udp+tcp` (DNS).
    pub scheme: &'static str,
}
