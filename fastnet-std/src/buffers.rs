//! The buffer pool: rx/tx storage recycled across connections.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use fastnet_proto::connection::Buffers;

use crate::handle::lock;

/// One connection's storage.
pub(crate) type Storage = Buffers<Box<[u8]>, Box<[u8]>>;

/// Fixed-size rx/tx buffer pairs, handed out at connect and taken back at
/// close, so a server allocates buffers only while its peak of concurrent
/// connections grows. Keeps at most `max_idle` pairs.
#[derive(Debug)]
pub(crate) struct BufferPool {
    rx_len: usize,
    tx_len: usize,
    max_idle: usize,
    free: Mutex<Vec<Storage>>,
    allocated: AtomicU64,
}

impl BufferPool {
    pub(crate) fn new(rx_len: usize, tx_len: usize, max_idle: usize) -> Self {
        BufferPool {
            rx_len,
            tx_len,
            max_idle,
            free: Mutex::new(Vec::new()),
            allocated: AtomicU64::new(0),
        }
    }

    /// A pair of buffers, recycled if one is free.
    pub(crate) fn take(&self) -> Storage {
        if let Some(storage) = lock(&self.free).pop() {
            return storage;
        }
        self.allocated.fetch_add(1, Ordering::Relaxed);
        Buffers {
            rx: vec![0; self.rx_len].into_boxed_slice(),
            tx: vec![0; self.tx_len].into_boxed_slice(),
        }
    }

    /// Takes a pair back (dropped if the pool already keeps enough).
    pub(crate) fn give(&self, storage: Storage) {
        if storage.rx.len() != self.rx_len || storage.tx.len() != self.tx_len {
            return;
        }
        let mut free = lock(&self.free);
        if free.len() < self.max_idle {
            free.push(storage);
        }
    }

    /// Pairs allocated so far.
    #[cfg(test)]
    pub(crate) fn allocated(&self) -> u64 {
        self.allocated.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycles_and_caps_idle() {
        let pool = BufferPool::new(16, 32, 1);
        let a = pool.take();
        assert_eq!((a.rx.len(), a.tx.len()), (16, 32));
        let b = pool.take();
        assert_eq!(pool.allocated(), 2);
        pool.give(a);
        pool.give(b); // over max_idle: dropped
        let _c = pool.take();
        let _d = pool.take();
        assert_eq!(pool.allocated(), 3);
    }
}
