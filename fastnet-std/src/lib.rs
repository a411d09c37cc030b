//! # fastnet-std
//!
//! The blocking fastnet driver: framed TCP servers and clients on
//! `std::net`, with every protocol decision (framing, limits, timeouts,
//! backpressure, orderly close) taken by the sans-IO
//! [`Connection`](fastnet_proto::Connection) of `fastnet-proto`. This crate
//! only moves bytes and time.
//!
//! ```
//! use std::time::Duration;
//! use fastnet_proto::codec::CodecSpec;
//! use fastnet_std::{Client, ConnInfo, Ctx, Handler, Server};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     type State = ();
//!     fn on_connect(&self, _info: &ConnInfo) -> Option<()> {
//!         Some(())
//!     }
//!     fn on_frame(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) {
//!         let _ = ctx.send(frame);
//!     }
//! }
//!
//! let codec = CodecSpec::lines(1024);
//! let server = Server::builder(codec).addr("127.0.0.1:0").bind()?;
//! let addr = server.local_addr();
//! let shutdown = server.shutdown_handle();
//! let serving = std::thread::spawn(move || server.serve(Echo));
//!
//! let mut client = Client::connect(addr, codec, Duration::from_secs(1))?;
//! client.send(b"hello")?;
//! assert_eq!(client.recv()?, Some(&b"hello"[..]));
//!
//! shutdown.shutdown(Duration::from_secs(1));
//! let stats = serving.join().unwrap()?;
//! assert_eq!((stats.accepted, stats.frames_in), (1, 1));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## Server
//!
//! [`Server::builder`] takes the codec ([`CodecSpec`])
//! and the settings of [`ServerConfig`];
//! [`Server::serve`] runs the accept loop on the calling thread with a
//! [`Handler`].
//!
//! - **Workers.** Each connection is served start to end by one pooled OS
//!   thread running the connection's driver loop: blocking `read` (with the
//!   socket's read timeout set from the connection's next deadline, so idle
//!   and read timeouts fire on time), frames to the handler, replies out
//!   with one vectored write. A finished worker waits for the next
//!   connection and exits after `worker_idle_expiry` without one. A thread
//!   is spawned only when no worker is idle and the pool is below its
//!   limit; when every worker is busy, the new connection is closed at once
//!   and reported as [`RejectReason::WorkersBusy`]:
//!   the accept loop never waits for a worker.
//! - **Admission.** `max_connections` and `max_connections_per_ip` (IPv6
//!   included) are checked before a worker is involved.
//! - **Buffers.** Receive and reply buffers are fixed-size and recycled
//!   across connections; serving frames allocates nothing. A connection
//!   quiet between frames for 200 ms gives its buffers back until bytes
//!   or a push arrive, so an idle connection costs its worker's stack.
//! - **Stats.** [`Server::stats`] counts connections (accepted, rejected
//!   and closed by reason) and traffic, added once per wake-up rather than
//!   per frame.
//! - **Push.** [`Ctx::handle`] gives a [`ConnHandle`] that other threads
//!   use to send frames to the connection. A push never touches the socket
//!   and never blocks: it is encoded into the connection's push queue
//!   (bounded in bytes by `push_queue`; [`SendError::Full`] beyond) and
//!   wakes the worker, which from the first handle on waits for its socket
//!   and a wake-up pair together (`poll` on Unix). The worker moves pushed
//!   frames into the connection, where they leave like replies: counted,
//!   held back by the high-water mark, and written by the worker alone, so
//!   frames never interleave. Frames still queued when the connection
//!   closes are counted ([`ConnHandle::undelivered`],
//!   [`StatsSnapshot::pushes_dropped`]).
//! - **Shutdown.** [`ShutdownHandle::shutdown`] sets a flag and connects
//!   to the listener to wake the blocking `accept`. The accept loop then
//!   stops accepting and wakes every connection by shutting down the read
//!   side of its socket (a blocked `read` returns at once; bytes already
//!   received are still read and answered). Each connection then flushes
//!   its queued replies and closes with
//!   [`CloseReason::Local`].
//!   Shortly before the deadline, connections still open are shut down
//!   both ways, which also breaks a `write` blocked on a peer that does not
//!   read; `serve` returns within the deadline.
//!
//! ## Client
//!
//! [`Client`] is one blocking framed connection; [`Pool`] keeps reusable
//! clients to one server (max size, max idle, idle expiry, connect
//! timeout, waiting timeout; broken connections are discarded).
//!
//! ## TLS
//!
//! With the `tls` feature (rustls on its `ring` provider; no OpenSSL, no
//! cmake), [`ServerBuilder::tls`] serves TLS,
//! [`Client::connect_tls`] and [`Pool::with_tls`] connect over it; see the
//! [`tls`] module. TLS is a byte transform between the socket and the
//! connection state machine: the worker decrypts what it reads into the
//! connection's receive buffer, and encrypts every batch of replies and
//! pushes (which reach it through the reply ring) at once, so they leave in
//! one write. At most `max_handshakes` handshakes run at once (more are
//! refused at accept). The handshake runs on
//! the worker before the first frame, within a handshake timeout; a failed
//! one closes only that connection ([`Handler::on_tls_error`], then
//! [`CloseReason::Tls`] with the alert).
//!
//! Nothing in this crate prints: errors are values, close reasons go to
//! [`Handler::on_close`] and the statistics.
//!
//! With feature `tracing`, each connection runs in a `conn` span (its id
//! and peer) and its accept, refusal, close and TLS failure are `tracing`
//! events with target `fastnet` (listed in `fastnet_driver::trace`); a
//! subscriber decides what becomes of them.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod conn;
mod handle;
mod handler;
mod pool;
mod server;
#[cfg(feature = "tls")]
pub mod tls;
mod wake;
mod workers;

pub use client::Client;
pub use fastnet_driver::conn::ConnHandle;
pub use fastnet_proto::connection::SendError;
pub use handler::{ConnInfo, Ctx, Handler};
pub use pool::{Pool, PoolConfig, PoolStats, Pooled};
pub use server::{Server, ServerBuilder, ShutdownHandle};
pub use workers::WorkerPool;

pub use fastnet_proto::codec::CodecSpec;
pub use fastnet_proto::connection::{CloseReason, Limits};
pub use fastnet_proto::server::{RejectReason, ServerConfig, ServerStats, StatsSnapshot};

/// This crate's README (its page on crates.io), run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
