"""RFC 9293 §3.10.7.2 (LISTEN) against §3.10.7.1 (CLOSED): the segments of a FIN, NULL or Xmas
scan.

In LISTEN, "first, check for a RST: an incoming RST segment could not be valid ... it should be
ignored"; "second, check for an ACK: any acknowledgment is bad ... form a reset <SEQ=SEG.ACK>
<CTL=RST>"; "third, check for a SYN"; "fourth, other data or control: ... any other control or
text-bearing segment (not containing SYN) must have an ACK and thus would have been discarded by
the ACK processing ... drop the segment and return". In CLOSED, "an incoming segment not
containing a RST causes a RST to be sent in response": <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
when the segment has no ACK.

For FIN, NULL (no flags), Xmas (FIN, PSH, URG) and a FIN with data: sent to the listening port
they draw nothing; the same segment sent to the closed port just after draws the RST of
§3.10.7.1, and is the order sentinel that shows the listening port's silence is not lateness. A
RST to the listening port draws nothing either (the sentinel: an ACK to it, which draws
<SEQ=SEG.ACK><CTL=RST>).
"""

import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from tapconf import ACK, FIN, PSH, QUIET, RST, URG, Conn, check, main, say  # noqa: E402

PROBES = [("FIN", FIN), ("NULL", 0), ("Xmas", FIN | PSH | URG)]


def args(p):
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--closed", type=int, required=True)


def closed_rst(c, since, flags, payload_len):
    """The RST the closed port owes a segment without ACK: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>."""
    rst = c.wait(lambda s: True, since)
    want = (c.snd_nxt + payload_len + (1 if flags & FIN else 0)) % (1 << 32)
    check(rst is not None, "RFC 9293 §3.10.7.1: no RST from the closed port %d" % c.dport)
    check(rst.has(RST | ACK) and rst.seq == 0 and rst.ack == want,
          "RFC 9293 §3.10.7.1: the closed port must answer <SEQ=0><ACK=%d><CTL=RST,ACK>: %r" % (want, rst))
    return rst


def probe(tap, a, name, flags, payload=b""):
    listening = Conn(tap, a.listen)
    since = listening.send(flags, payload=payload, advance=False,
                           what="%s to listening port %d" % (name, a.listen))
    closed = Conn(tap, a.closed)
    sentinel = closed.send(flags, payload=payload, advance=False,
                           what="%s to closed port %d (order sentinel)" % (name, a.closed))
    closed_rst(closed, sentinel, flags, len(payload))
    answers = listening.collect(since, QUIET)
    check(not answers, "RFC 9293 §3.10.7.2: a %s segment to listening port %d must be dropped, "
          "tapir answered %r" % (name, a.listen, answers))
    say("§3.10.7.2: %s to a listening port: no answer (the closed port answered RST)" % name)


def scenario(tap, a):
    for name, flags in PROBES:
        probe(tap, a, name, flags)
    probe(tap, a, "FIN with data", FIN | PSH, payload=b"data")
    # A RST to a listening port is ignored (§3.10.7.2 first); an ACK there draws <SEQ=SEG.ACK><CTL=RST>.
    c = Conn(tap, a.listen)
    since = c.send(RST, advance=False, what="RST to the listening port")
    sentinel = c.send(ACK, ack=0x12345678, advance=False, what="ACK to the listening port (order sentinel)")
    rst = c.wait(lambda s: True, since)
    check(rst is not None and rst.has(RST) and rst.seq == 0x12345678,
          "RFC 9293 §3.10.7.2: an ACK to a listening port must draw <SEQ=SEG.ACK><CTL=RST>: %r" % rst)
    check(tap.log.index(rst) >= sentinel, "RFC 9293 §3.10.7.2: a RST to a listening port drew %r" % rst)
    more = [s for s in c.collect(since, QUIET) if s is not rst]
    check(not more, "RFC 9293 §3.10.7.2: more answers than the ACK's RST: %r" % more)
    say("§3.10.7.2: a RST to a listening port: ignored; an ACK: <SEQ=SEG.ACK><CTL=RST>")


if __name__ == "__main__":
    main(scenario, args)
