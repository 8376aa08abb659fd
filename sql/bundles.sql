--
-- Bundles (1.3): a product sold as its parts
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

-- A part stocked in another location: the bundle takes it from there (the
-- whole line from one location: 2 cases from the store), and gives it
-- back there; the ledger and the integrity check agree
SELECT shop_create_location('Store', 5) AS store;
SELECT shop_restock(2, 4, 'store delivery', 2);
SELECT shop_adjust_stock(2, 1, 'recount', 1);
INSERT INTO cart_items VALUES (1, 4, 1);
SELECT shop_checkout(1) AS ada_located;
SELECT order_id, product_id, location_id, quantity FROM order_item_allocations ORDER BY 1, 2, 3;
SELECT * FROM stock_by_location WHERE product_id = 2 ORDER BY location_id;
SELECT shop_cancel_order(3, 'store pickup cancelled');
SELECT product_id, location_id, quantity FROM stock_movements
 WHERE order_id = 3 ORDER BY product_id;
SELECT * FROM shop_check_integrity();

-- Fail fast knows bundles: a bundle whose part is short is refused on the
-- snapshot, naming the bundle, with the part's stock over its locations
-- (1 + 4 cases make 2 boxes, not 3)
INSERT INTO cart_items VALUES (2, 4, 3);
SELECT shop_checkout(2);

-- A bundle is never restocked or adjusted, even to 0
SELECT shop_adjust_stock(4, 0, 'recount');

-- Bundles' parts count as the part's sales in its books: a recount of the
-- case after bundle sales moves only what the count changed
DELETE FROM cart_items WHERE customer_id = 2;
INSERT INTO cart_items VALUES (2, 4, 1);
SELECT shop_checkout(2) AS brians_located;
SELECT shop_adjust_stock(2, 0, 'recount', 1);
SELECT kind, quantity, location_id FROM stock_movements
 WHERE product_id = 2 AND kind = 'adjustment' ORDER BY id DESC LIMIT 1;
SELECT * FROM shop_check_integrity();

SET checkout.allow_drop = on;
DROP EXTENSION checkout;
