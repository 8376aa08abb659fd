-- The storefront's shop (make storefront, the browser tests): run as the
-- database's owner in a database of its own, psql -v stock=20.
--   the extension and a demo catalogue: the design's Flash Sale
--   Smartphone (:stock in stock), a few others, one sold out;
--   the app role storefront: shop_grant_app() (with 1.3's bundle_parts:
--   the page says what a bundle holds) and sign-up (INSERT on customers,
--   and its id back), checkout.lock_timeout 1 s (a lock timeout is a 503 the
--   page retries, never a request hanging behind a crowd).
\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS checkout;
INSERT INTO products (name, price_cents, stock) VALUES
	('Flash Sale Smartphone', 49900, :stock),
	('Wireless Earbuds', 7900, 200),
	('Phone Case', 1900, 500),
	('Fast Charger', 2900, 0);
DO $$
BEGIN
	CREATE ROLE storefront LOGIN PASSWORD 'storefront';
EXCEPTION WHEN duplicate_object THEN
	NULL;
END
$$;
SELECT shop_grant_app('storefront');
GRANT INSERT, SELECT (id) ON customers TO storefront;
ALTER ROLE storefront SET checkout.lock_timeout = '1s';
