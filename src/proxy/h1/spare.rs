//! Header maps kept by each worker thread for the next request. Every request through boma's
//! own HTTP/1 sides needs two maps (the request's, parsed by the server side, and the answer's,
//! parsed by the client side), two allocations each; a map dropped after its head was written
//! is cleared and kept here instead, its values released and its capacity not. The list is
//! per thread (a worker runs on one), and bounded in count and in each map's size.

use std::cell::RefCell;

use http::HeaderMap;

/// Maps kept per thread: enough for the requests a worker has between two of its heads.
const KEEP: usize = 32;
/// A map grown beyond this many fields (a rare large head) is dropped, not kept.
const MAX_CAPACITY: usize = 64;

thread_local! {
    static SPARE: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
}

/// An empty map with room for `fields`: a kept one when there is one.
pub fn take(fields: usize) -> HeaderMap {
    match SPARE.with_borrow_mut(Vec::pop) {
        Some(mut map) => {
            map.reserve(fields);
            map
        }
        None => HeaderMap::with_capacity(fields),
    }
}

/// Keep `map` for a later [`take`] on this thread (cleared now: its values share heads that
/// must not stay alive).
pub fn give(mut map: HeaderMap) {
    // `capacity` counts distinct names; the values of a repeated field are stored apart and
    // counted by `len` (a map that had many and lost them keeps a little more: still bounded by
    // the most fields a head may have).
    if map.capacity() > MAX_CAPACITY || map.len() > MAX_CAPACITY {
        return;
    }
    map.clear();
    SPARE.with_borrow_mut(|spare| {
        if spare.len() < KEEP {
            spare.push(map);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_map_comes_back_empty_with_its_room() {
        let mut map = take(10);
        map.insert("x-one", "1".parse().unwrap());
        let room = map.capacity();
        give(map);
        let again = take(2);
        assert!(again.is_empty());
        assert_eq!(again.capacity(), room);
    }

    #[test]
    fn a_kept_map_grows_to_the_room_asked_for() {
        give(HeaderMap::with_capacity(2));
        assert!(take(40).capacity() >= 40);
    }

    #[test]
    fn a_map_with_many_values_of_one_field_is_not_kept() {
        let mut map = HeaderMap::new();
        for i in 0..MAX_CAPACITY * 2 {
            map.append("set-cookie", i.into());
        }
        let before = SPARE.with_borrow(Vec::len);
        give(map);
        assert_eq!(SPARE.with_borrow(Vec::len), before);
    }

    #[test]
    fn large_maps_and_a_full_list_are_dropped() {
        let big = HeaderMap::with_capacity(MAX_CAPACITY * 2);
        give(big);
        assert!(SPARE.with_borrow(|s| s.iter().all(|m| m.capacity() <= MAX_CAPACITY)));
        for _ in 0..KEEP * 2 {
            give(HeaderMap::with_capacity(4));
        }
        assert_eq!(SPARE.with_borrow(Vec::len), KEEP);
    }
}
