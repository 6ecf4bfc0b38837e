"""RSTs before the connection is synchronized: RFC 9293 §3.10.7.3 (SYN-SENT) and §3.10.7.4
(SYN-RECEIVED) with RFC 5961 §3.2 (RST validation by sequence number).

SYN-SENT, tapir connecting to us (the Rust side connects once we print READY):
  1. On --accepted: a RST without ACK, a RST+ACK with SEG.ACK = tapir's ISS (not above it) and
     one acknowledging beyond SND.NXT are dropped without answer (§3.10.7.3: "If the RST bit
     is set, ... if the ACK was acceptable then signal ... Otherwise drop the segment"; "If SEG.ACK
     =< ISS or SEG.ACK > SND.NXT, send a reset (unless the RST bit is set, if so drop the segment
     and return)"); the order sentinel, a bare ACK with an unacceptable ACK, draws
     <SEQ=SEG.ACK><CTL=RST>. Then our SYN-ACK completes the connection: tapir ACKs it, sends the
     application's "hello", and the Rust side sees the connection established.
  2. On --refused: a RST+ACK acknowledging tapir's SYN refuses the connection (the Rust side sees
     ConnectionRefused) and tapir sends nothing more on it: no SYN retransmission in the 1.5 s
     after (its first would come 1 s after the SYN).
SYN-RECEIVED, us connecting to tapir's echo:
  3. After tapir's SYN-ACK, a RST far outside the window is dropped without answer, and a RST in
     the window but not at RCV.NXT draws one challenge ACK (RFC 5961 §3.2) and does nothing else:
     the handshake then completes and the echo works.
  4. After tapir's SYN-ACK, a RST at exactly RCV.NXT removes the half-open connection without an
     answer (§3.10.7.4: back to LISTEN): the ACK that would have completed the handshake draws
     <SEQ=SEG.ACK><CTL=RST> (§3.10.7.2), and the listener takes a new SYN from the same port.
"""

import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from tapconf import ACK, QUIET, RST, SYN, Conn, check, main, say  # noqa: E402


def args(p):
    p.add_argument("--echo", type=int, required=True)
    p.add_argument("--accepted", type=int, required=True)
    p.add_argument("--refused", type=int, required=True)


def tapir_syn(tap, port):
    """tapir's SYN to our `port`, and a Conn for our side of it."""
    syn = tap.wait(lambda s: s.dport == port and s.has(SYN) and not s.has(ACK), 0, timeout=30)
    check(syn is not None, "tapir never sent its SYN to port %d" % port)
    c = Conn(tap, syn.sport, sport=port)
    c.irs, c.rcv_nxt = syn.seq, (syn.seq + 1) % (1 << 32)
    return c, syn


def not_syn(s):
    return not s.has(SYN)  # tapir's SYN retransmissions are its timer's, not answers


def syn_sent_accepted(tap, port):
    c, syn = tapir_syn(tap, port)
    iss = syn.seq
    since = c.send(RST, seq=c.iss, ack=0, advance=False, what="RST without ACK in SYN-SENT")
    c.send(RST | ACK, seq=c.iss, ack=iss, advance=False, what="RST+ACK with SEG.ACK = ISS")
    c.send(RST | ACK, seq=c.iss, ack=iss + 1000, advance=False, what="RST+ACK with SEG.ACK > SND.NXT")
    sentinel = c.send(ACK, seq=c.iss, ack=iss + 1000, advance=False,
                      what="ACK with SEG.ACK > SND.NXT (order sentinel)")
    rst = c.wait(lambda s: s.has(RST), sentinel)
    check(rst is not None and rst.seq == (iss + 1000) % (1 << 32) and not rst.has(ACK),
          "RFC 9293 §3.10.7.3: an unacceptable ACK in SYN-SENT must draw <SEQ=SEG.ACK><CTL=RST>: %r" % rst)
    answers = [s for s in tap.log[since:tap.log.index(rst)] if c.mine(s) and not_syn(s)]
    check(not answers, "RFC 9293 §3.10.7.3: unacceptable RSTs in SYN-SENT drew %r" % answers)
    say("§3.10.7.3: in SYN-SENT, RSTs without an acceptable ACK are dropped unanswered; "
        "an unacceptable ACK draws <SEQ=SEG.ACK><CTL=RST>")
    # Still in SYN-SENT: our SYN-ACK completes the connection.
    since = c.send(SYN | ACK, options=[("MSS", 1460)])
    ack = c.wait(not_syn, since)
    check(ack is None or not ack.has(RST),
          "RFC 9293 §3.10.7.3: tapir answered our SYN-ACK with %r: one of the unacceptable RSTs "
          "aborted its SYN-SENT connection" % ack)
    check(ack is not None and ack.ack == c.snd_nxt and ack.seq == (iss + 1) % (1 << 32),
          "RFC 9293 §3.10.7.3: our SYN-ACK after the ignored RSTs must draw an ACK of %d: %r" % (c.snd_nxt, ack))
    got, _ = c.receive(5)
    check(got == b"hello", "the application's data after the handshake: %r" % got)
    c.reset()
    say("§3.10.7.3: the connection survived them: our SYN-ACK completed it and 'hello' arrived")


def syn_sent_refused(tap, port):
    c, syn = tapir_syn(tap, port)
    since = c.send(RST | ACK, seq=0, ack=syn.seq + 1, advance=False,
                   what="RST+ACK acknowledging tapir's SYN")
    after = c.collect(since, 1.5)
    check(not after, "RFC 9293 §3.10.7.3: after an acceptable RST in SYN-SENT tapir sent %r" % after)
    say("§3.10.7.3: an acceptable RST in SYN-SENT ends the attempt: nothing more in 1.5 s")


def syn_received_challenge(tap, port):
    c = Conn(tap, port)
    c.syn()
    since = c.send(RST, seq=c.snd_nxt + (1 << 31), advance=False, what="RST far outside the window")
    in_window = c.send(RST, seq=c.snd_nxt + 100, advance=False,
                       what="RST in the window, not at RCV.NXT")
    challenge = c.wait(not_syn, since)
    check(challenge is not None, "RFC 5961 §3.2: no challenge ACK for an in-window RST in SYN-RECEIVED")
    check(tap.log.index(challenge) >= in_window,
          "RFC 5961 §3.2: the RST outside the window drew %r" % challenge)
    check(challenge.has(ACK) and not challenge.has(RST) and challenge.ack == c.snd_nxt,
          "RFC 5961 §3.2: an in-window RST not at RCV.NXT in SYN-RECEIVED must draw a challenge ACK of %d: %r"
          % (c.snd_nxt, challenge))
    more = [s for s in c.collect(since, QUIET) if s is not challenge and not s.has(SYN)]
    check(not more, "RFC 5961 §3.2: the RSTs drew more than one challenge ACK: %r" % more)
    c.send(ACK)
    c.data(b"alive")
    got, _ = c.receive(5)
    check(got == b"alive", "RFC 5961 §3.2: the connection after the RSTs echoed %r" % got)
    c.reset()
    say("RFC 5961 §3.2: in SYN-RECEIVED a RST outside the window is dropped, one in it but not at "
        "RCV.NXT draws a challenge ACK; the connection lives on")


def syn_received_reset(tap, port):
    c = Conn(tap, port)
    c.syn()
    since = c.send(RST, advance=False, what="RST at RCV.NXT in SYN-RECEIVED")
    sentinel = c.send(ACK, what="the handshake's ACK after the RST (order sentinel)")
    rst = c.wait(not_syn, since)
    check(rst is not None, "RFC 9293 §3.10.7.4: the handshake's ACK after a RST at RCV.NXT drew no RST: "
          "the half-open connection outlived the RST")
    check(tap.log.index(rst) >= sentinel,
          "RFC 9293 §3.10.7.4: the RST at RCV.NXT drew %r" % rst)
    check(rst.has(RST) and rst.seq == c.rcv_nxt,
          "RFC 9293 §3.10.7.4: after a RST at RCV.NXT the half-open connection must be gone, so the "
          "ACK draws <SEQ=SEG.ACK><CTL=RST> (seq %d): %r" % (c.rcv_nxt, rst))
    again = Conn(tap, port, sport=c.sport)
    again.syn(what="a new SYN from the same port")
    again.reset()
    say("§3.10.7.4: a RST at RCV.NXT in SYN-RECEIVED removes the connection unanswered; the "
        "listener takes the next SYN")


def scenario(tap, a):
    # Our side of tapir's connections must not be answered by the kernel (the Rust side drops
    # its RSTs); say we are ready for tapir to connect.
    print("READY", flush=True)
    syn_sent_accepted(tap, a.accepted)
    syn_sent_refused(tap, a.refused)
    syn_received_challenge(tap, a.echo)
    syn_received_reset(tap, a.echo)


if __name__ == "__main__":
    main(scenario, args)
