//! The lease table: which client holds, was offered or declined which address of the pool, as a
//! table whose size is fixed at start by the pool and the static hosts (one small slot per
//! address, the lease itself boxed only while bound, so a /16 pool costs ~1.5 MiB, not 12;
//! nothing grows beyond one entry per slot), plus its file in dnsmasq's lease format (so tools that read
//! dnsmasq's leases read boma's).
//!
//! Pure and deterministic: time comes in as Unix seconds, nothing here reads the clock, a socket
//! or a file (the server writes [`Table::to_file`] through `crate::store`). Allocation follows
//! dnsmasq's habits: a static host always gets its address; a returning client gets its old
//! address back (even long expired, while nobody else took it); a new client gets the address
//! it asks for when free, else one picked by a hash of its MAC (so it tends to get the same one
//! on every network reset), preferring never-used addresses over expired ones of other clients.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::codec::MAX_CLIENT_ID;

/// How a client is known: its client identifier when it sends one, else its MAC.
pub type Key = heapless::Vec<u8, { MAX_CLIENT_ID + 1 }>;

/// The key of a client.
pub fn key(mac: [u8; 6], client_id: Option<&[u8]>) -> Key {
    let mut k = Key::new();
    match client_id {
        Some(id) if id.len() <= MAX_CLIENT_ID => {
            let _ = k.push(1);
            let _ = k.extend_from_slice(id);
        }
        _ => {
            let _ = k.push(0);
            let _ = k.extend_from_slice(&mac);
        }
    }
    k
}

/// A lease's host name: one DNS label.
pub type Name = heapless::String<63>;

/// One bound lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub addr: Ipv4Addr,
    pub mac: [u8; 6],
    pub client_id: Option<heapless::Vec<u8, MAX_CLIENT_ID>>,
    /// The client's host label (or a static host's name), empty when none.
    pub hostname: Name,
    /// Unix seconds.
    pub expires: u64,
}

impl Lease {
    fn key(&self) -> Key {
        key(self.mac, self.client_id.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    Free,
    /// Never handed out dynamically: the gateway's address, a static host's address.
    Reserved,
    Offered {
        key: Box<Key>,
        until: u64,
    },
    Leased(Box<Lease>),
    Declined {
        until: u64,
    },
}

/// A static host as the table needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixed {
    pub mac: [u8; 6],
    pub addr: Ipv4Addr,
    pub name: Option<String>,
}

/// Timings of the table, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    pub lease: u64,
    pub offer_hold: u64,
    pub decline: u64,
}

/// The answer to a REQUEST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ack(Lease),
    Nak,
    /// Not this server's business (another server's offer, an unknown client when not
    /// authoritative).
    Ignore,
}

/// The lease table of one LAN.
#[derive(Debug)]
pub struct Table {
    first: u32,
    /// Pool addresses, then one slot per static host.
    slots: Box<[Slot]>,
    fixed: Vec<Fixed>,
    /// Which slot a client holds; which lease a host name belongs to. Both have at most one
    /// entry per slot.
    by_key: HashMap<Key, usize>,
    by_name: HashMap<Name, usize>,
    times: Times,
}

impl Table {
    /// A table for the pool `first..=last` (at most [`crate::config::MAX_POOL`] addresses),
    /// never handing out `gateway` or a static host's address dynamically.
    pub fn new(
        first: Ipv4Addr,
        last: Ipv4Addr,
        gateway: Ipv4Addr,
        fixed: Vec<Fixed>,
        times: Times,
    ) -> Table {
        let (a, b) = (u32::from(first), u32::from(last));
        let size = b
            .saturating_sub(a)
            .saturating_add(1)
            .min(crate::config::MAX_POOL) as usize;
        let mut slots = vec![Slot::Free; size + fixed.len()].into_boxed_slice();
        for ip in std::iter::once(gateway).chain(fixed.iter().map(|f| f.addr)) {
            if let Some(i) = Self::pool_index(a, size, ip) {
                slots[i] = Slot::Reserved;
            }
        }
        for i in size..slots.len() {
            slots[i] = Slot::Reserved;
        }
        Table {
            first: a,
            slots,
            fixed,
            by_key: HashMap::new(),
            by_name: HashMap::new(),
            times,
        }
    }

    fn pool_index(first: u32, size: usize, ip: Ipv4Addr) -> Option<usize> {
        let i = u32::from(ip).checked_sub(first)? as usize;
        (i < size).then_some(i)
    }

    fn pool_size(&self) -> usize {
        self.slots.len() - self.fixed.len()
    }

    fn addr_of(&self, i: usize) -> Ipv4Addr {
        match i.checked_sub(self.pool_size()) {
            Some(f) => self.fixed[f].addr,
            None => Ipv4Addr::from(self.first + i as u32),
        }
    }

    /// The slot of `ip`: a static host's slot first, then the pool.
    fn index_of(&self, ip: Ipv4Addr) -> Option<usize> {
        if let Some(f) = self.fixed.iter().position(|f| f.addr == ip) {
            return Some(self.pool_size() + f);
        }
        Self::pool_index(self.first, self.pool_size(), ip)
    }

    fn fixed_of(&self, mac: [u8; 6]) -> Option<usize> {
        self.fixed.iter().position(|f| f.mac == mac)
    }

    /// Whether slot `i` may go to `key` now.
    fn available(&self, i: usize, key: &Key, now: u64) -> bool {
        match &self.slots[i] {
            Slot::Free => true,
            Slot::Reserved => false,
            Slot::Offered { key: k, until } => **k == *key || *until <= now,
            Slot::Leased(l) => l.key() == *key || l.expires <= now,
            Slot::Declined { until } => *until <= now,
        }
    }

    /// The slot this client holds or last held (its lease, or its pending offer).
    fn held(&self, key: &Key) -> Option<usize> {
        let i = *self.by_key.get(key)?;
        match &self.slots[i] {
            Slot::Leased(l) if l.key() == *key => Some(i),
            Slot::Offered { key: k, .. } if **k == *key => Some(i),
            _ => None,
        }
    }

    fn take(&mut self, i: usize, slot: Slot) {
        // Whoever held the slot before loses its index entries.
        let old = match &self.slots[i] {
            Slot::Leased(l) => Some((l.key(), Some(l.hostname.clone()))),
            Slot::Offered { key, .. } => Some(((**key).clone(), None)),
            _ => None,
        };
        if let Some((k, name)) = old {
            if self.by_key.get(&k) == Some(&i) {
                self.by_key.remove(&k);
            }
            if let Some(name) = name
                && self.by_name.get(&name) == Some(&i)
            {
                self.by_name.remove(&name);
            }
        }
        match &slot {
            Slot::Leased(l) => {
                self.by_key.insert(l.key(), i);
                if !l.hostname.is_empty() {
                    self.drop_name(&l.hostname, i);
                    self.by_name.insert(l.hostname.clone(), i);
                }
            }
            Slot::Offered { key, .. } => {
                self.by_key.insert((**key).clone(), i);
            }
            _ => {}
        }
        self.slots[i] = slot;
    }

    /// Pick the address to offer this client, and hold it for `offer_hold` seconds; `None` when
    /// the pool is exhausted.
    pub fn offer(
        &mut self,
        mac: [u8; 6],
        key: &Key,
        requested: Option<Ipv4Addr>,
        now: u64,
    ) -> Option<Ipv4Addr> {
        let i = self.choose(mac, key, requested, now)?;
        if !matches!(&self.slots[i], Slot::Leased(l) if l.key() == *key && l.expires > now) {
            let until = now + self.times.offer_hold;
            self.take(
                i,
                Slot::Offered {
                    key: Box::new(key.clone()),
                    until,
                },
            );
        }
        Some(self.addr_of(i))
    }

    fn choose(
        &self,
        mac: [u8; 6],
        key: &Key,
        requested: Option<Ipv4Addr>,
        now: u64,
    ) -> Option<usize> {
        if let Some(f) = self.fixed_of(mac) {
            return Some(self.pool_size() + f);
        }
        if let Some(i) = self.held(key) {
            return Some(i);
        }
        if let Some(i) = requested.and_then(|ip| self.index_of(ip))
            && self.available(i, key, now)
        {
            return Some(i);
        }
        let size = self.pool_size();
        if size == 0 {
            return None;
        }
        let start = mac_hash(mac) as usize % size;
        let order = (start..size).chain(0..start);
        // Never-used addresses first, then the one whose lease ran out longest ago.
        if let Some(i) = order.clone().find(|&i| self.slots[i] == Slot::Free) {
            return Some(i);
        }
        order
            .filter(|&i| self.available(i, key, now))
            .min_by_key(|&i| match &self.slots[i] {
                Slot::Leased(l) => l.expires,
                Slot::Offered { until, .. } | Slot::Declined { until } => *until,
                _ => 0,
            })
    }

    /// A REQUEST for `ip` (the offered address, or the one a rebooting or renewing client has).
    /// `ours`: the request names this server (selecting) or names none.
    pub fn request(&mut self, req: Request<'_>, now: u64) -> Verdict {
        let Some(i) = self.index_of(req.ip) else {
            return if req.authoritative {
                Verdict::Nak
            } else {
                Verdict::Ignore
            };
        };
        // A static host gets only its own address, and its address is only its own.
        let fixed = self.fixed_of(req.mac);
        let allowed = match (fixed, i.checked_sub(self.pool_size())) {
            (Some(f), Some(g)) => f == g,
            (Some(_), None) | (None, Some(_)) => false,
            (None, None) => self.available(i, req.key, now),
        };
        if !allowed {
            return Verdict::Nak;
        }
        let known = self.held(req.key) == Some(i);
        if !known && !req.authoritative && !req.selecting {
            return Verdict::Ignore;
        }
        let hostname = match fixed.and_then(|f| self.fixed[f].name.clone()) {
            Some(name) => name,
            None => req.hostname.unwrap_or_default(),
        };
        let lease = Lease {
            addr: req.ip,
            mac: req.mac,
            client_id: req
                .client_id
                .and_then(|id| heapless::Vec::from_slice(id).ok()),
            hostname: heapless::String::try_from(hostname.as_str()).unwrap_or_default(),
            expires: now + self.times.lease,
        };
        self.take(i, Slot::Leased(Box::new(lease.clone())));
        Verdict::Ack(lease)
    }

    /// A name belongs to one lease: the newest (as dnsmasq does). The older holder loses it.
    fn drop_name(&mut self, name: &Name, keep: usize) {
        if let Some(&j) = self.by_name.get(name)
            && j != keep
            && let Slot::Leased(l) = &mut self.slots[j]
            && l.hostname == *name
        {
            l.hostname.clear();
        }
    }

    /// The client says the address is in use by somebody else: keep it out of the pool for
    /// `decline` seconds. Returns whether anything changed.
    pub fn decline(&mut self, key: &Key, ip: Ipv4Addr, now: u64) -> bool {
        let Some(i) = self.held(key).filter(|&i| self.addr_of(i) == ip) else {
            return false;
        };
        if i >= self.pool_size() {
            // A static host's address stays its own; forget the lease.
            self.take(i, Slot::Reserved);
        } else {
            self.take(
                i,
                Slot::Declined {
                    until: now + self.times.decline,
                },
            );
        }
        true
    }

    /// The client gives its address back. The binding is kept, expired, so the client gets the
    /// same address next time while nobody else took it. Returns whether anything changed.
    pub fn release(&mut self, key: &Key, ip: Ipv4Addr, now: u64) -> bool {
        let Some(i) = self.held(key).filter(|&i| self.addr_of(i) == ip) else {
            return false;
        };
        if let Slot::Leased(l) = &mut self.slots[i]
            && l.expires > now
        {
            l.expires = now;
            return true;
        }
        false
    }

    /// The current (unexpired) leases, in address order.
    pub fn active(&self, now: u64) -> Vec<Lease> {
        let mut out: Vec<Lease> = (self.slots.iter())
            .filter_map(|s| match s {
                Slot::Leased(l) if l.expires > now => Some((**l).clone()),
                _ => None,
            })
            .collect();
        out.sort_by_key(|l| u32::from(l.addr));
        out
    }

    /// Every bound lease (expired ones too, so returning clients keep their address) in
    /// dnsmasq's lease file format.
    pub fn to_file(&self) -> String {
        let mut out = String::new();
        for slot in self.slots.iter() {
            if let Slot::Leased(l) = slot {
                out.push_str(&format_line(l));
                out.push('\n');
            }
        }
        out
    }

    /// Restore leases from a lease file (at start, or merging a file found later); lines that do
    /// not parse, whose address this table does not serve or holds already, or whose client it
    /// knows already are skipped. Returns (restored, skipped).
    pub fn restore(&mut self, text: &str) -> (usize, usize) {
        let (mut restored, mut skipped) = (0, 0);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Some(lease) = parse_line(line) else {
                skipped += 1;
                continue;
            };
            let slot = self.index_of(lease.addr);
            // A client the table already knows keeps what it has (a merged older file).
            let known = self.by_key.contains_key(&lease.key());
            let fits = !known
                && slot.is_some_and(|i| match i.checked_sub(self.pool_size()) {
                    Some(f) => self.fixed[f].mac == lease.mac,
                    None => self.slots[i] == Slot::Free && self.fixed_of(lease.mac).is_none(),
                });
            match slot {
                Some(i) if fits => {
                    self.take(i, Slot::Leased(Box::new(lease)));
                    restored += 1;
                }
                _ => skipped += 1,
            }
        }
        (restored, skipped)
    }
}

/// What a REQUEST asks, for [`Table::request`].
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub mac: [u8; 6],
    pub key: &'a Key,
    pub client_id: Option<&'a [u8]>,
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
    /// The client names this server (SELECTING): it answers the offer.
    pub selecting: bool,
    pub authoritative: bool,
}

/// FNV-1a over the MAC: spreads clients over the pool, stable across restarts.
fn mac_hash(mac: [u8; 6]) -> u32 {
    mac.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

fn hex(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    s.split(':')
        .map(|p| {
            (p.len() == 2)
                .then(|| u8::from_str_radix(p, 16).ok())
                .flatten()
        })
        .collect()
}

/// `<expires> <mac> <ip> <hostname|*> <client-id|*>`, as dnsmasq writes it.
fn format_line(l: &Lease) -> String {
    let name = if l.hostname.is_empty() {
        "*"
    } else {
        l.hostname.as_str()
    };
    let id = l.client_id.as_deref().map_or_else(|| "*".to_string(), hex);
    format!("{} {} {} {} {}", l.expires, hex(&l.mac), l.addr, name, id)
}

fn parse_line(line: &str) -> Option<Lease> {
    let mut parts = line.split_ascii_whitespace();
    let expires: u64 = parts.next()?.parse().ok()?;
    let mac: [u8; 6] = unhex(parts.next()?)?.try_into().ok()?;
    let addr: Ipv4Addr = parts.next()?.parse().ok()?;
    let name = parts.next()?;
    let id = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let hostname = match name {
        "*" => heapless::String::new(),
        n if crate::config::is_host_label(n) => heapless::String::try_from(n).ok()?,
        _ => return None,
    };
    let client_id = match id {
        "*" => None,
        id => Some(heapless::Vec::from_slice(&unhex(id)?).ok()?),
    };
    Some(Lease {
        addr,
        mac,
        client_id,
        hostname,
        expires,
    })
}

/// A MAC as `aa:bb:cc:dd:ee:ff`.
pub fn mac_string(mac: &[u8; 6]) -> String {
    hex(mac)
}

#[cfg(test)]
#[path = "tests_leases.rs"]
mod tests;
