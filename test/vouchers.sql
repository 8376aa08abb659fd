-- pgTAP: vouchers (1.2).  The contract of every new object; bad input is
-- 22023 or 22004 and changes nothing; the discount (percent rounded down,
-- an amount at most the subtotal) and its spread over the lines (largest
-- remainder); each refusal's SQLSTATE and message, in the documented order
-- (the code, then the cart, then the limits), each changing nothing; a
-- keyed replay returns the first order (another code: SH015, 1.3); cancels
-- and expiries give the use back exactly once, a partial cancel keeps it;
-- the integrity check finds each kind of voucher discrepancy planted; the
-- cart's preview; a code that looks like SQL is data; a storefront role can
-- check out with a code but neither create vouchers nor read the codes.
BEGIN;
CREATE EXTENSION checkout;
SELECT plan(107);

-- the contract of the new objects
SELECT has_table('vouchers');
SELECT columns_are('vouchers', ARRAY['id', 'name', 'percent_off', 'amount_off_cents',
	'usage_limit', 'per_customer_limit', 'starts_at', 'ends_at', 'min_total_cents',
	'use_slots', 'created_at']);
SELECT has_table('voucher_codes');
SELECT columns_are('voucher_codes', ARRAY['id', 'voucher_id', 'code', 'single_use', 'created_at']);
SELECT has_table('voucher_slots');
SELECT columns_are('voucher_slots', ARRAY['voucher_id', 'slot', 'remaining']);
SELECT col_type_is('orders', 'voucher_id', 'bigint');
SELECT col_type_is('orders', 'voucher_code_id', 'bigint');
SELECT col_type_is('orders', 'discount_cents', 'bigint');
SELECT col_default_is('orders', 'discount_cents', '0');
SELECT col_type_is('order_items', 'discount_cents', 'bigint');
SELECT is_empty($$SELECT conname FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype = 'f'
					 AND confrelid IN ('vouchers'::regclass, 'voucher_codes'::regclass)$$,
				'no foreign key from orders to a voucher''s one row (every redemption would lock it)');
SELECT has_trigger('vouchers', 'vouchers_keep_used');
SELECT has_view('voucher_usage');
SELECT columns_are('voucher_usage', ARRAY['voucher_id', 'name', 'usage_limit', 'used',
	'remaining', 'per_customer_limit', 'placed', 'paid', 'cancelled', 'starts_at', 'ends_at']);
SELECT has_function('shop_create_voucher', ARRAY['text', 'integer', 'bigint', 'integer',
	'integer', 'timestamp with time zone', 'timestamp with time zone', 'bigint']);
SELECT function_returns('shop_create_voucher', ARRAY['text', 'integer', 'bigint', 'integer',
	'integer', 'timestamp with time zone', 'timestamp with time zone', 'bigint'], 'bigint');
SELECT is((SELECT proargnames FROM pg_proc WHERE proname = 'shop_create_voucher'),
		  ARRAY['name', 'percent_off', 'amount_off_cents', 'usage_limit', 'per_customer_limit',
				'starts_at', 'ends_at', 'min_total_cents'],
		  'shop_create_voucher''s arguments are named as documented');
SELECT function_returns('shop_end_voucher', ARRAY['bigint'], 'timestamp with time zone');
SELECT function_returns('shop_add_voucher_code', ARRAY['bigint', 'text', 'boolean'], 'text');
SELECT function_returns('shop_generate_voucher_codes', ARRAY['bigint', 'integer', 'text'],
						'setof text');
SELECT function_returns('shop_checkout', ARRAY['bigint', 'text', 'text'], 'bigint');
SELECT is((SELECT proargnames FROM pg_proc
			WHERE oid = 'shop_checkout(bigint, text, text)'::regprocedure),
		  ARRAY['customer_id', 'idempotency_key', 'voucher_code'],
		  'its arguments are customer_id, idempotency_key, voucher_code');
SELECT isnt_strict('shop_checkout', ARRAY['bigint', 'text', 'text']);
SELECT is_definer('shop_checkout', ARRAY['bigint', 'text', 'text']);
SELECT is((SELECT prosrc FROM pg_proc WHERE oid = 'shop_checkout(bigint, text, text)'::regprocedure),
		  'shop_checkout_with_voucher',
		  'its own C symbol, which a library older than 1.2 does not have');
SELECT function_returns('shop_cart_status', ARRAY['bigint', 'text'], 'setof record');
SELECT volatility_is('shop_cart_status', ARRAY['bigint', 'text'], 'stable');

INSERT INTO products (name, price_cents, stock) VALUES
	('Phone', 10000, 10), ('Case', 999, 100), ('Cable', 333, 100);
INSERT INTO customers (name) SELECT 'Buyer ' || g FROM generate_series(1, 9) AS g;
CREATE TEMP TABLE books AS
	SELECT (SELECT count(*) FROM orders) AS orders,
		   (SELECT sum(stock) FROM product_stock) AS stock;

-- bad input: 22023 or 22004, nothing created
SELECT throws_ok($$SELECT shop_create_voucher('x', percent_off => 0)$$, '22023', NULL, '0 percent is 22023');
SELECT throws_ok($$SELECT shop_create_voucher('x', percent_off => 101)$$, '22023', NULL, '101 percent is 22023');
SELECT throws_ok($$SELECT shop_create_voucher('x', percent_off => 10, amount_off_cents => 100)$$,
				 '22023', 'a voucher takes exactly one of percent_off and amount_off_cents',
				 'both percent and amount is 22023');
SELECT throws_ok($$SELECT shop_create_voucher('x')$$, '22023', NULL, 'neither percent nor amount is 22023');
SELECT throws_ok($$SELECT shop_create_voucher('x', amount_off_cents => -5)$$, '22023', NULL,
				 'a negative amount is 22023');
SELECT throws_ok($$SELECT shop_create_voucher('x', percent_off => 5, usage_limit => 0)$$, '22023', NULL,
				 'a usage limit of 0 is 22023');
SELECT throws_ok($$SELECT shop_create_voucher('x', percent_off => 5, per_customer_limit => -1)$$, '22023',
				 NULL, 'a per-customer limit under 1 is 22023');
SELECT throws_ok($$SELECT shop_create_voucher('x', percent_off => 5, min_total_cents => -1)$$, '22023',
				 NULL, 'a negative smallest subtotal is 22023');
SELECT throws_ok($$SELECT shop_create_voucher('x', percent_off => 5, starts_at => now(),
											  ends_at => now() - interval '1 day')$$,
				 '22023', NULL, 'an end before the start is 22023');
SELECT throws_ok($$SELECT shop_create_voucher(' ', percent_off => 5)$$, '22023', NULL, 'a blank name is 22023');
SELECT throws_ok($$SELECT shop_create_voucher(NULL, percent_off => 5)$$, '22004', NULL, 'a NULL name is 22004');
SELECT is((SELECT count(*)::int FROM vouchers), 0, 'no bad input created a voucher');

SELECT shop_create_voucher('Flash 20%', percent_off => 20, usage_limit => 3,
						   per_customer_limit => 1) AS flash \gset
SELECT is(:flash::int, 1, 'shop_create_voucher returns the new voucher''s id');
SELECT is((SELECT sum(remaining)::int FROM voucher_slots WHERE voucher_id = :flash), 3,
		  'a limited voucher''s uses are in its slots');
SELECT is(shop_add_voucher_code(:flash, 'FLASH20'), 'FLASH20', 'shop_add_voucher_code returns the code');
SELECT throws_ok($$SELECT shop_add_voucher_code(1, 'flash20')$$, '23505', 'voucher code flash20 is taken',
				 'codes are unique whatever the case of their letters');
SELECT throws_ok($$SELECT shop_add_voucher_code(1, '')$$, '22023', NULL, 'an empty code is 22023');
SELECT throws_ok($$SELECT shop_add_voucher_code(1, repeat('x', 256))$$, '22023', NULL,
				 'a code over 255 characters is 22023');
SELECT throws_ok($$SELECT shop_add_voucher_code(1, NULL)$$, '22004', NULL, 'a NULL code is 22004');
SELECT throws_ok($$SELECT shop_add_voucher_code(99, 'X')$$, 'SH012', 'voucher 99 does not exist',
				 'a code for an unknown voucher is SH012');
SELECT throws_ok($$SELECT shop_generate_voucher_codes(1, 0)$$, '22023', NULL, 'zero codes is 22023');
SELECT throws_ok($$SELECT shop_generate_voucher_codes(1, NULL)$$, '22004', NULL, 'a NULL count is 22004');
SELECT throws_ok($$SELECT shop_end_voucher(NULL)$$, '22004', NULL, 'ending a NULL voucher is 22004');
SELECT is((SELECT count(*)::int FROM voucher_codes), 1, 'no bad input added a code');

-- generated codes: single-use, unique, 16 hexadecimal digits after the prefix
SELECT shop_create_voucher('Welcome', amount_off_cents => 500) AS welcome \gset
CREATE TEMP TABLE generated AS SELECT shop_generate_voucher_codes(:welcome, 1000, 'W-') AS code;
SELECT is((SELECT count(DISTINCT code)::int FROM generated), 1000, 'a thousand distinct codes');
SELECT is_empty($$SELECT code FROM generated WHERE code !~ '^W-[0-9A-F]{16}$'$$,
				'each the prefix and 16 hexadecimal digits');
SELECT is((SELECT count(*)::int FROM voucher_codes WHERE single_use AND voucher_id = :welcome), 1000,
		  'generated codes are single-use');

-- the discount: 20% of 10000 + 3 x 999 = 12997 is 2599 (rounded down),
-- spread 2000 / 599 (largest remainder)
INSERT INTO cart_items VALUES (1, 1, 1), (1, 2, 3);
SELECT is((SELECT discount_cents FROM shop_cart_status(1, 'flash20') LIMIT 1), 2599::bigint,
		  'the preview shows the discount');
SELECT shop_checkout(1, NULL, 'flash20') AS o1 \gset
SELECT results_eq($$SELECT total_cents, discount_cents, voucher_id FROM orders WHERE id = $$ || :o1,
				  $$VALUES (10398::bigint, 2599::bigint, 1::bigint)$$,
				  'the order records the voucher and total = subtotal - floor(20%)');
SELECT results_eq($$SELECT discount_cents FROM order_items WHERE order_id = $$ || :o1 || $$ ORDER BY product_id$$,
				  $$VALUES (2000::bigint), (599::bigint)$$, 'the lines share the discount');
SELECT is((SELECT vc.code FROM orders o JOIN voucher_codes vc ON vc.id = o.voucher_code_id
			WHERE o.id = :o1), 'FLASH20', 'the order records which code, whatever case was typed');

-- an amount off is at most the subtotal
INSERT INTO cart_items VALUES (2, 3, 1);
SELECT shop_add_voucher_code(:welcome, 'FIVER') AS done \gset
SELECT shop_checkout(2, NULL, 'fiver') AS o2 \gset
SELECT results_eq($$SELECT total_cents, discount_cents FROM orders WHERE id = $$ || :o2,
				  $$VALUES (0::bigint, 333::bigint)$$, 'an amount off never takes the total below 0');
INSERT INTO cart_items VALUES (3, 3, 3);
SELECT shop_checkout(3, NULL, 'FIVER') AS o3 \gset
SELECT results_eq($$SELECT discount_cents FROM order_items WHERE order_id = $$ || :o3,
				  $$VALUES (500::bigint)$$, 'one line takes the whole amount');
INSERT INTO cart_items VALUES (4, 1, 1), (4, 2, 1), (4, 3, 1);
SELECT shop_add_voucher_code(shop_create_voucher('Third', amount_off_cents => 100), 'THIRD') AS done \gset
SELECT shop_checkout(4, NULL, 'THIRD') AS o4 \gset
SELECT results_eq($$SELECT discount_cents FROM order_items WHERE order_id = $$ || :o4 || $$ ORDER BY product_id$$,
				  $$VALUES (88::bigint), (9::bigint), (3::bigint)$$,
				  'shares in proportion (88.2, 8.8, 2.9), the cents left over to the largest remainders');

-- refusals, each changing nothing
TRUNCATE books;
INSERT INTO books SELECT (SELECT count(*) FROM orders), (SELECT sum(stock) FROM product_stock);
INSERT INTO cart_items VALUES (5, 1, 1);
SELECT throws_ok($$SELECT shop_checkout(5, NULL, 'NOPE')$$, 'SH009', 'Voucher NOPE does not exist',
				 'an unknown code is SH009');
SELECT throws_ok($$SELECT shop_checkout(5, NULL, 'x''); DELETE FROM orders; --')$$, 'SH009', NULL,
				 'a code that looks like SQL is data');
SELECT shop_add_voucher_code(shop_create_voucher('Later', percent_off => 5,
												 starts_at => now() + interval '1 day'), 'LATER') AS done \gset
SELECT throws_ok($$SELECT shop_checkout(5, NULL, 'LATER')$$, 'SH009', 'Voucher LATER is not valid yet',
				 'a voucher not started is SH009');
SELECT shop_add_voucher_code(shop_create_voucher('Gone', percent_off => 5), 'GONE') AS done \gset
SELECT ok(shop_end_voucher((SELECT voucher_id FROM voucher_codes WHERE code = 'GONE')) <= now(),
		  'shop_end_voucher returns when it ended');
SELECT throws_ok($$SELECT shop_checkout(5, NULL, 'gone')$$, 'SH009', 'Voucher gone has expired',
				 'an ended voucher is SH009');
SELECT shop_add_voucher_code(shop_create_voucher('Big', percent_off => 5,
												 min_total_cents => 50000), 'BIG') AS done \gset
SELECT throws_ok($$SELECT shop_checkout(5, NULL, 'BIG')$$, 'SH009',
				 'Voucher BIG needs a subtotal of at least 50000 cents (cart: 10000)',
				 'a cart under the smallest subtotal is SH009');
SELECT throws_ok($$SELECT shop_checkout(5, NULL, '')$$, '22023', NULL, 'an empty code is 22023');
-- the code comes before the cart: an unknown code on a cart that is short
UPDATE cart_items SET quantity = 1000 WHERE customer_id = 5;
SELECT throws_ok($$SELECT shop_checkout(5, NULL, 'NOPE')$$, 'SH009', NULL, 'the code before the stock');
-- the cart before the limits
SELECT throws_ok($$SELECT shop_checkout(1, NULL, 'FLASH20')$$, 'SH002', NULL,
				 'an empty cart before the per-customer limit');
INSERT INTO cart_items VALUES (1, 2, 1000);
SELECT throws_ok($$SELECT shop_checkout(1, NULL, 'FLASH20')$$, 'SH001', NULL,
				 'the stock before the per-customer limit');
UPDATE cart_items SET quantity = 1 WHERE customer_id IN (1, 5);
SELECT throws_ok($$SELECT shop_checkout(1, NULL, 'FLASH20')$$, 'SH011',
				 'Voucher FLASH20 can be used 1 time per customer (already used: 1)',
				 'a second use by one customer is SH011');
SELECT results_eq($$SELECT voucher_accepted, voucher_sqlstate FROM shop_cart_status(1, 'FLASH20')$$,
				  $$VALUES (false, 'SH011'::text)$$, 'the preview says so');
SELECT results_eq($$SELECT (SELECT count(*) FROM orders), (SELECT sum(stock) FROM product_stock)$$,
				  $$SELECT orders, stock FROM books$$, 'no refusal wrote an order or moved stock');
SELECT is((SELECT count(*)::int FROM cart_items WHERE customer_id IN (1, 5)), 2,
		  'no refusal touched a cart');

-- the usage limit: 3 uses, one taken; two more, then SH010
INSERT INTO cart_items VALUES (6, 2, 1), (7, 2, 1), (8, 2, 1);
SELECT ok(shop_checkout(5, NULL, 'FLASH20') > 0, 'a second customer uses the voucher');
SELECT ok(shop_checkout(6, 'k6', 'FLASH20') > 0, 'a third customer uses it, with a key');
SELECT throws_ok($$SELECT shop_checkout(7, NULL, 'flash20')$$, 'SH010',
				 'Voucher flash20 has reached its usage limit (limit: 3, used: 3)',
				 'the fourth is SH010');
SELECT is(shop_checkout(6, 'k6', 'FLASH20'), (SELECT max(id) FROM orders WHERE customer_id = 6),
		  'a keyed replay returns the first order, though the voucher is used up');
SELECT throws_ok($$SELECT shop_checkout(6, 'k6', 'NOPE')$$, 'SH015', NULL,
				 'since 1.3 a key binds its code: the same key with another code is SH015');
SELECT throws_ok($$SELECT shop_checkout(6, 'k6')$$, 'SH015', NULL, '... or with none');
SELECT results_eq($$SELECT used, remaining, placed FROM voucher_usage WHERE voucher_id = 1$$,
				  $$VALUES (3::bigint, 0::bigint, 3::bigint)$$, 'voucher_usage: 3 used, none left');

-- a partial cancel keeps the use and the discount; a full cancel gives the use back, once
SELECT shop_cancel_items(:o1, 2, 1, 'test: one case back') AS done \gset
SELECT is((SELECT used FROM voucher_usage WHERE voucher_id = 1), 3::bigint, 'a partial cancel keeps the use');
SELECT is((SELECT discount_cents FROM orders WHERE id = :o1), 2599::bigint, '... and the discount');
SELECT shop_cancel_order(:o1, 'test: customer request') AS done \gset
SELECT shop_cancel_order(:o1, 'test: again') AS done \gset
SELECT is((SELECT sum(remaining)::int FROM voucher_slots WHERE voucher_id = 1), 1,
		  'a full cancel gives one use back, once');
SELECT ok(shop_checkout(7, NULL, 'flash20') > 0, 'which the next buyer gets');
-- expiry gives it back too
SET checkout.payment_window = '1s';
INSERT INTO cart_items VALUES (9, 2, 1);
SELECT shop_add_voucher_code(shop_create_voucher('Expiring', percent_off => 10, usage_limit => 1), 'EXP') AS done \gset
SELECT shop_checkout(9, NULL, 'EXP') AS o9 \gset
RESET checkout.payment_window;
UPDATE orders SET expires_at = now() - interval '1 minute' WHERE id = :o9;
SELECT is(shop_expire_orders(), 1, 'the order expires');
SELECT is((SELECT used FROM voucher_usage WHERE name = 'Expiring'), 0::bigint, 'its use comes back');
SELECT is((SELECT sum(s.remaining)::int FROM voucher_slots s JOIN vouchers v ON v.id = s.voucher_id
			WHERE v.name = 'Expiring'), 1, '... to its slots');
SELECT is_empty($$SELECT * FROM shop_check_integrity()$$, 'the books are clean');

-- the integrity check finds what is planted (each in a subtransaction undone)
SAVEPOINT plant;
UPDATE voucher_slots SET remaining = remaining + 1 WHERE voucher_id = 1 AND slot = 0;
SELECT is((SELECT problem FROM shop_check_integrity()), 'voucher_used_mismatch',
		  'a use given back twice is voucher_used_mismatch');
ROLLBACK TO plant;
UPDATE orders SET status = 'cancelled' WHERE id = (SELECT max(id) FROM orders WHERE customer_id = 7);
UPDATE voucher_slots SET remaining = remaining - 1 WHERE voucher_id = 1 AND remaining > 0;
SELECT ok('cancelled_order_voucher_not_released' IN (SELECT problem FROM shop_check_integrity()),
		  'a cancelled order whose use never came back is cancelled_order_voucher_not_released');
ROLLBACK TO plant;
ALTER TABLE orders DISABLE TRIGGER orders_release_voucher_use;
UPDATE orders SET voucher_id = 1, voucher_code_id = 1 WHERE id = :o3;
ALTER TABLE orders ENABLE TRIGGER orders_release_voucher_use;
SELECT ok('voucher_over_limit' IN (SELECT problem FROM shop_check_integrity()),
		  'more orders than the limit is voucher_over_limit');
ROLLBACK TO plant;
UPDATE orders SET customer_id = 5 WHERE id = (SELECT max(id) FROM orders WHERE customer_id = 6);
SELECT ok('voucher_customer_over_limit' IN (SELECT problem FROM shop_check_integrity()),
		  'two orders of one customer over a limit of one is voucher_customer_over_limit');
ROLLBACK TO plant;
UPDATE orders SET discount_cents = 1 WHERE id = :o4;
SELECT ok('order_discount_mismatch' IN (SELECT problem FROM shop_check_integrity())
		  AND 'order_total_mismatch' IN (SELECT problem FROM shop_check_integrity()),
		  'an order discount its lines disagree with, and a total that does not count it');
ROLLBACK TO plant;

-- a voucher or a code that orders name is never deleted
SELECT throws_ok($$DELETE FROM vouchers WHERE id = 1$$, '23503', 'cannot delete vouchers 1: orders use it',
				 'a voucher with orders cannot be deleted');
SELECT throws_ok($$DELETE FROM voucher_codes WHERE code = 'FLASH20'$$, '23503', NULL,
				 'nor a code with orders');
SELECT lives_ok($$DELETE FROM voucher_codes WHERE code = 'LATER'$$, 'a code no order used can be');

-- privileges: the storefront checks out with a code, never creates one or reads the codes
CREATE ROLE regress_voucher_app;
SELECT shop_grant_app('regress_voucher_app') AS done \gset
INSERT INTO cart_items VALUES (2, 2, 1);
SET ROLE regress_voucher_app;
SELECT ok(shop_checkout(2, NULL, 'FIVER') > 0, 'the app checks out with a code');
SELECT is((SELECT v.name FROM orders o JOIN vouchers v ON v.id = o.voucher_id
			WHERE o.id = (SELECT max(id) FROM orders)), 'Welcome', 'the app sees which voucher an order used');
SELECT throws_ok($$SELECT code FROM voucher_codes$$, '42501', NULL, 'the app cannot read the codes');
SELECT throws_ok($$SELECT * FROM voucher_slots$$, '42501', NULL, 'nor the uses left');
SELECT throws_ok($$SELECT shop_create_voucher('Mine', percent_off => 100)$$, '42501', NULL,
				 'the app cannot create a voucher');
SELECT throws_ok($$SELECT shop_add_voucher_code(1, 'MINE')$$, '42501', NULL, 'nor add a code');
SELECT throws_ok($$SELECT shop_generate_voucher_codes(1, 5)$$, '42501', NULL, 'nor generate codes');
SELECT throws_ok($$SELECT shop_end_voucher(1)$$, '42501', NULL, 'nor end a voucher');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
