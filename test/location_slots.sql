-- pgTAP: the located hot product in slots (1.3).  The contract of the new
-- table and functions; splitting a location's stock and merging it back,
-- each bad input a documented SQLSTATE that changes nothing; checkouts of
-- a product whose preferred location is split: a line one slot holds is
-- served from one slot, a line none holds from the location's row and all
-- its slots, SH001 only when every location together (slots counted) is
-- short; restock, adjust and move at a split location spread the new
-- total over its slots; a cancel gives units back to the location; the
-- integrity check counts the slots and finds one planted off its books; a
-- location is retired only when its slots are empty; roles.
BEGIN;
CREATE EXTENSION checkout;
SELECT plan(46);

-- the contract
SELECT has_table('location_stock_slots');
SELECT columns_are('location_stock_slots', ARRAY['product_id', 'location_id', 'slot', 'stock']);
SELECT col_is_pk('location_stock_slots', ARRAY['product_id', 'location_id', 'slot']);
SELECT fk_ok('location_stock_slots', ARRAY['product_id', 'location_id'],
			 'location_stock', ARRAY['product_id', 'location_id']);
SELECT col_has_check('location_stock_slots', 'stock');
SELECT col_has_check('location_stock_slots', 'slot');
SELECT has_function('shop_split_location_stock', ARRAY['bigint', 'bigint', 'integer']);
SELECT function_returns('shop_split_location_stock', ARRAY['bigint', 'bigint', 'integer'], 'integer');
SELECT has_function('shop_merge_location_stock', ARRAY['bigint', 'bigint']);
SELECT function_returns('shop_merge_location_stock', ARRAY['bigint', 'bigint'], 'integer');

-- a hot product: 2 at the default, 20 at North (preferred), 3 at South
INSERT INTO products (id, name, price_cents, stock) OVERRIDING SYSTEM VALUE
	VALUES (951, 'Flash Phone', 49900, 2);
SELECT shop_create_location('North', -1), shop_create_location('South', 5);
SELECT shop_restock(951, 20, 'delivery', 2), shop_restock(951, 3, 'delivery', 3);

-- bad input: a documented SQLSTATE, nothing changes
SELECT throws_ok($$SELECT shop_split_location_stock(951, 2, NULL)$$, '22004', NULL,
				 'a NULL number of slots is 22004');
SELECT throws_ok($$SELECT shop_split_location_stock(951, 2, 1)$$, '22023',
				 'a location''s stock can be split into 2 to 64 slots', 'one slot is 22023');
SELECT throws_ok($$SELECT shop_split_location_stock(951, 2, 65)$$, '22023', NULL, '65 slots are 22023');
SELECT throws_ok($$SELECT shop_split_location_stock(951, 1, 4)$$, '22023',
				 'the default location''s stock is split with shop_split_stock()',
				 'the default location is split with shop_split_stock');
SELECT throws_ok($$SELECT shop_split_location_stock(951, 999, 4)$$, 'SH013', NULL,
				 'an unknown location is SH013');
SELECT throws_ok($$SELECT shop_split_location_stock(999, 2, 4)$$, 'SH004', NULL,
				 'an unknown product is SH004');
SELECT throws_ok($$SELECT shop_merge_location_stock(951, 1)$$, '22023',
				 'the default location''s stock is merged with shop_merge_stock()',
				 'the default location is merged with shop_merge_stock');
SELECT is_empty($$SELECT * FROM location_stock_slots$$, 'nothing split');

-- split North over 4 slots: the row keeps 0, the slots 5 each
SELECT is(shop_split_location_stock(951, 2, 4), 20, 'shop_split_location_stock returns the stock split');
SELECT results_eq($$SELECT slot, stock FROM location_stock_slots WHERE product_id = 951 ORDER BY slot$$,
				  $$VALUES (0, 5), (1, 5), (2, 5), (3, 5)$$, 'spread evenly over the slots');
SELECT is((SELECT stock FROM location_stock WHERE product_id = 951 AND location_id = 2), 0,
		  'the location''s row keeps 0');
SELECT results_eq($$SELECT location_id, stock FROM stock_by_location WHERE product_id = 951 ORDER BY 1$$,
				  $$VALUES (1::bigint, 2), (2, 20), (3, 3)$$, 'stock by location counts the slots');
SELECT is((SELECT stock FROM product_stock WHERE product_id = 951), 25, 'and so does product_stock');
SELECT is(shop_location_stock(951, 2), 20, 'and shop_location_stock');

-- checkouts: one slot serves a line it holds; North, preferred, serves it
INSERT INTO customers (id, name) OVERRIDING SYSTEM VALUE
	VALUES (951, 'one'), (952, 'two'), (953, 'three'), (954, 'four');
INSERT INTO cart_items VALUES (951, 951, 3);
SELECT lives_ok($$SELECT shop_checkout(951)$$, 'a line of 3 checks out');
SELECT results_eq($$SELECT location_id, quantity FROM order_item_allocations
					 WHERE order_id = (SELECT id FROM orders WHERE customer_id = 951)$$,
				  $$VALUES (2::bigint, 3)$$, 'allocated to North, the preferred location');
SELECT results_eq($$SELECT count(*) FILTER (WHERE stock = 2), sum(stock) FROM location_stock_slots
					 WHERE product_id = 951$$,
				  $$VALUES (1::bigint, 17::bigint)$$, 'taken from one slot: 5 5 5 2');

-- a line no slot holds: North's row and slots together, the row first
INSERT INTO cart_items VALUES (952, 951, 8);
SELECT lives_ok($$SELECT shop_checkout(952)$$, 'a line of 8, more than any slot holds, checks out');
SELECT results_eq($$SELECT location_id, quantity FROM order_item_allocations
					 WHERE order_id = (SELECT id FROM orders WHERE customer_id = 952)$$,
				  $$VALUES (2::bigint, 8)$$, 'all 8 from North, over its slots');
SELECT is(shop_location_stock(951, 2), 9, 'North holds 9');

-- SH001 only when every location together is short, slots counted
INSERT INTO cart_items VALUES (953, 951, 15);
SELECT throws_ok($$SELECT shop_checkout(953)$$, 'SH001',
				 'Insufficient stock for Flash Phone (available: 14, requested: 15)',
				 'SH001 names default 2 + North 9 + South 3');
SELECT results_eq($$SELECT location_id, stock FROM stock_by_location WHERE product_id = 951 ORDER BY 1$$,
				  $$VALUES (1::bigint, 2), (2, 9), (3, 3)$$, 'and nothing moved');

-- restock, adjust and move at a split location spread the new total
SELECT is(shop_restock(951, 7, 'delivery 2', 2), 16, 'a restock at North returns its stock');
SELECT results_eq($$SELECT stock FROM location_stock_slots WHERE product_id = 951 ORDER BY slot$$,
				  $$VALUES (4), (4), (4), (4)$$, 'spread again over the slots');
SELECT is(shop_adjust_stock(951, 13, 'count', 2), 13, 'an adjustment at North');
SELECT is(shop_move_stock(951, 2, 3, 1, 'to South'), 4, 'a move from North');
SELECT results_eq($$SELECT stock FROM location_stock_slots WHERE product_id = 951 ORDER BY slot$$,
				  $$VALUES (3), (3), (3), (3)$$, '12 left, spread');

-- a cancel gives the units back to North (its row), the books right
SELECT is(shop_cancel_order((SELECT id FROM orders WHERE customer_id = 951), 'changed mind'),
		  'cancelled', 'the first order cancelled');
SELECT is(shop_location_stock(951, 2), 15, 'its 3 units back at North');
SELECT is_empty($$SELECT * FROM shop_check_integrity()$$, 'the books of every location are right');
UPDATE location_stock_slots SET stock = stock + 1 WHERE product_id = 951 AND slot = 0;
SELECT is((SELECT count(*) FROM shop_check_integrity() WHERE problem = 'location_stock_mismatch'),
		  1::bigint, 'a slot off the books is a location_stock_mismatch');
UPDATE location_stock_slots SET stock = stock - 1 WHERE product_id = 951 AND slot = 0;

-- retiring North: refused while its slots hold stock
SELECT shop_pay(id, 'pay ' || id) FROM orders WHERE status = 'placed' ORDER BY id;
SELECT shop_move_stock(951, 2, 1, 3, 'row to default');
SELECT throws_ok($$SELECT shop_retire_location(2)$$, 'SH014', NULL,
				 'a location whose slots hold stock cannot be retired');
SELECT is(shop_merge_location_stock(951, 2), 12, 'merged back: its stock returned');
SELECT is_empty($$SELECT * FROM location_stock_slots$$, 'no slot left');

-- roles
CREATE ROLE regress_ls_app;
CREATE ROLE regress_ls_admin;
SELECT shop_grant_app('regress_ls_app');
SELECT shop_grant_admin('regress_ls_admin');
SET LOCAL ROLE regress_ls_app;
SELECT throws_ok($$SELECT shop_split_location_stock(951, 2, 4)$$, '42501', NULL,
				 'the storefront cannot split stock');
RESET ROLE;
SET LOCAL ROLE regress_ls_admin;
SELECT lives_ok($$SELECT shop_split_location_stock(951, 2, 4)$$, 'an admin can');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
