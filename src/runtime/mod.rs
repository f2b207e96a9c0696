//! The compiled objects a snapshot holds and the proxy runs, one layer below both: services
//! (load balancers, weighted and failover services, servers with their live health) and
//! middlewares (their configuration as the dynamic config reads it, and the compiled form with its
//! live state: rate-limit buckets, in-flight counters, the basicAuth cache) and TLS (the
//! certificate store and the rustls configuration of each option set).
//!
//! `dynamic::assemble` builds them from fragments and carries each one over, by `Arc`, into the
//! next snapshot while its configuration is unchanged, so live state survives reloads; the proxy
//! only calls them. This module imports neither: configuration data above it, live state inside
//! it. Its only I/O is reading the files a configuration names (a basicAuth `usersFile`,
//! certificates and keys) when that configuration is compiled.

pub mod balance;
pub mod middlewares;
pub mod regular;
pub mod tls;
