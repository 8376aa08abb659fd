--
-- shop_checkout(): successful checkouts.
-- One-line and many-line carts, totals, the unit price snapshot, the cart
-- emptied of exactly what was ordered, and a rollback undoing everything.
--
CREATE EXTENSION checkout;

-- One line per table: stock, orders, order lines and every cart
CREATE TEMP VIEW shop_state AS
SELECT (SELECT string_agg(id || ':' || stock, ' ' ORDER BY id) FROM products) AS stock,
       (SELECT count(*) FROM orders) AS orders,
       (SELECT count(*) FROM order_items) AS order_lines,
       (SELECT string_agg(customer_id || '/' || product_id || 'x' || quantity, ' '
                          ORDER BY customer_id, product_id) FROM cart_items) AS carts;

INSERT INTO products (name, price_cents, stock) VALUES
  ('Flash Sale Smartphone', 49900, 20),
  ('Phone Case', 1999, 5),
  ('USB-C Cable', 899, 100);
INSERT INTO customers (name) VALUES ('Ada'), ('Brian'), ('Chen');

-- A one-line cart
INSERT INTO cart_items VALUES (1, 1, 2);
INSERT INTO cart_items VALUES (2, 1, 1);	-- another customer's cart stays
SELECT clock_timestamp() AS before_checkout \gset
SELECT shop_checkout(1) AS order_id;
-- stamped by this call: after the moment before it, not in the future
SELECT id, customer_id, total_cents,
       created_at BETWEEN :'before_checkout' AND clock_timestamp() AS created_by_this_call
  FROM orders;
SELECT * FROM order_items ORDER BY order_id, product_id;
SELECT * FROM shop_state;

-- A many-line cart, added out of product order
INSERT INTO cart_items VALUES (3, 3, 4), (3, 1, 1), (3, 2, 5);
SELECT shop_checkout(3) AS order_id;
SELECT id, customer_id, total_cents FROM orders WHERE id = 2;
SELECT * FROM order_items WHERE order_id = 2 ORDER BY product_id;
SELECT total_cents = (SELECT sum(quantity * unit_price_cents) FROM order_items
                      WHERE order_id = 2) AS total_matches_lines
  FROM orders WHERE id = 2;
SELECT * FROM shop_state;	-- Phone Case now 0: exactly all of its stock sold

-- The price at the moment of checkout is what the order keeps
UPDATE products SET price_cents = 44900 WHERE id = 1;
SELECT shop_checkout(2) AS order_id;
UPDATE products SET price_cents = 59900 WHERE id = 1;
SELECT o.id, o.total_cents, i.unit_price_cents
  FROM orders o JOIN order_items i ON i.order_id = o.id
 WHERE i.product_id = 1 ORDER BY o.id;

-- Inside a larger transaction: visible there, undone by its rollback
INSERT INTO cart_items VALUES (1, 3, 10);
BEGIN;
SELECT shop_checkout(1) AS order_id;
SELECT * FROM shop_state;
ROLLBACK;
SELECT * FROM shop_state;

-- ... and kept by its commit, with the caller's own writes
BEGIN;
INSERT INTO cart_items VALUES (1, 1, 1);
SELECT shop_checkout(1) AS order_id;
COMMIT;
SELECT * FROM order_items WHERE order_id = (SELECT max(id) FROM orders)
 ORDER BY product_id;
SELECT * FROM shop_state;

-- Works through a prepared statement and repeated calls in one session
INSERT INTO cart_items VALUES (2, 3, 1);
PREPARE co(bigint) AS SELECT shop_checkout($1);
EXECUTE co(2);
INSERT INTO cart_items VALUES (2, 3, 1);
EXECUTE co(2);
DEALLOCATE co;
SELECT * FROM shop_state;

SET checkout.allow_drop = on;
DROP EXTENSION checkout CASCADE;
