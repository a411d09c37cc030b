//! The buffer pool: receive and reply storage recycled across connections.

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
/// shard is empty; keeps at most `max` sets in all, so the pool bounds
/// the memory kept for reuse, not the server.
#[derive(Debug)]
pub struct BufPool {
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
        BufPool {
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
        if set.rx.len() != self.rx_len || set.tx.len() != self.tx_len {
            return;
        }
        let mut free = self.shard(shard);
        if free.len() < self.max_per_shard {
            free.push(set);
        }
    }
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
}
