-- pgTAP: the row checks of orders and order_items (1.3).  Each rule of
-- 1.2's six CHECK constraints still refuses a direct writer's bad row,
-- with 23514 and the name of the constraint it replaced; a good row and
-- the checkout's own writes pass; the constraints are in the catalog, one
-- per rule set, and a NULL passes as a CHECK's would.
BEGIN;
CREATE EXTENSION checkout;
SELECT plan(16);

SELECT set_eq($$SELECT conname::text FROM pg_constraint
				 WHERE contype = 'c' AND conrelid IN ('orders'::regclass, 'order_items'::regclass)$$,
			  ARRAY['orders_row_check', 'order_items_row_check', 'order_items_quantity_check'],
			  'orders has one row check, order_items its quantity check and one row check');
SELECT ok((SELECT provolatile = 'i' FROM pg_proc WHERE proname = 'shop_order_row_check'),
		  'the row check functions are immutable');

INSERT INTO products (id, name, price_cents, stock) OVERRIDING SYSTEM VALUE VALUES (601, 'Lamp', 1000, 10);
INSERT INTO customers (id, name) OVERRIDING SYSTEM VALUE VALUES (601, 'Ada');
INSERT INTO cart_items VALUES (601, 601, 2);
SELECT ok(shop_checkout(601) > 0, 'a checkout passes the row checks');
SELECT lives_ok($$UPDATE orders SET status = 'paid'$$, 'a good row passes');

-- orders
SELECT throws_ok($$UPDATE orders SET status = 'shipped'$$, '23514',
				 'new row for relation "orders" violates check constraint "orders_status_check"',
				 'an unknown status: orders_status_check');
SELECT throws_ok($$UPDATE orders SET discount_cents = -1$$, '23514',
				 'new row for relation "orders" violates check constraint "orders_discount_cents_check"',
				 'a negative discount: orders_discount_cents_check');
SELECT throws_ok($$UPDATE orders SET discount_cents = 100$$, '23514',
				 'new row for relation "orders" violates check constraint "orders_discount_cents_check"',
				 'a discount without a voucher: orders_discount_cents_check');
SELECT throws_ok($$UPDATE orders SET voucher_code_id = 1$$, '23514',
				 'new row for relation "orders" violates check constraint "orders_voucher_code_check"',
				 'a code without its voucher: orders_voucher_code_check');

-- order_items
SELECT throws_ok($$UPDATE order_items SET cancelled_quantity = 3$$, '23514',
				 'new row for relation "order_items" violates check constraint "order_items_check"',
				 'more cancelled than ordered: order_items_check');
SELECT throws_ok($$UPDATE order_items SET cancelled_quantity = -1$$, '23514',
				 'new row for relation "order_items" violates check constraint "order_items_check"',
				 'a negative cancelled quantity: order_items_check');
SELECT throws_ok($$UPDATE order_items SET discount_cents = -5$$, '23514',
				 'new row for relation "order_items" violates check constraint "order_items_discount_cents_check"',
				 'a negative line discount: order_items_discount_cents_check');
SELECT throws_ok($$UPDATE order_items SET preordered_quantity = 3$$, '23514',
				 'new row for relation "order_items" violates check constraint "order_items_preorder_check"',
				 'more preordered than ordered: order_items_preorder_check');
SELECT throws_ok($$UPDATE order_items SET preordered_quantity = 1, preorder_filled_quantity = 1,
					 preorder_released_quantity = 1$$, '23514',
				 'new row for relation "order_items" violates check constraint "order_items_preorder_check"',
				 'more filled and released than preordered: order_items_preorder_check');
SELECT throws_ok($$UPDATE order_items SET quantity = 0$$, '23514', NULL,
				 'a quantity of 0: order_items_quantity_check, as in 1.0');

-- NULLs pass, as a CHECK's NULL does
SELECT is(shop_order_row_check(NULL, NULL, NULL, NULL), true, 'NULL passes the orders row check');
SELECT is(shop_order_item_row_check(NULL, NULL, NULL, NULL, NULL, NULL), true,
		  'NULL passes the order_items row check');

SELECT * FROM finish();
ROLLBACK;
