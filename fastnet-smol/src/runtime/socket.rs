//! A connection's socket and its timer: on async-io, or (Linux,
//! [`Layout::PerThread`](crate::Layout::PerThread), no TLS) on the
//! edge-triggered reactor of its thread. The connection task sees one type
//! either way; which one it is stays in here.

use std::future::Future;
use std::net::TcpStream;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use smol::{Async, Timer};

#[cfg(any(target_os = "linux", target_os = "android"))]
use super::edge::{EdgeStream, Reactor};

/// A connection's socket and how its readiness is learned.
///
/// Reads and writes go to the plain [`TcpStream`] ([`get_ref`](Self::get_ref));
/// around a pass that drains the socket the task calls
/// [`begin_read`](Self::begin_read) / [`still_readable`](Self::still_readable)
/// / [`peer_closed`](Self::peer_closed), and before a write pass
/// [`begin_write`](Self::begin_write), which keep the edge reactor's
/// readiness flags exact and cost nothing on async-io.
pub(crate) struct Socket(Kind);

/// Where the socket's readiness comes from: matched statically here, so the
/// per-event path has no indirection.
enum Kind {
    /// Registered with async-io (one-shot: each wait re-arms), with an
    /// async-io timer made the first time one is armed (boxed: most
    /// connections never arm one, and the edge reactor keeps its own).
    Async(Async<TcpStream>, Option<Box<Timer>>),
    /// Registered once, edge-triggered, with its thread's reactor.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Edge(EdgeStream),
}

/// One wait for readability, as the task polls it until it wakes.
///
/// On async-io it records that read interest was registered. A later poll
/// of the same wait with no other cause (no signal, timer or writability)
/// means the reactor woke the task for the socket, so it is taken as
/// readable without asking async-io again: async-io confirms readiness only
/// if the event came in a later reactor turn than the one during which
/// interest was registered, and otherwise re-arms the socket (one more
/// `epoll_ctl`) and waits for one more turn. With a thread parked in
/// `epoll_wait` while another registers, that is most waits. A wrong guess
/// costs one read that finds nothing (then the wait re-arms as usual). The
/// edge reactor's flag is exact and needs none of this.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ReadWait {
    armed: bool,
}

impl Socket {
    /// Registers `stream` with async-io (which makes it non-blocking).
    pub(crate) fn on_async_io(stream: TcpStream) -> std::io::Result<Socket> {
        Async::new(stream).map(|s| Socket(Kind::Async(s, None)))
    }

    /// Registers `stream` with `reactor` for the socket's whole life.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn on_reactor(
        stream: TcpStream,
        reactor: &std::sync::Arc<Reactor>,
    ) -> std::io::Result<Socket> {
        EdgeStream::new(stream, reactor).map(|s| Socket(Kind::Edge(s)))
    }

    /// The socket, for reads and writes.
    #[inline]
    pub(crate) fn get_ref(&self) -> &TcpStream {
        match &self.0 {
            Kind::Async(s, _) => s.get_ref(),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Kind::Edge(s) => s.get_ref(),
        }
    }

    /// The async-io socket, if this is one (the TLS handshake awaits
    /// async-io readiness; TLS connections are always made on async-io).
    pub(crate) fn as_async(&self) -> Option<&Async<TcpStream>> {
        match &self.0 {
            Kind::Async(s, _) => Some(s),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Kind::Edge(_) => None,
        }
    }

    /// Asks the reactor to fetch the memory at `addr` (what the task touches
    /// on every wake-up) into the cache ahead of waking the task for an
    /// event. A hint: any address will do; async-io takes no hints.
    pub(crate) fn prefetch_also(&self, addr: usize) {
        match &self.0 {
            Kind::Async(..) => {}
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Kind::Edge(s) => s.prefetch_also(addr),
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = addr;
    }

    /// A read pass that drains the socket begins (edge: clear the flag).
    #[inline]
    pub(crate) fn begin_read(&self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Kind::Edge(s) = &self.0 {
            s.begin_read();
        }
    }

    /// The read pass stopped with bytes possibly left in the socket.
    #[inline]
    pub(crate) fn still_readable(&self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Kind::Edge(s) = &self.0 {
            s.still_readable();
        }
    }

    /// Whether a short read may still leave an end of input unread (edge:
    /// the peer closed; async-io reports it on the next wait anyway).
    #[inline]
    pub(crate) fn peer_closed(&self) -> bool {
        match &self.0 {
            Kind::Async(..) => false,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Kind::Edge(s) => s.peer_closed(),
        }
    }

    /// A write pass begins (edge: clear the flag).
    #[inline]
    pub(crate) fn begin_write(&self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Kind::Edge(s) = &self.0 {
            s.begin_write();
        }
    }

    /// Ready when the socket may have bytes to read (see [`ReadWait`]);
    /// `other_cause` says this poll of `wait` has another reason to wake
    /// (a signal, the timer, writability).
    #[inline]
    pub(crate) fn poll_readable(
        &self,
        cx: &mut Context<'_>,
        wait: &mut ReadWait,
        other_cause: bool,
    ) -> Poll<()> {
        match &self.0 {
            Kind::Async(s, _) => {
                let woken_by_socket = wait.armed && !other_cause;
                if woken_by_socket || s.poll_readable(cx).is_ready() {
                    Poll::Ready(())
                } else {
                    wait.armed = true;
                    Poll::Pending
                }
            }
            // The flag is exact: set by an event since the last read pass
            // began.
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Kind::Edge(s) => s.poll_readable(cx),
        }
    }

    /// Arms the connection's timer for `at`, replacing the one armed.
    pub(crate) fn set_timer(&mut self, at: Instant) {
        match &mut self.0 {
            Kind::Async(_, timer) => match timer {
                Some(t) => t.set_at(at),
                None => *timer = Some(Box::new(Timer::at(at))),
            },
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Kind::Edge(s) => s.set_timer(at),
        }
    }

    /// Ready once the armed timer fired (which disarms it); pending, and
    /// never woken for it, while none is armed.
    #[inline]
    pub(crate) fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.0 {
            Kind::Async(_, Some(t)) => Pin::new(&mut **t).poll(cx).map(|_| ()),
            Kind::Async(_, None) => Poll::Pending,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Kind::Edge(s) => s.poll_timer(cx),
        }
    }

    /// Ready when the socket can take bytes (or failed: the write says).
    #[inline]
    pub(crate) fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<()> {
        match &self.0 {
            Kind::Async(s, _) => s.poll_writable(cx).map(|_| ()),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Kind::Edge(s) => s.poll_writable(cx),
        }
    }
}
