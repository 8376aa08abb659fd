#!/bin/sh
# Upgrading during business (make test PG=17, inside its root, where the
# installed files may be swapped; run as root).  A shop on 1.1 sells to a
# crowd whose every call comes on a fresh connection (pgbench -C), each
# buyer with its idempotency key; mid-sale 1.2's files are installed (each
# renamed into place, as dpkg does), then ALTER EXTENSION checkout UPDATE
# runs from a new connection.
#
#  - without the preload, each new backend loads the library on disk: the
#    update goes through mid-sale;
#  - with shared_preload_libraries = 'checkout' every backend runs 1.1's
#    library until a restart: the update refuses with a clear error (1.2's
#    new C function shop_guard_drop is not in the old library) and changes
#    nothing; after a restart it goes through.
#
# Either way every call ends as an order or SH001, every order a buyer was
# told of is there, the stock sells out exactly, integrity is clean.
# Prints "check:" lines.  test/online-upgrade.sh sale MODE is the part that
# runs inside a throwaway cluster.
set -u
cd "$(dirname "$0")/.."
. test/lib.sh
default=$(sed -n "s/^default_version = '\(.*\)'/\1/p" checkout.control)
pg_config=/usr/lib/postgresql/$MAJOR/bin/pg_config
buyers=3000 stock=2500

if [ "${1:-}" != sale ]; then
	# 1.1 as released (test/major.sh put its tree beside the source)
	rm -rf /tmp/checkout-1.1 && mkdir /tmp/checkout-1.1 &&
		tar -xf ../checkout-1.1.tar -C /tmp/checkout-1.1 &&
		make -s -C /tmp/checkout-1.1 PG_CONFIG=$pg_config all install >/dev/null 2>&1 ||
		{ echo "check: FAILED building and installing 1.1"; exit 1; }
	pg_virtualenv -v "$MAJOR" -o max_connections=50 -- sh test/online-upgrade.sh sale plain
	make -s -C /tmp/checkout-1.1 PG_CONFIG=$pg_config install >/dev/null 2>&1 ||
		{ echo "check: FAILED installing 1.1"; exit 1; }
	pg_virtualenv -v "$MAJOR" -o max_connections=50 -o shared_preload_libraries=checkout \
		-- sh test/online-upgrade.sh sale preload
	# the current files back, whatever happened
	make -s PG_CONFIG=$pg_config install >/dev/null
	exit 0
fi
mode=$2

new_db shop "checkout VERSION '1.1'" || exit 1
psql -X -q -v ON_ERROR_STOP=1 -d shop >/dev/null <<SQL || exit 1
INSERT INTO products (name, price_cents, stock) VALUES ('Flash Sale Smartphone', 49900, $stock);
INSERT INTO customers (name) SELECT 'buyer ' || g FROM generate_series(1, $buyers) AS g;
INSERT INTO cart_items SELECT g, 1, 1 FROM generate_series(1, $buyers) AS g;
CREATE TABLE sale_outcomes (customer_id bigint PRIMARY KEY, order_id bigint, sqlstate text,
							message text, ms double precision);
CREATE SEQUENCE sale_next;
CREATE FUNCTION sale_buy(n bigint) RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE
	st text; msg text;
	started timestamptz := clock_timestamp();
BEGIN
	IF n > $buyers THEN RETURN; END IF;
	INSERT INTO sale_outcomes (customer_id, order_id, ms)
	VALUES (n, shop_checkout(n, 'sale-' || n),
			1000 * extract(epoch FROM clock_timestamp() - started));
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
	INSERT INTO sale_outcomes (customer_id, sqlstate, message, ms)
	VALUES (n, st, msg, 1000 * extract(epoch FROM clock_timestamp() - started));
END
\$\$;
SQL
script=$(mktemp)
echo "SELECT sale_buy(nextval('sale_next'));" >"$script"

# answered N: true once N buyers have their answer
answered() {
	[ "$(psql -X -At -d shop -c "SELECT count(*) >= $1 FROM sale_outcomes")" = t ]
}

# install_new_files: 1.2's files, each put in place by a rename, as dpkg
# installs a package's files (make install writes them in place: a backend
# starting meanwhile can find a half-written library and fail to load it)
install_new_files() {
	stage=$(mktemp -d)
	make -s PG_CONFIG=$pg_config DESTDIR="$stage" install >/dev/null || return 1
	(cd "$stage" && find . -type f) | while read -r f; do
		target=${f#.}
		cp -p "$stage/$f" "$target.checkout-new" && mv -f "$target.checkout-new" "$target" || exit 1
	done
	_rc=$?
	rm -rf "$stage"
	return $_rc
}

pgbench -n -C -c 8 -j 2 -t $((buyers / 8 + 1)) -f "$script" shop >"$script.out" 2>&1 &
sale=$!
until answered $((buyers / 4)); do sleep 0.05; done
install_new_files || exit 1
until answered $((buyers / 2)); do sleep 0.05; done
update_started=$(date +%s%N)
psql -X -q -d shop -c "ALTER EXTENSION checkout UPDATE" >"$script.update" 2>&1
updated=$?
update_ms=$((($(date +%s%N) - update_started) / 1000000))
version=$(psql -X -At -d shop -c "SELECT extversion FROM pg_extension WHERE extname = 'checkout'")
wait "$sale"
grep -E 'actually processed|failed' "$script.out"
echo "$mode: ALTER EXTENSION checkout UPDATE mid-sale: exit $updated in $update_ms ms, version $version $(cat "$script.update")"
# how long checkouts waited for it (checkout.lock_timeout 0: as long as it took)
psql -X -At -d shop -c "
	SELECT '$mode: checkouts during the sale: median '
		   || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1)
		   || ' ms, p99 ' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1)
		   || ' ms, longest ' || round(max(ms)::numeric, 1) || ' ms'
	  FROM sale_outcomes"

if [ "$mode" = plain ]; then
	check "$mode: the update went through mid-sale (version $version)" [ "$version" = "$default" ]
else
	check "$mode: the update refused while the old library runs (version $version)" [ "$version" = 1.1 ]
	check "$mode: with a clear error (the new function is not in the loaded library)" \
		grep -q 'could not find function "shop_guard_drop"' "$script.update"
	pg_ctlcluster "$MAJOR" regress restart || exit 1
	psql -X -q -d shop -c "ALTER EXTENSION checkout UPDATE" >"$script.update" 2>&1
	version=$(psql -X -At -d shop -c "SELECT extversion FROM pg_extension WHERE extname = 'checkout'")
	check "$mode: after a restart the update goes through (version $version)" [ "$version" = "$default" ]
fi

set -- $(psql -X -At -F ' ' -d shop -c "
	SELECT count(*), count(order_id),
		   count(*) FILTER (WHERE sqlstate IS NOT NULL AND sqlstate <> 'SH001')
	  FROM sale_outcomes")
check "$mode: every buyer got an answer ($1 of $buyers)" [ "$1" = "$buyers" ]
check "$mode: every answer an order or SH001 ($3 other errors)" [ "$3" = 0 ]
psql -X -At -d shop -c "SELECT DISTINCT sqlstate || ' ' || message FROM sale_outcomes
						 WHERE sqlstate <> 'SH001'" | head -5
check "$mode: the stock sold out exactly ($2 orders of $stock)" [ "$2" = "$stock" ]
missing=$(psql -X -At -d shop -c "
	SELECT count(*) FROM sale_outcomes AS s
	 WHERE s.order_id IS NOT NULL
	   AND NOT EXISTS (SELECT FROM orders AS o WHERE o.id = s.order_id AND o.customer_id = s.customer_id)")
check "$mode: every order a buyer was told of is there ($missing missing)" [ "$missing" = 0 ]
problems=$(psql -X -At -d shop -c "SELECT count(*) FROM shop_check_integrity()")
check "$mode: integrity clean ($problems problems)" [ "$problems" = 0 ]
rm -f "$script" "$script.out" "$script.update"
exit "$failed"
