//! Tap tests. The ones that open real taps need root and /dev/net/tun; they run inside a private namespace
//! (`tapir-sys-<pid>-<n>`) that is deleted on every path, and skip with a note otherwise.

use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::*;
use crate::sys::event::Poller;
use crate::sys::testlab::Lab;

const OUR_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
const OUR_IP: [u8; 4] = [10, 99, 0, 2];
const KERNEL_IP: [u8; 4] = [10, 99, 0, 1];

fn opts(lab: &Lab, name: &str, queues: usize) -> TapOptions {
    TapOptions {
        name: name.to_owned(),
        queues,
        netns: Some(lab.name().to_owned()),
        vnet_hdr: false,
        ring: None,
        mtu: None,
    }
}

/// An Ethernet broadcast ARP request (RFC 826) from OUR_MAC/OUR_IP asking who has KERNEL_IP, split in two
/// slices to exercise `write_vectored`.
fn arp_request() -> ([u8; 14], [u8; 28]) {
    let mut eth = [0u8; 14];
    eth[..6].copy_from_slice(&[0xff; 6]);
    eth[6..12].copy_from_slice(&OUR_MAC);
    eth[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let mut arp = [0u8; 28];
    arp[0..2].copy_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    arp[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    arp[4] = 6;
    arp[5] = 4;
    arp[6..8].copy_from_slice(&1u16.to_be_bytes()); // request
    arp[8..14].copy_from_slice(&OUR_MAC);
    arp[14..18].copy_from_slice(&OUR_IP);
    arp[24..28].copy_from_slice(&KERNEL_IP);
    (eth, arp)
}

fn is_arp_reply_to_us(frame: &[u8]) -> bool {
    frame.len() >= 42
        && frame[0..6] == OUR_MAC
        && frame[12..14] == [0x08, 0x06]
        && frame[20..22] == [0, 2]
        && frame[28..32] == KERNEL_IP
        && frame[32..38] == OUR_MAC
        && frame[38..42] == OUR_IP
}

#[test]
fn validates_options_before_touching_the_kernel() {
    let long = TapOptions {
        name: "tapir-much-too-long".into(),
        ..TapOptions::default()
    };
    assert!(matches!(open_tap(&long), Err(TapError::InvalidName { .. })));
    let slash = TapOptions {
        name: "tap/0".into(),
        ..TapOptions::default()
    };
    assert!(matches!(
        open_tap(&slash),
        Err(TapError::InvalidName { .. })
    ));
    for queues in [0, MAX_QUEUES + 1] {
        let o = TapOptions {
            queues,
            ..TapOptions::default()
        };
        assert!(matches!(
            open_tap(&o),
            Err(TapError::InvalidQueueCount { .. })
        ));
    }
}

#[test]
fn missing_namespace_is_netns_not_found() {
    let o = TapOptions {
        name: "tapir0".into(),
        netns: Some(format!("tapir-sys-missing-{}", std::process::id())),
        ..TapOptions::default()
    };
    let err = open_tap(&o).unwrap_err();
    assert!(matches!(err, TapError::NetnsNotFound { .. }), "{err}");
    assert!(err.to_string().contains("ip netns add"), "{err}");
}

#[test]
fn creates_a_multi_queue_tap_and_the_kernel_answers_arp() {
    let Some(lab) = Lab::new() else { return };
    let dev = open_tap(&opts(&lab, "tapir0", 2)).unwrap();
    assert!(dev.created);
    assert_eq!(dev.name, "tapir0");
    assert_eq!(dev.queues.len(), 2);

    let shown = lab.ip(&["-d", "link", "show", "dev", "tapir0"]);
    assert!(shown.contains("tun type tap"), "{shown}");
    assert!(shown.contains("multi_queue"), "{shown}");
    assert!(
        shown.contains(",UP") || shown.contains("<UP"),
        "open_tap should bring a created link up: {shown}"
    );
    // The caller's own namespace never saw the device.
    assert!(!interface_exists("tapir0").unwrap());

    lab.ip(&["addr", "add", "10.99.0.1/24", "dev", "tapir0"]);
    lab.ip(&["link", "set", "tapir0", "up"]);

    let (eth, arp) = arp_request();
    let n = dev.queues[0]
        .write_vectored(&[IoSlice::new(&eth), IoSlice::new(&arp)])
        .unwrap();
    assert_eq!(n, 42);

    // The reply may land on either queue; other frames (IPv6 router solicitations, MLD) may come first.
    let fds: Vec<_> = dev.queues.iter().map(|q| q.as_raw_fd()).collect();
    let mut poller = Poller::new(&fds);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 2048];
    let mut seen = Vec::new();
    'wait: loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no ARP reply within 10 s; saw {} other frames",
            seen.len()
        );
        let ready = poller.wait(Some(left)).unwrap();
        for i in ready.iter() {
            loop {
                match dev.queues[i].read(&mut buf) {
                    Ok(len) if is_arp_reply_to_us(&buf[..len]) => break 'wait,
                    Ok(len) => seen.push(buf[..len].to_vec()),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("read on queue {i}: {e}"),
                }
            }
        }
    }
    // The kernel learned our address from the request: the neighbour entry proves the frame went in.
    let neigh = lab.ip(&["neigh", "show", "dev", "tapir0"]);
    assert!(
        neigh.contains("10.99.0.2") && neigh.contains("02:00:00:00:00:02"),
        "{neigh}"
    );
}

#[test]
fn the_queue_grows_to_the_ring_asked_for_and_never_shrinks() {
    let Some(lab) = Lab::new() else { return };
    let dev = open_tap(&TapOptions {
        ring: Some(4096),
        ..opts(&lab, "tapirring", 2)
    })
    .unwrap();
    assert_eq!(dev.ring, Some(4096));
    let shown = lab.ip(&["link", "show", "dev", "tapirring"]);
    assert!(shown.contains("qlen 4096"), "{shown}");
    drop(dev);
    // A persistent tap with a longer queue keeps it.
    lab.ip(&[
        "tuntap",
        "add",
        "dev",
        "tapirlong",
        "mode",
        "tap",
        "multi_queue",
    ]);
    lab.ip(&["link", "set", "tapirlong", "txqueuelen", "9000"]);
    let dev = open_tap(&TapOptions {
        ring: Some(4096),
        ..opts(&lab, "tapirlong", 1)
    })
    .unwrap();
    assert_eq!(dev.ring, Some(9000));
}

#[test]
fn a_created_tap_takes_the_mtu_asked_for_and_an_existing_one_keeps_its_own() {
    let Some(lab) = Lab::new() else { return };
    let dev = open_tap(&TapOptions {
        mtu: Some(9000),
        ..opts(&lab, "tapirjumbo", 1)
    })
    .unwrap();
    let shown = lab.ip(&["link", "show", "dev", "tapirjumbo"]);
    assert!(shown.contains("mtu 9000"), "{shown}");
    drop(dev);
    lab.ip(&[
        "tuntap",
        "add",
        "dev",
        "tapirkeep",
        "mode",
        "tap",
        "multi_queue",
    ]);
    let dev = open_tap(&TapOptions {
        mtu: Some(9000),
        ..opts(&lab, "tapirkeep", 1)
    })
    .unwrap();
    let shown = lab.ip(&["link", "show", "dev", "tapirkeep"]);
    assert!(shown.contains("mtu 1500"), "{shown}");
    drop(dev);
}

#[test]
fn attaches_to_an_existing_persistent_multi_queue_tap() {
    let Some(lab) = Lab::new() else { return };
    lab.ip(&[
        "tuntap",
        "add",
        "dev",
        "tapirmq",
        "mode",
        "tap",
        "multi_queue",
    ]);
    let dev = open_tap(&TapOptions {
        vnet_hdr: true,
        ..opts(&lab, "tapirmq", 3)
    })
    .unwrap();
    assert!(!dev.created);
    assert_eq!(dev.queues.len(), 3);
    for q in &dev.queues {
        q.set_vnet_hdr_len(12).unwrap();
        q.set_offload(libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6)
            .unwrap();
        q.set_nonblocking(true).unwrap();
    }
    // Nothing has been sent to a down link: reads would block rather than hang.
    let mut buf = [0u8; 64];
    assert_eq!(
        dev.queues[0].read(&mut buf).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
    drop(dev);
    // Persistent: still there after every queue closed.
    lab.ip(&["link", "show", "dev", "tapirmq"]);
}

#[test]
fn single_queue_tap_is_not_multi_queue() {
    let Some(lab) = Lab::new() else { return };
    lab.ip(&["tuntap", "add", "dev", "tapirsq", "mode", "tap"]);
    let err = open_tap(&opts(&lab, "tapirsq", 1)).unwrap_err();
    assert!(matches!(err, TapError::NotMultiQueue { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("ip tuntap add dev tapirsq mode tap multi_queue"),
        "{err}"
    );
}

#[test]
fn non_tap_interfaces_are_refused() {
    let Some(lab) = Lab::new() else { return };
    let err = open_tap(&opts(&lab, "lo", 1)).unwrap_err();
    assert!(matches!(err, TapError::NotATap { .. }), "{err}");
    lab.ip(&[
        "tuntap",
        "add",
        "dev",
        "tapirtun",
        "mode",
        "tun",
        "multi_queue",
    ]);
    let err = open_tap(&opts(&lab, "tapirtun", 1)).unwrap_err();
    assert!(matches!(err, TapError::NotATap { .. }), "{err}");
}

#[test]
fn created_tap_vanishes_with_its_last_queue() {
    let Some(lab) = Lab::new() else { return };
    let dev = open_tap(&opts(&lab, "", 1)).unwrap();
    assert!(dev.created);
    assert!(
        dev.name.starts_with("tap"),
        "kernel-chosen name: {}",
        dev.name
    );
    let name = dev.name.clone();
    lab.ip(&["link", "show", "dev", &name]);
    drop(dev);
    assert!(!lab
        .ip_output(&["link", "show", "dev", &name])
        .status
        .success());
}

#[test]
fn tap_of_another_user_is_permission_denied_without_net_admin() {
    let Some(lab) = Lab::new() else { return };
    lab.ip(&[
        "tuntap",
        "add",
        "dev",
        "tapirnb",
        "mode",
        "tap",
        "multi_queue",
        "user",
        "nobody",
    ]);
    let o = opts(&lab, "tapirnb", 1);
    let create = opts(&lab, "tapirnew", 1);
    // A scratch thread without CAP_NET_ADMIN; open_tap's netns helper inherits its capabilities.
    let (attach, make) = std::thread::spawn(move || {
        crate::sys::testlab::drop_net_admin_on_this_thread().expect("capset");
        (open_tap(&o), open_tap(&create))
    })
    .join()
    .unwrap();
    let err = attach.unwrap_err();
    assert!(matches!(err, TapError::PermissionDenied { .. }), "{err}");
    assert!(err.to_string().contains("deploy/hostonly up"), "{err}");
    let err = make.unwrap_err();
    assert!(matches!(err, TapError::PermissionDenied { .. }), "{err}");
}
