-- pgTAP: preorders (1.2).  The contract of the new objects; a line takes
-- the stock on hand (over every location), then preorders up to the cap,
-- only when its buyer accepted; SH001 names what is preorderable; restocks
-- fill open preorders oldest first before anything goes on sale, with a
-- movement of their own; cancels release open preorders (the cap) and give
-- filled units back where they were filled; the ledger's identity (stock on
-- sale = movements - units sold from stock, the fills' movements counting
-- the filled preorders) holds throughout; bad input is a documented
-- SQLSTATE that changes nothing; the integrity check finds each planted
-- preorder discrepancy.
BEGIN;
CREATE EXTENSION checkout;
SELECT plan(40);

-- the contract
SELECT has_table('preorders');
SELECT columns_are('preorders', ARRAY['product_id', 'max_preorders', 'ships_on', 'open_preorders']);
SELECT has_table('preorder_fills');
SELECT col_type_is('cart_items', 'accept_preorder', 'boolean');
SELECT col_default_is('cart_items', 'accept_preorder', 'false');
SELECT col_type_is('order_items', 'preordered_quantity', 'integer');
SELECT col_type_is('order_items', 'preorder_filled_quantity', 'integer');
SELECT col_type_is('order_items', 'preorder_released_quantity', 'integer');
SELECT has_function('shop_set_preorder', ARRAY['bigint', 'integer', 'date']);

INSERT INTO products (id, name, price_cents, stock) OVERRIDING SYSTEM VALUE
	VALUES (801, 'Drop Jacket', 25000, 3);
INSERT INTO customers (id, name) OVERRIDING SYSTEM VALUE
	VALUES (801, 'early'), (802, 'late'), (803, 'no preorder'), (804, 'after');

-- bad input
SELECT throws_ok($$SELECT shop_set_preorder(NULL, 1, NULL)$$, '22004', NULL, 'a NULL product is 22004');
SELECT throws_ok($$SELECT shop_set_preorder(801, 0, NULL)$$, '22023', NULL, 'a cap of 0 is 22023');
SELECT throws_ok($$SELECT shop_set_preorder(999, 1, NULL)$$, 'SH004', NULL, 'an unknown product is SH004');
SELECT is(shop_set_preorder(801, 2, '2027-02-01'), 2, 'shop_set_preorder returns the cap');

-- a line takes the stock on hand, then preorders what it lacks
INSERT INTO cart_items (customer_id, product_id, quantity, accept_preorder) VALUES (801, 801, 5, true);
SELECT results_eq($$SELECT can_fulfil, ships_from, preordered FROM shop_cart_status(801, NULL)$$,
				  $$VALUES (true, 'default'::text, 2)$$,
				  'the preview: 3 from the default, 2 preordered');
SELECT lives_ok($$SELECT shop_checkout(801)$$, '3 on hand and 2 preordered serve 5');
SELECT results_eq($$SELECT oi.quantity, oi.preordered_quantity FROM order_items oi
					 JOIN orders o ON o.id = oi.order_id WHERE o.customer_id = 801$$,
				  $$VALUES (5, 2)$$, 'the line records its 2 preordered units');
SELECT results_eq($$SELECT (SELECT stock FROM product_stock WHERE product_id = 801),
						   (SELECT open_preorders FROM preorders WHERE product_id = 801)$$,
				  $$VALUES (0, 2)$$, 'nothing on sale, 2 preorders open');

-- the cap holds; SH001 names what is preorderable; not accepting: no preorder
INSERT INTO cart_items (customer_id, product_id, quantity, accept_preorder) VALUES (802, 801, 1, true);
SELECT throws_ok($$SELECT shop_checkout(802)$$, 'SH001',
				 'Insufficient stock for Drop Jacket (available: 0, preorderable: 0, requested: 1)',
				 'the cap reached: SH001 says nothing is preorderable');
SELECT shop_set_preorder(801, 3, '2027-02-01');
INSERT INTO cart_items (customer_id, product_id, quantity) VALUES (803, 801, 1);
SELECT throws_ok($$SELECT shop_checkout(803)$$, 'SH001',
				 'Insufficient stock for Drop Jacket (available: 0, requested: 1)',
				 'a buyer who did not accept a preorder is short ...');
SELECT lives_ok($$SELECT shop_checkout(802)$$, '... where one who did is served (the cap raised to 3)');
SELECT throws_ok($$SELECT shop_set_preorder(801, 2, NULL)$$, '22023', NULL,
				 'a cap under the open preordered units is refused');
SELECT throws_ok($$SELECT shop_set_preorder(801, NULL, NULL)$$, '22023', NULL,
				 'preorders cannot end while some are open');

-- restocks fill open preorders oldest first, before anything goes on sale
SELECT is(shop_restock(801, 1, 'first box'), 0, 'a restock of 1 fills a preorder: nothing on sale');
SELECT results_eq($$SELECT o.customer_id, oi.preorder_filled_quantity FROM order_items oi
					 JOIN orders o ON o.id = oi.order_id WHERE oi.product_id = 801 ORDER BY 1$$,
				  $$VALUES (801::bigint, 1), (802, 0)$$, 'the oldest order''s preorder first');
SELECT is(shop_restock(801, 4, 'second box'), 2, 'a restock of 4 fills the 2 still open, 2 go on sale');
SELECT is((SELECT open_preorders FROM preorders WHERE product_id = 801), 0, 'no preorder open');
SELECT results_eq($$SELECT kind, quantity, stock_after FROM stock_movements
					 WHERE product_id = 801 AND kind IN ('restock', 'preorder_fill') ORDER BY id$$,
				  $$VALUES ('restock'::text, 1, 1), ('preorder_fill', -1, 0),
						   ('restock', 4, 4), ('preorder_fill', -1, 3), ('preorder_fill', -1, 2)$$,
				  'each fill is a movement of its own, naming its order');
SELECT is_empty($$SELECT * FROM shop_check_integrity()$$, 'the books are right');

-- cancels: filled units back where they were filled; open ones free the cap
INSERT INTO cart_items (customer_id, product_id, quantity, accept_preorder) VALUES (804, 801, 4, true);
SELECT lives_ok($$SELECT shop_checkout(804)$$, '2 on hand, 2 preordered');
SELECT is(shop_cancel_items((SELECT id FROM orders WHERE customer_id = 804), 801, 1, 'one less'), 3,
		  'a partial cancel of 1 ...');
SELECT results_eq($$SELECT (SELECT open_preorders FROM preorders WHERE product_id = 801),
						   (SELECT stock FROM product_stock WHERE product_id = 801)$$,
				  $$VALUES (1, 0)$$, '... releases an open preorder first (the cap), no stock moves');
SELECT is(shop_cancel_order((SELECT id FROM orders WHERE customer_id = 801), 'changed mind'),
		  'cancelled', 'cancelling the first order (3 from stock, 2 filled)');
SELECT results_eq($$SELECT (SELECT open_preorders FROM preorders WHERE product_id = 801),
						   (SELECT stock FROM product_stock WHERE product_id = 801)$$,
				  $$VALUES (0, 4)$$,
				  'its 5 units back: one fills the open preorder, 4 on sale');
SELECT is_empty($$SELECT * FROM shop_check_integrity()$$, 'the books are still right');

-- preorders over locations: the stock of every location first
SELECT shop_create_location('North', 1);
SELECT shop_restock(801, 2, 'north box', 2);
INSERT INTO customers (id, name) OVERRIDING SYSTEM VALUE VALUES (805, 'located');
INSERT INTO cart_items (customer_id, product_id, quantity, accept_preorder) VALUES (805, 801, 8, true);
SELECT lives_ok($$SELECT shop_checkout(805)$$, '4 on hand at the default, 2 in North, 2 preordered');
SELECT results_eq($$SELECT location_id, quantity FROM order_item_allocations
					 WHERE order_id = (SELECT id FROM orders WHERE customer_id = 805) ORDER BY 1$$,
				  $$VALUES (1::bigint, 4), (2, 2)$$, 'every location''s stock, allocated');
SELECT is((SELECT preordered_quantity FROM order_items
			WHERE order_id = (SELECT id FROM orders WHERE customer_id = 805)), 2, 'and 2 preordered');
SELECT is_empty($$SELECT * FROM shop_check_integrity()$$, 'the books of every location are right');

-- the integrity check finds planted discrepancies
UPDATE preorders SET open_preorders = open_preorders + 5 WHERE product_id = 801;
SELECT is((SELECT array_agg(problem ORDER BY problem) FROM shop_check_integrity()),
		  ARRAY['preorder_open_mismatch', 'preorder_over_cap'],
		  'preorder_over_cap and preorder_open_mismatch');
UPDATE preorders SET open_preorders = open_preorders - 5 WHERE product_id = 801;
UPDATE products SET stock = stock + 1 WHERE id = 801;
SELECT is((SELECT array_agg(problem ORDER BY problem) FROM shop_check_integrity()),
		  ARRAY['stock_mismatch', 'stock_on_sale_with_open_preorders'],
		  'stock_on_sale_with_open_preorders (and the ledger off)');
UPDATE products SET stock = stock - 1 WHERE id = 801;

SELECT * FROM finish();
ROLLBACK;
