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
//! [`block_on`] runs an executor on the calling thread and waits in this
//! reactor's `epoll_wait` whenever the executor has nothing to run. A task
//! woken on this thread (the usual case: a socket event) costs an atomic
//! store; a wake-up from another thread (a push through a `ConnHandle`, a
//! timer, shutdown) writes the reactor's eventfd only if the thread is
//! asleep in `epoll_wait`. So a request costs its read, its write and a
//! share of one `epoll_wait`. Timers stay with async-io: the driver re-arms
//! them only when a deadline moves earlier, so they are off the hot path.

use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use atomic_waker::AtomicWaker;
use rustix::event::epoll;
use rustix::event::{eventfd, EventfdFlags};

/// The epoll key of the reactor's own eventfd.
const NOTIFY_KEY: u64 = u64::MAX;

/// Events taken from the kernel per `epoll_wait`.
const EVENTS_PER_WAIT: usize = 256;

/// One thread's reactor.
pub(crate) struct Reactor {
    epoll: OwnedFd,
    /// Written to wake the thread out of `epoll_wait`.
    notify: File,
    /// The thread is in (or about to enter) a blocking `epoll_wait`.
    sleeping: AtomicBool,
    /// A task was woken since the executor was last polled.
    notified: AtomicBool,
    sources: Mutex<Sources>,
}

/// Registered sockets by epoll key (their slot index).
#[derive(Default)]
struct Sources {
    slots: Vec<Option<Arc<Source>>>,
    free: Vec<usize>,
}

/// The readiness of one registered socket.
#[derive(Default)]
struct Source {
    readable: AtomicBool,
    writable: AtomicBool,
    /// The peer closed (or the socket failed): sticky. A short read no
    /// longer proves the socket drained, since the end of input that came
    /// with the last bytes brings no edge of its own.
    closed: AtomicBool,
    reader: AtomicWaker,
    writer: AtomicWaker,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
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
            notify: File::from(notify),
            sleeping: AtomicBool::new(false),
            notified: AtomicBool::new(false),
            sources: Mutex::new(Sources::default()),
        }))
    }

    /// Waits for events (blocking only if no task was woken meanwhile)
    /// and hands them to the sockets' flags and wakers.
    fn turn(&self, events: &mut Vec<epoll::Event>, wakers: &mut Vec<Waker>) -> io::Result<()> {
        let block = !self.notified.swap(false, Ordering::SeqCst);
        let timeout = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        events.clear();
        if block {
            self.sleeping.store(true, Ordering::SeqCst);
            // A wake-up that saw `sleeping` still false set `notified`
            // instead of writing the eventfd: look once more.
            let wait = if self.notified.load(Ordering::SeqCst) {
                Some(&timeout)
            } else {
                None
            };
            let result = epoll::wait(&self.epoll, spare(events), wait);
            self.sleeping.store(false, Ordering::SeqCst);
            retry_interrupted(result)?;
        } else {
            retry_interrupted(epoll::wait(&self.epoll, spare(events), Some(&timeout)))?;
        }
        {
            let sources = lock(&self.sources);
            for event in events.iter() {
                let key = event.data.u64();
                if key == NOTIFY_KEY {
                    let mut drain = [0u8; 8];
                    let _ = (&self.notify).read(&mut drain);
                    continue;
                }
                let Some(Some(source)) =
                    usize::try_from(key).ok().and_then(|k| sources.slots.get(k))
                else {
                    // Deregistered while the event was in flight.
                    continue;
                };
                let flags = event.flags;
                let closed = flags.intersects(
                    epoll::EventFlags::HUP | epoll::EventFlags::ERR | epoll::EventFlags::RDHUP,
                );
                if closed {
                    source.closed.store(true, Ordering::SeqCst);
                }
                if closed || flags.contains(epoll::EventFlags::IN) {
                    source.readable.store(true, Ordering::SeqCst);
                    wakers.extend(source.reader.take());
                }
                if closed || flags.contains(epoll::EventFlags::OUT) {
                    source.writable.store(true, Ordering::SeqCst);
                    wakers.extend(source.writer.take());
                }
            }
        }
        // Woken outside the lock: a waker may be the last reference to a
        // task whose socket deregisters as it drops.
        for w in wakers.drain(..) {
            w.wake();
        }
        Ok(())
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

/// Wakes the executor loop of [`block_on`].
struct Notifier(Arc<Reactor>);

impl Wake for Notifier {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let r = &self.0;
        if !r.notified.swap(true, Ordering::SeqCst) && r.sleeping.load(Ordering::SeqCst) {
            // A full eventfd counter (never, at one write per sleep) would
            // only mean the thread is already due to wake.
            let _ = (&r.notify).write(&1u64.to_ne_bytes());
        }
    }
}

/// Runs `future` on the calling thread, waiting in `reactor` whenever it
/// is pending. Meant for `executor.run(..)`: the executor's tasks then run
/// between turns of the reactor, on this thread. An `epoll_wait` that
/// fails (it cannot, short of a bad descriptor) falls back to polling the
/// future again after a yield, so the thread never spins on an error
/// silently: the error is returned.
pub(crate) fn block_on<T>(
    reactor: &Arc<Reactor>,
    future: impl Future<Output = T>,
) -> io::Result<T> {
    let waker = Waker::from(Arc::new(Notifier(Arc::clone(reactor))));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let mut events = Vec::with_capacity(EVENTS_PER_WAIT);
    let mut wakers = Vec::with_capacity(EVENTS_PER_WAIT);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return Ok(v);
        }
        reactor.turn(&mut events, &mut wakers)?;
    }
}

/// A non-blocking TCP socket registered with a [`Reactor`], edge-triggered,
/// for its whole life. The connection task reads and writes through
/// [`get_ref`](Self::get_ref) and keeps the readiness flags honest with
/// [`begin_read`](Self::begin_read), [`still_readable`](Self::still_readable)
/// and [`begin_write`](Self::begin_write).
pub(crate) struct EdgeStream {
    stream: TcpStream,
    reg: Arc<Registration>,
}

/// What an [`EdgeStream`] needs beyond its socket, behind one pointer so
/// an idle connection's task stays small.
struct Registration {
    source: Arc<Source>,
    key: usize,
    reactor: Arc<Reactor>,
}

impl EdgeStream {
    /// Makes `stream` non-blocking and registers it with `reactor`.
    pub(crate) fn new(stream: TcpStream, reactor: &Arc<Reactor>) -> io::Result<EdgeStream> {
        stream.set_nonblocking(true)?;
        let source = Arc::new(Source::default());
        let key = {
            let mut s = lock(&reactor.sources);
            match s.free.pop() {
                Some(k) => {
                    s.slots[k] = Some(Arc::clone(&source));
                    k
                }
                None => {
                    s.slots.push(Some(Arc::clone(&source)));
                    s.slots.len() - 1
                }
            }
        };
        let reg = Arc::new(Registration {
            source,
            key,
            reactor: Arc::clone(reactor),
        });
        let flags = epoll::EventFlags::IN
            | epoll::EventFlags::OUT
            | epoll::EventFlags::RDHUP
            | epoll::EventFlags::ET;
        if let Err(e) = epoll::add(
            &reactor.epoll,
            &stream,
            epoll::EventData::new_u64(key as u64),
            flags,
        ) {
            reg.release();
            return Err(e.into());
        }
        Ok(EdgeStream { stream, reg })
    }

    /// The socket, for reads and writes.
    pub(crate) fn get_ref(&self) -> &TcpStream {
        &self.stream
    }

    /// A read pass that goes on until the socket is drained begins: the
    /// next readiness must come from an event after this point.
    pub(crate) fn begin_read(&self) {
        self.reg.source.readable.store(false, Ordering::SeqCst);
    }

    /// The read pass stopped before the socket was drained (no room): it
    /// is still readable.
    pub(crate) fn still_readable(&self) {
        self.reg.source.readable.store(true, Ordering::SeqCst);
    }

    /// Whether an event said the peer closed: read on to end of input (or
    /// `WouldBlock`), a short read does not end the pass.
    pub(crate) fn peer_closed(&self) -> bool {
        self.reg.source.closed.load(Ordering::SeqCst)
    }

    /// A write pass begins; if it blocks, the next writability must come
    /// from an event after this point.
    pub(crate) fn begin_write(&self) {
        self.reg.source.writable.store(false, Ordering::SeqCst);
    }

    /// Ready once an event said readable (or closed) since the last
    /// [`begin_read`](Self::begin_read).
    pub(crate) fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        let s = &self.reg.source;
        poll_flag(&s.readable, &s.reader, cx)
    }

    /// Ready once an event said writable (or closed) since the last
    /// [`begin_write`](Self::begin_write).
    pub(crate) fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<()> {
        let s = &self.reg.source;
        poll_flag(&s.writable, &s.writer, cx)
    }
}

fn poll_flag(flag: &AtomicBool, waker: &AtomicWaker, cx: &mut Context<'_>) -> Poll<()> {
    if flag.load(Ordering::SeqCst) {
        return Poll::Ready(());
    }
    waker.register(cx.waker());
    if flag.load(Ordering::SeqCst) {
        Poll::Ready(())
    } else {
        Poll::Pending
    }
}

impl Registration {
    /// Frees the epoll key.
    fn release(&self) {
        let mut s = lock(&self.reactor.sources);
        if let Some(slot) = s.slots.get_mut(self.key) {
            *slot = None;
            s.free.push(self.key);
        }
    }
}

impl Drop for EdgeStream {
    fn drop(&mut self) {
        // Before the descriptor closes, so no event can name a reused
        // key; an error only means the descriptor is gone already.
        let _ = epoll::delete(&self.reg.reactor.epoll, self.stream.as_fd());
        self.reg.release();
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
            let got = block_on(&reactor, async {
                std::future::poll_fn(|cx| s.poll_readable(cx)).await;
                drain(&s)
            })
            .unwrap();
            // Loopback may deliver the bytes in more than one segment:
            // wait for the rest the same way.
            let mut total = got;
            while total < 100 {
                total += block_on(&reactor, async {
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
        let waker = Arc::new(AtomicWaker::new());
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
            std::future::poll_fn(|cx| poll_flag(&flag, &waker, cx)),
        )
        .unwrap();
        t.join().unwrap();
    }

    #[test]
    fn a_peer_close_counts_as_readable_and_writable() {
        let reactor = Reactor::new().unwrap();
        let (client, server) = pair();
        let s = EdgeStream::new(server, &reactor).unwrap();
        s.begin_read();
        s.begin_write();
        drop(client);
        block_on(&reactor, async {
            std::future::poll_fn(|cx| s.poll_readable(cx)).await;
            std::future::poll_fn(|cx| s.poll_writable(cx)).await;
        })
        .unwrap();
        assert_eq!(drain(&s), 0);
    }

    #[test]
    fn keys_are_reused_and_a_stale_key_is_ignored() {
        let reactor = Reactor::new().unwrap();
        let (_c1, s1) = pair();
        let a = EdgeStream::new(s1, &reactor).unwrap();
        let key = a.reg.key;
        drop(a);
        let (_c2, s2) = pair();
        let b = EdgeStream::new(s2, &reactor).unwrap();
        assert_eq!(b.reg.key, key);
        assert_eq!(lock(&reactor.sources).slots.len(), 1);
    }
}
