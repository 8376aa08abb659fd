-- pgTAP: bundles (1.3).  The contract of the new objects (bundle_parts,
-- order_item_parts, shop_create_bundle, the SH016 triggers, who may call
-- what); bad input of shop_create_bundle is a documented SQLSTATE that
-- changes nothing; a bundle's stock on sale is what its parts make; every
-- way of giving a bundle stock of its own is SH016 and changes nothing; a
-- cart of two bundles sharing a part, and the part on its own, takes each
-- part once with what every line needs of it, the lines being the cart's
-- (the bundle's price) and order_item_parts the parts; SH001 names the
-- bundle and its short part and changes nothing; a purchase limit and a
-- voucher's share apply to the bundle's line; shop_place_order sells one;
-- cancels, partial cancels and expiries give the parts back exactly once,
-- with a movement per part; a checkout takes back what expired orders hold
-- of a part; a part is never preordered; parts in stock slots and at other
-- locations; shop_cart_status, shop_adjust_stock, the sold-out notices and
-- the placed event know bundles; the integrity check stays empty
-- throughout and finds each planted discrepancy of a part.  A move of a
-- bundle is 22023, as any move of stock a location does not hold.
BEGIN;
CREATE EXTENSION checkout;
SELECT plan(154);

-- an error's SQLSTATE, message and detail (NULL: no error), so that a test
-- can read them and go on
CREATE FUNCTION pg_temp.error_of(query text) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
	state		text;
	message		text;
	detail		text;
BEGIN
	EXECUTE query;
	RETURN NULL;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
							detail = PG_EXCEPTION_DETAIL;
	RETURN ARRAY[state, message, detail];
END
$$;

-- the contract
SELECT has_table('bundle_parts');
SELECT columns_are('bundle_parts', ARRAY['bundle_id', 'product_id', 'quantity']);
SELECT col_is_pk('bundle_parts', ARRAY['bundle_id', 'product_id']);
SELECT fk_ok('bundle_parts', 'bundle_id', 'products', 'id');
SELECT fk_ok('bundle_parts', 'product_id', 'products', 'id');
SELECT col_type_is('bundle_parts', 'quantity', 'integer');
SELECT has_table('order_item_parts');
SELECT columns_are('order_item_parts', ARRAY['order_id', 'bundle_id', 'product_id', 'quantity']);
SELECT col_is_pk('order_item_parts', ARRAY['order_id', 'bundle_id', 'product_id']);
SELECT fk_ok('order_item_parts', ARRAY['order_id', 'bundle_id'], 'order_items', ARRAY['order_id', 'product_id']);
SELECT fk_ok('order_item_parts', 'product_id', 'products', 'id');
SELECT has_function('shop_create_bundle', ARRAY['text', 'bigint', 'jsonb']);
SELECT function_returns('shop_create_bundle', ARRAY['text', 'bigint', 'jsonb'], 'bigint');
SELECT is((SELECT proargnames FROM pg_proc
			WHERE oid = 'shop_create_bundle(text, bigint, jsonb)'::regprocedure),
		  ARRAY['name', 'price_cents', 'parts'], 'its arguments are name, price_cents, parts');
SELECT is_definer('shop_create_bundle', ARRAY['text', 'bigint', 'jsonb']);
SELECT ok(NOT has_function_privilege('public', 'shop_create_bundle(text, bigint, jsonb)', 'EXECUTE'),
		  'PUBLIC may not create bundles');
SELECT has_function('shop_refuse_bundle_stock', ARRAY[]::text[]);
SELECT ok(NOT has_function_privilege('public', 'shop_refuse_bundle_stock()', 'EXECUTE'),
		  'PUBLIC may not call the trigger function');
SELECT has_trigger('products', 'products_bundle_stock');
SELECT has_trigger('stock_slots', 'stock_slots_bundle_stock');
SELECT has_trigger('location_stock', 'location_stock_bundle_stock');
SELECT has_trigger('stock_movements', 'stock_movements_bundle_stock');
SELECT fk_ok('order_item_allocations', 'order_id', 'orders', 'id');

INSERT INTO products (id, name, price_cents, stock) OVERRIDING SYSTEM VALUE VALUES
	(1001, 'Phone', 50000, 10), (1002, 'Phone Case', 2000, 7), (1003, 'Charger', 1500, 8),
	(1004, 'Cable', 500, 20);
INSERT INTO customers (id, name) OVERRIDING SYSTEM VALUE
	SELECT g, 'Buyer ' || g FROM generate_series(1001, 1015) AS g;

SELECT shop_create_bundle('Gift Box', 52000,
	'[{"product_id": 1001, "quantity": 1}, {"product_id": 1002, "quantity": 2}]') AS gb \gset
SELECT shop_create_bundle('Case Pack', 3500,
	'[{"product_id": 1002, "quantity": 1}, {"product_id": 1003, "quantity": 1}]') AS cp \gset
SELECT results_eq($$SELECT name, price_cents, stock FROM products WHERE id = $$ || :gb,
				  $$VALUES ('Gift Box'::text, 52000::bigint, 0)$$,
				  'shop_create_bundle returns a new product, with no stock of its own');
SELECT results_eq($$SELECT product_id, quantity FROM bundle_parts WHERE bundle_id = $$ || :gb
					|| $$ ORDER BY 1$$,
				  $$VALUES (1001::bigint, 1), (1002::bigint, 2)$$, 'and its parts');

-- bad input: 22004, 22023 or SH004, nothing created
CREATE TEMP TABLE books AS
	SELECT (SELECT count(*) FROM products) AS products, (SELECT count(*) FROM bundle_parts) AS parts,
		   (SELECT count(*) FROM stock_movements) AS movements;
SELECT throws_ok($$SELECT shop_create_bundle(NULL, 100, '[{"product_id": 1001, "quantity": 1}]')$$,
				 '22004', NULL, 'a NULL name is 22004');
SELECT throws_ok($$SELECT shop_create_bundle('x', NULL, '[{"product_id": 1001, "quantity": 1}]')$$,
				 '22004', NULL, 'a NULL price is 22004');
SELECT throws_ok($$SELECT shop_create_bundle('x', 100, NULL)$$, '22004', NULL, 'NULL parts are 22004');
SELECT throws_ok($$SELECT shop_create_bundle('x', 100, '[]')$$, '22023', NULL, 'no parts is 22023');
SELECT throws_ok($$SELECT shop_create_bundle('x', 100, '{"product_id": 1001, "quantity": 1}')$$,
				 '22023', NULL, 'parts that are not an array are 22023');
SELECT throws_ok($$SELECT shop_create_bundle('x', 100,
					'[{"product_id": 1001, "quantity": 1}, {"product_id": 1001, "quantity": 2}]')$$,
				 '22023', NULL, 'a part named twice is 22023');
SELECT throws_ok($$SELECT shop_create_bundle('x', 100, '[{"product_id": 1001, "quantity": 0}]')$$,
				 '22023', NULL, 'a quantity of 0 is 22023');
SELECT throws_ok($$SELECT shop_create_bundle('x', 100, '[{"product_id": 1001, "quantity": 1.5}]')$$,
				 '22023', NULL, 'a fractional quantity is 22023');
SELECT throws_ok($$SELECT shop_create_bundle('x', 100, '[{"product_id": "1001", "quantity": 1}]')$$,
				 '22023', NULL, 'a product id that is a string is 22023');
SELECT throws_ok($$SELECT shop_create_bundle('x', 100, '[{"product_id": 1001}]')$$,
				 '22023', NULL, 'a part without a quantity is 22023');
SELECT throws_ok($$SELECT shop_create_bundle('x', 100, '[{"product_id": 99999, "quantity": 1}]')$$,
				 'SH004', 'product 99999 does not exist', 'an unknown part is SH004');
SELECT throws_ok($$SELECT shop_create_bundle('x', 100, '[{"product_id": 1003, "quantity": 1}, {"product_id": $$
					|| :gb || $$, "quantity": 1}]')$$,
				 '22023', format('product %s is a bundle: a bundle cannot be a part', :gb),
				 'a bundle as a part is 22023');
SELECT results_eq($$SELECT (SELECT count(*) FROM products), (SELECT count(*) FROM bundle_parts),
						   (SELECT count(*) FROM stock_movements)$$,
				  $$SELECT products, parts, movements FROM books$$,
				  'no bad input created a product, a part or a movement');

-- a bundle's stock on sale: the least over its parts of floor(stock / quantity)
SELECT results_eq($$SELECT product_id, stock, slots FROM product_stock
					 WHERE product_id IN ($$ || :gb || ',' || :cp || $$) ORDER BY 1$$,
				  format('VALUES (%s::bigint, 3, 0), (%s, 7, 0)', :gb, :cp),
				  'Gift Box: least of 10/1 and 7/2; Case Pack: least of 7/1 and 8/1');
SELECT is(shop_restock(1002, 1, 'delivery'), 8, 'a part can be restocked ...');
SELECT is((SELECT stock FROM product_stock WHERE product_id = :gb), 4, '... and its bundles follow');
SELECT is_empty($$SELECT * FROM shop_check_integrity()$$, 'the books are right');

-- SH016: a bundle has no stock of its own, whichever way it would get some
SELECT shop_create_location('North', 1) AS north \gset
SELECT throws_ok($$SELECT shop_restock($$ || :gb || $$, 5, 'delivery')$$, 'SH016',
				 format('product %s is a bundle: it has no stock of its own', :gb),
				 'shop_restock of a bundle is SH016');
SELECT throws_ok($$SELECT shop_adjust_stock($$ || :gb || $$, 5, 'count')$$, 'SH016', NULL,
				 'shop_adjust_stock of a bundle up is SH016');
SELECT throws_ok($$SELECT shop_adjust_stock($$ || :gb || $$, 0, 'count')$$, 'SH016', NULL,
				 'shop_adjust_stock of a bundle even to what it has (0) is SH016');
SELECT throws_ok($$SELECT shop_split_stock($$ || :gb || $$, 4)$$, 'SH016', NULL,
				 'shop_split_stock of a bundle is SH016');
SELECT throws_ok($$SELECT shop_restock($$ || :gb || $$, 5, 'delivery', $$ || :north || ')', 'SH016', NULL,
				 'shop_restock of a bundle at another location is SH016');
SELECT throws_ok($$SELECT shop_adjust_stock($$ || :gb || $$, 5, 'count', $$ || :north || ')', 'SH016', NULL,
				 'shop_adjust_stock of a bundle at another location is SH016');
SELECT throws_ok($$UPDATE products SET stock = 5 WHERE id = $$ || :gb, 'SH016', NULL,
				 'an UPDATE of a bundle''s stock is SH016');
SELECT throws_ok($$INSERT INTO stock_slots (product_id, slot, stock) VALUES ($$ || :gb || ', 0, 5)',
				 'SH016', NULL, 'a stock slot of a bundle is SH016');
SELECT throws_ok($$INSERT INTO location_stock (product_id, location_id, stock) VALUES ($$
					|| :gb || ', ' || :north || ', 5)',
				 'SH016', NULL, 'a location''s stock of a bundle is SH016');
SELECT throws_ok($$SELECT shop_set_preorder($$ || :gb || $$, 5, NULL)$$, 'SH016', NULL,
				 'shop_set_preorder of a bundle is SH016: a bundle sells only while its parts are there');
SELECT throws_ok($$SELECT shop_move_stock($$ || :gb || ', 1, ' || :north || $$, 1, 'rebalance')$$, '22023', NULL,
				 'shop_move_stock of a bundle is 22023: no location holds any of it to move');
SELECT results_eq($$SELECT (SELECT stock FROM products WHERE id = $$ || :gb || $$),
						   (SELECT count(*) FROM stock_slots WHERE product_id = $$ || :gb || $$),
						   (SELECT count(*) FROM location_stock WHERE product_id = $$ || :gb || $$),
						   (SELECT count(*) FROM stock_movements
							 WHERE product_id = $$ || :gb || $$ AND kind <> 'opening'),
						   (SELECT stock FROM product_stock WHERE product_id = $$ || :gb || ')',
				  $$VALUES (0, 0::bigint, 0::bigint, 0::bigint, 4)$$,
				  'no refusal gave the bundle stock, a slot, a location row or a movement');

-- two bundles sharing a part, and the part on its own: each part taken once,
-- with what every line needs of it (Phone Case: 2 x 2 + 1 + 2 = 7 of 8)
INSERT INTO cart_items VALUES (1001, :gb, 2), (1001, :cp, 1), (1001, 1002, 2);
SELECT results_eq($$SELECT product_id, available, can_fulfil, checkout_would_succeed
					  FROM shop_cart_status(1001, NULL) ORDER BY 1$$,
				  format('VALUES (%s::bigint, 4, true, true), (%s, 8, true, true), (1002, 8, true, true)',
						 :gb, :cp),
				  'shop_cart_status shows what the parts can make');
SELECT results_eq($$SELECT product_id, ships_from FROM shop_cart_status(1001, NULL) ORDER BY 1$$,
				  format($$VALUES (%s::bigint, 'default'::text), (%s, 'default'), (1002, 'default')$$,
						 :gb, :cp),
				  'every line ships from the default location, where all the parts are');
INSERT INTO cart_items VALUES (1003, :gb, 4), (1003, 1002, 1);
SELECT is((SELECT bool_or(checkout_would_succeed) FROM shop_cart_status(1003, NULL)), false,
		  'four boxes and a case need 9 cases of 8: the checkout would not succeed');
SELECT is((pg_temp.error_of('SELECT shop_checkout(1003)'))[1], 'SH001', '... and it does not');
DELETE FROM cart_items WHERE customer_id = 1003;
SELECT shop_notify_stock_changes() AS done \gset
SELECT shop_checkout(1001) AS order_a \gset
SELECT results_eq($$SELECT product_id, quantity, unit_price_cents FROM order_items
					 WHERE order_id = $$ || :order_a || $$ ORDER BY 1$$,
				  format('VALUES (%s::bigint, 2, 52000::bigint), (%s, 1, 3500), (1002, 2, 2000)', :gb, :cp),
				  'the order''s lines are the cart''s: each bundle at its own price');
SELECT is((SELECT total_cents FROM orders WHERE id = :order_a), 111500::bigint,
		  'the total counts each bundle''s price (2 x 52000 + 3500 + 2 x 2000)');
SELECT results_eq($$SELECT bundle_id, product_id, quantity FROM order_item_parts
					 WHERE order_id = $$ || :order_a || $$ ORDER BY 1, 2$$,
				  format('VALUES (%s::bigint, 1001::bigint, 1), (%1$s, 1002, 2), (%s, 1002, 1), (%2$s, 1003, 1)',
						 :gb, :cp),
				  'order_item_parts records the parts each bundle took, per unit');
SELECT results_eq($$SELECT product_id, stock FROM product_stock
					 WHERE product_id IN (1001, 1002, 1003, $$ || :gb || ',' || :cp || $$) ORDER BY 1$$,
				  format('VALUES (%s::bigint, 0), (%s, 1), (1001, 8), (1002, 1), (1003, 7)', :gb, :cp),
				  'each part decremented once by all it went into; the bundles follow');
SELECT is((SELECT sum(stock)::int FROM products WHERE id IN (:gb, :cp)), 0,
		  'the bundles'' own stock stays 0');
SELECT is_empty($$SELECT FROM cart_items WHERE customer_id = 1001$$, 'the cart is emptied');
SELECT is_empty($$SELECT * FROM shop_check_integrity()$$, 'the books count the parts as sold');
SELECT shop_notify_stock_changes() AS done \gset
SELECT is(ARRAY(SELECT product_id FROM sold_out_products), ARRAY[:gb::bigint],
		  'one case left, the Gift Box (two cases) is announced sold out');
SELECT is(shop_adjust_stock(1002, 1, 'count'), 1, 'a count of the cases finds the one left ...');
SELECT results_eq($$SELECT kind, quantity FROM stock_movements WHERE product_id = 1002 ORDER BY id DESC LIMIT 1$$,
				  $$VALUES ('adjustment'::text, 0)$$, '... which the books say: parts sold count as sales');

-- SH001 names the bundle and its short part, and changes nothing
CREATE TEMP TABLE stock_before AS SELECT product_id, stock FROM product_stock;
INSERT INTO cart_items VALUES (1002, :gb, 1);
SELECT throws_ok($$SELECT shop_checkout(1002)$$, 'SH001',
				 'Insufficient stock for Gift Box: part Phone Case (available: 1, requested: 2)',
				 'a part short is SH001, naming the bundle and the part');
SELECT is((pg_temp.error_of('SELECT shop_checkout(1002)'))[3],
		  'Product 1002 "Phone Case" (a part of Gift Box): available 1, requested 2.',
		  'its DETAIL names the part and its bundle');
SET LOCAL checkout.fail_fast = off;
SELECT is(pg_temp.error_of('SELECT shop_checkout(1002)'),
		  ARRAY['SH001', 'Insufficient stock for Gift Box: part Phone Case (available: 1, requested: 2)',
				'Product 1002 "Phone Case" (a part of Gift Box): available 1, requested 2.'],
		  'under the locks (fail fast off) the same SH001');
RESET checkout.fail_fast;
INSERT INTO cart_items VALUES (1003, :cp, 8);
SELECT is(pg_temp.error_of('SELECT shop_checkout(1003)'),
		  ARRAY['SH001', 'Insufficient stock for Case Pack: part Phone Case (available: 1, requested: 8)',
				E'Product 1002 "Phone Case" (a part of Case Pack): available 1, requested 8.\n'
				'Product 1003 "Charger" (a part of Case Pack): available 7, requested 8.'],
		  'two parts short: the message names the first, the DETAIL both');
SELECT results_eq($$SELECT product_id, stock FROM product_stock ORDER BY 1$$,
				  $$SELECT product_id, stock FROM stock_before ORDER BY 1$$, 'SH001 moved no stock');
SELECT results_eq($$SELECT customer_id, product_id, quantity FROM cart_items ORDER BY 1$$,
				  format('VALUES (1002::bigint, %s::bigint, 1), (1003, %s, 8)', :gb, :cp),
				  'SH001 left the carts as they were');
SELECT is_empty($$SELECT FROM orders WHERE customer_id IN (1002, 1003)$$, 'SH001 wrote no order');
SELECT results_eq($$SELECT outcome, sqlstate, message, (refusal -> 'lines' -> 0 ->> 'available')::int,
						   (refusal -> 'lines' -> 0 ->> 'requested')::int,
						   refusal -> 'lines' -> 0 ->> 'bundle'
					  FROM shop_place_order(1004, '[{"product_id": $$ || :gb || $$, "quantity": 1}]', 'box-1')$$,
				  $$VALUES ('refused'::text, 'SH001'::text,
							'Insufficient stock for Gift Box: part Phone Case (available: 1, requested: 2)'::text,
							1, 2, 'Gift Box'::text)$$,
				  'shop_place_order refuses a bundle with the part''s figures and the bundle''s name');
SELECT is_empty($$SELECT FROM idempotency_keys WHERE customer_id = 1004$$, '... spending no key');
DELETE FROM cart_items WHERE customer_id IN (1002, 1003);
SELECT is_empty($$SELECT * FROM shop_check_integrity()$$, 'the books are still right');

-- a purchase limit applies to the bundle's line
SELECT is(shop_set_purchase_limit(:cp, 1), 1, 'a limit of 1 Case Pack per customer');
INSERT INTO cart_items VALUES (1001, :cp, 1);
SELECT throws_ok($$SELECT shop_checkout(1001)$$, 'SH005',
				 'Purchase limit for Case Pack is 1 per customer (already bought: 1, requested: 1)',
				 'a second Case Pack is SH005, counting the bundles bought');
SELECT results_eq($$SELECT (SELECT count(*) FROM orders WHERE customer_id = 1001),
						   (SELECT count(*) FROM cart_items WHERE customer_id = 1001),
						   (SELECT stock FROM product_stock WHERE product_id = 1002)$$,
				  $$VALUES (1::bigint, 1::bigint, 1)$$, 'SH005 changed nothing');
INSERT INTO cart_items VALUES (1004, :cp, 1);
SELECT ok(shop_checkout(1004) > 0, 'another customer buys one, under the limit');
SELECT shop_notify_stock_changes() AS done \gset
SELECT set_eq($$SELECT product_id FROM sold_out_products$$, ARRAY[:gb, :cp, 1002],
			  'the last case sold: the case and both bundles are announced sold out');
SELECT shop_set_purchase_limit(:cp, NULL) AS done \gset
DELETE FROM cart_items WHERE customer_id = 1001;

-- a voucher's share goes to the bundle's line, by its price: 1000 off 52500,
-- 990.48 and 9.52, the cent left over to the larger remainder
SELECT is(shop_restock(1002, 20, 'delivery'), 20, 'the cases restocked');
SELECT is(shop_notify_stock_changes(), 3, 'the case and both bundles are announced back');
SELECT is_empty($$SELECT FROM sold_out_products$$, 'nothing is sold out');
SELECT shop_add_voucher_code(shop_create_voucher('Thousand off', amount_off_cents => 1000), 'BOX1000') AS done \gset
INSERT INTO cart_items VALUES (1005, :gb, 1), (1005, 1004, 1);
SELECT shop_checkout(1005, NULL, 'box1000') AS order_v \gset
SELECT results_eq($$SELECT total_cents, discount_cents FROM orders WHERE id = $$ || :order_v,
				  $$VALUES (51500::bigint, 1000::bigint)$$, 'the order: 52500 less 1000');
SELECT results_eq($$SELECT product_id, discount_cents FROM order_items WHERE order_id = $$ || :order_v
					|| $$ ORDER BY 1$$,
				  format('VALUES (%s::bigint, 990::bigint), (1004, 10)', :gb),
				  'the bundle''s line takes its share');
SELECT results_eq($$SELECT product_id, stock FROM product_stock WHERE product_id IN (1001, 1002, 1004)
					 ORDER BY 1$$,
				  $$VALUES (1001::bigint, 7), (1002, 18), (1004, 19)$$, 'its parts were taken');

-- shop_place_order sells a bundle, and a replay sells nothing more
SELECT results_eq($$SELECT outcome, total_cents, jsonb_array_length(order_lines),
						   (order_lines -> 0) - 'discount_cents' - 'preordered_quantity'
					  FROM shop_place_order(1006, '[{"product_id": $$ || :gb || $$, "quantity": 1},
												   {"product_id": 1003, "quantity": 1}]', 'web-box-1')$$,
				  format($$VALUES ('placed'::text, 53500::bigint, 2,
								   '{"product_id": %s, "name": "Gift Box", "quantity": 1,
									 "unit_price_cents": 52000}'::jsonb)$$, :gb),
				  'shop_place_order places a bundle line at its price');
SELECT (SELECT id FROM orders WHERE customer_id = 1006) AS order_w \gset
SELECT results_eq($$SELECT bundle_id, product_id, quantity FROM order_item_parts
					 WHERE order_id = $$ || :order_w || $$ ORDER BY 2$$,
				  format('VALUES (%s::bigint, 1001::bigint, 1), (%1$s, 1002, 2)', :gb),
				  'with the parts it took');
SELECT results_eq($$SELECT outcome, order_id FROM shop_place_order(1006,
					  '[{"product_id": $$ || :gb || $$, "quantity": 1}, {"product_id": 1003, "quantity": 1}]',
					  'web-box-1')$$,
				  $$VALUES ('replayed'::text, $$ || :order_w || $$::bigint)$$, 'a retry gets the order back ...');
SELECT results_eq($$SELECT product_id, stock FROM product_stock WHERE product_id IN (1001, 1002, 1003)
					 ORDER BY 1$$,
				  $$VALUES (1001::bigint, 6), (1002, 16), (1003, 5)$$, '... having taken the parts once');
SELECT is_empty($$SELECT * FROM shop_check_integrity()$$, 'the books are right after the sales');

-- a cancel gives every part back, once, with a movement per part
SELECT is(shop_cancel_order(:order_a, 'customer request'), 'cancelled', 'the first order cancelled');
SELECT results_eq($$SELECT product_id, kind, sum(quantity)::int FROM stock_movements
					 WHERE order_id = $$ || :order_a || $$ GROUP BY 1, 2 ORDER BY 1$$,
				  $$VALUES (1001::bigint, 'cancellation'::text, 2), (1002, 'cancellation', 7),
						   (1003, 'cancellation', 1)$$,
				  'its movements give back each part, none the bundles');
SELECT results_eq($$SELECT product_id, stock FROM product_stock WHERE product_id IN (1001, 1002, 1003)
					 ORDER BY 1$$,
				  $$VALUES (1001::bigint, 8), (1002, 23), (1003, 6)$$, 'the parts are back on sale');
SELECT is_empty($$SELECT FROM order_items WHERE order_id = $$ || :order_a
				|| $$ AND cancelled_quantity <> quantity$$, 'every line of it is cancelled');
CREATE TEMP TABLE movements_before AS SELECT count(*) AS n FROM stock_movements;
SELECT is(shop_cancel_order(:order_a, 'again'), 'cancelled', 'cancelling it again ...');
SELECT results_eq($$SELECT (SELECT count(*) FROM stock_movements),
						   (SELECT stock FROM product_stock WHERE product_id = 1002)$$,
				  $$SELECT n, 23 FROM movements_before$$, '... gives nothing back twice');
SELECT is_empty($$SELECT * FROM shop_check_integrity()$$, 'the books are right after the cancel');

-- a partial cancel of a bundle's line gives back the parts of those units
INSERT INTO cart_items VALUES (1007, :gb, 2);
SELECT shop_checkout(1007) AS order_p \gset
SELECT is(shop_cancel_items(:order_p, :gb, 1, 'one box back'), 1, 'one of two boxes cancelled');
SELECT results_eq($$SELECT product_id, sum(quantity)::int FROM stock_movements
					 WHERE order_id = $$ || :order_p || $$ GROUP BY 1 ORDER BY 1$$,
				  $$VALUES (1001::bigint, 1), (1002, 2)$$, 'its parts given back for one box');
SELECT is_empty($$SELECT * FROM shop_check_integrity()$$, 'the books are right after a partial cancel');
SELECT throws_ok($$SELECT shop_cancel_items($$ || :order_p || $$, 1002, 1, 'a case')$$, '22023', NULL,
				 'a part is not a line of the order: 22023');
SELECT throws_ok($$SELECT shop_cancel_items($$ || :order_p || ', ' || :gb || $$, 2, 'too many')$$,
				 '22023', NULL, 'more boxes than are left: 22023');
SELECT is(shop_cancel_items(:order_p, :gb, 1, 'the other box'), 0, 'the other box cancelled');
SELECT is((SELECT status FROM orders WHERE id = :order_p), 'cancelled', 'nothing left: the order is cancelled');
SELECT is(shop_cancel_order(:order_p, 'again'), 'cancelled', 'and a cancel of it changes nothing');
SELECT results_eq($$SELECT product_id, sum(quantity)::int FROM stock_movements
					 WHERE order_id = $$ || :order_p || $$ GROUP BY 1 ORDER BY 1$$,
				  $$VALUES (1001::bigint, 2), (1002, 4)$$, 'both boxes'' parts given back, once');
SELECT results_eq($$SELECT product_id, stock FROM product_stock WHERE product_id IN (1001, 1002)
					 ORDER BY 1$$,
				  $$VALUES (1001::bigint, 8), (1002, 23)$$, 'the stock is as before the order');

-- an expiry gives back the parts of what is left of the order, once
SET LOCAL checkout.payment_window = '15min';
INSERT INTO cart_items VALUES (1008, :gb, 1), (1008, :cp, 1);
SELECT shop_checkout(1008) AS order_e \gset
RESET checkout.payment_window;
SELECT is(shop_cancel_items(:order_e, :cp, 1, 'no case pack'), 0, 'the Case Pack cancelled first');
UPDATE orders SET expires_at = now() - interval '1 minute' WHERE id = :order_e;
SELECT is(shop_expire_orders(), 1, 'the order expires');
SELECT is(shop_expire_orders(), 0, 'once');
SELECT results_eq($$SELECT product_id, kind, sum(quantity)::int FROM stock_movements
					 WHERE order_id = $$ || :order_e || $$ GROUP BY 1, 2 ORDER BY 2, 1$$,
				  $$VALUES (1002::bigint, 'cancellation'::text, 1), (1003, 'cancellation', 1),
						   (1001, 'expiry', 1), (1002, 'expiry', 2)$$,
				  'the expiry gave back the Gift Box''s parts, the cancel the Case Pack''s');
SELECT results_eq($$SELECT product_id, stock FROM product_stock WHERE product_id IN (1001, 1002, 1003)
					 ORDER BY 1$$,
				  $$VALUES (1001::bigint, 8), (1002, 23), (1003, 6)$$, 'the stock is as before the order');
SELECT is_empty($$SELECT * FROM shop_check_integrity()$$, 'the books are right after the expiry');

-- a checkout about to say "sold out" first takes back what expired orders
-- hold (README), the parts of their bundles too: 8 boxes hold every phone
SET LOCAL checkout.payment_window = '15min';
INSERT INTO cart_items VALUES (1009, :gb, 8);
SELECT shop_checkout(1009) AS order_x \gset
RESET checkout.payment_window;
UPDATE orders SET expires_at = now() - interval '1 minute' WHERE id = :order_x;
INSERT INTO cart_items VALUES (1010, 1001, 1);
SELECT lives_ok($$SELECT shop_checkout(1010)$$, 'the last phones are held by an expired order: the phone is sold');
SELECT is((SELECT status FROM orders WHERE id = :order_x), 'cancelled', 'the expired order gave them back');
-- as before, whichever way that went
SELECT shop_expire_orders() AS done \gset
SELECT count(shop_cancel_order(id, 'undo')) AS done FROM orders WHERE customer_id = 1010 \gset
DELETE FROM cart_items WHERE customer_id = 1010;
SELECT is_empty($$SELECT * FROM shop_check_integrity()$$, 'the books are right after the reclaim');

-- a part in stock slots: the bundle takes from them
SELECT is(shop_split_stock(1003, 4), 6, 'the chargers split over 4 slots');
INSERT INTO cart_items VALUES (1011, :cp, 2);
SELECT ok(shop_checkout(1011) > 0, 'two Case Packs sold');
SELECT results_eq($$SELECT product_id, stock, slots FROM product_stock WHERE product_id IN (1002, 1003)
					 ORDER BY 1$$,
				  $$VALUES (1002::bigint, 21, 0), (1003, 4, 4)$$, 'a charger taken from the slots per pack');
SELECT is_empty($$SELECT * FROM shop_check_integrity()$$, 'the books are right with slots');

-- a part is never preordered, even when its product takes preorders and its
-- buyer accepted one: the bundle is short
INSERT INTO products (id, name, price_cents, stock) OVERRIDING SYSTEM VALUE
	VALUES (1005, 'Drop Strap', 900, 1);
SELECT shop_set_preorder(1005, 5, '2027-03-01') AS done \gset
SELECT shop_create_bundle('Strap Set', 2500,
	'[{"product_id": 1005, "quantity": 2}, {"product_id": 1004, "quantity": 1}]') AS ss \gset
INSERT INTO cart_items (customer_id, product_id, quantity, accept_preorder) VALUES (1012, :ss, 1, true);
SELECT throws_ok($$SELECT shop_checkout(1012)$$, 'SH001',
				 'Insufficient stock for Strap Set: part Drop Strap (available: 1, requested: 2)',
				 'a bundle whose part takes preorders is short all the same');
INSERT INTO cart_items (customer_id, product_id, quantity, accept_preorder) VALUES (1012, 1005, 1, true);
SELECT is((pg_temp.error_of('SELECT shop_checkout(1012)'))[1], 'SH001',
		  'with the part on its own accepting a preorder too, the bundle is still short: SH001');
SELECT results_eq($$SELECT (SELECT open_preorders FROM preorders WHERE product_id = 1005),
						   (SELECT stock FROM product_stock WHERE product_id = 1005),
						   (SELECT count(*) FROM orders WHERE customer_id = 1012)$$,
				  $$VALUES (0, 1, 0::bigint)$$, 'no preorder, no stock taken, no order');
DELETE FROM cart_items WHERE customer_id = 1012;
-- ... while the part alone, in a cart without its bundles, is preordered as
-- any product: the cart status says the checkout would succeed
INSERT INTO cart_items (customer_id, product_id, quantity, accept_preorder) VALUES (1012, 1005, 3, true);
SELECT results_eq($$SELECT can_fulfil, checkout_would_succeed, preordered FROM shop_cart_status(1012, NULL)$$,
				  $$VALUES (true, true, 2)$$,
				  'a part on its own, accepting a preorder, can be fulfilled: 1 on hand, 2 preordered');
DELETE FROM cart_items WHERE customer_id = 1012;

-- a part stocked at another location (undone after)
SAVEPOINT located;
INSERT INTO products (id, name, price_cents, stock) OVERRIDING SYSTEM VALUE
	VALUES (1006, 'Travel Strap', 700, 0);
SELECT is(shop_restock(1006, 3, 'north delivery', :north), 3, 'the straps are in North only');
SELECT shop_create_bundle('North Kit', 1500,
	'[{"product_id": 1006, "quantity": 1}, {"product_id": 1004, "quantity": 1}]') AS nk \gset
SELECT is((SELECT stock FROM product_stock WHERE product_id = :nk), 3, 'a bundle counts its parts everywhere');
INSERT INTO cart_items VALUES (1013, :nk, 1);
SELECT is(pg_temp.error_of('SELECT shop_checkout(1013)'), NULL, 'a bundle with a part at North is sold');
SELECT results_eq($$SELECT a.product_id, a.location_id, a.quantity FROM order_item_allocations a
					 JOIN orders o ON o.id = a.order_id WHERE o.customer_id = 1013$$,
				  $$VALUES (1006::bigint, $$ || :north || $$::bigint, 1)$$, 'the part allocated from North');
SELECT is_empty($$SELECT * FROM shop_check_integrity()$$, 'the books are right');
INSERT INTO cart_items VALUES (1014, :nk, 1), (1014, 1006, 1);
SELECT is(pg_temp.error_of('SELECT shop_checkout(1014)'), NULL, 'a bundle and its part, both from North');
SELECT results_eq($$SELECT a.product_id, a.location_id, a.quantity FROM order_item_allocations a
					 JOIN orders o ON o.id = a.order_id WHERE o.customer_id = 1014$$,
				  $$VALUES (1006::bigint, $$ || :north || $$::bigint, 2)$$,
				  'the order''s units of the part, its line''s and its bundle''s, allocated together');
SELECT is((SELECT stock FROM location_stock WHERE product_id = 1006 AND location_id = :north), 0,
		  'North has no strap left');
SELECT is_empty($$SELECT * FROM shop_check_integrity()$$, 'the books are right: allocations count the parts');
SELECT count(shop_cancel_order(id, 'undo')) AS done FROM orders WHERE customer_id IN (1013, 1014) \gset
SELECT results_eq($$SELECT location_id, sum(quantity)::int FROM stock_movements
					 WHERE product_id = 1006 AND kind = 'cancellation' GROUP BY 1$$,
				  $$VALUES ($$ || :north || $$::bigint, 3)$$, 'cancels give the straps back to North ...');
SELECT is((SELECT stock FROM location_stock WHERE product_id = 1006 AND location_id = :north), 3,
		  '... all three');
SELECT is_empty($$SELECT * FROM shop_check_integrity()$$, 'the books of every location are right');
ROLLBACK TO located;

-- who may create bundles: the back office, not the storefront
CREATE ROLE regress_bundle_web;
CREATE ROLE regress_bundle_office;
SELECT shop_grant_app('regress_bundle_web') AS done \gset
SELECT shop_grant_admin('regress_bundle_office') AS done \gset
SELECT ok(has_function_privilege('regress_bundle_office', 'shop_create_bundle(text, bigint, jsonb)', 'EXECUTE'),
		  'shop_grant_admin grants shop_create_bundle');
SELECT ok(NOT has_function_privilege('regress_bundle_web', 'shop_create_bundle(text, bigint, jsonb)', 'EXECUTE'),
		  'shop_grant_app does not');
SELECT ok(has_table_privilege('regress_bundle_web', 'bundle_parts', 'SELECT')
		  AND has_table_privilege('regress_bundle_web', 'order_item_parts', 'SELECT'),
		  'shop_grant_app lets the storefront read the bundles'' parts, and the orders''');
SET ROLE regress_bundle_web;
SELECT throws_ok($$SELECT shop_create_bundle('Mine', 1, '[{"product_id": 1004, "quantity": 1}]')$$,
				 '42501', NULL, 'the storefront cannot create a bundle');
INSERT INTO cart_items VALUES (1012, :gb, 1);
SELECT ok(shop_checkout(1012) > 0, 'but sells one');
RESET ROLE;
SET ROLE regress_bundle_office;
SELECT ok(shop_create_bundle('Office Box', 1000, '[{"product_id": 1004, "quantity": 2}]') > 0,
		  'the back office creates a bundle');
RESET ROLE;
SELECT is_empty($$SELECT * FROM shop_check_integrity()$$, 'the books are right at the end');

-- the placed event lists a bundle line's parts and where they came from
SAVEPOINT events;
CREATE EXTENSION pgq;
SELECT shop_events_create_queue('bundle_events') AS done \gset
SET LOCAL checkout.events = pgq;
SET LOCAL checkout.events_queue = 'bundle_events';
INSERT INTO cart_items VALUES (1015, :gb, 2), (1015, 1004, 1);
SELECT ok(shop_checkout(1015) > 0, 'two boxes and a cable, with events');
SELECT is((SELECT ev_data::jsonb -> 'lines' FROM pgq.event_template WHERE ev_type = 'placed'),
		  format('[{"product_id": %s, "name": "Gift Box", "quantity": 2, "unit_price_cents": 52000,
					"discount_cents": 0, "preordered_quantity": 0, "allocations": [],
					"parts": [{"product_id": 1001, "name": "Phone", "quantity_per_unit": 1, "quantity": 2,
							   "allocations": [{"location_id": 1, "quantity": 2}]},
							  {"product_id": 1002, "name": "Phone Case", "quantity_per_unit": 2, "quantity": 4,
							   "allocations": [{"location_id": 1, "quantity": 4}]}]},
				   {"product_id": 1004, "name": "Cable", "quantity": 1, "unit_price_cents": 500,
					"discount_cents": 0, "preordered_quantity": 0,
					"allocations": [{"location_id": 1, "quantity": 1}]}]', :gb)::jsonb,
		  'the bundle''s line lists its parts, none of its own allocations');
ROLLBACK TO events;

-- the integrity check finds what is planted behind its back (each undone)
SAVEPOINT plant;
UPDATE products SET stock = stock - 1 WHERE id = 1002;
SELECT results_eq($$SELECT problem, product_id FROM shop_check_integrity()$$,
				  $$VALUES ('stock_mismatch'::text, 1002::bigint)$$, 'a part''s stock changed: stock_mismatch');
ROLLBACK TO plant;
UPDATE order_item_parts SET quantity = quantity + 1 WHERE order_id = :order_v AND product_id = 1002;
SELECT results_eq($$SELECT problem, product_id FROM shop_check_integrity()$$,
				  $$VALUES ('stock_mismatch'::text, 1002::bigint)$$,
				  'a bundle that took more of a part than the stock lost: stock_mismatch of the part');
ROLLBACK TO plant;
UPDATE order_items SET cancelled_quantity = 1 WHERE order_id = :order_v AND product_id = :gb;
SELECT results_eq($$SELECT problem, product_id, order_id FROM shop_check_integrity()$$,
				  format($$VALUES ('cancellation_mismatch'::text, 1001::bigint, %s::bigint),
								  ('cancellation_mismatch', 1002, %1$s)$$, :order_v),
				  'a bundle cancelled without its parts given back: cancellation_mismatch of each part');
ROLLBACK TO plant;
DELETE FROM order_item_parts WHERE order_id = :order_v;
SELECT results_eq($$SELECT problem, product_id FROM shop_check_integrity()$$,
				  format($$VALUES ('stock_mismatch'::text, %s::bigint), ('stock_mismatch', 1001),
								  ('stock_mismatch', 1002)$$, :gb),
				  'a bundle''s line that lost its parts: the bundle sold, its parts not');
ROLLBACK TO plant;
SELECT is_empty($$SELECT * FROM shop_check_integrity()$$, 'undone, the books are right');

SELECT * FROM finish();
ROLLBACK;
