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

/// `from + after`, saturating: a duration too long for the clock (such as
/// `Duration::MAX`, "never") gives an instant thirty years on, which no
/// server waits for, instead of a panic.
pub fn later(from: std::time::Instant, after: std::time::Duration) -> std::time::Instant {
    const FAR: std::time::Duration = std::time::Duration::from_secs(30 * 365 * 24 * 3600);
    from.checked_add(after.min(FAR)).unwrap_or(from)
}
