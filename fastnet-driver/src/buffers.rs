//! The buffer pool: receive and reply storage recycled across connections.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use fastnet_proto::connection::Buffers;

use crate::sync::lock;

/// The storage one connection's state machine needs: a receive buffer and
/// a reply buffer, both at full length.
pub type BufSet = Buffers<Vec<u8>, Vec<u8>>;

/// LIFO stacks of [`BufSet`]s, one per shard (the most recently returned,
/// cache-warm set goes out first). A driver gives each of its threads a
/// shard of its own so that threads do not contend for one lock and one
/// cache line on every request, or uses one shard. Allocates only when a
/// shard is empty; keeps at most `max` sets in all (plus one per thread
/// that uses [`give_hot`](Self::give_hot)), so the pool bounds the memory
/// kept for reuse, not the server.
#[derive(Debug)]
pub struct BufPool {
    /// Tells this pool's sets in a thread's hot slot from another pool's.
    id: u64,
    rx_len: usize,
    tx_len: usize,
    max_per_shard: usize,
    shards: Box<[Mutex<Vec<BufSet>>]>,
}

impl BufPool {
    /// A pool of sets of `rx_len` and `tx_len` bytes, keeping at most
    /// `max` of them over `shards` stacks (at least one).
    pub fn new(rx_len: usize, tx_len: usize, max: usize, shards: usize) -> Self {
        let shards = shards.max(1);
        let max_per_shard = max.div_ceil(shards);
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        BufPool {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            rx_len,
            tx_len,
            max_per_shard,
            shards: (0..shards)
                .map(|_| Mutex::new(Vec::with_capacity(max_per_shard.min(1024))))
                .collect(),
        }
    }

    fn shard(&self, shard: usize) -> MutexGuard<'_, Vec<BufSet>> {
        // Callers pass their thread's index, in range: no division then.
        let n = self.shards.len();
        let i = if shard < n { shard } else { shard % n };
        lock(&self.shards[i])
    }

    /// A set, from `shard`'s stack or freshly allocated.
    pub fn take(&self, shard: usize) -> BufSet {
        let pooled = self.shard(shard).pop();
        pooled.unwrap_or_else(|| Buffers {
            rx: vec![0; self.rx_len],
            tx: vec![0; self.tx_len],
        })
    }

    /// Returns a set to `shard`'s stack (dropped if that is full or the set
    /// is not of this pool's sizes).
    pub fn give(&self, shard: usize, set: BufSet) {
        if !self.fits(&set) {
            return;
        }
        let mut free = self.shard(shard);
        if free.len() < self.max_per_shard {
            free.push(set);
        }
    }

    /// [`take`](Self::take), first trying the calling thread's hot slot
    /// (see [`give_hot`](Self::give_hot)).
    pub fn take_hot(&self, shard: usize) -> BufSet {
        let hot = HOT
            .try_with(|hot| {
                let mut hot = hot.try_borrow_mut().ok()?;
                match &*hot {
                    Some((id, _)) if *id == self.id => hot.take().map(|(_, set)| set),
                    _ => None,
                }
            })
            .ok()
            .flatten();
        hot.unwrap_or_else(|| self.take(shard))
    }

    /// [`give`](Self::give), first trying the calling thread's hot slot: one
    /// set per thread, kept without a lock for the thread's next
    /// [`take_hot`](Self::take_hot).
    ///
    /// For drivers whose connections share a thread (fastnet-smol's
    /// reactors): a connection that parks between requests gives its set
    /// back and the next connection the thread serves takes it again, so
    /// each request would otherwise lock a shard twice. Not for a thread
    /// per connection (fastnet-std): there the slot would keep a set for
    /// each idle connection's thread, which parking exists to avoid. A slot
    /// holding another pool's set (a server gone, or a second one on the
    /// thread) gives it up to this pool's.
    pub fn give_hot(&self, shard: usize, set: BufSet) {
        if !self.fits(&set) {
            return;
        }
        let spilled = HOT.try_with(|hot| {
            let Ok(mut hot) = hot.try_borrow_mut() else {
                return Some(set);
            };
            match &*hot {
                Some((id, _)) if *id == self.id => Some(set),
                _ => {
                    *hot = Some((self.id, set));
                    None
                }
            }
        });
        // `Err`: the thread is exiting and its slot gone; the set is freed.
        if let Ok(Some(set)) = spilled {
            self.give(shard, set);
        }
    }

    fn fits(&self, set: &BufSet) -> bool {
        set.rx.len() == self.rx_len && set.tx.len() == self.tx_len
    }
}

thread_local! {
    /// The set this thread gave back last through [`BufPool::give_hot`],
    /// and the id of its pool.
    static HOT: RefCell<Option<(u64, BufSet)>> = const { RefCell::new(None) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(rx: usize, tx: usize) -> BufSet {
        Buffers {
            rx: vec![0; rx],
            tx: vec![0; tx],
        }
    }

    #[test]
    fn recycles_newest_first_and_caps_what_it_keeps() {
        let pool = BufPool::new(16, 32, 1, 1);
        let a = pool.take(0);
        assert_eq!((a.rx.len(), a.tx.len()), (16, 32));
        let b = pool.take(0);
        let pa = a.rx.as_ptr();
        pool.give(0, a);
        pool.give(0, b); // over the bound: dropped
        assert_eq!(pool.shard(0).len(), 1);
        assert_eq!(pool.take(0).rx.as_ptr(), pa);
    }

    #[test]
    fn shards_recycle_their_own_sets_and_stay_bounded() {
        let pool = BufPool::new(16, 32, 4, 2);
        let a = pool.take(0);
        let ptr = a.rx.as_ptr();
        pool.give(0, a);
        // Shard 1 does not see shard 0's set; shard 0 gets it back.
        assert_ne!(pool.take(1).rx.as_ptr(), ptr);
        assert_eq!(pool.take(0).rx.as_ptr(), ptr);
        for _ in 0..5 {
            pool.give(1, set(16, 32));
        }
        assert_eq!(pool.shard(1).len(), 2, "at most max / shards per shard");
        // An index past the shards wraps around.
        assert_eq!(pool.shard(3).len(), 2);
        // A set of the wrong size is not kept.
        pool.give(0, set(8, 32));
        assert!(pool.shard(0).is_empty());
    }

    #[test]
    fn the_hot_slot_keeps_one_set_per_thread_for_its_own_pool() {
        let pool = BufPool::new(16, 32, 4, 1);
        let other = BufPool::new(16, 32, 4, 1);
        let a = pool.take_hot(0);
        let b = pool.take_hot(0);
        let (pa, pb) = (a.rx.as_ptr(), b.rx.as_ptr());
        pool.give_hot(0, a);
        assert!(pool.shard(0).is_empty(), "the first set waits in the slot");
        pool.give_hot(0, b);
        assert_eq!(
            pool.shard(0).len(),
            1,
            "the slot is taken: the second spills"
        );
        // Another pool with the same sizes never gets this pool's set.
        assert_ne!(other.take_hot(0).rx.as_ptr(), pa);
        // Nor does another thread: it gets the spilled one from the shard.
        let elsewhere =
            std::thread::scope(|s| s.spawn(|| pool.take_hot(0).rx.as_ptr() as usize).join());
        assert_eq!(elsewhere.ok(), Some(pb as usize));
        // This thread gets its own back.
        assert_eq!(pool.take_hot(0).rx.as_ptr(), pa);
        // A set of the wrong size is not kept.
        pool.give_hot(0, set(8, 32));
        assert_ne!(pool.take_hot(0).rx.len(), 8);
    }

    #[test]
    fn a_stale_set_in_the_hot_slot_gives_way() {
        let gone = BufPool::new(16, 32, 4, 1);
        gone.give_hot(0, gone.take(0));
        drop(gone);
        let pool = BufPool::new(16, 32, 4, 1);
        let a = pool.take(0);
        let pa = a.rx.as_ptr();
        pool.give_hot(0, a);
        assert!(
            pool.shard(0).is_empty(),
            "the stale set was replaced, not spilled over"
        );
        assert_eq!(pool.take_hot(0).rx.as_ptr(), pa);
    }
}
