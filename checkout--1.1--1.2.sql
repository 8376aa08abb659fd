/* checkout--1.1--1.2.sql: from 1.1 to 1.2 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION checkout UPDATE TO '1.2'" to load this file. \quit

/*
 * A NULL argument is 22004 everywhere, as the README promises: 1.1 raised
 * 22023 for a NULL reason and for shop_expire_orders(NULL).  An empty or
 * blank reason is still 22023.
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_require_reason(reason text, hint text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF shop_require_reason.reason IS NULL THEN
		RAISE EXCEPTION 'reason must not be NULL'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = shop_require_reason.hint;
	END IF;
	IF pg_catalog.btrim(shop_require_reason.reason) = '' THEN
		RAISE EXCEPTION 'a reason is required for every stock movement'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = shop_require_reason.hint;
	END IF;
END
$$;

CREATE OR REPLACE FUNCTION @extschema@.shop_expire_orders(max_orders integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF shop_expire_orders.max_orders IS NULL THEN
		RAISE EXCEPTION 'max_orders must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF shop_expire_orders.max_orders <= 0 THEN
		RAISE EXCEPTION 'max_orders must be positive'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('Got %s.', shop_expire_orders.max_orders);
	END IF;
	RETURN @extschema@.shop_expire(ARRAY(
		SELECT o.id FROM @extschema@.orders AS o
		 WHERE o.status = 'placed' AND o.expires_at IS NOT NULL
		   AND o.expires_at <= now()
		 ORDER BY o.expires_at
		 LIMIT shop_expire_orders.max_orders * 2),
		shop_expire_orders.max_orders, true);
END
$$;

/*
 * Spreading over no slots divides by nothing: 1.1 computed stock % 0 even
 * when no slot row matched, which PostgreSQL 18 evaluates (it plans SQL
 * functions through the plan cache) and fails with 22012 for every
 * product without slots.
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_spread_stock(product_id bigint, stock integer,
														 slots integer)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	UPDATE @extschema@.products AS p
	   SET stock = CASE WHEN shop_spread_stock.slots = 0 THEN shop_spread_stock.stock ELSE 0 END
	 WHERE p.id = shop_spread_stock.product_id;
	UPDATE @extschema@.stock_slots AS s
	   SET stock = shop_spread_stock.stock / NULLIF(shop_spread_stock.slots, 0)
				   + CASE WHEN s.slot < shop_spread_stock.stock % NULLIF(shop_spread_stock.slots, 0)
						  THEN 1 ELSE 0 END
	 WHERE s.product_id = shop_spread_stock.product_id;
END;

/*
 * The checkout plans its statements with enable_seqscan off (checkout.c,
 * set_call_settings): its own SET clause sets it, at the GUC nesting level
 * that SET search_path opens anyway, where the C code opened a second one
 * on every call.
 */
ALTER FUNCTION @extschema@.shop_checkout(bigint) SET enable_seqscan = off;
ALTER FUNCTION @extschema@.shop_checkout(bigint, text) SET enable_seqscan = off;

/*
 * The uninstall guard (guard.c): DROP EXTENSION checkout, or DROP SCHEMA of
 * its schema, is refused while orders has a row, unless checkout.allow_drop
 * is on.  The event trigger is a member of the extension: it goes with it.
 */
CREATE FUNCTION @extschema@.shop_guard_drop()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'shop_guard_drop'
LANGUAGE C;

REVOKE ALL ON FUNCTION @extschema@.shop_guard_drop() FROM PUBLIC;

CREATE EVENT TRIGGER checkout_guard_drop ON ddl_command_start
	WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA')
	EXECUTE FUNCTION @extschema@.shop_guard_drop();
