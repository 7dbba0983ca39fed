#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# run-tests.sh - install what the tests need, build moat and run the whole
# test suite (unit tests and QEMU guests) inside a private network
# namespace that contains only loopback. Extra arguments go to
# `meson test` (for example a test name, or --suite unit).
#
# Without arguments it then builds moat again with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer (in $build-sanitize) and
# runs the unit tests, the frame-level fault tests and a short run of every
# fuzz target there. The QEMU guest cases run only in the first build,
# because under TCG they take about 8 minutes. MOAT_SANITIZE=0 skips it.
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
logs="$build/meson-logs/testlog.json"

sanitize=$build-sanitize
if [ $# -eq 0 ] && [ "${MOAT_SANITIZE:-1}" = 1 ]; then
	echo "== sanitizer build: $sanitize"
	if [ ! -f "$sanitize/build.ninja" ]; then
		# b_lundef=false: clang links the sanitizer runtimes into
		# executables only, so shared objects keep undefined symbols.
		CC=clang meson setup "$sanitize" "$repo" -Dfuzzing=true \
			-Dvm_tests=disabled -Db_sanitize=address,undefined \
			-Db_lundef=false
	fi
	ninja -C "$sanitize"
	# meson test sets ASAN_OPTIONS and UBSAN_OPTIONS so that the first
	# error aborts the test; LeakSanitizer runs at exit.
	# shellcheck disable=SC2086
	$netns sh -c 'ip link set lo up && exec meson test -C "$1" --print-errorlogs --no-suite vm --no-suite valgrind' \
		sh "$sanitize" || status=$?
	logs="$logs $sanitize/meson-logs/testlog.json"
fi

# shellcheck disable=SC2086 # one argument per log file
python3 - $logs <<'PY'
import json, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    with open(path) as log:
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
