"""RFC 9293 §3.8.5 (MUST-30, MUST-31, MUST-62) and RFC 6093: urgent data of any length, the urgent
pointer pointing at the octet that follows it. tapir delivers urgent data in line (RFC 6093 §5:
what applications should expect): the bytes stay in the stream, in order, and an echo service
returns them all.

Sent on one connection to echo, in order:
  1. "hello " plain;
  2. "URGENT" with URG and the pointer just past it (the urgent data ends with the segment);
  3. "!spans" with URG and the pointer 2000 bytes beyond it (urgent data continuing into later
     segments), then three plain segments;
  4. "-stale" with URG and pointer 0 (pointing at the segment's first octet: the mark is behind
     what was sent before);
  5. "-far" with URG and pointer 65535 (as far ahead as the field goes);
  6. "end." plain.
The echo must return exactly the concatenation; every segment we sent must be acknowledged.
"""

import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from tapconf import ACK, PSH, URG, Conn, check, main, say  # noqa: E402


def args(p):
    p.add_argument("--echo", type=int, required=True)


def scenario(tap, a):
    c = Conn(tap, a.echo)
    c.connect()
    plan = [
        (b"hello ", 0, None),
        (b"URGENT", URG, len(b"URGENT")),
        (b"!spans", URG, len(b"!spans") + 2000),
        (b" one", 0, None),
        (b" two", 0, None),
        (b" three", 0, None),
        (b"-stale", URG, 0),
        (b"-far", URG, 65535),
        (b" end.", 0, None),
    ]
    sent = b""
    for payload, urg, pointer in plan:
        c.data(payload, flags=PSH | ACK | urg, urgptr=pointer or 0)
        sent += payload
    got, segs = c.receive(len(sent), what="RFC 9293 §3.8.5: the echo of urgent data, delivered in line")
    check(got == sent, "RFC 9293 §3.8.5: urgent data not delivered in line, in order and complete: "
          "echo %r, sent %r" % (got, sent))
    acked = c.wait(lambda s: s.ack == c.snd_nxt, 0)
    check(acked is not None, "RFC 9293 §3.8.5: the urgent segments were not all acknowledged (to %d)" % c.snd_nxt)
    c.reset()
    say("§3.8.5: %d bytes with 4 urgent marks (ending, spanning, stale, far) came back in line and in order"
        % len(sent))


if __name__ == "__main__":
    main(scenario, args)
