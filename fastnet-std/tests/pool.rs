//! The client connection pool against a running server.

mod common;

use std::io::ErrorKind;
use std::thread;
use std::time::{Duration, Instant};

use common::{codec, start, wait_until};
use fastnet_std::{Client, Pool, PoolConfig, Server};

fn config(max_size: usize) -> PoolConfig {
    PoolConfig::default()
        .max_size(max_size)
        .max_idle(max_size)
        .idle_expiry(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(2))
        .wait_timeout(Duration::from_secs(5))
}

#[test]
fn reuses_connections_up_to_max_size() {
    let server = start(Server::builder(codec(1024)), false);
    let pool = Pool::new(server.addr, codec(1024), config(2)).unwrap();
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let pool = pool.clone();
            thread::spawn(move || {
                for i in 0..25u8 {
                    let mut c = pool.get().unwrap();
                    c.send(&[t, i]).unwrap();
                    assert_eq!(c.recv().unwrap(), Some(&[t, i][..]));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = pool.stats();
    assert!(stats.connects <= 2, "{stats:?}");
    assert_eq!(
        (stats.open, stats.idle, stats.discarded),
        (stats.connects as usize, stats.connects as usize, 0)
    );
    assert_eq!(server.stop().accepted, stats.connects);
}

#[test]
fn broken_and_discarded_connections_are_not_reused() {
    let server = start(Server::builder(codec(1024)), false);
    let pool = Pool::new(server.addr, codec(1024), config(2)).unwrap();
    {
        let mut c = pool.get().unwrap();
        c.send(b"bye").unwrap(); // the server closes this one
        assert_eq!(c.recv().unwrap(), None);
        assert!(c.is_broken());
    }
    assert_eq!((pool.stats().discarded, pool.stats().open), (1, 0));
    let c = pool.get().unwrap();
    c.discard();
    assert_eq!((pool.stats().discarded, pool.stats().open), (2, 0));
    let mut c = pool.get().unwrap();
    c.send(b"fresh").unwrap();
    assert_eq!(c.recv().unwrap(), Some(&b"fresh"[..]));
    drop(c);
    assert_eq!(pool.stats().connects, 3);
    assert!(wait_until(Duration::from_secs(2), || server
        .server_stats
        .snapshot()
        .open()
        == 1));
}

#[test]
fn waiting_for_a_connection_times_out() {
    let server = start(Server::builder(codec(1024)), false);
    let pool = Pool::new(
        server.addr,
        codec(1024),
        config(1).wait_timeout(Duration::from_millis(100)),
    )
    .unwrap();
    let held = pool.get().unwrap();
    let start = Instant::now();
    let err = pool.get().unwrap_err();
    let waited = start.elapsed();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(err.to_string().contains("all 1 in use"), "{err}");
    assert!(
        waited >= Duration::from_millis(90) && waited < Duration::from_secs(1),
        "{waited:?}"
    );
    // A connection returned while someone waits is handed over.
    let pool2 = pool.clone();
    let waiter = thread::spawn(move || pool2.get().map(|_| ()));
    thread::sleep(Duration::from_millis(20));
    drop(held);
    waiter.join().unwrap().unwrap();
    assert_eq!(pool.stats().connects, 1);
}

#[test]
fn idle_connections_expire_and_connect_errors_are_reported() {
    let server = start(Server::builder(codec(1024)), false);
    let pool = Pool::new(
        server.addr,
        codec(1024),
        config(2).idle_expiry(Duration::from_millis(30)),
    )
    .unwrap();
    drop(pool.get().unwrap());
    assert_eq!(pool.stats().idle, 1);
    thread::sleep(Duration::from_millis(40));
    drop(pool.get().unwrap());
    assert_eq!(
        pool.stats().connects,
        2,
        "the expired connection was replaced"
    );

    let addr = server.addr;
    drop(server); // nothing listens any more
    let dead = Pool::new(addr, codec(1024), config(1)).unwrap();
    let err = dead.get().unwrap_err();
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    assert_eq!(dead.stats().open, 0, "a failed connect frees its slot");
}

#[test]
fn pipelined_frames_and_requests_share_one_connection() {
    let server = start(Server::builder(codec(1024)), false);
    let pool = Pool::new(server.addr, codec(1024), config(1)).unwrap();
    let mut c = pool.get().unwrap();
    for i in 0..100u8 {
        c.feed(&[i]).unwrap();
    }
    c.flush().unwrap();
    for i in 0..100u8 {
        assert_eq!(c.recv().unwrap(), Some(&[i][..]));
    }
    let mut out = Vec::new();
    c.request(b"again", &mut out).unwrap();
    assert_eq!(out, b"again");
    assert_eq!(c.peer_addr(), server.addr);
    drop(c);
    assert_eq!((pool.stats().connects, pool.stats().idle), (1, 1));
}

#[test]
fn client_and_pool_sockets_keep_alive() {
    let server = start(Server::builder(codec(1024)), false);
    let on = |s: &std::net::TcpStream| socket2::SockRef::from(s).keepalive().unwrap();
    let c = Client::connect(server.addr, codec(1024), Duration::from_secs(2)).unwrap();
    assert!(on(c.stream()), "a client keeps alive by default");
    c.set_keepalive(None).unwrap();
    assert!(!on(c.stream()));
    let pool = Pool::new(server.addr, codec(1024), config(1)).unwrap();
    assert!(on(pool.get().unwrap().stream()));
    let quiet = config(1).keepalive(None);
    let pool = Pool::new(server.addr, codec(1024), quiet).unwrap();
    assert!(!on(pool.get().unwrap().stream()));
}
