-- pgTAP: shop_place_order (1.3).  Its contract (signature, result
-- columns, SECURITY DEFINER with a pinned search_path, granted by
-- shop_grant_app and not to PUBLIC); a storefront role places, replays and
-- is refused through it; a refusal and an error change nothing (stock,
-- cart, keys); the key binds the request; idempotency_keys.request keeps
-- it; shop_checkout's replays of keys recorded before 1.3 (no request)
-- still work whatever the request.
BEGIN;
CREATE EXTENSION checkout;
SELECT plan(18);

SELECT has_function('shop_place_order', ARRAY['bigint', 'jsonb', 'text', 'text']);
SELECT is((SELECT array_agg(a::name ORDER BY n) FROM pg_proc p,
				  unnest(p.proargnames) WITH ORDINALITY AS x(a, n)
			WHERE p.proname = 'shop_place_order'),
		  ARRAY['customer_id', 'lines', 'idempotency_key', 'voucher_code', 'outcome', 'order_id',
				'status', 'total_cents', 'discount_cents', 'payment_deadline', 'order_lines',
				'sqlstate', 'message', 'refusal']::name[],
		  'its arguments and result columns');
SELECT col_type_is('idempotency_keys', 'request', 'jsonb');
SELECT ok(NOT has_function_privilege('public', 'shop_place_order(bigint, jsonb, text, text)', 'EXECUTE'),
		  'PUBLIC may not call it');

INSERT INTO products (id, name, price_cents, stock) OVERRIDING SYSTEM VALUE
	VALUES (701, 'Flash Sale Smartphone', 49900, 2), (702, 'Phone Case', 1999, 5);
INSERT INTO customers (id, name) OVERRIDING SYSTEM VALUE VALUES (701, 'Ada'), (702, 'Brian');

CREATE ROLE place_order_web;
SELECT shop_grant_app('place_order_web');
SELECT ok(has_function_privilege('place_order_web', 'shop_place_order(bigint, jsonb, text, text)', 'EXECUTE'),
		  'shop_grant_app grants it');
SET LOCAL ROLE place_order_web;
SELECT results_eq($$SELECT outcome, total_cents FROM shop_place_order(701, '[{"product_id": 701, "quantity": 1}]', 'web-1')$$,
				  $$VALUES ('placed'::text, 49900::bigint)$$, 'a storefront role places an order');
SELECT results_eq($$SELECT outcome, total_cents FROM shop_place_order(701, '[{"product_id": 701, "quantity": 1}]', 'web-1')$$,
				  $$VALUES ('replayed'::text, 49900::bigint)$$, 'and gets it back with the same key');
SELECT results_eq($$SELECT outcome, sqlstate, refusal -> 'lines' -> 0 ->> 'available'
					 FROM shop_place_order(702, '[{"product_id": 701, "quantity": 2}]', 'web-2')$$,
				  $$VALUES ('refused'::text, 'SH001'::text, '1'::text)$$, 'a refusal is a row, with its figures');
SELECT throws_ok($$SELECT * FROM shop_place_order(701, '[{"product_id": 702, "quantity": 1}]', 'web-1')$$,
				 'SH015', NULL, 'the same key with other lines is SH015');
RESET ROLE;

SELECT is((SELECT stock FROM product_stock WHERE product_id = 701), 1, 'the refusal moved no stock');
SELECT is_empty($$SELECT FROM cart_items$$, 'no cart is left behind: placed or refused');
SELECT results_eq($$SELECT idempotency_key, request FROM idempotency_keys ORDER BY 1$$,
				  $$VALUES ('web-1'::text, '{"lines": [{"quantity": 1, "product_id": 701}], "voucher_code": null}'::jsonb)$$,
				  'the key keeps its request; the refused call spent none');

-- an error changes nothing, the cart set by the call included
INSERT INTO cart_items VALUES (702, 702, 3);
SELECT throws_ok($$SELECT * FROM shop_place_order(702, '[{"product_id": 799, "quantity": 1}]')$$,
				 'SH004', NULL, 'an unknown product is SH004');
SELECT results_eq($$SELECT product_id, quantity FROM cart_items WHERE customer_id = 702$$,
				  $$VALUES (702::bigint, 3)$$, 'the stored cart is as it was');
SELECT throws_ok($$SELECT * FROM shop_place_order(799, '[{"product_id": 701, "quantity": 1}]')$$,
				 'SH003', NULL, 'an unknown customer is SH003');

-- a key recorded before 1.3 (no request) replays whatever the request
INSERT INTO cart_items VALUES (701, 702, 1);
SELECT ok(shop_checkout(701, 'old-key') > 0, 'a keyed checkout');
UPDATE idempotency_keys SET request = NULL WHERE idempotency_key = 'old-key';
SELECT is(shop_checkout(701, 'old-key', 'ANY-CODE'), (SELECT order_id FROM idempotency_keys
													   WHERE idempotency_key = 'old-key'),
		  'a key without a request replays any');
SELECT is((SELECT count(*) FROM shop_check_integrity()), 0::bigint, 'integrity is clean');

SELECT * FROM finish();
ROLLBACK;
