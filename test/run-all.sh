#!/bin/sh
# make test, after the build and install: every suite, in throwaway
# clusters made by pg_virtualenv, then one line for all: "N passed, N failed".
#
#  1. test/suites.sh in a cluster without the preload: pg_regress,
#     isolation, pgTAP and the flash-sale races (checkout as most shops
#     install it);
#  2. test/preload/run.sh in a cluster with shared_preload_libraries =
#     'checkout': the live statistics.
#
# Exits non-zero when anything failed or a cluster could not start.
set -u
cd "$(dirname "$0")/.."
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

# Drop the server log that pg_virtualenv prints when its command fails
quiet_server_log() {
	grep -vE '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]+ UTC ' "$1"
}

pg_virtualenv -o max_connections=300 -- sh test/suites.sh >"$log/main" 2>&1
rc_main=$?
quiet_server_log "$log/main"
main=$(sed -n 's/^subtotal without preload: //p' "$log/main" | tail -n 1)

pg_virtualenv -o shared_preload_libraries=checkout -o max_connections=100 \
	-- sh test/preload/run.sh >"$log/preload" 2>&1
rc_preload=$?
quiet_server_log "$log/preload"
[ -s test/preload/regression.diffs ] && echo "differences: test/preload/regression.diffs"

passed=${main%% passed*}
failed=${main#* passed, }
failed=${failed%% failed*}
[ -z "$main" ] && passed=0 failed=1	# the main suites did not even report

ok=$(grep -Ec '\.\.\. ok|^race: ok' "$log/preload")
bad=$(grep -Ec '\.\.\. FAILED|^race: FAILED' "$log/preload")
echo "preload (statistics): $ok passed, $bad failed"
[ "$rc_preload" -ne 0 ] && [ "$bad" -eq 0 ] && bad=1
passed=$((passed + ok))
failed=$((failed + bad))
[ "$rc_main" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
