//! The current snapshot as one worker holds it. A request keeps the route, service and server
//! it uses alive until it is answered; cloning their shared `Arc`s made every worker's requests
//! write the same reference counts, whose cache lines then moved from core to core with each
//! request. A worker keeps its own reference to the snapshot instead, renewed when the shared
//! one changes, and its requests clone that: a count only this worker's thread writes, and the
//! route, service and server are borrowed from it.

use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use crate::dynamic::Snapshot;

/// A worker's own reference to a snapshot (`**view` is the snapshot).
pub type View = Arc<Arc<Snapshot>>;

/// The shared current snapshot and this worker's reference to it.
pub struct Held {
    shared: Arc<ArcSwap<Snapshot>>,
    mine: Mutex<View>,
}

impl Held {
    pub fn new(shared: Arc<ArcSwap<Snapshot>>) -> Held {
        let mine = Mutex::new(Arc::new(shared.load_full()));
        Held { shared, mine }
    }

    /// The current snapshot, as a reference of this worker's.
    pub fn current(&self) -> View {
        let shared = self.shared.load();
        let mut mine = self.mine.lock().unwrap_or_else(PoisonError::into_inner);
        if !Arc::ptr_eq(&**mine, &*shared) {
            *mine = Arc::new(arc_swap::Guard::into_inner(shared));
        }
        Arc::clone(&mine)
    }

    /// Let go of a snapshot replaced since this worker's last request (run now and then, so that
    /// a worker without requests does not keep an old configuration alive).
    pub fn renew(&self) {
        drop(self.current());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_snapshot_replaces_the_held_one_and_the_old_is_let_go() {
        let first = Arc::new(Snapshot::default());
        let shared = Arc::new(ArcSwap::new(Arc::clone(&first)));
        let held = Held::new(Arc::clone(&shared));
        let view = held.current();
        assert!(Arc::ptr_eq(&*view, &first));
        assert!(
            Arc::ptr_eq(&held.current(), &view),
            "one reference while unchanged"
        );
        drop(view);
        shared.store(Arc::new(Snapshot::default()));
        held.renew();
        assert_eq!(
            Arc::strong_count(&first),
            1,
            "the old snapshot is no longer held"
        );
        assert!(!Arc::ptr_eq(&*held.current(), &first));
    }
}
