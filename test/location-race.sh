#!/bin/sh
# The located hot product in slots under a crowd (make test): 150 buyers at
# once, in 32 sessions, of a product whose preferred location North holds
# 40 units split into 8 slots, the default 5 and South (last by priority)
# 5; most buy 1 unit, every fifth 3 (a line a slot may no longer hold, so
# the full path runs beside the slots'), while an admin restocks North 10
# more and moves 2 from North to South mid-sale (refused when North is
# sold out by then: 22023, nothing moved).  Every unit in must be
# sold exactly once: sold + left = 60, no location below 0, nothing sold
# beyond what came in, every refused buyer's cart intact, each order's
# allocations adding up to its line and the books clean.  Prints "check:"
# lines.
set -u
cd "$(dirname "$0")/.."
. test/lib.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

db=checkout_located
new_db "$db" checkout || exit 1
sql "$db" "INSERT INTO products (name, price_cents, stock) VALUES ('Flash Phone', 49900, 5)" \
	"SELECT shop_create_location('North', -1), shop_create_location('South', 5)" \
	"SELECT shop_restock(1, 40, 'delivery', 2), shop_restock(1, 5, 'delivery', 3)" \
	"SELECT shop_split_location_stock(1, 2, 8)" \
	"INSERT INTO customers (name) SELECT 'buyer ' || g FROM generate_series(1, 150) AS g" \
	"INSERT INTO cart_items SELECT g, 1, CASE WHEN g % 5 = 0 THEN 3 ELSE 1 END
	   FROM generate_series(1, 150) AS g" \
	"CREATE FUNCTION try_checkout(c bigint) RETURNS bigint LANGUAGE plpgsql AS \$\$
	 BEGIN RETURN shop_checkout(c); EXCEPTION WHEN SQLSTATE 'SH001' THEN RETURN NULL; END \$\$" >/dev/null ||
	exit 1

# every buyer once, 32 sessions at a time, and the admin in the middle
crowd "$db" 150 "$tmp"
psql -X -q -At -d "$db" -c "SELECT shop_restock(1, 10, 'mid-sale delivery', 2)" \
	-c "SELECT shop_move_stock(1, 2, 3, 2, 'mid-sale transfer')" >"$tmp/admin.out" 2>&1 &
wait
errors=$(cat "$tmp"/s*.out | grep -c ERROR)
check "every buyer got an order or SH001 ($errors other errors)" [ "$errors" -eq 0 ]
# the move may find North sold out already: refused (22023), nothing moved
admin=$(grep ERROR "$tmp/admin.out" | grep -v 'fewer than the 2 to move' | head -n 1)
check "the mid-sale restock and move went through or the move was refused as sold out (${admin:-no other error})" \
	[ -z "$admin" ]

q() { psql -X -At -d "$db" -c "$1"; }
sold=$(q "SELECT coalesce(sum(quantity), 0) FROM order_items WHERE product_id = 1")
left=$(q "SELECT stock FROM product_stock WHERE product_id = 1")
check "every unit in sold exactly once ($sold sold + $left left = 50 + 10 restocked)" \
	[ $((sold + left)) -eq 60 ]
negative=$(q "SELECT count(*) FROM (SELECT stock FROM location_stock UNION ALL
		   SELECT stock FROM location_stock_slots UNION ALL SELECT stock FROM products) AS s
		  WHERE stock < 0")
check "no row or slot below 0 ($negative)" [ "$negative" = 0 ]
north=$(q "SELECT coalesce(sum(quantity), 0) FROM order_item_allocations WHERE location_id = 2")
check "North, preferred, sold its own ($north units of its 40, 10 in, 2 out)" [ "$north" -ge 38 ]
orders=$(q "SELECT count(*) FROM orders")
carts=$(q "SELECT count(*) FROM cart_items")
check "every refused buyer keeps the cart ($orders orders, $carts carts left of 150)" \
	[ $((orders + carts)) -eq 150 ]
problems=$(q "SELECT count(*) FROM shop_check_integrity()")
check "integrity clean after the crowd ($problems problems)" [ "$problems" = 0 ]
exit "$failed"
