--
-- Bundles (1.3, in progress): a product sold as its parts
--
CREATE EXTENSION checkout;

INSERT INTO products (name, price_cents, stock) VALUES
  ('Phone', 50000, 10), ('Phone Case', 2000, 5), ('Charger', 1500, 7);
SELECT shop_create_bundle('Gift Box', 52000,
  '[{"product_id": 1, "quantity": 1}, {"product_id": 2, "quantity": 2}, {"product_id": 3, "quantity": 1}]') AS gift_box;

-- What its parts can make: least of 10/1, 5/2, 7/1
SELECT * FROM product_stock ORDER BY product_id;

-- Refused: no parts, a part twice, an unknown part, a bundle as a part
SELECT shop_create_bundle('Empty', 100, '[]');
SELECT shop_create_bundle('Twice', 100, '[{"product_id": 1, "quantity": 1}, {"product_id": 1, "quantity": 2}]');
SELECT shop_create_bundle('Missing', 100, '[{"product_id": 99, "quantity": 1}]');
SELECT shop_create_bundle('Nested', 100, '[{"product_id": 4, "quantity": 1}]');

-- A bundle has no stock of its own
SELECT shop_restock(4, 5, 'a bundle');
SELECT shop_split_stock(4, 4);

INSERT INTO customers (name) VALUES ('Ada'), ('Brian');

-- Two gift boxes and a case on its own: each part locked once, the case's
-- units added up (2 x 2 + 1 = 5)
INSERT INTO cart_items VALUES (1, 4, 2), (1, 2, 1);
SELECT shop_checkout(1) AS ada_order;
SELECT product_id, quantity, unit_price_cents FROM order_items WHERE order_id = 1 ORDER BY 1;
SELECT bundle_id, product_id, quantity FROM order_item_parts WHERE order_id = 1 ORDER BY 2;
SELECT total_cents FROM orders WHERE id = 1;
SELECT * FROM product_stock ORDER BY product_id;

-- No case left: the bundle is refused, naming its part, and nothing moves
INSERT INTO cart_items VALUES (2, 4, 1);
SELECT shop_checkout(2);
SELECT count(*) AS brians_cart FROM cart_items WHERE customer_id = 2;

-- A cancel gives the parts back, exactly once
SELECT shop_cancel_order(1, 'changed her mind');
SELECT shop_cancel_order(1, 'changed her mind');
SELECT * FROM product_stock ORDER BY product_id;

-- A partial cancel of a bundle line gives back its parts for those units
SELECT shop_checkout(2) AS brians_order;
SELECT shop_cancel_items(2, 4, 1, 'one box back');
SELECT product_id, kind, quantity FROM stock_movements WHERE order_id = 2 ORDER BY product_id;

SELECT * FROM shop_check_integrity();

SET checkout.allow_drop = on;
DROP EXTENSION checkout;
