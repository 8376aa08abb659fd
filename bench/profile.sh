#!/bin/sh
# make bench-profile: where a one-line checkout's time goes, per release of
# RELEASES and the current code, side by side in one throwaway cluster
# (durable commit, pg_stat_statements with track = all, so that the
# checkout's own SPI statements and the foreign-key checks they fire are
# counted one by one).  For each version: the cpu-1line workload of
# bench/releases.sh (one client, synchronous_commit off, a one-line cart of
# one of 1,000 products, add-to-cart then checkout) for BENCH_SECONDS
# (default 10) after a warm-up, then per checkout: the statements run and
# their mean time, and the WAL records and bytes (pg_stat_wal).  Last, the
# same flow through bench.plpgsql_checkout (the same algorithm in PL/pgSQL,
# on the current code's tables), so that the C function's own time per
# call stands beside it.  PROFILE_PERF=1 also records the backend with perf
# (software clock) and writes the folded stacks beside the report.
# Writes bench/results/DATE-profile.md (BENCH_RESULTS overrides).
set -eu
cd "$(dirname "$0")/.."
seconds=${BENCH_SECONDS:-10}
results=${BENCH_RESULTS:-bench/results/$(date -u +%Y-%m-%d)-profile.md}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# perf's sampling rate (PROFILE_PERF=1), as the report states it
perf_hz=${PROFILE_PERF_HZ:-1999}

versions=$(grep -v '^#' RELEASES | while read -r v c; do printf '%s:checkout_r%s ' "$v" "$(echo "$v" | tr -d .)"; done)
# and last, the same algorithm in PL/pgSQL (bench/setup.sql's
# bench.plpgsql_checkout) on the current code's tables: what the C buys
versions="${versions}current:checkout plpgsql:checkout"

{
	echo "# Where a one-line checkout's time goes ($(date -u +%Y-%m-%d))"
	echo
	echo "\`make bench-profile\` (bench/profile.sh): $(nproc) cores, PostgreSQL $(pg_config --version | awk '{print $2}'),"
	echo "one client, \`synchronous_commit=off\`, a one-line cart of one of 1,000 products (add to cart, then"
	echo "check out), $seconds s per version after a warm-up; \`pg_stat_statements.track = all\`."
	echo "Caveat: pg_stat_statements times only ExecutorRun and ExecutorFinish of each statement; the"
	echo "executor's start and end (plan-tree setup, CHECK expressions rebuilt, index opening) are in the"
	echo "call's total but in no statement's row.${PROFILE_PERF:+ perf samples at $perf_hz Hz.}"
} >"$tmp/report"

for vx in $versions; do
	v=${vx%%:*}
	ext=${vx#*:}
	db=profile_$(echo "$v" | tr . _)
	psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
	psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "CREATE EXTENSION $ext" -f bench/setup.sql \
		-c 'CREATE EXTENSION pg_stat_statements' -c 'VACUUM ANALYZE' >/dev/null
	if [ "$v" = plpgsql ]; then
		cp bench/flows/plpgsql.sql "$tmp/c.sql"
	else
		cp bench/flows/c.sql "$tmp/c.sql"
	fi
	bench() {
		PGOPTIONS="-c synchronous_commit=off" pgbench -n -M prepared -c 1 -j 1 -T "$1" -d "$db" \
			-D pid_min=3 -D pid_max=1002 -D add_to_cart=1 -D clients=1 -f "$tmp/c.sql" >"$tmp/out" 2>&1 ||
			{ cat "$tmp/out" >&2; exit 1; }
	}
	bench 3
	psql -X -q -d "$db" -c 'SELECT pg_stat_statements_reset()' -c 'SELECT pg_stat_reset_shared($$wal$$)' >/dev/null
	before=$(psql -X -At -d "$db" -c 'SELECT count(*) FROM orders')
	if [ "${PROFILE_PERF:-0}" = 1 ]; then
		bench "$seconds" &
		sleep 1
		pid=$(psql -X -At -d postgres -c "SELECT pid FROM pg_stat_activity WHERE datname = '$db' AND application_name = 'pgbench' LIMIT 1")
		perf record -F "$perf_hz" -g -p "$pid" -o "$tmp/perf.data" -- sleep $((seconds - 2)) >/dev/null 2>&1 || true
		wait
		perf script -i "$tmp/perf.data" 2>/dev/null | awk '
			/^\S/ { if (stack != "") n[stack]++; stack = ""; next }
			/^\s+[0-9a-f]+ / { f = $2; sub(/\+0x.*/, "", f); stack = (stack == "") ? f : f ";" stack; next }
			END { if (stack != "") n[stack]++; for (s in n) print s, n[s] }' \
			>"${results%.md}-$v.folded" || true
	else
		bench "$seconds"
	fi
	tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$tmp/out" | head -n 1)
	orders=$(($(psql -X -At -d "$db" -c 'SELECT count(*) FROM orders') - before))
	{
		echo
		echo "## $v"
		echo
		echo "$tps add-to-cart + checkout pairs/s, $orders orders. Per checkout:"
		echo
		psql -X -At -d "$db" -F ' | ' -v orders="$orders" <<'SQL'
SELECT '| WAL | ' || round(wal_records::numeric / :orders, 1) || ' records, '
       || round(wal_bytes / :orders) || ' bytes, ' || round(wal_fpi::numeric / :orders, 2) || ' full pages |'
  FROM pg_stat_wal;
SQL
		echo
		echo "| statement (nested: the checkout's own and the checks they fire) | per checkout | mean µs | µs per checkout |"
		echo "|---|---|---|---|"
		psql -X -At -d "$db" -v orders="$orders" <<'SQL'
SELECT '| `' || left(regexp_replace(query, '\s+', ' ', 'g'), 90) || '` | '
       || round(calls::numeric / :orders, 2) || ' | '
       || round((total_exec_time + total_plan_time)::numeric * 1000 / calls, 1) || ' | '
       || round((total_exec_time + total_plan_time)::numeric * 1000 / :orders, 1) || ' |'
  FROM pg_stat_statements
 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND calls >= :orders / 100
   AND query NOT LIKE '%pg_stat_%'
 ORDER BY total_exec_time + total_plan_time DESC
 LIMIT 14;
SQL
	} >>"$tmp/report"
	psql -X -q -d postgres -c "DROP DATABASE $db"
done
cat "$tmp/report"
cp "$tmp/report" "$results"
echo "bench: written to $results"
