#!/bin/sh
# The upgrade from 1.0 (make test): a shop on version 1.0 with data in it,
# then ALTER EXTENSION checkout UPDATE.  Checks that it ends at the default
# version with exactly the objects of a fresh install (test/fixtures/extension_objects.sql),
# that its data is untouched (pg_dump --data-only before and after), and that
# it still checks out with a clean ledger.  The data is made by this
# library on the 1.0 objects (it serves an install not yet updated).  Prints "check: ok|FAILED" lines.
set -u
cd "$(dirname "$0")/.."
. test/lib.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

default=$(sed -n "s/^default_version = '\(.*\)'/\1/p" checkout.control)
new_db checkout_fresh checkout || exit 1
new_db checkout_upgrade "checkout VERSION '1.0'" || exit 1
psql -X -q -v ON_ERROR_STOP=1 -d checkout_upgrade -f test/fixtures/shop_data.sql >/dev/null || exit 1
rows() { psql -X -v ON_ERROR_STOP=1 -d checkout_upgrade -f test/fixtures/shop_rows.sql; }
rows >"$tmp/data-before" || exit 1
sql checkout_upgrade "ALTER EXTENSION checkout UPDATE" || exit 1

version=$(psql -X -At -d checkout_upgrade -c "SELECT extversion FROM pg_extension WHERE extname = 'checkout'")
check "1.0 updates to the default version $default (got $version)" [ "$version" = "$default" ]

objects() { psql -X -v ON_ERROR_STOP=1 -d "$1" -f test/fixtures/extension_objects.sql; }
objects checkout_fresh >"$tmp/fresh" && objects checkout_upgrade >"$tmp/upgraded" || exit 1
check "an updated install has exactly the objects of a fresh one ($(wc -l <"$tmp/fresh") lines)" \
	diff -u "$tmp/fresh" "$tmp/upgraded"

rows >"$tmp/data-after" || exit 1
check "the update keeps every row and sequence ($(wc -l <"$tmp/data-before") lines)" \
	diff -u "$tmp/data-before" "$tmp/data-after"
new=$(psql -X -At -d checkout_upgrade -c "
	SELECT (SELECT string_agg(DISTINCT status, ',') FROM orders) || ' '
		|| (SELECT sum(cancelled_quantity) FROM order_items) || ' '
		|| (SELECT count(*) FROM orders WHERE expires_at IS NOT NULL)")
check "1.0's orders are placed, never expire, nothing cancelled (got $new)" [ "$new" = "placed 0 0" ]

problems=$(psql -X -At -d checkout_upgrade -c "SELECT count(*) FROM shop_check_integrity()")
ordered=$(psql -X -At -d checkout_upgrade -c "SELECT shop_checkout(10) > 0")
check "after the update: integrity clean ($problems problems), a checkout succeeds ($ordered)" \
	[ "$problems" = 0 ] && [ "$ordered" = t ]

sql postgres "DROP DATABASE checkout_fresh" "DROP DATABASE checkout_upgrade"
exit "$failed"
