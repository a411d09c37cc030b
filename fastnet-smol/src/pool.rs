//! The buffer pool: rx/tx storage lent to connections only while they have
//! bytes in flight.

use std::sync::{Mutex, PoisonError};

/// The storage one busy connection needs.
#[derive(Debug, Default)]
pub(crate) struct BufSet {
    /// Receive storage for the `Connection` (full length).
    pub(crate) rx: Vec<u8>,
    /// Reply storage for the `Connection` (full length).
    pub(crate) tx: Vec<u8>,
}

/// A LIFO stack of [`BufSet`]s (the most recently returned, cache-warm
/// set goes out first). Allocates only when empty; keeps at most `max`.
#[derive(Debug)]
pub(crate) struct BufPool {
    rx_len: usize,
    tx_len: usize,
    max: usize,
    free: Mutex<Vec<BufSet>>,
}

impl BufPool {
    pub(crate) fn new(rx_len: usize, tx_len: usize, max: usize) -> Self {
        BufPool {
            rx_len,
            tx_len,
            max,
            free: Mutex::new(Vec::with_capacity(max.min(1024))),
        }
    }

    /// A set, from the pool or freshly allocated.
    pub(crate) fn take(&self) -> BufSet {
        let pooled = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        pooled.unwrap_or_else(|| BufSet {
            rx: vec![0; self.rx_len],
            tx: vec![0; self.tx_len],
        })
    }

    /// Returns a set (dropped if the pool is full or the set is not ours).
    pub(crate) fn give(&self, set: BufSet) {
        if set.rx.len() != self.rx_len || set.tx.len() != self.tx_len {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        if free.len() < self.max {
            free.push(set);
        }
    }
}
