//! A map with a fixed capacity and least-recently-used eviction, for the tables that outside
//! input can grow: the DNS forwarding cache and the per-source buckets of the `rateLimit` and
//! `inFlightReq` middlewares.
//!
//! A slab of slots linked in use order plus a hash index: O(1) lookup, insertion, removal and
//! eviction, and no allocation once the slab is full (freed slots are reused). Not synchronised:
//! the owner puts it behind a short mutex.

use std::collections::HashMap;
use std::hash::Hash;

const NIL: usize = usize::MAX;

struct Slot<K, V> {
    key: K,
    /// `None` in a freed slot (its value is released at once).
    val: Option<V>,
    prev: usize,
    next: usize,
}

/// A bounded LRU map; see the module docs.
pub struct Lru<K, V> {
    cap: usize,
    index: HashMap<K, usize>,
    slots: Vec<Slot<K, V>>,
    free: Vec<usize>,
    /// Most recently used.
    head: usize,
    /// Least recently used.
    tail: usize,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    /// At most `cap` entries; 0 keeps nothing.
    pub fn new(cap: usize) -> Self {
        Lru {
            cap,
            index: HashMap::new(),
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

    /// The value for `key`, marked most recently used.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let i = *self.index.get(key)?;
        self.touch(i);
        self.slots[i].val.as_mut()
    }

    /// Store `val` for `key` (replacing its value), evicting the least recently used entry when
    /// full.
    pub fn insert(&mut self, key: K, val: V) {
        if self.cap == 0 {
            return;
        }
        if let Some(&i) = self.index.get(&key) {
            self.slots[i].val = Some(val);
            self.touch(i);
            return;
        }
        self.add(key, val);
    }

    /// The value for `key`, created with `make` if absent (evicting when full), marked most
    /// recently used. With capacity 0 the table keeps one entry, so there is always a value.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.index.get(&key) {
            Some(&i) => {
                self.touch(i);
                i
            }
            None => self.add(key, make()),
        };
        self.slots[i]
            .val
            .as_mut()
            .expect("a slot in the index holds a value")
    }

    /// Remove `key`, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.index.remove(key)?;
        self.unlink(i);
        self.free.push(i);
        self.slots[i].val.take()
    }

    fn add(&mut self, key: K, val: V) -> usize {
        if self.index.len() >= self.cap.max(1) && self.tail != NIL {
            let oldest = self.slots[self.tail].key.clone();
            self.remove(&oldest);
        }
        let slot = Slot {
            key: key.clone(),
            val: Some(val),
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.index.insert(key, i);
        self.push_front(i);
        i
    }

    fn touch(&mut self, i: usize) {
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = (self.slots[i].prev, self.slots[i].next);
        match prev {
            NIL => self.head = next,
            p => self.slots[p].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n].prev = prev,
        }
        self.slots[i].prev = NIL;
        self.slots[i].next = NIL;
    }

    fn push_front(&mut self, i: usize) {
        self.slots[i].prev = NIL;
        self.slots[i].next = self.head;
        if self.head != NIL {
            self.slots[self.head].prev = i;
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
}
