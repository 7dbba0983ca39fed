#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Fault tests that talk to moat's QEMU socket directly, frame by frame.

Usage:
    python3 tests/fault/moatframes.py --moat build/src/moat [CASE...]

The harness takes QEMU's place: it connects to moat's unix socket and
speaks the stream netdev framing (a 4-byte big-endian length, then an
Ethernet frame), so it can send what no guest kernel would: frames of
length 0 or above the maximum, truncated frames, garbage EtherTypes,
IPv6 and raw-IP packets, spoofed ARP, and floods of SYNs and DNS queries.

After each attack a case checks that moat still serves a normal request
(ARP for the gateway, a DNS answer, and an HTTP GET through a hand-made
TCP connection to a loopback upstream), that moat's resident memory grew
by less than RSS_GROWTH_MAX, and that every audit line is valid JSON.

It runs in a private network namespace with only loopback, like
tests/vm/moatvm.py, whose Upstreams and MoatSession it uses.
"""

import argparse
import os
import random
import select
import shlex
import shutil
import socket
import struct
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vm"))
import moatvm  # noqa: E402
from moatvm import CaseFailure, check  # noqa: E402

GUEST_MAC = bytes.fromhex("525400123456")
BROADCAST_MAC = b"\xff" * 6
GUEST_IP = socket.inet_aton(moatvm.GUEST_ADDRESS)
GATEWAY_IP = socket.inet_aton(moatvm.GATEWAY_ADDRESS)
DNS_IP = socket.inet_aton(moatvm.DNS_ADDRESS)
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10
# moat-limits.h: MOAT_FRAME_MAX.
FRAME_MAX = 65535 + 64
# Resident memory moat may gain during one case. An estimate with room
# for AddressSanitizer's allocator, not a measured need.
RSS_GROWTH_MAX = 96 * 1024 * 1024
# AddressSanitizer's redzones and shadow memory: the SYN flood and port
# scan cases measured 99 and 178 MiB under it.
RSS_GROWTH_MAX_ASAN = 256 * 1024 * 1024
# A low file descriptor limit gives a small connection cap to test:
# guard.c allows (limit - 64) / 3 connections, here 32.
CAP_TEST_NOFILE = 160
CAP_TEST_FLOWS = (CAP_TEST_NOFILE - 64) // 3


# ---------------------------------------------------------------------------
# Frame builders

def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet(destination, ethertype, payload):
    return destination + GUEST_MAC + struct.pack("!H", ethertype) + payload


def ipv4(protocol, source, destination, payload):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload),
                         random.randrange(65536), 0x4000, 64, protocol, 0,
                         source, destination)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def udp(source, destination, source_port, destination_port, payload):
    length = 8 + len(payload)
    pseudo = source + destination + struct.pack("!BBH", 0, 17, length)
    segment = struct.pack("!HHHH", source_port, destination_port, length, 0) + payload
    value = checksum(pseudo + segment) or 0xFFFF
    return segment[:6] + struct.pack("!H", value) + segment[8:]


def tcp(source, destination, source_port, destination_port, sequence, ack,
        flags, payload=b""):
    segment = struct.pack("!HHIIBBHHH", source_port, destination_port,
                          sequence & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4,
                          flags, 65535, 0, 0) + payload
    pseudo = source + destination + struct.pack("!BBH", 0, 6, len(segment))
    value = checksum(pseudo + segment)
    return segment[:16] + struct.pack("!H", value) + segment[18:]


def arp(operation, sender_mac, sender_ip, target_ip):
    return struct.pack("!HHBBH6s4s6s4s", 1, ETHERTYPE_IPV4, 6, 4, operation,
                       sender_mac, sender_ip, b"\0" * 6, target_ip)


def dns_query(name, query_id):
    question = b"".join(bytes([len(label)]) + label.encode()
                        for label in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + question + b"\0\1\0\1"


# ---------------------------------------------------------------------------
# The QEMU side of moat's socket

class FrameLink:
    """A connection to moat's QEMU socket that sends and receives frames."""

    def __init__(self, socket_path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(socket_path)
        self.buffer = b""
        self.gateway_mac = None
        self.closed = False

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, frame):
        self.send_raw(struct.pack("!I", len(frame)) + frame)

    def send_ip(self, protocol, destination, payload):
        self.send(ethernet(self.gateway_mac, ETHERTYPE_IPV4,
                           ipv4(protocol, GUEST_IP, destination, payload)))

    def receive(self, timeout):
        """Return the next frame from moat, or None after timeout seconds.

        ARP requests for the guest's address are answered here, as the
        guest's kernel would.
        """
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buffer) >= 4:
                (length,) = struct.unpack("!I", self.buffer[:4])
                if len(self.buffer) >= 4 + length:
                    frame = self.buffer[4:4 + length]
                    self.buffer = self.buffer[4 + length:]
                    if not self._answer_arp(frame):
                        return frame
                    continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.sock], [], [], remaining)
            if not ready:
                return None
            data = self.sock.recv(1 << 20)
            if not data:
                self.closed = True
                return None
            self.buffer += data

    def _answer_arp(self, frame):
        if len(frame) < 42 or struct.unpack("!H", frame[12:14])[0] != ETHERTYPE_ARP:
            return False
        operation, sender_mac, sender_ip, target_ip = struct.unpack(
            "!6xH6s4s6x4s", frame[14:42])
        if operation == 1 and target_ip == GUEST_IP:
            reply = struct.pack("!HHBBH6s4s6s4s", 1, ETHERTYPE_IPV4, 6, 4, 2,
                                GUEST_MAC, GUEST_IP, sender_mac, sender_ip)
            self.send(ethernet(sender_mac, ETHERTYPE_ARP, reply))
            return True
        return False

    def wait_for(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = self.receive(deadline - time.monotonic())
            if frame is not None and predicate(frame):
                return frame
            if self.closed:
                break
        raise CaseFailure(f"moat sent no {what} within {timeout} s"
                          + (" (it closed the socket)" if self.closed else ""))

    def drain(self, seconds=0.2):
        while self.receive(seconds) is not None:
            pass

    # -- requests a normal guest makes --------------------------------------

    def resolve_gateway(self):
        self.send(ethernet(BROADCAST_MAC, ETHERTYPE_ARP,
                           arp(1, GUEST_MAC, GUEST_IP, GATEWAY_IP)))

        def is_reply(frame):
            return (struct.unpack("!H", frame[12:14])[0] == ETHERTYPE_ARP
                    and frame[20:22] == b"\0\2" and frame[28:32] == GATEWAY_IP)
        reply = self.wait_for(is_reply, 5, "ARP reply for the gateway")
        self.gateway_mac = reply[22:28]
        return self.gateway_mac

    def resolve(self, name, query_id=0x4242, source_port=40053):
        """Send a DNS A query for name and return the address moat answers."""
        self.send_ip(17, DNS_IP, udp(GUEST_IP, DNS_IP, source_port, 53,
                                     dns_query(name, query_id)))

        def is_answer(frame):
            return (len(frame) > 42 and frame[23] == 17
                    and frame[36:38] == struct.pack("!H", source_port)
                    and frame[42:44] == struct.pack("!H", query_id))
        reply = self.wait_for(is_answer, 5, f"DNS answer for {name}")
        check(struct.unpack("!H", reply[48:50])[0] >= 1,
              f"the DNS answer for {name} has no answer record")
        return reply[-4:]

    def http_get(self, address, host, path="/hello", source_port=None):
        """Fetch http://host/path over a TCP connection made by hand; return the response."""
        source_port = source_port or random.randrange(20000, 60000)
        sequence = random.randrange(1 << 32)

        def from_server(frame):
            return (len(frame) >= 54 and frame[23] == 6 and frame[26:30] == address
                    and struct.unpack("!H", frame[36:38])[0] == source_port)

        self.send_ip(6, address, tcp(GUEST_IP, address, source_port, 80, sequence, 0, TCP_SYN))
        syn_ack = self.wait_for(from_server, 10, "SYN-ACK")
        flags = syn_ack[47]
        check(flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK,
              f"moat answered the SYN with TCP flags {flags:#x}, not SYN-ACK")
        server_next = (struct.unpack("!I", syn_ack[38:42])[0] + 1) & 0xFFFFFFFF
        sequence += 1
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                   "Connection: close\r\n\r\n").encode()
        self.send_ip(6, address, tcp(GUEST_IP, address, source_port, 80, sequence,
                                     server_next, TCP_ACK | TCP_PSH, request))
        sequence += len(request)

        response = b""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            frame = self.receive(deadline - time.monotonic())
            if frame is None or not from_server(frame):
                continue
            header_length = (frame[46] >> 4) * 4
            (total_length,) = struct.unpack("!H", frame[16:18])
            payload = frame[34 + header_length:14 + total_length]
            segment_sequence = struct.unpack("!I", frame[38:42])[0]
            flags = frame[47]
            if flags & TCP_RST:
                raise CaseFailure(f"moat reset the connection to {host}; got {response!r}")
            if segment_sequence == server_next:
                response += payload
                server_next = (server_next + len(payload)) & 0xFFFFFFFF
                if flags & TCP_FIN:
                    server_next = (server_next + 1) & 0xFFFFFFFF
            self.send_ip(6, address, tcp(GUEST_IP, address, source_port, 80, sequence,
                                         server_next, TCP_ACK))
            if flags & TCP_FIN and segment_sequence <= server_next:
                self.send_ip(6, address, tcp(GUEST_IP, address, source_port, 80,
                                             sequence, server_next, TCP_FIN | TCP_ACK))
                return response
        raise CaseFailure(f"the response from {host} did not end within 20 s: {response[:200]!r}")


# ---------------------------------------------------------------------------
# Checks shared by the cases

def rss_bytes(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise CaseFailure(f"/proc/{pid}/status has no VmRSS line")


def rss_growth_max(moat):
    with open(moat, "rb") as binary:
        return RSS_GROWTH_MAX_ASAN if b"__asan_init" in binary.read() else RSS_GROWTH_MAX


def check_serves(session, link):
    """Check that moat answers ARP and DNS and serves an allowed HTTP request."""
    session.check_running()
    link.resolve_gateway()
    address = link.resolve("allowed.test")
    response = link.http_get(address, "allowed.test")
    check(response.startswith(b"HTTP/1.1 200"),
          f"GET http://allowed.test/hello returned {response[:80]!r}, not 200")
    check(moatvm.HELLO_BODY in response, "the response lacks the upstream's body")
    print("  moat still serves: ARP, DNS and GET http://allowed.test/hello -> 200")


def connect(session):
    deadline = time.monotonic() + 5
    while True:
        try:
            return FrameLink(session.socket_path)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def expect_closed(link, what):
    deadline = time.monotonic() + 5
    while not link.closed and time.monotonic() < deadline:
        link.receive(0.2)
    check(link.closed, f"moat kept the connection open after {what}")
    link.close()


def expect_no_audit(session, **expected):
    found = [e for e in session.audit() if moatvm.audit_matches(e, expected)]
    check(not found, f"unexpected audit line(s) with {expected}: {found[:2]}")


CASES = {}


def case(name):
    def register(function):
        CASES[name] = function
        return function
    return register


# ---------------------------------------------------------------------------
# Cases

@case("frame-length-zero")
def case_frame_length_zero(session, link):
    check_serves(session, link)
    link.send_raw(struct.pack("!I", 0))
    expect_closed(link, "a frame length of 0")
    link = connect(session)
    check_serves(session, link)
    return link


@case("frame-oversize")
def case_frame_oversize(session, link):
    check_serves(session, link)
    link.send_raw(struct.pack("!I", FRAME_MAX + 1) + b"\0" * 64)
    expect_closed(link, f"a frame length of {FRAME_MAX + 1}")
    link = connect(session)
    # The largest valid length is still read in full and dropped.
    link.send(b"\xff" * FRAME_MAX)
    check_serves(session, link)
    return link


@case("frame-truncated")
def case_frame_truncated(session, link):
    check_serves(session, link)
    address = link.resolve("allowed.test")
    samples = [
        ethernet(BROADCAST_MAC, ETHERTYPE_ARP, arp(1, GUEST_MAC, GUEST_IP, GATEWAY_IP)),
        ethernet(link.gateway_mac, ETHERTYPE_IPV4, ipv4(17, GUEST_IP, DNS_IP, udp(
            GUEST_IP, DNS_IP, 40000, 53, dns_query("truncated.test", 7)))),
        ethernet(link.gateway_mac, ETHERTYPE_IPV4, ipv4(6, GUEST_IP, address, tcp(
            GUEST_IP, address, 40001, 80, 1, 0, TCP_SYN))),
        ethernet(link.gateway_mac, ETHERTYPE_IPV4, ipv4(17, b"\0" * 4, b"\xff" * 4, udp(
            b"\0" * 4, b"\xff" * 4, 68, 67, b"\1\1\6\0" + b"\0" * 236 + b"\x63\x82\x53\x63"
            + b"\x35\x01\x01\xff"))),
    ]
    sent = 0
    for frame in samples:
        for cut in range(1, len(frame)):
            link.send(frame[:cut])
            sent += 1
    link.drain()
    print(f"  sent {sent} frames truncated at every offset")
    check_serves(session, link)
    # A stream that ends inside a frame.
    link.send_raw(struct.pack("!I", 1514) + b"\0" * 100)
    link.close()
    link = connect(session)
    check_serves(session, link)
    return link


@case("garbage-ethertypes")
def case_garbage_ethertypes(session, link):
    check_serves(session, link)
    ethertypes = [0x0000, 0x05DC, 0x8100, 0x88CC, 0x8847, 0x9000, 0xFFFF]
    for ethertype in ethertypes:
        link.send(ethernet(link.gateway_mac, ethertype, os.urandom(46)))
    link.drain()
    for ethertype in ethertypes:
        session.expect_audit(event="frame", decision="deny", ethertype=ethertype)
    check_serves(session, link)
    return link


@case("ipv6-connect")
def case_ipv6_connect(session, link):
    check_serves(session, link)
    source = bytes.fromhex("fe800000000000005054 00fffe123456".replace(" ", ""))
    destination = bytes.fromhex("20010db8000000000000000000000001")
    syn = struct.pack("!HHIIBBHHH", 40000, 443, 1, 0, 5 << 4, TCP_SYN, 65535, 0, 0)
    datagram = struct.pack("!HHHH", 40001, 53, 8 + 4, 0) + b"test"
    for next_header, payload in ((6, syn), (17, datagram)):
        header = struct.pack("!IHBB16s16s", 0x60000000, len(payload), next_header, 64,
                             source, destination)
        link.send(ethernet(link.gateway_mac, ETHERTYPE_IPV6, header + payload))
    link.drain()
    session.expect_audit(event="connection", decision="deny", protocol="tcp6",
                         address="2001:db8::1", port=443)
    session.expect_audit(event="connection", decision="deny", protocol="udp6",
                         address="2001:db8::1", port=53)
    check_serves(session, link)
    return link


@case("raw-ip")
def case_raw_ip(session, link):
    check_serves(session, link)
    address = link.resolve("allowed.test")
    for protocol in (47, 132, 255):
        link.send_ip(protocol, address, os.urandom(32))
    link.drain()
    for protocol in (47, 132, 255):
        session.expect_audit(event="connection", decision="deny",
                             protocol=f"ip-{protocol}")
    check_serves(session, link)
    return link


@case("arp-spoof-gateway")
def case_arp_spoof_gateway(session, link):
    check_serves(session, link)
    real_gateway_mac = link.gateway_mac
    attacker_mac = bytes.fromhex("02deadbeef01")
    for operation in (1, 2):
        link.send(ethernet(BROADCAST_MAC, ETHERTYPE_ARP,
                           arp(operation, attacker_mac, GATEWAY_IP, GUEST_IP)))
        link.send(ethernet(BROADCAST_MAC, ETHERTYPE_ARP,
                           arp(operation, attacker_mac, DNS_IP, GUEST_IP)))
    link.drain()
    session.expect_audit(count=4, event="frame", decision="deny",
                         reason=lambda reason: "belongs to moat" in reason)
    check(link.resolve_gateway() == real_gateway_mac,
          "the gateway's MAC address changed after the spoofed ARP")
    check_serves(session, link)
    return link


@case("syn-flood")
def case_syn_flood(session, link):
    """SYNs that never complete: past MOAT_HANDSHAKES_MAX they get RST and an audit line."""
    check_serves(session, link)
    address = link.resolve("allowed.test")
    rss_before = rss_bytes(session.process.pid)
    started = time.monotonic()
    count = 5000
    sequences = {}
    for index in range(count):
        port = 10000 + index
        sequences[port] = random.randrange(1 << 32)
        link.send_ip(6, address, tcp(GUEST_IP, address, port, 80, sequences[port], 0, TCP_SYN))
        if index % 200 == 0:
            link.drain(0.01)
    link.drain(0.5)
    print(f"  sent {count} SYNs in {time.monotonic() - started:.1f} s")
    session.check_running()
    session.expect_audit(event="connection", decision="deny",
                         reason=lambda reason: reason.startswith("too many half-open"))
    grown = rss_bytes(session.process.pid) - rss_before
    check(grown < rss_growth_max(session.moat), f"moat's RSS grew by {grown >> 20} MiB in the SYN flood")
    print(f"  RSS grew by {grown >> 10} KiB")
    # A guest kernel resets the handshakes it gives up on; then new
    # connections work again.
    for port, sequence in sequences.items():
        link.send_ip(6, address, tcp(GUEST_IP, address, port, 80, sequence + 1, 0, TCP_RST))
        if port % 200 == 0:
            link.drain(0.01)
    link.drain(0.5)
    check_serves(session, link)
    return link


@case("port-scan")
def case_port_scan(session, link):
    """More distinct ports than MOAT_FORWARDS_MAX: the rest are refused and audited."""
    check_serves(session, link)
    address = link.resolve("allowed.test")
    rss_before = rss_bytes(session.process.pid)
    for port in range(1, 9000):
        link.send_ip(6, address, tcp(GUEST_IP, address, 30000, port, 1, 0, TCP_SYN))
        link.send_ip(6, address, tcp(GUEST_IP, address, 30000, port, 2, 0, TCP_RST))
        if port % 200 == 0:
            link.drain(0.01)
    link.drain(0.5)
    session.expect_audit(event="connection", decision="deny",
                         reason=lambda reason: "too many forwarded ports" in reason)
    grown = rss_bytes(session.process.pid) - rss_before
    check(grown < rss_growth_max(session.moat), f"moat's RSS grew by {grown >> 20} MiB in the port scan")
    # Port 80 was forwarded before the cap was reached.
    check_serves(session, link)
    return link


@case("connection-cap")
def case_connection_cap(session, link):
    """Open more connections than the cap: the extra SYNs get RST and an audit line."""
    check_serves(session, link)
    address = link.resolve("allowed.test")
    opened = []
    refused = 0
    for index in range(CAP_TEST_FLOWS + 16):
        port = 50000 + index
        sequence = random.randrange(1 << 32)
        link.send_ip(6, address, tcp(GUEST_IP, address, port, 80, sequence, 0, TCP_SYN))

        def from_server(frame, port=port):
            return (len(frame) >= 54 and frame[23] == 6
                    and struct.unpack("!H", frame[36:38])[0] == port)
        reply = link.wait_for(from_server, 10, f"answer to the SYN from port {port}")
        if reply[47] & TCP_RST:
            refused += 1
            continue
        server_next = struct.unpack("!I", reply[38:42])[0] + 1
        link.send_ip(6, address, tcp(GUEST_IP, address, port, 80, sequence + 1,
                                     server_next, TCP_ACK))
        opened.append(port)
        link.drain(0.02)
    print(f"  {len(opened)} connections opened, {refused} refused with RST")
    check(refused >= 1, f"no SYN was refused after {len(opened)} open connections")
    check(len(opened) <= CAP_TEST_FLOWS + 2,
          f"{len(opened)} connections opened, more than the cap of {CAP_TEST_FLOWS}")
    session.expect_audit(event="connection", decision="deny",
                         reason=lambda reason: reason.startswith("too many connections"))
    return link


@case("dns-flood")
def case_dns_flood(session, link):
    """More names than MOAT_NAMES_MAX: addresses are reused and audit lines limited."""
    check_serves(session, link)
    rss_before = rss_bytes(session.process.pid)
    count = 6000
    for index in range(count):
        name = f"n{index}.flood.test"
        link.send_ip(17, DNS_IP, udp(GUEST_IP, DNS_IP, 41000 + index % 20000, 53,
                                     dns_query(name, index & 0xFFFF)))
        if index % 200 == 0:
            link.drain(0.01)
    link.drain(0.5)
    events = session.audit()
    dns_lines = sum(1 for e in events if e.get("event") == "dns")
    suppressed = sum(e.get("count", 0) for e in events if e.get("event") == "suppressed"
                     and e.get("kind") == "dns")
    print(f"  {dns_lines} dns audit lines, {suppressed} suppressed")
    check(dns_lines < count, "every query of the flood got its own audit line")
    # The "suppressed" line comes with the next DNS line that passes.
    time.sleep(1)
    check_serves(session, link)
    events = session.audit()
    suppressed = sum(e.get("count", 0) for e in events if e.get("event") == "suppressed"
                     and e.get("kind") == "dns")
    check(suppressed > 0, "no 'suppressed' audit line counts the DNS lines left out")
    grown = rss_bytes(session.process.pid) - rss_before
    check(grown < rss_growth_max(session.moat), f"moat's RSS grew by {grown >> 20} MiB in the DNS flood")
    return link


# ---------------------------------------------------------------------------

def run_case(name, args):
    folder = tempfile.mkdtemp(prefix="moatframes-", dir="/tmp")
    prefix = shlex.split(args.wrapper)
    if name == "connection-cap":
        prefix = ["prlimit", f"--nofile={CAP_TEST_NOFILE}:{CAP_TEST_NOFILE}", "--"] + prefix
    with moatvm.Upstreams(folder, moatvm.TEST_CERT_NAMES) as upstreams:
        session = moatvm.MoatSession(args.moat, folder, upstreams, moatvm.TEST_ALLOW,
                                     moatvm.TEST_DENY, moatvm.TEST_NAMES,
                                     command_prefix=prefix)
        with session:
            link = connect(session)
            try:
                link = CASES[name](session, link) or link
                session.audit()
            except CaseFailure:
                print(session.failure_report())
                raise
            finally:
                link.close()
            status = session.stop()
            check(status == 0, f"moat exited with status {status} after SIGTERM")
    shutil.rmtree(folder, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moat", required=True, help="moat binary")
    parser.add_argument("--wrapper", default="",
                        help="command line that runs moat, e.g. "
                             "\"valgrind --leak-check=full --error-exitcode=1\"")
    parser.add_argument("--list", action="store_true", help="print the case names")
    parser.add_argument("cases", nargs="*")
    args = parser.parse_args()
    if args.list:
        print("\n".join(CASES))
        return 0
    moatvm.ensure_private_netns()
    # AddressSanitizer keeps freed memory in a 256 MiB quarantine by
    # default, which would look like growth to the RSS checks. The slow
    # unwinder records stacks through libslirp and GLib, which have no
    # frame pointers, so that lsan.supp can match them.
    os.environ["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "")
                                  + ":quarantine_size_mb=16"
                                  + ":fast_unwind_on_malloc=0").lstrip(":")
    suppressions = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lsan.supp")
    os.environ["LSAN_OPTIONS"] = (os.environ.get("LSAN_OPTIONS", "")
                                  + f":suppressions={suppressions}").lstrip(":")
    names = args.cases or list(CASES)
    failed = []
    for name in names:
        if name not in CASES:
            print(f"unknown case {name}; --list prints the cases", file=sys.stderr)
            return 2
        print(f"== {name}")
        try:
            run_case(name, args)
            print(f"ok {name}")
        except (CaseFailure, OSError) as error:
            traceback.print_exc()
            print(f"FAIL {name}: {error}")
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
