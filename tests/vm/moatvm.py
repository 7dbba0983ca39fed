#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Boot the test guest behind moat and check what the guest and the audit log see.

Usage:
    python3 tests/vm/moatvm.py --moat build/src/moat --guest-dir DIR [CASE...]

DIR contains vmlinuz and initramfs.cpio.gz from tests/guest/build-initramfs.sh.
Without CASE every case runs; --list prints their names.

The harness runs in a private network namespace that contains only loopback:
it re-executes itself under `unshare -n` (or `unshare -rn` when not root).
Upstream HTTP and HTTPS servers listen on 127.0.0.1, and moat reaches them
through [upstream] connect-to, so no name is ever resolved by real DNS.

Each case starts moat with its own configuration in a short temporary
folder, boots QEMU (TCG unless MOAT_TEST_ACCEL=kvm) with the guest and a case
script, parses the MOAT-* lines the guest prints on its serial console, and
checks the audit log. The module is also a library: contrib/demo uses
Upstreams, MoatSession and GuestRun.
"""

import argparse
import base64
import binascii
import functools
import hashlib
import http.server
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

NETNS_ENV = "MOAT_VM_NETNS"
# Exit status that meson counts as a skipped test.
EXIT_SKIP = 77

# Audit log vocabulary, kept in one place so that it can follow moat's
# audit.c. NOTE: these names follow the interface description; check them
# against the first real audit log.
AUDIT_EVENT_KEY = "event"
AUDIT_DNS = "dns"
AUDIT_CONNECTION = "connection"
AUDIT_REQUEST = "request"
AUDIT_DECISION = "decision"
AUDIT_ALLOW = "allow"
AUDIT_DENY = "deny"

# Addresses moat hands out by DHCP: the familiar `-netdev user` layout.
GUEST_ADDRESS = "10.0.2.15"
GUEST_NETMASK = "255.255.255.0"
GATEWAY_ADDRESS = "10.0.2.2"
DNS_ADDRESS = "10.0.2.3"
DEFAULT_MTU = 1500

# Policy and names of the test cases. Every name a case uses has a
# connect-to entry, so that no request can leave loopback even if the policy
# check were broken.
TEST_ALLOW = ["allowed.test", "*.wild.test"]
TEST_DENY = ["denied.wild.test"]
TEST_NAMES = ["allowed.test", "other.wild.test", "denied.wild.test"]
TEST_CERT_NAMES = ["allowed.test", "*.wild.test"]

HELLO_BODY = b"hello from the moat test upstream\n"
PATTERN_BLOCK = 65536
MIB = 1024 * 1024


class CaseFailure(Exception):
    """A check of a case failed; the message names the check and the reason."""


def check(condition, message):
    """Raise CaseFailure with message unless condition holds."""
    if not condition:
        raise CaseFailure(message)


# ---------------------------------------------------------------------------
# Network namespace

def _netns_interfaces():
    # /proc/self/net follows the network namespace of this process, unlike
    # /sys/class/net, which follows the namespace that mounted sysfs.
    with open("/proc/self/net/dev", encoding="ascii") as dev:
        lines = dev.read().splitlines()[2:]
    return sorted(line.split(":", 1)[0].strip() for line in lines)


def ensure_private_netns():
    """Re-execute this program in a new network namespace unless it runs in one.

    The new namespace has only the loopback interface, which is brought up.
    Exits when the namespace has any other interface, so that no test
    traffic can leave the machine.
    """
    if os.environ.get(NETNS_ENV) != "1":
        unshare = shutil.which("unshare")
        if unshare is None:
            sys.exit("moatvm: unshare not found; install the Debian package util-linux")
        flags = "-n" if os.geteuid() == 0 else "-rn"
        os.environ[NETNS_ENV] = "1"
        argv = [unshare, flags, "--", sys.executable] + sys.argv
        try:
            os.execv(unshare, argv)
        except OSError as error:
            sys.exit(f"moatvm: running {' '.join(argv)} failed: {error}")

    interfaces = _netns_interfaces()
    if interfaces != ["lo"]:
        sys.exit(f"moatvm: {NETNS_ENV}=1 is set but this network namespace has the "
                 f"interfaces {', '.join(interfaces)}; unset {NETNS_ENV} so that "
                 "the harness creates a private namespace")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


# ---------------------------------------------------------------------------
# Deterministic payloads

@functools.lru_cache(maxsize=8)
def _pattern_filler(seed):
    block = hashlib.sha256(f"moat-filler:{seed}".encode()).digest()
    parts = []
    for _ in range(PATTERN_BLOCK // len(block)):
        parts.append(block)
        block = hashlib.sha256(block).digest()
    return b"".join(parts)


def pattern_blocks(length, seed):
    """Yield length bytes of the /bytes payload for seed, in blocks of 64 KiB.

    Block k starts with sha256(seed:k), so a lost, repeated or reordered
    block changes the sha256 of the whole payload.
    """
    filler = _pattern_filler(seed)
    index = 0
    remaining = length
    while remaining > 0:
        head = hashlib.sha256(f"{seed}:{index}".encode()).digest()
        block = head + filler[len(head):]
        size = min(remaining, PATTERN_BLOCK)
        yield block[:size]
        remaining -= size
        index += 1


@functools.lru_cache(maxsize=64)
def pattern_sha256(length, seed):
    """Return the hex sha256 of the /bytes payload for length and seed."""
    digest = hashlib.sha256()
    for block in pattern_blocks(length, seed):
        digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# Upstream servers

def _run(argv, cwd=None):
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed with exit code "
                           f"{result.returncode}: {result.stderr.strip()}")
    return result.stdout


def make_test_ca(folder, names):
    """Create a CA and a server certificate for names with the openssl CLI.

    Returns (ca_pem, cert_pem, key_pem) paths inside folder.
    """
    ca_key = os.path.join(folder, "upstream-ca.key")
    ca_pem = os.path.join(folder, "upstream-ca.pem")
    key_pem = os.path.join(folder, "upstream.key")
    csr = os.path.join(folder, "upstream.csr")
    cert_pem = os.path.join(folder, "upstream.pem")
    extensions = os.path.join(folder, "upstream.ext")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    _run(["openssl", "req", "-x509"] + ec + [
        "-keyout", ca_key, "-out", ca_pem, "-days", "2",
        "-subj", "/CN=moat test upstream CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    _run(["openssl", "req"] + ec + [
        "-keyout", key_pem, "-out", csr, "-subj", f"/CN={names[0]}"])
    with open(extensions, "w", encoding="ascii") as ext:
        ext.write("basicConstraints=critical,CA:FALSE\n")
        ext.write("keyUsage=critical,digitalSignature\n")
        ext.write("extendedKeyUsage=serverAuth\n")
        ext.write("subjectAltName=" + ",".join(f"DNS:{n}" for n in names) + "\n")
    _run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key,
          "-CAcreateserial", "-out", cert_pem, "-days", "2", "-extfile", extensions])
    return ca_pem, cert_pem, key_pem


class UpstreamHandler(http.server.BaseHTTPRequestHandler):
    """Test endpoints: /hello, /bytes, /bytes-chunked, /upload, /headers."""

    protocol_version = "HTTP/1.1"
    server_version = "moat-test-upstream"
    # Maximum length in bytes of a chunk-size line in a chunked upload.
    chunk_line_max = 1024

    def setup(self):
        # The TLS handshake runs here, in the request's own thread, so that
        # a slow client cannot stall the accept loop.
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(60)
            self.request.do_handshake()
        super().setup()

    def log_message(self, format, *args):  # noqa: A002 (base class name)
        self.server.log(f"{self.server.scheme} {self.address_string()} " + format % args)

    def _record(self):
        self.server.record({
            "scheme": self.server.scheme,
            "method": self.command,
            "path": self.path,
            "host": self.headers.get("Host", ""),
            "headers": list(self.headers.items()),
        })

    def _send_body(self, status, body, content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self._record()
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/hello":
            self._send_body(200, HELLO_BODY)
        elif url.path in ("/bytes", "/bytes-chunked"):
            try:
                length = int(query.get("n", ["0"])[0])
            except ValueError:
                self._send_body(400, b"n must be a decimal byte count\n")
                return
            seed = query.get("seed", ["0"])[0]
            self._send_pattern(length, seed, chunked=url.path == "/bytes-chunked")
        elif url.path == "/headers":
            body = json.dumps({"method": self.command, "path": self.path,
                               "headers": list(self.headers.items())}).encode()
            self._send_body(200, body + b"\n", "application/json")
        elif url.path == "/echo-authorization":
            # Echoes the credentials in a response header, as some servers
            # and debugging proxies do.
            self.send_response(200)
            self.send_header("X-Echo-Authorization", self.headers.get("Authorization", ""))
            self.send_header("Content-Length", str(len(HELLO_BODY)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(HELLO_BODY)
        elif url.path == "/close-delimited":
            # A body without Content-Length or chunked coding ends when the
            # server closes the connection; over TLS, Python's ssl module
            # closes without a close_notify alert, as many servers do.
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if self.command != "HEAD":
                self.wfile.write(HELLO_BODY)
        else:
            self._send_body(404, f"no endpoint {url.path}\n".encode())

    def _send_pattern(self, length, seed, chunked):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD":
            return
        for block in pattern_blocks(length, seed):
            if chunked:
                self.wfile.write(b"%x\r\n" % len(block) + block + b"\r\n")
            else:
                self.wfile.write(block)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def do_POST(self):
        self._record()
        if urllib.parse.urlsplit(self.path).path != "/upload":
            self._discard_body()
            self._send_body(404, b"POST and PUT go to /upload\n")
            return
        try:
            digest, length = self._hash_body()
        except ValueError as error:
            self.close_connection = True
            self._send_body(400, f"invalid request body: {error}\n".encode())
            return
        self._send_body(200, f"{digest} {length}\n".encode())

    do_PUT = do_POST

    def _discard_body(self):
        try:
            self._hash_body()
        except ValueError:
            self.close_connection = True

    def _read_exact(self, size, digest):
        while size > 0:
            data = self.rfile.read(min(size, 1 << 20))
            if not data:
                raise ValueError("connection closed inside the body")
            digest.update(data)
            size -= len(data)

    def _hash_body(self):
        """Read the request body (Content-Length or chunked) and hash it.

        Returns (hex sha256, length in bytes).
        """
        digest = hashlib.sha256()
        encoding = self.headers.get("Transfer-Encoding", "").strip().lower()
        if encoding == "chunked":
            total = 0
            while True:
                line = self.rfile.readline(self.chunk_line_max + 1)
                if len(line) > self.chunk_line_max or not line.endswith(b"\r\n"):
                    raise ValueError("chunk-size line too long or not CRLF-terminated")
                size_text = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise ValueError(f"invalid chunk size {size_text!r}") from None
                if size == 0:
                    break
                self._read_exact(size, digest)
                total += size
                if self.rfile.read(2) != b"\r\n":
                    raise ValueError("chunk data not followed by CRLF")
            # Trailer fields, up to the empty line.
            while True:
                line = self.rfile.readline(self.chunk_line_max + 1)
                if line in (b"\r\n", b""):
                    break
            return digest.hexdigest(), total
        if encoding:
            raise ValueError(f"unsupported Transfer-Encoding {encoding!r}")
        length_text = self.headers.get("Content-Length", "0")
        if not length_text.isdigit():
            raise ValueError(f"invalid Content-Length {length_text!r}")
        self._read_exact(int(length_text), digest)
        return digest.hexdigest(), int(length_text)


class UpstreamServer(http.server.ThreadingHTTPServer):
    """Threaded test server on 127.0.0.1 that records each request."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, scheme, log_path, ssl_context=None):
        super().__init__(("127.0.0.1", 0), UpstreamHandler)
        self.scheme = scheme
        self.requests = []
        self._lock = threading.Lock()
        self._log = open(log_path, "a", encoding="utf-8")
        if ssl_context is not None:
            self.socket = ssl_context.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False)

    @property
    def port(self):
        return self.server_address[1]

    def record(self, request):
        with self._lock:
            self.requests.append(request)

    def log(self, line):
        with self._lock:
            self._log.write(line + "\n")
            self._log.flush()

    def handle_error(self, request, client_address):
        self.log(f"{self.scheme} {client_address}: " + traceback.format_exc().strip())

    def server_close(self):
        super().server_close()
        self._log.close()


class Upstreams:
    """Loopback HTTP and HTTPS upstreams for a set of host names.

    Use as a context manager. Attributes: ca_pem (the test CA that signed
    the HTTPS certificate), http and https (UpstreamServer), log_path.
    """

    def __init__(self, folder, cert_names):
        self.folder = folder
        self.cert_names = list(cert_names)
        self.log_path = os.path.join(folder, "upstream.log")
        self.http = None
        self.https = None
        self.ca_pem = None
        self._threads = []

    def __enter__(self):
        self.ca_pem, cert_pem, key_pem = make_test_ca(self.folder, self.cert_names)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_pem, key_pem)
        context.set_alpn_protocols(["http/1.1"])
        self.http = UpstreamServer("http", self.log_path)
        self.https = UpstreamServer("https", self.log_path, context)
        for server in (self.http, self.https):
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc):
        for server in (self.http, self.https):
            if server is not None:
                server.shutdown()
                server.server_close()
        return False

    def connect_to(self, names):
        """Return [upstream] connect-to entries that send names to these servers."""
        entries = []
        for name in names:
            entries.append(f"{name}:80:127.0.0.1:{self.http.port}")
            entries.append(f"{name}:443:127.0.0.1:{self.https.port}")
        return entries

    def requests(self):
        """Return every request both servers received, in arrival order per server."""
        return list(self.http.requests) + list(self.https.requests)

    def requests_for_host(self, host):
        """Return the requests whose Host header names host (port ignored)."""
        return [r for r in self.requests() if r["host"].split(":")[0] == host]

    def clear(self):
        self.http.requests.clear()
        self.https.requests.clear()


# ---------------------------------------------------------------------------
# Guest

def cpio_newc(files):
    """Return an uncompressed cpio archive (newc format) of files.

    files maps a path inside the archive to (mode, bytes).
    """
    out = bytearray()

    def add(name, mode, data, inode):
        encoded = name.encode() + b"\0"
        fields = [inode, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0]
        out.extend(b"070701" + b"".join(b"%08X" % f for f in fields))
        out.extend(encoded)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    for inode, (name, (mode, data)) in enumerate(sorted(files.items()), start=1):
        add(name, mode, data, inode)
    add("TRAILER!!!", 0, b"", 0)
    return bytes(out)


# Shell functions every case script starts with. The guest prints results
# as "MOAT-RESULT NAME KEY=VALUE..." and files as base64 in
# "MOAT-DATA NAME LINE" lines.
GUEST_PRELUDE = r"""
result() { echo "MOAT-RESULT $*"; }

# emit NAME FILE: print FILE as base64 lines tagged with NAME.
emit() {
	[ -f "$2" ] || return 0
	base64 "$2" | sed "s/^/MOAT-DATA $1 /"
}

# fetch NAME CURL-ARGUMENT...: run curl, then print its exit code, the HTTP
# status, the response head, the body and curl's error output.
fetch() {
	name=$1
	shift
	status=$(curl -sS --max-time 120 -o "/tmp/$name.body" -D "/tmp/$name.head" \
		-w '%{http_code}' "$@" 2>"/tmp/$name.err")
	rc=$?
	result "$name" "rc=$rc" "status=$status"
	emit "$name.body" "/tmp/$name.body"
	emit "$name.head" "/tmp/$name.head"
	emit "$name.err" "/tmp/$name.err"
}
"""


class GuestRun:
    """Serial output of one guest boot, parsed."""

    def __init__(self, serial, qemu_status, timed_out):
        self.serial = serial
        self.qemu_status = qemu_status
        self.timed_out = timed_out
        self.results = {}
        self.data = {}
        self.dhcp = None
        self.case_rc = None
        self.errors = []
        encoded = {}
        for raw in serial.splitlines():
            line = raw.strip("\r")
            start = line.find("MOAT-")
            if start < 0:
                continue
            line = line[start:]
            tag, _, rest = line.partition(" ")
            if tag == "MOAT-RESULT":
                name, _, fields = rest.partition(" ")
                self.results[name] = dict(f.split("=", 1) for f in fields.split() if "=" in f)
            elif tag == "MOAT-DATA":
                name, _, chunk = rest.partition(" ")
                encoded.setdefault(name, []).append(chunk.strip())
            elif tag == "MOAT-DHCP":
                self.dhcp = dict(f.split("=", 1) for f in rest.split() if "=" in f)
            elif tag == "MOAT-CASE-END":
                self.case_rc = rest.strip()
            elif tag == "MOAT-GUEST-ERROR":
                self.errors.append(rest)
        for name, chunks in encoded.items():
            try:
                self.data[name] = base64.b64decode("".join(chunks))
            except binascii.Error as error:
                self.errors.append(f"base64 data {name} is corrupt: {error}")

    def result(self, name):
        """Return the fields of result name, or raise CaseFailure if it is missing."""
        check(name in self.results,
              f"the guest printed no result {name!r} (results: {sorted(self.results)})")
        return self.results[name]

    def text(self, name):
        """Return the decoded file name (for example 'hello.body') as text."""
        return self.data.get(name, b"").decode("utf-8", "replace")

    def header(self, name, field):
        """Return the value of response header field in result name, or None."""
        for line in self.text(f"{name}.head").splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() == field.lower():
                return value.strip()
        return None

    def check_booted(self, mtu=DEFAULT_MTU):
        """Check that the guest got the expected lease and ran its case script."""
        check(not self.timed_out, "QEMU timed out before the guest powered off")
        check(self.qemu_status == 0, f"QEMU exited with status {self.qemu_status}; "
              "its messages are in the serial output below")
        check(not self.errors, "the guest reported errors: " + "; ".join(self.errors))
        check(self.dhcp is not None, "the guest printed no DHCP lease (MOAT-DHCP line)")
        expected = {"ip": GUEST_ADDRESS, "subnet": GUEST_NETMASK,
                    "router": GATEWAY_ADDRESS, "dns": DNS_ADDRESS, "mtu": str(mtu)}
        for key, value in expected.items():
            check(self.dhcp.get(key) == value,
                  f"DHCP lease: expected {key}={value}, got {key}={self.dhcp.get(key)!r}")
        check(self.case_rc is not None, "the case script did not finish (no MOAT-CASE-END)")


def qemu_accel_args():
    """Return QEMU's accelerator and CPU arguments.

    TCG by default, because /dev/kvm may exist while KVM fails: under
    nested KVM, QEMU 7.2 with -cpu host aborted on setting MSR 0x10a.
    MOAT_TEST_ACCEL=kvm opts in to KVM.
    """
    if os.environ.get("MOAT_TEST_ACCEL", "tcg") == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    # "max" adds AES-NI, which the guest's TLS uses.
    return ["-accel", "tcg", "-cpu", "max"]


def boot_guest(guest_dir, socket_path, script, folder, timeout, extra_files=None,
               verbose=False, label="guest"):
    """Boot the guest on moat's socket with script as /case.sh.

    extra_files maps guest paths to bytes (for example /ca.pem). Returns a
    GuestRun once the guest powers off or timeout seconds pass.
    """
    kernel = os.path.join(guest_dir, "vmlinuz")
    initramfs = os.path.join(guest_dir, "initramfs.cpio.gz")
    for path in (kernel, initramfs):
        if not os.path.exists(path):
            raise CaseFailure(f"{path} not found; run tests/guest/build-initramfs.sh {guest_dir}")

    files = {"case.sh": (0o100755, ("#!/bin/sh\n" + GUEST_PRELUDE + script).encode())}
    for path, data in (extra_files or {}).items():
        files[path.lstrip("/")] = (0o100644, data)
    combined = os.path.join(folder, f"{label}-initrd.img")
    # The case archive goes first: Linux 6.1 does not unpack an archive
    # placed after a compressed one.
    with open(combined, "wb") as out:
        out.write(cpio_newc(files))
        with open(initramfs, "rb") as base:
            shutil.copyfileobj(base, out)

    argv = ["qemu-system-x86_64"] + qemu_accel_args() + [
        "-m", "256", "-nographic", "-no-reboot",
        "-kernel", kernel, "-initrd", combined,
        "-append", "console=ttyS0 panic=-1 quiet",
        "-netdev", f"stream,id=n0,server=off,addr.type=unix,addr.path={socket_path}",
        "-device", "virtio-net-pci,netdev=n0,romfile=",
    ]
    serial_path = os.path.join(folder, f"{label}-serial.log")
    chunks = []

    def pump(stream):
        with open(serial_path, "wb") as log:
            for chunk in iter(lambda: stream.read1(65536), b""):
                chunks.append(chunk)
                log.write(chunk)
                if verbose:
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.flush()

    qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    reader = threading.Thread(target=pump, args=(qemu.stdout,), daemon=True)
    reader.start()
    timed_out = False
    try:
        status = qemu.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        qemu.kill()
        status = qemu.wait()
    reader.join(timeout=10)
    serial = b"".join(chunks).decode("utf-8", "replace")
    return GuestRun(serial, status, timed_out)


# ---------------------------------------------------------------------------
# moat

def audit_matches(line, expected):
    for key, value in expected.items():
        actual = line.get(key)
        if callable(value):
            if not value(actual):
                return False
        elif actual != value:
            return False
    return True


def _describe(expected):
    return ", ".join(f"{k}={getattr(v, 'description', v)!r}" for k, v in expected.items())


def status_range(low, high):
    """Return a matcher for an integer status low <= status <= high."""
    def matcher(value):
        return isinstance(value, int) and low <= value <= high
    matcher.description = f"{low}..{high}"
    return matcher


def one_of(*values):
    """Return a matcher for any of values."""
    def matcher(value):
        return value in values
    matcher.description = " or ".join(repr(v) for v in values)
    return matcher


class MoatSession:
    """One moat process with its own configuration, audit log and socket.

    Use as a context manager; boot() starts a guest on it. The folder is
    short (under /tmp) because unix socket paths are limited to 107 bytes.
    """

    def __init__(self, moat, guest_dir, upstreams, allow, deny, names, mtu=None,
                 keep=False, verbose=False, debug=False, extra_config="", policy_lines=(),
                 env=None, command_prefix=()):
        self.moat = moat
        # Runs moat under another program, e.g. ["valgrind", ...] or
        # ["prlimit", "--nofile=256"].
        self.command_prefix = list(command_prefix)
        self.guest_dir = guest_dir
        self.upstreams = upstreams
        self.allow = allow
        self.deny = deny
        self.names = names
        self.mtu = mtu
        self.keep = keep
        self.verbose = verbose
        self.debug = debug
        self.folder = tempfile.mkdtemp(prefix="moatvm-", dir="/tmp")
        self.socket_path = os.path.join(self.folder, "moat.sock")
        self.audit_path = os.path.join(self.folder, "audit.jsonl")
        self.ca_path = os.path.join(self.folder, "ca.pem")
        self.config_path = os.path.join(self.folder, "moat.ini")
        self.placeholders_path = os.path.join(self.folder, "placeholders.env")
        # Rule and secret groups, lines for [policy] and environment
        # variables for moat, set by cases that need their own policy.
        self.extra_config = extra_config
        self.policy_lines = list(policy_lines)
        self.env = dict(env or {})
        self.log_path = os.path.join(self.folder, "moat.log")
        self.process = None
        self.runs = []
        self._log = None
        self._boots = 0

    def config_text(self):
        lines = ["[moat]", f"audit = {self.audit_path}",
                 f"placeholders-out = {self.placeholders_path}"]
        if self.mtu is not None:
            lines.append(f"mtu = {self.mtu}")
        lines += ["", "[policy]", "allow = " + ";".join(self.allow)]
        if self.deny:
            lines.append("deny = " + ";".join(self.deny))
        lines += self.policy_lines
        lines += ["", "[tls]", f"ca-cert-out = {self.ca_path}",
                  "", "[upstream]", f"ca-file = {self.upstreams.ca_pem}",
                  "connect-to = " + ";".join(self.upstreams.connect_to(self.names)), ""]
        return "\n".join(lines) + self.extra_config

    def __enter__(self):
        if len(self.socket_path) > 107:
            raise CaseFailure(f"socket path {self.socket_path} is longer than 107 bytes")
        with open(self.config_path, "w", encoding="utf-8") as config:
            config.write(self.config_text())
        env = dict(os.environ)
        if self.debug:
            env["G_MESSAGES_DEBUG"] = "all"
        env.update(self.env)
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            self.command_prefix
            + [self.moat, "--config", self.config_path, "--socket", self.socket_path],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 15
        while not (os.path.exists(self.ca_path) and os.path.exists(self.socket_path)):
            status = self.process.poll()
            if status is not None:
                raise CaseFailure(f"moat exited with status {status} before it listened "
                                  f"on {self.socket_path}")
            if time.monotonic() > deadline:
                missing = [p for p in (self.ca_path, self.socket_path) if not os.path.exists(p)]
                raise CaseFailure("moat did not create " + " and ".join(missing) + " within 15 s")
            time.sleep(0.05)
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        if self.keep or exc_type is not None:
            print(f"  files kept in {self.folder}")
        else:
            shutil.rmtree(self.folder, ignore_errors=True)
        return False

    def check_running(self):
        status = self.process.poll()
        check(status is None, f"moat exited with status {status} while the guest ran"
              + (f" (signal {signal.Signals(-status).name})" if status and status < 0 else ""))

    def stop(self):
        """Stop moat with SIGTERM (SIGKILL after 10 s); return its exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.process.returncode

    def cpu_seconds(self):
        """Return the CPU time (user + system) moat has used so far, in seconds."""
        with open(f"/proc/{self.process.pid}/stat", encoding="ascii") as stat:
            # The command name in field 2 may contain spaces but ends with ")".
            fields = stat.read().rsplit(")", 1)[1].split()
        # utime and stime are fields 14 and 15 of proc(5), in clock ticks.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def ca_pem(self):
        with open(self.ca_path, "rb") as ca:
            return ca.read()

    def boot(self, script, timeout=120, with_ca=True):
        """Boot one guest with script against this moat; return its GuestRun."""
        self._boots += 1
        extra = {"/ca.pem": self.ca_pem()} if with_ca else {}
        run = boot_guest(self.guest_dir, self.socket_path, script, self.folder, timeout,
                         extra_files=extra, verbose=self.verbose, label=f"boot{self._boots}")
        self.runs.append(run)
        return run

    def placeholders(self):
        """Return the NAME=PLACEHOLDER lines that moat wrote, as a dict."""
        with open(self.placeholders_path, encoding="ascii") as text:
            return dict(line.rstrip("\n").split("=", 1) for line in text if "=" in line)

    def write_config(self, extra=None):
        """Write the configuration file again; moat reloads it on change."""
        if extra is not None:
            self.extra_config = extra
        with open(self.config_path + ".new", "w", encoding="utf-8") as config:
            config.write(self.config_text())
        os.replace(self.config_path + ".new", self.config_path)

    def wait_audit(self, expected, timeout=15):
        """Wait until an audit line matches expected; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.audit() if audit_matches(e, expected)]
            if found:
                print(f"  audit: {_describe(expected)}")
                return found[-1]
            time.sleep(0.1)
        raise CaseFailure(f"no audit line with {_describe(expected)} within {timeout} s")

    def audit(self):
        """Return the audit log as a list of objects; every line must be valid JSON."""
        if not os.path.exists(self.audit_path):
            raise CaseFailure(f"moat wrote no audit log at {self.audit_path}")
        events = []
        with open(self.audit_path, encoding="utf-8") as audit:
            for number, line in enumerate(audit, start=1):
                try:
                    event = json.loads(line)
                except json.JSONDecodeError as error:
                    raise CaseFailure(f"audit line {number} is not valid JSON ({error}): "
                                      f"{line.rstrip()!r}") from None
                check(isinstance(event, dict), f"audit line {number} is not a JSON object")
                check(AUDIT_EVENT_KEY in event,
                      f"audit line {number} has no {AUDIT_EVENT_KEY!r} field: {line.rstrip()}")
                events.append(event)
        return events

    def expect_audit(self, count=1, **expected):
        """Check that at least count audit lines match expected; return them.

        Values in expected are compared for equality, or called when they
        are matchers (status_range, one_of).
        """
        events = self.audit()
        found = [e for e in events if audit_matches(e, expected)]
        check(len(found) >= count,
              f"expected {count} audit line(s) with {_describe(expected)}, found {len(found)}")
        print(f"  audit: {len(found)} line(s) with {_describe(expected)}")
        return found

    def failure_report(self):
        """Return moat's log tail, the guests' serial output and the audit log."""
        parts = []
        try:
            with open(self.log_path, "rb") as log:
                tail = log.read()[-6000:].decode("utf-8", "replace")
            parts.append(f"--- moat output (tail of {self.log_path}) ---\n{tail}")
        except OSError as error:
            parts.append(f"--- moat output unavailable: {error}")
        for index, run in enumerate(self.runs, start=1):
            parts.append(f"--- guest serial output, boot {index} (QEMU status "
                         f"{run.qemu_status}) ---\n{run.serial[-8000:]}")
        try:
            with open(self.audit_path, encoding="utf-8", errors="replace") as audit:
                parts.append(f"--- audit log {self.audit_path} ---\n{audit.read()[-8000:]}")
        except OSError as error:
            parts.append(f"--- audit log unavailable: {error}")
        try:
            with open(self.upstreams.log_path, encoding="utf-8", errors="replace") as up:
                parts.append(f"--- upstream log (tail) ---\n{up.read()[-3000:]}")
        except OSError:
            pass
        return "\n".join(parts)


# ---------------------------------------------------------------------------
# Cases

CASES = {}


def case(name, timeout=120):
    """Register a case function under name; timeout is per guest boot, in seconds."""
    def register(function):
        function.case_name = name
        function.boot_timeout = timeout
        CASES[name] = function
        return function
    return register


def expect_fetch(run, name, status, body=None, body_contains=None):
    """Check that fetch NAME finished with HTTP status (an int or a matcher)."""
    fields = run.result(name)
    error = run.text(f"{name}.err").strip()
    if callable(status):
        check(fields.get("status", "").isdigit() and status(int(fields["status"])),
              f"{name}: expected HTTP status {status.description}, got {fields.get('status')} "
              f"(curl exit code {fields.get('rc')}, {error or 'no curl error'})")
    else:
        check(fields.get("rc") == "0",
              f"{name}: curl failed with exit code {fields.get('rc')}: {error}")
        check(fields.get("status") == str(status),
              f"{name}: expected HTTP status {status}, got {fields.get('status')}")
    if body is not None:
        check(run.data.get(f"{name}.body", b"") == body,
              f"{name}: expected body {body!r}, got {run.data.get(f'{name}.body', b'')[:200]!r}")
    if body_contains is not None:
        check(body_contains in run.text(f"{name}.body"),
              f"{name}: body does not contain {body_contains!r}: {run.text(f'{name}.body')[:300]!r}")
    print(f"  {name}: HTTP {fields.get('status')}")
    return fields


def expect_no_upstream_request(session, host):
    seen = session.upstreams.requests_for_host(host)
    check(not seen, f"the upstream received {len(seen)} request(s) for {host}, "
          f"which moat should have denied: {[r['method'] + ' ' + r['path'] for r in seen]}")
    print(f"  upstream: no request for {host}")


def expect_upstream_request(session, scheme, host, path):
    seen = [r for r in session.upstreams.requests_for_host(host)
            if r["scheme"] == scheme and r["path"] == path]
    check(seen, f"the {scheme} upstream received no request for {host}{path}")
    print(f"  upstream: {scheme} request for {host}{path}")


@case("allowed-http")
def case_allowed_http(session):
    run = session.boot("fetch hello http://allowed.test/hello\n")
    run.check_booted(session.mtu or DEFAULT_MTU)
    expect_fetch(run, "hello", 200, body=HELLO_BODY)
    expect_upstream_request(session, "http", "allowed.test", "/hello")
    session.check_running()
    session.expect_audit(**{AUDIT_EVENT_KEY: AUDIT_DNS, "host": "allowed.test"})
    session.expect_audit(**{AUDIT_EVENT_KEY: AUDIT_CONNECTION, "host": "allowed.test",
                            "port": 80})
    session.expect_audit(**{AUDIT_EVENT_KEY: AUDIT_REQUEST, AUDIT_DECISION: AUDIT_ALLOW,
                            "host": "allowed.test", "method": "GET",
                            "url": "http://allowed.test/hello", "status": 200})


@case("allowed-https")
def case_allowed_https(session):
    run = session.boot("fetch hello --cacert /ca.pem https://allowed.test/hello\n")
    run.check_booted(session.mtu or DEFAULT_MTU)
    expect_fetch(run, "hello", 200, body=HELLO_BODY)
    expect_upstream_request(session, "https", "allowed.test", "/hello")
    session.check_running()
    session.expect_audit(**{AUDIT_EVENT_KEY: AUDIT_CONNECTION, "host": "allowed.test",
                            "port": 443})
    session.expect_audit(**{AUDIT_EVENT_KEY: AUDIT_REQUEST, AUDIT_DECISION: AUDIT_ALLOW,
                            "host": "allowed.test", "method": "GET",
                            "url": "https://allowed.test/hello", "status": 200})


def _check_denied(session, run, scheme):
    # The control request to an allowed name under the same wildcard shows
    # that moat denies by name, not everything.
    expect_fetch(run, "control", 200, body=HELLO_BODY)
    expect_upstream_request(session, scheme, "other.wild.test", "/hello")
    expect_fetch(run, "denied", 403, body_contains="denied.wild.test")
    header = run.header("denied", "X-Moat-Denied")
    check(header is not None, "denied: the 403 response has no X-Moat-Denied header")
    check(header.startswith("denied.wild.test:"),
          f"denied: X-Moat-Denied should start with 'denied.wild.test:', got {header!r}")
    print(f"  denied: X-Moat-Denied: {header}")
    expect_no_upstream_request(session, "denied.wild.test")
    session.check_running()
    session.expect_audit(**{AUDIT_EVENT_KEY: AUDIT_REQUEST, AUDIT_DECISION: AUDIT_DENY,
                            "host": "denied.wild.test",
                            "url": f"{scheme}://denied.wild.test/hello"})


@case("http-semantics")
def case_http_semantics(session):
    """Keep-alive, HEAD, Expect: 100-continue and a chunked upload."""
    run = session.boot(
        "connects=$(curl -sS -o /dev/null -o /dev/null -w '%{num_connects},' "
        "http://allowed.test/hello http://allowed.test/hello 2>/tmp/keepalive.err)\n"
        "result keepalive rc=$? connects=$connects\n"
        "fetch head -I http://allowed.test/hello\n"
        "head -c 3000000 /dev/urandom >/tmp/up.bin\n"
        "result upfile sha256=$(sha256sum /tmp/up.bin | cut -d' ' -f1)\n"
        "fetch expect -H 'Expect: 100-continue' --data-binary @/tmp/up.bin "
        "http://allowed.test/upload\n"
        "fetch chunked -H 'Transfer-Encoding: chunked' --data-binary @/tmp/up.bin "
        "--cacert /ca.pem https://allowed.test/upload\n")
    run.check_booted(session.mtu or DEFAULT_MTU)

    keepalive = run.result("keepalive")
    check(keepalive.get("rc") == "0",
          f"keepalive: curl failed: {run.text('keepalive.err')}")
    check(keepalive.get("connects") == "1,0,",
          "keepalive: the second request should reuse the connection "
          f"(num_connects 1 then 0), got {keepalive.get('connects')}")
    print("  keepalive: two requests on one connection")

    # curl -I writes the response head where the body would go.
    expect_fetch(run, "head", 200)
    check(HELLO_BODY not in run.data.get("head.body", b""),
          "head: the response to HEAD carried a body")
    length = run.header("head", "Content-Length")
    check(length == str(len(HELLO_BODY)),
          f"head: expected Content-Length {len(HELLO_BODY)}, got {length!r}")
    session.expect_audit(**{AUDIT_EVENT_KEY: AUDIT_REQUEST, "method": "HEAD",
                            "status": 200})

    digest = run.result("upfile").get("sha256")
    expected = f"{digest} 3000000"
    for name in ("expect", "chunked"):
        expect_fetch(run, name, 200)
        answer = run.text(f"{name}.body").strip()
        check(answer == expected,
              f"{name}: the upstream received '{answer}', expected '{expected}'")
        print(f"  {name}: upstream received 3000000 bytes with the same sha256")
    session.check_running()


@case("denied-http")
def case_denied_http(session):
    run = session.boot("fetch control http://other.wild.test/hello\n"
                       "fetch denied http://denied.wild.test/hello\n")
    run.check_booted(session.mtu or DEFAULT_MTU)
    _check_denied(session, run, "http")


@case("denied-https")
def case_denied_https(session):
    run = session.boot("fetch control --cacert /ca.pem https://other.wild.test/hello\n"
                       "fetch denied --cacert /ca.pem https://denied.wild.test/hello\n")
    run.check_booted(session.mtu or DEFAULT_MTU)
    _check_denied(session, run, "https")


@case("host-mismatch")
def case_host_mismatch(session):
    # The control request on the same name shows that only the Host header
    # causes the rejection, not a policy that denies everything.
    run = session.boot("fetch control --cacert /ca.pem https://allowed.test/hello\n"
                       "fetch mismatch --cacert /ca.pem -H 'Host: other.wild.test' "
                       "https://allowed.test/hello\n")
    run.check_booted(session.mtu or DEFAULT_MTU)
    expect_fetch(run, "control", 200, body=HELLO_BODY)
    expect_fetch(run, "mismatch", status_range(400, 499))
    expect_no_upstream_request(session, "other.wild.test")
    seen = [r for r in session.upstreams.requests() if r["path"] == "/hello"]
    check(len(seen) == 1, f"the upstream received {len(seen)} requests for /hello, "
          "expected 1 (the control request only)")
    session.check_running()
    session.expect_audit(**{AUDIT_EVENT_KEY: one_of(AUDIT_REQUEST, AUDIT_CONNECTION),
                            AUDIT_DECISION: AUDIT_DENY})


@case("non-http")
def case_non_http(session):
    # curl's telnet:// sends stdin as raw bytes and prints whatever comes
    # back, so moat must close the connection without a reply.
    run = session.boot(r"""
printf '\001\002\003 not a protocol moat knows\r\n\r\n' >/tmp/garbage
start=$(date +%s)
curl -sS --max-time 60 telnet://allowed.test:80 </tmp/garbage >/tmp/raw.out 2>/tmp/raw.err
rc=$?
end=$(date +%s)
result raw "rc=$rc" "seconds=$((end - start))" "bytes=$(wc -c </tmp/raw.out)"
emit raw.out /tmp/raw.out
emit raw.err /tmp/raw.err
""")
    run.check_booted(session.mtu or DEFAULT_MTU)
    fields = run.result("raw")
    print(f"  raw: curl exit code {fields.get('rc')} after {fields.get('seconds')} s, "
          f"{fields.get('bytes')} bytes back")
    check(fields.get("rc") != "28", "raw: moat did not close the connection within 60 s")
    check(fields.get("bytes") == "0",
          f"raw: expected no reply bytes, got {run.data.get('raw.out', b'')[:200]!r}")
    check(not session.upstreams.requests(),
          f"the upstream received requests: {session.upstreams.requests()}")
    session.check_running()
    session.expect_audit(**{AUDIT_EVENT_KEY: AUDIT_CONNECTION, AUDIT_DECISION: AUDIT_DENY,
                            "host": "allowed.test", "port": 80})


DOWNLOAD_BYTES = 256 * MIB
CHUNKED_BYTES = 16 * MIB


@case("download-256m", timeout=900)
def case_download_256m(session):
    # curl writes into a FIFO that sha256sum reads, so 256 MiB never has to
    # fit into the guest's 256 MiB of memory.
    script = f"""
mkfifo /tmp/dl
sha256sum </tmp/dl >/tmp/dl.sum &
out=$(curl -sS --max-time 800 --cacert /ca.pem -o /tmp/dl \\
	-w '%{{http_code}} %{{size_download}} %{{speed_download}}' \\
	'https://allowed.test/bytes?n={DOWNLOAD_BYTES}&seed=download' 2>/tmp/dl.err)
rc=$?
wait
set -- $out
result download "rc=$rc" "status=$1" "size=$2" "speed=$3" "sha256=$(cut -d' ' -f1 /tmp/dl.sum)"
emit download.err /tmp/dl.err

rm /tmp/dl
mkfifo /tmp/dl
sha256sum </tmp/dl >/tmp/dl.sum &
out=$(curl -sS --max-time 300 -o /tmp/dl -w '%{{http_code}} %{{size_download}}' \\
	'http://allowed.test/bytes-chunked?n={CHUNKED_BYTES}&seed=chunked' 2>/tmp/ch.err)
rc=$?
wait
set -- $out
result chunked "rc=$rc" "status=$1" "size=$2" "sha256=$(cut -d' ' -f1 /tmp/dl.sum)"
emit chunked.err /tmp/ch.err
"""
    cpu_before = session.cpu_seconds()
    run = session.boot(script, timeout=case_download_256m.boot_timeout)
    cpu_used = session.cpu_seconds() - cpu_before
    run.check_booted(session.mtu or DEFAULT_MTU)
    for name, length, seed in (("download", DOWNLOAD_BYTES, "download"),
                               ("chunked", CHUNKED_BYTES, "chunked")):
        fields = run.result(name)
        check(fields.get("rc") == "0", f"{name}: curl failed with exit code "
              f"{fields.get('rc')}: {run.text(name + '.err').strip()}")
        check(fields.get("status") == "200", f"{name}: expected HTTP 200, got {fields.get('status')}")
        check(fields.get("size") == str(length),
              f"{name}: expected {length} bytes, got {fields.get('size')}")
        expected = pattern_sha256(length, seed)
        check(fields.get("sha256") == expected,
              f"{name}: sha256 {fields.get('sha256')} differs from the upstream's {expected}")
        print(f"  {name}: {length} bytes, sha256 matches")
    speed = float(run.result("download").get("speed", "0"))
    print(f"  download-256m: the guest saw {speed / 1e6:.1f} MB/s over HTTPS "
          f"(curl speed_download, MTU {session.mtu or DEFAULT_MTU}, "
          f"{'KVM' if os.environ.get('MOAT_TEST_ACCEL') == 'kvm' else 'TCG'})")
    print(f"  moat used {cpu_used:.1f} s of CPU time during this boot")
    session.check_running()
    session.expect_audit(**{AUDIT_EVENT_KEY: AUDIT_REQUEST, AUDIT_DECISION: AUDIT_ALLOW,
                            "host": "allowed.test", "status": 200,
                            "url": f"https://allowed.test/bytes?n={DOWNLOAD_BYTES}&seed=download"})


UPLOAD_BYTES = 256 * MIB


@case("upload-256m", timeout=900)
def case_upload_256m(session):
    # tee feeds one copy to sha256sum through a FIFO and one to curl, which
    # streams it with chunked encoding (-T - has no length to announce).
    script = f"""
mkfifo /tmp/up
sha256sum </tmp/up >/tmp/up.sum &
head -c {UPLOAD_BYTES} /dev/urandom | tee /tmp/up | \\
	curl -sS --max-time 800 --cacert /ca.pem -X POST -T - -o /tmp/up.body \\
	-w '%{{http_code}} %{{size_upload}} %{{speed_upload}}' \\
	https://allowed.test/upload >/tmp/up.out 2>/tmp/up.err
rc=$?
wait
set -- $(cat /tmp/up.out)
result upload "rc=$rc" "status=$1" "size=$2" "speed=$3" "sha256=$(cut -d' ' -f1 /tmp/up.sum)"
emit upload.body /tmp/up.body
emit upload.err /tmp/up.err
"""
    cpu_before = session.cpu_seconds()
    run = session.boot(script, timeout=case_upload_256m.boot_timeout)
    cpu_used = session.cpu_seconds() - cpu_before
    run.check_booted(session.mtu or DEFAULT_MTU)
    fields = run.result("upload")
    check(fields.get("rc") == "0", f"upload: curl failed with exit code {fields.get('rc')}: "
          f"{run.text('upload.err').strip()}")
    check(fields.get("status") == "200", f"upload: expected HTTP 200, got {fields.get('status')}")
    reply = run.text("upload.body").split()
    check(len(reply) == 2, f"upload: unexpected upstream reply {run.text('upload.body')!r}")
    check(reply[1] == str(UPLOAD_BYTES),
          f"upload: the upstream received {reply[1]} bytes, expected {UPLOAD_BYTES}")
    check(reply[0] == fields.get("sha256"),
          f"upload: the upstream's sha256 {reply[0]} differs from the guest's {fields.get('sha256')}")
    speed = float(fields.get("speed", "0"))
    print(f"  upload: {UPLOAD_BYTES} bytes, sha256 matches")
    print(f"  upload-256m: the guest saw {speed / 1e6:.1f} MB/s over HTTPS "
          f"(curl speed_upload, MTU {session.mtu or DEFAULT_MTU}, "
          f"{'KVM' if os.environ.get('MOAT_TEST_ACCEL') == 'kvm' else 'TCG'})")
    print(f"  moat used {cpu_used:.1f} s of CPU time during this boot")
    session.check_running()
    session.expect_audit(**{AUDIT_EVENT_KEY: AUDIT_REQUEST, AUDIT_DECISION: AUDIT_ALLOW,
                            "host": "allowed.test", "method": "POST", "status": 200,
                            "url": "https://allowed.test/upload"})


CONCURRENT_REQUESTS = 20
CONCURRENT_BYTES = 256 * 1024


@case("concurrent-20", timeout=300)
def case_concurrent_20(session):
    # Even-numbered requests use HTTP, odd ones HTTPS; each has its own seed
    # so that a mixed-up response shows as a sha256 mismatch.
    script = f"""
i=0
while [ $i -lt {CONCURRENT_REQUESTS} ]; do
	if [ $((i % 2)) -eq 0 ]; then scheme=http; else scheme=https; fi
	(
		out=$(curl -sS --max-time 200 --cacert /ca.pem -o /tmp/c$i.body -w '%{{http_code}}' \\
			"$scheme://allowed.test/bytes?n={CONCURRENT_BYTES}&seed=c$i" 2>/tmp/c$i.err)
		echo "$? $out" >/tmp/c$i.status
	) &
	i=$((i + 1))
done
wait
i=0
while [ $i -lt {CONCURRENT_REQUESTS} ]; do
	set -- $(cat /tmp/c$i.status)
	result c$i "rc=$1" "status=$2" "sha256=$(sha256sum </tmp/c$i.body | cut -d' ' -f1)"
	emit c$i.err /tmp/c$i.err
	i=$((i + 1))
done
"""
    run = session.boot(script, timeout=case_concurrent_20.boot_timeout)
    run.check_booted(session.mtu or DEFAULT_MTU)
    failures = []
    for index in range(CONCURRENT_REQUESTS):
        name = f"c{index}"
        fields = run.result(name)
        expected = pattern_sha256(CONCURRENT_BYTES, name)
        if fields.get("rc") != "0" or fields.get("status") != "200":
            failures.append(f"{name}: curl exit code {fields.get('rc')}, HTTP "
                            f"{fields.get('status')}: {run.text(name + '.err').strip()}")
        elif fields.get("sha256") != expected:
            failures.append(f"{name}: sha256 {fields.get('sha256')} differs from {expected}")
    check(not failures, f"{len(failures)} of {CONCURRENT_REQUESTS} requests failed:\n    "
          + "\n    ".join(failures))
    print(f"  {CONCURRENT_REQUESTS} parallel requests: all HTTP 200 with the right sha256")
    session.check_running()
    session.expect_audit(count=CONCURRENT_REQUESTS,
                         **{AUDIT_EVENT_KEY: AUDIT_REQUEST, AUDIT_DECISION: AUDIT_ALLOW,
                            "host": "allowed.test", "status": 200})


@case("reconnect")
def case_reconnect(session):
    first = session.boot("fetch first http://allowed.test/hello\n")
    first.check_booted(session.mtu or DEFAULT_MTU)
    expect_fetch(first, "first", 200, body=HELLO_BODY)
    # QEMU has exited: moat must now wait for the next connection.
    time.sleep(1)
    session.check_running()
    print("  moat still runs after the first guest powered off")
    second = session.boot("fetch second --cacert /ca.pem https://allowed.test/hello\n")
    second.check_booted(session.mtu or DEFAULT_MTU)
    expect_fetch(second, "second", 200, body=HELLO_BODY)
    session.check_running()
    session.expect_audit(**{AUDIT_EVENT_KEY: AUDIT_REQUEST, AUDIT_DECISION: AUDIT_ALLOW,
                            "url": "http://allowed.test/hello", "status": 200})
    session.expect_audit(**{AUDIT_EVENT_KEY: AUDIT_REQUEST, AUDIT_DECISION: AUDIT_ALLOW,
                            "url": "https://allowed.test/hello", "status": 200})


# Policy rules, secrets, report mode and reload. Each case sets its own
# policy through the attributes that case() stores.

VM_SECRET_VALUE = "real-secret-value-0f1e2d3c4b5a"


def _kill_qemu_on(socket_path):
    """SIGKILL the QEMU whose netdev uses socket_path; return how many were killed."""
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                argv = cmdline.read().split(b"\0")
        except OSError:
            continue
        if (argv and argv[0].endswith(b"qemu-system-x86_64")
                and any(socket_path.encode() in arg for arg in argv)):
            os.kill(int(entry), signal.SIGKILL)
            killed += 1
    return killed


def _rss_bytes(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise CaseFailure(f"/proc/{pid}/status has no VmRSS line")


# Resident memory moat may gain across a QEMU disconnect and reconnect: an
# estimate with room for the buffers of the interrupted transfer.
DISCONNECT_RSS_GROWTH_MAX = 64 * MIB


@case("qemu-disconnect", timeout=300)
def case_qemu_disconnect(session):
    # A download far longer than the case, so that QEMU dies inside it.
    url = f"http://allowed.test/bytes?n={DOWNLOAD_BYTES}&seed=disconnect"
    script = f"curl -sS --max-time 250 -o /dev/null '{url}'\n"
    rss_before = None
    killed = []

    def kill_during_transfer():
        deadline = time.monotonic() + 200
        while time.monotonic() < deadline:
            if any(r["path"].startswith("/bytes") for r in session.upstreams.requests()):
                # Let the body flow for a moment, then pull the plug.
                time.sleep(2)
                killed.append(_kill_qemu_on(session.socket_path))
                return
            time.sleep(0.2)

    rss_before = _rss_bytes(session.process.pid)
    killer = threading.Thread(target=kill_during_transfer, daemon=True)
    killer.start()
    first = session.boot(script, timeout=250)
    killer.join(timeout=5)
    check(killed == [1], f"the harness did not kill QEMU during the download (killed {killed}); "
          f"serial output:\n{first.serial[-2000:]}")
    check(first.qemu_status != 0, "QEMU exited normally although it was killed")
    time.sleep(1)
    session.check_running()
    print("  moat still runs after QEMU was killed inside a download")

    second = session.boot("fetch second --cacert /ca.pem https://allowed.test/hello\n")
    second.check_booted(session.mtu or DEFAULT_MTU)
    expect_fetch(second, "second", 200, body=HELLO_BODY)
    session.check_running()
    growth = _rss_bytes(session.process.pid) - rss_before
    check(growth < DISCONNECT_RSS_GROWTH_MAX,
          f"moat's VmRSS grew by {growth // 1024} KiB across the disconnect, more than "
          f"{DISCONNECT_RSS_GROWTH_MAX // 1024} KiB")
    # MoatSession.audit() fails on a line that is not JSON.
    session.audit()
    session.expect_audit(count=2, event="qemu", state="disconnected")
    # The download cut off by the disconnect still has its request line.
    session.expect_audit(**{AUDIT_EVENT_KEY: AUDIT_REQUEST, AUDIT_DECISION: AUDIT_ALLOW,
                            "url": url, "status": 200,
                            "reason": "connection closed before the response was complete"})
    session.expect_audit(**{AUDIT_EVENT_KEY: AUDIT_REQUEST, AUDIT_DECISION: AUDIT_ALLOW,
                            "url": "https://allowed.test/hello", "status": 200})


def case_config(allow, deny, extra="", policy_lines=(), env=None):
    """Give a case its own policy: MoatSession arguments for run_case()."""
    def decorate(function):
        function.session_options = {"allow": allow, "deny": deny, "extra_config": extra,
                                    "policy_lines": list(policy_lines), "env": env or {}}
        return function
    return decorate


@case("rules")
@case_config([], [], extra="""
[rule hello-get]
hosts = allowed.test;*.wild.test
methods = GET
paths = /hello
action = allow

[rule no-denied]
hosts = denied.wild.test
action = deny
""")
def case_rules(session):
    run = session.boot("fetch ok http://allowed.test/hello\n"
                       "fetch traversal --path-as-is http://allowed.test/hello/../headers\n"
                       "fetch encoded --path-as-is http://allowed.test/hello/%2e%2e/headers\n"
                       "fetch post -X POST -d x=1 http://allowed.test/hello\n"
                       "fetch denied --cacert /ca.pem https://denied.wild.test/hello\n")
    run.check_booted(session.mtu or DEFAULT_MTU)
    expect_fetch(run, "ok", 200, body=HELLO_BODY)
    expect_fetch(run, "traversal", 403, body_contains='rule "default"')
    expect_fetch(run, "encoded", 403, body_contains='rule "default"')
    expect_fetch(run, "post", 403, body_contains='rule "default"')
    expect_fetch(run, "denied", 403, body_contains='rule "no-denied"')
    header = run.header("denied", "X-Moat-Denied")
    check(header is not None and header.startswith('denied.wild.test: rule "no-denied"'),
          f"denied: X-Moat-Denied should name the rule, got {header!r}")
    seen = [r["path"] for r in session.upstreams.requests()]
    check(seen == ["/hello"], f"the upstream should see only GET /hello, got {seen}")
    session.check_running()
    session.expect_audit(**{AUDIT_EVENT_KEY: AUDIT_REQUEST, AUDIT_DECISION: AUDIT_ALLOW,
                            "rule": "hello-get", "url": "http://allowed.test/hello"})
    session.expect_audit(count=3, **{AUDIT_EVENT_KEY: AUDIT_REQUEST,
                                     AUDIT_DECISION: AUDIT_DENY, "rule": "default",
                                     "host": "allowed.test"})
    session.expect_audit(**{AUDIT_EVENT_KEY: AUDIT_REQUEST, AUDIT_DECISION: AUDIT_DENY,
                            "rule": "no-denied", "host": "denied.wild.test"})


@case("secrets")
@case_config(TEST_ALLOW, TEST_DENY, env={"MOAT_VM_SECRET": VM_SECRET_VALUE}, extra="""
[secret token]
value-env = MOAT_VM_SECRET
hosts = allowed.test
""")
def case_secrets(session):
    placeholders = session.placeholders()
    placeholder = placeholders.get("token", "")
    check(placeholder.startswith("moat-placeholder-token-") and len(placeholder) == 55,
          f"placeholders file should name token with 32 hex digits, got {placeholders}")
    mode = os.stat(session.placeholders_path).st_mode & 0o777
    check(mode == 0o600, f"placeholders file mode is {mode:o}, expected 600")
    run = session.boot(f"fetch bearer --cacert /ca.pem -H 'Authorization: Bearer {placeholder}' "
                       "https://allowed.test/hello\n"
                       f"fetch basic -u 'user:{placeholder}' http://allowed.test/hello\n"
                       f"fetch basic-echo -u 'user:{placeholder}' "
                       "http://allowed.test/echo-authorization\n"
                       f"fetch exfil -H 'X-Token: {placeholder}' http://other.wild.test/hello\n"
                       f"fetch exfil-url 'http://other.wild.test/hello?key={placeholder}'\n")
    run.check_booted(session.mtu or DEFAULT_MTU)
    expect_fetch(run, "bearer", 200, body=HELLO_BODY)
    expect_fetch(run, "basic", 200, body=HELLO_BODY)
    expect_fetch(run, "basic-echo", 200, body=HELLO_BODY)
    echoed = run.header("basic-echo", "X-Echo-Authorization")
    placeholder_basic = "Basic " + base64.b64encode(f"user:{placeholder}".encode()).decode()
    check(echoed == placeholder_basic,
          f"an echoed Basic credential should carry the placeholder, got {echoed!r}")
    check(VM_SECRET_VALUE not in run.text("basic-echo.head")
          and base64.b64encode(f"user:{VM_SECRET_VALUE}".encode()).decode()
          not in run.text("basic-echo.head"),
          "the guest received the real value in an echoed response header")
    print("  guest: an echoed Basic credential carries the placeholder")
    expect_fetch(run, "exfil", 403, body_contains='rule "secret.token"')
    expect_fetch(run, "exfil-url", 403, body_contains='rule "secret.token"')
    expect_no_upstream_request(session, "other.wild.test")
    headers = [dict((k.lower(), v) for k, v in r["headers"])
               for r in session.upstreams.requests_for_host("allowed.test")]
    auth = sorted(h.get("authorization", "") for h in headers)
    basic = "Basic " + base64.b64encode(f"user:{VM_SECRET_VALUE}".encode()).decode()
    check(auth == sorted([f"Bearer {VM_SECRET_VALUE}", basic, basic]),
          f"the upstream should receive the real value, got {auth}")
    print("  upstream: received the real value in Bearer and Basic credentials")
    session.check_running()
    session.expect_audit(count=2, **{AUDIT_EVENT_KEY: AUDIT_REQUEST,
                                     AUDIT_DECISION: AUDIT_DENY, "rule": "secret.token",
                                     "exfiltration": True})
    for path in (session.audit_path, session.log_path):
        with open(path, "rb") as text:
            check(VM_SECRET_VALUE.encode() not in text.read(),
                  f"the secret value appears in {path}")
    print("  audit and log: no secret value")


@case("report-mode")
@case_config(TEST_ALLOW, TEST_DENY, policy_lines=["mode = report"])
def case_report_mode(session):
    run = session.boot("fetch control http://other.wild.test/hello\n"
                       "fetch denied http://denied.wild.test/hello\n")
    run.check_booted(session.mtu or DEFAULT_MTU)
    expect_fetch(run, "control", 200, body=HELLO_BODY)
    expect_fetch(run, "denied", 200, body=HELLO_BODY)
    expect_upstream_request(session, "http", "denied.wild.test", "/hello")
    session.check_running()
    would_deny = session.expect_audit(**{AUDIT_EVENT_KEY: AUDIT_REQUEST,
                                         AUDIT_DECISION: "would-deny", "rule": "policy.deny",
                                         "host": "denied.wild.test", "status": 200})
    # The reason has the form of an enforce-mode denial's.
    reasons = [event.get("reason", "") for event in would_deny]
    check(all(reason.startswith('rule "policy.deny": ') for reason in reasons),
          f"a would-deny reason should start with the rule, got {reasons}")
    session.expect_audit(**{AUDIT_EVENT_KEY: AUDIT_REQUEST, AUDIT_DECISION: AUDIT_ALLOW,
                            "rule": "policy.allow", "host": "other.wild.test"})


@case("reload")
def case_reload(session):
    first = session.boot("fetch denied http://denied.wild.test/hello\n")
    first.check_booted(session.mtu or DEFAULT_MTU)
    expect_fetch(first, "denied", 403)

    # A valid change applies; an invalid one keeps the running policy, both
    # when the file changes and on SIGHUP.
    session.deny = []
    session.write_config()
    session.wait_audit({AUDIT_EVENT_KEY: "reload", AUDIT_DECISION: "applied",
                        "trigger": "file change"})
    session.write_config(extra="[rule broken]\nmethods = get\naction = allow\n")
    session.wait_audit({AUDIT_EVENT_KEY: "reload", AUDIT_DECISION: "failed",
                        "trigger": "file change"})
    session.process.send_signal(signal.SIGHUP)
    failed = session.wait_audit({AUDIT_EVENT_KEY: "reload", AUDIT_DECISION: "failed",
                                 "trigger": "SIGHUP"})
    check("moat.ini:" in failed.get("reason", "") and "[rule broken] methods" in failed["reason"],
          f"the failed reload should name file, line, group and key: {failed}")

    second = session.boot("fetch allowed http://denied.wild.test/hello\n")
    second.check_booted(session.mtu or DEFAULT_MTU)
    expect_fetch(second, "allowed", 200, body=HELLO_BODY)
    session.check_running()
    session.expect_audit(**{AUDIT_EVENT_KEY: AUDIT_REQUEST, AUDIT_DECISION: AUDIT_ALLOW,
                            "rule": "policy.allow", "host": "denied.wild.test"})


# ---------------------------------------------------------------------------
# Main

def run_case(name, args, upstreams):
    """Run case name in a fresh moat session; return True when it passes."""
    function = CASES[name]
    print(f"== {name}")
    upstreams.clear()
    started = time.monotonic()
    options = dict(getattr(function, "session_options",
                           {"allow": TEST_ALLOW, "deny": TEST_DENY}))
    session = MoatSession(args.moat, args.guest_dir, upstreams, options.pop("allow"),
                          options.pop("deny"), TEST_NAMES, mtu=args.mtu, keep=args.keep,
                          verbose=args.verbose, debug=args.debug, **options)
    try:
        with session:
            function(session)
            status = session.stop()
            check(status == 0, f"moat exited with status {status} after SIGTERM, expected 0")
            session.audit()
    except CaseFailure as failure:
        print(f"FAIL {name}: {failure}")
        print(session.failure_report())
        return False
    except Exception:  # noqa: BLE001 (a harness bug fails only its case)
        print(f"FAIL {name}: harness error\n{traceback.format_exc()}")
        print(session.failure_report())
        return False
    print(f"PASS {name} ({time.monotonic() - started:.1f} s)")
    return True


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        description="Boot the test guest behind moat and check each case.")
    parser.add_argument("--moat", default="build/src/moat", help="path of the moat binary")
    parser.add_argument("--guest-dir", default="build/guest",
                        help="folder with vmlinuz and initramfs.cpio.gz "
                             "(tests/guest/build-initramfs.sh writes them)")
    parser.add_argument("--mtu", type=int, default=None,
                        help="guest MTU in bytes passed to moat (default: moat's 1500)")
    parser.add_argument("--keep", action="store_true", help="keep each case's temporary folder")
    parser.add_argument("--verbose", action="store_true", help="copy the serial console to stdout")
    parser.add_argument("--debug", action="store_true",
                        help="run moat with G_MESSAGES_DEBUG=all")
    parser.add_argument("--list", action="store_true", help="print the case names and exit")
    parser.add_argument("cases", nargs="*", metavar="CASE", help="cases to run (default: all)")
    return parser.parse_args(argv)


def _exit_on_sigterm(signum, frame):
    # meson sends SIGTERM on a timeout. Raising SystemExit unwinds the
    # with-blocks, which stop moat and QEMU instead of orphaning them.
    sys.exit(128 + signum)


def main(argv=None):
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    if args.list:
        print("\n".join(CASES))
        return 0
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        print(f"moatvm: unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}",
              file=sys.stderr)
        return 2
    args.moat = os.path.abspath(args.moat)
    args.guest_dir = os.path.abspath(args.guest_dir)
    if not os.access(args.moat, os.X_OK):
        print(f"moatvm: {args.moat} is not an executable; build moat first", file=sys.stderr)
        return 2
    if shutil.which("qemu-system-x86_64") is None:
        print("moatvm: qemu-system-x86_64 not found; install the Debian package "
              "qemu-system-x86", file=sys.stderr)
        return EXIT_SKIP

    ensure_private_netns()
    names = args.cases or list(CASES)
    upstream_folder = tempfile.mkdtemp(prefix="moatvm-up-", dir="/tmp")
    failed = []
    try:
        with Upstreams(upstream_folder, TEST_CERT_NAMES) as upstreams:
            for name in names:
                if not run_case(name, args, upstreams):
                    failed.append(name)
    finally:
        shutil.rmtree(upstream_folder, ignore_errors=True)
    print(f"{len(names) - len(failed)} of {len(names)} cases passed"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
