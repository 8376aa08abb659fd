--
-- Vouchers through the proxy (1.2): a voucher and its code on every shard
-- with one id, a checkout with the code on each customer's shard, the limit
-- per customer holding shop-wide (a customer buys on its shard only), and
-- what a sharded shop cannot count exactly refused at creation: a usage
-- limit and single-use codes (0A000).  The shard's errors come through.
--
SELECT min(g) FILTER (WHERE shop_shard_of(g) = 0) AS c0,
	   min(g) FILTER (WHERE shop_shard_of(g) = 1) AS c1
  FROM generate_series(100, 150) AS g \gset
SELECT shop_create_product('Voucher Phone', 10000, 20) AS phone \gset
SELECT shop_create_customer(:c0, 'Vera'), shop_create_customer(:c1, 'Victor');
SELECT shop_set_cart_item(:c0, :phone, 1), shop_set_cart_item(:c1, :phone, 2);
SELECT shop_create_voucher('Sharded 10%', percent_off => 10, per_customer_limit => 1) AS voucher \gset
SELECT shop_add_voucher_code(:voucher, 'SHARD10');

-- on every shard, with the proxy's id
\c checkout_regress_shard0
SELECT v.id, v.name, v.usage_limit, vc.code FROM vouchers v JOIN voucher_codes vc ON vc.voucher_id = v.id;
\c checkout_regress_shard1
SELECT v.id, v.name, v.usage_limit, vc.code FROM vouchers v JOIN voucher_codes vc ON vc.voucher_id = v.id;
\c contrib_regression

\set SHOW_CONTEXT never
SELECT shop_checkout(:c0, 'v-1', 'shard10') AS order0 \gset
SELECT shop_checkout(:c1, 'v-2', 'Shard10') AS order1 \gset
SELECT shop_checkout(:c0, 'v-1', 'shard10') = :order0 AS replayed;
-- the limit per customer, on the customer's shard
SELECT shop_set_cart_item(:c0, :phone, 1);
SELECT shop_checkout(:c0, 'v-3', 'SHARD10');
\echo :LAST_ERROR_SQLSTATE
SELECT shop_checkout(:c0, 'v-4', 'NOPE');
\echo :LAST_ERROR_SQLSTATE
-- refused at creation
SELECT shop_create_voucher('Limited', percent_off => 10, usage_limit => 100);
\echo :LAST_ERROR_SQLSTATE
SELECT shop_add_voucher_code(:voucher, 'ONCE', true);
\echo :LAST_ERROR_SQLSTATE
SELECT shop_add_voucher_code(:voucher, 'shard10');
\echo :LAST_ERROR_SQLSTATE

\c checkout_regress_shard0
SELECT customer_id > 0 AS customer, total_cents, discount_cents, voucher_id FROM orders
 WHERE voucher_id IS NOT NULL;
\c checkout_regress_shard1
SELECT customer_id > 0 AS customer, total_cents, discount_cents, voucher_id FROM orders
 WHERE voucher_id IS NOT NULL;
\c contrib_regression
SELECT shop_end_voucher(:voucher) <= clock_timestamp() AS ended;
SELECT shop_set_cart_item(:c1, :phone, 1);
SELECT shop_checkout(:c1, 'v-5', 'SHARD10');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM shop_check_integrity();
