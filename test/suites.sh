#!/bin/sh
# Run the test suites of checkout that need no preload against the server
# named by the PG* environment variables (pg_virtualenv sets them for a
# throwaway cluster), then print one summary line for all of them:
# "N passed, N failed".
#
# Counted: each pg_regress test, each isolation spec, each pgTAP assertion,
# each flash-sale race.
# Exits non-zero when anything failed or a suite could not run.
set -u
cd "$(dirname "$0")/.."

passed=0
failed=0
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

# count_regress SUITE LOGFILE: add pg_regress's verdict lines to the totals
count_regress() {
	ok=$(grep -Ec '^(test| ) .* \.\.\. ok|^ok ' "$2")
	bad=$(grep -Ec '\.\.\. FAILED|^not ok ' "$2")
	echo "$1: $ok passed, $bad failed"
	passed=$((passed + ok))
	failed=$((failed + bad))
}

# pg_regress tests (sql/, expected/)
make --no-print-directory installcheck ISOLATION= >"$log/regress" 2>&1
rc_regress=$?
cat "$log/regress"
count_regress "pg_regress" "$log/regress"

# Isolation specs (specs/, expected/)
make --no-print-directory installcheck REGRESS= >"$log/isolation" 2>&1
rc_isolation=$?
cat "$log/isolation"
count_regress "isolation" "$log/isolation"

# pgTAP (test/*.sql), each file in its own transaction that rolls back
psql -X -q -v ON_ERROR_STOP=1 -d postgres \
	-c 'DROP DATABASE IF EXISTS checkout_tap' \
	-c 'CREATE DATABASE checkout_tap' &&
	psql -X -q -v ON_ERROR_STOP=1 -d checkout_tap -c 'CREATE EXTENSION pgtap'
pg_prove --verbose -d checkout_tap test/*.sql >"$log/tap" 2>&1
rc_tap=$?
cat "$log/tap"
ok=$(grep -Ec '^ *ok [0-9]' "$log/tap")
bad=$(grep -Ec '^ *not ok [0-9]' "$log/tap")
[ "$rc_tap" -ne 0 ] && [ "$bad" -eq 0 ] && bad=1	# a file that died
echo "pgTAP: $ok passed, $bad failed"
passed=$((passed + ok))
failed=$((failed + bad))

# Flash-sale races (tools/flashsale): each run counts as one test
sh test/race.sh >"$log/race" 2>&1
cat "$log/race"
ok=$(grep -c '^race: ok' "$log/race")
bad=$(grep -c '^race: FAILED' "$log/race")
[ "$ok" -eq 0 ] && [ "$bad" -eq 0 ] && bad=1	# could not run at all
echo "race: $ok passed, $bad failed"
passed=$((passed + ok))
failed=$((failed + bad))

# A suite that failed without a failed test (e.g. could not start) fails too
for rc in $rc_regress $rc_isolation; do
	[ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
done
for f in regression.diffs output_iso/regression.diffs; do
	[ -s "$f" ] && echo "differences: $f"
done

echo "subtotal without preload: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
