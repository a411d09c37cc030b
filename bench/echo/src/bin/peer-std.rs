//! Run: cargo run --release -p fastnet-bench-echo --bin peer-std -- [PORT|ADDR]
//!
//! The std peer: thread-per-connection raw echo with blocking
//! `std::net` sockets, as the standard library's documentation shows a
//! server (`for stream in listener.incoming()`, a thread per stream). Each
//! thread reads into an 8 KiB buffer and writes back what it read. No
//! framing. Prints `listening on ADDR`; exits on SIGTERM or SIGINT.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};

use fastnet_bench_echo::peer;

fn echo(mut stream: TcpStream) {
    let mut buf = [0u8; peer::RAW_BUF];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
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
        let _ = std::thread::Builder::new().spawn(move || echo(stream));
    }
    Ok(())
}
