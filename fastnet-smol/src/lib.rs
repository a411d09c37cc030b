//! # fastnet-smol
//!
//! The async driver of fastnet, on smol / async-io: a framed TCP server,
//! a client and a client pool. All protocol logic (framing, limits,
//! timeouts, backpressure, orderly close) lives in the sans-IO
//! [`fastnet_proto::Connection`]; this crate moves bytes and timers.
//!
//! ```
//! use std::time::Duration;
//! use fastnet_smol::{Client, CodecSpec, ConnInfo, Ctx, Handler, Server};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     type State = ();
//!     fn on_connect(&self, _info: &ConnInfo) -> Option<()> {
//!         Some(())
//!     }
//!     async fn on_frame(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) {
//!         let _ = ctx.send(frame);
//!     }
//! }
//!
//! let server = Server::builder(CodecSpec::lines(1024)).bind()?; // 127.0.0.1:0
//! let addr = server.local_addr();
//! let shutdown = server.shutdown_handle();
//! let serving = std::thread::spawn(move || server.run(Echo));
//!
//! smol::block_on(async {
//!     let mut client = Client::connect(addr, CodecSpec::lines(1024), Duration::from_secs(5)).await?;
//!     client.send(b"hello").await?;
//!     assert_eq!(client.recv().await?, Some(&b"hello"[..]));
//!     std::io::Result::Ok(())
//! })?;
//!
//! shutdown.shutdown(Duration::from_secs(1));
//! let stats = serving.join().unwrap()?;
//! assert_eq!(stats.frames_in, 1);
//! # std::io::Result::Ok(())
//! ```
//!
//! ## How a connection is driven
//!
//! Each connection is one task. Per wake-up it reads until the socket is
//! drained (a read that fills less than the buffer ends it, so no read is
//! spent on `WouldBlock`), lends every complete frame to the handler
//! straight from the receive buffer (no copy), first as a plain call to
//! [`Handler::on_frame_now`], then, if the handler declines it there, to
//! [`Handler::on_frame`] (the frame stays valid across its `.await`s),
//! and writes the replies to all of them with one vectored write
//! (`TCP_NODELAY` is on by default); only replies reaching the high-water
//! mark make it write between frames. Frames that arrive together with
//! EOF, or within the per-connection byte limit, are answered before the
//! connection closes. Traffic is added to [`ServerStats`] once per
//! wake-up.
//!
//! On Linux, [`Server::run`] with the default [`Layout::PerThread`] gives
//! each thread an edge-triggered epoll reactor of its own, which is also
//! that thread's executor: a socket is registered once, when accepted, and
//! a woken connection runs on its thread without touching any state shared
//! with other threads. At 512-byte ping-pong a request then costs a read, a
//! write and a share of one `epoll_wait` (about 2.3 system calls, as many
//! as a raw mio server). The per-event path takes no lock and no atomic
//! read-modify-write, and the reactor prefetches each turn's connection
//! memory, which at a thousand busy connections is otherwise cold: that
//! prefetch is the crate's one `unsafe` block (a `#[target_feature]`
//! intrinsic that cannot fault; see `runtime/edge.rs`). Elsewhere (TLS
//! servers, [`Layout::Shared`], [`Server::serve_on`], [`Server::serve`],
//! other platforms) sockets are on async-io, which arms a socket one-shot,
//! so every wait costs one `epoll_ctl`; there the driver takes a wake-up
//! from the reactor as readable instead of asking async-io again, and a
//! request costs about four system calls. Which of the two a connection's
//! socket is on is known only inside `runtime/`: the connection task and
//! the server see one socket type and ask the runtime where a connection
//! goes.
//!
//! Receive and reply buffers come from a pool (one stack per thread) only
//! while a connection has bytes in flight: once a read's replies are
//! written and no partial frame is buffered, the connection's storage is
//! parked and goes back to the pool, so idle connections hold no buffers. An idle connection costs
//! about 1.4 KiB of server memory (`examples/idle_memory.rs` measures it).
//!
//! [`Server::run`] starts one executor per thread by default and places
//! each connection on one of them in turn ([`Layout`]).
//!
//! Pushes from other tasks or threads go through a [`ConnHandle`] into a
//! per-connection queue bounded in bytes ([`SendError::Full`] when it is
//! full, at once); the task moves them into the connection, where they
//! leave like replies. `examples/chat.rs` broadcasts this way.
//!
//! With feature `tls`, [`ServerBuilder::tls`], [`Client::connect_tls`] and
//! [`Pool::with_tls`] speak TLS (rustls on `ring`; see the [`tls`] module):
//! the task drives the rustls session itself, so the replies of a wake-up
//! still leave in one write and idle plain connections still park their
//! buffers.
//!
//! With feature `tracing`, each connection runs in a `conn` span (its id
//! and peer) and its accept, refusal, close and TLS failure are `tracing`
//! events with target `fastnet` (listed in `fastnet_driver::trace`); a
//! subscriber decides what becomes of them.
//!
//! Timeouts (idle, read, write stall, drain) come from
//! [`fastnet_proto::Connection::poll_timeout`] and are waited for with one
//! timer per connection, kept by the thread's edge reactor (or, on
//! async-io, an async-io `Timer` made the first time one is armed), re-armed
//! only when the deadline moves earlier or fires, so traffic does not touch
//! the timer set.
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod conn;
mod handle;
mod handler;
mod pool;
mod runtime;
mod server;
mod sync;
#[cfg(feature = "tls")]
pub mod tls;

pub use client::Client;
pub use fastnet_driver::conn::ConnHandle;
pub use fastnet_proto::connection::SendError;
pub use handler::{ConnInfo, Ctx, Handler};
pub use pool::{Pool, PoolConfig, PoolStats, Pooled};
pub use server::{Layout, Server, ServerBuilder, ShutdownHandle};

pub use fastnet_proto::codec::CodecSpec;
pub use fastnet_proto::connection::{CloseReason, Limits};
pub use fastnet_proto::server::{RejectReason, ServerConfig, ServerStats, StatsSnapshot};

/// This crate's README (its page on crates.io), run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
