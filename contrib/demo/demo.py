#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Show moat at work: a guest makes a few requests, moat decides and audits each.

Usage: python3 contrib/demo/demo.py --moat build/src/moat --guest-dir build/guest

Runs in a private network namespace with only loopback (see
tests/vm/moatvm.py), so every upstream is a server on 127.0.0.1.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "tests", "vm"))
import moatvm  # noqa: E402 (the path is set just above)

ALLOW = ["api.example.test", "*.docs.test"]
DENY = ["secret.docs.test"]
# Names the demo's upstream certificate covers and connect-to maps to
# loopback. unknown.example.test is left out on purpose: no policy allows it.
CERT_NAMES = ["api.example.test", "*.docs.test"]
MAPPED_NAMES = ["api.example.test", "www.docs.test", "secret.docs.test"]

# (result name, what the request shows, curl arguments)
REQUESTS = [
    ("api-http", "allowed host over HTTP",
     "http://api.example.test/hello"),
    ("docs-https", "allowed wildcard host over HTTPS",
     "--cacert /ca.pem https://www.docs.test/hello"),
    ("secret-https", "host on the deny list",
     "--cacert /ca.pem https://secret.docs.test/hello"),
    ("unknown-http", "host no rule allows (default deny)",
     "http://unknown.example.test/hello"),
    ("mismatch-https", "Host header differs from the TLS server name",
     "--cacert /ca.pem -H 'Host: secret.docs.test' https://api.example.test/hello"),
]


def guest_script():
    lines = []
    for name, _, arguments in REQUESTS:
        lines.append(f"fetch {name} {arguments}")
    return "\n".join(lines) + "\n"


def show_guest(run):
    print("What the guest saw")
    print("------------------")
    if run.dhcp:
        print(f"DHCP lease: address {run.dhcp.get('ip')}/{run.dhcp.get('subnet')}, "
              f"gateway {run.dhcp.get('router')}, DNS {run.dhcp.get('dns')}, "
              f"MTU {run.dhcp.get('mtu')}")
    for name, description, arguments in REQUESTS:
        print(f"\n$ curl {arguments}    # {description}")
        fields = run.results.get(name)
        if fields is None:
            print("  (no result: the guest did not get this far)")
            continue
        if fields.get("rc") != "0":
            print(f"  curl exit code {fields.get('rc')}: {run.text(name + '.err').strip()}")
        print(f"  HTTP {fields.get('status')}")
        denied = run.header(name, "X-Moat-Denied")
        if denied:
            print(f"  X-Moat-Denied: {denied}")
        body = run.text(name + ".body").strip()
        if body:
            first_line = body.splitlines()[0]
            if len(first_line) > 160:
                first_line = first_line[:160].rsplit(" ", 1)[0] + " ..."
            print("  body: " + first_line)


DNS_TYPES = {1: "A", 28: "AAAA"}


def describe_event(kind, event):
    """Return a one-line summary of an audit event's main fields."""
    host = event.get("host", "")
    if kind == moatvm.AUDIT_DNS:
        qtype = DNS_TYPES.get(event.get("qtype"), f"type {event.get('qtype')}")
        answer = event.get("answer", "no address")
        return f"{host} {qtype} -> {answer}"
    if kind == moatvm.AUDIT_CONNECTION:
        protocol = event.get("protocol", "?")
        return f"{host or event.get('address', '?')}:{event.get('port')} ({protocol})"
    if kind == moatvm.AUDIT_REQUEST:
        size = event.get("bytes_received")
        summary = f"{event.get('method')} {event.get('url')} -> {event.get('status')}"
        return summary + (f", {size} bytes" if size else "")
    skip = ("time", "guest", "flow", "reason")
    return " ".join(f"{key}={value}" for key, value in event.items() if key not in skip)


def show_audit(path):
    print("\nmoat's audit log (" + path + ")")
    print("-" * (len(path) + 20))
    if not os.path.exists(path):
        print("(moat wrote no audit log)")
        return
    with open(path, encoding="utf-8", errors="replace") as audit:
        for line in audit:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                print("not JSON: " + line.rstrip())
                continue
            kind = str(event.get(moatvm.AUDIT_EVENT_KEY, "?"))
            decision = str(event.get(moatvm.AUDIT_DECISION, ""))
            # "2026-12-04T20:28:22.497Z" -> "20:28:22.497"
            clock = str(event.get("time", ""))[11:23]
            rest = {k: v for k, v in event.items()
                    if k not in (moatvm.AUDIT_EVENT_KEY, moatvm.AUDIT_DECISION)}
            print(f"{clock:<12} {kind:<11} {decision:<6} {describe_event(kind, rest)}")
            if decision == moatvm.AUDIT_DENY and "reason" in event:
                print(f"{'':<31} reason: {event['reason']}")
    print("\nEach line of the file is one JSON object; the view above shortens them.")


def main():
    parser = argparse.ArgumentParser(description="Run the moat demo in a private network namespace.")
    parser.add_argument("--moat", default="build/src/moat", help="path of the moat binary")
    parser.add_argument("--guest-dir", default="build/guest",
                        help="folder with vmlinuz and initramfs.cpio.gz")
    parser.add_argument("--verbose", action="store_true", help="copy the serial console to stdout")
    args = parser.parse_args()
    args.moat = os.path.abspath(args.moat)
    args.guest_dir = os.path.abspath(args.guest_dir)

    moatvm.ensure_private_netns()
    print("Policy: allow " + ", ".join(ALLOW) + "; deny " + ", ".join(DENY)
          + "; everything else is denied.\n")
    upstream_folder = tempfile.mkdtemp(prefix="moatdemo-", dir="/tmp")
    try:
        with moatvm.Upstreams(upstream_folder, CERT_NAMES) as upstreams:
            session = moatvm.MoatSession(args.moat, args.guest_dir, upstreams, ALLOW, DENY,
                                         MAPPED_NAMES, keep=True, verbose=args.verbose)
            with session:
                run = session.boot(guest_script(), timeout=180)
                show_guest(run)
                session.stop()
                show_audit(session.audit_path)
                try:
                    run.check_booted()
                except moatvm.CaseFailure as failure:
                    print(f"\nThe guest did not run as expected: {failure}")
                    print(session.failure_report())
                    return 1
    except moatvm.CaseFailure as failure:
        print(f"demo failed: {failure}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(upstream_folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
