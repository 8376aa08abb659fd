--
-- shop_cart_status(): the storefront's view of a cart, read-only.
--
CREATE EXTENSION checkout;

INSERT INTO products (name, price_cents, stock) VALUES
  ('Flash Sale Smartphone', 49900, 3),
  ('Phone Case', 1999, 0),
  ('USB-C Cable', 899, 100);
INSERT INTO customers (name) VALUES ('Ada'), ('Brian'), ('Chen');
INSERT INTO cart_items VALUES (1, 3, 2), (1, 1, 3);	-- all available
INSERT INTO cart_items VALUES (2, 1, 5), (2, 2, 1), (2, 3, 1);	-- two short

SELECT * FROM shop_cart_status(1);
SELECT * FROM shop_cart_status(2);
SELECT * FROM shop_cart_status(3);	-- empty cart: no rows

-- In a read-only transaction (as on a hot standby)
BEGIN TRANSACTION READ ONLY;
SELECT product_id, can_fulfil, checkout_would_succeed FROM shop_cart_status(2);
COMMIT;

-- What it says is what checkout does
SELECT shop_checkout(1) IS NOT NULL AS ordered;
SELECT shop_checkout(2);
SELECT * FROM shop_cart_status(1);

-- Errors
SELECT * FROM shop_cart_status(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM shop_cart_status(42);
\echo :LAST_ERROR_SQLSTATE

SET checkout.allow_drop = on;
DROP EXTENSION checkout CASCADE;
