//! # fastnet-smol
//!
//! The async driver of fastnet, on smol / async-io.
#![forbid(unsafe_code)]

mod client;
mod conn;
mod handle;
mod handler;
mod pool;
mod server;

pub use client::{Client, Pool, PoolConfig, Pooled};
pub use handle::{ConnHandle, ConnInfo, SendError};
pub use handler::{Ctx, Handler};
pub use server::{Server, ServerBuilder, ShutdownHandle};

pub use fastnet_proto::codec::CodecSpec;
pub use fastnet_proto::connection::{CloseReason, Limits};
pub use fastnet_proto::server::{RejectReason, ServerConfig, ServerStats, StatsSnapshot};
