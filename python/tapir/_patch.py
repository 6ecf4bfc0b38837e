"""``with tapir.patch(node):`` puts a node's sockets under the standard library.

Inside the block ``socket.socket``, ``socket.create_connection`` and ``socket.getaddrinfo``
(also ``gethostbyname``) go through the node, and ``selectors.DefaultSelector`` and
socketserver's selector are tapir's, so ``http.client``, ``urllib.request``, ``smtplib`` and
``socketserver`` run on the node unchanged. Names are asked of the node's DNS servers. Leaving
the block puts everything back. The patch is process-wide (all threads see it) while it lasts.
"""

import contextlib
import selectors
import socket as _socket

import tapir

from .selector import TapirSelector


def _patched(node):
    base = tapir.socket

    class socket(base):
        """``socket.socket`` on a tapir node."""

        def __init__(self, family=_socket.AF_INET, type=_socket.SOCK_STREAM, proto=0,
                     fileno=None):
            if family == -1:
                family = _socket.AF_INET
            base.__init__(self, node, family, type if type != -1 else _socket.SOCK_STREAM,
                          0 if proto == -1 else proto, fileno)

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if family not in (0, _socket.AF_INET):
            raise _socket.gaierror(_socket.EAI_FAMILY, "tapir is IPv4 only")
        if isinstance(port, str):
            try:
                port = int(port)
            except ValueError:
                port = _socket.getservbyname(port)
        if port is None:
            port = 0
        if host in (None, ""):
            ip = "0.0.0.0" if flags & _socket.AI_PASSIVE else node.address
        else:
            if isinstance(host, bytes):
                host = host.decode("idna")
            ip = host if _is_ipv4(host) else _resolve(host)
        kinds = [type] if type else [_socket.SOCK_STREAM, _socket.SOCK_DGRAM]
        out = []
        for k in kinds:
            p = proto or (_socket.IPPROTO_TCP if k == _socket.SOCK_STREAM else
                          _socket.IPPROTO_UDP if k == _socket.SOCK_DGRAM else 0)
            out.append((_socket.AF_INET, _socket.SocketKind(k), p, "", (ip, port)))
        return out

    def _resolve(host):
        addrs = node.resolve(host)
        if not addrs:
            raise _socket.gaierror(_socket.EAI_NONAME, "%s has no IPv4 address" % host)
        return addrs[0]

    def gethostbyname(host):
        return host if _is_ipv4(host) else _resolve(host)

    def create_connection(address, timeout=_socket._GLOBAL_DEFAULT_TIMEOUT,
                          source_address=None, **_kw):
        host, port = address
        err = None
        for af, kind, proto, _, sa in getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
            s = socket(af, kind, proto)
            try:
                if timeout is not _socket._GLOBAL_DEFAULT_TIMEOUT:
                    s.settimeout(timeout)
                if source_address:
                    s.bind(source_address)
                s.connect(sa)
                return s
            except OSError as e:
                err = e
                s.close()
        raise err if err else OSError("getaddrinfo returns an empty list")

    return {
        "socket": socket,
        "SocketType": socket,
        "create_connection": create_connection,
        "getaddrinfo": getaddrinfo,
        "gethostbyname": gethostbyname,
    }


def _is_ipv4(host):
    try:
        _socket.inet_aton(host)
    except (OSError, TypeError):
        return False
    return host.count(".") == 3


@contextlib.contextmanager
def patch(node):
    """Make the standard library's sockets tapir's (``node``'s) inside the ``with`` block."""
    import socketserver

    saved = []

    def put(mod, name, value):
        saved.append((mod, name, getattr(mod, name)))
        setattr(mod, name, value)

    try:
        for name, value in _patched(node).items():
            put(_socket, name, value)
        put(selectors, "DefaultSelector", TapirSelector)
        if hasattr(socketserver, "_ServerSelector"):
            put(socketserver, "_ServerSelector", TapirSelector)
        yield node
    finally:
        for mod, name, value in reversed(saved):
            setattr(mod, name, value)
