--
-- The stock ledger: opening stock, shop_restock(), shop_adjust_stock(), and
-- shop_check_integrity() finding each kind of problem.
--
CREATE EXTENSION checkout;

-- A plain INSERT records each product's opening stock as its first movement
INSERT INTO products (name, price_cents, stock) VALUES
  ('Flash Sale Smartphone', 49900, 20),
  ('Phone Case', 1999, 0);
INSERT INTO customers (name) VALUES ('Ada');
SELECT product_id, kind, quantity, stock_after, reason FROM stock_movements ORDER BY id;
SELECT * FROM shop_check_integrity();

-- Restock and adjust: each a movement, with the stock after it
SELECT shop_restock(2, 15, 'delivery note 4711') AS new_stock;
SELECT shop_adjust_stock(1, 18, 'two damaged in the warehouse') AS new_stock;
SELECT shop_adjust_stock(2, 15, 'recount: no change') AS new_stock;
SELECT product_id, kind, quantity, stock_after, reason FROM stock_movements ORDER BY id;
SELECT id, stock FROM products ORDER BY id;

-- Sales are the order lines: still consistent after checkouts
INSERT INTO cart_items VALUES (1, 1, 3), (1, 2, 1);
SELECT shop_checkout(1) AS order_id;
SELECT * FROM shop_check_integrity();

-- Bad input: a clear error, and nothing changes
SELECT shop_restock(1, 0, 'nothing');
\echo :LAST_ERROR_SQLSTATE
SELECT shop_restock(1, -5, 'taking some away');
\echo :LAST_ERROR_SQLSTATE
SELECT shop_restock(1, 5, '  ');
\echo :LAST_ERROR_SQLSTATE
SELECT shop_restock(1, NULL, 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT shop_restock(99, 5, 'no such product');
\echo :LAST_ERROR_SQLSTATE
SELECT shop_restock(1, 2147483647, 'more than an integer holds');
\echo :LAST_ERROR_SQLSTATE
SELECT shop_adjust_stock(1, -1, 'negative');
\echo :LAST_ERROR_SQLSTATE
SELECT shop_adjust_stock(99, 1, 'no such product');
\echo :LAST_ERROR_SQLSTATE
SELECT shop_adjust_stock(1, 1, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS movements FROM stock_movements;
SELECT id, stock FROM products ORDER BY id;

-- Each problem, made to happen, is reported
-- 1. stock changed behind the ledger's back
UPDATE products SET stock = stock + 100 WHERE id = 2;
-- 2. an order without lines
INSERT INTO orders (customer_id, total_cents) VALUES (1, 0);
-- 3. an order whose total is not its lines
UPDATE orders SET total_cents = total_cents + 1 WHERE id = 1;
SELECT * FROM shop_check_integrity();

-- Mended, it is consistent again: an adjustment books the difference from
-- the ledger (here +100), not from the stock column
SELECT shop_adjust_stock(2, 114, 'found the 100 a script added') AS new_stock;
SELECT kind, quantity, stock_after FROM stock_movements ORDER BY id DESC LIMIT 1;
DELETE FROM orders WHERE id = 2;
UPDATE orders SET total_cents = total_cents - 1 WHERE id = 1;
SELECT * FROM shop_check_integrity();

-- The ledger's rows are the shop's data too
SELECT c.relname
  FROM pg_extension e, unnest(e.extconfig) AS t(oid)
  JOIN pg_class c ON c.oid = t.oid
 WHERE e.extname = 'checkout' AND c.relname LIKE 'stock_movements%' ORDER BY 1;

SET checkout.allow_drop = on;
DROP EXTENSION checkout CASCADE;
