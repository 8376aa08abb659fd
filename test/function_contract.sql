-- pgTAP: shop_checkout()'s signature is a public contract: its name,
-- argument, result, language, and that it is not STRICT (a NULL customer id
-- raises 22004 instead of returning NULL).
BEGIN;
CREATE EXTENSION checkout;
SELECT plan(62);

SELECT has_function('shop_checkout', ARRAY['bigint']);
SELECT is((SELECT count(*)::int FROM pg_proc WHERE proname = 'shop_checkout'), 3,
		  'shop_checkout(bigint), shop_checkout(bigint, text) and shop_checkout(bigint, text, text)');
SELECT function_returns('shop_checkout', ARRAY['bigint'], 'bigint');
SELECT function_lang_is('shop_checkout', ARRAY['bigint'], 'c');
SELECT isnt_strict('shop_checkout', ARRAY['bigint']);
SELECT volatility_is('shop_checkout', ARRAY['bigint'], 'volatile');
SELECT is_definer('shop_checkout', ARRAY['bigint']);
SELECT is((SELECT proargnames FROM pg_proc WHERE oid = 'shop_checkout(bigint)'::regprocedure),
		  ARRAY['customer_id'], 'its argument is named customer_id');
SELECT is((SELECT proparallel FROM pg_proc WHERE oid = 'shop_checkout(bigint)'::regprocedure),
		  'u'::"char", 'parallel unsafe: it writes');

-- shop_checkout(customer_id, idempotency_key)
SELECT has_function('shop_checkout', ARRAY['bigint', 'text']);
SELECT function_returns('shop_checkout', ARRAY['bigint', 'text'], 'bigint');
SELECT isnt_strict('shop_checkout', ARRAY['bigint', 'text']);
SELECT volatility_is('shop_checkout', ARRAY['bigint', 'text'], 'volatile');
SELECT is((SELECT proargnames FROM pg_proc
			WHERE oid = 'shop_checkout(bigint, text)'::regprocedure),
		  ARRAY['customer_id', 'idempotency_key'], 'its arguments are customer_id, idempotency_key');
SELECT throws_ok($$SELECT shop_checkout(1, '')$$, '22023', NULL, 'an empty key is 22023');
SELECT throws_ok($$SELECT shop_checkout(1, repeat('k', 256))$$, '22023', NULL,
				 'a key over 255 characters is 22023');
SELECT throws_ok($$SELECT shop_checkout(NULL, 'k')$$, '22004', NULL,
				 'a NULL customer id is 22004 with a key too');

SELECT throws_ok('SELECT shop_checkout(NULL)', '22004',
				 'customer id must not be NULL', 'NULL raises 22004');
SELECT throws_ok('SELECT shop_checkout(customer_id => 424242)', 'SH003',
				 'customer 424242 does not exist', 'callable by argument name');

INSERT INTO customers (name) VALUES ('Ada');
SELECT throws_ok('SELECT shop_checkout(' || (SELECT max(id) FROM customers) || ')',
				 'SH002', NULL, 'an empty cart raises SH002');

-- The other functions: signatures, and the search_path every SQL or PL
-- function pins (Security Considerations for Extensions)
SELECT has_function('shop_restock', ARRAY['bigint', 'integer', 'text', 'bigint']);
SELECT function_returns('shop_restock', ARRAY['bigint', 'integer', 'text', 'bigint'], 'integer');
SELECT has_function('shop_adjust_stock', ARRAY['bigint', 'integer', 'text', 'bigint']);
SELECT function_returns('shop_adjust_stock', ARRAY['bigint', 'integer', 'text', 'bigint'], 'integer');
SELECT has_function('shop_check_integrity', ARRAY[]::text[]);
SELECT has_function('shop_cart_status', ARRAY['bigint']);
SELECT volatility_is('shop_cart_status', ARRAY['bigint'], 'stable');
SELECT has_function('shop_split_stock', ARRAY['bigint', 'integer']);
SELECT function_returns('shop_split_stock', ARRAY['bigint', 'integer'], 'integer');
SELECT has_function('shop_merge_stock', ARRAY['bigint']);
SELECT function_returns('shop_merge_stock', ARRAY['bigint'], 'integer');
SELECT has_function('shop_lock_stock', ARRAY['bigint']);
SELECT has_function('shop_spread_stock', ARRAY['bigint', 'integer', 'integer']);
SELECT has_function('shop_checkout_stats', ARRAY[]::text[]);
SELECT has_function('shop_purge_idempotency_keys', ARRAY[]::text[]);
SELECT function_returns('shop_purge_idempotency_keys', ARRAY[]::text[], 'bigint');
SELECT has_function('shop_pay', ARRAY['bigint', 'text']);
SELECT function_returns('shop_pay', ARRAY['bigint', 'text'], 'text');
SELECT has_function('shop_expire_orders', ARRAY['integer']);
SELECT function_returns('shop_expire_orders', ARRAY['integer'], 'integer');
SELECT is((SELECT pg_get_function_arguments('shop_expire_orders(integer)'::regprocedure)),
		  'max_orders integer DEFAULT 1000', 'shop_expire_orders expires 1000 at most by default');
SELECT has_function('shop_cancel_order', ARRAY['bigint', 'text']);
SELECT function_returns('shop_cancel_order', ARRAY['bigint', 'text'], 'text');
SELECT has_function('shop_cancel_items', ARRAY['bigint', 'bigint', 'integer', 'text']);
SELECT function_returns('shop_cancel_items', ARRAY['bigint', 'bigint', 'integer', 'text'], 'integer');
SELECT has_function('shop_set_purchase_limit', ARRAY['bigint', 'integer']);
SELECT function_returns('shop_set_purchase_limit', ARRAY['bigint', 'integer'], 'integer');
SELECT has_trigger('orders', 'orders_count_cancelled',
				   'cancelled and expired orders are counted in the statistics');
SELECT has_function('shop_checkout_stats_reset', ARRAY[]::text[]);
SELECT function_returns('shop_checkout_stats_reset', ARRAY[]::text[],
						'timestamp with time zone');
SELECT ok(NOT has_function_privilege('public', 'shop_checkout_stats_reset()', 'EXECUTE'),
		  'PUBLIC may not reset the statistics');
SELECT ok(NOT has_function_privilege('public', 'shop_checkout(bigint)', 'EXECUTE'),
		  'only roles granted it may check out (shop_grant_app)');
SELECT ok(NOT has_function_privilege('public', 'shop_lock_stock(bigint)', 'EXECUTE'),
		  'PUBLIC may not call the internal helper shop_lock_stock');
SELECT ok(NOT has_function_privilege('public', 'shop_spread_stock(bigint, integer, integer)', 'EXECUTE'),
		  'PUBLIC may not call the internal helper shop_spread_stock');
SELECT ok(NOT has_function_privilege('public', 'shop_record_opening_stock()', 'EXECUTE'),
		  'PUBLIC may not call the trigger function');
SELECT is_empty($$
	SELECT p.oid::regprocedure FROM pg_proc p
	 WHERE p.proname IN ('shop_give_back', 'shop_lock_products', 'shop_lock_order',
						 'shop_require_reason', 'shop_expire', 'shop_reclaim_expired',
						 'shop_count_cancelled_order', 'shop_order_event')
	   AND has_function_privilege('public', p.oid, 'EXECUTE')$$,
	'PUBLIC may not call the internal helpers of orders');
SELECT is_empty($$
	SELECT p.proname FROM pg_proc p
	  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
	  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'checkout'
	 WHERE p.prolang <> (SELECT oid FROM pg_language WHERE lanname = 'c')
	   AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)$$,
	'every SQL and PL/pgSQL function of the extension sets search_path = pg_catalog, pg_temp');
SELECT set_eq($$SELECT DISTINCT proname::text FROM pg_proc WHERE prosecdef
				 AND proname LIKE 'shop\_%'$$,
			  ARRAY['shop_checkout', 'shop_pay', 'shop_cart_status', 'shop_restock',
					'shop_adjust_stock', 'shop_split_stock', 'shop_merge_stock',
					'shop_cancel_order', 'shop_cancel_items', 'shop_expire_orders',
					'shop_set_purchase_limit', 'shop_purge_idempotency_keys',
					'shop_check_integrity', 'shop_reclaim_expired', 'shop_create_voucher',
					'shop_end_voucher', 'shop_add_voucher_code', 'shop_generate_voucher_codes',
					'shop_notify_stock_changes', 'shop_create_location', 'shop_retire_location',
					'shop_move_stock', 'shop_set_preorder', 'shop_keep_default_location',
					'shop_events_create_queue', 'shop_place_order', 'shop_create_bundle',
					'shop_split_location_stock', 'shop_merge_location_stock'],
			  'the functions that run with the owner''s rights, and no others');
SELECT is_empty($$SELECT oid::regprocedure FROM pg_proc WHERE prosecdef AND proname LIKE 'shop\_%'
				   AND NOT coalesce(proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)$$,
				'every SECURITY DEFINER function pins search_path, pg_temp last');
SELECT is_empty($$SELECT oid::regprocedure FROM pg_proc WHERE prosecdef AND proname LIKE 'shop\_%'
				   AND has_function_privilege('public', oid, 'EXECUTE')$$,
				'PUBLIC may call none of them: roles are granted what they need');
SELECT has_function('shop_grant_app', ARRAY['regrole']);
SELECT has_function('shop_grant_admin', ARRAY['regrole']);

SELECT * FROM finish();
ROLLBACK;
