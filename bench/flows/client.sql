-- the seed's flow: a client-side transaction, one round trip per step
\set cid :client_id + 1
\set pid random(:pid_min, :pid_max)
-- add to cart, in its own transaction (add_to_cart=0: the cart is already filled)
\if :add_to_cart
INSERT INTO cart_items (customer_id, product_id, quantity) VALUES (:cid, :pid, 1)
  ON CONFLICT (customer_id, product_id) DO NOTHING;
\endif
BEGIN;
SELECT product_id, quantity FROM cart_items WHERE customer_id = :cid;
SELECT stock, price_cents FROM products WHERE id = :pid FOR UPDATE \gset
\if :stock >= 1
UPDATE products SET stock = stock - 1 WHERE id = :pid;
INSERT INTO orders (customer_id, total_cents) VALUES (:cid, :price_cents) RETURNING id AS order_id \gset
INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents)
  VALUES (:order_id, :pid, 1, :price_cents);
DELETE FROM cart_items WHERE customer_id = :cid;
COMMIT;
\else
ROLLBACK;
\endif
