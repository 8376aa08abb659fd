-- pgTAP: least privilege.  A storefront role given shop_grant_app() can run
-- a whole sale and nothing else: every direct write to the shop's books is
-- denied (42501), and so is every administration function; an admin role
-- given shop_grant_admin() manages stock and orders through the functions
-- only; a role never granted anything can do nothing.  Objects planted
-- earlier on the app role's search_path change nothing that checkout does,
-- and product names that look like SQL or format strings are data.
BEGIN;
CREATE EXTENSION checkout;
SELECT plan(39);

CREATE ROLE regress_app;
CREATE ROLE regress_admin;
CREATE ROLE regress_nobody;
SELECT lives_ok($$SELECT shop_grant_app('regress_app')$$, 'shop_grant_app grants a role');
SELECT lives_ok($$SELECT shop_grant_admin('regress_admin')$$, 'shop_grant_admin grants a role');

INSERT INTO products (name, price_cents, stock) VALUES
  ('Flash Sale Smartphone', 49900, 10),
  ($$Robert'); DROP TABLE orders; -- %s %I "quoted"$$, 100, 1);
INSERT INTO customers (name) VALUES ('Ada'), ('Brian');

-- The storefront runs a whole sale
SET ROLE regress_app;
SELECT lives_ok($$INSERT INTO cart_items VALUES (1, 1, 2)$$, 'the app adds to a cart');
SELECT lives_ok($$UPDATE cart_items SET quantity = 1 WHERE customer_id = 1$$, 'the app changes a cart line');
SELECT is((SELECT count(*)::int FROM shop_cart_status(1)), 1, 'the app shows the cart');
SELECT ok(shop_checkout(1) > 0, 'the app checks out');
INSERT INTO cart_items VALUES (2, 1, 1);
SELECT ok(shop_checkout(2, 'tab-1') = shop_checkout(2, 'tab-1'), 'the app checks out with a key, and retries');
SELECT is(shop_pay((SELECT max(id) FROM orders), 'psp-1'), 'paid', 'the app records a payment');
SELECT is((SELECT stock FROM product_stock WHERE product_id = 1), 8, 'the app reads the stock on sale');
SELECT is((SELECT count(*)::int FROM orders), 2, 'the app reads the orders');
SELECT is((SELECT count(*)::int FROM order_items), 2, 'the app reads their lines');

-- ... and writes nothing else
SELECT throws_ok($$UPDATE products SET stock = 1000$$, '42501', NULL, 'no update of stock');
SELECT throws_ok($$UPDATE products SET price_cents = 1$$, '42501', NULL, 'no update of prices');
SELECT throws_ok($$INSERT INTO products (name, price_cents, stock) VALUES ('x', 1, 1)$$, '42501', NULL,
				 'no new products');
SELECT throws_ok($$UPDATE stock_slots SET stock = 1000$$, '42501', NULL, 'no write on stock slots');
SELECT throws_ok($$INSERT INTO stock_movements (product_id, kind, quantity, stock_after, reason)
				   VALUES (1, 'restock', 5, 13, 'x')$$, '42501', NULL, 'no write on the ledger');
SELECT throws_ok($$INSERT INTO orders (customer_id, total_cents) VALUES (1, 0)$$, '42501', NULL,
				 'no order but through checkout');
SELECT throws_ok($$UPDATE orders SET status = 'paid'$$, '42501', NULL, 'no order paid but through shop_pay');
SELECT throws_ok($$DELETE FROM orders$$, '42501', NULL, 'no order deleted');
SELECT throws_ok($$UPDATE order_items SET quantity = 1$$, '42501', NULL, 'no write on order lines');
SELECT throws_ok($$DELETE FROM idempotency_keys$$, '42501', NULL, 'no write on idempotency keys');
SELECT throws_ok($$SELECT shop_restock(1, 5, 'x')$$, '42501', NULL, 'no restock');
SELECT throws_ok($$SELECT shop_adjust_stock(1, 100, 'x')$$, '42501', NULL, 'no stock adjustment');
SELECT throws_ok($$SELECT shop_cancel_order(1, 'x')$$, '42501', NULL, 'no cancelling');
SELECT throws_ok($$SELECT shop_set_purchase_limit(1, 5)$$, '42501', NULL, 'no purchase limits');
SELECT throws_ok($$SELECT shop_expire_orders()$$, '42501', NULL, 'no expiring');
SELECT throws_ok($$SELECT shop_grant_app('regress_nobody')$$, '42501', NULL, 'no granting');

-- Objects planted earlier on its search_path change nothing
RESET ROLE;
CREATE SCHEMA regress_plant;
GRANT USAGE ON SCHEMA regress_plant TO regress_app;
CREATE TABLE regress_plant.orders (id bigint, customer_id bigint, total_cents bigint);
CREATE TABLE regress_plant.products (id bigint, name text, price_cents bigint, stock integer);
INSERT INTO regress_plant.products VALUES (1, 'planted', 1, 1000000);
GRANT ALL ON regress_plant.orders, regress_plant.products TO regress_app;
CREATE FUNCTION regress_plant.captured(bigint, bigint) RETURNS boolean LANGUAGE plpgsql
	AS $$BEGIN RAISE EXCEPTION 'captured: planted = operator'; END$$;
CREATE OPERATOR regress_plant.= (LEFTARG = bigint, RIGHTARG = bigint, PROCEDURE = regress_plant.captured);
CREATE FUNCTION regress_plant.unnest(anyarray) RETURNS SETOF anyelement LANGUAGE plpgsql
	AS $$BEGIN RAISE EXCEPTION 'captured: planted unnest'; END$$;
CREATE FUNCTION regress_plant.now() RETURNS timestamptz LANGUAGE sql AS $$SELECT 'epoch'::timestamptz$$;
SET ROLE regress_app;
SET search_path = regress_plant, public, pg_catalog;
INSERT INTO public.cart_items VALUES (1, 1, 3);
SELECT lives_ok($$SELECT public.shop_checkout(1, 'planted')$$, 'checkout ignores what is planted on search_path');
SELECT is((SELECT count(*)::int FROM regress_plant.orders), 0, 'no order went into a planted table');
SELECT is((SELECT stock FROM public.product_stock WHERE product_id = 1), 5,
		  'the stock of the real product moved');
SELECT ok((SELECT created_at > 'epoch' FROM public.orders ORDER BY id DESC LIMIT 1),
		  'a planted now() is not called');
RESET search_path;

-- Product names are data
INSERT INTO cart_items VALUES (1, 2, 5);
SELECT throws_ok($$SELECT shop_checkout(1)$$, 'SH001',
	$$Insufficient stock for Robert'); DROP TABLE orders; -- %s %I "quoted" (available: 1, requested: 5)$$,
	'a name holding quotes, SQL and format strings comes through as data');
SELECT has_table('public', 'orders', 'and nothing was run');

-- The admin manages stock and orders through the functions only
RESET ROLE;
SET ROLE regress_admin;
SELECT is(shop_restock(1, 5, 'delivery 1'), 10, 'the admin restocks');
SELECT is(shop_cancel_order(1, 'customer request'), 'cancelled', 'the admin cancels an order');
SELECT throws_ok($$UPDATE products SET stock = 0$$, '42501', NULL, 'the admin writes no stock directly');
SELECT is_empty($$SELECT * FROM shop_check_integrity()$$, 'the books agree after all that');

-- A role never granted anything can do nothing
RESET ROLE;
SET ROLE regress_nobody;
SELECT throws_ok($$SELECT shop_checkout(1)$$, '42501', NULL, 'an ungranted role cannot check out');
SELECT throws_ok($$SELECT count(*) FROM products$$, '42501', NULL, 'nor read the products');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
