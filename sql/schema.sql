--
-- Installing into another schema, and safety against search_path tricks:
-- tables, functions and operators that a user creates earlier on
-- search_path never capture the queries that shop_checkout() runs.
--
CREATE SCHEMA shop;
CREATE EXTENSION checkout SCHEMA shop;
SELECT n.nspname, e.extrelocatable
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'checkout';
SELECT count(*) AS tables_in_public FROM pg_tables WHERE schemaname = 'public';

INSERT INTO shop.products (name, price_cents, stock) VALUES ('Widget', 250, 10);
INSERT INTO shop.customers (name) VALUES ('Ada');
INSERT INTO shop.cart_items VALUES (1, 1, 3);

-- Decoys earlier on search_path: tables of the same names holding other
-- rows, and operators and functions that shout when anything calls them
CREATE SCHEMA decoy;
CREATE TABLE decoy.products (id bigint, name text, price_cents bigint, stock integer);
INSERT INTO decoy.products VALUES (1, 'Decoy Widget', 1, 0);
CREATE TABLE decoy.customers (id bigint, name text);
CREATE TABLE decoy.cart_items (customer_id bigint, product_id bigint, quantity integer);
INSERT INTO decoy.cart_items VALUES (1, 1, 999);
CREATE TABLE decoy.orders (id bigint, customer_id bigint, total_cents bigint, created_at timestamptz);
CREATE TABLE decoy.order_items (order_id bigint, product_id bigint, quantity integer, unit_price_cents bigint);
CREATE FUNCTION decoy.captured_eq(bigint, bigint) RETURNS boolean
  LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'captured: decoy = operator'; END$$;
CREATE OPERATOR decoy.= (LEFTARG = bigint, RIGHTARG = bigint, PROCEDURE = decoy.captured_eq);
CREATE FUNCTION decoy.captured_mi(integer, integer) RETURNS integer
  LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'captured: decoy - operator'; END$$;
CREATE OPERATOR decoy.- (LEFTARG = integer, RIGHTARG = integer, PROCEDURE = decoy.captured_mi);
CREATE FUNCTION decoy.unnest(anyarray) RETURNS SETOF anyelement
  LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'captured: decoy unnest'; END$$;

-- The decoys do capture unqualified SQL (pg_catalog searched after decoy)
SET search_path = decoy, pg_catalog, shop;
SELECT 1::bigint = 1::bigint;
SELECT count(*) AS decoy_products FROM products;
SELECT x FROM unnest(ARRAY[1, 2]) AS x;

-- ... but not shop_checkout()
SELECT shop.shop_checkout(1) AS order_id;
RESET search_path;
SELECT id, customer_id, total_cents FROM shop.orders;
SELECT * FROM shop.order_items;
SELECT id, stock FROM shop.products;
SELECT count(*) AS cart_lines FROM shop.cart_items;
SELECT * FROM decoy.products;
SELECT * FROM decoy.cart_items;

-- With the extension's schema not on search_path at all
SET search_path = decoy;
INSERT INTO shop.cart_items VALUES (1, 1, 2);
SELECT shop.shop_checkout(1) AS order_id;
RESET search_path;
SELECT id, stock FROM shop.products;

-- Re-created in another schema (whose name needs quoting) within the same
-- session: the saved plans follow the function to its new schema
SET checkout.allow_drop = on;
DROP EXTENSION checkout CASCADE;
CREATE SCHEMA "Shop Floor";
CREATE EXTENSION checkout SCHEMA "Shop Floor";
INSERT INTO "Shop Floor".products (name, price_cents, stock) VALUES ('Lamp', 1500, 4);
INSERT INTO "Shop Floor".customers (name) VALUES ('Brian');
INSERT INTO "Shop Floor".cart_items VALUES (1, 1, 4);
SELECT "Shop Floor".shop_checkout(1) AS order_id;
SELECT id, stock FROM "Shop Floor".products;
SELECT count(*) AS tables_left_in_shop FROM pg_tables WHERE schemaname = 'shop';

-- ... and to its schema's new name
ALTER SCHEMA "Shop Floor" RENAME TO "Shop; Floor""s";
UPDATE "Shop; Floor""s".products SET stock = 2;
INSERT INTO "Shop; Floor""s".cart_items VALUES (1, 1, 2);
SELECT "Shop; Floor""s".shop_checkout(1) AS order_id;
SELECT id, stock FROM "Shop; Floor""s".products;

-- The tables' rows are the shop's data: pg_dump must dump them
SELECT c.relname
  FROM pg_extension e, unnest(e.extconfig) AS t(oid)
  JOIN pg_class c ON c.oid = t.oid
 WHERE e.extname = 'checkout' ORDER BY 1;

-- Not relocatable
ALTER EXTENSION checkout SET SCHEMA public;

SET checkout.allow_drop = on;
DROP EXTENSION checkout CASCADE;
DROP SCHEMA decoy, shop, "Shop; Floor""s" CASCADE;
