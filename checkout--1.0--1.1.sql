/* checkout--1.0--1.1.sql: from 1.0 to 1.1 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION checkout UPDATE TO '1.1'" to load this file. \quit

/*
 * Record the opening stock of products inserted directly, as shops do.
 * Not while a dump is being loaded (pg_restore, or psql running pg_dump's
 * output, both of which turn check_function_bodies off before anything
 * else, as the PostgreSQL documentation says pg_dump does): the dump brings
 * the product's whole ledger with it, opening movement included, and the
 * products' rows it loads hold their stock of now, not their opening stock.
 */
CREATE OR REPLACE FUNCTION @extschema@.shop_record_opening_stock()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT pg_catalog.current_setting('check_function_bodies')::boolean THEN
		RETURN NULL;
	END IF;
	INSERT INTO @extschema@.stock_movements
		(product_id, kind, quantity, stock_after, reason)
	SELECT n.id, 'opening', n.stock, n.stock, 'opening stock'
	  FROM new_products AS n;
	RETURN NULL;
END
$$;


-- Internal helpers: for the functions that use them and for roles granted them
REVOKE ALL ON FUNCTION @extschema@.shop_lock_stock(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_spread_stock(bigint, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.shop_record_opening_stock() FROM PUBLIC;
