#!/bin/sh
# make test, after the build and install: every suite, in throwaway
# clusters made by pg_virtualenv, then one line for all: "N passed, N failed".
#
#  1. test/suites.sh in a cluster without the preload: pg_regress,
#     isolation, pgTAP, the flash-sale races, the upgrade from 1.0 and the
#     backup round trip (checkout as most shops install it);
#  2. test/preload/run.sh in a cluster with shared_preload_libraries =
#     'checkout': the live statistics;
#  0. test/package.sh: the Debian package that make test installed, and
#     the C formatted as pgindent formats it; the messages' case rule;
#  4. test/monitoring.sh in a cluster with the preload: the alert rules'
#     unit tests, and Prometheus with postgres_exporter watching a sale;
#  5. test/storefront.sh in a cluster with track_commit_timestamp on: the
#     storefront (examples/storefront) in Chromium, against the real server;
#  6. test/order-events.sh in a cluster with wal_level = logical: the order
#     events' consumer (examples/order-events) killed, its receiver down,
#     the server stopped mid-stream, through PgQ and logical decoding;
#  3. test/cron/run.sh in a cluster with shared_preload_libraries =
#     'pg_cron': shop_expire_orders() scheduled.  It mostly waits for the
#     next minute, so it runs beside 1 and 2, in a cluster of its own (-t).
#
# Exits non-zero when anything failed or a cluster could not start.
set -u
cd "$(dirname "$0")/.."
. test/lib.sh
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

pg_virtualenv -t -o shared_preload_libraries=pg_cron -o cron.database_name=postgres \
	-o cron.use_background_workers=on -o max_worker_processes=16 \
	-- sh test/cron/run.sh >"$log/cron" 2>&1 &
cron=$!

{
	sh test/package.sh
	# the C formatted as PostgreSQL's pgindent formats it (make indent)
	verdict check "the C is formatted as pgindent formats it (make indent)" \
		tools/pgindent --check ./*.c ./*.h tools/*.c
	# the case of the error messages (call.h)
	verdict check "every error message follows the rule for its case (tools/check-messages)" \
		tools/check-messages ./*.c tools/*.c
	# PostgreSQL 15 exports every symbol of the library into the backend
	# (checkout.h, "Names"): none may be one of the server's own
	nm -D --defined-only "$(pg_config --pkglibdir)/checkout.so" | awk '{ print $3 }' | sort -u >"$log/ours"
	nm -D --defined-only "$(pg_config --bindir)/postgres" | awk '{ print $3 }' | sort -u >"$log/server"
	clash=$(comm -12 "$log/ours" "$log/server" | grep -vE '^(_init|_fini|Pg_magic_func|_PG_init)$' | tr '\n' ' ')
	verdict check "no function of checkout.so has the name of one of the server's (${clash:-none})" \
		[ -z "$clash" ]
} >"$log/package" 2>&1
cat "$log/package"
set -- $(count_verdicts "$log/package")
package_passed=$1 package_failed=$2
echo "package: $package_passed passed, $package_failed failed"

pg_virtualenv -t -o max_connections=300 -o wal_level=logical -- sh test/suites.sh >"$log/main" 2>&1
rc_main=$?
quiet_server_log "$log/main"
set -- $(sed -n 's/^subtotal without preload: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$log/main")
main_passed=${1:-0} main_failed=${2:-1}	# no subtotal: the suites did not even run

pg_virtualenv -t -o shared_preload_libraries=checkout -o max_connections=100 \
	-- sh test/preload/run.sh >"$log/preload" 2>&1
rc_preload=$?
quiet_server_log "$log/preload"
[ -s test/preload/regression.diffs ] && echo "differences: test/preload/regression.diffs"
set -- $(count_verdicts "$log/preload")
preload_passed=$1 preload_failed=$2
[ "$rc_preload" -ne 0 ] && [ "$preload_failed" -eq 0 ] && preload_failed=1
echo "preload (statistics): $preload_passed passed, $preload_failed failed"

# Prometheus and postgres_exporter end to end, with the preload (the
# statistics); the rules' unit tests
pg_virtualenv -t -o shared_preload_libraries=checkout -o wal_level=logical \
	-- sh test/monitoring.sh >"$log/monitoring" 2>&1
rc_monitoring=$?
quiet_server_log "$log/monitoring" | grep -v '^ts='
set -- $(count_verdicts "$log/monitoring")
monitoring_passed=$1 monitoring_failed=$2
[ "$rc_monitoring" -ne 0 ] && [ "$monitoring_failed" -eq 0 ] && monitoring_failed=1
echo "monitoring (Prometheus): $monitoring_passed passed, $monitoring_failed failed"

# the storefront in a real browser: its own cluster, the database stopped
# and started mid-test (so nothing else runs in it)
pg_virtualenv -t -o track_commit_timestamp=on -o max_connections=100 \
	-- sh test/storefront.sh >"$log/storefront" 2>&1
rc_storefront=$?
grep -E '^(not )?ok [0-9]|^# ' "$log/storefront"
# a failure's diagnostics (node's YAML block after "not ok"), so that a
# failure in CI says why
awk '/^not ok [0-9]/ { show = 1 } show { print } /^  \.\.\.$/ { show = 0 }' "$log/storefront" |
	grep -v '^not ok' | head -n 40
set -- $(count_verdicts "$log/storefront")
storefront_passed=$1 storefront_failed=$2
if [ "$rc_storefront" -ne 0 ] && [ "$storefront_failed" -eq 0 ]; then
	grep -v '^20[0-9][0-9]-' "$log/storefront" | tail -30
	storefront_failed=1
fi
echo "storefront (Chromium): $storefront_passed passed, $storefront_failed failed"

# order events to a webhook (examples/order-events): its own cluster, with
# wal_level = logical; the database is stopped and started mid-test
pg_virtualenv -t -o wal_level=logical -o max_connections=400 \
	-- sh test/order-events.sh >"$log/events" 2>&1
rc_events=$?
grep -E '^check: |^order events: ' "$log/events"
set -- $(count_verdicts "$log/events")
events_passed=$1 events_failed=$2
if [ "$rc_events" -ne 0 ] && [ "$events_failed" -eq 0 ]; then
	grep -v '^20[0-9][0-9]-' "$log/events" | tail -30
	events_failed=1
fi
echo "order events (consumer): $events_passed passed, $events_failed failed"

wait "$cron"
rc_cron=$?
quiet_server_log "$log/cron"
set -- $(count_verdicts "$log/cron")
cron_passed=$1 cron_failed=$2
[ "$rc_cron" -ne 0 ] && [ "$cron_failed" -eq 0 ] && cron_failed=1
echo "pg_cron (expiry): $cron_passed passed, $cron_failed failed"

passed=$((package_passed + main_passed + preload_passed + monitoring_passed + storefront_passed + events_passed + cron_passed))
failed=$((package_failed + main_failed + preload_failed + monitoring_failed + storefront_failed + events_failed + cron_failed))
[ "$rc_main" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
