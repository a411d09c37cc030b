//! An edge-triggered epoll reactor of the driver's own, one per executor
//! thread of [`Layout::PerThread`](crate::Layout::PerThread) (Linux).
//!
//! async-io registers a socket one-shot: every wait for readiness re-arms
//! it with an `epoll_ctl`, and a wait usually starts with a read that
//! returns `WouldBlock`. Here a socket is registered once, edge-triggered,
//! for both directions, when it is accepted, and never touched again until
//! it closes. Readiness is kept as two flags per socket: an event sets
//! them, and the connection clears one just before the read (or write)
//! pass that drains the socket, so an edge that arrives during the pass
//! sets it again and nothing is lost. A pass that stops early (no room in
//! the receive buffer) sets the flag back itself.
//!
//! The reactor is also its thread's executor: [`Reactor::spawn`] makes an
//! `async-task` task whose wake-ups go to the reactor's run queue, and
//! [`block_on`] runs a future on the calling thread together with those
//! tasks, waiting in `epoll_wait` whenever none is runnable. A task woken
//! on this thread (the usual case: a socket event) is pushed on a
//! thread-local queue, with no lock and no atomic read-modify-write; a
//! wake-up from another thread (a new connection, a push through a
//! `ConnHandle`, a timer, shutdown) goes through a locked queue and writes
//! the reactor's eventfd only if the thread is asleep in `epoll_wait`. So
//! a request costs its read, its write and a share of one `epoll_wait`,
//! and no executor state is shared between threads on that path.
//!
//! Each socket also has one timer, kept by the reactor as a deadline in
//! the socket's slot and an ordered set of (deadline, key): the turn
//! bounds its `epoll_wait` by the earliest and wakes the tasks whose
//! deadlines passed. The connection task then holds no timer of its own
//! (async-io's is 56 bytes in every idle connection, and a lock on a set
//! shared by all threads when armed). The driver re-arms a timer only when
//! its deadline moves earlier or it fired, so timers are off the hot path.
//!
//! A thread with nothing to do serves a sibling's reactor before it
//! sleeps, if that reactor's thread is asleep past [`STEAL_AFTER`] and has
//! at most [`STEAL_MAX_SOCKETS`] sockets ([`Reactor::steal`]). The case it
//! is for: a thread woken for ready sockets but kept from its core by
//! another busy thread (a load generator, a build) for a scheduler tick;
//! the kernel keeps the events until the thread runs, so the idle sibling
//! takes them and runs the tasks instead. A reactor is run by one thread
//! at a time (its `owned` flag, taken with acquire and given back with
//! release), so the per-socket flags still need no read-modify-write.
//!
//! At a thousand busy connections the cost that is left in user space is
//! mostly cache misses on per-connection memory, and locked instructions
//! wait for them. So the per-event path takes no lock per socket and does
//! no atomic read-modify-write: the socket's task waker is kept in the
//! reactor's slot table (registered once, woken by reference) and the
//! readiness flags are plain loads and stores, which is enough because a
//! socket's flags are only touched by the thread running its reactor.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, VecDeque};
use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use async_task::Runnable;
use rustix::event::epoll;
use rustix::event::{eventfd, EventfdFlags};

use crate::sync::{lock, WakerId};

/// The epoll key of the reactor's own eventfd.
const NOTIFY_KEY: u64 = u64::MAX;

/// Events taken from the kernel per `epoll_wait`.
const EVENTS_PER_WAIT: usize = 256;

/// Tasks run between two looks at the sockets, so a flood of runnable
/// tasks cannot starve input.
const TASKS_PER_TURN: usize = 256;

/// How long a reactor's thread must have been asleep before a sibling
/// serves it (nanoseconds): about the time a woken thread on an idle core
/// takes to run, so a sibling does not take the events of a thread that is
/// already on its way. A longer wait left the tail to the scheduler: at 50
/// connections on two cores, a gate of 100 µs had a p99 of 1.7 ms, against
/// 0.56 ms at 5 µs, with no more CPU per request (BENCHMARKS.md).
const STEAL_AFTER: u64 = 5_000;

/// The most sockets a reactor may have for a sibling to serve it. With
/// few connections on a thread, one round trip is short and a thread kept
/// from its core for a scheduler tick (milliseconds) is what their tail
/// latency is made of; with hundreds, a round trip takes that long anyway
/// and serving them from another core only costs CPU (a third of all
/// events moved between threads at 500 per thread, measured, for no
/// better tail; BENCHMARKS.md).
const STEAL_MAX_SOCKETS: usize = 128;

/// A wait that returns at once.
const ZERO: rustix::event::Timespec = rustix::event::Timespec {
    tv_sec: 0,
    tv_nsec: 0,
};

/// A socket's timer deadline when none is armed (also [`Reactor::next_timer`]
/// when no socket has one).
const NO_TIMER: u64 = u64::MAX;

/// One thread's reactor.
pub(crate) struct Reactor {
    epoll: OwnedFd,
    /// Timer deadlines are nanoseconds since this instant.
    epoch: Instant,
    /// The earliest armed deadline, or [`NO_TIMER`]: read without the
    /// lock, so a turn with no timer armed does not look at the clock.
    next_timer: AtomicU64,
    /// Written to wake the thread out of `epoll_wait`.
    notify: File,
    /// The thread is in (or about to enter) a blocking `epoll_wait`.
    sleeping: AtomicBool,
    /// A task was woken since the last turn began.
    notified: AtomicBool,
    /// A thread is running this reactor's turns and tasks: its own thread
    /// (always, except while it waits in `epoll_wait`) or a sibling
    /// serving it meanwhile (see [`Reactor::steal`]). Taken with acquire
    /// and given back with release, so whichever thread holds it sees
    /// everything the previous holder did to the sockets' flags.
    owned: AtomicBool,
    /// When the owner last went to sleep (nanoseconds since `epoch`).
    asleep_since: AtomicU64,
    /// Registered sockets, for siblings to read without the lock.
    sockets: AtomicUsize,
    sources: Mutex<Sources>,
    /// Tasks woken from other threads, due to run.
    runnable: Mutex<VecDeque<Runnable>>,
}

thread_local! {
    /// The reactor [`block_on`] runs on this thread (its address), if any.
    static CURRENT: Cell<usize> = const { Cell::new(0) };
    /// Tasks of [`CURRENT`] woken on this thread, due to run.
    static LOCAL: RefCell<VecDeque<Runnable>> = const { RefCell::new(VecDeque::new()) };
    /// Addresses of the tasks the last turn woke, in waking order.
    static HINTS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Cache lines of a task (header and future, 1 KiB) fetched ahead of
/// running it.
const TASK_LINES: usize = 16;

/// How many tasks ahead of the running one that fetch is made.
const PREFETCH_AHEAD: usize = 2;

/// Asks the CPU to start loading `LINES` cache lines from `addr` on.
///
/// The crate's one `unsafe` block. Why: at a thousand busy connections
/// most of the driver's user time was cache misses on per-connection
/// memory (task, connection state, shared record), taken one after
/// another; fetching a turn's worth ahead lets them overlap, and measured
/// about a third less user time per request (BENCHMARKS.md). Rust's
/// prefetch intrinsic is an `unsafe fn` only because it is a
/// `#[target_feature]` function (SSE, always present on x86_64); a
/// prefetch never faults and never reads memory into the program, so any
/// address, dangling, wrapped past the top or not, is sound. Elsewhere it
/// does nothing.
#[allow(unsafe_code)]
#[inline(always)]
fn prefetch<const LINES: usize>(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // A constant count: unrolled into `LINES` fetches, no loop left.
    for i in 0..LINES {
        let line = addr.wrapping_add(i * 64);
        // SAFETY: see above; `_mm_prefetch` has no precondition beyond
        // the SSE feature, which every x86_64 processor has.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line as *const i8,
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// Registered sockets by epoll key (their slot index).
#[derive(Default)]
struct Sources {
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    /// The armed timers as (deadline, key), earliest first: exactly one
    /// entry per slot whose `timer` is armed.
    timers: BTreeSet<(u64, u32)>,
}

impl Sources {
    /// Disarms the timer of the slot at `key` (if it has one armed).
    fn disarm(&mut self, key: u32) {
        if let Some(Some(slot)) = self.slots.get_mut(key as usize) {
            let at = std::mem::replace(&mut slot.timer, NO_TIMER);
            if at != NO_TIMER {
                self.timers.remove(&(at, key));
            }
        }
    }

    /// The earliest armed deadline, or [`NO_TIMER`].
    fn next_timer(&self) -> u64 {
        self.timers.first().map_or(NO_TIMER, |&(at, _)| at)
    }

    /// The socket registered under epoll key `key`, if it still is.
    fn get(&self, key: u64) -> Option<&Slot> {
        usize::try_from(key)
            .ok()
            .and_then(|k| self.slots.get(k))
            .and_then(Option::as_ref)
    }
}

/// A registered socket: its readiness and the waker of the task using it.
struct Slot {
    source: Arc<Source>,
    /// Registered once, woken by reference for every event the task waits
    /// for, so an event costs no atomic swap of a waker.
    waker: Option<Waker>,
    /// The address of other memory the task touches on every wake-up
    /// (see [`EdgeStream::prefetch_also`]), or 0.
    also: usize,
    /// The armed timer's deadline (nanoseconds since the reactor's epoch),
    /// or [`NO_TIMER`].
    timer: u64,
}

/// The readiness of one registered socket.
///
/// Written by the reactor's turn and read and cleared by the socket's
/// task, both on the thread running the reactor (its own, or a sibling
/// serving it, one at a time); atomics only because the task's future is
/// `Send`. Acquire and release orderings are plain moves on the
/// machines that matter here.
#[derive(Default)]
struct Source {
    readable: AtomicBool,
    writable: AtomicBool,
    /// The peer closed (or the socket failed): sticky. A short read no
    /// longer proves the socket drained, since the end of input that came
    /// with the last bytes brings no edge of its own.
    closed: AtomicBool,
    /// The task returned `Pending` waiting for readability (writability):
    /// the next such event wakes it; other events do not.
    read_waiting: AtomicBool,
    write_waiting: AtomicBool,
    /// The socket's timer fired and the task has not seen it yet.
    timer_fired: AtomicBool,
}

impl Reactor {
    /// A reactor with its epoll instance and eventfd.
    pub(crate) fn new() -> io::Result<Arc<Reactor>> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let notify: OwnedFd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        epoll::add(
            &epoll,
            &notify,
            epoll::EventData::new_u64(NOTIFY_KEY),
            epoll::EventFlags::IN,
        )?;
        Ok(Arc::new(Reactor {
            epoll,
            epoch: Instant::now(),
            next_timer: AtomicU64::new(NO_TIMER),
            notify: File::from(notify),
            sleeping: AtomicBool::new(false),
            notified: AtomicBool::new(false),
            owned: AtomicBool::new(false),
            asleep_since: AtomicU64::new(0),
            sockets: AtomicUsize::new(0),
            sources: Mutex::new(Sources::default()),
            runnable: Mutex::new(VecDeque::new()),
        }))
    }

    /// Runs `future` as a task of this reactor's thread.
    pub(crate) fn spawn<F: Future<Output = ()> + Send + 'static>(self: &Arc<Self>, future: F) {
        let reactor = Arc::clone(self);
        let (runnable, task) = async_task::spawn(future, move |r| reactor.schedule(r));
        task.detach();
        runnable.schedule();
    }

    /// A task is due: queue it and wake the thread. On the reactor's own
    /// thread (a socket event, a task waking another) the thread-local
    /// queue takes it and the thread is awake anyway.
    fn schedule(&self, runnable: Runnable) {
        if self.is_current() {
            LOCAL.with(|q| q.borrow_mut().push_back(runnable));
            return;
        }
        lock(&self.runnable).push_back(runnable);
        self.wake();
    }

    /// Whether [`block_on`] runs this reactor on the calling thread.
    fn is_current(&self) -> bool {
        CURRENT.with(Cell::get) == self as *const Reactor as usize
    }

    /// The next task due: this thread's own wake-ups first.
    fn next_task(&self) -> Option<Runnable> {
        LOCAL
            .with(|q| q.borrow_mut().pop_front())
            .or_else(|| lock(&self.runnable).pop_front())
    }

    /// Whether no task is due.
    fn idle(&self) -> bool {
        LOCAL.with(|q| q.borrow().is_empty()) && lock(&self.runnable).is_empty()
    }

    /// Makes the next turn not block, writing the eventfd if the thread is
    /// asleep in (or entering) `epoll_wait`.
    fn wake(&self) {
        if !self.notified.swap(true, Ordering::SeqCst) && self.sleeping.load(Ordering::SeqCst) {
            // A full eventfd counter (never, at one write per sleep) would
            // only mean the thread is already due to wake.
            let _ = (&self.notify).write(&1u64.to_ne_bytes());
        }
    }

    /// Runs up to [`TASKS_PER_TURN`] queued tasks.
    fn run_tasks(&self) {
        // Only a turn (`dispatch`) writes the hints, never a task, so they
        // are taken out for the run and given back after it (no allocation:
        // the empty vector left in their place has none).
        let hints = HINTS.with(|h| std::mem::take(&mut *h.borrow_mut()));
        for &a in hints.iter().take(PREFETCH_AHEAD) {
            prefetch::<TASK_LINES>(a);
        }
        for i in 0..TASKS_PER_TURN {
            // The hints are in waking order, which is the run order.
            if let Some(&a) = hints.get(i + PREFETCH_AHEAD) {
                prefetch::<TASK_LINES>(a);
            }
            // Popped, then run with no queue borrowed: the task may wake
            // itself or others.
            let Some(runnable) = self.next_task() else {
                break;
            };
            runnable.run();
        }
        HINTS.with(|h| *h.borrow_mut() = hints);
    }

    /// Takes the events the kernel has (waiting for one if `may_block` and
    /// no task is due) and hands them to the sockets' flags and wakers.
    /// Before it would wait, it serves a sibling reactor whose thread is
    /// not running (see [`Reactor::steal`]), and waits only if that found
    /// nothing to do.
    fn turn(
        &self,
        may_block: bool,
        events: &mut Vec<epoll::Event>,
        siblings: &Siblings<'_>,
    ) -> io::Result<()> {
        // Wake-ups from here on make the wait below return at once; the
        // ones before left their tasks in the queue.
        self.notified.store(false, Ordering::SeqCst);
        let mut block = may_block && self.idle();
        if block && siblings.steal_one(events) {
            // Its tasks may have woken ours: look again before sleeping.
            block = false;
        }
        let next_timer = self.next_timer.load(Ordering::Relaxed);
        events.clear();
        if block {
            self.sleeping.store(true, Ordering::SeqCst);
            // A wake-up that saw `sleeping` still false set `notified`
            // instead of writing the eventfd: look once more.
            let until_timer = (next_timer != NO_TIMER).then(|| until(next_timer, self.now()));
            let wait = if self.notified.load(Ordering::SeqCst) {
                Some(&ZERO)
            } else {
                until_timer.as_ref()
            };
            // Asleep, the reactor is free for a sibling to serve.
            self.asleep_since.store(self.now(), Ordering::Relaxed);
            self.owned.store(false, Ordering::Release);
            let result = epoll::wait(&self.epoll, spare(events), wait);
            self.own();
            self.sleeping.store(false, Ordering::SeqCst);
            retry_interrupted(result)?;
        } else {
            retry_interrupted(epoll::wait(&self.epoll, spare(events), Some(&ZERO)))?;
        }
        self.dispatch(events, true, next_timer);
        Ok(())
    }

    /// Takes the reactor for the calling thread, waiting out a sibling
    /// that is serving it (for at most one turn of its tasks).
    fn own(&self) {
        let mut spins = 0u32;
        while self
            .owned
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins = spins.saturating_add(1);
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Serves this reactor on the calling thread if no thread runs it now:
    /// its own thread is asleep in `epoll_wait`, or was woken and is still
    /// waiting for a core (the kernel keeps the events until it runs, so
    /// they are here to take). Takes the ready events, fires due timers,
    /// and runs up to [`TASKS_PER_TURN`] tasks; tasks still due go to the
    /// reactor's queue and its thread is woken for them. Returns whether
    /// there was anything to do.
    ///
    /// Called only by an idle reactor's thread (its own queue empty), so
    /// the thread-local queue holds this reactor's tasks alone meanwhile.
    /// A failing `epoll_wait` here counts as nothing to do: it is the
    /// owner's to report, on its own turn.
    fn steal(&self, events: &mut Vec<epoll::Event>) -> bool {
        // Looked at without a write first: a busy reactor's line stays
        // with its thread, and a recent sleeper is left to wake by itself.
        if self.owned.load(Ordering::Relaxed)
            || self.sockets.load(Ordering::Relaxed) > STEAL_MAX_SOCKETS
            || self
                .now()
                .saturating_sub(self.asleep_since.load(Ordering::Relaxed))
                < STEAL_AFTER
        {
            return false;
        }
        if self
            .owned
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        let next_timer = self.next_timer.load(Ordering::Relaxed);
        events.clear();
        let waited = retry_interrupted(epoll::wait(&self.epoll, spare(events), Some(&ZERO)));
        // The eventfd alone is for the owner (its `block_on` future): it
        // stays readable (level-triggered) until the owner drains it.
        let work = waited.is_ok()
            && (events.iter().any(|e| e.data.u64() != NOTIFY_KEY)
                || (next_timer != NO_TIMER && next_timer <= self.now())
                || !lock(&self.runnable).is_empty());
        let mut wake_owner = false;
        if work {
            let previous = CURRENT.with(|c| c.replace(self as *const Reactor as usize));
            self.dispatch(events, false, next_timer);
            self.run_tasks();
            CURRENT.with(|c| c.set(previous));
            LOCAL.with(|q| {
                let mut q = q.borrow_mut();
                wake_owner = !q.is_empty();
                lock(&self.runnable).extend(q.drain(..));
            });
            // A task armed a timer earlier than the owner's wait allows
            // for: it must wake to shorten the wait.
            wake_owner |= self.next_timer.load(Ordering::Relaxed) < next_timer;
        }
        self.owned.store(false, Ordering::Release);
        if wake_owner {
            self.wake();
        }
        work
    }

    /// Hands `events` to the sockets' flags and wakers, and fires the due
    /// timers if any was armed (`next_timer`). Only the owner (`own`)
    /// drains the eventfd.
    fn dispatch(&self, events: &[epoll::Event], own: bool, next_timer: u64) {
        HINTS.with(|h| h.borrow_mut().clear());
        let mut sources = lock(&self.sources);
        if next_timer != NO_TIMER {
            self.fire_timers(&mut sources);
        }
        // First ask for every event's socket flags, task header and the
        // task's other hot memory: the cache misses on a thousand
        // connections' memory then overlap instead of being taken one
        // after another (each behind a locked instruction).
        for event in events {
            if let Some(slot) = sources.get(event.data.u64()) {
                prefetch::<1>(Arc::as_ptr(&slot.source) as usize);
                if let Some(w) = &slot.waker {
                    prefetch::<1>(w.data() as usize);
                }
                if slot.also != 0 {
                    prefetch::<1>(slot.also);
                }
            }
        }
        for event in events {
            let key = event.data.u64();
            if key == NOTIFY_KEY {
                if own {
                    let mut drain = [0u8; 8];
                    let _ = (&self.notify).read(&mut drain);
                }
                continue;
            }
            let Some(slot) = sources.get(key) else {
                // Deregistered while the event was in flight.
                continue;
            };
            let source = &slot.source;
            let flags = event.flags;
            let closed = flags.intersects(
                epoll::EventFlags::HUP | epoll::EventFlags::ERR | epoll::EventFlags::RDHUP,
            );
            if closed {
                source.closed.store(true, Ordering::Release);
            }
            let mut wake = false;
            if closed || flags.contains(epoll::EventFlags::IN) {
                source.readable.store(true, Ordering::Release);
                if source.read_waiting.load(Ordering::Acquire) {
                    source.read_waiting.store(false, Ordering::Release);
                    wake = true;
                }
            }
            if closed || flags.contains(epoll::EventFlags::OUT) {
                source.writable.store(true, Ordering::Release);
                if source.write_waiting.load(Ordering::Acquire) {
                    source.write_waiting.store(false, Ordering::Release);
                    wake = true;
                }
            }
            if wake {
                // By reference: nothing is dropped under the lock (a
                // dropped waker could be a task's last reference, and its
                // socket deregisters as it drops).
                if let Some(w) = &slot.waker {
                    HINTS.with(|h| h.borrow_mut().push(w.data() as usize));
                    w.wake_by_ref();
                }
            }
        }
    }

    /// Nanoseconds since the reactor's epoch (saturating below
    /// [`NO_TIMER`]).
    fn now(&self) -> u64 {
        self.nanos(Instant::now())
    }

    fn nanos(&self, at: Instant) -> u64 {
        let d = at.saturating_duration_since(self.epoch);
        u64::try_from(d.as_nanos()).map_or(NO_TIMER - 1, |n| n.min(NO_TIMER - 1))
    }

    /// Flags and wakes the sockets whose deadlines have passed, disarming
    /// their timers.
    fn fire_timers(&self, sources: &mut Sources) {
        let now = self.now();
        while let Some(&(at, key)) = sources.timers.first() {
            if at > now {
                break;
            }
            sources.timers.pop_first();
            if let Some(Some(slot)) = sources.slots.get_mut(key as usize) {
                slot.timer = NO_TIMER;
                slot.source.timer_fired.store(true, Ordering::Release);
                // By reference, as for events (see `turn`).
                if let Some(w) = &slot.waker {
                    HINTS.with(|h| h.borrow_mut().push(w.data() as usize));
                    w.wake_by_ref();
                }
            }
        }
        self.publish_next_timer(sources);
    }

    /// Makes the earliest armed deadline visible to the turn without the
    /// lock (after every change of `sources.timers`).
    fn publish_next_timer(&self, sources: &Sources) {
        self.next_timer
            .store(sources.next_timer(), Ordering::Relaxed);
    }

    /// Makes the number of registered sockets visible to siblings without
    /// the lock (after every registration and removal).
    fn publish_sockets(&self, sources: &Sources) {
        self.sockets
            .store(sources.slots.len() - sources.free.len(), Ordering::Relaxed);
    }

    /// Arms the timer of the socket in slot `key` for `at`, replacing the
    /// one armed.
    fn set_timer(&self, key: u32, at: Instant) {
        let at = self.nanos(at);
        let mut s = lock(&self.sources);
        s.disarm(key);
        if let Some(Some(slot)) = s.slots.get_mut(key as usize) {
            slot.timer = at;
            s.timers.insert((at, key));
        }
        self.publish_next_timer(&s);
    }

    /// Records `addr` as memory to fetch ahead for the socket in slot `key`.
    fn set_also(&self, key: u32, addr: usize) {
        if let Some(Some(slot)) = lock(&self.sources).slots.get_mut(key as usize) {
            slot.also = addr;
        }
    }

    /// Makes `waker` the one woken for the socket in slot `key`.
    fn register(&self, key: u32, waker: &Waker) {
        let old = {
            let mut s = lock(&self.sources);
            match s.slots.get_mut(key as usize) {
                Some(Some(slot)) => slot.waker.replace(waker.clone()),
                _ => None,
            }
        };
        // Dropped outside the lock (see `turn`).
        drop(old);
    }
}

/// The wait from `now` until `at` (both nanoseconds since a reactor's
/// epoch), rounded up to a whole millisecond: `epoll_wait` may count in
/// milliseconds, and waking a little early would only spin until the
/// deadline.
fn until(at: u64, now: u64) -> rustix::event::Timespec {
    const MS: u64 = 1_000_000;
    let wait = at.saturating_sub(now).div_ceil(MS).saturating_mul(MS);
    rustix::event::Timespec {
        tv_sec: i64::try_from(wait / 1_000_000_000).unwrap_or(i64::MAX),
        // Below 10^9: fits every platform's `c_long`.
        tv_nsec: (wait % 1_000_000_000) as _,
    }
}

/// The events vector's spare capacity, as `epoll::wait` fills it.
fn spare(events: &mut Vec<epoll::Event>) -> rustix::buffer::SpareCapacity<'_, epoll::Event> {
    rustix::buffer::spare_capacity(events)
}

fn retry_interrupted<T>(r: rustix::io::Result<T>) -> io::Result<()> {
    match r {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Wakes the future [`block_on`] runs.
struct MainWaker {
    reactor: Arc<Reactor>,
    woken: AtomicBool,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.reactor.wake();
    }
}

/// The reactors of a thread's siblings, one of which is served each time
/// the thread would otherwise sleep.
struct Siblings<'a> {
    all: &'a [Arc<Reactor>],
    me: usize,
    next: Cell<usize>,
}

impl Siblings<'_> {
    /// Serves the next sibling reactor in turn if no thread runs it (see
    /// [`Reactor::steal`]); whether that found anything to do.
    fn steal_one(&self, events: &mut Vec<epoll::Event>) -> bool {
        for _ in 0..self.all.len() {
            let i = self.next.get() % self.all.len();
            self.next.set(i + 1);
            let r = &self.all[i];
            if Arc::as_ptr(r) as usize != self.me {
                return r.steal(events);
            }
        }
        false
    }
}

/// Runs `future` on the calling thread together with the reactor's tasks,
/// waiting in the reactor whenever nothing is runnable. The future is
/// polled only when woken (its own wake-ups, not its tasks', so a future
/// that accepts connections does not try `accept` on every turn). Tasks
/// still queued when it finishes are dropped. Fails only if `epoll_wait`
/// does (it cannot, short of a bad descriptor).
///
/// Before each sleep the thread serves one of `siblings` (other threads'
/// reactors; `reactor` itself among them is skipped) if that one's thread
/// is not running: a connection made ready while its own thread waits
/// for a core is then served by the idle thread instead of waiting.
pub(crate) fn block_on<T>(
    reactor: &Arc<Reactor>,
    siblings: &[Arc<Reactor>],
    future: impl Future<Output = T>,
) -> io::Result<T> {
    let main = Arc::new(MainWaker {
        reactor: Arc::clone(reactor),
        woken: AtomicBool::new(true),
    });
    let waker = Waker::from(Arc::clone(&main));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let mut events = Vec::with_capacity(EVENTS_PER_WAIT);
    let siblings = Siblings {
        all: siblings,
        me: Arc::as_ptr(reactor) as usize,
        next: Cell::new(0),
    };
    reactor.own();
    let previous = CURRENT.with(|c| c.replace(Arc::as_ptr(reactor) as usize));
    let result = loop {
        if main.woken.swap(false, Ordering::SeqCst) {
            if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
                break Ok(v);
            }
        }
        reactor.run_tasks();
        let may_block = !main.woken.load(Ordering::SeqCst);
        if let Err(e) = reactor.turn(may_block, &mut events, &siblings) {
            break Err(e);
        }
    };
    // Dropping a queued task drops its future (outside the queue's
    // borrow: it may wake others).
    let mut queued: Vec<Runnable> = LOCAL.with(|q| q.borrow_mut().drain(..).collect());
    CURRENT.with(|c| c.set(previous));
    queued.extend(lock(&reactor.runnable).drain(..));
    drop(queued);
    reactor.owned.store(false, Ordering::Release);
    result
}

/// A non-blocking TCP socket registered with a [`Reactor`], edge-triggered,
/// for its whole life. The connection task reads and writes through
/// [`get_ref`](Self::get_ref) and keeps the readiness flags honest with
/// [`begin_read`](Self::begin_read), [`still_readable`](Self::still_readable)
/// and [`begin_write`](Self::begin_write).
pub(crate) struct EdgeStream {
    stream: TcpStream,
    /// The epoll key: the slot of `source` in the reactor.
    key: u32,
    source: Arc<Source>,
    reactor: Arc<Reactor>,
    /// Which waker the slot holds: registered once, not on every poll.
    registered: WakerId,
}

impl EdgeStream {
    /// Makes `stream` non-blocking and registers it with `reactor`.
    pub(crate) fn new(stream: TcpStream, reactor: &Arc<Reactor>) -> io::Result<EdgeStream> {
        stream.set_nonblocking(true)?;
        let source = Arc::new(Source::default());
        let key = {
            let mut s = lock(&reactor.sources);
            let key = match s.free.pop() {
                Some(k) => {
                    s.slots[k] = Some(Slot {
                        source: Arc::clone(&source),
                        waker: None,
                        also: 0,
                        timer: NO_TIMER,
                    });
                    k
                }
                None => {
                    s.slots.push(Some(Slot {
                        source: Arc::clone(&source),
                        waker: None,
                        also: 0,
                        timer: NO_TIMER,
                    }));
                    s.slots.len() - 1
                }
            };
            reactor.publish_sockets(&s);
            match u32::try_from(key) {
                Ok(k) => k,
                Err(_) => {
                    s.slots[key] = None;
                    s.free.push(key);
                    reactor.publish_sockets(&s);
                    return Err(io::Error::other("edge reactor: too many sockets"));
                }
            }
        };
        let stream = EdgeStream {
            stream,
            key,
            source,
            reactor: Arc::clone(reactor),
            registered: WakerId::default(),
        };
        let flags = epoll::EventFlags::IN
            | epoll::EventFlags::OUT
            | epoll::EventFlags::RDHUP
            | epoll::EventFlags::ET;
        // On failure `stream` drops: its slot is freed, and the delete
        // of a descriptor never added fails harmlessly.
        epoll::add(
            &reactor.epoll,
            &stream.stream,
            epoll::EventData::new_u64(u64::from(key)),
            flags,
        )?;
        Ok(stream)
    }

    /// The socket, for reads and writes.
    pub(crate) fn get_ref(&self) -> &TcpStream {
        &self.stream
    }

    /// Has the reactor fetch the memory at `addr` into the cache ahead of
    /// waking the task for an event (the connection's shared record): a
    /// hint, any address will do.
    pub(crate) fn prefetch_also(&self, addr: usize) {
        self.reactor.set_also(self.key, addr);
    }

    /// A read pass that goes on until the socket is drained begins: the
    /// next readiness must come from an event after this point.
    pub(crate) fn begin_read(&self) {
        self.source.readable.store(false, Ordering::Release);
    }

    /// The read pass stopped before the socket was drained (no room): it
    /// is still readable.
    pub(crate) fn still_readable(&self) {
        self.source.readable.store(true, Ordering::Release);
    }

    /// Whether an event said the peer closed: read on to end of input (or
    /// `WouldBlock`), a short read does not end the pass.
    pub(crate) fn peer_closed(&self) -> bool {
        self.source.closed.load(Ordering::Acquire)
    }

    /// A write pass begins; if it blocks, the next writability must come
    /// from an event after this point.
    pub(crate) fn begin_write(&self) {
        self.source.writable.store(false, Ordering::Release);
    }

    /// Ready once an event said readable (or closed) since the last
    /// [`begin_read`](Self::begin_read).
    pub(crate) fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        let s = &self.source;
        self.poll_flag(&s.readable, &s.read_waiting, cx)
    }

    /// Ready once an event said writable (or closed) since the last
    /// [`begin_write`](Self::begin_write).
    pub(crate) fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<()> {
        let s = &self.source;
        self.poll_flag(&s.writable, &s.write_waiting, cx)
    }

    /// Arms the socket's timer for `at`, replacing the one armed.
    pub(crate) fn set_timer(&self, at: Instant) {
        self.reactor.set_timer(self.key, at);
    }

    /// Ready once the armed timer fired (which disarms it).
    pub(crate) fn poll_timer(&self, cx: &mut Context<'_>) -> Poll<()> {
        let fired = &self.source.timer_fired;
        if fired.load(Ordering::Acquire) {
            fired.store(false, Ordering::Release);
            return Poll::Ready(());
        }
        // The turn that fires it wakes the slot's waker whatever the task
        // waits for.
        self.register(cx.waker());
        Poll::Pending
    }

    /// Makes `w` the waker in the socket's slot, unless it already is.
    fn register(&self, w: &Waker) {
        if !self.registered.is(w) {
            self.reactor.register(self.key, w);
            self.registered.set(w);
        }
    }

    fn poll_flag(&self, flag: &AtomicBool, waiting: &AtomicBool, cx: &mut Context<'_>) -> Poll<()> {
        if flag.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.register(cx.waker());
        waiting.store(true, Ordering::Release);
        if flag.load(Ordering::Acquire) {
            waiting.store(false, Ordering::Release);
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for EdgeStream {
    fn drop(&mut self) {
        // Before the descriptor closes, so no event can name a reused
        // key; an error only means the descriptor is gone already.
        let _ = epoll::delete(&self.reactor.epoll, self.stream.as_fd());
        let key = self.key as usize;
        let mut s = lock(&self.reactor.sources);
        s.disarm(self.key);
        self.reactor.publish_next_timer(&s);
        if let Some(slot) = s.slots.get_mut(key) {
            *slot = None;
            s.free.push(key);
        }
        self.reactor.publish_sockets(&s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Duration;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (c, s)
    }

    /// Reads until drained as a connection task does, with the flag
    /// cleared first.
    fn drain(s: &EdgeStream) -> usize {
        s.begin_read();
        let mut total = 0;
        let mut buf = [0u8; 4096];
        loop {
            match s.get_ref().read(&mut buf) {
                Ok(0) => return total,
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    #[test]
    fn each_arrival_after_a_drain_wakes_the_reader() {
        let reactor = Reactor::new().unwrap();
        let (mut client, server) = pair();
        let s = EdgeStream::new(server, &reactor).unwrap();
        for round in 0..50u8 {
            client.write_all(&[round; 100]).unwrap();
            let got = block_on(&reactor, &[], async {
                std::future::poll_fn(|cx| s.poll_readable(cx)).await;
                drain(&s)
            })
            .unwrap();
            // Loopback may deliver the bytes in more than one segment:
            // wait for the rest the same way.
            let mut total = got;
            while total < 100 {
                total += block_on(&reactor, &[], async {
                    std::future::poll_fn(|cx| s.poll_readable(cx)).await;
                    drain(&s)
                })
                .unwrap();
            }
            assert_eq!(total, 100, "round {round}");
        }
    }

    #[test]
    fn a_wake_from_another_thread_interrupts_the_wait() {
        let reactor = Reactor::new().unwrap();
        let flag = Arc::new(AtomicBool::new(false));
        let waker = Arc::new(atomic_waker::AtomicWaker::new());
        let t = {
            let (flag, waker) = (flag.clone(), waker.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                flag.store(true, Ordering::SeqCst);
                waker.wake();
            })
        };
        block_on(
            &reactor,
            &[],
            std::future::poll_fn(|cx| {
                waker.register(cx.waker());
                if flag.load(Ordering::SeqCst) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }),
        )
        .unwrap();
        t.join().unwrap();
    }

    #[test]
    fn spawned_tasks_run_on_the_thread_and_wake_across_threads() {
        let reactor = Reactor::new().unwrap();
        let (tx, rx) = smol::channel::unbounded::<u32>();
        let (done_tx, done_rx) = smol::channel::bounded::<u32>(1);
        reactor.spawn(async move {
            let mut sum = 0;
            while let Ok(n) = rx.recv().await {
                sum += n;
            }
            let _ = done_tx.send(sum).await;
        });
        let feeder = std::thread::spawn(move || {
            for n in 1..=100 {
                smol::block_on(tx.send(n)).unwrap();
                if n % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
        let sum = block_on(&reactor, &[], async { done_rx.recv().await.unwrap() }).unwrap();
        feeder.join().unwrap();
        assert_eq!(sum, 5050);
    }

    #[test]
    fn a_peer_close_counts_as_readable_and_writable() {
        let reactor = Reactor::new().unwrap();
        let (client, server) = pair();
        let s = EdgeStream::new(server, &reactor).unwrap();
        s.begin_read();
        s.begin_write();
        drop(client);
        block_on(&reactor, &[], async {
            std::future::poll_fn(|cx| s.poll_readable(cx)).await;
            std::future::poll_fn(|cx| s.poll_writable(cx)).await;
        })
        .unwrap();
        assert_eq!(drain(&s), 0);
    }

    /// The `unsafe` prefetch takes any address: null, unmapped, freed,
    /// the top of the address space.
    #[test]
    fn prefetching_any_address_is_harmless() {
        let freed = {
            let b = Box::new([0u8; 256]);
            &*b as *const [u8; 256] as usize
        };
        for addr in [0, 1, 0xdead_0000, freed, usize::MAX - 10, usize::MAX] {
            prefetch::<TASK_LINES>(addr);
            prefetch::<1>(addr);
        }
    }

    #[test]
    fn a_socket_timer_fires_once_at_its_deadline_and_the_earliest_bounds_the_wait() {
        let reactor = Reactor::new().unwrap();
        let (_c1, s1) = pair();
        let (_c2, s2) = pair();
        let a = EdgeStream::new(s1, &reactor).unwrap();
        let b = EdgeStream::new(s2, &reactor).unwrap();
        let start = Instant::now();
        // Armed late, then earlier: the earlier deadline replaces it.
        a.set_timer(start + Duration::from_secs(3600));
        a.set_timer(start + Duration::from_millis(40));
        b.set_timer(start + Duration::from_secs(3600));
        assert_eq!(
            lock(&reactor.sources).timers.len(),
            2,
            "one entry per socket"
        );
        // Nothing else wakes this thread: the turn's wait must end by
        // itself at a's deadline.
        block_on(&reactor, &[], std::future::poll_fn(|cx| a.poll_timer(cx))).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(40), "not early");
        // Fired once: disarmed, and b's timer is the only one left.
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(a.poll_timer(&mut cx).is_pending());
        assert_eq!(lock(&reactor.sources).timers.len(), 1);
        // A closed socket takes its timer along.
        drop(b);
        assert!(lock(&reactor.sources).timers.is_empty());
        assert_eq!(reactor.next_timer.load(Ordering::Relaxed), NO_TIMER);
    }

    #[test]
    fn a_timer_already_due_fires_without_blocking() {
        let reactor = Reactor::new().unwrap();
        let (_c, s) = pair();
        let a = EdgeStream::new(s, &reactor).unwrap();
        // Due the moment it is armed.
        a.set_timer(Instant::now());
        block_on(&reactor, &[], std::future::poll_fn(|cx| a.poll_timer(cx))).unwrap();
        assert_eq!(
            until(10, 20).tv_nsec,
            0,
            "a passed deadline waits for nothing"
        );
        assert_eq!(
            until(1_000_001, 0).tv_nsec,
            2_000_000,
            "rounded up to the millisecond"
        );
    }

    #[test]
    fn keys_are_reused_and_a_stale_key_is_ignored() {
        let reactor = Reactor::new().unwrap();
        let (_c1, s1) = pair();
        let a = EdgeStream::new(s1, &reactor).unwrap();
        let key = a.key;
        assert_eq!(reactor.sockets.load(Ordering::Relaxed), 1);
        drop(a);
        assert_eq!(reactor.sockets.load(Ordering::Relaxed), 0);
        let (_c2, s2) = pair();
        let b = EdgeStream::new(s2, &reactor).unwrap();
        assert_eq!(b.key, key);
        assert_eq!(lock(&reactor.sources).slots.len(), 1);
        let (_c3, s3) = pair();
        let _c = EdgeStream::new(s3, &reactor).unwrap();
        assert_eq!(reactor.sockets.load(Ordering::Relaxed), 2, "counted");
    }
    /// Lets a reactor's owner count as asleep long enough to be served.
    fn asleep_long_enough() {
        std::thread::sleep(Duration::from_nanos(2 * STEAL_AFTER));
    }

    /// Events waiting in `r`'s epoll instance, taken without blocking.
    fn pending(r: &Reactor) -> Vec<u64> {
        let mut events = Vec::with_capacity(8);
        epoll::wait(&r.epoll, spare(&mut events), Some(&ZERO)).unwrap();
        events.iter().map(|e| e.data.u64()).collect()
    }

    #[test]
    fn an_idle_thread_serves_a_sibling_whose_thread_is_not_running() {
        // `a` has no thread at all: only its sibling can serve it.
        let a = Reactor::new().unwrap();
        let b = Reactor::new().unwrap();
        let (mut client, server) = pair();
        let s = EdgeStream::new(server, &a).unwrap();
        client.write_all(&[7; 100]).unwrap();
        let (tx, rx) = smol::channel::bounded::<(usize, std::thread::ThreadId)>(1);
        a.spawn(async move {
            let mut total = 0;
            while total < 100 {
                std::future::poll_fn(|cx| s.poll_readable(cx)).await;
                total += drain(&s);
            }
            let _ = tx.send((total, std::thread::current().id())).await;
        });
        let both = [Arc::clone(&a), Arc::clone(&b)];
        asleep_long_enough();
        // Bounded: without a thief the task would never run.
        let served = smol::future::or(async { rx.recv().await.ok() }, async {
            smol::Timer::after(Duration::from_secs(10)).await;
            None
        });
        let (got, on) = block_on(&b, &both, served)
            .unwrap()
            .expect("served within 10 s");
        assert_eq!(got, 100);
        assert_eq!(on, std::thread::current().id(), "run by b's thread");
        assert!(!a.owned.load(Ordering::Relaxed), "given back");
    }

    #[test]
    fn a_reactor_its_thread_runs_is_not_taken() {
        let a = Reactor::new().unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let r = Arc::clone(&ran);
        a.spawn(async move { r.store(true, Ordering::SeqCst) });
        let mut events = Vec::with_capacity(8);
        asleep_long_enough();
        a.owned.store(true, Ordering::Relaxed);
        assert!(!a.steal(&mut events), "owned: left alone");
        assert!(!ran.load(Ordering::SeqCst));
        a.owned.store(false, Ordering::Relaxed);
        // Asleep from a moment still ahead: however long this thread is
        // kept from its core here, not yet asleep for `STEAL_AFTER`.
        a.asleep_since
            .store(a.now() + 60_000_000_000, Ordering::Relaxed);
        assert!(!a.steal(&mut events), "just asleep: left alone");
        assert!(!ran.load(Ordering::SeqCst));
        a.asleep_since.store(a.now(), Ordering::Relaxed);
        asleep_long_enough();
        a.sockets.store(STEAL_MAX_SOCKETS + 1, Ordering::Relaxed);
        assert!(!a.steal(&mut events), "many sockets: left alone");
        assert!(!ran.load(Ordering::SeqCst));
        a.sockets.store(0, Ordering::Relaxed);
        assert!(a.steal(&mut events), "free: served");
        assert!(ran.load(Ordering::SeqCst));
        assert!(!a.steal(&mut events), "nothing left to do");
    }

    #[test]
    fn a_thief_leaves_the_owners_wake_up_and_wakes_it_for_an_earlier_timer() {
        let a = Reactor::new().unwrap();
        let mut events = Vec::with_capacity(8);
        asleep_long_enough();
        // The owner is asleep and its `block_on` future is woken: the
        // eventfd is for it, not for a sibling, and is no work to steal.
        a.sleeping.store(true, Ordering::SeqCst);
        a.wake();
        assert!(!a.steal(&mut events));
        assert_eq!(pending(&a), vec![NOTIFY_KEY], "still there for the owner");
        let mut drained = [0u8; 8];
        (&a.notify).read_exact(&mut drained).unwrap();
        a.notified.store(false, Ordering::SeqCst);
        // A task served by the thief arms a timer the owner's wait does not
        // allow for: the owner is woken to shorten its wait.
        let (_c, s) = pair();
        let s = EdgeStream::new(s, &a).unwrap();
        let _ = pending(&a);
        a.spawn(async move {
            s.set_timer(Instant::now() + Duration::from_secs(3600));
            std::future::pending::<()>().await;
        });
        assert!(a.steal(&mut events));
        assert_ne!(a.next_timer.load(Ordering::Relaxed), NO_TIMER);
        assert_eq!(pending(&a), vec![NOTIFY_KEY], "owner woken");
    }
}
