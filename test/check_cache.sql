-- pgTAP: the CHECK constraints of the shop's tables, compiled once per
-- backend (1.3, checks.c), are enforced exactly as PostgreSQL's own: a
-- table's constraint refuses a bad row with its name, after the backend has
-- compiled it; a constraint added, dropped, or replaced by another (their
-- number unchanged) is enforced as it now is from the next statement on; a
-- SQL function a constraint calls, replaced, is enforced with its new body
-- (planning inlines it: the compiled expression must be dropped); a NOT
-- VALID constraint is enforced on new rows; the checkout's writes still pass.
BEGIN;
CREATE EXTENSION checkout;
SELECT plan(10);

INSERT INTO products (id, name, price_cents, stock) OVERRIDING SYSTEM VALUE VALUES (701, 'Lamp', 1000, 10);
INSERT INTO customers (id, name) OVERRIDING SYSTEM VALUE VALUES (701, 'Ada');
INSERT INTO cart_items VALUES (701, 701, 1);
SELECT ok(shop_checkout(701) > 0, 'a checkout (this backend now compiles the shop''s CHECKs)');

SELECT throws_ok($$UPDATE products SET stock = -1 WHERE id = 701$$, '23514',
				 'new row for relation "products" violates check constraint "products_stock_check"',
				 'products_stock_check refuses a negative stock');
SELECT throws_ok($$UPDATE products SET stock = -1 WHERE id = 701$$, '23514',
				 'new row for relation "products" violates check constraint "products_stock_check"',
				 'and again, from the compiled expression');

ALTER TABLE products DROP CONSTRAINT products_stock_check,
	ADD CONSTRAINT products_stock_floor CHECK (stock >= -5);
SELECT lives_ok($$UPDATE products SET stock = -1 WHERE id = 701$$,
				'one replaced by another (as many as before): the old one is gone ...');
SELECT throws_ok($$UPDATE products SET stock = -6 WHERE id = 701$$, '23514',
				 'new row for relation "products" violates check constraint "products_stock_floor"',
				 '... and the new one enforced');
UPDATE products SET stock = 10 WHERE id = 701;
ALTER TABLE products ADD CONSTRAINT products_price_cap CHECK (price_cents <= 100000);
SELECT throws_ok($$UPDATE products SET price_cents = 200000 WHERE id = 701$$, '23514',
				 'new row for relation "products" violates check constraint "products_price_cap"',
				 'a constraint added is enforced from the next statement on');
ALTER TABLE products DROP CONSTRAINT products_price_cap;

CREATE FUNCTION price_ok(price bigint) RETURNS boolean LANGUAGE sql IMMUTABLE
	AS 'SELECT price < 500000';
ALTER TABLE products ADD CONSTRAINT products_price_ok CHECK (price_ok(price_cents));
SELECT lives_ok($$UPDATE products SET price_cents = 300000 WHERE id = 701$$,
				'a constraint calling a SQL function');
CREATE OR REPLACE FUNCTION price_ok(price bigint) RETURNS boolean LANGUAGE sql IMMUTABLE
	AS 'SELECT price < 250000';
SELECT throws_ok($$UPDATE products SET price_cents = 300001 WHERE id = 701$$, '23514',
				 'new row for relation "products" violates check constraint "products_price_ok"',
				 'the function replaced: its new body is enforced');

ALTER TABLE products ADD CONSTRAINT products_name_short CHECK (length(name) < 50) NOT VALID;
SELECT throws_ok($$UPDATE products SET name = repeat('x', 60) WHERE id = 701$$, '23514',
				 'new row for relation "products" violates check constraint "products_name_short"',
				 'a NOT VALID constraint is enforced on new rows');

UPDATE products SET price_cents = 1000 WHERE id = 701;
INSERT INTO cart_items VALUES (701, 701, 2);
SELECT ok(shop_checkout(701) > 0, 'the checkout''s writes pass the compiled constraints');

SELECT * FROM finish();
ROLLBACK;
