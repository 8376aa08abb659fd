-- shop_checkout(), the C function
\set cid :client_id + 1
\set pid random(:pid_min, :pid_max)
-- add to cart: its own transaction
INSERT INTO cart_items (customer_id, product_id, quantity) VALUES (:cid, :pid, 1)
  ON CONFLICT (customer_id, product_id) DO UPDATE SET quantity = excluded.quantity;
SELECT shop_checkout(:cid);
