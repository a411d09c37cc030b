//! Drives three clients through the chat example: nicks, broadcast to the
//! other two, join/leave notices.

#[path = "../examples/chat.rs"]
mod chat;
mod common;

use std::time::Duration;

use common::*;
use fastnet_smol::{CodecSpec, Server};

#[test]
fn three_clients_nick_and_broadcast() {
    let srv = start(
        Server::builder(CodecSpec::lines(4096)),
        chat::Chat::default(),
    );
    let mut a = LineClient::connect(srv.addr);
    assert!(a.line().starts_with("* welcome guest"));
    let mut b = LineClient::connect(srv.addr);
    assert!(b.line().starts_with("* welcome guest"));
    assert!(a.line().ends_with(" joined"));
    let mut c = LineClient::connect(srv.addr);
    assert!(c.line().starts_with("* welcome guest"));
    assert!(a.line().ends_with(" joined"));
    assert!(b.line().ends_with(" joined"));

    a.send("/nick alice");
    assert_eq!(a.line(), "* you are now alice");
    assert!(b.line().ends_with(" is now alice"));
    assert!(c.line().ends_with(" is now alice"));
    b.send("/nick bob");
    assert_eq!(b.line(), "* you are now bob");
    assert!(a.line().ends_with(" is now bob"));
    assert!(c.line().ends_with(" is now bob"));

    a.send("hello room");
    assert_eq!(b.line(), "alice: hello room");
    assert_eq!(c.line(), "alice: hello room");
    b.send("hi alice");
    assert_eq!(a.line(), "bob: hi alice");
    assert_eq!(c.line(), "bob: hi alice");

    c.send("/quit");
    assert_eq!(c.line(), "* bye");
    c.expect_closed();
    assert!(a.line().ends_with(" left"));
    assert!(b.line().ends_with(" left"));

    // The sender does not hear its own line back: a's next line is b's.
    a.send("still here");
    assert_eq!(b.line(), "alice: still here");
    b.send("me too");
    assert_eq!(a.line(), "bob: me too");
    let stats = srv.stop(Duration::from_secs(1));
    assert_eq!(stats.accepted, 3);
}
