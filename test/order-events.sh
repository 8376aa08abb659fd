#!/bin/sh
# Order events to a webhook (examples/order-events, make test, in a cluster
# of pg_virtualenv named "regress" with wal_level = logical and
# max_connections = 400): install the example's packages from the committed
# lockfile (npm ci) and run its unit tests; then, for each source, pgq and
# logical, in a shop database of its own with checkout.events set to it,
# run the example's consumer and receiver (node) and PgQ's ticker (pgqd)
# while the shop sells:
#
#  0. a few orders placed, paid and cancelled;
#  1. the consumer killed with SIGKILL in the middle of a batch (a
#     transaction of 40 orders, the receiver answering slowly), then started
#     again: it sends the unacknowledged batch again;
#  2. the receiver down for 10 s while orders keep coming: the consumer
#     retries each failed delivery, nothing is lost, nothing sent twice;
#  3. the server stopped with -m immediate mid-stream, then started: the
#     consumer reconnects and carries on;
#  4. a checkout rolled back: no event for it;
#  5. a crowd of 300 buyers on 100 units (tools/flashsale): exactly 100
#     placed events for the product.
#
# After each step the test waits (polling) until the receiver has every
# event of the committed orders and the consumer has acknowledged them
# (PgQ: its last finished tick sees the test's last transaction; logical:
# the slot's confirmed position is past a marker message written after the
# step).  Then, from the receiver's record of every delivery: one placed
# event per order, a paid or cancelled one for each order paid or
# cancelled, nothing else; each order's events in the order of their event
# ids; each placed event as its order; every Idempotency-Key the event id;
# repeats only in the steps with a crash (1 and 3), all dropped by the
# receiver.  Every process started here is stopped on exit.  Prints
# "check:" lines; exits non-zero when one failed.
set -u
cd "$(dirname "$0")/.." || exit 1
. test/lib.sh
tmp=$(mktemp -d)
example=examples/order-events
cluster="${PGVERSION:-15} regress"
# below Linux's ephemeral range (32768-60999): no client connection holds it
port=${CHECKOUT_RECEIVER_PORT:-28787}
webhook="http://127.0.0.1:$port/order-events"
queue=checkout_orders
consumer_name=order_events_webhook
slot=checkout_events

# the processes this script started, stopped by stop_processes
pgqd_pid='' receiver_pid='' consumer_pid='' stream_pid=''
stop_processes() {
	for p in $stream_pid $consumer_pid $receiver_pid $pgqd_pid; do kill "$p" 2>/dev/null; done
	for p in $stream_pid $consumer_pid $receiver_pid $pgqd_pid; do wait "$p" 2>/dev/null; done
	pgqd_pid='' receiver_pid='' consumer_pid='' stream_pid=''
}
trap 'stop_processes; rm -rf "$tmp"' EXIT

check "npm ci in $example (the committed lockfile)" \
	sh -c "cd $example && npm ci --no-audit --no-fund --loglevel=error" || exit 1
check "the example's unit tests (npm test: pgoutput's messages, the receiver, the retries)" \
	sh -c "cd $example && npm test >'$tmp/units.log' 2>&1" || grep -E '^ *not ok|^# (pass|fail)' "$tmp/units.log"
[ -x tools/flashsale ] || make -s -C tools >/dev/null || exit 1

# q SQL...: run SQL in the shop database $db, print the rows unaligned
q() {
	_sql=$1
	shift
	psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$_sql" "$@"
}
# wait_until SECONDS COMMAND...: true once COMMAND is (polled every 0.1 s),
# false when SECONDS passed first
wait_until() {
	_deadline=$(($(date +%s) + $1))
	shift
	until "$@"; do
		[ "$(date +%s)" -ge "$_deadline" ] && return 1
		sleep 0.1
	done
}
# count PATTERN FILE: lines of FILE with PATTERN (0 when none or no file)
count() {
	grep -c -- "$1" "$2" 2>/dev/null || true
}
# The receiver's record: events received (first deliveries) and repeats
received() { count '"repeat":false' "$deliveries"; }
repeats() { count '"repeat":true' "$deliveries"; }
received_at_least() { [ "$(received)" -ge "$1" ]; }
orders_at_least() { [ "$(q "SELECT count(*) FROM orders" 2>/dev/null)" -ge "$1" ] 2>/dev/null; }
connected_at_least() { [ "$(count 'database connected' "$consumer_log")" -ge "$1" ]; }
# alive PID: PID runs (and is no zombie)
alive() {
	_state=$(ps -o stat= -p "$1" 2>/dev/null)
	[ -n "$_state" ] && [ "${_state#Z}" = "$_state" ]
}
# How many events the committed orders must have produced: a placed one
# each, a paid one for each paid, a cancelled one for each cancelled
expected_events() {
	q "SELECT count(*) + count(paid_at) + count(cancelled_at) FROM orders"
}

start_receiver() {
	node $example/src/receiver.js --port "$port" --log "$deliveries" >>"$tmp/$source-receiver.log" 2>&1 &
	receiver_pid=$!
	wait_until 10 curl -fs -o /dev/null "http://127.0.0.1:$port/stats"
}
stop_receiver() {
	kill "$receiver_pid"
	wait "$receiver_pid"
	receiver_pid=
}
# receiver_delay MS: the receiver waits MS before answering each event
receiver_delay() {
	curl -fsS -o /dev/null -X PUT --data "$1" "http://127.0.0.1:$port/delay"
}
start_consumer() {
	_connected=$(count 'database connected' "$consumer_log")
	DATABASE_URL="postgresql://${PGUSER:-postgres}:${PGPASSWORD:-}@${PGHOST:-localhost}:${PGPORT:-5432}/$db" \
		WEBHOOK_URL=$webhook node $example/src/consumer.js --source "$source" --poll-ms 100 \
		>>"$consumer_log" 2>&1 &
	consumer_pid=$!
	wait_until 20 connected_at_least $((_connected + 1))
}

# PgQ's ticker, pgqd, for the pgq shop, ticking every 0.1 s.  pgqd waits
# 60 s before it connects again after losing its connection; after the
# server's restart the test starts it again instead of waiting.
start_ticker() {
	cat >"$tmp/pgqd.ini" <<INI
[pgqd]
logfile = $tmp/pgqd.log
pidfile = $tmp/pgqd.pid
initial_database = postgres
database_list = $db
ticker_period = 0.1
syslog = 0
INI
	pgqd -q "$tmp/pgqd.ini" >>"$tmp/pgqd.log" 2>&1 &
	pgqd_pid=$!
}
stop_ticker() {
	kill "$pgqd_pid"
	wait "$pgqd_pid"
	pgqd_pid=
}

# caught_up: true once the consumer has acknowledged everything committed
# before the call of settle (which sets $mark)
caught_up() {
	if [ "$source" = pgq ]; then
		[ "$(q "SELECT txid_visible_in_snapshot($mark, t.tick_snapshot)
		          FROM pgq.subscription s
		          JOIN pgq.consumer c ON c.co_id = s.sub_consumer
		          JOIN pgq.queue u ON u.queue_id = s.sub_queue
		          JOIN pgq.tick t ON t.tick_queue = s.sub_queue AND t.tick_id = s.sub_last_tick
		         WHERE u.queue_name = '$queue' AND c.co_name = '$consumer_name'" 2>/dev/null)" = t ]
	else
		[ "$(q "SELECT confirmed_flush_lsn > '$mark' FROM pg_replication_slots
		         WHERE slot_name = '$slot'" 2>/dev/null)" = t ]
	fi
}
delivered_and_acknowledged() {
	received_at_least "$expected" && caught_up
}
# settle: wait until the receiver has every event of the committed orders
# and the consumer acknowledged them (at most 20 s); false when it did not
settle() {
	expected=$(expected_events)
	if [ "$source" = pgq ]; then
		# a transaction after everything else: its end is in a tick's snapshot
		mark=$(q "SELECT txid_current()")
	else
		# a transactional message with another prefix, after everything else
		mark=$(q "SELECT pg_logical_emit_message(true, 'checkout.test.mark', '')")
	fi
	wait_until 20 delivered_and_acknowledged
}

# scenario SOURCE: the five steps and the checks for checkout.events = SOURCE
scenario() {
	source=$1
	db=order_events_$source
	deliveries=$tmp/$source-deliveries.jsonl
	consumer_log=$tmp/$source-consumer.log
	stop_processes
	failed_before=$failed
	: >"$deliveries"
	: >"$consumer_log"

	if [ "$source" = pgq ]; then
		new_db "$db" checkout pgq || return 1
		sql "$db" "SELECT shop_events_create_queue('$queue')" \
			"SELECT pgq.set_queue_config('$queue', 'ticker_max_lag', '0.1 seconds')" \
			"SELECT pgq.set_queue_config('$queue', 'ticker_idle_period', '0.5 seconds')" >/dev/null || return 1
		start_ticker
	else
		new_db "$db" checkout || return 1
		sql "$db" "CREATE PUBLICATION $slot" \
			"SELECT pg_create_logical_replication_slot('$slot', 'pgoutput')" >/dev/null || return 1
	fi
	sql "$db" "ALTER DATABASE $db SET checkout.events = $source" \
		"INSERT INTO products (name, price_cents, stock) VALUES ('Widget', 1250, 100000)" \
		"CREATE FUNCTION buy(key text DEFAULT NULL) RETURNS bigint LANGUAGE plpgsql AS \$\$
		 DECLARE c bigint;
		 BEGIN
			INSERT INTO customers (name) VALUES ('buyer') RETURNING id INTO c;
			INSERT INTO cart_items (customer_id, product_id, quantity)
			SELECT c, p.id, 1 + c % 3 FROM products AS p WHERE p.name = 'Widget';
			RETURN shop_checkout(c, key);
		 END \$\$" || return 1

	start_receiver || { echo "the receiver did not start"; return 1; }
	start_consumer || { cat "$consumer_log"; echo "the consumer did not connect"; return 1; }

	# 0. Events flow: placed, paid, cancelled
	q "SELECT count(buy()) FROM generate_series(1, 5)" >/dev/null
	q "SELECT shop_pay(id, 'pay-' || id) FROM orders ORDER BY id LIMIT 2" >/dev/null
	q "SELECT shop_cancel_order(id, 'changed my mind') FROM orders WHERE status = 'placed'
	    ORDER BY id DESC LIMIT 1" >/dev/null
	settle
	ok=$?
	verdict=false
	[ "$ok" -eq 0 ] && [ "$(received)" -eq 8 ] && verdict=true
	check "$source: 5 orders placed, 2 paid, 1 cancelled: $(received) of 8 events delivered and acknowledged" "$verdict"
	repeats_0=$(repeats)

	# 1. The consumer killed with SIGKILL mid-batch: 40 orders in one
	# transaction (one batch), the receiver taking 50 ms an event
	before=$(received)
	receiver_delay 50
	q "SELECT count(buy()) FROM generate_series(1, 40)" >/dev/null
	wait_until 20 received_at_least $((before + 5))
	kill -9 "$consumer_pid"
	wait "$consumer_pid" 2>/dev/null
	at_kill=$(($(received) - before))
	receiver_delay 0
	start_consumer
	settle
	ok=$?
	repeats_1=$(($(repeats) - repeats_0))
	verdict=false
	[ "$ok" -eq 0 ] && [ "$at_kill" -ge 5 ] && [ "$at_kill" -lt 40 ] && [ "$repeats_1" -gt 0 ] &&
		[ $(($(received) - before)) -eq 40 ] && verdict=true
	check "$source: consumer killed (SIGKILL) after $at_kill of a batch's 40 events, started again: the batch sent again ($repeats_1 repeats dropped), all 40 delivered" "$verdict"

	# 2. The receiver down for 10 s while orders come (the one deliberate wait)
	before=$(received)
	expected_before=$(expected_events)
	retried_before=$(count 'delivery failed' "$consumer_log")
	stop_receiver
	i=0
	while [ $i -lt 10 ]; do
		q "SELECT buy()" -c "SELECT shop_pay(max(id), 'pay-down-$i') FROM orders WHERE status = 'placed'" >/dev/null
		sleep 1
		i=$((i + 1))
	done
	retried=$(($(count 'delivery failed' "$consumer_log") - retried_before))
	start_receiver
	settle
	ok=$?
	made=$((expected - expected_before))
	repeats_2=$(($(repeats) - repeats_0 - repeats_1))
	verdict=false
	[ "$ok" -eq 0 ] && [ "$retried" -gt 0 ] && [ "$made" -eq 20 ] &&
		[ $(($(received) - before)) -eq "$made" ] && [ "$repeats_2" -eq 0 ] && verdict=true
	check "$source: receiver down 10 s while $made events were made: $retried failed deliveries retried, then all $made delivered, none twice" "$verdict"

	# 3. The server stopped with -m immediate mid-stream, then started:
	# checkouts and payments, one transaction each, before, during (they
	# fail) and after
	before=$(received)
	expected_before=$(expected_events)
	reconnected_before=$(count 'connected again' "$consumer_log")
	rm -f "$tmp/stop"
	receiver_delay 10
	(
		while [ ! -e "$tmp/stop" ]; do
			psql -X -q -At -d "$db" -c "SELECT buy()" \
				-c "SELECT shop_pay(max(id), 'pay-stream') FROM orders WHERE status = 'placed'" \
				>/dev/null 2>&1 || sleep 0.1
		done
	) &
	stream_pid=$!
	wait_until 20 received_at_least $((before + 10))
	at_stop=$(($(received) - before))
	# shellcheck disable=SC2086
	pg_ctlcluster $cluster stop -m immediate
	# shellcheck disable=SC2086
	pg_ctlcluster $cluster start
	if [ "$source" = pgq ]; then
		stop_ticker
		start_ticker
	fi
	orders_at_start=$(q "SELECT count(*) FROM orders")
	wait_until 20 orders_at_least $((orders_at_start + 10))
	touch "$tmp/stop"
	wait "$stream_pid"
	stream_pid=
	receiver_delay 0
	settle
	ok=$?
	made=$((expected - expected_before))
	reconnected=$(($(count 'connected again' "$consumer_log") - reconnected_before))
	repeats_3=$(($(repeats) - repeats_0 - repeats_1 - repeats_2))
	verdict=false
	[ "$ok" -eq 0 ] && [ "$reconnected" -gt 0 ] && [ "$at_stop" -ge 10 ] &&
		[ $(($(received) - before)) -eq "$made" ] && verdict=true
	check "$source: server stopped (-m immediate) after $at_stop events of a stream: the consumer connected again, all $made events of the committed changes delivered ($repeats_3 repeats dropped)" "$verdict"

	# 4. A checkout rolled back: no event; the next one's come
	rolled=$(q "BEGIN" -c "SELECT buy('rolled-back')" -c "ROLLBACK")
	q "SELECT buy('after-the-rollback')" >/dev/null
	settle
	ok=$?
	repeats_4=$(($(repeats) - repeats_0 - repeats_1 - repeats_2 - repeats_3))
	verdict=false
	[ "$ok" -eq 0 ] && [ -n "$rolled" ] &&
		[ "$(count "\"order_id\":$rolled," "$deliveries")" -eq 0 ] &&
		[ "$(count "\"idempotency_key\":\"rolled-back\"" "$deliveries")" -eq 0 ] &&
		[ "$(count "\"idempotency_key\":\"after-the-rollback\"" "$deliveries")" -eq 1 ] &&
		[ "$repeats_4" -eq 0 ] && verdict=true
	check "$source: a checkout rolled back (order $rolled): no event for it, the next checkout's delivered" "$verdict"

	# 5. A crowd: 300 buyers at once on 100 units
	tools/flashsale -q -d "$db" --buyers 300 --stock 100 -c 300 --name "Crowd $source" \
		--expect-orders 100 >"$tmp/$source-crowd.log" 2>&1
	crowd=$?
	settle
	ok=$?
	repeats_5=$(($(repeats) - repeats_0 - repeats_1 - repeats_2 - repeats_3 - repeats_4))

	# What the receiver got, as rows
	sql "$db" "CREATE TABLE test_deliveries (doc jsonb)" \
		"\\copy test_deliveries FROM '$deliveries' WITH (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02')" || return 1
	firsts="SELECT (doc->>'n')::integer AS n, (doc->>'event_id')::bigint AS event_id,
	               doc->>'kind' AS kind, (doc->>'order_id')::bigint AS order_id, doc->'event' AS event
	          FROM test_deliveries WHERE NOT (doc->>'repeat')::boolean"

	placed_crowd=$(q "SELECT count(*) FROM ($firsts) AS d
	                   WHERE d.kind = 'placed' AND d.event->'lines' @> jsonb_build_array(jsonb_build_object(
	                         'product_id', (SELECT id FROM products WHERE name = 'Crowd $source')))")
	verdict=false
	[ "$crowd" -eq 0 ] && [ "$ok" -eq 0 ] && [ "$placed_crowd" -eq 100 ] && [ "$repeats_5" -eq 0 ] && verdict=true
	check "$source: a crowd of 300 buyers on 100 units (flashsale exit $crowd): exactly $placed_crowd placed events for it" "$verdict"

	# shellcheck disable=SC2046
	set -- $(q "WITH d AS ($firsts),
	            e AS (SELECT id AS order_id, 'placed' AS kind FROM orders
	                  UNION ALL SELECT id, 'paid' FROM orders WHERE paid_at IS NOT NULL
	                  UNION ALL SELECT id, 'cancelled' FROM orders WHERE cancelled_at IS NOT NULL)
	            SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM e),
	                   (SELECT count(*) FROM (SELECT order_id, kind FROM e
	                                          EXCEPT ALL SELECT order_id, kind FROM d) AS missing),
	                   (SELECT count(*) FROM (SELECT order_id, kind FROM d
	                                          EXCEPT ALL SELECT order_id, kind FROM e) AS extra)" -F ' ')
	orders=${1:-?} events=${2:-?} missing=${3:-?} extra=${4:-?}
	verdict=false
	[ "$missing" -eq 0 ] && [ "$extra" -eq 0 ] && [ "$events" -eq "$(received)" ] && verdict=true
	check "$source: every committed order's events delivered: $events events of $orders orders (one placed each, paid and cancelled as the orders table says), $missing missing, $extra not of a committed change" "$verdict"

	disorder=$(q "SELECT count(*) FROM (
	                SELECT event_id, kind,
	                       lag(event_id) OVER w AS previous_id, row_number() OVER w AS nth
	                  FROM ($firsts) AS d WINDOW w AS (PARTITION BY order_id ORDER BY n)) AS x
	               WHERE previous_id >= event_id OR (nth = 1) <> (kind = 'placed')")
	check "$source: each order's events delivered in the order of its changes (placed first, event ids increasing): $disorder out of order" \
		[ "$disorder" -eq 0 ]

	unlike=$(q "SELECT count(*) FROM ($firsts) AS d JOIN orders AS o ON o.id = d.order_id
	             WHERE d.kind = 'placed'
	               AND ((d.event->>'customer_id')::bigint <> o.customer_id
	                    OR (d.event->>'total_cents')::bigint <> o.total_cents
	                    OR (SELECT array_agg((l->>'product_id') || ':' || (l->>'quantity')
	                                         ORDER BY (l->>'product_id')::bigint)
	                          FROM jsonb_array_elements(d.event->'lines') AS l)
	                       <> (SELECT array_agg(i.product_id || ':' || i.quantity ORDER BY i.product_id)
	                             FROM order_items AS i WHERE i.order_id = o.id))")
	check "$source: each placed event has its order's customer, total and lines: $unlike differ" \
		[ "$unlike" -eq 0 ]

	bad_keys=$(q "SELECT count(*) FROM test_deliveries
	               WHERE doc->>'idempotency_key' IS DISTINCT FROM doc->>'event_id'
	                  OR doc->>'event_id' IS DISTINCT FROM doc->'event'->>'event_id'")
	twice=$(q "SELECT count(*) - count(DISTINCT event_id) FROM ($firsts) AS d")
	verdict=false
	[ "$bad_keys" -eq 0 ] && [ "$twice" -eq 0 ] && verdict=true
	check "$source: every delivery's Idempotency-Key is its event id, no event received as new twice ($bad_keys bad keys, $twice twice)" "$verdict"

	verdict=false
	[ "$repeats_0" -eq 0 ] && [ "$repeats_2" -eq 0 ] && [ "$repeats_4" -eq 0 ] && [ "$repeats_5" -eq 0 ] && verdict=true
	check "$source: repeats only after a crash, each dropped by the receiver: $repeats_0, $repeats_1 (consumer killed), $repeats_2, $repeats_3 (server stopped), $repeats_4, $repeats_5 in steps 0-5" "$verdict"

	check "$source: the consumer never exited on its own (one line per batch: $(count '; acknowledged$' "$consumer_log") batches)" \
		alive "$consumer_pid"

	if [ "$failed" -gt "$failed_before" ]; then
		echo "--- the end of the $source consumer's log:"
		tail -n 30 "$consumer_log"
	fi
	stop_processes
	if [ "$source" = logical ]; then
		sql "$db" "SELECT pg_drop_replication_slot('$slot')" >/dev/null
	fi
}

started=$(date +%s)
scenario pgq || check "pgq: the shop and its consumer set up" false
scenario logical || check "logical: the shop and its consumer set up" false
echo "order events: $passed passed, $failed failed in $(($(date +%s) - started)) s"
[ "$failed" -eq 0 ]
