#!/bin/sh
# make load: the storefront (examples/storefront) under HTTP load, in the
# throwaway cluster of the PG* variables (pg_virtualenv, from the Makefile).
#  1. examples/storefront/test/load.ts: autocannon 9, BUYERS (2,000)
#     shoppers on STOCK (500) units, a closed loop at CONNECTIONS (64) and
#     an open loop at a fixed rate, direct and through pgbouncer
#     (transaction mode, the server's pool of POOL_SIZE (16) through it,
#     the stock listener direct); the invariants checked in SQL.  Each run
#     twice, for the storefront of now (one statement per checkout) and
#     for the old one beside it (five round trips), built from git
#     OLD_STOREFRONT_REV (the last commit of the five; none when git has
#     no such commit: the new runs alone); the CPU of every process and
#     the waits of the pool's backends per closed-loop run, and one more
#     run of the new server under node --cpu-prof;
#  2. beside it, in the same run, shop_checkout() called directly by
#     tools/flashsale at the same concurrency: the same sale (checkouts/s)
#     and one where every buyer gets an order (orders/s);
#  3. the report, bench/results/DATE-load.md (written by load.ts; LOAD_REPORT
#     for another path), and the chart of latency over time (gnuplot),
#     beside it as .png.
# Load tool, Node and PostgreSQL share the machine's cores: the report
# says so.  Exits non-zero when an invariant failed.
set -eu
cd "$(dirname "$0")/.."
. test/lib.sh
rc=0
BUYERS=${BUYERS:-2000} STOCK=${STOCK:-500} CONNECTIONS=${CONNECTIONS:-64} POOL_SIZE=${POOL_SIZE:-16}
OLD_STOREFRONT_REV=${OLD_STOREFRONT_REV:-480f7e27a6ff7e156fc39e1f07f36f5e2efeea46}
export BUYERS STOCK CONNECTIONS POOL_SIZE OLD_STOREFRONT_REV
day=$(date -u +%Y-%m-%d)
report=${LOAD_REPORT:-bench/results/$day-load.md}
chart=${report%.md}.png
tmp=$(mktemp -d)
bouncer=$tmp/pgbouncer
trap '[ -f "$bouncer/pgbouncer.pid" ] && kill "$(cat "$bouncer/pgbouncer.pid")"; rm -rf "$tmp"' EXIT

(cd examples/storefront && npm ci --no-audit --no-fund --loglevel=error && npx tsc -p .)

# the old storefront, from git, on the same packages when its lockfile is the same
old=$tmp/old/examples/storefront
OLD_STOREFRONT=
mkdir "$tmp/old"
if git archive "$OLD_STOREFRONT_REV" examples/storefront 2>/dev/null | tar -x -C "$tmp/old" 2>/dev/null &&
	[ -f "$old/package.json" ]; then
	if cmp -s "$old/package-lock.json" examples/storefront/package-lock.json; then
		ln -s "$PWD/examples/storefront/node_modules" "$old/node_modules"
	else
		(cd "$old" && npm ci --no-audit --no-fund --loglevel=error)
	fi
	(cd "$old" && npx tsc -p .)
	OLD_STOREFRONT=$old/dist/src/main.js
	echo "load: the old storefront beside the new, from git $OLD_STOREFRONT_REV"
else
	echo "load: no old storefront (git $OLD_STOREFRONT_REV not here): the new one alone"
fi
export OLD_STOREFRONT

# the shop's demo role exists before pgbouncer logs in as it
createdb storefront_load_role
psql -X -q -d storefront_load_role -v stock=0 -f examples/storefront/shop.sql >/dev/null

# pgbouncer in transaction mode for every database, as the app role
mkdir "$bouncer"
PGBOUNCER_PORT=$((PGPORT + 1100))
printf '"storefront" "storefront"\n' >"$bouncer/users.txt"
cat >"$bouncer/pgbouncer.ini" <<INI
[databases]
* = host=localhost port=$PGPORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = plain
auth_file = $bouncer/users.txt
pool_mode = transaction
default_pool_size = $POOL_SIZE
max_client_conn = 2000
ignore_startup_parameters = extra_float_digits, options
logfile = $bouncer/pgbouncer.log
pidfile = $bouncer/pgbouncer.pid
INI
chmod 755 "$tmp" "$bouncer"
[ -n "$AS_POSTGRES" ] && chown -R postgres "$bouncer"
as_postgres pgbouncer -d "$bouncer/pgbouncer.ini"
for _ in 1 2 3 4 5 6 7 8 9 10; do [ -s "$bouncer/pgbouncer.pid" ] && break; sleep 0.1; done
PGBOUNCER_PID=$(cat "$bouncer/pgbouncer.pid")
CLK_TCK=$(getconf CLK_TCK)
export PGBOUNCER_PORT PGBOUNCER_PID CLK_TCK

# shop_checkout() directly, the same concurrency, the same machine, now
createdb storefront_direct
psql -X -q -d storefront_direct -c "CREATE EXTENSION checkout"
tools/flashsale --buyers="$BUYERS" --stock="$STOCK" --keys -c "$CONNECTIONS" -d storefront_direct >"$tmp/direct-sale" || rc=1
tools/flashsale --buyers="$STOCK" --stock="$STOCK" --keys -c "$CONNECTIONS" -d storefront_direct >"$tmp/direct-orders" || rc=1
direct_checkouts=$(sed -n 's/.* \([0-9]*\) checkouts\/s$/\1/p' "$tmp/direct-sale")
direct_orders=$(sed -n 's/.* \([0-9]*\) checkouts\/s$/\1/p' "$tmp/direct-orders")
direct_p99=$(sed -n 's/.*p99 \([0-9.]*\),.*/\1/p' "$tmp/direct-orders")
echo "direct shop_checkout() at $CONNECTIONS connections: the sale $direct_checkouts checkouts/s; every buyer an order $direct_orders orders/s (p99 $direct_p99 ms)"

echo "load: $BUYERS buyers, $STOCK in stock, $CONNECTIONS connections, a pool of $POOL_SIZE"
DIRECT_CHECKOUTS=$direct_checkouts DIRECT_ORDERS=$direct_orders DIRECT_P99=$direct_p99 \
	LOAD_SAMPLES=$tmp/samples.csv LOAD_REPORT=$report LOAD_CHART=${chart##*/} \
	node examples/storefront/dist/test/load.js |
	tee "$tmp/load.out" || rc=1
grep -q '^load: FAILED' "$tmp/load.out" && rc=1

# the chart: latency of each request over the time of its run, per outcome;
# a row per run, the old server left, the new right
paths="new"
[ -n "$OLD_STOREFRONT" ] && paths="old new"
set --
for run in "direct, closed loop" "direct, open loop" "pgbouncer, closed loop" "pgbouncer, open loop"; do
	for path in $paths; do
		set -- "$@" "$path, $run"
	done
done
i=0
for run in "$@"; do
	i=$((i + 1))
	for status in 201 409 503; do
		grep "^\"$run\"," "$tmp/samples.csv" | awk -F, -v s=$status '$NF == s { print $(NF - 2) / 1000, $(NF - 1) }' \
			>"$tmp/run$i-$status.dat"
	done
done
columns=$(echo $paths | wc -w)
{
	echo "set terminal pngcairo size $((650 * columns)),1500 font \"DejaVu Sans,10\""
	echo "set output \"$chart\""
	echo "set multiplot layout 4,$columns title \"Storefront under load: $BUYERS buyers, $STOCK in stock (latency of each request)\""
	echo 'set xlabel "seconds into the run"; set ylabel "latency (ms)"; set logscale y; set key top right'
	i=0
	for run in "$@"; do
		i=$((i + 1))
		echo "set title \"$run\""
		plot=""
		for s in "201 #1a7f37 201 order" "409 #0a66c2 409 SH001" "503 #b42318 503 retry"; do
			set -- $s
			[ -s "$tmp/run$i-$1.dat" ] || continue
			plot="$plot${plot:+, }\"$tmp/run$i-$1.dat\" using 1:2 with points pt 7 ps 0.3 lc rgb \"$2\" title \"$3 $4\""
		done
		[ -n "$plot" ] && echo "plot $plot"
	done
	echo 'unset multiplot'
} | gnuplot

echo "load: report $report, chart $chart"
exit $rc
