"""The packet log handed to Python, and the REPL driven through a pty."""

import os
import pty
import select
import subprocess
import sys

import pytest

import tapir

from conftest import KERNEL, NODE, ROOT


def test_trace_receives_the_packets_of_a_curl(lab, node, tmp_path):
    (tmp_path / "hello.txt").write_text("hello from tapir's http\n")
    got = []
    with node.serve("http=%s" % tmp_path) as svc:
        assert "http/tcp:80" in svc.labels
        t = node.trace(got.append, filter="tcp and port 80")
        out = lab.run("curl", "-sS", "--max-time", "20", "http://%s/hello.txt" % NODE)
        t.stop()
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"hello from tapir's http\n"
    assert t.delivered == len(got) and t.dropped == 0
    assert got, "no packets traced"
    dirs = {p.direction for p in got}
    assert dirs == {"in", "out"}
    syn = [p for p in got if p.direction == "in" and "Flags [S]" in p.summary]
    assert syn and KERNEL in syn[0].summary
    for p in got:
        names = [layer["name"] for layer in p.layers]
        assert names[:3] == ["ethernet", "ipv4", "tcp"], names
        tcp = p.layers[2]
        assert 80 in (tcp["sport"], tcp["dport"])
        assert len(p.raw) == p.length and p.time > 0
    # The request and the answer, decoded by tapir's HTTP decoder.
    assert any("GET /hello.txt" in p.summary for p in got)
    # Only what the filter let through: nothing of port 80's neighbours.
    assert t.recorded == len(got)


def test_trace_filter_errors_are_value_errors(node):
    with pytest.raises(ValueError):
        node.trace(print, filter="tcp and and")


def read_until(fd, want, limit=30.0):
    """Reads the pty until `want` shows up (at most `limit` seconds, then fails)."""
    buf = b""
    import time

    end = time.monotonic() + limit
    while want not in buf:
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError("no %r in the REPL's output: %r" % (want, buf))
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError("the REPL ended before %r: %r" % (want, buf))
            buf += chunk
    return buf


def test_repl_through_a_pty(lab):
    main, sub = pty.openpty()
    env = dict(os.environ, PYTHONPATH="", TERM="dumb")
    p = subprocess.Popen(
        [sys.executable, "-m", "tapir", "--netns", lab.ns, "--tap", "tap0",
         "--ip", NODE + "/24", "--queues", "1"],
        stdin=sub, stdout=sub, stderr=sub, env=env, cwd=str(ROOT), close_fds=True,
    )
    os.close(sub)
    try:
        banner = read_until(main, b">>> ")
        assert b"tapir @ 10.7.0.2/24" in banner
        os.write(main, b'r = ping("%s", count=1)\n' % KERNEL.encode())
        out = read_until(main, b">>> ")
        assert b"1 packets transmitted, 1 received" in out
        os.write(main, b"s = socket(SOCK_DGRAM); s.sendto(b'x', ('%s', 9)); s.getsockname()\n"
                 % KERNEL.encode())
        out = read_until(main, b">>> ")
        assert b"('10.7.0.2', " in out
        os.write(main, b"exit()\n")
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(main)


def test_repl_bad_options_exit_2(lab):
    r = subprocess.run([sys.executable, "-m", "tapir", "--ip", "10.7.0.2/24", "--bogus"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "--bogus" in r.stderr
