"""RFC 9293 §3.1 (Reserved): "A set of control bits reserved for future use. Must be zero in
generated segments and must be ignored in received segments if the corresponding future features
are not implemented by the sending or receiving host." (The four bits after the data offset; the
lowest was the experimental NS bit of RFC 3540, now historic, RFC 8311.)

  1. A SYN with all four reserved bits set draws a SYN-ACK, with the bits zero.
  2. The handshake's ACK and data segments with the bits set are taken: the echo returns the data
     complete and in order, and every segment tapir sends has the bits zero (checked for every
     segment by tapconf's invariants).
  3. An out-of-window ACK with the bits set draws the ACK of RFC 9293 §3.10.7.4 as it would without
     them: the bits change nothing in the acceptability test.
"""

import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from tapconf import ACK, PSH, Conn, check, main, say  # noqa: E402

ALL = 0xF


def args(p):
    p.add_argument("--echo", type=int, required=True)


def scenario(tap, a):
    c = Conn(tap, a.echo)
    synack, _ = c.syn(reserved=ALL, what="SYN with the reserved bits %#x" % ALL)
    check(synack.reserved == 0, "RFC 9293 §3.1: the SYN-ACK has reserved bits %#x" % synack.reserved)
    c.send(ACK, reserved=ALL)
    sent = b""
    for i in range(4):
        chunk = b"reserved-bits-%d;" % i
        c.data(chunk, reserved=ALL)
        sent += chunk
    got, segs = c.receive(len(sent))
    check(got == sent, "RFC 9293 §3.1: segments with the reserved bits set: echo %r, not %r" % (got, sent))
    far = (c.snd_nxt + 1_000_000) % (1 << 32)
    since = c.send(ACK, seq=far, reserved=ALL, what="out-of-window ACK with the reserved bits set")
    dup = c.wait(lambda s: not s.payload, since)
    check(dup is not None and dup.ack == c.snd_nxt,
          "RFC 9293 §3.10.7.4: an unacceptable ACK with the reserved bits set must draw an ACK of %d: %r"
          % (c.snd_nxt, dup))
    c.send(PSH | ACK, payload=b"x", reserved=ALL)
    got, _ = c.receive(1)
    check(got == b"x", "echo after the out-of-window ACK: %r" % got)
    c.reset()
    say("§3.1: reserved bits set on a SYN, an ACK and %d data segments are ignored; tapir's %d segments "
        "have them zero" % (5, len([s for s in tap.log if c.mine(s)])))


if __name__ == "__main__":
    main(scenario, args)
