//! Feature `tracing`: a driver reports each connection's life as
//! `tracing` events and runs it in a span of its own.
//!
//! A small recording subscriber is installed as the global default (the
//! driver's threads must see it); it keeps only what the target `fastnet`
//! reports, and each case looks only at the peers it connected from, so
//! cases running side by side do not see each other.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::{codec, wait_until, FrameClient, TestDriver};
use fastnet_proto::server::ServerConfig;

/// One event or span as recorded: its level, message and fields, every
/// value as displayed.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Level.
    pub level: Level,
    /// The event's message or the span's name.
    pub name: String,
    /// Fields by name.
    pub fields: HashMap<String, String>,
}

impl Recorded {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

impl Visit for Recorded {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let value = format!("{value:?}");
        if field.name() == "message" {
            self.name = value;
        } else {
            self.fields.insert(field.name().to_owned(), value);
        }
    }
}

/// Everything the target `fastnet` reported: events, spans made, spans
/// entered.
#[derive(Default)]
struct Recorder {
    next_span: AtomicU64,
    events: Mutex<Vec<Recorded>>,
    spans: Mutex<HashMap<u64, Recorded>>,
    entered: Mutex<Vec<u64>>,
}

impl Subscriber for Recorder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "fastnet"
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next_span.fetch_add(1, Ordering::Relaxed) + 1;
        let mut rec = Recorded {
            level: *span.metadata().level(),
            name: span.metadata().name().to_owned(),
            fields: HashMap::new(),
        };
        span.record(&mut rec);
        self.spans.lock().unwrap().insert(id, rec);
        Id::from_u64(id)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut rec = Recorded {
            level: *event.metadata().level(),
            name: String::new(),
            fields: HashMap::new(),
        };
        event.record(&mut rec);
        self.events.lock().unwrap().push(rec);
    }

    fn enter(&self, span: &Id) {
        self.entered.lock().unwrap().push(span.into_u64());
    }

    fn exit(&self, _: &Id) {}
}

fn recorder() -> &'static Arc<Recorder> {
    static RECORDER: OnceLock<Arc<Recorder>> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder = Arc::new(Recorder::default());
        tracing::subscriber::set_global_default(Arc::clone(&recorder))
            .expect("no other global subscriber in the suite");
        recorder
    })
}

/// The events recorded for `peer`.
fn events_of(peer: SocketAddr) -> Vec<Recorded> {
    let peer = peer.to_string();
    let events = recorder().events.lock().unwrap();
    events
        .iter()
        .filter(|e| e.field("peer") == Some(&peer))
        .cloned()
        .collect()
}

/// Two clients, one closing in order and one sending an oversized frame:
/// each is reported accepted (DEBUG, with its id and peer), then closed —
/// at DEBUG for the ordinary close, at WARN for the violation, with the
/// reason's name — and each ran in a `conn` span with its id and peer.
pub fn connection_life_is_traced<D: TestDriver>() {
    recorder();
    let mut server = D::start_echo(ServerConfig::new(codec(1024)));
    let addr = server.addr();
    let mut good = FrameClient::connect(addr, 1024).expect("connect");
    good.roundtrip(b"hello").expect("echo");
    let good_peer = good.stream().local_addr().unwrap();
    drop(good);
    let mut bad = FrameClient::connect(addr, 1024).expect("connect");
    let bad_peer = bad.stream().local_addr().unwrap();
    bad.send_raw(&4096u32.to_be_bytes()).unwrap();
    bad.expect_closed(Duration::from_secs(2))
        .expect("oversize closes");
    let closed = |peer| events_of(peer).iter().any(|e| e.name.starts_with("closed"));
    assert!(
        wait_until(Duration::from_secs(2), || closed(good_peer)
            && closed(bad_peer)),
        "{}: {:?} {:?}",
        D::NAME,
        events_of(good_peer),
        events_of(bad_peer)
    );
    server.shutdown(Duration::from_secs(2));

    for (peer, level, reason) in [
        (good_peer, Level::DEBUG, "peer-closed"),
        (bad_peer, Level::WARN, "frame-too-large"),
    ] {
        let events = events_of(peer);
        let [accepted, closed] = &events[..] else {
            panic!("{}: accept then close for {peer}: {events:?}", D::NAME);
        };
        assert_eq!(
            (accepted.level, accepted.name.as_str()),
            (Level::DEBUG, "accepted"),
            "{}",
            D::NAME
        );
        assert_eq!(accepted.field("tls"), Some("false"), "{}", D::NAME);
        let id = accepted.field("id").expect("the connection's id");
        assert_eq!(closed.level, level, "{}: {closed:?}", D::NAME);
        assert_eq!(closed.field("reason"), Some(reason), "{}", D::NAME);
        assert_eq!(closed.field("id"), Some(id), "{}", D::NAME);
        // The connection's span: made once with its id and peer, and the
        // connection ran in it.
        let spans = recorder().spans.lock().unwrap().clone();
        let entered = recorder().entered.lock().unwrap().clone();
        let peer = peer.to_string();
        let ours: Vec<u64> = spans
            .iter()
            .filter(|(_, s)| s.field("peer") == Some(&peer))
            .map(|(n, _)| *n)
            .collect();
        let [span] = ours[..] else {
            panic!("{}: one span for {peer}: {spans:?}", D::NAME);
        };
        let s = &spans[&span];
        assert_eq!(
            (s.name.as_str(), s.field("id")),
            ("conn", Some(id)),
            "{}",
            D::NAME
        );
        assert!(entered.contains(&span), "{}: span entered", D::NAME);
    }
}
