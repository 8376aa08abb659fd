-- shop_checkout(customer_id, idempotency_key) by buyers of the crowd of
-- 100,000, each client its own share (-D clients), the hot product: the
-- keyed checkout that voucher-N compares c_key_voucher with
\set cid 10201 + random(0, 100000 / :clients - 1) * :clients + :client_id
\set attempt random(1, 2000000000)
INSERT INTO cart_items (customer_id, product_id, quantity) VALUES (:cid, :pid_min, 1)
  ON CONFLICT (customer_id, product_id) DO NOTHING;
SELECT shop_checkout(:cid, 'attempt-' || :attempt);
