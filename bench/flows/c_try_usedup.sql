-- A one-line cart of the hot product (in stock) with the code of a voucher
-- used up (USEDUP: limit 1, used in setup), through a handler that turns
-- SH010 into NULL: what a rejection costs once the crowd has used a voucher
-- up, against the sold-out rush's SH001 (c_try on the sold-out product),
-- in the same shape: one line, added here (add_to_cart=1) or already there
\set cid :client_id + 1
\if :add_to_cart
INSERT INTO cart_items (customer_id, product_id, quantity) VALUES (:cid, 1, 1)
  ON CONFLICT (customer_id, product_id) DO NOTHING;
\endif
SELECT bench.try_voucher_checkout(:cid, 'usedup');
