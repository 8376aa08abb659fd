/* checkout--1.2--1.3.sql: from 1.2 to 1.3 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION checkout UPDATE TO '1.3'" to load this file. \quit

/*
 * A reset cannot lose the default location.  Test frameworks reset a
 * database between tests by truncating every table (TRUNCATE ... RESTART
 * IDENTITY CASCADE, DatabaseCleaner, Django's flush) or deleting every row;
 * in 1.2 that removed location 1, and from then on every INSERT INTO
 * products failed on the opening-stock movement's foreign key.  Location 1
 * is every shop's (its stock is products.stock and the stock slots): after
 * any statement that truncates or deletes from locations, it is there
 * again, as a fresh install has it.  Other locations a reset removes stay
 * removed, as any row of the shop's.
 */
CREATE FUNCTION @extschema@.shop_keep_default_location()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	INSERT INTO @extschema@.locations (id, name)
	SELECT 1, 'default'
	 WHERE NOT EXISTS (SELECT FROM @extschema@.locations AS l WHERE l.id OPERATOR(pg_catalog.=) 1)
	ON CONFLICT DO NOTHING;
	IF NOT EXISTS (SELECT FROM @extschema@.locations AS l WHERE l.id OPERATOR(pg_catalog.=) 1) THEN
		RAISE EXCEPTION 'the default location cannot be recreated'
			USING ERRCODE = '55000',
				  DETAIL = 'Another location is named "default".',
				  HINT = 'Rename that location, then delete or truncate again.';
	END IF;
	RETURN NULL;
END
$$;

REVOKE ALL ON FUNCTION @extschema@.shop_keep_default_location() FROM PUBLIC;

CREATE TRIGGER locations_keep_default_after_truncate
	AFTER TRUNCATE ON @extschema@.locations
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.shop_keep_default_location();

CREATE TRIGGER locations_keep_default_after_delete
	AFTER DELETE ON @extschema@.locations
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.shop_keep_default_location();

/*
 * What a shop uses, cached per backend (features.c).  A checkout of a shop
 * that never had a purchase limit, a location other than the default, a
 * preorder or a voucher code runs no statement for it; since 1.3 each
 * backend remembers that instead of looking at the table on every call.
 * The first row of each of these tables must tell every backend: this
 * trigger invalidates the table's relcache entry when the inserting
 * transaction commits, and each backend then looks again.
 */
CREATE FUNCTION @extschema@.shop_feature_used()
RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'shop_feature_used';

REVOKE ALL ON FUNCTION @extschema@.shop_feature_used() FROM PUBLIC;

CREATE TRIGGER purchase_limits_feature_used
	AFTER INSERT ON @extschema@.purchase_limits
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.shop_feature_used();

CREATE TRIGGER location_stock_feature_used
	AFTER INSERT ON @extschema@.location_stock
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.shop_feature_used();

CREATE TRIGGER preorders_feature_used
	AFTER INSERT ON @extschema@.preorders
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.shop_feature_used();

CREATE TRIGGER voucher_codes_feature_used
	AFTER INSERT ON @extschema@.voucher_codes
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.shop_feature_used();
