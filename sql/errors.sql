--
-- shop_checkout(): every error, with its SQLSTATE, message, detail and hint,
-- and nothing changed after it: no order, no stock moved, no cart lost.
--
CREATE EXTENSION checkout;

CREATE TEMP VIEW shop_state AS
SELECT (SELECT string_agg(id || ':' || stock, ' ' ORDER BY id) FROM products) AS stock,
       (SELECT count(*) FROM orders) AS orders,
       (SELECT count(*) FROM order_items) AS order_lines,
       (SELECT string_agg(customer_id || '/' || product_id || 'x' || quantity, ' '
                          ORDER BY customer_id, product_id) FROM cart_items) AS carts;

INSERT INTO products (name, price_cents, stock) VALUES
  ('Flash Sale Smartphone', 49900, 3),
  ('Phone Case', 1999, 0),
  ('USB-C Cable', 899, 100),
  ('Gold Bar', 9223372036854775807, 10);
INSERT INTO customers (name) VALUES ('Ada'), ('Brian'), ('Chen');
INSERT INTO cart_items VALUES (1, 1, 5);	-- wants 5 of 3
INSERT INTO cart_items VALUES (2, 3, 1), (2, 2, 1), (2, 1, 4);	-- two short
SELECT * FROM shop_state;

-- NULL customer id: 22004, not a silent NULL
SELECT shop_checkout(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM shop_state;

-- Unknown customer: SH003
SELECT shop_checkout(42);
\echo :LAST_ERROR_SQLSTATE

-- Empty cart of a known customer: SH002
SELECT shop_checkout(3);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM shop_state;

-- Insufficient stock: SH001 with the exact message
SELECT shop_checkout(1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM shop_state;

-- Several short lines: the message names the first by product id, the
-- detail lists every short line; the line that could be served is untouched
SELECT shop_checkout(2);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM shop_state;

-- Inside a transaction the error aborts it; the rollback leaves all as it was
BEGIN;
INSERT INTO cart_items VALUES (3, 3, 1);
SELECT shop_checkout(1);
ROLLBACK;
SELECT * FROM shop_state;

-- Caught in a subtransaction (as a PL/pgSQL EXCEPTION block does): the
-- caller can go on, and nothing of the failed checkout remains
DO $$
DECLARE
	state text;
	msg text;
	det text;
BEGIN
	PERFORM shop_checkout(2);
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
		det = PG_EXCEPTION_DETAIL;
	RAISE NOTICE 'caught % "%" / %', state, msg, replace(det, E'\n', ' | ');
END
$$;
SELECT * FROM shop_state;

-- A total beyond bigint cents: 22003, nothing changed
INSERT INTO cart_items VALUES (3, 4, 2);
SELECT shop_checkout(3);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM shop_state;
DELETE FROM cart_items WHERE customer_id = 3;

-- Product names are data: quotes, format directives, semicolons and
-- non-ASCII text come through unchanged
INSERT INTO products (name, price_cents, stock) VALUES
  ('O''Brien''s "Best" 100%s %d %% Case; DROP TABLE products;--', 500, 1),
  ('Café Ünïcødé 限定スマホ 📱', 700, 0);
INSERT INTO cart_items VALUES (3, 5, 2), (3, 6, 1);
SELECT shop_checkout(3);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM shop_state;
-- and a successful order of the odd name
UPDATE cart_items SET quantity = 1 WHERE customer_id = 3 AND product_id = 5;
DELETE FROM cart_items WHERE customer_id = 3 AND product_id = 6;
SELECT shop_checkout(3) AS order_id;
SELECT p.name, i.quantity FROM order_items i JOIN products p ON p.id = i.product_id;

-- Stock can never go negative, whatever writes it
UPDATE products SET stock = -1 WHERE id = 3;

SET checkout.allow_drop = on;
DROP EXTENSION checkout CASCADE;
