//! Small synchronisation helpers the driver's modules share.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{RawWakerVTable, Waker};

pub(crate) use fastnet_driver::sync::lock;

/// The identity of the waker last registered somewhere: the data and
/// vtable addresses that `Waker::will_wake` compares. A task's waker does
/// not change between polls, so a poll with the same one skips the
/// registration (a lock, a clone); written only by the polling task.
#[derive(Debug, Default)]
pub(crate) struct WakerId {
    data: AtomicUsize,
    vtable: AtomicUsize,
}

impl WakerId {
    fn of(waker: &Waker) -> (usize, usize) {
        (
            waker.data() as usize,
            waker.vtable() as *const RawWakerVTable as usize,
        )
    }

    /// Whether `waker` is the one last recorded.
    pub(crate) fn is(&self, waker: &Waker) -> bool {
        let (data, vtable) = Self::of(waker);
        self.data.load(Ordering::Relaxed) == data && self.vtable.load(Ordering::Relaxed) == vtable
    }

    /// Records `waker` as registered.
    pub(crate) fn set(&self, waker: &Waker) {
        let (data, vtable) = Self::of(waker);
        self.data.store(data, Ordering::Relaxed);
        self.vtable.store(vtable, Ordering::Relaxed);
    }

    /// Records that no waker is registered.
    pub(crate) fn clear(&self) {
        self.data.store(0, Ordering::Relaxed);
        self.vtable.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Nop;
    impl Wake for Nop {
        fn wake(self: Arc<Self>) {}
    }

    #[test]
    fn a_waker_is_recognised_until_another_or_none_is_recorded() {
        let a = Waker::from(Arc::new(Nop));
        let b = Waker::from(Arc::new(Nop));
        let id = WakerId::default();
        assert!(!id.is(&a));
        id.set(&a);
        assert!(id.is(&a) && id.is(&a.clone()));
        assert!(!id.is(&b));
        id.set(&b);
        assert!(id.is(&b) && !id.is(&a));
        id.clear();
        assert!(!id.is(&b));
    }
}
