"""RFC 9293 §3.1 and §3.2 (MUST-7: "a TCP implementation MUST be prepared to handle an illegal
option length (e.g., zero) without crashing; a suggested procedure is to reset the connection and
log the error cause"): options whose length is illegal, and bytes after EOL, neither crash nor
confuse tapir.

  1. SYNs with an option of length 0, of length 1, an MSS of length 3 (a known kind with the
     wrong length), an option whose length runs past the header, and an MSS cut by the end of
     the header: each is either dropped (no answer, shown by an order sentinel) or draws a
     SYN-ACK whose connection then works (an echo); nothing else.
  2. A SYN with MSS 700, EOL, and then an MSS 100 and an option of length 0 after the EOL: the
     option list ended at EOL (RFC 9293 §3.2, End of Option List), so the connection completes
     and its segments use MSS 700, not 100.
  3. In ESTABLISHED, a data segment with an option of length 0, then the same sequence range with
     other bytes and clean options: the stream holds exactly one of the two (the bad segment was
     either dropped or taken whole), then goes on.
  4. After all that, a clean connection still works (and the Rust side checks the kernel's).
"""

import struct
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from tapconf import ACK, PSH, QUIET, RST, SYN, Conn, Violation, check, main, say  # noqa: E402

MSS_1460 = struct.pack("!BBH", 2, 4, 1460)

SYN_CASES = [
    ("an unknown option of length 0", bytes([99, 0]) + MSS_1460),
    ("an unknown option of length 1", bytes([99, 1]) + MSS_1460),
    ("an MSS option of length 3", bytes([2, 3, 5]) + b"\x01" + MSS_1460),
    ("an option whose length 40 runs past the header", MSS_1460 + bytes([253, 40, 0, 0])),
    ("an MSS option cut by the end of the header", bytes([1, 1, 2, 4])),
    ("a window-scale option of length 2 before MSS", bytes([3, 2]) + MSS_1460),
]


def args(p):
    p.add_argument("--echo", type=int, required=True)
    p.add_argument("--chargen", type=int, required=True)


def echo_works(c, msg):
    c.data(msg)
    got, _ = c.receive(len(msg))
    check(got == msg, "the echo returned %r, not %r" % (got, msg))


def bad_syn(tap, port, what, options):
    c = Conn(tap, port)
    since = c.send(SYN, options=options, what="SYN with %s" % what)
    sentinel = Conn(tap, port)
    try:
        sentinel.syn(what="the order sentinel's SYN")
    except Violation as e:
        raise Violation("RFC 9293 §3.1 (MUST-7): after a SYN with %s tapir stopped answering: %s" % (what, e))
    answers = c.collect(since, QUIET)
    sentinel.reset()
    if not answers:
        say("§3.1: a SYN with %s: dropped (no answer)" % what)
        return
    first = answers[0]
    check(first.has(SYN | ACK) and not first.has(RST) and first.ack == c.snd_nxt,
          "RFC 9293 §3.1: a SYN with %s drew neither silence nor a SYN-ACK of our SYN: %r" % (what, answers))
    c.irs, c.rcv_nxt = first.seq, (first.seq + 1) % (1 << 32)
    c.send(ACK)
    echo_works(c, b"works after %s" % what.encode())
    c.reset()
    say("§3.1: a SYN with %s: accepted, and the connection works" % what)


def after_eol(tap, port):
    c = Conn(tap, port)
    options = struct.pack("!BBH", 2, 4, 700) + b"\x00" + struct.pack("!BBH", 2, 4, 100) + bytes([99, 0, 0])
    c.connect(options=options)
    got, segs = c.receive(10000)
    biggest = max(len(s.payload) for s in segs)
    check(biggest <= 700, "RFC 9293 §3.7.1: a %d-byte segment after MSS 700" % biggest)
    check(biggest > 100, "RFC 9293 §3.2: the MSS 100 after EOL was taken: segments of at most %d bytes"
          % biggest)
    c.reset()
    say("§3.2: options after EOL are ignored: MSS 700 used (largest segment %d)" % biggest)


def established(tap, port):
    c = Conn(tap, port)
    c.connect()
    echo_works(c, b"before;")
    start = c.snd_nxt
    bad, good = b"BAD-OPTION;", b"clean-data;"
    c.send(PSH | ACK, payload=bad, options=bytes([99, 0, 0, 0]), advance=False,
           what="data with an option of length 0")
    c.send(PSH | ACK, payload=good, seq=start, advance=False, what="the same range, clean")
    c.snd_nxt = (start + len(good)) % (1 << 32)
    got, _ = c.receive(len(good))
    check(got in (bad, good), "RFC 9293 §3.1: after a segment with an option of length 0 the stream "
          "holds %r, neither %r nor %r" % (got, bad, good))
    echo_works(c, b"after;")
    c.reset()
    say("§3.1: in ESTABLISHED, a segment with an option of length 0 was %s; the stream stayed whole"
        % ("taken" if got == bad else "dropped"))


def scenario(tap, a):
    for what, options in SYN_CASES:
        bad_syn(tap, a.echo, what, options)
    after_eol(tap, a.chargen)
    established(tap, a.echo)
    c = Conn(tap, a.echo)
    c.connect()
    echo_works(c, b"still serving")
    c.reset()
    say("tapir still serves after the malformed options")


if __name__ == "__main__":
    main(scenario, args)
