#!/bin/sh
# make demo SHARDS=N: the flash sale on a shop sharded by customer over N
# shard clusters behind a PL/Proxy proxy (sharding/test/lib.sh,
# docs/scale-out.md): BUYERS buyers spread over the shards race for STOCK
# units split evenly into the shards' quotas, through the proxy, with
# idempotency keys; then the summary over the whole shop, and per shard.
set -eu
cd "$(dirname "$0")/../.."
. test/lib.sh
. sharding/test/lib.sh
: "${SHARDS:=4}" "${BUYERS:=33}" "${STOCK:=20}" "${SPREAD:=skewed}"
trap stop_shop EXIT INT TERM

echo "Starting a proxy and $SHARDS shard clusters (PL/Proxy, ports $SHOP_PORT-$((SHOP_PORT + SHARDS)))"
start_shop "$SHARDS"
new_shop "$SHARDS"
proxy_psql -f sharding/test/sale.sql >/dev/null
proxy_value "SELECT sale_setup($BUYERS, '$SPREAD', 1, $STOCK, 1, 1)" >/dev/null
echo "Flash sale through the proxy: $BUYERS buyers ($SPREAD over the shards), $STOCK in stock split into $SHARDS quotas"
echo
run_sale "$BUYERS" 32

proxy_psql -P footer=off <<SQL
\\echo 'The whole shop:'
SELECT count(order_id) AS orders,
	   count(*) FILTER (WHERE sqlstate = 'SH001') AS "rejected (SH001)",
	   count(*) FILTER (WHERE order_id IS NULL AND sqlstate <> 'SH001') AS "other errors",
	   (SELECT sum(stock) FROM shop_product_stock()) AS "stock left",
	   (SELECT sum(in_transit) FROM shop_product_stock()) AS "in transit"
  FROM sale_outcomes;
\\echo 'Per shard:'
SELECT b.shard, b.buyers, b.orders, b.rejected, s.stock AS "quota left"
  FROM (SELECT shop_shard_of(o.customer_id) AS shard, count(*) AS buyers,
			   count(o.order_id) AS orders,
			   count(*) FILTER (WHERE o.sqlstate = 'SH001') AS rejected
		  FROM sale_outcomes AS o GROUP BY 1) AS b
  JOIN shard_stock() AS s USING (shard)
 ORDER BY b.shard;
\\echo 'Stock moved between shards by pulls:'
SELECT count(*) FILTER (WHERE direction = 'out') AS transfers,
	   coalesce(sum(quantity) FILTER (WHERE direction = 'out'), 0) AS units
  FROM shard_transfers();
\\echo 'Integrity (every shard and the ledger across them):'
SELECT CASE count(*) WHEN 0 THEN 'clean' ELSE count(*) || ' problems' END AS integrity
  FROM shop_check_integrity();
SQL
oversold=$(proxy_value "SELECT count(order_id) > $STOCK FROM sale_outcomes")
[ "$oversold" = f ] && [ "$(proxy_value 'SELECT count(*) FROM shop_check_integrity()')" = 0 ]
