"""Issue 13's "What must hold", scripted: no segment without a cause (RFC 9293 §3.8.6.3: an ACK
is sent for a reason, a window update only when the window moved enough; RFC 1122 §4.2.3.3).

A peer that offers no window scaling makes tapir's offered window top out at 65,535: tapir once
compared it with the window it wanted (over 64 KiB) and sent a pure ACK on every poll, about 1.5
million a second, for as long as the connection lived: with the peer's RSTs dropped (the
nftables rule of the Rust side), forever.

  1. A SYN without any option, then a bare ACK completing the handshake, then silence from us:
     fewer than 10 frames from tapir (of any kind) in the next 2 s.
  2. The same after a SYN with only an MSS option.
"""

import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from tapconf import Conn, check, main, say  # noqa: E402

WINDOW_S = 2.0
LIMIT = 10


def args(p):
    p.add_argument("--echo", type=int, required=True)


def idle_after_handshake(tap, port, options, what):
    c = Conn(tap, port)
    c.connect(options=options)
    before = tap.frames_from_node
    tap.listen(WINDOW_S)
    n = tap.frames_from_node - before
    mine = [s for s in tap.log if c.mine(s)]
    check(n < LIMIT, "issue 13: after %s and a bare ACK, tapir sent %d frames in %.0f s (fewer than %d "
          "allowed); the last on the connection: %r" % (what, n, WINDOW_S, LIMIT, mine[-3:]))
    c.reset()
    say("issue 13: after %s and a bare ACK: %d frames from tapir in %.0f s" % (what, n, WINDOW_S))


def scenario(tap, a):
    idle_after_handshake(tap, a.echo, [], "a SYN without options")
    idle_after_handshake(tap, a.echo, [("MSS", 1460)], "a SYN with only MSS")


if __name__ == "__main__":
    main(scenario, args)
