"""RFC 9293 §3.1 (Checksum) and §3.10.7 (MUST-2, MUST-3): a segment whose checksum is wrong is
dropped unseen.

  1. A SYN with a wrong checksum, and one whose checksum field is zero (TCP has no "no checksum"
     value, unlike UDP), draw no SYN-ACK; the same SYN with the right checksum does.
  2. In ESTABLISHED, a data segment with a wrong checksum is not taken (nothing acknowledged,
     nothing echoed: the right segment at the same sequence number is what comes back), and an
     out-of-window ACK with a wrong or a zero checksum draws nothing, while the same ACK with the right
     checksum draws the ACK of RFC 9293 §3.10.7.4 (the order sentinel).
"""

import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from tapconf import ACK, PSH, SYN, QUIET, Conn, check, main, say  # noqa: E402


def args(p):
    p.add_argument("--echo", type=int, required=True)


def bad_syn(tap, port, mode):
    """A SYN with a `mode` ("wrong" or "zero") checksum from a fresh port draws nothing; the same
    SYN with the right checksum then draws a SYN-ACK."""
    while True:
        c = Conn(tap, port)
        right = tap.checksum_of(c.packet(SYN, options=[("MSS", 1460)]))
        if right != 0:  # a zero field must be wrong
            break
    since = c.send(SYN, options=[("MSS", 1460)], chksum=mode, advance=False,
                   what="SYN from %r with a %s checksum" % (c, mode))
    # The order sentinel: a right SYN from another port; an answer to ours would come first.
    sentinel = Conn(tap, port)
    sentinel.syn(what="the order sentinel's SYN")
    answers = c.collect(since, QUIET)
    check(not answers, "RFC 9293 §3.1: a SYN with a %s checksum drew %r" % (mode, answers))
    sentinel.reset()
    # The control: the same SYN with its right checksum is answered.
    c.syn(what="the same SYN with its right checksum %#06x" % right)
    c.reset()
    say("§3.1: a SYN with a %s checksum draws nothing; the same SYN with the right one, a SYN-ACK"
        % mode)


def established(tap, port):
    c = Conn(tap, port)
    c.connect()
    # A data segment with a wrong checksum: must not be taken.
    since = c.send(PSH | ACK, payload=b"WRONG", chksum="wrong", advance=False,
                   what="data 'WRONG' with a wrong checksum")
    # An out-of-window ACK with a wrong checksum: must draw nothing.
    far = (c.snd_nxt + 1_000_000) % (1 << 32)
    c.send(ACK, seq=far, chksum="wrong", what="out-of-window ACK with a wrong checksum")
    # And with a zero checksum field, unless zero happens to be this ACK's right sum.
    zero = tap.checksum_of(c.packet(ACK, seq=far)) != 0
    if zero:
        c.send(ACK, seq=far, chksum="zero", what="out-of-window ACK with a zero checksum")
    # The sentinel: the same ACK with the right checksum draws an ACK of RCV.NXT (§3.10.7.4).
    sentinel = c.send(ACK, seq=far, what="out-of-window ACK with the right checksum")
    dup = c.wait(lambda s: not s.payload, sentinel)
    check(dup is not None and dup.has(ACK) and dup.ack == c.snd_nxt,
          "RFC 9293 §3.10.7.4: an unacceptable segment must draw an ACK of RCV.NXT %d, got %r"
          % (c.snd_nxt, dup))
    before = [s for s in tap.log[since:tap.log.index(dup)] if c.mine(s)]
    check(not before, "RFC 9293 §3.1: segments with a wrong checksum drew %r" % before)
    # The right data at the same sequence number is what the echo returns.
    c.data(b"RIGHT")
    got, _ = c.receive(5)
    check(got == b"RIGHT", "RFC 9293 §3.1: the echo returned %r: the wrong-checksum data was taken"
          % got)
    c.reset()
    quiet = c.collect(tap.mark(), QUIET)
    check(not quiet, "RFC 9293 §3.10.7.4: our RST drew %r" % quiet)
    say("§3.1: in ESTABLISHED, data and an ACK with a wrong checksum%s are dropped unseen"
        % (", and an ACK with a zero one," if zero else ""))


def scenario(tap, a):
    bad_syn(tap, a.echo, "wrong")
    bad_syn(tap, a.echo, "zero")
    established(tap, a.echo)


if __name__ == "__main__":
    main(scenario, args)
