//! A connection's socket: on async-io, or (Linux, [`Layout::PerThread`](crate::Layout::PerThread),
//! no TLS) on the driver's own edge-triggered reactor.

use std::net::TcpStream;
use std::task::{Context, Poll};

use smol::Async;

/// A connection's socket and how its readiness is learned.
pub(crate) enum Io {
    /// Registered with async-io (one-shot: each wait re-arms).
    Async(Async<TcpStream>),
    /// Registered once, edge-triggered, with its thread's reactor.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Edge(crate::edge::EdgeStream),
}

impl Io {
    /// The socket, for reads and writes.
    pub(crate) fn get_ref(&self) -> &TcpStream {
        match self {
            Io::Async(s) => s.get_ref(),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Io::Edge(s) => s.get_ref(),
        }
    }

    /// The async-io socket, if this is one (the TLS handshake awaits
    /// async-io readiness; TLS connections are always made on async-io).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn as_async(&self) -> Option<&Async<TcpStream>> {
        match self {
            Io::Async(s) => Some(s),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Io::Edge(_) => None,
        }
    }

    /// A read pass that drains the socket begins (edge: clear the flag).
    pub(crate) fn begin_read(&self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Io::Edge(s) = self {
            s.begin_read();
        }
    }

    /// The read pass stopped with bytes possibly left in the socket.
    pub(crate) fn still_readable(&self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Io::Edge(s) = self {
            s.still_readable();
        }
    }

    /// Whether a short read may still leave an end of input unread (edge:
    /// the peer closed; async-io reports it on the next wait anyway).
    pub(crate) fn peer_closed(&self) -> bool {
        match self {
            Io::Async(_) => false,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Io::Edge(s) => s.peer_closed(),
        }
    }

    /// A write pass begins (edge: clear the flag).
    pub(crate) fn begin_write(&self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Io::Edge(s) = self {
            s.begin_write();
        }
    }

    /// Ready when the socket can take bytes (or failed: the write says).
    pub(crate) fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<()> {
        match self {
            Io::Async(s) => s.poll_writable(cx).map(|_| ()),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Io::Edge(s) => s.poll_writable(cx),
        }
    }
}
