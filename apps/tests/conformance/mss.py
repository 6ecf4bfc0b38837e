"""RFC 9293 §3.7.1 (MUST-14, MUST-15, MUST-16) and RFC 6691: the data in a segment never exceeds
the MSS the peer announced (less the options every segment carries), and a SYN without an MSS
option means 536 (MUST-15: "If an MSS Option is not received at connection setup, TCP
implementations MUST assume a default send MSS of 536 (576 - 40) for IPv4").

Each case opens a connection to chargen, takes 20 KB acknowledging every segment, and checks the
payload of every data segment:
  1. MSS 1000: at most 1000.
  2. MSS 550, 505 and 515 in one option list: at most 505, the smallest. RFC 9293 does not say
     which of several MSS options counts; issue 13 asks for the smallest, the only choice that
     fits every value the peer said (Linux takes the last one).
  3. no MSS option: at most 536.
  4. MSS 536 with timestamps: at most 524 (RFC 6691: the 12 bytes of the timestamp option come
     out of the MSS).
"""

import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from tapconf import Conn, check, main, say  # noqa: E402


def args(p):
    p.add_argument("--chargen", type=int, required=True)


def case(tap, port, options, limit, what):
    c = Conn(tap, port)
    c.connect(options=options)
    got, segs = c.receive(20000)
    sizes = [len(s.payload) for s in segs]
    over = [s for s in segs if len(s.payload) > limit]
    check(not over, "RFC 9293 §3.7.1: after %s, %d of %d segments exceed %d bytes (largest %d): %r"
          % (what, len(over), len(segs), limit, max(sizes), over[:3]))
    c.reset()
    say("§3.7.1: %s: %d segments, largest %d (limit %d)" % (what, len(segs), max(sizes), limit))


def scenario(tap, a):
    case(tap, a.chargen, [("MSS", 1000)], 1000, "MSS 1000")
    case(tap, a.chargen, [("MSS", 550), ("MSS", 505), ("MSS", 515)], 505, "MSS 550, 505, 515 in one SYN")
    case(tap, a.chargen, [], 536, "no MSS option")
    case(tap, a.chargen, [("MSS", 536), ("NOP", None), ("NOP", None), ("Timestamp", (1, 0))], 524,
         "MSS 536 with timestamps")


if __name__ == "__main__":
    main(scenario, args)
