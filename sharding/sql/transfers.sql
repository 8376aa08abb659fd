--
-- Stock between the shards' quotas: a move through the transfer ledger, a
-- checkout short on its shard that pulls the missing units from the other,
-- SH001 only when the whole shop is short (naming the shop's stock), the
-- rebalancer, and books that add up on both shards.
--
SELECT min(g) FILTER (WHERE shop_shard_of(g) = 0) AS c0,
	   max(g) FILTER (WHERE shop_shard_of(g) = 1) AS c1b
  FROM generate_series(1, 50) AS g \gset
SELECT shop_create_product('Limited Sneaker', 15000, 6) AS sneaker \gset
SELECT shop_move_stock(:sneaker, 0, 1, 2) AS moved;
SELECT shard, stock FROM unnest(checkout_read_stock(:sneaker)) ORDER BY shard;

-- shard 0 holds 1 of the 4 units Ada asks for: 3 are pulled from shard 1
SELECT shop_set_cart_item(:c0, :sneaker, 4);
SELECT shop_checkout(:c0) % 1024 AS ordered_on_shard;
SELECT shard, stock FROM unnest(checkout_read_stock(:sneaker)) ORDER BY shard;

-- 2 left in the shop: Edsger's 3 is short everywhere
SELECT shop_set_cart_item(:c1b, :sneaker, 3);
\set VERBOSITY default
SELECT shop_checkout(:c1b);
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT shard, stock FROM unnest(checkout_read_stock(:sneaker)) ORDER BY shard;

SELECT shop_rebalance(:sneaker) AS moved;
SELECT shard, stock FROM unnest(checkout_read_stock(:sneaker)) ORDER BY shard;
SELECT shop_settle_transfers() AS settled;
SELECT product_id = :sneaker AS sneaker, stock, in_transit FROM shop_product_stock()
 WHERE product_id = :sneaker;
SELECT * FROM shop_check_integrity();
