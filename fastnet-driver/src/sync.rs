//! Small synchronisation helpers.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, also after a panic elsewhere poisoned it: every value the
/// drivers keep behind a lock stays consistent between statements, so a
/// panicking handler must not turn into a panic of every later caller.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f`, a call into the application's handler; `None` if it
/// panicked. A panicking handler costs its own connection (closed with
/// [`CloseReason::Panic`](fastnet_proto::connection::CloseReason::Panic)),
/// never the thread, the accept loop or another connection; the panic
/// hook has already printed the message.
pub fn guard<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}
