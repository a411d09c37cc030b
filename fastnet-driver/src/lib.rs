//! # fastnet-driver
//!
//! What both fastnet drivers (`fastnet-std`, blocking, and `fastnet-smol`,
//! async) need and neither owns: the std-level pieces that sit between the
//! sans-IO core (`fastnet-proto`, which has no `std`) and a driver's way of
//! waiting (OS threads or an executor): the server's shared state and
//! settings ([`server`]), the buffer pool ([`buffers`]), client framing and
//! pool bookkeeping ([`client`]). Nothing here spawns or awaits, and only
//! [`server::Core::wait_drained`] (for the blocking driver) blocks;
//! everything here is written once so the two drivers cannot drift.
//!
//! Application code does not depend on this crate directly: each driver
//! re-exports the types its users see.
//!
//! ```
//! use std::sync::Mutex;
//! use fastnet_driver::sync::lock;
//!
//! let m = Mutex::new(1);
//! *lock(&m) += 1;
//! assert_eq!(*lock(&m), 2);
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod buffers;
pub mod client;
pub mod conn;
pub mod server;
pub mod socket;
pub mod sync;
pub mod tls;
pub mod trace;
