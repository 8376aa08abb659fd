-- the same algorithm in PL/pgSQL
\set cid :client_id + 1
\set pid random(:pid_min, :pid_max)
-- add to cart, in its own transaction (add_to_cart=0: the cart is already filled)
\if :add_to_cart
INSERT INTO cart_items (customer_id, product_id, quantity) VALUES (:cid, :pid, 1)
  ON CONFLICT (customer_id, product_id) DO NOTHING;
\endif
SELECT bench.plpgsql_checkout(:cid);
