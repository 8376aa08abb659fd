--
-- Stock slots: a hot product's stock split over several rows.  Splitting,
-- checkouts served by one slot or by several combined, the true stock on
-- sale in SH001 and shop_cart_status(), restock and adjustment spreading over
-- the slots, merging back, the ledger staying consistent, and bad input.
--
CREATE EXTENSION checkout;

-- One line: the product's row, its slots, its stock on sale
CREATE TEMP VIEW stock_state AS
SELECT p.id, p.stock AS row_stock,
       (SELECT string_agg(s.stock::text, ' ' ORDER BY s.slot)
          FROM stock_slots s WHERE s.product_id = p.id) AS slots,
       ps.stock AS on_sale
  FROM products p JOIN product_stock ps ON ps.product_id = p.id
 ORDER BY p.id;

INSERT INTO products (name, price_cents, stock) VALUES
  ('Flash Sale Smartphone', 49900, 10),
  ('Phone Case', 1999, 5);
INSERT INTO customers (name) VALUES ('Ada'), ('Brian'), ('Chen');

-- Split: 10 spread evenly over 4 slots, the row keeps nothing
SELECT shop_split_stock(1, 4) AS on_sale;
SELECT * FROM stock_state;
SELECT * FROM shop_check_integrity();

-- A checkout served by one slot (with a product without slots)
INSERT INTO cart_items VALUES (1, 1, 2), (1, 2, 1);
SELECT shop_checkout(1) AS order_id;
SELECT product_id, quantity, unit_price_cents FROM order_items ORDER BY product_id;
SELECT id, on_sale FROM stock_state;
SELECT count(*) AS cart_lines_left FROM cart_items WHERE customer_id = 1;

-- Split again into 8: 8 on sale, one in each slot
SELECT shop_split_stock(1, 8) AS on_sale;
SELECT * FROM stock_state;

-- No slot holds 3: the checkout combines slots, and is not told "sold out"
INSERT INTO cart_items VALUES (2, 1, 3);
SELECT shop_checkout(2) AS order_id;
SELECT * FROM stock_state;

-- More than the stock on sale: SH001 reports the whole stock on sale (5),
-- not one slot's, with fail fast on and off; nothing changes
INSERT INTO cart_items VALUES (3, 1, 6);
SELECT shop_cart_status(3);
SELECT shop_checkout(3);
\echo :LAST_ERROR_SQLSTATE
SET checkout.fail_fast = off;
SELECT shop_checkout(3);
\echo :LAST_ERROR_SQLSTATE
RESET checkout.fail_fast;
SELECT * FROM stock_state;

-- Stock put in the row behind the functions' back is on sale too
UPDATE products SET stock = 1 WHERE id = 1;
SELECT shop_checkout(3) AS order_id;
SELECT * FROM stock_state;

-- Restock spreads over the slots; adjustment sets the stock on sale
SELECT shop_restock(1, 10, 'delivery note 4712') AS on_sale;
SELECT * FROM stock_state;
SELECT shop_adjust_stock(1, 7, 'recount') AS on_sale;
SELECT * FROM stock_state;
SELECT product_id, kind, quantity, stock_after FROM stock_movements
 WHERE product_id = 1 ORDER BY id;
SELECT * FROM shop_check_integrity();

-- Merge: all back in the row
SELECT shop_merge_stock(1) AS on_sale;
SELECT * FROM stock_state;
SELECT shop_merge_stock(1) AS on_sale;	-- no slots: nothing to do

-- Bad input: a clear error, and nothing changes
SELECT shop_split_stock(1, 1);
\echo :LAST_ERROR_SQLSTATE
SELECT shop_split_stock(1, 65);
\echo :LAST_ERROR_SQLSTATE
SELECT shop_split_stock(NULL, 4);
\echo :LAST_ERROR_SQLSTATE
SELECT shop_split_stock(99, 4);
\echo :LAST_ERROR_SQLSTATE
SELECT shop_merge_stock(99);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM stock_state;
SELECT * FROM shop_check_integrity();

DROP VIEW stock_state;
SET checkout.allow_drop = on;
DROP EXTENSION checkout;
