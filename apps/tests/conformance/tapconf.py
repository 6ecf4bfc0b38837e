"""Shared scapy code for tapir's segment-level conformance scenarios (apps/tests/conformance.rs).

A scenario runs inside a lab namespace, on the kernel side of the tap, as the peer of tapir:
frames written on an AF_PACKET socket bound to the tap reach tapir, and the frames tapir writes
are read from the same socket. The packets are built by scapy, an implementation independent of
tapir's; tapir's answers are parsed here by hand (fixed header fields, reserved bits, checksum) and
by scapy (options). The kernel in the namespace has no socket for our ports and would answer
tapir with RSTs: the Rust side drops them with an nftables rule in the namespace.

Every scenario also checks, whatever it tests (`Tap.finish`):
  - every TCP segment from tapir has a valid checksum and its reserved bits zero (RFC 9293 §3.1);
  - a received segment draws a bounded reply: between two segments we send, tapir sends at most
    CONTROL_BOUND segments without data, and data segments stay within the initial window plus
    DATA_PER_ACK per segment we sent (data is clocked by our ACKs, never self-sustained).

The script exits 0 when tapir conforms, 1 with a `VIOLATION:` line and the recent exchange
when it does not, 2 when the script itself could not run.
"""

import argparse
import os
import random
import select
import socket
import struct
import sys
import time
import traceback

from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
# A segment we send draws at most this many segments without data before we send the next.
CONTROL_BOUND = 3
# Data segments: at most the initial window (RFC 6928: 10) plus this many per segment we send.
INITIAL_WINDOW = 10
DATA_PER_ACK = 3
# How long an expected answer may take (the machine is shared and may be busy).
ANSWER_TIMEOUT = 5.0
# How long we listen for an answer that must not come, after the order sentinel's answer.
QUIET = 0.3

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80


class Violation(Exception):
    """tapir broke a rule of the scenario."""


def check(cond, msg):
    if not cond:
        raise Violation(msg)


def say(msg):
    print(msg, flush=True)


def flag_names(f):
    return "".join(n for b, n in zip((FIN, SYN, RST, PSH, ACK, URG, ECE, CWR), "FSRPAUEC") if f & b) or "-"


def ones_complement_sum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


class Seg:
    """A TCP segment tapir sent, parsed from its frame."""

    def __init__(self, t, ip, tcp):
        self.t = t
        self.src = socket.inet_ntoa(ip[12:16])
        self.dst = socket.inet_ntoa(ip[16:20])
        (self.sport, self.dport, self.seq, self.ack, off, self.flags, self.win, self.chksum,
         self.urgptr) = struct.unpack("!HHIIBBHHH", tcp[:20])
        self.hlen = (off >> 4) * 4
        # The four bits after the data offset: reserved (RFC 9293 §3.1; the old NS bit among them).
        self.reserved = off & 0x0F
        self.payload = tcp[self.hlen:]
        self.raw_options = tcp[20:self.hlen]
        pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, len(tcp))
        self.checksum_ok = ones_complement_sum(pseudo + tcp) == 0xFFFF
        self._tcp = tcp

    @property
    def options(self):
        """The options as scapy reads them: [(name, value), ...]."""
        return TCP(self._tcp).options

    def option(self, name):
        for n, v in self.options:
            if n == name:
                return v
        return None

    def has(self, f):
        return self.flags & f == f

    def __repr__(self):
        return "%s:%d > %s:%d [%s] seq %d ack %d win %d len %d%s" % (
            self.src, self.sport, self.dst, self.dport, flag_names(self.flags), self.seq,
            self.ack, self.win, len(self.payload), " urg %d" % self.urgptr if self.urgptr else "")


class Tap:
    """The kernel side of the lab's tap: sends frames to tapir and logs tapir's TCP segments."""

    def __init__(self, args):
        self.args = args
        self.iface = args.iface
        self.node_ip = args.node_ip
        self.host_ip = args.host_ip
        self.node_mac = args.node_mac
        self.node_mac_bytes = bytes(int(b, 16) for b in args.node_mac.split(":"))
        with open("/sys/class/net/%s/address" % self.iface) as f:
            self.host_mac = f.read().strip()
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind((self.iface, ETH_P_ALL))
        self.sock.setblocking(False)
        self.start = time.monotonic()
        # Every TCP segment from tapir, in arrival order.
        self.log = []
        # Every frame from tapir (any protocol) and every ICMP echo reply.
        self.frames_from_node = 0
        self.echo_replies = 0
        # (time, log length then, description) of every frame we sent.
        self.sent = []

    # Receiving.

    def pump(self, timeout):
        """Waits up to `timeout` seconds for frames from tapir and reads all that are there."""
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if r:
            self._drain()

    def listen(self, window):
        """Reads what tapir writes for `window` seconds."""
        deadline = time.monotonic() + window
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self._drain()
                return
            self.pump(left)

    def _drain(self):
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except BlockingIOError:
                return
            if addr[2] == PACKET_OUTGOING or data[6:12] != self.node_mac_bytes:
                continue
            self.frames_from_node += 1
            if data[12:14] != b"\x08\x00" or len(data) < 34:
                continue
            ip = data[14:]
            ihl = (ip[0] & 0x0F) * 4
            total = struct.unpack("!H", ip[2:4])[0]
            ip = ip[:total]
            if ip[9] == 1 and len(ip) > ihl and ip[ihl] == 0:
                self.echo_replies += 1
            if ip[9] != 6 or len(ip) < ihl + 20:
                continue
            self.log.append(Seg(time.monotonic(), ip[:20], ip[ihl:]))

    def mark(self):
        self._drain()
        return len(self.log)

    def wait(self, pred, since, timeout=ANSWER_TIMEOUT):
        """The first segment at or after log index `since` matching `pred`, or None at the deadline."""
        deadline = time.monotonic() + timeout
        i = since
        while True:
            while i < len(self.log):
                if pred(self.log[i]):
                    return self.log[i]
                i += 1
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.pump(left)

    def collect(self, pred, since, window):
        """Every segment matching `pred` from log index `since`, after listening `window` seconds."""
        self.listen(window)
        return [s for s in self.log[since:] if pred(s)]

    # Sending.

    def frame(self, ip_packet):
        return Ether(src=self.host_mac, dst=self.node_mac) / ip_packet

    def send_ip(self, ip_packet, what):
        """Sends one IPv4 packet (scapy) to tapir; returns the log index just before it."""
        since = self.mark()
        self.sent.append((time.monotonic(), since, what))
        self.sock.send(bytes(self.frame(ip_packet)))
        return since

    def tcp_packet(self, sport, dport, seq, ack, flags, window=65535, options=None, payload=b"",
                   chksum=None, reserved=0, urgptr=0):
        """An IPv4/TCP packet from the host to tapir. `options` is a scapy option list or raw
        bytes (put in the header as they are, zero-padded to a multiple of 4, however malformed)."""
        ip = IP(src=self.host_ip, dst=self.node_ip, ttl=64)
        fields = dict(sport=sport, dport=dport, seq=seq % (1 << 32), ack=ack % (1 << 32),
                      flags=flags, window=window, urgptr=urgptr, reserved=reserved & 7)
        if reserved & 8:
            fields["flags"] = flags | 0x100  # the fourth reserved bit (once NS)
        if isinstance(options, (bytes, bytearray)):
            raw = bytes(options) + b"\0" * (-len(options) % 4)
            tcp = TCP(dataofs=5 + len(raw) // 4, **fields) / Raw(raw + payload)
        else:
            tcp = TCP(options=options or [], **fields)
            if payload:
                tcp = tcp / Raw(payload)
        pkt = ip / tcp
        if chksum is not None:
            # "wrong": the right sum with bits flipped; "zero": a zero field; or a number.
            pkt = IP(bytes(pkt))
            right = pkt[TCP].chksum
            pkt[TCP].chksum = {"wrong": right ^ 0x5555, "zero": 0}.get(chksum, chksum)
        return pkt

    @staticmethod
    def checksum_of(pkt):
        """The right TCP checksum of `pkt`, as scapy computes it."""
        return IP(bytes(pkt))[TCP].chksum

    def prime(self):
        """ICMP echo to tapir until it answers: its ARP entry for us is then in place, so later
        answers are not held back by address resolution."""
        for i in range(10):
            before = self.echo_replies
            self.send_ip(IP(src=self.host_ip, dst=self.node_ip) / ICMP(id=0x7461, seq=i),
                         "ICMP echo (prime)")
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline and self.echo_replies == before:
                self.pump(0.05)
            if self.echo_replies > before:
                self.sent.clear()
                return
        raise Violation("tapir at %s does not answer ICMP echo on %s" % (self.node_ip, self.iface))

    # The invariants every scenario checks.

    def finish(self):
        self.pump(0.05)
        for s in self.log:
            check(s.checksum_ok, "RFC 9293 §3.1: segment with a wrong checksum from tapir: %r" % s)
            check(s.reserved == 0,
                  "RFC 9293 §3.1: reserved bits %#x set in a segment from tapir: %r" % (s.reserved, s))
        # The reply each segment we sent drew: the segments up to our next one.
        bounds = [i for _, i, _ in self.sent] + [len(self.log)]
        for k, (t, start, what) in enumerate(self.sent):
            segs = self.log[start:bounds[k + 1]]
            control = [s for s in segs if not s.payload]
            check(len(control) <= CONTROL_BOUND,
                  "unbounded reply: %s drew %d segments without data: %r" % (what, len(control), control[:8]))
        data = [s for s in self.log if s.payload]
        budget = INITIAL_WINDOW + DATA_PER_ACK * len(self.sent)
        check(len(data) <= budget,
              "unbounded reply: %d data segments for %d segments sent" % (len(data), len(self.sent)))
        say("invariants hold: %d segments from tapir, all with valid checksums and reserved bits "
            "zero, for %d frames sent (at most %d without data per frame, data within %d)"
            % (len(self.log), len(self.sent), CONTROL_BOUND, budget))

    def dump_tail(self, n=30):
        print("the last %d segments from tapir (t in s from the start):" % n, file=sys.stderr)
        for s in self.log[-n:]:
            print("  %8.3f  %r" % (s.t - self.start, s), file=sys.stderr)
        print("the last frames sent:", file=sys.stderr)
        for t, _, what in self.sent[-12:]:
            print("  %8.3f  %s" % (t - self.start, what), file=sys.stderr)


class Conn:
    """One connection with scapy as the peer: our sequence state and tapir's, learnt from its
    segments."""

    def __init__(self, tap, dport, sport=None, isn=None):
        self.tap = tap
        self.dport = dport
        self.sport = sport or random.randint(20000, 60999)
        self.iss = random.getrandbits(32) if isn is None else isn
        self.snd_nxt = self.iss
        self.irs = None
        self.rcv_nxt = None
        # RFC 7323 timestamps: once both SYNs carried them, every segment we send does.
        self.ts_on = False
        self.ts_base = random.getrandbits(31)
        self.ts_recent = 0

    def __repr__(self):
        return "%s:%d" % (self.tap.host_ip, self.sport)

    def mine(self, s):
        return s.sport == self.dport and s.dport == self.sport

    def packet(self, flags, seq=None, ack=None, payload=b"", **kw):
        seq = self.snd_nxt if seq is None else seq
        if ack is None:
            ack = self.rcv_nxt if (flags & ACK and self.rcv_nxt is not None) else 0
        if self.ts_on and "options" not in kw:
            kw["options"] = [("NOP", None), ("NOP", None), ("Timestamp", (self.tsval(), self.ts_recent))]
        return self.tap.tcp_packet(self.sport, self.dport, seq, ack, flags, payload=payload, **kw)

    def send(self, flags, payload=b"", seq=None, ack=None, what=None, advance=True, **kw):
        """Sends one segment (at SND.NXT unless `seq`); returns the log index before it."""
        pkt = self.packet(flags, seq=seq, ack=ack, payload=payload, **kw)
        t = pkt[TCP]
        desc = what or "%r > %d [%s] seq %d ack %d len %d" % (
            self, self.dport, flag_names(flags), t.seq, t.ack, len(payload))
        since = self.tap.send_ip(pkt, desc)
        if advance and seq is None:
            self.snd_nxt = (self.snd_nxt + len(payload) + (1 if flags & (SYN | FIN) else 0)) % (1 << 32)
        return since

    def wait(self, pred, since, timeout=ANSWER_TIMEOUT):
        return self.tap.wait(lambda s: self.mine(s) and pred(s), since, timeout)

    def tsval(self):
        return (self.ts_base + int((time.monotonic() - self.tap.start) * 1000)) % (1 << 32)

    def learn_ts(self, s):
        if self.ts_on:
            ts = s.option("Timestamp")
            if ts:
                self.ts_recent = ts[0]

    def collect(self, since, window):
        return self.tap.collect(self.mine, since, window)

    def syn(self, options=(("MSS", 1460),), window=65535, what=None, **kw):
        """Sends our SYN; returns tapir's SYN-ACK (checked) and the log index before the SYN."""
        since = self.send(SYN, options=list(options) if not isinstance(options, bytes) else options,
                          window=window, what=what, **kw)
        synack = self.wait(lambda s: s.has(SYN), since)
        check(synack is not None, "RFC 9293 §3.10.7.2: no SYN-ACK to %s" % (what or "our SYN"))
        check(synack.has(SYN | ACK) and not synack.has(RST),
              "RFC 9293 §3.10.7.2: the answer to a SYN is not a SYN-ACK: %r" % synack)
        check(synack.ack == self.snd_nxt,
              "RFC 9293 §3.10.7.2: the SYN-ACK acknowledges %d, not our ISN+1 %d" % (synack.ack, self.snd_nxt))
        self.irs = synack.seq
        self.rcv_nxt = (synack.seq + 1) % (1 << 32)
        sent_ts = not isinstance(options, bytes) and any(n == "Timestamp" for n, _ in options)
        if sent_ts and synack.option("Timestamp"):
            self.ts_on = True
            self.learn_ts(synack)
        return synack, since

    def connect(self, options=(("MSS", 1460),), window=65535, **kw):
        """The three-way handshake; returns tapir's SYN-ACK."""
        synack, _ = self.syn(options=options, window=window, **kw)
        self.send(ACK, window=window)
        return synack

    def data(self, payload, flags=PSH | ACK, **kw):
        return self.send(flags, payload=payload, **kw)

    def receive(self, nbytes, window=65535, timeout=ANSWER_TIMEOUT, on_segment=None, what="data"):
        """Takes in-order data from tapir until `nbytes` arrived, acknowledging every segment;
        returns the bytes and the data segments."""
        got = bytearray()
        segs = []
        i = self.tap.mark()
        deadline = time.monotonic() + timeout
        while len(got) < nbytes:
            s = self.tap.wait(lambda s: self.mine(s) and (s.payload or s.has(FIN) or s.has(RST)), i,
                              max(0.0, deadline - time.monotonic()))
            if s is None:
                raise Violation("%s: only %d of %d bytes came from tapir (%r) within %.0f s of the last"
                                % (what, len(got), nbytes, bytes(got[:60]), timeout))
            i = self.tap.log.index(s, i) + 1
            check(not s.has(RST), "RST from tapir while receiving data: %r" % s)
            if s.seq != self.rcv_nxt:
                continue  # a retransmission or out of order: our next ACK says where we are
            self.learn_ts(s)
            if on_segment:
                on_segment(s)
            got += s.payload
            segs.append(s)
            self.rcv_nxt = (self.rcv_nxt + len(s.payload) + (1 if s.has(FIN) else 0)) % (1 << 32)
            self.send(ACK, window=window)
            deadline = time.monotonic() + timeout
            if s.has(FIN):
                break
        return bytes(got), segs

    def reset(self):
        """Aborts the connection with an exact RST (tapir must not answer it)."""
        return self.send(RST | ACK, advance=False)


def quiet_after(tap, conn_or_pred, since, sentinel_pred, what, window=QUIET):
    """Checks that nothing matching `conn_or_pred` came from tapir between log index `since` and the
    answer to an order sentinel (a segment sent after the one that must draw no answer, whose
    answer matches `sentinel_pred`), nor within `window` after it. tapir serves one queue in
    order, so an answer would come before the sentinel's."""
    pred = conn_or_pred.mine if isinstance(conn_or_pred, Conn) else conn_or_pred
    s = tap.wait(sentinel_pred, since)
    check(s is not None, "no answer to the order sentinel sent after %s" % what)
    extra = tap.collect(pred, since, window)
    check(not extra, "%s drew an answer: %r" % (what, extra))


def main(scenario, add_args=None):
    """Parses the common arguments, runs `scenario(tap, args)` and the common checks, exits."""
    p = argparse.ArgumentParser()
    p.add_argument("--iface", required=True)
    p.add_argument("--node-ip", required=True)
    p.add_argument("--node-mac", required=True)
    p.add_argument("--host-ip", required=True)
    p.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(4), "big"))
    if add_args:
        add_args(p)
    args = p.parse_args()
    random.seed(args.seed)
    say("%s, seed %d (rerun with --seed %d)" % (os.path.basename(sys.argv[0]), args.seed, args.seed))
    tap = None
    try:
        tap = Tap(args)
        tap.prime()
        scenario(tap, args)
        tap.finish()
    except Violation as e:
        print("VIOLATION: %s" % e, file=sys.stderr)
        if tap:
            tap.dump_tail()
        sys.exit(1)
    except Exception:
        traceback.print_exc()
        if tap:
            tap.dump_tail()
        sys.exit(2)
    say("PASS")
