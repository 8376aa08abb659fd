-- shop_checkout() through a handler that turns SH001 into NULL (sold-out rush)
\set cid :client_id + 1
\set pid random(:pid_min, :pid_max)
-- add to cart: its own transaction
INSERT INTO cart_items (customer_id, product_id, quantity) VALUES (:cid, :pid, 1)
  ON CONFLICT (customer_id, product_id) DO UPDATE SET quantity = excluded.quantity;
SELECT bench.try_shop_checkout(:cid);
