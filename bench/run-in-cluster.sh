#!/bin/sh
# make bench, inside the throwaway cluster that bench/run.sh starts: measure
# shop_checkout() side by side with the flows it replaces, over the same
# workloads, and print and save the table and the ratios.
#
# Each figure is the median of BENCH_ROUNDS (default 3) runs of BENCH_SECONDS
# (default 8) seconds, after a warm-up run of each flow; rounds are
# interleaved (every flow of a workload runs once per round), so drift of the
# machine hits all flows alike.
set -eu
cd "$(dirname "$0")/.."

seconds=${BENCH_SECONDS:-8}
rounds=${BENCH_ROUNDS:-3}
warmup=${BENCH_WARMUP_SECONDS:-2}
results=${BENCH_RESULTS:-bench/results/$(date -u +%Y-%m-%d).md}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
raw=$tmp/raw
: >"$raw"

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'CREATE DATABASE bench'
export PGDATABASE=bench
psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION checkout'
psql -X -q -v ON_ERROR_STOP=1 -f bench/setup.sql >/dev/null
# Vouchers (1.2): BENCH10, 10% off, limited far above what a run sells;
# USEDUP, limited to the one use customer 10201 makes of it here
psql -X -q -v ON_ERROR_STOP=1 \
	-c "SELECT shop_add_voucher_code(shop_create_voucher('bench', percent_off => 10,
														  usage_limit => 2000000000), 'BENCH10')" \
	-c "SELECT shop_add_voucher_code(shop_create_voucher('used up', percent_off => 10,
														  usage_limit => 1), 'USEDUP')" \
	-c "INSERT INTO cart_items VALUES (10201, 3, 1)" \
	-c "SELECT shop_checkout(10201, NULL, 'USEDUP')" \
	-c "CREATE FUNCTION bench.try_voucher_checkout(customer_id bigint, code text)
		RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
		AS \$\$ BEGIN
			RETURN public.shop_checkout(customer_id, NULL, code);
		EXCEPTION WHEN SQLSTATE 'SH010' THEN RETURN NULL;
		END \$\$" >/dev/null

# reset_state SLOTS PREFILL [LIMIT [LOCATED]]: put the tables back as they
# were (the order history and the idle carts only, full stock, no
# idempotency key), with the hot product's stock split into SLOTS slots (0:
# none), a purchase limit of LIMIT on it (0: none), and, when PREFILL is a
# product id, every bench customer's cart holding one of it; LOCATED
# "after" or "before": the hot product also stocked in a second location,
# preferred after the default or before it
reset_state() {
	psql -X -q -v ON_ERROR_STOP=1 \
		-c 'DELETE FROM orders WHERE id > 50000' \
		-c 'DELETE FROM location_stock' \
		-c "UPDATE locations SET priority = CASE '${4:-}' WHEN 'before' THEN -1 ELSE 1 END
			 WHERE name = 'bench second'" \
		-c "INSERT INTO location_stock
			SELECT 1, id, 1000000000 FROM locations
			 WHERE name = 'bench second' AND '${4:-}' IN ('after', 'before')" \
		-c 'DELETE FROM cart_items WHERE customer_id <= 200 OR customer_id > 10200' \
		-c "SELECT shop_set_purchase_limit(1, NULLIF(${3:-0}, 0))" \
		-c 'SELECT shop_merge_stock(1)' \
		-c 'UPDATE products SET stock = 1000000000 WHERE id <> 2 AND stock <> 1000000000' \
		-c "SELECT shop_split_stock(1, $1) WHERE $1 > 0" \
		-c "INSERT INTO cart_items SELECT g, $2, 1 FROM generate_series(1, 200) AS g WHERE $2 > 0" \
		-c 'VACUUM ANALYZE products, stock_slots, cart_items, orders, order_items, idempotency_keys' >/dev/null
	[ "${BENCH_CHECKPOINT:-0}" = 1 ] && psql -X -q -c 'CHECKPOINT'
	return 0
}

# measure WORKLOAD FLOW SCRIPT OPTIONS SLOTS CLIENTS PID_MIN PID_MAX SECONDS ROUND
# One pgbench run, its sessions started with PGOPTIONS plus OPTIONS (e.g.
# "-c checkout.queue_locks=off"), the hot product split into SLOTS slots;
# appends "workload flow round tps p99_ms" to $raw unless ROUND is "warmup".
# Workload settings: $add_to_cart (0: the carts are filled beforehand with
# product PID_MIN and the flows only check out) and $sampling (the share of
# transactions whose latency is logged, for the p99).
measure() {
	workload=$1 flow=$2 script=$3 options=$4 slots=$5 clients=$6 pid_min=$7 pid_max=$8 secs=$9 round=${10}
	threads=2
	[ "$clients" -lt 2 ] && threads=1
	prefill=0
	[ "$add_to_cart" = 0 ] && prefill=$pid_min
	reset_state "$slots" "$prefill" "$limit" "$located"
	rm -f "$tmp"/log*
	# "pooled" flows go through pgbouncer (unnamed statements: transaction pooling)
	target="-M prepared"
	case $flow in
		pooled*) target="-M extended -h 127.0.0.1 -p $PGBOUNCER_PORT" ;;
	esac
	# shellcheck disable=SC2086
	if ! PGOPTIONS="${PGOPTIONS:-} $options" pgbench -n $target -c "$clients" -j "$threads" -T "$secs" \
		-D pid_min="$pid_min" -D pid_max="$pid_max" -D add_to_cart="$add_to_cart" -D clients="$clients" \
		-f "bench/flows/$script.sql" -l --sampling-rate="$sampling" --log-prefix="$tmp/log" \
		>"$tmp/out" 2>&1 || grep -q 'aborted' "$tmp/out"; then
		cat "$tmp/out" >&2
		echo "bench: pgbench failed for $workload / $flow" >&2
		exit 1
	fi
	[ "$round" = warmup ] && return 0
	tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$tmp/out" | head -n 1)
	if [ -z "$tps" ] || ! ls "$tmp"/log* >/dev/null 2>&1; then
		cat "$tmp/out" >&2
		echo "bench: no transaction completed for $workload / $flow in $secs s; raise BENCH_SECONDS" >&2
		exit 1
	fi
	p99=$(cat "$tmp"/log* | awk '{print $3}' | sort -n |
		awk '{v[NR] = $1} END {r = int(NR * 0.99 + 0.999999); if (r < 1) r = 1; printf "%.2f", v[r] / 1000}')
	echo "$workload $flow $round $tps $p99" >>"$raw"
	printf '  %-12s %-14s round %s: %8.0f tps, p99 %7.2f ms\n' "$workload" "$flow" "$round" "$tps" "$p99"
}

# split_flow "FLOW|SCRIPT[|OPTIONS[|SLOTS[|LIMIT[|LOCATED]]]]": set $flow,
# $script, $options, $slots, $limit (the hot product's purchase limit, 0:
# none) and $located (reset_state's)
split_flow() {
	flow=${1%%|*}
	script=${1#*|}
	options=
	slots=0
	limit=0
	located=
	case $script in
		*"|"*) options=${script#*|} script=${script%%|*} ;;
	esac
	case $options in
		*"|"*) slots=${options#*|} options=${options%%|*} ;;
	esac
	case $slots in
		*"|"*) limit=${slots#*|} slots=${slots%%|*} ;;
	esac
	case $limit in
		*"|"*) located=${limit#*|} limit=${limit%%|*} ;;
	esac
}

# workload NAME CLIENTS PID_MIN PID_MAX FLOW|SCRIPT[|OPTIONS]...
workload() {
	name=$1 clients=$2 pid_min=$3 pid_max=$4
	shift 4
	case " $BENCH_WORKLOADS " in
		*" $name "*|"  ") ;;
		*) return 0 ;;
	esac
	echo "$name: $clients client(s), products $pid_min..$pid_max${PGOPTIONS:+, $PGOPTIONS}"
	for fs in "$@"; do
		split_flow "$fs"
		measure "$name" "$flow" "$script" "$options" "$slots" "$clients" "$pid_min" "$pid_max" "$warmup" warmup
	done
	r=1
	while [ "$r" -le "$rounds" ]; do
		for fs in "$@"; do
			split_flow "$fs"
			measure "$name" "$flow" "$script" "$options" "$slots" "$clients" "$pid_min" "$pid_max" "$seconds" "$r"
		done
		r=$((r + 1))
	done
}

# BENCH_WORKLOADS="hot-32 soldout-32" runs only those; BENCH_LEVERS=1 adds
# shop_checkout with each of its levers turned off, to see what each pays.
# BENCH_SLOTS (default 64): the slots shop_checkout's hot product is split
# into (shop_split_stock); the other flows sell it from its row, as they must.
BENCH_WORKLOADS=${BENCH_WORKLOADS:-}
hot_slots=${BENCH_SLOTS:-64}
add_to_cart=1
sampling=1
shop="shop_checkout|c||$hot_slots"
seed="client-side|client" plpgsql="plpgsql|plpgsql" bare="bare_update|bare_update"
if [ "${BENCH_LEVERS:-0}" = 1 ]; then
	noslots="shop_checkout-noslots|c"
	noqueue="shop_checkout-noslots-noqueue|c|-c checkout.queue_locks=off"
	nofailfast="shop_checkout-nofailfast|c_try|-c checkout.fail_fast=off"
	workload hot-1 1 1 1 "$shop" "$seed" "$plpgsql" "$bare" "$noslots"
	workload hot-32 32 1 1 "$shop" "$seed" "$plpgsql" "$bare" "$noslots" "$noqueue"
	workload hot-128 128 1 1 "$shop" "$seed" "$plpgsql" "$bare" "$noslots" "$noqueue"
else
	nofailfast=
	workload hot-1 1 1 1 "$shop" "$seed" "$plpgsql" "$bare"
	workload hot-32 32 1 1 "$shop" "$seed" "$plpgsql" "$bare"
	workload hot-128 128 1 1 "$shop" "$seed" "$plpgsql" "$bare"
fi

# The sold-out rush: every buyer's cart already holds the sold-out product
# (a rejected checkout leaves the cart as it was), and each flow only checks
# out; the latency of one in ten attempts is logged
add_to_cart=0 sampling=0.1
workload soldout-32 32 2 2 "shop_checkout|c_try" "client-side|client" \
	"plpgsql|plpgsql_try" "bare_update|bare_update" ${nofailfast:+"$nofailfast"}
add_to_cart=1 sampling=1

# No hot product: 32 and 128 buyers spread over 1,000 products (at 128, the
# most this machine does with no row contention at all)
workload spread-32 32 3 1002 "shop_checkout|c" "$seed" "$plpgsql" "$bare"
workload spread-128 128 3 1002 "shop_checkout|c" "$seed"
PGOPTIONS="-c synchronous_commit=off" workload cpu-1line 1 3 1002 \
	"shop_checkout|c" "$seed" "$plpgsql" "$bare"
PGOPTIONS="-c synchronous_commit=off" workload cpu-50line 1 3 1002 \
	"shop_checkout|c_50" "plpgsql|plpgsql_50"

# The payment flow: a checkout with an idempotency key of a product under a
# purchase limit (keyed_limited) against a plain one, the same crowd of
# 100,000 buyers on the hot product (in slots), at 1, 32 and 128 clients
plain="shop_checkout|c_fresh||$hot_slots" keyed="keyed_limited|c_key_limit||$hot_slots|1000000"
workload pay-1 1 1 1 "$plain" "$keyed"
workload pay-32 32 1 1 "$plain" "$keyed"
workload pay-128 128 1 1 "$plain" "$keyed"

# Vouchers: the keyed checkout of the hot product (in slots) by the crowd,
# with and without the code of one voucher every buyer types; and, as the
# sold-out rush, rejections once a voucher is used up (SH010) against
# rejections of the sold-out product (SH001), both from carts that hold
# one line, the handler turning the error into NULL
key="keyed|c_key||$hot_slots" voucher="voucher|c_key_voucher||$hot_slots"
workload voucher-1 1 1 1 "$key" "$voucher"
workload voucher-32 32 1 1 "$key" "$voucher"
workload voucher-128 128 1 1 "$key" "$voucher"
add_to_cart=1 sampling=0.1
workload usedup-32 32 2 2 "soldout|c_try" "usedup|c_try_usedup||$hot_slots"
sampling=1

# Order events (1.3): the same checkouts with checkout.events off, to PgQ
# (a queue with one registered consumer, no ticker: the insert is what a
# checkout pays) and as logical decoding messages (wal_level = logical; no
# slot is read meanwhile: decoding is the consumer's cost, not the
# checkout's): the hot product (in slots) at 1, 32 and 128 clients, and the
# CPU path (one client, synchronous_commit=off, the spread catalog)
case " $BENCH_WORKLOADS " in
	*" events-"*|"  ")
		psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION IF NOT EXISTS pgq' \
			-c 'SELECT shop_events_create_queue()' \
			-c "SELECT pgq.register_consumer('checkout_orders', 'bench')" >/dev/null
		PGOPTIONS="-c synchronous_commit=off" workload events-cpu 1 3 1002 "events_off|c" \
			"events_pgq|c|-c checkout.events=pgq" "events_logical|c|-c checkout.events=logical"
		for n in 1 32 128; do
			workload "events-$n" "$n" 1 1 "events_off|c||$hot_slots" \
				"events_pgq|c|-c checkout.events=pgq|$hot_slots" \
				"events_logical|c|-c checkout.events=logical|$hot_slots"
		done
		;;
esac

# The crowd through a pooler: the hot product (in slots) bought by 32, 128,
# 1,000 and 10,000 buyers, each a connection, directly and through pgbouncer
# in transaction pooling mode with 8 server connections (4x the cores).
# Directly, a crowd past max_connections cannot connect at all: not run.
case " $BENCH_WORKLOADS " in
	*" crowd-"*|"  ")
		. test/lib.sh
		start_pgbouncer bench 8
		trap 'stop_pgbouncer; rm -rf "$tmp"' EXIT
		max_conn=$(psql -X -At -c 'SHOW max_connections')
		pooled="pooled|c_fresh||$hot_slots"
		for n in 32 128 1000 10000; do
			if [ "$n" -lt "$((max_conn - 10))" ]; then
				workload "crowd-$n" "$n" 1 1 "$plain" "$pooled"
			else
				workload "crowd-$n" "$n" 1 1 "$pooled"
			fi
		done
		;;
esac

# The sold-out rush must have rejected every attempt
sold=$(psql -X -At -c 'SELECT count(*) FROM order_items WHERE product_id = 2')
[ "$sold" -eq 0 ] || { echo "bench: the sold-out product was sold $sold times" >&2; exit 1; }

# A sustained sale: BENCH_SUSTAINED_SECONDS (default 60) of 128 buyers with
# keys on the hot product, no VACUUM meanwhile, throughput every 5 s
sustained=${BENCH_SUSTAINED_SECONDS:-60}
case " $BENCH_WORKLOADS " in
	*" sustained-128 "*|"  ")
		echo "sustained-128: 128 clients, $sustained s, keys and a purchase limit"
		reset_state "$hot_slots" 0 1000000
		pgbench -n -M prepared -c 128 -j 2 -T "$sustained" -P 5 -D pid_min=1 -D pid_max=1 -D clients=128 \
			-f bench/flows/c_key_limit.sql >"$tmp/sustained.out" 2>&1 ||
			{ cat "$tmp/sustained.out" >&2; echo "bench: the sustained sale failed" >&2; exit 1; }
		grep '^progress' "$tmp/sustained.out" >"$tmp/sustained"
		keys=$(psql -X -At -c 'SELECT count(*) FROM idempotency_keys')
		echo "$keys keys at the end" >>"$tmp/sustained"
		cat "$tmp/sustained"
		;;
esac

# Locations (1.2), last: once location_stock has had a row, every checkout
# of the shop asks which of its products are stocked elsewhere.  The hot
# product (in slots) bought by 32 and 128 clients, stocked in the default
# location only (but the shop has another), in a second location too that
# the default is preferred to (its checkouts take one slot as before), and
# in a second location preferred to the default (each checkout locks the
# product's row, its slots and its locations)
case " $BENCH_WORKLOADS " in
	*" located-"*|"  ")
		psql -X -q -v ON_ERROR_STOP=1 -c "SELECT shop_create_location('bench second', 1)" >/dev/null
		for n in 32 128; do
			workload "located-$n" "$n" 1 1 "shop_checkout|c||$hot_slots|0|none" \
				"located_after|c||$hot_slots|0|after" "located_before|c||$hot_slots|0|before"
		done
		;;
esac

sh bench/report.sh "$raw" "$seconds" "$rounds" "$tmp/sustained" >"$tmp/report"
mkdir -p "$(dirname "$results")"
cat "$tmp/report" >"$results"

# Every release beside the current code (BENCH_WORKLOADS="releases": only
# that), appended to the report
case " $BENCH_WORKLOADS " in
	*" releases "*|"  ") BENCH_RESULTS=$tmp/report sh bench/releases.sh ;;
esac
cat "$tmp/report" >"$results"
echo
cat "$tmp/report"
echo
echo "bench: written to $results"
# its figures as PNG charts beside it (gnuplot, make setup installs it)
sh bench/plot.sh "$results" | sed 's/^/bench: drawn /'
