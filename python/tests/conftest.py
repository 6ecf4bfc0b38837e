"""Lab namespaces for the Python module's tests, made with deploy/lab (as the Rust interop
tests' labs are): `tapir-py-PID-N`, the kernel at 10.7.0.1/24 on the tap's far side, tapir at
10.7.0.2/24. Every lab is removed when its test ends, failed or not. Needs root and
/dev/net/tun; without them the tests are skipped, saying why."""

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tapir

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "deploy" / "lab"
KERNEL = "10.7.0.1"
NODE = "10.7.0.2"
_count = itertools.count()


def _can_lab():
    if os.geteuid() != 0:
        return "needs root (lab namespaces)"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun"
    return None


class Lab:
    def __init__(self):
        self.ns = "tapir-py-%d-%d" % (os.getpid(), next(_count))
        self.procs = []
        out = subprocess.run(
            ["bash", str(LAB), "up", self.ns, "--tap", "tap0", "--host-ip", KERNEL + "/24"],
            capture_output=True, text=True, stdin=subprocess.DEVNULL,
        )
        if out.returncode != 0:
            raise RuntimeError("cannot build lab %s: %s" % (self.ns, out.stderr.strip()))

    def cmd(self, *argv):
        return ["ip", "netns", "exec", self.ns, *argv]

    def run(self, *argv, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("timeout", 60)
        return subprocess.run(self.cmd(*argv), **kw)

    def spawn(self, *argv, **kw):
        """A process in the lab, ended (by its pid) when the lab goes."""
        p = subprocess.Popen(self.cmd(*argv), **kw)
        self.procs.append(p)
        return p

    def node(self, **kw):
        kw.setdefault("queues", 2)
        return tapir.Node(netns=self.ns, tap="tap0", ip=NODE + "/24", **kw)

    def down(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        subprocess.run(["bash", str(LAB), "down", self.ns], capture_output=True,
                       stdin=subprocess.DEVNULL)


@pytest.fixture
def lab():
    why = _can_lab()
    if why:
        pytest.skip(why)
    lab = Lab()
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture
def node(lab):
    n = lab.node()
    try:
        yield n
    finally:
        n.close()


def connect_when_listening(node, addr, tries=200):
    """A tapir TCP connection to `addr`, retried while the kernel's server is still starting
    (refused): how a test waits for a server it started to be ready."""
    for _ in range(tries):
        s = node.socket(tapir.AF_INET, tapir.SOCK_STREAM)
        try:
            s.settimeout(10)
            s.connect(addr)
            return s
        except ConnectionRefusedError:
            s.close()
            time.sleep(0.05)
    raise AssertionError("nothing listens on %s:%d" % addr)


def kernel_python(lab, script, **kw):
    """Debian's python3 running `script` inside the lab (kernel sockets)."""
    py = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    return lab.spawn(py, "-u", "-c", script, **kw)
