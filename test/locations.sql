-- pgTAP: locations (1.2).  The contract of the new objects; restock,
-- adjust and move at a location through the ledger, each bad input a
-- documented SQLSTATE that changes nothing; allocation inside the
-- checkout (one location for the whole cart when one can, the preferred
-- by priority then most stock; else line by line; a line split only when
-- no location holds it), SH001 only when all locations together fall
-- short, with their sum; cancels and partial cancels give each unit back
-- to its location exactly once; retiring a location; the integrity check
-- finds each location discrepancy planted; a shop without locations
-- writes no allocation; the storefront role reads where units come from
-- but cannot move stock.
BEGIN;
CREATE EXTENSION checkout;
SELECT plan(61);

-- the contract
SELECT has_table('locations');
SELECT columns_are('locations', ARRAY['id', 'name', 'priority', 'created_at', 'retired_at']);
SELECT results_eq($$SELECT id, name, priority FROM locations$$,
				  $$VALUES (1::bigint, 'default'::text, 0)$$,
				  'every shop has the default location, 1');
SELECT has_table('location_stock');
SELECT columns_are('location_stock', ARRAY['product_id', 'location_id', 'stock']);
SELECT has_table('order_item_allocations');
SELECT columns_are('order_item_allocations',
				   ARRAY['order_id', 'product_id', 'location_id', 'quantity', 'cancelled_quantity']);
SELECT col_type_is('stock_movements', 'location_id', 'bigint');
SELECT has_view('stock_by_location');
SELECT has_function('shop_create_location', ARRAY['text', 'integer']);
SELECT has_function('shop_retire_location', ARRAY['bigint']);
SELECT has_function('shop_move_stock', ARRAY['bigint', 'bigint', 'bigint', 'integer', 'text']);
SELECT has_function('shop_restock', ARRAY['bigint', 'integer', 'text', 'bigint']);
SELECT hasnt_function('shop_restock', ARRAY['bigint', 'integer', 'text'],
					  'no three-argument shop_restock beside it (ambiguous)');
SELECT has_function('shop_adjust_stock', ARRAY['bigint', 'integer', 'text', 'bigint']);
SELECT hasnt_function('shop_adjust_stock', ARRAY['bigint', 'integer', 'text'],
					  'no three-argument shop_adjust_stock beside it (ambiguous)');

-- a product and two locations
INSERT INTO products (id, name, price_cents, stock) OVERRIDING SYSTEM VALUE
	VALUES (901, 'Drop Sneaker', 12000, 0), (902, 'Drop Cap', 3000, 0), (903, 'Sticker', 100, 10);
-- North is location 2, South 3 (locations' ids start at 2)
SELECT is(shop_create_location('North', 1), 2::bigint, 'shop_create_location returns the new id');
SELECT is(shop_create_location('South', 2), 3::bigint, 'ids go on from there');
SELECT is(shop_restock(901, 2, 'delivery 1'), 2, 'shop_restock with three arguments: the default location');
SELECT is(shop_restock(901, 3, 'delivery 2', 2), 3, 'shop_restock at a location returns its stock');
SELECT is(shop_adjust_stock(901, 4, 'count', 2), 4, 'shop_adjust_stock at a location returns it');
SELECT is(shop_move_stock(901, 2, 3, 1, 'transfer 1'), 1,
		  'shop_move_stock returns the destination''s stock');
SELECT results_eq($$SELECT location_id, stock FROM stock_by_location WHERE product_id = 901 ORDER BY 1$$,
				  $$VALUES (1::bigint, 2), (2, 3), (3, 1)$$,
				  'stock by location: the default''s row, then the others''');
SELECT is((SELECT stock FROM product_stock WHERE product_id = 901), 6,
		  'product_stock is the total on sale over all locations');
SELECT results_eq($$SELECT kind, location_id, quantity, stock_after FROM stock_movements
					 WHERE product_id = 901 AND kind <> 'opening' ORDER BY id$$,
				  $$VALUES ('restock'::text, 1::bigint, 2, 2), ('restock', 2, 3, 3),
						   ('adjustment', 2, 1, 4), ('transfer', 2, -1, 3), ('transfer', 3, 1, 1)$$,
				  'every movement names its location; a move is two transfers');

-- bad input: a documented SQLSTATE, nothing changes
SELECT throws_ok($$SELECT shop_restock(901, 1, 'x', 999)$$, 'SH013', 'location 999 does not exist');
SELECT throws_ok($$SELECT shop_move_stock(901, 2, 3, 5, 'too many')$$, '22023', NULL,
				 'moving more than the source holds is 22023');
SELECT throws_ok($$SELECT shop_move_stock(901, 2, 2, 1, 'nowhere')$$, '22023', NULL,
				 'moving to the same location is 22023');
SELECT throws_ok($$SELECT shop_create_location(NULL)$$, '22004', NULL, 'a NULL name is 22004');
SELECT throws_ok($$SELECT shop_create_location('North')$$, '23505', NULL, 'names are unique');
SELECT throws_ok($$SELECT shop_retire_location(1)$$, 'SH014', 'the default location cannot be retired');
SELECT throws_ok($$SELECT shop_retire_location(3)$$, 'SH014', NULL,
				 'a location holding stock cannot be retired');
SELECT results_eq($$SELECT location_id, stock FROM stock_by_location WHERE product_id = 901 ORDER BY 1$$,
				  $$VALUES (1::bigint, 2), (2, 3), (3, 1)$$, 'nothing moved');

-- allocation: a whole cart from one location, the preferred by priority
INSERT INTO customers (id, name) OVERRIDING SYSTEM VALUE
	VALUES (901, 'one'), (902, 'two'), (903, 'three'), (904, 'four'), (905, 'five'), (906, 'six');
SELECT shop_restock(902, 5, 'delivery', 3);
INSERT INTO cart_items VALUES (901, 901, 1), (901, 902, 1);
SELECT results_eq($$SELECT product_id, ships_from FROM shop_cart_status(901, NULL)$$,
				  $$VALUES (901::bigint, 'South'::text), (902, 'South')$$,
				  'the preview ships the whole cart from the one location that holds it');
SELECT shop_checkout(901);
SELECT results_eq($$SELECT product_id, location_id, quantity FROM order_item_allocations
					 WHERE order_id = (SELECT id FROM orders WHERE customer_id = 901) ORDER BY 1$$,
				  $$VALUES (901::bigint, 3::bigint, 1), (902, 3, 1)$$,
				  'the one location that serves the whole cart serves it (South), though North is preferred');

-- the preferred location that serves the whole cart: the default
INSERT INTO cart_items VALUES (902, 901, 2), (902, 903, 1);
SELECT results_eq($$SELECT product_id, ships_from FROM shop_cart_status(902, NULL)$$,
				  $$VALUES (901::bigint, 'default'::text), (903, 'default')$$,
				  'the preview: the default holds this cart');
SELECT shop_checkout(902);
SELECT results_eq($$SELECT location_id, stock FROM stock_by_location WHERE product_id = 901 ORDER BY 1$$,
				  $$VALUES (1::bigint, 0), (2, 3), (3, 0)$$,
				  'a cart the default holds comes from it (priority 0 before North''s 1)');
SELECT is((SELECT count(*) FROM order_item_allocations
			WHERE order_id = (SELECT id FROM orders WHERE customer_id = 902)), 0::bigint,
		  'an order wholly from the default writes no allocation row');

-- split only when no location holds the line
INSERT INTO cart_items VALUES (903, 901, 3);
SELECT shop_adjust_stock(901, 2, 'count', 2);
SELECT shop_restock(901, 1, 'delivery');
SELECT is((SELECT ships_from FROM shop_cart_status(903, NULL)), 'split',
		  'the preview: no location holds 3, the line would be split');
SELECT shop_checkout(903);
SELECT results_eq($$SELECT location_id, quantity FROM order_item_allocations
					 WHERE order_id = (SELECT id FROM orders WHERE customer_id = 903) ORDER BY 1$$,
				  $$VALUES (1::bigint, 1), (2, 2)$$,
				  'no location holds 3: split, the preferred first (default 1, North 2)');

-- SH001 only when all together fall short, with their sum
INSERT INTO cart_items VALUES (904, 901, 3);
SELECT throws_ok($$SELECT shop_checkout(904)$$, 'SH001',
				 'Insufficient stock for Drop Sneaker (available: 0, requested: 3)',
				 'SH001 names the stock of all locations together');
SELECT shop_restock(901, 2, 'delivery', 3);
SELECT throws_ok($$SELECT shop_checkout(904)$$, 'SH001',
				 'Insufficient stock for Drop Sneaker (available: 2, requested: 3)',
				 'available is the sum over the locations (South 2)');
SELECT shop_restock(901, 1, 'delivery');
SELECT lives_ok($$SELECT shop_checkout(904)$$, 'default 1 and South 2 serve 3 together');
SELECT is((SELECT stock FROM product_stock WHERE product_id = 901), 0, 'every location sold out');

-- cancels give each unit back where it came from, exactly once
SELECT is(shop_cancel_items((SELECT id FROM orders WHERE customer_id = 903), 901, 2, 'partial'), 1, 'a partial cancel of 2 of 3');
SELECT results_eq($$SELECT location_id, stock FROM stock_by_location WHERE product_id = 901 ORDER BY 1$$,
				  $$VALUES (1::bigint, 1), (2, 1), (3, 0)$$,
				  'the default''s unit back first, then one of North''s (location id order)');
SELECT is(shop_cancel_order((SELECT id FROM orders WHERE customer_id = 903), 'all'), 'cancelled', 'the rest cancelled');
SELECT results_eq($$SELECT location_id, stock FROM stock_by_location WHERE product_id = 901 ORDER BY 1$$,
				  $$VALUES (1::bigint, 1), (2, 2), (3, 0)$$, 'North''s second unit back to North');
SELECT is(shop_cancel_order((SELECT id FROM orders WHERE customer_id = 903), 'again'), 'cancelled', 'cancelling again changes nothing');
SELECT results_eq($$SELECT location_id, stock FROM stock_by_location WHERE product_id = 901 ORDER BY 1$$,
				  $$VALUES (1::bigint, 1), (2, 2), (3, 0)$$, 'no unit given back twice');
SELECT is_empty($$SELECT * FROM shop_check_integrity()$$, 'the books of every location are right');

-- retiring: South's placed orders paid, its stock moved
SELECT shop_pay(id, 'pay ' || id) FROM orders WHERE status = 'placed' ORDER BY id;
SELECT shop_move_stock(902, 3, 1, 4, 'closing South');
SELECT isnt(shop_retire_location(3), NULL, 'a location with nothing left can be retired');
SELECT throws_ok($$SELECT shop_restock(901, 1, 'x', 3)$$, 'SH014', NULL,
				 'a retired location takes no stock');
INSERT INTO cart_items VALUES (905, 902, 4);
SELECT lives_ok($$SELECT shop_checkout(905)$$, 'its products sell from the others');

-- the integrity check finds each planted discrepancy
UPDATE location_stock SET stock = stock + 1 WHERE product_id = 901 AND location_id = 2;
SELECT is((SELECT count(*) FROM shop_check_integrity() WHERE problem = 'location_stock_mismatch'),
		  1::bigint, 'location_stock_mismatch: a location''s stock off its books');
UPDATE location_stock SET stock = stock - 1 WHERE product_id = 901 AND location_id = 2;
UPDATE order_item_allocations SET quantity = quantity + 1 WHERE order_id = (SELECT id FROM orders WHERE customer_id = 901) AND product_id = 901;
SELECT ok((SELECT count(*) FROM shop_check_integrity() WHERE problem = 'allocation_mismatch') = 1,
		  'allocation_mismatch: allocations not adding up to their line');
UPDATE order_item_allocations SET quantity = quantity - 1 WHERE order_id = (SELECT id FROM orders WHERE customer_id = 901) AND product_id = 901;
SELECT is_empty($$SELECT * FROM shop_check_integrity()$$, 'clean again');

-- roles
CREATE ROLE regress_loc_app;
SELECT shop_grant_app('regress_loc_app');
SET LOCAL ROLE regress_loc_app;
SELECT lives_ok($$SELECT count(*) FROM order_item_allocations$$, 'the storefront reads where units come from');
SELECT lives_ok($$SELECT count(*) FROM stock_by_location$$, 'and the stock by location');
SELECT throws_ok($$SELECT shop_move_stock(901, 1, 2, 1, 'x')$$, '42501', NULL,
				 'but cannot move stock');
SELECT throws_ok($$SELECT shop_create_location('Mine')$$, '42501', NULL, 'nor create a location');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
