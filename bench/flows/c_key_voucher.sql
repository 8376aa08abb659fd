-- The same with the code of one voucher every buyer types (BENCH10: 10%
-- off, a usage limit far above what a run can sell, so every call takes a
-- use from its slots and none is refused)
\set cid 10201 + random(0, 100000 / :clients - 1) * :clients + :client_id
\set attempt random(1, 2000000000)
INSERT INTO cart_items (customer_id, product_id, quantity) VALUES (:cid, :pid_min, 1)
  ON CONFLICT (customer_id, product_id) DO NOTHING;
SELECT shop_checkout(:cid, 'attempt-' || :attempt, 'bench10');
