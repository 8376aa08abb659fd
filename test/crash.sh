#!/bin/sh
# A crash in the middle of a sale (make test): tools/flashsale sells with
# idempotency keys, and while it does (a) one busy backend is killed with
# SIGKILL (the postmaster then resets them all), (b) the server is stopped
# with -m immediate, then started again.  Every buyer whose call broke calls again with
# its key (flashsale --retry).  Passes when every buyer ends with exactly
# the order it was told of, or a clear error (flashsale's invariants: no
# acknowledged order lost, none twice, stock conserved), the crash did hit
# the sale (some buyers had to call again), and shop_check_integrity() is
# clean.  Needs the cluster of pg_virtualenv ("regress"); prints "check:".
set -u
cd "$(dirname "$0")/.."
. test/lib.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cluster="${PGVERSION:-15} regress"

# sale_with_crash NAME CRASH-COMMAND: a sale with keys in a new database,
# CRASH-COMMAND run once it is well under way, then the checks
sale_with_crash() {
	name=$1
	crash=$2
	new_db checkout_crash checkout || return 1
	tools/flashsale -d checkout_crash --retry 60 --buyers 3000 --stock 2000 -c 8 \
		>"$tmp/sale" 2>&1 &
	sale=$!
	i=0
	until [ "$(psql -X -At -d checkout_crash -c 'SELECT count(*) > 200 FROM orders' 2>/dev/null)" = t ]; do
		i=$((i + 1))
		[ "$i" -gt 600 ] && break
		sleep 0.02
	done
	eval "$crash"
	wait "$sale"
	status=$?
	cat "$tmp/sale"
	check "$name: every buyer has exactly the order it was told of (flashsale exit $status)" \
		[ "$status" -eq 0 ]
	check "$name: the crash hit the sale: buyers called again with their keys" \
		grep -q "called again with" "$tmp/sale"
	problems=$(psql -X -At -d checkout_crash -c "SELECT count(*) FROM shop_check_integrity()")
	check "$name: shop_check_integrity() is clean ($problems problems)" [ "$problems" = 0 ]
	sql postgres "DROP DATABASE checkout_crash"
}

# (a) One busy backend killed with SIGKILL: the postmaster resets every
# backend and recovers, as after a crash
kill_one_backend() {
	# a backend caught in a checkout (the buyers' backends are idle between
	# calls: look again until one is in one, at most 5 s)
	i=0
	pid=
	while [ -z "$pid" ] && [ "$i" -lt 500 ]; do
		pid=$(psql -X -At -d checkout_crash -c "
			SELECT pid FROM pg_stat_activity
			 WHERE datname = current_database() AND state = 'active'
			   AND query LIKE '%shop_checkout%' AND pid <> pg_backend_pid() LIMIT 1")
		i=$((i + 1))
	done
	[ -n "$pid" ] && kill -9 "$pid"
	# wait for the recovery to end before the next psql
	i=0
	until psql -X -At -d postgres -c 'SELECT 1' >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -gt 300 ] && break
		sleep 0.1
	done
}
sale_with_crash "a backend killed with SIGKILL mid-sale" kill_one_backend

# (b) The server stopped with -m immediate, then started again
# shellcheck disable=SC2086
sale_with_crash "an immediate shutdown mid-sale" \
	"pg_ctlcluster $cluster stop -m immediate; pg_ctlcluster $cluster start"
exit "$failed"
