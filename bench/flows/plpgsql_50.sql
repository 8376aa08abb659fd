-- the PL/pgSQL function, 50-line cart
\set cid :client_id + 1
\set base random(:pid_min, :pid_max - 49)
-- add 50 lines to the cart, in one transaction
\if :add_to_cart
INSERT INTO cart_items (customer_id, product_id, quantity)
SELECT :cid, g, 1 FROM generate_series(:base, :base + 49) AS g
  ON CONFLICT (customer_id, product_id) DO NOTHING;
\endif
SELECT bench.plpgsql_checkout(:cid);
