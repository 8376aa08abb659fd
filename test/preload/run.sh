#!/bin/sh
# The tests that need shared_preload_libraries = 'checkout' (the live
# statistics), run by test/run-all.sh inside a throwaway cluster of their
# own that pg_virtualenv starts with the preload.  Prints pg_regress's
# verdict lines and "race: ok|FAILED" lines, like the other suites.
set -u
cd "$(dirname "$0")/../.."
. test/lib.sh

pgxs=$(pg_config --pgxs)
pg_regress=$(dirname "$pgxs")/../test/regress/pg_regress
tests=$(cd test/preload/sql && ls *.sql | sed 's/\.sql$//')

# shellcheck disable=SC2086
"$pg_regress" --inputdir=test/preload --outputdir=test/preload \
	--bindir="$(pg_config --bindir)" --dbname=checkout_preload $tests
rc=$?

# The statistics under a real race: the seed's sale, then its counters
seed_sale_counted() {
	new_db checkout_stats_race checkout &&
		tools/flashsale -d checkout_stats_race --buyers 33 --stock 20 --quiet \
			--expect-orders 20 --expect-rejected 13 --expect-stock 0 || return 1
	counters=$(psql -X -At -d checkout_stats_race -c "
		SELECT attempts || ' ' || successes || ' ' || insufficient_stock || ' ' || items_sold
		  FROM shop_checkout_stats WHERE datname = current_database()")
	echo "counters (attempts successes SH001 items): $counters"
	[ "$counters" = "33 20 13 20" ]
}
verdict race "statistics count the seed's 33-buyer sale (33 attempts, 20 successes, 13 SH001, 20 items)" \
	seed_sale_counted || rc=1
exit "$rc"
