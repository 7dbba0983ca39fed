# SPDX-License-Identifier: GPL-2.0-or-later
"""Measurements that run a client on a network path: curl transfers, wrk, new TLS connections, idle RSS.

Every client has a bounded count or duration and a timeout, so a stuck
path fails the measurement instead of hanging the benchmark.
"""

import os
import re
import subprocess
import threading
import time

import upstream

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
SAMPLE_INTERVAL_S = 0.1
MIB = 1024 * 1024
# curl's exit status for --max-time (CURLE_OPERATION_TIMEDOUT).
CURL_TIMED_OUT = 28


class MeasurementError(Exception):
    """A client failed or its output did not parse. The message names the client and the path."""


def read_status_kib(pid, field):
    """Return a /proc/PID/status field in KiB (VmHWM, VmRSS), or None if pid is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


class PeakSampler:
    """Sample VmHWM of a pid every 0.1 s in a thread. peak_kib is the last value read.

    VmHWM is the process's peak resident set since it started, so the last
    sample misses at most the growth of the final 0.1 s.
    """

    def __init__(self, pid):
        self.pid = pid
        self.peak_kib = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            value = read_status_kib(self.pid, "VmHWM")
            if value is not None:
                self.peak_kib = value
            self._stop.wait(SAMPLE_INTERVAL_S)

    def __enter__(self):
        if self.pid is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return False


def run_client(path, argv, timeout, allowed_exits=()):
    """Run argv on path; return (stdout, peak RSS KiB of the path's stack or None).

    Raises MeasurementError when argv exits with a status other than 0 and
    allowed_exits.
    """
    process = subprocess.Popen(path.command(argv), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with PeakSampler(path.stack_pid(process)) as sampler:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise MeasurementError(f"{argv[0]} on {path.label} timed out after {timeout} s")
    if process.returncode != 0 and process.returncode not in allowed_exits:
        # pasta 2023-03-09 reports its failed syslog writes on standard error.
        lines = [line.strip() for line in stderr.splitlines()
                 if line.strip() and "to syslog" not in line]
        raise MeasurementError(f"{' '.join(argv[:3])}... on {path.label} exited with "
                               f"{process.returncode}: {'; '.join(lines)[-400:]}")
    return stdout, sampler.peak_kib


def transfer(path, ca_pem, scheme, direction, payload_path, size, timeout):
    """Download /files/payload or upload the payload with curl; return (MB/s, peak KiB).

    A transfer that curl stops at timeout seconds returns its rate so far as
    a string that marks the figure as partial.

    MB is 10^6 bytes. Uploads use PUT without Expect: 100-continue, so that
    no path waits for a 100 response that it may not forward.
    """
    curl = ["curl", "--silent", "--show-error", "--max-time", str(timeout),
            "--output", "/dev/null"] + path.curl_args(ca_pem)
    if direction == "download":
        curl += ["--write-out", "%{http_code} %{size_download} %{speed_download}\n",
                 path.url(scheme, "/files/" + os.path.basename(payload_path))]
    else:
        curl += ["--header", "Expect:", "--upload-file", payload_path,
                 "--write-out", "%{http_code} %{size_upload} %{speed_upload}\n",
                 path.url(scheme, "/upload")]
    stdout, peak = run_client(path, curl, timeout + 30, allowed_exits=(CURL_TIMED_OUT,))
    fields = stdout.split()
    if len(fields) == 3 and fields[0] in ("000", "200") and int(fields[1]) < size:
        # curl stopped at --max-time, before or after the response head
        # (000 or 200): report the rate reached so far.
        return (f"{float(fields[2]) / 1e6:.3g} (stopped after {timeout} s, "
                f"{int(fields[1]) // MIB} MiB)", peak)
    if len(fields) != 3 or fields[0] != "200" or int(fields[1]) != size:
        raise MeasurementError(f"{direction} over {scheme} on {path.label}: expected status "
                               f"200 and {size} bytes, curl reported {stdout.strip()!r}")
    return float(fields[2]) / 1e6, peak


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _wrk_ms(text):
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if match is None:
        raise MeasurementError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNIT_MS[match.group(2)]


def wrk(path, scheme, threads, connections, duration):
    """Run wrk with keep-alive against /small; return {"p50", "p99" (ms), "rps"}."""
    argv = ["wrk", "--threads", str(threads), "--connections", str(connections),
            "--duration", f"{duration}s", "--timeout", "10s", "--latency",
            path.raw_url(scheme, "/small")]
    stdout, _ = run_client(path, argv, duration + 60)
    result = {}
    for line in stdout.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] in ("50%", "99%"):
            result["p" + fields[0].rstrip("%")] = _wrk_ms(fields[1])
        elif line.startswith("Requests/sec:"):
            result["rps"] = float(fields[1])
        elif "Non-2xx" in line or line.strip().startswith("Socket errors"):
            raise MeasurementError(f"wrk on {path.label}: {line.strip()}")
    if set(result) != {"p50", "p99", "rps"}:
        raise MeasurementError(f"wrk on {path.label}: no latency or rate in {stdout!r}")
    return result


def new_tls_connections(path, ca_pem, count, parallel, timeout):
    """Make count HTTPS requests, each on a new connection; return (cold, warm) per second.

    Cold requests go to count different names (h1.bench.test ...), so moat
    resolves each name and mints a leaf certificate for each. Warm requests
    go to bench.test after one request has minted its leaf. curl's
    num_connects output checks that every request opened a connection.
    """
    curl = ["curl", "--silent", "--show-error", "--max-time", str(timeout),
            "--parallel", "--parallel-max", str(parallel), "--header", "Connection: close",
            "--output", "/dev/null", "--write-out", "%{http_code} %{num_connects}\\n"]
    curl += path.curl_args(ca_pem)
    cold_url = path.url("https", "/small", host=upstream.COLD_NAME_FORMAT.format(f"[1-{count}]"))
    warm_url = path.url("https", f"/small?n=[1-{count}]")
    warmup = path.url("https", "/small")
    script = " ".join([
        'set -e; "$@" --globoff', _sh_quote(warmup), ">/dev/null;",
        "a=$(date +%s%N);", '"$@"', _sh_quote(cold_url), ";",
        "b=$(date +%s%N);", '"$@"', _sh_quote(warm_url), ";",
        "c=$(date +%s%N);", 'echo "times $a $b $c"'])
    stdout, _ = run_client(path, ["sh", "-c", script, "sh"] + curl, 2 * timeout + 30)
    lines = stdout.splitlines()
    if not lines or not lines[-1].startswith("times "):
        raise MeasurementError(f"new connections on {path.label}: no times in {stdout!r}")
    start, middle, end = (int(value) for value in lines[-1].split()[1:])
    results = lines[:-1]
    ok = sum(1 for line in results if line.split() == ["200", "1"])
    if ok != 2 * count:
        bad = [line for line in results if line.split() != ["200", "1"]][:3]
        raise MeasurementError(f"new connections on {path.label}: {ok} of {2 * count} "
                               f"requests got 200 on one new connection; others: {bad}")
    return count / ((middle - start) / 1e9), count / ((end - middle) / 1e9)


def _sh_quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


def idle_peak(path, host, port, count, hold):
    """Hold count idle keep-alive connections on path; return the stack's VmHWM in KiB."""
    argv = ["python3", os.path.join(BENCH_DIR, "idle_connections.py"), host, str(port),
            str(count), str(hold)]
    process = subprocess.Popen(path.command(argv), stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pid = path.stack_pid(process)
        line = process.stdout.readline()
        if line.split() != ["ready", str(count)]:
            process.kill()
            _, stderr = process.communicate(timeout=10)
            raise MeasurementError(f"{count} idle connections on {path.label} failed: "
                                   f"{(line + stderr).strip()[-400:]}")
        # Let the stack settle: queued frames drain and timers run once.
        time.sleep(1)
        peak = read_status_kib(pid, "VmHWM")
        process.stdin.close()
        process.wait(timeout=hold + 30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return peak
