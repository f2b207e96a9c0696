//! Header maps, read buffers and line buffers kept by each worker thread for the next request. A
//! request through boma's own HTTP/1 sides needs up to two maps (the request's, parsed by the
//! server side, and the answer's, parsed by the client side unless its fields are passed on as
//! lines, which take a line buffer instead), two allocations each; a map dropped after its head
//! was written is cleared and kept here instead, its values released and its capacity not. A
//! client connection waiting for its next request lends its empty read buffer here, so that an
//! idle keep-alive connection holds none and a busy one seldom allocates. The lists are per
//! thread (a worker runs on one), and bounded in count and in each entry's size (a buffer by
//! its memory, not by the part of it it views; see [`give_buf`]).

use std::cell::RefCell;

use bytes::BytesMut;
use http::HeaderMap;

/// Maps kept per thread: enough for the requests a worker has between two of its heads.
const KEEP: usize = 32;
/// A map grown beyond this many fields (a rare large head) is dropped, not kept.
const MAX_CAPACITY: usize = 64;

/// Read buffers kept per thread, and the largest kept.
const KEEP_BUFS: usize = 32;
const MAX_BUF: usize = 16 * 1024;

thread_local! {
    static SPARE: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
    static BUFS: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static LINES: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty byte vector with room for `room` bytes (the fields of a head passed on): a kept
/// one when there is one.
pub fn take_lines(room: usize) -> Vec<u8> {
    match LINES.with_borrow_mut(Vec::pop) {
        Some(mut lines) => {
            lines.reserve(room);
            lines
        }
        None => Vec::with_capacity(room),
    }
}

/// Keep `lines` (written) for a later [`take_lines`] on this thread; bounded as the read
/// buffers are.
pub fn give_lines(mut lines: Vec<u8>) {
    if lines.capacity() == 0 || lines.capacity() > MAX_BUF {
        return;
    }
    lines.clear();
    LINES.with_borrow_mut(|kept| {
        if kept.len() < KEEP_BUFS {
            kept.push(lines);
        }
    });
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
    if map.capacity() == 0 || map.capacity() > MAX_CAPACITY || map.len() > MAX_CAPACITY {
        return;
    }
    map.clear();
    SPARE.with_borrow_mut(|spare| {
        if spare.len() < KEEP {
            spare.push(map);
        }
    });
}

/// An empty read buffer with room for at least `room` bytes: a kept one when there is one.
pub fn take_buf(room: usize) -> BytesMut {
    match BUFS.with_borrow_mut(Vec::pop) {
        Some(mut buf) => {
            if buf.try_reclaim(MAX_BUF + 1) {
                // Kept while its memory was still shared, and that memory is large.
                return BytesMut::with_capacity(room);
            }
            buf.reserve(room);
            buf
        }
        None => BytesMut::with_capacity(room),
    }
}

/// Keep an empty read buffer for a later [`take_buf`] on this thread. One whose memory is larger
/// than [`MAX_BUF`] is dropped: asking to reclaim more than that succeeds only then (and never
/// allocates). A buffer whose memory is still shared with a head's values cannot be reclaimed
/// and is kept by its view's size; the connection loop gives buffers only once a request is
/// done (its head dropped), and [`take_buf`] checks again and drops one grown large meanwhile.
pub fn give_buf(mut buf: BytesMut) {
    if !buf.is_empty() || buf.capacity() == 0 || buf.try_reclaim(MAX_BUF + 1) {
        return;
    }
    BUFS.with_borrow_mut(|bufs| {
        if bufs.len() < KEEP_BUFS {
            bufs.push(buf);
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
    fn a_lent_buffer_comes_back_with_its_memory() {
        let buf = BytesMut::with_capacity(4096);
        let at = buf.as_ptr();
        give_buf(buf);
        let again = take_buf(1024);
        assert_eq!(again.as_ptr(), at);
        assert!(again.capacity() >= 4096);
    }

    #[test]
    fn large_or_full_buffers_are_not_kept() {
        let before = BUFS.with_borrow(Vec::len);
        // A small view of a large allocation: what it holds is the allocation, not the view.
        let mut big = BytesMut::with_capacity(MAX_BUF * 4);
        big.extend_from_slice(&[b'x'; MAX_BUF * 4 - 100]);
        let head = big.split_to(MAX_BUF * 4 - 100);
        drop(head);
        assert!(big.capacity() <= MAX_BUF);
        give_buf(big);
        let mut partly = BytesMut::with_capacity(64);
        partly.extend_from_slice(b"GET");
        give_buf(partly);
        assert_eq!(BUFS.with_borrow(Vec::len), before);
    }

    #[test]
    fn a_buffer_kept_while_shared_is_not_used_once_its_large_memory_is_its_own() {
        let mut big = BytesMut::with_capacity(MAX_BUF * 4);
        big.extend_from_slice(&[b'x'; MAX_BUF * 4 - 100]);
        let head = big.split_to(MAX_BUF * 4 - 100).freeze();
        give_buf(big);
        drop(head);
        assert!(take_buf(1024).capacity() <= MAX_BUF);
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
