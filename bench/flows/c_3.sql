-- shop_checkout(), a 3-line cart: the three products a bundle of the
-- bundles' database holds (3 + 3k, 4 + 3k, 5 + 3k), beside bundle-3
\set cid :client_id + 1
\set base 3 + 3 * random(0, 332)
-- add the 3 lines to the cart, in one transaction
\if :add_to_cart
INSERT INTO cart_items (customer_id, product_id, quantity)
SELECT :cid, g, 1 FROM generate_series(:base, :base + 2) AS g
  ON CONFLICT (customer_id, product_id) DO NOTHING;
\endif
SELECT shop_checkout(:cid);
