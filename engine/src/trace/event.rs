//! Stack events: what the stack did that a capture on the wire cannot show.
//!
//! The stack emits a [`StackEvent`] when a TCP connection changes state, retransmits, fires its
//! RTO, changes its congestion window, receives SACK blocks, or drops a frame. An event is
//! `Copy` and holds no heap data, so emitting one never allocates. Events reach two places:
//! the [`StackObserver`]s registered with a [`super::Tracer`], and the pcapng comment of the
//! frame that caused them ([`super::Tracer::frame_with_events`]).

pub use protocols::iface::event::{ConnId, StackEvent};
pub use protocols::tcp::RetransmitReason;

/// Subscribes to stack events. Called on the worker thread that emitted the event, so an
/// implementation must be quick and must not block (count, or push to its own bounded queue).
pub trait StackObserver: Send + Sync {
    fn on_event(&self, queue: u16, ts_micros: u64, event: &StackEvent);
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;
    use protocols::iface::DropReason;
    use protocols::tcp::State;

    fn conn() -> ConnId {
        ConnId {
            local: (Ipv4Addr::new(10, 0, 0, 2), 80),
            remote: (Ipv4Addr::new(10, 0, 0, 1), 40000),
        }
    }

    #[test]
    fn events_read_as_comments() {
        let e = StackEvent::Retransmit {
            conn: conn(),
            seq: 1001,
            len: 100,
            reason: RetransmitReason::Rto,
        };
        assert_eq!(
            e.to_string(),
            "tcp 10.0.0.2:80-10.0.0.1:40000: retransmit seq 1001 len 100 (rto)"
        );
        let e = StackEvent::TcpState {
            conn: conn(),
            from: State::SynReceived,
            to: State::Established,
        };
        assert_eq!(
            e.to_string(),
            "tcp 10.0.0.2:80-10.0.0.1:40000: state SYN-RECEIVED -> ESTABLISHED"
        );
        let e = StackEvent::Drop {
            reason: DropReason::TcpBadChecksum,
        };
        assert_eq!(e.to_string(), "dropped: tcp_bad_checksum");
        let e = StackEvent::SackReceived {
            conn: conn(),
            blocks: [Some((1, 2)), Some((5, 9)), None, None],
        };
        assert!(e.to_string().ends_with("sack 1-2 5-9"));
    }
}
