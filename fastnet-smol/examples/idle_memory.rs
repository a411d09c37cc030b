//! Run: cargo run --release -p fastnet-smol --example idle_memory -- [N] [--layout shared|per-core]
//! (N defaults to 10000; the open-file limit must allow N sockets.)
//!
//! Resident memory per idle connection, measured from outside: this process
//! starts the echo server as a child process (itself, with `--serve`), so
//! the clients' sockets and buffers are not counted. It warms the server
//! up with 100 connections that each do one round trip and close, reads the
//! child's `VmRSS` from `/proc/PID/status`, opens N connections that each
//! do one round trip and then stay open and silent, reads `VmRSS` again,
//! and prints the difference divided by N.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use fastnet_smol::{CodecSpec, ConnInfo, Ctx, Handler, Server};

/// Echoes every frame.
struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_connect(&self, _info: &ConnInfo) -> Option<()> {
        Some(())
    }

    async fn on_frame(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) {
        let _ = ctx.send(frame);
    }
}

/// The child: an echo server that prints its address and serves until its
/// stdin closes.
fn serve(max: usize) -> std::io::Result<()> {
    let server = Server::builder(CodecSpec::lines(1024))
        .max_connections(max)
        .bind()?;
    println!("{}", server.local_addr());
    let shutdown = server.shutdown_handle();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        shutdown.shutdown(Duration::from_secs(1));
    });
    server.run(Echo)?;
    Ok(())
}

/// A `/proc/PID/status` field in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("status field")
}

/// One connection that did one round trip.
fn connect(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"ping\n").expect("write");
    let mut back = [0u8; 5];
    s.read_exact(&mut back).expect("echo");
    assert_eq!(&back, b"ping\n");
    s
}

fn main() -> std::io::Result<()> {
    let mut n = 10_000usize;
    let mut serve_mode = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--serve" => serve_mode = true,
            other => n = other.parse().expect("N"),
        }
    }
    if serve_mode {
        return serve(n + 1000);
    }

    let mut child = Command::new(std::env::current_exe()?)
        .arg("--serve")
        .arg(n.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line)?;
    let addr: SocketAddr = line.trim().parse().expect("server address");

    // Warm up: the buffer pool, the executor, the allocator.
    for _ in 0..100 {
        drop(connect(addr));
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = status_kib(pid, "VmRSS");
    let before_anon = status_kib(pid, "RssAnon");

    let conns: Vec<TcpStream> = (0..n).map(|_| connect(addr)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let after = status_kib(pid, "VmRSS");
    let after_anon = status_kib(pid, "RssAnon");

    let per = |a: u64, b: u64| (b.saturating_sub(a) * 1024) as f64 / n as f64;
    println!("server pid {pid}, {n} idle connections (one round trip each)");
    println!(
        "VmRSS   {before} KiB -> {after} KiB: {:.0} bytes per connection",
        per(before, after)
    );
    println!(
        "RssAnon {before_anon} KiB -> {after_anon} KiB: {:.0} bytes per connection",
        per(before_anon, after_anon)
    );
    drop(conns);
    drop(child.stdin.take());
    child.wait()?;
    Ok(())
}
