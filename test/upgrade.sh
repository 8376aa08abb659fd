#!/bin/sh
# Upgrades (make test): a shop on each released version (1.0, 1.1) with data
# in it, then ALTER EXTENSION checkout UPDATE.  Checks that it ends at the
# default version with exactly the objects of a fresh install
# (test/fixtures/extension_objects.sql), that its data is untouched
# (test/fixtures/shop_rows.sql before and after), and that it still works
# (shop_works: integrity clean, a checkout succeeds, opening stock
# recorded).  The data is made by test/fixtures/shop_data.sql, which works
# on every version since 1.0.  Last, it shows that the "still works" check
# can fail: the same check on an upgraded shop whose checkout is broken.
# Prints "check: ok|FAILED" lines.
set -u
cd "$(dirname "$0")/.."
. test/lib.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

default=$(sed -n "s/^default_version = '\(.*\)'/\1/p" checkout.control)
# objects DATABASE [EXTENSION]: the extension's objects (checkout by default)
objects() {
	psql -X -v ON_ERROR_STOP=1 -v ext="${2:-checkout}" -d "$1" -f test/fixtures/extension_objects.sql
}
rows() { psql -X -v ON_ERROR_STOP=1 -d "$1" -f test/fixtures/shop_rows.sql; }

new_db checkout_fresh checkout || exit 1
objects checkout_fresh >"$tmp/fresh" || exit 1

# upgraded DATABASE VERSION: a shop on VERSION with data, updated.  On
# PostgreSQL 18 and later, 1.0's and 1.1's shop_spread_stock divides by
# zero for a product without slots (18 evaluates stock % 0 where 15 and 17
# did not), so no shop there could have restocked one: the old install gets
# 1.2's definition first, and the data is seeded as such a shop's would be.
upgraded() {
	new_db "$1" "checkout VERSION '$2'" || return 1
	if [ "$(psql -X -At -d "$1" -c 'SHOW server_version_num')" -ge 180000 ]; then
		sed -n '/^CREATE OR REPLACE FUNCTION @extschema@.shop_spread_stock/,/^END;/p' \
			checkout--1.1--1.2.sql | sed 's/@extschema@/public/g' |
			psql -X -q -v ON_ERROR_STOP=1 -d "$1" || return 1
	fi
	psql -X -q -v ON_ERROR_STOP=1 -d "$1" -f test/fixtures/shop_data.sql >/dev/null || return 1
	rows "$1" >"$tmp/data-before" || return 1
	sql "$1" "ALTER EXTENSION checkout UPDATE"
}

# voucher_works DATABASE: the updated shop redeems a voucher (1.2): a 10%
# code limited to one use discounts a new customer's order, and a second
# customer's checkout with it is refused with SH010; integrity stays clean
voucher_works() {
	[ "$(psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "
		SELECT shop_add_voucher_code(shop_create_voucher('Upgrade 10%', percent_off => 10,
														 usage_limit => 1), 'UPGRADE10');
		INSERT INTO customers (name) VALUES ('Voucher A'), ('Voucher B');
		INSERT INTO cart_items (customer_id, product_id, quantity)
		SELECT c.id, p.product_id, 1
		  FROM customers AS c,
			   (SELECT min(product_id) AS product_id FROM product_stock WHERE stock >= 2) AS p
		 WHERE c.name LIKE 'Voucher _';
		SELECT shop_checkout((SELECT id FROM customers WHERE name = 'Voucher A'),
							 NULL, 'upgrade10') > 0;
		SELECT o.discount_cents * 10 = o.total_cents + o.discount_cents
		  FROM orders AS o WHERE o.voucher_id IS NOT NULL;
		DO \$\$ BEGIN
			PERFORM shop_checkout((SELECT id FROM customers WHERE name = 'Voucher B'),
								  NULL, 'UPGRADE10');
			RAISE EXCEPTION 'the second use of a voucher limited to one went through';
		EXCEPTION WHEN SQLSTATE 'SH010' THEN NULL;
		END \$\$;
		SELECT count(*) FROM shop_check_integrity();" | tr '\n' ' ')" = "UPGRADE10 t t 0 " ]
}

# locations_work DATABASE: the updated shop's stock is all in the default
# location (1.2): no other location's stock, every movement at location 1,
# each product's stock on sale its default location's; then a location
# created serves, with the default, a cart neither can alone (split), and
# integrity stays clean
locations_work() {
	[ "$(psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "
		SELECT (SELECT count(*) FROM location_stock) = 0
		   AND (SELECT count(*) FROM stock_movements WHERE location_id <> 1) = 0
		   AND NOT EXISTS (SELECT FROM product_stock AS ps
							 JOIN stock_by_location AS b ON b.product_id = ps.product_id
							WHERE b.location_id = 1 AND b.stock <> ps.stock);
		INSERT INTO products (name, price_cents, stock) VALUES ('Upgrade Located', 100, 1);
		INSERT INTO customers (name) VALUES ('Location A');
		SELECT shop_restock((SELECT id FROM products WHERE name = 'Upgrade Located'), 2,
							'upgrade test', shop_create_location('Upgrade North', 1));
		INSERT INTO cart_items (customer_id, product_id, quantity)
		SELECT c.id, p.id, 3 FROM customers AS c, products AS p
		 WHERE c.name = 'Location A' AND p.name = 'Upgrade Located';
		SELECT shop_checkout((SELECT id FROM customers WHERE name = 'Location A')) > 0;
		SELECT string_agg(a.location_id || ':' || a.quantity, ',' ORDER BY a.location_id)
		  FROM order_item_allocations AS a;
		SELECT count(*) FROM shop_check_integrity();" | tr '\n' ' ')" = "t 2 t 1:1,2:2 0 " ]
}

for from in 1.0 1.1 1.2; do
	db=checkout_upgrade_$(echo "$from" | tr . _)
	upgraded "$db" "$from" || exit 1

	version=$(psql -X -At -d "$db" -c "SELECT extversion FROM pg_extension WHERE extname = 'checkout'")
	check "$from updates to the default version $default (got $version)" [ "$version" = "$default" ]

	objects "$db" >"$tmp/upgraded" || exit 1
	check "$from updated has exactly the objects of a fresh install ($(wc -l <"$tmp/fresh") lines)" \
		diff -u "$tmp/fresh" "$tmp/upgraded"

	rows "$db" >"$tmp/data-after" || exit 1
	check "$from updated keeps every row and sequence ($(wc -l <"$tmp/data-before") lines)" \
		diff -u "$tmp/data-before" "$tmp/data-after"
	check "$from updated works: integrity clean, a checkout succeeds, opening stock recorded" \
		shop_works "$db"
	check "$from updated redeems a voucher: discounted once, then SH010, integrity clean" \
		voucher_works "$db"
	check "$from updated has all its stock in the default location, and a new one serves a split cart" \
		locations_work "$db"
	# 1.3: a test suite's reset (every table truncated) leaves a working shop
	sql "$db" "DO \$\$ BEGIN EXECUTE (SELECT 'TRUNCATE ' || string_agg(c.oid::regclass::text, ', ')
		|| ' RESTART IDENTITY CASCADE' FROM pg_depend AS d JOIN pg_class AS c ON c.oid = d.objid
		WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'checkout')
		AND d.deptype = 'e' AND c.relkind = 'r'); END \$\$" || exit 1
	reset=$(psql -X -q -At -d "$db" -f test/fixtures/shop_after_reset.sql 2>&1 | tail -n 1)
	check "$from updated survives a reset of every table (got $reset)" [ "$reset" = works ]
	sql postgres "DROP DATABASE $db"
done

# 1.0 had no payment window and no cancellation: its orders stay placed
upgraded checkout_upgrade_1_0 1.0 || exit 1
new=$(psql -X -At -d checkout_upgrade_1_0 -c "
	SELECT (SELECT string_agg(DISTINCT status, ',') FROM orders) || ' '
		|| (SELECT sum(cancelled_quantity) FROM order_items) || ' '
		|| (SELECT count(*) FROM orders WHERE expires_at IS NOT NULL)")
check "1.0's orders are placed, never expire, nothing cancelled (got $new)" [ "$new" = "placed 0 0" ]

# The check above can fail: an upgraded shop whose checkout raises (its
# customer's cart emptied) or whose ledger is off (stock changed behind the
# ledger's back) does not pass shop_works
sql checkout_upgrade_1_0 "DELETE FROM cart_items WHERE customer_id = 10" || exit 1
check "shop_works fails when the upgraded shop's checkout fails" \
	sh -c '. test/lib.sh; ! shop_works checkout_upgrade_1_0 2>/dev/null'
upgraded checkout_upgrade_1_0 1.0 || exit 1
sql checkout_upgrade_1_0 "UPDATE products SET stock = stock + 1 WHERE id = 2" || exit 1
check "shop_works fails when the upgraded shop's books are off" \
	sh -c '. test/lib.sh; ! shop_works checkout_upgrade_1_0 2>/dev/null'

sql postgres "DROP DATABASE checkout_fresh" "DROP DATABASE checkout_upgrade_1_0"

# checkout_shard (sharding/): its 1.1 updated has the objects of a fresh
# install, and the role the proxy connects as, granted before the update,
# may call the new functions (as after a grant on a fresh install)
sql postgres "DROP ROLE IF EXISTS regress_shard_proxy" "CREATE ROLE regress_shard_proxy" || exit 1
new_db checkout_shard_fresh checkout checkout_shard || exit 1
new_db checkout_shard_upgrade checkout "checkout_shard VERSION '1.1'" || exit 1
sql checkout_shard_fresh "SELECT checkout_shard.shop_shard_grant_proxy('regress_shard_proxy')" || exit 1
sql checkout_shard_upgrade "SELECT checkout_shard.shop_shard_grant_proxy('regress_shard_proxy')" \
	"ALTER EXTENSION checkout_shard UPDATE" || exit 1
shard_default=$(sed -n "s/^default_version = '\(.*\)'/\1/p" sharding/checkout_shard.control)
version=$(psql -X -At -d checkout_shard_upgrade -c "SELECT extversion FROM pg_extension WHERE extname = 'checkout_shard'")
check "checkout_shard 1.1 updates to $shard_default (got $version)" [ "$version" = "$shard_default" ]
objects checkout_shard_fresh checkout_shard >"$tmp/shard-fresh" &&
	objects checkout_shard_upgrade checkout_shard >"$tmp/shard-upgraded" || exit 1
check "checkout_shard 1.1 updated has exactly the objects of a fresh install ($(wc -l <"$tmp/shard-fresh") lines)" \
	diff -u "$tmp/shard-fresh" "$tmp/shard-upgraded"
granted=$(psql -X -At -d checkout_shard_upgrade -c "
	SELECT has_function_privilege('regress_shard_proxy', 'checkout_shard.checkout(bigint, text, text)', 'EXECUTE')
	   AND has_function_privilege('regress_shard_proxy', 'checkout_shard.create_voucher(bigint, text, integer, bigint, integer, timestamptz, timestamptz, bigint)', 'EXECUTE')")
check "checkout_shard 1.1 updated: the proxy's role may call the new functions (got $granted)" [ "$granted" = t ]
# the 1.2 functions find checkout's objects through a search_path that
# names checkout's schema, wherever it was created: on 16 and later written
# by the server (@extschema:checkout@), on 15 pinned by the script's DO block
sql checkout_shard_upgrade "DROP EXTENSION checkout_shard" "DROP EXTENSION checkout" \
	'CREATE SCHEMA "Shop Schema"' 'CREATE EXTENSION checkout SCHEMA "Shop Schema"' \
	"CREATE EXTENSION checkout_shard VERSION '1.1'" "ALTER EXTENSION checkout_shard UPDATE" || exit 1
path=$(psql -X -At -d checkout_shard_upgrade -c "
	SELECT array_to_string(proconfig, ' ') FROM pg_proc
	 WHERE oid = 'checkout_shard.checkout(bigint, text, text)'::regprocedure")
check "checkout_shard 1.2's functions pin checkout's schema, quoted (got $path)" \
	[ "$path" = 'search_path=pg_catalog, "Shop Schema", pg_temp' ]
sql postgres "DROP DATABASE checkout_shard_fresh" "DROP DATABASE checkout_shard_upgrade" \
	"DROP ROLE regress_shard_proxy"

# checkout_proxy (sharding/): its 1.1 updated has the objects of a fresh
# install and keeps its one piece of data, the product id sequence (where
# PL/Proxy is installed: make test on 15; the roots of make test PG=17 and
# PG=18 leave the sharded shop out)
if [ "$(psql -X -At -d postgres -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'plproxy'")" != 1 ]; then
	echo "upgrade: checkout_proxy left out: PL/Proxy is not installed for this server"
	exit "$failed"
fi
proxy_default=$(sed -n "s/^default_version = '\(.*\)'/\1/p" sharding/checkout_proxy.control)
new_db checkout_proxy_fresh plproxy checkout_proxy || exit 1
new_db checkout_proxy_upgrade plproxy "checkout_proxy VERSION '1.1'" || exit 1
sql checkout_proxy_upgrade "SELECT setval('product_id_seq', 41)" "ALTER EXTENSION checkout_proxy UPDATE" || exit 1
version=$(psql -X -At -d checkout_proxy_upgrade -c "SELECT extversion FROM pg_extension WHERE extname = 'checkout_proxy'")
check "checkout_proxy 1.1 updates to $proxy_default (got $version)" [ "$version" = "$proxy_default" ]
objects checkout_proxy_fresh checkout_proxy >"$tmp/proxy-fresh" &&
	objects checkout_proxy_upgrade checkout_proxy >"$tmp/proxy-upgraded" || exit 1
check "checkout_proxy 1.1 updated has exactly the objects of a fresh install ($(wc -l <"$tmp/proxy-fresh") lines)" \
	diff -u "$tmp/proxy-fresh" "$tmp/proxy-upgraded"
next=$(psql -X -At -d checkout_proxy_upgrade -c "SELECT nextval('product_id_seq')")
check "checkout_proxy 1.1 updated keeps its product ids (next: $next)" [ "$next" = 42 ]
sql postgres "DROP DATABASE checkout_proxy_fresh" "DROP DATABASE checkout_proxy_upgrade"
exit "$failed"
