--
-- An error raised while a checkout waits for a lock (here 55P03, after
-- checkout.lock_timeout) reaches the client as PostgreSQL raised it, with
-- one more context line naming what the checkout was locking at that
-- moment: the cart, the queue of a product, the products' rows, or a stock
-- slot.  A second session (dblink) holds the locks.  Nothing changes.
--
CREATE EXTENSION checkout;
CREATE EXTENSION dblink;

INSERT INTO products (name, price_cents, stock) VALUES
  ('Flash Sale Smartphone', 49900, 10), ('Phone Case', 1999, 10),
  ('USB-C Cable', 899, 10);
INSERT INTO customers (name) VALUES ('Ada'), ('Brian');
INSERT INTO cart_items VALUES (1, 1, 1), (1, 2, 1), (2, 3, 1);

CREATE TEMP VIEW shop_state AS
SELECT (SELECT string_agg(id || ':' || stock, ' ' ORDER BY id) FROM products) AS stock,
       (SELECT count(*) FROM orders) AS orders,
       (SELECT string_agg(customer_id || '/' || product_id || 'x' || quantity, ' '
                          ORDER BY customer_id, product_id) FROM cart_items) AS carts;

SELECT dblink_connect('holder', format('host=%s port=%s dbname=%s',
	split_part(current_setting('unix_socket_directories'), ',', 1),
	current_setting('port'), current_database()));
SET checkout.lock_timeout = 50;

-- The cart: a second tab holds one of its lines
SELECT dblink_exec('holder', 'BEGIN');
SELECT dblink_exec('holder', 'UPDATE cart_items SET quantity = 2 WHERE customer_id = 1 AND product_id = 2');
SELECT shop_checkout(1);
\echo :LAST_ERROR_SQLSTATE
SELECT dblink_exec('holder', 'ROLLBACK');

-- A product's queue: another checkout of product 2 is in progress
SELECT dblink_exec('holder', 'BEGIN');
SELECT dblink_exec('holder', 'INSERT INTO customers (name) VALUES (''Chen'')');
SELECT dblink_exec('holder', 'INSERT INTO cart_items VALUES (3, 2, 1)');
SELECT * FROM dblink('holder', 'SELECT shop_checkout(3)') AS t(order_id bigint);
SELECT shop_checkout(1);
SELECT dblink_exec('holder', 'ROLLBACK');

-- The products' rows (queue locks off: the wait is for the rows), naming
-- the products of the cart that are being locked
SET checkout.queue_locks = off;
SELECT dblink_exec('holder', 'BEGIN');
SELECT * FROM dblink('holder', 'SELECT id FROM products WHERE id = 2 FOR NO KEY UPDATE') AS t(id bigint);
SELECT shop_checkout(1);
SELECT dblink_exec('holder', 'ROLLBACK');
RESET checkout.queue_locks;

-- A product split into stock slots, every slot held (which slot it waits
-- for depends on its random start, so only the checkout's line is shown)
SELECT shop_split_stock(3, 2);
SELECT dblink_exec('holder', 'BEGIN');
SELECT * FROM dblink('holder', 'SELECT slot FROM stock_slots WHERE product_id = 3 ORDER BY slot FOR NO KEY UPDATE') AS t(slot int);
DO $$
DECLARE
	context text;
BEGIN
	PERFORM shop_checkout(2);
EXCEPTION WHEN lock_not_available THEN
	GET STACKED DIAGNOSTICS context = PG_EXCEPTION_CONTEXT;
	RAISE NOTICE '%: %', SQLERRM,
		substring(context FROM 'while [^\n]* for the checkout of customer [0-9]+');
END
$$;
SELECT dblink_exec('holder', 'ROLLBACK');

SELECT * FROM shop_state;

-- Errors the checkout raises itself carry no such line
UPDATE products SET stock = 0 WHERE id = 1;
SELECT shop_checkout(1);

SELECT dblink_disconnect('holder');
SET checkout.allow_drop = on;
DROP EXTENSION checkout CASCADE;
DROP EXTENSION dblink;
