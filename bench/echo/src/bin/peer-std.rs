//! Run: cargo run --release -p fastnet-bench-echo --bin peer-std -- [PORT|ADDR] [--max-frame N]
//!
//! The std peer: thread-per-connection raw echo with blocking
//! `std::net` sockets, as the standard library's documentation shows a
//! server (`for stream in listener.incoming()`, a thread per stream). Each
//! thread reads into an 8 KiB buffer and writes back what it read. No
//! framing. Prints `listening on ADDR`; exits on SIGTERM or SIGINT.
//!
//! With `--max-frame N` it is the framed floor of a thread per
//! connection instead, as `peer-mio --max-frame N` is of an event loop:
//! each read's complete `len=u32be` frames (at most N bytes, else the
//! connection closes) are encoded, header and payload copied, into the
//! thread's reply buffer, which is written; a frame cut by the read's end
//! waits for the rest. No handler, no limits beyond the length, no
//! statistics.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};

use fastnet_bench_echo::peer;

fn echo(mut stream: TcpStream, max_frame: Option<usize>) {
    let mut buf = [0u8; peer::RAW_BUF];
    let (mut framed, mut replies) = (peer::FramedEcho::default(), Vec::new());
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                let reply = match max_frame {
                    None => &buf[..n],
                    Some(max) => match framed.replies(&buf[..n], &mut replies, max) {
                        Some(()) => &replies[..],
                        None => return,
                    },
                };
                if stream.write_all(reply).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

fn main() -> io::Result<()> {
    let addr = peer::addr_from_args()?;
    let [max_frame] = peer::numeric_options(
        "usage: peer-std [PORT|ADDR] [--max-frame N]",
        ["--max-frame"],
        |_, n| n > 0 && n <= u32::MAX as usize,
    );
    peer::raise_fd_limit()?;
    peer::exit_on_signal()?;
    let listener = TcpListener::bind(addr)?;
    peer::announce(listener.local_addr()?);
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) if peer::accept_error_is_transient(&e) => continue,
            Err(e) => return Err(e),
        };
        stream.set_nodelay(true)?;
        // A thread that cannot be created drops (closes) its connection.
        let _ = std::thread::Builder::new().spawn(move || echo(stream, max_frame));
    }
    Ok(())
}
