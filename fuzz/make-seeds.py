#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Write the seed corpora in fuzz/corpus/TARGET/ from well-formed messages.

The seeds are committed; rerun this script after changing it:
    python3 fuzz/make-seeds.py
"""

import os
import shutil
import ssl
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

GUEST_MAC = bytes.fromhex("525400123456")
GATEWAY_MAC = bytes.fromhex("525500000202")
GUEST_IP = bytes([10, 0, 2, 15])
GATEWAY_IP = bytes([10, 0, 2, 2])
DNS_IP = bytes([10, 0, 2, 3])
SYNTHETIC_IP = bytes([10, 0, 128, 1])


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet(ethertype, payload, destination=GATEWAY_MAC):
    return destination + GUEST_MAC + struct.pack("!H", ethertype) + payload


def ipv4(protocol, source, destination, payload, flags_fragment=0x4000):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1,
                         flags_fragment, 64, protocol, 0, source, destination)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def udp(source_port, destination_port, payload):
    return struct.pack("!HHHH", source_port, destination_port,
                       8 + len(payload), 0) + payload


def tcp(source_port, destination_port, flags, payload=b""):
    return struct.pack("!HHIIBBHHH", source_port, destination_port, 1000, 0,
                       5 << 4, flags, 64240, 0, 0) + payload


def dns_query(name, qtype=1, qclass=1, query_id=0x1234):
    question = b"".join(bytes([len(label)]) + label.encode()
                        for label in name.split(".")) + b"\0"
    return (struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + question
            + struct.pack("!HH", qtype, qclass))


def dhcp(message_type, requested=None):
    fixed = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, 0xCAFE, 0,
                        0x8000, b"\0" * 4, b"\0" * 4, b"\0" * 4, b"\0" * 4,
                        GUEST_MAC + b"\0" * 10, b"", b"")
    options = bytes([53, 1, message_type])
    if requested is not None:
        options += bytes([50, 4]) + requested + bytes([54, 4]) + GATEWAY_IP
    options += bytes([55, 4, 1, 3, 6, 26, 255])
    return fixed + b"\x63\x82\x53\x63" + options


def arp(operation, sender_ip, target_ip):
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, operation,
                       GUEST_MAC, sender_ip, b"\0" * 6, target_ip)


def client_hello(server_name):
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    connection = context.wrap_bio(incoming, outgoing,
                                  server_hostname=server_name)
    try:
        connection.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def frames():
    return {
        "arp-request-gateway": ethernet(0x0806, arp(1, GUEST_IP, GATEWAY_IP),
                                        b"\xff" * 6),
        "arp-reply-spoofed-gateway": ethernet(0x0806,
                                              arp(2, GATEWAY_IP, GUEST_IP)),
        "udp-dns-query": ethernet(0x0800, ipv4(17, GUEST_IP, DNS_IP, udp(
            40000, 53, dns_query("allowed.test")))),
        "udp-dhcp-discover": ethernet(0x0800, ipv4(17, b"\0" * 4, b"\xff" * 4,
                                                   udp(68, 67, dhcp(1)))),
        "tcp-syn": ethernet(0x0800, ipv4(6, GUEST_IP, SYNTHETIC_IP,
                                         tcp(40000, 443, 0x02))),
        "tcp-data": ethernet(0x0800, ipv4(6, GUEST_IP, SYNTHETIC_IP, tcp(
            40000, 80, 0x18, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"))),
        "ipv4-fragment": ethernet(0x0800, ipv4(17, GUEST_IP, DNS_IP, udp(
            40000, 53, b"x" * 16), flags_fragment=0x2000)),
        "ipv6-tcp-syn": ethernet(0x86DD, struct.pack(
            "!IHBB16s16s", 0x60000000, 20, 6, 64, b"\xfe\x80" + b"\0" * 14,
            b"\x20\x01\x0d\xb8" + b"\0" * 12) + tcp(40000, 443, 0x02)),
    }


def seeds():
    frame_seeds = frames()
    transport = {
        "one-frame": struct.pack("!I", 60) + frame_seeds["tcp-syn"].ljust(60,
                                                                        b"\0"),
        "two-frames": b"".join(struct.pack("!I", len(f)) + f for f in (
            frame_seeds["arp-request-gateway"], frame_seeds["udp-dns-query"])),
        "truncated-frame": struct.pack("!I", 1514) + b"\0" * 100,
        "zero-length": struct.pack("!I", 0),
        "oversize-length": struct.pack("!I", 0x10041),
        "max-length": struct.pack("!I", 0x10040) + b"\0" * 0x10040,
    }
    http = {
        "get": b"GET /index.html HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
        "post-length": b"POST /upload HTTP/1.1\r\nHost: allowed.test\r\n"
                       b"Content-Length: 5\r\n\r\nhello",
        "post-chunked": b"POST /upload HTTP/1.1\r\nHost: allowed.test\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n"
                        b"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
        "absolute-form": b"GET http://allowed.test:8080/x HTTP/1.1\r\n"
                         b"Host: allowed.test:8080\r\n"
                         b"Expect: 100-continue\r\n"
                         b"Connection: keep-alive, x-custom\r\n\r\n",
        "connect": b"CONNECT allowed.test:443 HTTP/1.1\r\n"
                   b"Host: allowed.test:443\r\n\r\n",
        "smuggling-cl-te": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4"
                           b"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "obs-fold": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
        "ipv6-host": b"GET / HTTP/1.0\r\nHost: [::1]:80\r\n\r\n",
    }
    return {
        "transport": transport,
        "packet": frame_seeds,
        "dns": {
            "a-query": dns_query("allowed.test"),
            "aaaa-query": dns_query("allowed.test", qtype=28),
            "chaos-class": dns_query("version.bind", qtype=16, qclass=3),
            "long-name": dns_query(".".join(["a" * 63] * 3 + ["b" * 61])),
            "compression-pointer": struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0,
                                               0) + b"\xc0\x0c\0\x01\0\x01",
        },
        "dhcp": {
            "discover": dhcp(1),
            "request": dhcp(3, GUEST_IP),
            "release": dhcp(7),
        },
        "tls-hello": {
            "sni": client_hello("allowed.test"),
            "sni-wildcard-zone": client_hello("other.wild.test"),
            "no-sni": client_hello("127.0.0.1"),
        },
        "http-request": http,
    }


def main():
    for target, files in seeds().items():
        folder = os.path.join(CORPUS, target)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        for name, data in files.items():
            with open(os.path.join(folder, name), "wb") as out:
                out.write(data)
    config_folder = os.path.join(CORPUS, "config")
    shutil.rmtree(config_folder, ignore_errors=True)
    os.makedirs(config_folder)
    shutil.copy(os.path.join(HERE, "..", "tests", "unit", "config",
                             "example.ini"),
                os.path.join(config_folder, "example.ini"))
    with open(os.path.join(config_folder, "minimal.ini"), "w") as out:
        out.write("[policy]\nallow = allowed.test;*.wild.test\n"
                  "deny = denied.wild.test\n[moat]\nmtu = 65520\n")


if __name__ == "__main__":
    main()
