#!/bin/sh
# Through a pooler (make test): pgbouncer in transaction pooling mode with 8
# server connections in front of the server of the PG* variables, and the
# crowd of a real sale behind it: 10,000 buyers with idempotency keys over
# 1,000 client connections, then 500 buyers whose first call's connection is
# dropped.  Settings for a checkout go in with SET LOCAL inside its
# transaction (a session's SET does not survive transaction pooling).
# Prints "race:" and "check:" lines.
set -u
cd "$(dirname "$0")/.."
. test/lib.sh

new_db checkout_pool checkout || exit 1
start_pgbouncer checkout_pool 8 || exit 1
trap stop_pgbouncer EXIT
races=0

pooled() {
	tools/flashsale -h 127.0.0.1 -p "$PGBOUNCER_PORT" -d checkout_pool -M extended "$@"
}
verdict race "pooler: 10,000 buyers with keys over 1,000 clients, 8 server connections" \
	pooled --keys --buyers 10000 --stock 2000 --client 1000 \
	--expect-orders 2000 --expect-rejected 8000 --expect-stock 0 || races=$((races + 1))
verdict race "pooler: 500 buyers drop their first call and retry with their key" \
	pooled --drop-first --buyers 500 --stock 300 --client 200 \
	--expect-orders 300 --expect-rejected 200 --expect-stock 0 || races=$((races + 1))

# SET LOCAL in the checkout's transaction reaches the checkout
buyer=$(psql -X -q -At -h 127.0.0.1 -p "$PGBOUNCER_PORT" -d checkout_pool -c "
	INSERT INTO customers (name) VALUES ('pooled') RETURNING id")
psql -X -q -h 127.0.0.1 -p "$PGBOUNCER_PORT" -d checkout_pool \
	-c "INSERT INTO products (name, price_cents, stock) VALUES ('Pooled', 100, 5)" \
	-c "INSERT INTO cart_items SELECT $buyer, max(id), 1 FROM products" >/dev/null
window=$(psql -X -q -At -h 127.0.0.1 -p "$PGBOUNCER_PORT" -d checkout_pool -c "
	BEGIN;
	SET LOCAL checkout.payment_window = '15min';
	SELECT shop_checkout($buyer);
	SELECT expires_at - created_at FROM orders WHERE customer_id = $buyer;
	COMMIT;" | tail -n 1)
check "through the pooler, SET LOCAL checkout.payment_window reaches the checkout ($window)" \
	[ "$window" = "00:15:00" ]
exit $((races + failed))
