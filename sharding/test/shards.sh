#!/bin/sh
# make test-shards: the shop sharded by customer with PL/Proxy
# (docs/scale-out.md), on a proxy and four shard clusters of this machine
# (sharding/test/lib.sh).  Each check is a verdict line; the last line is
# "shards: N passed, N failed".
#
#  1. the seed's sale (20 in stock, 33 buyers) over 2 and 4 shards, the
#     buyers all on one shard, even, skewed: exactly 20 orders, 13 SH001,
#     0 left, nothing in transit, integrity clean on every shard and across;
#  2. 300 buyers with carts of 1 to 3 lines over 4 shards: stock conserved
#     per product over the shop, every buyer told the truth (an order
#     exactly its cart; SH001 only for a cart the final stock cannot serve);
#     and the rebalancer spreading a product's stock evenly;
#  3. errors through the proxy: the same SQLSTATE, message, detail and hint
#     as on the shard;
#  4. a stock transfer blocked at each of its three steps while the mover's
#     backend, the proxy, the sending or the receiving shard is killed, then
#     settled: every unit moved once;
#  5. a shard stopped mid-sale: its buyers get SH008, the others keep
#     buying; after it is back, retries with the keys give each buyer
#     exactly one answer and the books add up;
#  6. the proxy's connection dropped during a checkout: the retry with the
#     key returns the one order.
set -u
cd "$(dirname "$0")/../.."
. test/lib.sh
. sharding/test/lib.sh
trap stop_shop EXIT INT TERM

# expect NAME ACTUAL EXPECTED: a check comparing two values
expect() {
	if [ "$2" = "$3" ]; then
		check "$1" true
	else
		echo "  $1: got [$2], expected [$3]"
		check "$1" false
	fi
}

# a fresh sharded shop over N shards with the sale harness in its proxy
new_sale_shop() {
	new_shop "$1" && proxy_psql -f sharding/test/sale.sql >/dev/null
}

# books_add_up NAME N: over N shards, integrity clean everywhere, nothing in
# transit, and per product: stock now + units sold = stock at the start
books_add_up() {
	expect "$1: integrity clean on every shard and across" \
		"$(proxy_value 'SELECT count(*) FROM shop_check_integrity()')" 0
	expect "$1: nothing in transit" \
		"$(proxy_value 'SELECT coalesce(sum(in_transit), 0) FROM shop_product_stock()')" 0
	_sold=$(shard_sum "$2" "SELECT coalesce(sum(quantity - cancelled_quantity), 0) FROM order_items")
	_left=$(proxy_value 'SELECT sum(stock) FROM shop_product_stock()')
	_opening=$(shard_sum "$2" "SELECT coalesce(sum(quantity), 0) FROM stock_movements WHERE kind = 'opening'")
	expect "$1: stock conserved over the shop (left + sold = opening)" \
		"$((_left + _sold))" "$_opening"
}

echo "shards: starting a proxy and 4 shard clusters"
SHOP_CONNECTIONS=300 start_shop 4 || { echo "shards: FAILED cluster start"; exit 1; }

# ------------------------------------------------------- 1. the seed's sale
for shards in 2 4; do
	for spread in one even skewed; do
		name="seed sale over $shards shards, buyers $spread"
		new_sale_shop "$shards" || { check "$name" false; continue; }
		proxy_value "SELECT sale_setup(33, '$spread', 1, 20, 1, 1)" >/dev/null
		run_sale 33 33 || { check "$name: ran" false; continue; }
		expect "$name: 20 / 13 / 0" \
			"$(proxy_value "SELECT count(order_id) || ' / ' || count(*) FILTER (WHERE sqlstate = 'SH001')
								   || ' / ' || (SELECT sum(stock) FROM shop_product_stock())
							  FROM sale_outcomes")" "20 / 13 / 0"
		expect "$name: 33 answers, no other error" \
			"$(proxy_value "SELECT count(*) || ' ' || count(*) FILTER (WHERE sqlstate NOT IN ('SH001')) FROM sale_outcomes")" "33 0"
		expect "$name: 20 orders on the shards" \
			"$(shard_sum "$shards" 'SELECT count(*) FROM orders')" 20
		books_add_up "$name" "$shards"
	done
done

# ----------------------------------------- 2. 300 multi-line carts, 4 shards
name="300 carts of 1-3 lines over 4 shards"
new_sale_shop 4
proxy_value "SELECT sale_setup(300, 'even', 5, 120, 3, 3)" >/dev/null
# quotas uneven, as a sale that ran for a while leaves them
proxy_value "SELECT shop_move_stock(p, 1, 0, 20), shop_move_stock(p, 2, 0, 10) FROM generate_series(1, 5) p" >/dev/null
run_sale 300 32 || check "$name: ran" false
expect "$name: 300 answers, orders or SH001 only" \
	"$(proxy_value "SELECT count(*) || ' ' || count(*) FILTER (WHERE order_id IS NULL AND sqlstate <> 'SH001') FROM sale_outcomes")" "300 0"
books_add_up "$name" 4
# every order is exactly its buyer's cart, and that cart is empty now; a
# buyer rejected kept its cart, and some line of it cannot be served by
# what is left over the whole shop (stock only fell during the sale)
for k in 0 1 2 3; do
	shard_value "$k" "SELECT o.id, o.customer_id, string_agg(oi.product_id || 'x' || oi.quantity, ',' ORDER BY oi.product_id)
						   FROM orders o JOIN order_items oi ON oi.order_id = o.id GROUP BY o.id" 
done | sort >"$SHOP_DIR/orders"
for k in 0 1 2 3; do
	shard_value "$k" "SELECT customer_id, string_agg(product_id || 'x' || quantity, ',' ORDER BY product_id)
						   FROM cart_items GROUP BY customer_id"
done | sort >"$SHOP_DIR/carts"
proxy_value "SELECT order_id || '|' || customer_id FROM sale_outcomes WHERE order_id IS NOT NULL" | sort >"$SHOP_DIR/told"
expect "$name: every buyer told of an order has exactly that order" \
	"$(cut -d'|' -f1,2 "$SHOP_DIR/orders" | sort | cmp -s - "$SHOP_DIR/told" && echo same)" same
proxy_value "SELECT customer_id FROM sale_outcomes WHERE order_id IS NULL" | sort >"$SHOP_DIR/rejected"
expect "$name: the rejected kept their carts, the others' are empty" \
	"$(cut -d'|' -f1 "$SHOP_DIR/carts" | sort | cmp -s - "$SHOP_DIR/rejected" && echo same)" same
# the carts as set up, per buyer, against what was ordered
proxy_value "SELECT b.customer_id || '|' || string_agg(((b.n + l) % 5 + 1) || 'x' || (1 + (b.n * 7 + l) % 3), ','
				ORDER BY (b.n + l) % 5 + 1)
			   FROM sale_buyers b, generate_series(0, 2) l GROUP BY b.customer_id" | sort >"$SHOP_DIR/cart_setup"
cut -d'|' -f2,3 "$SHOP_DIR/orders" | sort >"$SHOP_DIR/ordered"
expect "$name: each order holds its buyer's whole cart, each rejected cart is untouched" \
	"$(cat "$SHOP_DIR/ordered" "$SHOP_DIR/carts" | sort | cmp -s - "$SHOP_DIR/cart_setup" && echo same)" same
left=$(proxy_value "SELECT string_agg(product_id || ':' || stock, ' ') FROM shop_product_stock()")
false_sold_out=0
while IFS='|' read -r customer lines; do
	servable=1
	for line in $(echo "$lines" | tr ',' ' '); do
		p=${line%x*} q=${line#*x}
		for s in $left; do
			[ "${s%:*}" = "$p" ] && [ "${s#*:}" -lt "$q" ] && servable=0
		done
	done
	[ "$servable" = 1 ] && { echo "  customer $customer rejected with $lines, left: $left"; false_sold_out=$((false_sold_out + 1)); }
done <"$SHOP_DIR/carts"
expect "$name: no false sold out" "$false_sold_out" 0

# ------------------------------------------- 2b. the rebalancer
name="rebalance ahead of a sale"
new_sale_shop 4
proxy_value "SELECT shop_create_product('Flash Sale Smartphone', 49900, 42)" >/dev/null
proxy_value "SELECT shop_move_stock(1, k, 0, 100) FROM generate_series(1, 3) AS k" >/dev/null
expect "$name: all on shard 0 first" \
	"$(proxy_value "SELECT string_agg(stock::text, ' ' ORDER BY shard) FROM shard_stock()")" "42 0 0 0"
expect "$name: 31 units moved" "$(proxy_value 'SELECT shop_rebalance(1)')" 31
expect "$name: quotas even, the first shards one more" \
	"$(proxy_value "SELECT string_agg(stock::text, ' ' ORDER BY shard) FROM shard_stock()")" "11 11 10 10"
expect "$name: nothing to move the second time" "$(proxy_value 'SELECT shop_rebalance(1)')" 0
# the cart as a storefront shows it: a customer whose shard's quota is 0
# sees the whole shop's stock, and that a checkout would succeed
c=$(proxy_value "SELECT g FROM generate_series(100, 200) AS g WHERE shop_shard_of(g) = 3 LIMIT 1")
proxy_value "SELECT shop_create_customer($c, 'Far Buyer'), shop_set_cart_item($c, 1, 12)" >/dev/null
proxy_value "SELECT shop_move_stock(1, 3, 0, 10)" >/dev/null
expect "$name: cart status with the shop's stock where the shard is short" \
	"$(proxy_value "SELECT available || ' ' || can_fulfil || ' ' || checkout_would_succeed FROM shop_cart_status($c)")" "42 true true"
expect "$name: the shard's own view says 0" \
	"$(shard_value 3 "SELECT available || ' ' || checkout_would_succeed FROM shop_cart_status($c)")" "0 false"
proxy_value "SELECT shop_set_cart_item($c, 1, 43)" >/dev/null
expect "$name: and that 43 cannot be had" \
	"$(proxy_value "SELECT available || ' ' || can_fulfil || ' ' || checkout_would_succeed FROM shop_cart_status($c)")" "42 false false"
proxy_value "SELECT shop_set_cart_item($c, 1, 0)" >/dev/null
proxy_value "SELECT shop_rebalance(1)" >/dev/null
books_add_up "$name" 4

# a product's price changed through the proxy on every shard; an order
# paid and another cancelled through the proxy, routed by their ids
name="products and orders through the proxy"
expect "$name: a price change reaches every shard" \
	"$(proxy_value "SELECT shop_update_product(1, NULL, 39900)") $(shard_sum 4 "SELECT count(*) FROM products WHERE price_cents = 39900")" "4 4"
proxy_value "SELECT shop_create_customer(c, 'Buyer ' || c), shop_set_cart_item(c, 1, 2)
			   FROM generate_series(1, 8) AS c" >/dev/null
proxy_value "SELECT shop_checkout(c, 'pay-' || c) FROM generate_series(1, 8) AS c" >/dev/null
expect "$name: 8 orders at the new price, on their buyers' shards" \
	"$(proxy_value "SELECT count(*) FROM generate_series(1, 8) AS c WHERE shop_checkout(c, 'pay-' || c) % 1024 = shop_shard_of(c)")" 8
expect "$name: shop_pay and shop_cancel_order find each order's shard" \
	"$(proxy_value "SELECT string_agg(CASE WHEN c % 2 = 0 THEN shop_pay(shop_checkout(c, 'pay-' || c), 'psp-' || c)
										ELSE shop_cancel_order(shop_checkout(c, 'pay-' || c), 'test') END, ' ' ORDER BY c)
					  FROM generate_series(1, 4) AS c")" "cancelled paid cancelled paid"
expect "$name: totals at the new price, cancelled stock back" \
	"$(shard_sum 4 "SELECT coalesce(sum(total_cents), 0) FROM orders") $(proxy_value 'SELECT stock FROM shop_product_stock()')" \
	"$((8 * 2 * 39900)) $((42 - 16 + 4))"
books_add_up "$name" 4

# partitions of the PL/Proxy cluster in the wrong order: found
name="partitions in the wrong order"
new_sale_shop 2
proxy_psql -c "ALTER SERVER checkout_shards OPTIONS (SET p0 '$(shard_conninfo 1)', SET p1 '$(shard_conninfo 0)')"
expect "$name: shop_check_integrity names both" \
	"$(proxy_value "SELECT string_agg(problem || ' ' || shard, ', ' ORDER BY shard) FROM shop_check_integrity()")" \
	"shard_misnumbered 0, shard_misnumbered 1"

# --------------------------------------------- 3. errors through the proxy
name="errors through the proxy"
# the same small shop twice: once for the proxy's run, once for the shard's
errors_shop() {
	new_sale_shop 2 &&
		proxy_value "SELECT sale_setup(4, 'one', 2, 2, 1, 1)" >/dev/null &&
		proxy_value "SELECT shop_set_purchase_limit(2, 1)" >/dev/null
}
errors_shop
c1=$(proxy_value "SELECT customer_id FROM sale_buyers WHERE n = 1")
c2=$(proxy_value "SELECT customer_id FROM sale_buyers WHERE n = 2")
o1=$(proxy_value "SELECT shop_checkout($c1)")
# the same statements on the proxy and on the shard (shard 0 holds them all)
cat >"$SHOP_DIR/errors.sql" <<SQL
\\set VERBOSITY verbose
\\set SHOW_CONTEXT never
SELECT shop_checkout($c1);
SELECT shop_checkout(999999999);
SELECT shop_checkout(NULL);
SELECT shop_checkout($c2, '');
SELECT shop_pay($o1, '');
SELECT shop_cancel_order($o1, 'buyer changed their mind');
SELECT shop_pay($o1, 'psp-1');
SELECT shop_cart_status(NULL);
SQL
# (without the server's source locations and the times in details)
errors_as_seen() {
	grep -v '^LOCATION:' | sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.+-]+/TIME/g'
}
proxy_psql -v ON_ERROR_STOP=0 -f "$SHOP_DIR/errors.sql" 2>&1 | errors_as_seen >"$SHOP_DIR/errors.proxy"
errors_shop
o1b=$(shard_value 0 "SELECT shop_checkout($c1)")
PGHOST=$SHOP_DIR PGPORT=$(node_port shard0) PGUSER=postgres psql -X -q -d shop -v ON_ERROR_STOP=0 \
	-f "$SHOP_DIR/errors.sql" 2>&1 | errors_as_seen >"$SHOP_DIR/errors.shard"
expect "$name: the same order id on a fresh shop (ids carry the shard)" "$o1b" "$o1"
expect "$name: 7 errors" "$(grep -c '^psql:.*ERROR:' "$SHOP_DIR/errors.proxy")" 7
if diff "$SHOP_DIR/errors.shard" "$SHOP_DIR/errors.proxy" >"$SHOP_DIR/errors.diff"; then
	check "$name: SQLSTATE, message, detail and hint as the shard's" true
else
	cat "$SHOP_DIR/errors.diff"
	check "$name: SQLSTATE, message, detail and hint as the shard's" false
fi
# SH001 across shards names the units the whole shop has
proxy_value "SELECT shop_set_cart_item($c2, 1, 5)" >/dev/null
expect "$name: SH001 with the shop's stock" \
	"$(proxy_psql -c "\\set VERBOSITY verbose" -c "SELECT shop_checkout($c2)" 2>&1 | sed -n 's/^ERROR:  //p')" \
	"SH001: Insufficient stock for Flash Sale Item 1 (available: 2, requested: 5)"

# a storefront role granted on the proxy checks out; one not granted cannot
proxy_psql -c "CREATE ROLE regress_proxy_app" -c "CREATE ROLE regress_proxy_nobody" \
	-c "SELECT shop_grant_app('regress_proxy_app')" >/dev/null 2>&1
proxy_value "SELECT shop_set_cart_item($c2, 1, 1)" >/dev/null
expect "$name: a role granted shop_grant_app checks out through the proxy" \
	"$(proxy_psql -At -c "SET ROLE regress_proxy_app" -c "SELECT shop_checkout($c2, 'granted') % 1024" 2>&1)" 0
expect "$name: a role not granted gets 42501" \
	"$(proxy_psql -c "\\set VERBOSITY verbose" -c "SET ROLE regress_proxy_nobody" -c "SELECT shop_checkout($c2)" 2>&1 |
		sed -n 's/^ERROR:  \([0-9A-Z]*\):.*/\1/p')" 42501
proxy_psql -c "DROP OWNED BY regress_proxy_app, regress_proxy_nobody" \
	-c "DROP ROLE regress_proxy_app" -c "DROP ROLE regress_proxy_nobody" >/dev/null 2>&1

# ------------------------------------- 4. a transfer killed at each step
# Each step of a transfer (send on shard 0, receive on shard 1, mark
# delivered on shard 0) is blocked by a lock held in another session; once
# the step's backend waits for it, the mover's backend, the proxy, the
# sender or the receiver is killed; then the lock is released, the victim
# restarted and the transfers settled.  A transfer whose send committed is
# delivered exactly once; one whose send did not moves nothing.  Only a
# send on a shard that was stopped never commits: a send whose caller died
# still commits once it gets its lock (the shard notices the lost client
# only when it answers), and then settling delivers it.
row_lock="SELECT FROM products WHERE id = 1 FOR UPDATE"
table_lock="LOCK TABLE checkout_shard.stock_transfers IN EXCLUSIVE MODE"
for step in send receive mark_delivered; do
	for victim in mover proxy sender receiver; do
		name="transfer killed at $step ($victim)"
		new_sale_shop 2
		proxy_value "SELECT shop_create_product('Flash Sale Smartphone', 49900, 20)" >/dev/null
		case $step in
		send) hold shard0 holder0 "$row_lock" ;;
		*) hold shard1 holder1 "$row_lock" ;;
		esac
		PGAPPNAME=mover proxy_psql -c "SELECT shop_move_stock(1, 0, 1, 3)" >/dev/null 2>&1 &
		mover=$!
		case $step in
		send) wait_until shard0 shop "$(waiting_on checkout_shard.send)" ;;
		receive) wait_until shard1 shop "$(waiting_on checkout_shard.receive)" ;;
		mark_delivered)
			# the send has committed and the receive waits: block the mark on
			# the sender, then let the receive go
			wait_until shard1 shop "$(waiting_on checkout_shard.receive)" &&
				hold shard0 holder0 "$table_lock" && release shard1 holder1 &&
				wait_until shard0 shop "$(waiting_on checkout_shard.mark_delivered)" ;;
		esac || check "$name: the step waits for the lock" false
		case $victim in
		mover) proxy_value "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
							 WHERE application_name = 'mover'" >/dev/null ;;
		proxy) shop_ctl stop -s -m immediate -D "$SHOP_DIR/proxy" ;;
		sender) stop_shard 0 ;;
		receiver) stop_shard 1 ;;
		esac
		release shard0 holder0
		release shard1 holder1
		wait "$mover"
		wait
		case $victim in
		proxy) start_node proxy ;;
		sender) start_shard 0 ;;
		receiver) start_shard 1 ;;
		esac
		# the blocked step, if its shard is up, has finished
		for k in 0 1; do
			wait_until "shard$k" shop "SELECT NOT EXISTS (SELECT FROM pg_stat_activity
									 WHERE query LIKE '%checkout_shard.%' AND state = 'active'
									 AND pid <> pg_backend_pid())"
		done
		proxy_value "SELECT shop_settle_transfers()" >/dev/null
		s0=$(shard_value 0 "SELECT stock FROM products WHERE id = 1")
		s1=$(shard_value 1 "SELECT stock FROM products WHERE id = 1")
		outs=$(shard_value 0 "SELECT count(*) FROM checkout_shard.stock_transfers WHERE direction = 'out'")
		ins=$(shard_value 1 "SELECT count(*) FROM checkout_shard.stock_transfers WHERE direction = 'in'")
		case "$step $victim" in
		"send sender") expect "$name: nothing moved (stock 0 / 1, out / in)" "$s0 $s1 $outs $ins" "10 10 0 0" ;;
		*) expect "$name: moved once (stock 0 / 1, out / in)" "$s0 $s1 $outs $ins" "7 13 1 1" ;;
		esac
		books_add_up "$name" 2 >"$SHOP_DIR/books"
		if grep -q FAILED "$SHOP_DIR/books"; then
			cat "$SHOP_DIR/books"
			check "$name: books add up" false
		else
			check "$name: books add up" true
		fi
	done
done

# ------------------------------------------ 5. a shard stopped mid-sale
name="shard 2 of 4 stopped mid-sale"
new_sale_shop 4
proxy_value "SELECT sale_setup(2400, 'even', 1, 1200, 1, 1)" >/dev/null
run_sale 2400 32 &
sale=$!
until [ "$(proxy_value 'SELECT count(*) FROM sale_outcomes')" -ge 100 ] || ! kill -0 "$sale" 2>/dev/null; do
	sleep 0.05
done
stop_shard 2
wait "$sale"
expect "$name: its buyers after the stop got SH008, no one else did" \
	"$(proxy_value "SELECT count(*) FILTER (WHERE sqlstate = 'SH008' AND shop_shard_of(customer_id) <> 2)
					 || ' ' || (count(*) FILTER (WHERE sqlstate = 'SH008') > 0)
					FROM sale_outcomes")" "0 true"
expect "$name: the other shards kept selling after the stop" \
	"$(proxy_value "SELECT count(*) > 0 FROM sale_outcomes WHERE order_id IS NOT NULL AND shop_shard_of(customer_id) <> 2
					 AND at > (SELECT min(at) FROM sale_outcomes WHERE sqlstate = 'SH008')")" t
expect "$name: SH008 names the shard" \
	"$(proxy_value "SELECT DISTINCT message FROM sale_outcomes WHERE sqlstate = 'SH008'")" "shard 2 is unavailable"
start_shard 2
# every buyer without an order retries once with its key, one at a time
proxy_value "SELECT sale_buy(b.n) FROM sale_buyers b
			  WHERE b.customer_id IN (SELECT customer_id FROM sale_outcomes WHERE sqlstate = 'SH008')" >/dev/null
proxy_value "SELECT shop_settle_transfers()" >/dev/null
expect "$name: after the retries each buyer has at most one order, as told" \
	"$(shard_sum 4 'SELECT count(*) - count(DISTINCT customer_id) FROM orders') $(shard_sum 4 'SELECT count(*) FROM orders')" \
	"0 $(proxy_value "SELECT count(DISTINCT customer_id) FROM sale_outcomes WHERE order_id IS NOT NULL")"
expect "$name: 1200 sold in all" "$(shard_sum 4 'SELECT count(*) FROM orders')" 1200
books_add_up "$name" 4

# ---------------------------- 6. the proxy's connection dropped mid-checkout
name="proxy connection dropped mid-checkout"
new_sale_shop 2
proxy_value "SELECT sale_setup(1, 'even', 1, 10, 1, 1)" >/dev/null
c=$(proxy_value "SELECT customer_id FROM sale_buyers")
k=$(proxy_value "SELECT shop_shard_of($c)")
hold "shard$k" holder "SELECT FROM cart_items WHERE customer_id = $c FOR UPDATE"
PGAPPNAME=first proxy_psql -At -c "SELECT shop_checkout($c, 'dropped-1')" >"$SHOP_DIR/first" 2>&1 &
first=$!
wait_until "shard$k" shop "$(waiting_on checkout_shard.checkout)"
proxy_value "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			  WHERE application_name = 'first'" >/dev/null
wait "$first"
release "shard$k" holder
expect "$name: the client lost its connection" \
	"$(grep -q 'terminat\|server closed the connection' "$SHOP_DIR/first" && echo yes)" yes
retry=$(proxy_value "SELECT shop_checkout($c, 'dropped-1')")
expect "$name: the retry with the key returns the one order" \
	"$(shard_value "$k" "SELECT string_agg(id::text, ',') FROM orders WHERE customer_id = $c")" "$retry"
expect "$name: one unit sold" "$(proxy_value 'SELECT stock FROM shop_product_stock()')" 9
books_add_up "$name" 2

echo "shards: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
