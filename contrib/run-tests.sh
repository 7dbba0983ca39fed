#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# run-tests.sh - install what the tests need, build moat and run the whole
# test suite (unit tests and QEMU guests) inside a private network
# namespace that contains only loopback. Extra arguments go to
# `meson test` (for example a test name, or --suite unit).
#
# Ends with the line "N passed, N failed" and exits non-zero on a failure.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${MOAT_BUILD_DIR:-$repo/build}

"$repo/contrib/install-deps.sh"

if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" "$repo"
fi
ninja -C "$build"

# Root gets a new network namespace directly; other users get one inside
# a user namespace, where they appear as root.
if [ "$(id -u)" -eq 0 ]; then
	netns="unshare --net"
else
	netns="unshare --net --map-root-user"
fi

status=0
# shellcheck disable=SC2086 # $netns is a command with its options
$netns sh -c 'ip link set lo up && build=$1 && shift && exec meson test -C "$build" --print-errorlogs "$@"' \
	sh "$build" "$@" || status=$?

python3 - "$build/meson-logs/testlog.json" <<'PY'
import json, sys
passed = failed = skipped = 0
with open(sys.argv[1]) as log:
    for line in log:
        result = json.loads(line)["result"]
        if result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
