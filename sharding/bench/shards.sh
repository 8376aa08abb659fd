#!/bin/sh
# make bench, the sharded shop (docs/scale-out.md): what the proxy hop costs
# and what a pull costs, in one run, on a proxy and two shard clusters of
# this machine with durable commit (fsync, synchronous_commit on).
#
#   direct-N  N clients check out on shard 0 directly (shop_checkout)
#   proxy-N   the same checkouts through the proxy (PL/Proxy, one hop)
#   pull-1    one client through the proxy, each checkout short on shard 0
#             (its quota of the product is 0), so the proxy pulls the unit
#             from shard 1 and checks out again
#
# Every checkout is of a distinct customer of shard 0 whose cart holds one
# unit (filled before each run), so each is a whole checkout.  Each figure
# is the median of BENCH_ROUNDS (default 3) runs of BENCH_SECONDS (default
# 8) seconds, flows interleaved per round, after a warm-up run of each: the
# steady state, not the connections' start-up.  Prints the table and writes
# it to bench/results/DATE-shards.md.
set -eu
cd "$(dirname "$0")/../.."
. test/lib.sh
. sharding/test/lib.sh
seconds=${BENCH_SECONDS:-8}
rounds=${BENCH_ROUNDS:-3}
warmup=${BENCH_WARMUP_SECONDS:-2}
results=${BENCH_SHARDS_RESULTS:-bench/results/$(date -u +%Y-%m-%d)-shards.md}
customers=40000
trap stop_shop EXIT INT TERM

if [ -n "${BENCH_SHARDS_RAW:-}" ]; then
	# only the report, from the raw figures of a run (flow round tps ms)
	SHOP_DIR=$(mktemp -d)
	cp "$BENCH_SHARDS_RAW" "$SHOP_DIR/raw"
	raw=$SHOP_DIR/raw integrity=${BENCH_SHARDS_INTEGRITY:-?} pulls=${BENCH_SHARDS_PULLS:-?}
else
SHOP_FSYNC=on SHOP_SYNC=on start_shop 2
new_shop 2
raw=$SHOP_DIR/raw
: >"$raw"

# Product 1: plenty on both shards; product 2: all of it on shard 1
proxy_value "SELECT shop_create_product('Hot Item', 49900, 2000000000),
					shop_create_product('Pulled Item', 49900, 0)" >/dev/null
on_shard 1 "SELECT shop_restock(2, 1000000000, 'bench')" >/dev/null
# Customers of shard 0, numbered 1..customers in bench_customers on the
# proxy and on shard 0
proxy_psql -c "CREATE TABLE bench_customers (n integer PRIMARY KEY, customer_id bigint NOT NULL)" \
	-c "INSERT INTO bench_customers
		SELECT row_number() OVER (ORDER BY g), g FROM generate_series(1, 4 * $customers) AS g
		 WHERE shop_shard_of(g) = 0 LIMIT $customers" \
	-c "SELECT count(shop_create_customer(customer_id, 'Bench ' || n)) FROM bench_customers" >/dev/null
proxy_psql -c "COPY bench_customers TO STDOUT" >"$SHOP_DIR/customers"
on_shard 0 "CREATE TABLE bench_customers (n integer PRIMARY KEY, customer_id bigint NOT NULL)"
PGHOST=$SHOP_DIR PGPORT=$(node_port shard0) PGUSER=postgres \
	psql -X -q -d shop -c "COPY bench_customers FROM STDIN" <"$SHOP_DIR/customers"
for db in proxy shop; do
	cat >"$SHOP_DIR/$db.pgbench" <<SQL
SELECT shop_checkout(c.customer_id) FROM bench_customers AS c
 WHERE c.n = (SELECT nextval('bench_next') % $customers + 1);
SQL
done

# measure FLOW CLIENTS PRODUCT SECONDS ROUND: refill every cart with one unit
# of PRODUCT, then CLIENTS clients check out for SECONDS through the proxy
# (flow proxy or pull) or on shard 0 (direct); appends "flow round tps ms"
measure() {
	on_shard 0 "DELETE FROM cart_items" \
		"INSERT INTO cart_items SELECT customer_id, $3, 1 FROM bench_customers" \
		"VACUUM ANALYZE cart_items" >/dev/null
	case $1 in
	direct) node=shard0 db=shop ;;
	*) node=proxy db=proxy ;;
	esac
	PGHOST=$SHOP_DIR PGPORT=$(node_port $node) PGUSER=postgres \
		psql -X -q -d $db -c "DROP SEQUENCE IF EXISTS bench_next" -c "CREATE SEQUENCE bench_next"
	out=$(PGHOST=$SHOP_DIR PGPORT=$(node_port $node) PGUSER=postgres \
		pgbench -n -M prepared -c "$2" -j "$([ "$2" -gt 1 ] && echo 2 || echo 1)" -T "$4" \
		-f "$SHOP_DIR/$db.pgbench" $db 2>&1) || { echo "$out" >&2; return 1; }
	tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
	ms=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
	[ "$5" = warmup ] || echo "$1-$2 $5 $tps $ms" >>"$raw"
}

for pair in "direct 1 1" "proxy 1 1" "pull 1 2" "direct 32 1" "proxy 32 1"; do
	set -- $pair
	measure "$1" "$2" "$3" "$warmup" warmup
done
r=1
while [ "$r" -le "$rounds" ]; do
	for pair in "direct 1 1" "proxy 1 1" "pull 1 2" "direct 32 1" "proxy 32 1"; do
		set -- $pair
		echo "shards: round $r, $1 with $2 client(s)"
		measure "$1" "$2" "$3" "$seconds" "$r"
	done
	r=$((r + 1))
done

# every pull moved its unit exactly once, and the books add up
integrity=$(proxy_value "SELECT count(*) FROM shop_check_integrity()")
pulls=$(shard_value 1 "SELECT count(*) FROM checkout_shard.stock_transfers WHERE direction = 'out'")
fi

# the median of each flow's rounds
median() {
	awk -v f="$1" -v col="$2" '$1 == f { print $col }' "$raw" | sort -n |
		awk -v col="$2" '{ v[NR] = $1 }
			END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
				  printf(col == 3 ? "%.0f\n" : "%.2f\n", m) }'
}
echo "shards: flow round tps ms"
cat "$raw"
[ -n "${BENCH_SHARDS_RAW:-}" ] || cp "$raw" "${results%.md}.raw"
{
	echo "# The sharded shop: the proxy hop and a pull ($(date -u +%Y-%m-%d))"
	echo
	echo "\`make bench\` (sharding/bench/shards.sh): a proxy and 2 shard clusters on one machine ($(nproc) cores,"
	echo "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)), PostgreSQL $(pg_config --version | sed 's/^PostgreSQL \([0-9.]*\).*/\1/'),"
	echo "fsync and synchronous_commit on, Unix sockets; median of $rounds runs of $seconds s, flows interleaved."
	echo
	echo "| flow | clients | checkouts/s | mean latency (ms) | ratio |"
	echo "|---|---|---|---|---|"
	d1=$(median direct-1 3) p1=$(median proxy-1 3) l1=$(median pull-1 3)
	d32=$(median direct-32 3) p32=$(median proxy-32 3)
	echo "| on shard 0 directly | 1 | $d1 | $(median direct-1 4) | 1 |"
	echo "| through the proxy | 1 | $p1 | $(median proxy-1 4) | $(echo "$p1 $d1" | awk '{ printf "%.2f", $1 / $2 }') of direct |"
	echo "| through the proxy, pulling each unit | 1 | $l1 | $(median pull-1 4) | $(echo "$l1 $p1" | awk '{ printf "%.2f", $1 / $2 }') of the proxy's |"
	echo "| on shard 0 directly | 32 | $d32 | $(median direct-32 4) | 1 |"
	echo "| through the proxy | 32 | $p32 | $(median proxy-32 4) | $(echo "$p32 $d32" | awk '{ printf "%.2f", $1 / $2 }') of direct |"
	echo
	echo "Pulls made: $pulls transfers from shard 1; integrity problems after the run: $integrity."
} >"$results"
cat "$results"
[ "$integrity" = 0 ]
