#!/bin/sh
# Monitoring (make test, in a cluster with shared_preload_libraries =
# 'checkout'): the alert rules pass promtool's checks and unit tests; then,
# end to end, prometheus-postgres-exporter with monitoring/queries.yaml and
# Prometheus with monitoring/checkout.rules.yml, both Debian's binaries on
# loopback ports of this test's own (scrape and evaluation every second, the
# integrity query cached 1 s instead of 300), watch the seed's sale: the
# scraped counters equal its outcome (20 successes, 13 SH001); a stock
# changed behind the ledger's back fires CheckoutDiscrepancy, and
# shop_adjust_stock() resolves it.  Every process started here is stopped.
# Prints "check:" lines.
set -u
cd "$(dirname "$0")/.."
. test/lib.sh
tmp=$(mktemp -d)
# ports below Linux's ephemeral range (32768-60999), where any client
# connection of the other tests may hold a port when a server binds it
exporter_port=${CHECKOUT_EXPORTER_PORT:-29187}
prometheus_port=${CHECKOUT_PROMETHEUS_PORT:-29090}
pids=
stop_all() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap stop_all EXIT

check "promtool check rules monitoring/checkout.rules.yml" \
	promtool check rules monitoring/checkout.rules.yml
check "promtool test rules: every alert fires on its series and only there" \
	promtool test rules monitoring/checkout.rules.test.yml

db=checkout_monitoring
new_db "$db" checkout || exit 1
sql "$db" "SELECT shop_checkout_stats_reset()" >/dev/null || exit 1

sed 's/cache_seconds: 300/cache_seconds: 1/' monitoring/queries.yaml >"$tmp/queries.yaml"
# lib/pq, the exporter's driver, refuses some libpq variables that
# pg_virtualenv sets (PGSYSCONFDIR): the exporter gets only its DSN
env -i PATH="$PATH" \
	DATA_SOURCE_NAME="host=${PGHOST:-localhost} port=${PGPORT:-5432} dbname=$db user=${PGUSER:-postgres} password=${PGPASSWORD:-} sslmode=disable" \
	prometheus-postgres-exporter --web.listen-address="127.0.0.1:$exporter_port" \
	--extend.query-path="$tmp/queries.yaml" >"$tmp/exporter.log" 2>&1 &
pids="$pids $!"

cp monitoring/checkout.rules.yml "$tmp/checkout.rules.yml"
cat >"$tmp/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $tmp/checkout.rules.yml
scrape_configs:
  - job_name: checkout
    static_configs:
      - targets: ['127.0.0.1:$exporter_port']
YAML
check "promtool check config of the test's Prometheus" promtool check config "$tmp/prometheus.yml"
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
	--web.listen-address="127.0.0.1:$prometheus_port" >"$tmp/prometheus.log" 2>&1 &
pids="$pids $!"

# query PROMQL: the first value of an instant query, or nothing
query() {
	curl -s --max-time 10 --get "http://127.0.0.1:$prometheus_port/api/v1/query" --data-urlencode "query=$1" |
		jq -r '.data.result[0].value[1] // empty' 2>/dev/null
}
# wait_for SECONDS COMMAND...: true once COMMAND is, polling every 0.5 s
wait_for() {
	_deadline=$(($(date +%s) + $1))
	shift
	until "$@"; do
		[ "$(date +%s)" -ge "$_deadline" ] && return 1
		sleep 0.5
	done
}
equals() { [ "$(query "$1")" = "$2" ]; }
# firing ALERT: whether ALERT is firing (/api/v1/alerts)
firing() {
	curl -s --max-time 10 "http://127.0.0.1:$prometheus_port/api/v1/alerts" |
		jq -e --arg a "$1" '[.data.alerts[] | select(.labels.alertname == $a and .state == "firing")] | length > 0' \
		>/dev/null 2>&1
}

# ready: Prometheus answers /-/ready (its TSDB is open); how long it took
ready() { curl -sf --max-time 10 "http://127.0.0.1:$prometheus_port/-/ready" >/dev/null; }
started=$(date +%s)
check "Prometheus ready (its /-/ready answers)" wait_for 120 ready
ready_after=$(($(date +%s) - started))
echo "monitoring: Prometheus ready after $ready_after s"
scraping() {
	wait_for 120 equals 'up{job="checkout"}' 1 && wait_for 60 equals 'pg_up{job="checkout"}' 1
}
check "Prometheus scrapes the exporter (up 1, pg_up 1)" scraping

tools/flashsale -d "$db" --buyers 33 --stock 20 --quiet \
	--expect-orders 20 --expect-rejected 13 --expect-stock 0 || echo "check: FAILED the seed's sale ran"
sel="{job=\"checkout\", datname=\"$db\"}"
sale_scraped() {
	wait_for 60 equals "checkout_attempts_total$sel" 33 &&
		wait_for 10 equals "checkout_successes_total$sel" 20 &&
		wait_for 10 equals "checkout_insufficient_stock_total$sel" 13 &&
		wait_for 10 equals "checkout_items_sold_total$sel" 20
}
check "scraped: 33 attempts, 20 successes, 13 insufficient stock, 20 items sold" sale_scraped
check "scraped: the checkout time as a sum and a count (33 calls)" \
	wait_for 60 equals "checkout_checkout_seconds_count$sel" 33
check "scraped: no integrity problem, no alert firing" \
	wait_for 60 equals 'sum(checkout_integrity_problems{job="checkout"})' 0

# Order events (1.3): without PgQ the events' queries export nothing and
# fail nothing; with a consumer registered and an event not read, and a
# logical slot, their series appear
check "no PgQ, no slot: the events' queries export nothing" \
	wait_for 30 equals 'count(checkout_events_consumer_lag_seconds) or vector(0)' 0
sql "$db" "CREATE EXTENSION pgq" "SELECT shop_events_create_queue()" \
	"SELECT pgq.register_consumer('checkout_orders', 'mon')" \
	"SELECT 'slot' FROM pg_create_logical_replication_slot('checkout_mon', 'pgoutput')" >/dev/null || exit 1
sql "$db" "SET checkout.events = pgq" \
	"WITH p AS (INSERT INTO products (name, price_cents, stock) VALUES ('Monitored', 100, 5) RETURNING id),
		  c AS (INSERT INTO customers (name) VALUES ('Monitored buyer') RETURNING id)
	 INSERT INTO cart_items (customer_id, product_id, quantity) SELECT c.id, p.id, 1 FROM p, c" \
	"SELECT shop_checkout((SELECT max(id) FROM customers))" \
	"SELECT pgq.force_tick('checkout_orders')" "SELECT pgq.ticker()" >/dev/null || exit 1
check "a consumer with an event not read yet: its pending events scraped (at least 1)" \
	wait_for 60 equals 'count(checkout_events_consumer_pending_events{consumer="mon"} >= 1)' 1
check "a logical slot: scraped with its WAL status (reserved)" \
	wait_for 60 equals 'checkout_events_slot_wal_status{slot_name="checkout_mon", wal_status="reserved"}' 1
sql "$db" "SELECT pg_drop_replication_slot('checkout_mon')" >/dev/null

product=$(psql -X -At -d "$db" -c "SELECT min(id) FROM products")
sql "$db" "UPDATE products SET stock = stock + 5 WHERE id = $product" >/dev/null
fired=0
check "a stock changed behind the ledger's back fires CheckoutDiscrepancy" \
	wait_for 60 firing CheckoutDiscrepancy && fired=1
sql "$db" "SELECT shop_adjust_stock($product, (SELECT stock FROM product_stock WHERE product_id = $product),
									 'monitoring test: counted')" >/dev/null
# resolved: the alert fired, and is gone from /api/v1/alerts
gone() { ! curl -s --max-time 10 "http://127.0.0.1:$prometheus_port/api/v1/alerts" | grep -q CheckoutDiscrepancy; }
resolved() { [ "$fired" = 1 ] && wait_for 60 gone; }
check "shop_adjust_stock() resolves it" resolved
# on failure, what the two servers say, each line as "monitoring: detail:",
# which CI's summary of failures keeps (.ci/run) and no count of verdicts
# takes for one
if [ "$failed" -ne 0 ]; then
	{
		echo "Prometheus ready after $ready_after s, the checks took $(($(date +%s) - started)) s; disk: $(df -h "$tmp" | tail -n 1)"
		echo "what Prometheus answers for up:"
		curl -s -S --max-time 5 --get "http://127.0.0.1:$prometheus_port/api/v1/query" \
			--data-urlencode 'query=up' 2>&1 | head -c 600
		echo
		echo "the exporter's metrics:"
		curl -s -S --max-time 5 "http://127.0.0.1:$exporter_port/metrics" 2>&1 |
			grep -E '^(pg_up|checkout_)|curl' | head -12
		grep -vE 'level=info' "$tmp/exporter.log" | tail -n 10 | sed 's/^/exporter: /'
		grep -vE "level=info" "$tmp/prometheus.log" | tail -n 10 | sed 's/^/prometheus: /'
		echo "listening: $(ss -ltnp 2>/dev/null | grep -E ":($prometheus_port|$exporter_port) " | tr -s ' ' | tr '\n' ';')"
	} | cut -c1-400 | sed "s/^/monitoring: detail: /"
fi
exit "$failed"
