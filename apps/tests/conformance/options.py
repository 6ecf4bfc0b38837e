"""RFC 9293 §3.1 (Options) and §3.2 (MUST-4, MUST-6, MUST-64): a TCP implementation must take
options in any segment, skip NOPs, stop at EOL, and ignore without error any option it does not
implement (an unknown kind carries its length).

  1. A SYN whose known options (MSS 700, window scale 7, SACK permitted, timestamps) sit among
     NOPs and unknown options (kind 253 length 4, kind 99 length 2) and end with EOL completes, and
     every known option is honoured: the SYN-ACK offers window scaling, SACK and timestamps back
     and echoes our TSval; data segments carry timestamps and fit MSS 700 less the 12 bytes of
     the timestamp option (RFC 6691), and they use more than the 512 our window field says
     unscaled, so the scale is applied.
  2. The same with an unknown option of odd length (kind 99 length 3) before the MSS, which
     leaves every later option unaligned.
"""

import struct
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from tapconf import Conn, check, main, say  # noqa: E402

NOP, EOL = b"\x01", b"\x00"


def mss(n):
    return struct.pack("!BBH", 2, 4, n)


def ts(val):
    return struct.pack("!BBII", 8, 10, val, 0)


def args(p):
    p.add_argument("--chargen", type=int, required=True)


def honoured(tap, port, options, what):
    c = Conn(tap, port)
    tsval = c.tsval()
    raw = options(tsval)
    synack, _ = c.syn(options=raw, what="SYN with %s" % what)
    names = [n for n, _ in synack.options]
    check("WScale" in names, "RFC 7323 §2.2: window scale after %s not honoured: SYN-ACK options %r"
          % (what, synack.options))
    check("SAckOK" in names, "RFC 2018: SACK-permitted after %s not honoured: SYN-ACK options %r"
          % (what, synack.options))
    echo = synack.option("Timestamp")
    check(echo is not None and echo[1] == tsval,
          "RFC 7323 §3.2: the SYN-ACK must echo our TSval %d after %s: %r" % (tsval, what, synack.options))
    c.ts_on = True
    c.learn_ts(synack)
    # Our window: 512 << 7 = 64 KiB once the scale is applied (the SYN's own is never scaled).
    c.send(0x10, window=512)
    got, segs = c.receive(20000, window=512)
    limit = 700 - 12
    biggest = max(len(s.payload) for s in segs)
    for s in segs:
        check(len(s.payload) <= limit,
              "RFC 9293 §3.7.1: a %d-byte segment after MSS 700 with timestamps (at most %d): %r"
              % (len(s.payload), limit, s))
        check(s.option("Timestamp") is not None,
              "RFC 7323 §3.2: a data segment without timestamps once they are on: %r" % s)
    check(biggest > 512, "RFC 7323 §2.3: segments of at most %d bytes: our window scale was not applied"
          % biggest)
    c.reset()
    say("§3.2: after %s: handshake completes, WS/SACK/TS honoured, %d segments of at most %d bytes"
        % (what, len(segs), biggest))


def scenario(tap, a):
    honoured(
        tap, a.chargen,
        lambda tsval: NOP + bytes([253, 4, 0xDE, 0xAD]) + NOP + bytes([99, 2]) + mss(700) + NOP
        + bytes([3, 3, 7]) + bytes([4, 2]) + ts(tsval) + EOL,
        "NOP, unknown kinds 253/4 and 99/2, then MSS, WS, SACK-permitted, TS and EOL")
    honoured(
        tap, a.chargen,
        lambda tsval: bytes([99, 3, 0x5A]) + mss(700) + bytes([3, 3, 7]) + ts(tsval) + bytes([4, 2]),
        "unknown kind 99 of odd length 3 before unaligned MSS, WS, TS and SACK-permitted")


if __name__ == "__main__":
    main(scenario, args)
