//! A map with a fixed capacity and least-recently-used eviction, for the tables that outside
//! input can grow: the DNS forwarding cache and the per-source buckets of the `rateLimit` and
//! `inFlightReq` middlewares.
//!
//! A slab of slots linked in use order plus a hash index of slot numbers: O(1) lookup,
//! insertion, removal and eviction. Each key is stored once (in its slot; the index holds 4-byte
//! slot numbers and hashes the slots' keys), the slab never grows past the capacity, and freed
//! slots are reused, so a full table allocates nothing more. Not synchronised: the owner puts it
//! behind a short mutex.

use std::hash::{BuildHasher, Hash, RandomState};

use hashbrown::HashTable;

const NIL: u32 = u32::MAX;

struct Slot<K, V> {
    /// `None` in a freed slot (its key and value are released at once).
    item: Option<(K, V)>,
    prev: u32,
    next: u32,
}

/// A bounded LRU map; see the module docs.
pub struct Lru<K, V> {
    cap: usize,
    hasher: RandomState,
    index: HashTable<u32>,
    slots: Vec<Slot<K, V>>,
    free: Vec<u32>,
    /// Most recently used.
    head: u32,
    /// Least recently used.
    tail: u32,
}

impl<K: Hash + Eq, V> Lru<K, V> {
    /// At most `cap` entries (and never more than `u32::MAX - 1`); 0 keeps nothing.
    pub fn new(cap: usize) -> Self {
        Lru {
            cap: cap.min(NIL as usize - 1),
            hasher: RandomState::new(),
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The slot holding `key`.
    fn find(&self, key: &K) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(self.hasher.hash_one(key), |&i| {
                slots[i as usize]
                    .item
                    .as_ref()
                    .is_some_and(|(k, _)| k == key)
            })
            .copied()
    }

    fn value(&mut self, i: u32) -> &mut V {
        match &mut self.slots[i as usize].item {
            Some((_, v)) => v,
            None => unreachable!("a slot in the index holds an item"),
        }
    }

    /// The value for `key`, marked most recently used.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let i = self.find(key)?;
        self.touch(i);
        Some(self.value(i))
    }

    /// Store `val` for `key` (replacing its value), evicting the least recently used entry when
    /// full.
    pub fn insert(&mut self, key: K, val: V) {
        if self.cap == 0 {
            return;
        }
        match self.find(&key) {
            Some(i) => {
                *self.value(i) = val;
                self.touch(i);
            }
            None => {
                self.add(key, val);
            }
        }
    }

    /// The value for `key`, created with `make` if absent (evicting when full), marked most
    /// recently used. With capacity 0 the table keeps one entry, so there is always a value.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(&key) {
            Some(i) => {
                self.touch(i);
                i
            }
            None => self.add(key, make()),
        };
        self.value(i)
    }

    /// Remove `key`, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.find(key)?;
        self.remove_slot(i)
    }

    fn remove_slot(&mut self, i: u32) -> Option<V> {
        let (key, val) = self.slots[i as usize].item.take()?;
        if let Ok(entry) = self
            .index
            .find_entry(self.hasher.hash_one(&key), |&j| j == i)
        {
            entry.remove();
        }
        self.unlink(i);
        self.free.push(i);
        Some(val)
    }

    fn add(&mut self, key: K, val: V) -> u32 {
        if self.index.len() >= self.cap.max(1) && self.tail != NIL {
            self.remove_slot(self.tail);
        }
        let hash = self.hasher.hash_one(&key);
        let slot = Slot {
            item: Some((key, val)),
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                if self.slots.len() == self.slots.capacity() {
                    // Double, but never past the capacity: a full table holds no spare slots.
                    let room = self.cap.max(1) - self.slots.len();
                    self.slots
                        .reserve_exact(self.slots.len().max(4).min(room.max(1)));
                }
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index
            .insert_unique(hash, i, |&j| match &slots[j as usize].item {
                Some((k, _)) => hasher.hash_one(k),
                None => 0,
            });
        self.push_front(i);
        i
    }

    fn touch(&mut self, i: u32) {
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = (self.slots[i as usize].prev, self.slots[i as usize].next);
        match prev {
            NIL => self.head = next,
            p => self.slots[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n as usize].prev = prev,
        }
        self.slots[i as usize].prev = NIL;
        self.slots[i as usize].next = NIL;
    }

    fn push_front(&mut self, i: u32) {
        self.slots[i as usize].prev = NIL;
        self.slots[i as usize].next = self.head;
        if self.head != NIL {
            self.slots[self.head as usize].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Lru;

    #[test]
    fn evicts_the_least_recently_used_and_keeps_the_bound() {
        let mut l = Lru::new(2);
        l.insert("a", 1);
        l.insert("b", 2);
        assert_eq!(l.get_mut(&"a"), Some(&mut 1));
        l.insert("c", 3);
        assert_eq!(l.len(), 2);
        assert!(l.get_mut(&"b").is_none(), "b was the least recently used");
        assert_eq!(l.get_mut(&"a"), Some(&mut 1));
        assert_eq!(l.get_mut(&"c"), Some(&mut 3));
    }

    #[test]
    fn remove_frees_a_slot_for_reuse() {
        let mut l = Lru::new(2);
        l.insert(1, "one");
        l.insert(2, "two");
        assert_eq!(l.remove(&1), Some("one"));
        assert_eq!(l.remove(&1), None);
        l.insert(3, "three");
        assert_eq!(l.len(), 2);
        assert_eq!(l.get_mut(&2), Some(&mut "two"));
        for k in 10..1000 {
            l.insert(k, "x");
        }
        assert_eq!(l.len(), 2);
        assert!(l.slots.len() <= 2, "the slab never outgrows the capacity");
        assert!(l.slots.capacity() <= 2, "nor reserves room past it");
    }

    #[test]
    fn get_or_insert_with_creates_once_and_capacity_zero_keeps_nothing_inserted() {
        let mut l = Lru::new(1);
        *l.get_or_insert_with("k", || 0) += 1;
        *l.get_or_insert_with("k", || 100) += 1;
        assert_eq!(l.get_mut(&"k"), Some(&mut 2));
        *l.get_or_insert_with("j", || 7) += 1;
        assert!(l.get_mut(&"k").is_none());
        let mut none: Lru<&str, i32> = Lru::new(0);
        none.insert("a", 1);
        assert!(none.is_empty());
    }

    /// Random operations against a plain list kept in use order: same contents, same order of
    /// eviction, whatever the mix.
    #[test]
    fn agrees_with_a_naive_model() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for cap in [1usize, 2, 5, 64] {
            let mut l: Lru<u64, u64> = Lru::new(cap);
            let mut model: Vec<(u64, u64)> = Vec::new(); // most recent last
            for step in 0..20_000u64 {
                let k = rand(cap as u64 * 3);
                match rand(4) {
                    0 => {
                        let got = l.remove(&k);
                        let pos = model.iter().position(|e| e.0 == k);
                        assert_eq!(got, pos.map(|p| model.remove(p).1), "remove {k}");
                    }
                    1 => {
                        let got = l.get_mut(&k).copied();
                        let pos = model.iter().position(|e| e.0 == k);
                        let want = pos.map(|p| {
                            let e = model.remove(p);
                            model.push(e);
                            e.1
                        });
                        assert_eq!(got, want, "get {k}");
                    }
                    _ => {
                        l.insert(k, step);
                        if let Some(p) = model.iter().position(|e| e.0 == k) {
                            model.remove(p);
                        } else if model.len() == cap {
                            model.remove(0);
                        }
                        model.push((k, step));
                    }
                }
                assert_eq!(l.len(), model.len());
                assert!(l.slots.capacity() <= cap);
            }
        }
    }
}
