#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Measure moat side by side with slirp4netns, pasta and direct loopback, in one run.

Usage:
    bench/bench.py [--moat build/src/moat] [--output docs/benchmarks.md] [--quick]

Runs as root (or re-executes itself under `unshare -rn` otherwise) inside a
private network namespace that contains only loopback. nginx on 127.0.0.1
is the upstream of every path. The script prints one table and writes it,
with a description of the machine, to the output file.

Each path gets a 1 GiB download and upload over HTTP and HTTPS (curl),
and small-request latency and requests per second with keep-alive (wrk).
It also gets new HTTPS connections per second with a cold and a warm
certificate cache (curl --parallel), and the stack's peak RSS with 1 and
with 1,000 idle connections. moat figures are also given as a ratio to slirp4netns at
the same MTU.
"""

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import measure
import netpaths
import upstream

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETNS_ENV = "MOAT_BENCH_NETNS"
MIB = 1024 * 1024
REQUIRED_TOOLS = {"nginx": "nginx-light", "wrk": "wrk", "curl": "curl",
                  "openssl": "openssl", "slirp4netns": "slirp4netns",
                  "nsenter": "util-linux", "ip": "iproute2"}


# ---------------------------------------------------------------------------
# Setup

def ensure_private_netns():
    """Re-execute under `unshare -n` unless already in the benchmark's namespace.

    Exits when the namespace has an interface other than loopback, so that
    no benchmark traffic can leave the machine.
    """
    if os.environ.get(NETNS_ENV) != "1":
        os.environ[NETNS_ENV] = "1"
        flags = "-n" if os.geteuid() == 0 else "-rn"
        argv = ["unshare", flags, "--", sys.executable] + sys.argv
        try:
            os.execvp("unshare", argv)
        except OSError as error:
            sys.exit(f"bench: running {' '.join(argv)} failed: {error}; "
                     "install the Debian package util-linux")
    with open("/proc/self/net/dev", encoding="ascii") as dev:
        interfaces = [line.split(":", 1)[0].strip() for line in dev.read().splitlines()[2:]]
    if interfaces != ["lo"]:
        sys.exit(f"bench: {NETNS_ENV}=1 is set but this network namespace has the "
                 f"interfaces {', '.join(interfaces)}; unset {NETNS_ENV}")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def check_tools():
    missing = sorted({package for tool, package in REQUIRED_TOOLS.items()
                      if shutil.which(tool) is None})
    if not os.path.exists(upstream.ECHO_MODULE):
        missing.append("libnginx-mod-http-echo")
    if missing:
        sys.exit(f"bench: missing Debian packages: {' '.join(missing)}; "
                 "run contrib/install-deps.sh --bench")


def moat_run_available(moat):
    """Return None if `moat run` exists, or the reason why it cannot be measured."""
    if not os.access(moat, os.X_OK):
        return f"{moat} is not an executable; build moat or pass --moat"
    result = subprocess.run([moat, "run", "--help"], capture_output=True, text=True)
    if result.returncode != 0:
        return f"{moat} has no working 'run' command: {(result.stderr or result.stdout).strip()[:200]}"
    return None


def pasta_available():
    """Return None if pasta can run a command here, or the reason why not."""
    if shutil.which("pasta") is None:
        return "pasta not found (Debian package passt)"
    with netpaths.Pasta(65520) as path:
        result = subprocess.run(path.command(["true"]), capture_output=True, text=True,
                                timeout=30)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if "syslog" not in line]
        return "pasta failed: " + " ".join(lines)[-300:]
    return None


def output_of(argv):
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (result.stdout or result.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def machine_description(moat, commit):
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        memory_kib = int(meminfo.readline().split()[1])
    debian = "unknown"
    if os.path.exists("/etc/debian_version"):
        with open("/etc/debian_version", encoding="ascii") as version:
            debian = version.read().strip()
    packages = output_of(["dpkg-query", "-W", "-f", "${Package} ${Version}, ",
                          "nginx-light", "curl", "wrk", "slirp4netns", "libslirp0",
                          "passt", "libgnutls30", "libcurl3-gnutls"]).rstrip(", ")
    return [
        f"CPU: {cpu}, {os.cpu_count()} logical CPUs",
        f"memory: {memory_kib // 1024 // 1024 + 1} GiB (MemTotal {memory_kib} KiB)",
        f"kernel: Linux {platform.release()}, Debian {debian}",
        f"packages: {packages}",
        f"moat: {output_of([moat, '--version'])}, commit {commit}",
        "load average (1, 5, 15 min) when the table was written: "
        + ", ".join(f"{load:.2f}" for load in os.getloadavg())
        + " (other work on the machine lowers every figure)",
    ]


# ---------------------------------------------------------------------------
# Table

class Results:
    """Figures by (row, column), plus the errors of measurements that failed."""

    def __init__(self):
        self.values = {}
        self.errors = []

    def set(self, row, column, value):
        self.values[(row, column)] = value

    def get(self, row, column):
        return self.values.get((row, column))

    def attempt(self, description, function, *args):
        """Call function(*args); on failure record the error and return None."""
        started = time.monotonic()
        try:
            value = function(*args)
        except (measure.MeasurementError, RuntimeError, OSError,
                subprocess.SubprocessError) as error:
            self.errors.append(f"{description}: {error}")
            print(f"  {description}: FAILED: {error}", flush=True)
            return None
        print(f"  {description}: {value} ({time.monotonic() - started:.1f} s)", flush=True)
        return value


def format_value(value):
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


# ---------------------------------------------------------------------------
# Measurements

ROWS = []


def row(name):
    ROWS.append(name)
    return name


def measure_path(results, path, options, files):
    column = path.label
    for scheme in ("http", "https"):
        for direction in ("download", "upload"):
            name = row(f"{scheme.upper()} {direction}, MB/s")
            value = results.attempt(
                f"{column}: {scheme} {direction}", measure.transfer, path, files.ca_pem,
                scheme, direction, files.payload, options.size, options.transfer_timeout)
            if value is not None:
                results.set(name, column, value[0])
                if scheme == "https" and direction == "download" and value[1] is not None:
                    results.set(row("stack peak RSS in HTTPS download, MiB"), column,
                                value[1] / 1024)

    for scheme in ("http", "https"):
        value = results.attempt(f"{column}: wrk {scheme} 1 connection", measure.wrk,
                                path, scheme, 1, 1, options.duration)
        if value is not None:
            results.set(row(f"{scheme.upper()} p50 latency, 1 connection, ms"), column, value["p50"])
            results.set(row(f"{scheme.upper()} p99 latency, 1 connection, ms"), column, value["p99"])
        value = results.attempt(f"{column}: wrk {scheme} {options.connections} connections",
                                measure.wrk, path, scheme, 2, options.connections,
                                options.duration)
        if value is not None:
            results.set(row(f"{scheme.upper()} requests/s, {options.connections} connections"),
                        column, value["rps"])

    value = results.attempt(f"{column}: new HTTPS connections", measure.new_tls_connections,
                            path, files.ca_pem, options.new_connections, 8,
                            options.transfer_timeout)
    if value is not None:
        results.set(row("new HTTPS connections/s, cold leaf cache"), column, value[0])
        results.set(row("new HTTPS connections/s, warm leaf cache"), column, value[1])


def measure_idle(results, make_path, host, port, options):
    """Measure the stack's peak RSS with 1 and with options.idle idle connections."""
    peaks = {}
    label = None
    for count in (1, options.idle):
        with make_path() as path:
            label = path.label
            peak = results.attempt(f"{label}: {count} idle connections", measure.idle_peak,
                                   path, host, port, count, 60)
        if peak is not None:
            peaks[count] = peak
            results.set(row(f"stack peak RSS, {count} idle connection"
                            f"{'s' if count > 1 else ''}, MiB"), label, peak / 1024)
    if len(peaks) == 2:
        per_connection = (peaks[options.idle] - peaks[1]) / (options.idle - 1)
        results.set(row("stack memory per idle connection, KiB"), label, per_connection)


class Files:
    def __init__(self, folder, size):
        self.folder = folder
        files_dir = os.path.join(folder, "files")
        os.makedirs(files_dir)
        self.files_dir = files_dir
        self.ca_pem, self.cert_pem, self.key_pem = upstream.make_ca(folder)
        self.payload = os.path.join(files_dir, "payload")
        upstream.make_payload(self.payload, size)


def ratio_columns(results, mtus):
    for mtu in mtus:
        moat_column = f"moat {mtu}"
        slirp_column = f"slirp4netns {mtu}"
        for name in ROWS:
            moat_value = results.get(name, moat_column)
            slirp_value = results.get(name, slirp_column)
            if isinstance(moat_value, float) and isinstance(slirp_value, float) and slirp_value:
                results.set(name, f"moat÷slirp {mtu}", f"{moat_value / slirp_value:.2f}×")


def render_table(results, columns):
    rows = list(dict.fromkeys(ROWS))
    used = [c for c in columns if any(results.get(r, c) is not None for r in rows)]
    lines = ["| measurement | " + " | ".join(used) + " |",
             "| --- |" + " ---: |" * len(used)]
    for name in rows:
        lines.append(f"| {name} | "
                     + " | ".join(format_value(results.get(name, c)) for c in used) + " |")
    return "\n".join(lines)


def target_lines(results, mtus):
    """Return one line per target and MTU: the figure, the bar and whether it is met."""
    lines = []
    for mtu in mtus:
        moat_column, slirp_column = f"moat {mtu}", f"slirp4netns {mtu}"

        def ratio(name):
            moat_value = results.get(name, moat_column)
            slirp_value = results.get(name, slirp_column)
            if not isinstance(moat_value, float) or not isinstance(slirp_value, float):
                return None
            return moat_value / slirp_value

        for scheme, bar in (("HTTP", 0.8), ("HTTPS", 0.6)):
            value = ratio(f"{scheme} download, MB/s")
            lines.append(_target(f"{scheme} download at MTU {mtu}, moat ÷ slirp4netns",
                                 value, f"≥ {bar}×", value is not None and value >= bar, "×"))
        for scheme in ("HTTP", "HTTPS"):
            name = f"{scheme} p50 latency, 1 connection, ms"
            moat_value = results.get(name, moat_column)
            slirp_value = results.get(name, slirp_column)
            added = None
            if isinstance(moat_value, float) and isinstance(slirp_value, float):
                added = moat_value - slirp_value
            lines.append(_target(f"{scheme} p50 latency added at MTU {mtu}, moat − slirp4netns",
                                 added, "< 0.5 ms", added is not None and added < 0.5, " ms"))
    per_connection = results.get("stack memory per idle connection, KiB", f"moat {mtus[0]}")
    lines.append(_target("moat memory per idle connection", per_connection, "< 64 KiB",
                         per_connection is not None and per_connection < 64, " KiB"))
    return lines


def _target(description, value, bar, met, unit):
    if value is None:
        return f"- {description}: not measured (target {bar})"
    # Three significant digits, so that 0.598 does not print as a missed 0.60.
    return f"- {description}: {value:.3g}{unit} (target {bar}): {'met' if met else 'missed'}"


def write_docs(path, options, machine, table, targets, notes, errors, duration_s):
    size_text = (f"{options.size // 1024 // MIB} GiB" if options.size % (1024 * MIB) == 0
                 else f"{options.size // MIB} MiB")
    lines = [
        "# Benchmarks",
        "",
        "Generated by `bench/bench.py` (see README.md, section Benchmarks); do not "
        "edit by hand. Every figure below comes from one run on one machine, against "
        "the same nginx upstream on 127.0.0.1, inside a private network namespace.",
        "",
        f"Run on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"taking {duration_s / 60:.1f} minutes:",
        "",
    ] + [f"- {line}" for line in machine] + [
        "",
        "## Results",
        "",
        table,
        "",
        "## Targets",
        "",
    ] + targets + [
        "",
        "## What each row measures",
        "",
        f"- **download, upload:** one {size_text} transfer of random data with curl "
        "(`%{speed_download}`, `%{speed_upload}`; MB = 10^6 bytes). Uploads are PUT "
        "requests that nginx reads completely into a tmpfs file before it answers.",
        f"- **latency, requests/s:** wrk with keep-alive on `GET /small` (64-byte body) "
        f"for {options.duration} s: one connection for p50 and p99, "
        f"{options.connections} connections on 2 threads for the rate.",
        f"- **new HTTPS connections/s:** {options.new_connections} HTTPS requests with "
        "`Connection: close`, 8 at a time (curl --parallel), each on a new connection "
        "(checked with curl's num_connects). Cold: a different name per request "
        "(h1.bench.test, h2.bench.test, …), so moat resolves each name and mints a "
        "leaf certificate for it. Warm: one name whose leaf is already cached. "
        "Paths without interception do the same requests; nginx's certificate covers "
        "every name.",
        "- **stack peak RSS:** VmHWM of the stack process (slirp4netns, pasta or moat) "
        "read from /proc/PID/status, sampled every 0.1 s while the client runs. The "
        f"idle rows hold 1 or {options.idle} keep-alive connections, each after one "
        "request, in a fresh stack process; per idle connection is the difference "
        f"divided by {options.idle - 1}.",
        "- **moat÷slirp:** the moat figure divided by the slirp4netns figure at the "
        "same MTU, from this run. For latency a ratio above 1 means slower.",
        "- **direct:** the client runs next to nginx on loopback (MTU 65536).",
        "- **pasta:** passt's pasta runs each client in a namespace of its own; it "
        "maps its gateway address to the loopback of the benchmark namespace.",
    ]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    if errors:
        lines += ["", "## Failed measurements", ""] + [f"- {error}" for error in errors]
    with open(path, "w", encoding="utf-8") as docs:
        docs.write("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------

def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moat", default=os.path.join(REPO, "build", "src", "moat"),
                        help="moat binary (default: build/src/moat)")
    parser.add_argument("--output", default=os.path.join(REPO, "docs", "benchmarks.md"),
                        help="Markdown file to write (default: docs/benchmarks.md); "
                        "'-' writes none")
    parser.add_argument("--quick", action="store_true",
                        help="64 MiB transfers, 2 s wrk runs, 50 new connections and "
                        "100 idle connections, for checking the script")
    parser.add_argument("--note", action="append", default=[],
                        help="a line for the Notes section of the output file, such "
                        "as what else ran on the machine; repeatable")
    parser.add_argument("--mtu", type=int, action="append",
                        help="MTU for slirp4netns, pasta and moat; repeatable "
                        "(default: 1500 and 65520)")
    options = parser.parse_args()
    options.mtus = options.mtu or [1500, 65520]
    if options.quick:
        options.size, options.duration = 64 * MIB, 2
        options.new_connections, options.idle = 50, 100
    else:
        options.size, options.duration = 1024 * MIB, 5
        options.new_connections, options.idle = 300, 1000
    options.connections = 32
    options.transfer_timeout = 60
    return options


def main():
    options = parse_args()
    ensure_private_netns()
    check_tools()
    started = time.monotonic()
    # The commit when the run starts, which the moat binary was built from
    # if it is current; other commits may land during a long run.
    commit = output_of(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    moat_missing = moat_run_available(options.moat)
    pasta_missing = pasta_available()
    notes = list(options.note)
    if moat_missing:
        notes.append(f"moat not measured: {moat_missing}")
    if pasta_missing:
        notes.append(f"pasta not measured: {pasta_missing}")
    for note in notes:
        print(f"bench: {note}", flush=True)

    results = Results()
    cold_names = [upstream.COLD_NAME_FORMAT.format(i) for i in range(1, options.new_connections + 1)]
    folder = tempfile.mkdtemp(prefix="moat-bench-", dir="/dev/shm")
    try:
        print(f"bench: writing the {options.size // MIB} MiB payload in {folder}", flush=True)
        files = Files(folder, options.size)
        with upstream.Nginx(folder, files.files_dir, files.cert_pem, files.key_pem):
            columns = ["direct"]
            with netpaths.Direct() as path:
                measure_path(results, path, options, files)
            for mtu in options.mtus:
                with netpaths.Slirp4netns(mtu, 3600) as path:
                    measure_path(results, path, options, files)
                columns.append(f"slirp4netns {mtu}")
                if not pasta_missing:
                    with netpaths.Pasta(mtu) as path:
                        measure_path(results, path, options, files)
                    columns.append(f"pasta {mtu}")
                if not moat_missing:
                    with netpaths.Moat(options.moat, mtu, files.ca_pem, cold_names) as path:
                        measure_path(results, path, options, files)
                    columns += [f"moat {mtu}", f"moat÷slirp {mtu}"]

            idle_mtu = options.mtus[0]
            measure_idle(results, lambda: netpaths.Slirp4netns(idle_mtu, 3600),
                         netpaths.SLIRP_GATEWAY, upstream.HTTP_PORT, options)
            if not moat_missing:
                measure_idle(results, lambda: netpaths.Moat(options.moat, idle_mtu,
                                                            files.ca_pem, cold_names),
                             upstream.HOST, 80, options)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    ratio_columns(results, options.mtus)
    table = render_table(results, columns)
    targets = target_lines(results, options.mtus) if not moat_missing else []
    print()
    print(table)
    print()
    print("\n".join(targets))
    for error in results.errors:
        print(f"failed: {error}")
    if options.output != "-":
        write_docs(options.output, options, machine_description(options.moat, commit),
                   table, targets, notes, results.errors, time.monotonic() - started)
        print(f"bench: wrote {options.output}")
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main())
