//! The buffer pool: rx/tx storage lent to connections only while they have
//! bytes in flight.

use std::sync::{Mutex, MutexGuard};

use crate::sync::lock;

/// The storage one busy connection needs.
#[derive(Debug, Default)]
pub(crate) struct BufSet {
    /// Receive storage for the `Connection` (full length).
    pub(crate) rx: Vec<u8>,
    /// Reply storage for the `Connection` (full length).
    pub(crate) tx: Vec<u8>,
}

/// LIFO stacks of [`BufSet`]s (the most recently returned, cache-warm set
/// goes out first), one per executor thread of [`Layout::PerThread`](crate::Layout::PerThread)
/// so that threads do not contend for one lock and one cache line on
/// every request; one for the other layouts. Allocates only when a stack
/// is empty; keeps at most `max` sets in all.
#[derive(Debug)]
pub(crate) struct BufPool {
    rx_len: usize,
    tx_len: usize,
    max_per_shard: usize,
    shards: Box<[Mutex<Vec<BufSet>>]>,
}

impl BufPool {
    pub(crate) fn new(rx_len: usize, tx_len: usize, max: usize, shards: usize) -> Self {
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
    pub(crate) fn take(&self, shard: usize) -> BufSet {
        let pooled = self.shard(shard).pop();
        pooled.unwrap_or_else(|| BufSet {
            rx: vec![0; self.rx_len],
            tx: vec![0; self.tx_len],
        })
    }

    /// Returns a set to `shard`'s stack (dropped if that is full or the
    /// set is not ours).
    pub(crate) fn give(&self, shard: usize, set: BufSet) {
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
            pool.give(
                1,
                BufSet {
                    rx: vec![0; 16],
                    tx: vec![0; 32],
                },
            );
        }
        assert_eq!(pool.shard(1).len(), 2, "at most max / shards per shard");
        // A set of the wrong size is not kept.
        pool.give(
            0,
            BufSet {
                rx: vec![0; 8],
                tx: vec![0; 32],
            },
        );
        assert!(pool.shard(0).is_empty());
    }
}
