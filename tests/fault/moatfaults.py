#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Fault tests with real clients under `moat run`: hostile HTTP and TLS, broken upstreams.

Usage:
    python3 tests/fault/moatfaults.py --moat build/src/moat [CASE...]

Without CASE every case runs; --list prints their names. Like
tests/run/moatrun.py, whose RunSession it uses, the harness must run in a
private network namespace that contains only loopback.

Each case starts one `moat run` whose COMMAND is this script again with
--guest CASE. Inside moat's namespace the guest side sends the faulty
traffic of the case: slow or malformed request heads, CONNECT, TLS
garbage, a client that rejects moat's certificate, renegotiation, or
requests to upstreams that refuse, reset, stall or send invalid TLS. It
records what each client got, then makes a normal HTTP and HTTPS request
through the same moat and prints one JSON object. It reads moat's VmRSS from /proc before and after,
because moat is its parent process. The harness then checks the answers,
that the normal requests worked, that the RSS grew by less than
RSS_GROWTH_MAX, that the expected audit lines exist, and that every audit
line is valid JSON.

The broken upstreams are FaultServer instances on 127.0.0.1 that moat
reaches through [upstream] connect-to. The case configuration sets
[moat] head-timeout and [upstream] stall-timeout to TEST_TIMEOUT_S so that
the timeout cases take seconds rather than a minute.
"""

import argparse
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "vm"))
sys.path.insert(0, os.path.join(HERE, "..", "run"))

EXIT_SKIP = 77
# [moat] head-timeout and [upstream] stall-timeout of the test
# configuration, in seconds. The defaults are 60 s.
TEST_TIMEOUT_S = 2
# Seconds the guest side waits for an answer that should come at once.
ANSWER_WAIT_S = 10
# Resident memory moat may gain during one case. An estimate with room for
# AddressSanitizer's allocator, not a measured need.
RSS_GROWTH_MAX = 64 * 1024 * 1024
RSS_GROWTH_MAX_ASAN = 256 * 1024 * 1024
# Times each hostile exchange is repeated, so that a per-connection leak
# shows in the RSS check and under LeakSanitizer.
REPEAT = 20

HELLO = b"hello from the moat test upstream\n"
CLIENT_REJECTED = "client rejected certificate: CA not installed or pinned"

# Upstream names of the broken servers; each has a connect-to entry.
REFUSED = "refused.test"
RESET = "reset.test"
STALL = "stall.test"
BAD_TLS = "badtls.test"
WRONG_NAME = "wrongname.test"
BAD_HTTP = "badhttp.test"
FAULT_NAMES = [REFUSED, RESET, STALL, BAD_TLS, WRONG_NAME, BAD_HTTP]

# Request heads that moat must answer with 400 and never forward: request
# smuggling shapes (RFC 9112 sections 6.1, 6.3 and 5.2) and malformed
# field names (RFC 9110 section 5.1).
SMUGGLING_HEADS = [
    ("Content-Length with Transfer-Encoding",
     b"POST /upload HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("Transfer-Encoding with Content-Length",
     b"POST /upload HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n"
     b"Content-Length: 5\r\n\r\n0\r\n\r\n"),
    ("duplicate Content-Length",
     b"POST /upload HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 5\r\n"
     b"Content-Length: 6\r\n\r\nhello!"),
    ("Content-Length list",
     b"POST /upload HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 5, 6\r\n\r\nhello!"),
    ("obs-fold",
     b"GET /hello HTTP/1.1\r\nHost: allowed.test\r\nX-Folded: a\r\n b\r\n\r\n"),
    ("bare LF",
     b"GET /hello HTTP/1.1\nHost: allowed.test\n\n"),
    ("bare LF inside a field line",
     b"GET /hello HTTP/1.1\r\nHost: allowed.test\r\nX-A: a\nX-B: b\r\n\r\n"),
    ("space in a field name",
     b"GET /hello HTTP/1.1\r\nHost: allowed.test\r\nX Space: a\r\n\r\n"),
    ("space before the colon",
     b"GET /hello HTTP/1.1\r\nHost : allowed.test\r\n\r\n"),
    ("control character in a field name",
     b"GET /hello HTTP/1.1\r\nHost: allowed.test\r\nX-\x01: a\r\n\r\n"),
    ("unsupported Transfer-Encoding",
     b"POST /upload HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: gzip\r\n\r\n"),
]


# ---------------------------------------------------------------------------
# Guest side: runs inside moat's namespace

def moat_rss_kib():
    """Return moat's VmRSS in KiB; moat run is this process's parent."""
    with open(f"/proc/{os.getppid()}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/{os.getppid()}/status has no VmRSS line")


def read_answer(sock, wait=ANSWER_WAIT_S):
    """Read until the peer closes; return (bytes, how it ended)."""
    sock.settimeout(wait)
    chunks = []
    ending = "closed"
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    except socket.timeout:
        ending = "timeout"
    except ConnectionResetError:
        ending = "reset"
    return b"".join(chunks), ending


def exchange(data, host="allowed.test", port=80, wait=ANSWER_WAIT_S):
    """Send data on a new connection; return what came back, as a dict."""
    with socket.create_connection((host, port), timeout=wait) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer, ending = read_answer(sock, wait)
    return describe_answer(answer, ending)


def describe_answer(answer, ending):
    status_line = answer.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    body = answer.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in answer else b""
    return {"status": status, "status_line": status_line,
            "body": body.decode("utf-8", "replace"), "ending": ending,
            "length": len(answer)}


def curl(*args, timeout=30):
    """Run curl; return its exit status, body and error output."""
    completed = subprocess.run(["curl", "-sS", "--max-time", str(timeout - 5), *args],
                               capture_output=True, timeout=timeout)
    return {"exit": completed.returncode,
            "body": completed.stdout.decode("utf-8", "replace"),
            "stderr": completed.stderr.decode("utf-8", "replace")}


def curl_status(url, *args):
    """Run curl on url; return exit status, HTTP status and body."""
    marker = "\nMOAT-STATUS:"
    result = curl("-w", marker + "%{http_code}", *args, url)
    body, _, status = result["body"].rpartition(marker)
    result["body"] = body
    result["status"] = int(status) if status.isdigit() else 0
    return result


def guest_http_slow_head():
    """Heads that never finish get 408 after the head timeout."""
    socks = []
    for _ in range(REPEAT):
        sock = socket.create_connection(("allowed.test", 80), timeout=ANSWER_WAIT_S)
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: allowed.test\r\nX-Never-Ends: 1")
        socks.append(sock)
    # While the slow heads are open, other flows are served.
    during = curl_status("http://allowed.test/hello")
    answers = []
    started = time.monotonic()
    for sock in socks:
        answer, ending = read_answer(sock, TEST_TIMEOUT_S + ANSWER_WAIT_S)
        answers.append(describe_answer(answer, ending))
        sock.close()
    return {"answers": answers, "during": during,
            "seconds": round(time.monotonic() - started, 1)}


def guest_http_oversize():
    long_target = b"/" + b"a" * 9000
    many_fields = b"".join(b"X-Field-%d: %s\r\n" % (i, b"v" * 1000) for i in range(70))
    too_many = b"".join(b"X-F%d: v\r\n" % i for i in range(150))
    heads = {
        "request line": b"GET " + long_target + b" HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
        "field block": b"GET /hello HTTP/1.1\r\nHost: allowed.test\r\n" + many_fields + b"\r\n",
        "field count": b"GET /hello HTTP/1.1\r\nHost: allowed.test\r\n" + too_many + b"\r\n",
    }
    results = {}
    for name, head in heads.items():
        results[name] = [exchange(head) for _ in range(REPEAT // 4)]
    return results


def guest_http_smuggling():
    results = {}
    for name, head in SMUGGLING_HEADS:
        results[name] = [exchange(head) for _ in range(REPEAT // 4)]
    return results


def guest_http_connect():
    raw = exchange(b"CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n")
    # curl as a client behind a proxy setting that names an allowed host.
    proxied = curl("--proxy", "http://allowed.test:80", "https://allowed.test/hello")
    return {"raw": raw, "proxied": proxied}


def guest_tls_garbage():
    shapes = {
        # A handshake record type, then noise.
        "record noise": b"\x16" + bytes(range(1, 200)),
        # A record header that announces a ClientHello, then a wrong length.
        "bad hello length": b"\x16\x03\x01\x00\x30\x01\xff\xff\xff" + b"\x00" * 0x2c,
        # An HTTP-looking request on the HTTPS port is still HTTP to moat,
        # so raw binary stands for "not TLS".
        "binary": bytes(range(0, 64)),
    }
    results = {}
    for name, data in shapes.items():
        results[name] = [exchange(data, port=443) for _ in range(REPEAT // 4)]
    return results


def guest_tls_untrusted():
    # Only the upstream test CA, not moat's session CA: curl must refuse.
    results = [curl("--cacert", os.environ["MOAT_FAULT_OTHER_CA"],
                    "https://allowed.test/hello") for _ in range(REPEAT // 4)]
    return {"curl": results}


def guest_tls_renegotiation():
    results = []
    for _ in range(REPEAT // 4):
        # "R" asks s_client to renegotiate (TLS 1.2 only); the request
        # after it shows whether the connection survived.
        script = b"R\n"
        process = subprocess.Popen(
            ["openssl", "s_client", "-tls1_2", "-connect", "allowed.test:443",
             "-servername", "allowed.test", "-CAfile", os.environ["SSL_CERT_FILE"]],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(1)
        try:
            process.stdin.write(script)
            process.stdin.flush()
            time.sleep(1)
            process.stdin.write(b"GET /hello HTTP/1.1\r\nHost: allowed.test\r\n"
                                b"Connection: close\r\n\r\n")
            process.stdin.flush()
            # s_client closes the connection at the end of its input, and
            # -ign_eof would turn off its command letters.
            time.sleep(1)
        except BrokenPipeError:
            pass
        try:
            output, _ = process.communicate(timeout=ANSWER_WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        results.append({"exit": process.returncode,
                        "output": output.decode("utf-8", "replace")[-2000:]})
    return {"s_client": results}


def guest_upstream_refused():
    return {"plain": [curl_status(f"http://{REFUSED}/hello") for _ in range(REPEAT // 4)]}


def guest_upstream_reset():
    return {"before head": curl_status(f"http://{RESET}/early"),
            "inside body": curl_status(f"http://{RESET}/mid")}


def guest_upstream_stall():
    started = time.monotonic()
    head = curl_status(f"http://{STALL}/head")
    head_seconds = time.monotonic() - started
    started = time.monotonic()
    body = curl_status(f"http://{STALL}/body")
    return {"before head": head, "head seconds": round(head_seconds, 1),
            "inside body": body, "body seconds": round(time.monotonic() - started, 1)}


def guest_upstream_invalid_tls():
    return {"https": curl_status(f"https://{BAD_TLS}/hello")}


def guest_upstream_wrong_name():
    return {"https": curl_status(f"https://{WRONG_NAME}/hello")}


def guest_upstream_invalid_http():
    return {"http": curl_status(f"http://{BAD_HTTP}/hello")}


GUEST_ACTIONS = {
    "http-slow-head": guest_http_slow_head,
    "http-oversize": guest_http_oversize,
    "http-smuggling": guest_http_smuggling,
    "http-connect": guest_http_connect,
    "tls-garbage": guest_tls_garbage,
    "tls-untrusted": guest_tls_untrusted,
    "tls-renegotiation": guest_tls_renegotiation,
    "upstream-refused": guest_upstream_refused,
    "upstream-reset": guest_upstream_reset,
    "upstream-stall": guest_upstream_stall,
    "upstream-invalid-tls": guest_upstream_invalid_tls,
    "upstream-wrong-name": guest_upstream_wrong_name,
    "upstream-invalid-http": guest_upstream_invalid_http,
}


def guest_main(name):
    """Run the guest side of case name and print the observations as JSON."""
    rss_before = moat_rss_kib()
    result = GUEST_ACTIONS[name]()
    rss_after = moat_rss_kib()
    afterwards = {"http": curl_status("http://allowed.test/hello"),
                  "https": curl_status("https://allowed.test/hello")}
    print(json.dumps({"result": result, "afterwards": afterwards,
                      "rss_before_kib": rss_before, "rss_after_kib": rss_after}))
    return 0


# ---------------------------------------------------------------------------
# Broken upstreams: run in the harness, on 127.0.0.1

def read_head(conn):
    """Read a request head from conn; return its request target or ""."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    parts = data.split(b" ", 2)
    return parts[1].decode("latin-1") if len(parts) > 2 else ""


def reset_connection(conn):
    """Close conn with a RST (SO_LINGER with a zero timeout)."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.close()


class FaultServer:
    """A TCP server on 127.0.0.1 that handles each connection with behaviour(conn)."""

    def __init__(self, behaviour, ssl_context=None):
        self.behaviour = behaviour
        self.ssl_context = ssl_context
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self.listener.getsockname()[1]
        self.errors = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        try:
            conn.settimeout(30)
            if self.ssl_context is not None:
                conn = self.ssl_context.wrap_socket(conn, server_side=True)
            self.behaviour(self, conn)
        except (OSError, ssl.SSLError) as error:
            self.errors.append(repr(error))
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.listener.close()


def behave_reset(server, conn):
    target = read_head(conn)
    if target == "/mid":
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
        time.sleep(0.2)
    reset_connection(conn)


def behave_stall(server, conn):
    target = read_head(conn)
    if target == "/body":
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
    # Stall until the harness ends or moat gives up and closes.
    conn.settimeout(1)
    while not server.stop.is_set():
        try:
            if not conn.recv(4096):
                return
        except socket.timeout:
            continue


def behave_bad_tls(server, conn):
    # Not a ServerHello: a plain-text answer to a ClientHello.
    conn.recv(4096)
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" + b"\x00" * 64)


def behave_hello(server, conn):
    read_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(HELLO) + HELLO)


def behave_bad_http(server, conn):
    read_head(conn)
    conn.sendall(b"this is not HTTP at all\r\n\r\n")


def make_wrong_name_context(folder):
    """Return a TLS server context whose certificate, signed by the test CA, names another host."""
    key = os.path.join(folder, "wrong.key")
    csr = os.path.join(folder, "wrong.csr")
    cert = os.path.join(folder, "wrong.pem")
    ext = os.path.join(folder, "wrong.ext")
    with open(ext, "w", encoding="ascii") as extensions:
        extensions.write("basicConstraints=critical,CA:FALSE\n"
                         "extendedKeyUsage=serverAuth\n"
                         "subjectAltName=DNS:another-name.example\n")
    moatvm._run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=another-name.example"])
    moatvm._run(["openssl", "x509", "-req", "-in", csr,
                 "-CA", os.path.join(folder, "upstream-ca.pem"),
                 "-CAkey", os.path.join(folder, "upstream-ca.key"), "-CAcreateserial",
                 "-out", cert, "-days", "2", "-extfile", ext])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def closed_port():
    """Return a loopback port with no listener."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        return listener.getsockname()[1]


# ---------------------------------------------------------------------------
# Harness side

import moatrun  # noqa: E402 (the path is set at the top)
import moatvm  # noqa: E402
from moatvm import CaseFailure, check  # noqa: E402


class FaultSession(moatrun.RunSession):
    """A moat run session with the broken upstreams and short timeouts."""

    def __enter__(self):
        super().__enter__()
        self.servers = {
            RESET: FaultServer(behave_reset),
            STALL: FaultServer(behave_stall),
            BAD_TLS: FaultServer(behave_bad_tls),
            WRONG_NAME: FaultServer(behave_hello, make_wrong_name_context(self.folder)),
            BAD_HTTP: FaultServer(behave_bad_http),
        }
        return self

    def __exit__(self, exc_type, exc, tb):
        for server in self.servers.values():
            server.close()
        return super().__exit__(exc_type, exc, tb)

    def config_text(self):
        ports = {name: server.port for name, server in self.servers.items()}
        ports[REFUSED] = closed_port()
        connect_to = self.upstreams.connect_to(moatrun.UPSTREAM_NAMES)
        for name, port in ports.items():
            connect_to.append(f"{name}:80:127.0.0.1:{port}")
            connect_to.append(f"{name}:443:127.0.0.1:{port}")
        lines = ["[moat]", f"audit = {self.audit_path}", f"head-timeout = {TEST_TIMEOUT_S}",
                 "", "[policy]", "allow = " + ";".join(moatrun.TEST_ALLOW + FAULT_NAMES),
                 "deny = " + ";".join(moatrun.TEST_DENY),
                 "", "[upstream]", f"ca-file = {self.upstreams.ca_pem}",
                 f"stall-timeout = {TEST_TIMEOUT_S}",
                 "connect-to = " + ";".join(connect_to), ""]
        return "\n".join(lines)

    def run_guest(self, name):
        """Run the guest side of case name under moat run; return its observations."""
        env = dict(os.environ, MOAT_FAULT_OTHER_CA=self.upstreams.ca_pem)
        result = self.run([sys.executable, os.path.abspath(__file__), "--guest", name],
                          env=env, timeout=120)
        result.expect_status(0)
        try:
            observations = json.loads(result.text().strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise CaseFailure(f"the guest side printed no JSON\n{result.describe()}") from None
        self.check_common(observations)
        return observations["result"]

    def check_common(self, observations):
        """Check the normal requests afterwards, moat's RSS and the audit log."""
        for scheme, fetched in observations["afterwards"].items():
            check(fetched["exit"] == 0 and fetched["status"] == 200
                  and fetched["body"] == HELLO.decode(),
                  f"the {scheme} request after the faults failed: {fetched}")
        growth = (observations["rss_after_kib"] - observations["rss_before_kib"]) * 1024
        check(growth < rss_growth_max(self.moat),
              f"moat's VmRSS grew by {growth // 1024} KiB "
              f"(from {observations['rss_before_kib']} KiB), more than "
              f"{rss_growth_max(self.moat) // 1024} KiB")
        # RunSession.audit() raises CaseFailure on a line that is not JSON.
        self.audit()

    def audit_with(self, **expected):
        return [e for e in self.audit() if moatvm.audit_matches(e, expected)]


def rss_growth_max(moat):
    with open(moat, "rb") as binary:
        return RSS_GROWTH_MAX_ASAN if b"__asan_init" in binary.read() else RSS_GROWTH_MAX


def contains(text):
    return lambda value: isinstance(value, str) and text in value


def expect_answer(answer, status, what, body_contains=None):
    check(answer["status"] == status,
          f"{what}: expected status {status}, got {answer['status_line']!r} "
          f"(connection {answer['ending']}, {answer['length']} bytes)")
    check(answer["ending"] == "closed",
          f"{what}: moat did not close the connection after the {status} answer "
          f"(it ended by {answer['ending']})")
    if body_contains is not None:
        check(body_contains in answer["body"],
              f"{what}: the body does not say {body_contains!r}: {answer['body']!r}")


CASES = {}


def case(name):
    def register(function):
        CASES[name] = function
        return function
    return register


@case("http-slow-head")
def case_http_slow_head(session):
    result = session.run_guest("http-slow-head")
    check(result["during"]["status"] == 200,
          f"a request while slow heads were open failed: {result['during']}")
    for answer in result["answers"]:
        expect_answer(answer, 408, "a head that never ends", "not complete within")
    denials = session.audit_with(event="request", decision="deny", status=408,
                                 reason=contains("request head was not complete"))
    check(len(denials) == REPEAT, f"expected {REPEAT} audit lines for 408, got {len(denials)}")


@case("http-oversize")
def case_http_oversize(session):
    result = session.run_guest("http-oversize")
    expected = {"request line": 414, "field block": 431, "field count": 431}
    for name, status in expected.items():
        for answer in result[name]:
            expect_answer(answer, status, f"an oversize {name}")
        check(session.audit_with(event="request", decision="deny", status=status),
              f"no audit line with status {status} for the oversize {name}")
    forwarded = [r for r in session.upstreams.requests() if r["path"] != "/hello"]
    check(not forwarded, f"an oversize request reached the upstream: {forwarded[:1]}")


@case("http-smuggling")
def case_http_smuggling(session):
    result = session.run_guest("http-smuggling")
    for name, _ in SMUGGLING_HEADS:
        for answer in result[name]:
            expect_answer(answer, 400, name)
    posts = [r for r in session.upstreams.requests() if r["method"] == "POST"]
    check(not posts, f"a smuggling request reached the upstream: {posts}")
    denials = session.audit_with(event="request", decision="deny", status=400)
    expected = len(SMUGGLING_HEADS) * (REPEAT // 4)
    check(len(denials) == expected,
          f"expected {expected} audit lines with status 400, got {len(denials)}")


@case("http-connect")
def case_http_connect(session):
    result = session.run_guest("http-connect")
    expect_answer(result["raw"], 405, "CONNECT", "CONNECT is not supported")
    proxied = result["proxied"]
    check(proxied["exit"] != 0 and "405" in proxied["stderr"],
          f"curl through CONNECT did not report the 405 refusal: {proxied}")
    check(session.audit_with(event="request", decision="deny", method="CONNECT", status=405,
                             reason=contains("CONNECT is not supported")),
          "no audit line for the refused CONNECT")


@case("tls-garbage")
def case_tls_garbage(session):
    result = session.run_guest("tls-garbage")
    for name, answers in result.items():
        for answer in answers:
            check(answer["ending"] in ("closed", "reset") and answer["status"] == 0,
                  f"{name}: expected the connection to be closed, got {answer}")
    check(len(session.audit_with(event="connection", decision="deny", protocol="tls",
                                 reason=contains("invalid TLS ClientHello")))
          == 2 * (REPEAT // 4), "expected an audit line for each invalid ClientHello")
    check(len(session.audit_with(event="connection", decision="deny", protocol="other"))
          == REPEAT // 4, "expected an audit line for each binary connection")


@case("tls-untrusted")
def case_tls_untrusted(session):
    result = session.run_guest("tls-untrusted")
    for fetched in result["curl"]:
        # 60: CURLE_PEER_FAILED_VERIFICATION.
        check(fetched["exit"] == 60, f"curl without moat's CA did not fail verification: {fetched}")
    rejected = session.audit_with(event="connection", decision="deny", protocol="tls",
                                  reason=contains(CLIENT_REJECTED))
    check(len(rejected) == REPEAT // 4,
          f"expected {REPEAT // 4} audit lines saying {CLIENT_REJECTED!r}, got "
          f"{len(rejected)}:\n" + "\n".join(json.dumps(e) for e in session.audit()
                                            if e.get("event") == "connection"))
    # Only the HTTPS request afterwards, with moat's CA, gets through.
    https = session.audit_with(event="request", url="https://allowed.test/hello")
    check(len(https) == 1, f"expected one HTTPS request in the audit log, got {len(https)}")


@case("tls-renegotiation")
def case_tls_renegotiation(session):
    result = session.run_guest("tls-renegotiation")
    for run in result["s_client"]:
        check("RENEGOTIATING" in run["output"], f"s_client did not renegotiate: {run}")
        check(HELLO.decode() not in run["output"],
              f"the request after the refused renegotiation got an answer: {run}")
    refused = session.audit_with(event="connection", decision="deny", protocol="tls",
                                 reason=contains("renegotiation"))
    check(len(refused) == REPEAT // 4,
          f"expected {REPEAT // 4} audit lines for refused renegotiations, got {len(refused)}")


def expect_upstream_failure(session, fetched, host, status, says):
    check(fetched["status"] == status,
          f"{host}: expected status {status}, got {fetched['status']}: {fetched}")
    check(says in fetched["body"], f"{host}: the body does not say {says!r}: {fetched['body']!r}")
    check(session.audit_with(event="request", host=host, status=status, reason=contains(says)),
          f"{host}: no audit line with status {status} and a reason with {says!r}")


@case("upstream-refused")
def case_upstream_refused(session):
    result = session.run_guest("upstream-refused")
    for fetched in result["plain"]:
        expect_upstream_failure(session, fetched, REFUSED, 502, "connection failed")


@case("upstream-reset")
def case_upstream_reset(session):
    result = session.run_guest("upstream-reset")
    expect_upstream_failure(session, result["before head"], RESET, 502, "failed")
    inside = result["inside body"]
    # 18: CURLE_PARTIAL_FILE. Only closing early tells the guest the body
    # is incomplete, because the head with status 200 was already sent.
    check(inside["exit"] == 18 and inside["status"] == 200,
          f"a reset inside the body did not reach curl as a partial transfer: {inside}")
    check(session.audit_with(event="request", host=RESET, url=f"http://{RESET}/mid", status=200,
                             reason=contains("failed")),
          "no audit line with the reason for the reset inside the body")


@case("upstream-stall")
def case_upstream_stall(session):
    result = session.run_guest("upstream-stall")
    expect_upstream_failure(session, result["before head"], STALL, 504, "timed out")
    inside = result["inside body"]
    check(inside["exit"] == 18 and inside["status"] == 200,
          f"a stall inside the body did not reach curl as a partial transfer: {inside}")
    check(session.audit_with(event="request", host=STALL, url=f"http://{STALL}/body",
                             reason=contains("timed out")),
          "no audit line with the reason for the stall inside the body")


@case("upstream-invalid-tls")
def case_upstream_invalid_tls(session):
    result = session.run_guest("upstream-invalid-tls")
    expect_upstream_failure(session, result["https"], BAD_TLS, 502, "TLS handshake failed")


@case("upstream-wrong-name")
def case_upstream_wrong_name(session):
    result = session.run_guest("upstream-wrong-name")
    expect_upstream_failure(session, result["https"], WRONG_NAME, 502,
                            "TLS certificate verification failed")


@case("upstream-invalid-http")
def case_upstream_invalid_http(session):
    result = session.run_guest("upstream-invalid-http")
    expect_upstream_failure(session, result["http"], BAD_HTTP, 502, "invalid response")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moat", help="path to the moat binary")
    parser.add_argument("--guest", metavar="CASE",
                        help="run the guest side of CASE (inside moat run)")
    parser.add_argument("--list", action="store_true", help="print the case names")
    parser.add_argument("cases", nargs="*", help="cases to run (default: all)")
    args = parser.parse_args()
    if args.guest is not None:
        return guest_main(args.guest)
    if args.list:
        print("\n".join(CASES))
        return 0
    if args.moat is None:
        parser.error("--moat is required")
    unknown = [name for name in args.cases if name not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; --list prints the names")
    moatrun.require_private_netns()
    for program in ("curl", "openssl"):
        if moatrun.shutil.which(program) is None:
            print(f"SKIP: {program} is not installed")
            return EXIT_SKIP

    failed = 0
    for name in args.cases or list(CASES):
        print(f"== {name}")
        try:
            with FaultSession(os.path.abspath(args.moat)) as session:
                CASES[name](session)
        except CaseFailure as failure:
            print(f"FAIL {name}: {failure}")
            failed += 1
        except Exception:  # noqa: BLE001 (report any harness error as a failure)
            traceback.print_exc()
            print(f"FAIL {name}: harness error")
            failed += 1
        else:
            print(f"PASS {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
