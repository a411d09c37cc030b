//! Client pool: reuse, discard, broken connections, wait timeout.

mod common;

use std::future::{ready, Future};
use std::time::{Duration, Instant};

use common::*;
use fastnet_smol::{Client, CodecSpec, ConnInfo, Ctx, Handler, Pool, PoolConfig, Server};

struct Echo;

impl Handler for Echo {
    type State = ();
    fn on_connect(&self, _: &ConnInfo) -> Option<()> {
        Some(())
    }
    fn on_frame(&self, ctx: &mut Ctx<'_, ()>, frame: &[u8]) -> impl Future<Output = ()> + Send {
        if frame == b"bye" {
            ctx.close();
        } else {
            let _ = ctx.send(frame);
        }
        ready(())
    }
}

fn config() -> PoolConfig {
    PoolConfig::default()
        .max_size(2)
        .max_idle(2)
        .idle_expiry(Duration::from_secs(60))
        .connect_timeout(WAIT)
        .wait_timeout(Duration::from_millis(100))
}

#[test]
fn reuse_discard_broken_and_wait_timeout() {
    let srv = start(Server::builder(CodecSpec::lines(64)), Echo);
    let pool = Pool::new(srv.addr, CodecSpec::lines(64), config()).unwrap();
    smol::block_on(async {
        let mut c = pool.get().await.unwrap();
        c.send(b"one").await.unwrap();
        assert_eq!(c.recv().await.unwrap(), Some(&b"one"[..]));
        let first = c.local_addr().unwrap();
        drop(c);
        assert_eq!(pool.stats().idle, 1);

        // Reused: same local address.
        let c = pool.get().await.unwrap();
        assert_eq!(c.local_addr().unwrap(), first);
        // Discarded: the next one is new.
        c.discard();
        assert_eq!(pool.stats().idle, 0);
        let mut c = pool.get().await.unwrap();
        let second = c.local_addr().unwrap();
        assert_ne!(second, first);

        // Wait timeout: both connections out.
        let other = pool.get().await.unwrap();
        let t = Instant::now();
        let err = pool.get().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(90));
        drop(other);

        // Closed by the server: not reused.
        c.send(b"bye").await.unwrap();
        assert_eq!(c.recv().await.unwrap(), None);
        drop(c);
        let c = pool.get().await.unwrap();
        assert_ne!(c.local_addr().unwrap(), second);
    });
    srv.stop(Duration::from_secs(1));
}

#[test]
fn expired_idle_connections_are_replaced() {
    let srv = start(Server::builder(CodecSpec::lines(64)), Echo);
    let cfg = config().idle_expiry(Duration::from_millis(50));
    let pool = Pool::new(srv.addr, CodecSpec::lines(64), cfg).unwrap();
    smol::block_on(async {
        let c = pool.get().await.unwrap();
        let first = c.local_addr().unwrap();
        drop(c);
        smol::Timer::after(Duration::from_millis(80)).await;
        let c = pool.get().await.unwrap();
        assert_ne!(c.local_addr().unwrap(), first);
    });
    srv.stop(Duration::from_secs(1));
}

#[test]
fn client_and_pool_sockets_keep_alive() {
    let srv = start(Server::builder(CodecSpec::lines(64)), Echo);
    let on = |s: &std::net::TcpStream| socket2::SockRef::from(s).keepalive().unwrap();
    smol::block_on(async {
        let c = Client::connect(srv.addr, CodecSpec::lines(64), WAIT)
            .await
            .unwrap();
        assert!(on(c.stream()), "a client keeps alive by default");
        c.set_keepalive(None).unwrap();
        assert!(!on(c.stream()));
        let pool = Pool::new(srv.addr, CodecSpec::lines(64), config()).unwrap();
        assert!(on(pool.get().await.unwrap().stream()));
        let quiet = config().keepalive(None);
        let pool = Pool::new(srv.addr, CodecSpec::lines(64), quiet).unwrap();
        assert!(!on(pool.get().await.unwrap().stream()));
    });
}
