--
-- Pay for what you use (1.3): once a backend knows the shop never had a
-- purchase limit, a location other than the default, a preorder, a voucher
-- code, an order with a payment window or a stock slot, its checkouts take
-- no lock on those tables (and run no statement for them).  The first
-- checkout of a backend looks at each table once; the next ones do not.
-- When another session starts using a feature, the backend looks again
-- (isolation spec feature-cache).
--
CREATE EXTENSION checkout;

INSERT INTO products (name, price_cents, stock) VALUES
  ('Flash Sale Smartphone', 49900, 10);
INSERT INTO customers (name) VALUES ('Ada');

CREATE TEMP VIEW feature_locks AS
SELECT c.relname
  FROM pg_locks AS l
  JOIN pg_class AS c ON c.oid = l.relation
 WHERE l.pid = pg_backend_pid() AND l.mode = 'AccessShareLock'
   AND c.relname IN ('purchase_limits', 'location_stock', 'preorders',
                     'voucher_codes', 'orders_expires_at_idx', 'stock_slots')
 ORDER BY 1;

-- The first checkout of this backend looks at the tables of the features
-- it may use (in its transaction; it prepares the statements it runs, which
-- read them; a voucher's are prepared only when a code is first given)
BEGIN;
INSERT INTO cart_items VALUES (1, 1, 1);
SELECT shop_checkout(1) IS NOT NULL AS ordered;
SELECT * FROM feature_locks;
COMMIT;

-- The next one takes no lock to read any of them (writing an order updates
-- orders_expires_at_idx, an index of orders, with RowExclusiveLock)
BEGIN;
INSERT INTO cart_items VALUES (1, 1, 1);
SELECT shop_checkout(1) IS NOT NULL AS ordered;
SELECT * FROM feature_locks;
COMMIT;

-- Nor does a code in a shop that never had one: SH009 without a statement
BEGIN;
INSERT INTO cart_items VALUES (1, 1, 1);
SAVEPOINT s;
SELECT shop_checkout(1, NULL, 'FLASH10');
ROLLBACK TO s;
SELECT * FROM feature_locks;
ROLLBACK;

-- A purchase limit, from this session: the next checkout looks again, and
-- from then on the limit's table is part of every checkout
SELECT shop_set_purchase_limit(1, 50);
BEGIN;
INSERT INTO cart_items VALUES (1, 1, 1);
SELECT shop_checkout(1) IS NOT NULL AS ordered;
SELECT * FROM feature_locks;
COMMIT;

-- A product split into slots: the next checkout reads the slots again
SELECT shop_split_stock(1, 2);
BEGIN;
INSERT INTO cart_items VALUES (1, 1, 1);
SELECT shop_checkout(1) IS NOT NULL AS ordered;
SELECT * FROM feature_locks;
COMMIT;
SELECT sum(stock) AS slot_stock FROM stock_slots;

-- A backend that still believes the shop never split (its invalidation not
-- yet had: here the trigger that sends it is disabled) is not fooled by a
-- split whose whole stock went to slots: fail fast looks at stock_slots
-- again before it refuses; without fail fast, the checkout finds the row
-- empty under its lock and takes the slots too.  (Emptying stock_slots and
-- disabling the trigger invalidate: a checkout caches "never split" again
-- first.)
SELECT shop_merge_stock(1);
TRUNCATE stock_slots;
ALTER TABLE stock_slots DISABLE TRIGGER stock_slots_feature_used;
INSERT INTO cart_items VALUES (1, 1, 1);
SELECT shop_checkout(1) IS NOT NULL AS ordered;
SELECT shop_split_stock(1, 2);
INSERT INTO cart_items VALUES (1, 1, 2);
SELECT shop_checkout(1) IS NOT NULL AS ordered;
SELECT p.stock AS row_stock, (SELECT sum(s.stock) FROM stock_slots AS s) AS slot_stock
  FROM products AS p WHERE p.id = 1;
SELECT shop_merge_stock(1);
TRUNCATE stock_slots;
INSERT INTO cart_items VALUES (1, 1, 1);
SELECT shop_checkout(1) IS NOT NULL AS ordered;
SELECT shop_split_stock(1, 2);
SET checkout.fail_fast = off;
INSERT INTO cart_items VALUES (1, 1, 2);
SELECT shop_checkout(1) IS NOT NULL AS ordered;
RESET checkout.fail_fast;
SELECT p.stock AS row_stock, (SELECT sum(s.stock) FROM stock_slots AS s) AS slot_stock
  FROM products AS p WHERE p.id = 1;
ALTER TABLE stock_slots ENABLE TRIGGER stock_slots_feature_used;

-- The same for a location's slots (1.3): a backend that believes no
-- location's stock was ever split finds a line short on the location's
-- row under its lock, looks at location_stock_slots again, and takes the
-- slots too, not SH001 (fail fast off); fail fast looks again before it
-- refuses.
INSERT INTO products (name, price_cents, stock) VALUES ('Drop Sneaker', 12000, 0);
SELECT shop_create_location('North', -1);
SELECT shop_restock(2, 8, 'delivery', 2);
ALTER TABLE location_stock_slots DISABLE TRIGGER location_stock_slots_feature_used;
INSERT INTO cart_items VALUES (1, 2, 1);
SELECT shop_checkout(1) IS NOT NULL AS ordered;
SELECT shop_split_location_stock(2, 2, 2);
SET checkout.fail_fast = off;
INSERT INTO cart_items VALUES (1, 2, 4);
SELECT shop_checkout(1) IS NOT NULL AS ordered;
RESET checkout.fail_fast;
SELECT ls.stock AS row_stock, (SELECT sum(s.stock) FROM location_stock_slots AS s) AS slot_stock
  FROM location_stock AS ls WHERE ls.product_id = 2;
SELECT shop_merge_location_stock(2, 2);
TRUNCATE location_stock_slots;
INSERT INTO cart_items VALUES (1, 2, 1);
SELECT shop_checkout(1) IS NOT NULL AS ordered;
SELECT shop_split_location_stock(2, 2, 2);
INSERT INTO cart_items VALUES (1, 2, 2);
SELECT shop_checkout(1) IS NOT NULL AS ordered;
SELECT ls.stock AS row_stock, (SELECT sum(s.stock) FROM location_stock_slots AS s) AS slot_stock
  FROM location_stock AS ls WHERE ls.product_id = 2;
ALTER TABLE location_stock_slots ENABLE TRIGGER location_stock_slots_feature_used;

SELECT * FROM shop_check_integrity();

SET checkout.allow_drop = on;
DROP EXTENSION checkout;
