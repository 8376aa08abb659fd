/* checkout_shard--1.1--1.2.sql: from 1.1 to 1.2 (needs checkout 1.2) */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION checkout_shard UPDATE TO '1.2'" to load this file. \quit

/*
 * Vouchers on a sharded shop (docs/scale-out.md): the proxy creates each
 * voucher on every shard with the same id, adds its codes on every shard,
 * and checks out with a code on the customer's shard.  A voucher's usage
 * limit and single-use codes would need uses counted across shards: the
 * proxy refuses them.  A limit per customer holds, as a customer buys on
 * one shard only.
 */

-- The checkout with a code, its error returned as a value
CREATE FUNCTION @extschema@.checkout(customer_id bigint, idempotency_key text,
									 voucher_code text)
RETURNS @extschema@.checkout_result
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp below
AS $$
DECLARE
	result		@extschema@.checkout_result;
BEGIN
	result.order_id := shop_checkout(checkout.customer_id, checkout.idempotency_key,
									 checkout.voucher_code);
	RETURN result;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS result.sqlstate = RETURNED_SQLSTATE,
							result.message = MESSAGE_TEXT,
							result.detail = PG_EXCEPTION_DETAIL,
							result.hint = PG_EXCEPTION_HINT;
	RETURN result;
END
$$;

/*
 * A voucher with the id the proxy chose (its sequence runs only on the
 * proxy), without a usage limit; returns the id
 */
CREATE FUNCTION @extschema@.create_voucher(id bigint, name text, percent_off integer,
										   amount_off_cents bigint, per_customer_limit integer,
										   starts_at timestamptz, ends_at timestamptz,
										   min_total_cents bigint)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp below
AS $$
BEGIN
	PERFORM setval(pg_get_serial_sequence('vouchers', 'id'), create_voucher.id, false);
	RETURN shop_create_voucher(create_voucher.name, create_voucher.percent_off,
							   create_voucher.amount_off_cents, NULL,
							   create_voucher.per_customer_limit, create_voucher.starts_at,
							   create_voucher.ends_at, create_voucher.min_total_cents);
END
$$;

-- A code of a voucher (never single-use here); returns it
CREATE FUNCTION @extschema@.add_voucher_code(voucher_id bigint, code text)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp below
AS $$
BEGIN
	RETURN shop_add_voucher_code(add_voucher_code.voucher_id, add_voucher_code.code, false);
END
$$;

-- End a voucher now; returns when it ended
CREATE FUNCTION @extschema@.end_voucher(voucher_id bigint)
RETURNS timestamptz
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp  -- made pg_catalog, <checkout's schema>, pg_temp below
AS $$
BEGIN
	RETURN shop_end_voucher(end_voucher.voucher_id);
END
$$;

REVOKE ALL ON FUNCTION @extschema@.checkout(bigint, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.create_voucher(bigint, text, integer, bigint, integer,
												  timestamptz, timestamptz, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.add_voucher_code(bigint, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.end_voucher(bigint) FROM PUBLIC;

/*
 * The new functions find the checkout extension's objects through their
 * pinned search_path, as 1.1's do (its install script), and go to every
 * role shop_shard_grant_proxy() granted 1.1's checkout to
 */
DO $$
DECLARE
	checkout_schema text := (SELECT e.extnamespace::regnamespace::text
							   FROM pg_catalog.pg_extension AS e
							  WHERE e.extname = 'checkout');
	f			regprocedure;
	grantee		text;
BEGIN
	FOREACH f IN ARRAY ARRAY['@extschema@.checkout(bigint, text, text)'::regprocedure,
							 '@extschema@.create_voucher(bigint, text, integer, bigint, integer, timestamptz, timestamptz, bigint)'::regprocedure,
							 '@extschema@.add_voucher_code(bigint, text)'::regprocedure,
							 '@extschema@.end_voucher(bigint)'::regprocedure]
	LOOP
		EXECUTE pg_catalog.format('ALTER FUNCTION %s SET search_path = pg_catalog, %s, pg_temp',
								  f, checkout_schema);
		FOR grantee IN
			SELECT a.grantee::regrole::text
			  FROM pg_catalog.pg_proc AS p,
				   pg_catalog.aclexplode(p.proacl) AS a
			 WHERE p.oid = '@extschema@.checkout(bigint, text)'::regprocedure
			   AND a.privilege_type = 'EXECUTE' AND a.grantee NOT IN (0, p.proowner)
		LOOP
			EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s', f, grantee);
		END LOOP;
	END LOOP;
END
$$;
