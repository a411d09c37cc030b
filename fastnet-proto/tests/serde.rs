//! A statistics snapshot serialises with every counter by name.

use fastnet_proto::connection::CloseReason;
use fastnet_proto::server::{RejectReason, ServerStats, StatsSnapshot};

#[test]
fn a_snapshot_serialises_by_name_and_back() {
    let s = ServerStats::new();
    s.on_accept();
    s.on_reject(RejectReason::MaxPerIp);
    s.on_close(CloseReason::PeerClosed);
    s.add_traffic(1, 1, 6, 6);
    let snap = s.snapshot();
    let json = serde_json::to_string(&snap).unwrap();
    for part in [
        r#""accepted":1"#,
        r#""rejected":{"max_connections":0,"max_per_ip":1,"#,
        r#""handshakes":0"#,
        r#""closed":{"peer_closed":1,"#,
        r#""write_stall":0"#,
        r#""bytes_out":6"#,
    ] {
        assert!(json.contains(part), "{part} in {json}");
    }
    assert_eq!(serde_json::from_str::<StatsSnapshot>(&json).unwrap(), snap);
}
