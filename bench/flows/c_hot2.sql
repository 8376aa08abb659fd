-- shop_checkout(), a 2-line cart: the hot product and one of the catalog
-- products 500..531, the parts of a hot bundle of the bundles' database,
-- beside bundle-hot-32
\set cid :client_id + 1
\set k random(0, 31)
-- add the 2 lines to the cart, in one transaction
\if :add_to_cart
INSERT INTO cart_items (customer_id, product_id, quantity)
VALUES (:cid, 1, 1), (:cid, 500 + :k, 1)
  ON CONFLICT (customer_id, product_id) DO NOTHING;
\endif
SELECT shop_checkout(:cid);
