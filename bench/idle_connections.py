#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Open COUNT keep-alive HTTP connections, make one request on each, then hold them idle.

Usage: idle_connections.py HOST PORT COUNT HOLD_SECONDS

Prints "ready COUNT" once every connection has received its response, then
keeps the connections open until standard input reaches end of file or a
line, or HOLD_SECONDS pass. Exits with 1 if a connection fails or a
response is not 200.
"""

import select
import socket
import sys
import time


def read_response(connection):
    """Read one response head and its Content-Length body; return the status code."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed before the response head ended")
        data += chunk
        if len(data) > 65536:
            raise ValueError("response head longer than 64 KiB")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = connection.recv(length - len(body))
        if not chunk:
            raise ConnectionError("connection closed inside the response body")
        body += chunk
    return status


def main():
    host, port, count, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    request = (f"GET /small HTTP/1.1\r\nHost: {host}\r\n"
               "Connection: keep-alive\r\n\r\n").encode("ascii")
    address = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4]
    connections = []
    for _ in range(count):
        connection = socket.create_connection(address, timeout=30)
        connection.sendall(request)
        status = read_response(connection)
        if status != 200:
            print(f"idle_connections: status {status} from {host}:{port}", file=sys.stderr)
            return 1
        connections.append(connection)

    print(f"ready {len(connections)}", flush=True)
    deadline = time.monotonic() + hold
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sys.stdin], [], [], deadline - time.monotonic())
        if readable:
            break
    for connection in connections:
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
