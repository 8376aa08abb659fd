--
-- Routing through the proxy: products on every shard with their stock split
-- into the shards' quotas, customers and carts on the customer's shard, a
-- checkout there, its order id carrying the shard (n * 1024 + k) so that
-- shop_pay and shop_cancel_order route by the id alone, an idempotent
-- replay, and the stock over the whole shop.
--
SELECT min(g) FILTER (WHERE shop_shard_of(g) = 0) AS c0,
	   min(g) FILTER (WHERE shop_shard_of(g) = 1) AS c1,
	   max(g) FILTER (WHERE shop_shard_of(g) = 1) AS c1b
  FROM generate_series(1, 50) AS g \gset
SELECT shop_create_product('Flash Sale Smartphone', 49900, 7) AS phone,
	   shop_create_product('Phone Case', 1999, 0) AS case_ \gset
SELECT * FROM shop_product_stock();
SELECT shop_create_customer(:c0, 'Ada'), shop_create_customer(:c1, 'Grace'),
	   shop_create_customer(:c1b, 'Edsger');
SELECT shop_set_cart_item(:c0, :phone, 2), shop_set_cart_item(:c1, :phone, 1);

-- each customer's cart is on its shard only
\c checkout_regress_shard0
SELECT customer_id > 0 AS customer, product_id, quantity FROM cart_items;
\c checkout_regress_shard1
SELECT customer_id > 0 AS customer, product_id, quantity FROM cart_items;
\c contrib_regression

SELECT * FROM shop_cart_status(:c0);
SELECT shop_checkout(:c0, 'tab-1') AS order0 \gset
SELECT :order0 % 1024 AS shard_of_order, shop_checkout(:c0, 'tab-1') = :order0 AS replayed;
SELECT shop_checkout(:c1) AS order1 \gset
SELECT :order1 % 1024 AS shard_of_order;
SELECT shop_pay(:order0, 'psp-1'), shop_cancel_order(:order1, 'changed their mind');
SELECT * FROM shop_product_stock();
SELECT * FROM shop_check_integrity();
