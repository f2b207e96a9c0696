//! The forwarding cache: answers from upstream (positive and negative) by question, bounded to
//! `cache_size` entries with least-recently-used eviction. Entries outlive their TTL while they
//! may still be served stale (`max_stale`); after that a lookup drops them.
//!
//! The table is [`crate::lru::Lru`]: O(1) get, insert and eviction, no allocation per hit beyond
//! the `Arc` clone. Time is passed in, never read here, so behaviour is tested
//! deterministically. Not synchronised: the caller owns it (behind a short mutex that is never
//! held across an await).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};

/// A question, the cache key. The name is lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub name: Name,
    pub qtype: RecordType,
    pub qclass: DNSClass,
}

/// One cached answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    /// When it was stored.
    pub stored: Instant,
    /// Seconds it is fresh for, from `stored`.
    pub ttl: u32,
}

impl Entry {
    /// Seconds of freshness left at `now`, or `None` once expired.
    pub fn remaining(&self, now: Instant) -> Option<u32> {
        let age = now.saturating_duration_since(self.stored).as_secs();
        let age = u32::try_from(age).unwrap_or(u32::MAX);
        (age < self.ttl).then(|| self.ttl - age)
    }

    /// Whether it may still be served stale at `now`.
    pub fn stale_usable(&self, now: Instant, max_stale: Duration) -> bool {
        let expiry = self.stored + Duration::from_secs(u64::from(self.ttl));
        now.saturating_duration_since(expiry) <= max_stale
    }
}

/// Bounded LRU cache; see the module docs.
pub struct Cache {
    max_stale: Duration,
    table: crate::lru::Lru<Key, Arc<Entry>>,
}

impl Cache {
    /// A cache of at most `capacity` entries (0: nothing is kept), each kept up to `max_stale`
    /// past its TTL.
    pub fn new(capacity: usize, max_stale: Duration) -> Cache {
        Cache {
            max_stale,
            table: crate::lru::Lru::new(capacity),
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The entry for `key`, fresh or still usable stale at `now`; marks it recently used. An
    /// entry past its stale window is dropped.
    pub fn get(&mut self, key: &Key, now: Instant) -> Option<Arc<Entry>> {
        let entry = self.table.get_mut(key)?;
        if !entry.stale_usable(now, self.max_stale) {
            self.table.remove(key);
            return None;
        }
        Some(Arc::clone(entry))
    }

    /// Store `entry` for `key`, evicting the least recently used entry when full.
    pub fn insert(&mut self, key: Key, entry: Entry) {
        self.table.insert(key, Arc::new(entry));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> Key {
        Key {
            name: Name::from_ascii(format!("{n}.test.")).expect("name"),
            qtype: RecordType::A,
            qclass: DNSClass::IN,
        }
    }

    fn entry(at: Instant, ttl: u32) -> Entry {
        Entry {
            rcode: ResponseCode::NoError,
            answers: Vec::new(),
            authority: Vec::new(),
            stored: at,
            ttl,
        }
    }

    #[test]
    fn lru_eviction_keeps_the_bound() {
        let t0 = Instant::now();
        let mut c = Cache::new(3, Duration::ZERO);
        for n in ["a", "b", "c"] {
            c.insert(key(n), entry(t0, 60));
        }
        assert!(c.get(&key("a"), t0).is_some()); // a is now the most recent
        c.insert(key("d"), entry(t0, 60)); // evicts b
        assert_eq!(c.len(), 3);
        assert!(c.get(&key("b"), t0).is_none());
        for n in ["a", "c", "d"] {
            assert!(c.get(&key(n), t0).is_some(), "{n}");
        }
        for i in 0..100 {
            c.insert(key(&format!("x{i}")), entry(t0, 60));
            assert!(c.len() <= 3);
        }
        assert!(c.get(&key("x99"), t0).is_some() && c.get(&key("x97"), t0).is_some());
        assert!(c.get(&key("x96"), t0).is_none());
        // Replacing keeps one entry.
        c.insert(key("x99"), entry(t0, 5));
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&key("x99"), t0).map(|e| e.ttl), Some(5));
    }

    #[test]
    fn expiry_and_stale_window() {
        let t0 = Instant::now();
        let later = |s| t0 + Duration::from_secs(s);
        let e = entry(t0, 10);
        assert_eq!(e.remaining(t0), Some(10));
        assert_eq!(e.remaining(later(9)), Some(1));
        assert_eq!(e.remaining(later(10)), None);
        assert!(e.stale_usable(later(70), Duration::from_secs(60)));
        assert!(!e.stale_usable(later(71), Duration::from_secs(60)));

        let mut c = Cache::new(10, Duration::from_secs(60));
        c.insert(key("a"), entry(t0, 10));
        let got = c.get(&key("a"), later(30)).expect("stale but usable");
        assert_eq!(got.remaining(later(30)), None);
        assert!(c.get(&key("a"), later(71)).is_none());
        assert!(c.is_empty(), "dropped once past the stale window");

        let mut off = Cache::new(0, Duration::ZERO);
        off.insert(key("a"), entry(t0, 10));
        assert!(off.get(&key("a"), t0).is_none());
    }
}
