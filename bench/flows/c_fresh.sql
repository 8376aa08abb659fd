-- shop_checkout() by buyers who have bought little or nothing yet: one
-- of the 100,000 of the crowd, each client its own share (-D clients), the hot product
\set cid 10201 + random(0, 100000 / :clients - 1) * :clients + :client_id
INSERT INTO cart_items (customer_id, product_id, quantity) VALUES (:cid, :pid_min, 1)
  ON CONFLICT (customer_id, product_id) DO NOTHING;
SELECT shop_checkout(:cid);
