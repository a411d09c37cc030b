//! The side-by-side echo benchmark of fastnet's servers against peers.
//!
//! Binaries:
//!
//! - `peer-tokio-framed`, `peer-tokio-raw`, `peer-mio`, `peer-std`: echo
//!   servers written the way their own documentation recommends, each
//!   binding `127.0.0.1:PORT` (or any `ADDR`) from its command line,
//!   printing `listening on ADDR` and exiting on SIGTERM or SIGINT;
//! - `peer-tokio-rustls`: `peer-tokio-framed` over tokio-rustls, taking the
//!   certificate chain and key PEM files after the address;
//! - `peer-uring` (Linux): raw echo on io_uring, run only when named
//!   (`--servers uring`), to compare completion-based IO with epoll;
//! - `peer-tokio-fastnet`: `peer-tokio-framed` with fastnet-tokio's codec
//!   over fastnet's length field codec, run only when named
//!   (`--servers tokio-framed,tokio-fastnet`), to compare the codecs alone;
//! - `peer-mio --max-frame N`: the framed floor, mio raw plus the least
//!   any framed echo does (`len=u32be`), run only when named
//!   (`--servers mio,mio-framed,fastnet-smol`), to show what framing costs
//!   at the least; `peer-std --max-frame N`, the same floor on a thread
//!   per connection (`--servers std,std-framed,fastnet-std`);
//! - `bench-echo`: the harness. It starts every server in turn as a child
//!   process, loads it with `fastnet bench --json`, reads the server's CPU
//!   time and memory from `/proc`, measures memory per idle connection,
//!   compares fastnet-smol with TLS against tokio-rustls on a throwaway
//!   certificate, and writes the tables into `BENCHMARKS.md` and a chart as
//!   SVG.
//!
//! One command builds and runs it all (see [`BUILD_COMMAND`]):
//!
//! ```sh
//! cargo build --release -p fastnet-cli -p fastnet-bench-echo -p fastnet-smol --bins --example bench_server && target/release/bench-echo
//! ```
//!
//! A full run also keeps every run's figures in `bench/echo-results.json`,
//! from which `bench-echo --render bench/echo-results.json` writes the
//! report again without measuring.
//!
//! The modules are the harness's pieces, public so the binaries and the
//! smoke test share them.

/// Builds every binary the harness runs, in release mode: `fastnet`, the
/// peers and the harness, and fastnet-smol's `bench_server` example (the
/// shared-executor layout, an extra row of the tables).
pub const BUILD_COMMAND: &str = "cargo build --release -p fastnet-cli -p fastnet-bench-echo -p fastnet-smol --bins --example bench_server";

pub mod idle;
pub mod load;
pub mod machine;
pub mod peer;
pub mod procfs;
pub mod report;
pub mod results_file;
pub mod servers;
pub mod stats;
pub mod svg;
pub mod syscalls;
pub mod tls;
