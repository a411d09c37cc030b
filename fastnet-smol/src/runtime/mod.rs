//! The runtime under the server: where connection tasks run and how their
//! sockets learn readiness. The connection task and the server reach it
//! only through what this module names:
//!
//! - [`Socket`]: a connection's socket (reads, writes, readiness), on
//!   async-io or on its thread's edge-triggered reactor; [`ReadWait`] is
//!   one wait for readability on it.
//! - [`Spawn`]: a place for the next connection ([`Spawn::place`]), its
//!   socket registered there ([`Place::register`](layout::Place::register)),
//!   its task spawned there;
//!   [`OnExecutor`] and [`Global`] place everything on one executor.
//! - [`run`]: starts the threads of [`Executors`] and serves on them.
//!
//! On Linux and Android (`edge.rs`) each thread of
//! [`Executors::PerThread`] may get an edge-triggered epoll reactor of its
//! own, which is also the thread's executor; everywhere else, and for
//! sockets the reactor does not take (TLS), sockets are on async-io. Which
//! one a socket is on is matched inside [`Socket`], statically.

#[cfg(any(target_os = "linux", target_os = "android"))]
mod edge;
mod layout;
mod socket;

pub(crate) use layout::{run, Executors, Global, OnExecutor, Spawn};
pub(crate) use socket::{ReadWait, Socket};
