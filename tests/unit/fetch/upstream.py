#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Loopback HTTP and HTTPS upstreams for test-fetch.

Usage: upstream.py DIR

Creates a test CA and two server certificates in DIR with the openssl
command, then listens on 127.0.0.1 with three servers on ports chosen by
the kernel:
  http   plain HTTP/1.1
  https  TLS with a certificate for upstream.test
  wrong  TLS with a certificate for other.test
  h2     nginx with HTTP/2 over TLS for upstream.test, passing requests on
         to the http server, or 0 when nginx is not installed
It writes "ports HTTP HTTPS WRONG H2" as one line to stdout and serves
until its stdin is closed.

Paths:
  /hello          "hello world\\n" with an X-Test field
  /connection     the number of the TCP connection to this server,
                  counted from 1
  /large?size=N   N bytes where byte i is i % 251
  /interim        a 100 and a 103 response before the final one
  /echo           the request body back, with X-Seen-* fields that
                  describe the request as received
  /truncated      announces 1000 bytes, sends 10, then closes
"""

import http.server
import itertools
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import urllib.parse

COUNTER_LOCK = threading.Lock()


def openssl(*args, input=None):
    subprocess.run(["openssl", *args], input=input, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_certificates(folder):
    """Create ca.pem, and a key and certificate for each server name."""
    ca_key = os.path.join(folder, "ca.key")
    ca_cert = os.path.join(folder, "ca.pem")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key,
            "-out", ca_cert, "-days", "2", "-subj", "/CN=moat fetch test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name in ("upstream.test", "other.test"):
        key = os.path.join(folder, name + ".key")
        request = os.path.join(folder, name + ".csr")
        cert = os.path.join(folder, name + ".pem")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", key, "-out", request,
                "-subj", "/CN=" + name)
        openssl("x509", "-req", "-in", request, "-CA", ca_cert,
                "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
                "-extfile", "/dev/stdin", "-out", cert,
                input=b"basicConstraints=critical,CA:FALSE\n"
                      b"subjectAltName=DNS:" + name.encode() + b"\n"
                      b"keyUsage=critical,digitalSignature\n"
                      b"extendedKeyUsage=serverAuth\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with COUNTER_LOCK:
            self.connection_number = next(self.server.connection_counter)

    def log_message(self, format, *args):
        pass

    def send_body(self, status, body, fields=()):
        self.send_response(status)
        for name, value in fields:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            body = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(body)
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(length)

    def handle_any(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/hello":
            self.send_body(200, b"hello world\n",
                           [("X-Test", "one"), ("Content-Type", "text/plain")])
        elif url.path == "/connection":
            self.send_body(200, str(self.connection_number).encode())
        elif url.path == "/large":
            size = int(query["size"][0])
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            pattern = bytes(i % 251 for i in range(251 * 256))
            sent = 0
            while sent < size:
                # Start each block where the pattern continues.
                offset = sent % 251
                block = pattern[offset:offset + min(size - sent, 251 * 255)]
                self.wfile.write(block)
                sent += len(block)
        elif url.path == "/interim":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n"
                             b"HTTP/1.1 103 Early Hints\r\n"
                             b"Link: </style.css>; rel=preload\r\n\r\n")
            self.send_body(200, b"final", [("X-Final", "yes")])
        elif url.path == "/echo":
            body = self.read_body()
            names = ",".join(name.lower() for name in self.headers.keys())
            fields = [
                ("X-Seen-Method", self.command),
                ("X-Seen-Header-Names", names),
                ("X-Seen-Transfer-Encoding",
                 ",".join(self.headers.get_all("Transfer-Encoding", []))),
                ("X-Seen-Content-Length",
                 ",".join(self.headers.get_all("Content-Length", []))),
            ]
            self.send_body(200, body, fields)
        elif url.path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self.send_body(404, b"not found\n")

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Per server: a connection that another server accepts late must
        # not shift the numbers that a test reads from this one.
        self.connection_counter = itertools.count(1)

    def handle_error(self, request, client_address):
        pass  # clients that reject a certificate abort the handshake


def start_server(context=None):
    server = Server(("127.0.0.1", 0), Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def tls_context(folder, name):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(folder, name + ".pem"),
                            os.path.join(folder, name + ".key"))
    return context


NGINX_CONFIG = """
daemon off;
master_process off;
worker_processes 1;
pid {folder}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {folder}/nginx-body;
    proxy_temp_path {folder}/nginx-proxy;
    fastcgi_temp_path {folder}/nginx-fastcgi;
    uwsgi_temp_path {folder}/nginx-uwsgi;
    scgi_temp_path {folder}/nginx-scgi;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {folder}/upstream.test.pem;
        ssl_certificate_key {folder}/upstream.test.key;
        location = /connection {{
            default_type text/plain;
            return 200 "$connection $server_protocol";
        }}
        location / {{
            proxy_pass http://127.0.0.1:{backend};
        }}
    }}
}}
"""


def find_free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_nginx(folder, backend):
    """Start nginx for HTTP/2 and return its process and port."""
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        return None, 0
    port = find_free_port()
    config = os.path.join(folder, "nginx.conf")
    with open(config, "w") as stream:
        stream.write(NGINX_CONFIG.format(folder=folder, port=port,
                                         backend=backend))
    process = subprocess.Popen(
        [nginx, "-p", folder, "-c", config,
         "-e", os.path.join(folder, "nginx-error.log")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    # Wait until nginx accepts connections.
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            if process.poll() is not None:
                break
            threading.Event().wait(0.05)
    process.kill()
    sys.exit("nginx did not start; see " + folder + "/nginx-error.log")


def main():
    folder = sys.argv[1]
    make_certificates(folder)
    ports = [
        start_server(),
        start_server(tls_context(folder, "upstream.test")),
        start_server(tls_context(folder, "other.test")),
    ]
    nginx, h2_port = start_nginx(folder, ports[0])
    print("ports", *ports, h2_port, flush=True)
    try:
        sys.stdin.read()  # the test closes stdin when it is done
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait()


if __name__ == "__main__":
    main()
