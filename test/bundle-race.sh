#!/bin/sh
# Bundles under a crowd (make test): 100 buyers at once, in 32 sessions,
# each with a cart of one of three bundles that share a part of which 20
# units are in stock (bundle B takes 2 of it, A and C one each), the other
# parts plentiful.  The shared part must sell exactly its 20 units, none
# oversold, every refused buyer's cart intact, the books clean.  Then the
# last case: a cart holding a bundle and its part on its own.  Prints
# "check:" lines.
set -u
cd "$(dirname "$0")/.."
. test/lib.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

db=checkout_bundles
new_db "$db" checkout || exit 1
sql "$db" "INSERT INTO products (name, price_cents, stock) VALUES
	('Shared Part', 1000, 20), ('Part A', 100, 1000), ('Part B', 100, 1000), ('Part C', 100, 1000)" \
	"SELECT shop_create_bundle('Bundle A', 2000, jsonb_build_array(
		jsonb_build_object('product_id', 1, 'quantity', 1), jsonb_build_object('product_id', 2, 'quantity', 1)))" \
	"SELECT shop_create_bundle('Bundle B', 2000, jsonb_build_array(
		jsonb_build_object('product_id', 1, 'quantity', 2), jsonb_build_object('product_id', 3, 'quantity', 1)))" \
	"SELECT shop_create_bundle('Bundle C', 2000, jsonb_build_array(
		jsonb_build_object('product_id', 4, 'quantity', 1), jsonb_build_object('product_id', 1, 'quantity', 1)))" \
	"INSERT INTO customers (name) SELECT 'buyer ' || g FROM generate_series(1, 100) AS g" \
	"INSERT INTO cart_items SELECT g, 5 + g % 3, 1 FROM generate_series(1, 100) AS g" \
	"CREATE FUNCTION try_checkout(c bigint) RETURNS bigint LANGUAGE plpgsql AS \$\$
	 BEGIN RETURN shop_checkout(c); EXCEPTION WHEN SQLSTATE 'SH001' THEN RETURN NULL; END \$\$" >/dev/null ||
	exit 1

# every buyer once, 32 sessions at a time
crowd "$db" 100 "$tmp"
wait
errors=$(cat "$tmp"/s*.out | grep -c ERROR)
check "every buyer got an order or SH001 ($errors other errors)" [ "$errors" -eq 0 ]

q() { psql -X -At -d "$db" -c "$1"; }
sold=$(q "SELECT coalesce(sum(op.quantity * oi.quantity), 0) FROM order_item_parts AS op
		  JOIN order_items AS oi ON oi.order_id = op.order_id AND oi.product_id = op.bundle_id
		 WHERE op.product_id = 1")
left=$(q "SELECT stock FROM products WHERE id = 1")
check "the shared part sold exactly its 20 units ($sold sold, $left left)" [ "$sold" = 20 ] && [ "$left" = 0 ]
orders=$(q "SELECT count(*) FROM orders")
carts=$(q "SELECT count(*) FROM cart_items")
check "every refused buyer keeps the cart ($orders orders, $carts carts left of 100)" \
	[ $((orders + carts)) -eq 100 ]
problems=$(q "SELECT count(*) FROM shop_check_integrity()")
check "integrity clean after the crowd ($problems problems)" [ "$problems" = 0 ]

# a bundle and its part on their own in one cart: the part locked once,
# its units added up, and given back once by a cancel
sql "$db" "SELECT shop_restock(1, 3, 'test')" >/dev/null
sql "$db" "DELETE FROM cart_items WHERE customer_id = 1" \
	"INSERT INTO cart_items VALUES (1, 5, 1), (1, 1, 2)" >/dev/null
order=$(q "SELECT shop_checkout(1)")
after=$(q "SELECT stock FROM products WHERE id = 1")
check "a bundle and its part in one cart take 1 + 2 of it (order $order, $after of 3 left)" [ "$after" = 0 ]
q "SELECT shop_cancel_order($order, 'test')" >/dev/null
back=$(q "SELECT stock FROM products WHERE id = 1")
problems=$(q "SELECT count(*) FROM shop_check_integrity()")
check "its cancel gives the 3 back once, integrity clean ($back left, $problems problems)" \
	[ "$back" = 3 ] && [ "$problems" = 0 ]
exit "$failed"
