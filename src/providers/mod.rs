//! Providers: sources of dynamic configuration. Each runs as its own task and sends whole
//! [`crate::dynamic::Fragment`]s for its namespace (`file`, `docker`, `swarm`, `dhcp`, `internal`) to
//! the assembler. A provider never touches a consumer and never blocks on one: the channel is
//! bounded and a provider that is behind simply sends its newest state next.

pub mod dhcp;
pub mod docker;
pub mod file;
pub mod internal;
