//! The network side of a gateway: the DHCP server (`dhcp`), and the set-up of links, addresses
//! and boma's nftables table over netlink. It sits beside the proxy and DNS and below the wiring
//! in `lib.rs`: nothing here imports the dynamic model, the providers or the consumers; what it
//! produces (leases, interface addresses) leaves on watch channels.

pub mod dhcp;
