"""tapir sockets with the socket module's semantics, against the kernel's tools."""

import _thread
import errno
import socket as stdsocket
import socketserver
import struct
import threading
import time

import pytest

import tapir

from conftest import KERNEL, NODE, connect_when_listening, kernel_python


class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line.upper())


def test_socketserver_echo_answered_by_kernel_nc(lab, node):
    with tapir.patch(node):
        server = socketserver.ThreadingTCPServer(("", 7007), Echo)
        assert isinstance(server.socket, tapir.socket)
        assert server.server_address == (NODE, 7007)
        t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
        t.start()
        try:
            # -N: shut the connection down at the end of input; the server's answer then ends
            # with its close.
            out = lab.run("nc", "-N", "-w", "10", NODE, "7007",
                          input=b"hello tapir\nsecond line\n")
        finally:
            server.shutdown()
            server.server_close()
            t.join()
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"HELLO TAPIR\nSECOND LINE\n"


UDP_PEER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.7.0.1", 9999))
print("ready", flush=True)
data, addr = s.recvfrom(2048)
s.sendto(data.upper(), addr)
# The kernel starts the other exchange, from a socket of its own, to the port tapir bound.
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(20)
c.sendto(b"from the kernel", (addr[0], 9998))
reply, _ = c.recvfrom(2048)
print(reply.decode(), flush=True)
"""


def test_udp_both_ways(lab, node):
    import subprocess

    peer = kernel_python(lab, UDP_PEER, stdout=subprocess.PIPE, text=True)
    assert peer.stdout.readline().strip() == "ready"
    s = node.socket(tapir.AF_INET, tapir.SOCK_DGRAM)
    s.settimeout(20)
    s.bind(("", 9998))
    assert s.getsockname() == (NODE, 9998)
    assert s.sendto(b"to the kernel", (KERNEL, 9999)) == 13
    data, addr = s.recvfrom(2048)
    assert (data, addr) == (b"TO THE KERNEL", (KERNEL, 9999))
    data, addr = s.recvfrom(2048)
    assert data == b"from the kernel" and addr[0] == KERNEL and addr[1] != 9999
    s.sendto(b"answered by tapir", addr)
    assert peer.stdout.readline().strip() == "answered by tapir"
    assert peer.wait(timeout=20) == 0
    s.close()


def test_settimeout_raises_timeout_error(lab, node):
    lab.spawn("nc", "-l", KERNEL, "7100")
    s = connect_when_listening(node, (KERNEL, 7100))
    s.settimeout(0.3)
    assert s.gettimeout() == 0.3
    t = time.monotonic()
    with pytest.raises(TimeoutError):
        s.recv(100)
    assert time.monotonic() - t >= 0.3
    # Non-blocking: at once, BlockingIOError.
    s.setblocking(False)
    with pytest.raises(BlockingIOError):
        s.recv(100)
    s.close()
    u = node.socket(tapir.AF_INET, tapir.SOCK_DGRAM)
    u.bind(("", 0))
    u.settimeout(0.2)
    with pytest.raises(TimeoutError):
        u.recvfrom(100)
    u.close()


def test_connection_refused_on_a_closed_port(lab, node):
    s = node.socket(tapir.AF_INET, tapir.SOCK_STREAM)
    with pytest.raises(ConnectionRefusedError) as e:
        s.connect((KERNEL, 9))
    assert e.value.errno == errno.ECONNREFUSED
    s2 = node.socket(tapir.AF_INET, tapir.SOCK_STREAM)
    assert s2.connect_ex((KERNEL, 9)) == errno.ECONNREFUSED
    s.close()
    s2.close()


def test_connected_udp_hears_port_unreachable_as_connection_refused(lab, node):
    # The kernel answers a datagram to a closed port with ICMP port unreachable; a connected
    # socket turns it into ECONNREFUSED on its next recv, as Linux's does, instead of waiting
    # out its timeout. An unconnected socket does not.
    u = node.socket(tapir.AF_INET, tapir.SOCK_DGRAM)
    u.settimeout(20)
    u.connect((KERNEL, 9))
    u.send(b"anyone?")
    with pytest.raises(ConnectionRefusedError) as e:
        u.recv(100)
    assert e.value.errno == errno.ECONNREFUSED
    u.close()
    v = node.socket(tapir.AF_INET, tapir.SOCK_DGRAM)
    v.settimeout(0.5)
    v.sendto(b"anyone?", (KERNEL, 9))
    with pytest.raises(TimeoutError):
        v.recvfrom(100)
    v.close()


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def test_raw_icmp_socket_sees_echo_replies(lab, node):
    raw = node.socket(tapir.AF_INET, tapir.SOCK_RAW, tapir.IPPROTO_ICMP)
    raw.settimeout(10)
    ident = 0x7199
    for seq in (1, 2):
        body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"tapir raw"
        body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
        raw.sendto(body, (KERNEL, 0))
        while True:
            packet, addr = raw.recvfrom(2048)
            ihl = (packet[0] & 0xF) * 4
            icmp_type, _, _, rid, rseq = struct.unpack("!BBHHH", packet[ihl:ihl + 8])
            if icmp_type == 0 and rid == ident:
                break
        assert addr[0] == KERNEL
        assert rseq == seq
        assert packet[ihl + 8:] == b"tapir raw"
        assert stdsocket.inet_ntoa(packet[12:16]) == KERNEL
    raw.close()


def test_ctrl_c_interrupts_a_blocking_accept_and_recv(lab, node):
    listener = node.socket(tapir.AF_INET, tapir.SOCK_STREAM)
    listener.bind(("", 7200))
    listener.listen()
    threading.Timer(0.2, _thread.interrupt_main).start()
    with pytest.raises(KeyboardInterrupt):
        listener.accept()
    lab.spawn("nc", "-l", KERNEL, "7201")
    s = connect_when_listening(node, (KERNEL, 7201))
    threading.Timer(0.2, _thread.interrupt_main).start()
    with pytest.raises(KeyboardInterrupt):
        s.recv(10)
    s.close()
    listener.close()


def test_gil_is_released_while_blocked(lab, node):
    listener = node.socket(tapir.AF_INET, tapir.SOCK_STREAM)
    listener.bind(("", 7300))
    listener.listen()
    listener.settimeout(1.0)
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    with pytest.raises(TimeoutError):
        listener.accept()
    stop.set()
    t.join()
    # The counting thread ran while accept waited (with the GIL held it could not have).
    assert len(ticks) > 10
    listener.close()


def test_closed_node_gives_oserror_not_a_crash(lab):
    node = lab.node()
    listener = node.socket(tapir.AF_INET, tapir.SOCK_STREAM)
    listener.bind(("", 7400))
    listener.listen()
    got = []

    def accept():
        try:
            listener.accept()
        except OSError as e:
            got.append(e)

    t = threading.Thread(target=accept)
    t.start()
    # The accept blocks in the engine (or is about to); the node stops under it.
    time.sleep(0.2)
    node.close()
    t.join(timeout=20)
    assert not t.is_alive()
    assert len(got) == 1 and isinstance(got[0], OSError)
    with pytest.raises(OSError):
        listener.accept()
    with pytest.raises(OSError):
        node.socket(tapir.AF_INET, tapir.SOCK_STREAM)
    with pytest.raises(OSError):
        node.ping(KERNEL)
    node.close()  # again: nothing


def test_socket_surface(lab, node):
    s = node.socket(tapir.AF_INET, tapir.SOCK_STREAM)
    s.setsockopt(tapir.IPPROTO_TCP, tapir.TCP_NODELAY, 1)
    assert s.getsockopt(tapir.IPPROTO_TCP, tapir.TCP_NODELAY) == 1
    s.setsockopt(tapir.SOL_SOCKET, tapir.SO_REUSEADDR, 1)
    SO_LINGER = 13
    with pytest.raises(OSError) as e:
        s.setsockopt(tapir.SOL_SOCKET, SO_LINGER, 1)
    assert e.value.errno == errno.ENOPROTOOPT
    with pytest.raises(OSError) as e:
        s.getpeername()
    assert e.value.errno == errno.ENOTCONN
    with pytest.raises(OSError) as e:
        s.bind(("10.9.9.9", 80))
    assert e.value.errno == errno.EADDRNOTAVAIL
    s.close()
    with pytest.raises(OSError):
        s.recv(1)
    with pytest.raises(OSError):
        node.socket(tapir.AF_INET, 99)


def test_bad_node_options_are_value_errors(lab):
    with pytest.raises(ValueError, match="/30"):
        tapir.Node(netns=lab.ns, ip="10.7.0.2/31")
    with pytest.raises(ValueError):
        tapir.Node(netns=lab.ns, ip="not-an-address")


def test_so_keepalive_probes_an_idle_connection(lab, node):
    lab.spawn("nc", "-l", KERNEL, "7500")
    s = connect_when_listening(node, (KERNEL, 7500))
    s.setsockopt(tapir.IPPROTO_TCP, tapir.TCP_KEEPIDLE, 1)
    assert s.getsockopt(tapir.SOL_SOCKET, tapir.SO_KEEPALIVE) == 0
    probed = threading.Event()
    answered = threading.Event()

    def watch(p):
        tcp = p.layers[2] if len(p.layers) > 2 else {}
        bare = tcp.get("flags") == "." and [la["name"] for la in p.layers][-1] == "tcp"
        if p.direction == "out" and bare:
            probed.set()
        elif p.direction == "in" and bare and probed.is_set():
            answered.set()

    t = node.trace(watch, filter="tcp and port 7500")
    s.setsockopt(tapir.SOL_SOCKET, tapir.SO_KEEPALIVE, 1)
    assert s.getsockopt(tapir.SOL_SOCKET, tapir.SO_KEEPALIVE) == 1
    # An idle connection sends nothing, unless keep-alive is on: a probe after 1 s idle, and
    # the kernel's ACK for it.
    assert probed.wait(20), "no keep-alive probe"
    assert answered.wait(20), "the kernel did not answer the probe"
    t.stop()
    s.close()
