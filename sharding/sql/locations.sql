--
-- Locations through the proxy (1.2): a location is created on every shard
-- with one id; each shard allocates its own customers' checkouts over its
-- own stock in its locations (a quota and a pull are per product, from and
-- to a shard's default location).
--
SELECT min(g) FILTER (WHERE shop_shard_of(g) = 0) AS c0
  FROM generate_series(200, 250) AS g \gset
SELECT shop_create_product('Located Lamp', 3000, 2) AS lamp \gset
SELECT shop_create_location('Warehouse East', 1) AS east \gset
SELECT :east > 1 AS new_id;

-- on every shard, with the proxy's id; stock put there on shard 0
\c checkout_regress_shard0
SELECT id = :east AS same_id, name, priority FROM locations WHERE id <> 1;
SELECT shop_restock(:lamp, 3, 'east delivery', :east);
\c checkout_regress_shard1
SELECT id = :east AS same_id, name, priority FROM locations WHERE id <> 1;
\c contrib_regression

-- a customer of shard 0 buys 4: its default's 1 and East's 3
SELECT shop_create_customer(:c0, 'Lena');
SELECT shop_set_cart_item(:c0, :lamp, 4);
SELECT shop_checkout(:c0) IS NOT NULL AS ordered;
\c checkout_regress_shard0
SELECT location_id = 1 AS default_location, quantity FROM order_item_allocations
 ORDER BY location_id;
\c contrib_regression
SELECT * FROM shop_check_integrity();
