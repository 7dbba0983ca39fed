#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""moatcheck.py - tests of "moat check" against the moat binary.

Each case writes a configuration file to a temporary folder and runs
"moat check" on it. Some cases also start moat itself on the same file to
compare the messages. moat rejects every file that it starts with here,
so it exits before it opens any socket, and nothing touches the network.

Usage: moatcheck.py --moat PATH CASE
"""

import argparse
import os
import subprocess
import sys
import tempfile

CASES = {}


def case(function):
    CASES[function.__name__.removeprefix("case_").replace("_", "-")] = function
    return function


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def run(argv, env=None):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    return result.returncode, result.stdout, result.stderr


def write(folder, name, text):
    path = os.path.join(folder, name)
    with open(path, "w") as file:
        file.write(text)
    return path


def same_message_as_moat(moat, folder, config):
    """Check that moat check and moat reject config with the same message."""
    status, _, check_error = run([moat, "check", "--config", config, "GET",
                                  "https://api.example.com/"])
    check(status == 2, f"moat check exited with {status}, expected 2: {check_error}")
    socket = os.path.join(folder, "qemu.sock")
    status, _, moat_error = run([moat, "--config", config, "--socket", socket])
    check(status == 2, f"moat exited with {status}, expected 2: {moat_error}")
    check(not os.path.exists(socket), "moat created its socket for an invalid file")
    check_message = check_error.strip().removeprefix("moat check: ")
    moat_message = moat_error.strip().removeprefix("moat: ")
    check(check_message == moat_message,
          f"messages differ:\n  moat check: {check_message}\n  moat:       {moat_message}")
    return check_message


@case
def case_secret_without_placeholders(moat, folder):
    config = write(folder, "vm.ini",
                   "[rule api]\nhosts = api.example.com\naction = allow\n\n"
                   "[secret token]\nvalue-env = MOAT_CHECK_TOKEN\nhosts = api.example.com\n")
    message = same_message_as_moat(moat, folder, config)
    check(message.startswith(f"{config}:5: [secret token]: missing [moat] placeholders-out"),
          f"the message should name file, line and group: {message}")


@case
def case_missing_placeholders_folder(moat, folder):
    missing = os.path.join(folder, "missing")
    config = write(folder, "vm.ini",
                   f"[moat]\nplaceholders-out = {missing}/placeholders.env\n"
                   "[secret token]\nvalue-env = MOAT_CHECK_TOKEN\nhosts = api.example.com\n")
    message = same_message_as_moat(moat, folder, config)
    check(f"the folder {missing} does not exist: create it" in message,
          f"the message should name the folder and the fix: {message}")


@case
def case_unset_variable_not_read(moat, folder):
    """moat check reads no secret value, so an unset variable passes."""
    config = write(folder, "vm.ini",
                   f"[moat]\nplaceholders-out = {folder}/placeholders.env\n"
                   "[rule api]\nhosts = api.example.com\naction = allow\n"
                   "[secret token]\nvalue-env = MOAT_CHECK_UNSET\nhosts = api.example.com\n")
    env = dict(os.environ)
    env.pop("MOAT_CHECK_UNSET", None)
    status, output, error = run([moat, "check", "--config", config, "GET",
                                 "https://api.example.com/"], env=env)
    check(status == 0, f"moat check exited with {status}, expected 0: {error}")
    check(not os.path.exists(os.path.join(folder, "placeholders.env")),
          "moat check wrote the placeholders file")
    socket = os.path.join(folder, "qemu.sock")
    status, _, error = run([moat, "--config", config, "--socket", socket], env=env)
    check(not os.path.exists(socket), "moat created its socket for an unset variable")
    check(status == 2 and f"{config}:7: [secret token] value-env: environment variable "
          "MOAT_CHECK_UNSET is not set" in error,
          f"moat should name file, line, group and key of the unset variable: {error}")


@case
def case_invalid_percent_escape(moat, folder):
    config = write(folder, "vm.ini",
                   "[rule api]\nhosts = api.example.com\npaths = /**\naction = allow\n")
    status, output, error = run([moat, "check", "--config", config, "GET",
                                 "https://api.example.com/a/%zz"])
    check(status == 1, f"moat check exited with {status}, expected 1 (deny): {error}")
    check(output.startswith("deny\nrule: default\n") and "cannot be checked" in output,
          f"expected a denial by default, got {output!r}")


@case
def case_globstar(moat, folder):
    config = write(folder, "vm.ini",
                   "[rule api]\nhosts = api.example.com\npaths = /a/**/b\naction = allow\n")
    for path, expected in (("/a/b", 0), ("/a/x/y/b", 0), ("/a/xb", 1)):
        status, output, error = run([moat, "check", "--config", config, "GET",
                                     f"https://api.example.com{path}"])
        check(status == expected, f"{path}: exit status {status}, expected {expected}: "
              f"{output}{error}")
    bad = write(folder, "bad.ini",
                "[rule api]\nhosts = api.example.com\npaths = /re**pos\naction = allow\n")
    status, _, error = run([moat, "check", "--config", bad, "GET", "https://api.example.com/"])
    check(status == 2 and "must be a whole segment" in error,
          f"a ** inside a segment should be rejected: {status} {error}")


@case
def case_host_with_port(moat, folder):
    config = write(folder, "vm.ini",
                   "[rule api]\nhosts = api.example.com:443\naction = allow\n")
    status, _, error = run([moat, "check", "--config", config, "GET", "https://api.example.com/"])
    check(status == 2 and "invalid character ':'" in error and '"ports" key' in error,
          f"a port in hosts should point to ports: {status} {error}")


@case
def case_help(moat, folder):
    status, output, _ = run([moat, "check", "--help"])
    check(status == 0 and "\n  moat check [OPTION" in output,
          f"the usage line should name moat check: {output[:200]!r}")
    status, output, _ = run([moat, "--help"])
    long_lines = [line for line in output.splitlines()
                  if len(line) > 80 and not line.startswith("  -")
                  and not line.startswith("  qemu-system")]
    check(not long_lines, f"moat --help has lines over 80 characters: {long_lines}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moat", required=True, help="path of the moat binary")
    parser.add_argument("case", choices=sorted(CASES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="moatcheck-") as folder:
        try:
            CASES[args.case](args.moat, folder)
        except Failure as failure:
            print(f"FAIL {args.case}: {failure}")
            return 1
    print(f"ok {args.case}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
