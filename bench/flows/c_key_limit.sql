-- The same with an idempotency key per attempt, the hot product under a
-- purchase limit (set high enough never to reject: the check runs each time)
\set cid 10201 + random(0, 100000 / :clients - 1) * :clients + :client_id
\set attempt random(1, 2000000000)
INSERT INTO cart_items (customer_id, product_id, quantity) VALUES (:cid, :pid_min, 1)
  ON CONFLICT (customer_id, product_id) DO NOTHING;
SELECT shop_checkout(:cid, 'attempt-' || :attempt);
