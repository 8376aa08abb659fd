#!/bin/sh
# Failover mid-sale (make test-failover; make demo FAILOVER=1 shows it):
# pg_auto_failover (Debian's postgresql-15-auto-failover) runs a monitor and
# three nodes as local clusters: a primary and two standbys with synchronous
# replication, ANY 1 of the two (an acknowledged commit is on a standby; with
# two standbys, losing one node still leaves a synchronous one).  A sale
# through tools/flashsale with idempotency keys connects with a multi-host
# connection string (target_session_attrs=read-write); the primary's whole
# node (its pg_autoctl and its postgres: their process group) is killed
# mid-sale; buyers whose calls broke reconnect and call again with their
# keys.  Passes when every buyer ends with exactly the order it was told of
# (flashsale's invariants, on the new primary), integrity is clean, writes
# resumed within RESUME_LIMIT seconds, shop_cart_status() answers on a
# standby during the sale, every order's event (PgQ) reaches the consumer
# from the new primary, and the old primary rejoins as a standby.
# Prints "check:" lines; stops and removes everything it started.
set -u
cd "$(dirname "$0")/.."
. test/lib.sh

BUYERS=${BUYERS:-6000} STOCK=${STOCK:-4000} RESUME_LIMIT=${RESUME_LIMIT:-60}
base=${FAILOVER_PORT:-6500}
W=$(mktemp -d)
chmod 755 "$W"
chown postgres "$W" 2>/dev/null || true
export PATH="$(pg_config --bindir):$PATH" XDG_CONFIG_HOME="$W/config" XDG_DATA_HOME="$W/data" HOME="$W"

# run_node NAME: pg_autoctl run for a node, in a process group of its own
run_node() {
	# shellcheck disable=SC2086
	setsid $AS_POSTGRES pg_autoctl run --pgdata "$W/$1" >>"$W/$1.log" 2>&1 &
}

# Stop every node and the monitor (their process groups), remove the files
cleanup() {
	for pid in $(pgrep -f "pg_autoctl .*--pgdata $W/"); do
		/bin/kill -9 -- "-$(ps -o pgid= -p "$pid" | tr -d ' ')" 2>/dev/null
	done
	pkill -9 -f "postgres -D $W/" 2>/dev/null
	_i=0
	while pgrep -f "(pg_autoctl|postgres).*$W/" >/dev/null && [ "$_i" -lt 100 ]; do
		_i=$((_i + 1))
		sleep 0.1
	done
	rm -rf "$W"
}
trap cleanup EXIT

state() { as_postgres pg_autoctl show state --pgdata "$W/monitor" 2>/dev/null; }
# wait_for PATTERN SECONDS: until the formation's state matches (grep -E)
wait_for() {
	_i=0
	until state | grep -Eq "$1"; do
		_i=$((_i + 1))
		[ "$_i" -gt $(($2 * 4)) ] && { state; return 1; }
		sleep 0.25
	done
}

monitor="postgres://autoctl_node@localhost:$base/pg_auto_failover?sslmode=disable"
as_postgres pg_autoctl create monitor --pgdata "$W/monitor" --pgport "$base" \
	--hostname localhost --auth trust --no-ssl >"$W/create.log" 2>&1 || { cat "$W/create.log"; exit 1; }
run_node monitor
# the monitor's database accepts connections (at most 60 s)
_i=0
until psql -X -q "postgres://postgres@localhost:$base/pg_auto_failover?sslmode=disable" \
	-c 'SELECT 1' >/dev/null 2>&1; do
	_i=$((_i + 1))
	[ "$_i" -gt 600 ] && { echo "the monitor did not start"; cat "$W/monitor.log"; exit 1; }
	sleep 0.1
done
# Detect a dead primary sooner than the defaults (5 s checks, 20 s to
# unhealthy, 30 s for the old primary to demote itself): a test's values
for guc in "health_check_period = 1000" "node_considered_unhealthy_timeout = 4000" \
	"primary_demote_timeout = 6000"; do
	psql -X -q "postgres://postgres@localhost:$base/pg_auto_failover?sslmode=disable" \
		-c "ALTER SYSTEM SET pgautofailover.$guc" || exit 1
done
psql -X -q "postgres://postgres@localhost:$base/postgres?sslmode=disable" -c 'SELECT pg_reload_conf()' >/dev/null

for n in 1 2 3; do
	as_postgres pg_autoctl create postgres --pgdata "$W/node$n" --pgport $((base + n)) \
		--hostname localhost --name "node$n" --monitor "$monitor" --auth trust --no-ssl \
		>"$W/create-node$n.log" 2>&1 || { cat "$W/create-node$n.log"; exit 1; }
	run_node "node$n"
	wait_for "node$n .*(single|primary|secondary) *\| *(single|primary|secondary)" 60 || exit 1
done
wait_for "node2 .*secondary *\| *secondary" 60 && wait_for "node3 .*secondary *\| *secondary" 60 &&
	wait_for "node1 .*primary *\| *primary" 60 || exit 1
state
primary_port=$((base + 1))
uri="postgres://postgres@localhost:$((base + 1)),localhost:$((base + 2)),localhost:$((base + 3))/checkout_failover?target_session_attrs=read-write&sslmode=disable&connect_timeout=2"
psql -X -q "postgres://postgres@localhost:$primary_port/postgres?sslmode=disable" \
	-c 'CREATE DATABASE checkout_failover' || exit 1
# Order events to PgQ (1.3): a consumer registered before the sale
psql -X -q "postgres://postgres@localhost:$primary_port/checkout_failover?sslmode=disable" \
	-c 'CREATE EXTENSION checkout' -c 'CREATE EXTENSION pgq' -c 'SELECT shop_events_create_queue()' \
	-c "SELECT pgq.register_consumer('checkout_orders', 'warehouse')" \
	-c "ALTER DATABASE checkout_failover SET checkout.events = 'pgq'" >/dev/null || exit 1
sync_names=$(psql -X -At "postgres://postgres@localhost:$primary_port/postgres?sslmode=disable" \
	-c 'SHOW synchronous_standby_names')
check "synchronous replication: an acknowledged commit is on a standby ($sync_names)" \
	sh -c "echo \"$sync_names\" | grep -q 'ANY 1'"

# The sale; the primary's node is killed once it is well under way
tools/flashsale -d "$uri" --retry 120 --buyers "$BUYERS" --stock "$STOCK" -c 8 >"$W/sale" 2>&1 &
sale=$!
until [ "$(psql -X -At "$uri" -c 'SELECT count(*) > 300 FROM orders' 2>/dev/null)" = t ]; do
	sleep 0.05
done
standby_answer=$(psql -X -At "postgres://postgres@localhost:$((base + 3))/checkout_failover?sslmode=disable" \
	-c 'SELECT pg_is_in_recovery(), count(*) >= 0 FROM shop_cart_status((SELECT max(id) FROM customers))' 2>&1)
check "shop_cart_status() answers on a standby during the sale ($standby_answer)" \
	[ "$standby_answer" = "t|t" ]
node_pid=$(pgrep -f "pg_autoctl run --pgdata $W/node1" | head -n 1)
killed=$(date +%s)
/bin/kill -9 -- "-$(ps -o pgid= -p "$node_pid" | tr -d ' ')"
echo "killed node1 (the primary) at $(date -u +%T)"

# Writes resume on a new primary
until psql -X -At "$uri" -c 'SELECT txid_current()' >/dev/null 2>&1; do
	[ $(($(date +%s) - killed)) -gt 300 ] && break
	sleep 0.2
done
resumed=$(($(date +%s) - killed))
check "writes resumed on the new primary ${resumed} s after the primary died (limit $RESUME_LIMIT s)" \
	[ "$resumed" -le "$RESUME_LIMIT" ]

wait "$sale"
status=$?
cat "$W/sale"
check "every buyer has exactly the order it was told of, on the new primary (flashsale exit $status)" \
	[ "$status" -eq 0 ]
check "the failover hit the sale: buyers called again with their keys" \
	grep -q "called again with" "$W/sale"
problems=$(psql -X -At "$uri" -c 'SELECT count(*) FROM shop_check_integrity()')
check "shop_check_integrity() is clean on the new primary ($problems problems)" [ "$problems" = 0 ]

# Every acknowledged order's placed event reaches the consumer from the new
# primary: one batch from its registration to a tick made now, exactly one
# placed event per order (flashsale checked that every order a buyer was
# told of is there)
events=$(psql -X -q -At -v ON_ERROR_STOP=1 "$uri" <<'SQL'
SELECT pgq.force_tick('checkout_orders') > 0 AS forced \gset
SELECT pgq.ticker('checkout_orders') > 0 AS ticked \gset
SELECT pgq.next_batch('checkout_orders', 'warehouse') AS batch \gset
CREATE TEMP TABLE got AS
	SELECT ev_type, ev_extra2::bigint AS order_id FROM pgq.get_batch_events(:batch);
SELECT (SELECT count(*) FROM orders AS o
		 WHERE NOT EXISTS (SELECT FROM got AS g WHERE g.order_id = o.id AND g.ev_type = 'placed'))
	   || ' ' || (SELECT count(*) FROM got WHERE ev_type = 'placed')
	   || ' ' || (SELECT count(*) FROM orders);
SELECT pgq.finish_batch(:batch) AS finished \gset
SQL
)
set -- $events
check "every order's placed event reached the consumer from the new primary, once (${1:-?} missing, ${2:-?} events, ${3:-?} orders)" \
	test "${1:-x}" = 0 -a "${2:-x}" = "${3:-y}" -a "${3:-0}" -gt 0

# The old primary rejoins as a standby
run_node node1
check "the old primary rejoins as a standby" wait_for "node1 .*secondary *\| *secondary" 120
state
echo "failover: $passed passed, $failed failed"
exit "$failed"
