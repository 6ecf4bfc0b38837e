"""The standard library's HTTP clients on a tapir node, against nginx on the kernel side."""

import hashlib
import http.client
import random
import subprocess
import urllib.request

import pytest

import tapir

from conftest import KERNEL, connect_when_listening


@pytest.fixture
def web(lab, tmp_path):
    """nginx in the lab on 10.7.0.1:8081 serving a 5 MB file and a small one."""
    www = tmp_path / "www"
    www.mkdir()
    big = random.Random(19).randbytes(5 << 20)
    (www / "big.bin").write_bytes(big)
    (www / "hello.txt").write_bytes(b"hello from the kernel's nginx\n")
    d = tmp_path
    conf = d / "nginx.conf"
    conf.write_text(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid %(d)s/nginx.pid;\n"
        "error_log %(d)s/error.log;\nevents { worker_connections 64; }\n"
        "http {\n  access_log off;\n  client_body_temp_path %(d)s/body;\n"
        "  proxy_temp_path %(d)s/proxy;\n  fastcgi_temp_path %(d)s/fcgi;\n"
        "  uwsgi_temp_path %(d)s/uwsgi;\n  scgi_temp_path %(d)s/scgi;\n"
        "  server { listen %(k)s:8081; root %(w)s; }\n}\n" % {"d": d, "k": KERNEL, "w": www}
    )
    lab.spawn("nginx", "-p", str(d), "-c", str(conf), stdout=subprocess.DEVNULL)
    return big


def test_http_client_gets_5_mb_from_nginx(lab, node, web):
    connect_when_listening(node, (KERNEL, 8081)).close()
    with tapir.patch(node):
        conn = http.client.HTTPConnection(KERNEL, 8081, timeout=30)
        conn.request("GET", "/big.bin")
        r = conn.getresponse()
        assert r.status == 200
        body = r.read()
        conn.close()
    assert len(body) == len(web)
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(web).hexdigest()
    # The connection was tapir's: the node counted it.
    assert "rx=" in node.stats()


def test_urllib_request_through_patch(lab, node, web, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    connect_when_listening(node, (KERNEL, 8081)).close()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with tapir.patch(node):
        with opener.open("http://%s:8081/hello.txt" % KERNEL, timeout=30) as r:
            assert r.status == 200
            assert r.read() == b"hello from the kernel's nginx\n"
    # Outside the block the standard library is itself again: the kernel has no route to
    # the lab from here.
    import socket

    assert socket.socket is not tapir.socket and not issubclass(socket.socket, tapir.socket)


def test_wget_saves_the_file(lab, node, web, tmp_path):
    connect_when_listening(node, (KERNEL, 8081)).close()
    out = tmp_path / "got.bin"
    r = node.wget("http://%s:8081/big.bin" % KERNEL, str(out))
    assert r["status"] == 200 and r["bytes"] == len(web)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(web).digest()


SMTP_PEER = r"""
import socket
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("10.7.0.1", 2525))
l.listen()
print("ready", flush=True)
c, _ = l.accept()
f = c.makefile("rb")
say = lambda line: c.sendall(line.encode() + b"\r\n")
say("220 kernel ESMTP")
body = []
in_data = False
for raw in f:
    line = raw.decode().rstrip("\r\n")
    if in_data:
        if line == ".":
            in_data = False
            say("250 queued")
        else:
            body.append(line)
        continue
    verb = line.split(" ", 1)[0].upper()
    if verb in ("EHLO", "HELO"):
        say("250 kernel")
    elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
        say("250 ok")
    elif verb == "DATA":
        say("354 go ahead")
        in_data = True
    elif verb == "QUIT":
        say("221 bye")
        break
c.close()
print("\n".join(body), flush=True)
"""


def test_smtplib_through_patch(lab, node):
    import smtplib
    import subprocess

    from conftest import kernel_python

    peer = kernel_python(lab, SMTP_PEER, stdout=subprocess.PIPE, text=True)
    assert peer.stdout.readline().strip() == "ready"
    with tapir.patch(node):
        with smtplib.SMTP(KERNEL, 2525, local_hostname="tapir", timeout=30) as smtp:
            refused = smtp.sendmail("node@tapir", ["kernel@lab"],
                                    "Subject: from tapir\r\n\r\nsent by smtplib on a tapir node\r\n")
    assert refused == {}
    out, _ = peer.communicate(timeout=30)
    assert "Subject: from tapir" in out
    assert "sent by smtplib on a tapir node" in out
