//! The query path, in phases, the same for UDP and TCP:
//!
//! 1. **parse** the packet ([`wire::parse`]); a malformed one is dropped and counted;
//! 2. **admit** the client: a source no client can have (port 0, broadcast, multicast,
//!    unspecified) is dropped and counted; outside `allowed_networks` (and, with `local`, off
//!    the host's non-WAN subnets) → REFUSED;
//! 3. **local**: the zone (read through ArcSwap, no lock) answers every local name, so a local
//!    name is never forwarded;
//! 4. **policy**: `domain_needed` (plain names) and `bogus_priv` (private reverse names) →
//!    NXDOMAIN without asking anyone;
//! 5. **cache**: a fresh entry answers with its TTLs aged;
//! 6. **forward** (async, bounded by `max_in_flight`): ask the upstreams, drop private addresses
//!    (rebind protection), cache the answer (negative ones by their SOA), reply; when every
//!    upstream fails, reply from the expired entry (`serve_stale`, TTL 30) or SERVFAIL.
//!
//! Phases 1–5 are synchronous: [`Resolver::handle`] returns a reply at once or a [`Pending`]
//! question for phase 6, which the server runs in a task it owns. This module does no socket I/O
//! itself except through [`Upstreams`].

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::cache::{Cache, Entry, Key};
use super::filter;
use super::querylog::{self, QueryLog, Source};
use super::upstream::Upstreams;
use super::wire::{self, Question, Reject, Reply, Transport};
use super::zone::LocalZone;
use crate::config::Ipv4Cidr;
use crate::ipnet::IpSet;

/// TTL of answers served stale (RFC 8767).
pub const STALE_TTL: u32 = 30;
/// Longest time a negative answer is cached.
pub const MAX_NEGATIVE_TTL: u32 = 3600;
/// Longest time a positive answer is cached.
pub const MAX_TTL: u32 = 86_400;

/// The switches of the query path.
#[derive(Debug, Clone)]
pub struct Policy {
    pub allowed: IpSet,
    /// Also admit loopback, IPv6 link-local and the interface subnets ([`Resolver::set_interfaces`]).
    pub local: bool,
    /// Local names answer with the address of the client's interface (`address = "auto"`).
    pub auto_address: bool,
    pub domain_needed: bool,
    pub bogus_priv: bool,
    pub rebind_protection: bool,
    /// Lower-case, fully qualified.
    pub rebind_allow: Vec<Name>,
    pub serve_stale: bool,
}

/// Counters of the query path (monotonic).
#[derive(Debug, Default)]
pub struct Stats {
    pub queries: AtomicU64,
    pub malformed: AtomicU64,
    pub refused: AtomicU64,
    pub local: AtomicU64,
    pub policy: AtomicU64,
    pub cache_hits: AtomicU64,
    pub forwarded: AtomicU64,
    pub upstream_failures: AtomicU64,
    pub stale: AtomicU64,
    pub rebind_dropped: AtomicU64,
    pub overloaded: AtomicU64,
    pub tcp_rejected: AtomicU64,
    /// Packets from a source no client can have (port 0, broadcast, multicast), dropped.
    pub bad_source: AtomicU64,
}

fn bump(counter: &AtomicU64) -> u64 {
    counter.fetch_add(1, Ordering::Relaxed) + 1
}

/// What to do with a packet.
pub enum Step {
    /// Send this.
    Reply(Vec<u8>),
    /// Send nothing (malformed).
    Drop,
    /// Ask upstream ([`Resolver::forward`]).
    Forward(Box<Pending>),
}

/// A question waiting for phase 6.
pub struct Pending {
    q: Question,
    /// `None`: a name that cannot be a cache key (it is not cached).
    key: Option<Key>,
    stale: Option<Entry>,
    client: SocketAddr,
    transport: Transport,
    started: Instant,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

/// Everything the query path reads; shared by every listener of one server.
pub struct Resolver {
    zone: ArcSwap<LocalZone>,
    cache: Mutex<Cache>,
    caching: bool,
    /// Swapped whole when the host's resolvers change (upstreams from resolv.conf).
    upstreams: ArcSwap<Upstreams>,
    policy: Policy,
    log: Option<QueryLog>,
    in_flight: Arc<Semaphore>,
    /// The host's (non-WAN) interface subnets, for `address = "auto"` and `local`; `None` until
    /// first known.
    interfaces: ArcSwap<Option<Vec<(Ipv4Cidr, bool)>>>,
    pub stats: Stats,
}

impl Resolver {
    pub fn new(
        zone: LocalZone,
        cache: Cache,
        cache_size: usize,
        upstreams: Upstreams,
        policy: Policy,
        max_in_flight: usize,
        log: Option<QueryLog>,
    ) -> Resolver {
        Resolver {
            zone: ArcSwap::from_pointee(zone),
            cache: Mutex::new(cache),
            caching: cache_size > 0,
            upstreams: ArcSwap::from_pointee(upstreams),
            policy,
            log,
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
            interfaces: ArcSwap::from_pointee(None),
            stats: Stats::default(),
        }
    }

    /// The current zone.
    pub fn zone(&self) -> Arc<LocalZone> {
        self.zone.load_full()
    }

    /// Replace the zone (the zone task does, on a new snapshot or new leases).
    pub fn set_zone(&self, zone: LocalZone) {
        self.zone.store(Arc::new(zone));
    }

    /// Replace the upstream servers (the host's resolvers changed).
    pub fn set_upstreams(&self, upstreams: Upstreams) {
        self.upstreams.store(Arc::new(upstreams));
    }

    /// The host's IPv4 interface subnets (address, prefix), each with whether it is the WAN's,
    /// kept current by the gateway from netlink: `address = "auto"` answers from all of them,
    /// `local` admits clients of the others.
    pub fn set_interfaces(&self, subnets: Vec<(Ipv4Cidr, bool)>) {
        self.interfaces.store(Arc::new(Some(subnets)));
    }

    /// The gateway's address for a client with `auto`: the address of the interface whose
    /// subnet holds the client (the interface the query came in on), loopback for loopback.
    fn gateway_for(&self, client: std::net::IpAddr) -> Option<Vec<std::net::IpAddr>> {
        if !self.policy.auto_address {
            return None;
        }
        let guard = self.interfaces.load();
        let subnets = guard.as_ref().as_ref()?;
        let client = match client {
            std::net::IpAddr::V4(v4) => v4,
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped()?,
        };
        if client.is_loopback() {
            return Some(vec![std::net::Ipv4Addr::LOCALHOST.into()]);
        }
        let (subnet, _) = subnets.iter().find(|(s, _)| s.contains(client))?;
        Some(vec![subnet.addr.into()])
    }

    /// Whether `ip` may query: `allowed_networks`, or with `local` loopback, IPv6 link-local
    /// and the interface subnets.
    fn admits(&self, ip: IpAddr) -> bool {
        if self.policy.allowed.contains(ip) {
            return true;
        }
        if !self.policy.local {
            return false;
        }
        let v4 = match ip.to_canonical() {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(v6) => return v6.is_loopback() || v6.is_unicast_link_local(),
        };
        if v4.is_loopback() {
            return true;
        }
        let guard = self.interfaces.load();
        (guard.as_ref().as_ref())
            .is_some_and(|subnets| subnets.iter().any(|(s, wan)| !wan && s.contains(v4)))
    }

    /// A source address no client can have: port 0, unspecified, broadcast (also a subnet's),
    /// multicast. Answering would reflect to a whole network or to nobody.
    fn bad_source(&self, client: SocketAddr) -> bool {
        if client.port() == 0 {
            return true;
        }
        match client.ip().to_canonical() {
            IpAddr::V4(v4) => {
                v4.is_unspecified()
                    || v4.is_broadcast()
                    || v4.is_multicast()
                    || (self.interfaces.load().as_ref().as_ref()).is_some_and(|subnets| {
                        subnets
                            .iter()
                            .any(|(s, _)| s.prefix < 31 && s.broadcast() == v4)
                    })
            }
            IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
        }
    }

    /// Phases 1–5 for one packet received at `now`.
    pub fn handle(&self, packet: &[u8], client: SocketAddr, t: Transport, now: Instant) -> Step {
        let q = match self.admit(packet, client, t, now) {
            Ok(q) => q,
            Err(step) => return step,
        };
        if let Some(step) = self.answer_here(&q, client, t, now) {
            return step;
        }
        let key = Key::new(&q.lower, q.qtype());
        let cached = match &key {
            Some(key) if self.caching => (self.cache.lock())
                .map(|mut c| c.get(key, now))
                .unwrap_or(None),
            _ => None,
        };
        if let Some(entry) = &cached
            && let Some(left) = entry.remaining(now)
        {
            bump(&self.stats.cache_hits);
            let age = entry.ttl - left;
            let (answers, authority) = entry.records(|ttl| ttl.saturating_sub(age));
            let reply = Reply {
                rcode: entry.rcode,
                authoritative: false,
                answers: &answers,
                authority: &authority,
            };
            return self.reply(&q, client, t, now, Source::Cache, &reply);
        }
        let pending = Pending {
            q,
            key,
            stale: cached,
            client,
            transport: t,
            started: now,
        };
        if self.upstreams.load().is_empty() {
            return Step::Reply(self.unanswered(pending, ResponseCode::Refused));
        }
        Step::Forward(Box::new(pending))
    }

    /// Phases 1 and 2: the question, or what becomes of a packet that is not one to answer:
    /// dropped (an impossible source, a malformed packet) or refused (a client outside the
    /// allowed networks).
    fn admit(
        &self,
        packet: &[u8],
        client: SocketAddr,
        t: Transport,
        now: Instant,
    ) -> Result<Question, Step> {
        bump(&self.stats.queries);
        if self.bad_source(client) {
            let n = bump(&self.stats.bad_source);
            if n.is_power_of_two() {
                tracing::info!(%client, total = n, "dropped DNS packets from an impossible source");
            }
            return Err(Step::Drop);
        }
        let allowed = self.admits(client.ip());
        let q = match wire::parse(packet) {
            Ok(q) => q,
            Err(Reject::Malformed) => {
                let n = bump(&self.stats.malformed);
                if n.is_power_of_two() {
                    tracing::debug!(%client, total = n, "dropped a malformed DNS packet");
                }
                return Err(Step::Drop);
            }
            Err(Reject::Error(q, rcode)) => {
                let rcode = if allowed {
                    rcode
                } else {
                    ResponseCode::Refused
                };
                return Err(self.reply(&q, client, t, now, Source::Policy, &Reply::error(rcode)));
            }
        };
        if !allowed {
            let n = bump(&self.stats.refused);
            if n.is_power_of_two() {
                tracing::info!(%client, total = n, "refused DNS queries from outside allowed_networks");
            }
            let refused = Reply::error(ResponseCode::Refused);
            return Err(self.reply(&q, client, t, now, Source::Policy, &refused));
        }
        Ok(q)
    }

    /// Phases 3 and 4: the local zone's answer, or the policy's NXDOMAIN for a plain name
    /// (`domain_needed`) or a private reverse lookup (`bogus_priv`); `None` goes on to the cache.
    fn answer_here(
        &self,
        q: &Question,
        client: SocketAddr,
        t: Transport,
        now: Instant,
    ) -> Option<Step> {
        let gateway = self.gateway_for(client.ip());
        let zone = self.zone.load();
        if let Some(local) = zone.lookup(&q.lower, q.query.name(), q.qtype(), gateway.as_deref()) {
            bump(&self.stats.local);
            let reply = Reply {
                rcode: local.rcode,
                authoritative: true,
                answers: &local.answers,
                authority: &local.authority,
            };
            return Some(self.reply(q, client, t, now, Source::Local, &reply));
        }
        let plain = q.lower.num_labels() == 1;
        let private_ptr = q.qtype() == RecordType::PTR && filter::is_private_reverse(&q.lower);
        if (self.policy.domain_needed && plain) || (self.policy.bogus_priv && private_ptr) {
            bump(&self.stats.policy);
            let reply = Reply {
                rcode: ResponseCode::NXDomain,
                authoritative: true,
                answers: &[],
                authority: &[],
            };
            return Some(self.reply(q, client, t, now, Source::Policy, &reply));
        }
        None
    }

    /// A permit for one more forwarded question, unless `max_in_flight` are already waiting.
    pub fn try_begin(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.in_flight).try_acquire_owned().ok()
    }

    /// The reply to a question that cannot be forwarded now (no permit).
    pub fn overloaded(&self, p: Box<Pending>) -> Vec<u8> {
        let n = bump(&self.stats.overloaded);
        if n.is_power_of_two() {
            tracing::warn!(
                total = n,
                "DNS: too many forwarded queries in flight (max_in_flight)"
            );
        }
        self.unanswered(*p, ResponseCode::ServFail)
    }

    /// Phase 6: ask upstream, filter, cache, reply.
    pub async fn forward(&self, p: Box<Pending>) -> Vec<u8> {
        bump(&self.stats.forwarded);
        let upstreams = self.upstreams.load_full();
        let msg = match upstreams.resolve(&p.q.query).await {
            Ok(msg) => msg,
            Err(e) => {
                let n = bump(&self.stats.upstream_failures);
                if n.is_power_of_two() {
                    tracing::warn!(error = %e, total = n, "DNS: no upstream answered");
                }
                return self.unanswered(*p, ResponseCode::ServFail);
            }
        };
        let rcode = msg.metadata.response_code;
        let mut answers = msg.answers;
        let authority: Vec<Record> = msg
            .authorities
            .into_iter()
            .filter(|r| matches!(r.record_type(), RecordType::SOA | RecordType::NS))
            .collect();
        if self.policy.rebind_protection
            && !filter::under_any(&p.q.lower, &self.policy.rebind_allow)
        {
            let dropped = filter::drop_private(&mut answers);
            if dropped > 0 {
                let total = self
                    .stats
                    .rebind_dropped
                    .fetch_add(dropped as u64, Ordering::Relaxed);
                tracing::warn!(
                    name = %p.q.lower,
                    dropped,
                    total = total + dropped as u64,
                    "DNS: dropped private addresses from an upstream answer (rebind protection)"
                );
            }
        }
        if let Some(ttl) = cache_ttl(rcode, &answers, &authority).filter(|_| self.caching)
            && let Some(key) = &p.key
            && let Some(entry) = Entry::new(rcode, &answers, &authority, p.started, ttl)
            && let Ok(mut cache) = self.cache.lock()
        {
            cache.insert(key.clone(), entry);
        }
        let reply = Reply {
            rcode,
            authoritative: false,
            answers: &answers,
            authority: &authority,
        };
        self.finish(&p, Source::Upstream, &reply)
    }

    /// No answer from upstream: the stale entry if allowed and usable, else `rcode`.
    fn unanswered(&self, p: Pending, rcode: ResponseCode) -> Vec<u8> {
        if let Some(entry) = p.stale.as_ref().filter(|_| self.policy.serve_stale) {
            bump(&self.stats.stale);
            let (answers, authority) = entry.records(|_| STALE_TTL);
            let reply = Reply {
                rcode: entry.rcode,
                authoritative: false,
                answers: &answers,
                authority: &authority,
            };
            return self.finish(&p, Source::Stale, &reply);
        }
        self.finish(&p, Source::Policy, &Reply::error(rcode))
    }

    fn finish(&self, p: &Pending, source: Source, reply: &Reply<'_>) -> Vec<u8> {
        match self.reply(&p.q, p.client, p.transport, p.started, source, reply) {
            Step::Reply(bytes) => bytes,
            _ => Vec::new(),
        }
    }

    /// Encodes `reply` for the transport and logs it.
    fn reply(
        &self,
        q: &Question,
        client: SocketAddr,
        t: Transport,
        started: Instant,
        source: Source,
        reply: &Reply<'_>,
    ) -> Step {
        if let Some(log) = &self.log {
            log.write(&querylog::Entry {
                client: client.ip(),
                tcp: t == Transport::Tcp,
                name: &q.query.name().to_string(),
                qtype: &q.qtype().to_string(),
                rcode: rcode_name(reply.rcode),
                source,
                answers: reply.answers.len(),
                elapsed: started.elapsed(),
            });
        }
        Step::Reply(wire::encode(q, reply, t.limit(q)))
    }
}

/// The mnemonic dig prints for a response code.
fn rcode_name(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        _ => "OTHER",
    }
}

/// How long an upstream answer may be cached: the smallest answer TTL, or for a negative answer
/// (NXDOMAIN, NODATA) its SOA's (RFC 2308), capped; `None` when it must not be cached.
pub fn cache_ttl(rcode: ResponseCode, answers: &[Record], authority: &[Record]) -> Option<u32> {
    let negative = rcode == ResponseCode::NXDomain || answers.is_empty();
    let ttl = if negative {
        authority
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })?
            .min(MAX_NEGATIVE_TTL)
    } else {
        answers.iter().map(|r| r.ttl).min()?.min(MAX_TTL)
    };
    matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain)
        .then_some(ttl)
        .filter(|&t| t > 0)
}

/// How long expired entries are kept for `serve_stale` (zero when it is off).
pub fn stale_window(serve_stale: bool, max_stale: Duration) -> Duration {
    if serve_stale {
        max_stale
    } else {
        Duration::ZERO
    }
}
