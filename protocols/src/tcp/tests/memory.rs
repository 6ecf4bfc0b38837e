//! Buffer memory follows the data: an idle connection holds none, whatever its configured
//! buffer sizes, and the window it advertises is the configured one all the same.

use super::*;

fn request(n: usize, salt: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ salt).collect()
}

#[test]
fn idle_keep_alive_connection_holds_no_buffers() {
    let cfg = plain_config();
    let mut h = established(&cfg, 60000);
    assert_eq!(h.conn.buffer_footprint(), 0);
    let (mut ours, mut theirs) = (0usize, 0usize);
    for round in 0..5u8 {
        // We send a request: the send ring exists until the peer acknowledges it.
        let req = request(300 + usize::from(round), round);
        assert_eq!(h.conn.send(&req), Ok(req.len()));
        assert!(h.conn.buffer_footprint() > 0);
        let (seg, payload) = h.expect();
        assert_eq!(payload, req);
        assert_eq!(seg.seq_number, lseq(ours));
        ours += req.len();
        // The peer answers, acknowledging the request: our send memory goes, the response
        // takes receive memory until it is read.
        let resp = request(1000, round ^ 0x55);
        h.now += Duration::from_millis(5);
        h.send(peer(PSH, theirs, Some(ours), 60000), &resp);
        theirs += resp.len();
        let mut buf = vec![0u8; 4000];
        assert!(h.conn.buffer_footprint() > 0);
        assert_eq!(h.conn.recv(&mut buf), Ok(resp.len()));
        assert_eq!(&buf[..resp.len()], &resp[..]);
        // Drained: the ring waits for the stack's sweep (a busy connection keeps it).
        assert!(h.conn.buffer_footprint() > 0);
        h.conn.release_idle_buffers();
        assert_eq!(h.conn.buffer_footprint(), 0, "round {round}");
        // The window is the configured one, not what the (freed) ring holds.
        h.advance(Duration::from_millis(200));
        let acks = h.drain();
        let ack = acks
            .last()
            .map(|(r, _)| *r)
            .expect("an ACK for the response");
        assert_eq!(ack.ack_number, Some(rseq(theirs)));
        assert_eq!(usize::from(ack.window_len), cfg.rx_buffer);
    }
}

#[test]
fn out_of_order_data_keeps_its_buffer_until_read() {
    let cfg = TcpConfig {
        sack: true,
        ..plain_config()
    };
    let mut h = established_with(&cfg, 60000, |s| s.sack_permitted = true);
    let data = request(3000, 7);
    h.send(peer(ACK, 1000, Some(0), 60000), &data[1000..2000]);
    h.send(peer(ACK, 2000, Some(0), 60000), &data[2000..]);
    assert!(h.conn.buffer_footprint() > 0);
    h.send(peer(ACK, 0, Some(0), 60000), &data[..1000]);
    let mut got = vec![0u8; 5000];
    assert_eq!(h.conn.recv(&mut got), Ok(3000));
    assert_eq!(&got[..3000], &data[..]);
    h.conn.release_idle_buffers();
    assert_eq!(h.conn.buffer_footprint(), 0);
}

#[test]
fn connection_state_stays_about_a_kilobyte() {
    // What an idle connection costs besides its (freed) buffers: the whole struct, its
    // congestion controller inside it (no heap block of its own). A load generator holds
    // 100,000 of these.
    let size = core::mem::size_of::<Connection>();
    assert!(size <= 1024 + 128, "{size} bytes");
    assert!(core::mem::size_of::<crate::tcp::Cubic>() <= 128);
}
