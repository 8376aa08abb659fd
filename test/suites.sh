#!/bin/sh
# The suites of checkout that need no preload, against the server named by
# the PG* variables (pg_virtualenv sets them for a throwaway cluster):
# pg_regress, isolation, pgTAP, the flash-sale races, the upgrade from 1.0,
# the backup round trip, crashes mid-sale, the Drizzle example, a sale
# through pgbouncer and the sharded shop in one cluster (sharding/, its
# databases as shards).  Prints every verdict line (test/lib.sh), a
# line per suite, and "subtotal without preload: N passed, N failed".
# Exits non-zero when anything failed or a suite could not run.
set -u
cd "$(dirname "$0")/.."
. test/lib.sh
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
status=0

# suite NAME COMMAND...: run one suite, show its output and its count; a
# suite that fails without a failed verdict (it could not run) counts one
suite() {
	_suite=$1
	shift
	"$@" >"$log/$_suite" 2>&1
	_rc=$?
	cat "$log/$_suite"
	set -- $(count_verdicts "$log/$_suite")
	if [ "$_rc" -ne 0 ] && [ "$2" -eq 0 ] || [ "$1" -eq 0 ] && [ "$2" -eq 0 ]; then
		echo "$_suite: FAILED could not run (exit status $_rc)" | tee -a "$log/$_suite"
		set -- "$1" 1
	fi
	echo "$_suite: $1 passed, $2 failed"
	[ "$2" -eq 0 ] || status=1
}

# pgTAP: each file in its own transaction that rolls back
pgtap() {
	new_db checkout_tap pgtap && pg_prove --verbose -d checkout_tap test/*.sql
}

suite pg_regress make --no-print-directory installcheck ISOLATION=
suite isolation make --no-print-directory installcheck REGRESS=
suite pgTAP pgtap
suite races sh test/race.sh
suite bundles sh test/bundle-race.sh
suite located sh test/location-race.sh
suite upgrade sh test/upgrade.sh
suite resets sh test/reset.sh
suite reference sh test/reference.sh
suite docs sh test/docs.sh
suite docs-breaks sh test/docs-breaks.sh
suite notify sh test/notify.sh
suite backup sh test/dump-restore.sh
suite crash sh test/crash.sh
# The cluster add-ons run on the major Debian's own packages serve (15);
# CHECKOUT_CORE=1 (make test PG=17, test/major.sh) leaves them out
if [ "${CHECKOUT_CORE:-0}" != 1 ]; then
	suite drizzle sh test/drizzle.sh
	suite pooler sh test/pooler.sh
	suite sharding make --no-print-directory -C sharding installcheck
fi

for f in regression.diffs output_iso/regression.diffs sharding/regression.diffs; do
	[ -s "$f" ] && echo "differences: $f"
done
set -- $(count_verdicts "$log"/*)
echo "subtotal without preload: $1 passed, $2 failed"
exit "$status"
