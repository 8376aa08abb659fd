#!/bin/sh
# Sold out, back in stock: pushed (make test).  A listener (psql, LISTEN
# checkout_stock) and shop_notify_stock_changes() run every half second
# (pg_cron's one-second job in a shop) watch a sale that sells a product
# out, a restock that brings it back, and a second sale that sells it out
# again, for a product sold from its row and one split into 8 stock slots
# (where two checkouts can empty the last two slots, each seeing the other
# full).  And bundles (1.3): two bundles sharing a part go sold out when
# the part sells out, bought through one of them or on its own, and come
# back when it is restocked.  The listener must hear every transition, in
# order, and nothing else.  Prints "check:" lines.
set -u
cd "$(dirname "$0")/.."
. test/lib.sh
tmp=$(mktemp -d)
pids=
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT

db=checkout_notify
new_db "$db" checkout || exit 1

# the listener: LISTEN, then a query every 0.2 s for up to five minutes
# (killed when done), after each of which psql prints the notices that
# arrived
{
	echo "LISTEN checkout_stock;"
	i=0
	while [ $i -lt 1500 ]; do echo "SELECT pg_sleep(0.2);"; i=$((i + 1)); done
} | psql -X -q -At -d "$db" >"$tmp/heard" 2>&1 &
pids="$pids $!"
# the watcher
( while :; do psql -X -q -At -d "$db" -c "SELECT shop_notify_stock_changes()" >/dev/null 2>&1; sleep 0.5; done ) &
pids="$pids $!"

# heard ID: the states heard for product ID, in order
heard() {
	grep -o "{[^}]*}" "$tmp/heard" |
		sed -n "s/.*\"product_id\" : $1, .*\"state\" : \"\([a-z_]*\)\".*/\1/p" | tr '\n' ' '
}
# wait_heard ID STATES: until the listener has heard STATES for product ID
# (the watcher runs every half second; a loaded machine may be slower), at
# most 60 s; what was heard is checked below
wait_heard() {
	_i=0
	while [ "$(heard "$1")" != "$2" ] && [ $_i -lt 300 ]; do sleep 0.2; _i=$((_i + 1)); done
}

# sale NAME [SLOTS]: 33 buyers for 20 units of a new product NAME
sale() {
	tools/flashsale -d "$db" --buyers 33 --stock 20 --name "$1" --slots "${2:-0}" --quiet \
		--expect-orders 20 --expect-rejected 13 --expect-stock 0
}
# again ID: restock 5 units of product ID, then five buyers take them
again() {
	sql "$db" "SELECT shop_restock($1, 5, 'notify test: restock')" >/dev/null || return 1
	wait_heard "$1" "sold_out back_in_stock "
	sql "$db" "INSERT INTO customers (name) SELECT 'again $1 ' || g FROM generate_series(1, 5) AS g" \
		"INSERT INTO cart_items SELECT c.id, $1, 1 FROM customers AS c WHERE c.name LIKE 'again $1 %'" \
		>/dev/null || return 1
	for c in $(psql -X -At -d "$db" -c "SELECT id FROM customers WHERE name LIKE 'again $1 %'"); do
		sql "$db" "SELECT shop_checkout($c)" >/dev/null || return 1
	done
}
id_of() { psql -X -At -d "$db" -c "SELECT id FROM products WHERE name = '$1'"; }

sale "Notify Row" 0 && row=$(id_of "Notify Row") &&
	sale "Notify Slots" 8 && slots=$(id_of "Notify Slots") || { echo "check: FAILED the sales ran"; exit 1; }
wait_heard "$row" "sold_out " && wait_heard "$slots" "sold_out "
again "$row" && again "$slots" || { echo "check: FAILED the restocks and second sales ran"; exit 1; }
wait_heard "$row" "sold_out back_in_stock sold_out " && wait_heard "$slots" "sold_out back_in_stock sold_out "

# buy ID QUANTITY: a new customer checks out QUANTITY units of product ID
buy() {
	_c=$(psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "
		WITH c AS (INSERT INTO customers (name) VALUES ('notify bundle buyer') RETURNING id)
		INSERT INTO cart_items (customer_id, product_id, quantity) SELECT c.id, $1, $2 FROM c
		RETURNING customer_id") &&
		sql "$db" "SELECT shop_checkout($_c)" >/dev/null
}
# bundles: Notify Part (2 in stock) is a part of Notify Box (with a
# plentiful Notify Other) and of Notify Kit (alone, 1 per kit); the kit is
# bought till the part is gone, then the part restocked, bought on its
# own, and restocked again; the box, never bought, follows its part
part=$(psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "
	INSERT INTO products (name, price_cents, stock) VALUES ('Notify Part', 100, 2) RETURNING id") &&
	other=$(psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "
		INSERT INTO products (name, price_cents, stock) VALUES ('Notify Other', 100, 1000) RETURNING id") &&
	box=$(psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "
		SELECT shop_create_bundle('Notify Box', 500, '[{\"product_id\": $part, \"quantity\": 1},
			{\"product_id\": $other, \"quantity\": 2}]')") &&
	kit=$(psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "
		SELECT shop_create_bundle('Notify Kit', 300, '[{\"product_id\": $part, \"quantity\": 1}]')") &&
	buy "$kit" 2 || { echo "check: FAILED the bundles were made and the kit bought"; exit 1; }
wait_heard "$box" "sold_out " && wait_heard "$part" "sold_out "
sql "$db" "SELECT shop_restock($part, 3, 'notify test: the part restocked')" >/dev/null &&
	wait_heard "$box" "sold_out back_in_stock " &&
	buy "$part" 3 && wait_heard "$box" "sold_out back_in_stock sold_out " &&
	sql "$db" "SELECT shop_restock($part, 4, 'notify test: the part restocked again')" >/dev/null ||
	{ echo "check: FAILED the part was restocked and bought"; exit 1; }
wait_heard "$box" "sold_out back_in_stock sold_out back_in_stock "
# anything heard after it would be wrong: give it a moment to show
sleep 1
kill $pids 2>/dev/null

echo "heard for the product sold from its row: $(heard "$row")"
echo "heard for the product in 8 slots: $(heard "$slots")"
check "a listener hears sold out, back in stock, sold out (its row)" \
	[ "$(heard "$row")" = "sold_out back_in_stock sold_out " ]
check "a listener hears sold out, back in stock, sold out (8 stock slots)" \
	[ "$(heard "$slots")" = "sold_out back_in_stock sold_out " ]
check "back in stock carries the stock on sale (5)" \
	sh -c "grep -o '{[^}]*}' '$tmp/heard' | grep back_in_stock | grep -q '\"stock\" : 5'"
echo "heard for the part: $(heard "$part")"
echo "heard for a bundle of it, never bought: $(heard "$box")"
echo "heard for a bundle of it, bought till the part ran out: $(heard "$kit")"
check "a bundle goes sold out with its part (bought through another bundle, then on its own) and comes back with it" \
	[ "$(heard "$box")" = "sold_out back_in_stock sold_out back_in_stock " ]
check "the part is heard sold out, back, sold out, back" \
	[ "$(heard "$part")" = "sold_out back_in_stock sold_out back_in_stock " ]
check "the bundle bought till its part ran out is heard as its part is" \
	[ "$(heard "$kit")" = "sold_out back_in_stock sold_out back_in_stock " ]
check "a bundle back in stock carries what its parts make (4)" \
	sh -c "grep -o '{[^}]*}' '$tmp/heard' | grep '\"product_id\" : $box, ' | grep back_in_stock | tail -1 | grep -q '\"stock\" : 4'"
check "nothing is flagged once all is told (stock_watch empty)" \
	[ "$(psql -X -At -d "$db" -c "SELECT count(*) FROM stock_watch")" = 0 ]
exit "$failed"
