#!/bin/sh
# A crash in the middle of a sale (make test): tools/flashsale sells with
# idempotency keys, and the server is stopped with -m immediate while it
# does, then started again.  Every buyer whose call broke calls again with
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

new_db checkout_crash checkout || exit 1
tools/flashsale -d checkout_crash --retry 60 --buyers 3000 --stock 2000 -c 8 \
	>"$tmp/sale" 2>&1 &
sale=$!

# Crash once the sale is well under way
i=0
until [ "$(psql -X -At -d checkout_crash -c 'SELECT count(*) > 200 FROM orders' 2>/dev/null)" = t ]; do
	i=$((i + 1))
	[ "$i" -gt 600 ] && break
	sleep 0.02
done
# shellcheck disable=SC2086
pg_ctlcluster $cluster stop -m immediate
# shellcheck disable=SC2086
pg_ctlcluster $cluster start

wait "$sale"
status=$?
cat "$tmp/sale"
check "after an immediate shutdown mid-sale, every buyer has exactly the order it was told of (flashsale exit $status)" \
	[ "$status" -eq 0 ]
check "the crash hit the sale: buyers called again with their keys" \
	grep -q "called again with" "$tmp/sale"
problems=$(psql -X -At -d checkout_crash -c "SELECT count(*) FROM shop_check_integrity()")
check "after the crash, shop_check_integrity() is clean ($problems problems)" [ "$problems" = 0 ]
sql postgres "DROP DATABASE checkout_crash"
exit "$failed"
