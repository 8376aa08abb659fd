-- pgTAP: shop_checkout()'s signature is a public contract: its name,
-- argument, result, language, and that it is not STRICT (a NULL customer id
-- raises 22004 instead of returning NULL).
BEGIN;
CREATE EXTENSION checkout;
SELECT plan(12);

SELECT has_function('shop_checkout', ARRAY['bigint']);
SELECT is((SELECT count(*)::int FROM pg_proc WHERE proname = 'shop_checkout'), 1,
		  'exactly one shop_checkout()');
SELECT function_returns('shop_checkout', ARRAY['bigint'], 'bigint');
SELECT function_lang_is('shop_checkout', ARRAY['bigint'], 'c');
SELECT isnt_strict('shop_checkout', ARRAY['bigint']);
SELECT volatility_is('shop_checkout', ARRAY['bigint'], 'volatile');
SELECT isnt_definer('shop_checkout', ARRAY['bigint']);
SELECT is((SELECT proargnames FROM pg_proc WHERE proname = 'shop_checkout'),
		  ARRAY['customer_id'], 'its argument is named customer_id');
SELECT is((SELECT proparallel FROM pg_proc WHERE proname = 'shop_checkout'),
		  'u'::"char", 'parallel unsafe: it writes');

SELECT throws_ok('SELECT shop_checkout(NULL)', '22004',
				 'customer id must not be NULL', 'NULL raises 22004');
SELECT throws_ok('SELECT shop_checkout(customer_id => 424242)', 'SH003',
				 'customer 424242 does not exist', 'callable by argument name');

INSERT INTO customers (name) VALUES ('Ada');
SELECT throws_ok('SELECT shop_checkout(' || (SELECT max(id) FROM customers) || ')',
				 'SH002', NULL, 'an empty cart raises SH002');

SELECT * FROM finish();
ROLLBACK;
