//! Multi-queue TAP devices: opening `/dev/net/tun` once per queue and attaching each fd to the same tap.
//!
//! Kernel facts this relies on (drivers/net/tun.c, `tun_set_iff`; include/uapi/linux/if_tun.h):
//! - `TUNSETIFF` with a name that exists attaches to that device; with a new name it creates a (non-persistent)
//!   device that disappears when its last queue fd closes. Persistent taps come from `ip tuntap add`.
//! - Attaching with `IFF_MULTI_QUEUE` to a tap made without it (or the reverse) fails with `EINVAL`, as does
//!   attaching as a tap to something that is not a tap; `EPERM` when the tap is owned by another user; `EBUSY`
//!   when a single-queue tap already has its queue or `IFF_TUN_EXCL` was asked; `E2BIG` past 256 queues.
//! - A tap fd stays bound to the device (and so to the network namespace) it was attached in.
//!
//! Frames read and written are whole Ethernet frames (`IFF_NO_PI`), preceded by a `virtio_net_hdr` when the
//! device was opened with `vnet_hdr`.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use thiserror::Error;

use super::netns::{run_in_netns, NetnsError};
use super::{cvt, cvt_size};

/// The clone device every tap queue is opened from.
pub const TUN_PATH: &str = "/dev/net/tun";
/// `MAX_TAP_QUEUES` in drivers/net/tun.c.
pub const MAX_QUEUES: usize = 256;
/// Longest interface name (`IFNAMSIZ` minus the NUL).
pub const MAX_NAME_LEN: usize = libc::IFNAMSIZ - 1;

/// `_IOR('T', 224, int)` from include/uapi/linux/if_tun.h.
const TUNSETSTEERINGEBPF: libc::c_ulong = 0x8004_54e0;

// ethtool's driver-info query (include/uapi/linux/ethtool.h), used only to explain an EINVAL from TUNSETIFF.
const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;

/// `struct ethtool_drvinfo` from include/uapi/linux/ethtool.h.
#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// What to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapOptions {
    /// Interface name (at most 15 bytes). Empty lets the kernel pick `tapN`.
    pub name: String,
    /// Number of queues (fds) to attach, 1 to 256.
    pub queues: usize,
    /// Open the tap inside this named network namespace (`/run/netns/NAME`).
    pub netns: Option<String>,
    /// Ask for `IFF_VNET_HDR`: every frame carries a `virtio_net_hdr` in front (needed for offloads).
    pub vnet_hdr: bool,
    /// Grow the tap's queue (its txqueuelen: frames the kernel holds for each reader before it
    /// drops) to at least this many, like sizing a NIC's receive ring. Best effort: a tap we
    /// may not reconfigure keeps its length (see [`TapDevice::ring`]).
    pub ring: Option<u32>,
    /// The MTU a tap this call creates gets (an existing tap keeps the one its owner set).
    pub mtu: Option<u32>,
}

impl Default for TapOptions {
    fn default() -> Self {
        TapOptions {
            name: "tap0".to_owned(),
            queues: 1,
            netns: None,
            vnet_hdr: false,
            ring: None,
            mtu: None,
        }
    }
}

/// An opened tap: one [`TapQueue`] per requested queue, all attached to the device `name`.
#[derive(Debug)]
pub struct TapDevice {
    /// The interface name, as the kernel reports it.
    pub name: String,
    pub queues: Vec<TapQueue>,
    /// True when this call created the device (it then vanishes when the last queue closes, unless made
    /// persistent by someone else); false when it attached to an existing one.
    pub created: bool,
    /// The tap's queue length (txqueuelen) once opened, when it could be read.
    pub ring: Option<u32>,
}

/// Why a tap could not be opened. Each message says what to do about it.
#[derive(Debug, Error)]
pub enum TapError {
    #[error("/dev/net/tun is missing: load the tun module (modprobe tun)")]
    NoTunDevice,
    #[error(
        "permission denied opening tap {name}: run as root, or make a persistent tap owned by your user with \
         deploy/hostonly up"
    )]
    PermissionDenied { name: String },
    #[error(
        "network namespace {name} not found (no /run/netns/{name}): create it with `ip netns add {name}` or \
         `deploy/lab up {name}`"
    )]
    NetnsNotFound { name: String },
    #[error(
        "tap {name} exists but was made without multi_queue: recreate it with \
         `ip tuntap add dev {name} mode tap multi_queue`"
    )]
    NotMultiQueue { name: String },
    #[error("{name} exists but is not a tap device ({what}): pick another name with --tap, or delete it")]
    NotATap { name: String, what: String },
    #[error(
        "tap {name} is busy: another process holds it exclusively; stop that process or use another tap name"
    )]
    Busy { name: String },
    #[error(
        "{name:?} is not a usable interface name: use at most 15 bytes, no '/', whitespace or NUL"
    )]
    InvalidName { name: String },
    #[error("cannot open {queues} queues: a tap has between 1 and 256 (use --queues 1..=256)")]
    InvalidQueueCount { queues: usize },
    #[error(transparent)]
    Netns(NetnsError),
    #[error("tap I/O error: {0}")]
    Io(#[from] io::Error),
}

impl From<NetnsError> for TapError {
    fn from(e: NetnsError) -> Self {
        match e {
            NetnsError::NotFound { name } => TapError::NetnsNotFound { name },
            other => TapError::Netns(other),
        }
    }
}

/// One queue of a tap: an owned, non-blocking, close-on-exec fd. Reads return one frame; writes send one frame.
#[derive(Debug)]
pub struct TapQueue {
    fd: OwnedFd,
}

impl TapQueue {
    /// Reads one frame into `buf`. `WouldBlock` when none is pending (the fd is non-blocking by default).
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: the pointer and length describe `buf`, writable for its whole length; the fd is ours and open.
        cvt_size(unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
    }

    /// Writes one frame. `WouldBlock` when the device's queue is full.
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: the pointer and length describe `buf`, readable for its whole length; the fd is ours and open.
        cvt_size(unsafe { libc::write(self.fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) })
    }

    /// Writes one frame gathered from several slices (e.g. a `virtio_net_hdr` and the Ethernet frame).
    pub fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let count = libc::c_int::try_from(bufs.len()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "too many slices for one frame")
        })?;
        // SAFETY: std documents `IoSlice` as ABI-compatible with `struct iovec` on Unix; the slices borrow live
        // buffers for the duration of the call and writev only reads them.
        cvt_size(unsafe { libc::writev(self.fd.as_raw_fd(), bufs.as_ptr().cast(), count) })
    }

    /// Switches the fd between non-blocking (the default) and blocking mode.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        // SAFETY: F_GETFL takes no argument and only reads the fd's status flags.
        let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
        let flags = if nonblocking {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        // SAFETY: F_SETFL takes an int of status flags; we pass the fd's own flags with O_NONBLOCK changed.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags) }).map(drop)
    }

    /// `TUNSETOFFLOAD`: which offloads (`libc::TUN_F_CSUM | TUN_F_TSO4 | ...`) this side can take. Needs a
    /// device opened with `vnet_hdr`.
    pub fn set_offload(&self, flags: libc::c_uint) -> io::Result<()> {
        // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned long of TUN_F_* bits), not a pointer.
        cvt(unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::TUNSETOFFLOAD,
                libc::c_ulong::from(flags),
            )
        })
        .map(drop)
    }

    /// `TUNSETSTEERINGEBPF`: the kernel runs `prog` (a socket filter) on every frame it queues to this tap and
    /// puts the frame on the queue it returns, modulo the queue count; `None` goes back to the kernel's own
    /// choice. The device holds the program until replaced, so `prog` may be closed afterwards.
    pub fn set_steering_program(&self, prog: Option<BorrowedFd<'_>>) -> io::Result<()> {
        let fd: libc::c_int = prog.map_or(-1, |p| p.as_raw_fd());
        // SAFETY: TUNSETSTEERINGEBPF reads one int (a program fd, or -1) through the pointer, a live local.
        cvt(unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                TUNSETSTEERINGEBPF,
                &fd as *const libc::c_int,
            )
        })
        .map(drop)
    }

    /// `TUNSETVNETHDRSZ`: the `virtio_net_hdr` length in front of every frame (10, or 12 with mergeable buffers).
    pub fn set_vnet_hdr_len(&self, len: libc::c_int) -> io::Result<()> {
        // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer, which points at a live local.
        cvt(unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::TUNSETVNETHDRSZ,
                &len as *const libc::c_int,
            )
        })
        .map(drop)
    }
}

impl AsRawFd for TapQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for TapQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Opens `opts.queues` queues of tap `opts.name`, creating the device (and bringing its link up) when it does not
/// exist. With `opts.netns`, everything happens inside that namespace on a helper thread.
pub fn open_tap(opts: &TapOptions) -> Result<TapDevice, TapError> {
    validate(opts)?;
    match &opts.netns {
        Some(ns) => run_in_netns(ns, || open_here(opts))?,
        None => open_here(opts),
    }
}

fn validate(opts: &TapOptions) -> Result<(), TapError> {
    let n = &opts.name;
    if n.len() > MAX_NAME_LEN
        || n == "."
        || n == ".."
        || n.chars()
            .any(|c| c == '/' || c == '\0' || c.is_whitespace())
    {
        return Err(TapError::InvalidName { name: n.clone() });
    }
    if opts.queues == 0 || opts.queues > MAX_QUEUES {
        return Err(TapError::InvalidQueueCount {
            queues: opts.queues,
        });
    }
    Ok(())
}

/// Opens in the calling thread's namespace.
fn open_here(opts: &TapOptions) -> Result<TapDevice, TapError> {
    let existed = !opts.name.is_empty() && interface_exists(&opts.name)?;
    let mut name = opts.name.clone();
    let mut queues = Vec::with_capacity(opts.queues);
    for _ in 0..opts.queues {
        let (queue, kernel_name) = attach_queue(&name, opts.vnet_hdr)?;
        // The first attach may have created the device under a kernel-chosen name (`tap%d`); the rest join it.
        name = kernel_name;
        queues.push(queue);
    }
    if !existed {
        if let Some(mtu) = opts.mtu {
            set_mtu(&name, mtu)?;
        }
        set_link_up(&name)?;
    }
    let mut ring = queue_len(&name).ok();
    if let (Some(want), Some(have)) = (opts.ring, ring) {
        if want > have && set_queue_len(&name, want).is_ok() {
            ring = Some(want);
        }
    }
    Ok(TapDevice {
        name,
        queues,
        created: !existed,
        ring,
    })
}

fn interface_exists(name: &str) -> Result<bool, TapError> {
    let c = CString::new(name).map_err(|_| TapError::InvalidName {
        name: name.to_owned(),
    })?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    Ok(unsafe { libc::if_nametoindex(c.as_ptr()) } != 0)
}

fn new_ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain C data (a name array and a union of integers, sockaddrs and a pointer); all zeroes
    // is a valid value for each (an empty name, flags 0, a null pointer).
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    // `validate` bounded the name to IFNAMSIZ - 1 bytes, so the array keeps its NUL terminator.
    for (dst, &src) in ifr.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = src as libc::c_char;
    }
    ifr
}

fn ifreq_name(ifr: &libc::ifreq) -> String {
    let bytes: Vec<u8> = ifr
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Opens one fd on /dev/net/tun and attaches it to tap `name`. Returns the queue and the device's name.
fn attach_queue(name: &str, vnet_hdr: bool) -> Result<(TapQueue, String), TapError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(TUN_PATH)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => TapError::NoTunDevice,
            Some(libc::EACCES) | Some(libc::EPERM) => TapError::PermissionDenied {
                name: name.to_owned(),
            },
            _ => TapError::Io(e),
        })?;
    let fd = OwnedFd::from(file);

    let mut ifr = new_ifreq(name);
    let mut flags = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE;
    if vnet_hdr {
        flags |= libc::IFF_VNET_HDR;
    }
    // All TUNSETIFF flags used fit in 15 bits (0x5102 at most), so the short cannot overflow.
    ifr.ifr_ifru.ifru_flags = flags as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq` through the pointer, which points at our live local.
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNSETIFF,
            &mut ifr as *mut libc::ifreq,
        )
    };
    if let Err(e) = cvt(ret) {
        let name = name.to_owned();
        return Err(match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => TapError::PermissionDenied { name },
            Some(libc::EBUSY) => TapError::Busy { name },
            Some(libc::EINVAL) => explain_einval(name, e),
            _ => TapError::Io(e),
        });
    }
    Ok((TapQueue { fd }, ifreq_name(&ifr)))
}

/// TUNSETIFF says EINVAL both for "not a tap" and for "tap without multi_queue"; ask ethtool which it is.
fn explain_einval(name: String, original: io::Error) -> TapError {
    match driver_info(&name) {
        Ok((driver, bus)) if driver == "tun" && bus == "tap" => TapError::NotMultiQueue { name },
        Ok((driver, bus)) if driver == "tun" => TapError::NotATap {
            name,
            what: format!("a {bus} device"),
        },
        Ok((driver, _)) => TapError::NotATap {
            name,
            what: format!("driver {driver:?}"),
        },
        // The tun driver always answers GDRVINFO; a device that cannot is something else (e.g. loopback).
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => TapError::NotATap {
            name,
            what: "not made by the tun driver".to_owned(),
        },
        Err(_) => TapError::Io(original),
    }
}

fn inet_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket takes no pointers; a non-negative return is a new fd that we own exclusively.
    let raw =
        cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `raw` was just returned by socket and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// (driver, bus_info) of an interface via SIOCETHTOOL/ETHTOOL_GDRVINFO; the tun driver reports bus "tun" or "tap".
fn driver_info(name: &str) -> io::Result<(String, String)> {
    let sock = inet_socket()?;
    // SAFETY: EthtoolDrvinfo is plain integers and byte arrays; all zeroes is valid.
    let mut info: EthtoolDrvinfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    let mut ifr = new_ifreq(name);
    ifr.ifr_ifru.ifru_data = (&mut info as *mut EthtoolDrvinfo).cast();
    // SAFETY: SIOCETHTOOL reads the ifreq and writes one `struct ethtool_drvinfo` (whose layout EthtoolDrvinfo
    // mirrors) through `ifru_data`; both are live locals for the whole call.
    cvt(unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCETHTOOL as _,
            &mut ifr as *mut libc::ifreq,
        )
    })?;
    let text =
        |b: &[u8]| String::from_utf8_lossy(b.split(|&c| c == 0).next().unwrap_or(&[])).into_owned();
    Ok((text(&info.driver), text(&info.bus_info)))
}

/// The interface's queue length (SIOCGIFTXQLEN).
fn queue_len(name: &str) -> io::Result<u32> {
    let sock = inet_socket()?;
    let mut ifr = new_ifreq(name);
    // SAFETY: SIOCGIFTXQLEN reads the name and writes `ifru_ivalue` of our live ifreq.
    cvt(unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFTXQLEN as _,
            &mut ifr as *mut libc::ifreq,
        )
    })?;
    // SAFETY: SIOCGIFTXQLEN just wrote the union's int member (the kernel's `ifr_qlen`, i.e.
    // `ifru_ivalue`, which libc names `ifru_ifindex`: the same c_int at the same offset).
    let len = unsafe { ifr.ifr_ifru.ifru_ifindex };
    u32::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// Sets the interface's queue length (SIOCSIFTXQLEN); the tun driver resizes every queue's ring.
fn set_queue_len(name: &str, len: u32) -> io::Result<()> {
    let sock = inet_socket()?;
    let mut ifr = new_ifreq(name);
    // The kernel's `ifr_qlen` (`ifru_ivalue`): libc's `ifru_ifindex`, the same c_int.
    ifr.ifr_ifru.ifru_ifindex =
        libc::c_int::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: SIOCSIFTXQLEN reads the name and `ifru_ivalue` of our live ifreq.
    cvt(unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCSIFTXQLEN as _,
            &ifr as *const libc::ifreq,
        )
    })
    .map(drop)
}

/// Sets the interface's MTU (SIOCSIFMTU).
fn set_mtu(name: &str, mtu: u32) -> io::Result<()> {
    let sock = inet_socket()?;
    let mut ifr = new_ifreq(name);
    ifr.ifr_ifru.ifru_mtu =
        libc::c_int::try_from(mtu).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: SIOCSIFMTU reads the name and `ifru_mtu` of our live ifreq.
    cvt(unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCSIFMTU as _,
            &ifr as *const libc::ifreq,
        )
    })
    .map(drop)
}

/// Sets IFF_UP on `name` (SIOCGIFFLAGS + SIOCSIFFLAGS on an AF_INET socket in the current namespace).
fn set_link_up(name: &str) -> io::Result<()> {
    let sock = inet_socket()?;
    let mut ifr = new_ifreq(name);
    // SAFETY: SIOCGIFFLAGS reads the name and writes `ifru_flags` of our live ifreq.
    cvt(unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFFLAGS as _,
            &mut ifr as *mut libc::ifreq,
        )
    })?;
    // SAFETY: SIOCGIFFLAGS just initialized the `ifru_flags` member of the union.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    ifr.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads the name and `ifru_flags` of our live ifreq.
    cvt(unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCSIFFLAGS as _,
            &ifr as *const libc::ifreq,
        )
    })
    .map(drop)
}

#[cfg(test)]
mod tests;
