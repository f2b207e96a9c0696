//! The forwarding cache: answers from upstream (positive and negative) by question, bounded to
//! `cache_size` entries with least-recently-used eviction. Entries outlive their TTL while they
//! may still be served stale (`max_stale`); after that a lookup drops them.
//!
//! The table is [`crate::lru::Lru`]: O(1) get, insert and eviction. Entries are kept small,
//! under 200 bytes for a one-address answer with the table's share: the key is the name in wire
//! form (stored once), the records are kept in wire form too (one allocation) and decoded only
//! when served; a hit copies them out, so the lock is never held while decoding. Time is passed in, never read here, so behaviour is tested
//! deterministically. Not synchronised: the caller owns it (behind a short mutex that is never
//! held across an await).

use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};

/// A question of class IN, the cache key: the lower-case name in wire form and the type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    name: Box<[u8]>,
    qtype: u16,
}

impl Key {
    /// The key of `name` (lower case) and `qtype`; `None` for a name that does not encode.
    pub fn new(name: &Name, qtype: RecordType) -> Option<Key> {
        Some(Key {
            name: name.to_bytes().ok()?.into_boxed_slice(),
            qtype: qtype.into(),
        })
    }
}

/// One cached answer: its records in wire form (answers first, then authority), TTLs as
/// received.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub rcode: ResponseCode,
    /// When it was stored.
    pub stored: Instant,
    /// Seconds it is fresh for, from `stored`.
    pub ttl: u32,
    answers: u16,
    records: Box<[u8]>,
}

impl Entry {
    /// An entry for these records; `None` when they do not encode (they are then not cached).
    pub fn new(
        rcode: ResponseCode,
        answers: &[Record],
        authority: &[Record],
        stored: Instant,
        ttl: u32,
    ) -> Option<Entry> {
        let mut buf = Vec::with_capacity(64);
        let mut encoder = BinEncoder::new(&mut buf);
        for r in answers.iter().chain(authority) {
            r.emit(&mut encoder).ok()?;
        }
        Some(Entry {
            rcode,
            stored,
            ttl,
            answers: u16::try_from(answers.len()).ok()?,
            records: buf.into_boxed_slice(),
        })
    }

    /// The answer and authority records, each TTL mapped by `ttl`.
    pub fn records(&self, ttl: impl Fn(u32) -> u32) -> (Vec<Record>, Vec<Record>) {
        let mut decoder = BinDecoder::new(&self.records);
        let mut answers = Vec::with_capacity(usize::from(self.answers));
        let mut authority = Vec::new();
        while !decoder.is_empty() {
            // Encoded by `new` from records that decoded once already: a failure cannot
            // happen, and would only shorten the reply.
            let Ok(mut r) = Record::read(&mut decoder) else {
                break;
            };
            r.ttl = ttl(r.ttl);
            if answers.len() < usize::from(self.answers) {
                answers.push(r);
            } else {
                authority.push(r);
            }
        }
        (answers, authority)
    }

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
    table: crate::lru::Lru<Key, Entry>,
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
    pub fn get(&mut self, key: &Key, now: Instant) -> Option<Entry> {
        let entry = self.table.get_mut(key)?;
        if !entry.stale_usable(now, self.max_stale) {
            self.table.remove(key);
            return None;
        }
        Some(entry.clone())
    }

    /// Store `entry` for `key`, evicting the least recently used entry when full.
    pub fn insert(&mut self, key: Key, entry: Entry) {
        self.table.insert(key, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> Key {
        let name = Name::from_ascii(format!("{n}.test.")).expect("name");
        Key::new(&name, RecordType::A).expect("key")
    }

    fn entry(at: Instant, ttl: u32) -> Entry {
        Entry::new(ResponseCode::NoError, &[], &[], at, ttl).expect("entry")
    }

    #[test]
    fn records_come_back_with_mapped_ttls() {
        use hickory_proto::rr::RData;
        use hickory_proto::rr::rdata::{A, SOA};
        let name = Name::from_ascii("www.example.test.").expect("name");
        let zone = Name::from_ascii("example.test.").expect("name");
        let a = |ip: [u8; 4], ttl| Record::from_rdata(name.clone(), ttl, RData::A(A(ip.into())));
        let answers = [a([93, 184, 216, 34], 300), a([93, 184, 216, 35], 200)];
        let soa = SOA::new(zone.clone(), zone.clone(), 1, 2, 3, 4, 5);
        let authority = [Record::from_rdata(zone.clone(), 600, RData::SOA(soa))];
        let e = Entry::new(
            ResponseCode::NoError,
            &answers,
            &authority,
            Instant::now(),
            200,
        )
        .expect("entry");
        let (got, auth) = e.records(|ttl| ttl - 50);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].data, answers[0].data);
        assert_eq!(got[1].data, answers[1].data);
        assert_eq!((got[0].ttl, got[1].ttl), (250, 150));
        assert_eq!(got[0].name, name);
        assert_eq!(auth.len(), 1);
        assert_eq!((auth[0].ttl, &auth[0].name), (550, &zone));
        // Compact: the records of a two-address answer with an SOA fit in well under 256 bytes.
        assert!(e.records.len() < 128, "{} bytes", e.records.len());
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
