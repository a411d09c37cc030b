//! The side-by-side echo benchmark of fastnet's servers against peers.
//!
//! Binaries:
//!
//! - `peer-tokio-framed`, `peer-tokio-raw`, `peer-mio`, `peer-std`: echo
//!   servers written the way their own documentation recommends, each
//!   binding `127.0.0.1:PORT` (or any `ADDR`) from its command line,
//!   printing `listening on ADDR` and exiting on SIGTERM or SIGINT;
//! - `bench-echo`: the harness. It starts every server in turn as a child
//!   process, loads it with `fastnet bench --json`, reads the server's CPU
//!   time and memory from `/proc`, measures memory per idle connection, and
//!   writes the tables into `BENCHMARKS.md` and a chart as SVG.
//!
//! One command builds and runs it all:
//!
//! ```sh
//! cargo build --release -p fastnet-cli -p fastnet-bench-echo && target/release/bench-echo
//! ```
//!
//! The modules are the harness's pieces, public so the binaries and the
//! smoke test share them.

pub mod idle;
pub mod load;
pub mod machine;
pub mod peer;
pub mod procfs;
pub mod report;
pub mod servers;
pub mod stats;
pub mod svg;
pub mod syscalls;
