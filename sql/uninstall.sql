--
-- The uninstall guard: DROP EXTENSION checkout, or DROP SCHEMA of its
-- schema, is refused (2BP01) while orders has a row, changing nothing;
-- checkout.allow_drop = on lets it through; an empty shop drops as any
-- extension does; other DROPs are left alone.
--
CREATE SCHEMA shop;
CREATE EXTENSION checkout SCHEMA shop;
SELECT evtname, evtevent, evttags FROM pg_event_trigger;
INSERT INTO shop.products (name, price_cents, stock) VALUES ('Flash Sale Smartphone', 49900, 3);
INSERT INTO shop.customers (name) VALUES ('Ada');
INSERT INTO shop.cart_items VALUES (1, 1, 1);
SELECT shop.shop_checkout(1);

\set VERBOSITY default
DROP EXTENSION checkout;
\echo :LAST_ERROR_SQLSTATE
DROP EXTENSION IF EXISTS plpgsql, checkout CASCADE;
\echo :LAST_ERROR_SQLSTATE
DROP SCHEMA shop CASCADE;
\echo :LAST_ERROR_SQLSTATE
-- nothing changed: the extension, its orders and its stock are there
SELECT extname, (SELECT count(*) FROM shop.orders) AS orders,
	   (SELECT stock FROM shop.product_stock) AS stock
  FROM pg_extension WHERE extname = 'checkout';

-- other drops are left alone
CREATE SCHEMA regress_other;
DROP SCHEMA regress_other;
CREATE EXTENSION dblink;
DROP EXTENSION dblink;

-- on purpose
BEGIN;
SET LOCAL checkout.allow_drop = on;
DROP EXTENSION checkout;
ROLLBACK;
SELECT count(*) AS orders_kept_after_rollback FROM shop.orders;
SET checkout.allow_drop = on;
DROP EXTENSION checkout;
RESET checkout.allow_drop;
SELECT count(*) AS checkout_installed FROM pg_extension WHERE extname = 'checkout';

-- an empty shop drops as any extension does
CREATE EXTENSION checkout SCHEMA shop;
INSERT INTO shop.products (name, price_cents, stock) VALUES ('Unsold', 100, 3);
DROP EXTENSION checkout;
SELECT count(*) AS checkout_installed FROM pg_extension WHERE extname = 'checkout';
DROP SCHEMA shop;
