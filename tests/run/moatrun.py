#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Drive real clients through `moat run` and check what they and the audit log see.

Usage:
    python3 tests/run/moatrun.py --moat build/src/moat [CASE...]

Without CASE every case runs; --list prints their names. Exits 77 (skip
for meson) when a case needs a client or kernel feature that is missing.

The harness must run in a private network namespace that contains only
loopback, as contrib/run-tests.sh creates; it exits with an error anywhere
else. Upstream HTTP and HTTPS servers listen on 127.0.0.1, and moat
reaches them through [upstream] connect-to, so no name is ever resolved by
real DNS. The clients run inside the namespace that moat run creates, where
every packet goes to moat.
"""

import argparse
import hashlib
import http.server
import json
import os
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vm"))
import moatvm  # noqa: E402 (the path is set just above)
from moatvm import CaseFailure, check  # noqa: E402

EXIT_SKIP = 77
# Seconds a single moat run may take before the case fails.
RUN_TIMEOUT = 60

TEST_ALLOW = ["allowed.test", "*.wild.test", "git.test"]
TEST_DENY = ["denied.wild.test"]
UPSTREAM_NAMES = ["allowed.test", "other.wild.test", "denied.wild.test"]
GIT_NAME = "git.test"
SYNTHETIC_POOL_PREFIX = "10.0.128."
HELLO = moatvm.HELLO_BODY.decode()


class CaseSkipped(Exception):
    """The case cannot run here; the message names what is missing."""


def require_private_netns():
    interfaces = moatvm._netns_interfaces()
    if interfaces != ["lo"]:
        sys.exit("moatrun: this network namespace has the interfaces "
                 f"{', '.join(interfaces)}; run the suite through contrib/run-tests.sh "
                 "or under `unshare -n`, so that no test traffic can leave the machine")


def require_program(name):
    if shutil.which(name) is None:
        raise CaseSkipped(f"{name} is not installed")


class StaticServer(http.server.ThreadingHTTPServer):
    """HTTPS file server on 127.0.0.1 for a folder (a dumb-HTTP git remote)."""

    daemon_threads = True

    def __init__(self, folder, ssl_context):
        handler = lambda *args: _QuietFileHandler(*args, directory=folder)  # noqa: E731
        super().__init__(("127.0.0.1", 0), handler)
        self.socket = ssl_context.wrap_socket(self.socket, server_side=True)
        self.paths = []

    @property
    def port(self):
        return self.server_address[1]


class _QuietFileHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (base class name)
        self.server.paths.append(self.path)


class RunResult:
    """Exit status and output of one moat run."""

    def __init__(self, argv, status, stdout, stderr):
        self.argv = argv
        self.status = status
        self.stdout = stdout
        self.stderr = stderr

    def describe(self):
        return (f"command {' '.join(self.argv)}\nexit status {self.status}\n"
                f"--- stdout ---\n{self.stdout.decode('utf-8', 'replace')[-3000:]}\n"
                f"--- stderr ---\n{self.stderr.decode('utf-8', 'replace')[-3000:]}")

    def expect_status(self, status):
        check(self.status == status,
              f"expected exit status {status}, got {self.status}\n{self.describe()}")

    def text(self):
        return self.stdout.decode("utf-8", "replace")


class RunSession:
    """A folder with upstreams, a moat configuration and its audit log."""

    def __init__(self, moat, mtu=None):
        self.moat = moat
        self.mtu = mtu
        self.folder = tempfile.mkdtemp(prefix="moatrun-", dir="/tmp")
        self.audit_path = os.path.join(self.folder, "audit.jsonl")
        self.config_path = os.path.join(self.folder, "moat.ini")
        self.upstreams = moatvm.Upstreams(self.folder, UPSTREAM_NAMES + [GIT_NAME])
        self.git_server = None
        self.results = []

    def __enter__(self):
        self.upstreams.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.git_server is not None:
            self.git_server.shutdown()
            self.git_server.server_close()
        self.upstreams.__exit__(exc_type, exc, tb)
        if exc_type is None:
            shutil.rmtree(self.folder, ignore_errors=True)
        else:
            print(f"  files kept in {self.folder}")
        return False

    def serve_git(self, folder):
        """Serve folder over HTTPS as git.test with the upstream certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(os.path.join(self.folder, "upstream.pem"),
                                os.path.join(self.folder, "upstream.key"))
        self.git_server = StaticServer(folder, context)
        threading.Thread(target=self.git_server.serve_forever, daemon=True).start()

    def config_text(self):
        connect_to = self.upstreams.connect_to(UPSTREAM_NAMES)
        if self.git_server is not None:
            connect_to.append(f"{GIT_NAME}:443:127.0.0.1:{self.git_server.port}")
        lines = ["[moat]", f"audit = {self.audit_path}"]
        if self.mtu is not None:
            lines.append(f"mtu = {self.mtu}")
        lines += ["", "[policy]", "allow = " + ";".join(TEST_ALLOW),
                  "deny = " + ";".join(TEST_DENY),
                  "", "[upstream]", f"ca-file = {self.upstreams.ca_pem}",
                  "connect-to = " + ";".join(connect_to), ""]
        return "\n".join(lines)

    def run(self, command, stdin=None, extra_args=(), timeout=RUN_TIMEOUT, env=None):
        """Run command under moat run; return its RunResult."""
        with open(self.config_path, "w", encoding="utf-8") as config:
            config.write(self.config_text())
        # MOAT_TEST_WRAPPER runs moat under a tool such as valgrind.
        wrapper = shlex.split(os.environ.get("MOAT_TEST_WRAPPER", ""))
        argv = [*wrapper, self.moat, "run", "--config", self.config_path, *extra_args, "--",
                *command]
        try:
            completed = subprocess.run(argv, input=stdin, capture_output=True,
                                       timeout=timeout, env=env)
        except subprocess.TimeoutExpired as error:
            raise CaseFailure(f"{' '.join(argv)} did not finish within {timeout} s; "
                              f"stderr: {error.stderr!r}") from None
        result = RunResult(argv, completed.returncode, completed.stdout, completed.stderr)
        self.results.append(result)
        return result

    def audit(self):
        events = []
        if not os.path.exists(self.audit_path):
            raise CaseFailure(f"moat wrote no audit log at {self.audit_path}")
        with open(self.audit_path, encoding="utf-8") as audit:
            for number, line in enumerate(audit, start=1):
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise CaseFailure(f"audit line {number} is not valid JSON ({error}): "
                                      f"{line.rstrip()!r}") from None
        return events

    def expect_audit(self, **expected):
        found = [e for e in self.audit() if moatvm.audit_matches(e, expected)]
        check(found, f"no audit line with {expected}; the log has:\n"
              + "\n".join(json.dumps(e) for e in self.audit()))
        return found

    def expect_upstream_request(self, scheme, host, path):
        matches = [r for r in self.upstreams.requests_for_host(host)
                   if r["scheme"] == scheme and r["path"] == path]
        check(matches, f"the {scheme} upstream received no request for {host}{path}")

    def expect_no_upstream_request(self, host):
        check(not self.upstreams.requests_for_host(host),
              f"the upstream received a request for {host}, which the policy denies")


CASES = {}


def case(name):
    def register(function):
        CASES[name] = function
        return function
    return register


@case("curl-http-allowed")
def case_curl_http_allowed(session):
    require_program("curl")
    result = session.run(["curl", "-sS", "--max-time", "20", "http://allowed.test/hello"])
    result.expect_status(0)
    check(result.text() == HELLO, f"unexpected body {result.text()!r}")
    session.expect_upstream_request("http", "allowed.test", "/hello")
    session.expect_audit(event="request", decision="allow", host="allowed.test")
    session.expect_audit(event="dns", host="allowed.test",
                         answer=lambda a: isinstance(a, str)
                         and a.startswith(SYNTHETIC_POOL_PREFIX))


@case("curl-https-allowed")
def case_curl_https_allowed(session):
    require_program("curl")
    # No --cacert: moat run points CURL_CA_BUNDLE at the session CA.
    result = session.run(["curl", "-sS", "--max-time", "20", "https://other.wild.test/hello"])
    result.expect_status(0)
    check(result.text() == HELLO, f"unexpected body {result.text()!r}")
    session.expect_upstream_request("https", "other.wild.test", "/hello")
    session.expect_audit(event="request", decision="allow", host="other.wild.test")


@case("close-delimited-https")
def case_close_delimited_https(session):
    """A body that ends when the upstream closes TLS without close_notify."""
    require_program("curl")
    result = session.run(["curl", "-sS", "--max-time", "20",
                          "https://allowed.test/close-delimited"])
    result.expect_status(0)
    check(result.text() == HELLO, f"expected the whole body, got {result.text()!r}")
    session.expect_audit(event="request", decision="allow", status=200,
                         url="https://allowed.test/close-delimited")


@case("curl-denied")
def case_curl_denied(session):
    require_program("curl")
    for url in ("http://denied.wild.test/hello", "https://denied.wild.test/hello"):
        result = session.run(["curl", "-sS", "--max-time", "20", "-o", "/dev/null",
                              "-w", "%{http_code}", url])
        result.expect_status(0)
        check(result.text() == "403", f"{url}: expected 403, got {result.text()!r}")
    session.expect_no_upstream_request("denied.wild.test")
    session.expect_audit(event="request", decision="deny", host="denied.wild.test")


@case("wget-https")
def case_wget_https(session):
    require_program("wget")
    # Debian's wget uses GnuTLS, which reads no CA variable, so the script
    # passes the bundle that moat run names in SSL_CERT_FILE.
    script = 'exec wget -q -O - --ca-certificate="$SSL_CERT_FILE" https://allowed.test/hello'
    result = session.run(["sh", "-c", script])
    result.expect_status(0)
    check(result.text() == HELLO, f"unexpected body {result.text()!r}")
    session.expect_upstream_request("https", "allowed.test", "/hello")


@case("python-urllib-https")
def case_python_urllib_https(session):
    # Python's ssl module finds the session CA through SSL_CERT_FILE.
    script = ("import sys, urllib.request\n"
              "body = urllib.request.urlopen('https://allowed.test/hello', timeout=20).read()\n"
              "sys.stdout.buffer.write(body)\n"
              "try:\n"
              "    urllib.request.urlopen('https://denied.wild.test/hello', timeout=20)\n"
              "except urllib.error.HTTPError as error:\n"
              "    print(error.code, error.headers.get('X-Moat-Denied', ''))\n")
    result = session.run([sys.executable, "-c", script])
    result.expect_status(0)
    lines = result.text().splitlines()
    check(len(lines) == 2, f"expected two lines of output, got {result.text()!r}")
    check(lines[0] + "\n" == HELLO, f"unexpected body {lines[0]!r}")
    check(lines[1].startswith("403 denied.wild.test"),
          f"expected 403 with X-Moat-Denied for denied.wild.test, got {lines[1]!r}")
    session.expect_no_upstream_request("denied.wild.test")


@case("openssl-s-client")
def case_openssl_s_client(session):
    require_program("openssl")
    # The request comes from moat's standard input, which COMMAND inherits.
    request = (b"GET /hello HTTP/1.1\r\nHost: allowed.test\r\n"
               b"Connection: close\r\n\r\n")
    result = session.run(["openssl", "s_client", "-connect", "allowed.test:443",
                          "-servername", "allowed.test", "-verify_return_error",
                          "-quiet", "-ign_eof"], stdin=request)
    result.expect_status(0)
    check(HELLO in result.text(), f"the response has no hello body: {result.text()!r}")
    check(" 200 " in result.text().splitlines()[0],
          f"expected status 200, got {result.text().splitlines()[:1]!r}")
    session.expect_upstream_request("https", "allowed.test", "/hello")


@case("git-clone-https")
def case_git_clone_https(session):
    require_program("git")
    source = os.path.join(session.folder, "source")
    served = os.path.join(session.folder, "served")
    clone = os.path.join(session.folder, "clone")
    git = ["git", "-c", "user.name=moat test", "-c", "user.email=test@moat.invalid",
           "-c", "init.defaultBranch=main"]
    os.makedirs(served)
    moatvm._run(git + ["init", "-q", source])
    with open(os.path.join(source, "README"), "w", encoding="utf-8") as readme:
        readme.write("cloned through moat\n")
    moatvm._run(git + ["-C", source, "add", "README"])
    moatvm._run(git + ["-C", source, "commit", "-q", "-m", "first"])
    bare = os.path.join(served, "repo.git")
    moatvm._run(git + ["clone", "-q", "--bare", source, bare])
    # Dumb HTTP: a static server is enough once info/refs exists.
    moatvm._run(git + ["-C", bare, "update-server-info"])
    session.serve_git(served)

    # GIT_SSL_CAINFO from moat run makes git trust the session CA.
    result = session.run(["git", "clone", "-q", f"https://{GIT_NAME}/repo.git", clone])
    result.expect_status(0)
    with open(os.path.join(clone, "README"), encoding="utf-8") as readme:
        check(readme.read() == "cloned through moat\n", "the clone has the wrong README")
    check(any(path.startswith("/repo.git/info/refs") for path in session.git_server.paths),
          f"the git server saw no info/refs request: {session.git_server.paths}")
    session.expect_audit(event="request", decision="allow", host=GIT_NAME)


@case("exit-status")
def case_exit_status(session):
    result = session.run(["sh", "-c", "exit 7"])
    result.expect_status(7)
    result = session.run(["sh", "-c", "kill -TERM $$"])
    result.expect_status(128 + signal.SIGTERM)
    result = session.run(["moat-no-such-command"])
    result.expect_status(127)
    check(b"moat-no-such-command" in result.stderr,
          f"the error does not name the missing command: {result.stderr!r}")


@case("stdin-passthrough")
def case_stdin_passthrough(session):
    require_program("curl")
    data = os.urandom(256 * 1024)
    result = session.run(["curl", "-sS", "--max-time", "20", "--data-binary", "@-",
                          "http://allowed.test/upload"], stdin=data)
    result.expect_status(0)
    expected = f"{hashlib.sha256(data).hexdigest()} {len(data)}\n"
    check(result.text() == expected,
          f"upload digest: expected {expected!r}, got {result.text()!r}")
    result = session.run(["cat"], stdin=b"line one\nline two\n")
    result.expect_status(0)
    check(result.stdout == b"line one\nline two\n", f"cat returned {result.stdout!r}")


@case("config-error")
def case_config_error(session):
    marker = os.path.join(session.folder, "ran")
    session.config_text = lambda: "[policy]\nallow = allowed.test\nno-such-key = 1\n"
    result = session.run(["touch", marker])
    result.expect_status(125)
    check(b"no-such-key" in result.stderr,
          f"the error does not name the unknown key: {result.stderr!r}")
    check(not os.path.exists(marker), "COMMAND ran although the configuration is invalid")
    result = session.run(["touch", marker], extra_args=["--mtu", "100"])
    result.expect_status(125)
    check(b"--mtu 100" in result.stderr, f"the error does not name --mtu: {result.stderr!r}")
    check(not os.path.exists(marker), "COMMAND ran although --mtu is out of range")


@case("audit-tap-lines")
def case_audit_tap_lines(session):
    result = session.run(["sh", "-c", "exit 3"])
    result.expect_status(3)
    events = [e for e in session.audit() if e.get("event") == "tap"]
    states = [e.get("state") for e in events]
    check(states == ["connected", "disconnected"],
          f"expected tap lines connected, disconnected; got {events}")
    check(events[1].get("exit_status") == 3,
          f"the disconnected line does not carry COMMAND's status 3: {events[1]}")


@case("no-allow-warning")
def case_no_allow_warning(session):
    # Without --config the policy allows nothing, and moat's banner is hidden.
    argv = [session.moat, "run", "--", "true"]
    completed = subprocess.run(argv, capture_output=True, timeout=RUN_TIMEOUT)
    result = RunResult(argv, completed.returncode, completed.stdout, completed.stderr)
    result.expect_status(0)
    warnings = [line for line in result.stderr.decode(errors="replace").splitlines()
                if "every request is denied" in line]
    check(len(warnings) == 1, f"expected one warning line\n{result.describe()}")
    check("--config" in warnings[0], f"the warning does not name --config: {warnings[0]!r}")

    session.config_text = lambda: f"[moat]\naudit = {session.audit_path}\n"
    result = session.run(["true"])
    result.expect_status(0)
    check(b"has no allow rule" in result.stderr and session.config_path.encode() in result.stderr,
          f"no warning naming the file without an allow rule\n{result.describe()}")

    # The usual policy allows hosts: no warning.
    del session.config_text
    result = session.run(["true"])
    result.expect_status(0)
    check(b"every request is denied" not in result.stderr,
          f"a warning although the policy allows hosts\n{result.describe()}")


@case("usage-messages")
def case_usage_messages(session):
    def moat(*args):
        argv = [session.moat, *args]
        completed = subprocess.run(argv, capture_output=True, timeout=RUN_TIMEOUT)
        return RunResult(argv, completed.returncode, completed.stdout, completed.stderr)

    result = moat("--config", session.config_path, "run", "--", "true")
    result.expect_status(2)
    check(b"must come first" in result.stderr
          and b"moat run [OPTION...] -- COMMAND" in result.stderr,
          f"the error does not say that run comes first\n{result.describe()}")
    result = moat("rnu")
    result.expect_status(2)
    check(b'did you mean "run"' in result.stderr,
          f"no suggestion for the typo rnu\n{result.describe()}")
    result = moat("chekc")
    result.expect_status(2)
    check(b'did you mean "check"' in result.stderr,
          f"no suggestion for the typo chekc\n{result.describe()}")
    result = moat("vm.ini")
    result.expect_status(2)
    check(b"did you mean" not in result.stderr,
          f"a suggestion for an argument that is no typo\n{result.describe()}")

    result = session.run([session.folder])
    result.expect_status(126)
    check(b"is a directory" in result.stderr,
          f"the error does not say COMMAND is a directory\n{result.describe()}")


@case("verbose-own-domains")
def case_verbose_own_domains(session):
    result = session.run(["sh", "-c", "echo output"], extra_args=["--verbose"])
    result.expect_status(0)
    check(result.stdout == b"output\n",
          f"moat's log lines mixed into COMMAND's output: {result.stdout!r}")
    check(b"moat-run-DEBUG" in result.stderr,
          f"--verbose shows no moat debug line\n{result.describe()}")
    check(b"GLib" not in result.stderr,
          f"--verbose shows other libraries' debug lines\n{result.describe()}")


@case("userns-limit-hint")
def case_userns_limit_hint(session):
    require_program("unshare")
    if os.geteuid() != 0:
        raise CaseSkipped("the case sets user.max_user_namespaces in a user namespace")
    with open(session.config_path, "w", encoding="utf-8") as config:
        config.write(session.config_text())
    # The limit is set in a user namespace of the case's own, so the host's
    # value stays as it is; root there then cannot create a nested one.
    script = ('echo 0 > /proc/sys/user/max_user_namespaces && exec "$0" run --config "$1"'
              ' -- curl -sS --max-time 20 http://allowed.test/hello')
    argv = ["unshare", "--user", "--map-root-user", "sh", "-c", script,
            session.moat, session.config_path]
    completed = subprocess.run(argv, capture_output=True, timeout=RUN_TIMEOUT)
    result = RunResult(argv, completed.returncode, completed.stdout, completed.stderr)
    result.expect_status(0)
    check(result.text() == HELLO, f"unexpected body {result.text()!r}")
    check(b"cannot create a user namespace" in result.stderr
          and b"user.max_user_namespaces" in result.stderr,
          f"the warning does not name user.max_user_namespaces\n{result.describe()}")


@case("signal-forwarding")
def case_signal_forwarding(session):
    with open(session.config_path, "w", encoding="utf-8") as config:
        config.write(session.config_text())
    ready = os.path.join(session.folder, "ready")
    stderr_path = os.path.join(session.folder, "stderr")
    script = f'trap "exit 42" TERM; touch {ready}; while :; do sleep 0.1; done'
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen([session.moat, "run", "--config", session.config_path,
                                    "--", "sh", "-c", script],
                                   stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + 20
    while not os.path.exists(ready):
        check(process.poll() is None, f"moat run exited early with {process.returncode}")
        check(time.monotonic() < deadline, "COMMAND did not start within 20 s")
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise CaseFailure("moat run did not exit within 10 s of SIGTERM") from None
    if process.returncode != 42:
        with open(stderr_path, "rb") as stderr:
            raise CaseFailure(f"expected COMMAND's trap status 42, got "
                              f"{process.returncode}: {stderr.read()!r}")


@case("namespace-layout")
def case_namespace_layout(session):
    require_program("getent")
    with open("/etc/resolv.conf", "rb") as host_file:
        host_resolv = host_file.read()
    script = ("cat /etc/resolv.conf; echo ---; getent ahostsv4 some.name.test | head -n 1;"
              " echo ---; cat /proc/net/route")
    result = session.run(["sh", "-c", script])
    result.expect_status(0)
    resolv, hosts, routes = result.text().split("---\n")
    check("nameserver 10.0.2.3" in resolv.splitlines(),
          f"COMMAND's resolv.conf does not name moat's DNS: {resolv!r}")
    check(hosts.startswith(SYNTHETIC_POOL_PREFIX),
          f"some.name.test did not resolve to a synthetic address: {hosts!r}")
    # /proc/net/route: a default route (destination 0) through 10.0.2.2,
    # written as little-endian hex.
    check(any(fields[1:3] == ["00000000", "0202000A"]
              for fields in (line.split() for line in routes.splitlines()[1:])),
          f"no default route via 10.0.2.2: {routes!r}")
    with open("/etc/resolv.conf", "rb") as host_file:
        check(host_file.read() == host_resolv, "the host's /etc/resolv.conf changed")
    session.expect_audit(event="dns", host="some.name.test")


@case("unlisted-address")
def case_unlisted_address(session):
    require_program("curl")
    # An address in moat's synthetic pool that its DNS never handed out.
    result = session.run(["curl", "-sS", "--max-time", "10", "http://10.0.200.1/hello"])
    check(result.status != 0, f"a connection to an unlisted address succeeded\n"
          f"{result.describe()}")
    session.expect_audit(event="connection", decision="deny", address="10.0.200.1")


@case("download-mtu-65520")
def case_download_mtu_65520(session):
    require_program("curl")
    require_program("ip")
    session.mtu = 65520
    length = 32 * moatvm.MIB
    script = (f"curl -sS --max-time 60 'https://allowed.test/bytes?n={length}&seed=run'"
              " | sha256sum; ip -o link show tap0")
    result = session.run(["sh", "-c", script])
    result.expect_status(0)
    digest, link = result.text().split("\n")[:2]
    check(digest.split()[0] == moatvm.pattern_sha256(length, "run"),
          f"the download's sha256 {digest!r} does not match the upstream's")
    # /sys/class/net shows the namespace that mounted sysfs, so ask netlink.
    check(" mtu 65520 " in link, f"the TAP device's MTU is not 65520: {link!r}")


@case("root-stays-inside")
def case_root_stays_inside(session):
    require_program("nsenter")
    if os.geteuid() != 0:
        raise CaseSkipped("the case checks what root's COMMAND can do")
    # The harness's own network namespace, where the upstreams listen.
    outside = f"/proc/{os.getpid()}/ns/net"
    script = f"id -u; nsenter --net={outside} true && echo left || echo stayed"
    result = session.run(["sh", "-c", script])
    result.expect_status(0)
    check(result.text() == "0\nstayed\n",
          f"expected root inside to stay in its namespace, got {result.text()!r}")


@case("unprivileged-user")
def case_unprivileged_user(session):
    require_program("setpriv")
    if os.geteuid() != 0:
        raise CaseSkipped("the harness runs unprivileged already; this case drops root")
    # The user needs to read the configuration and write the audit log.
    os.chmod(session.folder, 0o755)
    open(session.audit_path, "a").close()
    os.chmod(session.audit_path, 0o666)
    os.chmod(os.path.join(session.folder, "upstream-ca.pem"), 0o644)
    with open(session.config_path, "w", encoding="utf-8") as config:
        config.write(session.config_text())
    os.chmod(session.config_path, 0o644)
    env = dict(os.environ, TMPDIR="/tmp")
    env.pop("XDG_RUNTIME_DIR", None)
    argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
            session.moat, "run", "--config", session.config_path, "--",
            "sh", "-c", "id -u; curl -sS --max-time 20 https://allowed.test/hello"]
    completed = subprocess.run(argv, capture_output=True, timeout=RUN_TIMEOUT, env=env)
    result = RunResult(argv, completed.returncode, completed.stdout, completed.stderr)
    if result.status == 125 and b"user namespace" in result.stderr:
        raise CaseSkipped("this kernel does not let unprivileged users create user "
                          f"namespaces: {result.stderr.decode(errors='replace').strip()}")
    result.expect_status(0)
    uid, body = result.text().split("\n", 1)
    check(uid == "65534", f"COMMAND ran as uid {uid!r}, not as the caller 65534")
    check(body == HELLO, f"unexpected body {body!r}")
    session.expect_audit(event="request", decision="allow", host="allowed.test")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moat", required=True, help="path to the moat binary")
    parser.add_argument("--list", action="store_true", help="print the case names")
    parser.add_argument("cases", nargs="*", help="cases to run (default: all)")
    args = parser.parse_args()
    if args.list:
        print("\n".join(CASES))
        return 0
    unknown = [name for name in args.cases if name not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; --list prints the names")
    require_private_netns()

    failed = skipped = 0
    for name in args.cases or list(CASES):
        print(f"== {name}")
        try:
            with RunSession(os.path.abspath(args.moat)) as session:
                CASES[name](session)
        except CaseSkipped as reason:
            print(f"SKIP {name}: {reason}")
            skipped += 1
        except CaseFailure as failure:
            print(f"FAIL {name}: {failure}")
            failed += 1
        except Exception:  # noqa: BLE001 (report any harness error as a failure)
            traceback.print_exc()
            print(f"FAIL {name}: harness error")
            failed += 1
        else:
            print(f"PASS {name}")
    if failed:
        return 1
    if skipped and skipped == len(args.cases or CASES):
        return EXIT_SKIP
    return 0


if __name__ == "__main__":
    sys.exit(main())
