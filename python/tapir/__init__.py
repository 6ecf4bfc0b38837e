"""tapir as a Python module: any Python program as a network node.

    import tapir
    with tapir.Node(netns="tapir-lab", tap="tap0", ip="10.7.0.2/24") as node:
        node.ping("10.7.0.1")
        with node.socket(tapir.AF_INET, tapir.SOCK_STREAM) as s:
            s.connect(("10.7.0.1", 80))
            s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
            print(s.recv(1000))

The stack is tapir's Rust engine (the extension ``tapir._tapir``); this package gives its
sockets the standard library's shape, and ``patch`` puts them under ``socket.socket``.
"""

import atexit as _atexit
import io as _io
import itertools as _itertools
import socket as _stdsocket
import weakref as _weakref

from . import _tapir
from ._tapir import (  # noqa: F401
    AF_INET,
    IP_HDRINCL,
    IP_TTL,
    IPPROTO_ICMP,
    IPPROTO_IP,
    IPPROTO_RAW,
    IPPROTO_TCP,
    IPPROTO_UDP,
    SHUT_RD,
    SHUT_RDWR,
    SHUT_WR,
    SO_BROADCAST,
    SO_ERROR,
    SO_KEEPALIVE,
    SO_REUSEADDR,
    SO_REUSEPORT,
    SO_TYPE,
    SOCK_DGRAM,
    SOCK_RAW,
    SOCK_STREAM,
    SOL_SOCKET,
    TCP_KEEPIDLE,
    TCP_NODELAY,
    Packet,
    Services,
    Trace,
)
from ._patch import patch  # noqa: F401,E402

__all__ = ["Node", "socket", "patch", "Packet", "Services", "Trace"]

_UNSET = object()


def _node_argv(netns, tap, ip, gateway, dns, queues, dhcp, offload, mtu, mac, extra):
    argv = ["--tap", tap]
    if netns is not None:
        argv += ["--netns", netns]
    if dhcp:
        argv.append("--dhcp")
    elif ip is not None:
        argv += ["--ip", ip]
    if gateway is not None:
        argv += ["--gateway", str(gateway)]
    if isinstance(dns, str):
        dns = [dns]
    for d in dns or ():
        argv += ["--dns", str(d)]
    if queues is not None:
        argv += ["--queues", str(int(queues))]
    # True/False, or one of the command's words ("on", "csum", "off").
    if isinstance(offload, str):
        argv += ["--offload", offload]
    else:
        argv += ["--offload", "on" if offload else "off"]
    if mtu is not None:
        argv += ["--mtu", str(int(mtu))]
    if mac is not None:
        argv += ["--mac", str(mac)]
    return argv + list(extra)


class Node(_tapir.Node):
    """A network node: a tap (in a network namespace) and tapir's stack behind it.

    ``Node(netns=None, tap="tap0", ip="10.7.0.2/24", gateway=None, dns=[], queues=1,
    dhcp=False, offload=True, mtu=None, mac=None, args=())``; ``offload`` is True, False or
    ``"csum"`` (checksums only, as ``--offload csum``); ``args`` takes any other
    option of the ``tapir`` command (``["--impair", "loss=0.01"]``). Closing the node (or
    leaving its ``with`` block) stops it; its sockets then fail with OSError.
    """

    def __new__(cls, netns=None, tap="tap0", ip=None, gateway=None, dns=(), queues=1,
                dhcp=False, offload=True, mtu=None, mac=None, args=(), *, argv=None):
        if argv is None:
            argv = _node_argv(netns, tap, ip, gateway, dns, queues, dhcp, offload, mtu, mac,
                              args)
        self = super().__new__(cls, list(argv))
        return self

    def __init__(self, *args, **kwargs):
        self._traces = []
        _live_nodes.add(self)

    @classmethod
    def from_args(cls, argv):
        """A node from the ``tapir`` command's node options, e.g. ``["--ip", "10.7.0.2/24"]``."""
        return cls(argv=list(argv))

    def socket(self, family=AF_INET, type=SOCK_STREAM, proto=0):
        """A socket of this node, as ``socket.socket(family, type, proto)`` would make."""
        return socket(self, family, type, proto)

    def trace(self, callback, filter=None, queue=4096):
        """Calls ``callback(packet)`` for every frame matching ``filter`` ("tcp and port 80"),
        from a thread of its own; returns a handle whose ``stop()`` ends it."""
        t = super().trace(callback, filter, queue)
        self._traces.append(t)
        return t

    def close(self):
        for t in getattr(self, "_traces", ()):
            t.stop()
        self._traces = []
        super().close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# Nodes still running when the interpreter exits are closed first (their trace threads call
# into Python, which must still be there).
_live_nodes = _weakref.WeakSet()


@_atexit.register
def _close_live_nodes():
    for n in list(_live_nodes):
        try:
            n.close()
        except Exception:
            pass


# Made-up file numbers: tapir sockets have no kernel descriptor, but selectors and servers ask
# for one; tapir.selector finds the socket from it.
_fileno_counter = _itertools.count(1 << 20)
_by_fileno = _weakref.WeakValueDictionary()
_blocking_errnos = {11, 115}


def _lookup_fileno(fd):
    return _by_fileno.get(fd)


class socket:
    """A tapir socket with the methods and semantics of ``socket.socket``."""

    def __init__(self, node, family=AF_INET, type=SOCK_STREAM, proto=0, fileno=None):
        if fileno is not None:
            raise OSError(95, "tapir sockets cannot wrap a kernel file descriptor")
        if family != AF_INET:
            raise OSError(97, "Address family not supported by protocol: tapir is IPv4 only")
        kind = type & 0xF
        self._node = node
        self._core = node._socket(kind, proto)
        self.family = AF_INET
        self.type = kind
        self.proto = self._core.proto
        self._timeout = _stdsocket.getdefaulttimeout()
        if self._timeout == 0:
            self._core.set_nonblocking(True)
        self._io_refs = 0
        self._closed = False
        self._fileno = next(_fileno_counter)
        _by_fileno[self._fileno] = self

    @classmethod
    def _from_core(cls, node, core, timeout):
        s = cls.__new__(cls)
        s._node = node
        s._core = core
        s.family = AF_INET
        s.type = SOCK_STREAM
        s.proto = IPPROTO_TCP
        s._timeout = None
        s._io_refs = 0
        s._closed = False
        s._fileno = next(_fileno_counter)
        _by_fileno[s._fileno] = s
        s.settimeout(timeout)
        return s

    def __repr__(self):
        state = "closed" if self._closed else ""
        try:
            laddr = " laddr=%s" % (self.getsockname(),)
        except OSError:
            laddr = ""
        return "<tapir.socket fd=%d type=%d%s %s>" % (self._fileno, self.type, laddr, state)

    # timeouts ----------------------------------------------------------------------------
    def settimeout(self, value):
        if value is not None:
            value = float(value)
            if value < 0:
                raise ValueError("Timeout value out of range")
        self._timeout = value
        self._core.set_nonblocking(value == 0)

    def gettimeout(self):
        return self._timeout

    def setblocking(self, flag):
        self.settimeout(None if flag else 0.0)

    def getblocking(self):
        return self._timeout != 0

    @property
    def timeout(self):
        return self._timeout

    # connections --------------------------------------------------------------------------
    def bind(self, address):
        self._core.bind(_addr(address))

    def listen(self, backlog=128):
        self._core.listen(int(backlog))

    def accept(self):
        core, addr = self._core.accept(self._timeout)
        return type(self)._from_core(self._node, core, _stdsocket.getdefaulttimeout()), addr

    def connect(self, address):
        self._core.connect(_addr(address), self._timeout or None)

    def connect_ex(self, address):
        try:
            self.connect(address)
        except OSError as e:
            return e.errno or 5
        return 0

    # data ---------------------------------------------------------------------------------
    def recv(self, bufsize, flags=0):
        _no_flags(flags)
        return self._core.recv(int(bufsize), self._timeout)

    def recv_into(self, buffer, nbytes=0, flags=0):
        _no_flags(flags)
        view = memoryview(buffer).cast("B")
        n = nbytes or len(view)
        data = self._core.recv(n, self._timeout)
        view[: len(data)] = data
        return len(data)

    def recvfrom(self, bufsize, flags=0):
        _no_flags(flags)
        return self._core.recvfrom(int(bufsize), self._timeout)

    def recvfrom_into(self, buffer, nbytes=0, flags=0):
        _no_flags(flags)
        view = memoryview(buffer).cast("B")
        data, addr = self._core.recvfrom(nbytes or len(view), self._timeout)
        view[: len(data)] = data
        return len(data), addr

    def send(self, data, flags=0):
        _no_flags(flags)
        return self._core.send(bytes(data), False, self._timeout)

    def sendall(self, data, flags=0):
        _no_flags(flags)
        self._core.send(bytes(data), True, self._timeout)

    def sendto(self, data, flags_or_addr, addr=None):
        if addr is None:
            addr = flags_or_addr
        else:
            _no_flags(flags_or_addr)
        return self._core.sendto(bytes(data), _addr(addr), self._timeout)

    def shutdown(self, how):
        self._core.shutdown(how)

    # options and names --------------------------------------------------------------------
    def setsockopt(self, level, optname, value, optlen=None):
        if isinstance(value, (bytes, bytearray)):
            value = int.from_bytes(bytes(value[:4]) or b"\0", "little")
        self._core.setsockopt(level, optname, int(value))

    def getsockopt(self, level, optname, buflen=None):
        v = self._core.getsockopt(level, optname)
        if buflen:
            return int(v).to_bytes(4, "little")[:buflen]
        return v

    def getsockname(self):
        return self._core.getsockname()

    def getpeername(self):
        return self._core.getpeername()

    def fileno(self):
        return -1 if self._closed and self._io_refs <= 0 else self._fileno

    # files and closing --------------------------------------------------------------------
    def makefile(self, mode="r", buffering=None, *, encoding=None, errors=None, newline=None):
        """An I/O stream over the socket, as ``socket.socket.makefile`` gives."""
        if not set(mode) <= {"r", "w", "b"}:
            raise ValueError("invalid mode %r (only r, w, b allowed)" % (mode,))
        writing = "w" in mode
        reading = "r" in mode or not writing
        binary = "b" in mode
        raw = _stdsocket.SocketIO(self, ("r" if reading else "") + ("w" if writing else ""))
        self._io_refs += 1
        if buffering is None or buffering < 0:
            buffering = _io.DEFAULT_BUFFER_SIZE
        if buffering == 0:
            if not binary:
                raise ValueError("unbuffered streams must be binary")
            return raw
        if reading and writing:
            buf = _io.BufferedRWPair(raw, raw, buffering)
        elif reading:
            buf = _io.BufferedReader(raw, buffering)
        else:
            buf = _io.BufferedWriter(raw, buffering)
        if binary:
            return buf
        text = _io.TextIOWrapper(buf, encoding or "utf-8", errors, newline)
        text.mode = mode
        return text

    def _decref_socketios(self):
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closed:
            self.close()

    def _real_close(self):
        self._core.close()

    def close(self):
        self._closed = True
        if self._io_refs <= 0:
            self._real_close()

    def detach(self):
        raise OSError(95, "tapir sockets have no kernel file descriptor to detach")

    def readable(self, timeout=0.0):
        """Whether a read would not wait (waiting up to ``timeout`` seconds for it)."""
        return self._core.readable(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if not self._closed:
                self._core.close()
        except Exception:
            pass


def _addr(address):
    if not isinstance(address, tuple) or len(address) != 2:
        raise TypeError("AF_INET address must be a tuple (host, port)")
    host, port = address
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise OverflowError("port must be 0-65535.")
    if host in ("localhost", "<broadcast>"):
        raise OSError(99, "%s: tapir has no loopback or broadcast address" % host)
    return (str(host), port)


def _no_flags(flags):
    if flags:
        raise OSError(95, "tapir sockets take no flags (got %r)" % (flags,))

