# SPDX-License-Identifier: GPL-2.0-or-later
"""The network paths the benchmark compares: direct loopback, slirp4netns, pasta, moat.

Each path runs a client command so that its traffic reaches the nginx
upstream on 127.0.0.1 of the benchmark's private network namespace, and
names the process whose memory is the path's cost (the user-mode stack).
All namespaces here are created by the benchmark; no path has a route to
anything outside this machine.
"""

import os
import subprocess
import tempfile
import time

import upstream

# slirp4netns maps 10.0.2.2 in the namespace to 127.0.0.1 on the host side.
SLIRP_GATEWAY = "10.0.2.2"
# pasta copies the host side's address and default route into the
# namespace and maps the gateway address to the host side's loopback.
# Both addresses are from TEST-NET-1 (RFC 5737) on a veth pair that exists
# only inside the benchmark's namespace, so nothing can be routed out.
PASTA_HOST_ADDRESS = "192.0.2.1"
PASTA_GATEWAY = "192.0.2.254"
PASTA_VETH = ("bench0", "bench1")


class Path:
    """One way from a client to the upstream; subclasses set the details."""

    kind = ""
    # Address and ports that reach the upstream from inside the path.
    target = "127.0.0.1"
    http_port = upstream.HTTP_PORT
    https_port = upstream.HTTPS_PORT

    def __init__(self, mtu=None):
        self.mtu = mtu

    @property
    def label(self):
        return self.kind if self.mtu is None else f"{self.kind} {self.mtu}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def command(self, argv):
        """Return the argv that runs argv on this path."""
        return list(argv)

    def url(self, scheme, path, host=upstream.HOST):
        """Return the URL a client uses for path; curl_args() map host to the target."""
        return f"{scheme}://{host}{path}"

    def curl_args(self, ca_pem):
        """Return curl options that route bench.test names to the upstream and trust it."""
        return ["--connect-to", f":80:{self.target}:{self.http_port}",
                "--connect-to", f":443:{self.target}:{self.https_port}",
                "--cacert", ca_pem]

    def raw_url(self, scheme, path):
        """Return a URL by address, for clients without a connect-to option (wrk)."""
        port = self.http_port if scheme == "http" else self.https_port
        return f"{scheme}://{self.target}:{port}{path}"

    def stack_pid(self, process):
        """Return the pid of the user-mode stack serving process, or None for none."""
        return None


class Direct(Path):
    """No stack: the client runs in the benchmark namespace and uses loopback."""

    kind = "direct"


class Slirp4netns(Path):
    """A network namespace held by a sleeping process, connected by slirp4netns."""

    kind = "slirp4netns"
    target = SLIRP_GATEWAY

    def __init__(self, mtu, lifetime):
        super().__init__(mtu)
        self.lifetime = lifetime
        self.holder = None
        self.slirp = None

    def __enter__(self):
        self.holder = subprocess.Popen(["unshare", "-n", "--", "sleep", str(self.lifetime)])
        ready_read, ready_write = os.pipe()
        try:
            # Wait until unshare has exec'd sleep in the new namespace.
            deadline = time.monotonic() + 5
            own = os.readlink("/proc/self/ns/net")
            while os.readlink(f"/proc/{self.holder.pid}/ns/net") == own:
                if time.monotonic() > deadline:
                    raise RuntimeError("unshare -n did not create a network namespace in 5 s")
                time.sleep(0.01)
            self.slirp = subprocess.Popen(
                ["slirp4netns", "--configure", f"--mtu={self.mtu}",
                 f"--ready-fd={ready_write}", str(self.holder.pid), "tap0"],
                pass_fds=(ready_write,), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            os.close(ready_write)
            ready_write = -1
            if os.read(ready_read, 1) != b"1":
                self.slirp.wait(timeout=5)
                raise RuntimeError("slirp4netns failed: "
                                   + self.slirp.stderr.read().decode(errors="replace"))
        finally:
            os.close(ready_read)
            if ready_write >= 0:
                os.close(ready_write)
        return self

    def __exit__(self, *exc):
        for process in (self.slirp, self.holder):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait()
        return False

    def command(self, argv):
        return ["nsenter", "-t", str(self.holder.pid), "-n", "--"] + list(argv)

    def stack_pid(self, process):
        return self.slirp.pid


class Pasta(Path):
    """pasta runs each command in a new user and network namespace of its own.

    pasta copies the host side's interface, so the benchmark namespace gets a
    veth pair with a TEST-NET-1 address and a default route while this path
    is in use. pasta 2023-03-09 (Debian 12) cannot join a namespace by PID
    when run as root here (opening /proc/PID/ns/user fails with EACCES after
    it drops privileges), so each command gets a namespace of its own.
    """

    kind = "pasta"
    target = PASTA_GATEWAY

    def __enter__(self):
        outer, inner = PASTA_VETH
        upstream.run_checked(["ip", "link", "add", outer, "type", "veth",
                              "peer", "name", inner])
        upstream.run_checked(["ip", "link", "set", inner, "up"])
        upstream.run_checked(["ip", "addr", "add", f"{PASTA_HOST_ADDRESS}/24", "dev", outer])
        upstream.run_checked(["ip", "link", "set", outer, "up"])
        upstream.run_checked(["ip", "route", "add", "default", "via", PASTA_GATEWAY])
        return self

    def __exit__(self, *exc):
        subprocess.run(["ip", "link", "del", PASTA_VETH[0]], check=False)
        return False

    def command(self, argv):
        # --runas 0:0: pasta otherwise switches to nobody, which cannot
        # create the user namespace from the root-owned benchmark namespace.
        return ["pasta", "--runas", "0:0", "--config-net", "--quiet", "--foreground",
                "--mtu", str(self.mtu), "--"] + list(argv)

    def stack_pid(self, process):
        return process.pid


class Moat(Path):
    """moat run: the command runs in a namespace whose only interface is moat's TAP."""

    kind = "moat"
    http_port = 80
    https_port = 443

    def __init__(self, moat, mtu, ca_pem, cold_names):
        super().__init__(mtu)
        self.moat = moat
        self.ca_pem = ca_pem
        self.cold_names = cold_names
        self.folder = None
        self.config_path = None

    def __enter__(self):
        self.folder = tempfile.mkdtemp(prefix="moat-bench-", dir="/dev/shm")
        self.config_path = os.path.join(self.folder, "moat.ini")
        targets = [f"{upstream.HOST}:80:127.0.0.1:{upstream.HTTP_PORT}",
                   f"{upstream.HOST}:443:127.0.0.1:{upstream.HTTPS_PORT}"]
        targets += [f"{name}:443:127.0.0.1:{upstream.HTTPS_PORT}" for name in self.cold_names]
        with open(self.config_path, "w", encoding="ascii") as config:
            config.write("\n".join([
                "[moat]",
                f"audit = {self.folder}/audit.jsonl",
                f"mtu = {self.mtu}",
                "",
                "[policy]",
                f"allow = {upstream.HOST};*.{upstream.HOST}",
                "",
                "[upstream]",
                f"ca-file = {self.ca_pem}",
                "connect-to = " + ";".join(targets),
                ""]))
        return self

    def __exit__(self, *exc):
        subprocess.run(["rm", "-rf", "--", self.folder], check=False)
        return False

    def command(self, argv):
        return [self.moat, "run", "--config", self.config_path, "--"] + list(argv)

    def curl_args(self, ca_pem):
        # moat run points the client's resolver at moat's DNS and sets
        # CURL_CA_BUNDLE to the session CA, so curl needs no options.
        return []

    def raw_url(self, scheme, path):
        return self.url(scheme, path)

    def stack_pid(self, process):
        return process.pid
