//! The worker pool: OS threads reused across connections.
//!
//! A job (one connection) goes to an idle worker if there is one (the most
//! recently idle, whose stack and caches are warm); otherwise a new thread
//! is spawned if the pool is below its limit; otherwise the job is handed
//! back at once, so the caller can refuse the connection. An idle worker
//! that gets no job within the expiry exits.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::handle::lock;

/// What a worker runs for each job.
pub(crate) type Run<J> = Arc<dyn Fn(J) + Send + Sync>;

enum Slot<J> {
    Waiting,
    Job(J, Run<J>),
    Exit,
}

/// One worker's mailbox.
struct Mailbox<J> {
    slot: Mutex<Slot<J>>,
    ready: Condvar,
}

struct PoolState<J> {
    /// Idle workers, most recently idle last.
    idle: Vec<Arc<Mailbox<J>>>,
    /// Threads alive (busy, idle or starting).
    live: usize,
    closed: bool,
}

pub(crate) struct Workers<J> {
    state: Mutex<PoolState<J>>,
    max: usize,
    expiry: Duration,
}

impl<J: Send + 'static> Workers<J> {
    pub(crate) fn new(max: usize, expiry: Duration) -> Self {
        Workers {
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                live: 0,
                closed: false,
            }),
            max,
            expiry,
        }
    }

    /// Runs `job` on a worker, or hands it back if every worker is busy and
    /// the pool is full (or closed, or a thread cannot be spawned).
    pub(crate) fn dispatch(self: &Arc<Self>, job: J, run: &Run<J>) -> Result<(), J> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(job);
        }
        let mailbox = match state.idle.pop() {
            Some(mailbox) => mailbox,
            None => {
                if state.live >= self.max {
                    return Err(job);
                }
                state.live += 1;
                drop(state);
                let mailbox = Arc::new(Mailbox {
                    slot: Mutex::new(Slot::Waiting),
                    ready: Condvar::new(),
                });
                let pool = Arc::clone(self);
                let mine = Arc::clone(&mailbox);
                let spawned = thread::Builder::new()
                    .name("fastnet-worker".into())
                    .spawn(move || pool.work(&mine));
                if spawned.is_err() {
                    lock(&self.state).live -= 1;
                    return Err(job);
                }
                mailbox
            }
        };
        *lock(&mailbox.slot) = Slot::Job(job, Arc::clone(run));
        mailbox.ready.notify_one();
        Ok(())
    }

    /// Lets idle workers exit now and busy ones after their job.
    pub(crate) fn close(&self) {
        let idle = {
            let mut state = lock(&self.state);
            state.closed = true;
            std::mem::take(&mut state.idle)
        };
        for mailbox in idle {
            *lock(&mailbox.slot) = Slot::Exit;
            mailbox.ready.notify_one();
        }
    }

    /// Threads alive and, of those, idle.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let state = lock(&self.state);
        (state.live, state.idle.len())
    }

    /// A worker thread's life: wait for a job, run it, go idle, repeat;
    /// exit when idle too long or the pool closes.
    fn work(&self, mailbox: &Arc<Mailbox<J>>) {
        // The first job is on its way (the spawner delivers it).
        let mut expires = None;
        loop {
            let (job, run) = match self.wait(mailbox, expires) {
                Some(next) => next,
                None => return,
            };
            // A panicking handler costs its connection, not the worker.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(job)));
            drop(run);
            let mut state = lock(&self.state);
            if state.closed {
                state.live -= 1;
                return;
            }
            state.idle.push(Arc::clone(mailbox));
            // `None` (never) if the expiry is past what the clock holds.
            expires = Instant::now().checked_add(self.expiry);
        }
    }

    /// Waits for the next job; `None` means exit (and `live` is already
    /// decremented).
    fn wait(&self, mailbox: &Arc<Mailbox<J>>, mut expires: Option<Instant>) -> Option<(J, Run<J>)> {
        let mut slot = lock(&mailbox.slot);
        loop {
            match std::mem::replace(&mut *slot, Slot::Waiting) {
                Slot::Job(job, run) => return Some((job, run)),
                Slot::Exit => {
                    lock(&self.state).live -= 1;
                    return None;
                }
                Slot::Waiting => {}
            }
            let timeout = match expires {
                None => None,
                Some(at) => match at.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => {
                        drop(slot);
                        let mut state = lock(&self.state);
                        if let Some(i) = state.idle.iter().position(|m| Arc::ptr_eq(m, mailbox)) {
                            state.idle.remove(i);
                            state.live -= 1;
                            return None;
                        }
                        // A dispatcher took this worker off the idle list:
                        // its job is on the way.
                        drop(state);
                        expires = None;
                        slot = lock(&mailbox.slot);
                        continue;
                    }
                },
            };
            slot = match timeout {
                Some(t) => {
                    mailbox
                        .ready
                        .wait_timeout(slot, t)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0
                }
                None => mailbox
                    .ready
                    .wait(slot)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            };
        }
    }
}

impl<J> fmt::Debug for Workers<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("Workers")
            .field("live", &state.live)
            .field("idle", &state.idle.len())
            .field("max", &self.max)
            .field("expiry", &self.expiry)
            .finish()
    }
}

/// Live counts of a server's worker threads, cheap to read while serving.
#[derive(Clone)]
pub struct WorkerPool {
    counts: Arc<dyn Fn() -> (usize, usize) + Send + Sync>,
}

impl WorkerPool {
    pub(crate) fn new<J: Send + 'static>(workers: &Arc<Workers<J>>) -> Self {
        let workers = Arc::clone(workers);
        WorkerPool {
            counts: Arc::new(move || workers.counts()),
        }
    }

    /// Worker threads alive (serving a connection or idle).
    pub fn live(&self) -> usize {
        (self.counts)().0
    }

    /// Worker threads idle, waiting for a connection.
    pub fn idle(&self) -> usize {
        (self.counts)().1
    }
}

impl fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (live, idle) = (self.counts)();
        f.debug_struct("WorkerPool")
            .field("live", &live)
            .field("idle", &idle)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    fn poll(mut cond: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if cond() {
                return true;
            }
            thread::sleep(Duration::from_millis(2));
        }
        false
    }

    #[test]
    fn reuses_refuses_when_full_and_expires() {
        let pool = Arc::new(Workers::<mpsc::Receiver<()>>::new(
            2,
            Duration::from_millis(100),
        ));
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&ran);
        let run: Run<mpsc::Receiver<()>> = Arc::new(move |rx: mpsc::Receiver<()>| {
            let _ = rx.recv();
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let (tx1, rx1) = mpsc::channel();
        let (tx2, rx2) = mpsc::channel();
        let (_tx3, rx3) = mpsc::channel();
        assert!(pool.dispatch(rx1, &run).is_ok());
        assert!(pool.dispatch(rx2, &run).is_ok());
        assert!(pool.dispatch(rx3, &run).is_err(), "both workers busy");
        assert_eq!(pool.counts(), (2, 0));
        tx1.send(()).unwrap();
        assert!(poll(|| pool.counts() == (2, 1)));
        // The idle worker is reused: no third thread.
        let (tx4, rx4) = mpsc::channel();
        assert!(pool.dispatch(rx4, &run).is_ok());
        assert_eq!(pool.counts(), (2, 0));
        tx4.send(()).unwrap();
        tx2.send(()).unwrap();
        assert!(poll(|| ran.load(Ordering::SeqCst) == 3));
        // Idle workers expire.
        assert!(poll(|| pool.counts() == (0, 0)));
    }

    #[test]
    fn close_ends_idle_workers() {
        let pool = Arc::new(Workers::<()>::new(4, Duration::from_secs(60)));
        let run: Run<()> = Arc::new(|()| {});
        pool.dispatch((), &run).unwrap();
        assert!(poll(|| pool.counts() == (1, 1)));
        pool.close();
        assert!(poll(|| pool.counts() == (0, 0)));
        assert!(pool.dispatch((), &run).is_err());
    }
}
